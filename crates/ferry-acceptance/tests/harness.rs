//! The harness on real commands: environment and outputs, libtest cases, failure with masked
//! output, dependents skipped, timeouts, JUnit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_acceptance::{CaseStatus, Harness, Status, junit, passed_output, run, summary};
use ferry_credentials::Masker;
use ferry_graph::Cancel;

fn write(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// Project `acc` with stage `dev`.
fn project(root: &Path) {
    write(
        root,
        "ferry.toml",
        "[project]\nname = \"acc\"\n\n[stages.dev]\nregion = \"eu-west-1\"\n",
    );
}

/// Watches SIGINT in this process, as Ferry's commands do (they stop on Ctrl-C): a command
/// started afterwards gets SIGINT's default action back, also where this test was started with
/// SIGINT ignored (a CI runner's background job), which a child would otherwise inherit.
fn watch_sigint() -> tokio::signal::unix::Signal {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).unwrap()
}

/// The harness of `stage` in `root`, no variables of its own.
fn harness<'a>(
    ws: &'a ferry_manifest::Workspace,
    stage: &'a ferry_manifest::Stage,
    masker: &'a Masker,
    root: &Path,
    builds: Option<&'a ferry_acceptance::Builds>,
) -> Harness<'a> {
    Harness {
        ws,
        stage,
        env: Vec::new(),
        masker,
        work_dir: root.join("target/ferry/acceptance/dev"),
        builds,
    }
}

