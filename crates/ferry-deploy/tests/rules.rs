//! The deploy rules, at the crate level, against the local emulator: a service skips by its
//! record; a dependent is re-checked and redeploys only when what it receives changed; a new
//! version of an SSM value redeploys its reader though no file changed; one failure skips only
//! its dependents.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::SdkConfig;
use ferry_changes::{Head, Repo};
use ferry_ci::CiContext;
use ferry_credentials::Masker;
use ferry_deploy::{
    DeployContext, DeployOptions, DeployReport, ServiceError, ServiceResult, Source,
};
use ferry_graph::Cancel;
use ferry_plan::PlanRequest;
use ferry_stacks::Method;
use ferry_test_support::proxy::{Proxy, Request, Rule as ProxyRule};
use ferry_test_support::{TestRepo, moto};

// The output is a fixed value: the emulator may replace a topic on update (a new ARN), which
// would change what the reader receives.
const TOPIC: &str = "Resources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  TopicArn:\n    Value: !Sub \"${AWS::StackName}-topic\"\n";
const TOPIC_AND_QUEUE: &str = "Resources:\n  T:\n    Type: AWS::SNS::Topic\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  TopicArn:\n    Value: !Sub \"${AWS::StackName}-topic\"\n";
const TOPIC_RENAMED_OUTPUT: &str = "Resources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  TopicArn:\n    Value: !Sub \"${AWS::StackName}-topic-v2\"\n";
const READER: &str = "Parameters:\n  Topic: {Type: String}\nResources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub \"/wiring/${AWS::StackName}\"\n      Type: String\n      Value: !Ref Topic\n";
const SECRET_READER: &str = "Parameters:\n  Token: {Type: String, NoEcho: true}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
// An attribute an SNS topic does not have: refused at CreateStack.
const BROKEN: &str =
    "Resources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  X:\n    Value: !GetAtt T.Nope\n";
const QUEUE: &str = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";

async fn config() -> SdkConfig {
    ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some(moto().endpoint()),
        },
    )
    .await
}

/// A repository of project `project` with stage `dev` and `services`: (name, template, extra
/// service.toml lines).
fn repo(project: &str, services: &[(&str, &str, &str)]) -> TestRepo {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n").write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{project}\"\n\n[stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/{project}/dev/\"\n"
        ),
    );
    for (name, template, extra) in services {
        r.write(&format!("services/{name}/t.yaml"), template).write(
            &format!("services/{name}/service.toml"),
            &format!("[service]\ntemplate = \"t.yaml\"\n{extra}"),
        );
    }
    r.commit("services");
    r
}

/// One deploy of stage `dev`, planned from its records as `cargo xtask deploy dev` plans it.
async fn deploy(r: &TestRepo, config: &SdkConfig) -> DeployReport {
    deploy_with(r, config, None, &[], None).await
}

/// [`deploy`] as an approval does it: each service's parameters must resolve to `reviewed`.
async fn deploy_reviewed(
    r: &TestRepo,
    config: &SdkConfig,
    reviewed: Option<&BTreeMap<String, BTreeMap<String, String>>>,
) -> DeployReport {
    deploy_with(r, config, reviewed, &[], None).await
}

/// [`deploy`] of `services` and their dependencies (`deploy dev --service …`).
async fn deploy_only(r: &TestRepo, config: &SdkConfig, services: &[&str]) -> DeployReport {
    deploy_with(r, config, None, services, None).await
}

/// [`deploy`] cancelled (Ctrl-C) as soon as `service` is done: nothing after it starts.
async fn deploy_cancelled_after(r: &TestRepo, config: &SdkConfig, service: &str) -> DeployReport {
    deploy_with(r, config, None, &[], Some(service)).await
}

async fn deploy_with(
    r: &TestRepo,
    config: &SdkConfig,
    reviewed: Option<&BTreeMap<String, BTreeMap<String, String>>>,
    services: &[&str],
    cancel_after: Option<&str>,
) -> DeployReport {
    in_context(r, config, reviewed, services, async |ctx, plan, cancel| {
        let on = |e: ferry_deploy::Event| {
            if let ferry_deploy::Event::Finished { service, .. } = e
                && Some(service.as_str()) == cancel_after
            {
                cancel.cancel();
            }
        };
        ferry_deploy::deploy(ctx, plan, &options(), &on).await
    })
    .await
}

/// The options of every run here: the emulator publishes no outputs after a change set.
fn options() -> DeployOptions {
    DeployOptions {
        method: Some(Method::Direct),
        ..Default::default()
    }
}

