//! `test-acceptance`: the acceptance tests of a deployed stage.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use ferry_acceptance::{Event, Report};
use ferry_ci::CiContext;
use ferry_manifest::{Stage, Workspace};
use ferry_records::{Record, RecordStore};

use crate::aws::{aws_of, runtime};
use crate::{Ctx, masker};

#[derive(Debug, clap::Args)]
pub struct AcceptanceArgs {
    /// The stage whose deployed services to test
    stage: String,
    /// Only these services (repeatable)
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    /// Every deployed service, passed or not [default: those deployed at this commit whose
    /// record is not yet marked as passed]
    #[arg(long, conflicts_with = "services")]
    all: bool,
    /// At most this many test commands at once [default: no limit]
    #[arg(long, value_name = "N")]
    concurrency: Option<NonZeroUsize>,
    /// Take over the stage's lock if it is stale (see `deploy --help`)
    #[arg(long)]
    force_unlock: bool,
}

/// The commit being tested: the checkout's HEAD, else the CI's.
pub fn head_commit(ws: &Workspace, ci: &CiContext) -> String {
    ferry_changes::Repo::open(&ws.root)
        .ok()
        .and_then(|r| r.head_commit())
        .map(|c| c.to_string())
        .or_else(|| ci.commit.clone())
        .unwrap_or_default()
}

pub fn print_event(t0: Instant) -> impl Fn(Event) + Send + Sync {
    move |e| {
        let text = match e {
            Event::Started { service } => format!("{service}: testing"),
            Event::Finished(o) => format!(
                "{}: tests {} in {:.1}s",
                o.service,
                o.status,
                o.duration.as_secs_f64()
            ),
        };
        eprintln!(
            "[{:>6.1}s] {}",
            t0.elapsed().as_secs_f64(),
            masker().mask(&text)
        );
    }
}

/// The JUnit report path of a stage: `target/ferry/reports/acceptance-<stage id>.xml`.
pub fn report_path(ws: &Workspace, stage: &Stage) -> PathBuf {
    ws.root
        .join(ferry_manifest::OUTPUT_DIR)
        .join("reports")
        .join(format!("acceptance-{}.xml", stage.id))
}

/// Runs the selected deployed services' tests and marks their records.
#[allow(clippy::too_many_arguments)]
pub async fn run_selected(
    ws: &Workspace,
    stage: &Stage,
    config: &aws_config::SdkConfig,
    records: &RecordStore,
    previous: &BTreeMap<String, Record>,
    selected: &std::collections::BTreeSet<String>,
    concurrency: Option<NonZeroUsize>,
    t0: Instant,
) -> anyhow::Result<Report> {
    ferry_deploy::test_deployed(
        ws,
        stage,
        config,
        records,
        previous,
        selected,
        concurrency,
        masker(),
        &print_event(t0),
    )
    .await
    .with_context(|| format!("acceptance tests of stage `{}` could not run", stage.name))
}

/// Writes the JUnit report and prints the summary; fails when a test failed.
pub fn finish(ws: &Workspace, stage: &Stage, report: &Report) -> anyhow::Result<()> {
    let path = report_path(ws, stage);
    ferry_acceptance::write_report(&path, &ferry_acceptance::junit(report, &stage.name))
        .with_context(|| format!("failed to write the JUnit report {}", path.display()))?;
    println!("{}", masker().mask(&ferry_acceptance::summary(report)));
    println!("JUnit report: {}", path.display());
    if !report.succeeded() {
        anyhow::bail!(
            "acceptance tests of stage `{}` failed; their records stay not passed",
            stage.name
        );
    }
    Ok(())
}

pub fn run(ctx: &Ctx, args: &AcceptanceArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let ws = ctx.workspace()?;
    let ci = CiContext::from_env();
    if ci.is_pull_request() {
        println!("acceptance tests skipped: this is a pull-request build, which deploys nothing");
        return Ok(());
    }
    let stage = ws.stage(&args.stage)?;
    runtime()?.block_on(async {
        let aws = aws_of(ctx, &stage).await?;
        // A stack output may echo a secret the services read: masked in every report.
        crate::aws::register_secrets(&ws, &stage, &aws.config).await?;
        crate::output_dir(&ws)?;
        let records = crate::aws::record_store(&ws, &stage, &aws.config);
        let cancel = ferry_graph::Cancel::new();
        // Marking records writes them: the stage's lock is held meanwhile.
        crate::lock::with_lock(
            &records,
            &stage,
            "test-acceptance",
            args.force_unlock,
            &cancel,
            async {
                let previous = records
                    .read_all()
                    .await
                    .context("failed to read the stage's deployment records")?;
                let commit = head_commit(&ws, &ci);
                let selected = ferry_acceptance::select(
                    &ws,
                    &stage.name,
                    &previous,
                    &commit,
                    &args.services,
                    args.all,
                )?;
                if selected.is_empty() {
                    println!(
                        "nothing to test in stage `{}`: no service deployed at {} is waiting for its acceptance tests (--all tests every deployed service)",
                        stage.name,
                        &commit[..commit.len().min(7)]
                    );
                    return Ok(());
                }
                let report = run_selected(
                    &ws,
                    &stage,
                    &aws.config,
                    &records,
                    &previous,
                    &selected,
                    args.concurrency,
                    t0,
                )
                .await?;
                finish(&ws, &stage, &report)
            },
        )
        .await
    })
}
