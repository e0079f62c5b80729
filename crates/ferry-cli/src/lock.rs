//! Running a command's work while it holds its stage's lock, and the signals that stop it.
//!
//! The first Ctrl-C or SIGTERM (a CI cancel, `timeout`) starts nothing new and lets running stack
//! operations finish; a second one aborts. If another run takes the lock over, the work is
//! cancelled the same way. Whatever happens, the lock is released afterwards, and only if it is
//! still this run's.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use ferry_graph::Cancel;
use ferry_manifest::Stage;
use ferry_records::{LockHolder, RENEW_EVERY, RecordStore, Released};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// How a command takes its stage's lock: `--force-unlock` and `--wait-lock`.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct LockArgs {
    /// Take over the stage's lock if it is stale (its process is gone from this host, or it was
    /// not renewed for 5 minutes; a batch's, 60), saying whose lock it displaced; a live lock is
    /// never taken
    #[arg(long)]
    pub force_unlock: bool,
    /// While another run holds the stage's lock and keeps it alive, wait up to this many
    /// seconds for it to be released instead of failing at once (saying who holds it when the
    /// wait starts and each minute after; Ctrl-C stops waiting, with nothing changed)
    #[arg(long, value_name = "SECONDS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub wait_lock: u64,
}

/// How soon a run waiting for another's lock (`--wait-lock`) looks again at first (one
/// GetParameter; then less often, see [`RecordStore::wait_while_held`]).
const LOCK_POLL: Duration = Duration::from_secs(5);

/// Ctrl-C and SIGTERM, watched (by a run given a wait for the lock, from its first look until
/// its work begins; by [`watch_signals`], while the work runs): once watched, a signal no
/// longer ends the process by itself, so every step up to the run's own watch asks whether one
/// came.
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn watch() -> anyhow::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("failed to watch for Ctrl-C")?,
            term: signal(SignalKind::terminate()).context("failed to watch for SIGTERM")?,
        })
    }

    /// The signal that came and was not asked about yet, if one did.
    async fn came(&mut self) -> Option<&'static str> {
        tokio::select! {
            biased;
            _ = self.int.recv() => Some("Ctrl-C"),
            _ = self.term.recv() => Some("SIGTERM"),
            () = std::future::ready(()) => None,
        }
    }

    /// The next signal.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "Ctrl-C",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// One run's wait for its stage's lock (`--wait-lock`), over every round: a run refused as it
/// went for the lock (another waiter took it first) waits again while its time lasts.
pub(crate) struct Wait {
    started: tokio::time::Instant,
    seconds: u64,
    signals: Option<Signals>,
    /// Whether another run's lock was waited for in any round.
    waited: bool,
}

impl Wait {
    /// A wait of at most `seconds` in all (0: none).
    pub(crate) fn new(seconds: u64) -> Wait {
        Wait {
            started: tokio::time::Instant::now(),
            seconds,
            signals: None,
            waited: false,
        }
    }

    /// Whether there is time left to wait again.
    pub(crate) fn time_left(&self) -> bool {
        self.started.elapsed().as_secs() < self.seconds
    }

