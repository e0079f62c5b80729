//! `deploy`: a stage's services that need it, in dependency order, under the stage's lock.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context as _;
use ferry_changes::Repo;
use ferry_ci::CiContext;
use ferry_credentials::StageAws;
use ferry_deploy::release::ReleaseInfo;
use ferry_deploy::{DeployContext, DeployOptions, Event, Source, StageAccess, Tree};
use ferry_graph::Cancel;
use ferry_manifest::{Stage, Workspace};
use ferry_records::RecordStore;
use ferry_releases::ReleaseKind;
use ferry_stacks::Progress;

use crate::Ctx;
use crate::cmd::plan::SelectArgs;
use crate::cmd::release::AfterMoved;
use crate::context::runtime;
use crate::ui::{Clock, human, mask, masker, package_event, table};

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The stage: a name from ferry.toml, or any other name for a preview stage (e.g. a branch)
    #[arg(required_unless_present = "from_ci")]
    stage: Option<String>,
    /// Take the stage from the CI build's trigger through the [ci] rules of ferry.toml (branch,
    /// tag or pull request), saying which rule matched; a pull request's build deploys its
    /// preview stage only with a `pull-requests` rule
    #[arg(long, conflicts_with = "stage")]
    from_ci: bool,
    #[command(flatten)]
    select: SelectArgs,
    /// At most this many stack operations at once [default: no limit]
    #[arg(long, value_name = "N", value_parser = crate::ui::concurrency)]
    concurrency: Option<NonZeroUsize>,
    /// On a stack in UPDATE_ROLLBACK_FAILED, call ContinueUpdateRollback instead of stopping
    #[arg(long)]
    continue_rollback: bool,
    #[command(flatten)]
    lock: crate::lock::LockArgs,
    /// Take over existing stacks of this stage's names that have no Ferry tags (first deployed
    /// by another tool), and the stack of a renamed service that kept it (a Serverless
    /// Framework service: tagged for its old name, which no service has now and whose record
    /// names the stack; that record is dropped); stacks tagged for another project or stage,
    /// or for a service that still exists, are always refused
    #[arg(long)]
    adopt: bool,
    /// Run each deployed service's acceptance tests right after it deploys (its dependents wait
    /// for them), then those of services deployed at this commit that have not passed yet
    #[arg(long)]
    test: bool,
    /// How long Ferry waits for one stack in all, in seconds: for another operation running on
    /// it, for a change set, and for its own operation
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = crate::ui::timeout_secs())]
    timeout: u64,
    /// In a stage with `promote-from`, deploy packages that have not passed in the source stage
    /// anyway; the reason and who gave it (the caller's AWS identity) go into the release
    #[arg(long, value_name = "REASON", value_parser = nonempty_reason)]
    override_gate: Option<String>,
    /// Deploy nothing: print and write (target/ferry/reports/review-*.md and .json) what would
    /// change in each stack, and keep it as a pending release for `approve`
    #[arg(long)]
    review: bool,
    /// Deploy STAGE as a preview stage although its name is one slip of the keyboard from a
    /// named stage's (`stagin`, `dve`), which is refused without it: such a name is most likely
    /// that stage, misspelt, and would create a whole new environment
    #[arg(long)]
    preview: bool,
}

/// A reason someone can read later: not empty, one line, no character that would steer the
/// terminal of whoever reads it (an escape sequence, a change of text direction) in the output
/// and the release that keep it.
fn nonempty_reason(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(
            "give a reason, e.g. --override-gate \"hotfix for INC-123, tested by hand\"".into(),
        );
    }
    if t.contains(['\n', '\r']) || t.chars().count() > 500 {
        return Err("the reason must be one line of at most 500 characters".into());
    }
    if let Some(c) = t.chars().find(|c| ferry_ci::unseen(*c)) {
        return Err(format!(
            "the reason holds the character U+{:04X} (a control, line-separating, text-direction or invisible one); write it as plain text",
            u32::from(c)
        ));
    }
    Ok(t.to_string())
}

/// One line of progress text for a deploy (or remove) event.
pub fn describe(e: &Event) -> String {
    match e {
        Event::Started {
            service,
            stack,
            review: true,
            ..
        } => format!("{service}: reviewing stack {stack}"),
        Event::Started {
            service,
            stack,
            check: true,
            ..
        } => format!("{service}: checking stack {stack} against its record"),
        Event::Started { service, stack, .. } => format!("{service}: deploying stack {stack}"),
        Event::Stack {
            service,
            progress: Progress::Event(ev),
        } => {
            let reason = ev
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            format!("{service}: {} {}{reason}", ev.logical_id, ev.status)
        }
        Event::Stack {
            service,
            progress: Progress::Note(n),
        } => format!("{service}: {n}"),
        Event::Finished {
            service,
            result,
            duration,
        } => format!("{service}: {result} in {:.1}s", duration.as_secs_f64()),
    }
}

