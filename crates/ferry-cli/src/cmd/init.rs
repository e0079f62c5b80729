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
    if let Some(top) = ferry_changes::Repo::enclosing_top(root) {
        let e = ferry_changes::BaseUnavailable::NotRepositoryRoot {
            root: root.clone(),
            top,
        };
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
    // What init says holds the repository's folder and file names, which may hold anything
    // (an escape sequence that sets the terminal's title, a line break): each line is shown
    // printable.
    let say = |line: &str| println!("{}", ferry_ci::one_line(line));
    let paths = |list: &[String]| {
        list.iter()
            .map(|p| ferry_ci::one_line(p).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for s in &scan.services {
        for (d, why) in &s.depends_on {
            say(&format!("  {} depends on {d}: {why}", s.name));
        }
        for (i, why) in &s.inputs {
            say(&format!("  {} also changes with {i}: {why}", s.name));
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
    let existing = if args.force {
        ferry_init::Existing::Overwrite
    } else if args.only_missing {
        ferry_init::Existing::Keep
    } else {
        ferry_init::Existing::Refuse
    };
    // A dry run checks what the real run would (a file that exists, a link on the way), and
    // shows every file all the same when the real run would refuse, saying so at the end.
    let (plan, refusal) = if args.dry_run {
        match ferry_init::check_write(root, &files, existing) {
            Ok(plan) => (plan, None),
            Err(e) => {
                let all = files.iter().map(|(p, _)| p.clone()).collect();
                (
                    ferry_init::Written {
                        written: all,
                        kept: Vec::new(),
                    },
                    Some(e),
                )
            }
        }
    } else {
        let plan = ferry_init::write(root, &files, existing).with_context(|| {
            format!(
                "failed to write Ferry's configuration into {}",
                root.display()
            )
        })?;
        (plan, None)
    };
    // What init found about a file it keeps was not written there: said apart.
    let (about_kept, todo) = ferry_init::notes_about_kept(todo, &scan, &plan.kept);
    if !todo.is_empty() {
        println!("not inferred, to check by hand:");
        for n in &todo {
            say(&format!("  - {n}"));
        }
    }
    if !about_kept.is_empty() {
        println!(
            "found for files kept as they are (nothing of this is written there; compare by hand):"
        );
        for n in &about_kept {
            say(&format!("  - {n}"));
        }
    }
    let writes: Vec<(String, String)> = files
        .into_iter()
        .filter(|(p, _)| plan.written.contains(p))
        .collect();
    if args.dry_run {
        for (path, text) in &writes {
            println!(
                "--- {}\n{}",
                ferry_ci::one_line(path),
                ferry_ci::printable(text)
            );
        }
        if let Some(e) = refusal {
            say(&format!("a real run would write nothing: {e}"));
            println!("dry run: nothing written");
            return Ok(());
        }
    } else if plan.written.is_empty() {
        println!("wrote nothing: every file is there already");
    } else {
        println!("wrote {}", paths(&plan.written));
    }
    if !plan.kept.is_empty() {
        println!(
            "{} as they are: {}{}",
            if args.dry_run { "would keep" } else { "kept" },
            paths(&plan.kept),
            if args.dry_run {
                ""
            } else {
                " (what init would write there now: `init --dry-run`, without --only-missing)"
            }
        );
    }
    // Said of the files a dry run would write too (git's rules apply to paths not there yet).
    // Silent outside a git repository.
    let paths: Vec<&str> = plan.written.iter().map(String::as_str).collect();
    if let Ok(repo) = ferry_changes::Repo::open(root) {
        super::services::warn_if_ignored(&repo, &paths);
    }
    // How the repository runs Ferry from now on: its own xtask, or (without a runner) `ferry`.
    let name = if with_runner { "cargo xtask" } else { "ferry" };
    // Until they are committed, every plan of the working tree takes the files init wrote for
    // changes, and a protected stage refuses the dirty tree.
    const COMMIT_THEN: &str =
        "commit what init wrote (uncommitted, every service counts as changed on each plan), then";
    // What init cannot make valid by itself (a Serverless service name CloudFormation refuses
    // in a stack name, a path out of the repository, a template a deploy would refuse, a
    // service a kept ferry.toml leaves out) is said now, not at the first deploy: validate's
    // checks, the templates' included. A dry run checks the files it would write, unwritten.
    let unwritten = if args.dry_run { &writes[..] } else { &[] };
    let problems = ferry_init::problems_after(root, &worktree, &scan, unwritten);
    if !problems.is_empty() {
        println!(
            "the configuration {} does not pass `{name} validate` yet; fix these by hand (in the service's own files or in what init wrote):",
            if args.dry_run {
                "init would write"
            } else {
                "written"
            }
        );
        for line in problems.iter().flat_map(|p| p.lines()) {
            say(&format!("  {}", crate::ui::mask(line)));
        }
    }
    match (args.dry_run, problems.is_empty()) {
        (true, _) => println!("dry run: nothing written"),
        (false, true) => println!("next: `{name} validate`, {COMMIT_THEN} `{name} plan dev`"),
        (false, false) => println!("then: `{name} validate`, {COMMIT_THEN} `{name} plan dev`"),
    }
    Ok(())
}
