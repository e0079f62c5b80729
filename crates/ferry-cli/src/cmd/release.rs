//! The release path: `promote` (another stage's passed packages), `rollback` (an earlier
//! release), `status` (every service in every stage), and what deploy, promote and rollback do
//! after their run: the release, the tests' summary, `on-test-failure = "rollback"`.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context as _;
use ferry_ci::CiContext;
use ferry_deploy::release::{ReleaseInfo, StageTarget, StoredPackages};
use ferry_deploy::{DeployContext, DeployOptions, DeployReport, Prepared, Selection, Source};
use ferry_manifest::OnTestFailure;
use ferry_records::Record;
use ferry_releases::{Release, ReleaseKind, ReleaseStore};

use crate::Ctx;
use crate::cmd::deploy::{Run, local_sam, print_summary};
use crate::context::runtime;
use crate::ui::{Clock, columns, masker};

/// How a run that deploys stored packages deploys.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run each deployed service's acceptance tests right after it deploys (its dependents wait
    /// for them)
    #[arg(long)]
    test: bool,
    /// At most this many stack operations at once [default: no limit]
    #[arg(long, value_name = "N", value_parser = crate::ui::concurrency)]
    concurrency: Option<NonZeroUsize>,
    #[command(flatten)]
    lock: crate::lock::LockArgs,
    /// How long Ferry waits for one stack in all, in seconds (see `deploy --help`)
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = crate::ui::timeout_secs())]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The stage whose passed packages to take (the target's `promote-from`)
    #[arg(required_unless_present = "from_ci")]
    from: Option<String>,
    /// The stage to deploy them to
    #[arg(required_unless_present = "from_ci")]
    to: Option<String>,
    /// Deploy nothing: print and write what would change, kept as a pending release for
    /// `approve` (see `deploy --help`)
    #[arg(long)]
    review: bool,
    /// Take the target stage from the CI build's trigger through the [ci] rules of ferry.toml,
    /// and the source from its promote-from
    #[arg(long, conflicts_with_all = ["from", "to"])]
    from_ci: bool,
    /// Only these services (repeatable) [default: every service deployed in FROM]. Their
    /// dependents in TO are checked and redeploy, with the package TO runs, when what they
    /// receive changed (when this checkout holds their inputs; otherwise they are reported)
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The stage to roll back
    stage: String,
    /// The release to go back to: its id, or a commit (at least 7 hex digits; the newest release
    /// run at it or deploying packages built from it) [default: the newest release that holds
    /// other packages than what runs and whose tests passed]
    #[arg(long, value_name = "RELEASE|COMMIT")]
    to: Option<String>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The stage the review is of
    stage: String,
    /// The review's release id (printed by `--review`)
    release: String,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The stages to show [default: every named stage, in promotion order]
    stages: Vec<String>,
    /// `json` is a stable contract: {"stages": [{"name", "id", "release", "kind", "restores",
    /// "error", "unwritten"}],
    /// "services": [{"service", "stages": {STAGE: null | {"commit", "dirty", "package",
    /// "template_hash", "deployed_at", "tests", "release", "same_as_previous"}}}]}
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    format: StatusFormat,
}

/// The stage the [ci] rules choose for this build; says which rule matched. `None`: a pull
/// request's build while [ci] gives pull requests no stage: it deploys nothing (said).
pub(crate) fn stage_from_ci(
    ws: &ferry_manifest::Workspace,
    ci: &CiContext,
) -> anyhow::Result<Option<ferry_manifest::Stage>> {
    // Without the event, a closed pull request's build would look like one to deploy.
    if let Some(e) = &ci.event_error {
        anyhow::bail!(
            "--from-ci cannot tell what this build's event is: GitHub's event file (GITHUB_EVENT_PATH) could not be read: {e}; it says whether a pull request was closed, so nothing was deployed; name the stage instead of --from-ci"
        );
    }
    let m = match ws
        .project
        .ci
        .decide(ci)
        .context("--from-ci found no stage for this build")?
    {
        ferry_ci::CiStage::Stage(m) => m,
        ferry_ci::CiStage::Ended(ended) => {
            println!(
                "ci: {ended}: nothing to deploy (`previews prune --from-ci` removes its preview stage)"
            );
            return Ok(None);
        }
        ferry_ci::CiStage::PullRequestWithoutStage(source) => {
            println!(
                "ci: a pull request's build ({source}) and [ci] gives pull requests no stage: nothing to deploy"
            );
            return Ok(None);
        }
    };
    eprintln!("ci: stage `{}` from {}", m.stage, m.rule);
    Ok(Some(ws.stage(&m.stage)?))
}

/// The deployment records of the run's stage.
async fn current_records(run: &Run<'_>) -> anyhow::Result<BTreeMap<String, Record>> {
    run.records
        .read_all()
        .await
        .context("failed to read the stage's deployment records")
}

/// The stage's records, and what its stacks say against them (one ListStacks pass): a promote
/// or rollback takes a package again for a stack deleted, failed or changed outside Ferry,
/// whatever its record says, as a deploy does (the service's row names why).
async fn current_state(run: &Run<'_>) -> anyhow::Result<ferry_deploy::StageState> {
    ferry_deploy::state::read(run.ws, run.stage, &run.aws.config, run.records)
        .await
        .context("failed to read the stage's deployment records and stacks")
}

/// The run's stage as a promote, rollback or approval deploys to it, with `dir` the local
/// package store.
fn stage_target<'a>(run: &Run<'a>, dir: &'a std::path::Path) -> StageTarget<'a> {
    StageTarget {
        ws: run.ws,
        stage: run.stage,
        config: &run.aws.config,
        local: run.ctx.local,
        dir,
    }
}

/// The commit checked out and the id of a new release made at it.
fn new_release(ctx: &Ctx) -> (String, String) {
    let ws = ctx.workspace().expect("loaded before a release is made");
    let head = ferry_deploy::head_commit(ws, ctx.ci());
    let id = ferry_releases::new_id(ferry_records::now_millis(), &head);
    (head, id)
}

/// The releases of the run's stage, when it keeps a bucket.
fn store_of(run: &Run<'_>) -> Option<ReleaseStore> {
    ferry_deploy::release::release_store(run.ws, run.stage, &run.aws.config, run.ctx.local)
}

/// As a run starts, once it holds the stage's lock and has read its records, before it decides
/// anything (a deploy, promote, rollback or approval): writes each release the stage's records
/// name that its store lacks (a run stopped between its records and its release), from the
/// records as this run found them, which its own deploys would overwrite, and which a rollback
/// chooses its target by. A failure is said, not fatal: the end of the run tries again with
/// what is left.
pub(crate) async fn recover_releases(
    run: &Run<'_>,
    previous: &BTreeMap<String, Record>,
    kind: ReleaseKind,
    release: &str,
) {
    let Some(store) = store_of(run) else {
        return;
    };
    if let Err(e) =
        ferry_deploy::release::recover_releases(run.ws, run.stage, &store, previous, kind, release)
            .await
    {
        eprintln!(
            "warning: {}",
            crate::ui::mask(&format!(
                "failed to write the release of an interrupted run before this one: {e}"
            ))
        );
    }
}