fn service(root: &Path, name: &str, extra: &str, command: &str) {
    write(root, &format!("services/{name}/t.yaml"), "Resources: {}\n");
    write(
        root,
        &format!("services/{name}/service.toml"),
        &format!(
            "[service]\ntemplate = \"t.yaml\"\n{extra}\n[acceptance]\ncommand = [\"sh\", \"-c\", {command:?}]\ntimeout = 2\nenv = {{ GREETING = \"hi\" }}\n"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_see_the_stage_and_outputs_failures_skip_dependents_and_junit_reports_cases() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root);
    service(
        root,
        "db",
        "",
        "echo \"$FERRY_SERVICE $FERRY_STAGE $FERRY_REGION $GREETING $FERRY_OUTPUT_DB_TABLENAME ${FERRY_OUTPUT_DB_URL-unset}\"; cat \"$FERRY_OUTPUTS_FILE\"; pwd; echo 'test db::write ... ok'; echo 'test db::read ... ok'",
    );
    service(
        root,
        "api",
        "depends-on = [\"db\"]",
        // The secret in the command itself: its failure message (the JUnit report's) is masked.
        "true s3cr3t-token; echo \"token $FERRY_OUTPUT_API_TOKEN\"; echo 'test api::call ... FAILED'; exit 1",
    );
    service(root, "web", "depends-on = [\"api\"]", "echo never");
    service(root, "slow", "", "sleep 30");
    write(root, "services/plain/t.yaml", "Resources: {}\n");
    write(
        root,
        "services/plain/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(root).unwrap();
    let stage = ws.stage("dev").unwrap();
    let masker = Masker::new();
    masker.register("s3cr3t-token");
    let h = Harness {
        env: vec![("AWS_REGION".into(), "eu-west-1".into())],
        ..harness(&ws, &stage, &masker, root, None)
    };
    let outputs = BTreeMap::from([
        (
            "db".to_string(),
            // `Url` and `URL` give one variable, which is set for neither.
            BTreeMap::from([
                ("TableName".to_string(), "orders-dev".to_string()),
                ("Url".to_string(), "https://a".to_string()),
                ("URL".to_string(), "https://b".to_string()),
            ]),
        ),
        (
            "api".to_string(),
            BTreeMap::from([("Token".to_string(), "s3cr3t-token".to_string())]),
        ),
        ("web".to_string(), BTreeMap::new()),
    ]);
    let selected: BTreeSet<String> = ["db", "api", "web", "slow", "plain"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let t0 = Instant::now();
    let report = run(&h, &selected, &outputs, None, &Cancel::new(), &|_| {}).await;
    assert!(t0.elapsed() < Duration::from_secs(20));
    let by = |s: &str| report.outcomes.iter().find(|o| o.service == s).unwrap();

    let db = by("db");
    assert_eq!(db.status, Status::Passed);
    assert_eq!(db.output[0], "db dev eu-west-1 hi orders-dev unset");
    let file: serde_json::Value =
        serde_json::from_str(&db.output[1..db.output.len() - 3].join("\n")).unwrap();
    assert_eq!(
        file,
        serde_json::json!({"db": {"TableName": "orders-dev", "URL": "https://b", "Url": "https://a"}})
    );
    assert!(
        db.output[db.output.len() - 3].ends_with("services/db"),
        "{:?}",
        db.output
    );
    assert_eq!(db.cases.len(), 2);
    assert!(db.cases.iter().all(|c| c.status == CaseStatus::Passed));

    let api = by("api");
    assert!(
        matches!(&api.status, Status::Failed { message } if message.contains("exit status: 1") && message.contains("true ****;")),
        "{:?}",
        api.status
    );
    assert_eq!(api.output[0], "token ****");
    assert_eq!(
        by("web").status,
        Status::Skipped {
            failed_dependency: "api".into()
        }
    );
    assert_eq!(
        by("slow").status,
        Status::TimedOut {
            after: Duration::from_secs(2)
        }
    );
    assert_eq!(by("plain").status, Status::NoTests);
    assert!(!report.succeeded());

    let table = summary(&report).details;
    assert!(
        table.contains("api failed; its last lines:\n  | token ****"),
        "{table}"
    );
    assert!(!table.contains("s3cr3t"), "{table}");

    let xml = junit(&report, "acceptance dev");
    assert!(!xml.contains("s3cr3t"));
    let path = root.join("report.xml");
    std::fs::write(&path, &xml).unwrap();
    // Well-formed, with the expected counts.
    let check = std::process::Command::new("python3")
        .args(["-c", "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(r.get('tests'), r.get('failures'), [(s.get('name'), s.get('tests'), s.get('failures'), s.get('skipped')) for s in r])"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // `web`, skipped as its dependency failed, is skipped, not a failure of its own (one real
    // failure counted as its dependents' too).
    assert_eq!(
        String::from_utf8(check.stdout).unwrap().trim(),
        "5 2 [('db', '2', '0', '0'), ('slow', '1', '1', '0'), ('api', '1', '1', '0'), ('web', '1', '0', '1')]"
    );
    assert!(
        xml.contains("<skipped message=\"skipped (api failed)\"/>"),
        "{xml}"
    );
    // What a passing command printed is in its suite's <system-out> (shown nowhere else in
    // CI); a failure's is in its <failure>, once.
    let suite = |name: &str| {
        let start = xml.find(&format!("<testsuite name=\"{name}\"")).unwrap();
        let len = xml[start..].find("</testsuite>").unwrap();
        xml[start..start + len].to_string()
    };
    assert!(
        suite("db").contains("<system-out>db dev eu-west-1 hi orders-dev unset\n"),
        "{xml}"
    );
    assert!(!suite("api").contains("<system-out>"), "{xml}");
    assert_eq!(suite("api").matches("token ****").count(), 1, "{xml}");
    // `-v` shows it too; the failures' output stays in the summary's details.
    let passed = passed_output(&report);
    assert!(
        passed.starts_with("\ndb passed; it printed:\n  | db dev eu-west-1 hi orders-dev unset\n"),
        "{passed}"
    );
    assert!(!passed.contains("api"), "{passed}");
}

/// Ctrl-C (the run's cancel) stops a running test with everything it started, at once: the
/// outcome is cancelled (nothing is marked, the tests stay owed), a dependent does not start,
/// and no process of the test is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_running_tests_with_what_they_started() {
    let _sigint = watch_sigint();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root);
    // A test runner with a worker of its own, each writing its pid; the timeout (2 s) is far.
    let pids = root.join("pids");
    service(
        root,
        "long",
        "",
        &format!(
            "echo $$ >> {0}; sleep 30 & echo $! >> {0}; wait",
            pids.display()
        ),
    );
    service(root, "after", "depends-on = [\"long\"]", "echo never");
    let ws = ferry_manifest::load(root).unwrap();
    let stage = ws.stage("dev").unwrap();
    let masker = Masker::new();
    let h = harness(&ws, &stage, &masker, root, None);
    let cancel = Cancel::new();
    let selected: BTreeSet<String> = ["long", "after"].iter().map(|s| s.to_string()).collect();
    let canceller = async {
        // Once both processes are running.
        while std::fs::read_to_string(&pids).map_or(0, |p| p.lines().count()) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        Instant::now()
    };
    let no_outputs = BTreeMap::new();
    let (report, cancelled_at) = tokio::join!(
        run(&h, &selected, &no_outputs, None, &cancel, &|_| {}),
        canceller
    );
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(1),
        "stopped at once, not at the timeout"
    );
    let by = |s: &str| report.outcomes.iter().find(|o| o.service == s).unwrap();
    assert_eq!(by("long").status, Status::Cancelled);
    assert_eq!(by("after").status, Status::Cancelled);
    assert!(report.succeeded(), "a cancel is no failure of the tests");
    let record = ferry_records::Record::default();
    assert_eq!(ferry_acceptance::mark(&record, by("long"), 1), None);
    // Both the runner and its worker are gone (a killed child of the test is reaped by the
    // runtime; the worker, orphaned, by init).
    let pids: Vec<String> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let t = Instant::now();
    let alive = |pid: &String| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    while pids.iter().any(alive) && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!pids.iter().any(alive), "left running: {pids:?}");

    // Cancelled before it starts (a Ctrl-C during the stack operation before it): it does not.
    std::fs::remove_file(root.join("pids")).unwrap();
    let long = ws.service("long").unwrap();
    let outcome = h.run_one_unless_cancelled(long, &no_outputs, &cancel).await;
    assert_eq!(outcome.status, Status::Cancelled);
    assert!(!root.join("pids").exists(), "the command never ran");
}

/// A stopped test first gets SIGINT, as from a terminal's Ctrl-C, so that its runner can tear
/// down what it made; one that ignores it is killed after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_test_gets_to_run_its_teardown() {
    let _sigint = watch_sigint();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root);
    let (started, cleaned) = (root.join("started"), root.join("cleaned"));
    service(
        root,
        "tidy",
        "",
        &format!(
            "trap 'echo teardown > {}; exit 130' INT; touch {}; sleep 30 & wait",
            cleaned.display(),
            started.display()
        ),
    );
    service(
        root,
        "stubborn",
        "",
        &format!("trap '' INT; touch {}.2; sleep 30", started.display()),
    );
    let ws = ferry_manifest::load(root).unwrap();
    let stage = ws.stage("dev").unwrap();
    let masker = Masker::new();
    let h = harness(&ws, &stage, &masker, root, None);
    let no_outputs = BTreeMap::new();
    for (name, marker) in [
        ("tidy", started.clone()),
        ("stubborn", root.join("started.2")),
    ] {
        let cancel = Cancel::new();
        let canceller = async {
            while !marker.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            cancel.cancel();
            Instant::now()
        };
        let service = ws.service(name).unwrap();
        let (outcome, at) = tokio::join!(
            h.run_one_unless_cancelled(service, &no_outputs, &cancel),
            canceller
        );
        assert_eq!(outcome.status, Status::Cancelled, "{name}");
        let took = at.elapsed();
        if name == "tidy" {
            assert_eq!(std::fs::read_to_string(&cleaned).unwrap(), "teardown\n");
            assert!(took < Duration::from_secs(2), "{name}: {took:?}");
        } else {
            // Ignoring SIGINT: killed once the grace is over, not at the 2 s timeout's end
            // of a 30 s sleep.
            assert!(
                took >= ferry_acceptance::process::STOP_GRACE - Duration::from_millis(200)
                    && took < ferry_acceptance::process::STOP_GRACE + Duration::from_secs(3),
                "{name}: {took:?}"
            );
        }
    }
}

