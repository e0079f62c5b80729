//! Which services a change to a lock file reaches.
//!
//! The root lock file of npm, pnpm, Yarn or Cargo workspaces changes whenever any member's
//! dependencies do.
//! Taken as a whole file it either redeploys every service (a global input) or none it does not
//! name: one member's upgrade of `left-pad` would redeploy them all, or a shared package's
//! upgrade would reach none. Read as what it is, a lock file says exactly which packages each
//! workspace member (an *importer*) installs: its dependencies, followed through the package
//! manager's resolution and through links to other members. A service is reached by a change
//! when a changed entry lies in that closure, on either side.
//!
//! Read: `package-lock.json` and `npm-shrinkwrap.json` of version 2 and 3 (npm 7 and later,
//! `npm`), `pnpm-lock.yaml` of version 6 and 9 (`pnpm`), `yarn.lock` of Yarn 1 and later
//! (`yarn`), `Cargo.lock` (`cargo`) and `uv.lock` (`uv`). The caller treats anything else
//! as a change of the whole file. Each is read once into a [`Lock`], a graph of entries; a
//! [`LockChange`] of two versions finds the changed entries once and walks the graphs backwards
//! from them, so judging many services costs about as much as judging one. Pure: no git, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

mod cargo;
mod npm;
mod pnpm;
mod uv;
mod yarn;

/// A lock file in the working tree is read only when it is a regular file up to this size;
/// a larger one counts as changed as a whole. (One in a commit is read whatever its size: git
/// holds it already.)
pub const MAX_LOCK_FILE: u64 = 256 * 1024 * 1024;

/// Past this many changed entries (a lock file written anew) a service's reason counts them
/// instead of naming each it installs.
const NAMED_CHANGES: usize = 64;

/// Whether `path` (repository relative) names a lock file Ferry reads.
pub fn is_lock_file(path: &str) -> bool {
    kind_of(path).is_some()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Npm,
    Pnpm,
    Yarn,
    Cargo,
    Uv,
}

fn kind_of(path: &str) -> Option<Kind> {
    match path.rsplit('/').next().unwrap_or(path) {
        "package-lock.json" | "npm-shrinkwrap.json" => Some(Kind::Npm),
        "pnpm-lock.yaml" => Some(Kind::Pnpm),
        "yarn.lock" => Some(Kind::Yarn),
        "Cargo.lock" => Some(Kind::Cargo),
        "uv.lock" => Some(Kind::Uv),
        _ => None,
    }
}

/// Why a lock file is not read (the caller then counts the whole file as changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    #[error(
        "it is not a lock file Ferry reads (package-lock.json, npm-shrinkwrap.json, pnpm-lock.yaml, yarn.lock, Cargo.lock, uv.lock)"
    )]
    NotALockFile,
    #[error("it cannot be parsed: {0}")]
    Unparsable(String),
    #[error(
        "its version {0} is not one Ferry reads (npm: 2 or 3; pnpm: 6 or 9; Yarn: 1 and later)"
    )]
    Version(String),
    #[error("its {0} is not a map of entries")]
    Malformed(&'static str),
    #[error("an entry is nested {0} packages deep, more than Ferry follows")]
    TooDeep(usize),
}

/// One installed package, or an importer, of a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The package's name (an importer's folder, `root package` for the lock file's own).
    pub name: String,
    pub version: Option<String>,
    /// What the lock file says of it that decides what is installed: no flags saying which
    /// importers use it, no download address where a checksum names the bytes, and of an
    /// importer only which packages it depends on.
    pub content: Value,
}

