//! Plans of a small monorepo in real temporary git repositories.

use std::fs;
use std::path::Path;

use ferry_changes::{BaseUnavailable, Head, Repo};
use ferry_ci::CiContext;
use ferry_plan::{Action, Plan, PlanError, PlanRequest, Reason, StackPlace};
use ferry_test_support::TestRepo;

/// database, events; api (database, events, inputs shared/lib/**); frontend (api); worker (events).
fn monorepo() -> (TestRepo, String) {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\nglobal-inputs = [\"ferry.toml\", \"shared/config/*.json\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.\"*\"]\nregion = \"eu-west-1\"\n",
    );
    let svc = |name: &str, extra: &str| {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n");
        r.write(
            &format!("services/{name}/service.toml"),
            &format!("[service]\ntemplate = \"template.yaml\"\n{extra}"),
        );
        r.write(&format!("services/{name}/src/main.py"), "print(1)\n");
    };
    svc("database", "");
    svc("events", "");
    svc(
        "api",
        "depends-on = [\"database\"]\ninputs = [\"shared/lib/**\"]\n\n[parameters]\nTopic = \"${output:events.TopicArn}\"\n",
    );
    svc("frontend", "depends-on = [\"api\"]\n");
    svc("worker", "depends-on = [\"events\"]\n");
    r.write("shared/lib/util.py", "x = 1\n")
        .write("shared/config/app.json", "{}\n")
        .write("docs/readme.md", "docs\n");
    let base = r.commit("base").to_string();
    (r, base)
}

fn request(stage: &str, since: Option<&str>) -> PlanRequest {
    let mut req = PlanRequest::new(
        stage,
        Head::Rev("HEAD".into()),
        CiContext::from_vars(|_| None),
    );
    req.since = since.map(String::from);
    req
}

fn plan_of(r: &TestRepo, req: &PlanRequest) -> Result<Plan, PlanError> {
    let ws = ferry_manifest::load(r.path()).unwrap();
    let repo = Repo::open(r.path());
    ferry_plan::plan(&ws, repo.as_ref(), req)
}

fn actions(p: &Plan) -> Vec<(String, Action)> {
    p.services
        .iter()
        .map(|s| (s.name.clone(), s.action))
        .collect()
}

fn deploying(p: &Plan) -> Vec<&str> {
    p.to_deploy().map(|s| s.name.as_str()).collect()
}

#[test]
fn a_change_in_one_service_deploys_only_it() {
    let (r, base) = monorepo();
    r.write("services/api/src/main.py", "print(2)\n");
    r.commit("edit api");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p), ["api"]);
    assert_eq!(
        p.service("api").unwrap().reasons,
        vec![Reason::Changed {
            paths: vec!["services/api/src/main.py".into()]
        }]
    );
    assert!(matches!(
        p.service("frontend").unwrap().reasons[..],
        [Reason::Unchanged { .. }]
    ));
    assert_eq!(p.order, ["api"]);
    assert_eq!(
        p.services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["database", "events", "api", "worker", "frontend"]
    );
}

#[test]
fn global_inputs_affect_every_service_and_input_globs_their_owner() {
    let (r, base) = monorepo();
    r.write("shared/config/app.json", "{\"a\": 1}\n");
    r.commit("config");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(p.order.len(), 5);
    assert_eq!(
        p.service("worker").unwrap().reasons,
        vec![Reason::GlobalInput {
            paths: vec!["shared/config/app.json".into()]
        }]
    );
    assert_eq!(
        p.waves,
        vec![
            vec!["database", "events"],
            vec!["api", "worker"],
            vec!["frontend"]
        ]
    );

    let (r, base) = monorepo();
    r.write("shared/lib/util.py", "x = 2\n")
        .write("docs/readme.md", "more docs\n");
    r.commit("lib");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p), ["api"]);
}

#[test]
fn a_rename_across_two_services_affects_both() {
    let (r, base) = monorepo();
    r.rename(
        "services/database/src/main.py",
        "services/worker/src/moved.py",
    );
    r.commit("move");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p), ["database", "worker"]);
}

#[test]
fn manifest_and_template_edits_affect_their_service() {
    let (r, base) = monorepo();
    r.write(
        "services/events/template.yaml",
        "Resources: {}\nOutputs: {}\n",
    );
    r.commit("template");
    assert_eq!(
        deploying(&plan_of(&r, &request("dev", Some(&base))).unwrap()),
        ["events"]
    );
}

#[test]
fn service_selection_brings_dependencies_as_candidates_and_with_dependents_extends() {
    let (r, base) = monorepo();
    r.write("services/events/src/main.py", "print(3)\n");
    r.commit("events");
    let mut req = request("dev", Some(&base));
    req.services = vec!["api".into()];
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(
        actions(&p)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["database", "events", "api"]
    );
    assert_eq!(deploying(&p), ["events"]);

    req.services.clear();
    req.with_dependents = true;
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(p.order, ["events", "api", "worker", "frontend"]);
    assert_eq!(
        p.service("frontend").unwrap().reasons,
        vec![Reason::Dependent {
            of: vec!["events".into()]
        }]
    );
}

// A service planned only as not-received is checked by the deploy, not deployed whatever it
// holds: --with-dependents does not force what depends on it (the deploy checks those after it).
#[test]
fn a_not_received_service_deploys_but_forces_no_dependent() {
    let (r, base) = monorepo();
    let mut req = request("dev", Some(&base));
    req.with_dependents = true;
    req.stacks.insert(
        "api".into(),
        Reason::NotReceived {
            of: vec!["database".into()],
        },
    );
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(p.order, ["api"]);
    assert_eq!(
        p.service("api").unwrap().reasons,
        [Reason::NotReceived {
            of: vec!["database".into()]
        }]
    );
    assert_eq!(p.service("frontend").unwrap().action, Action::Skip);
}

#[test]
fn forced_and_not_deployed() {
    let (r, _) = monorepo();
    let mut req = request("dev", None);
    let p = plan_of(&r, &req).unwrap();
    assert!(
        p.services
            .iter()
            .all(|s| s.reasons == vec![Reason::NotDeployed]),
        "no base: every service is not deployed"
    );
    assert_eq!(p.order.len(), 5);
    req.force = Some("FORCE_DEPLOY_ALL=true".into());
    let p = plan_of(&r, &req).unwrap();
    assert!(p.services.iter().all(|s| s.reasons
        == vec![Reason::Forced {
            by: "FORCE_DEPLOY_ALL=true".into()
        }]));
}

#[test]
fn per_service_bases_share_one_diff_per_base() {
    let (r, base) = monorepo();
    r.write("services/api/src/main.py", "print(2)\n");
    let second = r.commit("api").to_string();
    r.write("services/worker/src/main.py", "print(2)\n");
    r.commit("worker");
    let mut req = request("dev", None);
    for s in ["database", "events", "worker"] {
        req.bases.insert(s.into(), base.clone());
    }
    req.bases.insert("api".into(), second.clone());
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(p.bases.len(), 2);
    assert_eq!(
        deploying(&p),
        ["worker", "frontend"],
        "api is unchanged since its own base; frontend has no record"
    );
    assert_eq!(
        p.service("frontend").unwrap().reasons,
        vec![Reason::NotDeployed]
    );
}

#[test]
fn an_unusable_base_treats_its_services_as_changed_or_fails_when_strict() {
    let (r, _) = monorepo();
    let mut req = request("dev", Some("0123456789abcdef0123456789abcdef01234567"));
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(p.order.len(), 5);
    match &p.service("api").unwrap().reasons[..] {
        [
            Reason::BaseUnavailable {
                cause: BaseUnavailable::NotFound { .. },
                ..
            },
        ] => {}
        other => panic!("{other:?}"),
    }
    // Each key once in the JSON (a duplicate `base` breaks strict readers).
    let json = p.to_json();
    let at = json.find("\"kind\": \"base-unavailable\"").expect(&json);
    let reason = &json[at..at + json[at..].find('}').unwrap()];
    assert_eq!(reason.matches("\"base\":").count(), 1, "{reason}");
    assert!(reason.contains("\"cause\": \"not-found\""), "{reason}");
    // A base naming no commit: what it names is the `object`, so that the reason's `kind`
    // stays `base-unavailable` for a reader that keeps the last of two keys.
    let tree = plan_of(&r, &request("dev", Some("HEAD^{tree}"))).unwrap();
    let json = tree.to_json();
    let at = json.find("\"kind\": \"base-unavailable\"").expect(&json);
    let reason = &json[at..at + json[at..].find("\"message\"").unwrap()];
    assert_eq!(reason.matches("\"kind\":").count(), 1, "{reason}");
    assert!(
        reason.contains("\"cause\": \"not-a-commit\"") && reason.contains("\"object\": \"tree\""),
        "{reason}"
    );
    req.strict = true;
    let err = plan_of(&r, &req).unwrap_err().to_string();
    assert!(err.contains("--strict"), "{err}");

    // No repository at all (a source zip): the cause is named.
    let dir = tempfile::tempdir().unwrap();
    for entry in ["ferry.toml", "services", "shared"] {
        copy(&r.path().join(entry), &dir.path().join(entry));
    }
    let ws = ferry_manifest::load(dir.path()).unwrap();
    let repo = Repo::open(dir.path());
    let p = ferry_plan::plan(&ws, repo.as_ref(), &request("dev", Some("main"))).unwrap();
    let json = p.to_json();
    assert!(json.contains("\"cause\": \"no-repository\""), "{json}");
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        fs::copy(from, to).unwrap();
    }
}

