//! How Ferry prints: one masker for everything, one progress-line format, one table renderer,
//! one way to write sizes.

use anyhow::Context as _;
use std::time::Instant;

/// The one masker of this run: every secret value and credential Ferry loads is registered with
/// it, and everything Ferry prints that could hold one goes through it. It starts with the
/// values of this process's variables named as secrets (`DB_PASSWORD`, which CI exports from a
/// parameter store to every command it runs, and so to the scripts, builds and tests Ferry runs).
pub fn masker() -> &'static ferry_credentials::Masker {
    static MASKER: std::sync::OnceLock<ferry_credentials::Masker> = std::sync::OnceLock::new();
    MASKER.get_or_init(|| {
        let masker = ferry_credentials::Masker::new();
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        ferry_deploy::register_named_env_secrets(&masker, vars);
        masker
    })
}

/// Masks `text` with [`masker`].
pub fn mask(text: &str) -> String {
    masker().mask(text)
}

/// `text` for standard output: [`ferry_ci::printable`] when that is a terminal, else as it is (a program
/// reads it).
pub fn for_stdout(text: String) -> String {
    use std::io::IsTerminal as _;
    static TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *TERMINAL.get_or_init(|| std::io::stdout().is_terminal()) {
        ferry_ci::printable(&text).into_owned()
    } else {
        text
    }
}

/// The clock of one command: every progress line starts with the seconds since it began.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    t0: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock { t0: Instant::now() }
    }

    pub fn seconds(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// `[  12.3s] text`, masked, on one line ([`ferry_ci::one_line`]): the one progress-line
    /// format.
    pub fn line(&self, text: &str) -> String {
        format!(
            "[{:>6.1}s] {}",
            self.seconds(),
            ferry_ci::one_line(&mask(text))
        )
    }

    /// Prints [`Clock::line`] to standard error (see [`note`]).
    pub fn say(&self, text: &str) {
        note(&self.line(text));
    }
}

/// Writes a line to standard error (see [`written`]).
pub fn note(line: &str) {
    eprintln!("{line}");
}

/// How long a step may wait without a line saying what it waits for.
const WAITING_LINE: std::time::Duration = std::time::Duration::from_secs(10);

/// `work`, with a line every 10 s while it has not finished saying that it still waits for
/// `what` (an endpoint that accepts and never answers held a plan silent for two minutes).
pub async fn waiting_for<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    tokio::pin!(work);
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + WAITING_LINE, WAITING_LINE);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => note(&format!(
                "still waiting for {what} ({}s so far)",
                started.elapsed().as_secs()
            )),
        }
    }
}

/// The outcome of writing to `stream`. Never a panic: a run goes on to its end (its release,
/// its lock's release, a cancellation a signal asked for) whatever happens to its output. A
/// reader that has gone away (a closed pipe) is no failure; any other (a full disk under
/// `> file`, a closed terminal) is kept, and [`crate::exit`] fails the command with it once the
/// command is done.
pub fn written(result: std::io::Result<()>, stream: &str) {
    if let Err(e) = result
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = WRITE_FAILED.set(format!("failed to write to {stream}: {e}"));
    }
}

/// Standard output or error for a child's output passed on (`exec`): a failure to write is
/// kept as [`written`] keeps it.
pub struct Output {
    stream: &'static str,
}

impl Output {
    pub fn stdout() -> Output {
        Output { stream: "stdout" }
    }

    pub fn stderr() -> Output {
        Output { stream: "stderr" }
    }
}

impl std::io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = if self.stream == "stdout" {
            std::io::stdout().lock().write_all(buf)
        } else {
            std::io::stderr().lock().write_all(buf)
        };
        match result {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                let kept = std::io::Error::new(e.kind(), e.to_string());
                written(Err(kept), self.stream);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.stream == "stdout" {
            std::io::stdout().flush()
        } else {
            std::io::stderr().flush()
        }
    }
}

/// The first failure to write output, other than a closed pipe (see [`written`]).
pub(crate) static WRITE_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A plain left-aligned table, two spaces between columns; the last column is not padded.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    columns(&header, &rows)
}

