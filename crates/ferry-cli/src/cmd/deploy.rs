//! `deploy`: a stage's services that need it, in dependency order, under the stage's lock.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context as _;
use ferry_changes::Repo;
use ferry_ci::CiContext;
use ferry_credentials::StageAws;
use ferry_deploy::{DeployContext, DeployOptions, Event, Source, StageAccess, Tree};
use ferry_graph::Cancel;
use ferry_manifest::{Stage, Workspace};
use ferry_records::RecordStore;
use ferry_stacks::{Method, Progress};

use crate::Ctx;
use crate::cmd::plan::SelectArgs;
use crate::context::runtime;
use crate::ui::{Clock, human, mask, masker, package_event, table};

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The stage: a name from ferry.toml, or any other name for a preview stage (e.g. a branch)
    stage: String,
    #[command(flatten)]
    select: SelectArgs,
    /// At most this many stack operations at once [default: no limit]
    #[arg(long, value_name = "N")]
    concurrency: Option<NonZeroUsize>,
    /// On a stack in UPDATE_ROLLBACK_FAILED, call ContinueUpdateRollback instead of stopping
    #[arg(long)]
    continue_rollback: bool,
    /// Take over the stage's lock if it is stale (its process is gone from this host, or it was
    /// not renewed for 5 minutes), saying whose lock it displaced; a live lock is never taken
    #[arg(long)]
    force_unlock: bool,
    /// Take over existing stacks of this stage's names that have no Ferry tags (first deployed
    /// by another tool); stacks tagged for another project or stage are always refused
    #[arg(long)]
    adopt: bool,
    /// Run each deployed service's acceptance tests right after it deploys (its dependents wait
    /// for them), then those of services deployed at this commit that have not passed yet
    #[arg(long)]
    test: bool,
    /// How long Ferry waits for one stack in all, in seconds: for another operation running on
    /// it, for a change set, and for its own operation
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

