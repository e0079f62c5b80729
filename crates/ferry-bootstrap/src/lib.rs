#![doc = include_str!("../README.md")]

use std::collections::{BTreeMap, BTreeSet};

use ferry_manifest::{ServiceKind, Stage, Workspace};
use serde_json::{Value, json};

mod serverless;

/// The most characters IAM takes in a role's inline policies, together.
pub const MAX_INLINE_POLICY: usize = 10_240;
/// The most characters IAM takes in one customer managed policy.
pub const MAX_MANAGED_POLICY: usize = 6_144;
/// The managed policies IAM attaches to one role by default (a quota that can be raised).
pub const MAX_MANAGED_POLICIES: usize = 10;

/// The service name the bootstrap stack is tagged with (`ferry:service`): no service of a
/// workspace can have it (service names start with a letter).
pub const BOOTSTRAP_SERVICE: &str = "_bootstrap";

/// What to put into the stack besides the bucket, role and topic.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Principal ARNs the deployer role trusts (a CI role, an account root).
    pub trust: Vec<String>,
    /// Also a CodeBuild project building this repository (its source location, e.g.
    /// `https://github.com/acme/shop.git`), triggered by the `[ci]` rules that name the stage.
    pub codebuild: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootstrapError {
    #[error(
        "the deployer role must trust someone: give --trust <principal ARN> (the role or user your CI or you deploy as, e.g. arn:aws:iam::111111111111:role/ci), or --codebuild <repository URL> (its CodeBuild project's role is then trusted)"
    )]
    NoTrust,
    #[error("`{arn}` is not an IAM principal ARN (arn:aws:iam::<account>:root, :role/…, :user/…)")]
    BadPrincipal { arn: String },
    #[error("role-arn `{arn}` of stage `{stage}` is not an IAM role ARN")]
    BadRoleArn { stage: String, arn: String },
    #[error(
        "the deployer role's policy would be {size} characters in {parts} managed policies of at most {MAX_MANAGED_POLICY}, and IAM attaches {MAX_MANAGED_POLICIES} to a role: the stage has too many services or named stages for one role; split the services over projects"
    )]
    PolicyTooLarge { size: usize, parts: usize },
    #[error(
        "the bootstrap template would be {size} bytes, over the {max} CloudFormation takes in a request (the bucket a larger one would be uploaded to is made by this template): the stage has too many services or named stages for one role; split the services over projects"
    )]
    TemplateTooLarge { size: usize, max: usize },
    #[error(
        "one statement of the deployer role's policy ({why}) would be {size} characters, over IAM's {MAX_MANAGED_POLICY} for one managed policy: the stage has too many services or named stages for one role; split the services over projects"
    )]
    StatementTooLarge { why: String, size: usize },
    #[error(
        "`{url}` is not a repository URL CodeBuild can build (https://github.com/…, https://bitbucket.org/…, https://gitlab.com/…)"
    )]
    BadRepository { url: String },
}

/// One statement of the deployer role's policy, for review.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permission {
    /// What needs it: `CloudFormation`, `records (SSM)`, or a resource type a template uses.
    pub why: String,
    /// A denial: what the role may never do, whatever else allows it.
    pub deny: bool,
    pub actions: Vec<String>,
    /// Resource ARNs (`Fn::Sub` patterns) or `*`.
    pub resources: Vec<String>,
    /// A condition (JSON), when the statement has one.
    pub condition: Option<Value>,
}

/// The bootstrap stack of a stage.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub stack_name: String,
    /// The CloudFormation template (JSON).
    pub template: Value,
    /// The deployer role's permissions, as granted.
    pub permissions: Vec<Permission>,
    /// What a reader should know: resource types without a table entry, settings to copy
    /// into `ferry.toml`, `[ci]` rules a webhook filter cannot express.
    pub notes: Vec<String>,
}

impl Bootstrap {
    /// The template as deployed: pretty JSON, stable for the same inputs; compact when pretty
    /// would be over what CloudFormation takes inline (the bucket a larger template would be
    /// uploaded to is made by this very template).
    pub fn body(&self) -> String {
        let pretty =
            serde_json::to_string_pretty(&self.template).expect("a template serialises") + "\n";
        if pretty.len() <= ferry_package::MAX_INLINE_TEMPLATE {
            return pretty;
        }
        serde_json::to_string(&self.template).expect("a template serialises") + "\n"
    }
}

/// The stage id the bootstrap of `stage` is made for: its own, or `previews` for the preview
/// stages (they share one configuration, `[stages."*"]`, and one bootstrap).
pub fn stage_id(stage: &Stage) -> &str {
    if stage.preview { "previews" } else { &stage.id }
}

/// The name of the permissions boundary the bootstrap of `stage` makes: every role a deploy of
/// the stage creates (or adds to) must carry it (`iam:PermissionsBoundary`), so that no template
/// gives a role more than the deployer itself may do (see [`BOUNDARY_PARAMETER`]).
pub fn boundary_name(ws: &Workspace, stage: &Stage) -> String {
    // IAM takes policy names of at most 128 characters.
    ferry_manifest::fit_name(
        &format!("ferry-{}-{}-boundary", ws.project.name, stage_id(stage)),
        128,
    )
}

pub use ferry_package::BOUNDARY_PARAMETER;

/// The IAM actions that give a role rights: allowed only with the stage's boundary on it.
const ROLE_WRITES: [&str; 4] = [
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PutRolePermissionsBoundary",
];

/// Moves [`ROLE_WRITES`] out of each statement granting them into one of its own, allowed only
/// on a role that carries the stage's permissions boundary (`boundary`, an `Fn::Sub` ARN). The
/// deployer could otherwise make a role with any rights and run code with it (a function), or
/// assume it: administrator of the account, other stages' resources included.
fn bound_role_writes(out: &mut Vec<Permission>, boundary: &str) {
    let mut at = 0;
    while at < out.len() {
        let p = &out[at];
        if p.deny || !p.actions.iter().any(|a| ROLE_WRITES.contains(&a.as_str())) {
            at += 1;
            continue;
        }
        let writes: Vec<String> = p
            .actions
            .iter()
            .filter(|a| ROLE_WRITES.contains(&a.as_str()))
            .cloned()
            .collect();
        // The statement's own condition, if any, holds too.
        let mut condition = p.condition.clone().unwrap_or_else(|| json!({}));
        condition["StringEquals"]["iam:PermissionsBoundary"] = json!({"Fn::Sub": boundary});
        let bounded = Permission {
            why: format!("{}, only with the stage's permissions boundary", p.why),
            actions: writes,
            resources: p.resources.clone(),
            condition: Some(condition),
            ..Default::default()
        };
        out[at]
            .actions
            .retain(|a| !ROLE_WRITES.contains(&a.as_str()));
        if out[at].actions.is_empty() {
            out[at] = bounded;
            at += 1;
        } else {
            out.insert(at + 1, bounded);
            at += 2;
        }
    }
}

/// The name of the bootstrap stack of `stage`: `ferry-<project>-<stage id>`, or
/// `ferry-<project>-previews` for the preview stages (they share one configuration).
pub fn stack_name(ws: &Workspace, stage: &Stage) -> String {
    format!("ferry-{}-{}", ws.project.name, stage_id(stage))
}

/// What to write into ferry.toml after the bootstrap of `stage` deployed with `outputs`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suggestions {
    /// The table to set them under: the stage's, or `"*"` for the preview stages.
    pub table: String,
    /// `artifact-bucket = "…"` and `role-arn = "…"`, where ferry.toml does not say so yet.
    pub settings: Vec<String>,
    /// The notification topic, where `[notifications] sns-topic` does not name it yet.
    pub sns_topic: Option<String>,
}

/// The settings ferry.toml lacks to use what the bootstrap of `stage` made (its `outputs`).
pub fn suggestions(
    ws: &Workspace,
    stage: &Stage,
    outputs: &std::collections::BTreeMap<String, String>,
) -> Suggestions {
    let cfg = &stage.config;
    let mut settings = Vec::new();
    if let Some(bucket) = outputs.get("ArtifactBucket")
        && cfg.artifact_bucket.as_deref() != Some(bucket)
    {
        settings.push(format!("artifact-bucket = \"{bucket}\""));
    }
    if let Some(role) = outputs.get("DeployerRole")
        && cfg.role_arn.as_deref() != Some(role)
    {
        settings.push(format!("role-arn = \"{role}\""));
    }
    Suggestions {
        table: if stage.preview {
            "\"*\"".to_string()
        } else {
            stage.name.clone()
        },
        settings,
        sns_topic: outputs
            .get("NotificationTopic")
            .filter(|t| ws.project.notifications.sns_topic.as_deref() != Some(t.as_str()))
            .cloned(),
    }
}

/// `stage` as its names are rendered: for the preview stages, every preview's (`*` for the id).
fn rendered(stage: &Stage) -> Stage {
    let mut at = stage.clone();
    if stage.preview {
        at.id = "*".into();
    }
    at
}

/// The stage's service stack names (`*` for the stage id of the preview stages).
fn stack_names(ws: &Workspace, stage: &Stage) -> Vec<String> {
    let at = rendered(stage);
    let names: BTreeSet<String> = ws
        .services
        .iter()
        .map(|s| ws.stack_name(&s.name, &at))
        .collect();
    names.into_iter().collect()
}

/// How much of a stack name a role CloudFormation names after it surely starts with: the name
/// `<stack>-<logical id>-<random>` is cut to 64 characters, from the stack name's end first.
const ROLE_PREFIX: usize = 16;

fn principal_ok(arn: &str) -> bool {
    let Some([a, partition, service, region, account, resource]) = ferry_manifest::arn_fields(arn)
    else {
        return false;
    };
    a == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && ferry_manifest::is_account_id(account)
        && (resource == "root" || resource.starts_with("role/") || resource.starts_with("user/"))
        // IAM's characters for a path and name: no wildcard (a trust policy's principal takes
        // none: `role/*` is refused by IAM), no quote, no space.
        && resource.split_once('/').is_none_or(|(_, rest)| {
            !rest.is_empty()
                && rest.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '+' | '=' | ',' | '.' | '@' | '_' | '-' | '/')
                })
        })
}

/// The role name and path of a role ARN (`arn:aws:iam::1:role/ci/ferry` → (`ferry`, `/ci/`)).
fn role_name(arn: &str) -> Option<(String, String)> {
    let rest = arn.split_once(":role/")?.1;
    let (path, name) = match rest.rsplit_once('/') {
        Some((p, n)) => (format!("/{p}/"), n.to_string()),
        None => ("/".to_string(), rest.to_string()),
    };
    (!name.is_empty()).then_some((name, path))
}

/// A `[ci]` glob as a webhook filter's regular expression.
fn glob_regex(glob: &str) -> String {
    let mut out = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => out.push_str(".*"),
            c if c.is_ascii_alphanumeric() || c == '/' || c == '-' || c == '_' => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out.push('$');
    out
}

/// Assuming a role, which neither the deployer nor a role a deploy makes ever needs: either
/// would take that role's rights.
const ASSUME_ROLE: &[&str] = &[
    "sts:AssumeRole",
    "sts:AssumeRoleWithSAML",
    "sts:AssumeRoleWithWebIdentity",
];

