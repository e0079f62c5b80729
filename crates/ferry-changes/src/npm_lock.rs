//! Which services a change to an npm lock file reaches.
//!
//! A root `package-lock.json` of npm workspaces changes whenever any member's dependencies do.
//! Taken as a whole file it either redeploys every service (a global input) or none it does not
//! name: one member's upgrade of `left-pad` would redeploy them all, or a shared package's
//! upgrade would reach none. Read as what it is, the lock file says exactly which installed
//! packages each workspace member (an *importer*) reaches: its dependencies, followed through
//! node's resolution (`services/a/node_modules/x`, then `services/node_modules/x`, then
//! `node_modules/x`) and through links to other members. A service is reached by a change when
//! an entry of that closure differs between the two lock files.
//!
//! Only lock files of version 2 and 3 (npm 7 and later, with a `packages` map) are read; the
//! caller treats anything else as a change of the whole file. The root importer (the lock
//! file's folder, `""`) is part of every member's closure: its packages (build tools, the
//! Serverless Framework and its plugins) are installed for all of them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// File names npm writes its lock file under.
pub const NPM_LOCK_FILES: &[&str] = &["package-lock.json", "npm-shrinkwrap.json"];

/// A lock file is read only up to this size; a larger one counts as changed as a whole.
pub const MAX_LOCK_FILE: u64 = 256 * 1024 * 1024;

/// Whether `path` (repository relative) names an npm lock file.
pub fn is_npm_lock(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    NPM_LOCK_FILES.contains(&name)
}

/// Why a lock file is not read (the caller then counts the whole file as changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    #[error("it is not JSON: {0}")]
    NotJson(String),
    #[error("lockfileVersion {0} has no `packages` map (npm 7 and later write version 2 or 3)")]
    OldVersion(String),
    #[error("its `packages` is not a map of entries")]
    NoPackages,
}

/// An npm lock file of version 2 or 3.
#[derive(Debug, Clone)]
pub struct NpmLock {
    packages: Map<String, Value>,
}

/// The entries a set of importers reaches: entry key → the entry as it matters to what is
/// installed (without the flags that say which importers use it, which change with others'
/// dependencies).
pub type Closure = BTreeMap<String, Value>;

/// Flags npm sets by how the whole tree uses an entry, not by what the entry installs.
const USAGE_FLAGS: &[&str] = &["dev", "optional", "devOptional", "peer", "extraneous"];

