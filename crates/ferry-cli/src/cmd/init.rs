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
    /// Write only ferry.toml and the service.toml files, not the `cargo xtask` runner (xtask/,
    /// .cargo/config.toml, Cargo.toml, buildspec.yml). The default of `ferry init`
    #[arg(long)]
    no_runner: bool,
    /// Write the `cargo xtask` runner too. The default of `cargo xtask init`
    #[arg(long, conflicts_with = "no_runner")]
    runner: bool,
    /// The runner depends on Ferry's repository at this path (absolute, or relative to the
    /// repository) [default: the Ferry source this command was built from]
    #[arg(long, value_name = "PATH", conflicts_with = "ferry_git")]
    ferry_path: Option<String>,
    /// The runner depends on Ferry's repository at this git URL
    #[arg(long, value_name = "URL")]
    ferry_git: Option<String>,
    /// With --ferry-git: the revision (commit, tag) to use
    #[arg(long, value_name = "REV", requires = "ferry_git")]
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

pub fn run(ctx: &Ctx, args: &InitArgs) -> anyhow::Result<()> {
    let root = &ctx.root;
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
    // `ferry` is run as it is; a runner only when asked. A Rust workspace's xtask writes one.
    let with_runner = args.runner || (!args.no_runner && ctx.app.name != "ferry");
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
    }
    if !todo.is_empty() {
        println!("not inferred, to check by hand:");
        for n in &todo {
            println!("  - {n}");
        }
    }
    if args.dry_run {
        for (path, text) in &files {
            println!("--- {path}\n{text}");
        }
        println!("dry run: nothing written");
        return Ok(());
    }
    let written = ferry_init::write(root, &files, args.force).with_context(|| {
        format!(
            "failed to write Ferry's configuration into {}",
            root.display()
        )
    })?;
    println!("wrote {}", written.written.join(", "));
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
        Ok(ws) => ferry_package::check_templates(&ws, &ws.services)
            .iter()
            .map(ToString::to_string)
            .collect(),
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