/// The stack of `stage`: artifact bucket, deployer role, topic, and optionally a CodeBuild
/// project. Everything account-specific is `AWS::AccountId` and `AWS::Region`, so the template
/// is the same for every account and needs no AWS call to make.
pub fn plan(ws: &Workspace, stage: &Stage, options: &Options) -> Result<Bootstrap, BootstrapError> {
    for t in &options.trust {
        if !principal_ok(t) {
            return Err(BootstrapError::BadPrincipal { arn: t.clone() });
        }
    }
    if options.trust.is_empty() && options.codebuild.is_none() {
        return Err(BootstrapError::NoTrust);
    }
    if let Some(url) = &options.codebuild
        && ![
            "https://github.com/",
            "https://bitbucket.org/",
            "https://gitlab.com/",
        ]
        .iter()
        .any(|p| url.starts_with(p) && url.len() > p.len())
    {
        return Err(BootstrapError::BadRepository { url: url.clone() });
    }
    let project = &ws.project.name;
    let id = stage_id(stage);
    let mut notes = Vec::new();
    let mut resources = serde_json::Map::new();
    let mut outputs = serde_json::Map::new();

    // The artifact bucket: kept when the stack goes (it holds every release's packages).
    let mut bucket_props = json!({
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": true}
        ]},
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": true, "BlockPublicPolicy": true,
            "IgnorePublicAcls": true, "RestrictPublicBuckets": true
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "VersioningConfiguration": {"Status": "Enabled"},
        "LifecycleConfiguration": {"Rules": [
            {"Id": "old-versions", "Status": "Enabled",
             "NoncurrentVersionExpiration": {"NoncurrentDays": 30}},
            {"Id": "unfinished-uploads", "Status": "Enabled",
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}
        ]}
    });
    match &stage.config.artifact_bucket {
        Some(name) => bucket_props["BucketName"] = json!(name),
        None => notes.push(
            "ferry.toml names no artifact-bucket for this stage: CloudFormation names the bucket; set artifact-bucket to the ArtifactBucket output".into(),
        ),
    }
    resources.insert(
        "ArtifactBucket".into(),
        json!({
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": bucket_props
        }),
    );
    resources.insert(
        "ArtifactBucketPolicy".into(),
        json!({
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "ArtifactBucket"},
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Sid": "TlsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [
                        {"Fn::GetAtt": ["ArtifactBucket", "Arn"]},
                        {"Fn::Sub": "${ArtifactBucket.Arn}/*"}
                    ],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}
                }]}
            }
        }),
    );
    outputs.insert(
        "ArtifactBucket".into(),
        json!({"Description": "artifact-bucket in ferry.toml", "Value": {"Ref": "ArtifactBucket"}}),
    );

    resources.insert(
        "NotificationTopic".into(),
        json!({
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "TopicName": format!("ferry-{project}-{id}"),
                "KmsMasterKeyId": "alias/aws/sns"
            }
        }),
    );
    outputs.insert(
        "NotificationTopic".into(),
        json!({"Description": "[notifications] sns-topic in ferry.toml", "Value": {"Ref": "NotificationTopic"}}),
    );

    // The deployer role.
    let (role, path) = match &stage.config.role_arn {
        Some(arn) => role_name(arn).ok_or_else(|| BootstrapError::BadRoleArn {
            stage: stage.name.clone(),
            arn: arn.clone(),
        })?,
        None => {
            notes.push(
                "ferry.toml names no role-arn for this stage: set it to the DeployerRole output, so that deploys assume it".into(),
            );
            // IAM takes role names of at most 64 characters.
            (
                ferry_manifest::fit_name(&format!("ferry-{project}-{id}-deployer"), 64),
                "/".into(),
            )
        }
    };
    let mut permissions = permissions(ws, stage, &mut notes);
    let boundary = boundary_name(ws, stage);
    let boundary_arn =
        format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/{boundary}");
    bound_role_writes(&mut permissions, &boundary_arn);
    let Denials {
        all: denied,
        deployer_only,
    } = denials(ws, stage, &role, &path, &permissions, &mut notes);
    // The boundary: no more than the deployer may do (its denials hold for every role it makes),
    // nor any IAM write (a role of a function making roles of its own would escape it).
    let mut ceiling = vec![
        Permission {
            why: "the ceiling of every role a deploy makes".into(),
            actions: strings(&["*"]),
            resources: strings(&["*"]),
            ..Default::default()
        },
        Permission {
            why: "no role a deploy makes writes IAM".into(),
            deny: true,
            actions: strings(&[
                "iam:Add*",
                "iam:Attach*",
                "iam:Create*",
                "iam:Delete*",
                "iam:Detach*",
                "iam:PassRole",
                "iam:Put*",
                "iam:Remove*",
                "iam:Set*",
                "iam:Tag*",
                "iam:Untag*",
                "iam:Update*",
                "iam:Upload*",
            ]),
            resources: strings(&["*"]),
            ..Default::default()
        },
        Permission {
            why:
                "no role a deploy makes takes another role's rights, or runs commands on instances"
                    .into(),
            deny: true,
            actions: strings(&[ASSUME_ROLE, &["ssm:SendCommand", "ssm:StartSession"]].concat()),
            resources: strings(&["*"]),
            ..Default::default()
        },
        Permission {
            why: "no role a deploy makes starts or changes Ferry's CodeBuild projects".into(),
            deny: true,
            actions: strings(&["codebuild:*"]),
            resources: vec![format!(
                "arn:${{AWS::Partition}}:codebuild:*:${{AWS::AccountId}}:project/ferry-{project}-*"
            )],
            ..Default::default()
        },
    ];
    // The deployer's denials, as many as one managed policy holds (a role takes one boundary):
    // the smallest first, the broadest rules (tags, SSM paths, buckets) being short; what does
    // not fit is named.
    let mut by_size: Vec<&Permission> = denied.iter().collect();
    by_size.sort_by_key(|p| iam_size(&statements(std::slice::from_ref(*p), 0)));
    let mut left_out = Vec::new();
    for p in by_size {
        ceiling.push(p.clone());
        if iam_size(&statements(&ceiling, 0)) > MAX_MANAGED_POLICY {
            ceiling.pop();
            left_out.push(p.why.clone());
        }
    }
    if !left_out.is_empty() {
        notes.push(format!(
            "the permissions boundary holds what fits of the deployer's denials in one managed policy; left out: {}: the roles a deploy makes are kept from those only by their own policies",
            left_out.join("; ")
        ));
    }
    permissions.extend(denied);
    permissions.extend(deployer_only);
    // The deployer never assumes a role (CloudFormation works with its own credentials): a role
    // of the stage's names made before the boundary, its trust pointed at the deployer
    // (`UpdateAssumeRolePolicy`, which no boundary condition reaches), would give it that
    // role's rights.
    permissions.push(Permission {
        why: "never: assume another role".into(),
        deny: true,
        actions: strings(ASSUME_ROLE),
        resources: strings(&["*"]),
        ..Default::default()
    });
    // Nor may the deployer take the boundary off a role, or change the boundary itself.
    permissions.push(Permission {
        why: "the permissions boundary stays on every role, as it is".into(),
        deny: true,
        actions: strings(&["iam:DeleteRolePermissionsBoundary"]),
        resources: strings(&["*"]),
        ..Default::default()
    });
    permissions.push(Permission {
        why: "the permissions boundary stays as it is".into(),
        deny: true,
        actions: strings(&[
            "iam:CreatePolicyVersion",
            "iam:DeletePolicy",
            "iam:DeletePolicyVersion",
            "iam:SetDefaultPolicyVersion",
        ]),
        resources: vec![boundary_arn.clone()],
        ..Default::default()
    });
    let ceiling_statements = statements(&ceiling, 0);
    resources.insert(
        "PermissionsBoundary".into(),
        json!({
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "ManagedPolicyName": boundary,
                "Path": "/",
                "Description": format!("Ferry: the most any role a deploy of stage {} of {project} makes may do", stage.name),
                "PolicyDocument": {"Version": "2012-10-17", "Statement": ceiling_statements}
            }
        }),
    );
    outputs.insert(
        "PermissionsBoundary".into(),
        json!({"Description": "the permissions boundary every role a deploy makes carries (FerryPermissionsBoundary)", "Value": {"Ref": "PermissionsBoundary"}}),
    );
    let mut principals: Vec<Value> = options.trust.iter().map(|t| json!(t)).collect();
    if options.codebuild.is_some() {
        principals.push(json!({"Fn::GetAtt": ["CodeBuildRole", "Arn"]}));
    }
    let mut trust = json!({
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": "sts:AssumeRole"
    });
    if let Some(ext) = &stage.config.external_id {
        trust["Condition"] = json!({"StringEquals": {"sts:ExternalId": ext}});
    }
    // The role's policies: one inline policy when it fits, else managed policies (a larger
    // limit in all), each statement whole in one of them.
    // IAM takes policy names of at most 128 characters (with `-<n>` after this).
    let policy_name = ferry_manifest::fit_name(&format!("ferry-{project}-{id}-deploy"), 125);
    let mut role_props = json!({
        "RoleName": role,
        "Path": path,
        "Description": format!("Ferry deploys stage {} of {project} with this role", stage.name),
        "MaxSessionDuration": 3600,
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]}
    });
    match policy_parts(&mut permissions, &policy_name, &path)? {
        None => {
            role_props["Policies"] = json!([{
                "PolicyName": "ferry-deploy",
                "PolicyDocument": {"Version": "2012-10-17", "Statement": statements(&permissions, 0)}
            }]);
        }
        Some(parts) => {
            let mut first = 0;
            for (n, end) in parts.iter().enumerate() {
                let n = n + 1;
                resources.insert(
                    format!("DeployerPolicy{n}"),
                    json!({
                        "Type": "AWS::IAM::ManagedPolicy",
                        "Properties": {
                            "ManagedPolicyName": format!("{policy_name}-{n}"),
                            "Path": path,
                            "Description": format!("Ferry deploys stage {} of {project} with this policy (part {n} of {})", stage.name, parts.len()),
                            "Roles": [{"Ref": "DeployerRole"}],
                            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements(&permissions[first..*end], first)}
                        }
                    }),
                );
                first = *end;
            }
        }
    }
    resources.insert(
        "DeployerRole".into(),
        json!({"Type": "AWS::IAM::Role", "Properties": role_props}),
    );
    outputs.insert(
        "DeployerRole".into(),
        json!({"Description": "role-arn in ferry.toml", "Value": {"Fn::GetAtt": ["DeployerRole", "Arn"]}}),
    );

    if let Some(url) = &options.codebuild {
        codebuild(ws, stage, url, &mut resources, &mut outputs, &mut notes);
        if stage.preview && ws.project.ci.pull_requests.is_some() {
            notes.push(
                "pull-request builds run the pull request's own code with the previews' role: whoever can open a pull request can deploy (and remove) preview stacks; the role is denied every named stage's stacks, records, roles and buckets".into(),
            );
        }
    }
    notes.push(format!(
        "the role makes roles (and writes their policies) only with the permissions boundary {boundary} on them, which allows everything but IAM writes, assuming roles, Ferry's CodeBuild projects, commands on instances, and the role's own denials that fit (other stages' tagged resources, records, parameters, buckets): a template declaring the parameter `{BOUNDARY_PARAMETER}` gets its name from a deploy, and its roles take it as `PermissionsBoundary: !Sub \"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/${{{BOUNDARY_PARAMETER}}}\"` (a SAM function's under its Properties or Globals; a Serverless service's as `provider.iam.role.permissionsBoundary`, with `${{param:{BOUNDARY_PARAMETER}}}`); a role without it is refused"
    ));

    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("Ferry bootstrap of {project}, stage {}: artifact bucket, deployer role, notification topic", stage.name),
        "Resources": resources,
        "Outputs": outputs
    });
    let b = Bootstrap {
        stack_name: stack_name(ws, stage),
        template,
        permissions,
        notes,
    };
    let size = b.body().len();
    if size > ferry_package::MAX_INLINE_TEMPLATE {
        return Err(BootstrapError::TemplateTooLarge {
            size,
            max: ferry_package::MAX_INLINE_TEMPLATE,
        });
    }
    Ok(b)
}

/// The statements of `permissions`, numbered from `first` (`P03`, `D17`).
fn statements(permissions: &[Permission], first: usize) -> Vec<Value> {
    permissions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let i = first + i;
            let res: Vec<Value> = p
                .resources
                .iter()
                .map(|r| {
                    if r == "*" {
                        json!("*")
                    } else {
                        json!({"Fn::Sub": r})
                    }
                })
                .collect();
            let mut st = json!({
                "Sid": format!("{}{i:02}", if p.deny { "D" } else { "P" }),
                "Effect": if p.deny { "Deny" } else { "Allow" },
                "Action": p.actions,
                "Resource": res
            });
            if let Some(c) = &p.condition {
                st["Condition"] = c.clone();
            }
            st
        })
        .collect()
}

/// How many characters IAM counts for `statements` in one policy document (without
/// whitespace), at most: each `${AWS::…}` is counted as written, which is longer than any
/// partition, region or account id it becomes; the template's own resources as the longest
/// ARN they can become (a bucket's name has at most 63 characters, a topic's 256); and
/// `Fn::Sub` is taken off as CloudFormation does.
fn iam_size(statements: &[Value]) -> usize {
    fn unsub(v: &Value) -> Value {
        match v {
            Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
                let text = m["Fn::Sub"].as_str().unwrap_or_default();
                let bucket = format!("arn:aws-us-gov:s3:::{}", "b".repeat(63));
                let topic = format!(
                    "arn:aws-us-gov:sns:ap-southeast-5:123456789012:{}",
                    "t".repeat(256)
                );
                json!(
                    text.replace("${ArtifactBucket.Arn}", &bucket)
                        .replace("${NotificationTopic}", &topic)
                )
            }
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), unsub(v))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(unsub).collect()),
            other => other.clone(),
        }
    }
    let doc =
        json!({"Version": "2012-10-17", "Statement": unsub(&Value::Array(statements.to_vec()))});
    serde_json::to_string(&doc)
        .expect("a policy serialises")
        .len()
}

/// `None` when the role's statements fit one inline policy; else where each managed policy's
/// statements end (in order, each part within IAM's limit). A split adds the denial of the
/// managed policies' own changes, so the role cannot widen them.
fn policy_parts(
    permissions: &mut Vec<Permission>,
    name: &str,
    path: &str,
) -> Result<Option<Vec<usize>>, BootstrapError> {
    if iam_size(&statements(permissions, 0)) <= MAX_INLINE_POLICY {
        return Ok(None);
    }
    permissions.push(Permission {
        why: "never: its own managed policies".into(),
        deny: true,
        actions: strings(&["iam:*"]),
        resources: vec![format!(
            "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy{path}{name}-*"
        )],
        ..Default::default()
    });
    // A statement too large for one managed policy (a denial naming every named stage's
    // stacks) becomes several with the same effect, each naming part of its resources.
    let mut i = 0;
    while i < permissions.len() {
        let p = &permissions[i];
        if p.resources.len() > 1
            && iam_size(&statements(&permissions[i..=i], i)) > MAX_MANAGED_POLICY
        {
            let mut second = p.clone();
            let half = p.resources.len() / 2;
            second.resources = permissions[i].resources.split_off(half);
            permissions.insert(i + 1, second);
            continue;
        }
        i += 1;
    }
    let all = statements(permissions, 0);
    // A policy's size is its document's, less nothing but each statement's own and the commas
    // between them: each statement is measured once.
    let empty = iam_size(&[]);
    let sizes: Vec<usize> = all
        .iter()
        .map(|st| iam_size(std::slice::from_ref(st)) - empty)
        .collect();
    let mut ends = Vec::new();
    let mut part = empty;
    for (i, one) in sizes.iter().enumerate() {
        if empty + one > MAX_MANAGED_POLICY {
            return Err(BootstrapError::StatementTooLarge {
                why: permissions[i].why.clone(),
                size: empty + one,
            });
        }
        // The comma before it, unless it starts its part.
        let with = part + one + usize::from(part > empty);
        if with > MAX_MANAGED_POLICY {
            ends.push(i);
            part = empty + one;
        } else {
            part = with;
        }
    }
    ends.push(all.len());
    if ends.len() > MAX_MANAGED_POLICIES {
        return Err(BootstrapError::PolicyTooLarge {
            size: empty + sizes.iter().sum::<usize>() + sizes.len().saturating_sub(1),
            parts: ends.len(),
        });
    }
    Ok(Some(ends))
}