/// A service with `[acceptance] build`: (name, build script, test script).
fn built_service(root: &Path, name: &str, build: &str, command: &str) {
    write(root, &format!("services/{name}/t.yaml"), "Resources: {}\n");
    write(
        root,
        &format!("services/{name}/service.toml"),
        &format!(
            "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\nbuild = [\"sh\", \"-c\", {build:?}]\ncommand = [\"sh\", \"-c\", {command:?}]\ntimeout = 5\n"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tests_wait_for_their_build_and_a_failed_build_fails_them_with_its_masked_output() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root);
    // The test only passes if the build finished before it started; the build sees no stage
    // variable (it is stage independent) but knows the project.
    built_service(
        root,
        "slowbuild",
        "sleep 1; echo \"$FERRY_PROJECT ${FERRY_STAGE:-none} ${AWS_REGION:-none}\" > built.txt",
        "test \"$(cat built.txt)\" = 'acc none none'",
    );
    built_service(root, "badbuild", "cat compiler.out; exit 3", "echo never");
    write(
        root,
        "services/badbuild/compiler.out",
        "error: cannot compile, token s3cr3t-token\nDB_PASSWORD=late-s3cret-value\n",
    );
    let ws = ferry_manifest::load(root).unwrap();
    let stage = ws.stage("dev").unwrap();
    let masker = Masker::new();
    masker.register("s3cr3t-token");
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let builds = ferry_acceptance::Builds::start(
        &ws,
        ["slowbuild", "badbuild", "plain"],
        &masker,
        move |e| seen.lock().unwrap().push(format!("{e:?}")),
    );
    assert!(!builds.is_empty());
    // A secret read after the build failed (a deploy starts the builds before it reads the
    // stage's parameters) is masked in its output too.
    assert!(matches!(
        builds.wait("badbuild").await,
        Some(ferry_acceptance::Built::Failed { .. })
    ));
    masker.register("late-s3cret-value");
    let h = Harness {
        env: vec![("AWS_REGION".into(), "eu-west-1".into())],
        ..harness(&ws, &stage, &masker, root, Some(&builds))
    };
    let selected = BTreeSet::from(["slowbuild".to_string(), "badbuild".to_string()]);
    let report = run(
        &h,
        &selected,
        &BTreeMap::new(),
        None,
        &Cancel::new(),
        &|_| {},
    )
    .await;
    let by = |n: &str| report.outcomes.iter().find(|o| o.service == n).unwrap();
    assert_eq!(by("slowbuild").status, Status::Passed, "{report:#?}");
    let bad = by("badbuild");
    match &bad.status {
        Status::Failed { message } => assert!(
            message.starts_with("its acceptance build failed: `sh -c ")
                && message.contains("exit status: 3"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        bad.output,
        ["error: cannot compile, token ****", "DB_PASSWORD=****"]
    );
    // A report is masked again with what is known when it is written: a secret read after
    // a test printed it (a stack output echoing one).
    let mut later = report.clone();
    later.outcomes[0]
        .output
        .push("output echoed another-s3cret-value".into());
    masker.register("another-s3cret-value");
    let xml = junit(&later.masked(&masker), "acceptance dev");
    assert!(xml.contains("output echoed ****"), "{xml}");
    assert!(!xml.contains("s3cret"), "{xml}");
    // The test command of a service whose build failed never ran.
    let details = summary(&report).details;
    assert!(
        !details.contains("never") && !details.contains("s3cr3t"),
        "{details}"
    );
    // Each build reported its start and its end.
    let events = events.lock().unwrap().join("\n");
    assert_eq!(events.matches("Started").count(), 2, "{events}");
    assert_eq!(events.matches("Finished").count(), 2, "{events}");
    assert!(!events.contains("s3cr3t"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_naming_one_build_and_build_dir_share_one_build_and_a_missing_folder_fails_theirs()
{
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root);
    // Each run of the build appends a line to `runs` in the folder it ran in.
    let shared = |name: &str, build_dir: &str| {
        write(root, &format!("services/{name}/t.yaml"), "Resources: {}\n");
        write(
            root,
            &format!("services/{name}/service.toml"),
            &format!(
                "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\nbuild = [\"sh\", \"-c\", \"echo x >> runs\"]\nbuild-dir = {build_dir:?}\ncommand = [\"sh\", \"-c\", \"test -f ../tests/runs\"]\n"
            ),
        );
    };
    for name in ["a", "b", "c"] {
        shared(name, "../tests");
    }
    shared("lost", "../absent");
    // A link out of the repository is refused, as a template's is.
    shared("away", "../link");
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.join("services/link")).unwrap();
    std::fs::create_dir_all(root.join("services/tests")).unwrap();
    let ws = ferry_manifest::load(root).unwrap();
    let stage = ws.stage("dev").unwrap();
    let masker = Masker::new();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let builds =
        ferry_acceptance::Builds::start(&ws, ["a", "b", "c", "lost", "away"], &masker, move |e| {
            seen.lock().unwrap().push(e)
        });
    let h = harness(&ws, &stage, &masker, root, Some(&builds));
    let selected: BTreeSet<String> = ["a", "b", "c", "lost", "away"].map(String::from).into();
    let report = run(
        &h,
        &selected,
        &BTreeMap::new(),
        None,
        &Cancel::new(),
        &|_| {},
    )
    .await;
    let by = |n: &str| report.outcomes.iter().find(|o| o.service == n).unwrap();
    for name in ["a", "b", "c"] {
        assert_eq!(by(name).status, Status::Passed, "{report:#?}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("services/tests/runs")).unwrap(),
        "x\n",
        "one build for the three services, in their build-dir"
    );
    match &by("lost").status {
        Status::Failed { message } => assert!(
            message.contains("services/absent does not exist")
                && message.contains("acceptance.build-dir"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    match &by("away").status {
        Status::Failed { message } => assert!(
            message.contains("services/link leads out of the repository"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none(),
        "nothing ran out there"
    );
    let started: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ferry_acceptance::BuildEvent::Started { dir, .. } => Some(dir.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        ["services/tests", "services/absent", "services/link"]
    );
}
