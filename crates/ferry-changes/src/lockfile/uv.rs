//! uv's lock file, `uv.lock` (Python): one `[[package]]` per package, with `name`, `version`,
//! `source` (`{ registry = … }`, `{ git = … }`, or a workspace member's folder,
//! `{ virtual = "services/a" }` / `{ editable = "services/a" }`), the hashes of its sdist and
//! wheels, and `dependencies` (and `[package.dev-dependencies]`, `[package.optional-dependencies]`)
//! as `{ name = "six" }`, with `version` and `source` where one name has several entries.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use toml::de::{DeTable, DeValue};

use super::{Entry, Lock, LockError, toml_str};

type Table<'a> = DeTable<'a>;

/// Reads a `uv.lock`.
pub(super) fn read(text: &str) -> Result<Lock, LockError> {
    let doc = DeTable::parse(text).map_err(|e| LockError::Unparsable(e.to_string()))?;
    let doc = doc.get_ref();
    match doc.get("version").map(|v| v.get_ref()) {
        Some(DeValue::Integer(_)) => {}
        _ => return Err(LockError::Version("(none)".into())),
    }
    let packages: Vec<&Table<'_>> = match doc.get("package").map(|p| p.get_ref()) {
        Some(DeValue::Array(items)) => items
            .iter()
            .map(|p| {
                p.get_ref()
                    .as_table()
                    .ok_or(LockError::Malformed("`package` entries"))
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
        Some(_) => return Err(LockError::Malformed("`package`")),
    };
    let text = toml_str;
    // A source as one string (`registry=https://…`, `git=https://…?rev=…#…`), to tell apart
    // one name and version from two sources.
    let source_of = |t: &Table<'_>| -> String {
        match t.get("source").map(|s| s.get_ref()) {
            Some(DeValue::Table(s)) => s
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        k.get_ref(),
                        v.get_ref().as_str().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        }
    };
    // `name version` (a member with a dynamic version has none), and its source where one
    // name and version come from two.
    let plain = |t: &Table<'_>| match text(t, "version") {
        Some(v) => format!("{} {v}", text(t, "name").unwrap_or_default()),
        None => text(t, "name").unwrap_or_default(),
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &packages {
        if text(t, "name").is_none() {
            return Err(LockError::Malformed("`package` entries' name"));
        }
        *seen.entry(plain(t)).or_default() += 1;
    }
    let key_of = |t: &Table<'_>| {
        let p = plain(t);
        if seen.get(&p).copied().unwrap_or(0) > 1 {
            format!("{p} ({})", source_of(t))
        } else {
            p
        }
    };
    // Name → its entries' keys, versions and sources.
    type Found = (String, Option<String>, String);
    let mut by_name: HashMap<String, Vec<Found>> = HashMap::new();
    for t in &packages {
        let name = text(t, "name").unwrap_or_default();
        by_name
            .entry(name)
            .or_default()
            .push((key_of(t), text(t, "version"), source_of(t)));
    }
    let lead = |dep: &Table<'_>| -> Vec<String> {
        let Some(name) = text(dep, "name") else {
            return Vec::new();
        };
        let version = text(dep, "version");
        let source = dep.get("source").map(|_| source_of(dep));
        by_name
            .get(&name)
            .into_iter()
            .flatten()
            .filter(|(_, v, _)| version.is_none() || v == &version)
            .filter(|(_, _, s)| source.as_ref().is_none_or(|want| want == s))
            .map(|(k, _, _)| k.clone())
            .collect()
    };
    let mut lock = Lock::default();
    for t in packages {
        let key = key_of(t);
        let source = t.get("source").and_then(|s| s.get_ref().as_table());
        let member = source.and_then(|s| text(s, "virtual").or_else(|| text(s, "editable")));
        // Dependencies: the list, and each group of the dev and optional tables.
        let mut lists: Vec<&DeValue<'_>> = t
            .get("dependencies")
            .map(|d| d.get_ref())
            .into_iter()
            .collect();
        for table in ["dev-dependencies", "optional-dependencies"] {
            if let Some(DeValue::Table(groups)) = t.get(table).map(|g| g.get_ref()) {
                lists.extend(groups.values().map(|g| g.get_ref()));
            }
        }
        let deps_of = |list: &DeValue<'_>| -> Vec<String> {
            match list {
                DeValue::Array(items) => items
                    .iter()
                    .filter_map(|d| d.get_ref().as_table())
                    .flat_map(&lead)
                    .collect(),
                _ => Vec::new(),
            }
        };
        let deps: Vec<String> = lists.iter().flat_map(|l| deps_of(l)).collect();
        let name = text(t, "name").unwrap_or_default();
        let (content, version) = match &member {
            // A member: which packages it depends on (their entries say the rest).
            Some(_) => {
                let mut names: Vec<String> = lists
                    .iter()
                    .flat_map(|l| match l {
                        DeValue::Array(items) => items
                            .iter()
                            .filter_map(|d| d.get_ref().as_table().and_then(|d| text(d, "name")))
                            .collect(),
                        _ => Vec::new(),
                    })
                    .collect();
                names.sort();
                names.dedup();
                (json!({ "dependencies": names }), None)
            }
            None => {
                let hashes = |v: Option<&DeValue<'_>>| -> Vec<String> {
                    match v {
                        Some(DeValue::Table(s)) => text(s, "hash").into_iter().collect(),
                        Some(DeValue::Array(items)) => items
                            .iter()
                            .filter_map(|w| w.get_ref().as_table().and_then(|w| text(w, "hash")))
                            .collect(),
                        _ => Vec::new(),
                    }
                };
                let mut c = Map::new();
                c.insert("version".into(), json!(text(t, "version")));
                // The source says registry or git (a git source names its commit); the
                // download addresses of the files do not matter beside their hashes.
                c.insert(
                    "source".into(),
                    json!(source.map(|s| {
                        s.iter()
                            .map(|(k, v)| {
                                (
                                    k.get_ref().to_string(),
                                    v.get_ref().as_str().unwrap_or_default().to_string(),
                                )
                            })
                            .collect::<std::collections::BTreeMap<_, _>>()
                    })),
                );
                c.insert(
                    "sdist".into(),
                    json!(hashes(t.get("sdist").map(|s| s.get_ref()))),
                );
                c.insert(
                    "wheels".into(),
                    json!(hashes(t.get("wheels").map(|s| s.get_ref()))),
                );
                (Value::Object(c), text(t, "version"))
            }
        };
        if let Some(dir) = member {
            let dir = if dir == "." {
                String::new()
            } else {
                dir.trim_start_matches("./").to_string()
            };
            lock.importers.insert(dir, key.clone());
        }
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

