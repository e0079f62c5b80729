//! `previews`: the preview stages that exist (`list`), and removing those whose branch or pull
//! request is gone or that were not deployed for longer than a TTL (`prune`).

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context as _;
use ferry_deploy::previews::{Evidence, Preview};

use crate::Ctx;
use crate::context::runtime;
use crate::ui::table;

/// The most `--live-refs` reads.
const LIVE_REFS_LIMIT: u64 = 64 << 20;

#[derive(Debug, clap::Subcommand)]
pub enum PreviewsCmd {
    /// The preview stages that the project's stacks (by their Ferry tags) and records say exist:
    /// name, pull request, services, stacks, last deploy
    List(ListArgs),
    /// Remove the preview stages whose branch or pull request is gone (from the CI event, or a
    /// list of live refs), or that were not deployed for longer than a TTL; each as `remove`
    /// does it (buckets emptied, every stack confirmed gone)
    Prune(PruneArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Output; `json` is a contract: [{"name", "id", "pull_request", "services", "stacks",
    /// "recorded", "deployed_at"}]
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// A file of live refs, one per line (`-`: standard input), e.g. `git ls-remote --heads
    /// origin` (branches) or open pull requests as `12` / `#12` / `pr/12` / `refs/pull/12/head`. A
    /// preview named after a branch not listed is gone, and one of a pull request not listed;
    /// when the list names no pull request at all, pull-request previews are not judged (and
    /// likewise for branches)
    #[arg(long, value_name = "FILE")]
    live_refs: Option<String>,
    /// Take what is gone from this CI build's event: a pull request closed or merged (CodeBuild
    /// PULL_REQUEST_CLOSED/MERGED, GitHub `pull_request` closed), a branch deleted (GitHub
    /// `delete`)
    #[arg(long)]
    from_ci: bool,
    /// Also prune previews not deployed for longer than this: `7d`, `36h`, `90m` (a bare number
    /// is days)
    #[arg(long, value_name = "AGE", value_parser = ferry_deploy::previews::parse_ttl)]
    ttl: Option<u64>,
    /// Say what would be removed, and remove nothing
    #[arg(long)]
    dry_run: bool,
    /// Each preview's lock (another run deploying or pruning it: a pull request closed while
    /// its preview deploys, two prunes at once)
    #[command(flatten)]
    lock: crate::lock::LockArgs,
    /// How long Ferry waits for one stack's delete, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = crate::ui::timeout_secs())]
    timeout: u64,
}

pub fn run(ctx: &Ctx, cmd: &PreviewsCmd) -> anyhow::Result<()> {
    match cmd {
        PreviewsCmd::List(args) => list(ctx, args),
        PreviewsCmd::Prune(args) => prune(ctx, args),
    }
}

/// The previews that exist, read with the `"*"` stage's access.
fn find(ctx: &Ctx) -> anyhow::Result<Vec<Preview>> {
    let ws = ctx.workspace()?;
    let access = ferry_deploy::previews::preview_access(ws)?;
    runtime()?.block_on(async {
        let aws = ctx.aws(&access).await?;
        ferry_deploy::previews::find(ws, &aws.config)
            .await
            .context("failed to find the preview stages")
    })
}

fn age(p: &Preview, now: u64) -> String {
    p.deployed_at.map_or_else(
        || "-".into(),
        |t| {
            format!(
                "{} ago",
                ferry_deploy::previews::duration(now.saturating_sub(t))
            )
        },
    )
}

fn list(ctx: &Ctx, args: &ListArgs) -> anyhow::Result<()> {
    let previews = find(ctx)?;
    let now = ferry_records::now_secs();
    match args.format {
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&previews).expect("JSON"));
        }
        Format::Text => {
            if previews.is_empty() {
                println!("no preview stages: no stack or record of this project names one");
                return Ok(());
            }
            let rows: Vec<[String; 5]> = previews
                .iter()
                .map(|p| {
                    [
                        p.name.clone(),
                        p.pull_request
                            .as_ref()
                            .map_or_else(|| "branch".into(), |n| format!("pull request #{n}")),
                        p.services.iter().cloned().collect::<Vec<_>>().join(", "),
                        format!(
                            "{} stack(s), {} record(s)",
                            p.stacks.len(),
                            p.recorded.len()
                        ),
                        age(p, now),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(["STAGE", "FOR", "SERVICES", "EXISTS", "LAST DEPLOY"], &rows)
            );
        }
    }
    Ok(())
}

fn prune(ctx: &Ctx, args: &PruneArgs) -> anyhow::Result<()> {
    if args.live_refs.is_none() && !args.from_ci && args.ttl.is_none() {
        return Err(crate::UsageError(format!(
            "say what is gone: --live-refs FILE (e.g. `git ls-remote --heads origin | {} previews prune --live-refs -`), --from-ci, or --ttl AGE",
            ctx.app.name
        ))
        .into());
    }
    let ws = ctx.workspace()?;
    let live = match &args.live_refs {
        None => None,
        Some(path) => {
            // `git ls-remote` of a repository with a hundred thousand branches is some 7 MB: a
            // file past the limit is no list of refs (`/dev/zero`), and reading it whole would
            // take the machine's memory.
            let mut bytes = Vec::new();
            let read = if path == "-" {
                std::io::stdin()
                    .lock()
                    .take(LIVE_REFS_LIMIT + 1)
                    .read_to_end(&mut bytes)
            } else {
                std::fs::File::open(path)
                    .and_then(|f| f.take(LIVE_REFS_LIMIT + 1).read_to_end(&mut bytes))
            };
            let from = if path == "-" {
                "standard input".to_string()
            } else {
                path.clone()
            };
            read.with_context(|| format!("failed to read the live refs from {from}"))?;
            if bytes.len() as u64 > LIVE_REFS_LIMIT {
                anyhow::bail!(
                    "the live refs from {from} are over {} MiB, which no list of refs is (`git ls-remote` of a hundred thousand branches is some 7 MB); nothing was pruned",
                    LIVE_REFS_LIMIT >> 20
                );
            }
            let text = String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!(
                    "the live refs from {from} are not UTF-8 text (refs such as `refs/heads/main`, as `git ls-remote` prints them); nothing was pruned"
                )
            })?;
            let live = ferry_ci::LiveRefs::parse(&text).map_err(|e| {
                anyhow::anyhow!(
                    "the live refs from {from} are not a list of refs: {e}; nothing was pruned"
                )
            })?;
            if live == ferry_ci::LiveRefs::default() {
                anyhow::bail!(
                    "{path} names no branch and no pull request: with it, every preview would be judged gone; pass refs such as `refs/heads/main` or `#12`"
                );
            }
            Some(live)
        }
    };
    let ended = if args.from_ci {
        let ended = ctx.ci().ended.clone();
        if let Some(e) = &ctx.ci().event_error {
            anyhow::bail!(
                "--from-ci cannot tell what this build's event ends: GitHub's event file (GITHUB_EVENT_PATH) could not be read: {e}; nothing was pruned"
            );
        }
        if ended.is_empty() {
            println!("ci: this build's event ends no branch or pull request");
        }
        ended
    } else {
        Vec::new()
    };
    if ended.is_empty() && live.is_none() && args.ttl.is_none() {
        // Only the CI event could say something, and it says nothing: no AWS call.
        return Ok(());
    }
    let previews = find(ctx)?;
    let now = ferry_records::now_secs();
    let evidence = Evidence {
        live,
        ended,
        ttl_secs: args.ttl,
        now,
    };
    let gone = ferry_deploy::previews::to_prune(ws, &previews, &evidence);
    println!(
        "{} preview stage(s), {} to prune{}",
        previews.len(),
        gone.len(),
        if args.dry_run { " (dry run)" } else { "" }
    );
    for (p, why) in &gone {
        println!(
            "  {}: {why} ({} stack(s))",
            ferry_ci::one_line(&p.name),
            p.stacks.len()
        );
    }
    if args.dry_run || gone.is_empty() {
        return Ok(());
    }
    let options = ferry_deploy::RemoveOptions {
        orphans: false,
        any_commit: false,
        allow_protected: false,
        adopt: false,
        timeout: Duration::from_secs(args.timeout),
        local: ctx.local,
    };
    let mut failed = Vec::new();
    let mut redeployed = 0;
    // As a release id made now would begin: one of a later run sorts after it.
    let started = ferry_releases::new_id(ferry_records::now_millis(), "");
    // One runtime for every preview's removal. Each is judged again under its lock: one
    // deployed since the judging above is left in place.
    runtime()?.block_on(async {
        for (p, why) in &gone {
            // Names read back from tags and records: shown on one line, steering no terminal.
            let shown = ferry_ci::one_line(&p.name);
            println!("pruning `{shown}`");
            let outcome: anyhow::Result<bool> = async {
                let mut stage = ws.stage(&p.name)?;
                anyhow::ensure!(
                    stage.preview,
                    "`{shown}` is a stage named in ferry.toml, not a preview: prune never removes it (use `remove`)"
                );
                // The id it was deployed under: this checkout may derive another (a longer
                // service name shortens the room for it).
                stage.id = p.id.clone();
                ferry_deploy::check_removable(&stage, &options)?;
                crate::cmd::remove::remove_stage(
                    ctx,
                    &stage,
                    &options,
                    args.lock,
                    // A CI event's word holds against deploys that started before this prune;
                    // a list of refs or an age does not, once the preview deployed again.
                    Some((
                        p,
                        matches!(why, ferry_deploy::previews::Gone::Ended(_))
                            .then_some(started.as_str()),
                    )),
                )
                    .await
            }
            .await;
            match outcome {
                Ok(true) => {}
                Ok(false) => redeployed += 1,
                Err(e) => {
                    eprintln!(
                        "{}",
                        crate::ui::mask(&format!("error: `{shown}`: {e:#}"))
                    );
                    failed.push(shown.into_owned());
                }
            }
        }
    });
    println!(
        "pruned {} of {} preview stage(s){}",
        gone.len() - failed.len() - redeployed,
        gone.len(),
        if redeployed > 0 {
            format!("; {redeployed} deployed again meanwhile, left in place")
        } else {
            String::new()
        }
    );
    if !failed.is_empty() {
        anyhow::bail!(
            "{} preview stage(s) were not removed completely: {}; run `previews prune` again to finish",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}
