//! The README's main job, end to end, on a temporary copy of this repository's example monorepo:
//! `cargo xtask deploy dev --local --test` with an emulator of its own (started by `--local`,
//! stopped at the end): the first run deploys and passes; a second run skips everything; an edit
//! to `api` redeploys and retests only `api`; a deploy that breaks what `api`'s acceptance test
//! checks gives exit 1 and leaves the record not passed.
//!
//! The copy lives under this workspace's `target/`, so the example's build and test commands
//! (`cargo test -p shop-acceptance --test acceptance …`) find this cargo workspace by searching
//! upwards and build into its target folder (a `-p` build: its own feature set, so its artifacts
//! sit beside this build's instead of replacing them); a second cargo workspace sharing the
//! target folder would overwrite this build's artifacts.

use std::path::Path;
use std::process::Command;

use crate::common::{clear_env, id_after, row, run};
use ferry_test_support::{TestRepo, workspace_root};

/// A git repository under `target/ferry/e2e/` holding this repository's `ferry.toml` and
/// `services/` as they are in the working tree, except the tests' `Cargo.toml`.
fn example_copy() -> TestRepo {
    let root = workspace_root();
    let out = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z", "ferry.toml", "services"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r = TestRepo::new_in(&root.join("target/ferry/e2e"));
    for rel in String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|s| !s.is_empty())
        // Not the tests' package manifest: cargo, run in the copy's `services/acceptance` (the
        // services' build-dir), would take it for a package outside this workspace; without it
        // cargo finds this workspace there too.
        .filter(|s| *s != "services/acceptance/Cargo.toml")
    {
        let text = std::fs::read_to_string(root.join(rel)).unwrap();
        r.write(rel, &text);
    }
    r.write(".gitignore", "target/\nnode_modules/\n");
    r.commit("example monorepo");
    r
}

fn local(r: &TestRepo, state: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("--root").arg(r.path()).arg("--local").args(args);
    clear_env(&mut c);
    c.env("FERRY_LOCAL_DIR", state);
    run(&mut c, None)
}

/// The endpoint the copy's emulator listens on, from `local env`.
fn endpoint(r: &TestRepo, state: &Path) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("--root")
        .arg(r.path())
        .args(["local", "env"])
        .env("FERRY_LOCAL_DIR", state);
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .find_map(|l| l.strip_prefix("export AWS_ENDPOINT_URL="))
        .unwrap_or_else(|| panic!("no endpoint in {out}"))
        .trim_matches(['\'', '"'])
        .to_string()
}

fn edit(r: &TestRepo, rel: &str, from: &str, to: &str) {
    let text = std::fs::read_to_string(r.path().join(rel)).unwrap();
    assert!(text.contains(from), "{rel} lacks {from:?}");
    r.write(rel, &text.replacen(from, to, 1));
}

