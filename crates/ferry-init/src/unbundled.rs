//! A Serverless Framework service whose handlers load code from outside its folder by a
//! relative path (`require("../../libs/db")`) with nothing to bundle it. The framework zips only
//! the service folder (its `package.patterns` cannot reach a parent folder), so such a function
//! deploys and then fails on its first call, unable to load the module. A bundler plugin
//! (serverless-esbuild, serverless-webpack, serverless-bundle) puts the code into the archive.
//!
//! Judged from the handlers the configuration names, through the relative imports of the
//! service's own JavaScript: a test file importing a shared helper is not reached. TypeScript
//! needs a compile step anyway (a plugin, or the framework's own build in version 4), and a
//! configuration written as a program, a plugin list or handler built from a variable, plugins
//! loaded from a local path, a `build` setting or a `package.artifact` built beforehand may
//! bundle: none of those is judged.

use std::collections::BTreeSet;
use std::path::Path;

use ferry_manifest::{ServiceKind, Workspace};
use serde_yaml_ng::Value;

use crate::layout::within;
use crate::local_deps::{module_file, parent, relative_imports, resolve};

/// What a plugin's name holds when it bundles or compiles the code it packages.
const BUNDLING: &[&str] = &[
    "esbuild",
    "webpack",
    "bundle",
    "typescript",
    "rollup",
    "parcel",
    "swc",
    "vite",
    "ncc",
];
/// How many script files one service's walk reads.
const MAX_FILES: usize = 2000;

/// A relative import out of a Serverless service's folder that its archive would not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbundled {
    /// The service folder.
    pub dir: String,
    /// Its configuration file (`serverless.yml`), relative to the folder.
    pub config: String,
    /// The file importing it (repository-relative), reached from a handler.
    pub file: String,
    /// The import as written (`../../libs/db`).
    pub import: String,
}

impl std::fmt::Display for Unbundled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: imports `{}`, outside the service folder `{}`, and {}/{} names no plugin that bundles (serverless-esbuild, serverless-webpack, serverless-bundle): the framework zips only the service folder, so the function would deploy and then fail to load that module; add a bundler plugin, or move the code into the folder (or into a package it installs)",
            self.file, self.import, self.dir, self.dir, self.config
        )
    }
}

/// Every Serverless service of `ws` whose handlers reach a relative import out of its folder
/// with nothing to bundle it (at most one each). Read from the working tree.
pub fn unbundled_imports(ws: &Workspace) -> Vec<Unbundled> {
    ws.services
        .iter()
        .filter(|s| s.kind == ServiceKind::Serverless)
        .filter_map(|s| unbundled(&ws.root, &s.dir, &s.template))
        .collect()
}

/// The first relative import out of the Serverless service folder `dir` (configuration
/// `config`, relative to it) that a handler reaches, when nothing bundles its code.
pub(crate) fn unbundled(root: &Path, dir: &str, config: &str) -> Option<Unbundled> {
    if crate::walk::is_program(config) {
        return None;
    }
    let text = std::fs::read_to_string(root.join(crate::template_path(dir, config))).ok()?;
    let doc: Value = ferry_manifest::yaml::from_str(&text).ok()?;
    // The framework's own build (version 4), a bundler, or an archive built beforehand.
    let prebuilt = |v: &Value| v.get("package").and_then(|p| p.get("artifact")).is_some();
    if doc.get("build").is_some() || prebuilt(&doc) || may_bundle(doc.get("plugins"))? {
        return None;
    }
    let Value::Mapping(functions) = doc.get("functions")? else {
        return None;
    };
    let mut todo: Vec<String> = functions
        .values()
        .filter(|f| !prebuilt(f))
        .filter_map(|f| f.get("handler")?.as_str())
        .filter(|h| !h.contains("${"))
        .filter_map(|h| {
            let (module, _export) = h.rsplit_once('.')?;
            module_file(root, &resolve(dir, module)?)
        })
        .collect();
    let mut read = BTreeSet::new();
    while let Some(file) = todo.pop() {
        if read.len() >= MAX_FILES || !read.insert(file.clone()) {
            continue;
        }
        // TypeScript is compiled by something that may bundle it; JSON imports nothing.
        if !["js", "mjs", "cjs", "jsx"]
            .iter()
            .any(|ext| file.ends_with(&format!(".{ext}")))
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else {
            continue;
        };
        // Code commented out loads nothing: never named as failing to load.
        let text = without_comments(&text);
        for spec in relative_imports(&text) {
            let Some(target) = resolve(parent(&file), spec) else {
                continue;
            };
            let Some(found) = module_file(root, &target) else {
                continue;
            };
            if within(&found, dir) {
                todo.push(found);
            } else {
                return Some(Unbundled {
                    dir: dir.to_string(),
                    config: config.to_string(),
                    file,
                    import: spec.to_string(),
                });
            }
        }
    }
    None
}

/// Whether a `plugins` setting (a list, or a mapping with `modules`) may bundle the code:
/// `Some(true)` when a plugin's name says it does, `None` when it cannot be told (a variable,
/// a `localPath` the plugins load from, an entry that is not a name).
fn may_bundle(plugins: Option<&Value>) -> Option<bool> {
    let list = match plugins {
        None | Some(Value::Null) => return Some(false),
        Some(Value::Sequence(list)) => list,
        // Plugins loaded from a folder of the repository may be anything.
        Some(Value::Mapping(m)) if m.contains_key("localPath") => return None,
        Some(Value::Mapping(m)) => match m.get("modules") {
            Some(Value::Sequence(list)) => list,
            None | Some(Value::Null) => return Some(false),
            _ => return None,
        },
        _ => return None,
    };
    let mut bundles = false;
    for p in list {
        let name = p.as_str()?.to_ascii_lowercase();
        if name.contains("${") {
            return None;
        }
        bundles |= BUNDLING.iter().any(|b| name.contains(b));
    }
    Some(bundles)
}

/// `text` (JavaScript) with its `//` and `/* */` comments blanked out, strings and template
/// literals kept as they are (a `//` in `"http://…"` is no comment). Line breaks stay, so that
/// what follows keeps its lines.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else if c == q || (c == '\n' && q != '`') {
                    quote = None;
                }
            }
            None if c == '/' && chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            None if c == '/' && chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                    }
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
            }
            None => {
                if matches!(c, '\'' | '"' | '`') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::without_comments;

    #[test]
    fn comments_go_and_strings_stay() {
        let js = "// const a = require('../a');\nconst b = require(\"../b\"); /* require('../c')\n */ const u = 'http://x/y';\nconst t = `//${'z'}`;\n";
        assert_eq!(
            without_comments(js),
            "\nconst b = require(\"../b\"); \n const u = 'http://x/y';\nconst t = `//${'z'}`;\n"
        );
    }
}
