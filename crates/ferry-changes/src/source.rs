use std::cell::RefCell;
use std::collections::HashMap;
use std::io;

use ferry_manifest::{Source, skipped_folder};
use git2::{ObjectType, Repository, Tree};

use crate::{ChangesError, Repo};

/// The files of one commit, read from the object database (the working tree is not looked at).
/// Each folder's tree is read once: the folder holding a monorepo's services is large and sits
/// behind a delta chain, and libgit2 does not keep trees over 4 KiB in its own cache.
pub struct CommitSource<'r> {
    repo: &'r Repository,
    trees: RefCell<HashMap<String, Option<Tree<'r>>>>,
    /// The last entry looked up: a load asks of one manifest whether it is a file, whether it
    /// is a link, then reads it.
    last: RefCell<Option<(String, Option<Entry>)>>,
}

/// A tree entry: id, kind and mode.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: git2::Oid,
    kind: Option<ObjectType>,
    mode: i32,
}

impl std::fmt::Debug for CommitSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitSource")
            .field("folders read", &self.trees.borrow().len())
            .finish()
    }
}

impl Repo {
    /// The files of `rev` as a configuration source.
    pub fn source_at(&self, rev: &str) -> Result<CommitSource<'_>, ChangesError> {
        let tree = self
            .repository()
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .and_then(|c| c.tree())
            .map_err(|cause| ChangesError::HeadNotFound {
                head: rev.to_string(),
                root: self.root().to_path_buf(),
                cause,
            })?;
        let trees = RefCell::new(HashMap::from([(String::new(), Some(tree))]));
        Ok(CommitSource {
            repo: self.repository(),
            trees,
            last: RefCell::new(None),
        })
    }
}

impl<'r> CommitSource<'r> {
    /// The id of the commit's root tree: equal ids mean equal files.
    pub fn tree_id(&self) -> String {
        self.tree("")
            .map(|t| t.id().to_string())
            .expect("the root tree is read when the source is made")
    }

    /// The tree of a folder, read at most once.
    fn tree(&self, dir: &str) -> Option<Tree<'r>> {
        if let Some(t) = self.trees.borrow().get(dir) {
            return t.clone();
        }
        let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir));
        let tree = self.tree(parent).and_then(|p| {
            let entry = p.get_name(name)?;
            (entry.kind() == Some(ObjectType::Tree))
                .then(|| self.repo.find_tree(entry.id()).ok())
                .flatten()
        });
        self.trees
            .borrow_mut()
            .insert(dir.to_string(), tree.clone());
        tree
    }

    /// The id and kind of a file or folder.
    fn entry(&self, path: &str) -> Option<(git2::Oid, Option<ObjectType>)> {
        self.entry_of(path).map(|e| (e.id, e.kind))
    }

    /// What a symbolic link's blob holds: its target, as written.
    fn link_text(&self, blob: git2::Oid) -> Option<String> {
        let target = crate::repo::blob_bytes(self.repo, blob)?;
        Some(String::from_utf8_lossy(&target).into_owned())
    }

    fn entry_of(&self, path: &str) -> Option<Entry> {
        if let Some((last, e)) = &*self.last.borrow()
            && last == path
        {
            return *e;
        }
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let e = self.tree(parent).and_then(|tree| {
            let entry = tree.get_name(name)?;
            Some(Entry {
                id: entry.id(),
                kind: entry.kind(),
                mode: entry.filemode(),
            })
        });
        *self.last.borrow_mut() = Some((path.to_string(), e));
        e
    }
}

impl Source for CommitSource<'_> {
    fn read(&self, path: &str) -> io::Result<String> {
        let not_found = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{path} is not in the commit"),
            )
        };
        let (id, _) = self
            .entry(path)
            .filter(|(_, k)| *k == Some(ObjectType::Blob))
            .ok_or_else(not_found)?;
        let blob = crate::repo::blob_bytes(self.repo, id).ok_or_else(not_found)?;
        String::from_utf8(blob).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn is_file(&self, path: &str) -> bool {
        self.entry(path)
            .is_some_and(|(_, k)| k == Some(ObjectType::Blob))
    }

    fn is_dir(&self, path: &str) -> bool {
        self.tree(path).is_some()
    }

    fn subdirs(&self, path: &str) -> Vec<(String, Option<String>)> {
        let Some(tree) = self.tree(path) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Option<String>)> = tree
            .iter()
            .filter(|e| e.kind() == Some(ObjectType::Tree))
            .filter_map(|e| Some((e.name().ok()?.to_string(), Some(e.id().to_string()))))
            .filter(|(n, _)| !skipped_folder(n))
            .collect();
        out.sort();
        out
    }

    fn non_utf8_subdirs(&self, path: &str) -> Vec<String> {
        let Some(tree) = self.tree(path) else {
            return Vec::new();
        };
        tree.iter()
            .filter(|e| e.kind() == Some(ObjectType::Tree) && e.name().is_err())
            .map(|e| String::from_utf8_lossy(e.name_bytes()).into_owned())
            .collect()
    }

    fn links_in(&self, path: &str) -> Vec<(String, String)> {
        let Some(tree) = self.tree(path) else {
            return Vec::new();
        };
        tree.iter()
            .filter(|e| e.filemode() == 0o120_000)
            .filter_map(|e| Some((e.name().ok()?.to_string(), self.link_text(e.id())?)))
            .collect()
    }

    fn not_a_file(&self, path: &str) -> Option<String> {
        let (_, kind) = self.entry(path)?;
        (kind == Some(ObjectType::Tree)).then(|| "is a folder, not a file".to_string())
    }

    /// A symlink in a commit is a blob (mode 120000) holding its target.
    fn link_target(&self, path: &str) -> Option<String> {
        let entry = self.entry_of(path)?;
        if entry.mode != 0o120_000 {
            return None;
        }
        self.link_text(entry.id)
    }
}
