//! `deploy`, `remove` and `outputs` end to end: the real binary on temporary git repositories,
//! against the local emulator.

use crate::common::{config, row, rt, run, xtask};
use ferry_test_support::TestRepo;

const QUEUE: &str = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueArn:\n    Value: !GetAtt Q.Arn\n";
const TOPIC: &str =
    "Resources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  TopicArn:\n    Value: !Ref T\n";
const WIRING: &str = "Parameters:\n  Queue: {Type: String}\n  Topic: {Type: String}\n  Stage: {Type: String}\nResources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub \"/wiring/${AWS::StackName}\"\n      Type: String\n      Value: !Sub \"${Queue} ${Topic} ${Stage}\"\nOutputs:\n  Wiring:\n    Value: !Ref P\n";

/// queue, topic; consumer (queue, topic outputs); lone (independent). Stacks are named after the
/// project, so tests sharing one emulator never meet.
fn monorepo(project: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{project}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n\
             [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n\
             [stages.prod]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nprotected = true\n\n\
             [stages.\"*\"]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n"
        ),
    )
    .write("services/queue/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/queue/t.yaml", QUEUE)
    .write("services/topic/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/topic/t.yaml", TOPIC)
    .write(
        "services/consumer/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${output:queue.QueueArn}\"\nTopic = \"${output:topic.TopicArn}\"\nStage = \"${stage}\"\n",
    )
    .write("services/consumer/t.yaml", WIRING)
    .write("services/lone/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/lone/t.yaml", TOPIC);
    r.commit("services");
    r
}

