//! `init` through the binary: a small serverless monorepo is adopted in one command, and the
//! runner it writes works right away (`cargo xtask plan` inside the adopted repository, built
//! against this workspace's Ferry).

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use common::{clear_env, run};

/// The binary under test. One test below builds the adopted repository's runner, also a package
/// named `xtask`, in this workspace's target folder, where cargo puts it at this very path; the
/// tests of this file take turns so that none runs that runner by mistake.
const BINARY: &str = env!("CARGO_BIN_EXE_xtask");

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps this workspace's binary aside (a hard link beside it) while a build that would replace
/// it runs, and puts it back (an atomic rename) however the test ends. Without it, the tests that
/// run after this file, and a user's `./target/debug/xtask` after `cargo xtask test`, ran the
/// adopted repository's runner, whose project root is a deleted temporary folder (so `local down`
/// found no emulator to stop).
struct KeepBinary {
    path: PathBuf,
    kept: PathBuf,
}

impl KeepBinary {
    fn new(path: &Path) -> Self {
        let kept = path.with_file_name(format!(".xtask-kept-{}", std::process::id()));
        let _ = std::fs::remove_file(&kept);
        std::fs::hard_link(path, &kept).expect("a hard link beside the binary");
        KeepBinary {
            path: path.to_path_buf(),
            kept,
        }
    }
}

