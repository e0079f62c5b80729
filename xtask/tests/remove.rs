//! `remove` end to end against the local emulator: the buckets a stack owns are emptied (every
//! version and delete marker) before its delete, a bucket the template retains is left whole, a
//! stack that cannot be deleted is reported with its reason and exit 1 while its dependencies
//! are kept and the rest goes, and every deleted stack is confirmed gone.
//!
//! The emulator deletes a stack whose bucket still holds objects and silently leaves the bucket
//! behind (AWS would fail the delete), so a bucket missing after `remove` shows it was emptied.

use crate::common::{config, records, refusing_ssm, rt, run, xtask};
use ferry_test_support::TestRepo;

const QUEUE: &str = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueArn:\n    Value: !GetAtt Q.Arn\n";
const STORE: &str = "Resources:\n  B:\n    Type: AWS::S3::Bucket\n  R:\n    Type: AWS::S3::Bucket\n    DeletionPolicy: Retain\nOutputs:\n  Bucket:\n    Value: !Ref B\n  Kept:\n    Value: !Ref R\n";
const LOCKED: &str = "Parameters:\n  Queue: {Type: String}\nResources:\n  B:\n    Type: AWS::S3::Bucket\nOutputs:\n  Bucket:\n    Value: !Ref B\n";

/// A repository of project `name` with one stage, dev (stacks `<project>-<service>-dev`).
fn project(name: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{name}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n[stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n"
        ),
    );
    r
}

/// Project `p` with `a` (a queue) and `b` (reading a's `QueueArn`), committed and deployed
/// to dev.
fn queue_and_reader(p: &str) -> TestRepo {
    let r = project(p);
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/a/t.yaml", QUEUE)
    .write(
        "services/b/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${output:a.QueueArn}\"\n",
    )
    .write("services/b/t.yaml", LOCKED);
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    r
}

fn buckets() -> Vec<String> {
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(s3.list_buckets().send())
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(String::from))
        .collect()
}

