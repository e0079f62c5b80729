use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::{Delta, DiffOptions, Oid, Repository, RepositoryOpenFlags};
use serde::Serialize;

/// What to compare the base with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A revision: a commit id, branch, tag, `HEAD~3`, …
    Rev(String),
    /// The working tree: committed changes, staged and unstaged edits, untracked (not ignored)
    /// files.
    WorkingTree,
}

/// Why a base commit cannot be used for change detection. Each says what to do. Serialized (in
/// a plan's `base-unavailable` reason, beside the `base` it names) as its `cause` and the
/// fields other than the base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "cause", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BaseUnavailable {
    #[error(
        "base `{base}` is not in the repository (was history rewritten by a force push, or is the name wrong?)"
    )]
    NotFound {
        #[serde(skip_serializing)]
        base: String,
    },
    #[error("base `{base}` is a {kind}, not a commit: give a branch, a tag or a commit id")]
    NotACommit {
        #[serde(skip_serializing)]
        base: String,
        /// Serialized as `object`: the reason that holds a cause has a `kind` of its own.
        #[serde(rename = "object")]
        kind: String,
    },
    #[error(
        "base `{base}` is hidden by the shallow clone's history boundary; deepen it with `git fetch --unshallow` (CodeBuild: a full clone, git-clone-depth 0; GitHub Actions: fetch-depth: 0)"
    )]
    Shallow {
        #[serde(skip_serializing)]
        base: String,
    },
    #[error("{} is not a git repository (e.g. a CodePipeline source zip); give the build a git clone (CodeBuild: CODEBUILD_CLONE_REF output format)", .root.display())]
    NoRepository { root: PathBuf },
    #[error("{} is a folder inside the git repository at {}, not its top: Ferry reads changes from the top of a repository (a service folder must not borrow another repository's history); put ferry.toml there, or give --root {}, or make {} a repository of its own (`git init`)", .root.display(), .top.display(), .top.display(), .root.display())]
    NotRepositoryRoot { root: PathBuf, top: PathBuf },
    #[error("{} is a git repository that cannot be opened: {message}", .root.display())]
    Unopenable { root: PathBuf, message: String },
    #[error(
        "head `{head}` is older than base `{base}`, which descends from it: a deploy takes the service back to older code (a build of an old commit run again?)"
    )]
    HeadBehind {
        #[serde(skip_serializing)]
        base: String,
        head: String,
    },
    #[error(
        "base `{base}` is not an ancestor of head `{head}` (history diverged, e.g. after a force push)"
    )]
    NotAncestor {
        #[serde(skip_serializing)]
        base: String,
        head: String,
    },
    #[error("the branch checked out in the repository at {} has no commit yet, so base `{base}` names nothing: everything counts as changed until the first commit", .root.display())]
    NoCommitYet {
        #[serde(skip_serializing)]
        base: String,
        root: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangesError {
    #[error(transparent)]
    BaseUnavailable(#[from] BaseUnavailable),
    #[error("head `{head}` is not a commit of the repository at {} ({}): give a branch, a tag or a commit id", .root.display(), .cause.message())]
    HeadNotFound {
        head: String,
        root: PathBuf,
        /// git's own reason, of which only the message is shown.
        cause: git2::Error,
    },
    #[error("the repository at {} has no commit yet; commit first: a package is made from a commit", .root.display())]
    NoCommit { root: PathBuf },
    #[error("failed to {action} in {}: {source}", .root.display())]
    Git {
        action: &'static str,
        root: PathBuf,
        source: git2::Error,
    },
}

/// The result of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangedPaths {
    /// Every path that differs, repository relative with `/`; both sides of a rename.
    pub paths: BTreeSet<String>,
    /// The paths that exist at the base but not at the head.
    pub deleted: BTreeSet<String>,
    /// Those of `paths` that are submodules (a git link, on either side) or other repositories
    /// inside the working tree: git lists no files below one, so a change to it stands for a
    /// change to anything below it (see `ferry_manifest::Owners::classify_changes`).
    pub submodules: BTreeSet<String>,
    /// Of the working tree: the committed files a sparse checkout leaves off the disk
    /// (skip-worktree, and absent). No change, but a package made from this tree would lack
    /// them.
    pub sparse_absent: BTreeSet<String>,
    /// The base is on another line of history than the head (another branch deployed the
    /// stage; a squash merge, rebase or amend replaced its commit): the paths are still exactly
    /// what differs between their trees.
    pub diverged: bool,
}

/// The mode git gives a submodule's entry in a tree: a link to a commit of another repository.
const GITLINK: i32 = 0o160000;

/// Whether a repository-relative path is in Ferry's output folder (or is that folder).
fn in_output_dir(path: &str) -> bool {
    path.strip_prefix(ferry_manifest::OUTPUT_DIR)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Creates Ferry's output folder under `root` with a `.gitignore` that ignores all of it, so
/// that what Ferry writes never shows in `git status`, whether or not the repository ignores
/// `target/`. Returns the folder.
///
/// Refused when the repository commits anything there (`target` or `target/ferry` itself, or
/// anything under it): Ferry writes its reports, packages and outputs files there, and a
/// committed link (`target/ferry/reports/deploy-dev.md -> ~/.bashrc`, from a pull request, say)
/// would have a CI build write where it leads. A link the developer made (`target` on another
/// disk) is theirs, and fine.
pub fn prepare_output_dir(root: &Path) -> std::io::Result<PathBuf> {
    let dir = root.join(ferry_manifest::OUTPUT_DIR);
    if let Some((committed, remove)) = committed_in_output_dir(root) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "the repository commits {committed}: Ferry's output folder {} holds only what Ferry makes, and Ferry writes there (through a committed link, anywhere); remove it from the repository: git rm -r --cached {remove}",
                ferry_manifest::OUTPUT_DIR,
            ),
        ));
    }
    std::fs::create_dir_all(&dir)?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(
            &ignore,
            "# Written by Ferry: everything here is made by Ferry and never committed.\n*\n",
        )?;
    }
    Ok(dir)
}

