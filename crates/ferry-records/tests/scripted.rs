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

fn already_exists() -> aws_sdk_ssm::operation::put_parameter::PutParameterError {
    aws_sdk_ssm::operation::put_parameter::PutParameterError::ParameterAlreadyExists(
        aws_sdk_ssm::types::error::ParameterAlreadyExists::builder()
            .message("exists")
            .meta(
                aws_sdk_ssm::error::ErrorMetadata::builder()
                    .code("ParameterAlreadyExists")
                    .build(),
            )
            .build(),
    )
}

/// `holder`'s lock as SSM returns it, last written by SSM at `written` (seconds since the
/// epoch).
fn stored(
    holder: &LockHolder,
    written: u64,
) -> impl Fn() -> GetParameterOutput + Clone + Send + Sync + 'static {
    let text = serde_json::to_string(holder).unwrap();
    move || {
        GetParameterOutput::builder()
            .parameter(
                Parameter::builder()
                    .value(text.clone())
                    .last_modified_date(aws_sdk_ssm::primitives::DateTime::from_secs(
                        written as i64,
                    ))
                    .build(),
            )
            .build()
    }
}

/// A client on which `holder`'s stale lock (SSM wrote it at `written`) is taken over for `by`:
/// the create fails, the lock is read, read again before the delete, deleted, and created; read
/// after that, it is `by`'s. Returns the rule of that create too, to count it.
fn taking_over(
    holder: &LockHolder,
    written: u64,
    by: &LockHolder,
) -> (aws_sdk_ssm::Client, aws_smithy_mocks::Rule) {
    let taken = mock!(aws_sdk_ssm::Client::put_parameter).then_error(already_exists);
    let read = mock!(aws_sdk_ssm::Client::get_parameter).then_output(stored(holder, written));
    let again = mock!(aws_sdk_ssm::Client::get_parameter).then_output(stored(holder, written));
    let deleted = mock!(aws_sdk_ssm::Client::delete_parameter).then_output(|| {
        aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput::builder().build()
    });
    let created = mock!(aws_sdk_ssm::Client::put_parameter).then_output(|| {
        aws_sdk_ssm::operation::put_parameter::PutParameterOutput::builder().build()
    });
    let now_theirs = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_output(stored(by, ferry_records::now_secs()));
    let client = mock_client!(
        aws_sdk_ssm,
        RuleMode::Sequential,
        [&taken, &read, &again, &deleted, &created, &now_theirs]
    );
    (client, created)
}

/// This run's holder, and another run's on another host.
fn mine_and_theirs() -> (LockHolder, LockHolder) {
    let none = |_: &str| None;
    let mine = LockHolder::for_this_process(&none, "deploy", "dev", None);
    let theirs = LockHolder {
        host: "another-host".into(),
        ..LockHolder::for_this_process(&none, "deploy", "dev", None)
    };
    (mine, theirs)
}

/// A client on which the lock is another's: creating it fails, and reading it answers `read`.
fn taken_then(read: &aws_smithy_mocks::Rule) -> aws_sdk_ssm::Client {
    let taken = mock!(aws_sdk_ssm::Client::put_parameter).then_error(already_exists);
    mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&taken, read])
}

/// A lock's age is SSM's clock's, not its holder's: the emulator stamps every write with the
/// present, so a lock that SSM last wrote an hour ago is scripted here. Its holder's clock runs
/// an hour ahead (it says it renewed the lock just now), and the lock is stale all the same:
/// refused without force, naming why; force takes it over, saying whose it was.
#[tokio::test]
async fn a_lock_ssm_last_wrote_an_hour_ago_is_stale_whatever_its_holder_s_clock_says() {
    let now = ferry_records::now_secs();
    let (mine, theirs) = mine_and_theirs();
    let theirs = LockHolder {
        since: now,
        renewed: Some(now),
        ..theirs
    };
    let read = mock!(aws_sdk_ssm::Client::get_parameter).then_output(stored(&theirs, now - 3600));
    let err = RecordStore::new(taken_then(&read), "dev", "/ferry/shop/dev")
        .lock(&mine, false)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("that lock is stale (not renewed for 60 min"),
        "{err}"
    );

    let (client, created) = taking_over(&theirs, now - 3600, &mine);
    let store = RecordStore::new(client, "dev", "/ferry/shop/dev");
    let acquired = store.lock(&mine, true).await.unwrap();
    let (displaced, why) = acquired.displaced.unwrap();
    assert_eq!(displaced, theirs);
    assert!(
        matches!(why, ferry_records::Stale::Expired { idle_secs, .. } if idle_secs >= 3600),
        "{why:?}"
    );
    assert_eq!(created.num_calls(), 1, "the lock is written for this run");
    // The displaced run, should it still run, learns at its next renewal that the lock is
    // another's.
    assert!(matches!(
        store.renew(&theirs).await.unwrap_err(),
        RecordError::LockLost { .. }
    ));
}