#[test]
fn remove_empties_buckets_reports_a_stack_it_cannot_delete_and_keeps_what_it_serves() {
    let p = "rm-buckets";
    let r = project(p);
    r.write(
        "services/store/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/store/t.yaml", STORE)
    .write(
        "services/base/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/base/t.yaml", QUEUE)
    .write(
        "services/locked/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${output:base.QueueArn}\"\n",
    )
    .write("services/locked/t.yaml", LOCKED);
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let recs = records(p, "dev");
    let (store, kept, locked) = (
        recs["store"].outputs["Bucket"].clone(),
        recs["store"].outputs["Kept"].clone(),
        recs["locked"].outputs["Bucket"].clone(),
    );

    // store's bucket: versioned, two versions of a key and a delete marker, and a second key;
    // its retained bucket holds an object; locked's bucket holds an object under legal hold.
    let s3 = ferry_package::s3_client(&config());
    let rt = rt();
    rt.block_on(async {
        use aws_sdk_s3::types::{
            BucketVersioningStatus, ObjectLockConfiguration, ObjectLockEnabled,
            ObjectLockLegalHoldStatus, VersioningConfiguration,
        };
        let versioned = VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .build();
        for b in [&store, &locked] {
            s3.put_bucket_versioning()
                .bucket(b)
                .versioning_configuration(versioned.clone())
                .send()
                .await
                .unwrap();
        }
        for body in ["1", "2"] {
            s3.put_object()
                .bucket(&store)
                .key("k")
                .body(body.as_bytes().to_vec().into())
                .send()
                .await
                .unwrap();
        }
        s3.delete_object()
            .bucket(&store)
            .key("k")
            .send()
            .await
            .unwrap();
        s3.put_object()
            .bucket(&store)
            .key("other")
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap();
        s3.put_object()
            .bucket(&kept)
            .key("keep")
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap();
        s3.put_object_lock_configuration()
            .bucket(&locked)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        s3.put_object()
            .bucket(&locked)
            .key("evidence")
            .body(b"x".to_vec().into())
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await
            .unwrap();
    });

    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(
        code, 1,
        "a stack that was not deleted is a failure\n{out}\n{err}"
    );
    assert!(
        err.contains(&format!(
            "error: stack {p}-locked-dev of `locked` was not deleted: failed to empty bucket {locked} before deleting its stack: DeleteObjects refused evidence: Access Denied because object protected by object lock. (AccessDenied)"
        )),
        "{err}"
    );
    assert!(
        err.contains("kept base: `locked`, which depends on it, was not deleted"),
        "{err}"
    );
    assert!(
        err.contains(
            "2 stack(s) of stage `dev` were not deleted (the records of those that have one stay)"
        ),
        "{err}"
    );
    assert!(
        out.contains(&format!(
            "emptied bucket {store} (store): 4 object version(s) and delete marker(s)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "kept bucket {kept} (store): its template retains it (DeletionPolicy: Retain)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("deleted {p}-store-dev (store)")),
        "{out}"
    );
    let now = buckets();
    assert!(!now.contains(&store), "store's bucket is gone: {now:?}");
    assert!(now.contains(&kept), "the retained bucket stays: {now:?}");
    let left: Vec<String> = records(p, "dev").into_keys().collect();
    assert_eq!(
        left,
        ["base", "locked"],
        "records of what was not deleted stay"
    );

    // The hold released, a second remove deletes what is left, dependents first.
    rt.block_on(async {
        let versions = s3
            .list_object_versions()
            .bucket(&locked)
            .send()
            .await
            .unwrap();
        let v = versions.versions()[0].version_id().unwrap().to_string();
        s3.put_object_legal_hold()
            .bucket(&locked)
            .key("evidence")
            .version_id(v)
            .legal_hold(
                aws_sdk_s3::types::ObjectLockLegalHold::builder()
                    .status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::Off)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("2 stack(s) deleted from stage `dev`, each confirmed gone"),
        "{out}"
    );
    assert!(
        out.find("(locked)").unwrap() < out.find("(base)").unwrap(),
        "{out}"
    );
    assert!(records(p, "dev").is_empty());
    assert!(!buckets().contains(&locked));
}

/// A record that cannot be deleted (SSM refusing) after its stack is gone does not hide the
/// rest: every deleted stack is said, the record's error too, exit 1; the next `remove` deletes
/// the record left (its stack is absent by then).
#[test]
fn a_record_left_behind_is_reported_with_the_rest_and_the_next_remove_deletes_it() {
    let p = "rm-records";
    let r = project(p);
    for s in ["a", "b"] {
        r.write(
            &format!("services/{s}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .write(&format!("services/{s}/t.yaml"), QUEUE);
    }
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");

    let refusing = refusing_ssm("DeleteParameter", "/records/b");
    let (code, out, err) = run(
        xtask(&r, &["remove", "dev"]).env("AWS_ENDPOINT_URL", refusing.endpoint()),
        None,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    for s in ["a", "b"] {
        assert!(out.contains(&format!("deleted {p}-{s}-dev ({s})")), "{out}");
    }
    assert!(
        out.contains("2 stack(s) deleted from stage `dev`, each confirmed gone"),
        "{out}"
    );
    assert!(
        err.contains("error: failed to delete the record of `b`")
            && err.contains("not allowed here"),
        "{err}"
    );
    assert!(
        err.contains(
            "1 record(s) of deleted stacks of stage `dev` were left; fix what is named above"
        ),
        "{err}"
    );
    assert!(!err.contains("were not deleted"), "no stack is left: {err}");
    assert_eq!(records(p, "dev").into_keys().collect::<Vec<_>>(), ["b"]);

    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(records(p, "dev").is_empty());
}

#[test]
fn a_stack_deployed_under_another_name_is_removed_by_the_name_its_record_holds() {
    let p = "rm-renamed";
    let r = project(p);
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/a/t.yaml", QUEUE);
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");

    // The pattern changes after the deploy: this checkout would name the stack otherwise.
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{p}\"\nstack-name = \"{{service}}-{{stage}}-{{project}}\"\n\n[stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n"
        ),
    );
    r.commit("another stack-name pattern");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("deleted {p}-a-dev (a)")), "{out}");
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    for name in [format!("{p}-a-dev"), format!("a-dev-{p}")] {
        let info = rt().block_on(engine.describe(&name)).unwrap();
        assert!(info.is_none(), "{name}: {info:?}");
    }
    assert!(records(p, "dev").is_empty());
}

/// Two previews whose stack names meet (`a` of `x-feat` and `a-x` of `feat`: both
/// `<project>-a-x-feat`): `x-feat`'s deploy of `a` is refused, as it must be, but its `remove`
/// then refused the whole stage (that stack is `feat`'s), every time, so `x-feat`'s own stacks
/// stayed for good, and `previews prune` said "run again". A stack this stage never deployed
/// (no record names it, none is tagged for it) is left alone now, and said so.
#[test]
fn a_preview_removes_its_own_stacks_beside_another_s_stack_of_one_of_its_names() {
    let p = "rm-meet";
    // Announced, so that the stage keeps each service's health.
    let (hook, _) = crate::notify::receiver();
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{p}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n[notifications]\nwebhooks = [\"{hook}/hook\"]\nstages = [\"*\"]\n"
        ),
    );
    for s in ["a", "a-x"] {
        r.write(
            &format!("services/{s}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .write(&format!("services/{s}/t.yaml"), QUEUE);
    }
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "feat"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "x-feat"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains(&format!("refusing to touch stack {p}-a-x-feat: its Ferry tags say it belongs to service `a-x` of stage `feat`")),
        "{out}\n{err}"
    );
    let health = format!("/ferry/{p}/x-feat/health/a");
    let ssm = aws_sdk_ssm::Client::new(&config());
    let kept = |name: &str| rt().block_on(ssm.get_parameter().name(name).send()).is_ok();
    assert!(kept(&health), "the refused service's health is kept");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "x-feat"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    // Its health goes with the stage (before, it stayed, and no prune would find it).
    assert!(!kept(&health));
    assert!(
        out.contains(&format!("deleted {p}-a-x-x-feat (a-x)")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "left {p}-a-x-feat alone (a): stage `x-feat` never deployed a"
        )),
        "{out}"
    );
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    assert!(
        rt().block_on(engine.describe(&format!("{p}-a-x-x-feat")))
            .unwrap()
            .is_none()
    );
    assert!(
        rt().block_on(engine.describe(&format!("{p}-a-x-feat")))
            .unwrap()
            .is_some(),
        "feat's stack stays"
    );
    assert!(records(p, "x-feat").is_empty());
    assert_eq!(records(p, "feat").len(), 2);
}