/// A lock file read into a graph.
#[derive(Debug, Clone, Default)]
pub struct Lock {
    /// Every entry by its key (npm: its install path; pnpm: `name@version(peers)`; Yarn 2+:
    /// its resolution; Yarn 1: `name@version`; an importer of pnpm and Yarn 1:
    /// `importer:<folder>`).
    entries: HashMap<String, Entry>,
    /// Entry → the entries its dependencies resolve to (a link: the member it leads to).
    deps: HashMap<String, Vec<String>>,
    /// Importer folder, relative to the lock file's (`""` for that folder) → its entry's key.
    importers: BTreeMap<String, String>,
    /// A lock file that does not say where its members live (Yarn 1, Cargo): their manifests
    /// are given ([`Lock::set_importers`]).
    manifests: Option<Manifests>,
    /// Importers with a dependency neither the lock file nor a given member holds: what they
    /// install cannot be followed.
    opaque: BTreeSet<String>,
    /// Yarn, Cargo: a changed entry no importer (nor root) reaches still counts for every
    /// service (Yarn links a patched, `file:` or `portal:` package in ways a reader may not
    /// follow; npm and pnpm list every edge, and an entry none reaches is not installed).
    attribute_every_change: bool,
    /// Entries that use what they reach although no service is theirs (Cargo: every member,
    /// `xtask` too): a change reaching one is accounted for.
    roots: BTreeSet<String>,
}

/// What a lock file that does not say where its members live needs to read their manifests.
#[derive(Debug, Clone)]
pub(crate) enum Manifests {
    /// Yarn 1: each descriptor asked for (`is-number@^6.0.0`) → its entry's key; the members'
    /// `package.json` files are given.
    Yarn1(HashMap<String, String>),
    /// Cargo: each member's package name → its entry's key; the members' `Cargo.toml` files
    /// are given.
    Cargo(HashMap<String, String>),
}

impl Lock {
    /// Reads the lock file at `path` (its name says which kind) from `text`.
    pub fn parse(path: &str, text: &str) -> Result<Lock, LockError> {
        match kind_of(path) {
            Some(Kind::Npm) => npm::read(text),
            Some(Kind::Pnpm) => pnpm::read(text),
            Some(Kind::Yarn) => yarn::read(text),
            Some(Kind::Cargo) => cargo::read(text),
            Some(Kind::Uv) => uv::read(text),
            None => Err(LockError::NotALockFile),
        }
    }

    fn insert(&mut self, key: String, entry: Entry, mut deps: Vec<String>) {
        deps.sort();
        deps.dedup();
        self.deps.insert(key.clone(), deps);
        self.entries.insert(key, entry);
    }

    /// Whether the lock file does not say where its members live (Yarn 1, Cargo): their
    /// manifests must be given with [`Lock::set_importers`] before it is judged.
    pub fn wants_importers(&self) -> bool {
        self.manifests.is_some()
    }

