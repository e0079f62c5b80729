//! Preview stages end to end against the local emulator: `previews list` finds them from the
//! project's stacks and records, `previews prune` removes those a CI event ends, those a list of
//! live refs leaves out, and those older than a TTL, and nothing else; none is left behind.

use crate::common::{config, rt, run, xtask};
use ferry_test_support::TestRepo;
use ferry_test_support::moto;
use ferry_test_support::proxy::{Proxy, Request, Rule};

const QUEUE: &str = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueArn:\n    Value: !GetAtt Q.Arn\n";
const READER: &str =
    "Parameters:\n  Queue: {Type: String}\nResources:\n  T:\n    Type: AWS::SNS::Topic\n";

fn repo(project: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{project}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n\
             [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n\
             [stages.\"*\"]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n\
             [ci]\npull-requests = \"pr-{{number}}\"\n"
        ),
    )
    .write("services/a/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/a/t.yaml", QUEUE)
    .write(
        "services/b/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${output:a.QueueArn}\"\n",
    )
    .write("services/b/t.yaml", READER);
    r.commit("services");
    r
}

/// The project's stack names that exist in the emulator.
fn stacks(project: &str) -> Vec<String> {
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    rt().block_on(engine.describe_all())
        .unwrap()
        .into_keys()
        .filter(|n| n.starts_with(&format!("{project}-")))
        .collect()
}

