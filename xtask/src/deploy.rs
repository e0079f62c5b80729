//! `deploy`, `remove`, `outputs`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_changes::Repo;
use ferry_ci::CiContext;
use ferry_deploy::{DeployContext, DeployOptions, Event, Source, Tree};
use ferry_graph::Cancel;
use ferry_stacks::{Method, Progress};

use crate::aws::{aws_of, runtime};
use crate::plan::SelectArgs;
use crate::{Ctx, masker};

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

/// One line of progress text for an event.
fn describe(e: &Event) -> String {
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

/// Progress for people: on a terminal (and not in CI), one live line per running service with its
/// latest event, replaced by its result when it finishes; otherwise plain timestamped lines.
fn progress(t0: Instant) -> Box<dyn Fn(Event) + Send + Sync> {
    let live = std::io::stderr().is_terminal() && !CiContext::from_env().is_ci();
    if !live {
        return Box::new(printer(t0));
    }
    let bars = indicatif::MultiProgress::new();
    let lines: std::sync::Mutex<BTreeMap<String, indicatif::ProgressBar>> = Default::default();
    let style = indicatif::ProgressStyle::with_template("{spinner} [{elapsed:>4}] {msg}")
        .expect("valid template");
    Box::new(move |e: Event| {
        let text = masker().mask(&describe(&e));
        let mut lines = lines.lock().expect("progress lock");
        match &e {
            Event::Started { service, .. } => {
                let bar = bars.add(
                    indicatif::ProgressBar::new_spinner()
                        .with_style(style.clone())
                        .with_message(text),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                lines.insert(service.clone(), bar);
            }
            Event::Stack { service, .. } => {
                if let Some(bar) = lines.get(service) {
                    bar.set_message(text);
                }
            }
            Event::Finished { service, .. } => {
                if let Some(bar) = lines.remove(service) {
                    bar.finish_and_clear();
                }
                let _ = bars.println(format!("[{:>6.1}s] {text}", t0.elapsed().as_secs_f64()));
            }
        }
    })
}

/// Prints progress as plain timestamped lines (CI logs, pipes).
fn printer(t0: Instant) -> impl Fn(Event) + Send + Sync {
    move |e: Event| {
        eprintln!(
            "[{:>6.1}s] {}",
            t0.elapsed().as_secs_f64(),
            masker().mask(&describe(&e))
        )
    }
}

/// The working tree a deploy starts from, and the commit it deploys.
fn tree(ws: &ferry_manifest::Workspace, ci: &CiContext) -> anyhow::Result<(Tree, Source)> {
    match Repo::open(&ws.root) {
        Ok(r) => {
            let dirty: Vec<String> = r
                .dirty_paths()
                .with_context(|| {
                    format!(
                        "failed to read the state of the working tree of {}",
                        ws.root.display()
                    )
                })?
                .into_iter()
                .collect();
            let source = Source {
                commit: r.head_commit().map(|c| c.to_string()).unwrap_or_default(),
                dirty: !dirty.is_empty(),
            };
            Ok((Tree::Git { dirty }, source))
        }
        Err(_) => Ok((
            Tree::NotGit,
            Source {
                commit: ci.commit.clone().unwrap_or_default(),
                dirty: false,
            },
        )),
    }
}

/// The templates a deploy of `services` (all when empty) and their dependencies reads, checked
/// before any AWS call.
fn check_templates(ws: &ferry_manifest::Workspace, services: &[String]) -> anyhow::Result<()> {
    let names = if services.is_empty() {
        ws.services.iter().map(|s| s.name.clone()).collect()
    } else {
        ws.graph()
            .with_dependencies(services.iter().map(String::as_str))
    };
    let problems = ferry_package::check_templates(ws, names.iter().filter_map(|n| ws.service(n)));
    if problems.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    anyhow::bail!(
        "{} template problem(s); nothing was deployed:\n  {}",
        list.len(),
        list.join("\n  ")
    )
}

pub fn deploy(ctx: &Ctx, args: &DeployArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let ws = ctx.workspace()?;
    let ci = CiContext::from_env();
    // Everything that needs no AWS call first: the stage, the templates, the tree.
    let stage = ws.stage(&args.stage)?;
    for s in &args.select.services {
        if ws.service(s).is_none() {
            anyhow::bail!(
                "unknown service `{s}`{}",
                ferry_manifest::did_you_mean(s, ws.services.iter().map(|x| x.name.as_str()))
            );
        }
    }
    check_templates(&ws, &args.select.services)?;
    let (tree, source) = tree(&ws, &ci)?;
    if !ci.is_pull_request() {
        ferry_deploy::preflight_tree(&ws, &stage, &tree)?;
    }
    runtime()?.block_on(async {
        let aws = aws_of(ctx, &stage).await?;
        let records = crate::aws::record_store(&ws, &stage, &aws.config);
        if ci.is_pull_request() {
            // Plan what a deploy would do (read only, no lock), and stop.
            let state = ferry_deploy::state::read(&ws, &stage, &aws.config, &records).await?;
            let plan = plan_of(&ws, &args.select, &stage, &ci, &state)?;
            eprint!("{}", ferry_plan::text(&plan, false));
            if let Some(note) = ferry_deploy::preflight(&plan, &ws, &stage, &tree)? {
                println!("{note}");
            }
            return Ok(());
        }
        // Secrets the services read are masked wherever they reappear (outputs, reports).
        crate::aws::register_secrets(&ws, &stage, &aws.config).await?;
        crate::output_dir(&ws)?;
        let cancel = Cancel::new();
        let run = Run {
            ws: &ws,
            stage: &stage,
            config: &aws.config,
            records: &records,
            cancel: &cancel,
            t0,
        };
        crate::lock::with_lock(
            &records,
            &stage,
            "deploy",
            args.force_unlock,
            &cancel,
            async { deploy_locked(ctx, args, &run, source).await },
        )
        .await
    })
}

/// What a command that works on a stage holds.
struct Run<'a> {
    ws: &'a ferry_manifest::Workspace,
    stage: &'a ferry_manifest::Stage,
    config: &'a aws_config::SdkConfig,
    records: &'a ferry_records::RecordStore,
    cancel: &'a Cancel,
    t0: Instant,
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
async fn deploy_locked(
    ctx: &Ctx,
    args: &DeployArgs,
    run: &Run<'_>,
    source: Source,
) -> anyhow::Result<()> {
    let Run {
        ws,
        stage,
        config,
        records,
        cancel,
        t0,
    } = *run;
    let ci = CiContext::from_env();
    let state = ferry_deploy::state::read(ws, stage, config, records)
        .await
        .with_context(|| format!("failed to read the state of stage `{}`", stage.name))?;
    let previous = &state.records;
    let plan = plan_of(ws, &args.select, stage, &ci, &state)?;
    eprint!("{}", ferry_plan::text(&plan, false));
    let orphans: Vec<&String> = previous
        .keys()
        .filter(|s| ws.service(s).is_none())
        .collect();
    if !orphans.is_empty() {
        eprintln!(
            "note: records of services that no longer exist: {} (`cargo xtask remove {} --orphans` deletes them and their stacks)",
            orphans
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            stage.name
        );
    }

    // The package of this commit: made once, reused by every stage; uploaded where missing.
    let to_package: Vec<String> = ferry_deploy::candidates(ws, &plan).into_iter().collect();
    let prepared = if to_package.is_empty() {
        None
    } else {
        let dir = crate::package::package_dir(ws);
        let options = ferry_deploy::PrepareOptions {
            request: crate::package::request(ws, to_package, &ci)?,
            dir: &dir,
            create_bucket: ctx.local,
        };
        let mask = |s: &str| masker().mask(s);
        let p = ferry_deploy::prepare(
            ws,
            stage,
            config,
            &options,
            &mask,
            &crate::package::print_event(t0),
        )
        .await
        .context("packaging failed; nothing was deployed")?;
        if p.upload.uploaded + p.upload.present > 0 {
            eprintln!(
                "[{:>6.1}s] artifacts: {} uploaded ({}), {} already in s3://{}",
                t0.elapsed().as_secs_f64(),
                p.upload.uploaded,
                crate::package::human(p.upload.bytes),
                p.upload.present,
                p.bucket.as_deref().unwrap_or_default()
            );
        }
        Some(p)
    };

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
    let print = progress(t0);
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
        let mut rest =
            ferry_acceptance::select(ws, &stage.name, &now, &deploy_ctx.source.commit, &[], false)?;
        rest.retain(|s| {
            !tested.contains(s) && ws.service(s).is_some_and(|s| s.acceptance.is_some())
        });
        if !rest.is_empty() {
            let more = crate::acceptance::run_selected(
                ws,
                stage,
                config,
                records,
                &now,
                &rest,
                args.concurrency,
                t0,
            )
            .await?;
            t.outcomes.extend(more.outcomes);
        }
        tests = Some(t);
    }

    let dir = ws.root.join(ferry_manifest::OUTPUT_DIR);
    let outputs_path = report
        .outputs
        .write(&dir, &stage.id)
        .with_context(|| format!("failed to write the outputs file under {}", dir.display()))?;
    println!("{}", masker().mask(&ferry_deploy::summary(&report)));
    println!(
        "outputs: {} ({} stack output reads, {} ListStacks); {:.1}s in all",
        outputs_path.display(),
        report.output_reads,
        state.list_calls,
        t0.elapsed().as_secs_f64()
    );
    if let Some(t) = &tests {
        if t.outcomes.is_empty() {
            println!(
                "acceptance: no tests to run (no deployed service with [acceptance] is waiting for them)"
            );
        } else {
            let outcome = crate::acceptance::finish(ws, stage, t);
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

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The stage whose stacks to delete
    stage: String,
    /// Only services whose folder is gone but whose record remains
    #[arg(long)]
    orphans: bool,
    /// Allow removing a protected stage (turns termination protection off first)
    #[arg(long)]
    allow_protected: bool,
    /// Also delete stacks of this stage's names that have no Ferry tags
    #[arg(long)]
    adopt: bool,
    /// Take over the stage's lock if it is stale (see `deploy --help`)
    #[arg(long)]
    force_unlock: bool,
    /// How long Ferry waits for one stack's delete, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

pub fn remove(ctx: &Ctx, args: &RemoveArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let stage = ws.stage(&args.stage)?;
    let options = ferry_deploy::RemoveOptions {
        orphans: args.orphans,
        allow_protected: args.allow_protected,
        adopt: args.adopt,
        timeout: Duration::from_secs(args.timeout),
    };
    ferry_deploy::check_removable(&stage, &options)?;
    runtime()?.block_on(async {
        let aws = aws_of(ctx, &stage).await?;
        let records = crate::aws::record_store(&ws, &stage, &aws.config);
        let cancel = Cancel::new();
        let t0 = Instant::now();
        crate::lock::with_lock(&records, &stage, "remove", args.force_unlock, &cancel, async {
            let previous = records.read_all().await.context("failed to read the stage's deployment records")?;
            let rctx = ferry_deploy::RemoveContext {
                ws: &ws,
                stage: &stage,
                config: &aws.config,
                records: &records,
                previous: &previous,
                cancel: &cancel,
            };
            let report = ferry_deploy::remove(&rctx, &options, &printer(t0)).await?;
            for (service, stack) in &report.deleted {
                println!("deleted {stack} ({service})");
            }
            println!("{} stack(s) deleted from stage `{}`", report.deleted.len(), stage.name);
            if report.cancelled {
                anyhow::bail!("interrupted: the stacks not reached were left in place with their records; run `remove` again to finish");
            }
            Ok(())
        })
        .await
    })
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum OutputsFormat {
    #[default]
    Text,
    Json,
    /// FERRY_OUTPUT_<SERVICE>_<KEY>=value lines
    Env,
}

#[derive(Debug, clap::Args)]
pub struct OutputsArgs {
    stage: String,
    /// Only these services (repeatable)
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    format: OutputsFormat,
}

pub fn outputs(ctx: &Ctx, args: &OutputsArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let stage = ws.stage(&args.stage)?;
    for s in &args.services {
        if ws.service(s).is_none() {
            anyhow::bail!(
                "unknown service `{s}`{}",
                ferry_manifest::did_you_mean(s, ws.services.iter().map(|x| x.name.as_str()))
            );
        }
    }
    runtime()?.block_on(async {
        let aws = aws_of(ctx, &stage).await?;
        // A stack output may echo a secret the services read: masked like all output.
        crate::aws::register_secrets(&ws, &stage, &aws.config).await?;
        let records = crate::aws::record_store(&ws, &stage, &aws.config)
            .read_all()
            .await
            .context("failed to read the stage's deployment records")?;
        let found = ferry_deploy::stage_outputs(&ws, &stage, &aws.config, &records, &args.services)
            .await
            .with_context(|| format!("failed to read the outputs of stage `{}`", stage.name))?;
        let file = found.file.masked(&|v| masker().mask(v));
        let text = match args.format {
            OutputsFormat::Text => file.text(),
            OutputsFormat::Json => file.json(),
            OutputsFormat::Env => file.env(),
        };
        print!("{text}");
        if file.services.is_empty() && found.missing.is_empty() && std::io::stderr().is_terminal() {
            eprintln!("no stacks of stage `{}` exist yet", stage.name);
        }
        if !found.missing.is_empty() {
            let list: Vec<String> = found
                .missing
                .iter()
                .map(|(s, stack, r)| format!("{s} (stack {stack}, recorded as deployed at {} UTC)", ferry_records::format_time(r.deployed_at)))
                .collect();
            anyhow::bail!(
                "the stacks of {} do not exist, though their records say they were deployed (deleted outside Ferry?); `cargo xtask deploy {}` creates them again",
                list.join(", "),
                stage.name
            );
        }
        Ok(())
    })
}
