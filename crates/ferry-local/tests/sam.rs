//! Expanding SAM templates for the emulator with the pinned aws-sam-translator, installed into
//! the repository's emulator venv like moto (offline: no AWS call, no credentials).

use std::collections::BTreeMap;
use std::path::Path;

use ferry_local::{Emulator, LocalError};
use serde_json::{Value, json};

fn emulator() -> Emulator {
    Emulator::for_repository(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn function(policies: Value, events: Value) -> Value {
    json!({
        "Transform": "AWS::Serverless-2016-10-31",
        "Parameters": {
            "FerryArtifactBucket": {"Type": "String"},
            "Table": {"Type": "String"},
            "Queue": {"Type": "String"},
        },
        "Resources": {
            "Worker": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": {"Bucket": {"Ref": "FerryArtifactBucket"}, "Key": "shop/worker/abc.zip"},
                    "Handler": "app.handler",
                    "Runtime": "python3.12",
                    "Environment": {"Variables": {"TABLE": {"Ref": "Table"}}},
                    "Policies": policies,
                    "Events": events,
                }
            }
        }
    })
}

fn parameters() -> BTreeMap<String, String> {
    [
        ("FerryArtifactBucket", "ferry-artifacts"),
        ("Table", "orders"),
        ("Queue", "arn:aws:sqs:eu-west-1:123456789012:orders"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn a_sam_function_expands_into_plain_cloudformation_with_its_references_kept() {
    let template = function(
        json!(["AWSLambdaBasicExecutionRole", {"DynamoDBCrudPolicy": {"TableName": {"Ref": "Table"}}}]),
        json!({"Orders": {"Type": "SQS", "Properties": {"Queue": {"Ref": "Queue"}}}}),
    );
    let out = emulator()
        .expand_sam(&template, &parameters(), "eu-west-1")
        .unwrap();
    let t: Value = serde_json::from_str(&out).unwrap();
    assert!(t.get("Transform").is_none(), "expanded: {out}");
    let resources = t["Resources"].as_object().unwrap();
    let types: Vec<&str> = resources
        .values()
        .map(|r| r["Type"].as_str().unwrap())
        .collect();
    for ty in [
        "AWS::Lambda::Function",
        "AWS::IAM::Role",
        "AWS::Lambda::EventSourceMapping",
    ] {
        assert!(types.contains(&ty), "{ty} in {types:?}");
    }
    assert_eq!(
        t["Resources"]["Worker"]["Properties"]["Code"],
        json!({"S3Bucket": {"Ref": "FerryArtifactBucket"}, "S3Key": "shop/worker/abc.zip"})
    );
    assert_eq!(
        t["Resources"]["Worker"]["Properties"]["Environment"]["Variables"]["TABLE"],
        json!({"Ref": "Table"})
    );
    let role = serde_json::to_string(&t["Resources"]["WorkerRole"]).unwrap();
    assert!(
        role.contains("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"),
        "managed policy resolved offline: {role}"
    );
}

#[test]
fn templates_the_translator_refuses_are_errors_that_say_why() {
    let emu = emulator();
    let unknown = function(json!(["NoSuchPolicyXyz"]), json!({}));
    let e = emu
        .expand_sam(&unknown, &parameters(), "us-east-1")
        .unwrap_err();
    assert!(matches!(e, LocalError::SamExpand { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("Unknown AWS managed policy name 'NoSuchPolicyXyz'"),
        "{text}"
    );
    assert!(text.contains("aws-sam-translator 1.115.0"), "{text}");

    let bad_event = function(json!([]), json!({"Bad": {"Type": "Nope"}}));
    let text = emu
        .expand_sam(&bad_event, &parameters(), "us-east-1")
        .unwrap_err()
        .to_string();
    assert!(text.contains("Event with id [Bad] is invalid"), "{text}");
}

/// Many templates in one run of the translator: each answered in order, the same as one at a
/// time, a refused one as its message among the others.
#[test]
fn many_templates_expand_in_one_run_each_as_alone() {
    let emu = emulator();
    let ok = function(json!(["AWSLambdaBasicExecutionRole"]), json!({}));
    let refused = function(json!(["NoSuchPolicyXyz"]), json!({}));
    let mut other = parameters();
    other.insert("Table".into(), "invoices".into());
    let params = parameters();
    let all = emu
        .expand_sam_all(
            &[(&ok, &params), (&refused, &params), (&ok, &other)],
            "eu-west-1",
        )
        .unwrap();
    assert_eq!(all.len(), 3);
    let alone: Value =
        serde_json::from_str(&emu.expand_sam(&ok, &params, "eu-west-1").unwrap()).unwrap();
    let first: Value = serde_json::from_str(all[0].as_ref().unwrap()).unwrap();
    assert_eq!(first, alone);
    let e = all[1].as_ref().unwrap_err();
    assert!(
        e.contains("Unknown AWS managed policy name 'NoSuchPolicyXyz'")
            && e.contains("aws-sam-translator 1.115.0"),
        "{e}"
    );
    let third: Value = serde_json::from_str(all[2].as_ref().unwrap()).unwrap();
    assert!(third.get("Transform").is_none(), "{third}");
    assert!(emu.expand_sam_all(&[], "eu-west-1").unwrap().is_empty());
}
