//! Lock files read as what they lock: a changed `package-lock.json`, `pnpm-lock.yaml`,
//! `yarn.lock`, `Cargo.lock` or `uv.lock` reaches the services whose installed packages it changes, not every service
//! that names the file (see [`ferry_changes::lockfile`]).

use std::collections::BTreeMap;

use ferry_changes::lockfile::{self, Lock, LockChange, Reach};
use ferry_changes::{Head, Oid, Repo};
use ferry_manifest::{Affected, Workspace};

use crate::Reason;

/// What the changed lock files do to the services of one base group.
#[derive(Debug, Default)]
pub(crate) struct LockReach {
    /// Service → reasons from lock files, besides its changed paths.
    pub(crate) reasons: BTreeMap<String, Vec<Reason>>,
    /// Lock file → the services it reaches (for `--explain`).
    pub(crate) reached: BTreeMap<String, Vec<String>>,
}

/// Reads every changed lock file among `affected` at the base and at the head and keeps
/// it, for each of `members` it affects (as a global input, an input or a file of its folder),
/// only where the service's locked packages differ: there it becomes a
/// [`Reason::LockedDependencies`] instead of a changed path. A service's code lies in its
/// folder and the folders its inputs name. A lock file that is missing on one side, of another
/// kind or version, or unreadable, and a service outside its folder, keep the path-level rule.
pub(crate) fn refine(
    ws: &Workspace,
    repo: &Repo,
    base: Oid,
    head: &Head,
    members: &[&str],
    affected: &mut Affected,
) -> LockReach {
    let mut out = LockReach::default();
    let mut locks: Vec<String> = affected
        .global
        .iter()
        .chain(affected.services.values().flatten())
        .filter(|p| lockfile::is_lock_file(p))
        .cloned()
        .collect();
    locks.sort();
    locks.dedup();
    for path in locks {
        let read = |text: Option<String>| Lock::parse(&path, &text?).ok();
        let (Some(mut old), Some(mut new)) = (
            read(repo.file_at(base, &path)),
            read(repo.text_in(head, &path, lockfile::MAX_LOCK_FILE)),
        ) else {
            continue;
        };
        let global = affected.global.contains(&path);
        // The services the file affects (as a global input, an input or a file of their
        // folder), with the folders their code lies in.
        let touched: Vec<(&str, Vec<String>)> = members
            .iter()
            .filter(|name| {
                global
                    || affected
                        .services
                        .get(**name)
                        .is_some_and(|paths| paths.contains(&path))
            })
            .filter_map(|name| {
                let s = ws.service(name)?;
                Some((*name, lockfile::service_folders(&s.dir, &s.inputs)))
            })
            .collect();
        if let Some(manifest) = old.manifest_name().or(new.manifest_name()) {
            // Yarn 1 and Cargo do not say where their members live: the manifests of the
            // services' folders, of the folders their inputs name, and of the folders above
            // and below them.
            let mut folders: Vec<String> = touched
                .iter()
                .flat_map(|(_, folders)| folders.iter().cloned())
                .collect();
            // And the members inside those folders (`services/a/fn/x/package.json`), at the
            // base and at the head.
            let head_commit = match head {
                Head::Rev(rev) => repo.resolve(rev),
                Head::WorkingTree => repo.head_commit(),
            };
            let below: Vec<String> = folders
                .iter()
                .flat_map(|f| {
                    [Some(base), head_commit]
                        .into_iter()
                        .flatten()
                        .flat_map(|c| repo.folders_holding(c, f, manifest))
                        .collect::<Vec<_>>()
                })
                .collect();
            folders.extend(below);
            folders.sort();
            folders.dedup();
            let manifests = |at: &dyn Fn(&str) -> Option<String>| {
                lockfile::importer_folders_of(&path, &folders, manifest)
                    .into_iter()
                    .map(|(rel, repo_path)| (rel, at(&repo_path)))
                    .collect::<Vec<_>>()
            };
            old.set_importers(&manifests(&|p| repo.file_at(base, p)));
            new.set_importers(&manifests(&|p| {
                repo.text_in(head, p, lockfile::MAX_LOCK_FILE)
            }));
        }
        let change = LockChange::new(&old, &new);
        affected.global.remove(&path);
        let mut reached = Vec::new();
        for (name, folders) in &touched {
            let name = *name;
            let folders: Vec<&str> = folders.iter().map(String::as_str).collect();
            // A folder holding a lock file of its own (at the head) installs from it.
            let dir = ws.service(name).map_or("", |s| s.dir.as_str());
            // A Serverless service's CLI and plugins come from a `node_modules` above its
            // folder unless its own package.json names the CLI (or service.toml gives one).
            let tools_from_above = ws.service(name).is_some_and(|s| {
                s.kind == ferry_manifest::ServiceKind::Serverless
                    && s.serverless_command.is_none()
                    && !repo
                        .text_in(
                            head,
                            &format!("{dir}/package.json"),
                            lockfile::MAX_LOCK_FILE,
                        )
                        .is_some_and(|t| ferry_manifest::FrameworkCli::named_in_text(t.as_bytes()))
            });
            let reach = change.reach_service(&path, dir, &folders, tools_from_above, &|p| {
                repo.has_file_in(head, p)
            });
            if reach != Reach::Outside
                && let Some(paths) = affected.services.get_mut(name)
            {
                // Judged by what it locks, no longer as a changed file of the service.
                paths.remove(&path);
                if paths.is_empty() {
                    affected.services.remove(name);
                }
            }
            let reason = match reach {
                // Outside the lock file's folder: the whole file counts, as without it.
                Reach::Outside if global => Reason::GlobalInput {
                    paths: vec![path.clone()],
                },
                Reach::Outside => {
                    // Its own changed path still (an input naming the file).
                    reached.push(name.to_string());
                    continue;
                }
                Reach::Unchanged => continue,
                Reach::Changed(packages) => Reason::LockedDependencies {
                    lockfile: path.clone(),
                    packages,
                },
            };
            reached.push(name.to_string());
            out.reasons
                .entry(name.to_string())
                .or_default()
                .push(reason);
        }
        out.reached.insert(path, reached);
    }
    out
}
