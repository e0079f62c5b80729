#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! The modules: [`context`] (the repository, the workspace loaded once, the runtime, a stage's
//! AWS access), [`ui`] (the masker, the progress line, tables, sizes), `lock` (a command's work
//! under its stage's lock, and the signals that stop it), and one module per command under
//! `cmd`, which calls crate functions and prints. Nothing here decides anything a deploy tool
//! needs: that is in the crates.

// Output that goes on when its reader has gone away: in this crate these stand in for std's
// macros, which panic on a closed pipe (`deploy … | tail`, killed; `validate | head -1`). A
// panic there would kill a run between moving stacks and writing its release, or the task that
// cancels a run on SIGTERM, leaving it holding its lock. Any other failure to write (a full
// disk under `> file`) is kept by `ui::written` and fails the command once it is done.
//
// What they print quotes what Ferry does not control (a stack output, a parameter's value, a
// branch name): standard error, read by people only, is always `ferry_ci::printable`; standard output
// is when it is a terminal, and left as it is for a program reading it (`param get` into a
// variable, JSON).
macro_rules! print {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let text = $crate::ui::for_stdout(format!($($t)*));
        $crate::ui::written(std::io::stdout().lock().write_all(text.as_bytes()), "stdout");
    }};
}
macro_rules! println {
    () => {
        print!("\n")
    };
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let text = $crate::ui::for_stdout(format!($($t)*) + "\n");
        $crate::ui::written(std::io::stdout().lock().write_all(text.as_bytes()), "stdout");
    }};
}
macro_rules! eprint {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($t)*);
        let text = ferry_ci::printable(&text);
        $crate::ui::written(std::io::stderr().lock().write_all(text.as_bytes()), "stderr");
    }};
}
macro_rules! eprintln {
    () => {
        eprint!("\n")
    };
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($t)*) + "\n";
        let text = ferry_ci::printable(&text);
        $crate::ui::written(std::io::stderr().lock().write_all(text.as_bytes()), "stderr");
    }};
}

mod cmd;
pub mod context;
mod lock;
pub mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

pub use context::Ctx;

/// How Ferry is called here: its name in help and hints, and where it works by default.
#[derive(Debug, Clone)]
pub struct App {
    /// `cargo xtask` or `ferry`.
    pub name: &'static str,
    /// The repository when `--root` is not given; `None`: the nearest folder at or above the
    /// current one that holds `ferry.toml`.
    pub default_root: Option<PathBuf>,
    /// Where the local emulator keeps its state (`target/ferry/local` of this folder; its
    /// installation is the user's, shared by every repository); `None`: the repository's own.
    pub emulator_home: Option<PathBuf>,
}

impl App {
    /// A Rust workspace's `cargo xtask`: works on `workspace_root` (the xtask's parent folder)
    /// unless `--root` says otherwise, and runs the emulator from there.
    pub fn xtask(workspace_root: impl Into<PathBuf>) -> App {
        let root = workspace_root.into();
        App {
            name: "cargo xtask",
            default_root: Some(root.clone()),
            emulator_home: Some(root),
        }
    }

    /// The `ferry` binary: works on the repository around the current folder.
    pub fn ferry() -> App {
        App {
            name: "ferry",
            default_root: None,
            emulator_home: None,
        }
    }
}