    /// With a wait asked for and time left, looks at `stage`'s lock and, while another run
    /// holds it and keeps it alive, waits within the time left
    /// ([`RecordStore::wait_while_held`]): a line when the wait starts, when the holder changes
    /// hands, and each minute after. Writes nothing, so a signal just stops it. Signals are
    /// watched from the first look on (a run given no wait keeps their default action until
    /// its own watch starts), and asked about at every later step.
    pub(crate) async fn turn(
        &mut self,
        records: &RecordStore,
        stage: &Stage,
        holder: &LockHolder,
    ) -> anyhow::Result<()> {
        let left = Duration::from_secs(self.seconds).saturating_sub(self.started.elapsed());
        if left.is_zero() {
            return Ok(());
        }
        if self.signals.is_none() {
            self.signals = Some(Signals::watch()?);
        }
        let read = || format!("failed to read the lock of stage `{}`", stage.name);
        let most = ferry_records::lock::human(self.seconds);
        let before = self.started.elapsed();
        // The holder as it changes hands: a batch's nodes rewrite their host and pid as each
        // renews, which is no new holder.
        let mut said: Option<((String, Option<String>), Duration)> = None;
        let waited_before = &mut self.waited;
        let mut waiting = |other: &LockHolder, this_round: Duration| {
            *waited_before = true;
            let who = (other.token.clone(), other.batch.clone());
            let waited = before + this_round;
            if said
                .as_ref()
                .is_some_and(|(last, at)| *last == who && waited < *at + Duration::from_secs(60))
            {
                return;
            }
            crate::ui::note(&format!(
                "lock: stage `{}` is held by {other}; waiting for it to be released ({} waited of at most {most}, --wait-lock)",
                stage.name,
                ferry_records::lock::human(waited.as_secs()),
            ));
            said = Some((who, waited));
        };
        let signals = self.signals.as_mut().expect("watched above");
        tokio::select! {
            w = records.wait_while_held(holder, left, LOCK_POLL, &mut waiting) => {
                w.with_context(read)?;
                Ok(())
            }
            name = signals.next() => anyhow::bail!(
                "stopped waiting for the lock of stage `{}` ({name}); nothing was changed",
                stage.name
            ),
        }
    }

    /// Fails when a signal came since the last look (nothing taken yet: nothing changed).
    pub(crate) async fn stop_if_signalled(&mut self, stage: &Stage) -> anyhow::Result<()> {
        if let Some(name) = self.signalled().await {
            anyhow::bail!(
                "stopped ({name}) before taking the lock of stage `{}`; nothing was changed",
                stage.name
            );
        }
        Ok(())
    }

    /// The signal that came since the last look, if signals are watched and one did.
    pub(crate) async fn signalled(&mut self) -> Option<&'static str> {
        self.signals.as_mut()?.came().await
    }

    /// What a refusal after a wait adds: how long it waited ("" when it never did).
    pub(crate) fn said(&self) -> String {
        if !self.waited {
            return String::new();
        }
        format!(
            " after waiting {} for it (--wait-lock {})",
            ferry_records::lock::human(self.started.elapsed().as_secs()),
            self.seconds
        )
    }
}

/// Runs `work` holding `stage`'s lock for `command`. `how.force_unlock` takes over a stale
/// lock (and says whose); `how.wait_lock` waits that long for another run's live lock first,
/// and again if another waiter takes it first. `cancel` is what `work` watches to start
/// nothing new. `build` is the CI build id the lock names beside this host and process.
pub async fn with_lock<T>(
    build: Option<&str>,
    records: &RecordStore,
    stage: &Stage,
    command: &str,
    how: LockArgs,
    cancel: &Cancel,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let holder = LockHolder::for_this_process(
        &|k| std::env::var(k).ok(),
        command,
        &stage.name,
        build.map(str::to_string),
    );
    let mut wait = Wait::new(how.wait_lock);
    let acquired = loop {
        wait.turn(records, stage, &holder).await?;
        wait.stop_if_signalled(stage).await?;
        match records.lock(&holder, how.force_unlock).await {
            // Taken by another (a run that waited too) since the lock looked free: waited
            // for again while the time lasts.
            Err(
                ferry_records::RecordError::Locked { stale: None, .. }
                | ferry_records::RecordError::LockedLive { .. },
            ) if wait.time_left() => {}
            acquired => {
                break acquired.with_context(|| {
                    format!("failed to lock stage `{}`{}", stage.name, wait.said())
                })?;
            }
        }
    };
    if let Some((old, why)) = acquired.displaced {
        eprintln!(
            "took over the lock of stage `{}` from {old}: it was stale ({why})",
            stage.name
        );
    }
    let work = async {
        // A signal since the last look, up to now that the run's own watch has begun (this is
        // polled within it): no work, and the lock is released below.
        if let Some(name) = wait.signalled().await {
            anyhow::bail!(
                "stopped ({name}) as the lock of stage `{}` was taken, before any work",
                stage.name
            );
        }
        work.await
    };
    let outcome = interruptible(
        records,
        &holder,
        cancel,
        RENEW_EVERY,
        interrupted_doing(command),
        work,
    )
    .await;
    // Gone (taken over and released, or deleted) or another's between two renewals: another
    // run wrote to the stage while this one did, which no success may hide.
    let lost = match records.unlock(&holder).await {
        Ok(Released::Released) => None,
        Ok(Released::Gone) => Some(
            "was gone when this run went to release it: another run took it over (and released it), or it was deleted, while this run worked".to_string(),
        ),
        Ok(Released::NotOurs(other)) => Some(format!(
            "is held by {other} now: it was taken over while this run worked (left in place)"
        )),
        Err(e) => {
            eprintln!(
                "warning: failed to release the lock of stage `{}`: {}; {}, and --force-unlock takes it over then",
                stage.name,
                crate::ui::mask(&e.to_string()),
                ferry_records::lock::stale_rule(&holder)
            );
            None
        }
    };
    failed_if_lost(stage, lost, "", outcome)
}

