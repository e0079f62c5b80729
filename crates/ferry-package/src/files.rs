//! The files of an artifact: a folder walked recursively (or one file), minus exclude globs,
//! sorted by name so the archive does not depend on the order the file system lists them in.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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

/// The entries of `root` (a folder or a file); names are relative to the folder (a single file
/// is named by its file name). Symbolic links are followed while they resolve inside
/// `boundary` (the repository): a link out of it is refused, since it would package a file that
/// is not versioned with the repository (a credentials file, say) and whose changes nobody
/// sees; a broken link and a link that loops back into a folder being walked are refused too.
pub fn collect(root: &Path, exclude: &GlobSet, boundary: &Path) -> io::Result<Vec<Entry>> {
    let boundary = fs::canonicalize(boundary)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", boundary.display())))?;
    let real = resolve(root, &boundary)?;
    let meta = fs::metadata(&real)?;
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
    let mut walk = Walk {
        exclude,
        boundary: &boundary,
        open: vec![real.clone()],
        out: &mut out,
    };
    walk.dir(root, &real, "")?;
    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(out)
}

/// Where `path` really is, refused when that is outside `boundary` (already canonical).
fn resolve(path: &Path, boundary: &Path) -> io::Result<PathBuf> {
    let real = fs::canonicalize(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{}: {e} (a broken or looping symbolic link?); remove it or exclude it",
                path.display()
            ),
        )
    })?;
    if !real.starts_with(boundary) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} leads to {}, outside the repository {}: Ferry packages only files versioned with the repository (a change outside it would go unseen, and it could be a secret); copy what the service needs into the repository, or exclude the link",
                path.display(),
                real.display(),
                boundary.display()
            ),
        ));
    }
    Ok(real)
}

struct Walk<'a> {
    exclude: &'a GlobSet,
    boundary: &'a Path,
    /// The real paths of the folders being walked, outermost first: a link back into one of
    /// them is a loop.
    open: Vec<PathBuf>,
    out: &'a mut Vec<Entry>,
}

impl Walk<'_> {
    /// Walks folder `dir` (really at `real`), its entries named under `prefix`.
    fn dir(&mut self, dir: &Path, real: &Path, prefix: &str) -> io::Result<()> {
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
            if self.exclude.is_match(&rel) {
                continue;
            }
            let path = entry.path();
            let link = entry.file_type().is_ok_and(|t| t.is_symlink());
            let target = if link {
                resolve(&path, self.boundary)?
            } else {
                real.join(name)
            };
            let meta = fs::metadata(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            if meta.is_dir() {
                if self.open.contains(&target) {
                    return Err(io::Error::other(format!(
                        "{} is a symbolic link back into {}, a folder that holds it: the walk would never end; remove it or exclude it",
                        path.display(),
                        target.display()
                    )));
                }
                self.open.push(target.clone());
                self.dir(&path, &target, &rel)?;
                self.open.pop();
            } else if meta.is_file() {
                self.out.push(Entry {
                    name: rel,
                    path,
                    executable: is_executable(&meta),
                });
            }
        }
        Ok(())
    }
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

    #[cfg(unix)]
    #[test]
    fn links_inside_the_repository_are_followed_and_links_out_of_it_refused() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("credentials"), "secret").unwrap();
        let repo = tempfile::tempdir().unwrap();
        let svc = repo.path().join("services/api");
        fs::create_dir_all(svc.join("src")).unwrap();
        fs::create_dir_all(repo.path().join("shared")).unwrap();
        fs::write(repo.path().join("shared/lib.py"), "L = 1").unwrap();
        fs::write(svc.join("src/app.py"), "A = 1").unwrap();
        symlink("../../../shared", svc.join("src/shared")).unwrap();
        let none = exclude_set(&[]).unwrap();
        let names: Vec<String> = collect(&svc.join("src"), &none, repo.path())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["app.py", "shared/lib.py"]);

        symlink(outside.path().join("credentials"), svc.join("src/.env")).unwrap();
        let err = collect(&svc.join("src"), &none, repo.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("outside the repository"), "{err}");
        // Excluded, it is not looked at.
        let env = exclude_set(&[".env"]).unwrap();
        assert_eq!(
            collect(&svc.join("src"), &env, repo.path()).unwrap().len(),
            2
        );
        fs::remove_file(svc.join("src/.env")).unwrap();

        // A link back into a folder being walked, and a broken link.
        symlink("..", svc.join("src/up")).unwrap();
        let err = collect(&svc.join("src"), &none, repo.path()).unwrap_err();
        assert!(err.to_string().contains("would never end"), "{err}");
        fs::remove_file(svc.join("src/up")).unwrap();
        symlink("nowhere", svc.join("src/broken")).unwrap();
        let err = collect(&svc.join("src"), &none, repo.path()).unwrap_err();
        assert!(err.to_string().contains("broken or looping"), "{err}");
        fs::remove_file(svc.join("src/broken")).unwrap();

        // The artifact itself a link out of the repository.
        symlink(outside.path(), svc.join("out")).unwrap();
        let err = collect(&svc.join("out"), &none, repo.path()).unwrap_err();
        assert!(err.to_string().contains("outside the repository"), "{err}");
    }
}
