//! `run <script>`: a `[scripts]` command of every service a plan selects.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context as _;
use ferry_acceptance::scripts::{self, Scripts};

use crate::Ctx;
use crate::context::runtime;
use crate::ui::{Clock, mask, masker, table};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The script: a key of the services' `[scripts]` tables (e.g. lint, test)
    script: String,
    /// Run it for the services changed since this commit, branch or tag (e.g. origin/main)
    #[arg(long, value_name = "REF", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    since: Option<String>,
    /// Run it for the services a deploy of this stage would deploy (bases from its deployment
    /// records, read only), when --since is not given
    #[arg(long, value_name = "STAGE")]
    stage: Option<String>,
    /// Compare with this commit instead of the working tree (in CI: the built commit)
    #[arg(long, value_name = "REF")]
    head: Option<String>,
    /// Only these services and their dependencies (repeatable)
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    /// Every service that has the script
    #[arg(long, conflicts_with_all = ["since", "stage"])]
    all: bool,
    /// Only the changed services, not their dependents
    #[arg(long)]
    no_dependents: bool,
    /// At most this many scripts at once [default: the number of CPUs]
    #[arg(long, value_name = "N", value_parser = crate::ui::concurrency)]
    concurrency: Option<NonZeroUsize>,
    /// Seconds one service's script may run before it is stopped and counted as failed
    #[arg(long, value_name = "SECS", default_value_t = 1800, value_parser = crate::ui::timeout_secs())]
    timeout: u64,
}