/// A progress line for an acceptance build.
pub(crate) fn build_event(e: &ferry_acceptance::BuildEvent) -> String {
    use ferry_acceptance::{BuildEvent, Built};
    match e {
        BuildEvent::Started { command, dir } => {
            let dir = if dir.is_empty() {
                "the repository root"
            } else {
                dir.as_str()
            };
            format!("acceptance build started in {dir}: {command}")
        }
        BuildEvent::Finished {
            command,
            built: Built::Ok { took },
        } => format!(
            "acceptance build done in {:.1}s: {command}",
            took.as_secs_f64()
        ),
        BuildEvent::Finished {
            command,
            built: Built::Failed { message, .. },
        } => format!("acceptance build FAILED ({message}): {command}"),
    }
}

/// Progress for people: on a terminal (and not in CI), one live line per running service with its
/// latest event, replaced by its result when it finishes; otherwise plain timestamped lines.
fn progress(clock: Clock, ci: &CiContext) -> Box<dyn Fn(Event) + Send + Sync> {
    let live = std::io::stderr().is_terminal() && !ci.is_ci();
    if !live {
        return Box::new(move |e: Event| clock.say(&describe(&e)));
    }
    let bars = indicatif::MultiProgress::new();
    let lines: std::sync::Mutex<BTreeMap<String, indicatif::ProgressBar>> = Default::default();
    let style = indicatif::ProgressStyle::with_template("{spinner} [{elapsed:>4}] {msg}")
        .expect("valid template");
    Box::new(move |e: Event| {
        let text = describe(&e);
        let mut lines = lines.lock().expect("progress lock");
        match &e {
            Event::Started { service, .. } => {
                let bar = bars.add(
                    indicatif::ProgressBar::new_spinner()
                        .with_style(style.clone())
                        .with_message(mask(&text)),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                lines.insert(service.clone(), bar);
            }
            Event::Stack { service, .. } => {
                if let Some(bar) = lines.get(service) {
                    bar.set_message(ferry_ci::one_line(&mask(&text)).into_owned());
                }
            }
            Event::Finished { service, .. } => {
                if let Some(bar) = lines.remove(service) {
                    bar.finish_and_clear();
                }
                let _ = bars.println(clock.line(&text));
            }
        }
    })
}

/// A batch node's deploy: `service` alone, as a node of `batch` (see `batch node --help`).
pub(crate) struct Node {
    pub service: String,
    pub batch: String,
}

impl DeployArgs {
    /// The deploy a batch node runs: `service` of `stage` (or the stage from CI), with its
    /// dependencies planned from the records so that a pending one stops it.
    pub(crate) fn for_node(
        stage: Option<String>,
        service: &str,
        test: bool,
        timeout: u64,
        adopt: bool,
        continue_rollback: bool,
        lock: crate::lock::LockArgs,
    ) -> DeployArgs {
        DeployArgs {
            from_ci: stage.is_none(),
            stage,
            select: SelectArgs {
                since: None,
                services: vec![service.to_string()],
                with_dependents: false,
                all: false,
                strict: false,
            },
            concurrency: None,
            continue_rollback,
            lock,
            adopt,
            test,
            timeout,
            override_gate: None,
            review: false,
            preview: false,
        }
    }
}

pub fn run(ctx: &Ctx, args: &DeployArgs) -> anyhow::Result<()> {
    run_with(ctx, args, None)
}

/// A deploy, or with `node` one batch node's deploy of one service under its batch's lock.
pub(crate) fn run_with(ctx: &Ctx, args: &DeployArgs, node: Option<&Node>) -> anyhow::Result<()> {
    let clock = Clock::start();
    let ws = ctx.workspace()?;
    let ci = ctx.ci();
    // Everything that needs no AWS call first: the stage, the templates, the tree.
    let (stage, from_ci) = match &args.stage {
        Some(name) => (ws.stage(name)?, false),
        None => match crate::cmd::release::stage_from_ci(ws, ci)? {
            Some(stage) => (stage, true),
            None => return Ok(()),
        },
    };
    if stage.config.approval && !args.review {
        anyhow::bail!(
            "stage `{}` needs review and approval (approval = true in ferry.toml): run `{} deploy {} --review`, then `{} approve {} <release>`",
            stage.name,
            ctx.app.name,
            stage.name,
            ctx.app.name,
            stage.name
        );
    }
    // A pull request's build only plans, unless [ci] gives pull requests a preview stage and
    // the stage came from it.
    let plan_only = ci.is_pull_request() && !from_ci;
    if args.preview && !stage.preview {
        return Err(crate::UsageError(format!(
            "--preview says the stage is a preview, but `{}` is a named stage of ferry.toml: leave --preview out",
            stage.name
        ))
        .into());
    }
    ws.check_preview_stacks(&stage)?;
    ctx.check_services(&args.select.services)?;
    ferry_deploy::check_templates(ws, &args.select.services)?;
    let (tree, source) = Tree::read(ws, ci)?;
    // A project in a folder of a repository, not at its top: said, as `validate` says it
    // (refused, it would block a rollback of an `infra/` project that deployed this way).
    if let Err(e @ ferry_changes::BaseUnavailable::NotRepositoryRoot { .. }) =
        ferry_changes::Repo::open(&ws.root)
    {
        crate::ui::note(&format!(
            "warning: {e}: every deploy deploys every service, and records no commit"
        ));
    }
    if !plan_only {
        ferry_deploy::preflight_tree(ws, &stage, &tree)?;
    }
    runtime()?.block_on(async {
        // With --test, the tests' builds start first: they compile while the emulator installs,
        // credentials load and the stacks deploy (a build that is up to date costs a second).
        let builds = (args.test && !plan_only && !args.review).then(|| {
            let selected = if let Some(n) = node {
                std::collections::BTreeSet::from([n.service.clone()])
            } else if args.select.services.is_empty() {
                ws.services.iter().map(|s| s.name.clone()).collect()
            } else {
                ws.graph()
                    .with_dependencies(args.select.services.iter().map(String::as_str))
            };
            ferry_acceptance::Builds::start(
                ws,
                selected.iter().map(String::as_str),
                masker(),
                move |e| clock.say(&build_event(&e)),
            )
        });
        let aws = ctx.aws(&stage).await?;
        let records = ctx.records(&stage, &aws)?;
        // A named stage misspelt (`deploy stagin`) would create every stack of a new preview:
        // refused unless told, while that preview has nothing deployed (one that has, `dev2`
        // beside `dev`, is deployed as it was).
        if !from_ci
            && node.is_none()
            && !args.preview
            && let Some(meant) = ws.misspelt_stage(&stage)
            && records.read_all().await.is_ok_and(|r| r.is_empty())
        {
            anyhow::bail!(
                "`{}` is no stage of ferry.toml but one slip from `{meant}`, and it has no deployment record: a deploy would create a new preview stage of that name, with a stack of every service; did you mean `{meant}` (`{} deploy {meant}`)? To deploy a preview of that name, add --preview",
                stage.name,
                ctx.app.name
            );
        }
        if plan_only {
            // Plan what a deploy would do (read only, no lock), and stop.
            let mut state = ferry_deploy::state::read(ws, &stage, &aws.config, &records).await?;
            if args.select.since.is_none() {
                state.describe_unrecorded(ws, &stage, &aws.config).await;
            }
            let plan = plan_of(ws, &args.select, &stage, ci, from_ci, &state)?;
            eprint!("{}", ferry_plan::text(&plan, false));
            if let Some(note) = ferry_deploy::preflight(&plan, ws, &stage, &tree)? {
                println!("{note}");
            }
            return Ok(());
        }
        // Secrets the services read are masked wherever they reappear (outputs, reports).
        let inlined = ctx.register_secrets(&stage, &aws).await?;
        for (service, name) in inlined.ssm {
            crate::ui::note(&format!(
                "warning: {service} reads SecureString `{name}` with ${{ssm:…}}, so the framework writes its value, in clear, into the template it compiles, which Ferry keeps (target/ferry/package) and uploads to the stage's artifact bucket as it keeps every template; have the function read the secret when it runs (give it the parameter's name, not its value)"
            ));
        }
        for (service, var) in inlined.env {
            crate::ui::note(&format!(
                "warning: {}",
                ferry_serverless::env_secret_warning(&service, &var)
            ));
        }
        ctx.output_dir()?;
        let cancel = Cancel::new();
        let run = Run {
            ctx,
            ws,
            stage: &stage,
            aws: &aws,
            records: &records,
            cancel: &cancel,
            clock,
            builds: builds.as_ref(),
        };
        match node {
            None => {
                crate::lock::with_lock(
                    ci.build_id.as_deref(),
                    &records,
                    &stage,
                    "deploy",
                    args.lock,
                    &cancel,
                    async { deploy_locked(args, &run, source, None).await },
                )
                .await
            }
            Some(node) => deploy_node(args, &run, node, source, ci.build_id.as_deref()).await,
        }
    })
}

/// A batch node's deploy: with --wait-lock, it waits while another run holds the stage, then
/// checks what would refuse it (the stage as that run left it), then joins the batch's lock;
/// taken first by another waiter, all of it again while the time lasts.
async fn deploy_node(
    args: &DeployArgs,
    run: &Run<'_>,
    node: &Node,
    source: Source,
    build: Option<&str>,
) -> anyhow::Result<()> {
    let Run {
        stage,
        records,
        cancel,
        ..
    } = *run;
    let commit = source.commit.clone();
    let probe = crate::lock::batch_holder(build, stage, &node.batch);
    let mut wait = crate::lock::Wait::new(args.lock.wait_lock);
    // A refusal by another run's lock once the time is up, saying how long it waited.
    let refused = |e: anyhow::Error, said: String| {
        if said.is_empty() {
            e
        } else {
            e.context(format!("node `{}` not started{said}", node.service))
        }
    };
    loop {
        wait.turn(records, stage, &probe).await?;
        wait.stop_if_signalled(stage).await?;
        if let Some(other) = refusal_before_lock(args, run, node).await? {
            // Another run's lock, so nothing was checked: never joined unchecked.
            if wait.time_left() {
                continue;
            }
            let e = crate::lock::refused_by(stage, &node.batch, other);
            return Err(refused(e, wait.said()));
        }
        wait.stop_if_signalled(stage).await?;
        let joined = crate::lock::with_batch_lock(
            build,
            records,
            stage,
            crate::lock::BatchNode {
                batch: &node.batch,
                service: &node.service,
                commit: &commit,
            },
            args.lock.force_unlock,
            cancel,
            |release| {
                let (wait, source) = (&mut wait, source.clone());
                async move {
                    // A signal as the node marked itself and joined (watched since its first
                    // look): no work; the batch keeps the lock, as after any stopped node.
                    if let Some(name) = wait.signalled().await {
                        anyhow::bail!(
                            "stopped ({name}) as the lock was joined, before any work; the batch keeps the stage's lock (run this node again, or `batch finish` releases it)"
                        );
                    }
                    deploy_locked(args, run, source, Some((node, release))).await
                }
            },
        )
        .await;
        match joined {
            Err(e) if crate::lock::refused_by_live_lock(&e) && wait.time_left() => {}
            Err(e) if crate::lock::refused_by_live_lock(&e) => return Err(refused(e, wait.said())),
            other => return other,
        }
    }
}

/// What a deploy (or promote, or rollback) works with once it has its stage's AWS access.
pub(crate) struct Run<'a> {
    pub ctx: &'a Ctx,
    pub ws: &'a Workspace,
    pub stage: &'a Stage,
    pub aws: &'a StageAws,
    pub records: &'a RecordStore,
    pub cancel: &'a Cancel,
    pub clock: Clock,
    /// With --test: the tests' builds, started before anything else.
    pub builds: Option<&'a ferry_acceptance::Builds>,
}

