//! `bootstrap` end to end: the template (`--print`) of the example monorepo holds what a stage
//! needs and passes cfn-lint; against the emulator the stack is created, a second run makes no
//! write call (counted by the emulator's own request recorder), and a new resource type in a
//! service's template updates the deployer role.

use std::io::{Read, Write};

use crate::common::{copy_tree, run, xtask};
use ferry_test_support::{TestRepo, moto, workspace_root};

/// The example's services under project `project`, staging with a role and an external id.
fn example(project: &str) -> TestRepo {
    let r = TestRepo::new();
    copy_tree(
        &workspace_root().join("services"),
        &r.path().join("services"),
    );
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{project}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n\
             [stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/{project}/dev/\"\n\n\
             [stages.staging]\nregion = \"us-east-1\"\nparameters-path = \"/{project}/staging/\"\n\
             artifact-bucket = \"{project}-staging-artifacts\"\n\
             role-arn = \"arn:aws:iam::123456789012:role/deploy/{project}-deployer\"\nexternal-id = \"x-{project}\"\n\n\
             [stages.\"*\"]\nregion = \"us-east-1\"\n\n\
             [ci]\nbranches = {{ main = \"staging\", \"*\" = \"dev\" }}\n"
        ),
    );
    r.commit("example");
    r
}

const CI_ROLE: &str = "arn:aws:iam::111111111111:role/ci";

/// A request to the emulator's own API (`/moto-api/…`): the body of its answer.
fn moto_api(method: &str, path: &str) -> String {
    let endpoint = moto().endpoint();
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The CloudFormation actions of recorded requests that name `stack`.
fn recorded_actions(stack: &str) -> Vec<String> {
    use base64::Engine as _;
    let text = moto_api("GET", "/moto-api/recorder/download-recording");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| {
            let body = e["body"].as_str().unwrap_or_default();
            let body = if e["body_encoded"] == true {
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .ok()?,
                )
                .ok()?
            } else {
                body.to_string()
            };
            body.contains(stack).then(|| {
                body.split('&')
                    .find_map(|kv| kv.strip_prefix("Action="))
                    .unwrap_or("?")
                    .to_string()
            })
        })
        .collect()
}

