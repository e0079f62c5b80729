//! The release path end to end: the real binary on temporary git repositories against the
//! shared emulator. dev → staging with tests → promote to prod (exactly staging's bytes, into
//! prod's own bucket) → the gate refusing what did not pass → a failing prod test rolled back by
//! `on-test-failure = "rollback"` → `rollback` after the working tree moved on → a missing stored
//! package refused; a promote of one service checking its dependents with the target's packages.
//!
//! Acceptance tests here are `sh` one-liners that fail when a verdict file
//! `<VERDICTS>/<stage>-<service>` exists, so each test decides which stage's tests fail.

use std::path::Path;
use std::process::Command;

use crate::common::{config, id_after, records, refusing_ssm, row, rt, run, xtask};
use ferry_test_support::TestRepo;

const QUEUE: &str = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueArn:\n    Value: !GetAtt Q.Arn\n";
/// A function whose code is packaged from `src`, reading the queue's ARN.
const APP: &str = "Parameters:\n  Queue: {Type: String}\n  FerryArtifactBucket: {Type: String}\nResources:\n  Role:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument:\n        Version: \"2012-10-17\"\n        Statement:\n          - Effect: Allow\n            Principal: {Service: lambda.amazonaws.com}\n            Action: sts:AssumeRole\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python3.12\n      Handler: app.handle\n      Role: !GetAtt Role.Arn\n      Code: src\n      Environment:\n        Variables:\n          QUEUE: !Ref Queue\nOutputs:\n  FunctionName:\n    Value: !Ref Fn\n";
const TOPIC: &str =
    "Resources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  TopicArn:\n    Value: !Ref T\n";

/// Fails when `$VERDICTS/<stage>-<service>` exists.
const ACCEPTANCE: &str = "\n[acceptance]\ncommand = [\"sh\", \"-c\", \"test ! -e \\\"$VERDICTS/$FERRY_STAGE-$FERRY_SERVICE\\\"\"]\n";

fn bucket(project: &str, stage: &str) -> String {
    format!("{project}-{stage}-artifacts")
}

/// Release `id` of `stage` as stored in the stage's bucket.
fn stored_release(project: &str, stage: &str, id: &str) -> serde_json::Value {
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(async {
        let o = s3
            .get_object()
            .bucket(bucket(project, stage))
            .key(format!("{project}/_releases/{stage}/{id}.json"))
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&o.body.collect().await.unwrap().into_bytes()).unwrap()
    })
}

/// base (a queue), app (code in src/, reads base's output), web (no acceptance tests). prod is
/// protected, promotes from staging, rolls back on test failure, and keeps its own bucket.
fn monorepo(project: &str) -> TestRepo {
    let r = TestRepo::new();
    let stage = |name: &str, extra: &str| {
        format!(
            "[stages.{name}]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{}\"\n{extra}\n",
            bucket(project, name)
        )
    };
    r.write(
        "ferry.toml",
        &(format!(
            "[project]\nname = \"{project}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n{}{}{}",
            stage("dev", ""),
            stage("staging", ""),
            stage(
                "prod",
                "protected = true\npromote-from = \"staging\"\non-test-failure = \"rollback\"\n"
            ),
        ) + &format!(
            "[stages.\"*\"]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{}\"\n\n\
             [ci]\nbranches = {{ main = \"staging\" }}\ntags = {{ \"v*\" = \"prod\" }}\npull-requests = \"pr-{{number}}\"\n",
            bucket(project, "preview")
        )),
    )
    .write(
        "services/base/service.toml",
        &format!("[service]\ntemplate = \"t.yaml\"\n{ACCEPTANCE}"),
    )
    .write("services/base/t.yaml", QUEUE)
    .write(
        "services/app/service.toml",
        &format!(
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${{output:base.QueueArn}}\"\n\n[package.artifacts]\nFn = \"src\"\n{ACCEPTANCE}"
        ),
    )
    .write("services/app/t.yaml", APP)
    .write("services/app/src/app.py", "def handle(e, c):\n    return 1\n")
    .write("services/web/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/web/t.yaml", TOPIC);
    r.commit("services");
    let rt = rt();
    let s3 = ferry_package::s3_client(&config());
    for stage in ["dev", "staging", "prod", "preview"] {
        rt.block_on(s3.create_bucket().bucket(bucket(project, stage)).send())
            .unwrap();
    }
    r
}

/// Deletes, by hand, the package entry `record` names from `stage`'s bucket; its key.
fn delete_stored(project: &str, stage: &str, record: &ferry_records::Record) -> String {
    let key = record.package_key.clone().expect("a stored package");
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(
        s3.delete_object()
            .bucket(bucket(project, stage))
            .key(&key)
            .send(),
    )
    .unwrap();
    key
}

/// The binary with the verdicts folder in its environment.
fn ferry(r: &TestRepo, verdicts: &Path, args: &[&str]) -> Command {
    let mut c = xtask(r, args);
    c.env("VERDICTS", verdicts);
    c
}

fn ok(r: &TestRepo, verdicts: &Path, args: &[&str]) -> (String, String) {
    let (code, out, err) = run(&mut ferry(r, verdicts, args), None);
    assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
    (out, err)
}

fn fails(r: &TestRepo, verdicts: &Path, args: &[&str]) -> (String, String) {
    let (code, out, err) = run(&mut ferry(r, verdicts, args), None);
    assert_eq!(code, 1, "{args:?} must fail\n{out}\n{err}");
    (out, err)
}

