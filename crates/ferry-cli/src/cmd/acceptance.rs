//! `test-acceptance`: the acceptance tests of a deployed stage.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;

use anyhow::Context as _;
use ferry_acceptance::Report;
use ferry_deploy::StageAccess;
use ferry_manifest::Stage;
use ferry_records::Record;

use crate::Ctx;
use crate::cmd::release::AfterMoved;
use crate::context::runtime;
use crate::ui::{Clock, acceptance_event, mask, masker, table};

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
    #[arg(long, value_name = "N", value_parser = crate::ui::concurrency)]
    concurrency: Option<NonZeroUsize>,
    #[command(flatten)]
    lock: crate::lock::LockArgs,
}

/// Runs the selected deployed services' tests and marks their records.
pub async fn run_selected(
    access: &StageAccess<'_>,
    previous: &BTreeMap<String, Record>,
    selected: &BTreeSet<String>,
    concurrency: Option<NonZeroUsize>,
    clock: Clock,
) -> anyhow::Result<ferry_deploy::Tested> {
    let on = |e: ferry_acceptance::Event| clock.say(&acceptance_event(&e));
    ferry_deploy::test_deployed(access, previous, selected, concurrency, &on)
        .await
        .with_context(|| {
            format!(
                "acceptance tests of stage `{}` could not run",
                access.stage.name
            )
        })
}

/// Runs the `selected` deployed services' tests, marks their records and the stage's newest
/// release, announces the outcome and writes the summary and JUnit report: `test-acceptance`,
/// and a promote that finds its packages deployed but their tests owed. Exit 1 when one failed.
pub(crate) async fn test_and_report(
    ctx: &Ctx,
    access: &StageAccess<'_>,
    previous: &BTreeMap<String, Record>,
    selected: &BTreeSet<String>,
    concurrency: Option<NonZeroUsize>,
    clock: Clock,
) -> anyhow::Result<()> {
    let mut tested = run_selected(access, previous, selected, concurrency, clock).await?;
    // From here on the tests ran: whatever fails, their summary, report and notifications
    // still come.
    let mut after = AfterMoved::tested();
    keep_unmarked(&mut after, &mut tested);
    // The outcomes go into the stage's newest release too.
    let store =
        ferry_deploy::release::release_store(access.ws, access.stage, access.config, ctx.local);
    let marked = crate::cmd::release::mark_newest_release(store.as_ref(), access.records).await;
    after.keep("marking the newest release", marked);
    let report = &tested.report;
    crate::cmd::release::announce_with(access, ctx.ci(), clock, &[], Some(report), None).await;
    self::report(ctx, access.stage, report, &mut after);
    if !report.succeeded() {
        return after.finish(Err(tests_failed(access.stage)));
    }
    if access.cancel.is_cancelled() {
        return after.finish(Err(anyhow::anyhow!(
            "interrupted: the acceptance tests still running were stopped and those not started were not run; nothing is recorded of them, so the next `test-acceptance {}` runs them",
            access.stage.name
        )));
    }
    after.finish(Ok(()))
}

/// Says each record whose tests' outcome could not be written, or was not (the checkout's
/// tests are not those of the package that runs), and keeps it for the end.
pub(crate) fn keep_unmarked(after: &mut AfterMoved, tested: &mut ferry_deploy::Tested) {
    for (service, why) in std::mem::take(&mut tested.not_recorded) {
        after.keep(
            &format!("recording the tests' outcome of `{service}`"),
            Err::<(), _>(anyhow::anyhow!(
                "the outcome of `{service}`'s tests is not recorded: {why}; a record says whether its package passed, so only that package's own tests count: run them from a checkout holding what it was built from (that commit, or a later one where its inputs are the same; after a rollback, this keeps the package the rollback put back), or commit, deploy and test again to replace the package"
            )),
        );
    }
    for e in std::mem::take(&mut tested.unmarked) {
        let step = match &e {
            ferry_deploy::TestError::Mark { service, .. } => {
                format!("recording the tests' outcome of `{service}`")
            }
            _ => "recording a tests' outcome".to_string(),
        };
        after.keep(&step, Err::<(), _>(e.into()));
    }
}

/// Prints the summary and writes the JUnit report (a report that cannot be written is kept in
/// `after` as "writing the JUnit report").
pub(crate) fn report(ctx: &Ctx, stage: &Stage, report: &Report, after: &mut AfterMoved) {
    after.keep("writing the JUnit report", write_junit(ctx, stage, report));
}

/// The tests' verdict when one failed.
pub(crate) fn tests_failed(stage: &Stage) -> anyhow::Error {
    anyhow::anyhow!(
        "acceptance tests of stage `{}` failed; their records say so (but for any named above as not marked)",
        stage.name
    )
}

fn write_junit(ctx: &Ctx, stage: &Stage, report: &Report) -> anyhow::Result<()> {
    let summary = ferry_acceptance::summary(report);
    print!(
        "{}",
        mask(&table(ferry_acceptance::Summary::HEADER, &summary.rows))
    );
    if ctx.verbose > 0 {
        print!("{}", mask(&ferry_acceptance::passed_output(report)));
    }
    println!("{}", mask(&summary.details));
    let path = write_report_file(ctx, stage, report)?;
    println!("JUnit report: {}", path.display());
    Ok(())
}

