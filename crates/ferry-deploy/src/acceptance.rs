//! Acceptance tests of deployed services: the harness with the stage's credentials, the tests
//! of a stage outside a deploy, and those a `deploy --test` still owes.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;

use aws_config::SdkConfig;
use ferry_acceptance::Builds;
use ferry_credentials::Masker;
use ferry_graph::Cancel;
use ferry_manifest::{Stage, Workspace};
use ferry_outputs::{OutputCache, Outputs};
use ferry_records::{Record, RecordStore};
use ferry_stacks::Engine;

use crate::ownership;

/// What a command that works on one stage's deployed services holds.
#[derive(Clone, Copy)]
pub struct StageAccess<'a> {
    pub ws: &'a Workspace,
    pub stage: &'a Stage,
    pub config: &'a SdkConfig,
    pub records: &'a RecordStore,
    pub masker: &'a Masker,
    /// The run's Ctrl-C: set, it stops running tests (see
    /// [`Harness::run_one_unless_cancelled`](ferry_acceptance::Harness::run_one_unless_cancelled)).
    pub cancel: &'a Cancel,
}

/// The acceptance harness of a stage: its commands get the stage's credentials.
pub(crate) async fn harness<'a>(
    ws: &'a Workspace,
    stage: &'a Stage,
    config: &SdkConfig,
    masker: &'a Masker,
    builds: Option<&'a Builds>,
) -> Result<ferry_acceptance::Harness<'a>, ferry_credentials::CredentialsError> {
    Ok(ferry_acceptance::Harness {
        ws,
        stage,
        env: ferry_credentials::env::child_env(config, &stage.name, masker).await?,
        masker,
        work_dir: ws.layout().acceptance(&stage.id),
        builds,
    })
}

/// Why acceptance tests of deployed services could not run or be recorded (a failing test is
/// not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    #[error(transparent)]
    Credentials(#[from] ferry_credentials::CredentialsError),
    #[error("failed to read the outputs of stack {stack}: {source}")]
    Outputs {
        stack: String,
        source: ferry_stacks::StackError,
    },
    #[error("failed to mark the record of `{service}`: {source}")]
    Mark {
        service: String,
        source: ferry_records::RecordError,
    },
}

/// The outcome of [`test_deployed`]: the report of every test that ran, and the records whose
/// outcome could not be written (each such service is tested again by the next run).
#[derive(Debug, Default)]
pub struct Tested {
    pub report: ferry_acceptance::Report,
    pub unmarked: Vec<TestError>,
    /// Services whose outcome was not recorded, with why: the checkout's tests are not the
    /// ones of the package that runs ([`unvouched`]).
    pub not_recorded: Vec<(String, String)>,
}