/// Writes the release of a run and says so. When the run ran tests, their outcomes also go into
/// the releases holding the deploys they judged: the stage's newest, and the one each record
/// names (tests owed by an earlier run, whose release this run's does not replace there).
pub(crate) async fn finish_release(
    run: &Run<'_>,
    info: ReleaseInfo,
    tested: bool,
) -> anyhow::Result<Option<Release>> {
    let store = store_of(run);
    let release =
        ferry_deploy::release::write_release(run.ws, run.stage, run.records, store.as_ref(), info)
            .await
            .context(
                "failed to write the release of this run (what it deployed, if anything, is in the stacks and records, and the next run of the stage writes the release)",
            )?;
    match &release {
        Some(r) => println!(
            "release: {} ({} of stage `{}`: {} deployed)",
            r.id,
            r.kind,
            run.stage.name,
            r.deployed.join(", ")
        ),
        None if store.is_none() => println!(
            "release: none kept (stage `{}` has no artifact-bucket, so it cannot be promoted from or rolled back)",
            run.stage.name
        ),
        None => {}
    }
    if tested && store.is_some() {
        let marked = mark_newest_release(store.as_ref(), run.records).await;
        match (marked, &release) {
            (Err(e), None) => return Err(e),
            // This run's release holds its own outcomes already: only older ones miss them.
            (Err(e), Some(_)) => eprintln!("warning: {}", crate::ui::mask(&format!("{e:#}"))),
            (Ok(()), _) => {}
        }
    }
    Ok(release)
}

/// Marks the stage's newest release with the tests' outcomes its records hold now: rollback
/// looks for the newest release whose tests passed.
pub(crate) async fn mark_newest_release(
    store: Option<&ReleaseStore>,
    records: &ferry_records::RecordStore,
) -> anyhow::Result<()> {
    let now: Vec<Record> = records
        .read_all()
        .await
        .context("failed to read the stage's deployment records")?
        .into_values()
        .collect();
    ferry_deploy::release::mark_latest(store, &now)
        .await
        .context("failed to mark the stage's newest release with the tests' outcomes")
}

/// What fails after a run's stacks moved does not stop the run: each failure is said when it
/// happens, and the run still writes its outputs, its release (its records name it), its
/// reports, its notifications and its `on-test-failure` rollback, then ends with an error that
/// names the failed steps. A review (nothing deployed) goes on to store itself the same way.
pub(crate) struct AfterMoved {
    /// What stands although a step failed, for the final error.
    done: &'static str,
    failed: Vec<String>,
}

impl AfterMoved {
    fn with(done: &'static str) -> Self {
        AfterMoved {
            done,
            failed: Vec::new(),
        }
    }

    /// After stacks moved.
    pub(crate) fn deployed() -> Self {
        Self::with("every stack that deployed is recorded")
    }

    /// After acceptance tests ran outside a deploy.
    pub(crate) fn tested() -> Self {
        Self::with("the tests ran (their outcomes are above)")
    }

    /// After a review's change sets were made (nothing deployed).
    pub(crate) fn reviewed() -> Self {
        Self::with("nothing was deployed")
    }

    /// The value, or `None` after saying the failure and keeping it for the end.
    pub(crate) fn keep<T>(&mut self, step: &str, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("{}", crate::ui::mask(&format!("error: {e:#}")));
                self.failed.push(step.to_string());
                None
            }
        }
    }

    /// Whether no step has failed so far.
    pub(crate) fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }

    /// The run's outcome: `result`'s error first (failed services or tests; the failed steps
    /// are then named beside it), else an error naming every step kept as failed.
    pub(crate) fn finish(self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        let steps = ferry_manifest::first_few(&self.failed, 5);
        if let Err(e) = result {
            if !self.failed.is_empty() {
                eprintln!("also failed (said above): {steps}");
            }
            return Err(e);
        }
        if self.failed.is_empty() {
            return Ok(());
        }
        anyhow::bail!("{}, but a step failed (said above): {steps}", self.done)
    }
}

/// After a run: the tests' summary, `on-test-failure = "rollback"`, and the run's verdict (an
/// error for failed services or tests). Steps that fail on the way are kept in the run's
/// `after`, whose `finish` then names them all on one line. `run_release` is the id of the
/// release the run made (its records name it), written or not, beside the release written and
/// `before`, the stage's records when the run began.
pub(crate) async fn end_of_run(
    run: &Run<'_>,
    (what, review): (&str, Option<&str>),
    report: &DeployReport,
    tests: Option<&ferry_acceptance::Report>,
    (run_release, release, before): (&str, Option<&Release>, &BTreeMap<String, Record>),
    (concurrency, timeout): (Option<NonZeroUsize>, u64),
    after: &mut AfterMoved,
) -> anyhow::Result<()> {
    let stage = run.stage;
    announce(run, &report.services, tests, release).await;
    // A report that could not be written is said now and named at the end (by `after`).
    if let Some(t) = tests {
        if t.outcomes.is_empty() {
            println!(
                "acceptance: no tests to run (no deployed service with [acceptance] is waiting for them)"
            );
        } else {
            crate::cmd::acceptance::report(run.ctx, stage, t, after);
        }
    }
    let failed: BTreeSet<String> = tests
        .map(|t| {
            t.outcomes
                .iter()
                .filter(|o| o.status.is_failure())
                .map(|o| o.service.clone())
                .collect()
        })
        .unwrap_or_default();
    if stage.config.on_test_failure == OnTestFailure::Rollback && !failed.is_empty() {
        return Err(rolled_back(
            run,
            (run_release, before, &failed),
            (concurrency, timeout),
            after,
        )
        .await);
    }
    if !report.succeeded() {
        let results: Vec<&ferry_deploy::ServiceResult> =
            report.services.iter().map(|s| &s.result).collect();
        return Err(anyhow::anyhow!(unfinished(
            (what, review),
            &stage.name,
            run.ctx.app.name,
            &results
        )));
    }
    if !failed.is_empty() {
        return Err(crate::cmd::acceptance::tests_failed(stage));
    }
    Ok(())
}

/// What a run of `what` (`deploy`, `approval`, …) that did not complete says at its end, from
/// its services' results: interrupted (Ctrl-C) with nothing failed, there is no failure to fix;
/// an approval interrupted before it deployed anything is approved again (its review still
/// shows what the stage would become: `review`), one that deployed part of it reviewed again.
fn unfinished(
    (what, review): (&str, Option<&str>),
    stage: &str,
    app: &str,
    results: &[&ferry_deploy::ServiceResult],
) -> String {
    use ferry_deploy::ServiceResult as R;
    let any = |f: fn(&R) -> bool| results.iter().any(|r| f(r));
    // Deployed, its tests stopped by the cancel: interrupted, not failed.
    let cancelled = any(|r| matches!(r, R::Cancelled));
    let tests_stopped = any(R::tests_stopped);
    let failed = any(|r| matches!(r, R::Failed { .. }) && !r.tests_stopped());
    let interrupted = (cancelled || tests_stopped) && !failed;
    // Services not reached: the dependents a cancel kept from starting (cancelled), or skipped.
    let not_reached = cancelled || any(|r| matches!(r, R::Skipped { .. }));
    if interrupted && !not_reached {
        return format!(
            "the {what} of stage `{stage}` deployed all it was to, but the cancel stopped acceptance tests before they ended (nothing is recorded of them): `{app} test-acceptance {stage}` runs them"
        );
    }
    let deployed = any(|r| matches!(r, R::Deployed { .. })) || tests_stopped;
    let (ended, fix) = if interrupted {
        ("was interrupted before it completed", "")
    } else {
        ("did not complete", "fix the failures above, then ")
    };
    match what {
        "approval" if interrupted && !deployed => format!(
            "the approval of stage `{stage}` was interrupted before it deployed anything; approve the same review again (`{app} approve {stage} {}`)",
            review.unwrap_or("<review>")
        ),
        "approval" => format!(
            "the approval of stage `{stage}` {ended}; {fix}review again (`--review`) and approve the new review: it shows what is left"
        ),
        _ => format!(
            "the {what} of stage `{stage}` {ended}; {fix}run it again (it redoes only what is missing)"
        ),
    }
}

