//! Which services a change to a lock file reaches.
//!
//! The root lock file of npm or pnpm workspaces changes whenever any member's dependencies do.
//! Taken as a whole file it either redeploys every service (a global input) or none it does not
//! name: one member's upgrade of `left-pad` would redeploy them all, or a shared package's
//! upgrade would reach none. Read as what it is, a lock file says exactly which packages each
//! workspace member (an *importer*) installs: its dependencies, followed through the package
//! manager's resolution and through links to other members. A service is reached by a change
//! when an entry of that closure differs between the two versions of the file.
//!
//! Read: `package-lock.json` and `npm-shrinkwrap.json` of version 2 and 3 (npm 7 and later,
//! [`npm`]) and `pnpm-lock.yaml` of version 6 and 9 ([`pnpm`]). The caller treats anything else
//! as a change of the whole file. The root importer (the lock file's folder) is part of every
//! member's closure: its packages (build tools, the Serverless Framework and its plugins) are
//! installed for all of them. Pure: no git, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

pub mod npm;
pub mod pnpm;

/// A lock file is read only up to this size; a larger one counts as changed as a whole.
pub const MAX_LOCK_FILE: u64 = 256 * 1024 * 1024;

/// Whether `path` (repository relative) names a lock file Ferry reads.
pub fn is_lock_file(path: &str) -> bool {
    kind_of(path).is_some()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Npm,
    Pnpm,
}

fn kind_of(path: &str) -> Option<Kind> {
    match path.rsplit('/').next().unwrap_or(path) {
        "package-lock.json" | "npm-shrinkwrap.json" => Some(Kind::Npm),
        "pnpm-lock.yaml" => Some(Kind::Pnpm),
        _ => None,
    }
}

/// Why a lock file is not read (the caller then counts the whole file as changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    #[error(
        "it is not a lock file Ferry reads (package-lock.json, npm-shrinkwrap.json, pnpm-lock.yaml)"
    )]
    NotALockFile,
    #[error("it cannot be parsed: {0}")]
    Unparsable(String),
    #[error("lockfileVersion {0} is not one Ferry reads (npm: 2 or 3; pnpm: 6 or 9)")]
    Version(String),
    #[error("its {0} is not a map of entries")]
    Malformed(&'static str),
}

/// One installed package (or importer) of a closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The package's name (an importer's folder, `root package` for the lock file's own).
    pub name: String,
    pub version: Option<String>,
    /// What the lock file says of it that decides what is installed.
    pub content: Value,
}

/// The entries a set of importers reaches, by the lock file's key for each.
pub type Closure = BTreeMap<String, Entry>;

/// A lock file Ferry reads.
#[derive(Debug, Clone)]
pub enum Lock {
    Npm(npm::NpmLock),
    Pnpm(pnpm::PnpmLock),
}

impl Lock {
    /// Reads the lock file at `path` (its name says which kind) from `text`.
    pub fn parse(path: &str, text: &str) -> Result<Lock, LockError> {
        match kind_of(path) {
            Some(Kind::Npm) => npm::NpmLock::parse(text).map(Lock::Npm),
            Some(Kind::Pnpm) => pnpm::PnpmLock::parse(text).map(Lock::Pnpm),
            None => Err(LockError::NotALockFile),
        }
    }

    /// The importers that serve the folder `dir` (relative to the lock file's folder, `""` for
    /// that folder itself): the root, and the members at or below `dir`, else the nearest one
    /// above it.
    pub fn importers_for(&self, dir: &str) -> Vec<String> {
        let importers: Vec<&str> = match self {
            Lock::Npm(l) => l.importers().collect(),
            Lock::Pnpm(l) => l.importers().collect(),
        };
        let under = |k: &str| dir.is_empty() || k == dir || k.starts_with(&format!("{dir}/"));
        let mut found: BTreeSet<String> = importers
            .iter()
            .filter(|k| under(k))
            .map(|k| k.to_string())
            .collect();
        if found.is_empty() {
            let above = importers
                .iter()
                .filter(|k| k.is_empty() || dir.starts_with(&format!("{k}/")))
                .max_by_key(|k| k.len());
            found.extend(above.map(|k| k.to_string()));
        }
        if importers.contains(&"") {
            found.insert(String::new());
        }
        found.into_iter().collect()
    }

