//! `batch`: one deploy spread over many CI machines. `batch node` deploys one service as a node
//! of a batch (sharing the stage's lock with its siblings), `batch finish` writes the batch's
//! release and releases the lock, `batch files` writes the CI files that run them.

use std::path::PathBuf;

use anyhow::Context as _;
use ferry_ci::CiContext;
use ferry_deploy::release::ReleaseInfo;
use ferry_releases::ReleaseKind;

use crate::Ctx;
use crate::cmd::deploy::{DeployArgs, Node, Run};
use crate::context::runtime;

#[derive(Debug, clap::Subcommand)]
pub enum BatchCmd {
    /// Deploy exactly one service as a node of a batch: its dependencies must be deployed
    /// already (their nodes ran); their outputs are read from their stacks. The node shares the
    /// stage's lock with the batch's other nodes, so siblings run at once while another run of
    /// the stage is refused; a node refused before it would take the lock (dependencies still to
    /// deploy) leaves it free. Up to date (e.g. a retried batch): nothing happens
    Node(NodeArgs),
    /// The batch's last step: write its release (what its nodes deployed) and release the
    /// stage's lock it held
    Finish(FinishArgs),
    /// Write (or with --check, compare) the CI files that run a batch: buildspec-batch.yml
    /// (CodeBuild build-graph) and .github/workflows/deploy.yml (GitHub Actions, a matrix per wave)
    Files(FilesArgs),
}

#[derive(Debug, clap::Args)]
pub struct BatchId {
    /// The batch this node belongs to: every node of one deploy gives the same id [default:
    /// FERRY_BATCH_ID; on GitHub Actions `github-<GITHUB_RUN_ID>`; in a CodeBuild batch build
    /// `codebuild-<commit>-<trigger>`]
    #[arg(long, value_name = "ID", value_parser = batch_id)]
    batch: Option<String>,
}

impl BatchId {
    fn resolve(&self, ci: &CiContext) -> anyhow::Result<String> {
        match self
            .batch
            .clone()
            .or_else(|| ci.batch_id.clone())
        {
            // (`--batch` is checked as it is parsed: this one is the CI environment's.)
            Some(b) => batch_id(&b).map_err(|e| {
                anyhow::anyhow!(
                    "the CI environment's batch id (FERRY_BATCH_ID, else made of GITHUB_RUN_ID or CODEBUILD_RESOLVED_SOURCE_VERSION): {e}; give --batch ID instead"
                )
            }),
            None => {
                // A CodeBuild batch build names its batch by the commit it builds.
                let why = if std::env::var_os("CODEBUILD_BATCH_BUILD_IDENTIFIER").is_some() {
                    " (this CodeBuild batch build sets no CODEBUILD_RESOLVED_SOURCE_VERSION, the commit its id is made of)"
                } else {
                    ""
                };
                Err(crate::UsageError(format!(
                    "no batch id{why}: give --batch ID (the same for every node of one deploy), or set FERRY_BATCH_ID"
                ))
                .into())
            }
        }
    }
}

/// A batch id: up to 128 characters of letters, digits, `-`, `_`, `.`, `:` and `/`.
fn batch_id(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty()
        || t.len() > 128
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
    {
        return Err(format!(
            "`{}` is not a batch id: 1 to 128 letters, digits, '-', '_', '.', ':' or '/'",
            ferry_manifest::clipped(s, 140)
        ));
    }
    Ok(t.to_string())
}

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The stage (omit with --from-ci)
    #[arg(required_unless_present = "from_ci")]
    stage: Option<String>,
    /// The service this node deploys
    #[arg(value_name = "SERVICE")]
    service_arg: Option<String>,
    /// Take the stage from the CI build's trigger through the [ci] rules of ferry.toml; the one
    /// positional argument is then the service
    #[arg(long)]
    from_ci: bool,
    #[command(flatten)]
    batch: BatchId,
    /// Run the service's acceptance tests after it deploys (or if they have not passed at this
    /// commit); a failure fails the node, so its dependents do not run
    #[arg(long)]
    test: bool,
    /// How long Ferry waits for the stack, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = crate::ui::timeout_secs())]
    timeout: u64,
    /// Take over an existing stack of this name that has no Ferry tags
    #[arg(long)]
    adopt: bool,
    /// On a stack in UPDATE_ROLLBACK_FAILED, call ContinueUpdateRollback instead of stopping
    #[arg(long)]
    continue_rollback: bool,
    #[command(flatten)]
    lock: crate::lock::LockArgs,
}

