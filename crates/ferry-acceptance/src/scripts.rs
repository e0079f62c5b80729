//! `[scripts]`: a named command per service (`lint`, `test`, …), run for the services a plan
//! selects, what `lerna run <script>` did in the scripts Ferry replaces: in dependency order (a
//! service's script waits for its dependencies' and a failure skips its dependents), in parallel
//! under a cap, each in its service folder, its output captured and masked. The outcome is a
//! [`Report`] like an acceptance run's, so it has the same summary and JUnit report.
//!
//! A script needs no stage: it runs without the stage's variables and credentials (as a package
//! build does), with `FERRY_PROJECT` and `FERRY_SERVICE` set.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use ferry_credentials::Masker;
use ferry_graph::{Cancel, ScheduleOptions};
use ferry_manifest::{Service, Workspace};

use crate::process::{self, Ended};
use crate::{Event, KEPT_LINES, Report, Status, TestOutcome, libtest, with_heartbeat};

/// A run of one script.
pub struct Scripts<'a> {
    pub ws: &'a Workspace,
    /// The script's name, a key of `[scripts]`.
    pub script: &'a str,
    pub masker: &'a Masker,
    /// How long one service's script may run before it is stopped and counted as failed.
    pub timeout: Duration,
}

/// The selected services split by whether they define the script: (with, without), each in
/// name order.
pub fn split<'a>(
    ws: &Workspace,
    script: &str,
    selected: impl IntoIterator<Item = &'a String>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    selected
        .into_iter()
        .filter(|name| ws.service(name).is_some())
        .cloned()
        .partition(|name| {
            ws.service(name)
                .is_some_and(|s| s.scripts.contains_key(script))
        })
}

/// Every script name some service defines, for messages.
pub fn known(ws: &Workspace) -> BTreeSet<&str> {
    ws.services
        .iter()
        .flat_map(|s| s.scripts.keys().map(String::as_str))
        .collect()
}

