//! Deployment records and the stage lock, in SSM Parameter Store.
//!
//! One small JSON record per (stage, service) under the stage's records path
//! (`/ferry/<project>/<stage id>/records/<service>` by default): the commit deployed, whether the
//! tree was dirty, the hashes of the template and of the resolved parameters, the artifacts, the
//! time, and whether acceptance passed. Written only after a stack reached a COMPLETE state; a
//! failed service keeps its old record. All records of a stage are read with a few
//! GetParametersByPath calls.
//!
//! The lock is a parameter created with overwrite off (SSM refuses a second one atomically),
//! holding who, where and since when.

use std::collections::BTreeMap;

use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ssm::types::ParameterType;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Acceptance tests of a deployed service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub passed: bool,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

/// What was deployed for one service of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub service: String,
    pub stack: String,
    /// The commit deployed (the HEAD commit when the tree was dirty).
    pub commit: String,
    pub dirty: bool,
    /// SHA-256 of the template body deployed.
    pub template_hash: String,
    /// SHA-256 of the resolved parameters.
    pub parameters_hash: String,
    /// Artifact locations by name (e.g. Lambda code zips), when packaged.
    #[serde(default)]
    pub artifacts: BTreeMap<String, String>,
    /// Seconds since the Unix epoch.
    pub deployed_at: u64,
    /// How long the deploy took, for the scheduler's estimates.
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub acceptance: Option<Acceptance>,
    /// The stack's outputs after the deploy (for the outputs file of runs that skip it); left
    /// out when they would push the record past SSM's 4 KB limit.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

/// SSM standard parameters hold at most 4 KB.
const MAX_RECORD: usize = 4096;

/// Who holds a stage's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub who: String,
    pub host: String,
    /// E.g. a CodeBuild build id.
    pub build: Option<String>,
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub since: u64,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {} (pid {}", self.who, self.host, self.pid)?;
        if let Some(b) = &self.build {
            write!(f, ", build {b}")?;
        }
        write!(f, ") since {} UTC", format_time(self.since))
    }
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
        "stage `{stage}` is locked by {holder}; wait for that deploy to finish, or take over a stale lock with --force-unlock"
    )]
    Locked { stage: String, holder: LockHolder },
    #[error(
        "the deployment record of `{service}` at {name} is not valid JSON ({reason}); delete the parameter to start afresh"
    )]
    Corrupt {
        service: String,
        name: String,
        reason: String,
    },
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

/// Records and lock of one stage.
#[derive(Debug, Clone)]
pub struct RecordStore {
    client: Client,
    stage: String,
    /// Ends with `/`.
    path: String,
}

impl RecordStore {
    /// `records_path` as configured, or `/ferry/<project>/<stage id>/`.
    pub fn new(
        client: Client,
        project: &str,
        stage: &str,
        stage_id: &str,
        records_path: Option<&str>,
    ) -> Self {
        let path = match records_path {
            Some(p) => format!("{}/", p.trim_end_matches('/')),
            None => format!("/ferry/{project}/{stage_id}/"),
        };
        RecordStore {
            client,
            stage: stage.to_string(),
            path,
        }
    }

    fn records_dir(&self) -> String {
        format!("{}records", self.path)
    }

    fn record_name(&self, service: &str) -> String {
        format!("{}/{service}", self.records_dir())
    }

    fn lock_name(&self) -> String {
        format!("{}lock", self.path)
    }

    fn aws<E: ProvideErrorMetadata + std::error::Error>(
        &self,
        op: &'static str,
        e: &E,
    ) -> RecordError {
        RecordError::Aws(ferry_credentials::CredentialsError::from_sdk(
            &self.stage,
            op,
            e,
        ))
    }

    /// Every record of the stage, by service.
    pub async fn read_all(&self) -> Result<BTreeMap<String, Record>, RecordError> {
        let mut out = BTreeMap::new();
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(self.records_dir())
            .recursive(false)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.aws("GetParametersByPath", &e))?;
            for p in page.parameters() {
                let name = p.name().unwrap_or_default().to_string();
                let service = name.rsplit('/').next().unwrap_or_default().to_string();
                let record: Record =
                    serde_json::from_str(p.value().unwrap_or_default()).map_err(|e| {
                        RecordError::Corrupt {
                            service: service.clone(),
                            name: name.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                out.insert(service, record);
            }
        }
        Ok(out)
    }

    /// Writes (replaces) a service's record.
    pub async fn write(&self, record: &Record) -> Result<(), RecordError> {
        let mut value = serde_json::to_string(record).expect("a record serialises");
        if value.len() > MAX_RECORD {
            let slim = Record {
                outputs: BTreeMap::new(),
                ..record.clone()
            };
            value = serde_json::to_string(&slim).expect("a record serialises");
        }
        self.client
            .put_parameter()
            .name(self.record_name(&record.service))
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| self.aws("PutParameter", &e))?;
        Ok(())
    }

    /// Deletes a service's record (absent is fine).
    pub async fn delete(&self, service: &str) -> Result<(), RecordError> {
        match self
            .client
            .delete_parameter()
            .name(self.record_name(service))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ParameterNotFound") => Ok(()),
            Err(e) => Err(self.aws("DeleteParameter", &e)),
        }
    }

    /// Takes the stage's lock, or says who holds it. `force` replaces a stale lock.
    pub async fn lock(&self, holder: &LockHolder, force: bool) -> Result<(), RecordError> {
        if force {
            self.unlock().await?;
        }
        let value = serde_json::to_string(holder).expect("a holder serialises");
        let put = self
            .client
            .put_parameter()
            .name(self.lock_name())
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(false)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ParameterAlreadyExists") => {
                let current = self
                    .client
                    .get_parameter()
                    .name(self.lock_name())
                    .send()
                    .await
                    .map_err(|e| self.aws("GetParameter", &e))?;
                let text = current
                    .parameter()
                    .and_then(|p| p.value())
                    .unwrap_or_default();
                let holder = serde_json::from_str(text).unwrap_or(LockHolder {
                    who: format!("an unreadable lock ({})", DisplayErrorContext(&e)),
                    host: "?".into(),
                    build: None,
                    pid: 0,
                    since: 0,
                });
                Err(RecordError::Locked {
                    stage: self.stage.clone(),
                    holder,
                })
            }
            Err(e) => Err(self.aws("PutParameter", &e)),
        }
    }

    /// Releases the lock (absent is fine).
    pub async fn unlock(&self) -> Result<(), RecordError> {
        match self
            .client
            .delete_parameter()
            .name(self.lock_name())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ParameterNotFound") => Ok(()),
            Err(e) => Err(self.aws("DeleteParameter", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
