//! The working tree as a configuration source that knows what git ignores.

use std::cell::OnceCell;
use std::path::Path;

use ferry_manifest::{FsSource, ManifestErrors, Source, Workspace};
use git2::{Index, Repository, RepositoryOpenFlags};

/// The files on disk, as [`FsSource`] reads them, beside the repository they belong to, so that
/// a load can tell a folder git ignores (present here, absent from every commit and clone) from
/// one it tracks. Outside a repository, or at a folder that is not a repository's top level,
/// nothing is taken as ignored.
pub struct WorktreeSource {
    files: FsSource,
    repo: Option<Repository>,
    /// Read on the first question about an ignored path (most loads ask none).
    index: OnceCell<Option<Index>>,
}

impl std::fmt::Debug for WorktreeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorktreeSource")
            .field("files", &self.files)
            .field("repository", &self.repo.as_ref().map(Repository::path))
            .finish()
    }
}

impl WorktreeSource {
    pub fn new(root: &Path) -> WorktreeSource {
        let repo = Repository::open_ext(
            root,
            RepositoryOpenFlags::NO_SEARCH,
            std::iter::empty::<&std::ffi::OsStr>(),
        )
        .ok()
        .filter(|r| !r.is_bare());
        WorktreeSource {
            files: FsSource::new(root),
            repo,
            index: OnceCell::new(),
        }
    }

    /// Whether the index holds `path` itself or any file below it.
    fn tracked(&self, path: &str) -> bool {
        let index = self
            .index
            .get_or_init(|| self.repo.as_ref().and_then(|r| r.index().ok()));
        let Some(index) = index else {
            // Unreadable: take it as tracked, so nothing is refused on a guess.
            return true;
        };
        index.get_path(Path::new(path), 0).is_some()
            || index.find_prefix(format!("{path}/")).is_ok()
    }
}

/// Loads and validates the workspace at `root` from its working tree, as
/// [`ferry_manifest::load`] does, also refusing input globs into folders git ignores.
pub fn load_worktree(root: &Path) -> Result<Workspace, ManifestErrors> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    ferry_manifest::load_from(&root, &WorktreeSource::new(&root), None)
}

impl Source for WorktreeSource {
    fn read(&self, path: &str) -> std::io::Result<String> {
        self.files.read(path)
    }
    fn is_file(&self, path: &str) -> bool {
        self.files.is_file(path)
    }
    fn is_dir(&self, path: &str) -> bool {
        self.files.is_dir(path)
    }
    fn subdirs(&self, path: &str) -> Vec<(String, Option<String>)> {
        self.files.subdirs(path)
    }
    fn non_utf8_subdirs(&self, path: &str) -> Vec<String> {
        self.files.non_utf8_subdirs(path)
    }
    fn link_target(&self, path: &str) -> Option<String> {
        self.files.link_target(path)
    }
    fn links_in(&self, path: &str) -> Vec<(String, String)> {
        self.files.links_in(path)
    }
    fn not_a_file(&self, path: &str) -> Option<String> {
        self.files.not_a_file(path)
    }
    fn ignored(&self, path: &str) -> bool {
        let Some(repo) = &self.repo else {
            return false;
        };
        repo.is_path_ignored(path).unwrap_or(false) && !self.tracked(path)
    }
}
