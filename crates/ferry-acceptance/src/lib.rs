#![doc = include_str!("../README.md")]
//! Acceptance tests against what a stage really runs.
//!
//! [`Harness::run_one`] runs a service's `[acceptance] command` in its folder with the stage's
//! identity in the child's environment only:
//!
//! - `FERRY_STAGE`, `FERRY_STAGE_ID`, `FERRY_REGION`, `FERRY_PROJECT`, `FERRY_SERVICE`;
//! - `FERRY_OUTPUTS_FILE`: a JSON file `{"<service>": {"<Key>": "<value>"}, …}` holding the stack
//!   outputs of the service and of each service it depends on, and the same values as
//!   `FERRY_OUTPUT_<SERVICE>_<KEY>` variables (upper case, other characters as `_`);
//! - the stage's credentials and region (`AWS_*`), `AWS_ENDPOINT_URL` when local;
//! - the manifest's `[acceptance] env`.
//!
//! Output is captured and masked; a command that outlives its timeout is killed. When the
//! command prints libtest's (`test name ... ok`) or nextest's (`PASS [ 0.1s] name`) lines, each
//! test becomes a case of the report;
//! otherwise the service is one case. [`run`] runs many services on the graph scheduler (a
//! service's tests wait for its dependencies' tests; a failure skips its dependents), and
//! [`junit`] renders the JUnit XML CodeBuild's `reports:` reads.
//!
//! Tests themselves are written with the `ferry-kit` crate; the variables they read are
//! defined once, in `ferry-env`.

mod awaited;
mod build;
mod junit;
mod libtest;
pub mod process;
pub mod scripts;
mod select;

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_credentials::Masker;
use ferry_graph::{Cancel, Outcome, ScheduleOptions};
use ferry_manifest::{Service, Stage, Workspace};
use ferry_outputs::Outputs;

pub use awaited::{Awaited, Publisher};
pub use build::{BuildEvent, Builds, Built};
pub use junit::junit;
pub use libtest::{cargo_test_report, parse as parse_libtest};
pub use select::{SelectError, mark, select};

/// Lines of a command's output kept for the report (the last ones).
const KEPT_LINES: usize = 200;

/// One test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    pub status: CaseStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    Passed,
    Failed,
    Ignored,
}

/// What happened to one service's tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Passed,
    /// The command exited non-zero (or could not start).
    Failed {
        message: String,
    },
    TimedOut {
        after: Duration,
    },
    /// A dependency's tests failed.
    Skipped {
        failed_dependency: String,
    },
    /// The service has no `[acceptance]` section.
    NoTests,
    Cancelled,
}

impl Status {
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Status::Failed { .. } | Status::TimedOut { .. } | Status::Skipped { .. }
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Passed => f.write_str("passed"),
            Status::Failed { message } => write!(f, "FAILED ({message})"),
            Status::TimedOut { after } => write!(f, "TIMED OUT after {}s", after.as_secs()),
            Status::Skipped { failed_dependency } => {
                write!(f, "skipped ({failed_dependency} failed)")
            }
            Status::NoTests => f.write_str("no tests ([acceptance] not set)"),
            Status::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The outcome of one service's tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub service: String,
    pub status: Status,
    pub duration: Duration,
    /// Cases reported by the command (libtest lines); empty when it reports none.
    pub cases: Vec<Case>,
    /// The last lines the command printed, masked.
    pub output: Vec<String>,
}

/// What a test run needs of its stage.
pub struct Harness<'a> {
    pub ws: &'a Workspace,
    pub stage: &'a Stage,
    /// Variables for every command: the stage's credentials, region, endpoint (see
    /// `ferry_credentials::env::child_env`).
    pub env: Vec<(String, String)>,
    pub masker: &'a Masker,
    /// Where the outputs files are written (`target/ferry/acceptance/<stage id>`).
    pub work_dir: PathBuf,
    /// The `[acceptance] build` commands started for this run: a service's tests wait for its
    /// build, and fail with its output when it failed.
    pub builds: Option<&'a Builds>,
}

/// Progress of a run.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        service: String,
    },
    /// Still running after `elapsed` (every [`HEARTBEAT`]), so that a long test build or run is
    /// never silent.
    Running {
        service: String,
        elapsed: Duration,
    },
    Finished(TestOutcome),
}

