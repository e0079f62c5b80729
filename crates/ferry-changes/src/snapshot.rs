//! What a package is made from: the head commit, whether the working tree differs from it, a
//! package id, and for each service an exact key of its inputs when git already knows them.
//!
//! A clean service's inputs are named by git tree ids: its folder's, and those of the literal
//! folders its `inputs` and the project's `global-inputs` start with (`shared/lib/**` →
//! `shared/lib`). Equal keys mean equal files, so a package made under a key can be reused
//! without reading a file. A service with a modified, added or deleted file among its inputs
//! has no key and is always packaged again.
//!
//! A dirty tree gets its own id, `<commit>-dirty-<hash of the changed paths and contents>`, so
//! its package is never mistaken for the commit's.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid};

use crate::{ChangesError, Repo};

/// One service's inputs, as the manifest declares them.
#[derive(Debug, Clone)]
pub struct ServiceInputs {
    pub name: String,
    /// Repository-relative folder.
    pub dir: String,
    /// Extra repository-relative globs.
    pub inputs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Package id: the commit, or `<commit>-dirty-<12 hex>`.
    pub id: String,
    pub commit: String,
    pub dirty: bool,
    /// Service → exact input key (only for services whose inputs are all clean).
    pub input_keys: BTreeMap<String, String>,
    /// Service → a key of its uncommitted changes (only for services with some): what those of
    /// its inputs hold now, so that a change elsewhere (a log written into the checkout) does
    /// not count as its own.
    pub dirty_keys: BTreeMap<String, String>,
    /// Service → the submodules among its inputs that are not checked out
    /// ([`Repo::submodules_not_checked_out`]): its package would lack their files.
    pub submodules_not_checked_out: BTreeMap<String, Vec<String>>,
    /// Service → the committed files among its inputs that a sparse checkout leaves off the
    /// disk ([`ChangedPaths::sparse_absent`](crate::ChangedPaths::sparse_absent)): its
    /// package would lack them.
    pub sparse_absent: BTreeMap<String, Vec<String>>,
}

/// How a service's inputs in the working tree compare with its inputs at a commit
/// ([`Repo::compare_inputs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputsAt {
    /// The same files: none has an uncommitted change, and every input folder (or file) has
    /// the same git id at HEAD as at the commit.
    Same,
    /// Committed differences: the input folders (or files, `""` for the repository root) whose
    /// ids differ.
    Differ(Vec<String>),
    /// Uncommitted changes (staged, unstaged or untracked) among the inputs: the paths.
    Uncommitted(Vec<String>),
}