fn status(r: &TestRepo, verdicts: &Path) -> serde_json::Value {
    let (out, _) = ok(r, verdicts, &["status", "--format", "json"]);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn promote_deploys_exactly_what_passed_and_the_gate_refuses_the_rest() {
    let p = "rel-promote";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();

    // Every service of a stage where none is deployed (a misspelt one): a CI gate fails on it,
    // naming the stage meant (it tested nothing and passed).
    let (_, err) = fails(&r, v, &["test-acceptance", "stagin", "--all"]);
    assert!(
        err.contains("no service of stage `stagin` is deployed: --all has nothing to test; did you mean `staging`?"),
        "{err}"
    );
    // No report of no tests for a report group to read as a pass.
    let report = r.path().join("target/ferry/reports/acceptance-stagin.xml");
    assert!(!report.exists(), "{}", report.display());
    // `status` of it shows an empty column, and says why.
    let (out, _) = ok(&r, v, &["status", "stagin"]);
    assert!(
        out.contains("stagin: not configured in ferry.toml, so a preview stage, of which nothing is deployed; did you mean `staging`?"),
        "{out}"
    );
    ok(&r, v, &["deploy", "dev", "--test"]);
    // app's tests fail in staging.
    std::fs::write(v.join("staging-app"), "").unwrap();
    let (out, _) = fails(&r, v, &["deploy", "staging", "--test"]);
    assert!(row(&out, "app").contains("FAILED"), "{out}");

    // Neither promote nor a plain deploy of prod takes what did not pass; nothing deploys.
    let (_, err) = fails(&r, v, &["promote", "staging", "prod"]);
    assert!(
        err.contains("app: its acceptance tests failed in `staging`"),
        "{err}"
    );
    assert!(!err.contains("deploying stack"), "{err}");
    let (_, err) = fails(&r, v, &["deploy", "prod"]);
    assert!(
        err.contains("app: its acceptance tests failed in `staging`")
            && err.contains("--override-gate"),
        "{err}"
    );
    assert!(!err.contains("deploying stack"), "{err}");
    assert!(records(p, "prod").is_empty());
    let s = status(&r, v);
    let app = &s["services"][0];
    assert_eq!(app["service"], "app");
    assert_eq!(app["stages"]["staging"]["tests"], "failed");
    assert_eq!(app["stages"]["prod"], serde_json::Value::Null);

    // Fixed (the test's environment): test-acceptance passes, promote takes it.
    std::fs::remove_file(v.join("staging-app")).unwrap();
    ok(&r, v, &["test-acceptance", "staging"]);
    let (out, err) = ok(&r, v, &["promote", "staging", "prod", "--test"]);
    for s in ["base", "app", "web"] {
        assert!(row(&out, s).contains("created"), "{out}\n{err}");
    }
    assert!(out.contains("release: "), "{out}");

    // prod holds the same template and archive bytes as staging, in its own bucket.
    let (staging, prod) = (records(p, "staging"), records(p, "prod"));
    for s in ["base", "app", "web"] {
        assert_eq!(staging[s].template_hash, prod[s].template_hash, "{s}");
        assert_eq!(staging[s].artifacts, prod[s].artifacts, "{s}");
        assert_eq!(prod[s].commit, staging[s].commit);
        // web has no acceptance tests: nothing marks it.
        let tested = (s != "web").then_some(true);
        assert_eq!(prod[s].acceptance.as_ref().map(|a| a.passed), tested, "{s}");
    }
    let key = &prod["app"].artifacts["Fn"];
    let s3 = ferry_package::s3_client(&config());
    let rt = rt();
    let get = |b: String| {
        rt.block_on(async {
            let o = s3.get_object().bucket(b).key(key).send().await.unwrap();
            o.body.collect().await.unwrap().into_bytes().to_vec()
        })
    };
    let (in_staging, in_prod) = (get(bucket(p, "staging")), get(bucket(p, "prod")));
    assert_eq!(in_staging, in_prod);
    assert!(key.contains(&ferry_package::sha256_hex(&in_prod)));

    // Again: everything is at its package, nothing deploys.
    let (out, err) = ok(&r, v, &["promote", "staging", "prod"]);
    assert!(out.contains("nothing to promote"), "{out}");
    assert!(!err.contains("deploying stack"), "{err}");
    let s = status(&r, v);
    for row in s["services"].as_array().unwrap() {
        assert_eq!(row["stages"]["prod"]["same_as_previous"], true, "{row}");
    }

    // A new commit of app that staging has not seen: the gate refuses it; an override with a
    // reason deploys it and the release says who and why.
    r.write(
        "services/app/src/app.py",
        "def handle(e, c):\n    return 2\n",
    );
    r.commit("app 2");
    let (_, err) = fails(&r, v, &["deploy", "prod"]);
    assert!(
        err.contains("app: `staging` has another package of it"),
        "{err}"
    );
    let (out, err) = ok(
        &r,
        v,
        &[
            "deploy",
            "prod",
            "--override-gate",
            "hotfix INC-1, checked by hand",
        ],
    );
    assert!(err.contains("gate OVERRIDDEN"), "{err}");
    assert!(row(&out, "app").contains("updated"), "{out}");
    let release = stored_release(p, "prod", &id_after(&out, "release: "));
    assert_eq!(
        release["gate_override"]["reason"],
        "hotfix INC-1, checked by hand"
    );
    assert_eq!(release["gate_override"]["services"][0], "app");
    assert!(
        release["gate_override"]["by"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:")
    );
}

#[test]
fn a_promote_whose_tests_never_ran_runs_them_when_asked_again() {
    let p = "rel-owed";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    // Promoted without its tests (as a promote killed while they ran leaves it).
    ok(&r, v, &["promote", "staging", "prod"]);
    let prod = records(p, "prod");
    assert_eq!(prod["app"].acceptance, None);

    // Nothing left to deploy: without --test it says what is owed, with --test it runs it.
    let (out, err) = ok(&r, v, &["promote", "staging", "prod"]);
    assert!(out.contains("nothing to promote"), "{out}");
    assert!(
        out.contains("their acceptance tests in `prod` have not passed yet (app, base)"),
        "{out}\n{err}"
    );
    std::fs::write(v.join("prod-app"), "").unwrap();
    let (out, err) = fails(&r, v, &["promote", "staging", "prod", "--test"]);
    assert!(!err.contains("deploying stack"), "{err}");
    assert!(out.contains("running those of app, base"), "{out}\n{err}");
    let prod = records(p, "prod");
    assert_eq!(
        prod["app"].acceptance.as_ref().map(|a| a.passed),
        Some(false)
    );
    assert_eq!(
        prod["base"].acceptance.as_ref().map(|a| a.passed),
        Some(true)
    );
    std::fs::remove_file(v.join("prod-app")).unwrap();
    let (out, _) = ok(&r, v, &["promote", "staging", "prod", "--test"]);
    assert!(out.contains("running those of app"), "{out}");
    assert_eq!(
        records(p, "prod")["app"]
            .acceptance
            .as_ref()
            .map(|a| a.passed),
        Some(true)
    );
    // Then nothing is owed.
    let (out, _) = ok(&r, v, &["promote", "staging", "prod", "--test"]);
    assert!(!out.contains("running those of"), "{out}");
}

/// A promote whose tests never finished (cancelled during them), retried with `--test`: the
/// package it finds deployed fails its owed tests, and on-test-failure = "rollback" takes it
/// back, as the first run would have. Before, the retry only tested, and prod kept the package
/// whose tests failed there.
#[test]
fn a_retried_promote_whose_owed_tests_fail_rolls_back() {
    let p = "rel-owed-rollback";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    ok(&r, v, &["promote", "staging", "prod", "--test"]);
    let first = records(p, "prod");
    r.write(
        "services/app/src/app.py",
        "def handle(e, c):\n    return 2\n",
    );
    r.commit("app 2");
    ok(&r, v, &["deploy", "staging", "--test"]);
    // Promoted, its tests never run (as a promote cancelled while they ran leaves it).
    ok(&r, v, &["promote", "staging", "prod"]);
    assert_ne!(records(p, "prod")["app"].artifacts, first["app"].artifacts);
    std::fs::write(v.join("prod-app"), "").unwrap();
    let (out, err) = fails(&r, v, &["promote", "staging", "prod", "--test"]);
    assert!(out.contains("running those of app"), "{out}\n{err}");
    assert!(
        err.contains("on-test-failure = \"rollback\": rolled app back to release "),
        "{out}\n{err}"
    );
    let after = records(p, "prod");
    assert_eq!(after["app"].artifacts, first["app"].artifacts);
    assert_eq!(after["base"], first["base"], "base was not touched");
}

#[test]
fn a_promote_that_deploys_something_else_still_runs_the_tests_owed() {
    let p = "rel-owed-more";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    ok(&r, v, &["promote", "staging", "prod"]);
    assert_eq!(records(p, "prod")["base"].acceptance, None);
    // web (no tests) changes and passes staging; the promote deploys it and then runs the
    // tests base and app still owe in prod.
    r.write(
        "services/web/t.yaml",
        &TOPIC.replace("T:", "T2:").replace("!Ref T", "!Ref T2"),
    );
    r.commit("web 2");
    ok(&r, v, &["deploy", "staging", "--test"]);
    let (out, err) = ok(&r, v, &["promote", "staging", "prod", "--test"]);
    assert!(row(&out, "web").contains("updated"), "{out}\n{err}");
    let prod = records(p, "prod");
    for s in ["base", "app"] {
        assert_eq!(
            prod[s].acceptance.as_ref().map(|a| a.passed),
            Some(true),
            "{s}: {out}\n{err}"
        );
    }
}

#[test]
fn a_promote_tests_what_it_owes_before_the_dependents_it_deploys() {
    let p = "rel-owed-promote";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    // Promoted without its tests (as a promote killed while they ran leaves it).
    ok(&r, v, &["promote", "staging", "prod"]);
    assert_eq!(records(p, "prod")["base"].acceptance, None);
    // app changes and passes staging; base, which app reads, fails its owed tests in prod: the
    // promote tests base first, and app is not deployed on it.
    r.write(
        "services/app/src/app.py",
        "def handle(e, c):\n    return 2\n",
    );
    r.commit("app 2");
    ok(&r, v, &["deploy", "staging", "--test"]);
    std::fs::write(v.join("prod-base"), "").unwrap();
    let (out, err) = fails(&r, v, &["promote", "staging", "prod", "--test"]);
    assert!(row(&out, "base").contains("FAILED"), "{out}\n{err}");
    assert!(row(&out, "app").contains("skipped (base failed)"), "{out}");
    assert!(
        !err.contains("deploying stack rel-owed-promote-app"),
        "{err}"
    );
    assert_eq!(
        records(p, "prod")["base"]
            .acceptance
            .as_ref()
            .map(|a| a.passed),
        Some(false)
    );
    // Fixed: base passes first, then app deploys and is tested.
    std::fs::remove_file(v.join("prod-base")).unwrap();
    let (out, err) = ok(&r, v, &["promote", "staging", "prod", "--test"]);
    assert!(
        out.contains("the acceptance tests it owed passed"),
        "{out}\n{err}"
    );
    assert!(row(&out, "app").contains("updated"), "{out}\n{err}");
    let prod = records(p, "prod");
    for s in ["base", "app"] {
        assert_eq!(
            prod[s].acceptance.as_ref().map(|a| a.passed),
            Some(true),
            "{s}"
        );
    }
}

#[test]
fn owed_tests_run_before_the_dependents_that_deploy() {
    let p = "rel-owed-order";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    // base's tests fail: app, which reads base, is not deployed on it.
    std::fs::write(v.join("staging-base"), "").unwrap();
    let (out, _) = fails(&r, v, &["deploy", "staging", "--test"]);
    assert!(row(&out, "base").contains("FAILED"), "{out}");
    assert!(row(&out, "app").contains("skipped (base failed)"), "{out}");

    // app changes; base does not, and its tests are owed: they run first, fail again, and app
    // still waits.
    r.write(
        "services/app/src/app.py",
        "def handle(e, c):\n    return 2\n",
    );
    r.commit("app 2");
    let (out, err) = fails(&r, v, &["deploy", "staging", "--test"]);
    assert!(
        row(&out, "base").contains("FAILED")
            && out.contains("up to date since its last deploy, but its acceptance tests FAILED"),
        "{out}\n{err}"
    );
    assert!(row(&out, "app").contains("skipped (base failed)"), "{out}");
    assert!(!err.contains("deploying stack rel-owed-order-app"), "{err}");

    // Fixed: base's owed tests pass, then app deploys and is tested.
    std::fs::remove_file(v.join("staging-base")).unwrap();
    let (out, _) = ok(&r, v, &["deploy", "staging", "--test"]);
    assert!(
        row(&out, "base").contains("skipped (up to date)")
            && out.contains("the acceptance tests it owed passed"),
        "{out}"
    );
    assert!(row(&out, "app").contains("created"), "{out}");
    let staging = records(p, "staging");
    for s in ["base", "app"] {
        assert_eq!(
            staging[s].acceptance.as_ref().map(|a| a.passed),
            Some(true),
            "{s}"
        );
    }
}

/// `approve --test` runs the tests owed in the stage (an approval that deployed without its
/// tests) where their services stand in the graph, before the dependents it deploys, as
/// `deploy --test` and `promote --test` do. Before, it deployed the dependents on a dependency
/// whose tests never ran, and left them owed.
#[test]
fn an_approval_with_tests_runs_the_tests_owed_before_the_dependents() {
    let p = "rel-appr-owed";
    let r = monorepo(p);
    r.write(
        "ferry.toml",
        &std::fs::read_to_string(r.path().join("ferry.toml"))
            .unwrap()
            .replace(
                &format!("artifact-bucket = \"{}\"\n", bucket(p, "dev")),
                &format!(
                    "artifact-bucket = \"{}\"\napproval = true\n",
                    bucket(p, "dev")
                ),
            ),
    );
    r.commit("dev needs approval");
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    // base alone approved without --test: it runs untested (as after an approval stopped
    // before its tests).
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review", "--service", "base"]);
    let first = id_after(&out, "review: ");
    ok(&r, v, &["approve", "dev", &first]);
    assert_eq!(records(p, "dev")["base"].acceptance, None);
    // The checkout moves on (base's record is of the commit before): its tests are still
    // owed, as this checkout holds what its package was made from.
    r.write("notes.txt", "moved on\n");
    r.commit("moved on");

    // app's review; base's tests are owed, fail, and app is not deployed on it.
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let second = id_after(&out, "review: ");
    std::fs::write(v.join("dev-base"), "").unwrap();
    let (out, err) = fails(&r, v, &["approve", "dev", &second, "--test"]);
    assert!(row(&out, "base").contains("FAILED"), "{out}\n{err}");
    assert!(
        row(&out, "app").contains("skipped (base failed)"),
        "{out}\n{err}"
    );
    assert!(!err.contains("deploying stack rel-appr-owed-app"), "{err}");

    // Passing, base's owed tests run first, then app deploys and is tested (reviewed again:
    // the approval deployed web, which nothing holds back).
    std::fs::remove_file(v.join("dev-base")).unwrap();
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let third = id_after(&out, "review: ");
    let (out, err) = ok(&r, v, &["approve", "dev", &third, "--test"]);
    assert!(
        out.contains("the acceptance tests it owed passed"),
        "{out}\n{err}"
    );
    assert!(row(&out, "app").contains("created"), "{out}\n{err}");
    let tested = err.find("base: running its acceptance tests").unwrap();
    let deployed = err.find("app: deploying stack").unwrap();
    assert!(tested < deployed, "{err}");
    let dev = records(p, "dev");
    for s in ["base", "app"] {
        assert_eq!(
            dev[s].acceptance.as_ref().map(|a| a.passed),
            Some(true),
            "{s}"
        );
    }
}

/// A stack of `project`'s in the emulator.
fn stack(project: &str, service: &str, stage: &str) -> ferry_stacks::StackInfo {
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    rt().block_on(engine.describe(&format!("{project}-{service}-{stage}")))
        .unwrap()
        .unwrap_or_else(|| panic!("no stack of {service} in {stage}"))
}

#[test]
fn promoting_one_service_checks_its_dependents_with_the_packages_the_target_runs() {
    let p = "rel-dependents";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    ok(&r, v, &["promote", "staging", "prod"]);
    let before = records(p, "prod");
    let old_queue = stack(p, "base", "prod").outputs["QueueArn"].clone();
    // base's queue is replaced in staging, which changes the ARN app receives.
    let new_base = |n: &str, message: &str| {
        r.write(
            "services/base/t.yaml",
            &QUEUE
                .replace("Q:", &format!("{n}:"))
                .replace("Q.Arn", &format!("{n}.Arn")),
        );
        r.commit(message);
        ok(&r, v, &["deploy", "staging", "--test"]);
    };
    let promote_base = || ok(&r, v, &["promote", "staging", "prod", "--service", "base"]);
    // base was promoted, and app reported as not checked, for `why`, and not deployed.
    let app_not_checked = |(out, err): (String, String), why: &str| {
        assert!(row(&out, "base").contains("updated"), "{out}\n{err}");
        assert!(
            err.contains(&format!(
                "app: skipped (a dependent of what is promoted, not checked: {why}"
            )),
            "{err}"
        );
        assert!(!out.lines().any(|l| l.starts_with("app ")), "{out}");
    };
    new_base("Q2", "base 2");

    let (out, err) = ok(
        &r,
        v,
        &["promote", "staging", "prod", "--service", "base", "--test"],
    );
    assert!(row(&out, "base").contains("updated"), "{out}\n{err}");
    // app redeploys for its new parameter, with the package prod runs.
    assert!(row(&out, "app").contains("updated"), "{out}\n{err}");
    assert!(row(&out, "app").contains("dependent of base"), "{out}");
    let after = records(p, "prod");
    assert_ne!(after["base"].commit, before["base"].commit);
    assert_eq!(after["app"].commit, before["app"].commit);
    assert_eq!(after["app"].artifacts, before["app"].artifacts);
    assert_eq!(after["app"].template_hash, before["app"].template_hash);
    assert_eq!(after["web"].commit, before["web"].commit);
    let queue = stack(p, "base", "prod").outputs["QueueArn"].clone();
    assert_ne!(queue, old_queue);
    assert_eq!(stack(p, "app", "prod").parameters["Queue"], queue);

    // Nothing left to do: base is at staging's package, app receives what it has.
    let (out, err) = promote_base();
    assert!(out.contains("nothing to promote"), "{out}");
    assert!(!err.contains("deploying stack"), "{err}");

    // A dependent whose package prod does not keep (a record without one) cannot be redeployed
    // as it runs: the promote says it was not checked instead of passing over it in silence.
    let mut app = after["app"].clone();
    app.package_key = None;
    let store = ferry_records::RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "prod",
        &format!("/ferry/{p}/prod"),
    );
    rt().block_on(store.write(&app)).unwrap();
    new_base("Q3", "base 3");
    app_not_checked(
        promote_base(),
        "its package in `prod` is not stored; promote it or deploy it to check it)",
    );
    rt().block_on(store.write(&after["app"])).unwrap();

    // This checkout holds a newer app than prod runs: its parameters and tests here are not
    // those of prod's package, so it is reported, not redeployed with them.
    r.write(
        "services/app/src/app.py",
        "def handle(e, c):\n    return 2\n",
    );
    r.commit("app 2");
    new_base("Q4", "base 4");
    app_not_checked(
        promote_base(),
        "the package `prod` runs was made from other inputs (these inputs differ in this checkout: services/app); promote it or deploy it to check it)",
    );
    assert_eq!(records(p, "prod")["app"].commit, before["app"].commit);

    // A checkout without history (a pipeline's source archive) promotes what it can and says
    // that it could not check the dependent.
    new_base("Q5", "base 5");
    std::fs::rename(r.path().join(".git"), r.path().join(".git-away")).unwrap();
    let promoted = run(
        &mut ferry(&r, v, &["promote", "staging", "prod", "--service", "base"]),
        None,
    );
    std::fs::rename(r.path().join(".git-away"), r.path().join(".git")).unwrap();
    let (code, out, err) = promoted;
    assert_eq!(code, 0, "{out}\n{err}");
    app_not_checked(
        (out, err),
        "this checkout's history cannot be read to compare its inputs with those its package was made from (",
    );

    // app's package gone from prod's bucket (deleted by hand): reported, not a failed promote.
    // (prod first takes this checkout's app, so that app is checked at all.)
    ok(&r, v, &["promote", "staging", "prod"]);
    let key = delete_stored(p, "prod", &records(p, "prod")["app"]);
    new_base("Q6", "base 6");
    app_not_checked(
        promote_base(),
        &format!(
            "its package in `prod` is gone from the bucket (s3://{}/{key} is missing); promote it or deploy it to check it)",
            bucket(p, "prod")
        ),
    );
}

#[test]
fn a_failed_prod_test_rolls_back_and_rollback_works_after_the_tree_moved_on() {
    let p = "rel-rollback";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    let (out, _) = ok(&r, v, &["promote", "staging", "prod", "--test"]);
    let first = records(p, "prod");
    assert!(out.contains("release: "), "{out}");

    // A new app passes in staging but fails in prod: prod goes back to the first release.
    r.write(
        "services/app/src/app.py",
        "def handle(e, c):\n    return 2\n",
    );
    r.commit("app 2");
    ok(&r, v, &["deploy", "staging", "--test"]);
    std::fs::write(v.join("prod-app"), "").unwrap();
    let (out, err) = fails(&r, v, &["promote", "staging", "prod", "--test"]);
    assert!(
        err.contains("on-test-failure = \"rollback\": rolled app back to release "),
        "{out}\n{err}"
    );
    let after = records(p, "prod");
    assert_eq!(after["app"].template_hash, first["app"].template_hash);
    assert_eq!(after["app"].artifacts, first["app"].artifacts);
    assert_eq!(after["base"], first["base"], "base was not touched");
    let s = status(&r, v);
    let prod = s["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "prod")
        .unwrap();
    assert_eq!(prod["kind"], "rollback", "{prod}");
    std::fs::remove_file(v.join("prod-app")).unwrap();

    // The tree moves on: app reads a parameter its first release does not declare.
    r.write(
        "services/app/service.toml",
        &format!(
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${{output:base.QueueArn}}\"\nLevel = \"3\"\n\n[package.artifacts]\nFn = \"src\"\n{ACCEPTANCE}"
        ),
    );
    r.write(
        "services/app/t.yaml",
        &APP.replace(
            "  Queue: {Type: String}\n",
            "  Queue: {Type: String}\n  Level: {Type: String}\n",
        ),
    );
    r.commit("app 3");
    ok(&r, v, &["deploy", "staging", "--test"]);
    ok(&r, v, &["promote", "staging", "prod", "--test"]);
    let third = records(p, "prod");
    assert_ne!(third["app"].template_hash, first["app"].template_hash);
    // Back to the newest release before this one whose tests passed: the first promote.
    let (out, err) = ok(&r, v, &["rollback", "prod"]);
    assert!(out.contains("rolled app back to release "), "{out}\n{err}");
    assert!(!err.contains("base: deploying"), "only what differs: {err}");
    assert_eq!(
        records(p, "prod")["app"].template_hash,
        first["app"].template_hash
    );
    // `--to` the newer release again (a rollback gone too far) is said as what it is, then
    // back once more.
    let newer = third["app"].release.clone().unwrap();
    let (out, err) = ok(&r, v, &["rollback", "prod", "--to", &newer]);
    assert!(
        out.contains(&format!("rolled app forward to release {newer}")),
        "{out}\n{err}"
    );
    let older = first["app"].release.clone().unwrap();
    let (out, err) = ok(&r, v, &["rollback", "prod", "--to", &older]);
    assert!(
        out.contains(&format!("rolled app back to release {older}")),
        "{out}\n{err}"
    );

    // Bad input: a release that does not exist, an id that is not one; nothing deployed.
    let (_, err) = fails(
        &r,
        v,
        &["rollback", "prod", "--to", "20200101-000000.000-0000000"],
    );
    assert!(
        err.contains("stage `prod` has no release `20200101-000000.000-0000000`"),
        "{err}"
    );
    let (_, err) = fails(&r, v, &["rollback", "prod", "--to", "../staging/x"]);
    assert!(err.contains("is not a release id"), "{err}");
    // A long one is quoted in part, not echoed whole.
    for long in [
        "x".repeat(3000),
        format!("20200101-000000.000-{}", "0".repeat(3000)),
    ] {
        let (_, err) = fails(&r, v, &["rollback", "prod", "--to", &long]);
        assert!(err.contains(" more characters)"), "{err}");
        assert!(err.len() < 1500, "{err}");
    }

    // A stored package gone from the bucket: refused by name before anything deploys.
    let key = delete_stored(p, "prod", &third["app"]);
    let to = third["app"].release.clone().unwrap();
    let (_, err) = fails(&r, v, &["rollback", "prod", "--to", &to]);
    assert!(err.contains(&format!("{key} is missing")), "{err}");
    assert!(!err.contains("deploying stack"), "{err}");
}

/// The binary as a CodeBuild build started by `trigger` would run it.
fn in_codebuild(r: &TestRepo, verdicts: &Path, trigger: &str, args: &[&str]) -> (String, String) {
    let mut c = ferry(r, verdicts, args);
    c.env("CODEBUILD_BUILD_ID", "rel:1")
        .env("CODEBUILD_WEBHOOK_TRIGGER", trigger);
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 0, "{trigger} {args:?}\n{out}\n{err}");
    (out, err)
}

/// A CI build of an older commit than a stage runs (an old build run again) does not take the
/// stage back; by hand, the checkout deploys as chosen. Before, CI deployed it, with the reason
/// "history diverged".
#[test]
fn a_ci_build_of_an_older_commit_does_not_take_the_stage_back() {
    let p = "rel-behind";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let old = r.head().to_string();
    r.write("services/base/t.yaml", &format!("{QUEUE}# v2\n"));
    let new = r.commit("base v2").to_string();
    in_codebuild(&r, v, "branch/main", &["deploy", "--from-ci"]);
    assert_eq!(records(p, "staging")["base"].commit, new);
    ferry_test_support::git(r.path(), &["checkout", "--quiet", &old]);
    let mut c = ferry(&r, v, &["deploy", "--from-ci"]);
    c.env("CODEBUILD_BUILD_ID", "rel:2")
        .env("CODEBUILD_WEBHOOK_TRIGGER", "branch/main")
        .env("CODEBUILD_RESOLVED_SOURCE_VERSION", &old);
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("error: stage `staging` runs newer code than this build's commit for ")
            && err.contains(&format!("base (runs {})", &new[..12]))
            && err.contains("a CI build of an older commit (an old build run again?) does not take a stage back; nothing was deployed"),
        "{err}"
    );
    assert!(!err.contains("deploying stack"), "{err}");
    assert_eq!(records(p, "staging")["base"].commit, new);
    // In a shallow clone of the old commit, the newer one is hidden: nothing tells the build
    // it is older, so it does not deploy either. (Before, it deployed, "treated as changed".)
    let shallow = TestRepo::new();
    let url = format!("file://{}", r.path().display());
    let sh = |args: &[&str]| ferry_test_support::git(shallow.path(), args);
    sh(&["fetch", "--quiet", "--depth", "1", &url, &old]);
    sh(&["checkout", "--quiet", "FETCH_HEAD"]);
    let mut c = ferry(&shallow, v, &["deploy", "--from-ci"]);
    c.env("CODEBUILD_BUILD_ID", "rel:3")
        .env("CODEBUILD_WEBHOOK_TRIGGER", "branch/main")
        .env("CODEBUILD_RESOLVED_SOURCE_VERSION", &old);
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "error: stage `staging` runs, for base (runs {}), ",
            &new[..12]
        )) && err.contains("a commit this shallow clone's history ends before")
            && err.contains("`fetch-depth: 0`"),
        "{err}"
    );
    assert!(!err.contains("deploying stack"), "{err}");
    assert_eq!(records(p, "staging")["base"].commit, new);
    // By hand it deploys what is checked out, and the plan says why.
    let (_, err) = ok(&r, v, &["deploy", "staging"]);
    assert!(err.contains("is older than base"), "{err}");
    assert_eq!(records(p, "staging")["base"].commit, old);
}

