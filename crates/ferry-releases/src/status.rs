//! Where every service stands in every stage: the matrix `status` prints.

use std::collections::BTreeMap;

use ferry_records::Record;
use serde::Serialize;

/// Where a release's (or a service's) acceptance tests stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "services")]
pub enum Tests {
    Passed,
    /// These services' tests failed.
    Failed(Vec<String>),
    /// These services' tests have not run since they deployed.
    NotRun(Vec<String>),
}

/// One service in one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub commit: String,
    pub dirty: bool,
    /// The package id it deployed from, when recorded.
    pub package: Option<String>,
    /// The fingerprint of what it deployed (template, and the archives it names).
    pub template_hash: String,
    /// Seconds since the Unix epoch.
    pub deployed_at: u64,
    /// `passed`, `failed`, `not-run`, or `none` (the service has no acceptance tests).
    pub tests: &'static str,
    pub release: Option<String>,
    /// Whether it runs the same package as in the stage this one promotes from (`promote-from`,
    /// when that stage is shown), else as in the stage before it in the matrix; `None` when
    /// there is none, or that stage has no record of it.
    pub same_as_previous: Option<bool>,
}

/// One service across the stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub service: String,
    /// Stage → its cell, `None` where the service is not deployed.
    pub stages: BTreeMap<String, Option<Cell>>,
}

/// Services × stages, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matrix {
    pub stages: Vec<String>,
    pub services: Vec<Row>,
}

/// One stage's column of the status: its newest release, what made it and (a rollback) the
/// release it restored, or why the stage could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageStatus {
    pub name: String,
    pub id: String,
    pub release: Option<String>,
    pub kind: Option<crate::ReleaseKind>,
    pub restores: Option<String>,
    /// Why it could not be read (masked of secrets by the caller).
    pub error: Option<String>,
    /// Releases the stage's records name that its store lacks: a run still going (a batch
    /// before its finish) or one stopped between its records and its release, which the next
    /// run of the stage writes.
    pub unwritten: Vec<String>,
}

impl StageStatus {
    /// Stage `name` (`id`) whose newest release is `latest`.
    pub fn new(name: &str, id: &str, latest: Option<&crate::Release>) -> StageStatus {
        StageStatus {
            name: name.to_string(),
            id: id.to_string(),
            release: latest.map(|r| r.id.clone()),
            kind: latest.map(|r| r.kind),
            restores: latest.and_then(|r| r.restores.clone()),
            error: None,
            unwritten: Vec::new(),
        }
    }

    /// The releases `records` name that `stored` (the ids of the stage's store) lacks, sorted.
    pub fn with_unwritten<'r>(
        mut self,
        records: impl IntoIterator<Item = &'r ferry_records::Record>,
        stored: &[String],
    ) -> StageStatus {
        let mut ids: Vec<String> = records
            .into_iter()
            .filter_map(|r| r.release.clone())
            // One a record names that is no release id names no key either (recovery passes
            // it over too): nothing to write.
            .filter(|id| crate::valid_id(id) && !stored.contains(id))
            .collect();
        ids.sort();
        ids.dedup();
        self.unwritten = ids;
        self
    }
}

/// `status --format json`, a stable contract: `{"stages": [{"name", "id", "release", "kind",
/// "restores", "error", "unwritten"}], "services": [{"service", "stages": {STAGE: null | {"commit",
/// "dirty", "package", "template_hash", "deployed_at", "tests", "release",
/// "same_as_previous"}}}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusDoc<'a> {
    pub stages: &'a [StageStatus],
    pub services: &'a [Row],
}

fn tests_of(r: &Record, untested: bool) -> &'static str {
    match &r.acceptance {
        Some(a) if a.passed => "passed",
        Some(_) => "failed",
        None if untested => "none",
        None => "not-run",
    }
}

/// Whether two stages run the same package of a service: the same template and archives, or
/// for a service compiled per stage (whose templates differ by stage), the same archives and,
/// when both records keep one, the same input key (a change to its configuration alone, such
/// as its role or events, leaves the archives as they were).
pub fn same_package(a: &Record, b: &Record) -> bool {
    let per_stage = a.kind.as_deref() == Some("serverless");
    let same_inputs = match (&a.input_key, &b.input_key) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    ((per_stage && same_inputs) || a.fingerprint() == b.fingerprint()) && a.artifacts == b.artifacts
}

/// The matrix of `services` (plus any service only a record names) × `stages` (name and records,
/// in promotion order). `promotes_from` gives a stage's `promote-from`: a cell is compared with
/// that stage's, not with an unrelated stage that happens to sit before it.
pub fn matrix(
    stages: &[(String, BTreeMap<String, Record>)],
    services: &[String],
    promotes_from: &BTreeMap<String, String>,
    untested: &dyn Fn(&str) -> bool,
) -> Matrix {
    let mut names: Vec<String> = services.to_vec();
    for (_, records) in stages {
        for name in records.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let rows = names
        .into_iter()
        .map(|service| {
            let mut cells = BTreeMap::new();
            let row: Vec<Option<&Record>> = stages.iter().map(|(_, rs)| rs.get(&service)).collect();
            for (i, (stage, _)) in stages.iter().enumerate() {
                let r = row[i];
                let base = promotes_from
                    .get(stage)
                    .and_then(|from| stages.iter().position(|(s, _)| s == from))
                    .or_else(|| i.checked_sub(1));
                let cell = r.map(|r| Cell {
                    commit: r.commit.clone(),
                    dirty: r.dirty,
                    package: r.package.clone(),
                    template_hash: r.template_hash.clone(),
                    deployed_at: r.deployed_at,
                    tests: tests_of(r, untested(&service)),
                    release: r.release.clone(),
                    same_as_previous: base.and_then(|j| row[j]).map(|p| same_package(p, r)),
                });
                cells.insert(stage.clone(), cell);
            }
            Row {
                service,
                stages: cells,
            }
        })
        .collect();
    Matrix {
        stages: stages.iter().map(|(s, _)| s.clone()).collect(),
        services: rows,
    }
}
