//! What a deploy would change in one stack, computed from the deployed template and parameters
//! and the ones that would deploy (as `cdk diff` does), so that it works on the emulator too:
//! resources added, modified and removed, with replacements and security-sensitive changes
//! called out, and parameter changes.

use std::collections::{BTreeMap, BTreeSet};

use ferry_manifest::reads_parameter;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Add,
    Modify,
    Remove,
}

/// Whether a modified resource is replaced (a new physical resource: data in the old one is
/// gone, names change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "replacement", content = "because")]
pub enum Replacement {
    No,
    /// Replaced because of these properties (or its type).
    Yes(Vec<String>),
    /// Replaced depending on values known only when it deploys (CloudFormation's change set).
    Conditional,
    /// Ferry's table does not know this type: AWS's change set says (on AWS).
    Unknown,
}

/// One resource that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub logical_id: String,
    pub change: Change,
    pub resource_type: String,
    /// For `modify`: the properties (and `DependsOn`, `Condition`, … when they change).
    #[serde(default)]
    pub properties: Vec<String>,
    pub replacement: Replacement,
    /// `IAM`, `resource policy` or `security group`: a change of who may do what.
    pub security: Option<String>,
}

/// One parameter that changes (values as the caller shows them: secrets masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterChange {
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One stack output that changes: added, its definition (value, export, condition) modified,
/// or removed. The dependents that read it get the new value, or none, at their next deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChange {
    pub name: String,
    pub change: Change,
}

/// What a deploy would change in one service's stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackReview {
    pub service: String,
    pub stack: String,
    /// The stack does not exist yet.
    pub create: bool,
    pub resources: Vec<ResourceChange>,
    /// Outputs that change (reviews stored before outputs were reviewed have none).
    #[serde(default)]
    pub outputs: Vec<OutputChange>,
    pub parameters: Vec<ParameterChange>,
    /// Dependencies this review creates or changes, whose outputs the parameters need: they
    /// are known only when approved.
    #[serde(default)]
    pub parameters_after: Vec<String>,
    /// Why the resources were not compared, when they could not be (`resources` is then
    /// empty): the template and the one the stack runs are not of one form (a SAM template
    /// that is expanded only once its parameters resolve, beside a stack given the expanded
    /// one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
}

/// Properties whose change replaces the resource, by type (the common ones of serverless
/// stacks; from CloudFormation's resource reference, "Update requires: Replacement").
const REPLACING: &[(&str, &[&str])] = &[
    (
        "AWS::DynamoDB::Table",
        &["TableName", "KeySchema", "LocalSecondaryIndexes"],
    ),
    ("AWS::S3::Bucket", &["BucketName", "ObjectLockEnabled"]),
    ("AWS::SQS::Queue", &["QueueName", "FifoQueue"]),
    ("AWS::SNS::Topic", &["TopicName", "FifoTopic"]),
    (
        "AWS::SNS::Subscription",
        &["Endpoint", "Protocol", "TopicArn"],
    ),
    ("AWS::Lambda::Function", &["FunctionName", "PackageType"]),
    (
        "AWS::Lambda::Permission",
        &[
            "Action",
            "FunctionName",
            "Principal",
            "SourceArn",
            "SourceAccount",
            "EventSourceToken",
        ],
    ),
    (
        "AWS::Lambda::EventSourceMapping",
        &["EventSourceArn", "StartingPosition"],
    ),
    ("AWS::IAM::Role", &["RoleName", "Path"]),
    ("AWS::IAM::Policy", &[]),
    ("AWS::IAM::ManagedPolicy", &["ManagedPolicyName", "Path"]),
    ("AWS::SSM::Parameter", &["Name"]),
    ("AWS::Logs::LogGroup", &["LogGroupName"]),
    ("AWS::ApiGateway::RestApi", &[]),
    ("AWS::Events::Rule", &["Name", "EventBusName"]),
    (
        "AWS::StepFunctions::StateMachine",
        &["StateMachineName", "StateMachineType"],
    ),
    (
        "AWS::EC2::SecurityGroup",
        &["GroupDescription", "GroupName", "VpcId"],
    ),
    (
        "AWS::EC2::SecurityGroupIngress",
        &[
            "GroupId",
            "IpProtocol",
            "FromPort",
            "ToPort",
            "CidrIp",
            "SourceSecurityGroupId",
        ],
    ),
    (
        "AWS::EC2::SecurityGroupEgress",
        &[
            "GroupId",
            "IpProtocol",
            "FromPort",
            "ToPort",
            "CidrIp",
            "DestinationSecurityGroupId",
        ],
    ),
    ("AWS::S3::BucketPolicy", &["Bucket"]),
    ("AWS::SNS::TopicPolicy", &[]),
    ("AWS::SQS::QueuePolicy", &[]),
];

