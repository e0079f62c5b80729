//! `fulfilment` (a SAM service): the function is deployed with this stage's table, and this
//! stage's order topic may invoke it.
//!
//! The subscription itself is an `AWS::SNS::Subscription` made by the SAM transform, which the
//! local emulator (moto 5.2.5) does not create; the permission beside it it does.

use ferry_kit::{lambda, sdk_config};

use crate::stage;

#[tokio::test]
#[ignore = "runs against a deployed stage: cargo xtask test-acceptance <stage>"]
async fn the_function_holds_this_stages_table() {
    let stage = stage();
    let client = aws_sdk_lambda::Client::new(&sdk_config(&stage).await);
    let function = stage.output("fulfilment", "FunctionName").unwrap();
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
    let function = stage.output("fulfilment", "FunctionName").unwrap();
    let topic = stage.output("events", "TopicArn").unwrap();
    let policy = client
        .get_policy()
        .function_name(function)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap_or_default();
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    let allowed = statements.iter().any(|s| {
        s["Principal"]["Service"] == "sns.amazonaws.com"
            && s["Action"] == "lambda:InvokeFunction"
            && s.to_string().contains(topic)
    });
    assert!(
        allowed,
        "no statement lets {topic} invoke {function}: {policy}"
    );
}
