//! Running a service's `[package] build`: in its folder, without the stage's variables, no
//! standard input, its output captured (the last lines kept for a failure's message), and
//! stopped when it runs past its `timeout`.
//!
//! The build stays in Ferry's process group, so that a Ctrl-C in the terminal reaches it as it
//! reaches Ferry (packaging is synchronous and cannot watch a run's cancellation). The cost: a
//! timeout kills the build's own process only, and processes it started (`sh -c "npm ci &&
//! make"` runs `npm` under `sh`) run on to their end; Ferry does not wait for them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How a build command ended.
pub(crate) enum Ran {
    Exited(ExitStatus),
    /// It ran past its timeout and was killed.
    TimedOut(Duration),
    /// Waiting for it failed; it was killed.
    Lost(String),
}

/// What a build printed, last lines only.
pub(crate) struct Output {
    pub ran: Ran,
    pub lines: Vec<String>,
}

/// How long the output of a build that exited is still read (a process it left behind may
/// hold its output open).
const DRAIN: Duration = Duration::from_secs(2);

/// Runs `argv` in `dir` with `env` set (and `remove` removed), keeping the last `keep` lines
/// of its output (standard output and error, as they arrive). `Err` when it cannot start.
pub(crate) fn run(
    argv: &[String],
    dir: &Path,
    env: &[(&str, &str)],
    remove: &[std::ffi::OsString],
    timeout: Duration,
    keep: usize,
) -> std::io::Result<Output> {
    // Standard output and error share one pipe, so that the kept lines are in the order the
    // build wrote them.
    let (reader, writer) = std::io::pipe()?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    for k in remove {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // The command holds the pipe's write ends until it is dropped: the reader ends when the
    // build (and what it left running) has closed its own.
    let spawned = cmd.spawn();
    drop(cmd);
    let mut child = spawned?;
    let lines = Arc::new(Mutex::new(VecDeque::with_capacity(keep + 1)));
    let (done_tx, done_rx) = mpsc::channel();
    {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).split(b'\n').map_while(Result::ok) {
                let mut l = lines.lock().expect("output lock");
                l.push_back(String::from_utf8_lossy(&line).trim_end().to_string());
                if l.len() > keep {
                    l.pop_front();
                }
            }
            let _ = done_tx.send(());
        });
    }
    let t0 = Instant::now();
    let mut pause = Duration::from_millis(1);
    let ran = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ran::Exited(status),
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                break Ran::Lost(e.to_string());
            }
        }
        let elapsed = t0.elapsed();
        if elapsed >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break Ran::TimedOut(timeout);
        }
        std::thread::sleep(pause.min(timeout - elapsed));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    let _ = done_rx.recv_timeout(DRAIN);
    let lines = lines.lock().expect("output lock").iter().cloned().collect();
    Ok(Output { ran, lines })
}
