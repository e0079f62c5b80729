//! npm's lock file, `package-lock.json` (or `npm-shrinkwrap.json`) of version 2 or 3: a
//! `packages` map from install paths (`node_modules/x`, `node_modules/x/node_modules/y`) and
//! importer folders (`""`, `services/a`) to entries. A dependency required from the entry at
//! `p` is found as node finds it: `p/node_modules/<name>`, then in each folder above. A
//! `link: true` entry leads to the member folder its `resolved` names.

use serde_json::{Map, Value};

use super::{Entry, Lock, LockError, drop_download_address, importer_content};

/// Flags npm sets by how the whole tree uses an entry, not by what the entry installs.
const USAGE_FLAGS: &[&str] = &["dev", "optional", "devOptional", "peer", "extraneous"];

/// Keys nested deeper than this (`node_modules/a/node_modules/b/…`) are not followed: no real
/// tree goes near it, and a hostile one would make each lookup walk the whole depth.
const MAX_DEPTH: usize = 64;

fn is_importer(key: &str) -> bool {
    !key.split('/').any(|c| c == "node_modules")
}

/// Reads an npm lock file of version 2 or 3.
pub(super) fn read(text: &str) -> Result<Lock, LockError> {
    let mut doc: Value =
        serde_json::from_str(text).map_err(|e| LockError::Unparsable(e.to_string()))?;
    let version = doc.get("lockfileVersion").and_then(Value::as_u64);
    if !matches!(version, Some(2 | 3)) {
        let shown = doc
            .get("lockfileVersion")
            .map_or_else(|| "(none)".to_string(), Value::to_string);
        return Err(LockError::Version(shown));
    }
    let packages = match doc.get_mut("packages").map(Value::take) {
        Some(Value::Object(p)) if p.values().all(Value::is_object) => p,
        _ => return Err(LockError::Malformed("`packages`")),
    };
    // What each entry depends on, resolved while all entries are there to look up; then each
    // entry's content is moved out, not copied (a large lock file has thousands).
    let mut candidate = String::new();
    let mut deps = Vec::with_capacity(packages.len());
    for (key, entry) in &packages {
        let depth = key.split('/').filter(|c| *c == "node_modules").count();
        if depth > MAX_DEPTH {
            return Err(LockError::TooDeep(depth));
        }
        deps.push(
            if entry.get("link").and_then(Value::as_bool) == Some(true) {
                entry
                    .get("resolved")
                    .and_then(Value::as_str)
                    .map(|target| vec![target.to_string()])
                    .unwrap_or_default()
            } else {
                // An importer installs its devDependencies too; an installed package does not.
                let kinds: &[&str] = if is_importer(key) {
                    IMPORTER_KINDS
                } else {
                    &["dependencies", "optionalDependencies", "peerDependencies"]
                };
                kinds
                    .iter()
                    .filter_map(|kind| entry.get(*kind).and_then(Value::as_object))
                    .flat_map(|deps| deps.keys())
                    .filter_map(|dep| resolve(&packages, key, dep, &mut candidate))
                    .collect()
            },
        );
    }
    let mut lock = Lock::default();
    for ((key, mut entry), deps) in packages.into_iter().zip(deps) {
        let importer = is_importer(&key);
        if importer {
            lock.importers.insert(key.clone(), key.clone());
        }
        let name = match key.rfind("node_modules/") {
            Some(i) => key[i + "node_modules/".len()..].to_string(),
            None if key.is_empty() => "root package".to_string(),
            None => key.clone(),
        };
        // An importer's own version installs nothing.
        let version = entry
            .get("version")
            .and_then(Value::as_str)
            .filter(|_| !importer)
            .map(String::from);
        let content = if importer {
            importer_content(&entry, IMPORTER_KINDS)
        } else {
            if let Some(fields) = entry.as_object_mut() {
                for flag in USAGE_FLAGS {
                    fields.remove(*flag);
                }
                drop_download_address(fields);
            }
            entry
        };
        lock.insert(
            key,
            Entry {
                name,
                version,
                content,
            },
            deps,
        );
    }
    Ok(lock)
}

const IMPORTER_KINDS: &[&str] = &[
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
];