/// Writes `report` as the stage's JUnit report (an empty one too: it takes the place of the
/// last run's, which a CI machine keeping its workspace would read again).
fn write_report_file(
    ctx: &Ctx,
    stage: &Stage,
    report: &Report,
) -> anyhow::Result<std::path::PathBuf> {
    let path = ctx.workspace()?.layout().acceptance_report(&stage.id);
    write_junit_file(ctx, path, report, &format!("acceptance {}", stage.name))
}

/// Removes the stage's JUnit report left by an earlier run, if any.
fn remove_report_file(ctx: &Ctx, stage: &Stage) -> anyhow::Result<()> {
    let path = ctx.workspace()?.layout().acceptance_report(&stage.id);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)
            .with_context(|| format!("failed to remove the old JUnit report {}", path.display())),
        _ => Ok(()),
    }
}

/// Writes `report` as JUnit (its run named `run`) to `path` under target/ferry/ (which keeps a
/// .gitignore of its own: never in `git status`), masked again with every secret known now.
pub(crate) fn write_junit_file(
    ctx: &Ctx,
    path: std::path::PathBuf,
    report: &Report,
    run: &str,
) -> anyhow::Result<std::path::PathBuf> {
    ctx.output_dir()?;
    ferry_acceptance::write_report(
        &path,
        &ferry_acceptance::junit(&report.masked(crate::ui::masker()), run),
    )
    .with_context(|| format!("failed to write the JUnit report {}", path.display()))?;
    Ok(path)
}

pub fn run(ctx: &Ctx, args: &AcceptanceArgs) -> anyhow::Result<()> {
    let clock = Clock::start();
    let ws = ctx.workspace()?;
    // A pull request's build deploys nothing but the preview `[ci] pull-requests` gives it
    // (`deploy --from-ci`): that one is tested; any other stage's tests are skipped, as its
    // deploy only planned.
    if ctx.ci().is_pull_request() {
        match ws.project.ci.stage_for(ctx.ci()) {
            Ok(own) if own.stage == args.stage => {}
            Ok(own) => {
                println!(
                    "acceptance tests of `{}` skipped: this is a pull-request build, which deploys to no stage but its own preview, `{}` ({})",
                    args.stage, own.stage, own.rule
                );
                return Ok(());
            }
            Err(_) => {
                println!(
                    "acceptance tests skipped: this is a pull-request build, which deploys nothing (no [ci] pull-requests rule gives it a preview stage)"
                );
                return Ok(());
            }
        }
    }
    let stage = ws.stage(&args.stage)?;
    runtime()?.block_on(async {
        let aws = ctx.aws(&stage).await?;
        // A stack output may echo a secret the services read: masked in every report.
        ctx.register_secrets(&stage, &aws).await?;
        ctx.output_dir()?;
        let records = ctx.records(&stage, &aws)?;
        let cancel = ferry_graph::Cancel::new();
        // Marking records writes them: the stage's lock is held meanwhile.
        crate::lock::with_lock(
            ctx.ci().build_id.as_deref(),
            &records,
            &stage,
            "test-acceptance",
            args.lock,
            &cancel,
            async {
                let previous = records
                    .read_all()
                    .await
                    .context("failed to read the stage's deployment records")?;
                let commit = ferry_deploy::head_commit(ws, ctx.ci());
                let mut selected = ferry_acceptance::select(
                    ws,
                    &stage.name,
                    &previous,
                    &commit,
                    &args.services,
                    args.all,
                )?;
                if args.services.is_empty() && !args.all {
                    // And those that failed at an earlier commit this checkout still holds.
                    selected.extend(ferry_deploy::failed_before(ws, &previous, &commit));
                }
                // Asked to test every deployed service of a stage where none is deployed (a
                // misspelt stage, the wrong account): a CI gate must not pass on it, nor a report
                // group read a report of no tests (or an older run's) as this run's.
                if selected.is_empty() && args.all && previous.is_empty() {
                    remove_report_file(ctx, &stage)?;
                    anyhow::bail!(
                        "no service of stage `{}` is deployed: --all has nothing to test{}",
                        stage.name,
                        ws.misspelt_stage_hint(&stage)
                    );
                }
                if selected.is_empty() {
                    write_report_file(ctx, &stage, &Report::default())?;
                }
                if selected.is_empty() && args.all {
                    println!(
                        "nothing to test in stage `{}`: no deployed service has acceptance tests",
                        stage.name
                    );
                    return Ok(());
                }
                if selected.is_empty() {
                    println!(
                        "nothing to test in stage `{}`: no service deployed at {} is waiting for its acceptance tests, and none failed them at a commit whose inputs this checkout holds (--all tests every deployed service)",
                        stage.name,
                        &commit[..commit.len().min(7)],
                    );
                    return Ok(());
                }
                let access = StageAccess {
                    ws,
                    stage: &stage,
                    config: &aws.config,
                    records: &records,
                    masker: masker(),
                    cancel: &cancel,
                };
                test_and_report(ctx, &access, &previous, &selected, args.concurrency, clock)
                    .await
            },
        )
        .await
    })
}
