//! The lock's renewal where the emulator cannot help: SSM failing for minutes, with scripted
//! responses (aws-smithy-mocks) on tokio's paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use ferry_records::{LockHolder, RecordError, RecordStore};

fn throttled() -> GetParameterError {
    GetParameterError::generic(
        aws_sdk_ssm::error::ErrorMetadata::builder()
            .code("ThrottlingException")
            .message("Rate exceeded")
            .build(),
    )
}

#[tokio::test(start_paused = true)]
async fn renewing_goes_on_after_it_has_failed_for_minutes() {
    let mine = LockHolder::for_this_process(&|_| None, "deploy", "dev", None);
    let theirs = LockHolder {
        token: format!("{}-other", mine.token),
        ..mine.clone()
    };
    let taken = serde_json::to_string(&theirs).unwrap();
    // Five renewals fail (throttled on every attempt), then the lock turns out to be another
    // run's.
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .error(throttled)
        .times(5)
        .output(move || {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().value(taken.clone()).build())
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule], |b| b
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled()));
    let store = RecordStore::new(client, "dev", "/ferry/shop/dev");

    let told = AtomicUsize::new(0);
    let lost = store
        .keep(&mine, &|e| {
            assert!(
                matches!(e, RecordError::Aws(_)),
                "a renewal's own error: {e:?}"
            );
            told.fetch_add(1, Ordering::SeqCst);
        })
        .await;
    // Told once, when failures had lasted over half the lock's TTL (the fourth failed renewal,
    // 3 minutes after the first), and still renewing: the sixth renewal finds the lock lost.
    assert_eq!(told.load(Ordering::SeqCst), 1);
    assert!(matches!(lost, RecordError::LockLost { .. }), "{lost:?}");
    assert_eq!(rule.num_calls(), 6);
}
