//! Reading `ferry.toml` and `services/*/service.toml` into a [`Workspace`], reporting every
//! problem at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ferry_graph::{DepGraph, GraphError};
use globset::{Glob, GlobBuilder};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, FileDiags, ManifestErrors, did_you_mean};
use crate::model::{
    Acceptance, Artifact, DEFAULT_ACCEPTANCE_TIMEOUT, DeploymentMethod, Package, Project, Service,
    Site, StageConfig, Workspace,
};
use crate::reference::Template;
use crate::source::{FsSource, ManifestCache, Source, normalize_relative};
use crate::ssm_name::{SsmNameError, check_ssm_name};
use crate::stage::{MAX_STACK_NAME, is_valid_stack_name, records_path, render_stack_name};

pub const PROJECT_FILE: &str = "ferry.toml";
pub const SERVICE_FILE: &str = "service.toml";

const ROOT_KEYS: &[&str] = &["project", "stages"];
const PROJECT_KEYS: &[&str] = &["name", "stack-name", "services", "global-inputs"];
const STAGE_KEYS: &[&str] = &[
    "region",
    "account",
    "role-arn",
    "external-id",
    "parameters-path",
    "deployment-method",
    "protected",
    "artifact-bucket",
    "records-path",
];
const SERVICE_ROOT_KEYS: &[&str] = &["service", "parameters", "package", "acceptance"];
const SERVICE_KEYS: &[&str] = &["name", "template", "depends-on", "inputs"];
const PACKAGE_KEYS: &[&str] = &["build", "exclude", "artifacts", "site"];
const ARTIFACT_KEYS: &[&str] = &["path", "exclude"];
const SITE_KEYS: &[&str] = &["path", "bucket-output", "prefix", "config-file", "exclude"];
const ACCEPTANCE_KEYS: &[&str] = &["command", "timeout", "env"];
const TEMPLATE_EXTENSIONS: &[&str] = &["yaml", "yml", "json", "template"];

/// The `service.name` a manifest declares, if it parses and declares one (e.g. to name a service
/// whose folder is gone, from its manifest at an older commit).
pub fn declared_service_name(manifest: &str) -> Option<String> {
    let doc = DeTable::parse(manifest).ok()?;
    let service = doc.get_ref().get("service")?.get_ref().as_table()?;
    service.get("name")?.get_ref().as_str().map(String::from)
}

/// Loads and validates the workspace rooted at `root`, from the files on disk.
pub fn load(root: &Path) -> Result<Workspace, ManifestErrors> {
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    load_from(&root, &FsSource::new(&root), None)
}

/// Loads and validates a workspace whose files come from `source` (e.g. a commit). `root` is
/// recorded as the workspace's root. With a `cache`, folders whose content id is known are not
/// read again.
pub fn load_from(
    root: &Path,
    source: &dyn Source,
    cache: Option<&mut ManifestCache>,
) -> Result<Workspace, ManifestErrors> {
    let mut diags = Vec::new();
    let ws = load_inner(root, source, cache, &mut diags);
    diags.sort();
    diags.dedup();
    match ws {
        Some(ws) if diags.is_empty() => Ok(ws),
        _ => Err(ManifestErrors(diags)),
    }
}

struct ServiceDraft {
    service: Service,
    /// dependency → where it was declared (span, key) in the service file.
    dep_sites: BTreeMap<String, (Range<usize>, String)>,
    name_span: Option<Range<usize>>,
    src: String,
}

/// What a valid `service.toml` parsed to, as the folder cache keeps it: all that the checks
/// across services need, so a cached folder is neither read nor parsed again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Parsed {
    service: Service,
    dep_sites: BTreeMap<String, (Range<usize>, String)>,
    name_span: Option<Range<usize>>,
}

