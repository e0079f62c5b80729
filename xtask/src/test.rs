//! `test`: the project's own checks, exactly what CI runs.

use anyhow::Context as _;
use xshell::{Shell, cmd};

use crate::{Ctx, project_root};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
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
    cmd!(sh, "cargo test --workspace {locked...} -- {extra...}")
        .run()
        .context("tests failed")?;
    Ok(())
}
