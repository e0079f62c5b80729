use super::*;
use ferry_records::Acceptance;

fn record(service: &str, template: &str, passed: Option<bool>) -> Record {
    Record {
        service: service.into(),
        stage: Some("prod".into()),
        stack: format!("shop-{service}-prod"),
        commit: "3e18202aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        template_hash: template.into(),
        parameters_hash: "p".into(),
        deployed_at: 10,
        acceptance: passed.map(|passed| Acceptance { passed, at: 11 }),
        stack_id: Some(format!("arn:{service}")),
        ..Default::default()
    }
}

fn release(id: &str, commit: &str, services: &[(&str, &str, Option<bool>)]) -> Release {
    Release {
        format: FORMAT,
        id: id.into(),
        project: "shop".into(),
        stage: "prod".into(),
        kind: ReleaseKind::Deploy,
        commit: commit.into(),
        created_at: 1,
        by: None,
        from: None,
        restores: None,
        gate_override: None,
        deployed: services.iter().map(|(s, _, _)| s.to_string()).collect(),
        untested: ["web".to_string()].into(),
        services: services
            .iter()
            .map(|(s, t, p)| (s.to_string(), record(s, t, *p)))
            .collect(),
        approval: None,
        recovered: None,
    }
}

#[test]
fn ids_sort_by_time_and_name_the_commit() {
    let id = new_id(1_795_312_984_123, "3e18202deadbeef");
    assert_eq!(id, "20261122-020304.123-3e18202");
    assert!(valid_id(&id));
    assert!(new_id(1_795_312_984_124, "0") > id);
    for bad in ["", "../x", "a/b", ".hidden", "x y", &"a".repeat(65)] {
        assert!(!valid_id(bad), "{bad:?} must be refused");
    }
}

#[test]
fn a_release_passes_when_every_tested_service_passed() {
    let r = release("1", "c", &[("api", "t", Some(true)), ("web", "t", None)]);
    assert_eq!(r.tests(), Tests::Passed);
    let r = release("1", "c", &[("api", "t", Some(false)), ("db", "t", None)]);
    assert_eq!(r.tests(), Tests::Failed(vec!["api".into()]));
    let r = release("1", "c", &[("api", "t", Some(true)), ("db", "t", None)]);
    assert_eq!(r.tests(), Tests::NotRun(vec!["db".into()]));
}

#[test]
fn marks_only_the_deploy_it_holds() {
    let mut r = release("1", "c", &[("api", "t", None)]);
    let mut other = record("api", "t", Some(true));
    other.deployed_at = 99;
    assert!(
        !r.mark(&other),
        "a later deploy's outcome is not this release's"
    );
    assert!(r.mark(&record("api", "t", Some(true))));
    assert_eq!(r.tests(), Tests::Passed);
    assert!(!r.mark(&record("api", "t", Some(true))), "nothing new");
}

/// What runs in the stage when release `r` is the last one applied.
fn running(r: &Release) -> BTreeMap<String, Record> {
    r.services.clone()
}

#[test]
fn rollback_goes_to_the_newest_other_release_that_passed() {
    let rs = vec![
        release("3", "ccccccc1", &[("api", "t3", Some(false))]),
        release("1", "aaaaaaa1", &[("api", "t1", Some(true))]),
        release("2", "bbbbbbb1", &[("api", "t2", None)]),
    ];
    let now = running(&rs[0]);
    let target = |to| rollback_target("prod", &rs, to, &now, None);
    assert_eq!(target(None).unwrap().id, "1");
    assert_eq!(target(Some("2")).unwrap().id, "2");
    assert_eq!(
        target(Some("bbbbbbb")).unwrap().id,
        "2",
        "a commit names the newest release made at it"
    );
    let err = target(Some("9")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage `prod` has no release `9` (its newest releases: 3, 2, 1); name one of them, or a commit, with --to"
    );
    // The newest release passed: go back to the one before it that passed.
    let rs = vec![
        release("2", "b", &[("api", "t2", Some(true))]),
        release("1", "a", &[("api", "t1", Some(true))]),
    ];
    let now = running(&rs[0]);
    assert_eq!(
        rollback_target("prod", &rs, None, &now, None).unwrap().id,
        "1"
    );
    let only = vec![release("1", "a", &[("api", "t1", Some(true))])];
    assert!(matches!(
        rollback_target("prod", &only, None, &running(&only[0]), None),
        Err(TargetError::NonePassed { .. })
    ));
    assert!(matches!(
        rollback_target("prod", &[], None, &BTreeMap::new(), None),
        Err(TargetError::NoReleases { .. })
    ));
    let mut foreign = release("0", "a", &[("api", "t1", Some(true))]);
    foreign.stage = "staging".into();
    let rs = vec![release("1", "b", &[]), foreign];
    assert!(matches!(
        rollback_target("prod", &rs, Some("0"), &BTreeMap::new(), None),
        Err(TargetError::OtherStage { .. })
    ));
}

