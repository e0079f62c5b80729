//! Who owns a path: the one rule that says which services a file belongs to. Change detection
//! uses it to turn changed paths into services to deploy; packaging uses it to refuse a link to
//! a file that no change would redeploy the service for. Both read it from here, so that what a
//! package may hold and what redeploys it cannot drift apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::model::Workspace;

/// What [`Owners`] needs to know of one service (borrowed: a plan builds one for every service).
#[derive(Debug, Clone)]
pub struct ServiceSpec<'a> {
    pub name: &'a str,
    /// Repository-relative folder, `/`-separated.
    pub dir: &'a str,
    /// Extra input globs, repository relative.
    pub inputs: &'a [String],
    /// Exact files that belong to the service although they may sit outside its folder (its
    /// manifest and template).
    pub files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid input glob `{glob}` of {owner}: {source}")]
pub struct OwnersError {
    glob: String,
    owner: String,
    source: globset::Error,
}

/// Maps changed paths to the services they affect.
#[derive(Debug)]
pub struct Owners<'a> {
    names: Vec<&'a str>,
    dirs: HashMap<&'a str, usize>,
    files: HashMap<String, Vec<usize>>,
    inputs: GlobSet,
    /// Glob `k` of `inputs` → the services that declared it (a shared input is often declared
    /// by many services, and is compiled and matched once).
    input_owners: Vec<Vec<usize>>,
    /// Inputs without wildcards, as folders (`shared/lib/`), with their input `k`: such an
    /// input names a file or everything under a folder.
    input_folders: Vec<(String, usize)>,
    /// Input `k`'s glob as written, for [`Owners::services_below`].
    input_globs: Vec<String>,
    global: GlobSet,
    /// Global inputs without wildcards, as folders.
    global_folders: Vec<String>,
    /// The global inputs as written.
    global_globs: Vec<String>,
}

/// Changed paths sorted by who they affect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    /// Service → its own changed paths (folder, manifest, template, declared inputs).
    pub services: BTreeMap<String, BTreeSet<String>>,
    /// Changed paths that match a global input: they affect every service.
    pub global: BTreeSet<String>,
    /// Changed paths that belong to no service and no global input.
    pub unowned: BTreeSet<String>,
}

impl<'a> Owners<'a> {
    /// The owners of every service of `ws` (not only some: a path of a nested service must not
    /// be attributed to the folder around it), with the project's global inputs.
    pub fn of_workspace(ws: &'a Workspace) -> Result<Owners<'a>, OwnersError> {
        let specs = ws.services.iter().map(|s| ServiceSpec {
            name: &s.name,
            dir: &s.dir,
            inputs: &s.inputs,
            // Files inside the folder are owned through it already, unless a service nested
            // there owns them (the deepest folder wins): a template outside it, or in a folder
            // below, is named (a SAM app's template below another service's folder, which
            // changed only the other).
            files: match s.template_outside() {
                Some(outside) => vec![outside],
                None if s.template.contains('/') => crate::normalize_relative(&s.template_path())
                    .into_iter()
                    .collect(),
                None => Vec::new(),
            },
        });
        Owners::new(specs, &ws.project.global_inputs)
    }

    pub fn new(
        services: impl IntoIterator<Item = ServiceSpec<'a>>,
        global_inputs: &[String],
    ) -> Result<Owners<'a>, OwnersError> {
        let services = services.into_iter();
        let mut names = Vec::with_capacity(services.size_hint().0);
        let mut dirs = HashMap::with_capacity(services.size_hint().0);
        let mut files: HashMap<String, Vec<usize>> = HashMap::new();
        let mut inputs = GlobSetBuilder::new();
        let mut input_index: HashMap<&str, usize> = HashMap::new();
        let mut input_owners: Vec<Vec<usize>> = Vec::new();
        let mut input_folders: Vec<(String, usize)> = Vec::new();
        let mut input_globs: Vec<String> = Vec::new();
        for (i, s) in services.enumerate() {
            dirs.insert(s.dir.trim_end_matches('/'), i);
            for f in &s.files {
                // A path that climbs out of the repository names no file of it.
                if let Some(f) = crate::normalize_relative(f) {
                    files.entry(f).or_default().push(i);
                }
            }
            for g in s.inputs {
                let k = match input_index.get(g.as_str()) {
                    Some(&k) => k,
                    None => {
                        input_owners.push(Vec::new());
                        let k = input_owners.len() - 1;
                        inputs.add(glob(g, s.name)?);
                        input_globs.push(g.clone());
                        if let Some(folder) = as_folder(g) {
                            input_folders.push((folder, k));
                        }
                        input_index.insert(g, k);
                        k
                    }
                };
                input_owners[k].push(i);
            }
            names.push(s.name);
        }
        let mut global = GlobSetBuilder::new();
        let mut global_folders = Vec::new();
        for g in global_inputs {
            global.add(glob(g, "global-inputs")?);
            global_folders.extend(as_folder(g));
        }
        let build = |b: GlobSetBuilder, owner: &str| {
            b.build().map_err(|source| OwnersError {
                glob: String::new(),
                owner: owner.to_string(),
                source,
            })
        };
        Ok(Owners {
            names,
            dirs,
            files,
            inputs: build(inputs, "services")?,
            input_owners,
            input_folders,
            input_globs,
            global: build(global, "global-inputs")?,
            global_folders,
            global_globs: global_inputs.to_vec(),
        })
    }

