//! The `[package]` table of a `service.toml`: the build command, excludes, artifacts and the
//! static site.

use std::collections::BTreeMap;
use std::ops::Range;

use globset::Glob;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::FileDiags;
use crate::model::{Artifact, Package, ServiceKind, Site};
use crate::spanned::{
    check_keys, get, get_argv, get_secs, get_str, get_str_list, get_table, join_key, missing,
    type_error,
};

const PACKAGE_KEYS: &[&str] = &[
    "build",
    "timeout",
    "exclude",
    "artifacts",
    "site",
    "built-template",
];
const ARTIFACT_KEYS: &[&str] = &["path", "exclude"];
const SITE_KEYS: &[&str] = &["path", "bucket-output", "prefix", "config-file", "exclude"];

/// The `[package]` table; the default package when there is none.
pub(super) fn read_package(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    kind: ServiceKind,
) -> Package {
    let Some(p) = get_table(fd, doc, "", "package") else {
        return Package::default();
    };
    check_keys(fd, p, "package", PACKAGE_KEYS);
    let build = get_argv(fd, p, "package", "build", r#"build = ["make", "dist"]"#);
    let timeout_secs = get_secs(fd, p, "package", "timeout");
    if let (Some(_), true, Some(v)) = (timeout_secs, build.is_empty(), get(p, "timeout")) {
        fd.error(
            Some(v.span()),
            Some("package.timeout"),
            "timeout bounds package.build, and there is no build: add build or remove timeout",
        );
    }
    let exclude = get_excludes(fd, p, "package");
    let built_template = read_built_template(fd, p, kind, build.is_empty());
    let mut artifacts = BTreeMap::new();
    let artifacts_of_its_own = match kind {
        ServiceKind::Cloudformation => None,
        ServiceKind::Sam => Some(
            "a SAM service's code paths come from its template (CodeUri, also in Globals, ContentUri, DefinitionUri, an application's Location), and Ferry packages each of them: remove [package.artifacts]",
        ),
        ServiceKind::Serverless => Some(
            "a Serverless Framework service's functions are packaged by the framework (its `package` settings in serverless.yml), and Ferry stores each archive it writes: remove [package.artifacts]",
        ),
    };
    if let (Some(why), Some(a)) = (artifacts_of_its_own, get(p, "artifacts")) {
        fd.error(Some(a.span()), Some("package.artifacts"), why);
    } else if let Some(a) = get_table(fd, p, "package", "artifacts") {
        for (k, v) in a.iter() {
            let resource: &str = k.get_ref();
            let key = join_key("package.artifacts", resource);
            if !resource.chars().all(|c| c.is_ascii_alphanumeric()) {
                fd.error(
                    Some(k.span()),
                    Some(&key),
                    "keys are template resource logical ids: letters and digits only",
                );
            }
            let artifact = match v.get_ref() {
                DeValue::String(s) => Some(Artifact {
                    path: s.to_string(),
                    exclude: Vec::new(),
                })
                .inspect(|a| check_service_path(fd, &key, &(a.path.clone(), v.span()))),
                DeValue::Table(t) => {
                    check_keys(fd, t, &key, ARTIFACT_KEYS);
                    let path = get_str(fd, t, &key, "path");
                    if path.is_none() && get(t, "path").is_none() {
                        missing(
                            fd,
                            v.span(),
                            &join_key(&key, "path"),
                            "name the folder or file to zip, relative to the service folder",
                        );
                    }
                    let exclude = get_excludes(fd, t, &key);
                    path.map(|p| {
                        check_service_path(fd, &join_key(&key, "path"), &p);
                        Artifact { path: p.0, exclude }
                    })
                }
                _ => {
                    type_error(
                        fd,
                        v,
                        &key,
                        r#"a path or a table such as { path = "src", exclude = ["tests/**"] }"#,
                    );
                    None
                }
            };
            if let Some(a) = artifact {
                artifacts.insert(resource.to_string(), a);
            }
        }
    }
    let mut site = None;
    if kind == ServiceKind::Serverless
        && let Some(t) = get(p, "site")
    {
        fd.error(
            Some(t.span()),
            Some("package.site"),
            "a Serverless Framework service cannot publish a site through Ferry yet: give the site a service of its own (kind = \"cloudformation\" with [package.site]) that depends on this one",
        );
    } else if let Some(t) = get_table(fd, p, "package", "site") {
        check_keys(fd, t, "package.site", SITE_KEYS);
        let span = get(p, "site").map(Spanned::span).unwrap_or_default();
        let path = get_str(fd, t, "package.site", "path");
        if let Some(p) = &path {
            check_service_path(fd, "package.site.path", p);
        } else if get(t, "path").is_none() {
            missing(
                fd,
                span.clone(),
                "package.site.path",
                "name the folder to upload, relative to the service folder",
            );
        }
        let bucket_output = get_str(fd, t, "package.site", "bucket-output");
        if bucket_output.is_none() && get(t, "bucket-output").is_none() {
            missing(
                fd,
                span,
                "package.site.bucket-output",
                "name the stack output that holds the bucket's name",
            );
        }
        let prefix = get_str(fd, t, "package.site", "prefix");
        if let Some((p, span)) = &prefix {
            let trimmed = p.trim_matches('/');
            let bad = trimmed.chars().any(|c| c.is_control() || c == '\\')
                || (!trimmed.is_empty()
                    && trimmed
                        .split('/')
                        .any(|s| s.is_empty() || s == "." || s == ".."));
            if bad {
                fd.error(
                    Some(span.clone()),
                    Some("package.site.prefix"),
                    format!(
                        "{p:?} is no key prefix a bucket serves as meant: write folder names separated by single `/`, without `.`, `..`, `\\` or control characters (e.g. \"app\" or \"app/v2\"), or leave it out to publish at the bucket's top"
                    ),
                );
            }
        }
        let prefix = prefix.map(|p| p.0).unwrap_or_default();
        let config_file = get_str(fd, t, "package.site", "config-file");
        if let Some(c) = &config_file {
            check_service_path(fd, "package.site.config-file", c);
            // A file's name, published as an object's key: not the site's folder itself.
            if c.0
                .split('/')
                .next_back()
                .is_some_and(|last| last.is_empty() || last == ".")
            {
                fd.error(
                    Some(c.1.clone()),
                    Some("package.site.config-file"),
                    format!(
                        "`{}` names no file; name the JSON file to write, e.g. \"config.json\"",
                        c.0
                    ),
                );
            } else if !c.0.to_ascii_lowercase().ends_with(".json") {
                // The generated file takes the place of the site's file of that name: a page
                // named here (`index.html`) would be published as JSON.
                fd.error(
                    Some(c.1.clone()),
                    Some("package.site.config-file"),
                    format!(
                        "`{}`: the config file Ferry writes is JSON (the outputs of the service's dependencies), and takes the place of the site's file of that name, which is not published; name a `.json` file, e.g. \"config.json\"",
                        c.0
                    ),
                );
            }
        }
        let exclude = get_excludes(fd, t, "package.site");
        if let (Some(path), Some(bucket_output)) = (path, bucket_output) {
            site = Some(Site {
                path: path.0,
                bucket_output: bucket_output.0,
                prefix: prefix.trim_matches('/').to_string(),
                config_file: config_file.map(|c| c.0),
                exclude,
            });
        }
    }
    Package {
        build,
        timeout_secs,
        exclude,
        artifacts,
        site: site.map(Box::new),
        built_template,
    }
}

/// `built-template`: a template path inside the service folder, for a SAM service with a
/// build.
fn read_built_template(
    fd: &mut FileDiags<'_>,
    p: &DeTable<'_>,
    kind: ServiceKind,
    no_build: bool,
) -> Option<String> {
    let key = "package.built-template";
    let (path, span) = get_str(fd, p, "package", "built-template")?;
    if kind != ServiceKind::Sam {
        fd.error(
            Some(span),
            Some(key),
            format!(
                "built-template is the template a SAM build writes (`sam build`: \".aws-sam/build/template.yaml\"), and this service is of kind \"{}\": remove it",
                kind.as_str()
            ),
        );
        return None;
    }
    if no_build {
        fd.error(
            Some(span),
            Some(key),
            r#"built-template names what the build writes, and there is no build: add build = ["sam", "build"] or remove built-template"#,
        );
        return None;
    }
    check_service_path(fd, key, &(path.clone(), span.clone()));
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    if !super::service::TEMPLATE_EXTENSIONS.contains(&ext) {
        fd.error(
            Some(span),
            Some(key),
            format!("`{path}` is not a template file (.yaml, .yml, .json or .template)"),
        );
        return None;
    }
    Some(path)
}

/// A path inside the service folder: relative, `/`-separated, without `..`.
fn check_service_path(fd: &mut FileDiags<'_>, key: &str, (p, span): &(String, Range<usize>)) {
    if p.chars().any(char::is_control) {
        fd.error(
            Some(span.clone()),
            Some(key),
            format!(
                "{:?} holds a control character (a NUL, a line break, …), which no file name a build writes should; remove it",
                p
            ),
        );
        return;
    }
    let bad =
        p.is_empty() || p.starts_with('/') || p.contains('\\') || p.split('/').any(|s| s == "..");
    if bad {
        fd.error(
            Some(span.clone()),
            Some(key),
            format!("`{p}` must be a path inside the service folder, relative to it, `/`-separated and without `..`"),
        );
    }
}

/// The `exclude` globs of a table, each checked.
fn get_excludes(fd: &mut FileDiags<'_>, t: &DeTable<'_>, prefix: &str) -> Vec<String> {
    let globs = get_str_list(fd, t, prefix, "exclude").unwrap_or_default();
    for (g, span) in &globs {
        if g.is_empty() {
            // As a glob it matches every path: the whole folder would be left out, silently.
            fd.error(
                Some(span.clone()),
                Some(&join_key(prefix, "exclude")),
                "an empty glob leaves out every file; remove it".to_string(),
            );
        } else if let Err(e) = Glob::new(g) {
            fd.error(
                Some(span.clone()),
                Some(&join_key(prefix, "exclude")),
                format!("invalid glob `{g}`: {}", e.kind()),
            );
        }
    }
    globs.into_iter().map(|(g, _)| g).collect()
}