/// on-test-failure = "rollback" after `failed`'s tests failed: rolls them back
/// ([`roll_back_failures`]) and gives the run's error, saying what the rollback did (a rollback
/// that failed is kept in `after`).
async fn rolled_back(
    run: &Run<'_>,
    (run_release, before, failed): (&str, &BTreeMap<String, Record>, &BTreeSet<String>),
    (concurrency, timeout): (Option<NonZeroUsize>, u64),
    after: &mut AfterMoved,
) -> anyhow::Error {
    let rolled = roll_back_failures(run, run_release, before, failed, concurrency, timeout).await;
    let said = after
        .keep("the rollback after the failed tests", rolled)
        .unwrap_or_else(|| "the rollback did not finish cleanly (said above)".to_string());
    anyhow::anyhow!(
        "acceptance tests failed in stage `{}` ({}); on-test-failure = \"rollback\": {said}",
        run.stage.name,
        failed.iter().cloned().collect::<Vec<_>>().join(", ")
    )
}

/// Announces the run's changes of state (`[notifications]`), saying where it sent them; a failed
/// webhook or topic is a warning, never the run's failure.
pub(crate) async fn announce(
    run: &Run<'_>,
    services: &[ferry_deploy::ServiceReport],
    tests: Option<&ferry_acceptance::Report>,
    release: Option<&Release>,
) {
    announce_with(
        &run.access(),
        run.ctx.ci(),
        run.clock,
        services,
        tests,
        release,
    )
    .await;
}

/// [`announce`] with a stage's access.
pub(crate) async fn announce_with(
    access: &ferry_deploy::StageAccess<'_>,
    ci: &CiContext,
    clock: crate::ui::Clock,
    services: &[ferry_deploy::ServiceReport],
    tests: Option<&ferry_acceptance::Report>,
    release: Option<&Release>,
) {
    if !access
        .ws
        .project
        .notifications
        .covers(&access.stage.name, access.stage.preview)
    {
        return;
    }
    let commit = release.map_or_else(
        || ferry_deploy::head_commit(access.ws, ci),
        |r| r.commit.clone(),
    );
    let done = ferry_deploy::notify::announce(access, services, tests, release, &commit).await;
    if let Some(n) = &done.notice {
        clock.say(&crate::ui::mask(&format!(
            "notified {}: {}",
            if done.sent.is_empty() {
                "nobody".to_string()
            } else {
                done.sent.join(", ")
            },
            n.subject()
        )));
    }
    for f in &done.failed {
        eprintln!("warning: {}", crate::ui::mask(f));
    }
}

