//! The files of an artifact: a folder walked recursively (or one file), minus exclude globs and
//! credential files, sorted by name so the archive does not depend on the order the file system
//! lists them in.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ferry_manifest::Owners;
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

/// Names that hold credentials by convention (dotenv and direnv files, package-registry and
/// git credentials, AWS, SSH and Docker configuration folders). Such a file is often ignored by
/// git and so never reviewed, and nothing at run time needs it: a function's settings belong in
/// its template or in SSM. Ferry never packages one, at any depth, whatever the exclude globs say.
pub const CREDENTIAL_NAMES: &[&str] = &[
    ".env",
    ".env.*",
    ".envrc",
    ".npmrc",
    ".yarnrc.yml",
    ".pypirc",
    ".netrc",
    ".git-credentials",
    ".git",
    ".aws",
    ".ssh",
    ".docker",
    ".pgpass",
    ".dev.vars",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
];

/// Dotenv files that by convention hold no value, only the names a real one must set (a tool
/// such as dotenv-safe reads one at run time): not credential files.
pub const DOTENV_TEMPLATES: &[&str] =
    &[".env.example", ".env.sample", ".env.template", ".env.dist"];

/// Whether a file or folder named `name` holds credentials by convention ([`CREDENTIAL_NAMES`],
/// except [`DOTENV_TEMPLATES`]; letter case ignored, as on a case-insensitive file system).
pub fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !DOTENV_TEMPLATES.contains(&name.as_str())
        && CREDENTIAL_NAMES.iter().any(|c| match c.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *c,
        })
}

/// How a progress line names the credential files left out: their count and the first five
/// (`2 files (credential files are never packaged): .env, lib/.npmrc`; a dependency folder can
/// hold many).
pub fn withheld_summary(files: &[String]) -> String {
    let noun = if files.len() == 1 { "file" } else { "files" };
    format!(
        "{} {noun} (credential files are never packaged): {}",
        files.len(),
        ferry_manifest::first_few(files, 5)
    )
}

/// What [`collect`] found: the files to package, and the credential files left out (their
/// names relative to the folder walked, sorted), for the caller to report.
#[derive(Debug, Default)]
pub struct Collected {
    pub entries: Vec<Entry>,
    pub withheld: Vec<String>,
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
/// Credential files ([`is_credential_name`]) are left out and listed in
/// [`Collected::withheld`]; one named as the artifact itself is refused.
///
/// With `watched`, a file reached through a link must lie in what change detection watches for
/// the service: an edit anywhere else would not redeploy it, and its package would go stale.
pub fn collect(
    root: &Path,
    exclude: &GlobSet,
    boundary: &Path,
    watched: Option<&Watched<'_>>,
) -> io::Result<Collected> {
    collect_in(root, exclude, boundary, watched, Scope::Repository)
}

/// The files of `dir`, an archive another tool wrote, unpacked: as [`collect`] with the folder
/// as the boundary, so a link in the archive must stay inside it; errors name entries by their
/// place in the archive.
pub fn collect_unpacked(dir: &Path) -> io::Result<Collected> {
    collect_in(dir, &GlobSet::empty(), dir, None, Scope::Unpacked)
}

/// What the boundary of a walk is, for its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Repository,
    Unpacked,
}

fn collect_in(
    root: &Path,
    exclude: &GlobSet,
    boundary: &Path,
    watched: Option<&Watched<'_>>,
    scope: Scope,
) -> io::Result<Collected> {
    walk_in(root, exclude, boundary, watched, scope, false)
}