fn list(r: &TestRepo) -> serde_json::Value {
    let (code, out, err) = run(
        &mut xtask(r, &["previews", "list", "--format", "json"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn names(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

#[test]
fn previews_are_listed_and_pruned_by_ci_event_live_refs_and_ttl() {
    let p = "pv-prune";
    let r = repo(p);
    for stage in ["dev", "pr-1", "pr-2", "feature/Login", "old-branch"] {
        let (code, out, err) = run(&mut xtask(&r, &["deploy", stage]), None);
        assert_eq!(code, 0, "{stage}\n{out}\n{err}");
    }
    let found = list(&r);
    assert_eq!(
        names(&found),
        ["feature/Login", "old-branch", "pr-1", "pr-2"]
    );
    let pr1 = &found[2];
    assert_eq!(pr1["id"], "pr-1");
    assert_eq!(pr1["pull_request"], "1");
    assert_eq!(pr1["services"], serde_json::json!(["a", "b"]));
    assert_eq!(
        pr1["stacks"],
        serde_json::json!([format!("{p}-a-pr-1"), format!("{p}-b-pr-1")])
    );
    assert!(pr1["deployed_at"].as_u64().unwrap() > 0);
    assert_eq!(found[0]["id"], "feature-login");
    let (_, text, _) = run(&mut xtask(&r, &["previews", "list"]), None);
    assert!(text.contains("pull request #2"), "{text}");

    // No evidence: refused; a list naming nothing: refused.
    let (code, _, err) = run(&mut xtask(&r, &["previews", "prune"]), None);
    assert_eq!(code, 2, "a usage error");
    assert!(err.contains("say what is gone: --live-refs FILE"), "{err}");
    let (code, _, err) = run(
        &mut xtask(&r, &["previews", "prune", "--live-refs", "-"]),
        Some("\n"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("names no branch and no pull request"), "{err}");
    // Something else piped in by mistake (JSON without `-q`, an error message): refused whole.
    // Before, its lines counted as branches, and every branch preview was pruned.
    let (code, _, err) = run(
        &mut xtask(&r, &["previews", "prune", "--live-refs", "-"]),
        Some("[{\"number\":7},{\"number\":12}]\n"),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("the live refs from standard input are not a list of refs: line 1 (`[{\\\"number\\\":7},{\\\"number\\\":12}]`) is no ref: not a branch name git takes"),
        "{err}"
    );
    assert!(err.contains("nothing was pruned"), "{err}");
    assert_eq!(stacks(p).len(), 10);
    // A file that is no list of refs is not read whole (`/dev/zero` took gigabytes).
    let (code, _, err) = run(
        &mut xtask(&r, &["previews", "prune", "--live-refs", "/dev/zero"]),
        None,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("the live refs from /dev/zero are over 64 MiB, which no list of refs is"),
        "{err}"
    );

    // Live branches from `git ls-remote --heads`: old-branch is gone; a dry run removes nothing.
    let heads = "1\trefs/heads/main\n2\trefs/heads/feature/login\n";
    let (code, out, err) = run(
        &mut xtask(&r, &["previews", "prune", "--live-refs", "-", "--dry-run"]),
        Some(heads),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("4 preview stage(s), 1 to prune (dry run)"),
        "{out}"
    );
    assert!(
        out.contains("old-branch: branch `old-branch` is not among the live refs (2 stack(s))"),
        "{out}"
    );
    assert_eq!(stacks(p).len(), 10);

    // Ferry's own previews stack (`bootstrap '*'`) is no preview.
    let (code, _, err) = run(
        &mut xtask(
            &r,
            &[
                "bootstrap",
                "*",
                "--trust",
                "arn:aws:iam::111111111111:root",
            ],
        ),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        names(&list(&r)),
        ["feature/Login", "old-branch", "pr-1", "pr-2"]
    );

    // A merged pull request's build deploys nothing (its preview is to go) ...
    let merged_env = |c: &mut std::process::Command| {
        c.env("CODEBUILD_BUILD_ID", "shop:1")
            .env("CODEBUILD_WEBHOOK_EVENT", "PULL_REQUEST_MERGED")
            .env("CODEBUILD_WEBHOOK_TRIGGER", "pr/1");
    };
    let mut deploy = xtask(&r, &["deploy", "--from-ci"]);
    merged_env(&mut deploy);
    let (code, out, err) = run(&mut deploy, None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("ci: pull request #1 was closed: nothing to deploy"),
        "{out}"
    );
    assert!(!err.contains("deploying stack"), "{err}");

    // ... and prunes it.
    let mut merged = xtask(&r, &["previews", "prune", "--from-ci"]);
    merged_env(&mut merged);
    let (code, out, err) = run(&mut merged, None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("pr-1: pull request #1 was closed"), "{out}");
    assert!(out.contains("pruned 1 of 1 preview stage(s)"), "{out}");
    assert_eq!(names(&list(&r)), ["feature/Login", "old-branch", "pr-2"]);

    // A GitHub event file that is no JSON (cut short): neither command guesses. Before, prune
    // said the event ended nothing, and a deploy took a closed pull request's build for one to
    // deploy.
    let event = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(event.path(), r#"{"action":"closed","number":2"#).unwrap();
    for args in [
        &["previews", "prune", "--from-ci"][..],
        &["deploy", "--from-ci"][..],
    ] {
        let mut cut = xtask(&r, args);
        cut.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", "pull_request")
            .env("GITHUB_REF", "refs/pull/2/merge")
            .env("GITHUB_EVENT_PATH", event.path());
        let (code, out, err) = run(&mut cut, None);
        assert_eq!(code, 1, "{args:?}: {out}\n{err}");
        assert!(
            err.contains("GitHub's event file (GITHUB_EVENT_PATH) could not be read")
                && err.contains("is not JSON"),
            "{args:?}: {err}"
        );
    }
    // Nor one with no event file at all (GitHub always writes one).
    let mut none = xtask(&r, &["previews", "prune", "--from-ci"]);
    none.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_REF", "refs/pull/2/merge");
    let (code, out, err) = run(&mut none, None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("GITHUB_EVENT_PATH is not set"), "{err}");
    assert_eq!(names(&list(&r)), ["feature/Login", "old-branch", "pr-2"]);

    // A GitHub `delete` event of a branch.
    let event = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        event.path(),
        r#"{"ref": "old-branch", "ref_type": "branch"}"#,
    )
    .unwrap();
    let mut deleted = xtask(&r, &["previews", "prune", "--from-ci"]);
    deleted
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "delete")
        .env("GITHUB_EVENT_PATH", event.path());
    let (code, out, err) = run(&mut deleted, None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("old-branch: branch `old-branch` was deleted"),
        "{out}"
    );

    // Open pull requests only: branches are not judged, pr-2 is live.
    let (code, out, _) = run(
        &mut xtask(&r, &["previews", "prune", "--live-refs", "-"]),
        Some("#2\n"),
    );
    assert_eq!(code, 0);
    assert!(out.contains("2 preview stage(s), 0 to prune"), "{out}");

    // A TTL of nothing would prune a preview deployed a moment ago: refused.
    let (code, _, err) = run(&mut xtask(&r, &["previews", "prune", "--ttl", "0s"]), None);
    assert_eq!(code, 2);
    assert!(err.contains("`0s` would prune every preview"), "{err}");
    // Everything older than a second: the rest goes; dev is no preview and stays.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, out, err) = run(&mut xtask(&r, &["previews", "prune", "--ttl", "1s"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("pruned 2 of 2 preview stage(s)"), "{out}");
    assert_eq!(names(&list(&r)), Vec::<&str>::new());
    assert_eq!(
        stacks(p),
        [format!("{p}-a-dev"), format!("{p}-b-dev")],
        "the previews are gone, dev stays"
    );
    let (code, _, err) = run(&mut xtask(&r, &["previews", "prune", "--ttl", "7w"]), None);
    assert_eq!(code, 2);
    assert!(err.contains("`7w` is not a TTL"), "{err}");
}

#[test]
fn prune_removes_a_preview_whole_and_never_a_named_stage() {
    let p = "pv-whole";
    let r = repo(p);
    // staging keeps its records under a path of its own: found there under the id `stg`, it
    // is still no preview.
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &format!(
            "{toml}\n[stages.staging]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nrecords-path = \"/ferry/{p}/stg/\"\n"
        ),
    );
    r.commit("staging");
    let deploy = |stage: &str| {
        let (code, out, err) = run(&mut xtask(&r, &["deploy", stage]), None);
        assert_eq!(code, 0, "{stage}\n{out}\n{err}");
    };
    deploy("staging");
    // pr-7's branch adds a service; the checkout that prunes it no longer has it.
    r.write(
        "services/c/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/c/t.yaml", QUEUE);
    r.commit("c");
    deploy("pr-7");
    r.remove("services/c");
    r.commit("back to main");
    assert_eq!(names(&list(&r)), ["pr-7"]);

    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, out, err) = run(&mut xtask(&r, &["previews", "prune", "--ttl", "1s"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("pr-7: "), "{out}");
    assert!(out.contains("pruned 1 of 1 preview stage(s)"), "{out}");
    assert!(out.contains(&format!("deleted {p}-c-pr-7 (c)")), "{out}");
    assert_eq!(names(&list(&r)), Vec::<&str>::new());
    assert_eq!(
        stacks(p),
        [format!("{p}-a-staging"), format!("{p}-b-staging")],
        "the preview is gone whole, staging stays"
    );
    assert!(crate::common::records(p, "pr-7").is_empty());
    let staging = ferry_records::RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "staging",
        &format!("/ferry/{p}/stg"),
    );
    assert_eq!(rt().block_on(staging.read_all()).unwrap().len(), 2);
}

/// A pull request closed while its preview deploys: the close's prune met the deploy's lock,
/// exit 1, and the preview outlived the pull request. With `--wait-lock` (as the generated CI
/// files run it) it waits for that run and then removes the preview, though that deploy wrote
/// records since the prune judged it (the close is final; a list of refs or an age is not).
#[test]
fn a_prune_waits_for_a_run_holding_the_previews_lock() {
    let p = "pv-wait";
    let r = repo(p);
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "pr-3"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    // A deploy of pr-3 running (this process, alive).
    let store = ferry_records::RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "pr-3",
        &format!("/ferry/{p}/pr-3"),
    );
    let none = |_: &str| None;
    let holder = ferry_records::LockHolder::for_this_process(&none, "deploy", "pr-3", None);
    rt().block_on(store.lock(&holder, false)).unwrap();
    let prune = |wait: &str| {
        let mut c = xtask(&r, &["previews", "prune", "--from-ci", "--wait-lock", wait]);
        c.env("CODEBUILD_BUILD_ID", "pv:9")
            .env("CODEBUILD_WEBHOOK_EVENT", "PULL_REQUEST_CLOSED")
            .env("CODEBUILD_WEBHOOK_TRIGGER", "pr/3")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    // Without a wait: refused, the preview left.
    let out = prune("0").wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is locked by"), "{err}");
    assert_eq!(names(&list(&r)), ["pr-3"]);
    // With one: it waits for the deploy to end, then removes it.
    let waiting = prune("120");
    std::thread::sleep(std::time::Duration::from_secs(2));
    // The deploy it waits for writes its records, then ends.
    let mut record = crate::common::records(p, "pr-3")["a"].clone();
    record.deployed_at = ferry_records::now_secs() + 5;
    rt().block_on(store.write(&record)).unwrap();
    rt().block_on(store.unlock(&holder)).unwrap();
    let out = waiting.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("pruned 1 of 1 preview stage(s)"),
        "{stdout}"
    );
    assert_eq!(names(&list(&r)), Vec::<&str>::new());
    assert!(stacks(p).is_empty(), "{:?}", stacks(p));

    // Reopened while the prune waited, and deployed again by a run that started after it: that
    // preview is the open pull request's, and stays.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "pr-3"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    rt().block_on(store.lock(&holder, false)).unwrap();
    let waiting = prune("120");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mut record = crate::common::records(p, "pr-3")["a"].clone();
    // A release id made now (its time first, as release ids are).
    let ms = ferry_records::now_millis() + 1000;
    let compact = ferry_records::format_time(ms / 1000)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == ' ')
        .collect::<String>()
        .replace(' ', "-");
    record.release = Some(format!("{compact}.{:03}-abcdef0", ms % 1000));
    rt().block_on(store.write(&record)).unwrap();
    rt().block_on(store.unlock(&holder)).unwrap();
    let out = waiting.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "left `pr-3` in place: deployed again by a run that started after this prune"
        ),
        "{stdout}"
    );
    assert_eq!(names(&list(&r)), ["pr-3"]);
}

