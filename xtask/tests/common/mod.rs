//! Helpers shared by the test files that run the binary against the local emulator.

#![allow(dead_code, reason = "each test file uses what it needs")]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use ferry_records::{Record, RecordStore};
use ferry_test_support::proxy::{Proxy, Request, Rule};
use ferry_test_support::{TestRepo, moto};

/// The binary, pointed at the shared emulator through the standard variables (no --local), with
/// nothing of the caller's own AWS setup leaking in.
pub fn xtask(repo: &TestRepo, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("--root").arg(repo.path()).args(args);
    clear_env(&mut c);
    c.env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test-key")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", repo.path());
    ferry_test_support::keep_installation(&mut c);
    c
}

/// The variables through which the caller's AWS setup (credentials, profiles, a CodeBuild or
/// EKS role) could reach the binary's run; [`clear_env`] also points the config files away.
pub const AWS_SETUP: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
];

/// Removes what would leak the caller's AWS setup or CI context into the binary's run (in
/// CodeBuild the container's role would otherwise answer for the tests), and keeps the SDK
/// off instance metadata.
pub fn clear_env(c: &mut Command) {
    for v in AWS_SETUP {
        c.env_remove(v);
    }
    // Set, not removed: removed, the SDK would read ~/.aws/config and ~/.aws/credentials.
    c.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for v in [
        "CI",
        "CODEBUILD_BUILD_ID",
        "GITHUB_ACTIONS",
        "GITHUB_EVENT_NAME",
        "CODEBUILD_WEBHOOK_TRIGGER",
        "CODEBUILD_RESOLVED_SOURCE_VERSION",
        "FORCE_DEPLOY_ALL",
        "FERRY_BATCH_ID",
        "GITHUB_RUN_ID",
        "CODEBUILD_BATCH_BUILD_IDENTIFIER",
        "GITHUB_STEP_SUMMARY",
    ] {
        c.env_remove(v);
    }
}

pub fn run(c: &mut Command, stdin: Option<&str>) -> (i32, String, String) {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The summary-table line of `service` in a command's standard output.
pub fn row<'a>(out: &'a str, service: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{service} ")))
        .unwrap_or_else(|| panic!("no row for {service} in:\n{out}"))
}

/// A runtime for the tests' own AWS calls.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An SDK config pointed at the shared emulator.
pub fn config() -> aws_config::SdkConfig {
    rt().block_on(ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some(moto().endpoint()),
        },
    ))
}

/// The records of `stage` of `project` (the default records path), as the binary wrote them.
pub fn records(project: &str, stage: &str) -> BTreeMap<String, Record> {
    let store = RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        stage,
        &format!("/ferry/{project}/{stage}"),
    );
    rt().block_on(store.read_all()).unwrap()
}

/// Writes the SSM parameter `name` (a String, overwritten) straight to the emulator: for
/// Ferry's own parameters (a lock, a record), which `param set` refuses to write.
pub fn put_parameter(name: &str, value: &str) {
    let ssm = aws_sdk_ssm::Client::new(&config());
    rt().block_on(
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send(),
    )
    .unwrap();
}

/// Copies a folder, leaving out installed packages (`node_modules`, which git ignores) and the
/// Serverless Framework's output.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "node_modules" || e.file_name() == ".serverless" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The first word after `prefix` at the start of a line of `out` (a release or review id:
/// `release: <id> (…)`, `review: <id> (…)`).
pub fn id_after(out: &str, prefix: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no line starting `{prefix}` in:\n{out}"))
        .to_string()
}

/// A proxy in front of the shared emulator that refuses (AccessDenied) the SSM `action` on
/// the parameter whose name ends with `name_end`, and forwards everything else.
pub fn refusing_ssm(action: &'static str, name_end: &'static str) -> Proxy {
    let upstream = format!("127.0.0.1:{}", moto().port);
    let quoted = format!("{name_end}\"");
    Proxy::start(&upstream, move |req: &Request| {
        if req.action() == action && String::from_utf8_lossy(&req.body).contains(&quoted) {
            Rule::Respond {
                status: 400,
                content_type: "application/x-amz-json-1.1".into(),
                body: r#"{"__type":"AccessDeniedException","message":"not allowed here"}"#.into(),
            }
        } else {
            Rule::Forward
        }
    })
}