/// `outcome`, failed when the run's lock was `lost` (`what` became of it): another run may have
/// changed the stage meanwhile, which no success may hide. `also`: what else that means.
fn failed_if_lost<T>(
    stage: &Stage,
    lost: Option<String>,
    also: &str,
    outcome: anyhow::Result<T>,
) -> anyhow::Result<T> {
    let Some(what) = lost else {
        return outcome;
    };
    let lost = format!(
        "the lock of stage `{}` {what}, so another run may have changed the stage at the same time{also}; check the stage (`plan {}`, `status`) once that run ends",
        stage.name, stage.name
    );
    match outcome {
        Ok(_) => Err(anyhow::anyhow!(lost)),
        Err(e) => Err(e.context(lost)),
    }
}

/// How often a node looks again whether its twin ended ([`wait_for_twin`]).
const TWIN_POLL: Duration = Duration::from_secs(3);

/// Waits while a twin of this node works: the node of the same batch and service in another
/// process, a second build of one commit and trigger, which CodeBuild gives the same batch id (a
/// pull request closed and reopened while its build ran, a retried build, a webhook delivered
/// twice). Joined, both deployed one stack at once, and the second failed and was announced
/// as failing though the first deployed it. Once the twin ends (or its mark goes stale: killed,
/// its machine lost) this node goes on, and finds what the twin left to do. Two twins looking
/// at the same moment still both go on (SSM has no compare-and-swap): the window is one read.
async fn wait_for_twin(
    records: &RecordStore,
    stage: &Stage,
    holder: &LockHolder,
    service: &str,
    cancel: &Cancel,
) -> anyhow::Result<()> {
    let mut said = false;
    loop {
        let nodes = records.batch_nodes(holder).await.with_context(|| {
            format!(
                "failed to read the batch nodes at work in stage `{}`",
                stage.name
            )
        })?;
        let Some(twin) = nodes
            .into_iter()
            .find(|n| n.service == service && n.stale.is_none() && !n.holder.same_process(holder))
        else {
            return Ok(());
        };
        if !said {
            eprintln!(
                "batch node `{service}`: this batch's node of `{service}` is marked at work by another process ({}, renewed {} ago): a second build of this commit and trigger, or a killed one whose mark goes stale {} after its last renewal; waiting for it to end, then doing what it left to do",
                twin.holder,
                ferry_records::lock::human(twin.renewed_secs_ago),
                ferry_records::lock::human(ferry_records::LOCK_TTL.as_secs()),
            );
            said = true;
        }
        if cancel.is_cancelled() {
            anyhow::bail!(
                "batch node `{service}` was interrupted while it waited for its twin in another process; nothing was done"
            );
        }
        tokio::time::sleep(TWIN_POLL).await;
    }
}