fn load_inner(
    root: &Path,
    source: &dyn Source,
    mut cache: Option<&mut ManifestCache>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Workspace> {
    let project_path = Path::new(PROJECT_FILE);
    let src = match source.read(PROJECT_FILE) {
        Ok(s) => s,
        Err(e) => {
            diags.push(Diagnostic {
                file: project_path.into(),
                line: None,
                key: None,
                message: if e.kind() == std::io::ErrorKind::NotFound {
                    "not found at the repository root; run Ferry inside a repository that has one, or pass --root <DIR>".to_string()
                } else {
                    format!("cannot be read: {e}")
                },
            });
            return None;
        }
    };
    let mut fd = FileDiags::new(project_path, &src, diags);
    let doc = parse(&mut fd, &src)?;
    check_keys(&mut fd, doc.get_ref(), "", ROOT_KEYS);

    let project = read_project(&mut fd, doc.get_ref(), &doc.span());
    let (stages, default_stage) = read_stages(&mut fd, doc.get_ref());
    let project = project?;
    check_records_paths(&mut fd, doc.get_ref(), &project.name, &stages);

    let mut drafts: Vec<ServiceDraft> = Vec::new();
    let mut manifests = BTreeSet::new();
    for (dir, id) in discover_services(source, &project.services, diags) {
        let cached = match (&mut cache, &id) {
            (Some(c), Some(id)) => c.get(&dir, id).map(|hit| {
                hit.map(|(text, p)| ServiceDraft {
                    service: p.service.clone(),
                    dep_sites: p.dep_sites.clone(),
                    name_span: p.name_span.clone(),
                    src: text.to_string(),
                })
            }),
            _ => None,
        };
        match cached {
            Some(None) => continue,
            Some(Some(d)) => {
                manifests.insert(dir);
                drafts.push(d);
                continue;
            }
            None if !source.is_file(&format!("{dir}/{SERVICE_FILE}")) => {
                if let (Some(c), Some(id)) = (&mut cache, &id) {
                    c.put(&dir, id, None);
                }
                continue;
            }
            None => {}
        }
        manifests.insert(dir.clone());
        let before = diags.len();
        if let Some(d) = read_service(source, &dir, diags) {
            // Cacheable: no problem of its own, template inside the folder (covered by its id).
            let inside = !d.service.template.split('/').any(|s| s == "..");
            let clean = diags.len() == before;
            if let (Some(c), Some(id)) = (&mut cache, &id)
                && clean
                && inside
            {
                let parsed = Parsed {
                    service: d.service.clone(),
                    dep_sites: d.dep_sites.clone(),
                    name_span: d.name_span.clone(),
                };
                c.put(&dir, id, Some((d.src.clone(), parsed)));
            }
            drafts.push(d);
        }
    }
    check_globs_matched(
        &project.services,
        &manifests,
        &mut FileDiags::new(project_path, &src, diags),
    );
    drafts.sort_by(|a, b| {
        a.service
            .name
            .cmp(&b.service.name)
            .then(a.service.dir.cmp(&b.service.dir))
    });

    check_duplicates(&drafts, diags);
    let graph = check_graph(&drafts, diags);
    check_stack_names(&project, &stages, &drafts, diags);

    let services = drafts.into_iter().map(|d| d.service).collect();
    Some(Workspace {
        root: root.to_path_buf(),
        project,
        stages,
        default_stage,
        services,
        graph: graph?,
    })
}

fn parse<'s>(fd: &mut FileDiags<'_>, src: &'s str) -> Option<Spanned<DeTable<'s>>> {
    match DeTable::parse(src) {
        Ok(t) => Some(t),
        Err(e) => {
            let msg = e.message().trim_end().to_string();
            fd.error(e.span(), None, format!("not valid TOML: {msg}"));
            None
        }
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        format!("{prefix}.{key}")
    } else {
        format!("{prefix}.\"{key}\"")
    }
}

fn check_keys(fd: &mut FileDiags<'_>, table: &DeTable<'_>, prefix: &str, allowed: &[&str]) {
    for key in table.keys() {
        let k: &str = key.get_ref();
        if !allowed.contains(&k) {
            let hint = did_you_mean(k, allowed.iter().copied());
            let help = if hint.is_empty() {
                format!("; known keys: {}", allowed.join(", "))
            } else {
                hint
            };
            fd.error(
                Some(key.span()),
                Some(&join_key(prefix, k)),
                format!("unknown key{help}"),
            );
        }
    }
}

fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
    table.get(key)
}

fn type_error(fd: &mut FileDiags<'_>, v: &Spanned<DeValue<'_>>, key: &str, want: &str) {
    fd.error(
        Some(v.span()),
        Some(key),
        format!("expected {want}, found {}", v.get_ref().type_str()),
    );
}

fn get_str(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
    key: &str,
) -> Option<(String, Range<usize>)> {
    let v = get(t, key)?;
    match v.get_ref().as_str() {
        Some(s) => Some((s.to_string(), v.span())),
        None => {
            type_error(fd, v, &join_key(prefix, key), "a string");
            None
        }
    }
}

fn get_bool(fd: &mut FileDiags<'_>, t: &DeTable<'_>, prefix: &str, key: &str) -> Option<bool> {
    let v = get(t, key)?;
    let b = v.get_ref().as_bool();
    if b.is_none() {
        type_error(fd, v, &join_key(prefix, key), "true or false");
    }
    b
}

fn get_str_list(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
    key: &str,
) -> Option<Vec<(String, Range<usize>)>> {
    let v = get(t, key)?;
    let full = join_key(prefix, key);
    let Some(arr) = v.get_ref().as_array() else {
        type_error(fd, v, &full, "an array of strings");
        return None;
    };
    let mut out = Vec::new();
    for item in arr.iter() {
        match item.get_ref().as_str() {
            Some(s) => out.push((s.to_string(), item.span())),
            None => type_error(fd, item, &full, "a string"),
        }
    }
    Some(out)
}