#[test]
fn a_service_made_inside_another_changes_the_outer_one_once() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\nservices = [\"services/**\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    let manifest = "[service]\ntemplate = \"template.yaml\"\n";
    for dir in ["services/api", "services/web"] {
        r.write(&format!("{dir}/service.toml"), manifest)
            .write(&format!("{dir}/template.yaml"), "Resources: {}\n");
    }
    r.write("services/api/src/admin/handler.py", "x = 1\n");
    let base = r.commit("base").to_string();
    // `admin` takes its folder out of api's package: api changed too.
    r.write("services/api/src/admin/service.toml", manifest)
        .write("services/api/src/admin/template.yaml", "Resources: {}\n");
    let second = r.commit("admin").to_string();
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    let mut deploys = deploying(&p);
    deploys.sort();
    assert_eq!(deploys, ["admin", "api"]);
    assert_eq!(
        p.service("api").unwrap().reasons,
        vec![Reason::Changed {
            paths: vec!["services/api/src/admin/service.toml".into()]
        }]
    );
    // An edit of the nested manifest afterwards is admin's alone.
    r.write(
        "services/api/src/admin/service.toml",
        &format!("{manifest}# edited\n"),
    );
    r.commit("edit admin");
    let p = plan_of(&r, &request("dev", Some(&second))).unwrap();
    assert_eq!(deploying(&p), ["admin"]);
}

#[test]
fn a_service_added_and_removed_since_the_base_is_not_reported_removed() {
    let (r, base) = monorepo();
    r.write(
        "services/extra/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n",
    )
    .write("services/extra/template.yaml", "Resources: {}\n");
    r.commit("add extra");
    // Removed again, in the working tree: it never existed at the base.
    r.remove("services/extra");
    let mut req = request("dev", Some(&base));
    req.head = Head::WorkingTree;
    let p = plan_of(&r, &req).unwrap();
    assert!(p.service("extra").is_none(), "{:?}", actions(&p));
    assert!(
        p.notes.iter().all(|n| !n.contains("extra")),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_deleted_service_folder_is_reported_as_removed_not_deployed() {
    let (r, base) = monorepo();
    r.write("services/worker/service.toml", "[service]\nname = \"old-worker\"\ntemplate = \"template.yaml\"\ndepends-on = [\"events\"]\n");
    let base2 = r.commit("rename worker service").to_string();
    let _ = base;
    r.remove("services/worker");
    r.commit("drop worker");
    let p = plan_of(&r, &request("dev", Some(&base2))).unwrap();
    let removed = p.service("old-worker").unwrap();
    assert_eq!(removed.action, Action::Skip);
    assert_eq!(
        removed.reasons,
        vec![Reason::Removed {
            dir: "services/worker".into(),
            renamed_to: None,
            stack_kept: false,
        }]
    );
    assert!(
        p.notes.iter().any(|n| n.contains("old-worker")),
        "{:?}",
        p.notes
    );
    assert!(deploying(&p).is_empty());
}

#[test]
fn a_service_left_out_of_the_project_s_list_is_removed_and_stacks_that_move_are_said() {
    let (r, _) = monorepo();
    // The services listed one by one, as init writes them.
    let listed = |names: &[&str]| {
        let list: Vec<String> = names.iter().map(|n| format!("\"services/{n}\"")).collect();
        format!(
            "[project]\nname = \"shop\"\nservices = [{}]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
            list.join(", ")
        )
    };
    r.write(
        "ferry.toml",
        &listed(&["database", "events", "api", "frontend", "worker"]),
    );
    let base = r.commit("listed").to_string();
    // Only ferry.toml changes: worker is no service any more, its folder stays.
    r.write(
        "ferry.toml",
        &listed(&["database", "events", "api", "frontend"]),
    );
    r.commit("worker unlisted");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(
        p.service("worker").map(|s| s.reasons.clone()),
        Some(vec![Reason::Removed {
            dir: "services/worker".into(),
            renamed_to: None,
            stack_kept: false,
        }])
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("removed service(s) worker")),
        "{:?}",
        p.notes
    );

    // The stack names change: every service moves to a new stack, and the plan says so.
    let base = r.head().to_string();
    r.write(
        "ferry.toml",
        &listed(&["database", "events", "api", "frontend"]).replace(
            "name = \"shop\"\n",
            "name = \"shop\"\nstack-name = \"{project}-{service}-{stage}\"\n",
        ),
    );
    r.commit("stack names with the project");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert!(
        p.notes.iter().any(|n| n.starts_with("stacks moved since ")
            && n.contains("api: api-dev → shop-api-dev")
            && n.contains("leaves the old ones in place")),
        "{:?}",
        p.notes
    );
    assert!(
        p.service("api").unwrap().reasons.iter().any(|r| matches!(
            r,
            Reason::StackMoved { from, to } if from.stack == "api-dev" && to.stack == "shop-api-dev"
        )),
        "{:?}",
        p.service("api")
    );
}

/// A service whose stack is another one now deploys, also when the change that moved it is no
/// input of it (ferry.toml left out of the global inputs), and a stage moved to another region
/// says where its old stacks are.
#[test]
fn a_service_whose_stack_moved_deploys_to_the_new_one() {
    let (r, _) = monorepo();
    let toml = fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    let toml = toml.replace(
        "global-inputs = [\"ferry.toml\", \"shared/config/*.json\"]",
        "global-inputs = []",
    );
    r.write("ferry.toml", &toml);
    let base = r.commit("no global inputs").to_string();
    r.write(
        "ferry.toml",
        &toml.replace(
            "name = \"shop\"\n",
            "name = \"shop\"\nstack-name = \"new-{service}-{stage}\"\n",
        ),
    );
    r.commit("new stack names");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p).len(), 5, "{:?}", p.services);
    let api = p.service("api").unwrap();
    assert_eq!(
        api.reasons,
        [Reason::StackMoved {
            from: StackPlace {
                stack: "api-dev".into(),
                region: "us-east-1".into()
            },
            to: StackPlace {
                stack: "new-api-dev".into(),
                region: "us-east-1".into()
            },
        }]
    );
    assert!(
        ferry_plan::text(&p, false).contains("stack renamed: api-dev → new-api-dev"),
        "{}",
        ferry_plan::text(&p, false)
    );

    let base = r.head().to_string();
    let toml = fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &toml.replacen("region = \"us-east-1\"", "region = \"eu-central-1\"", 1),
    );
    r.commit("dev moves to Frankfurt");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p).len(), 5);
    assert!(
        p.notes.iter().any(|n| n.starts_with("stacks moved since ")
            && n.contains("api: new-api-dev (us-east-1) → new-api-dev (eu-central-1)")),
        "{:?}",
        p.notes
    );
    assert!(
        ferry_plan::text(&p, false)
            .contains("stack moved: new-api-dev (us-east-1) → new-api-dev (eu-central-1)"),
        "{}",
        ferry_plan::text(&p, false)
    );
    // The preview stages keep their region: nothing of theirs moved.
    let p = plan_of(&r, &request("feature-x", Some(&base))).unwrap();
    assert!(deploying(&p).is_empty(), "{:?}", p.services);
}