/// The entry node's resolution finds for `name` required from the entry at `from`: in
/// `<from>/node_modules`, then in each folder above. Each key tried is written into
/// `candidate`, one buffer for a whole lock file.
fn resolve(
    packages: &Map<String, Value>,
    from: &str,
    name: &str,
    candidate: &mut String,
) -> Option<String> {
    let mut base = from;
    loop {
        candidate.clear();
        if !base.is_empty() {
            candidate.push_str(base);
            candidate.push('/');
        }
        candidate.push_str("node_modules/");
        candidate.push_str(name);
        if packages.contains_key(candidate.as_str()) {
            return Some(candidate.clone());
        }
        if base.is_empty() {
            return None;
        }
        base = base.rfind('/').map_or("", |i| &base[..i]);
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

    fn keys(c: &std::collections::BTreeSet<String>) -> Vec<&str> {
        c.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_members_closure_follows_node_resolution_links_and_the_root() {
        let l = lock(&workspace());
        assert_eq!(
            l.importer_folders().collect::<Vec<_>>(),
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
            Reach::Changed(vec!["left-pad 1.3.0 → 1.3.1".into()]),
            "a changed range that installs the same names is no change of the member"
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
                "is-number (moved)".into()
            ]),
            "the version change first; b still depends on is-odd alone"
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
            read(r#"{"lockfileVersion": 1, "dependencies": {}}"#).unwrap_err(),
            LockError::Version("1".into())
        );
        assert_eq!(
            read(r#"{"packages": {}}"#).unwrap_err(),
            LockError::Version("(none)".into())
        );
        assert_eq!(
            read(r#"{"lockfileVersion": 3, "packages": {"": 1}}"#).unwrap_err(),
            LockError::Malformed("`packages`")
        );
        assert!(matches!(
            read("{\"lockfileVersion\": 3, <<<<<<< HEAD").unwrap_err(),
            LockError::Unparsable(_)
        ));
        assert!(super::super::is_lock_file("package-lock.json"));
        assert!(super::super::is_lock_file("apps/web/npm-shrinkwrap.json"));
        assert!(super::super::is_lock_file("pnpm-lock.yaml"));
        assert!(super::super::is_lock_file("yarn.lock"));
        assert!(super::super::is_lock_file("Cargo.lock"));
        assert!(!super::super::is_lock_file("poetry.lock"));
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
        assert!(c.contains("node_modules/a") && c.contains("services/a"));
        assert!(!c.iter().any(|k| k.contains("not-installed")));
    }

    #[test]
    fn what_installs_the_same_bytes_is_no_change() {
        let old = edit(|p| {
            p["node_modules/left-pad"]["resolved"] =
                json!("https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz");
        });
        // Another registry mirror, the workspaces listed anew, a member's own version: the
        // checksums and the dependencies are the same.
        let new = edit(|p| {
            p["node_modules/left-pad"]["resolved"] =
                json!("https://mirror.example/left-pad/-/left-pad-1.3.0.tgz");
            p[""]["workspaces"] = json!(["services/*", "packages/*", "tools/*"]);
            p["services/a"]["version"] = json!("1.0.1");
            p["services/a"]["dependencies"]["left-pad"] = json!("^1.3.0");
        });
        for s in ["services/a", "services/b"] {
            assert_eq!(
                reach(&old, &new, "package-lock.json", s),
                Reach::Unchanged,
                "{s}"
            );
        }
        // A package without a checksum (from git) is named by where it comes from.
        let git = |commit: &str| {
            edit(|p| {
                p["node_modules/left-pad"] = json!({"version": "1.3.0", "resolved": format!("git+ssh://git@github.com/x/left-pad.git#{commit}")});
            })
        };
        assert_ne!(
            reach(&git("aaa"), &git("bbb"), "package-lock.json", "services/a"),
            Reach::Unchanged
        );
    }

    #[test]
    fn a_service_is_served_by_the_members_above_it_and_those_its_inputs_name() {
        // Member `apps` (ms) holds the service folder apps/api, which holds member
        // apps/api/layer: code in apps/api/src loads ms through apps.
        let old = lock(&json!({
            "lockfileVersion": 3,
            "packages": {
                "": {"name": "root"},
                "apps": {"dependencies": {"ms": "2.1.3"}},
                "apps/api/layer": {"dependencies": {"left-pad": "1.3.0"}},
                "libs/util": {"dependencies": {"is-odd": "3.0.1"}},
                "node_modules/ms": {"version": "2.1.3", "integrity": "sha512-m"},
                "node_modules/left-pad": {"version": "1.3.0", "integrity": "sha512-l"},
                "node_modules/is-odd": {"version": "3.0.1", "integrity": "sha512-o"}
            }
        }));
        let bump = |key: &str| {
            let mut v: Value = json!({
                "lockfileVersion": 3,
                "packages": {
                    "": {"name": "root"},
                    "apps": {"dependencies": {"ms": "2.1.3"}},
                    "apps/api/layer": {"dependencies": {"left-pad": "1.3.0"}},
                    "libs/util": {"dependencies": {"is-odd": "3.0.1"}},
                    "node_modules/ms": {"version": "2.1.3", "integrity": "sha512-m"},
                    "node_modules/left-pad": {"version": "1.3.0", "integrity": "sha512-l"},
                    "node_modules/is-odd": {"version": "3.0.1", "integrity": "sha512-o"}
                }
            });
            v["packages"][key]["integrity"] = json!("sha512-other");
            lock(&v)
        };
        let ms = bump("node_modules/ms");
        assert_ne!(
            reach(&old, &ms, "package-lock.json", "apps/api"),
            Reach::Unchanged
        );
        let left_pad = bump("node_modules/left-pad");
        assert_ne!(
            reach(&old, &left_pad, "package-lock.json", "apps/api"),
            Reach::Unchanged
        );
        assert_eq!(
            reach(&old, &left_pad, "package-lock.json", "apps/web"),
            Reach::Unchanged
        );
        // A service with no package of its own whose inputs name a member's folder.
        let is_odd = bump("node_modules/is-odd");
        let change = super::super::LockChange::new(&old, &is_odd);
        assert_eq!(
            change.reach("package-lock.json", &["services/e"]),
            Reach::Unchanged
        );
        assert_ne!(
            change.reach("package-lock.json", &["services/e", "libs/util"]),
            Reach::Unchanged
        );
        assert_eq!(
            super::super::service_folders(
                "services/e",
                &[
                    "libs/util/**".into(),
                    "**/*.graphql".into(),
                    "package-lock.json".into()
                ]
            ),
            ["libs/util", "services/e"]
        );
    }

    #[test]
    fn a_lock_file_nested_too_deep_is_not_read() {
        let key = "node_modules/x/".repeat(70) + "node_modules/y";
        let v = json!({"lockfileVersion": 3, "packages": {"": {}, key: {"version": "1"}}});
        assert_eq!(read(&v.to_string()).unwrap_err(), LockError::TooDeep(71));
    }
}