    /// The manifest file a member of this lock file has (`package.json`, `Cargo.toml`), when
    /// it [wants importers](Lock::wants_importers).
    pub fn manifest_name(&self) -> Option<&'static str> {
        match self.manifests {
            Some(Manifests::Yarn1(_)) => Some("package.json"),
            Some(Manifests::Cargo(_)) => Some("Cargo.toml"),
            None => None,
        }
    }

    /// For a lock file that does not say where its members live: the members' manifests by
    /// folder (relative to the lock file's, `""` for the root; `None` where there is none).
    /// Yarn 1: a dependency leads to the entry its descriptor names, else to a given member of
    /// that name; one that leads nowhere makes its importer opaque (judged changed by any
    /// change of the file). Cargo: a folder's package is the member of its name; one the lock
    /// file does not hold is opaque.
    pub fn set_importers(&mut self, manifests: &[(String, Option<String>)]) {
        let descriptors = match self.manifests.clone() {
            Some(Manifests::Yarn1(d)) => d,
            Some(Manifests::Cargo(members)) => return self.set_cargo_members(&members, manifests),
            None => return,
        };
        let parsed: Vec<(&String, Value)> = manifests
            .iter()
            .filter_map(|(dir, text)| {
                let v = text
                    .as_deref()
                    .map(|t| serde_json::from_str(t).unwrap_or(Value::Null))?;
                Some((dir, v))
            })
            .collect();
        let members: HashMap<&str, &String> = parsed
            .iter()
            .filter_map(|(dir, v)| Some((v.get("name")?.as_str()?, *dir)))
            .collect();
        const KINDS: &[&str] = &["dependencies", "devDependencies", "optionalDependencies"];
        for (dir, manifest) in &parsed {
            let key = format!("importer:{dir}");
            let mut deps = Vec::new();
            if !manifest.is_object() {
                self.opaque.insert(key.clone());
            }
            for kind in KINDS {
                let Some(Value::Object(named)) = manifest.get(*kind) else {
                    continue;
                };
                for (name, range) in named {
                    let range = range.as_str().unwrap_or_default();
                    // Yarn 1 keys a `file:`/`link:` package by its path from the lock file's
                    // folder; package.json gives it from the member's.
                    let local = ["file:", "link:"].iter().find_map(|p| {
                        let path = range.strip_prefix(*p)?;
                        Some(format!("{p}{}", join(dir, path)?))
                    });
                    let descriptor = format!("{name}@{}", local.as_deref().unwrap_or(range));
                    match (descriptors.get(&descriptor), members.get(name.as_str())) {
                        (Some(found), _) => deps.push(found.clone()),
                        (None, Some(member)) => deps.push(format!("importer:{member}")),
                        (None, None) => {
                            self.opaque.insert(key.clone());
                        }
                    }
                }
            }
            let name = if dir.is_empty() {
                "root package".to_string()
            } else {
                (*dir).clone()
            };
            self.importers.insert((*dir).clone(), key.clone());
            self.insert(
                key,
                Entry {
                    name,
                    version: None,
                    content: importer_content(manifest, KINDS),
                },
                deps,
            );
        }
    }

    /// Cargo: each folder's `Cargo.toml` names its package, which is the member of that name.
    fn set_cargo_members(
        &mut self,
        members: &HashMap<String, String>,
        manifests: &[(String, Option<String>)],
    ) {
        for (dir, text) in manifests {
            let Some(text) = text else { continue };
            let name = toml::de::DeTable::parse(text).ok().and_then(|doc| {
                toml_str(doc.get_ref().get("package")?.get_ref().as_table()?, "name")
            });
            match name {
                // A workspace's own Cargo.toml without a package: nothing of its own to load.
                None if !text.contains("[package]") => {}
                Some(name) if members.contains_key(&name) => {
                    self.importers.insert(dir.clone(), members[&name].clone());
                }
                _ => {
                    let key = format!("importer:{dir}");
                    self.opaque.insert(key.clone());
                    self.importers.insert(dir.clone(), key);
                }
            }
        }
    }

    /// The importer folders (relative to the lock file's folder, `""` for it).
    #[cfg(test)]
    pub(crate) fn importer_folders(&self) -> impl Iterator<Item = &str> {
        self.importers.keys().map(String::as_str)
    }

    /// The importers whose packages code in the folder `dir` (relative to the lock file's
    /// folder) may load: the members at or below it, and every member above it up to the root.
    pub(crate) fn importers_for(&self, dir: &str) -> Vec<String> {
        let mut out: BTreeSet<String> = self.importers_above(dir).into_iter().collect();
        // At or below: a range of the sorted folders (`dir`, then `dir/…`).
        if dir.is_empty() {
            out.extend(self.importers.keys().cloned());
        } else {
            out.extend(
                self.importers
                    .range::<str, _>((std::ops::Bound::Included(dir), std::ops::Bound::Unbounded))
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(dir))
                    .filter(|k| k.len() == dir.len() || k.as_bytes()[dir.len()] == b'/')
                    .cloned(),
            );
        }
        out.into_iter().collect()
    }

    /// The importers strictly above `dir` (relative to the lock file's folder): the root and
    /// each folder holding `dir`, whose `node_modules` a program in `dir` resolves from.
    pub(crate) fn importers_above(&self, dir: &str) -> Vec<String> {
        let mut out = Vec::new();
        if dir.is_empty() {
            return out;
        }
        let mut above = dir;
        loop {
            above = above.rfind('/').map_or("", |i| &above[..i]);
            if self.importers.contains_key(above) {
                out.push(above.to_string());
            }
            if above.is_empty() {
                break;
            }
        }
        out
    }

    /// The keys of every entry the importers at `folders` reach, theirs included.
    #[cfg(test)]
    pub(crate) fn closure(&self, folders: &[String]) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = folders
            .iter()
            .filter_map(|f| self.importers.get(f).map(String::as_str))
            .collect();
        while let Some(key) = todo.pop() {
            if seen.insert(key.to_string()) {
                todo.extend(self.deps.get(key).into_iter().flatten().map(String::as_str));
            }
        }
        seen
    }

    /// Entry → the entries that depend on it.
    fn dependents(&self) -> HashMap<&str, Vec<&str>> {
        let mut out: HashMap<&str, Vec<&str>> = HashMap::new();
        for (from, tos) in &self.deps {
            for to in tos {
                out.entry(to.as_str()).or_default().push(from.as_str());
            }
        }
        out
    }
}

