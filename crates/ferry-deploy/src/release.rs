//! Releases: what each run left in a stage (kept in its artifact bucket), and the runs that
//! deploy stored packages again: `promote` (another stage's passed packages, through the gate)
//! and `rollback` (an earlier release of the same stage). Both put the stored packages together
//! into a [`Prepared`] package and deploy it with [`deploy_selection`](crate::deploy_selection),
//! so outputs, dependents, records and tests work as in a deploy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aws_config::SdkConfig;
use ferry_manifest::{ServiceKind, Stage, Workspace};
use ferry_package::{PackageManifest, ServicePackage};
use ferry_plan::Plan;
use ferry_records::{Record, RecordStore};
use ferry_releases::{
    Candidate, GateOverride, GateRefusal, Passed, Release, ReleaseKind, ReleaseStore, TargetError,
};

use crate::prepare::{Origin, ensure_local_bucket, stage_bucket};
use crate::{PrepareError, Prepared, Selection};

/// Why a release could not be read, written, or deployed again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseRunError {
    #[error(transparent)]
    Releases(#[from] ferry_releases::ReleaseError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Records(#[from] ferry_records::RecordError),
    #[error(transparent)]
    Stored(Box<ferry_package::UploadError>),
    #[error(transparent)]
    Prepare(Box<PrepareError>),
    #[error(
        "stage `{stage}` keeps no releases: it has no artifact bucket; set `artifact-bucket` under [stages.{stage}] in ferry.toml (releases and packages are kept there)"
    )]
    NoBucket { stage: String },
    #[error(
        "{service}: its record in stage `{stage}` names no stored package (it was deployed by an older Ferry, or while the stage had no artifact bucket); deploy it to `{stage}` again to store one"
    )]
    NotStored { service: String, stage: String },
    #[error(
        "{service}: the stored package {key} is not the one its record in `{stage}` names (fingerprint {got}, record {expected}); nothing was deployed"
    )]
    PackageDiffers {
        service: String,
        stage: String,
        key: String,
        expected: String,
        got: String,
    },
    #[error(
        "stage `{stage}` has no promote-from; set `promote-from = \"{from}\"` under [stages.{stage}] in ferry.toml to take packages from `{from}`, commit it, and deploy and test `{from}` from that commit before promoting (ferry.toml is an input of services that take the global inputs: what passed before the edit is not what the new commit holds)"
    )]
    NoPromoteFrom { stage: String, from: String },
    #[error(
        "stage `{stage}` is a preview stage (ferry.toml names no such stage){}: a promote goes to a named stage, whose promote-from names the stage it takes tested packages from{}",
        meant.as_ref().map(|m| format!("; did you mean `{m}`?")).unwrap_or_default(),
        if meant.is_none() { format!("; a preview is deployed with `deploy {stage}`") } else { String::new() }
    )]
    PreviewTarget {
        stage: String,
        /// The named stage its name most likely misspells.
        meant: Option<String>,
    },
    #[error(
        "`{from}` is a preview stage (ferry.toml names no such stage){}: a promote takes packages from a named stage, the one the target's promote-from names",
        meant.as_ref().map(|m| format!("; did you mean `{m}`?")).unwrap_or_default()
    )]
    PreviewSource { from: String, meant: Option<String> },
    #[error(
        "review {id} was made for stage `{stage}` as a named stage of the ferry.toml that reviewed it, which this checkout does not name and takes for a preview; approve it from a checkout that names it (another branch's)"
    )]
    NamedElsewhere { stage: String, id: String },
    #[error(
        "stage `{stage}`, which the CI event chose, has no promote-from, so there is no stage to promote from: set `promote-from` under [stages.{stage}] in ferry.toml to the stage whose tested packages it takes, or run `promote FROM {stage}`"
    )]
    NoPromoteSource { stage: String },
    #[error(
        "stage `{stage}` promotes from `{configured}`, not `{from}` (its promote-from in ferry.toml); run `promote {configured} {stage}`"
    )]
    OtherSource {
        stage: String,
        configured: String,
        from: String,
    },
    #[error(
        "{} service(s) did not pass in `{from}`, so `{stage}` refuses them; nothing was deployed:\n  {}\n({})",
        .refused.len(),
        .refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "),
        match (.review, *.overridable) {
            (Some(id), _) => format!("review {id} holds packages that no longer pass in `{from}` (their tests failed there since, or `{from}` runs others now): make them pass there and approve again, or review again what passes there now"),
            (None, overridable) => format!(
                "test them in `{from}` first, or name the others with --service{}",
                if overridable { "; `--override-gate \"<reason>\"` deploys anyway and records who and why" } else { "" }
            ),
        }
    )]
    Gate {
        stage: String,
        from: String,
        refused: Vec<GateRefusal>,
        overridable: bool,
        /// The review whose approval the gate refused.
        review: Option<String>,
    },
    #[error(
        "{} was deployed to `{from}` from a tree with uncommitted changes; protected stage `{stage}` takes only packages of a commit: commit, deploy and test in `{from}`, then promote",
        .services.join(", ")
    )]
    Dirty {
        stage: String,
        from: String,
        services: Vec<String>,
    },
    #[error(
        "{} Serverless Framework service(s) would deploy what did not pass in `{from}`: the framework compiles them for each stage from this checkout, whose inputs for them are not those that passed; nothing was deployed:\n  {}\n(check out the commit that passed and promote from there; or, when this checkout is the newer one (a change since, such as ferry.toml's promote-from), deploy and test `{from}` from it first; or leave them out with --service)",
        .services.len(),
        .services.join("\n  ")
    )]
    CheckoutDiffers { from: String, services: Vec<String> },
    #[error(
        "cannot check that this checkout holds what passed in `{from}` for {} (Serverless Framework services, compiled for each stage from the checkout): {why}; nothing was deployed (promote from a git checkout of the commit that passed, or leave them out with --service)",
        .services.join(", ")
    )]
    CheckoutUnverifiable {
        from: String,
        services: Vec<String>,
        why: String,
    },
    /// [`CheckoutDiffers`](Self::CheckoutDiffers) and
    /// [`CheckoutUnverifiable`](Self::CheckoutUnverifiable) for an approval.
    #[error(
        "review {id}: {} Serverless Framework service(s) {} compiled when approved (their parameters waited for what the review also changes), from this checkout, which cannot be shown to hold the reviewed inputs: {why}; nothing was deployed (check out the reviewed commit and approve from there)",
        .services.len(),
        if .services.len() == 1 { "is" } else { "are" }
    )]
    ApprovalCheckout {
        id: String,
        services: Vec<String>,
        why: String,
    },
    #[error(
        "{} not in this repository's configuration any more; check out a commit that has {} to deploy {} again",
        .services.join(", "),
        if .services.len() == 1 { "it" } else { "them" },
        if .services.len() == 1 { "it" } else { "them" }
    )]
    Gone { services: Vec<String> },
    #[error(
        "stage `{stage}` has no review `{id}` waiting for approval (`deploy {stage} --review` or `promote … {stage} --review` makes one; a review of another stage is kept with that stage)"
    )]
    NoReview { stage: String, id: String },
    #[error(
        "review `{id}` was approved already, by {by} at {at} UTC (release {release}); review again to deploy what changed since"
    )]
    AlreadyApproved {
        id: String,
        by: String,
        at: String,
        release: String,
    },
    #[error(
        "an approval of review `{id}` by {} deployed {} (release {release}) and did not finish (it failed or was stopped); nothing was deployed now, since the review no longer shows what is left; review again",
        .by.as_deref().unwrap_or("an unknown caller"),
        .services.join(", ")
    )]
    ApprovedPartWay {
        id: String,
        by: Option<String>,
        release: String,
        services: Vec<String>,
    },
    #[error(
        "review `{id}` of stage `{stage}` is stale: {} changed since the review (another template or parameters, or a stack made or deleted; also the deploys of an approval of this very review that was stopped part way); nothing was deployed; review again",
        .stacks.join(", ")
    )]
    StaleReview {
        id: String,
        stage: String,
        stacks: Vec<String>,
    },
    #[error(
        "{service}: its parameters {} are written otherwise in its service.toml than when review `{id}` was made; they resolve only when approved, so the approval would deploy values nobody reviewed; nothing was deployed; review again",
        .names.join(", ")
    )]
    ParametersEdited {
        id: String,
        service: String,
        names: Vec<String>,
    },
    #[error(transparent)]
    Stack(#[from] Box<ferry_stacks::StackError>),
    #[error("`{service}` is not deployed in `{stage}`; services there: {known}")]
    UnknownService {
        service: String,
        stage: String,
        known: String,
    },
}