/// [`collect_in`], with `once`: each real folder walked once (a check of links, whose result
/// is the same however a folder is reached; an archive names every path).
fn walk_in(
    root: &Path,
    exclude: &GlobSet,
    boundary: &Path,
    watched: Option<&Watched<'_>>,
    scope: Scope,
    once: bool,
) -> io::Result<Collected> {
    let given = boundary;
    let boundary = fs::canonicalize(boundary)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", boundary.display())))?;
    let real = resolve(root, &boundary, scope, ".")?;
    // A folder reached through a link has its files checked as they are walked: the root
    // itself a link, or a folder on its way (`lib -> ../../shared/lib`, the artifact
    // `lib/handler`), which is when it is not where its path says.
    let linked = fs::symlink_metadata(root).is_ok_and(|m| m.file_type().is_symlink())
        || match (root.strip_prefix(given), real.strip_prefix(&boundary)) {
            (Ok(said), Ok(is)) => said != is,
            _ => true,
        };
    let meta = fs::metadata(&real)?;
    let mut out = Collected::default();
    let credential_place = in_credential_place(&real, &boundary);
    if meta.is_file() || credential_place {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::other("file name is not UTF-8"))?
            .to_string();
        if is_credential_name(&name) || credential_place {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is (or leads to) a credential file or folder by its name ({}): Ferry never packages one; put the function's settings in its template or in SSM",
                    root.display(),
                    CREDENTIAL_NAMES.join(", ")
                ),
            ));
        }
        if let Some(w) = watched
            && linked
        {
            w.check(root, &real, &boundary)?;
        }
        out.entries.push(Entry {
            name,
            path: root.to_path_buf(),
            executable: is_executable(&meta),
        });
        return Ok(out);
    }
    let mut walk = Walk {
        exclude,
        boundary: &boundary,
        scope,
        watched,
        open: vec![real.clone()],
        seen: once.then(Default::default),
        unwatched: Vec::new(),
        out: &mut out,
    };
    walk.dir(root, &real, "", linked)?;
    walk.unwatched.sort_by(|a, b| a.glob.cmp(&b.glob));
    match walk.unwatched.len() {
        0 => {}
        1 => return Err(walk.unwatched.remove(0).into()),
        n => {
            let each: Vec<String> = walk.unwatched.iter().map(|u| format!("  - {u}")).collect();
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{n} paths it packages lead where the service does not watch (inputs = [{}] would):\n{}",
                    walk.unwatched
                        .iter()
                        .map(|u| format!("\"{}\"", u.glob))
                        .collect::<Vec<_>>()
                        .join(", "),
                    each.join("\n")
                ),
            ));
        }
    }
    out.entries
        .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    out.withheld.sort();
    Ok(out)
}

/// Whether the real path `real` (inside the canonical `boundary`) is, or lies in, a file or
/// folder with a credential name, counted from `boundary`.
fn in_credential_place(real: &Path, boundary: &Path) -> bool {
    real.strip_prefix(boundary).is_ok_and(|rel| {
        rel.components()
            .any(|c| c.as_os_str().to_str().is_some_and(is_credential_name))
    })
}

/// Where `path` really is, refused when that is outside `boundary` (already canonical).
/// `entry` names it relative to the walk's root.
fn resolve(path: &Path, boundary: &Path, scope: Scope, entry: &str) -> io::Result<PathBuf> {
    if scope == Scope::Unpacked {
        return resolve_unpacked(path, boundary, entry);
    }
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

/// One committed symbolic link of a folder another tool packages (a Serverless Framework
/// service's, which its framework zips following links): it must lead inside the canonical
/// `boundary` (the repository), to no credential file, and to what `watched` covers. A link to
/// a folder has that folder walked as an archive's would be: each file it holds must be
/// watched, and each link in it held to the same rules (the framework follows those too). A
/// broken link is the tool's to report. A link named like a credential file is left alone:
/// Ferry strips such names from the tool's archive.
pub(crate) fn check_committed_link(
    path: &Path,
    boundary: &Path,
    watched: &Watched<'_>,
) -> io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if is_credential_name(name) {
        return Ok(());
    }
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    let credential_link = |link: &Path, real: &Path| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is a symbolic link to a credential file or folder ({}): its framework would package what it leads to; remove the link",
                link.display(),
                real.display()
            ),
        )
    };
    if meta.is_dir() {
        let found = walk_in(
            path,
            &GlobSet::empty(),
            boundary,
            Some(watched),
            Scope::Repository,
            true,
        )?;
        // A link inside it that leads to a credential file keeps its own, innocent name.
        for rel in &found.withheld {
            let inner = path.join(rel);
            if fs::symlink_metadata(&inner).is_ok_and(|m| m.file_type().is_symlink()) {
                let real = fs::canonicalize(&inner).unwrap_or_else(|_| inner.clone());
                return Err(credential_link(&inner, &real));
            }
        }
        return Ok(());
    }
    let real = fs::canonicalize(path)?;
    if !real.starts_with(boundary) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} leads to {}, outside the repository: its framework would package it (a change there goes unseen, and it could be a secret); copy what the service needs into the repository",
                path.display(),
                real.display()
            ),
        ));
    }
    if in_credential_place(&real, boundary) {
        return Err(credential_link(path, &real));
    }
    watched.check(path, &real, boundary)
}

