//! Where configuration files come from: the file system, or any other tree of files (a commit,
//! through `ferry-changes`). Paths are repository relative with `/`.

use std::fs;
use std::path::{Path, PathBuf};

/// A read-only tree of files.
pub trait Source {
    /// The text of a file.
    fn read(&self, path: &str) -> std::io::Result<String>;
    fn is_file(&self, path: &str) -> bool;
    fn is_dir(&self, path: &str) -> bool;
    /// The subfolders of a folder, sorted by name, each with a content id when the source has
    /// one (a git tree id): equal ids mean equal contents.
    fn subdirs(&self, path: &str) -> Vec<(String, Option<String>)>;
    /// The subfolders of a folder whose names are not UTF-8, decoded lossily (for messages):
    /// Ferry cannot name a service or a stack after them, so they are reported, never skipped.
    fn non_utf8_subdirs(&self, _path: &str) -> Vec<String> {
        Vec::new()
    }
    /// The target of `path` when `path` itself is a symbolic link, as written in the link.
    fn link_target(&self, _path: &str) -> Option<String> {
        None
    }
    /// The entries of a folder that are symbolic links, with their targets as written.
    fn links_in(&self, _path: &str) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Why `path`, which is not a file ([`is_file`](Self::is_file) is false), is not simply
    /// absent: a folder, a link that leads nowhere, or a place that cannot be read.
    fn not_a_file(&self, _path: &str) -> Option<String> {
        None
    }
    /// Whether git ignores `path` and tracks nothing at or below it: no commit holds its files
    /// and no `git status` lists them, so no plan ever sees them change. Only a working tree
    /// read beside its repository knows (a commit holds no ignored file).
    fn ignored(&self, _path: &str) -> bool {
        false
    }
}

/// Where the symbolic link at `path` points, as a repository-relative path; `None` when its
/// target is absolute or climbs out of the repository.
pub fn resolve_link(path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
    normalize_relative(&format!("{parent}/{target}"))
}

/// A source as it will be once `files` (repository-relative path → text) are written over
/// another: what a dry run loads to say what a real run's files would make of the workspace.
pub struct WithFiles<'a> {
    base: &'a dyn Source,
    files: std::collections::BTreeMap<String, String>,
}

impl<'a> WithFiles<'a> {
    pub fn new(base: &'a dyn Source, files: impl IntoIterator<Item = (String, String)>) -> Self {
        WithFiles {
            base,
            files: files.into_iter().collect(),
        }
    }

    /// The paths of the files written below folder `dir` (`""`: the root), relative to it.
    fn below<'s>(&'s self, dir: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.files.keys().filter_map(move |f| {
            if dir.is_empty() {
                Some(f.as_str())
            } else {
                f.strip_prefix(dir)?.strip_prefix('/')
            }
        })
    }
}

impl Source for WithFiles<'_> {
    fn read(&self, path: &str) -> std::io::Result<String> {
        match self.files.get(path) {
            Some(text) => Ok(text.clone()),
            None => self.base.read(path),
        }
    }
    fn is_file(&self, path: &str) -> bool {
        self.files.contains_key(path) || self.base.is_file(path)
    }
    fn is_dir(&self, path: &str) -> bool {
        self.base.is_dir(path) || self.below(path).next().is_some()
    }
    fn subdirs(&self, path: &str) -> Vec<(String, Option<String>)> {
        let mut dirs = self.base.subdirs(path);
        for rest in self.below(path) {
            let Some((first, _)) = rest.split_once('/') else {
                continue;
            };
            match dirs.iter_mut().find(|(name, _)| name == first) {
                // Its contents change: its content id no longer says what it holds.
                Some((_, id)) => *id = None,
                None if !skipped_folder(first) => dirs.push((first.to_string(), None)),
                None => {}
            }
        }
        dirs.sort();
        dirs
    }
    fn non_utf8_subdirs(&self, path: &str) -> Vec<String> {
        self.base.non_utf8_subdirs(path)
    }
    fn link_target(&self, path: &str) -> Option<String> {
        self.base.link_target(path)
    }
    fn links_in(&self, path: &str) -> Vec<(String, String)> {
        self.base.links_in(path)
    }
    fn not_a_file(&self, path: &str) -> Option<String> {
        if self.files.contains_key(path) {
            return None;
        }
        self.base.not_a_file(path)
    }
    fn ignored(&self, path: &str) -> bool {
        self.base.ignored(path)
    }
}