/// Rolls the services whose tests failed after this run, and the dependents it deployed, back
/// to the stage's newest other release whose tests passed for them (also a failed service the
/// run did not deploy, when what it runs had not passed its tests before the run: `before`, the
/// records then). Says what it did.
async fn roll_back_failures(
    run: &Run<'_>,
    run_release: &str,
    before: &BTreeMap<String, Record>,
    failed: &BTreeSet<String>,
    concurrency: Option<NonZeroUsize>,
    timeout: u64,
) -> anyhow::Result<String> {
    // What this run deployed: the records that name its release. The rollback needs no written
    // release of this run (its target is judged against what runs), so a release that could
    // not be written stops nothing.
    let ferry_deploy::StageState {
        records: current,
        drift,
        ..
    } = current_state(run).await?;
    let affected =
        ferry_deploy::release::to_roll_back(run.ws, &current, before, run_release, failed, false);
    if affected.is_empty() {
        return Ok(
            "nothing to roll back: the failed services were not deployed by this run, and what they run had passed its tests before it".into(),
        );
    }
    let store = store_of(run).context(
        "the stage keeps no releases (no artifact-bucket), so there is nothing to roll back to",
    )?;
    let options = untested(run.ctx, concurrency, timeout);
    run.clock.say(&format!(
        "on-test-failure = \"rollback\": rolling {} back",
        affected.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    let rb = rollback_to(
        run,
        &store,
        current.clone(),
        &drift,
        None,
        Some(&affected),
        &options,
    )
    .await;
    // Nothing of their own to go back to (their packages are the same in every release): what
    // failed was judged with what the run's deploys of their dependencies gave them.
    let wider =
        ferry_deploy::release::to_roll_back(run.ws, &current, before, run_release, failed, true);
    match rb {
        Err(e) if none_passed(&e) && wider != affected => {
            run.clock.say(&format!(
                "on-test-failure = \"rollback\": {} had no earlier release that passed and holds other packages; rolling back what this run deployed of what they depend on too: {}",
                affected.iter().cloned().collect::<Vec<_>>().join(", "),
                wider.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            rollback_to(run, &store, current, &drift, None, Some(&wider), &options).await
        }
        rb => rb,
    }
    .context("the rollback after the failed tests failed")
}

/// Whether `e` says no release before what runs holds other packages that passed.
fn none_passed(e: &anyhow::Error) -> bool {
    use ferry_deploy::release::ReleaseRunError;
    use ferry_releases::TargetError;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ReleaseRunError>(),
            Some(ReleaseRunError::Target(TargetError::NonePassed { .. }))
        ) || matches!(
            c.downcast_ref::<TargetError>(),
            Some(TargetError::NonePassed { .. })
        )
    })
}

/// Rolls `run`'s stage, whose records are `current`, back (see
/// [`prepare_rollback`](ferry_deploy::release::prepare_rollback)) and records the release;
/// says what it did.
async fn rollback_to(
    run: &Run<'_>,
    store: &ReleaseStore,
    current: BTreeMap<String, Record>,
    drift: &BTreeMap<String, ferry_plan::Reason>,
    to: Option<&str>,
    only: Option<&BTreeSet<String>>,
    options: &DeployOptions,
) -> anyhow::Result<String> {
    let (ws, stage) = (run.ws, run.stage);
    let test = options.test;
    let dir = ws.layout().package();
    let target = stage_target(run, &dir);
    // A release a stopped run left unwritten, before the target is chosen: a rollback stopped
    // after its records were written is what runs, and the target is judged from the release
    // it restored (else the newest written release, the one it went back from, would look
    // like a release that no longer runs, and be the target: forward again).
    let (head, id) = new_release(run.ctx);
    recover_releases(run, &current, ReleaseKind::Rollback, &id).await;
    let rb = ferry_deploy::release::prepare_rollback(&target, store, &current, drift, to, only)
        .await
        .with_context(|| format!("cannot roll back stage `{}`", stage.name))?;
    for s in &rb.left {
        run.clock.say(&format!(
            "{s}: not in release {}: left as it is",
            rb.target.id
        ));
    }
    for s in &rb.removed {
        run.clock.say(&format!(
            "{s}: in release {}, but removed from the stage and the checkout since: not brought back",
            rb.target.id
        ));
    }
    // Named by hand (`--to`): the default target is always one whose tests passed.
    if let ferry_releases::Tests::Failed(failed) = rb.target.tests_of(only) {
        run.clock.say(&format!(
            "warning: release {} is one whose acceptance tests failed in `{}` ({}): it goes back to what did not pass",
            rb.target.id,
            stage.name,
            failed.join(", ")
        ));
    }
    // Services whose package is the target's but that never received what a dependency runs
    // now (a rollback stopped after the dependency went back and before they were checked)
    // are candidates without being in `deploy`: they are checked, and redeploy when the
    // parameters they resolve now differ from their record.
    if rb.selection.candidates.is_empty() {
        return Ok(format!(
            "nothing to do: every service already runs what release {} holds",
            rb.target.id
        ));
    }
    let report = deploy_stored(
        run,
        &Stored {
            prepared: rb.prepared.as_ref(),
            selection: &rb.selection,
            previous: &current,
            release: &id,
            kind: ReleaseKind::Rollback,
            archives: None,
            fixed: None,
            review: None,
            restores: Some(rb.target.id.as_str()),
            from: None,
        },
        options,
    )
    .await?;
    let mut after = AfterMoved::deployed();
    print_summary(ws, stage, &report, 0, run.clock, &mut after);
    // What went back: what differed from the target, and what was checked and redeployed.
    let names: Vec<String> = report
        .services
        .iter()
        .filter(|s| {
            rb.selection.deploy.contains(&s.name)
                || matches!(s.result, ferry_deploy::ServiceResult::Deployed { .. })
        })
        .map(|s| s.name.clone())
        .collect();
    let written = finish_release(
        run,
        ReleaseInfo {
            from: rb.from.clone(),
            restores: Some(rb.target.id.clone()),
            ..ReleaseInfo::new(id, ReleaseKind::Rollback, head, &run.aws.identity.arn)
        },
        test,
    )
    .await;
    let written = after.keep("writing the release", written).flatten();
    let tests = ferry_acceptance::Report {
        outcomes: report.tests.clone(),
    };
    // A rollback is news (by `rollback` or by on-test-failure), with what it restored.
    announce(
        run,
        &report.services,
        test.then_some(&tests),
        written.as_ref(),
    )
    .await;
    if !tests.outcomes.is_empty() {
        crate::cmd::acceptance::report(run.ctx, stage, &tests, &mut after);
    }
    let (name, to) = (&stage.name, &rb.target.id);
    let tests_failed = !tests.succeeded()
        || report.services.iter().any(|s| {
            matches!(&s.result, ferry_deploy::ServiceResult::Failed { error } if error.after_the_stack())
        });
    // Once the stacks are back, `--to` would do nothing (nothing is left to deploy): what is
    // left is said with what does it.
    // Stored compiles refused as stale: the rollback cannot deploy them, whatever is fixed.
    let stale: Vec<&str> = report
        .services
        .iter()
        .filter(|s| matches!(&s.result, ferry_deploy::ServiceResult::Failed { error } if matches!(**error, ferry_deploy::ServiceError::StaleCompile { .. })))
        .map(|s| s.name.as_str())
        .collect();
    let unfinished = if !stale.is_empty() {
        Some(format!(
            "the rollback of stage `{name}` to release {to} did not complete: the stored compile of {} holds values its dependencies no longer give, which no rollback can mend; deploy {} from a checkout (`deploy {name} --service {}`), which compiles with today's values",
            stale.join(", "),
            if stale.len() == 1 { "it" } else { "them" },
            stale.join(" --service ")
        ))
    } else if !report.stacks_in_place(&rb.selection.deploy) {
        let plain = if written.is_some() {
            "a plain `rollback` now goes back from the release this one wrote, further back"
        } else {
            "nothing moved, so no release was written, and a plain `rollback` picks the same target"
        };
        Some(format!(
            "the rollback of stage `{name}` to release {to} did not complete; fix the failures above and finish it with `rollback {name} --to {to}` ({plain})"
        ))
    } else if tests_failed {
        Some(format!(
            "stage `{name}` runs release {to} again, but its acceptance tests did not pass or their outcome is not recorded (see above): `test-acceptance {name}` runs them again from a checkout of what the release was made from; a plain `rollback {name}` goes further back"
        ))
    } else if !report.succeeded() {
        Some(format!(
            "stage `{name}` runs release {to} again, but some services it was to check against what they receive were not checked or did not update (see above); `rollback {name} --to {to}` checks them again (a deploy or promote would deploy the checkout's or the source stage's packages, not the release's)"
        ))
    } else {
        None
    };
    if let Some(message) = unfinished {
        return after
            .finish(Err(anyhow::anyhow!(message)))
            .map(|()| String::new());
    }
    let rolled = if names.is_empty() {
        format!(
            "nothing to do: every service already runs what release {} holds (checked: {})",
            rb.target.id,
            rb.selection
                .candidates
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        // `--to` a release newer than those the services ran (after a rollback too far): each
        // ran its record's release, or the one a rollback's record restored; ids begin with
        // their time, so they order as they were made.
        let ran = |s: &String| {
            current
                .get(s)
                .and_then(|r| r.restores.clone().or_else(|| r.release.clone()))
        };
        let forward = names
            .iter()
            .all(|s| ran(s).is_some_and(|id| id.as_str() < rb.target.id.as_str()));
        let direction = if forward { "forward" } else { "back" };
        format!(
            "rolled {} {direction} to release {}",
            names.join(", "),
            rb.target.id
        )
    };
    if !after.is_clean() {
        // The stacks are back: said before the failed steps end the command.
        run.clock.say(&rolled);
    }
    after.finish(Ok(()))?;
    Ok(rolled)
}

/// Stored packages to deploy.
struct Stored<'a> {
    prepared: Option<&'a Prepared>,
    selection: &'a Selection,
    previous: &'a BTreeMap<String, Record>,
    release: &'a str,
    /// The kind of release the run makes.
    kind: ReleaseKind,
    archives: Option<&'a BTreeMap<String, BTreeMap<String, String>>>,
    /// An approval: the reviewed parameters, and the review.
    fixed: Option<&'a BTreeMap<String, BTreeMap<String, String>>>,
    review: Option<&'a str>,
    /// A rollback: the release whose packages it deploys again (every record names it, so that
    /// a release recovered from them restores it too).
    restores: Option<&'a str>,
    /// A promote: the stage it promotes from (as `restores`, for a recovered release).
    from: Option<&'a str>,
}

fn options(ctx: &Ctx, args: &RunArgs, review: bool) -> DeployOptions {
    DeployOptions {
        test: args.test && !review,
        review,
        ..untested(ctx, args.concurrency, args.timeout)
    }
}

/// How a rollback deploys: no tests (what it deploys passed before), no review.
fn untested(ctx: &Ctx, concurrency: Option<NonZeroUsize>, timeout: u64) -> DeployOptions {
    DeployOptions::for_run(concurrency, Duration::from_secs(timeout), ctx.local)
}

/// Deploys stored packages on the scheduler, as a deploy does (other stages the services read
/// with their own access).
async fn deploy_stored(
    run: &Run<'_>,
    stored: &Stored<'_>,
    options: &DeployOptions,
) -> anyhow::Result<DeployReport> {
    let other_stages = run.ctx.other_stages(run.stage).await?;
    let ci = run.ctx.ci();
    let local_sam = local_sam(run.ctx, run.stage);
    let ctx = DeployContext {
        ws: run.ws,
        stage: run.stage,
        config: &run.aws.config,
        records: run.records,
        previous: stored.previous,
        source: Source {
            commit: ferry_deploy::head_commit(run.ws, ci),
            dirty: false,
        },
        masker: masker(),
        cancel: run.cancel,
        package: stored.prepared,
        adopt: false,
        builds: run.builds,
        expand_sam: local_sam
            .as_ref()
            .map(|l| l as &dyn ferry_deploy::ExpandSam),
        release: Some(ferry_deploy::ReleaseStamp {
            id: stored.release,
            kind: stored.kind,
            by: &run.aws.identity.arn,
            review: stored.review,
            restores: stored.restores,
            from: stored.from,
        }),
        expected_archives: stored.archives,
        declared_parameters_only: true,
        other_stages: &other_stages,
        fixed_parameters: stored.fixed,
    };
    if stored.fixed.is_some() {
        // An approval: a review that no longer holds for one service deploys none.
        ferry_deploy::check_review(&ctx, stored.selection, options).await?;
    }
    let clock = run.clock;
    let print = move |e: ferry_deploy::Event| clock.say(&crate::cmd::deploy::describe(&e));
    Ok(ferry_deploy::deploy_selection(&ctx, stored.selection, options, &print).await)
}

/// The tests' builds of `services` (all when empty) and their dependencies, started before
/// anything deploys.
fn start_builds(
    ws: &ferry_manifest::Workspace,
    services: &[String],
    clock: Clock,
) -> ferry_acceptance::Builds {
    let selected: BTreeSet<String> = if services.is_empty() {
        ws.services.iter().map(|s| s.name.clone()).collect()
    } else {
        ws.graph()
            .with_dependencies(services.iter().map(String::as_str))
    };
    let on = move |e| clock.say(&crate::cmd::deploy::build_event(&e));
    ferry_acceptance::Builds::start(ws, selected.iter().map(String::as_str), masker(), on)
}

/// The source stage of a promote: its records and where it keeps its packages.
struct SourceStage {
    stage: ferry_manifest::Stage,
    records: BTreeMap<String, Record>,
    packages: StoredPackages,
}

async fn source_stage(ctx: &Ctx, from: ferry_manifest::Stage) -> anyhow::Result<SourceStage> {
    let ws = ctx.workspace()?;
    let (aws, records) = ctx.records_of(&from, "").await?;
    let packages = StoredPackages::of_stage(ws, &from, &aws.config, ctx.local)
        .with_context(|| format!("cannot promote from stage `{}`", from.name))?;
    Ok(SourceStage {
        packages,
        stage: from,
        records,
    })
}

/// A protected stage changes only from a commit, as `deploy` has it: `promote`, `rollback` and
/// `approve` take the stage's configuration, the services' parameters and the tests from the
/// checkout, so uncommitted changes there would reach the stage unreviewed. (A checkout that is
/// no git repository, a pipeline's source archive, is taken as it is: the packages carry their
/// own commits, where a `deploy` would have none to record.)
fn clean_if_protected(
    ctx: &Ctx,
    ws: &ferry_manifest::Workspace,
    stage: &ferry_manifest::Stage,
) -> anyhow::Result<()> {
    if stage.config.protected {
        let (tree, _) = ferry_deploy::Tree::read(ws, ctx.ci())?;
        if tree != ferry_deploy::Tree::NotGit {
            ferry_deploy::preflight_tree(ws, stage, &tree)?;
        }
    }
    Ok(())
}

pub fn promote(ctx: &Ctx, args: &PromoteArgs) -> anyhow::Result<()> {
    let clock = Clock::start();
    let ws = ctx.workspace()?;
    let (from, to) = match (&args.from, &args.to) {
        (Some(from), Some(to)) => (ws.stage(from)?, ws.stage(to)?),
        _ => {
            let Some(to) = stage_from_ci(ws, ctx.ci())? else {
                return Ok(());
            };
            let Some(from) = to.config.promote_from.clone() else {
                anyhow::bail!(ferry_deploy::release::ReleaseRunError::NoPromoteSource {
                    stage: to.name.clone(),
                });
            };
            (ws.stage(&from)?, to)
        }
    };
    // Checked before any AWS call.
    ctx.ci().check_may_change("promote", &to.name, to.preview)?;
    ws.check_preview_stacks(&to)?;
    clean_if_protected(ctx, ws, &to)?;
    ferry_deploy::release::check_promote_from(ws, &to, &from)?;
    if to.config.approval && !args.review {
        anyhow::bail!(
            "stage `{}` needs review and approval (approval = true in ferry.toml): run `{} promote {} {} --review`, then `{} approve {} <release>`",
            to.name,
            ctx.app.name,
            from.name,
            to.name,
            ctx.app.name,
            to.name
        );
    }
    ctx.check_services(&args.services)?;
    runtime()?.block_on(async {
        // With `--service`, dependents the target runs are checked and may redeploy: their
        // tests' builds start too.
        let tested: Vec<String> = if args.services.is_empty() {
            Vec::new()
        } else {
            ws.graph()
                .with_dependents(args.services.iter().map(String::as_str))
                .into_iter()
                .collect()
        };
        let builds = args.run.test.then(|| start_builds(ws, &tested, clock));
        let source = source_stage(ctx, from).await?;
        let session = Session::open(ctx, &to).await?;
        let run = session.run(ctx, &to, clock, builds.as_ref());
        session
            .locked("promote", &args.run, promote_locked(args, &run, &source))
            .await
    })
}

/// What a command that writes one stage holds while it runs: the stage's AWS access (its
/// secrets registered with the masker), its records and lock, and the cancel signal.
struct Session<'s> {
    stage: &'s ferry_manifest::Stage,
    aws: ferry_credentials::StageAws,
    records: ferry_records::RecordStore,
    cancel: ferry_graph::Cancel,
    /// The CI build id the lock names.
    build: Option<String>,
}