fn get_table<'t, 'i>(
    fd: &mut FileDiags<'_>,
    t: &'t DeTable<'i>,
    prefix: &str,
    key: &str,
) -> Option<&'t DeTable<'i>> {
    let v = get(t, key)?;
    let table = v.get_ref().as_table();
    if table.is_none() {
        type_error(fd, v, &join_key(prefix, key), "a table");
    }
    table
}

fn missing(fd: &mut FileDiags<'_>, span: Range<usize>, key: &str, what_to_do: &str) {
    fd.error(
        Some(span),
        Some(key),
        format!("missing required key; {what_to_do}"),
    );
}

fn is_lower_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
}

fn check_globs(fd: &mut FileDiags<'_>, key: &str, globs: &[(String, Range<usize>)]) {
    for (g, span) in globs {
        if let Err(e) = Glob::new(g) {
            fd.error(
                Some(span.clone()),
                Some(key),
                format!("invalid glob `{g}`: {}", e.kind()),
            );
        } else if g.starts_with('/') || g.split('/').any(|s| s == "..") {
            fd.error(
                Some(span.clone()),
                Some(key),
                format!("`{g}` must be relative to the repository root, without `..`"),
            );
        }
    }
}

fn read_project(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    doc_span: &Range<usize>,
) -> Option<Project> {
    let Some(p) = get_table(fd, doc, "", "project") else {
        if get(doc, "project").is_none() {
            missing(
                fd,
                doc_span.clone(),
                "project",
                "add a [project] table with at least `name = \"…\"`",
            );
        }
        return None;
    };
    let span = get(doc, "project").map(Spanned::span).unwrap_or_default();
    check_keys(fd, p, "project", PROJECT_KEYS);
    let name = get_str(fd, p, "project", "name");
    let name = match name {
        None => {
            if get(p, "name").is_none() {
                missing(
                    fd,
                    span,
                    "project.name",
                    "name the project with lowercase letters, digits and '-', e.g. name = \"shop\"",
                );
            }
            None
        }
        Some((n, sp)) if !is_lower_name(&n) => {
            fd.error(Some(sp), Some("project.name"), format!("`{n}` is not a valid project name; use lowercase letters, digits and '-', starting with a letter"));
            None
        }
        Some((n, _)) => Some(n),
    };
    let stack_name = match get_str(fd, p, "project", "stack-name") {
        Some((s, sp)) => {
            check_stack_pattern(fd, &s, sp);
            s
        }
        None => "{service}-{stage}".to_string(),
    };
    let services = get_str_list(fd, p, "project", "services")
        .unwrap_or_else(|| vec![("services/*".into(), 0..0)]);
    check_globs(fd, "project.services", &services);
    let global_inputs = get_str_list(fd, p, "project", "global-inputs")
        .unwrap_or_else(|| vec![(PROJECT_FILE.into(), 0..0)]);
    check_globs(fd, "project.global-inputs", &global_inputs);
    Some(Project {
        name: name?,
        stack_name,
        services: services.into_iter().map(|(s, _)| s).collect(),
        global_inputs: global_inputs.into_iter().map(|(s, _)| s).collect(),
    })
}

fn check_stack_pattern(fd: &mut FileDiags<'_>, pattern: &str, span: Range<usize>) {
    let mut rest = pattern;
    let mut literal = String::new();
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            fd.error(
                Some(span),
                Some("project.stack-name"),
                format!("unclosed `{{` in `{pattern}`"),
            );
            return;
        };
        let ph = &rest[open + 1..open + close];
        if !["project", "service", "stage"].contains(&ph) {
            fd.error(
                Some(span.clone()),
                Some("project.stack-name"),
                format!(
                    "unknown placeholder `{{{ph}}}`; use {{project}}, {{service}} and {{stage}}"
                ),
            );
        }
        rest = &rest[open + close + 1..];
    }
    literal.push_str(rest);
    if !pattern.contains("{service}") || !pattern.contains("{stage}") {
        fd.error(Some(span.clone()), Some("project.stack-name"), format!("`{pattern}` must contain {{service}} and {{stage}}, or stacks of different services or stages would share a name"));
    }
    if !literal
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        fd.error(Some(span), Some("project.stack-name"), format!("`{pattern}` has characters a stack name cannot hold; use letters, digits and '-' around the placeholders"));
    }
}