/// How often a running test command is reported as still running.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// Awaits `work`, calling `beat` with the time elapsed every [`HEARTBEAT`] until it is done.
pub async fn with_heartbeat<T>(work: impl Future<Output = T>, beat: impl Fn(Duration)) -> T {
    let t0 = Instant::now();
    tokio::pin!(work);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticks.tick() => beat(t0.elapsed()),
        }
    }
}

impl Harness<'_> {
    /// [`run_one`](Self::run_one) until it ends or `cancel` is set (looked at every 100 ms;
    /// set before it starts, it does not start): then the command is stopped with everything
    /// it started (its process group gets SIGINT, and SIGKILL after
    /// [`process::STOP_GRACE`]), and the outcome is [`Status::Cancelled`], which marks no
    /// record, so the tests stay owed to the next run. Unlike a stack operation, a test run can
    /// stop half way without harm: the first Ctrl-C stops it.
    pub async fn run_one_unless_cancelled(
        &self,
        service: &Service,
        outputs: &BTreeMap<String, Outputs>,
        cancel: &Cancel,
    ) -> TestOutcome {
        self.run(service, outputs, Some(cancel)).await
    }

    /// The outputs a service's tests see: its own and its dependencies' in this stage
    /// ([`Service::dependencies_in`]), by service.
    pub fn outputs_for(
        &self,
        service: &Service,
        known: &BTreeMap<String, Outputs>,
    ) -> BTreeMap<String, Outputs> {
        std::iter::once(service.name.clone())
            .chain(service.dependencies_in(self.stage))
            .filter_map(|s| known.get(&s).map(|o| (s, o.clone())))
            .collect()
    }

    /// Runs one service's acceptance command.
    pub async fn run_one(
        &self,
        service: &Service,
        outputs: &BTreeMap<String, Outputs>,
    ) -> TestOutcome {
        self.run(service, outputs, None).await
    }

    async fn run(
        &self,
        service: &Service,
        outputs: &BTreeMap<String, Outputs>,
        cancel: Option<&Cancel>,
    ) -> TestOutcome {
        let t0 = Instant::now();
        let outcome = |status, cases, output| TestOutcome {
            service: service.name.clone(),
            status,
            duration: t0.elapsed(),
            cases,
            output,
        };
        let Some(acc) = &service.acceptance else {
            return outcome(Status::NoTests, Vec::new(), Vec::new());
        };
        let built = async {
            match self.builds {
                Some(b) => b.wait(&service.name).await,
                None => None,
            }
        };
        // The cancel first: one set already (or while the build is awaited) starts nothing.
        let built = tokio::select! {
            biased;
            () = process::cancelled(cancel) => {
                return outcome(Status::Cancelled, Vec::new(), Vec::new());
            }
            built = built => built,
        };
        if let Some(Built::Failed { message, output }) = built {
            // Masked again: the build started before the stage's secrets were read, and
            // was masked with what was known when it ended.
            let message = self
                .masker
                .mask(&format!("its acceptance build failed: {message}"));
            let output = output.iter().map(|l| self.masker.mask(l)).collect();
            return outcome(Status::Failed { message }, Vec::new(), output);
        }
        // What the command is given is masked like all output: a stack output that echoes a
        // secret reaches neither the outputs file nor the variables in clear.
        let mine: BTreeMap<String, Outputs> = self
            .outputs_for(service, outputs)
            .into_iter()
            .map(|(s, o)| {
                let o = o
                    .iter()
                    .map(|(k, v)| (k.clone(), self.masker.mask(v)))
                    .collect();
                (s, o)
            })
            .collect();
        let file = self.work_dir.join(format!("{}.outputs.json", service.name));
        let written = std::fs::create_dir_all(&self.work_dir).and_then(|_| {
            let mut bytes = serde_json::to_vec_pretty(&mine).expect("outputs serialize");
            bytes.push(b'\n');
            std::fs::write(&file, bytes)
        });
        if let Err(e) = written {
            let message = format!("cannot write {}: {e}", file.display());
            return outcome(Status::Failed { message }, Vec::new(), Vec::new());
        }

        let mut cmd = tokio::process::Command::new(&acc.command[0]);
        cmd.args(&acc.command[1..])
            .current_dir(self.ws.root.join(&service.dir));
        for var in ferry_credentials::env::not_inherited(&self.env) {
            cmd.env_remove(var);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(self.stage.vars(&self.ws.project.name))
            .env(ferry_env::SERVICE, &service.name)
            .env(ferry_env::OUTPUTS_FILE, &file);
        // A variable that two outputs give (`Url` and `URL`) is set for neither: the last would
        // stand for both. The outputs file holds each.
        let vars = ferry_env::output_vars(
            mine.iter()
                .flat_map(|(s, o)| o.keys().map(move |k| (s.as_str(), k.as_str()))),
        );
        for (svc, o) in &mine {
            for (k, v) in o {
                let var = ferry_env::output_var(svc, k);
                if vars[&var].len() == 1 {
                    cmd.env(var, v);
                }
            }
        }
        cmd.envs(&acc.env);

        let limit = Duration::from_secs(acc.timeout_secs);
        // Every line: the test cases are read from all of them.
        let ran = match process::run_captured_until(cmd, Some(limit), usize::MAX, cancel).await {
            Ok(r) => r,
            Err(e) => {
                let message = format!(
                    "`{}` could not start: {e}; is it installed and on PATH?",
                    acc.command[0]
                );
                return outcome(Status::Failed { message }, Vec::new(), Vec::new());
            }
        };
        // Masked before anything reads them: test names and failure messages go into the
        // JUnit report too.
        let all: Vec<String> = ran.lines.iter().map(|l| self.masker.mask(l)).collect();
        let cases = libtest::parse(&all);
        let start = all.len().saturating_sub(KEPT_LINES);
        let output: Vec<String> = all[start..].to_vec();
        let status = match ran.ended {
            process::Ended::TimedOut(after) => Status::TimedOut { after },
            process::Ended::Stopped => Status::Cancelled,
            process::Ended::Lost(e) => Status::Failed {
                message: format!("waiting for it failed: {e}"),
            },
            process::Ended::Exited(s) if s.success() => Status::Passed,
            // Masked here: the JUnit report writes it as it is.
            process::Ended::Exited(s) => Status::Failed {
                message: self
                    .masker
                    .mask(&format!("`{}` {s}", acc.command.join(" "))),
            },
        };
        outcome(status, cases, output)
    }
}

