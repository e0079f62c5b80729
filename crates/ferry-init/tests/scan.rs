//! `init` on a small lerna monorepo shaped like the ones it is for: Serverless services linked
//! by `Fn::ImportValue`, `${cf:…}` and `${file(…)}`, a shared workspace package, a SAM app and
//! a CloudFormation stack; what it writes loads and its templates pass Ferry's checks.

use std::fs;
use std::path::Path;

use ferry_init::{Existing, Runner, render, runner, scan, write};
use ferry_manifest::ServiceKind;

fn file(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// The `ferry.toml` among the files `render` writes.
fn ferry_toml(files: &[(String, String)]) -> &str {
    &files
        .iter()
        .find(|(p, _)| p == "ferry.toml")
        .expect("ferry.toml is written")
        .1
}

fn monorepo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "package.json",
        r#"{"name": "@acme/shop", "private": true, "workspaces": ["packages/*", "services/*"]}"#,
    );
    file(r, "package-lock.json", "{}");
    file(
        r,
        "lerna.json",
        r#"{"packages": ["packages/*", "services/*"], "version": "1.0.0"}"#,
    );
    file(
        r,
        "packages/common/package.json",
        r#"{"name": "@acme/common"}"#,
    );
    file(r, "packages/common/index.js", "module.exports = {};\n");
    file(r, "config/dev.yml", "table: orders\n");
    file(
        r,
        "services/orders/serverless.yml",
        r#"service: orders
provider:
  name: aws
  region: eu-west-1
functions:
  get:
    handler: handler.get
resources:
  Resources:
    Table:
      Type: AWS::DynamoDB::Table
  Outputs:
    TableName:
      Value: !Ref Table
      Export:
        Name: ${self:service}-${sls:stage}-TableName
"#,
    );
    file(
        r,
        "services/payments/serverless.yml",
        r#"service: payments
provider:
  name: aws
  region: eu-west-1
  environment:
    ORDERS_TABLE: !ImportValue orders-${sls:stage}-TableName
    ORDERS_ARN: ${cf:orders-${sls:stage}.TableArn}
    SETTINGS: ${file(../../config/${sls:stage}.yml):table}
    LEGACY: ${cf:billing-legacy-prod.Queue}
functions:
  pay:
    handler: handler.pay
"#,
    );
    file(
        r,
        "services/payments/package.json",
        r#"{"name": "@acme/payments", "dependencies": {"@acme/common": "1.0.0", "uuid": "9"}}"#,
    );
    file(
        r,
        "apps/Reports_SAM/template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nParameters:\n  Stage:\n    Type: String\n  Retention:\n    Type: Number\n    Default: 7\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.handler\n      Runtime: python3.12\n      Environment:\n        Variables:\n          TABLE:\n            Fn::ImportValue: !Sub \"orders-${Stage}-TableName\"\n",
    );
    file(
        r,
        "apps/Reports_SAM/src/app.py",
        "def handler(e, c): pass\n",
    );
    file(
        r,
        "infra/network/vpc.yml",
        "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n  CidrBlock:\n    Type: String\nResources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: !Ref CidrBlock\nOutputs:\n  VpcId:\n    Value: !Ref Vpc\n    Export:\n      Name: !Sub '${AWS::StackName}-VpcId'\n",
    );
    file(r, "infra/network/notes.yml", "just: yaml\n");
    file(
        r,
        "node_modules/some-lib/serverless.yml",
        "service: not-ours\n",
    );
    // Parts of services: resources a Serverless service includes, a SAM nested application.
    file(
        r,
        "services/orders/resources/table.yml",
        "Resources:\n  Table:\n    Type: AWS::DynamoDB::Table\n",
    );
    file(
        r,
        "apps/Reports_SAM/nested/app.yaml",
        "AWSTemplateFormatVersion: \"2010-09-09\"\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    dir
}

#[test]
fn a_lerna_monorepo_is_found_with_its_links_and_what_could_not_be_inferred() {
    let dir = monorepo();
    let s = scan(dir.path()).unwrap();
    assert_eq!(s.project, "shop");
    let found: Vec<(&str, &str, ServiceKind, &str)> = s
        .services
        .iter()
        .map(|f| (f.dir.as_str(), f.name.as_str(), f.kind, f.file.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "apps/Reports_SAM",
                "reports-sam",
                ServiceKind::Sam,
                "template.yaml"
            ),
            (
                "infra/network",
                "network",
                ServiceKind::Cloudformation,
                "vpc.yml"
            ),
            (
                "services/orders",
                "orders",
                ServiceKind::Serverless,
                "serverless.yml"
            ),
            (
                "services/payments",
                "payments",
                ServiceKind::Serverless,
                "serverless.yml"
            ),
        ],
        "node_modules is never searched"
    );
    let payments = &s.services[3];
    assert_eq!(payments.depends_on.keys().collect::<Vec<_>>(), ["orders"]);
    assert!(
        payments.depends_on["orders"].contains("imports `orders-${sls:stage}-TableName`"),
        "{:?}",
        payments.depends_on
    );
    assert_eq!(
        payments.inputs.keys().collect::<Vec<_>>(),
        ["config/**", "packages/common/**"]
    );
    let reports = &s.services[0];
    assert_eq!(
        reports.depends_on.keys().collect::<Vec<_>>(),
        ["orders"],
        "a !Sub import matches too"
    );
    assert_eq!(s.region(), "eu-west-1");
    let notes = s.notes.join("\n");
    assert!(notes.contains("billing-legacy-prod"), "{notes}");
    // Templates inside a Serverless or SAM service are parts of it, never services.
    for part in [
        "services/orders/resources/table.yml: a template inside the serverless service services/orders",
        "apps/Reports_SAM/nested/app.yaml: a template inside the sam service apps/Reports_SAM",
    ] {
        assert!(notes.contains(part), "{notes}");
    }

    // What it writes loads, and the templates pass the checks a deploy makes.
    let mut files = render(&s, dir.path());
    let (runner_files, runner_notes) = runner(dir.path(), &Runner::Path("../ferry".into()));
    files.extend(runner_files);
    let written = write(dir.path(), &files, Existing::Refuse).unwrap();
    assert!(written.written.contains(&"ferry.toml".to_string()));
    assert!(
        runner_notes.iter().any(|n| n.contains(".gitignore")),
        "{runner_notes:?}"
    );
    let ws = ferry_manifest::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ws.services.len(), 4);
    assert_eq!(
        ws.service("payments")
            .unwrap()
            .dependencies()
            .into_iter()
            .collect::<Vec<_>>(),
        ["orders"]
    );
    let problems = ferry_package::check_templates(&ws, &ws.services);
    assert!(problems.is_empty(), "{problems:?}");
    let network = fs::read_to_string(dir.path().join("infra/network/service.toml")).unwrap();
    assert!(network.contains("template = \"vpc.yml\""), "{network}");
    assert!(network.contains("CidrBlock = \"\""), "{network}");
    let reports = fs::read_to_string(dir.path().join("apps/Reports_SAM/service.toml")).unwrap();
    assert!(reports.contains("Stage = \"${stage}\""), "{reports}");
    assert!(!reports.contains("Retention"), "has a default: {reports}");
    let xtask = fs::read_to_string(dir.path().join("xtask/Cargo.toml")).unwrap();
    assert!(
        // `../ferry` is relative to the repository, as --ferry-path says; Cargo reads the path
        // from xtask/, one folder down.
        xtask.contains("ferry-cli = { path = \"../../ferry/crates/ferry-cli\" }"),
        "{xtask}"
    );

    // A second run changes nothing without --force.
    let e = write(dir.path(), &files, Existing::Refuse)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ferry.toml exists; `init` never overwrites a file (--force does; --only-missing writes only the files not there yet"),
        "{e}"
    );
    assert!(write(dir.path(), &files, Existing::Overwrite).is_ok());

    // A service added since, in a repository whose service.toml files were filled in by hand:
    // only what is missing is written (before, only --force went on, over every edit).
    let network_toml = dir.path().join("infra/network/service.toml");
    let edited = network.replace("CidrBlock = \"\"", "CidrBlock = \"10.1.0.0/16\"");
    fs::write(&network_toml, &edited).unwrap();
    file(
        dir.path(),
        "infra/dns/template.yaml",
        "Resources:\n  Z:\n    Type: AWS::Route53::HostedZone\n    Properties:\n      Name: example.com\n",
    );
    let s = scan(dir.path()).unwrap();
    let again = render(&s, dir.path());
    let done = ferry_init::write(dir.path(), &again, ferry_init::Existing::Keep).unwrap();
    assert_eq!(done.written, ["infra/dns/service.toml"], "{done:?}");
    assert!(done.kept.iter().any(|k| k == "ferry.toml"), "{done:?}");
    assert!(
        done.kept.iter().any(|k| k == "infra/network/service.toml"),
        "{done:?}"
    );
    assert_eq!(fs::read_to_string(&network_toml).unwrap(), edited);
    let ws = ferry_manifest::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(ws.service("dns").is_some());
}

#[test]
fn workspace_packages_are_inputs_to_the_end_of_their_chain() {
    // api → @x/a → @x/b (and b's peer @x/c); a SAM function folder's own package.json names
    // @x/d; @x/e is only a library's devDependency (not installed with it); @x/svc is another
    // service: its folder is its own.
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "package.json",
        r#"{"private": true, "workspaces": ["packages/*", "services/*", "services/sam/fn"]}"#,
    );
    file(
        r,
        "services/api/package.json",
        r#"{"name": "api", "dependencies": {"@x/a": "*", "@x/svc": "*", "left-pad": "1", "common": "file:../../libs/common", "far": "file:../../../far"}}"#,
    );
    file(
        r,
        "services/api/serverless.yml",
        "service: api\nprovider:\n  name: aws\nfunctions:\n  h:\n    handler: h.h\n",
    );
    file(
        r,
        "packages/a/package.json",
        r#"{"name": "@x/a", "dependencies": {"@x/b": "*"}, "devDependencies": {"@x/e": "*"}}"#,
    );
    file(
        r,
        "packages/b/package.json",
        r#"{"name": "@x/b", "peerDependencies": {"@x/c": "*"}, "dependencies": {"@x/a": "*"}}"#,
    );
    file(r, "packages/c/package.json", r#"{"name": "@x/c"}"#);
    // Not a workspace member: a local path, whose own dependency is a tarball beside it.
    file(
        r,
        "libs/common/package.json",
        r#"{"name": "common", "dependencies": {"vendored": "file:./vendor/v-1.0.0.tgz"}}"#,
    );
    file(r, "libs/common/vendor/v-1.0.0.tgz", "tgz");
    // A build's copy of the package in its output folder is not what the service builds from.
    file(
        r,
        "services/api/dist/package.json",
        r#"{"name": "api", "dependencies": {"other": "file:../../../libs/other"}}"#,
    );
    file(r, "libs/other/package.json", r#"{"name": "other"}"#);
    file(r, "packages/d/package.json", r#"{"name": "@x/d"}"#);
    file(r, "packages/e/package.json", r#"{"name": "@x/e"}"#);
    file(
        r,
        "services/svc/package.json",
        r#"{"name": "@x/svc", "dependencies": {"@x/e": "*"}}"#,
    );
    file(
        r,
        "services/svc/serverless.yml",
        "service: svc\nprovider:\n  name: aws\nfunctions:\n  h:\n    handler: h.h\n",
    );
    file(
        r,
        "services/sam/template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: fn/\n      Handler: index.handler\n      Runtime: nodejs20.x\n",
    );
    file(
        r,
        "services/sam/fn/package.json",
        r#"{"name": "sam-fn", "dependencies": {"@x/d": "*"}}"#,
    );
    file(
        r,
        "services/sam/fn/index.js",
        "exports.handler = async () => ({});\n",
    );
    file(
        r,
        "services/sam/fn/node_modules/junk/package.json",
        r#"{"name": "junk", "dependencies": {"@x/e": "*"}}"#,
    );

    let s = scan(r).unwrap();
    let inputs = |dir: &str| {
        s.services
            .iter()
            .find(|f| f.dir == dir)
            .unwrap_or_else(|| panic!("{dir} found"))
            .inputs
            .clone()
    };
    let api = inputs("services/api");
    assert_eq!(
        api.keys().collect::<Vec<_>>(),
        [
            "libs/common/**",
            "packages/a/**",
            "packages/b/**",
            "packages/c/**"
        ],
        "{api:?}"
    );
    assert_eq!(
        api["libs/common/**"],
        "depends on `common` (`file:../../libs/common`)"
    );
    assert!(
        s.notes.iter().any(|n| n
            == "services/api: services/api/package.json names `file:../../../far`, outside the repository: Ferry cannot see its changes"),
        "{:?}",
        s.notes
    );
    assert_eq!(
        api["packages/b/**"],
        "depends on the workspace package `@x/b` (through `@x/a`)"
    );
    assert_eq!(
        api["packages/c/**"],
        "depends on the workspace package `@x/c` (through `@x/b`)"
    );
    assert_eq!(
        inputs("services/sam").keys().collect::<Vec<_>>(),
        ["packages/d/**"],
        "a function folder's own package.json; installed packages are not read"
    );
    assert_eq!(
        inputs("services/svc").keys().collect::<Vec<_>>(),
        ["packages/e/**"]
    );
    // Three services in services/: one pattern, so that a new one there needs no edit of
    // ferry.toml (a global input: an edit redeploys everything).
    let files = render(&s, r);
    let project = ferry_toml(&files);
    assert!(
        project.contains("\nservices = [\"services/*\"]\n"),
        "{project}"
    );
}

#[test]
fn rust_and_python_code_a_service_builds_from_outside_its_folder_are_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = |code: &str, runtime: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {code}\n      Handler: bootstrap\n      Runtime: {runtime}\n"
        )
    };
    // A Cargo workspace: the function's crate takes `common` from the workspace's table, which
    // takes `model` by path; a dev-dependency is no part of a deploy; a target's is.
    file(
        r,
        "Cargo.toml",
        "[workspace]\nmembers = [\"services/*/fn\", \"libs/*\"]\n\n[workspace.dependencies]\ncommon = { path = \"libs/common\" }\n\n[patch.crates-io]\nserde = { path = \"vendor/serde\" }\n",
    );
    file(r, "Cargo.lock", "version = 4\n");
    file(
        r,
        "services/orders/template.yaml",
        &sam("fn/", "provided.al2023"),
    );
    file(
        r,
        "services/orders/fn/Cargo.toml",
        "[package]\nname = \"orders-fn\"\n\n[dependencies]\ncommon = { workspace = true }\nserde = \"1\"\noutside = { path = \"../../../../elsewhere\" }\n\n[dev-dependencies]\ntestkit = { path = \"../../../libs/testkit\" }\n\n[target.'cfg(unix)'.dependencies]\nunixy = { path = \"../../../libs/unixy\" }\n",
    );
    file(r, "services/orders/fn/src/main.rs", "fn main() {}\n");
    file(
        r,
        "libs/common/Cargo.toml",
        "[package]\nname = \"common\"\n\n[dependencies]\nmodel = { path = \"../model\" }\n",
    );
    file(
        r,
        "libs/model/Cargo.toml",
        "[package]\nname = \"model\"\n\n[dependencies]\ncommon = { path = \"../common\" }\n",
    );
    for lib in ["testkit", "unixy"] {
        file(
            r,
            &format!("libs/{lib}/Cargo.toml"),
            "[package]\nname = \"x\"\n",
        );
    }
    file(r, "libs/broken/Cargo.toml", "[package\n");
    file(
        r,
        "vendor/serde/Cargo.toml",
        "[package]\nname = \"serde\"\n",
    );

    // pip: an editable path, one from an included file; Poetry's path dependency of that.
    file(
        r,
        "services/billing/serverless.yml",
        "service: billing\nprovider:\n  name: aws\n  runtime: python3.12\nfunctions:\n  h:\n    handler: h.h\n",
    );
    file(
        r,
        "services/billing/requirements.txt",
        "requests==2.32.0\n-e ../../libs/pycommon  # shared code\n-r reqs/extra.txt\n--index-url https://example.com/simple\n../../../../x\n",
    );
    file(
        r,
        "services/billing/reqs/extra.txt",
        // pip takes an included file's paths from where it runs (the top file's folder).
        "../../libs/pyextra\n-e ../../libs/pyegg#egg=pyegg\ngit+https://example.com/x.git#egg=x\n",
    );
    file(
        r,
        "libs/pyegg/setup.py",
        "from setuptools import setup\nsetup()\n",
    );
    // A function folder's requirements written for a build run from the service folder
    // (`make -C services/billing`): taken from where the path is in the repository.
    file(
        r,
        "services/billing/fn/requirements.txt",
        "../../libs/pyfromservice\n",
    );
    file(
        r,
        "libs/pyfromservice/setup.py",
        "from setuptools import setup\nsetup()\n",
    );
    file(
        r,
        "libs/pycommon/pyproject.toml",
        "[project]\nname = \"pycommon\"\n\n[tool.poetry.dependencies]\npython = \"^3.12\"\ndeep = { path = \"../pydeep\", develop = true }\n",
    );
    file(
        r,
        "libs/pydeep/pyproject.toml",
        "[project]\nname = \"deep\"\n",
    );
    file(
        r,
        "libs/pyextra/setup.py",
        "from setuptools import setup\nsetup()\n",
    );

    // A uv workspace: the function's project takes a member by name (normalized).
    file(
        r,
        "pyproject.toml",
        "[tool.uv.workspace]\nmembers = [\"services/*/app\", \"libs/py/*\"]\n\n[tool.uv.sources]\nshared-utils = { workspace = true }\n",
    );
    file(r, "uv.lock", "version = 1\n");
    file(
        r,
        "services/reports/template.yaml",
        &sam("app/", "python3.12"),
    );
    file(
        r,
        "services/reports/app/pyproject.toml",
        "[project]\nname = \"reports\"\ndependencies = [\"shared-utils\"]\n",
    );
    file(r, "services/reports/app/tools/pyproject.toml", "[project\n");
    file(
        r,
        "libs/py/shared_utils/pyproject.toml",
        "[project]\nname = \"Shared_Utils\"\n",
    );

    let s = scan(r).unwrap();
    let inputs = |dir: &str| {
        s.services
            .iter()
            .find(|f| f.dir == dir)
            .unwrap_or_else(|| panic!("{dir} found"))
            .inputs
            .clone()
    };
    let orders = inputs("services/orders");
    assert_eq!(
        orders.keys().collect::<Vec<_>>(),
        [
            "Cargo.lock",
            "Cargo.toml",
            "libs/common/**",
            "libs/model/**",
            "libs/unixy/**",
            "vendor/serde/**"
        ],
        "{orders:?}"
    );
    assert_eq!(
        orders["libs/model/**"],
        "builds the crate `model` (a path dependency) (through `common`)"
    );
    assert!(orders["Cargo.lock"].contains("read as a lock file"));

    let billing = inputs("services/billing");
    assert_eq!(
        billing.keys().collect::<Vec<_>>(),
        [
            "libs/pycommon/**",
            "libs/pydeep/**",
            "libs/pyegg/**",
            "libs/pyextra/**",
            "libs/pyfromservice/**"
        ],
        "{billing:?}"
    );
    assert_eq!(
        billing["libs/pydeep/**"],
        "installs `deep` (a path dependency) (through `../../libs/pycommon`)"
    );

    let reports = inputs("services/reports");
    assert_eq!(
        reports.keys().collect::<Vec<_>>(),
        ["libs/py/shared_utils/**", "uv.lock"],
        "{reports:?}"
    );
    // What could not be followed is said.
    let notes = s.notes.join("\n");
    assert!(
        notes.contains("services/orders: services/orders/fn/Cargo.toml names `../../../../elsewhere`, outside the repository: Ferry cannot see its changes"),
        "{notes}"
    );
    assert!(
        notes.contains("services/billing: services/billing/requirements.txt names `../../../../x`, outside the repository"),
        "{notes}"
    );
    assert!(
        notes
            .contains("services/reports: services/reports/app/tools/pyproject.toml does not parse"),
        "{notes}"
    );
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ws.service("orders").unwrap().inputs,
        [
            "Cargo.lock",
            "Cargo.toml",
            "libs/common/**",
            "libs/model/**",
            "libs/unixy/**",
            "vendor/serde/**"
        ]
    );
}

#[test]
fn go_modules_and_dotnet_projects_a_service_builds_from_outside_its_folder_are_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = |code: &str, runtime: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {code}\n      Handler: bootstrap\n      Runtime: {runtime}\n"
        )
    };
    // Go: a module the go.work uses, which replaces one of its own; one the service replaces.
    file(
        r,
        "go.work",
        "go 1.22\n\nuse (\n\t./services/users/fn\n\t./libs/goshared // shared\n)\n",
    );
    file(
        r,
        "services/users/template.yaml",
        &sam("fn/", "provided.al2023"),
    );
    file(
        r,
        "services/users/fn/go.mod",
        "module example.com/users\n\ngo 1.22\n\nrequire (\n\texample.com/goshared v0.0.0\n\texample.com/replaced v0.0.0 // indirect\n\tgithub.com/aws/aws-lambda-go v1.47.0\n)\n\nreplace example.com/replaced => ../../../libs/replaced\nreplace example.com/far => ../../../../far\nrequire example.com/far v0.0.0\nreplace example.com/root => ../../..\nrequire example.com/root v0.0.0\n",
    );
    file(r, "services/users/fn/main.go", "package main\n");
    file(
        r,
        "libs/goshared/go.mod",
        "module example.com/goshared\n\nrequire example.com/deep v0.0.0\n\nreplace example.com/deep v0.0.0 => ../deep\n",
    );
    file(r, "libs/deep/go.mod", "module example.com/deep\n");
    file(r, "libs/replaced/go.mod", "module example.com/replaced\n");

    // .NET: a project reference written Windows-style, its own reference, central versions.
    file(r, "Directory.Packages.props", "<Project />\n");
    file(
        r,
        "services/payments/template.yaml",
        &sam("src/Payments/", "dotnet8"),
    );
    file(
        r,
        "services/payments/src/Payments/Payments.csproj",
        "<Project Sdk=\"Microsoft.NET.Sdk\">\n  <ItemGroup>\n    <ProjectReference Include=\"..\\..\\..\\..\\libs\\Core\\Core.csproj\" />\n    <!-- <ProjectReference Include=\"..\\..\\..\\..\\libs\\Old\\Old.csproj\" /> -->\n    <ProjectReference Include = \"../../../../libs/Spaced/Spaced.csproj\" />\n    <ProjectReference Include=\"$(SolutionDir)libs\\Props\\Props.csproj\" />\n  </ItemGroup>\n</Project>\n",
    );
    file(
        r,
        "services/payments/src/Payments/bin/Release/Copy.csproj",
        "<ProjectReference Include=\"../../../../../../libs/Stale/Stale.csproj\" />\n",
    );
    file(
        r,
        "libs/Core/Core.csproj",
        "<Project>\n  <ItemGroup><ProjectReference Include='../Model/Model.fsproj'/></ItemGroup>\n</Project>\n",
    );
    file(r, "libs/Model/Model.fsproj", "<Project />\n");
    file(r, "libs/Stale/Stale.csproj", "<Project />\n");
    file(r, "libs/Old/Old.csproj", "<Project />\n");
    file(r, "libs/Spaced/Spaced.csproj", "<Project />\n");

    let s = scan(r).unwrap();
    let inputs = |dir: &str| {
        s.services
            .iter()
            .find(|f| f.dir == dir)
            .unwrap_or_else(|| panic!("{dir} found"))
            .inputs
            .clone()
    };
    let users = inputs("services/users");
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        [
            "go.work",
            "libs/deep/**",
            "libs/goshared/**",
            "libs/replaced/**"
        ],
        "{users:?}"
    );
    assert_eq!(
        users["libs/deep/**"],
        "builds the module `example.com/deep` (replaced by `../deep`) (through `example.com/goshared`)"
    );
    assert_eq!(
        users["libs/goshared/**"],
        "builds the module `example.com/goshared` (used by go.work)"
    );
    let payments = inputs("services/payments");
    assert_eq!(
        payments.keys().collect::<Vec<_>>(),
        [
            "Directory.Packages.props",
            "libs/Core/**",
            "libs/Model/**",
            "libs/Spaced/**"
        ],
        "{payments:?}"
    );
    assert_eq!(
        payments["libs/Model/**"],
        "references the project `Model.fsproj` (through `Core.csproj`)"
    );
    let notes = s.notes.join("\n");
    assert!(
        notes.contains("services/users: services/users/fn/go.mod names `../../../../far`, outside the repository"),
        "{notes}"
    );
    // The root itself is no input (every change would deploy it): said, not written as `/**`.
    assert!(
        notes.contains("services/users: builds the module `example.com/root` (replaced by `../../..`) at the root of the repository"),
        "{notes}"
    );
    assert!(!users.keys().any(|k| k.starts_with('/')), "{users:?}");
    assert!(
        notes.contains("a path built from MSBuild properties that Ferry does not evaluate"),
        "{notes}"
    );
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_folder_with_another_tool_s_service_toml_keeps_the_services_listed_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for name in ["a", "b"] {
        file(
            r,
            &format!("services/{name}/template.yaml"),
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        );
    }
    // Not a Ferry manifest: a `services/*` pattern would load it as one.
    file(
        r,
        "services/tool/service.toml",
        "[unit]\nname = \"daemon\"\n",
    );
    let s = scan(r).unwrap();
    let files = render(&s, r);
    let project = ferry_toml(&files);
    assert!(
        project.contains("\nservices = [\"services/a\", \"services/b\"]\n"),
        "{project}"
    );
}

#[test]
fn top_level_service_folders_are_one_pattern_too() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for name in ["orders", "payment"] {
        file(
            r,
            &format!("{name}/template.yaml"),
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        );
    }
    file(
        r,
        "layers/sdk/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let s = scan(r).unwrap();
    let files = render(&s, r);
    let project = ferry_toml(&files);
    assert!(
        project.contains("\nservices = [\"layers/*\", \"*\"]\n")
            || project.contains("\nservices = [\"*\", \"layers/*\"]\n"),
        "{project}"
    );
    write(r, &files, Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ws.services.len(), 3);
}

#[test]
fn a_short_service_name_read_by_cf_links_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "services/ui/serverless.yml",
        "service: ui\nprovider:\n  name: aws\nresources:\n  Outputs:\n    S3BucketName:\n      Value: b\n",
    );
    file(
        r,
        "services/app/serverless.yml",
        "service: app\nprovider:\n  name: aws\n  environment:\n    BUCKET: ${cf:ui-${self:custom.stage}.S3BucketName}\ncustom:\n  stage: ${sls:stage}\nfunctions:\n  h:\n    handler: h.h\n",
    );
    let s = scan(r).unwrap();
    let app = s.services.iter().find(|f| f.name == "app").unwrap();
    assert_eq!(
        app.depends_on.keys().collect::<Vec<_>>(),
        ["ui"],
        "{:?}",
        s.notes
    );
}

