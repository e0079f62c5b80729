//! Records and the lock against the local emulator.

use std::collections::BTreeMap;

use ferry_credentials::base_config;
use ferry_credentials::config::Target;
use ferry_records::{Acceptance, LockHolder, Record, RecordError, RecordStore};
use ferry_test_support::moto;

async fn store(stage: &str) -> RecordStore {
    let config = base_config(
        "us-east-1",
        &Target {
            local_endpoint: Some(moto().endpoint()),
        },
    )
    .await;
    RecordStore::new(
        aws_sdk_ssm::Client::new(&config),
        "records-test",
        stage,
        stage,
        None,
    )
}

fn record(service: &str, commit: &str) -> Record {
    Record {
        service: service.into(),
        stack: format!("{service}-dev"),
        commit: commit.into(),
        dirty: false,
        template_hash: "t".into(),
        parameters_hash: "p".into(),
        artifacts: BTreeMap::new(),
        deployed_at: 1,
        duration_ms: 1500,
        acceptance: None,
        outputs: BTreeMap::from([("Url".to_string(), format!("https://{service}"))]),
    }
}

#[tokio::test]
async fn records_of_a_stage_are_written_read_together_and_deleted() {
    let s = store("rec").await;
    assert!(s.read_all().await.unwrap().is_empty());
    for i in 0..14 {
        s.write(&record(&format!("svc-{i:02}"), "abc"))
            .await
            .unwrap();
    }
    let mut r = record("svc-03", "def");
    r.acceptance = Some(Acceptance {
        passed: true,
        at: 2,
    });
    s.write(&r).await.unwrap();
    let all = s.read_all().await.unwrap();
    assert_eq!(all.len(), 14, "every page");
    assert_eq!(all["svc-03"], r, "overwritten");
    s.delete("svc-03").await.unwrap();
    s.delete("svc-03").await.unwrap();
    assert_eq!(s.read_all().await.unwrap().len(), 13);
    // Another stage's records are apart.
    assert!(
        store("rec-other")
            .await
            .read_all()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_second_lock_fails_naming_the_holder_until_released_or_forced() {
    let s = store("lock").await;
    let me = LockHolder {
        who: "alice".into(),
        host: "laptop".into(),
        build: None,
        pid: 42,
        since: 1_795_312_984,
    };
    let other = LockHolder {
        who: "codebuild".into(),
        host: "ip-10-0-0-1".into(),
        build: Some("shop:9".into()),
        pid: 7,
        since: 1_795_313_000,
    };
    s.lock(&me, false).await.unwrap();
    let err = s.lock(&other, false).await.unwrap_err();
    match &err {
        RecordError::Locked { holder, .. } => assert_eq!(holder, &me),
        e => panic!("{e:?}"),
    }
    assert_eq!(
        err.to_string(),
        "stage `lock` is locked by alice on laptop (pid 42) since 2026-11-22 02:03:04 UTC; wait for that deploy to finish, or take over a stale lock with --force-unlock"
    );
    s.lock(&other, true).await.unwrap();
    s.unlock().await.unwrap();
    s.unlock().await.unwrap();
    s.lock(&me, false).await.unwrap();
    s.unlock().await.unwrap();
}