/// The services among `selected` whose tests' outcome this checkout cannot vouch for, with
/// why. A record says that the package it names passed its tests; the tests that run are the
/// checkout's, so an outcome is recorded only from a checkout without uncommitted changes
/// (tracked or untracked, anywhere: a test may read any file) that holds what the package was
/// made from (the service's folder, inputs and the global inputs, compared by git tree ids
/// with the record's commit or input key). Otherwise an edited test (an uncommitted
/// `command = ["true"]`) could mark a package passed, and the promote gate would take it.
/// A record made from uncommitted changes among its service's inputs is vouched for only by
/// that very tree: the same package id (HEAD and a hash of every uncommitted change); one made
/// while only other folders were dirty is judged as a clean one is. Not judged: a checkout
/// that is not a git repository (a deploy from it records the CI's commit), and files git
/// ignores.
pub fn unvouched(
    ws: &Workspace,
    previous: &BTreeMap<String, Record>,
    selected: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let records: Vec<&Record> = selected
        .iter()
        .filter(|s| ws.service(s).is_some())
        .filter_map(|s| previous.get(s))
        .collect();
    if records.is_empty() {
        return BTreeMap::new();
    }
    let Ok(repo) = ferry_changes::Repo::open(&ws.root) else {
        return BTreeMap::new();
    };
    let (made_dirty, judged): (Vec<&Record>, Vec<&Record>) = records
        .into_iter()
        .partition(|r| r.from_uncommitted_inputs());
    let mut out = BTreeMap::new();
    if !made_dirty.is_empty() {
        let here = repo
            .snapshot(&[], &ws.project.global_inputs)
            .map(|s| s.id)
            .map_err(|e| e.to_string());
        for r in made_dirty {
            let why = match (&here, &r.package) {
                (Ok(here), Some(made)) if here == made => continue,
                (Ok(here), made) => format!(
                    "it was deployed from a working tree with uncommitted changes (package {}), and this checkout is another tree (package {here})",
                    made.as_deref().unwrap_or("unknown")
                ),
                (Err(e), _) => format!("this checkout's changes could not be read: {e}"),
            };
            out.insert(r.service.clone(), why);
        }
    }
    if judged.is_empty() {
        return out;
    }
    let every = |why: String| -> BTreeMap<String, String> {
        let mut all = out.clone();
        all.extend(judged.iter().map(|r| (r.service.clone(), why.clone())));
        all
    };
    match repo.dirty_paths() {
        Ok(dirty) if dirty.is_empty() => {}
        Ok(dirty) => {
            let paths: Vec<&str> = dirty.iter().map(String::as_str).collect();
            return every(format!(
                "this checkout has uncommitted changes ({}), and the tests that ran may read them",
                ferry_manifest::first_few(&paths, 3)
            ));
        }
        Err(e) => return every(format!("this checkout's changes could not be read: {e}")),
    }
    let found = match crate::release::checkout_inputs(ws, &judged) {
        Ok(found) => found,
        Err(e) => {
            return every(format!(
                "this checkout could not be compared with its record: {e}"
            ));
        }
    };
    for (record, differs) in judged.iter().zip(found) {
        if let Some(why) = differs {
            let short = record.commit.get(..12).unwrap_or(&record.commit);
            out.insert(
                record.service.clone(),
                format!("it was deployed from {short}, and {why}"),
            );
        }
    }
    out
}

/// Runs the acceptance tests of deployed services outside a deploy (`test-acceptance`, and the
/// services `deploy --test` still owes tests), on the scheduler with at most `concurrency` at
/// once. Outputs are those the records hold, read from the stack (once each) where a record left
/// them out (records stay under SSM's 4 KB). Marks each tested record passed or failed; a record
/// that cannot be written does not lose the others' marks or the report.
pub async fn test_deployed(
    stage: &StageAccess<'_>,
    previous: &BTreeMap<String, Record>,
    selected: &BTreeSet<String>,
    concurrency: Option<NonZeroUsize>,
    on: &(dyn Fn(ferry_acceptance::Event) + Send + Sync),
) -> Result<Tested, TestError> {
    let StageAccess {
        ws,
        stage,
        config,
        records,
        masker,
        cancel,
    } = *stage;
    let harness = harness(ws, stage, config, masker, None).await?;
    let mut outputs: BTreeMap<String, Outputs> = previous
        .iter()
        .filter(|(_, r)| !r.outputs.is_empty())
        .map(|(k, r)| (k.clone(), r.outputs.clone()))
        .collect();
    let cache = OutputCache::new(Engine::for_config(
        config,
        ferry_stacks::DeployOptions::default(),
    ));
    let needed: BTreeSet<String> = selected
        .iter()
        .filter_map(|s| ws.service(s))
        .flat_map(|s| std::iter::once(s.name.clone()).chain(s.dependencies_in(stage)))
        .collect();
    for s in needed {
        if outputs.contains_key(&s) {
            continue;
        }
        let stack = ws.stack_name(&s, stage);
        let found = cache
            .get(&stack, Some(&ownership(ws, stage, &s)))
            .await
            .map_err(|source| TestError::Outputs { stack, source })?;
        if let Some(o) = found {
            outputs.insert(s, o);
        }
    }
    // Judged before the tests run: a build or a test that changes the tree afterwards (or puts
    // it back) must not decide it.
    let unvouched = unvouched(ws, previous, selected);
    let report = ferry_acceptance::run(&harness, selected, &outputs, concurrency, cancel, on).await;
    let now = ferry_records::now_secs();
    let mut unmarked = Vec::new();
    let mut not_recorded = Vec::new();
    for o in &report.outcomes {
        let Some(r) = previous.get(&o.service) else {
            continue;
        };
        let Some(marked) = ferry_acceptance::mark(r, o, now) else {
            continue;
        };
        if let Some(why) = unvouched.get(&o.service) {
            not_recorded.push((o.service.clone(), why.clone()));
        } else if let Err(source) = records.write(&marked).await {
            unmarked.push(TestError::Mark {
                service: o.service.clone(),
                source,
            });
        }
    }
    Ok(Tested {
        report,
        unmarked,
        not_recorded,
    })
}