// A Serverless service reading a CloudFormation service's stack, named by its deploy script
// (or Ferry's default): linked too. Before, only Serverless stacks were matched, and the reader
// deployed beside the stack it reads, racing it, and kept its old outputs afterwards.
#[test]
fn a_cf_read_of_a_cloudformation_services_stack_links_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "infra/queue/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueUrl:\n    Value: !Ref Q\n",
    );
    file(
        r,
        "infra/queue/deploy.sh",
        "aws cloudformation deploy --template-file template.yaml --stack-name shop-queue-$STAGE\n",
    );
    file(
        r,
        "infra/topic/template.yaml",
        "Resources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  TopicArn:\n    Value: !Ref T\n",
    );
    file(
        r,
        "services/auth/serverless.yml",
        "service: auth\nprovider:\n  name: aws\n  environment:\n    QUEUE: ${cf:shop-queue-${sls:stage}.QueueUrl}\n    TOPIC: ${cf:topic-${sls:stage}.TopicArn}\nfunctions:\n  h:\n    handler: h.h\n",
    );
    let s = scan(r).unwrap();
    let auth = s.services.iter().find(|f| f.name == "auth").unwrap();
    assert_eq!(
        auth.depends_on.keys().collect::<Vec<_>>(),
        ["queue", "topic"],
        "{:?}",
        s.notes
    );
    assert!(
        auth.depends_on["queue"].contains(
            "reads outputs of stack `shop-queue-${sls:stage}` (${cf:…}), the stack of queue"
        ),
        "{:?}",
        auth.depends_on
    );
}

// The framework merges a `resources` list: an export in any of its fragments, inline or read
// with `${file(…)}`, links its importers (before, only a mapping was read, and the importer
// landed in the exporter's wave, failing its first deploy on an export not there yet).
#[test]
fn exports_in_a_list_of_resources_fragments_link_their_importers() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "services/notes/serverless.yml",
        "service: notes\nprovider:\n  name: aws\ncustom:\n  stage: ${opt:stage, 'dev'}\nresources:\n  - ${file(resources/api.yml)}\n  - ${file(resources/${self:custom.stage}.yml)}\n  - Outputs:\n      ApiId:\n        Value: x\n        Export:\n          Name: ${self:custom.stage}-ExtApiGatewayRestApiId\n",
    );
    file(
        r,
        "services/notes/resources/api.yml",
        "Resources:\n  Bus:\n    Type: AWS::Events::EventBus\n    Properties:\n      Name: notes\nOutputs:\n  BusName:\n    Value: notes\n    Export:\n      Name: notes-bus-${self:custom.stage}\n",
    );
    file(
        r,
        "services/billing/serverless.yml",
        "service: billing\nprovider:\n  name: aws\ncustom:\n  stage: ${opt:stage, 'dev'}\nresources:\n  Resources:\n    P:\n      Type: AWS::ApiGateway::Resource\n      Properties:\n        RestApiId:\n          Fn::ImportValue: ${self:custom.stage}-ExtApiGatewayRestApiId\n",
    );
    // The import sits in a fragment read from a file, the export in an inline one.
    file(
        r,
        "services/audit/serverless.yml",
        "service: audit\nprovider:\n  name: aws\nresources:\n  - ${file(rules.yml):Main}\n",
    );
    file(
        r,
        "services/audit/rules.yml",
        "Main:\n  Resources:\n    Rule:\n      Type: AWS::Events::Rule\n      Properties:\n        EventBusName: !ImportValue notes-bus-${self:custom.stage}\n",
    );
    let s = scan(r).unwrap();
    let deps = |name: &str| {
        let f = s.services.iter().find(|f| f.name == name).unwrap();
        f.depends_on.keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(deps("billing"), ["notes"], "{:?}", s.notes);
    assert_eq!(deps("audit"), ["notes"], "{:?}", s.notes);
    assert!(deps("notes").is_empty(), "{:?}", s.notes);
}

// serverless-offline's `provider.region: localhost` is no region: taking it made every stage's
// region one that `validate` refuses.
#[test]
fn a_region_that_is_no_aws_region_is_noted_and_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for name in ["a", "b"] {
        file(
            r,
            &format!("services/{name}/serverless.yml"),
            &format!("service: {name}\nprovider:\n  name: aws\n  region: localhost\n"),
        );
    }
    file(
        r,
        "services/c/serverless.yml",
        "service: c\nprovider:\n  name: aws\n  region: eu-west-1\n",
    );
    let s = scan(r).unwrap();
    assert_eq!(s.region(), "eu-west-1", "{:?}", s.notes);
    assert!(
        s.notes.iter().any(|n| n
            == "services/a/serverless.yml: names region `localhost`, which is no AWS region name (a local emulator's?): not taken as the stages' region"),
        "{:?}",
        s.notes
    );
    let files = render(&s, r);
    assert!(ferry_toml(&files).contains("region = \"eu-west-1\""));
}

// Services that take the framework's CLI and plugins from a package.json above them (no
// package.json of their own) get one note naming it: a fresh clone must install it first.
#[test]
fn services_whose_cli_comes_from_a_package_json_above_are_noted_once() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "package.json",
        r#"{"private": true, "devDependencies": {"osls": "^3.51.0", "serverless-bundle": "^6.0.0"}}"#,
    );
    for name in ["a", "b"] {
        file(
            r,
            &format!("services/{name}/serverless.yml"),
            &format!("service: {name}\nprovider:\n  name: aws\nplugins:\n  - serverless-bundle\n"),
        );
    }
    // One with a package.json of its own that names its plugins installs its own.
    file(
        r,
        "services/c/serverless.yml",
        "service: c\nprovider:\n  name: aws\nplugins:\n  modules:\n    - serverless-bundle\n",
    );
    file(
        r,
        "services/c/package.json",
        r#"{"devDependencies": {"osls": "^3.51.0", "serverless-bundle": "^6.0.0"}}"#,
    );
    // One whose own package.json (its runtime's dependencies) does not name its plugin takes
    // it from above too, which its build does not install: noted (before, its build comment
    // said that its build installs the plugins).
    file(
        r,
        "services/d/serverless.yml",
        "service: d\nprovider:\n  name: aws\nplugins:\n  - serverless-bundle\n  - ${self:custom.more}\n  - ./local-plugin\n  - serverless-prune-plugin\n",
    );
    file(
        r,
        "services/d/package.json",
        r#"{"dependencies": {"uuid": "^9.0.0"}}"#,
    );
    // One whose own package.json names its plugins but no CLI finds the CLI above (a probe's
    // serverless-compose-ts: the root's `serverless`, which its build does not install; before,
    // said nowhere).
    file(
        r,
        "services/e/serverless.yml",
        "service: e\nprovider:\n  name: aws\nplugins:\n  - serverless-bundle\n",
    );
    file(
        r,
        "services/e/package.json",
        r#"{"devDependencies": {"serverless-bundle": "^6.0.0"}}"#,
    );
    let s = scan(r).unwrap();
    let said: Vec<&String> = s
        .notes
        .iter()
        .filter(|n| {
            n.contains("come from `package.json`") || n.contains("comes from `package.json`")
        })
        .collect();
    assert_eq!(
        said,
        [
            "services/a, services/b: no package.json of their own; their framework CLI and plugins come from `package.json`: install its dependencies there (`npm ci`, `yarn install --frozen-lockfile` or `pnpm install --frozen-lockfile`, by its lock file) before a deploy compiles them, e.g. in buildspec.yml's install phase (`package.json` is among their inputs, so that an upgrade there deploys them)",
            "services/e: their own package.json (which their build installs) does not name a framework CLI, which comes from `package.json`: install its dependencies there (`npm ci`, `yarn install --frozen-lockfile` or `pnpm install --frozen-lockfile`, by its lock file) before a deploy compiles them, e.g. in buildspec.yml's install phase (`package.json` is among their inputs, so that an upgrade there deploys them)",
            "services/d: their own package.json (which their build installs) does not name a framework CLI nor the plugins serverless-bundle, which come from `package.json`: install its dependencies there (`npm ci`, `yarn install --frozen-lockfile` or `pnpm install --frozen-lockfile`, by its lock file) before a deploy compiles them, e.g. in buildspec.yml's install phase (`package.json` is among their inputs, so that an upgrade there deploys them)",
        ],
        "{:?}",
        s.notes
    );
    // With no lock file, the package.json says what installs: an upgrade of the CLI or a
    // plugin there changes what they compile, so it is theirs (before, nothing deployed them).
    let inputs = |s: &ferry_init::Scan, dir: &str| -> Vec<String> {
        let found = s.services.iter().find(|f| f.dir == dir).unwrap();
        found.inputs.keys().cloned().collect()
    };
    assert_eq!(inputs(&s, "services/a"), ["package.json"]);
    assert_eq!(inputs(&s, "services/b"), ["package.json"]);
    assert_eq!(inputs(&s, "services/c"), Vec::<String>::new());
    assert_eq!(inputs(&s, "services/d"), ["package.json"]);
    assert_eq!(inputs(&s, "services/e"), ["package.json"]);
    // A plugin no package.json installs, its own or one above: noted (a path is no package).
    let nowhere: Vec<&String> = s
        .notes
        .iter()
        .filter(|n| n.contains("which no package.json installs"))
        .collect();
    assert_eq!(
        nowhere,
        [
            "services/d/serverless.yml: loads the plugins serverless-prune-plugin, which no package.json installs (not its own, not one above it): add them to its package.json (`npm install --save-dev serverless-prune-plugin`), else its compile stops with the framework's \"plugin not found\""
        ],
        "{:?}",
        s.notes
    );
    // A lock file at the root is a global input: nothing more is theirs.
    file(r, "package-lock.json", "{}\n");
    let s = scan(r).unwrap();
    assert_eq!(inputs(&s, "services/a"), Vec::<String>::new());
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("(`package-lock.json` is a global input, so that")),
        "{:?}",
        s.notes
    );
    let written = render(&s, r);
    let project = &written.iter().find(|(p, _)| p == "ferry.toml").unwrap().1;
    assert!(
        project.contains("global-inputs = [\"ferry.toml\", \"package-lock.json\"]"),
        "{project}"
    );
    // A package.json of a folder above with its lock file: the lock file is theirs.
    fs::remove_file(r.join("package-lock.json")).unwrap();
    fs::rename(r.join("package.json"), r.join("services/package.json")).unwrap();
    file(r, "services/yarn.lock", "# yarn lockfile v1\n");
    let s = scan(r).unwrap();
    assert_eq!(inputs(&s, "services/a"), ["services/yarn.lock"]);
    assert_eq!(inputs(&s, "services/b"), ["services/yarn.lock"]);
}

// validate says so of a configuration written before: the CLI and plugins a Serverless service
// installs from a package.json above it, which none of its inputs covers.
#[test]
fn validate_names_the_lock_file_above_a_serverless_service_that_its_inputs_lack() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "services/package.json",
        r#"{"private": true, "devDependencies": {"osls": "^3.51.0", "serverless-esbuild": "^1.0.0"}}"#,
    );
    file(r, "services/package-lock.json", "{}\n");
    file(
        r,
        "services/a/serverless.yml",
        "service: a\nprovider:\n  name: aws\nplugins:\n  - serverless-esbuild\n",
    );
    file(
        r,
        "services/a/service.toml",
        "[service]\nkind = \"serverless\"\n",
    );
    // One with a package.json of its own installs its own.
    file(
        r,
        "services/b/serverless.yml",
        "service: b\nprovider:\n  name: aws\n",
    );
    file(
        r,
        "services/b/package.json",
        r#"{"devDependencies": {"osls": "^3.51.0"}}"#,
    );
    file(
        r,
        "services/b/service.toml",
        "[service]\nkind = \"serverless\"\n",
    );
    let project = "[project]\nname = \"shop\"\nservices = [\"services/*\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n";
    file(r, "ferry.toml", project);
    let ws = ferry_manifest::load(r).unwrap();
    let found: Vec<String> = ferry_init::undeclared_inputs(&ws, &|_| false)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "a: its framework CLI and plugins install from `services/package.json`, but services/package-lock.json is none of its inputs nor a global input: a change there would not deploy it; add `services/package-lock.json` to `inputs` in its service.toml"
        ]
    );
    // Declared: nothing to say.
    file(
        r,
        "services/a/service.toml",
        "[service]\nkind = \"serverless\"\ninputs = [\"services/package-lock.json\"]\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    assert_eq!(ferry_init::undeclared_inputs(&ws, &|_| false), []);
}

// Settings shared between Serverless services, read with `${file(../../cfg/common.yml)}`, are
// written into the compile: a file of them no input covers is named by validate (before:
// nothing said it, a change there deployed nothing, and `deploy --all` reused the old compile).
#[test]
fn a_serverless_file_read_outside_the_folder_must_be_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(r, "cfg/common.yml", "memory: 256\n");
    file(r, "cfg/dev/extra.yml", "x: 1\n");
    file(
        r,
        "services/fn/serverless.yml",
        "service: fn\nprovider:\n  name: aws\n  memorySize: ${file(../../cfg/common.yml):memory}\ncustom: ${file(../../cfg/${sls:stage}/extra.yml)}\nfunctions:\n  h:\n    handler: h.h\n    timeout: ${file(./local.yml):t}\n",
    );
    // Read through a file of its own, relative to its folder as the framework reads it.
    file(
        r,
        "services/fn/local.yml",
        "t: 3\nd: ${file(../../cfg/deep.yml):x}\n",
    );
    file(r, "cfg/deep.yml", "x: 1\n");
    file(
        r,
        "services/fn/service.toml",
        "[service]\nkind = \"serverless\"\n",
    );
    let project = "[project]\nname = \"shop\"\nservices = [\"services/*\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n";
    file(r, "ferry.toml", project);
    let ws = ferry_manifest::load(r).unwrap();
    let found: Vec<String> = ferry_init::undeclared_inputs(&ws, &|_| false)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "fn: reads `../../cfg/common.yml` (${file(…)}), but cfg/common.yml is none of its inputs nor a global input: a change there would not deploy it; add `cfg/common.yml` to `inputs` in its service.toml",
            "fn: reads `../../cfg/${sls:stage}/extra.yml` (${file(…)}), but cfg/dev/extra.yml is none of its inputs nor a global input: a change there would not deploy it; add `cfg/**` to `inputs` in its service.toml",
            "fn: reads `../../cfg/deep.yml` (${file(…)}), but cfg/deep.yml is none of its inputs nor a global input: a change there would not deploy it; add `cfg/deep.yml` to `inputs` in its service.toml",
        ]
    );
    file(
        r,
        "services/fn/service.toml",
        "[service]\nkind = \"serverless\"\ninputs = [\"cfg/**\"]\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    assert_eq!(ferry_init::undeclared_inputs(&ws, &|_| false), []);
}

// Code a bundler takes into a service's archive from outside its folder, by a relative import
// (serverless-bundle, esbuild), is an input: before, a change to `libs/` deployed nothing.
#[test]
fn code_a_service_imports_by_a_relative_path_from_outside_its_folder_is_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for name in ["notes", "billing"] {
        file(
            r,
            &format!("services/{name}/serverless.yml"),
            &format!(
                "service: {name}\nprovider:\n  name: aws\nfunctions:\n  h:\n    handler: handler.main\n"
            ),
        );
    }
    file(
        r,
        "services/notes/handler.js",
        "// don't look: './not/an/import'\nimport handler from \"../../libs/handler-lib\";\nimport config from '../../config';\nconst local = require('./local');\nconst other = require(\"../billing/internal\");\nexport const main = handler(async () => config.x);\n",
    );
    file(r, "services/notes/local.js", "module.exports = {};\n");
    // A TypeScript service: an ESM import written `.js` is its `.ts` file, and a folder's index.
    file(
        r,
        "services/billing/handler.ts",
        "import { shared } from '../shared.js';\nexport { charge } from \"../../packages/pay\";\nconst m = await import('../../../outside.js');\n",
    );
    file(r, "services/billing/internal.ts", "export const x = 1;\n");
    file(r, "services/shared.ts", "export const shared = 1;\n");
    file(
        r,
        "packages/pay/index.ts",
        "export { charge } from '../../tools/charge';\n",
    );
    file(r, "tools/charge.ts", "export const charge = 1;\n");
    // A library that imports its neighbour, and the root-level config.
    file(
        r,
        "libs/handler-lib.js",
        "import db from './dynamodb-lib';\nexport default (f) => f;\n",
    );
    file(r, "libs/dynamodb-lib.js", "export default {};\n");
    file(r, "config.js", "export default { x: 1 };\n");
    // Installed packages are never read.
    file(
        r,
        "services/notes/node_modules/dep/index.js",
        "require('../../../../vendor/x');\n",
    );
    // Nor tools' configurations and tests, which no bundler takes (swarmion: a shared
    // lint-staged configuration became an input of every service).
    for (tooling, imported) in [
        (
            "services/notes/.lintstagedrc.js",
            "commonConfiguration/lint",
        ),
        ("services/notes/jest.config.ts", "commonConfiguration/jest"),
        ("services/notes/handler.test.js", "testing/fixtures"),
    ] {
        file(
            r,
            tooling,
            &format!("module.exports = require('../../{imported}');\n"),
        );
        file(r, &format!("{imported}.js"), "module.exports = {};\n");
    }
    let s = scan(r).unwrap();
    let inputs = |name: &str| {
        let f = s.services.iter().find(|f| f.name == name).unwrap();
        f.inputs.keys().cloned().collect::<Vec<_>>()
    };
    // A file of another service's folder is bundled too: that file alone.
    assert_eq!(
        inputs("notes"),
        ["config.js", "libs/**", "services/billing/internal.ts"],
        "{:?}",
        s.notes
    );
    // `services/shared.ts` is taken alone: its folder holds the service folders. The chain goes on
    // from `packages/pay` to `tools`.
    assert_eq!(
        inputs("billing"),
        ["packages/pay/**", "services/shared.ts", "tools/**"],
        "{:?}",
        s.notes
    );
    assert!(
        s.notes.contains(&"services/billing/handler.ts: imports `../../../outside.js`, which is outside the repository: not an input".to_string()),
        "{:?}",
        s.notes
    );
    // What init writes loads, with those inputs.
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    ferry_manifest::load(r).unwrap();
}

// A folder named by a number (a tutorial's steps) takes its parent's name before it.
#[test]
fn a_numbered_folder_is_named_with_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let t = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    file(r, "governance/1-initial-setup/template.yaml", t);
    file(r, "governance/2-policies/template.yaml", t);
    file(r, "2fa/template.yaml", t);
    let s = scan(r).unwrap();
    let mut names: Vec<&str> = s.services.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "governance-1-initial-setup",
            "governance-2-policies",
            "s-2fa"
        ],
        "{:?}",
        s.notes
    );
}

// `validate`'s check with init's inference: code a service builds from outside its folder
// that its inputs do not cover is named, with the input to add; once declared, nothing is.
#[test]
fn code_a_service_builds_from_that_no_input_covers_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "package.json",
        r#"{"private": true, "workspaces": ["packages/*"]}"#,
    );
    file(
        r,
        "packages/common/package.json",
        r#"{"name": "@acme/common"}"#,
    );
    file(r, "packages/common/index.js", "module.exports = {};\n");
    file(
        r,
        "libs/db.js",
        "import s from './util/strings';\nexport default {};\n",
    );
    file(r, "libs/util/strings.js", "export default {};\n");
    // Not reached by any import: not judged.
    file(r, "libs/unused/old.js", "export default {};\n");
    // Generated code git ignores: no input could name it.
    file(r, "generated/client.js", "export default {};\n");
    file(
        r,
        "services/notes/package.json",
        r#"{"dependencies": {"@acme/common": "*"}}"#,
    );
    file(
        r,
        "services/notes/handler.js",
        "import db from '../../libs/db';\nimport client from '../../generated/client';\n",
    );
    file(
        r,
        "services/notes/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "services/other/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "services/other/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    let project = "[project]\nname = \"shop\"\nservices = [\"services/*\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n";
    file(r, "ferry.toml", project);
    // Covers only part of libs/.
    file(
        r,
        "services/notes/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ninputs = [\"libs/*.js\"]\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let ignored = |p: &str| p.starts_with("generated/");
    let found: Vec<String> = ferry_init::undeclared_inputs(&ws, &ignored)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "notes: its code imports `../../libs/db` (services/notes/handler.js), but libs/util/strings.js is none of its inputs nor a global input: a change there would not deploy it; add `libs/**` to `inputs` in its service.toml",
            "notes: depends on the workspace package `@acme/common`, but packages/common/index.js is none of its inputs nor a global input: a change there would not deploy it; add `packages/common/**` to `inputs` in its service.toml",
        ]
    );
    // Declared (the package as a global input): nothing to say.
    file(
        r,
        "ferry.toml",
        &project.replace(
            "services = ",
            "global-inputs = [\"packages/**\"]\nservices = ",
        ),
    );
    file(
        r,
        "services/notes/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ninputs = [\"libs/**\"]\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    assert_eq!(ferry_init::undeclared_inputs(&ws, &ignored), []);
}

#[test]
fn a_repository_without_services_says_what_it_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "README.md", "nothing here\n");
    let e = scan(dir.path()).unwrap_err().to_string();
    assert!(e.starts_with("no service found in "), "{e}");
    assert!(e.contains("serverless.yml"), "{e}");
    assert!(!e.contains("left out"), "{e}");
    // What was found and left out is said: before, the error alone hid why.
    file(
        dir.path(),
        "fn/serverless.yml",
        "service: fn\nprovider:\n  name: google\n",
    );
    let e = scan(dir.path()).unwrap_err().to_string();
    assert!(
        e.ends_with(". Found and left out:\n  fn/serverless.yml: a Serverless Framework service for provider `google`, not AWS: left out"),
        "{e}"
    );
    let e = scan(&dir.path().join("missing")).unwrap_err().to_string();
    assert!(e.ends_with("is not a folder"), "{e}");
}

#[test]
fn a_broken_configuration_is_noted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "a/serverless.yml", "service: [unclosed\n");
    file(
        dir.path(),
        "b/serverless.ts",
        "export default {service: 'b'};\n",
    );
    let s = scan(dir.path()).unwrap();
    assert_eq!(s.services.len(), 2);
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("a/serverless.yml: not read as YAML")),
        "{:?}",
        s.notes
    );
}

/// As in serverless/examples: services for other clouds, and stack names from variables only
/// the framework's run resolves. What init writes still loads.
#[test]
fn other_clouds_are_left_out_and_an_unreadable_stack_name_is_guessed_for_review() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "google-http/serverless.yml",
        "service: google-http\nprovider:\n  name: google\n  runtime: nodejs18\n",
    );
    file(
        r,
        "whisk/serverless.yml",
        "service: my_service\nprovider:\n  name: openwhisk\n",
    );
    file(
        r,
        "graphql/serverless.yml",
        "service: ${file(./secrets.json):ApiName}\nprovider:\n  name: aws\n",
    );
    file(
        r,
        "graphql/secrets.json",
        "{\"ApiName\": \"graphql-api\"}\n",
    );
    file(
        r,
        "named/serverless.yml",
        "service: named-${self:custom.team}\ncustom:\n  team: data\nprovider: aws\n",
    );
    // A provider given by a file is the file's (ae9is/anything: every service had
    // `provider: ${file(./_provider.yml)}`, and init found none); one given by another
    // variable is taken for AWS, noted.
    file(
        r,
        "shared/serverless.yml",
        "service: shared\nprovider: ${file(./_provider.yml)}\n",
    );
    file(
        r,
        "shared/_provider.yml",
        "name: aws\nruntime: nodejs20.x\n",
    );
    file(
        r,
        "gcf/serverless.yml",
        "service: gcf\nprovider: ${file(./_provider.yml)}\n",
    );
    file(r, "gcf/_provider.yml", "name: google\nruntime: nodejs18\n");
    // One whose file gives a region, which init does not read, is noted; one reading a file
    // outside the repository is not read (taken for AWS, noted).
    file(
        r,
        "regional/serverless.yml",
        "service: regional\nprovider: ${file(./_provider.yml)}\n",
    );
    file(
        r,
        "regional/_provider.yml",
        "name: aws\nregion: eu-west-1\n",
    );
    file(
        r,
        "outside/serverless.yml",
        "service: outside\nprovider: ${file(../../../../../../etc/hostname)}\n",
    );
    file(
        r,
        "team/serverless.yml",
        "service: team\ncustom:\n  cloud: aws\nprovider:\n  name: ${self:custom.cloud}\n",
    );
    let s = scan(r).unwrap();
    let dirs: Vec<&str> = s.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(
        dirs,
        ["graphql", "named", "outside", "regional", "shared", "team"],
        "{:?}",
        s.notes
    );
    assert!(
        s.notes.contains(&"team/serverless.yml: its provider is `${self:custom.cloud}`, which Ferry does not read: taken for AWS; check the region and stack name init writes for it against what that gives".to_string()),
        "{:?}",
        s.notes
    );
    assert!(
        !s.notes.iter().any(|n| n.starts_with("shared/")),
        "{:?}",
        s.notes
    );
    assert!(
        s.notes.contains(&"regional/serverless.yml: its provider comes from `${file(./_provider.yml)}`, which gives a region or stackName Ferry does not read: check the region and stack name init writes for it against what that gives".to_string()),
        "{:?}",
        s.notes
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("outside/serverless.yml: its provider is `${file(../")),
        "{:?}",
        s.notes
    );
    for (d, p) in [
        ("google-http", "google"),
        ("whisk", "openwhisk"),
        ("gcf", "google"),
    ] {
        assert!(
            s.notes.contains(&format!(
                "{d}/serverless.yml: a Serverless Framework service for provider `{p}`, not AWS: left out"
            )),
            "{:?}",
            s.notes
        );
    }
    assert!(
        s.notes.iter().any(|n| n.starts_with("graphql/serverless.yml: service: `${file(./secrets.json):ApiName}-${sls:stage}` holds variables Ferry cannot resolve")
            && n.ends_with("its service.toml names the stack `graphql-{stage}`: check that it is the stack name the framework gives it")),
        "{:?}",
        s.notes
    );
    assert!(s.services[1].stack_name.is_none(), "read from the file");

    let files = render(&s, r);
    write(r, &files, Existing::Refuse).unwrap();
    let toml = fs::read_to_string(r.join("graphql/service.toml")).unwrap();
    assert!(
        toml.contains("# Check that this is the stack name the framework gives it.\nstack-name = \"graphql-{stage}\""),
        "{toml}"
    );
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    let dev = ws.stage("dev").unwrap();
    assert_eq!(ws.stack_name("graphql", &dev), "graphql-dev");
    assert_eq!(ws.stack_name("named", &dev), "named-data-dev");
}

