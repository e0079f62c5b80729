//! What `on-test-failure = "rollback"` rolls back: the failed services and their dependents, as
//! far as the failed run deployed them. No AWS call.

use std::collections::{BTreeMap, BTreeSet};

use ferry_deploy::release::to_roll_back;
use ferry_records::Record;
use ferry_test_support::TestRepo;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_failed_services_and_the_dependents_the_run_deployed_roll_back() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.prod]\nregion = \"us-east-1\"\n",
    );
    // web depends on api, api on db; other stands alone.
    for (name, deps) in [
        ("db", ""),
        ("api", "depends-on = [\"db\"]\n"),
        ("web", "depends-on = [\"api\"]\n"),
        ("other", ""),
    ] {
        r.write(
            &format!("services/{name}/service.toml"),
            &format!("[service]\ntemplate = \"t.yaml\"\n{deps}"),
        )
        .write(
            &format!("services/{name}/t.yaml"),
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        );
    }
    r.commit("services");
    let ws = ferry_manifest::load(r.path()).unwrap();
    // The failed run (release r2) deployed db, api and other; web still runs release r1's.
    let current: BTreeMap<String, Record> =
        [("db", "r2"), ("api", "r2"), ("web", "r1"), ("other", "r2")]
            .into_iter()
            .map(|(s, release)| {
                (
                    s.to_string(),
                    Record {
                        service: s.into(),
                        release: Some(release.into()),
                        ..Record::default()
                    },
                )
            })
            .collect();
    let none = BTreeMap::new();
    assert_eq!(
        to_roll_back(&ws, &current, &none, "r2", &set(&["db"]), false),
        set(&["api", "db"]),
        "web, which the run did not deploy, stays"
    );
    assert_eq!(
        to_roll_back(&ws, &current, &none, "r2", &set(&["other"]), false),
        set(&["other"])
    );
    assert_eq!(
        to_roll_back(&ws, &current, &none, "r2", &set(&["web"]), false),
        set(&[]),
        "the run did not deploy it"
    );
    assert_eq!(
        to_roll_back(&ws, &current, &none, "r3", &set(&["db"]), false),
        set(&[]),
        "another run's release"
    );
    // api failed, perhaps for what db gave it: with its dependencies, db goes back too, and
    // what depends on db that the run deployed (api); other, beside them, stays.
    assert_eq!(
        to_roll_back(&ws, &current, &none, "r2", &set(&["api"]), false),
        set(&["api"])
    );
    assert_eq!(
        to_roll_back(&ws, &current, &none, "r2", &set(&["api"]), true),
        set(&["api", "db"])
    );
    // web (not deployed by the run) failed: its dependencies the run deployed go back.
    assert_eq!(
        to_roll_back(&ws, &current, &none, "r2", &set(&["web"]), true),
        set(&["api", "db"])
    );
    // web runs what release r1 deployed, whose tests never finished there (that run was
    // killed or cancelled during them): the run that tested it owed it those tests, and what
    // failed them goes back. Had they passed before, it would stay.
    let with_tests = |passed: Option<bool>| -> BTreeMap<String, Record> {
        let mut before = current.clone();
        let web = before.get_mut("web").unwrap();
        web.acceptance = passed.map(|passed| ferry_records::Acceptance { passed, at: 1 });
        before
    };
    for unproven in [None, Some(false)] {
        assert_eq!(
            to_roll_back(
                &ws,
                &current,
                &with_tests(unproven),
                "r2",
                &set(&["web"]),
                false
            ),
            set(&["web"]),
            "tests {unproven:?} before the run"
        );
    }
    assert_eq!(
        to_roll_back(
            &ws,
            &current,
            &with_tests(Some(true)),
            "r2",
            &set(&["web"]),
            false
        ),
        set(&[]),
        "it passed before the run"
    );
    // The records before the run as the callers pass them (web, which has no passed tests,
    // did not fail): nothing more than without them.
    let untested = with_tests(None);
    assert_eq!(
        to_roll_back(&ws, &current, &untested, "r2", &set(&["db"]), false),
        set(&["api", "db"]),
        "web, which did not fail, stays"
    );
    assert_eq!(
        to_roll_back(&ws, &current, &untested, "r2", &set(&["api"]), true),
        set(&["api", "db"])
    );
    // Another package since the run began (a deploy of its own): not what was owed.
    let mut moved = with_tests(None);
    moved.get_mut("web").unwrap().package_fingerprint = Some("older".into());
    assert_eq!(
        to_roll_back(&ws, &current, &moved, "r2", &set(&["web"]), false),
        set(&[])
    );
}
