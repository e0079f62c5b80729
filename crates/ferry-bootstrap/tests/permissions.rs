//! The deployer role's permissions, from a workspace's templates.

use std::fs;
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

#[test]
fn the_ssm_parameters_templates_name_outside_the_parameters_path_are_granted_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/shop/dev\"\n",
    );
    write(
        r,
        "services/api/t.yaml",
        "Parameters:\n  Image:\n    Type: AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>\n    Default: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64\n  Bus: {Type: 'AWS::SSM::Parameter::Value<String>'}\n  Inside: {Type: 'AWS::SSM::Parameter::Value<String>'}\n  Weird:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: '${AWS::AccountId}'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nBus = \"/platform/${stage}/bus\"\nInside = \"/shop/${stage}/inside\"\n",
    );
    // What a service reads by `${ssm:…}`: under the path (granted already), outside it (by
    // label and by version: granted by name), a public parameter, a Secrets Manager secret.
    write(
        r,
        "services/worker/t.yaml",
        "Parameters:\n  A: {Type: String}\n  B: {Type: String}\n  C: {Type: String}\n  D: {Type: String}\n  E: {Type: String}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    write(
        r,
        "services/worker/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nA = \"${ssm:token}\"\nB = \"${ssm:/team/${stage}/key:live}\"\nC = \"${ssm:/aws/service/global-infrastructure/version}\"\nD = \"${ssm:/aws/reference/secretsmanager/prod/db+main}\"\nE = \"${ssm:/shop/devops/key:3}\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let stage = ws.stage("dev").unwrap();
    let mut notes = Vec::new();
    let permissions = ferry_bootstrap::permissions(&ws, &stage, &mut notes);
    let ssm = permissions
        .iter()
        .find(|p| {
            p.why
                .starts_with("SSM parameters outside the parameters path")
        })
        .unwrap_or_else(|| panic!("{permissions:#?}"));
    assert_eq!(
        ssm.actions,
        [
            "ssm:GetParameter",
            "ssm:GetParameters",
            "ssm:GetParameterHistory"
        ]
    );
    assert!(ssm.why.ends_with("(api, worker)"), "{}", ssm.why);
    assert_eq!(
        ssm.resources,
        [
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/aws/reference/secretsmanager/prod/db+main",
            "arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            "arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/global-infrastructure/version",
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/platform/dev/bus",
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/shop/devops/key",
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/team/dev/key",
        ],
        "the stage's parameters path is granted already; a public parameter belongs to no account"
    );
    // The path, level by level: itself (GetParametersByPath) and below, never `/shop/devops`.
    let path = permissions
        .iter()
        .find(|p| p.why.starts_with("the stage's parameters"))
        .unwrap();
    assert_eq!(
        path.resources,
        [
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/shop/dev",
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/shop/dev/*",
        ]
    );
    let secrets = permissions
        .iter()
        .find(|p| p.why.starts_with("Secrets Manager secrets"))
        .unwrap_or_else(|| panic!("{permissions:#?}"));
    assert_eq!(secrets.actions, ["secretsmanager:GetSecretValue"]);
    assert_eq!(
        secrets.resources,
        [
            "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:prod/db+main-??????"
        ]
    );
    let notes = notes.join("\n");
    assert!(
        notes.contains("template parameter Weird is of an SSM parameter type"),
        "a name that is no SSM name never reaches the policy: {notes}"
    );
}

/// After a bootstrap, what ferry.toml still lacks: the outputs it does not name yet, under the
/// stage's table (`"*"` for the preview stages).
#[test]
fn the_settings_suggested_after_a_bootstrap_are_those_ferry_toml_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nartifact-bucket = \"shop-artifacts\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n\n[notifications]\nsns-topic = \"arn:aws:sns:us-east-1:123456789012:shop\"\n",
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(
        r,
        "services/api/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let outputs: std::collections::BTreeMap<String, String> = [
        ("ArtifactBucket", "shop-artifacts"),
        ("DeployerRole", "arn:aws:iam::1:role/shop-dev-deployer"),
        (
            "NotificationTopic",
            "arn:aws:sns:us-east-1:123456789012:shop",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let dev = ferry_bootstrap::suggestions(&ws, &ws.stage("dev").unwrap(), &outputs);
    assert_eq!(dev.table, "dev");
    assert_eq!(
        dev.settings,
        ["role-arn = \"arn:aws:iam::1:role/shop-dev-deployer\""],
        "the bucket is set already"
    );
    assert_eq!(dev.sns_topic, None, "the topic is named already");

    let preview = ws.stage("pr-7").unwrap();
    assert_eq!(ferry_bootstrap::stage_id(&preview), "previews");
    let other = [(
        "NotificationTopic",
        "arn:aws:sns:us-east-1:123456789012:other",
    )]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let p = ferry_bootstrap::suggestions(&ws, &preview, &other);
    assert_eq!(p.table, "\"*\"");
    assert!(p.settings.is_empty());
    assert_eq!(
        p.sns_topic.as_deref(),
        Some("arn:aws:sns:us-east-1:123456789012:other")
    );
}

/// The per-type grants name no resource, so a named stage's role is kept off every other named
/// stage's resources by the ferry:stage tag CloudFormation passes on from the stack: stages
/// that share an account cannot touch each other's tables, functions or queues.
#[test]
fn a_named_stages_role_never_touches_another_named_stages_resources() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.prod]\nregion = \"us-east-1\"\nprotected = true\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n",
    );
    write(
        r,
        "services/db/t.yaml",
        "Resources:\n  T:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      KeySchema: [{AttributeName: id, KeyType: HASH}]\n      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]\n      BillingMode: PAY_PER_REQUEST\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    write(
        r,
        "services/db/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let denial = |stage: &str| {
        let b = ferry_bootstrap::plan(&ws, &ws.stage(stage).unwrap(), &options).unwrap();
        b.permissions
            .into_iter()
            .find(|p| p.deny && p.why.starts_with("never: another named stage's resources"))
    };
    let dev = denial("dev").expect("dev's role is kept off prod");
    assert!(
        dev.actions.contains(&"dynamodb:*".to_string())
            && dev.actions.contains(&"sqs:*".to_string()),
        "{dev:?}"
    );
    assert_eq!(dev.resources, ["*"]);
    assert_eq!(
        dev.condition.unwrap(),
        serde_json::json!({"StringEquals": {"aws:ResourceTag/ferry:stage": ["prod"]}})
    );
    let prod = denial("prod").unwrap();
    assert_eq!(
        prod.condition.unwrap(),
        serde_json::json!({"StringEquals": {"aws:ResourceTag/ferry:stage": ["dev"]}})
    );
    // The previews' role, which runs code nobody has merged yet: every named stage.
    let previews = denial("feature-x").unwrap();
    for service in ["iam:*", "s3:*", "dynamodb:*", "sqs:*"] {
        assert!(
            previews.actions.contains(&service.to_string()),
            "roles and buckets whatever is granted: {previews:?}"
        );
    }
    assert_eq!(
        previews.condition.unwrap(),
        serde_json::json!({"StringEquals": {"aws:ResourceTag/ferry:stage": ["dev", "prod"]}})
    );
    // And, by their tags, another project's stacks and resources (whose names may start as
    // the previews' grants do: roles and buckets too, which the denial left out) and a named
    // stage's, also one only another branch's ferry.toml names.
    let b = ferry_bootstrap::plan(&ws, &ws.stage("feature-x").unwrap(), &options).unwrap();
    let by_tag = |why: &str| {
        b.permissions
            .iter()
            .find(|p| p.deny && p.why.starts_with(why))
            .unwrap_or_else(|| panic!("{why}: {:#?}", b.permissions))
            .clone()
    };
    let project = by_tag("never (previews): another project's stacks");
    assert_eq!(project.actions, ["cloudformation:*"]);
    assert_eq!(project.resources, ["*"]);
    // Their roles and buckets (the grants' `role/shop-api-*` reached project shop-api's) and
    // changes to their other resources (most grants name no resource), for the deployer alone:
    // the boundary on a preview's functions keeps only the stacks' denial, and neither denies
    // using another project's topic or table (a subscription, a read).
    let wider = by_tag("never (previews' deployer): another project's roles and buckets");
    for action in [
        "iam:*",
        "s3:*",
        "dynamodb:DeleteTable",
        "dynamodb:UpdateTable",
        "sqs:DeleteQueue",
        "sqs:SetQueueAttributes",
    ] {
        assert!(wider.actions.contains(&action.to_string()), "{wider:?}");
    }
    // What a preview does with another project's resource (a subscription, a read) stays.
    assert!(
        !wider
            .actions
            .iter()
            .any(|a| (a.ends_with(":*") && a != "iam:*" && a != "s3:*")
                || a.contains(":Get")
                || a.contains(":Describe")),
        "{wider:?}"
    );
    assert_eq!(wider.condition, project.condition);
    let named_wider = by_tag("never (previews' deployer): a named stage's");
    assert_eq!(named_wider.actions, wider.actions);
    let boundary = &b.template["Resources"]["PermissionsBoundary"]["Properties"]["PolicyDocument"]
        ["Statement"];
    let by_these_tags: Vec<&serde_json::Value> = boundary
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let c = s["Condition"].to_string();
            c.contains("ferry:project") || c.contains("ferry:named-stage")
        })
        .collect();
    assert_eq!(by_these_tags.len(), 2, "{boundary:#}");
    for s in by_these_tags {
        let actions = s["Action"].to_string();
        assert!(
            actions.contains("cloudformation:*") && !actions.contains("iam:*"),
            "{s:#}"
        );
    }
    assert_eq!(
        project.condition.unwrap(),
        serde_json::json!({
            "Null": {"aws:ResourceTag/ferry:project": "false"},
            "StringNotEquals": {"aws:ResourceTag/ferry:project": "shop"}
        })
    );
    let named = by_tag("never (previews): a named stage's, also one only another branch names,");
    assert_eq!(named.actions, ["cloudformation:*"]);
    assert_eq!(
        named.condition.unwrap(),
        serde_json::json!({"StringEquals": {"aws:ResourceTag/ferry:named-stage": "true"}})
    );
    // A named stage's role has none of the previews' own, but is kept off another project's
    // as they are: its role and bucket grants go by the start of its stacks' names, cut to 16
    // characters (`role/shop-fulfilment-*` reached project shop-fulfilment's roles), and its
    // per-type grants name no resource (another project's table could be deleted).
    let dev = ferry_bootstrap::plan(&ws, &ws.stage("dev").unwrap(), &options).unwrap();
    assert!(
        !dev.permissions
            .iter()
            .any(|p| p.why.starts_with("never (previews")),
        "{:#?}",
        dev.permissions
    );
    let dev_by = |why: &str| {
        dev.permissions
            .iter()
            .find(|p| p.deny && p.why.starts_with(why))
            .unwrap_or_else(|| panic!("{why}: {:#?}", dev.permissions))
            .clone()
    };
    let stacks = dev_by("never: another project's stacks (by their ferry:project tag)");
    // Changes only: reading another project's stack (`${cf:network.SubnetId}`) stays.
    for action in [
        "cloudformation:Update*",
        "cloudformation:Delete*",
        "cloudformation:Execute*",
    ] {
        assert!(stacks.actions.contains(&action.to_string()), "{stacks:?}");
    }
    assert!(
        !stacks
            .actions
            .iter()
            .any(|a| a.contains("Describe") || a.contains("Get") || a.ends_with(":*")),
        "{stacks:?}"
    );
    assert_eq!(stacks.condition, wider.condition);
    let deployer = dev_by("never (deployer): another project's roles and buckets");
    assert_eq!(deployer.condition, wider.condition);
    for action in ["dynamodb:DeleteTable", "sqs:DeleteQueue"] {
        assert!(
            deployer.actions.contains(&action.to_string()),
            "{deployer:?}"
        );
    }
    assert!(
        !deployer.actions.iter().any(|a| a.contains(":Get")),
        "{deployer:?}"
    );
    // The deployer's alone: the boundary keeps only the stacks' denial.
    let boundary = &dev.template["Resources"]["PermissionsBoundary"]["Properties"]["PolicyDocument"]
        ["Statement"];
    let by_project: Vec<&serde_json::Value> = boundary
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Condition"].to_string().contains("ferry:project"))
        .collect();
    assert_eq!(by_project.len(), 1, "{boundary:#}");
    assert_eq!(by_project[0]["Action"], serde_json::json!(stacks.actions));
}

/// Ferry's own SSM parameters (records, lock, health marks) and the values `param set` writes
/// carry no `ferry:stage` tag, and a template's `AWS::SSM::Parameter` is granted on `*`: each
/// role is denied every other stage's records path and parameters-path by name, in that
/// stage's region, never one of its own (`/toy/staging` is no prefix of `/toy/staging-eu/`). And
/// grants by the start of a stack's name (`toy-api-staging-*`) also reach stage `staging-eu`'s
/// names: those are denied by the longer name.
#[test]
fn a_stages_role_is_denied_the_other_stages_ssm_paths_and_the_names_that_extend_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"toy\"\nstack-name = \"{project}-{service}-{stage}\"\n\n\
         [stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/toy/dev/\"\n\n\
         [stages.staging]\nregion = \"us-east-1\"\nparameters-path = \"/toy/staging\"\n\n\
         [stages.staging-eu]\nregion = \"eu-west-1\"\nparameters-path = \"/toy/staging-eu/\"\n\n\
         [stages.prod]\nregion = \"us-east-1\"\nparameters-path = \"/toy/prod/\"\nrecords-path = \"/ops/toy-prod/\"\n\n\
         [stages.\"*\"]\nregion = \"us-east-1\"\nparameters-path = \"/toy/preview/\"\n",
    );
    write(
        r,
        "services/api/t.yaml",
        "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties: {Type: String, Value: x}\n  B: {Type: AWS::S3::Bucket}\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {}\n",
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(
        r,
        "services/queue/t.yaml",
        "Resources:\n  Q: {Type: AWS::SQS::Queue}\n  B: {Type: AWS::S3::Bucket}\n",
    );
    write(
        r,
        "services/queue/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let plan = |stage: ferry_manifest::Stage| ferry_bootstrap::plan(&ws, &stage, &options).unwrap();
    let find = |b: &ferry_bootstrap::Bootstrap, why: &str| {
        b.permissions
            .iter()
            .find(|p| p.why.starts_with(why))
            .cloned()
            .unwrap_or_else(|| panic!("{why}: {:#?}", b.permissions))
    };
    let ssm = |region: &str, name: &str| {
        format!("arn:${{AWS::Partition}}:ssm:{region}:${{AWS::AccountId}}:parameter{name}")
    };
    let staging = plan(ws.stage("staging").unwrap());
    // Templates still make parameters of any name.
    assert_eq!(find(&staging, "AWS::SSM::Parameter").resources, ["*"]);
    let denied = find(
        &staging,
        "never: another stage's records, lock and parameters",
    );
    assert!(denied.deny);
    assert_eq!(denied.actions, ["ssm:*"]);
    let mut expected: Vec<String> = [
        ("us-east-1", "/ferry/toy/dev"),
        ("us-east-1", "/toy/dev"),
        ("eu-west-1", "/ferry/toy/staging-eu"),
        ("eu-west-1", "/toy/staging-eu"),
        ("us-east-1", "/ops/toy-prod"),
        ("us-east-1", "/toy/prod"),
        // The previews' parameters; their records pattern (`/ferry/toy/*/`) holds staging's own.
        ("us-east-1", "/toy/preview"),
    ]
    .iter()
    .flat_map(|(region, path)| [ssm(region, path), ssm(region, &format!("{path}/*"))])
    .collect();
    expected.sort();
    assert_eq!(denied.resources, expected);
    // The role's own records, lock and parameters stay its own.
    for own in ["/ferry/toy/staging/lock", "/toy/staging/db", "/toy/staging"] {
        assert!(
            !denied
                .resources
                .iter()
                .any(|r| r.contains(":us-east-1:") && r.ends_with(own)),
            "{own}: {:?}",
            denied.resources
        );
    }

    // Buckets and roles: `toy-api-staging-*` and `toy-queue-stagin*` (a longer stack name is
    // granted by its first 16 characters) also reach staging-eu's, denied by their whole names.
    let buckets = find(&staging, "AWS::S3::Bucket ");
    assert!(
        buckets
            .resources
            .contains(&"arn:${AWS::Partition}:s3:::toy-api-staging-*".to_string()),
        "{:?}",
        buckets.resources
    );
    assert!(
        buckets
            .resources
            .contains(&"arn:${AWS::Partition}:s3:::toy-queue-stagin*".to_string()),
        "{:?}",
        buckets.resources
    );
    assert_eq!(
        find(
            &staging,
            "never: buckets named after another named stage's stacks"
        )
        .resources,
        [
            "arn:${AWS::Partition}:s3:::toy-api-staging-eu-*",
            "arn:${AWS::Partition}:s3:::toy-queue-staging-eu-*"
        ]
    );
    let roles = find(
        &staging,
        "never: roles named after another named stage's stacks",
    );
    assert_eq!(roles.actions, ["iam:*"]);
    assert_eq!(
        roles.resources,
        [
            "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/toy-api-staging-eu-*",
            "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/toy-queue-staging-eu-*"
        ]
    );
    // `dev`'s grants reach no other stage's names: nothing more to deny.
    let dev = plan(ws.stage("dev").unwrap());
    assert!(
        !dev.permissions
            .iter()
            .any(|p| p.why.contains("named after another named stage's stacks")),
        "{:#?}",
        dev.permissions
    );
    // staging-eu's names extend staging's: denying staging's would deny its own; said.
    let eu = plan(ws.stage("staging-eu").unwrap());
    assert!(
        !eu.permissions
            .iter()
            .any(|p| p.why.contains("named after another named stage's stacks")),
        "{:#?}",
        eu.permissions
    );
    assert!(
        eu.notes
            .iter()
            .any(|n| n
                .starts_with("this stage's names and stage `staging`'s stack names start alike")),
        "{:#?}",
        eu.notes
    );
    let eu_denied = find(&eu, "never: another stage's records, lock and parameters");
    assert!(
        eu_denied
            .resources
            .contains(&ssm("us-east-1", "/toy/staging/*")),
        "{:?}",
        eu_denied.resources
    );
    assert!(
        !eu_denied
            .resources
            .iter()
            .any(|r| r.contains(":eu-west-1:")),
        "no other stage's path in its own region: {:?}",
        eu_denied.resources
    );

    // The previews' role: every named stage's records and parameters, not its own.
    let previews = plan(ferry_manifest::Stage {
        name: "*".into(),
        id: "*".into(),
        preview: true,
        config: ws.default_stage.clone().unwrap(),
    });
    let denied = find(
        &previews,
        "never (previews): a named stage's records, lock and parameters",
    );
    for path in [
        ssm("us-east-1", "/toy/prod/*"),
        ssm("us-east-1", "/toy/prod"),
        ssm("us-east-1", "/ops/toy-prod/*"),
        ssm("us-east-1", "/ferry/toy/staging/*"),
        ssm("us-east-1", "/toy/staging/*"),
        ssm("eu-west-1", "/toy/staging-eu/*"),
    ] {
        assert!(
            denied.resources.contains(&path),
            "{path}: {:?}",
            denied.resources
        );
    }
    assert!(
        !denied.resources.iter().any(|r| r.contains("/toy/preview")),
        "{:?}",
        denied.resources
    );
}

/// A stage's parameters-path holding another's (ops' `/toy/` holds staging's and prod's): its
/// role could not be denied the other's without being denied its own, and a recursive listing
/// of it returns what lies below, denied or not. `validate` refuses such paths now (bootstrap
/// only noted them). A name the stage reads that lies under another stage's path is denied all
/// the same, and said.
#[test]
fn an_ssm_path_the_role_cannot_be_denied_is_refused_or_said() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let stages = |ops: &str| {
        format!(
            "[project]\nname = \"toy\"\n\n\
             [stages.ops]\nregion = \"us-east-1\"\nparameters-path = \"{ops}\"\n\n\
             [stages.staging]\nregion = \"us-east-1\"\nparameters-path = \"/toy/staging/\"\n\n\
             [stages.prod]\nregion = \"us-east-1\"\nparameters-path = \"/toy/prod/\"\n"
        )
    };
    write(r, "ferry.toml", &stages("/toy/"));
    write(
        r,
        "services/api/t.yaml",
        "Parameters:\n  Shared: {Type: String}\nResources:\n  Q: {Type: AWS::SQS::Queue}\n",
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nShared = \"${ssm:/toy/prod/shared}\"\n",
    );
    let err = ferry_manifest::load(r).unwrap_err().to_string();
    assert!(
        err.contains("stage `staging`'s parameters-path `/toy/staging/` lies inside stage `ops`'s, `/toy/`, in the same region"),
        "{err}"
    );
    write(r, "ferry.toml", &stages("/toy-ops/"));
    let ws = ferry_manifest::load(r).unwrap();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let staging = ferry_bootstrap::plan(&ws, &ws.stage("staging").unwrap(), &options).unwrap();
    let denied = staging
        .permissions
        .iter()
        .find(|p| p.deny && p.actions == ["ssm:*"])
        .unwrap();
    for path in ["parameter/toy/prod/*", "parameter/toy-ops/*"] {
        assert!(
            denied.resources.iter().any(|r| r.ends_with(path)),
            "{path}: {:?}",
            denied.resources
        );
    }
    let notes = staging.notes.join("\n");
    assert!(
        notes.contains("`/toy/prod/shared`, which the stage reads by name, lies under stage `prod`'s SSM path /toy/prod/"),
        "{notes}"
    );
}

/// `iam:PassRole` goes in a statement of its own, only to the services the templates give
/// roles to; when a type Ferry's table lacks may pass one too, it stays unconditioned, noted.
#[test]
fn roles_are_passed_only_to_the_services_that_take_them() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    write(
        r,
        "services/fn/t.yaml",
        "Resources:\n  Role:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {}\n  F:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python3.12\n      Handler: a.h\n      Role: !GetAtt Role.Arn\n      Code: {ZipFile: x}\n  R:\n    Type: AWS::Events::Rule\n    Properties:\n      ScheduleExpression: rate(1 hour)\n",
    );
    write(
        r,
        "services/fn/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let plan = |r: &std::path::Path| {
        let ws = ferry_manifest::load(r).unwrap();
        let options = ferry_bootstrap::Options {
            trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
            codebuild: None,
        };
        ferry_bootstrap::plan(&ws, &ws.stage("dev").unwrap(), &options).unwrap()
    };
    let b = plan(r);
    let passing: Vec<&ferry_bootstrap::Permission> = b
        .permissions
        .iter()
        .filter(|p| !p.deny && p.actions.iter().any(|a| a == "iam:PassRole"))
        .collect();
    assert_eq!(passing.len(), 1, "{:#?}", b.permissions);
    assert_eq!(passing[0].actions, ["iam:PassRole"]);
    assert_eq!(
        passing[0].condition.as_ref().unwrap(),
        &serde_json::json!({"StringEquals": {"iam:PassedToService": ["events.amazonaws.com", "lambda.amazonaws.com"]}})
    );
    let role = b
        .permissions
        .iter()
        .find(|p| p.why.starts_with("AWS::IAM::Role"))
        .unwrap();
    assert!(role.actions.contains(&"iam:DeleteRole".to_string()));
    assert_eq!(role.resources, passing[0].resources);
    // Roles are made, and given rights, only with the stage's permissions boundary on them.
    let bounded = b
        .permissions
        .iter()
        .find(|p| !p.deny && p.actions.iter().any(|a| a == "iam:CreateRole"))
        .unwrap();
    assert_eq!(
        bounded.actions,
        [
            "iam:CreateRole",
            "iam:PutRolePolicy",
            "iam:AttachRolePolicy",
            "iam:PutRolePermissionsBoundary"
        ]
    );
    assert_eq!(bounded.resources, passing[0].resources);
    assert_eq!(
        bounded.condition.as_ref().unwrap(),
        &serde_json::json!({"StringEquals": {"iam:PermissionsBoundary": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/ferry-shop-dev-boundary"}}})
    );
    assert!(
        !role
            .actions
            .iter()
            .any(|a| a == "iam:CreateRole" || a == "iam:PutRolePolicy")
    );
    // The boundary itself: everything but IAM writes and the deployer's denials; it stays on
    // every role and as it is.
    let boundary = &b.template["Resources"]["PermissionsBoundary"]["Properties"];
    assert_eq!(boundary["ManagedPolicyName"], "ferry-shop-dev-boundary");
    let ceiling = boundary["PolicyDocument"]["Statement"].as_array().unwrap();
    assert_eq!(ceiling[0]["Effect"], "Allow");
    assert_eq!(ceiling[0]["Action"], serde_json::json!(["*"]));
    assert!(
        ceiling.iter().any(|st| st["Effect"] == "Deny"
            && st["Action"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "iam:Create*")
            && st["Action"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "iam:Put*")
            && st["Action"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "iam:PassRole")),
        "{ceiling:#?}"
    );
    let denied = |action: &str| {
        b.permissions
            .iter()
            .any(|p| p.deny && p.actions.iter().any(|a| a == action))
    };
    assert!(denied("iam:DeleteRolePermissionsBoundary"));
    assert!(denied("iam:CreatePolicyVersion"));
    // Nor does the deployer assume a role (an old one, its trust pointed at it, would lend it
    // its rights); nor may a role it makes, nor start Ferry's builds.
    assert!(denied("sts:AssumeRole"));
    let boundary_denies = |action: &str| {
        ceiling.iter().any(|st| {
            st["Effect"] == "Deny" && st["Action"].as_array().unwrap().iter().any(|a| a == action)
        })
    };
    assert!(boundary_denies("sts:AssumeRole"));
    assert!(boundary_denies("codebuild:*"));
    assert!(boundary_denies("ssm:SendCommand"));
    // And the deployer's own denials that fit: Ferry's own stacks here.
    assert!(boundary_denies("cloudformation:*"), "{ceiling:#?}");

    // A type the table lacks may pass a role to anything: left unconditioned, and said.
    write(
        r,
        "services/fn/t.yaml",
        &(std::fs::read_to_string(r.join("services/fn/t.yaml")).unwrap()
            + "  S:\n    Type: AWS::Glue::Job\n    Properties:\n      Role: r\n"),
    );
    let b = plan(r);
    let role = b
        .permissions
        .iter()
        .find(|p| p.why.starts_with("AWS::IAM::Role"))
        .unwrap();
    assert!(role.actions.contains(&"iam:PassRole".to_string()));
    assert!(
        b.notes.iter().any(|n| n.starts_with(
            "iam:PassRole is granted without an iam:PassedToService condition: AWS::Glue::Job"
        )),
        "{:?}",
        b.notes
    );
}

/// A Serverless Framework service's template is known only when it compiles: the grants cover
/// what every compiled template holds, its deployment bucket's policy included.
#[test]
fn a_serverless_service_is_granted_what_every_compiled_template_holds() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    write(
        r,
        "services/notifier/serverless.yml",
        "service: shop-notifications\nprovider:\n  name: aws\n  runtime: python3.12\nfunctions:\n  notify:\n    handler: h.handle\n",
    );
    write(
        r,
        "services/notifier/service.toml",
        "[service]\nkind = \"serverless\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let mut notes = Vec::new();
    let permissions = ferry_bootstrap::permissions(&ws, &ws.stage("dev").unwrap(), &mut notes);
    let actions: Vec<&str> = permissions
        .iter()
        .filter(|p| !p.deny)
        .flat_map(|p| p.actions.iter().map(String::as_str))
        .collect();
    for needed in [
        "lambda:CreateFunction",
        "iam:CreateRole",
        "logs:CreateLogGroup",
        "s3:CreateBucket",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
    ] {
        assert!(actions.contains(&needed), "{needed}: {actions:?}");
    }
}

/// What a Serverless service's functions' events compile to and what its `resources:` declare
/// are read from its configuration, through `${file(…)}`; what cannot be read is said.
#[test]
fn a_serverless_service_is_granted_what_its_events_and_resources_make() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    write(
        r,
        "services/orders/serverless.yml",
        "service: shop-orders
provider:
  name: aws
  runtime: python3.12
layers:
  shared:
    path: layer
    allowedAccounts: ['222222222222']
functions: ${file(./functions.yml):functions}
resources:
  - ${file(resources/queue.yml)}
  - Resources:
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          TableName: !Sub '${AWS::StackName}-orders'
  - ${self:custom.more}
  - ${file(../../../outside.yml)}
  - ${file(bad.yml)}
  - ${file(loop.yml):again}
",
    );
    write(
        r,
        "services/orders/functions.yml",
        "functions:
  api:
    handler: h.api
    url: true
    events:
      - http: {path: /orders, method: post}
      - sqs: {arn: !GetAtt Queue.Arn}
  nightly:
    handler: h.nightly
    events:
      - schedule: {rate: cron(0 3 * * ? *), method: scheduler}
      - cloudwatchLog: /aws/lambda/other
      - sns: arn:aws:sns:us-east-1:111111111111:existing
      - stepFunctionsTrigger: {x: 1}
  uploads:
    handler: h.uploads
    url: false
    events:
      - s3: {bucket: '${self:service}-${sls:stage}-uploads', event: 's3:ObjectCreated:*'}
      - s3: {bucket: legacy-bucket, existing: true}
      - s3: ${env:BUCKET}
      - s3: shared-uploads
      - s3: ${sls:stage}-raw
      - eventBridge: {eventBus: orders-bus, pattern: {source: [shop]}}
      - stream: {type: kinesis, arn: arn:aws:kinesis:us-east-1:111111111111:stream/s, consumer: true}
      - iotFleetProvisioning: {templateBody: {Resources: {}}, provisioningRoleArn: 'arn:aws:iam::111111111111:role/fleet'}
",
    );
    write(r, "services/orders/bad.yml", "Resources: [unclosed\n");
    // A file that names itself is followed a bounded number of times.
    write(
        r,
        "services/orders/loop.yml",
        "again: ${file(loop.yml):again}\n",
    );
    write(
        r,
        "services/orders/resources/queue.yml",
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n",
    );
    write(
        r,
        "services/orders/service.toml",
        "[service]\nkind = \"serverless\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let mut notes = Vec::new();
    let permissions = ferry_bootstrap::permissions(&ws, &ws.stage("dev").unwrap(), &mut notes);
    let granted: Vec<&str> = permissions
        .iter()
        .filter(|p| !p.deny)
        .flat_map(|p| p.actions.iter().map(String::as_str))
        .collect();
    for needed in [
        // What every compiled template holds.
        "lambda:CreateFunction",
        // The events.
        "apigateway:POST",
        "lambda:AddPermission",
        "lambda:CreateFunctionUrlConfig",
        "lambda:CreateEventSourceMapping",
        "scheduler:CreateSchedule",
        "logs:PutSubscriptionFilter",
        "sns:Subscribe",
        // The resources, from the file and inline.
        "sqs:CreateQueue",
        "dynamodb:CreateTable",
        // A shared layer, a named bus, a stream consumer, and the framework's custom resource
        // for an existing bucket, which CloudFormation invokes with the role.
        "lambda:AddLayerVersionPermission",
        "events:CreateEventBus",
        "kinesis:RegisterStreamConsumer",
        "lambda:InvokeFunction",
    ] {
        assert!(granted.contains(&needed), "{needed}: {granted:?}");
    }
    // The bucket an `s3` event makes is named by the event, not after the stack.
    let buckets = permissions
        .iter()
        .find(|p| p.why.starts_with("AWS::S3::Bucket "))
        .unwrap();
    assert!(
        buckets
            .resources
            .contains(&"arn:${AWS::Partition}:s3:::shop-orders-dev-uploads".to_string()),
        "{:?}",
        buckets.resources
    );
    let invoke = permissions
        .iter()
        .find(|p| p.actions == ["lambda:InvokeFunction"])
        .unwrap();
    assert!(invoke.why.contains("Custom::S3 (orders)"), "{}", invoke.why);
    assert!(
        invoke.resources[0].ends_with(":function:shop-orders-dev-*"),
        "{:?}",
        invoke.resources
    );
    assert!(
        !buckets
            .resources
            .iter()
            .any(|r| r.contains("shared-uploads")),
        "a bucket of every stage is granted to none: {:?}",
        buckets.resources
    );
    // The previews' role: every preview's bucket, and none of a named stage's.
    let previews = ferry_manifest::Stage {
        name: "*".into(),
        id: "*".into(),
        preview: true,
        config: ws.stage("dev").unwrap().config,
    };
    let mut notes = Vec::new();
    let for_previews = ferry_bootstrap::permissions(&ws, &previews, &mut notes);
    let granted_buckets = for_previews
        .iter()
        .find(|p| p.why.starts_with("AWS::S3::Bucket "))
        .unwrap();
    assert!(
        granted_buckets
            .resources
            .contains(&"arn:${AWS::Partition}:s3:::shop-orders-*-uploads".to_string()),
        "{:?}",
        granted_buckets.resources
    );
    assert!(
        !granted_buckets
            .resources
            .iter()
            .any(|r| r.contains("s3:::*")),
        "a name starting with the stage would reach any bucket: {:?}",
        granted_buckets.resources
    );
    assert!(
        notes.iter().any(|n| n
            .contains("makes bucket `{stage}-raw`, whose name has too little before the stage")),
        "{notes:#?}"
    );
    let denied = for_previews
        .iter()
        .find(|p| p.deny && p.why.contains("buckets that s3 events make"))
        .unwrap_or_else(|| panic!("{for_previews:#?}"));
    assert!(
        denied
            .resources
            .contains(&"arn:${AWS::Partition}:s3:::shop-orders-dev-uploads/*".to_string()),
        "{:?}",
        denied.resources
    );
    // The topic given by its ARN exists: no topic is made.
    assert!(!granted.contains(&"sns:CreateTopic"), "{granted:?}");
    // The roles go to the services that take them, the scheduler's and the log filter's too.
    let pass = permissions
        .iter()
        .find(|p| p.actions == ["iam:PassRole"])
        .unwrap_or_else(|| panic!("{permissions:#?}"));
    let to = pass.condition.as_ref().unwrap()["StringEquals"]["iam:PassedToService"].clone();
    for service in [
        "lambda.amazonaws.com",
        "scheduler.amazonaws.com",
        "logs.amazonaws.com",
    ] {
        assert!(
            to.as_array().unwrap().iter().any(|s| s == service),
            "{service}: {to}"
        );
    }
    // What could not be read is said.
    for said in [
        "`orders`: function `nightly`'s `stepFunctionsTrigger` event is not in Ferry's table",
        "services/orders/serverless.yml: resources is `${self:custom.more}`, which Ferry does not resolve",
        "names a file outside the repository",
        "more than 32 files through ${file(…)}",
        "`services/orders/bad.yml` could not be read (",
        "`orders`: function `uploads`'s `s3` event makes bucket `${env:BUCKET}`, whose name Ferry cannot render",
        "`orders`: an `s3` event makes bucket `shared-uploads`, the same in every stage: not granted",
        "`orders`: function `uploads`'s `iotFleetProvisioning` event passes role `arn:aws:iam::111111111111:role/fleet` to IoT: grant iam:PassRole on it by hand",
    ] {
        assert!(notes.iter().any(|n| n.contains(said)), "{said}: {notes:#?}");
    }
}

/// A Serverless configuration that is a program is not run: bootstrap says so.
#[test]
fn a_serverless_program_configuration_is_said_to_be_unread() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    write(r, "services/ts/serverless.ts", "export default {};\n");
    write(
        r,
        "services/ts/service.toml",
        "[service]\nkind = \"serverless\"\nstack-name = \"ts-{stage}\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let mut notes = Vec::new();
    ferry_bootstrap::permissions(&ws, &ws.stage("dev").unwrap(), &mut notes);
    assert!(
        notes
            .iter()
            .any(|n| n
                .contains("`services/ts/serverless.ts` is a program, which Ferry does not run")),
        "{notes:#?}"
    );
}

/// A type outside Ferry's table is granted its service's actions by their IAM prefix, which is
/// not always the type's namespace in lower case.
#[test]
fn a_type_outside_the_table_is_granted_by_its_services_iam_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    write(
        r,
        "services/edge/t.yaml",
        "Resources:\n  Balancer: {Type: AWS::ElasticLoadBalancingV2::LoadBalancer}\n  Client: {Type: AWS::Cognito::UserPoolClient}\n  Ids: {Type: AWS::Cognito::IdentityPool}\n  Hose: {Type: AWS::KinesisFirehose::DeliveryStream}\n",
    );
    write(
        r,
        "services/edge/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let mut notes = Vec::new();
    let permissions = ferry_bootstrap::permissions(&ws, &ws.stage("dev").unwrap(), &mut notes);
    let granted: Vec<&str> = permissions
        .iter()
        .filter(|p| !p.deny)
        .flat_map(|p| p.actions.iter().map(String::as_str))
        .collect();
    for prefix in [
        "elasticloadbalancing",
        "cognito-idp",
        "cognito-identity",
        "firehose",
    ] {
        assert!(
            granted.contains(&format!("{prefix}:*").as_str()),
            "{prefix}: {granted:?}"
        );
    }
    for wrong in ["elasticloadbalancingv2:*", "cognito:*", "kinesisfirehose:*"] {
        assert!(!granted.contains(&wrong), "{wrong}: {granted:?}");
    }
}

/// Every stage of the example monorepo (this repository's own ferry.toml and services) can be
/// bootstrapped, the previews' stage included.
#[test]
fn every_stage_of_the_example_can_be_bootstrapped() {
    let ws = ferry_manifest::load(&ferry_test_support::workspace_root()).unwrap();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    // The previews' role as `bootstrap '*'` makes it: one stage `*` for every preview.
    let previews = ferry_manifest::Stage {
        name: "*".into(),
        id: "*".into(),
        preview: true,
        config: ws.default_stage.clone().expect("the example has previews"),
    };
    let stages = ws
        .stages
        .keys()
        .map(|name| ws.stage(name).unwrap())
        .chain([previews]);
    for stage in stages {
        let b = ferry_bootstrap::plan(&ws, &stage, &options)
            .unwrap_or_else(|e| panic!("stage {}: {e}", stage.name));
        assert!(b.body().len() <= 51_200, "stage {}", stage.name);
    }
}

/// A long project name: the role Ferry names is cut to IAM's 64 characters (with a hash).
#[test]
fn a_long_project_name_gives_a_role_name_iam_takes() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let project = format!("trial-{}", "x".repeat(50));
    write(
        r,
        "ferry.toml",
        &format!("[project]\nname = \"{project}\"\n\n[stages.staging]\nregion = \"us-east-1\"\n"),
    );
    write(
        r,
        "services/q/t.yaml",
        "Resources:\n  Q: {Type: AWS::SQS::Queue}\n",
    );
    write(
        r,
        "services/q/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let b = ferry_bootstrap::plan(&ws, &ws.stage("staging").unwrap(), &options).unwrap();
    let role = b.template["Resources"]["DeployerRole"]["Properties"]["RoleName"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(role.len() <= 64, "{role}");
    assert!(role.starts_with("ferry-trial-xxxxxxxx"), "{role}");
}

/// A project whose role would need a template larger than CloudFormation takes in a request
/// is refused with what to do, not printed for a deploy that cannot happen.
#[test]
fn a_role_too_large_for_one_template_is_refused_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.staging]\nregion = \"us-east-1\"\n\n[stages.prod]\nregion = \"us-east-1\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n",
    );
    for i in 0..80 {
        write(
            r,
            &format!("services/a-service-with-a-rather-long-name-{i:03}/t.yaml"),
            "Resources:\n  Q: {Type: AWS::SQS::Queue}\n",
        );
        write(
            r,
            &format!("services/a-service-with-a-rather-long-name-{i:03}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        );
    }
    let ws = ferry_manifest::load(r).unwrap();
    let previews = ferry_manifest::Stage {
        name: "*".into(),
        id: "*".into(),
        preview: true,
        config: ws.default_stage.clone().unwrap(),
    };
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let err = ferry_bootstrap::plan(&ws, &previews, &options).unwrap_err();
    assert!(
        matches!(
            err,
            ferry_bootstrap::BootstrapError::TemplateTooLarge { .. }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("split the services over projects"),
        "{err}"
    );
}

/// A Serverless service's custom resources' functions are named after the framework's service
/// and the stage, cut to 32 characters (and a hash) when the name would be over 64: the role
/// may invoke them by that start.
#[test]
fn a_serverless_custom_resource_is_invoked_by_the_name_the_framework_gives_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.production]\nregion = \"us-east-1\"\n",
    );
    for (dir, fw) in [
        ("short", "orders"),
        ("long", "customer-notifications-api"),
        ("longer", "a-really-long-serverless-service-name-here"),
    ] {
        write(
            r,
            &format!("services/{dir}/serverless.yml"),
            &format!(
                "service: {fw}\nprovider:\n  name: aws\nfunctions:\n  f:\n    handler: h.f\n    events:\n      - s3: {{bucket: legacy, existing: true}}\n"
            ),
        );
        write(
            r,
            &format!("services/{dir}/service.toml"),
            "[service]\nkind = \"serverless\"\n",
        );
    }
    let ws = ferry_manifest::load(r).unwrap();
    let mut notes = Vec::new();
    let permissions =
        ferry_bootstrap::permissions(&ws, &ws.stage("production").unwrap(), &mut notes);
    let invoke = permissions
        .iter()
        .find(|p| p.actions == ["lambda:InvokeFunction"])
        .unwrap_or_else(|| panic!("{permissions:#?}"));
    let starts: Vec<&str> = invoke
        .resources
        .iter()
        .map(|r| r.rsplit(":function:").next().unwrap())
        .collect();
    // `orders-production-custom-resource-existing-s3` fits in 64; the long one does not.
    assert!(starts.contains(&"orders-production-*"), "{starts:?}");
    assert!(
        starts.contains(&"customer-notifications-api-produ*"),
        "{starts:?}"
    );
    // Every preview: by the service's name, or its first 32 characters when any preview's
    // function name is cut.
    let previews = ferry_manifest::Stage {
        name: "*".into(),
        id: "*".into(),
        preview: true,
        config: ws.stage("dev").unwrap().config,
    };
    let permissions = ferry_bootstrap::permissions(&ws, &previews, &mut notes);
    let invoke = permissions
        .iter()
        .find(|p| p.actions == ["lambda:InvokeFunction"])
        .unwrap();
    let starts: Vec<&str> = invoke
        .resources
        .iter()
        .map(|r| r.rsplit(":function:").next().unwrap())
        .collect();
    assert!(starts.contains(&"orders-*"), "{starts:?}");
    assert!(
        starts.contains(&"a-really-long-serverless-service*"),
        "{starts:?}"
    );
}

/// The types the framework compiles its own events into are in Ferry's table: none widens the
/// role to a service's every action, nor takes the `iam:PassedToService` condition off; and a
/// `${file(…)}` that leads out of the repository through a symbolic link is not read.
#[test]
fn a_serverless_services_own_events_keep_the_role_narrow() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    write(
        r,
        "services/edge/serverless.yml",
        "service: edge
provider:
  name: aws
functions:
  f:
    handler: h.f
    events:
      - alb: {listenerArn: arn:aws:elasticloadbalancing:us-east-1:1:listener/app/x, priority: 1, conditions: {path: /x}}
      - iot: {sql: \"SELECT * FROM 'x'\"}
      - cognitoUserPool: {pool: users, trigger: PreSignUp}
      - cloudFront: {eventType: viewer-request, origin: 'https://example.com'}
      - iotFleetProvisioning: {templateBody: {}, provisioningRoleArn: arn:aws:iam::1:role/p}
resources:
  - Resources:
      Stream: {Type: AWS::Kinesis::Stream}
  - ${file(linked/out.yml)}
",
    );
    write(
        r,
        "services/edge/service.toml",
        "[service]\nkind = \"serverless\"\n",
    );
    write(
        outside.path(),
        "out.yml",
        "Resources:\n  Secret: {Type: AWS::SecretsManager::Secret}\n",
    );
    std::os::unix::fs::symlink(outside.path(), r.join("services/edge/linked")).unwrap();
    let ws = ferry_manifest::load(r).unwrap();
    let mut notes = Vec::new();
    let permissions = ferry_bootstrap::permissions(&ws, &ws.stage("dev").unwrap(), &mut notes);
    let granted: Vec<&str> = permissions
        .iter()
        .filter(|p| !p.deny)
        .flat_map(|p| p.actions.iter().map(String::as_str))
        .collect();
    assert!(
        !granted.iter().any(|a| a.ends_with(":*")),
        "no service's every action: {granted:?}"
    );
    for needed in [
        "elasticloadbalancing:CreateTargetGroup",
        "elasticloadbalancing:CreateRule",
        "iot:CreateTopicRule",
        "iot:CreateProvisioningTemplate",
        "cognito-idp:CreateUserPool",
        "cloudfront:CreateDistribution",
        "kinesis:CreateStream",
    ] {
        assert!(granted.contains(&needed), "{needed}: {granted:?}");
    }
    let pass = permissions
        .iter()
        .find(|p| p.actions == ["iam:PassRole"])
        .unwrap_or_else(|| panic!("PassRole keeps its condition: {permissions:#?}"));
    let to = pass.condition.as_ref().unwrap()["StringEquals"]["iam:PassedToService"].clone();
    assert!(
        to.as_array()
            .unwrap()
            .iter()
            .any(|s| s == "iot.amazonaws.com"),
        "{to}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("leads out of the repository through a symbolic link")),
        "{notes:#?}"
    );
    assert!(
        !notes.iter().any(|n| n.contains("SecretsManager")),
        "the linked file was not read: {notes:#?}"
    );
}

/// A template's `{{resolve:ssm:…}}` dynamic references are read by CloudFormation with the
/// role: a literal name is granted by name, one with a substitution is noted.
#[test]
fn dynamic_ssm_references_are_granted_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/shop/dev\"\n",
    );
    write(
        r,
        "services/q/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: '{{resolve:ssm:/platform/queue-name:3}}'\n      Tags:\n        - {Key: k, Value: '{{resolve:ssm:/shop/dev/inside}}'}\n        - {Key: s, Value: !Sub '{{resolve:ssm:/x/${AWS::StackName}}}'}\n",
    );
    write(
        r,
        "services/q/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let mut notes = Vec::new();
    let permissions = ferry_bootstrap::permissions(&ws, &ws.stage("dev").unwrap(), &mut notes);
    let ssm = permissions
        .iter()
        .find(|p| {
            p.why
                .starts_with("SSM parameters outside the parameters path")
        })
        .unwrap_or_else(|| panic!("{permissions:#?}"));
    assert_eq!(
        ssm.resources,
        [
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/platform/queue-name"
        ]
    );
    assert!(
        notes.iter().any(|n| n.contains(
            "a `{{resolve:ssm:…}}` in its template names a parameter known only when it deploys"
        )),
        "{notes:#?}"
    );
}

/// A name a stage's own stacks make with its region (the Serverless Framework's
/// `<stack>-<region>-lambdaRole`, `${AWS::StackName}-${AWS::Region}-…`) may start like another
/// stage's stack name (`toy-api-dev-us` of stage `dev-us`): that one is not denied by name,
/// which would deny dev its own role, and a note says so. A stage in another account is no
/// concern at all. (The review of the denials found dev denied `role/toy-api-dev-us-*`.)
#[test]
fn a_stage_is_never_denied_the_names_its_own_stacks_make_with_its_region() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let config = |dev_us: &str| {
        format!(
            "[project]\nname = \"toy\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n\
             [stages.dev]\nregion = \"us-east-1\"\n\n\
             [stages.dev-us]\nregion = \"us-west-2\"\n{dev_us}"
        )
    };
    write(r, "ferry.toml", &config(""));
    write(
        r,
        "services/api/t.yaml",
        "Resources:\n  B: {Type: AWS::S3::Bucket}\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {}\n",
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let dev = |r: &std::path::Path| {
        let ws = ferry_manifest::load(r).unwrap();
        ferry_bootstrap::plan(&ws, &ws.stage("dev").unwrap(), &options).unwrap()
    };
    let b = dev(r);
    let denied_by_name = |b: &ferry_bootstrap::Bootstrap| {
        b.permissions
            .iter()
            .filter(|p| p.deny)
            .flat_map(|p| &p.resources)
            .any(|res| res.contains("toy-api-dev-us"))
    };
    assert!(!denied_by_name(&b), "{:#?}", b.permissions);
    assert!(
        b.notes
            .iter()
            .any(|n| n
                .starts_with("this stage's names and stage `dev-us`'s stack names start alike")),
        "{:#?}",
        b.notes
    );
    // And the other way round: dev-us's grants (`role/toy-api-dev-us-*`) reach dev's names made
    // with its region (`toy-api-dev-us-east-1-…`): said for dev-us too.
    let ws = ferry_manifest::load(r).unwrap();
    let dev_us = ferry_bootstrap::plan(&ws, &ws.stage("dev-us").unwrap(), &options).unwrap();
    assert!(
        dev_us
            .notes
            .iter()
            .any(|n| n.starts_with("this stage's names and stage `dev`'s stack names start alike")),
        "{:#?}",
        dev_us.notes
    );
    // dev-us in an account of its own: nothing to deny, nothing to say. Its parameters under
    // the same path as dev's are the other account's: no SSM denial or note either (the review
    // found a note that dev's role reached them).
    write(
        r,
        "ferry.toml",
        &config("account = \"222222222222\"\nparameters-path = \"/toy/\"\n").replace(
            "[stages.dev]\nregion = \"us-east-1\"\n",
            "[stages.dev]\nregion = \"us-east-1\"\naccount = \"111111111111\"\nparameters-path = \"/toy/\"\n",
        ),
    );
    let b = dev(r);
    assert!(!denied_by_name(&b), "{:#?}", b.permissions);
    assert!(
        !b.notes.iter().any(|n| n.contains("`dev-us`")),
        "{:#?}",
        b.notes
    );
    assert!(
        !b.permissions
            .iter()
            .filter(|p| p.deny)
            .flat_map(|p| &p.resources)
            .any(|res| res.contains(":parameter/toy")),
        "{:#?}",
        b.permissions
    );
}

/// Two more ways a stage's names meet another's, from a probe of the denials: a bucket whose
/// logical id is the other stage's tail (`Data` of stage `dev-data`: dev's own bucket is
/// `shop-bkt-dev-data-…`, and was denied to dev), and a grant cut to 16 characters that runs
/// past another stage's stack name (`shop-api-prod-de*` of dev's `shop-api-prod-dev` reaches
/// prod's `shop-api-prod-deadletterbucket-…`, with neither a denial nor a note). Neither can be
/// denied by name without denying the stage its own: each is noted.
#[test]
fn names_a_stage_cannot_tell_from_its_own_are_noted_not_denied() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let service = |name: &str, template: &str| {
        write(r, &format!("services/{name}/t.yaml"), template);
        write(
            r,
            &format!("services/{name}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        );
    };
    let dev_of = |stages: &str| {
        write(
            r,
            "ferry.toml",
            &format!(
                "[project]\nname = \"shop\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n{stages}"
            ),
        );
        let ws = ferry_manifest::load(r).unwrap();
        ferry_bootstrap::plan(&ws, &ws.stage("dev").unwrap(), &options).unwrap()
    };
    service("bkt", "Resources:\n  Data: {Type: AWS::S3::Bucket}\n");
    let b = dev_of(
        "[stages.dev]\nregion = \"us-east-1\"\n\n[stages.dev-data]\nregion = \"us-east-1\"\n",
    );
    let denied: Vec<&String> = b
        .permissions
        .iter()
        .filter(|p| p.deny)
        .flat_map(|p| &p.resources)
        .collect();
    assert!(
        !denied.iter().any(|d| d.contains("shop-bkt-dev-data")),
        "{denied:#?}"
    );
    assert!(
        b.notes
            .iter()
            .any(|n| n
                .starts_with("this stage's names and stage `dev-data`'s stack names start alike")),
        "{:#?}",
        b.notes
    );

    std::fs::remove_dir_all(r.join("services/bkt")).unwrap();
    service(
        "api",
        "Resources:\n  DeadLetterBucket: {Type: AWS::S3::Bucket}\n",
    );
    service(
        "api-prod",
        "Resources:\n  Q: {Type: AWS::SQS::Queue}\n  B: {Type: AWS::S3::Bucket}\n",
    );
    let b =
        dev_of("[stages.dev]\nregion = \"us-east-1\"\n\n[stages.prod]\nregion = \"us-east-1\"\n");
    assert!(
        b.notes
            .iter()
            .any(|n| n.starts_with("this stage's names and stage `prod`'s stack names start alike")),
        "{:#?}",
        b.notes
    );
}

/// Roles and buckets a template names itself are granted by their whole name when no other
/// named stage of the account gives that name: `${AWS::StackName}Role` (which the grant by the
/// stack's name and `-` does not reach), a bucket named after the stage. A name every stage
/// gives alike, one only a deploy tells, and any for the previews' role are noted, never
/// granted. Before, none was granted and none was noted: creating them failed with
/// AccessDenied on the first deploy.
#[test]
fn roles_and_buckets_a_template_names_itself_are_granted_when_they_are_the_stages_alone() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\nstack-name = \"{project}-{service}-{stage}\"\n\n[stages.dev]\nregion = \"us-east-1\"\naccount = \"111111111111\"\n\n[stages.prod]\nregion = \"us-east-1\"\naccount = \"111111111111\"\n\n[stages.ops]\nregion = \"us-east-1\"\naccount = \"222222222222\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n",
    );
    let trust = "AssumeRolePolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: 'sts:AssumeRole'}]}";
    write(
        r,
        "services/api/t.yaml",
        &format!(
            "Parameters:\n  Stage: {{Type: String}}\n  Other: {{Type: String}}\n  Wild: {{Type: String}}\n  Empty: {{Type: String}}\nResources:\n  \
             Own:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: !Sub '${{AWS::StackName}}Role'\n      {trust}\n  \
             Dashed:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: !Sub '${{AWS::StackName}}-worker'\n      {trust}\n  \
             Pathed:\n    Type: AWS::IAM::Role\n    Properties:\n      Path: /service-role/\n      RoleName: !Sub '${{AWS::StackName}}Svc'\n      {trust}\n  \
             Fixed:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: shared-role\n      {trust}\n  \
             Wild:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: !Sub '${{Wild}}-${{AWS::StackName}}'\n      {trust}\n  \
             Uploads:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Sub 'acme-${{Stage}}-uploads'\n  \
             Later:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Ref Other\n  \
             Unset:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Ref Empty\n  \
             Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Role: !GetAtt Own.Arn\n      Runtime: python3.12\n      Handler: index.handler\n      Code: {{ZipFile: 'def handler(e, c): pass'}}\n"
        ),
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nStage = \"${stage}\"\nOther = \"${output:db.Name}\"\nWild = \"*\"\nEmpty = \"\"\n",
    );
    write(
        r,
        "services/db/t.yaml",
        "Resources:\n  Q: {Type: AWS::SQS::Queue}\nOutputs:\n  Name: {Value: !GetAtt Q.QueueName}\n",
    );
    write(
        r,
        "services/db/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let plan =
        |stage: &str| ferry_bootstrap::plan(&ws, &ws.stage(stage).unwrap(), &options).unwrap();
    let granted = |b: &ferry_bootstrap::Bootstrap, why: &str| -> Vec<String> {
        b.permissions
            .iter()
            .filter(|p| !p.deny && p.why.starts_with(why))
            .flat_map(|p| p.resources.clone())
            .collect()
    };
    let dev = plan("dev");
    let roles = granted(&dev, "AWS::IAM::Role");
    let role = |name: &str| format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{name}");
    for own in ["shop-api-devRole", "service-role/shop-api-devSvc"] {
        assert!(roles.contains(&role(own)), "{own}: {roles:#?}");
    }
    assert!(roles.contains(&role("shop-api-dev-*")), "{roles:#?}");
    assert!(
        !roles.iter().any(|r| r.contains("shared-role")),
        "{roles:#?}"
    );
    // The role a function is given is passed with the others.
    let passed = granted(&dev, "iam:PassRole");
    assert!(passed.contains(&role("shop-api-devRole")), "{passed:#?}");
    let buckets = granted(&dev, "AWS::S3::Bucket");
    for b in ["acme-dev-uploads", "acme-dev-uploads/*"] {
        assert!(
            buckets.contains(&format!("arn:${{AWS::Partition}}:s3:::{b}")),
            "{b}: {buckets:#?}"
        );
    }
    let noted =
        |b: &ferry_bootstrap::Bootstrap, start: &str| b.notes.iter().any(|n| n.starts_with(start));
    assert!(
        noted(
            &dev,
            "`api`: AWS::IAM::Role Fixed names its role `shared-role` itself, one a template also gives in another named stage that may share the account, whose role would reach it too: not granted; the role may not create it until it is granted by hand, or named `${AWS::StackName}-…` (names starting `shop-api-dev-` are granted)"
        ),
        "{:#?}",
        dev.notes
    );
    assert!(
        noted(
            &dev,
            "`api`: AWS::S3::Bucket Later takes its BucketName from what only a deploy tells; unless it starts with `shop-api-dev-`"
        ),
        "{:#?}",
        dev.notes
    );
    assert!(
        !dev.notes
            .iter()
            .any(|n| n.contains("Dashed") || n.contains("Own ")),
        "{:#?}",
        dev.notes
    );
    assert!(
        noted(
            &dev,
            "`api`: AWS::S3::Bucket Unset takes its BucketName from a parameter left empty"
        ),
        "{:#?}",
        dev.notes
    );
    // A name holding what IAM reads as a wildcard is never granted.
    assert!(!roles.iter().any(|r| r.contains("*-shop")), "{roles:#?}");
    assert!(
        noted(
            &dev,
            "`api`: AWS::IAM::Role Wild names its role `*-shop-api-dev` itself, which is no name IAM or S3 takes: not granted"
        ),
        "{:#?}",
        dev.notes
    );
    // prod is granted its own, never dev's.
    let prod = granted(&plan("prod"), "AWS::IAM::Role");
    assert!(prod.contains(&role("shop-api-prodRole")), "{prod:#?}");
    assert!(!prod.iter().any(|r| r.contains("-dev")), "{prod:#?}");
    // A stage in another account than every other named stage: `shared-role` is its alone.
    assert!(granted(&plan("ops"), "AWS::IAM::Role").contains(&role("shared-role")));
    // The previews' role, granted every name made from a preview's stack (`shop-api-*`), is
    // granted nothing by a name: the rest is noted.
    let previews = plan("feature-x");
    assert!(
        !granted(&previews, "AWS::IAM::Role")
            .iter()
            .any(|r| r.contains("shared-role")),
        "{:#?}",
        previews.permissions
    );
    assert!(
        noted(
            &previews,
            "`api`: AWS::IAM::Role Fixed names its role `shared-role` itself, for the previews' role, which is granted only names made from their stacks': not granted"
        ),
        "{:#?}",
        previews.notes
    );
}

/// A name another stage's templates give, in any service and under any logical id (a role in
/// any letter case), is nobody's alone: not granted. A role under a Path is granted by its
/// whole name even when it starts like the stack's (the grant by the stack's name covers only
/// the root path). And a stage whose grants by the start of a name reach another stage's
/// whole-named role or bucket (`shop-api-prod-*` reaches `shop-api-prod-euRole`) is denied it.
#[test]
fn a_name_granted_whole_is_no_other_stages_and_is_denied_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\nstack-name = \"{project}-{service}-{stage}\"\n\n[stages.prod]\nregion = \"us-east-1\"\n\n[stages.prod-eu]\nregion = \"eu-west-1\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n",
    );
    let trust = "AssumeRolePolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: 'sts:AssumeRole'}]}";
    write(
        r,
        "services/api/t.yaml",
        &format!(
            "Parameters:\n  Stage: {{Type: String}}\nResources:\n  \
             Own:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: !Sub '${{AWS::StackName}}Role'\n      {trust}\n  \
             Worker:\n    Type: AWS::IAM::Role\n    Properties:\n      Path: /app/\n      RoleName: !Sub '${{AWS::StackName}}-worker'\n      {trust}\n  \
             Uploads:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Sub 'acme-${{Stage}}-uploads'\n  \
             Mixed:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: !Sub '${{Stage}}-App'\n      {trust}\n"
        ),
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nStage = \"${stage}\"\n",
    );
    // Another service gives prod's upload bucket its name in every stage (JSON), and a role
    // named like prod-eu's in another case.
    write(
        r,
        "services/legacy/t.json",
        "{\"Resources\": {\"Old\": {\"Type\": \"AWS::S3::Bucket\", \"Properties\": {\"BucketName\": \"acme-prod-uploads\"}}, \"R\": {\"Type\": \"AWS::IAM::Role\", \"Properties\": {\"RoleName\": \"PROD-EU-app\", \"AssumeRolePolicyDocument\": {}}}}}",
    );
    write(
        r,
        "services/legacy/service.toml",
        "[service]\ntemplate = \"t.json\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let plan =
        |stage: &str| ferry_bootstrap::plan(&ws, &ws.stage(stage).unwrap(), &options).unwrap();
    let role = |name: &str| format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{name}");
    let bucket = |name: &str| format!("arn:${{AWS::Partition}}:s3:::{name}");
    let of = |b: &ferry_bootstrap::Bootstrap, deny: bool| -> Vec<String> {
        b.permissions
            .iter()
            .filter(|p| p.deny == deny)
            .flat_map(|p| p.resources.clone())
            .collect()
    };
    let prod = plan("prod");
    let prod_eu = plan("prod-eu");
    let granted = of(&prod_eu, false);
    for own in [
        role("shop-api-prod-euRole"),
        role("app/shop-api-prod-eu-worker"),
        bucket("acme-prod-eu-uploads"),
    ] {
        assert!(granted.contains(&own), "{own}: {granted:#?}");
    }
    // `prod-eu-App` is `PROD-EU-app` to IAM, which `legacy` names in every stage.
    assert!(!granted.contains(&role("prod-eu-App")), "{granted:#?}");
    assert!(
        prod_eu.notes.iter().any(|n| n.starts_with("`api`: AWS::IAM::Role Mixed names its role `prod-eu-App` itself, one a template also gives in another named stage")),
        "{:#?}",
        prod_eu.notes
    );
    // `acme-prod-uploads` is legacy's in every stage: prod is not granted it.
    assert!(
        !of(&prod, false).contains(&bucket("acme-prod-uploads")),
        "{:#?}",
        prod.permissions
    );
    // prod's grant `shop-api-prod-*` reaches prod-eu's whole names: denied to prod.
    let denied = of(&prod, true);
    assert!(
        denied.contains(&role("shop-api-prod-euRole")),
        "{denied:#?}"
    );
    // What no grant of prod's reaches is not listed: a bucket not named like prod's stacks (the
    // list made the policy too large for IAM in a larger project).
    assert!(
        !denied.iter().any(|d| d.contains("acme-prod-eu-uploads")),
        "{denied:#?}"
    );
    assert!(!denied.contains(&role("shop-api-prodRole")), "{denied:#?}");
    // The previews' role is denied every named stage's.
    let previews = of(&plan("feature-x"), true);
    for theirs in [role("shop-api-prodRole"), role("shop-api-prod-euRole")] {
        assert!(previews.contains(&theirs), "{theirs}: {previews:#?}");
    }
}

/// A stack a template nests (`AWS::CloudFormation::Stack`, a SAM application) is created with
/// the deploying role: it is granted CloudFormation on the stacks named after the stage's, and
/// the resource types of the nested templates the repository holds. Before, the nested stack
/// was "not in Ferry's table: nothing added", and the first deploy was refused.
#[test]
fn nested_stacks_and_what_they_hold_are_granted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\nstack-name = \"{project}-{service}-{stage}\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    write(
        r,
        "services/api/t.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Dlq:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ../../shared/dlq.yaml\n  App:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: nested/app.yaml\n  Gone:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: missing.yaml\n",
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ninputs = [\"shared/**\"]\n",
    );
    write(
        r,
        "shared/dlq.yaml",
        "Resources:\n  Q: {Type: AWS::SQS::Queue}\n",
    );
    write(
        r,
        "services/api/nested/app.yaml",
        "Resources:\n  T:\n    Type: AWS::DynamoDB::Table\n  Inner:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: inner.yaml\n",
    );
    write(
        r,
        "services/api/nested/inner.yaml",
        "Resources:\n  Topic: {Type: AWS::SNS::Topic}\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let stage = ws.stage("dev").unwrap();
    let mut notes = Vec::new();
    let permissions = ferry_bootstrap::permissions(&ws, &stage, &mut notes);
    let grant = |why: &str| {
        permissions
            .iter()
            .find(|p| !p.deny && p.why.starts_with(why))
            .unwrap_or_else(|| panic!("{why}: {permissions:#?}"))
    };
    let nested = grant("AWS::CloudFormation::Stack");
    assert_eq!(
        nested.resources,
        [
            "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/shop-api-dev-*/*"
        ]
    );
    assert!(
        nested
            .actions
            .contains(&"cloudformation:CreateStack".to_string())
    );
    // What the nested templates hold, to any depth.
    for ty in ["AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::SNS::Topic"] {
        grant(ty);
    }
    assert!(
        !notes
            .iter()
            .any(|n| n.contains("AWS::CloudFormation::Stack") && n.contains("nothing added")),
        "{notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("`api`: the template it nests, ")
                && n.contains("missing.yaml")
                && n.ends_with("could not be read; its resource types are not covered")),
        "{notes:#?}"
    );
}

/// From a re-probe of the grants by name: a role or bucket another stage's template names
/// after its stack (`shop-inventory-demoRole`) is denied to a stage whose grants by a name's
/// start reach it (`shop-inventory-d*`, a stack name cut to 16 characters); a name a stage's
/// own template gives that extends another stage's stack name (`api-dev-eu-archive` of stage
/// `dev`, beside stage `dev-eu`) is not denied to it; the grant of nested stacks goes only to
/// the stacks of the services that nest one, by their whole name and `-`, and another stage's
/// stack it reaches is denied by name.
#[test]
fn names_and_nested_stacks_of_stages_whose_names_extend_each_other_are_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\nstack-name = \"{project}-{service}-{stage}\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.demo]\nregion = \"us-east-1\"\n\n[stages.dev-eu]\nregion = \"us-east-1\"\n",
    );
    write(
        r,
        "services/inventory/t.yaml",
        "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: !Sub '${AWS::StackName}Role'\n      AssumeRolePolicyDocument: {}\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Sub '${AWS::StackName}data'\n",
    );
    write(
        r,
        "services/inventory/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(
        r,
        "services/api/t.yaml",
        "Resources:\n  Archive:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Sub '${AWS::StackName}-eu-archive'\n  Nested:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: nested.yaml\n",
    );
    write(
        r,
        "services/api/nested.yaml",
        "Resources:\n  Q: {Type: AWS::SQS::Queue}\n  Again:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ./nested.yaml\n",
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let dev = ferry_bootstrap::plan(&ws, &ws.stage("dev").unwrap(), &options).unwrap();
    let of = |deny: bool| -> Vec<String> {
        dev.permissions
            .iter()
            .filter(|p| p.deny == deny)
            .flat_map(|p| p.resources.clone())
            .collect()
    };
    let (granted, denied) = (of(false), of(true));
    let role = |name: &str| format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{name}");
    let bucket = |name: &str| format!("arn:${{AWS::Partition}}:s3:::{name}");
    let stack = |name: &str| {
        format!(
            "arn:${{AWS::Partition}}:cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/{name}"
        )
    };
    // demo's names, which dev's `shop-inventory-d*` reaches.
    for theirs in [
        role("shop-inventory-demoRole"),
        bucket("shop-inventory-demodata"),
    ] {
        assert!(denied.contains(&theirs), "{theirs}: {denied:#?}");
    }
    // dev's own, never denied to it.
    for own in [
        bucket("shop-api-dev-eu-archive"),
        role("shop-inventory-devRole"),
    ] {
        assert!(!denied.contains(&own), "{own}: {denied:#?}");
    }
    assert!(
        !denied.iter().any(|d| d.contains("s3:::shop-api-dev-eu-*")),
        "dev's own `shop-api-dev-eu-archive`: {denied:#?}"
    );
    // Nested stacks: only api's, by its whole stack name; dev-eu's `shop-api-dev-eu` denied.
    assert!(granted.contains(&stack("shop-api-dev-*/*")), "{granted:#?}");
    assert!(
        !granted
            .iter()
            .any(|g| g.contains("stack/shop-inventory-dev-*")),
        "{granted:#?}"
    );
    for theirs in [stack("shop-api-dev-eu/*"), stack("shop-api-dev-eu-*/*")] {
        assert!(denied.contains(&theirs), "{theirs}: {denied:#?}");
    }
    // What the nested template holds (it nests itself: read once).
    assert!(
        dev.permissions
            .iter()
            .any(|p| !p.deny && p.why.starts_with("AWS::SQS::Queue")),
        "{:#?}",
        dev.permissions
    );
}

/// Nested templates outside the repository, nested deeper than bootstrap reads, and missing
/// are noted, never read or granted in silence; a cycle of paths that name the same template
/// differently (`s1/../template.yaml`) ends at once.
#[test]
fn nested_templates_bootstrap_does_not_read_are_noted() {
    let outside = tempfile::tempdir().unwrap();
    write(
        outside.path(),
        "outside.yaml",
        "Resources:\n  K: {Type: AWS::Kinesis::Stream}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    let mut top = String::from("Resources:\n");
    for k in 1..=5 {
        std::fs::create_dir_all(r.join(format!("services/api/s{k}"))).unwrap();
        top.push_str(&format!(
            "  S{k}:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: s{k}/../t.yaml\n"
        ));
    }
    top.push_str(&format!(
        "  Out:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: {}\n  Deep:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: d1.yaml\n",
        pathdiff(&r.join("services/api"), &outside.path().join("outside.yaml"))
    ));
    write(r, "services/api/t.yaml", &top);
    for d in 1..=12 {
        write(
            r,
            &format!("services/api/d{d}.yaml"),
            &format!(
                "Resources:\n  T{d}: {{Type: AWS::SNS::Topic}}\n  Next:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: d{}.yaml\n",
                d + 1
            ),
        );
    }
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let stage = ws.stage("dev").unwrap();
    let mut notes = Vec::new();
    let started = std::time::Instant::now();
    let permissions = ferry_bootstrap::permissions(&ws, &stage, &mut notes);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        !permissions
            .iter()
            .any(|p| p.why.starts_with("AWS::Kinesis::Stream")),
        "{permissions:#?}"
    );
    for said in [
        "lies outside the repository: not read",
        "templates nested more than 8 deep are not read",
    ] {
        assert_eq!(
            notes.iter().filter(|n| n.contains(said)).count(),
            1,
            "{said}: {notes:#?}"
        );
    }
}

/// `to` relative to the folder `from` (both absolute), climbing with `..`.
fn pathdiff(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// The previews' records grant is the configured path before the id, whatever the preview the
/// bootstrap is run for is named: a preview named `ferry` cut `/ferry/shop/ferry/` at its first
/// `ferry` and granted the previews' role every parameter of the account (`parameter/*`), one
/// named `shop` every Ferry project's (`parameter/ferry/*`).
#[test]
fn the_previews_records_grant_does_not_depend_on_the_previews_name() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n",
    );
    write(
        r,
        "services/q/t.yaml",
        "Resources:\n  Q: {Type: AWS::SQS::Queue}\n",
    );
    write(
        r,
        "services/q/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    for name in ["ferry", "shop", "sh", "e", "f-1"] {
        let stage = ws.stage(name).unwrap();
        let mut notes = Vec::new();
        let permissions = ferry_bootstrap::permissions(&ws, &stage, &mut notes);
        let records = permissions
            .iter()
            .find(|p| p.why == "records and lock (SSM)")
            .unwrap();
        assert_eq!(
            records.resources,
            ["arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/ferry/shop/*"],
            "{name}"
        );
    }
}

/// A modest project whose 30 templates name a role and a bucket each, in four named stages
/// and the previews, bootstraps: the denials of other stages' names list only what a grant
/// reaches. Listing every one (four ARNs a name a stage) made the role's policy too large for
/// IAM.
#[test]
fn thirty_services_naming_their_roles_and_buckets_fit_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.qa]\nregion = \"us-east-1\"\n\n[stages.staging]\nregion = \"us-east-1\"\n\n[stages.prod]\nregion = \"us-east-1\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n",
    );
    for n in 0..30 {
        write(
            r,
            &format!("services/svc{n}/t.yaml"),
            &format!(
                "Parameters:\n  Stage: {{Type: String}}\nResources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: !Sub 'acme-svc{n}-${{Stage}}-exec'\n      AssumeRolePolicyDocument: {{}}\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Sub 'acme-svc{n}-${{Stage}}-data'\n"
            ),
        );
        write(
            r,
            &format!("services/svc{n}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nStage = \"${stage}\"\n",
        );
    }
    let ws = ferry_manifest::load(r).unwrap();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    for stage in ["dev", "prod", "feat-x"] {
        let b = ferry_bootstrap::plan(&ws, &ws.stage(stage).unwrap(), &options);
        assert!(b.is_ok(), "{stage}: {}", b.err().unwrap());
    }
}

/// A Serverless service of `resources:` alone (a table, a bucket: the adopted monorepo's
/// `database` and `uploads`) compiles no function, role or log group: the role is not granted
/// them for it. One whose functions cannot be read keeps them.
#[test]
fn a_serverless_service_without_functions_is_granted_no_function_rights() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    let service = |name: &str, config: &str| {
        write(r, &format!("services/{name}/serverless.yml"), config);
        write(
            r,
            &format!("services/{name}/service.toml"),
            "[service]\nkind = \"serverless\"\n",
        );
    };
    service(
        "database",
        "service: notes-db\nprovider:\n  name: aws\nresources:\n  Resources:\n    T:\n      Type: AWS::DynamoDB::Table\n",
    );
    let granted = |ws: &ferry_manifest::Workspace| -> Vec<String> {
        let mut notes = Vec::new();
        ferry_bootstrap::permissions(ws, &ws.stage("dev").unwrap(), &mut notes)
            .into_iter()
            .filter(|p| !p.deny)
            .flat_map(|p| p.actions)
            .collect()
    };
    let actions = granted(&ferry_manifest::load(r).unwrap());
    for needed in [
        "dynamodb:CreateTable",
        "s3:CreateBucket",
        "s3:PutBucketPolicy",
    ] {
        assert!(actions.iter().any(|a| a == needed), "{needed}: {actions:?}");
    }
    for never in [
        "lambda:CreateFunction",
        "iam:CreateRole",
        "logs:CreateLogGroup",
    ] {
        assert!(!actions.iter().any(|a| a == never), "{never}: {actions:?}");
    }
    // Functions from a file that is not there: not known to be none.
    service(
        "api",
        "service: notes-api\nprovider:\n  name: aws\nfunctions: ${file(./missing.yml)}\n",
    );
    let actions = granted(&ferry_manifest::load(r).unwrap());
    assert!(
        actions.iter().any(|a| a == "lambda:CreateFunction"),
        "{actions:?}"
    );
}

/// `[notifications]` names an SNS topic for every stage and webhooks whose URLs SSM keeps: the
/// deployer was granted neither (only the topic its own stack makes), so every announcement
/// failed, as a warning. Granted now, to the stages announced only.
#[test]
fn the_notifications_a_stage_sends_are_granted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.prod]\nregion = \"us-east-1\"\n\n[notifications]\nwebhooks = [\"ssm:/shop/notify/chat\"]\nsns-topic = \"arn:aws:sns:us-east-1:111111111111:deploys\"\nstages = [\"prod\"]\n",
    );
    write(
        r,
        "services/api/t.yaml",
        "Resources:\n  Q: {Type: AWS::SQS::Queue}\n",
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let grants = |stage: &str| {
        ferry_bootstrap::plan(&ws, &ws.stage(stage).unwrap(), &options)
            .unwrap()
            .permissions
    };
    let prod = grants("prod");
    let publish = prod
        .iter()
        .find(|p| !p.deny && p.actions == ["sns:Publish"])
        .unwrap();
    assert_eq!(
        publish.resources,
        [
            "${NotificationTopic}",
            "arn:aws:sns:us-east-1:111111111111:deploys"
        ]
    );
    let webhook = prod
        .iter()
        .find(|p| {
            !p.deny && p.actions == ["ssm:GetParameter"] && p.why.starts_with("notifications")
        })
        .unwrap();
    assert_eq!(
        webhook.resources,
        ["arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/shop/notify/chat"]
    );
    // dev is not announced: nothing of it.
    let dev = grants("dev");
    let publish = dev
        .iter()
        .find(|p| !p.deny && p.actions == ["sns:Publish"])
        .unwrap();
    assert_eq!(publish.resources, ["${NotificationTopic}"]);
    assert!(
        !dev.iter()
            .any(|p| p.why.starts_with("notifications: the webhooks"))
    );
}

/// A preview removed whole takes its release files with it, which the previews' role could not
/// delete (`remove` warned they were left): granted on the previews' releases, unless the
/// previews share their bucket with a named stage (noted: that would reach its releases).
#[test]
fn the_previews_may_delete_their_releases_in_a_bucket_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let config = |bucket: &str| {
        format!(
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nartifact-bucket = \"shop-dev-artifacts\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\nartifact-bucket = \"{bucket}\"\n"
        )
    };
    write(r, "ferry.toml", &config("shop-preview-artifacts"));
    write(
        r,
        "services/api/t.yaml",
        "Resources:\n  Q: {Type: AWS::SQS::Queue}\n",
    );
    write(
        r,
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let options = ferry_bootstrap::Options {
        trust: vec!["arn:aws:iam::111111111111:role/ci".into()],
        codebuild: None,
    };
    let previews = |r: &std::path::Path| {
        let ws = ferry_manifest::load(r).unwrap();
        ferry_bootstrap::plan(&ws, &ws.stage("feat-x").unwrap(), &options).unwrap()
    };
    let b = previews(r);
    let delete = b
        .permissions
        .iter()
        .find(|p| !p.deny && p.actions == ["s3:DeleteObject"])
        .unwrap();
    assert_eq!(
        delete.resources,
        [
            "${ArtifactBucket.Arn}/shop/_releases/*",
            "${ArtifactBucket.Arn}/shop/releases/*/*.json"
        ]
    );
    write(r, "ferry.toml", &config("shop-dev-artifacts"));
    let b = previews(r);
    assert!(
        !b.permissions
            .iter()
            .any(|p| !p.deny && p.actions == ["s3:DeleteObject"])
    );
    assert!(
        b.notes
            .iter()
            .any(|n| n.starts_with("the previews share their artifact-bucket with stage `dev`")),
        "{:?}",
        b.notes
    );
}
