//! Reading `ferry.toml` and `services/*/service.toml` into a [`Workspace`], reporting every
//! problem at once: the entry points, and the order of the steps.
//!
//! [`project`] reads `ferry.toml`; [`discover`] finds the service folders; [`service`] (with
//! [`package`] and [`acceptance`]) reads each `service.toml`, unless the folder cache knows it;
//! [`checks`] checks the services against each other.

mod acceptance;
mod checks;
mod discover;
mod package;
mod project;
mod rules;
mod serverless;
mod service;

pub use project::{check_webhook_url, shown_url};
pub use serverless::{
    FrameworkCli, ServerlessConfig, SsmRead, secret_env_source, serverless_file_source,
    serverless_name_pattern, serverless_stack_name, serverless_variable_sources,
    serverless_variables_replaced,
};

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use self::checks::{
    check_duplicates, check_graph, check_input_paths, check_output_stages, check_own_outputs,
    check_ssm_references, check_stack_names, check_variables,
};
use self::discover::{check_globs_matched, discover_services};
use self::project::{ProjectFile, read_project_file};
use self::service::read_service;
use crate::cache::ManifestCache;
use crate::diag::{Diagnostic, FileDiags, ManifestErrors};
use crate::model::Workspace;
use crate::parsed::ServiceDraft;
use crate::source::{FsSource, Source};

/// The text of a configuration file as `read`, or what a diagnostic says of it: after `verb`
/// (`cannot read`), that it is no UTF-8 (saved as UTF-16, say), or the read's own error; and
/// text holding NUL characters is refused too: valid UTF-8, but no TOML (UTF-16 without a
/// byte-order mark reads as every other byte NUL), and TOML's own error would name a column.
fn config_text(read: std::io::Result<String>, verb: &str) -> Result<String, String> {
    match read {
        Ok(text) if text.contains('\0') => Err("holds NUL characters, so it is no UTF-8 text file (saved as UTF-16 without a byte-order mark, say); save it as UTF-8".to_string()),
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(format!(
            "{verb}: it is not UTF-8 text (saved as UTF-16, say); save it as UTF-8"
        )),
        Err(e) => Err(format!("{verb}: {e}")),
    }
}

pub const PROJECT_FILE: &str = "ferry.toml";
pub const SERVICE_FILE: &str = "service.toml";

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

/// The workspace, as far as it can be built; every problem goes to `diags`.
fn load_inner(
    root: &Path,
    source: &dyn Source,
    cache: Option<&mut ManifestCache>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Workspace> {
    let ProjectFile {
        project,
        stages,
        default_stage,
        src,
        named,
    } = read_project_file(source, diags)?;

    let (drafts, manifests) = read_services(source, &project.services, cache, diags);
    check_globs_matched(
        &project.services,
        &manifests,
        &mut FileDiags::new(Path::new(PROJECT_FILE), &src, diags),
    );

    check_input_paths(source, &project, &src, &drafts, diags);
    check_duplicates(&drafts, diags);
    // A service whose manifest could not be read is no reason to call its dependents'
    // `depends-on` unknown: by default it is named after its folder.
    // (A plan reads a thousand manifests: no pass over the drafts per manifest.)
    let unread: BTreeSet<&str> = if drafts.len() >= manifests.len() {
        BTreeSet::new()
    } else {
        let read: BTreeSet<&str> = drafts.iter().map(|d| d.service.dir.as_str()).collect();
        manifests
            .iter()
            .filter(|dir| !read.contains(dir.as_str()))
            .filter_map(|dir| dir.rsplit('/').next())
            .collect()
    };
    let graph = check_graph(&drafts, &unread, diags);
    if named {
        check_stack_names(&project, &stages, default_stage.is_some(), &drafts, diags);
    }
    check_variables(&stages, default_stage.as_ref(), &drafts, diags);
    check_output_stages(&stages, default_stage.is_some(), &drafts, diags);
    check_own_outputs(&stages, &drafts, diags);
    check_ssm_references(&project, &stages, default_stage.as_ref(), &drafts, diags);

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

/// Reads every service folder that the service globs match: from the cache when it knows the
/// folder's content id, else from `source` (and then into the cache, when the service is
/// cacheable). Returns the services, sorted by name then folder, and the folders that hold a
/// manifest.
fn read_services(
    source: &dyn Source,
    globs: &[String],
    mut cache: Option<&mut ManifestCache>,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<ServiceDraft>, BTreeSet<String>) {
    let mut drafts: Vec<ServiceDraft> = Vec::new();
    let mut manifests = BTreeSet::new();
    for (dir, id) in discover_services(source, globs, diags) {
        let cached = match (&mut cache, &id) {
            (Some(c), Some(id)) => c
                .get(&dir, id)
                .map(|hit| hit.map(|(text, p)| ServiceDraft::from_cached(text, p))),
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
                let manifest = format!("{dir}/{SERVICE_FILE}");
                // A manifest that is there but no file is a service lost in silence: said.
                if let Some(why) = source.not_a_file(&manifest) {
                    diags.push(Diagnostic {
                        file: PathBuf::from(manifest),
                        line: None,
                        key: None,
                        message: format!(
                            "{why}; a service's {SERVICE_FILE} must be a file in its folder"
                        ),
                    });
                } else if let (Some(c), Some(id)) = (&mut cache, &id) {
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
            let inside = d.service.template_outside().is_none();
            let clean = diags.len() == before;
            if let (Some(c), Some(id)) = (&mut cache, &id)
                && clean
                && inside
            {
                c.put(&dir, id, Some((d.src.clone(), d.to_parsed())));
            }
            drafts.push(d);
        }
    }
    drafts.sort_by(|a, b| {
        a.service
            .name
            .cmp(&b.service.name)
            .then(a.service.dir.cmp(&b.service.dir))
    });
    (drafts, manifests)
}