#[test]
fn a_service_reading_an_ssm_parameter_another_writes_depends_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    // The platform writes its bus's name to SSM, under the stage.
    file(
        r,
        "platform/template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nParameters:\n  Environment:\n    Type: String\nResources:\n  Bus:\n    Type: AWS::Events::EventBus\n    Properties:\n      Name: !Sub \"shop-${Environment}\"\n  BusName:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub /shop/${Environment}/platform/bus-name\n      Type: String\n      Value: !Ref Bus\n",
    );
    // Orders reads it as a parameter of an SSM type (a default with the stage written out), and
    // one that has no default, whose name init cannot know.
    file(
        r,
        "orders/template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nParameters:\n  BusName:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: /shop/dev/platform/bus-name\n  PaymentsUrl:\n    Type: AWS::SSM::Parameter::Value<String>\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    // A dynamic reference, and a public parameter no service writes.
    file(
        r,
        "billing/template.yaml",
        "Parameters:\n  Image:\n    Type: AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>\n    Default: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: '{{resolve:ssm:/shop/prod/platform/bus-name:3}}'\n",
    );
    // A Serverless service reads it with the stage as a variable, and writes its own.
    file(
        r,
        "mailer/serverless.yml",
        "service: mailer\nprovider:\n  name: aws\n  environment:\n    BUS: ${ssm:/shop/${sls:stage}/platform/bus-name, 'none'}\nresources:\n  Resources:\n    Out:\n      Type: AWS::SSM::Parameter\n      Properties:\n        Name: /shop/${sls:stage}/mailer/topic\n        Type: String\n        Value: x\n",
    );
    let s = scan(r).unwrap();
    let deps = |name: &str| {
        let f = s.services.iter().find(|f| f.name == name).unwrap();
        f.depends_on.clone()
    };
    for reader in ["orders", "billing", "mailer"] {
        let d = deps(reader);
        assert_eq!(
            d.keys().collect::<Vec<_>>(),
            ["platform"],
            "{reader}: {d:?}"
        );
        assert!(
            d["platform"]
                .contains("which platform writes as `/shop/${Environment}/platform/bus-name`"),
            "{reader}: {d:?}"
        );
    }
    assert!(
        deps("platform").is_empty(),
        "it reads nothing of the others"
    );
    // What all read is written; AWS's public parameter is not noted.
    assert!(
        !s.notes.iter().any(|n| n.contains("which no service")),
        "{:#?}",
        s.notes
    );
    // One that no service writes is noted: the first deploy of a new stage stops there
    // (airline-booking's reads of what Amplify writes); not one read with a fallback, nor one
    // of another account named by its ARN.
    file(
        r,
        "mailer/serverless.yml",
        "service: mailer\nprovider:\n  name: aws\n  environment:\n    BUS: ${ssm:/shop/${sls:stage}/platform/bus-name, 'none'}\n    KEY: ${ssm:/shop/${sls:stage}/mailer/api-key}\n    URL: ${ssm:/amplify/${sls:stage}/url}\n    FLAG: ${ssm:/shop/${sls:stage}/flag, 'off'}\n    HOST: '{{resolve:ssm:arn:aws:ssm:us-east-1:111122223333:parameter/shared/db-host}}'\n",
    );
    let notes = scan(r).unwrap().notes;
    let said: Vec<&String> = notes
        .iter()
        .filter(|n| n.contains("which no service"))
        .collect();
    assert_eq!(
        said,
        [
            "mailer: reads SSM parameters `/shop/${sls:stage}/mailer/api-key`, `/amplify/${sls:stage}/url`, which no service of this repository writes: each stage needs them before the service's first deploy there, which stops at a missing one (`param set <stage> <name>`, or what writes them outside the repository)"
        ],
        "{notes:#?}"
    );
    file(
        r,
        "mailer/serverless.yml",
        "service: mailer\nprovider:\n  name: aws\n  environment:\n    BUS: ${ssm:/shop/${sls:stage}/platform/bus-name, 'none'}\nresources:\n  Resources:\n    Out:\n      Type: AWS::SSM::Parameter\n      Properties:\n        Name: /shop/${sls:stage}/mailer/topic\n        Type: String\n        Value: x\n",
    );

    // What it writes says what a parameter of an SSM type takes, loads, and passes the checks.
    let files = render(&s, r);
    write(r, &files, Existing::Refuse).unwrap();
    let orders = fs::read_to_string(r.join("orders/service.toml")).unwrap();
    assert!(
        orders.contains("# PaymentsUrl is of type AWS::SSM::Parameter::Value<String>: give the name of an SSM parameter"),
        "{orders}"
    );
    // Its default names dev's parameter: each stage reads its own (before, the default was
    // left, and every stage read dev's).
    assert!(
        orders.contains("BusName = \"/shop/${stage}/platform/bus-name\""),
        "{orders}"
    );
    fs::write(
        r.join("orders/service.toml"),
        orders.replace(
            "PaymentsUrl = \"\"",
            "PaymentsUrl = \"/shop/${stage}/payments/url\"",
        ),
    )
    .unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ws.service("orders")
            .unwrap()
            .dependencies()
            .into_iter()
            .collect::<Vec<_>>(),
        ["platform"]
    );
    let problems = ferry_package::check_templates(&ws, &ws.services);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn a_serverless_compose_file_gives_names_links_and_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "serverless-compose.yml",
        r#"services:
  service-a:
    path: service-a
  Service_B:
    path: ./svc-b/
    dependsOn: service-a
    params:
      queueUrl: ${service-a.queueUrl}
      stageName: app-${sls:stage}
      retries: 3
      token: ${env:TOKEN}
      dbPassword: hunter2hunter2
      apiPassword: pw-${sls:stage}
      hook: https://hooks.slack.com/services/T000/B000/XXXXXXXX
      queue.arn: ${service-a.queueArn}
      queue-name: ${service-a.queueName}
  service-c:
    path: service-c
    dependsOn: [service-a, Service_B, ghost]
  web:
    component: "@serverless-components/website"
    path: web
"#,
    );
    file(
        r,
        "service-a/serverless.yml",
        "service: service-a\nprovider:\n  name: aws\nresources:\n  Resources:\n    Q:\n      Type: AWS::SQS::Queue\n  Outputs:\n    queueUrl:\n      Value: !Ref Q\n",
    );
    // A local-only stack the Compose file does not list (Enterprise-CMCS/macpro-mdct-mfp's
    // `services/uploads`, for serverless-s3-local): left out, not deployed to every stage.
    file(
        r,
        "uploads/serverless.yml",
        "service: uploads\nprovider:\n  name: aws\nplugins:\n  - serverless-s3-local\n",
    );
    file(
        r,
        "svc-b/serverless.yml",
        "service: service-b\nprovider:\n  name: aws\n  environment:\n    QUEUE: ${param:queueUrl}\n",
    );
    file(
        r,
        "service-c/serverless.yml",
        "service: service-c\nprovider:\n  name: aws\n",
    );
    let s = scan(r).unwrap();
    // Read once: said, so that nobody goes on editing it and sees nothing deploy.
    assert!(
        s.notes.iter().any(|n| n.starts_with(
            "serverless-compose.yml: read once, now: its dependsOn and params are in the service.toml files"
        )),
        "{:?}",
        s.notes
    );
    let names: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|f| (f.dir.as_str(), f.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("service-a", "service-a"),
            ("service-c", "service-c"),
            ("svc-b", "service-b"),
        ],
        "named after their Compose keys"
    );
    let b = &s.services[2];
    assert_eq!(b.depends_on.keys().collect::<Vec<_>>(), ["service-a"]);
    let params: Vec<(&str, &str)> = b
        .parameters
        .iter()
        .map(|(k, (v, _))| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        params,
        [
            ("queue-name", "${output:service-a.queueName}"),
            ("queueUrl", "${output:service-a.queueUrl}"),
            ("retries", "3"),
            ("stageName", "app-${stage}"),
        ]
    );
    let c = &s.services[1];
    assert_eq!(
        c.depends_on.keys().collect::<Vec<_>>(),
        ["service-a", "service-b"]
    );
    let notes = s.notes.join("\n");
    for said in [
        "param `token` = `${env:TOKEN}`, which reads environment variable `TOKEN`",
        "param `queue.arn`, and Ferry's parameter names hold only letters, digits, `-` and `_`",
        "depends on `ghost`, which is no service Ferry found",
        "service `web` is a `@serverless-components/website` component",
        "service `Service_B` passes param `dbPassword`, a secret (by its name or its value's form): not copied",
        "service `Service_B` passes param `hook`, a secret",
        "service `Service_B` passes param `apiPassword`, a secret",
        "uploads: a Serverless Framework service that serverless-compose.yml does not list, so the repository does not deploy it with the others: left out",
    ] {
        assert!(notes.contains(said), "{said}\n{notes}");
    }
    assert!(
        !notes.contains("hunter2hunter2") && !notes.contains("XXXXXXXX"),
        "{notes}"
    );

    // What it writes loads: the parameters go to the framework as --param.
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    let b = ws.service("service-b").unwrap();
    assert_eq!(
        b.parameters.keys().collect::<Vec<_>>(),
        ["queue-name", "queueUrl", "retries", "stageName"]
    );
    assert_eq!(
        b.dependencies().into_iter().collect::<Vec<_>>(),
        ["service-a"]
    );
    let toml = fs::read_to_string(r.join("svc-b/service.toml")).unwrap();
    assert!(
        toml.contains(
            "# serverless-compose.yml: params.queueUrl\nqueueUrl = \"${output:service-a.queueUrl}\""
        ),
        "{toml}"
    );
}

#[test]
fn a_hostile_compose_file_is_noted_never_fatal_and_writes_loadable_files() {
    let cases: &[(&str, &str)] = &[
        ("services: [a, b]\n", "no `services` mapping"),
        ("services: {a: {path: [1]\n", "not read as YAML or JSON"),
        (
            "services:\n  a:\n    params: {x: 1}\n",
            "service `a` has no `path`",
        ),
        (
            "services:\n  a:\n    path: ../../etc\n",
            "names path `../../etc`, where no Serverless Framework configuration was found",
        ),
        (
            "services:\n  \"x\\ny\":\n    path: svc\n    params:\n      Q: \"a\\\"b\\n[c] = 1\"\n      M: {k: v}\n      Deep: ${svc.a.b}\n",
            "passes param `M` as a list or mapping",
        ),
    ];
    for (compose, said) in cases {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        file(r, "serverless-compose.yml", compose);
        file(
            r,
            "svc/serverless.yml",
            "service: svc\nprovider:\n  name: aws\n",
        );
        let s = scan(r).unwrap_or_else(|e| panic!("{compose}: {e}"));
        let notes = s.notes.join("\n");
        assert!(notes.contains(said), "{compose}\n{notes}");
        write(r, &render(&s, r), Existing::Refuse).unwrap();
        let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{compose}: {e}"));
        if compose.contains("Q:") {
            // A key with a line break is a valid name; a value with quotes, a line break and
            // TOML syntax stays one string.
            let svc = ws.service("x-y").unwrap();
            assert_eq!(
                svc.parameters["Q"].to_string(),
                "a\"b\n[c] = 1",
                "{compose}"
            );
            assert!(
                notes.contains("reads a nested value `a.b` of `svc`"),
                "{notes}"
            );
        }
    }
    // A program is not run.
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "serverless-compose.ts", "export default {}\n");
    file(
        dir.path(),
        "svc/serverless.yml",
        "service: svc\nprovider:\n  name: aws\n",
    );
    let notes = scan(dir.path()).unwrap().notes.join("\n");
    assert!(
        notes.contains("serverless-compose.ts is a program"),
        "{notes}"
    );
}

#[test]
fn a_service_naming_another_region_than_the_stages_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for (name, region) in [
        ("orders", "region: eu-west-1"),
        ("payments", "region: eu-west-1"),
        ("edge", "region: us-east-1"),
        // The fallback of `--region` is where a deploy without one put the stacks: noted too
        // (before, nothing was said, and its stacks were deployed anew in eu-west-1).
        ("reports", "region: ${opt:region, 'ap-south-1'}"),
        ("plain", "runtime: nodejs20.x"),
    ] {
        file(
            r,
            &format!("{name}/serverless.yml"),
            &format!("service: {name}\nprovider:\n  name: aws\n  {region}\n"),
        );
    }
    let s = scan(r).unwrap();
    assert_eq!(s.region(), "eu-west-1");
    let moved: Vec<&String> = s
        .notes
        .iter()
        .filter(|n| n.contains("names region"))
        .collect();
    assert_eq!(moved.len(), 2, "{:?}", s.notes);
    assert!(
        moved[0].starts_with("edge/serverless.yml: names region `us-east-1`")
            && moved[0].contains("would be deployed to `eu-west-1`"),
        "{}",
        moved[0]
    );
    assert!(
        moved[1].starts_with("reports/serverless.yml: names region `ap-south-1`"),
        "{}",
        moved[1]
    );
    // Where it came from is said: a deploy may pass another --region.
    assert!(
        s.notes.contains(&"reports/serverless.yml: region `ap-south-1` is the fallback of its `${opt:region, …}`, where a `serverless deploy` without --region puts the stacks; if its deploys pass --region, set the stages' region in ferry.toml to that one".to_string()),
        "{:?}",
        s.notes
    );
}

#[test]
fn a_submodule_in_a_service_folder_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "orders/serverless.yml",
        "service: orders\nprovider:\n  name: aws\n",
    );
    file(
        r,
        ".gitmodules",
        "[submodule \"vendor\"]\n\tpath = orders/vendor\n\turl = ../lib.git\n[submodule \"docs\"]\n\tpath = docs/theme\n\turl = ../theme.git\n",
    );
    let s = scan(r).unwrap();
    let notes: Vec<&String> = s.notes.iter().filter(|n| n.contains("submodule")).collect();
    assert_eq!(notes.len(), 1, "{:?}", s.notes);
    assert!(
        notes[0].starts_with("orders/vendor: a git submodule in the folder of orders")
            && notes[0].contains("fetch-submodules: true"),
        "{}",
        notes[0]
    );
}

#[test]
fn a_serverless_service_with_a_package_json_installs_its_dependencies_before_it_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let config = |name: &str| format!("service: {name}\nprovider:\n  name: aws\n");
    for (name, files) in [
        ("npm", &["package.json", "package-lock.json"][..]),
        ("yarn", &["package.json", "yarn.lock"][..]),
        ("bare", &["package.json"][..]),
        ("none", &[][..]),
    ] {
        file(r, &format!("{name}/serverless.yml"), &config(name));
        for f in files {
            file(r, &format!("{name}/{f}"), "{}");
        }
    }
    // A member of the root's workspaces is installed from the root: no build of its own.
    file(r, "package.json", r#"{"workspaces": ["members/*"]}"#);
    file(r, "members/inner/serverless.yml", &config("inner"));
    file(r, "members/inner/package.json", "{}");
    // Pinned to version 3 of the framework: a note unless a package.json installs it.
    file(
        r,
        "none/serverless.yml",
        &format!("{}frameworkVersion: '3'\n", config("none")),
    );
    file(
        r,
        "npm/serverless.yml",
        &format!("{}frameworkVersion: '3'\n", config("npm")),
    );
    file(
        r,
        "npm/package.json",
        r#"{"devDependencies": {"serverless": "^3.38.0"}}"#,
    );
    // A keyword is no dependency: still noted.
    file(
        r,
        "yarn/serverless.yml",
        &format!("{}frameworkVersion: '^3.0.0'\n", config("yarn")),
    );
    file(r, "yarn/package.json", r#"{"keywords": ["serverless"]}"#);
    let s = scan(r).unwrap();
    let builds: Vec<(&str, Option<String>)> = s
        .services
        .iter()
        .map(|f| {
            let argv = f.build.as_ref().map(|(argv, _)| argv.join(" "));
            (f.dir.as_str(), argv)
        })
        .collect();
    // Never a step that writes into the checkout: `npm ci` by the lock file, and without one an
    // install that writes none (before, `npm install` rewrote an older lock file, or wrote one,
    // and the tree was dirty after every deploy).
    let bare = "npm install --no-package-lock --no-audit --no-fund --prefer-offline";
    let npm = "npm ci --no-audit --no-fund --prefer-offline";
    assert_eq!(
        builds,
        [
            ("bare", Some(bare.to_string())),
            ("members/inner", None),
            ("none", None),
            ("npm", Some(npm.to_string())),
            ("yarn", Some("yarn install --frozen-lockfile".to_string())),
        ]
    );
    let notes = s.notes.join("\n");
    assert!(
        notes.contains("members/inner: a member of the workspaces"),
        "{notes}"
    );
    assert!(
        notes.contains("bare: package.json and no lock file: its build installs without one"),
        "{notes}"
    );
    assert!(
        notes.contains("none/serverless.yml: its frameworkVersion takes version 3 of the Serverless Framework and not 4, and no package.json here installs a CLI: install osls at version 3 (`npm install --save-dev osls@3`"),
        "{notes}"
    );
    assert!(
        !notes.contains("npm/serverless.yml: its frameworkVersion"),
        "{notes}"
    );
    assert!(
        notes.contains("yarn/serverless.yml: its frameworkVersion"),
        "{notes}"
    );
    // What it writes loads, with the build where it belongs.
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap();
    assert_eq!(
        ws.service("yarn").unwrap().package.build,
        ["yarn", "install", "--frozen-lockfile"]
    );
    assert!(ws.service("none").unwrap().package.build.is_empty());
    let text = std::fs::read_to_string(r.join("npm/service.toml")).unwrap();
    assert!(
        text.contains(
            "# Installs its package.json's dependencies (package-lock.json) before it compiles"
        ),
        "{text}"
    );
}

#[test]
fn services_that_would_share_a_stack_are_left_out_with_a_note_and_the_rest_validates() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let config =
        |service: &str, extra: &str| format!("service: {service}\nprovider:\n  name: aws\n{extra}");
    // Copied examples keep the `service:` name they were copied from.
    file(
        r,
        "orders/serverless.yml",
        &config(
            "orders",
            "resources:\n  Outputs:\n    Url:\n      Value: x\n      Export:\n        Name: orders-url\n",
        ),
    );
    file(r, "orders-copy/serverless.yml", &config("orders", ""));
    // A copy whose folder name is taken too (serverless/examples: `legacy/aws-python`): left
    // out, with no note naming it as if it stayed.
    file(r, "legacy/orders/serverless.yml", &config("orders", ""));
    // A stack of one name in every stage.
    file(
        r,
        "fixed/serverless.yml",
        &config("fixed", "  stackName: fixed-stack\n"),
    );
    // A CloudFormation service whose default stack name is a Serverless service's.
    file(
        r,
        "payments/serverless.yml",
        &config(
            "payments",
            "  environment:\n    URL: !ImportValue orders-url\n",
        ),
    );
    file(
        r,
        "infra/payments/template.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    // Folder names that stay taken once made from the whole path.
    let template =
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    for d in ["api", "x-api", "x/api"] {
        file(r, &format!("{d}/template.yaml"), template);
    }
    let s = scan(r).unwrap();
    let names: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|f| (f.dir.as_str(), f.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("api", "api"),
            ("infra/payments", "infra-payments"),
            ("orders", "orders"),
            ("payments", "payments"),
            ("x/api", "x-api"),
            ("x-api", "x-api-2"),
        ],
        "{:?}",
        s.notes
    );
    let notes = s.notes.join("\n");
    for want in [
        "fixed/serverless.yml: its stack is `fixed-stack` in every stage (no stage in its name): left out",
        "orders-copy/serverless.yml: would deploy stack `orders-{stage}`, as orders/serverless.yml does: left out",
        "infra/payments: stack `payments-{stage}` is a Serverless service's: named `infra-payments`",
        "x-api: its folder name `x-api` is taken by another service: named `x-api-2`",
    ] {
        assert!(notes.contains(want), "{want}\n{notes}");
    }
    assert!(
        notes.contains("legacy/orders/serverless.yml: would deploy stack `orders-{stage}`"),
        "{notes}"
    );
    assert!(!notes.contains("legacy/orders: its folder name"), "{notes}");
    // The links stay: payments imports what orders exports.
    assert_eq!(
        s.services[3].depends_on.keys().collect::<Vec<_>>(),
        ["orders"]
    );
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
}

/// A repository laid out as awslabs/realworld-serverless-application is: each project keeps its
/// SAM app below it (`backend/sam/app/template.yaml`, nesting a template of the same folder)
/// pointing back up at what the project builds (`../../target/app.jar`), a pipeline template
/// beside it (`sam/cicd`), and an umbrella template at `sam/app` nests every project's app.
#[test]
fn sam_apps_below_their_projects_move_up_and_an_umbrella_template_gives_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n";
    let app = |id: &str, location: &str, extra: &str| {
        format!(
            "  {id}:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: {location}\n{extra}"
        )
    };
    file(r, "backend/pom.xml", "<project/>");
    file(r, "backend/swagger/api.yaml", "openapi: 3.0.0\n");
    file(
        r,
        "backend/sam/app/template.yaml",
        &format!(
            "{sam}Resources:\n{}Outputs:\n  ApiUrl:\n    Value: x\n",
            app("Api", "api.template.yaml", "")
        ),
    );
    file(
        r,
        "backend/sam/app/api.template.yaml",
        &format!(
            "{sam}Resources:\n  Api:\n    Type: AWS::Serverless::Api\n    Properties:\n      StageName: x\n      DefinitionUri: ../../swagger/api.yaml\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../../target/app.jar\n      Runtime: java11\n      Handler: a.B\n"
        ),
    );
    let queue = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    file(
        r,
        "backend/sam/cicd/template.yaml",
        &format!("{sam}{queue}"),
    );
    file(
        r,
        "web/package.json",
        r#"{"name": "web", "scripts": {"build": "vue-cli-service build"}}"#,
    );
    file(r, "web/package-lock.json", "{}");
    file(
        r,
        "web/sam/app/template.yaml",
        &format!(
            "{sam}Parameters:\n  ApiUrl:\n    Type: String\n  Code:\n    Type: String\n    NoEcho: true\n  Theme:\n    Type: String\nResources:\n  Deploy:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../../dist/\n      Runtime: python3.12\n      Handler: d.h\n"
        ),
    );
    file(r, "web/sam/cicd/template.yaml", &format!("{sam}{queue}"));
    file(
        r,
        "sam/app/template.yaml",
        &format!(
            "{sam}Resources:\n{}{}  Audit:\n    Type: AWS::DynamoDB::Table\n",
            app("Backend", "../../backend/sam/app/template.yaml", ""),
            app(
                "Web",
                "../../web/sam/app/template.yaml",
                "      Parameters:\n        ApiUrl: !GetAtt Backend.Outputs.ApiUrl\n        Code: s3cr3tv4lue\n        Theme: dark\n    DependsOn: Backend\n"
            )
        ),
    );
    // Shared code beside the services, in a folder of no project: the service stays where it
    // is, and the shared code is one of its inputs.
    file(r, "services/common/util.py", "");
    file(
        r,
        "services/orders/template.yaml",
        &format!(
            "{sam}Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../common\n      Runtime: python3.12\n      Handler: u.h\n"
        ),
    );
    file(r, "services/users/template.yaml", &format!("{sam}{queue}"));
    // Hostile: two templates of one folder nesting each other, a template nesting itself.
    file(
        r,
        "circle/a.yaml",
        &format!("{sam}Resources:\n{}", app("B", "b.yaml", "")),
    );
    file(
        r,
        "circle/b.yaml",
        &format!("{sam}Resources:\n{}", app("A", "a.yaml", "")),
    );
    file(
        r,
        "selfish/template.yaml",
        &format!("{sam}Resources:\n{}", app("Me", "template.yaml", "")),
    );

    let s = scan(r).unwrap();
    let found: Vec<(&str, &str, &str, Option<String>)> = s
        .services
        .iter()
        .map(|f| {
            let build = f.build.as_ref().map(|(argv, _)| argv.join(" "));
            (f.dir.as_str(), f.name.as_str(), f.file.as_str(), build)
        })
        .collect();
    let mvn = Some("mvn --batch-mode package".to_string());
    let npm = Some("sh -c npm ci --no-audit --no-fund && npm run build".to_string());
    assert_eq!(
        found,
        [
            ("backend", "backend", "sam/app/template.yaml", mvn),
            ("backend/sam/cicd", "backend-cicd", "template.yaml", None),
            ("selfish", "selfish", "template.yaml", None),
            ("services/orders", "orders", "template.yaml", None),
            ("services/users", "users", "template.yaml", None),
            ("web", "web", "sam/app/template.yaml", npm),
            ("web/sam/cicd", "web-cicd", "template.yaml", None),
        ],
        "{:#?}",
        s.notes
    );
    // The umbrella's order and the output it passes.
    let web = &s.services[5];
    assert_eq!(web.depends_on.keys().collect::<Vec<_>>(), ["backend"]);
    // A value the umbrella passes a NoEcho parameter is a secret: noted, never copied nor shown.
    assert_eq!(
        web.parameters.get("Theme").map(|(v, _)| v.as_str()),
        Some("dark")
    );
    assert!(!web.parameters.contains_key("Code"));
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("sam/app/template.yaml: Web passes Code, a secret")),
        "{:#?}",
        s.notes
    );
    assert!(!s.notes.join("\n").contains("s3cr3tv4lue"));
    assert_eq!(
        web.parameters["ApiUrl"].0, "${output:backend.ApiUrl}",
        "{:?}",
        web.parameters
    );
    let notes = s.notes.join("\n");
    for want in [
        "sam/app/template.yaml: nests the templates of other services (backend/sam/app/template.yaml, web/sam/app/template.yaml)",
        // What the umbrella holds of its own deploys with nobody once it is left out.
        "in the order it gives them; its own resources (Audit) are then deployed by no service",
        "backend/sam/app/template.yaml: Api.DefinitionUri (in backend/sam/app/api.template.yaml) names backend/swagger/api.yaml outside the template's folder: the service folder is `backend`",
        "backend: Fn.CodeUri (in backend/sam/app/api.template.yaml) names backend/target/app.jar, which the repository does not hold: its service.toml builds it with `mvn --batch-mode package` (guessed from pom.xml)",
        "web: Deploy.CodeUri names web/dist, which the repository does not hold: its service.toml builds it with `sh -c \"npm ci --no-audit --no-fund && npm run build\"`",
        "backend/sam/app/api.template.yaml: nested by backend/sam/app/template.yaml",
        "circle: its templates nest each other in a circle: none taken",
        "web/sam/cicd: its folder name `cicd` is other services' too: named `web-cicd`",
        "backend/sam/cicd: its folder name `cicd` is other services' too: named `backend-cicd`",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
    assert!(!notes.contains("several templates"), "{notes}");

    // What it writes loads; the moved services' templates pass the packager's checks (every
    // path inside the service folder), as does the one left where it was (its shared code an
    // input); the template nesting itself is refused for that, by the check validate runs.
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ws.service("backend").unwrap().package.build,
        ["mvn", "--batch-mode", "package"]
    );
    let problems: Vec<String> = ferry_package::check_templates(&ws, &ws.services)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(ws.service("orders").unwrap().inputs, ["services/common"]);
    assert!(
        problems[0].starts_with("selfish: template selfish/template.yaml: Me.Location names \"template.yaml\", and nested applications go at most 5 levels deep"),
        "{problems:?}"
    );
    let text = fs::read_to_string(r.join("web/service.toml")).unwrap();
    assert!(
        text.contains("template = \"sam/app/template.yaml\"")
            && text.contains("ApiUrl = \"${output:backend.ApiUrl}\""),
        "{text}"
    );
}

