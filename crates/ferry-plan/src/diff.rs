//! Diffing: for each distinct base, the paths changed between it and the head, and the services
//! those paths affect (and the services removed since).

use std::collections::{BTreeMap, BTreeSet};

use ferry_changes::{BaseUnavailable, ChangesError, Owners, Repo};
use ferry_manifest::{SERVICE_FILE, Workspace};

use crate::reasons::{self, Reasons};
use crate::{BaseInfo, PathOwners, PlanError, PlanRequest, Reason, StackPlace};

/// What comparing the bases found, besides the services' reasons.
#[derive(Default)]
pub(crate) struct Compared {
    /// Every distinct base, in order, with what it was compared with.
    pub bases: Vec<BaseInfo>,
    /// Services removed since a base, by the name they had there.
    pub removed: BTreeMap<String, RemovedService>,
    /// Names that another folder's service has taken over since a base, while the folder that
    /// had the name still holds a service: the name's stack gets the other folder's template.
    pub taken_names: Vec<TakenName>,
    /// What else the comparison has to say: a base whose configuration does not load, stacks
    /// that services leave behind for new names.
    pub notes: Vec<String>,
}

impl Compared {
    /// Adds `note` unless another base said it already.
    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

/// A service name that moved to another folder's service, while its old folder went on under
/// another name (names swapped, or a name reused): its stack is deployed from the new folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TakenName {
    pub name: String,
    pub from_dir: String,
    pub to_dir: String,
    /// The name the old folder's service has now.
    pub old_dir_now: String,
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
    /// Its stack at the base (the base's own configuration names it).
    pub stack: String,
}