    /// The services that own `path`: the deepest service folder containing it, plus every
    /// service whose inputs or files name it. Sorted, without duplicates.
    pub fn services_of(&self, path: &str) -> Vec<&str> {
        self.names_of(self.owners_of(path))
    }

    /// The service whose folder holds `path` (the deepest), if any: of those
    /// [`Owners::services_of`] names, the one it is a file of, not an input of.
    pub fn folder_of(&self, path: &str) -> Option<&str> {
        self.folder_index(path).map(|i| self.names[i])
    }

    /// [`Owners::folder_of`], as an index.
    fn folder_index(&self, path: &str) -> Option<usize> {
        let mut dir = path;
        while let Some(pos) = dir.rfind('/') {
            dir = &dir[..pos];
            if let Some(&i) = self.dirs.get(dir) {
                return Some(i);
            }
        }
        None
    }

    /// [`Owners::services_of`], as indices.
    fn owners_of(&self, path: &str) -> BTreeSet<usize> {
        let mut found: BTreeSet<usize> = self.folder_index(path).into_iter().collect();
        if let Some(owners) = self.files.get(path) {
            found.extend(owners);
        }
        if !self.inputs.is_empty() {
            found.extend(
                self.inputs
                    .matches(path)
                    .into_iter()
                    .flat_map(|m| self.input_owners[m].iter().copied()),
            );
        }
        for (folder, k) in &self.input_folders {
            if path.starts_with(folder.as_str()) {
                found.extend(self.input_owners[*k].iter().copied());
            }
        }
        found
    }

    /// The names of services by index, sorted.
    fn names_of(&self, found: BTreeSet<usize>) -> Vec<&str> {
        let mut names: Vec<&str> = found.into_iter().map(|i| self.names[i]).collect();
        names.sort_unstable();
        names
    }

    /// The services that own anything below `folder`, a submodule whose files git does not
    /// list: those that own the folder itself ([`Owners::services_of`]), those whose folder or
    /// named files lie inside it, and those with an input that may match a path below it
    /// (`libs/common/**`, `libs/*/src/*.py` for `libs/common`). Sorted, without duplicates.
    pub fn services_below(&self, folder: &str) -> Vec<&str> {
        let folder = folder.trim_end_matches('/');
        let inside = format!("{folder}/");
        // What lies below a service folder is that service's alone (the deepest folder wins);
        // below any other folder, the service around it owns it too.
        let mut found: BTreeSet<usize> = if self.dirs.contains_key(folder) {
            self.files
                .get(folder)
                .into_iter()
                .flatten()
                .copied()
                .collect()
        } else {
            self.owners_of(folder)
        };
        found.extend(
            self.dirs
                .iter()
                .filter(|(dir, _)| **dir == folder || dir.starts_with(&inside))
                .map(|(_, i)| *i),
        );
        for (file, owners) in &self.files {
            if file.starts_with(&inside) {
                found.extend(owners);
            }
        }
        for (k, g) in self.input_globs.iter().enumerate() {
            if may_match_below(g, folder) {
                found.extend(self.input_owners[k].iter().copied());
            }
        }
        self.names_of(found)
    }

    /// Whether a global input may match a path below `folder` (see [`Owners::services_below`]).
    pub fn is_global_below(&self, folder: &str) -> bool {
        let folder = folder.trim_end_matches('/');
        self.is_global(folder) || self.global_globs.iter().any(|g| may_match_below(g, folder))
    }