/// `deploy --service queue` checks queue's dependents for what they receive; one whose own
/// template changed too, receiving the same, is left for a deploy that selects it (before, it
/// deployed its own unselected change, "dependent of queue: its template or artifacts differ").
#[test]
fn a_dependent_s_own_change_is_not_deployed_by_another_s_selection() {
    let r = monorepo("e2e-own");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    r.write("services/queue/t.yaml", &format!("{QUEUE}# a comment\n"))
        .write(
            "services/consumer/t.yaml",
            &WIRING.replace("Wiring:", "Wiring:\n    Description: unfinished"),
        );
    r.commit("queue, and consumer's own change");
    let (code, out, err) = run(
        &mut xtask(&r, &["deploy", "dev", "--service", "queue"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(row(&out, "queue").contains("updated"), "{out}");
    let consumer = row(&out, "consumer");
    assert!(
        consumer.contains(" skipped ")
            && consumer.contains(
                "its own changes since its record (template or code) are not part of this run"
            ),
        "{out}"
    );
    // Selected, it deploys.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(row(&out, "consumer").contains("updated"), "{out}");
}

/// A named stage misspelt (`dve`) is refused while nothing is deployed in it: before, the
/// deploy created a preview stage of that name with every service's stacks, saying only "did
/// you mean". `--preview` deploys it all the same, and once it has records it deploys as any
/// preview (`dev2` beside `dev`).
#[test]
fn a_misspelt_stage_is_refused_not_deployed_as_a_new_preview() {
    let r = monorepo("e2e-typo");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dve"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("`dve` is no stage of ferry.toml but one slip from `dev`, and it has no deployment record: a deploy would create a new preview stage of that name, with a stack of every service; did you mean `dev` (`cargo xtask deploy dev`)? To deploy a preview of that name, add --preview"),
        "{err}"
    );
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    assert!(
        rt().block_on(engine.describe("e2e-typo-queue-dve"))
            .unwrap()
            .is_none()
    );
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dve", "--preview"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    r.write("services/lone/t.yaml", &format!("{TOPIC}# again\n"));
    r.commit("lone");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dve"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(row(&out, "lone").contains("updated"), "{out}");
}

/// A branch deploys the shared dev stage, then main squash-merges it: the records' commit is on
/// another line of history than main's, but their trees say exactly what differs, nothing here.
/// Before, every service the branch deployed deployed again, "history diverged".
#[test]
fn a_squash_merge_of_a_branch_that_deployed_the_stage_deploys_nothing() {
    let r = monorepo("e2e-squash");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let sh = |args: &[&str]| ferry_test_support::git(r.path(), args);
    let main = sh(&["rev-parse", "--abbrev-ref", "HEAD"]);
    sh(&["checkout", "-q", "-b", "feat"]);
    r.write("services/lone/t.yaml", &format!("{TOPIC}# feat\n"));
    r.commit("feat: lone");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(row(&out, "lone").contains("updated"), "{out}");
    sh(&["checkout", "-q", main.trim()]);
    sh(&["merge", "-q", "--squash", "feat"]);
    sh(&["commit", "-q", "-m", "feat (squashed)"]);
    let (code, plan, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 0, "{plan}\n{err}");
    assert!(plan.contains("0 to deploy"), "{plan}\n{err}");
    assert!(
        plan.contains("(lone) is on another line of history than the head (another branch deployed the stage, or a squash merge, rebase or amend replaced its commit): compared by their trees"),
        "{plan}"
    );
    // What the branch changed and main did not take deploys, as it did.
    r.write("services/lone/t.yaml", TOPIC);
    r.commit("lone back");
    let (code, plan, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 0, "{plan}\n{err}");
    assert!(plan.contains("1 to deploy"), "{plan}\n{err}");
}

#[test]
fn deploy_then_skip_then_redeploy_only_what_changed() {
    let r = monorepo("e2e-skip");
    let step = tempfile::NamedTempFile::new().unwrap();
    let mut first = xtask(&r, &["deploy", "dev"]);
    first.env("GITHUB_STEP_SUMMARY", step.path());
    let (code, out, err) = run(&mut first, None);
    assert_eq!(code, 0, "{err}");
    // The deploy as Markdown, for a pull-request comment or the job's summary.
    let md = std::fs::read_to_string(r.path().join("target/ferry/reports/deploy-dev.md")).unwrap();
    assert!(
        md.starts_with("## Ferry: deploy of `dev` succeeded"),
        "{md}"
    );
    assert!(md.contains("| queue | cloudformation | created |"), "{md}");
    assert_eq!(
        std::fs::read_to_string(step.path()).unwrap().trim(),
        md.trim()
    );
    for s in ["queue", "topic", "consumer", "lone"] {
        assert!(row(&out, s).contains(" created "), "{out}");
    }
    assert!(
        err.contains("consumer: deploying stack e2e-skip-consumer-dev"),
        "{err}"
    );
    let outputs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(r.path().join("target/ferry/outputs-dev.json")).unwrap(),
    )
    .unwrap();
    assert!(
        outputs["services"]["queue"]["QueueArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:sqs:")
    );

    // Nothing changed: nothing deploys, no stack is touched.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 to deploy"), "{err}");
    assert!(!err.contains("deploying stack"), "{err}");
    for s in ["queue", "topic", "consumer", "lone"] {
        assert!(row(&out, s).contains("skipped (up to date)"), "{out}");
    }
    let outputs_again =
        std::fs::read_to_string(r.path().join("target/ferry/outputs-dev.json")).unwrap();
    assert!(
        outputs_again.contains("QueueArn"),
        "a skipping run keeps every output in the file"
    );

    // An edit to one service redeploys it alone.
    r.write(
        "services/consumer/t.yaml",
        &WIRING.replace("Wiring:", "Wiring:\n    Description: the wiring"),
    );
    r.commit("consumer");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(row(&out, "consumer").contains("updated"), "{out}");
    assert!(row(&out, "queue").contains("skipped (up to date)"), "{out}");

    // `--since` a later commit skips lone, changed before it: skipped, never "up to date"
    // (its record is older than what the checkout holds).
    r.write("services/lone/t.yaml", &format!("{TOPIC}# lone\n"));
    let since = r.commit("lone").to_string();
    r.write(
        "services/topic/t.yaml",
        &TOPIC.replace("TopicArn:", "TopicArn:\n    Description: t"),
    );
    r.commit("topic");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev", "--since", &since]), None);
    assert_eq!(code, 0, "{err}");
    assert!(row(&out, "topic").contains("updated"), "{out}");
    assert!(row(&out, "lone").contains(" skipped "), "{out}");
    assert!(!row(&out, "lone").contains("up to date"), "{out}");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(row(&out, "lone").contains("updated"), "{out}");

    // A dependency that redeploys with the same outputs leaves its dependent alone.
    r.write("services/queue/t.yaml", &format!("{QUEUE}# a comment\n"));
    r.commit("queue comment");
    // The plan says which skips the deploy still checks, and why: before, it said only
    // "unchanged", and a redeploy of the dependent surprised.
    let skip_line = |plan: &str, s: &str| {
        plan.lines()
            .find(|l| l.trim_start().starts_with("skip") && l.contains(&format!(" {s} ")))
            .unwrap_or_default()
            .to_string()
    };
    let checked_line =
        "checked against its record, redeployed if what it receives changed (dependent of queue)";
    let (code, plan, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        skip_line(&plan, "consumer").contains(checked_line),
        "{plan}"
    );
    assert!(!skip_line(&plan, "lone").contains("checked"), "{plan}");
    assert!(!skip_line(&plan, "topic").contains("checked"), "{plan}");
    let (code, out, _) = run(&mut xtask(&r, &["plan", "dev", "--format", "json"]), None);
    assert_eq!(code, 0);
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let checked: Vec<(&str, &str)> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| Some((s["name"].as_str()?, s["checked"].as_str()?)))
        .collect();
    assert_eq!(checked, [("consumer", "dependent of queue")], "{out}");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    // The plan a deploy prints says it too.
    assert!(skip_line(&err, "consumer").contains(checked_line), "{err}");
    assert!(
        row(&out, "queue").contains("changed: services/queue/t.yaml"),
        "{out}"
    );
    let consumer = row(&out, "consumer");
    assert!(
        consumer.contains("skipped (up to date)") && consumer.contains("parameters unchanged"),
        "{out}"
    );
}

