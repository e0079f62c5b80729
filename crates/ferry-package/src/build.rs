//! Running a service's `[package] build`: in its folder, without the stage's variables, no
//! standard input, its output captured (the last lines kept for a failure's message), and
//! stopped when it runs past its `timeout`.
//!
//! The build stays in Ferry's process group, so that a Ctrl-C in the terminal reaches it as it
//! reaches Ferry. A signal sent to Ferry alone (a CI runner's SIGTERM) reaches the build through
//! the run's cancellation, which the wait below polls. Neither a timeout nor a cancellation can
//! kill a group, then: they stop the build's process tree instead, every process whose parent
//! chain leads to the build (`sh -c "npm ci && make"` runs `npm` under `sh`), found through
//! `/proc`. Where there is no `/proc` (macOS), only the build's own process is killed.

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
    /// The run was cancelled while it ran; it was killed.
    Cancelled,
    /// Waiting for it failed; it was killed.
    Lost(String),
}

/// What a build printed, last lines only.
pub(crate) struct Output {
    pub ran: Ran,
    pub lines: Vec<String>,
    /// The first line that says an error ([`ferry_env::says_error`]) and the few after it,
    /// when it came before the kept lines, and how many lines lie between them and those: the
    /// cause, which npm prints before pages of usage text.
    pub first_error: Option<(Vec<String>, usize)>,
}

/// A build's output as it is read: the last lines, and the first error's.
#[derive(Default)]
struct Seen {
    last: VecDeque<String>,
    /// How many lines were read.
    count: usize,
    /// The first error's lines, and the number of the line it starts at.
    first_error: Option<(Vec<String>, usize)>,
}

/// How long the output of a build that exited is still read (a process it left behind may
/// hold its output open).
const DRAIN: Duration = Duration::from_secs(2);

/// How a build is run: its time limit, how many of its last lines are kept, and whether the
/// run has been cancelled (asked while it runs).
pub(crate) struct Limits<'a> {
    pub timeout: Duration,
    pub keep: usize,
    pub cancelled: &'a dyn Fn() -> bool,
}

/// Runs `argv` in `dir` with `env` set (and `remove` removed), keeping the last `limits.keep`
/// lines of its output (standard output and error, as they arrive). `Err` when it cannot start.
pub(crate) fn run(
    argv: &[String],
    dir: &Path,
    env: &[(&str, &str)],
    remove: &[std::ffi::OsString],
    limits: &Limits<'_>,
) -> std::io::Result<Output> {
    let Limits {
        timeout,
        keep,
        cancelled,
    } = *limits;
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
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (done_tx, done_rx) = mpsc::channel();
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).split(b'\n').map_while(Result::ok) {
                let mut s = seen.lock().expect("output lock");
                let line = String::from_utf8_lossy(&line);
                let line = ferry_env::without_terminal_codes(&line)
                    .trim_end()
                    .to_string();
                let at = s.count;
                match &mut s.first_error {
                    None if ferry_env::says_error(&line) => {
                        s.first_error = Some((vec![line.clone()], at));
                    }
                    Some((first, from)) if at - *from < ferry_env::ERROR_LINES => {
                        first.push(line.clone());
                    }
                    _ => {}
                }
                s.count += 1;
                s.last.push_back(line);
                if s.last.len() > keep {
                    s.last.pop_front();
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
                kill_tree(child.id());
                let _ = child.kill();
                let _ = child.wait();
                break Ran::Lost(e.to_string());
            }
        }
        let elapsed = t0.elapsed();
        if elapsed >= timeout {
            kill_tree(child.id());
            let _ = child.kill();
            let _ = child.wait();
            break Ran::TimedOut(timeout);
        }
        if cancelled() {
            kill_tree(child.id());
            let _ = child.kill();
            let _ = child.wait();
            break Ran::Cancelled;
        }
        std::thread::sleep(pause.min(timeout - elapsed));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    let _ = done_rx.recv_timeout(DRAIN);
    let seen = std::mem::take(&mut *seen.lock().expect("output lock"));
    // Only when it lies before the kept lines: else they show it.
    let kept_from = seen.count - seen.last.len();
    let first_error =
        seen.first_error
            .filter(|(_, from)| *from < kept_from)
            .map(|(mut first, from)| {
                first.truncate(kept_from - from);
                let between = kept_from - from - first.len();
                (first, between)
            });
    Ok(Output {
        ran,
        lines: seen.last.into(),
        first_error,
    })
}

