//! `init`: adopting Ferry on an existing repository.

use anyhow::Context as _;
use ferry_init::Runner;

use crate::Ctx;
use crate::ui::table;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Overwrite files that exist (ferry.toml, service.toml, the runner's files)
    #[arg(long)]
    force: bool,
    /// Write only the files that do not exist yet (the service.toml of a service added since
    /// init ran), leaving every existing one as it is: parameters filled in, links written by
    /// hand
    #[arg(long, conflicts_with = "force")]
    only_missing: bool,
    /// Write only ferry.toml and the service.toml files, not the `cargo xtask` runner (xtask/,
    /// .cargo/config.toml, Cargo.toml, buildspec.yml). The default of `ferry init`
    #[arg(long)]
    no_runner: bool,
    /// Write the `cargo xtask` runner too. The default of `cargo xtask init`
    #[arg(long, conflicts_with = "no_runner")]
    runner: bool,
    /// The runner depends on Ferry's repository at this path (absolute, or relative to the
    /// repository) [default: the Ferry source this command was built from]
    #[arg(long, value_name = "PATH", conflicts_with_all = ["ferry_git", "no_runner"], value_parser = runner_value)]
    ferry_path: Option<String>,
    /// The runner depends on Ferry's repository at this git URL
    #[arg(long, value_name = "URL", conflicts_with = "no_runner", value_parser = runner_value)]
    ferry_git: Option<String>,
    /// With --ferry-git: the revision (commit, tag) to use
    #[arg(long, value_name = "REV", requires = "ferry_git", value_parser = runner_value)]
    ferry_rev: Option<String>,
    /// Print what would be written; write nothing
    #[arg(long)]
    dry_run: bool,
}

/// The Ferry source this binary was built from (its workspace root).
fn own_source() -> String {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(crate_dir)
        .display()
        .to_string()
}

/// A value the runner's Cargo.toml is written with: one line of visible text.
fn runner_value(s: &str) -> Result<String, String> {
    if s.trim().is_empty() || s.chars().any(char::is_control) {
        return Err(format!(
            "\"{}\" is empty or holds a control character: give a path, URL or revision",
            ferry_manifest::clipped(s, 80).escape_debug()
        ));
    }
    Ok(s.to_string())
}