// A deploy from uncommitted changes, which are then discarded: the stage runs code no commit
// holds, and no diff from the record's commit shows it. Before, every later plan (here, and in
// CI planning the commit) skipped the service for good.
#[test]
fn a_stage_deployed_from_uncommitted_changes_deploys_again_once_they_are_gone() {
    let r = monorepo("e2e-dirty");
    let (code, _, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    r.write(
        "services/lone/t.yaml",
        &TOPIC.replace("TopicArn:", "TopicArn:\n    Description: uncommitted"),
    );
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(row(&out, "lone").contains("updated"), "{out}");
    // Discarded.
    r.write("services/lone/t.yaml", TOPIC);
    let dirty = "deployed-dirty: its record is of a deploy from uncommitted changes on";
    for ci in [false, true] {
        let mut plan = xtask(&r, &["plan", "dev", "--head", "HEAD", "--format", "json"]);
        if ci {
            plan.env("CI", "true");
        }
        let (code, out, err) = run(&mut plan, None);
        assert_eq!(code, 0, "{err}");
        let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(plan["order"], serde_json::json!(["lone"]), "{out}");
        let lone = &plan["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "lone")
            .unwrap()["reasons"];
        assert_eq!(lone[0]["kind"], "deployed-dirty", "{out}");
    }
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        row(&out, "lone").contains("updated") && row(&out, "lone").contains(dirty),
        "{out}"
    );
    assert!(row(&out, "queue").contains("skipped (up to date)"), "{out}");
    // Back at a commit: nothing more.
    let (code, out, err) = run(&mut xtask(&r, &["plan", "dev", "--format", "json"]), None);
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["order"], serde_json::json!([]), "{out}");
    // Uncommitted changes that are none of a service's inputs leave its package the commit's:
    // deployed from such a tree, it is not planned again once they are gone.
    r.write("notes.txt", "scratch\n");
    r.write(
        "services/queue/t.yaml",
        &QUEUE.replace("QueueArn:", "QueueArn:\n    Description: uncommitted"),
    );
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev", "--all"]), None);
    assert_eq!(code, 0, "{err}");
    for s in ["queue", "topic", "consumer", "lone"] {
        assert!(row(&out, s).contains("forced"), "{out}");
    }
    r.write("services/queue/t.yaml", QUEUE);
    let (code, out, err) = run(
        &mut xtask(&r, &["plan", "dev", "--head", "HEAD", "--format", "json"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["order"], serde_json::json!(["queue"]), "{out}");
}

// A record that cannot be read: `plan` fails as `deploy` does. Before, it warned and planned
// the stage as if nothing were deployed, exit 0: a full redeploy of a healthy stage.
#[test]
fn a_plan_of_a_stage_whose_record_is_unreadable_fails_as_a_deploy_does() {
    let r = monorepo("e2e-corrupt");
    let (code, _, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    crate::common::put_parameter("/ferry/e2e-corrupt/dev/records/lone", "garbage{");
    for args in [&["plan", "dev"][..], &["deploy", "dev"]] {
        let (code, out, err) = run(&mut xtask(&r, args), None);
        assert_eq!(code, 1, "{args:?}\n{out}\n{err}");
        assert!(
            err.contains("the deployment record of `lone` at /ferry/e2e-corrupt/dev/records/lone is not valid JSON"),
            "{args:?}\n{err}"
        );
        assert!(
            !err.contains("planning as if nothing were deployed"),
            "{err}"
        );
    }
    // Without AWS (no endpoint answers), the plan still says so and goes on without records.
    let mut offline = xtask(&r, &["plan", "dev"]);
    offline.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let (code, _, err) = run(&mut offline, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("planning as if nothing were deployed"),
        "{err}"
    );
}

// A template reading an SSM parameter through a dynamic reference: CloudFormation reads it at
// each stack operation, so a new version deploys the stack again, as for a parameter of an
// SSM parameter type. Before, a new value never reached it (no file changed).
#[test]
fn a_new_version_of_a_parameter_a_dynamic_reference_reads_deploys_the_reader() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"e2e-dynref\"\nstack-name = \"{project}-{service}-{stage}\"\n\n[stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n",
    )
    .write("services/reader/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write(
        "services/reader/t.yaml",
        "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: /e2e-dynref/copy\n      Type: String\n      Value: '{{resolve:ssm:/e2e-dynref/engine}}'\n",
    );
    r.commit("reader");
    crate::common::put_parameter("/e2e-dynref/engine", "MySQL");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        row(&out, "reader").contains("skipped (up to date)"),
        "{out}"
    );
    // The plan skips it and the run checks it: said as a check, not a deploy (before,
    // "deploying stack" came before "skipped (up to date)").
    assert!(
        err.contains("reader: checking stack e2e-dynref-reader-dev against its record")
            && !err.contains("deploying stack"),
        "{err}"
    );
    crate::common::put_parameter("/e2e-dynref/engine", "Postgres");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        row(&out, "reader").contains("updated")
            && row(&out, "reader").contains("its parameters differ from its record"),
        "{out}"
    );
}

