//! What a Serverless Framework service's compiled template will hold, read from its
//! configuration without running the framework (bootstrap runs before anything is packaged, and
//! needs no Node): the resource types its functions' events make, and those its `resources:`
//! section declares. Both may sit in other files through `${file(…)}`, which is followed inside
//! the repository. What cannot be read this way (a configuration that is a program, a section
//! given by another variable, an event kind of a plugin) is said, so that the user adds it.

use std::collections::BTreeSet;
use std::path::Path;

use ferry_manifest::Service;
use serde_json::Value;

/// The resource types a Serverless service makes beyond those every compiled template holds,
/// and what could not be read.
#[derive(Debug, Default)]
pub(crate) struct Made {
    pub types: BTreeSet<String>,
    pub unread: Vec<String>,
}

/// Files followed through `${file(…)}`, at most, from one configuration: a limit for a cycle
/// or a hostile configuration.
const MAX_FILES: usize = 32;

/// The resource types the framework compiles an event of this kind into (in Serverless
/// Framework v3 and v4, with `Lambda::Permission` for those that invoke the function).
fn event_types(kind: &str, event: &Value) -> Option<&'static [&'static str]> {
    const PERMISSION: &str = "AWS::Lambda::Permission";
    Some(match kind {
        "http" => &[
            "AWS::ApiGateway::RestApi",
            "AWS::ApiGateway::Resource",
            "AWS::ApiGateway::Method",
            "AWS::ApiGateway::Deployment",
            PERMISSION,
        ],
        "httpApi" => &[
            "AWS::ApiGatewayV2::Api",
            "AWS::ApiGatewayV2::Stage",
            "AWS::ApiGatewayV2::Integration",
            "AWS::ApiGatewayV2::Route",
            PERMISSION,
        ],
        "websocket" => &[
            "AWS::ApiGatewayV2::Api",
            "AWS::ApiGatewayV2::Integration",
            "AWS::ApiGatewayV2::Route",
            "AWS::ApiGatewayV2::Deployment",
            "AWS::ApiGatewayV2::Stage",
            PERMISSION,
        ],
        // v4's `method: scheduler` makes an EventBridge Scheduler schedule and its role.
        "schedule" if event["method"] == "scheduler" => &["AWS::Scheduler::Schedule"],
        "schedule" | "eventBridge" | "cloudwatchEvent" => &["AWS::Events::Rule", PERMISSION],
        "cloudwatchLog" => &["AWS::Logs::SubscriptionFilter", PERMISSION],
        // A topic given by its ARN exists already; a name makes one.
        "sns" if is_arn(event) || is_arn(&event["arn"]) => &["AWS::SNS::Subscription", PERMISSION],
        "sns" => &["AWS::SNS::Topic", "AWS::SNS::Subscription", PERMISSION],
        "sqs" | "stream" | "kafka" | "msk" | "activemq" | "rabbitmq" | "documentDb" => {
            &["AWS::Lambda::EventSourceMapping"]
        }
        // An existing bucket is configured by the framework's custom resource (a function of
        // its own: already granted).
        "s3" if event["existing"] == true => &[PERMISSION],
        "s3" => &["AWS::S3::Bucket", PERMISSION],
        "alb" => &[
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            "AWS::ElasticLoadBalancingV2::ListenerRule",
            PERMISSION,
        ],
        "iot" => &["AWS::IoT::TopicRule", PERMISSION],
        "cognitoUserPool" if event["existing"] == true => &[PERMISSION],
        "cognitoUserPool" => &["AWS::Cognito::UserPool", PERMISSION],
        "alexaSkill" | "alexaSmartHome" => &[PERMISSION],
        _ => return None,
    })
}

/// Whether `v` is an ARN or a CloudFormation function (`Fn::GetAtt`, `Ref`, `Fn::Join`…) that
/// gives one.
fn is_arn(v: &Value) -> bool {
    match v {
        Value::String(s) => s.starts_with("arn:"),
        Value::Object(m) => m.keys().any(|k| k == "Ref" || k.starts_with("Fn::")),
        _ => false,
    }
}