/// The stacks a repository's own deploy steps made keep their names: `init` writes each
/// CloudFormation and SAM service the `stack-name` its scripts or `samconfig.toml` give (the
/// stage variable as `{stage}`), so that Ferry updates those stacks instead of deploying new ones
/// beside them; a name it cannot translate, one without the stage, or one another service's
/// stack has is noted, not written.
/// A deploy script with one byte that is no UTF-8 (a Latin-1 comment, which a shell runs as it
/// is) still gives its stack name, and a serverless.yml saved with a byte-order mark its links:
/// before, the script was passed over (new stacks would have deployed beside the old ones) and
/// the configuration was "more than one document".
#[test]
fn a_latin1_script_and_a_bom_configuration_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "services/cf/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  Url:\n    Value: !Ref Q\n",
    );
    let p = r.join("services/cf/deploy.sh");
    let mut script = b"#!/bin/sh\n# d\xe9ploiement\n".to_vec();
    script.extend_from_slice(
        b"aws cloudformation deploy --template-file template.yaml --stack-name \"fz-cf-$STAGE\"\n",
    );
    fs::write(&p, script).unwrap();
    file(
        r,
        "services/sls/serverless.yml",
        "\u{feff}service: sls\nprovider:\n  name: aws\n  environment:\n    Q: ${cf:fz-cf-${sls:stage}.Url}\nfunctions:\n  h:\n    handler: h.h\n",
    );
    let s = scan(r).unwrap();
    let cf = s.services.iter().find(|f| f.dir == "services/cf").unwrap();
    assert_eq!(
        cf.stack_name.as_ref().map(|(p, _)| p.as_str()),
        Some("fz-cf-{stage}"),
        "{:#?}",
        s.notes
    );
    let sls = s.services.iter().find(|f| f.dir == "services/sls").unwrap();
    assert!(sls.depends_on.contains_key("cf"), "{:#?}", s.notes);
    assert!(
        !s.notes.iter().any(|n| n.contains("more than one document")),
        "{:#?}",
        s.notes
    );
}

#[test]
fn stack_names_the_deploy_scripts_give_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let cfn = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    for d in [
        "orders", "prodonly", "billing", "literal", "api", "copy", "plain", "named",
    ] {
        file(r, &format!("{d}/template.yaml"), cfn);
    }
    // network exports by its stack's name; app imports through a parameter naming that stack.
    file(
        r,
        "network/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueArn:\n    Value: !GetAtt Q.Arn\n    Export:\n      Name: !Sub \"${AWS::StackName}-QueueArn\"\n",
    );
    file(
        r,
        "app/template.yaml",
        "Parameters:\n  NetworkStack:\n    Type: String\nResources:\n  T:\n    Type: AWS::SNS::Topic\n    Properties:\n      DisplayName: !ImportValue\n        Fn::Sub: \"${NetworkStack}-QueueArn\"\n",
    );
    // A script: the stage variable, in `--flag value` and `--flag=value` form.
    file(
        r,
        "network/deploy.sh",
        "#!/bin/sh\nset -e\naws cloudformation deploy --template-file template.yaml \\\n  --stack-name \"shop-network-$STAGE\" --no-fail-on-empty-changeset\n",
    );
    file(
        r,
        "plain/Makefile",
        "deploy:\n\tsam deploy --stack-name=plain-$${ENV}-v2 --capabilities CAPABILITY_IAM\n",
    );
    // samconfig.toml: named environments that agree once their name is read as the stage (in
    // `deploy` or `global` parameters, where `sam init` writes it).
    file(
        r,
        "orders/samconfig.toml",
        "version = 0.1\n[dev.global.parameters]\nstack_name = \"shop-orders-dev\"\n[prod.deploy.parameters]\nstack_name = \"shop-orders-prod\"\n",
    );
    // Hostile or unknowable: environments that disagree, a variable Ferry cannot know, one stack
    // for every stage, a name another service's stack has, a deploy of another template.
    file(
        r,
        "prodonly/samconfig.toml",
        "[dev.deploy.parameters]\nstack_name = \"po-dev\"\n[prod.deploy.parameters]\nstack_name = \"prodonly-live\"\n",
    );
    file(
        r,
        "named/samconfig.toml",
        "[development.deploy.parameters]\nstack_name = \"named-development\"\n[production.deploy.parameters]\nstack_name = \"named-production\"\n",
    );
    file(
        r,
        "billing/deploy.sh",
        "aws cloudformation deploy --template-file template.yaml --stack-name \"$TEAM-billing-$STAGE\"\n",
    );
    file(
        r,
        "literal/deploy.sh",
        "aws cloudformation deploy --template-file template.yaml --stack-name literal-stack\n",
    );
    file(
        r,
        "copy/deploy.sh",
        "aws cloudformation deploy --template-file template.yaml --stack-name api-$STAGE\naws cloudformation deploy --template-file ../other.yaml --stack-name never-$STAGE\n",
    );

    let s = scan(r).unwrap();
    let stack = |n: &str| {
        s.services
            .iter()
            .find(|f| f.name == n)
            .unwrap()
            .stack_name
            .as_ref()
            .map(|(p, _)| p.as_str())
    };
    assert_eq!(
        stack("network"),
        Some("shop-network-{stage}"),
        "{:#?}",
        s.notes
    );
    assert_eq!(stack("orders"), Some("shop-orders-{stage}"));
    assert_eq!(stack("plain"), Some("plain-{stage}-v2"));
    for n in ["prodonly", "billing", "literal", "copy", "api", "named"] {
        assert_eq!(stack(n), None, "{n}");
    }
    // The importer is given the stack name the scripts gave (before, `network-${stage}`, a
    // stack that does not exist).
    let app = s.services.iter().find(|f| f.name == "app").unwrap();
    assert_eq!(
        app.parameters.get("NetworkStack").map(|(v, _)| v.as_str()),
        Some("shop-network-${stage}"),
        "{:#?}",
        s.notes
    );
    let notes = s.notes.join("\n");
    for want in [
        "network/template.yaml: stack-name `shop-network-{stage}` written, as network/deploy.sh names its stacks: shop-network-$STAGE; those stacks carry no Ferry tags yet: deploy each stage of it once with --adopt",
        "billing/deploy.sh: names its stacks with `TEAM`, which Ferry cannot know",
        "literal/deploy.sh: deploys one stack, `literal-stack`, for every stage",
        "copy/template.yaml: as copy/deploy.sh names its stacks: api-$STAGE, the stack name of service api too: not written",
        "prodonly/samconfig.toml: its environments name their stacks unlike each other ([dev] po-dev, [prod] prodonly-live): no stack-name written",
        // `named-{stage}` would deploy `named-dev`, beside `named-development`.
        "named/samconfig.toml: names its stacks by its environments [development], [production], which are no stages of ferry.toml (dev, staging, prod): no stack-name written",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
    assert!(!notes.contains("never-"), "{notes}");

    // What it writes loads, and gives the stacks their old names.
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let toml = fs::read_to_string(r.join("network/service.toml")).unwrap();
    assert!(
        toml.contains("# The name as network/deploy.sh names its stacks: shop-network-$STAGE.\nstack-name = \"shop-network-{stage}\""),
        "{toml}"
    );
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    let prod = ws.stage("prod").unwrap();
    assert_eq!(ws.stack_name("network", &prod), "shop-network-prod");
    assert_eq!(ws.stack_name("orders", &prod), "shop-orders-prod");
    assert_eq!(ws.stack_name("copy", &prod), "copy-prod");
}

/// A SAM monorepo deployed by Makefiles, as aws-samples/aws-serverless-airline-booking is: each
/// `make deploy` passes its stack the names of SSM parameters other services write. What the
/// repository's own deploy steps pass becomes the service's parameters, in Ferry's syntax, and
/// the SSM names among them link the services.
#[test]
fn parameters_the_deploy_scripts_pass_are_taken_and_link_the_services() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n";
    let layer = "Parameters:\n  Stage:\n    Type: String\nResources:\n  Arn:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Name: !Sub /${Stage}/shared/layer\n      Value: x\n";
    file(r, "libs/template.yaml", &format!("{sam}{layer}"));
    file(
        r,
        "booking/template.yaml",
        &format!(
            "{sam}Parameters:\n  Layer:\n    Type: AWS::SSM::Parameter::Value<String>\n  Stage:\n    Type: String\n  ApiId:\n    Type: String\n  Size:\n    Type: Number\n  DbPassword:\n    Type: String\n  Token:\n    Type: String\n    NoEcho: true\n  DatabaseUrl:\n    Type: String\n  GithubPat:\n    Type: String\n  StripeKey:\n    Type: String\n  AppKey:\n    Type: String\n  SlackWebhookUrl:\n    Type: String\n  DocsUrl:\n    Type: String\n  BranchName:\n    Type: String\n    Default: master\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n"
        ),
    );
    file(
        r,
        "booking/Makefile",
        "other:\n\tsam deploy --template-file ../other/other.yaml --parameter-overrides Stage=wrong Size=9\n\n\
invoke:\n\tsam local invoke --parameter-overrides Layer=local-arn\n\n\
deploy:\n\tsam package --s3-bucket $${BUCKET} && \\\n\taws cloudformation deploy \\\n\t\t--stack-name $${STACK_NAME}-booking-$${AWS_BRANCH} \\\n\t\t--parameter-overrides \\\n\t\t\tLayer=/$${AWS_BRANCH}/shared/layer \\\n\t\t\tStage=$${AWS_BRANCH} \\\n\t\t\tApiId=$${GRAPHQL_API_ID} \\\n\t\t\tUndeclared=1 \\\n\t\t\tDbPassword=hunter2secret \\\n\t\t\tToken=tok-4242 \\\n\t\t\tDatabaseUrl=postgres://admin:S3cretPassw0rd@db.example.com/app \\\n\t\t\tGithubPat=ghp_abcdefghijklmnopqrstuvwxyz0123456789 \\\n\t\t\tStripeKey=sk_live_abcdefghijklmnop1234 \\\n\t\t\tAppKey=Zx8vQ2mN4pL7rT1wY5uI9oA3sD6fG0hJ \\\n\t\t\tSlackWebhookUrl=https://hooks.slack.com/services/T000/B000/XXXXXXXX \\\n\t\t\tDocsUrl=https://user@docs.example.com/x \\\n\t\t\tBranchName=$${GITHUB_BRANCH} \\\n\t\t\t\"Size=3\n",
    );
    // samconfig.toml: a named environment's literal stage becomes ${stage}.
    file(
        r,
        "orders/template.yaml",
        &format!(
            "{sam}Parameters:\n  Layer:\n    Type: AWS::SSM::Parameter::Value<String>\n  Region:\n    Type: String\n  SigKey:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n"
        ),
    );
    file(
        r,
        "orders/samconfig.toml",
        "version = 0.1\n[dev.deploy.parameters]\nstack_name = \"orders\"\nparameter_overrides = \"Layer=\\\"/dev/shared/layer\\\" Region=\\\"$AWS_REGION\\\" SigKey=\\\"0123456789abcdef0123456789abcdef\\\"\"\n",
    );
    // Hostile: a samconfig that does not parse, a script that is not text.
    file(
        r,
        "broken/template.yaml",
        &format!(
            "{sam}Parameters:\n  A:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n"
        ),
    );
    file(r, "broken/samconfig.toml", "[default.deploy.parameters\n");
    fs::write(r.join("broken/deploy.sh"), [0xff, 0xfe, b'\n']).unwrap();

    let s = scan(r).unwrap();
    let by_name = |n: &str| s.services.iter().find(|f| f.name == n).unwrap();
    let params = |n: &str| -> Vec<(String, String)> {
        by_name(n)
            .parameters
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    };
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        params("booking"),
        pairs(&[
            ("DocsUrl", "https://user@docs.example.com/x"),
            ("Layer", "/${stage}/shared/layer"),
            ("Size", "3"),
            ("Stage", "${stage}"),
        ]),
        "{:#?}",
        s.notes
    );
    assert_eq!(
        params("orders"),
        pairs(&[("Layer", "/${stage}/shared/layer"), ("Region", "${region}")])
    );
    assert!(params("broken").is_empty());
    // The SSM names link the services: both read what libs writes.
    for n in ["booking", "orders"] {
        assert_eq!(
            by_name(n).depends_on.keys().collect::<Vec<_>>(),
            ["libs"],
            "{n}"
        );
    }
    let notes = s.notes.join("\n");
    for want in [
        "booking/Makefile: passes ApiId a value with `GRAPHQL_API_ID`, which Ferry cannot know: give ApiId its value in the service.toml",
        "booking/Makefile: passes DbPassword, a secret (NoEcho, by its name, or by its value's form): not copied",
        "booking/Makefile: passes Token, a secret (NoEcho, by its name, or by its value's form): not copied",
        "booking/Makefile: passes DatabaseUrl, a secret",
        "booking/Makefile: passes GithubPat, a secret",
        "booking/Makefile: passes StripeKey, a secret",
        // Key material given to a `…Key`, from a script and from a SAM configuration.
        "booking/Makefile: passes AppKey, a secret",
        "orders/samconfig.toml [dev.deploy.parameters]: passes SigKey, a secret",
        "booking/Makefile: passes SlackWebhookUrl, a secret",
        "booking/Makefile: passes BranchName `$${GITHUB_BRANCH}`, a git branch, which is no stage: not written as the stage",
        "booking/Makefile: passes Undeclared, which booking/template.yaml does not declare: left out",
        "broken/samconfig.toml: not read (",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
    // What it writes loads: the parameters the scripts did not give keep their empty value to
    // fill in, beside the taken ones.
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    let booking = ws.service("booking").unwrap();
    assert_eq!(
        booking.parameters.keys().collect::<Vec<_>>(),
        [
            "ApiId",
            "AppKey",
            "DatabaseUrl",
            "DbPassword",
            "DocsUrl",
            "GithubPat",
            "Layer",
            "Size",
            "SlackWebhookUrl",
            "Stage",
            "StripeKey",
            "Token"
        ]
    );
    // A secret is neither copied nor shown, anywhere (a user name alone in a URL is none).
    let booking_toml = fs::read_to_string(r.join("booking/service.toml")).unwrap();
    assert!(
        booking_toml.contains("DocsUrl = \"https://user@docs.example.com/x\""),
        "{booking_toml}"
    );
    for secret in [
        "hunter2secret",
        "tok-4242",
        "S3cretPassw0rd",
        "ghp_abc",
        "sk_live_",
        "XXXXXXXX",
        "Zx8vQ2mN4pL7",
        "0123456789abcdef0123456789abcdef",
    ] {
        let orders_toml = fs::read_to_string(r.join("orders/service.toml")).unwrap();
        assert!(
            !booking_toml.contains(secret)
                && !orders_toml.contains(secret)
                && !notes.contains(secret),
            "{secret}"
        );
    }
    let text = fs::read_to_string(r.join("booking/service.toml")).unwrap();
    assert!(
        text.contains("# as booking/Makefile passes it: /$${AWS_BRANCH}/shared/layer\nLayer = \"/${stage}/shared/layer\"")
            && text.contains("ApiId = \"\""),
        "{text}"
    );
    // A secret left to fill says where its value goes instead: SSM, never the file; so does
    // one known for a secret by the value the scripts passed it (a probe saw those left bare).
    for p in [
        "DbPassword",
        "Token",
        "DatabaseUrl",
        "GithubPat",
        "StripeKey",
        "SlackWebhookUrl",
    ] {
        assert!(
            text.contains(&format!(
                "# {p} is a secret (NoEcho, its name, or the value its deploy steps pass says so): never write its value here. Keep it in SSM under the stage's parameters-path (`param set <stage> {p} --secure`, the value on standard input), then give {p} = \"${{ssm:{p}}}\" (in a ferry.toml whose stages have no parameters-path: `param set <stage> /{project}/<stage>/{p} --secure` and \"${{ssm:/{project}/${{stage}}/{p}}}\")\n{p} = \"\"",
                project = s.project
            )),
            "{text}"
        );
    }
    assert!(!text.contains("ApiId is a secret"), "{text}");
    // Every stage has a parameters-path, so that a secret kept as the comment says is masked
    // (before, none: `exec` printed it in clear, and `param list` refused).
    let project = fs::read_to_string(r.join("ferry.toml")).unwrap();
    for stage in ["dev", "staging", "prod", "preview"] {
        assert!(
            project.contains(&format!("parameters-path = \"/{}/{stage}/\"", s.project)),
            "{project}"
        );
    }
}

/// A SAM function the SAM CLI builds (`Metadata.BuildMethod`) or whose folder declares
/// dependencies gets `sam build`, and Ferry packages what it writes; one that wants no build
/// gets none. What it writes passes the template checks, which refuse such a function without
/// a build.
#[test]
fn a_sam_service_that_wants_sam_build_gets_it_with_the_template_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let function = |code: &str, extra: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {code}\n      Handler: app.handler\n      Runtime: python3.12\n{extra}"
        )
    };
    file(
        r,
        "go/template.yaml",
        &function("src/", "    Metadata:\n      BuildMethod: makefile\n"),
    );
    file(r, "go/src/Makefile", "build-Fn:\n");
    file(r, "py/infra.yaml", &function("hello/", ""));
    file(
        r,
        "py/hello/requirements.txt",
        "boto3\nrequests==2.32.3  # http\n",
    );
    file(r, "plain/template.yaml", &function("hello/", ""));
    file(
        r,
        "plain/hello/requirements.txt",
        "boto3\n# only what the runtime has\n",
    );
    // Built in a template it nests: packaging refuses that without a build too.
    file(
        r,
        "deep/template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  App:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: app/template.yaml\n",
    );
    file(
        r,
        "deep/app/template.yaml",
        &function("src/", "    Metadata:\n      BuildMethod: esbuild\n"),
    );
    file(r, "deep/app/src/app.ts", "export const handler = 1;\n");
    // A Java project as the function's code: the SAM CLI compiles it.
    file(
        r,
        "java/template.yaml",
        &function("fn/", "").replace("python3.12", "java21"),
    );
    file(r, "java/fn/pom.xml", "<project/>\n");
    let s = scan(r).unwrap();
    let got: Vec<(&str, Option<String>, Option<&str>)> = s
        .services
        .iter()
        .map(|f| {
            (
                f.dir.as_str(),
                f.build.as_ref().map(|(argv, _)| argv.join(" ")),
                f.built_template.as_deref(),
            )
        })
        .collect();
    let built = Some(".aws-sam/build/template.yaml");
    assert_eq!(
        got,
        [
            ("deep", Some("sam build".to_string()), built),
            ("go", Some("sam build".to_string()), built),
            ("java", Some("sam build".to_string()), built),
            ("plain", None, None),
            (
                "py",
                Some("sam build --template-file infra.yaml".to_string()),
                built
            ),
        ]
    );
    let notes = s.notes.join("\n");
    for want in [
        "go: Fn.Metadata.BuildMethod (makefile) wants `sam build`",
        "py: py/hello/requirements.txt wants `sam build`",
        "deep: Fn.Metadata.BuildMethod (esbuild) (in deep/app/template.yaml) wants `sam build`",
        "java: Fn.CodeUri (fn/pom.xml, runtime java21) wants `sam build`",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ws.service("go").unwrap().package.built_template.as_deref(),
        built
    );
    let problems: Vec<String> = ferry_package::check_templates(&ws, &ws.services)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Several stacks in one folder, as aws-samples/aws-serverless-shopping-cart's `backend/`
/// (`auth.yaml`, `product-mock.yaml`, `shoppingcart-service.yaml`) and plain CloudFormation
/// repositories' `infra/` hold them: each template gets a service folder of its own, its
/// template above it, and what it writes passes the packager's checks.
#[test]
fn several_templates_of_one_folder_each_get_a_service_folder() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = "Transform: AWS::Serverless-2016-10-31\n";
    let function = |id: &str, code: &str| {
        format!(
            "  {id}:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {code}\n      Handler: app.handler\n      Runtime: python3.12\n"
        )
    };
    let writes = |name: &str| {
        format!(
            "  P{}:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Name: {name}\n      Value: x\n",
            name.len()
        )
    };
    file(
        r,
        "backend/auth.yaml",
        &format!("{sam}Resources:\n{}", writes("/cart/auth/pool-arn")),
    );
    file(
        r,
        "backend/product-mock.yaml",
        &format!(
            "{sam}Resources:\n{}{}  Nested:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: product-mock-service/stack.yaml\n",
            function("Get", "product-mock-service/"),
            writes("/cart/products/url")
        ),
    );
    file(r, "backend/product-mock-service/app.py", "");
    // A nested template inside the folder another template keeps: no umbrella.
    file(
        r,
        "backend/product-mock-service/stack.yaml",
        &format!("{sam}Resources:\n  T:\n    Type: AWS::SQS::Queue\n"),
    );
    file(
        r,
        "backend/shoppingcart-service.yaml",
        &format!(
            "{sam}Parameters:\n  Pool:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: /cart/auth/pool-arn\n  Url:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: /cart/products/url\nResources:\n{}  Layer:\n    Type: AWS::Serverless::LayerVersion\n    Properties:\n      ContentUri: ./layers/\n",
            function("Add", "shopping-cart-service/")
        ),
    );
    file(r, "backend/shopping-cart-service/app.py", "");
    file(r, "backend/layers/shared.py", "");
    // A second template reaching as much of the folder as the first: left out.
    file(
        r,
        "backend/another.yaml",
        &format!("{sam}Resources:\n{}", function("Other", ".")),
    );
    // Plain CloudFormation: one folder of stacks, one of which is named like a folder that
    // holds a service already.
    let queue =
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    for t in [
        "infra/vpc.json",
        "infra/vpc.yaml",
        "infra/db.yaml",
        "infra/db/template.yaml",
        "infra/site.json",
    ] {
        file(r, t, queue);
    }
    // A source with a preprocessor's tags beside the JSON it wrote: the JSON is the stack.
    file(
        r,
        "infra/site.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      Tags: !Rain::Embed tags.txt\n",
    );

    let s = scan(r).unwrap();
    let found: Vec<(&str, &str, &str)> = s
        .services
        .iter()
        .map(|f| (f.dir.as_str(), f.name.as_str(), f.file.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("backend", "backend", "another.yaml"),
            ("backend/auth", "auth", "../auth.yaml"),
            (
                "backend/product-mock-service",
                "product-mock-service",
                "../product-mock.yaml"
            ),
            // infra/db holds a service already: db.yaml keeps infra itself.
            ("infra", "infra", "db.yaml"),
            ("infra/site", "site", "../site.json"),
            ("infra/vpc", "vpc", "../vpc.yaml"),
            ("infra/db", "db", "template.yaml"),
        ],
        "{:#?}",
        s.notes
    );
    let notes = s.notes.join("\n");
    for want in [
        "backend/auth.yaml: one of several templates of backend, naming no local path: its service folder is `backend/auth`",
        "backend/product-mock.yaml: one of several templates of backend, its code all in backend/product-mock-service: that is its service folder (template `../product-mock.yaml`)",
        "backend/shoppingcart-service.yaml: reaches as much of backend as another.yaml, which keeps the folder: left out",
        "backend: another.yaml keeps the folder, which holds auth.yaml, product-mock.yaml: a change to one of them redeploys its service too",
        "infra: db.yaml keeps the folder, which holds site.json, vpc.yaml: a change to one of them redeploys its service too",
        "infra/vpc.json: the same stack as infra/vpc.yaml, in another format: left out",
        "infra/site.yaml: the same stack as infra/site.json, in another format: left out",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    let problems: Vec<String> = ferry_package::check_templates(&ws, &ws.services)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // The packager finds the moved service's code inside its folder.
    let ws_mock = ws.service("product-mock-service").unwrap();
    assert_eq!(ws_mock.template, "../product-mock.yaml");
}

/// A pnpm monorepo (swarmion): the packages of `pnpm-workspace.yaml` are the workspace's (a
/// service using one changes with it), its services install from the root, and a TypeScript
/// file named like a configuration that names no service (types) is no service.
#[test]
fn a_pnpm_workspace_gives_its_packages_and_a_program_naming_no_service_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "pnpm-workspace.yaml",
        "packages:\n  - 'services/*'\n  - 'contracts/*'\n  - '!**/test/**'\n",
    );
    file(
        r,
        "lerna.json",
        r#"{"npmClient": "pnpm", "version": "1.0.0"}"#,
    );
    file(
        r,
        "contracts/orders/package.json",
        r#"{"name": "@shop/orders-contracts"}"#,
    );
    file(
        r,
        "services/orders/package.json",
        r#"{"name": "@shop/orders", "dependencies": {"@shop/orders-contracts": "workspace:*"}}"#,
    );
    file(
        r,
        "services/orders/serverless.ts",
        "const config = {\n  service: `${projectName}-orders`,\n  provider: { name: 'aws' },\n};\nexport default config;\n",
    );
    file(
        r,
        "packages/helpers/src/types/serverless.ts",
        "import type { AWS } from '@serverless/typescript';\nexport type Provider = AWS['provider'];\n",
    );
    let s = scan(r).unwrap();
    let found: Vec<(&str, Vec<&String>, bool)> = s
        .services
        .iter()
        .map(|f| (f.dir.as_str(), f.inputs.keys().collect(), f.build.is_some()))
        .collect();
    let contracts = "contracts/orders/**".to_string();
    assert_eq!(found, [("services/orders", vec![&contracts], false)]);
    let notes = s.notes.join("\n");
    for want in [
        "packages/helpers/src/types/serverless.ts: a program that names no `service`, so no Serverless configuration: left out",
        "services/orders: a member of the workspaces of the root (package.json, pnpm-workspace.yaml or lerna.json)",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
}

/// Layouts that must not turn parts into services nor put two services in one folder: several
/// resource files of a Serverless service (included with `${file(…)}`), and two SAM apps of one
/// project both naming its build's output.
#[test]
fn parts_stay_parts_and_two_services_never_move_into_one_folder() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "orders/serverless.yml",
        "service: orders\nprovider:\n  name: aws\nresources:\n  - ${file(resources/table.yml)}\n  - ${file(resources/bucket.yml)}\n",
    );
    let part =
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  T:\n    Type: AWS::SQS::Queue\n";
    file(r, "orders/resources/table.yml", part);
    file(r, "orders/resources/bucket.yml", part);
    let jar = |id: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  {id}:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../../target/app.jar\n      Handler: a.B\n      Runtime: java21\n"
        )
    };
    file(r, "java/pom.xml", "<project/>");
    file(r, "java/sam/a/template.yaml", &jar("A"));
    file(r, "java/sam/b/template.yaml", &jar("B"));
    let s = scan(r).unwrap();
    let found: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|f| (f.dir.as_str(), f.file.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("java", "sam/a/template.yaml"),
            ("java/sam/b", "template.yaml"),
            ("orders", "serverless.yml"),
        ],
        "{:#?}",
        s.notes
    );
    let notes = s.notes.join("\n");
    for want in [
        "orders/resources/table.yml: a template inside the serverless service orders, taken as a part of it",
        "orders/resources/bucket.yml: a template inside the serverless service orders, taken as a part of it",
        "java/sam/b/template.yaml: names paths outside the template's folder, and the folder holding them all, `java`, is (inside) the service folder `java` already: left where it is",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
    // Nothing said of them as services of their own: they are none.
    assert!(
        !notes.contains("orders/resources/table.yml: one of several templates"),
        "{notes}"
    );
}

