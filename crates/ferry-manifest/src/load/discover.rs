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
    let mut linked = BTreeMap::new();
    let mut outside = BTreeMap::new();
    for pattern in globs.iter().filter(|p| Glob::new(p).is_ok()) {
        let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let mut out = Found {
            dirs: &mut found,
            not_utf8: &mut not_utf8,
            linked: &mut linked,
            outside: &mut outside,
        };
        expand(source, String::new(), None, &segments, &mut out);
    }
    for (link, real) in linked {
        diags.push(Diagnostic {
            file: PathBuf::from(&link),
            line: None,
            key: None,
            message: format!("is a symbolic link to the service folder `{real}`, and Ferry does not follow links to find services (a plan sees a service's changes by its own paths): name `{real}` in project.services, or move the folder here"),
        });
    }
    for (link, target) in outside {
        diags.push(Diagnostic {
            file: PathBuf::from(&link),
            line: None,
            key: None,
            message: format!("is a symbolic link out of the repository (to `{target}`), which a service glob names: Ferry does not follow it (a clone holds the link, not the folder, and no plan sees changes there); move the service into the repository"),
        });
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
    /// Links the globs name that lead to a service folder of the repository: link → folder.
    linked: &'a mut BTreeMap<String, String>,
    /// Links the globs name that lead out of the repository: link → target as written.
    outside: &'a mut BTreeMap<String, String>,
}

/// Notes each link in folder `rel` whose name the last segment of a service glob matches (and
/// that is no folder Ferry skips), as [`note_link`] does.
fn note_links(source: &dyn Source, rel: &str, matches: impl Fn(&str) -> bool, out: &mut Found<'_>) {
    for (name, target) in source.links_in(rel) {
        if matches(&name) && !crate::source::skipped_folder(&name) {
            note_link(source, rel, &name, &target, out);
        }
    }
}

/// Notes `rel/name`, a symbolic link a service glob names, when it leads to a folder of the
/// repository holding a manifest: such a service would otherwise be lost without a word.
fn note_link(source: &dyn Source, rel: &str, name: &str, target: &str, out: &mut Found<'_>) {
    let link = join(rel, name);
    match crate::source::resolve_link(&link, target) {
        Some(real) if source.is_file(&format!("{real}/{SERVICE_FILE}")) => {
            out.linked.insert(link, real);
        }
        Some(_) => {}
        // Out of the repository, to a folder holding a manifest (as the working tree shows it):
        // a clone holds the link, not what it leads to, and the service there was lost without
        // a word. (A link out to anything else, a build's folder, is no service: passed over.)
        None if source.is_file(&format!("{link}/{SERVICE_FILE}")) => {
            out.outside.insert(link, target.to_string());
        }
        None => {}
    }
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
    if crate::has_wildcard(first) {
        for bad in source.non_utf8_subdirs(&rel) {
            out.not_utf8.insert(join(&rel, &bad));
        }
    }
    if *first == "**" {
        expand(source, rel.clone(), id, rest, out);
        if rest.is_empty() {
            note_links(source, &rel, |_| true, out);
        }
        for (child, cid) in source.subdirs(&rel) {
            expand(source, join(&rel, &child), cid, segments, out);
        }
    } else if crate::has_wildcard(first) {
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
        if rest.is_empty() {
            note_links(source, &rel, |name| m.is_match(name), out);
        }
    } else {
        let path = join(&rel, first);
        if let Some(target) = source.link_target(&path) {
            // The working tree would follow it, a commit cannot: neither does.
            if rest.is_empty() {
                note_link(source, &rel, first, &target, out);
            }
        } else if source.is_dir(&path) {
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
