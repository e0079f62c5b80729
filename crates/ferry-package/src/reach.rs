//! What a SAM template reaches on disk, for tools that read a repository before any service is
//! configured (`ferry-init`): no service, no workspace, files only. The same tables the
//! packager packs by ([`crate::sam`]), so the two cannot disagree about what a template names.

use std::path::Path;

use serde_json::Value;

use crate::{MAX_NESTING, sam};

/// One local path a SAM template names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// The template that names it, repository-relative.
    pub template: String,
    /// The resource that names it (`Backend`), `Globals.Function` or where an `AWS::Include`
    /// sits.
    pub site: String,
    /// The property (`CodeUri`, `Location`, `AWS::Include`).
    pub property: String,
    /// Repository-relative and normalised (`.` for the root).
    pub path: String,
    /// A nested template (`Location` of an application, `TemplateURL` of a stack), whose own
    /// paths follow it in the list.
    pub nested: bool,
}

/// Every local path the SAM template at `root/template` names and, recursively (at most
/// [`MAX_NESTING`] deep, a template already being read not again, at most 10,000 paths), those
/// of the templates it nests, in template order, each repository-relative. A path that leaves the repository, and a template that cannot be read
/// or parsed (the template check reports those), are passed over.
pub fn reached(root: &Path, template: &str) -> Vec<Reached> {
    read(root, template).map_or_else(Vec::new, |parsed| reached_from(root, template, &parsed))
}

/// [`reached`] for a template already read and parsed (`parsed`, the text of `root/template`).
pub(crate) fn reached_from(root: &Path, template: &str, parsed: &Value) -> Vec<Reached> {
    let mut out = Vec::new();
    reach_parsed(
        root,
        template,
        parsed,
        &mut vec![template.to_string()],
        &mut out,
    );
    out
}

/// The local paths of the SAM template at `root/template` that leave the repository from its
/// own folder but name what the repository holds when read from a folder below it: the template
/// is written for a build step that copies it there first (`warehouse/build/template.yaml`, with
/// `TemplateURL: ../../shared/templates/dlq.yaml`). Each as found from there, repository-relative;
/// nested templates are not followed. For `init` to say how to write the path for Ferry, which
/// packages a template from where it is.
pub fn reached_from_below(root: &Path, template: &str) -> Vec<Reached> {
    let Some(parsed) = read(root, template) else {
        return Vec::new();
    };
    let base = template.rsplit_once('/').map_or("", |(d, _)| d);
    sam::local_paths(&parsed)
        .into_iter()
        .filter(|l| !l.path.starts_with('/') && !l.path.contains('\\'))
        .filter(|l| ferry_manifest::normalize_relative(&format!("{base}/{}", l.path)).is_none())
        .filter_map(|l| {
            let below = ferry_manifest::normalize_relative(&format!("{base}/build/{}", l.path))?;
            (!below.is_empty() && root.join(&below).exists()).then(|| Reached {
                template: template.to_string(),
                site: l.site.label(),
                property: l.site.property().to_string(),
                path: below,
                nested: l.packing == sam::Packing::Template,
            })
        })
        .collect()
}

/// The template at `root/file`, parsed; `None` if it cannot be read or parsed, or is larger
/// than CloudFormation takes (not a template to follow, and slow to parse).
pub(crate) fn read(root: &Path, file: &str) -> Option<Value> {
    crate::read_template(&root.join(file)).ok()
}

/// At most this many paths are listed: a hostile template nesting itself many times over
/// would otherwise list `k^MAX_NESTING` of them.
const MAX_REACHED: usize = 10_000;

/// `path`: the templates being read, outermost first; one already on it is not read again.
fn reach(root: &Path, file: &str, path: &mut Vec<String>, out: &mut Vec<Reached>) {
    if let Some(parsed) = read(root, file) {
        reach_parsed(root, file, &parsed, path, out);
    }
}

fn reach_parsed(
    root: &Path,
    file: &str,
    parsed: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<Reached>,
) {
    let base = file.rsplit_once('/').map_or("", |(d, _)| d);
    let resolve = |path: &str| {
        (!path.starts_with('/') && !path.contains('\\'))
            .then(|| ferry_manifest::normalize_relative(&format!("{base}/{path}")))
            .flatten()
            .map(|p| if p.is_empty() { ".".to_string() } else { p })
    };
    for l in sam::local_paths(parsed) {
        if out.len() >= MAX_REACHED {
            return;
        }
        let Some(target) = resolve(&l.path) else {
            continue;
        };
        let nested = l.packing == sam::Packing::Template;
        out.push(Reached {
            template: file.to_string(),
            site: l.site.label(),
            property: l.site.property().to_string(),
            path: target.clone(),
            nested,
        });
        if nested && path.len() <= MAX_NESTING && !path.contains(&target) {
            path.push(target.clone());
            reach(root, &target, path, out);
            path.pop();
        }
    }
    for i in sam::local_includes(parsed) {
        if let Some(path) = resolve(&i.path) {
            out.push(Reached {
                template: file.to_string(),
                site: i.at,
                property: "AWS::Include".into(),
                path,
                nested: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_nested_templates_are_resolved_from_their_own_folders() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let write = |rel: &str, text: &str| {
            let p = r.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "mod/sam/app/template.yaml",
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Api:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: api.yaml\n  Up:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: ../../../../outside.yaml\n",
        );
        write(
            "mod/sam/app/api.yaml",
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../../target/app.jar\n      Runtime: java11\n      Handler: x\n",
        );
        let got: Vec<(String, String, String, bool)> = reached(r, "mod/sam/app/template.yaml")
            .into_iter()
            .map(|x| {
                (
                    x.template,
                    format!("{}.{}", x.site, x.property),
                    x.path,
                    x.nested,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "mod/sam/app/template.yaml".to_string(),
                    "Api.Location".to_string(),
                    "mod/sam/app/api.yaml".to_string(),
                    true
                ),
                (
                    "mod/sam/app/api.yaml".to_string(),
                    "Fn.CodeUri".to_string(),
                    "mod/target/app.jar".to_string(),
                    false
                ),
            ]
        );
        // Unreadable or missing: nothing, no panic.
        assert!(reached(r, "nowhere.yaml").is_empty());
        write("bad.yaml", "Resources: [\n");
        assert!(reached(r, "bad.yaml").is_empty());
    }

    #[test]
    fn templates_nesting_each_other_are_read_once_on_a_path() {
        let dir = tempfile::tempdir().unwrap();
        // Twenty applications of itself: read again each time, 20^5 paths.
        let apps: String = (0..20)
            .map(|n| format!("  Me{n}:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: t.yaml\n"))
            .collect();
        std::fs::write(
            dir.path().join("t.yaml"),
            format!("Transform: AWS::Serverless-2016-10-31\nResources:\n{apps}"),
        )
        .unwrap();
        assert_eq!(reached(dir.path(), "t.yaml").len(), 20);
        // a → b → a: each once.
        let app = |to: &str| {
            format!(
                "Transform: AWS::Serverless-2016-10-31\nResources:\n  X:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: {to}\n"
            )
        };
        std::fs::write(dir.path().join("a.yaml"), app("b.yaml")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), app("a.yaml")).unwrap();
        let got: Vec<(String, String)> = reached(dir.path(), "a.yaml")
            .into_iter()
            .map(|r| (r.template, r.path))
            .collect();
        assert_eq!(
            got,
            [
                ("a.yaml".to_string(), "b.yaml".to_string()),
                ("b.yaml".to_string(), "a.yaml".to_string())
            ]
        );
    }
}