/// Why a resource type matters for security, if it does.
fn security_of(resource_type: &str, properties: &[String]) -> Option<String> {
    if resource_type.starts_with("AWS::IAM::") {
        return Some("IAM".into());
    }
    if resource_type.starts_with("AWS::EC2::SecurityGroup") {
        return Some("security group".into());
    }
    if matches!(
        resource_type,
        "AWS::Lambda::Permission"
            | "AWS::S3::BucketPolicy"
            | "AWS::SNS::TopicPolicy"
            | "AWS::SQS::QueuePolicy"
            | "AWS::Lambda::LayerVersionPermission"
    ) {
        return Some("resource policy".into());
    }
    let touches = |p: &str| properties.iter().any(|x| x == p);
    if touches("Policies") || touches("Role") || touches("ManagedPolicyArns") {
        return Some("IAM".into());
    }
    if touches("SecurityGroupIds") || touches("VpcConfig") {
        return Some("security group".into());
    }
    None
}

fn resources(template: Option<&Value>) -> BTreeMap<String, &Value> {
    template
        .and_then(|t| t.get("Resources"))
        .and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v)).collect())
        .unwrap_or_default()
}

fn type_of(r: &Value) -> String {
    r.get("Type")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string()
}

/// The resources that change from `before` (the deployed template; `None`: no stack yet) to
/// `after`, in logical-id order.
pub fn diff_resources(before: Option<&Value>, after: &Value) -> Vec<ResourceChange> {
    let (old, new) = (resources(before), resources(Some(after)));
    let ids: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    for id in ids {
        let change = match (old.get(id), new.get(id)) {
            (None, Some(n)) => {
                let t = type_of(n);
                ResourceChange {
                    logical_id: id.clone(),
                    change: Change::Add,
                    security: security_of(&t, &[]),
                    resource_type: t,
                    properties: Vec::new(),
                    replacement: Replacement::No,
                }
            }
            (Some(o), None) => {
                let t = type_of(o);
                ResourceChange {
                    logical_id: id.clone(),
                    change: Change::Remove,
                    security: security_of(&t, &[]),
                    resource_type: t,
                    properties: Vec::new(),
                    replacement: Replacement::No,
                }
            }
            (Some(o), Some(n)) if o != n => {
                let (ot, nt) = (type_of(o), type_of(n));
                let mut properties: Vec<String> = Vec::new();
                let empty = serde_json::Map::new();
                let props = |v: &Value| -> serde_json::Map<String, Value> {
                    v.get("Properties")
                        .and_then(Value::as_object)
                        .unwrap_or(&empty)
                        .clone()
                };
                let (op, np) = (props(o), props(n));
                let keys: BTreeSet<&String> = op.keys().chain(np.keys()).collect();
                for k in keys {
                    if op.get(k) != np.get(k) {
                        properties.push(k.clone());
                    }
                }
                for attr in [
                    "DependsOn",
                    "Condition",
                    "DeletionPolicy",
                    "UpdateReplacePolicy",
                    "Metadata",
                ] {
                    if o.get(attr) != n.get(attr) {
                        properties.push(attr.to_string());
                    }
                }
                let replacement = if ot != nt {
                    Replacement::Yes(vec!["Type".into()])
                } else {
                    match REPLACING.iter().find(|(t, _)| *t == nt) {
                        Some((_, replacing)) => {
                            let why: Vec<String> = properties
                                .iter()
                                .filter(|p| replacing.contains(&p.as_str()))
                                .cloned()
                                .collect();
                            if why.is_empty() {
                                Replacement::No
                            } else {
                                Replacement::Yes(why)
                            }
                        }
                        None => Replacement::Unknown,
                    }
                };
                ResourceChange {
                    logical_id: id.clone(),
                    change: Change::Modify,
                    security: security_of(&nt, &properties),
                    resource_type: nt,
                    properties,
                    replacement,
                }
            }
            _ => continue,
        };
        out.push(change);
    }
    out
}