#[derive(Debug, clap::Args)]
pub struct FinishArgs {
    /// The stage (omit with --from-ci)
    #[arg(required_unless_present = "from_ci", conflicts_with = "from_ci")]
    stage: Option<String>,
    /// Take the stage from the CI build's trigger through the [ci] rules of ferry.toml
    #[arg(long)]
    from_ci: bool,
    #[command(flatten)]
    batch: BatchId,
    /// How long to wait, in seconds, for nodes of the batch still at work (each marks itself
    /// while it works): the release is written and the lock released only once none is. A node
    /// killed stops counting 5 minutes after its last renewal
    #[arg(long, value_name = "SECONDS", default_value_t = 900, value_parser = crate::ui::timeout_secs())]
    wait: u64,
}

#[derive(Debug, clap::Args)]
pub struct FilesArgs {
    /// Compare the files with what they would be and fail, naming each stale one, instead of
    /// writing them
    #[arg(long)]
    check: bool,
}

pub fn run(ctx: &Ctx, cmd: &BatchCmd) -> anyhow::Result<()> {
    match cmd {
        BatchCmd::Node(args) => node(ctx, args),
        BatchCmd::Finish(args) => finish(ctx, args),
        BatchCmd::Files(args) => files(ctx, args),
    }
}

fn node(ctx: &Ctx, args: &NodeArgs) -> anyhow::Result<()> {
    // `batch node STAGE SERVICE`, or `batch node --from-ci SERVICE`.
    let (stage, service) = match (args.from_ci, &args.stage, &args.service_arg) {
        (false, Some(stage), Some(service)) => (Some(stage.clone()), service.clone()),
        (true, Some(service), None) => (None, service.clone()),
        (false, _, _) => {
            return Err(crate::UsageError(
                "give the stage and the service: `batch node STAGE SERVICE`".into(),
            )
            .into());
        }
        (true, _, _) => {
            return Err(crate::UsageError(
                "with --from-ci, give only the service: `batch node --from-ci SERVICE`".into(),
            )
            .into());
        }
    };
    ctx.check_services(std::slice::from_ref(&service))?;
    let node = Node {
        service: service.clone(),
        batch: args.batch.resolve(ctx.ci())?,
    };
    let deploy = DeployArgs::for_node(
        stage,
        &service,
        args.test,
        args.timeout,
        args.adopt,
        args.continue_rollback,
        args.lock,
    );
    crate::cmd::deploy::run_with(ctx, &deploy, Some(&node))
}

