//! The real `xtask` binary on the example monorepo and on temporary repositories.

use crate::common::copy_tree;
use std::path::Path;
use std::process::{Command, Output};

use ferry_test_support::{TestRepo, workspace_root};

/// Variables that change what Ferry decides (CI context, forced deploys): cleared for every
/// test so that results do not depend on where the tests run; tests that need one set it.
const CONTEXT_VARS: &[&str] = &[
    "CI",
    "CODEBUILD_BUILD_ID",
    "CODEBUILD_RESOLVED_SOURCE_VERSION",
    "CODEBUILD_WEBHOOK_TRIGGER",
    "GITHUB_ACTIONS",
    "GITHUB_EVENT_NAME",
    "FORCE_DEPLOY_ALL",
];

/// The binary in this workspace, with no CI context and no way to reach AWS: whatever the
/// caller's setup (a CodeBuild role, a profile), a call goes to a closed loopback port, so a
/// command that would read a stage's records plans as if nothing were deployed.
fn xtask(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args).current_dir(workspace_root());
    for v in CONTEXT_VARS.iter().chain(crate::common::AWS_SETUP) {
        c.env_remove(v);
    }
    c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("xtask runs");
    (
        status.code().expect("exit code"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[test]
fn help_lists_every_command_with_one_line() {
    let (code, out, _) = run(&mut xtask(&["--help"]));
    assert_eq!(code, 0);
    for cmd in ["services", "validate", "plan", "graph", "local", "test"] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_else(|| panic!("{cmd} missing in:\n{out}"));
        assert!(
            line.len() > cmd.len() + 10,
            "{cmd} has no description: {line}"
        );
    }
    for opt in ["--root <DIR>", "--local", "--verbose"] {
        assert!(out.contains(opt), "{opt} missing in:\n{out}");
    }
    // A command's example names the runner it is read from (`ferry` in the binary's).
    let (_, out, _) = run(&mut xtask(&["param", "--help"]));
    assert!(
        out.contains("printf %s \"$TOKEN\" | cargo xtask param set dev api-token"),
        "{out}"
    );
}

#[test]
fn the_version_is_printed_alone_or_after_a_command() {
    let version = env!("CARGO_PKG_VERSION");
    let (code, out, _) = run(&mut xtask(&["-V"]));
    assert_eq!(
        (code, out.as_str()),
        (0, format!("cargo xtask {version}\n").as_str())
    );
    for args in [&["plan", "-V"][..], &["param", "get", "--version"]] {
        let (code, out, err) = run(&mut xtask(args));
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.trim_end().ends_with(version), "{args:?}: {out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&mut xtask(&["no-such-command"])).0, 2);
    assert_eq!(run(&mut xtask(&["services", "--format", "yaml"])).0, 2);
}

#[test]
fn input_quoted_in_an_error_cannot_steer_the_terminal() {
    // Before, the escape sequence reached the terminal as it was (setting its title).
    let (code, _, err) = run(&mut xtask(&[
        "plan",
        "dev",
        "--offline",
        "--service",
        "x\u{1b}]0;pwned\u{7}\u{202e}",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("unknown service `x\\u{1b}]0;pwned\\u{7}\\u{202e}`"),
        "{err}"
    );
    assert!(!err.contains(['\u{1b}', '\u{7}', '\u{202e}']), "{err:?}");
}

#[test]
fn services_lists_the_example_monorepo() {
    let (code, out, err) = run(&mut xtask(&["services"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "\
NAME        KIND            FOLDER               DEPENDS ON        TEMPLATE
api         cloudformation  services/api         database, events  template.yaml
database    cloudformation  services/database    -                 template.yaml
events      cloudformation  services/events      -                 template.yaml
frontend    cloudformation  services/frontend    api               template.yaml
fulfilment  sam             services/fulfilment  database, events  template.yaml
notifier    serverless      services/notifier    database, events  serverless.yml
"
    );
}

#[test]
fn services_json_is_machine_readable() {
    let (code, out, err) = run(&mut xtask(&["services", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let api = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api")
        .unwrap();
    assert_eq!(api["dir"], "services/api");
    assert_eq!(api["kind"], "cloudformation");
    assert_eq!(api["template"], "services/api/template.yaml");
    assert_eq!(api["depends_on"], serde_json::json!(["database", "events"]));
    assert_eq!(
        api["parameters"]["TableName"],
        "${output:database.TableName}"
    );
}

#[test]
fn validate_accepts_the_example_monorepo() {
    let (code, out, err) = run(&mut xtask(&["validate"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "ok: project `shop`, 6 service(s), stage(s) dev, prod, staging, *\n"
    );
}

#[test]
fn validate_reports_every_problem_and_exits_1() {
    let repo = TestRepo::new();
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregon = \"us-east-1\"\n",
    )
    .write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ndepends-on = [\"b\"]\n",
    )
    .write("services/a/t.yaml", "Resources: {}\n")
    .write(
        "services/b/service.toml",
        "[service]\ntemplate = \"missing.yaml\"\ndepends-on = [\"a\"]\n",
    );
    let (code, out, err) = run(&mut xtask(&[
        "validate",
        "--root",
        repo.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 1);
    assert_eq!(out, "");
    for expected in [
        "4 problems in the Ferry configuration",
        "ferry.toml:5: stages.dev.regon: unknown key; did you mean `region`?",
        "ferry.toml:4: stages.dev.region: missing required key",
        "services/b/service.toml:2: service.template: template file `services/b/missing.yaml` does not exist",
        "services/a/service.toml:3: service.depends-on: dependency cycle a -> b -> a",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn validate_warns_of_an_ssm_reader_not_ordered_after_the_writer_and_exits_0() {
    let repo = TestRepo::new();
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(
        "services/platform/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write(
        "services/platform/t.yaml",
        "Resources:\n  Bus:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: /shop/bus\n      Type: String\n      Value: x\n",
    )
    .write(
        "services/orders/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nBus = \"/shop/bus\"\n",
    )
    .write(
        "services/orders/t.yaml",
        "Parameters:\n  Bus: {Type: 'AWS::SSM::Parameter::Value<String>'}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let (code, out, err) = run(&mut xtask(&[
        "validate",
        "--root",
        repo.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ok: project `shop`, 2 service(s), stage(s) dev\n");
    assert_eq!(
        err,
        "warning: orders: template parameter Bus names SSM parameter `/shop/bus`, which the template of platform writes, and orders does not depend on platform: add \"platform\" to its depends-on, so that platform deploys first\n"
    );
}

/// Two services' templates giving one literal name to resources whose names are unique in an
/// account (a log group, here): the second deploy would fail, so validate warns, exit 0. Names
/// built from the stack or the stage, and one service repeating a name, say nothing.
#[test]
fn validate_warns_of_a_resource_name_two_services_give() {
    let repo = TestRepo::new();
    let logs = |name: &str| {
        format!(
            "Resources:\n  Logs:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: {name}\n  Other:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: !Sub ${{AWS::StackName}}-access\n"
        )
    };
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for service in ["api", "sqs"] {
        repo.write(
            &format!("services/{service}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .write(
            &format!("services/{service}/t.yaml"),
            &logs("MyHttpApi-Access-Logs"),
        );
    }
    let root = repo.path().to_str().unwrap();
    let (code, out, err) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ok: project `shop`, 2 service(s), stage(s) dev\n");
    assert_eq!(
        err,
        "warning: the templates of api (Resources.Logs.Properties.LogGroupName), sqs (Resources.Logs.Properties.LogGroupName) all name a log group `MyHttpApi-Access-Logs`: log group names are unique in an account and region, so the service deployed second fails (the name is taken), and a literal name is the same in every stage deployed to one account; leave the name out (CloudFormation makes one from the stack's) or build it from the stack's, e.g. !Sub \"${AWS::StackName}-…\"\n"
    );
    // With an error in another service, the warning is said too, beside it: before, validate
    // stopped at the errors, and the warnings came only once the last was mended.
    repo.write(
        "services/web/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nX = \"${output:api.Nope}\"\n",
    )
    .write(
        "services/web/t.yaml",
        "Parameters:\n  X:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let (code, _, err) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("all name a log group `MyHttpApi-Access-Logs`")
            && err.contains("`Nope`")
            && err.contains("1 problem(s) in the services' templates and stacks"),
        "{err}"
    );
    std::fs::remove_dir_all(repo.path().join("services/web")).unwrap();
    repo.write("services/sqs/t.yaml", &logs("sqs-access-logs"));
    let (code, _, err) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!((code, err.as_str()), (0, ""));
    // A SAM function and a Lambda function share names; a resource under a condition may not
    // be made, so it is not counted.
    repo.write(
        "services/api/t.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      FunctionName: handler\n      InlineCode: x\n      Handler: index.handler\n      Runtime: python3.12\n  Other:\n    Type: AWS::Serverless::Function\n    Properties:\n      FunctionName: other\n      InlineCode: x\n      Handler: index.handler\n      Runtime: python3.12\n",
    )
    .write(
        "services/api/service.toml",
        "[service]\nkind = \"sam\"\ntemplate = \"t.yaml\"\n",
    )
    .write(
        "services/sqs/t.yaml",
        "Conditions:\n  Never: !Equals [a, b]\nResources:\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      FunctionName: handler\n      Role: arn:aws:iam::123456789012:role/x\n      Code: {ZipFile: x}\n      Handler: index.handler\n      Runtime: python3.12\n  Maybe:\n    Type: AWS::Lambda::Function\n    Condition: Never\n    Properties:\n      FunctionName: other\n      Role: arn:aws:iam::123456789012:role/x\n      Code: {ZipFile: x}\n      Handler: index.handler\n      Runtime: python3.12\n",
    );
    let (code, _, err) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: the templates of api (Resources.Fn.Properties.FunctionName), sqs (Resources.Fn.Properties.FunctionName) all name a function `handler`"),
        "{err}"
    );
    assert!(!err.contains("`other`"), "{err}");
}

#[test]
fn validate_warns_of_an_importer_not_ordered_after_the_exporter_and_exits_0() {
    let repo = TestRepo::new();
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(
        "services/database/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write(
        "services/database/t.yaml",
        "Resources:\n  T:\n    Type: AWS::SQS::Queue\nOutputs:\n  Name:\n    Value: !Ref T\n    Export:\n      Name: !Sub ${AWS::StackName}-Name\n",
    )
    .write(
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nStage = \"${stage}\"\n",
    )
    .write(
        "services/api/t.yaml",
        "Parameters:\n  Stage: {Type: String}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !ImportValue\n        Fn::Sub: database-${Stage}-Name\n",
    );
    let root = repo.path().to_str().unwrap();
    let (code, out, err) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ok: project `shop`, 2 service(s), stage(s) dev\n");
    assert_eq!(
        err,
        "warning: api: imports `database-dev-Name` (Fn::ImportValue), which the template of database exports, and api does not depend on database: add \"database\" to its depends-on, so that database deploys first and is removed last\n"
    );
    // Another stage repeats the same import under its own name: the warning names the first
    // stage's only.
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.prod]\nregion = \"us-east-1\"\n",
    );
    let (code, _, err2) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!((code, err2.as_str()), (0, err.as_str()));
    // Ordered: nothing to say.
    repo.write(
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ndepends-on = [\"database\"]\n\n[parameters]\nStage = \"${stage}\"\n",
    );
    let (code, _, err) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn validate_warns_when_git_does_not_ignore_what_sam_build_writes() {
    let repo = TestRepo::new();
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(
        "services/api/service.toml",
        "[service]\nkind = \"sam\"\n\n[package]\nbuild = [\"sam\", \"build\"]\nbuilt-template = \".aws-sam/build/template.yaml\"\n",
    )
    .write(
        "services/api/template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let root = repo.path().to_str().unwrap();
    let validate = || run(&mut xtask(&["validate", "--root", root]));
    let (code, _, err) = validate();
    assert_eq!(code, 0, "{err}");
    let warning = |p: &str| {
        format!(
            "warning: git does not ignore services/api/.aws-sam/{p}, which a build writes: after each build its service looks changed to a plan of the working tree; add .aws-sam/ to .gitignore\n"
        )
    };
    assert_eq!(err, warning("build/template.yaml") + &warning("build.toml"));
    // `build/` ignored (a Python project's .gitignore): `sam build` also writes
    // .aws-sam/build.toml, which then showed the service changed after every build.
    repo.write(".gitignore", "build/\n");
    let (code, _, err) = validate();
    assert_eq!((code, err), (0, warning("build.toml")));
    repo.write(".gitignore", ".aws-sam/\n");
    let (code, _, err) = validate();
    assert_eq!((code, err.as_str()), (0, ""));
    // So with a Serverless service's `.serverless/`, which a compile stopped before its end
    // leaves behind.
    repo.write(
        "services/fn/service.toml",
        "[service]\nkind = \"serverless\"\n",
    )
    .write(
        "services/fn/serverless.yml",
        "service: fn\nprovider:\n  name: aws\n",
    );
    let (code, _, err) = validate();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: git does not ignore services/fn/.serverless/, which the Serverless Framework writes"),
        "{err}"
    );
    repo.write(".gitignore", ".aws-sam/\n.serverless/\n");
    let (code, _, err) = validate();
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn validate_warns_when_git_ignores_ferrys_files() {
    let repo = TestRepo::new();
    // A repository ignoring its tools' `*.toml` files (samconfig.toml) ignores Ferry's too.
    repo.write(".gitignore", "*.toml\n")
        .write(
            "ferry.toml",
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
        )
        .write(
            "services/api/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .write(
            "services/api/t.yaml",
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        );
    let root = repo.path().to_str().unwrap();
    // `init --dry-run` in a repository whose rules would ignore what it writes says so, as the
    // real run does (before, only the real run did).
    let other = TestRepo::new();
    other.write(".gitignore", "*.toml\n").write(
        "services/api/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let (code, _, err) = run(&mut xtask(&[
        "init",
        "--no-runner",
        "--dry-run",
        "--root",
        other.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "warning: git ignores ferry.toml, services/api/service.toml, which are not tracked"
        ),
        "{err}"
    );
    let validate = || run(&mut xtask(&["validate", "--root", root]));
    let (code, out, err) = validate();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ok: project `shop`, 1 service(s), stage(s) dev\n");
    assert!(
        err.starts_with(
            "warning: git ignores ferry.toml, services/api/service.toml, which are not tracked: a clone (a CI build) will not have them;"
        ),
        "{err}"
    );
    // A file committed despite the rule is versioned: only the other is named.
    let added = std::process::Command::new("git")
        .args(["-C", root, "add", "-f", "ferry.toml"])
        .status()
        .unwrap();
    assert!(added.success());
    let (_, _, err) = validate();
    assert!(
        err.starts_with("warning: git ignores services/api/service.toml, which is not tracked"),
        "{err}"
    );
    // The rules the warning suggests: nothing to say.
    repo.write(".gitignore", "*.toml\n!ferry.toml\n!service.toml\n");
    let (code, _, err) = validate();
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn validate_warns_when_git_ignores_a_template_inside_its_folder() {
    let repo = TestRepo::new();
    // A repository ignoring generated `*.json` files ignores a service's JSON template too.
    repo.write(".gitignore", "*.json\n")
        .write(
            "ferry.toml",
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
        )
        .write(
            "services/api/service.toml",
            "[service]\ntemplate = \"infra/../t.json\"\n",
        )
        .write(
            "services/api/t.json",
            "{\"Resources\": {\"Q\": {\"Type\": \"AWS::SQS::Queue\"}}}\n",
        );
    let root = repo.path().to_str().unwrap();
    // `init --dry-run` in a repository whose rules would ignore what it writes says so, as the
    // real run does (before, only the real run did).
    let other = TestRepo::new();
    other.write(".gitignore", "*.toml\n").write(
        "services/api/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let (code, _, err) = run(&mut xtask(&[
        "init",
        "--no-runner",
        "--dry-run",
        "--root",
        other.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "warning: git ignores ferry.toml, services/api/service.toml, which are not tracked"
        ),
        "{err}"
    );
    let validate = || run(&mut xtask(&["validate", "--root", root]));
    let (code, out, err) = validate();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ok: project `shop`, 1 service(s), stage(s) dev\n");
    assert!(
        err.starts_with(
            "warning: git ignores services/api/t.json, the template of service `api`, and does not track it: no commit holds it, so no plan sees it change"
        ),
        "{err}"
    );
    // Committed despite the rule, it is versioned: nothing to say.
    let added = std::process::Command::new("git")
        .args(["-C", root, "add", "-f", "services/api/t.json"])
        .status()
        .unwrap();
    assert!(added.success());
    let (code, _, err) = validate();
    assert_eq!((code, err.as_str()), (0, ""));
}

/// A role a template makes without the stage's permissions boundary is refused by a stage
/// bootstrapped by Ferry: `validate` names such roles (and SAM functions with an implicit role),
/// not those that carry it, their own or through SAM's Globals.
#[test]
fn validate_warns_of_roles_made_without_the_permissions_boundary() {
    let repo = TestRepo::new();
    let role = |boundary: &str| {
        format!(
            "    Type: AWS::IAM::Role\n    Properties:\n{boundary}      AssumeRolePolicyDocument: {{}}\n"
        )
    };
    let with = "      PermissionsBoundary: !Sub \"arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${FerryPermissionsBoundary}\"\n";
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write("services/cfn/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write(
        "services/cfn/t.yaml",
        &format!(
            "Parameters:\n  FerryPermissionsBoundary: {{Type: String}}\nResources:\n  Bare:\n{}  Bounded:\n{}",
            role(""),
            role(with)
        ),
    )
    .write(
        "services/sam/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write(
        "services/sam/t.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Runtime: python3.12\n      Handler: a.h\n      InlineCode: x\n",
    )
    .write(
        "services/global/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write(
        "services/global/t.yaml",
        &format!("Transform: AWS::Serverless-2016-10-31\nParameters:\n  FerryPermissionsBoundary: {{Type: String}}\nGlobals:\n  Function:\n  {with}Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Runtime: python3.12\n      Handler: a.h\n      InlineCode: x\n  Canary:\n    Type: AWS::Serverless::Function\n    Properties:\n      Runtime: python3.12\n      Handler: a.h\n      InlineCode: x\n      AutoPublishAlias: live\n      DeploymentPreference:\n        Type: Canary10Percent5Minutes\n"),
    );
    repo.commit("roles");
    let root = repo.path().to_str().unwrap();
    let (code, _, err) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: `cfn` makes IAM roles without a permissions boundary (Bare): a stage bootstrapped by Ferry refuses to make them"),
        "{err}"
    );
    assert!(
        err.contains("warning: `sam` makes IAM roles without a permissions boundary (Fn)"),
        "{err}"
    );
    // Its functions' roles carry it through Globals; the CodeDeploy role SAM makes does not.
    assert!(
        err.contains("warning: `global` makes IAM roles without a permissions boundary (Canary's CodeDeploy role)"),
        "{err}"
    );
    assert!(!err.contains("Bounded"), "{err}");
}

/// A literal value in service.toml for a parameter its template declares NoEcho is a secret
/// kept in the repository (a probe's `DbPassword = "…"` passed in silence, and `outputs`
/// printed it where an output echoed it): warned of, naming the file and key, never the value.
/// One read from SSM, or from another service's output, is not.
#[test]
fn validate_warns_of_a_literal_value_for_a_no_echo_parameter() {
    let repo = TestRepo::new();
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/shop/dev/\"\n",
    )
    .write(
        "services/db/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nDbPassword = \"hunter2-literal\"\nApiKey = \"${ssm:api-key}\"\nPlain = \"x\"\n",
    )
    .write(
        "services/db/t.yaml",
        "Parameters:\n  DbPassword: {Type: String, NoEcho: true}\n  ApiKey: {Type: String, NoEcho: 'true'}\n  Plain: {Type: String}\nResources:\n  Q: {Type: AWS::SQS::Queue}\nOutputs:\n  Encoded:\n    Value: !Base64 {Ref: ApiKey}\n  Joined:\n    Value: !Join [':', [a, !Ref Plain]]\n  Url:\n    Value: !Sub 'https://x/${DbPassword}'\n",
    );
    repo.commit("db");
    let root = repo.path().to_str().unwrap();
    let (code, _, err) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: services/db/service.toml: parameters.DbPassword is a literal value, and the template of `db` declares `DbPassword` NoEcho: a secret kept in the repository"),
        "{err}"
    );
    assert!(!err.contains("hunter2-literal"), "{err}");
    assert!(!err.contains("parameters.ApiKey is a literal"), "{err}");
    assert!(!err.contains("parameters.Plain is a literal"), "{err}");
    // An output echoing a NoEcho parameter, inside any function (before, validate passed a
    // `!Base64` of one, which a deploy passing it a SecureString refused).
    for (output, parameter) in [("Encoded", "ApiKey"), ("Url", "DbPassword")] {
        assert!(
            err.contains(&format!("warning: db: output {output} of services/db/t.yaml reads parameter {parameter}, which it declares NoEcho")),
            "{err}"
        );
    }
    assert!(!err.contains("output Joined"), "{err}");
}

/// A value the stage decides (`Stage = "${stage}"`, as init writes it from a Makefile's
/// `Stage=$(STAGE)`) that a stage's deploy would be refused for by the parameter's
/// `AllowedValues`: warned of, naming the stages. Before, validate said ok, and the emulator
/// deployed it (CloudFormation refuses it).
#[test]
fn validate_warns_of_a_stage_s_value_the_template_refuses() {
    let repo = TestRepo::new();
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.staging]\nregion = \"us-east-1\"\n\n[stages.prod]\nregion = \"us-east-1\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n\n[stages.dev.variables]\nsize = \"small\"\n\n[stages.staging.variables]\nsize = \"small\"\n\n[stages.prod.variables]\nsize = \"large\"\n\n[stages.\"*\".variables]\nsize = \"small\"\n",
    )
    .write(
        "services/api/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nStage = \"${stage}\"\nSize = \"${var:size}\"\nName = \"api-${stage}\"\nPw = \"hunter-${stage}\"\n",
    )
    .write(
        "services/api/t.yaml",
        "Parameters:\n  Stage: {Type: String, AllowedValues: [local, dev, prod]}\n  Size: {Type: String, AllowedValues: [small, large]}\n  Name: {Type: String, MaxLength: 10}\n  Pw: {Type: String, NoEcho: true, MaxLength: 10}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    repo.commit("api");
    let root = repo.path().to_str().unwrap();
    let (code, _, err) = run(&mut xtask(&["validate", "--root", root]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: services/api/service.toml: parameters.Stage = `${stage}` gives a value the template of `api` refuses in stage `staging`, a preview stage (`pr-1`, say) (`staging` is not one of its AllowedValues (local, dev, prod)): CloudFormation would refuse those stages' deploy"),
        "{err}"
    );
    assert!(!err.contains("parameters.Size"), "{err}");
    // A NoEcho parameter's value is not shown.
    assert!(
        err.contains("warning: services/api/service.toml: parameters.Pw gives a value the template of `api` refuses in stage `prod`, stage `staging`"),
        "{err}"
    );
    assert!(!err.contains("hunter"), "{err}");
    // `api-staging` is 11 characters.
    assert!(
        err.contains("warning: services/api/service.toml: parameters.Name = `api-${stage}` gives a value the template of `api` refuses in stage `staging` (it is longer than MaxLength 10): CloudFormation would refuse that stage's deploy"),
        "{err}"
    );
}

/// A literal name in a template is given by every stage deploying it: of two stages in one
/// account and region, the second fails (a probe met it with an export name). And a value
/// `init` left empty for a parameter without a default deploys as an empty string. Both are
/// warned of; before, `validate` said nothing.
#[test]
fn validate_warns_of_names_every_stage_gives_and_of_empty_parameters() {
    let repo = TestRepo::new();
    let config = |prod: &str| {
        format!(
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.prod]\nregion = \"us-east-1\"\n{prod}"
        )
    };
    repo.write("ferry.toml", &config(""))
        .write(
            "services/api/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nEnv = \"\"\nLevel = \"\"\nStage = \"${stage}\"\n",
        )
        .write(
            "services/api/t.yaml",
            "Parameters:\n  Env: {Type: String}\n  Level: {Type: String, Default: '1'}\n  Environment: {Type: String, Default: dev}\n  Stage: {Type: String}\nResources:\n  Bus:\n    Type: AWS::Events::EventBus\n    Properties:\n      Name: !Sub 'ecommerce-${Environment}'\n  PerStage:\n    Type: AWS::Events::EventBus\n    Properties:\n      Name: !Sub 'ecommerce-${Stage}'\n  T:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      TableName: orders\n      KeySchema: [{AttributeName: id, KeyType: HASH}]\n      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]\n      BillingMode: PAY_PER_REQUEST\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub '${AWS::StackName}-q'\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: api-role\n      AssumeRolePolicyDocument: {}\nOutputs:\n  Id:\n    Value: !Ref T\n    Export:\n      Name: SharedId\n",
        );
    // A Serverless service's `resources` are CloudFormation as written: judged too, but for
    // the names built from the framework's variables, which only its compile knows.
    repo.write(
        "services/worker/service.toml",
        "[service]\nkind = \"serverless\"\n",
    )
    .write(
        "services/worker/serverless.yml",
        "service: shop-worker\nprovider:\n  name: aws\n  runtime: nodejs20.x\nresources:\n  - ${file(./more.yml)}\n  - Resources:\n      Orders:\n        Type: AWS::SQS::Queue\n        Properties:\n          QueueName: orders\n  - Resources:\n      Jobs:\n        Type: AWS::SQS::Queue\n        Properties:\n          QueueName: shop-jobs\n      PerStage:\n        Type: AWS::SQS::Queue\n        Properties:\n          QueueName: shop-jobs-${sls:stage}\n      Dlq:\n        Type: AWS::SQS::Queue\n        Properties:\n          QueueName: !Sub '${AWS::StackName}-dlq'\n",
    );
    repo.commit("api");
    let root = repo.path().to_str().unwrap();
    let validate = || run(&mut xtask(&["validate", "--root", root]));
    let (code, _, err) = validate();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: `worker` gives the queue `shop-jobs` literally (Resources.Jobs.Properties.QueueName), so every stage deploying it gives that name"),
        "{err}"
    );
    // Its `resources` as a list: the mappings in it count (an include is not followed).
    assert!(
        err.contains("warning: `worker` gives the queue `orders` literally (Resources.Orders.Properties.QueueName)"),
        "{err}"
    );
    assert!(!err.contains("PerStage") && !err.contains("-dlq"), "{err}");
    for said in [
        "warning: `api` gives the table `orders` literally (Resources.T.Properties.TableName), so every stage deploying it gives that name: stages `dev` and `prod` deploy to us-east-1 and no account or role-arn sets them apart, so the second one's deploy fails there",
        "warning: `api` gives the export name `SharedId` literally (Outputs.Id.Export.Name)",
        // Built from a parameter left at its default: the same in every stage.
        "warning: `api` gives the event bus `ecommerce-dev` the same in every stage (Resources.Bus.Properties.Name)",
        "warning: services/api/service.toml: parameters.Env is empty, and the template of `api` gives `Env` no default: it deploys as an empty string",
    ] {
        assert!(err.contains(said), "{said}\n{err}");
    }
    // Built from the stack's name or the stage, and with a default: nothing to say of them.
    assert!(!err.contains("-q"), "{err}");
    assert!(!err.contains("PerStage"), "{err}");
    assert!(!err.contains("parameters.Level"), "{err}");
    // Stages in accounts of their own (here by their roles) do not meet.
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nrole-arn = \"arn:aws:iam::111111111111:role/deployer\"\n\n[stages.prod]\nregion = \"us-east-1\"\nrole-arn = \"arn:aws:iam::222222222222:role/deployer\"\n",
    );
    let (code, _, err) = validate();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("literally"), "{err}");
    // In two regions of what may be one account: a role's name is the account's, a table's
    // the region's.
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.prod]\nregion = \"eu-west-1\"\n",
    );
    let (code, _, err) = validate();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: `api` gives the role `api-role` literally (Resources.R.Properties.RoleName), so every stage deploying it gives that name: stages `dev` and `prod` deploy to one account"),
        "{err}"
    );
    assert!(!err.contains("`orders`"), "{err}");
}

#[test]
fn validate_warns_of_sam_function_dependencies_the_zip_would_lack() {
    let repo = TestRepo::new();
    let template = "Transform: AWS::Serverless-2016-10-31\nGlobals:\n  Function:\n    Runtime: python3.12\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.handler\n  Js:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ./js\n      Handler: app.handler\n      Runtime: nodejs20.x\n";
    repo.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for name in ["needs", "provided", "built"] {
        let build = if name == "built" {
            "\n[package]\nbuild = [\"make\"]\n"
        } else {
            ""
        };
        let requirements = if name == "provided" {
            "# the runtime has these\nboto3==1.34\nbotocore\n"
        } else {
            "requests>=2 # HTTP\nboto3\n"
        };
        let node = if name == "provided" {
            r#"{"dependencies": {}}"#
        } else {
            r#"{"dependencies": {"uuid": "9"}}"#
        };
        repo.write(
            &format!("services/{name}/service.toml"),
            &format!("[service]\nkind = \"sam\"\n{build}"),
        )
        .write(&format!("services/{name}/template.yaml"), template)
        .write(
            &format!("services/{name}/src/app.py"),
            "def handler(e, c): pass\n",
        )
        .write(
            &format!("services/{name}/src/requirements.txt"),
            requirements,
        )
        .write(
            &format!("services/{name}/js/app.js"),
            "exports.handler = async () => 1;\n",
        )
        .write(&format!("services/{name}/js/package.json"), node);
    }
    let (code, _, err) = run(&mut xtask(&[
        "validate",
        "--root",
        repo.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    // (Their functions' implicit roles lack a permissions boundary: said, and not this test's.)
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("without a permissions boundary"))
        .collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings[0].starts_with("warning: needs: services/needs/js/package.json declares dependencies, which `sam build` would install into the function and Ferry's zip of services/needs/js lacks"),
        "{err}"
    );
    assert!(
        warnings[1].starts_with(
            "warning: needs: services/needs/src/requirements.txt declares dependencies"
        ) && warnings[1].contains("`pip install -r requirements.txt -t .`"),
        "{err}"
    );
}

#[test]
fn a_folder_without_ferry_toml_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&mut xtask(&[
        "services",
        "--root",
        tmp.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 1);
    assert!(
        err.contains("failed to load the Ferry configuration of"),
        "{err}"
    );
    assert!(
        err.contains("ferry.toml: not found at the repository root"),
        "{err}"
    );
    assert!(err.contains("--root <DIR>"), "{err}");
}

fn local(state: &Path, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["local"];
    full.extend_from_slice(args);
    run(xtask(&full).env("FERRY_LOCAL_DIR", state))
}

#[test]
fn local_emulator_lifecycle() {
    let tmp = tempfile::tempdir().unwrap();
    // A state folder that does not exist yet is created.
    let state = tmp.path().join("fresh/state");
    // Stopped however the test ends (a failed assert would leave it running otherwise, its
    // state file gone with the temporary folder).
    let _down = ferry_test_support::StopEmulatorOnDrop(state.clone());
    let state = &state;
    let (code, out, _) = local(state, &["status"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        (code, lines[0]),
        (
            0,
            "local AWS emulator is not running (`cargo xtask local up` starts it)"
        )
    );
    assert!(
        lines[1].starts_with("installation: ") && lines[1].contains("/venv-moto-"),
        "{out}"
    );
    // The installation is the user's, shared by every repository, in FERRY_CACHE_DIR when
    // set; where no cache folder can be made (a file in its place), the repository's own.
    let cache = tmp.path().join("cache");
    let (_, out, _) = run(xtask(&["local", "status"])
        .env("FERRY_LOCAL_DIR", state)
        .env("FERRY_CACHE_DIR", &cache));
    assert!(
        out.contains(&format!(
            "installation: {}/venv-moto-",
            cache.join("emulator").display()
        )) && out.contains("shared by every repository of this user")
            && out.contains("; not installed yet (`local up` or any --local run installs it)"),
        "{out}"
    );
    let blocked = tmp.path().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let (_, out, _) = run(xtask(&["local", "status"])
        .env("FERRY_LOCAL_DIR", state)
        .env("FERRY_CACHE_DIR", &blocked));
    assert!(
        out.contains("/target/ferry/local/venv-moto-")
            && out.contains("this repository's own (no cache folder of the user's could be made"),
        "{out}"
    );
    let (code, _, err) = local(state, &["env"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("start it with `cargo xtask local up`"),
        "{err}"
    );

    let (code, out, err) = local(state, &["up"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("local AWS emulator started at http://127.0.0.1:"),
        "{out}"
    );
    let endpoint = out.split_whitespace().nth(5).unwrap().to_string();
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    assert!(ferry_local::answers(port));

    // Idempotent: a second `up` finds the same server.
    let (code, out, _) = local(state, &["up"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!(
            "local AWS emulator already running at {endpoint} "
        )),
        "{out}"
    );

    let (_, out, _) = local(state, &["status"]);
    assert!(
        out.starts_with(&format!("local AWS emulator running at {endpoint} ")),
        "{out}"
    );
    let (code, out, _) = local(state, &["env", "--region", "eu-west-1"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("export AWS_ENDPOINT_URL={endpoint}\n")),
        "{out}"
    );
    assert!(out.contains("export AWS_REGION=eu-west-1\n"), "{out}");
    assert!(out.contains("unset AWS_SESSION_TOKEN\n"), "{out}");

    let (code, out, _) = local(state, &["down"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("local AWS emulator stopped"), "{out}");
    assert!(
        !ferry_local::answers(port),
        "the server still answers after down"
    );
    let (code, out, _) = local(state, &["down"]);
    assert_eq!((code, out.trim()), (0, "local AWS emulator is not running"));
}

/// The README's command reference names every command `--help` lists, and `.ci/run` runs the
/// README's test command.
#[test]
fn readme_documents_every_command_and_ci_runs_the_test_command() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let (_, help, _) = run(&mut xtask(&["--help"]));
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A command name stands at column 2; wrapped descriptions are indented further.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 4, "{help}");
    for c in &commands {
        assert!(
            readme.contains(&format!("| `{c}")),
            "README's command table lacks `{c}`"
        );
    }
    assert!(
        readme.contains("\ncargo xtask test\n"),
        "README's quick start lacks the test command"
    );
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "exec cargo xtask test"),
        ".ci/run must run `cargo xtask test`:\n{ci}"
    );
}

#[test]
fn graph_renders_the_example_monorepo() {
    let (code, out, err) = run(&mut xtask(&["graph"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "graph LR\n  n0[\"api (cloudformation)\"]\n  n1[\"database (cloudformation)\"]\n  n2[\"events (cloudformation)\"]\n  n3[\"frontend (cloudformation)\"]\n  n4[\"fulfilment (sam)\"]\n  n5[\"notifier (serverless)\"]\n  n1 --> n0\n  n2 --> n0\n  n0 --> n3\n  n1 --> n4\n  n2 --> n4\n  n1 --> n5\n  n2 --> n5\n"
    );
    let (_, dot, _) = run(&mut xtask(&["graph", "--format", "dot"]));
    assert!(dot.contains("\"api\" -> \"frontend\";"), "{dot}");
    assert!(
        dot.contains("\"fulfilment\" [label=\"fulfilment (sam)\"];"),
        "{dot}"
    );
    let (_, json, _) = run(&mut xtask(&["graph", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["waves"],
        serde_json::json!([
            ["database", "events"],
            ["api", "fulfilment", "notifier"],
            ["frontend"]
        ])
    );
    let kinds: Vec<(&str, &str)> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["kind"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("fulfilment", "sam")), "{kinds:?}");
    assert!(kinds.contains(&("notifier", "serverless")), "{kinds:?}");
    assert!(kinds.contains(&("api", "cloudformation")), "{kinds:?}");
}

/// An AWS endpoint that takes the connection and never answers: a line every 10 s says what the
/// command waits for (before, `plan` said nothing for two minutes).
#[test]
fn a_wait_for_aws_says_what_it_waits_for() {
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = format!("http://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for s in listener.incoming().take(8).flatten() {
            kept.push(s);
        }
        kept
    });
    let mut c = xtask(&["plan", "dev"]);
    c.env("AWS_ENDPOINT_URL", &at)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let started = std::time::Instant::now();
    let mut said = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.starts_with("still waiting for AWS to answer") {
            said = Some(line);
            break;
        }
        if started.elapsed().as_secs() > 30 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(held);
    let said = said.expect("a line while it waits");
    assert!(
        said.contains("(the identity and credentials of stage `dev`)") && said.contains("s so far"),
        "{said}"
    );
}

/// A promote to or from a preview whose name is one slip from a named stage's says which stage
/// was meant (before, it advised deploying the typo). (`deploy` of such a name: deploy.rs.)
#[test]
fn a_promote_to_a_misspelt_stage_names_the_stage_meant() {
    let (code, out, err) = run(&mut xtask(&["promote", "staging", "prdo"]));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(
            "stage `prdo` is a preview stage (ferry.toml names no such stage); did you mean `prod`?"
        ),
        "{err}"
    );
    // Not the advice to deploy the typo as a preview.
    assert!(!err.contains("deploy prdo"), "{err}");
    // --preview of a named stage is a usage error, before anything is read.
    let (code, out, err) = run(&mut xtask(&["deploy", "dev", "--preview"]));
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("`dev` is a named stage"), "{err}");
}

/// A copy of the example monorepo (ferry.toml and services/) committed to a temporary repository.
fn example_repo() -> (TestRepo, String) {
    let repo = TestRepo::new();
    copy_tree(
        &workspace_root().join("services"),
        &repo.path().join("services"),
    );
    std::fs::copy(
        workspace_root().join("ferry.toml"),
        repo.path().join("ferry.toml"),
    )
    .unwrap();
    let base = repo.commit("example").to_string();
    (repo, base)
}

fn plan(repo: &TestRepo, args: &[&str]) -> Command {
    let mut full = vec!["plan", "--root", repo.path().to_str().unwrap()];
    full.extend_from_slice(args);
    xtask(&full)
}

#[test]
fn plan_deploys_what_changed_in_the_working_tree_and_at_a_commit() {
    let (repo, base) = example_repo();
    repo.write("services/api/src/handler.py", "# edited\n");
    // Working tree (the default on a developer's machine).
    let (code, out, err) = run(&mut plan(&repo, &["dev", "--since", &base]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("deploy  api                    changed: services/api/src/handler.py"),
        "{out}"
    );
    assert!(
        out.contains("skip    fulfilment (sam)       unchanged since"),
        "the kind beside a service that is not plain CloudFormation: {out}"
    );
    assert!(out.contains("1 to deploy in 1 wave(s), 5 to skip"), "{out}");

    // At a commit, with the configuration of that commit.
    repo.commit("edit api");
    let (code, out, err) = run(&mut plan(
        &repo,
        &[
            "dev", "--since", &base, "--head", "HEAD", "--format", "json",
        ],
    ));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["order"], serde_json::json!(["api"]));
    assert_eq!(v["head"]["kind"], "commit");
    let api = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api")
        .unwrap();
    assert_eq!(api["reasons"][0]["kind"], "changed");
    assert_eq!(api["stack_name"], "shop-api-dev");
    assert_eq!(api["kind"], "cloudformation");

    // --with-dependents brings frontend; --service frontend alone plans its dependencies too.
    let (_, out, _) = run(&mut plan(
        &repo,
        &[
            "dev",
            "--since",
            &base,
            "--with-dependents",
            "--format",
            "json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["order"], serde_json::json!(["api", "frontend"]));
    let (_, out, _) = run(&mut plan(
        &repo,
        &[
            "dev",
            "--since",
            &base,
            "--service",
            "api",
            "--format",
            "json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["services"].as_array().unwrap().len(),
        3,
        "api, database, events"
    );
}

#[test]
fn plan_without_a_base_deploys_everything_with_a_named_reason() {
    let (repo, _) = example_repo();
    let (code, out, _) = run(&mut plan(&repo, &["dev"]));
    assert_eq!(code, 0);
    assert!(out.contains("6 to deploy in 3 wave(s), 0 to skip"), "{out}");
    assert!(out.contains("not deployed yet"), "{out}");
    let (_, out, _) =
        run(plan(&repo, &["dev", "--format", "json"]).env("FORCE_DEPLOY_ALL", "true"));
    assert!(out.contains("\"by\": \"FORCE_DEPLOY_ALL=true\""), "{out}");
    // Named as it was set; a value that is neither yes nor no is said, not silently dropped.
    let (_, out, _) = run(plan(&repo, &["dev", "--format", "json"]).env("FORCE_DEPLOY_ALL", "1"));
    assert!(out.contains("\"by\": \"FORCE_DEPLOY_ALL=1\""), "{out}");
    let (code, _, err) = run(plan(&repo, &["dev"]).env("FORCE_DEPLOY_ALL", "on"));
    assert_eq!(code, 0);
    assert!(
        err.contains("warning: FORCE_DEPLOY_ALL=on is not one of true, 1, yes"),
        "{err}"
    );
}

#[test]
fn plan_strict_fails_on_an_unusable_base_and_unknown_services_get_a_hint() {
    let (repo, _) = example_repo();
    let (code, out, _) = run(&mut plan(
        &repo,
        &["dev", "--since", "no-such-ref", "--format", "json"],
    ));
    assert_eq!(code, 0);
    assert!(out.contains("\"cause\": \"not-found\""), "{out}");
    let (code, _, err) = run(&mut plan(
        &repo,
        &["dev", "--since", "no-such-ref", "--strict"],
    ));
    assert_eq!(code, 1);
    assert!(
        err.contains("base `no-such-ref` is not in the repository") && err.contains("--strict"),
        "{err}"
    );
    let (code, _, err) = run(&mut plan(&repo, &["dev", "--service", "fronted"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown service `fronted`; did you mean `frontend`?"),
        "{err}"
    );
}

#[test]
fn plan_on_a_pull_request_build_says_nothing_will_be_deployed() {
    let (repo, base) = example_repo();
    let head = repo.head().to_string();
    let mut cmd = plan(&repo, &["dev", "--since", &base]);
    cmd.env("CODEBUILD_BUILD_ID", "shop:42")
        .env("CODEBUILD_RESOLVED_SOURCE_VERSION", &head)
        .env("CODEBUILD_WEBHOOK_TRIGGER", "pr/7");
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("deployment is skipped for pull requests (CODEBUILD_WEBHOOK_TRIGGER=pr/7)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("head: {head} ({})", &head[..7])),
        "CI plans the built commit: {out}"
    );
    let mut cmd = plan(
        &repo,
        &["dev", "--since", &base, "--format", "codebuild-batch"],
    );
    cmd.env("CODEBUILD_BUILD_ID", "shop:42")
        .env("CODEBUILD_WEBHOOK_TRIGGER", "pr/7");
    let (_, out, _) = run(&mut cmd);
    assert!(out.contains("build-graph: []"), "{out}");
}

/// buildspec.yml is valid YAML with CodeBuild's phases, every `cargo xtask …` it calls exists,
/// and its reports read where Ferry writes JUnit.
#[test]
fn buildspec_is_valid_and_calls_only_existing_commands() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("buildspec.yml")).unwrap();
    let spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("buildspec.yml is YAML");
    assert_eq!(spec["version"].as_f64(), Some(0.2));
    let mut calls = Vec::new();
    for phase in ["install", "pre_build", "build"] {
        let commands = spec["phases"][phase]["commands"]
            .as_sequence()
            .unwrap_or_else(|| panic!("phase {phase} has no commands"));
        for c in commands {
            let c = c.as_str().expect("commands are strings");
            if let Some(rest) = c.split("cargo xtask ").nth(1) {
                calls.push(rest.split_whitespace().next().unwrap().to_string());
            }
        }
    }
    for expected in ["validate", "test", "package", "deploy"] {
        assert!(
            calls.iter().any(|c| c == expected),
            "buildspec does not call `{expected}`: {calls:?}"
        );
    }
    for c in &calls {
        let (code, _, err) = run(&mut xtask(&[c, "--help"]));
        assert_eq!(
            code, 0,
            "buildspec calls `cargo xtask {c}`, which does not exist: {err}"
        );
    }
    // The stage comes from the trigger: ferry.toml's [ci] maps main to staging, a tag to prod.
    assert!(
        text.contains("cargo xtask deploy --from-ci --test --wait-lock 1800"),
        "{text}"
    );
    for (trigger, stage) in [
        ("branch/main", "staging"),
        ("branch/x", "dev"),
        ("tag/v1", "prod"),
    ] {
        // In a copy: a plan at a commit keeps its cache in the repository's .git, which must
        // not be this checkout's.
        let (repo, _) = example_repo();
        let mut c = plan(&repo, &["--from-ci", "--offline"]);
        c.env("CODEBUILD_BUILD_ID", "shop:1")
            .env("CODEBUILD_WEBHOOK_TRIGGER", trigger);
        let (code, _, err) = run(&mut c);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains(&format!("ci: stage `{stage}` from [ci]")),
            "{trigger}: {err}"
        );
    }
    // The JUnit files the build writes are where the reports look for them.
    assert!(text.contains("cargo xtask test --junit target/ferry/reports/unit.xml"));
    for group in ["unit-tests", "acceptance-tests"] {
        let g = &spec["reports"][group];
        assert_eq!(
            g["base-directory"].as_str(),
            Some("target/ferry/reports"),
            "{group}"
        );
        assert_eq!(g["file-format"].as_str(), Some("JUNITXML"), "{group}");
    }
    // The build's output, and the emulator's installation the tests run (the user's cache).
    for path in ["target/**/*", "/root/.cache/ferry/**/*"] {
        assert!(
            spec["cache"]["paths"]
                .as_sequence()
                .is_some_and(|p| p.iter().any(|p| p.as_str() == Some(path))),
            "{path}"
        );
    }
}

/// The batch CI files in the repository are what the graph generates, they are valid YAML, and
/// their build-graph and waves follow the services' dependencies; a changed graph makes them
/// stale and `batch files` rewrites them.
#[test]
fn batch_ci_files_follow_the_graph_and_cannot_drift() {
    let root = workspace_root();
    let (code, out, err) = run(&mut xtask(&["batch", "files", "--check"]));
    assert_eq!(
        code, 0,
        "the committed batch files are stale:\n{out}\n{err}"
    );

    // buildspec-batch.yml: one node per service, depend-on = its dependencies, then finish.
    let text = std::fs::read_to_string(root.join("buildspec-batch.yml")).unwrap();
    let spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    assert_eq!(spec["version"].as_f64(), Some(0.2));
    let nodes = spec["batch"]["build-graph"].as_sequence().unwrap();
    let (_, services, _) = run(&mut xtask(&["services", "--format", "json"]));
    let services: serde_json::Value = serde_json::from_str(&services).unwrap();
    let services = services.as_array().unwrap();
    assert_eq!(nodes.len(), services.len() + 1);
    let ids = |v: &serde_yaml_ng::Value| -> Vec<String> {
        v.as_sequence()
            .map(|s| s.iter().map(|i| i.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut seen = Vec::new();
    for n in nodes {
        let id = n["identifier"].as_str().unwrap().to_string();
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{id}"
        );
        for d in ids(&n["depend-on"]) {
            assert!(seen.contains(&d), "{id} depends on {d}, which comes later");
        }
        let service = n["env"]["variables"]["SERVICE"].as_str().unwrap();
        if let Some(s) = services.iter().find(|s| s["name"] == service) {
            let mut want: Vec<String> = s["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().replace('-', "_"))
                .collect();
            let mut got = ids(&n["depend-on"]);
            want.sort();
            got.sort();
            assert_eq!(got, want, "{service}");
        } else {
            assert_eq!(service, "", "the last node finishes the batch");
            assert_eq!(ids(&n["depend-on"]).len(), services.len());
        }
        seen.push(id);
    }
    let build = spec["phases"]["build"]["commands"][0].as_str().unwrap();
    assert!(
        build.contains("cargo xtask batch node --from-ci \"$SERVICE\" --test --wait-lock 1800"),
        "{build}"
    );
    // The finish removes the preview of a pull request the event merged or closed (before,
    // nothing in the batch files did).
    assert!(
        build
            .contains("cargo xtask batch finish --from-ci && cargo xtask previews prune --from-ci --wait-lock 1800"),
        "{build}"
    );

    // The workflow: one job per wave of the graph chained by needs (every dependency in an
    // earlier wave), its matrix the wave's services; finish after the last wave.
    let text = std::fs::read_to_string(root.join(".github/workflows/deploy.yml")).unwrap();
    let wf: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    // It runs on what the example's [ci] deploys from: branches `main` and `*`, tags `v*` (a
    // `[ci]` `*` matches `/` too, as GitHub's `**`).
    assert_eq!(ids(&wf["on"]["push"]["branches"]), ["main", "**"], "{text}");
    assert_eq!(ids(&wf["on"]["push"]["tags"]), ["v**"], "{text}");
    let jobs = wf["jobs"].as_mapping().unwrap();
    let (_, graph, _) = run(&mut xtask(&["graph", "--format", "json"]));
    let graph: serde_json::Value = serde_json::from_str(&graph).unwrap();
    let waves = graph["waves"].as_array().unwrap();
    assert!(waves.len() >= 2, "{graph}");
    assert_eq!(jobs.len(), waves.len() + 1, "{text}");
    let mut earlier: Vec<String> = Vec::new();
    for (w, wave) in waves.iter().enumerate() {
        let job = &wf["jobs"][format!("wave-{w}").as_str()];
        if w > 0 {
            assert_eq!(
                job["needs"].as_str(),
                Some(format!("wave-{}", w - 1).as_str())
            );
        }
        let legs = ids(&job["strategy"]["matrix"]["service"]);
        let want: Vec<String> = wave
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(legs, want, "wave {w}");
        for s in &legs {
            let svc = services.iter().find(|x| x["name"] == s.as_str()).unwrap();
            for d in svc["depends_on"].as_array().unwrap() {
                assert!(
                    earlier.contains(&d.as_str().unwrap().to_string()),
                    "{s} before {d}"
                );
            }
        }
        earlier.extend(legs);
        let run_line = job["steps"].as_sequence().unwrap().last().unwrap()["run"]
            .as_str()
            .unwrap();
        assert_eq!(
            run_line,
            "cargo xtask batch node --from-ci \"$SERVICE\" --test --wait-lock 1800"
        );
    }
    assert_eq!(
        wf["jobs"]["finish"]["needs"].as_str(),
        Some(format!("wave-{}", waves.len() - 1).as_str())
    );
    // The finish removes the preview of a pull request the event closed (the example's [ci]
    // deploys none: its workflow has no pull_request trigger).
    let finish = wf["jobs"]["finish"]["steps"].as_sequence().unwrap();
    assert_eq!(
        finish.last().unwrap()["run"].as_str(),
        Some(
            "cargo xtask batch finish --from-ci && cargo xtask previews prune --from-ci --wait-lock 1800"
        )
    );

    // A copy whose graph changed: stale, named; `batch files` writes them; then up to date.
    let (repo, _) = example_repo();
    let at = |args: &[&str]| {
        let mut full = vec!["batch", "files", "--root", repo.path().to_str().unwrap()];
        full.extend_from_slice(args);
        run(&mut xtask(&full))
    };
    let (code, _, err) = at(&["--check"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("stale: buildspec-batch.yml (not there: never generated), .github/workflows/deploy.yml (not there: never generated)"),
        "{err}"
    );
    assert_eq!(at(&[]).0, 0);
    assert_eq!(at(&["--check"]).0, 0);
    std::fs::write(
        repo.path().join("buildspec-batch.yml"),
        std::fs::read_to_string(repo.path().join("buildspec-batch.yml")).unwrap() + "# edited\n",
    )
    .unwrap();
    let (code, _, err) = at(&["--check"]);
    assert_eq!(code, 1);
    assert!(err.contains("stale: buildspec-batch.yml (the"), "{err}");
}

/// `batch files` never writes through a symbolic link: a `.github` pointing out of the
/// repository is refused before either file is written.
#[test]
fn batch_files_never_write_through_a_link() {
    let (repo, _) = example_repo();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path().join(".github")).unwrap();
    let _ = std::fs::remove_file(repo.path().join("buildspec-batch.yml"));
    let (code, out, err) = run(&mut xtask(&[
        "batch",
        "files",
        "--root",
        repo.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(
            ".github is a symbolic link: `batch files` writes only files of the repository itself"
        ),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!repo.path().join("buildspec-batch.yml").exists());
    // --check writes nothing, and counts a linked file stale: CI does not follow it (GitHub
    // refuses a linked workflow file), however current what it leads to reads.
    let check = || {
        run(&mut xtask(&[
            "batch",
            "files",
            "--check",
            "--root",
            repo.path().to_str().unwrap(),
        ]))
    };
    let (code, _, err) = check();
    assert_eq!(code, 1);
    assert!(err.contains("stale: buildspec-batch.yml"), "{err}");
    std::fs::remove_file(repo.path().join(".github")).unwrap();
    assert_eq!(
        run(&mut xtask(&[
            "batch",
            "files",
            "--root",
            repo.path().to_str().unwrap()
        ]))
        .0,
        0
    );
    let workflow = repo.path().join(".github/workflows/deploy.yml");
    std::fs::rename(&workflow, repo.path().join("deploy.yml")).unwrap();
    std::os::unix::fs::symlink("../../deploy.yml", &workflow).unwrap();
    let (code, _, err) = check();
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "stale: .github/workflows/deploy.yml (a symbolic link, which CI does not follow)"
        ),
        "{err}"
    );
}

/// A reader that stops reading (`cargo xtask services | head -1`) is no failure: the command
/// goes on to its end quietly (a deploy must still write its release and free its lock), not
/// with a panic. Its exit says how the command went.
#[test]
fn a_closed_standard_output_ends_the_command_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    // Closed before the command writes anything.
    drop(reader);
    let out = xtask(&["graph"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The same for a JSON plan, written in one piece.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = xtask(&["plan", "dev", "--all", "--offline", "--format", "json"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Output that cannot be written for another reason (a full disk) fails the command once it
/// is done, saying so, without a panic.
#[test]
fn output_that_cannot_be_written_fails_the_command() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = xtask(&["graph"])
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("failed to write to stdout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