pub fn run(ctx: &Ctx, args: &InitArgs) -> anyhow::Result<()> {
    let root = &ctx.root;
    // `ferry` is run as it is; a runner only when asked. A Rust workspace's xtask writes one.
    let with_runner = args.runner || (!args.no_runner && ctx.app.name != "ferry");
    // A folder inside a git repository is no repository's root: every plan there would find
    // no base, and deploy everything each time.
    if let Err(e @ ferry_changes::BaseUnavailable::NotRepositoryRoot { .. }) =
        ferry_changes::Repo::open(root)
    {
        anyhow::bail!("nothing written: {e}");
    }
    if !with_runner && (args.ferry_git.is_some() || args.ferry_path.is_some()) {
        return Err(crate::UsageError(format!(
            "--ferry-git and --ferry-path say where the `cargo xtask` runner takes Ferry from, and `{} init` writes no runner without --runner: add --runner, or leave them out",
            ctx.app.name
        ))
        .into());
    }
    let mut scan = ferry_init::scan(root)?;
    let worktree = ferry_changes::WorktreeSource::new(root);
    scan.leave_out_ignored(|path| ferry_manifest::Source::ignored(&worktree, path));
    let rows: Vec<[String; 4]> = scan
        .services
        .iter()
        .map(|s| {
            let deps: Vec<&str> = s.depends_on.keys().map(String::as_str).collect();
            [
                s.name.clone(),
                s.kind.to_string(),
                s.dir.clone(),
                if deps.is_empty() {
                    "-".into()
                } else {
                    deps.join(", ")
                },
            ]
        })
        .collect();
    println!(
        "found {} service(s) in {}:",
        scan.services.len(),
        root.display()
    );
    print!("{}", table(["NAME", "KIND", "FOLDER", "DEPENDS ON"], &rows));
    for s in &scan.services {
        for (d, why) in &s.depends_on {
            println!("  {} depends on {d}: {why}", s.name);
        }
        for (i, why) in &s.inputs {
            println!("  {} also changes with {i}: {why}", s.name);
        }
    }
    let mut files = ferry_init::render(&scan, root);
    let mut todo = scan.notes.clone();
    if with_runner {
        let runner = match (&args.ferry_git, &args.ferry_path) {
            (Some(url), _) => Runner::Git {
                url: url.clone(),
                rev: args.ferry_rev.clone(),
            },
            (None, Some(path)) => Runner::Path(path.clone()),
            (None, None) => Runner::Path(own_source()),
        };
        let (runner_files, notes) = ferry_init::runner(root, &runner);
        files.extend(runner_files);
        todo.extend(notes);
        // A submodule not checked out yet is fine; a typo is not: said, not refused.
        if let Some(path) = &args.ferry_path
            && !root
                .join(path)
                .join("crates/ferry-cli/Cargo.toml")
                .is_file()
        {
            todo.push(format!(
                "--ferry-path {path}: no Ferry checkout is there yet (no crates/ferry-cli/Cargo.toml): `cargo xtask` builds once one is (a submodule checked out, the path fixed)"
            ));
        }
    }
    if !todo.is_empty() {
        println!("not inferred, to check by hand:");
        for n in &todo {
            println!("  - {n}");
        }
    }
    if args.dry_run {
        // With --only-missing, only what it would write: the rest stays as it is.
        let kept = if args.only_missing {
            ferry_init::existing(root, &files)
        } else {
            Vec::new()
        };
        for (path, text) in files.iter().filter(|(p, _)| !kept.contains(p)) {
            println!("--- {path}\n{text}");
        }
        if !kept.is_empty() {
            println!("would keep as they are: {}", kept.join(", "));
        }
        println!("dry run: nothing written");
        return Ok(());
    }
    let written = if args.only_missing {
        ferry_init::write_missing(root, &files)
    } else {
        ferry_init::write(root, &files, args.force)
    }
    .with_context(|| {
        format!(
            "failed to write Ferry's configuration into {}",
            root.display()
        )
    })?;
    if written.written.is_empty() {
        println!("wrote nothing: every file is there already");
    } else {
        println!("wrote {}", written.written.join(", "));
    }
    if !written.kept.is_empty() {
        println!(
            "kept as they are: {} (what init would write there now: `init --dry-run`, without --only-missing)",
            written.kept.join(", ")
        );
    }
    let paths: Vec<&str> = written.written.iter().map(String::as_str).collect();
    // Silent outside a git repository.
    if let Ok(repo) = ferry_changes::Repo::open(root) {
        super::services::warn_if_ignored(&repo, &paths);
    }
    // How the repository runs Ferry from now on: its own xtask, or (without a runner) `ferry`.
    let name = if with_runner { "cargo xtask" } else { "ferry" };
    // What init cannot make valid by itself (a Serverless service name CloudFormation refuses
    // in a stack name, a path out of the repository, a template a deploy would refuse) is
    // said now, not at the first deploy: validate's checks, the templates' included.
    let problems: Vec<String> = match ferry_changes::load_worktree(root) {
        Err(e) => e.to_string().lines().map(String::from).collect(),
        Ok(ws) => {
            let mut problems: Vec<String> = ferry_package::check_templates(&ws, &ws.services)
                .iter()
                .map(ToString::to_string)
                .collect();
            // A ferry.toml kept as it was may not cover a service found since: its
            // service.toml, written, would be read by nothing.
            problems.extend(
                scan.services
                    .iter()
                    .filter(|f| !ws.services.iter().any(|s| s.dir == f.dir))
                    .map(|f| {
                        format!(
                            "{}: its service.toml is there, but ferry.toml's [project] services do not name its folder, so no command reads it: add \"{}\" (or a pattern covering it) to them",
                            f.dir, f.dir
                        )
                    }),
            );
            problems
        }
    };
    if !problems.is_empty() {
        println!(
            "the configuration written does not pass `{name} validate` yet; fix these by hand (in the service's own files or in what init wrote):"
        );
        for line in problems.iter().flat_map(|p| p.lines()) {
            println!("  {}", crate::ui::mask(line));
        }
        println!("then: `{name} validate`, then `{name} plan dev`");
        return Ok(());
    }
    println!("next: `{name} validate`, then `{name} plan dev`");
    Ok(())
}
