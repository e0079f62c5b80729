//! The files of an artifact: a folder walked recursively (or one file), minus exclude globs,
//! sorted by name so the archive does not depend on the order the file system lists them in.

use std::fs;
use std::io;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::zip::Entry;

/// Compiles exclude globs (already validated by the manifest loader). `*` does not cross `/`;
/// a glob without `/` matches a file name at any depth, as in `.gitignore`.
pub fn exclude_set(globs: &[&str]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let g = g.trim_end_matches('/');
        let pattern = if g.contains('/') {
            g.trim_start_matches('/').to_string()
        } else {
            format!("**/{g}")
        };
        b.add(GlobBuilder::new(&pattern).literal_separator(true).build()?);
        // A folder excluded by name excludes what it holds.
        b.add(
            GlobBuilder::new(&format!("{pattern}/**"))
                .literal_separator(true)
                .build()?,
        );
    }
    b.build()
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o100 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &fs::Metadata) -> bool {
    false
}

/// The entries of `root` (a folder or a file). Symbolic links are followed; names are relative
/// to the folder (a single file is named by its file name).
pub fn collect(root: &Path, exclude: &GlobSet) -> io::Result<Vec<Entry>> {
    let meta = fs::metadata(root)?;
    let mut out = Vec::new();
    if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::other("file name is not UTF-8"))?
            .to_string();
        out.push(Entry {
            name,
            path: root.to_path_buf(),
            executable: is_executable(&meta),
        });
        return Ok(out);
    }
    walk(root, "", exclude, &mut out)?;
    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, exclude: &GlobSet, out: &mut Vec<Entry>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(io::Error::other(format!(
                "{}: file name is not UTF-8",
                entry.path().display()
            )));
        };
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        if exclude.is_match(&rel) {
            continue;
        }
        let path = entry.path();
        let meta = fs::metadata(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            walk(&path, &rel, exclude, out)?;
        } else if meta.is_file() {
            out.push(Entry {
                name: rel,
                path,
                executable: is_executable(&meta),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_match_names_at_any_depth_and_paths_from_the_root() {
        let set = exclude_set(&["__pycache__", "*.pyc", "tests/**", "docs/"]).unwrap();
        for hit in [
            "__pycache__/a.py",
            "lib/__pycache__/x",
            "a.pyc",
            "lib/b.pyc",
            "tests/t.py",
            "docs/readme.md",
        ] {
            assert!(set.is_match(hit), "{hit} should be excluded");
        }
        for miss in ["handler.py", "lib/tests/t.py", "lib/docs.md", "pyc"] {
            assert!(!set.is_match(miss), "{miss} should be kept");
        }
    }
}