impl<'s> Session<'s> {
    async fn open(ctx: &Ctx, stage: &'s ferry_manifest::Stage) -> anyhow::Result<Session<'s>> {
        let aws = ctx.aws(stage).await?;
        ctx.register_secrets(stage, &aws).await?;
        ctx.output_dir()?;
        let records = ctx.records(stage, &aws)?;
        Ok(Session {
            stage,
            aws,
            records,
            cancel: ferry_graph::Cancel::new(),
            build: ctx.ci().build_id.clone(),
        })
    }

    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        stage: &'a ferry_manifest::Stage,
        clock: Clock,
        builds: Option<&'a ferry_acceptance::Builds>,
    ) -> Run<'a> {
        Run {
            ctx,
            ws: ctx.workspace().expect("loaded before the session"),
            stage,
            aws: &self.aws,
            records: &self.records,
            cancel: &self.cancel,
            clock,
            builds,
        }
    }

    /// Runs `work` holding the stage's lock (see `lock::with_lock`).
    async fn locked(
        &self,
        command: &str,
        args: &RunArgs,
        work: impl std::future::Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        crate::lock::with_lock(
            self.build.as_deref(),
            &self.records,
            self.stage,
            command,
            args.lock,
            &self.cancel,
            work,
        )
        .await
    }
}