impl From<ferry_package::UploadError> for ReleaseRunError {
    fn from(e: ferry_package::UploadError) -> Self {
        ReleaseRunError::Stored(Box::new(e))
    }
}

impl From<PrepareError> for ReleaseRunError {
    fn from(e: PrepareError) -> Self {
        ReleaseRunError::Prepare(Box::new(e))
    }
}

/// The stage a promote or rollback deploys to, and where its packages are put together.
pub struct StageTarget<'a> {
    pub ws: &'a Workspace,
    pub stage: &'a Stage,
    /// The stage's AWS access.
    pub config: &'a SdkConfig,
    /// `--local`: the emulator's bucket, created when missing.
    pub local: bool,
    /// The local package store (`target/ferry/package`).
    pub dir: &'a Path,
}

/// The releases of `stage`, when it has an artifact bucket (with `local`, the emulator's).
pub fn release_store(
    ws: &Workspace,
    stage: &Stage,
    config: &SdkConfig,
    local: bool,
) -> Option<ReleaseStore> {
    stage_bucket(ws, stage, local).map(|b| {
        ReleaseStore::new(
            ferry_package::s3_client(config),
            &b,
            &ws.project.name,
            &stage.id,
        )
    })
}

/// The services of the workspace without acceptance tests.
pub fn untested(ws: &Workspace) -> BTreeSet<String> {
    ws.services
        .iter()
        .filter(|s| s.acceptance.is_none())
        .map(|s| s.name.clone())
        .collect()
}

/// [`untested`] as the promote gate counts it: a service whose `service.toml` has uncommitted
/// changes counts as one with tests, which must have passed. Deleting `[acceptance]` in the
/// working tree would otherwise wave through a package whose own commit has tests that never
/// ran. (A committed deletion is the project's decision.)
pub fn gate_untested(ws: &Workspace) -> BTreeSet<String> {
    let mut out = untested(ws);
    let edited = ferry_changes::Repo::open(&ws.root)
        .ok()
        .and_then(|repo| repo.dirty_changes().ok())
        .map(|c| c.paths);
    if let Some(edited) = edited {
        out.retain(|name| {
            ws.service(name).is_none_or(|s| {
                !edited.contains(&format!("{}/{}", s.dir, ferry_manifest::SERVICE_FILE))
            })
        });
    }
    out
}

/// What a run says about the release it makes.
#[derive(Debug, Clone)]
pub struct ReleaseInfo {
    pub id: String,
    pub kind: ReleaseKind,
    pub commit: String,
    pub by: Option<String>,
    pub from: Option<String>,
    pub restores: Option<String>,
    pub gate_override: Option<GateOverride>,
    /// The review this run deploys, when it is an approval.
    pub approval: Option<ferry_releases::Approval>,
}

impl ReleaseInfo {
    /// Release `id` of `kind` at `commit`, made by `by` (the caller's identity): from no other
    /// stage, restoring nothing, past no gate, approving nothing.
    pub fn new(id: String, kind: ReleaseKind, commit: String, by: &str) -> Self {
        ReleaseInfo {
            id,
            kind,
            commit,
            by: Some(by.to_string()),
            from: None,
            restores: None,
            gate_override: None,
            approval: None,
        }
    }
}

/// Checks that `stage` takes packages from `from` (its `promote-from`), before anything else:
/// both named stages (a preview has no promote-from, nor is one).
pub fn check_promote_from(
    ws: &Workspace,
    stage: &Stage,
    from: &Stage,
) -> Result<(), ReleaseRunError> {
    let meant = |s: &Stage| ws.misspelt_stage(s).map(String::from);
    if stage.preview {
        return Err(ReleaseRunError::PreviewTarget {
            stage: stage.name.clone(),
            meant: meant(stage),
        });
    }
    if from.preview {
        return Err(ReleaseRunError::PreviewSource {
            from: from.name.clone(),
            meant: meant(from),
        });
    }
    let from = from.name.as_str();
    match &stage.config.promote_from {
        None => Err(ReleaseRunError::NoPromoteFrom {
            stage: stage.name.clone(),
            from: from.to_string(),
        }),
        Some(c) if c != from => Err(ReleaseRunError::OtherSource {
            stage: stage.name.clone(),
            configured: c.clone(),
            from: from.to_string(),
        }),
        Some(_) => Ok(()),
    }
}

/// Writes the release a run made: every record of the stage after it. `None` when the run wrote
/// no record (nothing deployed) or the stage keeps no bucket.
pub async fn write_release(
    ws: &Workspace,
    stage: &Stage,
    records: &RecordStore,
    store: Option<&ReleaseStore>,
    info: ReleaseInfo,
) -> Result<Option<Release>, ReleaseRunError> {
    let Some(store) = store else {
        return Ok(None);
    };
    let now = records.read_all().await?;
    recover_releases(ws, stage, store, &now, info.kind, &info.id).await?;
    let deployed: Vec<String> = now
        .values()
        .filter(|r| r.release.as_deref() == Some(info.id.as_str()))
        .map(|r| r.service.clone())
        .collect();
    if deployed.is_empty() {
        return Ok(None);
    }
    let release = Release {
        format: ferry_releases::FORMAT,
        id: info.id,
        project: ws.project.name.clone(),
        stage: stage.name.clone(),
        kind: info.kind,
        commit: info.commit,
        created_at: ferry_records::now_secs(),
        by: info.by,
        from: info.from,
        restores: info.restores,
        gate_override: info.gate_override,
        deployed,
        untested: untested(ws),
        services: now,
        approval: info.approval,
        recovered: None,
    };
    store.put(&release).await?;
    Ok(Some(release))
}

/// Writes each release the stage's records name that the store lacks: a run stopped (killed,
/// its machine lost) after its records were written and before its release was. Without it, a
/// rollback would skip what that run deployed, going back further than the stage ran, and
/// tests that pass later would mark no release holding those deploys. Each is written as its
/// run would have (every record of `now`, those stamped with its id as deployed), kept under its
/// own id, so it sorts where it ran; its kind, who ran it, (an approval) the review it
/// deployed and (a rollback) the release it restored are the ones its records name, else
/// (records written before they named them) the kind is `kind`, the run's that finds it missing
/// (`by_run`), and the rest unknown. A run
/// calls this before it deploys anything, with the records as it found them (its
/// own deploys would overwrite the stopped run's records, and that release would be lost), and
/// [`write_release`] again at its end.
pub async fn recover_releases(
    ws: &Workspace,
    stage: &Stage,
    store: &ReleaseStore,
    now: &BTreeMap<String, Record>,
    kind: ReleaseKind,
    by_run: &str,
) -> Result<(), ReleaseRunError> {
    let named: BTreeSet<&str> = now
        .values()
        .filter_map(|r| r.release.as_deref())
        .filter(|id| *id != by_run && ferry_releases::valid_id(id))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let known: BTreeSet<String> = store.ids().await?.into_iter().collect();
    for id in named.into_iter().filter(|id| !known.contains(*id)) {
        let stamped: Vec<&Record> = now
            .values()
            .filter(|r| r.release.as_deref() == Some(id))
            .collect();
        let newest = stamped.iter().max_by_key(|r| r.deployed_at);
        // The kind its records name (records written before they did: the finder's).
        let named_kind = stamped
            .iter()
            .filter_map(|r| r.release_kind.as_deref())
            .find_map(|k| k.parse::<ReleaseKind>().ok());
        let created_at = newest.map_or(0, |r| r.deployed_at);
        // Who ran it, and the review an approval deployed (records written before they named
        // them: not known).
        let by = stamped.iter().find_map(|r| r.release_by.clone());
        // A promote: the stage it promoted from.
        let from = stamped.iter().find_map(|r| r.promoted_from.clone());
        // A rollback: the release it restored, so that the next rollback goes back from that
        // one, never forward to what the stopped rollback went back from.
        let restores = stamped.iter().find_map(|r| r.restores.clone());
        let approval =
            stamped
                .iter()
                .find_map(|r| r.review.clone())
                .map(|review| ferry_releases::Approval {
                    review,
                    by: by.clone().unwrap_or_default(),
                    at: created_at,
                    release: id.to_string(),
                });
        let release = Release {
            format: ferry_releases::FORMAT,
            id: id.to_string(),
            project: ws.project.name.clone(),
            stage: stage.name.clone(),
            kind: named_kind.unwrap_or(kind),
            commit: newest.map(|r| r.commit.clone()).unwrap_or_default(),
            created_at,
            by,
            from,
            restores,
            gate_override: None,
            deployed: stamped.iter().map(|r| r.service.clone()).collect(),
            untested: untested(ws),
            services: now.clone(),
            approval,
            recovered: Some(by_run.to_string()),
        };
        store.put(&release).await?;
    }
    Ok(())
}