/// The first path the index of the repository at `root` holds in Ferry's output folder (or
/// `target` or `target/ferry` itself), if any (none outside a repository), and what to remove;
/// both as the repository names them.
fn committed_in_output_dir(root: &Path) -> Option<(String, String)> {
    let index = ProjectIndex::open(root)?;
    // `target` or `target/ferry` committed as a link (or a file).
    for exact in ["target", ferry_manifest::OUTPUT_DIR] {
        if index.holds(exact) {
            let named = index.repo_path(exact);
            return Some((named.clone(), named));
        }
    }
    let path = index.first_under(ferry_manifest::OUTPUT_DIR)?;
    Some((path, index.repo_path(ferry_manifest::OUTPUT_DIR)))
}

/// The index of the git repository around a project folder: what it commits, looked up by the
/// project's own paths. `ferry.toml` may lie in a subfolder of the repository, and `GIT_DIR` is
/// honoured. Read once, for checks of what a clone would hold (a committed output folder, the
/// links a Serverless service's folder commits).
pub struct ProjectIndex {
    index: git2::Index,
    /// The repository's work tree, canonical.
    top: PathBuf,
    /// The project's folder in it (`""` at its top, else `infra`).
    project: String,
    /// `core.ignorecase`: the file system takes `Target/ferry` for `target/ferry`.
    ignorecase: bool,
}

impl ProjectIndex {
    /// The index around `root`; `None` outside a repository, or in one without a work tree.
    pub fn open(root: &Path) -> Option<ProjectIndex> {
        let repo = Repository::open_ext(
            root,
            RepositoryOpenFlags::FROM_ENV,
            std::iter::empty::<&std::ffi::OsStr>(),
        )
        .ok()?;
        let index = repo.index().ok()?;
        let top = std::fs::canonicalize(repo.workdir()?).ok()?;
        let here = std::fs::canonicalize(root).ok()?;
        let project = here.strip_prefix(&top).ok()?.to_str()?.to_string();
        let ignorecase = repo
            .config()
            .and_then(|c| c.get_bool("core.ignorecase"))
            .unwrap_or(false);
        Some(ProjectIndex {
            index,
            top,
            project,
            ignorecase,
        })
    }

    /// `rel` (project-relative) as the repository names it.
    pub fn repo_path(&self, rel: &str) -> String {
        if self.project.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.project)
        }
    }

    /// Whether the index holds `rel` itself (a file or a link, not a folder), also only at a
    /// merge conflict's stages (a checkout writes it all the same), and under another letter
    /// case where `core.ignorecase` says the file system does not tell them apart.
    pub fn holds(&self, rel: &str) -> bool {
        let path = self.repo_path(rel);
        if self.ignorecase {
            return self
                .index
                .iter()
                .any(|e| e.path.eq_ignore_ascii_case(path.as_bytes()));
        }
        (0..=3).any(|stage| self.index.get_path(Path::new(&path), stage).is_some())
    }

    /// The first path the index holds under folder `rel`, as the repository names it (any
    /// stage; any letter case under `core.ignorecase`, as [`holds`](Self::holds)).
    pub fn first_under(&self, rel: &str) -> Option<String> {
        let prefix = format!("{}/", self.repo_path(rel));
        if self.ignorecase {
            return self
                .index
                .iter()
                .find(|e| {
                    e.path.len() > prefix.len()
                        && e.path[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                })
                .map(|e| String::from_utf8_lossy(&e.path).into_owned());
        }
        let entry = self.index.get(self.index.find_prefix(&prefix).ok()?)?;
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        path.starts_with(&prefix).then_some(path)
    }

    /// The symbolic links the index holds under folder `rel`: each path below `rel`, and where
    /// the link is on disk.
    pub fn links_under(&self, rel: &str) -> Vec<(String, PathBuf)> {
        const LINK: u32 = 0o120000;
        let prefix = format!("{}/", self.repo_path(rel));
        self.index
            .iter()
            .filter(|e| e.mode & 0o170000 == LINK)
            .filter_map(|e| {
                let path = std::str::from_utf8(&e.path).ok()?;
                let below = path.strip_prefix(&prefix)?;
                Some((below.to_string(), self.top.join(path)))
            })
            .collect()
    }
}

/// A repository opened for change detection.
pub struct Repo {
    repo: Repository,
    root: PathBuf,
    git_cli: bool,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("root", &self.root).finish()
    }
}

impl Repo {
    /// Opens the repository whose work tree is exactly `root` (no search upwards: a service
    /// folder inside another repository must not borrow its history).
    pub fn open(root: &Path) -> Result<Repo, BaseUnavailable> {
        // libgit2 re-hashes every object it reads to check its id (git itself does not): the
        // objects come from the repository's own store, and the hashing is a tenth of a plan.
        git2::opts::strict_hash_verification(false);
        let repo = Repository::open_ext(
            root,
            RepositoryOpenFlags::NO_SEARCH,
            std::iter::empty::<&std::ffi::OsStr>(),
        )
        .map_err(|e| Self::open_error(root, &e))?;
        Ok(Repo {
            repo,
            root: root.to_path_buf(),
            git_cli: true,
        })
    }

    /// The top of the git repository `root` lies inside, not at its top, whether or not that
    /// repository tracks anything in it yet (a project being set up there: `init` refuses it,
    /// as no plan could compare commits there). `None` at a repository's top, outside any, or
    /// in a folder it ignores (a build folder, which would never be committed there).
    pub fn enclosing_top(root: &Path) -> Option<PathBuf> {
        let r = Repository::discover(root).ok()?;
        let top = r.workdir()?.to_path_buf();
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let rel = real(root).strip_prefix(real(&top)).ok()?.to_path_buf();
        if rel.as_os_str().is_empty() || r.is_path_ignored(&rel).unwrap_or(false) {
            return None;
        }
        Some(top)
    }