/// The services deployed at `commit` whose acceptance tests have not passed and did not run in
/// this deploy (`tested`): e.g. they failed last time and nothing changed since; and those whose
/// tests failed at an earlier commit that this checkout can test again ([`failed_before`]).
/// `deploy --test` runs them after its own.
pub fn tests_owed(
    ws: &Workspace,
    stage: &Stage,
    records: &BTreeMap<String, Record>,
    commit: &str,
    tested: &[String],
) -> Result<BTreeSet<String>, ferry_acceptance::SelectError> {
    let mut rest = ferry_acceptance::select(ws, &stage.name, records, commit, &[], false)?;
    rest.extend(failed_before(ws, records, commit));
    rest.retain(|s| !tested.contains(s) && ws.service(s).is_some_and(|s| s.acceptance.is_some()));
    Ok(rest)
}

/// Why a service whose tests are owed is in a run that does not deploy it.
pub(crate) const OWED: &str = "its acceptance tests are owed (they have not passed at its record)";

/// The tests an approval with `--test` owes: [`tests_owed`] at `commit`, and those of what an
/// approval deployed and never tested at another commit (a promote review's packages carry the
/// source's commit; the checkout moved on), where this checkout holds what their packages were
/// made from. Without the repository's history nothing can be vouched for ([`vouched`] would
/// take every one): those wait for a git checkout.
pub fn approval_tests_owed(
    ws: &Workspace,
    stage: &Stage,
    records: &BTreeMap<String, Record>,
    commit: &str,
) -> Result<BTreeSet<String>, ferry_acceptance::SelectError> {
    let mut owed = tests_owed(ws, stage, records, commit, &[])?;
    let untested: BTreeSet<String> = records
        .iter()
        .filter(|(s, r)| {
            r.review.is_some()
                && r.acceptance.is_none()
                && ws.service(s).is_some_and(|s| s.acceptance.is_some())
        })
        .map(|(s, _)| s.clone())
        .collect();
    if ferry_changes::Repo::open(&ws.root).is_ok() {
        owed.extend(vouched(ws, records, untested));
    }
    Ok(owed)
}

/// The services whose tests failed in the stage at a commit other than `commit`, and that this
/// checkout can test again for their record ([`unvouched`] says nothing of them: it holds what
/// their package was made from): a failed service is tested again by the next run even when
/// nothing redeploys and the checkout moved on (an unrelated commit).
pub fn failed_before(
    ws: &Workspace,
    records: &BTreeMap<String, Record>,
    commit: &str,
) -> BTreeSet<String> {
    let failed: BTreeSet<String> = records
        .iter()
        .filter(|(name, r)| {
            ws.service(name).is_some() && r.commit != commit && r.tests_passed() == Some(false)
        })
        .map(|(name, _)| name.clone())
        .collect();
    vouched(ws, records, failed)
}

/// Those of `selected` whose tests' outcome this checkout can vouch for ([`unvouched`] says
/// nothing of them).
pub fn vouched(
    ws: &Workspace,
    records: &BTreeMap<String, Record>,
    selected: BTreeSet<String>,
) -> BTreeSet<String> {
    let unvouched = unvouched(ws, records, &selected);
    selected
        .into_iter()
        .filter(|s| !unvouched.contains_key(s))
        .collect()
}