/// Puts acceptance outcomes marked on `marked` records into the releases that hold those
/// deploys: the stage's newest release, and the release each record names (a run stopped before
/// its tests ran leaves its deploys in a release a later one may not be), so that rollback knows
/// which releases passed.
pub async fn mark_latest(
    store: Option<&ReleaseStore>,
    marked: &[Record],
) -> Result<(), ReleaseRunError> {
    let Some(store) = store else {
        return Ok(());
    };
    if marked.is_empty() {
        return Ok(());
    }
    let Some(newest) = store.ids().await?.into_iter().next() else {
        return Ok(());
    };
    let ids: BTreeSet<&str> = std::iter::once(newest.as_str())
        .chain(marked.iter().filter_map(|r| r.release.as_deref()))
        .filter(|id| ferry_releases::valid_id(id))
        .collect();
    for id in ids {
        let Some(mut release) = store.get(id).await? else {
            continue;
        };
        // The newest release takes every outcome of a deploy it holds (same time, same stack);
        // an older one only those of the records that name it (a deploy times to the second,
        // and a later one of the same stack may share it).
        let mut changed = false;
        for r in marked
            .iter()
            .filter(|r| id == newest || r.release.as_deref() == Some(id))
        {
            changed |= release.mark(r);
        }
        if changed {
            store.put(&release).await?;
        }
    }
    Ok(())
}

/// Where stored packages are read from: a stage's artifact bucket.
#[derive(Debug, Clone)]
pub struct StoredPackages {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// The stage they were recorded in (for messages).
    pub stage: String,
}

impl StoredPackages {
    /// Where `stage` keeps its packages (its artifact bucket, read with `config`; `local`: the
    /// emulator's bucket); [`ReleaseRunError::NoBucket`] when it keeps none.
    pub fn of_stage(
        ws: &Workspace,
        stage: &Stage,
        config: &SdkConfig,
        local: bool,
    ) -> Result<StoredPackages, ReleaseRunError> {
        let bucket = stage_bucket(ws, stage, local).ok_or_else(|| ReleaseRunError::NoBucket {
            stage: stage.name.clone(),
        })?;
        Ok(StoredPackages {
            s3: ferry_package::s3_client(config),
            bucket,
            stage: stage.name.clone(),
        })
    }
}

/// Where the target stage keeps its own packages (its artifact bucket).
fn own_packages(target: &StageTarget<'_>) -> Result<StoredPackages, ReleaseRunError> {
    StoredPackages::of_stage(target.ws, target.stage, target.config, target.local)
}

/// Checks that this checkout holds, for each Serverless Framework service among `records` (the
/// records of stage `from` about to be promoted), exactly the inputs that passed there: such a
/// service is compiled for each stage from the checkout, so another checkout would compile
/// configuration (IAM, environment, events) that never ran in `from`, although its code
/// archives are checked byte for byte. Inputs are compared by git tree ids: with the input key
/// the record keeps (`Record::input_key`, no history needed), else with the tree of the commit
/// it names (which the clone must have). A service with uncommitted changes among its inputs
/// differs. A record without a key made from a tree with uncommitted changes names no commit
/// that holds what passed, and is not checked (protected stages refuse it anyway). Other kinds
/// deploy their stored packages and need no check.
pub fn check_checkout(
    ws: &Workspace,
    from: &str,
    records: &[&Record],
) -> Result<(), ReleaseRunError> {
    let problems = checkout_problems(ws, records, "passed").map_err(|(services, why)| {
        ReleaseRunError::CheckoutUnverifiable {
            from: from.to_string(),
            services,
            why,
        }
    })?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ReleaseRunError::CheckoutDiffers {
            from: from.to_string(),
            services: problems,
        })
    }
}

/// What [`check_checkout`] finds of `records`' Serverless services: each whose inputs differ in
/// this checkout, as `<service>: <made> at <commit>; <why>`; `Err` with the services and why
/// when the repository cannot be read.
fn checkout_problems(
    ws: &Workspace,
    records: &[&Record],
    made: &str,
) -> Result<Vec<String>, (Vec<String>, String)> {
    // A record with an input key is compared by it; one without, by its commit when its
    // inputs were as committed (else its commit does not hold what was compiled).
    let compiled: Vec<&Record> = records
        .iter()
        .copied()
        .filter(|r| r.kind.as_deref() == Some(ServiceKind::Serverless.as_str()))
        .filter(|r| r.input_key.is_some() || !r.from_uncommitted_inputs())
        .collect();
    let found = checkout_inputs(ws, &compiled)
        .map_err(|why| (compiled.iter().map(|r| r.service.clone()).collect(), why))?;
    Ok(compiled
        .iter()
        .zip(found)
        .filter_map(|(r, f)| {
            f.map(|why| {
                let short = r.commit.get(..12).unwrap_or(&r.commit);
                format!("{}: {made} at {short}; {why}", r.service)
            })
        })
        .collect())
}

/// For each of `records`, whether this checkout holds the inputs its package was made from
/// (compared by git tree ids: with the record's input key, else with the tree of the commit it
/// names): `None` when it does, else why not. `Err` when the repository cannot be read.
pub(crate) fn checkout_inputs(
    ws: &Workspace,
    records: &[&Record],
) -> Result<Vec<Option<String>>, String> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let repo = ferry_changes::Repo::open(&ws.root).map_err(|e| e.to_string())?;
    // Records of services missing from the workspace were refused earlier (`Gone`); here they
    // have nothing to compare.
    let inputs: Vec<Option<ferry_changes::ServiceInputs>> = records
        .iter()
        .map(|r| Some(crate::prepare::service_inputs(ws.service(&r.service)?)))
        .collect();
    let asked: Vec<(ferry_changes::Made<'_>, &ferry_changes::ServiceInputs)> = records
        .iter()
        .zip(&inputs)
        .filter_map(|(r, i)| {
            let made = match &r.input_key {
                Some(key) => ferry_changes::Made::Key(key),
                None => ferry_changes::Made::Commit(&r.commit),
            };
            Some((made, i.as_ref()?))
        })
        .collect();
    let mut compared = repo
        .compare_inputs(&asked, &ws.project.global_inputs)
        .map_err(|e| e.to_string())?
        .into_iter();
    let mut read = LockFilesRead::default();
    Ok(records
        .iter()
        .zip(&inputs)
        .map(|(r, i)| {
            let i = i.as_ref()?;
            match compared.next()? {
                Ok(ferry_changes::InputsAt::Same) => None,
                Ok(ferry_changes::InputsAt::Differ(parts)) => {
                    let parts = lock_files_that_matter(&repo, &r.commit, i, parts, &mut read);
                    (!parts.is_empty()).then(|| inputs_differ(&parts))
                }
                Ok(ferry_changes::InputsAt::Uncommitted(paths)) => Some(format!(
                    "its inputs have uncommitted changes in this checkout: {} (a build that rewrites a tracked file, such as `npm install` rewriting package-lock.json, does this: use `npm ci`)",
                    first_few(&paths)
                )),
                Err(_) => Some(
                    "made at a commit this clone does not have (fetch it; a shallow clone lacks history)"
                        .to_string(),
                ),
            }
        })
        .collect())
}

fn inputs_differ(parts: &[String]) -> String {
    format!("these inputs differ in this checkout: {}", first_few(parts))
}

/// `parts` (input folders or files whose ids differ) without the lock files (a global input,
/// or one `inputs` names) whose change since `commit` leaves what `service` installs as it was
/// (another member's upgrade): the service compiles as it did. A lock file that cannot be read
/// on either side, or one that needs its members' manifests (Yarn 1, Cargo), stays.
fn lock_files_that_matter(
    repo: &ferry_changes::Repo,
    commit: &str,
    service: &ferry_changes::ServiceInputs,
    parts: Vec<String>,
    read: &mut LockFilesRead,
) -> Vec<String> {
    use ferry_changes::lockfile::{self, LockChange, Reach};
    let folders = lockfile::service_folders(&service.dir, &service.inputs);
    let folders: Vec<&str> = folders.iter().map(String::as_str).collect();
    parts
        .into_iter()
        .filter(|part| {
            if !lockfile::is_lock_file(part) {
                return true;
            }
            let then = read.at(repo, Some(commit), part);
            let now = read.at(repo, None, part);
            match (then, now) {
                // One that needs its members' manifests (Yarn 1, Cargo) counts as a whole here.
                (Some(then), Some(now)) if !then.wants_importers() && !now.wants_importers() => {
                    // A folder holding a lock file of its own installs from it, as the plan
                    // judges it.
                    let is_file = |p: &str| repo.has_file_in(&ferry_changes::Head::WorkingTree, p);
                    LockChange::new(&then, &now).reach_service(
                        part,
                        &service.dir,
                        &folders,
                        false,
                        &is_file,
                    ) != Reach::Unchanged
                }
                _ => true,
            }
        })
        .collect()
}

