//! The output cache against the local emulator: one DescribeStacks per stack per run.

use std::collections::BTreeMap;

use ferry_credentials::base_config;
use ferry_credentials::config::Target;
use ferry_outputs::OutputCache;
use ferry_stacks::{DeployOptions, Engine, Method, StackSpec, TemplateSource};
use ferry_test_support::moto;

#[tokio::test]
async fn outputs_are_read_once_per_stack() {
    let config = base_config(
        "us-east-1",
        &Target {
            local_endpoint: Some(moto().endpoint()),
        },
    )
    .await;
    let engine = Engine::new(
        aws_sdk_cloudformation::Client::new(&config),
        DeployOptions::default(),
    );
    let spec = StackSpec {
        name: "outputs-once".into(),
        template: TemplateSource::Body("Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueUrl:\n    Value: !Ref Q\n".into()),
        parameters: BTreeMap::new(),
        tags: BTreeMap::new(),
        method: Method::Direct,
        termination_protection: false,
        owner: None,
        adopt: false,
        renamed_from: None,
    };
    engine.deploy(&spec, &|_| {}).await.unwrap();

    let cache = OutputCache::new(engine);
    let first = cache.get("outputs-once", None).await.unwrap().unwrap();
    assert!(first["QueueUrl"].contains("outputs-once"));
    assert_eq!(
        cache.get("outputs-once", None).await.unwrap().unwrap(),
        first
    );
    assert_eq!(cache.calls(), 1, "the second read comes from the cache");
    assert_eq!(cache.get("outputs-missing", None).await.unwrap(), None);
    assert_eq!(cache.get("outputs-missing", None).await.unwrap(), None);
    assert_eq!(cache.calls(), 2, "a missing stack is remembered too");
    cache
        .set("outputs-new", BTreeMap::from([("K".into(), "v".into())]))
        .await;
    assert_eq!(
        cache.get("outputs-new", None).await.unwrap().unwrap()["K"],
        "v"
    );
    assert_eq!(
        cache.calls(),
        2,
        "outputs of this run's deploys need no call"
    );
}