/// `--orphans` deletes the stacks of records whose service the checkout no longer has (here a
/// service renamed in its service.toml), and refuses, before anything is deleted, a record
/// whose stack is a current service's (as a renamed Serverless service's is).
#[test]
fn orphans_are_the_records_no_service_has_and_never_a_stack_in_use() {
    let p = "rm-orphans";
    let r = project(p);
    for s in ["a", "b"] {
        r.write(
            &format!("services/{s}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .write(&format!("services/{s}/t.yaml"), QUEUE);
    }
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let store = ferry_records::RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "dev",
        &format!("/ferry/{p}/dev"),
    );
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    let exists = |stack: &str| rt().block_on(engine.describe(stack)).unwrap().is_some();

    // A record of a name no service has, naming a's stack: in use, so nothing is deleted.
    let mut ghost = records(p, "dev")["a"].clone();
    ghost.service = "ghost".into();
    rt().block_on(store.write(&ghost)).unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("`ghost` is no service of the checkout")
            && err.contains(&format!("{p}-a-dev, is the stack of service `a`")),
        "{err}"
    );
    assert!(exists(&format!("{p}-a-dev")) && exists(&format!("{p}-b-dev")));
    rt().block_on(store.delete("ghost")).unwrap();

    // A service added since the checkout's commit (another branch's, a later one's) is no
    // orphan: the older checkout lacks it. Before, its stack was deleted.
    r.write(
        "services/c/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/c/t.yaml", QUEUE);
    let with_c = r.commit("c");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    ferry_test_support::git(r.path(), &["checkout", "-q", "HEAD~1"]);
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "nothing was deleted: this checkout cannot tell that 1 service is no service any more: it was deployed by a commit that HEAD does not descend from, whose checkout may still have it:\n  c (record of commit {}: newer than HEAD)",
            &with_c.to_string()[..12]
        )),
        "{err}"
    );
    assert!(exists(&format!("{p}-c-dev")));
    // Told that it is gone all the same: removed.
    let (code, out, err) = run(
        &mut xtask(&r, &["remove", "dev", "--orphans", "--any-commit"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("deleted {p}-c-dev (c)")), "{out}");
    ferry_test_support::git(r.path(), &["checkout", "-q", "-"]);
    std::fs::remove_dir_all(r.path().join("services/c")).unwrap();
    r.commit("c goes");

    // b's folder gone from the working tree only (a sparse checkout, a delete or move not
    // committed): HEAD still has b, so it is no orphan. Before, its stack was deleted.
    let b_folder = r.path().join("services/b");
    std::fs::rename(&b_folder, r.path().join("b-moved")).unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("nothing was deleted: `b` is no service of the working tree, but HEAD's commit still has it"),
        "{err}"
    );
    assert!(exists(&format!("{p}-b-dev")));
    std::fs::rename(r.path().join("b-moved"), &b_folder).unwrap();

    // b renamed: its record and stack are the orphans; a is untouched.
    r.write(
        "services/b/service.toml",
        "[service]\nname = \"bee\"\ntemplate = \"t.yaml\"\n",
    );
    let renamed = r.commit("rename b");
    // b's record as a promote or rollback of an older package writes it: the package's commit
    // (here one this repository lacks) and the checkout's that deployed it, which HEAD
    // descends from. It is judged by the checkout's (before, refused for the package's).
    let mut promoted = records(p, "dev")["b"].clone();
    promoted.commit = "0".repeat(40);
    promoted.named_at = Some(renamed.to_string());
    rt().block_on(store.write(&promoted)).unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("deleted {p}-b-dev (b)")), "{out}");
    assert!(!exists(&format!("{p}-b-dev")) && exists(&format!("{p}-a-dev")));
    assert_eq!(records(p, "dev").into_keys().collect::<Vec<_>>(), ["a"]);
}

