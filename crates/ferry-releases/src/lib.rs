#![doc = include_str!("../README.md")]

mod gate;
pub mod review;
mod status;
mod store;

use std::collections::{BTreeMap, BTreeSet};

use ferry_records::Record;
use serde::{Deserialize, Serialize};

pub use gate::{Candidate, GateRefusal, Passed, check_gate};
pub use status::{Cell, Matrix, Row, StageStatus, StatusDoc, Tests, matrix, same_package};
pub use store::{ReleaseError, ReleaseStore};

/// The format of a stored release.
pub const FORMAT: u32 = 1;

/// What made a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseKind {
    Deploy,
    Promote,
    Rollback,
}

impl std::fmt::Display for ReleaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReleaseKind::Deploy => "deploy",
            ReleaseKind::Promote => "promote",
            ReleaseKind::Rollback => "rollback",
        })
    }
}

/// The kind its [`Display`](std::fmt::Display) names (as a record keeps it); `Err` for another.
impl std::str::FromStr for ReleaseKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            ReleaseKind::Deploy,
            ReleaseKind::Promote,
            ReleaseKind::Rollback,
        ]
        .into_iter()
        .find(|k| k.to_string() == s)
        .ok_or(())
    }
}

/// A deploy that went past the promote gate: who, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateOverride {
    /// The caller's identity (an ARN).
    pub by: String,
    pub reason: String,
    /// The services that had not passed in the source stage.
    pub services: Vec<String>,
}

/// What one run left in a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub format: u32,
    pub id: String,
    pub project: String,
    pub stage: String,
    pub kind: ReleaseKind,
    /// The commit checked out when it ran.
    pub commit: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// Who ran it (the caller's ARN), when known.
    #[serde(default)]
    pub by: Option<String>,
    /// A promote: the stage it took the packages from. A rollback: the release it went back from.
    #[serde(default)]
    pub from: Option<String>,
    /// A rollback: the release whose packages it deployed again.
    #[serde(default)]
    pub restores: Option<String>,
    #[serde(default)]
    pub gate_override: Option<GateOverride>,
    /// The services this run deployed.
    pub deployed: Vec<String>,
    /// Services that have no acceptance tests (nothing to wait for).
    #[serde(default)]
    pub untested: BTreeSet<String>,
    /// Every service's record after the run, by service.
    pub services: BTreeMap<String, Record>,
    /// The review this run deployed, once approved.
    #[serde(default)]
    pub approval: Option<Approval>,
    /// Written afterwards, by the run with this id, from the stage's records: the run that made
    /// this release stopped (killed, its machine lost) after its records were written and
    /// before its release was. Its kind, who ran it, an approval's review, the release a
    /// rollback restored and the stage a promote came from are the ones its records name
    /// (records written before they named them: that later run's kind, the rest unknown); the
    /// release a rollback went back from is not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
}

/// Who approved a review, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The pending release (the review) that was approved.
    pub review: String,
    /// The approver's identity (an ARN).
    pub by: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The release that deployed it.
    pub release: String,
}

/// The stack of a reviewed service as it was at the review: an approval refuses to go on when
/// it changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackState {
    pub id: String,
    /// SHA-256 of the template the stack ran.
    pub template_sha256: String,
    /// Hash of its parameters as DescribeStacks showed them.
    pub parameters_hash: String,
}