/// The promote itself, while the target stage's lock is held.
async fn promote_locked(
    args: &PromoteArgs,
    run: &Run<'_>,
    source: &SourceStage,
) -> anyhow::Result<()> {
    let (ctx, ws, to, clock) = (run.ctx, run.ws, run.stage, run.clock);
    let from = &source.stage;
    if source.records.is_empty() {
        anyhow::bail!(
            "cannot promote `{}` to `{}`: `{}` has no deployed service (no records), so nothing has passed there to promote; deploy and test it first (`deploy {} --test`)",
            from.name,
            to.name,
            from.name,
            from.name
        );
    }
    let ferry_deploy::StageState {
        records: current,
        drift,
        ..
    } = current_state(run).await?;
    // The release a stopped run left unwritten, before anything is decided (a review deploys
    // nothing, and so writes no release).
    let (head, id) = new_release(run.ctx);
    if !args.review {
        recover_releases(run, &current, ReleaseKind::Promote, &id).await;
    }
    // Tests a promote of these packages never finished (killed, or not recorded): owed here.
    let owed =
        ferry_deploy::release::promoted_untested(ws, &source.records, &current, &args.services);
    let tested_in_order = if args.run.test && !args.review {
        owed.clone()
    } else {
        BTreeSet::new()
    };
    let req = ferry_deploy::release::PromoteRequest {
        from,
        from_records: &source.records,
        from_packages: source.packages.clone(),
        services: &args.services,
        tests_owed: &tested_in_order,
    };
    let dir = ws.layout().package();
    let target = stage_target(run, &dir);
    let p = ferry_deploy::release::prepare_promote(&target, &current, &drift, &req)
        .await
        .with_context(|| format!("cannot promote `{}` to `{}`", from.name, to.name))?;
    for (s, why) in &p.skipped {
        clock.say(&format!("{s}: skipped ({why})"));
    }
    if p.selection.candidates.is_empty() {
        println!(
            "nothing to promote: every selected service of `{}` already runs in `{}` the package that passed in `{}`",
            from.name, to.name, from.name
        );
        if args.run.test && !owed.is_empty() {
            println!(
                "their acceptance tests in `{}` have not passed yet: running those of {}",
                to.name,
                owed.iter().cloned().collect::<Vec<_>>().join(", ")
            );
            let tested = crate::cmd::acceptance::test_and_report(
                ctx,
                &run.access(),
                &current,
                &owed,
                args.run.concurrency,
                clock,
            )
            .await;
            // Their tests failed here, as a promote's own would have (a retry of one cancelled
            // during its tests): on-test-failure holds as for the run that deployed them.
            if tested.is_err()
                && to.config.on_test_failure == OnTestFailure::Rollback
                && !run.cancel.is_cancelled()
            {
                let now = run
                    .records
                    .read_all()
                    .await
                    .context("failed to read the stage's deployment records")?;
                let failed: BTreeSet<String> = owed
                    .iter()
                    .filter(|s| {
                        now.get(*s)
                            .and_then(|r| r.acceptance.as_ref())
                            .is_some_and(|a| !a.passed)
                    })
                    .cloned()
                    .collect();
                if !failed.is_empty() {
                    let mut after = AfterMoved::tested();
                    let e = rolled_back(
                        run,
                        (&id, &current, &failed),
                        (args.run.concurrency, args.run.timeout),
                        &mut after,
                    )
                    .await;
                    return after.finish(Err(e));
                }
            }
            return tested;
        }
        if !owed.is_empty() {
            println!(
                "their acceptance tests in `{}` have not passed yet ({}): `promote … --test` or `test-acceptance {}` runs them",
                to.name,
                owed.iter().cloned().collect::<Vec<_>>().join(", "),
                to.name
            );
        }
        // Failed in the target with the very package that passed in the source (their tests
        // changed since, say): no promote moves them, and `promote --test` tests only what it
        // deploys or owes; the way on is named, since the gate out of this stage stays shut.
        let failed: Vec<&str> = current
            .iter()
            .filter(|(s, r)| {
                !owed.contains(*s)
                    && (args.services.is_empty() || args.services.contains(*s))
                    && r.acceptance.as_ref().is_some_and(|a| !a.passed)
            })
            .map(|(s, _)| s.as_str())
            .collect();
        if !failed.is_empty() {
            println!(
                "note: the acceptance tests of {} failed in `{}` with this package: `test-acceptance {} --all` runs them again (recording the outcome only from a checkout of what the package was made from), or `deploy {} --test` deploys and tests this checkout's package",
                failed.join(", "),
                to.name,
                to.name,
                to.name
            );
        }
        return Ok(());
    }
    let run_release = id.clone();
    let options = DeployOptions {
        tests_owed: tested_in_order,
        ..options(ctx, &args.run, args.review)
    };
    let stored = Stored {
        prepared: p.prepared.as_ref(),
        selection: &p.selection,
        previous: &current,
        release: &id,
        kind: ReleaseKind::Promote,
        archives: Some(&p.archives),
        fixed: None,
        review: None,
        restores: None,
        from: Some(&from.name),
    };
    let report = deploy_stored(run, &stored, &options).await?;
    let mut after = if args.review {
        AfterMoved::reviewed()
    } else {
        AfterMoved::deployed()
    };
    print_summary(ws, to, &report, 0, clock, &mut after);
    let info = ReleaseInfo {
        from: Some(from.name.clone()),
        ..ReleaseInfo::new(id, ReleaseKind::Promote, head, &run.aws.identity.arn)
    };
    if args.review {
        return after.finish(finish_review(run, info, &report).await);
    }
    let mut tests = args.run.test.then(|| ferry_acceptance::Report {
        outcomes: report.tests.clone(),
    });
    // Then the tests still owed by promoted packages this run did not test in the graph's
    // order (when it promoted nothing new, only checked services behind a dependency): run
    // now, so that none is left untested without a word.
    if let Some(t) = tests.as_mut()
        && !run.cancel.is_cancelled()
    {
        let tested: Vec<&str> = t.outcomes.iter().map(|o| o.service.as_str()).collect();
        let now = run
            .records
            .read_all()
            .await
            .context("failed to read the stage's deployment records");
        if let Some(now) = after.keep("reading the records for the tests still owed", now) {
            let owed: BTreeSet<String> =
                ferry_deploy::release::promoted_untested(ws, &source.records, &now, &args.services)
                    .into_iter()
                    .filter(|s| !tested.contains(&s.as_str()))
                    .collect();
            if !owed.is_empty() {
                let more = crate::cmd::acceptance::run_selected(
                    &run.access(),
                    &now,
                    &owed,
                    args.run.concurrency,
                    clock,
                )
                .await;
                if let Some(mut more) = after.keep("the acceptance tests still owed", more) {
                    crate::cmd::acceptance::keep_unmarked(&mut after, &mut more);
                    t.outcomes.extend(more.report.outcomes);
                }
            }
        }
    }
    let written = finish_release(run, info, args.run.test).await;
    let release = after.keep("writing the release", written).flatten();
    let end = end_of_run(
        run,
        ("promote", None),
        &report,
        tests.as_ref(),
        (&run_release, release.as_ref(), &current),
        (args.run.concurrency, args.run.timeout),
        &mut after,
    )
    .await;
    after.finish(end)
}

pub fn rollback(ctx: &Ctx, args: &RollbackArgs) -> anyhow::Result<()> {
    let clock = Clock::start();
    let ws = ctx.workspace()?;
    let stage = ws.stage(&args.stage)?;
    ctx.ci()
        .check_may_change("rollback", &stage.name, stage.preview)?;
    if let Some(meant) = ws.misspelt_stage(&stage) {
        eprintln!(
            "note: `{}` is no stage of ferry.toml but a preview stage's name one slip from `{meant}`; did you mean `{meant}`?",
            stage.name
        );
    }
    clean_if_protected(ctx, ws, &stage)?;
    if let Some(to) = &args.to
        && !ferry_releases::valid_id(to)
    {
        anyhow::bail!(ferry_releases::ReleaseError::BadId { id: to.clone() });
    }
    runtime()?.block_on(async {
        let session = Session::open(ctx, &stage).await?;
        let builds = args.run.test.then(|| start_builds(ws, &[], clock));
        let run = session.run(ctx, &stage, clock, builds.as_ref());
        let store = store_of(&run).with_context(|| {
            format!(
                "stage `{}` keeps no releases (no artifact-bucket): nothing to roll back to",
                stage.name
            )
        })?;
        let options = DeployOptions {
            test: args.run.test,
            ..untested(ctx, args.run.concurrency, args.run.timeout)
        };
        let work = async {
            let state = current_state(&run).await?;
            let said = rollback_to(
                &run,
                &store,
                state.records,
                &state.drift,
                args.to.as_deref(),
                None,
                &options,
            )
            .await?;
            println!("{said}");
            Ok(())
        };
        session.locked("rollback", &args.run, work).await
    })
}

