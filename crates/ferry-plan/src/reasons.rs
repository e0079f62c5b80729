//! Reason assignment: why each service deploys or skips. The candidates come from the selection;
//! each gets its reasons from `--all` (forced), from its base (not deployed, changed, global
//! input, unchanged, base unavailable), then from its stack, then from its dependencies
//! (`--with-dependents`). A service deploys when any of its reasons says so.

use std::collections::{BTreeMap, BTreeSet};

use ferry_changes::{Affected, BaseUnavailable};
use ferry_graph::DepGraph;

use crate::{PlanError, Reason};

/// Each service's reasons, by name.
pub(crate) type Reasons = BTreeMap<String, Vec<Reason>>;

/// The selection: every service when `services` is empty, else the named services and their
/// transitive dependencies. An unknown name is an error.
pub(crate) fn candidates(
    graph: &DepGraph,
    services: &[String],
) -> Result<BTreeSet<String>, PlanError> {
    let known: Vec<&str> = graph.nodes().collect();
    for s in services {
        if !graph.contains(s) {
            let hint = ferry_manifest::did_you_mean(s, known.iter().copied());
            return Err(PlanError::UnknownService {
                name: s.clone(),
                hint,
                known: known.join(", "),
            });
        }
    }
    Ok(if services.is_empty() {
        known.iter().map(|s| s.to_string()).collect()
    } else {
        graph.with_dependencies(services.iter().map(String::as_str))
    })
}

/// Every candidate deploys, forced by `by` (`--all`, `FORCE_DEPLOY_ALL=true`): no base is
/// compared.
pub(crate) fn forced(candidates: &BTreeSet<String>, by: &str, reasons: &mut Reasons) {
    for c in candidates {
        add(reasons, c, Reason::Forced { by: by.to_string() });
    }
}

/// Services with no base to compare with deploy: they were never deployed.
pub(crate) fn not_deployed(services: &[&str], reasons: &mut Reasons) {
    for s in services {
        add(reasons, s, Reason::NotDeployed);
    }
}

/// The services of a base that cannot be used count as changed.
pub(crate) fn base_unavailable(
    members: &[&str],
    base: &str,
    cause: &BaseUnavailable,
    message: &str,
    reasons: &mut Reasons,
) {
    for m in members {
        let reason = Reason::BaseUnavailable {
            base: Some(base.to_string()),
            cause: cause.clone(),
            message: message.to_string(),
        };
        add(reasons, m, reason);
    }
}

/// Gives `service` one more reason. A service's first reason is usually its only one: its list
/// gets room for exactly one (a vector grown by `push` keeps room for four, and a plan keeps a
/// list for every service).
fn add(reasons: &mut Reasons, service: &str, reason: Reason) {
    match reasons.get_mut(service) {
        Some(r) => r.push(reason),
        None => {
            reasons.insert(service.to_string(), vec![reason]);
        }
    }
}

