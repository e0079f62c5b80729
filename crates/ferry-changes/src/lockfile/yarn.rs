//! Yarn's lock file, `yarn.lock` of Yarn 2 and later (with `__metadata`): YAML whose keys are
//! the descriptors a package was asked for (`is-number@npm:7.0.0, is-number@npm:^7.0.0`) and
//! whose entries name their `resolution`, one per installed package. A workspace is an entry
//! resolved as `<name>@workspace:<folder>` (`.` for the root) whose `dependencies` hold its
//! devDependencies too. A dependency `name: range` leads to the entry whose key lists
//! `name@range`.
//!
//! Yarn 1's lock file (`# yarn lockfile v1`) is its own format: `"name@range", name@range2:`
//! then indented `version "1.0.0"`, `resolved "…"`, `integrity …` and `dependencies:` with
//! `name "range"` lines. It holds no workspaces: their `package.json` files are given by the
//! caller ([`Lock::set_importers`]).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Entry, Lock, LockError, drop_download_address, importer_content, split_name};

/// The kinds of dependencies an entry leads to.
const KINDS: &[&str] = &["dependencies", "peerDependencies"];

/// Reads a lock file of Yarn 1 ([`read_classic`]) or of Yarn 2 and later.
pub(super) fn read(text: &str) -> Result<Lock, LockError> {
    if text.lines().take(5).any(|l| l.contains("yarn lockfile v1")) {
        return read_classic(text);
    }
    let doc: Value = ferry_manifest::yaml::from_str(text).map_err(LockError::Unparsable)?;
    let Value::Object(top) = doc else {
        return Err(LockError::Malformed("top level"));
    };
    match top.get("__metadata").and_then(|m| m.get("version")) {
        Some(Value::Number(_) | Value::String(_)) => {}
        _ => return Err(LockError::Version("(no __metadata)".into())),
    }
    let entries: Vec<(&String, &Map<String, Value>)> = top
        .iter()
        .filter(|(k, _)| *k != "__metadata")
        .map(|(k, v)| {
            v.as_object()
                .map(|v| (k, v))
                .ok_or(LockError::Malformed("entries"))
        })
        .collect::<Result<_, _>>()?;
    // Each descriptor asked for → the resolution it got.
    let mut resolved: HashMap<String, String> = HashMap::new();
    for (key, entry) in &entries {
        let Some(resolution) = entry.get("resolution").and_then(Value::as_str) else {
            return Err(LockError::Malformed("entries' `resolution`"));
        };
        for descriptor in key.split(',').map(str::trim) {
            resolved.insert(descriptor.to_string(), resolution.to_string());
        }
    }
    let by_name = by_name(resolved.values());
    let lead = |dep: &str, range: &str| lead(&resolved, &by_name, dep, range);
    let mut lock = Lock {
        attribute_every_change: true,
        ..Lock::default()
    };
    for (_, entry) in entries {
        let resolution = entry["resolution"].as_str().unwrap_or_default().to_string();
        let (name, reference) = split_descriptor(&resolution);
        let workspace = reference.strip_prefix("workspace:").map(|dir| {
            if dir == "." {
                String::new()
            } else {
                dir.to_string()
            }
        });
        let deps = KINDS
            .iter()
            .filter_map(|kind| entry.get(*kind).and_then(Value::as_object))
            .flatten()
            .flat_map(|(dep, range)| lead(dep, range.as_str().unwrap_or_default()))
            .collect();
        let entry_value = Value::Object(entry.clone());
        let (content, version) = match &workspace {
            Some(_) => (importer_content(&entry_value, KINDS), None),
            None => (
                entry_value.clone(),
                entry
                    .get("version")
                    .and_then(Value::as_str)
                    .map(String::from),
            ),
        };
        if let Some(dir) = workspace {
            lock.importers.insert(dir, resolution.clone());
        }
        lock.insert(
            resolution,
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

/// Reads a lock file of Yarn 1. Entries are keyed `name@version`.
fn read_classic(text: &str) -> Result<Lock, LockError> {
    let unquote = |s: &str| s.trim().trim_matches('"').to_string();
    // (descriptors, fields), fields holding `dependencies`-like sections as maps.
    let mut blocks: Vec<(Vec<String>, Map<String, Value>)> = Vec::new();
    let mut section: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed.trim_start().is_empty() || trimmed.trim_start().starts_with('#') {
            continue;
        }
        let indent = trimmed.len() - trimmed.trim_start().len();
        let bad = || LockError::Unparsable(format!("line {}: `{}`", n + 1, trimmed.trim()));
        match indent {
            0 => {
                let list = trimmed.strip_suffix(':').ok_or_else(bad)?;
                blocks.push((list.split(',').map(unquote).collect(), Map::new()));
                section = None;
            }
            2 => {
                let (_, fields) = blocks.last_mut().ok_or_else(bad)?;
                let body = trimmed.trim_start();
                if let Some(name) = body.strip_suffix(':') {
                    fields.insert(name.to_string(), Value::Object(Map::new()));
                    section = Some(name.to_string());
                } else {
                    let (key, value) = split_first_token(body).ok_or_else(bad)?;
                    fields.insert(unquote(key), Value::String(unquote(value)));
                    section = None;
                }
            }
            4 => {
                let (_, fields) = blocks.last_mut().ok_or_else(bad)?;
                let name = section.as_ref().ok_or_else(bad)?;
                // `name "range"`: the name is one token (quoted when it starts with `@`), the
                // range all the rest (`">= 2.1.2 < 3"`).
                let (key, value) = split_first_token(trimmed.trim_start()).ok_or_else(bad)?;
                if let Some(Value::Object(m)) = fields.get_mut(name) {
                    m.insert(unquote(key), Value::String(unquote(value)));
                }
            }
            _ => return Err(bad()),
        }
    }
    let mut descriptors: HashMap<String, String> = HashMap::new();
    let mut keyed: Vec<(String, String, Map<String, Value>)> = Vec::new();
    let name_version = |list: &[String], fields: &Map<String, Value>| {
        let (name, _) = split_descriptor(list.first().map_or("", String::as_str));
        let version = fields
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default();
        (name.clone(), format!("{name}@{version}"))
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (list, fields) in &blocks {
        *seen.entry(name_version(list, fields).1).or_default() += 1;
    }
    for (list, fields) in blocks {
        let (name, plain) = name_version(&list, &fields);
        // Two sources of one name and version (two git commits): told apart by their source.
        let key = if seen.get(&plain).copied().unwrap_or(0) > 1 {
            let source = fields
                .get("resolved")
                .and_then(Value::as_str)
                .map_or_else(|| list.first().cloned().unwrap_or_default(), String::from);
            format!("{plain}#{source}")
        } else {
            plain
        };
        for d in list {
            descriptors.insert(d, key.clone());
        }
        keyed.push((key, name, fields));
    }
    let by_name = by_name(keyed.iter().map(|(key, _, _)| key));
    let lead = |dep: &str, range: &str| lead(&descriptors, &by_name, dep, range);
    let edges: Vec<Vec<String>> = keyed
        .iter()
        .map(|(_, _, fields)| {
            ["dependencies", "optionalDependencies"]
                .iter()
                .filter_map(|kind| fields.get(*kind).and_then(Value::as_object))
                .flatten()
                .flat_map(|(dep, range)| lead(dep, range.as_str().unwrap_or_default()))
                .collect()
        })
        .collect();
    let mut lock = Lock {
        manifests: Some(super::Manifests::Yarn1(descriptors.clone())),
        attribute_every_change: true,
        ..Lock::default()
    };
    for ((key, name, mut fields), deps) in keyed.into_iter().zip(edges) {
        drop_download_address(&mut fields);
        let version = fields
            .get("version")
            .and_then(Value::as_str)
            .map(String::from);
        lock.insert(
            key,
            Entry {
                name,
                version,
                content: Value::Object(fields),
            },
            deps,
        );
    }
    Ok(lock)
}

/// `name rest` (the name possibly quoted) as (`name`, `rest`).
fn split_first_token(line: &str) -> Option<(&str, &str)> {
    if let Some(quoted) = line.strip_prefix('"') {
        let end = quoted.find('"')? + 2;
        let (name, rest) = line.split_at(end);
        return Some((name, rest.trim_start()));
    }
    line.split_once(' ')
}

/// `@scope/name@npm:1.0.0` as (`@scope/name`, `npm:1.0.0`) ([`split_name`]).
fn split_descriptor(descriptor: &str) -> (String, &str) {
    let (name, rest) = split_name(descriptor);
    (name.to_string(), rest.unwrap_or_default())
}

/// Entry keys by package name (a key is `name@…`).
fn by_name<'k>(keys: impl Iterator<Item = &'k String>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for key in keys {
        out.entry(split_descriptor(key).0)
            .or_default()
            .push(key.clone());
    }
    out
}

/// Where the dependency `dep` at `range` leads: the entry whose descriptors list `dep@range`,
/// else (a descriptor no key lists: rewritten by `resolutions`, given a `::locator=` by
/// `file:`, `portal:` and `link:`, or patched; with Yarn 1 as well) every entry of the
/// package's name: more than it may, never less.
fn lead(
    descriptors: &HashMap<String, String>,
    by_name: &HashMap<String, Vec<String>>,
    dep: &str,
    range: &str,
) -> Vec<String> {
    match descriptors.get(&format!("{dep}@{range}")) {
        Some(found) => vec![found.clone()],
        None => by_name.get(dep).cloned().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Lock, Reach, reach};
    use super::*;

    /// What Yarn 4 writes (checksums shortened) for the root (ms), `packages/lib`
    /// (is-number 7.0.0), `services/a` (left-pad, lib as a workspace) and `services/b` (is-odd
    /// with its own is-number 6, and is-number ^7 as a devDependency).
    const LOCK: &str = r#"# This file is generated by running "yarn install" inside your project.
# Manual changes might be lost - proceed with caution!

__metadata:
  version: 10
  cacheKey: 10c0

"a@workspace:services/a":
  version: 0.0.0-use.local
  resolution: "a@workspace:services/a"
  dependencies:
    left-pad: "npm:1.3.0"
    lib: "workspace:*"
  languageName: unknown
  linkType: soft

"b@workspace:services/b":
  version: 0.0.0-use.local
  resolution: "b@workspace:services/b"
  dependencies:
    is-number: "npm:^7.0.0"
    is-odd: "npm:3.0.1"
  languageName: unknown
  linkType: soft

"is-number@npm:7.0.0, is-number@npm:^7.0.0":
  version: 7.0.0
  resolution: "is-number@npm:7.0.0"
  checksum: 10c0/n7
  languageName: node
  linkType: hard

"is-number@npm:^6.0.0":
  version: 6.0.0
  resolution: "is-number@npm:6.0.0"
  checksum: 10c0/n6
  languageName: node
  linkType: hard

"is-odd@npm:3.0.1":
  version: 3.0.1
  resolution: "is-odd@npm:3.0.1"
  dependencies:
    is-number: "npm:^6.0.0"
  checksum: 10c0/o301
  languageName: node
  linkType: hard

"left-pad@npm:1.3.0":
  version: 1.3.0
  resolution: "left-pad@npm:1.3.0"
  checksum: 10c0/l130
  languageName: node
  linkType: hard

"lib@workspace:*, lib@workspace:packages/lib":
  version: 0.0.0-use.local
  resolution: "lib@workspace:packages/lib"
  dependencies:
    is-number: "npm:7.0.0"
  languageName: unknown
  linkType: soft

"ms@npm:2.1.3":
  version: 2.1.3
  resolution: "ms@npm:2.1.3"
  checksum: 10c0/m213
  languageName: node
  linkType: hard

"shop@workspace:.":
  version: 0.0.0-use.local
  resolution: "shop@workspace:."
  dependencies:
    ms: "npm:2.1.3"
  languageName: unknown
  linkType: soft
"#;

    fn lock(text: &str) -> Lock {
        Lock::parse("yarn.lock", text).unwrap()
    }

    #[test]
    fn a_workspaces_closure_follows_descriptors_and_workspace_links() {
        let l = lock(LOCK);
        assert_eq!(
            l.importer_folders().collect::<Vec<_>>(),
            ["", "packages/lib", "services/a", "services/b"]
        );
        let a: Vec<String> = l
            .closure(&l.importers_for("services/a"))
            .into_iter()
            .collect();
        assert_eq!(
            a,
            [
                "a@workspace:services/a",
                "is-number@npm:7.0.0",
                "left-pad@npm:1.3.0",
                "lib@workspace:packages/lib",
                "ms@npm:2.1.3",
                "shop@workspace:."
            ]
        );
    }

    #[test]
    fn a_change_reaches_only_the_workspaces_whose_packages_it_changes() {
        let old = lock(LOCK);
        let left_pad = lock(
            &LOCK
                .replace("left-pad: \"npm:1.3.0\"", "left-pad: \"npm:1.3.1\"")
                .replace("\"left-pad@npm:1.3.0\":\n  version: 1.3.0\n  resolution: \"left-pad@npm:1.3.0\"\n  checksum: 10c0/l130", "\"left-pad@npm:1.3.1\":\n  version: 1.3.1\n  resolution: \"left-pad@npm:1.3.1\"\n  checksum: 10c0/l131"),
        );
        assert_eq!(
            reach(&old, &left_pad, "yarn.lock", "services/a"),
            Reach::Changed(vec!["left-pad 1.3.0 → 1.3.1".into()])
        );
        assert_eq!(
            reach(&old, &left_pad, "yarn.lock", "services/b"),
            Reach::Unchanged
        );
        // Two levels down, b's own is-number 6.
        let n6 = lock(&LOCK.replace("10c0/n6", "10c0/n6-other"));
        assert_eq!(
            reach(&old, &n6, "yarn.lock", "services/b"),
            Reach::Changed(vec!["is-number (changed)".into()])
        );
        assert_eq!(
            reach(&old, &n6, "yarn.lock", "services/a"),
            Reach::Unchanged
        );
        // The cache key is no package.
        let meta = lock(&LOCK.replace("cacheKey: 10c0", "cacheKey: 10c1"));
        assert_eq!(
            reach(&old, &meta, "yarn.lock", "services/a"),
            Reach::Unchanged
        );
    }

    #[test]
    fn broken_files_are_not_read() {
        let classic = "# yarn lockfile v1\n\nleft-pad@1.3.0:\n  version \"1.3.0\"\n  weird\n";
        assert!(matches!(
            read(classic).unwrap_err(),
            LockError::Unparsable(m) if m.contains("line 5")
        ));
        assert_eq!(
            read("__metadata:\n  version: 8\na: 1\n").unwrap_err(),
            LockError::Malformed("entries")
        );
        assert_eq!(
            read("x:\n  version: 1\n").unwrap_err(),
            LockError::Version("(no __metadata)".into())
        );
        assert_eq!(
            split_descriptor("@scope/x@npm:1.0.0"),
            ("@scope/x".to_string(), "npm:1.0.0")
        );
    }

    /// What Yarn 1.22 writes for the same workspace (no workspace in it: `lib` is linked).
    const CLASSIC: &str = r#"# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


"@types/ms@0.7.34":
  version "0.7.34"
  resolved "https://registry.yarnpkg.com/@types/ms/-/ms-0.7.34.tgz#10964ba0"
  integrity sha512-t

is-number@7.0.0:
  version "7.0.0"
  resolved "https://registry.yarnpkg.com/is-number/-/is-number-7.0.0.tgz#7535345b"
  integrity sha512-n7

is-number@^6.0.0:
  version "6.0.0"
  resolved "https://registry.yarnpkg.com/is-number/-/is-number-6.0.0.tgz#e6d15ad3"
  integrity sha512-n6

is-odd@3.0.1:
  version "3.0.1"
  resolved "https://registry.yarnpkg.com/is-odd/-/is-odd-3.0.1.tgz#65101baf"
  integrity sha512-o301
  dependencies:
    is-number "^6.0.0"

left-pad@1.3.0:
  version "1.3.0"
  resolved "https://registry.yarnpkg.com/left-pad/-/left-pad-1.3.0.tgz#5b8a3a77"
  integrity sha512-l130

ms@2.1.3:
  version "2.1.3"
  resolved "https://registry.yarnpkg.com/ms/-/ms-2.1.3.tgz#574c8138"
  integrity sha512-m213
"#;

    fn members(with_lib: bool) -> Vec<(String, Option<String>)> {
        let mut m = vec![
            (
                String::new(),
                Some(r#"{"name":"shop","workspaces":["services/*","packages/*"],"devDependencies":{"ms":"2.1.3"}}"#.to_string()),
            ),
            (
                "services/a".to_string(),
                Some(r#"{"name":"a","dependencies":{"left-pad":"1.3.0","lib":"1.0.0"}}"#.to_string()),
            ),
            (
                "services/b".to_string(),
                Some(r#"{"name":"b","dependencies":{"is-odd":"3.0.1","@types/ms":"0.7.34"}}"#.to_string()),
            ),
        ];
        if with_lib {
            m.push((
                "packages/lib".to_string(),
                Some(r#"{"name":"lib","dependencies":{"is-number":"7.0.0"}}"#.to_string()),
            ));
        }
        m
    }

    fn classic(text: &str, with_lib: bool) -> Lock {
        let mut l = lock(text);
        assert!(l.wants_importers());
        l.set_importers(&members(with_lib));
        l
    }

    #[test]
    fn yarn_1_is_read_with_the_members_package_json_files() {
        let l = classic(CLASSIC, true);
        let a: Vec<String> = l
            .closure(&l.importers_for("services/a"))
            .into_iter()
            .collect();
        assert_eq!(
            a,
            [
                "importer:",
                "importer:packages/lib",
                "importer:services/a",
                "is-number@7.0.0",
                "left-pad@1.3.0",
                "ms@2.1.3"
            ]
        );
        let old = classic(CLASSIC, true);
        let left_pad = classic(&CLASSIC.replace("sha512-l130", "sha512-l130-other"), true);
        assert_eq!(
            reach(&old, &left_pad, "yarn.lock", "services/a"),
            Reach::Changed(vec!["left-pad (changed)".into()])
        );
        assert_eq!(
            reach(&old, &left_pad, "yarn.lock", "services/b"),
            Reach::Unchanged
        );
        // lib's is-number reaches a through the member, not b.
        let n7 = classic(&CLASSIC.replace("sha512-n7", "sha512-n7-other"), true);
        assert_ne!(
            reach(&old, &n7, "yarn.lock", "services/a"),
            Reach::Unchanged
        );
        assert_eq!(
            reach(&old, &n7, "yarn.lock", "services/b"),
            Reach::Unchanged
        );
        // A download address beside the checksum is no change.
        let mirror = classic(
            &CLASSIC.replace("registry.yarnpkg.com", "mirror.example"),
            true,
        );
        assert_eq!(
            reach(&old, &mirror, "yarn.lock", "services/a"),
            Reach::Unchanged
        );
    }

    #[test]
    fn what_yarn_1_cannot_follow_is_judged_changed() {
        // Without packages/lib's package.json, a's `lib` leads nowhere: any change reaches a.
        let (old, new) = (
            classic(CLASSIC, false),
            classic(&CLASSIC.replace("sha512-m213", "sha512-m213-other"), false),
        );
        match reach(&old, &new, "yarn.lock", "services/a") {
            Reach::Changed(why) => assert!(
                why[0].starts_with(
                    "services/a/package.json names a package the lock file does not hold"
                ),
                "{why:?}"
            ),
            other => panic!("{other:?}"),
        }
        // A changed package no given member leads to (lib's is-number) reaches every service.
        let n7 = classic(&CLASSIC.replace("sha512-n7", "sha512-n7-other"), false);
        match reach(&old, &n7, "yarn.lock", "services/b") {
            Reach::Changed(why) => assert!(why[0].contains("judged changed"), "{why:?}"),
            other => panic!("{other:?}"),
        }
        // Nothing changed: nothing to judge.
        assert_eq!(
            reach(&old, &classic(CLASSIC, false), "yarn.lock", "services/a"),
            Reach::Unchanged
        );
    }

    #[test]
    fn yarn_1_ranges_with_spaces_sources_of_one_version_and_local_packages_are_followed() {
        let text = |safer: &str, gp: &str| {
            format!(
                "# yarn lockfile v1\n\n\nfdir@file:vendor/fdir:\n  version \"1.0.0\"\n\ngp@git+file:///g#main:\n  version \"1.0.0\"\n  resolved \"git+file:///g#{gp}\"\n\ngp@git+file:///g#v1:\n  version \"1.0.0\"\n  resolved \"git+file:///g#aaa\"\n\niconv-lite@0.4.24:\n  version \"0.4.24\"\n  integrity sha512-i\n  dependencies:\n    safer-buffer \">= 2.1.2 < 3\"\n\n\"safer-buffer@>= 2.1.2 < 3\", safer-buffer@^2.1.0:\n  version \"2.1.2\"\n  integrity sha512-{safer}\n"
            )
        };
        let manifests = vec![
            (String::new(), Some(r#"{"name":"root"}"#.to_string())),
            (
                "services/b".to_string(),
                Some(r#"{"name":"b","dependencies":{"gp":"git+file:///g#main"}}"#.to_string()),
            ),
            (
                "services/d".to_string(),
                Some(r#"{"name":"d","dependencies":{"iconv-lite":"0.4.24","gp":"git+file:///g#v1","fdir":"file:../../vendor/fdir"}}"#.to_string()),
            ),
        ];
        let read_with = |t: String| {
            let mut l = lock(&t);
            l.set_importers(&manifests);
            l
        };
        let old = read_with(text("s1", "bbb"));
        // d reaches safer-buffer through iconv-lite's range with spaces.
        let safer = read_with(text("s2", "bbb"));
        assert_ne!(
            reach(&old, &safer, "yarn.lock", "services/d"),
            Reach::Unchanged
        );
        assert_eq!(
            reach(&old, &safer, "yarn.lock", "services/b"),
            Reach::Unchanged
        );
        // Two commits of one git package, both 1.0.0: b's moved, d's did not.
        let gp = read_with(text("s1", "ccc"));
        assert_ne!(
            reach(&old, &gp, "yarn.lock", "services/b"),
            Reach::Unchanged
        );
        assert_eq!(
            reach(&old, &gp, "yarn.lock", "services/d"),
            Reach::Unchanged,
            "file: is followed from the member's folder, not opaque"
        );
    }

    #[test]
    fn yarn_2_descriptors_no_key_lists_lead_to_every_entry_of_the_name() {
        // A resolution rewrote safer-buffer: the dependent still asks for npm:^2.1.0.
        let text = |v: &str| {
            format!(
                "__metadata:\n  version: 8\n\n\"a@workspace:services/a\":\n  version: 0.0.0-use.local\n  resolution: \"a@workspace:services/a\"\n  dependencies:\n    safer-buffer: \"npm:^2.1.0\"\n  languageName: unknown\n  linkType: soft\n\n\"b@workspace:services/b\":\n  version: 0.0.0-use.local\n  resolution: \"b@workspace:services/b\"\n  languageName: unknown\n  linkType: soft\n\n\"safer-buffer@npm:{v}\":\n  version: {v}\n  resolution: \"safer-buffer@npm:{v}\"\n  checksum: c{v}\n  languageName: node\n  linkType: hard\n\n\"orphan@npm:1.0.0\":\n  version: 1.0.0\n  resolution: \"orphan@npm:1.0.0\"\n  checksum: o{v}\n  languageName: node\n  linkType: hard\n"
            )
        };
        let (old, new) = (lock(&text("2.1.1")), lock(&text("2.1.0")));
        assert_ne!(
            reach(&old, &new, "yarn.lock", "services/a"),
            Reach::Unchanged
        );
        // The orphan's change reaches no member: it counts for every one, b too.
        match reach(&old, &new, "yarn.lock", "services/b") {
            Reach::Changed(why) => assert!(why[0].contains("judged changed"), "{why:?}"),
            other => panic!("{other:?}"),
        }
    }
}
