//! `deploy`, `remove`, `outputs`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_changes::Repo;
use ferry_ci::CiContext;
use ferry_deploy::{DeployContext, DeployOptions, Event, Source};
use ferry_graph::Cancel;
use ferry_outputs::OutputCache;
use ferry_records::LockHolder;
use ferry_stacks::{Engine, Method, Progress};

use crate::aws::{runtime, stage_aws};
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
    /// Take over the stage's lock from a deploy that died
    #[arg(long)]
    force_unlock: bool,
    /// Run each deployed service's acceptance tests right after it deploys (its dependents wait
    /// for them), then those of services deployed at this commit that have not passed yet
    #[arg(long)]
    test: bool,
    /// How long one stack operation may take, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    timeout: u64,
}

fn holder(ci: &CiContext) -> LockHolder {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    LockHolder {
        who: env("USER")
            .or_else(|| env("USERNAME"))
            .unwrap_or_else(|| "unknown".into()),
        host: env("HOSTNAME")
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into()),
        build: ci.build_id.clone(),
        pid: std::process::id(),
        since: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
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

pub fn deploy(ctx: &Ctx, args: &DeployArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let t0 = Instant::now();
        let ws = ctx.workspace()?;
        let ci = CiContext::from_env();
        let (stage, aws) = stage_aws(ctx, &args.stage).await?;
        let records = crate::aws::record_store(&ws, &stage, &aws.config);
        let previous = records.read_all().await.context("failed to read the stage's deployment records")?;
        let repo = Repo::open(&ws.root);
        let mut req = args.select.request(&args.stage, &ci);
        req.bases = previous.iter().map(|(k, r)| (k.clone(), r.commit.clone())).collect();
        let plan = ferry_plan::plan(&ws, repo.as_ref(), &req).with_context(|| format!("failed to plan stage `{}`", stage.name))?;
        let (commit, dirty) = match &repo {
            Ok(r) => (r.head_commit().map(|c| c.to_string()).unwrap_or_default(), r.is_dirty().unwrap_or(true)),
            Err(_) => (ci.commit.clone().unwrap_or_default(), false),
        };
        if let Some(note) = ferry_deploy::preflight(&plan, &stage, dirty)? {
            println!("{note}");
            return Ok(());
        }
        eprint!("{}", ferry_plan::text(&plan, false));
        let orphans: Vec<&String> = previous.keys().filter(|s| ws.service(s).is_none()).collect();
        if !orphans.is_empty() {
            eprintln!("note: records of services that no longer exist: {} (`cargo xtask remove {} --orphans` deletes them and their stacks)", orphans.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "), stage.name);
        }

        // The package of this commit: made once, reused by every stage; uploaded where missing.
        let to_package: Vec<String> = ferry_deploy::candidates(&ws, &plan).into_iter().collect();
        let prepared = if to_package.is_empty() {
            None
        } else {
            let dir = crate::package::package_dir(&ws);
            let options = ferry_deploy::PrepareOptions {
                request: crate::package::request(&ws, to_package, &ci)?,
                dir: &dir,
                create_bucket: ctx.local,
            };
            let mask = |s: &str| masker().mask(s);
            let p = ferry_deploy::prepare(&ws, &stage, &aws.config, &options, &mask, &crate::package::print_event(t0))
                .await
                .context("packaging failed; nothing was deployed")?;
            if p.upload.uploaded + p.upload.present > 0 {
                eprintln!("[{:>6.1}s] artifacts: {} uploaded ({}), {} already in s3://{}", t0.elapsed().as_secs_f64(), p.upload.uploaded, crate::package::human(p.upload.bytes), p.upload.present, p.bucket.as_deref().unwrap_or_default());
            }
            Some(p)
        };

        records.lock(&holder(&ci), args.force_unlock).await?;
        let cancel = Cancel::new();
        let deploy_ctx = DeployContext {
            ws: &ws,
            stage: &stage,
            config: &aws.config,
            records: &records,
            previous: &previous,
            source: Source { commit, dirty },
            masker: masker(),
            cancel: &cancel,
            package: prepared.as_ref(),
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
        let run = ferry_deploy::deploy(&deploy_ctx, &plan, &options, &*print);
        tokio::pin!(run);
        let report = tokio::select! {
            r = &mut run => r,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: starting nothing new, letting running stack operations finish (Ctrl-C again to abort)");
                cancel.cancel();
                run.await
            }
        };
        // With --test: then the services deployed at this commit whose tests have not passed
        // (e.g. they failed last time and nothing changed since).
        let mut tests = None;
        if args.test && !cancel.is_cancelled() {
            let mut t = ferry_acceptance::Report { outcomes: report.tests.clone() };
            let tested: Vec<String> = t.outcomes.iter().map(|o| o.service.clone()).collect();
            let now = records.read_all().await.context("failed to read the stage's deployment records")?;
            let mut rest = ferry_acceptance::select(&ws, &stage.name, &now, &deploy_ctx.source.commit, &[], false)?;
            rest.retain(|s| !tested.contains(s) && ws.service(s).is_some_and(|s| s.acceptance.is_some()));
            if !rest.is_empty() {
                let more = crate::acceptance::run_selected(&ws, &stage, &aws.config, &records, &now, &rest, args.concurrency, t0).await?;
                t.outcomes.extend(more.outcomes);
            }
            tests = Some(t);
        }
        let unlocked = records.unlock().await;

        let dir = ws.root.join("target").join("ferry");
        let outputs_path = report.outputs.write(&dir, &stage.id).with_context(|| format!("failed to write the outputs file under {}", dir.display()))?;
        println!("{}", masker().mask(&ferry_deploy::summary(&report)));
        println!("outputs: {} ({} stack output reads); {:.1}s in all", outputs_path.display(), report.output_reads, t0.elapsed().as_secs_f64());
        unlocked.context("failed to release the stage's lock; release it with --force-unlock on the next deploy")?;
        if let Some(t) = &tests {
            if t.outcomes.is_empty() {
                println!("acceptance: no tests to run (no deployed service with [acceptance] is waiting for them)");
            } else {
                let outcome = crate::acceptance::finish(&ws, &stage, t);
                if report.succeeded() {
                    outcome?;
                }
            }
        }
        if !report.succeeded() {
            anyhow::bail!("the deploy of stage `{}` did not complete; fix the failures above and run it again (it redoes only what is missing)", stage.name);
        }
        Ok(())
    })
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
}