/// A stage setting a service's parameters read (a variable, the parameters path of a relative
/// SSM name) changed: that service deploys, in that stage only, also with `ferry.toml` none of
/// its inputs. Before, nothing deployed, and the stage ran the old value.
#[test]
fn a_stage_setting_a_service_reads_changed_deploys_it() {
    let r = TestRepo::new();
    let toml = |size: &str, path: &str| {
        format!(
            "[project]\nname = \"shop\"\nglobal-inputs = []\n\n[stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"{path}\"\nvariables = {{ size = \"{size}\" }}\n\n[stages.prod]\nregion = \"us-east-1\"\nparameters-path = \"/shop/prod/\"\nvariables = {{ size = \"1024\" }}\n"
        )
    };
    r.write("ferry.toml", &toml("128", "/shop/dev/"));
    for (name, params) in [
        ("sized", "Mem = \"${var:size}\""),
        ("secret", "Token = \"${ssm:token}\""),
        ("plain", ""),
    ] {
        let key = params.split(' ').next().unwrap_or_default();
        let declared = if key.is_empty() {
            String::new()
        } else {
            format!("Parameters:\n  {key}: {{Type: String}}\n")
        };
        r.write(
            &format!("services/{name}/template.yaml"),
            &format!("{declared}Resources: {{}}\n"),
        )
        .write(
            &format!("services/{name}/service.toml"),
            &format!("[service]\ntemplate = \"template.yaml\"\n\n[parameters]\n{params}\n"),
        );
    }
    let base = r.commit("base").to_string();
    r.write("ferry.toml", &toml("256", "/shop/dev/"));
    r.commit("dev's size");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p), ["sized"]);
    assert_eq!(
        p.service("sized").unwrap().reasons,
        [Reason::StageSettingsChanged {
            keys: vec!["variables.size".into()]
        }]
    );
    assert!(
        ferry_plan::text(&p, false).contains("stage settings it reads changed: variables.size"),
        "{}",
        ferry_plan::text(&p, false)
    );
    // prod's settings did not change.
    assert!(deploying(&plan_of(&r, &request("prod", Some(&base))).unwrap()).is_empty());
    let base = r.head().to_string();
    r.write("ferry.toml", &toml("256", "/shop/dev2/"));
    r.commit("dev's parameters elsewhere");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p), ["secret"]);
}

/// A folder that `ferry.toml`'s service globs reach only since the base (its files as they
/// were) is a new service there: it deploys, `added`, also with `ferry.toml` none of its inputs.
/// Before, it was `unchanged since` the base, and `deploy --since` never created its stack.
#[test]
fn a_service_the_base_did_not_have_deploys_though_its_files_did_not_change() {
    let r = TestRepo::new();
    let toml = |services: &str| {
        format!(
            "[project]\nname = \"shop\"\nservices = [{services}]\nglobal-inputs = []\n\n[stages.dev]\nregion = \"us-east-1\"\n"
        )
    };
    r.write("ferry.toml", &toml("\"services/a\""));
    for name in ["a", "b"] {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n")
            .write(
                &format!("services/{name}/service.toml"),
                "[service]\ntemplate = \"template.yaml\"\n",
            );
    }
    let base = r.commit("only a").to_string();
    r.write("ferry.toml", &toml("\"services/*\""));
    r.commit("every folder");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p), ["b"]);
    assert_eq!(
        p.service("b").unwrap().reasons,
        [Reason::Added {
            since: base[..7].to_string()
        }]
    );
    let text = ferry_plan::text(&p, false);
    assert!(
        text.contains(&format!("added: no service of this name at {}", &base[..7])),
        "{text}"
    );
}

#[test]
fn a_base_from_before_ferry_was_adopted_says_nothing_of_removed_services() {
    let r = TestRepo::new();
    r.write("services/a/template.yaml", "Resources: {}\n");
    let base = r.commit("before ferry").to_string();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(
        "services/a/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n",
    );
    r.commit("adopt ferry");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert!(
        !p.notes.iter().any(|n| n.contains("does not load")),
        "{:?}",
        p.notes
    );
    assert_eq!(deploying(&p), ["a"]);
}

#[test]
fn a_base_whose_configuration_does_not_load_is_said_not_passed_over() {
    let (r, _) = monorepo();
    r.write(
        "services/worker/service.toml",
        "[service]\ndepends-on = [\n",
    );
    let base = r.commit("a broken manifest").to_string();
    r.remove("services/worker");
    r.commit("drop worker");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert!(
        p.notes.iter().any(|n| n.contains(&format!(
            "the configuration at {} does not load (services/worker/service.toml:2: ",
            &base[..7]
        )) && n.contains("`remove dev --orphans`")),
        "{:?}",
        p.notes
    );
}

#[test]
fn planned_from_records_a_removed_name_is_said_only_while_its_record_is_there() {
    let (r, base) = monorepo();
    r.write(
        "services/worker/service.toml",
        "[service]\nname = \"jobs\"\ntemplate = \"template.yaml\"\ndepends-on = [\"events\"]\n",
    );
    r.commit("rename worker to jobs");
    let with_records = |names: &[&str]| {
        let mut req = request("dev", None);
        req.bases = names
            .iter()
            .map(|n| (n.to_string(), base.clone()))
            .collect();
        plan_of(&r, &req).unwrap()
    };
    let p = with_records(&["database", "events", "worker"]);
    assert!(p.service("worker").is_some(), "{:?}", actions(&p));
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("worker (renamed to jobs)")),
        "{:?}",
        p.notes
    );
    // Its record is gone (`remove --orphans` deleted the stack, or a renamed Serverless
    // service's `deploy --adopt` took the stack over): nothing is left to say.
    let p = with_records(&["database", "events"]);
    assert!(p.service("worker").is_none(), "{:?}", actions(&p));
    assert!(
        p.notes.iter().all(|n| !n.contains("worker")),
        "{:?}",
        p.notes
    );
}

/// A removed service whose record's commit is the base of no service planned now (the others
/// were deployed later, or not at all) is still said: its record's commit tells what it was.
#[test]
fn planned_from_records_a_removed_service_is_said_whatever_the_others_bases() {
    let (r, base) = monorepo();
    r.remove("services/worker");
    r.commit("worker goes");
    let later = r.head();
    let mut req = request("dev", None);
    req.bases = [
        ("database".to_string(), later.to_string()),
        ("worker".to_string(), base.clone()),
    ]
    .into();
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(
        p.service("worker").map(|s| s.reasons.clone()),
        Some(vec![Reason::Removed {
            dir: "services/worker".into(),
            renamed_to: None,
            stack_kept: false,
        }]),
        "{:?}",
        actions(&p)
    );
    assert!(
        p.notes.iter().any(|n| n.contains("remove dev --orphans")),
        "{:?}",
        p.notes
    );
    // A record of a commit this clone does not have says nothing here (the deploy's note on
    // records of services that no longer exist does).
    req.bases.insert(
        "worker".into(),
        "0123456789abcdef0123456789abcdef01234567".into(),
    );
    let p = plan_of(&r, &req).unwrap();
    assert!(p.service("worker").is_none(), "{:?}", actions(&p));
}

