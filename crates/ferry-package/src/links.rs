//! Links between services that their templates make and their `depends-on` may miss: SSM
//! parameters (one service's template writes a parameter, an `AWS::SSM::Parameter` resource;
//! another's reads it through a template parameter of an SSM parameter type) and exports (one
//! exports an output, `Export.Name`; another imports it, `Fn::ImportValue`). A reader that does
//! not depend on the writer may deploy before the value exists, and an exporter removed before
//! its importer cannot be (CloudFormation refuses to delete an export in use); `validate`
//! says so. It also names a literal resource name two services' templates give
//! ([`shared_names`]): the second to deploy would fail.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

use ferry_manifest::{Reference, Service, ServiceKind, Stage, Template, Workspace};
use serde_json::Value;

use crate::template;

/// The templates of a workspace's CloudFormation and SAM services (a Serverless Framework
/// service's template exists only once it is compiled; the checks of names read its
/// `resources`, see [`Templates::naming`]), each read and parsed at most once, on first use:
/// `validate`'s checks below each walk them, and one `Templates` serves them all. A template
/// that cannot be read or parsed is left out (the template check names it).
pub struct Templates<'w> {
    ws: &'w Workspace,
    /// By the service's place in `ws.services`: its text, then its parsed tree.
    read: Vec<OnceCell<Option<Read>>>,
    /// By the service's place: a Serverless service's `resources`, as [`Templates::naming`]
    /// gives them.
    framework: Vec<OnceCell<Option<Value>>>,
}

struct Read {
    text: String,
    parsed: OnceCell<Option<Value>>,
}

impl<'w> Templates<'w> {
    pub fn new(ws: &'w Workspace) -> Self {
        Templates {
            ws,
            read: ws.services.iter().map(|_| OnceCell::new()).collect(),
            framework: ws.services.iter().map(|_| OnceCell::new()).collect(),
        }
    }

    pub fn workspace(&self) -> &'w Workspace {
        self.ws
    }

    /// The parsed template of `service` (one of the workspace's), if it is not a Serverless
    /// service's and its text holds one of `needles` (any text, when there are none): a
    /// template that holds none of what a check looks for is never parsed for it.
    pub fn of(&self, service: &Service, needles: &[&str]) -> Option<&Value> {
        let i = self
            .ws
            .services
            .iter()
            .position(|s| s.name == service.name)?;
        self.at(i, needles)
    }

    /// [`of`](Self::of) the service at `i` in the workspace's list.
    fn at(&self, i: usize, needles: &[&str]) -> Option<&Value> {
        let service = &self.ws.services[i];
        if service.kind == ServiceKind::Serverless {
            return None;
        }
        let read = self.read[i]
            .get_or_init(|| {
                // As packaging reads it: a regular file, no larger than CloudFormation takes.
                let path = self.ws.root.join(service.template_path());
                let text = crate::read_template_text(&path).ok()?;
                Some(Read {
                    text,
                    parsed: OnceCell::new(),
                })
            })
            .as_ref()?;
        if !needles.is_empty() && !needles.iter().any(|n| read.text.contains(n)) {
            return None;
        }
        read.parsed
            .get_or_init(|| template::parse(&read.text).ok())
            .as_ref()
    }

    /// Every service whose template [`of`](Self::of) gives, with it.
    fn mentioning(&self, needles: &[&str]) -> Vec<(&'w Service, &Value)> {
        self.ws
            .services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s, self.at(i, needles)?)))
            .collect()
    }

    /// What gives resources their names, for the checks of names two services or two stages
    /// give: [`mentioning`](Self::mentioning)'s templates, and of each Serverless service
    /// configured in YAML or JSON, the `Resources` and `Outputs` of its `resources` (which the
    /// framework adds to its template as written), a string built from the framework's own
    /// variables (`${sls:stage}`, `${self:…}`) taken as unknown. A configuration that is a
    /// program, or `resources` kept in other files, is left out.
    fn naming(&self, needles: &[&str]) -> Vec<(&'w Service, &Value)> {
        self.ws
            .services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                if s.kind != ServiceKind::Serverless {
                    return Some((s, self.at(i, needles)?));
                }
                let resources = self.framework[i]
                    .get_or_init(|| serverless_resources(&self.ws.root.join(s.template_path())))
                    .as_ref()?;
                Some((s, resources))
            })
            .collect()
    }
}