/// The CodeBuild project, its role, and webhook filter groups from the `[ci]` rules that name
/// this stage.
fn codebuild(
    ws: &Workspace,
    stage: &Stage,
    url: &str,
    resources: &mut serde_json::Map<String, Value>,
    outputs: &mut serde_json::Map<String, Value>,
    notes: &mut Vec<String>,
) {
    let project = &ws.project.name;
    let id = stage_id(stage);
    let name = format!("ferry-{project}-{id}");
    let rules = &ws.project.ci;
    let mut groups: Vec<Value> = Vec::new();
    let mine =
        |target: &str| target == stage.name || (stage.preview && !ws.stages.contains_key(target));
    for (kind, list) in [("heads", &rules.branches), ("tags", &rules.tags)] {
        for (pattern, target) in list {
            if !mine(target) {
                continue;
            }
            let head = glob_regex(&format!("refs/{kind}/{pattern}"));
            groups.push(json!([
                {"Type": "EVENT", "Pattern": "PUSH"},
                {"Type": "HEAD_REF", "Pattern": head}
            ]));
            // A more specific rule sends some of these refs to another stage.
            let shadowed: Vec<&str> = list
                .iter()
                .filter(|(p, t)| p != pattern && t != target && ferry_ci::glob_match(pattern, p))
                .map(|(p, _)| p.as_str())
                .collect();
            if !shadowed.is_empty() {
                notes.push(format!(
                    "the webhook filter {kind} `{pattern}` also starts builds of {} (which [ci] sends to other stages): that project's build deploys the stage [ci] picks, with this stage's role, and fails if the role cannot; prefer patterns that do not overlap",
                    shadowed.join(", ")
                ));
            }
        }
    }
    if stage.preview && rules.pull_requests.is_some() {
        groups.push(json!([{
            "Type": "EVENT",
            "Pattern": "PULL_REQUEST_CREATED,PULL_REQUEST_UPDATED,PULL_REQUEST_REOPENED,PULL_REQUEST_MERGED,PULL_REQUEST_CLOSED"
        }]));
    }
    if groups.is_empty() {
        notes.push(format!(
            "no [ci] rule names stage `{}`: the CodeBuild project has no webhook; start its builds yourself",
            stage.name
        ));
    }
    resources.insert(
        "CodeBuildRole".into(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "codebuild.amazonaws.com"},
                    "Action": "sts:AssumeRole"
                }]},
                "Policies": [{
                    "PolicyName": "ferry-build",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow",
                         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                         "Resource": {"Fn::Sub": format!("arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/codebuild/{name}*")}},
                        {"Effect": "Allow",
                         "Action": ["codebuild:CreateReportGroup", "codebuild:CreateReport", "codebuild:UpdateReport", "codebuild:BatchPutTestCases"],
                         "Resource": {"Fn::Sub": format!("arn:${{AWS::Partition}}:codebuild:${{AWS::Region}}:${{AWS::AccountId}}:report-group/{name}-*")}},
                        {"Effect": "Allow",
                         "Action": ["codebuild:StartBuild", "codebuild:RetryBuild", "codebuild:BatchGetBuilds"],
                         "Resource": {"Fn::Sub": format!("arn:${{AWS::Partition}}:codebuild:${{AWS::Region}}:${{AWS::AccountId}}:project/{name}")}}
                    ]}
                }]
            }
        }),
    );
    let mut source = json!({
        "Type": if url.starts_with("https://github.com/") { "GITHUB" } else if url.starts_with("https://gitlab.com/") { "GITLAB" } else { "BITBUCKET" },
        "Location": url,
        "BuildSpec": "buildspec.yml",
        "GitCloneDepth": 0,
        "ReportBuildStatus": true
    });
    if groups.is_empty() {
        source["ReportBuildStatus"] = json!(false);
    }
    let mut cb = json!({
        "Type": "AWS::CodeBuild::Project",
        "Properties": {
            "Name": name,
            "Description": format!("Ferry: deploys stage {} of {project}", stage.name),
            "ServiceRole": {"Fn::GetAtt": ["CodeBuildRole", "Arn"]},
            "Source": source,
            "Artifacts": {"Type": "NO_ARTIFACTS"},
            "Environment": {
                "Type": "LINUX_CONTAINER",
                "ComputeType": "BUILD_GENERAL1_MEDIUM",
                "Image": "aws/codebuild/standard:7.0",
                "EnvironmentVariables": [{"Name": "CI", "Value": "true", "Type": "PLAINTEXT"}]
            },
            "Cache": {"Type": "LOCAL", "Modes": ["LOCAL_SOURCE_CACHE", "LOCAL_CUSTOM_CACHE"]},
            "TimeoutInMinutes": 90
        }
    });
    if !groups.is_empty() {
        cb["Properties"]["Triggers"] = json!({"Webhook": true, "FilterGroups": groups});
    }
    resources.insert("CodeBuildProject".into(), cb);
    outputs.insert(
        "CodeBuildProject".into(),
        json!({"Description": "the CodeBuild project that deploys this stage", "Value": {"Ref": "CodeBuildProject"}}),
    );
}

/// Whether an SSM name may go into the policy, whose resources are `Fn::Sub` text: SSM's own
/// characters only, and for a Secrets Manager secret's name (`secret`) also `+`, `=` and `@`.
fn policy_safe(name: &str, secret: bool) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c) || secret && "+=@".contains(c))
}

