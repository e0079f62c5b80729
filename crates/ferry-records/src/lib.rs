#![doc = include_str!("../README.md")]
//! Deployment records and the stage lock, in SSM Parameter Store.
//!
//! One small JSON record per (stage, service) under the stage's records path
//! (`/ferry/<project>/<stage id>/records/<service>` by default): the stage and stack it belongs
//! to, the commit deployed, whether the tree was dirty, the hashes of the template and of the
//! resolved parameters, the artifacts, the stack's id and last-update time as CloudFormation
//! reported them, the time, and whether acceptance passed. Written only after a stack reached a
//! COMPLETE state; a failed service keeps its old record. All records of a stage are read with a
//! few GetParametersByPath calls, and a record that names another stage is an error, never read
//! as this stage's.
//!
//! The stage lock ([`lock`]) is a parameter created with overwrite off, holding who holds it and
//! a token of the run; only that run renews and releases it.

pub mod lock;

use std::collections::BTreeMap;

use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use lock::{
    Acquired, BATCH_LOCK_TTL, Joined, LOCK_TTL, LockHolder, LockState, RENEW_EVERY, Released,
    RunningNode, Stale,
};

/// Acceptance tests of a deployed service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub passed: bool,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

/// What was deployed for one service of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Record {
    pub service: String,
    /// The stage name the record belongs to (records written before it was kept have none).
    #[serde(default)]
    pub stage: Option<String>,
    /// That stage is a named stage (`[stages.<name>]` of the ferry.toml that deployed it), not
    /// a preview: a checkout whose ferry.toml lacks it (another branch's) must not take it for
    /// one, nor prune it. Written by the store; `false` in records written before it was kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub named_stage: bool,
    pub stack: String,
    /// The commit deployed (the HEAD commit when the tree was dirty).
    pub commit: String,
    /// The working tree had uncommitted changes (anywhere) when it was packaged.
    pub dirty: bool,
    /// With `dirty`: whether those changes were among the service's own inputs (its folder,
    /// `inputs`, the global inputs), so that what it runs is in no commit. `Some(false)`: its
    /// inputs were as committed, and its package is the commit's. `None` in records written
    /// before it was kept (taken as `dirty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_dirty: Option<bool>,
    /// SHA-256 of the template body deployed.
    pub template_hash: String,
    /// SHA-256 of the resolved parameters.
    pub parameters_hash: String,
    /// Artifact locations by name (e.g. Lambda code zips), when packaged. Written with the
    /// names that share a location together (`"F1,F2": key`: a Serverless service's one archive
    /// for every function), read either way.
    #[serde(default, with = "grouped")]
    pub artifacts: BTreeMap<String, String>,
    /// Seconds since the Unix epoch.
    pub deployed_at: u64,
    /// How long the deploy took, for the scheduler's estimates.
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub acceptance: Option<Acceptance>,
    /// The stack's outputs after the deploy (for the outputs file of runs that skip it); left
    /// out when they would push the record past SSM's 4 KB limit. Values that hold a secret are
    /// masked before they get here.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// The stack's id after the deploy: another id means the stack was deleted and made again.
    #[serde(default)]
    pub stack_id: Option<String>,
    /// The stack's last update (else creation) time after the deploy, milliseconds since the
    /// epoch, as CloudFormation reports it: a later one means a change made outside Ferry.
    #[serde(default)]
    pub stack_updated: Option<i64>,
    /// What the service is written in (`cloudformation`, `sam`); records written before it was
    /// kept have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The package id it was deployed from (the commit, or a dirty tree's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The key of its package entry in the stage's artifact bucket: what a promote or rollback
    /// deploys again, byte for byte. `None` when the stage keeps no bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_key: Option<String>,
    /// The release (one run of deploy, promote or rollback) that deployed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// That release's kind (`deploy`, `promote`, `rollback`): a release recovered from the
    /// records of a run stopped before it wrote it takes this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_kind: Option<String>,
    /// Who ran that release (the caller's ARN), and, for an approval, the review it deployed:
    /// what a release recovered from these records names, as its run would have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
    /// That release, a rollback: the release whose packages it deployed again. A rollback
    /// recovered from these records restores it, so that the next rollback goes back from it,
    /// never forward to the release the stopped rollback went back from. `None` for another kind
    /// and in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<String>,
    /// That release, a promote: the stage it promoted from, so that a promote recovered from
    /// these records names it. `None` for another kind and in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<String>,
    /// When a `remove` began emptying the stack's buckets (seconds since the epoch): set before
    /// the first object goes, so that a remove stopped before the stack was gone leaves the
    /// stack planned again (its site and data may be gone), never taken as up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removing: Option<u64>,
    /// The fingerprint of the package alone (template, archives, site files), which is the same
    /// in every stage; `template_hash` also covers what the stage adds (a site's config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_fingerprint: Option<String>,
    /// For a service compiled for each stage from the checkout (the Serverless Framework): the
    /// exact key of the inputs it was compiled from (git tree ids, `ferry_changes::Snapshot`),
    /// when they were all committed. A promote compares the checkout with it, without needing
    /// the commit's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_key: Option<String>,
    /// What its parameters were last resolved against: the [`revision`](Record::revision) of
    /// each dependency's record, when this service last deployed or was checked and found up
    /// to date. A dependency deployed since, by a run that never came to check this service
    /// (the dependency's tests failed, the run was killed or cancelled), has another revision,
    /// so the next deploy checks it. `None` in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<BTreeMap<String, String>>,
    /// The commit of the checkout that deployed it, when not `commit` (a promote or rollback of
    /// an older package): its configuration named `stack`, which a later change of the stack's
    /// name is judged against (a move). `None`: `commit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_at: Option<String>,
    /// For a Serverless Framework service: the hash of the parameters its compile took
    /// ([`parameters_hash`], values read outside git by version), which the framework wrote
    /// into its template. A stored compile deployed again as it is (a rollback) must still
    /// receive them, or its functions name what its dependencies no longer give. `None`: not
    /// such a service, or a record written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled_with: Option<String>,
}