impl Drop for KeepBinary {
    fn drop(&mut self) {
        if let Err(e) = std::fs::rename(&self.kept, &self.path) {
            eprintln!(
                "could not put {} back from {}: {e}",
                self.path.display(),
                self.kept.display()
            );
        }
        // When cargo never replaced the binary (its build failed first), both names are one
        // file and the rename above did nothing.
        let _ = std::fs::remove_file(&self.kept);
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn file(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn xtask(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BINARY);
    c.arg("--root").arg(root).args(args);
    clear_env(&mut c);
    c
}

#[test]
fn init_adopts_a_monorepo_and_its_runner_plans_right_away() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir_in(workspace_root().join("target")).unwrap();
    let r = dir.path();
    file(
        r,
        "package.json",
        r#"{"name": "acme", "workspaces": ["services/*"]}"#,
    );
    file(
        r,
        "services/orders/serverless.yml",
        "service: orders\nprovider:\n  name: aws\n  region: eu-west-1\nresources:\n  Outputs:\n    TableName:\n      Value: x\n      Export:\n        Name: orders-${sls:stage}-TableName\n",
    );
    file(
        r,
        "services/payments/serverless.yml",
        "service: payments\nprovider:\n  name: aws\n  environment:\n    TABLE: !ImportValue orders-${sls:stage}-TableName\n",
    );
    file(
        r,
        "infra/queue/template.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(r, ".gitignore", "target/\n");

    let (code, out, err) = run(
        &mut xtask(
            r,
            &["init", "--ferry-path", workspace_root().to_str().unwrap()],
        ),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("found 3 service(s)"), "{out}");
    assert!(
        out.contains("payments depends on orders: imports `orders-${sls:stage}-TableName`"),
        "{out}"
    );
    assert!(
        out.contains("wrote ferry.toml, infra/queue/service.toml"),
        "{out}"
    );

    // What it wrote is valid, and a second init changes nothing.
    let (code, out, err) = run(&mut xtask(r, &["validate"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("ok: project `acme`, 3 service(s)"), "{out}");
    let (code, _, err) = run(&mut xtask(r, &["init"]), None);
    assert_eq!(code, 1);
    assert!(
        err.contains("ferry.toml exists; `init` never overwrites a file (--force does; --only-missing writes only the files not there yet"),
        "{err}"
    );
    let (code, out, err) = run(&mut xtask(r, &["init", "--only-missing"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("wrote nothing: every file is there already")
            && out.contains("kept as they are: ferry.toml, "),
        "{out}"
    );
    assert_eq!(
        run(&mut xtask(r, &["init", "--only-missing", "--force"]), None).0,
        2
    );
    // A service in a folder the kept ferry.toml does not cover: its service.toml is written,
    // and init says that nothing would read it (before, validate passed without it).
    file(
        r,
        "brandnew/svc/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    // A dry run shows only the file it would write.
    let (code, out, err) = run(
        &mut xtask(r, &["init", "--only-missing", "--dry-run"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("--- brandnew/svc/service.toml\n")
            && !out.contains("--- ferry.toml")
            && out.contains("would keep as they are: ferry.toml, ")
            && out.contains("dry run: nothing written"),
        "{out}"
    );
    // It says, as the real run does, that nothing would read it (before, only the real run).
    assert!(
        out.contains("the configuration init would write does not pass `cargo xtask validate` yet")
            && out.contains("brandnew/svc: ferry.toml's [project] services do not name its folder, so no command reads its service.toml"),
        "{out}"
    );
    assert!(!r.join("brandnew/svc/service.toml").exists());
    let (code, out, err) = run(&mut xtask(r, &["init", "--only-missing"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("wrote brandnew/svc/service.toml")
            && out.contains("brandnew/svc: ferry.toml's [project] services do not name its folder, so no command reads its service.toml"),
        "{out}"
    );
    std::fs::remove_dir_all(r.join("brandnew")).unwrap();

    // A dangling link where a new service's service.toml goes: the real run refuses it, and so
    // does the dry run now (before, it promised to write the file).
    file(
        r,
        "services/linked/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    std::os::unix::fs::symlink("/nowhere/at/all", r.join("services/linked/service.toml")).unwrap();
    for dry in [true, false] {
        let mut args = vec!["init", "--only-missing"];
        if dry {
            args.push("--dry-run");
        }
        let (code, out, err) = run(&mut xtask(r, &args), None);
        let said = if dry { &out } else { &err };
        assert!(
            said.contains("services/linked/service.toml is a symbolic link: init writes only files of the repository itself"),
            "dry run {dry}: {out}\n{err}"
        );
        assert_eq!(code, if dry { 0 } else { 1 }, "{out}\n{err}");
        if dry {
            assert!(out.contains("a real run would write nothing: "), "{out}");
        }
    }
    std::fs::remove_dir_all(r.join("services/linked")).unwrap();

    // What init finds about a service whose service.toml is kept is said apart from what it
    // would write: before, "written" notes were printed for files --only-missing kept.
    let config = r.join("services/orders/serverless.yml");
    let before = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{before}plugins:\n  - serverless-offline\n"),
    )
    .unwrap();
    let (code, out, err) = run(
        &mut xtask(r, &["init", "--only-missing", "--dry-run"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let kept_part = out
        .split_once("found for files kept as they are")
        .map(|(_, after)| after)
        .unwrap_or_else(|| panic!("no part about kept services: {out}"));
    assert!(
        kept_part.contains("services/orders/serverless.yml: loads the plugins serverless-offline"),
        "{out}"
    );
    std::fs::write(&config, before).unwrap();

    // A dry run without --only-missing shows every file, ferry.toml included, and says that
    // the real run would refuse (the way `kept as they are` points to).
    let (code, out, err) = run(&mut xtask(r, &["init", "--dry-run"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("--- ferry.toml\n")
            && out.contains("a real run would write nothing: ")
            && out.contains("ferry.toml exists; `init` never overwrites a file"),
        "{out}"
    );

    // `cargo xtask plan dev` in the adopted repository, built against this workspace (its lock
    // file and target folder, so nothing is downloaded or built twice), with this workspace's
    // binary kept aside meanwhile.
    let ours = std::fs::metadata(BINARY).unwrap().ino();
    let keep = KeepBinary::new(Path::new(BINARY));
    std::fs::copy(workspace_root().join("Cargo.lock"), r.join("Cargo.lock")).unwrap();
    // The runner as written, plus this workspace's feature list, so that its build reuses the
    // dependency builds already in the target folder instead of compiling the AWS SDK again.
    let manifest = r.join("xtask/Cargo.toml");
    let written = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        written.contains("\n[dependencies]\nferry-cli = "),
        "{written}"
    );
    std::fs::write(
        &manifest,
        written.replace(
            "\n[dependencies]\n",
            &format!(
                "\n[dependencies]\nferry-workspace-hack = {{ path = {:?} }}\n",
                workspace_root().join("crates/ferry-workspace-hack")
            ),
        ),
    )
    .unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["xtask", "plan", "dev", "--offline"])
        .current_dir(r)
        .env("CARGO_TARGET_DIR", target);
    clear_env(&mut cargo);
    let (code, out, err) = run(&mut cargo, None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3 to deploy in 2 wave(s)"), "{out}");
    assert!(out.contains("payments (serverless)"), "{out}");
    drop(keep);
    assert_eq!(
        std::fs::metadata(BINARY).unwrap().ino(),
        ours,
        "{BINARY} is this workspace's binary again"
    );
}

#[test]
fn init_in_a_folder_without_services_says_what_it_looks_for() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "README.md", "docs only\n");
    let (code, _, err) = run(&mut xtask(dir.path(), &["init"]), None);
    assert_eq!(code, 1);
    assert!(err.contains("no service found in"), "{err}");
    assert!(err.contains("serverless.yml"), "{err}");
    assert!(!dir.path().join("ferry.toml").exists());
}

/// A folder name holding an escape sequence (a repository cloned from anyone) reaches the
/// terminal as codes, in the dry run's file headers and in what init says it wrote, not as a
/// sequence that sets the terminal's title: init printed such names raw.
#[test]
fn init_shows_folder_names_holding_control_characters_as_codes() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "services/evil\u{1b}]0;PWNED\u{7}name/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    for args in [
        &["init", "--no-runner", "--dry-run"][..],
        &["init", "--no-runner"],
    ] {
        let (code, out, err) = run(&mut xtask(dir.path(), args), None);
        assert_eq!(code, 0, "{out}{err}");
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out}");
        assert!(
            out.contains("services/evil\\u{1b}]0;PWNED\\u{7}name/service.toml"),
            "{out}"
        );
    }
}

/// What init cannot make valid (a Serverless service name CloudFormation refuses in a stack
/// name) is said right after it writes, with what to change.
#[test]
fn init_says_when_what_it_wrote_does_not_validate_yet() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "services/orders/serverless.yml",
        "service: My_Orders\nprovider:\n  name: aws\n  runtime: nodejs18.x\nfunctions:\n  hello:\n    handler: handler.hello\n",
    );
    file(
        dir.path(),
        "services/orders/handler.js",
        "exports.hello = async () => ({});\n",
    );
    let (code, out, err) = run(&mut xtask(dir.path(), &["init", "--no-runner"]), None);
    assert_eq!(code, 0, "{out}{err}");
    // --no-runner: the repository runs Ferry as `ferry`, which is what init names.
    assert!(out.contains("does not pass `ferry validate` yet"), "{out}");
    assert!(
        out.contains(
            "stack name `My_Orders-dev` of service `orders` is not one CloudFormation accepts"
        ) && out.contains("change the `service:` (or provider.stackName) of its serverless.yml"),
        "{out}"
    );
    assert!(!out.contains("next: "), "{out}");
}

/// A template a deploy would refuse (a SAM template nesting one outside the repository, as a
/// project built from a subfolder does) is said right after init writes, as validate says it.
#[test]
fn init_says_when_a_template_it_found_would_be_refused() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "orders/template.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nResources:\n  Dlq:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ../../shared/dlq.yaml\n",
    );
    let (code, out, err) = run(&mut xtask(dir.path(), &["init", "--no-runner"]), None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("does not pass `ferry validate` yet"), "{out}");
    assert!(out.contains("Dlq.TemplateURL"), "{out}");
    assert!(!out.contains("next: "), "{out}");
}

/// A file a Serverless configuration reads with `${file(…)}` from a folder git ignores (secrets
/// kept out of the repository) is no input: no commit holds it, and validate would refuse it.
/// Init says so and leaves it out, and what it wrote validates.
#[test]
fn init_leaves_out_an_input_git_ignores() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ferry_test_support::git(root, &["init", "--quiet"]);
    file(root, ".gitignore", "secrets/\n");
    file(root, "secrets/dev.yml", "token: not-in-git\n");
    file(root, "shared/config.yml", "level: info\n");
    // Per-stage files git ignores beside an example it tracks (a probe's
    // erezrokah/serverless-monorepo-app): their folder stays an input, and the files are noted,
    // as an edit to one deploys nothing.
    file(
        root,
        "shared/environment/.gitignore",
        "config.*.json\n!config.example.json\n",
    );
    file(
        root,
        "shared/environment/config.example.json",
        "{\"value\": \"x\"}\n",
    );
    file(
        root,
        "shared/environment/config.dev.json",
        "{\"value\": \"v1\"}\n",
    );
    file(
        root,
        "services/api/serverless.yml",
        "service: api\nprovider:\n  name: aws\n  runtime: nodejs18.x\ncustom:\n  stage: ${opt:stage, self:custom.defaultStage}\n  defaultStage: dev\n  secrets: ${file(../../secrets/dev.yml)}\n  shared: ${file(../../shared/config.yml)}\n  conf: ${file(../../shared/environment/config.${self:custom.stage}.json):value}\nfunctions:\n  hello:\n    handler: handler.hello\n",
    );
    file(
        root,
        "services/api/handler.js",
        "exports.hello = async () => ({});\n",
    );
    let (code, out, err) = run(&mut xtask(root, &["init", "--no-runner"]), None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("but git ignores `secrets/dev.yml` and tracks nothing there: no commit holds it, so no plan sees it change; left out of inputs"),
        "{out}"
    );
    assert!(
        out.contains("services/api: reads `shared/environment/config.{stage}.json` (${file(…)}), and git ignores `shared/environment/config.dev.json`: no commit holds it, so no plan sees it change"),
        "{out}"
    );
    assert!(
        !out.contains("reads `secrets/dev.yml` (${file(…)}), and git ignores"),
        "{out}"
    );
    assert!(
        out.contains("next: `ferry validate`, commit what init wrote (uncommitted, every service counts as changed on each plan), then `ferry plan dev`"),
        "{out}"
    );
    let manifest = std::fs::read_to_string(root.join("services/api/service.toml")).unwrap();
    assert!(
        manifest.contains("shared/config.yml") && !manifest.contains("secrets"),
        "{manifest}"
    );
    let (code, _, err) = run(&mut xtask(root, &["validate"]), None);
    assert_eq!(code, 0, "{err}");
}