/// The difference between two versions of a lock file, for judging many services.
#[derive(Debug)]
pub struct LockChange<'a> {
    old: &'a Lock,
    new: &'a Lock,
    /// The keys whose entry or whose dependencies' targets differ (or that one side lacks): an
    /// importer that switches to a version another one already uses changes no entry, only
    /// where its dependency leads.
    changed: BTreeSet<String>,
    /// Importer key → the changed keys it reaches on either side (all of them past
    /// [`NAMED_CHANGES`], when it reaches any).
    reached: HashMap<String, BTreeSet<String>>,
    /// Yarn: a changed entry no importer reaches (a member not given, a link not followed, or a
    /// change past [`NAMED_CHANGES`]): no service can be told unaffected.
    unattributed: bool,
}

impl<'a> LockChange<'a> {
    pub fn new(old: &'a Lock, new: &'a Lock) -> LockChange<'a> {
        let changed: BTreeSet<String> = old
            .entries
            .keys()
            .chain(new.entries.keys())
            .filter(|k| {
                old.entries.get(*k) != new.entries.get(*k) || old.deps.get(*k) != new.deps.get(*k)
            })
            .cloned()
            .collect();
        let importer_keys: BTreeSet<&str> = old
            .importers
            .values()
            .chain(new.importers.values())
            .map(String::as_str)
            .collect();
        let roots: BTreeSet<&str> = old
            .roots
            .iter()
            .chain(&new.roots)
            .map(String::as_str)
            .collect();
        let mut reached: HashMap<String, BTreeSet<String>> = HashMap::new();
        // Backwards from the changed entries to the importers that reach them: one walk per
        // changed entry, or one for all of them past NAMED_CHANGES.
        let sources: Vec<Vec<&str>> = if changed.len() <= NAMED_CHANGES {
            changed.iter().map(|k| vec![k.as_str()]).collect()
        } else {
            vec![changed.iter().map(String::as_str).collect()]
        };
        let back = [old.dependents(), new.dependents()];
        let mut unattributed_keys = 0usize;
        for from in sources {
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            let mut todo = from.clone();
            while let Some(key) = todo.pop() {
                if !seen.insert(key) {
                    continue;
                }
                for side in &back {
                    todo.extend(side.get(key).into_iter().flatten().copied());
                }
            }
            let mut any = seen.iter().any(|k| roots.contains(k));
            for importer in seen.into_iter().filter(|k| importer_keys.contains(k)) {
                any = true;
                reached
                    .entry(importer.to_string())
                    .or_default()
                    .extend(from.iter().map(|k| k.to_string()));
            }
            if !any && changed.len() <= NAMED_CHANGES {
                unattributed_keys += 1;
            }
        }
        let unattributed = (old.attribute_every_change || new.attribute_every_change)
            && (unattributed_keys > 0 || changed.len() > NAMED_CHANGES);
        LockChange {
            old,
            new,
            changed,
            reached,
            unattributed,
        }
    }

    /// What the change does to a service whose code lies in `folders` (repository relative:
    /// its folder, and the folders its inputs name), for the lock file at `lock_path`.
    pub fn reach(&self, lock_path: &str, folders: &[&str]) -> Reach {
        self.reach_with(lock_path, folders, None)
    }

    /// [`reach`](Self::reach), and with `tools_in` also what the members above that folder
    /// install (where a program run in it, a framework's CLI, resolves from).
    fn reach_with(&self, lock_path: &str, folders: &[&str], tools_in: Option<&str>) -> Reach {
        let lock_dir = lock_path.rsplit_once('/').map_or("", |(d, _)| d);
        let inside: Vec<String> = folders
            .iter()
            .filter_map(|f| relative(f, lock_dir))
            .collect();
        let tools = tools_in.and_then(|d| relative(d, lock_dir));
        if inside.is_empty() && tools.is_none() {
            return Reach::Outside;
        }
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        for lock in [self.old, self.new] {
            let above = tools.as_deref().map(|t| lock.importers_above(t));
            for folder in inside
                .iter()
                .flat_map(|dir| lock.importers_for(dir))
                .chain(above.into_iter().flatten())
            {
                keys.extend(lock.importers.get(&folder).map(String::as_str));
            }
        }
        // No member serves the service's folders (a Rust service built from a crate its inputs
        // do not name): the lock file says nothing Ferry can tie to it, so it counts whole.
        if keys.is_empty() {
            return Reach::Outside;
        }
        if self.changed.is_empty() {
            return Reach::Unchanged;
        }
        // Yarn 1, Cargo: what cannot be followed is judged changed.
        if let Some(k) = keys
            .iter()
            .find(|k| self.old.opaque.contains(**k) || self.new.opaque.contains(**k))
        {
            let dir = k.trim_start_matches("importer:");
            let manifest = self
                .old
                .manifest_name()
                .or(self.new.manifest_name())
                .unwrap_or("package.json");
            let file = if dir.is_empty() {
                manifest.to_string()
            } else {
                format!("{dir}/{manifest}")
            };
            return Reach::Changed(vec![format!(
                "{file} names a package the lock file does not hold (a workspace package whose folder the service's inputs do not name?): judged changed"
            )]);
        }
        let rewritten = self.changed.len() > NAMED_CHANGES;
        if self.unattributed && !rewritten {
            return Reach::Changed(vec![
                "a package no workspace member leads to changed (a patched, file: or portal: package, or a member no service's folder holds): judged changed".to_string(),
            ]);
        }
        let hit: BTreeSet<&str> = keys
            .iter()
            .filter_map(|k| self.reached.get(*k))
            .flatten()
            .map(String::as_str)
            .collect();
        if hit.is_empty() && !self.unattributed {
            return Reach::Unchanged;
        }
        if rewritten {
            return Reach::Changed(vec![format!(
                "{} locked packages changed (the lock file was written anew){}",
                self.changed.len(),
                if self.unattributed {
                    ": judged changed"
                } else {
                    ""
                }
            )]);
        }
        let mut lines = self.describe(&hit);
        if lines.is_empty() {
            lines.push("dependencies resolve to other entries".to_string());
        }
        Reach::Changed(lines)
    }

    /// One line per changed package among `keys`: versions changed, added and removed first,
    /// then entries changed in place and moved.
    fn describe(&self, keys: &BTreeSet<&str>) -> Vec<String> {
        let with_version = |e: &Entry| match &e.version {
            Some(v) => format!("{} {v}", e.name),
            None => e.name.clone(),
        };
        let (mut first, mut then) = (BTreeSet::new(), BTreeSet::new());
        let mut gone: HashMap<&str, Vec<&Entry>> = HashMap::new();
        let mut added: Vec<&Entry> = Vec::new();
        for key in keys {
            match (self.old.entries.get(*key), self.new.entries.get(*key)) {
                // The same entry, its dependencies leading elsewhere: name them.
                (Some(old), Some(new)) if old == new => {
                    then.extend(self.switched(key));
                }
                (Some(old), Some(new)) => {
                    match version_change(&new.name, old, new) {
                        Some(line) => first.insert(line),
                        None => then.insert(format!("{} (changed)", new.name)),
                    };
                }
                (Some(old), None) => gone.entry(old.name.as_str()).or_default().push(old),
                (None, Some(new)) => added.push(new),
                (None, None) => {}
            }
        }
        // An entry under another key (hoisted, nested, or another peer set) replaced the one
        // of its name that is gone: of its version first, so that two versions whose peers both
        // changed are not paired crosswise.
        added.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        for new in added {
            let replaced = gone.get_mut(new.name.as_str()).and_then(|olds| {
                let i = olds
                    .iter()
                    .position(|o| o.version == new.version)
                    .unwrap_or(olds.len().checked_sub(1)?);
                Some(olds.remove(i))
            });
            match replaced {
                Some(old) => match version_change(&new.name, old, new) {
                    Some(line) => first.insert(line),
                    None if old.content == new.content => {
                        then.insert(format!("{} (moved)", new.name))
                    }
                    None => then.insert(format!("{} (changed)", new.name)),
                },
                None => first.insert(format!("{} (added)", with_version(new))),
            };
        }
        for old in gone.into_values().flatten() {
            first.insert(format!("{} (removed)", with_version(old)));
        }
        first.into_iter().chain(then).collect()
    }
}