#[test]
fn a_commit_names_the_release_run_at_it_or_deploying_its_packages() {
    // A promote run from a later checkout (ddddddd) deployed api's packages of bbbbbbb.
    let mut promote = release("2", "ddddddd1", &[("api", "t2", Some(true))]);
    promote.deployed = vec!["api".into()];
    promote.services.get_mut("api").unwrap().commit = "bbbbbbb2".into();
    // 3 and 1 deployed nothing: their records carry older commits.
    let mut rs = vec![
        release("3", "eeeeeee1", &[("api", "t3", None)]),
        promote,
        release("1", "aaaaaaa1", &[("api", "t1", Some(true))]),
    ];
    rs[0].deployed.clear();
    rs[2].deployed.clear();
    let now = running(&rs[0]);
    let to = |c| rollback_target("prod", &rs, Some(c), &now, None).map(|r| r.id.clone());
    assert_eq!(to("bbbbbbb").unwrap(), "2", "by its packages' commit");
    assert_eq!(to("ddddddd").unwrap(), "2", "by the commit it ran at");
    // Records of services a release did not deploy (they carry older commits) do not count.
    assert!(matches!(
        rollback_target("prod", &rs, Some("3e18202"), &now, None),
        Err(TargetError::Unknown { .. })
    ));
}

#[test]
fn rollback_judges_what_runs_not_the_newest_release() {
    // A run moved api to t3 and stopped before writing its release: the newest release (2)
    // is no longer what runs, and it passed, so it is the target.
    let rs = vec![
        release("2", "b", &[("api", "t2", Some(true))]),
        release("1", "a", &[("api", "t1", Some(true))]),
    ];
    let mut now = running(&rs[0]);
    now.insert("api".into(), record("api", "t3", None));
    assert_eq!(
        rollback_target("prod", &rs, None, &now, None).unwrap().id,
        "2"
    );
}

#[test]
fn rollback_of_some_services_judges_only_their_tests() {
    // 1: a1 b1 passed. 2: a2 failed. 3: the rollback of a (a1, untested since). 4: b2 passed,
    // a1 still untested. 5: b3 failed. Rolling b back goes to 4 (b2), not to 1 (b1).
    let mut rs = vec![
        release("5", "e", &[("a", "a1", None), ("b", "b3", Some(false))]),
        release("4", "d", &[("a", "a1", None), ("b", "b2", Some(true))]),
        release("3", "c", &[("a", "a1", None), ("b", "b1", Some(true))]),
        release(
            "2",
            "b",
            &[("a", "a2", Some(false)), ("b", "b1", Some(true))],
        ),
        release(
            "1",
            "a",
            &[("a", "a1", Some(true)), ("b", "b1", Some(true))],
        ),
    ];
    // a1 as the rollback 3 deployed it again: another deploy than 1's.
    for r in &mut rs[..3] {
        r.services.get_mut("a").unwrap().deployed_at = 30;
    }
    let now = running(&rs[0]);
    let b: BTreeSet<String> = ["b".to_string()].into();
    assert_eq!(
        rollback_target("prod", &rs, None, &now, Some(&b))
            .unwrap()
            .id,
        "4"
    );
    // The whole stage: 4 and 3 hold an untested a, 2 failed; 1 passed whole.
    assert_eq!(
        rollback_target("prod", &rs, None, &now, None).unwrap().id,
        "1"
    );
    // For a, every release holds what runs (a1) except 2, which failed: nothing to go back to.
    let a: BTreeSet<String> = ["a".to_string()].into();
    assert!(matches!(
        rollback_target("prod", &rs, None, &now, Some(&a)),
        Err(TargetError::NonePassed { .. })
    ));
}

