//! Where configuration files come from: the file system, or any other tree of files (a commit,
//! through `ferry-changes`). Paths are repository relative with `/`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// Whether a file lies inside the repository once symlinks on its way are followed: a file
    /// outside it is not versioned with it, so its edits would never be seen.
    fn inside(&self, _path: &str) -> bool {
        true
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

    fn inside(&self, path: &str) -> bool {
        let root = fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        match fs::canonicalize(self.path(path)) {
            Ok(real) => real.starts_with(&root),
            // Missing files are reported as missing elsewhere.
            Err(_) => true,
        }
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

/// What is known of a folder with a given content id.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Entry {
    /// No `service.toml` in it.
    NotAService,
    /// A valid service: its manifest text (for the line numbers of a later problem, e.g. an
    /// unknown dependency) and what it parsed to.
    Service {
        manifest: String,
        parsed: Box<crate::load::Parsed>,
    },
}

/// Parsed-folder cache keyed by `(folder, content id)`, for sources that have content ids. A
/// folder whose id is unchanged needs no read and no parse. Only services that loaded without a
/// problem and whose template lies inside their folder are kept. A cache written by another
/// build of Ferry is not used (the rules that parsed it may differ).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ManifestCache {
    version: u32,
    build: String,
    entries: HashMap<String, Entry>,
    #[serde(skip)]
    used: HashSet<String>,
    #[serde(skip)]
    changed: bool,
}

const CACHE_VERSION: u32 = 2;

impl ManifestCache {
    /// Reads a cache file; a missing, unreadable or outdated one, or one of another build, gives
    /// an empty cache.
    pub fn read(path: &Path) -> ManifestCache {
        let build = crate::memo::build_id();
        fs::read(path)
            .ok()
            .and_then(|b| postcard::from_bytes::<ManifestCache>(&b).ok())
            .filter(|c| c.version == CACHE_VERSION && c.build == build)
            .unwrap_or_else(|| ManifestCache {
                version: CACHE_VERSION,
                build,
                ..Default::default()
            })
    }

    /// Writes the cache (only the entries used by the last load) when it changed. Atomic: a
    /// temporary file renamed into place.
    pub fn write(&mut self, path: &Path) -> std::io::Result<()> {
        let unused = self.entries.len() != self.used.len();
        if !self.changed && !unused {
            return Ok(());
        }
        let used = std::mem::take(&mut self.used);
        self.entries.retain(|k, _| used.contains(k));
        self.used = used;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        fs::write(
            &tmp,
            postcard::to_stdvec(self).map_err(std::io::Error::other)?,
        )?;
        fs::rename(tmp, path)?;
        self.changed = false;
        Ok(())
    }

    fn key(dir: &str, id: &str) -> String {
        format!("{dir}\t{id}")
    }

    /// `Some(None)`: known not to be a service; `Some(Some((text, parsed)))`: a cached service.
    pub(crate) fn get(
        &mut self,
        dir: &str,
        id: &str,
    ) -> Option<Option<(&str, &crate::load::Parsed)>> {
        let key = Self::key(dir, id);
        let entry = self.entries.get(&key)?;
        self.used.insert(key);
        Some(match entry {
            Entry::NotAService => None,
            Entry::Service { manifest, parsed } => Some((manifest.as_str(), parsed)),
        })
    }

    pub(crate) fn put(
        &mut self,
        dir: &str,
        id: &str,
        service: Option<(String, crate::load::Parsed)>,
    ) {
        let key = Self::key(dir, id);
        self.used.insert(key.clone());
        let entry = match service {
            Some((manifest, parsed)) => Entry::Service {
                manifest,
                parsed: Box::new(parsed),
            },
            None => Entry::NotAService,
        };
        self.entries.insert(key, entry);
        self.changed = true;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
