//! pnpm's lock file, `pnpm-lock.yaml` of version 6 or 9: `importers` (the workspace's folders,
//! `.` for the lock file's own) name each dependency's resolved version; a version
//! `link:../lib` is another importer. Version 9 keys each installed package by
//! `name@version(peers)` in `snapshots` (its dependencies) and by `name@version` in
//! `packages` (its tarball); version 6 keys both by `/name@version(peers)` in `packages`. A
//! lock file without `importers` (one project, version 6) is one importer, the root.

use serde_json::{Map, Value, json};

use super::{Entry, Lock, LockError, importer_content, join, split_name};

/// Flags pnpm 6 sets by how the workspace uses a package, not by what it installs.
const USAGE_FLAGS: &[&str] = &["dev", "optional"];

/// The kinds of dependencies an importer installs.
const IMPORTER_KINDS: &[&str] = &["dependencies", "devDependencies", "optionalDependencies"];

/// Reads a pnpm lock file of version 6 or 9.
pub(super) fn read(text: &str) -> Result<Lock, LockError> {
    let doc: Value = ferry_manifest::yaml::from_str(text).map_err(LockError::Unparsable)?;
    let version = match doc.get("lockfileVersion") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "(none)".to_string(),
    };
    let v9 = match version.split('.').next() {
        Some("9") => true,
        Some("6") => false,
        _ => return Err(LockError::Version(version)),
    };
    let map = |field: &'static str| -> Result<Map<String, Value>, LockError> {
        match doc.get(field) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) if m.values().all(|v| v.is_object() || v.is_null()) => {
                Ok(m.clone())
            }
            Some(_) => Err(LockError::Malformed(field)),
        }
    };
    let mut importers: Vec<(String, Value)> = map("importers")?
        .into_iter()
        .map(|(k, v)| (if k == "." { String::new() } else { k }, v))
        .collect();
    if importers.is_empty() {
        // One project: its dependencies are at the top.
        let root: Map<String, Value> = IMPORTER_KINDS
            .iter()
            .filter_map(|kind| Some(((*kind).to_string(), doc.get(*kind)?.clone())))
            .collect();
        importers.push((String::new(), Value::Object(root)));
    }
    // Version 9: `snapshots` (dependencies) and `packages` (tarballs); version 6: `packages`.
    let (snapshots, packages) = if v9 {
        (map("snapshots")?, map("packages")?)
    } else {
        (map("packages")?, Map::new())
    };
    let mut lock = Lock::default();
    for (dir, entry) in importers {
        let key = format!("importer:{dir}");
        let deps = IMPORTER_KINDS
            .iter()
            .filter_map(|kind| entry.get(*kind).and_then(Value::as_object))
            .flatten()
            .filter_map(|(name, dep)| {
                // Versions 6 and 9 write `{specifier, version}`.
                let version = dep.get("version").unwrap_or(dep).as_str()?;
                target(v9, &dir, name, version)
            })
            .collect();
        let name = if dir.is_empty() {
            "root package".to_string()
        } else {
            dir.clone()
        };
        lock.importers.insert(dir, key.clone());
        lock.insert(
            key,
            Entry {
                name,
                version: None,
                content: importer_content(&entry, IMPORTER_KINDS),
            },
            deps,
        );
    }
    for (raw, snapshot) in &snapshots {
        let key = raw.trim_start_matches('/').to_string();
        let bare = key.split_once('(').map_or(key.as_str(), |(b, _)| b);
        let mut snapshot = snapshot.clone();
        if let Some(fields) = snapshot.as_object_mut() {
            for flag in USAGE_FLAGS {
                fields.remove(*flag);
            }
        }
        let deps = ["dependencies", "optionalDependencies"]
            .iter()
            .filter_map(|kind| snapshot.get(*kind).and_then(Value::as_object))
            .flatten()
            .filter_map(|(dep, v)| target(v9, "", dep, v.as_str()?))
            .collect();
        let (name, version) = split_key(bare);
        let content = json!({
            "snapshot": snapshot,
            "package": packages.get(bare).cloned().unwrap_or(Value::Null),
        });
        lock.insert(
            key.clone(),
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

/// The key of what the dependency `name` at `reference` of the importer at `dir` (or of a
/// package, `""`) is: another importer for `link:`, else an installed package, keyed as pnpm
/// keys it. Version 9: a reference starting with `@`, or whose first `@` comes before any `:`
/// and `(`, is a whole key (an alias, `string-width@4.2.3`); any other is the version of
/// `name` (`6.0.0`, `18.2.0(react@18.2.0)`, `file:local/@x/loc`, `git+ssh://git@host/…`).
/// Version 6: a `file:` reference, or one holding a `/` outside its `(…)` peers
/// (`/string-width@4.2.3`, `github.com/u/r/<sha>`), is a whole key; any other is
/// `name@reference`.
fn target(v9: bool, dir: &str, name: &str, reference: &str) -> Option<String> {
    if let Some(rel) = reference.strip_prefix("link:") {
        return join(dir, rel).map(|d| format!("importer:{d}"));
    }
    let whole = if v9 {
        let first = |c: char| reference.find(c).unwrap_or(usize::MAX);
        reference.starts_with('@')
            || reference
                .find('@')
                .is_some_and(|at| at < first(':') && at < first('('))
    } else {
        let bare = reference.split_once('(').map_or(reference, |(b, _)| b);
        reference.starts_with("file:") || bare.contains('/')
    };
    Some(if whole {
        reference.trim_start_matches('/').to_string()
    } else {
        format!("{name}@{reference}")
    })
}

/// `@scope/name@1.0.0` as (`@scope/name`, `1.0.0`) ([`split_name`]), owned.
fn split_key(bare: &str) -> (String, Option<String>) {
    let (name, version) = split_name(bare);
    (name.to_string(), version.map(String::from))
}

#[cfg(test)]
mod tests {
    use super::super::{Lock, Reach, reach};
    use super::*;

    /// What `pnpm install` of pnpm 9 writes for the root (devDependency ms), `packages/lib`
    /// (is-number 7), `services/a` (left-pad, and lib through a link) and `services/b` (is-odd,
    /// with its own is-number 6, and react-dom with react as a peer).
    const V9: &str = r#"lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    devDependencies:
      ms:
        specifier: 2.1.3
        version: 2.1.3

  packages/lib:
    dependencies:
      is-number:
        specifier: 7.0.0
        version: 7.0.0

  services/a:
    dependencies:
      left-pad:
        specifier: 1.3.0
        version: 1.3.0
      lib:
        specifier: workspace:*
        version: link:../../packages/lib

  services/b:
    dependencies:
      is-odd:
        specifier: 3.0.1
        version: 3.0.1
      react:
        specifier: 18.2.0
        version: 18.2.0
      react-dom:
        specifier: 18.2.0
        version: 18.2.0(react@18.2.0)

packages:

  is-number@6.0.0:
    resolution: {integrity: sha512-n6}

  is-number@7.0.0:
    resolution: {integrity: sha512-n7}

  is-odd@3.0.1:
    resolution: {integrity: sha512-o301}

  left-pad@1.3.0:
    resolution: {integrity: sha512-l130}

  loose-envify@1.4.0:
    resolution: {integrity: sha512-le}
    hasBin: true

  js-tokens@4.0.0:
    resolution: {integrity: sha512-jt}

  ms@2.1.3:
    resolution: {integrity: sha512-m213}

  react-dom@18.2.0:
    resolution: {integrity: sha512-rd}
    peerDependencies:
      react: ^18.2.0

  react@18.2.0:
    resolution: {integrity: sha512-r}

snapshots:

  is-number@6.0.0: {}

  is-number@7.0.0: {}

  is-odd@3.0.1:
    dependencies:
      is-number: 6.0.0

  js-tokens@4.0.0: {}

  left-pad@1.3.0: {}

  loose-envify@1.4.0:
    dependencies:
      js-tokens: 4.0.0

  ms@2.1.3: {}

  react-dom@18.2.0(react@18.2.0):
    dependencies:
      loose-envify: 1.4.0
      react: 18.2.0

  react@18.2.0:
    dependencies:
      loose-envify: 1.4.0
"#;

    fn lock(text: &str) -> Lock {
        Lock::parse("pnpm-lock.yaml", text).unwrap()
    }

    fn keys(l: &Lock, dir: &str) -> Vec<String> {
        l.closure(&l.importers_for(dir)).into_iter().collect()
    }

    /// A lock file nesting flow collections thousands deep is refused before the YAML parser,
    /// whose time grows with the square of the depth (200,000 levels took minutes).
    #[test]
    fn a_lock_file_nested_without_end_is_refused_unparsed() {
        let deep = format!(
            "lockfileVersion: '9.0'\nimporters: {}{}\n",
            "{a: ".repeat(200_000),
            "}".repeat(200_000)
        );
        let err = Lock::parse("pnpm-lock.yaml", &deep)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nest deeper than 100 levels at line 2"),
            "{err}"
        );
        let yarn = format!(
            "__metadata: {}{}\n",
            "[".repeat(200_000),
            "]".repeat(200_000)
        );
        let err = Lock::parse("yarn.lock", &yarn).unwrap_err().to_string();
        assert!(
            err.contains("nest deeper than 100 levels at line 1"),
            "{err}"
        );
    }

    #[test]
    fn a_members_closure_follows_versions_links_and_the_root() {
        let l = lock(V9);
        assert_eq!(
            keys(&l, "services/a"),
            [
                "importer:",
                "importer:packages/lib",
                "importer:services/a",
                "is-number@7.0.0",
                "left-pad@1.3.0",
                "ms@2.1.3"
            ]
        );
        assert_eq!(
            keys(&l, "services/b"),
            [
                "importer:",
                "importer:services/b",
                "is-number@6.0.0",
                "is-odd@3.0.1",
                "js-tokens@4.0.0",
                "loose-envify@1.4.0",
                "ms@2.1.3",
                "react-dom@18.2.0(react@18.2.0)",
                "react@18.2.0"
            ]
        );
    }

    #[test]
    fn a_change_reaches_only_the_services_whose_packages_it_changes() {
        let old = lock(V9);
        let left_pad = lock(
            &V9.replace(
                "specifier: 1.3.0\n        version: 1.3.0",
                "specifier: 1.3.1\n        version: 1.3.1",
            )
            .replace(
                "left-pad@1.3.0:\n    resolution: {integrity: sha512-l130}",
                "left-pad@1.3.1:\n    resolution: {integrity: sha512-l131}",
            )
            .replace("left-pad@1.3.0: {}", "left-pad@1.3.1: {}"),
        );
        assert_eq!(
            reach(&old, &left_pad, "pnpm-lock.yaml", "services/a"),
            Reach::Changed(vec!["left-pad 1.3.0 → 1.3.1".into()])
        );
        assert_eq!(
            reach(&old, &left_pad, "pnpm-lock.yaml", "services/b"),
            Reach::Unchanged
        );
        // A package two levels down, reached through a peer-resolved key.
        let js_tokens = lock(&V9.replace("sha512-jt", "sha512-jt-other"));
        assert_eq!(
            reach(&old, &js_tokens, "pnpm-lock.yaml", "services/b"),
            Reach::Changed(vec!["js-tokens (changed)".into()])
        );
        assert_eq!(
            reach(&old, &js_tokens, "pnpm-lock.yaml", "services/a"),
            Reach::Unchanged
        );
        // The shared member's package reaches the service linking it; the root's every one.
        let lib = lock(&V9.replace("sha512-n7", "sha512-n7-other"));
        assert_ne!(
            reach(&old, &lib, "pnpm-lock.yaml", "services/a"),
            Reach::Unchanged
        );
        assert_eq!(
            reach(&old, &lib, "pnpm-lock.yaml", "services/b"),
            Reach::Unchanged
        );
        let ms = lock(&V9.replace("sha512-m213", "sha512-m213-other"));
        for s in ["services/a", "services/b", "tools"] {
            assert_ne!(
                reach(&old, &ms, "pnpm-lock.yaml", s),
                Reach::Unchanged,
                "{s}"
            );
        }
        // Settings alone install nothing new.
        let settings = lock(&V9.replace("autoInstallPeers: true", "autoInstallPeers: false"));
        assert_eq!(
            reach(&old, &settings, "pnpm-lock.yaml", "services/a"),
            Reach::Unchanged
        );
    }

    #[test]
    fn version_6_keys_packages_by_a_leading_slash_and_a_single_project_has_no_importers() {
        let v6 = "lockfileVersion: '6.0'\n\ndependencies:\n  is-odd:\n    specifier: 3.0.1\n    version: 3.0.1\n\npackages:\n\n  /is-odd@3.0.1:\n    resolution: {integrity: sha512-o}\n    dependencies:\n      is-number: 6.0.0\n    dev: false\n\n  /is-number@6.0.0:\n    resolution: {integrity: sha512-n6}\n    dev: false\n";
        let old = lock(v6);
        assert_eq!(
            keys(&old, ""),
            ["importer:", "is-number@6.0.0", "is-odd@3.0.1"]
        );
        let flags = lock(&v6.replace("dev: false", "dev: true"));
        assert_eq!(reach(&old, &flags, "pnpm-lock.yaml", "x"), Reach::Unchanged);
        let bumped = lock(&v6.replace("sha512-n6", "sha512-n6b"));
        assert_eq!(
            reach(&old, &bumped, "pnpm-lock.yaml", "x"),
            Reach::Changed(vec!["is-number (changed)".into()])
        );
    }

    #[test]
    fn other_versions_and_broken_files_are_not_read() {
        for (text, why) in [
            ("lockfileVersion: 5.4\n", LockError::Version("5.4".into())),
            (
                "lockfileVersion: '9.0'\nimporters: [1]\n",
                LockError::Malformed("importers"),
            ),
        ] {
            assert_eq!(read(text).unwrap_err(), why);
        }
        assert!(matches!(
            read("lockfileVersion: '9.0'\n<<<<<<< HEAD\n  a: [\n").unwrap_err(),
            LockError::Unparsable(_)
        ));
        assert_eq!(
            split_key("@scope/x@1.0.0"),
            ("@scope/x".into(), Some("1.0.0".into()))
        );
        assert_eq!(split_key("x"), ("x".into(), None));
        assert_eq!(
            split_key("tarpkg@file:vendor/@v/tarpkg-1.0.0.tgz"),
            (
                "tarpkg".into(),
                Some("file:vendor/@v/tarpkg-1.0.0.tgz".into())
            )
        );
    }

    #[test]
    fn references_are_keyed_as_pnpm_keys_them() {
        let cases = [
            (true, "loc", "file:local/@x/loc", "loc@file:local/@x/loc"),
            (true, "sw", "string-width@4.2.3", "string-width@4.2.3"),
            (
                true,
                "is",
                "@sindresorhus/is@4.6.0",
                "@sindresorhus/is@4.6.0",
            ),
            (
                true,
                "react-dom",
                "18.2.0(react@18.2.0)",
                "react-dom@18.2.0(react@18.2.0)",
            ),
            (
                true,
                "r",
                "git+ssh://git@host/r.git#abc",
                "r@git+ssh://git@host/r.git#abc",
            ),
            (false, "loc", "file:local/loc", "file:local/loc"),
            (false, "sw", "/string-width@4.2.3", "string-width@4.2.3"),
            (false, "r", "github.com/u/r/abc", "github.com/u/r/abc"),
            (false, "is-number", "6.0.0", "is-number@6.0.0"),
            (
                false,
                "react-dom",
                "18.2.0(react@18.2.0)",
                "react-dom@18.2.0(react@18.2.0)",
            ),
        ];
        for (v9, name, reference, key) in cases {
            assert_eq!(
                target(v9, "services/a", name, reference).as_deref(),
                Some(key),
                "{reference}"
            );
        }
        assert_eq!(
            target(true, "services/a", "lib", "link:../../packages/lib").as_deref(),
            Some("importer:packages/lib")
        );
        assert_eq!(
            target(true, "", "x", "link:../out"),
            None,
            "a link out of the workspace"
        );
    }

    #[test]
    fn an_importer_switching_to_a_version_another_uses_is_a_change() {
        // services/b depends on is-number 6.0.0 itself, then switches to the 7.0.0 that lib
        // already uses: no entry changes, only where b's dependency leads.
        let old_text = V9.replace(
            "      is-odd:\n        specifier: 3.0.1\n        version: 3.0.1\n",
            "      is-odd:\n        specifier: 3.0.1\n        version: 3.0.1\n      is-number:\n        specifier: 6.0.0\n        version: 6.0.0\n",
        );
        assert_ne!(old_text, V9);
        let new_text = old_text.replace(
            "specifier: 6.0.0\n        version: 6.0.0",
            "specifier: 7.0.0\n        version: 7.0.0",
        );
        let (old, new) = (lock(&old_text), lock(&new_text));
        assert_eq!(
            reach(&old, &new, "pnpm-lock.yaml", "services/b"),
            Reach::Changed(vec!["is-number 6.0.0 → 7.0.0 (for services/b)".into()])
        );
        assert_eq!(
            reach(&old, &new, "pnpm-lock.yaml", "services/a"),
            Reach::Unchanged
        );
    }

    #[test]
    fn two_versions_whose_peers_both_changed_are_named_by_version() {
        // services/a uses devkit 19 and 21, both with nx as a peer; nx moves on.
        let text = |nx: &str| {
            format!(
                "lockfileVersion: '9.0'\nimporters:\n  services/a:\n    dependencies:\n      devkit:\n        specifier: 19.8.4\n        version: 19.8.4(nx@{nx})\n      devkit2:\n        specifier: npm:devkit@21.6.6\n        version: devkit@21.6.6(nx@{nx})\npackages:\n  devkit@19.8.4:\n    resolution: {{integrity: sha512-d19}}\n  devkit@21.6.6:\n    resolution: {{integrity: sha512-d21}}\n  nx@{nx}:\n    resolution: {{integrity: sha512-{nx}}}\nsnapshots:\n  devkit@19.8.4(nx@{nx}):\n    dependencies:\n      nx: {nx}\n  devkit@21.6.6(nx@{nx}):\n    dependencies:\n      nx: {nx}\n  nx@{nx}: {{}}\n"
            )
        };
        let (old, new) = (lock(&text("21.6.7")), lock(&text("21.6.8")));
        assert_eq!(
            reach(&old, &new, "pnpm-lock.yaml", "services/a"),
            Reach::Changed(vec!["nx 21.6.7 → 21.6.8".into(), "devkit (changed)".into()])
        );
    }
}