/// The lock holder of a node of `batch` in this process (the batch's token, this host and pid).
pub(crate) fn batch_holder(build: Option<&str>, stage: &Stage, batch: &str) -> LockHolder {
    LockHolder::for_this_process(
        &|k| std::env::var(k).ok(),
        "batch node",
        &stage.name,
        build.map(str::to_string),
    )
    .in_batch(batch)
}

/// Whether `e` is a refusal of the lock by another run's live lock, before anything was done
/// under it (the case `--wait-lock` waits for again). Only taking or joining the lock raises
/// these; a lock lost while working is another error.
pub(crate) fn refused_by_live_lock(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ferry_records::RecordError>(),
        Some(
            ferry_records::RecordError::Locked { stale: None, .. }
                | ferry_records::RecordError::LockedLive { .. }
        )
    )
}

/// The refusal of a batch node by `other`'s live lock, as [`with_batch_lock`] says it.
pub(crate) fn refused_by(stage: &Stage, batch: &str, other: LockHolder) -> anyhow::Error {
    let locked = ferry_records::RecordError::Locked {
        stage: stage.name.clone(),
        holder: Box::new(other),
        stale: None,
    };
    join_refused(stage, batch, locked)
}

/// `e`, which refused a node of `batch` the stage's lock.
fn join_refused(stage: &Stage, batch: &str, e: ferry_records::RecordError) -> anyhow::Error {
    anyhow::Error::new(e).context(format!(
        "failed to join the lock of stage `{}` for batch `{batch}`",
        stage.name
    ))
}

/// A node of a batch: the batch's id, the service the node deploys, and its commit.
#[derive(Debug, Clone, Copy)]
pub struct BatchNode<'a> {
    pub batch: &'a str,
    pub service: &'a str,
    pub commit: &'a str,
}