fn read_stages(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
) -> (BTreeMap<String, StageConfig>, Option<StageConfig>) {
    let mut named = BTreeMap::new();
    let mut default = None;
    let Some(stages) = get_table(fd, doc, "", "stages") else {
        if get(doc, "stages").is_none() {
            fd.error(
                Some(0..0),
                Some("stages"),
                "no stage is configured; add e.g. [stages.dev] with region = \"us-east-1\"",
            );
        }
        return (named, default);
    };
    for (key, value) in stages.iter() {
        let name: &str = key.get_ref();
        let prefix = join_key("stages", name);
        let Some(t) = value.get_ref().as_table() else {
            type_error(fd, value, &prefix, "a table");
            continue;
        };
        if name != "*" && !is_valid_stack_name(name) {
            fd.error(Some(key.span()), Some(&prefix), format!("stage name `{name}` cannot be part of a stack name; use letters, digits and '-', starting with a letter (preview stages such as branches go through [stages.\"*\"])"));
        }
        if let Some(cfg) = read_stage(fd, t, &prefix, value.span()) {
            if name == "*" {
                default = Some(cfg);
            } else {
                named.insert(name.to_string(), cfg);
            }
        }
    }
    (named, default)
}

fn read_stage(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
    span: Range<usize>,
) -> Option<StageConfig> {
    check_keys(fd, t, prefix, STAGE_KEYS);
    let key = |k: &str| join_key(prefix, k);
    let region = get_str(fd, t, prefix, "region");
    if let Some((r, sp)) = &region {
        let parts: Vec<&str> = r.split('-').collect();
        let ok = parts.len() >= 3
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
            && parts
                .last()
                .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            fd.error(
                Some(sp.clone()),
                Some(&key("region")),
                format!("`{r}` is not an AWS region name such as us-east-1"),
            );
        }
    } else if get(t, "region").is_none() {
        missing(
            fd,
            span,
            &key("region"),
            "set the AWS region of this stage, e.g. region = \"us-east-1\"",
        );
    }
    let account = get_str(fd, t, prefix, "account");
    if let Some((a, sp)) = &account
        && (a.len() != 12 || !a.chars().all(|c| c.is_ascii_digit()))
    {
        fd.error(Some(sp.clone()), Some(&key("account")), format!("`{a}` is not a 12-digit AWS account id (write it as a string, e.g. \"111111111111\")"));
    }
    let role_arn = get_str(fd, t, prefix, "role-arn");
    if let Some((r, sp)) = &role_arn
        && !(r.starts_with("arn:") && r.contains(":iam::") && r.contains(":role/"))
    {
        fd.error(
            Some(sp.clone()),
            Some(&key("role-arn")),
            format!(
                "`{r}` is not an IAM role ARN such as arn:aws:iam::111111111111:role/ferry-deployer"
            ),
        );
    }
    let parameters_path = get_str(fd, t, prefix, "parameters-path");
    if let Some((p, sp)) = &parameters_path {
        if !p.starts_with('/') {
            let msg = format!(
                "`{p}` must be an absolute SSM path starting with '/', e.g. \"/shop/dev/\""
            );
            fd.error(Some(sp.clone()), Some(&key("parameters-path")), msg);
        } else if let Err(e) = check_ssm_name(&format!("{}/", p.trim_end_matches('/')), true) {
            fd.error(
                Some(sp.clone()),
                Some(&key("parameters-path")),
                e.to_string(),
            );
        }
    }
    let method = match get_str(fd, t, prefix, "deployment-method") {
        None => Some(DeploymentMethod::Changeset),
        Some((m, _)) if m == "changeset" => Some(DeploymentMethod::Changeset),
        Some((m, _)) if m == "direct" => Some(DeploymentMethod::Direct),
        Some((m, sp)) => {
            fd.error(
                Some(sp),
                Some(&key("deployment-method")),
                format!("`{m}` is not a deployment method; use \"changeset\" or \"direct\""),
            );
            None
        }
    };
    let protected = get_bool(fd, t, prefix, "protected").unwrap_or(false);
    let records_path = get_str(fd, t, prefix, "records-path");
    if let Some((p, sp)) = &records_path {
        let path = format!("{}/", p.replace("{stage}", "stage").trim_end_matches('/'));
        if !p.starts_with('/') {
            let msg = format!(
                "`{p}` must be an absolute SSM path starting with '/', e.g. \"/ferry/shop/dev/\""
            );
            fd.error(Some(sp.clone()), Some(&key("records-path")), msg);
        } else if let Err(e) = check_ssm_name(&path, true) {
            let msg = match e {
                SsmNameError::BadCharacter { ch: '{' | '}', .. } => {
                    format!("{e} ({{stage}} is the only placeholder it takes)")
                }
                e => e.to_string(),
            };
            fd.error(Some(sp.clone()), Some(&key("records-path")), msg);
        } else if prefix == "stages.\"*\"" && !p.contains("{stage}") {
            // Every preview stage would read and write the same records and lock.
            fd.error(Some(sp.clone()), Some(&key("records-path")), format!("`{p}` would be shared by every preview stage; put {{stage}} in it (e.g. \"{}/{{stage}}/\"), or leave it out for /ferry/<project>/<stage id>/", p.trim_end_matches('/')));
        }
    }
    let artifact_bucket = get_str(fd, t, prefix, "artifact-bucket");
    Some(StageConfig {
        region: region?.0,
        account: account.map(|a| a.0),
        role_arn: role_arn.map(|a| a.0),
        external_id: get_str(fd, t, prefix, "external-id").map(|a| a.0),
        parameters_path: parameters_path.map(|a| a.0),
        deployment_method: method?,
        protected,
        artifact_bucket: artifact_bucket.map(|a| a.0),
        records_path: records_path.map(|a| a.0),
    })
}