fn finish(ctx: &Ctx, args: &FinishArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let ci = ctx.ci();
    let stage = match &args.stage {
        Some(name) => ws.stage(name)?,
        None => match crate::cmd::release::stage_from_ci(ws, ci)? {
            Some(stage) => stage,
            None => return Ok(()),
        },
    };
    ci.check_may_change("batch finish", &stage.name, stage.preview)?;
    let batch = args.batch.resolve(ctx.ci())?;
    runtime()?.block_on(async {
        let aws = ctx.aws(&stage).await?;
        let records = ctx.records(&stage, &aws)?;
        let holder = ferry_records::LockHolder::for_this_process(
            &|k| std::env::var(k).ok(),
            "batch finish",
            &stage.name,
            ci.build_id.clone(),
        )
        .in_batch(&batch);
        let (since, release) = records.batch_since(&holder).await?;
        // A node still at work would deploy under a released lock, and the release would lack
        // its deploy: wait for it (in CI the finishing step runs once every node ended; this
        // is a `batch finish` run by hand, or too early).
        let waited = crate::ui::Clock::start();
        let said = std::sync::Mutex::new(None::<f64>);
        let waiting = |live: &[ferry_records::RunningNode]| {
            let mut said = said.lock().expect("said");
            // A line when waiting starts, then one every 10 s at most.
            if said.is_some_and(|at| waited.seconds() - at < 10.0) {
                return;
            }
            *said = Some(waited.seconds());
            let nodes: Vec<String> = live
                .iter()
                .map(|n| format!("`{}` (renewed {}s ago; {})", n.service, n.renewed_secs_ago, n.process()))
                .collect();
            waited.say(&format!(
                "waiting for batch `{batch}`'s node{} at work to end: {}",
                if nodes.len() == 1 { "" } else { "s" },
                nodes.join(", ")
            ));
        };
        let gone = records
            .wait_for_nodes(
                &holder,
                std::time::Duration::from_secs(args.wait),
                std::time::Duration::from_secs(2),
                &waiting,
            )
            .await?;
        for node in gone {
            eprintln!(
                "warning: batch node `{}` ({}) stopped without ending ({}): it was killed or lost its machine, and may have left its deploy half done; `plan {}` says what is still to deploy",
                node.service,
                node.process(),
                node.stale.as_ref().map(ToString::to_string).unwrap_or_default(),
                stage.name
            );
        }
        // The commit the nodes deployed: this build's.
        let commit = ferry_deploy::head_commit(ws, ci);
        let cancel = ferry_graph::Cancel::new();
        let clock = crate::ui::Clock::start();
        let run = Run {
            ctx,
            ws,
            stage: &stage,
            aws: &aws,
            records: &records,
            cancel: &cancel,
            clock,
            builds: None,
        };
        let info = ReleaseInfo::new(
            // The nodes' release, named by the node that took the lock (a lock taken before
            // locks kept it: named as then).
            release.unwrap_or_else(|| ferry_releases::batch_release_id(since, &commit)),
            ReleaseKind::Deploy,
            commit,
            &aws.identity.arn,
        );
        // The lock stays while the release is unwritten: a retry of `batch finish` writes it.
        // Nodes may have run tests (owed ones, of a node that found its service up to date):
        // their outcomes go into the releases holding those deploys.
        let release = crate::cmd::release::finish_release(&run, info, true).await?;
        // A node started while the release was written (a retry): the lock stays its batch's,
        // and the finish is run again once it ends.
        let late = records.live_nodes(&holder).await?;
        if !late.is_empty() {
            anyhow::bail!(
                "batch `{batch}`: node `{}` started while its release was written; the lock is left to the batch: run `batch finish` again once {} ended",
                late.join("`, `"),
                if late.len() == 1 { "it has" } else { "they have" }
            );
        }
        let released = records.unlock(&holder).await;
        if release.is_none() {
            println!("batch `{batch}`: no node deployed anything");
        }
        match released
            .with_context(|| format!("failed to release the lock of stage `{}`", stage.name))?
        {
            ferry_records::Released::Released => {
                // A node that joined as the lock was released brings it back: said, not
                // "released".
                if let Some(nodes) = records.rejoined_after_release(&holder).await? {
                    let who = if nodes.is_empty() {
                        "a node".to_string()
                    } else {
                        format!("node `{}`", nodes.join("`, `"))
                    };
                    anyhow::bail!(
                        "batch `{batch}`: {who} joined as the lock of stage `{}` was released, and holds it again for the batch (its deploy is not in this release): run `batch finish` again once it ended",
                        stage.name
                    );
                }
                println!("lock: stage `{}` released by batch `{batch}`", stage.name)
            }
            ferry_records::Released::Gone => {
                println!("lock: stage `{}` was not locked any more", stage.name)
            }
            ferry_records::Released::NotOurs(other) => println!(
                "lock: stage `{}` is held by {other} now; left in place",
                stage.name
            ),
        }
        Ok(())
    })
}

