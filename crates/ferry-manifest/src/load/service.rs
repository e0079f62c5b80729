//! One `service.toml`: the `[service]` table (name, template, dependencies, inputs) and
//! `[parameters]`, into a [`ServiceDraft`]; `[package]` and `[acceptance]` are read by their own
//! modules.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::SERVICE_FILE;
use super::acceptance::read_acceptance;
use super::package::read_package;
use super::rules::{check_globs, is_lower_name};
use super::serverless;
use crate::diag::{Diagnostic, FileDiags};
use crate::model::{Service, ServiceKind};
use crate::parsed::ServiceDraft;
use crate::reference::Template;
use crate::source::{Source, normalize_relative};
use crate::spanned::{
    check_keys, get, get_argv, get_str, get_str_list, get_table, join_key, missing, parse,
    type_error,
};

const SERVICE_ROOT_KEYS: &[&str] = &["service", "parameters", "package", "acceptance", "scripts"];
const SERVICE_KEYS: &[&str] = &[
    "name",
    "kind",
    "template",
    "depends-on",
    "inputs",
    "stack-name",
    "serverless-command",
];
/// The template a SAM service has when `service.template` is not set (what `sam init` writes).
const SAM_TEMPLATE: &str = "template.yaml";
pub(super) const TEMPLATE_EXTENSIONS: &[&str] = &["yaml", "yml", "json", "template"];