/// Runs `work` as a node of `batch`, sharing the stage's lock with the batch's other nodes
/// (taking it if it is free). `work` gets the batch's release id: named, by the node that took
/// the lock, after when it took it and `commit` (its own), and kept in the lock, so that nodes
/// and `batch finish` at other commits name the same release. The lock stays when the node
/// ends: the batch's last step (`batch finish`) releases it, or it goes stale 60 minutes after
/// the last node renewed it ([`ferry_records::BATCH_LOCK_TTL`]).
pub async fn with_batch_lock<T, F: Future<Output = anyhow::Result<T>>>(
    build: Option<&str>,
    records: &RecordStore,
    stage: &Stage,
    batch: BatchNode<'_>,
    force: bool,
    cancel: &Cancel,
    work: impl FnOnce(String) -> F,
) -> anyhow::Result<T> {
    let BatchNode {
        batch,
        service,
        commit,
    } = batch;
    let mut holder = batch_holder(build, stage, batch);
    // To the millisecond, as a plain run's: two batches whose locks were taken in one second
    // named one release, and the second overwrote the first's.
    holder.release = Some(ferry_releases::new_id(ferry_records::now_millis(), commit));
    // Looked at first: a node that another run's live lock refuses writes no mark (it would
    // replace that of the other run's node of this service, and then delete it). Marks are one
    // per service: a node that loses the race to another batch's node of its service after
    // this look still does so, and that node writes its mark again at its next renewal.
    let held = records
        .held_by_other(&holder)
        .await
        .with_context(|| format!("failed to read the lock of stage `{}`", stage.name))?;
    if let Some(other) = held {
        return Err(refused_by(stage, batch, other));
    }
    wait_for_twin(records, stage, &holder, service, cancel).await?;
    // Marked as at work before it joins (renewed with the lock, deleted as it ends), so that a
    // `batch finish` run meanwhile waits for it rather than releasing the lock under it.
    records.mark_node(service, &holder).await.with_context(|| {
        format!(
            "failed to mark batch node `{service}` as at work in stage `{}`",
            stage.name
        )
    })?;
    // With --force-unlock, another run's stale lock is taken over for this batch.
    let joined = records.join_forcing(&holder, force).await;
    if joined.is_err() {
        let _ = records.unmark_node(service).await;
    }
    let joined = joined.map_err(|e| join_refused(stage, batch, e))?;
    match joined {
        ferry_records::Joined::Took => eprintln!(
            "lock: stage `{}` taken for batch `{batch}` (its nodes share it; `batch finish` releases it)",
            stage.name
        ),
        ferry_records::Joined::TookOver { from, why } => eprintln!(
            "took over the lock of stage `{}` for batch `{batch}` from {from}: it was stale ({why})",
            stage.name
        ),
        ferry_records::Joined::Joined { since, release } => {
            holder.since = since;
            // A lock taken before locks kept the release: named as the nodes then named it.
            holder.release =
                Some(release.unwrap_or_else(|| ferry_releases::batch_release_id(since, commit)));
            eprintln!(
                "lock: joined batch `{batch}`, which holds stage `{}` since {} UTC",
                stage.name,
                ferry_records::format_time(since)
            );
        }
    }
    let release = holder.release.clone().expect("set above");
    let result = interruptible(
        records,
        &holder,
        cancel,
        RENEW_EVERY,
        interrupted_doing("batch node"),
        work(release),
    )
    .await;
    if let Err(e) = records.unmark_node(service).await {
        eprintln!(
            "warning: failed to clear the mark of batch node `{service}` in stage `{}`: {}; `batch finish` waits for it until it is stale ({} after this node's last renewal)",
            stage.name,
            crate::ui::mask(&e.to_string()),
            ferry_records::lock::human(ferry_records::LOCK_TTL.as_secs()),
        );
    }
    // The next wave's nodes may start minutes later: the batch's lock counts from now. A lock
    // gone (a `batch finish` run before this node ended, or deleted) or another's by now was not
    // this batch's for all of this node's work, which no success may hide.
    let lost = match records.renew(&holder).await {
        Ok(()) => None,
        Err(ferry_records::RecordError::LockLost { holder: None, .. }) => Some(
            "was gone when this node ended: `batch finish` released it while this node worked (run it only once every node has ended), or it was deleted".to_string(),
        ),
        Err(ferry_records::RecordError::LockLost {
            holder: Some(other),
            ..
        }) => Some(format!(
            "is held by {other} now: it was taken over while this node worked (left in place)"
        )),
        Err(e) => {
            eprintln!(
                "warning: failed to renew the lock of stage `{}` for batch `{batch}` as this node ended: {}; {}",
                stage.name,
                crate::ui::mask(&e.to_string()),
                ferry_records::lock::stale_rule(&holder)
            );
            None
        }
    };
    failed_if_lost(
        stage,
        lost,
        ", and the batch's release may lack this node's deploy",
        result,
    )
}

/// What a run of `command` does once interrupted, as said when the signal comes.
fn interrupted_doing(command: &str) -> &'static str {
    match command {
        // Tests can stop half way without harm (a stack operation cannot).
        "test-acceptance" => {
            "stopping the acceptance tests that run, starting none (Ctrl-C again to abort)"
        }
        _ => {
            "starting nothing new, letting running stack operations finish (Ctrl-C again to abort)"
        }
    }
}