pub fn run(ctx: &Ctx, args: &RunArgs) -> anyhow::Result<()> {
    let clock = Clock::start();
    let ws = ctx.workspace()?;
    let defined = scripts::known(ws);
    if !defined.contains(args.script.as_str()) {
        let known: Vec<&str> = defined.iter().copied().collect();
        let hint = ferry_manifest::did_you_mean(&args.script, known.iter().copied());
        anyhow::bail!(
            "no service defines a `{}` script (scripts defined: {}){hint}; a service defines one under [scripts] in its service.toml",
            args.script,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let selected = select(ctx, args)?;
    let (with, without) = scripts::split(ws, &args.script, &selected);
    if with.is_empty() {
        // An empty report in place of the last run's: a CI machine that keeps its workspace
        // would read that one again (a failure long mended, or one not run now).
        write_report_file(ctx, &args.script, &Default::default())?;
        if selected.is_empty() {
            println!("nothing to run: no service is selected");
        } else {
            println!(
                "nothing to run: none of the selected services ({}) has a `{}` script",
                list(&selected),
                args.script
            );
        }
        return Ok(());
    }
    clock.say(&format!(
        "run {}: {} service(s): {}{}",
        args.script,
        with.len(),
        list(&with),
        if without.is_empty() {
            String::new()
        } else {
            format!("; without a `{}` script: {}", args.script, list(&without))
        }
    ));
    let concurrency = args
        .concurrency
        .or_else(|| std::thread::available_parallelism().ok());
    let run = Scripts {
        ws,
        script: &args.script,
        masker: masker(),
        timeout: Duration::from_secs(args.timeout),
    };
    let cancel = ferry_graph::Cancel::new();
    let on = |e: ferry_acceptance::Event| clock.say(&event(&args.script, &e));
    let report = runtime()?.block_on(stop_on_signal(
        run.run(&with, concurrency, &cancel, &on),
        &cancel,
    ))?;

    let path = write_report_file(ctx, &args.script, &report)?;
    let summary = ferry_acceptance::summary(&report);
    print!(
        "{}",
        mask(&table(ferry_acceptance::Summary::HEADER, &summary.rows))
    );
    if ctx.verbose > 0 {
        print!("{}", mask(&ferry_acceptance::passed_output(&report)));
    }
    println!("{}", mask(&summary.details));
    println!("JUnit report: {}", path.display());
    if !report.succeeded() {
        let named = |skipped: bool| -> Vec<&str> {
            report
                .outcomes
                .iter()
                .filter(|o| {
                    o.status.is_failure()
                        && matches!(o.status, ferry_acceptance::Status::Skipped { .. }) == skipped
                })
                .map(|o| o.service.as_str())
                .collect()
        };
        let (failed, skipped) = (named(false), named(true));
        anyhow::bail!(
            "script `{}` failed for {}{}",
            args.script,
            failed.join(", "),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(
                    " (and so did not run for {}, which depend on them)",
                    skipped.join(", ")
                )
            }
        );
    }
    Ok(())
}

/// The services to run the script for: every service (`--all`), else what a plan selects.
fn select(ctx: &Ctx, args: &RunArgs) -> anyhow::Result<BTreeSet<String>> {
    let ws = ctx.workspace()?;
    if args.all {
        return Ok(ws.services.iter().map(|s| s.name.clone()).collect());
    }
    if args.since.is_none() && args.stage.is_none() && args.services.is_empty() {
        return Err(crate::UsageError(format!(
            "say what to run `{}` for: --since <ref> (the services changed since then, e.g. origin/main), --stage <stage> (those a deploy of it would deploy), --service <name>, or --all",
            args.script
        ))
        .into());
    }
    if args.since.is_none() && args.stage.is_none() {
        // Only --service: those services and their dependencies, changed or not.
        ctx.check_services(&args.services)?;
        return Ok(ws
            .graph()
            .with_dependencies(args.services.iter().map(String::as_str)));
    }
    // The stage only matters for its records (without --since): any named stage plans the same
    // changes.
    let stage = match &args.stage {
        Some(s) => s.clone(),
        None => ws
            .stages
            .keys()
            .next()
            .cloned()
            .context("ferry.toml names no stage")?,
    };
    let ci = ctx.ci().clone();
    let mut req = ferry_plan::PlanRequest::new(&stage, ferry_plan::default_head(&ci), ci);
    req.since = args.since.clone();
    req.services = args.services.clone();
    req.with_dependents = !args.no_dependents;
    if let Some(head) = &args.head {
        req.head = ferry_changes::Head::Rev(head.clone());
    }
    let plan = super::plan::plan_at(ctx, &mut req, args.since.is_none())?;
    // A base that cannot be used (a misspelt --since) makes its services count as changed, as
    // in a plan, which says so: said here too, or a typo ran every script in silence.
    for b in &plan.bases {
        if let Some(why) = &b.unavailable {
            eprintln!(
                "warning: base `{}` is unusable ({why}): its {} service(s) count as changed",
                ferry_ci::one_line(&b.base),
                b.services.len()
            );
        }
    }
    Ok(plan
        .services
        .iter()
        .filter(|s| s.action == ferry_plan::Action::Deploy)
        // Planned only because a dependency deployed since it last received its outputs:
        // nothing of its own changed.
        .filter(|s| !s.only_not_received())
        .map(|s| s.name.clone())
        .collect())
}

/// `work`, unless Ctrl-C or SIGTERM comes first: then `cancel` is set, which starts nothing new
/// and stops every running script with its whole process group (SIGINT, so that it can clean
/// up, then SIGKILL after a grace of seconds), and the work is awaited that long; a second
/// signal drops it at once (scripts change nothing Ferry must finish).
async fn stop_on_signal<T>(
    work: impl std::future::Future<Output = T>,
    cancel: &ferry_graph::Cancel,
) -> anyhow::Result<T> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("failed to watch for Ctrl-C")?;
    let mut term = signal(SignalKind::terminate()).context("failed to watch for SIGTERM")?;
    tokio::pin!(work);
    let name = tokio::select! {
        r = &mut work => return Ok(r),
        _ = int.recv() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    };
    cancel.cancel();
    tokio::select! {
        _ = &mut work => {}
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    anyhow::bail!(
        "interrupted ({name}): the running scripts were stopped, with everything they started"
    )
}

fn list(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// One progress line.
fn event(script: &str, e: &ferry_acceptance::Event) -> String {
    use ferry_acceptance::Event;
    match e {
        Event::Started { service } => format!("{service}: {script} started"),
        Event::Running { service, elapsed } => {
            format!("{service}: {script} still running ({}s)", elapsed.as_secs())
        }
        Event::Finished(o) => format!(
            "{}: {script} {} in {:.1}s",
            o.service,
            o.status,
            o.duration.as_secs_f64()
        ),
    }
}

/// Writes `report` as the JUnit report of `script`'s runs.
fn write_report_file(
    ctx: &Ctx,
    script: &str,
    report: &ferry_acceptance::Report,
) -> anyhow::Result<std::path::PathBuf> {
    let path = ctx.workspace()?.layout().script_report(script);
    crate::cmd::acceptance::write_junit_file(ctx, path, report, &format!("run {script}"))
}
