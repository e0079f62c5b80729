//! Diffing: for each distinct base, the paths changed between it and the head, and the services
//! those paths affect (and the services removed since).

use std::collections::{BTreeMap, BTreeSet};

use ferry_changes::{BaseUnavailable, ChangesError, Owners, Repo};
use ferry_manifest::{SERVICE_FILE, Workspace};

use crate::reasons::{self, Reasons};
use crate::{BaseInfo, PathOwners, PlanError, PlanRequest};

/// What comparing the bases found, besides the services' reasons.
#[derive(Default)]
pub(crate) struct Compared {
    /// Every distinct base, in order, with what it was compared with.
    pub bases: Vec<BaseInfo>,
    /// Services removed since a base, by the name they had there.
    pub removed: BTreeMap<String, RemovedService>,
}

/// A service of the base that no service of the head carries on: its folder is gone, or the
/// service in that folder now has another name (and so another stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemovedService {
    /// Its folder at the base.
    pub dir: String,
    /// The name the service in that folder has now, when it was renamed.
    pub renamed_to: Option<String>,
    /// Renamed, its stack is still the one it had: the framework names it (a Serverless
    /// service's `<service>-<stage>`), not Ferry's service name. The stack's tags name the old
    /// service, so a deploy of the new name is refused until the two agree again.
    pub stack_kept: bool,
}

/// Diffs each base of `by_base` against the head, once for all the services that share it, and
/// gives each of those services its reasons ([`reasons::from_changes`], or
/// [`reasons::base_unavailable`] when the base cannot be used; with `req.strict` that is an
/// error instead).
pub(crate) fn compare_bases(
    ws: &Workspace,
    repo: Result<&Repo, &BaseUnavailable>,
    req: &PlanRequest,
    by_base: BTreeMap<&str, Vec<&str>>,
    reasons: &mut Reasons,
) -> Result<Compared, PlanError> {
    let mut out = Compared::default();
    if by_base.is_empty() {
        return Ok(out);
    }
    let owners = Owners::of_workspace(ws)?;
    for (base, members) in by_base {
        let outcome = match repo {
            Ok(r) => r
                .changed_paths(base, &req.head)
                .map(|c| (r.resolve(base), c)),
            Err(cause) => Err(ChangesError::BaseUnavailable(cause.clone())),
        };
        let (base_commit, changed) = match outcome {
            Ok(ok) => ok,
            Err(ChangesError::BaseUnavailable(cause)) => {
                if req.strict {
                    return Err(PlanError::Strict { cause });
                }
                let message = cause.to_string();
                reasons::base_unavailable(&members, base, &cause, &message, reasons);
                out.bases.push(BaseInfo {
                    base: base.to_string(),
                    commit: None,
                    services: members.iter().map(|m| m.to_string()).collect(),
                    unavailable: Some(message),
                    paths: None,
                });
                continue;
            }
            Err(e) => return Err(PlanError::Changes(e)),
        };
        let mut affected = owners.classify(&changed.paths);
        if let (Ok(r), Some(commit)) = (repo, base_commit) {
            nested_services_added(&owners, r, commit, &changed, &mut affected);
            for (name, removed) in removed_services(ws, r, commit, &changed) {
                out.removed.entry(name).or_insert(removed);
            }
        }
        let since = base_commit.map_or_else(|| base.to_string(), ferry_changes::short);
        reasons::from_changes(&members, &affected, &since, reasons);
        let paths = req.explain.then(|| path_owners(&owners, &changed.paths));
        out.bases.push(BaseInfo {
            base: base.to_string(),
            commit: base_commit.map(|c| c.to_string()),
            services: members.iter().map(|m| m.to_string()).collect(),
            unavailable: None,
            paths,
        });
    }
    Ok(out)
}

/// Every changed path with the services that own it and whether it is a global input (for
/// `explain`).
fn path_owners(owners: &Owners<'_>, paths: &BTreeSet<String>) -> Vec<PathOwners> {
    paths
        .iter()
        .map(|p| PathOwners {
            path: p.clone(),
            services: owners
                .services_of(p)
                .into_iter()
                .map(String::from)
                .collect(),
            global: owners.is_global(p),
        })
        .collect()
}

/// A service folder made inside another service's folder (a `service.toml` added there) takes
/// its files out of the outer service's package, so the outer service changed too, though none
/// of its own paths did. Marks it, with the new manifest as the changed path. (A nested service
/// removed gives its files back, which the head's owners already count as the outer one's.)
fn nested_services_added(
    owners: &Owners<'_>,
    repo: &Repo,
    base: ferry_changes::Oid,
    changed: &ferry_changes::ChangedPaths,
    affected: &mut ferry_manifest::Affected,
) {
    let manifest = format!("/{SERVICE_FILE}");
    for path in &changed.paths {
        let Some(dir) = path.strip_suffix(&manifest) else {
            continue;
        };
        // The owners of the new service's folder itself: the service folders around it (a
        // top-level service has none, and needs no look at the base).
        let outers = owners.services_of(dir);
        if outers.is_empty() || changed.deleted.contains(path) || repo.file_at(base, path).is_some()
        {
            continue;
        }
        for outer in outers {
            affected
                .services
                .entry(outer.to_string())
                .or_default()
                .insert(path.clone());
        }
    }
}

/// Services of the base that the head no longer has, with the name they had there: those
/// whose manifest was deleted and whose folder is no service at head, and those whose manifest
/// changed their name (`service.name`), which leaves the old name's stack behind. Only those
/// that were services at the base: on the working tree, a path counts as deleted when a commit
/// since the base or the working tree removed it, and a service added after the base and
/// removed again since never had a stack of the base's.
fn removed_services(
    ws: &Workspace,
    repo: &Repo,
    base: ferry_changes::Oid,
    changed: &ferry_changes::ChangedPaths,
) -> Vec<(String, RemovedService)> {
    let manifest = format!("/{SERVICE_FILE}");
    changed
        .paths
        .iter()
        .filter_map(|p| Some((p, p.strip_suffix(manifest.as_str())?)))
        .filter_map(|(path, dir)| {
            let now = ws.services.iter().find(|s| s.dir == dir);
            // A manifest that is still there but is no service of the head (outside the
            // `services` globs) says nothing about what the base's was.
            if now.is_none() && !changed.deleted.contains(path) {
                return None;
            }
            let src = repo.file_at(base, path)?;
            let folder = dir.rsplit('/').next().unwrap_or(dir);
            let name = ferry_manifest::declared_service_name(&src).unwrap_or(folder.to_string());
            let renamed_to = match now {
                Some(s) if s.name == name => return None,
                Some(s) => Some(s.name.clone()),
                None => None,
            };
            let removed = RemovedService {
                dir: dir.to_string(),
                renamed_to,
                // A stack named by the framework does not follow Ferry's name.
                stack_kept: now.is_some_and(|s| s.stack_name.is_some()),
            };
            Some((name, removed))
        })
        .filter(|(name, _)| ws.service(name).is_none())
        .collect()
}
