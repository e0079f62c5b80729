//! Cargo's lock file, `Cargo.lock` (versions 3 and 4, and 1–2 alike): one `[[package]]` per
//! package, with `name`, `version`, `source` and `checksum` for a downloaded one, and
//! `dependencies` as `"name"`, `"name version"` or `"name version (source)"` (as much as tells
//! it apart). A workspace member is a package without `source`; where it lives is not in the
//! file, so the caller gives the `Cargo.toml` of each folder a service's code lies in
//! ([`Lock::set_importers`]), and a member is known by its package name.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use toml::de::{DeTable, DeValue};

use super::{Entry, Lock, LockError, toml_str};

/// Reads a `Cargo.lock`.
pub(super) fn read(text: &str) -> Result<Lock, LockError> {
    let doc = DeTable::parse(text).map_err(|e| LockError::Unparsable(e.to_string()))?;
    let doc = doc.get_ref();
    let packages = match doc.get("package").map(|p| p.get_ref()) {
        Some(DeValue::Array(items)) => items,
        None => return Ok(cargo_lock(Vec::new())),
        Some(_) => return Err(LockError::Malformed("`package`")),
    };
    let mut out = Vec::new();
    for p in packages {
        let DeValue::Table(t) = p.get_ref() else {
            return Err(LockError::Malformed("`package` entries"));
        };
        let text = |k: &str| toml_str(t, k);
        let (Some(name), Some(version)) = (text("name"), text("version")) else {
            return Err(LockError::Malformed("`package` entries' name and version"));
        };
        let mut dependencies: Vec<String> = match t.get("dependencies").map(|d| d.get_ref()) {
            Some(DeValue::Array(ds)) => ds
                .iter()
                .filter_map(|d| d.get_ref().as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        // `[replace]`: what is built is the replacement.
        dependencies.extend(text("replace"));
        out.push(Package {
            name,
            version,
            source: text("source"),
            checksum: text("checksum"),
            dependencies,
        });
    }
    Ok(cargo_lock(out))
}

/// A source without the `#commit` a git source ends with.
fn without_commit(source: &str) -> &str {
    source.split('#').next().unwrap_or(source)
}

struct Package {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    dependencies: Vec<String>,
}

impl Package {
    /// Its key: `name version (source)`, or `name version` for a member.
    fn key(&self) -> String {
        match &self.source {
            Some(s) => format!("{} {} ({s})", self.name, self.version),
            None => format!("{} {}", self.name, self.version),
        }
    }
}

fn cargo_lock(packages: Vec<Package>) -> Lock {
    // A dependency names as much as tells it apart: its name, its name and version, or all.
    let mut by_name: HashMap<&str, Vec<&Package>> = HashMap::new();
    for p in &packages {
        by_name.entry(p.name.as_str()).or_default().push(p);
    }
    let lead = |dep: &str| -> Vec<String> {
        let mut parts = dep.splitn(3, ' ');
        let name = parts.next().unwrap_or_default();
        let version = parts.next();
        let source = parts
            .next()
            .map(|s| s.trim_start_matches('(').trim_end_matches(')'));
        by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter(|p| version.is_none_or(|v| p.version == v))
            // A dependency names a git source without its `#commit`, which the package's has.
            .filter(|p| {
                source.is_none_or(|s| {
                    p.source.as_deref().map(without_commit) == Some(without_commit(s))
                })
            })
            .map(|p| p.key())
            .collect()
    };
    let mut members: HashMap<String, String> = HashMap::new();
    let mut lock = Lock {
        manifests: Some(super::Manifests::Cargo(HashMap::new())),
        // Every member, a service's or not (xtask), reaches what it uses: a changed entry none
        // reaches is one Ferry failed to follow, and counts for every service.
        attribute_every_change: true,
        ..Lock::default()
    };
    for p in &packages {
        let deps = p.dependencies.iter().flat_map(|d| lead(d)).collect();
        let mut content = Map::new();
        content.insert("version".into(), json!(p.version));
        if let Some(s) = &p.source {
            content.insert("source".into(), json!(s));
        }
        if let Some(c) = &p.checksum {
            content.insert("checksum".into(), json!(c));
        }
        if p.source.is_none() {
            // A member: its own version installs nothing; which packages it uses is its edges.
            content.clear();
            members.insert(p.name.clone(), p.key());
            lock.roots.insert(p.key());
        }
        let version = p.source.as_ref().map(|_| p.version.clone());
        lock.insert(
            p.key(),
            Entry {
                name: p.name.clone(),
                version,
                content: Value::Object(content),
            },
            deps,
        );
    }
    lock.manifests = Some(super::Manifests::Cargo(members));
    lock
}

#[cfg(test)]
mod tests {
    use super::super::{Reach, reach};
    use super::*;

    /// A workspace of two Lambda functions (`orders`, which uses the member `shared`, and
    /// `payments`), as Cargo writes its lock file: `serde` once, `itoa` in two versions.
    fn lock_text(serde: &str, itoa1: &str) -> String {
        format!(
            r#"# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "itoa"
version = "0.4.8"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "i048"

[[package]]
name = "itoa"
version = "1.0.{itoa1}"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "i1{itoa1}"

[[package]]
name = "orders"
version = "0.1.0"
dependencies = [
 "serde",
 "shared",
]

[[package]]
name = "payments"
version = "0.1.0"
dependencies = [
 "itoa 0.4.8",
 "serde",
]

[[package]]
name = "serde"
version = "{serde}"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "s{serde}"

[[package]]
name = "shared"
version = "0.1.0"
dependencies = [
 "itoa 1.0.{itoa1}",
]
"#
        )
    }

    fn lock(text: &str) -> Lock {
        let mut l = Lock::parse("Cargo.lock", text).unwrap();
        assert_eq!(l.manifest_name(), Some("Cargo.toml"));
        l.set_importers(&[
            (
                String::new(),
                Some("[workspace]\nmembers = [\"services/*\", \"crates/*\"]\n".into()),
            ),
            (
                "services/orders".into(),
                Some("[package]\nname = \"orders\"\nversion = \"0.1.0\"\n".into()),
            ),
            (
                "services/payments".into(),
                Some("[package]\nname = \"payments\"\nversion = \"0.1.0\"\n".into()),
            ),
            (
                "services/legacy".into(),
                Some("[package]\nname = \"legacy\"\nversion = \"0.1.0\"\n".into()),
            ),
        ]);
        l
    }

    #[test]
    fn a_crate_upgrade_reaches_the_members_that_use_it() {
        let old = lock(&lock_text("1.0.200", "11"));
        // itoa 1.0 is shared's (and so orders'); payments has 0.4.
        let itoa = lock(&lock_text("1.0.200", "12"));
        assert_eq!(
            reach(&old, &itoa, "Cargo.lock", "services/orders"),
            Reach::Changed(vec!["itoa 1.0.11 → 1.0.12".into()])
        );
        assert_eq!(
            reach(&old, &itoa, "Cargo.lock", "services/payments"),
            Reach::Unchanged
        );
        let serde = lock(&lock_text("1.0.201", "11"));
        for s in ["services/orders", "services/payments"] {
            assert_ne!(
                reach(&old, &serde, "Cargo.lock", s),
                Reach::Unchanged,
                "{s}"
            );
        }
        // A folder with no member (a Python service, or a Rust one built from a crate its
        // inputs do not name): nothing to tie the file to, so it counts whole.
        assert_eq!(
            reach(&old, &serde, "Cargo.lock", "services/py"),
            Reach::Outside
        );
        // A package the lock file does not hold (outside the workspace): judged changed.
        match reach(&old, &serde, "Cargo.lock", "services/legacy") {
            Reach::Changed(why) => assert!(why[0].contains("judged changed"), "{why:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broken_lock_files_are_not_read() {
        assert!(matches!(
            read("[[package]\n"),
            Err(LockError::Unparsable(_))
        ));
        assert_eq!(
            read("[[package]]\nversion = \"1\"\n").unwrap_err(),
            LockError::Malformed("`package` entries' name and version")
        );
        assert_eq!(
            read("package = 1\n").unwrap_err(),
            LockError::Malformed("`package`")
        );
    }

    #[test]
    fn this_workspaces_own_lock_file_is_read() {
        let l = Lock::parse("Cargo.lock", include_str!("../../../../Cargo.lock")).unwrap();
        let Some(super::super::Manifests::Cargo(members)) = &l.manifests else {
            panic!("a Cargo lock file");
        };
        assert!(members.contains_key("ferry-changes") && members.contains_key("xtask"));
        assert!(
            !members.contains_key("serde"),
            "a downloaded crate is no member"
        );
        // A member's dependencies lead to their entries: a downloaded crate, another member.
        let deps = &l.deps[&members["ferry-changes"]];
        assert!(deps.iter().any(|k| k.starts_with("git2 ")), "{deps:?}");
        assert!(deps.contains(&members["ferry-manifest"]), "{deps:?}");
    }

    #[test]
    fn git_sources_replacements_and_unfollowed_changes_are_accounted_for() {
        // payments uses itoa from git, ship the same version from crates.io: Cargo names the
        // git one with its source, without the commit its own entry has.
        let text = |commit: &str, replaced: &str| {
            format!(
                "version = 4\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.19\"\nsource = \"git+https://example.com/itoa#{commit}\"\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.19\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"c\"\n\n[[package]]\nname = \"payments\"\nversion = \"0.1.0\"\ndependencies = [\n \"itoa 1.0.19 (git+https://example.com/itoa)\",\n]\n\n[[package]]\nname = \"orders\"\nversion = \"0.1.0\"\ndependencies = [\n \"ryu\",\n]\n\n[[package]]\nname = \"ryu\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"r\"\nreplace = \"ryu 1.0.0 (git+https://example.com/ryu#{replaced})\"\n\n[[package]]\nname = \"ryu\"\nversion = \"1.0.0\"\nsource = \"git+https://example.com/ryu#{replaced}\"\n\n[[package]]\nname = \"xtask\"\nversion = \"0.1.0\"\ndependencies = [\n \"tool\",\n]\n\n[[package]]\nname = \"tool\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{commit}\"\n"
            )
        };
        let lock = |t: &str| {
            let mut l = Lock::parse("Cargo.lock", t).unwrap();
            l.set_importers(&[
                (
                    "services/payments".into(),
                    Some("[package]\nname = \"payments\"\n".into()),
                ),
                (
                    "services/orders".into(),
                    Some("[package]\nname = \"orders\"\n".into()),
                ),
            ]);
            l
        };
        let old = lock(&text("aaa", "r1"));
        let git = lock(&text("bbb", "r1"));
        assert_ne!(
            reach(&old, &git, "Cargo.lock", "services/payments"),
            Reach::Unchanged
        );
        let replaced = lock(&text("aaa", "r2"));
        assert_ne!(
            reach(&old, &replaced, "Cargo.lock", "services/orders"),
            Reach::Unchanged
        );
        assert_eq!(
            reach(&old, &replaced, "Cargo.lock", "services/payments"),
            Reach::Unchanged
        );
        // The git commit also moved xtask's tool (its checksum): xtask is a member, so that is
        // accounted for, and orders is not judged changed by it.
        assert_eq!(
            reach(&old, &git, "Cargo.lock", "services/orders"),
            Reach::Unchanged
        );
    }
}