/// A preview judged gone is judged again under its lock, just before its removal: one whose
/// records show a deploy since (a push while earlier previews were being removed) is left in
/// place. The judging is made to see an old deploy of pr-5 (the recursive listing of the
/// previews' records is rewritten on its way back); the stage's own records, read under its
/// lock, say it was deployed just now.
#[test]
fn a_preview_deployed_since_it_was_judged_gone_is_left_in_place() {
    let p = "pv-again";
    let r = repo(p);
    for stage in ["pr-5", "pr-6"] {
        let (code, out, err) = run(&mut xtask(&r, &["deploy", stage]), None);
        assert_eq!(code, 0, "{stage}\n{out}\n{err}");
    }
    let upstream = format!("127.0.0.1:{}", moto().port);
    let stale_in_listing = Proxy::start(&upstream, |req: &Request| {
        let body = String::from_utf8_lossy(&req.body);
        if req.action() != "GetParametersByPath" || !body.contains("\"Recursive\":true") {
            return Rule::Forward;
        }
        Rule::Rewrite(Box::new(|json| {
            let mut answer: serde_json::Value = serde_json::from_str(&json).unwrap();
            for parameter in answer["Parameters"].as_array_mut().unwrap() {
                if !parameter["Name"]
                    .as_str()
                    .unwrap()
                    .contains("/pr-5/records/")
                {
                    continue;
                }
                let mut record: serde_json::Value =
                    serde_json::from_str(parameter["Value"].as_str().unwrap()).unwrap();
                record["deployed_at"] = serde_json::json!(1);
                parameter["Value"] = serde_json::json!(record.to_string());
            }
            answer.to_string()
        }))
    });
    let (code, out, err) = run(
        xtask(&r, &["previews", "prune", "--ttl", "1d"])
            .env("AWS_ENDPOINT_URL", stale_in_listing.endpoint()),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("2 preview stage(s), 1 to prune"), "{out}");
    assert!(out.contains("  pr-5: last deployed"), "{out}");
    assert!(
        out.contains("left `pr-5` in place: deployed again (at "),
        "{out}"
    );
    assert!(
        out.contains("pruned 0 of 1 preview stage(s); 1 deployed again meanwhile, left in place"),
        "{out}"
    );
    assert_eq!(names(&list(&r)), ["pr-5", "pr-6"]);
    assert_eq!(stacks(p).len(), 4, "{:?}", stacks(p));
}

