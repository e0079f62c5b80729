//! The engine against the local emulator: real create, update, no-op, refusal, a stuck stack,
//! delete; and the example services' templates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry_credentials::base_config;
use ferry_credentials::config::Target;
use ferry_stacks::{
    Action, DeployOptions, Engine, Method, Progress, StackError, StackSpec, TemplateSource,
};
use ferry_test_support::{moto, workspace_root};

async fn engine(options: DeployOptions) -> Engine {
    let config = base_config(
        "us-east-1",
        &Target {
            local_endpoint: Some(moto().endpoint()),
        },
    )
    .await;
    Engine::new(aws_sdk_cloudformation::Client::new(&config), options)
}

fn fast() -> DeployOptions {
    DeployOptions {
        poll_initial: Duration::from_millis(50),
        poll_max: Duration::from_millis(200),
        ..DeployOptions::default()
    }
}

const QUEUE: &str = "Parameters:\n  Retention:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      MessageRetentionPeriod: !Ref Retention\nOutputs:\n  QueueUrl:\n    Value: !Ref Q\n  Retention:\n    Value: !Ref Retention\n";

fn spec(name: &str, body: &str, method: Method, retention: &str) -> StackSpec {
    StackSpec {
        name: name.into(),
        template: TemplateSource::Body(body.into()),
        parameters: BTreeMap::from([("Retention".into(), retention.into())]),
        tags: BTreeMap::from([("ferry:stage".into(), "test".into())]),
        method,
        termination_protection: false,
        owner: None,
        adopt: false,
        renamed_from: None,
    }
}

fn quiet(_: Progress) {}

#[tokio::test]
async fn create_update_and_no_op_with_the_direct_method() {
    let e = engine(fast()).await;
    let events = AtomicUsize::new(0);
    let count = |p: Progress| {
        if matches!(p, Progress::Event(_)) {
            events.fetch_add(1, Ordering::SeqCst);
        }
    };
    let created = e
        .deploy(
            &spec("stacks-direct", QUEUE, Method::Direct, "3600"),
            &count,
        )
        .await
        .unwrap();
    assert_eq!(created.action, Action::Created);
    assert_eq!(created.status, "CREATE_COMPLETE");
    assert_eq!(created.outputs["Retention"], "3600");
    assert!(
        created.outputs["QueueUrl"].contains("stacks-direct"),
        "{:?}",
        created.outputs
    );
    assert!(
        events.load(Ordering::SeqCst) > 0,
        "the operation's events are streamed"
    );

    let updated = e
        .deploy(
            &spec("stacks-direct", QUEUE, Method::Direct, "7200"),
            &quiet,
        )
        .await
        .unwrap();
    assert_eq!(updated.action, Action::Updated);
    assert_eq!(updated.outputs["Retention"], "7200");

    let same = e
        .deploy(
            &spec("stacks-direct", QUEUE, Method::Direct, "7200"),
            &quiet,
        )
        .await
        .unwrap();
    assert_eq!(same.action, Action::Unchanged);
    assert_eq!(same.outputs["Retention"], "7200");

    assert!(
        e.delete("stacks-direct", None, false, &quiet)
            .await
            .unwrap()
    );
    assert_eq!(e.status("stacks-direct").await.unwrap(), None);
    assert!(
        !e.delete("stacks-direct", None, false, &quiet)
            .await
            .unwrap(),
        "deleting nothing is fine"
    );
}

#[tokio::test]
async fn change_sets_create_update_and_find_nothing_to_do() {
    let e = engine(fast()).await;
    let created = e
        .deploy(&spec("stacks-cs", QUEUE, Method::ChangeSet, "3600"), &quiet)
        .await
        .unwrap();
    assert_eq!(created.action, Action::Created);
    let updated = e
        .deploy(&spec("stacks-cs", QUEUE, Method::ChangeSet, "7200"), &quiet)
        .await
        .unwrap();
    assert_eq!(updated.action, Action::Updated);
    // The emulator refuses an empty change set at creation; the engine reads that as no change.
    let same = e
        .deploy(&spec("stacks-cs", QUEUE, Method::ChangeSet, "7200"), &quiet)
        .await
        .unwrap();
    assert_eq!(same.action, Action::Unchanged);
}

