//! S3 checks.

use std::time::Duration;

use aws_sdk_s3::Client;

use crate::{CheckError, DEFAULT_TIMEOUT, eventually};

const INTERVAL: Duration = Duration::from_millis(250);

/// An S3 client for the stage: with a custom endpoint (the local emulator), path-style
/// addressing.
pub fn client(config: &aws_config::SdkConfig) -> Client {
    let mut b = aws_sdk_s3::config::Builder::from(config);
    if config.endpoint_url().is_some() {
        b = b.force_path_style(true);
    }
    Client::from_conf(b.build())
}

async fn get(client: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let o = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| match e.as_service_error() {
            Some(s) if s.is_no_such_key() => "no such object".to_string(),
            _ => ferry_aws::explain("GetObject", &e).to_string(),
        })?;
    o.body
        .collect()
        .await
        .map(|b| b.into_bytes().to_vec())
        .map_err(|e| e.to_string())
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    format!("{} bytes: {s:?}", bytes.len())
}

/// The object exists; returns its content.
pub async fn object_exists(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, CheckError> {
    eventually(
        &format!("s3://{bucket}/{key} exists"),
        DEFAULT_TIMEOUT,
        INTERVAL,
        || get(client, bucket, key),
    )
    .await
}

/// The object's content satisfies `ok` (e.g. equals, contains, parses).
pub async fn object_matches(
    client: &Client,
    bucket: &str,
    key: &str,
    what: &str,
    ok: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, CheckError> {
    eventually(
        &format!("s3://{bucket}/{key} {what}"),
        DEFAULT_TIMEOUT,
        INTERVAL,
        || async {
            let bytes = get(client, bucket, key).await?;
            if ok(&bytes) {
                Ok(bytes)
            } else {
                Err(preview(&bytes))
            }
        },
    )
    .await
}

/// The object's content is exactly `expected`.
pub async fn object_has_content(
    client: &Client,
    bucket: &str,
    key: &str,
    expected: &[u8],
) -> Result<(), CheckError> {
    object_matches(
        client,
        bucket,
        key,
        &format!("has content {}", preview(expected)),
        |b| b == expected,
    )
    .await
    .map(|_| ())
}