/// The lock file names of the package managers that share `path`'s packages: a folder holding
/// one of these installs from it (npm, pnpm and Yarn install the same `node_modules`).
fn same_family(path: &str) -> &'static [&'static str] {
    match kind_of(path) {
        Some(Kind::Npm | Kind::Pnpm | Kind::Yarn) => &[
            "package-lock.json",
            "npm-shrinkwrap.json",
            "pnpm-lock.yaml",
            "yarn.lock",
        ],
        Some(Kind::Cargo) => &["Cargo.lock"],
        Some(Kind::Uv) => &["uv.lock"],
        None => &[],
    }
}

/// The folders a service's code lies in, for [`LockChange::reach`]: its folder and the folders
/// its `inputs` name (a glob's fixed part, `libs/util` of `libs/util/**`; not a glob over the
/// whole tree, which names no code folder).
pub fn service_folders(dir: &str, inputs: &[String]) -> Vec<String> {
    let mut out = vec![dir.to_string()];
    out.extend(
        inputs
            .iter()
            .map(|g| crate::snapshot::literal_prefix(g))
            .filter(|p| !p.is_empty() && !is_lock_file(p)),
    );
    out.sort();
    out.dedup();
    out
}

impl LockChange<'_> {
    /// [`reach`](Self::reach) of the service whose folder is `dir` and whose code lies in
    /// `folders` ([`service_folders`]), leaving out the folders that install from a lock file of
    /// their own ([`served_elsewhere`](Self::served_elsewhere)), and all of them when the service
    /// itself does (a `file:` package, a Cargo path dependency, it installs from its own lock
    /// file too) — but for a Node.js lock file (npm, pnpm, Yarn) only its packages (a folder
    /// holding a `package.json`): plain code it bundles by a relative import (`libs/`, no
    /// `package.json`; Ferry does not tell it from a folder of data) `require`s from the
    /// `node_modules` above it, the one this lock file installs. With `tools_from_above` (a
    /// Serverless service whose own `package.json`, if any, names no framework CLI: the CLI and
    /// its plugins come from a `node_modules` above its folder), what the members above the
    /// service's folder install counts too, for a Node.js lock file. `is_file` says whether a
    /// repository-relative path is a file where the lock file was read.
    pub fn reach_service(
        &self,
        lock_path: &str,
        dir: &str,
        folders: &[&str],
        tools_from_above: bool,
        is_file: &dyn Fn(&str) -> bool,
    ) -> Reach {
        let family = same_family(lock_path);
        let has_own_lock = |folder: &str| {
            family
                .iter()
                .any(|name| is_file(&format!("{folder}/{name}")))
        };
        let own = self.served_elsewhere(lock_path, dir, &has_own_lock);
        let node = matches!(
            kind_of(lock_path),
            Some(Kind::Npm | Kind::Pnpm | Kind::Yarn)
        );
        if own && !node {
            return Reach::Unchanged;
        }
        let served: Vec<&str> = folders
            .iter()
            .copied()
            .filter(|f| {
                if own && (*f == dir || is_file(&format!("{f}/package.json"))) {
                    return false;
                }
                !self.served_elsewhere(lock_path, f, &has_own_lock)
            })
            .collect();
        let tools = (tools_from_above && node).then_some(dir);
        if served.is_empty() && tools.is_none() {
            Reach::Unchanged
        } else {
            self.reach_with(lock_path, &served, tools)
        }
    }

    /// Whether the code in `folder` (repository relative) installs from a lock file of its own
    /// rather than from the one at `lock_path`: it lies below that file's folder, a folder
    /// between them (or `folder` itself) holds a lock file of the same family (`has_own_lock`,
    /// given a repository-relative folder), and neither side of this lock file has a member at,
    /// above (below its own folder) or below `folder` — a member of a workspace installs from
    /// the workspace's lock file even with a stray one of its own. A service each of whose
    /// folders does is not reached by the file: an npm project per service beside a root lock
    /// file that holds only the repository's tools.
    fn served_elsewhere(
        &self,
        lock_path: &str,
        folder: &str,
        has_own_lock: &dyn Fn(&str) -> bool,
    ) -> bool {
        let lock_dir = lock_path.rsplit_once('/').map_or("", |(d, _)| d);
        let Some(rel) = relative(folder, lock_dir).filter(|r| !r.is_empty()) else {
            return false;
        };
        if [self.old, self.new]
            .iter()
            .any(|l| l.importers_for(&rel).iter().any(|f| !f.is_empty()))
        {
            return false;
        }
        // `folder` and each folder above it, up to (not including) the lock file's.
        let mut at = folder.trim_end_matches('/').to_string();
        loop {
            if at == lock_dir || at.is_empty() {
                return false;
            }
            if has_own_lock(&at) {
                return true;
            }
            at = at
                .rsplit_once('/')
                .map_or(String::new(), |(p, _)| p.to_string());
        }
    }

    /// The dependencies of the entry at `key` that lead elsewhere than they did, paired by
    /// name: `is-number 6.0.0 → 7.0.0 (for services/b)`.
    fn switched(&self, key: &str) -> Vec<String> {
        let targets = |lock: &Lock| -> BTreeSet<String> {
            lock.deps.get(key).into_iter().flatten().cloned().collect()
        };
        let (was, is) = (targets(self.old), targets(self.new));
        let holder = self
            .new
            .entries
            .get(key)
            .map_or(key.to_string(), |e| e.name.clone());
        let entry = |lock: &Lock, k: &str| lock.entries.get(k).cloned();
        let mut out = Vec::new();
        // Only switches between entries both sides hold: one added or removed is named as such.
        let both =
            |k: &&String| self.old.entries.contains_key(*k) && self.new.entries.contains_key(*k);
        let mut gone: Vec<Entry> = was
            .difference(&is)
            .filter(both)
            .filter_map(|k| entry(self.old, k))
            .collect();
        for k in is.difference(&was).filter(both) {
            let Some(new) = entry(self.new, k) else {
                continue;
            };
            let line = match gone.iter().position(|e| e.name == new.name) {
                Some(i) => version_change(&new.name, &gone.remove(i), &new)
                    .unwrap_or_else(|| format!("{} (other peers)", new.name)),
                None => format!("{} (added)", new.name),
            };
            out.push(format!("{line} (for {holder})"));
        }
        out.extend(
            gone.iter()
                .map(|e| format!("{} (removed, for {holder})", e.name)),
        );
        out
    }
}