/// The `Resources` and `Outputs` of a Serverless Framework configuration's `resources` (YAML or
/// JSON at `path`), each string that reads one of the framework's variables made null.
fn serverless_resources(path: &std::path::Path) -> Option<Value> {
    let yaml_or_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yml" | "yaml" | "json"));
    if !yaml_or_json {
        return None;
    }
    let config = template::parse(&crate::read_template_text(path).ok()?).ok()?;
    // A mapping, or a list of mappings and `${file(…)}` includes (those are not followed).
    let parts: Vec<&serde_json::Map<String, Value>> = match config.get("resources")? {
        Value::Object(m) => vec![m],
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        _ => return None,
    };
    let mut out = serde_json::Map::new();
    for part in parts {
        for key in ["Resources", "Outputs"] {
            if let Some(Value::Object(items)) = part.get(key) {
                let section = out
                    .entry(key.to_string())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Value::Object(section) = section {
                    section.extend(items.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
    }
    let mut out = Value::Object(out);
    forget_framework_variables(&mut out);
    Some(out)
}

/// Makes null each string of `v` that reads a variable of the Serverless Framework (a source
/// with a `:` or `(`: `sls:stage`, `self:service`, `file(…)`), whose value only its compile
/// knows; CloudFormation's own (`${AWS::StackName}`, `${Bucket.Arn}` of an `Fn::Sub`) stay.
fn forget_framework_variables(v: &mut Value) {
    match v {
        Value::String(text) => {
            let framework = ferry_manifest::serverless_variable_sources(text)
                .iter()
                .any(|source| !source.starts_with("AWS::") && source.contains([':', '(']));
            if framework {
                *v = Value::Null;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(forget_framework_variables),
        Value::Object(map) => map.values_mut().for_each(forget_framework_variables),
        _ => {}
    }
}

/// A service reading SSM parameters another service's template writes, without depending on
/// that service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnlinkedReader {
    pub reader: String,
    pub writer: String,
    /// The reader's template parameters (of an SSM parameter type) and the names they give, for
    /// the first stage where the two meet.
    pub reads: Vec<(String, String)>,
}

impl std::fmt::Display for UnlinkedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (keys, names): (Vec<&str>, Vec<String>) = self
            .reads
            .iter()
            .map(|(k, n)| (k.as_str(), format!("`{n}`")))
            .unzip();
        let plural = if self.reads.len() == 1 { "" } else { "s" };
        write!(
            f,
            "{reader}: template parameter{plural} {keys} name{verb} SSM parameter{plural} {names}, which the template of {writer} writes, and {reader} does not depend on {writer}: add \"{writer}\" to its depends-on, so that {writer} deploys first",
            reader = self.reader,
            keys = keys.join(", "),
            verb = if plural.is_empty() { "s" } else { "" },
            names = names.join(", "),
            writer = self.writer,
        )
    }
}

/// Every reader of an SSM parameter another service's template writes that does not depend on
/// the writer (directly or not), seen in each named stage of `ws`. Templates that cannot be read,
/// and names built from what only a deploy knows (another stack's output, the account), are
/// left out: this is advice, never an error.
pub fn unlinked_ssm_readers(templates: &Templates) -> Vec<UnlinkedReader> {
    let ws = templates.workspace();
    let templates = templates.mentioning(&["AWS::SSM::Parameter"]);
    let graph = ws.graph();
    // (reader, writer) → (key → name), the first stage's name for each key.
    let mut found: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    for stage in ws.stages.keys().filter_map(|n| ws.stage(n).ok()) {
        let mut writers: BTreeMap<String, &str> = BTreeMap::new();
        for (s, t) in &templates {
            for name in written(ws, &stage, s, t) {
                writers.insert(name, &s.name);
            }
        }
        for (s, t) in &templates {
            let depends: BTreeSet<String> = graph.with_dependencies([s.name.as_str()]);
            for (key, name) in ssm_typed_names(ws, &stage, s, t) {
                let Some(name) = name else { continue };
                let Some(writer) = writers.get(&name) else {
                    continue;
                };
                if *writer != s.name && !depends.contains(*writer) {
                    found
                        .entry((s.name.clone(), writer.to_string()))
                        .or_default()
                        .entry(key)
                        .or_insert(name);
                }
            }
        }
    }
    found
        .into_iter()
        .map(|((reader, writer), reads)| UnlinkedReader {
            reader,
            writer,
            reads: reads.into_iter().collect(),
        })
        .collect()
}

/// A service importing an export another service's template declares, without depending on
/// that service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnlinkedImporter {
    pub importer: String,
    pub exporter: String,
    /// The export names imported, for the first stage where the two meet.
    pub names: Vec<String>,
}

impl std::fmt::Display for UnlinkedImporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.names.iter().map(|n| format!("`{n}`")).collect();
        write!(
            f,
            "{importer}: imports {names} (Fn::ImportValue), which the template of {exporter} exports, and {importer} does not depend on {exporter}: add \"{exporter}\" to its depends-on, so that {exporter} deploys first and is removed last",
            importer = self.importer,
            names = names.join(", "),
            exporter = self.exporter,
        )
    }
}