#[test]
fn differing_names_what_another_deploy_changed() {
    let target = release(
        "1",
        "a",
        &[("api", "t1", None), ("db", "d", None), ("web", "w", None)],
    )
    .services;
    let mut current = release("2", "b", &[("api", "t2", None), ("db", "d", None)]).services;
    current.insert("extra".into(), record("extra", "x", None));
    assert_eq!(differing(&target, &current), vec!["api", "web"]);
    // Other parameters alone are not another package: a rollback could not restore them.
    let mut params = current.clone();
    params.get_mut("db").unwrap().parameters_hash = "other".into();
    assert_eq!(differing(&target, &params), vec!["api", "web"]);
    let mut code = current.clone();
    code.get_mut("db")
        .unwrap()
        .artifacts
        .insert("Fn".into(), "shop/db/new.zip".into());
    assert_eq!(differing(&target, &code), vec!["api", "db", "web"]);
}

#[test]
fn the_gate_takes_only_packages_that_passed_in_the_source_stage() {
    let source: BTreeMap<String, Record> = [
        ("api", "t1", Some(true)),
        ("db", "d1", Some(false)),
        ("queue", "q1", None),
        ("web", "w1", None),
        ("notifier", "n-staging", Some(true)),
    ]
    .iter()
    .map(|(s, t, p)| (s.to_string(), record(s, t, *p)))
    .collect();
    let c = |s: &str, fp: Option<&str>| Candidate {
        service: s.into(),
        fingerprint: fp.map(String::from),
    };
    let untested = |s: &str| s == "web";
    let out = check_gate(
        "staging",
        &source,
        &untested,
        &[
            c("api", Some("t1")),
            c("db", Some("d1")),
            c("queue", Some("q1")),
            c("web", Some("w1")),
            c("new", Some("x")),
            c("notifier", None),
        ],
    );
    let refused: Vec<String> = out.refused.iter().map(ToString::to_string).collect();
    assert_eq!(
        refused,
        vec![
            "db: its acceptance tests failed in `staging`",
            "queue: its acceptance tests have not run in `staging` (`test-acceptance staging`)",
            "new: it is not deployed in `staging`",
        ]
    );
    assert_eq!(out.archives.keys().collect::<Vec<_>>(), vec!["notifier"]);
    // Put back by a rollback, which runs no tests: said so, with how to record them (the
    // plain `test-acceptance staging` leaves a service deployed at another commit alone).
    let mut rolled_back = source.clone();
    rolled_back.get_mut("queue").unwrap().release_kind = Some("rollback".into());
    let out = check_gate(
        "staging",
        &rolled_back,
        &untested,
        &[c("queue", Some("q1"))],
    );
    let commit = &rolled_back["queue"].commit[..12];
    assert_eq!(
        out.refused[0].to_string(),
        format!(
            "queue: its acceptance tests have not run in `staging` since a rollback put its package there (built from {commit}): `test-acceptance staging --service queue` records them from a checkout holding what it was built from (`git checkout {commit}`, or a later commit where its inputs are the same)"
        )
    );
    let out = check_gate("staging", &source, &untested, &[c("api", Some("t2"))]);
    assert_eq!(
        out.refused[0].to_string(),
        "api: `staging` has another package of it (template t1 from commit 3e18202aaaaa), not this one (t2)"
    );
}

#[test]
fn the_matrix_says_what_differs_from_the_stage_before() {
    let dev: BTreeMap<String, Record> = [("api", "t2", Some(true)), ("db", "d", None)]
        .iter()
        .map(|(s, t, p)| (s.to_string(), record(s, t, *p)))
        .collect();
    let staging: BTreeMap<String, Record> = [("api", "t1", Some(false)), ("db", "d", None)]
        .iter()
        .map(|(s, t, p)| (s.to_string(), record(s, t, *p)))
        .collect();
    let m = matrix(
        &[
            ("dev".into(), dev),
            ("staging".into(), staging),
            ("prod".into(), BTreeMap::new()),
        ],
        &["api".into(), "db".into(), "web".into()],
        &BTreeMap::new(),
        &|s| s == "db",
    );
    let cell = |svc: usize, stage: &str| m.services[svc].stages[stage].clone();
    assert_eq!(cell(0, "dev").unwrap().same_as_previous, None);
    assert_eq!(cell(0, "staging").unwrap().same_as_previous, Some(false));
    assert_eq!(cell(0, "staging").unwrap().tests, "failed");
    assert_eq!(cell(1, "staging").unwrap().same_as_previous, Some(true));
    assert_eq!(cell(1, "staging").unwrap().tests, "none");
    assert_eq!(cell(0, "prod"), None);
    assert_eq!(m.services[2].service, "web");
    assert!(m.services[2].stages.values().all(Option::is_none));
}