/// A run over many services.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// In dependency order.
    pub outcomes: Vec<TestOutcome>,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        !self.outcomes.iter().any(|o| o.status.is_failure())
    }

    /// The report with every text it holds masked by `masker` as it stands now: what was
    /// masked as it was printed (a build that failed before the stage's secrets were read) is
    /// masked again with every secret known since, before a report is written.
    pub fn masked(&self, masker: &Masker) -> Report {
        let outcomes = self
            .outcomes
            .iter()
            .map(|o| TestOutcome {
                service: o.service.clone(),
                status: match &o.status {
                    Status::Failed { message } => Status::Failed {
                        message: masker.mask(message),
                    },
                    other => other.clone(),
                },
                duration: o.duration,
                cases: o
                    .cases
                    .iter()
                    .map(|c| Case {
                        name: masker.mask(&c.name),
                        status: c.status,
                    })
                    .collect(),
                output: o.output.iter().map(|l| masker.mask(l)).collect(),
            })
            .collect();
        Report { outcomes }
    }
}

/// Runs the tests of `services` (dependencies first; at most `concurrency` at once). Outputs
/// come from `outputs` (by service).
pub async fn run(
    h: &Harness<'_>,
    services: &BTreeSet<String>,
    outputs: &BTreeMap<String, Outputs>,
    concurrency: Option<NonZeroUsize>,
    cancel: &Cancel,
    on: &(dyn Fn(Event) + Send + Sync),
) -> Report {
    let sub = h.ws.graph().subgraph(services);
    let options = ScheduleOptions {
        concurrency,
        estimates: BTreeMap::new(),
    };
    let report = ferry_graph::schedule::run(&sub, &options, cancel, |name| async move {
        let service = h.ws.service(&name).expect("selected services exist");
        on(Event::Started {
            service: name.clone(),
        });
        let o = with_heartbeat(
            h.run_one_unless_cancelled(service, outputs, cancel),
            |elapsed| {
                on(Event::Running {
                    service: service.name.clone(),
                    elapsed,
                })
            },
        )
        .await;
        on(Event::Finished(o.clone()));
        if o.status.is_failure() { Err(o) } else { Ok(o) }
    })
    .await;
    report_in_order(&sub, report)
}