/// The JSON of `record` as it is written: within a standard parameter's 4 KB (`MAX_RECORD`)
/// whole, else without its outputs (read again from the stack when needed), else without its
/// input key too (a promote then compares with its commit instead). A record that still does
/// not fit (many archives: one key each) is written as it fits an advanced parameter's 8 KB
/// (`MAX_ADVANCED_RECORD`): whole, else without outputs, else without the key; beyond that, an
/// error. Records are written with Intelligent-Tiering, so such a one becomes advanced (AWS also
/// makes new parameters advanced once the account's region holds 10,000 standard ones).
fn fitted(record: &Record) -> Result<String, RecordError> {
    let whole = serde_json::to_string(record).expect("a record serialises");
    let mut slim = Record {
        outputs: BTreeMap::new(),
        ..record.clone()
    };
    let no_outputs = serde_json::to_string(&slim).expect("a record serialises");
    slim.input_key = None;
    let slimmest = serde_json::to_string(&slim).expect("a record serialises");
    for limit in [MAX_RECORD, MAX_ADVANCED_RECORD] {
        for value in [&whole, &no_outputs, &slimmest] {
            if value.len() <= limit {
                return Ok(value.clone());
            }
        }
    }
    Err(RecordError::TooLarge {
        service: record.service.clone(),
        artifacts: record
            .artifacts
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
    })
}

/// Whether `record` can be written (see [`RecordStore::write`]): a deploy checks this before it
/// moves a stack, so that a record too large for SSM fails the service before, not after.
pub fn check_fits(record: &Record) -> Result<(), RecordError> {
    fitted(record).map(|_| ())
}

impl Record {
    /// Whether what the service runs is in no commit: deployed from uncommitted changes among
    /// its own inputs ([`Record::inputs_dirty`]; a record from before it was kept counts as
    /// such). One deployed while only other folders were dirty is its commit's package: the
    /// plan does not redeploy it, a protected stage takes it, and its tests are judged as a
    /// clean one's.
    pub fn from_uncommitted_inputs(&self) -> bool {
        self.dirty && self.inputs_dirty != Some(false)
    }

