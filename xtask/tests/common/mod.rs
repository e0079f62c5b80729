//! Helpers shared by the test files that run the binary against the local emulator.

use std::io::Write;
use std::process::{Command, Stdio};

use ferry_test_support::{TestRepo, moto};

/// The binary, pointed at the shared emulator through the standard variables (no --local), with
/// nothing of the caller's own AWS setup leaking in.
#[allow(
    dead_code,
    reason = "the bad-input corpus runs the binary without the emulator"
)]
pub fn xtask(repo: &TestRepo, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("--root").arg(repo.path()).args(args);
    clear_env(&mut c);
    c.env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test-key")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", repo.path());
    c
}

/// Removes what would leak the caller's AWS setup or CI context into the binary's run.
pub fn clear_env(c: &mut Command) {
    for v in [
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
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
#[allow(
    dead_code,
    reason = "only the test files that deploy read a summary table"
)]
pub fn row<'a>(out: &'a str, service: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{service} ")))
        .unwrap_or_else(|| panic!("no row for {service} in:\n{out}"))
}
