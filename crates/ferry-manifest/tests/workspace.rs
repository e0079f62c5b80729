//! What a valid workspace loads into: the typed model, stage resolution and stack names.

use std::fs;
use std::path::Path;

use ferry_manifest::{DeploymentMethod, Reference, Segment, load};

fn write(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

fn example(root: &Path) {
    write(
        root,
        "ferry.toml",
        r#"
[project]
name = "shop"
services = ["services/*", "apps/**"]
global-inputs = ["ferry.toml", "Cargo.lock"]

[stages.dev]
region = "us-east-1"
parameters-path = "/shop/dev/"

[stages.prod]
region = "eu-west-1"
account = "111111111111"
role-arn = "arn:aws:iam::111111111111:role/ferry-deployer"
deployment-method = "direct"
protected = true

[stages."*"]
region = "us-west-2"
"#,
    );
    for svc in ["database", "events"] {
        write(
            root,
            &format!("services/{svc}/template.yaml"),
            "Resources: {}\n",
        );
        write(
            root,
            &format!("services/{svc}/service.toml"),
            "[service]\ntemplate = \"template.yaml\"\n",
        );
    }
    write(root, "Cargo.lock", "version = 4\n");
    write(root, "apps/web/site/template.json", "{}");
    write(
        root,
        "apps/web/site/service.toml",
        "[service]\nname = \"frontend\"\ntemplate = \"template.json\"\ndepends-on = [\"events\"]\n\n[parameters]\nTable = \"${output:database.TableName}\"\nOld = \"${output:prod:database.TableName}\"\nMail = \"${ssm:admin-email}\"\n",
    );
}

#[test]
fn loads_the_typed_model() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let ws = load(tmp.path()).unwrap();
    let names: Vec<&str> = ws.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["database", "events", "frontend"]);
    let fe = ws.service("frontend").unwrap();
    assert_eq!(fe.dir, "apps/web/site");
    assert_eq!(fe.template_path(), "apps/web/site/template.json");
    // explicit `events` plus `database` implied by the output references (the prod one too: in
    // prod it is a same-stage reference).
    assert_eq!(
        fe.dependencies().into_iter().collect::<Vec<_>>(),
        ["database", "events"]
    );
    assert_eq!(
        ws.graph().waves(),
        vec![vec!["database", "events"], vec!["frontend"]]
    );
    assert_eq!(
        fe.parameters["Mail"].segments,
        vec![Segment::Ref(Reference::Ssm {
            name: ferry_manifest::Template::parse("admin-email").unwrap()
        })]
    );
    assert_eq!(ws.project.global_inputs, ["ferry.toml", "Cargo.lock"]);
    assert_eq!(
        ws.stages["prod"].deployment_method,
        DeploymentMethod::Direct
    );
    assert!(ws.stages["prod"].protected);
    assert_eq!(
        ws.stages["dev"].deployment_method,
        DeploymentMethod::Changeset
    );
}

#[test]
fn stages_resolve_named_then_preview() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let ws = load(tmp.path()).unwrap();

    let prod = ws.stage("prod").unwrap();
    assert!(!prod.preview);
    assert_eq!(ws.stack_name("database", &prod), "database-prod");

    let preview = ws.stage("feature/Login_Form").unwrap();
    assert!(preview.preview);
    assert_eq!(preview.id, "feature-login-form");
    assert_eq!(preview.config.region, "us-west-2");
    assert_eq!(
        ws.stack_name("frontend", &preview),
        "frontend-feature-login-form"
    );

    // A long name is cut to a fixed length, whatever the services' names.
    let long = ws.stage(&"x".repeat(300)).unwrap();
    assert!(ferry_manifest::is_valid_stack_name(
        &ws.stack_name("frontend", &long)
    ));
    assert_eq!(long.id.len(), ferry_manifest::MAX_PREVIEW_ID);

    // A name holding a control or invisible character (an escape sequence that sets the
    // terminal's title, a line that forges another, a direction override) is no stage: it
    // would be printed to every terminal listing the stage. Shown escaped.
    for bad in [
        "r2\u{1b}]0;OWNED\u{7}",
        "pv\n  deploy  prod  ok",
        "feat\u{202e}x",
        "a\u{200b}b",
    ] {
        let err = ws.stage(bad).unwrap_err().to_string();
        assert!(
            err.contains("holds a control or invisible character") && !err.contains(bad),
            "{err}"
        );
    }
    assert!(
        ws.stage("r2\u{1b}]0;OWNED\u{7}")
            .unwrap_err()
            .to_string()
            .contains("\"r2\\u{1b}]0;OWNED\\u{7}\"")
    );
}

