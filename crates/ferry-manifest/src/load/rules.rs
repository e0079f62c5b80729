//! Value rules shared by `ferry.toml` and `service.toml`: project and service names, and the
//! globs that name repository paths.

use std::ops::Range;

use globset::Glob;

use crate::diag::FileDiags;

/// A project or service name: lowercase letters, digits and '-', starting with a letter and not
/// ending with '-'.
pub(super) fn is_lower_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
}

/// Reports each glob that does not parse, that is absolute or climbs with `..`, or that has a
/// `.` or empty segment (`./services/*`, `a//b`): paths are matched as git names them, so such
/// a glob would never match a change. Returns the globs that pass, so that one reported bad glob
/// does not also find folders (and then duplicate services) of its own.
pub(super) fn check_globs(
    fd: &mut FileDiags<'_>,
    key: &str,
    globs: Vec<(String, Range<usize>)>,
) -> Vec<String> {
    let mut good = Vec::with_capacity(globs.len());
    for (g, span) in globs {
        if let Err(e) = Glob::new(&g) {
            fd.error(
                Some(span.clone()),
                Some(key),
                format!("invalid glob `{g}`: {}", e.kind()),
            );
        } else if g.starts_with('/') || g.split('/').any(|s| s == "..") {
            fd.error(
                Some(span.clone()),
                Some(key),
                format!("`{g}` must be relative to the repository root, without `..`"),
            );
        } else if g.split('/').any(|s| s == "." || s.is_empty()) {
            let plain = g
                .split('/')
                .filter(|s| *s != "." && !s.is_empty())
                .collect::<Vec<_>>()
                .join("/");
            let hint = if plain.is_empty() {
                "name the folders (e.g. `services/*`)".to_string()
            } else {
                format!("write `{plain}`")
            };
            fd.error(
                Some(span.clone()),
                Some(key),
                format!(
                    "`{g}` has a `.` or empty segment, so it would never match a path as git names it: {hint}"
                ),
            );
        } else {
            good.push(g);
        }
    }
    good
}