/// Another batch's lock that SSM last wrote two hours ago (its nodes stopped renewing: a failed
/// batch build never finishes) is taken over by the next batch, though its holder's clock says
/// it renewed it just now.
#[tokio::test]
async fn a_batch_takes_over_another_batch_s_lock_ssm_last_wrote_two_hours_ago() {
    let now = ferry_records::now_secs();
    let none = |_: &str| None;
    let node = |batch: &str| LockHolder {
        host: "node-host".into(),
        since: now,
        renewed: Some(now),
        ..LockHolder::for_this_process(&none, "batch node", "dev", None).in_batch(batch)
    };
    let (client, created) = taking_over(&node("run-3"), now - 2 * 3600, &node("run-4"));
    match RecordStore::new(client, "dev", "/ferry/shop/dev")
        .join(&node("run-4"))
        .await
        .unwrap()
    {
        ferry_records::Joined::TookOver { from, why } => {
            assert_eq!(from.batch.as_deref(), Some("run-3"));
            assert!(
                matches!(why, ferry_records::Stale::Expired { idle_secs, .. } if idle_secs >= 2 * 3600),
                "{why:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(created.num_calls(), 1, "the lock is written for this batch");
}

/// SSM's answer to reading `holder`'s lock, as HTTP: the lock last written at `written`, the
/// answer sent at `date` (its `Date` header), both by SSM's clock.
fn answered(
    holder: &LockHolder,
    written: u64,
    date: u64,
) -> aws_sdk_ssm::config::http::HttpResponse {
    use aws_sdk_ssm::primitives::{DateTime, DateTimeFormat};
    let body = serde_json::json!({
        "Parameter": {
            "Name": "/ferry/shop/dev/lock",
            "Type": "String",
            "Value": serde_json::to_string(holder).unwrap(),
            "Version": 1,
            "LastModifiedDate": written,
        }
    });
    let mut response = aws_sdk_ssm::config::http::HttpResponse::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap(),
        aws_smithy_types::body::SdkBody::from(body.to_string()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    response.headers_mut().insert(
        "date",
        DateTime::from_secs(date as i64)
            .fmt(DateTimeFormat::HttpDate)
            .unwrap(),
    );
    response
}

/// A lock's age runs to SSM's present (the `Date` of its answer), not this machine's: a reader
/// whose clock runs two hours ahead of SSM's sees a lock SSM wrote a minute before answering
/// as live (force does not take it, and says it was renewed a minute ago), and one whose clock
/// runs an hour behind sees a lock written an hour before SSM's present as stale.
#[tokio::test]
async fn a_lock_s_age_runs_to_ssm_s_present_not_the_reader_s() {
    let local = ferry_records::now_secs();
    let (mine, theirs) = mine_and_theirs();

    // SSM's clock two hours behind this machine's: by this machine's, the lock is two hours old.
    let ssm_now = local - 2 * 3600;
    let (t, h) = (theirs.clone(), ssm_now);
    let read = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_http_response(move || answered(&t, h - 60, h));
    match RecordStore::new(taken_then(&read), "dev", "/ferry/shop/dev")
        .lock(&mine, true)
        .await
        .unwrap_err()
    {
        RecordError::LockedLive {
            renewed_secs_ago, ..
        } => assert_eq!(renewed_secs_ago, 60),
        other => panic!("{other:?}"),
    }

    // SSM's clock an hour ahead: by this machine's, the lock was written just now.
    let ssm_now = local + 3600;
    let (t, h) = (theirs.clone(), ssm_now);
    let read = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_http_response(move || answered(&t, h - 3600, h));
    let err = RecordStore::new(taken_then(&read), "dev", "/ferry/shop/dev")
        .lock(&mine, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            RecordError::Locked {
                stale: Some(ferry_records::Stale::Expired {
                    idle_secs: 3600,
                    ..
                }),
                ..
            }
        ),
        "{err:?}"
    );
}