    /// The commit of the checkout that deployed it: [`named_at`](Record::named_at), else
    /// [`commit`](Record::commit). Its configuration named the stack; a checkout that
    /// descends from it knows every service and stack name the deploy knew.
    pub fn checkout(&self) -> &str {
        self.named_at.as_deref().unwrap_or(&self.commit)
    }

    /// Which deploy of the service this record is of: another revision means the stack may
    /// have other outputs (see [`Record::received`]). Made of what every write of the record
    /// keeps (never its outputs, which a large record leaves out): two deploys in one second
    /// still differ by their release, template, parameters or stack.
    pub fn revision(&self) -> String {
        let id = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.deployed_at,
            self.stack_updated.unwrap_or_default(),
            self.stack_id.as_deref().unwrap_or_default(),
            self.release.as_deref().unwrap_or_default(),
            self.template_hash,
            self.parameters_hash,
        );
        sha256_hex(id.as_bytes())[..16].to_string()
    }

    /// Whether its acceptance tests passed (`None`: no outcome recorded).
    pub fn tests_passed(&self) -> Option<bool> {
        self.acceptance.as_ref().map(|a| a.passed)
    }

    /// What identifies the package it deployed, across stages.
    pub fn fingerprint(&self) -> &str {
        self.package_fingerprint
            .as_deref()
            .unwrap_or(&self.template_hash)
    }
}

/// [`Record::artifacts`] as written: names sharing a location joined by `,` (logical ids and
/// `Globals.<section>` hold none), one entry per location. A Serverless service's one archive
/// for 80 functions took 80 entries of its key, and the record no longer fit in SSM. Records
/// written one entry per name read the same.
mod grouped {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        artifacts: &BTreeMap<String, String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, key) in artifacts {
            by_key.entry(key).or_default().push(name);
        }
        let grouped: BTreeMap<String, &str> = by_key
            .into_iter()
            .map(|(key, names)| (names.join(","), key))
            .collect();
        grouped.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        let written = BTreeMap::<String, String>::deserialize(d)?;
        Ok(written
            .into_iter()
            .flat_map(|(names, key)| {
                names
                    .split(',')
                    .map(|n| (n.to_string(), key.clone()))
                    .collect::<Vec<_>>()
            })
            .collect())
    }
}