#[test]
fn a_service_of_another_kind_naming_a_gone_services_stack_is_no_rename() {
    let (r, base) = monorepo();
    // worker (CloudFormation, stack worker-dev) goes; a new Serverless service in another
    // folder names that very stack. It is no rename: worker's stack is not kept for it.
    r.remove("services/worker");
    r.write(
        "services/thief/service.toml",
        "[service]\nkind = \"serverless\"\n",
    )
    .write(
        "services/thief/serverless.yml",
        "service: thief\nprovider:\n  name: aws\n  stackName: worker-${sls:stage}\n",
    );
    r.commit("worker goes, thief names its stack");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(p.service("thief").unwrap().stack_name, "worker-dev");
    let old = p.service("worker").unwrap();
    assert_eq!(
        old.reasons,
        vec![Reason::Removed {
            dir: "services/worker".into(),
            renamed_to: None,
            stack_kept: false,
        }]
    );
    assert!(
        p.notes.iter().all(|n| !n.contains("--adopt")),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_service_renamed_in_its_manifest_leaves_its_old_name_removed() {
    let (r, base) = monorepo();
    r.write(
        "services/worker/service.toml",
        "[service]\nname = \"jobs\"\ntemplate = \"template.yaml\"\ndepends-on = [\"events\"]\n",
    );
    r.commit("rename worker to jobs");
    for head in [Head::Rev("HEAD".into()), Head::WorkingTree] {
        let mut req = request("dev", Some(&base));
        req.head = head;
        let p = plan_of(&r, &req).unwrap();
        assert!(deploying(&p).contains(&"jobs"), "{:?}", actions(&p));
        // A new name, not a new service: its manifest changed, and the old name is removed.
        assert!(
            !p.service("jobs")
                .unwrap()
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::Added { .. })),
            "{:?}",
            p.service("jobs").unwrap().reasons
        );
        let old = p.service("worker").unwrap();
        assert_eq!(old.action, Action::Skip);
        assert_eq!(
            old.reasons,
            vec![Reason::Removed {
                dir: "services/worker".into(),
                renamed_to: Some("jobs".into()),
                stack_kept: false,
            }]
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("worker (renamed to jobs)")
                    && n.contains("remove dev --orphans")),
            "{:?}",
            p.notes
        );
    }
    // A Serverless service renamed keeps its stack (the framework names it): said so, and
    // never offered to `remove --orphans`.
    let (r, base) = monorepo();
    r.write(
        "services/orders/service.toml",
        "[service]\nkind = \"serverless\"\n",
    )
    .write(
        "services/orders/serverless.yml",
        "service: shop-orders\nprovider:\n  name: aws\n",
    );
    let base = {
        let _ = base;
        r.commit("orders").to_string()
    };
    r.write(
        "services/orders/service.toml",
        "[service]\nkind = \"serverless\"\nname = \"purchases\"\n",
    );
    r.commit("rename orders");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    let old = p.service("orders").unwrap();
    assert_eq!(old.stack_name, "shop-orders-dev");
    assert_eq!(
        old.reasons,
        vec![Reason::Removed {
            dir: "services/orders".into(),
            renamed_to: Some("purchases".into()),
            stack_kept: true,
        }]
    );
    let notes = p.notes.join("\n");
    assert!(
        notes.contains("same stack, still tagged for orders")
            && notes.contains("keep `name = \"orders\"` in services/orders/service.toml")
            && !notes.contains("--orphans"),
        "{notes}"
    );
    // Renamed and given another framework name too: the stack moves, the old one is orphaned
    // (named as the base's configuration named it).
    r.write(
        "services/orders/serverless.yml",
        "service: shop-purchases\nprovider:\n  name: aws\n",
    );
    r.commit("and its framework name");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    let old = p.service("orders").unwrap();
    assert_eq!(old.stack_name, "shop-orders-dev");
    assert_eq!(
        old.reasons,
        vec![Reason::Removed {
            dir: "services/orders".into(),
            renamed_to: Some("purchases".into()),
            stack_kept: false,
        }]
    );
    assert!(
        p.notes.join("\n").contains("remove dev --orphans"),
        "{:?}",
        p.notes
    );
    // Names swapped between two folders, or a folder moved with its name kept: every old name
    // is still a service, so nothing is removed.
    let (r, base) = monorepo();
    let text = |rel: &str| std::fs::read_to_string(r.path().join(rel)).unwrap();
    let (events, worker) = (
        text("services/events/service.toml"),
        text("services/worker/service.toml"),
    );
    r.write(
        "services/events/service.toml",
        &events.replace("[service]\n", "[service]\nname = \"worker\"\n"),
    )
    .write(
        "services/worker/service.toml",
        &worker
            .replace("[service]\n", "[service]\nname = \"events\"\n")
            .replace("depends-on = [\"events\"]\n", ""),
    );
    r.commit("swap names");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert!(
        p.services.iter().all(|s| s
            .reasons
            .iter()
            .all(|r| !matches!(r, Reason::Removed { .. }))),
        "{:?}",
        actions(&p)
    );
    // But each name's stack now gets the other folder's template: said, for both.
    let notes = p.notes.join("\n");
    for want in [
        "service name `worker` moved from services/worker to services/events while services/worker goes on as `events`: its stack worker-dev will be deployed from services/events",
        "service name `events` moved from services/events to services/worker while services/events goes on as `worker`",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
    // A folder moved with its name kept is a move, said nothing of.
    let (r, base) = monorepo();
    r.rename("services/worker", "services/jobs");
    r.write(
        "services/jobs/service.toml",
        "[service]\nname = \"worker\"\ntemplate = \"template.yaml\"\ndepends-on = [\"events\"]\n",
    );
    r.commit("move worker");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert!(
        p.notes.iter().all(|n| !n.contains("worker")),
        "{:?}",
        p.notes
    );
    assert!(
        p.service("worker")
            .unwrap()
            .reasons
            .iter()
            .all(|r| !matches!(r, Reason::Removed { .. }))
    );
}

/// `${output:STAGE:…}` is a same-stage read where STAGE deploys: the one graph of all stages
/// orders the service it reads first (in every stage); a service may read its own stack of
/// another stage; a cycle such reads close is refused at load, saying why.
#[test]
fn outputs_read_by_naming_a_stage_order_the_service_read_first() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"net\"\n\n[stages.dev]\nregion = \"us-east-1\"\nvariables = { peer = \"prod\" }\n\n[stages.prod]\nregion = \"us-east-1\"\nvariables = { peer = \"dev\" }\n",
    );
    let svc = |name: &str, params: &str| {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n");
        r.write(
            &format!("services/{name}/service.toml"),
            &format!("[service]\ntemplate = \"template.yaml\"\n\n[parameters]\n{params}"),
        );
    };
    // a reads prod's b; c reads its own stack of the other stage (a VPC peered with itself).
    svc("a", "B = \"${output:prod:b.X}\"\n");
    svc("b", "Y = \"static\"\n");
    svc("c", "Peer = \"${output:${var:peer}:c.VpcId}\"\n");
    r.commit("services");
    let ws = ferry_manifest::load(r.path()).unwrap();
    assert!(ws.service("c").unwrap().dependencies().is_empty());
    let position = |p: &Plan, s: &str| p.order.iter().position(|o| o == s).unwrap();
    for stage in ["prod", "dev"] {
        let p = plan_of(&r, &request(stage, None)).unwrap();
        assert!(
            position(&p, "b") < position(&p, "a"),
            "{stage}: {:?}",
            p.order
        );
    }
    // Its own stack of a stage it deploys to: deploying that stage, the stack being deployed.
    svc("c", "Peer = \"${output:dev:c.VpcId}\"\n");
    let err = ferry_manifest::load(r.path()).unwrap_err().to_string();
    assert!(
        err.contains("parameters.Peer: reads `${output:dev:c.VpcId}`, its own stack's outputs, which deploying stage `dev`"),
        "{err}"
    );
    svc("c", "Peer = \"${output:${var:peer}:c.VpcId}\"\n");
    // b reads dev's a: a cycle across stages, refused with the reason.
    svc("b", "A = \"${output:dev:a.Y}\"\n");
    let err = ferry_manifest::load(r.path()).unwrap_err().to_string();
    assert!(
        err.contains("dependency cycle a -> b -> a")
            && err.contains("orders the service it reads first in every stage"),
        "{err}"
    );
}

#[test]
fn pull_requests_and_preview_stages_are_named_in_the_notes() {
    let (r, base) = monorepo();
    let mut req = request("feature/Login", Some(&base));
    req.ci = CiContext::from_vars(|k| match k {
        "CODEBUILD_BUILD_ID" => Some("shop:1".into()),
        "CODEBUILD_WEBHOOK_TRIGGER" => Some("pr/42".into()),
        _ => None,
    });
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(p.stage_id, "feature-login");
    assert!(p.preview);
    assert_eq!(p.region, "eu-west-1");
    assert_eq!(p.pull_request.as_ref().unwrap().id, "42");
    assert!(
        p.notes[0]
            .contains("deployment is skipped for pull requests (CODEBUILD_WEBHOOK_TRIGGER=pr/42)"),
        "{:?}",
        p.notes
    );
    assert_eq!(p.service("api").unwrap().stack_name, "api-feature-login");

    // The stage [ci] pull-requests gives the build (--from-ci) is one it deploys.
    req.stage = "pr-42".into();
    req.from_ci = true;
    req.force = Some("--all".into());
    let p = plan_of(&r, &req).unwrap();
    assert!(
        p.notes[0].starts_with("this is pull request 42's build (CODEBUILD_WEBHOOK_TRIGGER=pr/42): it deploys only its preview stage `pr-42`"),
        "{:?}",
        p.notes
    );
    assert!(
        !p.notes.iter().any(|n| n.contains("skipped")),
        "{:?}",
        p.notes
    );
    // It deploys: its summary and the CI files it prints say so.
    assert!(!p.plan_only());
    assert!(p.pull_request.as_ref().unwrap().deploys);
    let text = ferry_plan::text(&p, false);
    assert!(!text.contains("nothing will be deployed"), "{text}");
    assert!(
        ferry_plan::codebuild_batch(
            &p,
            ferry_manifest::load(r.path()).unwrap().graph(),
            "cargo xtask"
        )
        .contains("- identifier:"),
        "{}",
        ferry_plan::codebuild_batch(
            &p,
            ferry_manifest::load(r.path()).unwrap().graph(),
            "cargo xtask"
        )
    );
    // Without --from-ci, the same build only plans.
    req.from_ci = false;
    let p = plan_of(&r, &req).unwrap();
    assert!(p.plan_only());
    assert!(ferry_plan::text(&p, false).contains("(pull request: nothing will be deployed)"));
    assert!(
        ferry_plan::codebuild_batch(
            &p,
            ferry_manifest::load(r.path()).unwrap().graph(),
            "cargo xtask"
        )
        .contains("build-graph: []")
    );
}

