//! Serverless Framework Compose (`serverless-compose.yml`): a repository that deploys its
//! Serverless services with Compose already says what Ferry needs of them. Each entry of
//! `services` names a folder (`path`); its key becomes the Ferry service's name, `dependsOn` and
//! every `${<service>.<Output>}` in its `params` its `depends-on`, and its `params` its
//! `[parameters]` (passed to the framework as `--param`, read in `serverless.yml` as
//! `${param:…}`, as Compose passes them), with `${sls:stage}` as `${stage}` and
//! `${<service>.<Output>}` as `${output:<service>.<Output>}`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;

use crate::Found;

/// The configuration files Compose reads, in its order; the programs (`.js`, `.ts`) cannot be
/// read without running them.
const FILES: &[&str] = &[
    "serverless-compose.yml",
    "serverless-compose.yaml",
    "serverless-compose.json",
];
const PROGRAMS: &[&str] = &["serverless-compose.js", "serverless-compose.ts"];

/// One entry of `services`.
#[derive(Debug)]
struct Entry {
    alias: String,
    path: String,
    depends_on: Vec<String>,
    params: Vec<(String, Value)>,
    region: Option<String>,
    config: Option<String>,
    component: Option<String>,
}

/// What a repository's Compose file says, with the Ferry name of each entry's service.
#[derive(Debug, Default)]
pub(crate) struct Compose {
    file: String,
    entries: Vec<Entry>,
    /// Compose's service key → the Ferry service's index, for the entries that name one.
    matched: BTreeMap<String, usize>,
}

/// Reads the repository's Compose file, if it has one that is data (a program is noted).
pub(crate) fn read(root: &Path, notes: &mut Vec<String>) -> Option<Compose> {
    let Some(file) = FILES.iter().find(|f| root.join(f).is_file()) else {
        if let Some(p) = PROGRAMS.iter().find(|f| root.join(f).is_file()) {
            notes.push(format!(
                "{p} is a program: the services' links and parameters it holds were not read; add them to the service.toml files by hand"
            ));
        }
        return None;
    };
    let text = std::fs::read_to_string(root.join(file)).ok()?;
    let doc: Value = match ferry_manifest::yaml::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            notes.push(format!("{file}: not read as YAML or JSON ({e})"));
            return None;
        }
    };
    let Some(Value::Mapping(services)) = doc.get("services") else {
        notes.push(format!(
            "{file}: no `services` mapping; nothing read from it"
        ));
        return None;
    };
    let text_of = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
    let mut entries = Vec::new();
    for (alias, def) in services {
        let Some(alias) = alias.as_str() else {
            continue;
        };
        let Some(path) = text_of(def.get("path")) else {
            notes.push(format!("{file}: service `{alias}` has no `path`; left out"));
            continue;
        };
        let depends_on = match def.get("dependsOn") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        };
        let params = match def.get("params") {
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect(),
            _ => Vec::new(),
        };
        entries.push(Entry {
            alias: alias.to_string(),
            path,
            depends_on,
            params,
            region: text_of(def.get("region")),
            config: text_of(def.get("config")),
            component: text_of(def.get("component")),
        });
    }
    // Read once: a team used to Compose would go on editing it and see nothing deploy.
    notes.push(format!(
        "{file}: read once, now: its dependsOn and params are in the service.toml files (`depends-on`, `[parameters]`); Ferry does not read it again, so change them there (or delete {file}, or keep it in step by hand)"
    ));
    Some(Compose {
        file: file.to_string(),
        entries,
        matched: BTreeMap::new(),
    })
}

/// `path` as a repository-relative folder, `/`-separated, without `./` or a trailing `/`.
fn folder(path: &str) -> Option<String> {
    ferry_manifest::normalize_relative(path.trim_end_matches('/'))
}

