//! The services a commit range affects, using Ferry's crates as libraries.
//!
//! ```sh
//! cargo run -p ferry-plan --example affected -- <repository> <from> [<to>]
//! ```
//!
//! Loads the monorepo's configuration as it is at `<to>` (default `HEAD`) with `ferry-plan`'s
//! `workspace_at` (which reads `ferry-manifest` files from git's object database), opens the
//! repository with `ferry-changes`, and plans a deploy `--since <from>` of the project's first
//! named stage with `ferry-plan`, dependents included. It prints one line per affected service:
//! its name and why (changed paths, a dependency that changed, a global input). It makes no AWS
//! call.

use std::io::Write;
use std::path::Path;

use ferry_changes::{Head, Repo};
use ferry_ci::CiContext;
use ferry_plan::{Action, PlanRequest};

/// Writes the services `from..to` affects in the repository at `root` to `out`.
pub fn affected(
    root: &Path,
    from: &str,
    to: &str,
    out: &mut dyn Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let repo = Repo::open(root)?;
    let ws = ferry_plan::workspace_at(&repo, to)?;
    let stage = ws
        .stages
        .keys()
        .next()
        .cloned()
        .ok_or("ferry.toml names no stage; add one, e.g. [stages.dev]")?;
    let mut req = PlanRequest::new(stage, Head::Rev(to.into()), CiContext::from_vars(|_| None));
    req.since = Some(from.into());
    // A service a dependency of which changed is affected too; a base that cannot be read is an
    // error, not "everything changed".
    req.with_dependents = true;
    req.strict = true;
    let plan = ferry_plan::plan(&ws, Ok(&repo), &req)?;
    for s in plan.services.iter().filter(|s| s.action == Action::Deploy) {
        let why: Vec<String> = s.reasons.iter().map(ferry_plan::reason_text).collect();
        writeln!(out, "{}: {}", s.name, why.join("; "))?;
    }
    Ok(())
}

#[allow(dead_code)] // The test includes this file for `affected`; `main` is the program's.
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (root, from, to) = match args.as_slice() {
        [root, from] => (root, from, "HEAD"),
        [root, from, to] => (root, from, to.as_str()),
        _ => {
            eprintln!("usage: affected <repository> <from> [<to>]");
            return std::process::ExitCode::from(2);
        }
    };
    match affected(Path::new(root), from, to, &mut std::io::stdout().lock()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