/// One line of progress text for a deploy (or remove) event.
pub fn describe(e: &Event) -> String {
    match e {
        Event::Started { service, stack } => format!("{service}: deploying stack {stack}"),
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
fn build_event(e: &ferry_acceptance::BuildEvent) -> String {
    use ferry_acceptance::{BuildEvent, Built};
    match e {
        BuildEvent::Started { command, dir } => {
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
fn progress(clock: Clock) -> Box<dyn Fn(Event) + Send + Sync> {
    let live = std::io::stderr().is_terminal() && !CiContext::from_env().is_ci();
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
                    bar.set_message(mask(&text));
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

pub fn run(ctx: &Ctx, args: &DeployArgs) -> anyhow::Result<()> {
    let clock = Clock::start();
    let ws = ctx.workspace()?;
    let ci = CiContext::from_env();
    // Everything that needs no AWS call first: the stage, the templates, the tree.
    let stage = ws.stage(&args.stage)?;
    ctx.check_services(&args.select.services)?;
    ferry_deploy::check_templates(ws, &args.select.services)?;
    let (tree, source) = Tree::read(ws, &ci)?;
    if !ci.is_pull_request() {
        ferry_deploy::preflight_tree(ws, &stage, &tree)?;
    }
    runtime()?.block_on(async {
        // With --test, the tests' builds start first: they compile while the emulator installs,
        // credentials load and the stacks deploy (a build that is up to date costs a second).
        let builds = (args.test && !ci.is_pull_request()).then(|| {
            let selected = if args.select.services.is_empty() {
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
        if ci.is_pull_request() {
            // Plan what a deploy would do (read only, no lock), and stop.
            let state = ferry_deploy::state::read(ws, &stage, &aws.config, &records).await?;
            let plan = plan_of(ws, &args.select, &stage, &ci, &state)?;
            eprint!("{}", ferry_plan::text(&plan, false));
            if let Some(note) = ferry_deploy::preflight(&plan, ws, &stage, &tree)? {
                println!("{note}");
            }
            return Ok(());
        }
        // Secrets the services read are masked wherever they reappear (outputs, reports).
        ctx.register_secrets(&stage, &aws).await?;
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
        crate::lock::with_lock(
            &records,
            &stage,
            "deploy",
            args.force_unlock,
            &cancel,
            async { deploy_locked(args, &run, source).await },
        )
        .await
    })
}

/// What a deploy works with once it has its stage's AWS access.
struct Run<'a> {
    ctx: &'a Ctx,
    ws: &'a Workspace,
    stage: &'a Stage,
    aws: &'a StageAws,
    records: &'a RecordStore,
    cancel: &'a Cancel,
    clock: Clock,
    /// With --test: the tests' builds, started before anything else.
    builds: Option<&'a ferry_acceptance::Builds>,
}

/// The plan of a stage from its state: bases from the records, drifted stacks deploy.
fn plan_of(
    ws: &ferry_manifest::Workspace,
    select: &SelectArgs,
    stage: &ferry_manifest::Stage,
    ci: &CiContext,
    state: &ferry_deploy::StageState,
) -> anyhow::Result<ferry_plan::Plan> {
    let repo = Repo::open(&ws.root);
    let mut req = select.request(&stage.name, ci);
    state.apply(&mut req);
    ferry_plan::plan(ws, repo.as_ref(), &req)
        .with_context(|| format!("failed to plan stage `{}`", stage.name))
}

/// The deploy itself, while the stage's lock is held.
async fn deploy_locked(args: &DeployArgs, run: &Run<'_>, source: Source) -> anyhow::Result<()> {
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
    let ci = CiContext::from_env();
    let state = ferry_deploy::state::read(ws, stage, config, records)
        .await
        .with_context(|| format!("failed to read the state of stage `{}`", stage.name))?;
    let previous = &state.records;
    let plan = plan_of(ws, &args.select, stage, &ci, &state)?;
    eprint!("{}", ferry_plan::text(&plan, false));
    let orphans: Vec<&str> = previous
        .keys()
        .filter(|s| ws.service(s).is_none())
        .map(String::as_str)
        .collect();
    if !orphans.is_empty() {
        eprintln!(
            "note: records of services that no longer exist: {} (`{} remove {} --orphans` deletes them and their stacks)",
            orphans.join(", "),
            ctx.app.name,
            stage.name
        );
    }

    let to_package: Vec<String> = ferry_deploy::candidates(ws, &plan).into_iter().collect();

    // The package of this commit: made once, reused by every stage; uploaded where missing.
    let prepared = if to_package.is_empty() {
        None
    } else {
        let dir = ws.layout().package();
        let options = ferry_deploy::PrepareOptions {
            request: ferry_deploy::package_request(ws, to_package, &ci)?,
            dir: &dir,
            create_bucket: ctx.local,
        };
        let on = |e: ferry_package::Event| clock.say(&package_event(&e));
        let p = ferry_deploy::prepare(ws, stage, config, &options, &mask, &on)
            .await
            .context("packaging failed; nothing was deployed")?;
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

    // The emulator does not run the SAM transform: --local expands SAM templates itself.
    let local_sam = ctx.local.then(|| LocalSam {
        emulator: ctx.emulator(),
        region: stage.config.region.clone(),
    });
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
    };
    let options = DeployOptions {
        concurrency: args.concurrency,
        engine: ferry_stacks::DeployOptions {
            timeout: Duration::from_secs(args.timeout),
            continue_rollback: args.continue_rollback,
            ..Default::default()
        },
        // The emulator publishes no outputs after a change set: always direct with --local.
        method: ctx.local.then_some(Method::Direct),
        test: args.test,
    };
    let print = progress(clock);
    let report = ferry_deploy::deploy(&deploy_ctx, &plan, &options, &*print).await;
    // With --test: then the services deployed at this commit whose tests have not passed
    // (e.g. they failed last time and nothing changed since).
    let mut tests = None;
    if args.test && !cancel.is_cancelled() {
        let mut t = ferry_acceptance::Report {
            outcomes: report.tests.clone(),
        };
        let tested: Vec<String> = t.outcomes.iter().map(|o| o.service.clone()).collect();
        let now = records
            .read_all()
            .await
            .context("failed to read the stage's deployment records")?;
        let owed = ferry_deploy::tests_owed(ws, stage, &now, &deploy_ctx.source.commit, &tested)?;
        if !owed.is_empty() {
            let access = StageAccess {
                ws,
                stage,
                config,
                records,
                masker: masker(),
            };
            let more =
                crate::cmd::acceptance::run_selected(&access, &now, &owed, args.concurrency, clock)
                    .await?;
            t.outcomes.extend(more.outcomes);
        }
        tests = Some(t);
    }

    let outputs_path = ws.layout().outputs_file(&stage.id);
    report
        .outputs
        .write(&outputs_path)
        .with_context(|| format!("failed to write {}", outputs_path.display()))?;
    let summary = ferry_deploy::summary(&report);
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
        outputs_path.display(),
        report.output_reads,
        state.list_calls,
        clock.seconds()
    );
    if let Some(t) = &tests {
        if t.outcomes.is_empty() {
            println!(
                "acceptance: no tests to run (no deployed service with [acceptance] is waiting for them)"
            );
        } else {
            let outcome = crate::cmd::acceptance::finish(ctx, stage, t);
            if report.succeeded() {
                outcome?;
            }
        }
    }
    if !report.succeeded() {
        anyhow::bail!(
            "the deploy of stage `{}` did not complete; fix the failures above and run it again (it redoes only what is missing)",
            stage.name
        );
    }
    Ok(())
}

/// SAM expansion for the local emulator, with the translator installed beside it.
struct LocalSam {
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
}
