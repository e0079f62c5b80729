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

/// Reports each glob that does not parse, or that is absolute or climbs with `..`.
pub(super) fn check_globs(fd: &mut FileDiags<'_>, key: &str, globs: &[(String, Range<usize>)]) {
    for (g, span) in globs {
        if let Err(e) = Glob::new(g) {
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
        }
    }
}
