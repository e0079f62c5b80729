//! Code a service builds from outside its folder, as its Rust, Python, Go and .NET projects
//! declare it: path dependencies (Cargo's `path = "../common"`, pip's `-e ../../libs/common`,
//! uv's and Poetry's `{ path = "…" }`, Go's `replace … => ../common`, .NET's
//! `<ProjectReference>`), workspace members (Cargo's `{ workspace = true }`, uv's, `go.work`'s),
//! each followed to the end of its chain, and the files of the workspace the service builds in:
//! its lock file (`Cargo.lock`, `uv.lock`), which a plan reads as what it locks, `go.work`, and
//! MSBuild's `Directory.*.props`; and the packages its Node.js code loads from the repository
//! (npm/yarn/pnpm workspace packages, `file:` and `link:` dependencies). Each becomes an input
//! of the service, so that a change to it deploys the service.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use ferry_manifest::normalize_relative;

use crate::layout::within;
use serde_json::{Map, Value};

/// How deep below a service folder its projects are looked for.
const MAX_DEPTH: usize = 8;
/// How many `-r` files deep a requirements file is followed.
const MAX_INCLUDES: usize = 4;

/// The folders holding `file` in the service folder `dir` (its own and those below it), skipping
/// installed packages, tools' output (as the search for services does) and the folders of the
/// other services (`others`).
pub(crate) fn folders_holding(root: &Path, dir: &str, others: &[&str], file: &str) -> Vec<String> {
    files_below(root, dir, others, &|name| name == file)
        .into_iter()
        .map(|path| parent(&path).to_string())
        .collect()
}

/// The files in the service folder `dir` and below whose names `wanted` takes, as
/// repository-relative paths, sorted; skipping what [`folders_holding`] skips.
fn files_below(
    root: &Path,
    dir: &str,
    others: &[&str],
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![(dir.to_string(), 0)];
    while let Some((folder, depth)) = todo.pop() {
        let Ok(entries) = fs::read_dir(root.join(&folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let sub = in_folder(&folder, &name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            // The folders the search for services skips, and .NET's output (`bin`, `obj`),
            // which holds copies of project files.
            let skipped = crate::walk::skipped_dir(&name) || matches!(name.as_str(), "bin" | "obj");
            if kind.is_file() && wanted(&name) {
                found.push(sub);
            } else if kind.is_dir()
                && depth < MAX_DEPTH
                && !skipped
                && !others.contains(&sub.as_str())
            {
                todo.push((sub, depth + 1));
            }
        }
    }
    found.sort();
    found
}

/// The repository-relative path of `file` in `folder` (`""`: the root), never absolute.
fn in_folder(folder: &str, file: &str) -> String {
    if folder.is_empty() {
        file.to_string()
    } else {
        format!("{folder}/{file}")
    }
}

/// The folder of a repository-relative path (`""` at the root).
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// The path of `file` in `folder` and in every folder above it up to the root, nearest first.
fn above(folder: &str, file: &str) -> impl Iterator<Item = String> {
    let mut at = Some(folder.to_string());
    std::iter::from_fn(move || {
        let f = at.take()?;
        let path = in_folder(&f, file);
        at = (!f.is_empty()).then(|| parent(&f).to_string());
        Some(path)
    })
}

/// `rel` (as written in a file of `folder`) as a repository-relative path; `None` when it is
/// absolute, a URL, or leaves the repository.
pub(crate) fn resolve(folder: &str, rel: &str) -> Option<String> {
    let rel = rel.trim().trim_end_matches('/');
    if rel.is_empty() || rel.starts_with('/') || rel.contains("://") || rel.contains('\\') {
        return None;
    }
    normalize_relative(&format!("{folder}/{rel}"))
}

/// A TOML file as JSON (strings, booleans, arrays and tables are all that is read here);
/// `None` when it is missing or does not parse.
fn read_toml(root: &Path, path: &str) -> Option<Value> {
    let text = fs::read_to_string(root.join(path)).ok()?;
    let doc = toml::de::DeTable::parse(&text).ok()?;
    Some(table_json(doc.get_ref()))
}

fn table_json(t: &toml::de::DeTable<'_>) -> Value {
    Value::Object(
        t.iter()
            .map(|(k, v)| (k.get_ref().to_string(), value_json(v.get_ref())))
            .collect(),
    )
}

fn value_json(v: &toml::de::DeValue<'_>) -> Value {
    use toml::de::DeValue;
    match v {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Array(items) => {
            Value::Array(items.iter().map(|i| value_json(i.get_ref())).collect())
        }
        DeValue::Table(t) => table_json(t),
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Datetime(_) => Value::Null,
    }
}

/// The nearest folder at or above `folder` whose `file` (`Cargo.toml`, `pyproject.toml`) has
/// the table `key` (`workspace`, `tool.uv.workspace`), with that file.
fn workspace_root(root: &Path, folder: &str, file: &str, key: &[&str]) -> Option<(String, Value)> {
    above(folder, file).find_map(|path| {
        let t = read_toml(root, &path)?;
        table_at(&t, key)
            .is_some()
            .then(|| (parent(&path).to_string(), t))
    })
}

fn table_at<'t>(t: &'t Value, key: &[&str]) -> Option<&'t Map<String, Value>> {
    key.iter()
        .try_fold(t, |t, k| t.get(*k))
        .and_then(Value::as_object)
}