pub fn status(ctx: &Ctx, args: &StatusArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let names: Vec<String> = if args.stages.is_empty() {
        ws.stages_in_promotion_order()
            .into_iter()
            .map(String::from)
            .collect()
    } else {
        // Each once, in the order given (`status dev dev` showed dev twice).
        let mut seen = BTreeSet::new();
        args.stages
            .iter()
            .filter(|s| seen.insert(s.as_str()))
            .cloned()
            .collect()
    };
    let stages = names
        .iter()
        .map(|n| ws.stage(n))
        .collect::<Result<Vec<_>, _>>()?;
    let (columns_read, statuses) = runtime()?.block_on(async {
        let mut columns_read = Vec::new();
        let mut statuses = Vec::new();
        for stage in &stages {
            let read = async {
                let aws = ctx.aws(stage).await?;
                let records = ctx.records(stage, &aws)?.read_all().await?;
                let store = ferry_deploy::release::release_store(ws, stage, &aws.config, ctx.local);
                // Every id: a release the records name and the store lacks is said.
                let (latest, ids) = match &store {
                    Some(s) => {
                        let ids = s.ids().await?;
                        let latest = match ids.first() {
                            Some(id) => s.get(id).await?,
                            None => None,
                        };
                        (latest, Some(ids))
                    }
                    None => (None, None),
                };
                anyhow::Ok((records, latest, ids))
            };
            let (records, latest, ids, error) = match read.await {
                Ok((r, l, i)) => (r, l, i, None),
                Err(e) => (
                    BTreeMap::new(),
                    None,
                    None,
                    Some(crate::ui::mask(&format!("{e:#}"))),
                ),
            };
            let mut status =
                ferry_releases::StageStatus::new(&stage.name, &stage.id, latest.as_ref());
            if let Some(ids) = &ids {
                status = status.with_unwritten(records.values(), ids);
            }
            columns_read.push((stage.name.clone(), records));
            statuses.push(ferry_releases::StageStatus { error, ..status });
        }
        anyhow::Ok((columns_read, statuses))
    })?;
    let untested = ferry_deploy::release::untested(ws);
    let services: Vec<String> = ws.services.iter().map(|s| s.name.clone()).collect();
    let promotes_from: BTreeMap<String, String> = ws
        .stages
        .iter()
        .filter_map(|(name, c)| Some((name.clone(), c.promote_from.clone()?)))
        .collect();
    let m = ferry_releases::matrix(&columns_read, &services, &promotes_from, &|s| {
        untested.contains(s)
    });
    match args.format {
        StatusFormat::Json => {
            let doc = ferry_releases::StatusDoc {
                stages: &statuses,
                services: &m.services,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("serialisable")
            );
        }
        StatusFormat::Text => {
            let mut header = vec!["service"];
            header.extend(m.stages.iter().map(String::as_str));
            let cells: Vec<Vec<String>> = m
                .services
                .iter()
                .map(|row| {
                    let mut line = vec![row.service.clone()];
                    for stage in &m.stages {
                        line.push(match row.stages.get(stage).and_then(Option::as_ref) {
                            None => "-".into(),
                            Some(c) => format!(
                                "{}{}{} {} {}",
                                if c.same_as_previous == Some(false) {
                                    "≠ "
                                } else {
                                    ""
                                },
                                c.commit.get(..7).unwrap_or(&c.commit),
                                if c.dirty { "+dirty" } else { "" },
                                c.tests,
                                ferry_records::format_time(c.deployed_at)
                                    .get(5..16)
                                    .unwrap_or_default(),
                            ),
                        });
                    }
                    line
                })
                .collect();
            let rows: Vec<Vec<&str>> = cells
                .iter()
                .map(|r| r.iter().map(String::as_str).collect())
                .collect();
            print!("{}", columns(&header, &rows));
            println!(
                "(commit, tests, deployed at UTC; ≠: another package than in the stage it promotes from, else the stage to its left; -: not deployed)"
            );
            for s in &statuses {
                match (&s.error, &s.release) {
                    (Some(e), _) => println!("{}: could not be read: {e}", s.name),
                    (None, Some(r)) => println!("{}: newest release {r}", s.name),
                    (None, None) => println!("{}: no releases", s.name),
                }
                // A preview named by hand with nothing in it: most likely a misspelt stage.
                let empty_preview = stages.iter().find(|st| {
                    st.name == s.name
                        && st.preview
                        && s.error.is_none()
                        && columns_read
                            .iter()
                            .any(|(n, records)| *n == s.name && records.is_empty())
                });
                if let Some(stage) = empty_preview {
                    println!(
                        "{}: not configured in ferry.toml, so a preview stage, of which nothing is deployed{}",
                        s.name,
                        ws.misspelt_stage_hint(stage)
                    );
                }
                if !s.unwritten.is_empty() {
                    println!(
                        "{}: its records name {} {}, which its bucket lacks: a run still going (a batch before its `batch finish`) or one stopped before writing it; once none runs, the next run of `{}` writes it",
                        s.name,
                        if s.unwritten.len() == 1 {
                            "release"
                        } else {
                            "releases"
                        },
                        s.unwritten.join(", "),
                        s.name
                    );
                }
            }
        }
    }
    if statuses.iter().any(|s| s.error.is_some()) {
        anyhow::bail!("some stages could not be read (see above)");
    }
    Ok(())
}

/// After a review: the pending release kept for `approve`, the reports written, the review
/// printed.
pub(crate) async fn finish_review(
    run: &Run<'_>,
    info: ReleaseInfo,
    report: &DeployReport,
) -> anyhow::Result<()> {
    let (ws, stage) = (run.ws, run.stage);
    let Some(pending) = ferry_deploy::release::pending_release(ws, stage, info, report)? else {
        println!("review: nothing would change in stage `{}`", stage.name);
        return Ok(());
    };
    let store = store_of(run).with_context(|| {
        format!(
            "stage `{}` has no artifact-bucket, where a review is kept for its approval; set one in ferry.toml",
            stage.name
        )
    })?;
    store
        .put_pending(&pending)
        .await
        .context("failed to keep the review for its approval")?;
    let md = crate::ui::mask(&ferry_releases::review::markdown(
        &stage.name,
        &pending.id,
        &pending.reviews,
        &pending.dependents,
    ));
    let json = crate::ui::mask(
        &serde_json::to_string_pretty(&ferry_releases::review::ReviewDoc::of(
            &stage.name,
            &pending,
        ))
        .expect("serialisable"),
    );
    let layout = ws.layout();
    // The review is kept: its id and how to approve it are printed even when its report files
    // cannot be written (that error comes after them).
    let written = [("md", &md), ("json", &json)]
        .into_iter()
        .try_for_each(|(ext, text)| {
            let path = layout.review_report(&stage.id, &pending.id, ext);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("failed to create {}", dir.display()))?;
            }
            std::fs::write(&path, text)
                .with_context(|| format!("failed to write {}", path.display()))
        });
    println!();
    print!("{md}");
    println!();
    let reports = match &written {
        Ok(()) => format!(
            "reports: {}",
            layout.review_report(&stage.id, &pending.id, "md").display()
        ),
        Err(_) => "its report files could not be written".to_string(),
    };
    println!(
        "review: {} ({reports}); approve with `{} approve {} {}`",
        pending.id, run.ctx.app.name, stage.name, pending.id
    );
    written
}

pub fn approve(ctx: &Ctx, args: &ApproveArgs) -> anyhow::Result<()> {
    let clock = Clock::start();
    let ws = ctx.workspace()?;
    let stage = ws.stage(&args.stage)?;
    ctx.ci()
        .check_may_change("approve", &stage.name, stage.preview)?;
    ws.check_preview_stacks(&stage)?;
    clean_if_protected(ctx, ws, &stage)?;
    if !ferry_releases::valid_id(&args.release) {
        anyhow::bail!(ferry_releases::ReleaseError::BadId {
            id: args.release.clone()
        });
    }
    runtime()?.block_on(async {
        let session = Session::open(ctx, &stage).await?;
        let builds = args.run.test.then(|| start_builds(ws, &[], clock));
        let run = session.run(ctx, &stage, clock, builds.as_ref());
        let store = store_of(&run).with_context(|| {
            format!(
                "stage `{}` keeps no reviews (no artifact-bucket): nothing to approve",
                stage.name
            )
        })?;
        session
            .locked("approve", &args.run, approve_locked(args, &run, &store))
            .await
    })
}