/// A service renamed: its record and stack are orphans, but a dependent that has not deployed
/// since still runs with the old stack's outputs, and a Serverless `${cf:…}` may read it: while
/// either holds, `--orphans` deletes nothing (before, the dependent's queue went from under it).
#[test]
fn an_orphan_a_dependent_or_a_cf_read_still_uses_is_kept() {
    let p = "rm-orph-used";
    let r = queue_and_reader(p);
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    let exists = |stack: &str| rt().block_on(engine.describe(stack)).unwrap().is_some();
    let old = format!("{p}-a-dev");

    // a renamed aa, and b reads aa: not deployed yet, b still runs on a's queue.
    r.write(
        "services/a/service.toml",
        "[service]\nname = \"aa\"\ntemplate = \"t.yaml\"\n",
    )
    .write(
        "services/b/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${output:aa.QueueArn}\"\n",
    );
    r.commit("a is aa");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "nothing was deleted: the stack of a service the checkout no longer has is still used:\n  {old} (a's): b was deployed with its outputs and has not deployed since"
        )),
        "{err}"
    );
    assert!(exists(&old));

    // Deployed: b runs on aa's queue. A Serverless configuration reading a's stack keeps it.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    r.write(
        "services/fn/service.toml",
        "[service]\nkind = \"serverless\"\n",
    )
    .write(
        "services/fn/serverless.yml",
        &format!("service: fn\nprovider:\n  name: aws\n  environment:\n    Q: ${{cf:{p}-a-${{sls:stage}}.QueueArn}}\nfunctions:\n  h:\n    handler: h.h\n"),
    );
    r.commit("a reader of a's stack");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("{old} (a's): fn reads its outputs (${{cf:…}})")),
        "{err}"
    );
    assert!(exists(&old));
    std::fs::remove_dir_all(r.path().join("services/fn")).unwrap();
    r.commit("no reader");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("deleted {old} (a)")), "{out}");
    assert!(!exists(&old) && exists(&format!("{p}-aa-dev")));
}