/// Every service importing an export another service's template declares that does not
/// depend on the exporter (directly or not), seen in each named stage of `ws`; names built
/// from what only a deploy knows are left out (advice, never an error).
pub fn unlinked_importers(templates: &Templates) -> Vec<UnlinkedImporter> {
    let ws = templates.workspace();
    let templates = templates.mentioning(&["Export", "ImportValue"]);
    let graph = ws.graph();
    // (importer, exporter) → the names imported, in the first stage where the two meet: later
    // stages repeat the same imports under their own names.
    let mut found: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for stage in ws.stages.keys().filter_map(|n| ws.stage(n).ok()) {
        let mut this_stage: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        let mut exporters: BTreeMap<String, &str> = BTreeMap::new();
        for (s, t) in &templates {
            let outputs = t.get("Outputs").and_then(Value::as_object);
            for o in outputs.into_iter().flatten().map(|(_, o)| o) {
                if let Some(name) = o
                    .pointer("/Export/Name")
                    .and_then(|v| resolve(ws, &stage, s, t, v))
                {
                    exporters.insert(name, &s.name);
                }
            }
        }
        for (s, t) in &templates {
            let depends: BTreeSet<String> = graph.with_dependencies([s.name.as_str()]);
            let mut imports = Vec::new();
            find_imports(t.get("Resources").unwrap_or(&Value::Null), &mut imports);
            find_imports(t.get("Outputs").unwrap_or(&Value::Null), &mut imports);
            for v in imports {
                let Some(name) = resolve(ws, &stage, s, t, v) else {
                    continue;
                };
                match exporters.get(&name) {
                    Some(exporter) if *exporter != s.name && !depends.contains(*exporter) => {
                        this_stage
                            .entry((s.name.clone(), exporter.to_string()))
                            .or_default()
                            .insert(name);
                    }
                    _ => {}
                }
            }
        }
        for (pair, names) in this_stage {
            found.entry(pair).or_insert(names);
        }
    }
    found
        .into_iter()
        .map(|((importer, exporter), names)| UnlinkedImporter {
            importer,
            exporter,
            names: names.into_iter().collect(),
        })
        .collect()
}

/// A name a template gives a resource of [`NAME_PROPERTIES`] literally (a plain string, not
/// built from the stage or the stack), not under a `Condition` (it may not be made).
struct LiteralName<'t> {
    /// What the resource is (`table`), and where such names are unique.
    kind: &'static str,
    scope: &'static str,
    name: &'t str,
    /// `Resources.<id>.Properties.<property>`.
    at: String,
}

/// Every [`LiteralName`] of `t`, in template order.
fn literal_names(t: &Value) -> Vec<LiteralName<'_>> {
    let resources = t.get("Resources").and_then(Value::as_object);
    resources
        .into_iter()
        .flatten()
        .filter(|(_, r)| r.get("Condition").is_none())
        .filter_map(|(id, r)| {
            let ty = r.get("Type").and_then(Value::as_str)?;
            let (_, prop, kind, scope) = NAME_PROPERTIES.iter().find(|(t, ..)| *t == ty)?;
            let name = r.pointer(&format!("/Properties/{prop}"))?.as_str()?;
            Some(LiteralName {
                kind,
                scope,
                name,
                at: format!("Resources.{id}.Properties.{prop}"),
            })
        })
        .collect()
}

/// Resource types whose names are unique in a scope, with the property that names one, what
/// they are (types of one kind share names: a SAM function and a Lambda function) and where a
/// name is unique: two stacks giving the same literal name collide.
const NAME_PROPERTIES: &[(&str, &str, &str, &str)] = &[
    (
        "AWS::Logs::LogGroup",
        "LogGroupName",
        "log group",
        "an account and region",
    ),
    (
        "AWS::DynamoDB::Table",
        "TableName",
        "table",
        "an account and region",
    ),
    (
        "AWS::Serverless::SimpleTable",
        "TableName",
        "table",
        "an account and region",
    ),
    (
        "AWS::SQS::Queue",
        "QueueName",
        "queue",
        "an account and region",
    ),
    (
        "AWS::SNS::Topic",
        "TopicName",
        "topic",
        "an account and region",
    ),
    ("AWS::S3::Bucket", "BucketName", "bucket", "all of AWS"),
    (
        "AWS::Lambda::Function",
        "FunctionName",
        "function",
        "an account and region",
    ),
    (
        "AWS::Serverless::Function",
        "FunctionName",
        "function",
        "an account and region",
    ),
    ("AWS::IAM::Role", "RoleName", "role", "an account"),
    (
        "AWS::StepFunctions::StateMachine",
        "StateMachineName",
        "state machine",
        "an account and region",
    ),
    (
        "AWS::Serverless::StateMachine",
        "Name",
        "state machine",
        "an account and region",
    ),
    (
        "AWS::Events::EventBus",
        "Name",
        "event bus",
        "an account and region",
    ),
    (
        "AWS::Kinesis::Stream",
        "Name",
        "stream",
        "an account and region",
    ),
    (
        "AWS::ECR::Repository",
        "RepositoryName",
        "repository",
        "an account and region",
    ),
    (
        "AWS::SecretsManager::Secret",
        "Name",
        "secret",
        "an account and region",
    ),
    (
        "AWS::SSM::Parameter",
        "Name",
        "SSM parameter",
        "an account and region",
    ),
    (
        "AWS::CloudFormation::Macro",
        "Name",
        "macro",
        "an account and region",
    ),
];