    pub fn is_global(&self, path: &str) -> bool {
        self.global.is_match(path)
            || self
                .global_folders
                .iter()
                .any(|f| path.starts_with(f.as_str()))
    }

    /// Whether a change to `path` redeploys `service`: the path is its own (see
    /// [`Owners::services_of`]) or a global input.
    pub fn redeploys(&self, service: &str, path: &str) -> bool {
        self.is_global(path) || self.services_of(path).contains(&service)
    }

    /// Sorts every changed path by who it affects.
    pub fn classify<'p>(&self, paths: impl IntoIterator<Item = &'p String>) -> Affected {
        self.classify_changes(paths, &BTreeSet::new())
    }

    /// Sorts every changed path by who it affects; a path among `folders` (a submodule) stands
    /// for changes anywhere below it ([`Owners::services_below`]).
    pub fn classify_changes<'p>(
        &self,
        paths: impl IntoIterator<Item = &'p String>,
        folders: &BTreeSet<String>,
    ) -> Affected {
        let mut out = Affected::default();
        for p in paths {
            let (owners, global) = if folders.contains(p) {
                (self.services_below(p), self.is_global_below(p))
            } else if let Some(folder) = attributes_folder(p) {
                // A `.gitattributes` may change the bytes a checkout writes for every file
                // below its folder (`eol=crlf`, a filter): those files' services count as
                // changed, as for a submodule.
                let mut owners = self.services_of(p);
                let (below, global) = if folder.is_empty() {
                    (self.names.clone(), !self.global_globs.is_empty())
                } else {
                    (self.services_below(folder), self.is_global_below(folder))
                };
                owners.extend(below);
                owners.sort_unstable();
                owners.dedup();
                (owners, global || self.is_global(p))
            } else {
                (self.services_of(p), self.is_global(p))
            };
            for o in &owners {
                out.services
                    .entry((*o).to_string())
                    .or_default()
                    .insert(p.clone());
            }
            if global {
                out.global.insert(p.clone());
            }
            if owners.is_empty() && !global {
                out.unowned.insert(p.clone());
            }
        }
        out
    }
}

/// The folder (`""`: the root) of a `.gitattributes` file; `None` for any other path.
fn attributes_folder(path: &str) -> Option<&str> {
    match path.rsplit_once('/') {
        Some((folder, ".gitattributes")) => Some(folder),
        None if path == ".gitattributes" => Some(""),
        _ => None,
    }
}

/// Whether a glob (or one segment of it) has a wildcard: `*`, `?`, a `[…]` class or `{…}`
/// alternatives. One without names exactly one path.
pub fn has_wildcard(glob: &str) -> bool {
    glob.contains(['*', '?', '[', '{'])
}

