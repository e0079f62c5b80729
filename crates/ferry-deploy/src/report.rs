//! The summary of a deploy, as rows for a table (the caller renders and masks them) and the
//! failing resources below it.

use crate::{DeployReport, ServiceResult};

/// A deploy's summary: one row per service, and the details of each failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// [`Summary::HEADER`] columns: service, kind, result, deploy time, test time, reason.
    pub rows: Vec<[String; 6]>,
    /// Each failure's error, then its failing stack events (resource, type, status, reason).
    pub details: Vec<String>,
}

impl Summary {
    pub const HEADER: [&'static str; 6] =
        ["SERVICE", "KIND", "RESULT", "DEPLOY", "TESTS", "REASON"];
}

fn seconds(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The summary of `report`. Deploy time and test time are separate columns: a service whose
/// stack took 0.5 s and whose tests took 4 minutes shows both.
pub fn summary(report: &DeployReport) -> Summary {
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for s in &report.services {
        let why = match &s.result {
            ServiceResult::UpToDate { why } => why.clone(),
            _ => s.why.clone(),
        };
        let deploy = if s.duration.is_zero() {
            "-".to_string()
        } else {
            seconds(s.duration)
        };
        let tests = s.tests.map(seconds).unwrap_or_else(|| "-".to_string());
        let kind = s.kind.map_or_else(|| "-".to_string(), |k| k.to_string());
        rows.push([
            s.name.clone(),
            kind,
            s.result.to_string(),
            deploy,
            tests,
            why,
        ]);
        if let ServiceResult::Failed { error } = &s.result {
            details.push(format!("{}: {error}", s.name));
            for f in error.failures() {
                details.push(format!(
                    "  {} ({}): {} {}",
                    f.logical_id,
                    f.resource_type,
                    f.status,
                    f.reason.as_deref().unwrap_or("")
                ));
            }
        }
    }
    Summary { rows, details }
}
