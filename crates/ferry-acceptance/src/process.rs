//! One command run the way Ferry runs every per-service command (acceptance tests, their builds,
//! `[scripts]`): stdin closed, stdout and stderr captured line by line, in a process group of
//! its own, so that a timeout, the end of the command or an aborted run stops it and everything
//! it started (cargo and its compilers, a test runner and its workers).

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// How a command ended.
#[derive(Debug)]
pub enum Ended {
    Exited(ExitStatus),
    /// Still running after the timeout: killed, with its whole group.
    TimedOut(Duration),
    /// Waiting for it failed.
    Lost(std::io::Error),
    /// Stopped because the run was cancelled (see [`run_captured`]).
    Stopped,
}

/// How long a command stopped by a cancel has, after SIGINT, to end on its own (a test
/// runner's teardown) before its group is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often a running command looks whether its run was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Resolves once `cancel` is set; never without one.
pub(crate) async fn cancelled(cancel: Option<&ferry_graph::Cancel>) {
    match cancel {
        Some(c) => {
            while !c.is_cancelled() {
                tokio::time::sleep(CANCEL_POLL).await;
            }
        }
        None => std::future::pending().await,
    }
}

/// A finished command: how it ended and the lines it printed (both streams, in the order they
/// were read; at most the last `keep` of them), not yet masked.
#[derive(Debug)]
pub struct Ran {
    pub ended: Ended,
    pub lines: Vec<String>,
}

/// Kills a process group when dropped: a run dropped before its command ended (cancelled,
/// aborted) leaves nothing behind. Harmless once the group is gone.
struct KillGroupOnDrop(Option<rustix::process::Pid>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Runs `cmd` (its program, arguments, folder and environment already set) to its end or to
/// `timeout`. `Err` when it cannot start.
pub async fn run_captured(
    cmd: tokio::process::Command,
    timeout: Option<Duration>,
    keep: usize,
) -> std::io::Result<Ran> {
    run_captured_until(cmd, timeout, keep, None).await
}

/// [`run_captured`], or until `stop` is set: then the command's group gets SIGINT, as a
/// terminal's Ctrl-C would give it (a test runner such as pytest runs its teardowns), and,
/// still running [`STOP_GRACE`] later, SIGKILL; it ends [`Ended::Stopped`]. A command that
/// ignores SIGINT, also by inheritance (a process started with SIGINT ignored, as a CI runner's
/// background job is, passes that on, unless it handles SIGINT itself as Ferry's commands do),
/// is killed when the grace is over.
pub async fn run_captured_until(
    mut cmd: tokio::process::Command,
    timeout: Option<Duration>,
    keep: usize,
    stop: Option<&ferry_graph::Cancel>,
) -> std::io::Result<Ran> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let group = KillGroupOnDrop(
        child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32)),
    );
    let lines = Arc::new(Mutex::new(VecDeque::<String>::new()));
    let pump = |r: Box<dyn tokio::io::AsyncRead + Send + Unpin>| {
        let lines = lines.clone();
        tokio::spawn(async move {
            // Bytes to a line break, read as UTF-8 where they are: a line that is not (Latin-1
            // text, a binary's output) must not end the reading, as the command would then
            // write into a closed pipe and die of it.
            let mut r = BufReader::new(r);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).await.is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                let mut kept = lines.lock().expect("lines");
                kept.push_back(ferry_env::without_terminal_codes(text).into_owned());
                line.clear();
                if kept.len() > keep {
                    kept.pop_front();
                }
            }
        })
    };
    let out = pump(Box::new(child.stdout.take().expect("piped")));
    let err = pump(Box::new(child.stderr.take().expect("piped")));
    let waited = {
        let wait = async {
            match timeout {
                Some(limit) => tokio::time::timeout(limit, child.wait()).await.ok(),
                None => Some(child.wait().await),
            }
        };
        tokio::select! {
            biased;
            waited = wait => Some(waited),
            () = cancelled(stop) => None,
        }
    };
    let stopped = waited.is_none();
    if stopped && let Some(pid) = group.0 {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::INT);
        let _ = tokio::time::timeout(STOP_GRACE, child.wait()).await;
    }
    let waited = waited.flatten();
    // Stop what is left of the group (all of it on a timeout or a stop; stray background
    // processes otherwise), which also closes the pipes the readers wait on.
    drop(group);
    if waited.is_none() {
        let _ = child.kill().await;
    }
    let _ = (out.await, err.await);
    let lines = std::mem::take(&mut *lines.lock().expect("lines")).into();
    let ended = match waited {
        None if stopped => Ended::Stopped,
        None => Ended::TimedOut(timeout.expect("only a timeout or a stop leaves no status")),
        Some(Ok(status)) => Ended::Exited(status),
        Some(Err(e)) => Ended::Lost(e),
    };
    Ok(Ran { ended, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A line that is not UTF-8 is read as well as it can be, and the reading goes on (before,
    // it stopped there: the command's next write met a closed pipe); terminal codes are gone.
    #[tokio::test]
    async fn lines_that_are_not_utf8_or_hold_terminal_codes_are_kept_as_text() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args([
            "-c",
            "printf 'caf\\351\\r\\n'; printf 'x\\033[31mred\\033[0m\\n' >&2; sleep 0.2; for i in $(seq 1 2000); do echo after $i; done; echo done",
        ]);
        let ran = run_captured(cmd, Some(Duration::from_secs(30)), usize::MAX)
            .await
            .unwrap();
        assert!(
            matches!(ran.ended, Ended::Exited(s) if s.success()),
            "{:?}",
            ran.lines.last()
        );
        assert!(
            ran.lines.contains(&"caf\u{fffd}".to_string()),
            "{:?}",
            &ran.lines[..3]
        );
        assert!(
            ran.lines.contains(&"xred".to_string()),
            "{:?}",
            &ran.lines[..3]
        );
        assert_eq!(ran.lines.last().map(String::as_str), Some("done"));
        assert_eq!(ran.lines.len(), 2003);
    }
}