impl Run<'_> {
    /// What the acceptance harness and the announcements need of this run's stage.
    pub(crate) fn access(&self) -> StageAccess<'_> {
        StageAccess {
            ws: self.ws,
            stage: self.stage,
            config: &self.aws.config,
            records: self.records,
            masker: masker(),
            cancel: self.cancel,
        }
    }
}

/// The plan of a stage from its state: bases from the records, drifted stacks deploy.
fn plan_of(
    ws: &ferry_manifest::Workspace,
    select: &SelectArgs,
    stage: &ferry_manifest::Stage,
    ci: &CiContext,
    from_ci: bool,
    state: &ferry_deploy::StageState,
) -> anyhow::Result<ferry_plan::Plan> {
    let repo = Repo::open(&ws.root);
    let mut req = select.request(&stage.name, ci);
    req.from_ci = from_ci;
    state.apply(&mut req);
    let mut plan = ferry_plan::plan(ws, repo.as_ref(), &req)
        .with_context(|| format!("failed to plan stage `{}`", stage.name))?;
    ferry_deploy::mark_checks(ws, &mut plan, &state.records);
    plan.notes.extend(state.move_notes(ws, stage));
    Ok(plan)
}

/// A batch node about to take the stage's lock (there is none, or a stale one it may take
/// over) first checks, without it, what would refuse its deploy at once: a commit older than
/// the stage's or a shallow clone (in CI), dependencies with something still to deploy. Nodes
/// never release the lock (their siblings share it), so one refused after taking it would leave
/// the stage locked for the 60 minutes a batch's lock lasts. The locked run checks again, on
/// what it reads then. Under another run's live lock nothing is checked (what that run is
/// deploying is no reason to name): that run is returned, and the node waits for it or is
/// refused, naming it.
async fn refusal_before_lock(
    args: &DeployArgs,
    run: &Run<'_>,
    node: &Node,
) -> anyhow::Result<Option<ferry_records::LockHolder>> {
    let Run {
        ctx,
        ws,
        stage,
        aws,
        records,
        ..
    } = *run;
    let lock = records
        .lock_state()
        .await
        .with_context(|| format!("failed to read the lock of stage `{}`", stage.name))?;
    match lock {
        // Its batch's: joined, with nothing to check before.
        Some(l) if l.holder.batch.as_deref() == Some(node.batch.as_str()) => return Ok(None),
        // Another run's, live: not checked (the stage may move on before this node's turn).
        Some(l) if l.staleness().is_none() => return Ok(Some(l.holder)),
        _ => {}
    }
    let state = ferry_deploy::state::read(ws, stage, &aws.config, records)
        .await
        .with_context(|| format!("failed to read the state of stage `{}`", stage.name))?;
    let plan = plan_of(
        ws,
        &args.select,
        stage,
        ctx.ci(),
        args.stage.is_none(),
        &state,
    )?;
    let commit = plan.head.commit.clone().unwrap_or_default();
    let refused = ferry_deploy::check_not_behind(&plan, ctx.ci())
        .map_err(anyhow::Error::from)
        .and_then(|()| node_tests_owed(args, ws, stage, &state.records, &commit))
        .and_then(|owed| {
            ferry_deploy::batch::node_selection(ws, &plan, &state.records, &owed, &node.service)
                .map(drop)
                .map_err(anyhow::Error::from)
        });
    if refused.is_err() {
        eprint!("{}", ferry_plan::text(&plan, false));
    }
    refused.with_context(|| {
        format!(
            "node `{}` of batch `{}` refused before taking the lock of stage `{}` (left as it was)",
            node.service, node.batch, stage.name
        )
    })?;
    Ok(None)
}