/// A SAM template with a SAM configuration of its own, inside the folder of another SAM
/// service whose template reaches it by no path, is a service of its own (aws-samples' unicorn
/// workshop: `contracts/infrastructure/domain.yaml` took the folder, and the contracts
/// service's own template.yaml, with its samconfig.toml, was taken as a part of it, never
/// deployed). One it reaches, or one without a configuration of its own, stays a part.
#[test]
fn a_sam_app_with_its_own_configuration_below_another_is_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = |body: &str| format!("Transform: AWS::Serverless-2016-10-31\nResources:\n{body}");
    let function = |code: &str| {
        sam(&format!(
            "  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {code}\n      Handler: a.h\n      Runtime: python3.12\n"
        ))
    };
    file(
        r,
        "contracts/infrastructure/domain.yaml",
        &sam("  Bus:\n    Type: AWS::Events::EventBus\n    Properties:\n      Name: contracts\n"),
    );
    file(
        r,
        "contracts/infrastructure/contracts-service/template.yaml",
        &function("../../src"),
    );
    file(
        r,
        "contracts/infrastructure/contracts-service/samconfig.toml",
        "version = 0.1\n[default.deploy.parameters]\nstack_name = \"contracts\"\n",
    );
    file(r, "contracts/src/a.py", "def h(e, c): pass\n");
    // Without a configuration of its own: a part, as before.
    file(
        r,
        "contracts/infrastructure/extra/template.yaml",
        &sam("  Q:\n    Type: AWS::SQS::Queue\n"),
    );
    let s = scan(r).unwrap();
    let found: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|f| (f.dir.as_str(), f.file.as_str()))
        .collect();
    assert!(
        found.iter().any(|(d, f)| format!("{d}/{f}")
            == "contracts/infrastructure/contracts-service/template.yaml"),
        "{found:?}\n{:#?}",
        s.notes
    );
    assert!(
        found.iter().any(|(_, f)| f.ends_with("domain.yaml")),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(d, f)| d.ends_with("extra") || f.contains("extra/")),
        "{found:?}"
    );
    let notes = s.notes.join("\n");
    assert!(
        !notes.contains(
            "contracts/infrastructure/contracts-service/template.yaml: a template inside"
        ),
        "{notes}"
    );
    assert!(
        notes.contains("contracts/infrastructure/extra/template.yaml: a template inside the sam service contracts/infrastructure"),
        "{notes}"
    );
    // A change to its template redeploys it, though it lies in the other's folder (the
    // deepest folder owns what is in it): before, only the other redeployed.
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    let owners = ferry_manifest::Owners::of_workspace(&ws).unwrap();
    let contracts = ws
        .services
        .iter()
        .find(|s| {
            s.template_path()
                .ends_with("contracts-service/template.yaml")
        })
        .unwrap();
    let owned = owners.services_of("contracts/infrastructure/contracts-service/template.yaml");
    assert!(owned.contains(&contracts.name.as_str()), "{owned:?}");
}

/// An import built from a template parameter that has a default (a parent stack's name, `''`
/// unless given, as widdix/aws-cf-templates writes them) is made only when the parameter is
/// given: noted with what to set, no order inferred. One without a default links as before.
#[test]
fn an_import_through_a_defaulted_stack_parameter_is_noted_not_linked() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "alert/template.yaml",
        "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\nOutputs:\n  TopicARN:\n    Value: !Ref Topic\n    Export:\n      Name: !Sub '${AWS::StackName}-TopicARN'\n",
    );
    let importer = |default: &str| {
        format!(
            "Parameters:\n  ParentAlertStack:\n    Type: String\n{default}Conditions:\n  HasAlert: !Not [!Equals [!Ref ParentAlertStack, '']]\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n  Alarm:\n    Type: AWS::CloudWatch::Alarm\n    Condition: HasAlert\n    Properties:\n      AlarmActions:\n        - Fn::ImportValue: !Sub '${{ParentAlertStack}}-TopicARN'\n"
        )
    };
    file(r, "db/template.yaml", &importer("    Default: ''\n"));
    let s = scan(r).unwrap();
    let db = s.services.iter().find(|f| f.dir == "db").unwrap();
    assert!(db.depends_on.is_empty(), "{:?}", db.depends_on);
    let notes = s.notes.join("\n");
    assert!(
        notes.contains("db: imports `${ParentAlertStack}-TopicARN` through its template parameter ParentAlertStack (default ``), which matches alert's export `${AWS::StackName}-TopicARN` only when ParentAlertStack is given alert's stack name: depends-on not inferred"),
        "{notes}"
    );
    // Required: the import is always made, so the order is inferred.
    file(r, "db/template.yaml", &importer(""));
    let s = scan(r).unwrap();
    let db = s.services.iter().find(|f| f.dir == "db").unwrap();
    assert_eq!(db.depends_on.keys().collect::<Vec<_>>(), ["alert"]);
    // The exporter building its export from a parameter of the same name and default
    // (`${Environment}-VpcId` on both sides, as kpanic9/aws-vpc-cf writes them): the names
    // match as deployed, so the order is inferred, as validate finds it (a probe's find: init
    // advised giving Environment the exporter's stack name, which would break the import).
    let env = "Parameters:\n  Environment:\n    Type: String\n    Default: SampleApp\n";
    file(
        r,
        "alert/template.yaml",
        &format!(
            "{env}Resources:\n  Topic:\n    Type: AWS::SNS::Topic\nOutputs:\n  TopicARN:\n    Value: !Ref Topic\n    Export:\n      Name: !Sub '${{Environment}}-TopicARN'\n"
        ),
    );
    file(
        r,
        "db/template.yaml",
        &format!(
            "{env}Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !ImportValue\n        Fn::Sub: '${{Environment}}-TopicARN'\n"
        ),
    );
    let s = scan(r).unwrap();
    let db = s.services.iter().find(|f| f.dir == "db").unwrap();
    assert_eq!(
        db.depends_on.keys().collect::<Vec<_>>(),
        ["alert"],
        "{:#?}",
        s.notes
    );
    assert!(
        !s.notes
            .iter()
            .any(|n| n.contains("through its template parameter")),
        "{:#?}",
        s.notes
    );
    // The exporter's deploy script giving Environment another value than the importer's
    // default: the names differ as deployed, so no order is inferred (a review's find).
    file(
        r,
        "alert/deploy.sh",
        "sam deploy --stack-name alert-$STAGE --parameter-overrides Environment=$STAGE\n",
    );
    let s = scan(r).unwrap();
    let db = s.services.iter().find(|f| f.dir == "db").unwrap();
    assert!(db.depends_on.is_empty(), "{:?}", db.depends_on);
}

/// An Amplify CLI backend's templates are the nested stacks `amplify push` deploys: noted and
/// left out, not taken for services with every parameter to fill.
#[test]
fn an_amplify_backend_is_noted_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let queue = "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n  env:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    file(r, "web/amplify/backend/backend-config.json", "{}");
    file(
        r,
        "web/amplify/backend/auth/users/users-cloudformation-template.yml",
        queue,
    );
    file(
        r,
        "web/amplify/backend/api/shop/stacks/CustomResources.json",
        "{\"Resources\": {\"Q\": {\"Type\": \"AWS::SQS::Queue\"}}}",
    );
    file(r, "api/template.yaml", queue);
    let s = scan(r).unwrap();
    let dirs: Vec<&str> = s.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(dirs, ["api"], "{:#?}", s.notes);
    assert!(
        s.notes.iter().any(|n| n.starts_with(
            "web/amplify/backend: an Amplify CLI backend (backend-config.json), whose templates are the nested stacks `amplify push` deploys"
        )),
        "{:#?}",
        s.notes
    );
    // Without its backend-config.json, a folder of that name is searched as any other.
    std::fs::remove_file(r.join("web/amplify/backend/backend-config.json")).unwrap();
    let s = scan(r).unwrap();
    assert!(s.services.len() > 1, "{:#?}", s.services);
}

/// A repository of AWS CDK apps only: the error says so, naming them.
#[test]
fn cdk_apps_are_named_in_the_error_and_in_the_notes() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(r, "infra/cdk.json", r#"{"app": "npx ts-node bin/app.ts"}"#);
    let e = scan(r).unwrap_err().to_string();
    assert!(
        e.contains("It holds AWS CDK apps (infra), which Ferry does not deploy"),
        "{e}"
    );
    file(
        r,
        "api/template.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let s = scan(r).unwrap();
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("infra: an AWS CDK app (cdk.json), which Ferry does not deploy")),
        "{:?}",
        s.notes
    );
}

/// A configuration program (`serverless.ts`) naming its service literally: the guessed stack
/// name is the framework's, `<service>-<stage>`, not the folder's; one naming it through a
/// variable keeps the folder's guess.
#[test]
fn a_program_s_literal_service_name_gives_the_guessed_stack_name() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "orders/serverless.ts",
        "const config = {\n  service: 'shop-orders',\n  provider: { name: 'aws' },\n};\nexport default config;\n",
    );
    file(
        r,
        "users/serverless.ts",
        "const config = {\n  service: `${prefix}-users`,\n  provider: { name: 'aws' },\n};\nexport default config;\n",
    );
    let s = scan(r).unwrap();
    let guessed: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.stack_name
                    .as_ref()
                    .map(|(n, _)| n.as_str())
                    .unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        guessed,
        [
            ("orders", "shop-orders-{stage}"),
            ("users", "users-{stage}")
        ]
    );
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    let dev = ws.stage("dev").unwrap();
    assert_eq!(ws.stack_name("orders", &dev), "shop-orders-dev");
}

/// Hostile layouts found by probing: every one ends in files that load, or in a refusal that
/// writes nothing.
#[test]
fn hostile_layouts_end_in_loadable_files_or_a_refusal_that_writes_nothing() {
    let sam = "Transform: AWS::Serverless-2016-10-31\n";
    let app = |id: &str, to: &str, extra: &str| {
        format!(
            "  {id}:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: {to}\n{extra}"
        )
    };
    let queue =
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";

    // An umbrella ordering its apps in a circle: the edge closing it is left out.
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let resources = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    file(r, "x/template.yaml", &format!("{sam}{resources}"));
    file(r, "y/template.yaml", &format!("{sam}{resources}"));
    file(
        r,
        "all/template.yaml",
        &format!(
            "{sam}Resources:\n{}{}",
            app("X", "../x/template.yaml", "    DependsOn: Y\n"),
            app("Y", "../y/template.yaml", "    DependsOn: X\n")
        ),
    );
    // Two templates of other folders nesting each other: both kept, noted.
    file(
        r,
        "a/template.yaml",
        &format!("{sam}Resources:\n{}", app("B", "../b/template.yaml", "")),
    );
    file(
        r,
        "b/template.yaml",
        &format!("{sam}Resources:\n{}", app("A", "../a/template.yaml", "")),
    );
    // A minified JSON SAM template.
    file(
        r,
        "min/template.json",
        r#"{"Transform":"AWS::Serverless-2016-10-31","Resources":{"Q":{"Type":"AWS::SQS::Queue"}}}"#,
    );
    // A folder of two stacks, for running init twice.
    file(r, "t/one.yaml", queue);
    file(r, "t/two.yaml", queue);
    let s = scan(r).unwrap();
    let dirs: Vec<&str> = s.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(
        dirs,
        ["a", "b", "min", "t/one", "t/two", "x", "y"],
        "{:#?}",
        s.notes
    );
    let notes = s.notes.join("\n");
    assert!(
        notes.contains("a/template.yaml, b/template.yaml: nest each other"),
        "{notes}"
    );
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    // Again, over what it wrote: the same services.
    let again = scan(r).unwrap();
    let dirs_again: Vec<&str> = again.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(dirs_again, dirs, "{:#?}", again.notes);

    // A symbolic link where init writes (a dangling one too): refused, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(r, "api/template.yaml", queue);
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("created.toml"), r.join("ferry.toml")).unwrap();
    let s = scan(r).unwrap();
    for existing in [Existing::Refuse, Existing::Overwrite, Existing::Keep] {
        let e = write(r, &render(&s, r), existing).unwrap_err().to_string();
        assert!(e.contains("ferry.toml is a symbolic link"), "{e}");
    }
    assert!(!outside.path().join("created.toml").exists());
    assert!(!r.join("api/service.toml").exists());

    // A NoEcho of any spelling keeps the value out.
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "db/template.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n  Pass:\n    Type: String\n    NoEcho: 'TRUE'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "db/samconfig.toml",
        "[default.deploy.parameters]\nparameter_overrides = \"Pass=SECRETVAL\"\n",
    );
    let s = scan(r).unwrap();
    assert!(s.services[0].parameters.is_empty());
    assert!(!s.notes.join("\n").contains("SECRETVAL"));
}

/// What init passes over is said: a template that is not UTF-8, folders too deep to search.
#[test]
fn a_template_not_utf8_and_folders_too_deep_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let queue =
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    file(r, "api/template.yaml", queue);
    let mut latin1 = queue.as_bytes().to_vec();
    latin1.extend_from_slice(b"# caf\xe9\n");
    fs::create_dir_all(r.join("old")).unwrap();
    fs::write(r.join("old/template.yaml"), latin1).unwrap();
    file(r, "a/b/c/d/e/f/g/h/i/template.yaml", queue);
    let s = scan(r).unwrap();
    let dirs: Vec<&str> = s.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(dirs, ["api"]);
    let notes = s.notes.join("\n");
    for want in [
        "old/template.yaml: not UTF-8 text, so not read",
        "a/b/c/d/e/f/g/h/i: more than 8 folders below the root, so neither it nor any folder as deep was searched",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
}

/// The test thread's filesystem uid, `nobody`'s until dropped: root reads any folder whatever its
/// mode (and so would the test), a user other than the owner cannot read one of mode 000. The
/// filesystem uid is the thread's own, so other tests are untouched.
struct Nobody;

impl Nobody {
    fn new() -> Self {
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(65534));
        Nobody
    }
}

impl Drop for Nobody {
    fn drop(&mut self) {
        nix::unistd::setfsuid(nix::unistd::getuid());
    }
}

/// What init cannot read is said, not passed over: a folder it cannot list, a template it
/// cannot open, and a template larger than CloudFormation takes.
#[test]
fn unreadable_folders_and_templates_and_oversized_templates_are_noted() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let queue =
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    file(r, "api/template.yaml", queue);
    // Named like a tool's file, but a template.
    file(r, "shipping/package-tracking.yaml", queue);
    file(r, "locked/inner/template.yaml", queue);
    file(r, "sealed/template.yaml", queue);
    file(r, "sealed/package.json", "{}");
    file(
        r,
        "fw/serverless.yml",
        "service: fw\nprovider:\n  name: aws\n",
    );
    let mut big = queue.to_string();
    while big.len() <= 1_048_576 {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    file(r, "huge/template.yaml", &big);
    // Data, not a template: too large, and said nothing of.
    file(
        r,
        "data/fixtures.json",
        &format!("[{}0]", "0,".repeat(600_000)),
    );
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    mode(r, 0o755);
    mode(&r.join("locked"), 0o000);
    mode(&r.join("sealed/template.yaml"), 0o000);
    mode(&r.join("sealed/package.json"), 0o000);
    mode(&r.join("fw/serverless.yml"), 0o000);
    let s = {
        let _nobody = Nobody::new();
        assert!(
            fs::read_dir(r.join("locked")).is_err()
                && fs::read(r.join("sealed/template.yaml")).is_err(),
            "the test needs a folder and a file it cannot read"
        );
        scan(r).unwrap()
    };
    mode(&r.join("locked"), 0o755);
    let dirs: Vec<&str> = s.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(
        dirs,
        ["api", "fw", "shipping"],
        "a configuration not read is still a service; a template named like a tool's file is found"
    );
    let notes = s.notes.join("\n");
    // A tool's file is never looked at as a template, readable or not.
    assert!(!notes.contains("package.json"), "{notes}");
    for want in [
        "fw/serverless.yml: could not be read (Permission denied",
        "locked: a folder that could not be listed (Permission denied",
        "sealed/template.yaml: could not be read (Permission denied",
        "huge/template.yaml: reads like a CloudFormation template but is 1048",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
    assert!(!notes.contains("fixtures.json"), "{notes}");
}

/// A nested template several SAM services share (aws-samples/aws-serverless-ecommerce-platform
/// keeps `shared/templates/dlq.yaml`, a queue and its alarm, nested by four services) is a part
/// of each, not a service of its own, and does not make its nesters umbrellas: each nesting
/// service declares it, and what it names, among its inputs; what init writes validates.
#[test]
fn a_nested_template_several_services_share_is_their_input_not_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let nester = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.handler\n      Runtime: python3.12\n  DeadLetters:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: ../shared/templates/dlq.yaml\n";
    for svc in ["orders", "payment"] {
        file(r, &format!("{svc}/template.yaml"), nester);
        file(r, &format!("{svc}/src/app.py"), "def handler(e, c): pass\n");
    }
    file(
        r,
        "shared/templates/dlq.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Queue:\n    Type: AWS::SQS::Queue\n  Redrive:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: redrive/\n      Handler: app.handler\n      Runtime: python3.12\n  Alarms:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: alarms/alarms.yaml\n",
    );
    file(
        r,
        "shared/templates/redrive/app.py",
        "def handler(e, c): pass\n",
    );
    // What the shared template nests in turn, and the code that names.
    file(
        r,
        "shared/templates/alarms/alarms.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Page:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../../pager\n      Handler: app.handler\n      Runtime: python3.12\n",
    );
    file(r, "shared/pager/app.py", "def handler(e, c): pass\n");
    let s = scan(r).unwrap();
    let found: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|f| (f.name.as_str(), f.dir.as_str()))
        .collect();
    assert_eq!(found, [("orders", "orders"), ("payment", "payment")]);
    let notes = s.notes.join("\n");
    assert!(
        notes.contains("shared/templates/dlq.yaml: nested by orders/template.yaml, payment/template.yaml (a TemplateURL or an application's Location): a part of each, which deploys a stack of it, not a service; each declares it in `inputs`"),
        "{notes}"
    );
    assert!(
        !notes.contains("nests the templates of other services"),
        "{notes}"
    );
    for f in &s.services {
        let inputs: Vec<&str> = f.inputs.keys().map(String::as_str).collect();
        assert_eq!(
            inputs,
            [
                "shared/pager",
                "shared/templates/alarms/alarms.yaml",
                "shared/templates/dlq.yaml",
                "shared/templates/redrive"
            ],
            "{}",
            f.name
        );
    }
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    let problems: Vec<String> = ferry_package::check_templates(&ws, &ws.services)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // An edit of the shared template redeploys both.
    let owners = ferry_manifest::Owners::of_workspace(&ws).unwrap();
    assert_eq!(
        owners.services_of("shared/templates/redrive/app.py"),
        ["orders", "payment"]
    );
}

/// An umbrella at the root that nests the services' templates by the S3 address the
/// repository's own scripts upload them to, as aws-samples/ecs-refarch-cloudformation's
/// `master.yaml` does: left out with a note (it was dropped in silence), and its `DependsOn`
/// and `Fn::GetAtt <Stack>.Outputs.<Key>` parameters give the services their order and
/// parameters. A template at the root nesting nothing known is noted as one to move.
#[test]
fn an_umbrella_nesting_templates_by_their_s3_addresses_gives_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "master.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  VPC:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: https://s3.amazonaws.com/refarch/infrastructure/vpc.yaml\n  Cluster:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: !Sub https://${Bucket}.s3.amazonaws.com/infrastructure/cluster.yaml?versionId=3\n      Parameters:\n        VPC: !GetAtt VPC.Outputs.VPC\n        Name: !Ref AWS::StackName\n        Size: 4\n        Path: /products\n  Elsewhere:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: https://s3.amazonaws.com/refarch/not/here.yaml\n    DependsOn: Cluster\n",
    );
    file(
        r,
        "infrastructure/vpc.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  VPC:\n    Type: AWS::EC2::VPC\nOutputs:\n  VPC:\n    Value: !Ref VPC\n",
    );
    file(
        r,
        "infrastructure/cluster.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n  VPC:\n    Type: String\n  Name:\n    Type: String\n  Size:\n    Type: Number\n  Path:\n    Type: String\n    Default: /\nResources:\n  Cluster:\n    Type: AWS::ECS::Cluster\n",
    );
    file(
        r,
        "lonely.json",
        r#"{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}"#,
    );
    let s = scan(r).unwrap();
    let found: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|f| (f.name.as_str(), f.dir.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("cluster", "infrastructure/cluster"),
            ("vpc", "infrastructure/vpc")
        ]
    );
    let notes = s.notes.join("\n");
    assert!(
        notes.contains("master.yaml: nests the templates of other services by the addresses they are uploaded to (infrastructure/cluster.yaml, infrastructure/vpc.yaml)"),
        "{notes}"
    );
    assert!(
        notes.contains(
            "lonely.json at the repository root: Ferry deploys services from folders of their own"
        ),
        "{notes}"
    );
    let cluster = &s.services[0];
    assert_eq!(
        cluster.depends_on.keys().collect::<Vec<_>>(),
        ["vpc"],
        "{:?}",
        cluster.depends_on
    );
    assert_eq!(cluster.parameters["VPC"].0, "${output:vpc.VPC}");
    // The literals it passes, as they are; a value it computes is left to fill in.
    assert_eq!(cluster.parameters["Size"].0, "4");
    assert_eq!(cluster.parameters["Path"].0, "/products");
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    let text = fs::read_to_string(r.join("infrastructure/cluster/service.toml")).unwrap();
    assert!(
        text.contains("Path = \"/products\"") && text.contains("Name = \"\""),
        "{text}"
    );
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ws.services.len(), 2);
}

/// Two umbrellas, one per environment, nesting the same services: the services are nested
/// twice but are no shared part; both umbrellas are left out and the services stay.
#[test]
fn two_umbrellas_nesting_the_same_services_leave_the_services_in() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = "Transform: AWS::Serverless-2016-10-31\n";
    let umbrella = format!(
        "{sam}Resources:\n  A:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: ../../services/a/template.yaml\n  B:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: ../../services/b/template.yaml\n    DependsOn: A\n"
    );
    file(r, "envs/prod/template.yaml", &umbrella);
    file(r, "envs/dev/template.yaml", &umbrella);
    for svc in ["a", "b"] {
        file(
            r,
            &format!("services/{svc}/template.yaml"),
            &format!(
                "{sam}Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.handler\n      Runtime: python3.12\n"
            ),
        );
        file(
            r,
            &format!("services/{svc}/src/app.py"),
            "def handler(e, c): pass\n",
        );
    }
    let s = scan(r).unwrap();
    let found: Vec<&str> = s.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(found, ["services/a", "services/b"]);
    let notes = s.notes.join("\n");
    for umbrella in ["envs/dev/template.yaml", "envs/prod/template.yaml"] {
        assert!(
            notes.contains(&format!(
                "{umbrella}: nests the templates of other services"
            )),
            "{notes}"
        );
    }
    assert!(!notes.contains("a part of each"), "{notes}");
    assert_eq!(s.services[1].depends_on.keys().collect::<Vec<_>>(), ["a"]);
}

/// Templates written for a build step that copies each to a folder below it first
/// (aws-samples/aws-serverless-ecommerce-platform: `warehouse/build/template.yaml`, naming
/// `../../shared/templates/dlq.yaml`): the path leaves the repository from the template's own
/// folder. init says what it means and how to write it for Ferry, declares it as an input, and
/// takes the template they share for theirs, not a service.
#[test]
fn paths_written_for_a_build_folder_are_explained_and_their_shared_template_is_no_service() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let nester = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.handler\n      Runtime: python3.12\n  DeadLetterQueue:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ../../shared/templates/dlq.yaml\n";
    for svc in ["orders", "warehouse"] {
        file(r, &format!("{svc}/template.yaml"), nester);
        file(r, &format!("{svc}/src/app.py"), "def handler(e, c): pass\n");
    }
    file(
        r,
        "shared/templates/dlq.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Queue:\n    Type: AWS::SQS::Queue\n",
    );
    let s = scan(r).unwrap();
    let found: Vec<&str> = s.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(found, ["orders", "warehouse"]);
    let notes = s.notes.join("\n");
    for want in [
        "shared/templates/dlq.yaml: nested by orders/template.yaml, warehouse/template.yaml",
        "orders/template.yaml: DeadLetterQueue.TemplateURL names a path that leaves the repository from orders, written for a build step that copies the template to a folder below it first (`build/`); from there it is shared/templates/dlq.yaml, which is what it means: Ferry packages the template where it is, so write `../shared/templates/dlq.yaml` there",
    ] {
        assert!(notes.contains(want), "{want}\n---\n{notes}");
    }
    for f in &s.services {
        assert_eq!(
            f.inputs.keys().collect::<Vec<_>>(),
            ["shared/templates/dlq.yaml"],
            "{}",
            f.name
        );
    }
    // Written as said, the services validate.
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    for svc in ["orders", "warehouse"] {
        file(
            r,
            &format!("{svc}/template.yaml"),
            &nester.replace("../../shared", "../shared"),
        );
    }
    let ws = ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    let problems: Vec<String> = ferry_package::check_templates(&ws, &ws.services)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Every input init writes can match what the repository holds (validate refuses one that
/// cannot): a file read only where it exists is said and left out, and one named by a variable
/// at the root becomes the files its name starts with.
#[test]
fn inputs_name_only_what_the_repository_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    file(
        r,
        "services/orders/serverless.yml",
        "service: orders\nprovider:\n  name: aws\n  environment:\n    A: ${file(../../shared/settings.yml):a}\n    B: ${file(../../missing/extra.yml), ''}\n    C: ${file(../../.env.${sls:stage}):c}\nfunctions:\n  f:\n    handler: h.f\n",
    );
    file(r, "shared/settings.yml", "a: 1\n");
    let s = scan(r).unwrap();
    let orders = &s.services[0];
    assert_eq!(
        orders.inputs.keys().collect::<Vec<_>>(),
        [".env.*", "shared/settings.yml"],
        "{:?}",
        s.notes
    );
    assert!(
        s.notes.iter().any(|n| n.starts_with("services/orders: reads `../../missing/extra.yml`")
            && n.ends_with("but the repository holds no `missing/extra.yml`: left out of inputs; add it when it exists")),
        "{:?}",
        s.notes
    );
}