/// Whether the parameter `name` lies under the stage's `parameters-path`, level by level
/// (`/a` holds `/a/x`, not `/aws/x`), and so is granted with the path.
fn under_parameters_path(stage: &Stage, name: &str) -> bool {
    stage.config.parameters_path.as_deref().is_some_and(|p| {
        name.strip_prefix(p.trim_end_matches('/'))
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// What the deployer role may do: CloudFormation on the stage's stacks, its records and
/// parameters, the artifact bucket, the topic, and per resource type its templates use.
pub fn permissions(ws: &Workspace, stage: &Stage, notes: &mut Vec<String>) -> Vec<Permission> {
    let stacks = stack_names(ws, stage);
    let at = rendered(stage);
    let arn = |service: &str, rest: &str| {
        format!("arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{rest}")
    };
    let mut out = vec![
        Permission {
            why: "CloudFormation: the stage's stacks".into(),
            actions: strings(&[
                "cloudformation:CreateStack",
                "cloudformation:UpdateStack",
                "cloudformation:DeleteStack",
                "cloudformation:DescribeStacks",
                "cloudformation:DescribeStackEvents",
                "cloudformation:ListStackResources",
                "cloudformation:GetTemplate",
                "cloudformation:CreateChangeSet",
                "cloudformation:DescribeChangeSet",
                "cloudformation:ExecuteChangeSet",
                "cloudformation:DeleteChangeSet",
                "cloudformation:ContinueUpdateRollback",
                "cloudformation:UpdateTerminationProtection",
            ]),
            resources: stacks
                .iter()
                .map(|s| arn("cloudformation", &format!("stack/{s}/*")))
                .collect(),
            ..Default::default()
        },
        Permission {
            why: "CloudFormation: listing (drift, previews, a remove's exports in use)".into(),
            actions: strings(&[
                "cloudformation:ListStacks",
                "cloudformation:ListImports",
                "cloudformation:DescribeStacks",
                "cloudformation:ValidateTemplate",
            ]),
            resources: vec!["*".into()],
            ..Default::default()
        },
    ];
    let records = if stage.preview {
        // Every preview's records: the path before the id, whatever the preview is named (a
        // preview named `ferry` cut `/ferry/shop/ferry/` at its first `ferry`, granting `/*`).
        format!(
            "{}*",
            ferry_manifest::preview_records_start(&ws.project.name, &stage.config)
        )
    } else {
        format!("{}*", ws.records_path(stage))
    };
    out.push(Permission {
        why: "records and lock (SSM)".into(),
        actions: strings(&[
            "ssm:GetParameter",
            "ssm:GetParameters",
            "ssm:GetParametersByPath",
            "ssm:PutParameter",
            "ssm:DeleteParameter",
        ]),
        resources: vec![arn("ssm", &format!("parameter{records}"))],
        ..Default::default()
    });
    if let Some(p) = &stage.config.parameters_path {
        out.push(Permission {
            why: "the stage's parameters (SSM, SecureStrings through SSM only; their history, so that a rotated secret's old value is masked too)".into(),
            actions: strings(&[
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:GetParametersByPath",
                "ssm:GetParameterHistory",
            ]),
            // The path itself (GetParametersByPath) and what lies below it, never a sibling
            // that shares its prefix (`/shop/dev` does not grant `/shop/devops/…`).
            resources: {
                let base = p.trim_end_matches('/');
                vec![
                    arn("ssm", &format!("parameter{base}")),
                    arn("ssm", &format!("parameter{base}/*")),
                ]
            },
            ..Default::default()
        });
    }
    out.push(Permission {
        why: "artifact bucket: packages and releases".into(),
        actions: strings(&[
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListBucket",
            "s3:GetBucketLocation",
        ]),
        resources: vec![
            "${ArtifactBucket.Arn}".into(),
            "${ArtifactBucket.Arn}/*".into(),
        ],
        ..Default::default()
    });
    // A preview removed whole takes its release files with it (`remove`, `previews prune`):
    // the previews' releases, in a bucket no named stage shares (else noted: a pull request's
    // build would reach the named stages' releases too).
    if stage.preview {
        let shared = stage.config.artifact_bucket.as_ref().and_then(|b| {
            ws.stages
                .iter()
                .find(|(_, c)| c.artifact_bucket.as_ref() == Some(b))
                .map(|(n, _)| n.clone())
        });
        match shared {
            None => out.push(Permission {
                why: "artifact bucket: a removed preview's releases (also those an earlier Ferry kept under releases/: a release's or review's JSON one folder down, which no package's key of a service named `releases` is)".into(),
                actions: strings(&["s3:DeleteObject"]),
                resources: vec![
                    format!("${{ArtifactBucket.Arn}}/{}/_releases/*", ws.project.name),
                    format!("${{ArtifactBucket.Arn}}/{}/releases/*/*.json", ws.project.name),
                ],
                ..Default::default()
            }),
            Some(named) => notes.push(format!(
                "the previews share their artifact-bucket with stage `{named}`: their role may not delete a removed preview's releases (it would reach `{named}`'s), and a pull request's build writes where `{named}` deploys from; give the previews a bucket of their own"
            )),
        }
    }
    // The topic this stack makes, and what `[notifications]` names for the stage: its
    // `sns-topic` (one for every stage, maybe of another account) and the SSM parameters its
    // webhooks' URLs are kept in (the deploy reads them with the stage's credentials). They
    // were not granted: every announcement failed, as a warning.
    let notifications = &ws.project.notifications;
    let announced = notifications.covers(&stage.name, stage.preview);
    let mut topics = vec!["${NotificationTopic}".to_string()];
    if let Some(topic) = notifications.sns_topic.as_ref().filter(|_| announced) {
        // (An ARN and an SSM name hold no `$`: no `Fn::Sub` escaping.)
        topics.push(topic.clone());
    }
    out.push(Permission {
        why: "notifications".into(),
        actions: strings(&["sns:Publish"]),
        resources: topics,
        ..Default::default()
    });
    let webhook_parameters: Vec<String> = notifications
        .webhooks
        .iter()
        .filter(|_| announced)
        .filter_map(|w| match w {
            ferry_manifest::Webhook::Ssm(name) => Some(format!(
                "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{name}"
            )),
            ferry_manifest::Webhook::Url(_) => None,
        })
        .collect();
    if !webhook_parameters.is_empty() {
        out.push(Permission {
            why: "notifications: the webhooks' URLs, kept in SSM".into(),
            actions: strings(&["ssm:GetParameter"]),
            resources: webhook_parameters,
            ..Default::default()
        });
    }

    // Per resource type of the stage's templates.
    let mut types: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Buckets a Serverless service's `s3` events make: named by the event, not the stack (and
    // for the previews' role, the named stages' buckets of the same name, denied).
    let mut event_buckets: BTreeSet<String> = BTreeSet::new();
    let mut named_event_buckets: BTreeSet<String> = BTreeSet::new();
    // Each Serverless service's framework `service` name, which its functions' names start with.
    let mut framework_names: BTreeMap<String, String> = BTreeMap::new();
    let mut sam = false;
    // SSM parameters the templates name through parameters of an SSM parameter type, outside
    // the stage's parameters path: CloudFormation reads them with the role, and so does Ferry
    // (their version).
    let mut ssm_named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // The CloudFormation and SAM templates, by service, for the roles and buckets they name.
    let mut templates: BTreeMap<String, Value> = BTreeMap::new();
    for s in &ws.services {
        match s.kind {
            ServiceKind::Serverless => {
                // What its functions' events and its `resources:` make, read from its
                // configuration (the framework compiles the template only when it packages).
                let made = serverless::resource_types(&ws.root, s);
                // What every compiled template holds: the deployment bucket with its policy
                // (TLS only), and, unless it declares no function, the functions, their role
                // and log groups.
                let mut always = vec!["AWS::S3::Bucket", "AWS::S3::BucketPolicy"];
                if made.functions != Some(0) {
                    always.extend([
                        "AWS::Lambda::Function",
                        "AWS::Lambda::Version",
                        "AWS::IAM::Role",
                        "AWS::Logs::LogGroup",
                    ]);
                }
                for t in always {
                    types.entry(t.into()).or_default().insert(s.name.clone());
                }
                if let Some(fw) = &made.service {
                    framework_names.insert(s.name.clone(), fw.clone());
                }
                for t in made.types {
                    types.entry(t).or_default().insert(s.name.clone());
                }
                for b in made.buckets {
                    // A name without the stage is one bucket for every stage: granting it
                    // would let every stage's role (the previews' too) at it.
                    if !b.contains("{stage}") {
                        notes.push(format!(
                            "`{}`: an `s3` event makes bucket `{b}`, the same in every stage: not granted (every stage's role would reach it); put the stage in its name, or grant it by hand to the one stage that makes it",
                            s.name
                        ));
                        continue;
                    }
                    let valid = |n: &str| {
                        !n.is_empty()
                            && n.chars().all(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
                            })
                    };
                    if !valid(&b.replace("{stage}", "x")) {
                        notes.push(format!(
                            "`{}`: an `s3` event makes bucket `{b}`, which is no bucket name; not granted",
                            s.name
                        ));
                        continue;
                    }
                    // The previews' role gets every preview's bucket (`*` for the stage id),
                    // and is denied the named stages' below; only when the name starts with
                    // enough of its own before the stage (`shop-orders-{stage}-uploads`), as
                    // `*-uploads` would reach any bucket so named, another stage's too.
                    let before = &b[..b.find("{stage}").unwrap_or(0)];
                    if stage.preview && (before.len() < 8 || !before.ends_with(['-', '.'])) {
                        notes.push(format!(
                            "`{}`: an `s3` event makes bucket `{b}`, whose name has too little before the stage to grant every preview's: not granted to the previews' role; start its name with the service's (`${{self:service}}-${{sls:stage}}-…`)",
                            s.name
                        ));
                        continue;
                    }
                    event_buckets.insert(b.replace("{stage}", &stage.id));
                    if stage.preview {
                        for named in ws.stages.keys() {
                            named_event_buckets.insert(b.replace("{stage}", named));
                        }
                    }
                }
                notes.extend(made.unread);
            }
            _ => {
                let path = ws.root.join(s.template_path());
                let Some(t) = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| ferry_package::parse_template(&text).ok())
                else {
                    notes.push(format!(
                        "`{}`: its template {} could not be read; its resource types are not covered",
                        s.name,
                        path.display()
                    ));
                    continue;
                };
                sam |= ferry_package::is_sam(&t);
                templates.insert(s.name.clone(), t.clone());
                for (key, name) in ferry_package::ssm_typed_names(ws, stage, s, &t) {
                    let name = name.filter(|n| policy_safe(n, false));
                    match name {
                        Some(n) => {
                            if !under_parameters_path(stage, &n) {
                                ssm_named.entry(n).or_default().insert(s.name.clone());
                            }
                        }
                        None => notes.push(format!(
                            "`{}`: template parameter {key} is of an SSM parameter type, and the parameter it names is known only when it deploys (or is no SSM name); grant ssm:GetParameter on it",
                            s.name
                        )),
                    }
                }
                // Dynamic references CloudFormation resolves with the role:
                // `{{resolve:ssm:NAME}}` and `{{resolve:ssm-secure:NAME}}`.
                for reference in dynamic_ssm_references(&t) {
                    match reference {
                        Some(n) if policy_safe(&n, false) => {
                            if !under_parameters_path(stage, &n) {
                                ssm_named.entry(n).or_default().insert(s.name.clone());
                            }
                        }
                        _ => notes.push(format!(
                            "`{}`: a `{{{{resolve:ssm:…}}}}` in its template names a parameter known only when it deploys (or no SSM name); grant ssm:GetParameter on it",
                            s.name
                        )),
                    }
                }
                for ty in resource_types(&ws.root, &path, &t, notes, &s.name) {
                    types.entry(ty).or_default().insert(s.name.clone());
                }
            }
        }
    }
    let NamesGiven {
        roles: named_roles,
        buckets: named_buckets,
    } = names_granted(ws, stage, &templates, notes);
    // The roles and buckets other stages' templates name themselves: this stage's grants (by
    // the start of a name, or a whole name) may reach them (`shop-inventory-d*`, a name cut to
    // 16 characters, reaches stage `demo`'s `shop-inventory-demoRole`), and nothing else keeps
    // them apart but the tag. Denied by their whole names, except those this stage gives too.
    let denied = names_of_others(ws, stage, &templates);
    if !denied.is_empty() {
        out.push(Permission {
            why: "never: the roles and buckets other stages' templates name themselves".into(),
            deny: true,
            actions: strings(&["iam:*", "s3:*"]),
            resources: denied,
            ..Default::default()
        });
    }
    // `${ssm:…}` references outside the stage's parameters path: Ferry reads them with the
    // role, by the names this stage renders. A Secrets Manager secret read through SSM needs
    // the secret itself too.
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &ws.services {
        for (name, full) in s.ssm_names_in(&ws.project.name, &stage.id, &stage.config) {
            // IAM grants a parameter by its name; a `:VERSION` or `:LABEL` only selects.
            let full = full.map(|f| ferry_manifest::split_ssm_selector(&f).0.to_string());
            let secret = full
                .as_deref()
                .and_then(|n| n.strip_prefix(ferry_manifest::SECRETS_MANAGER_REFERENCE));
            match full.as_deref() {
                Some(n) if under_parameters_path(stage, n) && secret.is_none() => {}
                Some(n) if policy_safe(n, secret.is_some()) => {
                    if let Some(secret) = secret {
                        secrets
                            .entry(secret.to_string())
                            .or_default()
                            .insert(s.name.clone());
                    }
                    if !under_parameters_path(stage, n) {
                        ssm_named
                            .entry(n.to_string())
                            .or_default()
                            .insert(s.name.clone());
                    }
                }
                _ => notes.push(format!(
                    "`{}`: `${{ssm:{name}}}` is known only when it deploys (or is no SSM name); grant ssm:GetParameter on it",
                    s.name
                )),
            }
        }
    }
    if !secrets.is_empty() {
        let users: BTreeSet<&str> = secrets.values().flatten().map(String::as_str).collect();
        out.push(Permission {
            why: format!(
                "Secrets Manager secrets the services read through SSM ({})",
                users.into_iter().collect::<Vec<_>>().join(", ")
            ),
            actions: strings(&["secretsmanager:GetSecretValue"]),
            // A secret's ARN ends in `-` and six random characters.
            resources: secrets
                .keys()
                .map(|n| arn("secretsmanager", &format!("secret:{n}-??????")))
                .collect(),
            ..Default::default()
        });
        notes.push(
            "a secret encrypted with a customer managed KMS key also needs kms:Decrypt on that key, which is not granted".into(),
        );
    }
    if !ssm_named.is_empty() {
        let users: BTreeSet<&str> = ssm_named.values().flatten().map(String::as_str).collect();
        out.push(Permission {
            why: format!(
                "SSM parameters outside the parameters path that the services read or their templates name ({})",
                users.into_iter().collect::<Vec<_>>().join(", ")
            ),
            actions: strings(&[
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:GetParameterHistory",
            ]),
            resources: ssm_named
                .keys()
                .map(|n| {
                    let n = n.trim_start_matches('/');
                    if n.starts_with("aws/service/") {
                        // AWS's public parameters belong to no account.
                        format!("arn:${{AWS::Partition}}:ssm:${{AWS::Region}}::parameter/{n}")
                    } else {
                        arn("ssm", &format!("parameter/{n}"))
                    }
                })
                .collect(),
            ..Default::default()
        });
    }
    if sam {
        out.push(Permission {
            why: "the SAM transform".into(),
            actions: strings(&["cloudformation:CreateChangeSet"]),
            resources: vec![
                "arn:${AWS::Partition}:cloudformation:${AWS::Region}:aws:transform/Serverless-2016-10-31"
                    .into(),
            ],
            ..Default::default()
        });
    }
    // SAM resources stand for the plain resources the transform makes.
    let expand: BTreeMap<&str, &[&str]> = BTreeMap::from([
        (
            "AWS::Serverless::Function",
            &[
                "AWS::Lambda::Function",
                "AWS::IAM::Role",
                "AWS::Lambda::Permission",
                "AWS::Lambda::EventSourceMapping",
            ][..],
        ),
        ("AWS::Serverless::Api", &["AWS::ApiGateway::RestApi"][..]),
        ("AWS::Serverless::HttpApi", &["AWS::ApiGatewayV2::Api"][..]),
        (
            "AWS::Serverless::SimpleTable",
            &["AWS::DynamoDB::Table"][..],
        ),
        (
            "AWS::Serverless::Application",
            &["AWS::CloudFormation::Stack"][..],
        ),
        (
            "AWS::Serverless::LayerVersion",
            &["AWS::Lambda::LayerVersion"][..],
        ),
        (
            "AWS::Serverless::StateMachine",
            &["AWS::StepFunctions::StateMachine", "AWS::IAM::Role"][..],
        ),
    ]);
    let mut plain: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let role_start = out.len();
    let mut types_seen: BTreeSet<String> = BTreeSet::new();
    for (ty, users) in types {
        match expand.get(ty.as_str()) {
            Some(list) => {
                for t in *list {
                    plain
                        .entry((*t).to_string())
                        .or_default()
                        .extend(users.iter().cloned());
                }
            }
            None => {
                plain.entry(ty).or_default().extend(users);
            }
        }
    }
    let mut custom: Vec<String> = Vec::new();
    let mut custom_users: BTreeSet<String> = BTreeSet::new();
    for (ty, users) in plain {
        types_seen.insert(ty.clone());
        // The stacks of the services that nest one: a nested stack is named
        // `<stack>-<logical id>-<random>`.
        let nesting: Vec<String> = users
            .iter()
            .filter_map(|u| ws.service(u))
            .map(|s| ws.service_stack_name(s, &at))
            .collect();
        let custom_resource = is_custom_resource(&ty);
        if custom_resource {
            custom_users.extend(users.iter().cloned());
        }
        // The first few, so that the review's table stays readable in a large project.
        let users = ferry_manifest::first_few(&users.into_iter().collect::<Vec<_>>(), 5);
        if custom_resource {
            // CloudFormation invokes the resource's function with the deploying role's
            // credentials; the function then runs with its own role.
            custom.push(format!("{ty} ({users})"));
            continue;
        }
        match actions_of(&ty) {
            Some((actions, scoped)) => out.push(Permission {
                why: format!("{ty} ({users})"),
                actions: strings(actions),
                resources: match scoped {
                    Scope::Any => vec!["*".to_string()],
                    Scope::NestedStacks => nesting
                        .iter()
                        .map(|s| arn("cloudformation", &format!("stack/{s}-*/*")))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    Scope::StackRoles => stacks
                        .iter()
                        .map(|s| {
                            format!(
                                "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{}*",
                                name_prefix(s)
                            )
                        })
                        .chain(named_roles.iter().map(|r| {
                            format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:{r}")
                        }))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    // CloudFormation names a bucket after its stack, lowercased.
                    Scope::StackBuckets => stacks
                        .iter()
                        .flat_map(|s| {
                            let start = name_prefix(s).to_ascii_lowercase();
                            // `{start}*` covers the buckets' objects too.
                            [format!("arn:${{AWS::Partition}}:s3:::{start}*")]
                        })
                        .chain(named_buckets.iter().flat_map(|b| {
                            [
                                format!("arn:${{AWS::Partition}}:s3:::{b}"),
                                format!("arn:${{AWS::Partition}}:s3:::{b}/*"),
                            ]
                        }))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        // And the buckets s3 events name (not after the stack).
                        .chain(
                            event_buckets
                                .iter()
                                .filter(|_| ty == "AWS::S3::Bucket")
                                .flat_map(|b| {
                                    [
                                        format!("arn:${{AWS::Partition}}:s3:::{b}"),
                                        format!("arn:${{AWS::Partition}}:s3:::{b}/*"),
                                    ]
                                }),
                        )
                        .collect(),
                },
                ..Default::default()
            }),
            None => {
                let service = iam_prefix(&ty);
                if service.is_empty() {
                    continue;
                }
                if SENSITIVE.contains(&service.as_str()) {
                    notes.push(format!(
                        "{ty} ({users}) is not in Ferry's table, and {service} actions are never granted wholesale: nothing added; grant the few actions it needs by hand after review"
                    ));
                    continue;
                }
                notes.push(format!(
                    "{ty} ({users}) has no entry in Ferry's table: granted {service}:* on *; narrow it to the actions CloudFormation needs for it before you deploy this to a real account"
                ));
                out.push(Permission {
                    why: format!("{ty} ({users}), not in the table"),
                    actions: vec![format!("{service}:*")],
                    resources: vec!["*".into()],
                    ..Default::default()
                });
            }
        }
    }
    if !custom.is_empty() {
        out.push(Permission {
            why: format!("custom resources: {}", custom.join(", ")),
            actions: strings(&["lambda:InvokeFunction"]),
            // A Serverless Framework service names its custom resources' functions
            // `<service>-<stage>-custom-resource-…`, cut to their first 32 characters and a
            // hash when that is over 64; CloudFormation names one after its stack cut short,
            // so only the start of the stack's name is sure (the `ferry:stage` tag keeps other
            // stages' apart).
            resources: custom_users
                .iter()
                .filter_map(|name| ws.service(name))
                .map(|s| {
                    let stack = ws.service_stack_name(s, stage);
                    let start = match framework_names.get(&s.name) {
                        // Every preview: the name starts with the service's, or with its first
                        // 32 characters when the framework cuts a long one.
                        Some(fw) if stage.id.contains('*') => {
                            if fw.len() + 1 >= 32 {
                                fw.chars().take(32).collect()
                            } else {
                                format!("{fw}-")
                            }
                        }
                        Some(fw) => {
                            let base = format!("{fw}-{}-", stage.id);
                            // The longest suffix is `custom-resource-apigw-cw-role` (29).
                            if base.len() + 29 <= 64 {
                                base
                            } else {
                                base.chars().take(32).collect()
                            }
                        }
                        None => name_prefix(&stack),
                    };
                    format!(
                        "arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{start}*"
                    )
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            ..Default::default()
        });
        notes.push(format!(
            "custom resources ({}): CloudFormation invokes their functions with the role, granted for functions named like the stage's stacks; a ServiceToken elsewhere (another stack's function, an SNS topic) needs lambda:InvokeFunction or sns:Publish on it by hand",
            custom.join(", ")
        ));
    }
    if types_seen.contains("AWS::CloudFront::Distribution") {
        notes.push(
            "AWS::CloudFront::Distribution: a Lambda@Edge function (a Serverless `cloudFront` event) also needs lambda:EnableReplication* on it and iam:CreateServiceLinkedRole for replicator.lambda.amazonaws.com, which are not granted".into(),
        );
    }
    if !named_event_buckets.is_empty() {
        out.push(Permission {
            why: "never (previews): the named stages' buckets that s3 events make".into(),
            deny: true,
            actions: strings(&["s3:*"]),
            resources: named_event_buckets
                .iter()
                .flat_map(|b| {
                    [
                        format!("arn:${{AWS::Partition}}:s3:::{b}"),
                        format!("arn:${{AWS::Partition}}:s3:::{b}/*"),
                    ]
                })
                .collect(),
            ..Default::default()
        });
    }
    pass_roles_only_to_their_services(&mut out, role_start, &types_seen, notes);
    out
}

/// The parameter names of the `{{resolve:ssm:NAME}}` and `{{resolve:ssm-secure:NAME}}`
/// dynamic references anywhere in `template` (a `:VERSION` after the name dropped); `None` for
/// one whose name holds a substitution (`${…}`), known only when it deploys.
fn dynamic_ssm_references(template: &Value) -> Vec<Option<String>> {
    fn walk(v: &Value, out: &mut Vec<Option<String>>) {
        match v {
            Value::String(s) => {
                out.extend(
                    ferry_manifest::dynamic_ssm_references(s)
                        .into_iter()
                        .map(|r| {
                            let name = r.name;
                            (!name.contains("${") && !name.is_empty()).then(|| {
                                // A name without a leading `/` is at the root.
                                if name.starts_with('/') {
                                    name.to_string()
                                } else {
                                    format!("/{name}")
                                }
                            })
                        }),
                );
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(m) => m.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(template, &mut out);
    out
}

/// A custom resource: CloudFormation hands it to a function (or topic) of the template's own.
fn is_custom_resource(ty: &str) -> bool {
    ty.starts_with("Custom::") || ty == "AWS::CloudFormation::CustomResource"
}

/// The IAM action prefix of a resource type's service (`AWS::<service>::…`): mostly its name
/// in lower case, except where the service's actions go by another name. Empty for a type
/// without one.
fn iam_prefix(ty: &str) -> String {
    if ty.starts_with("AWS::Cognito::IdentityPool") {
        return "cognito-identity".into();
    }
    let Some(namespace) = ty.split("::").nth(1) else {
        return String::new();
    };
    match namespace {
        "ApiGatewayV2" => "apigateway",
        "ApplicationAutoScaling" => "application-autoscaling",
        "CertificateManager" => "acm",
        "Cognito" => "cognito-idp",
        "ElasticLoadBalancing" | "ElasticLoadBalancingV2" => "elasticloadbalancing",
        "Elasticsearch" | "OpenSearchService" => "es",
        "KinesisFirehose" => "firehose",
        "KinesisAnalyticsV2" => "kinesisanalytics",
        "OpenSearchServerless" => "aoss",
        "StepFunctions" => "states",
        "EFS" => "elasticfilesystem",
        "MSK" => "kafka",
        "AmazonMQ" => "mq",
        "DocDB" | "Neptune" => "rds",
        "EventSchemas" => "schemas",
        "Pinpoint" => "mobiletargeting",
        "Location" => "geo",
        "CodeStarConnections" => "codestar-connections",
        "MWAA" => "airflow",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

/// The services CloudFormation passes a role to when it makes a resource of a type in Ferry's
/// table (a function's execution role, a rule's target role, a bucket's replication role…).
fn role_passed_to(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "AWS::Lambda::Function" => "lambda.amazonaws.com",
        "AWS::Events::Rule" => "events.amazonaws.com",
        "AWS::Scheduler::Schedule" => "scheduler.amazonaws.com",
        "AWS::Logs::SubscriptionFilter" => "logs.amazonaws.com",
        // A topic rule's actions, and a fleet provisioning template, act with a role; a user
        // pool sends SMS with one.
        "AWS::IoT::TopicRule" | "AWS::IoT::ProvisioningTemplate" => "iot.amazonaws.com",
        "AWS::Cognito::UserPool" => "cognito-idp.amazonaws.com",
        "AWS::StepFunctions::StateMachine" => "states.amazonaws.com",
        "AWS::S3::Bucket" => "s3.amazonaws.com",
        "AWS::SNS::Topic" | "AWS::SNS::Subscription" => "sns.amazonaws.com",
        t if t.starts_with("AWS::ApiGateway::") || t.starts_with("AWS::ApiGatewayV2::") => {
            "apigateway.amazonaws.com"
        }
        _ => return None,
    })
}

/// Moves `iam:PassRole` out of the role statement (among `out[from..]`, the per-type grants)
/// into one of its own, conditioned on `iam:PassedToService`: the roles go only to the services
/// the templates give them to. Left as it is (with a note) when a type Ferry's table lacks may
/// pass a role too.
fn pass_roles_only_to_their_services(
    out: &mut Vec<Permission>,
    from: usize,
    types: &BTreeSet<String>,
    notes: &mut Vec<String>,
) {
    let Some(at) = out[from..]
        .iter()
        .position(|p| !p.deny && p.actions.iter().any(|a| a == "iam:PassRole"))
        .map(|i| from + i)
    else {
        return;
    };
    let unknown: Vec<&str> = types
        .iter()
        .map(String::as_str)
        .filter(|t| actions_of(t).is_none())
        .filter(|t| !is_custom_resource(t))
        .collect();
    if !unknown.is_empty() {
        notes.push(format!(
            "iam:PassRole is granted without an iam:PassedToService condition: {} may pass a role to a service Ferry cannot name; add the condition by hand",
            unknown.join(", ")
        ));
        return;
    }
    let services: Vec<&str> = types
        .iter()
        .filter_map(|t| role_passed_to(t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    out[at].actions.retain(|a| a != "iam:PassRole");
    if services.is_empty() {
        // Roles are made, but no resource here takes one: nothing is passed.
        return;
    }
    let statement = Permission {
        why: format!(
            "iam:PassRole: the stage's roles, only to {}",
            services.join(", ")
        ),
        actions: strings(&["iam:PassRole"]),
        resources: out[at].resources.clone(),
        condition: Some(json!({"StringEquals": {"iam:PassedToService": services}})),
        ..Default::default()
    };
    out.insert(at + 1, statement);
}

enum Scope {
    Any,
    /// Stacks CloudFormation nests in the stage's stacks, named `<stack>-<logical id>-<random>`.
    NestedStacks,
    /// Roles named after the stage's stacks (CloudFormation names them so).
    StackRoles,
    /// Buckets (and their objects) named after the stage's stacks.
    StackBuckets,
}

/// How deep templates nested in templates are read for their resource types.
const MAX_NESTING: usize = 8;

/// The resource types of `template` (read from `path`) and of the templates it nests from the
/// repository (an `AWS::CloudFormation::Stack`'s `TemplateURL`, a SAM application's `Location`,
/// as relative paths, which packaging uploads): CloudFormation creates those with the deploying
/// role too. Each nested template is read once (by its real path); one outside the repository
/// `root`, one that cannot be read, one nested deeper than [`MAX_NESTING`], and the roles and
/// buckets a nested template names itself (not granted by name) are noted for `service`.
fn resource_types(
    root: &std::path::Path,
    path: &std::path::Path,
    template: &Value,
    notes: &mut Vec<String>,
    service: &str,
) -> BTreeSet<String> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut types = BTreeSet::new();
    let mut seen =
        BTreeSet::from([std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())]);
    let mut todo = vec![(path.to_path_buf(), template.clone(), 0)];
    while let Some((at, t, depth)) = todo.pop() {
        for (id, r) in t["Resources"].as_object().into_iter().flatten() {
            let Some(ty) = r["Type"].as_str() else {
                continue;
            };
            types.insert(ty.to_string());
            let named = match ty {
                "AWS::IAM::Role" => r.pointer("/Properties/RoleName"),
                "AWS::S3::Bucket" => r.pointer("/Properties/BucketName"),
                _ => None,
            };
            // One named after its own stack (`${AWS::StackName}-…`, the nested stack's name,
            // which starts like the service's) is granted with the stack's names.
            let after_stack = named
                .and_then(|n| n.get("Fn::Sub").or(Some(n)))
                .and_then(|n| n.as_str().or_else(|| n.get(0).and_then(Value::as_str)))
                .is_some_and(|text| text.starts_with("${AWS::StackName}-"));
            if depth > 0 && named.is_some() && !after_stack {
                notes.push(format!(
                    "`{service}`: {ty} {id} of the template it nests, {}, names itself: names in nested templates are not granted (the role may not create it until it is granted by hand), unless they start like the service's stack",
                    at.display()
                ));
            }
            let nested = match ty {
                "AWS::CloudFormation::Stack" => r.pointer("/Properties/TemplateURL"),
                "AWS::Serverless::Application" => r.pointer("/Properties/Location"),
                _ => None,
            };
            let Some(rel) = nested.and_then(Value::as_str) else {
                continue;
            };
            if rel.contains("://") {
                continue;
            }
            let file = at.parent().unwrap_or(std::path::Path::new("")).join(rel);
            let Ok(real) = std::fs::canonicalize(&file) else {
                notes.push(format!(
                    "`{service}`: the template it nests, {}, could not be read; its resource types are not covered",
                    file.display()
                ));
                continue;
            };
            if !real.starts_with(&root) {
                notes.push(format!(
                    "`{service}`: the template it nests, {}, lies outside the repository: not read (packaging refuses it too)",
                    file.display()
                ));
                continue;
            }
            if !seen.insert(real.clone()) {
                continue;
            }
            if depth + 1 > MAX_NESTING {
                notes.push(format!(
                    "`{service}`: templates nested more than {MAX_NESTING} deep are not read ({}): the resource types of {} are not covered",
                    at.display(),
                    file.display()
                ));
                continue;
            }
            match std::fs::read_to_string(&real)
                .ok()
                .and_then(|text| ferry_package::parse_template(&text).ok())
                .filter(Value::is_object)
            {
                Some(inner) => todo.push((real, inner, depth + 1)),
                None => notes.push(format!(
                    "`{service}`: the template it nests, {}, could not be read; its resource types are not covered",
                    file.display()
                )),
            }
        }
    }
    types
}

/// The roles and buckets templates name themselves that a stage's role is granted by their
/// whole name (see [`names_granted`]).
#[derive(Default)]
struct NamesGiven {
    /// `role/<path><name>`.
    roles: Vec<String>,
    buckets: Vec<String>,
}

/// The other stages whose roles and buckets may be in `stage`'s account: for a named stage, the
/// other named stages not in another known account; for the previews', every named stage.
fn other_stages_sharing(ws: &Workspace, stage: &Stage) -> Vec<Stage> {
    ws.stages
        .keys()
        .filter_map(|n| ws.stage(n).ok())
        .filter(|o| !o.preview && o.id != stage.id && !stage.config.in_another_account(&o.config))
        .collect()
}

/// The CloudFormation and SAM templates of the workspace that can be read, by service (a
/// Serverless Framework service's is compiled only when it packages).
fn cfn_templates(ws: &Workspace) -> BTreeMap<String, Value> {
    ws.services
        .iter()
        .filter(|s| s.kind != ServiceKind::Serverless)
        .filter_map(|s| {
            let text = std::fs::read_to_string(ws.root.join(s.template_path())).ok()?;
            Some((s.name.clone(), ferry_package::parse_template(&text).ok()?))
        })
        .collect()
}

/// The role and bucket names `templates` (by service) give in `stage`, as `stage` renders them.
fn names_of(
    ws: &Workspace,
    stage: &Stage,
    templates: &BTreeMap<String, Value>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut roles, mut buckets) = (BTreeSet::new(), BTreeSet::new());
    for (service, t) in templates {
        let Some(s) = ws.service(service) else {
            continue;
        };
        for ((ty, property), set) in [(ROLE_NAME, &mut roles), (BUCKET_NAME, &mut buckets)] {
            for (_, name) in ferry_package::given_names(ws, stage, s, t, ty, property) {
                set.extend(name.filter(|n| !n.is_empty()));
            }
        }
    }
    (roles, buckets)
}

/// The ARNs of the roles and buckets (and their objects) the templates name themselves in the
/// other stages that may share `stage`'s account, but not in `stage` (a role in any letter
/// case), that `stage`'s grants by the start of a name reach: a role at the root path, a name
/// that starts like one of `stage`'s stack names' grants. Names no grant reaches are left out:
/// listing every one made the role's policy too large for IAM in a project of 30 services.
fn names_of_others(
    ws: &Workspace,
    stage: &Stage,
    templates: &BTreeMap<String, Value>,
) -> Vec<String> {
    let (my_roles, my_buckets) = names_of(ws, &rendered(stage), templates);
    let my_roles: BTreeSet<String> = my_roles.iter().map(|r| r.to_ascii_lowercase()).collect();
    // What this stage's grants by a name's start reach (`role/<start>*`, `s3:::<start>*`): only
    // names at the root path, and only those starting so; the names it is granted whole are
    // no other stage's.
    let starts: Vec<String> = stack_names(ws, stage)
        .iter()
        .map(|s| name_prefix(s))
        .collect();
    let reached = |name: &str, lower: bool| {
        starts.iter().any(|st| {
            if lower {
                name.starts_with(&st.to_ascii_lowercase())
            } else {
                name.starts_with(st.as_str())
            }
        })
    };
    let mut out = BTreeSet::new();
    for o in other_stages_sharing(ws, stage) {
        let (roles, buckets) = names_of(ws, &o, templates);
        for r in roles.iter().filter(|r| {
            valid_name(false, r) && !my_roles.contains(&r.to_ascii_lowercase()) && reached(r, false)
        }) {
            out.insert(format!(
                "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{r}"
            ));
        }
        for b in buckets
            .iter()
            .filter(|b| valid_name(true, b) && !my_buckets.contains(*b) && reached(b, true))
        {
            out.insert(format!("arn:${{AWS::Partition}}:s3:::{b}"));
            out.insert(format!("arn:${{AWS::Partition}}:s3:::{b}/*"));
        }
    }
    out.into_iter().collect()
}

/// Whether `name` holds only what IAM takes in a role's name (or a path, with `/`), or S3 in a
/// bucket's: anything else (`*`, `?`, `${…}`) would widen a grant or break the role's template.
fn valid_name(bucket: bool, name: &str) -> bool {
    if bucket {
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    } else {
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    }
}

/// The resource types whose names a template may give itself and the role is granted by name,
/// with the property that gives it.
const ROLE_NAME: (&str, &str) = ("AWS::IAM::Role", "RoleName");
const BUCKET_NAME: (&str, &str) = ("AWS::S3::Bucket", "BucketName");

/// The roles (`RoleName`) and buckets (`BucketName`) CloudFormation and SAM `templates` (by
/// service) name themselves that the grants by the start of their stacks' names do not reach
/// (`${AWS::StackName}Role`, `acme-${stage}-uploads`, a role under a `Path`): each is granted
/// to `stage`'s role by its whole name when it is this stage's alone, a name that no template
/// gives in another stage that may share the account (in any case, for a role), and a name IAM
/// and S3 take (no `*` or `?`, which would widen the grant). Other stages' roles are denied
/// them. One every stage gives alike, one only a deploy tells, and any for the previews' role
/// are noted in `notes`, not granted: creating them is refused until they are
/// granted by hand.
fn names_granted(
    ws: &Workspace,
    stage: &Stage,
    templates: &BTreeMap<String, Value>,
    notes: &mut Vec<String>,
) -> NamesGiven {
    let at = rendered(stage);
    // Roles in any letter case: IAM takes `Prod-App` for `prod-app`.
    let mut theirs = (BTreeSet::new(), BTreeSet::new());
    for o in other_stages_sharing(ws, stage) {
        let (roles, buckets) = names_of(ws, &o, templates);
        theirs
            .0
            .extend(roles.iter().map(|r| r.to_ascii_lowercase()));
        theirs.1.extend(buckets);
    }
    let mut out = NamesGiven::default();
    for (service, template) in templates {
        let Some(s) = ws.service(service) else {
            continue;
        };
        let stack = ws.stack_name(&s.name, &at);
        for (ty, property) in [ROLE_NAME, BUCKET_NAME] {
            let bucket = (ty, property) == BUCKET_NAME;
            let start = if bucket {
                name_prefix(&stack).to_ascii_lowercase()
            } else {
                name_prefix(&stack)
            };
            let what = if bucket { "bucket" } else { "role" };
            let by_hand = format!(
                "the role may not create it until it is granted by hand, or named `${{AWS::StackName}}-…` (names starting `{start}` are granted)"
            );
            let mut note = |text: String| notes.push(text);
            for (id, name) in ferry_package::given_names(ws, &at, s, template, ty, property) {
                let path = template["Resources"][&id]["Properties"]
                    .get("Path")
                    .map_or(Some("/"), Value::as_str);
                let Some(name) = name else {
                    note(format!(
                        "`{}`: {ty} {id} takes its {property} from what only a deploy tells; unless it starts with `{start}`, {by_hand}",
                        s.name
                    ));
                    continue;
                };
                if name.is_empty() {
                    note(format!(
                        "`{}`: {ty} {id} takes its {property} from a parameter left empty (`init` leaves what it cannot infer for you to fill); once given, unless it starts with `{start}`, {by_hand}",
                        s.name
                    ));
                    continue;
                }
                // The grants by a stack's name cover a role only at the root path.
                if name.starts_with(&start) && (bucket || path == Some("/")) {
                    continue;
                }
                // Only what IAM and S3 take in a name: anything else (`*`, `?`, `${…}`) would
                // widen the grant, or break the role's template, and CloudFormation would refuse
                // the name anyway.
                let valid = valid_name(bucket, &name)
                    && (bucket
                        || path.is_none_or(|p| {
                            p.starts_with('/')
                                && p.ends_with('/')
                                && valid_name(false, &p.replace('/', ""))
                        }));
                let shared = if bucket {
                    theirs.1.contains(&name)
                } else {
                    theirs.0.contains(&name.to_ascii_lowercase())
                };
                let why = if stage.preview {
                    "for the previews' role, which is granted only names made from their stacks'"
                } else if !valid {
                    "which is no name IAM or S3 takes"
                } else if shared {
                    "one a template also gives in another named stage that may share the account, whose role would reach it too"
                } else if path.is_none() {
                    "under a Path only a deploy tells"
                } else {
                    if bucket {
                        out.buckets.push(name);
                    } else {
                        out.roles.push(format!("role{}{name}", path.unwrap_or("/")));
                    }
                    continue;
                };
                note(format!(
                    "`{}`: {ty} {id} names its {what} `{name}` itself, {why}: not granted; {by_hand}",
                    s.name
                ));
            }
        }
    }
    out
}

/// What a name CloudFormation makes from `stack` (`<stack>-<logical id>-<random>`) surely
/// starts with: the whole name and its `-` when no cut can reach it (so that `shop-api-dev-*`
/// does not reach stage `devops`' `shop-api-devops-…`), else [`name_start`]. Another stage whose
/// stack names extend this one's with a `-` (`staging-eu` of `staging`) is still reached:
/// [`stack_name_denials`] keeps the role off it.
fn name_prefix(stack: &str) -> String {
    if !stack.contains('*') && stack.len() <= ROLE_PREFIX {
        format!("{stack}-")
    } else {
        name_start(stack)
    }
}

/// The start of `stack` a name CloudFormation makes from it surely has (before any `*`).
fn name_start(stack: &str) -> String {
    stack
        .split('*')
        .next()
        .unwrap_or_default()
        .chars()
        .take(ROLE_PREFIX)
        .collect()
}

/// Services whose actions are never granted wholesale for a type Ferry's table lacks: they
/// grant identities and keys, or the policy scopes them to the stage elsewhere.
const SENSITIVE: &[&str] = &[
    "iam",
    "sts",
    "organizations",
    "kms",
    "account",
    "sso",
    "identitystore",
    // Scoped elsewhere in the policy: a wildcard would undo that.
    "cloudformation",
    "s3",
    "ssm",
    "lambda",
    "secretsmanager",
];

/// What the role may never do, whatever else allows it: touch its own role or Ferry's own
/// stacks, attach the administrator policies AWS ships; touch another named stage's resources
/// through any service `granted` uses (by the `ferry:stage` tag CloudFormation passes on from
/// the stack: the per-type grants name no resource, so stages that share an account are kept
/// apart this way); touch another stage's SSM paths by name (records, lock, health marks and
/// parameters carry no tag); for a named stage's role, roles and buckets named after another
/// named stage's stacks that extend its own names; another project's stacks (by their
/// `ferry:project` tag), and for the deployer its roles, buckets and changes to its other
/// resources; and for the preview stages' role, touch any named stage's stacks, records,
/// roles or buckets. What a denial cannot cover is said in
/// `notes`. Besides them, those of the deployer alone, not of the boundary on the roles a
/// deploy makes ([`Denials::deployer_only`]).
pub fn denials(
    ws: &Workspace,
    stage: &Stage,
    role: &str,
    path: &str,
    granted: &[Permission],
    notes: &mut Vec<String>,
) -> Denials {
    let mut deployer_only = Vec::new();
    let project = &ws.project.name;
    let mut out = vec![
        Permission {
            why: "never: its own role".into(),
            deny: true,
            actions: strings(&["iam:*"]),
            resources: vec![format!(
                "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role{path}{role}"
            )],
            ..Default::default()
        },
        Permission {
            why: "never: Ferry's own stacks".into(),
            deny: true,
            actions: strings(&["cloudformation:*"]),
            resources: vec![format!(
                "arn:${{AWS::Partition}}:cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/ferry-{project}-*/*"
            )],
            ..Default::default()
        },
        Permission {
            why: "never: attach an administrator policy to a role".into(),
            deny: true,
            actions: strings(&["iam:AttachRolePolicy"]),
            resources: vec!["*".into()],
            condition: Some(json!({"ArnLike": {"iam:PolicyARN": [
                {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AdministratorAccess*"},
                {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/PowerUserAccess"},
                {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/IAMFullAccess"},
                {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/*FullAccess"}
            ]}})),
        },
    ];
    // What the tag denials below cover: every service something is granted on, and, for the
    // previews' role, roles and buckets whatever else is granted (their names are cut short,
    // so names cannot tell a named stage's from a preview's, nor one project's from another's
    // whose name starts alike).
    let mut services: BTreeSet<String> = granted
        .iter()
        .filter(|p| !p.deny)
        .flat_map(|p| &p.actions)
        .filter_map(|a| a.split_once(':').map(|(service, _)| format!("{service}:*")))
        .collect();
    if stage.preview {
        services.extend(["iam:*".to_string(), "s3:*".to_string()]);
    }
    {
        // For the previews' role (which runs code nobody has merged yet), every named stage.
        let others: BTreeSet<String> = ws
            .stages
            .keys()
            .filter_map(|name| ws.stage(name).ok())
            .filter(|other| !other.preview && other.id != stage.id)
            .map(|other| other.id)
            .collect();
        if !others.is_empty() && !services.is_empty() {
            out.push(Permission {
                why: "never: another named stage's resources (by their ferry:stage tag)".into(),
                deny: true,
                actions: services.iter().cloned().collect(),
                resources: vec!["*".into()],
                condition: Some(json!({"StringEquals": {
                    format!("aws:ResourceTag/{}", STAGE_TAG): others.iter().collect::<Vec<_>>()
                }})),
            });
        }
    }
    {
        // The grants go by the start of a name (`shop-*` for the previews; `role/shop-api-*`,
        // cut to 16 characters, for a named stage's stacks), which another project's names may
        // share (`shop-api-orders-dev` of project `shop-api`); and for the previews, a named
        // stage only another branch's ferry.toml names is none of those denied by name below:
        // both by their tags, on every service granted (CloudFormation passes a stack's tags on
        // to the resources it makes).
        // The stacks for every role (the boundary as well); for the deployer alone, the roles
        // and buckets, which the grants name by the start of a name, and every change to any
        // other resource the grants reach (most name no resource: another project's table could
        // be deleted), but not what a stack does with another project's resource (a
        // subscription to its topic, a read), nor anything its functions do.
        let project_tag = "aws:ResourceTag/ferry:project";
        let another_project = json!({
            "Null": {project_tag: "false"},
            "StringNotEquals": {project_tag: ws.project.name.clone()},
        });
        let named_stage = json!({"StringEquals": {"aws:ResourceTag/ferry:named-stage": "true"}});
        // The changes are the granted actions that change (by their names: real actions,
        // which IAM and cfn-lint know, where a `Delete*` pattern may match none of a service's).
        const CHANGES: [&str; 9] = [
            "Add", "Create", "Delete", "Put", "Remove", "Set", "Tag", "Untag", "Update",
        ];
        let whole = ["iam:*", "s3:*"];
        let changes: BTreeSet<String> = granted
            .iter()
            .filter(|p| !p.deny)
            .flat_map(|p| &p.actions)
            .filter(|a| {
                a.split_once(':').is_some_and(|(service, action)| {
                    !["iam", "s3", "cloudformation"].contains(&service)
                        && CHANGES.iter().any(|c| action.starts_with(c))
                })
            })
            .cloned()
            .collect();
        let others: Vec<String> = whole
            .iter()
            .filter(|w| services.contains(**w))
            .map(|w| w.to_string())
            .chain(changes)
            .collect();
        let mut apart = vec![("another project's", "ferry:project", another_project)];
        if stage.preview {
            apart.push((
                "a named stage's, also one only another branch names,",
                "ferry:named-stage",
                named_stage,
            ));
        }
        let (whose_roles, deployers) = if stage.preview {
            (" (previews)", " (previews' deployer)")
        } else {
            ("", " (deployer)")
        };
        // A named stage may read another project's stacks (`${cf:network.SubnetId}`, a
        // function describing one): only changes are denied; the previews, nothing of them.
        let stack_actions: &[&str] = if stage.preview {
            &["cloudformation:*"]
        } else {
            &[
                "cloudformation:Cancel*",
                "cloudformation:Continue*",
                "cloudformation:Create*",
                "cloudformation:Delete*",
                "cloudformation:Execute*",
                "cloudformation:Import*",
                "cloudformation:Rollback*",
                "cloudformation:Set*",
                "cloudformation:Signal*",
                "cloudformation:Tag*",
                "cloudformation:Untag*",
                "cloudformation:Update*",
            ]
        };
        for (whose, tag, condition) in apart {
            out.push(Permission {
                why: format!("never{whose_roles}: {whose} stacks (by their {tag} tag)"),
                deny: true,
                actions: strings(stack_actions),
                resources: vec!["*".into()],
                condition: Some(condition.clone()),
            });
            if !others.is_empty() {
                deployer_only.push(Permission {
                    why: format!(
                        "never{deployers}: {whose} roles and buckets, and changes to its other resources (by their {tag} tag, which CloudFormation passes on from the stack)"
                    ),
                    deny: true,
                    actions: others.clone(),
                    resources: vec!["*".into()],
                    condition: Some(condition),
                });
            }
        }
    }
    if stage.preview {
        // Preview names are patterns: keep them off every named stage. Stacks and records by
        // name (each service's stack in each named stage: a pattern such as `shop-*-dev` would
        // also cover a preview whose id ends in `-dev`); everything else, stacks this checkout
        // does not know, roles and buckets included, by the stage tag (above).
        let mut stacks = BTreeSet::new();
        for name in ws.stages.keys() {
            let Ok(named) = ws.stage(name) else { continue };
            for s in &ws.services {
                stacks.insert(ws.stack_name(&s.name, &named));
            }
        }
        if !stacks.is_empty() {
            out.push(Permission {
                why: "never (previews): a named stage's stacks".into(),
                deny: true,
                actions: strings(&["cloudformation:*"]),
                resources: stacks
                    .iter()
                    .map(|s| format!("arn:${{AWS::Partition}}:cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/{s}/*"))
                    .collect(),
                ..Default::default()
            });
        }
    }
    out.extend(ssm_path_denials(ws, stage, granted, notes));
    if !stage.preview {
        out.extend(stack_name_denials(ws, stage, granted, notes));
    }
    Denials {
        all: out,
        deployer_only,
    }
}

/// The denials of a stage's roles ([`denials`]).
#[derive(Debug, Clone, Default)]
pub struct Denials {
    /// The deployer's, and, as far as one managed policy holds them, the boundary's on every
    /// role a deploy makes.
    pub all: Vec<Permission>,
    /// The deployer's alone: what would deny a deployed function what it may well need (a
    /// preview's function using another project's topic).
    pub deployer_only: Vec<Permission>,
}

/// Whether the IAM resource pattern `pattern` (`*`: any run of characters, `?`: any one)
/// matches `text`.
fn iam_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            // The last `*` takes one more character.
            star = Some((si, sj + 1));
            i = si + 1;
            j = sj + 1;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// A stage's SSM paths as IAM name patterns, each ending with `/`: its records path (the preview
/// stages' with `*` for the id), under which its records, health marks and lock live, flagged
/// `true`; and its parameters-path. Ferry makes both absolute (`parameter/…` in an ARN).
fn ssm_paths(ws: &Workspace, stage: &Stage) -> Vec<(String, bool)> {
    let id = if stage.preview {
        "*"
    } else {
        stage.id.as_str()
    };
    let records = ferry_manifest::records_path(&ws.project.name, &stage.config, id);
    let parameters = stage
        .config
        .parameters_path
        .as_deref()
        .map(|p| (format!("{}/", p.trim_end_matches('/')), false));
    std::iter::once((records, true)).chain(parameters).collect()
}

/// The other stages' SSM paths, by name: a named stage's role is denied every other named
/// stage's records path and parameters-path, and the preview stages' (their records by the
/// pattern, when it reaches none of the stage's own); the previews' role every named stage's.
/// Each is denied in its stage's region (the role's grants by type, such as
/// `AWS::SSM::Parameter`, are on `*`, every region) as `<path>/*` and the path itself (which
/// GetParametersByPath names). A path that holds one of the role's own is not denied, and said;
/// so is a parameters-path a path the role may list holds (GetParametersByPath is authorized by
/// the path asked for, not by the parameters it returns), and a name the stage reads that lies
/// under a denied path.
fn ssm_path_denials(
    ws: &Workspace,
    stage: &Stage,
    granted: &[Permission],
    notes: &mut Vec<String>,
) -> Vec<Permission> {
    // Names of the role's own it must keep (a preview id as `\0`, which no name holds): each
    // path's every name, and under the records path its records, health marks and lock.
    let own: Vec<(String, String)> = ssm_paths(ws, stage)
        .into_iter()
        .flat_map(|(path, records)| {
            let p = path.replace('*', "\u{0}");
            let mut names = vec![format!("{p}\u{0}")];
            if records {
                names.extend(
                    ["lock", "records/\u{0}", "health/\u{0}", "nodes/\u{0}"]
                        .map(|r| format!("{p}{r}")),
                );
            }
            names.into_iter().map(move |n| (n, path.clone()))
        })
        .collect();
    // What the role may list (GetParametersByPath), and the names it reads one by one, as
    // granted (in its own region).
    let param_names = |listing: bool| -> Vec<String> {
        granted
            .iter()
            .filter(|p| !p.deny)
            .filter(|p| !listing || p.actions.iter().any(|a| a == "ssm:GetParametersByPath"))
            .flat_map(|p| &p.resources)
            .filter(|r| r.contains(":ssm:${AWS::Region}:"))
            .filter_map(|r| r.split_once(":parameter").map(|(_, n)| n.to_string()))
            .filter(|n| listing || !n.contains('*'))
            .collect()
    };
    let listable = param_names(true);
    let read = param_names(false);
    let mut others: Vec<(String, Stage)> = ws
        .stages
        .keys()
        .filter_map(|name| ws.stage(name).ok())
        // A stage of another account holds none of this account's parameters.
        .filter(|other| {
            !other.preview
                && other.id != stage.id
                && !stage.config.in_another_account(&other.config)
        })
        .map(|other| (format!("stage `{}`", other.name), other))
        .collect();
    if !stage.preview
        && let Some(config) = &ws.default_stage
    {
        let previews = Stage {
            name: "*".into(),
            id: "*".into(),
            preview: true,
            config: config.clone(),
        };
        others.push(("the preview stages".into(), previews));
    }
    let mut resources = BTreeSet::new();
    for (whose, other) in &others {
        let region = &other.config.region;
        let same_region = *region == stage.config.region;
        for (path, records) in ssm_paths(ws, other) {
            let base = path.trim_end_matches('/').to_string();
            let patterns = [format!("{path}*"), base.clone()];
            let reaches = |name: &str| patterns.iter().any(|p| iam_match(p, name));
            if same_region && let Some((_, mine)) = own.iter().find(|(n, _)| reaches(n)) {
                // The previews' records pattern holds every named stage's default records path.
                if !(other.preview && records) {
                    notes.push(format!(
                        "{whose}'s SSM path {path} holds this stage's own {mine}: not denied to the role (that would deny the stage its own), so the role reaches {whose}'s parameters there; give each stage a path of its own"
                    ));
                }
                continue;
            }
            if same_region && !records {
                let mut ancestors = path
                    .match_indices('/')
                    .flat_map(|(i, _)| [&path[..i], &path[..=i]])
                    .filter(|a| !a.is_empty());
                if let Some(a) = ancestors.find(|a| listable.iter().any(|l| iam_match(l, a))) {
                    notes.push(format!(
                        "{whose}'s parameters-path {path} lies under {a}, which the role may list: GetParametersByPath is authorized by the path asked for, not by the parameters it returns, so the denial does not keep a recursive listing from reading them; give each stage a path of its own"
                    ));
                }
            }
            if same_region {
                for name in read.iter().filter(|n| reaches(n)) {
                    notes.push(format!(
                        "`{name}`, which the stage reads by name, lies under {whose}'s SSM path {path}, denied to the role: reading it fails; keep what stages share outside every stage's path"
                    ));
                }
            }
            for p in &patterns {
                resources.insert(format!(
                    "arn:${{AWS::Partition}}:ssm:{region}:${{AWS::AccountId}}:parameter{p}"
                ));
            }
        }
    }
    if resources.is_empty() {
        return Vec::new();
    }
    vec![Permission {
        why: if stage.preview {
            "never (previews): a named stage's records, lock and parameters (SSM, by path)".into()
        } else {
            "never: another stage's records, lock and parameters (SSM, by path)".into()
        },
        deny: true,
        actions: strings(&["ssm:*"]),
        resources: resources.into_iter().collect(),
        ..Default::default()
    }]
}

/// The logical ids of every service's template, lowercased (a template that cannot be read
/// adds none; a Serverless service's, which its framework makes, are not known here).
fn logical_ids(ws: &Workspace) -> BTreeSet<String> {
    ws.services
        .iter()
        .filter(|s| s.kind != ferry_manifest::ServiceKind::Serverless)
        .filter_map(|s| std::fs::read_to_string(ws.root.join(s.template_path())).ok())
        .filter_map(|text| ferry_package::parse_template(&text).ok())
        .flat_map(|t| {
            t["Resources"]
                .as_object()
                .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect()
}

/// For a named stage's role: the IAM roles and S3 buckets CloudFormation names after another
/// named stage's stacks that the grants by the start of a name reach too: a stack name that
/// extends this stage's (`shop-api-staging-*` reaches stage `staging-eu`'s
/// `shop-api-staging-eu-…`), or any stage's of a service whose stack names are longer than
/// [`ROLE_PREFIX`] (`shop-database-st*` is cut before the stage). Denied by the other stack's
/// whole name and its `-`, which this stage's own names never start with (a stack of its own
/// whose name extends the other's is left alone, and said); a name CloudFormation cut before
/// the stage is only kept apart by the `ferry:stage` tag.
fn stack_name_denials(
    ws: &Workspace,
    stage: &Stage,
    granted: &[Permission],
    notes: &mut Vec<String>,
) -> Vec<Permission> {
    let own: Vec<String> = stack_names(ws, stage)
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let patterns: Vec<&str> = granted
        .iter()
        .filter(|p| !p.deny)
        .flat_map(|p| &p.resources)
        .map(String::as_str)
        .filter(|r| r.contains('*') && (r.contains(":iam::") || r.contains(":s3:::")))
        .collect();
    let granted_one = |start: &str| patterns.iter().any(|p| iam_match(p, &format!("{start}x")));
    let mut roles = BTreeSet::new();
    let mut buckets = BTreeSet::new();
    let mut reached = BTreeSet::new();
    let region = stage.config.region.to_ascii_lowercase();
    // Whether a name this stage's stacks make may start with `other-`: an own stack name that
    // extends the other's, or the other's that is an own one and the start of this stage's
    // region (the Serverless Framework names a function role `<stack>-<region>-lambdaRole`, and
    // templates name roles `${AWS::StackName}-${AWS::Region}-…`: `orders-dev-us-*` of stage
    // `dev-us` reaches dev's `orders-dev-us-east-1-lambdaRole`).
    // And the logical ids of the templates (lowercased, as bucket names are): CloudFormation
    // names a resource `<stack>-<logical id>-<random>`, so stage `dev-data` of a bucket `Data`
    // names what dev's own bucket is named (`shop-bkt-dev-data-…`).
    let logical_ids = logical_ids(ws);
    // And the roles and buckets its templates name themselves (`${AWS::StackName}-eu-archive`
    // of stage `dev` is `api-dev-eu-archive`, which starts like stage `dev-eu`'s names).
    let (given_roles, given_buckets) = names_of(ws, stage, &cfn_templates(ws));
    let given: Vec<String> = given_roles
        .iter()
        .chain(&given_buckets)
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let meets = |other: &str| {
        given.iter().any(|n| n.starts_with(&format!("{other}-")))
            || own.iter().any(|o| {
                o.starts_with(other)
                    || other
                        .strip_prefix(o.as_str())
                        .and_then(|rest| rest.strip_prefix('-'))
                        .is_some_and(|rest| {
                            region == rest
                                || region.starts_with(&format!("{rest}-"))
                                || logical_ids.contains(rest)
                        })
            })
    };
    // The fixed start of each grant by a name (before its `*`): one cut to 16 characters
    // (`shop-api-prod-de*` of stack `shop-api-prod-dev`) may run past another stage's whole
    // stack name (`shop-api-prod`, a service `api`'s in prod), reaching some of its names,
    // which no denial can tell from this stage's own.
    let starts: Vec<&str> = patterns
        .iter()
        .map(|p| p.split('*').next().unwrap_or(p))
        .collect();
    // The starts of the nested stacks granted (`stack/api-dev-*/*`): another stage's stack
    // whose name extends one (`api-dev-eu` of stage `dev-eu`) is reached by it.
    let nest_starts: Vec<&str> = granted
        .iter()
        .filter(|p| !p.deny)
        .flat_map(|p| &p.resources)
        .filter(|r| r.contains(":cloudformation:") && r.ends_with("-*/*"))
        .filter_map(|r| r.split_once(":stack/"))
        .map(|(_, rest)| rest.trim_end_matches("*/*"))
        .collect();
    let mut stacks_denied = BTreeSet::new();
    for name in ws.stages.keys() {
        let Ok(other) = ws.stage(name) else { continue };
        if other.preview || other.id == stage.id {
            continue;
        }
        if stage.config.in_another_account(&other.config) {
            continue;
        }
        for s in stack_names(ws, &other) {
            for start in nest_starts.iter().filter(|st| s.starts_with(**st)) {
                // This stage's own nested stacks are `<stack>-<logical id>-…`.
                let rest = s[start.len()..].to_ascii_lowercase();
                if logical_ids
                    .iter()
                    .any(|id| rest == *id || rest.starts_with(&format!("{id}-")))
                {
                    reached.insert(other.name.clone());
                } else {
                    stacks_denied.insert(format!("arn:${{AWS::Partition}}:cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/{s}/*"));
                    stacks_denied.insert(format!("arn:${{AWS::Partition}}:cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/{s}-*/*"));
                }
            }
            let lower = s.to_ascii_lowercase();
            let role = format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{s}-");
            let bucket_start = format!("arn:${{AWS::Partition}}:s3:::{lower}-");
            if starts
                .iter()
                .any(|f| f.starts_with(&role) || f.starts_with(&bucket_start))
            {
                reached.insert(other.name.clone());
            }
            if meets(&lower) {
                // Reached by a grant: the other stage's names, also those it makes with its
                // region (`orders-dev-us-*` of stage `dev-us` reaches dev's
                // `orders-dev-us-east-1-lambdaRole`).
                let other_region = other.config.region.to_ascii_lowercase();
                let reaches = [format!("{s}-"), format!("{s}-{other_region}-")]
                    .iter()
                    .any(|start| {
                        granted_one(&format!(
                            "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{start}"
                        )) || granted_one(&format!(
                            "arn:${{AWS::Partition}}:s3:::{}",
                            start.to_ascii_lowercase()
                        ))
                    });
                if reaches {
                    reached.insert(other.name.clone());
                }
                continue;
            }
            if granted_one(&role) {
                roles.insert(format!("{role}*"));
            }
            let bucket = format!("arn:${{AWS::Partition}}:s3:::{lower}-");
            if granted_one(&bucket) {
                buckets.insert(format!("{bucket}*"));
            }
        }
    }
    for other in reached {
        notes.push(format!(
            "this stage's names and stage `{other}`'s stack names start alike (one extends the other, by this stage's region or a template's logical id: `<stack>-<region>-…`, `<stack>-<logical id>-…`; or a name cut to 16 characters runs past its stack's name): the role's grants by the start of a name reach roles and buckets named after its stacks, which only the ferry:stage tag keeps it off (S3 honours tag conditions for some actions only), as denying them by name would deny this stage its own; give stages and services names none of which starts another's with `-`, or stages accounts of their own"
        ));
    }
    let mut out = Vec::new();
    if !stacks_denied.is_empty() {
        out.push(Permission {
            why: "never: another named stage's stacks that the grant of nested stacks reaches"
                .into(),
            deny: true,
            actions: strings(&["cloudformation:*"]),
            resources: stacks_denied.into_iter().collect(),
            ..Default::default()
        });
    }
    for (service, resources) in [("iam:*", roles), ("s3:*", buckets)] {
        if resources.is_empty() {
            continue;
        }
        out.push(Permission {
            why: format!(
                "never: {} named after another named stage's stacks (the grants by a name's start reach them)",
                if service == "iam:*" { "roles" } else { "buckets" }
            ),
            deny: true,
            actions: strings(&[service]),
            resources: resources.into_iter().collect(),
            ..Default::default()
        });
    }
    out
}

/// The tag that names a stack's stage id (ferry-stacks' `TAG_STAGE`, written here to keep this
/// crate free of the CloudFormation client), which CloudFormation passes on to what it creates.
const STAGE_TAG: &str = "ferry:stage";

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| (*x).to_string()).collect()
}

/// The actions CloudFormation needs to create, update and delete a resource type.
fn actions_of(ty: &str) -> Option<(&'static [&'static str], Scope)> {
    Some(match ty {
        // CloudFormation creates a nested stack with the deploying role's credentials.
        "AWS::CloudFormation::Stack" => (
            &[
                "cloudformation:CreateStack",
                "cloudformation:UpdateStack",
                "cloudformation:DeleteStack",
                "cloudformation:DescribeStacks",
                "cloudformation:DescribeStackEvents",
                "cloudformation:ListStackResources",
                "cloudformation:GetTemplate",
                "cloudformation:TagResource",
                "cloudformation:UntagResource",
            ][..],
            Scope::NestedStacks,
        ),
        "AWS::SQS::Queue" => (
            &[
                "sqs:CreateQueue",
                "sqs:DeleteQueue",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:TagQueue",
                "sqs:UntagQueue",
                "sqs:ListQueueTags",
            ][..],
            Scope::Any,
        ),
        "AWS::SQS::QueuePolicy" => (
            &["sqs:SetQueueAttributes", "sqs:GetQueueAttributes"][..],
            Scope::Any,
        ),
        "AWS::SNS::Topic" => (
            &[
                "sns:CreateTopic",
                "sns:DeleteTopic",
                "sns:GetTopicAttributes",
                "sns:SetTopicAttributes",
                "sns:TagResource",
                "sns:UntagResource",
                "sns:ListTagsForResource",
                "sns:Subscribe",
                "sns:Unsubscribe",
                "sns:ListSubscriptionsByTopic",
            ][..],
            Scope::Any,
        ),
        "AWS::SNS::Subscription" => (
            &[
                "sns:Subscribe",
                "sns:Unsubscribe",
                "sns:GetSubscriptionAttributes",
                "sns:SetSubscriptionAttributes",
            ][..],
            Scope::Any,
        ),
        "AWS::SNS::TopicPolicy" => (
            &["sns:SetTopicAttributes", "sns:GetTopicAttributes"][..],
            Scope::Any,
        ),
        "AWS::S3::Bucket" => (
            &[
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:GetBucketLocation",
                "s3:ListBucket",
                "s3:ListBucketVersions",
                "s3:PutBucketTagging",
                "s3:GetBucketTagging",
                "s3:PutEncryptionConfiguration",
                "s3:GetEncryptionConfiguration",
                "s3:PutBucketVersioning",
                "s3:GetBucketVersioning",
                "s3:PutLifecycleConfiguration",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutBucketOwnershipControls",
                "s3:PutBucketWebsite",
                "s3:PutBucketCORS",
                "s3:PutBucketNotification",
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:DeleteObjectVersion",
            ][..],
            Scope::StackBuckets,
        ),
        "AWS::S3::BucketPolicy" => (
            &[
                "s3:PutBucketPolicy",
                "s3:GetBucketPolicy",
                "s3:DeleteBucketPolicy",
            ][..],
            Scope::StackBuckets,
        ),
        "AWS::DynamoDB::Table" => (
            &[
                "dynamodb:CreateTable",
                "dynamodb:DeleteTable",
                "dynamodb:DescribeTable",
                "dynamodb:UpdateTable",
                "dynamodb:TagResource",
                "dynamodb:UntagResource",
                "dynamodb:ListTagsOfResource",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:UpdateContinuousBackups",
                "dynamodb:DescribeTimeToLive",
                "dynamodb:UpdateTimeToLive",
            ][..],
            Scope::Any,
        ),
        "AWS::Lambda::Function" => (
            &[
                "lambda:CreateFunction",
                "lambda:DeleteFunction",
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
                "lambda:TagResource",
                "lambda:UntagResource",
                "lambda:ListTags",
                "lambda:PutFunctionConcurrency",
                "lambda:DeleteFunctionConcurrency",
            ][..],
            Scope::Any,
        ),
        "AWS::Lambda::Version" => (
            &[
                "lambda:PublishVersion",
                "lambda:GetFunction",
                "lambda:DeleteFunction",
            ][..],
            Scope::Any,
        ),
        "AWS::Lambda::Permission" => (
            &["lambda:AddPermission", "lambda:RemovePermission"][..],
            Scope::Any,
        ),
        "AWS::Lambda::Url" => (
            &[
                "lambda:CreateFunctionUrlConfig",
                "lambda:GetFunctionUrlConfig",
                "lambda:UpdateFunctionUrlConfig",
                "lambda:DeleteFunctionUrlConfig",
            ][..],
            Scope::Any,
        ),
        "AWS::Lambda::Alias" => (
            &[
                "lambda:CreateAlias",
                "lambda:GetAlias",
                "lambda:UpdateAlias",
                "lambda:DeleteAlias",
                "lambda:PutProvisionedConcurrencyConfig",
                "lambda:GetProvisionedConcurrencyConfig",
                "lambda:DeleteProvisionedConcurrencyConfig",
            ][..],
            Scope::Any,
        ),
        "AWS::Lambda::LayerVersionPermission" => (
            &[
                "lambda:AddLayerVersionPermission",
                "lambda:RemoveLayerVersionPermission",
                "lambda:GetLayerVersionPolicy",
            ][..],
            Scope::Any,
        ),
        "AWS::Lambda::EventInvokeConfig" => (
            &[
                "lambda:PutFunctionEventInvokeConfig",
                "lambda:GetFunctionEventInvokeConfig",
                "lambda:UpdateFunctionEventInvokeConfig",
                "lambda:DeleteFunctionEventInvokeConfig",
            ][..],
            Scope::Any,
        ),
        "AWS::Lambda::EventSourceMapping" => (
            &[
                "lambda:CreateEventSourceMapping",
                "lambda:DeleteEventSourceMapping",
                "lambda:GetEventSourceMapping",
                "lambda:UpdateEventSourceMapping",
            ][..],
            Scope::Any,
        ),
        "AWS::Lambda::LayerVersion" => (
            &[
                "lambda:PublishLayerVersion",
                "lambda:DeleteLayerVersion",
                "lambda:GetLayerVersion",
            ][..],
            Scope::Any,
        ),
        "AWS::IAM::Role" => (
            &[
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:GetRole",
                "iam:PassRole",
                "iam:UpdateRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:PutRolePolicy",
                "iam:GetRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:AttachRolePolicy",
                "iam:DetachRolePolicy",
                "iam:TagRole",
                "iam:UntagRole",
                // Puts the stage's boundary on a role made before it (bounded, as the writes).
                "iam:PutRolePermissionsBoundary",
            ][..],
            Scope::StackRoles,
        ),
        "AWS::Logs::LogGroup" => (
            &[
                "logs:CreateLogGroup",
                "logs:DeleteLogGroup",
                "logs:DescribeLogGroups",
                "logs:PutRetentionPolicy",
                "logs:DeleteRetentionPolicy",
                "logs:TagResource",
                "logs:UntagResource",
            ][..],
            Scope::Any,
        ),
        "AWS::Logs::SubscriptionFilter" => (
            &[
                "logs:PutSubscriptionFilter",
                "logs:DescribeSubscriptionFilters",
                "logs:DeleteSubscriptionFilter",
            ][..],
            Scope::Any,
        ),
        "AWS::ElasticLoadBalancingV2::TargetGroup" => (
            &[
                "elasticloadbalancing:CreateTargetGroup",
                "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetGroupAttributes",
                "elasticloadbalancing:ModifyTargetGroup",
                "elasticloadbalancing:ModifyTargetGroupAttributes",
                "elasticloadbalancing:RegisterTargets",
                "elasticloadbalancing:DeregisterTargets",
                "elasticloadbalancing:DescribeTargetHealth",
                "elasticloadbalancing:AddTags",
                "elasticloadbalancing:RemoveTags",
                "elasticloadbalancing:DescribeTags",
            ][..],
            Scope::Any,
        ),
        "AWS::ElasticLoadBalancingV2::ListenerRule" => (
            &[
                "elasticloadbalancing:CreateRule",
                "elasticloadbalancing:DeleteRule",
                "elasticloadbalancing:DescribeRules",
                "elasticloadbalancing:ModifyRule",
                "elasticloadbalancing:SetRulePriorities",
                "elasticloadbalancing:AddTags",
                "elasticloadbalancing:RemoveTags",
                "elasticloadbalancing:DescribeTags",
            ][..],
            Scope::Any,
        ),
        "AWS::Cognito::UserPool" => (
            &[
                "cognito-idp:CreateUserPool",
                "cognito-idp:DeleteUserPool",
                "cognito-idp:DescribeUserPool",
                "cognito-idp:UpdateUserPool",
                "cognito-idp:AddCustomAttributes",
                "cognito-idp:SetUserPoolMfaConfig",
                "cognito-idp:GetUserPoolMfaConfig",
                "cognito-idp:TagResource",
                "cognito-idp:UntagResource",
                "cognito-idp:ListTagsForResource",
            ][..],
            Scope::Any,
        ),
        "AWS::IoT::TopicRule" => (
            &[
                "iot:CreateTopicRule",
                "iot:ReplaceTopicRule",
                "iot:DeleteTopicRule",
                "iot:GetTopicRule",
                "iot:EnableTopicRule",
                "iot:DisableTopicRule",
                "iot:TagResource",
                "iot:UntagResource",
                "iot:ListTagsForResource",
            ][..],
            Scope::Any,
        ),
        "AWS::IoT::ProvisioningTemplate" => (
            &[
                "iot:CreateProvisioningTemplate",
                "iot:UpdateProvisioningTemplate",
                "iot:DeleteProvisioningTemplate",
                "iot:DescribeProvisioningTemplate",
                "iot:TagResource",
                "iot:UntagResource",
                "iot:ListTagsForResource",
            ][..],
            Scope::Any,
        ),
        "AWS::CloudFront::Distribution" => (
            &[
                "cloudfront:CreateDistribution",
                "cloudfront:CreateDistributionWithTags",
                "cloudfront:UpdateDistribution",
                "cloudfront:DeleteDistribution",
                "cloudfront:GetDistribution",
                "cloudfront:GetDistributionConfig",
                "cloudfront:TagResource",
                "cloudfront:UntagResource",
                "cloudfront:ListTagsForResource",
            ][..],
            Scope::Any,
        ),
        "AWS::Kinesis::Stream" => (
            &[
                "kinesis:CreateStream",
                "kinesis:DeleteStream",
                "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary",
                "kinesis:UpdateShardCount",
                "kinesis:UpdateStreamMode",
                "kinesis:IncreaseStreamRetentionPeriod",
                "kinesis:DecreaseStreamRetentionPeriod",
                "kinesis:StartStreamEncryption",
                "kinesis:StopStreamEncryption",
                "kinesis:AddTagsToStream",
                "kinesis:RemoveTagsFromStream",
                "kinesis:ListTagsForStream",
            ][..],
            Scope::Any,
        ),
        "AWS::Events::EventBus" => (
            &[
                "events:CreateEventBus",
                "events:DeleteEventBus",
                "events:DescribeEventBus",
                "events:UpdateEventBus",
                "events:TagResource",
                "events:UntagResource",
                "events:ListTagsForResource",
            ][..],
            Scope::Any,
        ),
        "AWS::Kinesis::StreamConsumer" => (
            &[
                "kinesis:RegisterStreamConsumer",
                "kinesis:DeregisterStreamConsumer",
                "kinesis:DescribeStreamConsumer",
            ][..],
            Scope::Any,
        ),
        "AWS::Scheduler::Schedule" => (
            &[
                "scheduler:CreateSchedule",
                "scheduler:GetSchedule",
                "scheduler:UpdateSchedule",
                "scheduler:DeleteSchedule",
            ][..],
            Scope::Any,
        ),
        "AWS::SSM::Parameter" => (
            &[
                "ssm:PutParameter",
                "ssm:DeleteParameter",
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:AddTagsToResource",
                "ssm:RemoveTagsFromResource",
                "ssm:ListTagsForResource",
            ][..],
            Scope::Any,
        ),
        "AWS::Events::Rule" => (
            &[
                "events:PutRule",
                "events:DeleteRule",
                "events:DescribeRule",
                "events:PutTargets",
                "events:RemoveTargets",
                "events:EnableRule",
                "events:DisableRule",
            ][..],
            Scope::Any,
        ),
        "AWS::StepFunctions::StateMachine" => (
            &[
                "states:CreateStateMachine",
                "states:DeleteStateMachine",
                "states:DescribeStateMachine",
                "states:UpdateStateMachine",
                "states:TagResource",
                "states:UntagResource",
            ][..],
            Scope::Any,
        ),
        t if t.starts_with("AWS::ApiGateway::") || t.starts_with("AWS::ApiGatewayV2::") => (
            &[
                "apigateway:GET",
                "apigateway:POST",
                "apigateway:PUT",
                "apigateway:PATCH",
                "apigateway:DELETE",
            ][..],
            Scope::Any,
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_filters_and_names() {
        assert_eq!(glob_regex("refs/heads/main"), "^refs/heads/main$");
        assert_eq!(
            glob_regex("refs/heads/release/*"),
            "^refs/heads/release/.*$"
        );
        assert_eq!(glob_regex("refs/tags/v1.*"), "^refs/tags/v1\\..*$");
        assert_eq!(
            role_name("arn:aws:iam::111111111111:role/ci/ferry-deployer"),
            Some(("ferry-deployer".into(), "/ci/".into()))
        );
        assert_eq!(
            role_name("arn:aws:iam::111111111111:role/ferry"),
            Some(("ferry".into(), "/".into()))
        );
        assert_eq!(role_name("arn:aws:iam::111111111111:user/x"), None);
        assert!(principal_ok("arn:aws:iam::111111111111:root"));
        assert!(principal_ok("arn:aws:iam::111111111111:role/ci"));
        assert!(iam_match("/ferry/shop/*/*", "/ferry/shop/staging/lock"));
        assert!(iam_match("/shop/prod/*", "/shop/prod/"));
        assert!(!iam_match("/shop/prod/*", "/shop/prod"));
        assert!(!iam_match("/shop/staging/*", "/shop/staging-eu/db"));
        assert!(iam_match("a*b*c", "axxbyyc") && !iam_match("a*b*c", "axxbyy"));
        assert_eq!(name_prefix("toy-api-staging"), "toy-api-staging-");
        assert_eq!(name_prefix("toy-queue-staging"), "toy-queue-stagin");
        assert_eq!(name_prefix("toy-api-*"), "toy-api-");
        for bad in [
            "*",
            "arn:aws:iam::1:root",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::111111111111:group/x",
        ] {
            assert!(!principal_ok(bad), "{bad}");
        }
    }
}