#[test]
fn the_ci_event_chooses_the_stage() {
    let p = "rel-ci";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    // A push to main deploys staging; a tag promotes staging to prod; a pull request deploys
    // its preview stage.
    let (_, err) = in_codebuild(&r, v, "branch/main", &["deploy", "--from-ci", "--test"]);
    assert!(
        err.contains(
            "ci: stage `staging` from [ci] branches \"main\" = \"staging\" (CODEBUILD_WEBHOOK_TRIGGER=branch/main)"
        ),
        "{err}"
    );
    assert_eq!(records(p, "staging").len(), 3);
    let (out, err) = in_codebuild(&r, v, "tag/v1.0.0", &["promote", "--from-ci"]);
    assert!(
        err.contains("ci: stage `prod` from [ci] tags \"v*\""),
        "{err}"
    );
    assert!(row(&out, "app").contains("created"), "{out}");
    let (out, err) = in_codebuild(&r, v, "pr/7", &["deploy", "--from-ci"]);
    assert!(
        err.contains("ci: stage `pr-7` from [ci] pull-requests"),
        "{err}"
    );
    assert!(row(&out, "app").contains("created"), "{out}");
    // Its own preview's tests run in its build (before, every pull-request build skipped
    // `test-acceptance`, exit 0, saying it deployed nothing); another stage's are skipped, as
    // its deploy only plans.
    std::fs::write(v.join("pr-7-app"), "").unwrap();
    let mut c = ferry(&r, v, &["test-acceptance", "pr-7"]);
    c.env("CODEBUILD_BUILD_ID", "rel:2")
        .env("CODEBUILD_WEBHOOK_TRIGGER", "pr/7");
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(row(&out, "app").contains("FAILED"), "{out}");
    std::fs::remove_file(v.join("pr-7-app")).unwrap();
    let (out, _) = in_codebuild(&r, v, "pr/7", &["test-acceptance", "pr-7"]);
    assert!(row(&out, "app").contains("passed"), "{out}");
    let (out, _) = in_codebuild(&r, v, "pr/7", &["test-acceptance", "staging"]);
    assert!(
        out.contains("acceptance tests of `staging` skipped: this is a pull-request build, which deploys to no stage but its own preview, `pr-7`"),
        "{out}"
    );
    // Without --from-ci a pull request's build only plans.
    let (out, err) = in_codebuild(&r, v, "pr/8", &["deploy", "pr-8"]);
    assert!(!err.contains("deploying stack"), "{out}\n{err}");
    // A pull request whose number cannot be read gets no stage: `pr/-1` would be `pr-1`'s.
    let mut c = ferry(&r, v, &["deploy", "--from-ci"]);
    c.env("CODEBUILD_BUILD_ID", "rel:2")
        .env("CODEBUILD_WEBHOOK_TRIGGER", "pr/-1");
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("but `-1` is no pull request number") && !err.contains("deploying stack"),
        "{err}"
    );
    // A branch no rule names: refused, saying what to add.
    let mut c = ferry(&r, v, &["deploy", "--from-ci"]);
    c.env("CODEBUILD_BUILD_ID", "rel:2")
        .env("CODEBUILD_WEBHOOK_TRIGGER", "branch/feature/x");
    let (code, _, err) = run(&mut c, None);
    assert_eq!(code, 1);
    assert!(
        err.contains("no [ci] rule of ferry.toml matches branch `feature/x`"),
        "{err}"
    );
}

