//! Which services a test run covers, and what a result does to their records.

use std::collections::{BTreeMap, BTreeSet};

use ferry_manifest::Workspace;
use ferry_records::{Acceptance, Record};

use crate::{Status, TestOutcome};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("unknown service `{service}`{hint}")]
    UnknownService { service: String, hint: String },
    #[error(
        "service `{service}` has no deployment record in stage `{stage}`: deploy it first (`deploy {stage} --service {service}`)"
    )]
    NotDeployed { service: String, stage: String },
}

/// What to test:
/// - `services` given: those (each must have a record);
/// - `all`: every service with a record;
/// - otherwise: the services deployed at `commit` whose record is not marked as passed.
///
/// Services without `[acceptance]` are included (they are reported as having no tests).
pub fn select(
    ws: &Workspace,
    stage: &str,
    records: &BTreeMap<String, Record>,
    commit: &str,
    services: &[String],
    all: bool,
) -> Result<BTreeSet<String>, SelectError> {
    if !services.is_empty() {
        let mut out = BTreeSet::new();
        for s in services {
            if ws.service(s).is_none() {
                return Err(SelectError::UnknownService {
                    service: s.clone(),
                    hint: ferry_manifest::did_you_mean(
                        s,
                        ws.services.iter().map(|x| x.name.as_str()),
                    ),
                });
            }
            if !records.contains_key(s) {
                return Err(SelectError::NotDeployed {
                    service: s.clone(),
                    stage: stage.to_string(),
                });
            }
            out.insert(s.clone());
        }
        return Ok(out);
    }
    Ok(records
        .iter()
        .filter(|(name, _)| ws.service(name).is_some())
        .filter(|(_, r)| all || (r.commit == commit && r.tests_passed() != Some(true)))
        .map(|(name, _)| name.clone())
        .collect())
}

/// The record after a test outcome: marked passed or failed; `None` when the outcome says
/// nothing about the deployed service (no tests, skipped, cancelled).
pub fn mark(record: &Record, outcome: &TestOutcome, now: u64) -> Option<Record> {
    let passed = match outcome.status {
        Status::Passed => true,
        Status::Failed { .. } | Status::TimedOut { .. } => false,
        Status::Skipped { .. } | Status::NoTests | Status::Cancelled => return None,
    };
    let mut r = record.clone();
    r.acceptance = Some(Acceptance { passed, at: now });
    Some(r)
}