#[test]
fn unknown_stage_without_default_names_the_configured_ones() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let text = fs::read_to_string(tmp.path().join("ferry.toml")).unwrap();
    write(
        tmp.path(),
        "ferry.toml",
        &text.replace("[stages.\"*\"]\nregion = \"us-west-2\"\n", ""),
    );
    let ws = load(tmp.path()).unwrap();
    let err = ws.stage("prd").unwrap_err().to_string();
    assert_eq!(
        err,
        "stage `prd` is not configured in ferry.toml; did you mean `prod`?; add [stages.prd] or a [stages.\"*\"] default for preview stages (configured: dev, prod)"
    );
    // The table to add is valid TOML whatever the name holds.
    for (name, key) in [
        ("feature/x", "[stages.\"feature/x\"]"),
        ("a b", "[stages.\"a b\"]"),
        ("", "[stages.\"\"]"),
        ("a\"b\\", r#"[stages."a\"b\\"]"#),
    ] {
        let err = ws.stage(name).unwrap_err().to_string();
        assert!(err.contains(&format!("add {key} or")), "{err}");
    }
}

#[test]
fn parameter_names_are_relative_to_the_stage_path_unless_absolute() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let ws = load(tmp.path()).unwrap();
    let dev = &ws.stages["dev"];
    assert_eq!(dev.parameter_name("admin-email"), "/shop/dev/admin-email");
    assert_eq!(dev.parameter_name("db/password"), "/shop/dev/db/password");
    assert_eq!(dev.parameter_name("/global/x"), "/global/x");
    assert_eq!(
        ws.stages["prod"].parameter_name("x"),
        "/x",
        "no parameters-path: the root"
    );
}

/// Whose parameter a write is: another named stage's where its parameters-path holds the name
/// in the region (and account) the write goes to, the longest path deciding; the stage's own,
/// a shared name, or another region's stage's path, none.
#[test]
fn a_parameter_under_another_stages_path_where_it_is_written_is_that_stages() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/shop/\"\n\n[stages.qa]\nregion = \"us-east-1\"\nparameters-path = \"/qa/\"\n\n[stages.prod]\nregion = \"eu-west-1\"\nparameters-path = \"/shop/prod/\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\nparameters-path = \"/preview/\"\n",
    );
    write(
        tmp.path(),
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(tmp.path(), "services/a/t.yaml", "Resources: {}\n");
    let ws = load(tmp.path()).unwrap();
    let of = |stage: &str, name: &str| {
        ws.parameter_of_another_stage(&ws.stage(stage).unwrap(), name)
            .map(|o| format!("{} {}", o.stage.as_deref().unwrap_or("*"), o.path))
    };
    assert_eq!(of("dev", "/qa/db").as_deref(), Some("qa /qa/"));
    assert_eq!(of("feature-x", "/qa/db").as_deref(), Some("qa /qa/"));
    assert_eq!(of("dev", "/shop/db"), None, "its own");
    assert_eq!(of("dev", "/global/x"), None, "no stage's");
    assert_eq!(
        of("dev", "/qa"),
        None,
        "the path itself names no parameter under it"
    );
    // prod's path lies in dev's, in another region: written in dev's region, it is dev's.
    assert_eq!(of("dev", "/shop/prod/db"), None);
    assert_eq!(of("prod", "/shop/db"), None);
    assert_eq!(
        of("qa", "/shop/prod/db").as_deref(),
        Some("dev /shop/"),
        "prod's region is not qa's: dev's"
    );
    assert_eq!(of("qa", "/shop/db").as_deref(), Some("dev /shop/"));
    // The previews' shared path is theirs, for a named stage's write; a preview's own.
    assert_eq!(of("dev", "/preview/x").as_deref(), Some("* /preview/"));
    assert_eq!(of("qa", "/preview/x").as_deref(), Some("* /preview/"));
    assert_eq!(of("prod", "/preview/x"), None, "another region");
    assert_eq!(of("feature-x", "/preview/x"), None);

    // In accounts their role-arns set apart, one region: dev's write is in dev's account.
    write(
        tmp.path(),
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/shop/\"\nrole-arn = \"arn:aws:iam::111111111111:role/d\"\n\n[stages.qa]\nregion = \"us-east-1\"\nparameters-path = \"/shop/qa/\"\nrole-arn = \"arn:aws:iam::222222222222:role/q\"\n",
    );
    let ws = load(tmp.path()).unwrap();
    assert_eq!(
        ws.parameter_of_another_stage(&ws.stage("dev").unwrap(), "/shop/qa/flag"),
        None
    );
}