/// Ferry deploys a monorepo of serverless services: it finds what changed, deploys it in
/// dependency order with each stage's credentials, and proves each stage with acceptance tests.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Repository to operate on (the folder holding ferry.toml) [default: this workspace, or for
    /// `ferry` the nearest folder at or above the current one that holds ferry.toml]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Use the local AWS emulator for this run (started if it is not running): its endpoint and
    /// dummy credentials, never a real account
    #[arg(long, global = true)]
    pub local: bool,
    /// Say more: the commands Ferry runs and why it decides what it decides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Ferry's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the services of the monorepo: name, kind, folder, dependencies, template
    Services(cmd::services::ServicesArgs),
    /// Check ferry.toml and every service.toml; report every problem at once (exit 1 if any)
    Validate,
    /// Adopt Ferry on an existing repository (--root; for `ferry`, the nearest folder at or above
    /// the current one holding ferry.toml, else the current folder): find its services
    /// (Serverless Framework, SAM, CloudFormation), infer their links, write ferry.toml and
    /// service.toml files (and, for `cargo xtask` or with --runner, a `cargo xtask` runner)
    Init(cmd::init::InitArgs),
    /// Show what a deploy of a stage would do: each service deploy or skip, and why
    Plan(cmd::plan::PlanArgs),
    /// Build, zip and hash the services' artifacts for the current commit (stage independent)
    Package(cmd::package::PackageArgs),
    /// Run the acceptance tests of a deployed stage against its real stack outputs
    TestAcceptance(cmd::acceptance::AcceptanceArgs),
    /// Run a `[scripts]` command (lint, unit tests, …) of every service a plan selects: the
    /// changed ones and their dependents, in dependency order, in parallel
    Run(cmd::scripts::RunArgs),
    /// Deploy a stage: the services that need it, in dependency order, with their records
    Deploy(cmd::deploy::DeployArgs),
    /// Deploy the stack a stage needs before Ferry deploys to it: artifact bucket, deployer role
    /// (permissions derived from the stage's templates, printed for review), notification topic,
    /// optionally a CodeBuild project; unchanged, nothing is written. --print writes the template
    Bootstrap(cmd::bootstrap::BootstrapArgs),
    /// One deploy spread over many CI machines: a node per service, a shared lock, the CI files
    #[command(subcommand)]
    Batch(cmd::batch::BatchCmd),
    /// Deploy to a stage exactly the packages that passed in the stage it promotes from
    /// (`promote-from`), verified by hash, with the target stage's own parameters and credentials
    Promote(cmd::release::PromoteArgs),
    /// Deploy a stage's earlier release again (default: the newest one before the current one
    /// whose tests passed), from its stored packages, only for the services that differ
    Rollback(cmd::release::RollbackArgs),
    /// Show every service in every stage: commit, tests, when, and what differs between stages
    Status(cmd::release::StatusArgs),
    /// Deploy exactly what a review (`deploy --review`, `promote --review`) showed, recording
    /// who approved it; refused when a reviewed stack changed since
    Approve(cmd::release::ApproveArgs),
    /// Delete a stage's stacks in reverse dependency order (e.g. a preview stage), and records
    Remove(cmd::remove::RemoveArgs),
    /// The preview stages that exist (list), and removing those whose branch or pull request is
    /// gone or that are older than a TTL (prune)
    #[command(subcommand)]
    Previews(cmd::previews::PreviewsCmd),
    /// Print the stack outputs of a stage's services
    Outputs(cmd::outputs::OutputsArgs),
    /// Print the dependency graph of the services (Mermaid, DOT or JSON)
    Graph(cmd::plan::GraphArgs),
    /// Show who a stage's credentials are: account, ARN (after assuming its role), region, endpoint
    Whoami(cmd::stage::WhoamiArgs),
    /// Read and write the stage's SSM parameters (values are read from standard input)
    #[command(subcommand)]
    Param(cmd::stage::ParamCmd),
    /// Run a command with a stage's credentials, region and parameters in its environment only;
    /// its output is masked
    Exec(cmd::stage::ExecArgs),
    /// Start, stop and inspect the local AWS emulator (moto server on 127.0.0.1)
    #[command(subcommand)]
    Local(cmd::local::LocalCmd),
}