/// Reads `service`'s configuration under `root`.
pub(crate) fn resource_types(root: &Path, service: &Service) -> Made {
    let mut reader = Reader {
        root,
        dir: &service.dir,
        files: 0,
        made: Made::default(),
    };
    let name = &service.name;
    let config = service.template_path();
    let Some(doc) = reader.read(&config) else {
        return reader.made;
    };
    if let Some(functions) = reader.resolve(&doc["functions"], &format!("{config}: functions")) {
        for (fname, function) in reader.entries(&functions, &format!("{config}: functions")) {
            let at = format!("function `{fname}`");
            let Some(function) = reader.resolve(&function, &at) else {
                continue;
            };
            if !function["url"].is_null() {
                reader.made.types.insert("AWS::Lambda::Url".into());
            }
            if !function["provisionedConcurrency"].is_null() {
                reader.made.types.insert("AWS::Lambda::Alias".into());
            }
            if !function["destinations"].is_null()
                || !function["maximumRetryAttempts"].is_null()
                || !function["maximumEventAge"].is_null()
            {
                reader
                    .made
                    .types
                    .insert("AWS::Lambda::EventInvokeConfig".into());
            }
            let Some(events) = reader.resolve(&function["events"], &format!("{at}: events")) else {
                continue;
            };
            for event in events.as_array().into_iter().flatten() {
                let Some(event) = reader.resolve(event, &format!("{at}: an event")) else {
                    continue;
                };
                let Some((kind, body)) = event.as_object().and_then(|m| m.iter().next()) else {
                    continue;
                };
                match event_types(kind, body) {
                    Some(types) => reader
                        .made
                        .types
                        .extend(types.iter().map(|t| (*t).to_string())),
                    None => reader.made.unread.push(format!(
                        "`{name}`: {at}'s `{kind}` event is not in Ferry's table of what events compile to; grant what it makes by hand"
                    )),
                }
            }
        }
    }
    if !doc["layers"].is_null() {
        reader.made.types.insert("AWS::Lambda::LayerVersion".into());
    }
    if let Some(resources) = reader.resolve(&doc["resources"], &format!("{config}: resources")) {
        // One mapping, or a list of them (each maybe a `${file(…)}`), as the framework merges.
        let parts: Vec<Value> = match resources {
            Value::Array(items) => items,
            other => vec![other],
        };
        for part in parts {
            let Some(part) = reader.resolve(&part, &format!("{config}: resources")) else {
                continue;
            };
            let Some(resources) = reader.resolve(
                &part["Resources"],
                &format!("{config}: resources.Resources"),
            ) else {
                continue;
            };
            for (_, resource) in reader.entries(&resources, "resources.Resources") {
                if let Some(ty) = resource["Type"].as_str() {
                    reader.made.types.insert(ty.to_string());
                }
            }
        }
    }
    reader.made
}

struct Reader<'a> {
    root: &'a Path,
    /// The service folder, repository-relative: `${file(…)}` paths start there.
    dir: &'a str,
    files: usize,
    made: Made,
}

impl Reader<'_> {
    /// The YAML or JSON file at the repository-relative `path`, or `None` (said in `unread`).
    fn read(&mut self, path: &str) -> Option<Value> {
        self.files += 1;
        if self.files > MAX_FILES {
            if self.files > MAX_FILES + 1 {
                return None;
            }
            self.made.unread.push(format!(
                "`{path}`: more than {MAX_FILES} files through ${{file(…)}}; the rest is not read"
            ));
            return None;
        }
        if ![".yml", ".yaml", ".json"].iter().any(|e| path.ends_with(e)) {
            self.made.unread.push(format!(
                "`{path}` is a program, which Ferry does not run: the resources it makes are not known; grant them by hand"
            ));
            return None;
        }
        let text = match std::fs::read_to_string(self.root.join(path)) {
            Ok(text) => text,
            Err(e) => {
                self.made
                    .unread
                    .push(format!("`{path}` could not be read ({e})"));
                return None;
            }
        };
        match ferry_package::parse_template(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.made
                    .unread
                    .push(format!("`{path}` could not be read ({e})"));
                None
            }
        }
    }

    /// `value`, or what its `${file(PATH)}` or `${file(PATH):KEY.PATH}` names. `None` for a
    /// missing value, and (said in `unread`, as `what`) for one that another variable gives.
    fn resolve(&mut self, value: &Value, what: &str) -> Option<Value> {
        let text = match value {
            Value::Null => return None,
            Value::String(s) => s.trim(),
            other => return Some(other.clone()),
        };
        let Some((path, keys)) = file_variable(text) else {
            if text.contains("${") {
                self.made.unread.push(format!(
                    "{what} is `{text}`, which Ferry does not resolve: the resources it makes are not known; grant them by hand"
                ));
                return None;
            }
            return Some(value.clone());
        };
        let Some(rel) = ferry_manifest::normalize_relative(&format!("{}/{path}", self.dir)) else {
            self.made.unread.push(format!(
                "{what}: `{text}` names a file outside the repository; not read"
            ));
            return None;
        };
        let mut doc = self.read(&rel)?;
        for key in keys.split('.').filter(|k| !k.is_empty()) {
            doc = doc.get(key).cloned().unwrap_or(Value::Null);
        }
        // What the file gives may itself be a file variable (one level at a time).
        self.resolve(&doc, what)
    }

    /// The named entries of a mapping, or of a list of mappings (the framework merges them).
    fn entries(&mut self, value: &Value, what: &str) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        match value {
            Value::Object(m) => out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone()))),
            Value::Array(items) => {
                for item in items {
                    if let Some(Value::Object(m)) = self.resolve(item, what) {
                        out.extend(m);
                    }
                }
            }
            _ => {}
        }
        out
    }
}

/// `${file(PATH)}` or `${file(PATH):KEY.PATH}` (quotes around PATH allowed): the path and the
/// key path.
fn file_variable(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix("${file(")?.strip_suffix('}')?;
    let (path, rest) = inner.split_once(')')?;
    let keys = match rest {
        "" => "",
        _ => rest.strip_prefix(':')?,
    };
    let path = path.trim().trim_matches(['\'', '"']);
    (!path.is_empty() && !path.contains("${")).then_some((path, keys.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_variables() {
        assert_eq!(file_variable("${file(a.yml)}"), Some(("a.yml", "")));
        assert_eq!(
            file_variable("${file('./res/x.yml'):Resources}"),
            Some(("./res/x.yml", "Resources"))
        );
        assert_eq!(file_variable("${file(${self:custom.f})}"), None);
        assert_eq!(file_variable("${file()}"), None);
        assert_eq!(file_variable("${self:custom.x}"), None);
        assert_eq!(file_variable("${file(a.yml)"), None);
    }
}