/// [`resolve`] inside an unpacked archive: its temporary folder means nothing to the reader, so
/// the link is named by `entry`, its place in the archive.
fn resolve_unpacked(path: &Path, boundary: &Path, entry: &str) -> io::Result<PathBuf> {
    let real = fs::canonicalize(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("entry {entry} is a broken or looping symbolic link ({e})"),
        )
    })?;
    if !real.starts_with(boundary) {
        let target = fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| real.display().to_string());
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "entry {entry} is a symbolic link to {target}, outside the archive: Ferry re-zips only what an archive holds; have the framework package the file itself (not a link to it), or exclude it from the package"
            ),
        ));
    }
    Ok(real)
}

/// What change detection watches for one service: the paths whose change redeploys it
/// ([`Owners::redeploys`]: its folder less the folders of services nested in it, its declared
/// `inputs`, a template outside its folder, the project's global inputs). The rule is
/// change detection's own, not a copy of it.
#[derive(Debug)]
pub struct Watched<'a> {
    owners: &'a Owners<'a>,
    service: &'a str,
}

impl<'a> Watched<'a> {
    /// What `owners` (every service of the workspace) lets `service` watch.
    pub fn new(owners: &'a Owners<'a>, service: &'a str) -> Watched<'a> {
        Watched { owners, service }
    }

    /// Whether the service declares `rel` (repository-relative; a file or a folder a template
    /// names outside the service folder) among what it watches: its folder, its `inputs`, the
    /// project's global inputs; a folder also where an input takes everything under it
    /// (`shared/lib/**`). Unlike [`Self::covers`], an installed package is not exempt: a
    /// template naming a `node_modules` folder outside its own would package what the service
    /// does not watch.
    pub(crate) fn declares(&self, rel: &str) -> bool {
        self.owners.redeploys(self.service, rel)
            || self.owners.redeploys(self.service, &format!("{rel}/"))
    }

    fn covers(&self, rel: &str) -> bool {
        // Installed packages (pnpm links each one into the repository's own `node_modules`)
        // are not versioned: they change through a lockfile, which a service declares as an
        // input when it packages them.
        rel.split('/').any(|c| c == "node_modules") || self.owners.redeploys(self.service, rel)
    }

    /// `path` is really at `real` (inside the canonical `boundary`): refused unless watched.
    fn check(&self, path: &Path, real: &Path, boundary: &Path) -> io::Result<()> {
        match self.unwatched(path, real, boundary) {
            None => Ok(()),
            Some(u) => Err(u.into()),
        }
    }

    /// Why `path`, really at `real`, is not watched; `None` when it is.
    fn unwatched(&self, path: &Path, real: &Path, boundary: &Path) -> Option<Unwatched> {
        let rel = real
            .strip_prefix(boundary)
            .ok()
            .and_then(Path::to_str)
            .unwrap_or_default();
        if self.covers(rel) {
            return None;
        }
        // A file of another service's folder, else of its inputs alone (no folder holds it,
        // so every service `services_of` names has it among its inputs).
        let place = match self.owners.folder_of(rel) {
            Some(one) => {
                format!("a file of service {one} (not of this service's folder or declared inputs)")
            }
            None => match self.owners.services_of(rel).as_slice() {
                [] => "outside the service's folder and its declared inputs".to_string(),
                many => format!(
                    "among the inputs of {} only (not of this service's folder or declared inputs)",
                    many.join(", ")
                ),
            },
        };
        Some(Unwatched {
            path: path.display().to_string(),
            rel: rel.to_string(),
            place,
            // Its folder's files; a file at the root, itself (a root folder's `/**` would be
            // the file's name, which matches nothing below it).
            glob: match rel.rsplit_once('/') {
                Some((dir, _)) => format!("{}/**", globset::escape(dir)),
                None => globset::escape(rel),
            },
        })
    }
}

/// A path a service packages that it does not watch (see [`Watched`]).
struct Unwatched {
    path: String,
    rel: String,
    place: String,
    /// The input that would watch it.
    glob: String,
}

impl std::fmt::Display for Unwatched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} leads to {}, {}: an edit there would not redeploy the service, so its package would go stale; declare it in the service's `inputs` (e.g. inputs = [\"{}\"]), or exclude it",
            self.path, self.rel, self.place, self.glob
        )
    }
}