/// A stage that needs approval refuses a plain deploy: its plan says what to run instead, when
/// something would deploy.
#[test]
fn a_stage_that_needs_approval_says_how_its_changes_deploy() {
    let (r, base) = monorepo();
    let toml = fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &toml.replace(
            "[stages.dev]\nregion = \"us-east-1\"\n",
            "[stages.dev]\nregion = \"us-east-1\"\napproval = true\n",
        ),
    );
    r.write("shared/lib/util.py", "x = 2\n");
    let head = r.commit("ferry.toml and the shared lib").to_string();
    let approval = |p: &Plan| {
        p.notes
            .iter()
            .any(|n| n.contains("needs review and approval"))
    };
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert!(!deploying(&p).is_empty());
    assert!(
        p.notes.contains(&"stage `dev` needs review and approval (approval = true): `deploy dev --review` (or `promote … dev --review`) shows these changes and keeps them for `approve dev <release>`, which deploys them".to_string()),
        "{:?}",
        p.notes
    );
    // Nothing to deploy: nothing to say.
    let p = plan_of(&r, &request("dev", Some(&head))).unwrap();
    assert!(deploying(&p).is_empty(), "{:?}", deploying(&p));
    assert!(!approval(&p), "{:?}", p.notes);
    // Another stage does not need it.
    let p = plan_of(&r, &request("feature-x", Some(&base))).unwrap();
    assert!(!approval(&p), "{:?}", p.notes);
}

#[test]
fn unknown_services_and_stages_are_errors_with_hints() {
    let (r, _) = monorepo();
    let mut req = request("dev", None);
    req.services = vec!["apj".into()];
    let err = plan_of(&r, &req).unwrap_err().to_string();
    assert!(
        err.starts_with("unknown service `apj`; did you mean `api`?"),
        "{err}"
    );
    // `*` makes any name a preview stage; a near miss of a named stage is pointed out.
    let p = plan_of(&r, &request("dve", None)).unwrap();
    assert!(
        p.notes.iter().any(|n| n.ends_with("; did you mean `dev`?")),
        "{:?}",
        p.notes
    );
}

#[test]
fn working_tree_head_sees_uncommitted_and_untracked_edits() {
    let (r, base) = monorepo();
    r.write("services/frontend/src/new.js", "untracked\n");
    let mut req = request("dev", Some(&base));
    req.head = Head::WorkingTree;
    assert_eq!(deploying(&plan_of(&r, &req).unwrap()), ["frontend"]);
}

// `--explain` says of a changed path what the plan did with it: a `.gitattributes` deploys
// every service below its folder, and explain named it as owned by no service.
#[test]
fn explain_names_the_services_a_changed_gitattributes_deploys() {
    let (r, base) = monorepo();
    r.write("services/.gitattributes", "*.py text eol=crlf\n");
    r.commit("attributes");
    let mut req = request("dev", Some(&base));
    req.explain = true;
    let p = plan_of(&r, &req).unwrap();
    let paths = p.bases[0].paths.as_ref().unwrap();
    let attributes = paths
        .iter()
        .find(|o| o.path == "services/.gitattributes")
        .unwrap();
    let mut planned = deploying(&p);
    planned.sort();
    assert_eq!(planned, attributes.services);
    assert_eq!(
        attributes.services,
        ["api", "database", "events", "frontend", "worker"]
    );
}