#[test]
fn a_serverless_service_keeps_the_stack_name_its_framework_gives_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n",
    );
    for (dir, config, manifest) in [
        ("notifier", "serverless.yml", "service: orders-notifier\n"),
        (
            "named",
            "serverless.yaml",
            "service:\n  name: legacy\nprovider:\n  stackName: legacy-${opt:stage, 'dev'}-stack\n",
        ),
        ("typed", "serverless.ts", "export default {};\n"),
    ] {
        write(root, &format!("services/{dir}/{config}"), manifest);
        let extra = if dir == "typed" {
            "stack-name = \"typed-{stage}\"\n"
        } else {
            ""
        };
        write(
            root,
            &format!("services/{dir}/service.toml"),
            &format!("[service]\nkind = \"serverless\"\n{extra}"),
        );
    }
    write(root, "services/plain/template.yaml", "Resources: {}\n");
    write(
        root,
        "services/plain/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n",
    );
    let ws = load(root).unwrap();
    let dev = ws.stage("dev").unwrap();
    let preview = ws.stage("feature/Login").unwrap();
    assert_eq!(ws.stack_name("notifier", &dev), "orders-notifier-dev");
    assert_eq!(
        ws.stack_name("notifier", &preview),
        "orders-notifier-feature-login"
    );
    assert_eq!(ws.stack_name("named", &dev), "legacy-dev-stack");
    assert_eq!(ws.stack_name("typed", &dev), "typed-dev");
    assert_eq!(
        ws.stack_name("plain", &dev),
        "plain-dev",
        "the project's pattern"
    );
    // A long preview name is cut to the fixed length of a preview id, which fits every
    // service's own pattern (the frameworks' `orders-notifier-…` and `legacy-…-stack`).
    let long = ws.stage(&format!("feature/{}", "a".repeat(200))).unwrap();
    assert_eq!(long.id.len(), ferry_manifest::MAX_PREVIEW_ID);
    for s in &ws.services {
        let stack = ws.stack_name(&s.name, &long);
        assert!(
            ferry_manifest::is_valid_stack_name(&stack),
            "{stack} ({})",
            stack.len()
        );
    }
    let notifier = ws.service("notifier").unwrap();
    assert_eq!(notifier.template, "serverless.yml");
    assert_eq!(ws.service("typed").unwrap().template, "serverless.ts");
}