/// One literal resource name the templates of several services give.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SharedName {
    /// What the resources are: `log group`, `function`.
    pub kind: String,
    /// Where such a name is unique: `an account and region`, `an account`, `all of AWS`.
    pub scope: String,
    pub name: String,
    /// (service, `Resources.<id>.Properties.<property>`), in the services' order.
    pub given_by: Vec<(String, String)>,
}

impl std::fmt::Display for SharedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let by: Vec<String> = self
            .given_by
            .iter()
            .map(|(s, at)| format!("{s} ({at})"))
            .collect();
        write!(
            f,
            "the templates of {} all name a {} `{}`: {} names are unique in {}, so the service deployed second fails (the name is taken), and a literal name is the same in every stage deployed to one account; leave the name out (CloudFormation makes one from the stack's) or build it from the stack's, e.g. !Sub \"${{AWS::StackName}}-…\"",
            by.join(", "),
            self.kind,
            self.name,
            self.kind,
            self.scope
        )
    }
}

/// Every literal resource name (a plain string, not built from the stage or the stack) that
/// the templates of two services or more (a Serverless service's `resources` too, see
/// [`Templates::naming`]) give resources of one kind of [`NAME_PROPERTIES`]. A
/// resource under a `Condition` is left out (it may not be made), as are templates that cannot
/// be read: this is advice, never an error.
pub fn shared_names(templates: &Templates) -> Vec<SharedName> {
    let props: Vec<&str> = NAME_PROPERTIES.iter().map(|(_, p, _, _)| *p).collect();
    // (kind, name) → (scope, who gives it: (service, where)).
    type Givers = Vec<(String, String)>;
    let mut given: BTreeMap<(&str, String), (&str, Givers)> = BTreeMap::new();
    for (s, t) in templates.naming(&props) {
        for l in literal_names(t) {
            let (_, by) = given
                .entry((l.kind, l.name.to_string()))
                .or_insert_with(|| (l.scope, Vec::new()));
            if !by.iter().any(|(other, _)| *other == s.name) {
                by.push((s.name.clone(), l.at));
            }
        }
    }
    given
        .into_iter()
        .filter(|(_, (_, by))| by.len() > 1)
        .map(|((kind, name), (scope, given_by))| SharedName {
            kind: kind.to_string(),
            scope: scope.to_string(),
            name,
            given_by,
        })
        .collect()
}

/// The values of every `Fn::ImportValue` under `v`.
fn find_imports<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                if k == "Fn::ImportValue" {
                    out.push(child);
                } else {
                    find_imports(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| find_imports(i, out)),
        _ => {}
    }
}

/// Each template parameter of an SSM parameter type that `template` (of `service`) declares,
/// with the SSM parameter it names in `stage`: the value `service.toml` passes, else its
/// default; `None` when that needs what only a deploy resolves (an output, another parameter)
/// or there is neither.
pub fn ssm_typed_names(
    ws: &Workspace,
    stage: &Stage,
    service: &Service,
    template: &Value,
) -> Vec<(String, Option<String>)> {
    template::ssm_typed_parameters(template)
        .into_iter()
        .map(|(key, default)| {
            let name = match service.parameters.get(&key) {
                Some(v) => plain(ws, stage, &service.name, v),
                None => default,
            };
            (key, name)
        })
        .collect()
}

/// The names `template` (of `service`) gives its resources of type `ty` through `property`
/// (`RoleName` of an `AWS::IAM::Role`), as they come out in `stage`: each resource's logical id
/// with its name, `None` where only a deploy tells it (an output, an `Fn::Join`, a parameter
/// that reads another stack). Resources that leave the name to CloudFormation are not listed.
pub fn given_names(
    ws: &Workspace,
    stage: &Stage,
    service: &Service,
    template: &Value,
    ty: &str,
    property: &str,
) -> Vec<(String, Option<String>)> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
        .filter_map(|(id, r)| {
            let name = r.get("Properties")?.get(property)?;
            Some((id.clone(), resolve(ws, stage, service, template, name)))
        })
        .collect()
}

/// `t` for `service` in `stage`, when it needs nothing a deploy resolves: the stage, region,
/// project, service and the stage's variables (`${var:…}`) are known before.
fn plain(ws: &Workspace, stage: &Stage, service: &str, t: &Template) -> Option<String> {
    t.render(|r| {
        ferry_manifest::run_value(r, &ws.project.name, service, &stage.id, &stage.config).ok_or(())
    })
    .ok()
}

/// The names of the SSM parameters `template` (of `service`) writes in `stage`, where they can
/// be told without deploying.
fn written(ws: &Workspace, stage: &Stage, service: &Service, template: &Value) -> Vec<String> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::SSM::Parameter"))
        .filter_map(|(_, r)| {
            resolve(
                ws,
                stage,
                service,
                template,
                r.get("Properties")?.get("Name")?,
            )
        })
        .collect()
}

