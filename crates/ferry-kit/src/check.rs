//! Polling checks: distributed systems converge, so a check is retried until it holds.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long the checks of this library wait by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckError {
    #[error("{what}: still not true after {:.1}s; last seen: {last}", .after.as_secs_f64())]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },
    #[error("{what}: it happened ({seen}), expected it not to within {:.1}s", .window.as_secs_f64())]
    Happened {
        what: String,
        window: Duration,
        seen: String,
    },
    #[error("{what}: {message}")]
    Failed { what: String, message: String },
}

/// Polls `check` every `interval` until it returns `Ok`, or fails after `timeout` with the last
/// thing it saw (`Err(description)`).
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T, CheckError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let t0 = Instant::now();
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(last) if t0.elapsed() + interval > timeout => {
                return Err(CheckError::Timeout {
                    what: what.to_string(),
                    after: t0.elapsed(),
                    last,
                });
            }
            Err(_) => tokio::time::sleep(interval).await,
        }
    }
}

/// The negation: polls `probe` for the whole `window` and fails as soon as it reports that the
/// unwanted thing happened (`Some(description)`). Waits the full window when all is well.
pub async fn never<F, Fut>(
    what: &str,
    window: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<(), CheckError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<String>, String>>,
{
    let t0 = Instant::now();
    loop {
        match probe().await {
            Ok(Some(seen)) => {
                return Err(CheckError::Happened {
                    what: what.to_string(),
                    window,
                    seen,
                });
            }
            Ok(None) => {}
            Err(message) => {
                return Err(CheckError::Failed {
                    what: what.to_string(),
                    message,
                });
            }
        }
        if t0.elapsed() >= window {
            return Ok(());
        }
        tokio::time::sleep(interval.min(window.saturating_sub(t0.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn eventually_retries_and_reports_the_last_value() {
        let n = Cell::new(0);
        let v = eventually(
            "count reaches 3",
            Duration::from_secs(5),
            Duration::from_millis(100),
            || {
                n.set(n.get() + 1);
                let k = n.get();
                async move {
                    if k >= 3 {
                        Ok(k)
                    } else {
                        Err(format!("count {k}"))
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 3);

        let e = eventually(
            "never ready",
            Duration::from_secs(1),
            Duration::from_millis(300),
            || async { Err::<(), _>("status PENDING".to_string()) },
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("never ready: still not true after"),
            "{e}"
        );
        assert!(e.to_string().ends_with("last seen: status PENDING"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn never_waits_the_whole_window_and_fails_on_the_first_sighting() {
        let t0 = tokio::time::Instant::now();
        never(
            "no message",
            Duration::from_secs(3),
            Duration::from_millis(500),
            || async { Ok(None) },
        )
        .await
        .unwrap();
        assert!(t0.elapsed() >= Duration::from_secs(3));

        let n = Cell::new(0);
        let e = never(
            "no message",
            Duration::from_secs(3),
            Duration::from_millis(500),
            || {
                n.set(n.get() + 1);
                let k = n.get();
                async move { Ok((k == 2).then(|| "hello".to_string())) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            e,
            CheckError::Happened {
                what: "no message".into(),
                window: Duration::from_secs(3),
                seen: "hello".into()
            }
        );
    }
}
