//! SQS checks. Messages delivered by SNS are unwrapped: the check sees the published message,
//! not the notification envelope.

use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;

use crate::{CheckError, DEFAULT_TIMEOUT};

/// The published body of an SQS message: SNS notifications are unwrapped.
pub fn unwrap_sns(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "Type")]
        kind: String,
        #[serde(rename = "Message")]
        message: String,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(e) if e.kind == "Notification" => e.message,
        _ => body.to_string(),
    }
}

/// Receives up to 10 messages (waiting up to `wait`), unwrapped; deletes those `take` accepts.
async fn receive(
    client: &Client,
    queue_url: &str,
    wait: Duration,
    take: &dyn Fn(&str) -> bool,
) -> Result<(Vec<String>, Vec<String>), String> {
    let out = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait.as_secs().min(20) as i32)
        .visibility_timeout(1)
        .send()
        .await
        .map_err(|e| ferry_aws::explain("ReceiveMessage", &e).to_string())?;
    let (mut taken, mut seen) = (Vec::new(), Vec::new());
    for m in out.messages() {
        let body = unwrap_sns(m.body().unwrap_or_default());
        if take(&body) {
            if let Some(h) = m.receipt_handle() {
                let _ = client
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(h)
                    .send()
                    .await;
            }
            taken.push(body);
        } else {
            seen.push(body);
        }
    }
    Ok((taken, seen))
}

/// A message matching `pred` arrives within [`DEFAULT_TIMEOUT`]; returns it (and deletes it).
pub async fn message_matches(
    client: &Client,
    queue_url: &str,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> Result<String, CheckError> {
    let t0 = Instant::now();
    let mut last = "no message".to_string();
    while t0.elapsed() < DEFAULT_TIMEOUT {
        match receive(client, queue_url, Duration::from_secs(1), &pred).await {
            Ok((mut taken, seen)) => {
                if let Some(m) = taken.pop() {
                    return Ok(m);
                }
                if let Some(s) = seen.last() {
                    last = format!("other message {s:?}");
                }
            }
            Err(e) => {
                return Err(CheckError::Failed {
                    what: format!("a message {what} on {queue_url}"),
                    message: e,
                });
            }
        }
    }
    Err(CheckError::Timeout {
        what: format!("a message {what} on {queue_url}"),
        after: t0.elapsed(),
        last,
    })
}

/// No message matching `pred` arrives during the whole `window`.
pub async fn no_message(
    client: &Client,
    queue_url: &str,
    what: &str,
    window: Duration,
    pred: impl Fn(&str) -> bool,
) -> Result<(), CheckError> {
    crate::never(
        &format!("no message {what} on {queue_url}"),
        window,
        Duration::ZERO,
        || async {
            let left = window.saturating_sub(Duration::from_millis(1));
            let (taken, _) =
                receive(client, queue_url, left.min(Duration::from_secs(1)), &pred).await?;
            Ok(taken.into_iter().next())
        },
    )
    .await
}
