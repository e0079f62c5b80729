//! `database`: the orders table accepts and returns an order.

use aws_sdk_dynamodb::types::AttributeValue;
use ferry_kit::{dynamodb, sdk_config};

use crate::{stage, unique};

#[tokio::test]
#[ignore = "runs against a deployed stage: cargo xtask test-acceptance <stage>"]
async fn an_order_written_to_the_table_reads_back() {
    let stage = stage();
    let table = stage.output("database", "TableName").unwrap();
    let client = aws_sdk_dynamodb::Client::new(&sdk_config(&stage).await);
    let id = unique("acceptance-order");
    client
        .put_item()
        .table_name(table)
        .item("orderId", AttributeValue::S(id.clone()))
        .item("status", AttributeValue::S("placed".into()))
        .item(
            "note",
            AttributeValue::S(format!("written by the {} acceptance tests", stage.stage)),
        )
        .send()
        .await
        .unwrap();
    dynamodb::item_equals(&client, table, &[("orderId", &id)], "status", "placed")
        .await
        .unwrap();
    dynamodb::item_contains(&client, table, &[("orderId", &id)], "note", &stage.stage)
        .await
        .unwrap();
    client
        .delete_item()
        .table_name(table)
        .key("orderId", AttributeValue::S(id))
        .send()
        .await
        .unwrap();
}