#[test]
fn a_review_is_approved_once_and_deploys_exactly_what_it_showed() {
    let p = "rel-review";
    let r = monorepo(p);
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &toml.replace(
            "on-test-failure = \"rollback\"\n",
            "on-test-failure = \"rollback\"\napproval = true\n",
        ),
    );
    r.commit("prod needs approval");
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);

    // prod takes nothing without a review, and a review deploys nothing.
    let (_, err) = fails(&r, v, &["promote", "staging", "prod"]);
    assert!(err.contains("needs review and approval"), "{err}");
    let (out, err) = ok(&r, v, &["promote", "staging", "prod", "--review"]);
    assert!(!err.contains("deploying stack"), "{err}");
    assert!(row(&out, "app").contains("would create"), "{out}");
    assert!(out.contains("## Ferry review: stage `prod`"), "{out}");
    let first = id_after(&out, "review: ");
    assert!(records(p, "prod").is_empty());
    let md = std::fs::read_to_string(
        r.path()
            .join(format!("target/ferry/reports/review-prod-{first}.md")),
    )
    .unwrap();
    assert!(
        md.contains("| add | Fn | AWS::Lambda::Function | no |"),
        "{md}"
    );
    assert!(
        md.contains("| add | Role | AWS::IAM::Role | no | **IAM** |"),
        "{md}"
    );
    // Its JSON twin, for tools that post or check reviews.
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            r.path()
                .join(format!("target/ferry/reports/review-prod-{first}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(json["stage"], "prod", "{json}");
    assert_eq!(json["release"], first.as_str(), "{json}");
    assert_eq!(json["kind"], "promote", "{json}");
    assert_eq!(json["from"], "staging", "{json}");
    assert!(
        json["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.to_string().contains("AWS::IAM::Role")),
        "{json}"
    );

    // Approved: exactly the reviewed packages deploy, and the release says who approved.
    let (out, err) = ok(&r, v, &["approve", "prod", &first, "--test"]);
    assert!(row(&out, "app").contains("created"), "{out}\n{err}");
    let (staging, prod) = (records(p, "staging"), records(p, "prod"));
    for s in ["base", "app", "web"] {
        assert_eq!(staging[s].template_hash, prod[s].template_hash, "{s}");
        assert_eq!(staging[s].artifacts, prod[s].artifacts, "{s}");
    }
    let (_, err) = fails(&r, v, &["approve", "prod", &first]);
    assert!(
        err.contains(&format!(
            "review `{first}` was approved already, by arn:aws:"
        )),
        "{err}"
    );

    // A change of app: two reviews of it; approving one makes the other stale.
    r.write(
        "services/app/t.yaml",
        &APP.replace(
            "      Handler: app.handle\n",
            "      Handler: app.handle\n      Description: v2\n",
        ),
    );
    r.commit("app v2");
    ok(&r, v, &["deploy", "staging", "--test"]);
    let (out, err) = ok(&r, v, &["promote", "staging", "prod", "--review"]);
    let second = id_after(&out, "review: ");
    assert!(
        out.contains("| modify | Fn | AWS::Lambda::Function | no | Description |"),
        "{out}"
    );
    assert!(
        err.contains("base: skipped (already at the package"),
        "only what changes: {err}"
    );
    assert!(
        row(&out, "app").contains("would change (1 resource(s))"),
        "{out}"
    );
    let (out, _) = ok(&r, v, &["promote", "staging", "prod", "--review"]);
    let third = id_after(&out, "review: ");
    ok(&r, v, &["approve", "prod", &third]);
    let (_, err) = fails(&r, v, &["approve", "prod", &second]);
    assert!(
        err.contains(&format!("review `{second}` of stage `prod` is stale: rel-review-app-prod changed since the review")),
        "{err}"
    );
    assert!(!err.contains("deploying stack"), "{err}");

    // A review that does not exist, or of another stage.
    let (_, err) = fails(&r, v, &["approve", "prod", "20200101-000000.000-0000000"]);
    assert!(
        err.contains("stage `prod` has no review `20200101-000000.000-0000000`"),
        "{err}"
    );
    let (_, err) = fails(&r, v, &["approve", "staging", &second]);
    assert!(
        err.contains(&format!("stage `staging` has no review `{second}`")),
        "{err}"
    );

    // A review in which a service fails (here: a parameter that does not exist) and its
    // dependents are skipped keeps nothing to approve, and fails.
    r.write(
        "services/base/service.toml",
        &format!(
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nMissing = \"${{ssm:/rel-review/none}}\"\n{ACCEPTANCE}"
        ),
    );
    r.write(
        "services/base/t.yaml",
        &format!("Parameters:\n  Missing: {{Type: String}}\n{QUEUE}"),
    );
    r.commit("base reads a parameter nobody wrote");
    let (out, err) = fails(&r, v, &["deploy", "dev", "--review"]);
    assert!(
        err.contains("the review is incomplete: base, app could not be reviewed"),
        "{out}\n{err}"
    );
    let reviews: Vec<_> = std::fs::read_dir(r.path().join("target/ferry/reports"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("review-dev-"))
        .collect();
    assert!(reviews.is_empty(), "no review kept: {reviews:?}");
    assert!(!out.contains("approve with"), "{out}");
}

/// A repository of project `project` with one stage, `dev`, deployed only by approval (its
/// artifact bucket named by [`bucket`]); no service yet.
fn approval_repo(project: &str) -> TestRepo {
    dev_repo(project, "approval = true\n")
}

/// A repository of one stage, dev, with its own bucket and `settings` (TOML lines).
fn dev_repo(project: &str, settings: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{project}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n\
             [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{}\"\n{settings}",
            bucket(project, "dev")
        ),
    );
    r
}

/// `src` holds a value it gives as an output; `dst` keeps what it receives in a parameter of
/// its own and gives it back as `Seen`.
fn src_template(value: &str) -> String {
    format!(
        "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub \"/${{AWS::StackName}}/p\"\n      Type: String\n      Value: {value}\nOutputs:\n  Version:\n    Value: {value}\n"
    )
}
const DST: &str = "Parameters:\n  Version: {Type: String}\nResources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub \"/${AWS::StackName}/p\"\n      Type: String\n      Value: !Ref Version\nOutputs:\n  Seen:\n    Value: !Ref Version\n";

#[test]
fn an_approval_checks_the_dependents_of_what_it_deploys() {
    let p = "rel-follow";
    let r = approval_repo(p);
    r.write(
        "services/src/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/src/t.yaml", &src_template("v1"))
    .write(
        "services/dst/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nVersion = \"${output:src.Version}\"\n",
    )
    .write("services/dst/t.yaml", DST);
    r.commit("services");
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(s3.create_bucket().bucket(bucket(p, "dev")).send())
        .unwrap();
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let first = id_after(&out, "review: ");
    ok(&r, v, &["approve", "dev", &first]);
    assert_eq!(records(p, "dev")["dst"].outputs["Seen"], "v1");

    // src's output changes. The review resolves dst's parameters from src's stack as it runs,
    // so dst is not in it.
    r.write("services/src/t.yaml", &src_template("v2"));
    r.commit("src v2");
    let (out, err) = ok(&r, v, &["deploy", "dev", "--review"]);
    assert!(row(&out, "src").contains("would change"), "{out}\n{err}");
    assert!(!row(&out, "dst").contains("would"), "{out}\n{err}");
    // The review says what the approval will check besides what it shows.
    assert!(
        out.contains(
            "After approval, Ferry also checks `dst`, which depends on stacks this review changes"
        ),
        "{out}\n{err}"
    );
    // Its output is part of what it shows: dst gets the new value.
    assert!(out.contains("\nOutputs: `Version` modified.\n"), "{out}");
    let second = id_after(&out, "review: ");
    // Approved: src deploys, then dst, which receives its new output, follows with the
    // package it runs.
    let (out, err) = ok(&r, v, &["approve", "dev", &second]);
    let dev = records(p, "dev");
    assert_eq!(dev["src"].outputs["Version"], "v2", "{out}\n{err}");
    assert_eq!(dev["dst"].outputs["Seen"], "v2", "{out}\n{err}");
    assert!(row(&out, "dst").contains("updated"), "{out}\n{err}");

    // src changes, its output does not: dst is checked and left as it is.
    r.write(
        "services/src/t.yaml",
        &src_template("v2").replace(
            "      Type: String\n",
            "      Type: String\n      Description: d\n",
        ),
    );
    r.commit("src v2, described");
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let described = id_after(&out, "review: ");
    let (out, err) = ok(&r, v, &["approve", "dev", &described]);
    let after = records(p, "dev");
    assert_eq!(
        after["dst"].deployed_at, dev["dst"].deployed_at,
        "{out}\n{err}"
    );
    assert!(!row(&out, "dst").contains("updated"), "{out}\n{err}");
    let dev = after;

    // A dependent whose package is gone from the bucket is named, not deployed blind.
    r.write("services/src/t.yaml", &src_template("v3"));
    r.commit("src v3");
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let third = id_after(&out, "review: ");
    delete_stored(p, "dev", &dev["dst"]);
    let (out, err) = ok(&r, v, &["approve", "dev", &third]);
    assert!(
        err.contains("dst: skipped (a dependent of what is approved, not checked: its package in `dev` is gone from the bucket"),
        "{out}\n{err}"
    );
    assert_eq!(records(p, "dev")["dst"].outputs["Seen"], "v2");
}

#[test]
fn promote_rollback_and_approve_write_nothing_while_another_run_holds_the_stage() {
    let p = "rel-locked";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    let holder = r#"{"who":"bob","host":"ci-runner","build":"shop:77","pid":9,"since":1795312984}"#;
    crate::common::put_parameter(&format!("/ferry/{p}/prod/lock"), holder);
    for args in [
        vec!["promote", "staging", "prod"],
        vec!["rollback", "prod"],
        vec!["approve", "prod", "20261202-000000.000-0000000"],
    ] {
        let (_, err) = fails(&r, v, &args);
        assert!(
            err.contains("stage `prod` is locked by bob on ci-runner"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("deploying stack"), "{err}");
    }
    assert!(records(p, "prod").is_empty());
}

/// A service whose parameters need outputs of what the same review creates resolves them only
/// when approved: its parameters as written must then be those reviewed. Before, an edit made
/// after the review (here uncommitted, in a stage that is not protected) was deployed unseen.
#[test]
fn an_approval_refuses_parameters_written_otherwise_than_reviewed() {
    let p = "rel-params";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (out, _) = ok(&r, v, &["deploy", "staging", "--review"]);
    let review = id_after(&out, "review: ");
    let manifest = r.path().join("services/app/service.toml");
    let committed = std::fs::read_to_string(&manifest).unwrap();
    let edited = committed.replace(
        "${output:base.QueueArn}",
        "arn:aws:sqs:us-east-1:000000000000:unreviewed",
    );
    assert_ne!(edited, committed);
    std::fs::write(&manifest, &edited).unwrap();
    let (_, err) = fails(&r, v, &["approve", "staging", &review]);
    assert!(
        err.contains(&format!("app: its parameters Queue are written otherwise in its service.toml than when review `{review}` was made")),
        "{err}"
    );
    assert!(records(p, "staging").is_empty());
    std::fs::write(&manifest, &committed).unwrap();
    ok(&r, v, &["approve", "staging", &review]);
    assert_eq!(records(p, "staging").len(), 3);
}

/// The gate counts a service as having no tests by the committed configuration: deleting its
/// `[acceptance]` in the working tree does not wave through a package whose tests never ran.
#[test]
fn the_gate_does_not_take_tests_deleted_in_the_working_tree() {
    let p = "rel-notests";
    let r = monorepo(p);
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write("ferry.toml", &toml.replace("protected = true\n", ""));
    r.commit("prod not protected");
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    r.write(
        "services/app/src/app.py",
        "def handle(e, c):\n    return 2\n",
    );
    r.commit("app 2");
    ok(&r, v, &["deploy", "staging"]);
    let manifest = r.path().join("services/app/service.toml");
    let committed = std::fs::read_to_string(&manifest).unwrap();
    let (without, _) = committed.split_once("\n[acceptance]").unwrap();
    std::fs::write(&manifest, format!("{without}\n")).unwrap();
    let (_, err) = fails(&r, v, &["promote", "staging", "prod"]);
    assert!(
        err.contains("app: its acceptance tests have not run in `staging`"),
        "{err}"
    );
    assert!(records(p, "prod").is_empty());
}

/// Stacks moved by the project's pattern change no package: a promote of what passed, with
/// prod already at those packages, took nothing (prod stayed on its old stacks, and every later
/// command refused the stage). Each moved service deploys its package to its new stack.
#[test]
fn a_promote_moves_the_stacks_whose_names_changed_though_their_packages_did_not() {
    let p = "rel-moved";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    let before = records(p, "staging")["web"].release.clone().unwrap();
    ok(&r, v, &["promote", "staging", "prod"]);
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &toml.replace(
            "stack-name = \"{project}-{service}-{stage}\"",
            "stack-name = \"{project}-{stage}-{service}\"",
        ),
    );
    r.commit("another stack-name pattern");
    let (out, _) = ok(&r, v, &["deploy", "staging", "--test"]);
    assert!(row(&out, "base").contains("created"), "{out}");
    let (out, _) = ok(&r, v, &["promote", "staging", "prod"]);
    for s in ["base", "app", "web"] {
        assert!(
            row(&out, s).contains(&format!("stack renamed: {p}-{s}-prod → {p}-prod-{s}")),
            "{out}"
        );
        assert_eq!(records(p, "prod")[s].stack, format!("{p}-prod-{s}"));
    }
    // And then nothing is left to do there.
    let (out, _) = ok(&r, v, &["plan", "prod"]);
    assert!(out.contains("0 to deploy"), "{out}");

    // A rollback to a release from before the move deploys its packages, of the commit before
    // the move, to the moved stacks; a later move is judged by the configuration that deployed
    // them, this checkout's (before, by the package's commit, which named other stacks: every
    // command of the stage was then refused as if the records were another project's).
    r.write(
        "services/web/t.yaml",
        &TOPIC.replace(
            "Type: AWS::SNS::Topic",
            "Type: AWS::SNS::Topic\n    Properties: {DisplayName: two}",
        ),
    );
    r.commit("web 2");
    ok(&r, v, &["deploy", "staging", "--test"]);
    ok(&r, v, &["rollback", "staging", "--to", &before]);
    assert_eq!(
        records(p, "staging")["web"].stack,
        format!("{p}-staging-web")
    );
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &toml.replace(
            "stack-name = \"{project}-{stage}-{service}\"",
            "stack-name = \"{service}-{project}-{stage}\"",
        ),
    );
    r.commit("a third stack-name pattern");
    let (out, _) = ok(&r, v, &["plan", "staging"]);
    assert!(
        out.contains(&format!("stack renamed: {p}-staging-web → web-{p}-staging")),
        "{out}"
    );
}

/// A run stopped after its records were written and before its release was (killed, its
/// machine lost; here its release deleted by hand) leaves records naming a release the store
/// lacks. The next run writes that release from the records, so a later rollback goes back to
/// what the stage ran then, not further. Before, it went back to the release before.
#[test]
fn a_release_its_run_never_wrote_is_written_by_the_next_run() {
    let p = "rel-recover";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let version = |n: u32| {
        r.write("services/base/t.yaml", &format!("{QUEUE}# v{n}\n"));
        r.commit(&format!("base v{n}")).to_string()
    };
    version(1);
    ok(&r, v, &["deploy", "dev", "--test"]);
    let v2 = version(2);
    let (out, _) = ok(&r, v, &["deploy", "dev", "--test"]);
    let lost = id_after(&out, "release: ");
    let s3 = ferry_package::s3_client(&config());
    // The release deleted, as a run stopped before it wrote it leaves it.
    let lose = |id: &str| {
        rt().block_on(
            s3.delete_object()
                .bucket(bucket(p, "dev"))
                .key(format!("{p}/_releases/dev/{id}.json"))
                .send(),
        )
        .unwrap();
    };
    lose(&lost);
    // The next run deploys nothing, and writes the lost release.
    ok(&r, v, &["deploy", "dev", "--test"]);
    let recovered = stored_release(p, "dev", &lost);
    assert_eq!(
        recovered["deployed"],
        serde_json::json!(["base"]),
        "{recovered}"
    );
    assert!(recovered["recovered"].is_string(), "{recovered}");
    // Who ran it, as its records name it.
    assert!(
        recovered["by"]
            .as_str()
            .is_some_and(|by| by.starts_with("arn:")),
        "{recovered}"
    );
    assert_eq!(
        recovered["services"]["base"]["acceptance"]["passed"], true,
        "{recovered}"
    );
    // v3 deploys untested; a rollback goes back to v2, which the stage ran and passed.
    version(3);
    ok(&r, v, &["deploy", "dev"]);
    let (out, _) = ok(&r, v, &["rollback", "dev"]);
    assert_eq!(records(p, "dev")["base"].commit, v2);
    // The rollback's release lost too: the deploy that recovers it below writes it as the
    // rollback it was (its records name the kind).
    let rolled = id_after(&out, "release: ");
    lose(&rolled);

    // Lost again, and the next run deploys the same service anew, overwriting the record that
    // named it: the lost release is written before that run deploys anything, from the records
    // as it found them. Before, it was lost for good.
    let v4 = version(4);
    let (out, _) = ok(&r, v, &["deploy", "dev"]);
    let lost = id_after(&out, "release: ");
    lose(&lost);
    version(5);
    ok(&r, v, &["deploy", "dev"]);
    let recovered = stored_release(p, "dev", &lost);
    assert_eq!(
        recovered["deployed"],
        serde_json::json!(["base"]),
        "{recovered}"
    );
    assert_eq!(recovered["services"]["base"]["commit"], v4, "{recovered}");
    let recovered = stored_release(p, "dev", &rolled);
    assert_eq!(recovered["kind"], "rollback", "{recovered}");
}

/// An approval stopped after it deployed (killed; here its release deleted and its review left
/// unmarked, as such a run leaves them). Approving that review again is refused, naming what the
/// stopped approval deployed and who ran it; the next run writes its release, naming who
/// approved which review. Before, the release named nobody and the refusal called the review
/// stale.
#[test]
fn an_approval_stopped_part_way_is_recovered_with_its_approver() {
    let p = "rel-approve-stop";
    let r = approval_repo(p);
    r.write(
        "services/src/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/src/t.yaml", &src_template("v1"));
    r.commit("services");
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(s3.create_bucket().bucket(bucket(p, "dev")).send())
        .unwrap();
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let review = id_after(&out, "review: ");
    let (out, _) = ok(&r, v, &["approve", "dev", &review]);
    let release = id_after(&out, "release: ");
    let by = stored_release(p, "dev", &release)["by"].clone();
    assert!(by.is_string(), "{by}");

    // As a run killed after its deploys leaves them: no release, the review not approved.
    let pending_key = format!("{p}/_releases/dev/pending/{review}.json");
    rt().block_on(async {
        s3.delete_object()
            .bucket(bucket(p, "dev"))
            .key(format!("{p}/_releases/dev/{release}.json"))
            .send()
            .await
            .unwrap();
        let o = s3
            .get_object()
            .bucket(bucket(p, "dev"))
            .key(&pending_key)
            .send()
            .await
            .unwrap();
        let mut pending: serde_json::Value =
            serde_json::from_slice(&o.body.collect().await.unwrap().into_bytes()).unwrap();
        assert!(pending["approved"].is_object(), "{pending}");
        pending["approved"] = serde_json::Value::Null;
        s3.put_object()
            .bucket(bucket(p, "dev"))
            .key(&pending_key)
            .body(serde_json::to_vec(&pending).unwrap().into())
            .send()
            .await
            .unwrap();
    });
    let (_, err) = fails(&r, v, &["approve", "dev", &review]);
    assert!(
        err.contains(&format!(
            "an approval of review `{review}` by {} deployed src (release {release}) and did not finish",
            by.as_str().unwrap()
        )) && err.contains("review again"),
        "{err}"
    );
    // Refused, it still writes the stopped one's release, with its approver (before, it
    // wrote none, and `status` named an older release as the stage's newest).
    let recovered = stored_release(p, "dev", &release);
    assert!(recovered["recovered"].is_string(), "{recovered}");
    assert_eq!(recovered["by"], by, "{recovered}");
    // So does the next approval when the refused one could not (deleted again here).
    rt().block_on(
        s3.delete_object()
            .bucket(bucket(p, "dev"))
            .key(format!("{p}/_releases/dev/{release}.json"))
            .send(),
    )
    .unwrap();
    r.write("services/src/t.yaml", &src_template("v2"));
    r.commit("src v2");
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let second = id_after(&out, "review: ");
    ok(&r, v, &["approve", "dev", &second]);
    let recovered = stored_release(p, "dev", &release);
    assert!(recovered["recovered"].is_string(), "{recovered}");
    assert_eq!(recovered["by"], by, "{recovered}");
    assert_eq!(
        recovered["approval"]["review"],
        review.as_str(),
        "{recovered}"
    );
    assert_eq!(recovered["approval"]["by"], by, "{recovered}");
    assert_eq!(
        recovered["approval"]["release"],
        release.as_str(),
        "{recovered}"
    );
}

/// An approval passes the gate again: a package that passed in the source stage at the review
/// and failed there since (its tests ran again) is not approved into the stage. Before, the
/// approval deployed it.
#[test]
fn an_approval_refuses_what_no_longer_passes_in_the_source_stage() {
    let p = "rel-regate";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    let (out, _) = ok(&r, v, &["promote", "staging", "prod", "--review"]);
    let review = id_after(&out, "review: ");
    std::fs::write(v.join("staging-app"), "").unwrap();
    fails(&r, v, &["test-acceptance", "staging", "--service", "app"]);
    let (_, err) = fails(&r, v, &["approve", "prod", &review]);
    assert!(
        err.contains("app: its acceptance tests failed in `staging`"),
        "{err}"
    );
    // What to do is an approval's, not a promote's (`--service`, which approve has not).
    assert!(
        err.contains(&format!(
            "(review {review} holds packages that no longer pass in `staging`"
        )),
        "{err}"
    );
    assert!(!err.contains("--service"), "{err}");
    assert!(!err.contains("deploying stack"), "{err}");
    assert!(records(p, "prod").is_empty());
    // Passing again there, the same review is approved.
    std::fs::remove_file(v.join("staging-app")).unwrap();
    ok(&r, v, &["test-acceptance", "staging", "--service", "app"]);
    let (out, err) = ok(&r, v, &["approve", "prod", &review]);
    assert!(
        format!("{out}{err}").contains("gate: the 3 reviewed service(s) still pass in `staging`"),
        "{out}\n{err}"
    );
    assert_eq!(records(p, "prod").len(), 3);
}

/// A protected stage changes only from a commit: promote, rollback and approve take its
/// configuration, the parameters and the tests from the checkout, as deploy does. Before, only
/// deploy refused an uncommitted edit; the others deployed it, and recorded a clean tree.
#[test]
fn promote_rollback_and_approve_refuse_a_protected_stage_from_a_dirty_tree() {
    let p = "rel-dirty";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    r.write(
        "services/app/service.toml",
        &format!(
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"unreviewed\"\n\n[package.artifacts]\nFn = \"src\"\n{ACCEPTANCE}"
        ),
    );
    for args in [
        vec!["promote", "staging", "prod"],
        vec!["promote", "staging", "prod", "--review"],
        vec!["rollback", "prod"],
        vec!["approve", "prod", "20261202-000000.000-0000000"],
    ] {
        let (_, err) = fails(&r, v, &args);
        assert!(
            err.contains("stage `prod` is protected and the working tree has uncommitted changes (services/app/service.toml)"),
            "{args:?}: {err}"
        );
    }
    assert!(records(p, "prod").is_empty());
    // Committed, the same promote goes ahead.
    r.commit("app reads a fixed value");
    ok(&r, v, &["deploy", "staging", "--test"]);
    ok(&r, v, &["promote", "staging", "prod"]);
    assert_eq!(records(p, "prod").len(), 3);

    // Staging deployed from a tree dirty in one service's folder (an untracked file there): the
    // package of that service is refused, that of a service whose own inputs were as committed
    // is its commit's. Before, both were refused, and the second for good, as no plan
    // redeploys it.
    r.write("services/base/t.yaml", &format!("{QUEUE}# two\n"));
    r.commit("base changes");
    r.write("services/app/notes.txt", "scratch\n");
    ok(&r, v, &["deploy", "staging", "--test"]);
    std::fs::remove_file(r.path().join("services/app/notes.txt")).unwrap();
    let staging = records(p, "staging");
    assert_eq!(
        (staging["base"].dirty, staging["base"].inputs_dirty),
        (true, Some(false))
    );
    assert_eq!(staging["app"].inputs_dirty, Some(true));
    let (_, err) = fails(&r, v, &["promote", "staging", "prod"]);
    assert!(
        err.contains("app was deployed to `staging` from a tree with uncommitted changes"),
        "{err}"
    );
    // The advice works: the next deploy redeploys app alone, and the promote goes ahead.
    let (out, _) = ok(&r, v, &["deploy", "staging", "--test"]);
    assert!(row(&out, "base").contains("skipped"), "{out}");
    assert!(!row(&out, "app").contains("skipped"), "{out}");
    // With its tests, which record their outcome: a clean checkout vouches for a package whose
    // inputs were as committed (they ran, passed, and were refused as unvouched).
    let (out, err) = ok(&r, v, &["promote", "staging", "prod", "--test"]);
    let prod = records(p, "prod");
    assert!(
        prod["base"].dirty,
        "base's package of its commit, from a dirty tree"
    );
    assert!(
        prod["base"].acceptance.as_ref().is_some_and(|a| a.passed),
        "{out}\n{err}"
    );
}

/// A step that fails after the stacks moved (here the outputs file, whose path a folder takes)
/// is said, and the run still writes its release (and a deploy its Markdown report), then exits
/// 1 naming the step.
/// Before, a deploy or promote stopped there: its records named a release that was never
/// written. Once the cause is gone, the next run finds nothing to redo.
#[test]
fn a_failure_after_the_stacks_moved_still_writes_the_release() {
    let p = "rel-after";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "dev"]);
    let ferry_dir = r.path().join("target/ferry");
    let stage_release = |stage: &str| -> serde_json::Value {
        let s = status(&r, v);
        let st = s["stages"].as_array().unwrap();
        let st = st.iter().find(|x| x["name"] == stage).unwrap();
        st["release"].clone()
    };

    for (stage, args) in [
        ("staging", vec!["deploy", "staging", "--test"]),
        ("prod", vec!["promote", "staging", "prod", "--test"]),
    ] {
        let blocked = ferry_dir.join(format!("outputs-{stage}.json"));
        std::fs::create_dir_all(blocked.join("taken")).unwrap();
        let (out, err) = fails(&r, v, &args);
        assert!(
            err.contains("error: failed to write")
                && err.contains(&format!("outputs-{stage}.json")),
            "{err}"
        );
        assert!(
            err.contains(
                "every stack that deployed is recorded, but a step failed (said above): writing the outputs file"
            ),
            "{err}"
        );
        for s in ["base", "app", "web"] {
            assert!(row(&out, s).contains("created"), "{out}\n{err}");
        }
        let id = id_after(&out, "release: ");
        assert_eq!(stage_release(stage), serde_json::json!(id), "{stage}");
        let report = std::fs::read_to_string(ferry_dir.join(format!("reports/deploy-{stage}.md")))
            .unwrap_or_default();
        assert_eq!(stage == "staging", report.contains(&id), "{report}");
        let recorded = records(p, stage);
        assert_eq!(recorded.len(), 3, "{recorded:?}");
        assert!(
            recorded
                .values()
                .all(|rec| rec.release.as_deref() == Some(id.as_str()))
        );

        std::fs::remove_dir_all(&blocked).unwrap();
        let (out, _) = ok(&r, v, &args);
        if stage == "staging" {
            for s in ["base", "app", "web"] {
                assert!(row(&out, s).contains("skipped (up to date)"), "{out}");
            }
        } else {
            assert!(out.contains("nothing to promote"), "{out}");
        }
    }

    // Failed tests, and two steps that fail on the way (one before the end of the run, one
    // within it): the tests' verdict, and one line naming both steps.
    std::fs::write(v.join("dev-app"), "").unwrap();
    r.write(
        "services/app/src/app.py",
        "def handle(e, c):\n    return 3\n",
    );
    r.commit("app 3");
    for blocked in ["outputs-dev.json", "reports/acceptance-dev.xml"] {
        let _ = std::fs::remove_file(ferry_dir.join(blocked));
        std::fs::create_dir_all(ferry_dir.join(blocked).join("taken")).unwrap();
    }
    let (out, err) = fails(&r, v, &["deploy", "dev", "--test"]);
    assert!(row(&out, "app").contains("FAILED"), "{out}\n{err}");
    let also: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("also failed"))
        .collect();
    assert_eq!(
        also,
        ["also failed (said above): writing the outputs file, writing the JUnit report"],
        "{err}"
    );
    assert!(
        err.contains("error: the deploy of stage `dev` did not complete"),
        "{err}"
    );
}