    /// Why `root` is no repository Ferry can read: none at all, a folder inside one, or one git
    /// refuses to open (e.g. owned by another user).
    fn open_error(root: &Path, e: &git2::Error) -> BaseUnavailable {
        let root = root.to_path_buf();
        if e.code() != git2::ErrorCode::NotFound {
            let message = if e.code() == git2::ErrorCode::Owner {
                format!(
                    "another user owns it, and git trusts it only once told to: `git config --global --add safe.directory {}`",
                    root.display()
                )
            } else {
                e.message().to_string()
            };
            return BaseUnavailable::Unopenable { root, message };
        }
        // A folder inside a repository that tracks files in it; not one that merely lies
        // under some repository (a source zip unpacked in a home folder kept in git).
        let tracked_top = Repository::discover(&root).ok().and_then(|r| {
            let top = r.workdir()?.to_path_buf();
            let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            let rel = real(&root).strip_prefix(real(&top)).ok()?.to_path_buf();
            let prefix = format!("{}/", rel.to_str()?.trim_end_matches('/'));
            r.index().ok()?.find_prefix(&prefix).ok()?;
            Some(top)
        });
        match tracked_top {
            Some(top) => BaseUnavailable::NotRepositoryRoot { root, top },
            None => BaseUnavailable::NoRepository { root },
        }
    }

    /// Whether the working-tree scan may use the `git` command (the default; it falls back to
    /// libgit2 when git is missing or fails). Off: libgit2 only.
    pub fn use_git_cli(mut self, yes: bool) -> Self {
        self.git_cli = yes;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn repository(&self) -> &Repository {
        &self.repo
    }

    /// A folder for Ferry's caches inside the git directory: never tracked, never in the way.
    pub fn cache_dir(&self) -> PathBuf {
        self.repo.path().join("ferry")
    }

    pub fn is_shallow(&self) -> bool {
        self.repo.is_shallow()
    }

    fn git(&self, action: &'static str) -> impl FnOnce(git2::Error) -> ChangesError + '_ {
        move |source| ChangesError::Git {
            action,
            root: self.root.clone(),
            source,
        }
    }

    /// Resolves a revision to a commit id.
    pub fn resolve(&self, rev: &str) -> Option<Oid> {
        self.repo
            .revparse_single(rev)
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    }

    /// The author of `rev` as `Name <email>` (or whichever of the two it has).
    pub fn author_of(&self, rev: &str) -> Option<String> {
        let commit = self.repo.revparse_single(rev).ok()?.peel_to_commit().ok()?;
        let a = commit.author();
        match (a.name().ok(), a.email().ok()) {
            (Some(n), Some(e)) if !n.is_empty() && !e.is_empty() => Some(format!("{n} <{e}>")),
            (Some(n), _) if !n.is_empty() => Some(n.to_string()),
            (_, Some(e)) if !e.is_empty() => Some(e.to_string()),
            _ => None,
        }
    }

    /// The commit HEAD points at, if any (an empty repository has none).
    pub fn head_commit(&self) -> Option<Oid> {
        self.repo.head().ok()?.peel_to_commit().ok().map(|c| c.id())
    }

    /// Resolves a base, or says why it cannot be used.
    pub fn resolve_base(&self, base: &str) -> Result<Oid, BaseUnavailable> {
        match self.resolve(base) {
            Some(oid) => Ok(oid),
            // Whatever the branch is called (libgit2's `is_empty` knows only `master`), and on
            // a new orphan branch alike.
            None if self
                .repo
                .head()
                .is_err_and(|e| e.code() == git2::ErrorCode::UnbornBranch) =>
            {
                Err(BaseUnavailable::NoCommitYet {
                    base: base.to_string(),
                    root: self.root.clone(),
                })
            }
            // A tree, a blob (`HEAD^{tree}`, `HEAD:services`) or a range (`main..HEAD`): in
            // the repository, and no commit.
            None if let Some(kind) = self.object_kind(base) => Err(BaseUnavailable::NotACommit {
                base: base.to_string(),
                kind,
            }),
            None if self.is_shallow() => Err(BaseUnavailable::Shallow {
                base: base.to_string(),
            }),
            None => Err(BaseUnavailable::NotFound {
                base: base.to_string(),
            }),
        }
    }

    /// What `rev` names when it is in the repository but no commit: `tree`, `blob`, or `range`
    /// (`a..b`, which names two commits).
    fn object_kind(&self, rev: &str) -> Option<String> {
        if let Ok(spec) = self.repo.revparse(rev)
            && !spec.mode().contains(git2::RevparseMode::SINGLE)
        {
            return Some("range".into());
        }
        let object = self.repo.revparse_single(rev).ok()?;
        match object.kind() {
            Some(git2::ObjectType::Commit) | None => None,
            Some(git2::ObjectType::Tag) => object
                .peel(git2::ObjectType::Any)
                .ok()
                .and_then(|o| o.kind())
                .map(|k| format!("tag of a {k}")),
            Some(k) => Some(k.to_string()),
        }
    }

    pub(crate) fn resolve_head(&self, head: &str) -> Result<Oid, ChangesError> {
        self.repo
            .revparse_single(head)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id())
            .map_err(|cause| ChangesError::HeadNotFound {
                head: head.to_string(),
                root: self.root.clone(),
                cause,
            })
    }

    /// Whether the working tree differs from HEAD (staged, unstaged or untracked files).
    pub fn is_dirty(&self) -> Result<bool, ChangesError> {
        Ok(!self.dirty_paths()?.is_empty())
    }

    /// The paths by which the working tree differs from HEAD (staged, unstaged or untracked),
    /// leaving out Ferry's own output folder. A repository without a commit is all dirty: `.`.
    pub fn dirty_paths(&self) -> Result<BTreeSet<String>, ChangesError> {
        Ok(self.dirty_changes()?.paths)
    }

    /// [`Repo::dirty_paths`], with which of them are submodules.
    pub fn dirty_changes(&self) -> Result<ChangedPaths, ChangesError> {
        let Some(head) = self.head_commit() else {
            return Ok(ChangedPaths {
                paths: BTreeSet::from([".".to_string()]),
                ..ChangedPaths::default()
            });
        };
        self.diff_to_workdir(head)
    }

    /// Whether HEAD is `base` or descends from it: why not, if not (a commit the repository
    /// lacks, one newer than HEAD, one of another line of history, one a shallow clone hides).
    /// What judges a record's commit against the checkout before it acts for that commit.
    pub fn head_descends_from(&self, base: &str) -> Result<(), ChangesError> {
        let base_oid = self.resolve_base(base)?;
        match self.head_commit() {
            Some(head) => self.check_descends(base, base_oid, "HEAD", head),
            None => Ok(()),
        }
    }

    fn check_descends(
        &self,
        base: &str,
        base_oid: Oid,
        head_name: &str,
        head_oid: Oid,
    ) -> Result<(), ChangesError> {
        if head_oid == base_oid
            || self
                .repo
                .graph_descendant_of(head_oid, base_oid)
                .map_err(self.git("walk history"))?
        {
            return Ok(());
        }
        // In a shallow clone a base outside the boundary may still be present as an object
        // while the history that links it to head is cut.
        if self.is_shallow() {
            return Err(BaseUnavailable::Shallow {
                base: base.to_string(),
            }
            .into());
        }
        if self
            .repo
            .graph_descendant_of(base_oid, head_oid)
            .map_err(self.git("walk history"))?
        {
            return Err(BaseUnavailable::HeadBehind {
                base: base.to_string(),
                head: head_name.to_string(),
            }
            .into());
        }
        Err(BaseUnavailable::NotAncestor {
            base: base.to_string(),
            head: head_name.to_string(),
        }
        .into())
    }

    /// The paths that differ between `base` and `head`.
    pub fn changed_paths(&self, base: &str, head: &Head) -> Result<ChangedPaths, ChangesError> {
        let base_oid = self.resolve_base(base)?;
        let (head_name, head_oid) = match head {
            Head::Rev(rev) => (rev.clone(), Some(self.resolve_head(rev)?)),
            Head::WorkingTree => ("the working tree".to_string(), self.head_commit()),
        };
        let mut diverged = false;
        if let Some(head_oid) = head_oid {
            match self.check_descends(base, base_oid, &head_name, head_oid) {
                Ok(()) => {}
                // Two trees say what differs between them whatever links their commits: a
                // squash-merged branch's deploy is the same tree as main's, nothing to deploy.
                Err(ChangesError::BaseUnavailable(BaseUnavailable::NotAncestor { .. })) => {
                    diverged = true;
                }
                Err(e) => return Err(e),
            }
        }
        let mut changed = match head {
            Head::Rev(_) => self.diff_trees(base_oid, head_oid.expect("resolved"))?,
            Head::WorkingTree => self.diff_to_workdir(base_oid)?,
        };
        changed.diverged = diverged;
        Ok(changed)
    }

    fn tree(&self, commit: Oid) -> Result<git2::Tree<'_>, ChangesError> {
        self.repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(self.git("read a commit's tree"))
    }

