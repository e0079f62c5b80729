//! Finding service folders: the service globs expanded over a [`Source`], and the globs that
//! matched no manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use globset::{Glob, GlobBuilder};

use super::SERVICE_FILE;
use crate::diag::{Diagnostic, FileDiags};
use crate::source::Source;

/// Expands the service globs to candidate folders (repository relative, with their content id
/// when the source has one). Whether a folder holds a `service.toml` is decided by the caller,
/// so that a cached folder needs no look-up.
pub(super) fn discover_services(
    source: &dyn Source,
    globs: &[String],
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Option<String>> {
    let mut found = BTreeMap::new();
    let mut not_utf8 = BTreeSet::new();
    for pattern in globs.iter().filter(|p| Glob::new(p).is_ok()) {
        let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let mut out = Found {
            dirs: &mut found,
            not_utf8: &mut not_utf8,
        };
        expand(source, String::new(), None, &segments, &mut out);
    }
    for dir in not_utf8 {
        diags.push(Diagnostic {
            file: PathBuf::from(&dir),
            line: None,
            key: None,
            message: "folder name is not valid UTF-8 (shown with \u{fffd}); Ferry names services and stacks after folders: rename it".to_string(),
        });
    }
    found
}

/// What the service globs matched: folders (with content ids), and folders whose names are not
/// UTF-8.
struct Found<'a> {
    dirs: &'a mut BTreeMap<String, Option<String>>,
    not_utf8: &'a mut BTreeSet<String>,
}

/// Reports each service glob that matched no folder holding a manifest.
pub(super) fn check_globs_matched(
    globs: &[String],
    manifests: &BTreeSet<String>,
    fd: &mut FileDiags<'_>,
) {
    for pattern in globs {
        let Ok(glob) = GlobBuilder::new(pattern).literal_separator(true).build() else {
            continue;
        };
        let m = glob.compile_matcher();
        if !manifests.iter().any(|d| m.is_match(d)) {
            fd.error(
                None,
                Some("project.services"),
                format!("`{pattern}` matches no folder with a {SERVICE_FILE}"),
            );
        }
    }
}

/// `child` inside the repository-relative folder `rel`.
fn join(rel: &str, child: &str) -> String {
    if rel.is_empty() {
        child.to_string()
    } else {
        format!("{rel}/{child}")
    }
}

/// Walks one glob, segment by segment, from folder `rel` (whose content id is `id`).
fn expand(
    source: &dyn Source,
    rel: String,
    id: Option<String>,
    segments: &[&str],
    out: &mut Found<'_>,
) {
    let Some((first, rest)) = segments.split_first() else {
        if !rel.is_empty() {
            out.dirs.insert(rel, id);
        }
        return;
    };
    if first.contains(['*', '?', '[', '{']) {
        for bad in source.non_utf8_subdirs(&rel) {
            out.not_utf8.insert(join(&rel, &bad));
        }
    }
    if *first == "**" {
        expand(source, rel.clone(), id, rest, out);
        for (child, cid) in source.subdirs(&rel) {
            expand(source, join(&rel, &child), cid, segments, out);
        }
    } else if first.contains(['*', '?', '[', '{']) {
        let Ok(m) = GlobBuilder::new(first)
            .literal_separator(true)
            .build()
            .map(|g| g.compile_matcher())
        else {
            return;
        };
        for (child, cid) in source.subdirs(&rel) {
            if m.is_match(&child) {
                expand(source, join(&rel, &child), cid, rest, out);
            }
        }
    } else {
        let path = join(&rel, first);
        if source.is_dir(&path) {
            let cid = if rest.is_empty() {
                source
                    .subdirs(&rel)
                    .into_iter()
                    .find(|(n, _)| n == first)
                    .and_then(|(_, i)| i)
            } else {
                None
            };
            expand(source, path, cid, rest, out);
        }
    }
}