/// A Serverless configuration reading, by `${cf:…}`, the stack a service moves away from would
/// go on reading the old stack's outputs after the move: the plan says so (before, nothing did
/// until `remove --orphans` refused to delete the old stack).
#[test]
fn a_plan_names_a_cf_read_of_the_stack_a_service_moves_away_from() {
    let p = "rm-move-read";
    let r = project(p);
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/a/t.yaml", QUEUE);
    r.commit("a");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\nstack-name = \"{project}-queue-{stage}\"\n",
    )
    .write(
        "services/fn/service.toml",
        "[service]\nkind = \"serverless\"\n",
    )
    .write(
        "services/fn/serverless.yml",
        &format!("service: fn\nprovider:\n  name: aws\n  environment:\n    Q: ${{cf:{p}-a-${{sls:stage}}.QueueArn}}\nfunctions:\n  h:\n    handler: h.h\n"),
    );
    r.commit("a moves; fn reads its old stack");
    let (code, out, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("fn reads {p}-a-dev by `${{cf:…}}`, the stack `a` moves away from (to {p}-queue-dev): point it at the new name, or it will go on reading the old stack's outputs")),
        "{out}"
    );
}

/// A service's stack name changed after it deployed (its `stack-name`): every command of the
/// stage refused, saying to put the old name back. It is a move now, known by the record's own
/// commit, whose configuration gave the service the stack its record names: the service deploys
/// to the new stack (its dependents take its new outputs), the old one stays until `remove
/// --orphans` deletes it, and a whole `remove` takes every stack the stage's services had.
#[test]
fn a_stack_moved_deploys_anew_and_remove_takes_the_old_one_too() {
    let p = "rm-moved";
    let r = queue_and_reader(p);
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    let exists = |stack: &str| rt().block_on(engine.describe(stack)).unwrap().is_some();
    let (old, new, newer) = (
        format!("{p}-a-dev"),
        format!("{p}-queue-dev"),
        format!("{p}-queue2-dev"),
    );

    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\nstack-name = \"{project}-queue-{stage}\"\n",
    );
    r.commit("a's stack takes another name");
    let (code, out, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let moved = format!("stack renamed: {old} → {new}");
    assert_eq!(out.matches(&moved).count(), 1, "{out}");
    assert!(
        out.contains("a deploy creates the new stacks, which start empty, and leaves the old ones in place, still tagged for their services; once the new ones run and hold what the old ones held, `remove dev --orphans` deletes the old ones"),
        "{out}"
    );
    // Until it deploys, a's outputs are those of the stack that runs, its record's (before:
    // its new stack's, which is not there, said to be deleted outside Ferry, exit 1).
    let (code, out, err) = run(
        &mut xtask(&r, &["outputs", "dev", "--service", "a", "--format", "env"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("{p}-a-dev")), "{out}");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let row = |out: &str, s: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{s} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row(&out, "a").contains("created"), "{out}");
    assert!(row(&out, "b").contains("updated"), "{out}");
    assert!(exists(&old) && exists(&new));
    assert_eq!(records(p, "dev")["a"].stack, new);
    // The next plan has nothing to do.
    let (code, out, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0 to deploy"), "{out}");

    // A checkout from before the move (another line of history than the record's) would move
    // the stack back, and the next deploy of the newer line forth again: refused.
    ferry_test_support::git(r.path(), &["checkout", "-q", "HEAD~1"]);
    let (code, out, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("and HEAD does not descend from it (another branch's deploy, or a newer one): deploying from here would move the service's stack back"),
        "{err}"
    );
    ferry_test_support::git(r.path(), &["checkout", "-q", "-"]);

    // b has not taken a's new outputs (its deploy since failed): a's old stack is in use.
    let store = ferry_records::RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "dev",
        &format!("/ferry/{p}/dev"),
    );
    let b = records(p, "dev")["b"].clone();
    let stale = ferry_records::Record {
        received: Some([("a".to_string(), "before".to_string())].into()),
        ..b.clone()
    };
    rt().block_on(store.write(&stale)).unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("{old}, a's old stack: b may still use its outputs (not known to have deployed since a moved)")),
        "{err}"
    );
    assert!(exists(&old));
    // Nor when b's record does not say what it received (a Ferry that did not keep it).
    let unknown = ferry_records::Record {
        received: None,
        ..b.clone()
    };
    rt().block_on(store.write(&unknown)).unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("{old}, a's old stack: b may")),
        "{err}"
    );
    assert!(exists(&old));

    // b's record lost: its stack is no orphan (before, every tagged stack no record named
    // went), and it may still use a's old stack, which stays too.
    rt().block_on(store.delete("b")).unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("{old}, a's old stack: b may")),
        "{err}"
    );
    assert!(exists(&old) && exists(&format!("{p}-b-dev")));
    rt().block_on(store.write(&b)).unwrap();
    // Only the stack a moved away from is an orphan.
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("deleted {old} (a)")), "{out}");
    assert!(!out.contains(&format!("deleted {p}-b-dev")), "{out}");
    assert!(!exists(&old) && exists(&new) && exists(&format!("{p}-b-dev")));
    assert_eq!(
        records(p, "dev").into_keys().collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(records(p, "dev")["a"].stack, new);

    // Moved again, and the stage removed whole: every stack goes, the one moved away from too.
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\nstack-name = \"{project}-queue2-{stage}\"\n",
    );
    r.commit("again");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(exists(&new) && exists(&newer));
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    for stack in [&new, &newer, &format!("{p}-b-dev")] {
        assert!(out.contains(&format!("deleted {stack}")), "{out}");
        assert!(!exists(stack), "{stack}");
    }
    assert!(records(p, "dev").is_empty());
}