/// The working tree on disk.
#[derive(Debug, Clone)]
pub struct FsSource {
    root: PathBuf,
}

impl FsSource {
    pub fn new(root: &Path) -> Self {
        FsSource {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }
}

/// Folders never searched for services.
pub fn skipped_folder(name: &str) -> bool {
    name.starts_with('.') || name == "target" || name == "node_modules"
}

impl Source for FsSource {
    fn read(&self, path: &str) -> std::io::Result<String> {
        fs::read_to_string(self.path(path))
    }

    fn is_file(&self, path: &str) -> bool {
        self.path(path).is_file()
    }

    fn is_dir(&self, path: &str) -> bool {
        self.path(path).is_dir()
    }

    fn subdirs(&self, path: &str) -> Vec<(String, Option<String>)> {
        let mut v: Vec<(String, Option<String>)> = fs::read_dir(self.path(path))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !skipped_folder(n))
            .map(|n| (n, None))
            .collect();
        v.sort();
        v
    }

    fn non_utf8_subdirs(&self, path: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path(path))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
            .filter(|n| n.to_str().is_none())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn links_in(&self, path: &str) -> Vec<(String, String)> {
        let dir = self.path(path);
        let mut v: Vec<(String, String)> = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let target = fs::read_link(e.path()).ok()?;
                Some((name, target.to_string_lossy().into_owned()))
            })
            .collect();
        v.sort();
        v
    }

    fn not_a_file(&self, path: &str) -> Option<String> {
        let full = self.path(path);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => Some(match fs::read_link(&full) {
                Ok(t) => format!("is a symbolic link to `{}`, which is no file", t.display()),
                Err(e) => format!("is a symbolic link that cannot be read: {e}"),
            }),
            Ok(m) if m.is_dir() => Some("is a folder, not a file".into()),
            Ok(_) => Some("is not a regular file".into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("cannot be read: {e}")),
        }
    }

    fn link_target(&self, path: &str) -> Option<String> {
        // Only a symbolic link can be read as one: anything else is an error here.
        fs::read_link(self.path(path))
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    }
}

/// `path` with `.` and `..` resolved lexically; `None` when it climbs above its start (out of
/// the repository, for a repository-relative path).
pub fn normalize_relative(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of two folders, each with a content id, as a commit gives.
    struct Tree;
    impl Source for Tree {
        fn read(&self, path: &str) -> std::io::Result<String> {
            match path {
                "a/x.toml" => Ok("old".into()),
                _ => Err(std::io::ErrorKind::NotFound.into()),
            }
        }
        fn is_file(&self, path: &str) -> bool {
            path == "a/x.toml"
        }
        fn is_dir(&self, path: &str) -> bool {
            matches!(path, "" | "a" | "b")
        }
        fn subdirs(&self, path: &str) -> Vec<(String, Option<String>)> {
            match path {
                "" => vec![
                    ("a".into(), Some("1".into())),
                    ("b".into(), Some("2".into())),
                ],
                _ => Vec::new(),
            }
        }
    }

    #[test]
    fn files_written_over_a_source_are_read_and_their_folders_lose_their_ids() {
        let files = [
            ("a/x.toml".to_string(), "new".to_string()),
            ("c/d/y.toml".to_string(), "y".to_string()),
            (".hidden/z".to_string(), "z".to_string()),
        ];
        let s = WithFiles::new(&Tree, files);
        assert_eq!(s.read("a/x.toml").unwrap(), "new");
        assert!(s.read("b/none").is_err());
        assert!(s.is_file("c/d/y.toml") && s.is_dir("c") && s.is_dir("c/d") && !s.is_dir("d"));
        assert_eq!(
            s.subdirs(""),
            vec![
                ("a".to_string(), None),
                ("b".to_string(), Some("2".to_string())),
                ("c".to_string(), None),
            ]
        );
        assert_eq!(s.subdirs("c"), vec![("d".to_string(), None)]);
        assert_eq!(s.not_a_file("a/x.toml"), None);
    }
}
