//! SAM's configuration files, which `sam deploy` takes its stack name, region and
//! `parameter_overrides` from: `samconfig.toml` (else `samconfig.yaml`, else `samconfig.yml`, as
//! the SAM CLI looks for them) in the folder it runs in, or the file a script's `sam deploy
//! --config-file` names. Each holds environments (`[default]`, `[prod]`), each a table of
//! commands (`deploy`, `global`) with their `parameters`; TOML and YAML alike are read into
//! [`Env`], in the file's order.

use std::path::Path;

use toml::de::DeTable;

/// The files the SAM CLI reads by default, in the order it looks for them.
const DEFAULT_FILES: [&str; 3] = ["samconfig.toml", "samconfig.yaml", "samconfig.yml"];

/// One environment of a SAM configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Env {
    pub name: String,
    /// Per command (`deploy`, `global`, …), its parameters, in the file's order.
    commands: Vec<(String, Vec<(String, Value)>)>,
}

/// A parameter's value, as far as init reads one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    /// A list of texts (`parameter_overrides = ["A=1", "B=2"]`); items of other kinds left out.
    List(Vec<String>),
    Other,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl Env {
    /// `key` of the parameters of the first of `commands` that gives it (`[dev.deploy.parameters]`,
    /// then `[dev.global.parameters]`).
    pub fn parameter(&self, commands: &[&str], key: &str) -> Option<&Value> {
        commands.iter().find_map(|command| {
            let (_, params) = self.commands.iter().find(|(c, _)| c == command)?;
            params.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        })
    }
}

/// A SAM configuration file found for a service: its path, repository-relative, and its
/// environments, or why it could not be read.
pub(crate) struct Found {
    pub path: String,
    pub envs: Result<Vec<Env>, String>,
}

/// The SAM configuration files a service's `sam deploy` reads: in each of `folders` (its own,
/// its template's), the one the SAM CLI reads by default there, then each file a deploy command
/// of its scripts names with `--config-file` (`config_files`, repository-relative), once each.
pub(crate) fn found(root: &Path, folders: &[String], config_files: &[String]) -> Vec<Found> {
    let mut paths: Vec<String> = Vec::new();
    for at in folders {
        let default = DEFAULT_FILES
            .iter()
            .map(|f| {
                if at.is_empty() {
                    f.to_string()
                } else {
                    format!("{at}/{f}")
                }
            })
            .find(|p| root.join(p).is_file());
        paths.extend(default);
    }
    for p in config_files {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    paths
        .into_iter()
        .filter_map(|path| {
            let text = crate::overrides::small_text(&root.join(&path))?;
            let envs = parse(&path, &text);
            Some(Found { path, envs })
        })
        .collect()
}

/// The environments of the SAM configuration `text`, YAML when `path` ends so, else TOML.
pub(crate) fn parse(path: &str, text: &str) -> Result<Vec<Env>, String> {
    if path.ends_with(".yaml") || path.ends_with(".yml") {
        return from_yaml(text);
    }
    let doc = DeTable::parse(text).map_err(|e| e.to_string())?;
    let value = |v: &toml::de::DeValue<'_>| match v {
        toml::de::DeValue::String(s) => Value::Text(s.to_string()),
        toml::de::DeValue::Array(items) => Value::List(
            items
                .iter()
                .filter_map(|i| i.get_ref().as_str().map(String::from))
                .collect(),
        ),
        _ => Value::Other,
    };
    Ok(doc
        .get_ref()
        .iter()
        .filter_map(|(name, env)| {
            let commands = env
                .get_ref()
                .as_table()?
                .iter()
                .filter_map(|(command, t)| {
                    let params = t.get_ref().as_table()?.get("parameters")?;
                    let params = params
                        .get_ref()
                        .as_table()?
                        .iter()
                        .map(|(k, v)| (k.get_ref().to_string(), value(v.get_ref())))
                        .collect();
                    Some((command.get_ref().to_string(), params))
                })
                .collect();
            Some(Env {
                name: name.get_ref().to_string(),
                commands,
            })
        })
        .collect())
}