/// One reviewed service: exactly what its approval deploys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviewed {
    pub kind: Option<String>,
    /// The key of its stored package entry, and that package's fingerprint.
    pub package_key: String,
    pub fingerprint: String,
    /// The package id, and the commit it was made from.
    pub package: String,
    pub commit: String,
    pub dirty: bool,
    /// The parameters to deploy: SecureStrings as `ssm-secure:<name>@<version>` (a Secrets
    /// Manager secret's `@secret:<VersionId>`; when approved, what resolves then must be this,
    /// so a new version since makes the review stale), every other value as resolved.
    pub parameters: BTreeMap<String, String>,
    /// The parameters need outputs of stacks the same review creates or changes: they are
    /// resolved when approved, after those deploy (`parameters` is empty then).
    #[serde(default)]
    pub resolve_when_approved: bool,
    /// The service's `[parameters]` as its service.toml wrote them at the review (names and
    /// expressions such as `${output:db.Url}`, never a resolved value): what an approval that
    /// resolves them again checks the checkout against. `None` in reviews made before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expressions: Option<BTreeMap<String, String>>,
    /// The stack as it was; `None` when it did not exist.
    pub stack: Option<StackState>,
    /// A service compiled for each stage: the key of the inputs it was compiled from
    /// (`Record::input_key`), for the record its approval writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_key: Option<String>,
    /// A Serverless Framework service whose parameters wait for the approval (see
    /// `resolve_when_approved`): the framework compiles them into its template, so it is
    /// compiled when approved, from the checkout, which must hold the reviewed inputs
    /// (`input_key`, else the tree of `commit`); `package_key` and `fingerprint` are empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compile_when_approved: bool,
    /// With `compile_when_approved`, in a review past a gate: the archives (resource → key)
    /// that passed in the source stage, which the approval's compile must reproduce byte for
    /// byte.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub archives: BTreeMap<String, String>,
}

/// A reviewed run waiting for approval (`deploy --review`, `promote --review`), kept as
/// `<project>/_releases/<stage id>/pending/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRelease {
    pub format: u32,
    pub id: String,
    pub project: String,
    pub stage: String,
    /// The stage is a named stage of the ferry.toml that reviewed it: a checkout that takes it
    /// for a preview does not approve it. `false` in reviews written before it was kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub named_stage: bool,
    /// What the approval's release will be (`deploy` or `promote`).
    pub kind: ReleaseKind,
    pub commit: String,
    pub created_at: u64,
    /// Who asked for the review.
    pub by: Option<String>,
    /// A promote: its source stage.
    pub from: Option<String>,
    /// A review of a deploy that went past the promote gate: who and why, carried into the
    /// release its approval makes.
    #[serde(default)]
    pub gate_override: Option<GateOverride>,
    pub services: BTreeMap<String, Reviewed>,
    pub reviews: Vec<review::StackReview>,
    /// Deployed services the review leaves out that depend on what it changes: the approval
    /// checks each after the stacks it reads deployed, and redeploys it (with the package it
    /// runs) only when an output it receives changed. Shown in the review, so that the
    /// approver sees what may follow.
    #[serde(default)]
    pub dependents: Vec<String>,
    /// Set once, by the approval.
    pub approved: Option<Approval>,
}

/// The id of the release a batch makes (one deploy over many CI machines) whose lock was taken
/// before locks kept the batch's release id: named by when the batch took the stage's lock
/// (`lock_since`, seconds since the epoch), which every node and `batch finish` read from the
/// lock. (A lock now keeps the id its first node named, to the millisecond.)
pub fn batch_release_id(lock_since: u64, commit: &str) -> String {
    new_id(lock_since * 1000, commit)
}

/// A release id: the time (sortable, UTC to the millisecond) and the commit's first 7 digits,
/// e.g. `20261202-130512.123-3e18202`.
pub fn new_id(now_ms: u64, commit: &str) -> String {
    let time = ferry_records::format_time(now_ms / 1000);
    let compact: String = time
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == ' ')
        .collect::<String>()
        .replace(' ', "-");
    let short: String = commit.chars().take(7).collect();
    format!("{compact}.{:03}-{short}", now_ms % 1000)
}

/// Whether a release id is well formed (so it can name an S3 key and nothing else).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && !id.starts_with('.')
}

impl Release {
    /// Where its services' tests stand: failed if any failed, else not run if any tested
    /// service has no outcome, else passed.
    pub fn tests(&self) -> Tests {
        self.tests_of(None)
    }