/// A name as `template` (of `service`) gives it in `stage` — a string, a `Ref` of a parameter
/// or the stack name, an `Fn::Sub` of those — where it can be told without deploying.
fn resolve(
    ws: &Workspace,
    stage: &Stage,
    service: &Service,
    template: &Value,
    name: &Value,
) -> Option<String> {
    let parameter = |key: &str| -> Option<String> {
        match key {
            "AWS::StackName" => Some(ws.stack_name(&service.name, stage)),
            "AWS::Region" => Some(stage.config.region.clone()),
            _ => match service.parameters.get(key) {
                Some(v) => plain(ws, stage, &service.name, v),
                None => template
                    .get("Parameters")?
                    .get(key)?
                    .get("Default")?
                    .as_str()
                    .map(String::from),
            },
        }
    };
    match name {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => match (o.get("Ref"), o.get("Fn::Sub")) {
            (Some(Value::String(p)), _) => parameter(p),
            (_, Some(Value::String(text))) => sub(text, &|v| parameter(v)),
            (_, Some(Value::Array(pair))) => {
                let text = pair.first()?.as_str()?;
                let vars = pair.get(1)?.as_object()?;
                sub(text, &|v| match vars.get(v) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => other.get("Ref")?.as_str().and_then(parameter),
                    None => parameter(v),
                })
            }
            _ => None,
        },
        _ => None,
    }
}

/// `Fn::Sub`'s text with each `${X}` replaced by `var(X)` (`${!X}` is a literal `${X}`); `None`
/// when a variable cannot be told.
fn sub(text: &str, var: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (parts, complete) = template::sub_parts(text);
    if !complete {
        return None;
    }
    let mut out = String::new();
    for part in parts {
        match part {
            template::SubPart::Text(t) => out.push_str(t),
            template::SubPart::Literal(l) => {
                out.push_str("${");
                out.push_str(l);
                out.push('}');
            }
            template::SubPart::Var(name) => out.push_str(&var(name)?),
        }
    }
    Some(out)
}

/// A parameter reading an output (`${output:db.TableName}`), or a site naming its bucket's
/// output, that the service's template does not declare: the deploy would stop there, after
/// the services before it deployed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingOutput {
    /// The service whose configuration names the output.
    pub reader: String,
    /// Where: `parameters.<Name>`, or `package.site.bucket-output`.
    pub key: String,
    /// The service whose template should declare it.
    pub service: String,
    pub output: String,
    /// The outputs that template declares.
    pub declared: Vec<String>,
}

impl std::fmt::Display for MissingOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let declared = if self.declared.is_empty() {
            "it declares none".to_string()
        } else {
            format!("its outputs are {}", self.declared.join(", "))
        };
        write!(
            f,
            "{reader}: {key} reads output `{output}` of `{service}`, which its template does not declare ({declared}); a deploy would stop there: fix the name, or add the output to {service}'s template",
            reader = self.reader,
            key = self.key,
            output = self.output,
            service = self.service,
        )
    }
}