/// [`table`] with as many columns as the header has (e.g. one per stage). A cell is shown
/// [`ferry_ci::printable`], a line break in it too (`\u{a}`): one row is one line.
pub fn columns(header: &[&str], rows: &[Vec<&str>]) -> String {
    let cell = |c: &str| ferry_ci::printable(c).replace('\n', "\\u{a}");
    let header: Vec<String> = header.iter().map(|c| cell(c)).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(cell);
            if i + 1 < cells.len() {
                s.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

/// A size for people: `512 B`, `3.4 KiB`, `12.0 MiB`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// A progress line for a packaging event (package and deploy).
pub fn package_event(e: &ferry_package::Event) -> String {
    use ferry_package::Event;
    match e {
        Event::Kept { service } => format!("{service}: already in this package"),
        Event::Reused { service } => {
            format!("{service}: inputs unchanged (same git trees): package reused, nothing built")
        }
        Event::Building { service, command } => format!("{service}: building: {command}"),
        Event::Zipped {
            service,
            resource,
            files,
            size,
            sha256,
        } => format!(
            "{service}: {resource}: {files} files, {} ({})",
            human(*size),
            &sha256[..12]
        ),
        Event::Withheld {
            service,
            what,
            files,
        } => format!(
            "{service}: {what}: left out {}",
            ferry_package::withheld_summary(files)
        ),
        Event::Packaged { service } => format!("{service}: packaged"),
        Event::PerStage { service } => {
            format!("{service}: compiled by its framework for each stage, when it deploys")
        }
        Event::Waiting { folder } => format!(
            "waiting for another Ferry process packaging into {} to finish",
            folder.display()
        ),
    }
}

/// A progress line for an acceptance event (test-acceptance and deploy --test).
pub fn acceptance_event(e: &ferry_acceptance::Event) -> String {
    use ferry_acceptance::Event;
    match e {
        Event::Started { service } => format!("{service}: testing"),
        Event::Running { service, elapsed } => {
            format!("{service}: tests still running ({}s)", elapsed.as_secs())
        }
        Event::Finished(o) => format!(
            "{}: tests {} in {:.1}s",
            o.service,
            o.status,
            o.duration.as_secs_f64()
        ),
    }
}

/// Reads standard input, a terminal, to its end (Ctrl-D) with the terminal's echo off, so that a
/// secret typed is not shown (nor left in the terminal's scrollback); newlines still show. The
/// terminal is put back however the read ends: read, failed, or stopped by Ctrl-C, SIGTERM or
/// SIGHUP (then the process ends with 130, nothing read or written).
pub fn read_hidden(rt: &tokio::runtime::Runtime) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};
    use tokio::signal::unix::{SignalKind, signal};

    /// Puts the terminal's modes back when dropped.
    struct Restore(Termios);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
        }
    }

    let saved = tcgetattr(std::io::stdin()).context("failed to read the terminal's modes")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    rt.block_on(async {
        // Watched before echo goes off: a signal then finds the terminal's modes to put back.
        let mut int = signal(SignalKind::interrupt()).context("failed to watch for Ctrl-C")?;
        let mut term = signal(SignalKind::terminate()).context("failed to watch for SIGTERM")?;
        let mut hup = signal(SignalKind::hangup()).context("failed to watch for SIGHUP")?;
        tcsetattr(std::io::stdin(), OptionalActions::Now, &quiet)
            .context("failed to turn the terminal's echo off")?;
        let restore = Restore(saved);
        let read = tokio::task::spawn_blocking(|| read_value(std::io::stdin()));
        // Signals first: a hangup also ends the read (EOF), and what was typed before it must
        // not be written.
        let name = tokio::select! {
            biased;
            _ = int.recv() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
            read = read => {
                drop(restore);
                // A hangup's signal may come a moment after the EOF it caused.
                tokio::task::yield_now().await;
                let late = tokio::select! {
                    biased;
                    _ = hup.recv() => Some("SIGHUP"),
                    _ = std::future::ready(()) => None,
                };
                if let Some(name) = late {
                    note(&format!("\ninterrupted ({name}): nothing written"));
                    std::process::exit(130)
                }
                let value = read.context("the reading of standard input failed")??;
                // These signals are Ferry's to handle now, for the rest of the process: they
                // still end it, as they would have without their handlers, with nothing more
                // done than was.
                tokio::spawn(async move {
                    let name = tokio::select! {
                        _ = int.recv() => "Ctrl-C",
                        _ = term.recv() => "SIGTERM",
                        _ = hup.recv() => "SIGHUP",
                    };
                    note(&format!("interrupted ({name})"));
                    std::process::exit(130)
                });
                return Ok(value);
            }
        };
        drop(restore);
        note(&format!("\ninterrupted ({name}): nothing written"));
        std::process::exit(130)
    })
}

