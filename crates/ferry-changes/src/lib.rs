#![doc = include_str!("../README.md")]
//! Change detection for a monorepo.
//!
//! - [`Repo::changed_paths`]: the paths that differ between a base commit and a head (a commit,
//!   or the working tree with its index and untracked files). A name-only tree-to-tree diff:
//!   unchanged subtrees are skipped by object id and no file content is loaded. A rename yields
//!   both paths; deletions count.
//! - A base that cannot be used is a typed [`BaseUnavailable`], never a silent fallback: the
//!   caller decides whether that means "everything changed" or an error.
//! - [`Owners`]: which services a path affects (deepest service folder, declared input globs,
//!   global inputs). The rule lives in `ferry-manifest`, where packaging reads it too; it is
//!   re-exported here beside the diff it classifies.
//! - [`CommitSource`]: the files of a commit as a `ferry_manifest::Source`, with tree ids as
//!   content ids, so configuration can be loaded as it is at that commit.
//! - [`WorktreeSource`] / [`load_worktree`]: the working tree as a source that knows what git
//!   ignores, so that an input glob into an ignored folder (on disk, in no commit) is refused.

pub mod lockfile;
mod repo;
mod snapshot;
mod source;
mod worktree;

pub use ferry_manifest::{Affected, Owners, OwnersError, ServiceSpec};
pub use git2::Oid;
pub use repo::{
    BaseUnavailable, ChangedPaths, ChangesError, Head, ProjectIndex, Repo, prepare_output_dir,
    short,
};
pub use snapshot::{InputsAt, Made, ServiceInputs, Snapshot, key_differences};
pub use source::CommitSource;
pub use worktree::{WorktreeSource, load_worktree};
