//! The bad-input corpus of the command line: each `bad_inputs/*.case` is a small repository
//! (`--- path` starts a file) with the command to run and what it must answer:
//!
//! ```text
//! # args: deploy PROD          the command line after `--root <repository>`
//! # exit: 1                    its exit code
//! # stderr: …                  text its standard error must contain (any number)
//! # stderr-lacks: …            text neither of its outputs may contain, e.g. a secret (any number)
//! # stdin: …                   standard input (optional)
//! # git: yes                   make the folder a git repository with one commit (optional)
//! # env: NAME=value            an environment variable, e.g. a CI's (any number)
//! # submodule: PATH            with `git: yes`, a submodule at PATH that is not checked out,
//!                              as in a clone made without `--recurse-submodules` (any number)
//! # sparse: PATTERN            with `git: yes`, a sparse checkout leaving out what PATTERN
//!                              (a `--no-cone` pattern, e.g. `/services/api/src/`) names
//! ```
//!
//! The binary runs with AWS pointed at a closed loopback port: every case must be refused
//! before any AWS call, with a message that names the input and says what to do.

use std::fs;
use std::path::Path;

use crate::common::{clear_env, run};

struct Case {
    args: Vec<String>,
    exit: i32,
    stderr: Vec<String>,
    lacks: Vec<String>,
    stdin: Option<String>,
    git: bool,
    env: Vec<(String, String)>,
    submodules: Vec<String>,
    sparse: Vec<String>,
    files: Vec<(String, String)>,
}

fn parse(text: &str) -> Case {
    let mut case = Case {
        args: Vec::new(),
        exit: 1,
        stderr: Vec::new(),
        lacks: Vec::new(),
        stdin: None,
        git: false,
        env: Vec::new(),
        submodules: Vec::new(),
        sparse: Vec::new(),
        files: Vec::new(),
    };
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("--- ") {
            case.files.push((path.trim().to_string(), String::new()));
        } else if let Some((_, body)) = case.files.last_mut() {
            body.push_str(line);
            body.push('\n');
        } else if let Some(a) = line.strip_prefix("# args: ") {
            case.args = a.split_whitespace().map(String::from).collect();
        } else if let Some(e) = line.strip_prefix("# exit: ") {
            case.exit = e.trim().parse().expect("an exit code");
        } else if let Some(e) = line.strip_prefix("# stderr: ") {
            case.stderr.push(e.to_string());
        } else if let Some(e) = line.strip_prefix("# stderr-lacks: ") {
            case.lacks.push(e.to_string());
        } else if let Some(s) = line.strip_prefix("# stdin: ") {
            case.stdin = Some(s.to_string());
        } else if line.trim() == "# git: yes" {
            case.git = true;
        } else if let Some(p) = line.strip_prefix("# submodule: ") {
            case.submodules.push(p.trim().to_string());
        } else if let Some(p) = line.strip_prefix("# sparse: ") {
            case.sparse.push(p.trim().to_string());
        } else if let Some(e) = line.strip_prefix("# env: ") {
            let (k, v) = e.split_once('=').expect("# env: NAME=value");
            case.env.push((k.to_string(), v.to_string()));
        }
    }
    case
}

#[test]
fn every_bad_input_is_refused_before_any_aws_call_with_a_clear_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    for path in &paths {
        let case = parse(&fs::read_to_string(path).unwrap());
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(!case.args.is_empty(), "{name} has no `# args:` line");
        let repo = ferry_test_support::TestRepo::new();
        for (rel, body) in &case.files {
            repo.write(rel, body);
        }
        if case.git {
            // Each submodule in .gitmodules, as `git submodule add` writes it.
            if !case.submodules.is_empty() {
                let modules: String = case
                    .submodules
                    .iter()
                    .map(|p| format!("[submodule \"{p}\"]\n\tpath = {p}\n\turl = ../{p}.git\n"))
                    .collect();
                repo.write(".gitmodules", &modules);
            }
            let commit = repo.commit("case").to_string();
            // A link to a commit of another repository, whose folder holds no checkout.
            for p in &case.submodules {
                let link = format!("160000,{commit},{p}");
                ferry_test_support::git(
                    repo.path(),
                    &["update-index", "--add", "--cacheinfo", &link],
                );
            }
            if !case.submodules.is_empty() {
                ferry_test_support::git(repo.path(), &["commit", "--quiet", "-m", "submodules"]);
            }
            // A clone makes each submodule's folder, empty.
            for p in &case.submodules {
                fs::create_dir_all(repo.path().join(p)).unwrap();
            }
            if !case.sparse.is_empty() {
                let mut args = vec!["sparse-checkout", "set", "--no-cone", "/*"];
                let left_out: Vec<String> = case.sparse.iter().map(|p| format!("!{p}")).collect();
                args.extend(left_out.iter().map(String::as_str));
                ferry_test_support::git(repo.path(), &args);
            }
        } else {
            fs::remove_dir_all(repo.path().join(".git")).unwrap();
        }
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.arg("--root").arg(repo.path()).args(&case.args);
        clear_env(&mut c);
        c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "test-key")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", repo.path());
        // A case's own variables last: they may name another installation.
        ferry_test_support::keep_installation(&mut c).envs(case.env.iter().map(|(k, v)| (k, v)));
        let (code, out, err) = run(&mut c, case.stdin.as_deref());
        let mut problems = Vec::new();
        if code != case.exit {
            problems.push(format!("exit {code}, expected {}", case.exit));
        }
        for expected in &case.stderr {
            if !err.contains(expected.as_str()) {
                problems.push(format!("stderr lacks `{expected}`"));
            }
        }
        for secret in &case.lacks {
            if err.contains(secret.as_str()) || out.contains(secret.as_str()) {
                problems.push(format!("the output shows `{secret}`"));
            }
        }
        for debug in [
            "DispatchFailure",
            "ConnectorError",
            "could not reach",
            "panicked",
        ] {
            if err.contains(debug) {
                problems.push(format!(
                    "stderr shows `{debug}`: an AWS call was made or it crashed"
                ));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name}: {}\n  stdout: {out}\n  stderr: {err}",
                problems.join("; ")
            ));
        }
    }
    assert!(
        paths.len() >= 20,
        "the corpus shrank to {} cases",
        paths.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} case(s) failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}
