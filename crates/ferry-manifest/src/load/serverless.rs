//! A Serverless Framework service (`kind = "serverless"`): which configuration file it has, and
//! the stack name the framework gives it (`<service>-<stage>`, or `provider.stackName`), so
//! that a stack first deployed by `serverless deploy` is the one Ferry updates.

use std::ops::Range;
use std::path::PathBuf;

use crate::diag::{Diagnostic, FileDiags};
use crate::source::Source;

/// The configuration files Ferry reads, in the framework's own order of preference.
pub(super) const CONFIG_FILES: &[&str] = &["serverless.yml", "serverless.yaml", "serverless.json"];
/// Configurations that are programs: the stack name cannot be read without running them.
const PROGRAM_CONFIGS: &[&str] = &[
    "serverless.ts",
    "serverless.js",
    "serverless.cjs",
    "serverless.mjs",
];

/// What Ferry needs of a framework configuration before the framework runs.
pub(super) struct Framework {
    /// The configuration file, relative to the service folder.
    pub config: String,
    /// The stack name pattern, `{stage}` standing for the stage id.
    pub stack_name: String,
}

/// Finds and reads the configuration of the service folder `dir`. `stack_name` is the
/// manifest's `service.stack-name` (with its span), which wins over what the configuration says.
pub(super) fn read_framework(
    fd: &mut FileDiags<'_>,
    diags_of_config: &mut Vec<Diagnostic>,
    source: &dyn Source,
    dir: &str,
    service_span: Range<usize>,
    stack_name: Option<(String, Range<usize>)>,
) -> Option<Framework> {
    let Some(config) = CONFIG_FILES
        .iter()
        .find(|f| source.is_file(&format!("{dir}/{f}")))
    else {
        let program = PROGRAM_CONFIGS
            .iter()
            .find(|f| source.is_file(&format!("{dir}/{f}")));
        if let (Some(p), Some((pattern, _))) = (program, &stack_name) {
            return Some(Framework {
                config: p.to_string(),
                stack_name: pattern.clone(),
            });
        }
        let message = match program {
            Some(p) => format!(
                "`{dir}/{p}` is a program, and Ferry reads the stack name from serverless.yml, .yaml or .json before the framework runs: set service.stack-name (e.g. \"my-service-{{stage}}\") to name the stack"
            ),
            None => format!(
                "kind = \"serverless\" needs the framework's configuration in the service folder, and `{dir}` has no serverless.yml (nor .yaml, .json)"
            ),
        };
        fd.error(Some(service_span), Some("service.kind"), message);
        return None;
    };
    if let Some((pattern, span)) = stack_name {
        super::checks::check_own_stack_pattern(fd, &pattern, &span);
        return Some(Framework {
            config: config.to_string(),
            stack_name: pattern,
        });
    }
    let path = format!("{dir}/{config}");
    let file = PathBuf::from(&path);
    let text = match source.read(&path) {
        Ok(t) => t,
        Err(e) => {
            diags_of_config.push(Diagnostic {
                file,
                line: None,
                key: None,
                message: format!("cannot read: {e}"),
            });
            return None;
        }
    };
    // The framework's YAML reader skips a byte-order mark; so does this one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if let Some(line) = crate::yaml::flow_too_deep(text, crate::yaml::MAX_FLOW_DEPTH) {
        diags_of_config.push(Diagnostic {
            file,
            line: Some(line),
            key: None,
            message: format!(
                "its flow collections ([…], {{…}}) nest deeper than {} levels; no configuration needs that many",
                crate::yaml::MAX_FLOW_DEPTH
            ),
        });
        return None;
    }
    let doc: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            diags_of_config.push(Diagnostic {
                file,
                line: e.location().map(|l| l.line()),
                key: None,
                message: format!(
                    "not valid YAML: {}; the framework could not read it either",
                    crate::yaml::error_text(&e)
                ),
            });
            return None;
        }
    };
    match stack_name_in(&doc) {
        Ok(pattern) => Some(Framework {
            config: config.to_string(),
            stack_name: pattern,
        }),
        Err((key, message)) => {
            diags_of_config.push(Diagnostic {
                file,
                line: None,
                key: Some(key.to_string()),
                message,
            });
            None
        }
    }
}