#[test]
fn a_failure_in_the_middle_skips_dependents_finishes_the_rest_and_a_rerun_completes() {
    let r = monorepo("e2e-fail");
    // topic's output asks for an attribute an SNS topic does not have: refused at CreateStack.
    r.write(
        "services/topic/t.yaml",
        &TOPIC.replace("Value: !Ref T", "Value: !GetAtt T.Nope"),
    );
    r.commit("broken topic");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(row(&out, "topic").contains("FAILED"), "{out}");
    let md = std::fs::read_to_string(r.path().join("target/ferry/reports/deploy-dev.md")).unwrap();
    assert!(
        md.starts_with("## Ferry: deploy of `dev` **failed**"),
        "{md}"
    );
    assert!(md.contains("topic: "), "the failure below the table: {md}");
    assert!(
        row(&out, "consumer").contains("skipped (topic failed)"),
        "{out}"
    );
    assert!(
        row(&out, "queue").contains("created") && row(&out, "lone").contains("created"),
        "{out}"
    );
    assert!(
        out.contains("topic: CloudFormation refused CreateStack"),
        "the failure is explained: {out}"
    );
    assert!(err.contains("did not complete"), "{err}");

    r.write("services/topic/t.yaml", TOPIC);
    r.commit("fix topic");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(row(&out, "topic").contains("created"), "{out}");
    assert!(row(&out, "consumer").contains("created"), "{out}");
    assert!(
        row(&out, "queue").contains("skipped") && row(&out, "lone").contains("skipped"),
        "only what was missing: {out}"
    );
}