pub fn remove(ctx: &Ctx, args: &RemoveArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let ws = ctx.workspace()?;
        let (stage, aws) = stage_aws(ctx, &args.stage).await?;
        if stage.config.protected && !args.allow_protected {
            anyhow::bail!("stage `{}` is protected; removing its stacks needs --allow-protected", stage.name);
        }
        let records = crate::aws::record_store(&ws, &stage, &aws.config);
        let previous = records.read_all().await?;
        // (service, stack) in the order to delete: dependents before their dependencies.
        let targets: Vec<(String, String)> = if args.orphans {
            previous.iter().filter(|(s, _)| ws.service(s).is_none()).map(|(s, r)| (s.clone(), r.stack.clone())).collect()
        } else {
            let mut order = ws.graph().topo_order();
            order.reverse();
            order.into_iter().map(|s| (s.clone(), ws.stack_name(&s, &stage))).collect()
        };
        let engine = Engine::new(aws_sdk_cloudformation::Client::new(&aws.config), ferry_stacks::DeployOptions::default());
        let t0 = Instant::now();
        let mut removed = 0;
        for (service, stack) in &targets {
            if stage.config.protected && engine.status(stack).await?.is_some() {
                engine.set_protection(stack, false).await?;
            }
            let print = printer(t0);
            let existed = engine
                .delete(stack, &|p| print(Event::Stack { service: service.clone(), progress: p }))
                .await
                .with_context(|| format!("failed to delete stack {stack} of `{service}`; the stacks after it were not touched"))?;
            records.delete(service).await?;
            if existed {
                removed += 1;
                println!("deleted {stack} ({service})");
            }
        }
        println!("{removed} stack(s) deleted from stage `{}`", stage.name);
        Ok(())
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
    runtime()?.block_on(async {
        let ws = ctx.workspace()?;
        let (stage, aws) = stage_aws(ctx, &args.stage).await?;
        for s in &args.services {
            if ws.service(s).is_none() {
                anyhow::bail!(
                    "unknown service `{s}`{}",
                    ferry_manifest::did_you_mean(s, ws.services.iter().map(|x| x.name.as_str()))
                );
            }
        }
        let cache = OutputCache::new(Engine::new(
            aws_sdk_cloudformation::Client::new(&aws.config),
            ferry_stacks::DeployOptions::default(),
        ));
        let mut file = ferry_outputs::OutputsFile {
            stage: stage.name.clone(),
            services: BTreeMap::new(),
        };
        for s in ws
            .services
            .iter()
            .filter(|s| args.services.is_empty() || args.services.contains(&s.name))
        {
            if let Some(o) = cache.get(&ws.stack_name(&s.name, &stage)).await? {
                file.services.insert(s.name.clone(), o);
            }
        }
        let text = match args.format {
            OutputsFormat::Text => file.text(),
            OutputsFormat::Json => file.json(),
            OutputsFormat::Env => file.env(),
        };
        print!("{text}");
        if file.services.is_empty() && std::io::stderr().is_terminal() {
            eprintln!("no stacks of stage `{}` exist yet", stage.name);
        }
        Ok(())
    })
}