/// The stack name the framework gives the service a `serverless.yml` (or `.yaml`, `.json`)
/// configures, `{stage}` standing for the stage: `Err` with why when Ferry cannot read it
/// before the framework runs (a variable only the framework's run resolves, no `service`).
pub fn serverless_stack_name(config: &str) -> Result<String, String> {
    let doc: serde_yaml_ng::Value =
        crate::yaml::from_str(config).map_err(|e| format!("not valid YAML: {e}"))?;
    stack_name_in(&doc).map_err(|(key, message)| format!("{key}: {message}"))
}

/// [`serverless_stack_name`] of a parsed configuration; `Err((key, why))`.
fn stack_name_in(doc: &serde_yaml_ng::Value) -> Result<String, (&'static str, String)> {
    let service = match doc.get("service") {
        Some(serde_yaml_ng::Value::String(s)) => Some(s.clone()),
        Some(serde_yaml_ng::Value::Mapping(m)) => {
            m.get("name").and_then(|n| n.as_str()).map(String::from)
        }
        _ => None,
    };
    let named = doc
        .get("provider")
        .and_then(|p| p.get("stackName"))
        .and_then(|n| n.as_str());
    let (key, raw) = match (named, service) {
        (Some(n), _) => ("provider.stackName", n.to_string()),
        (None, Some(s)) => ("service", format!("{s}-${{sls:stage}}")),
        (None, None) => {
            return Err((
                "service",
                "missing: the framework names the stack `<service>-<stage>`; add `service: <name>`"
                    .into(),
            ));
        }
    };
    match stage_pattern(&raw, doc) {
        Some(pattern) => Ok(pattern),
        None => Err((
            key,
            format!(
                "`{raw}` holds variables Ferry cannot resolve before the framework runs (only the stage: ${{sls:stage}}, ${{opt:stage}}, ${{self:provider.stage}}; and ${{self:…}} of a value in the same file); set service.stack-name in service.toml to the stack name, with {{stage}} for the stage"
            ),
        )),
    }
}

/// `raw` with every reference to the stage as `{stage}`, and every `${self:a.b}` replaced by
/// the value at `a.b` of the configuration `doc` (itself resolved the same way; a default,
/// `${self:a.b, 'x'}`, when there is none), as the framework resolves them; `None` when another
/// variable remains (the environment, a file, another service's output: known only when the
/// framework runs).
fn stage_pattern(raw: &str, doc: &serde_yaml_ng::Value) -> Option<String> {
    expand(raw, doc, 0, false)
}

/// An SSM parameter a Serverless Framework configuration reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsmRead {
    /// Its name, `{stage}` and `{region}` standing for the stage id and region the framework is
    /// given (see [`ServerlessConfig::ssm_names`]).
    pub name: String,
    /// Whether the framework reads its value decrypted (not `${ssm(noDecrypt):…}`): a
    /// SecureString's value is then what the compiled template holds.
    pub decrypt: bool,
    /// The region it is read from when not the stage's (`${ssm(eu-west-1):…}`).
    pub region: Option<String>,
}

/// A Serverless Framework configuration, parsed once, for what Ferry resolves in it and the
/// files it includes as the framework does: `${self:…}` of it, the stage and the region
/// (`{stage}`, `{region}`). A configuration written as a program has nothing to resolve.
pub struct ServerlessConfig {
    doc: serde_yaml_ng::Value,
}

impl ServerlessConfig {
    /// The configuration whose text is `config`.
    pub fn parse(config: &str) -> Self {
        ServerlessConfig {
            doc: crate::yaml::from_str(config).unwrap_or(serde_yaml_ng::Value::Null),
        }
    }