/// A stack name tried from uncommitted changes, deployed, then dropped: the record names a
/// stack no commit's configuration gives the service, and every command of the stage was
/// refused as if the record were another project's. It is Ferry's own record of a deploy from
/// uncommitted changes on a commit HEAD holds: the service moves back, and the tried stack is
/// an orphan, unless a Serverless configuration reads it.
#[test]
fn a_stack_name_tried_uncommitted_and_dropped_moves_back() {
    let p = "rm-tried";
    let r = project(p);
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/a/t.yaml", QUEUE)
    .write(
        "services/c/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/c/t.yaml", QUEUE);
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\nstack-name = \"{project}-tried-{stage}\"\n",
    );
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let (tried, own) = (format!("{p}-tried-dev"), format!("{p}-a-dev"));
    assert_eq!(records(p, "dev")["a"].stack, tried);
    ferry_test_support::git(r.path(), &["checkout", "--", "services/a/service.toml"]);
    let (code, out, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "stack-found: {own} exists and is tagged for this service, whose record names {tried}, the stack it moved to: a deploy moves it back here and updates it"
        )),
        "{out}"
    );
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(records(p, "dev")["a"].stack, own);
    // A Serverless configuration reading the tried stack keeps it.
    r.write(
        "services/fn/service.toml",
        "[service]\nkind = \"serverless\"\n",
    )
    .write(
        "services/fn/serverless.yml",
        &format!("service: fn\nprovider:\n  name: aws\n  environment:\n    Q: ${{cf:{p}-tried-${{sls:stage}}.QueueArn}}\nfunctions:\n  h:\n    handler: h.h\n"),
    );
    r.commit("a reader of the tried stack");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "{tried}, a's old stack: fn reads its outputs (${{cf:…}})"
        )),
        "{err}"
    );
    std::fs::remove_dir_all(r.path().join("services/fn")).unwrap();
    r.commit("no reader");
    // c's record lost: its live stack, the one the checkout gives it, is no orphan (before,
    // every tagged stack no record named went: with a changed records-path, the whole stage).
    let store = ferry_records::RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "dev",
        &format!("/ferry/{p}/dev"),
    );
    rt().block_on(store.delete("c")).unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev", "--orphans"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("deleted {tried} (a)")), "{out}");
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    for live in [&own, &format!("{p}-c-dev")] {
        assert!(
            rt().block_on(engine.describe(live)).unwrap().is_some(),
            "{live}"
        );
    }
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
}