#[test]
fn the_matrix_compares_a_stage_with_the_one_it_promotes_from() {
    // dev, a sandbox beside the chain, staging (promote-from dev), gated (promote-from
    // staging, nothing deployed yet) and prod (promote-from staging), in promotion order.
    let stage = |t: &str| -> BTreeMap<String, Record> {
        BTreeMap::from([("api".to_string(), record("api", t, Some(true)))])
    };
    let m = matrix(
        &[
            ("dev".into(), stage("t2")),
            ("sandbox".into(), stage("t9")),
            ("staging".into(), stage("t2")),
            ("gated".into(), BTreeMap::new()),
            ("prod".into(), stage("t1")),
        ],
        &["api".into()],
        &BTreeMap::from([
            ("staging".to_string(), "dev".to_string()),
            ("gated".to_string(), "staging".to_string()),
            ("prod".to_string(), "staging".to_string()),
        ]),
        &|_| false,
    );
    let same = |stage: &str| {
        m.services[0].stages[stage]
            .as_ref()
            .unwrap()
            .same_as_previous
    };
    // Not against the sandbox before it, nor the empty gated column: against their source.
    assert_eq!(same("staging"), Some(true));
    assert_eq!(same("prod"), Some(false));
    // A stage outside the chain is compared with the one before it.
    assert_eq!(same("sandbox"), Some(false));
    assert_eq!(same("dev"), None);
}

#[test]
fn a_serverless_service_is_the_same_package_only_with_the_same_archives_and_inputs() {
    let compiled = |stage_template: &str, archive: &str, key: Option<&str>| Record {
        kind: Some("serverless".into()),
        artifacts: [("NotifyLambdaFunction".to_string(), archive.to_string())].into(),
        input_key: key.map(String::from),
        ..record("notifier", stage_template, Some(true))
    };
    // Templates differ by stage; the archives and the inputs decide.
    let staging = compiled("t-staging", "a1", Some("services/notifier:1"));
    assert!(same_package(
        &compiled("t-prod", "a1", Some("services/notifier:1")),
        &staging
    ));
    assert!(!same_package(
        &compiled("t-prod", "a2", Some("services/notifier:1")),
        &staging
    ));
    // Only its configuration changed (a wider role): the archives are equal, the inputs not.
    assert!(!same_package(
        &compiled("t-prod", "a1", Some("services/notifier:2")),
        &staging
    ));
    // A record from before input keys were kept: the archives alone decide.
    assert!(same_package(&compiled("t-prod", "a1", None), &staging));
    // Other kinds: the package's fingerprint and archives.
    let cf = |t: &str| Record {
        artifacts: [("Fn".to_string(), "a1".to_string())].into(),
        ..record("api", t, Some(true))
    };
    assert!(same_package(&cf("t1"), &cf("t1")));
    assert!(!same_package(&cf("t1"), &cf("t2")));
}

#[test]
fn a_reviewed_service_keeps_its_input_key_and_older_reviews_read_without_one() {
    let reviewed = Reviewed {
        kind: Some("serverless".into()),
        package_key: "shop/notifier/abc.package.json".into(),
        fingerprint: "f".into(),
        package: "3e18202".into(),
        commit: "3e18202".into(),
        dirty: false,
        parameters: BTreeMap::new(),
        resolve_when_approved: false,
        compile_when_approved: false,
        archives: BTreeMap::new(),
        expressions: None,
        stack: None,
        input_key: Some("services/notifier:1".into()),
    };
    let text = serde_json::to_string(&reviewed).unwrap();
    assert_eq!(serde_json::from_str::<Reviewed>(&text).unwrap(), reviewed);
    let older = text.replace(",\"input_key\":\"services/notifier:1\"", "");
    assert!(!older.contains("input_key"), "{older}");
    let read: Reviewed = serde_json::from_str(&older).unwrap();
    assert_eq!(read.input_key, None);
}

/// A rollback's release, made at `commit`, restoring `restores` with `services` as they run
/// after it (the rolled back ones untested again).
fn rollback(
    id: &str,
    commit: &str,
    restores: &str,
    services: &[(&str, &str, Option<bool>)],
) -> Release {
    let mut r = release(id, commit, services);
    r.kind = ReleaseKind::Rollback;
    r.restores = Some(restores.into());
    r.deployed = services.iter().map(|(s, _, _)| s.to_string()).collect();
    r
}