fn from_yaml(text: &str) -> Result<Vec<Env>, String> {
    use serde_yaml_ng::Value as Y;
    // The project's guarded reader (a file of deeply nested `[` is refused, not parsed for a
    // minute); merge keys (`<<: *common`) applied, as the SAM CLI applies them.
    let mut doc: Y = ferry_manifest::yaml::from_str(text)?;
    doc.apply_merge().map_err(|e| e.to_string())?;
    let key = |k: &Y| k.as_str().map(String::from);
    let value = |v: &Y| match v {
        Y::String(s) => Value::Text(s.clone()),
        Y::Sequence(items) => Value::List(
            items
                .iter()
                .filter_map(|i| i.as_str().map(String::from))
                .collect(),
        ),
        _ => Value::Other,
    };
    let Some(envs) = doc.as_mapping() else {
        return match doc {
            Y::Null => Ok(Vec::new()),
            _ => Err("not a mapping of environments".to_string()),
        };
    };
    Ok(envs
        .iter()
        .filter_map(|(name, env)| {
            let commands = env
                .as_mapping()?
                .iter()
                .filter_map(|(command, t)| {
                    let params = t.as_mapping()?.get("parameters")?.as_mapping()?;
                    let params = params
                        .iter()
                        .filter_map(|(k, v)| Some((key(k)?, value(v))))
                        .collect();
                    Some((key(command)?, params))
                })
                .collect();
            Some(Env {
                name: key(name)?,
                commands,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same configuration as TOML and as YAML reads the same, in the file's order; the
    /// `version` key is no environment.
    #[test]
    fn toml_and_yaml_read_alike() {
        let toml = "version = 0.1\n[prod.deploy.parameters]\nstack_name = \"app-prod\"\nparameter_overrides = [\"A=1\", \"B=2\"]\n[default.global.parameters]\nregion = \"eu-west-1\"\n[default.deploy.parameters]\nconfirm_changeset = true\n";
        let yaml = "version: 0.1\nprod:\n  deploy:\n    parameters:\n      stack_name: app-prod\n      parameter_overrides:\n        - A=1\n        - B=2\ndefault:\n  global:\n    parameters:\n      region: eu-west-1\n  deploy:\n    parameters:\n      confirm_changeset: true\n";
        let t = parse("samconfig.toml", toml).unwrap();
        let y = parse("x/samconfig.yaml", yaml).unwrap();
        assert_eq!(t, y);
        let names: Vec<&str> = t.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["prod", "default"]);
        assert_eq!(
            t[0].parameter(&["deploy"], "parameter_overrides"),
            Some(&Value::List(vec!["A=1".into(), "B=2".into()]))
        );
        assert_eq!(
            t[1].parameter(&["deploy", "global"], "region")
                .and_then(Value::as_str),
            Some("eu-west-1")
        );
        assert_eq!(
            t[1].parameter(&["deploy"], "confirm_changeset"),
            Some(&Value::Other)
        );
        assert_eq!(t[1].parameter(&["deploy"], "region"), None);
    }

    /// YAML merge keys are applied, as the SAM CLI applies them.
    #[test]
    fn yaml_merge_keys_are_applied() {
        let yaml = "common: &common\n  region: eu-west-1\ndev:\n  deploy:\n    parameters:\n      <<: *common\n      stack_name: app-dev\n";
        let envs = parse("samconfig.yaml", yaml).unwrap();
        let dev = envs.iter().find(|e| e.name == "dev").unwrap();
        assert_eq!(
            dev.parameter(&["deploy"], "region").and_then(Value::as_str),
            Some("eu-west-1")
        );
    }

    #[test]
    fn hostile_files_are_errors_or_nothing() {
        assert!(parse("samconfig.toml", "[x\n").is_err());
        assert!(parse("samconfig.yaml", "a: [\n").is_err());
        assert!(parse("samconfig.yml", "- a\n- b\n").is_err());
        // Nested deeper than any real file: refused, not parsed at length.
        let deep = format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        assert!(parse("samconfig.yaml", &deep).is_err());
        assert_eq!(parse("samconfig.yml", "").unwrap(), Vec::new());
        // Environments and commands that are no tables, keys that are no text: passed over.
        let odd = "1: {deploy: {parameters: {stack_name: x}}}\nprod: 3\ndev:\n  deploy: [1]\n  global:\n    parameters:\n      2: y\n      region: [a]\n";
        let envs = parse("samconfig.yaml", odd).unwrap();
        let names: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["dev"]);
        assert_eq!(
            envs[0].parameter(&["global"], "region"),
            Some(&Value::List(vec!["a".into()]))
        );
        assert_eq!(envs[0].parameter(&["deploy"], "stack_name"), None);
    }
}
