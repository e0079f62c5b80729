//! The release store against the local emulator: write, read back, list newest first; a stage
//! without a bucket yet has no releases; an object that is not a release is reported.

use std::collections::BTreeMap;

use ferry_releases::{FORMAT, Release, ReleaseError, ReleaseKind, ReleaseStore};
use ferry_test_support::moto;

fn release(id: &str) -> Release {
    Release {
        format: FORMAT,
        id: id.into(),
        project: "store".into(),
        stage: "prod".into(),
        kind: ReleaseKind::Deploy,
        commit: "c".into(),
        created_at: 1,
        by: Some("arn:aws:iam::123456789012:user/someone".into()),
        from: None,
        restores: None,
        gate_override: None,
        deployed: vec!["api".into()],
        untested: Default::default(),
        services: BTreeMap::new(),
        approval: None,
        recovered: None,
    }
}

#[tokio::test]
async fn releases_round_trip_newest_first() {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(ferry_credentials::https_client())
        .endpoint_url(moto().endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::for_tests())
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let missing = ReleaseStore::new(s3.clone(), "no-such-bucket-ferry", "store", "prod");
    assert_eq!(missing.ids().await.unwrap(), Vec::<String>::new());

    s3.create_bucket()
        .bucket("releases-store-test")
        .send()
        .await
        .unwrap();
    let store = ReleaseStore::new(s3.clone(), "releases-store-test", "store", "prod");
    let other = ReleaseStore::new(s3.clone(), "releases-store-test", "store", "staging");
    for id in [
        "20261202-100000.000-aaaaaaa",
        "20261202-120000.000-ccccccc",
        "20261202-110000.000-bbbbbbb",
    ] {
        store.put(&release(id)).await.unwrap();
    }
    other
        .put(&release("20261203-000000.000-ddddddd"))
        .await
        .unwrap();
    assert_eq!(
        store.ids().await.unwrap(),
        vec![
            "20261202-120000.000-ccccccc",
            "20261202-110000.000-bbbbbbb",
            "20261202-100000.000-aaaaaaa"
        ],
        "newest first, this stage's only"
    );
    let recent = store.recent(2).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0], release("20261202-120000.000-ccccccc"));
    assert_eq!(
        store.get("20261201-000000.000-0000000").await.unwrap(),
        None
    );
    assert!(matches!(
        store.get("../staging/x").await,
        Err(ReleaseError::BadId { .. })
    ));

    s3.put_object()
        .bucket("releases-store-test")
        .key("store/_releases/prod/20261202-130000.000-eeeeeee.json")
        .body(b"{not json".to_vec().into())
        .send()
        .await
        .unwrap();
    let err = store
        .get("20261202-130000.000-eeeeeee")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is not a release Ferry can read") && err.contains("delete it"),
        "{err}"
    );

    // A stage's releases are apart from the packages of a service named `releases`
    // (`store/releases/site/<sha>`, its site files): removing a preview `site` deletes its
    // releases and reviews, nothing else, not even a stray object under its prefix.
    let site = ReleaseStore::new(s3.clone(), "releases-store-test", "store", "site");
    site.put(&release("20261204-000000.000-fffffff"))
        .await
        .unwrap();
    for key in [
        "store/releases/site/0a1b2c",
        "store/_releases/site/notes.txt",
    ] {
        s3.put_object()
            .bucket("releases-store-test")
            .key(key)
            .body(b"kept".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    // Releases an earlier Ferry wrote under `releases/`: read, and deleted with the stage.
    let legacy = serde_json::to_vec(&release("20261101-000000.000-0000001")).unwrap();
    for key in [
        "store/releases/site/20261101-000000.000-0000001.json",
        "store/releases/site/pending/20261101-000000.000-0000002.json",
    ] {
        s3.put_object()
            .bucket("releases-store-test")
            .key(key)
            .body(legacy.clone().into())
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        site.ids().await.unwrap(),
        ["20261204-000000.000-fffffff", "20261101-000000.000-0000001"]
    );
    assert_eq!(
        site.get("20261101-000000.000-0000001").await.unwrap(),
        Some(release("20261101-000000.000-0000001"))
    );
    assert_eq!(site.delete_all().await.unwrap(), 3);
    assert_eq!(site.ids().await.unwrap(), Vec::<String>::new());
    for key in [
        "store/releases/site/0a1b2c",
        "store/_releases/site/notes.txt",
    ] {
        s3.get_object()
            .bucket("releases-store-test")
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key} was deleted: {e:?}"));
    }
}
