//! The real `xtask` binary on the example monorepo and on temporary repositories.

use std::path::Path;
use std::process::{Command, Output};

use ferry_test_support::{TestRepo, workspace_root};

fn xtask(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args).current_dir(workspace_root());
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("xtask runs");
    (
        status.code().expect("exit code"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[test]
fn help_lists_every_command_with_one_line() {
    let (code, out, _) = run(&mut xtask(&["--help"]));
    assert_eq!(code, 0);
    for cmd in ["services", "validate", "local", "test"] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_else(|| panic!("{cmd} missing in:\n{out}"));
        assert!(
            line.len() > cmd.len() + 10,
            "{cmd} has no description: {line}"
        );
    }
    for opt in ["--root <DIR>", "--local", "--verbose"] {
        assert!(out.contains(opt), "{opt} missing in:\n{out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&mut xtask(&["no-such-command"])).0, 2);
    assert_eq!(run(&mut xtask(&["services", "--format", "yaml"])).0, 2);
}

#[test]
fn services_lists_the_example_monorepo() {
    let (code, out, err) = run(&mut xtask(&["services"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "\
NAME      FOLDER             DEPENDS ON        TEMPLATE
api       services/api       database, events  template.yaml
database  services/database  -                 template.yaml
events    services/events    -                 template.yaml
frontend  services/frontend  api               template.yaml
"
    );
}

#[test]
fn services_json_is_machine_readable() {
    let (code, out, err) = run(&mut xtask(&["services", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let api = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api")
        .unwrap();
    assert_eq!(api["dir"], "services/api");
    assert_eq!(api["template"], "services/api/template.yaml");
    assert_eq!(api["depends_on"], serde_json::json!(["database", "events"]));
    assert_eq!(
        api["parameters"]["TableName"],
        "${output:database.TableName}"
    );
}

#[test]
fn validate_accepts_the_example_monorepo() {
    let (code, out, err) = run(&mut xtask(&["validate"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "ok: project `shop`, 4 service(s), stage(s) dev, prod, staging, *\n"
    );
}

#[test]
fn validate_reports_every_problem_and_exits_1() {
    let repo = TestRepo::new();
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregon = \"us-east-1\"\n",
    )
    .write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ndepends-on = [\"b\"]\n",
    )
    .write("services/a/t.yaml", "Resources: {}\n")
    .write(
        "services/b/service.toml",
        "[service]\ntemplate = \"missing.yaml\"\ndepends-on = [\"a\"]\n",
    );
    let (code, out, err) = run(&mut xtask(&[
        "validate",
        "--root",
        repo.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 1);
    assert_eq!(out, "");
    for expected in [
        "4 problems in the Ferry configuration",
        "ferry.toml:5: stages.dev.regon: unknown key; did you mean `region`?",
        "ferry.toml:4: stages.dev.region: missing required key",
        "services/b/service.toml:2: service.template: template file `services/b/missing.yaml` does not exist",
        "services/a/service.toml:3: service.depends-on: dependency cycle a -> b -> a",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn a_folder_without_ferry_toml_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&mut xtask(&[
        "services",
        "--root",
        tmp.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 1);
    assert!(
        err.contains("failed to load the Ferry configuration of"),
        "{err}"
    );
    assert!(
        err.contains("ferry.toml: not found at the repository root"),
        "{err}"
    );
    assert!(err.contains("--root <DIR>"), "{err}");
}

fn local(state: &Path, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["local"];
    full.extend_from_slice(args);
    run(xtask(&full).env("FERRY_LOCAL_DIR", state))
}

#[test]
fn local_emulator_lifecycle() {
    let state = tempfile::tempdir().unwrap();
    let (code, out, _) = local(state.path(), &["status"]);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            "local AWS emulator is not running (`cargo xtask local up` starts it)"
        )
    );
    let (code, _, err) = local(state.path(), &["env"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("start it with `cargo xtask local up`"),
        "{err}"
    );

    let (code, out, err) = local(state.path(), &["up"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("local AWS emulator started at http://127.0.0.1:"),
        "{out}"
    );
    let endpoint = out.split_whitespace().nth(5).unwrap().to_string();
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    assert!(ferry_local::answers(port));

    // Idempotent: a second `up` finds the same server.
    let (code, out, _) = local(state.path(), &["up"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!(
            "local AWS emulator already running at {endpoint} "
        )),
        "{out}"
    );

    let (_, out, _) = local(state.path(), &["status"]);
    assert!(
        out.starts_with(&format!("local AWS emulator running at {endpoint} ")),
        "{out}"
    );
    let (code, out, _) = local(state.path(), &["env", "--region", "eu-west-1"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("export AWS_ENDPOINT_URL={endpoint}\n")),
        "{out}"
    );
    assert!(out.contains("export AWS_REGION=eu-west-1\n"), "{out}");
    assert!(out.contains("unset AWS_SESSION_TOKEN\n"), "{out}");

    let (code, out, _) = local(state.path(), &["down"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("local AWS emulator stopped"), "{out}");
    assert!(
        !ferry_local::answers(port),
        "the server still answers after down"
    );
    let (code, out, _) = local(state.path(), &["down"]);
    assert_eq!((code, out.trim()), (0, "local AWS emulator is not running"));
}

/// The README's command reference names every command `--help` lists, and `.ci/run` runs the
/// README's test command.
#[test]
fn readme_documents_every_command_and_ci_runs_the_test_command() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let (_, help, _) = run(&mut xtask(&["--help"]));
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 4, "{help}");
    for c in &commands {
        assert!(
            readme.contains(&format!("| `{c}")),
            "README's command table lacks `{c}`"
        );
    }
    assert!(
        readme.contains("\ncargo xtask test\n"),
        "README's quick start lacks the test command"
    );
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "exec cargo xtask test"),
        ".ci/run must run `cargo xtask test`:\n{ci}"
    );
}