/// For a lock file that does not say where its members live (Yarn 1, Cargo): the folders
/// whose `manifest` (`package.json`, `Cargo.toml`) may hold a member serving code in `folders`
/// (repository relative): each folder inside the lock file's and every folder above it up to
/// the lock file's. As (relative to the lock file's folder, the manifest's repository-relative
/// path).
pub fn importer_folders_of(
    lock_path: &str,
    folders: &[String],
    manifest: &str,
) -> Vec<(String, String)> {
    let lock_dir = lock_path.rsplit_once('/').map_or("", |(d, _)| d);
    let mut out: BTreeSet<String> = BTreeSet::new();
    for f in folders {
        let Some(mut rel) = relative(f, lock_dir) else {
            continue;
        };
        loop {
            out.insert(rel.clone());
            match rel.rfind('/') {
                Some(i) => rel.truncate(i),
                None if rel.is_empty() => break,
                None => rel.clear(),
            }
        }
    }
    out.into_iter()
        .map(|rel| {
            let file = [lock_dir, rel.as_str(), manifest]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            (rel, file)
        })
        .collect()
}

/// What a change of a lock file does to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The service's folders are outside the lock file's folder: it says nothing of them.
    Outside,
    /// Nothing the service installs changed.
    Unchanged,
    /// What it installs changed: the packages, never empty.
    Changed(Vec<String>),
}