/// SSM standard parameters hold at most 4 KB.
const MAX_RECORD: usize = 4096;
/// SSM advanced parameters hold at most 8 KB.
const MAX_ADVANCED_RECORD: usize = ferry_credentials::ssm::MAX_VALUE;

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    now_millis() / 1000
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-11-22 02:03:04` from seconds since the epoch (no time zone database needed).
pub fn format_time(secs: u64) -> String {
    let days = secs / 86_400;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02} {h:02}:{m:02}:{s:02}")
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error(
        "stage `{stage}` is locked by {holder}{}",
        match stale {
            Some(why) => format!("; that lock is stale ({why}): take it over with --force-unlock"),
            None => format!("; wait for that run to finish ({}, and --force-unlock takes it over then){}", lock::stale_rule(holder), lock::batch_way_out(holder, stage)),
        }
    )]
    Locked {
        stage: String,
        holder: Box<LockHolder>,
        stale: Option<Stale>,
    },
    #[error(
        "refusing to take over the lock of stage `{stage}` from {holder}: it was taken or last renewed {renewed_secs_ago}s ago, so that run is alive; stop it or wait for it to finish (--force-unlock takes over only a stale lock: {}){}",
        lock::stale_rule(holder),
        lock::batch_way_out(holder, stage)
    )]
    LockedLive {
        stage: String,
        holder: Box<LockHolder>,
        renewed_secs_ago: u64,
    },
    #[error(
        "the lock of stage `{stage}` is no longer this run's ({}); stopping: start nothing new, and check what the other run does",
        match holder {
            Some(h) => format!("held by {h} now"),
            None => "it was deleted".to_string(),
        }
    )]
    LockLost {
        stage: String,
        holder: Option<Box<LockHolder>>,
    },
    #[error(
        "stage `{stage}` is not held by batch `{batch}` but by {holder}: its release is not written and that lock is left in place"
    )]
    OtherBatch {
        stage: String,
        batch: String,
        holder: Box<LockHolder>,
    },
    #[error(
        "stage `{stage}` is not locked by batch `{batch}` (no lock): no node of it took the lock (none ran, or each was refused before it deployed), or the lock was released or taken over; nothing to finish"
    )]
    BatchNotLocked { stage: String, batch: String },
    #[error(
        "batch `{batch}` still has {} at work in stage `{stage}` after {waited_secs}s: {}; run `batch finish` again once {} ended (a node killed stops counting {} after its last renewal); the release is not written and the lock is left in place",
        if nodes.len() == 1 { "a node" } else { "nodes" },
        nodes.join(", "),
        if nodes.len() == 1 { "it has" } else { "they have" },
        lock::human(LOCK_TTL.as_secs())
    )]
    NodesRunning {
        stage: String,
        batch: String,
        /// Each node: its service and process.
        nodes: Vec<String>,
        waited_secs: u64,
    },
    #[error(
        "the deployment record of `{service}` at {name} is not valid JSON ({reason}); delete the parameter to start afresh"
    )]
    Corrupt {
        service: String,
        name: String,
        reason: String,
    },
    #[error(
        "the deployment record of `{service}` at {name} belongs to stage `{owner}`, not `{stage}`: the two stages share one records path or stage id (two preview names such as `feature/login` and `feature-login` give one id); use a preview name of its own, give each named stage its own records-path, or remove stage `{owner}` first"
    )]
    OtherStage {
        service: String,
        name: String,
        owner: String,
        stage: String,
    },
    #[error(
        "the deployment record of `{service}` at {name} says stage `{stage}` is a named stage, which this checkout's ferry.toml does not name (another branch's ferry.toml does?): taken for a preview here, it would be deployed, removed or pruned with a preview's settings; run in a checkout that names it, or name it in this ferry.toml's [stages]"
    )]
    NamedElsewhere {
        service: String,
        name: String,
        stage: String,
    },
    #[error(
        "the deployment record of `{service}` does not fit in an SSM parameter (8 KB) even without its outputs: its {artifacts} archive key(s) take too much; package fewer archives (e.g. one for the service instead of one per function)"
    )]
    TooLarge { service: String, artifacts: usize },
    #[error(transparent)]
    Aws(#[from] ferry_credentials::CredentialsError),
}

/// SHA-256 in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of resolved parameters (order independent).
pub fn parameters_hash(parameters: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in parameters {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The records of every stage whose records path is `<root><stage id>/`, by stage id then
/// service, from one recursive listing of `root` (e.g. `/ferry/shop/`, for the previews a
/// project's `"*"` stage makes). Parameters that are not records (a lock, something else under
/// the root) are passed over; so is a record that is not valid JSON (named in `unreadable`).
pub async fn list_stages(client: &Client, root: &str) -> Result<StageRecords, RecordError> {
    let root = format!("{}/", root.trim_end_matches('/'));
    let mut out = StageRecords::default();
    let mut pages = client
        .get_parameters_by_path()
        .path(&root)
        .recursive(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            RecordError::Aws(ferry_credentials::CredentialsError::from_sdk(
                "(every stage)",
                "GetParametersByPath",
                &e,
            ))
        })?;
        for p in page.parameters() {
            let name = p.name().unwrap_or_default();
            let Some(rest) = name.strip_prefix(&root) else {
                continue;
            };
            let mut parts = rest.split('/');
            let (Some(id), Some("records"), Some(service), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            match serde_json::from_str::<Record>(p.value().unwrap_or_default()) {
                Ok(r) => {
                    out.stages
                        .entry(id.to_string())
                        .or_default()
                        .insert(service.to_string(), r);
                }
                Err(_) => out.unreadable.push(name.to_string()),
            }
        }
    }
    Ok(out)
}

/// What [`list_stages`] found.
#[derive(Debug, Clone, Default)]
pub struct StageRecords {
    /// Stage id → service → record.
    pub stages: BTreeMap<String, BTreeMap<String, Record>>,
    /// Parameters in a record's place that are not records.
    pub unreadable: Vec<String>,
}

/// Whether a service works in its stage, as far as its last run showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Deployed, and its acceptance tests passed (or it has none).
    Passing,
    /// Its deploy or its acceptance tests failed.
    Failing,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Passing => "passing",
            Health::Failing => "failing",
        })
    }
}

/// Records and lock of one stage.
#[derive(Debug, Clone)]
pub struct RecordStore {
    client: Client,
    /// The stage name.
    stage: String,
    /// Whether the stage is named in this checkout's ferry.toml (else a preview); `None`: not
    /// said ([`RecordStore::named`]), and not judged.
    named: Option<bool>,
    /// Ends with `/`.
    path: String,
    /// The token of the lock this store (and its clones) took or joined, until released: what
    /// [`RecordStore::check_held`] compares the stored lock with.
    held: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// The batch node this store marked as at work ([`RecordStore::mark_node`]): each renewal
    /// of the lock renews its mark too.
    node: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl RecordStore {
    /// The records of `stage` (its name) under `path` (see
    /// `ferry_manifest::Workspace::records_path`).
    pub fn new(client: Client, stage: &str, path: &str) -> Self {
        RecordStore {
            client,
            stage: stage.to_string(),
            named: None,
            path: format!("{}/", path.trim_end_matches('/')),
            held: Default::default(),
            node: Default::default(),
        }
    }

    /// The store of a named stage (`[stages.<name>]`): its records say so, and a store of a
    /// preview refuses them ([`RecordError::NamedElsewhere`]).
    pub fn named(mut self, named: bool) -> Self {
        self.named = Some(named);
        self
    }

    /// The SSM path the records and the lock live under.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn records_dir(&self) -> String {
        format!("{}records", self.path)
    }

    /// The SSM parameter that holds `service`'s record.
    pub fn record_name(&self, service: &str) -> String {
        format!("{}/{service}", self.records_dir())
    }

    fn aws<E>(&self, op: &'static str, e: &aws_sdk_ssm::error::SdkError<E>) -> RecordError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        RecordError::Aws(ferry_credentials::CredentialsError::from_sdk(
            &self.stage,
            op,
            e,
        ))
    }

    /// Every record of the stage, by service. A record that names another stage is an error.
    pub async fn read_all(&self) -> Result<BTreeMap<String, Record>, RecordError> {
        let mut out = BTreeMap::new();
        for (name, value) in self.values_under(&self.records_dir()).await? {
            let service = name.rsplit('/').next().unwrap_or_default().to_string();
            let record: Record =
                serde_json::from_str(&value).map_err(|e| RecordError::Corrupt {
                    service: service.clone(),
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            if let Some(owner) = record.stage.as_ref().filter(|o| **o != self.stage) {
                return Err(RecordError::OtherStage {
                    service,
                    name,
                    owner: owner.clone(),
                    stage: self.stage.clone(),
                });
            }
            if record.named_stage && self.named == Some(false) {
                return Err(RecordError::NamedElsewhere {
                    service,
                    name,
                    stage: self.stage.clone(),
                });
            }
            out.insert(service, record);
        }
        Ok(out)
    }

    /// The parameters directly under `path`, as (name, value), every page.
    async fn values_under(&self, path: &str) -> Result<Vec<(String, String)>, RecordError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(path)
            .recursive(false)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.aws("GetParametersByPath", &e))?;
            out.extend(page.parameters().iter().map(|p| {
                (
                    p.name().unwrap_or_default().to_string(),
                    p.value().unwrap_or_default().to_string(),
                )
            }));
        }
        Ok(out)
    }

    /// Writes (replaces) a service's record, stamped with this stage's name.
    pub async fn write(&self, record: &Record) -> Result<(), RecordError> {
        let record = Record {
            stage: Some(self.stage.clone()),
            named_stage: self.named.unwrap_or(record.named_stage),
            ..record.clone()
        };
        let value = fitted(&record)?;
        // Intelligent-Tiering: a standard parameter while the record fits 4 KB, advanced
        // (billed per parameter per month) only when it must be; a parameter once advanced
        // stays so (AWS refuses to write one back as standard, which the default tier would ask).
        self.client
            .put_parameter()
            .name(self.record_name(&record.service))
            .value(value)
            .r#type(ParameterType::String)
            .tier(ParameterTier::IntelligentTiering)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| self.aws("PutParameter", &e))?;
        Ok(())
    }

    /// Each service's last known health (one parameter per service under `<path>health/`, so
    /// that batch nodes deploying siblings at once never overwrite each other's), for
    /// announcing changes of state; a value that is not a health is passed over.
    pub async fn health(&self) -> Result<BTreeMap<String, Health>, RecordError> {
        Ok(self
            .values_under(&format!("{}health", self.path))
            .await?
            .into_iter()
            .filter_map(|(name, value)| {
                let service = name.rsplit('/').next().unwrap_or_default().to_string();
                serde_json::from_str(&value).ok().map(|h| (service, h))
            })
            .collect())
    }

    /// Keeps `service`'s health.
    pub async fn write_health(&self, service: &str, health: Health) -> Result<(), RecordError> {
        let value = serde_json::to_string(&health).expect("health serialises");
        self.put_value(&format!("{}health/{service}", self.path), &value)
            .await
    }

    /// Deletes a service's record, its kept health and any mark of its batch node left by a node
    /// that was killed (absent is fine).
    pub async fn delete(&self, service: &str) -> Result<(), RecordError> {
        // The record last: a failure before it leaves the record, so the next `remove` (which
        // finds the stack gone) comes back for the rest.
        self.delete_parameter(&self.node_name(service)).await?;
        self.delete_parameter(&format!("{}health/{service}", self.path))
            .await?;
        self.delete_parameter(&self.record_name(service)).await
    }

    /// The value of a parameter, `None` when absent.
    async fn get_value(&self, name: &str) -> Result<Option<String>, RecordError> {
        match self.client.get_parameter().name(name).send().await {
            Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(String::from)),
            Err(e) if e.code() == Some("ParameterNotFound") => Ok(None),
            Err(e) => Err(self.aws("GetParameter", &e)),
        }
    }

    /// Creates a parameter unless it exists (atomically); `false` when it exists.
    async fn create(&self, name: &str, value: &str) -> Result<bool, RecordError> {
        match self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(false)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ParameterAlreadyExists") => Ok(false),
            Err(e) => Err(self.aws("PutParameter", &e)),
        }
    }

    async fn put_value(&self, name: &str, value: &str) -> Result<(), RecordError> {
        self.client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| self.aws("PutParameter", &e))?;
        Ok(())
    }

    /// Deletes a parameter (absent is fine).
    async fn delete_parameter(&self, name: &str) -> Result<(), RecordError> {
        match self.client.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ParameterNotFound") => Ok(()),
            Err(e) => Err(self.aws("DeleteParameter", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Serverless service packages one archive for all its functions: 120 functions named
    /// it 120 times, and the record did not fit in SSM. Names sharing a location are written
    /// together now, and read back one by one; a record written one entry per name reads the
    /// same.
    #[test]
    fn names_sharing_an_archive_are_written_together() {
        let key = format!("shop/api/{}.zip", "a".repeat(64));
        let shared = Record {
            service: "api".into(),
            artifacts: (0..120)
                .map(|i| (format!("Fn{i}LambdaFunction"), key.clone()))
                .chain([("Other".to_string(), "shop/api/b.zip".to_string())])
                .collect(),
            ..Record::default()
        };
        let text = fitted(&shared).unwrap();
        assert!(text.len() <= MAX_RECORD, "{}", text.len());
        assert_eq!(text.matches(&key).count(), 1, "{text}");
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back, shared);
        let old = r#"{"service":"api","stack":"s","commit":"c","dirty":false,"template_hash":"t","parameters_hash":"p","artifacts":{"A":"k1","B":"k1"},"deployed_at":1}"#;
        let read: Record = serde_json::from_str(old).unwrap();
        assert_eq!(
            read.artifacts,
            BTreeMap::from([("A".into(), "k1".into()), ("B".into(), "k1".into())])
        );
    }

    #[test]
    fn a_record_too_large_for_ssm_drops_its_outputs_then_its_input_key_then_goes_advanced() {
        let small = Record {
            service: "notifier".into(),
            input_key: Some("services/notifier:1".into()),
            outputs: BTreeMap::from([("Url".to_string(), "u".to_string())]),
            ..Record::default()
        };
        assert_eq!(
            fitted(&small).unwrap(),
            serde_json::to_string(&small).unwrap()
        );
        let big_outputs = Record {
            outputs: (0..100)
                .map(|i| (format!("Output{i}"), "v".repeat(40)))
                .collect(),
            ..small.clone()
        };
        let v: Record = serde_json::from_str(&fitted(&big_outputs).unwrap()).unwrap();
        assert!(v.outputs.is_empty());
        assert_eq!(v.input_key, small.input_key);
        // Many artifacts and a long key: the key goes too, and the record fits.
        let big_key = Record {
            artifacts: (0..30)
                .map(|i| (format!("Fn{i}"), format!("{i:064}")))
                .collect(),
            input_key: Some(
                (0..40)
                    .map(|i| format!("shared/lib{i}:{}", "0".repeat(40)))
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            ..big_outputs.clone()
        };
        let text = fitted(&big_key).unwrap();
        assert!(text.len() <= MAX_RECORD, "{}", text.len());
        let v: Record = serde_json::from_str(&text).unwrap();
        assert_eq!((v.input_key, v.artifacts.len()), (None, 30));
        // Forty archives with their real keys (one per function): no standard parameter holds
        // them, an advanced one holds the whole record; with many outputs too, it keeps its
        // input key and drops the outputs; two hundred archives fit nowhere.
        let archives = |n: usize| -> BTreeMap<String, String> {
            (0..n)
                .map(|i| {
                    (
                        format!("Function{i}LambdaFunction"),
                        format!("shop/notifier/{i:064}.zip"),
                    )
                })
                .collect()
        };
        let many = Record {
            artifacts: archives(40),
            ..small.clone()
        };
        let text = fitted(&many).unwrap();
        assert!(text.len() > MAX_RECORD && text.len() <= MAX_ADVANCED_RECORD);
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), many);
        let many_outputs = Record {
            artifacts: archives(40),
            ..big_outputs
        };
        let v: Record = serde_json::from_str(&fitted(&many_outputs).unwrap()).unwrap();
        assert!(v.outputs.is_empty());
        assert_eq!(v.input_key, small.input_key);
        let too_many = Record {
            artifacts: archives(200),
            ..small
        };
        let err = fitted(&too_many).unwrap_err();
        assert!(
            err.to_string()
                .contains("`notifier` does not fit in an SSM parameter (8 KB) even without its outputs: its 200 archive key(s)"),
            "{err}"
        );
    }

    #[test]
    fn the_release_a_rollback_restores_is_kept_and_older_records_read_without_it() {
        let stamped = Record {
            service: "api".into(),
            release: Some("20261202-130512.123-3e18202".into()),
            release_kind: Some("rollback".into()),
            restores: Some("20261201-090000.000-aaaaaaa".into()),
            ..Record::default()
        };
        let text = serde_json::to_string(&stamped).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), stamped);
        let older = text.replace(",\"restores\":\"20261201-090000.000-aaaaaaa\"", "");
        assert!(!older.contains("restores"), "{older}");
        assert_eq!(
            serde_json::from_str::<Record>(&older).unwrap().restores,
            None
        );
        let plain = serde_json::to_string(&Record::default()).unwrap();
        assert!(!plain.contains("restores"), "{plain}");
    }

    #[test]
    fn hashes_and_times() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let a = BTreeMap::from([
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "2".to_string()),
        ]);
        let b = BTreeMap::from([("A".to_string(), "12".to_string())]);
        assert_ne!(parameters_hash(&a), parameters_hash(&b));
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_312_984), "2026-11-22 02:03:04");
    }
}
