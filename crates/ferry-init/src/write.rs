//! Writing what `init` rendered into the repository, and what `validate` would then say: both
//! also as a dry run, which says what a real run would do without writing anything.

use std::path::Path;

use ferry_manifest::{Source, WithFiles};

use crate::{InitError, Scan, link_on_the_way};

/// What to do with a file `init` would write that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse the whole write before anything is written (the default).
    Refuse,
    /// Overwrite it (`--force`).
    Overwrite,
    /// Keep it as it is and write the others (`--only-missing`): the `service.toml` of a service
    /// added since `init` ran, leaving filled-in parameters and links written by hand alone.
    Keep,
}

/// What [`write`] did, or (from [`check_write`]) would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub written: Vec<String>,
    /// Existing files left as they are ([`Existing::Keep`]).
    pub kept: Vec<String>,
}

/// What [`write`] would do with `files` under `root`, writing nothing: the same refusals (a
/// file that exists, a symbolic link on the way, a folder where a file goes), so that a dry run
/// promises nothing a real run refuses.
pub fn check_write(
    root: &Path,
    files: &[(String, String)],
    existing: Existing,
) -> Result<Written, InitError> {
    let all: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    let mut plan = Written::default();
    for (rel, _) in files {
        // A symbolic link on the way (a dangling one too) could lead the write out of the
        // repository; one that `exists()` does not see is refused all the same.
        if let Some(link) = link_on_the_way(root, Path::new(rel)) {
            return Err(InitError::Symlink(link));
        }
        let path = root.join(rel);
        if path.is_dir() {
            return Err(InitError::Io {
                path,
                source: std::io::Error::other("a folder is where init writes this file"),
            });
        }
        match (path.exists(), existing) {
            (true, Existing::Refuse) => {
                return Err(InitError::Exists {
                    existing: path,
                    all,
                });
            }
            (true, Existing::Keep) => plan.kept.push(rel.clone()),
            _ => plan.written.push(rel.clone()),
        }
    }
    Ok(plan)
}

/// Writes `files` (repository-relative path → text) under `root`, treating those that exist as
/// `existing` says. Everything is checked first ([`check_write`]): a refusal leaves the
/// repository as it was.
pub fn write(
    root: &Path,
    files: &[(String, String)],
    existing: Existing,
) -> Result<Written, InitError> {
    let plan = check_write(root, files, existing)?;
    for (rel, text) in files.iter().filter(|(rel, _)| plan.written.contains(rel)) {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| InitError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| InitError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(plan)
}

/// What `validate` would say of the repository at `root` (read through `source`, its working
/// tree) once `writes` are written over it, one message per problem: a template a deploy would
/// refuse, every load error, and a service `scan` found whose folder a `ferry.toml` kept as it
/// was does not cover (its `service.toml` would be read by nothing). Empty when it would pass.
/// Said by `init`, after writing or as a dry run, rather than at the first deploy.
pub fn problems_after(
    root: &Path,
    source: &dyn Source,
    scan: &Scan,
    writes: &[(String, String)],
) -> Vec<String> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let after = WithFiles::new(source, writes.iter().cloned());
    let ws = match ferry_manifest::load_from(&root, &after, None) {
        Err(e) => return e.to_string().lines().map(String::from).collect(),
        Ok(ws) => ws,
    };
    // The templates are read from disk, where a folder the write would make is not there yet
    // (a template beside others given a folder of its own,
    // `templates/application/../application.yaml`): such a service's template is checked where
    // it lies, as from its own folder (it names no local path, or init would have given it the
    // folder holding them).
    let checked: Vec<ferry_manifest::Service> = ws
        .services
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if !root.join(&s.dir).is_dir()
                && let Some(path) = ferry_manifest::normalize_relative(&s.template_path())
                && let Some((dir, file)) = path.rsplit_once('/')
            {
                (s.dir, s.template) = (dir.to_string(), file.to_string());
            }
            s
        })
        .collect();
    let mut problems: Vec<String> = ferry_package::check_templates(&ws, &checked)
        .iter()
        .map(ToString::to_string)
        .collect();
    problems.extend(
        scan.services
            .iter()
            .filter(|f| !ws.services.iter().any(|s| s.dir == f.dir))
            .map(|f| {
                format!(
                    "{}: ferry.toml's [project] services do not name its folder, so no command reads its service.toml: add \"{}\" (or a pattern covering it) to them",
                    f.dir, f.dir
                )
            }),
    );
    problems
}

/// `notes` (what `init` found, to check by hand) in two: those about files `kept` keeps as they
/// are (a service whose `service.toml` is kept, a kept `ferry.toml`), which nothing of is
/// written, and the others. A note is about what its subject names, the text before its first
/// `": "` (one path or several, `services/a, services/b`): each path is taken as the deepest
/// service folder holding it (`backend/worker/deploy.sh` is `backend/worker`'s, not
/// `backend`'s), and a note is about kept files only when all its paths are.
pub fn notes_about_kept(
    notes: Vec<String>,
    scan: &Scan,
    kept: &[String],
) -> (Vec<String>, Vec<String>) {
    let kept_dir = |dir: &str| kept.iter().any(|k| *k == format!("{dir}/service.toml"));
    let about_kept = |note: &str| {
        let Some((subject, _)) = note.split_once(": ") else {
            return false;
        };
        subject.split(", ").all(|path| {
            if path == "ferry.toml" {
                return kept.iter().any(|k| k == "ferry.toml");
            }
            scan.services
                .iter()
                .map(|s| s.dir.as_str())
                .filter(|d| !d.is_empty() && (path == *d || path.starts_with(&format!("{d}/"))))
                .max_by_key(|d| d.len())
                .is_some_and(kept_dir)
        })
    };
    notes.into_iter().partition(|n| about_kept(n))
}