/// `work` given the deploy context of stage `dev` at the head commit, its plan (of `services`
/// and their dependencies, all when empty) and its Ctrl-C; `reviewed`: an approval's
/// parameters.
async fn in_context<T>(
    r: &TestRepo,
    config: &SdkConfig,
    reviewed: Option<&BTreeMap<String, BTreeMap<String, String>>>,
    services: &[&str],
    work: impl AsyncFnOnce(&DeployContext<'_>, &ferry_plan::Plan, &Cancel) -> T,
) -> T {
    let ws = ferry_manifest::load(r.path()).unwrap();
    let stage = ws.stage("dev").unwrap();
    let records = ferry_deploy::record_store(&ws, &stage, config);
    let state = ferry_deploy::state::read(&ws, &stage, config, &records)
        .await
        .unwrap();
    let repo = Repo::open(r.path());
    let mut req = PlanRequest::new(
        "dev",
        Head::Rev("HEAD".into()),
        CiContext::from_vars(|_| None),
    );
    state.apply(&mut req);
    req.services = services.iter().map(|s| s.to_string()).collect();
    let plan = ferry_plan::plan(&ws, repo.as_ref(), &req).unwrap();
    let commit = repo.unwrap().head_commit().unwrap().to_string();
    let (masker, cancel) = (Masker::new(), Cancel::new());
    let ctx = DeployContext {
        ws: &ws,
        stage: &stage,
        config,
        records: &records,
        previous: &state.records,
        source: Source {
            commit,
            dirty: false,
        },
        masker: &masker,
        cancel: &cancel,
        package: None,
        adopt: false,
        builds: None,
        expand_sam: None,
        release: None,
        expected_archives: None,
        declared_parameters_only: false,
        other_stages: &BTreeMap::new(),
        fixed_parameters: reviewed,
    };
    work(&ctx, &plan, &cancel).await
}

/// Writes the SecureString `name` (a new version of it when it exists).
async fn put_secure(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

fn results(report: &DeployReport) -> BTreeMap<String, String> {
    report
        .services
        .iter()
        .map(|s| (s.name.clone(), s.result.to_string()))
        .collect()
}

fn expect(report: &DeployReport, want: &[(&str, &str)]) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(results(report), want, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_redeploys_only_when_what_it_receives_changed() {
    let config = config().await;
    let r = repo(
        "rules-dep",
        &[
            ("topic", TOPIC, ""),
            (
                "reader",
                READER,
                "depends-on = [\"topic\"]\n\n[parameters]\nTopic = \"${output:topic.TopicArn}\"\n",
            ),
        ],
    );
    let first = deploy(&r, &config).await;
    expect(&first, &[("topic", "created"), ("reader", "created")]);
    assert!(first.succeeded());

    // Nothing changed: both skip by their records, without a stack operation.
    let again = deploy(&r, &config).await;
    expect(
        &again,
        &[
            ("topic", "skipped (up to date)"),
            ("reader", "skipped (up to date)"),
        ],
    );

    // The topic's template changes, its output does not: the reader is checked and skips.
    r.write("services/topic/t.yaml", TOPIC_AND_QUEUE);
    r.commit("a queue beside the topic");
    let report = deploy(&r, &config).await;
    expect(
        &report,
        &[("topic", "updated"), ("reader", "skipped (up to date)")],
    );
    let reader = report.services.iter().find(|s| s.name == "reader").unwrap();
    assert!(
        matches!(&reader.result, ServiceResult::UpToDate { why, .. } if why.contains("parameters unchanged")),
        "{reader:?}"
    );

    // Now the output the reader receives changes: the reader redeploys.
    r.write("services/topic/t.yaml", TOPIC_RENAMED_OUTPUT);
    r.commit("the output changes");
    let report = deploy(&r, &config).await;
    expect(&report, &[("topic", "updated"), ("reader", "updated")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_a_run_never_came_to_check_is_checked_by_the_next_one() {
    let config = config().await;
    let r = repo(
        "rules-owed",
        &[
            ("owed-topic", TOPIC, ""),
            (
                "owed-reader",
                READER,
                "depends-on = [\"owed-topic\"]\n\n[parameters]\nTopic = \"${output:owed-topic.TopicArn}\"\n",
            ),
            ("owed-other", QUEUE, ""),
        ],
    );
    expect(
        &deploy(&r, &config).await,
        &[
            ("owed-topic", "created"),
            ("owed-reader", "created"),
            ("owed-other", "created"),
        ],
    );

    // The topic's output changes, and the run stops once the topic is deployed (Ctrl-C; a
    // kill, or the topic's tests failing, leave the same behind): the reader never got it.
    r.write("services/owed-topic/t.yaml", TOPIC_RENAMED_OUTPUT);
    r.commit("the output changes");
    let stopped = deploy_cancelled_after(&r, &config, "owed-topic").await;
    expect(
        &stopped,
        &[
            ("owed-topic", "updated"),
            ("owed-reader", "cancelled"),
            ("owed-other", "skipped (up to date)"),
        ],
    );

    // Nothing changed in git since: the topic is up to date by its record, and the reader is
    // checked all the same, and receives the new output. The plan says so (before, it said
    // nothing would deploy).
    let (action, reasons) = in_context(&r, &config, None, &[], async |_, plan, _| {
        let reader = plan.service("owed-reader").unwrap();
        (reader.action, reader.reasons.clone())
    })
    .await;
    assert_eq!(action, ferry_plan::Action::Deploy);
    assert_eq!(
        reasons,
        [ferry_plan::Reason::NotReceived {
            of: vec!["owed-topic".into()]
        }]
    );
    let next = deploy(&r, &config).await;
    expect(
        &next,
        &[
            ("owed-topic", "skipped (up to date)"),
            ("owed-reader", "updated"),
            ("owed-other", "skipped (up to date)"),
        ],
    );
    let reader = next
        .services
        .iter()
        .find(|s| s.name == "owed-reader")
        .unwrap();
    assert!(
        reader
            .why
            .contains("owed-topic deployed since it last received its outputs"),
        "{reader:?}"
    );

    // Once it has, nothing is checked again.
    let again = deploy(&r, &config).await;
    expect(
        &again,
        &[
            ("owed-topic", "skipped (up to date)"),
            ("owed-reader", "skipped (up to date)"),
            ("owed-other", "skipped (up to date)"),
        ],
    );
    assert_eq!(again.output_reads, 0, "{again:#?}");

    // A dependency deployed without changing what the reader receives: the reader is checked,
    // found up to date, and that check is recorded, so the run after checks nothing.
    r.write(
        "services/owed-topic/t.yaml",
        TOPIC_AND_QUEUE.replace("-topic", "-topic-v2").as_str(),
    );
    r.commit("a queue beside the topic, same output");
    let stopped = deploy_cancelled_after(&r, &config, "owed-topic").await;
    expect(
        &stopped,
        &[
            ("owed-topic", "updated"),
            ("owed-reader", "cancelled"),
            ("owed-other", "skipped (up to date)"),
        ],
    );
    let next = deploy(&r, &config).await;
    expect(
        &next,
        &[
            ("owed-topic", "skipped (up to date)"),
            ("owed-reader", "skipped (up to date)"),
            ("owed-other", "skipped (up to date)"),
        ],
    );
    assert!(next.output_reads > 0, "the reader was checked: {next:#?}");
    let after = deploy(&r, &config).await;
    assert_eq!(after.output_reads, 0, "{after:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_of_an_ssm_value_redeploys_its_reader_and_no_record_holds_it() {
    let config = config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let put = |value: &'static str| put_secure(&ssm, "/rules-ssm/dev/token", value);
    put("first-s3cr3t").await;
    let r = repo(
        "rules-ssm",
        &[
            (
                "app",
                SECRET_READER,
                "[parameters]\nToken = \"${ssm:token}\"\n",
            ),
            ("other", QUEUE, ""),
            // A reader of the same value, depending on another (checked) reader.
            (
                "feed",
                SECRET_READER,
                "depends-on = [\"app\"]\n\n[parameters]\nToken = \"${ssm:token}\"\n",
            ),
        ],
    );
    expect(
        &deploy(&r, &config).await,
        &[
            ("app", "created"),
            ("feed", "created"),
            ("other", "created"),
        ],
    );
    // Same version: the readers are checked (their value lives outside git) and skip.
    expect(
        &deploy(&r, &config).await,
        &[
            ("app", "skipped (up to date)"),
            ("feed", "skipped (up to date)"),
            ("other", "skipped (up to date)"),
        ],
    );
    // A new version, no file changed: the readers redeploy, nothing else does, and each says
    // why: app the value read outside git (before, "what it receives changed"), feed that
    // value or its dependency's outputs (before, only the dependency).
    put("second-s3cr3t").await;
    let report = deploy(&r, &config).await;
    expect(
        &report,
        &[
            ("app", "updated"),
            ("feed", "updated"),
            ("other", "skipped (up to date)"),
        ],
    );
    let why = |s: &str| {
        report
            .services
            .iter()
            .find(|r| r.name == s)
            .unwrap()
            .why
            .clone()
    };
    assert_eq!(
        why("app"),
        "reads values kept outside git (SSM, S3): checked against its record: its parameters differ from its record (a value it reads outside git changed: an SSM parameter's new version, or another stage's output)"
    );
    assert_eq!(
        why("feed"),
        "dependent of app; reads values kept outside git (SSM, S3): its parameters differ from its record (a dependency's outputs or a value it reads outside git changed)"
    );
    // The record names the secret by version, never by value or a hash of it.
    let record = ssm
        .get_parameter()
        .name("/ferry/rules-ssm/dev/records/app")
        .send()
        .await
        .unwrap();
    let text = record.parameter().and_then(|p| p.value()).unwrap();
    assert!(!text.contains("s3cr3t"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_resolved_past_cloudformations_limit_fails_its_service_without_quoting_it() {
    let config = config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    put_secure(&ssm, "/rules-long/dev/token", "long-s3cr3t-value").await;
    // Text around the reference: no check before the deploy knows its length.
    let padding = "x".repeat(4080);
    let r = repo(
        "rules-long",
        &[
            (
                "long",
                SECRET_READER,
                &format!("[parameters]\nToken = \"${{ssm:token}}{padding}\"\n"),
            ),
            ("beside", QUEUE, ""),
        ],
    );
    let report = deploy(&r, &config).await;
    let long = report.services.iter().find(|s| s.name == "long").unwrap();
    let ServiceResult::Failed { error } = &long.result else {
        panic!("{report:#?}");
    };
    let long = error.to_string();
    assert!(
        long.contains("long: parameter Token resolves to 4097 bytes, and CloudFormation takes at most 4096 bytes per parameter value: nothing of long was deployed"),
        "{long}"
    );
    assert!(!long.contains("s3cr3t"), "{long}");
    assert_eq!(results(&report)["beside"], "created");
    // Nothing of it was created.
    let stacks = ferry_stacks::Engine::for_config(&config, ferry_stacks::DeployOptions::default())
        .list()
        .await
        .unwrap();
    assert!(
        !stacks.stacks.contains_key("long-dev"),
        "{:?}",
        stacks.stacks.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_pinned_to_a_label_redeploys_when_the_label_moves_not_on_a_new_version() {
    let config = config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let name = "/rules-ssmlabel/dev/token";
    let put = |value: &'static str| put_secure(&ssm, name, value);
    let label = |version: i64| {
        ssm.label_parameter_version()
            .name(name)
            .parameter_version(version)
            .labels("live")
            .send()
    };
    put("first-s3cr3t").await;
    label(1).await.unwrap();
    let r = repo(
        "rules-ssmlabel",
        &[(
            "pinned",
            SECRET_READER,
            "[parameters]\nToken = \"${ssm:token:live}\"\n",
        )],
    );
    expect(&deploy(&r, &config).await, &[("pinned", "created")]);
    // A new version the label does not name changes nothing the reader receives.
    put("second-s3cr3t").await;
    expect(
        &deploy(&r, &config).await,
        &[("pinned", "skipped (up to date)")],
    );
    // The label moves to it: the reader redeploys.
    label(2).await.unwrap();
    expect(&deploy(&r, &config).await, &[("pinned", "updated")]);
    // A label nobody set fails the reader's deploy, saying which.
    r.write(
        "services/pinned/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n[parameters]\nToken = \"${ssm:token:gone}\"\n",
    );
    r.commit("a label nobody set");
    let report = deploy(&r, &config).await;
    let pinned = &report.services[0];
    let ServiceResult::Failed { error } = &pinned.result else {
        panic!("{pinned:?}");
    };
    assert!(
        error.to_string().contains("has no version or label `gone`"),
        "{error}"
    );
}

// A parameter of an SSM parameter type: CloudFormation reads the parameter it names; the output
// shows what the stack received.
const SSM_TYPED: &str = "Parameters:\n  Setting:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: /rules-ssmtype/dev/setting\nResources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  Setting:\n    Value: !Ref Setting\n";

/// The value of output `Setting` of `service` after a deploy.
fn setting(report: &DeployReport, service: &str) -> String {
    report.outputs.services[service]["Setting"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_of_the_parameter_an_ssm_typed_template_parameter_names_redeploys() {
    let config = config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let put = |name: &'static str, value: &'static str| {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
    };
    put("/rules-ssmtype/dev/setting", "one").await.unwrap();
    put("/rules-ssmtype/dev/other", "first").await.unwrap();
    let r = repo(
        "rules-ssmtype",
        &[
            // The template's default names the parameter.
            ("bydefault", SSM_TYPED, ""),
            // service.toml names another.
            (
                "byname",
                SSM_TYPED,
                "[parameters]\nSetting = \"/rules-ssmtype/${stage}/other\"\n",
            ),
        ],
    );
    let report = deploy(&r, &config).await;
    expect(&report, &[("bydefault", "created"), ("byname", "created")]);
    assert_eq!(setting(&report, "bydefault"), "one");
    assert_eq!(setting(&report, "byname"), "first");
    // Same versions: both are checked (the values live outside git) and skip.
    expect(
        &deploy(&r, &config).await,
        &[
            ("bydefault", "skipped (up to date)"),
            ("byname", "skipped (up to date)"),
        ],
    );
    // A new version of one of them, no file changed: its stack redeploys and receives it.
    put("/rules-ssmtype/dev/setting", "two").await.unwrap();
    let report = deploy(&r, &config).await;
    expect(
        &report,
        &[("bydefault", "updated"), ("byname", "skipped (up to date)")],
    );
    assert_eq!(setting(&report, "bydefault"), "two");
    assert_eq!(setting(&report, "byname"), "first");

    // A name that is no parameter fails that service before any stack operation, naming it.
    r.write(
        "services/byname/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n[parameters]\nSetting = \"/rules-ssmtype/${stage}/missing\"\n",
    );
    r.commit("a parameter that does not exist");
    let report = deploy(&r, &config).await;
    expect(
        &report,
        &[("bydefault", "skipped (up to date)"), ("byname", "FAILED")],
    );
    let byname = report.services.iter().find(|s| s.name == "byname").unwrap();
    let ServiceResult::Failed { error } = &byname.result else {
        panic!("{byname:?}");
    };
    assert_eq!(
        error.to_string(),
        "byname: template parameter `Setting` is of an SSM parameter type and names SSM parameter `/rules-ssmtype/dev/missing`, which does not exist in us-east-1; CloudFormation would refuse the stack: create the parameter, or pass the name of another under [parameters] in its service.toml"
    );
    assert_eq!(
        setting(&report, "byname"),
        "first",
        "its stack was left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failure_skips_only_its_dependents() {
    let config = config().await;
    let r = repo(
        "rules-fail",
        &[
            ("broken", BROKEN, ""),
            ("after", QUEUE, "depends-on = [\"broken\"]\n"),
            ("independent", QUEUE, ""),
        ],
    );
    let report = deploy(&r, &config).await;
    expect(
        &report,
        &[
            ("broken", "FAILED"),
            ("after", "skipped (broken failed)"),
            ("independent", "created"),
        ],
    );
    assert!(!report.succeeded());
    let broken = report.services.iter().find(|s| s.name == "broken").unwrap();
    let ServiceResult::Failed { error } = &broken.result else {
        panic!("{broken:?}");
    };
    // The failure is typed, with its source: the stack operation.
    assert!(
        matches!(error.as_ref(), ServiceError::Stack(_)),
        "{error:?}"
    );

    // The next run redoes exactly what is missing: the failed service and its dependent.
    r.write("services/broken/t.yaml", QUEUE);
    r.commit("fixed");
    let report = deploy(&r, &config).await;
    expect(
        &report,
        &[
            ("broken", "created"),
            ("after", "created"),
            ("independent", "skipped (up to date)"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_deploys_only_the_parameters_that_were_reviewed() {
    let config = config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let put = |value: &'static str| put_secure(&ssm, "/rules-approve/dev/token", value);
    put("reviewed-s3cr3t").await;
    let r = repo(
        "rules-approve",
        &[(
            "approved",
            SECRET_READER,
            "[parameters]\nToken = \"${ssm:token}\"\n",
        )],
    );
    // What the review kept: the SecureString by name and version, never its value.
    let reviewed = BTreeMap::from([(
        "approved".to_string(),
        BTreeMap::from([(
            "Token".to_string(),
            "ssm-secure:/rules-approve/dev/token@1".to_string(),
        )]),
    )]);
    expect(
        &deploy_reviewed(&r, &config, Some(&reviewed)).await,
        &[("approved", "created")],
    );
    // The secret moved to another version since the review: refused, nothing deployed.
    put("rotated-s3cr3t").await;
    r.write(
        "services/approved/t.yaml",
        &format!("{SECRET_READER}# v2\n"),
    );
    r.commit("approved v2");
    let report = deploy_reviewed(&r, &config, Some(&reviewed)).await;
    let app = report
        .services
        .iter()
        .find(|s| s.name == "approved")
        .unwrap();
    let ServiceResult::Failed { error } = &app.result else {
        panic!("{:?}", app.result);
    };
    assert!(
        matches!(**error, ServiceError::ParametersChanged { .. }),
        "{error}"
    );
    assert!(
        error.to_string().starts_with(
            "approved: its parameters Token resolve to other values than the review showed"
        ),
        "{error}"
    );
    assert!(!error.to_string().contains("s3cr3t"), "{error}");
}

/// An approval checks every reviewed service's parameters before the first stack moves: a
/// review that no longer holds for one service deploys none, not the others first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_that_no_longer_holds_for_one_service_deploys_none() {
    let config = config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let put = |value: &'static str| put_secure(&ssm, "/rules-stale/dev/token", value);
    put("reviewed-s3cr3t").await;
    let r = repo(
        "rules-stale",
        &[
            ("plain", QUEUE, ""),
            (
                "secret",
                SECRET_READER,
                "[parameters]\nToken = \"${ssm:token}\"\n",
            ),
        ],
    );
    expect(
        &deploy(&r, &config).await,
        &[("plain", "created"), ("secret", "created")],
    );
    // Both change; the review saw version 1 of the secret.
    r.write("services/plain/t.yaml", &format!("{QUEUE}# v2\n"));
    r.write("services/secret/t.yaml", &format!("{SECRET_READER}# v2\n"));
    r.commit("v2");
    let reviewed = BTreeMap::from([
        ("plain".to_string(), BTreeMap::new()),
        (
            "secret".to_string(),
            BTreeMap::from([(
                "Token".to_string(),
                "ssm-secure:/rules-stale/dev/token@1".to_string(),
            )]),
        ),
    ]);
    let both = ferry_deploy::Selection {
        deploy: ["plain", "secret"].map(String::from).into(),
        candidates: ["plain", "secret"].map(String::from).into(),
        why: BTreeMap::new(),
    };
    let check = async |reviewed| {
        in_context(&r, &config, Some(reviewed), &[], async |ctx, _, _| {
            ferry_deploy::check_review(ctx, &both, &options()).await
        })
        .await
    };
    // As reviewed: the check passes.
    check(&reviewed).await.unwrap();
    // The secret rotated since the review: the check fails, naming only that service.
    put("rotated-s3cr3t").await;
    let error = check(&reviewed).await.unwrap_err();
    let ferry_deploy::ReviewMoved::Changed { changed, unchecked } = &error else {
        panic!("{error:?}");
    };
    assert!(unchecked.is_empty(), "{error}");
    assert_eq!(changed.len(), 1, "{error}");
    assert!(
        matches!(&*changed[0], ServiceError::ParametersChanged { service, names }
            if service == "secret" && names == &["Token".to_string()]),
        "{error}"
    );
    assert!(
        error.to_string().starts_with(
            "what the review fixed no longer holds, so nothing was deployed: secret: its parameters Token"
        ),
        "{error}"
    );
    assert!(!error.to_string().contains("s3cr3t"), "{error}");
    // The secret gone: nothing is known to have changed, it could not be checked; said so.
    ssm.delete_parameter()
        .name("/rules-stale/dev/token")
        .send()
        .await
        .unwrap();
    let error = check(&reviewed).await.unwrap_err();
    assert!(
        matches!(&error, ferry_deploy::ReviewMoved::Unchecked(e) if e.len() == 1),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("the reviewed parameters could not be checked, so nothing was deployed: "),
        "{error}"
    );
    put("rotated-s3cr3t").await;
    // Neither check moved a stack or wrote a record: both still deploy their change.
    expect(
        &deploy(&r, &config).await,
        &[("plain", "updated"), ("secret", "updated")],
    );
}

/// Waiting for another process's packaging of the same folder ends when the run is cancelled:
/// a Ctrl-C does not wait out the other build.
#[tokio::test]
async fn a_cancelled_run_stops_waiting_for_another_process_packaging() {
    let r = repo("wait-cancel", &[("a", QUEUE, "")]);
    let ws = ferry_manifest::load(r.path()).unwrap();
    let stage = ws.stage("dev").unwrap();
    let dir = r.path().join("target/ferry/package");
    // Another process holds the folder (its lock is the operating system's: a second open file
    // of this process conflicts just as another process's does).
    let _theirs = ferry_package::FolderLock::try_take(&dir).unwrap().unwrap();
    let cancel = Cancel::new();
    let options = ferry_deploy::PrepareOptions {
        request: ferry_deploy::package_request(
            &ws,
            vec!["a".into()],
            &CiContext::from_vars(|_| None),
        )
        .unwrap(),
        dir: &dir,
        create_bucket: false,
        cancel: &cancel,
    };
    let waited = std::sync::atomic::AtomicBool::new(false);
    let on = |e: ferry_package::Event| {
        if matches!(e, ferry_package::Event::Waiting { .. }) {
            waited.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let config = config().await;
    let prepared = ferry_deploy::prepare(&ws, &stage, &config, &options, &|s| s.to_string(), &on);
    let canceller = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        cancel.cancel();
    };
    let (result, ()) = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        tokio::join!(prepared, canceller)
    })
    .await
    .expect("stops waiting once cancelled");
    assert!(
        waited.load(std::sync::atomic::Ordering::SeqCst),
        "it waited first"
    );
    let e = result.unwrap_err().to_string();
    assert!(
        e.starts_with(
            "nothing was packaged: the run was cancelled while another process was packaging into"
        ),
        "{e}"
    );
}

#[test]
fn a_deploy_checks_the_services_that_read_values_kept_in_aws_though_no_file_changed() {
    let r = repo(
        "rules-outside",
        &[
            ("plain", QUEUE, ""),
            // A dynamic reference only in a parameter's description: no stack operation
            // reads it (before, each new version of it was a stack operation).
            (
                "described",
                "Parameters:\n  Bucket:\n    Type: String\n    Default: b\n    Description: 'the value of {{resolve:ssm:/shop/bucket}}'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
                "",
            ),
            ("typed", SSM_TYPED, ""),
            // One in a SAM template's Globals is read by every function.
            (
                "globals",
                "Transform: AWS::Serverless-2016-10-31\nGlobals:\n  Function:\n    Environment:\n      Variables:\n        T: '{{resolve:ssm:/shop/t}}'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
                "",
            ),
            ("after-typed", QUEUE, "depends-on = [\"typed\"]\n"),
            (
                "reader",
                SECRET_READER,
                "[parameters]\nToken = \"${ssm:token}\"\n",
            ),
        ],
    );
    // Serverless Framework services: one reads SSM when it compiles, one an S3 object through
    // an included file, one only the environment (not kept in AWS), one another stack's outputs
    // (that stack's deploy re-checks it when it is a service's).
    for (name, config) in [
        (
            "sls-ssm",
            "service: a\nprovider:\n  name: aws\n  environment:\n    TABLE: ${ssm:/shop/table}\n",
        ),
        (
            "sls-s3",
            "service: b\nprovider:\n  name: aws\ncustom: ${file(./custom.yml)}\n",
        ),
        (
            "sls-env",
            "service: c\nprovider:\n  name: aws\n  environment:\n    WHO: ${env:USER}\n",
        ),
        (
            "sls-cf",
            "service: d\nprovider:\n  name: aws\n  environment:\n    Q: ${cf:queues-${sls:stage}.Url}\n",
        ),
    ] {
        r.write(&format!("services/{name}/serverless.yml"), config)
            .write(
                &format!("services/{name}/service.toml"),
                "[service]\nkind = \"serverless\"\n",
            );
    }
    r.write(
        "services/sls-s3/custom.yml",
        "config: ${s3:shop-config/app.json}\n",
    );
    r.commit("serverless services");
    let ws = ferry_manifest::load(r.path()).unwrap();
    let repo = Repo::open(r.path());
    let mut req = PlanRequest::new(
        "dev",
        Head::Rev("HEAD".into()),
        CiContext::from_vars(|_| None),
    );
    req.since = Some("HEAD".into());
    let mut plan = ferry_plan::plan(&ws, repo.as_ref(), &req).unwrap();
    assert!(
        plan.order.is_empty(),
        "nothing changed since HEAD: {plan:?}"
    );
    let every: Vec<&str> = ws.services.iter().map(|s| s.name.as_str()).collect();
    // The plan says of each skip a deploy checks why.
    ferry_deploy::mark_checks(&ws, &mut plan, &recorded(&every));
    let checked: Vec<(&str, &str)> = plan
        .services
        .iter()
        .filter_map(|s| Some((s.name.as_str(), s.checked.as_deref()?)))
        .collect();
    let outside = "reads values kept outside git (SSM, S3)";
    assert_eq!(
        checked,
        [
            ("globals", outside),
            ("reader", outside),
            ("sls-s3", outside),
            ("sls-ssm", outside),
            ("typed", outside),
            ("after-typed", "dependent of typed"),
        ]
    );
    let candidates: Vec<String> = ferry_deploy::candidates(&ws, &plan, &recorded(&every))
        .into_iter()
        .collect();
    assert_eq!(
        candidates,
        [
            "after-typed",
            "globals",
            "reader",
            "sls-s3",
            "sls-ssm",
            "typed"
        ],
        "the readers of values kept in AWS, and their dependents"
    );
    // A service never deployed in the stage is not checked: it receives nothing yet.
    let candidates: Vec<String> =
        ferry_deploy::candidates(&ws, &plan, &recorded(&["reader", "typed"]))
            .into_iter()
            .collect();
    assert_eq!(candidates, ["reader", "typed"]);
}

/// Records (of no consequence but their existence) for `services`.
fn recorded(services: &[&str]) -> BTreeMap<String, ferry_records::Record> {
    services
        .iter()
        .map(|s| {
            let record = serde_json::from_value(serde_json::json!({
                "service": s, "stack": format!("x-{s}-dev"), "commit": "0".repeat(40),
                "dirty": false, "template_hash": "t", "parameters_hash": "p", "deployed_at": 0,
            }))
            .unwrap();
            (s.to_string(), record)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_some_services_never_creates_a_dependent_that_was_not_asked_for() {
    let config = config().await;
    let r = repo(
        "rules-only",
        &[
            ("beacon", TOPIC, ""),
            (
                "listener",
                READER,
                "depends-on = [\"beacon\"]\n\n[parameters]\nTopic = \"${output:beacon.TopicArn}\"\n",
            ),
            ("bystander", QUEUE, "depends-on = [\"beacon\"]\n"),
        ],
    );
    // `--service listener`: the beacon (its dependency) and the listener; not the beacon's other
    // dependent, which was never deployed in the stage.
    let first = deploy_only(&r, &config, &["listener"]).await;
    expect(&first, &[("beacon", "created"), ("listener", "created")]);
    assert!(first.succeeded());

    // Once deployed, a dependent is checked when what it depends on redeploys.
    expect(
        &deploy(&r, &config).await,
        &[
            ("beacon", "skipped (up to date)"),
            ("listener", "skipped (up to date)"),
            ("bystander", "created"),
        ],
    );
    r.write("services/beacon/t.yaml", TOPIC_RENAMED_OUTPUT);
    r.commit("the output changes");
    expect(
        &deploy_only(&r, &config, &["beacon"]).await,
        &[
            ("beacon", "updated"),
            ("listener", "updated"),
            ("bystander", "skipped (up to date)"),
        ],
    );
}

/// A stand-in for the SAM translator (`ferry-local`'s is tested on its own): every
/// `AWS::Serverless::Function` becomes a queue, and the transform goes. It keeps the parameters
/// each template was expanded with, by the template's parameter names.
#[derive(Default)]
struct QueuesForFunctions(std::sync::Mutex<Vec<Expanded>>);

/// A template's parameter names, and the values it was expanded with.
type Expanded = (Vec<String>, BTreeMap<String, String>);

impl ferry_deploy::ExpandSam for QueuesForFunctions {
    fn expand(
        &self,
        template: &serde_json::Value,
        parameters: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let declared: Vec<String> = template["Parameters"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        self.0.lock().unwrap().push((declared, parameters.clone()));
        let mut t = template.clone();
        let map = t.as_object_mut().ok_or("not a mapping")?;
        map.remove("Transform");
        for r in map["Resources"]
            .as_object_mut()
            .ok_or("no resources")?
            .values_mut()
        {
            if r["Type"] == "AWS::Serverless::Function" {
                *r = serde_json::json!({"Type": "AWS::SQS::Queue"});
            }
        }
        serde_json::to_string(&t).map_err(|e| e.to_string())
    }
}

/// A SAM service nesting, twice, a plain template that nests a SAM one, deployed to the
/// emulator (which reads a nested template from the bucket as it is, and would create a SAM one
/// empty): the SAM one is expanded with the parameters its parent passes it (a literal of the
/// service's template, passed on by `Ref`), put in the bucket under a key of its own, and the
/// plain one is put there again pointing at it; both nestings of the plain one share it. Every
/// stack is created from an expanded template. It was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_sam_applications_are_expanded_for_the_emulator_too() {
    let sam = "Transform: AWS::Serverless-2016-10-31\n";
    let function = "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: a.handler\n      Runtime: python3.12\n";
    let stack = |id: &str, url: &str, name: &str| {
        format!(
            "  {id}:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: {url}\n      Parameters:\n        Name: {name}\n"
        )
    };
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n")
        .write(
            "ferry.toml",
            "[project]\nname = \"nested-sam\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
        )
        .write("services/samnest/service.toml", "[service]\nkind = \"sam\"\n")
        .write(
            "services/samnest/template.yaml",
            &format!(
                "{sam}Resources:\n{function}{}{}",
                stack("App", "plain/plain.yaml", "from-top"),
                stack("Twin", "plain/plain.yaml", "from-top")
            ),
        )
        .write(
            "services/samnest/plain/plain.yaml",
            &format!(
                "Parameters:\n  Name:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n{}",
                stack("Inner", "deeper/g.yaml", "!Ref Name")
            ),
        )
        .write(
            "services/samnest/plain/deeper/g.yaml",
            &format!("{sam}Parameters:\n  Name:\n    Type: String\nResources:\n{function}"),
        );
    for code in ["src", "plain/deeper/src"] {
        r.write(
            &format!("services/samnest/{code}/a.py"),
            "def handler(e, c): pass\n",
        );
    }
    r.commit("a nested SAM service");
    let config = config().await;
    let ws = ferry_manifest::load(r.path()).unwrap();
    let stage = ws.stage("dev").unwrap();
    let dir = r.path().join("target/ferry/package");
    let (masker, cancel) = (Masker::new(), Cancel::new());
    let options = ferry_deploy::PrepareOptions {
        request: ferry_deploy::package_request(
            &ws,
            vec!["samnest".into()],
            &CiContext::from_vars(|_| None),
        )
        .unwrap(),
        dir: &dir,
        create_bucket: true,
        cancel: &cancel,
    };
    let prepared =
        ferry_deploy::prepare(&ws, &stage, &config, &options, &|s| s.to_string(), &|_| {})
            .await
            .unwrap();
    let records = ferry_deploy::record_store(&ws, &stage, &config);
    let state = ferry_deploy::state::read(&ws, &stage, &config, &records)
        .await
        .unwrap();
    let repo = Repo::open(r.path());
    let mut req = PlanRequest::new(
        "dev",
        Head::Rev("HEAD".into()),
        CiContext::from_vars(|_| None),
    );
    state.apply(&mut req);
    let plan = ferry_plan::plan(&ws, repo.as_ref(), &req).unwrap();
    let expander = QueuesForFunctions::default();
    let ctx = DeployContext {
        ws: &ws,
        stage: &stage,
        config: &config,
        records: &records,
        previous: &state.records,
        source: Source {
            commit: repo.unwrap().head_commit().unwrap().to_string(),
            dirty: false,
        },
        masker: &masker,
        cancel: &cancel,
        package: Some(&prepared),
        adopt: false,
        builds: None,
        expand_sam: Some(&expander),
        release: None,
        expected_archives: None,
        declared_parameters_only: false,
        other_stages: &BTreeMap::new(),
        fixed_parameters: None,
    };
    let options = DeployOptions {
        method: Some(Method::Direct),
        ..Default::default()
    };
    let report = ferry_deploy::deploy(&ctx, &plan, &options, &|_| {}).await;
    expect(&report, &[("samnest", "created")]);
    // The SAM ones, each once: the innermost with what its parent passes it.
    let expanded = expander.0.lock().unwrap().clone();
    assert_eq!(expanded.len(), 2, "{expanded:?}");
    let inner = expanded
        .iter()
        .find(|(declared, _)| declared.contains(&"Name".to_string()))
        .unwrap_or_else(|| panic!("{expanded:?}"));
    assert_eq!(inner.1.get("Name").map(String::as_str), Some("from-top"));
    // The service's stack, the plain one twice, and the innermost in each.
    let engine = ferry_stacks::Engine::for_config(&config, Default::default());
    let stacks: Vec<String> = engine
        .list()
        .await
        .unwrap()
        .stacks
        .into_values()
        .filter(|s| s.name.starts_with("samnest-dev"))
        .map(|s| {
            assert_eq!(s.status, "CREATE_COMPLETE", "{s:?}");
            s.name
        })
        .collect();
    assert_eq!(stacks.len(), 5, "{stacks:?}");
    let mut queues = 0;
    for name in &stacks {
        let body = engine.template(name).await.unwrap().unwrap();
        assert!(!body.contains("AWS::Serverless::"), "{name}: {body}");
        queues += body.matches("AWS::SQS::Queue").count();
    }
    // The service's function, the plain template's queue twice, the innermost function twice.
    assert_eq!(queues, 5, "{stacks:?}");

    // The package folder without its files (a stored package deployed again after `cargo
    // clean`, as a promote or rollback does): the nested templates come from the bucket.
    std::fs::remove_dir_all(dir.join("blobs")).unwrap();
    let mut req = PlanRequest::new(
        "dev",
        Head::Rev("HEAD".into()),
        CiContext::from_vars(|_| None),
    );
    req.force = Some("the test".into());
    let plan = ferry_plan::plan(&ws, Repo::open(r.path()).as_ref(), &req).unwrap();
    let again = ferry_deploy::deploy(&ctx, &plan, &options, &|_| {}).await;
    assert!(again.succeeded(), "{again:#?}");
    assert_eq!(expander.0.lock().unwrap().len(), 4);
}

/// A stage's outputs are read service by service: a stack that cannot be read (here another
/// project's, under the same name) is named at the end, and the others' outputs are still
/// given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_given_for_every_stack_that_can_be_read() {
    let config = config().await;
    let project = |name: &str, services: &[(&str, &str)]| {
        let r = TestRepo::new();
        r.write(".gitignore", "target/\n").write(
            "ferry.toml",
            &format!(
                "[project]\nname = \"{name}\"\nstack-name = \"{{service}}-{{stage}}\"\n\n[stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/{name}/dev/\"\n"
            ),
        );
        for (service, template) in services {
            r.write(&format!("services/{service}/t.yaml"), template)
                .write(
                    &format!("services/{service}/service.toml"),
                    "[service]\ntemplate = \"t.yaml\"\n",
                );
        }
        r.commit("services");
        r
    };
    let first = project("outs-x", &[("outs-shared", TOPIC)]);
    expect(
        &deploy(&first, &config).await,
        &[("outs-shared", "created")],
    );
    let second = project(
        "outs-y",
        &[
            ("outs-shared", QUEUE),
            ("outs-own", TOPIC),
            ("outs-quiet", QUEUE),
        ],
    );
    let report = deploy(&second, &config).await;
    assert_eq!(results(&report)["outs-own"], "created", "{report:#?}");

    let ws = ferry_manifest::load(second.path()).unwrap();
    let stage = ws.stage("dev").unwrap();
    let store = ferry_deploy::record_store(&ws, &stage, &config);
    let records = store.read_all().await.unwrap();
    // A stack of no outputs is listed while its record says it was deployed, not once the
    // record is gone (as a deploy that never finished leaves it).
    let found = ferry_deploy::stage_outputs(&ws, &stage, &config, &records, &[]).await;
    assert!(found.file.services["outs-quiet"].is_empty());
    store.delete("outs-quiet").await.unwrap();
    let records = store.read_all().await.unwrap();
    let found = ferry_deploy::stage_outputs(&ws, &stage, &config, &records, &[]).await;
    assert_eq!(
        found.file.services["outs-own"]["TopicArn"],
        "outs-own-dev-topic"
    );
    assert!(!found.file.services.contains_key("outs-shared"));
    assert!(!found.file.services.contains_key("outs-quiet"));
    let err = found.check_complete().unwrap_err().to_string();
    assert!(
        err.starts_with(
            "the outputs of outs-shared could not be read (the other services' are above):"
        ) && err.contains("project `outs-x`"),
        "{err}"
    );
    assert!(!found.stopped);

    // A failure that would meet every stack (nothing answers at the endpoint) stops the
    // reading at the first: said once, the rest named as not read.
    let nowhere = ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some("http://127.0.0.1:9".into()),
        },
    )
    .await;
    let found = ferry_deploy::stage_outputs(&ws, &stage, &nowhere, &records, &[]).await;
    assert_eq!(found.unreadable.len(), 1, "{:?}", found.unreadable);
    assert!(found.stopped && found.file.services.is_empty());
    let err = found.check_complete().unwrap_err().to_string();
    assert!(
        err.starts_with("the outputs of outs-own could not be read: ")
            && err.ends_with(
                "; the services after it were not read, as the same failure would meet them"
            ),
        "{err}"
    );
}

const EXPORTED_BUCKET: &str = "Resources:\n  B:\n    Type: AWS::S3::Bucket\nOutputs:\n  BucketName:\n    Value: !Ref B\n    Export:\n      Name: !Sub \"${AWS::StackName}-bucket\"\n";

/// A remove of stage `dev`, the stage's events' notes gathered.
async fn remove(r: &TestRepo, config: &SdkConfig) -> (ferry_deploy::RemoveReport, Vec<String>) {
    let ws = ferry_manifest::load(r.path()).unwrap();
    let stage = ws.stage("dev").unwrap();
    let records = ferry_deploy::record_store(&ws, &stage, config);
    let previous = records.read_all().await.unwrap();
    let cancel = Cancel::new();
    let ctx = ferry_deploy::RemoveContext {
        ws: &ws,
        stage: &stage,
        config,
        records: &records,
        previous: &previous,
        cancel: &cancel,
        found: None,
    };
    let options = ferry_deploy::RemoveOptions {
        orphans: false,
        any_commit: false,
        allow_protected: false,
        adopt: false,
        timeout: std::time::Duration::from_secs(60),
        local: true,
    };
    let notes = std::sync::Mutex::new(Vec::new());
    let on = |e: ferry_deploy::Event| {
        if let ferry_deploy::Event::Stack {
            progress: ferry_stacks::Progress::Note(n),
            ..
        } = e
        {
            notes.lock().unwrap().push(n);
        }
    };
    let report = ferry_deploy::remove(&ctx, &options, &on).await.unwrap();
    (report, notes.into_inner().unwrap())
}

/// The emulator behind a proxy that answers ListImports itself with `status` and `body` (the
/// emulator's own answer, an HTML page with HTTP 500, without one).
async fn answering_list_imports(
    answer: Option<(u16, &'static str)>,
) -> (Proxy, SdkConfig, Arc<AtomicUsize>) {
    let upstream = format!("127.0.0.1:{}", moto().port);
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let proxy = Proxy::start(&upstream, move |req: &Request| {
        if req.action() == "ListImports" {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        match answer {
            Some((status, body)) if req.action() == "ListImports" => ProxyRule::Respond {
                status,
                content_type: "text/xml".into(),
                body: body.into(),
            },
            _ => ProxyRule::Forward,
        }
    });
    let config = ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some(proxy.endpoint()),
        },
    )
    .await;
    (proxy, config, asked)
}

const IMPORTED: &str = "<ListImportsResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><ListImportsResult><Imports><member>reports-dev</member></Imports></ListImportsResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></ListImportsResponse>";
const DENIED: &str = "<ErrorResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: cloudformation:ListImports</Message></Error><RequestId>1</RequestId></ErrorResponse>";

// CloudFormation refuses to delete an export another stack imports, but only when it comes to
// the delete: a remove that emptied the stack's buckets first would lose their data and keep the
// stack. Whether an export is imported is asked before anything of the stack goes; the emulator
// does not enforce imports, nor answer ListImports, so its answers come from a proxy here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_whose_exports_are_imported_or_unchecked_is_left_whole() {
    let config = config().await;
    let r = repo(
        "rules-imports",
        &[("store", EXPORTED_BUCKET, ""), ("queue", QUEUE, "")],
    );
    expect(
        &deploy(&r, &config).await,
        &[("store", "created"), ("queue", "created")],
    );
    let s3 = aws_sdk_s3::Client::new(&config);
    let bucket = ferry_stacks::Engine::for_config(&config, Default::default())
        .outputs("store-dev", None)
        .await
        .unwrap()
        .unwrap()["BucketName"]
        .clone();
    s3.put_object()
        .bucket(&bucket)
        .key("data.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let object_there = async || {
        s3.head_object()
            .bucket(&bucket)
            .key("data.json")
            .send()
            .await
            .is_ok()
    };
    let left = async || {
        let ws = ferry_manifest::load(r.path()).unwrap();
        let stage = ws.stage("dev").unwrap();
        let records = ferry_deploy::record_store(&ws, &stage, &config);
        records
            .read_all()
            .await
            .unwrap()
            .into_keys()
            .collect::<Vec<_>>()
    };

    // Another stack imports its export: the store is left whole, named with the importer; the
    // queue, which exports nothing, goes.
    let (_proxy, through, _) = answering_list_imports(Some((200, IMPORTED))).await;
    let (report, _) = remove(&r, &through).await;
    assert_eq!(report.failed.len(), 1, "{report:#?}");
    assert_eq!(
        report.failed[0].to_string(),
        "stack store-dev of `store` was not deleted: nothing of it was emptied or deleted: other stacks import its exports (store-dev-bucket by reports-dev); remove those stacks first, or stop them importing"
    );
    assert_eq!(
        report.deleted,
        [("queue".to_string(), "queue-dev".to_string())]
    );
    assert!(report.emptied.is_empty(), "{report:#?}");
    assert!(object_there().await);
    assert_eq!(left().await, ["store"]);

    // Refused: not checked, so left whole too.
    let (_proxy, through, _) = answering_list_imports(Some((403, DENIED))).await;
    let (report, _) = remove(&r, &through).await;
    let failure = report.failed[0].to_string();
    assert!(
        failure.starts_with("stack store-dev of `store` was not deleted: nothing of it was emptied or deleted: whether other stacks import its exports could not be checked: ")
            && failure.contains("not authorized")
            && failure.ends_with("; run `remove` again"),
        "{failure}"
    );
    assert!(object_there().await);
    assert_eq!(left().await, ["store"]);

    // The emulator's own answer (it lacks ListImports): at an endpoint of the user's, the check
    // is skipped and said; the store is emptied and deleted.
    let (_proxy, through, asked) = answering_list_imports(None).await;
    let (report, notes) = remove(&r, &through).await;
    assert!(report.complete(), "{report:#?}");
    // Asked once: the SDK's retries of the emulator's HTTP 500 took some 9 s per stack.
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert_eq!(report.emptied, [("store".to_string(), bucket.clone(), 1)]);
    assert!(
        notes.contains(&"this endpoint does not answer ListImports (an emulator): whether other stacks import its exports was not checked".to_string()),
        "{notes:?}"
    );
    assert!(left().await.is_empty());
}

const BUCKET: &str =
    "Resources:\n  B:\n    Type: AWS::S3::Bucket\nOutputs:\n  BucketName:\n    Value: !Ref B\n";

// A remove that stops after it began emptying a stack's buckets (killed, or the delete refused)
// leaves a stack whose site and data may be gone: its record says so, and the next plan deploys
// it again, where before the service was taken as up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_whose_remove_stopped_after_emptying_its_buckets_is_planned_again() {
    let config = config().await;
    let r = repo("rules-half-removed", &[("half", BUCKET, "")]);
    expect(&deploy(&r, &config).await, &[("half", "created")]);
    let bucket = ferry_stacks::Engine::for_config(&config, Default::default())
        .outputs("half-dev", None)
        .await
        .unwrap()
        .unwrap()["BucketName"]
        .clone();
    aws_sdk_s3::Client::new(&config)
        .put_object()
        .bucket(&bucket)
        .key("index.html")
        .body(b"<p>hi</p>".to_vec().into())
        .send()
        .await
        .unwrap();
    // CloudFormation refuses the delete once the bucket is emptied.
    let upstream = format!("127.0.0.1:{}", moto().port);
    let refusing = Proxy::start(&upstream, |req: &Request| {
        if req.action() == "DeleteStack" {
            ProxyRule::Respond {
                status: 400,
                content_type: "text/xml".into(),
                body: "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack half-dev cannot be deleted now</Message></Error><RequestId>1</RequestId></ErrorResponse>".into(),
            }
        } else {
            ProxyRule::Forward
        }
    });
    let through = ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some(refusing.endpoint()),
        },
    )
    .await;
    let (report, _) = remove(&r, &through).await;
    assert_eq!(
        report.emptied,
        [("half".to_string(), bucket, 1)],
        "{report:#?}"
    );
    assert_eq!(report.failed.len(), 1, "{report:#?}");

    let (action, reasons) = in_context(&r, &config, None, &[], async |_, plan, _| {
        let half = plan.service("half").unwrap();
        (half.action, half.reasons.clone())
    })
    .await;
    assert_eq!(action, ferry_plan::Action::Deploy);
    assert!(
        matches!(&reasons[..], [ferry_plan::Reason::Drifted { detail, .. }] if detail.starts_with("was being removed by a run that stopped")),
        "{reasons:?}"
    );
    // Checked rather than deployed (as a promote, rollback or approval of the same package
    // checks it), it is not taken as up to date either.
    let checked = in_context(&r, &config, None, &[], async |ctx, _, _| {
        let selection = ferry_deploy::Selection {
            deploy: Default::default(),
            candidates: ["half".to_string()].into(),
            why: Default::default(),
        };
        ferry_deploy::deploy_selection(ctx, &selection, &options(), &|_| {}).await
    })
    .await;
    assert!(
        !results(&checked)["half"].starts_with("skipped"),
        "{checked:#?}"
    );
    // Deployed again, the mark is gone: the run after deploys nothing.
    deploy(&r, &config).await;
    expect(
        &deploy(&r, &config).await,
        &[("half", "skipped (up to date)")],
    );
}

/// The SecureStrings a Serverless Framework configuration reads with `${ssm:…}` are registered
/// with the masker (the stage and region resolved as the framework resolves them, also through
/// a file it includes) and returned as written into the compiled template; a plain String is
/// neither; a name with another variable is returned unresolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_a_serverless_configuration_reads_are_registered_and_named() {
    let config = config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    put_secure(&ssm, "/rules-sls/dev/us-east-1/okta", "0kta-s3cret-value").await;
    put_secure(&ssm, "/rules-sls/dev/included", "1ncluded-s3cret").await;
    put_secure(&ssm, "/rules-sls/dev/per-stage", "per-st4ge-s3cret").await;
    put_secure(&ssm, "/rules-sls/dev/cipher", "c1pher-s3cret-x").await;
    // Read from another region by `${ssm(eu-west-1):…}`.
    let ireland = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&config)
            .region(aws_config::Region::new("eu-west-1"))
            .build(),
    );
    put_secure(&ireland, "/rules-sls/far", "f4r-away-s3cret").await;
    ssm.put_parameter()
        .name("/rules-sls/dev/plain")
        .value("plain-value-1234")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let r = repo("rules-sls", &[]);
    r.write("services/api/service.toml", "[service]\nkind = \"serverless\"\n")
        .write(
            "services/api/serverless.yml",
            "service: api\ncustom:\n  root: /rules-sls\n  more: ${file(./more.yml)}\n  env: ${file(./env.${opt:stage, 'dev'}.yml)}\n  other: ${file(./x.${env:WHO}.yml)}\nprovider:\n  name: aws\n  environment:\n    A: ${ssm:${self:custom.root}/${sls:stage}/${aws:region}/okta}\n    B: ${ssm:/rules-sls/${sls:stage}/plain}\n    C: ${ssm:/rules-sls/${env:WHO}/x}\n    D: ${ssm:/rules-sls/${sls:stage}/missing}\n    E: ${ssm(noDecrypt):/rules-sls/${sls:stage}/cipher}\n    F: ${ssm(eu-west-1):/rules-sls/far}\n",
        )
        .write(
            "services/api/env.dev.yml",
            "key: ${ssm:/rules-sls/${sls:stage}/per-stage}\n",
        )
        .write(
            "services/api/more.yml",
            "key: ${ssm:/rules-sls/${opt:stage}/included}\n",
        );
    let ws = ferry_manifest::load(r.path()).unwrap();
    let stage = ws.stage("dev").unwrap();
    let masker = Masker::new();
    let done = ferry_deploy::register_secrets(&ws, &stage, &config, &masker)
        .await
        .unwrap();
    // A value read with noDecrypt is the ciphertext in the template: masked, but not said to
    // be written there.
    assert_eq!(
        done.inlined,
        [
            ("api".to_string(), "/rules-sls/dev/included".to_string()),
            ("api".to_string(), "/rules-sls/dev/per-stage".to_string()),
            (
                "api".to_string(),
                "/rules-sls/dev/us-east-1/okta".to_string()
            ),
            (
                "api".to_string(),
                "ssm(eu-west-1):/rules-sls/far".to_string()
            ),
        ]
    );
    let mut unresolved: Vec<&str> = done.unresolved.iter().map(|(_, n)| n.as_str()).collect();
    unresolved.sort_unstable();
    assert_eq!(
        unresolved,
        ["${file(./x.${env:WHO}.yml)}", "/rules-sls/${env:WHO}/x",]
    );
    assert_eq!(
        masker.mask(
            "0kta-s3cret-value 1ncluded-s3cret per-st4ge-s3cret c1pher-s3cret-x f4r-away-s3cret plain-value-1234"
        ),
        "**** **** **** **** **** plain-value-1234"
    );
    assert_eq!(done.env_inlined, []);
}

/// The variables named as secrets a Serverless configuration reads with `${env:…}`: their
/// values (as the framework's process inherits them) are registered with the masker, and they
/// are returned to be warned of, as the compiled template holds them. A plain variable is
/// neither.
#[test]
fn secret_variables_a_serverless_configuration_reads_are_registered_and_named() {
    let r = repo("rules-slsenv", &[]);
    r.write("services/api/service.toml", "[service]\nkind = \"serverless\"\n")
        .write(
            "services/api/serverless.yml",
            "service: api\nprovider:\n  name: aws\n  environment:\n    S: ${env:CLIENT_SECRET}\n    T: ${env:TABLE}\n    U: ${env:UNSET_TOKEN}\n    V: ${env:USE_SECRETS_MANAGER}\n    W: ${env:LEGACY_TOKEN}\n    X: ${env:OLD_PASSWORD}\n",
        );
    let ws = ferry_manifest::load(r.path()).unwrap();
    let masker = Masker::new();
    let env = |var: &str| match var {
        "CLIENT_SECRET" => Some("cl13nt-s3cret-value".to_string()),
        "TABLE" => Some("orders-table-dev".to_string()),
        // A switch is no secret by its name; names that say secret, values too short or plain
        // to be one: not masked (every `true` would be).
        "USE_SECRETS_MANAGER" => Some("true".to_string()),
        "LEGACY_TOKEN" => Some("none".to_string()),
        "OLD_PASSWORD" => Some("86400000".to_string()),
        _ => None,
    };
    let named = ferry_deploy::register_env_secrets(&ws, &masker, &env);
    assert_eq!(
        named,
        [
            ("api".to_string(), "CLIENT_SECRET".to_string()),
            ("api".to_string(), "UNSET_TOKEN".to_string()),
            ("api".to_string(), "LEGACY_TOKEN".to_string()),
            ("api".to_string(), "OLD_PASSWORD".to_string()),
        ]
    );
    assert_eq!(
        masker.mask("cl13nt-s3cret-value orders-table-dev true none 86400000"),
        "**** orders-table-dev true none 86400000"
    );
}