/// The outcomes of a scheduler run in dependency order, skipped and cancelled services included.
fn report_in_order(
    sub: &ferry_graph::DepGraph,
    report: ferry_graph::schedule::Report<TestOutcome, TestOutcome>,
) -> Report {
    let outcomes = sub
        .topo_order()
        .into_iter()
        .map(|name| match report.outcomes.get(&name) {
            Some(Outcome::Succeeded(o)) | Some(Outcome::Failed(o)) => o.clone(),
            Some(Outcome::Skipped { failed_dependency }) => TestOutcome {
                service: name,
                status: Status::Skipped {
                    failed_dependency: failed_dependency.clone(),
                },
                duration: Duration::ZERO,
                cases: Vec::new(),
                output: Vec::new(),
            },
            Some(Outcome::Cancelled) | None => TestOutcome {
                service: name,
                status: Status::Cancelled,
                duration: Duration::ZERO,
                cases: Vec::new(),
                output: Vec::new(),
            },
        })
        .collect();
    Report { outcomes }
}

/// The summary of an acceptance run: rows for a table (the caller renders and masks them), and
/// the output of each failed service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// [`Summary::HEADER`] columns: service, passed/all cases, time, result.
    pub rows: Vec<[String; 4]>,
    /// For each failed or timed-out service, its output from the first panic, else its last
    /// lines.
    pub details: String,
}

impl Summary {
    pub const HEADER: [&'static str; 4] = ["SERVICE", "TESTS", "TIME", "RESULT"];
}

/// The summary of `report`.
pub fn summary(report: &Report) -> Summary {
    let mut rows = Vec::new();
    for o in &report.outcomes {
        let tests = if o.cases.is_empty() {
            "-".to_string()
        } else {
            let passed = o
                .cases
                .iter()
                .filter(|c| c.status == CaseStatus::Passed)
                .count();
            format!("{passed}/{}", o.cases.len())
        };
        rows.push([
            o.service.clone(),
            tests,
            format!("{:.1}s", o.duration.as_secs_f64()),
            o.status.to_string(),
        ]);
    }
    let mut out = String::new();
    for o in report
        .outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Failed { .. } | Status::TimedOut { .. }))
    {
        // From the first panic message when there is one (a backtrace after it is noise),
        // else the last lines.
        let (start, from) = match o.output.iter().position(|l| l.contains("panicked at")) {
            Some(i) => (i, "its output from the first panic"),
            None => (o.output.len().saturating_sub(25), "its last lines"),
        };
        if o.output.iter().all(|l| l.trim().is_empty()) {
            out.push_str(&format!("\n{} failed; it printed nothing\n", o.service));
            continue;
        }
        out.push_str(&format!("\n{} failed; {from}:\n", o.service));
        for l in o.output.iter().skip(start).take(25) {
            out.push_str(&format!("  | {l}\n"));
        }
    }
    Summary { rows, details: out }
}

/// What each service whose command passed printed (its last lines, kept as the report keeps
/// them), for `-v`: the summary shows only the failures' output.
pub fn passed_output(report: &Report) -> String {
    let mut out = String::new();
    for o in report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Passed)
    {
        if o.output.iter().all(|l| l.trim().is_empty()) {
            continue;
        }
        out.push_str(&format!("\n{} passed; it printed:\n", o.service));
        for l in &o.output {
            out.push_str(&format!("  | {l}\n"));
        }
    }
    out
}

/// Writes `text` to `path`, creating its folder.
pub fn write_report(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_that_printed_nothing_says_so_instead_of_an_empty_tail() {
        let outcome = |service: &str, output: &[&str]| TestOutcome {
            service: service.into(),
            status: Status::Failed {
                message: "exit status: 1".into(),
            },
            duration: Duration::from_millis(5),
            cases: Vec::new(),
            output: output.iter().map(|l| l.to_string()).collect(),
        };
        let report = Report {
            outcomes: vec![outcome("quiet", &["", " "]), outcome("loud", &["boom"])],
        };
        let details = summary(&report).details;
        assert!(
            details.contains("\nquiet failed; it printed nothing\n"),
            "{details}"
        );
        assert!(
            details.contains("\nloud failed; its last lines:\n  | boom\n"),
            "{details}"
        );
    }
}