/// Runs `work` while `holder`'s lock is renewed every `every`, turning signals and a lost lock
/// into `cancel` (a second signal aborts); `doing` says what the run does once interrupted.
async fn interruptible<T>(
    records: &RecordStore,
    holder: &LockHolder,
    cancel: &Cancel,
    every: std::time::Duration,
    doing: &'static str,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::pin!(work);
    // Signals are watched by a task of their own, which cancels the run itself: the work may
    // hold its thread (a build inside packaging runs for minutes without yielding), and the
    // cancellation is what stops that build. Later signals are passed on, to abort.
    let (_watcher, mut again_rx) = watch_signals(cancel, doing)?;
    // The lock is renewed by a task of its own too, for the same reason.
    // Renewals failing for minutes (SSM unreachable, throttled): said at once, and nothing new
    // starts; the lock is still renewed for what runs.
    let (failing_tx, mut failing_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let keeper = {
        let records = records.clone();
        let holder = holder.clone();
        tokio::spawn(async move {
            let failing = move |e: &ferry_records::RecordError| {
                let _ = failing_tx.send(());
                crate::ui::note(&crate::ui::mask(&format!(
                    "error: {e}; the stage's lock could not be renewed for minutes: starting nothing new"
                )));
            };
            records.keep_every(&holder, &failing, every).await
        })
    };
    // Renewing stops when this returns, whichever way.
    let mut keeper = AbortOnDrop(keeper);
    let mut lost = None;
    loop {
        tokio::select! {
            r = &mut work => {
                return match lost {
                    Some(e) => Err(anyhow::Error::new(e)).context("the run lost its lock while it worked"),
                    None => r,
                };
            }
            e = &mut keeper.0, if lost.is_none() => {
                let e = match e {
                    Ok(e) => e,
                    Err(j) => std::panic::resume_unwind(j.into_panic()),
                };
                cancel.cancel();
                crate::ui::note(&format!("error: {e}"));
                lost = Some(e);
            }
            Some(()) = failing_rx.recv() => cancel.cancel(),
            Some(name) = again_rx.recv() => {
                crate::ui::note(&format!(
                    "aborted ({name} again): stack operations already started go on in CloudFormation; their services are not recorded, and the next run redoes them"
                ));
                // A plain run releases the lock on its way out; a batch's stays with the
                // batch (its finish, or a retry of this node, goes on under it).
                anyhow::bail!(if holder.batch.is_some() {
                    "aborted by a second interrupt; the batch keeps the stage's lock (run this node again, or `batch finish` releases it)"
                } else {
                    "aborted by a second interrupt; the lock is released"
                });
            }
        }
    }
}

/// Watches Ctrl-C and SIGTERM from a task of its own (on the current runtime): the first
/// cancels `cancel` and says `interrupted (<signal>): <doing>`; each later one is sent on the
/// channel, for the caller to end by. Watched until the handle is dropped.
pub(crate) fn watch_signals(
    cancel: &Cancel,
    doing: &'static str,
) -> anyhow::Result<(
    AbortOnDrop<()>,
    tokio::sync::mpsc::UnboundedReceiver<&'static str>,
)> {
    let mut signals = Signals::watch()?;
    let (again_tx, again_rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let cancel = cancel.clone();
    let watcher = tokio::spawn(async move {
        let mut first = true;
        loop {
            let name = signals.next().await;
            if first {
                first = false;
                // Cancel first: saying so must not be what stops it.
                cancel.cancel();
                crate::ui::note(&format!("interrupted ({name}): {doing}"));
            } else if again_tx.send(name).is_err() {
                return;
            }
        }
    });
    Ok((AbortOnDrop(watcher), again_rx))
}

/// A task aborted when this is dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs `work` with stage `dev` of a project `project` and its records on the emulator.
    fn in_stage(project: &str, work: impl AsyncFnOnce(&Stage, &RecordStore)) {
        let r = ferry_test_support::TestRepo::new();
        r.write(
            "ferry.toml",
            &format!("[project]\nname = \"{project}\"\n\n[stages.dev]\nregion = \"us-east-1\"\n"),
        )
        .write(
            "services/a/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .write("services/a/t.yaml", "Resources: {}\n");
        r.commit("project");
        let ws = ferry_manifest::load(r.path()).unwrap();
        let stage = ws.stage("dev").unwrap();
        crate::context::runtime().unwrap().block_on(async {
            let config = ferry_credentials::base_config(
                "us-east-1",
                &ferry_credentials::config::Target {
                    local_endpoint: Some(ferry_test_support::moto().endpoint()),
                },
            )
            .await;
            let records = ferry_deploy::record_store(&ws, &stage, &config);
            work(&stage, &records).await;
        });
    }

    #[test]
    fn the_lock_is_renewed_while_the_work_holds_its_thread() {
        in_stage("lock-blocked", async |_, records| {
            let holder = LockHolder::for_this_process(&|_| None, "deploy", "dev", None);
            records.lock(&holder, false).await.unwrap();
            assert_eq!(records.lock_holder().await.unwrap().unwrap().renewed, None);
            let cancel = Cancel::new();
            interruptible(
                records,
                &holder,
                &cancel,
                Duration::from_millis(100),
                interrupted_doing("deploy"),
                async {
                    // Holds its thread, as a build inside packaging does.
                    std::thread::sleep(Duration::from_millis(1500));
                    Ok(())
                },
            )
            .await
            .unwrap();
            let held = records.lock_holder().await.unwrap().unwrap();
            assert!(
                held.renewed.is_some(),
                "renewed while the work held its thread: {held:?}"
            );
            assert!(!cancel.is_cancelled());
            records.unlock(&holder).await.unwrap();
        });
    }

    // Another run that takes the lock over between two renewals (a `--force-unlock` that judged
    // it stale) wrote to the stage at the same time: the run fails, though its work succeeded.
    #[test]
    fn a_run_whose_lock_was_taken_over_fails_and_leaves_the_lock() {
        in_stage("lock-taken", async |stage, records| {
            let mut intruder = LockHolder::for_this_process(&|_| None, "deploy", "dev", None);
            intruder.host = "another-machine".into();
            let cancel = Cancel::new();
            let err = with_lock(
                None,
                records,
                stage,
                "deploy",
                LockArgs::default(),
                &cancel,
                async {
                    let ours = records.lock_holder().await?.expect("held");
                    records.unlock(&ours).await?;
                    records.lock(&intruder, false).await?;
                    Ok(())
                },
            )
            .await
            .unwrap_err();
            let said = format!("{err:#}");
            assert!(
                said.starts_with("the lock of stage `dev` is held by ")
                    && said.contains("another-machine")
                    && said.contains("it was taken over while this run worked"),
                "{said}"
            );
            // The intruder's lock is left in place.
            let held = records.lock_holder().await.unwrap().unwrap();
            assert_eq!(held.token, intruder.token);
            records.unlock(&intruder).await.unwrap();

            // Taken over and released again before this run ended: it fails all the same.
            let err = with_lock(
                None,
                records,
                stage,
                "deploy",
                LockArgs::default(),
                &cancel,
                async {
                    let ours = records.lock_holder().await?.expect("held");
                    records.unlock(&ours).await?;
                    records.lock(&intruder, false).await?;
                    records.unlock(&intruder).await?;
                    Ok(())
                },
            )
            .await
            .unwrap_err();
            assert!(
                format!("{err:#}").starts_with(
                    "the lock of stage `dev` was gone when this run went to release it"
                ),
                "{err:#}"
            );
            assert!(records.lock_holder().await.unwrap().is_none());
        });
    }

    // A wait (`--wait-lock`) lasts while another run's live lock stays, and no longer than its
    // patience; it does not wait for its own batch's lock, nor for a stale one (taking that
    // over is the caller's to judge).
    #[test]
    fn a_wait_for_the_lock_lasts_only_while_another_run_holds_it() {
        in_stage("lock-wait", async |_, records| {
            let ours =
                LockHolder::for_this_process(&|_| None, "batch node", "dev", None).in_batch("b1");
            let mut other = LockHolder::for_this_process(&|_| None, "deploy", "dev", None);
            other.host = "another-machine".into();
            let poll = Duration::from_millis(100);
            let seen = std::sync::Mutex::new(Vec::new());
            let mut waiting =
                |h: &LockHolder, _: Duration| seen.lock().unwrap().push(h.host.clone());
            let seen = || seen.lock().unwrap().clone();

            // Another machine's live lock, released after a while: waited for until then.
            records.lock(&other, false).await.unwrap();
            let releaser = {
                let (records, other) = (records.clone(), other.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    records.unlock(&other).await.unwrap();
                })
            };
            let t = tokio::time::Instant::now();
            let held = records
                .wait_while_held(&ours, Duration::from_secs(30), poll, &mut waiting)
                .await
                .unwrap();
            let waited = t.elapsed();
            releaser.await.unwrap();
            assert!(held.is_none());
            assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(30));
            let before = seen();
            assert!(!before.is_empty() && before.iter().all(|h| h == "another-machine"));

            // Held past the patience: back after it, the lock still the other's.
            records.lock(&other, false).await.unwrap();
            let t = tokio::time::Instant::now();
            let held = records
                .wait_while_held(&ours, Duration::from_millis(300), poll, &mut waiting)
                .await
                .unwrap();
            let waited = t.elapsed();
            assert_eq!(held.unwrap().token, other.token);
            assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(5));
            assert_eq!(
                records.lock_holder().await.unwrap().unwrap().token,
                other.token
            );
            assert!(seen().len() > before.len());
            records.unlock(&other).await.unwrap();
            let told = seen().len();

            // Its own batch's lock, and a stale one (a process gone from this host): no wait.
            records.join(&ours).await.unwrap();
            let t = tokio::time::Instant::now();
            let held = records
                .wait_while_held(&ours, Duration::from_secs(30), poll, &mut waiting)
                .await
                .unwrap();
            let waited = t.elapsed();
            assert!(held.is_none());
            records.unlock(&ours).await.unwrap();
            let mut gone = LockHolder::for_this_process(&|_| None, "deploy", "dev", None);
            gone.pid = u32::MAX - 1;
            gone.started = None;
            records.lock(&gone, false).await.unwrap();
            let t = tokio::time::Instant::now();
            let held = records
                .wait_while_held(&ours, Duration::from_secs(30), poll, &mut waiting)
                .await
                .unwrap();
            let also = t.elapsed();
            assert!(held.is_none());
            records.unlock(&gone).await.unwrap();
            assert!(waited < Duration::from_secs(5) && also < Duration::from_secs(5));
            assert_eq!(seen().len(), told, "nothing waited for");
        });
    }

    // Two batches whose locks are taken within one second name two releases. Named by the
    // second their locks were taken, they named one, and the second batch's release overwrote
    // the first's.
    #[test]
    fn two_batches_within_a_second_name_two_releases() {
        in_stage("lock-two-batches", async |stage, records| {
            let cancel = Cancel::new();
            let commit = "0123456789abcdef0123456789abcdef01234567";
            let mut ids = Vec::new();
            for batch in ["b1", "b2"] {
                let node = BatchNode {
                    batch,
                    service: "api",
                    commit,
                };
                let id = with_batch_lock(
                    None,
                    records,
                    stage,
                    node,
                    false,
                    &cancel,
                    |release| async move { Ok(release) },
                )
                .await
                .unwrap();
                // `batch finish` releases it.
                let holder = LockHolder::for_this_process(&|_| None, "batch finish", "dev", None)
                    .in_batch(batch);
                records.unlock(&holder).await.unwrap();
                ids.push(id);
            }
            assert_ne!(ids[0], ids[1]);
            assert!(ids.iter().all(|id| id.ends_with("-0123456")), "{ids:?}");
        });
    }
}
