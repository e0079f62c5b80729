//! `test`: the project's own checks, exactly what CI runs.

use anyhow::Context as _;
use xshell::{Shell, cmd};

use crate::{Ctx, project_root};

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

pub fn run(ctx: &Ctx, args: &TestArgs) -> anyhow::Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    // CI builds from the committed lockfile, never a fresh resolution.
    let locked: &[&str] = if std::env::var("CI").is_ok_and(|v| v == "true") {
        &["--locked"]
    } else {
        &[]
    };

    eprintln!("test: installing what the tests need (the local AWS emulator)");
    ctx.emulator()
        .ensure_installed(|step| eprintln!("test: {step}"))
        .context("failed to install the local AWS emulator that the tests use")?;

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
        println!("{line}");
        lines.push(line);
    }
    let status = child.wait()?;
    let report = libtest_report(&lines);
    ferry_acceptance::write_report(junit, &ferry_acceptance::junit(&report, "cargo test"))
        .with_context(|| format!("failed to write {}", junit.display()))?;
    eprintln!("test: JUnit report {}", junit.display());
    if !status.success() {
        anyhow::bail!("tests failed");
    }
    Ok(())
}

/// libtest's output, one suite per test binary (`Running …` / `Doc-tests …` lines of cargo).
fn libtest_report(lines: &[String]) -> ferry_acceptance::Report {
    let mut suites: Vec<(String, Vec<String>)> = Vec::new();
    for l in lines {
        let t = l.trim();
        if let Some(rest) = t.strip_prefix("Running ") {
            // `tests/git.rs (target/debug/deps/git-85b0…)` → `tests/git.rs (git)`
            let name = match rest.rsplit_once(" (") {
                Some((what, bin)) => {
                    let stem = bin.trim_end_matches(')').rsplit('/').next().unwrap_or(bin);
                    let stem = stem.rsplit_once('-').map_or(stem, |(s, _)| s);
                    format!("{what} ({stem})")
                }
                None => rest.to_string(),
            };
            suites.push((name, Vec::new()));
        } else if let Some(krate) = t.strip_prefix("Doc-tests ") {
            suites.push((format!("doctests ({krate})"), Vec::new()));
        } else if let Some((_, body)) = suites.last_mut() {
            body.push(l.clone());
        }
    }
    let outcomes = suites
        .into_iter()
        .map(|(name, body)| {
            let cases = ferry_acceptance::parse_libtest(&body);
            let failed = cases
                .iter()
                .filter(|c| c.status == ferry_acceptance::CaseStatus::Failed)
                .count();
            ferry_acceptance::TestOutcome {
                service: name,
                status: if failed == 0 {
                    ferry_acceptance::Status::Passed
                } else {
                    ferry_acceptance::Status::Failed {
                        message: format!("{failed} test(s) failed"),
                    }
                },
                duration: std::time::Duration::ZERO,
                cases,
                output: body.iter().rev().take(200).rev().cloned().collect(),
            }
        })
        // Binaries without tests (most doc-tests) are no cases.
        .filter(|o| !o.cases.is_empty())
        .collect();
    ferry_acceptance::Report { outcomes }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_suite_per_binary_with_its_cases() {
        let out: Vec<String> = [
            "     Running unittests src/lib.rs (target/debug/deps/ferry_ci-0d476aefcd31a2b7)",
            "running 1 test",
            "test tests::ci ... ok",
            "     Running tests/git.rs (target/debug/deps/git-85b0c33fd5b8a909)",
            "test a ... ok",
            "test b ... FAILED",
            "   Doc-tests ferry_ci",
            "running 0 tests",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = super::libtest_report(&out);
        let names: Vec<&str> = r.outcomes.iter().map(|o| o.service.as_str()).collect();
        assert_eq!(
            names,
            ["unittests src/lib.rs (ferry_ci)", "tests/git.rs (git)"]
        );
        assert_eq!(r.outcomes[1].cases.len(), 2);
        assert!(r.outcomes[1].status.is_failure());
        assert!(!r.outcomes[0].status.is_failure());
    }
}