#[test]
fn rolling_back_twice_goes_back_twice_never_forward() {
    // 1: v1 passed. 2: v2 passed. 3: a rollback to 1 (v1 again, untested).
    let rs = vec![
        rollback("3", "ccccccc1", "1", &[("api", "v1", None)]),
        release("2", "bbbbbbb1", &[("api", "v2", Some(true))]),
        release("1", "aaaaaaa1", &[("api", "v1", Some(true))]),
    ];
    let now = running(&rs[0]);
    // v1 runs, restored from 1: nothing passed before 1, so there is nowhere further back
    // (before, this went forward to 2, the release just rolled back from).
    let err = rollback_target("prod", &rs, None, &now, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage `prod` has no release from before release `1` (what runs now) whose tests passed and that holds other packages (newest releases: 3, 2, 1); name one with --to <release id | commit>"
    );
    // Going forward again is asked for by name.
    assert_eq!(
        rollback_target("prod", &rs, Some("2"), &now, None)
            .unwrap()
            .id,
        "2"
    );
    // 4: v5 deployed, its tests failed: going back is to what ran before it, v1 of the
    // rollback 3 (its tests are those of 1, whose packages it deployed), not v2.
    let mut rs = rs;
    rs.insert(0, release("4", "ddddddd1", &[("api", "v5", Some(false))]));
    let now = running(&rs[0]);
    assert_eq!(
        rollback_target("prod", &rs, None, &now, None).unwrap().id,
        "3"
    );
}

#[test]
fn a_commit_names_its_packages_before_a_rollback_merely_run_at_it() {
    // 3 was run from a checkout of eeeeeee and restored 1's packages (of aaaaaaa); 2 deployed
    // packages built at eeeeeee.
    let mut built = release("2", "eeeeeee1", &[("api", "v2", Some(true))]);
    built.deployed = vec!["api".into()];
    built.services.get_mut("api").unwrap().commit = "eeeeeee1".into();
    let rs = vec![
        rollback("3", "eeeeeee1", "1", &[("api", "v1", None)]),
        built,
        release("1", "aaaaaaa1", &[("api", "v1", Some(true))]),
    ];
    let now = running(&rs[0]);
    assert_eq!(
        rollback_target("prod", &rs, Some("eeeeeee"), &now, None)
            .unwrap()
            .id,
        "2"
    );
}

/// The target as a caller loading releases newest first finds it, one at a time, and how many
/// it loaded.
fn loading(rs: &[Release], now: &BTreeMap<String, Record>) -> (String, usize) {
    let mut sorted: Vec<&Release> = rs.iter().collect();
    sorted.sort_by(|a, b| b.id.cmp(&a.id));
    for k in 1..=sorted.len() {
        let complete = k == sorted.len();
        if let Some(r) =
            rollback_target_in("prod", &sorted[..k], complete, None, now, None).unwrap()
        {
            return (r.id.clone(), k);
        }
    }
    unreachable!("a complete search decides")
}

#[test]
fn loading_newest_first_finds_what_all_releases_say_and_stops_early() {
    // v1, v2, v3 passed; 4 rolled back to 2 (v2); 5 deployed v4; 6 rolled back to 3 (v3).
    let mut rs = vec![
        release("1", "a", &[("s", "v1", Some(true))]),
        release("2", "b", &[("s", "v2", Some(true))]),
        release("3", "c", &[("s", "v3", Some(true))]),
        rollback("4", "d", "2", &[("s", "v2", None)]),
        release("5", "e", &[("s", "v4", Some(true))]),
        rollback("6", "f", "3", &[("s", "v3", None)]),
    ];
    // v3 runs, restored from 3: back to 2 (v2), which only the whole history shows.
    let now = running(&rs[5]);
    assert_eq!(
        rollback_target("prod", &rs, None, &now, None).unwrap().id,
        "2"
    );
    assert_eq!(loading(&rs, &now), ("2".to_string(), 5));
    // From v4 (release 5): back to what ran before it, the rollback 4 (v2, tests of 2).
    rs.pop();
    let now = running(&rs[4]);
    assert_eq!(loading(&rs, &now).0, "4");
    assert_eq!(
        rollback_target("prod", &rs, None, &now, None).unwrap().id,
        "4"
    );
    // A deploy whose tests failed, its release not written yet: what runs is in no release;
    // the newest one that passed is the target, found at once.
    let mut failed = running(&rs[4]);
    failed.insert("s".into(), record("s", "v5", Some(false)));
    assert_eq!(loading(&rs, &failed), ("5".to_string(), 1));
}