    /// Every entry `importers` reach, with their own entries.
    pub fn closure(&self, importers: &[String]) -> Closure {
        match self {
            Lock::Npm(l) => l.closure(importers),
            Lock::Pnpm(l) => l.closure(importers),
        }
    }
}

/// What a change of a lock file does to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The service folder is outside the lock file's folder: the lock file says nothing of it.
    Outside,
    /// Nothing the service installs changed.
    Unchanged,
    /// What it installs changed: [`closure_changes`], never empty.
    Changed(Vec<String>),
}

/// What the change from `old` to `new` of the lock file at `lock_path` does to the service in
/// `service_dir` (both repository relative): the closures of the importers serving the folder
/// (on either side: a member added or removed changes them) compared.
pub fn reach(old: &Lock, new: &Lock, lock_path: &str, service_dir: &str) -> Reach {
    let lock_dir = lock_path.rsplit_once('/').map_or("", |(d, _)| d);
    let Some(dir) = relative(service_dir, lock_dir) else {
        return Reach::Outside;
    };
    let mut importers = old.importers_for(&dir);
    importers.extend(new.importers_for(&dir));
    importers.sort();
    importers.dedup();
    let (a, b) = (old.closure(&importers), new.closure(&importers));
    if a == b {
        return Reach::Unchanged;
    }
    let mut changes = closure_changes(&a, &b);
    if changes.is_empty() {
        changes.push("packages moved in node_modules".to_string());
    }
    Reach::Changed(changes)
}

/// `dir` relative to `lock_dir` (both repository relative): `""` for the folder itself, `None`
/// outside it.
fn relative(dir: &str, lock_dir: &str) -> Option<String> {
    if lock_dir.is_empty() {
        return Some(dir.to_string());
    }
    if dir == lock_dir {
        return Some(String::new());
    }
    dir.strip_prefix(lock_dir)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(String::from)
}

/// Normalises `base/rel` (`/`-separated, `..` and `.` resolved); `None` when it climbs above
/// the lock file's folder.
pub(crate) fn join(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// What differs between two closures, one line per package, sorted: `left-pad 1.3.0 → 1.3.1`,
/// `is-odd 3.0.1 (added)`, `ms 2.1.3 (removed)`, `services/a (changed)` for an importer or an
/// entry whose version stayed. An entry that moved (hoisted, nested under another package, or
/// under another key) is paired with the entry of its name it replaced. Empty when the
/// closures are the same, and possibly when only places in `node_modules` changed.
pub fn closure_changes(base: &Closure, head: &Closure) -> Vec<String> {
    let changed = |old: &Entry, new: &Entry| match (&old.version, &new.version) {
        (Some(a), Some(b)) if a != b => format!("{} {a} → {b}", new.name),
        _ => format!("{} (changed)", new.name),
    };
    let with_version = |e: &Entry| match &e.version {
        Some(v) => format!("{} {v}", e.name),
        None => e.name.clone(),
    };
    let mut out = BTreeSet::new();
    for (key, old) in base {
        if let Some(new) = head.get(key)
            && new != old
        {
            out.insert(changed(old, new));
        }
    }
    // Entries only one side has: paired by name where one replaced another.
    let mut gone: Vec<&Entry> = base
        .iter()
        .filter(|(k, _)| !head.contains_key(*k))
        .map(|(_, e)| e)
        .collect();
    for (_, new) in head.iter().filter(|(k, _)| !base.contains_key(*k)) {
        match gone.iter().position(|old| old.name == new.name) {
            Some(i) => {
                let old = gone.remove(i);
                if old != new {
                    out.insert(changed(old, new));
                }
            }
            None => {
                out.insert(format!("{} (added)", with_version(new)));
            }
        }
    }
    for old in gone {
        out.insert(format!("{} (removed)", with_version(old)));
    }
    out.into_iter().collect()
}