/// With `--test`, the tests a node's run owes at `commit` ([`ferry_deploy::tests_owed`]): a
/// dependency among them stops the node, as it skips its dependents on one machine.
fn node_tests_owed(
    args: &DeployArgs,
    ws: &ferry_manifest::Workspace,
    stage: &ferry_manifest::Stage,
    records: &BTreeMap<String, ferry_records::Record>,
    commit: &str,
) -> anyhow::Result<BTreeSet<String>> {
    Ok(match args.test {
        true => ferry_deploy::tests_owed(ws, stage, records, commit, &[])?,
        false => BTreeSet::new(),
    })
}

/// The deploy itself, while the stage's lock is held. A batch node (with when its batch took
/// the lock) deploys its service alone and leaves the release to `batch finish`.
async fn deploy_locked(
    args: &DeployArgs,
    run: &Run<'_>,
    source: Source,
    node: Option<(&Node, String)>,
) -> anyhow::Result<()> {
    let Run {
        ctx,
        ws,
        stage,
        aws,
        records,
        cancel,
        clock,
        builds,
    } = *run;
    let config = &aws.config;
    let ci = ctx.ci();
    let mut state = ferry_deploy::state::read(ws, stage, config, records)
        .await
        .with_context(|| format!("failed to read the state of stage `{}`", stage.name))?;
    if args.select.since.is_none() {
        state.describe_unrecorded(ws, stage, config).await;
    }
    let previous = &state.records;
    let plan = plan_of(ws, &args.select, stage, ci, args.stage.is_none(), &state)?;
    eprint!("{}", ferry_plan::text(&plan, false));
    ferry_deploy::check_not_behind(&plan, ci)?;
    // Two services this run deploys, one importing the other's export without depending on
    // it: nothing orders them, and the import may fail ("No export named …"), as validate warns.
    if plan.order.len() > 1 {
        let deploying = |s: &str| plan.order.iter().any(|o| o == s);
        for u in ferry_package::unlinked_importers(&ferry_package::Templates::new(ws))
            .iter()
            .filter(|u| deploying(&u.importer) && deploying(&u.exporter))
        {
            eprintln!("{}", mask(&format!("warning: {u}")));
        }
    }
    // Those the plan does not already name as removed (their record's commit is missing here).
    let orphans: Vec<&str> = previous
        .keys()
        .filter(|s| ws.service(s).is_none() && plan.service(s).is_none())
        .map(String::as_str)
        .collect();
    if !orphans.is_empty() {
        eprintln!(
            "note: records of services that no longer exist: {} (`{} remove {} --orphans` deletes them and their stacks; a record of a commit this checkout does not descend from needs --any-commit too)",
            orphans.join(", "),
            ctx.app.name,
            stage.name
        );
    }

    let selection = match &node {
        Some((n, _)) => {
            let owed = node_tests_owed(args, ws, stage, previous, &source.commit)?;
            Some(ferry_deploy::batch::node_selection(
                ws, &plan, previous, &owed, &n.service,
            )?)
        }
        None => None,
    };
    // With --test: the services whose tests are owed are tested in the run, in graph order
    // (packaged like any other it checks).
    let tests_owed: BTreeSet<String> = if args.test && !args.review && node.is_none() {
        ferry_deploy::tests_owed(ws, stage, previous, &source.commit, &[])?
            .into_iter()
            .filter(|s| previous.contains_key(s))
            .collect()
    } else {
        BTreeSet::new()
    };
    let to_package: Vec<String> = match &selection {
        Some(s) => s.candidates.iter().cloned().collect(),
        None => ferry_deploy::candidates(ws, &plan, previous)
            .into_iter()
            .chain(tests_owed.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };

    // The package of this commit: made once, reused by every stage; uploaded where missing.
    let prepared = if to_package.is_empty() {
        None
    } else {
        let dir = ws.layout().package();
        let options = ferry_deploy::PrepareOptions {
            request: ferry_deploy::package_request(ws, to_package, ci)?,
            dir: &dir,
            create_bucket: ctx.local,
            cancel: run.cancel,
        };
        let on = |e: ferry_package::Event| clock.say(&package_event(&e));
        let p = ferry_deploy::prepare(ws, stage, config, &options, &mask, &on).await;
        // A cancelled run (Ctrl-C, SIGTERM, its lock lost) stops a running build too: say so,
        // not that packaging failed.
        let cancelled = matches!(
            &p,
            Err(ferry_deploy::PrepareError::Cancelled { .. }
                | ferry_deploy::PrepareError::Package(
                    ferry_package::PackageError::Cancelled { .. }
                ))
        );
        let p = p.context(if cancelled {
            "packaging stopped as the run was cancelled (interrupted, or its lock lost); nothing was deployed"
        } else {
            "packaging failed; nothing was deployed"
        })?;
        if p.upload.uploaded + p.upload.present > 0 {
            clock.say(&format!(
                "artifacts: {} uploaded ({}), {} already in s3://{}",
                p.upload.uploaded,
                human(p.upload.bytes),
                p.upload.present,
                p.bucket.as_deref().unwrap_or_default()
            ));
        }
        Some(p)
    };

    // A stage with promote-from takes only what passed in its source stage.
    let (gate_override, archives) = match &stage.config.promote_from {
        Some(from) => gate(args, run, &plan, prepared.as_ref(), previous, from).await?,
        None => (None, None),
    };
    // The nodes of a batch make one release: its id is the batch's (see `with_batch_lock`).
    let release_id = match &node {
        Some((_, release)) => release.clone(),
        None => ferry_releases::new_id(ferry_records::now_millis(), &source.commit),
    };
    let other_stages = ctx.other_stages(stage).await?;
    let commit = source.commit.clone();
    // A release a stopped run left unwritten, before this run's deploys overwrite its records.
    if !args.review {
        crate::cmd::release::recover_releases(run, previous, ReleaseKind::Deploy, &release_id)
            .await;
    }

    // The emulator does not run the SAM transform: --local expands SAM templates itself.
    let local_sam = local_sam(ctx, stage);
    let deploy_ctx = DeployContext {
        ws,
        stage,
        config,
        records,
        previous,
        source,
        masker: masker(),
        cancel,
        package: prepared.as_ref(),
        adopt: args.adopt,
        builds,
        expand_sam: local_sam
            .as_ref()
            .map(|l| l as &dyn ferry_deploy::ExpandSam),
        release: Some(ferry_deploy::ReleaseStamp {
            id: &release_id,
            kind: ReleaseKind::Deploy,
            by: &aws.identity.arn,
            review: None,
            restores: None,
            from: None,
        }),
        expected_archives: archives.as_ref(),
        declared_parameters_only: false,
        other_stages: &other_stages,
        fixed_parameters: None,
    };
    let mut options = DeployOptions::for_run(
        args.concurrency,
        Duration::from_secs(args.timeout),
        ctx.local,
    );
    options.engine.continue_rollback = args.continue_rollback;
    options.test = args.test && !args.review;
    options.review = args.review;
    options.tests_owed = tests_owed;
    let print = progress(clock, ctx.ci());
    let report = match &selection {
        Some(s) => ferry_deploy::deploy_selection(&deploy_ctx, s, &options, &*print).await,
        None => ferry_deploy::deploy(&deploy_ctx, &plan, &options, &*print).await,
    };
    let info = ReleaseInfo {
        gate_override,
        ..ReleaseInfo::new(
            release_id.clone(),
            ReleaseKind::Deploy,
            commit,
            &aws.identity.arn,
        )
    };
    if args.review {
        let mut after = AfterMoved::reviewed();
        print_summary(ws, stage, &report, state.list_calls, clock, &mut after);
        return after.finish(crate::cmd::release::finish_review(run, info, &report).await);
    }
    // With --test: then the services deployed at this commit whose tests have not passed
    // (e.g. they failed last time and nothing changed since). From here on the stacks moved:
    // whatever fails, the run goes on to its release, reports and on-test-failure rollback.
    let mut after = AfterMoved::deployed();
    let mut tests = None;
    if args.test && !cancel.is_cancelled() {
        let mut t = ferry_acceptance::Report {
            outcomes: report.tests.clone(),
        };
        let tested: Vec<String> = t.outcomes.iter().map(|o| o.service.clone()).collect();
        let only = node.as_ref().map(|(n, _)| n.service.as_str());
        let more = owed_tests(
            run,
            &deploy_ctx.source.commit,
            &tested,
            only,
            args.concurrency,
        );
        if let Some(mut more) = after.keep("the acceptance tests still owed", more.await) {
            crate::cmd::acceptance::keep_unmarked(&mut after, &mut more);
            t.outcomes.extend(more.report.outcomes);
        }
        tests = Some(t);
    }

    print_summary(ws, stage, &report, state.list_calls, clock, &mut after);
    if let Some((n, _)) = node {
        after.keep(
            "writing the Markdown report",
            write_markdown(ws, stage, &report, tests.as_ref(), None),
        );
        let end = crate::cmd::batch::end_of_node(run, n, &report, tests.as_ref()).await;
        return after.finish(end);
    }
    let written = crate::cmd::release::finish_release(run, info, tests.is_some()).await;
    let release = after.keep("writing the release", written).flatten();
    after.keep(
        "writing the Markdown report",
        write_markdown(ws, stage, &report, tests.as_ref(), release.as_ref()),
    );
    let end = crate::cmd::release::end_of_run(
        run,
        ("deploy", None),
        &report,
        tests.as_ref(),
        (&release_id, release.as_ref(), previous),
        (args.concurrency, args.timeout),
        &mut after,
    )
    .await;
    after.finish(end)
}

/// The acceptance tests of the services deployed at `commit` that have not passed and were not
/// just `tested` (only `only`'s, for a batch node), run now.
async fn owed_tests(
    run: &Run<'_>,
    commit: &str,
    tested: &[String],
    only: Option<&str>,
    concurrency: Option<NonZeroUsize>,
) -> anyhow::Result<ferry_deploy::Tested> {
    let now = run
        .records
        .read_all()
        .await
        .context("failed to read the stage's deployment records")?;
    let mut owed = ferry_deploy::tests_owed(run.ws, run.stage, &now, commit, tested)?;
    if let Some(only) = only {
        owed.retain(|s| s == only);
    }
    if owed.is_empty() {
        return Ok(ferry_deploy::Tested::default());
    }
    crate::cmd::acceptance::run_selected(&run.access(), &now, &owed, concurrency, run.clock).await
}

/// Writes the outputs file and prints the summary of a run (also when the file cannot be
/// written: that failure is kept in `after` as "writing the outputs file").
pub(crate) fn print_summary(
    ws: &Workspace,
    stage: &Stage,
    report: &ferry_deploy::DeployReport,
    list_calls: usize,
    clock: Clock,
    after: &mut AfterMoved,
) {
    let outputs_path = ws.layout().outputs_file(&stage.id);
    // The table is printed even when the outputs file cannot be written.
    let written = report
        .outputs
        .write(&outputs_path)
        .with_context(|| format!("failed to write {}", outputs_path.display()));
    let summary = ferry_deploy::summary(report);
    print!(
        "{}",
        mask(&table(ferry_deploy::Summary::HEADER, &summary.rows))
    );
    for line in &summary.details {
        println!("{}", mask(line));
    }
    println!();
    println!(
        "outputs: {} ({} stack output reads, {} ListStacks); {:.1}s in all",
        if written.is_ok() {
            outputs_path.display().to_string()
        } else {
            "not written".to_string()
        },
        report.output_reads,
        list_calls,
        clock.seconds()
    );
    after.keep("writing the outputs file", written);
}

/// The deploy as Markdown (masked): `target/ferry/reports/deploy-<stage id>.md`, and appended
/// to `$GITHUB_STEP_SUMMARY` when GitHub Actions names one.
fn write_markdown(
    ws: &Workspace,
    stage: &Stage,
    report: &ferry_deploy::DeployReport,
    tests: Option<&ferry_acceptance::Report>,
    release: Option<&ferry_releases::Release>,
) -> anyhow::Result<()> {
    let md = mask(&ferry_deploy::markdown(
        &stage.name,
        report,
        tests,
        release.map(|r| r.id.as_str()),
    ));
    let path = ws.layout().deploy_summary(&stage.id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    std::fs::write(&path, &md).with_context(|| format!("failed to write {}", path.display()))?;
    if let Some(step) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&step)
            .with_context(|| {
                format!(
                    "failed to open $GITHUB_STEP_SUMMARY ({})",
                    step.to_string_lossy()
                )
            })?;
        writeln!(f, "{md}").context("failed to append to $GITHUB_STEP_SUMMARY")?;
    }
    Ok(())
}