/// Leaves out each Serverless Framework service the Compose file does not list (a local-only
/// stack, `serverless-s3-local`'s, an example): the repository deploys the services it lists,
/// and Ferry would deploy the others to every stage, prod included. Noted. A Compose file that
/// lists none of the services found (unreadable, or out of date) leaves out none.
pub(crate) fn leave_out_unlisted(c: &Compose, services: &mut Vec<Found>, notes: &mut Vec<String>) {
    let listed: Vec<String> = c.entries.iter().filter_map(|e| folder(&e.path)).collect();
    if !services.iter().any(|s| listed.contains(&s.dir)) {
        return;
    }
    services.retain(|s| {
        if s.kind != ferry_manifest::ServiceKind::Serverless || listed.contains(&s.dir) {
            return true;
        }
        notes.push(format!(
            "{}: a Serverless Framework service that {} does not list, so the repository does not deploy it with the others: left out (give it a service.toml by hand if a stage is to have it)",
            s.dir, c.file
        ));
        false
    });
}

/// Names each service an entry points at after the entry's key (made valid, unless another
/// service has that name), and notes the entries Ferry cannot take.
pub(crate) fn names(c: &mut Compose, services: &mut [Found], notes: &mut Vec<String>) {
    let file = c.file.clone();
    for e in &c.entries {
        if let Some(component) = &e.component {
            notes.push(format!(
                "{file}: service `{}` is a `{component}` component, not a Serverless Framework service: left to you",
                e.alias
            ));
            continue;
        }
        let Some(i) = folder(&e.path).and_then(|dir| services.iter().position(|s| s.dir == dir))
        else {
            notes.push(format!(
                "{file}: service `{}` names path `{}`, where no Serverless Framework configuration was found: left out",
                e.alias, e.path
            ));
            continue;
        };
        if let Some(config) = &e.config {
            notes.push(format!(
                "{file}: service `{}` reads its configuration from `{config}`; Ferry reads serverless.yml (or .yaml, .json) in {}: rename it there",
                e.alias, services[i].dir
            ));
        }
        let name = crate::valid_name(&e.alias);
        let taken = services
            .iter()
            .enumerate()
            .any(|(j, s)| j != i && s.name == name);
        if taken {
            notes.push(format!(
                "{file}: service `{}` is named `{}` here, since another service is `{name}`",
                e.alias, services[i].name
            ));
        } else {
            services[i].name = name;
        }
        c.matched.insert(e.alias.clone(), i);
    }
}

/// Adds each matched entry's `dependsOn` and output references to its service's `depends_on`,
/// its `params` to its `parameters`, and its `region`.
pub(crate) fn links(c: &Compose, services: &mut [Found], notes: &mut Vec<String>) {
    let file = &c.file;
    let ferry_name =
        |alias: &str, services: &[Found]| c.matched.get(alias).map(|&j| services[j].name.clone());
    for e in &c.entries {
        let Some(&i) = c.matched.get(&e.alias) else {
            continue;
        };
        let mut deps = BTreeMap::new();
        for d in &e.depends_on {
            match ferry_name(d, services) {
                Some(n) if n != services[i].name => {
                    deps.insert(n, format!("{file}: dependsOn `{d}`"));
                }
                Some(_) => {}
                None => notes.push(format!(
                    "{file}: service `{}` depends on `{d}`, which is no service Ferry found: left out of depends-on",
                    e.alias
                )),
            }
        }
        let mut parameters = BTreeMap::new();
        for (key, value) in &e.params {
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
            if key.is_empty() || !key.chars().all(valid) {
                notes.push(format!(
                    "{file}: service `{}` passes param `{key}`, and Ferry's parameter names hold only letters, digits, `-` and `_`: left out of its [parameters]; rename it (here and in its ${{param:…}})",
                    e.alias
                ));
                continue;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    notes.push(format!(
                        "{file}: service `{}` passes param `{key}` as a list or mapping, and Ferry passes strings: left out of its [parameters]",
                        e.alias
                    ));
                    continue;
                }
            };
            // A secret is never copied nor shown (a variable holding one, `${env:DB_PASSWORD}`,
            // is no value; `pw-${sls:stage}` holds one).
            if crate::secrets::looks_secret(key, &text) && !crate::secrets::only_variable(&text)
                || crate::secrets::secret_value(&text)
            {
                notes.push(format!(
                    "{file}: service `{}` passes param `{key}`, a secret (by its name or its value's form): not copied; keep it in SSM (`param set <stage> <name> --secure`) and give {key} = \"${{ssm:<name>}}\" in its service.toml",
                    e.alias
                ));
                continue;
            }
            match translate(&text, &|alias| ferry_name(alias, services)) {
                Ok((value, used)) => {
                    for (dep, output) in used {
                        if dep != services[i].name {
                            deps.entry(dep.clone()).or_insert(format!(
                                "{file}: params.{key} reads output `{output}` of `{dep}`"
                            ));
                        }
                    }
                    parameters.insert(key.clone(), (value, format!("{file}: params.{key}")));
                }
                Err(why) => notes.push(format!(
                    "{file}: service `{}` passes param `{key}` = `{text}`, which {why}: left out of its [parameters]; give it a value there",
                    e.alias
                )),
            }
        }
        let s = &mut services[i];
        for (d, why) in deps {
            s.depends_on.entry(d).or_insert(why);
        }
        s.parameters.extend(parameters);
        if s.region.is_none() {
            s.region = e
                .region
                .clone()
                .filter(|r| ferry_manifest::is_region_name(r));
        }
    }
}