#[tokio::test]
async fn a_template_cloudformation_refuses_is_a_clear_error_and_leaves_no_stack() {
    let e = engine(fast()).await;
    let bad = QUEUE.replace("Value: !Ref Q\n", "Value: !GetAtt Q.Nope\n");
    let err = e
        .deploy(
            &spec("stacks-refused", &bad, Method::Direct, "3600"),
            &quiet,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StackError::Rejected {
                operation: "CreateStack",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("stacks-refused"), "{err}");
    assert!(
        err.to_string()
            .starts_with("CloudFormation refused CreateStack"),
        "{err}"
    );
    assert_eq!(e.status("stacks-refused").await.unwrap(), None);
    // With --local, the emulator is named as the one that refused, and that it may be its
    // own limit: it refuses some templates AWS takes.
    let local = engine(DeployOptions {
        emulator: Some(Duration::from_secs(1)),
        ..fast()
    })
    .await;
    let err = local
        .deploy(
            &spec("stacks-refused-locally", &bad, Method::Direct, "3600"),
            &quiet,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "the local AWS emulator refused CreateStack for stack stacks-refused-locally:"
        ) && err.contains("the emulator may not model a resource type or property"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stack_stuck_in_progress_is_a_bounded_wait_with_a_clear_error() {
    let e = engine(DeployOptions {
        timeout: Duration::from_secs(1),
        ..fast()
    })
    .await;
    // Two SSM parameters with one name: the emulator leaves the stack CREATE_IN_PROGRESS.
    let stuck = "Resources:\n  A:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: /stacks-test/same\n      Type: String\n      Value: a\n  B:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: /stacks-test/same\n      Type: String\n      Value: b\n";
    let mut s = spec("stacks-stuck", stuck, Method::Direct, "1");
    s.parameters.clear();
    // The emulator answers CreateStack with the resource's error and leaves the stack behind,
    // CREATE_IN_PROGRESS for good.
    let first = e.deploy(&s, &quiet).await.unwrap_err();
    assert!(
        matches!(
            first,
            StackError::Api { ref source, .. } if source.operation == "CreateStack"
        ),
        "{first:?}"
    );
    assert!(
        first.to_string().contains("parameter already exists"),
        "{first}"
    );
    assert_eq!(
        e.status("stacks-stuck").await.unwrap().as_deref(),
        Some("CREATE_IN_PROGRESS")
    );
    // The next deploy meets the busy stack, waits a bounded time, and says so.
    let started = std::time::Instant::now();
    let err = e.deploy(&s, &quiet).await.unwrap_err();
    assert!(matches!(err, StackError::Busy { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("still CREATE_IN_PROGRESS after waiting"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the wait is bounded by the deploy's timeout"
    );
}

/// The example services' templates are creatable by the emulator (api with its code in S3 as
/// packaging will put it; parameters as the manifests wire them).
#[tokio::test]
async fn the_example_templates_deploy_in_dependency_order() {
    let config = base_config(
        "us-east-1",
        &Target {
            local_endpoint: Some(moto().endpoint()),
        },
    )
    .await;
    let e = engine(fast()).await;
    let read = |s: &str| {
        std::fs::read_to_string(workspace_root().join(format!("services/{s}/template.yaml")))
            .unwrap()
    };
    let mk = |name: &str, body: String, params: &[(&str, &str)]| StackSpec {
        name: name.into(),
        template: TemplateSource::Body(body),
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        tags: BTreeMap::new(),
        method: Method::Direct,
        termination_protection: false,
        owner: None,
        adopt: false,
        renamed_from: None,
    };
    let db = e
        .deploy(
            &mk("ex-database", read("database"), &[("Stage", "ex")]),
            &quiet,
        )
        .await
        .unwrap();
    let ev = e
        .deploy(&mk("ex-events", read("events"), &[("Stage", "ex")]), &quiet)
        .await
        .unwrap();
    let s3 = aws_sdk_s3_free_upload(&config).await;
    let api_body = read("api").replace(
        "Code: src",
        &format!("Code:\n        S3Bucket: {}\n        S3Key: {}", s3.0, s3.1),
    );
    let api = e
        .deploy(
            &mk(
                "ex-api",
                api_body,
                &[
                    ("Stage", "ex"),
                    ("TableName", &db.outputs["TableName"]),
                    ("TableArn", &db.outputs["TableArn"]),
                    ("TopicArn", &ev.outputs["TopicArn"]),
                    // What a deploy fills: the stage's permissions boundary.
                    ("FerryPermissionsBoundary", "ferry-ex-boundary"),
                ],
            ),
            &quiet,
        )
        .await
        .unwrap();
    assert!(
        api.outputs.contains_key("FunctionName"),
        "{:?}",
        api.outputs
    );
    let fe = e
        .deploy(
            &mk(
                "ex-frontend",
                read("frontend"),
                &[
                    ("Stage", "ex"),
                    ("ApiFunctionName", &api.outputs["FunctionName"]),
                ],
            ),
            &quiet,
        )
        .await
        .unwrap();
    assert!(fe.outputs.contains_key("BucketName"));
}

/// Until packaging exists, put a code zip into the emulator's S3 through its REST API with a
/// bucket created by a one-resource stack (no S3 client crate needed here).
async fn aws_sdk_s3_free_upload(_config: &aws_config::SdkConfig) -> (String, String) {
    let e = engine(fast()).await;
    let bucket = e
        .deploy(
            &StackSpec {
                name: "ex-artifacts".into(),
                template: TemplateSource::Body("Resources:\n  B:\n    Type: AWS::S3::Bucket\nOutputs:\n  Name:\n    Value: !Ref B\n".into()),
                parameters: BTreeMap::new(),
                tags: BTreeMap::new(),
                method: Method::Direct,
                termination_protection: false,
                owner: None,
                adopt: false,
                renamed_from: None,
            },
            &quiet,
        )
        .await
        .unwrap();
    let name = bucket.outputs["Name"].clone();
    // moto accepts unsigned path-style PUTs.
    let addr = moto().endpoint().trim_start_matches("http://").to_string();
    let body = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"; // an empty zip
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "PUT /{name}/api/code.zip HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
        "{resp}"
    );
    (name, "api/code.zip".into())
}

#[tokio::test]
async fn the_stack_of_a_renamed_service_is_taken_over_only_with_adopt() {
    let e = engine(fast()).await;
    let owner = |service: &str| ferry_stacks::Ownership {
        project: "shop".into(),
        stage_id: "dev".into(),
        stage: "dev".into(),
        service: service.into(),
        named: true,
    };
    let of = |service: &str, renamed_from: Option<&str>, adopt: bool| StackSpec {
        owner: Some(owner(service)),
        renamed_from: renamed_from.map(String::from),
        adopt,
        tags: BTreeMap::new(),
        ..spec("stacks-renamed", QUEUE, Method::Direct, "3600")
    };
    e.deploy(&of("orders", None, false), &quiet).await.unwrap();
    // Another service of the project and stage: refused, with or without adopt.
    for adopt in [false, true] {
        let err = e
            .deploy(&of("purchases", None, adopt), &quiet)
            .await
            .unwrap_err();
        assert!(matches!(err, StackError::Foreign { .. }), "{err:?}");
    }
    // Renamed from another name than the stack's owner: still refused.
    let err = e
        .deploy(&of("purchases", Some("billing"), true), &quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, StackError::Foreign { .. }), "{err:?}");
    // Renamed from its owner: refused without adopt, saying how to take it over.
    let err = e
        .deploy(&of("purchases", Some("orders"), false), &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StackError::RenamedService { from, to, .. } if from == "orders" && to == "purchases"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`deploy` with --adopt"), "{err}");
    // With adopt: taken over and tagged for the new name.
    let taken = e
        .deploy(
            &StackSpec {
                parameters: BTreeMap::from([("Retention".into(), "7200".into())]),
                ..of("purchases", Some("orders"), true)
            },
            &quiet,
        )
        .await
        .unwrap();
    assert_eq!(taken.action, Action::Updated);
    let info = e.describe("stacks-renamed").await.unwrap().unwrap();
    assert_eq!(info.tags["ferry:service"], "purchases");
    assert_eq!(info.tags["ferry:project"], "shop");
    // Now the old name's own deploy is the one refused.
    let err = e
        .deploy(&of("orders", None, true), &quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, StackError::Foreign { .. }), "{err:?}");
    e.delete("stacks-renamed", Some(&owner("purchases")), false, &quiet)
        .await
        .unwrap();
}

/// The emulator's config, and options saying the endpoint is the emulator's.
async fn emulator_config() -> (aws_config::SdkConfig, DeployOptions) {
    let config = base_config(
        "us-east-1",
        &Target {
            local_endpoint: Some(moto().endpoint()),
        },
    )
    .await;
    let emulator = DeployOptions {
        emulator: Some(Duration::from_secs(1)),
        ..fast()
    };
    (config, emulator)
}

/// A template the emulator cannot create (an ingress rule of every protocol, `IpProtocol: -1`):
/// it records the stack and answers HTTP 500. Against it CreateStack is sent once, so the
/// emulator's own failure is what is said; a retry was told "already exists", which hid it.
#[tokio::test]
async fn the_emulators_failure_to_create_is_said_not_hidden_by_a_retry() {
    let (config, emulator) = emulator_config().await;
    let e = Engine::for_config(&config, emulator.clone());
    let template = "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: 10.0.0.0/16\n  Sg:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: all\n      VpcId: !Ref Vpc\n      SecurityGroupIngress:\n        - IpProtocol: -1\n          CidrIp: 10.0.0.0/8\n";
    let mut s = spec("stacks-emulator-500", template, Method::Direct, "60");
    s.parameters.clear();
    let err = e.deploy(&s, &quiet).await.unwrap_err().to_string();
    assert!(
        err.contains("CreateStack failed inside the local AWS emulator")
            && err.contains("HTTP 500")
            && err.contains("a request the emulator cannot serve"),
        "{err}"
    );
    assert!(!err.contains("already exists"), "{err}");
    // The emulator left it CREATE_IN_PROGRESS for good: the next deploy says so after a short
    // wait, not at the end of the hour a stack operation may take (the default timeout).
    assert_eq!(emulator.timeout, Duration::from_secs(3600));
    let started = std::time::Instant::now();
    let err = e.deploy(&s, &quiet).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");
    assert!(matches!(err, StackError::StuckInEmulator { .. }), "{err:?}");
    assert!(
        err.to_string().contains(
            "stack stacks-emulator-500 is still CREATE_IN_PROGRESS in the local emulator after 1s"
        ) && err.to_string().contains("run `local down`"),
        "{err}"
    );
    // Without the emulator's ways, CreateStack is retried and the emulator's error is lost.
    let plain = Engine::for_config(&config, fast());
    let mut again = spec(
        "stacks-emulator-500-retried",
        template,
        Method::Direct,
        "60",
    );
    again.parameters.clear();
    let err = plain.deploy(&again, &quiet).await.unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
}

/// An update the emulator fails (a parameter resource without a `Name`, which AWS names
/// itself): it answers HTTP 500 after applying part of it. Against it UpdateStack (and a change
/// set's creation and execution) is sent once, so the update fails; a retry was told "no
/// updates are to be performed", and the failed update was reported, and recorded, as done.
#[tokio::test]
async fn the_emulators_failure_to_update_is_no_success() {
    let (config, emulator) = emulator_config().await;
    let e = Engine::for_config(&config, emulator);
    let v1 =
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueUrl:\n    Value: !Ref Q\n";
    let v2 = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Value: hello\nOutputs:\n  QueueUrl:\n    Value: !Ref Q\n  ParamName:\n    Value: !Ref P\n";
    for (name, method) in [
        ("stacks-emulator-update-500", Method::Direct),
        ("stacks-emulator-update-500-cs", Method::ChangeSet),
    ] {
        let mut s = spec(name, v1, method, "60");
        s.parameters.clear();
        assert_eq!(e.deploy(&s, &quiet).await.unwrap().action, Action::Created);
        s.template = TemplateSource::Body(v2.into());
        let result = e.deploy(&s, &quiet).await;
        assert!(result.is_err(), "{name}: {:?}", result.map(|d| d.action));
        e.delete(name, None, false, &quiet).await.ok();
    }
}

/// The emulator answers some refusals in JSON where CloudFormation's protocol is XML (a log
/// group's name another stack holds): the error says the emulator's code and message, not
/// that the answer was no AWS response.
#[tokio::test]
async fn an_emulator_refusal_in_json_is_said_by_its_code_and_message() {
    let e = engine(fast()).await;
    let group = "Resources:\n  Logs:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: stacks-json-shared-name\n";
    let mut first = spec("stacks-json-a", group, Method::Direct, "1");
    first.parameters.clear();
    e.deploy(&first, &quiet).await.unwrap();
    let mut second = spec("stacks-json-b", group, Method::Direct, "1");
    second.parameters.clear();
    let err = e.deploy(&second, &quiet).await.unwrap_err().to_string();
    assert!(!err.contains("not an AWS response"), "{err}");
    assert!(err.contains("ResourceAlreadyExistsException"), "{err}");
}

/// A stack whose own tags (a team's, a cost centre's) leave no room for Ferry's under
/// CloudFormation's 50: its update is refused before any call, saying how many to take off.
#[tokio::test]
async fn an_update_that_would_need_more_than_50_tags_is_refused_naming_how_many() {
    let e = engine(fast()).await;
    let many: BTreeMap<String, String> =
        (0..49).map(|i| (format!("team-{i}"), "x".into())).collect();
    let by_tool = StackSpec {
        tags: many,
        ..spec("stacks-many-tags", QUEUE, Method::Direct, "60")
    };
    e.deploy(&by_tool, &quiet).await.unwrap();
    // Adopted, as a deploy does it: Ferry's tags come from the owner, not from `tags`.
    let ours = StackSpec {
        owner: Some(ferry_stacks::Ownership {
            project: "shop".into(),
            stage_id: "dev".into(),
            stage: "dev".into(),
            service: "q".into(),
            named: true,
        }),
        adopt: true,
        tags: BTreeMap::new(),
        ..spec("stacks-many-tags", QUEUE, Method::Direct, "120")
    };
    let err = e.deploy(&ours, &quiet).await.unwrap_err();
    let StackError::TooManyTags { own: 49, ferry, .. } = err else {
        panic!("{err:?}");
    };
    assert!(ferry >= 4, "{err:?}");
    let over = 49 + ferry - 50;
    assert!(
        err.to_string()
            .contains(&format!("take {over} of the stack's own tags off")),
        "{err}"
    );
    let info = e.describe("stacks-many-tags").await.unwrap().unwrap();
    assert_eq!(info.outputs["Retention"], "60", "not updated");
    e.delete("stacks-many-tags", None, false, &quiet)
        .await
        .unwrap();
}

/// A stack another tool deployed, adopted with the template and parameters it has: the only
/// change is Ferry's tags. The emulator takes no UpdateStack whose only change is the tags of
/// a stack with parameters ("No updates are to be performed"), so the tags cannot be set: that
/// is an error, not the success it was reported as (the stack stayed untagged, and the next
/// deploy and remove refused it).
#[tokio::test]
async fn an_adoption_that_cannot_set_the_tags_is_an_error() {
    let e = engine(fast()).await;
    let template =
        "Parameters:\n  Retention: {Type: String}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    let by_tool = StackSpec {
        owner: None,
        tags: BTreeMap::from([("team".to_string(), "payments".to_string())]),
        ..spec("stacks-adopt-untaggable", template, Method::Direct, "60")
    };
    e.deploy(&by_tool, &quiet).await.unwrap();
    for method in [Method::Direct, Method::ChangeSet] {
        let adopted = StackSpec {
            owner: Some(ferry_stacks::Ownership {
                project: "shop".into(),
                stage_id: "dev".into(),
                stage: "dev".into(),
                service: "net".into(),
                named: true,
            }),
            adopt: true,
            tags: BTreeMap::new(),
            ..spec("stacks-adopt-untaggable", template, method, "60")
        };
        let err = e.deploy(&adopted, &quiet).await.unwrap_err();
        assert!(
            matches!(&err, StackError::TagsNotSet { stack, .. } if stack == "stacks-adopt-untaggable"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("change its template once"),
            "{err}"
        );
    }
    e.delete("stacks-adopt-untaggable", None, false, &quiet)
        .await
        .unwrap();
}

/// Taking over (`--adopt`) a stack another template made, whose resources this service's
/// template does not declare (a probe's pipeline service given storage's stack name by a
/// script's `cd ../storage`): refused before any change, naming what would be deleted; the
/// stack keeps its resources. The same stack adopted with a template declaring them (and a new
/// one) is taken over.
#[tokio::test]
async fn an_adoption_that_would_delete_the_stack_s_resources_is_refused() {
    let e = engine(fast()).await;
    let storage = "Resources:\n  DataTopic:\n    Type: AWS::SNS::Topic\n";
    let mut by_tool = StackSpec {
        owner: None,
        ..spec("stacks-adopt-other", storage, Method::Direct, "60")
    };
    by_tool.parameters.clear();
    e.deploy(&by_tool, &quiet).await.unwrap();
    let owner = Some(ferry_stacks::Ownership {
        project: "shop".into(),
        stage_id: "dev".into(),
        stage: "dev".into(),
        service: "pipeline".into(),
        named: true,
    });
    let adopt = |template: &str, method: Method| {
        let mut s = StackSpec {
            owner: owner.clone(),
            adopt: true,
            ..spec("stacks-adopt-other", template, method, "60")
        };
        s.parameters.clear();
        s
    };
    let pipeline = "Resources:\n  BuildQueue:\n    Type: AWS::SQS::Queue\n";
    // Judged by the template directly, and by the change set's removals (which also covers a
    // SAM template and one given by URL).
    for method in [Method::Direct, Method::ChangeSet] {
        let err = e
            .deploy(&adopt(pipeline, method), &quiet)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StackError::AdoptionWouldDelete { resources, .. } if resources == &["DataTopic (AWS::SNS::Topic)"]),
            "{method:?}: {err:?}"
        );
        assert!(err.to_string().contains("nothing was changed"), "{err}");
    }
    let kept: Vec<String> = e
        .resources("stacks-adopt-other")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.logical_id)
        .collect();
    assert_eq!(kept, ["DataTopic"]);
    // Declaring what it holds: taken over.
    let both = "Resources:\n  DataTopic:\n    Type: AWS::SNS::Topic\n  BuildQueue:\n    Type: AWS::SQS::Queue\n";
    e.deploy(&adopt(both, Method::Direct), &quiet)
        .await
        .unwrap();
    e.delete("stacks-adopt-other", owner.as_ref(), false, &quiet)
        .await
        .unwrap();
}
