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
            ServiceResult::UpToDate { why, .. } => why.clone(),
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
            // Most errors name their service already: it is said once.
            let text = error.to_string();
            let named = text
                .strip_prefix(s.name.as_str())
                .is_some_and(|rest| rest.starts_with(": "));
            details.push(if named {
                text
            } else {
                format!("{}: {text}", s.name)
            });
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

/// A table cell of Markdown: `|` escaped, one line.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The deploy as Markdown, for a pull-request comment or `$GITHUB_STEP_SUMMARY`: the summary
/// table, each failure, the outputs that are web addresses (a preview's URL), and the tests'
/// outcomes. `release` names the release the run made. The caller masks it.
pub fn markdown(
    stage: &str,
    report: &DeployReport,
    tests: Option<&ferry_acceptance::Report>,
    release: Option<&str>,
) -> String {
    let s = summary(report);
    let verdict = if report.succeeded() && tests.is_none_or(|t| t.succeeded()) {
        "succeeded"
    } else {
        "**failed**"
    };
    let mut md = format!("## Ferry: deploy of `{stage}` {verdict}\n\n");
    if let Some(r) = release {
        md.push_str(&format!("Release `{r}`.\n\n"));
    }
    md.push_str(
        "| service | kind | result | deploy | tests | reason |\n|---|---|---|---|---|---|\n",
    );
    for row in &s.rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        md.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    if !s.details.is_empty() {
        md.push_str("\n```text\n");
        for d in &s.details {
            md.push_str(&format!("{}\n", d.replace("```", "'''")));
        }
        md.push_str("```\n");
    }
    let links: Vec<String> = report
        .outputs
        .services
        .iter()
        .flat_map(|(service, outputs)| {
            outputs
                .iter()
                .filter(|(_, v)| v.starts_with("https://") || v.starts_with("http://"))
                .map(move |(k, v)| format!("- {service} `{k}`: {}", cell(v)))
        })
        .collect();
    if !links.is_empty() {
        md.push_str("\nAddresses:\n\n");
        md.push_str(&links.join("\n"));
        md.push('\n');
    }
    if let Some(t) = tests.filter(|t| !t.outcomes.is_empty()) {
        let failed = t.outcomes.iter().filter(|o| o.status.is_failure()).count();
        md.push_str(&format!(
            "\nAcceptance tests: {} service(s), {} passed, {failed} failed.\n",
            t.outcomes.len(),
            t.outcomes.len() - failed
        ));
        for o in t.outcomes.iter().filter(|o| o.status.is_failure()) {
            md.push_str(&format!(
                "- {}: {}\n",
                o.service,
                cell(&o.status.to_string())
            ));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::{ServiceError, ServiceReport};

    fn failed(name: &str, error: ServiceError) -> ServiceReport {
        ServiceReport {
            name: name.into(),
            kind: None,
            stack: format!("{name}-dev"),
            result: ServiceResult::Failed {
                error: Arc::new(error),
            },
            duration: Duration::from_millis(100),
            tests: None,
            why: String::new(),
        }
    }

    #[test]
    fn a_failure_names_its_service_once() {
        let report = DeployReport {
            services: vec![
                // Its message names the service itself.
                failed(
                    "api",
                    ServiceError::Serverless(ferry_serverless::ServerlessError::NoCli {
                        service: "api".into(),
                        dir: "services/api".into(),
                        wants: ferry_manifest::FrameworkCli::Osls,
                        declared: None,
                    }),
                ),
                // One that does not; and a service whose name begins another's message.
                failed(
                    "ap",
                    ServiceError::Serverless(ferry_serverless::ServerlessError::NoCli {
                        service: "api".into(),
                        dir: "services/api".into(),
                        wants: ferry_manifest::FrameworkCli::Osls,
                        declared: None,
                    }),
                ),
            ],
            tests: Vec::new(),
            outputs: Default::default(),
            output_reads: 0,
            reviews: Default::default(),
        };
        let details = summary(&report).details;
        assert!(
            details[0].starts_with("api: no Serverless Framework CLI found"),
            "{details:?}"
        );
        assert!(
            details[1].starts_with("ap: api: no Serverless Framework CLI found"),
            "{details:?}"
        );
    }
}