#[test]
fn an_acceptance_build_runs_in_its_build_dir_relative_to_the_service_folder() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let with = |dir: &str| {
        format!(
            "[service]\ntemplate = \"template.yaml\"\n\n[acceptance]\ncommand = [\"cargo\", \"test\"]\nbuild = [\"cargo\", \"test\", \"--no-run\"]\n{dir}"
        )
    };
    write(
        tmp.path(),
        "services/database/service.toml",
        &with("build-dir = \"../tests/./shop\"\n"),
    );
    write(
        tmp.path(),
        "services/events/service.toml",
        &with("build-dir = \"../..\"\n"),
    );
    // The folder need not exist when the manifest is read: the build says so when it runs.
    let ws = load(tmp.path()).unwrap();
    let folder = |s: &str| {
        let svc = ws.service(s).unwrap();
        svc.acceptance
            .as_ref()
            .unwrap()
            .build_folder(&svc.dir)
            .to_string()
    };
    assert_eq!(folder("database"), "services/tests/shop");
    assert_eq!(folder("events"), "", "the repository root");

    write(tmp.path(), "services/events/service.toml", &with(""));
    let ws = load(tmp.path()).unwrap();
    let events = ws.service("events").unwrap();
    assert_eq!(
        events
            .acceptance
            .as_ref()
            .unwrap()
            .build_folder(&events.dir),
        "services/events",
        "without build-dir: the service folder"
    );
}

/// `validate`'s question of the acceptance build folders: one not on disk, and one leading out
/// of the repository through a link (validate passed it, and `deploy --test` failed there after
/// the stacks deployed), are named; one inside is not.
#[cfg(unix)]
#[test]
fn acceptance_build_dirs_not_there_or_leading_out_of_the_repository_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    example(tmp.path());
    let with = |dir: &str| {
        format!(
            "[service]\ntemplate = \"template.yaml\"\n\n[acceptance]\ncommand = [\"true\"]\nbuild = [\"true\"]\nbuild-dir = \"{dir}\"\n"
        )
    };
    write(tmp.path(), "services/database/service.toml", &with("ext"));
    std::os::unix::fs::symlink(outside.path(), tmp.path().join("services/database/ext")).unwrap();
    write(tmp.path(), "services/events/service.toml", &with("nope"));
    let ws = load(tmp.path()).unwrap();
    let problems = ws.acceptance_build_dir_problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "services/database/service.toml: acceptance.build-dir: services/database/ext leads out of the repository (to "
        ),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with(
            "services/events/service.toml: acceptance.build-dir: services/events/nope is no folder of the repository"
        ),
        "{problems:?}"
    );

    // A link inside the repository is a folder of it.
    fs::remove_file(tmp.path().join("services/database/ext")).unwrap();
    std::os::unix::fs::symlink("../events", tmp.path().join("services/database/ext")).unwrap();
    fs::create_dir_all(tmp.path().join("services/events/nope")).unwrap();
    let ws = load(tmp.path()).unwrap();
    assert_eq!(ws.acceptance_build_dir_problems(), Vec::<String>::new());
}

#[test]
fn a_template_outside_its_service_folder_is_named_and_one_inside_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    write(tmp.path(), "services/shared/t.yaml", "Resources: {}\n");
    write(
        tmp.path(),
        "services/database/sub/t.yaml",
        "Resources: {}\n",
    );
    let manifest = |t: &str| format!("[service]\ntemplate = \"{t}\"\n");
    write(
        tmp.path(),
        "services/database/service.toml",
        &manifest("../shared/t.yaml"),
    );
    write(
        tmp.path(),
        "services/events/service.toml",
        &manifest("../events/./template.yaml"),
    );
    let ws = load(tmp.path()).unwrap();
    let outside = |s: &str| ws.service(s).unwrap().template_outside();
    assert_eq!(
        outside("database").as_deref(),
        Some("services/shared/t.yaml")
    );
    assert_eq!(outside("events"), None, "climbs, but back into its folder");
    assert_eq!(outside("frontend"), None);
    // Kept lexically normal, so that a folder on the way need not exist to read it.
    assert_eq!(ws.service("events").unwrap().template, "template.yaml");
    assert_eq!(ws.service("database").unwrap().template, "../shared/t.yaml");

    write(
        tmp.path(),
        "services/database/service.toml",
        &manifest("gone/../sub/t.yaml"),
    );
    let ws = load(tmp.path()).unwrap();
    let database = ws.service("database").unwrap();
    assert_eq!(database.template, "sub/t.yaml", "`gone` does not exist");
    assert!(tmp.path().join(database.template_path()).is_file());

    write(
        tmp.path(),
        "services/database/service.toml",
        &manifest("sub/t.yaml"),
    );
    let ws = load(tmp.path()).unwrap();
    assert_eq!(ws.service("database").unwrap().template_outside(), None);

    // A service nested in a subfolder owns what is in it (the deepest folder wins), but the
    // outer service's own template there is the outer's too: a change to it redeploys both.
    write(
        tmp.path(),
        "apps/outer/service.toml",
        "[service]\ntemplate = \"inner/t.yaml\"\n",
    );
    write(
        tmp.path(),
        "apps/outer/inner/service.toml",
        "[service]\ntemplate = \"own.yaml\"\n",
    );
    write(tmp.path(), "apps/outer/inner/t.yaml", "Resources: {}\n");
    write(tmp.path(), "apps/outer/inner/own.yaml", "Resources: {}\n");
    let ws = load(tmp.path()).unwrap();
    let owners = ferry_manifest::Owners::of_workspace(&ws).unwrap();
    assert_eq!(
        owners.services_of("apps/outer/inner/t.yaml"),
        ["inner", "outer"]
    );
    assert_eq!(owners.services_of("apps/outer/inner/x.py"), ["inner"]);
}

