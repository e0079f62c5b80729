//! `cargo xtask`: Ferry's command line.
//!
//! This binary parses arguments and composes the `ferry-*` crates; logic lives in the crates.
//! Exit codes: 0 success, 1 failure, 2 usage error.

mod acceptance;
mod aws;
mod bench;
mod deploy;
mod local;
mod lock;
mod package;
mod plan;
mod services;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Ferry deploys a monorepo of serverless services: it finds what changed, deploys it in
/// dependency order with each stage's credentials, and proves each stage with acceptance tests.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    max_term_width = 100
)]
struct Cli {
    /// Repository to operate on (the folder holding ferry.toml) [default: this workspace]
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Use the local AWS emulator for this run (started if it is not running): its endpoint and
    /// dummy credentials, never a real account
    #[arg(long, global = true)]
    local: bool,
    /// Say more: the commands Ferry runs and why it decides what it decides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the services of the monorepo: name, folder, dependencies, template
    Services(services::ServicesArgs),
    /// Check ferry.toml and every service.toml; report every problem at once (exit 1 if any)
    Validate,
    /// Show what a deploy of a stage would do: each service deploy or skip, and why
    Plan(plan::PlanArgs),
    /// Build, zip and hash the services' artifacts for the current commit (stage independent)
    Package(package::PackageArgs),
    /// Run the acceptance tests of a deployed stage against its real stack outputs
    TestAcceptance(acceptance::AcceptanceArgs),
    /// Deploy a stage: the services that need it, in dependency order, with their records
    Deploy(deploy::DeployArgs),
    /// Delete a stage's stacks in reverse dependency order (e.g. a preview stage), and records
    Remove(deploy::RemoveArgs),
    /// Print the stack outputs of a stage's services
    Outputs(deploy::OutputsArgs),
    /// Print the dependency graph of the services (Mermaid, DOT or JSON)
    Graph(plan::GraphArgs),
    /// Show who a stage's credentials are: account, ARN (after assuming its role), region, endpoint
    Whoami(aws::WhoamiArgs),
    /// Read and write the stage's SSM parameters (values are read from standard input)
    #[command(subcommand)]
    Param(aws::ParamCmd),
    /// Run a command with a stage's credentials, region and parameters in its environment only;
    /// its output is masked
    Exec(aws::ExecArgs),
    /// Start, stop and inspect the local AWS emulator (moto server on 127.0.0.1)
    #[command(subcommand)]
    Local(local::LocalCmd),
    /// Run the project's own checks, as CI does: formatting, clippy -D warnings, all tests
    Test(test::TestArgs),
    /// Run a benchmark and print its figures (release build): plan, scheduler
    Bench(bench::BenchArgs),
}

/// What every command gets: where to work and how.
#[derive(Debug)]
pub struct Ctx {
    pub root: PathBuf,
    pub local: bool,
    pub verbose: u8,
}

impl Ctx {
    pub fn workspace(&self) -> anyhow::Result<ferry_manifest::Workspace> {
        ferry_manifest::load(&self.root).with_context(|| {
            format!(
                "failed to load the Ferry configuration of {}",
                self.root.display()
            )
        })
    }

    /// The root as an absolute path without symlinks (as the workspace records it).
    pub fn canonical_root(&self) -> PathBuf {
        std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone())
    }

    /// The local emulator of this Ferry installation (`FERRY_LOCAL_DIR` moves its state).
    pub fn emulator(&self) -> ferry_local::Emulator {
        let emu = ferry_local::Emulator::for_repository(&project_root());
        match std::env::var_os("FERRY_LOCAL_DIR") {
            Some(dir) => emu.with_state_dir(dir),
            None => emu,
        }
    }
}

/// Ferry's output folder of the repository (`target/ferry`), made with the `.gitignore` that keeps
/// it out of `git status`.
pub fn output_dir(ws: &ferry_manifest::Workspace) -> anyhow::Result<PathBuf> {
    ferry_changes::prepare_output_dir(&ws.root).with_context(|| {
        format!(
            "failed to create {}",
            ws.root.join(ferry_manifest::OUTPUT_DIR).display()
        )
    })
}

/// The one masker of this run: every secret value and credential Ferry loads is registered with
/// it, and everything Ferry prints that could hold one goes through it.
pub fn masker() -> &'static ferry_credentials::Masker {
    static MASKER: std::sync::OnceLock<ferry_credentials::Masker> = std::sync::OnceLock::new();
    MASKER.get_or_init(ferry_credentials::Masker::new)
}

/// The Ferry workspace this binary was built from.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let root = cli.root.clone().unwrap_or_else(project_root);
    let ctx = Ctx {
        root,
        local: cli.local,
        verbose: cli.verbose,
    };
    let result = match cli.command {
        Command::Services(args) => services::run(&ctx, &args),
        Command::Validate => services::validate(&ctx),
        Command::Plan(args) => plan::run(&ctx, &args),
        Command::Graph(args) => plan::graph(&ctx, &args),
        Command::Package(args) => package::run(&ctx, &args),
        Command::Deploy(args) => deploy::deploy(&ctx, &args),
        Command::TestAcceptance(args) => acceptance::run(&ctx, &args),
        Command::Remove(args) => deploy::remove(&ctx, &args),
        Command::Outputs(args) => deploy::outputs(&ctx, &args),
        Command::Whoami(args) => aws::whoami(&ctx, &args),
        Command::Param(cmd) => aws::param(&ctx, &cmd),
        Command::Exec(args) => aws::exec(&ctx, &args),
        Command::Local(cmd) => local::run(&ctx, &cmd),
        Command::Test(args) => test::run(&ctx, &args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors can quote anything (SDK messages, child output): mask them like all output.
            let m = masker();
            eprintln!("error: {}", m.mask(&e.to_string()));
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {}", m.mask(&cause.to_string()));
            }
            ExitCode::FAILURE
        }
    }
}
