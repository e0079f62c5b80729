//! The `ferry` binary, for repositories that are not Rust workspaces: it finds the repository
//! around the current folder.

use std::process::Command;

use ferry_test_support::TestRepo;

fn ferry(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ferry_works_on_the_repository_around_the_current_folder() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"plain\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write(
        "services/api/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    )
    .write(
        "services/api/src/handler.js",
        "exports.handler = async () => 1;\n",
    );
    r.commit("a repository without Cargo.toml");

    // From a folder deep inside it, as from its root.
    for dir in [r.path().to_path_buf(), r.path().join("services/api/src")] {
        let (code, out, err) = ferry(&dir, &["validate"]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("ok: project `plain`, 1 service(s)"), "{out}");
    }
    let (code, out, _) = ferry(
        &r.path().join("services"),
        &["services", "--format", "json"],
    );
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "api");

    // Its help names it `ferry`, not `cargo xtask`.
    let (code, out, _) = ferry(r.path(), &["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Usage: ferry [OPTIONS] <COMMAND>"), "{out}");
}

#[test]
fn outside_any_repository_ferry_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = ferry(dir.path(), &["validate"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("ferry.toml"), "{err}");
    assert!(
        err.contains(&dir.path().display().to_string())
            || err.contains(
                &std::fs::canonicalize(dir.path())
                    .unwrap()
                    .display()
                    .to_string()
            ),
        "{err}"
    );
}

/// `ferry init` adopts a repository that is not a Rust workspace with its configuration alone,
/// and names `ferry` as what runs it; `--runner` also writes a `cargo xtask` runner, and says
/// when that runner takes Ferry from a folder of this machine, which no other clone has.
#[test]
fn ferry_init_writes_the_configuration_alone_unless_asked_for_a_runner() {
    let r = TestRepo::new();
    r.write(
        "stacks/queue/template.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    r.commit("a plain CloudFormation repository");
    let (code, out, err) = ferry(r.path(), &["init"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(r.path().join("ferry.toml").is_file());
    for runner_file in ["xtask", "Cargo.toml", ".cargo", "buildspec.yml"] {
        assert!(!r.path().join(runner_file).exists(), "{runner_file}: {out}");
    }
    assert!(out.contains("next: `ferry validate`"), "{out}");
    assert!(!out.contains("cargo xtask"), "{out}");

    let (code, out, err) = ferry(r.path(), &["init", "--runner", "--force", "--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("--- xtask/Cargo.toml"), "{out}");
    assert!(
        out.contains("a folder of this machine: a clone elsewhere (CI, a teammate) cannot build `cargo xtask`; run init again with --ferry-git URL"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing written"), "{out}");
    // A git dependency is what every clone reaches: no such note.
    let (code, out, err) = ferry(
        r.path(),
        &[
            "init",
            "--runner",
            "--force",
            "--dry-run",
            "--ferry-git",
            "https://example.com/ferry.git",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("a folder of this machine"), "{out}");
    let (code, _, err) = ferry(r.path(), &["init", "--runner", "--no-runner"]);
    assert_eq!(code, 2, "{err}");
}