#[test]
fn a_record_too_large_for_ssm_fails_its_service_before_its_stack_moves() {
    let p = "e2e-large";
    let bucket = format!("{p}-artifacts");
    // 120 functions with an archive of their own each: their keys alone outgrow an SSM
    // parameter's 8 KB. (Functions sharing one archive are written as one entry.)
    let functions: String = (0..120)
        .map(|i| {
            format!(
                "  F{i}:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python3.12\n      Handler: app.handle\n      Role: arn:aws:iam::123456789012:role/r\n      Code: src{i}\n"
            )
        })
        .collect();
    let artifacts: String = (0..120).map(|i| format!("F{i} = \"src{i}\"\n")).collect();
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{p}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n\
             [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{bucket}\"\n"
        ),
    )
    .write(
        "services/many/service.toml",
        &format!("[service]\ntemplate = \"t.yaml\"\n\n[package.artifacts]\n{artifacts}"),
    )
    .write("services/many/t.yaml", &format!("Resources:\n{functions}"))
    .write("services/lone/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/lone/t.yaml", TOPIC);
    for i in 0..120 {
        r.write(
            &format!("services/many/src{i}/app.py"),
            &format!("def handle(e, c):\n    return {i}\n"),
        );
    }
    r.commit("services");
    let s3 = ferry_package::s3_client(&crate::common::config());
    crate::common::rt()
        .block_on(s3.create_bucket().bucket(&bucket).send())
        .unwrap();

    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(row(&out, "many").contains("FAILED"), "{out}");
    assert!(
        out.contains("the deployment record of `many` does not fit in an SSM parameter (8 KB) even without its outputs: its 120 archive key(s)"),
        "{out}"
    );
    assert!(row(&out, "lone").contains("created"), "{out}");
    // Refused before its stack was created: nothing to clean up.
    let engine = ferry_stacks::Engine::for_config(&crate::common::config(), Default::default());
    assert!(
        crate::common::rt()
            .block_on(engine.describe("e2e-large-many-dev"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_second_deploy_of_a_locked_stage_fails_fast_naming_the_holder() {
    let r = monorepo("e2e-lock");
    let holder = r#"{"who":"bob","host":"ci-runner","build":"shop:77","pid":9,"since":1795312984}"#;
    crate::common::put_parameter("/ferry/e2e-lock/dev/lock", holder);
    let (code, _, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 1);
    assert!(err.contains("stage `dev` is locked by bob on ci-runner (pid 9, build shop:77) since 2026-11-22 02:03:04 UTC"), "{err}");
    assert!(err.contains("--force-unlock"), "{err}");
    // SSM wrote the lock just now, whatever date its holder wrote into it: a live lock, which
    // --force-unlock does not take.
    let (code, _, err) = run(&mut xtask(&r, &["deploy", "dev", "--force-unlock"]), None);
    assert_eq!(code, 1);
    assert!(err.contains("so that run is alive"), "{err}");
    // Its holder finishes; the next deploy runs.
    rt().block_on(
        aws_sdk_ssm::Client::new(&config())
            .delete_parameter()
            .name("/ferry/e2e-lock/dev/lock")
            .send(),
    )
    .unwrap();
    let (code, _, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        &mut xtask(&r, &["param", "get", "dev", "/ferry/e2e-lock/dev/lock"]),
        None,
    );
    assert_eq!(code, 1, "released after the deploy: {err}");
}

#[test]
fn protected_stages_refuse_a_dirty_tree_and_pull_requests_deploy_nothing() {
    let r = monorepo("e2e-guard");
    r.write("services/lone/notes.txt", "uncommitted\n");
    let (code, _, err) = run(&mut xtask(&r, &["deploy", "prod"]), None);
    assert_eq!(code, 1);
    assert!(
        err.contains("stage `prod` is protected and the working tree has uncommitted changes"),
        "{err}"
    );

    let mut pr = xtask(&r, &["deploy", "dev"]);
    pr.env("CODEBUILD_BUILD_ID", "shop:1")
        .env("CODEBUILD_WEBHOOK_TRIGGER", "pr/12");
    let (code, out, err) = run(&mut pr, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("deployment is skipped for pull requests (CODEBUILD_WEBHOOK_TRIGGER=pr/12)"),
        "{out}"
    );
    let (_, outputs, _) = run(
        &mut xtask(&r, &["outputs", "dev", "--format", "json"]),
        None,
    );
    assert!(
        !outputs.contains("queue"),
        "nothing was deployed: {outputs}"
    );
}

#[test]
fn a_reference_to_a_missing_output_names_the_key_and_the_keys_that_exist() {
    let r = monorepo("e2e-ref");
    r.write(
        "services/consumer/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${output:queue.QueueUrl}\"\nTopic = \"${output:topic.TopicArn}\"\nStage = \"${stage}\"\n",
    );
    r.commit("wrong key");
    // Refused before anything deploys: the template of `queue` declares its outputs. (A
    // template whose outputs only its deploy knows is refused when it resolves: ferry-outputs'
    // own test.)
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("consumer: parameters.Queue reads output `QueueUrl` of `queue`, which its template does not declare (its outputs are QueueArn)")
            && err.contains("nothing was deployed"),
        "{err}"
    );
}

#[test]
fn a_preview_stage_is_removed_with_its_records() {
    let r = monorepo("e2e-remove");
    let (code, _, err) = run(&mut xtask(&r, &["deploy", "feature/Login"]), None);
    assert_eq!(code, 0, "{err}");
    let (_, outputs, _) = run(
        &mut xtask(&r, &["outputs", "feature/Login", "--format", "env"]),
        None,
    );
    assert!(
        outputs.contains("FERRY_OUTPUT_QUEUE_QUEUEARN=arn:aws:sqs:"),
        "{outputs}"
    );

    let (code, _, err) = run(&mut xtask(&r, &["remove", "prod"]), None);
    assert_eq!(code, 1);
    assert!(
        err.contains("protected") && err.contains("--allow-protected"),
        "{err}"
    );

    let (code, out, err) = run(&mut xtask(&r, &["remove", "feature/Login"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("deleted e2e-remove-consumer-feature-login (consumer)"),
        "{out}"
    );
    assert!(out.contains("4 stack(s) deleted"), "{out}");
    let consumer_at = out.find("consumer)").unwrap();
    assert!(
        consumer_at < out.find("(queue)").unwrap(),
        "dependents go first: {out}"
    );
    let (_, outputs, _) = run(
        &mut xtask(&r, &["outputs", "feature/Login", "--format", "json"]),
        None,
    );
    assert!(!outputs.contains("QueueArn"), "{outputs}");
    // Records are gone: the next deploy finds nothing deployed.
    let (code, out, _) = run(&mut xtask(&r, &["deploy", "feature/Login"]), None);
    assert_eq!(code, 0);
    assert!(row(&out, "queue").contains("created"), "{out}");
}

#[test]
fn a_secure_parameter_is_hashed_by_name_and_version_never_by_value() {
    let r = monorepo("e2e-secret");
    r.write(
        "services/vault/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nToken = \"${ssm:/e2e-secret/token}\"\n",
    )
    .write(
        "services/vault/t.yaml",
        "Parameters:\n  Token: {Type: String, NoEcho: true}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    r.commit("vault");
    let secret = "hunter2";
    let set = |overwrite: bool| {
        let mut args = vec!["param", "set", "dev", "/e2e-secret/token", "--secure"];
        if overwrite {
            args.push("--overwrite");
        }
        let (code, _, err) = run(&mut xtask(&r, &args), Some(secret));
        assert_eq!(code, 0, "{err}");
    };
    set(false);
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(row(&out, "vault").contains(" created "), "{out}");
    assert!(!out.contains(secret) && !err.contains(secret));

    let (code, record, err) = run(
        &mut xtask(
            &r,
            &["param", "get", "dev", "/ferry/e2e-secret/dev/records/vault"],
        ),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let record: serde_json::Value = serde_json::from_str(record.trim()).unwrap();
    let hash = record["parameters_hash"].as_str().unwrap();
    let by_value = ferry_records::parameters_hash(&[("Token".into(), secret.into())].into());
    let by_version = ferry_records::parameters_hash(
        &[("Token".into(), "ssm-secure:/e2e-secret/token@1".into())].into(),
    );
    assert_ne!(hash, by_value, "a record never holds a hash of a secret");
    assert_eq!(hash, by_version);

    // Unchanged: skipped. A new version of the secret (even with the same value): deployed.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(row(&out, "vault").contains("skipped (up to date)"), "{out}");
    set(true);
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(!row(&out, "vault").contains("skipped"), "{out}");
    assert!(row(&out, "queue").contains("skipped (up to date)"), "{out}");
}

#[test]
fn another_stages_outputs_are_read_with_that_stages_region() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"e2e-cross\"\nstack-name = \"{project}-{service}-{stage}\"\n\n\
         [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n\
         [stages.eu]\nregion = \"eu-west-1\"\ndeployment-method = \"direct\"\n",
    )
    .write("services/queue/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/queue/t.yaml", QUEUE)
    .write(
        "services/reader/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nShared = \"${output:dev:queue.QueueArn}\"\n",
    )
    .write(
        "services/reader/t.yaml",
        "Parameters:\n  Shared: {Type: String}\nResources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  Got:\n    Value: !Ref Shared\n",
    );
    r.commit("services");
    // Deploying dev, `${output:dev:…}` is a same-stage read: reader waits for queue's first
    // deploy (they would start together, and reader find no queue stack).
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    // eu reads dev's queue from dev's region, not its own (where dev has no stack).
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "eu"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let outputs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(r.path().join("target/ferry/outputs-eu.json")).unwrap(),
    )
    .unwrap();
    let got = outputs["services"]["reader"]["Got"].as_str().unwrap();
    assert!(got.starts_with("arn:aws:sqs:us-east-1:"), "{got}");
    let own = outputs["services"]["queue"]["QueueArn"].as_str().unwrap();
    assert!(own.starts_with("arn:aws:sqs:eu-west-1:"), "{own}");
}

// Another stage's output changes in a run of that stage, with nothing committed that this
// stage's plan sees: the reader is checked at this stage's next deploy, as an SSM reader is, and
// receives the new value. Before, it kept the old one for good.
#[test]
fn a_reader_of_another_stages_output_receives_its_new_value_at_its_next_deploy() {
    let r = TestRepo::new();
    let project = |v: &str| {
        format!(
            "[project]\nname = \"e2e-cross-new\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\nglobal-inputs = []\n\n\
             [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nvariables = {{ v = \"{v}\" }}\n\n\
             [stages.eu]\nregion = \"eu-west-1\"\ndeployment-method = \"direct\"\nvariables = {{ v = \"eu\" }}\n"
        )
    };
    let echo = "Parameters:\n  V: {Type: String}\nResources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  Echo:\n    Value: !Ref V\n";
    r.write("ferry.toml", &project("one"))
        .write(
            "services/source/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nV = \"${var:v}\"\n",
        )
        .write("services/source/t.yaml", echo)
        .write(
            "services/reader/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nV = \"${output:dev:source.Echo}\"\n",
        )
        .write("services/reader/t.yaml", echo);
    r.commit("services");
    for stage in ["dev", "eu"] {
        let (code, out, err) = run(&mut xtask(&r, &["deploy", stage]), None);
        assert_eq!(code, 0, "{out}\n{err}");
    }
    let got = |r: &TestRepo| -> String {
        let outputs: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(r.path().join("target/ferry/outputs-eu.json")).unwrap(),
        )
        .unwrap();
        outputs["services"]["reader"]["Echo"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(got(&r), "one");
    // dev's own setting changes: only dev's source deploys for it.
    r.write("ferry.toml", &project("two"));
    r.commit("dev's variable");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(row(&out, "source").contains("updated"), "{out}");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "eu"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(row(&out, "source").contains("skipped"), "{out}");
    assert!(
        row(&out, "reader").contains("updated")
            && row(&out, "reader").contains("its parameters differ from its record"),
        "{out}"
    );
    assert_eq!(got(&r), "two");
    // Nothing new: checked, and left alone.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "eu"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        row(&out, "reader").contains("skipped (up to date)"),
        "{out}"
    );
}

#[test]
fn a_stage_variable_names_the_shared_stage_every_preview_reads() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"e2e-shared\"\nstack-name = \"{project}-{service}-{stage}\"\n\n\
         [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nvariables = { data = \"dev\" }\n\n\
         [stages.\"*\"]\nregion = \"eu-west-1\"\ndeployment-method = \"direct\"\nvariables = { data = \"dev\" }\n",
    )
    .write("services/queue/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/queue/t.yaml", QUEUE)
    .write(
        "services/reader/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nShared = \"${output:${var:data}:queue.QueueArn}\"\n",
    )
    .write(
        "services/reader/t.yaml",
        "Parameters:\n  Shared: {Type: String}\nResources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  Got:\n    Value: !Ref Shared\n",
    );
    r.commit("services");
    // In dev the variable names dev itself: reader waits for queue.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    // A preview (in another region) reads dev's queue, with dev's region.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "feature/x"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let outputs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(r.path().join("target/ferry/outputs-feature-x.json")).unwrap(),
    )
    .unwrap();
    let got = outputs["services"]["reader"]["Got"].as_str().unwrap();
    assert!(got.starts_with("arn:aws:sqs:us-east-1:"), "{got}");
}