/// The services of one base, from what its diff affected: their own changed paths, the changed
/// global inputs, the `extra` reasons lock files give them, or else unchanged since `since`. `members` are sorted; a service has one base,
/// so none of them has reasons yet.
pub(crate) fn from_changes(
    members: &[&str],
    affected: &Affected,
    extra: &BTreeMap<String, Vec<Reason>>,
    since: &str,
    reasons: &mut Reasons,
) {
    let global: Vec<String> = affected.global.iter().cloned().collect();
    // Built sorted and appended in one merge: a plan gives every service of the repository its
    // reasons here, and inserting them one by one costs a search of the map each.
    let mut fresh: Reasons = members
        .iter()
        .map(|m| {
            let own = affected.services.get(*m);
            // Room for its path reasons (a vector grown by `push` keeps room for four; a lock
            // file's reasons, rare, grow it).
            let mut r = Vec::with_capacity(
                (usize::from(own.is_some()) + usize::from(!global.is_empty())).max(1),
            );
            if let Some(paths) = own {
                r.push(Reason::Changed {
                    paths: paths.iter().cloned().collect(),
                });
            }
            if !global.is_empty() {
                r.push(Reason::GlobalInput {
                    paths: global.clone(),
                });
            }
            for more in extra.get(*m).into_iter().flatten() {
                // A lock file counted as a whole joins the other global inputs' reason.
                match (
                    more,
                    r.iter_mut()
                        .find(|x| matches!(x, Reason::GlobalInput { .. })),
                ) {
                    (Reason::GlobalInput { paths: add }, Some(Reason::GlobalInput { paths })) => {
                        paths.extend(add.iter().cloned());
                        paths.sort();
                    }
                    _ => r.push(more.clone()),
                }
            }
            if r.is_empty() {
                r.push(Reason::Unchanged {
                    since: since.to_string(),
                });
            }
            (m.to_string(), r)
        })
        .collect();
    debug_assert!(fresh.keys().all(|m| !reasons.contains_key(m)));
    // A merge rebuilds the whole map: worth it for a group at least as large as what is there
    // (the one group of most plans), not for each of many small ones (a stage whose services
    // were last deployed at many commits), which are inserted instead.
    if fresh.len() >= reasons.len() {
        reasons.append(&mut fresh);
    } else {
        reasons.extend(fresh);
    }
}

/// Reasons that come on top of what the diff said (a service counted unchanged is not, then).
pub(crate) fn on_top(more: BTreeMap<String, Reason>, reasons: &mut Reasons) {
    for (service, reason) in more {
        add_on_top(reasons, service, reason);
    }
}

/// Gives `service` a reason to deploy on top of those it has: `unchanged` goes, and one it
/// has already (a stack moved, said by the diff and by its record) is said once.
fn add_on_top(reasons: &mut Reasons, service: String, reason: Reason) {
    let r = reasons.entry(service).or_default();
    r.retain(|x| !matches!(x, Reason::Unchanged { .. }));
    if !r.contains(&reason) {
        r.push(reason);
    }
}

/// What the stacks say comes on top of what git says: a stack deleted or changed outside Ferry
/// deploys whatever its files did. Only candidates take a stack's reason.
pub(crate) fn from_stacks(
    stacks: &BTreeMap<String, Reason>,
    candidates: &BTreeSet<String>,
    reasons: &mut Reasons,
) {
    for (service, reason) in stacks {
        if candidates.contains(service) {
            add_on_top(reasons, service.clone(), reason.clone());
        }
    }
}

/// `--with-dependents`: every dependent of a deploying service deploys too, naming the
/// deploying services it depends on.
pub(crate) fn dependents(graph: &DepGraph, reasons: &mut Reasons) {
    // A service planned only as not-received is checked, not deployed whatever it holds: what
    // depends on it is checked after it by the deploy, as a dependent, not forced.
    let deploying: BTreeSet<String> = reasons
        .iter()
        .filter(|(_, r)| {
            r.iter()
                .any(|r| is_deploy_reason(r) && !matches!(r, Reason::NotReceived { .. }))
        })
        .map(|(n, _)| n.clone())
        .collect();
    for dependent in graph.with_dependents(deploying.iter().map(String::as_str)) {
        if deploying.contains(&dependent) {
            continue;
        }
        let of: Vec<String> = graph
            .with_dependencies([dependent.as_str()])
            .intersection(&deploying)
            .cloned()
            .collect();
        add_on_top(reasons, dependent, Reason::Dependent { of });
    }
}

/// The services with a reason to deploy.
pub(crate) fn deploying(reasons: &Reasons) -> BTreeSet<String> {
    reasons
        .iter()
        .filter(|(_, r)| r.iter().any(is_deploy_reason))
        .map(|(n, _)| n.clone())
        .collect()
}

fn is_deploy_reason(r: &Reason) -> bool {
    !matches!(r, Reason::Unchanged { .. } | Reason::Removed { .. })
}