    /// The SSM parameters `text` (the configuration's, or a file's it includes) reads
    /// (`${ssm:/shop/${sls:stage}/db-password}`, also as a fallback, `${ssm(noDecrypt):…}`,
    /// `${ssm(raw):…}`, from another region `${ssm(eu-west-1):…}`, the older `${ssm:/a~true}`):
    /// `Err` with what is written where another variable remains (an environment variable, a
    /// file) or an option is none the framework knows.
    pub fn ssm_names(&self, text: &str) -> Vec<Result<SsmRead, String>> {
        let mut out: Vec<Result<SsmRead, String>> = Vec::new();
        for source in serverless_variable_sources(text) {
            let (options, name) = if let Some(rest) = source.strip_prefix("ssm(") {
                match rest.split_once("):") {
                    Some((options, name)) => (options, name),
                    None => continue,
                }
            } else if let Some(name) = source.strip_prefix("ssm:") {
                ("", name)
            } else {
                continue;
            };
            let name = name.trim();
            let name = name
                .strip_suffix("~true")
                .or_else(|| name.strip_suffix("~false"))
                .or_else(|| name.strip_suffix("~split"))
                .unwrap_or(name);
            if name.is_empty() {
                continue;
            }
            let options: Vec<&str> = options.split(',').map(str::trim).collect();
            // The framework takes any other option for the region to read from.
            let regions: Vec<&str> = options
                .iter()
                .copied()
                .filter(|o| !o.is_empty() && !matches!(*o, "noDecrypt" | "raw"))
                .collect();
            let found = match regions[..] {
                [] => Ok(None),
                [region] if crate::is_region_name(region) => Ok(Some(region.to_string())),
                _ => Err(source.to_string()),
            }
            .and_then(|region| {
                self.pattern(name)
                    .map(|name| SsmRead {
                        name,
                        decrypt: !options.contains(&"noDecrypt"),
                        region,
                    })
                    .ok_or_else(|| name.to_string())
            });
            if !out.contains(&found) {
                out.push(found);
            }
        }
        out
    }

    /// `raw` (a name or path in the configuration) with its variables resolved as
    /// [`ServerlessConfig::ssm_names`] resolves a parameter's name, `{stage}` and `{region}`
    /// standing for the stage id and region; `None` when another variable remains.
    pub fn pattern(&self, raw: &str) -> Option<String> {
        expand(raw, &self.doc, 0, true)
    }
}

/// How deep `${self:…}` values that hold references are followed (a loop ends here).
const MAX_SELF_DEPTH: usize = 10;

