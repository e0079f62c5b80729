//! `notifier` (a Serverless Framework service): the function the framework compiled is deployed
//! under the framework's own stack name, with this stage's table, and this stage's order topic
//! may invoke it.

use ferry_kit::{lambda, sdk_config};

use crate::stage;

#[tokio::test]
#[ignore = "runs against a deployed stage: cargo xtask test-acceptance <stage>"]
async fn the_function_holds_this_stages_table_and_stage() {
    let stage = stage();
    let client = aws_sdk_lambda::Client::new(&sdk_config(&stage).await);
    let function = stage.output("notifier", "FunctionName").unwrap();
    assert_eq!(
        function,
        format!("shop-notifications-{}-notify", stage.stage_id),
        "the framework's own function name"
    );
    let env = lambda::function_environment(&client, function)
        .await
        .unwrap();
    assert_eq!(
        env.get("STAGE").map(String::as_str),
        Some(stage.stage_id.as_str()),
        "{env:?}"
    );
    assert_eq!(
        env.get("TABLE_NAME").map(String::as_str),
        Some(stage.output("database", "TableName").unwrap())
    );
}

#[tokio::test]
#[ignore = "runs against a deployed stage: cargo xtask test-acceptance <stage>"]
async fn this_stages_order_topic_may_invoke_the_function() {
    let stage = stage();
    let client = aws_sdk_lambda::Client::new(&sdk_config(&stage).await);
    let function = stage.output("notifier", "FunctionName").unwrap();
    let topic = stage.output("events", "TopicArn").unwrap();
    let policy = client
        .get_policy()
        .function_name(function)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap_or_default();
    assert!(
        policy.contains(topic) && policy.contains("sns.amazonaws.com"),
        "no statement lets {topic} invoke {function}: {policy}"
    );
}