#[test]
fn hexadecimal_octal_and_binary_integers_keep_their_value() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    write(
        tmp.path(),
        "services/database/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[parameters]\nHex = 0x10\nOct = 0o17\nBin = 0b101\nDec = 1_000\n\n[package]\nbuild = [\"make\"]\ntimeout = 0x3c\n",
    );
    let ws = load(tmp.path()).unwrap();
    let db = ws.service("database").unwrap();
    let text = |k: &str| match db.parameters[k].segments.as_slice() {
        [Segment::Literal(s)] => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        [text("Hex"), text("Oct"), text("Bin"), text("Dec")],
        ["16", "15", "5", "1000"]
    );
    assert_eq!(db.package.timeout_secs, Some(60));
}

/// What a service uses of a stage's own stacks (its site's config, its tests' outputs): declared
/// dependencies and outputs read in that stage, not those read from another stage, whichever
/// way the stage is named.
#[test]
fn dependencies_in_a_stage_are_those_read_in_that_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nvariables = { data = \"dev\" }\n\n[stages.prod]\nregion = \"us-east-1\"\nvariables = { data = \"dev\" }\n",
    );
    for name in ["db", "api", "events"] {
        write(
            root,
            &format!("services/{name}/t.yaml"),
            "Parameters:\n  A: {Type: String}\n  B: {Type: String}\n  C: {Type: String}\nResources: {}\n",
        );
    }
    write(
        root,
        "services/db/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(
        root,
        "services/events/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(
        root,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ndepends-on = [\"events\"]\n\n[parameters]\nA = \"${output:prod:db.Url}\"\nB = \"${output:${var:data}:db.Name}\"\n",
    );
    let ws = load(root).unwrap();
    let api = ws.service("api").unwrap();
    let names = |stage: &str| -> Vec<String> {
        api.dependencies_in(&ws.stage(stage).unwrap())
            .into_iter()
            .collect()
    };
    // dev: the variable names dev itself; prod: the named reference is prod's.
    assert_eq!(names("dev"), ["db", "events"]);
    assert_eq!(names("prod"), ["db", "events"]);
    // A third stage reads both from elsewhere: only the declared dependency is its own.
    write(
        root,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nvariables = { data = \"dev\" }\n\n[stages.prod]\nregion = \"us-east-1\"\nvariables = { data = \"dev\" }\n\n[stages.\"*\"]\nregion = \"us-east-1\"\nvariables = { data = \"dev\" }\n",
    );
    let ws = load(root).unwrap();
    let api = ws.service("api").unwrap();
    let preview: Vec<String> = api
        .dependencies_in(&ws.stage("pr-7").unwrap())
        .into_iter()
        .collect();
    assert_eq!(preview, ["events"]);
    // The one graph orders all of them, in every stage.
    assert_eq!(
        api.dependencies().into_iter().collect::<Vec<_>>(),
        ["db", "events"]
    );
}

/// A FIFO named ferry.toml would block a read forever: it is refused without one.
#[test]
fn a_project_file_that_is_a_fifo_is_refused_without_waiting_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    fs::remove_file(tmp.path().join("ferry.toml")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(tmp.path().join("ferry.toml"))
        .status()
        .unwrap();
    assert!(made.success());
    let root = tmp.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load(&root).map(|_| ()).unwrap_err().to_string());
    });
    let err = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the load returns instead of waiting on the FIFO");
    assert!(
        err.contains(
            "ferry.toml: is not a regular file; ferry.toml must be a file at the repository root"
        ),
        "{err}"
    );
}