/// Golden files of every output format; `FERRY_BLESS=1` rewrites them for review.
#[test]
fn output_formats_match_their_golden_files() {
    let (r, base) = monorepo();
    r.write("services/events/src/main.py", "print(9)\n")
        .write("docs/readme.md", "new\n");
    r.commit("events");
    let mut req = request("dev", Some(&base));
    req.explain = true;
    req.with_dependents = true;
    let p = plan_of(&r, &req).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let outputs = [
        ("plan.txt", ferry_plan::text(&p, true)),
        ("plan.json", p.to_json() + "\n"),
        (
            "plan.codebuild-batch.yml",
            ferry_plan::codebuild_batch(
                &p,
                ferry_manifest::load(r.path()).unwrap().graph(),
                "cargo xtask",
            ),
        ),
        (
            "plan.github-matrix.json",
            ferry_plan::github_matrix(&p, ferry_manifest::load(r.path()).unwrap().graph()) + "\n",
        ),
    ];
    let mut diffs = Vec::new();
    for (file, actual) in outputs {
        let path = golden.join(file);
        if std::env::var_os("FERRY_BLESS").is_some() {
            fs::write(&path, &actual).unwrap();
        }
        let expected = fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            diffs.push(format!(
                "{file}:\n--- expected\n{expected}\n--- actual\n{actual}"
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "golden files differ (FERRY_BLESS=1 rewrites them):\n{}",
        diffs.join("\n")
    );
}

/// A preview stage's name is the user's (a branch): one holding a line break (which would
/// break out of the buildspec's comment line into YAML of its own) is refused before anything
/// is planned, as git refuses such a branch name.
#[test]
fn a_stage_name_with_a_line_break_is_no_stage() {
    let (r, base) = monorepo();
    let mut req = request("x\n  evil: true", Some(&base));
    req.force = Some("--all".into());
    let err = plan_of(&r, &req).unwrap_err().to_string();
    assert!(
        err.contains("holds a control or invisible character"),
        "{err}"
    );
}

#[test]
fn the_workspace_of_a_commit_is_its_own_and_the_memo_of_another_is_never_used() {
    let (r, base) = monorepo();
    let repo = Repo::open(r.path()).unwrap();
    let memo = repo.cache_dir().join("workspace-memo.bin");

    let first = ferry_plan::workspace_at(&repo, &base).unwrap();
    assert!(memo.is_file(), "the load is kept for the next one");
    assert_eq!(first.service("frontend").unwrap().depends_on, ["api"]);

    // The next commit changes a manifest: its workspace must not come from the memo of `base`.
    r.write(
        "services/frontend/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ndepends-on = [\"api\", \"worker\"]\n",
    );
    let head = r.commit("frontend needs worker").to_string();
    let second = ferry_plan::workspace_at(&repo, &head).unwrap();
    assert_eq!(
        second.service("frontend").unwrap().depends_on,
        ["api", "worker"]
    );
    assert_eq!(second.graph().dependencies("frontend"), ["api", "worker"]);

    // Loading `head` again comes from the memo, and gives the same workspace.
    let again = ferry_plan::workspace_at(&repo, &head).unwrap();
    assert_eq!(
        format!("{:?}", again.services),
        format!("{:?}", second.services)
    );
    assert_eq!(again.graph().waves(), second.graph().waves());
    // And `base` is its own again.
    let back = ferry_plan::workspace_at(&repo, &base).unwrap();
    assert_eq!(back.service("frontend").unwrap().depends_on, ["api"]);
    assert_eq!(back.root, first.root);
}

#[test]
fn folders_from_the_cache_give_the_same_workspace_and_the_same_problems_with_their_lines() {
    let (r, base) = monorepo();
    let repo = Repo::open(r.path()).unwrap();
    let fresh = |rev: &str| {
        let source = repo.source_at(rev).unwrap();
        ferry_manifest::load_from(repo.root(), &source, None)
    };
    let first = ferry_plan::workspace_at(&repo, &base).unwrap();
    assert!(repo.cache_dir().join("manifest-cache.bin").is_file());

    // A new commit: only `frontend` changed, so the other four folders come from the cache.
    r.write(
        "services/frontend/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ndepends-on = [\"api\"]\n\n[parameters]\nStage = \"${stage}\"\n",
    );
    let head = r.commit("frontend parameter").to_string();
    let cached = ferry_plan::workspace_at(&repo, &head).unwrap();
    let uncached = fresh(&head).unwrap();
    assert_eq!(
        format!("{:?}", cached.services),
        format!("{:?}", uncached.services)
    );
    assert_eq!(cached.graph().waves(), uncached.graph().waves());
    assert_ne!(
        format!("{:?}", cached.services),
        format!("{:?}", first.services)
    );

    // `events` goes; `worker` (unchanged, cached) still depends on it. The problem is reported
    // exactly as without a cache: worker's file, line and key.
    fs::remove_dir_all(r.path().join("services/events")).unwrap();
    r.write(
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ndepends-on = [\"database\"]\n",
    );
    let broken = r.commit("events removed").to_string();
    let with_cache = ferry_plan::workspace_at(&repo, &broken)
        .unwrap_err()
        .to_string();
    let without = fresh(&broken).unwrap_err().to_string();
    assert_eq!(with_cache, without);
    assert!(
        with_cache.contains("services/worker/service.toml:3")
            && with_cache.contains("unknown service `events`"),
        "{with_cache}"
    );
}

#[test]
fn a_submodule_moved_redeploys_the_services_that_take_files_below_it() {
    let lib = TestRepo::new();
    lib.write("src/util.py", "V = 1\n");
    lib.commit("lib 1");
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for (name, extra) in [
        ("api", "inputs = [\"libs/common/src/**\"]\n"),
        ("web", "inputs = [\"libs/other/**\"]\n"),
        ("worker", ""),
    ] {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n");
        r.write(
            &format!("services/{name}/service.toml"),
            &format!("[service]\ntemplate = \"template.yaml\"\n{extra}"),
        );
    }
    r.write("libs/other/x.py", "X = 1\n");
    r.commit("services");
    let url = lib.path().to_str().unwrap();
    ferry_test_support::git(
        r.path(),
        &["submodule", "--quiet", "add", url, "libs/common"],
    );
    ferry_test_support::git(
        r.path(),
        &["submodule", "--quiet", "add", url, "services/worker/vendor"],
    );
    ferry_test_support::git(r.path(), &["commit", "--quiet", "-m", "submodules"]);
    let base = r.head().to_string();

    lib.write("src/util.py", "V = 2\n");
    lib.commit("lib 2");
    for sub in ["libs/common", "services/worker/vendor"] {
        ferry_test_support::git(&r.path().join(sub), &["pull", "--quiet", "origin", "HEAD"]);
    }
    // Checked out, not yet committed: a plan of the working tree sees it.
    let mut req = request("dev", Some(&base));
    req.head = Head::WorkingTree;
    req.explain = true;
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(deploying(&p), ["api", "worker"]);
    // Committed: a plan between the commits sees it, and says who each submodule feeds.
    ferry_test_support::git(r.path(), &["commit", "--quiet", "-am", "bump"]);
    let mut req = request("dev", Some(&base));
    req.explain = true;
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(deploying(&p), ["api", "worker"]);
    assert_eq!(
        p.service("api").unwrap().reasons,
        vec![Reason::Changed {
            paths: vec!["libs/common".into()]
        }]
    );
    let explained: Vec<(String, Vec<String>)> = p.bases[0]
        .paths
        .as_ref()
        .unwrap()
        .iter()
        .map(|o| (o.path.clone(), o.services.clone()))
        .collect();
    assert_eq!(
        explained,
        [
            ("libs/common".to_string(), vec!["api".to_string()]),
            (
                "services/worker/vendor".to_string(),
                vec!["worker".to_string()]
            )
        ]
    );
}

/// An npm workspace whose root lock file is a global input: members `services/a` (left-pad)
/// and `services/b` (is-odd), and a Python service `services/py` outside the workspace.
fn npm_workspace(lock: &serde_json::Value) -> (TestRepo, String) {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\nglobal-inputs = [\"ferry.toml\", \"package-lock.json\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for name in ["a", "b", "py"] {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n");
        r.write(
            &format!("services/{name}/service.toml"),
            "[service]\ntemplate = \"template.yaml\"\n",
        );
    }
    r.write(
        "package-lock.json",
        &serde_json::to_string_pretty(lock).unwrap(),
    );
    let base = r.commit("base").to_string();
    (r, base)
}

fn npm_lock(left_pad: &str, ms: &str) -> serde_json::Value {
    serde_json::json!({
        "name": "shop",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "shop", "workspaces": ["services/a", "services/b"], "devDependencies": {"ms": ms}},
            "node_modules/a": {"resolved": "services/a", "link": true},
            "node_modules/b": {"resolved": "services/b", "link": true},
            "node_modules/is-odd": {"version": "3.0.1", "integrity": "sha512-o"},
            "node_modules/left-pad": {"version": left_pad, "integrity": format!("sha512-{left_pad}")},
            "node_modules/ms": {"version": ms, "integrity": format!("sha512-{ms}"), "dev": true},
            "services/a": {"version": "1.0.0", "dependencies": {"left-pad": left_pad}},
            "services/b": {"version": "1.0.0", "dependencies": {"is-odd": "3.0.1"}}
        }
    })
}

#[test]
fn an_npm_lock_file_redeploys_only_the_services_whose_packages_it_changes() {
    let (r, base) = npm_workspace(&npm_lock("1.3.0", "2.1.3"));
    // One member's upgrade: that member, with the packages named; a working tree plan sees it
    // the same way as a commit.
    r.write(
        "package-lock.json",
        &serde_json::to_string_pretty(&npm_lock("1.3.1", "2.1.3")).unwrap(),
    );
    let mut req = request("dev", Some(&base));
    req.head = Head::WorkingTree;
    assert_eq!(deploying(&plan_of(&r, &req).unwrap()), ["a"]);
    r.commit("left-pad");
    let mut req = request("dev", Some(&base));
    req.explain = true;
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(deploying(&p), ["a"]);
    assert_eq!(
        p.service("a").unwrap().reasons,
        vec![Reason::LockedDependencies {
            lockfile: "package-lock.json".into(),
            packages: vec!["left-pad 1.3.0 → 1.3.1".into()]
        }]
    );
    assert!(
        ferry_plan::text(&p, true).contains("package-lock.json -> a (read as a lock file)"),
        "{}",
        ferry_plan::text(&p, true)
    );
    let lock = &p.bases[0].paths.as_ref().unwrap()[0];
    assert_eq!(
        (
            lock.path.as_str(),
            lock.services.clone(),
            lock.global,
            lock.lock_file
        ),
        ("package-lock.json", vec!["a".to_string()], true, true)
    );
    assert!(
        ferry_plan::text(&p, false)
            .contains("dependencies changed in package-lock.json: left-pad 1.3.0 → 1.3.1"),
        "{}",
        ferry_plan::text(&p, false)
    );

    // The root's packages reach every member, and the service outside the workspace too (its
    // folder is below the lock file's: the root's packages serve it).
    let since = r.head().to_string();
    r.write(
        "package-lock.json",
        &serde_json::to_string_pretty(&npm_lock("1.3.1", "2.1.2")).unwrap(),
    );
    r.commit("ms");
    let p = plan_of(&r, &request("dev", Some(&since))).unwrap();
    assert_eq!(deploying(&p), ["a", "b", "py"]);

    // A lock file that cannot be read as one (a merge conflict left in it) counts as a whole.
    let since = r.head().to_string();
    r.write("package-lock.json", "<<<<<<< HEAD\n{}\n=======\n");
    r.commit("conflict");
    let p = plan_of(&r, &request("dev", Some(&since))).unwrap();
    assert_eq!(deploying(&p), ["a", "b", "py"]);
    assert_eq!(
        p.service("b").unwrap().reasons,
        vec![Reason::GlobalInput {
            paths: vec!["package-lock.json".into()]
        }]
    );
}

