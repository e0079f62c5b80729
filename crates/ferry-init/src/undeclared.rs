//! The check `validate` makes with init's inference: code a service builds from outside its
//! folder (a workspace package, a relative import, a path dependency, the framework CLI and
//! plugins a Serverless service installs from a `package.json` above it) that none of its
//! inputs covers. A change there would not deploy it. Init writes such inputs once; this says when
//! one was added since, or never written.

use std::path::Path;

use ferry_manifest::{Owners, Workspace};

/// How many files below one inferred input are looked at to judge whether its inputs cover it.
const MAX_FILES: usize = 2000;

/// An input a service builds from, as `init` infers it, that its configuration does not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undeclared {
    pub service: String,
    /// The input init would write (`libs/**`, `packages/common`).
    pub glob: String,
    /// Why it is one (`its code imports `../../libs/db` (services/a/handler.js)`).
    pub why: String,
    /// A file there that no input of the service covers.
    pub file: String,
}

impl std::fmt::Display for Undeclared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}, but {} is none of its inputs nor a global input: a change there would not deploy it; add `{}` to `inputs` in its service.toml",
            self.service, self.why, self.file, self.glob
        )
    }
}

/// For each service of `ws`, the inputs init infers from the code it builds (its package.json
/// files' workspace packages and local paths, its JavaScript's and TypeScript's relative
/// imports, its Cargo, Python, Go and .NET path dependencies, each to the end of its chain;
/// for a Serverless service without a `package.json`, the lock file or `package.json` above it
/// that its framework CLI and plugins install from) that hold a file neither its folder, its inputs nor the global inputs cover: for a relative
/// import, a file the imports reach; for the others, any file there. A file `ignored` says git
/// ignores (generated code, which no input could name) is not judged. Read from the working
/// tree.
pub fn undeclared_inputs(ws: &Workspace, ignored: &dyn Fn(&str) -> bool) -> Vec<Undeclared> {
    let root = ws.root.as_path();
    let Ok(owners) = Owners::of_workspace(ws) else {
        // An input glob that does not compile is the loader's error to give.
        return Vec::new();
    };
    let packages = crate::walk::workspace_packages(root).packages;
    let mut out = Vec::new();
    for s in &ws.services {
        let others: Vec<&str> = ws
            .services
            .iter()
            .filter(|o| o.dir != s.dir)
            .map(|o| o.dir.as_str())
            .collect();
        let dir = s.dir.as_str();
        // (input, why, the files to judge: `None` for every file there).
        let mut inferred: Vec<(String, String, Option<Vec<String>>)> = Vec::new();
        for (glob, (why, reached)) in crate::local_deps::script_reach(root, dir, &others).0 {
            inferred.push((glob, why, Some(reached.into_iter().collect())));
        }
        for found in [
            crate::local_deps::node_inputs(root, dir, &others, &packages).0,
            crate::local_deps::cargo_inputs(root, dir, &others).0,
            crate::local_deps::python_inputs(root, dir, &others).0,
            crate::local_deps::go_inputs(root, dir, &others).0,
            crate::local_deps::dotnet_inputs(root, dir, &others).0,
        ] {
            inferred.extend(found.into_iter().map(|(glob, why)| (glob, why, None)));
        }
        // A file its Serverless configuration reads with `${file(…)}` from outside its folder
        // (settings shared between services): the framework writes it into the compile.
        if s.kind == ferry_manifest::ServiceKind::Serverless {
            for (glob, why, read) in crate::infer::serverless_file_inputs(root, dir, &s.template) {
                // The files it reads, not every file the input covers (`config.*` at the root
                // covers a README too, which no input of it would ever be asked to).
                let files = if read.contains('*') {
                    files_at(root, &ferry_manifest::fixed_start(&read))
                        .into_iter()
                        .filter(|f| ferry_ci::glob_match(&read, f))
                        .collect()
                } else {
                    files_at(root, &read)
                };
                inferred.push((glob, why, Some(files)));
            }
        }
        // The lock file (or package.json) above it that its framework CLI and plugins install
        // from: an upgrade there changes what it compiles.
        if s.kind == ferry_manifest::ServiceKind::Serverless
            && let Some(from) = crate::installed_from_above(root, dir, &s.template)
        {
            inferred.push((from.input.clone(), from.why(), Some(vec![from.input])));
        }
        for (glob, why, files) in inferred {
            // Where it lies: the path itself (`libs/[x]` of `libs/[x]/**`, which a glob's
            // fixed start would cut at the `[`), else the glob's fixed start.
            let files = files.unwrap_or_else(|| {
                let at = glob
                    .strip_suffix("/**")
                    .filter(|p| !p.contains('*'))
                    .map_or_else(|| ferry_manifest::fixed_start(&glob), String::from);
                files_at(root, &at)
            });
            let uncovered = files
                .into_iter()
                .find(|f| !owners.redeploys(&s.name, f) && !ignored(f));
            // As init writes it: a path with a glob's characters escaped.
            let glob = crate::render::as_glob(&glob);
            if let Some(file) = uncovered
                && !out
                    .iter()
                    .any(|u: &Undeclared| u.service == s.name && u.glob == glob)
            {
                out.push(Undeclared {
                    service: s.name.clone(),
                    glob,
                    why,
                    file,
                });
            }
        }
    }
    out
}

/// The file `path` names, or the files below the folder it names (repository relative, up to
/// [`MAX_FILES`], skipping what the search for services skips: installed packages, tools'
/// output, hidden folders).
fn files_at(root: &Path, path: &str) -> Vec<String> {
    let full = root.join(path);
    if full.is_file() {
        return vec![path.to_string()];
    }
    let mut found = Vec::new();
    let mut todo = vec![path.to_string()];
    while let Some(folder) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&folder)) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let sub = if folder.is_empty() {
                name.clone()
            } else {
                format!("{folder}/{name}")
            };
            match e.file_type() {
                Ok(t) if t.is_file() => found.push(sub),
                Ok(t) if t.is_dir() && !crate::walk::skipped_dir(&name) => todo.push(sub),
                _ => {}
            }
            if found.len() >= MAX_FILES {
                return found;
            }
        }
    }
    found
}