/// Each stage comes right after the one it promotes from, whatever their names; stages that
/// promote from none come by name. Before, a stage promoting from none (prod) was put between
/// dev and the staging that promotes from dev, so `status` compared staging with a column
/// that was not its source.
#[test]
fn stages_come_in_promotion_order() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let text = fs::read_to_string(tmp.path().join("ferry.toml")).unwrap();
    let with = |extra: &str| {
        write(
            tmp.path(),
            "ferry.toml",
            &text.replace("[stages.\"*\"]", &format!("{extra}\n[stages.\"*\"]")),
        );
        load(tmp.path()).unwrap()
    };
    let ws = with("[stages.staging]\nregion = \"us-east-1\"\npromote-from = \"dev\"\n");
    assert_eq!(ws.stages_in_promotion_order(), ["dev", "staging", "prod"]);
    let ws = with(
        "[stages.staging]\nregion = \"us-east-1\"\npromote-from = \"dev\"\n\n[stages.alpha]\nregion = \"us-east-1\"\npromote-from = \"prod\"\n\n[stages.qa]\nregion = \"us-east-1\"\npromote-from = \"dev\"\n",
    );
    assert_eq!(
        ws.stages_in_promotion_order(),
        ["dev", "qa", "staging", "prod", "alpha"]
    );
    // None promoting from another (as `init` writes them): the usual order, not by name
    // (before: dev, prod, staging, and `status` compared staging with prod); another name
    // before prod.
    let ws = with(
        "[stages.staging]\nregion = \"us-east-1\"\n\n[stages.demo]\nregion = \"us-east-1\"\n\n[stages.QA]\nregion = \"us-east-1\"\n",
    );
    assert_eq!(
        ws.stages_in_promotion_order(),
        ["dev", "QA", "staging", "demo", "prod"]
    );
}

/// A preview keeps its id when a service with a longer name is added: before, the id was cut to
/// what the longest stack name left, so the branch got a second set of stacks and `remove` of
/// it left the first.
#[test]
fn a_long_preview_name_keeps_its_id_whatever_services_come() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let name = format!("feature/{}", "very-long-branch-name-".repeat(7));
    let before = load(tmp.path()).unwrap().stage(&name).unwrap().id;
    let long_service = "inventory-service-with-a-rather-long-name";
    write(
        tmp.path(),
        &format!("services/{long_service}/template.yaml"),
        "Resources: {}\n",
    );
    write(
        tmp.path(),
        &format!("services/{long_service}/service.toml"),
        "[service]\ntemplate = \"template.yaml\"\n",
    );
    let ws = load(tmp.path()).unwrap();
    assert!(ws.service(long_service).is_some());
    assert_eq!(ws.stage(&name).unwrap().id, before);
}