/// The outputs that change from `before` (the deployed template; `None`: no stack yet) to
/// `after`, in name order: a template that changes only an output changes no resource, and the
/// review must still show it.
pub fn diff_outputs(before: Option<&Value>, after: &Value) -> Vec<OutputChange> {
    let outputs = |t: Option<&Value>| -> BTreeMap<String, Value> {
        t.and_then(|t| t.get("Outputs"))
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let (old, new) = (outputs(before), outputs(Some(after)));
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let change = match (old.get(name), new.get(name)) {
                (None, Some(_)) => Change::Add,
                (Some(_), None) => Change::Remove,
                (Some(o), Some(n)) if o != n => Change::Modify,
                _ => return None,
            };
            Some(OutputChange {
                name: name.clone(),
                change,
            })
        })
        .collect()
}

/// Adds to `outputs` (from [`diff_outputs`]) each output of `after` whose definition reads a
/// parameter in `parameters` (those that change: `Ref`, or `${Name}` in `Fn::Sub`), as
/// modified: its value changes though its text does not, and dependents receive the new one.
pub fn with_parameter_outputs(
    outputs: &mut Vec<OutputChange>,
    after: &Value,
    parameters: &[ParameterChange],
) {
    let Some(defined) = after.get("Outputs").and_then(Value::as_object) else {
        return;
    };
    for (name, output) in defined {
        if outputs.iter().any(|o| o.name == *name) {
            continue;
        }
        if parameters.iter().any(|p| reads_parameter(output, &p.name)) {
            outputs.push(OutputChange {
                name: name.clone(),
                change: Change::Modify,
            });
        }
    }
    outputs.sort_by(|a, b| a.name.cmp(&b.name));
}

/// Adds what a CloudFormation change set says (logical id → `True`, `False`, `Conditional`) to
/// `changes`: its replacement decides; a resource it changes that the template diff did not show
/// (a parameter's new value reaching it) is added as modified by its parameters, and one that a
/// SAM template `after` does not name (the change set is of its expansion: a function's role,
/// its event source, an implicit API) as one the transform makes.
pub fn with_change_set(
    changes: &mut Vec<ResourceChange>,
    change_set: &BTreeMap<String, String>,
    after: &Value,
) {
    let sam = ferry_manifest::is_sam(after);
    for (id, replacement) in change_set {
        let decided = match replacement.as_str() {
            "True" => Replacement::Yes(vec!["CloudFormation's change set".into()]),
            "Conditional" => Replacement::Conditional,
            _ => Replacement::No,
        };
        match changes.iter_mut().find(|c| c.logical_id == *id) {
            Some(c) if c.change == Change::Modify => c.replacement = decided,
            Some(_) => {}
            None => {
                let named = resources(Some(after)).get(id).map(|r| type_of(r));
                let (t, why) = match named {
                    Some(t) => (t, "(through its parameters)"),
                    None if sam => ("?".into(), "(made by the SAM transform)"),
                    None => ("?".into(), "(through its parameters)"),
                };
                changes.push(ResourceChange {
                    logical_id: id.clone(),
                    change: Change::Modify,
                    security: security_of(&t, &[]),
                    resource_type: t,
                    properties: vec![why.into()],
                    replacement: decided,
                });
            }
        }
    }
    changes.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
}