// A preview removed whole takes its release files with it: they named stacks and packages that
// are gone, and a preview of the same name deployed later would have found them. A named
// stage's stay.
#[test]
fn a_removed_preview_takes_its_releases_with_it() {
    let p = "pv-releases";
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{p}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n\
             [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{p}-art\"\n\n\
             [stages.\"*\"]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{p}-art\"\n"
        ),
    )
    .write("services/a/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/a/t.yaml", QUEUE);
    r.commit("a");
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(s3.create_bucket().bucket(format!("{p}-art")).send())
        .unwrap();
    let releases = |stage: &str| -> usize {
        rt().block_on(
            s3.list_objects_v2()
                .bucket(format!("{p}-art"))
                .prefix(format!("{p}/_releases/{stage}/"))
                .send(),
        )
        .unwrap()
        .contents()
        .len()
    };
    for stage in ["dev", "pr-3"] {
        let (code, out, err) = run(&mut xtask(&r, &["deploy", stage]), None);
        assert_eq!(code, 0, "{out}\n{err}");
        assert_eq!(releases(stage), 1, "{stage}");
    }
    // Its orphans alone removed, the preview lives on, and keeps its releases (what a rollback
    // of it goes back to): before, `--orphans` deleted them all.
    r.write(
        "services/b/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/b/t.yaml", QUEUE);
    r.commit("b");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "pr-3"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    std::fs::remove_dir_all(r.path().join("services/b")).unwrap();
    r.commit("b goes");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "pr-3", "--orphans"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("release file(s)"), "{out}");
    assert_eq!(releases("pr-3"), 2);
    let (code, out, err) = run(&mut xtask(&r, &["remove", "pr-3"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("deleted the 2 release file(s) of stage `pr-3`"),
        "{out}"
    );
    assert_eq!(releases("pr-3"), 0);
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(releases("dev"), 1, "a named stage keeps its releases");
}

/// Checks out a new branch `release-2` whose ferry.toml adds `stages` (named stages that only
/// it names), committed; gives the name of the branch it started from.
fn on_a_release_branch(r: &TestRepo, stages: &str) -> String {
    let main = ferry_test_support::git(r.path(), &["rev-parse", "--abbrev-ref", "HEAD"]);
    ferry_test_support::git(r.path(), &["checkout", "-q", "-b", "release-2"]);
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write("ferry.toml", &format!("{toml}\n{stages}"));
    r.commit("named stages of the release branch");
    main.trim().to_string()
}

/// A named stage that only another branch's ferry.toml names (`qa` of a release branch) is no
/// preview to a checkout of main: its records say it is named, so it is not listed, not pruned,
/// and neither deployed nor removed as a preview. Before, `previews prune` deleted its stacks,
/// records and releases.
#[test]
fn a_named_stage_of_another_branch_is_no_preview() {
    let p = "pv-named-elsewhere";
    let r = repo(p);
    let main = on_a_release_branch(
        &r,
        &format!(
            "[stages.qa]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n[stages.uat]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nrecords-path = \"/ferry/{p}-uat/\"\n"
        ),
    );
    let main = main.as_str();
    for stage in ["qa", "uat"] {
        let (code, out, err) = run(&mut xtask(&r, &["deploy", stage]), None);
        assert_eq!(code, 0, "{out}\n{err}");
    }
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "feat"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    ferry_test_support::git(r.path(), &["checkout", "-q", main]);

    assert_eq!(names(&list(&r)), ["feat"]);
    let (code, out, err) = run(
        &mut xtask(&r, &["previews", "prune", "--live-refs", "-"]),
        Some(&format!("{main}\n")),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("1 preview stage(s), 1 to prune"), "{out}");
    let left = stacks(p);
    assert_eq!(
        left,
        [
            format!("{p}-a-qa"),
            format!("{p}-a-uat"),
            format!("{p}-b-qa"),
            format!("{p}-b-uat")
        ],
        "{out}"
    );
    for args in [&["deploy", "qa"][..], &["remove", "qa"][..]] {
        let (code, out, err) = run(&mut xtask(&r, args), None);
        assert_eq!(code, 1, "{args:?}\n{out}\n{err}");
        assert!(
            err.contains(
                "says stage `qa` is a named stage, which this checkout's ferry.toml does not name"
            ),
            "{args:?}\n{err}"
        );
    }
    // uat keeps its records elsewhere (its own records-path): its stacks' tags say it is named.
    for args in [&["deploy", "uat"][..], &["remove", "uat"][..]] {
        let (code, out, err) = run(&mut xtask(&r, args), None);
        assert_eq!(code, 1, "{args:?}\n{out}\n{err}");
        assert!(
            format!("{out}{err}").contains(&format!("refusing to touch stack {p}-a-uat: its Ferry tags say it belongs to stage `uat` as a named stage of the ferry.toml that deployed it, which this checkout does not name and takes for a preview")),
            "{args:?}\n{out}\n{err}"
        );
    }
    assert_eq!(stacks(p).len(), 4);
}

/// A review made for a named stage that only another branch's ferry.toml names is not approved
/// from a checkout that takes the stage for a preview, even where its records (written before
/// they said so) do not tell.
#[test]
fn a_review_of_another_branch_s_named_stage_is_not_approved_as_a_preview() {
    let p = "pv-review-elsewhere";
    let r = repo(p);
    // The previews keep releases in the same bucket as qa does on its branch.
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &toml.replace(
            "[stages.\"*\"]\nregion = \"us-east-1\"\n",
            &format!("[stages.\"*\"]\nregion = \"us-east-1\"\nartifact-bucket = \"{p}-qa\"\n"),
        ),
    );
    r.commit("a bucket for previews");
    let main = on_a_release_branch(
        &r,
        &format!(
            "[stages.qa]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{p}-qa\"\n"
        ),
    );
    let main = main.as_str();
    rt().block_on(
        ferry_package::s3_client(&config())
            .create_bucket()
            .bucket(format!("{p}-qa"))
            .send(),
    )
    .unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "qa", "--review"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let review = crate::common::id_after(&out, "review: ");
    ferry_test_support::git(r.path(), &["checkout", "-q", main]);
    let (code, out, err) = run(&mut xtask(&r, &["approve", "qa", &review]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("review {review} was made for stage `qa` as a named stage of the ferry.toml that reviewed it, which this checkout does not name")),
        "{out}\n{err}"
    );
    assert!(stacks(p).is_empty(), "nothing deployed");
}