fn files(ctx: &Ctx, args: &FilesArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let graph = ws.graph();
    // `[ci] setup`, else a default: `cargo xtask` builds itself; `ferry` must be installed by
    // setup commands of the repository's own (the check fails the job where it is not).
    let own: Vec<&str> = ws.project.ci.setup.iter().map(String::as_str).collect();
    let setup: &[&str] = if !own.is_empty() {
        &own
    } else if ctx.app.name == "cargo xtask" {
        &[
            "command -v cargo >/dev/null || (curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal)",
            "export PATH=\"$HOME/.cargo/bin:$PATH\" && cargo build --locked --package xtask",
        ]
    } else {
        &[
            "command -v ferry || { echo 'ferry is not installed here: give [ci] setup in ferry.toml the commands that install it' >&2; exit 1; }",
        ]
    };
    let runner = ferry_plan::ci_files::Runner {
        command: ctx.app.name,
        setup,
    };
    let wanted: [(PathBuf, String); 2] = [
        (
            ws.root.join("buildspec-batch.yml"),
            ferry_plan::ci_files::buildspec_batch(graph, &runner),
        ),
        (
            ws.root.join(".github/workflows/deploy.yml"),
            ferry_plan::ci_files::github_workflow(graph, &runner, &ws.project.ci),
        ),
    ];
    if !args.check {
        // Both files are checked before either is written: a link on the way (`.github` pointing
        // elsewhere, say) could lead the write out of the repository.
        for (path, _) in &wanted {
            let rel = path.strip_prefix(&ws.root).unwrap_or(path);
            if let Some(link) = ferry_init::link_on_the_way(&ws.root, rel) {
                anyhow::bail!(
                    "{} is a symbolic link: `batch files` writes only files of the repository itself, never through a link (which may lead out of it); remove the link and run it again",
                    link.display()
                );
            }
        }
    }
    let mut stale = Vec::new();
    for (path, text) in &wanted {
        let rel = path.strip_prefix(&ws.root).unwrap_or(path);
        let shown = rel.display().to_string();
        // Read through a link, it may look current, but neither CI takes it (GitHub does not
        // run a linked workflow file): with --check, a link is stale.
        if args.check && ferry_init::link_on_the_way(&ws.root, rel).is_some() {
            stale.push(format!(
                "{shown} (a symbolic link, which CI does not follow)"
            ));
            continue;
        }
        let now = std::fs::read_to_string(path).ok();
        if now.as_deref() == Some(text.as_str()) {
            println!("{shown}: up to date");
            continue;
        }
        if args.check {
            stale.push(if now.is_none() {
                format!("{shown} (not there: never generated)")
            } else {
                shown
            });
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        std::fs::write(path, text)
            .with_context(|| format!("failed to write {}", path.display()))?;
        println!("{shown}: written");
    }
    if !stale.is_empty() {
        anyhow::bail!(
            "stale: {} (the services' graph, the [ci] rules or the runner that names Ferry's commands changed since they were generated); run `{} batch files` and commit the result",
            stale.join(", "),
            ctx.app.name
        );
    }
    Ok(())
}

/// After a node's deploy: its tests' summary and its exit status (a failure stops its
/// dependents' nodes). A node writes no release: `batch finish` writes the batch's.
pub(crate) async fn end_of_node(
    run: &Run<'_>,
    node: &Node,
    report: &ferry_deploy::DeployReport,
    tests: Option<&ferry_acceptance::Report>,
) -> anyhow::Result<()> {
    crate::cmd::release::announce(run, &report.services, tests, None).await;
    let mut after = crate::cmd::release::AfterMoved::deployed();
    let tests_ok = match tests {
        Some(t) if !t.outcomes.is_empty() => {
            crate::cmd::acceptance::report(run.ctx, run.stage, t, &mut after);
            t.succeeded()
        }
        _ => true,
    };
    if !report.succeeded() {
        return after.finish(Err(anyhow::anyhow!(
            "node `{}` of batch `{}` failed in stage `{}`; the nodes of its dependents must not run. Fix it and retry the batch: it redoes only what is missing",
            node.service,
            node.batch,
            run.stage.name
        )));
    }
    if !tests_ok {
        return after.finish(Err(anyhow::anyhow!(
            "the acceptance tests of `{}` failed in stage `{}` (batch `{}`); its record stays not passed and its dependents' nodes must not run",
            node.service,
            run.stage.name,
            node.batch
        )));
    }
    after.finish(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::batch_id;

    #[test]
    fn batch_ids_are_checked_and_a_long_one_is_quoted_in_part() {
        assert_eq!(batch_id(" github-42 ").as_deref(), Ok("github-42"));
        for bad in ["", " ", "a b", "x\ny", "$(id)", "é"] {
            assert!(batch_id(bad).is_err(), "{bad:?}");
        }
        let long = "a".repeat(3000);
        let err = batch_id(&long).unwrap_err();
        assert!(
            err.contains("… (2860 more characters)` is not a batch id"),
            "{err}"
        );
        assert!(err.len() < 300, "{err}");
    }
}