/// The parameters that change from `before` to `after` (values as given: mask them first).
pub fn diff_parameters(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<ParameterChange> {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .map(|n| ParameterChange {
            name: n.clone(),
            before: before.get(n).cloned(),
            after: after.get(n).cloned(),
        })
        .collect()
}

/// The review report's JSON (`target/ferry/reports/review-<stage id>-<release>.json`, beside
/// the [`markdown`]): what a tool that posts or checks reviews reads.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewDoc<'a> {
    /// The stage's name.
    pub stage: &'a str,
    /// The pending release's id: what `approve` takes.
    pub release: &'a str,
    /// What the approval's release will be (`deploy` or `promote`).
    pub kind: crate::ReleaseKind,
    /// A promote's source stage.
    pub from: Option<&'a str>,
    pub reviews: &'a [StackReview],
    /// Deployed services left out of the review that the approval checks.
    pub dependents: &'a [String],
}

impl<'a> ReviewDoc<'a> {
    /// The report of `pending`, a review of the stage named `stage`.
    pub fn of(stage: &'a str, pending: &'a crate::PendingRelease) -> Self {
        ReviewDoc {
            stage,
            release: &pending.id,
            kind: pending.kind,
            from: pending.from.as_deref(),
            reviews: &pending.reviews,
            dependents: &pending.dependents,
        }
    }
}