impl From<Unwatched> for io::Error {
    fn from(u: Unwatched) -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, u.to_string())
    }
}

struct Walk<'a> {
    exclude: &'a GlobSet,
    boundary: &'a Path,
    scope: Scope,
    watched: Option<&'a Watched<'a>>,
    /// The real paths of the folders being walked, outermost first: a link back into one of
    /// them is a loop.
    open: Vec<PathBuf>,
    /// When checking links only (not packaging): the real folders already walked, each walked
    /// once however many links lead to it (links to links to one folder made the walk
    /// exponential).
    seen: Option<std::collections::HashSet<PathBuf>>,
    /// The files reached that the service does not watch, one per input that would watch them:
    /// said together once the walk ends, so that one run names every input to declare.
    unwatched: Vec<Unwatched>,
    out: &'a mut Collected,
}

impl Walk<'_> {
    /// Walks folder `dir` (really at `real`), its entries named under `prefix`; `linked` when
    /// a link led there.
    fn dir(&mut self, dir: &Path, real: &Path, prefix: &str, linked: bool) -> io::Result<()> {
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
            // Before a link is followed: a `.env` linked from elsewhere is still a `.env`.
            if is_credential_name(name) {
                self.out.withheld.push(rel);
                continue;
            }
            let path = entry.path();
            let link = entry.file_type().is_ok_and(|t| t.is_symlink());
            let target = if link {
                resolve(&path, self.boundary, self.scope, &rel)?
            } else {
                real.join(name)
            };
            // A link to a credential file or into a credential folder (`config -> ../.env`).
            if link && in_credential_place(&target, self.boundary) {
                self.out.withheld.push(rel);
                continue;
            }
            let meta = fs::metadata(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            if meta.is_dir() {
                if let Some(seen) = &mut self.seen
                    && !seen.insert(target.clone())
                {
                    continue;
                }
                if self.open.contains(&target) {
                    let (link, into) = match self.scope {
                        Scope::Repository => {
                            (path.display().to_string(), target.display().to_string())
                        }
                        // Inside an archive, names in the archive.
                        Scope::Unpacked => (
                            format!("entry {rel}"),
                            match target.strip_prefix(self.boundary) {
                                Ok(t) if !t.as_os_str().is_empty() => {
                                    format!("the archive's folder {}", t.display())
                                }
                                _ => "the archive's top folder".into(),
                            },
                        ),
                    };
                    return Err(io::Error::other(format!(
                        "{link} is a symbolic link back into {into}, a folder that holds it: the walk would never end; remove it or exclude it"
                    )));
                }
                self.open.push(target.clone());
                self.dir(&path, &target, &rel, linked || link)?;
                self.open.pop();
            } else if meta.is_file() {
                if let Some(w) = self.watched
                    && (linked || link)
                    && let Some(u) = w.unwatched(&path, &target, self.boundary)
                    && !self.unwatched.iter().any(|o| o.glob == u.glob)
                {
                    self.unwatched.push(u);
                }
                self.out.entries.push(Entry {
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

    /// A tripwire: an archive cached under older rules would keep what new rules leave out.
    #[test]
    fn changing_which_names_are_credentials_bumps_the_file_rules() {
        let names = crate::sha256_hex(
            format!(
                "{}\0{}",
                CREDENTIAL_NAMES.join("\n"),
                DOTENV_TEMPLATES.join("\n")
            )
            .as_bytes(),
        );
        assert_eq!(
            (crate::FILE_RULES, &names[..16]),
            (3, "d16f57e67b626fea"),
            "CREDENTIAL_NAMES or DOTENV_TEMPLATES changed: bump FILE_RULES (so that no package cached under the old names is reused), then put the new hash and number here"
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_in_an_unpacked_archive_are_named_by_their_place_in_it() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("lib")).unwrap();
        fs::write(dir.path().join("lib/a.py"), "A = 1").unwrap();
        symlink("a.py", dir.path().join("lib/b.py")).unwrap();
        let names: Vec<String> = collect_unpacked(dir.path())
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["lib/a.py", "lib/b.py"], "a link inside is followed");

        symlink(outside.path(), dir.path().join("lib/out")).unwrap();
        let err = collect_unpacked(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            err.to_string(),
            format!(
                "entry lib/out is a symbolic link to {}, outside the archive: Ferry re-zips only what an archive holds; have the framework package the file itself (not a link to it), or exclude it from the package",
                outside.path().display()
            )
        );
        fs::remove_file(dir.path().join("lib/out")).unwrap();

        symlink("..", dir.path().join("lib/up")).unwrap();
        let err = collect_unpacked(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry lib/up is a symbolic link back into the archive's top folder, a folder that holds it: the walk would never end; remove it or exclude it"
        );
        fs::remove_file(dir.path().join("lib/up")).unwrap();
        symlink("nowhere", dir.path().join("lib/broken")).unwrap();
        let err = collect_unpacked(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("entry lib/broken is a broken or looping symbolic link ("),
            "{err}"
        );
        assert!(
            !err.contains(&dir.path().display().to_string()),
            "the temporary folder is not named: {err}"
        );
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
        let names: Vec<String> = collect(&svc.join("src"), &none, repo.path(), None)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["app.py", "shared/lib.py"]);

        symlink(outside.path().join("credentials"), svc.join("src/creds")).unwrap();
        let err = collect(&svc.join("src"), &none, repo.path(), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("outside the repository"), "{err}");
        // Excluded, it is not looked at.
        let creds = exclude_set(&["creds"]).unwrap();
        assert_eq!(
            collect(&svc.join("src"), &creds, repo.path(), None)
                .unwrap()
                .entries
                .len(),
            2
        );
        fs::remove_file(svc.join("src/creds")).unwrap();

        // A link back into a folder being walked, and a broken link.
        symlink("..", svc.join("src/up")).unwrap();
        let err = collect(&svc.join("src"), &none, repo.path(), None).unwrap_err();
        assert!(err.to_string().contains("would never end"), "{err}");
        fs::remove_file(svc.join("src/up")).unwrap();
        symlink("nowhere", svc.join("src/broken")).unwrap();
        let err = collect(&svc.join("src"), &none, repo.path(), None).unwrap_err();
        assert!(err.to_string().contains("broken or looping"), "{err}");
        fs::remove_file(svc.join("src/broken")).unwrap();

        // The artifact itself a link out of the repository.
        symlink(outside.path(), svc.join("out")).unwrap();
        let err = collect(&svc.join("out"), &none, repo.path(), None).unwrap_err();
        assert!(err.to_string().contains("outside the repository"), "{err}");
    }

    #[test]
    fn a_summary_names_the_first_five_files_left_out() {
        let files: Vec<String> = (1..=7).map(|i| format!("m{i}/.npmrc")).collect();
        assert_eq!(
            withheld_summary(&files[..1]),
            "1 file (credential files are never packaged): m1/.npmrc"
        );
        assert_eq!(
            withheld_summary(&files),
            "7 files (credential files are never packaged): m1/.npmrc, m2/.npmrc, m3/.npmrc, m4/.npmrc, m5/.npmrc and 2 more"
        );
    }

    #[test]
    fn credential_names_are_known_by_name_whatever_their_case() {
        let listed = CREDENTIAL_NAMES
            .iter()
            .map(|n| n.replace('*', "production"));
        for hit in listed.chain([".env.local", ".ENV", ".Env.Local", ".NPMRC"].map(String::from)) {
            assert!(is_credential_name(&hit), "{hit} holds credentials");
        }
        for miss in [
            "env",
            ".env.example",
            ".ENV.SAMPLE",
            ".env.template",
            ".env.dist",
            ".environment.json",
            "app.env",
            ".env-not",
            ".gitignore",
            ".npmignore",
            "aws",
            ".well-known",
            "config.json",
        ] {
            assert!(!is_credential_name(miss), "{miss} does not");
        }
    }

    /// Links to links to one folder: checking them walks each real folder once. Before, 36
    /// links made half a million visits; the 60 here would have made two billion.
    #[cfg(unix)]
    #[test]
    fn checking_links_walks_each_folder_once_however_many_links_reach_it() {
        use std::os::unix::fs::symlink;
        let repo = tempfile::tempdir().unwrap();
        let svc = repo.path().join("services/api");
        let levels = 30;
        for i in 0..=levels {
            fs::create_dir_all(svc.join(format!("d{i}"))).unwrap();
            fs::write(svc.join(format!("d{i}/f.txt")), "x").unwrap();
        }
        for i in 0..levels {
            for side in ["a", "b"] {
                symlink(format!("../d{}", i + 1), svc.join(format!("d{i}/{side}"))).unwrap();
            }
        }
        symlink("d0", svc.join("top")).unwrap();
        let owners = api_owners(&[]);
        let watched = Watched::new(&owners, "api");
        let boundary = fs::canonicalize(repo.path()).unwrap();
        check_committed_link(&svc.join("top"), &boundary, &watched).unwrap();
        // Still refused when one of them leads out.
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        symlink(
            outside.path().join("secret"),
            svc.join(format!("d{levels}/s")),
        )
        .unwrap();
        let err = check_committed_link(&svc.join("top"), &boundary, &watched).unwrap_err();
        assert!(err.to_string().contains("outside the repository"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_may_lead_only_where_change_detection_looks() {
        use std::os::unix::fs::symlink;
        let repo = tempfile::tempdir().unwrap();
        let svc = repo.path().join("services/api");
        fs::create_dir_all(svc.join("src")).unwrap();
        fs::create_dir_all(svc.join("vendor")).unwrap();
        fs::create_dir_all(repo.path().join("shared/lib")).unwrap();
        fs::write(repo.path().join("shared/lib/util.py"), "U = 1").unwrap();
        fs::write(svc.join("vendor/v.py"), "V = 1").unwrap();
        fs::write(svc.join("src/app.py"), "A = 1").unwrap();
        // Inside the service's own folder: watched.
        symlink("../vendor", svc.join("src/vendor")).unwrap();
        let none = exclude_set(&[]).unwrap();
        let no_inputs = api_owners(&[]);
        let own = Watched::new(&no_inputs, "api");
        let got = collect(&svc.join("src"), &none, repo.path(), Some(&own)).unwrap();
        assert_eq!(got.entries.len(), 2);

        // Elsewhere in the repository: refused unless declared among the inputs.
        symlink("../../../shared/lib", svc.join("src/lib")).unwrap();
        let err = collect(&svc.join("src"), &none, repo.path(), Some(&own)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string().contains("leads to shared/lib/util.py, outside the service's folder and its declared inputs: an edit there would not redeploy the service, so its package would go stale; declare it in the service's `inputs` (e.g. inputs = [\"shared/lib/**\"])"),
            "{err}"
        );
        let inputs = ["shared/lib/**".to_string()];
        let with_inputs = api_owners(&inputs);
        let declared = Watched::new(&with_inputs, "api");
        let names: Vec<String> = collect(&svc.join("src"), &none, repo.path(), Some(&declared))
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["app.py", "lib/util.py", "vendor/v.py"]);
        // The artifact itself a link to such a place.
        symlink("../../shared/lib", svc.join("out")).unwrap();
        let err = collect(&svc.join("out"), &none, repo.path(), Some(&own)).unwrap_err();
        assert!(err.to_string().contains("leads to shared/lib"), "{err}");
        assert!(collect(&svc.join("out"), &none, repo.path(), Some(&declared)).is_ok());
        fs::remove_file(svc.join("out")).unwrap();
        // A folder named like a glob's set (a route's `[slug]`): the advice is the glob that
        // matches it, which `validate` takes.
        fs::create_dir_all(repo.path().join("routes/[slug]")).unwrap();
        fs::write(repo.path().join("routes/[slug]/page.js"), "P").unwrap();
        symlink("../../routes/[slug]", svc.join("page")).unwrap();
        let err = collect(&svc.join("page"), &none, repo.path(), Some(&own)).unwrap_err();
        assert!(
            err.to_string()
                .contains("(e.g. inputs = [\"routes/[[]slug[]]/**\"])"),
            "{err}"
        );
        fs::remove_file(svc.join("page")).unwrap();
        // A folder on the way to the artifact a link (`shared -> ../../shared`, the artifact
        // `shared/lib`), and a single file under it: the same.
        symlink("../../shared", svc.join("shared")).unwrap();
        for artifact in ["shared/lib", "shared/lib/util.py"] {
            let err = collect(&svc.join(artifact), &none, repo.path(), Some(&own)).unwrap_err();
            assert!(
                err.to_string().contains("leads to shared/lib/util.py"),
                "{artifact}: {err}"
            );
            assert!(collect(&svc.join(artifact), &none, repo.path(), Some(&declared)).is_ok());
        }
        fs::remove_file(svc.join("shared")).unwrap();

        // An installed package linked from the repository's `node_modules` (pnpm) is no
        // versioned file: followed as before.
        fs::remove_file(svc.join("src/lib")).unwrap();
        fs::create_dir_all(repo.path().join("node_modules/.pnpm/left-pad/lib")).unwrap();
        fs::write(
            repo.path().join("node_modules/.pnpm/left-pad/lib/index.js"),
            "1",
        )
        .unwrap();
        fs::create_dir_all(svc.join("src/node_modules")).unwrap();
        symlink(
            "../../../../node_modules/.pnpm/left-pad",
            svc.join("src/node_modules/left-pad"),
        )
        .unwrap();
        let got = collect(&svc.join("src"), &none, repo.path(), Some(&own)).unwrap();
        assert_eq!(got.entries.len(), 3);

        // Inside the folder of a service nested in this one: that service's file, whose edits
        // redeploy it, not this one.
        fs::remove_dir_all(svc.join("src/node_modules")).unwrap();
        fs::create_dir_all(svc.join("admin")).unwrap();
        fs::write(svc.join("admin/a.py"), "A = 2").unwrap();
        symlink("../admin/a.py", svc.join("src/a.py")).unwrap();
        let specs = [
            ferry_manifest::ServiceSpec {
                name: "api",
                dir: "services/api",
                inputs: &[],
                files: Vec::new(),
            },
            ferry_manifest::ServiceSpec {
                name: "admin",
                dir: "services/api/admin",
                inputs: &[],
                files: Vec::new(),
            },
        ];
        let owners = Owners::new(specs, &[]).unwrap();
        let nested = Watched::new(&owners, "api");
        let err = collect(&svc.join("src"), &none, repo.path(), Some(&nested)).unwrap_err();
        assert!(
            err.to_string().contains("leads to services/api/admin/a.py, a file of service admin (not of this service's folder or declared inputs): an edit there would not redeploy the service"),
            "{err}"
        );
        // Without the nested service, the same file is the folder's own.
        assert_eq!(
            collect(&svc.join("src"), &none, repo.path(), Some(&own))
                .unwrap()
                .entries
                .len(),
            3
        );
    }

    /// Links to two shared folders the service does not watch, one of them another service's
    /// input (theburningmonk/lambda-monorepo-code-sharing-demo's `libraries`): one error names
    /// both, with the input each needs (before, one per run, and the second was called "a file
    /// of service" whose input it is).
    #[test]
    fn every_unwatched_folder_a_walk_reaches_is_named_at_once() {
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path();
        for lib in ["a", "b"] {
            fs::create_dir_all(root.join(format!("libraries/library-{lib}"))).unwrap();
            for f in ["index.js", "util.js"] {
                fs::write(root.join(format!("libraries/library-{lib}/{f}")), "x").unwrap();
            }
        }
        let svc = root.join("projects/service-a");
        fs::create_dir_all(svc.join("src")).unwrap();
        std::os::unix::fs::symlink("../../../libraries", svc.join("src/libraries")).unwrap();
        let b_inputs = ["libraries/library-b/**".to_string()];
        let specs = [
            ferry_manifest::ServiceSpec {
                name: "service-a",
                dir: "projects/service-a",
                inputs: &[],
                files: Vec::new(),
            },
            ferry_manifest::ServiceSpec {
                name: "service-b",
                dir: "projects/service-b",
                inputs: &b_inputs,
                files: Vec::new(),
            },
        ];
        let owners = Owners::new(specs, &[]).unwrap();
        let watched = Watched::new(&owners, "service-a");
        let none = GlobSet::empty();
        let err = collect(&svc.join("src"), &none, root, Some(&watched))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("2 paths it packages lead where the service does not watch (inputs = [\"libraries/library-a/**\", \"libraries/library-b/**\"] would):\n"),
            "{err}"
        );
        assert!(
            err.contains(".js, among the inputs of service-b only (not of this service's folder or declared inputs)"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 3, "one line per folder: {err}");
    }

    /// The owners of one service, `api` in `services/api`, with `inputs`.
    fn api_owners(inputs: &[String]) -> Owners<'_> {
        let spec = ferry_manifest::ServiceSpec {
            name: "api",
            dir: "services/api",
            inputs,
            files: Vec::new(),
        };
        Owners::new([spec], &[]).unwrap()
    }

    #[cfg(unix)]
    #[test]
    fn credential_files_are_left_out_at_any_depth_and_refused_as_an_artifact() {
        use std::os::unix::fs::symlink;
        let repo = tempfile::tempdir().unwrap();
        let src = repo.path().join("svc/src");
        fs::create_dir_all(src.join("lib/.aws")).unwrap();
        fs::write(src.join("app.py"), "A = 1").unwrap();
        fs::write(src.join(".env"), "DB_PASSWORD=hunter2").unwrap();
        fs::write(src.join("lib/.env.production"), "TOKEN=t").unwrap();
        fs::write(src.join("lib/.aws/credentials"), "[default]").unwrap();
        fs::write(src.join("lib/util.py"), "U = 1").unwrap();
        fs::write(
            src.join("lib/id_ed25519"),
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        )
        .unwrap();
        fs::write(src.join(".PGPASS"), "db:5432:*:app:pw").unwrap();
        // A link named like a credential file is left out without being followed, even when
        // it leads out of the repository (which would otherwise stop the package).
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), src.join(".npmrc")).unwrap();
        let none = exclude_set(&[]).unwrap();
        let got = collect(&src, &none, repo.path(), None).unwrap();
        let names: Vec<&str> = got.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["app.py", "lib/util.py"]);
        assert_eq!(
            got.withheld,
            [
                ".PGPASS",
                ".env",
                ".npmrc",
                "lib/.aws",
                "lib/.env.production",
                "lib/id_ed25519"
            ]
        );
        // Links inside the repository that lead to a credential file or into a credential
        // folder are left out under their own names.
        fs::create_dir_all(repo.path().join(".aws")).unwrap();
        fs::write(repo.path().join(".aws/credentials"), "[default]").unwrap();
        fs::write(repo.path().join("svc/.env"), "TOKEN=t").unwrap();
        symlink("../.env", src.join("config.txt")).unwrap();
        symlink("../../.aws", src.join("settings")).unwrap();
        let got = collect(&src, &none, repo.path(), None).unwrap();
        let names: Vec<&str> = got.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["app.py", "lib/util.py"]);
        assert_eq!(
            got.withheld,
            [
                ".PGPASS",
                ".env",
                ".npmrc",
                "config.txt",
                "lib/.aws",
                "lib/.env.production",
                "lib/id_ed25519",
                "settings"
            ]
        );
        fs::remove_file(src.join("config.txt")).unwrap();
        fs::remove_file(src.join("settings")).unwrap();

        // Excluded by a glob, it is not reported.
        let env = exclude_set(&[".env"]).unwrap();
        let got = collect(&src, &env, repo.path(), None).unwrap();
        assert_eq!(
            got.withheld,
            [
                ".PGPASS",
                ".npmrc",
                "lib/.aws",
                "lib/.env.production",
                "lib/id_ed25519"
            ]
        );

        // Named as the artifact itself: refused, not zipped as a one-file archive.
        let err = collect(&src.join(".env"), &none, repo.path(), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("credential file"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // So is a credential folder named as the artifact, or a link to one.
        let err = collect(&src.join("lib/.aws"), &none, repo.path(), None).unwrap_err();
        assert!(
            err.to_string().contains("credential file or folder"),
            "{err}"
        );
        symlink("../.aws", repo.path().join("svc/aws-config")).unwrap();
        let err = collect(
            &repo.path().join("svc/aws-config"),
            &none,
            repo.path(),
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("credential file or folder"),
            "{err}"
        );
    }
}