#[cfg(test)]
mod tests {
    use super::super::{Lock, Reach, reach};
    use super::*;

    /// What `uv lock` 0.9 writes for a workspace of `a` (six) and `b` (idna, and iniconfig as
    /// a dev dependency), hashes shortened.
    fn lock_text(six: &str, iniconfig: &str) -> String {
        format!(
            r#"version = 1
revision = 5
requires-python = ">=3.11"

[manifest]
members = ["a", "b", "shop"]

[[package]]
name = "a"
version = "0.1.0"
source = {{ virtual = "services/a" }}
dependencies = [
    {{ name = "six" }},
]

[package.metadata]
requires-dist = [{{ name = "six", specifier = "==1.16.0" }}]

[[package]]
name = "b"
version = "0.1.0"
source = {{ virtual = "services/b" }}
dependencies = [
    {{ name = "idna" }},
]

[package.dev-dependencies]
dev = [
    {{ name = "iniconfig" }},
]

[[package]]
name = "idna"
version = "3.7"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "https://files.pythonhosted.org/idna-3.7.tar.gz", hash = "sha256:i37", size = 189575 }}
wheels = [
    {{ url = "https://files.pythonhosted.org/idna-3.7-py3-none-any.whl", hash = "sha256:i37w", size = 66836 }},
]

[[package]]
name = "iniconfig"
version = "{iniconfig}"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "https://files.pythonhosted.org/iniconfig.tar.gz", hash = "sha256:n{iniconfig}" }}