/// The review as Markdown: what a pull-request comment or a CodePipeline approval shows;
/// `dependents`: deployed services left out of it that the approval checks (see
/// [`PendingRelease::dependents`](crate::PendingRelease::dependents)).
pub fn markdown(
    stage: &str,
    release: &str,
    reviews: &[StackReview],
    dependents: &[String],
) -> String {
    let mut md = format!("## Ferry review: stage `{stage}`, release `{release}`\n\n");
    if reviews.is_empty() {
        md.push_str("Nothing would change.\n");
        return md;
    }
    let replaced: usize = reviews
        .iter()
        .flat_map(|r| &r.resources)
        .filter(|c| matches!(c.replacement, Replacement::Yes(_)))
        .count();
    let security: usize = reviews
        .iter()
        .flat_map(|r| &r.resources)
        .filter(|c| c.security.is_some())
        .count();
    md.push_str(&format!(
        "{} stack(s) change; {replaced} resource replacement(s); {security} security-sensitive change(s).\n\nApprove with `approve {stage} {release}`.\n",
        reviews.len()
    ));
    if !dependents.is_empty() {
        md.push_str(&format!(
            "\nAfter approval, Ferry also checks {}, which {} on stacks this review changes: each redeploys, with the package it runs, only if an output it receives changes.\n",
            dependents
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if dependents.len() == 1 { "depends" } else { "depend" }
        ));
    }
    for r in reviews {
        md.push_str(&format!(
            "\n### {} (`{}`{})\n\n",
            r.service,
            r.stack,
            if r.create { ", new stack" } else { "" }
        ));
        if let Some(why) = &r.not_compared {
            md.push_str(&format!("Resources and outputs not compared: {why}.\n"));
        } else if r.resources.is_empty() {
            md.push_str("No resource changes.\n");
        } else {
            md.push_str(
                "| change | resource | type | replacement | note |\n|---|---|---|---|---|\n",
            );
            for c in &r.resources {
                let change = match c.change {
                    Change::Add => "add",
                    Change::Modify => "modify",
                    Change::Remove => "**remove**",
                };
                let replacement = match &c.replacement {
                    Replacement::No => "no".to_string(),
                    Replacement::Yes(why) => format!("**yes** ({})", why.join(", ")),
                    Replacement::Conditional => "conditional".to_string(),
                    Replacement::Unknown => "unknown".to_string(),
                };
                let mut note = Vec::new();
                if let Some(s) = &c.security {
                    note.push(format!("**{s}**"));
                }
                if !c.properties.is_empty() {
                    note.push(c.properties.join(", "));
                }
                md.push_str(&format!(
                    "| {change} | {} | {} | {replacement} | {} |\n",
                    c.logical_id,
                    c.resource_type,
                    note.join("; ")
                ));
            }
        }
        if !r.outputs.is_empty() {
            let said: Vec<String> = r
                .outputs
                .iter()
                .map(|o| match o.change {
                    Change::Add => format!("`{}` added", o.name),
                    Change::Modify => format!("`{}` modified", o.name),
                    Change::Remove => format!("`{}` **removed**", o.name),
                })
                .collect();
            md.push_str(&format!("\nOutputs: {}.\n", said.join(", ")));
        }
        if !r.parameters_after.is_empty() {
            md.push_str(&format!(
                "\nParameters come from {}, which this review also changes: resolved when approved.\n",
                r.parameters_after.join(", ")
            ));
        }
        if !r.parameters.is_empty() {
            md.push_str("\n| parameter | before | after |\n|---|---|---|\n");
            for p in &r.parameters {
                md.push_str(&format!(
                    "| {} | {} | {} |\n",
                    p.name,
                    p.before.as_deref().unwrap_or("(none)"),
                    p.after.as_deref().unwrap_or("(none)")
                ));
            }
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adds_modifies_removes_and_calls_out_what_matters() {
        let before = json!({"Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "a", "BillingMode": "PAY_PER_REQUEST"}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Key": "x"}, "Role": "r1"}},
            "Old": {"Type": "AWS::SQS::Queue"},
            "Same": {"Type": "AWS::SNS::Topic"},
            "Thing": {"Type": "Custom::Thing", "Properties": {"A": 1}}
        }});
        let after = json!({"Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "b", "BillingMode": "PAY_PER_REQUEST"}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Key": "y"}, "Role": "r2"}},
            "Perm": {"Type": "AWS::Lambda::Permission", "Properties": {}},
            "Same": {"Type": "AWS::SNS::Topic"},
            "Thing": {"Type": "Custom::Thing", "Properties": {"A": 2}}
        }});
        let d = diff_resources(Some(&before), &after);
        let by = |id: &str| d.iter().find(|c| c.logical_id == id).unwrap().clone();
        assert_eq!(d.len(), 5, "{d:?}");
        assert_eq!(
            by("Table").replacement,
            Replacement::Yes(vec!["TableName".into()])
        );
        assert_eq!(by("Fn").replacement, Replacement::No);
        assert_eq!(by("Fn").properties, vec!["Code", "Role"]);
        assert_eq!(by("Fn").security.as_deref(), Some("IAM"));
        assert_eq!(by("Perm").change, Change::Add);
        assert_eq!(by("Perm").security.as_deref(), Some("resource policy"));
        assert_eq!(by("Old").change, Change::Remove);
        assert_eq!(by("Thing").replacement, Replacement::Unknown);
        // A new stack: everything is added.
        assert!(
            diff_resources(None, &after)
                .iter()
                .all(|c| c.change == Change::Add)
        );
    }

    /// A SAM template is reviewed against the template the stack was given (SAM too), and a
    /// change set, which is of the expansion, names resources the template does not: the
    /// transform's, said so, never taken for a parameter's reach.
    #[test]
    fn a_change_set_of_a_sam_expansion_names_what_the_transform_makes() {
        let before = json!({"Transform": "AWS::Serverless-2016-10-31", "Resources": {
            "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "s3://b/1", "Runtime": "python3.12"}}
        }});
        let after = json!({"Transform": "AWS::Serverless-2016-10-31", "Resources": {
            "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "s3://b/2", "Runtime": "python3.12"}}
        }});
        let mut changes = diff_resources(Some(&before), &after);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].properties, ["CodeUri"]);
        with_change_set(
            &mut changes,
            &BTreeMap::from([
                ("Fn".to_string(), "False".to_string()),
                ("FnRole".to_string(), "False".to_string()),
            ]),
            &after,
        );
        let role = changes.iter().find(|c| c.logical_id == "FnRole").unwrap();
        assert_eq!(role.properties, ["(made by the SAM transform)"]);
        assert_eq!(role.replacement, Replacement::No);
    }

    #[test]
    fn parameters_and_markdown() {
        let before = BTreeMap::from([
            ("A".to_string(), "1".to_string()),
            ("S".to_string(), "****".to_string()),
        ]);
        let after = BTreeMap::from([
            ("A".to_string(), "2".to_string()),
            ("S".to_string(), "****".to_string()),
            ("B".to_string(), "x".to_string()),
        ]);
        let p = diff_parameters(&before, &after);
        assert_eq!(p.len(), 2);
        let review = StackReview {
            service: "api".into(),
            stack: "shop-api-prod".into(),
            create: false,
            resources: diff_resources(
                Some(
                    &json!({"Resources": {"T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "a"}}}}),
                ),
                &json!({"Resources": {"T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "b"}}}}),
            ),
            outputs: diff_outputs(
                Some(
                    &json!({"Outputs": {"Url": {"Value": "a"}, "Old": {"Value": "o"}, "Same": {"Value": 1}}}),
                ),
                &json!({"Outputs": {"Url": {"Value": "b"}, "New": {"Value": "n"}, "Same": {"Value": 1}}}),
            ),
            parameters: p,
            parameters_after: vec![],
            not_compared: None,
        };
        assert_eq!(
            review.outputs,
            [
                OutputChange {
                    name: "New".into(),
                    change: Change::Add
                },
                OutputChange {
                    name: "Old".into(),
                    change: Change::Remove
                },
                OutputChange {
                    name: "Url".into(),
                    change: Change::Modify
                },
            ]
        );
        let md = markdown(
            "prod",
            "r1",
            std::slice::from_ref(&review),
            &["web".to_string()],
        );
        assert!(
            md.contains("After approval, Ferry also checks `web`, which depends on stacks this review changes"),
            "{md}"
        );
        assert!(
            md.contains("\nOutputs: `New` added, `Old` **removed**, `Url` modified.\n"),
            "{md}"
        );
        // Resources that could not be compared are said so, not listed as none.
        let unexpanded = StackReview {
            resources: Vec::new(),
            outputs: Vec::new(),
            not_compared: Some("its SAM template expands only once its parameters resolve".into()),
            ..review.clone()
        };
        let said = markdown("prod", "r1", std::slice::from_ref(&unexpanded), &[]);
        assert!(
            said.contains("Resources and outputs not compared: its SAM template expands only once its parameters resolve.\n")
                && !said.contains("No resource changes."),
            "{said}"
        );
        // An output whose text is the same but reads a parameter that changes.
        let mut outputs = Vec::new();
        with_parameter_outputs(
            &mut outputs,
            &json!({"Outputs": {
                "Seen": {"Value": {"Ref": "A"}},
                "Url": {"Value": {"Fn::Sub": "https://${B}/x"}},
                "Both": {"Value": {"Fn::Sub": ["${X}", {"X": {"Ref": "S"}}]}},
                "Fixed": {"Value": {"Ref": "Q"}}
            }}),
            &review.parameters,
        );
        let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            ["Seen", "Url"],
            "A and B change; S stays masked as it was"
        );
        // `${A}` naming an Fn::Sub variable of its own is no read of parameter A.
        assert!(!reads_parameter(
            &json!({"Fn::Sub": ["${A}", {"A": "fixed"}]}),
            "A"
        ));
        assert!(reads_parameter(
            &json!({"Fn::Sub": ["${X}", {"X": {"Ref": "A"}}]}),
            "A"
        ));
        // AWS's change set decides replacements, and names what parameters change.
        let mut with = review.resources.clone();
        let after = json!({"Resources": {
            "T": {"Type": "AWS::DynamoDB::Table"},
            "Fn": {"Type": "AWS::Lambda::Function"}
        }});
        with_change_set(
            &mut with,
            &BTreeMap::from([
                ("T".to_string(), "Conditional".to_string()),
                ("Fn".to_string(), "False".to_string()),
            ]),
            &after,
        );
        assert_eq!(with[0].logical_id, "Fn");
        assert_eq!(with[0].properties, vec!["(through its parameters)"]);
        assert_eq!(with[0].replacement, Replacement::No);
        assert_eq!(with[1].replacement, Replacement::Conditional);
        assert!(
            md.contains("1 stack(s) change; 1 resource replacement(s)"),
            "{md}"
        );
        assert!(
            md.contains("| modify | T | AWS::DynamoDB::Table | **yes** (TableName) | TableName |"),
            "{md}"
        );
        assert!(md.contains("| A | 1 | 2 |"), "{md}");
        assert!(md.contains("| B | (none) | x |"), "{md}");
        assert!(md.contains("`approve prod r1`"), "{md}");
    }
}