/// The folders (or file) a glob names before its first wildcard: `shared/lib` of
/// `shared/lib/**`, the whole of a glob without one, empty for `**/*.json`.
pub fn fixed_start(glob: &str) -> String {
    glob.split('/')
        .take_while(|seg| !has_wildcard(seg))
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `glob` may match a path below `folder` (or `folder` itself), judged one segment at
/// a time: each of the folder's segments must match the glob's, until the glob's `**`.
/// `{…}` alternatives are expanded first, as they may hold a `/`.
fn may_match_below(glob: &str, folder: &str) -> bool {
    let g = glob.trim_start_matches('/').trim_end_matches('/');
    match expand_braces(g, 64) {
        Some(globs) => globs.iter().any(|g| segments_may_match(g, folder)),
        // Too many alternatives to judge: taken as matching, which redeploys rather than misses.
        None => true,
    }
}

/// `a/{b,c/d}/e` as `a/b/e` and `a/c/d/e`, alternatives nested or not; `None` past `limit`
/// globs, or for a glob with `\\` escapes or unbalanced braces, which are not judged.
fn expand_braces(glob: &str, limit: usize) -> Option<Vec<String>> {
    if glob.contains('\\') {
        return None;
    }
    let Some(open) = glob.find('{') else {
        return Some(vec![glob.to_string()]);
    };
    // The matching `}` and the commas at this level.
    let (mut depth, mut close, mut commas) = (0usize, None, Vec::new());
    for (i, c) in glob.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let close = close?;
    let (head, tail) = (&glob[..open], &glob[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let alternative = &glob[pair[0] + 1..pair[1]];
        for rest in expand_braces(&format!("{alternative}{tail}"), limit)? {
            out.push(format!("{head}{rest}"));
            if out.len() > limit {
                return None;
            }
        }
    }
    Some(out)
}

fn segments_may_match(glob: &str, folder: &str) -> bool {
    let mut segments = glob.split('/');
    for part in folder.split('/') {
        let Some(seg) = segments.next() else {
            // The glob ends above the folder: it names the folder's ancestors only.
            return false;
        };
        if seg == "**" {
            return true;
        }
        let matches = if has_wildcard(seg) {
            globset::GlobBuilder::new(seg)
                .literal_separator(true)
                .build()
                .map(|m| m.compile_matcher().is_match(part))
                .unwrap_or(true)
        } else {
            seg == part
        };
        if !matches {
            return false;
        }
    }
    true
}

/// An input without wildcards names a file or a folder, so it also matches everything under it
/// (`shared/lib` is `shared/lib` and `shared/lib/**`), as packaging keys take it: the folder
/// form, `shared/lib/`, matched by prefix.
fn as_folder(g: &str) -> Option<String> {
    literal(g).map(|p| format!("{}/", p.trim_end_matches('/')))
}

/// The one path a glob matches when it has no wildcard but characters escaped as sets of one
/// (`routes/[[]slug[]]`, as `validate` and `init` write a folder named `[slug]`): `None` for a
/// glob with a wildcard.
fn literal(g: &str) -> Option<String> {
    if !has_wildcard(g) {
        return Some(g.to_string());
    }
    let mut out = String::with_capacity(g.len());
    let mut rest = g;
    while let Some(c) = rest.chars().next() {
        match c {
            '[' => {
                let mut set = rest[1..].chars();
                let (inner, close) = (set.next()?, set.next()?);
                // `[!]` would be an open negation, not an escaped `!`.
                if close != ']' || inner == '!' {
                    return None;
                }
                out.push(inner);
                rest = &rest[1 + inner.len_utf8() + 1..];
            }
            '*' | '?' | '{' | '}' | '\\' => return None,
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Some(out)
}

fn glob(g: &str, owner: &str) -> Result<Glob, OwnersError> {
    globset::GlobBuilder::new(g)
        .literal_separator(true)
        .build()
        .map_err(|source| OwnersError {
            glob: g.to_string(),
            owner: owner.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        name: &'static str,
        dir: &'static str,
        inputs: &[&str],
        files: &[&str],
    ) -> ServiceSpec<'static> {
        ServiceSpec {
            name,
            dir,
            inputs: inputs
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .leak(),
            files: files.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn owners() -> Owners<'static> {
        Owners::new(
            [
                spec(
                    "api",
                    "services/api",
                    &["shared/lib/**"],
                    &["services/api/service.toml"],
                ),
                spec("admin", "services/api/admin", &["shared/lib/**"], &[]),
                spec(
                    "web",
                    "apps/web",
                    &["shared/lib/ui/*.ts"],
                    &["apps/web/../templates/web.yaml"],
                ),
            ],
            &["ferry.toml".to_string(), "*.lock".to_string()],
        )
        .unwrap()
    }

    #[test]
    fn an_input_without_wildcards_is_a_file_or_a_whole_folder() {
        let spec = ServiceSpec {
            name: "api",
            dir: "services/api",
            inputs: vec!["shared/lib".to_string(), "config.json".to_string()].leak(),
            files: Vec::new(),
        };
        let o = Owners::new([spec], &["tools".to_string()]).unwrap();
        assert_eq!(o.services_of("shared/lib"), ["api"]);
        assert_eq!(o.services_of("shared/lib/deep/util.py"), ["api"]);
        assert_eq!(o.services_of("config.json"), ["api"]);
        assert!(o.services_of("shared/library/x.py").is_empty());
        assert!(o.is_global("tools/gen.sh"));
        assert!(!o.is_global("toolset/gen.sh"));
    }

    #[test]
    fn deepest_folder_wins_and_inputs_add_owners() {
        let o = owners();
        assert_eq!(o.services_of("services/api/src/handler.py"), ["api"]);
        assert_eq!(o.services_of("services/api/admin/index.js"), ["admin"]);
        assert_eq!(o.services_of("services/apiary/x"), Vec::<&str>::new());
        assert_eq!(
            o.services_of("shared/lib/ui/button.ts"),
            ["admin", "api", "web"],
            "one glob declared by two services gives both"
        );
        assert_eq!(
            o.services_of("shared/lib/ui/deep/button.ts"),
            ["admin", "api"]
        );
        assert_eq!(o.services_of("apps/templates/web.yaml"), ["web"]);
        assert!(o.is_global("ferry.toml"));
        assert!(o.is_global("Cargo.lock"));
        // What packaging asks: does an edit there redeploy this service?
        assert!(o.redeploys("api", "services/api/src/handler.py"));
        assert!(
            !o.redeploys("api", "services/api/admin/index.js"),
            "the nested service's file redeploys it alone"
        );
        assert!(o.redeploys("web", "apps/templates/web.yaml"));
        assert!(
            o.redeploys("web", "ferry.toml"),
            "a global input redeploys all"
        );
        assert!(!o.redeploys("web", "docs/readme.md"));
        assert!(
            !o.is_global("sub/Cargo.lock"),
            "globs are anchored at the root"
        );
    }

    #[test]
    fn escaped_characters_are_literal() {
        assert_eq!(
            literal("routes/[[]slug[]]").as_deref(),
            Some("routes/[slug]")
        );
        assert_eq!(literal("a/[*]b[{]").as_deref(), Some("a/*b{"));
        assert_eq!(literal("plain/path").as_deref(), Some("plain/path"));
        for wild in ["a/*", "a/[ab]", "a/[!]", "a/{b,c}", "a/?", "a/[", "a/[x"] {
            assert_eq!(literal(wild), None, "{wild}");
        }
        // An escaped folder is an input of everything in it, as a plain one is.
        let o = Owners::new(
            [spec("site", "services/site", &["routes/[[]slug[]]"], &[])],
            &[],
        )
        .unwrap();
        assert_eq!(o.services_of("routes/[slug]/page.js"), ["site"]);
        assert!(o.services_of("routes/s/page.js").is_empty());
    }

    /// What `validate` advises for a folder named with brackets (`[slug]`): `[[]` is a
    /// literal `[`, so the escaped glob owns the folder's files, and the glob as written does
    /// not.
    #[test]
    fn an_escaped_bracket_matches_a_route_folder() {
        let o = Owners::new(
            [
                spec("escaped", "services/escaped", &["app/[[]slug]/**"], &[]),
                spec("written", "services/written", &["app/[slug]/**"], &[]),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(o.services_of("app/[slug]/page.ts"), ["escaped"]);
        assert_eq!(o.services_of("app/s/page.ts"), ["written"]);
    }

    #[test]
    fn classify_keeps_unowned_paths_for_explain() {
        let o = owners();
        let paths: BTreeSet<String> = [
            "services/api/a.py",
            "ferry.toml",
            "docs/readme.md",
            "apps/web/index.ts",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = o.classify(&paths);
        assert_eq!(a.services.keys().collect::<Vec<_>>(), ["api", "web"]);
        assert_eq!(a.global.iter().collect::<Vec<_>>(), ["ferry.toml"]);
        assert_eq!(a.unowned.iter().collect::<Vec<_>>(), ["docs/readme.md"]);
    }

    #[test]
    fn a_changed_submodule_affects_whoever_may_own_a_path_below_it() {
        let spec = |name, dir, inputs: &[&str]| spec(name, dir, inputs, &[]);
        let o = Owners::new(
            [
                spec("all", "services/all", &["libs/common/**"]),
                spec("py", "services/py", &["libs/*/src/*.py"]),
                spec("src", "services/src", &["libs/common/src"]),
                spec("braces", "services/braces", &["{libs/common,vendor}/x.txt"]),
                spec("other", "services/other", &["libs/other/**", "libs/*.md"]),
                spec("vendored", "services/vendored/lib", &[]),
                spec("outer", "services/vendored", &[]),
            ],
            &["tools/**".to_string()],
        )
        .unwrap();
        // As a file, `libs/common` matches no glob that takes only what is below it.
        assert!(o.services_of("libs/common").is_empty());
        assert_eq!(
            o.services_below("libs/common"),
            ["all", "braces", "py", "src"],
            "a glob below it, a wildcard segment, a literal folder inside it, alternatives with a /"
        );
        assert_eq!(
            o.services_below("libs/other"),
            ["other", "py"],
            "`libs/*/src/*.py` may match there too"
        );
        assert!(
            o.services_below("libs").len() == 5,
            "a submodule holding every lib: all but the vendored ones"
        );
        assert!(o.services_below("docs").is_empty());
        assert_eq!(
            o.services_below("services/vendored/lib"),
            ["vendored"],
            "a service folder that is the submodule itself owns all below it, not the one around"
        );
        assert_eq!(
            o.services_below("services"),
            ["all", "braces", "other", "outer", "py", "src", "vendored"]
        );
        assert!(o.is_global_below("tools/gen"));
        assert!(o.is_global_below("tools"));
        assert!(!o.is_global_below("libs/common"));

        let changed: BTreeSet<String> = ["libs/common".to_string(), "docs/x".to_string()].into();
        let as_files = o.classify(&changed);
        assert!(as_files.services.is_empty());
        let folders: BTreeSet<String> = ["libs/common".to_string()].into();
        let as_submodule = o.classify_changes(&changed, &folders);
        assert_eq!(
            as_submodule.services.keys().collect::<Vec<_>>(),
            ["all", "braces", "py", "src"]
        );
        assert_eq!(as_submodule.unowned.iter().collect::<Vec<_>>(), ["docs/x"]);
    }

    // A `.gitattributes` changes the bytes a checkout writes below its folder (`eol=crlf`, a
    // filter): before, its change redeployed nothing.
    #[test]
    fn a_changed_gitattributes_affects_whoever_may_own_a_path_below_its_folder() {
        let o = owners();
        let classify = |paths: &[&str]| {
            let changed: BTreeSet<String> = paths.iter().map(|p| p.to_string()).collect();
            o.classify(&changed)
        };
        let names = |a: &Affected| a.services.keys().cloned().collect::<Vec<_>>();
        let a = classify(&["shared/lib/.gitattributes"]);
        assert_eq!(names(&a), ["admin", "api", "web"]);
        assert!(a.global.is_empty() && a.unowned.is_empty());
        assert_eq!(
            names(&classify(&["services/api/admin/.gitattributes"])),
            ["admin"]
        );
        assert_eq!(
            names(&classify(&["services/.gitattributes"])),
            ["admin", "api"]
        );
        // Below no service: owned by none.
        let a = classify(&["docs/.gitattributes"]);
        assert!(a.services.is_empty());
        assert_eq!(
            a.unowned.iter().collect::<Vec<_>>(),
            ["docs/.gitattributes"]
        );
        // At the root: every service, and the global inputs (a lock file's bytes may change).
        let a = classify(&[".gitattributes"]);
        assert_eq!(names(&a), ["admin", "api", "web"]);
        assert_eq!(a.global.iter().collect::<Vec<_>>(), [".gitattributes"]);
        // A file merely named like it is none.
        assert!(classify(&["docs/x.gitattributes"]).services.is_empty());
    }

    #[test]
    fn may_match_below_goes_segment_by_segment() {
        assert!(may_match_below("libs/common/**", "libs/common"));
        assert!(may_match_below("**/*.py", "anything/at/all"));
        assert!(may_match_below("libs/*/src/*.py", "libs/common"));
        assert!(
            may_match_below("libs/*", "libs/common"),
            "the folder itself"
        );
        assert!(!may_match_below("libs/*.md", "libs/common"));
        assert!(
            !may_match_below("libs", "libs/common"),
            "a glob ending above it"
        );
        assert!(!may_match_below("libs/other/**", "libs/common"));
        assert!(!may_match_below("lib?/x", "libs2/common"));
        assert!(may_match_below("lib?/x", "libs"));
        assert!(may_match_below("{a/b,c}/d", "a/b"));
        assert!(may_match_below("{a/b,c}/d", "c"));
        assert!(!may_match_below("{a/b,c}/d", "a/c"));
        assert!(!may_match_below("{a,c}/d", "z"));
        assert!(may_match_below("x/{a,b}{c,d}/**", "x/bd"));
        assert!(may_match_below(
            "{{libs,vendor}/common,z}/**",
            "libs/common"
        ));
        assert!(may_match_below("{{libs,vendor}/common,z}/**", "z"));
        assert!(!may_match_below(
            "{{libs,vendor}/common,z}/**",
            "libs/other"
        ));
        assert!(may_match_below("{libs/{a,b}/x,y}/**", "libs/b/x"));
        assert!(
            may_match_below("libs/\\{legacy\\}/**", "libs/other"),
            "escapes are not judged"
        );
        assert!(
            may_match_below("libs/{a,b/**", "zzz"),
            "unbalanced: not judged"
        );
        assert!(!may_match_below("x/{a,b}{c,d}/**", "x/cd"));
    }
}