/// A preview's move deployed, then its commit force-pushed away: the record's commit is gone
/// from every clone, and every command of the stage was refused. The stack the record names is
/// this service's of this stage by its tags (Ferry deployed it so): a move.
#[test]
fn a_move_whose_commit_was_force_pushed_away_is_judged_by_its_tags() {
    let p = "rm-pushed";
    let r = project(p);
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/a/t.yaml", QUEUE);
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\nstack-name = \"{project}-moved-{stage}\"\n",
    );
    r.commit("a move");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(records(p, "dev")["a"].stack, format!("{p}-moved-dev"));
    // The move's commit dropped, and gone from the repository.
    let git = |args: &[&str]| ferry_test_support::git(r.path(), args);
    git(&["reset", "-q", "--hard", "HEAD~1"]);
    git(&["reflog", "expire", "--expire=now", "--all"]);
    git(&["gc", "-q", "--prune=now"]);
    let (code, out, err) = run(&mut xtask(&r, &["plan", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("stack-found: {p}-a-dev exists and is tagged for this service, whose record names {p}-moved-dev")), "{out}");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(records(p, "dev")["a"].stack, format!("{p}-a-dev"));
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
}

/// A service importing another's export without depending on it (validate warns) is removed
/// before the exporter: CloudFormation refuses to delete an export in use.
#[test]
fn an_importer_is_removed_before_the_exporter_it_does_not_depend_on() {
    let p = "rm-imports";
    let r = project(p);
    let exporter = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  Arn:\n    Value: !GetAtt Q.Arn\n    Export:\n      Name: !Sub ${AWS::StackName}-Arn\n";
    let importer = format!(
        "Resources:\n  T:\n    Type: AWS::SNS::Topic\n    Properties:\n      DisplayName: !ImportValue {p}-b-dev-Arn\n"
    );
    // With no edge between them, the reverse of the graph's order (by name) would remove `b`
    // first; `a` imports what `b` exports.
    r.write(
        "services/b/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/b/t.yaml", exporter)
    .write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ndepends-on = [\"b\"]\n",
    )
    .write("services/a/t.yaml", &importer);
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    // The link is dropped from the configuration; the import stays.
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    r.commit("no depends-on");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let at = |s: &str| {
        out.find(&format!("deleted {p}-{s}-dev ({s})"))
            .unwrap_or_else(|| panic!("{s}: {out}"))
    };
    assert!(at("a") < at("b"), "{out}");
}

