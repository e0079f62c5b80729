//! `frontend`: the site is published, with a config file holding `api`'s real outputs.

use ferry_kit::{s3, sdk_config};

use crate::stage;

#[tokio::test]
#[ignore = "runs against a deployed stage: cargo xtask test-acceptance <stage>"]
async fn the_site_and_its_config_file_are_published() {
    let stage = stage();
    let client = s3::client(&sdk_config(&stage).await);
    let bucket = stage.output("frontend", "BucketName").unwrap();
    let index = s3::object_exists(&client, bucket, "index.html")
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&index).contains("<h1>Shop</h1>"));
    let function = stage.output("api", "FunctionName").unwrap();
    s3::object_matches(
        &client,
        bucket,
        "config.json",
        &format!("names function {function}"),
        |b| {
            serde_json::from_slice::<serde_json::Value>(b)
                .is_ok_and(|c| c["api"]["FunctionName"] == function)
        },
    )
    .await
    .unwrap();
}
