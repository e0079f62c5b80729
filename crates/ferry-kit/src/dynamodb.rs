//! DynamoDB checks. Keys and compared attributes are strings (`S`); other types are shown in
//! messages as DynamoDB prints them.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::{CheckError, DEFAULT_TIMEOUT, eventually};

pub type Item = HashMap<String, AttributeValue>;

const INTERVAL: Duration = Duration::from_millis(250);

fn show(item: &Option<Item>) -> String {
    match item {
        None => "no item".to_string(),
        Some(i) => {
            let mut keys: Vec<_> = i.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            keys.iter()
                .map(|(k, v)| match v {
                    AttributeValue::S(s) => format!("{k}={s:?}"),
                    AttributeValue::N(n) => format!("{k}={n}"),
                    other => format!("{k}={other:?}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// Reads one item (consistent read).
pub async fn get(
    client: &Client,
    table: &str,
    key: &[(&str, &str)],
) -> Result<Option<Item>, String> {
    let mut req = client.get_item().table_name(table).consistent_read(true);
    for (k, v) in key {
        req = req.key(*k, AttributeValue::S(v.to_string()));
    }
    req.send()
        .await
        .map(|o| o.item)
        .map_err(|e| ferry_aws::explain("GetItem", &e).to_string())
}

async fn wait_for(
    client: &Client,
    table: &str,
    key: &[(&str, &str)],
    what: String,
    ok: impl Fn(&Item) -> bool,
) -> Result<Item, CheckError> {
    eventually(&what, DEFAULT_TIMEOUT, INTERVAL, || async {
        let item = get(client, table, key).await?;
        match &item {
            Some(i) if ok(i) => Ok(i.clone()),
            _ => Err(show(&item)),
        }
    })
    .await
}

/// The item with `key` exists (waits up to [`DEFAULT_TIMEOUT`]).
pub async fn item_exists(
    client: &Client,
    table: &str,
    key: &[(&str, &str)],
) -> Result<Item, CheckError> {
    wait_for(
        client,
        table,
        key,
        format!("item {key:?} in {table}"),
        |_| true,
    )
    .await
}

/// The item's string attribute `attr` equals `expected`.
pub async fn item_equals(
    client: &Client,
    table: &str,
    key: &[(&str, &str)],
    attr: &str,
    expected: &str,
) -> Result<Item, CheckError> {
    wait_for(
        client,
        table,
        key,
        format!("item {key:?} in {table} has {attr}={expected:?}"),
        |i| matches!(i.get(attr), Some(AttributeValue::S(s)) if s == expected),
    )
    .await
}

/// The item's string attribute `attr` contains `needle`.
pub async fn item_contains(
    client: &Client,
    table: &str,
    key: &[(&str, &str)],
    attr: &str,
    needle: &str,
) -> Result<Item, CheckError> {
    wait_for(
        client,
        table,
        key,
        format!("item {key:?} in {table} has {attr} containing {needle:?}"),
        |i| matches!(i.get(attr), Some(AttributeValue::S(s)) if s.contains(needle)),
    )
    .await
}