/// Kills `root` and every process descended from it. Each found process is stopped first and
/// the tree read again until no new one appears, so that none forks a child that escapes (a
/// child of a killed parent would be adopted by init and no longer look like a descendant);
/// then all are killed. A process is signalled only while its start time is still the one read
/// with its parent, so a pid that ended and was reused by an unrelated process is left alone.
/// Processes that left the tree themselves (a daemon that forked twice) are not found. Without
/// `/proc`, nothing is found and the caller kills `root` alone.
fn kill_tree(root: u32) {
    use rustix::process::{Pid, Signal, kill_process};
    let signal = |(pid, started): (u32, u64), sig: Signal| {
        if let Some(p) = Pid::from_raw(pid as i32)
            && stat_of(pid).is_some_and(|s| s.started == started)
        {
            let _ = kill_process(p, sig);
        }
    };
    let mut stopped: Vec<(u32, u64)> = Vec::new();
    for _ in 0..10 {
        let new: Vec<(u32, u64)> = descendants(root)
            .into_iter()
            .filter(|p| !stopped.contains(p))
            .collect();
        if new.is_empty() {
            break;
        }
        for p in &new {
            signal(*p, Signal::STOP);
        }
        stopped.extend(new);
    }
    for p in stopped.iter().rev() {
        signal(*p, Signal::KILL);
    }
}

/// `root` and its descendants (pid and start time), parents before children, read from
/// `/proc/<pid>/stat` (empty without `/proc`).
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut children: std::collections::HashMap<u32, Vec<(u32, u64)>> = Default::default();
    let mut root_started = None;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = stat_of(pid) {
            if pid == root {
                root_started = Some(stat.started);
            }
            children
                .entry(stat.parent)
                .or_default()
                .push((pid, stat.started));
        }
    }
    let Some(started) = root_started else {
        return Vec::new();
    };
    let mut out = vec![(root, started)];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i].0) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// What `/proc/<pid>/stat` says of a process: its parent and its start time (clock ticks after
/// boot).
struct Stat {
    parent: u32,
    started: u64,
}

/// Reads `/proc/<pid>/stat`. The command name is in parentheses and may hold spaces and
/// parentheses itself, so fields are counted from its last `)`: state, parent, …, and the
/// start time, the 22nd field of the line.
fn stat_of(pid: u32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // fields[0] is the 3rd field of the line (state).
    Some(Stat {
        parent: fields.get(1)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_process_tree_is_read_from_proc_with_parents_and_start_times() {
        let me = std::process::id();
        let stat = stat_of(me).expect("this process has a stat");
        assert_eq!(
            stat.parent,
            rustix::process::getppid().unwrap().as_raw_nonzero().get() as u32
        );
        // A child whose command name (the file it runs) holds a space and a parenthesis.
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a) b");
        std::os::unix::fs::symlink("/bin/sleep", &odd).unwrap();
        let mut child = Command::new(&odd).arg("30").spawn().unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() != "a) b")
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .unwrap()
                .trim(),
            "a) b"
        );
        let child_stat = stat_of(pid).expect("the child has a stat");
        assert_eq!(child_stat.parent, me);
        assert!(child_stat.started >= stat.started);
        assert!(descendants(me).contains(&(pid, child_stat.started)));
        kill_tree(pid);
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed: {status:?}");
    }

    #[test]
    fn a_cancelled_run_stops_the_build_and_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let cancelled = || t0.elapsed() >= Duration::from_millis(500);
        let argv = [
            "sh",
            "-c",
            "sleep 30 & echo $! > child.pid; echo started; wait",
        ]
        .map(String::from);
        let limits = Limits {
            timeout: Duration::from_secs(60),
            keep: 5,
            cancelled: &cancelled,
        };
        let out = run(&argv, dir.path(), &[], &[], &limits).unwrap();
        assert!(matches!(out.ran, Ran::Cancelled), "{:?}", out.lines);
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert_eq!(out.lines, ["started"]);
        // The build's own child is gone too (or a zombie waiting for init to reap it).
        let pid = std::fs::read_to_string(dir.path().join("child.pid")).unwrap();
        let pid: u32 = pid.trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                let state = s[s.rfind(')').unwrap() + 1..].split_whitespace().next();
                state != Some("Z")
            })
        };
        while running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!running(), "sleep {pid} still runs");
    }
}