impl Scripts<'_> {
    /// Runs the script of one service; once `cancel` is set it is stopped as a test is
    /// ([`process::run_captured_until`]: SIGINT, then SIGKILL after the grace).
    pub async fn run_one(&self, service: &Service, cancel: &Cancel) -> TestOutcome {
        let t0 = Instant::now();
        let outcome = |status, cases, output| TestOutcome {
            service: service.name.clone(),
            status,
            duration: t0.elapsed(),
            cases,
            output,
        };
        let Some(argv) = service.scripts.get(self.script) else {
            return outcome(Status::NoTests, Vec::new(), Vec::new());
        };
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(self.ws.root.join(&service.dir));
        for k in ferry_env::inherited_stage_variables() {
            cmd.env_remove(k);
        }
        cmd.env(ferry_env::PROJECT, &self.ws.project.name)
            .env(ferry_env::SERVICE, &service.name)
            .envs(ferry_env::NO_AWS_SETUP);
        let ran =
            match process::run_captured_until(cmd, Some(self.timeout), usize::MAX, Some(cancel))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    let message = format!(
                        "`{}` could not start: {e}; is it installed and on PATH?",
                        argv[0]
                    );
                    return outcome(Status::Failed { message }, Vec::new(), Vec::new());
                }
            };
        let cases = libtest::parse(&ran.lines);
        let start = ran.lines.len().saturating_sub(KEPT_LINES);
        let output = ran.lines[start..]
            .iter()
            .map(|l| self.masker.mask(l))
            .collect();
        let status = match ran.ended {
            Ended::TimedOut(after) => Status::TimedOut { after },
            Ended::Stopped => Status::Cancelled,
            Ended::Lost(e) => Status::Failed {
                message: format!("waiting for it failed: {e}"),
            },
            Ended::Exited(s) if s.success() => Status::Passed,
            Ended::Exited(s) => Status::Failed {
                message: self.masker.mask(&format!("`{}` {s}", argv.join(" "))),
            },
        };
        outcome(status, cases, output)
    }

    /// Runs the script of each of `services` that defines it, dependencies first, at most
    /// `concurrency` at once; a failure skips the dependents (among `services`) of the failed
    /// service.
    pub async fn run(
        &self,
        services: &BTreeSet<String>,
        concurrency: Option<NonZeroUsize>,
        cancel: &Cancel,
        on: &(dyn Fn(Event) + Send + Sync),
    ) -> Report {
        let (with, _) = split(self.ws, self.script, services);
        let sub = self.ws.graph().subgraph(&with);
        let options = ScheduleOptions {
            concurrency,
            estimates: Default::default(),
        };
        let report = ferry_graph::schedule::run(&sub, &options, cancel, |name| async move {
            let service = self.ws.service(&name).expect("selected services exist");
            on(Event::Started {
                service: name.clone(),
            });
            let o = with_heartbeat(self.run_one(service, cancel), |elapsed| {
                on(Event::Running {
                    service: name.clone(),
                    elapsed,
                })
            })
            .await;
            on(Event::Finished(o.clone()));
            if o.status.is_failure() { Err(o) } else { Ok(o) }
        })
        .await;
        crate::report_in_order(&sub, report)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Mutex;

    use super::*;

    /// A workspace of `(name, depends-on, [scripts] lines)`.
    fn workspace(services: &[(&str, &str, &str)]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("ferry.toml"),
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
        )
        .unwrap();
        for (name, deps, scripts) in services {
            let d = dir.path().join("services").join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("template.yaml"), "Resources: {}\n").unwrap();
            fs::write(
                d.join("service.toml"),
                format!(
                    "[service]\ntemplate = \"template.yaml\"\ndepends-on = [{deps}]\n\n[scripts]\n{scripts}\n"
                ),
            )
            .unwrap();
        }
        let ws = ferry_manifest::load(dir.path()).unwrap();
        (dir, ws)
    }

    fn names(set: &[&str]) -> BTreeSet<String> {
        set.iter().map(|s| s.to_string()).collect()
    }

    /// The report, and the services in the order they started.
    fn run(
        ws: &Workspace,
        script: &str,
        services: &[&str],
        masker: &Masker,
    ) -> (Report, Vec<String>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let s = Scripts {
            ws,
            script,
            masker,
            timeout: Duration::from_secs(5),
        };
        let events = Mutex::new(Vec::new());
        let report = rt.block_on(s.run(&names(services), None, &Cancel::new(), &|e| {
            if let Event::Started { service } = e {
                events.lock().unwrap().push(service);
            }
        }));
        (report, events.into_inner().unwrap())
    }

    #[test]
    fn scripts_run_in_their_folders_in_dependency_order_and_a_failure_skips_dependents() {
        let (_dir, ws) = workspace(&[
            (
                "database",
                "",
                r#"lint = ["sh", "-c", "pwd > ran; echo $FERRY_SERVICE"]"#,
            ),
            (
                "api",
                "\"database\"",
                r#"lint = ["sh", "-c", "test -f ../database/ran && exit 3"]"#,
            ),
            (
                "frontend",
                "\"api\"",
                r#"lint = ["sh", "-c", "echo never"]"#,
            ),
            ("docs", "", r#"test = ["true"]"#),
        ]);
        let (report, started) = run(
            &ws,
            "lint",
            &["api", "database", "docs", "frontend"],
            &Masker::new(),
        );
        assert_eq!(started, ["database", "api"], "dependencies first");
        let got: Vec<(String, String)> = report
            .outcomes
            .iter()
            .map(|o| (o.service.clone(), o.status.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("database".to_string(), "passed".to_string()),
                (
                    "api".to_string(),
                    "FAILED (`sh -c test -f ../database/ran && exit 3` exit status: 3)".to_string()
                ),
                ("frontend".to_string(), "skipped (api failed)".to_string()),
            ],
            "docs has no lint script and is not run"
        );
        assert!(!report.succeeded());
        let ran = fs::read_to_string(ws.root.join("services/database/ran")).unwrap();
        assert!(ran.trim().ends_with("services/database"), "{ran}");
        assert_eq!(report.outcomes[0].output, ["database"]);
    }

    #[test]
    fn a_script_that_hangs_is_stopped_and_one_that_cannot_start_says_so() {
        let (_dir, ws) = workspace(&[
            ("slow", "", r#"check = ["sleep", "30"]"#),
            ("missing", "", r#"check = ["no-such-program-ferry"]"#),
        ]);
        let t0 = Instant::now();
        let (report, _) = run(&ws, "check", &["slow", "missing"], &Masker::new());
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "stopped at its timeout"
        );
        let status = |s: &str| {
            report
                .outcomes
                .iter()
                .find(|o| o.service == s)
                .unwrap()
                .status
                .to_string()
        };
        assert_eq!(status("slow"), "TIMED OUT after 5s");
        assert!(
            status("missing").contains("`no-such-program-ferry` could not start"),
            "{}",
            status("missing")
        );
    }

    #[test]
    fn output_is_masked() {
        let (_dir, ws) = workspace(&[(
            "api",
            "",
            r#"lint = ["sh", "-c", "echo token=s3cr3t-value; echo project=$FERRY_PROJECT"]"#,
        )]);
        let masker = Masker::new();
        masker.register("s3cr3t-value");
        let (report, _) = run(&ws, "lint", &["api"], &masker);
        assert_eq!(report.outcomes[0].output, ["token=****", "project=shop"]);
    }
}