/// Diffs each base of `by_base` against the head, once for all the services that share it, and
/// gives each of those services its reasons ([`reasons::from_changes`], or
/// [`reasons::base_unavailable`] when the base cannot be used; with `req.strict` that is an
/// error instead).
pub(crate) fn compare_bases(
    ws: &Workspace,
    stage: &ferry_manifest::Stage,
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
        if changed.diverged {
            out.note(format!(
                "base {} ({}) is on another line of history than the head (another branch deployed the stage, or a squash merge, rebase or amend replaced its commit): compared by their trees, which say exactly what differs",
                base_commit.map_or_else(|| base.to_string(), ferry_changes::short),
                ferry_manifest::first_few(&members, 5)
            ));
        }
        let mut affected = owners.classify_changes(&changed.paths, &changed.submodules);
        // Services whose stack is another one now: they deploy whatever their files did.
        let mut moved_to: BTreeMap<String, Reason> = BTreeMap::new();
        // Services whose parameters read stage settings that changed.
        let mut settings: BTreeMap<String, Reason> = BTreeMap::new();
        // Services the base's configuration does not have, whose own files may not have
        // changed (a glob of `ferry.toml` that reaches one more folder now).
        let mut added: BTreeMap<String, Reason> = BTreeMap::new();
        let mut locks = crate::locks::LockReach::default();
        if let (Ok(r), Some(commit)) = (repo, base_commit) {
            nested_services_added(&owners, r, commit, &changed, &mut affected);
            locks = crate::locks::refine(ws, r, commit, &req.head, &members, &mut affected);
            // Planned from the records, a name gone without a record has nothing in the stage
            // to say anything about: never deployed there, or its stack removed
            // (`remove --orphans`) or taken over (`deploy --adopt`) since.
            let deployed = |name: &String| req.since.is_some() || req.bases.contains_key(name);
            match base_workspace(r, commit, &changed) {
                Some(Ok(base_ws)) => {
                    let (removed, taken) = services_gone(ws, &base_ws, stage);
                    // A new name of a service the base had (renamed) is no new service: its
                    // old name's removal says so.
                    let renamed: BTreeSet<&str> = removed
                        .iter()
                        .filter_map(|(_, r)| r.renamed_to.as_deref())
                        .collect();
                    for name in members
                        .iter()
                        .filter(|n| base_ws.service(n).is_none() && !renamed.contains(*n))
                    {
                        let since = ferry_changes::short(commit);
                        added.insert(name.to_string(), Reason::Added { since });
                    }
                    for (name, removed) in removed.into_iter().filter(|(n, _)| deployed(n)) {
                        out.removed.entry(name).or_insert(removed);
                    }
                    for t in taken {
                        if !out.taken_names.contains(&t) {
                            out.taken_names.push(t);
                        }
                    }
                    let moved = stacks_moved(ws, &base_ws, stage);
                    let moved: Vec<String> = moved
                        .into_iter()
                        .filter(|(name, _, _)| deployed(name))
                        .map(|(name, from, to)| {
                            let shown = if from.region == to.region {
                                format!("{name}: {} → {}", from.stack, to.stack)
                            } else {
                                format!("{name}: {from} → {to}")
                            };
                            if members.contains(&name.as_str()) {
                                moved_to.insert(name, Reason::StackMoved { from, to });
                            }
                            shown
                        })
                        .collect();
                    for (name, keys) in settings_changed(ws, &base_ws, stage) {
                        if members.contains(&name.as_str()) && !moved_to.contains_key(&name) {
                            settings.insert(name, Reason::StageSettingsChanged { keys });
                        }
                    }
                    if !moved.is_empty() {
                        let note = format!(
                            "stacks moved since {} ({}): a deploy creates the new stacks, which start empty, and leaves the old ones in place, still tagged for their services; once the new ones run and hold what the old ones held, `remove {} --orphans` deletes the old ones (a template that names its resources, as the Serverless Framework names a service's functions and role, cannot be created beside its old stack: those names are taken; remove the old stack first)",
                            ferry_changes::short(commit),
                            ferry_manifest::first_few(
                                &moved.iter().map(String::as_str).collect::<Vec<_>>(),
                                5
                            ),
                            stage.name
                        );
                        out.note(note);
                    }
                }
                Some(Err(why)) => {
                    let note = format!(
                        "the configuration at {} does not load ({why}), so services it had and this one has not (removed or renamed) cannot be named here: their stacks stay in place until `remove {} --orphans` (by their records) deletes them",
                        ferry_changes::short(commit),
                        stage.name
                    );
                    out.note(note);
                }
                None => {}
            }
        }
        let since = base_commit.map_or_else(|| base.to_string(), ferry_changes::short);
        reasons::from_changes(&members, &affected, &locks.reasons, &since, reasons);
        reasons::on_top(moved_to, reasons);
        reasons::on_top(settings, reasons);
        reasons::on_top(added, reasons);
        let paths = req
            .explain
            .then(|| path_owners(&owners, &changed, &locks.reached));
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

/// Services the stage's records name that no service of the head carries on, when no base
/// compared above said so (their record's commit is no base of a service planned now): each
/// is found in the workspace of its record's commit, so that the plan says it is removed and
/// its stack left in place. Records whose commit this clone lacks are left to the deploy's
/// note on records of services that no longer exist.
pub(crate) fn recorded_but_gone(
    ws: &Workspace,
    stage: &ferry_manifest::Stage,
    repo: Result<&Repo, &BaseUnavailable>,
    req: &PlanRequest,
    out: &mut Compared,
) {
    let Ok(repo) = repo else { return };
    if req.since.is_some() {
        return;
    }
    let mut gone: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, base) in &req.bases {
        if ws.service(name).is_none() && !out.removed.contains_key(name) {
            gone.entry(base.as_str()).or_default().push(name.as_str());
        }
    }
    for (base, names) in gone {
        let Some(base_ws) = repo
            .resolve(base)
            .and_then(|c| workspace_at_commit(repo, c).ok())
        else {
            continue;
        };
        let (removed, _) = services_gone(ws, &base_ws, stage);
        for (name, r) in removed {
            if names.contains(&name.as_str()) {
                out.removed.entry(name).or_insert(r);
            }
        }
    }
}

