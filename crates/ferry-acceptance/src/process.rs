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
    mut cmd: tokio::process::Command,
    timeout: Option<Duration>,
    keep: usize,
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
            let mut r = BufReader::new(r).lines();
            while let Ok(Some(l)) = r.next_line().await {
                let mut kept = lines.lock().expect("lines");
                kept.push_back(l);
                if kept.len() > keep {
                    kept.pop_front();
                }
            }
        })
    };
    let out = pump(Box::new(child.stdout.take().expect("piped")));
    let err = pump(Box::new(child.stderr.take().expect("piped")));
    let waited = match timeout {
        Some(limit) => tokio::time::timeout(limit, child.wait()).await.ok(),
        None => Some(child.wait().await),
    };
    // Stop what is left of the group (all of it on a timeout; stray background processes
    // otherwise), which also closes the pipes the readers wait on.
    drop(group);
    if waited.is_none() {
        let _ = child.kill().await;
    }
    let _ = (out.await, err.await);
    let lines = std::mem::take(&mut *lines.lock().expect("lines")).into();
    let ended = match waited {
        None => Ended::TimedOut(timeout.expect("only a timeout leaves no status")),
        Some(Ok(status)) => Ended::Exited(status),
        Some(Err(e)) => Ended::Lost(e),
    };
    Ok(Ran { ended, lines })
}
