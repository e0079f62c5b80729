//! `cargo xtask`: Ferry's command line in this workspace, plus the project's own checks
//! (`test`) and benchmarks (`bench`). Everything else is `ferry-cli`.

mod bench;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ferry deploys a monorepo of serverless services: it finds what changed, deploys it in
/// dependency order with each stage's credentials, and proves each stage with acceptance tests.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    global: ferry_cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Ferry(ferry_cli::Command),
    /// Run the project's own checks, as CI does: formatting, clippy -D warnings, all tests
    Test(test::TestArgs),
    /// Run a benchmark and print its figures (release build): plan, scheduler, deploy, package,
    /// acceptance, serverless, release, batch, previews
    Bench(bench::BenchArgs),
}

/// The Ferry workspace this binary was built from.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let app = ferry_cli::App::xtask(project_root());
    let result = match cli.command {
        Command::Ferry(command) => ferry_cli::run(&app, &cli.global, command),
        Command::Test(args) => test::run(&ferry_cli::Ctx::new(&app, &cli.global), &args),
        Command::Bench(args) => bench::run(&args),
    };
    ferry_cli::exit(result)
}