/// The gate of a stage with `promote-from`: every service this deploy would change must have
/// passed in the source stage (read with that stage's own credentials). Gives the override to
/// record (with --override-gate) and the archives services compiled per stage must reproduce.
async fn gate(
    args: &DeployArgs,
    run: &Run<'_>,
    plan: &ferry_plan::Plan,
    prepared: Option<&ferry_deploy::Prepared>,
    current: &BTreeMap<String, ferry_records::Record>,
    from: &str,
) -> anyhow::Result<(
    Option<ferry_releases::GateOverride>,
    Option<BTreeMap<String, BTreeMap<String, String>>>,
)> {
    let Run { ctx, ws, stage, .. } = *run;
    let candidates = ferry_deploy::release::gate_candidates(ws, plan, prepared, current);
    if candidates.is_empty() {
        return Ok((None, None));
    }
    let (_, source_records) = ctx.records_of(&ws.stage(from)?, " for the gate").await?;
    let by = run.aws.identity.arn.as_str();
    let outcome = ferry_deploy::release::pass_gate(
        ws,
        stage,
        from,
        &source_records,
        &candidates,
        args.override_gate.as_deref().map(|reason| (by, reason)),
    )?;
    match &outcome.overridden {
        None => run.clock.say(&format!(
            "gate: {} service(s) passed in `{from}`",
            candidates.len()
        )),
        Some(o) => run.clock.say(&format!(
            "gate OVERRIDDEN by {}: {} had not passed in `{from}` ({})",
            o.by,
            o.services.join(", "),
            o.reason
        )),
    }
    Ok((outcome.overridden, Some(outcome.archives)))
}