    /// Like [`tests`](Self::tests), over the services in `only` (all when `None`).
    pub fn tests_of(&self, only: Option<&BTreeSet<String>>) -> Tests {
        let mut failed = Vec::new();
        let mut pending = Vec::new();
        for (name, r) in self
            .services
            .iter()
            .filter(|(name, _)| only.is_none_or(|o| o.contains(*name)))
        {
            match &r.acceptance {
                Some(a) if a.passed => {}
                Some(_) => failed.push(name.clone()),
                None if self.untested.contains(name) => {}
                None => pending.push(name.clone()),
            }
        }
        if !failed.is_empty() {
            Tests::Failed(failed)
        } else if !pending.is_empty() {
            Tests::NotRun(pending)
        } else {
            Tests::Passed
        }
    }

    /// Whether the release deployed packages built from commit `prefix` (a promote or a
    /// rollback runs from whatever is checked out; its packages come from an earlier commit).
    pub fn deployed_from(&self, prefix: &str) -> bool {
        self.deployed.iter().any(|s| {
            self.services
                .get(s)
                .is_some_and(|r| r.commit.starts_with(prefix))
        })
    }

    /// Puts a record marked by acceptance tests into the release, when it is the deploy the
    /// release holds for its service (same stack id and deploy time). Returns whether it did.
    pub fn mark(&mut self, record: &Record) -> bool {
        match self.services.get_mut(&record.service) {
            Some(r)
                if r.deployed_at == record.deployed_at
                    && r.stack_id == record.stack_id
                    && r.acceptance != record.acceptance =>
            {
                r.acceptance = record.acceptance.clone();
                true
            }
            _ => false,
        }
    }
}

/// Why no release can be rolled back to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "stage `{stage}` has no release `{}` (its newest releases: {known}); name one of them, or a commit, with --to",
        ferry_manifest::clipped(.to, 80)
    )]
    Unknown {
        stage: String,
        to: String,
        known: String,
    },
    #[error(
        "stage `{stage}` has no release from before {runs} whose tests passed and that holds other packages (newest releases: {known}); name one with --to <release id | commit>"
    )]
    NonePassed {
        stage: String,
        /// What runs: `release X (what runs now)`, X the release a running rollback restored, or
        /// `what runs now` when no release holds it.
        runs: String,
        known: String,
    },
    #[error("stage `{stage}` has no releases yet: nothing to roll back to")]
    NoReleases { stage: String },
    #[error(
        "release `{id}` belongs to stage `{owner}`, not `{stage}`: the bucket holds it under the wrong stage; name a release of `{stage}`"
    )]
    OtherStage {
        id: String,
        owner: String,
        stage: String,
    },
}

