//! `run <script>` through the binary, on small real git repositories: the services a change
//! selects (and their dependents) run their `[scripts]` command in dependency order, a failure
//! is exit 1 with its output, and a stage's variables never reach a script.

use crate::common::{run, xtask};
use ferry_test_support::TestRepo;

/// A repository of three services: `db` ← `api` ← `web`, and `docs` on its own; `lint` prints
/// the service and what it sees, `api`'s fails when its folder holds a file named `broken`.
fn repo() -> (TestRepo, String) {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for (name, deps, lint) in [
        ("db", "", r#"["sh", "-c", "echo linted $FERRY_SERVICE"]"#),
        (
            "api",
            "\"db\"",
            r#"["sh", "-c", "echo stage=${FERRY_STAGE:-none} key=${AWS_ACCESS_KEY_ID:-none} files=${AWS_SHARED_CREDENTIALS_FILE:-none},${AWS_CONFIG_FILE:-none} imds=${AWS_EC2_METADATA_DISABLED:-none} pw=${DB_PASSWORD:-none}; test ! -f broken"]"#,
        ),
        ("web", "\"api\"", r#"["sh", "-c", "echo linted web"]"#),
        ("docs", "", r#"["true"]"#),
    ] {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n");
        r.write(
            &format!("services/{name}/service.toml"),
            &format!(
                "[service]\ntemplate = \"template.yaml\"\ndepends-on = [{deps}]\n\n[scripts]\nlint = {lint}\n"
            ),
        );
    }
    let base = r.commit("services").to_string();
    (r, base)
}

#[test]
fn run_lints_what_changed_and_its_dependents_and_a_failure_is_exit_1_with_its_output() {
    let (r, base) = repo();
    r.write("services/api/handler.py", "x = 1\n");
    let (code, out, err) = run(&mut xtask(&r, &["run", "lint", "--since", &base]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("run lint: 2 service(s): api, web"), "{err}");
    let started = |s: &str| {
        err.find(&format!("{s}: lint started"))
            .unwrap_or(usize::MAX)
    };
    assert!(started("api") < started("web"), "dependencies first: {err}");
    assert!(!err.contains("db: lint"), "db did not change: {err}");
    assert!(out.contains("JUnit report: "), "{out}");
    let junit =
        std::fs::read_to_string(r.path().join("target/ferry/reports/script-lint.xml")).unwrap();
    assert!(
        junit.contains("<testsuites name=\"ferry run lint\" tests=\"2\" failures=\"0\""),
        "{junit}"
    );
    // The report lies under target/ferry/, which never shows in `git status`.
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(r.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(!status.contains("target/"), "{status}");
    // A run with nothing to run leaves no earlier report to be read again: an empty one.
    let (code, out, err) = run(
        &mut xtask(&r, &["run", "lint", "--since", "HEAD", "--service", "db"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let junit =
        std::fs::read_to_string(r.path().join("target/ferry/reports/script-lint.xml")).unwrap();
    assert!(
        junit.contains("<testsuites name=\"ferry run lint\" tests=\"0\" failures=\"0\""),
        "{out}\n{err}\n{junit}"
    );

    // A failing script: exit 1, its output in the summary, its dependents skipped; the stage's
    // variables of the caller (a CI job that deploys) never reach it.
    r.write("services/api/broken", "");
    let (code, out, err) = run(
        xtask(&r, &["run", "lint", "--since", &base])
            .env("FERRY_STAGE", "prod")
            .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
            .env("DB_PASSWORD", "Db-Pa55word-0123456789"),
        None,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    // A secret CI exports to every command (a parameter store's `DB_PASSWORD`) reaches the
    // script, but is masked, by its name, in what is printed and in the report.
    assert!(
        out.contains("api failed; its last lines:\n  | stage=none key=none files=/dev/null,/dev/null imds=true pw=****"),
        "{out}"
    );
    let junit =
        std::fs::read_to_string(r.path().join("target/ferry/reports/script-lint.xml")).unwrap();
    assert!(junit.contains("pw=****"), "{junit}");
    assert!(
        !format!("{out}{err}{junit}").contains("Pa55word"),
        "{out}\n{err}\n{junit}"
    );
    assert!(
        crate::common::row(&out, "web").contains("skipped (api failed)"),
        "{out}"
    );
    assert!(
        err.contains(
            "script `lint` failed for api (and so did not run for web, which depend on them)"
        ),
        "{err}"
    );

    // --service: that service and its dependencies, changed or not; --all: every one.
    let (code, _, err) = run(
        &mut xtask(&r, &["run", "lint", "--service", "web", "--no-dependents"]),
        None,
    );
    assert_eq!(code, 1, "api is still broken: {err}");
    assert!(
        err.contains("run lint: 3 service(s): api, db, web"),
        "{err}"
    );
    std::fs::remove_file(r.path().join("services/api/broken")).unwrap();
    let (code, _, err) = run(&mut xtask(&r, &["run", "lint", "--all"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("run lint: 4 service(s): api, db, docs, web"),
        "{err}"
    );
}

#[test]
fn run_refuses_what_it_cannot_do_saying_what_to_give() {
    let (r, _) = repo();
    let (code, _, err) = run(&mut xtask(&r, &["run", "lint"]), None);
    assert_eq!(code, 2, "a usage error");
    assert!(
        err.contains("say what to run `lint` for: --since <ref>"),
        "{err}"
    );

    let (code, _, err) = run(&mut xtask(&r, &["run", "lnt", "--all"]), None);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "no service defines a `lnt` script (scripts defined: lint); did you mean `lint`?"
        ),
        "{err}"
    );

    let (code, _, err) = run(
        &mut xtask(&r, &["run", "lint", "--all", "--timeout", "0"]),
        None,
    );
    assert_eq!(code, 2, "a usage error");
    assert!(
        err.contains("invalid value '0' for '--timeout <SECS>': 0 is not in 1..=604800"),
        "{err}"
    );

    let (code, _, err) = run(&mut xtask(&r, &["run", "lint", "--service", "nope"]), None);
    assert_eq!(code, 1);
    assert!(err.contains("unknown service `nope`"), "{err}");
    let (code, _, err) = run(&mut xtask(&r, &["run", "lint", "--service", "apj"]), None);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown service `apj`; did you mean `api`?"),
        "{err}"
    );

    let (code, _, err) = run(
        &mut xtask(&r, &["run", "lint", "--since", "no-such-ref", "--strict"]),
        None,
    );
    assert_eq!(code, 2, "--strict is not an option of run: {err}");
    // A misspelt --since counts every service as changed, and says so (it ran them in silence).
    let (code, _, err) = run(
        &mut xtask(&r, &["run", "lint", "--since", "no-such-ref"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: base `no-such-ref` is unusable (")
            && err.contains("service(s) count as changed"),
        "{err}"
    );
}

#[test]
fn an_interrupted_run_stops_its_scripts_and_everything_they_started() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    r.write("services/slow/template.yaml", "Resources: {}\n");
    // The script starts a grandchild and waits: both must go when the run is interrupted; the
    // script first gets SIGINT, as from a terminal's Ctrl-C, and cleans up.
    r.write(
        "services/slow/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[scripts]\ncheck = [\"sh\", \"-c\", \"trap 'echo done > cleaned.txt; exit 130' INT; sleep 300 & echo $! > sleeper.pid; wait\"]\n",
    );
    r.commit("slow");
    for signal in [rustix::process::Signal::INT, rustix::process::Signal::TERM] {
        let pid_file = r.path().join("services/slow/sleeper.pid");
        let cleaned = r.path().join("services/slow/cleaned.txt");
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&cleaned);
        let mut c = xtask(&r, &["run", "check", "--all"]);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        let t0 = std::time::Instant::now();
        while !pid_file.is_file()
            || std::fs::read_to_string(&pid_file)
                .unwrap()
                .trim()
                .is_empty()
        {
            assert!(t0.elapsed().as_secs() < 60, "the script never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let sleeper: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("interrupted ("), "{err}");
        assert!(err.contains("the running scripts were stopped"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&cleaned).ok().as_deref(),
            Some("done\n"),
            "the script's own clean-up ran: {err}"
        );
        // Killed at once; reaped by init soon after (a zombie still answers a test signal).
        let gone = (0..100).any(|_| {
            let pid = rustix::process::Pid::from_raw(sleeper).unwrap();
            let zombie_or_gone = rustix::process::test_kill_process(pid).is_err()
                || std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
                    .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"));
            if !zombie_or_gone {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            zombie_or_gone
        });
        assert!(gone, "the script's grandchild {sleeper} outlived the run");
    }
}