/// `raw` as [`stage_pattern`] says; with `region`, the region the framework is given
/// (`${aws:region}`, `${opt:region}`) as `{region}` too.
fn expand(raw: &str, doc: &serde_yaml_ng::Value, depth: usize, region: bool) -> Option<String> {
    if depth > MAX_SELF_DEPTH {
        return None;
    }
    let mut out = String::new();
    let mut rest = raw;
    while let Some(open) = rest.find("${") {
        out.push_str(&rest[..open]);
        let tail = &rest[open + 2..];
        let close = tail.find('}')?;
        let var = tail[..close].trim();
        let mut parts = var.splitn(2, ',');
        let first = parts.next().unwrap_or_default().trim();
        if matches!(first, "sls:stage" | "opt:stage" | "self:provider.stage") {
            out.push_str("{stage}");
        } else if region && matches!(first, "aws:region" | "opt:region") {
            out.push_str("{region}");
        } else {
            let path = first.strip_prefix("self:")?;
            let value = match lookup(doc, path) {
                Some(v) => expand(&v, doc, depth + 1, region)?,
                None => quoted(parts.next()?.trim())?.to_string(),
            };
            out.push_str(&value);
        }
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// A name written with Serverless Framework variables (`orders-${sls:stage}`) as a pattern of
/// what it may be, each variable a `*` (`orders-*`, for `ferry_ci::glob_match`), when at least
/// `letters` letters or digits are left to tell names apart.
pub fn serverless_name_pattern(name: &str, letters: usize) -> Option<String> {
    let out = serverless_variables_replaced(name, '*');
    (out.chars().filter(char::is_ascii_alphanumeric).count() >= letters).then_some(out)
}

/// `text` with each Serverless Framework variable in it (`${sls:stage}`, a nested one whole)
/// written as `with`: `DB_PASSWORD_${sls:stage}` as `DB_PASSWORD__` or `DB_PASSWORD_*`.
pub fn serverless_variables_replaced(text: &str, with: char) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek() == Some(&'{') {
            chars.next();
            if depth == 0 {
                out.push(with);
            }
            depth += 1;
        } else if c == '}' && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// The environment variable a Serverless Framework variable source reads (`env:NAME`, one of
/// [`serverless_variable_sources`]), as written, when its name says it holds a secret
/// ([`ferry_env::names_a_secret`]): `CLIENT_SECRET`, or a name built with variables,
/// `DB_PASSWORD_${sls:stage}`, judged by its written parts.
pub fn secret_env_source(source: &str) -> Option<String> {
    let rest = source.strip_prefix("env:")?.trim();
    let name: String = if rest.contains("${") {
        let written = serverless_variables_replaced(rest, '_');
        if !written
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return None;
        }
        rest.to_string()
    } else {
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    ferry_env::names_a_secret(&serverless_variables_replaced(&name, '_')).then_some(name)
}

/// Every source a Serverless Framework configuration's variables name, as written: for each
/// `${…}` in `text` (nested ones too), each of its comma-separated alternatives, trimmed
/// (`${env:KEY, ssm:/a/${sls:stage}/b, 'x'}` gives `env:KEY`, `ssm:/a/${sls:stage}/b`, `'x'`,
/// then `sls:stage`). A source read only as a fallback is still a source the configuration
/// may read.
/// The path a `file(…)` source of [`serverless_variable_sources`] names, as written, unquoted
/// (`file(./config.yml):key` gives `./config.yml`; possibly empty); `None` for any other source.
pub fn serverless_file_source(source: &str) -> Option<&str> {
    let (path, _) = source.strip_prefix("file(")?.split_once(')')?;
    Some(path.trim().trim_matches(['"', '\'']).trim())
}

pub fn serverless_variable_sources(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("${").map(|i| from + i) {
        let inner = at + 2;
        from = inner;
        // The variable's extent and its top-level commas; not those between a source's
        // parentheses (`ssm(eu-west-1, noDecrypt):/a`) or in a quoted fallback (`'a, b :('`).
        let (mut depth, mut i, mut start, mut parens) = (1usize, inner, inner, 0usize);
        let mut quote: Option<u8> = None;
        while i < bytes.len() && depth > 0 {
            if let Some(q) = quote {
                if bytes[i] == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
                depth += 1;
                i += 2;
                continue;
            }
            match bytes[i] {
                b'}' => depth -= 1,
                b'\'' | b'"' if depth == 1 && text[start..i].trim().is_empty() => {
                    quote = Some(bytes[i]);
                }
                b'(' if depth == 1 => parens += 1,
                b')' if depth == 1 => parens = parens.saturating_sub(1),
                b',' if depth == 1 && parens == 0 => {
                    out.push(text[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        if depth == 0 {
            out.push(text[start..i - 1].trim());
        }
    }
    out
}

/// The text of the string or number at the dotted `path` of `doc`.
fn lookup(doc: &serde_yaml_ng::Value, path: &str) -> Option<String> {
    let mut at = doc;
    for key in path.split('.') {
        at = at.get(key)?;
    }
    match at {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A default given as a quoted literal (`'dev'`, `"dev"`).
fn quoted(text: &str) -> Option<&str> {
    ["'", "\""]
        .iter()
        .find_map(|q| text.strip_prefix(q)?.strip_suffix(q))
        .filter(|t| !t.contains(['$', '{', '}']))
}

#[cfg(test)]
mod tests {
    use super::{ServerlessConfig, SsmRead, serverless_variable_sources, stage_pattern};

    /// The SSM names a configuration reads, with the stage and region as the framework is given
    /// them and `${self:…}` of the configuration resolved; a name with another variable in it is
    /// returned as written.
    #[test]
    fn ssm_names_a_configuration_reads() {
        let config = "service: shop\nprovider:\n  stage: ${opt:stage, 'dev'}\n  region: ${opt:region, 'us-east-1'}\ncustom:\n  root: /${self:service}\nenvironment:\n  A: ${ssm:/configuration/${sls:stage}/okta_client_secret}\n  B: ${env:X, ssm:${self:custom.root}/${self:provider.stage}/db}\n  C: ${ssm(noDecrypt):/plain/${aws:region}/x}\n  D: ${ssm:/old/${opt:stage}/key~true}\n  E: ${ssm:/from/${env:TEAM}/x}\n  F: ${ssm:/configuration/${sls:stage}/okta_client_secret}\n  G: ${ssm:}\n  H: ${ssm(eu-west-1):/elsewhere}\n  I: ${ssm(raw):/raw/${sls:stage}}\n  J: ${ssm(eu-west-1, noDecrypt):/far/${sls:stage}}\n  K: ${ssm(raw, eu-west-1):/aws/reference/secretsmanager/k}\n  L: ${ssm(us-east-1, eu-west-1):/two}\n  M: ${ssm(${env:R}):/r}\n";
        let read = |name: &str, decrypt: bool| {
            Ok(SsmRead {
                name: name.to_string(),
                decrypt,
                region: None,
            })
        };
        let far = |name: &str, decrypt: bool| {
            Ok(SsmRead {
                name: name.to_string(),
                decrypt,
                region: Some("eu-west-1".to_string()),
            })
        };
        assert_eq!(
            ServerlessConfig::parse(config).ssm_names(config),
            [
                read("/configuration/{stage}/okta_client_secret", true),
                read("/shop/{stage}/db", true),
                read("/plain/{region}/x", false),
                read("/old/{stage}/key", true),
                Err("/from/${env:TEAM}/x".to_string()),
                far("/elsewhere", true),
                read("/raw/{stage}", true),
                far("/far/{stage}", false),
                far("/aws/reference/secretsmanager/k", true),
                Err("ssm(us-east-1, eu-west-1):/two".to_string()),
                Err("ssm(${env:R}):/r".to_string()),
            ]
        );
        // An included file's `${self:…}` is the including configuration's; a program's text is
        // read for what it names without one.
        assert_eq!(
            ServerlessConfig::parse(config).ssm_names("x: ${ssm:${self:custom.root}/k}"),
            [read("/shop/k", true)]
        );
        assert_eq!(
            ServerlessConfig::parse("const c = {};").ssm_names(
                "const c = { key: '${ssm:/a/${sls:stage}/k}', o: '${ssm:${self:custom.r}}' };"
            ),
            [
                read("/a/{stage}/k", true),
                Err("${self:custom.r}".to_string())
            ]
        );
        assert_eq!(
            ServerlessConfig::parse("")
                .pattern("./env.${opt:stage, 'dev'}.yml")
                .as_deref(),
            Some("./env.{stage}.yml")
        );
    }

    #[test]
    fn every_alternative_of_every_variable_is_a_source() {
        assert_eq!(
            serverless_variable_sources(
                "a: ${env:KEY, ssm:/a/${sls:stage}/b, 'x'}\nb: ${cf(eu-west-1):s.O}\nd: ${ssm(eu-west-1, noDecrypt):/x, 'y'}\ne: ${self:x, 'smile :(, or not', ssm:/secret}\nc: ${unclosed"
            ),
            [
                "env:KEY",
                "ssm:/a/${sls:stage}/b",
                "'x'",
                "sls:stage",
                "cf(eu-west-1):s.O",
                "ssm(eu-west-1, noDecrypt):/x",
                "'y'",
                "self:x",
                "'smile :(, or not'",
                "ssm:/secret"
            ]
        );
    }

    fn doc(yaml: &str) -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn stage_variables_become_the_stage_placeholder_and_others_are_refused() {
        let none = doc("{}");
        let pattern = |raw: &str| stage_pattern(raw, &none);
        assert_eq!(
            pattern("orders-${sls:stage}").as_deref(),
            Some("orders-{stage}")
        );
        assert_eq!(
            pattern("x-${opt:stage, 'dev'}-${self:provider.stage}").as_deref(),
            Some("x-{stage}-{stage}")
        );
        assert_eq!(pattern("plain").as_deref(), Some("plain"));
        assert_eq!(pattern("x-${env:TEAM}-${sls:stage}"), None);
        assert_eq!(pattern("x-${sls:stage"), None);
    }

    #[test]
    fn self_references_resolve_to_values_of_the_same_file() {
        // As in aws-samples/serverless-patterns: `service: sls-${self:custom.name}-sfp`.
        let d = doc(
            "service: sls-${self:custom.name}-sfp\ncustom:\n  name: bb245\n  team: ${self:custom.name}-${sls:stage}\n  version: 2\n  env: ${env:TEAM}\n  loop: ${self:custom.again}\n  again: ${self:custom.loop}\n  list: [a]\n",
        );
        let pattern = |raw: &str| stage_pattern(raw, &d);
        assert_eq!(
            pattern("sls-${self:custom.name}-sfp-${sls:stage}").as_deref(),
            Some("sls-bb245-sfp-{stage}")
        );
        assert_eq!(
            pattern("${self:service}-${sls:stage}").as_deref(),
            Some("sls-bb245-sfp-{stage}"),
            "a value that holds references is resolved in turn"
        );
        assert_eq!(
            pattern("${self:custom.team}-v${self:custom.version}").as_deref(),
            Some("bb245-{stage}-v2")
        );
        assert_eq!(
            pattern("x-${self:custom.missing, 'fallback'}").as_deref(),
            Some("x-fallback")
        );
        // What only the framework's run knows, or nothing knows, is refused.
        assert_eq!(pattern("x-${self:custom.env}"), None, "the environment");
        assert_eq!(pattern("x-${self:custom.loop}"), None, "a loop ends");
        assert_eq!(pattern("x-${self:custom.list}"), None, "not a text");
        assert_eq!(pattern("x-${self:custom.missing}"), None, "no such value");
        assert_eq!(pattern("x-${self:custom.missing, env:X}"), None);
    }
}

/// Which Serverless Framework CLI a service's `frameworkVersion` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameworkCli {
    /// `osls` at version 4, the open-source CLI that needs no account: what no
    /// `frameworkVersion`, "4", or any range that takes version 4 asks for.
    Osls,
    /// A CLI at version 3 (`osls@3`, or the Serverless Framework 3): a `frameworkVersion` whose
    /// range takes a 3.x and no 4.x ("3", "^3.0.0", "~3.38", ">=1.0.0 <4.0.0"), which osls 4
    /// refuses.
    V3,
    /// Only a version before 3 (a `frameworkVersion` of "2", ">=1.2.0 <2.0.0"), which neither
    /// osls 4 nor a CLI at version 3 runs: the configuration needs upgrading to version 3.
    Before3,
}

/// The version of osls a range must take for osls 4 to run it.
const OSLS_4: semver::Version = semver::Version::new(4, 3, 1);

impl FrameworkCli {
    /// Whether the `package.json` at `path` names a framework CLI (`serverless` or `osls`)
    /// among its `dependencies` or `devDependencies`; false when it is missing or unreadable.
    pub fn named_in(path: &std::path::Path) -> bool {
        std::fs::read(path)
            .ok()
            .is_some_and(|b| Self::named_in_text(&b))
    }

    /// [`named_in`](Self::named_in) of a `package.json`'s bytes.
    pub fn named_in_text(bytes: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .is_some_and(|p| {
                ["dependencies", "devDependencies"].iter().any(|k| {
                    p[k].as_object()
                        .is_some_and(|d| d.contains_key("serverless") || d.contains_key("osls"))
                })
            })
    }

    /// What `frameworkVersion` (as written, an npm range, or `None`) takes. A range Ferry
    /// cannot read is taken as osls's.
    pub fn of_version(version: Option<&str>) -> FrameworkCli {
        let Some(v) = version.map(|v| v.trim().trim_matches(['"', '\'', ',']).trim()) else {
            return FrameworkCli::Osls;
        };
        let ranges: Vec<semver::VersionReq> = v.split("||").filter_map(npm_range).collect();
        let takes = |version: &semver::Version| ranges.iter().any(|r| r.matches(version));
        // Versions a range may take: some of each major, and the ones its comparators name
        // (`~2.50.0` takes none of the others).
        let named: Vec<semver::Version> = ranges
            .iter()
            .flat_map(|r| &r.comparators)
            .map(|c| semver::Version::new(c.major, c.minor.unwrap_or(0), c.patch.unwrap_or(0)))
            .collect();
        let takes_of = |major: std::ops::Range<u64>, samples: &[(u64, u64, u64)]| {
            samples
                .iter()
                .map(|&(a, b, c)| semver::Version::new(a, b, c))
                .chain(named.iter().cloned())
                .any(|v| major.contains(&v.major) && takes(&v))
        };
        let some_3 = takes_of(3..4, &[(3, 0, 0), (3, 38, 0), (3, 77, 1)]);
        let before_3 = takes_of(0..3, &[(1, 0, 0), (1, 83, 3), (2, 0, 0), (2, 72, 3)]);
        match (some_3, takes(&OSLS_4)) {
            (true, false) => FrameworkCli::V3,
            (false, false) if before_3 => FrameworkCli::Before3,
            _ => FrameworkCli::Osls,
        }
    }

    /// The `frameworkVersion` of a framework configuration (`serverless.yml`, also a
    /// `serverless.ts`, `.js` or `.json` that writes it as a literal), else `FrameworkCli::Osls`.
    pub fn of_config(text: &str) -> FrameworkCli {
        let version = text.lines().find_map(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix("frameworkVersion")
                .or_else(|| l.strip_prefix("\"frameworkVersion\""))
                .or_else(|| l.strip_prefix("'frameworkVersion'"))?;
            let value = rest.trim_start().strip_prefix(':')?;
            Some(
                value
                    .split(" #")
                    .next()
                    .unwrap_or_default()
                    .split(" //")
                    .next()
                    .unwrap_or_default(),
            )
        });
        FrameworkCli::of_version(version)
    }
}

/// One npm range without `||` (`>= 3.0.0 < 4`, `3.x`, `1.2.3 - 3.9`) as a semver requirement;
/// `None` if it is not one.
fn npm_range(range: &str) -> Option<semver::VersionReq> {
    let range = range.trim();
    if range.is_empty() {
        return semver::VersionReq::parse("*").ok();
    }
    let text = match range.split_once(" - ") {
        Some((low, high)) => format!(">={}, <={}", low.trim(), high.trim()),
        None => {
            // Comparators are separated by spaces, and an operator may stand apart from its
            // version (`>= 3.0.0`).
            let mut parts: Vec<String> = Vec::new();
            let mut pending = String::new();
            for token in range.split_whitespace() {
                if token
                    .chars()
                    .all(|c| matches!(c, '<' | '>' | '=' | '^' | '~'))
                {
                    pending.push_str(token);
                } else {
                    parts.push(format!("{pending}{token}"));
                    pending.clear();
                }
            }
            parts.join(", ")
        }
    };
    semver::VersionReq::parse(&text.replace(['x', 'X'], "*")).ok()
}

#[cfg(test)]
mod framework_tests {
    use super::FrameworkCli;

    #[test]
    fn a_framework_version_taking_3_and_not_4_wants_version_3_and_any_other_osls() {
        for v in [
            "3",
            "'3'",
            "\"^3\"",
            "^3.0.0",
            "~3.38",
            "~3.20.0",
            "3.38.0",
            "3.x",
            "'>=3 <4'",
            ">=1.0.0 <4.0.0",
            ">= 3.0.0 < 4.0.0",
            "<4",
            "^2.0.0 || ^3.0.0",
            "3.0.0 - 3.99",
            "=3",
            "'3',",
        ] {
            assert_eq!(FrameworkCli::of_version(Some(v)), FrameworkCli::V3, "{v}");
        }
        for v in [
            "4",
            "\"^4\"",
            ">=3",
            "30",
            "'>=2.0.0'",
            "*",
            "^3.0.0 || ^4.0.0",
            "3.x || 4.x",
            ">=4.0.0 <4.5",
            "not a range",
        ] {
            assert_eq!(FrameworkCli::of_version(Some(v)), FrameworkCli::Osls, "{v}");
        }
        assert_eq!(FrameworkCli::of_version(None), FrameworkCli::Osls);
        // Only versions no CLI Ferry runs takes (a probe's repositories of version 2, to which
        // Ferry said to install osls, which refused them).
        for v in [
            "2",
            "'2'",
            ">=1.2.0 <2.0.0",
            "^2.70.0",
            "1.x",
            "~2.50.0",
            "=2.50.0",
            "2.50.x",
            "~1.60",
        ] {
            assert_eq!(
                FrameworkCli::of_version(Some(v)),
                FrameworkCli::Before3,
                "{v}"
            );
        }
        assert_eq!(
            FrameworkCli::of_config(
                "service: a\nframeworkVersion: '3' # pinned\nprovider:\n  name: aws\n"
            ),
            FrameworkCli::V3
        );
        // A program's literal, and JSON.
        assert_eq!(
            FrameworkCli::of_config(
                "const c = {\n  service: 'a',\n  frameworkVersion: '3',\n};\nexport = c;\n"
            ),
            FrameworkCli::V3
        );
        assert_eq!(
            FrameworkCli::of_config("{\n  \"service\": \"a\",\n  \"frameworkVersion\": \"3\"\n}\n"),
            FrameworkCli::V3
        );
        assert_eq!(
            FrameworkCli::of_config("service: a\nprovider:\n  name: aws\n"),
            FrameworkCli::Osls
        );
    }
}