/// The ids of the newest ten of `sorted` (newest first), for messages.
fn newest(sorted: &[&Release]) -> String {
    sorted
        .iter()
        .take(10)
        .map(|r| r.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The release a rollback of `stage` deploys: the one `to` names (a release id, or a commit
/// of at least 7 hex digits: the newest release deploying packages built from it, else the
/// newest one other than a rollback run at it), else the newest release from before the one
/// that runs, holding other packages than `current` (the stage's records: what runs), whose
/// tests passed, all judged over the services in `only` (all when `None`).
///
/// - The release that runs is the newest one that deployed any of those services, when its
///   packages are what runs; else (a run moved stacks and records and stopped before writing
///   its release, or a run's tests failed and its release is not written yet) none runs and
///   any release may be the target.
/// - "Before the one that runs" is before the release a rollback restored, when a rollback
///   runs: rolling back twice goes back twice, never forward to what the first rollback left.
/// - A rollback's services have the tests of the release it restored (it deployed those very
///   packages again, untested), so "what ran before" can be a rollback's release.
/// - So have the services a rollback put back, in every later release that still holds the
///   records it wrote (no run deployed them since): a later release whose own deploys passed is
///   a target. Each only for the same package with the same parameters.
/// - A rollback leaves other services' test outcomes unset, which must not disqualify a
///   release for the services being rolled back.
///
/// `releases` in any order. [`rollback_target_in`] decides from the newest releases alone
/// when it can.
pub fn rollback_target<'a>(
    stage: &str,
    releases: &'a [Release],
    to: Option<&str>,
    current: &BTreeMap<String, Record>,
    only: Option<&BTreeSet<String>>,
) -> Result<&'a Release, TargetError> {
    let mut sorted: Vec<&Release> = releases.iter().collect();
    sorted.sort_by(|a, b| b.id.cmp(&a.id));
    let found = rollback_target_in(stage, &sorted, true, to, current, only)?;
    Ok(found.expect("with every release known, the search decides"))
}

/// [`rollback_target`] over the newest releases of the stage, `newest` (newest first; all of
/// them when `complete`): `Ok(None)` when older releases could change the answer (the one a
/// running rollback restored, the tests of a rollback's release, a commit named by `to`), so
/// that a caller loads releases one at a time, only as far back as the answer needs.
pub fn rollback_target_in<'a>(
    stage: &str,
    newest: &[&'a Release],
    complete: bool,
    to: Option<&str>,
    current: &BTreeMap<String, Record>,
    only: Option<&BTreeSet<String>>,
) -> Result<Option<&'a Release>, TargetError> {
    if newest.is_empty() {
        return if complete {
            Err(TargetError::NoReleases {
                stage: stage.into(),
            })
        } else {
            Ok(None)
        };
    }
    let found = match to {
        Some(to) => {
            let by_commit = to.len() >= 7 && to.chars().all(|c| c.is_ascii_hexdigit());
            let by_id = newest.iter().find(|r| r.id == to);
            let built_at = || newest.iter().find(|r| by_commit && r.deployed_from(to));
            // A release merely run at the commit counts only once no release anywhere deployed
            // packages built from it.
            let run_at = || {
                newest.iter().find(|r| {
                    by_commit && r.kind != ReleaseKind::Rollback && r.commit.starts_with(to)
                })
            };
            match by_id.or_else(built_at) {
                Some(r) => *r,
                None if !complete => return Ok(None),
                None => *run_at().ok_or_else(|| TargetError::Unknown {
                    stage: stage.into(),
                    to: to.into(),
                    known: self::newest(newest),
                })?,
            }
        }
        None => {
            let in_scope = |s: &String| only.is_none_or(|o| o.contains(s));
            let by_id: BTreeMap<&str, &Release> =
                newest.iter().map(|r| (r.id.as_str(), *r)).collect();
            // The newest release that deployed any service in scope: it runs when its packages
            // (in scope) are what runs.
            let Some(top) = newest.iter().find(|r| r.deployed.iter().any(in_scope)) else {
                if !complete {
                    return Ok(None);
                }
                return Err(TargetError::NonePassed {
                    stage: stage.into(),
                    runs: "what runs now".into(),
                    known: self::newest(newest),
                });
            };
            let runs = !differing(&top.services, current).iter().any(in_scope);
            let before = if runs {
                match restored(top, &by_id) {
                    Some(origin) => Some(origin.id.as_str()),
                    None if complete => Some(top.id.as_str()),
                    None => return Ok(None),
                }
            } else {
                None
            };
            let mut found = None;
            for r in newest
                .iter()
                .filter(|r| before.is_none_or(|b| r.id.as_str() < b))
                .filter(|r| differing(&r.services, current).iter().any(in_scope))
            {
                match tests_through_rollbacks(r, &by_id, only) {
                    Some(Tests::Passed) => {
                        found = Some(*r);
                        break;
                    }
                    Some(_) => {}
                    // Its tests are those of a release not loaded yet.
                    None if !complete => return Ok(None),
                    None => {}
                }
            }
            match found {
                Some(r) => r,
                None if !complete => return Ok(None),
                None => {
                    return Err(TargetError::NonePassed {
                        stage: stage.into(),
                        runs: before.map_or_else(
                            || "what runs now".to_string(),
                            |b| format!("release `{b}` (what runs now)"),
                        ),
                        known: self::newest(newest),
                    });
                }
            }
        }
    };
    if found.stage != stage {
        return Err(TargetError::OtherStage {
            id: found.id.clone(),
            owner: found.stage.clone(),
            stage: stage.into(),
        });
    }
    Ok(Some(found))
}