/// Lock files read once for all the records a check compares: by commit (`None`: the working
/// tree) and path; `None` when unreadable.
#[derive(Default)]
struct LockFilesRead(
    BTreeMap<(Option<String>, String), Option<std::rc::Rc<ferry_changes::lockfile::Lock>>>,
);

impl LockFilesRead {
    fn at(
        &mut self,
        repo: &ferry_changes::Repo,
        commit: Option<&str>,
        path: &str,
    ) -> Option<std::rc::Rc<ferry_changes::lockfile::Lock>> {
        use ferry_changes::lockfile::{Lock, MAX_LOCK_FILE};
        self.0
            .entry((commit.map(String::from), path.to_string()))
            .or_insert_with(|| {
                let text = match commit {
                    Some(c) => repo.file_at(repo.resolve(c)?, path),
                    None => repo.text_in(&ferry_changes::Head::WorkingTree, path, MAX_LOCK_FILE),
                };
                Lock::parse(path, &text?).ok().map(std::rc::Rc::new)
            })
            .clone()
    }
}

/// The first five of `items` for a message (`""`, the repository root, as `/`), and how many
/// more.
fn first_few(items: &[String]) -> String {
    let shown: Vec<&str> = items
        .iter()
        .map(|i| if i.is_empty() { "/" } else { i.as_str() })
        .collect();
    ferry_manifest::first_few(&shown, 5)
}

/// Stored packages to put together, all from one place.
pub struct StoredSource<'a> {
    pub from: &'a StoredPackages,
    /// The records naming the packages, by service.
    pub records: BTreeMap<String, &'a Record>,
    /// Serverless Framework services are left out: they are compiled for the target stage when
    /// they deploy (a promote). Otherwise their stored compile deploys as it is.
    pub compile_per_stage: bool,
}

/// Puts the stored packages the `sources`' records name together into a package for `target`:
/// each package entry fetched from its source, checked against the record's fingerprint, its
/// template and files kept in the local package store, and everything put in the target stage's
/// bucket where it is missing (archives fetched from the source and checked by hash first when
/// the buckets differ).
pub async fn stored_package(
    target: &StageTarget<'_>,
    sources: &[StoredSource<'_>],
) -> Result<Prepared, ReleaseRunError> {
    let StageTarget { ws, local, dir, .. } = *target;
    let StoredPackages { s3, bucket, .. } = own_packages(target)?;
    if local {
        ensure_local_bucket(&s3, &bucket).await?;
    }
    let mut services = BTreeMap::new();
    let mut origins = BTreeMap::new();
    let mut input_keys = BTreeMap::new();
    for (name, r, from, compile_per_stage) in sources.iter().flat_map(|src| {
        src.records
            .iter()
            .map(|(name, r)| (name, *r, src.from, src.compile_per_stage))
    }) {
        let origin = Origin {
            package: r.package.clone().unwrap_or_else(|| r.commit.clone()),
            commit: r.commit.clone(),
            dirty: r.dirty,
            inputs_dirty: r.inputs_dirty,
            compiled_with: r.compiled_with.clone(),
        };
        // The key of the inputs a Serverless service was compiled from goes on into the new
        // record: when it is compiled again for the target stage (a promote, whose checkout was
        // checked against the key by `check_checkout`, and whose compile may reuse one under
        // it), and when its stored compile deploys as it is (a rollback, an approval).
        if let Some(k) = &r.input_key {
            input_keys.insert(name.clone(), k.clone());
        }
        if compile_per_stage && r.kind.as_deref() == Some(ServiceKind::Serverless.as_str()) {
            // Compiled for the stage when it deploys; its record names the commit that passed.
            origins.insert(name.clone(), origin);
            continue;
        }
        let key = r
            .package_key
            .as_deref()
            .ok_or_else(|| ReleaseRunError::NotStored {
                service: name.clone(),
                stage: from.stage.clone(),
            })?;
        let sp = ferry_package::fetch_package(
            &from.s3,
            &from.bucket,
            dir,
            &ws.project.name,
            name,
            key,
            from.bucket != bucket,
        )
        .await?;
        check_fingerprint(name, &from.stage, key, &sp, r)?;
        origins.insert(name.clone(), origin);
        services.insert(name.clone(), sp);
    }
    let manifest = PackageManifest {
        format: ferry_package::FORMAT,
        file_rules: ferry_package::FILE_RULES,
        id: "stored".into(),
        commit: String::new(),
        dirty: false,
        project: ws.project.name.clone(),
        services,
    };
    let names: Vec<String> = manifest.services.keys().cloned().collect();
    let upload = ferry_package::upload(&s3, &bucket, dir, &manifest, &names).await?;
    Ok(Prepared {
        manifest,
        dir: dir.to_path_buf(),
        bucket: Some(bucket),
        upload,
        s3,
        input_keys,
        origins,
    })
}

fn check_fingerprint(
    service: &str,
    stage: &str,
    key: &str,
    sp: &ServicePackage,
    r: &Record,
) -> Result<(), ReleaseRunError> {
    let got = sp.fingerprint();
    if got == r.fingerprint() {
        Ok(())
    } else {
        Err(ReleaseRunError::PackageDiffers {
            service: service.into(),
            stage: stage.into(),
            key: key.into(),
            expected: r.fingerprint().to_string(),
            got,
        })
    }
}

/// The services a run may touch given the ones that must deploy: those and their dependents
/// among `within`.
fn with_dependents(
    ws: &Workspace,
    deploy: &BTreeSet<String>,
    within: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut c = ws
        .graph()
        .with_dependents(deploy.iter().map(String::as_str));
    c.retain(|s| within.contains(s) && ws.service(s).is_some());
    c
}

/// The dependents of what a run deploys (`deploy`) that run in the target stage (`current`)
/// but are not part of the run (`within`), checked as in a deploy: each keeps the package the
/// target runs and redeploys only when what it receives (a deployed service's outputs)
/// changed. Its parameters, tests and (for a Serverless Framework service) compile come from
/// this checkout, so only one whose inputs here are those its package was made from is kept;
/// any other is reported, never deployed with another version's configuration. The kept ones'
/// packages are fetched from the target's own bucket.
async fn kept_dependents<'r>(
    target: &StageTarget<'_>,
    current: &'r BTreeMap<String, Record>,
    deploy: &BTreeSet<String>,
    within: &BTreeSet<String>,
    what: (&str, &str),
) -> Result<Kept<'r>, ReleaseRunError> {
    let (ws, stage) = (target.ws, target.stage);
    let (deployed, to_check) = what;
    let running: BTreeSet<String> = current.keys().cloned().collect();
    let outside: Vec<&Record> = with_dependents(ws, deploy, &running)
        .difference(within)
        .map(|s| &current[s])
        .collect();
    let not_checked =
        |why: String| format!("a dependent of what is {deployed}, not checked: {why}; {to_check}");
    let mut skipped = Vec::new();
    // A checkout whose history cannot be read (no `.git`, as a pipeline's source archive) checks
    // none of them: each is reported, and the run goes on as before such checks.
    let found: Vec<Option<String>> = match checkout_inputs(ws, &outside) {
        Ok(found) => found
            .into_iter()
            .map(|differs| {
                differs.map(|why| {
                    format!(
                        "the package `{}` runs was made from other inputs ({why})",
                        stage.name
                    )
                })
            })
            .collect(),
        Err(why) => vec![
            Some(format!(
                "this checkout's history cannot be read to compare its inputs with those its package was made from ({why})"
            ));
            outside.len()
        ],
    };
    let mut kept: BTreeMap<String, &Record> = BTreeMap::new();
    for (r, differs) in outside.into_iter().zip(found) {
        let s = r.service.clone();
        match (differs, &r.package_key) {
            (Some(why), _) => skipped.push((s, not_checked(why))),
            (None, None) => skipped.push((
                s,
                not_checked(format!("its package in `{}` is not stored", stage.name)),
            )),
            (None, Some(_)) => {
                kept.insert(s, r);
            }
        }
    }
    // A package gone from the target's bucket (deleted by hand) cannot be redeployed as it
    // runs: reported like one never stored, not a failure of the whole run.
    let own = if kept.is_empty() {
        None
    } else {
        Some(own_packages(target)?)
    };
    let mut gone = Vec::new();
    if let Some(own) = &own {
        for (s, r) in &kept {
            let key = r
                .package_key
                .as_deref()
                .expect("kept only with a package key");
            let fetched = ferry_package::fetch_package(
                &own.s3,
                &own.bucket,
                target.dir,
                &ws.project.name,
                s,
                key,
                false,
            )
            .await;
            match fetched {
                Ok(_) => {}
                Err(ferry_package::UploadError::Missing { bucket, key, .. }) => gone.push((
                    s.clone(),
                    not_checked(format!(
                        "its package in `{}` is gone from the bucket (s3://{bucket}/{key} is missing)",
                        stage.name
                    )),
                )),
                Err(e) => return Err(e.into()),
            }
        }
    }
    for (s, why) in gone {
        kept.remove(&s);
        skipped.push((s, why));
    }
    Ok(Kept { kept, skipped, own })
}