/// Inputs found so far, and the folders still to read: (folder, whose dependency it is).
struct Chain<'a> {
    dir: &'a str,
    others: &'a [&'a str],
    inputs: BTreeMap<String, String>,
    /// What could not be inferred, for the user to check.
    notes: Vec<String>,
    seen: BTreeSet<String>,
    todo: Vec<(String, String)>,
}

impl<'a> Chain<'a> {
    /// A chain starting at `start`, the service's own folders (or files) to read first.
    fn new(dir: &'a str, others: &'a [&'a str], start: Vec<String>) -> Self {
        Chain {
            dir,
            others,
            inputs: BTreeMap::new(),
            notes: Vec::new(),
            seen: BTreeSet::new(),
            todo: start
                .into_iter()
                .rev()
                .map(|f| (f, String::new()))
                .collect(),
        }
    }

    /// `path` (a folder or a file) is code the service builds from, `why`; a folder is read in
    /// turn, its own dependencies said to come through `dep` (its name).
    fn add(&mut self, root: &Path, path: String, why: String, dep: &str) {
        if self.input(root, &path, why) && root.join(&path).is_dir() {
            self.todo.push((path, dep.to_string()));
        }
    }

    /// Records `path` (a folder or a file) as code the service builds from, `why`, unless it is
    /// the service's own or another service's; whether it is new to this chain.
    fn input(&mut self, root: &Path, path: &str, why: String) -> bool {
        // The whole repository (`..` up to the root): no input Ferry can keep apart; said.
        if path.is_empty() {
            let note = format!(
                "{}: {why} at the root of the repository: every change would deploy it, so it is not an input; declare what it uses of the root in `inputs` by hand",
                self.dir
            );
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
            return false;
        }
        if self.another(path) || !self.seen.insert(path.to_string()) {
            return false;
        }
        // Inside a folder already an input: nothing to add.
        let covered = self.inputs.keys().any(|g| {
            g.strip_suffix("/**")
                .is_some_and(|f| path.starts_with(&format!("{f}/")))
        });
        if !self.own(path) && !covered {
            let glob = if root.join(path).is_dir() {
                format!("{path}/**")
            } else {
                path.to_string()
            };
            self.inputs.entry(glob).or_insert(why);
        }
        true
    }

    /// A folder of the service's own (not one it depends on).
    fn own(&self, folder: &str) -> bool {
        folder == self.dir || folder.starts_with(&format!("{}/", self.dir))
    }

    /// A path in another service's folder: that service's, and no input of this one.
    fn another(&self, path: &str) -> bool {
        self.others
            .iter()
            .any(|o| path == *o || path.starts_with(&format!("{o}/")))
    }

    /// `file` of `folder` is there but does not parse: what it names is not followed.
    fn unreadable(&mut self, root: &Path, file: &str) {
        if root.join(file).is_file() {
            self.notes.push(format!(
                "{}: {file} does not parse: what it names outside the service folder is not inferred",
                self.dir
            ));
        }
    }

    /// `written` (in `file`) names a path that leaves the repository.
    fn outside(&mut self, file: &str, written: &str) {
        self.notes.push(format!(
            "{}: {file} names `{written}`, outside the repository: Ferry cannot see its changes",
            self.dir
        ));
    }

    /// A file of the workspace the service builds in (its lock file, `go.work`, a workspace
    /// manifest, MSBuild's props), `why`: an input unless it is in the service's own folder.
    fn workspace_file(&mut self, path: String, why: String) {
        if !self.own(&path) {
            self.inputs.entry(path).or_insert(why);
        }
    }

    fn lock(&mut self, root: &Path, folder: &str, file: &str, tool: &str) {
        let path = in_folder(folder, file);
        if root.join(&path).is_file() {
            self.workspace_file(path, format!(
                "the lock file of the {tool} workspace it builds in (read as a lock file: only a change to what the service builds with counts)"
            ));
        }
    }
}

fn through(why: String, by: &str) -> String {
    if by.is_empty() {
        why
    } else {
        format!("{why} (through `{by}`)")
    }
}

/// What the Rust crates in the service folder `dir` build from outside it: their path
/// dependencies (`[dependencies]`, `[build-dependencies]`, and those of `[target.….]`; not
/// `[dev-dependencies]`, which no deploy builds), a `{ workspace = true }` one through the
/// workspace's `[workspace.dependencies]`, to the end of the chain; and the workspace's
/// `Cargo.lock`.
pub(crate) fn cargo_inputs(
    root: &Path,
    dir: &str,
    others: &[&str],
) -> (BTreeMap<String, String>, Vec<String>) {
    let start = folders_holding(root, dir, others, "Cargo.toml");
    let mut chain = Chain::new(dir, others, start);
    let mut locks = BTreeSet::new();
    while let Some((folder, by)) = chain.todo.pop() {
        let file = in_folder(&folder, "Cargo.toml");
        let Some(manifest) = read_toml(root, &file) else {
            chain.unreadable(root, &file);
            continue;
        };
        let workspace = workspace_root(root, &folder, "Cargo.toml", &["workspace"]);
        // The lock file the service's own crates build with (a path dependency's crate builds
        // with the same one).
        if chain.own(&folder) {
            locks.insert(
                workspace
                    .as_ref()
                    .map_or(folder.clone(), |(w, _)| w.clone()),
            );
            // The workspace's own manifest (shared dependency versions and features,
            // profiles, patches) builds the crate too, and the crates its patches put in place.
            if let Some((w, t)) = &workspace
                && !chain.own(w)
            {
                chain.workspace_file(
                    in_folder(w, "Cargo.toml"),
                    "the manifest of the Cargo workspace it builds in (shared dependencies, profiles, patches)"
                        .to_string(),
                );
                let patches: Vec<(String, String)> = table_at(t, &["patch"])
                    .into_iter()
                    .flat_map(|p| p.values())
                    .filter_map(Value::as_object)
                    .flatten()
                    .filter_map(|(name, spec)| {
                        Some((name.clone(), spec.get("path")?.as_str()?.to_string()))
                    })
                    .collect();
                for (name, path) in patches {
                    match resolve(w, &path) {
                        Some(p) => chain.add(
                            root,
                            p,
                            format!("builds the crate `{name}` (a [patch] of its workspace)"),
                            &name,
                        ),
                        None => chain.outside(&in_folder(w, "Cargo.toml"), &path),
                    }
                }
            }
        }
        let mut tables: Vec<&Map<String, Value>> = ["dependencies", "build-dependencies"]
            .iter()
            .filter_map(|k| table_at(&manifest, &[k]))
            .collect();
        for target in table_at(&manifest, &["target"])
            .into_iter()
            .flat_map(|t| t.values())
        {
            tables.extend(
                ["dependencies", "build-dependencies"]
                    .iter()
                    .filter_map(|k| target.get(*k).and_then(Value::as_object)),
            );
        }
        for (dep, spec) in tables.into_iter().flatten() {
            let Some(spec) = spec.as_object() else {
                continue;
            };
            let (from, written) = if spec.get("workspace").and_then(Value::as_bool) == Some(true) {
                let Some((w, t)) = &workspace else { continue };
                let Some(entry) = table_at(t, &["workspace", "dependencies", dep]) else {
                    continue;
                };
                (w.as_str(), entry.get("path").and_then(Value::as_str))
            } else {
                (folder.as_str(), spec.get("path").and_then(Value::as_str))
            };
            let Some(written) = written else { continue };
            let Some(path) = resolve(from, written) else {
                chain.outside(&file, written);
                continue;
            };
            let why = through(format!("builds the crate `{dep}` (a path dependency)"), &by);
            chain.add(root, path, why, dep);
        }
    }
    for folder in locks {
        chain.lock(root, &folder, "Cargo.lock", "Cargo");
    }
    (chain.inputs, chain.notes)
}

/// A Python package name as its index compares them (PEP 503): lower case, runs of `-`, `_`
/// and `.` as one `-`.
fn normalized(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The local paths a requirements file (`file`, repository relative) names, as written: pip
/// takes them from where it runs, the folder of the top file (`-e ../common`, `../common`,
/// `file:../common`, `pkg @ file:../common`; an editable one may also be written without a
/// leading dot, `-e libs/common`, and with a `#egg=` fragment), following the files it
/// includes (`-r base.txt`, taken from the including file's folder). A URL or VCS address
/// (`git+https://…`) is no local path.
fn requirement_paths(root: &Path, file: &str, depth: usize, out: &mut Vec<String>) {
    let Ok(text) = fs::read_to_string(root.join(file)) else {
        return;
    };
    let folder = parent(file);
    for line in text.lines() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        let (option, rest) = match line.split_once([' ', '=']) {
            Some((o, r)) if o.starts_with('-') => (o, r.trim()),
            _ => ("", line),
        };
        match option {
            "-r" | "--requirement" if depth < MAX_INCLUDES => {
                if let Some(inc) = resolve(folder, rest) {
                    requirement_paths(root, &inc, depth + 1, out);
                }
            }
            "-e" | "--editable" | "" => {
                let spec = rest.rsplit_once(" @ ").map_or(rest, |(_, url)| url.trim());
                let path = spec.strip_prefix("file:").unwrap_or(spec);
                // `#egg=name` names the package; `pkg[extra]` after a path asks for extras.
                let path = path.split('#').next().unwrap_or(path);
                let path = path.split('[').next().unwrap_or(path).trim();
                let editable = !option.is_empty() && !path.is_empty();
                let local = path.starts_with('.') || spec.starts_with("file:") || editable;
                if local && !path.contains("://") && !path.contains('+') {
                    out.push(path.to_string());
                }
            }
            _ => {}
        }
    }
}

/// The packages a `pyproject.toml` depends on, by normalized name: `[project] dependencies`,
/// its `optional-dependencies` and the `[dependency-groups]`.
fn python_dependencies(t: &Value) -> BTreeSet<String> {
    let project = table_at(t, &["project"]);
    let listed = project
        .and_then(|p| p.get("dependencies"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let optional = project
        .and_then(|p| p.get("optional-dependencies"))
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(Value::as_array)
        .flatten();
    let groups = table_at(t, &["dependency-groups"])
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(Value::as_array)
        .flatten();
    listed
        .chain(optional)
        .chain(groups)
        .filter_map(Value::as_str)
        .map(|req| {
            let name: String = req
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            normalized(&name)
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The root of the uv workspace around `folder` (the nearest `pyproject.toml` at or above it
/// with `[tool.uv.workspace]`), with that file.
fn uv_workspace(root: &Path, folder: &str) -> Option<(String, Value)> {
    workspace_root(root, folder, "pyproject.toml", &["tool", "uv", "workspace"])
}

/// The members of the uv workspace at `ws`, whose `pyproject.toml` is `table`, by normalized
/// name (empty when its `members` are unreadable).
fn uv_members(root: &Path, ws: &str, table: &Value) -> BTreeMap<String, String> {
    let globs: Vec<String> = table_at(table, &["tool", "uv", "workspace"])
        .and_then(|w| w.get("members"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|g| in_folder(ws, g))
        .collect();
    let mut set = globset::GlobSetBuilder::new();
    for g in &globs {
        match globset::GlobBuilder::new(g.trim_end_matches('/'))
            .literal_separator(true)
            .build()
        {
            Ok(glob) => {
                set.add(glob);
            }
            Err(_) => return BTreeMap::new(),
        }
    }
    let Ok(set) = set.build() else {
        return BTreeMap::new();
    };
    let mut members = BTreeMap::new();
    for member in folders_holding(root, ws, &[], "pyproject.toml") {
        if !set.is_match(&member) {
            continue;
        }
        if let Some(name) = read_toml(root, &in_folder(&member, "pyproject.toml"))
            .as_ref()
            .and_then(|t| table_at(t, &["project"]))
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
        {
            members.insert(normalized(name), member);
        }
    }
    members
}

/// What the Python projects in the service folder `dir` build from outside it: local paths in
/// `requirements.txt` (and the files it includes), `pyproject.toml`'s path sources (uv's
/// `[tool.uv.sources]`, Poetry's `[tool.poetry.dependencies]`, a `file:` dependency of
/// `[project]`) and uv workspace members (`{ workspace = true }`), to the end of the chain; and
/// the uv workspace's `uv.lock`.
pub(crate) fn python_inputs(
    root: &Path,
    dir: &str,
    others: &[&str],
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut start: BTreeSet<String> = folders_holding(root, dir, others, "requirements.txt")
        .into_iter()
        .collect();
    start.extend(folders_holding(root, dir, others, "pyproject.toml"));
    let mut chain = Chain::new(dir, others, start.into_iter().collect());
    let mut locks = BTreeSet::new();
    // Each uv workspace's members, found once.
    let mut members: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    while let Some((folder, by)) = chain.todo.pop() {
        // (path, why, the dependency's name).
        let mut found: Vec<(String, String, String)> = Vec::new();
        let mut paths = Vec::new();
        requirement_paths(root, &in_folder(&folder, "requirements.txt"), 0, &mut paths);
        for p in paths {
            // pip takes a path from where it runs: the file's folder, or the service folder (a
            // `make -C <service>` build); the first of them where the path is in the repository.
            let from = [folder.as_str(), dir];
            let candidates: Vec<String> = from.iter().filter_map(|f| resolve(f, &p)).collect();
            match candidates
                .iter()
                .find(|c| !c.is_empty() && root.join(c.as_str()).exists())
                .or(candidates.first())
            {
                Some(path) => found.push((
                    path.clone(),
                    format!("installs `{p}` (requirements.txt)"),
                    p,
                )),
                None => chain.outside(&in_folder(&folder, "requirements.txt"), &p),
            }
        }
        let file = in_folder(&folder, "pyproject.toml");
        let project = read_toml(root, &file);
        if project.is_none() {
            chain.unreadable(root, &file);
        }
        if let Some(t) = &project {
            let ws = uv_workspace(root, &folder);
            if let Some((w, _)) = &ws
                && chain.own(&folder)
            {
                locks.insert(w.clone());
            }
            // uv applies the workspace root's sources to every member, for the packages the
            // member depends on; a member's own win.
            let mut sources: BTreeMap<String, (Value, String)> = BTreeMap::new();
            if let Some((w, root_table)) = ws.as_ref().filter(|(w, _)| *w != folder) {
                let is_member = members
                    .entry(w.clone())
                    .or_insert_with(|| uv_members(root, w, root_table))
                    .values()
                    .any(|m| *m == folder);
                let declared = python_dependencies(t);
                if is_member {
                    for (dep, spec) in table_at(root_table, &["tool", "uv", "sources"])
                        .into_iter()
                        .flatten()
                        .filter(|(dep, _)| declared.contains(&normalized(dep)))
                    {
                        sources.insert(dep.clone(), (spec.clone(), w.clone()));
                    }
                }
            }
            for (dep, spec) in table_at(t, &["tool", "uv", "sources"])
                .into_iter()
                .flatten()
            {
                sources.insert(dep.clone(), (spec.clone(), folder.clone()));
            }
            for (dep, (spec, base)) in &sources {
                let Some(spec) = spec.as_object() else {
                    continue;
                };
                if spec.get("workspace").and_then(Value::as_bool) == Some(true) {
                    let member = ws
                        .as_ref()
                        .map(|(w, table)| {
                            members
                                .entry(w.clone())
                                .or_insert_with(|| uv_members(root, w, table))
                        })
                        .and_then(|m| m.get(&normalized(dep)).cloned());
                    if let Some(member) = member {
                        found.push((
                            member,
                            format!("installs `{dep}` (a uv workspace member)"),
                            dep.clone(),
                        ));
                    }
                } else if let Some(path) = spec.get("path").and_then(Value::as_str)
                    && let Some(p) = resolve(base, path)
                {
                    found.push((p, format!("installs `{dep}` (a path source)"), dep.clone()));
                }
            }
            for (dep, spec) in table_at(t, &["tool", "poetry", "dependencies"])
                .into_iter()
                .flatten()
            {
                if let Some(path) = spec.get("path").and_then(Value::as_str)
                    && let Some(p) = resolve(&folder, path)
                {
                    found.push((
                        p,
                        format!("installs `{dep}` (a path dependency)"),
                        dep.clone(),
                    ));
                }
            }
            let listed = table_at(t, &["project"])
                .and_then(|p| p.get("dependencies"))
                .and_then(Value::as_array);
            for dep in listed.into_iter().flatten().filter_map(Value::as_str) {
                // `pkg @ file:///${PROJECT_ROOT}/../common` (PDM, Hatch); an absolute file URL
                // names this machine's disk, not the repository.
                if let Some((pkg, url)) = dep.split_once(" @ ")
                    && let Some(rel) = url.trim().strip_prefix("file:///${PROJECT_ROOT}/")
                    && let Some(p) = resolve(&folder, rel)
                {
                    let pkg = pkg.trim().to_string();
                    found.push((p, format!("installs `{pkg}` (a file dependency)"), pkg));
                }
            }
        }
        for (path, why, dep) in found {
            chain.add(root, path, through(why, &by), &dep);
        }
    }
    for folder in locks {
        chain.lock(root, &folder, "uv.lock", "uv");
    }
    (chain.inputs, chain.notes)
}

/// The words of a `go.mod` or `go.work` directive (`require`, `replace`, `use`), one line each,
/// whether written on one line or in a `( … )` block; comments taken out.
fn go_directive(text: &str, directive: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or_default().trim();
        if in_block {
            if line == ")" {
                in_block = false;
            } else if !line.is_empty() {
                out.push(line.to_string());
            }
        } else if let Some(rest) = line.strip_prefix(directive)
            && rest.starts_with([' ', '\t', '('])
        {
            let rest = rest.trim();
            if rest == "(" {
                in_block = true;
            } else {
                out.push(rest.to_string());
            }
        }
    }
    out
}

/// A `go.mod`'s module path.
fn go_module(text: &str) -> Option<String> {
    go_directive(text, "module")
        .first()
        .map(|m| m.trim_matches('"').to_string())
}

/// What the Go modules in the service folder `dir` build from outside it: the modules they
/// require that a `replace` points to a local folder (`replace example.com/common =>
/// ../../libs/common`) or that the `go.work` around them uses (`use ./libs/common`), to the end
/// of the chain; and that `go.work`, which decides where each module comes from.
pub(crate) fn go_inputs(
    root: &Path,
    dir: &str,
    others: &[&str],
) -> (BTreeMap<String, String>, Vec<String>) {
    let start = folders_holding(root, dir, others, "go.mod");
    let mut chain = Chain::new(dir, others, start);
    while let Some((folder, by)) = chain.todo.pop() {
        let file = in_folder(&folder, "go.mod");
        let Ok(text) = fs::read_to_string(root.join(&file)) else {
            continue;
        };
        // The nearest go.work at or above the module, and the modules it uses by path.
        let work = above(&folder, "go.work").find_map(|path| {
            let w = fs::read_to_string(root.join(&path)).ok()?;
            let used: BTreeMap<String, String> = go_directive(&w, "use")
                .iter()
                .filter_map(|u| resolve(parent(&path), u.trim_matches('"')))
                .filter_map(|m| {
                    let module =
                        go_module(&fs::read_to_string(root.join(&m).join("go.mod")).ok()?)?;
                    Some((module, m))
                })
                .collect();
            Some((path, used))
        });
        if let Some((path, _)) = &work
            && chain.own(&folder)
        {
            chain.workspace_file(
                path.clone(),
                "the Go workspace it builds in (go.work): it says where each module comes from"
                    .to_string(),
            );
        }
        let replaced: BTreeMap<String, String> = go_directive(&text, "replace")
            .iter()
            .filter_map(|r| {
                let (from, to) = r.split_once("=>")?;
                let module = from
                    .split_whitespace()
                    .next()?
                    .trim_matches('"')
                    .to_string();
                let to = to.split_whitespace().next()?.trim_matches('"').to_string();
                (to.starts_with("./") || to.starts_with("../")).then_some((module, to))
            })
            .collect();
        for req in go_directive(&text, "require") {
            let Some(module) = req.split_whitespace().next().map(|m| m.trim_matches('"')) else {
                continue;
            };
            let found = match replaced.get(module) {
                Some(to) => match resolve(&folder, to) {
                    Some(path) => Some((
                        path,
                        format!("builds the module `{module}` (replaced by `{to}`)"),
                    )),
                    None => {
                        chain.outside(&file, to);
                        None
                    }
                },
                None => work.as_ref().and_then(|(w, used)| {
                    Some((
                        used.get(module)?.clone(),
                        format!("builds the module `{module}` (used by {w})"),
                    ))
                }),
            };
            if let Some((path, why)) = found {
                chain.add(root, path, through(why, &by), module);
            }
        }
    }
    (chain.inputs, chain.notes)
}

/// What the .NET projects (`.csproj`, `.fsproj`, `.vbproj`) in the service folder `dir` build
/// from outside it: the projects they reference (`<ProjectReference Include="..\\Common\\Common.csproj" />`),
/// to the end of the chain; and the `Directory.Build.props`, `Directory.Build.targets` and
/// `Directory.Packages.props` above them, which MSBuild reads into every project below.
pub(crate) fn dotnet_inputs(
    root: &Path,
    dir: &str,
    others: &[&str],
) -> (BTreeMap<String, String>, Vec<String>) {
    let project = |name: &str| {
        [".csproj", ".fsproj", ".vbproj"]
            .iter()
            .any(|e| name.ends_with(e))
    };
    // Here the chain reads project files, not folders.
    let start = files_below(root, dir, others, &project);
    let mut chain = Chain::new(dir, others, start);
    let mut read = BTreeSet::new();
    while let Some((file, by)) = chain.todo.pop() {
        if !read.insert(file.clone()) {
            continue;
        }
        let Ok(text) = fs::read_to_string(root.join(&file)) else {
            continue;
        };
        let folder = parent(&file).to_string();
        if chain.own(&folder) {
            // MSBuild imports the nearest of each, looking upwards from the project.
            for props in [
                "Directory.Build.props",
                "Directory.Build.targets",
                "Directory.Packages.props",
            ] {
                if let Some(path) = above(&folder, props).find(|p| root.join(p).is_file()) {
                    chain.workspace_file(path, format!("MSBuild reads {props} into its projects"));
                }
            }
        }
        // Comments hold no reference (`<!-- <ProjectReference … /> -->`).
        let mut text = text;
        while let Some(start) = text.find("<!--") {
            let end = text[start..]
                .find("-->")
                .map_or(text.len(), |e| start + e + 3);
            text.replace_range(start..end, "");
        }
        for reference in text.split("<ProjectReference").skip(1) {
            let tag = reference.split('>').next().unwrap_or_default();
            let Some(written) = tag.split_once("Include").and_then(|(_, rest)| {
                let rest = rest.trim_start().strip_prefix('=')?.trim_start();
                let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
                rest[1..].split(quote).next()
            }) else {
                continue;
            };
            // `$(SolutionDir)..\Common\Common.csproj`: what MSBuild puts there is not known here.
            if written.contains("$(") {
                chain.notes.push(format!(
                    "{}: {file} references `{written}`, a path built from MSBuild properties that Ferry does not evaluate: declare that project's folder in `inputs` by hand",
                    dir
                ));
                continue;
            }
            let unix = written.replace('\\', "/");
            let Some(path) = resolve(&folder, &unix) else {
                chain.outside(&file, written);
                continue;
            };
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            let why = through(format!("references the project `{name}`"), &by);
            // The referenced project's folder is the input; its own references follow.
            chain.input(root, parent(&path), why);
            if root.join(&path).is_file() && !chain.another(&path) {
                chain.todo.push((path, name));
            }
        }
    }
    (chain.inputs, chain.notes)
}

/// A `package.json`'s dependencies of the given sections: (name, what it asks for).
fn node_dependencies(pkg: &Value, sections: &[&str]) -> Vec<(String, String)> {
    sections
        .iter()
        .filter_map(|section| pkg[section].as_object())
        .flat_map(|deps| {
            deps.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

/// The folders of the workspace packages (name → folder: `packages`) the `package.json` of
/// `dir` depends on by name (any of its dependency sections), and those each depends on in
/// turn, in the order found, each once; `dir` itself is not one.
pub(crate) fn workspace_dependencies(
    root: &Path,
    dir: &str,
    packages: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut todo = vec![dir.to_string()];
    while let Some(folder) = todo.pop() {
        let Some(pkg) = crate::walk::read_json(&root.join(&folder).join("package.json")) else {
            continue;
        };
        let sections = [
            "dependencies",
            "devDependencies",
            "optionalDependencies",
            "peerDependencies",
        ];
        for (name, _) in node_dependencies(&pkg, &sections) {
            if let Some(pdir) = packages.get(&name)
                && pdir != dir
                && !found.contains(pdir)
            {
                found.push(pdir.clone());
                todo.push(pdir.clone());
            }
        }
    }
    found
}

/// The packages the Node.js code of the service in `dir` loads from the repository, each as an
/// input glob with why: the workspace packages (name → folder: `packages`) and local paths
/// (`file:../common`, `link:`, `portal:`; a tarball too) its `package.json` files (its folder's
/// and its function folders') depend on (`dependencies`, `devDependencies`,
/// `optionalDependencies`: a bundler may take any of them), then, package by package, those
/// each such package depends on in turn (`dependencies`, `optionalDependencies`,
/// `peerDependencies`: what installing it brings), to the end of the chain. A package that is
/// another service's folder is that service's (`others`), not an input.
pub(crate) fn node_inputs(
    root: &Path,
    dir: &str,
    others: &[&str],
    packages: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let start = folders_holding(root, dir, others, "package.json");
    let mut chain = Chain::new(dir, others, start);
    while let Some((folder, by)) = chain.todo.pop() {
        let Some(pkg) = crate::walk::read_json(&root.join(&folder).join("package.json")) else {
            continue;
        };
        let sections: &[&str] = if by.is_empty() {
            &["dependencies", "devDependencies", "optionalDependencies"]
        } else {
            &["dependencies", "optionalDependencies", "peerDependencies"]
        };
        for (name, wanted) in node_dependencies(&pkg, sections) {
            let local = ["file:", "link:", "portal:"]
                .iter()
                .find_map(|p| wanted.strip_prefix(p));
            let (path, why) = match local {
                Some(rel) => match resolve(&folder, rel) {
                    Some(path) => (path, format!("depends on `{name}` (`{wanted}`)")),
                    None => {
                        chain.outside(&in_folder(&folder, "package.json"), &wanted);
                        continue;
                    }
                },
                None => match packages.get(&name) {
                    Some(pdir) => {
                        if let Some(note) = built_package(root, pdir, &name, dir)
                            && !chain.notes.contains(&note)
                        {
                            chain.notes.push(note);
                        }
                        (
                            pdir.clone(),
                            format!("depends on the workspace package `{name}`"),
                        )
                    }
                    None => continue,
                },
            };
            chain.add(root, path, through(why, &by), &name);
        }
    }
    (chain.inputs, chain.notes)
}

/// A note when the workspace package `name` (folder `pdir`) is loaded from its build's output
/// (`"main": "./dist/index.js"`, a `build` script making it), which a fresh clone lacks: the
/// service in `dir` compiles only after that build, and with a stale one otherwise.
fn built_package(root: &Path, pdir: &str, name: &str, dir: &str) -> Option<String> {
    let pkg = crate::walk::read_json(&root.join(pdir).join("package.json"))?;
    pkg.pointer("/scripts/build")?;
    let main = ["main", "module"]
        .iter()
        .find_map(|k| pkg.get(*k).and_then(|m| m.as_str()))?;
    let first = main.trim_start_matches("./").split('/').next()?;
    ["dist", "build", "lib", "out"].contains(&first).then(|| {
        format!(
            "{dir}: loads the workspace package `{name}` from its build's output (`{main}`), which a fresh clone lacks: see that the service's [package] build builds it before the compile (e.g. `npm run build --workspace {name}`), or its compile fails, or takes a stale one"
        )
    })
}

/// The file kinds whose relative imports are followed.
const SCRIPT_EXTENSIONS: &[&str] = &["js", "mjs", "cjs", "jsx", "ts", "mts", "cts", "tsx"];
/// How many script files one service's scan reads, and how much of each.
const MAX_SCRIPTS: usize = 5000;
const MAX_SCRIPT_BYTES: u64 = 1 << 20;

fn is_script(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && SCRIPT_EXTENSIONS.contains(&ext))
        && !name.ends_with(".d.ts")
}

/// A script no bundler puts into a function's archive: a tool's configuration
/// (`.lintstagedrc.js`, `jest.config.ts`, `.eslintrc.cjs`) or a test (`db.test.ts`,
/// `api.spec.js`). What they import (a shared lint or test setup) is no input of the service:
/// a change there would deploy it for nothing.
fn is_tooling(name: &str) -> bool {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    name.starts_with('.')
        || [".config", ".test", ".spec", ".setup"]
            .iter()
            .any(|s| stem.ends_with(s))
}

/// A script a bundler may take into a function's archive.
fn is_bundled_script(name: &str) -> bool {
    is_script(name) && !is_tooling(name)
}

/// The code outside the service folder `dir` that its JavaScript and TypeScript import by a
/// relative path (`import … from "../../libs/db"`, `require("../config")`, `import("…")`,
/// `export … from`), which a bundler (esbuild, webpack, serverless-bundle) puts into its
/// archive: each as an input glob with why, followed to the end of the chain. An imported
/// file's folder is taken whole (`libs/**`: its neighbours are what it imports in turn), unless
/// it lies in another service's folder or its folder holds a service folder, when only the file
/// is; a path that leaves the repository is said in a note.
pub(crate) fn script_inputs(
    root: &Path,
    dir: &str,
    others: &[&str],
) -> (BTreeMap<String, String>, Vec<String>) {
    let (reach, notes) = script_reach(root, dir, others);
    let inputs = reach
        .into_iter()
        .map(|(glob, (why, _))| (glob, why))
        .collect();
    (inputs, notes)
}

/// Input glob → why, and the files its imports reach.
pub(crate) type Reach = BTreeMap<String, (String, BTreeSet<String>)>;

/// [`script_inputs`], with the files each input's imports reach (the files the bundler takes:
/// `validate` judges only those covered or not).
pub(crate) fn script_reach(root: &Path, dir: &str, others: &[&str]) -> (Reach, Vec<String>) {
    let mut inputs: Reach = BTreeMap::new();
    let mut notes = Vec::new();
    let mut todo = files_below(root, dir, others, &is_bundled_script);
    let mut read = BTreeSet::new();
    while let Some(file) = todo.pop() {
        if read.len() >= MAX_SCRIPTS || !read.insert(file.clone()) {
            continue;
        }
        let Some(text) = fs::File::open(root.join(&file)).ok().and_then(|f| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_SCRIPT_BYTES), &mut text)
                .ok()
                .map(|_| text)
        }) else {
            continue;
        };
        for spec in relative_imports(&text) {
            let Some(target) = resolve(parent(&file), spec) else {
                notes.push(format!(
                    "{file}: imports `{spec}`, which is outside the repository: not an input"
                ));
                continue;
            };
            if within(&target, dir) {
                continue;
            }
            let Some(found) = module_file(root, &target) else {
                continue;
            };
            let folder = parent(&found);
            // A file of another service's folder (a sibling's, or the service around a nested
            // one) is bundled all the same: the file itself is an input, as its owner's changes
            // must deploy this service too.
            let holds_a_service = others.iter().any(|o| within(&found, o))
                || within(dir, folder)
                || others.iter().any(|o| within(o, folder));
            let (glob, next) = if holds_a_service {
                (found.clone(), vec![found.clone()])
            } else {
                (
                    format!("{folder}/**"),
                    files_below(root, folder, others, &is_bundled_script),
                )
            };
            // Already within an input taken (a folder taken whole holds its subfolders).
            let covering = inputs
                .keys()
                .find(|g| **g == glob || g.strip_suffix("/**").is_some_and(|f| within(&found, f)))
                .cloned();
            if let Some(g) = covering {
                if let Some((_, reached)) = inputs.get_mut(&g) {
                    reached.insert(found);
                }
                continue;
            }
            inputs.insert(
                glob,
                (
                    format!("its code imports `{spec}` ({file})"),
                    BTreeSet::from([found]),
                ),
            );
            todo.extend(next);
        }
    }
    (inputs, notes)
}

/// The repository-relative file a module path names, as Node.js and TypeScript resolve it:
/// the file itself, with a script extension or `.json` added, a `.ts` file for a `.js` one
/// (TypeScript's ESM imports), or the folder's `index`.
pub(crate) fn module_file(root: &Path, target: &str) -> Option<String> {
    let is_file = |p: &str| root.join(p).is_file();
    if is_file(target) {
        return Some(target.to_string());
    }
    let stem = target
        .strip_suffix(".js")
        .or_else(|| target.strip_suffix(".mjs"))
        .or_else(|| target.strip_suffix(".cjs"));
    let candidates = SCRIPT_EXTENSIONS
        .iter()
        .chain(&["json"])
        .map(|ext| format!("{target}.{ext}"))
        .chain(
            stem.into_iter()
                .flat_map(|s| ["ts", "mts", "cts", "tsx"].map(|ext| format!("{s}.{ext}"))),
        )
        .chain(
            SCRIPT_EXTENSIONS
                .iter()
                .map(|ext| format!("{target}/index.{ext}")),
        );
    candidates.into_iter().find(|c| is_file(c))
}

/// The relative module paths (`./…`, `../…`) a script imports: string literals after `from`,
/// `import`, `require(` or `import(`.
pub(crate) fn relative_imports(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let q = b[i];
        if q != b'\'' && q != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j] != q && b[j] != b'\n' {
            j += 1;
        }
        if j == b.len() || b[j] != q {
            // No closing quote on the line (an apostrophe in a comment): go on after it.
            i = start;
            continue;
        }
        let literal = &text[start..j];
        let before = text[..i].trim_end();
        if (literal.starts_with("./") || literal.starts_with("../"))
            && ["from", "import", "require(", "import("]
                .iter()
                .any(|w| before.ends_with(w))
        {
            out.push(literal);
        }
        i = j + 1;
    }
    out
}