/// `deploy --test` whose tests pass but whose outcome cannot be written (SSM refusing the
/// marked record): said as a failure of the tests' step, whose stack is in place, and the next
/// run tests it again.
#[test]
fn a_deploy_whose_test_outcome_cannot_be_written_says_so_and_tests_again() {
    let p = "rel-unwritten";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let upstream = format!("127.0.0.1:{}", ferry_test_support::moto().port);
    // Only the write that marks app's record (its first write, the deploy's, goes through).
    let refusing = ferry_test_support::proxy::Proxy::start(&upstream, |req| {
        let body = String::from_utf8_lossy(&req.body);
        if req.action() == "PutParameter"
            && body.contains("/records/app\"")
            && body.contains("passed")
        {
            ferry_test_support::proxy::Rule::Respond {
                status: 400,
                content_type: "application/x-amz-json-1.1".into(),
                body: r#"{"__type":"AccessDeniedException","message":"not allowed here"}"#.into(),
            }
        } else {
            ferry_test_support::proxy::Rule::Forward
        }
    });
    let mut c = ferry(&r, v, &["deploy", "staging", "--test"]);
    c.env("AWS_ENDPOINT_URL", refusing.endpoint());
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("app: its acceptance tests passed, but writing that into its record failed: ")
            && out.contains("not allowed here"),
        "{out}\n{err}"
    );
    assert_eq!(records(p, "staging")["app"].acceptance, None);
    // Without the refusal: nothing deploys, app's owed tests run and are recorded.
    let (out, err) = ok(&r, v, &["deploy", "staging", "--test"]);
    assert!(
        row(&out, "app").contains("skipped (up to date)")
            && out.contains("the acceptance tests it owed passed"),
        "{out}\n{err}"
    );
    assert!(
        records(p, "staging")["app"]
            .acceptance
            .as_ref()
            .is_some_and(|a| a.passed)
    );
}