/// No two named stages may keep their records (and lock) at one SSM path: each would read the
/// other's records as its own, skip services that were never deployed to it, and share a lock.
fn check_records_paths(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    project: &str,
    stages: &BTreeMap<String, StageConfig>,
) {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (name, config) in stages {
        let path = records_path(project, config, name);
        let Some(first) = seen.get(&path) else {
            seen.insert(path, name);
            continue;
        };
        let table = get(doc, "stages")
            .and_then(|s| s.get_ref().as_table())
            .and_then(|s| get(s, name));
        let span = table
            .and_then(|t| t.get_ref().as_table())
            .and_then(|t| get(t, "records-path"))
            .or(table)
            .map(Spanned::span);
        let prefix = join_key("stages", name);
        fd.error(span, Some(&join_key(&prefix, "records-path")), format!("`{path}` is also the records path of stage `{first}`; two stages sharing records would read each other's records as their own and share one lock; give each stage its own records-path"));
    }
}

/// Expands the service globs to candidate folders (repository relative, with their content id
/// when the source has one). Whether a folder holds a `service.toml` is decided by the caller,
/// so that a cached folder needs no look-up.
fn discover_services(
    source: &dyn Source,
    globs: &[String],
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Option<String>> {
    let mut found = BTreeMap::new();
    let mut not_utf8 = BTreeSet::new();
    for pattern in globs.iter().filter(|p| Glob::new(p).is_ok()) {
        let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let mut out = Found {
            dirs: &mut found,
            not_utf8: &mut not_utf8,
        };
        expand(source, String::new(), None, &segments, &mut out);
    }
    for dir in not_utf8 {
        diags.push(Diagnostic {
            file: PathBuf::from(&dir),
            line: None,
            key: None,
            message: "folder name is not valid UTF-8 (shown with \u{fffd}); Ferry names services and stacks after folders: rename it".to_string(),
        });
    }
    found
}

/// What the service globs matched: folders (with content ids), and folders whose names are not
/// UTF-8.
struct Found<'a> {
    dirs: &'a mut BTreeMap<String, Option<String>>,
    not_utf8: &'a mut BTreeSet<String>,
}

/// Reports each service glob that matched no folder holding a manifest.
fn check_globs_matched(globs: &[String], manifests: &BTreeSet<String>, fd: &mut FileDiags<'_>) {
    for pattern in globs {
        let Ok(glob) = GlobBuilder::new(pattern).literal_separator(true).build() else {
            continue;
        };
        let m = glob.compile_matcher();
        if !manifests.iter().any(|d| m.is_match(d)) {
            fd.error(
                None,
                Some("project.services"),
                format!("`{pattern}` matches no folder with a {SERVICE_FILE}"),
            );
        }
    }
}

fn join(rel: &str, child: &str) -> String {
    if rel.is_empty() {
        child.to_string()
    } else {
        format!("{rel}/{child}")
    }
}

fn expand(
    source: &dyn Source,
    rel: String,
    id: Option<String>,
    segments: &[&str],
    out: &mut Found<'_>,
) {
    let Some((first, rest)) = segments.split_first() else {
        if !rel.is_empty() {
            out.dirs.insert(rel, id);
        }
        return;
    };
    if first.contains(['*', '?', '[', '{']) {
        for bad in source.non_utf8_subdirs(&rel) {
            out.not_utf8.insert(join(&rel, &bad));
        }
    }
    if *first == "**" {
        expand(source, rel.clone(), id, rest, out);
        for (child, cid) in source.subdirs(&rel) {
            expand(source, join(&rel, &child), cid, segments, out);
        }
    } else if first.contains(['*', '?', '[', '{']) {
        let Ok(m) = GlobBuilder::new(first)
            .literal_separator(true)
            .build()
            .map(|g| g.compile_matcher())
        else {
            return;
        };
        for (child, cid) in source.subdirs(&rel) {
            if m.is_match(&child) {
                expand(source, join(&rel, &child), cid, rest, out);
            }
        }
    } else {
        let path = join(&rel, first);
        if source.is_dir(&path) {
            let cid = if rest.is_empty() {
                source
                    .subdirs(&rel)
                    .into_iter()
                    .find(|(n, _)| n == first)
                    .and_then(|(_, i)| i)
            } else {
                None
            };
            expand(source, path, cid, rest, out);
        }
    }
}

