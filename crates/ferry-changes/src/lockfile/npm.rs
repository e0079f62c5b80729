//! npm's lock file, `package-lock.json` (or `npm-shrinkwrap.json`) of version 2 or 3: a
//! `packages` map from install paths (`node_modules/x`, `node_modules/x/node_modules/y`) and
//! importer folders (`""`, `services/a`) to entries. A dependency required from the entry at
//! `p` is found as node finds it: `p/node_modules/<name>`, then in each folder above. A
//! `link: true` entry leads to the member folder its `resolved` names.

use serde_json::{Map, Value};

use super::{Closure, Entry, LockError};

/// An npm lock file of version 2 or 3.
#[derive(Debug, Clone)]
pub struct NpmLock {
    packages: Map<String, Value>,
}

/// Flags npm sets by how the whole tree uses an entry, not by what the entry installs.
const USAGE_FLAGS: &[&str] = &["dev", "optional", "devOptional", "peer", "extraneous"];

fn is_importer(key: &str) -> bool {
    !key.split('/').any(|c| c == "node_modules")
}

impl NpmLock {
    pub fn parse(text: &str) -> Result<NpmLock, LockError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| LockError::Unparsable(e.to_string()))?;
        let version = doc.get("lockfileVersion").and_then(Value::as_u64);
        if !matches!(version, Some(2 | 3)) {
            let shown = doc
                .get("lockfileVersion")
                .map_or_else(|| "(none)".to_string(), Value::to_string);
            return Err(LockError::Version(shown));
        }
        match doc.get("packages") {
            Some(Value::Object(packages)) if packages.values().all(Value::is_object) => {
                Ok(NpmLock {
                    packages: packages.clone(),
                })
            }
            _ => Err(LockError::Malformed("`packages`")),
        }
    }

    /// The importers: the lock file's own folder (`""`) and each workspace member's folder,
    /// relative to the lock file's folder.
    pub fn importers(&self) -> impl Iterator<Item = &str> {
        self.packages
            .keys()
            .map(String::as_str)
            .filter(|k| is_importer(k))
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
            let mut content = entry.clone();
            if let Some(fields) = content.as_object_mut() {
                for flag in USAGE_FLAGS {
                    fields.remove(*flag);
                }
            }
            let name = match key.rfind("node_modules/") {
                Some(i) => key[i + "node_modules/".len()..].to_string(),
                None if key.is_empty() => "root package".to_string(),
                None => key.clone(),
            };
            let version = entry
                .get("version")
                .and_then(Value::as_str)
                .map(String::from);
            out.insert(
                key.clone(),
                Entry {
                    name,
                    version,
                    content,
                },
            );
            if entry.get("link").and_then(Value::as_bool) == Some(true) {
                if let Some(target) = entry.get("resolved").and_then(Value::as_str) {
                    todo.push(target.to_string());
                }
                continue;
            }
            // An importer installs its devDependencies too; an installed package does not.
            let mut kinds = vec!["dependencies", "optionalDependencies", "peerDependencies"];
            if is_importer(&key) {
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
    /// `<from>/node_modules`, then in each folder above.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Lock, Reach, reach};
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

    fn lock(v: &Value) -> Lock {
        Lock::parse("package-lock.json", &v.to_string()).unwrap()
    }

    fn edit(f: impl FnOnce(&mut Map<String, Value>)) -> Lock {
        let mut v = workspace();
        f(v["packages"].as_object_mut().unwrap());
        lock(&v)
    }

    fn keys(c: &super::super::Closure) -> Vec<&str> {
        c.keys().map(String::as_str).collect()
    }

    #[test]
    fn a_members_closure_follows_node_resolution_links_and_the_root() {
        let l = lock(&workspace());
        let Lock::Npm(npm) = &l else { unreachable!() };
        assert_eq!(
            npm.importers().collect::<Vec<_>>(),
            ["", "packages/lib", "services/a", "services/b"]
        );
        let a = l.importers_for("services/a");
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
        let b = l.importers_for("services/b");
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
        assert_eq!(l.importers_for("services/c"), [""]);
        assert_eq!(l.importers_for("services").len(), 3);
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
            LockError::Version("1".into())
        );
        assert_eq!(
            NpmLock::parse(r#"{"packages": {}}"#).unwrap_err(),
            LockError::Version("(none)".into())
        );
        assert_eq!(
            NpmLock::parse(r#"{"lockfileVersion": 3, "packages": {"": 1}}"#).unwrap_err(),
            LockError::Malformed("`packages`")
        );
        assert!(matches!(
            NpmLock::parse("{\"lockfileVersion\": 3, <<<<<<< HEAD").unwrap_err(),
            LockError::Unparsable(_)
        ));
        assert!(super::super::is_lock_file("package-lock.json"));
        assert!(super::super::is_lock_file("apps/web/npm-shrinkwrap.json"));
        assert!(super::super::is_lock_file("pnpm-lock.yaml"));
        assert!(!super::super::is_lock_file("yarn.lock"));
        assert!(!super::super::is_lock_file("my-package-lock.json"));
    }

    #[test]
    fn a_link_cycle_and_a_missing_dependency_end_the_walk() {
        let l = edit(|p| {
            p["packages/lib"]["dependencies"]["a"] = json!("*");
            p["services/a"]["dependencies"]["not-installed"] = json!("1");
        });
        let a = l.importers_for("services/a");
        let c = l.closure(&a);
        assert!(c.contains_key("node_modules/a") && c.contains_key("services/a"));
        assert!(!c.keys().any(|k| k.contains("not-installed")));
    }
}