/// The release whose packages `r` deployed: `r` itself, or for a rollback the release it
/// restored (followed through rollbacks of rollbacks). `None` when a release on the way is not
/// in `by_id` (not loaded, or gone from the bucket).
fn restored<'a>(r: &'a Release, by_id: &BTreeMap<&str, &'a Release>) -> Option<&'a Release> {
    let mut at = r;
    // Each step goes to an older release, so this ends; the bound guards a malformed chain.
    for _ in 0..=by_id.len() {
        let Some(id) = at
            .restores
            .as_deref()
            .filter(|_| at.kind == ReleaseKind::Rollback)
        else {
            return Some(at);
        };
        match by_id.get(id) {
            Some(earlier) if earlier.id < at.id => at = earlier,
            Some(_) => return Some(at),
            None => return None,
        }
    }
    Some(at)
}

/// [`Release::tests_of`], where a service left untested by a rollback has the outcome that the
/// release the rollback restored holds for the same package with the same parameters: in the
/// rollback's own release (each of its services that has none), and in every later release that
/// still holds a record a rollback wrote (no run deployed its service since, as when the
/// checkout holds the package the rollback put back). Never another package's, nor the same
/// package's tested with other parameters; and first of all the outcome a later run recorded
/// for this very deploy, in any release loaded (the newest is). `None` when a release it needs is not in `by_id`
/// (not loaded yet, or gone from the bucket).
fn tests_through_rollbacks(
    r: &Release,
    by_id: &BTreeMap<&str, &Release>,
    only: Option<&BTreeSet<String>>,
) -> Option<Tests> {
    // A rollback's release: the release whose packages it deployed again.
    let own = restored(r, by_id)?;
    let mut view = r.clone();
    for (name, record) in &mut view.services {
        if record.acceptance.is_some() || only.is_some_and(|o| !o.contains(name)) {
            continue;
        }
        // This very deploy's own outcome, when a later run recorded one: `test-acceptance`
        // marks the stage's newest release and the record's own, not the releases between, and
        // an outcome of what runs decides over one of the same package's earlier deploy (a
        // failure included).
        let own_outcome = by_id
            .values()
            .filter_map(|other| other.services.get(name))
            .filter(|other| {
                other.deployed_at == record.deployed_at
                    && other.stack_id == record.stack_id
                    && other.fingerprint() == record.fingerprint()
            })
            .filter_map(|other| other.acceptance.clone())
            .max_by_key(|a| a.at);
        if let Some(outcome) = own_outcome {
            record.acceptance = Some(outcome);
            continue;
        }
        let origin = if !std::ptr::eq(own, r) {
            own
        } else if record.release_kind.as_deref() == Some("rollback")
            && let Some(id) = record.restores.as_deref()
        {
            // A record an earlier rollback wrote, which this release still holds: the release
            // that rollback restored.
            match by_id.get(id) {
                Some(&then) if then.id < r.id => restored(then, by_id)?,
                Some(_) => continue,
                None => return None,
            }
        } else {
            continue;
        };
        if let Some(then) = origin.services.get(name)
            && then.fingerprint() == record.fingerprint()
            && then.artifacts == record.artifacts
            // The same parameters: a package tested with other values is not what runs.
            && then.parameters_hash == record.parameters_hash
        {
            record.acceptance = then.acceptance.clone();
        }
    }
    Some(view.tests_of(only))
}

/// The services whose record in `target` names another package than `current` holds (another
/// template or archives), or that `current` lacks. Parameters do not count: a rollback deploys
/// the old package with today's parameters, so comparing them would redeploy a service on
/// every rollback. Services only `current` has are not in it (a rollback leaves them).
pub fn differing(
    target: &BTreeMap<String, Record>,
    current: &BTreeMap<String, Record>,
) -> Vec<String> {
    target
        .iter()
        .filter(|(name, t)| {
            current
                .get(*name)
                .is_none_or(|c| c.fingerprint() != t.fingerprint() || c.artifacts != t.artifacts)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests;