/// Every output that a service's parameters (in the stage they deploy to; another stage may run
/// an older template) or its site read from a service whose template declares its outputs as
/// written: a CloudFormation or SAM template without
/// any other transform (a macro may add outputs) that can be read. A Serverless Framework
/// service's outputs come from its compile, and are not checked.
pub fn missing_outputs(templates: &Templates) -> Vec<MissingOutput> {
    let ws = templates.workspace();
    let outputs_of = |name: &str| declared_outputs(templates.of(ws.service(name)?, &[])?);
    let mut out = Vec::new();
    for s in &ws.services {
        for (param, t) in &s.parameters {
            for r in t.references() {
                // Another stage's (`${output:prod:db.Key}`) may run an older template.
                if let Reference::Output {
                    stage: None,
                    service,
                    key,
                } = r
                    && let Some(outputs) = outputs_of(service)
                    && !outputs.contains(key)
                {
                    out.push(MissingOutput {
                        reader: s.name.clone(),
                        key: format!("parameters.{param}"),
                        service: service.clone(),
                        output: key.clone(),
                        declared: outputs,
                    });
                }
            }
        }
        if let Some(site) = &s.package.site
            && let Some(outputs) = outputs_of(&s.name)
            && !outputs.contains(&site.bucket_output)
        {
            out.push(MissingOutput {
                reader: s.name.clone(),
                key: "package.site.bucket-output".into(),
                service: s.name.clone(),
                output: site.bucket_output.clone(),
                declared: outputs,
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The output names a service's template `t` declares, when they are all written in it.
fn declared_outputs(t: &Value) -> Option<Vec<String>> {
    let plain = match t.get("Transform") {
        None => true,
        Some(Value::String(x)) => x == crate::sam::SAM_TRANSFORM,
        Some(_) => false,
    };
    // A macro in the template's body (`Fn::Transform`, `!Transform`, `AWS::Include`) may add
    // outputs too: looked for in the parsed tree, where short forms are long.
    fn has_macro(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.contains_key("Fn::Transform") || m.values().any(has_macro),
            Value::Array(a) => a.iter().any(has_macro),
            _ => false,
        }
    }
    if !plain || has_macro(t) {
        return None;
    }
    Some(match t.get("Outputs") {
        Some(Value::Object(o)) => o.keys().cloned().collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return None,
    })
}

/// Two named stages that may share an account (no `account` or `role-arn` naming different
/// ones) and, with `same_region`, a region, for [`names_every_stage_gives`]: the stages and
/// where they meet (the region, else `one account`); `None` when every pair is kept apart.
fn stages_sharing(ws: &Workspace, same_region: bool) -> Option<(String, String, String)> {
    let named: Vec<(&String, &ferry_manifest::StageConfig)> = ws.stages.iter().collect();
    for (i, (a, ca)) in named.iter().enumerate() {
        for (b, cb) in &named[i + 1..] {
            if !ca.in_another_account(cb) && (ca.region == cb.region || !same_region) {
                let place = if ca.region == cb.region {
                    ca.region.clone()
                } else {
                    "one account".to_string()
                };
                return Some((a.to_string(), b.to_string(), place));
            }
        }
    }
    // Two preview stages (`[stages."*"]` makes one per branch or pull request) share one
    // account and region always.
    ws.default_stage.as_ref().map(|c| {
        let place = if same_region {
            c.region.clone()
        } else {
            "one account".to_string()
        };
        (PREVIEWS.0.to_string(), PREVIEWS.1.to_string(), place)
    })
}

/// The two preview stages [`stages_sharing`] names when no two named stages share a place.
const PREVIEWS: (&str, &str) = ("pr-1", "pr-2");

/// A name a service's template gives literally (not built from the stack or the stage) where
/// names are unique in an account and region, or in an account: a resource of
/// [`NAME_PROPERTIES`] or an output's export. Every stage deploying the service gives it, so
/// of two stages in one account and region, the second one's deploy fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSharedName {
    pub service: String,
    pub kind: String,
    pub name: String,
    /// Where the template gives it: `Resources.T.Properties.TableName`, `Outputs.Id.Export.Name`.
    pub at: String,
    /// Two stages that may share an account and region, and that region.
    pub stages: (String, String, String),
    /// Given as a plain string; else built from what is the same in both stages.
    pub literal: bool,
}

impl std::fmt::Display for StageSharedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `region`: where they meet, a region or "one account".
        let (a, b, region) = &self.stages;
        let how = if self.literal {
            "literally"
        } else {
            "the same in every stage"
        };
        let stages = if (a.as_str(), b.as_str()) == PREVIEWS {
            format!(
                "any two preview stages (`{a}` and `{b}`: [stages.\"*\"] makes one per branch or pull request) deploy to {region}, so the second one's deploy fails there"
            )
        } else {
            format!(
                "stages `{a}` and `{b}` deploy to {region} and no account or role-arn sets them apart, so the second one's deploy fails there"
            )
        };
        write!(
            f,
            "`{}` gives the {} `{}` {how} ({}), so every stage deploying it gives that name: {stages}; build the name from the stack's or the stage's (`!Sub \"${{AWS::StackName}}-…\"`, or a parameter given `${{stage}}` in service.toml), or give the stages accounts of their own",
            self.service, self.kind, self.name, self.at
        )
    }
}

/// Every name ([`StageSharedName`]) that two named stages in one account and region would both
/// give: a literal one, or one built from what is the same in both (a parameter left at its
/// default, or given a plain value in service.toml). A resource under a `Condition` is left
/// out, as are templates that cannot be read: advice, never an error.
pub fn names_every_stage_gives(templates: &Templates) -> Vec<StageSharedName> {
    let ws = templates.workspace();
    // Names unique in an account and region meet in stages of one region; those unique in an
    // account (IAM roles), in stages of one account anywhere.
    let regional = stages_sharing(ws, true);
    let Some(anywhere) = stages_sharing(ws, false) else {
        return Vec::new();
    };
    let pair = |(a, b, _): &(String, String, String)| Some((ws.stage(a).ok()?, ws.stage(b).ok()?));
    let mut needles: Vec<&str> = NAME_PROPERTIES
        .iter()
        .filter(|(.., scope)| *scope != "all of AWS")
        .map(|(_, p, _, _)| *p)
        .collect();
    needles.push("Export");
    let mut out = Vec::new();
    for (s, t) in templates.naming(&needles) {
        // Each name the template gives, where it gives it, and whether its names meet per
        // region.
        let mut given: Vec<(&str, &Value, String, bool)> = Vec::new();
        for (id, r) in t
            .get("Resources")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, r)| r.get("Condition").is_none())
        {
            let Some(ty) = r.get("Type").and_then(Value::as_str) else {
                continue;
            };
            let Some((_, prop, kind, scope)) = NAME_PROPERTIES
                .iter()
                .find(|(t, .., scope)| *t == ty && *scope != "all of AWS")
            else {
                continue;
            };
            if let Some(name) = r.pointer(&format!("/Properties/{prop}")) {
                let at = format!("Resources.{id}.Properties.{prop}");
                given.push((kind, name, at, *scope == "an account and region"));
            }
        }
        for (id, o) in t
            .get("Outputs")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, o)| o.get("Condition").is_none())
        {
            if let Some(name) = o.pointer("/Export/Name") {
                given.push((
                    "export name",
                    name,
                    format!("Outputs.{id}.Export.Name"),
                    true,
                ));
            }
        }
        for (kind, name, at, per_region) in given {
            let stages = if per_region {
                regional.as_ref()
            } else {
                Some(&anywhere)
            };
            let Some(stages) = stages else {
                continue;
            };
            let same = match name {
                Value::String(literal) => Some((literal.clone(), true)),
                _ => pair(stages).and_then(|(a, b)| {
                    let x = resolve(ws, &a, s, t, name)?;
                    (resolve(ws, &b, s, t, name)? == x).then_some((x, false))
                }),
            };
            if let Some((name, literal)) = same {
                out.push(StageSharedName {
                    service: s.name.clone(),
                    kind: kind.to_string(),
                    name,
                    at,
                    stages: stages.clone(),
                    literal,
                });
            }
        }
    }
    out
}