/// A stage named only on another branch (`uat`, protected there) is no preview to a checkout
/// that does not name it: its records say it is named. And a stack with termination protection
/// is removed only with `--allow-protected`, whatever the checkout says of its stage: with
/// records written before they said so, it looks like a preview to `previews prune` and to
/// `remove`.
#[test]
fn a_protected_stack_is_never_removed_without_allow_protected() {
    let p = "rm-protected";
    let r = project(p);
    let with_uat = format!(
        "[project]\nname = \"{p}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n[stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n[stages.uat]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nprotected = true\n\n[stages.\"*\"]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n"
    );
    r.write("ferry.toml", &with_uat)
        .write(
            "services/a/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .write("services/a/t.yaml", QUEUE);
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "uat"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let engine = ferry_stacks::Engine::for_config(&config(), Default::default());
    let stack = format!("{p}-a-uat");
    let info = rt().block_on(engine.describe(&stack)).unwrap().unwrap();
    assert!(info.protected, "{info:?}");

    // A checkout that does not name uat: a preview stage to it.
    r.write(
        "ferry.toml",
        &with_uat.replace("[stages.uat]", "[stages.gone]"),
    );
    r.commit("no uat here");
    let (code, out, err) = run(&mut xtask(&r, &["previews", "list"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("uat"), "{out}");
    let (code, out, err) = run(&mut xtask(&r, &["remove", "uat"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(
            "says stage `uat` is a named stage, which this checkout's ferry.toml does not name"
        ),
        "{err}"
    );
    // Its record as one written before records said so.
    let store = ferry_records::RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "uat",
        &format!("/ferry/{p}/uat"),
    );
    let mut old = records(p, "uat")["a"].clone();
    assert!(old.named_stage);
    old.named_stage = false;
    rt().block_on(store.write(&old)).unwrap();
    assert!(!records(p, "uat")["a"].named_stage);
    // And its stack's tags as those written before they said so.
    assert_eq!(info.tags[ferry_stacks::ownership::TAG_NAMED_STAGE], "true");
    let cfn = aws_sdk_cloudformation::Client::new(&config());
    let tags: Vec<aws_sdk_cloudformation::types::Tag> = info
        .tags
        .iter()
        .filter(|(k, _)| *k != ferry_stacks::ownership::TAG_NAMED_STAGE)
        .map(|(k, v)| {
            aws_sdk_cloudformation::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
        })
        .collect();
    rt().block_on(
        cfn.update_stack()
            .stack_name(&stack)
            .use_previous_template(true)
            .set_tags(Some(tags))
            .send(),
    )
    .unwrap();
    let untagged = rt().block_on(engine.describe(&stack)).unwrap().unwrap();
    assert!(
        !untagged
            .tags
            .contains_key(ferry_stacks::ownership::TAG_NAMED_STAGE),
        "{untagged:?}"
    );
    let (code, out, err) = run(&mut xtask(&r, &["previews", "list"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("uat"), "{out}");
    let refs = r.path().join("live-refs");
    std::fs::write(&refs, "refs/heads/main\n").unwrap();
    let (code, out, err) = run(
        &mut xtask(
            &r,
            &["previews", "prune", "--live-refs", refs.to_str().unwrap()],
        ),
        None,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "stack {stack} has termination protection on (deployed as a protected stage's, or protected by hand): only `remove` with --allow-protected removes it"
        )),
        "{err}"
    );
    let (code, out, err) = run(&mut xtask(&r, &["remove", "uat"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("nothing was deleted") && err.contains("--allow-protected"),
        "{err}"
    );
    assert!(rt().block_on(engine.describe(&stack)).unwrap().is_some());
    assert!(records(p, "uat").contains_key("a"), "the record stays too");
    // (The emulator does not implement UpdateTerminationProtection, so the removal that
    // --allow-protected allows cannot be shown here.)
}

/// A stack that cannot be read when `remove` checks whose it is (the emulator answering
/// HTTP 500) stops the remove before anything is deleted, and says so: nothing was deleted.
#[test]
fn a_stack_that_cannot_be_checked_stops_the_remove_before_anything_is_deleted() {
    use ferry_test_support::moto;
    use ferry_test_support::proxy::{Proxy, Request, Rule};
    let p = "rm-unread";
    let r = project(p);
    for s in ["a", "b"] {
        r.write(
            &format!("services/{s}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .write(&format!("services/{s}/t.yaml"), QUEUE);
    }
    r.commit("services");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let upstream = format!("127.0.0.1:{}", moto().port);
    let broken = Proxy::start(&upstream, |req: &Request| {
        let body = String::from_utf8_lossy(&req.body);
        if req.action() == "DescribeStacks" && body.contains("rm-unread-b-dev") {
            Rule::Respond {
                status: 500,
                content_type: "text/xml".into(),
                body: "<ErrorResponse><Error><Code>InternalFailure</Code><Message>boom</Message></Error></ErrorResponse>".into(),
            }
        } else {
            Rule::Forward
        }
    });
    let mut c = xtask(&r, &["remove", "dev", "--timeout", "30"]);
    c.env("AWS_ENDPOINT_URL", broken.endpoint());
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("nothing was deleted: stack rm-unread-b-dev of `b` could not be read to check whose it is"),
        "{err}"
    );
    assert!(!err.contains("the stacks after it"), "{err}");
    // Both stacks and records are still there: a remove without the fault deletes them.
    assert_eq!(records(p, "dev").len(), 2);
    let (code, out, err) = run(&mut xtask(&r, &["remove", "dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(records(p, "dev").is_empty());
}