/// The parser of every `--concurrency`: a whole number of at least 1 (no limit: leave it out).
pub(crate) fn concurrency(s: &str) -> Result<std::num::NonZeroUsize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .and_then(std::num::NonZeroUsize::new)
        .ok_or_else(|| {
            "a whole number of stack operations at once, at least 1 (leave --concurrency out for no limit)"
                .to_string()
        })
}

/// The parser of every `--timeout`: whole seconds from 1 to 7 days
/// ([`ferry_manifest::MAX_TIMEOUT_SECS`]; a deadline of `now` plus `u64::MAX` seconds panics).
pub(crate) fn timeout_secs() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=ferry_manifest::MAX_TIMEOUT_SECS)
}

/// A parameter's value from `input`, read to its end but never past what SSM could hold (a
/// stream without end, `/dev/zero`, took all memory): its trailing line break left out.
pub fn read_value(input: impl std::io::Read) -> anyhow::Result<String> {
    // Room for the line break (`\r\n`) that is left out, and one byte more to tell.
    let mut value = String::new();
    std::io::Read::read_to_string(
        &mut input.take(ferry_credentials::ssm::MAX_VALUE as u64 + 3),
        &mut value,
    )
    .context("failed to read the value from standard input (it must be UTF-8 text)")?;
    let value = value
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(&value)
        .to_string();
    if value.len() > ferry_credentials::ssm::MAX_VALUE {
        anyhow::bail!(
            "the value on standard input is over 8 KB, the most an SSM parameter holds: nothing written (keep a larger value in S3 or Secrets Manager, and its address in the parameter)"
        );
    }
    // No environment variable can hold it: `exec` of the stage would fail for every command.
    if value.contains('\0') {
        anyhow::bail!(
            "the value on standard input holds a NUL byte, which no environment variable (`exec`'s FERRY_PARAM_…) nor template parameter can hold: nothing written"
        );
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value is read up to what SSM holds: a stream without end (`/dev/zero`) is refused
    /// after 8 KB, not read until memory runs out.
    #[test]
    fn a_value_with_a_nul_byte_is_refused() {
        let err = read_value(&b"a\0b\n"[..]).unwrap_err();
        assert!(err.to_string().contains("NUL byte"), "{err}");
    }

    #[test]
    fn a_value_is_read_only_as_far_as_ssm_holds() {
        let err = read_value(std::io::Read::take(std::io::repeat(b'a'), u64::MAX)).unwrap_err();
        assert!(err.to_string().contains("is over 8 KB"), "{err}");
        let largest = "a".repeat(ferry_credentials::ssm::MAX_VALUE);
        assert_eq!(
            read_value(format!("{largest}\r\n").as_bytes()).unwrap(),
            largest
        );
        assert!(read_value(format!("{largest}a").as_bytes()).is_err());
        assert_eq!(read_value(&b"v\n"[..]).unwrap(), "v");
        assert!(read_value(&b"\xff"[..]).is_err());
    }

    #[test]
    fn tables_align_on_characters_and_leave_the_last_column_alone() {
        let rows = [
            ["api".to_string(), "créé".to_string(), "x".to_string()],
            ["database".to_string(), "-".to_string(), "y  ".to_string()],
        ];
        assert_eq!(
            table(["NAME", "RESULT", "WHY"], &rows),
            "NAME      RESULT  WHY\napi       créé    x\ndatabase  -       y\n"
        );
    }

    #[test]
    fn a_table_cell_is_one_line_that_steers_nothing() {
        let rows = [["x\ny".to_string(), "\u{1b}[2J".to_string()]];
        assert_eq!(
            table(["A", "B"], &rows),
            "A        B\nx\\u{a}y  \\u{1b}[2J\n"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 * 1024 + 400), "3.4 KiB");
        assert_eq!(human(12 << 20), "12.0 MiB");
    }
}