#[test]
fn a_service_with_a_lock_file_of_its_own_is_not_reached_by_the_root_s() {
    let (r, _) = npm_workspace(&npm_lock("1.3.0", "2.1.3"));
    // py is an npm project of its own (its own lock file); a, a workspace member, has a stray
    // one, which npm ignores in a workspace.
    r.write(
        "services/py/package-lock.json",
        "{\"lockfileVersion\": 3, \"packages\": {}}\n",
    )
    .write(
        "services/a/package-lock.json",
        "{\"lockfileVersion\": 3, \"packages\": {}}\n",
    );
    let since = r.commit("lock files of their own").to_string();
    // A root-only package (the repository's tools) changes.
    r.write(
        "package-lock.json",
        &serde_json::to_string_pretty(&npm_lock("1.3.0", "2.1.2")).unwrap(),
    );
    r.commit("ms");
    let p = plan_of(&r, &request("dev", Some(&since))).unwrap();
    assert_eq!(deploying(&p), ["a", "b"], "{:?}", actions(&p));

    // A package py installs from its own lock file (`file:../../plugins/x`), named in its
    // inputs, is py's: the root's lock file does not reach py through it either.
    r.write(
        "services/py/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ninputs = [\"plugins/x/**\"]\n",
    )
    .write("plugins/x/package.json", "{\"name\": \"x\"}\n")
    .write("plugins/x/index.js", "module.exports = 1;\n");
    let since = r.commit("a plugin").to_string();
    r.write(
        "package-lock.json",
        &serde_json::to_string_pretty(&npm_lock("1.3.0", "2.1.1")).unwrap(),
    );
    r.commit("ms again");
    let p = plan_of(&r, &request("dev", Some(&since))).unwrap();
    assert_eq!(deploying(&p), ["a", "b"], "{:?}", actions(&p));

    // But plain code py bundles by a relative import (`require("../../libs/pad")`, no
    // package.json of its own) `require`s what the root installs: the root's lock file
    // reaches py through it. It did not (py was judged by its own lock file alone), and an
    // upgrade bundled into py's archive deployed nothing.
    r.write(
        "services/py/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ninputs = [\"plugins/x/**\", \"libs/**\"]\n",
    )
    .write("libs/pad.js", "module.exports = require(\"ms\");\n");
    let since = r.commit("libs").to_string();
    r.write(
        "package-lock.json",
        &serde_json::to_string_pretty(&npm_lock("1.3.0", "2.1.0")).unwrap(),
    );
    r.commit("ms once more");
    let p = plan_of(&r, &request("dev", Some(&since))).unwrap();
    assert_eq!(deploying(&p), ["a", "b", "py"], "{:?}", actions(&p));
    assert!(
        matches!(&p.service("py").unwrap().reasons[..], [Reason::LockedDependencies { packages, .. }] if packages.iter().any(|l| l.starts_with("ms 2.1.1 → 2.1.0"))),
        "{:?}",
        p.service("py").unwrap().reasons
    );
}

/// A Serverless service with an npm project of its own whose package.json names no framework
/// CLI compiles with the CLI and plugins of a `node_modules` above it (Ferry finds the nearest
/// `node_modules/.bin/serverless`): the root's lock file reaches it, where its own lock file
/// kept it out (an upgrade of the root's framework compiled nothing anew). One whose own
/// package.json names the CLI is judged by its own lock file alone, as before.
#[test]
fn a_serverless_service_taking_its_cli_from_the_root_is_reached_by_the_root_s_lock_file() {
    let (r, _) = npm_workspace(&npm_lock("1.3.0", "2.1.3"));
    for (name, deps) in [("sls", "{}"), ("own", "{\"osls\": \"4.0.0\"}")] {
        r.write(
            &format!("services/{name}/service.toml"),
            "[service]\nkind = \"serverless\"\n",
        )
        .write(
            &format!("services/{name}/serverless.yml"),
            &format!("service: shop-{name}\nprovider:\n  name: aws\n"),
        )
        .write(
            &format!("services/{name}/package.json"),
            &format!("{{\"name\": \"{name}\", \"devDependencies\": {deps}}}\n"),
        )
        .write(
            &format!("services/{name}/package-lock.json"),
            "{\"lockfileVersion\": 3, \"packages\": {}}\n",
        );
    }
    let since = r.commit("serverless services").to_string();
    // The root's tools change (here `ms`, standing for its `osls`).
    r.write(
        "package-lock.json",
        &serde_json::to_string_pretty(&npm_lock("1.3.0", "2.1.2")).unwrap(),
    );
    r.commit("ms");
    let p = plan_of(&r, &request("dev", Some(&since))).unwrap();
    // (py, no npm project of its own, lies in the root's as ever.)
    assert_eq!(deploying(&p), ["a", "b", "py", "sls"], "{:?}", actions(&p));
    assert!(
        matches!(&p.service("sls").unwrap().reasons[..], [Reason::LockedDependencies { packages, .. }] if packages == &["ms 2.1.3 → 2.1.2"]),
        "{:?}",
        p.service("sls").unwrap().reasons
    );
    // What only a workspace member installs is none of the root's tools.
    let since = r.head().to_string();
    r.write(
        "package-lock.json",
        &serde_json::to_string_pretty(&npm_lock("1.3.1", "2.1.2")).unwrap(),
    );
    r.commit("left-pad");
    let p = plan_of(&r, &request("dev", Some(&since))).unwrap();
    assert_eq!(deploying(&p), ["a"], "{:?}", actions(&p));
}

/// A uv project of its own (its own `uv.lock`) with a folder of data among its inputs is not
/// reached by the root's `uv.lock` through it: what its code runs with comes from its own lock
/// file (only Node.js resolves packages from the folders above the code).
#[test]
fn a_uv_service_with_a_lock_file_of_its_own_is_not_reached_by_the_root_s_through_its_inputs() {
    let lock = |v: &str| {
        format!(
            "version = 1\nrevision = 5\nrequires-python = \">=3.11\"\n\n[[package]]\nname = \"shop\"\nversion = \"0.1.0\"\nsource = {{ virtual = \".\" }}\ndependencies = [\n    {{ name = \"six\" }},\n]\n\n[[package]]\nname = \"six\"\nversion = \"{v}\"\nsource = {{ registry = \"https://pypi.org/simple\" }}\nsdist = {{ url = \"https://files.pythonhosted.org/six.tar.gz\", hash = \"sha256:s{v}\" }}\n"
        )
    };
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\nglobal-inputs = [\"ferry.toml\", \"uv.lock\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write("uv.lock", &lock("1.16.0"))
    .write("services/py/template.yaml", "Resources: {}\n")
    .write(
        "services/py/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ninputs = [\"schemas/**\"]\n",
    )
    .write(
        "services/py/uv.lock",
        "version = 1\nrevision = 5\nrequires-python = \">=3.11\"\n\n[[package]]\nname = \"py\"\nversion = \"0.1.0\"\nsource = { virtual = \".\" }\n",
    )
    .write("schemas/order.json", "{}\n");
    let since = r.commit("base").to_string();
    r.write("uv.lock", &lock("1.17.0"));
    r.commit("six");
    let p = plan_of(&r, &request("dev", Some(&since))).unwrap();
    assert!(
        deploying(&p).is_empty(),
        "{:?}",
        p.service("py").unwrap().reasons
    );
}

#[test]
fn a_lock_file_change_that_installs_nothing_new_deploys_nothing() {
    let (r, base) = npm_workspace(&npm_lock("1.3.0", "2.1.3"));
    let mut lock = npm_lock("1.3.0", "2.1.3");
    // npm rewrote it (a field of the root, flags), but every package is as it was.
    lock["packages"]["node_modules/ms"]
        .as_object_mut()
        .unwrap()
        .remove("dev");
    lock["name"] = serde_json::json!("shop-renamed");
    r.write("package-lock.json", &serde_json::to_string(&lock).unwrap());
    r.commit("rewrite");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert!(deploying(&p).is_empty(), "{:?}", actions(&p));

    // A global input in the working tree that is a link (to /dev/zero) is refused, never read:
    // git would keep the link, not what it leads to.
    std::fs::remove_file(r.path().join("package-lock.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", r.path().join("package-lock.json")).unwrap();
    let err = ferry_manifest::load(r.path()).unwrap_err().to_string();
    assert!(
        err.contains("`package-lock.json` is a symbolic link (to `/dev/zero`)"),
        "{err}"
    );
}

#[test]
fn a_pnpm_lock_file_is_read_the_same_way() {
    let lock = |left_pad: &str| {
        format!(
            "lockfileVersion: '9.0'\nimporters:\n  .: {{}}\n  services/a:\n    dependencies:\n      left-pad:\n        specifier: {left_pad}\n        version: {left_pad}\n  services/b:\n    dependencies:\n      ms:\n        specifier: 2.1.3\n        version: 2.1.3\npackages:\n  left-pad@{left_pad}:\n    resolution: {{integrity: sha512-{left_pad}}}\n  ms@2.1.3:\n    resolution: {{integrity: sha512-m}}\nsnapshots:\n  left-pad@{left_pad}: {{}}\n  ms@2.1.3: {{}}\n"
        )
    };
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\nglobal-inputs = [\"ferry.toml\", \"pnpm-lock.yaml\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for name in ["a", "b"] {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n");
        r.write(
            &format!("services/{name}/service.toml"),
            "[service]\ntemplate = \"template.yaml\"\n",
        );
    }
    r.write("pnpm-lock.yaml", &lock("1.3.0"));
    let base = r.commit("base").to_string();
    r.write("pnpm-lock.yaml", &lock("1.3.1"));
    r.commit("left-pad");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p), ["a"]);
    assert_eq!(
        p.service("a").unwrap().reasons,
        vec![Reason::LockedDependencies {
            lockfile: "pnpm-lock.yaml".into(),
            packages: vec!["left-pad 1.3.0 → 1.3.1".into()]
        }]
    );
}