/// A preview whose stack would be a named stage's stack of another service is refused before
/// anything deploys: `frontend-x` of `dev` is also `frontend` of the preview `x-dev`.
#[test]
fn a_preview_never_takes_a_named_stages_stack_name() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    // Previews in dev's region.
    let text = fs::read_to_string(tmp.path().join("ferry.toml")).unwrap();
    write(
        tmp.path(),
        "ferry.toml",
        &text.replace(
            "[stages.\"*\"]\nregion = \"us-west-2\"",
            "[stages.\"*\"]\nregion = \"us-east-1\"",
        ),
    );
    write(
        tmp.path(),
        "services/frontend-x/template.yaml",
        "Resources: {}\n",
    );
    write(
        tmp.path(),
        "services/frontend-x/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n",
    );
    let ws = load(tmp.path()).unwrap();
    // The stage itself resolves (removing such a preview stays possible); its deploy does not.
    let preview = ws.stage("x-dev").unwrap();
    let err = ws.check_preview_stacks(&preview).unwrap_err().to_string();
    assert!(
        err.contains("its service `frontend` would be the stack `frontend-x-dev`, which is service `frontend-x`'s in the named stage `dev`"),
        "{err}"
    );
    assert!(
        ws.check_preview_stacks(&ws.stage("x-review").unwrap())
            .is_ok()
    );
    // prod is in another region (eu-west-1): no stack of it meets a preview's.
    assert!(
        ws.check_preview_stacks(&ws.stage("x-prod").unwrap())
            .is_ok()
    );
}

/// With `{stage}` first in stack names, a preview named with a digit first would make stacks
/// CloudFormation refuses (the emulator takes them): refused before anything deploys.
#[test]
fn a_preview_whose_stack_names_cloudformation_refuses_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let text = fs::read_to_string(tmp.path().join("ferry.toml")).unwrap();
    write(
        tmp.path(),
        "ferry.toml",
        &text.replace(
            "name = \"shop\"\n",
            "name = \"shop\"\nstack-name = \"{stage}-{service}\"\n",
        ),
    );
    let ws = load(tmp.path()).unwrap();
    let err = ws
        .check_preview_stacks(&ws.stage("9lives").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("would be the stack `9lives-database`, which CloudFormation refuses"),
        "{err}"
    );
    assert_eq!(ws.stage("lives9").unwrap().id, "lives9");
}

/// Input that would cost the loader without bound is refused with what to do: a service.toml
/// over 1 MiB (48 MB took 900 MB to parse), one saved as UTF-16, a serverless.yml nesting flow
/// collections thousands deep (the YAML parser's time grows with the square of the depth).
#[test]
fn oversized_utf16_and_deeply_nested_configuration_is_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let manifest = tmp.path().join("services/database/service.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let padding = format!("# {}\n", "x".repeat(1024)).repeat(1100);
    fs::write(&manifest, format!("{text}{padding}")).unwrap();
    let err = load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("services/database/service.toml: is 11")
            && err.contains("a configuration file holds at most 1048576 (1 MiB)"),
        "{err}"
    );

    let utf16: Vec<u8> = std::iter::once(0xFEFFu16)
        .chain(text.encode_utf16())
        .flat_map(u16::to_le_bytes)
        .collect();
    fs::write(&manifest, utf16).unwrap();
    let err = load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("cannot read: it is not UTF-8 text (saved as UTF-16, say); save it as UTF-8"),
        "{err}"
    );
    // Without a byte-order mark, ASCII as UTF-16 is valid UTF-8, every other byte NUL: named
    // as such, for the service and the project file, not by TOML's column of the first NUL.
    let no_bom: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    fs::write(&manifest, &no_bom).unwrap();
    let err = load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("service.toml: holds NUL characters, so it is no UTF-8 text file (saved as UTF-16 without a byte-order mark, say); save it as UTF-8"),
        "{err}"
    );
    fs::write(&manifest, &text).unwrap();
    let project = tmp.path().join("ferry.toml");
    let project_text = fs::read_to_string(&project).unwrap();
    let no_bom: Vec<u8> = project_text
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    fs::write(&project, &no_bom).unwrap();
    let err = load(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("ferry.toml: holds NUL characters"), "{err}");
    fs::write(&project, &project_text).unwrap();

    write(
        tmp.path(),
        "services/fn/service.toml",
        "[service]\nkind = \"serverless\"\n",
    );
    let deep = format!(
        "service: fn\nprovider:\n  name: aws\ncustom:\n  x: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    write(tmp.path(), "services/fn/serverless.yml", &deep);
    let err = load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("services/fn/serverless.yml:5: its flow collections ([…], {…}) nest deeper than 100 levels"),
        "{err}"
    );
}