[[package]]
name = "shop"
version = "0.1.0"
source = {{ virtual = "." }}

[[package]]
name = "six"
version = "{six}"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "https://files.pythonhosted.org/six.tar.gz", hash = "sha256:s{six}" }}
"#
        )
    }

    fn lock(text: &str) -> Lock {
        Lock::parse("uv.lock", text).unwrap()
    }

    #[test]
    fn a_python_workspaces_members_are_read_from_their_sources() {
        let l = lock(&lock_text("1.16.0", "2.0.0"));
        assert_eq!(
            l.importer_folders().collect::<Vec<_>>(),
            ["", "services/a", "services/b"]
        );
        let old = lock(&lock_text("1.16.0", "2.0.0"));
        let six = lock(&lock_text("1.17.0", "2.0.0"));
        assert_eq!(
            reach(&old, &six, "uv.lock", "services/a"),
            Reach::Changed(vec!["six 1.16.0 → 1.17.0".into()])
        );
        assert_eq!(reach(&old, &six, "uv.lock", "services/b"), Reach::Unchanged);
        // A dev dependency is the member's too (tests and builds use it).
        let dev = lock(&lock_text("1.16.0", "2.0.1"));
        assert_ne!(reach(&old, &dev, "uv.lock", "services/b"), Reach::Unchanged);
        assert_eq!(reach(&old, &dev, "uv.lock", "services/a"), Reach::Unchanged);
        // Another download address for the same files (the hashes name them): no change.
        let moved =
            lock(&lock_text("1.16.0", "2.0.0").replace("files.pythonhosted.org", "mirror.example"));
        assert_eq!(
            reach(&old, &moved, "uv.lock", "services/a"),
            Reach::Unchanged
        );
    }

    #[test]
    fn broken_uv_lock_files_are_not_read() {
        assert_eq!(
            read("[[package]]\nname = \"x\"\n").unwrap_err(),
            LockError::Version("(none)".into())
        );
        assert_eq!(
            read("version = 1\n[[package]]\nversion = \"1\"\n").unwrap_err(),
            LockError::Malformed("`package` entries' name")
        );
        // A member with a dynamic version has none: read all the same.
        assert!(
            read("version = 1\n[[package]]\nname = \"x\"\nsource = { virtual = \".\" }\n").is_ok()
        );
        assert!(matches!(
            read("version = 1\n[[package]\n"),
            Err(LockError::Unparsable(_))
        ));
    }

    #[test]
    fn one_name_and_version_from_two_sources_are_two_entries() {
        let text = |rev: &str| {
            format!(
                "version = 1\n\n[[package]]\nname = \"a\"\nversion = \"0.1.0\"\nsource = {{ virtual = \"services/a\" }}\ndependencies = [\n    {{ name = \"six\", version = \"1.16.0\", source = {{ git = \"https://example.com/six?rev=main#{rev}\" }}, marker = \"sys_platform == 'linux'\" }},\n]\n\n[[package]]\nname = \"b\"\nversion = \"0.1.0\"\nsource = {{ virtual = \"services/b\" }}\ndependencies = [\n    {{ name = \"six\", version = \"1.16.0\", source = {{ registry = \"https://pypi.org/simple\" }} }},\n]\n\n[[package]]\nname = \"six\"\nversion = \"1.16.0\"\nsource = {{ git = \"https://example.com/six?rev=main#{rev}\" }}\n\n[[package]]\nname = \"six\"\nversion = \"1.16.0\"\nsource = {{ registry = \"https://pypi.org/simple\" }}\nsdist = {{ hash = \"sha256:s\" }}\n"
            )
        };
        let (old, new) = (lock(&text("aaa")), lock(&text("bbb")));
        assert_ne!(reach(&old, &new, "uv.lock", "services/a"), Reach::Unchanged);
        assert_eq!(reach(&old, &new, "uv.lock", "services/b"), Reach::Unchanged);
    }
}