/// A `[parameters]` value left empty for a template parameter that has no `Default` (and is
/// not of an AWS-specific type, which CloudFormation refuses empty, and `validate` with it):
/// `init` leaves the values it cannot infer empty, to fill, and CloudFormation deploys an empty
/// string as it is. (service, key).
pub fn empty_parameters(templates: &Templates) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, s) in templates.workspace().services.iter().enumerate() {
        let empty: Vec<&String> = s
            .parameters
            .iter()
            .filter(|(_, v)| v.to_string().is_empty())
            .map(|(k, _)| k)
            .collect();
        if empty.is_empty() {
            continue;
        }
        let Some(t) = templates.at(i, &[]) else {
            continue;
        };
        for key in empty {
            let decl = &t["Parameters"][key.as_str()];
            let aws_typed = template::is_aws_specific(decl["Type"].as_str().unwrap_or_default());
            if decl.is_object() && decl.get("Default").is_none() && !aws_typed {
                out.push((s.name.clone(), key.clone()));
            }
        }
    }
    out
}

/// Each value of a CloudFormation or SAM service's `[parameters]` that the stage alone decides
/// (`${stage}`, `${region}`, `${var:…}`, with literals) whose rendering for a stage of
/// ferry.toml, or for a preview stage where the project has them (`[stages."*"]`), the
/// template's declaration of the parameter refuses (`Stage = "${stage}"` for `AllowedValues:
/// [dev, prod]`, in staging): CloudFormation refuses that stage's deploy (the emulator does
/// not). One warning per parameter, naming the stages.
pub fn refused_stage_values(templates: &Templates) -> Vec<String> {
    let ws = templates.workspace();
    // Each named stage, then a preview stage's id as a sample of any.
    let mut stages: Vec<(String, Stage)> = ws
        .stages
        .keys()
        .filter_map(|n| Some((format!("stage `{n}`"), ws.stage(n).ok()?)))
        .collect();
    if ws.default_stage.is_some()
        && let Ok(preview) = ws.stage("pr-1")
    {
        stages.push((format!("a preview stage (`{}`, say)", preview.id), preview));
    }
    let mut out = Vec::new();
    for (i, s) in ws.services.iter().enumerate() {
        let Some(t) = templates.at(i, &[]) else {
            continue;
        };
        for (key, value) in &s.parameters {
            let decl = &t["Parameters"][key.as_str()];
            // A literal is judged by the template check already; a value of another source
            // (an output, SSM) is known only when it deploys.
            if !decl.is_object() || value.references().next().is_none() {
                continue;
            }
            let shown = !template::is_no_echo(t, key);
            let mut refused: Vec<(String, String)> = Vec::new();
            for (label, stage) in &stages {
                let Some(text) = plain(ws, stage, &s.name, value) else {
                    break;
                };
                if let Some(why) = template::value_problem(decl, &text, shown) {
                    refused.push((label.clone(), why));
                }
            }
            if let Some((_, why)) = refused.first() {
                let labels: Vec<&str> = refused.iter().map(|(l, _)| l.as_str()).collect();
                // A NoEcho parameter's value is not shown, as written or rendered.
                let written = if shown {
                    format!(" = `{value}`")
                } else {
                    String::new()
                };
                out.push(format!(
                    "{}: parameters.{key}{written} gives a value the template of `{}` refuses in {} ({why}): CloudFormation would refuse {} deploy; give every stage a value its deploy takes (per stage, with `${{var:…}}` of the stages' variables), or widen the parameter's declaration",
                    s.manifest_path(),
                    s.name,
                    labels.join(", "),
                    if refused.len() == 1 { "that stage's" } else { "those stages'" }
                ));
            }
        }
    }
    out
}