/// `test-acceptance` where one record cannot be marked (SSM refusing its write): the other
/// record is marked, the summary and the JUnit report still come, the newest release still gets
/// the outcomes, and the run exits 1 naming the record; the next run tests only that service.
#[test]
fn a_record_that_cannot_be_marked_does_not_lose_the_tests_outcomes() {
    let p = "rel-unmarked";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (out, _) = ok(&r, v, &["deploy", "staging"]);
    let id = id_after(&out, "release: ");
    let refusing = refusing_ssm("PutParameter", "/records/app");
    let mut c = ferry(&r, v, &["test-acceptance", "staging"]);
    c.env("AWS_ENDPOINT_URL", refusing.endpoint());
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 1, "{out}\n{err}");
    for s in ["base", "app"] {
        assert!(row(&out, s).contains("passed"), "{out}");
    }
    assert!(out.contains("JUnit report: "), "{out}");
    assert!(
        err.contains("error: failed to mark the record of `app`")
            && err.contains("not allowed here"),
        "{err}"
    );
    assert!(
        err.contains("the tests ran (their outcomes are above), but a step failed (said above): recording the tests' outcome of `app`"),
        "{err}"
    );
    let marked = records(p, "staging");
    assert!(marked["base"].acceptance.as_ref().is_some_and(|a| a.passed));
    assert!(marked["app"].acceptance.is_none());
    // The newest release got the outcome that was recorded.
    let release = stored_release(p, "staging", &id);
    assert_eq!(
        release["services"]["base"]["acceptance"]["passed"], true,
        "{release}"
    );

    // Without the fault: only app is still waiting for its tests.
    let (out, _) = ok(&r, v, &["test-acceptance", "staging"]);
    assert!(row(&out, "app").contains("passed"), "{out}");
    assert!(!out.contains("base "), "{out}");
}

/// A record says that its package passed its tests, and the tests that run are the checkout's:
/// a test edited in the working tree (here its command made to pass whatever runs), or a
/// service changed since its record, records nothing, so the gate cannot be talked past.
#[test]
fn tests_edited_in_the_checkout_record_nothing_and_the_gate_holds() {
    let p = "rel-vouch";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    std::fs::write(v.join("staging-app"), "").unwrap();
    fails(&r, v, &["deploy", "staging", "--test"]);
    assert_eq!(
        records(p, "staging")["app"]
            .acceptance
            .as_ref()
            .map(|a| a.passed),
        Some(false)
    );

    // The test command edited, not committed: it passes, and nothing is recorded.
    let manifest = r.path().join("services/app/service.toml");
    let committed = std::fs::read_to_string(&manifest).unwrap();
    let edited = committed.replace(
        "command = [\"sh\", \"-c\", \"test ! -e \\\"$VERDICTS/$FERRY_STAGE-$FERRY_SERVICE\\\"\"]",
        "command = [\"true\"]",
    );
    assert_ne!(edited, committed);
    std::fs::write(&manifest, &edited).unwrap();
    let (out, err) = fails(&r, v, &["test-acceptance", "staging", "--service", "app"]);
    assert!(row(&out, "app").contains("passed"), "{out}\n{err}");
    assert!(
        err.contains("the outcome of `app`'s tests is not recorded: this checkout has uncommitted changes (services/app/service.toml)"),
        "{err}"
    );
    assert_eq!(
        records(p, "staging")["app"]
            .acceptance
            .as_ref()
            .map(|a| a.passed),
        Some(false),
        "the record still says failed"
    );
    // Nor does the edit reach the protected prod: a checkout with uncommitted changes does
    // not promote there.
    let (_, err) = fails(&r, v, &["promote", "staging", "prod", "--review"]);
    assert!(
        err.contains("stage `prod` is protected and the working tree has uncommitted changes (services/app/service.toml)"),
        "{err}"
    );

    // Put back: the gate holds, as the record still says failed.
    std::fs::write(&manifest, &committed).unwrap();
    let (_, err) = fails(&r, v, &["promote", "staging", "prod", "--review"]);
    assert!(
        err.contains("app: its acceptance tests failed in `staging`"),
        "{err}"
    );

    // The checkout is what deployed it: a real pass is recorded.
    std::fs::remove_file(v.join("staging-app")).unwrap();
    ok(&r, v, &["test-acceptance", "staging", "--service", "app"]);
    assert_eq!(
        records(p, "staging")["app"]
            .acceptance
            .as_ref()
            .map(|a| a.passed),
        Some(true)
    );

    // A promote runs this checkout's tests against the stored package: with the service
    // changed since that package was made (its test command, committed), they are not its
    // tests, and prod records nothing, though they pass.
    std::fs::write(v.join("prod-app"), "").unwrap();
    std::fs::write(&manifest, &edited).unwrap();
    r.commit("app's test made to pass");
    let (out, err) = fails(&r, v, &["promote", "staging", "prod", "--test"]);
    let said = format!("{out}{err}");
    assert!(
        said.contains("app: deployed, and its acceptance tests passed, but the outcome is not recorded: it was deployed from "),
        "{said}"
    );
    assert_eq!(
        records(p, "prod")["app"]
            .acceptance
            .as_ref()
            .map(|a| a.passed),
        None
    );
}

/// Rollbacks go back through the history, never forward: the binary loads releases newest
/// first, only as far as the answer needs, and finds what the whole history says.
/// A rollback whose stacks went back but whose tests then fail says so, and does not send the
/// user to `--to`, which would find nothing left to deploy.
#[test]
fn a_rollback_whose_tests_fail_says_the_stacks_are_back() {
    let p = "rel-back-tests";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    for n in 1..=2 {
        r.write("services/base/t.yaml", &format!("{QUEUE}# v{n}\n"));
        r.commit(&format!("base v{n}"));
        ok(&r, v, &["deploy", "staging", "--test"]);
    }
    std::fs::write(v.join("staging-base"), "").unwrap();
    let (out, err) = fails(&r, v, &["rollback", "staging", "--test"]);
    let to = err
        .split("runs release ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}\n{err}"))
        .to_string();
    assert!(
        err.contains(&format!(
            "stage `staging` runs release {to} again, but its acceptance tests did not pass or their outcome is not recorded (see above): `test-acceptance staging` runs them again"
        )),
        "{out}\n{err}"
    );
    assert!(!err.contains("--to"), "{err}");
    // Indeed nothing is left to deploy there.
    let (out, _) = ok(&r, v, &["rollback", "staging", "--to", &to]);
    assert!(out.contains("nothing to do"), "{out}");
}

/// Deletes the stack `name` behind Ferry's back, as someone with the console would.
fn delete_stack(name: &str) {
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    assert!(
        rt().block_on(engine.delete(name, None, true, &|_| {}))
            .unwrap()
    );
}

// A stack deleted outside Ferry while its record says it runs the package: a promote or a
// rollback deploys that package again, as a deploy would (they read what the stacks say, one
// ListStacks). Before, both said it already ran it, and the stage stayed without it.
#[test]
fn promote_and_rollback_bring_back_a_stack_deleted_outside_ferry() {
    let p = "rel-missing";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    ok(&r, v, &["promote", "staging", "prod"]);
    delete_stack(&format!("{p}-web-prod"));
    let (out, err) = ok(&r, v, &["promote", "staging", "prod"]);
    let said = format!("{out}{err}");
    assert!(
        row(&out, "web").contains(&format!(
            "stack-missing: {p}-web-prod is gone though its record says deployed"
        )),
        "{said}"
    );
    assert!(row(&out, "web").contains("created"), "{said}");
    assert!(
        said.contains("base: skipped (already at the package that passed in `staging`)"),
        "{said}"
    );
    assert!(!said.contains("nothing to promote"), "{said}");
    // A rollback to the release that runs takes the stack's package again too.
    r.write("services/base/t.yaml", &format!("{QUEUE}# v2\n"));
    r.commit("base v2");
    ok(&r, v, &["deploy", "staging", "--test"]);
    delete_stack(&format!("{p}-web-staging"));
    let (out, err) = ok(&r, v, &["rollback", "staging"]);
    let said = format!("{out}{err}");
    assert!(row(&out, "base").contains("updated"), "{said}");
    assert!(
        row(&out, "web").contains("created") && row(&out, "web").contains("stack-missing"),
        "{said}"
    );
    // Nothing is missing now: nothing more to do.
    let (out, err) = ok(&r, v, &["promote", "staging", "prod", "--service", "web"]);
    let said = format!("{out}{err}");
    assert!(said.contains("nothing to promote"), "{said}");
    assert!(!said.contains("stack-missing"), "{said}");
}

// A service gone from the checkout, whose stack was deleted by hand while its record stays, is
// no rollback's to bring back: the rollback of the others goes on. (Reading the stacks' drift
// once added it to what the rollback deploys, and the rollback was refused as needing a
// service the checkout no longer has.)
#[test]
fn a_rollback_leaves_a_gone_service_whose_stack_was_deleted_alone() {
    let p = "rel-back-gone";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "dev", "--test"]);
    r.write("services/base/t.yaml", &format!("{QUEUE}# v2\n"));
    r.commit("base v2");
    ok(&r, v, &["deploy", "dev", "--test"]);
    r.remove("services/web");
    r.commit("no web");
    delete_stack(&format!("{p}-web-dev"));
    let (out, err) = ok(&r, v, &["rollback", "dev"]);
    assert!(row(&out, "base").contains("updated"), "{out}{err}");
    assert!(!out.contains("web "), "{out}{err}");
}

/// A rollback returns what the stage runs to earlier packages; it does not undo a `remove`. A
/// service of the target release that was removed since, from the stage and the checkout, is
/// left out and said. Before, it refused the whole rollback and advised checking out a commit
/// that has the service, which would have created its stack again.
#[test]
fn a_rollback_leaves_out_a_service_removed_since() {
    let p = "rel-back-removed";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    r.write(
        "services/extra/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/extra/t.yaml", TOPIC);
    let first = r.commit("extra").to_string();
    ok(&r, v, &["deploy", "dev", "--test"]);
    r.remove("services/extra");
    r.commit("no extra");
    ok(&r, v, &["remove", "dev", "--orphans"]);
    r.write("services/base/t.yaml", &format!("{QUEUE}# v2\n"));
    r.commit("base v2");
    ok(&r, v, &["deploy", "dev", "--test"]);
    let (out, err) = ok(&r, v, &["rollback", "dev"]);
    let said = format!("{out}{err}");
    assert!(
        said.lines().any(|l| l.contains("extra: in release ")
            && l.ends_with("but removed from the stage and the checkout since: not brought back")),
        "{said}"
    );
    let now = records(p, "dev");
    assert!(!now.contains_key("extra"), "{now:?}");
    assert_eq!(now["base"].commit, first);
}

/// A release differing from what runs only in a service removed since (its record and stack
/// gone) is no rollback target: the rollback goes back to the one before, which brings the
/// others back. Before, it took the running release itself, said "nothing to do" and exited 0.
#[test]
fn a_rollback_is_judged_by_the_services_the_checkout_still_has() {
    let p = "rel-back-judged";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    // web with tests of its own, which pass: every release passed.
    r.write(
        "services/web/service.toml",
        &format!("[service]\ntemplate = \"t.yaml\"\n{ACCEPTANCE}"),
    );
    r.commit("web's tests");
    ok(&r, v, &["deploy", "dev", "--test"]);
    let v1 = records(p, "dev")["base"].commit.clone();
    r.write("services/base/t.yaml", &format!("{QUEUE}# v2\n"));
    r.remove("services/web");
    r.commit("base v2, no web");
    ok(&r, v, &["deploy", "dev", "--test"]);
    ok(&r, v, &["remove", "dev", "--orphans"]);
    let (out, err) = ok(&r, v, &["rollback", "dev"]);
    assert!(!out.contains("nothing to do"), "{out}{err}");
    assert_eq!(records(p, "dev")["base"].commit, v1, "{out}{err}");
}

#[test]
fn rolling_back_again_goes_further_back() {
    let p = "rel-back";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let version = |n: u32| {
        r.write("services/base/t.yaml", &format!("{QUEUE}# v{n}\n"));
        r.commit(&format!("base v{n}"));
    };
    let mut hashes = Vec::new();
    for n in 1..=3 {
        version(n);
        ok(&r, v, &["deploy", "staging", "--test"]);
        hashes.push(records(p, "staging")["base"].template_hash.clone());
    }
    let runs = |hashes: &[String]| {
        let now = records(p, "staging")["base"].template_hash.clone();
        hashes.iter().position(|h| *h == now).map(|i| i + 1)
    };
    ok(&r, v, &["rollback", "staging"]);
    assert_eq!(runs(&hashes), Some(2));
    version(4);
    ok(&r, v, &["deploy", "staging", "--test"]);
    hashes.push(records(p, "staging")["base"].template_hash.clone());
    // From v4 back to what ran before it: v2, the first rollback's.
    ok(&r, v, &["rollback", "staging"]);
    assert_eq!(runs(&hashes), Some(2));
    // And again: before v2 there was v1.
    ok(&r, v, &["rollback", "staging"]);
    assert_eq!(runs(&hashes), Some(1));
    // Nothing passed before v1: said, nothing deployed.
    let (_, err) = fails(&r, v, &["rollback", "staging"]);
    assert!(err.contains("has no release from before release"), "{err}");
    assert_eq!(runs(&hashes), Some(1));
}

/// A rollback stopped after its records were written and before its release was (killed) is
/// recovered by the next run with the release it restored: the next rollback goes back from
/// that one. Before, the recovered release restored nothing, and the next rollback went forward
/// to the release the stopped one had gone back from.
#[test]
fn a_rollback_stopped_before_its_release_never_leads_forward_again() {
    let p = "rel-back-kill";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let mut hashes = Vec::new();
    for n in 1..=3 {
        r.write("services/base/t.yaml", &format!("{QUEUE}# v{n}\n"));
        r.commit(&format!("base v{n}"));
        ok(&r, v, &["deploy", "staging", "--test"]);
        hashes.push(records(p, "staging")["base"].template_hash.clone());
    }
    let runs = || {
        let now = records(p, "staging")["base"].template_hash.clone();
        hashes.iter().position(|h| *h == now).map(|i| i + 1)
    };
    ok(&r, v, &["rollback", "staging"]);
    assert_eq!(runs(), Some(2));
    // The rollback's release, as a kill before it was written leaves it: gone, its records
    // naming it.
    let id = drop_newest_release(p, "staging");
    let id = id.as_str();
    assert_eq!(records(p, "staging")["base"].release.as_deref(), Some(id));
    // Back from v2, the release the stopped rollback restored: v1, not v3.
    let (out, err) = ok(&r, v, &["rollback", "staging"]);
    assert_eq!(runs(), Some(1), "{out}\n{err}");
    let recovered = stored_release(p, "staging", id);
    assert_eq!(recovered["kind"], "rollback", "{recovered}");
    assert!(recovered["restores"].is_string(), "{recovered}");
}