impl NpmLock {
    pub fn parse(text: &str) -> Result<NpmLock, LockError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| LockError::NotJson(e.to_string()))?;
        let version = doc.get("lockfileVersion").and_then(Value::as_u64);
        if !matches!(version, Some(2 | 3)) {
            let shown = doc
                .get("lockfileVersion")
                .map_or_else(|| "(none)".to_string(), Value::to_string);
            return Err(LockError::OldVersion(shown));
        }
        match doc.get("packages") {
            Some(Value::Object(packages)) if packages.values().all(Value::is_object) => {
                Ok(NpmLock {
                    packages: packages.clone(),
                })
            }
            _ => Err(LockError::NoPackages),
        }
    }

    /// The importers: the lock file's own folder (`""`) and each workspace member's folder,
    /// relative to the lock file's folder.
    pub fn importers(&self) -> impl Iterator<Item = &str> {
        self.packages
            .keys()
            .map(String::as_str)
            .filter(|k| !k.split('/').any(|c| c == "node_modules"))
    }

    /// The importers that serve the folder `dir` (relative to the lock file's folder, `""` for
    /// that folder itself): the root, and the members at or below `dir`, else the nearest one
    /// above it. A folder outside the lock file's (`../x`) gets none.
    pub fn importers_for(&self, dir: &str) -> Option<Vec<String>> {
        if dir.starts_with("../") || dir == ".." {
            return None;
        }
        let under = |k: &str| dir.is_empty() || k == dir || k.starts_with(&format!("{dir}/"));
        let mut found: BTreeSet<String> = self
            .importers()
            .filter(|k| under(k))
            .map(String::from)
            .collect();
        if found.is_empty() {
            let above = self
                .importers()
                .filter(|k| k.is_empty() || dir.starts_with(&format!("{k}/")))
                .max_by_key(|k| k.len());
            found.extend(above.map(String::from));
        }
        if self.packages.contains_key("") {
            found.insert(String::new());
        }
        Some(found.into_iter().collect())
    }

    /// Every entry `importers` reach, with their own entries.
    pub fn closure(&self, importers: &[String]) -> Closure {
        let mut out = Closure::new();
        let mut todo: Vec<String> = importers.to_vec();
        while let Some(key) = todo.pop() {
            if out.contains_key(&key) {
                continue;
            }
            let Some(entry) = self.packages.get(&key) else {
                continue;
            };
            let mut kept = entry.clone();
            if let Some(fields) = kept.as_object_mut() {
                for flag in USAGE_FLAGS {
                    fields.remove(*flag);
                }
            }
            out.insert(key.clone(), kept);
            if entry.get("link").and_then(Value::as_bool) == Some(true) {
                if let Some(target) = entry.get("resolved").and_then(Value::as_str) {
                    todo.push(target.to_string());
                }
                continue;
            }
            // An importer installs its devDependencies too; an installed package does not.
            let importer = !key.split('/').any(|c| c == "node_modules");
            let mut kinds = vec!["dependencies", "optionalDependencies", "peerDependencies"];
            if importer {
                kinds.push("devDependencies");
            }
            for kind in kinds {
                let Some(Value::Object(deps)) = entry.get(kind) else {
                    continue;
                };
                for name in deps.keys() {
                    if let Some(found) = self.resolve(&key, name) {
                        todo.push(found);
                    }
                }
            }
        }
        out
    }

    /// The entry node's resolution finds for `name` required from the entry at `from`: in
    /// `<from>/node_modules`, then in each folder above it.
    fn resolve(&self, from: &str, name: &str) -> Option<String> {
        let mut base = from;
        loop {
            let candidate = if base.is_empty() {
                format!("node_modules/{name}")
            } else {
                format!("{base}/node_modules/{name}")
            };
            if self.packages.contains_key(&candidate) {
                return Some(candidate);
            }
            if base.is_empty() {
                return None;
            }
            base = base.rfind('/').map_or("", |i| &base[..i]);
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
pub fn reach(old: &NpmLock, new: &NpmLock, lock_path: &str, service_dir: &str) -> Reach {
    let lock_dir = lock_path.rsplit_once('/').map_or("", |(d, _)| d);
    let Some(dir) = relative(service_dir, lock_dir) else {
        return Reach::Outside;
    };
    let (Some(mut importers), Some(more)) = (old.importers_for(&dir), new.importers_for(&dir))
    else {
        return Reach::Outside;
    };
    importers.extend(more);
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

/// What differs between two closures, one line per package, sorted: `left-pad 1.3.0 → 1.3.1`,
/// `is-odd 3.0.1 (added)`, `ms 2.1.3 (removed)`, `services/a (changed)` for an importer or an
/// entry whose version stayed. An entry that moved (hoisted, or nested under another package)
/// is paired with the entry of its name it replaced. Empty when the closures are the same, and
/// possibly when only places in `node_modules` changed.
pub fn closure_changes(base: &Closure, head: &Closure) -> Vec<String> {
    let name = |key: &str| -> String {
        match key.rfind("node_modules/") {
            Some(i) => key[i + "node_modules/".len()..].to_string(),
            None if key.is_empty() => "root package".to_string(),
            None => key.to_string(),
        }
    };
    let version = |v: &Value| v.get("version").and_then(Value::as_str).map(String::from);
    let changed = |key: &str, old: &Value, new: &Value| match (version(old), version(new)) {
        (Some(a), Some(b)) if a != b => format!("{} {a} → {b}", name(key)),
        _ => format!("{} (changed)", name(key)),
    };
    let mut out = BTreeSet::new();
    for (key, old) in base {
        if let Some(new) = head.get(key)
            && new != old
        {
            out.insert(changed(key, old, new));
        }
    }
    // Entries only one side has: paired by name where one replaced another.
    let mut gone: Vec<(&String, &Value)> = base
        .iter()
        .filter(|(k, _)| !head.contains_key(*k))
        .collect();
    for (key, new) in head.iter().filter(|(k, _)| !base.contains_key(*k)) {
        match gone.iter().position(|(k, _)| name(k) == name(key)) {
            Some(i) => {
                let (_, old) = gone.remove(i);
                if old != new {
                    out.insert(changed(key, old, new));
                }
            }
            None => {
                let v = version(new).map(|v| format!(" {v}")).unwrap_or_default();
                out.insert(format!("{}{v} (added)", name(key)));
            }
        }
    }
    for (key, old) in gone {
        let v = version(old).map(|v| format!(" {v}")).unwrap_or_default();
        out.insert(format!("{}{v} (removed)", name(key)));
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A workspace as `npm install` of npm 11 writes it: the root (devDependency `ms`), members
    /// `services/a` (left-pad, and the member `lib` through a link) and `services/b` (is-odd,
    /// whose own is-number 6 is nested under it), and `packages/lib` (is-number 7, hoisted).
    fn workspace() -> Value {
        json!({
            "name": "shop",
            "lockfileVersion": 3,
            "requires": true,
            "packages": {
                "": {"name": "shop", "workspaces": ["services/*", "packages/*"], "devDependencies": {"ms": "2.1.3"}},
                "node_modules/a": {"resolved": "services/a", "link": true},
                "node_modules/b": {"resolved": "services/b", "link": true},
                "node_modules/lib": {"resolved": "packages/lib", "link": true},
                "node_modules/is-number": {"version": "7.0.0", "integrity": "sha512-n7"},
                "node_modules/is-odd": {"version": "3.0.1", "integrity": "sha512-o301", "dependencies": {"is-number": "^6.0.0"}},
                "node_modules/is-odd/node_modules/is-number": {"version": "6.0.0", "integrity": "sha512-n6"},
                "node_modules/left-pad": {"version": "1.3.0", "integrity": "sha512-l130"},
                "node_modules/ms": {"version": "2.1.3", "integrity": "sha512-m213", "dev": true},
                "packages/lib": {"version": "1.0.0", "dependencies": {"is-number": "7.0.0"}},
                "services/a": {"version": "1.0.0", "dependencies": {"left-pad": "1.3.0", "lib": "*"}},
                "services/b": {"version": "1.0.0", "dependencies": {"is-odd": "3.0.1"}}
            }
        })
    }

    fn lock(v: &Value) -> NpmLock {
        NpmLock::parse(&v.to_string()).unwrap()
    }

    fn edit(f: impl FnOnce(&mut Map<String, Value>)) -> NpmLock {
        let mut v = workspace();
        f(v["packages"].as_object_mut().unwrap());
        lock(&v)
    }

    fn keys(c: &Closure) -> Vec<&str> {
        c.keys().map(String::as_str).collect()
    }

    #[test]
    fn a_members_closure_follows_node_resolution_links_and_the_root() {
        let l = lock(&workspace());
        assert_eq!(
            l.importers().collect::<Vec<_>>(),
            ["", "packages/lib", "services/a", "services/b"]
        );
        let a = l.importers_for("services/a").unwrap();
        assert_eq!(a, ["", "services/a"]);
        assert_eq!(
            keys(&l.closure(&a)),
            [
                "",
                "node_modules/is-number",
                "node_modules/left-pad",
                "node_modules/lib",
                "node_modules/ms",
                "packages/lib",
                "services/a"
            ],
            "left-pad hoisted, lib through its link, lib's is-number, the root's ms"
        );
        let b = l.importers_for("services/b").unwrap();
        assert_eq!(
            keys(&l.closure(&b)),
            [
                "",
                "node_modules/is-odd",
                "node_modules/is-odd/node_modules/is-number",
                "node_modules/ms",
                "services/b"
            ],
            "is-odd's own is-number 6 is nested under it, not the hoisted 7"
        );
        // A folder that is no member takes the nearest importer above it; the lock file's
        // folder serves everything below it; a folder outside it nothing.
        assert_eq!(l.importers_for("services/c").unwrap(), [""]);
        assert_eq!(l.importers_for("services").unwrap().len(), 3);
        assert_eq!(l.importers_for("../x"), None);
    }

    #[test]
    fn a_change_reaches_only_the_services_whose_packages_it_changes() {
        let old = lock(&workspace());
        let left_pad = edit(|p| {
            p["node_modules/left-pad"] = json!({"version": "1.3.1", "integrity": "sha512-l131"});
            p["services/a"]["dependencies"]["left-pad"] = json!("1.3.1");
        });
        assert_eq!(
            reach(&old, &left_pad, "package-lock.json", "services/a"),
            Reach::Changed(vec![
                "left-pad 1.3.0 → 1.3.1".into(),
                "services/a (changed)".into()
            ])
        );
        assert_eq!(
            reach(&old, &left_pad, "package-lock.json", "services/b"),
            Reach::Unchanged
        );
        // A package of the shared member reaches the service that links it.
        let is_number = edit(|p| {
            p["node_modules/is-number"] = json!({"version": "7.0.1", "integrity": "sha512-n701"});
        });
        assert_eq!(
            reach(&old, &is_number, "package-lock.json", "services/a"),
            Reach::Changed(vec!["is-number 7.0.0 → 7.0.1".into()])
        );
        assert_eq!(
            reach(&old, &is_number, "package-lock.json", "services/b"),
            Reach::Unchanged,
            "b's is-number is its nested 6.0.0"
        );
        // The root's packages are every member's.
        let ms = edit(|p| {
            p["node_modules/ms"] =
                json!({"version": "2.1.2", "integrity": "sha512-m212", "dev": true});
        });
        for s in ["services/a", "services/b", "packages/lib"] {
            assert_eq!(
                reach(&old, &ms, "package-lock.json", s),
                Reach::Changed(vec!["ms 2.1.3 → 2.1.2".into()]),
                "{s}"
            );
        }
        // Which importers use an entry (its flags) is no change of what it installs.
        let flags = edit(|p| {
            p["node_modules/left-pad"]["dev"] = json!(true);
            p["node_modules/ms"].as_object_mut().unwrap().remove("dev");
        });
        assert_eq!(
            reach(&old, &flags, "package-lock.json", "services/a"),
            Reach::Unchanged
        );
        // A lock file in another folder says nothing of a service outside it.
        assert_eq!(
            reach(&old, &left_pad, "tools/package-lock.json", "services/a"),
            Reach::Outside
        );
        assert_eq!(
            reach(&old, &left_pad, "services/package-lock.json", "services/a"),
            Reach::Unchanged,
            "relative to services/, the member would be `a`, which this lock file lacks"
        );
    }

    #[test]
    fn moved_added_and_removed_entries_are_named_by_package() {
        let old = lock(&workspace());
        // b moves to is-odd 3.0.0, now nested under b, and drops the nested is-number to b.
        let moved = edit(|p| {
            p.remove("node_modules/is-odd");
            p.remove("node_modules/is-odd/node_modules/is-number");
            p.insert(
                "services/b/node_modules/is-odd".into(),
                json!({"version": "3.0.0", "integrity": "sha512-o300", "dependencies": {"is-number": "^6.0.0"}}),
            );
            p.insert(
                "services/b/node_modules/is-number".into(),
                json!({"version": "6.0.0", "integrity": "sha512-n6"}),
            );
            p.insert(
                "node_modules/left-pad/node_modules/extra".into(),
                json!({"version": "1.0.0"}),
            );
            p["services/b"]["dependencies"]["is-odd"] = json!("3.0.0");
        });
        assert_eq!(
            reach(&old, &moved, "package-lock.json", "services/b"),
            Reach::Changed(vec![
                "is-odd 3.0.1 → 3.0.0".into(),
                "services/b (changed)".into()
            ]),
            "is-number 6.0.0 moved unchanged: not named"
        );
        let gone = edit(|p| {
            p.remove("node_modules/left-pad");
            p["services/a"]["dependencies"] = json!({"lib": "*", "right-pad": "1.0.0"});
            p.insert(
                "node_modules/right-pad".into(),
                json!({"version": "1.0.0", "integrity": "sha512-r"}),
            );
        });
        assert_eq!(
            reach(&old, &gone, "package-lock.json", "services/a"),
            Reach::Changed(vec![
                "left-pad 1.3.0 (removed)".into(),
                "right-pad 1.0.0 (added)".into(),
                "services/a (changed)".into()
            ])
        );
    }

    #[test]
    fn only_lock_files_of_version_2_and_3_are_read() {
        assert_eq!(
            NpmLock::parse(r#"{"lockfileVersion": 1, "dependencies": {}}"#).unwrap_err(),
            LockError::OldVersion("1".into())
        );
        assert_eq!(
            NpmLock::parse(r#"{"packages": {}}"#).unwrap_err(),
            LockError::OldVersion("(none)".into())
        );
        assert_eq!(
            NpmLock::parse(r#"{"lockfileVersion": 3, "packages": {"": 1}}"#).unwrap_err(),
            LockError::NoPackages
        );
        assert!(matches!(
            NpmLock::parse("{\"lockfileVersion\": 3, <<<<<<< HEAD").unwrap_err(),
            LockError::NotJson(_)
        ));
        assert!(is_npm_lock("package-lock.json"));
        assert!(is_npm_lock("apps/web/npm-shrinkwrap.json"));
        assert!(!is_npm_lock("yarn.lock"));
        assert!(!is_npm_lock("my-package-lock.json"));
    }

    #[test]
    fn a_link_cycle_and_a_missing_dependency_end_the_walk() {
        let l = edit(|p| {
            p["packages/lib"]["dependencies"]["a"] = json!("*");
            p["services/a"]["dependencies"]["not-installed"] = json!("1");
        });
        let a = l.importers_for("services/a").unwrap();
        let c = l.closure(&a);
        assert!(c.contains_key("node_modules/a") && c.contains_key("services/a"));
        assert!(!c.keys().any(|k| k.contains("not-installed")));
    }
}
