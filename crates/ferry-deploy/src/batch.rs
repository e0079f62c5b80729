//! One deploy spread over many CI machines: each machine (a node of a CodeBuild batch
//! build-graph, a job of a GitHub Actions matrix) deploys exactly one service.
//!
//! A node plans its service together with its dependencies, from the stage's records as every
//! deploy does, but deploys only its own service: a dependency that still has something to
//! deploy (its node has not run, or failed) stops the node before anything happens, since its
//! outputs would be the old ones. Its own service deploys when its files changed since its
//! record, or, like a dependent on one machine, when what it receives (its resolved parameters)
//! differs from its record — so a node that runs again after success finds it up to date, and a
//! rerun of a batch redoes only what is missing. The dependencies' outputs are read from their
//! stacks.

use std::collections::{BTreeMap, BTreeSet};

use ferry_manifest::Workspace;
use ferry_plan::{Action, Plan};
use ferry_records::Record;

use crate::Selection;
use crate::run::plan_reason;

/// Why a node may not deploy its service.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    #[error("there is no service `{service}` in this workspace (the node's SERVICE)")]
    UnknownService { service: String },
    #[error(
        "`{service}` was not deployed: {} still {} something to deploy in stage `{stage}` ({}), so {} not the ones `{service}` must receive. {} must succeed first: in a batch build, run the nodes in the order of the build-graph (a node's `depend-on`); on one machine, `deploy {stage} --service {service}` deploys {}",
        names(pending.keys()),
        if pending.len() == 1 { "has" } else { "have" },
        pending.iter().map(|(d, why)| format!("{d}: {why}")).collect::<Vec<_>>().join("; "),
        if pending.len() == 1 { "its outputs are" } else { "their outputs are" },
        if pending.len() == 1 { "Its node" } else { "Their nodes" },
        if pending.len() == 1 { "both" } else { "them all" },
    )]
    DependencyPending {
        service: String,
        stage: String,
        /// Dependency → why the plan would deploy it.
        pending: BTreeMap<String, String>,
    },
    #[error(
        "`{service}` was not deployed: the acceptance tests of {} have not passed in stage `{stage}` at {} record (the node failed them, or ran without --test), and `{service}` would deploy on top of what failed, as one machine's `deploy {stage} --test` never does (it skips `{service}`). Make them pass first (its node again, `batch node {stage} <service> --batch <id> --test`), then this node",
        names(untested),
        if untested.len() == 1 { "its" } else { "their" },
    )]
    DependencyUntested {
        service: String,
        stage: String,
        untested: BTreeSet<String>,
    },
}

/// `its dependency `a`` or `its dependencies `a`, `b` and `c``.
fn names<'a>(dependencies: impl IntoIterator<Item = &'a String>) -> String {
    let quoted: Vec<String> = dependencies.into_iter().map(|d| format!("`{d}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => format!("its dependency {last}"),
        Some((last, rest)) => format!("its dependencies {} and {last}", rest.join(", ")),
        None => "its dependencies".to_string(),
    }
}

/// What a node deploys: `service` alone, from a plan of it and its dependencies. Checked
/// against its record unless the plan deploys it; refused while a dependency has anything to
/// deploy: files of its own (the plan deploys it), or the last deploy of one of its own
/// dependencies not yet received (by `records`, the stage's: its files are unchanged, but what
/// it passes on is old, as when its node has not run again or failed), or, among `owed` (the
/// services whose acceptance tests a `--test` run owes, [`crate::tests_owed`]), tests that have
/// not passed (its node failed them): as on one machine, where its dependents are skipped.
pub fn node_selection(
    ws: &Workspace,
    plan: &Plan,
    records: &BTreeMap<String, Record>,
    owed: &BTreeSet<String>,
    service: &str,
) -> Result<Selection, NodeError> {
    if ws.service(service).is_none() {
        return Err(NodeError::UnknownService {
            service: service.to_string(),
        });
    }
    let dependencies: BTreeSet<String> = ws
        .graph()
        .with_dependencies([service])
        .into_iter()
        .filter(|s| s != service)
        .collect();
    let mut pending: BTreeMap<String, String> = plan
        .services
        .iter()
        .filter(|s| s.action == Action::Deploy && dependencies.contains(&s.name))
        .map(|s| (s.name.clone(), plan_reason(plan, &s.name)))
        .collect();
    for d in &dependencies {
        let behind = crate::prepare::not_received(ws, records, d);
        if !pending.contains_key(d) && !behind.is_empty() {
            pending.insert(
                d.clone(),
                format!(
                    "it has not received the last deploy of {}",
                    behind.join(", ")
                ),
            );
        }
    }
    if !pending.is_empty() {
        return Err(NodeError::DependencyPending {
            service: service.to_string(),
            stage: plan.stage.clone(),
            pending,
        });
    }
    let untested: BTreeSet<String> = dependencies.intersection(owed).cloned().collect();
    if !untested.is_empty() {
        return Err(NodeError::DependencyUntested {
            service: service.to_string(),
            stage: plan.stage.clone(),
            untested,
        });
    }
    // Planned only as not-received: checked against its record, as on one machine.
    let deploys = plan
        .service(service)
        .is_some_and(|s| s.action == Action::Deploy)
        && !crate::run::only_not_received(plan, service);
    let why = Some(plan_reason(plan, service))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "a batch node: checked against its record".into());
    Ok(Selection {
        deploy: if deploys {
            BTreeSet::from([service.to_string()])
        } else {
            BTreeSet::new()
        },
        candidates: BTreeSet::from([service.to_string()]),
        why: BTreeMap::from([(service.to_string(), why)]),
    })
}