/// Every changed path with the services that own it and whether it is a global input (for
/// `explain`).
fn path_owners(
    owners: &Owners<'_>,
    changed: &ferry_changes::ChangedPaths,
    locks: &BTreeMap<String, Vec<String>>,
) -> Vec<PathOwners> {
    changed
        .paths
        .iter()
        .map(|p| {
            if let Some(reached) = locks.get(p) {
                // A lock file read as what it locks: the services whose packages it changes.
                return PathOwners {
                    path: p.clone(),
                    services: reached.clone(),
                    global: owners.is_global(p),
                    lock_file: true,
                };
            }
            // Judged as the plan judges it (a submodule or a `.gitattributes` stands for what
            // lies below it), so that the two never disagree.
            let affected = owners.classify_changes(std::iter::once(p), &changed.submodules);
            PathOwners {
                path: p.clone(),
                global: affected.global.contains(p),
                services: affected.services.into_keys().collect(),
                lock_file: false,
            }
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

/// The workspace as it was at `base`, when the changes since could have removed, renamed or
/// moved a service to another stack (`ferry.toml`, a manifest or a Serverless configuration
/// changed); `None` otherwise; an error (its first line) when the base's configuration does
/// not load. Read through the folder cache; the workspace memo (the head's) is left alone.
fn base_workspace(
    repo: &Repo,
    base: ferry_changes::Oid,
    changed: &ferry_changes::ChangedPaths,
) -> Option<Result<Workspace, String>> {
    let configuration = |p: &String| {
        let name = p.rsplit('/').next().unwrap_or(p);
        p == ferry_manifest::PROJECT_FILE || name == SERVICE_FILE || name.starts_with("serverless.")
    };
    if !changed.paths.iter().any(configuration) {
        return None;
    }
    // A base from before Ferry was adopted had no services to remove.
    repo.file_at(base, ferry_manifest::PROJECT_FILE)?;
    Some(workspace_at_commit(repo, base))
}

/// The workspace as it was at `base` (read through the folder cache), or why it does not load
/// (its first problem).
fn workspace_at_commit(repo: &Repo, base: ferry_changes::Oid) -> Result<Workspace, String> {
    let first_line = |e: String| e.lines().next().unwrap_or_default().to_string();
    let source = repo
        .source_at(&base.to_string())
        .map_err(|e| first_line(e.to_string()))?;
    let cache_path = repo.cache_dir().join("manifest-cache.bin");
    let mut cache = ferry_manifest::ManifestCache::read(&cache_path);
    // Its first problem itself, not the count above the list.
    let base_ws =
        ferry_manifest::load_from(repo.root(), &source, Some(&mut cache)).map_err(|e| {
            match e.0.as_slice() {
                [] => first_line(e.to_string()),
                [one] => one.to_string(),
                [first, more @ ..] => format!("{first}; and {} more", more.len()),
            }
        })?;
    let _ = cache.write(&cache_path);
    Ok(base_ws)
}

/// The services of both workspaces (by name) whose parameters read settings of `stage` that
/// differ from the base's: each `variables.<name>` read (`${var:…}`, also as an output's stage),
/// and `parameters-path` where a relative `${ssm:…}` name resolves under it. A change of the
/// file alone, with `ferry.toml` none of a service's inputs, would redeploy nothing.
fn settings_changed(
    ws: &Workspace,
    base_ws: &Workspace,
    stage: &ferry_manifest::Stage,
) -> Vec<(String, Vec<String>)> {
    use ferry_manifest::{OutputStage, Reference};
    let Ok(base_stage) = base_ws.stage(&stage.name) else {
        return Vec::new();
    };
    let (now, then) = (&stage.config, &base_stage.config);
    ws.services
        .iter()
        .filter(|s| base_ws.service(&s.name).is_some())
        .filter_map(|s| {
            let mut keys = BTreeSet::new();
            let note = |r: &Reference, keys: &mut BTreeSet<String>| match r {
                Reference::Var(v)
                | Reference::Output {
                    stage: Some(OutputStage::Var(v)),
                    ..
                } if now.variables.get(v) != then.variables.get(v) => {
                    keys.insert(format!("variables.{v}"));
                }
                _ => {}
            };
            for t in s.parameters.values() {
                for r in t.references() {
                    note(r, &mut keys);
                    if let Reference::Ssm { name } = r {
                        for inner in name.references() {
                            note(inner, &mut keys);
                        }
                        let relative = !name.to_string().starts_with('/');
                        if relative && now.parameters_path != then.parameters_path {
                            keys.insert("parameters-path".to_string());
                        }
                    }
                }
            }
            (!keys.is_empty()).then(|| (s.name.clone(), keys.into_iter().collect()))
        })
        .collect()
}

/// The services of both workspaces (by name) whose stack in `stage` has another name now:
/// (name, old stack, new stack), e.g. after `[project] stack-name` changed.
fn stacks_moved(
    ws: &Workspace,
    base_ws: &Workspace,
    stage: &ferry_manifest::Stage,
) -> Vec<(String, StackPlace, StackPlace)> {
    // The stage as the base configured it (a stage new since has no stacks to move).
    let Ok(base_stage) = base_ws.stage(&stage.name) else {
        return Vec::new();
    };
    ws.services
        .iter()
        .filter_map(|s| {
            let b = base_ws.service(&s.name)?;
            let from = StackPlace {
                stack: base_ws.service_stack_name(b, &base_stage),
                region: base_stage.config.region.clone(),
            };
            let to = StackPlace {
                stack: ws.service_stack_name(s, stage),
                region: stage.config.region.clone(),
            };
            (from != to).then(|| (s.name.clone(), from, to))
        })
        .collect()
}

/// What the base had that the head does not carry on: services whose name no service has now
/// (their folder is gone, or the service in it has another name, and so, unless its framework
/// names it, another stack), and names another folder's service has taken over while the
/// old folder goes on under another name.
fn services_gone(
    ws: &Workspace,
    base_ws: &Workspace,
    stage: &ferry_manifest::Stage,
) -> (Vec<(String, RemovedService)>, Vec<TakenName>) {
    let mut removed = Vec::new();
    let mut taken = Vec::new();
    // The base's stacks as the base's configuration names them (its stage id and pattern).
    let base_stage = base_ws.stage(&stage.name).unwrap_or_else(|_| stage.clone());
    for b in &base_ws.services {
        let at_old_dir = ws.services.iter().find(|s| s.dir == b.dir);
        match ws.service(&b.name) {
            None => {
                let stack = base_ws.service_stack_name(b, &base_stage);
                // The service deploying to that stack now, if any: one that names its stack
                // itself (a Serverless service's framework, a `stack-name` without
                // `{service}`) keeps it when renamed, or moved and renamed; one whose stack
                // is named after it never does, nor does one of another kind.
                let same_stack = ws
                    .services
                    .iter()
                    .find(|s| s.kind == b.kind && ws.service_stack_name(s, stage) == stack);
                let renamed_to = same_stack.or(at_old_dir).map(|s| s.name.clone());
                removed.push((
                    b.name.clone(),
                    RemovedService {
                        dir: b.dir.clone(),
                        renamed_to,
                        stack_kept: same_stack.is_some(),
                        stack,
                    },
                ));
            }
            Some(now) if now.dir != b.dir => {
                if let Some(other) = at_old_dir {
                    taken.push(TakenName {
                        name: b.name.clone(),
                        from_dir: b.dir.clone(),
                        to_dir: now.dir.clone(),
                        old_dir_now: other.name.clone(),
                    });
                }
            }
            Some(_) => {}
        }
    }
    (removed, taken)
}