/// The approval itself, while the stage's lock is held.
async fn approve_locked(
    args: &ApproveArgs,
    run: &Run<'_>,
    store: &ReleaseStore,
) -> anyhow::Result<()> {
    let (ctx, ws, stage, clock) = (run.ctx, run.ws, run.stage, run.clock);
    let dir = ws.layout().package();
    let target = stage_target(run, &dir);
    let current = current_records(run).await?;
    let cannot = || {
        format!(
            "cannot approve `{}` in stage `{}`",
            args.release, stage.name
        )
    };
    // With --test, tests owed in the stage (an approval stopped before its tests) run where
    // their services stand in the graph, before the dependents the approval deploys.
    let owed = if args.run.test {
        let commit = ferry_deploy::head_commit(ws, ctx.ci());
        ferry_deploy::approval_tests_owed(ws, stage, &current, &commit)?
    } else {
        BTreeSet::new()
    };
    let prepared =
        ferry_deploy::release::prepare_approval(&target, store, &args.release, &current, &owed)
            .await;
    // The release a stopped run left unwritten, before anything else is decided, also when the
    // approval is refused (a stopped approval's, say). Recovering reads no review: the approval's
    // checks are the same either way.
    let (head, id) = new_release(run.ctx);
    let kind = prepared
        .as_ref()
        .map_or(ReleaseKind::Deploy, |p| p.pending.kind);
    recover_releases(run, &current, kind, &id).await;
    let plan = prepared.with_context(cannot)?;
    // The gate again: what passed in the source stage at the review may have failed since.
    if let Some(from) = plan
        .pending
        .from
        .clone()
        .or_else(|| stage.config.promote_from.clone())
    {
        let (_, source_records) = ctx.records_of(&ws.stage(&from)?, " for the gate").await?;
        ferry_deploy::release::recheck_gate(ws, stage, &from, &source_records, &plan.pending)
            .with_context(cannot)?;
        clock.say(&format!(
            "gate: the {} reviewed service(s) still pass in `{from}`",
            plan.pending.services.len()
        ));
    }
    let by = run.aws.identity.arn.clone();
    clock.say(&format!("approving review {} as {by}", args.release));
    for (s, why) in &plan.skipped {
        clock.say(&format!("{s}: skipped ({why})"));
    }
    let stored = Stored {
        prepared: Some(&plan.prepared),
        selection: &plan.selection,
        previous: &current,
        release: &id,
        kind: plan.pending.kind,
        archives: Some(&plan.archives),
        fixed: Some(&plan.parameters),
        review: Some(&args.release),
        restores: None,
        from: plan.pending.from.as_deref(),
    };
    let options = DeployOptions {
        tests_owed: owed,
        ..options(ctx, &args.run, false)
    };
    let report = deploy_stored(run, &stored, &options).await?;
    // The stacks moved: whatever fails from here on, the run goes on to its tests' summary and
    // on-test-failure rollback, and says the failure at the end.
    let mut after = AfterMoved::deployed();
    print_summary(ws, stage, &report, 0, clock, &mut after);
    let untested: Vec<&str> = options
        .tests_owed
        .iter()
        .filter(|s| !plan.selection.candidates.contains(*s))
        .map(String::as_str)
        .collect();
    if !untested.is_empty() {
        clock.say(&format!(
            "note: the tests {} owe are not run by an approval (a Serverless Framework service would compile again only to be tested; a package not stored cannot be checked): `test-acceptance {} --service …` runs them",
            untested.join(", "),
            stage.name
        ));
    }
    let approval = ferry_releases::Approval {
        review: args.release.clone(),
        by: by.clone(),
        at: ferry_records::now_secs(),
        release: id.clone(),
    };
    let mut pending = plan.pending;
    let info = ReleaseInfo {
        from: pending.from.clone(),
        gate_override: pending.gate_override.clone(),
        approval: Some(approval.clone()),
        ..ReleaseInfo::new(id, pending.kind, head, &by)
    };
    let written = finish_release(run, info, args.run.test).await;
    let wrote = written.is_ok();
    let release = after.keep("writing the release", written).flatten();
    // Approved once it deployed whole, after its release (which the approval names) is written;
    // after a partial failure the stacks moved, so the review is stale and a new review shows
    // what is left.
    if report.succeeded() && wrote {
        pending.approved = Some(approval.clone());
        let marked = store
            .put_pending(&pending)
            .await
            .context("failed to mark the review approved");
        after.keep("marking the review approved", marked);
    }
    let tests = args.run.test.then(|| ferry_acceptance::Report {
        outcomes: report.tests.clone(),
    });
    let end = end_of_run(
        run,
        ("approval", Some(&args.release)),
        &report,
        tests.as_ref(),
        (&approval.release, release.as_ref(), &current),
        (args.run.concurrency, args.run.timeout),
        &mut after,
    )
    .await;
    after.finish(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_deploy::ServiceResult as R;

    /// An approval interrupted before anything deployed says to approve the same review again
    /// (it said to review again, though the same review could be, and was, approved); one
    /// that deployed part of it, to review again; a failure, to fix it first.
    #[test]
    fn an_unfinished_run_says_what_to_do_next() {
        let deployed = R::Deployed {
            action: ferry_stacks::Action::Created,
        };
        let stopped = R::Failed {
            error: std::sync::Arc::new(ferry_deploy::ServiceError::TestsStopped {
                action: "deployed (updated)".into(),
            }),
        };
        assert_eq!(
            unfinished(
                ("approval", Some("r1")),
                "qa",
                "ferry",
                &[&deployed, &stopped]
            ),
            "the approval of stage `qa` deployed all it was to, but the cancel stopped acceptance tests before they ended (nothing is recorded of them): `ferry test-acceptance qa` runs them"
        );
        // A dependent of the service whose tests were stopped was not deployed.
        let skipped = R::Skipped {
            failed_dependency: "api".into(),
        };
        assert_eq!(
            unfinished(
                ("approval", Some("r1")),
                "qa",
                "ferry",
                &[&stopped, &skipped]
            ),
            "the approval of stage `qa` was interrupted before it completed; review again (`--review`) and approve the new review: it shows what is left"
        );
        assert_eq!(
            unfinished(("deploy", None), "qa", "ferry", &[&stopped, &R::Cancelled]),
            "the deploy of stage `qa` was interrupted before it completed; run it again (it redoes only what is missing)"
        );
        let say = |what: &str, results: &[&R]| {
            let review = (what == "approval").then_some("20261207-200632.594-bab4c5d");
            unfinished((what, review), "qa", "ferry", results)
        };
        assert_eq!(
            say("approval", &[&R::Cancelled, &R::Cancelled]),
            "the approval of stage `qa` was interrupted before it deployed anything; approve the same review again (`ferry approve qa 20261207-200632.594-bab4c5d`)"
        );
        assert_eq!(
            say("approval", &[&deployed, &R::Cancelled]),
            "the approval of stage `qa` was interrupted before it completed; review again (`--review`) and approve the new review: it shows what is left"
        );
        assert_eq!(
            say("deploy", &[&R::Cancelled]),
            "the deploy of stage `qa` was interrupted before it completed; run it again (it redoes only what is missing)"
        );
        let failed = R::Skipped {
            failed_dependency: "db".into(),
        };
        assert!(say("deploy", &[&failed]).contains("did not complete; fix the failures above"));
    }
}