#[test]
fn a_yarn_1_lock_file_is_read_with_the_services_package_json_files() {
    let lock = |left_pad: &str, ms: &str| {
        format!(
            "# yarn lockfile v1\n\n\nis-odd@3.0.1:\n  version \"3.0.1\"\n  integrity sha512-o\n\nleft-pad@1.3.0:\n  version \"1.3.0\"\n  integrity sha512-{left_pad}\n\nms@2.1.3:\n  version \"2.1.3\"\n  integrity sha512-{ms}\n"
        )
    };
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\nglobal-inputs = [\"ferry.toml\", \"yarn.lock\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(
        "package.json",
        r#"{"name": "shop", "private": true, "workspaces": ["services/*"]}"#,
    )
    .write(
        "services/a/package.json",
        r#"{"name": "a", "dependencies": {"left-pad": "1.3.0"}}"#,
    )
    .write(
        "services/b/package.json",
        r#"{"name": "b", "dependencies": {"is-odd": "3.0.1"}}"#,
    )
    // A member inside a's folder: its packages are a's too.
    .write(
        "services/a/fn/package.json",
        r#"{"name": "fn", "dependencies": {"ms": "2.1.3"}}"#,
    );
    for name in ["a", "b"] {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n");
        r.write(
            &format!("services/{name}/service.toml"),
            "[service]\ntemplate = \"template.yaml\"\n",
        );
    }
    r.write("yarn.lock", &lock("l1", "m1"));
    let base = r.commit("base").to_string();
    r.write("yarn.lock", &lock("l2", "m1"));
    r.commit("left-pad again");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p), ["a"]);
    assert_eq!(
        p.service("a").unwrap().reasons,
        vec![Reason::LockedDependencies {
            lockfile: "yarn.lock".into(),
            packages: vec!["left-pad (changed)".into()]
        }]
    );
    let since = r.head().to_string();
    r.write("yarn.lock", &lock("l2", "m2"));
    r.commit("ms again");
    let p = plan_of(&r, &request("dev", Some(&since))).unwrap();
    assert_eq!(deploying(&p), ["a"], "through services/a/fn/package.json");
}

#[test]
fn a_cargo_lock_reaches_the_rust_services_whose_crates_it_changes() {
    let lock = |itoa: &str| {
        format!(
            "version = 4\n\n[[package]]\nname = \"itoa\"\nversion = \"{itoa}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"c{itoa}\"\n\n[[package]]\nname = \"orders\"\nversion = \"0.1.0\"\ndependencies = [\n \"shared\",\n]\n\n[[package]]\nname = \"payments\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"shared\"\nversion = \"0.1.0\"\ndependencies = [\n \"itoa\",\n]\n"
        )
    };
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\nglobal-inputs = [\"ferry.toml\", \"Cargo.lock\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"services/orders\", \"services/payments\", \"crates/shared\"]\n",
    )
    .write(
        "services/orders/Cargo.toml",
        "[package]\nname = \"orders\"\nversion = \"0.1.0\"\n",
    )
    .write(
        "services/payments/Cargo.toml",
        "[package]\nname = \"payments\"\nversion = \"0.1.0\"\n",
    )
    .write(
        "crates/shared/Cargo.toml",
        "[package]\nname = \"shared\"\nversion = \"0.1.0\"\n",
    );
    for (name, extra) in [
        ("orders", "inputs = [\"crates/shared/**\"]\n"),
        ("payments", ""),
        ("web", ""),
    ] {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n");
        r.write(
            &format!("services/{name}/service.toml"),
            &format!("[service]\ntemplate = \"template.yaml\"\n{extra}"),
        );
    }
    r.write("Cargo.lock", &lock("1.0.11"));
    let base = r.commit("base").to_string();
    r.write("Cargo.lock", &lock("1.0.12"));
    r.commit("cargo update -p itoa");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    // orders, through the shared crate its inputs name; web has no crate here, so the lock
    // file counts whole for it; payments uses no itoa.
    assert_eq!(deploying(&p), ["orders", "web"]);
    assert_eq!(
        p.service("orders").unwrap().reasons,
        vec![Reason::LockedDependencies {
            lockfile: "Cargo.lock".into(),
            packages: vec!["itoa 1.0.11 → 1.0.12".into()]
        }]
    );
    assert_eq!(
        p.service("web").unwrap().reasons,
        vec![Reason::GlobalInput {
            paths: vec!["Cargo.lock".into()]
        }]
    );
}

/// A batch of a plan runs a node for each service it deploys and for each dependent of one:
/// `api`, which skips here, may receive new outputs from `database`, and `frontend`'s node
/// waits for it to be checked. Before, `api` had no node, and `frontend`'s node was refused
/// (its dependency still had something to deploy), so the graph could never finish.
#[test]
fn a_batch_of_a_plan_has_a_node_for_each_dependent_of_what_deploys() {
    let (r, base) = monorepo();
    r.write("services/database/src/main.py", "print(2)\n")
        .write("services/frontend/src/main.py", "print(2)\n");
    r.commit("database and frontend");
    let p = plan_of(&r, &request("dev", Some(&base))).unwrap();
    assert_eq!(deploying(&p), ["database", "frontend"]);
    let batch = ferry_plan::codebuild_batch(
        &p,
        ferry_manifest::load(r.path()).unwrap().graph(),
        "cargo xtask",
    );
    let graph_of = |batch: &str| -> Vec<(String, Vec<String>)> {
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(batch).unwrap();
        yaml["batch"]["build-graph"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|n| {
                let deps = n["depend-on"]
                    .as_sequence()
                    .map(|d| d.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default();
                (n["identifier"].as_str().unwrap().to_string(), deps)
            })
            .collect()
    };
    let own = |s: &str, d: &[&str]| (s.to_string(), d.iter().map(|x| x.to_string()).collect());
    assert_eq!(
        graph_of(&batch),
        [
            own("database", &[]),
            own("api", &["database"]),
            own("frontend", &["api", "database"]),
        ]
    );
    let matrix: serde_json::Value = serde_json::from_str(&ferry_plan::github_matrix(
        &p,
        ferry_manifest::load(r.path()).unwrap().graph(),
    ))
    .unwrap();
    assert_eq!(matrix["count"], 3);
    let waves: Vec<Vec<&str>> = matrix["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["include"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["service"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(waves, [["database"], ["api"], ["frontend"]]);

    // A selection: its dependents outside it still get nodes, as a deploy of the selection on
    // one machine checks them.
    r.write("services/database/src/main.py", "print(3)\n");
    r.commit("database");
    let mut req = request("dev", Some(&base));
    req.services = vec!["database".into()];
    let p = plan_of(&r, &req).unwrap();
    assert_eq!(deploying(&p), ["database"]);
    let ws = ferry_manifest::load(r.path()).unwrap();
    let matrix: serde_json::Value =
        serde_json::from_str(&ferry_plan::github_matrix(&p, ws.graph())).unwrap();
    assert_eq!(matrix["count"], 3, "{matrix}");
    // And each waits for its dependencies among them, known from the workspace's graph (the
    // review found api and frontend given none, so all three started at once).
    let batch = ferry_plan::codebuild_batch(&p, ws.graph(), "cargo xtask");
    assert_eq!(
        graph_of(&batch),
        [
            own("database", &[]),
            own("api", &["database"]),
            own("frontend", &["api", "database"]),
        ],
        "{batch}"
    );
}