/// What [`kept_dependents`] found.
struct Kept<'r> {
    /// Checked with the package the target runs, by service.
    kept: BTreeMap<String, &'r Record>,
    /// Not checked, with why.
    skipped: Vec<(String, String)>,
    /// The target's own packages, when any is kept.
    own: Option<StoredPackages>,
}

impl Kept<'_> {
    const PROMOTED: (&'static str, &'static str) =
        ("promoted", "promote it or deploy it to check it");
    const APPROVED: (&'static str, &'static str) = (
        "approved",
        "review it (`deploy --review`) and approve that to check it",
    );

    /// Where the kept dependents' packages come from: the target's own bucket.
    fn source(&self) -> Option<StoredSource<'_>> {
        let own = self.own.as_ref().filter(|_| !self.kept.is_empty())?;
        Some(StoredSource {
            from: own,
            records: self.kept.clone(),
            // Compiled for the stage from this checkout, whose inputs were checked.
            compile_per_stage: true,
        })
    }

    /// The archives a kept Serverless Framework service's compile must reproduce: what the
    /// target stage runs.
    fn archives(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.kept
            .iter()
            .filter(|(_, r)| r.kind.as_deref() == Some(ServiceKind::Serverless.as_str()))
            .map(|(s, r)| (s.clone(), r.artifacts.clone()))
            .collect()
    }
}

/// Why a service deploys, with what its stack says when that is part of why (deleted, failed
/// or changed outside Ferry).
fn with_drift(why: String, drift: Option<&ferry_plan::Reason>) -> String {
    match drift {
        Some(d) => format!("{why}; {}", ferry_plan::reason_text(d)),
        None => why,
    }
}

/// A promote, worked out.
#[derive(Debug)]
pub struct Promotion {
    pub selection: Selection,
    /// Services already at the package that passed: skipped, with why.
    pub skipped: Vec<(String, String)>,
    /// The archives compiled-per-stage services must reproduce.
    pub archives: BTreeMap<String, BTreeMap<String, String>>,
    /// The packages to deploy; `None` when nothing differs.
    pub prepared: Option<Prepared>,
}

/// What a promote takes.
pub struct PromoteRequest<'a> {
    /// The source stage and its records (read with its own credentials).
    pub from: &'a Stage,
    pub from_records: &'a BTreeMap<String, Record>,
    /// Where the source stage keeps its packages.
    pub from_packages: StoredPackages,
    /// Only these services (all of the source stage's when empty).
    pub services: &'a [String],
    /// Services already at their promoted package whose acceptance tests the target stage
    /// still owes ([`promoted_untested`]), when the run tests: while something else promotes,
    /// each is a candidate too, so that the run ([`crate::DeployOptions::tests_owed`]) tests it
    /// where it stands in the graph, before the dependents that deploy with it (but a
    /// Serverless Framework service, which would compile again: the caller tests it after).
    pub tests_owed: &'a BTreeSet<String>,
}