/// A rollback interrupted (SIGTERM) after a dependency went back and before its dependent was
/// checked leaves the dependent with what the newer dependency gave it; `rollback --to` the
/// same release then checks it, and redeploys it with what the dependency gives now. Before, it
/// said "nothing to do": it compared packages only.
#[test]
fn a_rollback_to_the_same_release_finishes_what_an_interrupted_one_left() {
    use std::io::BufRead as _;
    let p = "rel-back-term";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    // base's output changes with its version: app receives it.
    let version = |n: u32| base_version(&r, v, n);
    version(1);
    let first = records(p, "staging");
    let r1 = first["base"].release.clone().unwrap();
    version(2);
    let second = records(p, "staging");
    assert_ne!(
        second["app"].parameters_hash, first["app"].parameters_hash,
        "{:?}\n{:?}",
        first["base"].outputs, second["base"].outputs
    );
    // SIGTERM once base is back: app is cancelled, unless its deploy had started already (then
    // the stage is back at release 1 whole: taken to release 2 again, and tried once more).
    let mut seen = Vec::new();
    let mut left_behind = false;
    for _ in 0..5 {
        let mut child = ferry(&r, v, &["rollback", "staging", "--to", &r1])
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            let hit = line.contains("base:") && line.contains("UPDATE_COMPLETE");
            seen.push(line);
            if hit {
                let killed = std::process::Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(killed.success());
            }
        }
        child.wait().unwrap();
        let now = records(p, "staging");
        assert_eq!(
            now["base"].template_hash,
            first["base"].template_hash,
            "{}",
            seen.join("\n")
        );
        if now["app"].parameters_hash == second["app"].parameters_hash {
            left_behind = true;
            break;
        }
        ok(&r, v, &["deploy", "staging", "--test"]);
    }
    assert!(
        left_behind,
        "in five tries the interruption never came between base and app:\n{}",
        seen.join("\n")
    );
    // The same rollback again: app ends with what base gives now, as in release 1.
    let (out, err) = ok(&r, v, &["rollback", "staging", "--to", &r1]);
    let now = records(p, "staging");
    assert_eq!(
        now["app"].parameters_hash,
        first["app"].parameters_hash,
        "{}\n{out}\n{err}",
        seen.join("\n")
    );
}

/// on-test-failure = "rollback" when only a dependency changed: app fails in prod with what the
/// new base gives it, its own package the same in every release, so it has nothing of its own
/// to go back to; base goes back too. Before, the automatic rollback failed ("no release from
/// before … that holds other packages") and left prod failing.
#[test]
fn a_failed_test_rolls_back_the_dependency_whose_change_it_was_judged_with() {
    let p = "rel-back-dep";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let version = |n: u32| base_version(&r, v, n);
    version(1);
    ok(&r, v, &["promote", "staging", "prod", "--test"]);
    let first = records(p, "prod");
    version(2);
    std::fs::write(v.join("prod-app"), "").unwrap();
    let (out, err) = fails(&r, v, &["promote", "staging", "prod", "--test"]);
    let said = format!("{out}\n{err}");
    assert!(
        said.contains("app had no earlier release that passed and holds other packages; rolling back what this run deployed of what they depend on too: app, base"),
        "{said}"
    );
    assert!(
        said.contains("on-test-failure = \"rollback\": rolled "),
        "{said}"
    );
    let after = records(p, "prod");
    assert_eq!(
        after["base"].template_hash, first["base"].template_hash,
        "{said}"
    );
    assert_eq!(after["base"].outputs, first["base"].outputs, "{said}");
    assert_eq!(
        after["app"].parameters_hash, first["app"].parameters_hash,
        "{said}"
    );
}

/// Deletes the newest release of `stage` from its bucket, as a run killed between its records
/// and its release leaves the stage; its id.
fn drop_newest_release(project: &str, stage: &str) -> String {
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(async {
        let listed = s3
            .list_objects_v2()
            .bucket(bucket(project, stage))
            .prefix(format!("{project}/_releases/{stage}/"))
            .send()
            .await
            .unwrap();
        let newest = listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter(|k| !k.contains("/pending/"))
            .max()
            .unwrap()
            .to_string();
        s3.delete_object()
            .bucket(bucket(project, stage))
            .key(&newest)
            .send()
            .await
            .unwrap();
        newest
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".json")
            .to_string()
    })
}

/// A promote from a stage with nothing deployed is refused, saying so (before, "nothing to
/// promote", exit 0). A promote with nothing to promote still writes the release a killed run
/// left unwritten, as a deploy with nothing to deploy does (before, it wrote none, and `status`
/// named an older release as the newest).
#[test]
fn a_promote_from_nothing_is_refused_and_one_with_nothing_to_do_recovers_a_release() {
    let p = "rel-empty";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (_, err) = fails(&r, v, &["promote", "staging", "prod"]);
    assert!(
        err.contains("cannot promote `staging` to `prod`: `staging` has no deployed service (no records), so nothing has passed there to promote"),
        "{err}"
    );
    assert!(records(p, "prod").is_empty());

    ok(&r, v, &["deploy", "staging", "--test"]);
    ok(&r, v, &["promote", "staging", "prod", "--test"]);
    let id = drop_newest_release(p, "prod");
    // `status` says so.
    let (out, _) = ok(&r, v, &["status"]);
    assert!(
        out.contains(&format!("prod: its records name release {id}, which its bucket lacks: a run still going (a batch before its `batch finish`) or one stopped before writing it; once none runs, the next run of `prod` writes it")),
        "{out}"
    );
    let json = status(&r, v);
    let prod = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "prod")
        .unwrap();
    assert_eq!(prod["unwritten"], serde_json::json!([id]), "{prod}");
    let (out, err) = ok(&r, v, &["promote", "staging", "prod", "--test"]);
    assert!(out.contains("nothing to promote"), "{out}\n{err}");
    let recovered = stored_release(p, "prod", &id);
    assert_eq!(recovered["kind"], "promote", "{recovered}");
    assert_eq!(recovered["from"], "staging", "{recovered}");
    let (out, _) = ok(&r, v, &["status"]);
    assert!(!out.contains("which its bucket lacks"), "{out}");
    assert!(recovered["recovered"].is_string(), "{recovered}");
}

/// A service whose tests failed in the target with the very package that passed in the source
/// has nothing to promote; the promote says how to go on, where it said only "nothing to
/// promote" and the gate out of the stage stayed shut without a word.
#[test]
fn nothing_to_promote_names_what_failed_there_and_the_way_on() {
    let p = "rel-stuck";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "staging", "--test"]);
    std::fs::write(v.join("prod-app"), "").unwrap();
    // The first promote has no release to roll back to: prod keeps app, failed.
    fails(&r, v, &["promote", "staging", "prod", "--test"]);
    assert_eq!(
        records(p, "prod")["app"]
            .acceptance
            .as_ref()
            .map(|a| a.passed),
        Some(false)
    );
    // Its tests are fixed in a later commit: this checkout no longer holds what the package
    // was made from, so nothing is owed here, and only the note says how to go on.
    let manifest = r.path().join("services/app/service.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    r.write(
        "services/app/service.toml",
        &format!("{text}# tests fixed\n"),
    );
    r.commit("app's tests fixed");
    let (out, err) = ok(&r, v, &["promote", "staging", "prod"]);
    assert!(out.contains("nothing to promote"), "{out}\n{err}");
    assert!(!out.contains("have not passed yet"), "{out}\n{err}");
    assert!(
        out.contains("note: the acceptance tests of app failed in `prod` with this package: `test-acceptance prod --all` runs them again"),
        "{out}\n{err}"
    );
}

/// Commits base at version `n`, whose output (`QueueArn`) carries the version, so that app
/// receives another value, and deploys staging with its tests.
fn base_version(r: &TestRepo, v: &Path, n: u32) {
    r.write(
        "services/base/t.yaml",
        &QUEUE.replace("!GetAtt Q.Arn", &format!("!Sub \"${{Q.Arn}}-v{n}\"")),
    );
    r.commit(&format!("base v{n}"));
    ok(r, v, &["deploy", "staging", "--test"]);
}

/// A Serverless Framework CLI for tests: writes a template holding the `--param Version=…` it
/// is given (an SSM parameter and an output, `Seen`), as the framework compiles parameters into
/// the template.
const PARAM_SLS: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in --package) out="$2"; shift;; --param) param="$2"; shift;; --stage) stage="$2"; shift;; esac; shift
done
mkdir -p "$out"
# The value is in the variable the argument names, as the framework resolves it.
var="${param#'Version=${env:'}"
value="$(printenv "${var%\}}")"
if [ -n "$FAIL_ON" ] && [ "$value" = "$FAIL_ON" ]; then echo "cannot compile with $value" >&2; exit 1; fi
cat > "$out/cloudformation-template-update-stack.json" <<T
{"Resources": {"P": {"Type": "AWS::SSM::Parameter",
  "Properties": {"Name": "/rel-slsrev-$stage/seen", "Type": "String", "Value": "$value"}}},
 "Outputs": {"Seen": {"Value": "$value"}}}
T
cat > "$out/serverless-state.json" <<T
{"service": {"service": "rel-slsrev", "provider": {"stage": "$stage"}}}
T
"#;

/// A repository of `src` (its output `Version`) and a Serverless Framework service `sls` that
/// receives it as `--param Version` through [`PARAM_SLS`], both with `extra` in their
/// service.toml, committed, with dev's bucket made; dev with `approval` when asked.
fn sls_repo(p: &str, approval: bool, extra: &str) -> TestRepo {
    let r = dev_repo(p, if approval { "approval = true\n" } else { "" });
    r.write(
        "services/src/service.toml",
        &format!("[service]\ntemplate = \"t.yaml\"\n{extra}"),
    )
    .write("services/src/t.yaml", &src_template("v1"))
    .write(
        "services/sls/service.toml",
        &format!(
            "[service]\nkind = \"serverless\"\nserverless-command = [\"./fake-sls\"]\n\n[parameters]\nVersion = \"${{output:src.Version}}\"\n{extra}"
        ),
    )
    .write(
        "services/sls/serverless.yml",
        &format!("service: {p}\nprovider:\n  name: aws\n"),
    )
    .write("services/sls/fake-sls", &PARAM_SLS.replace("rel-slsrev", p))
    .write(".gitignore", "target/\n");
    use std::os::unix::fs::PermissionsExt;
    let cli = r.path().join("services/sls/fake-sls");
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    r.commit("services");
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(s3.create_bucket().bucket(bucket(p, "dev")).send())
        .unwrap();
    r
}

/// A review of a Serverless Framework service whose parameters read outputs of a dependency the
/// same review creates or changes: the framework compiles them into the template, so it is
/// compiled when approved, after the dependency deploys, from the checkout. Before, the review
/// compiled it with the dependency's old outputs, which the approval then deployed (a replaced
/// topic's subscription kept the deleted topic), or failed when the dependency did not exist
/// yet (the first review of a new stage).
#[test]
fn a_serverless_service_reviewed_with_its_dependency_is_compiled_when_approved() {
    let p = "rel-slsrev";
    let r = sls_repo(p, true, "");
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    // src's output and sls's configuration both at `version`, committed.
    let both = |version: &str| {
        r.write("services/src/t.yaml", &src_template(version));
        r.write(
            "services/sls/serverless.yml",
            &format!("service: rel-slsrev\nprovider:\n  name: aws\n# {version}\n"),
        );
        r.commit(version);
    };
    // A new stage: src's stack is not there yet.
    let (out, err) = ok(&r, v, &["deploy", "dev", "--review"]);
    assert!(
        out.contains("so it is compiled when approved, after those deploy"),
        "{out}\n{err}"
    );
    let first = id_after(&out, "review: ");
    let (out, err) = ok(&r, v, &["approve", "dev", &first]);
    assert_eq!(
        records(p, "dev")["sls"].outputs["Seen"],
        "v1",
        "{out}\n{err}"
    );

    // Both change in one review: the approval compiles sls with src's new output.
    both("v2");
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let second = id_after(&out, "review: ");
    let (out, err) = ok(&r, v, &["approve", "dev", &second]);
    let dev = records(p, "dev");
    assert_eq!(dev["src"].outputs["Version"], "v2", "{out}\n{err}");
    assert_eq!(dev["sls"].outputs["Seen"], "v2", "{out}\n{err}");

    // src changes, its output does not, and sls does not change: sls is not in the review
    // (the approval checks it as a dependent), and stays as it is.
    r.write(
        "services/src/t.yaml",
        &src_template("v2").replace(
            "      Type: String\n",
            "      Type: String\n      Description: d\n",
        ),
    );
    r.commit("src described");
    let (out, err) = ok(&r, v, &["deploy", "dev", "--review"]);
    assert!(!row(&out, "sls").contains("would"), "{out}\n{err}");
    let described = id_after(&out, "review: ");
    let (out, err) = ok(&r, v, &["approve", "dev", &described]);
    assert!(!row(&out, "sls").contains("updated"), "{out}\n{err}");
    assert_eq!(
        records(p, "dev")["sls"].deployed_at,
        dev["sls"].deployed_at,
        "{out}\n{err}"
    );

    // A compile that fails at the review with the old outputs (as a `${cf:…}` of a stack the
    // review creates would) is left to the approval's, with the new ones.
    both("v3");
    let (code, out, err) = run(
        ferry(&r, v, &["deploy", "dev", "--review"]).env("FAIL_ON", "v2"),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("its compile failed now, perhaps on what this review changes")
            && out.contains("cannot compile with v2"),
        "{out}\n{err}"
    );
    let failed_then = id_after(&out, "review: ");
    let (out, err) = ok(&r, v, &["approve", "dev", &failed_then]);
    assert_eq!(
        records(p, "dev")["sls"].outputs["Seen"],
        "v3",
        "{out}\n{err}"
    );

    // sls alone changes: its reviewed compile deploys as it is, and its record keeps the
    // parameters that compile took, so that the next review finds it up to date (before, the
    // record kept only the bucket's, and every next check redeployed it).
    r.write(
        "services/sls/serverless.yml",
        "service: rel-slsrev\nprovider:\n  name: aws\n# v3, again\n",
    );
    r.commit("sls alone");
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let alone = id_after(&out, "review: ");
    ok(&r, v, &["approve", "dev", &alone]);
    // src changes, its output does not: sls, checked as its dependent, is up to date.
    r.write(
        "services/src/t.yaml",
        &src_template("v3").replace(
            "      Type: String\n",
            "      Type: String\n      Description: again\n",
        ),
    );
    r.commit("src described again");
    let (out, err) = ok(&r, v, &["deploy", "dev", "--review"]);
    assert!(row(&out, "src").contains("would change"), "{out}\n{err}");
    assert!(!row(&out, "sls").contains("would"), "{out}\n{err}");

    // Approved from a checkout whose inputs of sls are not those reviewed: refused, nothing
    // deployed.
    both("v3b");
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let third = id_after(&out, "review: ");
    r.write(
        "services/sls/serverless.yml",
        "service: rel-slsrev\nprovider:\n  name: aws\n# v4\n",
    );
    r.commit("v4");
    let (out, err) = fails(&r, v, &["approve", "dev", &third]);
    assert!(
        err.contains("compiled when approved") && err.contains("check out the reviewed commit"),
        "{out}\n{err}"
    );
    assert_eq!(records(p, "dev")["src"].outputs["Version"], "v3");
}

