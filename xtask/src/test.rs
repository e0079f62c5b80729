//! `test`: the project's own checks, exactly what CI runs.

use std::io::Write as _;

use anyhow::Context as _;
use xshell::{Shell, cmd};

use ferry_cli::Ctx;

use crate::project_root;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Also write the test results as JUnit XML to this file (one suite per test binary), for
    /// CodeBuild's `reports:`
    #[arg(long, value_name = "FILE")]
    junit: Option<std::path::PathBuf>,
    /// Extra arguments for `cargo test` (e.g. a test name filter)
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

/// How a CI run's cargo builds differ from a developer's (see `run`).
const CI_BUILD: [(&str, &str); 3] = [
    ("CARGO_INCREMENTAL", "0"),
    ("CARGO_PROFILE_DEV_DEBUG", "0"),
    ("CARGO_PROFILE_TEST_DEBUG", "0"),
];

pub fn run(ctx: &Ctx, args: &TestArgs) -> anyhow::Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    // CI builds from the committed lockfile, never a fresh resolution.
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let locked: &[&str] = if ci { &["--locked"] } else { &[] };
    if ci {
        // A CI build runs once and is thrown away, on a machine whose free disk is not ours to
        // choose (one CI run failed to link a test binary for want of space). So: no incremental
        // state (2.5 GB for clippy and the test builds), none kept from the build of this very
        // binary (0.4 GB, never read again), and no line tables in the workspace's own crates
        // (a fifth of each test binary; dependencies carry no debug info in any build, so they
        // are still shared with that build).
        for (var, value) in CI_BUILD {
            sh.set_var(var, value);
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| project_root().join("target"));
        let incremental = target.join("debug/incremental");
        if incremental.is_dir() {
            std::fs::remove_dir_all(&incremental)
                .with_context(|| format!("failed to remove {}", incremental.display()))?;
        }
    }

    eprintln!("test: installing what the tests need (the local AWS emulator, cfn-lint)");
    ctx.emulator()
        .ensure_installed(|step| eprintln!("test: {step}"))
        .context("failed to install the local AWS emulator that the tests use")?;
    ctx.emulator()
        .ensure_cfn_lint(|step| eprintln!("test: {step}"))
        .context("failed to install cfn-lint, which the tests check generated templates with")?;

    eprintln!("test: formatting");
    cmd!(sh, "cargo fmt --all -- --check")
        .run()
        .context("formatting differs; run `cargo fmt --all`")?;
    eprintln!("test: clippy");
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets {locked...} -- -D warnings"
    )
    .run()
    .context("clippy found problems")?;
    eprintln!("test: cargo test");
    let extra = &args.cargo_test_args;
    let Some(junit) = &args.junit else {
        cmd!(sh, "cargo test --workspace {locked...} -- {extra...}")
            .run()
            .context("tests failed")?;
        return Ok(());
    };
    // Both streams through one pipe, so each libtest line follows the `Running` line of its
    // binary; printed as they come and kept for the report.
    let (reader, writer) = std::io::pipe()?;
    let mut child = std::process::Command::new("cargo")
        .current_dir(project_root())
        .envs(CI_BUILD.iter().filter(|_| ci).copied())
        .args(["test", "--workspace"])
        .args(locked)
        .arg("--")
        .args(extra)
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()
        .context("failed to start cargo test")?;
    let mut lines = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(reader)) {
        let line = line?;
        // A reader that stops reading (`| head`) does not stop the tests or their report.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
        lines.push(line);
    }
    let status = child.wait()?;
    let report = ferry_acceptance::cargo_test_report(&lines);
    ferry_acceptance::write_report(junit, &ferry_acceptance::junit(&report, "cargo test"))
        .with_context(|| format!("failed to write {}", junit.display()))?;
    eprintln!("test: JUnit report {}", junit.display());
    if !status.success() {
        anyhow::bail!("tests failed");
    }
    Ok(())
}
