//! `api`: the function is deployed and wired to this stage's table and topic.

use ferry_kit::{lambda, sdk_config};

use crate::stage;

#[tokio::test]
#[ignore = "runs against a deployed stage: cargo xtask test-acceptance <stage>"]
async fn the_function_holds_this_stages_table_and_topic() {
    let stage = stage();
    let client = aws_sdk_lambda::Client::new(&sdk_config(&stage).await);
    let function = stage.output("api", "FunctionName").unwrap();
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
    assert_eq!(
        env.get("TOPIC_ARN").map(String::as_str),
        Some(stage.output("events", "TopicArn").unwrap())
    );
}