fn read_service(
    source: &dyn Source,
    dir: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<ServiceDraft> {
    let file = PathBuf::from(format!("{dir}/{SERVICE_FILE}"));
    let src = match source.read(&format!("{dir}/{SERVICE_FILE}")) {
        Ok(s) => s,
        Err(e) => {
            diags.push(Diagnostic {
                file,
                line: None,
                key: None,
                message: format!("cannot read: {e}"),
            });
            return None;
        }
    };
    let mut fd = FileDiags::new(&file, &src, diags);
    let doc = parse(&mut fd, &src)?;
    let doc_t = doc.get_ref();
    check_keys(&mut fd, doc_t, "", SERVICE_ROOT_KEYS);
    let folder = dir.rsplit('/').next().unwrap_or(dir).to_string();
    let mut dep_sites = BTreeMap::new();

    let Some(s) = get_table(&mut fd, doc_t, "", "service") else {
        if get(doc_t, "service").is_none() {
            missing(
                &mut fd,
                0..0,
                "service",
                "add a [service] table with `template = \"template.yaml\"`",
            );
        }
        return None;
    };
    let s_span = get(doc_t, "service").map(Spanned::span).unwrap_or_default();
    check_keys(&mut fd, s, "service", SERVICE_KEYS);

    let (name, name_span) = match get_str(&mut fd, s, "service", "name") {
        Some((n, sp)) => (n, Some(sp)),
        None => (folder.clone(), None),
    };
    if !is_lower_name(&name) {
        let what = if name_span.is_some() {
            "service.name"
        } else {
            "service (folder name)"
        };
        fd.error(name_span.clone().or(Some(s_span.clone())), Some(what), format!("`{name}` is not a valid service name; use lowercase letters, digits and '-', starting with a letter (set service.name to override the folder name)"));
    }

    let template = match get_str(&mut fd, s, "service", "template") {
        Some((t, sp)) => {
            let path = normalize_relative(&format!("{dir}/{t}"));
            let exists = path.as_deref().is_some_and(|p| source.is_file(p));
            let ext_ok = Path::new(&t)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| TEMPLATE_EXTENSIONS.contains(&e));
            if path.is_none() || t.starts_with('/') || t.contains('\\') {
                fd.error(Some(sp), Some("service.template"), format!("`{t}` lies outside the repository; a template must be versioned with the repository (its edits are what Ferry deploys), so give a path inside it, relative to the service folder"));
            } else if exists && !path.as_deref().is_some_and(|p| source.inside(p)) {
                fd.error(Some(sp), Some("service.template"), format!("`{dir}/{t}` is a symlink to a file outside the repository; its edits would never be seen: move the file into the repository"));
            } else if !exists {
                fd.error(Some(sp), Some("service.template"), format!("template file `{dir}/{t}` does not exist; the path is relative to the service folder"));
            } else if !ext_ok {
                fd.error(Some(sp), Some("service.template"), format!("`{t}` is not a CloudFormation template; use a .yaml, .yml, .json or .template file"));
            }
            Some(t)
        }
        None => {
            if get(s, "template").is_none() {
                missing(
                    &mut fd,
                    s_span.clone(),
                    "service.template",
                    "set the CloudFormation template's path relative to the service folder, e.g. template = \"template.yaml\"",
                );
            }
            None
        }
    };

    let depends_on = get_str_list(&mut fd, s, "service", "depends-on").unwrap_or_default();
    for (d, sp) in &depends_on {
        dep_sites
            .entry(d.clone())
            .or_insert((sp.clone(), "service.depends-on".to_string()));
    }
    let inputs = get_str_list(&mut fd, s, "service", "inputs").unwrap_or_default();
    check_globs(&mut fd, "service.inputs", &inputs);

    let mut parameters = BTreeMap::new();
    if let Some(p) = get_table(&mut fd, doc_t, "", "parameters") {
        for (k, v) in p.iter() {
            let key_name: &str = k.get_ref();
            let key = join_key("parameters", key_name);
            if !key_name.chars().all(|c| c.is_ascii_alphanumeric()) {
                fd.error(
                    Some(k.span()),
                    Some(&key),
                    "CloudFormation parameter names hold only letters and digits",
                );
            }
            let text = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => i.as_str().to_string(),
                DeValue::Boolean(b) => b.to_string(),
                _ => {
                    type_error(&mut fd, v, &key, "a string, integer or boolean");
                    continue;
                }
            };
            match Template::parse(&text) {
                Ok(t) => {
                    for svc in t.output_services() {
                        dep_sites
                            .entry(svc.to_string())
                            .or_insert((v.span(), key.clone()));
                    }
                    parameters.insert(key_name.to_string(), t);
                }
                Err(e) => fd.error(Some(v.span()), Some(&key), e.to_string()),
            }
        }
    }

    let package = read_package(&mut fd, doc_t);
    let acceptance = read_acceptance(&mut fd, doc_t);

    let service = Service {
        name,
        dir: dir.to_string(),
        template: template?,
        depends_on: depends_on.into_iter().map(|(d, _)| d).collect(),
        inputs: inputs.into_iter().map(|(d, _)| d).collect(),
        parameters,
        package,
        acceptance,
    };
    Some(ServiceDraft {
        service,
        dep_sites,
        name_span,
        src,
    })
}