    fn options() -> DiffOptions {
        let mut o = DiffOptions::new();
        // Name-only: never look into blobs.
        o.skip_binary_check(true)
            .include_typechange(true)
            .ignore_submodules(true);
        o
    }

    /// Tree-to-tree diff that descends only into subtrees whose ids differ, so its cost follows
    /// the size of the change, not of the repository. (libgit2's own tree diff expands every
    /// subtree of both sides: ~50 ms on 100k files, against ~1 ms here.)
    fn diff_trees(&self, base: Oid, head: Oid) -> Result<ChangedPaths, ChangesError> {
        let mut out = ChangedPaths::default();
        let (old, new) = (self.tree(base)?, self.tree(head)?);
        if old.id() != new.id() {
            self.walk_pair(Some(&old), Some(&new), "", &mut out)
                .map_err(self.git("diff two commits"))?;
        }
        Ok(out)
    }

    fn walk_pair<'t>(
        &self,
        old: Option<&'t git2::Tree<'_>>,
        new: Option<&'t git2::Tree<'_>>,
        prefix: &str,
        out: &mut ChangedPaths,
    ) -> Result<(), git2::Error> {
        // Both trees list their entries in git's order, so one merge pass pairs them up.
        let entries = |t: Option<&'t git2::Tree<'_>>| -> Vec<git2::TreeEntry<'t>> {
            t.into_iter().flat_map(|t| t.iter()).collect()
        };
        let (olds, news) = (entries(old), entries(new));
        let item = |e: &git2::TreeEntry<'_>| Item {
            id: e.id(),
            is_tree: e.kind() == Some(git2::ObjectType::Tree),
            mode: e.filemode(),
        };
        let (mut i, mut j) = (0, 0);
        while i < olds.len() || j < news.len() {
            let order = match (olds.get(i), news.get(j)) {
                (Some(a), Some(b)) => git_order(a, b),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let (name, o, n) = match order {
                Ordering::Less => {
                    i += 1;
                    (olds[i - 1].name_bytes(), Some(item(&olds[i - 1])), None)
                }
                Ordering::Greater => {
                    j += 1;
                    (news[j - 1].name_bytes(), None, Some(item(&news[j - 1])))
                }
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                    let (o, n) = (item(&olds[i - 1]), item(&news[j - 1]));
                    if o == n {
                        continue; // same id, kind and mode: nothing below differs
                    }
                    (olds[i - 1].name_bytes(), Some(o), Some(n))
                }
            };
            let path = format!("{prefix}{}", String::from_utf8_lossy(name));
            // A name that is a file on one side and a folder on the other comes as two entries
            // (git orders a folder as if its name ended in `/`): the file is a changed (and
            // maybe deleted) path, the folder's files are walked.
            if o.is_some_and(|i| !i.is_tree) || n.is_some_and(|i| !i.is_tree) {
                out.paths.insert(path.clone());
                if n.is_none() {
                    out.deleted.insert(path.clone());
                }
                if o.is_some_and(|i| i.mode == GITLINK) || n.is_some_and(|i| i.mode == GITLINK) {
                    out.submodules.insert(path.clone());
                }
            }
            let subtree = |i: Option<Item>| match i {
                Some(Item {
                    id, is_tree: true, ..
                }) => self.repo.find_tree(id).map(Some),
                _ => Ok(None),
            };
            let (old_tree, new_tree) = (subtree(o)?, subtree(n)?);
            if old_tree.is_some() || new_tree.is_some() {
                self.walk_pair(
                    old_tree.as_ref(),
                    new_tree.as_ref(),
                    &format!("{path}/"),
                    out,
                )?;
            }
        }
        Ok(())
    }

    /// `base` against the working tree: the committed part by tree ids, then what the index and
    /// the working tree add on top of HEAD, less the paths that the working tree has put back as
    /// they were at the base.
    pub(crate) fn diff_to_workdir(&self, base: Oid) -> Result<ChangedPaths, ChangesError> {
        let mut out = match self.head_commit() {
            Some(head) => self.diff_trees(base, head)?,
            None => ChangedPaths::default(),
        };
        // The entries git status does not look at (assume-unchanged, skip-worktree) are listed
        // beside it, on a thread of their own: listing a large index costs about a tenth of
        // the status.
        let (status, flagged) = if self.git_cli {
            let root = self.root.clone();
            let flagged = std::thread::spawn(move || flagged_by_git(&root));
            let status = self.git_status();
            (status, flagged.join().ok().flatten())
        } else {
            (None, None)
        };
        let mut local = match status {
            Some(local) => local,
            None => self.libgit2_status()?,
        };
        let flagged = match flagged {
            Some(f) => f,
            None => self.flagged_by_libgit2(),
        };
        local.paths.extend(self.hidden_edits(&flagged)?);
        // A sparse checkout's file off the disk is no deletion (libgit2's status names it).
        for f in flagged.iter().filter(|f| !f.assume_unchanged) {
            if self.root.join(&f.path).symlink_metadata().is_err() {
                local.paths.remove(&f.path);
                local.deleted.remove(&f.path);
                out.sparse_absent.insert(f.path.clone());
            }
        }
        self.mark_submodules(&mut local);
        // What Ferry writes itself (packages, outputs, reports) is never a change: in a
        // repository that does not ignore `target/`, it would make every tree dirty.
        let ours = |p: &String| !in_output_dir(p);
        // A path changed by a commit since the base and changed again in the working tree may be
        // back as it was at the base (an edit reverted before committing): compare those paths,
        // and only those, with the base itself, so that a reverted edit deploys nothing.
        // A submodule is never judged reverted: libgit2's comparison does not look into one.
        let both: Vec<&str> = local
            .paths
            .iter()
            .filter(|p| out.paths.contains(*p) && !local.submodules.contains(*p))
            .map(String::as_str)
            .collect();
        let reverted = if both.is_empty() {
            BTreeSet::new()
        } else {
            self.as_at(base, &both)?
        };
        out.paths.extend(local.paths.into_iter().filter(ours));
        out.deleted.extend(local.deleted.into_iter().filter(ours));
        out.submodules
            .extend(local.submodules.into_iter().filter(ours));
        for p in &reverted {
            out.paths.remove(p);
            out.deleted.remove(p);
            out.submodules.remove(p);
        }
        // Deleted means gone now: a path deleted in a commit may be back in the working tree.
        out.deleted
            .retain(|p| self.root.join(p).symlink_metadata().is_err());
        Ok(out)
    }

    /// HEAD against index and working tree through `git status`: it is the reference, and on
    /// large trees much faster than libgit2 (parallel lstat, untracked cache, fsmonitor).
    /// Submodules count: one checked out at another commit than HEAD records, or with edited or
    /// untracked files, is a change, since packaging zips the files of its working tree.
    /// `None` when git is missing or fails (e.g. an ownership check): the caller falls back.
    fn git_status(&self) -> Option<ChangedPaths> {
        let out = git(
            &self.root,
            &[
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--no-renames",
                "--ignore-submodules=none",
            ],
        )
        .output()
        .ok()?;
        if !out.status.success() {
            return None;
        }
        let mut changed = ChangedPaths::default();
        for record in out.stdout.split(|b| *b == 0).filter(|r| r.len() > 3) {
            let (xy, path) = record.split_at(3);
            let path = String::from_utf8_lossy(path).into_owned();
            if xy[0] == b'D' || xy[1] == b'D' {
                changed.deleted.insert(path.clone());
            }
            changed.paths.insert(path);
        }
        Some(changed)
    }

    /// The index entries flagged assume-unchanged or skip-worktree, as libgit2 reads them
    /// (when git cannot be run); none when the index cannot be read.
    fn flagged_by_libgit2(&self) -> Vec<Flagged> {
        const ASSUME_VALID: u16 = 0x8000;
        const SKIP_WORKTREE: u16 = 0x4000;
        let Ok(index) = self.repo.index() else {
            return Vec::new();
        };
        index
            .iter()
            .filter(|e| e.flags & ASSUME_VALID != 0 || e.flags_extended & SKIP_WORKTREE != 0)
            .filter_map(|e| {
                Some(Flagged {
                    path: String::from_utf8(e.path).ok()?,
                    assume_unchanged: e.flags & ASSUME_VALID != 0,
                })
            })
            .collect()
    }

    /// The flagged entries (`git update-index --assume-unchanged` or `--skip-worktree`) whose
    /// file in the working tree is not as HEAD has it. Git status takes such a file as
    /// unchanged whatever is on disk, but packaging zips what is on disk: an edit hidden that
    /// way would deploy under the commit's clean id. A skip-worktree file absent from the disk
    /// is a sparse checkout leaving it out, not a change.
    fn hidden_edits(&self, flagged: &[Flagged]) -> Result<Vec<String>, ChangesError> {
        let Some(head) = self.head_commit() else {
            return Ok(Vec::new());
        };
        let looked: Vec<&str> = flagged
            .iter()
            .filter(|f| f.assume_unchanged || self.root.join(&f.path).symlink_metadata().is_ok())
            .map(|f| f.path.as_str())
            .collect();
        if looked.is_empty() {
            return Ok(Vec::new());
        }
        let same = self.as_at(head, &looked)?;
        Ok(looked
            .into_iter()
            .filter(|p| !same.contains(*p))
            .map(String::from)
            .collect())
    }

    fn libgit2_status(&self) -> Result<ChangedPaths, ChangesError> {
        let head_tree = match self.head_commit() {
            Some(h) => Some(self.tree(h)?),
            None => None,
        };
        let mut opts = Self::options();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .ignore_submodules(false);
        let diff = self
            .repo
            .diff_tree_to_workdir_with_index(head_tree.as_ref(), Some(&mut opts))
            .map_err(self.git("diff the working tree"))?;
        Ok(collect(&diff))
    }

    /// Marks the working tree's changed paths that stand for a folder: a submodule (a folder
    /// now, or a git link at HEAD when its folder is gone) and another repository inside the
    /// working tree, which `git status` names as `dir/`.
    fn mark_submodules(&self, changed: &mut ChangedPaths) {
        let head_tree = self.head_commit().and_then(|h| self.tree(h).ok());
        let gitlink_at_head = |p: &str| {
            head_tree.as_ref().is_some_and(|t| {
                t.get_path(Path::new(p))
                    .is_ok_and(|e| e.filemode() == GITLINK)
            })
        };
        let named: Vec<String> = changed.paths.iter().cloned().collect();
        for p in named {
            if let Some(dir) = p.strip_suffix('/') {
                let dir = dir.to_string();
                changed.paths.remove(&p);
                if changed.deleted.remove(&p) {
                    changed.deleted.insert(dir.clone());
                }
                changed.paths.insert(dir.clone());
                changed.submodules.insert(dir);
                continue;
            }
            // A file is no submodule, nor a folder that is no repository (a file replaced by a
            // folder); only a path gone from the disk needs a look at HEAD.
            let full = self.root.join(&p);
            let submodule = match full.symlink_metadata() {
                Ok(m) => {
                    m.is_dir()
                        && (full.join(".git").symlink_metadata().is_ok() || gitlink_at_head(&p))
                }
                Err(_) => gitlink_at_head(&p),
            };
            if submodule {
                changed.submodules.insert(p);
            }
        }
    }

    /// Which of `paths` are in the working tree as they are at `commit`: found unmodified
    /// against its tree (content, mode and kind, through git's filters), or absent from both.
    /// Only on that evidence: a path the comparison does not name (one git ignores, a name that
    /// is not UTF-8) stays changed. The working tree itself is compared, not the index: what is
    /// on disk is what deploys. (libgit2's tree-to-index-to-workdir diff reports a file edited
    /// back to the tree's text as still modified, and one restored untracked as added.)
    fn as_at(&self, commit: Oid, paths: &[&str]) -> Result<BTreeSet<String>, ChangesError> {
        let tree = self.tree(commit)?;
        let mut opts = Self::options();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(true)
            .recurse_ignored_dirs(true)
            .include_unmodified(true)
            .disable_pathspec_match(true);
        for p in paths {
            opts.pathspec(p);
        }
        let diff = self
            .repo
            .diff_tree_to_workdir(Some(&tree), Some(&mut opts))
            .map_err(self.git("compare the working tree with the base"))?;
        let mut named = BTreeSet::new();
        let mut same = BTreeSet::new();
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if let Some(p) = file.path().and_then(Path::to_str) {
                    named.insert(p.to_string());
                }
            }
            if delta.status() == Delta::Unmodified
                && let Some(p) = delta.new_file().path().and_then(Path::to_str)
            {
                same.insert(p.to_string());
            }
        }
        // Absent from both: only for a name that is itself (a name that is not UTF-8 reaches
        // here with U+FFFD in it, and names nothing), and only when the disk says "no such".
        let absent_on_disk = |p: &str| {
            self.root.join(p).symlink_metadata().is_err_and(|e| {
                matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                )
            })
        };
        for p in paths {
            if !named.contains(*p)
                && !p.contains('\u{FFFD}')
                && tree.get_path(Path::new(p)).is_err()
                && absent_on_disk(p)
            {
                same.insert(p.to_string());
            }
        }
        // Only the paths asked about: a name the comparison gives back is one of them.
        same.retain(|p| paths.contains(&p.as_str()));
        Ok(same)
    }

    /// The text of `path` in `head`: at a commit, or in the working tree, where only a regular
    /// file of at most `max` bytes is read (a link to `/dev/zero` or a pipe is never read).
    pub fn text_in(&self, head: &Head, path: &str, max: u64) -> Option<String> {
        match head {
            Head::Rev(rev) => self.file_at(self.resolve(rev)?, path),
            Head::WorkingTree => {
                let full = self.root.join(path);
                let meta = std::fs::symlink_metadata(&full).ok()?;
                if !meta.is_file() || meta.len() > max {
                    return None;
                }
                std::fs::read_to_string(full).ok()
            }
        }
    }

    /// Whether `path` is a file in `head`: at a commit, or a regular file in the working tree.
    pub fn has_file_in(&self, head: &Head, path: &str) -> bool {
        match head {
            Head::Rev(rev) => self.resolve(rev).is_some_and(|c| {
                self.repo
                    .find_commit(c)
                    .ok()
                    .and_then(|c| c.tree().ok())
                    .and_then(|t| t.get_path(Path::new(path)).ok())
                    .is_some_and(|e| e.kind() == Some(git2::ObjectType::Blob))
            }),
            Head::WorkingTree => {
                std::fs::symlink_metadata(self.root.join(path)).is_ok_and(|m| m.is_file())
            }
        }
    }

    /// The folders at or below `dir` that hold a file named `name` at `commit` (not inside
    /// `node_modules`), repository relative, sorted.
    pub fn folders_holding(&self, commit: Oid, dir: &str, name: &str) -> Vec<String> {
        let Some(tree) = self
            .repo
            .find_commit(commit)
            .ok()
            .and_then(|c| c.tree().ok())
        else {
            return Vec::new();
        };
        let sub = if dir.is_empty() {
            Some(tree)
        } else {
            tree.get_path(Path::new(dir))
                .ok()
                .and_then(|e| self.repo.find_tree(e.id()).ok())
        };
        let Some(sub) = sub else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let _ = sub.walk(git2::TreeWalkMode::PreOrder, |folder, entry| {
            if entry.name().ok() == Some("node_modules") {
                return git2::TreeWalkResult::Skip;
            }
            if entry.name().ok() == Some(name) && entry.kind() == Some(git2::ObjectType::Blob) {
                let folder = folder.trim_end_matches('/');
                let full = [dir, folder]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(full);
            }
            git2::TreeWalkResult::Ok
        });
        out.sort();
        out.dedup();
        out
    }

    /// The text of `path` at `commit`, if it exists and is UTF-8.
    pub fn file_at(&self, commit: Oid, path: &str) -> Option<String> {
        let tree = self.repo.find_commit(commit).ok()?.tree().ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        String::from_utf8(blob_bytes(&self.repo, entry.id())?).ok()
    }

    /// Those of `paths` (repository relative) that git ignores and does not track: they would
    /// never be committed, so a clone (a CI build) would not have them.
    pub fn ignored_untracked<'p>(&self, paths: &[&'p str]) -> Result<Vec<&'p str>, ChangesError> {
        let index = self.repo.index().map_err(self.git("read the index"))?;
        let mut out = Vec::new();
        for &p in paths {
            if self.is_ignored(p)? && index.get_path(Path::new(p), 0).is_none() {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Those of `paths` (repository relative, existing or not) git's ignore rules do not
    /// ignore: where a build writes, each would look like a change to a plan of the working
    /// tree.
    pub fn not_ignored<'p>(&self, paths: &[&'p str]) -> Result<Vec<&'p str>, ChangesError> {
        let mut out = Vec::new();
        for &p in paths {
            if !self.is_ignored(p)? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The files under `folders` (repository relative; `""` is the whole tree) that git
    /// ignores and does not track, sorted: on disk and in no commit, so no input key sees them
    /// change (an installed `node_modules`, a generated file). Ferry's own output is left out.
    pub fn ignored_files(&self, folders: &[&str]) -> Result<Vec<String>, ChangesError> {
        if folders.is_empty() {
            return Ok(Vec::new());
        }
        let mut opts = git2::StatusOptions::new();
        opts.include_ignored(true)
            .recurse_ignored_dirs(true)
            .include_untracked(false)
            .include_unmodified(false)
            .exclude_submodules(true)
            .disable_pathspec_match(false);
        for f in folders {
            opts.pathspec(if f.is_empty() { "*" } else { f });
        }
        let statuses = self
            .repo
            .statuses(Some(&mut opts))
            .map_err(self.git("list the files git ignores"))?;
        let mut out: Vec<String> = statuses
            .iter()
            .filter(|e| e.status().contains(git2::Status::IGNORED))
            .filter_map(|e| e.path().ok().map(String::from))
            .filter(|p| !in_output_dir(p) && !p.ends_with('/'))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Whether git's ignore rules ignore `path` (repository relative, existing or not).
    fn is_ignored(&self, path: &str) -> Result<bool, ChangesError> {
        self.repo
            .is_path_ignored(Path::new(path))
            .map_err(self.git("read the ignore rules"))
    }

    /// The id of the tree at `path` in `commit` (for "did this folder change" checks by id).
    /// Below a submodule, whose files the commit does not hold, it is the id of the
    /// submodule's commit: `libs/common/src` changes when the submodule at `libs/common` moves.
    pub fn tree_id_at(&self, commit: Oid, path: &str) -> Option<Oid> {
        let tree = self.repo.find_commit(commit).ok()?.tree().ok()?;
        if path.is_empty() {
            return Some(tree.id());
        }
        match tree.get_path(Path::new(path)) {
            Ok(e) => Some(e.id()),
            Err(_) => {
                let mut dir = path;
                while let Some(pos) = dir.rfind('/') {
                    dir = &dir[..pos];
                    if let Ok(e) = tree.get_path(Path::new(dir)) {
                        return (e.filemode() == GITLINK).then(|| e.id());
                    }
                }
                None
            }
        }
    }

    /// The submodules the index names whose folder holds no checkout (never initialised, or
    /// deinitialised), also inside checked-out submodules (`git submodule update` without
    /// `--recursive`): git sees no change there, but the folder is empty or missing, so a
    /// package would lack the submodule's files. Repository relative, sorted.
    pub fn submodules_not_checked_out(&self) -> Result<Vec<String>, ChangesError> {
        let mut out = Vec::new();
        self.not_checked_out_in("", 0, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn not_checked_out_in(
        &self,
        prefix: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) -> Result<(), ChangesError> {
        let index = self.repo.index().map_err(self.git("read the index"))?;
        let links: Vec<String> = index
            .iter()
            .filter(|e| i64::from(e.mode) == i64::from(GITLINK))
            .filter_map(|e| String::from_utf8(e.path).ok())
            .collect();
        for link in links {
            let folder = self.root.join(&link);
            if folder.join(".git").symlink_metadata().is_err() {
                out.push(format!("{prefix}{link}"));
            } else if depth < 8
                && let Ok(inner) = Repo::open(&folder)
            {
                inner.not_checked_out_in(&format!("{prefix}{link}/"), depth + 1, out)?;
            }
        }
        Ok(())
    }
}

/// One side of a tree entry in [`Repo::walk_pair`]. The mode counts: a file made executable,
/// or replaced by a symlink with the same text, keeps its blob id but packages differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    id: Oid,
    is_tree: bool,
    mode: i32,
}

/// Git's order of tree entries: by name, a folder's name compared as if it ended in `/`.
fn git_order(a: &git2::TreeEntry<'_>, b: &git2::TreeEntry<'_>) -> Ordering {
    let (x, y) = (a.name_bytes(), b.name_bytes());
    let n = x.len().min(y.len());
    match x[..n].cmp(&y[..n]) {
        Ordering::Equal => {
            let next = |name: &[u8], e: &git2::TreeEntry<'_>| {
                name.get(n)
                    .copied()
                    .or((e.kind() == Some(git2::ObjectType::Tree)).then_some(b'/'))
            };
            next(x, a).cmp(&next(y, b))
        }
        other => other,
    }
}

/// Short form of a commit id for messages (7 hex digits, as git shows it by default).
pub fn short(oid: Oid) -> String {
    oid.to_string()[..7].to_string()
}

/// `git -C <root> <args>` for the repository at `root` whatever git's variables in Ferry's
/// environment say, without Ferry's AWS variables (credentials among them: git needs none, and
/// a filter or fsmonitor hook the repository configures would get them), no input, its errors
/// dropped (a failure is judged by its status).
fn git(root: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C")
        .arg(root)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("AWS_")) {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// An index entry that git status does not compare with the working tree.
struct Flagged {
    path: String,
    /// `--assume-unchanged` (else only `--skip-worktree`).
    assume_unchanged: bool,
}

/// The index entries flagged assume-unchanged or skip-worktree, from `git ls-files -v` (a
/// lowercase tag: assume-unchanged; `S`: skip-worktree); `None` when git cannot be run.
fn flagged_by_git(root: &Path) -> Option<Vec<Flagged>> {
    let out = git(root, &["ls-files", "-v", "-z"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        out.stdout
            .split(|b| *b == 0)
            .filter(|r| r.len() > 2 && r[1] == b' ')
            .filter(|r| r[0].is_ascii_lowercase() || r[0] == b'S')
            .filter_map(|r| {
                Some(Flagged {
                    path: String::from_utf8(r[2..].to_vec()).ok()?,
                    assume_unchanged: r[0].is_ascii_lowercase(),
                })
            })
            .collect(),
    )
}

/// The paths of a libgit2 diff, as git names them (`/`-separated on every platform; a `\` is a
/// character of a name, as in `git status`).
fn collect(diff: &git2::Diff<'_>) -> ChangedPaths {
    let mut out = ChangedPaths::default();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(p) = file.path().and_then(Path::to_str) {
                out.paths.insert(p.to_string());
            }
        }
        if delta.status() == Delta::Deleted
            && let Some(p) = delta.old_file().path().and_then(Path::to_str)
        {
            out.deleted.insert(p.to_string());
        }
        for file in [delta.old_file(), delta.new_file()] {
            if i32::from(file.mode()) == GITLINK
                && let Some(p) = file.path().and_then(Path::to_str)
            {
                out.submodules.insert(p.to_string());
            }
        }
    }
    out
}

/// The content of blob `id`: from the repository's objects, else, in a partial clone (`git
/// clone --filter=blob:none`, as CI checkouts of large repositories are made), from `git`, which
/// fetches a blob the clone left out from the promisor remote when it is asked for. libgit2
/// cannot: without this, an older version of a lock file or a manifest read as missing (a lock
/// file "changed" for every service, a configuration "not in the commit", a stack move refused).
pub(crate) fn blob_bytes(repo: &Repository, id: Oid) -> Option<Vec<u8>> {
    match repo.find_blob(id) {
        Ok(blob) => Some(blob.content().to_vec()),
        Err(e) if e.code() == git2::ErrorCode::NotFound && is_partial_clone(repo) => {
            // As every git Ferry runs: no AWS credentials nor another repository's location in
            // its environment (a fetch runs credential helpers and hooks), and never a prompt
            // for a password in the middle of a plan.
            let mut cmd = git(repo.workdir().unwrap_or(repo.path()), &[]);
            cmd.arg("--git-dir")
                .arg(repo.path())
                .args(["cat-file", "blob", &id.to_string()])
                .env_remove("GIT_OBJECT_DIRECTORY")
                .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
                .env_remove("GIT_QUARANTINE_PATH")
                .env("GIT_TERMINAL_PROMPT", "0");
            let out = cmd.output().ok()?;
            out.status.success().then_some(out.stdout)
        }
        Err(_) => None,
    }
}

/// Whether `repo` is a partial clone: a remote of it promises the objects it left out.
fn is_partial_clone(repo: &Repository) -> bool {
    let Ok(config) = repo.config() else {
        return false;
    };
    if config.get_string("extensions.partialclone").is_ok() {
        return true;
    }
    let Ok(mut entries) = config.entries(Some(r"remote\..*\.promisor")) else {
        return false;
    };
    let mut promised = false;
    while let Some(Ok(entry)) = entries.next() {
        promised |= entry.value().is_ok_and(|v| v == "true");
    }
    promised
}
