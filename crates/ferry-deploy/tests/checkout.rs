//! A promote compiles each Serverless Framework service for the target stage from the checkout,
//! so it must refuse a checkout whose inputs for that service are not those of the commit that
//! passed in the source stage. Real git repositories; no AWS call is made before the refusal.

use std::collections::BTreeMap;

use ferry_deploy::release::{
    PromoteRequest, ReleaseRunError, StageTarget, StoredPackages, check_checkout, prepare_promote,
};
use ferry_records::Record;
use ferry_test_support::TestRepo;

/// A project with stages `staging` and `prod` (promoted from staging), a Serverless service
/// `notifier`, a CloudFormation service `queue`, and a shared library the notifier declares.
fn repo() -> TestRepo {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\nnode_modules/\n")
        .write(
            "ferry.toml",
            "[project]\nname = \"shop\"\nglobal-inputs = [\"ferry.toml\"]\n\n[stages.staging]\nregion = \"us-east-1\"\nartifact-bucket = \"b-staging\"\n\n[stages.prod]\nregion = \"us-east-1\"\nartifact-bucket = \"b-prod\"\npromote-from = \"staging\"\n",
        )
        .write(
            "services/notifier/service.toml",
            "[service]\nkind = \"serverless\"\ninputs = [\"shared/lib/**\"]\n",
        )
        .write(
            "services/notifier/serverless.yml",
            "service: notifier\nframeworkVersion: \"4\"\nprovider:\n  name: aws\n  runtime: python3.12\nfunctions:\n  notify:\n    handler: h.handle\n",
        )
        .write("services/notifier/h.py", "def handle(e, c):\n    return 1\n")
        .write("shared/lib/util.py", "U = 1\n")
        .write("services/queue/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
        .write(
            "services/queue/t.yaml",
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        );
    r.commit("services");
    r
}

/// What staging recorded for `service` of `kind`, deployed and passed at `commit`.
fn record(service: &str, kind: &str, commit: &str) -> Record {
    Record {
        service: service.into(),
        stage: Some("staging".into()),
        stack: format!("shop-{service}-staging"),
        commit: commit.into(),
        kind: Some(kind.into()),
        acceptance: Some(ferry_records::Acceptance {
            passed: true,
            at: 1,
        }),
        ..Record::default()
    }
}

fn check(r: &TestRepo, records: &[Record]) -> Result<(), ReleaseRunError> {
    let ws = ferry_manifest::load(r.path()).unwrap();
    let refs: Vec<&Record> = records.iter().collect();
    check_checkout(&ws, "staging", &refs)
}

fn refusal(r: &TestRepo, records: &[Record]) -> String {
    let e = check(r, records).unwrap_err();
    assert!(
        matches!(e, ReleaseRunError::CheckoutDiffers { .. }),
        "{e:?}"
    );
    e.to_string()
}

fn git(r: &TestRepo, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .args(args)
        .current_dir(r.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn the_checkout_of_the_commit_that_passed_is_accepted_and_any_other_is_refused_by_name() {
    let r = repo();
    let passed = r.head().to_string();
    let records = [
        record("notifier", "serverless", &passed),
        record("queue", "cloudformation", &passed),
    ];
    check(&r, &records).unwrap();

    // A later commit that changes nothing the notifier reads: still what passed.
    r.write(
        "services/queue/t.yaml",
        "Resources:\n  Q2:\n    Type: AWS::SQS::Queue\n",
    );
    r.commit("queue only");
    check(&r, &records).unwrap();

    // Its configuration changed since: refused, naming the service, the commit and the input.
    r.write(
        "services/notifier/serverless.yml",
        "service: notifier\nframeworkVersion: \"4\"\nprovider:\n  name: aws\n  runtime: python3.12\n  iam:\n    role:\n      statements:\n        - Effect: Allow\n          Action: \"*\"\n          Resource: \"*\"\nfunctions:\n  notify:\n    handler: h.handle\n",
    );
    r.commit("widen the notifier's role");
    let e = refusal(&r, &records);
    assert!(
        e.contains(&format!(
            "notifier: passed at {}; these inputs differ in this checkout: services/notifier\n",
            &passed[..12]
        )),
        "{e}"
    );
    assert!(
        e.contains("would deploy what did not pass in `staging`"),
        "{e}"
    );
    assert!(
        !e.contains("queue"),
        "only compiled services are checked: {e}"
    );

    // Checked out again at the commit that passed: accepted.
    git(&r, &["checkout", "-q", &passed]);
    check(&r, &records).unwrap();

    // An input it declares outside its folder, edited and not committed, and a new file a
    // build left in its folder (not ignored): refused, naming the paths.
    r.write("shared/lib/util.py", "U = 2\n");
    r.write("services/notifier/.esbuild/out.js", "x");
    let e = refusal(&r, &records);
    assert!(
        e.contains("its inputs have uncommitted changes in this checkout: services/notifier/.esbuild/out.js, shared/lib/util.py (a build that rewrites a tracked file"),
        "{e}"
    );
    git(&r, &["checkout", "-q", "--", "shared/lib/util.py"]);
    r.remove("services/notifier/.esbuild");
    check(&r, &records).unwrap();

    // A global input changed since (every service's package depends on it): named.
    git(&r, &["checkout", "-q", "-b", "later"]);
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &format!("{toml}\n[stages.qa]\nregion = \"us-east-1\"\n"),
    );
    r.commit("a qa stage");
    let e = refusal(&r, &records);
    assert!(
        e.contains("these inputs differ in this checkout: ferry.toml"),
        "{e}"
    );
    git(&r, &["checkout", "-q", &passed]);

    // A commit this clone does not have.
    let unknown = [record("notifier", "serverless", &"ab".repeat(20))];
    let e = refusal(&r, &unknown);
    assert!(e.contains("a commit this clone does not have"), "{e}");

    // A record made from a dirty tree names no commit holding what passed: not checked.
    let mut dirty = record("notifier", "serverless", &"ab".repeat(20));
    dirty.dirty = true;
    check(&r, &[dirty]).unwrap();
}

/// The input key of `service` in the working tree of `r` (clean), as a deploy records it.
fn key_of(r: &TestRepo, service: &str) -> String {
    let ws = ferry_manifest::load(r.path()).unwrap();
    let s = ws.service(service).unwrap();
    let inputs = ferry_changes::ServiceInputs {
        name: s.name.clone(),
        dir: s.dir.clone(),
        inputs: s.inputs.clone(),
    };
    let snap = ferry_changes::Repo::open(r.path())
        .unwrap()
        .snapshot(&[inputs], &ws.project.global_inputs)
        .unwrap();
    snap.input_keys[service].clone()
}

#[test]
fn a_record_with_an_input_key_is_checked_without_the_history_of_its_commit() {
    let r = repo();
    // The commit is one this clone lacks (a shallow clone), and the record holds the key of
    // the inputs that passed.
    let mut passed = record("notifier", "serverless", &"cd".repeat(20));
    passed.input_key = Some(key_of(&r, "notifier"));
    check(&r, std::slice::from_ref(&passed)).unwrap();

    // A later commit that leaves its inputs alone: still accepted.
    r.write(
        "services/queue/t.yaml",
        "Resources:\n  Q2:\n    Type: AWS::SQS::Queue\n",
    );
    r.commit("queue only");
    check(&r, std::slice::from_ref(&passed)).unwrap();

    // Its shared library changed: named.
    r.write("shared/lib/util.py", "U = 3\n");
    r.commit("shared library");
    let e = refusal(&r, std::slice::from_ref(&passed));
    assert!(
        e.contains("these inputs differ in this checkout: shared/lib"),
        "{e}"
    );

    // A key recorded from a tree with uncommitted changes elsewhere is checked all the same.
    passed.input_key = Some(key_of(&r, "notifier"));
    passed.dirty = true;
    check(&r, std::slice::from_ref(&passed)).unwrap();
    r.write(
        "services/notifier/h.py",
        "def handle(e, c):\n    return 9\n",
    );
    let e = refusal(&r, std::slice::from_ref(&passed));
    assert!(
        e.contains("uncommitted changes in this checkout: services/notifier/h.py"),
        "{e}"
    );
}

#[test]
fn a_checkout_without_git_cannot_be_checked_and_is_refused_as_such() {
    let r = repo();
    let passed = r.head().to_string();
    std::fs::remove_dir_all(r.path().join(".git")).unwrap();
    let e = check(&r, &[record("notifier", "serverless", &passed)]).unwrap_err();
    assert!(
        matches!(e, ReleaseRunError::CheckoutUnverifiable { .. }),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(
        e.starts_with(
            "cannot check that this checkout holds what passed in `staging` for notifier"
        ),
        "{e}"
    );
    assert!(
        e.contains("promote from a git checkout of the commit that passed"),
        "{e}"
    );
    // Services that deploy their stored packages need no checkout.
    check(&r, &[record("queue", "cloudformation", &passed)]).unwrap();
}

#[tokio::test]
async fn a_promote_refuses_the_checkout_before_any_aws_call() {
    let r = repo();
    let passed = r.head().to_string();
    r.write(
        "services/notifier/h.py",
        "def handle(e, c):\n    return 2\n",
    );
    r.commit("change the notifier after it passed");
    let ws = ferry_manifest::load(r.path()).unwrap();
    // Nothing listens here: an AWS call would fail with a connection error, not this refusal.
    let config = ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some("http://127.0.0.1:9".into()),
        },
    )
    .await;
    let (staging, prod) = (ws.stage("staging").unwrap(), ws.stage("prod").unwrap());
    let from_records: BTreeMap<String, Record> = [
        (
            "notifier".to_string(),
            record("notifier", "serverless", &passed),
        ),
        (
            "queue".to_string(),
            record("queue", "cloudformation", &passed),
        ),
    ]
    .into();
    let dir = tempfile::tempdir().unwrap();
    let target = StageTarget {
        ws: &ws,
        stage: &prod,
        config: &config,
        local: false,
        dir: dir.path(),
    };
    let req = PromoteRequest {
        from: &staging,
        from_records: &from_records,
        from_packages: StoredPackages {
            s3: ferry_package::s3_client(&config),
            bucket: "b-staging".into(),
            stage: "staging".into(),
        },
        services: &[],
        tests_owed: &Default::default(),
    };
    let e = match prepare_promote(&target, &BTreeMap::new(), &BTreeMap::new(), &req).await {
        Ok(_) => panic!("promoted a notifier that did not pass"),
        Err(e) => e,
    };
    assert!(
        matches!(e, ReleaseRunError::CheckoutDiffers { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("notifier: passed at"), "{e}");
}

/// `test-acceptance` records an outcome only from a checkout without uncommitted changes that
/// holds what the package was made from (`unvouched` says why not).
#[test]
fn a_tests_outcome_is_vouched_for_only_by_the_checkout_that_deployed_it() {
    let r = repo();
    r.write(
        "services/queue/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"sh\", \"../../tests/check.sh\"]\n",
    )
    .write("tests/check.sh", "exit 1\n");
    let head = r.commit("tests").to_string();
    let ws = ferry_manifest::load(r.path()).unwrap();
    let previous = BTreeMap::from([(
        "queue".to_string(),
        record("queue", "cloudformation", &head),
    )]);
    let selected = ["queue".to_string()].into();
    let unvouched =
        |ws: &ferry_manifest::Workspace| ferry_deploy::unvouched(ws, &previous, &selected);
    assert!(unvouched(&ws).is_empty(), "{:?}", unvouched(&ws));

    // The tests changed, not committed, outside the service's inputs: not vouched for; nor
    // with an untracked file anywhere (a test may read it).
    r.write("tests/check.sh", "exit 0\n");
    let why = unvouched(&ws);
    assert_eq!(
        why["queue"],
        "this checkout has uncommitted changes (tests/check.sh), and the tests that ran may read them"
    );
    git(&r, &["checkout", "--", "tests/check.sh"]);
    r.write("tools/env.sh", "PASS=1\n");
    assert!(unvouched(&ws)["queue"].contains("(tools/env.sh)"));
    std::fs::remove_dir_all(r.path().join("tools")).unwrap();
    assert!(unvouched(&ws).is_empty());

    // The service itself changed since its record (committed): not what runs.
    r.write(
        "services/queue/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {DelaySeconds: 5}\n",
    );
    r.commit("a delay");
    let why = unvouched(&ws);
    assert!(
        why["queue"].starts_with(&format!("it was deployed from {}", &head[..12]))
            && why["queue"].contains("services/queue"),
        "{why:?}"
    );
    // A record made from a tree with uncommitted changes: vouched for only by that very tree
    // (the same package id: HEAD and a hash of every uncommitted change).
    r.write("services/queue/notes.txt", "wip\n");
    let here = ferry_changes::Repo::open(r.path())
        .unwrap()
        .snapshot(&[], &[])
        .unwrap()
        .id;
    assert!(here.contains("-dirty-"), "{here}");
    let mut dirty = previous["queue"].clone();
    dirty.dirty = true;
    dirty.package = Some(here.clone());
    let previous = BTreeMap::from([("queue".to_string(), dirty)]);
    let vouched =
        |ws: &ferry_manifest::Workspace| ferry_deploy::unvouched(ws, &previous, &selected);
    assert!(vouched(&ws).is_empty(), "{:?}", vouched(&ws));
    r.write("services/queue/notes.txt", "wip, edited since\n");
    let why = vouched(&ws);
    assert!(
        why["queue"].starts_with(&format!(
            "it was deployed from a working tree with uncommitted changes (package {here}), and this checkout is another tree"
        )),
        "{why:?}"
    );
}

#[test]
fn a_lock_file_change_that_leaves_the_services_packages_as_they_were_is_no_difference() {
    let lock = |ms: &str, left_pad: &str| {
        serde_json::json!({
            "lockfileVersion": 3,
            "packages": {
                "": {"name": "shop", "workspaces": ["services/notifier", "services/web"], "devDependencies": {"serverless": "4.0.0"}},
                "node_modules/serverless": {"version": "4.0.0", "integrity": "sha512-s"},
                "node_modules/ms": {"version": ms, "integrity": format!("sha512-{ms}")},
                "node_modules/left-pad": {"version": left_pad, "integrity": format!("sha512-{left_pad}")},
                "services/notifier": {"dependencies": {"ms": ms}},
                "services/web": {"dependencies": {"left-pad": left_pad}}
            }
        })
        .to_string()
    };
    let r = repo();
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &toml.replace(
            "global-inputs = [\"ferry.toml\"]",
            "global-inputs = [\"ferry.toml\", \"package-lock.json\"]",
        ),
    )
    .write("package-lock.json", &lock("2.1.3", "1.3.0"));
    r.commit("npm workspace");
    let passed = r.head().to_string();
    let records = [record("notifier", "serverless", &passed)];
    check(&r, &records).unwrap();

    // Another member's upgrade: the notifier installs what it did, so it compiles as it did.
    r.write("package-lock.json", &lock("2.1.3", "1.3.1"));
    r.commit("web: left-pad");
    check(&r, &records).unwrap();

    // Its own package changed: refused, naming the lock file.
    r.write("package-lock.json", &lock("2.1.2", "1.3.1"));
    r.commit("notifier: ms");
    let e = refusal(&r, &records);
    assert!(
        e.contains("these inputs differ in this checkout: package-lock.json"),
        "{e}"
    );
}

#[test]
fn a_failed_service_is_owed_its_tests_after_an_unrelated_commit_not_after_its_own_change() {
    let r = repo();
    r.write(
        "services/queue/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"true\"]\n",
    );
    let deployed = r.commit("tests").to_string();
    let failed = Record {
        acceptance: Some(ferry_records::Acceptance {
            passed: false,
            at: 1,
        }),
        ..record("queue", "cloudformation", &deployed)
    };
    let records = BTreeMap::from([("queue".to_string(), failed)]);
    let owed = |r: &TestRepo| {
        let ws = ferry_manifest::load(r.path()).unwrap();
        let stage = ws.stage("staging").unwrap();
        let head = r.head().to_string();
        ferry_deploy::tests_owed(&ws, &stage, &records, &head, &[]).unwrap()
    };
    assert_eq!(owed(&r), ["queue".to_string()].into(), "at its own commit");

    // An unrelated commit: the queue is up to date, and its failed tests are still owed.
    r.write("docs/notes.md", "notes\n");
    r.commit("docs");
    assert_eq!(
        owed(&r),
        ["queue".to_string()].into(),
        "after an unrelated commit"
    );
    // Not when the tests ran in this run already.
    let ws = ferry_manifest::load(r.path()).unwrap();
    let stage = ws.stage("staging").unwrap();
    let head = r.head().to_string();
    let tested = ["queue".to_string()];
    assert!(
        ferry_deploy::tests_owed(&ws, &stage, &records, &head, &tested)
            .unwrap()
            .is_empty()
    );

    // The queue changed since: what runs is not this checkout's, so nothing is owed here (the
    // next deploy redeploys and tests it).
    r.write(
        "services/queue/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {DelaySeconds: 5}\n",
    );
    r.commit("a delay");
    assert!(owed(&r).is_empty(), "{:?}", owed(&r));
}
