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
    /// The buckets the functions' `s3` events make, by name (`{stage}` standing for the stage
    /// id): the framework names them after the event, not after the stack.
    pub buckets: BTreeSet<String>,
    /// The framework's `service` name, which its functions' names start with
    /// (`<service>-<stage>-<function>`), whatever the stack is called.
    pub service: Option<String>,
    /// How many functions the configuration declares, when it could be read (a service of
    /// `resources:` alone declares none: no function, role or log group is compiled).
    pub functions: Option<usize>,
    pub unread: Vec<String>,
}

/// Files followed through `${file(…)}`, at most, from one configuration: a limit for a cycle
/// or a hostile configuration.
const MAX_FILES: usize = 32;

/// The resource types the framework compiles an event of this kind into (in Serverless
/// Framework v3 and v4, with `Lambda::Permission` for those that invoke the function; the
/// types an API's authorizers, keys and models add share the API's prefix, which one grant
/// covers). `doc` is the whole configuration, for the provider's settings of an event kind.
fn event_types(kind: &str, event: &Value, doc: &Value) -> Option<Vec<&'static str>> {
    const PERMISSION: &str = "AWS::Lambda::Permission";
    let mut out: Vec<&'static str> = match kind {
        "http" => vec![
            "AWS::ApiGateway::RestApi",
            "AWS::ApiGateway::Resource",
            "AWS::ApiGateway::Method",
            "AWS::ApiGateway::Deployment",
            PERMISSION,
        ],
        "httpApi" => vec![
            "AWS::ApiGatewayV2::Api",
            "AWS::ApiGatewayV2::Stage",
            "AWS::ApiGatewayV2::Integration",
            "AWS::ApiGatewayV2::Route",
            PERMISSION,
        ],
        "websocket" => vec![
            "AWS::ApiGatewayV2::Api",
            "AWS::ApiGatewayV2::Integration",
            "AWS::ApiGatewayV2::Route",
            "AWS::ApiGatewayV2::Deployment",
            "AWS::ApiGatewayV2::Stage",
            PERMISSION,
        ],
        // `method: scheduler` makes an EventBridge Scheduler schedule, which invokes the
        // function with the function's own role.
        "schedule" if event["method"] == "scheduler" => vec!["AWS::Scheduler::Schedule"],
        "schedule" | "cloudwatchEvent" => vec!["AWS::Events::Rule", PERMISSION],
        // Unless `provider.eventBridge` is set without `useCloudFormation: true`, the framework
        // writes the rule (and a bus given by name) into the template; else its custom
        // resource makes them.
        "eventBridge" => {
            let settings = &doc["provider"]["eventBridge"];
            if settings.is_object() && settings["useCloudFormation"] != true {
                vec!["Custom::EventBridge"]
            } else {
                let named = event["eventBus"]
                    .as_str()
                    .is_some_and(|b| b != "default" && !b.starts_with("arn:"));
                let mut v = vec!["AWS::Events::Rule", PERMISSION];
                if named {
                    v.push("AWS::Events::EventBus");
                }
                v
            }
        }
        "cloudwatchLog" => vec!["AWS::Logs::SubscriptionFilter", PERMISSION],
        // A topic given by its ARN exists already; a name makes one. A redrive policy gives its
        // dead-letter queue a policy.
        "sns" => {
            let mut v = if is_arn(event) || is_arn(&event["arn"]) {
                vec!["AWS::SNS::Subscription", PERMISSION]
            } else {
                vec!["AWS::SNS::Topic", "AWS::SNS::Subscription", PERMISSION]
            };
            if is_set(&event["redrivePolicy"]) {
                v.push("AWS::SQS::QueuePolicy");
            }
            v
        }
        "stream" if is_set(&event["consumer"]) => vec![
            "AWS::Lambda::EventSourceMapping",
            "AWS::Kinesis::StreamConsumer",
        ],
        "sqs" | "stream" | "kafka" | "msk" | "activemq" | "rabbitmq" => {
            vec!["AWS::Lambda::EventSourceMapping"]
        }
        // An existing bucket or user pool is configured by the framework's custom resource,
        // which adds the function's permission itself.
        "s3" if event["existing"] == true => vec!["Custom::S3"],
        "s3" => vec!["AWS::S3::Bucket", PERMISSION],
        "alb" => vec![
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            "AWS::ElasticLoadBalancingV2::ListenerRule",
            PERMISSION,
        ],
        "iot" => vec!["AWS::IoT::TopicRule", PERMISSION],
        "iotFleetProvisioning" => vec!["AWS::IoT::ProvisioningTemplate", PERMISSION],
        "cognitoUserPool" if event["existing"] == true => vec!["Custom::CognitoUserPool"],
        "cognitoUserPool" => vec!["AWS::Cognito::UserPool", PERMISSION],
        "cloudFront" => vec!["AWS::CloudFront::Distribution", PERMISSION],
        "alexaSkill" | "alexaSmartHome" => vec![PERMISSION],
        _ => return None,
    };
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Whether a setting is given and not turned off (`false`, `0`, empty).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
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
    reader.made.service = doc["service"]
        .as_str()
        .or_else(|| doc["service"]["name"].as_str())
        .filter(|s| !s.contains("${"))
        .map(String::from);
    if doc.get("functions").is_none_or(Value::is_null) {
        reader.made.functions = Some(0);
    }
    if let Some(functions) = reader.resolve(&doc["functions"], &format!("{config}: functions")) {
        let entries = reader.entries(&functions, &format!("{config}: functions"));
        // Entries an unread `${file(…)}` would add are not known: only an empty mapping counts.
        if functions.as_object().is_some_and(|m| m.is_empty()) || !entries.is_empty() {
            reader.made.functions = Some(entries.len());
        }
        for (fname, function) in entries {
            let at = format!("function `{fname}`");
            let Some(function) = reader.resolve(&function, &at) else {
                continue;
            };
            let mut add = |t: &str| reader.made.types.insert(t.to_string());
            // A function URL without `authorizer: aws_iam` is public: a permission lets anyone
            // invoke it.
            if is_set(&function["url"]) {
                add("AWS::Lambda::Url");
                add("AWS::Lambda::Permission");
            }
            if is_set(&function["provisionedConcurrency"]) || is_set(&function["snapStart"]) {
                add("AWS::Lambda::Alias");
            }
            if is_set(&function["destinations"])
                || is_set(&function["maximumRetryAttempts"])
                || is_set(&function["maximumEventAge"])
            {
                add("AWS::Lambda::EventInvokeConfig");
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
                if kind == "s3" && body["existing"] != true {
                    reader.event_bucket(&doc, body, &format!("`{name}`: {at}"));
                }
                // The provisioning template is made with a role given by its ARN: CloudFormation
                // passes it to IoT with the deployer's role, which may pass only the stage's own.
                if kind == "iotFleetProvisioning"
                    && let Some(role) = body["provisioningRoleArn"].as_str()
                {
                    reader.made.unread.push(format!(
                        "`{name}`: {at}'s `iotFleetProvisioning` event passes role `{role}` to IoT: grant iam:PassRole on it by hand (with iam:PassedToService iot.amazonaws.com), as Ferry grants it only on the stage's own roles"
                    ));
                }
                match event_types(kind, body, &doc) {
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
    if let Some(layers) = doc["layers"].as_object() {
        reader.made.types.insert("AWS::Lambda::LayerVersion".into());
        if layers.values().any(|l| is_set(&l["allowedAccounts"])) {
            reader
                .made
                .types
                .insert("AWS::Lambda::LayerVersionPermission".into());
        }
    }
    // API Gateway's access logs need the account's CloudWatch role, which the framework sets
    // through a custom resource.
    let logs = &doc["provider"]["logs"];
    if is_set(&logs["restApi"]) || is_set(&logs["websocket"]) {
        reader
            .made
            .types
            .insert("Custom::ApiGatewayAccountRole".into());
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
    /// The name of the bucket an `s3` event makes: the event's `bucket` (a string, or
    /// `{bucket: …}`), or the `name` of the `provider.s3` entry it names. The stage's variables
    /// become `{stage}`; a name with any other variable is said to be unread.
    fn event_bucket(&mut self, doc: &Value, event: &Value, at: &str) {
        let given = match event {
            Value::String(s) => Some(s.as_str()),
            other => other["bucket"].as_str(),
        };
        let Some(given) = given else {
            self.made.unread.push(format!(
                "{at}'s `s3` event names its bucket in a way Ferry does not read: grant s3 actions on that bucket by hand"
            ));
            return;
        };
        let name = doc["provider"]["s3"][given]["name"]
            .as_str()
            .unwrap_or(given);
        // The framework's service name, read once from the configuration (`${self:service}`).
        let service = self.made.service.clone().unwrap_or_default();
        // `${self:provider.stage}` is the stage only when the configuration leaves it to the
        // command line; a literal `provider.stage` is that literal in every stage.
        let fixed = doc["provider"]["stage"]
            .as_str()
            .filter(|s| !s.contains("${"));
        match stage_pattern(name, &service, fixed) {
            Some(pattern) => {
                self.made.buckets.insert(pattern);
            }
            None => self.made.unread.push(format!(
                "{at}'s `s3` event makes bucket `{name}`, whose name Ferry cannot render: grant s3 actions on it by hand"
            )),
        }
    }

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
            let what = if [".ts", ".js", ".cjs", ".mjs"]
                .iter()
                .any(|e| path.ends_with(e))
            {
                "is a program, which Ferry does not run"
            } else {
                "is no YAML or JSON file, which Ferry does not read"
            };
            self.made.unread.push(format!(
                "`{path}` {what}: the resources it makes are not known; grant them by hand"
            ));
            return None;
        }
        // Through a symbolic link, a path in the repository can name a file anywhere: only
        // one whose real path is in the repository is read.
        let inside = match (
            self.root.canonicalize(),
            self.root.join(path).canonicalize(),
        ) {
            (Ok(root), Ok(real)) => real.starts_with(&root),
            _ => true,
        };
        if !inside {
            self.made.unread.push(format!(
                "`{path}` leads out of the repository through a symbolic link: not read"
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
        let rel = if path.starts_with(['/', '~']) {
            None
        } else {
            ferry_manifest::normalize_relative(&format!("{}/{path}", self.dir))
        };
        let Some(rel) = rel else {
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

/// `name` with the stage's variables (`${sls:stage}`, `${opt:stage}`, `${self:provider.stage}`,
/// with or without a default) as `{stage}` and `${self:service}` as `service`; `None` when
/// another variable remains. `provider_stage`: a literal `provider.stage`, which
/// `${self:provider.stage}` stands for whatever the stage deployed.
fn stage_pattern(name: &str, service: &str, provider_stage: Option<&str>) -> Option<String> {
    let mut out = String::new();
    let mut rest = name;
    while let Some(open) = rest.find("${") {
        out.push_str(&rest[..open]);
        // The matching brace: a default may hold a variable of its own.
        let mut depth = 0;
        let close = rest[open..].char_indices().find_map(|(i, c)| {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => return Some(open + i),
                '}' => depth -= 1,
                _ => {}
            }
            None
        })?;
        let inner = &rest[open + 2..close];
        let variable = inner.split(',').next().unwrap_or_default().trim();
        match variable {
            "self:provider.stage" if provider_stage.is_some() => {
                out.push_str(provider_stage.unwrap_or_default());
            }
            "sls:stage" | "opt:stage" | "self:provider.stage" => out.push_str("{stage}"),
            "self:service" if !service.is_empty() => out.push_str(service),
            _ => return None,
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
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

    #[test]
    fn stage_patterns() {
        let pattern = |name: &str, fixed: Option<&str>| stage_pattern(name, "shop", fixed);
        assert_eq!(
            pattern("${self:service}-${sls:stage}-uploads", None).as_deref(),
            Some("shop-{stage}-uploads")
        );
        assert_eq!(
            pattern("up-${opt:stage, ${self:provider.stage, 'dev'}}", None).as_deref(),
            Some("up-{stage}")
        );
        assert_eq!(
            pattern("plain-bucket", None).as_deref(),
            Some("plain-bucket")
        );
        assert_eq!(pattern("b-${env:BUCKET}", None), None);
        assert_eq!(pattern("b-${sls:stage", None), None);
        // A literal provider.stage is what `${self:provider.stage}` gives in every stage.
        assert_eq!(
            pattern("up-${self:provider.stage}", Some("dev")).as_deref(),
            Some("up-dev")
        );
    }
}