#[test]
fn bootstrap_prints_a_template_cfn_lint_accepts_and_a_second_run_writes_nothing() {
    let p = "bs-e2e";
    let r = example(p);

    // The template: what a stage needs, least privilege, no AWS call.
    let (code, out, err) = run(
        &mut xtask(&r, &["bootstrap", "staging", "--trust", CI_ROLE, "--print"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    let res = &t["Resources"];
    let bucket = &res["ArtifactBucket"];
    assert_eq!(bucket["DeletionPolicy"], "Retain");
    assert_eq!(
        bucket["Properties"]["BucketName"],
        format!("{p}-staging-artifacts")
    );
    assert_eq!(
        bucket["Properties"]["VersioningConfiguration"]["Status"],
        "Enabled"
    );
    assert_eq!(
        bucket["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"],
        true
    );
    assert!(bucket["Properties"]["BucketEncryption"].is_object());
    assert!(
        bucket["Properties"]["LifecycleConfiguration"]["Rules"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    let tls = &res["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(tls["Effect"], "Deny");
    assert_eq!(tls["Condition"]["Bool"]["aws:SecureTransport"], "false");
    let role = &res["DeployerRole"]["Properties"];
    assert_eq!(role["RoleName"], format!("{p}-deployer"));
    assert_eq!(role["Path"], "/deploy/");
    let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(trust["Principal"]["AWS"][0], CI_ROLE);
    assert_eq!(
        trust["Condition"]["StringEquals"]["sts:ExternalId"],
        format!("x-{p}")
    );
    // The deployer's statements: its inline policy, or the managed policies attached to it
    // (not the permissions boundary, which is attached to no role).
    let statements: Vec<serde_json::Value> =
        match role["Policies"][0]["PolicyDocument"]["Statement"].as_array() {
            Some(inline) => inline.clone(),
            None => res
                .as_object()
                .unwrap()
                .values()
                .filter(|r| {
                    r["Type"] == "AWS::IAM::ManagedPolicy" && r["Properties"]["Roles"].is_array()
                })
                .flat_map(|r| {
                    r["Properties"]["PolicyDocument"]["Statement"]
                        .as_array()
                        .unwrap()
                        .clone()
                })
                .collect(),
        };
    let boundary = &res["PermissionsBoundary"]["Properties"];
    assert_eq!(
        boundary["ManagedPolicyName"],
        format!("ferry-{p}-staging-boundary")
    );
    let actions: Vec<&str> = statements
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    // Denials: its own role, Ferry's stacks, the administrator policies.
    let denied: Vec<String> = statements
        .iter()
        .filter(|s| s["Effect"] == "Deny")
        .map(|s| s.to_string())
        .collect();
    assert!(
        denied
            .iter()
            .any(|d| d.contains(&format!("role/deploy/{p}-deployer"))),
        "{denied:?}"
    );
    assert!(
        denied
            .iter()
            .any(|d| d.contains("policy/AdministratorAccess")),
        "{denied:?}"
    );
    // Buckets (and their objects) only of the stage's stacks.
    let s3 = statements
        .iter()
        .find(|s| s["Action"].to_string().contains("s3:DeleteObjectVersion"))
        .unwrap();
    assert!(!s3["Resource"].to_string().contains("\"*\""), "{s3}");
    assert!(
        s3["Resource"]
            .to_string()
            .contains(&format!("s3:::{p}-frontend-")),
        "{s3}"
    );
    // `{p}-frontend-` (a long stack name's first 16 characters) also starts dev's bucket names:
    // denied by dev's whole stack name.
    assert!(
        denied
            .iter()
            .any(|d| d.contains(&format!("s3:::{p}-frontend-dev-*"))),
        "{denied:?}"
    );
    // SSM parameters carry no stage tag: dev's records (and lock) and parameters are denied by
    // path, never the stage's own.
    let ssm = denied
        .iter()
        .find(|d| d.contains("\"Action\":[\"ssm:*\"]"))
        .unwrap_or_else(|| panic!("{denied:?}"));
    for path in [
        format!("parameter/{p}/dev/*"),
        format!("parameter/{p}/dev\""),
        format!("parameter/ferry/{p}/dev/*"),
    ] {
        assert!(ssm.contains(&path), "{path}: {ssm}");
    }
    assert!(!ssm.contains(&format!("/{p}/staging")), "{ssm}");
    assert!(
        !actions.iter().any(|a| *a == "*" || a.ends_with(":*")),
        "{actions:?}"
    );
    for needed in [
        "cloudformation:CreateChangeSet",
        "dynamodb:CreateTable",
        "sqs:CreateQueue",
        "lambda:CreateFunction",
        "iam:PassRole",
        "sns:Publish",
    ] {
        assert!(actions.contains(&needed), "{needed} in {actions:?}");
    }
    // CloudFormation only on the stage's own stacks.
    let cfn = &statements[0]["Resource"];
    assert!(
        cfn.to_string()
            .contains(&format!("stack/{p}-api-staging/*")),
        "{cfn}"
    );
    assert!(!cfn.to_string().contains("stack/*"), "{cfn}");
    assert!(res["NotificationTopic"].is_object());
    assert!(
        err.contains("AWS::DynamoDB::Table (database)"),
        "the permissions are printed: {err}"
    );

    // The previews' role: denied every named stage's stacks and records.
    let (code, previews, err) = run(
        &mut xtask(&r, &["bootstrap", "*", "--trust", CI_ROLE, "--print"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    // By each stack's name (a pattern `{p}-*-staging` would also cover a preview whose id
    // ends in `-staging`), and by the stage tag for stacks this checkout does not know.
    assert!(
        previews.contains(&format!("stack/{p}-api-staging/*")),
        "named stacks denied"
    );
    assert!(!previews.contains(&format!("stack/{p}-*-staging/*")));
    assert!(
        previews.contains("\"aws:ResourceTag/ferry:stage\""),
        "and by tag"
    );
    assert!(
        previews.contains(&format!("parameter/ferry/{p}/staging/*")),
        "named records denied"
    );
    assert!(
        previews.contains(&format!("parameter/{p}/staging/*")),
        "named parameters denied"
    );
    assert!(
        err.contains("DENY never (previews): a named stage's stacks"),
        "{err}"
    );

    // cfn-lint accepts it, and the one with a CodeBuild project.
    let lint = ferry_local::Emulator::for_repository(&workspace_root())
        .ensure_cfn_lint(|s| eprintln!("{s}"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, with_cb, err) = run(
        &mut xtask(
            &r,
            &[
                "bootstrap",
                "dev",
                "--trust",
                CI_ROLE,
                "--codebuild",
                "https://github.com/acme/shop.git",
                "--print",
            ],
        ),
        None,
    );
    assert!(
        err.contains("also starts builds of main"),
        "the overlap is said: {err}"
    );
    let cb: serde_json::Value = serde_json::from_str(&with_cb).unwrap();
    let groups = &cb["Resources"]["CodeBuildProject"]["Properties"]["Triggers"]["FilterGroups"];
    assert_eq!(groups[0][1]["Pattern"], "^refs/heads/.*$");
    for (name, text) in [
        ("staging.json", &out),
        ("dev-codebuild.json", &with_cb),
        ("previews.json", &previews),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let o = std::process::Command::new(&lint)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "cfn-lint {name}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // Against the emulator (the base credentials: the role does not exist yet).
    let stack = format!("ferry-{p}-staging");
    let (code, out, err) = run(
        &mut xtask(&r, &["bootstrap", "staging", "--trust", CI_ROLE]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains(&format!("{stack}: created")), "{err}");
    assert!(
        out.contains(&format!("ArtifactBucket = {p}-staging-artifacts")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "DeployerRole = arn:aws:iam::123456789012:role/deploy/{p}-deployer"
        )),
        "{out}"
    );
    assert!(
        out.contains("announce to it with [notifications] sns-topic"),
        "{out}"
    );

    // A second run: nothing written, by the emulator's own record of the requests.
    moto_api("POST", "/moto-api/recorder/reset-recording");
    moto_api("POST", "/moto-api/recorder/start-recording");
    let (code, _, err) = run(
        &mut xtask(&r, &["bootstrap", "staging", "--trust", CI_ROLE]),
        None,
    );
    moto_api("POST", "/moto-api/recorder/stop-recording");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("{stack}: up to date: nothing written")),
        "{err}"
    );
    let second = recorded_actions(&stack);
    eprintln!(
        "bootstrap, second run: {} request(s) naming the stack: {second:?}",
        second.len()
    );
    assert!(!second.is_empty(), "the recorder saw the run");
    assert!(
        second
            .iter()
            .all(|a| a == "DescribeStacks" || a == "GetTemplate"),
        "only reads: {second:?}"
    );

    // A resource type the templates did not use: the role gets its actions, the stack updates.
    let events = std::fs::read_to_string(r.path().join("services/events/template.yaml")).unwrap();
    let events = events.replacen(
        "Resources:\n",
        "Resources:\n  Nightly:\n    Type: AWS::Events::Rule\n    Properties:\n      ScheduleExpression: rate(1 day)\n",
        1,
    );
    r.write("services/events/template.yaml", &events);
    let (code, out, err) = run(
        &mut xtask(&r, &["bootstrap", "staging", "--trust", CI_ROLE]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("AWS::Events::Rule (events)"), "{err}");
    assert!(err.contains(&format!("{stack}: updated")), "{err}");

    // Bad input: nobody to trust, a wildcard principal.
    let (code, _, err) = run(&mut xtask(&r, &["bootstrap", "staging"]), None);
    assert_eq!(code, 2, "a usage error");
    assert!(
        err.contains("the deployer role must trust someone: give --trust"),
        "{err}"
    );
    let (code, _, err) = run(
        &mut xtask(&r, &["bootstrap", "staging", "--trust", "*"]),
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("`*` is not an IAM principal ARN"), "{err}");
}

/// A project too large for one inline policy: the deployer role's statements go into managed
/// policies, each within IAM's limit (a statement naming many stacks split by its resources),
/// which cfn-lint accepts and the emulator creates.
#[test]
fn bootstrap_splits_a_large_policy_into_managed_policies() {
    let p = "bs-big";
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{p}\"\n\n\
             [stages.dev]\nregion = \"us-east-1\"\n\n\
             [stages.staging]\nregion = \"us-east-1\"\n\n\
             [stages.prod]\nregion = \"us-east-1\"\nprotected = true\n\n\
             [stages.\"*\"]\nregion = \"us-east-1\"\n"
        ),
    );
    for i in 0..60 {
        r.write(
            &format!("services/service-with-a-long-name-{i:02}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        );
        r.write(
            &format!("services/service-with-a-long-name-{i:02}/t.yaml"),
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        );
    }
    r.commit("large");
    let (code, out, err) = run(
        &mut xtask(&r, &["bootstrap", "*", "--trust", CI_ROLE, "--print"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    let res = t["Resources"].as_object().unwrap();
    assert!(res["DeployerRole"]["Properties"]["Policies"].is_null());
    let parts: Vec<&serde_json::Value> = res
        .values()
        .filter(|r| r["Type"] == "AWS::IAM::ManagedPolicy" && r["Properties"]["Roles"].is_array())
        .collect();
    assert!(parts.len() >= 2, "{}", parts.len());
    // IAM counts each policy without whitespace, after CloudFormation's substitutions: the
    // account, region and partition only shorten it; the bucket's and topic's ARNs are
    // counted at their longest.
    let mut denied_stacks = 0;
    for part in &parts {
        let props = &part["Properties"];
        assert_eq!(props["Roles"][0]["Ref"], "DeployerRole");
        // `{"Fn::Sub": "…"}` counts as the text it becomes.
        fn unsub(v: &serde_json::Value) -> serde_json::Value {
            match v {
                serde_json::Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
                    m["Fn::Sub"].clone()
                }
                serde_json::Value::Object(m) => serde_json::Value::Object(
                    m.iter().map(|(k, v)| (k.clone(), unsub(v))).collect(),
                ),
                serde_json::Value::Array(a) => {
                    serde_json::Value::Array(a.iter().map(unsub).collect())
                }
                other => other.clone(),
            }
        }
        let size = serde_json::to_string(&unsub(&props["PolicyDocument"]))
            .unwrap()
            .replace("${ArtifactBucket.Arn}", &"b".repeat(83))
            .replace("${NotificationTopic}", &"t".repeat(303))
            .len();
        assert!(size <= 6_144, "{size}");
        denied_stacks += props["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Effect"] == "Deny")
            .flat_map(|s| s["Resource"].as_array().unwrap())
            .filter(|r| r.to_string().contains(":stack/"))
            .count();
    }
    // Every named stage's stack of every service stays denied to the previews' role, and the
    // role may not change its own managed policies.
    assert!(denied_stacks >= 3 * 60, "{denied_stacks}");
    assert!(
        out.contains(&format!(":policy/ferry-{p}-previews-deploy-*")),
        "its own policies are denied"
    );

    let lint = ferry_local::Emulator::for_repository(&workspace_root())
        .ensure_cfn_lint(|s| eprintln!("{s}"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.json");
    std::fs::write(&path, &out).unwrap();
    let o = std::process::Command::new(&lint)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let (code, out, err) = run(
        &mut xtask(&r, &["bootstrap", "*", "--trust", CI_ROLE]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains(&format!("ferry-{p}-previews: created")),
        "{err}"
    );
}