/// A path inside the service folder: relative, `/`-separated, without `..`.
fn check_service_path(fd: &mut FileDiags<'_>, key: &str, (p, span): &(String, Range<usize>)) {
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

/// A non-empty argv list.
fn get_argv(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
    key: &str,
    example: &str,
) -> Vec<String> {
    let Some(argv) = get_str_list(fd, t, prefix, key) else {
        return Vec::new();
    };
    if argv.first().is_none_or(|(a, _)| a.trim().is_empty()) {
        let span = get(t, key).map(Spanned::span);
        fd.error(
            span,
            Some(&join_key(prefix, key)),
            format!(
                "the command is empty; give the program and its arguments as a list, e.g. {example}"
            ),
        );
        return Vec::new();
    }
    argv.into_iter().map(|(a, _)| a).collect()
}

fn get_excludes(fd: &mut FileDiags<'_>, t: &DeTable<'_>, prefix: &str) -> Vec<String> {
    let globs = get_str_list(fd, t, prefix, "exclude").unwrap_or_default();
    for (g, span) in &globs {
        if let Err(e) = Glob::new(g) {
            fd.error(
                Some(span.clone()),
                Some(&join_key(prefix, "exclude")),
                format!("invalid glob `{g}`: {}", e.kind()),
            );
        }
    }
    globs.into_iter().map(|(g, _)| g).collect()
}

fn read_package(fd: &mut FileDiags<'_>, doc: &DeTable<'_>) -> Package {
    let Some(p) = get_table(fd, doc, "", "package") else {
        return Package::default();
    };
    check_keys(fd, p, "package", PACKAGE_KEYS);
    let build = get_argv(fd, p, "package", "build", r#"build = ["make", "dist"]"#);
    let exclude = get_excludes(fd, p, "package");
    let mut artifacts = BTreeMap::new();
    if let Some(a) = get_table(fd, p, "package", "artifacts") {
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
    if let Some(t) = get_table(fd, p, "package", "site") {
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
        let prefix = get_str(fd, t, "package.site", "prefix")
            .map(|p| p.0)
            .unwrap_or_default();
        let config_file = get_str(fd, t, "package.site", "config-file");
        if let Some(c) = &config_file {
            check_service_path(fd, "package.site.config-file", c);
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
        exclude,
        artifacts,
        site,
    }
}

fn read_acceptance(fd: &mut FileDiags<'_>, doc: &DeTable<'_>) -> Option<Acceptance> {
    let t = get_table(fd, doc, "", "acceptance")?;
    check_keys(fd, t, "acceptance", ACCEPTANCE_KEYS);
    let span = get(doc, "acceptance")
        .map(Spanned::span)
        .unwrap_or_default();
    if get(t, "command").is_none() {
        missing(
            fd,
            span,
            "acceptance.command",
            r#"give the test command as a list, e.g. command = ["cargo", "test", "-p", "orders-acceptance"]"#,
        );
    }
    let command = get_argv(
        fd,
        t,
        "acceptance",
        "command",
        r#"command = ["pytest", "tests"]"#,
    );
    let timeout_secs = match get(t, "timeout") {
        None => DEFAULT_ACCEPTANCE_TIMEOUT,
        Some(v) => match v.get_ref() {
            DeValue::Integer(i) => match i.as_str().parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    fd.error(
                        Some(v.span()),
                        Some("acceptance.timeout"),
                        "expected a positive number of seconds",
                    );
                    DEFAULT_ACCEPTANCE_TIMEOUT
                }
            },
            _ => {
                type_error(fd, v, "acceptance.timeout", "a number of seconds");
                DEFAULT_ACCEPTANCE_TIMEOUT
            }
        },
    };
    let mut env = BTreeMap::new();
    if let Some(e) = get_table(fd, t, "acceptance", "env") {
        for (k, v) in e.iter() {
            let name: &str = k.get_ref();
            let key = join_key("acceptance.env", name);
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                fd.error(Some(k.span()), Some(&key), "environment variable names hold letters, digits and '_', not starting with a digit");
            } else if name.starts_with("FERRY_") || name.starts_with("AWS_") {
                fd.error(
                    Some(k.span()),
                    Some(&key),
                    "FERRY_* and AWS_* variables are set by Ferry; choose another name",
                );
            }
            match v.get_ref().as_str() {
                Some(s) => {
                    env.insert(name.to_string(), s.to_string());
                }
                None => type_error(fd, v, &key, "a string"),
            }
        }
    }
    if command.is_empty() {
        return None;
    }
    Some(Acceptance {
        command,
        timeout_secs,
        env,
    })
}

fn diag_at(d: &ServiceDraft, span: Option<Range<usize>>, key: &str, message: String) -> Diagnostic {
    let mut out = Vec::new();
    FileDiags::new(Path::new(&d.service.manifest_path()), &d.src, &mut out).error(
        span,
        Some(key),
        message,
    );
    out.pop().expect("one diagnostic")
}

fn check_duplicates(drafts: &[ServiceDraft], diags: &mut Vec<Diagnostic>) {
    for pair in drafts.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.service.name == b.service.name {
            for (this, other) in [(a, b), (b, a)] {
                diags.push(diag_at(
                    this,
                    this.name_span.clone(),
                    "service.name",
                    format!("service name `{}` is also used by {}; service names must be unique (set service.name in one of them)", this.service.name, other.service.manifest_path()),
                ));
            }
        }
    }
}