/// A template reading an SSM parameter itself (`{{resolve:ssm:…}}`) is approved: the version
/// of that parameter is part of what the review fixed, and it is compared again when approved.
/// Before, the approval dropped it from the reviewed parameters, kept in what it resolved now,
/// and refused every such approval as "parameters changed".
#[test]
fn a_template_reading_ssm_itself_is_approved_and_a_new_version_refuses_it() {
    let p = "rel-dynref";
    let r = approval_repo(p);
    r.write("services/reader/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write(
        "services/reader/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      Tags:\n        - Key: size\n          Value: '{{resolve:ssm:/rel-dynref/size}}'\n",
    );
    r.commit("reader");
    let ssm = aws_sdk_ssm::Client::new(&config());
    let put = |value: &str| {
        rt().block_on(
            ssm.put_parameter()
                .name("/rel-dynref/size")
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .overwrite(true)
                .send(),
        )
        .unwrap();
    };
    put("small");
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(s3.create_bucket().bucket(bucket(p, "dev")).send())
        .unwrap();
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let first = id_after(&out, "review: ");
    let (out, err) = ok(&r, v, &["approve", "dev", &first]);
    assert!(row(&out, "reader").contains("created"), "{out}\n{err}");

    // A new version of the parameter after the review: the approval refuses it.
    r.write(
        "services/reader/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      Tags:\n        - Key: size\n          Value: '{{resolve:ssm:/rel-dynref/size}}'\n        - Key: more\n          Value: x\n",
    );
    r.commit("reader 2");
    let (out, _) = ok(&r, v, &["deploy", "dev", "--review"]);
    let second = id_after(&out, "review: ");
    put("large");
    let (_, err) = fails(&r, v, &["approve", "dev", &second]);
    assert!(
        err.contains("resolve to other values than the review showed"),
        "{err}"
    );
}

/// A rollback checks a Serverless Framework dependent with its stored compile, which took its
/// parameters (`--param`): its record keeps them as a deploy's does, so a dependent that
/// receives the same values is up to date and keeps its tests. Before, the rollback hashed only
/// what the compiled template declares (the bucket at most), found its parameters changed,
/// redeployed it ("no changes"), cleared its passed tests and named it as rolled back; the next
/// check of it redeployed it again.
#[test]
fn a_rollback_leaves_a_serverless_dependent_that_receives_the_same_values_alone() {
    let p = "rel-slsback";
    let r = sls_repo(p, false, ACCEPTANCE);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "dev", "--test"]);
    // src changes, its output does not: sls receives the same Version.
    let described = |d: &str| {
        r.write(
            "services/src/t.yaml",
            &src_template("v1").replace(
                "      Type: String\n",
                &format!("      Type: String\n      Description: {d}\n"),
            ),
        );
        r.commit(d);
    };
    described("one");
    let (out, err) = ok(&r, v, &["deploy", "dev", "--test"]);
    assert!(
        row(&out, "sls").contains("skipped (up to date)"),
        "{out}\n{err}"
    );
    let before = records(p, "dev")["sls"].clone();
    assert_eq!(before.tests_passed(), Some(true), "{out}\n{err}");
    // src goes back; sls, checked with its stored compile, is up to date and keeps its tests.
    let (out, err) = ok(&r, v, &["rollback", "dev"]);
    let said = format!("{out}\n{err}");
    assert!(row(&out, "sls").contains("skipped (up to date)"), "{said}");
    assert!(said.contains("rolled src back to release "), "{said}");
    let after = records(p, "dev")["sls"].clone();
    assert_eq!(after.parameters_hash, before.parameters_hash, "{said}");
    assert_eq!(after.deployed_at, before.deployed_at, "{said}");
    assert_eq!(after.tests_passed(), Some(true), "{said}");
    // The next deploy of src finds it up to date too.
    described("two");
    let (out, err) = ok(&r, v, &["deploy", "dev"]);
    assert!(
        row(&out, "sls").contains("skipped (up to date)"),
        "{out}\n{err}"
    );
}

/// A rollback of a Serverless Framework service deploys its stored compile as it is, with the
/// values its parameters had then written into its template: when its dependency gives others
/// now (here its stack was removed and the rollback created it again, with a new stack id), the
/// functions would name what is gone. Refused, naming the way out (before: deployed, reported
/// `created`, and its record said it was up to date with the new values).
#[test]
fn a_rollback_refuses_a_serverless_compile_whose_parameters_resolve_otherwise_now() {
    let p = "rel-slsstale";
    let r = sls_repo(p, false, "");
    r.write("services/src/t.yaml", &src_template("!Ref AWS::StackId"));
    r.commit("src's output changes with its stack");
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "dev"]);
    let took = records(p, "dev")["sls"].compiled_with.clone();
    assert!(took.is_some(), "the record keeps what the compile took");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run(&mut xtask(&r, &["rollback", "dev"]), None);
    let said = format!("{out}\n{err}");
    assert_eq!(code, 1, "{said}");
    assert!(row(&out, "src").contains("created"), "{said}");
    assert!(
        said.contains("sls: its stored compile (package ")
            && said.contains("they resolve to others now")
            && said.contains("`deploy dev --service sls`"),
        "{said}"
    );
    // The last line says so too (before: finish it with `rollback dev --to …`, which failed the
    // same way every time).
    assert!(
        said.contains(
            "which no rollback can mend; deploy it from a checkout (`deploy dev --service sls`)"
        ) && !said.contains("finish it with"),
        "{said}"
    );
    assert!(!records(p, "dev").contains_key("sls"), "{said}");
    // Compiled from the checkout with today's values: deployed.
    let (out, err) = ok(&r, v, &["deploy", "dev", "--service", "sls"]);
    assert!(row(&out, "sls").contains("created"), "{out}\n{err}");
    assert_ne!(records(p, "dev")["sls"].compiled_with, took);
}

/// A Serverless Framework dependent checked for what it receives, whose compile writes in a value
/// it reads itself (here a file outside Ferry's view, as a `${cf:…}` or `${ssm:…}` would be):
/// its template differs while its parameters do not, and it deploys (a review found that such
/// a dependent was skipped as "its own changes", the new value never deployed).
#[test]
fn a_serverless_dependent_whose_compile_changed_deploys_when_checked() {
    let p = "rel-slsown";
    let r = sls_repo(p, false, "");
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "one").unwrap();
    // Compiled every time (its configuration reads SSM), writing the outside value in.
    r.write(
        "services/sls/serverless.yml",
        &format!("service: {p}\nprovider:\n  name: aws\ncustom:\n  x: ${{ssm:/{p}/x, 'none'}}\n"),
    )
    .write(
        "services/sls/fake-sls",
        &PARAM_SLS.replace("rel-slsrev", p).replace(
            "\"Value\": \"$value\"}}}",
            &format!(
                "\"Value\": \"$value\", \"Description\": \"$(cat {})\"}}}}}}",
                outside.path().display()
            ),
        ),
    );
    r.commit("sls writes an outside value in");
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "dev"]);
    std::fs::write(outside.path(), "two").unwrap();
    r.write(
        "services/src/t.yaml",
        &src_template("v1").replace(
            "      Type: String\n",
            "      Type: String\n      Description: d\n",
        ),
    );
    r.commit("src, same output");
    let (out, err) = ok(&r, v, &["deploy", "dev", "--service", "src"]);
    assert!(row(&out, "sls").contains("updated"), "{out}\n{err}");
}

/// The checkout's own parameters of a Serverless service may differ from those of the package a
/// rollback deploys (one added since): the stored compile is judged by its own commit's
/// parameters, resolved today, and goes back (a review found that an added literal refused the
/// rollback, leaving the failing release in place).
#[test]
fn a_rollback_deploys_a_serverless_compile_whose_checkout_parameters_changed_since() {
    let p = "rel-slsparams";
    let r = sls_repo(p, false, "");
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    ok(&r, v, &["deploy", "dev"]);
    let before = records(p, "dev")["sls"].clone();
    let manifest = r.path().join("services/sls/service.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    r.write(
        "services/sls/service.toml",
        &text.replace("[parameters]\n", "[parameters]\nDebug = \"true\"\n"),
    )
    .write("services/src/t.yaml", &src_template("v2"));
    r.commit("sls takes Debug, src gives v2");
    ok(&r, v, &["deploy", "dev"]);
    assert_ne!(records(p, "dev")["sls"].compiled_with, before.compiled_with);
    let first = before.release.clone().unwrap();
    let (out, err) = ok(&r, v, &["rollback", "dev", "--to", &first]);
    assert!(
        row(&out, "sls").contains("updated") || row(&out, "sls").contains("no changes"),
        "{out}\n{err}"
    );
    let after = records(p, "dev")["sls"].clone();
    assert_eq!(after.template_hash, before.template_hash, "{out}\n{err}");
    assert_eq!(after.compiled_with, before.compiled_with, "{out}\n{err}");
}

/// A service a rollback put back that no later run deploys again (the checkout holds its
/// package) keeps, for a rollback's choice of target, the outcome its package had with the same
/// parameters in the release the rollback restored, in every later release: a later release
/// whose own deploys passed is one to go back to. Before, it stayed untested in every later
/// release, and a plain rollback skipped them all and deployed older code. The gate still asks
/// for its tests in the stage: the rollback ran none.
#[test]
fn a_rollback_goes_back_to_a_release_that_kept_what_a_rollback_put_back() {
    let p = "rel-back-kept";
    let r = monorepo(p);
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    // base v1, then v2 (app receives the same queue), each tested in staging.
    for n in 1..=2 {
        r.write("services/base/t.yaml", &format!("{QUEUE}# v{n}\n"));
        r.commit(&format!("base v{n}"));
        ok(&r, v, &["deploy", "staging", "--test"]);
    }
    let second = records(p, "staging")["base"].release.clone().unwrap();
    // Back to v1, and forward again to v2, the checkout's: put back, untested.
    ok(&r, v, &["rollback", "staging"]);
    ok(&r, v, &["rollback", "staging", "--to", &second]);
    assert_eq!(records(p, "staging")["base"].tests_passed(), None);
    // app changes twice, each tested and passed; base stays as the rollback left it.
    let app = |n: u32| {
        r.write(
            "services/app/src/app.py",
            &format!("def handle(e, c):\n    return {n}\n"),
        );
        r.commit(&format!("app {n}"));
        ok(&r, v, &["deploy", "staging", "--test"]);
        records(p, "staging")
    };
    let third = app(2);
    assert_eq!(
        third["base"].tests_passed(),
        None,
        "base was not deployed again"
    );
    app(3);
    // Back from app 3 to app 2: its release passed, and base's package there is the one that
    // passed in base v2's release. (Before: back to app 1, the forward rollback's release.)
    let (out, err) = ok(&r, v, &["rollback", "staging"]);
    let now = records(p, "staging");
    assert_eq!(now["app"].artifacts, third["app"].artifacts, "{out}\n{err}");
    assert_eq!(
        now["app"].template_hash, third["app"].template_hash,
        "{out}\n{err}"
    );
    assert_eq!(
        now["base"].template_hash, third["base"].template_hash,
        "{out}\n{err}"
    );
    // The gate still asks for base's tests in staging: the rollback ran none.
    let (_, err) = fails(&r, v, &["promote", "staging", "prod"]);
    assert!(
        err.contains("base: its acceptance tests have not run in `staging` since a rollback put its package there"),
        "{err}"
    );
}