/// (service, resources) of each CloudFormation or SAM service whose template makes IAM roles
/// without a permissions boundary: an `AWS::IAM::Role` without `PermissionsBoundary`, a SAM
/// function or state machine without its own `Role` and without `PermissionsBoundary` (its
/// own, or for functions `Globals.Function`'s), and the CodeDeploy role SAM makes for a
/// function's `DeploymentPreference` without a `Role`. A stage bootstrapped by Ferry refuses to make
/// them (its deployer makes roles only with the stage's boundary on them). A Serverless
/// Framework service's roles are known only once compiled: not judged.
pub fn unbounded_roles(templates: &Templates) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (s, t) in templates.mentioning(&["AWS::IAM::Role", "AWS::Serverless::"]) {
        let global = t.pointer("/Globals/Function/PermissionsBoundary").is_some();
        let mut ids = Vec::new();
        for (id, r) in t["Resources"].as_object().into_iter().flatten() {
            let props = &r["Properties"];
            let bounded = props.get("PermissionsBoundary").is_some();
            let unbounded = match r["Type"].as_str().unwrap_or_default() {
                "AWS::IAM::Role" => !bounded,
                "AWS::Serverless::Function" => props.get("Role").is_none() && !bounded && !global,
                "AWS::Serverless::StateMachine" => props.get("Role").is_none() && !bounded,
                _ => false,
            };
            if unbounded {
                ids.push(id.clone());
            }
            // SAM makes a CodeDeploy role for a deployment preference without a `Role` of its
            // own, and gives it no boundary whatever the function's says.
            let preference = props
                .get("DeploymentPreference")
                .or_else(|| t.pointer("/Globals/Function/DeploymentPreference"));
            if r["Type"] == "AWS::Serverless::Function"
                && preference.is_some_and(|d| d.get("Role").is_none())
            {
                ids.push(format!("{id}'s CodeDeploy role"));
            }
        }
        if !ids.is_empty() {
            out.push((s.name.clone(), ids));
        }
    }
    out
}

/// (service, key) of each parameter that `service.toml` gives a literal value (no `${ssm:…}`,
/// no stack output in it) while its template declares it `NoEcho`: a secret kept in the
/// repository, in every clone of it, whatever CloudFormation hides.
pub fn literal_secrets(templates: &Templates) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, s) in templates.workspace().services.iter().enumerate() {
        let literal: Vec<&String> = s
            .parameters
            .iter()
            .filter(|(_, v)| {
                !v.to_string().is_empty()
                    && !v.references().any(|r| {
                        matches!(
                            r,
                            ferry_manifest::Reference::Ssm { .. }
                                | ferry_manifest::Reference::Output { .. }
                        )
                    })
            })
            .map(|(k, _)| k)
            .collect();
        if literal.is_empty() {
            continue;
        }
        let Some(t) = templates.at(i, &["NoEcho"]) else {
            continue;
        };
        for key in literal {
            if t["Parameters"][key.as_str()].is_object() && template::is_no_echo(t, key) {
                out.push((s.name.clone(), key.clone()));
            }
        }
    }
    out
}

/// An output of a service's template that reads a parameter the template declares `NoEcho`:
/// CloudFormation hides the parameter's value, not the output's, which the console, every
/// `DescribeStacks` and Ferry's `outputs` show to anyone who may read the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoedSecret {
    pub service: String,
    /// The template, repository relative.
    pub template: String,
    pub output: String,
    pub parameter: String,
}

impl std::fmt::Display for EchoedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: output {} of {} reads parameter {}, which it declares NoEcho: CloudFormation hides the parameter, not the output, which the console and DescribeStacks show to every reader of the stack; a deploy that passes {} a SecureString refuses the template: remove the output",
            self.service, self.output, self.template, self.parameter, self.parameter
        )
    }
}

/// Every output of a CloudFormation or SAM template that reads (by `Ref`, `Fn::Sub`, inside any
/// function: `Fn::Base64`, `Fn::Join`) a parameter the same template declares `NoEcho`.
pub fn echoed_secrets(templates: &Templates) -> Vec<EchoedSecret> {
    let mut out = Vec::new();
    for (i, s) in templates.workspace().services.iter().enumerate() {
        let Some(t) = templates.at(i, &["NoEcho"]) else {
            continue;
        };
        let Some(params) = t["Parameters"].as_object() else {
            continue;
        };
        let secret: Vec<&String> = params
            .keys()
            .filter(|k| template::is_no_echo(t, k))
            .collect();
        for (output, definition) in t["Outputs"].as_object().into_iter().flatten() {
            for key in secret
                .iter()
                .filter(|k| ferry_manifest::reads_parameter(definition, k))
            {
                out.push(EchoedSecret {
                    service: s.name.clone(),
                    template: s.template_path(),
                    output: output.clone(),
                    parameter: (*key).clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sub;

    #[test]
    fn sub_replaces_variables_and_keeps_literals() {
        let var = |v: &str| (v == "Env").then(|| "dev".to_string());
        assert_eq!(
            sub("/shop/${Env}/bus", &var).as_deref(),
            Some("/shop/dev/bus")
        );
        assert_eq!(
            sub("/a/${!Literal}", &var).as_deref(),
            Some("/a/${Literal}")
        );
        assert_eq!(sub("/a/${AWS::AccountId}/b", &var), None);
        assert_eq!(sub("/a/${Env", &var), None);
    }
}