/// A `[ci]` rule deploying to a preview one letter from a named stage is named, with the stage
/// meant; a preview name far from every named stage is not.
#[test]
fn a_ci_rule_to_a_near_miss_of_a_named_stage_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let text = fs::read_to_string(tmp.path().join("ferry.toml")).unwrap();
    write(
        tmp.path(),
        "ferry.toml",
        &format!(
            "{text}\n[ci]\nbranches = {{ main = \"prd\", \"feature/*\" = \"sandbox\" }}\ntags = {{ \"v*\" = \"dve\" }}\n"
        ),
    );
    let ws = load(tmp.path()).unwrap();
    assert_eq!(
        ws.ci_near_misses(),
        [
            "ferry.toml: [ci] branches \"main\" deploys to `prd`, which is no stage of ferry.toml but a preview stage of that name; did you mean `prod`?",
            "ferry.toml: [ci] tags \"v*\" deploys to `dve`, which is no stage of ferry.toml but a preview stage of that name; did you mean `dev`?",
        ]
    );
}

/// A preview records-path that starts with the id (`/{stage}/`), which SSM would refuse for
/// a preview such as `awsome` (a name AWS keeps for itself), is refused as it loads: the
/// previews' role, granted every preview's records, would write every parameter of the
/// account. Before, only the preview whose name SSM refuses was refused, as it deployed.
#[test]
fn a_preview_records_path_at_the_root_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    let text = fs::read_to_string(tmp.path().join("ferry.toml")).unwrap();
    write(
        tmp.path(),
        "ferry.toml",
        &text.replace(
            "[stages.\"*\"]\nregion = \"us-west-2\"\n",
            "[stages.\"*\"]\nregion = \"us-west-2\"\nrecords-path = \"/{stage}/\"\n",
        ),
    );
    let err = load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("`/{stage}/` starts every preview's records at `/`"),
        "{err}"
    );
}

/// A service folder a service glob names that is a link out of the repository: a clone holds
/// the link, not the service, so it was dropped without a word. Refused now, naming the link; a
/// link out to a folder holding no service.toml (a build's folder) is passed over as before.
#[test]
fn a_service_folder_linked_from_outside_the_repository_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    example(&root);
    let outside = tempfile::tempdir().unwrap();
    write(
        outside.path(),
        "b/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(outside.path(), "b/t.yaml", "Resources: {}\n");
    fs::create_dir_all(outside.path().join("build")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("build"), root.join("services/build")).unwrap();
    assert!(load(&root).is_ok(), "a link to a folder without a service");
    std::os::unix::fs::symlink(outside.path().join("b"), root.join("services/b")).unwrap();
    let err = load(&root).unwrap_err().to_string();
    assert!(
        err.contains("services/b: is a symbolic link out of the repository (to `")
            && err.contains("move the service into the repository"),
        "{err}"
    );
}

/// A template above its service folder (`template = "../db.yaml"`, as `init` writes for several
/// templates of one folder) is listed from the root without `..`: `services --format json` is a
/// contract scripts compare paths with.
#[test]
fn a_template_above_its_folder_is_summarised_from_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    write(tmp.path(), "services/db.yaml", "Resources: {}\n");
    write(
        tmp.path(),
        "services/db/service.toml",
        "[service]\ntemplate = \"../db.yaml\"\n",
    );
    let ws = load(tmp.path()).unwrap();
    let db = ws.service("db").unwrap();
    assert_eq!(db.template_path(), "services/db/../db.yaml");
    assert_eq!(db.summary().template, "services/db.yaml");
    assert_eq!(
        ws.service("database").unwrap().summary().template,
        "services/database/template.yaml"
    );
}