/// [`LockChange::reach`] of one service whose code lies in `folder`, for a single question.
#[cfg(test)]
pub(crate) fn reach(old: &Lock, new: &Lock, lock_path: &str, folder: &str) -> Reach {
    LockChange::new(old, new).reach(lock_path, &[folder])
}

/// `dir` relative to `lock_dir` (both repository relative): `""` for the folder itself, `None`
/// outside it.
fn relative(dir: &str, lock_dir: &str) -> Option<String> {
    let dir = dir.trim_end_matches('/');
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

/// `@scope/name@1.0.0` as (`@scope/name`, `1.0.0`): a name holds no `@` past its scope's, so
/// the rest is all after the first (`tarpkg@file:vendor/@v/tarpkg.tgz`). Keys of pnpm and
/// descriptors of Yarn alike.
pub(crate) fn split_name(key: &str) -> (&str, Option<&str>) {
    match key.get(1..).and_then(|rest| rest.find('@')) {
        Some(i) => (&key[..=i], Some(&key[i + 2..])),
        None => (key, None),
    }
}

/// Of an entry's fields, drops the download address beside a checksum: the checksum names the
/// bytes, where they were downloaded from (a registry mirror) does not.
pub(crate) fn drop_download_address(fields: &mut serde_json::Map<String, Value>) {
    if fields.contains_key("integrity") {
        fields.remove("resolved");
    }
}

/// The text of `key` in a TOML table, when it is a string.
pub(crate) fn toml_str(table: &toml::de::DeTable<'_>, key: &str) -> Option<String> {
    table
        .get(key)
        .and_then(|v| v.get_ref().as_str())
        .map(String::from)
}

/// `name a → b` when the versions differ.
fn version_change(name: &str, old: &Entry, new: &Entry) -> Option<String> {
    match (&old.version, &new.version) {
        (Some(a), Some(b)) if a != b => Some(format!("{name} {a} → {b}")),
        _ => None,
    }
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

/// Of an importer, only which packages it depends on, by kind: a changed range, a version, a
/// license or the list of workspaces install nothing new (what its dependencies resolve to is
/// judged by their own entries).
pub(crate) fn importer_content(entry: &Value, kinds: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for kind in kinds {
        if let Some(Value::Object(deps)) = entry.get(*kind) {
            let names: Vec<Value> = deps.keys().cloned().map(Value::String).collect();
            out.insert((*kind).to_string(), Value::Array(names));
        }
    }
    Value::Object(out)
}