// An absolute Ferry path into the repository itself (vendored Ferry, or the default: the
// checkout init was built from) is written relative to it, which every clone has; one outside
// it is written as given, and noted.
#[test]
fn a_runner_path_inside_the_repository_is_written_relative_to_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("vendor/ferry")).unwrap();
    let cargo_toml = |path: &str| {
        let (files, notes) = runner(dir.path(), &Runner::Path(path.to_string()));
        let toml = files
            .into_iter()
            .find(|(p, _)| p == "xtask/Cargo.toml")
            .unwrap()
            .1;
        (toml, notes.join("\n"))
    };
    let inside = dir.path().join("vendor/ferry");
    let (toml, notes) = cargo_toml(inside.to_str().unwrap());
    assert!(
        toml.contains(r#"ferry-cli = { path = "../vendor/ferry/crates/ferry-cli" }"#),
        "{toml}"
    );
    assert!(!notes.contains("a folder of this machine"), "{notes}");
    // Not made yet (a submodule to add): inside all the same.
    let later = std::fs::canonicalize(dir.path())
        .unwrap()
        .join("tools/ferry");
    let (toml, notes) = cargo_toml(later.to_str().unwrap());
    assert!(
        toml.contains(r#"ferry-cli = { path = "../tools/ferry/crates/ferry-cli" }"#),
        "{toml}"
    );
    assert!(!notes.contains("a folder of this machine"), "{notes}");
    let (toml, _) = cargo_toml(dir.path().to_str().unwrap());
    assert!(
        toml.contains(r#"ferry-cli = { path = ".././crates/ferry-cli" }"#),
        "{toml}"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let (toml, notes) = cargo_toml(elsewhere.path().to_str().unwrap());
    assert!(
        toml.contains(&format!(
            "path = \"{}/crates/ferry-cli\"",
            elsewhere.path().display()
        )),
        "{toml}"
    );
    assert!(notes.contains("a folder of this machine"), "{notes}");
}

/// A template parameter that names the stage and defaults to one (`Environment`, default `dev`,
/// as AWS's samples write it) is given `${stage}`: before, init left it out, so staging and
/// prod deployed as `dev`, under dev's names and conditions. One the template could not take
/// a stage's name in (a default that is no stage name of ferry.toml, AllowedValues, a mapping
/// looked up by it, a comparison with another word) is only commented on.
#[test]
fn a_parameter_naming_the_stage_with_a_default_is_given_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let service = |dir: &str, parameters: &str, rest: &str| {
        file(
            r,
            &format!("{dir}/template.yaml"),
            &format!("Parameters:\n{parameters}{rest}Resources:\n  Q: {{Type: AWS::SQS::Queue}}\n"),
        );
    };
    file(
        r,
        "orders/template.yaml",
        "Parameters:\n  Environment:\n    Type: String\n    Default: dev\n  LogLevel:\n    Type: String\n    Default: dev\nConditions:\n  IsProd: !Equals [!Ref Environment, prod]\nResources:\n  Bus:\n    Type: AWS::Events::EventBus\n    Properties:\n      Name: !Sub 'ecommerce-${Environment}'\n",
    );
    service(
        "payments",
        "  Stage:\n    Type: String\n    Default: prod\n    AllowedValues: [dev, prod]\n",
        "",
    );
    service(
        "net",
        "  Environment:\n    Type: String\n    Default: production\n",
        "Conditions:\n  IsProd: !Equals [!Ref Environment, production]\n",
    );
    service("app", "  Stage:\n    Type: String\n    Default: Dev\n", "");
    service(
        "sized",
        "  EnvName:\n    Type: String\n",
        "Mappings:\n  Size:\n    dev: {N: 1}\n    prod: {N: 3}\nConditions:\n  Big: !Equals [!FindInMap [Size, !Ref EnvName, N], 3]\n",
    );
    service(
        "plain",
        "  Env:\n    Type: String\n",
        "Conditions:\n  IsProd: !Equals [prod, !Ref Env]\n  Given: !Not [!Equals [!Ref Env, '']]\n",
    );
    service(
        "deep",
        "  Stage:\n    Type: String\n    Default: dev\n",
        "Mappings:\n  M:\n    Cfg: {dev: 1, prod: 2}\nConditions:\n  Two: !Equals [!FindInMap [M, Cfg, !Ref Stage], 2]\n",
    );
    let s = scan(r).unwrap();
    let files = render(&s, r);
    let manifest = |dir: &str| {
        files
            .iter()
            .find(|(p, _)| p == &format!("{dir}/service.toml"))
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("{files:#?}"))
    };
    let orders = manifest("orders");
    assert!(
        orders.contains("# Environment names the stage (default `dev`): each stage gives its own")
            && orders.contains("\nEnvironment = \"${stage}\"\n"),
        "{orders}"
    );
    // A parameter named otherwise keeps its default.
    assert!(!orders.contains("LogLevel"), "{orders}");
    for (dir, key, why) in [
        (
            "payments",
            "Stage",
            "its AllowedValues (dev, prod) take no preview's name",
        ),
        (
            "net",
            "Environment",
            "its default `production` is no stage name of ferry.toml (dev, staging, prod)",
        ),
        (
            "app",
            "Stage",
            "its default `Dev` is no stage name of ferry.toml",
        ),
    ] {
        let m = manifest(dir);
        assert!(
            m.contains(&format!("# {key} names the stage (default `"))
                && m.contains(why)
                && !m.contains(&format!("\n{key} = ")),
            "{dir}: {m}"
        );
    }
    // Without a default: given `${stage}` where the template takes it, else left to fill.
    let sized = manifest("sized");
    assert!(
        sized.contains("# EnvName names the stage, but the template looks it up in Size, whose keys a preview's name is none of")
            && sized.contains("\nEnvName = \"\"\n"),
        "{sized}"
    );
    // Compared with prod, and with "" (whether it is given): the stage fits.
    assert!(
        manifest("plain").contains("\nEnv = \"${stage}\"\n"),
        "{}",
        manifest("plain")
    );
    // A mapping's second key: a preview's name is none of its keys either.
    let deep = manifest("deep");
    assert!(
        deep.contains("but the template looks it up in M, whose keys a preview's name is none of")
            && !deep.contains("\nStage = "),
        "{deep}"
    );
    // What init wrote loads.
    write(r, &files, Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap();
    let orders = ws.service("orders").unwrap();
    assert!(orders.parameters.contains_key("Environment"));
}

/// An import through a template parameter without a default (`${ParentClientStack}-…`, as
/// widdix's templates write it) of another service's `${AWS::StackName}-…` export: the
/// dependency was inferred, but the parameter left empty, so the deploy imported
/// `-ClientSecurityGroup`. It now takes the exporter's stack name.
#[test]
fn a_parent_stack_parameter_takes_the_exporters_stack_name() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "client-sg/template.yaml",
        "Resources:\n  SG: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: client}}\nOutputs:\n  Id:\n    Value: !Ref SG\n    Export:\n      Name: !Sub '${AWS::StackName}-ClientSecurityGroup'\n",
    );
    file(
        r,
        "documentdb/template.yaml",
        "Parameters:\n  ParentClientStack:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Value: {'Fn::ImportValue': !Sub '${ParentClientStack}-ClientSecurityGroup'}\n",
    );
    let s = scan(r).unwrap();
    let files = render(&s, r);
    let manifest = &files
        .iter()
        .find(|(p, _)| p == "documentdb/service.toml")
        .unwrap_or_else(|| panic!("{files:#?}"))
        .1;
    assert!(
        manifest.contains("depends-on = [\"client-sg\"]")
            && manifest.contains("\nParentClientStack = \"client-sg-${stage}\"\n")
            && manifest.contains("# the name of client-sg's stack, whose export `${AWS::StackName}-ClientSecurityGroup` ParentClientStack names"),
        "{manifest}"
    );
    write(r, &files, Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap();
    let dev = ws.stage("dev").unwrap();
    assert_eq!(ws.stack_name("client-sg", &dev), "client-sg-dev");
}

/// A Serverless service that reads a `custom` mapping by the stage (`custom.profile`, keyed
/// `dev` and `prod` only, as bush/serverless-stack-demo-mono-api writes it) cannot compile for
/// the `staging` stage `ferry.toml` is written with: init says so (before, the deploy of
/// staging failed with "Cannot resolve variable").
#[test]
fn a_stage_map_lacking_a_stage_of_ferry_toml_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "services/notes/serverless.yml",
        "service: notes\ncustom:\n  profile:\n    dev: p2c-dev\n    prod: p2c-prod\n  sizes:\n    dev: 1\n    staging: 2\n    prod: 3\n  unrelated:\n    dev: x\n    prod: y\nprovider:\n  name: aws\n  profile: ${self:custom.profile.${sls:stage}}\n  memorySize: ${self:custom.sizes.${sls:stage}}\n",
    );
    let s = scan(r).unwrap();
    let said: Vec<&String> = s.notes.iter().filter(|n| n.contains("custom.")).collect();
    assert_eq!(
        said,
        [
            "services/notes/serverless.yml: custom.profile gives a value for stages dev, prod only, read by the stage: its compile for stage staging fails; add that stage to it, or leave it out of ferry.toml"
        ],
        "{:#?}",
        s.notes
    );
}

// A Serverless handler loading code from outside its folder with nothing to bundle it: the
// framework zips only the service folder, so the function would fail on its first call. `init`
// and `validate` say so; a bundler plugin, TypeScript, or an import only a test makes do not.
#[test]
fn a_serverless_handler_importing_from_outside_its_folder_without_a_bundler_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let config = |plugins: &str| {
        format!(
            "service: notes\nprovider:\n  name: aws\n  runtime: nodejs20.x\n{plugins}functions:\n  get:\n    handler: src/get.main\n  list:\n    handler: src/list.main\n"
        )
    };
    file(r, "services/notes/serverless.yml", &config(""));
    // The handler reaches the import through a file of its own folder.
    file(
        r,
        "services/notes/src/get.js",
        "const db = require('./db');\nexports.main = async () => db.get();\n",
    );
    file(
        r,
        "services/notes/src/list.js",
        "exports.main = async () => [];\n",
    );
    file(
        r,
        "services/notes/src/db.js",
        "const { table } = require(\"../../../libs/table\");\nmodule.exports = { get: () => table };\n",
    );
    file(r, "libs/table.js", "exports.table = 'notes';\n");
    // A test importing a shared helper is no handler's: not judged.
    file(
        r,
        "services/billing/serverless.yml",
        &config("").replace("notes", "billing"),
    );
    file(
        r,
        "services/billing/src/get.js",
        "exports.main = async () => 1;\n",
    );
    file(
        r,
        "services/billing/src/list.js",
        "exports.main = async () => [];\n",
    );
    file(
        r,
        "services/billing/test/get.test.js",
        "const h = require('../../../libs/testing');\n",
    );
    file(r, "libs/testing.js", "module.exports = {};\n");
    // Nor is code commented out.
    file(
        r,
        "services/billing/src/list.js",
        "// const old = require('../../../libs/table');\n/* require(\"../../../libs/table\") */\nexports.main = async () => [];\n",
    );
    let want = "services/notes/src/db.js: imports `../../../libs/table`, outside the service folder `services/notes`, and services/notes/serverless.yml names no plugin that bundles (serverless-esbuild, serverless-webpack, serverless-bundle): the framework zips only the service folder, so the function would deploy and then fail to load that module; add a bundler plugin, or move the code into the folder (or into a package it installs)";
    let s = scan(r).unwrap();
    let named: Vec<&String> = s
        .notes
        .iter()
        .filter(|n| n.contains("names no plugin that bundles"))
        .collect();
    assert_eq!(named, [want], "{:?}", s.notes);
    // validate, on what init wrote.
    for (path, text) in render(&s, r) {
        file(r, &path, &text);
    }
    let ws = ferry_manifest::load(r).unwrap();
    let found: Vec<String> = ferry_init::unbundled_imports(&ws)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found, [want]);
    // A bundler plugin (listed, or under `modules`) puts the code into the archive.
    for plugins in [
        "plugins:\n  - serverless-esbuild\n",
        "plugins:\n  modules:\n    - serverless-webpack\n",
        // Or an archive built beforehand, or plugins from a local folder: not judged.
        "package:\n  artifact: dist/notes.zip\n",
        "plugins:\n  localPath: ./plugins\n  modules:\n    - pack\n",
    ] {
        file(r, "services/notes/serverless.yml", &config(plugins));
        assert_eq!(ferry_init::unbundled_imports(&ws), [], "{plugins}");
    }
    // Other plugins bundle nothing.
    file(
        r,
        "services/notes/serverless.yml",
        &config("plugins:\n  - serverless-offline\n"),
    );
    assert_eq!(ferry_init::unbundled_imports(&ws).len(), 1);
    // TypeScript needs a compile step, which may bundle: not judged.
    fs::remove_file(r.join("services/notes/src/db.js")).unwrap();
    file(
        r,
        "services/notes/src/db.ts",
        "import { table } from '../../../libs/table';\nexport const get = () => table;\n",
    );
    assert_eq!(ferry_init::unbundled_imports(&ws), []);
}

// A Serverless configuration whose `params` name stages ferry.toml is not written with: the
// repository deploys to `master`, `val` and `production`, and a deploy of `production` would
// have been an unprotected preview. Said, with what to rename.
#[test]
fn serverless_params_naming_other_stages_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "services/alerts/serverless.yml",
        "service: alerts\nprovider:\n  name: aws\nparams:\n  default:\n    x: 1\n  master:\n    x: 2\n  val:\n    x: 3\n  production:\n    x: 4\n",
    );
    file(
        r,
        "services/other/serverless.yml",
        "service: other\nprovider:\n  name: aws\nparams:\n  default:\n    x: 1\n  dev:\n    x: 2\n  prod:\n    x: 3\n",
    );
    let s = scan(r).unwrap();
    let said: Vec<&String> = s
        .notes
        .iter()
        .filter(|n| n.contains("its params name"))
        .collect();
    assert_eq!(
        said,
        [
            "services/alerts/serverless.yml: its params name the stage(s) master, val, production, which ferry.toml is not written with (dev, staging, prod): rename the [stages.…] of ferry.toml to the names the repository deploys to (keep `protected = true` on production's), else a deploy of `master` or `val` or `production` is a preview stage, unprotected and pruned as any preview"
        ],
        "{:?}",
        s.notes
    );
}

// Paths holding a glob's characters (a route folder `[slug]`, a folder `{a}`) are written as
// the globs that match them alone: as they are, `[slug]` would be one character of `s`, `l`,
// `u`, `g`, and no change there would be seen (`validate` refuses such a glob).
#[test]
fn paths_with_glob_characters_are_written_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "apps/[group]/site/serverless.yml",
        "service: site\nprovider:\n  name: aws\ncustom: ${file(../../../config.${sls:stage}.yml)}\nfunctions:\n  h:\n    handler: handler.main\n",
    );
    // A file named by the stage at the root: the pattern `config.*`, not escaped.
    file(r, "config.dev.yml", "a: 1\n");
    file(
        r,
        "apps/[group]/site/handler.js",
        "const page = require('../../../routes/[slug]/page');\nmodule.exports.main = page;\n",
    );
    file(r, "routes/[slug]/page.js", "module.exports = {};\n");
    let s = scan(r).unwrap();
    let files = render(&s, r);
    assert!(
        ferry_toml(&files).contains("services = [\"apps/[[]group[]]/site\"]"),
        "{}",
        ferry_toml(&files)
    );
    let service = &files
        .iter()
        .find(|(p, _)| p == "apps/[group]/site/service.toml")
        .unwrap()
        .1;
    assert!(
        service.contains("inputs = [\"config.*\", \"routes/[[]slug[]]/**\"]"),
        "{service}"
    );
    write(r, &files, Existing::Refuse).unwrap();
    let ws = ferry_manifest::load(r).unwrap();
    assert_eq!(ws.services.len(), 1);
    let owners = ferry_manifest::Owners::of_workspace(&ws).unwrap();
    assert_eq!(owners.services_of("routes/[slug]/page.js"), ["site"]);
    assert!(owners.services_of("routes/s/page.js").is_empty());
    assert_eq!(owners.services_of("config.prod.yml"), ["site"]);
    // Without the inputs, what `validate` advises is the escaped glob too (and the file the
    // configuration reads).
    file(
        r,
        "apps/[group]/site/service.toml",
        "[service]\nkind = \"serverless\"\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    let found: Vec<String> = ferry_init::undeclared_inputs(&ws, &|_| false)
        .iter()
        .map(|u| u.glob.clone())
        .collect();
    assert_eq!(found, ["routes/[[]slug[]]/**", "config.*"]);
    // With the inputs init wrote, nothing: a file at the root the configuration never reads
    // (a README) is none of `config.*`'s concern (before, it was named, for good).
    file(r, "apps/[group]/site/service.toml", service);
    file(r, "README.md", "# site\n");
    let ws = ferry_manifest::load(r).unwrap();
    assert_eq!(ferry_init::undeclared_inputs(&ws, &|_| false), []);
}

// A SAM service left where it is gets what its template names outside its folder as inputs,
// but never another service's folder: that is noted instead.
#[test]
fn a_sam_path_into_another_service_is_noted_not_made_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n";
    file(
        r,
        "services/orders/template.yaml",
        &format!(
            "{sam}Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../payments/src\n      Runtime: python3.12\n      Handler: a.h\n"
        ),
    );
    file(
        r,
        "services/payments/template.yaml",
        &format!(
            "{sam}Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src\n      Runtime: python3.12\n      Handler: a.h\n"
        ),
    );
    file(r, "services/payments/src/a.py", "");
    let s = scan(r).unwrap();
    let orders = s.services.iter().find(|x| x.name == "orders").unwrap();
    assert!(orders.inputs.is_empty(), "{:?}", orders.inputs);
    assert!(
        s.notes.iter().any(|n| n.contains(
            "names services/payments/src, inside the folder of another service (services/payments)"
        )),
        "{:#?}",
        s.notes
    );
}

/// What a template declares decides its kind, not what its text mentions: a plain
/// CloudFormation template whose strings name the SAM transform (a Bedrock agent's instruction
/// in aws-samples/serverless-samples) was written `kind = "sam"`, which `validate` refused. A
/// skeleton with no resources (`Resources:` left empty, as pattern collections keep) is left
/// out, noted: it was written as a service that `validate` refused.
#[test]
fn a_template_s_kind_is_what_it_declares_and_a_skeleton_is_no_service() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "agent/template.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nDescription: 'Writes templates with \"Transform: AWS::Serverless-2016-10-31\"'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub \"use Transform: AWS::Serverless-2016-10-31 ${AWS::StackName}\"\n",
    );
    file(
        r,
        "api/template.yaml",
        "Transform:\n  - AWS::Serverless-2016-10-31\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      InlineCode: x\n      Handler: index.h\n      Runtime: nodejs20.x\n",
    );
    file(
        r,
        "_model/template.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nDescription: (a pattern's skeleton)\nResources:\n",
    );
    file(
        r,
        "empty/template.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n",
    );
    let s = scan(r).unwrap();
    let kinds: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|f| (f.dir.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("agent", "cloudformation"), ("api", "sam")],
        "{:#?}",
        s.notes
    );
    for skeleton in ["_model", "empty"] {
        assert!(
            s.notes.iter().any(|n| n
                == &format!("{skeleton}/template.yaml: a template with no resources: left out (CloudFormation refuses a stack of none)")),
            "{:#?}",
            s.notes
        );
    }
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
}

/// The stages' region says where it came from: a default when no service names one (before,
/// us-east-1 was written in silence), and how many name it when not all do (a probe: one
/// service of 71 named us-west-1, and every stage took it in silence).
#[test]
fn the_stages_region_says_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let queue = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    file(r, "a/template.yaml", queue);
    file(r, "b/template.yaml", queue);
    let s = scan(r).unwrap();
    assert!(
        s.notes.iter().any(|n| n.starts_with(
            "ferry.toml: no service names its region (a Serverless provider.region, a samconfig region, a deploy script's --region), so every stage is written with `us-east-1`, a default"
        )),
        "{:#?}",
        s.notes
    );
    let files = render(&s, r);
    assert!(
        ferry_toml(&files).contains(
            "# region: no service names one: a default, to set to the one the stacks are in.\n"
        ),
        "{}",
        ferry_toml(&files)
    );
    file(
        r,
        "b/samconfig.toml",
        "[default.deploy.parameters]\nregion = \"us-west-1\"\n",
    );
    let s = scan(r).unwrap();
    assert_eq!(s.region(), "us-west-1");
    assert!(
        s.notes.iter().any(|n| n
            == "ferry.toml: every stage is written with `us-west-1`, which 1 of the 2 services name (b/template.yaml); the other names no region: check that their stacks are there too"),
        "{:#?}",
        s.notes
    );
    assert!(ferry_toml(&render(&s, r)).contains("# region: as 1 of the 2 services name it.\n"));
    // Two regions named once each: the first by name, the same each time, and the note says
    // the other names another (a review's find: it said "no region", and took the last).
    file(
        r,
        "a/samconfig.toml",
        "[default.deploy.parameters]\nregion = \"eu-west-1\"\n",
    );
    let s = scan(r).unwrap();
    assert_eq!(s.region(), "eu-west-1");
    assert!(
        s.notes.iter().any(|n| n
            == "ferry.toml: every stage is written with `eu-west-1`, which 1 of the 2 services name (a/template.yaml); the other names another region (noted below): check that their stacks are there too"),
        "{:#?}",
        s.notes
    );
    file(
        r,
        "a/samconfig.toml",
        "[default.deploy.parameters]\nregion = \"us-west-1\"\n",
    );
    let s = scan(r).unwrap();
    assert!(
        !s.notes.iter().any(|n| n.starts_with("ferry.toml: ")),
        "{:#?}",
        s.notes
    );
}

/// A build output named inside a subfolder holding its own build file (a probe's
/// aws-samples/serverless-samples: `vtl-processor/target/…jar` beside `vtl-processor/pom.xml`)
/// is built there: before, only the service folder was looked at, and no build was guessed.
#[test]
fn a_missing_output_is_built_by_the_nearest_build_file_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "api/template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: vtl-processor/target/vtl-processor-1.0.jar\n      Runtime: java21\n      Handler: a.B::handle\n",
    );
    file(r, "api/vtl-processor/pom.xml", "<project/>\n");
    let s = scan(r).unwrap();
    let api = s.services.iter().find(|f| f.dir == "api").unwrap();
    assert_eq!(
        api.build.as_ref().map(|(argv, _)| argv.clone()),
        Some(vec![
            "sh".to_string(),
            "-c".to_string(),
            "cd vtl-processor && mvn --batch-mode package".to_string()
        ]),
        "{:#?}",
        s.notes
    );
    assert!(
        s.notes.iter().any(|n| n.contains(
            "names api/vtl-processor/target/vtl-processor-1.0.jar, which the repository does not hold: its service.toml builds it with `sh -c \"cd vtl-processor && mvn --batch-mode package\"` (guessed from vtl-processor/pom.xml)"
        )),
        "{:#?}",
        s.notes
    );
    write(r, &render(&s, r), Existing::Refuse).unwrap();
    ferry_manifest::load(r).unwrap_or_else(|e| panic!("{e}"));
    // A build file of the service folder itself (a parent POM of several modules) builds every
    // module: it is the one taken (a review's find: one module of two was built).
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "svc/template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  A:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: fn-a/target/a.jar\n      Runtime: java21\n      Handler: a.A::h\n  B:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: fn-b/target/b.jar\n      Runtime: java21\n      Handler: b.B::h\n",
    );
    for pom in ["svc/pom.xml", "svc/fn-a/pom.xml", "svc/fn-b/pom.xml"] {
        file(r, pom, "<project/>\n");
    }
    let s = scan(r).unwrap();
    let svc = s.services.iter().find(|f| f.dir == "svc").unwrap();
    assert_eq!(
        svc.build.as_ref().map(|(argv, _)| argv.join(" ")),
        Some("mvn --batch-mode package".to_string()),
        "{:#?}",
        s.notes
    );
}

/// A Serverless `${param:…}` that nothing gives stops the framework's compile ("cannot be
/// resolved"): noted with where to give it (before, passed over). One its `params` give by
/// default or for every stage, one with a fallback, and one a Compose file passes are not.
#[test]
fn a_serverless_param_nothing_gives_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "api/serverless.yml",
        "service: api\nprovider:\n  name: aws\n  rolePermissionsBoundary: arn:aws:iam::1:policy/${param:FerryPermissionsBoundary}\n  environment:\n    DOMAIN: ${param:domain}\n    ZONE: ${param:zone}\n    LEVEL: ${param:level, 'info'}\n    BY_DEFAULT: ${param:bydefault}\n    EACH: ${param:each}\n    BUILT: ${param:${sls:stage}-x}\n    AGAIN: ${param:domain}\nparams:\n  default:\n    bydefault: x\n  dev:\n    each: a\n    zone: z\n  staging:\n    each: b\n  prod:\n    each: c\n",
    );
    let s = scan(r).unwrap();
    let said: Vec<&String> = s.notes.iter().filter(|n| n.contains("${param:")).collect();
    assert_eq!(
        said,
        [
            "api/serverless.yml: reads ${param:domain}, ${param:zone}, which neither its params (a default, or each stage's) nor anything else gives: its compile stops with the framework's \"cannot be resolved\"; give them in its service.toml's [parameters] (passed as --param), or under params.default"
        ],
        "{:#?}",
        s.notes
    );
}

/// A workspace package loaded from its build's output (`"main": "./dist/index.js"`, which git
/// ignores) is noted: a fresh clone's compile fails without that build (ae9is/anything's
/// `logger` and `utils`: "Could not resolve"), or bundles a stale one.
#[test]
fn a_workspace_package_loaded_from_its_build_output_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "package.json",
        r#"{"private": true, "workspaces": ["packages/*", "services/*"]}"#,
    );
    file(
        r,
        "packages/logger/package.json",
        r#"{"name": "logger", "main": "./dist/index.js", "scripts": {"build": "tsc"}}"#,
    );
    file(r, "packages/logger/src/index.ts", "export const log = 1;\n");
    file(
        r,
        "packages/util/package.json",
        r#"{"name": "util", "main": "index.js"}"#,
    );
    file(r, "packages/util/index.js", "module.exports = {};\n");
    file(
        r,
        "services/api/package.json",
        r#"{"name": "api", "dependencies": {"logger": "*", "util": "*"}}"#,
    );
    file(
        r,
        "services/api/serverless.yml",
        "service: api\nprovider:\n  name: aws\n",
    );
    let s = scan(r).unwrap();
    let said: Vec<&String> = s
        .notes
        .iter()
        .filter(|n| n.contains("from its build's output"))
        .collect();
    assert_eq!(
        said,
        [
            "services/api: loads the workspace package `logger` from its build's output (`./dist/index.js`), which a fresh clone lacks: see that the service's [package] build builds it before the compile (e.g. `npm run build --workspace logger`), or its compile fails, or takes a stale one"
        ],
        "{:#?}",
        s.notes
    );
}

/// A service in a tests' folder is a fixture of the tests, left out with a note (swarmion's
/// `integrationTests/assetDetection` was made a service to deploy).
#[test]
fn a_service_in_a_tests_folder_is_a_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sls = |n: &str| format!("service: {n}\nprovider:\n  name: aws\n");
    file(r, "services/api/serverless.yml", &sls("api"));
    file(
        r,
        "packages/plugin/integrationTests/assetDetection/serverless.yml",
        &sls("asset"),
    );
    file(
        r,
        "services/api/tests/fixture/serverless.yml",
        &sls("fixture"),
    );
    let s = scan(r).unwrap();
    let dirs: Vec<&str> = s.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(dirs, ["services/api"], "{:#?}", s.notes);
    assert!(
        s.notes.contains(&"packages/plugin/integrationTests/assetDetection/serverless.yml: lies in a tests' folder (`integrationTests`), so taken for a fixture of the tests: left out; add it to ferry.toml's services by hand if it deploys".to_string()),
        "{:#?}",
        s.notes
    );
}

