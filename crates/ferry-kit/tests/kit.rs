//! The test library's checks against the local emulator: DynamoDB items, S3 objects, SQS
//! messages with SNS envelopes unwrapped, a temporary subscriber, a negated check, HTTP.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use ferry_kit::{CheckError, dynamodb, http, s3, sns::TempQueue, sqs};

async fn config() -> aws_config::SdkConfig {
    ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some(ferry_test_support::moto().endpoint()),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_checks_see_items_and_report_the_last_value() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    client
        .create_table()
        .table_name("kit-orders")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name("kit-orders")
        .item("id", AttributeValue::S("o-1".into()))
        .item("status", AttributeValue::S("placed by kit".into()))
        .send()
        .await
        .unwrap();
    let key = [("id", "o-1")];
    dynamodb::item_exists(&client, "kit-orders", &key)
        .await
        .unwrap();
    dynamodb::item_equals(&client, "kit-orders", &key, "status", "placed by kit")
        .await
        .unwrap();
    dynamodb::item_contains(&client, "kit-orders", &key, "status", "kit")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_and_http_checks_read_objects() {
    let conf = config().await;
    let client = s3::client(&conf);
    client
        .create_bucket()
        .bucket("kit-site")
        .send()
        .await
        .unwrap();
    client
        .put_object()
        .bucket("kit-site")
        .key("index.html")
        // Public, as a website's pages are: the HTTP request below is anonymous.
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .body(b"<h1>kit</h1>".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(
        s3::object_exists(&client, "kit-site", "index.html")
            .await
            .unwrap(),
        b"<h1>kit</h1>"
    );
    s3::object_has_content(&client, "kit-site", "index.html", b"<h1>kit</h1>")
        .await
        .unwrap();

    // The emulator serves S3 over plain HTTP, path style.
    let url = format!(
        "{}/kit-site/index.html",
        ferry_test_support::moto().endpoint()
    );
    let r = http::response_is(&url, 200, "<h1>kit</h1>").await.unwrap();
    assert_eq!(r.body, b"<h1>kit</h1>");
    let missing = format!(
        "{}/kit-site/nope.html",
        ferry_test_support::moto().endpoint()
    );
    let r = http::get(&missing).await.unwrap();
    assert_ne!(r.status, 200);
    let e = http::response_within(&missing, 200, "kit", Duration::from_secs(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("last seen: HTTP {}", r.status)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_subscriber_receives_unwrapped_messages_and_the_negated_check_waits() {
    let conf = config().await;
    let sns = aws_sdk_sns::Client::new(&conf);
    let sqs_client = aws_sdk_sqs::Client::new(&conf);
    let topic = sns
        .create_topic()
        .name("kit-events")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let q = TempQueue::subscribe(&sns, &sqs_client, &topic, "kit-temp")
        .await
        .unwrap();
    sns.publish()
        .topic_arn(&topic)
        .message("{\"orderId\":\"o-7\"}")
        .send()
        .await
        .unwrap();
    let got = sqs::message_matches(&sqs_client, &q.url, "for o-7", |m| m.contains("o-7"))
        .await
        .unwrap();
    assert_eq!(got, "{\"orderId\":\"o-7\"}");

    let t0 = std::time::Instant::now();
    sqs::no_message(
        &sqs_client,
        &q.url,
        "for o-7 again",
        Duration::from_secs(2),
        |m| m.contains("o-7"),
    )
    .await
    .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "the negated check must wait its window"
    );

    sns.publish()
        .topic_arn(&topic)
        .message("o-8")
        .send()
        .await
        .unwrap();
    let e = sqs::no_message(
        &sqs_client,
        &q.url,
        "for o-8",
        Duration::from_secs(5),
        |m| m == "o-8",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, CheckError::Happened { ref seen, .. } if seen == "o-8"),
        "{e}"
    );

    let url = q.url.clone();
    q.remove().await.unwrap();
    assert!(
        sqs_client
            .get_queue_attributes()
            .queue_url(url)
            .send()
            .await
            .is_err(),
        "the queue is gone"
    );
}