/// Reads and checks the manifest of the service folder `dir`; `None` when it cannot be read or
/// lacks what a service needs (reported).
pub(super) fn read_service(
    source: &dyn Source,
    dir: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<ServiceDraft> {
    let path = format!("{dir}/{SERVICE_FILE}");
    let file = PathBuf::from(&path);
    // A commit stores a link as its target's path, and the plan sees edits by path: a linked
    // manifest would read differently from a commit than from the working tree, and its edits
    // would go unseen.
    if let Some(target) = source.link_target(&path) {
        diags.push(Diagnostic {
            file,
            line: None,
            key: None,
            message: format!("is a symbolic link (to `{target}`); a service's {SERVICE_FILE} must be a file in its folder: replace the link with a copy"),
        });
        return None;
    }
    let src = match super::config_text(source.read(&path), "cannot read") {
        Ok(s) => s,
        Err(message) => {
            diags.push(Diagnostic {
                file,
                line: None,
                key: None,
                message,
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
        fd.error(name_span.clone().or(Some(s_span.clone())), Some(what), format!("`{name}` is not a valid service name; use lowercase letters, digits and '-', starting with a letter and not ending with '-' (set service.name to override the folder name)"));
    }

    let kind = read_kind(&mut fd, s);
    // Problems in the framework's configuration file, reported once this manifest's are.
    let mut config_diags = Vec::new();
    let stack_name_key = get_str(&mut fd, s, "service", "stack-name");
    let serverless_command = get(s, "serverless-command").and_then(|_| {
        let argv = get_argv(
            &mut fd,
            s,
            "service",
            "serverless-command",
            r#"serverless-command = ["npx", "serverless"]"#,
        );
        (!argv.is_empty()).then_some(argv)
    });
    if kind != ServiceKind::Serverless && serverless_command.is_some() {
        let span = get(s, "serverless-command").map(Spanned::span);
        fd.error(span, Some("service.serverless-command"), format!("only a Serverless Framework service (kind = \"serverless\") takes serverless-command; this one is kind = \"{kind}\""));
    }
    // A CloudFormation or SAM service's own stack name (one its earlier deploy scripts gave
    // it); a Serverless service's is passed to `read_framework`, where it wins over the
    // configuration's.
    let mut stack_name = None;
    if kind != ServiceKind::Serverless
        && let Some((pattern, span)) = &stack_name_key
        && super::checks::check_own_stack_pattern(&mut fd, pattern, span)
    {
        stack_name = Some(pattern.clone());
    }
    let template = match get_str(&mut fd, s, "service", "template") {
        Some((_, sp)) if kind == ServiceKind::Serverless => {
            fd.error(Some(sp), Some("service.template"), "a Serverless Framework service is compiled from its serverless.yml, which Ferry finds in the service folder: remove service.template");
            None
        }
        None if kind == ServiceKind::Serverless => serverless::read_framework(
            &mut fd,
            &mut config_diags,
            source,
            dir,
            s_span.clone(),
            stack_name_key,
        )
        .map(|framework| {
            stack_name = Some(framework.stack_name);
            framework.config
        }),
        Some((t, sp)) => {
            check_template(&mut fd, source, dir, &t, sp);
            // Kept as checked, lexically normal (`infra/../t.json` is `t.json`): the file
            // system would need `infra` to exist to read the path as written.
            // (Only a path with such a segment is rebuilt: loads run this for every service.)
            if t.split('/').any(|seg| matches!(seg, "" | "." | "..")) {
                let normal =
                    normalize_relative(&format!("{dir}/{t}")).map(|p| relative_to(dir, &p));
                Some(normal.unwrap_or(t))
            } else {
                Some(t)
            }
        }
        None if kind == ServiceKind::Sam && get(s, "template").is_none() => {
            if source.is_file(&format!("{dir}/{SAM_TEMPLATE}")) {
                check_template(&mut fd, source, dir, SAM_TEMPLATE, s_span.clone());
            } else {
                fd.error(Some(s_span.clone()), Some("service.template"), format!("a SAM service's template is `{SAM_TEMPLATE}` in its folder unless service.template names another, and `{dir}/{SAM_TEMPLATE}` does not exist: add it, or set service.template"));
            }
            Some(SAM_TEMPLATE.to_string())
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
    let inputs = check_globs(&mut fd, "service.inputs", inputs);

    let parameters = read_parameters(&mut fd, doc_t, kind, &mut dep_sites);

    let package = read_package(&mut fd, doc_t, kind);
    let acceptance = read_acceptance(&mut fd, doc_t, dir);
    let scripts = read_scripts(&mut fd, doc_t);

    drop(fd);
    diags.extend(config_diags);
    let service = Service {
        name,
        dir: dir.to_string(),
        kind,
        template: template?,
        depends_on: depends_on.into_iter().map(|(d, _)| d).collect(),
        inputs,
        parameters,
        package,
        acceptance: acceptance.map(Box::new),
        scripts,
        stack_name,
        serverless_command,
    };
    Some(ServiceDraft {
        service,
        dep_sites,
        name_span,
        src,
    })
}

/// `[scripts]`: name → command (argv), e.g. `lint = ["npm", "run", "lint"]`.
fn read_scripts(fd: &mut FileDiags<'_>, doc: &DeTable<'_>) -> BTreeMap<String, Vec<String>> {
    let mut scripts = BTreeMap::new();
    let Some(t) = get_table(fd, doc, "", "scripts") else {
        return scripts;
    };
    for (k, _) in t.iter() {
        let name: &str = k.get_ref();
        let key = join_key("scripts", name);
        if !is_lower_name(name) {
            fd.error(
                Some(k.span()),
                Some(&key),
                format!("`{name}` is not a valid script name; use lowercase letters, digits and '-', starting with a letter and not ending with '-' (it is what `run <script>` names)"),
            );
            continue;
        }
        let argv = get_argv(fd, t, "scripts", name, r#"lint = ["npm", "run", "lint"]"#);
        if !argv.is_empty() {
            scripts.insert(name.to_string(), argv);
        }
    }
    scripts
}

/// `service.kind`; the default kind when it is not set (or is not a kind: reported).
fn read_kind(fd: &mut FileDiags<'_>, s: &DeTable<'_>) -> ServiceKind {
    let Some((name, span)) = get_str(fd, s, "service", "kind") else {
        return ServiceKind::default();
    };
    ServiceKind::from_name(&name).unwrap_or_else(|| {
        let known: Vec<String> = ServiceKind::ALL
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect();
        fd.error(
            Some(span),
            Some("service.kind"),
            format!(
                "`{name}` is not a kind of service; use one of {} (the default is \"{}\")",
                known.join(", "),
                ServiceKind::default()
            ),
        );
        ServiceKind::default()
    })
}

/// Reports a `service.template` path that lies outside the repository, is a symlink, does not
/// exist, or is not a template file. A symlink is refused even to a file inside the repository:
/// the plan sees a service's changes by the paths it owns, and the link's own path never
/// changes when the file it points to does; `template` can name that file itself.
fn check_template(
    fd: &mut FileDiags<'_>,
    source: &dyn Source,
    dir: &str,
    t: &str,
    sp: Range<usize>,
) {
    let path = normalize_relative(&format!("{dir}/{t}"));
    let exists = path.as_deref().is_some_and(|p| source.is_file(p));
    let ext_ok = Path::new(t)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| TEMPLATE_EXTENSIONS.contains(&e));
    if t.starts_with('/') || t.contains('\\') {
        fd.error(Some(sp), Some("service.template"), format!("`{t}` is an absolute path (or one with `\\`), which means another thing on every machine: give the template's path relative to the service folder, with `/`, e.g. \"template.yaml\" or \"../shared/template.yaml\""));
    } else if path.is_none() {
        fd.error(Some(sp), Some("service.template"), format!("`{t}` lies outside the repository; a template must be versioned with the repository (its edits are what Ferry deploys), so give a path inside it, relative to the service folder"));
    } else if let Some((link, target, rest)) =
        path.as_deref().and_then(|p| link_on_path(source, dir, p))
    {
        let p = path.as_deref().unwrap_or_default();
        let (what, place) = if rest.is_empty() {
            ("a symlink".to_string(), "a file")
        } else {
            (format!("reached through the symlink `{link}`"), "a place")
        };
        match crate::source::resolve_link(&link, &target) {
            None => fd.error(Some(sp), Some("service.template"), format!("`{p}` is {what} to {place} outside the repository; its edits would never be seen: move the file into the repository")),
            Some(real) => {
                let real = if rest.is_empty() { real } else { format!("{real}/{rest}") };
                // Advice to name the target holds only for a target that is a file itself, not
                // one that is missing, another link (a loop) or a folder.
                let a_file = source.is_file(&real)
                    && link_on_path(source, "", &real).is_none();
                if a_file {
                    fd.error(Some(sp), Some("service.template"), format!("`{p}` is {what} to `{real}`, whose edits a plan would never see (it sees a service's changes by the paths it names): name the file itself, `template = \"{}\"`", relative_to(dir, &real)));
                } else {
                    fd.error(Some(sp), Some("service.template"), format!("`{p}` is {what} to `{real}`, which is no file (missing, a folder, or a link again): replace the link with the template itself"));
                }
            }
        }
    } else if !exists {
        let path = path.as_deref().unwrap_or_default();
        match source.not_a_file(path) {
            Some(why) => fd.error(Some(sp), Some("service.template"), format!("template `{path}` {why}; name a template file, relative to the service folder")),
            None => fd.error(Some(sp), Some("service.template"), format!("template file `{dir}/{t}` does not exist; the path is relative to the service folder")),
        }
    } else if !ext_ok {
        fd.error(
            Some(sp),
            Some("service.template"),
            format!(
                "`{t}` is not a CloudFormation template; use a .yaml, .yml, .json or .template file"
            ),
        );
    }
}

/// The first symbolic link on `path` (repository relative, normalised), the file included,
/// with its target and the rest of the path after it. The folders on the way to the service
/// folder `dir` are real folders (services are found through folders only), so they are not
/// looked at again.
pub(super) fn link_on_path(
    source: &dyn Source,
    dir: &str,
    path: &str,
) -> Option<(String, String, String)> {
    // Each prefix ends before a `/` or at the end, taken as a slice: no string is built for the
    // common case, a template in its folder (one look-up, of the file itself).
    let ends = path
        .match_indices('/')
        .map(|(i, _)| i)
        .chain(std::iter::once(path.len()));
    for end in ends {
        let prefix = &path[..end];
        let on_the_way = dir == prefix
            || (dir.starts_with(prefix) && dir.as_bytes().get(prefix.len()) == Some(&b'/'));
        if on_the_way {
            continue;
        }
        if let Some(target) = source.link_target(prefix) {
            let rest = path.get(end + 1..).unwrap_or_default();
            return Some((prefix.to_string(), target, rest.to_string()));
        }
    }
    None
}

/// `path` (repository relative) as a path relative to the folder `dir`, e.g. `../../shared/t.yaml`.
fn relative_to(dir: &str, path: &str) -> String {
    let (d, p): (Vec<&str>, Vec<&str>) = (dir.split('/').collect(), path.split('/').collect());
    let common = d.iter().zip(&p).take_while(|(a, b)| a == b).count();
    let ups = std::iter::repeat_n("..", d.len() - common);
    ups.chain(p[common..].iter().copied())
        .collect::<Vec<_>>()
        .join("/")
}

/// The `[parameters]` table: each value parsed as a [`Template`]; the services whose outputs it
/// reads are added to `dep_sites` (where not declared already).
fn read_parameters(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    kind: ServiceKind,
    dep_sites: &mut BTreeMap<String, (Range<usize>, String)>,
) -> BTreeMap<String, Template> {
    let mut parameters = BTreeMap::new();
    if let Some(p) = get_table(fd, doc, "", "parameters") {
        for (k, v) in p.iter() {
            let key_name: &str = k.get_ref();
            let key = join_key("parameters", key_name);
            // A Serverless Framework service's go to `--param key=value`, read as
            // `${param:key}`, whose names may also hold `-` and `_`.
            let serverless = kind == ServiceKind::Serverless;
            let valid = !key_name.is_empty()
                && key_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || (serverless && matches!(c, '-' | '_')));
            if !valid {
                let rule = if serverless {
                    "a Serverless Framework service's parameter names hold only letters, digits, `-` and `_`"
                } else {
                    "CloudFormation parameter names hold only letters and digits"
                };
                fd.error(Some(k.span()), Some(&key), rule);
            }
            let text = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                // `0x10` is 16: the digits come without their prefix, with their radix.
                DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                    .map_or_else(|_| i.as_str().to_string(), |n| n.to_string()),
                DeValue::Boolean(b) => b.to_string(),
                _ => {
                    type_error(fd, v, &key, "a string, integer or boolean");
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
    parameters
}