/// A workspace root's generic package name (`@swarmion/root`) does not name the project: its
/// scope does, else the folder (the records' path, the bootstrap stack and the artifact bucket
/// take the name; `root` would meet every other such project's).
#[test]
fn a_generic_root_package_name_does_not_name_the_project() {
    for (name, project) in [
        ("@swarmion/root", "swarmion"),
        ("@acme/shop", "shop"),
        ("shop", "shop"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        file(r, "package.json", &format!("{{\"name\": \"{name}\"}}"));
        file(
            r,
            "api/serverless.yml",
            "service: api\nprovider:\n  name: aws\n",
        );
        assert_eq!(scan(r).unwrap().project, project, "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("my-shop");
    file(&r, "package.json", "{\"name\": \"monorepo\"}");
    file(
        &r,
        "api/serverless.yml",
        "service: api\nprovider:\n  name: aws\n",
    );
    assert_eq!(scan(&r).unwrap().project, "my-shop");
}

/// A Serverless `${env:…}` read with no fallback, which Ferry does not set, stops the compile
/// in a fresh CI job (ae9is/anything read `${env:UNIQ}`, which its `.envrc` loaded): noted.
/// One with a fallback, and the AWS and Ferry variables Ferry gives, are not (not the stage's, which
/// it gives as `--stage`; nor `AWS_PROFILE`, which it removes). A secret by its name is said
/// apart: not to be set in a buildspec (committed) nor given a fallback, as the compiled
/// template would hold it (ESquad's `${env:CLIENT_SECRET}` was advised into the buildspec).
#[test]
fn a_serverless_env_read_without_a_fallback_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "api/serverless.yml",
        "service: api\nprovider:\n  name: aws\n  environment:\n    NAMESPACE: ${env:UNIQ}\n    SAML: ${env:SAML_METADATA}\n    SECRET: ${env:CLIENT_SECRET}\n    PER_STAGE: ${env:API_TOKEN_${sls:stage}}\n    LEVEL: ${env:LEVEL, 'info'}\n    REGION: ${env:AWS_REGION}\n    PROJECT: ${env:FERRY_PROJECT}\n    STAGE: ${env:FERRY_STAGE}\n    AGAIN: ${env:UNIQ}\n  profile: ${env:AWS_PROFILE}\n",
    );
    let s = scan(r).unwrap();
    let said: Vec<&String> = s.notes.iter().filter(|n| n.contains("${env:")).collect();
    assert_eq!(
        said,
        [
            "api/serverless.yml: reads ${env:UNIQ}, ${env:SAML_METADATA}, ${env:FERRY_STAGE}, ${env:AWS_PROFILE} with no fallback, which Ferry does not set: the framework's compile stops (\"cannot be resolved\") wherever they are unset (a fresh CI job); set them where Ferry runs (the buildspec's env, the CI job's), or give a fallback (`${env:NAME, 'value'}`)",
            "api/serverless.yml: reads ${env:CLIENT_SECRET}, ${env:API_TOKEN_${sls:stage}}, secrets by their names, from the environment: the framework writes their values, in clear, into the template it compiles, which Ferry keeps and uploads as it keeps every template, and a buildspec's env is committed; keep them in SSM as a SecureString or in Secrets Manager, and have the function read them when it runs"
        ],
        "{:#?}",
        s.notes
    );

    // A configuration written as a program may set what it reads: only its secrets are said,
    // `process.env.X` (as the framework evaluates it) with `${env:X}`.
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "web/serverless.ts",
        "const config = {\n  service: 'web',\n  provider: {\n    name: 'aws',\n    environment: {\n      KEY: process.env.STRIPE_API_KEY,\n      TABLE: process.env.TABLE_NAME,\n      PW: '${env:DB_PASSWORD}',\n    },\n  },\n};\nmodule.exports = config;\n",
    );
    let s = scan(r).unwrap();
    let said: Vec<&String> = s
        .notes
        .iter()
        .filter(|n| n.contains("environment"))
        .collect();
    assert_eq!(
        said,
        [
            "web/serverless.ts: reads ${env:DB_PASSWORD}, process.env.STRIPE_API_KEY, secrets by their names, from the environment: the framework writes their values, in clear, into the template it compiles, which Ferry keeps and uploads as it keeps every template, and a buildspec's env is committed; keep them in SSM as a SecureString or in Secrets Manager, and have the function read them when it runs"
        ],
        "{:#?}",
        s.notes
    );
}

/// What `init --only-missing` says apart, as about files it keeps: a note is a kept service's
/// only when every path it names lies in a kept service's folder, taken as the deepest service
/// folder holding it (a review's find: a new `backend/worker`'s notes were listed as the kept
/// `backend`'s, and a kept ferry.toml's still read as written).
#[test]
fn notes_about_kept_files_are_told_apart_by_the_deepest_service_folder() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let queue = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    for d in ["backend", "backend/worker", "web"] {
        file(r, &format!("{d}/template.yaml"), queue);
    }
    let s = scan(r).unwrap();
    let notes: Vec<String> = [
        "backend/deploy.sh: kept backend's",
        "backend: kept backend's",
        "backend/worker/deploy.sh: the new worker's",
        "backend, web: both kept",
        "backend, backend/worker: one of them new",
        "ferry.toml: every stage is written with `us-east-1`",
        "--ferry-path x: a runner's",
        "no subject at all",
    ]
    .map(String::from)
    .to_vec();
    let kept = ["ferry.toml", "backend/service.toml", "web/service.toml"].map(String::from);
    let (about_kept, others) = ferry_init::notes_about_kept(notes, &s, &kept);
    assert_eq!(
        about_kept,
        [
            "backend/deploy.sh: kept backend's",
            "backend: kept backend's",
            "backend, web: both kept",
            "ferry.toml: every stage is written with `us-east-1`",
        ]
    );
    assert_eq!(
        others,
        [
            "backend/worker/deploy.sh: the new worker's",
            "backend, backend/worker: one of them new",
            "--ferry-path x: a runner's",
            "no subject at all",
        ]
    );
}

/// A configuration of the Serverless Framework 2 is run by no CLI Ferry runs: noted, with the
/// upgrade (before, nothing; a deploy then advised osls, which refused it).
#[test]
fn a_serverless_2_configuration_is_noted_as_needing_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "api/serverless.yml",
        "service:\n  name: api\nframeworkVersion: '2'\nprovider:\n  name: aws\n",
    );
    let s = scan(r).unwrap();
    assert!(
        s.notes.iter().any(|n| n.starts_with(
            "api/serverless.yml: its frameworkVersion takes only versions of the Serverless Framework before 3, which no CLI Ferry runs takes"
        )),
        "{:#?}",
        s.notes
    );
    // One the repository installs a CLI for runs with that one: not noted.
    file(
        r,
        "api/package.json",
        r#"{"devDependencies": {"serverless": "^2.72.3"}}"#,
    );
    let s = scan(r).unwrap();
    assert!(
        !s.notes.iter().any(|n| n.contains("before 3")),
        "{:#?}",
        s.notes
    );
}

/// Plugins a workspace package the service depends on lists (a shared `config` package, as
/// PatrykMilewski/serverless-monorepo-template keeps them) are installed by the workspace's
/// install: not noted as installed nowhere (a probe's find), while one named nowhere still is.
#[test]
fn plugins_a_workspace_package_it_depends_on_installs_are_installed() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "package.json",
        r#"{"private": true, "workspaces": ["stacks/*"]}"#,
    );
    file(
        r,
        "stacks/config/package.json",
        r#"{"name": "@acme/config", "dependencies": {"serverless": "^3.38.0", "serverless-esbuild": "^1.48.0"}}"#,
    );
    file(
        r,
        "stacks/base/package.json",
        r#"{"name": "@acme/base", "dependencies": {"@acme/config": "*"}}"#,
    );
    file(
        r,
        "stacks/first/package.json",
        r#"{"name": "@acme/first", "devDependencies": {"@acme/base": "workspace:*"}}"#,
    );
    file(
        r,
        "stacks/first/serverless.yml",
        "service: first\nprovider:\n  name: aws\nplugins:\n  - serverless-esbuild\n  - serverless-prune-plugin\n",
    );
    let s = scan(r).unwrap();
    let nowhere: Vec<&String> = s
        .notes
        .iter()
        .filter(|n| n.contains("which no package.json installs"))
        .collect();
    assert_eq!(nowhere.len(), 1, "{:#?}", s.notes);
    assert!(
        nowhere[0]
            .starts_with("stacks/first/serverless.yml: loads the plugins serverless-prune-plugin,"),
        "{nowhere:?}"
    );
    // pnpm keeps a package's dependencies to it: the shared package's plugins do not count.
    file(r, "pnpm-lock.yaml", "lockfileVersion: '9.0'\n");
    let s = scan(r).unwrap();
    assert!(
        s.notes.iter().any(|n| n.starts_with(
            "stacks/first/serverless.yml: loads the plugins serverless-esbuild, serverless-prune-plugin,"
        )),
        "{:#?}",
        s.notes
    );
}

/// A dry run over templates that each get a folder of their own (several in one folder) does
/// not report them unreadable: their folders are not there until the real run writes them (a
/// probe's kpanic9/aws-vpc-cf, which then passed validate).
#[test]
fn a_dry_run_does_not_call_templates_in_folders_to_come_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for name in ["network", "application"] {
        file(
            r,
            &format!("templates/{name}.yaml"),
            "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        );
    }
    let s = scan(r).unwrap();
    let files = render(&s, r);
    assert!(
        files
            .iter()
            .any(|(p, _)| p == "templates/network/service.toml"),
        "{files:?}"
    );
    let source = ferry_manifest::FsSource::new(r);
    let problems = ferry_init::problems_after(r, &source, &s, &files);
    assert!(problems.is_empty(), "{problems:#?}");
    // Their templates are still checked where they lie: a problem there is said (a review's
    // find: skipping them hid it from the dry run).
    file(
        r,
        "templates/network.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n  VpcId:\n    Type: AWS::EC2::VPC::Id\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let s = scan(r).unwrap();
    let files = render(&s, r);
    let problems = ferry_init::problems_after(r, &source, &s, &files);
    assert!(
        problems.len() == 1 && problems[0].contains("VpcId") && problems[0].contains("network"),
        "{problems:#?}"
    );
}

/// Templates of one folder that another template nests are parts of it: what was said of them
/// as templates of a folder of several (each given a folder of its own, one keeping the folder)
/// is withdrawn (a probe's aws-saas-factory-ref-solution-serverless-saas: the notes contradicted
/// each other).
#[test]
fn nested_templates_of_one_folder_are_not_also_said_to_get_folders() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = "Transform: AWS::Serverless-2016-10-31\n";
    file(
        r,
        "server/template.yaml",
        &format!(
            "{sam}Resources:\n  Api:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: nested/boot/apigateway.yaml\n  Fns:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: nested/boot/lambdas.yaml\n"
        ),
    );
    file(
        r,
        "server/nested/boot/apigateway.yaml",
        &format!(
            "{sam}Resources:\n  A:\n    Type: AWS::Serverless::Api\n    Properties:\n      StageName: x\n"
        ),
    );
    file(
        r,
        "server/nested/boot/lambdas.yaml",
        &format!(
            "{sam}Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../../src\n      Handler: a.h\n      Runtime: python3.12\n"
        ),
    );
    file(r, "server/src/a.py", "x = 1\n");
    let s = scan(r).unwrap();
    let dirs: Vec<&str> = s.services.iter().map(|f| f.dir.as_str()).collect();
    assert_eq!(dirs, ["server"]);
    let about: Vec<&String> = s
        .notes
        .iter()
        .filter(|n| n.starts_with("server/nested/boot"))
        .collect();
    assert_eq!(
        about,
        [
            "server/nested/boot/apigateway.yaml: nested by server/template.yaml (an application's Location, a stack's TemplateURL), a part of it",
            "server/nested/boot/lambdas.yaml: nested by server/template.yaml (an application's Location, a stack's TemplateURL), a part of it",
        ],
        "{:#?}",
        s.notes
    );
}

/// A repository's root Makefile deploying each stack with `aws cloudformation create-stack`
/// (kpanic9/aws-vpc-cf): its commands naming a service's template by its path give that
/// service's stack name, region (through the Makefile's variable) and parameters (from the
/// `--parameters file://…` JSON); before, scripts above the service folder were not read, and
/// neither were create-stack commands.
#[test]
fn a_root_makefile_deploying_each_template_by_its_path_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let template = |export: &str| {
        format!(
            "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n  Environment:\n    Type: String\n    Default: SampleApp\nResources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  Out:\n    Value: !Ref Q\n    Export:\n      Name: !Sub '${{Environment}}-{export}'\n"
        )
    };
    file(r, "templates/network.yaml", &template("VpcId"));
    file(r, "templates/application.yaml", &template("AppId"));
    file(
        r,
        "env/network.json",
        r#"[{"ParameterKey": "Environment", "ParameterValue": "RsApp"}]"#,
    );
    file(
        r,
        "Makefile",
        "region = ap-southeast-2\n\nnetwork:\n\taws cloudformation create-stack --stack-name net-$(STAGE) --template-body file://templates/network.yaml --parameters file://env/network.json --region $(region)\n\napplication:\n\taws cloudformation update-stack --stack-name app-$(STAGE) --template-body file://templates/application.yaml --parameters file://env/application.json --region $(region)\n",
    );
    // A file of none of the forms the AWS CLI takes: noted (it was passed over in silence).
    file(r, "env/application.json", r#"{"Environment": "RsApp"}"#);
    let s = scan(r).unwrap();
    let found = |name: &str| s.services.iter().find(|f| f.name == name).unwrap();
    assert_eq!(s.region(), "ap-southeast-2", "{:#?}", s.notes);
    assert_eq!(
        found("network")
            .stack_name
            .as_ref()
            .map(|(p, _)| p.as_str()),
        Some("net-{stage}"),
        "{:#?}",
        s.notes
    );
    assert_eq!(
        found("application")
            .stack_name
            .as_ref()
            .map(|(p, _)| p.as_str()),
        Some("app-{stage}")
    );
    assert_eq!(
        found("network")
            .parameters
            .get("Environment")
            .map(|(v, _)| v.as_str()),
        Some("RsApp")
    );
    assert!(found("application").parameters.is_empty());
    assert!(
        s.notes.iter().any(|n| n.starts_with(
            "Makefile: passes the parameters of env/application.json, of which none could be read"
        )),
        "{:#?}",
        s.notes
    );
}

/// A template declaring the parameters Ferry gives itself (the stage's permissions boundary,
/// its artifact bucket), as a repository adopting Ferry again has them: no empty value is
/// written for them, which would stand for the stage's (before, `FerryPermissionsBoundary = ""`
/// was written, and the stage's boundary was not given).
#[test]
fn parameters_ferry_gives_itself_are_not_written_empty() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "api/template.yaml",
        "Parameters:\n  FerryPermissionsBoundary:\n    Type: String\n  FerryArtifactBucket:\n    Type: String\n  Size:\n    Type: Number\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let s = scan(r).unwrap();
    let files = render(&s, r);
    let toml = &files
        .iter()
        .find(|(p, _)| p == "api/service.toml")
        .unwrap()
        .1;
    assert!(toml.contains("Size = \"\""), "{toml}");
    assert!(!toml.contains("FerryPermissionsBoundary"), "{toml}");
    assert!(!toml.contains("FerryArtifactBucket"), "{toml}");
}

/// A CloudFormation template naming its functions' code by local paths, as written for `aws
/// cloudformation package` (relative to the template's folder): init writes each as
/// `[package.artifacts]`, relative to the service folder, so that what it writes validates;
/// a path outside the service folder is noted, not written; a path the repository does not
/// hold gets a build guessed from the folder's build file.
#[test]
fn a_cloudformation_template_s_local_code_paths_become_its_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let function = |code: &str| {
        format!(
            "    Type: AWS::Lambda::Function\n    Properties:\n      Code: {code}\n      Handler: index.handler\n      Runtime: nodejs20.x\n      Role: arn:aws:iam::123456789012:role/r\n"
        )
    };
    file(
        r,
        "services/worker/cfn/template.yaml",
        &format!(
            "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Worker:\n{}  Layer:\n    Type: AWS::Lambda::LayerVersion\n    Properties:\n      Content: ./../layer/\n  Remote:\n{}",
            function("../src"),
            function("s3://bucket/key.zip")
        ),
    );
    file(
        r,
        "services/worker/src/index.js",
        "exports.handler = async () => 1;\n",
    );
    file(
        r,
        "services/worker/layer/nodejs/lib.js",
        "module.exports = 1;\n",
    );
    file(
        r,
        "services/billing/template.yaml",
        &format!(
            "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Bill:\n{}  Shared:\n{}",
            function("dist/bill.zip"),
            function("../../shared/lib")
        ),
    );
    file(
        r,
        "services/billing/package.json",
        r#"{"name": "billing", "scripts": {"build": "zip -r dist/bill.zip src"}}"#,
    );
    file(r, "shared/lib/index.js", "module.exports = 1;\n");
    let s = scan(r).unwrap();
    let artifacts = |dir: &str| {
        let f = s
            .services
            .iter()
            .find(|f| f.dir == dir)
            .unwrap_or_else(|| panic!("{dir}: {:#?}\n{:#?}", s.services, s.notes));
        f.artifacts
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        artifacts("services/worker"),
        [("Layer", "layer"), ("Worker", "src")],
        "{:?}",
        s.services
    );
    assert_eq!(artifacts("services/billing"), [("Bill", "dist/bill.zip")]);
    let notes = s.notes.join("\n");
    for want in [
        "services/billing/template.yaml: Shared's Code `../../shared/lib` lies outside the service folder services/billing",
        "services/billing: Bill.Code names services/billing/dist/bill.zip, which the repository does not hold: its service.toml builds it with `sh -c \"npm install --no-package-lock --no-audit --no-fund && npm run build\"` (guessed from package.json's build script; no lock file, so it installs without writing one, and each build may resolve other versions: commit a package-lock.json and use `npm ci`)",
        "services/worker/cfn/template.yaml: Worker.Code names services/worker/src outside the template's folder: the service folder is `services/worker`",
    ] {
        assert!(notes.contains(want), "{want}\n{notes}");
    }
    let files = render(&s, r);
    let worker = &files
        .iter()
        .find(|(p, _)| p == "services/worker/service.toml")
        .unwrap()
        .1;
    assert!(
        worker.contains("[package.artifacts]\nLayer = \"layer\"\nWorker = \"src\"\n"),
        "{worker}"
    );
    // What it writes for the worker validates: its code paths are declared (they were named
    // among what does not pass). The billing service's shared code stays to be moved.
    let source = ferry_manifest::FsSource::new(r);
    let problems = ferry_init::problems_after(r, &source, &s, &files);
    assert!(
        problems.iter().all(|p| !p.contains("worker")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("billing") && p.contains("Shared")),
        "{problems:#?}"
    );
}

/// SAM reads `samconfig.yaml` (or `.yml`) where there is no `samconfig.toml`, and the file a
/// `sam deploy --config-file` names: their stack names, regions and parameters are taken as a
/// `samconfig.toml`'s (before, neither was read: new stacks beside the scripts' own, in
/// us-east-1, without their parameters).
#[test]
fn samconfig_in_yaml_and_a_config_file_a_script_names_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let template = "Transform: AWS::Serverless-2016-10-31\nParameters:\n  Table:\n    Type: String\n  Stage:\n    Type: String\n  DbPassword:\n    Type: String\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      InlineCode: x\n      Handler: index.h\n      Runtime: nodejs20.x\n";
    file(r, "orders/template.yaml", template);
    file(
        r,
        "orders/samconfig.yaml",
        "version: 0.1\ndefault:\n  global:\n    parameters:\n      stack_name: shop-orders\n      region: eu-west-2\ndev:\n  deploy:\n    parameters:\n      stack_name: shop-orders-dev\n      parameter_overrides:\n        - Table=/dev/orders\n        - Stage=dev\n        - DbPassword=devpw12345\nprod:\n  deploy:\n    parameters:\n      stack_name: shop-orders-prod\n      region: eu-west-1\n      parameter_overrides: Table=/prod/orders Stage=prod DbPassword=prodpw12345\n",
    );
    file(r, "billing/template.yaml", template);
    file(
        r,
        "billing/Makefile",
        "deploy:\n\tsam deploy --config-file config/sam-$(STAGE).toml --config-env $(STAGE)\n",
    );
    file(
        r,
        "billing/config/sam-dev.toml",
        "version = 0.1\n[dev.deploy.parameters]\nstack_name = \"shop-billing-dev\"\nregion = \"eu-west-2\"\nparameter_overrides = \"Table=/dev/billing Stage=dev\"\n",
    );
    // A --config-file with a variable in it names no file; one leaving the repository is not
    // read.
    file(r, "other/template.yaml", template);
    file(
        r,
        "other/deploy.sh",
        "sam deploy --config-file /etc/samconfig.toml\nsam deploy --config-file ../../outside.toml\n",
    );
    let s = scan(r).unwrap();
    let service = |n: &str| s.services.iter().find(|f| f.name == n).unwrap();
    let orders = service("orders");
    // Environments named after the stages name each stage's stack, over [default]'s (which
    // `sam init` writes, and `sam deploy` alone uses): a probe saw [default]'s hide them.
    assert_eq!(
        orders.stack_name.as_ref().map(|(p, _)| p.as_str()),
        Some("shop-orders-{stage}"),
        "{:#?}",
        s.notes
    );
    let value = |f: &ferry_init::Found, k: &str| f.parameters.get(k).map(|(v, _)| v.clone());
    assert_eq!(
        value(orders, "Table").as_deref(),
        Some("/${stage}/orders"),
        "{:#?}",
        s.notes
    );
    assert_eq!(value(orders, "Stage").as_deref(), Some("${stage}"));
    let billing = service("billing");
    assert_eq!(
        billing.stack_name.as_ref().map(|(p, _)| p.as_str()),
        Some("shop-billing-{stage}"),
        "{:#?}",
        s.notes
    );
    assert_eq!(
        value(billing, "Table").as_deref(),
        Some("/${stage}/billing")
    );
    assert!(
        billing.parameters["Table"]
            .1
            .contains("billing/config/sam-dev.toml"),
        "{:?}",
        billing.parameters
    );
    assert!(service("other").parameters.is_empty());
    // A secret's values, which the environments give differently, are never shown (the note
    // of different values printed them).
    let notes = s.notes.join("\n");
    assert!(
        !notes.contains("devpw12345") && !notes.contains("prodpw12345"),
        "{notes}"
    );
    assert!(!orders.parameters.contains_key("DbPassword"));
    // Environments deploying to regions of their own: noted (before, prod's was dropped).
    assert!(
        s.notes.iter().any(|n| n.starts_with("orders/template.yaml: its SAM configuration deploys to more than one region (orders/samconfig.yaml [default] eu-west-2, orders/samconfig.yaml [prod] eu-west-1)")),
        "{:#?}",
        s.notes
    );
    let files = render(&s, r);
    // Orders' [prod] deploys to eu-west-1, but billing names eu-west-2 for every stage: the
    // services disagree, so prod keeps the region most name (noted above).
    let toml = ferry_toml(&files);
    assert!(
        toml.contains("[stages.dev]\nregion = \"eu-west-2\"")
            && toml.contains("[stages.prod]\nregion = \"eu-west-2\""),
        "{toml}"
    );
}

/// A reader whose SSM-typed parameter defaults to one stage's name (`userpool-id-dev`) of a
/// parameter another service writes per stage (`userpool-id-${Stage}`), as
/// redappleabc/klubby-aws-infrastructure's AppSync API: linked, and given the stage's own name,
/// so that staging and prod do not read dev's (a probe saw prod run on dev's user pool).
#[test]
fn a_default_naming_one_stage_s_ssm_parameter_is_made_each_stage_s() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "authentication/template.yaml",
        "Parameters:\n  Stage:\n    Type: String\n    Default: dev\nResources:\n  Id:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub userpool-id-${Stage}\n      Type: String\n      Value: x\n",
    );
    file(
        r,
        "appsync/template.yaml",
        "Parameters:\n  UserPoolId:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: userpool-id-dev\n  Other:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: /shared/blue/x\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    let s = scan(r).unwrap();
    let appsync = s.services.iter().find(|f| f.name == "appsync").unwrap();
    assert_eq!(
        appsync.depends_on.keys().collect::<Vec<_>>(),
        ["authentication"],
        "{:#?}",
        s.notes
    );
    assert_eq!(
        appsync
            .parameters
            .get("UserPoolId")
            .map(|(v, _)| v.as_str()),
        Some("userpool-id-${stage}")
    );
    assert!(!appsync.parameters.contains_key("Other"));
    let files = render(&s, r);
    let toml = &files
        .iter()
        .find(|(p, _)| p == "appsync/service.toml")
        .unwrap()
        .1;
    assert!(
        toml.contains("UserPoolId = \"userpool-id-${stage}\""),
        "{toml}"
    );
    let source = ferry_manifest::FsSource::new(r);
    let problems = ferry_init::problems_after(r, &source, &s, &files);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A parameter the prod command passes and the dev command leaves at the template's default
/// (redappleabc/klubby-aws-infrastructure's status pipeline: `Stage=prod` in one of two
/// commands): a value naming the stage is written as each stage's, another for every stage,
/// both noted (before, `Stage = "prod"` was written for every stage in silence, and dev's stack
/// made prod-named resources).
#[test]
fn a_parameter_only_one_stage_s_command_passes_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "notify/template.yaml",
        "Parameters:\n  Stage:\n    Type: String\n    Default: dev\n  Topic:\n    Type: String\n    Default: notify-sns-topic-dev\n  Domain:\n    Type: String\n    Default: dev.example.com\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "notify/deploy.sh",
        "if [ \"$1\" = prod ]; then\n  aws cloudformation deploy --template-file template.yaml --stack-name notify-prod --parameter-overrides Stage=prod Topic=notify-sns-topic-prod Domain=example.com\nelse\n  aws cloudformation deploy --template-file template.yaml --stack-name notify-dev\nfi\n",
    );
    let s = scan(r).unwrap();
    let notify = &s.services[0];
    let value = |k: &str| notify.parameters.get(k).map(|(v, _)| v.as_str());
    assert_eq!(value("Stage"), Some("${stage}"), "{:#?}", s.notes);
    assert_eq!(value("Topic"), Some("notify-sns-topic-${stage}"));
    assert_eq!(value("Domain"), Some("example.com"));
    let notes = s.notes.join("\n");
    for want in [
        "notify/deploy.sh: passes Stage in 1 of the service's 2 deploy commands (the others pass none: the template's default, or a samconfig's): init wrote `${stage}` for every stage",
        "notify/deploy.sh: passes Domain in 1 of the service's 2 deploy commands (the others pass none: the template's default, or a samconfig's): init wrote `example.com` for every stage; check it",
    ] {
        assert!(notes.contains(want), "{want}\n{notes}");
    }
}

/// The stage a script passes (`Stage=$(STAGE)`) to a parameter whose `AllowedValues` leave out
/// a stage of ferry.toml (aws-samples' unicorn workshop: `[local, dev, prod]`) is written
/// commented out, saying why: before, `Stage = "${stage}"` was written, and staging's deploy
/// (and every preview's) would be refused by CloudFormation.
#[test]
fn the_stage_a_script_passes_is_not_written_where_the_template_refuses_a_stage() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "domain/template.yaml",
        "Parameters:\n  Stage:\n    Type: String\n    Default: local\n    AllowedValues: [local, dev, prod]\n  Env:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "domain/Makefile",
        "deploy:\n\tsam deploy --stack-name domain-$(STAGE) --parameter-overrides Stage=$(STAGE) Env=$(STAGE)\n",
    );
    let s = scan(r).unwrap();
    let files = render(&s, r);
    let toml = &files
        .iter()
        .find(|(p, _)| p.ends_with("domain/service.toml"))
        .unwrap()
        .1;
    assert!(
        toml.contains("# but its AllowedValues (local, dev, prod) take not staging nor a preview's name: give it the value the template expects in each stage (a `${var:…}` of the stages' variables) (until then every stage deploys with its default `local`)\n# Stage = \"${stage}\"\n"),
        "{toml}"
    );
    // Another parameter the stage is given, which takes any value, is written.
    assert!(toml.contains("\nEnv = \"${stage}\"\n"), "{toml}");
}