fn check_graph(drafts: &[ServiceDraft], diags: &mut Vec<Diagnostic>) -> Option<DepGraph> {
    let mut seen = BTreeSet::new();
    let unique: Vec<&ServiceDraft> = drafts
        .iter()
        .filter(|d| seen.insert(d.service.name.clone()))
        .collect();
    let names: Vec<&str> = unique.iter().map(|d| d.service.name.as_str()).collect();
    let errors = match DepGraph::new(
        unique
            .iter()
            .map(|d| (d.service.name.clone(), d.service.dependencies())),
    ) {
        Ok(g) => return Some(g),
        Err(e) => e,
    };
    let by_name: BTreeMap<&str, &ServiceDraft> = unique
        .iter()
        .map(|d| (d.service.name.as_str(), *d))
        .collect();
    for e in errors {
        let diag = match &e {
            GraphError::UnknownDependency { node, dependency } => {
                let d = by_name[node.as_str()];
                let (span, key) = d.dep_sites.get(dependency).cloned().unzip();
                let hint = did_you_mean(dependency, names.iter().copied());
                diag_at(
                    d,
                    span,
                    key.as_deref().unwrap_or("service.depends-on"),
                    format!(
                        "unknown service `{dependency}`{hint}; known services: {}",
                        names.join(", ")
                    ),
                )
            }
            GraphError::SelfDependency { node } => {
                let d = by_name[node.as_str()];
                let (span, key) = d.dep_sites.get(node).cloned().unzip();
                diag_at(
                    d,
                    span,
                    key.as_deref().unwrap_or("service.depends-on"),
                    format!(
                        "service `{node}` depends on itself; remove it from its own dependencies"
                    ),
                )
            }
            GraphError::Cycle { path } => {
                let d = by_name[path[0].as_str()];
                let (span, key) = d.dep_sites.get(&path[1]).cloned().unzip();
                diag_at(
                    d,
                    span,
                    key.as_deref().unwrap_or("service.depends-on"),
                    format!(
                        "dependency cycle {}; a service cannot depend on itself through others, remove one of these dependencies",
                        path.join(" -> ")
                    ),
                )
            }
            other => diag_at(by_name[names[0]], None, "service", other.to_string()),
        };
        diags.push(diag);
    }
    None
}

fn check_stack_names(
    project: &Project,
    stages: &BTreeMap<String, StageConfig>,
    drafts: &[ServiceDraft],
    diags: &mut Vec<Diagnostic>,
) {
    for stage in stages.keys().filter(|s| is_valid_stack_name(s)) {
        for d in drafts {
            let name =
                render_stack_name(&project.stack_name, &project.name, &d.service.name, stage);
            if !is_valid_stack_name(&name) {
                let why = if name.len() > MAX_STACK_NAME {
                    format!(
                        "is {} characters long (at most {MAX_STACK_NAME})",
                        name.len()
                    )
                } else {
                    "is not of the form [A-Za-z][-A-Za-z0-9]*".to_string()
                };
                diags.push(Diagnostic {
                    file: PROJECT_FILE.into(),
                    line: None,
                    key: Some(join_key("stages", stage)),
                    message: format!("stack name `{name}` of service `{}` {why}; shorten the stage or service name, or change project.stack-name", d.service.name),
                });
            }
        }
    }
}