/// Makes this process non-dumpable (Linux): the builds, scripts and CLIs Ferry starts run as the
/// same user, and any of them (an npm postinstall script) could otherwise read Ferry's
/// environment, the caller's AWS credentials among it, from `/proc/<pid>/environ`, or attach to
/// it. A child is dumpable again once it starts its program. Root (or CAP_SYS_PTRACE) reads it
/// anyway. Best effort: a failure changes nothing else.
pub fn harden() {
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

/// Parses the command line as `app` and runs it. Exit codes: 0 success, 1 failure, 2 usage.
pub fn main(app: &App) -> ExitCode {
    harden();
    let matches = examples_named(Cli::command(), app.name)
        .name(app.name)
        .bin_name(app.name)
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    exit(run(app, &cli.global, cli.command))
}

/// The command line as `name` calls it: help's examples of a command typed after a pipe
/// (`… | cargo xtask param set …`) name it so.
fn examples_named(cmd: clap::Command, name: &'static str) -> clap::Command {
    let example = |text: &clap::builder::StyledStr| {
        text.to_string()
            .replace("| cargo xtask ", &format!("| {name} "))
    };
    let about = cmd.get_about().map(example);
    let long_about = cmd.get_long_about().map(example);
    let mut cmd = cmd.mut_subcommands(|sub| examples_named(sub, name));
    if let Some(about) = about {
        cmd = cmd.about(about);
    }
    if let Some(long_about) = long_about {
        cmd = cmd.long_about(long_about);
    }
    cmd
}

/// Runs one of Ferry's commands, in a process made non-dumpable first ([`harden`]): so is a
/// repository's own xtask that calls this rather than [`main`].
pub fn run(app: &App, global: &Global, command: Command) -> anyhow::Result<()> {
    harden();
    let ctx = Ctx::new(app, global);
    let result = match command {
        Command::Services(args) => cmd::services::run(&ctx, &args),
        Command::Validate => cmd::services::validate(&ctx),
        Command::Init(args) => cmd::init::run(&ctx, &args),
        Command::Plan(args) => cmd::plan::run(&ctx, &args),
        Command::Graph(args) => cmd::plan::graph(&ctx, &args),
        Command::Package(args) => cmd::package::run(&ctx, &args),
        Command::Deploy(args) => cmd::deploy::run(&ctx, &args),
        Command::TestAcceptance(args) => cmd::acceptance::run(&ctx, &args),
        Command::Run(args) => cmd::scripts::run(&ctx, &args),
        Command::Batch(cmd) => cmd::batch::run(&ctx, &cmd),
        Command::Bootstrap(args) => cmd::bootstrap::run(&ctx, &args),
        Command::Promote(args) => cmd::release::promote(&ctx, &args),
        Command::Rollback(args) => cmd::release::rollback(&ctx, &args),
        Command::Status(args) => cmd::release::status(&ctx, &args),
        Command::Approve(args) => cmd::release::approve(&ctx, &args),
        Command::Remove(args) => cmd::remove::run(&ctx, &args),
        Command::Previews(cmd) => cmd::previews::run(&ctx, &cmd),
        Command::Outputs(args) => cmd::outputs::run(&ctx, &args),
        Command::Whoami(args) => cmd::stage::whoami(&ctx, &args),
        Command::Param(cmd) => cmd::stage::param(&ctx, &cmd),
        Command::Exec(args) => cmd::stage::exec(&ctx, &args),
        Command::Local(cmd) => cmd::local::run(&ctx, &cmd),
    };
    // The process ends right after a command; freeing a thousand services one by one would
    // cost more than planning them.
    std::mem::forget(ctx);
    result
}

/// The causes of `e` worth printing under it: each cause's message, left out when the message
/// before it already quotes it whole (an error that names its cause in its own words needs no
/// second line saying it again).
fn causes(e: &anyhow::Error) -> Vec<String> {
    let mut said = e.to_string();
    let mut out = Vec::new();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        out.push(text.clone());
        said = text;
    }
    out
}

/// The exit code of a command's result; an error is printed, masked, with its causes.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    // Output the command could not write (a full disk) fails a command that did its work.
    let result = result.and_then(|()| match ui::WRITE_FAILED.get() {
        Some(e) => Err(anyhow::anyhow!("{e}")),
        None => Ok(()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors can quote anything (SDK messages, child output): mask them like all output.
            let m = ui::masker();
            let top = match e.downcast_ref::<MaskedError>() {
                Some(masked) => masked.0.clone(),
                None => m.mask(&e.to_string()),
            };
            // They quote input too (a path, a `--service` value, a template's `Ref`): standard
            // error shows it printable (see `eprintln!`), steering no terminal.
            eprintln!("error: {top}");
            for cause in causes(&e) {
                eprintln!("  caused by: {}", m.mask(&cause));
            }
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A command line that names too little, or a combination of arguments clap's rules cannot
/// express: exit code 2, as for clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A message whose parts that can quote a secret (a command's output) are masked already, and
/// whose other parts are Ferry's own (an exit status): printed as it is. Masking it whole would
/// take a short secret such as `1` for the status code.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MaskedError(pub String);

#[cfg(test)]
mod tests {
    use super::causes;

    #[test]
    fn a_cause_the_message_above_quotes_is_not_printed_again() {
        let inner = || anyhow::anyhow!("not a valid template: line 3");
        // The message quotes its cause: nothing more to say.
        let e = inner().context("template t.yaml: not a valid template: line 3");
        assert!(causes(&e).is_empty(), "{:?}", causes(&e));
        // A terse message: its cause follows, once.
        let e = inner().context("packaging failed");
        assert_eq!(causes(&e), ["not a valid template: line 3"]);
        let e = inner()
            .context("template t.yaml: not a valid template: line 3")
            .context("packaging failed");
        assert_eq!(
            causes(&e),
            ["template t.yaml: not a valid template: line 3"],
            "what the printed cause quotes is not printed again either"
        );
    }
}
