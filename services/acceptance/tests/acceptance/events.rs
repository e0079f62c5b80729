//! `events`: what is published on the topic reaches the service's queue, and any subscriber.

use std::time::Duration;

use ferry_kit::sns::TempQueue;
use ferry_kit::{sdk_config, sqs};

use crate::{stage, unique};

#[tokio::test]
#[ignore = "runs against a deployed stage: cargo xtask test-acceptance <stage>"]
async fn a_published_order_event_reaches_the_order_queue() {
    let stage = stage();
    let config = sdk_config(&stage).await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs_client = aws_sdk_sqs::Client::new(&config);
    let marker = unique("order");
    let message = serde_json::json!({"type": "OrderPlaced", "orderId": marker}).to_string();
    sns.publish()
        .topic_arn(stage.output("events", "TopicArn").unwrap())
        .message(&message)
        .send()
        .await
        .unwrap();
    let got = sqs::message_matches(
        &sqs_client,
        stage.output("events", "QueueUrl").unwrap(),
        &format!("for order {marker}"),
        |m| m.contains(&marker),
    )
    .await
    .unwrap();
    assert_eq!(got, message);
}

#[tokio::test]
#[ignore = "runs against a deployed stage: cargo xtask test-acceptance <stage>"]
async fn a_temporary_subscriber_sees_each_event_once_and_nothing_else() {
    let stage = stage();
    let config = sdk_config(&stage).await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs_client = aws_sdk_sqs::Client::new(&config);
    let topic = stage.output("events", "TopicArn").unwrap();
    let queue = TempQueue::subscribe(&sns, &sqs_client, topic, &unique("acceptance-events"))
        .await
        .unwrap();
    let marker = unique("order");
    sns.publish()
        .topic_arn(topic)
        .message(&marker)
        .send()
        .await
        .unwrap();
    let result = async {
        let got = sqs::message_matches(&sqs_client, &queue.url, "with the marker", |m| m == marker)
            .await?;
        assert_eq!(got, marker);
        // Delivered once: no second copy within two seconds.
        sqs::no_message(
            &sqs_client,
            &queue.url,
            "with the marker again",
            Duration::from_secs(2),
            |m| m == marker,
        )
        .await
    }
    .await;
    queue.remove().await.unwrap();
    result.unwrap();
}