#[test]
fn the_main_job_deploys_and_tests_the_examples_then_skips_then_retests_only_what_changed() {
    let r = example_copy();
    let state = tempfile::tempdir().unwrap();
    let _down = ferry_test_support::StopEmulatorOnDrop(state.path().to_path_buf());

    // 1. Everything is created and passes its tests; the api's code uploaded, the site published.
    let (code, out, err) = local(&r, state.path(), &["deploy", "dev", "--test"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for s in [
        "database",
        "events",
        "api",
        "frontend",
        "fulfilment",
        "notifier",
    ] {
        assert!(row(&out, s).contains(" created "), "{out}");
    }
    assert!(row(&out, "fulfilment").contains(" sam "), "the kind: {out}");
    assert!(
        row(&out, "notifier").contains(" serverless "),
        "the kind: {out}"
    );
    // The Serverless service keeps the framework's own stack name, compiled by its CLI.
    assert!(
        err.contains("notifier: deploying stack shop-notifications-dev"),
        "{err}"
    );
    assert!(err.contains("notifier: compiled: 1 archive(s)"), "{err}");
    // Its `npm install` starts with the run, before its dependencies deploy; the compile waits
    // for it rather than running it again, then says the framework's command.
    let started = err
        .find("notifier: started its build `npm install --no-audit --no-fund --prefer-offline` ahead of its compile")
        .unwrap_or_else(|| panic!("{err}"));
    let database = err
        .find("database: deploying stack")
        .unwrap_or_else(|| panic!("{err}"));
    assert!(started < database, "{err}");
    assert!(
        err.contains("notifier: waiting for its build `npm install --no-audit --no-fund --prefer-offline` (started ahead)"),
        "{err}"
    );
    assert!(!err.contains("notifier: running its build"), "{err}");
    assert!(
        err.contains("/node_modules/.bin/serverless package`"),
        "{err}"
    );
    assert!(
        row(&out, "api").contains(" cloudformation "),
        "the kind: {out}"
    );
    // Every package whole, so that a release can be deployed again from the bucket: api's and
    // the SAM service's archives (2), the five templates and package entries (10), frontend's
    // site file (1); notifier's compile goes up when it deploys.
    assert!(err.contains("artifacts: 13 uploaded"), "{err}");
    // The tests' build starts before any stack deploys, and finishes.
    let build = err
        .find("acceptance build started in services/")
        .unwrap_or_else(|| panic!("{err}"));
    let first_stack = err
        .find(": deploying stack")
        .unwrap_or_else(|| panic!("{err}"));
    assert!(build < first_stack, "{err}");
    assert!(err.contains("acceptance build done in"), "{err}");
    // The six services name one build and one build-dir: it runs once.
    assert_eq!(
        err.matches("acceptance build started in").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("acceptance build started in services/acceptance: cargo test"),
        "{err}"
    );
    assert!(
        err.contains("frontend: site: 2 files published to s3://"),
        "{err}"
    );
    for (s, n) in [
        ("database", "1/1"),
        ("events", "2/2"),
        ("api", "1/1"),
        ("frontend", "1/1"),
        ("fulfilment", "2/2"),
        ("notifier", "2/2"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{s} ")) && l.ends_with("passed"));
        assert!(line.is_some_and(|l| l.contains(n)), "{s}: {out}");
    }
    let junit =
        std::fs::read_to_string(r.path().join("target/ferry/reports/acceptance-dev.xml")).unwrap();
    assert!(junit.contains("tests=\"9\" failures=\"0\""), "{junit}");
    assert!(
        junit.contains("name=\"fulfilment::this_stages_order_topic_may_invoke_the_function\""),
        "{junit}"
    );
    assert!(
        junit.contains("name=\"events::a_published_order_event_reaches_the_order_queue\""),
        "{junit}"
    );
    let outputs: serde_json::Value = serde_json::from_slice(
        &std::fs::read(r.path().join("target/ferry/outputs-dev.json")).unwrap(),
    )
    .unwrap();
    let function = outputs["services"]["api"]["FunctionName"]
        .as_str()
        .unwrap()
        .to_string();
    let site_bucket = outputs["services"]["frontend"]["BucketName"]
        .as_str()
        .unwrap()
        .to_string();

    // The published config file holds api's real outputs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = endpoint(&r, state.path());
    let config: serde_json::Value = rt.block_on(async {
        let conf = ferry_credentials::base_config(
            "us-east-1",
            &ferry_credentials::config::Target {
                local_endpoint: Some(url),
            },
        )
        .await;
        let s3 = ferry_package::s3_client(&conf);
        let o = s3
            .get_object()
            .bucket(&site_bucket)
            .key("config.json")
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&o.body.collect().await.unwrap().into_bytes()).unwrap()
    });
    assert_eq!(config["api"]["FunctionName"], function.as_str());

    // 2. Nothing changed: nothing deploys, nothing is tested again.
    let (code, out, err) = local(&r, state.path(), &["deploy", "dev", "--test"]);
    assert_eq!(code, 0, "{err}");
    for s in [
        "database",
        "events",
        "api",
        "frontend",
        "fulfilment",
        "notifier",
    ] {
        assert!(row(&out, s).contains("skipped (up to date)"), "{out}");
    }
    assert!(out.contains("0 stack output reads"), "{out}");
    assert!(out.contains("acceptance: no tests to run"), "{out}");

    // 3. An edit to api's code: api redeploys with a new archive and is retested; frontend
    // receives the same outputs and is skipped by its record.
    edit(
        &r,
        "services/api/src/handler.py",
        "def handle(",
        "# edited\ndef handle(",
    );
    r.commit("edit api");
    let (code, out, err) = local(&r, state.path(), &["deploy", "dev", "--test"]);
    assert_eq!(code, 0, "{err}");
    assert!(row(&out, "api").contains(" updated "), "{out}");
    assert!(
        row(&out, "api").contains("changed: services/api/src/handler.py"),
        "{out}"
    );
    assert!(
        row(&out, "frontend").contains("unchanged since its record"),
        "{out}"
    );
    for s in ["database", "events"] {
        assert!(row(&out, s).contains("skipped (up to date)"), "{out}");
    }
    // api's new archive, template and package entry.
    assert!(err.contains("artifacts: 3 uploaded"), "{err}");
    let tested: Vec<&str> = out.lines().filter(|l| l.ends_with("passed")).collect();
    assert_eq!(tested.len(), 1, "{out}");
    assert!(tested[0].starts_with("api "), "{out}");

    // 3b. The release path of the example: staging with its tests, then prod (promote-from =
    // "staging") takes exactly those packages, every kind included: the SAM service's packaged
    // template, the site, and the Serverless service compiled for prod with archives
    // byte-identical to the ones that passed in staging.
    let (code, out, err) = local(&r, state.path(), &["deploy", "staging", "--test"]);
    assert_eq!(code, 0, "{out}\n{err}");
    // The Serverless service's record keeps the key of the inputs it was compiled from, which
    // the promote compares this checkout with.
    let (code, out, _) = local(
        &r,
        state.path(),
        &[
            "param",
            "get",
            "staging",
            "/ferry/shop/staging/records/notifier",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("\"input_key\":\"ferry.toml:"), "{out}");
    assert!(out.contains(";services/notifier:"), "{out}");
    let (code, out, err) = local(&r, state.path(), &["promote", "staging", "prod", "--test"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for s in [
        "database",
        "events",
        "api",
        "frontend",
        "fulfilment",
        "notifier",
    ] {
        assert!(row(&out, s).contains(" created "), "{out}");
    }
    assert!(
        err.contains("notifier: deploying stack shop-notifications-prod"),
        "{err}"
    );
    // Prod's record keeps the key staging's had (the checkout was checked against it), so a
    // later stage can be promoted from prod's the same way.
    let record_of = |stage: &str| {
        let (code, out, _) = local(
            &r,
            state.path(),
            &[
                "param",
                "get",
                stage,
                &format!("/ferry/shop/{stage}/records/notifier"),
            ],
        );
        assert_eq!(code, 0);
        let record: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        record["input_key"].clone()
    };
    assert!(record_of("prod").is_string());
    assert_eq!(record_of("prod"), record_of("staging"));
    let (code, out, err) = local(&r, state.path(), &["status", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    for row in status["services"].as_array().unwrap() {
        let prod = &row["stages"]["prod"];
        assert_eq!(prod["same_as_previous"], true, "{row}");
        assert_eq!(prod["tests"], "passed", "{row}");
    }

    // 3c. A change to the Serverless service's configuration alone (its archives stay the
    // same) is another package: staging runs it and prod does not. Rolling staging back
    // deploys the stored compile, and its record gets back the input key it was compiled from.
    let passed_key = record_of("staging");
    edit(
        &r,
        "services/notifier/serverless.yml",
        "timeout: 10",
        "timeout: 12",
    );
    r.commit("a longer notifier timeout");
    let (code, out, err) = local(&r, state.path(), &["deploy", "staging", "--test"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(row(&out, "notifier").contains(" updated "), "{out}");
    assert_ne!(record_of("staging"), passed_key);
    let notifier_in_prod = |r: &TestRepo| {
        let (code, out, err) = local(r, state.path(), &["status", "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        let status: serde_json::Value = serde_json::from_str(&out).unwrap();
        let row = status["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["service"] == "notifier")
            .cloned()
            .unwrap();
        row["stages"]["prod"]["same_as_previous"].clone()
    };
    assert_eq!(notifier_in_prod(&r), false);
    // Reviewed and approved into prod: the Serverless service (its parameters read the
    // database's and events' outputs) deploys its stored compile, and prod's record gets the
    // input key staging's has, through the pending review.
    let (code, out, err) = local(
        &r,
        state.path(),
        &["promote", "staging", "prod", "--review"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(row(&out, "notifier").contains("would change"), "{out}");
    assert!(
        out.contains("| modify | NotifyLambdaFunction | AWS::Lambda::Function | no | Timeout |"),
        "{out}"
    );
    let review = id_after(&out, "review: ");
    let (code, out, err) = local(&r, state.path(), &["approve", "prod", &review, "--test"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(row(&out, "notifier").contains(" updated "), "{out}");
    assert_eq!(record_of("prod"), record_of("staging"));
    assert_eq!(notifier_in_prod(&r), true);
    // Staging rolled back gets the stored compile and the key it was compiled from; prod,
    // rolled back, goes to its newest passed release that runs something else: the promote.
    let (code, out, err) = local(&r, state.path(), &["rollback", "staging"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(record_of("staging"), passed_key);
    assert_eq!(notifier_in_prod(&r), false);
    let (code, out, err) = local(&r, state.path(), &["rollback", "prod"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(record_of("prod"), passed_key);
    assert_eq!(notifier_in_prod(&r), true);
    edit(
        &r,
        "services/notifier/serverless.yml",
        "timeout: 12",
        "timeout: 10",
    );
    r.commit("the notifier's timeout back");

    // 4. A deploy that breaks what api's acceptance test checks (the function no longer gets
    // this stage's table): exit 1, the record stays not passed, and the next run tests it again
    // (and fails again) although nothing is redeployed.
    edit(
        &r,
        "services/api/template.yaml",
        "TABLE_NAME: !Ref TableName",
        "TABLE_NAME: orders-of-another-stage",
    );
    r.commit("wire api to the wrong table");
    let (code, out, err) = local(&r, state.path(), &["deploy", "dev", "--test"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(row(&out, "api").contains(" FAILED "), "{out}");
    assert!(
        out.contains("api: deployed (updated), but its acceptance tests FAILED"),
        "{out}"
    );
    assert!(
        row(&out, "frontend").contains("skipped (api failed)"),
        "{out}"
    );
    assert!(out.contains("api failed; its output from the first panic:\n  | thread 'api::the_function_holds_this_stages_table_and_topic'"), "{out}");
    assert!(out.contains("orders-of-another-stage"), "{out}");
    assert!(
        err.contains("the deploy of stage `dev` did not complete"),
        "{err}"
    );
    let (code, out, _) = local(
        &r,
        state.path(),
        &["param", "get", "dev", "/ferry/shop/dev/records/api"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("\"acceptance\":{\"passed\":false"), "{out}");
    let (code, out, _) = local(&r, state.path(), &["test-acceptance", "dev"]);
    assert_eq!(code, 1, "{out}");
    assert!(row(&out, "api").contains("FAILED"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("FAILED") || l.ends_with("passed"))
            .count(),
        1,
        "{out}"
    );

    // 5. The Serverless service renamed in its service.toml keeps its stack, which its framework
    // names, still tagged for the old name: the plan says so, a deploy is refused until
    // `--adopt` takes the stack over, which drops the old name's record; then nothing is left
    // to say about the old name.
    edit(
        &r,
        "services/notifier/service.toml",
        "kind = \"serverless\"",
        "kind = \"serverless\"\nname = \"notifications\"",
    );
    r.commit("the notifier is named notifications");
    let (code, out, err) = local(&r, state.path(), &["plan", "staging"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("still tagged for notifier")
            && said.contains("`deploy staging --adopt` takes the stack over for notifications"),
        "{said}"
    );
    let (code, out, err) = local(&r, state.path(), &["deploy", "staging"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        format!("{out}{err}")
            .contains("`deploy` with --adopt takes the stack over for `notifications`"),
        "{out}\n{err}"
    );
    let record = |name: &str| {
        local(
            &r,
            state.path(),
            &[
                "param",
                "get",
                "staging",
                &format!("/ferry/shop/staging/records/{name}"),
            ],
        )
        .0
    };
    assert_eq!(record("notifier"), 0, "a refused deploy drops nothing");
    let (code, out, err) = local(&r, state.path(), &["deploy", "staging", "--adopt"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        row(&out, "notifications").contains(" updated "),
        "{out}\n{err}"
    );
    assert!(
        err.contains("took stack shop-notifications-staging over from `notifier`"),
        "{err}"
    );
    assert_eq!(record("notifier"), 1, "the old name's record is dropped");
    assert_eq!(record("notifications"), 0);
    let (code, out, err) = local(&r, state.path(), &["plan", "staging"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let said = format!("{out}{err}");
    assert!(
        !said.contains("tagged for notifier") && !said.lines().any(|l| l.starts_with("notifier ")),
        "{said}"
    );

    // 6. A review of a change to every service (a global input): the SAM service, whose
    // parameters wait for the outputs of stacks the review changes, deploys its template
    // unexpanded, which the stack (given the expansion Ferry made here) cannot be compared
    // with. It is said so; before, its resources were listed as replaced and removed.
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write("ferry.toml", &format!("{toml}# reviewed\n"));
    r.commit("a global input changes");
    let (code, out, err) = local(&r, state.path(), &["deploy", "staging", "--review"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        row(&out, "fulfilment").contains("would change (resources not compared)"),
        "{out}"
    );
    let fulfilment = &out[out.find("### fulfilment").expect(&out)..];
    let fulfilment = &fulfilment[..fulfilment[4..]
        .find("### ")
        .map_or(fulfilment.len(), |i| i + 4)];
    assert!(
        fulfilment.contains("Resources and outputs not compared: its SAM template expands only once its parameters resolve")
            && !fulfilment.contains("| **remove** |"),
        "{fulfilment}"
    );
}
