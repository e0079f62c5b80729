//! Records and the lock against the local emulator.

use std::collections::BTreeMap;

use ferry_credentials::base_config;
use ferry_credentials::config::Target;
use ferry_records::{Acceptance, LockHolder, Record, RecordError, RecordStore};
use ferry_test_support::moto;

async fn store(stage: &str) -> RecordStore {
    store_at(stage, &format!("/ferry/records-test/{stage}/")).await
}

async fn store_at(stage: &str, path: &str) -> RecordStore {
    let config = base_config(
        "us-east-1",
        &Target {
            local_endpoint: Some(moto().endpoint()),
        },
    )
    .await;
    RecordStore::new(aws_sdk_ssm::Client::new(&config), stage, path)
}

fn record(service: &str, commit: &str) -> Record {
    Record {
        service: service.into(),
        stage: None,
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
        stack_id: Some(format!("arn:{service}")),
        stack_updated: Some(1_700_000_000_000),
        kind: Some("sam".into()),
        ..Default::default()
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
    assert_eq!(
        all["svc-03"],
        Record {
            stage: Some("rec".into()),
            ..r
        },
        "overwritten, and stamped with its stage"
    );
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

/// A record too large for a standard parameter (forty archives) is written whole, and every
/// record is written with Intelligent-Tiering (AWS then keeps it standard unless it needs the
/// advanced tier, and never asks to write an advanced one back as standard). The emulator
/// neither enforces the 4 KB and 8 KB limits nor picks a tier: it reports the tier asked for,
/// which is what this test checks; real SSM would report `Standard` or `Advanced`.
#[tokio::test]
async fn every_record_is_written_with_intelligent_tiering_and_a_large_one_whole() {
    let s = store("rec-tier").await;
    let mut many = record("many", "abc");
    many.artifacts = (0..40)
        .map(|i| {
            (
                format!("Function{i}LambdaFunction"),
                format!("shop/many/{}.zip", "b".repeat(64)),
            )
        })
        .collect();
    s.write(&many).await.unwrap();
    s.write(&record("few", "abc")).await.unwrap();
    let all = s.read_all().await.unwrap();
    assert_eq!(all["many"].artifacts, many.artifacts);
    assert_eq!(all["many"].outputs, many.outputs, "kept whole");
    let config = base_config(
        "us-east-1",
        &Target {
            local_endpoint: Some(moto().endpoint()),
        },
    )
    .await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let tier = |name: &'static str| {
        let ssm = ssm.clone();
        async move {
            let out = ssm
                .describe_parameters()
                .parameter_filters(
                    aws_sdk_ssm::types::ParameterStringFilter::builder()
                        .key("Name")
                        .values(format!("/ferry/records-test/rec-tier/records/{name}"))
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            out.parameters()[0].tier().map(|t| t.as_str().to_string())
        }
    };
    for name in ["many", "few"] {
        assert_eq!(tier(name).await.as_deref(), Some("Intelligent-Tiering"));
    }
}

#[tokio::test]
async fn a_record_of_another_stage_is_never_read_as_this_stages() {
    // `feature/login` and `feature-login` share the id `feature-login`, so one records path.
    let path = "/ferry/records-test/feature-login/";
    let first = store_at("feature/login", path).await;
    first.write(&record("api", "abc")).await.unwrap();
    let second = store_at("feature-login", path).await;
    let err = second.read_all().await.unwrap_err();
    assert!(matches!(err, RecordError::OtherStage { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("belongs to stage `feature/login`, not `feature-login`"),
        "{err}"
    );
    assert_eq!(first.read_all().await.unwrap().len(), 1);
}

fn holder(who: &str, host: &str, pid: u32, since: u64) -> LockHolder {
    let none = |_: &str| None;
    LockHolder {
        who: who.into(),
        host: host.into(),
        pid,
        since,
        build: None,
        ..LockHolder::for_this_process(&none, "deploy", "lock", None)
    }
}

#[tokio::test]
async fn the_lock_names_its_holder_releases_only_its_own_and_force_takes_only_a_stale_one() {
    let s = store("lock").await;
    let now = ferry_records::now_secs();
    let me = holder("alice", "laptop", 42, now);
    let other = holder("codebuild", "ip-10-0-0-1", 7, now);
    assert_eq!(s.lock(&me, false).await.unwrap().displaced, None);

    // A second run fails, naming the holder; the lock is live, so force does not take it.
    let err = s.lock(&other, false).await.unwrap_err();
    match &err {
        RecordError::Locked { holder, stale, .. } => {
            assert_eq!(**holder, me);
            assert_eq!(*stale, None);
        }
        e => panic!("{e:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("stage `lock` is locked by alice on laptop (pid 42, `deploy`) since "),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("; wait for that run to finish (a lock is stale once not renewed for 5 min, or when its process is gone from this host (same boot and pid namespace), or this host restarted since it was written, and --force-unlock takes it over then)"),
        "{err}"
    );
    let err = s.lock(&other, true).await.unwrap_err();
    assert!(matches!(err, RecordError::LockedLive { .. }), "{err:?}");
    assert!(err.to_string().contains("so that run is alive"), "{err}");

    // Only the holder renews and releases it.
    s.renew(&me).await.unwrap();
    assert!(matches!(
        s.renew(&other).await.unwrap_err(),
        RecordError::LockLost { .. }
    ));
    assert!(matches!(
        s.unlock(&other).await.unwrap(),
        ferry_records::Released::NotOurs(h) if h.token == me.token
    ));
    assert_eq!(s.lock_holder().await.unwrap().unwrap().token, me.token);
    assert_eq!(
        s.unlock(&me).await.unwrap(),
        ferry_records::Released::Released
    );
    assert_eq!(s.unlock(&me).await.unwrap(), ferry_records::Released::Gone);

    // A holder whose clock runs an hour behind: the time it wrote says an hour ago, but SSM
    // wrote the lock just now, so the lock is live: refused, and force does not take it. (A lock
    // SSM last wrote an hour ago is stale: `scripted.rs`, as the emulator stamps every write with
    // the present.)
    let behind = holder("bob", "ci-runner", 9, now - 3600);
    s.lock(&behind, false).await.unwrap();
    let err = s.lock(&me, false).await.unwrap_err();
    assert!(
        matches!(&err, RecordError::Locked { stale: None, .. }),
        "{err:?}"
    );
    let err = s.lock(&me, true).await.unwrap_err();
    assert!(
        matches!(err, RecordError::LockedLive { renewed_secs_ago, .. } if renewed_secs_ago < 60),
        "{err:?}"
    );
    s.unlock(&behind).await.unwrap();
}

#[tokio::test]
async fn a_lock_left_by_a_dead_process_on_this_host_is_stale() {
    let s = store("lock-dead").await;
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    // (Its start time, read before it is reaped, tells it from a process that reuses the pid.)
    let started = ferry_records::lock::process::started(pid);
    child.wait().unwrap();
    let none = |_: &str| None;
    let dead = LockHolder {
        pid,
        started,
        ..LockHolder::for_this_process(&none, "deploy", "lock-dead", None)
    };
    s.lock(&dead, false).await.unwrap();
    let me = LockHolder::for_this_process(&none, "deploy", "lock-dead", None);
    let err = s.lock(&me, false).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "that lock is stale (pid {pid} is no longer running on this host)"
        )),
        "{err}"
    );
    let (displaced, _) = s.lock(&me, true).await.unwrap().displaced.unwrap();
    assert_eq!(displaced.pid, pid);
    s.unlock(&me).await.unwrap();
}

#[tokio::test]
async fn the_nodes_of_one_batch_share_the_lock_and_any_other_run_is_refused() {
    let s = store("lock-batch").await;
    let none = |_: &str| None;
    let node = |pid: u32, batch: &str| LockHolder {
        pid,
        host: format!("node-{pid}"),
        ..LockHolder::for_this_process(&none, "batch node", "lock-batch", None).in_batch(batch)
    };
    // The node that takes the lock names the batch's release; the others, at whatever commit,
    // and the last step get it from the lock.
    let a = LockHolder {
        release: Some("20261206-120000.000-aaaaaaa".into()),
        ..node(11, "run-1")
    };
    let b = LockHolder {
        release: Some("20261206-120005.000-bbbbbbb".into()),
        ..node(12, "run-1")
    };
    assert_eq!(a.token, b.token, "one batch, one token");
    assert_ne!(a.token, node(13, "run-2").token);
    assert_eq!(s.join(&a).await.unwrap(), ferry_records::Joined::Took);
    let since = s.lock_holder().await.unwrap().unwrap().since;
    let release = a.release.clone();
    assert_eq!(
        s.join(&b).await.unwrap(),
        ferry_records::Joined::Joined {
            since,
            release: release.clone()
        }
    );
    // b's join kept a's release in the lock.
    assert_eq!(s.lock_holder().await.unwrap().unwrap().release, release);
    // Its last step reads when the batch took the lock; another batch's last step is refused.
    assert_eq!(s.batch_since(&b).await.unwrap(), (since, release));
    let err = s.batch_since(&node(13, "run-2")).await.unwrap_err();
    assert!(
        matches!(&err, RecordError::OtherBatch { batch, holder, .. } if batch == "run-2" && holder.batch.as_deref() == Some("run-1")),
        "{err:?}"
    );

    // Another batch, and a plain run, are refused naming the batch.
    for other in [
        node(13, "run-2"),
        LockHolder::for_this_process(&none, "deploy", "lock-batch", None),
    ] {
        let err = match other.batch {
            Some(_) => s.join(&other).await.unwrap_err(),
            None => s.lock(&other, false).await.unwrap_err(),
        };
        assert!(
            matches!(&err, RecordError::Locked { holder, stale: None, .. } if holder.batch.as_deref() == Some("run-1")),
            "{err:?}"
        );
        assert!(err.to_string().contains("batch run-1: "), "{err}");
        assert!(
            err.to_string()
                .contains("(a batch's lock is stale once not renewed for 60 min, and"),
            "a batch's lock goes stale by its own age: {err}"
        );
    }

    // Any node renews it; the node whose process is gone does not make it stale.
    s.renew(&a).await.unwrap();
    s.renew(&b).await.unwrap();
    let plain = LockHolder::for_this_process(&none, "deploy", "lock-batch", None);
    let err = s.lock(&plain, true).await.unwrap_err();
    assert!(matches!(err, RecordError::LockedLive { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("(--force-unlock takes over only a stale lock: a batch's lock is stale once not renewed for 60 min)"),
        "{err}"
    );
    // A failed batch blocked its fix (another commit, another batch) for an hour: the way out
    // is named.
    assert!(
        err.to_string().ends_with(". Once none of that batch's nodes runs (one failed, and the rest were skipped), `batch finish lock-batch --batch run-1` releases it now, with a release of what it deployed"),
        "{err}"
    );
    // The batch's last step releases it, as any node of the batch may.
    assert_eq!(
        s.unlock(&b).await.unwrap(),
        ferry_records::Released::Released
    );
    assert_eq!(
        s.join(&node(13, "run-2")).await.unwrap(),
        ferry_records::Joined::Took
    );
    s.unlock(&node(14, "run-2")).await.unwrap();
    assert_eq!(s.lock_holder().await.unwrap(), None);
    assert!(matches!(
        s.batch_since(&node(14, "run-2")).await.unwrap_err(),
        RecordError::BatchNotLocked { .. }
    ));

    // A plain run's stale lock (its process is gone from this host) a batch does not take
    // over. (Another batch's lock that nobody renewed for an hour it does: SSM's clock says how
    // long, and the emulator stamps every write with the present, so that is scripted, in
    // scripted.rs.)
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    let started = ferry_records::lock::process::started(dead);
    child.wait().unwrap();
    let plain = LockHolder {
        pid: dead,
        started,
        ..LockHolder::for_this_process(&none, "deploy", "lock-batch", None)
    };
    s.lock(&plain, false).await.unwrap();
    assert!(matches!(
        s.join(&node(17, "run-5")).await.unwrap_err(),
        RecordError::Locked {
            stale: Some(ferry_records::Stale::DeadProcess { .. }),
            ..
        }
    ));
    // Unless forced: then the batch takes it over, naming it; a sibling node joins.
    assert!(matches!(
        s.join_forcing(&node(17, "run-5"), false).await.unwrap_err(),
        RecordError::Locked { stale: Some(_), .. }
    ));
    match s.join_forcing(&node(17, "run-5"), true).await.unwrap() {
        ferry_records::Joined::TookOver { from, .. } => assert_eq!(from.pid, dead),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.join_forcing(&node(18, "run-5"), true).await.unwrap(),
        ferry_records::Joined::Joined { .. }
    ));
    s.unlock(&node(18, "run-5")).await.unwrap();
    assert_eq!(s.lock_holder().await.unwrap(), None);
}

// Before a stack operation starts, a run checks that the lock it took or joined is still its
// own: a batch node whose batch's lock `batch finish` released, and a plain deploy then took,
// went on to update a stack under the other run's lock.
#[tokio::test]
async fn a_store_checks_that_the_lock_it_holds_is_still_its_own() {
    let node = store("lock-held").await;
    let other = store("lock-held").await;
    // Holding nothing, nothing is checked.
    node.check_held().await.unwrap();
    let none = |_: &str| None;
    let batch = LockHolder::for_this_process(&none, "batch node", "lock-held", None).in_batch("b4");
    node.join(&batch).await.unwrap();
    node.check_held().await.unwrap();
    // The clone a deploy works with holds it too.
    node.clone().check_held().await.unwrap();
    // The batch's last step releases it (another process: its own store), and a plain deploy
    // takes it.
    other.unlock(&batch).await.unwrap();
    let deploy = holder("carol", "laptop", 77, ferry_records::now_secs());
    other.lock(&deploy, false).await.unwrap();
    other.check_held().await.unwrap();
    let err = node.check_held().await.unwrap_err();
    assert!(
        matches!(&err, RecordError::LockLost { holder: Some(h), .. } if h.token == deploy.token),
        "{err:?}"
    );
    // Released, it holds nothing again.
    other.unlock(&deploy).await.unwrap();
    other.check_held().await.unwrap();
}

/// A batch node marks itself as at work (`<path>nodes/<service>`) so that `batch finish` can
/// wait for it: the marks of the batch are listed, others' (left by killed nodes of an earlier
/// batch: none works while this one holds the lock) deleted; a node on another host is live
/// until its mark ages past the plain lock's TTL, one of this host and boot whose process is
/// gone is stale at once; `wait_for_nodes` deletes a stale mark and returns it, and fails naming a
/// live one once its wait is over; deleting a service's records deletes its mark.
#[tokio::test]
async fn batch_nodes_mark_themselves_at_work_and_finish_waits_for_live_ones() {
    let s = store("nodes").await;
    let none = |_: &str| None;
    let node = |host: &str, batch: &str| LockHolder {
        host: host.into(),
        ..LockHolder::for_this_process(&none, "batch node", "nodes", None).in_batch(batch)
    };
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let here = ferry_records::lock::process::host();
    let killed = LockHolder {
        pid: dead,
        started: None,
        ..node(&here, "run-1")
    };
    s.mark_node("a", &node("ci-1", "run-1")).await.unwrap();
    s.mark_node("b", &killed).await.unwrap();
    s.mark_node("c", &node("ci-2", "run-2")).await.unwrap();
    let mut marks = s.running_nodes(&node("x", "run-1")).await.unwrap();
    marks.sort_by(|x, y| x.service.cmp(&y.service));
    let seen: Vec<_> = marks
        .iter()
        .map(|m| (m.service.as_str(), m.stale.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("a", None),
            ("b", Some(ferry_records::Stale::DeadProcess { pid: dead }))
        ]
    );
    assert!(marks[0].renewed_secs_ago < 60, "{marks:?}");

    let told = std::sync::Mutex::new(Vec::new());
    let err = s
        .wait_for_nodes(
            &node("x", "run-1"),
            std::time::Duration::from_millis(300),
            std::time::Duration::from_millis(100),
            &|live| {
                told.lock()
                    .unwrap()
                    .push(live.iter().map(|n| n.service.clone()).collect::<Vec<_>>())
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RecordError::NodesRunning { batch, nodes, .. } if batch == "run-1" && nodes.len() == 1 && nodes[0].starts_with("`a` (") && nodes[0].contains(" on ci-1 (pid ")),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("run `batch finish` again once it has ended"),
        "{err}"
    );
    let told = told.into_inner().unwrap();
    assert!(
        !told.is_empty() && told.iter().all(|t| t == &["a"]),
        "{told:?}"
    );
    // b's stale mark went at the first look; a's is still there.
    let left: Vec<_> = s
        .running_nodes(&node("x", "run-1"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.service)
        .collect();
    assert_eq!(left, ["a"]);

    // A's node ends: nothing to wait for. Run-2's mark goes with c's records.
    s.unmark_node("a").await.unwrap();
    let gone = s
        .wait_for_nodes(
            &node("x", "run-1"),
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(100),
            &|_| panic!("nothing is at work"),
        )
        .await
        .unwrap();
    assert!(gone.is_empty(), "{gone:?}");
    // c's mark, run-2's, went with run-1's first look.
    assert!(
        s.running_nodes(&node("x", "run-2"))
            .await
            .unwrap()
            .is_empty()
    );
    // A service's records go with its mark.
    s.mark_node("d", &node("ci-1", "run-1")).await.unwrap();
    s.delete("d").await.unwrap();
    assert!(
        s.running_nodes(&node("x", "run-1"))
            .await
            .unwrap()
            .is_empty()
    );
    // The same host name on another boot (a container on the host's network, a machine made
    // from one image) proves nothing of a process: judged by age alone.
    let elsewhere = LockHolder {
        boot: Some("another-boot".into()),
        ..killed.clone()
    };
    s.mark_node("e", &elsewhere).await.unwrap();
    let marks = s.running_nodes(&node("x", "run-1")).await.unwrap();
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].stale, None, "{marks:?}");
    s.unmark_node("e").await.unwrap();
}