/// What a package was made from, to compare a working tree with ([`Repo::compare_inputs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made<'a> {
    /// The input key [`Repo::snapshot`] gave the service then: needs no history.
    Key(&'a str),
    /// A commit whose inputs were clean then: needs the commit in the repository.
    Commit(&'a str),
}

/// The input folders (or files) whose ids differ between two input keys, or that only one of
/// them has.
pub fn key_differences(a: &str, b: &str) -> Vec<String> {
    let parse = |key: &str| -> BTreeMap<String, String> {
        key.split(';')
            .filter_map(|part| part.rsplit_once(':'))
            .map(|(p, id)| (p.to_string(), id.to_string()))
            .collect()
    };
    let (a, b) = (parse(a), parse(b));
    let mut out: Vec<String> = a
        .iter()
        .filter(|(p, id)| b.get(*p) != Some(*id))
        .map(|(p, _)| p.clone())
        .chain(b.keys().filter(|p| !a.contains_key(*p)).cloned())
        .collect();
    out.sort();
    out
}

/// The folder a glob's matches all lie in: its leading components without wildcards.
pub(crate) fn literal_prefix(glob: &str) -> String {
    glob.split('/')
        .take_while(|c| !ferry_manifest::has_wildcard(c))
        .collect::<Vec<_>>()
        .join("/")
}

/// The folders (and files) a service's inputs lie in, sorted: its own folder, and the literal
/// prefixes of its `inputs` and of the project's `global-inputs`.
fn input_prefixes(s: &ServiceInputs, global_inputs: &[String]) -> Vec<String> {
    let mut prefixes = vec![s.dir.clone()];
    prefixes.extend(s.inputs.iter().map(|g| literal_prefix(g)));
    prefixes.extend(global_inputs.iter().map(|g| literal_prefix(g)));
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

fn under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Whether a changed path touches the inputs under `prefix`: it lies there, or it is a
/// submodule holding them (`libs/common` for inputs `libs/common/src/**`).
fn touches(changed: &crate::ChangedPaths, path: &str, prefix: &str) -> bool {
    under(path, prefix) || (changed.submodules.contains(path) && under(prefix, path))
}

impl Repo {
    /// The snapshot of the working tree for `services`.
    pub fn snapshot(
        &self,
        services: &[ServiceInputs],
        global_inputs: &[String],
    ) -> Result<Snapshot, ChangesError> {
        let head = self.head_commit().ok_or_else(|| ChangesError::NoCommit {
            root: self.root().to_path_buf(),
        })?;
        let changed = self.diff_to_workdir(head)?;
        let dirty = !changed.paths.is_empty();
        let id = if dirty {
            format!("{head}-dirty-{}", &self.fingerprint(&changed.paths)[..12])
        } else {
            head.to_string()
        };
        let empty = if services.is_empty() {
            Vec::new()
        } else {
            self.submodules_not_checked_out()?
        };
        let mut input_keys = BTreeMap::new();
        let mut dirty_keys = BTreeMap::new();
        let mut submodules_not_checked_out = BTreeMap::new();
        let mut sparse_absent = BTreeMap::new();
        for s in services {
            let prefixes = input_prefixes(s, global_inputs);
            // What the package is made from: the service's folder and what its inputs name
            // (a glob's folder), not the global inputs, nor an input naming the whole tree.
            let packaged: Vec<String> = std::iter::once(s.dir.clone())
                .chain(s.inputs.iter().map(|g| literal_prefix(g)))
                .filter(|p| !p.is_empty())
                .collect();
            let missing: Vec<String> = empty
                .iter()
                .filter(|m| packaged.iter().any(|pre| under(m, pre) || under(pre, m)))
                .cloned()
                .collect();
            if !missing.is_empty() {
                submodules_not_checked_out.insert(s.name.clone(), missing);
            }
            let absent: Vec<String> = changed
                .sparse_absent
                .iter()
                .filter(|f| packaged.iter().any(|pre| under(f, pre)))
                .cloned()
                .collect();
            if !absent.is_empty() {
                sparse_absent.insert(s.name.clone(), absent);
            }
            let mine: std::collections::BTreeSet<String> = changed
                .paths
                .iter()
                .filter(|p| prefixes.iter().any(|pre| touches(&changed, p, pre)))
                .cloned()
                .collect();
            if !mine.is_empty() {
                dirty_keys.insert(s.name.clone(), self.fingerprint(&mine));
                continue;
            }
            input_keys.insert(s.name.clone(), self.key_at(head, &prefixes));
        }
        Ok(Snapshot {
            id,
            commit: head.to_string(),
            dirty,
            input_keys,
            dirty_keys,
            submodules_not_checked_out,
            sparse_absent,
        })
    }

    /// How the working tree's inputs of each service compare with what a package was made
    /// from ([`Made`]: an input key, or a commit): each gets its [`InputsAt`], or an error when
    /// its commit is not in the repository. The outer error is a working tree that cannot be
    /// read.
    pub fn compare_inputs(
        &self,
        services: &[(Made<'_>, &ServiceInputs)],
        global_inputs: &[String],
    ) -> Result<Vec<Result<InputsAt, ChangesError>>, ChangesError> {
        let head = self.head_commit().ok_or_else(|| ChangesError::NoCommit {
            root: self.root().to_path_buf(),
        })?;
        let dirty = self.diff_to_workdir(head)?;
        Ok(services
            .iter()
            .map(|(made, s)| {
                let prefixes = input_prefixes(s, global_inputs);
                let uncommitted: Vec<String> = dirty
                    .paths
                    .iter()
                    .filter(|p| prefixes.iter().any(|pre| touches(&dirty, p, pre)))
                    .cloned()
                    .collect();
                if !uncommitted.is_empty() {
                    return Ok(InputsAt::Uncommitted(uncommitted));
                }
                let differ = match made {
                    Made::Key(key) => key_differences(key, &self.key_at(head, &prefixes)),
                    Made::Commit(rev) => {
                        let commit = self.resolve_head(rev)?;
                        prefixes
                            .iter()
                            .filter(|p| self.tree_id_at(head, p) != self.tree_id_at(commit, p))
                            .cloned()
                            .collect()
                    }
                };
                Ok(if differ.is_empty() {
                    InputsAt::Same
                } else {
                    InputsAt::Differ(differ)
                })
            })
            .collect())
    }

    /// The key of the folders `prefixes` at `commit`: each with its tree (or blob) id.
    fn key_at(&self, commit: Oid, prefixes: &[String]) -> String {
        prefixes
            .iter()
            .map(|p| {
                let id = self
                    .tree_id_at(commit, p)
                    .map_or_else(|| "none".to_string(), |o| o.to_string());
                format!("{p}:{id}")
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    /// A hash of changed paths and what each is in the working tree, as git would store it: a
    /// file's content (streamed) and whether it is executable, a link's target (never followed:
    /// a link to `/dev/zero` or a pipe would be read forever), or that it is absent, a folder
    /// or a special file.
    fn fingerprint(&self, paths: &std::collections::BTreeSet<String>) -> String {
        let mut text = String::new();
        for p in paths {
            let full = self.root().join(p);
            let content = match std::fs::symlink_metadata(&full) {
                Err(_) => "-".to_string(),
                Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(&full) {
                    Ok(target) => format!("link {}", target.display()),
                    Err(_) => "link ?".to_string(),
                },
                Ok(m) if m.is_file() => {
                    use std::os::unix::fs::PermissionsExt as _;
                    let exec = m.permissions().mode() & 0o111 != 0;
                    let id = Oid::hash_file(ObjectType::Blob, &full)
                        .map_or_else(|_| "?".to_string(), |o| o.to_string());
                    format!("{} {id}", if exec { "exec" } else { "file" })
                }
                // A submodule (or another repository) as it is checked out: its commit and
                // its own changes, so that two different edits in it never share an id.
                Ok(m) if m.is_dir() => match Repo::open(&full) {
                    Ok(sub) => match sub.head_commit() {
                        Some(head) => {
                            let own = sub
                                .diff_to_workdir(head)
                                .map_or_else(|_| "?".to_string(), |c| sub.fingerprint(&c.paths));
                            format!("repository {head} {own}")
                        }
                        None => "repository without commits".to_string(),
                    },
                    Err(_) => "folder".to_string(),
                },
                Ok(_) => "special".to_string(),
            };
            text.push_str(&format!("{p}\0{content}\n"));
        }
        Oid::hash_object(ObjectType::Blob, text.as_bytes())
            .map_or_else(|_| "0".repeat(40), |o| o.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_differences_name_changed_added_and_removed_inputs() {
        let a = "ferry.toml:1;services/api:2;shared:3";
        assert!(key_differences(a, a).is_empty());
        assert_eq!(
            key_differences(a, "ferry.toml:1;services/api:9;lib:4"),
            ["lib", "services/api", "shared"]
        );
        // The repository root, from a glob that starts with a wildcard, is the empty prefix.
        assert_eq!(
            key_differences(":1;services/api:2", ":5;services/api:2"),
            [""]
        );
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("shared/lib/**"), "shared/lib");
        assert_eq!(literal_prefix("shared/*.py"), "shared");
        assert_eq!(literal_prefix("**/*.py"), "");
        assert_eq!(literal_prefix("ferry.toml"), "ferry.toml");
        assert!(under("services/api/x", "services/api"));
        assert!(!under("services/api2/x", "services/api"));
        assert!(under("anything", ""));
    }
}