/// Works out a promote of `req.from`'s passed packages to the target stage (whose records are
/// `current`): checks promote-from, the gate (every selected service passed in the source
/// stage) and, for a protected stage, that no package came from a dirty tree; skips services
/// already at their package; fetches and stores the others' packages. Nothing is deployed.
pub async fn prepare_promote(
    target: &StageTarget<'_>,
    current: &BTreeMap<String, Record>,
    drift: &BTreeMap<String, ferry_plan::Reason>,
    req: &PromoteRequest<'_>,
) -> Result<Promotion, ReleaseRunError> {
    let (ws, stage) = (target.ws, target.stage);
    check_promote_from(ws, stage, req.from)?;
    let from = &req.from.name;
    let selected: Vec<&Record> = if req.services.is_empty() {
        req.from_records
            .values()
            .filter(|r| ws.service(&r.service).is_some())
            .collect()
    } else {
        req.services
            .iter()
            .map(|s| {
                req.from_records
                    .get(s)
                    .ok_or_else(|| ReleaseRunError::UnknownService {
                        service: s.clone(),
                        stage: from.clone(),
                        known: req
                            .from_records
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let gone: Vec<String> = selected
        .iter()
        .filter(|r| ws.service(&r.service).is_none())
        .map(|r| r.service.clone())
        .collect();
    if !gone.is_empty() {
        return Err(ReleaseRunError::Gone { services: gone });
    }
    let untested = gate_untested(ws);
    let candidates: Vec<Candidate> = selected
        .iter()
        .map(|r| Candidate {
            service: r.service.clone(),
            // What passed is what goes: the gate checks its tests. A service compiled per stage
            // has no package before it compiles: the gate gives the archives it must reproduce.
            fingerprint: (r.kind.as_deref() != Some(ServiceKind::Serverless.as_str()))
                .then(|| r.fingerprint().to_string()),
        })
        .collect();
    let gate = ferry_releases::check_gate(
        from,
        req.from_records,
        &|s| untested.contains(s),
        &candidates,
    );
    if !gate.refused.is_empty() {
        return Err(ReleaseRunError::Gate {
            stage: stage.name.clone(),
            from: from.clone(),
            refused: gate.refused,
            overridable: false,
            review: None,
        });
    }
    if stage.config.protected {
        // A package whose own inputs were as committed (the tree was dirty elsewhere: an
        // untracked file in another service's folder) is its commit's, and the plan never
        // redeploys it: refused, it blocked the stage for good.
        let dirty: Vec<String> = selected
            .iter()
            .filter(|r| r.from_uncommitted_inputs())
            .map(|r| r.service.clone())
            .collect();
        if !dirty.is_empty() {
            return Err(ReleaseRunError::Dirty {
                stage: stage.name.clone(),
                from: from.clone(),
                services: dirty,
            });
        }
    }
    let mut deploy = BTreeSet::new();
    let mut skipped = Vec::new();
    for r in &selected {
        match current.get(&r.service) {
            // Its record says so, and its stack agrees (a stack deleted, failed or changed
            // outside Ferry takes the package again, as a deploy would).
            Some(c) if ferry_releases::same_package(r, c) && !drift.contains_key(&r.service) => {
                skipped.push((
                    r.service.clone(),
                    format!("already at the package that passed in `{from}`"),
                ))
            }
            _ => {
                deploy.insert(r.service.clone());
            }
        }
    }
    let within: BTreeSet<String> = selected.iter().map(|r| r.service.clone()).collect();
    // Checked too: services that never received a dependency's last deploy (a run that
    // deployed it was killed, or its tests failed).
    let seeds: BTreeSet<String> = deploy
        .iter()
        .cloned()
        .chain(crate::prepare::behind_ready(ws, current))
        .collect();
    let mut candidates = with_dependents(ws, &seeds, &within);
    // Not a Serverless Framework service: as a candidate it would compile again in this
    // stage only to be tested (its tests run after the deploy instead).
    let owed: BTreeSet<String> = req
        .tests_owed
        .iter()
        .filter(|s| !deploy.is_empty() && within.contains(*s) && !candidates.contains(*s))
        .filter(|s| req.from_records[*s].kind.as_deref() != Some(ServiceKind::Serverless.as_str()))
        .cloned()
        .collect();
    candidates.extend(owed.iter().cloned());
    let compiled: Vec<&Record> = candidates.iter().map(|s| &req.from_records[s]).collect();
    check_checkout(ws, from, &compiled)?;
    skipped.retain(|(s, _)| !candidates.contains(s));
    let kept = kept_dependents(target, current, &seeds, &within, Kept::PROMOTED).await?;
    skipped.extend(kept.skipped.iter().cloned());
    candidates.extend(kept.kept.keys().cloned());
    let mut why: BTreeMap<String, String> = candidates
        .iter()
        .filter(|s| deploy.contains(*s))
        .map(|s| {
            let r = &req.from_records[s];
            let passed = format!(
                "passed in `{from}` at {}",
                r.commit.get(..12).unwrap_or(&r.commit)
            );
            (s.clone(), with_drift(passed, drift.get(s)))
        })
        .collect();
    why.extend(owed.into_iter().map(|s| {
        (
            s,
            format!(
                "already at its package; its acceptance tests in `{}` are owed",
                stage.name
            ),
        )
    }));
    let prepared = if candidates.is_empty() {
        None
    } else {
        let promoted = candidates
            .iter()
            .filter(|s| within.contains(*s))
            .map(|s| (s.clone(), &req.from_records[s]))
            .collect();
        let mut sources = vec![StoredSource {
            from: &req.from_packages,
            records: promoted,
            compile_per_stage: true,
        }];
        sources.extend(kept.source());
        Some(stored_package(target, &sources).await?)
    };
    // A compile must reproduce the archives of what runs: what passed, or, for a kept
    // dependent, what the target stage runs.
    let mut archives: BTreeMap<String, BTreeMap<String, String>> = gate
        .archives
        .into_iter()
        .filter(|(s, _)| candidates.contains(s))
        .collect();
    archives.extend(kept.archives());
    Ok(Promotion {
        selection: Selection {
            deploy,
            candidates,
            why,
        },
        skipped,
        archives,
        prepared,
    })
}

/// A rollback, worked out.
#[derive(Debug)]
pub struct Rollback {
    /// The release whose packages deploy again.
    pub target: Release,
    /// The stage's newest release when the rollback started.
    pub from: Option<String>,
    pub selection: Selection,
    /// Services the stage runs that the target release does not have: left as they are.
    pub left: Vec<String>,
    /// Services of the target release removed since, from the stage and the checkout: not
    /// brought back.
    pub removed: Vec<String>,
    pub prepared: Option<Prepared>,
}

/// Works out a rollback of the stage `dest` (records `current`) to the release `to` names,
/// else the newest release before the newest one whose tests passed; with `only`, only those
/// services. Services that differ deploy; their dependents in the release are checked. Nothing
/// is deployed.
pub async fn prepare_rollback(
    dest: &StageTarget<'_>,
    store: &ReleaseStore,
    current: &BTreeMap<String, Record>,
    drift: &BTreeMap<String, ferry_plan::Reason>,
    to: Option<&str>,
    only: Option<&BTreeSet<String>>,
) -> Result<Rollback, ReleaseRunError> {
    let (ws, stage) = (dest.ws, dest.stage);
    if let Some(to) = to
        && !ferry_releases::valid_id(to)
    {
        return Err(ferry_releases::ReleaseError::BadId { id: to.into() }.into());
    }
    let ids = store.ids().await?;
    let newest = ids.first().cloned();
    // Load newest first, only as far back as the answer needs (the search says when older
    // releases could change it).
    let mut loaded: Vec<Release> = Vec::new();
    let mut target = None;
    // A service gone from the checkout is no rollback's to bring back: releases are judged by
    // the services it still has (one differing only in a removed or renamed service was taken,
    // and the rollback did nothing).
    let in_checkout: BTreeSet<String> = ws.services.iter().map(|s| s.name.clone()).collect();
    let scope = Some(only.unwrap_or(&in_checkout));
    for (n, id) in ids.iter().enumerate() {
        if let Some(r) = store.get(id).await? {
            loaded.push(r);
        }
        let complete = n + 1 == ids.len();
        let newest_first: Vec<&Release> = loaded.iter().collect();
        if let Some(r) = ferry_releases::rollback_target_in(
            &stage.name,
            &newest_first,
            complete,
            to,
            current,
            scope,
        )? {
            target = Some(r.clone());
            break;
        }
    }
    let Some(target) = target else {
        return Err(TargetError::NoReleases {
            stage: stage.name.clone(),
        }
        .into());
    };
    // What differs from the release, and what its records say runs it while its stack says
    // otherwise (deleted, failed or changed outside Ferry), which takes its package again.
    let mut differs: BTreeSet<String> = ferry_releases::differing(&target.services, current)
        .into_iter()
        .chain(
            drift
                .keys()
                // A service gone from the checkout is no rollback's to bring back.
                .filter(|s| target.services.contains_key(*s) && ws.service(s).is_some())
                .cloned(),
        )
        .collect();
    if let Some(only) = only {
        differs.retain(|s| only.contains(s));
    }
    // A service of the release that was removed since (no record in the stage, and gone from
    // the checkout) is not brought back: a rollback returns what the stage runs to earlier
    // packages, it does not undo a `remove`. One the stage still runs needs its configuration.
    let removed: Vec<String> = differs
        .iter()
        .filter(|s| ws.service(s).is_none() && !current.contains_key(*s))
        .cloned()
        .collect();
    differs.retain(|s| !removed.contains(s));
    let gone: Vec<String> = differs
        .iter()
        .filter(|s| ws.service(s).is_none())
        .cloned()
        .collect();
    if !gone.is_empty() {
        return Err(ReleaseRunError::Gone { services: gone });
    }
    let within: BTreeSet<String> = target.services.keys().cloned().collect();
    // Checked too: services that never received a dependency's last deploy (of those the
    // rollback is for: any other keeps what it runs).
    let seeds: BTreeSet<String> = differs
        .iter()
        .cloned()
        .chain(
            crate::prepare::behind_ready(ws, current)
                .into_iter()
                .filter(|s| only.is_none_or(|o| o.contains(s))),
        )
        .collect();
    let candidates = with_dependents(ws, &seeds, &within);
    let left = current
        .keys()
        .filter(|s| !target.services.contains_key(*s) && only.is_none_or(|o| o.contains(*s)))
        .cloned()
        .collect();
    let why = differs
        .iter()
        .map(|s| {
            let r = &target.services[s];
            let back = format!(
                "back to release {} (commit {})",
                target.id,
                r.commit.get(..12).unwrap_or(&r.commit)
            );
            (s.clone(), with_drift(back, drift.get(s)))
        })
        .collect();
    let prepared = if candidates.is_empty() {
        None
    } else {
        let from = StoredPackages {
            s3: ferry_package::s3_client(dest.config),
            bucket: store.bucket().to_string(),
            stage: stage.name.clone(),
        };
        let records = candidates
            .iter()
            .map(|s| (s.clone(), &target.services[s]))
            .collect();
        let source = StoredSource {
            from: &from,
            records,
            compile_per_stage: false,
        };
        Some(stored_package(dest, &[source]).await?)
    };
    Ok(Rollback {
        from: newest,
        selection: Selection {
            deploy: differs,
            candidates,
            why,
        },
        left,
        removed,
        prepared,
        target,
    })
}

/// The services a deploy of `plan` would change in a stage with `promote-from`, as the gate
/// sees them: every service the plan deploys, and every checked service whose package differs
/// from its record (`current`). Serverless Framework services have no package before they
/// compile: their archives are compared afterwards.
pub fn gate_candidates(
    ws: &Workspace,
    plan: &Plan,
    prepared: Option<&Prepared>,
    current: &BTreeMap<String, Record>,
) -> Vec<Candidate> {
    // Planned only as not-received: checked against its record, as a dependent; its package
    // counts only if it differs from the record's.
    let must: BTreeSet<&str> = plan
        .order
        .iter()
        .filter(|s| !crate::run::only_not_received(plan, s))
        .map(String::as_str)
        .collect();
    crate::candidates(ws, plan, current)
        .into_iter()
        .filter_map(|name| {
            let kind = ws.service(&name)?.kind;
            let fingerprint = if kind == ServiceKind::Serverless {
                None
            } else {
                Some(
                    prepared
                        .and_then(|p| p.manifest.services.get(&name))
                        .map(ServicePackage::fingerprint)?,
                )
            };
            let changes = must.contains(name.as_str())
                || match (&fingerprint, current.get(&name)) {
                    (Some(fp), Some(r)) => fp != r.fingerprint(),
                    (None, _) => true,
                    (_, None) => true,
                };
            changes.then_some(Candidate {
                service: name,
                fingerprint,
            })
        })
        .collect()
}

/// What `on-test-failure = "rollback"` rolls back after the run that made release
/// `run_release` (its records name it) saw `failed` fail their tests: those services and their
/// dependents, as far as that run deployed them (a service it did not deploy runs what it ran
/// before), or as far as what they run had not passed its tests when the run began (`before`,
/// the stage's records then): a deploy an earlier run made and never finished testing (killed
/// or cancelled during its tests), whose tests this run owed it. With `with_dependencies`, also
/// the services they depend on, however indirectly, that the run deployed, and the dependents
/// of those: a failed test judged a service with what its dependencies gave it, and when only a
/// dependency's package changed (the failed service redeployed for the outputs it received,
/// its package the same in every release), the failed service alone has nothing to go back to.
/// `current` is the stage's records.
pub fn to_roll_back(
    ws: &Workspace,
    current: &BTreeMap<String, Record>,
    before: &BTreeMap<String, Record>,
    run_release: &str,
    failed: &BTreeSet<String>,
    with_dependencies: bool,
) -> BTreeSet<String> {
    // Only a failed service counts as owed: a service without acceptance tests has never
    // passed any, and one the run neither deployed nor saw fail stays as it is.
    let deployed: BTreeSet<&str> = current
        .values()
        .filter(|r| {
            r.release.as_deref() == Some(run_release)
                || (failed.contains(&r.service)
                    && before.get(&r.service).is_some_and(|b| {
                        b.release == r.release
                            && b.fingerprint() == r.fingerprint()
                            && b.tests_passed() != Some(true)
                    }))
        })
        .map(|r| r.service.as_str())
        .collect();
    let graph = ws.graph();
    let mut roots = failed.clone();
    if with_dependencies {
        roots.extend(
            graph
                .with_dependencies(failed.iter().map(String::as_str))
                .into_iter()
                .filter(|s| deployed.contains(s.as_str())),
        );
    }
    let mut affected = graph.with_dependents(roots.iter().map(String::as_str));
    affected.retain(|s| deployed.contains(s.as_str()));
    affected
}

/// A deploy of a stage with promote-from, past the gate: the archives each gated service is to
/// deploy (what passed in the source stage), and the override when some had not passed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GateOutcome {
    pub archives: BTreeMap<String, BTreeMap<String, String>>,
    pub overridden: Option<GateOverride>,
}

/// Judges `candidates` ([`gate_candidates`]) against the records of the source stage `from`:
/// each must have passed there, and then deploys the archives that passed. With `override_by`
/// (who, and why) the others deploy too, whatever they compile to, and the override names them;
/// without it they are the error ([`gate_error`]).
pub fn pass_gate(
    ws: &Workspace,
    stage: &Stage,
    from: &str,
    source_records: &BTreeMap<String, Record>,
    candidates: &[Candidate],
    override_by: Option<(&str, &str)>,
) -> Result<GateOutcome, ReleaseRunError> {
    let untested = gate_untested(ws);
    let passed =
        ferry_releases::check_gate(from, source_records, &|s| untested.contains(s), candidates);
    if passed.refused.is_empty() {
        return Ok(GateOutcome {
            archives: passed.archives,
            overridden: None,
        });
    }
    let Some((by, reason)) = override_by else {
        return Err(gate_error(stage, from, passed));
    };
    let services: Vec<String> = passed.refused.iter().map(|r| r.service.clone()).collect();
    let mut archives = passed.archives;
    archives.retain(|s, _| !services.contains(s));
    Ok(GateOutcome {
        archives,
        overridden: Some(GateOverride {
            by: by.to_string(),
            reason: reason.to_string(),
            services,
        }),
    })
}

/// A service's `[parameters]` as written (`${output:db.Url}`, not what it resolves to).
pub(crate) fn written_parameters(service: &ferry_manifest::Service) -> BTreeMap<String, String> {
    service
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

/// The gate again, when a review of a stage with `promote-from` is approved: what passed in `from`
/// at the review may have failed there since (its tests ran again), and a package that no
/// longer passes is not approved into `stage`. Services the review went past the gate for
/// (`--override-gate`, kept in the review) stay past it.
pub fn recheck_gate(
    ws: &Workspace,
    stage: &Stage,
    from: &str,
    source_records: &BTreeMap<String, Record>,
    pending: &ferry_releases::PendingRelease,
) -> Result<(), ReleaseRunError> {
    let untested = gate_untested(ws);
    let candidates: Vec<Candidate> = pending
        .services
        .iter()
        .map(|(service, r)| Candidate {
            service: service.clone(),
            // A service compiled per stage was reviewed with its archives from `from`.
            fingerprint: (r.kind.as_deref() != Some(ServiceKind::Serverless.as_str()))
                .then(|| r.fingerprint.clone()),
        })
        .collect();
    let mut passed =
        ferry_releases::check_gate(from, source_records, &|s| untested.contains(s), &candidates);
    if let Some(o) = &pending.gate_override {
        passed.refused.retain(|r| !o.services.contains(&r.service));
    }
    if passed.refused.is_empty() {
        return Ok(());
    }
    Err(ReleaseRunError::Gate {
        stage: stage.name.clone(),
        from: from.to_string(),
        refused: passed.refused,
        overridable: false,
        review: Some(pending.id.clone()),
    })
}

/// The error of a deploy to `stage` that the gate of `from` refused (`--override-gate` goes past
/// it).
fn gate_error(stage: &Stage, from: &str, passed: Passed) -> ReleaseRunError {
    ReleaseRunError::Gate {
        stage: stage.name.clone(),
        from: from.to_string(),
        refused: passed.refused,
        overridable: true,
        review: None,
    }
}

/// An approval, worked out: the review it deploys and how.
#[derive(Debug)]
pub struct ApprovalPlan {
    pub pending: ferry_releases::PendingRelease,
    pub selection: Selection,
    /// The reviewed packages, put together for the stage.
    pub prepared: Prepared,
    /// The reviewed parameters, by service.
    pub parameters: BTreeMap<String, BTreeMap<String, String>>,
    /// Dependents of what is approved that the stage runs and the review left out (what they
    /// receive changes only once the approved stacks deploy): not checked, with why. The others
    /// are candidates, checked with the packages the stage runs.
    pub skipped: Vec<(String, String)>,
    /// The archives a kept Serverless Framework dependent's compile must reproduce.
    pub archives: BTreeMap<String, BTreeMap<String, String>>,
}

/// Works out the approval of review `id` of the stage `dest` (whose records are `current`):
/// refused when there is no such review in this stage, when it was approved already, or when a
/// reviewed stack changed since the review (another template or parameters, or it appeared or
/// went). The reviewed services deploy; their dependents that the stage runs are checked after
/// them as in a deploy ([`kept_dependents`]): a review resolves their parameters from the
/// stacks as they are, and an approved stack's outputs may change when it deploys. Nothing is
/// deployed here.
pub async fn prepare_approval(
    dest: &StageTarget<'_>,
    store: &ReleaseStore,
    id: &str,
    current: &BTreeMap<String, Record>,
    tests_owed: &BTreeSet<String>,
) -> Result<ApprovalPlan, ReleaseRunError> {
    let stage = dest.stage;
    let Some(pending) = store.get_pending(id).await? else {
        return Err(ReleaseRunError::NoReview {
            stage: stage.name.clone(),
            id: id.to_string(),
        });
    };
    if pending.stage != stage.name {
        return Err(TargetError::OtherStage {
            id: id.to_string(),
            owner: pending.stage.clone(),
            stage: stage.name.clone(),
        }
        .into());
    }
    if pending.named_stage && stage.preview {
        return Err(ReleaseRunError::NamedElsewhere {
            stage: stage.name.clone(),
            id: id.to_string(),
        });
    }
    if let Some(a) = &pending.approved {
        return Err(ReleaseRunError::AlreadyApproved {
            id: id.to_string(),
            by: a.by.clone(),
            at: ferry_records::format_time(a.at),
            release: a.release.clone(),
        });
    }
    // An approval of it that deployed some services and did not finish: its records name it.
    let begun: Vec<&Record> = current
        .values()
        .filter(|r| r.review.as_deref() == Some(id))
        .collect();
    if let Some(first) = begun.first() {
        return Err(ReleaseRunError::ApprovedPartWay {
            id: id.to_string(),
            by: first.release_by.clone(),
            release: first.release.clone().unwrap_or_default(),
            services: begun.iter().map(|r| r.service.clone()).collect(),
        });
    }
    let engine = ferry_stacks::Engine::for_config(dest.config, Default::default());
    let mut changed = Vec::new();
    for (service, reviewed) in &pending.services {
        let stack = dest.ws.stack_name(service, stage);
        let now = match engine.describe(&stack).await.map_err(Box::new)? {
            None => None,
            Some(c) => {
                let body = engine
                    .template(&stack)
                    .await
                    .map_err(Box::new)?
                    .unwrap_or_default();
                Some(ferry_releases::StackState {
                    id: c.id,
                    template_sha256: ferry_records::sha256_hex(body.as_bytes()),
                    parameters_hash: ferry_records::parameters_hash(&c.parameters),
                })
            }
        };
        if now != reviewed.stack {
            changed.push(stack);
        }
    }
    if !changed.is_empty() {
        return Err(ReleaseRunError::StaleReview {
            id: id.to_string(),
            stage: stage.name.clone(),
            stacks: changed,
        });
    }
    let gone: Vec<String> = pending
        .services
        .keys()
        .filter(|s| dest.ws.service(s).is_none())
        .cloned()
        .collect();
    if !gone.is_empty() {
        return Err(ReleaseRunError::Gone { services: gone });
    }
    // Parameters resolved only when approved are checked as written: the checkout's must be the
    // reviewed ones (the others are checked as resolved, when they deploy).
    for (service, reviewed) in &pending.services {
        let (Some(then), Some(s)) = (&reviewed.expressions, dest.ws.service(service)) else {
            continue;
        };
        let now = written_parameters(s);
        if reviewed.resolve_when_approved && *then != now {
            return Err(ReleaseRunError::ParametersEdited {
                id: id.to_string(),
                service: service.clone(),
                names: ferry_releases::review::diff_parameters(then, &now)
                    .into_iter()
                    .map(|c| c.name)
                    .collect(),
            });
        }
    }
    let records: BTreeMap<String, Record> = pending
        .services
        .iter()
        .map(|(s, r)| {
            (
                s.clone(),
                Record {
                    service: s.clone(),
                    template_hash: r.fingerprint.clone(),
                    package_fingerprint: Some(r.fingerprint.clone()),
                    package_key: Some(r.package_key.clone()),
                    package: Some(r.package.clone()),
                    commit: r.commit.clone(),
                    dirty: r.dirty,
                    kind: r.kind.clone(),
                    input_key: r.input_key.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let from = StoredPackages {
        s3: ferry_package::s3_client(dest.config),
        bucket: store.bucket().to_string(),
        stage: stage.name.clone(),
    };
    // A Serverless service whose parameters waited for the approval is compiled now, from this
    // checkout: it must hold the inputs the review was made of.
    let compiled_now: Vec<&Record> = records
        .iter()
        .filter(|(s, _)| pending.services[*s].compile_when_approved)
        .map(|(_, r)| r)
        .collect();
    let refused = match checkout_problems(dest.ws, &compiled_now, "reviewed") {
        Ok(differ) if differ.is_empty() => None,
        Ok(differ) => Some((
            compiled_now.iter().map(|r| r.service.clone()).collect(),
            format!("its inputs differ:\n  {}\n", differ.join("\n  ")),
        )),
        Err(unread) => Some(unread),
    };
    if let Some((services, why)) = refused {
        return Err(ReleaseRunError::ApprovalCheckout {
            id: id.to_string(),
            services,
            why,
        });
    }
    let names: BTreeSet<String> = pending.services.keys().cloned().collect();
    // The reviewed services, and those that never received a dependency's last deploy.
    let seeds: BTreeSet<String> = names
        .iter()
        .cloned()
        .chain(crate::prepare::behind_ready(dest.ws, current))
        .collect();
    let kept = kept_dependents(dest, current, &seeds, &names, Kept::APPROVED).await?;
    let (compile, stored): (BTreeMap<_, _>, BTreeMap<_, _>) = records
        .iter()
        .map(|(k, v)| (k.clone(), v))
        .partition(|(s, _)| pending.services[s].compile_when_approved);
    let mut sources = vec![
        StoredSource {
            from: &from,
            records: stored,
            compile_per_stage: false,
        },
        StoredSource {
            from: &from,
            records: compile,
            compile_per_stage: true,
        },
    ];
    sources.extend(kept.source());
    // Services whose tests are owed (`approve --test`: an approval stopped before its tests,
    // a failure left from before), tested where they stand in the graph, before the dependents
    // the approval deploys, each checked with the package the stage runs. Not a Serverless
    // Framework service: as a candidate it would compile again only to be tested (its tests
    // run after the deploy instead).
    let owed: BTreeMap<String, &Record> = tests_owed
        .iter()
        .filter(|s| !names.contains(*s) && !kept.kept.contains_key(*s))
        .filter_map(|s| current.get(s).map(|r| (s.clone(), r)))
        .filter(|(_, r)| {
            r.package_key.is_some() && r.kind.as_deref() != Some(ServiceKind::Serverless.as_str())
        })
        .collect();
    let own = match owed.is_empty() {
        true => None,
        false => Some(own_packages(dest)?),
    };
    if let Some(own) = &own {
        sources.push(StoredSource {
            from: own,
            records: owed.clone(),
            compile_per_stage: false,
        });
    }
    let prepared = stored_package(dest, &sources).await?;
    let mut candidates = names.clone();
    candidates.extend(kept.kept.keys().cloned());
    candidates.extend(owed.keys().cloned());
    // Parameters that needed outputs of what the review also deploys resolve as in a deploy.
    let parameters = pending
        .services
        .iter()
        .filter(|(_, r)| !r.resolve_when_approved)
        .map(|(s, r)| (s.clone(), r.parameters.clone()))
        .collect();
    Ok(ApprovalPlan {
        selection: Selection {
            why: names
                .iter()
                .map(|s| (s.clone(), format!("approved review {id}")))
                .chain(
                    owed.keys()
                        .map(|s| (s.clone(), crate::acceptance::OWED.to_string())),
                )
                .collect(),
            deploy: names,
            candidates,
        },
        prepared,
        parameters,
        skipped: kept.skipped.clone(),
        // A service compiled now must reproduce what passed where the review went past a gate.
        archives: kept
            .archives()
            .into_iter()
            .chain(
                pending
                    .services
                    .iter()
                    .filter(|(_, r)| r.compile_when_approved && !r.archives.is_empty())
                    .map(|(s, r)| (s.clone(), r.archives.clone())),
            )
            .collect(),
        pending,
    })
}

/// A review in which some services could not be reviewed: approving the rest would deploy a
/// part of the change nobody saw whole, so no pending release is made.
#[derive(Debug, thiserror::Error)]
#[error(
    "the review is incomplete: {} could not be reviewed (see above), so nothing was kept for approval; fix {} and review again",
    .unreviewed.join(", "),
    if .unreviewed.len() == 1 { "it" } else { "them" }
)]
pub struct ReviewIncomplete {
    /// The services that failed, were skipped for a failed dependency, or were cancelled.
    pub unreviewed: Vec<String>,
}

/// A review of a run: what it would change and exactly what it would deploy, kept as a pending
/// release for `approve`. `Ok(None)` when nothing would change; an error when any service
/// failed, was skipped or was cancelled (a partial review is never kept).
pub fn pending_release(
    ws: &Workspace,
    stage: &Stage,
    info: ReleaseInfo,
    report: &crate::DeployReport,
) -> Result<Option<ferry_releases::PendingRelease>, ReviewIncomplete> {
    if !report.succeeded() {
        let unreviewed = report
            .services
            .iter()
            .filter(|s| !s.result.succeeded())
            .map(|s| s.name.clone())
            .collect();
        return Err(ReviewIncomplete { unreviewed });
    }
    if report.reviews.is_empty() {
        return Ok(None);
    }
    Ok(Some(ferry_releases::PendingRelease {
        format: ferry_releases::FORMAT,
        id: info.id,
        project: ws.project.name.clone(),
        stage: stage.name.clone(),
        named_stage: !stage.preview,
        kind: info.kind,
        commit: info.commit,
        created_at: ferry_records::now_secs(),
        by: info.by,
        from: info.from,
        gate_override: info.gate_override,
        services: report
            .reviews
            .iter()
            .map(|(s, (_, r))| (s.clone(), r.clone()))
            .collect(),
        reviews: report.reviews.values().map(|(r, _)| r.clone()).collect(),
        dependents: left_out_dependents(ws, report),
        approved: None,
    }))
}

/// The services of a review's run (each deployed in the stage, checked and found as it runs)
/// that depend, directly or not, on a service the review changes.
fn left_out_dependents(ws: &Workspace, report: &crate::DeployReport) -> Vec<String> {
    let changed = ws
        .graph()
        .with_dependents(report.reviews.keys().map(String::as_str));
    report
        .services
        .iter()
        .filter(|s| !report.reviews.contains_key(&s.name) && changed.contains(&s.name))
        .filter(|s| matches!(s.result, crate::ServiceResult::UpToDate { .. }))
        .map(|s| s.name.clone())
        .collect()
}

/// The services (of `only`, when given) that run in the target stage (`current`) the very
/// package that passed in the source stage (`from`), have acceptance tests, and whose record
/// there is not marked as passed, that this checkout can test for their record
/// ([`crate::vouched`]): the tests a promote of them never finished (killed, or its outcome
/// not recorded).
pub fn promoted_untested(
    ws: &Workspace,
    from: &BTreeMap<String, Record>,
    current: &BTreeMap<String, Record>,
    only: &[String],
) -> BTreeSet<String> {
    let untested: BTreeSet<String> = current
        .iter()
        .filter(|(s, _)| only.is_empty() || only.contains(s))
        .filter(|(s, r)| {
            ws.service(s).is_some_and(|svc| svc.acceptance.is_some())
                && r.tests_passed() != Some(true)
                && from
                    .get(*s)
                    .is_some_and(|f| ferry_releases::same_package(f, r))
        })
        .map(|(s, _)| s.clone())
        .collect();
    crate::vouched(ws, current, untested)
}