/// A Compose value in Ferry's syntax: `${sls:stage}` → `${stage}`, `${<service>.<Output>}` →
/// `${output:<name>.<Output>}` (`name_of` gives a Compose service's Ferry name), `${` of any
/// other text kept literal (`$${`). Returns it with the `(service, output)` pairs it reads, or
/// why it cannot be translated.
fn translate(
    value: &str,
    name_of: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<(String, String)>), String> {
    let mut out = String::new();
    let mut used = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        // Compose's own pattern: `${` word characters, an optional `:`, then `[\w.-]+` `}`.
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-:".contains(c)))
            .filter(|&e| after[e..].starts_with('}'));
        let Some(end) = end.filter(|&e| e > 0) else {
            out.push_str("$${");
            rest = after;
            continue;
        };
        let inner = &after[..end];
        match inner.split_once(':') {
            Some(("sls", "stage")) => out.push_str("${stage}"),
            Some(("env", var)) => {
                return Err(format!(
                    "reads environment variable `{var}` when Compose runs"
                ));
            }
            Some((source, _)) => return Err(format!("uses variable source `{source}`")),
            None => {
                let Some((alias, output)) = inner.split_once('.') else {
                    return Err(format!("uses `${{{inner}}}`, which is no service's output"));
                };
                if output.contains('.') {
                    return Err(format!(
                        "reads a nested value `{output}` of `{alias}`'s outputs"
                    ));
                }
                let name = name_of(alias).ok_or_else(|| {
                    format!("reads outputs of `{alias}`, which is no service Ferry found")
                })?;
                out.push_str(&format!("${{output:{name}.{output}}}"));
                used.push((name, output.to_string()));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_values_become_ferry_templates() {
        let name_of = |a: &str| (a == "service-a").then(|| "service-a".to_string());
        let t = |v: &str| translate(v, &name_of);
        assert_eq!(
            t("${service-a.queueUrl}").unwrap(),
            (
                "${output:service-a.queueUrl}".to_string(),
                vec![("service-a".to_string(), "queueUrl".to_string())]
            )
        );
        assert_eq!(
            t("app-${sls:stage}-x").unwrap().0,
            "app-${stage}-x",
            "the stage"
        );
        assert_eq!(t("cost: ${ 5 }").unwrap().0, "cost: $${ 5 }", "literal");
        assert!(
            t("${env:TOKEN}")
                .unwrap_err()
                .contains("environment variable `TOKEN`")
        );
        assert!(t("${ssm:x}").unwrap_err().contains("source `ssm`"));
        // Not Compose's pattern (a `/`): Compose passes it on as written, and so does Ferry.
        assert_eq!(t("${ssm:/x}").unwrap().0, "$${ssm:/x}");
        assert!(t("${other.url}").unwrap_err().contains("`other`"));
        assert!(t("${service-a.a.b}").unwrap_err().contains("nested"));
    }
}