/// `outputs` of a preview nothing was deployed to says so on standard error, with the named
/// stage a misspelt name most likely meant; standard output stays empty for scripts.
#[test]
fn outputs_of_a_misspelt_stage_say_which_stage_was_meant() {
    let r = monorepo("e2e-misspelt");
    let (code, out, err) = run(&mut xtask(&r, &["outputs", "devv"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("no stack of stage `devv` has been deployed yet; did you mean `dev`?"),
        "{err}"
    );
    // Of the services asked for: said of them, not of the whole stage.
    let (code, out, err) = run(
        &mut xtask(&r, &["outputs", "devv", "--service", "queue"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("no stack of `queue` of stage `devv` has been deployed yet"),
        "{err}"
    );
}

/// A bootstrapped deployer role makes roles only with its stage's permissions boundary on them
/// (it could make itself the account's administrator otherwise): a template declaring
/// `FerryPermissionsBoundary` gets the boundary's name from every deploy, its stage's (the
/// previews share theirs), with no value in service.toml, the template the same bytes in
/// every stage.
#[test]
fn a_template_asking_for_the_permissions_boundary_gets_its_stage_s() {
    let p = "pb";
    let r = monorepo(p);
    r.write(
        "services/lone/t.yaml",
        "Parameters:\n  FerryPermissionsBoundary: {Type: String}\nResources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      PermissionsBoundary: !Sub \"arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${FerryPermissionsBoundary}\"\n      AssumeRolePolicyDocument:\n        Version: \"2012-10-17\"\n        Statement:\n          - Effect: Allow\n            Principal: {Service: lambda.amazonaws.com}\n            Action: sts:AssumeRole\nOutputs:\n  Boundary:\n    Value: !Ref FerryPermissionsBoundary\n",
    );
    r.commit("a role");
    let (code, out, err) = run(&mut xtask(&r, &["validate"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    for (stage, id, boundary) in [
        ("dev", "dev", "ferry-pb-dev-boundary"),
        ("feat/x", "feat-x", "ferry-pb-previews-boundary"),
    ] {
        let (code, out, err) = run(
            &mut xtask(&r, &["deploy", stage, "--service", "lone"]),
            None,
        );
        assert_eq!(code, 0, "{out}\n{err}");
        let info = rt()
            .block_on(engine.describe(&format!("{p}-lone-{id}")))
            .unwrap()
            .unwrap();
        assert_eq!(info.parameters["FerryPermissionsBoundary"], boundary);
        assert_eq!(info.outputs["Boundary"], boundary);
    }
    // A boundary made otherwise, named in service.toml, is kept.
    r.write(
        "services/lone/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nFerryPermissionsBoundary = \"team-boundary\"\n",
    );
    r.commit("a boundary of our own");
    let (code, out, err) = run(
        &mut xtask(&r, &["deploy", "dev", "--service", "lone"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let info = rt()
        .block_on(engine.describe(&format!("{p}-lone-dev")))
        .unwrap()
        .unwrap();
    assert_eq!(info.parameters["FerryPermissionsBoundary"], "team-boundary");
}

/// A stand-in for the framework's `package` that says it started (`compiling` in its folder),
/// takes 2 s, then writes what the real one writes: the template, one archive, the state file.
const SLOW_SLS: &str = r#"#!/bin/sh
touch compiling
sleep 2
while [ $# -gt 0 ]; do
  case "$1" in --package) out="$2"; shift;; esac; shift
done
mkdir -p "$out"
python3 -c "
import zipfile,sys
with zipfile.ZipFile(sys.argv[1],'w') as z: z.writestr('h.py','def handle(e,c): return 1\n')
" "$out/cc-sls.zip"
cat > "$out/cloudformation-template-update-stack.json" <<'T'
{"Resources": {
  "ServerlessDeploymentBucket": {"Type": "AWS::S3::Bucket"},
  "Q": {"Type": "AWS::SQS::Queue"}}}
T
cat > "$out/serverless-state.json" <<'T'
{"service": {"service": "cc-sls", "provider": {"stage": "dev"}}}
T
"#;

/// Ctrl-C while a Serverless service compiles: the framework's CLI runs on to its end (in a
/// process group of its own), and then no stack operation starts. Before, the stack was
/// created after the interrupt, though an interrupted run "starts nothing new".
/// A repository of project `project` whose Serverless service `sls` compiles slowly (see
/// [`SLOW_SLS`]), deploying to stage dev.
fn slow_compile(project: &str) -> TestRepo {
    let r = TestRepo::new();
    let bucket = format!("{project}-compile-cancel-art");
    r.write(
        "ferry.toml",
        &format!("[project]\nname = \"{project}\"\n\n[stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{bucket}\"\n"),
    )
    .write(
        "services/sls/service.toml",
        "[service]\nkind = \"serverless\"\nserverless-command = [\"./fake-sls\"]\n",
    )
    .write(
        "services/sls/serverless.yml",
        "service: cc-sls\nprovider:\n  name: aws\n",
    )
    .write("services/sls/fake-sls", SLOW_SLS)
    .write(".gitignore", "target/\ncompiling\n");
    use std::os::unix::fs::PermissionsExt;
    let cli = r.path().join("services/sls/fake-sls");
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    r.commit("a slow compile");
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(s3.create_bucket().bucket(&bucket).send())
        .unwrap();
    r
}

/// Starts `args` on `r` and waits until its service's compile has started.
fn started_compiling(r: &TestRepo, args: &[&str]) -> std::process::Child {
    let mut c = xtask(r, args);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let started = r.path().join("services/sls/compiling");
    let t0 = std::time::Instant::now();
    while !started.exists() {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the run ended before its compile: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(t0.elapsed().as_secs() < 120, "the compile never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

#[test]
fn a_run_interrupted_during_a_compile_starts_no_stack_operation() {
    let r = slow_compile("cc");
    let child = started_compiling(&r, &["deploy", "dev"]);
    let started = r.path().join("services/sls/compiling");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_ne!(out.status.code(), Some(0), "{stdout}\n{err}");
    assert!(err.contains("interrupted ("), "{err}");
    assert!(row(&stdout, "sls").contains("cancelled"), "{stdout}\n{err}");
    assert!(!err.contains("_IN_PROGRESS"), "no stack operation: {err}");
    // Nothing failed: nothing to fix, as the end said.
    assert!(!err.contains("fix the failures above"), "{err}");
    // The next run finds no record and no stack: it creates the stack.
    std::fs::remove_file(&started).unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("not deployed yet"),
        "nothing was deployed: {out}\n{err}"
    );
}

/// A batch node aborted by a second Ctrl-C says that the batch keeps the stage's lock, as it
/// does (its finish, or the node run again, goes on under it); it said "the lock is released".
#[test]
fn a_batch_node_aborted_says_the_batch_keeps_the_lock() {
    let r = slow_compile("ccb");
    let child = started_compiling(&r, &["batch", "node", "dev", "sls", "--batch", "b1"]);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("aborted by a second interrupt; the batch keeps the stage's lock"),
        "{err}"
    );
    let (code, lock, err) = run(
        &mut xtask(&r, &["param", "get", "dev", "/ferry/ccb/dev/lock"]),
        None,
    );
    assert_eq!(code, 0, "the batch's lock is kept: {err}");
    assert!(lock.contains("\"b1\""), "{lock}");
    let (code, _, err) = run(
        &mut xtask(&r, &["batch", "finish", "dev", "--batch", "b1"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
}

/// A deploy of two services, one importing the other's export without depending on it, warns
/// as validate does: nothing orders them, and the import may fail ("No export named …"; a
/// probe's first deploy of kpanic9/aws-vpc-cf failed so, with nothing said of the order).
#[test]
fn a_deploy_of_an_importer_beside_its_unordered_exporter_warns() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"e2e-unordered\"\n\n[stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n",
    )
    .write("services/database/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write(
        "services/database/t.yaml",
        "Resources:\n  T:\n    Type: AWS::SQS::Queue\nOutputs:\n  Name:\n    Value: !Ref T\n    Export:\n      Name: !Sub ${AWS::StackName}-Name\n",
    )
    .write(
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nStage = \"${stage}\"\n",
    )
    .write(
        "services/api/t.yaml",
        "Parameters:\n  Stage: {Type: String}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !ImportValue\n        Fn::Sub: database-${Stage}-Name\n",
    );
    r.commit("two services");
    // Whether the import finds the export depends on which stack comes first: only the
    // warning is asserted.
    let (_, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert!(
        err.contains("warning: api: imports `database-dev-Name` (Fn::ImportValue), which the template of database exports, and api does not depend on database"),
        "{out}\n{err}"
    );
}