/// SAM expansion for `--local`, where the emulator does not run the transform.
pub(crate) fn local_sam(ctx: &Ctx, stage: &Stage) -> Option<LocalSam> {
    ctx.local.then(|| LocalSam {
        emulator: ctx.emulator(),
        region: stage.config.region.clone(),
    })
}

/// SAM expansion for the local emulator, with the translator installed beside it.
pub(crate) struct LocalSam {
    emulator: ferry_local::Emulator,
    region: String,
}

impl ferry_deploy::ExpandSam for LocalSam {
    fn expand(
        &self,
        template: &serde_json::Value,
        parameters: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, String> {
        self.emulator
            .expand_sam(template, parameters, &self.region)
            .map_err(|e| e.to_string())
    }

    fn expand_all(
        &self,
        requests: &[(
            &serde_json::Value,
            &std::collections::BTreeMap<String, String>,
        )],
    ) -> Vec<Result<String, String>> {
        match self.emulator.expand_sam_all(requests, &self.region) {
            Ok(all) => all,
            Err(e) => requests.iter().map(|_| Err(e.to_string())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gate_override_reason_is_one_plain_line() {
        assert_eq!(
            super::nonempty_reason(" hotfix INC-1, tested by hand ").as_deref(),
            Ok("hotfix INC-1, tested by hand")
        );
        for bad in [
            "x \u{1b}]0;pwned\u{7}",
            "x \u{1b}[31mRED",
            "fix \u{202e}dlrow",
            "a\tb",
            "a\u{2028}b",
            "a\u{200b}b",
            "a\u{feff}b",
        ] {
            let e = super::nonempty_reason(bad).unwrap_err();
            assert!(
                e.contains("the reason holds the character U+"),
                "{bad:?}: {e}"
            );
        }
        assert!(super::nonempty_reason("a\nb").is_err());
        assert!(super::nonempty_reason("   ").is_err());
    }
}