/// A record a rollback wrote (its package deployed again, untested) stays in every later
/// release until a run deploys its service again: those releases have the outcome the restored
/// release holds for the same package with the same parameters, as the rollback's own release
/// has. Before, every later release held it as not run, and a rollback skipped them all.
#[test]
fn later_releases_count_the_tests_of_what_a_rollback_put_back() {
    // The record for b that a rollback `by`, restoring `restores`, wrote.
    // (Deployed by that rollback: its own time.)
    let put_back = |by: &str, restores: &str, template: &str, parameters: &str| Record {
        parameters_hash: parameters.into(),
        release: Some(by.into()),
        release_kind: Some("rollback".into()),
        restores: Some(restores.into()),
        deployed_at: 100 + by.parse::<u64>().unwrap(),
        ..record("b", template, None)
    };
    // `r` with b's record `b`, having deployed `deployed`.
    let made = |mut r: Release, b: Record, deployed: &str| {
        r.services.insert("b".into(), b);
        r.deployed = vec![deployed.to_string()];
        r
    };
    // 1: a1 b1 passed. 2: b2 passed. 3: rolled back to 1 (b1). 4: forward again to 2 (b2, the
    // checkout's), untested, with `parameters`. 5: a2 passed. 6: a3 passed. No run deployed b
    // since 4.
    let history = |parameters: &str| {
        vec![
            made(
                release("1", "a", &[("a", "a1", Some(true))]),
                record("b", "b1", Some(true)),
                "b",
            ),
            made(
                release("2", "b", &[("a", "a1", Some(true))]),
                record("b", "b2", Some(true)),
                "b",
            ),
            made(
                rollback("3", "c", "1", &[("a", "a1", Some(true))]),
                put_back("3", "1", "b1", "p"),
                "b",
            ),
            made(
                rollback("4", "d", "2", &[("a", "a1", Some(true))]),
                put_back("4", "2", "b2", parameters),
                "b",
            ),
            made(
                release("5", "e", &[("a", "a2", Some(true))]),
                put_back("4", "2", "b2", parameters),
                "a",
            ),
            made(
                release("6", "f", &[("a", "a3", Some(true))]),
                put_back("4", "2", "b2", parameters),
                "a",
            ),
        ]
    };
    let rs = history("p");
    let now = running(&rs[5]);
    // Back from a3: to 5 (a2 passed; b2 passed in 2), not past it to the rollback 4 (a1).
    assert_eq!(
        rollback_target("prod", &rs, None, &now, None).unwrap().id,
        "5"
    );
    // Loading newest first: decided once 2, which b's record restored, is loaded.
    assert_eq!(loading(&rs, &now), ("5".to_string(), 5));
    // b put back with other parameters than 2 tested it with: not what passed, in 4, 5 or 6;
    // the newest release before them that passed is the rollback 3 (b1, as 1 tested it).
    let rs = history("q");
    let now = running(&rs[5]);
    assert_eq!(
        rollback_target("prod", &rs, None, &now, None).unwrap().id,
        "3"
    );
    // b's tests run later against what the rollback 4 put back, and fail: `test-acceptance`
    // marks the newest release (6) and the rollback's own (4), not 5. That outcome of this very
    // deploy decides over the older one of its package: not 5, nor 4, but 3 (b1, passed in 1).
    let mut rs = history("p");
    let failed = Some(ferry_records::Acceptance {
        passed: false,
        at: 200,
    });
    for at in [3, 5] {
        rs[at].services.get_mut("b").unwrap().acceptance = failed.clone();
    }
    let now = running(&rs[5]);
    assert_eq!(
        rollback_target("prod", &rs, None, &now, None).unwrap().id,
        "3"
    );
    assert_eq!(loading(&rs, &now).0, "3");
}

/// `status` names the releases the records name that the store lacks, once each, sorted; one
/// that is no release id names no key, and is passed over (as recovery passes it over).
#[test]
fn unwritten_releases_are_those_the_records_name_and_the_store_lacks() {
    let record = |service: &str, release: Option<&str>| ferry_records::Record {
        service: service.into(),
        release: release.map(String::from),
        ..ferry_records::Record::default()
    };
    let records = [
        record("a", Some("20261206-120000.000-bbbbbbb")),
        record("b", Some("20261206-120000.000-bbbbbbb")),
        record("c", Some("20261205-120000.000-aaaaaaa")),
        record("d", Some("../elsewhere")),
        record("e", None),
    ];
    let stored = vec!["20261205-120000.000-aaaaaaa".to_string()];
    let s = StageStatus::new("prod", "prod", None).with_unwritten(&records, &stored);
    assert_eq!(s.unwritten, ["20261206-120000.000-bbbbbbb"]);
}