/// A deploy naming its template through a folder variable (`"$DIR"/a.yaml`) is that template's
/// alone, by its name from the folder the command runs in; one named wholly by a variable is
/// none's. Before, it was taken as naming none, and so as every template's of the script's
/// folder, and b was written a's bucket name (awslabs' SDLF: 42 notes of parameters a template
/// does not declare).
#[test]
fn a_deploy_naming_its_template_through_a_variable_is_no_other_template_s() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let t = "Parameters:\n  BucketName:\n    Type: String\nResources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Ref BucketName\n";
    file(r, "infra/a.yaml", t);
    file(r, "infra/b.yaml", t);
    file(
        r,
        "infra/deploy.sh",
        "DIR=\"$(cd \"$(dirname \"$0\")\" && pwd)\"\naws cloudformation deploy --template-file \"$DIR\"/a.yaml --stack-name a --parameter-overrides BucketName=a-only-bucket\n",
    );
    file(
        r,
        "infra/other.sh",
        "aws cloudformation deploy --template-file \"$TEMPLATE\" --stack-name x --parameter-overrides BucketName=nobody-s-bucket\n",
    );
    let s = scan(r).unwrap();
    let bucket = |t: &str| {
        s.services
            .iter()
            .find(|svc| svc.file.ends_with(t))
            .and_then(|svc| svc.parameters.get("BucketName"))
            .map(|(v, _)| v.as_str())
    };
    assert_eq!(bucket("a.yaml"), Some("a-only-bucket"), "{:#?}", s.notes);
    assert_eq!(bucket("b.yaml"), None, "{:#?}", s.notes);
    assert!(
        !s.notes.iter().any(|n| n.contains("nobody-s-bucket")),
        "{:#?}",
        s.notes
    );
}

/// A CodeBuild buildspec deploying the service (redappleabc/klubby-aws-infrastructure's
/// `sam-backends/buildspec.yaml`, the real deploy path of its stacks) is read as a script, run
/// from the repository's root as CodeBuild runs it: its stack name, region and parameters are
/// taken, its `env.variables` read as assignments (before, it was not read, and Ferry would
/// have made new stacks beside its own).
#[test]
fn a_buildspec_deploying_the_service_is_read_as_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "join-klub/template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nParameters:\n  Stage:\n    Type: String\n  Size:\n    Type: Number\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      InlineCode: x\n      Handler: index.h\n      Runtime: nodejs20.x\n",
    );
    file(
        r,
        "join-klub/buildspec.yaml",
        "version: 0.2\nenv:\n  variables:\n    REGION: eu-central-1\nphases:\n  install:\n    commands:\n      - pip install aws-sam-cli\n  build:\n    commands:\n      - cd join-klub\n      - sam build\n      - \"sam deploy --stack-name klubby-$STAGE-join-klub --region $REGION --parameter-overrides Stage=$STAGE Size=3 --no-fail-on-empty-changeset\"\n",
    );
    let s = scan(r).unwrap();
    let f = &s.services[0];
    assert_eq!(
        f.stack_name.as_ref().map(|(p, _)| p.as_str()),
        Some("klubby-{stage}-join-klub"),
        "{:#?}",
        s.notes
    );
    assert_eq!(s.region(), "eu-central-1");
    let value = |k: &str| f.parameters.get(k).map(|(v, _)| v.as_str());
    assert_eq!(value("Stage"), Some("${stage}"));
    assert_eq!(value("Size"), Some("3"));
    // Not a buildspec: passed over.
    file(r, "join-klub/buildspec.yaml", "[not, a, buildspec\n");
    let s = scan(r).unwrap();
    assert_eq!(s.services[0].stack_name, None);
}

/// A `--config-file` is read from the folder of the template the command names (as the SAM CLI
/// reads it: a root Makefile's `sam deploy -t pay/template.yaml --config-file sam.toml` reads
/// `pay/sam.toml`), and never from outside the repository, though a file is there.
#[test]
fn a_config_file_is_read_beside_the_template_and_never_outside_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let r = &dir.path().join("repo");
    let template = "Transform: AWS::Serverless-2016-10-31\nParameters:\n  Table:\n    Type: String\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      InlineCode: x\n      Handler: index.h\n      Runtime: nodejs20.x\n";
    file(r, "pay/template.yaml", template);
    file(
        r,
        "Makefile",
        "deploy-pay:\n\tsam deploy -t pay/template.yaml --config-file sam.toml --config-env $(STAGE)\n",
    );
    file(
        r,
        "pay/sam.toml",
        "[dev.deploy.parameters]\nstack_name = \"shop-pay-dev\"\nparameter_overrides = \"Table=/dev/pay\"\n",
    );
    // A file of the same name beside the Makefile is not the one SAM reads.
    file(
        r,
        "sam.toml",
        "[dev.deploy.parameters]\nstack_name = \"wrong-dev\"\n",
    );
    file(r, "other/template.yaml", template);
    file(
        r,
        "other/deploy.sh",
        "sam deploy --config-file ../../outside.toml\nsam deploy --config-file /etc/samconfig.toml\n",
    );
    file(
        dir.path(),
        "outside.toml",
        "[default.deploy.parameters]\nstack_name = \"outside\"\nparameter_overrides = \"Table=/outside\"\n",
    );
    let s = scan(r).unwrap();
    let service = |n: &str| s.services.iter().find(|f| f.name == n).unwrap();
    let pay = service("pay");
    assert_eq!(
        pay.stack_name.as_ref().map(|(p, _)| p.as_str()),
        Some("shop-pay-{stage}"),
        "{:#?}",
        s.notes
    );
    assert_eq!(
        pay.parameters.get("Table").map(|(v, _)| v.as_str()),
        Some("/${stage}/pay")
    );
    let other = service("other");
    assert!(other.parameters.is_empty(), "{:?}", other.parameters);
    assert_eq!(other.stack_name, None);
}

/// A service whose package.json installs the Serverless Framework CLI at version 1
/// (theburningmonk/lambda-monorepo-code-sharing-demo's `serverless ^1.46.1`, whose archive came
/// out corrupt under Node.js 20) is noted with the upgrade; one at version 3 is not.
#[test]
fn a_framework_cli_before_version_3_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let config = |s: &str| format!("service: {s}\nprovider:\n  name: aws\n");
    file(r, "projects/a/serverless.yml", &config("a"));
    file(
        r,
        "projects/a/package.json",
        r#"{"name": "a", "devDependencies": {"serverless": "^1.46.1"}}"#,
    );
    file(r, "projects/a/package-lock.json", "{}");
    file(r, "projects/b/serverless.yml", &config("b"));
    file(
        r,
        "projects/b/package.json",
        r#"{"name": "b", "devDependencies": {"serverless": "^3.38.0"}}"#,
    );
    file(r, "projects/b/package-lock.json", "{}");
    let notes = scan(r).unwrap().notes.join("\n");
    assert!(
        notes.contains(
            "projects/a/package.json: installs the Serverless Framework CLI at `^1.46.1`, version 1"
        ),
        "{notes}"
    );
    assert!(
        !notes.contains("projects/b/package.json: installs"),
        "{notes}"
    );
}

/// A CodePipeline template beside the application's (aws-samples'
/// serverless-webapp-mono-repo-ci-cd-java `serverless-pipeline.yaml`) deploys the stacks
/// itself: left out, noted (each stage would have got a pipeline deploying one shared stack).
#[test]
fn a_delivery_pipeline_template_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "backend/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "backend/serverless-pipeline.yaml",
        "Parameters:\n  DeployStackName:\n    Type: String\n    Default: serverless-web-application-java-backend\nResources:\n  Pipeline:\n    Type: AWS::CodePipeline::Pipeline\n    Properties:\n      RoleArn: arn:aws:iam::123456789012:role/x\n      Stages: []\n",
    );
    let s = scan(r).unwrap();
    let templates: Vec<String> = s
        .services
        .iter()
        .map(|f| format!("{}/{}", f.dir, f.file))
        .collect();
    assert_eq!(templates, ["backend/template.yaml"], "{:#?}", s.notes);
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("backend/serverless-pipeline.yaml: a delivery pipeline")),
        "{:#?}",
        s.notes
    );
}

/// A buildspec of the folder above the services deploying each from its own folder (klubby's
/// `sam-backends/buildspec.yaml`: `cd $CODEBUILD_SRC_DIR/…/add-new-user`, `sam deploy`, then
/// `cd ../getAssetBalancesCron`, `sam deploy`): each deploy is the service's whose folder it
/// runs in, `$CODEBUILD_SRC_DIR` being the repository's root; and a pipeline's own buildspec
/// deploying another service's folder after a `cd` gives the pipeline nothing of it (a probe's
/// `deploy --adopt` then replaced the storage stack's resources with the pipeline's).
#[test]
fn a_buildspec_deploys_the_service_whose_folder_it_runs_in() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let template = "Transform: AWS::Serverless-2016-10-31\nParameters:\n  Stage:\n    Type: String\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      InlineCode: x\n      Handler: index.h\n      Runtime: nodejs20.x\n";
    for s in ["add-new-user", "getAssetBalancesCron"] {
        file(
            r,
            &format!("infra/sam-backends/{s}/template.yaml"),
            template,
        );
    }
    file(
        r,
        "infra/sam-backends/buildspec.yaml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - cd $CODEBUILD_SRC_DIR/infra/sam-backends/add-new-user\n      - sam build\n      - sam deploy\n        --stack-name add-new-user-function-$STAGE\n        --region us-east-1\n        --parameter-overrides\n            ParameterKey=Stage,ParameterValue=$STAGE\n      - cd ../getAssetBalancesCron\n      - sam build\n      - sam deploy --stack-name klubby-$STAGE-get-assets-balances-cron --region us-east-1\n",
    );
    file(
        r,
        "infra/storage/template.yaml",
        "Resources:\n  T:\n    Type: AWS::SNS::Topic\n",
    );
    file(
        r,
        "infra/be-cicd/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "infra/be-cicd/buildspec.yaml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - cd ../storage\n      - aws cloudformation deploy --template-file template.yaml --stack-name klubby-storage-$STAGE\n",
    );
    let s = scan(r).unwrap();
    let stack = |n: &str| {
        s.services
            .iter()
            .find(|f| f.name == n)
            .unwrap_or_else(|| panic!("{n}: {:#?}", s.services))
            .stack_name
            .as_ref()
            .map(|(p, _)| p.clone())
    };
    assert_eq!(
        stack("add-new-user").as_deref(),
        Some("add-new-user-function-{stage}"),
        "{:#?}",
        s.notes
    );
    assert_eq!(
        stack("getassetbalancescron").as_deref(),
        Some("klubby-{stage}-get-assets-balances-cron")
    );
    assert_eq!(stack("be-cicd"), None);
}

/// A plain CloudFormation parent template nesting the others by a local path (`TemplateURL:
/// ./network.yaml`, as `aws cloudformation package` takes it: aws-samples'
/// amazon-cloudfront-secure-static-site, asjohnston-asf/cloudformation-package) is an umbrella,
/// as one nesting them by their S3 addresses is: left out, the nested templates deploy one by
/// one with the order and outputs it gives them (before, the parent was a service too,
/// deploying their resources a second time, and the values it passed were left empty).
#[test]
fn a_cloudformation_template_nesting_others_by_a_local_path_is_an_umbrella() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "stacks/network.yaml",
        "Resources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  TopicArn:\n    Value: !Ref T\n",
    );
    file(
        r,
        "stacks/app.yaml",
        "Parameters:\n  TopicArn:\n    Type: String\n  Url:\n    Type: String\n  Path:\n    Type: String\n  Env:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    // Outputs joined with text (aws-samples/ecs-refarch-cloudformation's
    // `!Join ["/", [!GetAtt ALB.Outputs.LoadBalancerUrl, "products"]]`) are written too; the
    // umbrella's own stack name is no value init can write: noted.
    file(
        r,
        "stacks/main.yaml",
        "Resources:\n  Network:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ./network.yaml\n  App:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ./app.yaml\n      Parameters:\n        TopicArn: !GetAtt Network.Outputs.TopicArn\n        Url: !Join ['/', [!GetAtt Network.Outputs.TopicArn, products]]\n        Path: !Sub 'arn/${Network.Outputs.TopicArn}/x'\n        Env: !Ref AWS::StackName\n",
    );
    let s = scan(r).unwrap();
    let names: Vec<&str> = s.services.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["app", "network"], "{:#?}", s.notes);
    let app = &s.services[0];
    assert_eq!(app.depends_on.keys().collect::<Vec<_>>(), ["network"]);
    let value = |k: &str| app.parameters.get(k).map(|(v, _)| v.as_str());
    assert_eq!(value("TopicArn"), Some("${output:network.TopicArn}"));
    assert_eq!(value("Url"), Some("${output:network.TopicArn}/products"));
    assert_eq!(value("Path"), Some("arn/${output:network.TopicArn}/x"));
    assert_eq!(value("Env"), None);
    let notes = s.notes.join("\n");
    assert!(
        notes.contains("stacks/main.yaml: passes values init cannot write in Ferry's syntax (a condition, the umbrella's own parameter or resource, `AWS::StackName`, an output of a stack no service deploys or that depends on the receiver): App.Env"),
        "{notes}"
    );
    assert!(
        notes.contains("stacks/main.yaml: nests the templates of other services (stacks/app.yaml, stacks/network.yaml)"),
        "{notes}"
    );
    // What was said of it as a template of its own folder is withdrawn.
    assert!(
        !notes.contains("stacks/main.yaml: one of several templates"),
        "{notes}"
    );
    let files = render(&s, r);
    let source = ferry_manifest::FsSource::new(r);
    let problems = ferry_init::problems_after(r, &source, &s, &files);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A template whose `Transform` runs a macro another service's stack defines
/// (awslabs/aws-cloudformation-templates' `Count` macro and its test template) depends on that
/// service, which its scripts deployed first (before, both deployed at once, and the template's
/// change set failed on the missing macro).
#[test]
fn a_template_running_a_macro_depends_on_the_service_defining_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "count-macro/template.yaml",
        "Resources:\n  Macro:\n    Type: AWS::CloudFormation::Macro\n    Properties:\n      Name: Count\n      FunctionName: arn:aws:lambda:us-east-1:123456789012:function:count\n",
    );
    file(
        r,
        "buckets/template.yaml",
        "Transform:\n  - Count\n  - AWS::Serverless-2016-10-31\nResources:\n  Bucket:\n    Type: AWS::S3::Bucket\n    Count: 3\n",
    );
    file(
        r,
        "other/template.yaml",
        "Transform: NoSuchMacro\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    // A macro run on part of the template (awslabs' DatetimeNow example).
    file(
        r,
        "now-macro/template.yaml",
        "Resources:\n  Macro:\n    Type: AWS::CloudFormation::Macro\n    Properties:\n      Name: DatetimeNow\n      FunctionName: arn:aws:lambda:us-east-1:123456789012:function:now\n",
    );
    file(
        r,
        "stamped/template.yaml",
        "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Value:\n        Fn::Transform:\n          Name: DatetimeNow\n          Parameters:\n            format: '%Y'\n",
    );
    let s = scan(r).unwrap();
    let deps = |n: &str| {
        s.services
            .iter()
            .find(|f| f.name == n)
            .unwrap()
            .depends_on
            .clone()
    };
    let buckets = deps("buckets");
    assert_eq!(
        buckets.keys().collect::<Vec<_>>(),
        ["count-macro"],
        "{:#?}",
        s.notes
    );
    assert_eq!(
        buckets["count-macro"],
        "its template's Transform runs macro `Count`, which count-macro defines"
    );
    assert!(deps("other").is_empty());
    assert_eq!(deps("stamped").keys().collect::<Vec<_>>(), ["now-macro"]);
}

/// A CloudFormation template with resources of its own nesting a helper template of its folder
/// (`TemplateURL: ./alarms.yaml`) is no umbrella: it stays the service, and the helper is a
/// part of it (a review's find: the parent was left out, its own resources deployed by
/// nobody, and the helper made a service).
#[test]
fn a_cloudformation_template_with_resources_of_its_own_keeps_its_nested_helper() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "api/main.yaml",
        "Resources:\n  Table:\n    Type: AWS::DynamoDB::Table\n  Alarms:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ./alarms.yaml\n",
    );
    file(
        r,
        "api/alarms.yaml",
        "Resources:\n  T:\n    Type: AWS::SNS::Topic\n",
    );
    let s = scan(r).unwrap();
    let found: Vec<(&str, &str)> = s
        .services
        .iter()
        .map(|f| (f.dir.as_str(), f.file.as_str()))
        .collect();
    assert_eq!(found, [("api", "main.yaml")], "{:#?}", s.notes);
    assert!(
        s.notes.iter().any(|n| n == "api/alarms.yaml: nested by api/main.yaml (an application's Location, a stack's TemplateURL), a part of it"),
        "{:#?}",
        s.notes
    );
    assert!(
        !s.notes
            .iter()
            .any(|n| n.contains("nests the templates of other services"))
    );
}

/// An application's template that also holds a pipeline (a review's find) stays a service: only
/// a template of delivery alone is left out.
#[test]
fn an_application_template_holding_a_pipeline_stays_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "app/template.yaml",
        "Resources:\n  Table:\n    Type: AWS::DynamoDB::Table\n  Pipeline:\n    Type: AWS::CodePipeline::Pipeline\n    Properties:\n      RoleArn: x\n      Stages: []\n",
    );
    let s = scan(r).unwrap();
    assert_eq!(s.services.len(), 1, "{:#?}", s.notes);
}

/// A per-stage file a Serverless configuration reads through `${sls:stage}` that git ignores is
/// noted (the repository's own `git` answers in `init`; here a predicate stands for it).
#[test]
fn a_per_stage_file_git_ignores_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(r, "cfg/config.example.json", "{}\n");
    file(
        r,
        "api/serverless.yml",
        "service: api\nprovider:\n  name: aws\ncustom:\n  conf: ${file(../cfg/config.${sls:stage}.json):value}\n  again: ${file(../cfg/config.${sls:stage}.json):other}\n",
    );
    let mut s = scan(r).unwrap();
    s.leave_out_ignored(|p| p.starts_with("cfg/config.") && p != "cfg/config.example.json");
    // Once, though read twice.
    assert_eq!(
        s.notes.iter().filter(|n| n.starts_with("api: reads `cfg/config.{stage}.json` (${file(…)}), and git ignores `cfg/config.dev.json`")).count(),
        1,
        "{:#?}",
        s.notes
    );
    // The folder stays an input (it holds what git tracks).
    assert!(
        s.services[0].inputs.contains_key("cfg/**"),
        "{:?}",
        s.services[0].inputs
    );
}

/// A template at the repository's root nesting the others by a local path (kalleeh/gurum's
/// `template.yaml` nesting `cfn/vpc.yaml`) is an umbrella too: left out, its order and
/// outputs given to them (before, init advised moving it into a folder, which would have
/// deployed their resources a second time, and their parameters were left empty).
#[test]
fn a_root_template_nesting_others_by_a_local_path_is_an_umbrella() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "cfn/vpc.yaml",
        "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: 10.0.0.0/16\nOutputs:\n  VpcId:\n    Value: !Ref Vpc\n",
    );
    file(
        r,
        "cfn/cluster.yaml",
        "Parameters:\n  VPC:\n    Type: String\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "template.yaml",
        "Resources:\n  VPC:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: cfn/vpc.yaml\n  Cluster:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ./cfn/cluster.yaml\n      Parameters:\n        VPC: !GetAtt VPC.Outputs.VpcId\n",
    );
    let s = scan(r).unwrap();
    let cluster = s.services.iter().find(|f| f.name == "cluster").unwrap();
    assert_eq!(
        cluster.depends_on.keys().collect::<Vec<_>>(),
        ["vpc"],
        "{:#?}",
        s.notes
    );
    assert_eq!(
        cluster.parameters.get("VPC").map(|(v, _)| v.as_str()),
        Some("${output:vpc.VpcId}")
    );
    let notes = s.notes.join("\n");
    assert!(
        notes.contains(
            "template.yaml: nests the templates of other services (cfn/cluster.yaml, cfn/vpc.yaml)"
        ),
        "{notes}"
    );
    assert!(
        !notes.contains("at the repository root: Ferry deploys services from folders"),
        "{notes}"
    );
}

/// A repository whose only template is at its root (aws-samples/aws-sam-java-rest) is told
/// why it has no service: the root holds ferry.toml (before, "no service found" read as if the
/// template were not there).
#[test]
fn a_template_only_at_the_root_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      InlineCode: x\n      Handler: index.h\n      Runtime: nodejs20.x\n",
    );
    let err = scan(r).unwrap_err().to_string();
    assert!(
        err.contains("Its root holds template.yaml, but the root holds ferry.toml and is no service folder: move each template"),
        "{err}"
    );
}

/// A packaged copy of a template committed beside it (aws-samples/serverless-coffee's
/// `output.yaml` beside `template.yaml`, `CodeUri: s3://…`) is left out, noted: before, it was a
/// service of its own, deploying the same resources a second time.
#[test]
fn a_packaged_copy_beside_its_template_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let template = |code: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {code}\n      Handler: index.h\n      Runtime: nodejs20.x\n  Table:\n    Type: AWS::DynamoDB::Table\n"
        )
    };
    file(r, "core/template.yaml", &template("src/"));
    file(r, "core/src/index.js", "exports.h = 1;\n");
    file(
        r,
        "core/output.yaml",
        &template("s3://bucket/5f352d3ba76f2b06d0afc6a451d7c018"),
    );
    let s = scan(r).unwrap();
    let found: Vec<String> = s
        .services
        .iter()
        .map(|f| format!("{}/{}", f.dir, f.file))
        .collect();
    assert_eq!(found, ["core/template.yaml"], "{:#?}", s.notes);
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("core/output.yaml: a packaged copy of core/template.yaml")),
        "{:#?}",
        s.notes
    );
}

/// A folder name too long for its stacks' names to hold a preview stage's id
/// (awslabs/aws-cloudformation-templates'
/// `aws-solutions-lambda-backed-cloudformation-custom-resources-fetch-ami-from-parameter-store`)
/// is cut, with a hash of the whole, so that what init writes loads (before, the whole
/// configuration was refused).
#[test]
fn a_name_too_long_for_a_preview_s_stack_name_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let long = "aws-solutions-lambda-backed-cloudformation-custom-resources-fetch-ami-from-parameter-store-x";
    let queue = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    file(r, &format!("{long}/template.yaml"), queue);
    file(r, &format!("{long}-2/template.yaml"), queue);
    let s = scan(r).unwrap();
    let names: Vec<&str> = s.services.iter().map(|f| f.name.as_str()).collect();
    assert!(names.iter().all(|n| n.len() <= 87), "{names:?}");
    assert_ne!(names[0], names[1]);
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("is too long for its stacks' names to hold a preview stage's id")),
        "{:#?}",
        s.notes
    );
    let files = render(&s, r);
    let source = ferry_manifest::FsSource::new(r);
    let problems = ferry_init::problems_after(r, &source, &s, &files);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Each stage is written with the region of the SAM configuration's environment named after
/// it when every service naming a region agrees ([prod] in eu-west-1, the others in eu-west-2:
/// before, eu-west-2 was written for prod too); a service naming another region for every
/// stage (a Serverless `provider.region`) disagrees, and the stages keep one region.
#[test]
fn each_stage_takes_the_region_its_environment_names_where_the_services_agree() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "api/template.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "api/samconfig.toml",
        "version = 0.1\n[dev.deploy.parameters]\nregion = \"eu-west-2\"\n[staging.deploy.parameters]\nregion = \"eu-west-2\"\n[prod.deploy.parameters]\nregion = \"eu-west-1\"\n",
    );
    let s = scan(r).unwrap();
    let toml = ferry_toml(&render(&s, r)).to_string();
    for (stage, region) in [
        ("dev", "eu-west-2"),
        ("staging", "eu-west-2"),
        ("prod", "eu-west-1"),
    ] {
        assert!(
            toml.contains(&format!("[stages.{stage}]\nregion = \"{region}\"")),
            "{stage}: {toml}"
        );
    }
    file(
        r,
        "web/serverless.yml",
        "service: web\nprovider:\n  name: aws\n  region: eu-west-2\n",
    );
    let s = scan(r).unwrap();
    let toml = ferry_toml(&render(&s, r)).to_string();
    assert!(
        toml.contains("[stages.prod]\nregion = \"eu-west-2\""),
        "{toml}"
    );
}

/// A root buildspec deploying a service after `cd`: its `--config-file` and `file://`
/// parameters are read from the folder the command runs in (a review's find: they were read
/// from the buildspec's); a root template with resources of its own nesting one by a local
/// path is no umbrella (its table would be deployed by nobody); a `template.yaml` whose code is
/// by S3 address is never taken for a packaged copy.
#[test]
fn commands_after_cd_read_their_files_from_where_they_run() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let sam = "Transform: AWS::Serverless-2016-10-31\nParameters:\n  Table:\n    Type: String\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      InlineCode: x\n      Handler: index.h\n      Runtime: nodejs20.x\n";
    file(r, "services/api/template.yaml", sam);
    file(
        r,
        "services/api/sam.toml",
        "[prod.deploy.parameters]\nstack_name = \"shop-api-prod\"\n[dev.deploy.parameters]\nstack_name = \"shop-api-dev\"\n",
    );
    file(r, "services/api/params.json", r#"["Table=/shop/api"]"#);
    file(
        r,
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - cd services/api && sam deploy --config-file sam.toml --parameter-overrides file://params.json\n",
    );
    let s = scan(r).unwrap();
    let api = s.services.iter().find(|f| f.name == "api").unwrap();
    assert_eq!(
        api.stack_name.as_ref().map(|(p, _)| p.as_str()),
        Some("shop-api-{stage}"),
        "{:#?}",
        s.notes
    );
    assert_eq!(
        api.parameters.get("Table").map(|(v, _)| v.as_str()),
        Some("/shop/api")
    );

    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    file(
        r,
        "nested/api.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    file(
        r,
        "template.yaml",
        "Resources:\n  Table:\n    Type: AWS::DynamoDB::Table\n  Api:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: nested/api.yaml\n",
    );
    let notes = scan(r).unwrap().notes.join("\n");
    assert!(
        !notes.contains("template.yaml: nests the templates"),
        "{notes}"
    );
    assert!(
        notes.contains("template.yaml at the repository root"),
        "{notes}"
    );

    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let code = |c: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {c}\n      Handler: index.h\n      Runtime: nodejs20.x\n"
        )
    };
    file(r, "svc/template.yaml", &code("s3://prebuilt/fn.zip"));
    file(r, "svc/template-local.yaml", &code("src/"));
    file(r, "svc/src/index.js", "exports.h = 1;\n");
    let s = scan(r).unwrap();
    assert!(
        !s.notes
            .iter()
            .any(|n| n.starts_with("svc/template.yaml: a packaged copy")),
        "{:#?}",
        s.notes
    );
}
