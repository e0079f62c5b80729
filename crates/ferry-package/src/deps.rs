//! Dependencies the SAM CLI would install into a function that Ferry's zip of its folder lacks.
//!
//! `sam build` installs a Python function's `requirements.txt` and a Node.js function's
//! `package.json` dependencies into what it deploys; Ferry zips the folder `CodeUri` names as it
//! is (after the service's own `[package] build`, if any). A SAM service without a build whose
//! function folder declares dependencies would deploy without them and fail when it runs, so
//! `validate` warns of it.

use std::collections::BTreeSet;
use std::path::Path;

use ferry_manifest::{Service, ServiceKind, Workspace};
use serde_json::Value;

use crate::{files, inside_service, repo_path, sam, template_dir};

/// A function folder of a SAM service without a build that declares dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnbuiltDependencies {
    pub service: String,
    /// The folder, repository relative.
    pub dir: String,
    /// The file that declares them: `requirements.txt` or `package.json`.
    pub file: &'static str,
}

impl std::fmt::Display for UnbuiltDependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let install = if self.file == "requirements.txt" {
            "pip install -r requirements.txt -t ."
        } else {
            "npm install --omit=dev"
        };
        write!(
            f,
            "{}: {}/{} declares dependencies, which `sam build` would install into the function and Ferry's zip of {} lacks (it is zipped as it is): give the service a [package] build that installs them there (e.g. `{install}` in that folder) or `sam build` with built-template = \".aws-sam/build/template.yaml\", or it fails when it runs",
            self.service, self.dir, self.file, self.dir
        )
    }
}

/// Every function folder of a SAM service without `[package] build` whose `requirements.txt`
/// names a package the Lambda runtime does not provide (boto3 and botocore it does), or whose
/// `package.json` has `dependencies` and no `node_modules` beside it.
pub fn unbuilt_dependencies(ws: &Workspace) -> Vec<UnbuiltDependencies> {
    let mut out = BTreeSet::new();
    let owners = ferry_manifest::Owners::of_workspace(ws).ok();
    for s in ws
        .services
        .iter()
        .filter(|s| s.kind == ServiceKind::Sam && s.package.build.is_empty())
    {
        for dir in code_folders(ws, s, owners.as_ref()) {
            for file in declared(&ws.root.join(&dir)) {
                out.insert((s.name.clone(), dir.clone(), file));
            }
        }
    }
    out.into_iter()
        .map(|(service, dir, file)| UnbuiltDependencies { service, dir, file })
        .collect()
}

/// The repository-relative folders the functions' `CodeUri` (also in `Globals`) name.
fn code_folders(
    ws: &Workspace,
    s: &Service,
    owners: Option<&ferry_manifest::Owners<'_>>,
) -> Vec<String> {
    let Some(t) = crate::reach::read(&ws.root, &s.template_path()) else {
        return Vec::new();
    };
    let base = template_dir(s);
    let watched = owners.map(|o| files::Watched::new(o, &s.name));
    sam::local_paths(&t)
        .into_iter()
        .filter(|l| l.site.property() == "CodeUri")
        // A path out of the service folder and its inputs is refused by the template check.
        .filter_map(|l| inside_service(&s.dir, &base, &l, watched.as_ref()).ok())
        .map(|rel| match rel.as_str() {
            "." => s.dir.clone(),
            _ => repo_path(&s.dir, &rel),
        })
        .filter(|d| ws.root.join(d).is_dir())
        .collect()
}

/// The files of a function folder that declare dependencies to install: its
/// `requirements.txt`, then its `package.json`.
fn declared(folder: &Path) -> impl Iterator<Item = &'static str> {
    let python = requirements(&folder.join("requirements.txt")).then_some("requirements.txt");
    let node = node_dependencies(folder).then_some("package.json");
    python.into_iter().chain(node)
}

/// Whether a `requirements.txt` names a package beyond what the runtime provides.
fn requirements(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .any(|l| {
                let name: String = l
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .collect::<String>()
                    .to_ascii_lowercase();
                !matches!(name.as_str(), "boto3" | "botocore")
            })
    })
}

/// Whether a folder's `package.json` has dependencies that are not installed beside it.
fn node_dependencies(folder: &Path) -> bool {
    if folder.join("node_modules").is_dir() {
        return false;
    }
    std::fs::read(folder.join("package.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            v.get("dependencies")
                .and_then(Value::as_object)
                .map(|d| !d.is_empty())
        })
        .unwrap_or(false)
}

/// Why the SAM template at `root/template` (repository-relative) wants `sam build`: its first
/// function or layer with a `Metadata.BuildMethod` or a compiled language's project as its code
/// folder, else the first of a template it nests (packaging refuses either without a build),
/// else its first function folder whose
/// `requirements.txt` or `package.json` declares dependencies to install; `None` when it wants
/// no build. For tools writing a service's configuration before there is one (`init`).
pub fn sam_build_wanted(root: &Path, template: &str) -> Option<String> {
    let parsed = crate::reach::read(root, template)?;
    if let Some(at) = built_by_sam(root, template, &parsed) {
        return Some(at);
    }
    let reached = crate::reach::reached_from(root, template, &parsed);
    let nested = reached.iter().filter(|r| r.nested).find_map(|r| {
        let at = built_by_sam(root, &r.path, &crate::reach::read(root, &r.path)?)?;
        Some(format!("{at} (in {})", r.path))
    });
    if nested.is_some() {
        return nested;
    }
    reached
        .into_iter()
        .filter(|r| r.property == "CodeUri" && root.join(&r.path).is_dir())
        .find_map(|r| {
            let file = declared(&root.join(&r.path)).next()?;
            Some(format!("{}/{file}", r.path))
        })
}

/// The first function or layer of the template `file` (`parsed`, repository-relative) that only
/// `sam build` makes deployable: a `Metadata.BuildMethod`, or a `CodeUri` folder holding a
/// compiled language's project ([`sam::compiled_source`]).
fn built_by_sam(root: &Path, file: &str, parsed: &Value) -> Option<String> {
    if let Some((at, _)) = sam::needs_build(parsed).into_iter().next() {
        return Some(at);
    }
    let base = file.rsplit_once('/').map_or("", |(d, _)| d);
    sam::local_paths(parsed).into_iter().find_map(|l| {
        let folder = ferry_manifest::normalize_relative(&format!("{base}/{}", l.path))?;
        sam::compiled_source(parsed, &l, &root.join(folder)).map(|(at, _)| at)
    })
}
