//! Packaging `kind = "sam"` services: every local path of the template found (CodeUri, also in
//! Globals, ContentUri, DefinitionUri, an application's Location, recursively), zipped or kept
//! as a file, content addressed; and the refusals (no transform, a path out of the folder, a
//! missing or misplaced file, a nested application in itself), each before anything is written.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use ferry_package::{ArtifactFormat, PackageError, PackageRequest, package};
use serde_json::{Value, json};

fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )];
    all.extend_from_slice(files);
    for (rel, body) in all {
        let p = dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }
    dir
}

/// Packages the workspace's `worker`; an error as its message.
fn run(root: &Path, out: &Path) -> Result<ferry_package::PackageManifest, String> {
    let ws = ferry_manifest::load(root).unwrap();
    let req = PackageRequest {
        id: "c1".into(),
        commit: "0".repeat(40),
        dirty: false,
        services: vec!["worker".into()],
        input_keys: BTreeMap::new(),
        dirty_keys: BTreeMap::new(),
    };
    package(&ws, out, &req, &|s| s.to_string(), &|_| {}).map_err(|e: PackageError| e.to_string())
}

const MANIFEST: &str =
    "[service]\nkind = \"sam\"\n\n[package]\nexclude = [\"**/__pycache__/**\"]\n";

const TEMPLATE: &str = r#"Transform: AWS::Serverless-2016-10-31
Parameters:
  Table:
    Type: String
Globals:
  Function:
    Runtime: python3.12
    CodeUri: src/
Resources:
  Writer:
    Type: AWS::Serverless::Function
    Properties:
      Handler: writer.handler
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      Handler: reader.handler
      CodeUri: reader
  Deps:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: flow.asl.json
  Child:
    Type: AWS::Serverless::Application
    Properties:
      Location: nested/child.yaml
      Parameters:
        Table: !Ref Table
"#;

const CHILD: &str = r#"Transform: AWS::Serverless-2016-10-31
Parameters:
  Table:
    Type: String
Resources:
  Cleaner:
    Type: AWS::Serverless::Function
    Properties:
      Handler: clean.handler
      Runtime: python3.12
      CodeUri: code
"#;

fn sam_workspace() -> tempfile::TempDir {
    workspace(&[
        (
            "services/worker/service.toml",
            &format!("{MANIFEST}\n[parameters]\nTable = \"orders\"\n"),
        ),
        ("services/worker/template.yaml", TEMPLATE),
        (
            "services/worker/src/writer.py",
            "def handler(e, c): return 1\n",
        ),
        ("services/worker/src/__pycache__/writer.pyc", "junk"),
        (
            "services/worker/reader/reader.py",
            "def handler(e, c): return 2\n",
        ),
        ("services/worker/layer/python/lib.py", "X = 1\n"),
        (
            "services/worker/flow.asl.json",
            "{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Pass\", \"End\": true}}}\n",
        ),
        ("services/worker/nested/child.yaml", CHILD),
        (
            "services/worker/nested/code/clean.py",
            "def handler(e, c): return 3\n",
        ),
    ])
}

#[test]
fn every_local_path_of_a_sam_template_is_packaged_and_pointed_at_the_bucket() {
    let ws = sam_workspace();
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let sp = &m.services["worker"];

    let found: Vec<(&str, &str, &str, ArtifactFormat)> = sp
        .artifacts
        .iter()
        .map(|a| {
            (
                a.resource.as_str(),
                a.property.as_str(),
                a.source.as_str(),
                a.format,
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("Reader", "CodeUri", "reader", ArtifactFormat::Zip),
            ("Deps", "ContentUri", "layer", ArtifactFormat::Zip),
            (
                "Flow",
                "DefinitionUri",
                "flow.asl.json",
                ArtifactFormat::File
            ),
            // The nested template's own code, then the nested template itself.
            ("Cleaner", "CodeUri", "nested/code", ArtifactFormat::Zip),
            (
                "Child",
                "Location",
                "nested/child.yaml",
                ArtifactFormat::File
            ),
            ("Globals.Function", "CodeUri", "src", ArtifactFormat::Zip),
        ]
    );
    for a in &sp.artifacts {
        assert!(a.local_path(out.path()).is_file(), "{a:?} is kept");
        assert!(a.key.starts_with("shop/worker/"), "{}", a.key);
        assert!(a.key.contains(&a.sha256), "content addressed: {}", a.key);
    }

    let template: Value =
        serde_json::from_slice(&fs::read(out.path().join(&sp.template)).unwrap()).unwrap();
    assert_eq!(
        template["Transform"], "AWS::Serverless-2016-10-31",
        "SAM expands it"
    );
    assert!(template["Parameters"]["FerryArtifactBucket"].is_object());
    let key_of = |resource: &str| {
        sp.artifacts
            .iter()
            .find(|a| a.resource == resource)
            .unwrap()
            .key
            .clone()
    };
    assert_eq!(
        template["Globals"]["Function"]["CodeUri"],
        json!({"Bucket": {"Ref": "FerryArtifactBucket"}, "Key": key_of("Globals.Function")})
    );
    assert!(
        template["Resources"]["Writer"]["Properties"]
            .get("CodeUri")
            .is_none(),
        "Writer still inherits its code from Globals"
    );
    assert_eq!(
        template["Resources"]["Flow"]["Properties"]["DefinitionUri"]["Key"],
        json!(key_of("Flow"))
    );
    assert_eq!(
        template["Resources"]["Child"]["Type"],
        "AWS::CloudFormation::Stack"
    );
    assert_eq!(
        template["Resources"]["Child"]["Properties"]["Parameters"],
        json!({"Table": {"Ref": "Table"}, "FerryArtifactBucket": {"Ref": "FerryArtifactBucket"}})
    );
    let url = template["Resources"]["Child"]["Properties"]["TemplateURL"]["Fn::Sub"]
        .as_str()
        .unwrap();
    assert!(url.ends_with(&key_of("Child")), "{url}");

    // The nested template points at its own code and takes the bucket.
    let child = sp.artifacts.iter().find(|a| a.resource == "Child").unwrap();
    let nested: Value =
        serde_json::from_slice(&fs::read(child.local_path(out.path())).unwrap()).unwrap();
    assert_eq!(
        nested["Resources"]["Cleaner"]["Properties"]["CodeUri"]["Key"],
        json!(key_of("Cleaner"))
    );
    assert!(nested["Parameters"]["FerryArtifactBucket"].is_object());

    // Excludes apply to SAM zips; the definition is kept byte for byte.
    let globals = sp
        .artifacts
        .iter()
        .find(|a| a.resource == "Globals.Function")
        .unwrap();
    assert_eq!(globals.files, 1, "__pycache__ left out");
    let flow = sp.artifacts.iter().find(|a| a.resource == "Flow").unwrap();
    assert_eq!(
        fs::read(flow.local_path(out.path())).unwrap(),
        fs::read(ws.path().join("services/worker/flow.asl.json")).unwrap()
    );

    // The same files package to the same keys in another checkout.
    let ws2 = sam_workspace();
    let out2 = tempfile::tempdir().unwrap();
    let m2 = run(ws2.path(), out2.path()).unwrap();
    assert_eq!(m2.services["worker"].artifacts, sp.artifacts);
    assert_eq!(m2.services["worker"].template_sha256, sp.template_sha256);
}

#[test]
fn a_function_that_names_no_code_packages_the_template_folder_as_the_sam_cli_does() {
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        (
            "services/worker/template.yaml",
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: app.handler\n      Runtime: python3.12\n  Inline:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: index.handler\n      Runtime: python3.12\n      InlineCode: \"def handler(e, c): pass\"\n",
        ),
        ("services/worker/app.py", "def handler(e, c): pass\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let a = &m.services["worker"].artifacts;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!((a[0].resource.as_str(), a[0].source.as_str()), ("Fn", "."));
    assert_eq!(a[0].files, 3, "app.py, service.toml, template.yaml");
}

const EMPTY_ZIP: &str = "PK\u{5}\u{6}\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

#[test]
fn a_prebuilt_zip_is_uploaded_as_it_is() {
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        (
            "services/worker/template.yaml",
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: app.handler\n      Runtime: java21\n      CodeUri: build/fn.jar\n",
        ),
        // The smallest archive there is: an end-of-directory record, no entry.
        ("services/worker/build/fn.jar", EMPTY_ZIP),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let a = &m.services["worker"].artifacts[0];
    assert_eq!(
        fs::read(a.local_path(out.path())).unwrap(),
        EMPTY_ZIP.as_bytes()
    );
}

#[cfg(unix)]
#[test]
fn a_single_file_artifact_is_checked_like_the_files_of_a_folder() {
    use std::os::unix::fs::symlink;
    let api = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Api:\n    Type: AWS::Serverless::Api\n    Properties:\n      StageName: v1\n      DefinitionUri: config/openapi.yaml\n";
    let jar = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: app.handler\n      Runtime: java21\n      CodeUri: build/fn.jar\n";
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("fn.jar"), EMPTY_ZIP).unwrap();
    // (template, what, how the service folder is arranged, the error expected)
    type Arrange = Box<dyn Fn(&Path)>;
    let cases: [(&str, &str, Arrange, &str); 4] = [
        // A credential file named as the artifact.
        (
            api,
            "a credential file",
            Box::new(|svc: &Path| {
                fs::write(svc.join("config/.env"), "TOKEN=t").unwrap();
                symlink(".env", svc.join("config/openapi.yaml")).unwrap();
            }),
            "is (or leads to) a credential file",
        ),
        // Shared files the service does not declare among its inputs.
        (
            api,
            "shared",
            Box::new(|svc: &Path| {
                let shared = svc.join("../../shared");
                fs::create_dir_all(&shared).unwrap();
                fs::write(shared.join("openapi.yaml"), "openapi: 3.0.0\n").unwrap();
                symlink(
                    "../../../shared/openapi.yaml",
                    svc.join("config/openapi.yaml"),
                )
                .unwrap();
            }),
            "outside the service's folder and its declared inputs",
        ),
        // A prebuilt archive from outside the repository.
        (
            jar,
            "outside",
            Box::new({
                let target = outside.path().join("fn.jar");
                move |svc: &Path| symlink(&target, svc.join("build/fn.jar")).unwrap()
            }),
            "outside the repository",
        ),
        // A prebuilt archive shared in the repository, undeclared.
        (
            jar,
            "shared jar",
            Box::new(|svc: &Path| {
                let shared = svc.join("../../shared");
                fs::create_dir_all(&shared).unwrap();
                fs::write(shared.join("fn.jar"), EMPTY_ZIP).unwrap();
                symlink("../../../shared/fn.jar", svc.join("build/fn.jar")).unwrap();
            }),
            "outside the service's folder and its declared inputs",
        ),
    ];
    for (template, what, arrange, expected) in cases {
        let ws = workspace(&[
            ("services/worker/service.toml", MANIFEST),
            ("services/worker/template.yaml", template),
        ]);
        let svc = ws.path().join("services/worker");
        fs::create_dir_all(svc.join("config")).unwrap();
        fs::create_dir_all(svc.join("build")).unwrap();
        arrange(&svc);
        let out = tempfile::tempdir().unwrap();
        let e = run(ws.path(), out.path()).unwrap_err();
        assert!(e.contains(expected), "{what}: {e}");
    }
}

/// Packages a one-service workspace and returns the error's text.
fn refused(template: &str, extra: &[(&str, &str)]) -> String {
    let mut files = vec![
        ("services/worker/service.toml", MANIFEST),
        ("services/worker/template.yaml", template),
    ];
    files.extend_from_slice(extra);
    let ws = workspace(&files);
    let out = tempfile::tempdir().unwrap();
    let e = run(ws.path(), out.path()).unwrap_err();
    assert!(
        !out.path().join("c1").exists(),
        "nothing packaged after: {e}"
    );
    e
}

#[test]
fn bad_sam_templates_are_refused_naming_the_service_the_file_and_what_to_do() {
    let function = |code: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: a.h\n      Runtime: python3.12\n      CodeUri: {code}\n"
        )
    };
    let e = refused(
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src\n",
        &[],
    );
    assert!(
        e.contains("worker: template services/worker/template.yaml"),
        "{e}"
    );
    assert!(
        e.contains("no `Transform: AWS::Serverless-2016-10-31`"),
        "{e}"
    );
    assert!(e.contains("kind = \"cloudformation\""), "{e}");

    for outside in ["../shared", "src/../../x"] {
        let e = refused(&function(outside), &[]);
        assert!(e.contains("Fn.CodeUri names"), "{e}");
        assert!(e.contains("outside the service folder"), "{e}");
    }
    // A path out of the repository, or an absolute one, is said to be so.
    for outside in ["/opt/code", "../../../x"] {
        let e = refused(&function(outside), &[]);
        assert!(e.contains("Fn.CodeUri names"), "{e}");
        assert!(
            e.contains("lies outside the repository (or is absolute)"),
            "{e}"
        );
    }

    let e = refused(&function("missing"), &[]);
    assert!(
        e.contains("worker: artifact missing of resource `Fn` does not exist"),
        "{e}"
    );

    let e = refused(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Api:\n    Type: AWS::Serverless::Api\n    Properties:\n      StageName: v1\n      DefinitionUri: api\n",
        &[("services/worker/api/openapi.yaml", "openapi: 3.0.0\n")],
    );
    assert!(e.contains("Api.DefinitionUri names api, a folder"), "{e}");

    let e = refused(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  App:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: template.yaml\n",
        &[],
    );
    assert!(
        e.contains("nested applications go at most 5 levels deep"),
        "{e}"
    );
}

#[test]
fn plain_cloudformation_locations_in_a_sam_template_are_packaged_too() {
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        (
            "services/worker/template.yaml",
            r#"Transform: AWS::Serverless-2016-10-31
Resources:
  Network:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: nested/vpc.yaml
  Flow:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      RoleArn: arn:aws:iam::123456789012:role/x
      DefinitionS3Location: flow.asl.json
  Rest:
    Type: AWS::ApiGateway::RestApi
    Properties:
      BodyS3Location: api.yaml
  Resolver:
    Type: AWS::AppSync::Resolver
    Properties:
      ApiId: x
      TypeName: Query
      FieldName: get
      CodeS3Location: resolvers/get.js
  Base: &base
    Type: AWS::Serverless::Function
    Properties: &props
      CodeUri: src
      Handler: a.h
      Runtime: python3.12
  Merged:
    Type: AWS::Serverless::Function
    Properties:
      <<: *props
      Timeout: 5
"#,
        ),
        (
            "services/worker/nested/vpc.yaml",
            "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: 10.0.0.0/16\n",
        ),
        (
            "services/worker/flow.asl.json",
            "{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Pass\", \"End\": true}}}\n",
        ),
        ("services/worker/api.yaml", "openapi: 3.0.1\n"),
        (
            "services/worker/resolvers/get.js",
            "export function request() {}\n",
        ),
        ("services/worker/src/a.py", "def h(e, c): pass\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let sp = &m.services["worker"];
    let t: Value =
        serde_json::from_slice(&fs::read(out.path().join(&sp.template)).unwrap()).unwrap();
    let key = |r: &str| {
        sp.artifacts
            .iter()
            .find(|a| a.resource == r)
            .unwrap_or_else(|| panic!("{r} packaged: {:?}", sp.artifacts))
            .key
            .clone()
    };
    let url = t["Resources"]["Network"]["Properties"]["TemplateURL"]["Fn::Sub"]
        .as_str()
        .unwrap();
    assert!(url.ends_with(&key("Network")), "{url}");
    assert_eq!(
        t["Resources"]["Network"]["Properties"]["Parameters"]["FerryArtifactBucket"],
        json!({"Ref": "FerryArtifactBucket"})
    );
    assert_eq!(
        t["Resources"]["Flow"]["Properties"]["DefinitionS3Location"],
        json!({"Bucket": {"Ref": "FerryArtifactBucket"}, "Key": key("Flow")})
    );
    assert_eq!(
        t["Resources"]["Rest"]["Properties"]["BodyS3Location"]["Key"],
        json!(key("Rest"))
    );
    assert_eq!(
        t["Resources"]["Resolver"]["Properties"]["CodeS3Location"],
        json!({"Fn::Sub": format!("s3://${{FerryArtifactBucket}}/{}", key("Resolver"))})
    );
    // A merge key brings the base's CodeUri: the same archive, not the whole folder.
    assert_eq!(key("Merged"), key("Base"));
    assert!(t["Resources"]["Merged"]["Properties"].get("<<").is_none());
    assert_eq!(t["Resources"]["Merged"]["Properties"]["Timeout"], json!(5));
}

/// A SAM API whose OpenAPI body is `AWS::Include`d from `location`.
fn including(location: &str) -> String {
    format!(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Api:\n    Type: AWS::Serverless::Api\n    Properties:\n      StageName: v1\n      DefinitionBody:\n        Fn::Transform:\n          Name: AWS::Include\n          Parameters:\n            Location: {location}\n"
    )
}

const OPENAPI: &str = "openapi: 3.0.1\ninfo: {title: orders}\npaths:\n  /orders:\n    get:\n      x-amazon-apigateway-integration:\n        uri:\n          Fn::Sub: arn:aws:apigateway:${AWS::Region}:sqs:path/q\n";

#[test]
fn an_included_file_is_put_in_the_template_as_the_transform_would() {
    // As in aws-samples/serverless-patterns, where a tenth of the SAM patterns include their
    // OpenAPI body: `Location: ./api.yaml` (the SAM CLI uploads it to a bucket of its own).
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        (
            "services/worker/template.yaml",
            &including("./api/../api.yaml"),
        ),
        ("services/worker/api.yaml", OPENAPI),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let sp = &m.services["worker"];
    assert!(sp.artifacts.is_empty(), "{:?}", sp.artifacts);
    let t: Value =
        serde_json::from_slice(&fs::read(out.path().join(&sp.template)).unwrap()).unwrap();
    let body = &t["Resources"]["Api"]["Properties"]["DefinitionBody"];
    assert_eq!(body["info"]["title"], json!("orders"), "{t}");
    assert_eq!(
        body.pointer("/paths/~1orders/get/x-amazon-apigateway-integration/uri/Fn::Sub"),
        Some(&json!("arn:aws:apigateway:${AWS::Region}:sqs:path/q"))
    );
    assert!(
        t.get("Parameters").is_none(),
        "no bucket parameter without artifacts: {t}"
    );

    // Beside code: both in one template, and an included file that includes another.
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        (
            "services/worker/template.yaml",
            &format!(
                "{}  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: app.handler\n      Runtime: python3.12\n      CodeUri: src\n",
                including("spec/api.yaml")
            ),
        ),
        (
            "services/worker/spec/api.yaml",
            "openapi: 3.0.1\npaths:\n  Fn::Transform:\n    Name: AWS::Include\n    Parameters:\n      Location: spec/paths.yaml\n",
        ),
        ("services/worker/spec/paths.yaml", "/health: {get: {}}\n"),
        ("services/worker/src/app.py", "def handler(e, c): pass\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let sp = &m.services["worker"];
    assert_eq!(sp.artifacts.len(), 1);
    let t: Value =
        serde_json::from_slice(&fs::read(out.path().join(&sp.template)).unwrap()).unwrap();
    assert_eq!(
        t["Resources"]["Api"]["Properties"]["DefinitionBody"]["paths"],
        json!({"/health": {"get": {}}})
    );
    assert!(t["Parameters"].get("FerryArtifactBucket").is_some(), "{t}");
}

/// An include beside other keys is merged with them, as CloudFormation merges it: put in
/// whole, it dropped them, and a function beside an include of more resources was deleted from
/// the stack (a probe met it). The same key on both sides is refused.
#[test]
fn an_include_beside_other_keys_is_merged_with_them() {
    let template = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Main:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: a.h\n      Runtime: python3.12\n  Bucket:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: kept\n      Fn::Transform:\n        Name: AWS::Include\n        Parameters:\n          Location: ./enc.yaml\n  Fn::Transform:\n    Name: AWS::Include\n    Parameters:\n      Location: ./more.yaml\n";
    let files = |more: &'static str| {
        workspace(&[
            ("services/worker/service.toml", MANIFEST),
            ("services/worker/template.yaml", template),
            ("services/worker/src/a.py", "def h(e, c): pass\n"),
            (
                "services/worker/enc.yaml",
                "BucketEncryption:\n  ServerSideEncryptionConfiguration:\n    - ServerSideEncryptionByDefault: {SSEAlgorithm: AES256}\n",
            ),
            ("services/worker/more.yaml", more),
        ])
    };
    let ws = files("Extra:\n  Type: AWS::SQS::Queue\n");
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let sp = &m.services["worker"];
    let t: Value =
        serde_json::from_slice(&fs::read(out.path().join(&sp.template)).unwrap()).unwrap();
    let ids: Vec<&String> = t["Resources"].as_object().unwrap().keys().collect();
    assert_eq!(ids.len(), 3, "{t}");
    for id in ["Main", "Bucket", "Extra"] {
        assert!(t["Resources"].get(id).is_some(), "{id}: {t}");
    }
    let bucket = &t["Resources"]["Bucket"]["Properties"];
    assert_eq!(bucket["BucketName"], json!("kept"), "{t}");
    assert!(bucket.get("BucketEncryption").is_some(), "{t}");
    assert!(bucket.get("Fn::Transform").is_none(), "{t}");
    // The included file gives `Main` again: refused, by validate too, naming it.
    let ws = files("Main:\n  Type: AWS::SQS::Queue\n");
    let out = tempfile::tempdir().unwrap();
    let e = run(ws.path(), out.path()).unwrap_err();
    assert!(
        e.contains("Resources (AWS::Include)") && e.contains("both give `Main`"),
        "{e}"
    );
    let loaded = ferry_manifest::load(ws.path()).unwrap();
    let checked: Vec<String> = ferry_package::check_templates(&loaded, &loaded.services)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        checked.iter().any(|c| c.contains("both give `Main`")),
        "{checked:?}"
    );
}

/// What an intrinsic function gives that is no local path is not refused: a branch that is
/// no value or an S3 URI, an S3 location as a mapping, text that starts with a variable (a
/// base URL). And an include beside other keys in a service with a build is judged where it
/// lies only, its neighbours kept for the checks after it.
#[test]
fn intrinsics_that_name_no_local_path_pass() {
    let template = "Transform: AWS::Serverless-2016-10-31\nParameters:\n  UseAlt: {Type: String, Default: 'false'}\n  Base: {Type: String, Default: 'https://example.com/t'}\n  B: {Type: String, Default: 'b'}\nConditions:\n  Alt: !Equals [!Ref UseAlt, 'true']\nResources:\n  A:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: !If [Alt, !Ref AWS::NoValue, s3://bucket/a.zip]\n      InlineCode: x\n      Handler: a.handler\n      Runtime: python3.12\n  B:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {Bucket: bucket, Key: b.zip}\n      Handler: a.handler\n      Runtime: python3.12\n  C:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: !Sub 's3://${B}/c.zip'\n      Handler: a.handler\n      Runtime: python3.12\n  Child:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: !Sub '${Base}/child.yaml'\n";
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        ("services/worker/template.yaml", template),
    ]);
    let out = tempfile::tempdir().unwrap();
    run(ws.path(), out.path()).unwrap();
    // A service with a build: its include is its build's to make.
    let ws = workspace(&[
        (
            "services/worker/service.toml",
            "[service]\nkind = \"sam\"\n\n[package]\nbuild = [\"make\"]\n",
        ),
        (
            "services/worker/template.yaml",
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Main:\n    Type: AWS::SQS::Queue\n  Fn::Transform:\n    Name: AWS::Include\n    Parameters:\n      Location: ./build/more.yaml\n",
        ),
    ]);
    let loaded = ferry_manifest::load(ws.path()).unwrap();
    let checked: Vec<String> = ferry_package::check_templates(&loaded, &loaded.services)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(checked.is_empty(), "{checked:?}");
}

#[test]
fn what_ferry_cannot_package_is_refused_by_name() {
    // Included files: missing, outside the service folder, not YAML, including themselves.
    let e = refused(&including("./api.yaml"), &[]);
    assert!(
        e.contains("worker: artifact api.yaml of resource `Resources.Api.Properties.DefinitionBody (AWS::Include)` does not exist"),
        "{e}"
    );
    let e = refused(
        &including("../shared/api.yaml"),
        &[("services/shared/api.yaml", OPENAPI)],
    );
    assert!(
        e.contains("Resources.Api.Properties.DefinitionBody (AWS::Include)")
            && e.contains("../shared/api.yaml"),
        "{e}"
    );
    let e = refused(
        &including("api.yaml"),
        &[("services/worker/api.yaml", "a: [b\n")],
    );
    assert!(
        e.contains("services/worker/api.yaml"),
        "names the included file: {e}"
    );
    let e = refused(
        &including("api.yaml"),
        &[(
            "services/worker/api.yaml",
            "Fn::Transform:\n  Name: AWS::Include\n  Parameters:\n    Location: api.yaml\n",
        )],
    );
    assert!(
        e.contains("is included more than 5 levels deep; does a file include itself?"),
        "{e}"
    );
    let e = refused(&including(".env"), &[("services/worker/.env", "A: b\n")]);
    assert!(e.contains("credential file"), "{e}");

    let e = refused(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Img:\n    Type: AWS::Serverless::Function\n    Properties:\n      PackageType: Image\n    Metadata:\n      Dockerfile: Dockerfile\n",
        &[],
    );
    assert!(
        e.contains("Img (PackageType: Image): Ferry does not build or push container images"),
        "{e}"
    );

    let e = refused(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Job:\n    Type: AWS::Glue::Job\n    Properties:\n      Role: x\n      Command:\n        Name: glueetl\n        ScriptLocation: job.py\n",
        &[],
    );
    assert!(e.contains("Job.Command.ScriptLocation (job.py)"), "{e}");
    // A local path an intrinsic function chooses, and the resources an Fn::ForEach makes:
    // neither was packaged, and each deployed its local path as written (a probe met both).
    let e = refused(
        "Transform: AWS::Serverless-2016-10-31\nParameters:\n  UseAlt: {Type: String, Default: 'false'}\nConditions:\n  Alt: !Equals [!Ref UseAlt, 'true']\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: !If [Alt, alt/, src/]\n      Handler: a.handler\n      Runtime: python3.12\n",
        &[
            ("services/worker/src/a.py", "x = 1\n"),
            ("services/worker/alt/a.py", "x = 2\n"),
        ],
    );
    assert!(
        e.contains(
            "Fn.CodeUri (Fn::If): Ferry packages a local path written as a plain string only"
        ),
        "{e}"
    );
    let e = refused(
        "Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]\nResources:\n  Fn::ForEach::Functions:\n    - Name\n    - [alpha, beta]\n    - ${Name}Function:\n        Type: AWS::Serverless::Function\n        Properties:\n          CodeUri: ./${Name}\n          Handler: a.handler\n          Runtime: python3.12\n",
        &[("services/worker/alpha/a.py", "x = 1\n")],
    );
    assert!(
        e.contains("Fn::ForEach::Functions: Ferry does not expand Fn::ForEach"),
        "{e}"
    );
    // A looped function naming no code takes the template's folder: local too.
    let e = refused(
        "Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]\nResources:\n  Fn::ForEach::Functions:\n    - Name\n    - [alpha, beta]\n    - ${Name}Function:\n        Type: AWS::Serverless::Function\n        Properties:\n          Handler: a.handler\n          Runtime: python3.12\n",
        &[("services/worker/a.py", "x = 1\n")],
    );
    assert!(e.contains("Ferry does not expand Fn::ForEach"), "{e}");
    // An empty location names no file (aws-samples/serverless-patterns has one).
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        (
            "services/worker/template.yaml",
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Job:\n    Type: AWS::Glue::Job\n    Properties:\n      Role: x\n      Command:\n        Name: glueetl\n        ScriptLocation: \"\"\n",
        ),
    ]);
    let out = tempfile::tempdir().unwrap();
    run(ws.path(), out.path()).unwrap();
}

#[test]
fn a_function_the_sam_cli_would_build_needs_a_build_of_the_service() {
    let template = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.handler\n      Runtime: provided.al2023\n    Metadata:\n      BuildMethod: makefile\n";
    let e = refused(template, &[("services/worker/src/Makefile", "build-Fn:\n")]);
    assert!(
        e.contains(
            "Fn.Metadata.BuildMethod (makefile): the SAM CLI builds it (`sam build`), while Ferry packages the folder its CodeUri names as it is"
        ),
        "{e}"
    );
    // With a build of its own, the service is trusted to write the code where CodeUri points.
    let ws = workspace(&[
        (
            "services/worker/service.toml",
            "[service]\nkind = \"sam\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"echo built > src/bootstrap\"]\n",
        ),
        ("services/worker/template.yaml", template),
        ("services/worker/src/Makefile", "build-Fn:\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let manifest = run(ws.path(), out.path()).unwrap();
    assert!(manifest.services.contains_key("worker"));
}

/// What `sam build` writes (`.aws-sam/build/template.yaml`, each function's code with its
/// dependencies installed in a folder of its own) is packaged in place of the service's template
/// when `built-template` names it. The build here writes what `sam build` would, so that the
/// test needs no SAM CLI.
#[test]
fn a_sam_build_s_template_is_packaged_with_the_code_it_built() {
    let source = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.handler\n      Runtime: python3.12\n    Metadata:\n      BuildMethod: python3.12\n";
    let built = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: Fn\n      Handler: app.handler\n      Runtime: python3.12\n";
    let sam_build = format!(
        "mkdir -p .aws-sam/build/Fn/requests && cp src/app.py .aws-sam/build/Fn/ && echo dep > .aws-sam/build/Fn/requests/__init__.py && printf '%s' '{built}' > .aws-sam/build/template.yaml"
    );
    let manifest = |script: &str| {
        format!(
            "[service]\nkind = \"sam\"\n\n[package]\nbuild = [\"sh\", \"-c\", {script:?}]\nbuilt-template = \".aws-sam/build/template.yaml\"\n"
        )
    };
    let ws = workspace(&[
        ("services/worker/service.toml", &manifest(&sam_build)),
        ("services/worker/template.yaml", source),
        ("services/worker/src/app.py", "def handler(e, c): pass\n"),
        ("services/worker/src/requirements.txt", "requests\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let sp = &m.services["worker"];
    let found: Vec<(&str, &str, usize)> = sp
        .artifacts
        .iter()
        .map(|a| (a.resource.as_str(), a.source.as_str(), a.files))
        .collect();
    // The built folder, dependency and all, not the source folder.
    assert_eq!(found, [("Fn", ".aws-sam/build/Fn", 2)]);
    let template: Value =
        serde_json::from_slice(&fs::read(out.path().join(&sp.template)).unwrap()).unwrap();
    assert_eq!(
        template["Resources"]["Fn"]["Properties"]["CodeUri"]["Key"],
        json!(sp.artifacts[0].key)
    );

    // A build that does not write it: the service fails naming the file and where sam build
    // writes it.
    let ws = workspace(&[
        ("services/worker/service.toml", &manifest("true")),
        ("services/worker/template.yaml", source),
        ("services/worker/src/app.py", ""),
    ]);
    let e = run(ws.path(), tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(
        e.contains("its build ran and did not write services/worker/.aws-sam/build/template.yaml, the template [package] built-template names")
            && e.contains("`sam build` writes .aws-sam/build/template.yaml"),
        "{e}"
    );
    // One that writes something else than a SAM template.
    let ws = workspace(&[
        (
            "services/worker/service.toml",
            &manifest(
                "mkdir -p .aws-sam/build && echo 'Resources: {}' > .aws-sam/build/template.yaml",
            ),
        ),
        ("services/worker/template.yaml", source),
        ("services/worker/src/app.py", ""),
    ]);
    let e = run(ws.path(), tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(
        e.contains("services/worker/.aws-sam/build/template.yaml")
            && e.contains("AWS::Serverless-2016-10-31"),
        "{e}"
    );
}

/// A template kept above its service folder (one of several stacks of a folder, each given the
/// folder of its code): its paths lead back into the service folder, and only there.
#[test]
fn a_template_above_its_service_folder_packages_the_code_inside_the_folder() {
    let template = |code: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {code}\n      Handler: app.handler\n      Runtime: python3.12\n"
        )
    };
    let manifest = "[service]\nkind = \"sam\"\ntemplate = \"../worker.yaml\"\n";
    let ws = workspace(&[
        ("services/worker/service.toml", manifest),
        ("services/worker.yaml", &template("worker/src")),
        ("services/worker/src/app.py", "def handler(e, c): pass\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let a = &m.services["worker"].artifacts;
    assert_eq!((a[0].source.as_str(), a[0].files), ("src", 1));
    // A sibling folder is not the service's.
    let ws = workspace(&[
        ("services/worker/service.toml", manifest),
        ("services/worker.yaml", &template("other/")),
        ("services/other/app.py", ""),
    ]);
    let (e, checked) = both(ws.path());
    // The template named from the root, normalised, by packaging and validate alike.
    for said in std::iter::once(&e).chain(&checked) {
        assert!(
            said.contains("worker: template services/worker.yaml: Fn.CodeUri names \"other/\", which is services/other, outside the service folder and its declared inputs"),
            "{said}"
        );
    }
}

/// A problem of a nested template, or of what a SAM build wrote, names that file: the service's
/// own template may be fine.
#[test]
fn a_problem_names_the_template_it_is_in() {
    let parent = "Transform: AWS::Serverless-2016-10-31\nResources:\n  App:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: nested/child.yaml\n";
    let child = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../../elsewhere\n      Handler: app.handler\n      Runtime: python3.12\n";
    let e = refused(parent, &[("services/worker/nested/child.yaml", child)]);
    assert!(
        e.contains("worker: template services/worker/nested/child.yaml: Fn.CodeUri names \"../../elsewhere\""),
        "{e}"
    );

    let built = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../../../elsewhere\n      Handler: app.handler\n      Runtime: python3.12\n";
    let script =
        format!("mkdir -p .aws-sam/build && printf '%s' '{built}' > .aws-sam/build/template.yaml");
    let ws = workspace(&[
        (
            "services/worker/service.toml",
            &format!(
                "[service]\nkind = \"sam\"\n\n[package]\nbuild = [\"sh\", \"-c\", {script:?}]\nbuilt-template = \".aws-sam/build/template.yaml\"\n"
            ),
        ),
        (
            "services/worker/template.yaml",
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.handler\n      Runtime: python3.12\n",
        ),
        ("services/worker/src/app.py", ""),
    ]);
    let e = run(ws.path(), tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(
        e.contains("worker: template services/worker/.aws-sam/build/template.yaml: Fn.CodeUri names \"../../../elsewhere\""),
        "{e}"
    );
}

/// A nested template several services share (`shared/templates/dlq.yaml`) lies outside each
/// one's folder: packaged once the service declares it among its `inputs` (an edit of it then
/// redeploys the service), refused with the input to declare before that. What the shared
/// template names itself is held to the same rule, file by file.
#[test]
fn a_shared_nested_template_outside_the_folder_is_packaged_when_declared_as_an_input() {
    let parent = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Queue:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ../../shared/templates/dlq.yaml\n";
    let dlq = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Redrive:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: redrive/\n      Handler: app.handler\n      Runtime: python3.12\n";
    let with = |inputs: &str| {
        workspace(&[
            (
                "services/worker/service.toml",
                &format!("[service]\nkind = \"sam\"\ninputs = {inputs}\n"),
            ),
            ("services/worker/template.yaml", parent),
            ("shared/templates/dlq.yaml", dlq),
            (
                "shared/templates/redrive/app.py",
                "def handler(e, c): pass\n",
            ),
            ("shared/templates/redrive/notes.txt", "kept\n"),
        ])
    };
    let refused = |inputs: &str| {
        let ws = with(inputs);
        let out = tempfile::tempdir().unwrap();
        let e = run(ws.path(), out.path()).unwrap_err();
        assert!(!out.path().join("c1").exists(), "nothing packaged: {e}");
        let loaded = ferry_manifest::load(ws.path()).unwrap();
        let checked: Vec<String> = ferry_package::check_templates(&loaded, &loaded.services)
            .iter()
            .map(ToString::to_string)
            .collect();
        (e, checked)
    };

    let (e, checked) = refused("[]");
    // validate finds the same before any build.
    assert_eq!(checked.len(), 1, "{checked:?}");
    for e in [&e, &checked[0]] {
        assert!(
            e.contains("worker: template services/worker/template.yaml: Queue.TemplateURL names \"../../shared/templates/dlq.yaml\", which is shared/templates/dlq.yaml, outside the service folder and its declared inputs"),
            "{e}"
        );
        assert!(
            e.contains(
                "declare it in the service's `inputs` (inputs = [\"shared/templates/dlq.yaml\"])"
            ),
            "{e}"
        );
    }
    // The template declared, not the code it names: packaging refuses it, and validate reads
    // the nested template to find the same.
    let (e, checked) = refused("[\"shared/templates/dlq.yaml\"]");
    assert_eq!(checked.len(), 1, "{checked:?}");
    for e in [&e, &checked[0]] {
        assert!(
            e.contains("template shared/templates/dlq.yaml: Redrive.CodeUri names \"redrive/\", which is shared/templates/redrive, outside the service folder"),
            "{e}"
        );
    }
    // A glob that takes the folder but not its files (`*` stops at a `/`): the walk refuses
    // the first file it does not cover, validate's as packaging's.
    let (e, checked) = refused("[\"shared/templates/dlq.yaml\", \"shared/templates/*\"]");
    assert_eq!(checked.len(), 1, "{checked:?}");
    for e in [&e, &checked[0]] {
        assert!(
            e.contains("leads to shared/templates/redrive/")
                && e.contains("outside the service's folder and its declared inputs"),
            "{e}"
        );
    }
    // An installed package's folder outside the service's own is no exception (the walk lets
    // a link into one pass: it changes with a lockfile the service declares).
    let e = self::refused(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: ../../node_modules/left-pad\n      Handler: index.handler\n      Runtime: nodejs20.x\n",
        &[("node_modules/left-pad/index.js", "exports.handler = 1;\n")],
    );
    assert!(
        e.contains("Fn.CodeUri names \"../../node_modules/left-pad\", which is node_modules/left-pad, outside the service folder and its declared inputs"),
        "{e}"
    );
    // The folder's everything, as `inputs` usually says it.
    let ws = with("[\"shared/templates/dlq.yaml\", \"shared/templates/redrive/**\"]");
    assert!(run(ws.path(), tempfile::tempdir().unwrap().path()).is_ok());
    let ws = with("[\"shared/templates/dlq.yaml\", \"shared/templates/redrive\"]");
    let out = tempfile::tempdir().unwrap();
    let m = run(ws.path(), out.path()).unwrap();
    let a = &m.services["worker"].artifacts;
    let found: Vec<(&str, &str, &str)> = a
        .iter()
        .map(|a| (a.resource.as_str(), a.property.as_str(), a.source.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("Redrive", "CodeUri", "../../shared/templates/redrive"),
            ("Queue", "TemplateURL", "../../shared/templates/dlq.yaml"),
        ]
    );
    let redrive = a.iter().find(|a| a.resource == "Redrive").unwrap();
    assert_eq!(redrive.files, 2);
}

/// `validate` reads nested templates as packaging does, so what packaging would refuse there
/// is found before any build: each case is refused by both, with the same words (a missing
/// path each in its own).
#[test]
fn validate_finds_what_packaging_refuses_in_a_nested_template() {
    let parent = "Transform: AWS::Serverless-2016-10-31\nResources:\n  App:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: nested/child.yaml\n";
    let function = |props: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: app.handler\n      Runtime: python3.12\n{props}"
        )
    };
    let app = |location: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Deeper:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: {location}\n"
        )
    };
    let include = |location: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Api:\n    Type: AWS::Serverless::Api\n    Properties:\n      StageName: v1\n      DefinitionBody:\n        Fn::Transform:\n          Name: AWS::Include\n          Parameters:\n            Location: {location}\n"
        )
    };
    // (what, the nested template, other files, packaging's words, validate's if others).
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "code outside the folder",
            function("      CodeUri: ../../elsewhere\n"),
            vec![("elsewhere/app.py", "")],
            "worker: template services/worker/nested/child.yaml: Fn.CodeUri names \"../../elsewhere\", which is services/elsewhere, outside the service folder",
            "",
        ),
        (
            "a container image",
            function("      PackageType: Image\n"),
            vec![],
            "template services/worker/nested/child.yaml: Fn (PackageType: Image)",
            "",
        ),
        (
            "a function the SAM CLI builds",
            function("      CodeUri: src/\n    Metadata:\n      BuildMethod: makefile\n"),
            vec![("services/worker/nested/src/app.py", "")],
            "template services/worker/nested/child.yaml: Fn.Metadata.BuildMethod (makefile)",
            "",
        ),
        (
            "an include outside the folder",
            format!(
                "{}      InlineCode: x\n  Api:\n    Type: AWS::Serverless::Api\n    Properties:\n      StageName: v1\n      DefinitionBody:\n        Fn::Transform:\n          Name: AWS::Include\n          Parameters:\n            Location: ../../../api.yaml\n",
                function("")
            ),
            vec![("api.yaml", "openapi: 3.0.0\n")],
            "template services/worker/nested/child.yaml: Resources.Api.Properties.DefinitionBody (AWS::Include) names \"../../../api.yaml\", which is api.yaml, outside the service folder",
            "",
        ),
        (
            "a template that does not parse",
            "Resources: [\n".to_string(),
            vec![],
            "worker: template services/worker/nested/child.yaml:",
            "",
        ),
        (
            "a template nested in itself",
            app("child.yaml"),
            vec![],
            "Deeper.Location names \"child.yaml\", and nested applications go at most 5 levels deep",
            "",
        ),
        (
            "a folder named as a template",
            app("deeper/"),
            vec![("services/worker/nested/deeper/t.yaml", "")],
            "names nested/deeper, a folder",
            "",
        ),
        (
            "missing code",
            function("      CodeUri: src/\n"),
            vec![],
            // Packaging's words, then validate's: each names the path.
            "artifact nested/src of resource `Fn` does not exist",
            "Fn.CodeUri names services/worker/nested/src, which does not exist",
        ),
        (
            "a template nesting the one above it",
            app("../template.yaml"),
            vec![],
            "and nested applications go at most 5 levels deep",
            "",
        ),
        (
            "a missing include",
            include("missing.yaml"),
            vec![],
            "artifact nested/missing.yaml of resource `Resources.Api.Properties.DefinitionBody (AWS::Include)` does not exist",
            "",
        ),
        (
            "an include that does not parse",
            include("api.yaml"),
            vec![("services/worker/nested/api.yaml", "openapi: [\n")],
            "worker: template services/worker/nested/api.yaml:",
            "",
        ),
        (
            "an include in an include, outside the folder",
            include("api.yaml"),
            vec![
                (
                    "services/worker/nested/api.yaml",
                    "paths:\n  Fn::Transform:\n    Name: AWS::Include\n    Parameters:\n      Location: ../../../paths.yaml\n",
                ),
                ("paths.yaml", "{}\n"),
            ],
            "DefinitionBody.paths (AWS::Include) names \"../../../paths.yaml\", which is paths.yaml, outside the service folder",
            "",
        ),
        (
            "an archive that is no zip",
            function("      CodeUri: code.zip\n"),
            vec![("services/worker/nested/code.zip", "not a zip\n")],
            "the prebuilt archive nested/code.zip of resource `Fn` is not a zip archive Ferry can read",
            "",
        ),
    ];
    for (what, child, extra, packaging, validating) in cases {
        let mut files = vec![
            ("services/worker/service.toml", MANIFEST),
            ("services/worker/template.yaml", parent),
            ("services/worker/nested/child.yaml", child.as_str()),
        ];
        files.extend(extra);
        let ws = workspace(&files);
        let e = run(ws.path(), tempfile::tempdir().unwrap().path()).unwrap_err();
        let loaded = ferry_manifest::load(ws.path()).unwrap();
        let checked: Vec<String> = ferry_package::check_templates(&loaded, &loaded.services)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(e.contains(packaging), "{what}: packaging said {e}");
        let validating = if validating.is_empty() {
            packaging
        } else {
            validating
        };
        assert_eq!(checked.len(), 1, "{what}: {checked:?}");
        assert!(
            checked[0].contains(validating),
            "{what}: validate said {}",
            checked[0]
        );
    }

    // A template nested by two others is read once: its problem is said once.
    let two = "Transform: AWS::Serverless-2016-10-31\nResources:\n  A:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: nested/child.yaml\n  B:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: ./nested/child.yaml\n";
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        ("services/worker/template.yaml", two),
        (
            "services/worker/nested/child.yaml",
            &function("      CodeUri: ../../elsewhere\n"),
        ),
    ]);
    let loaded = ferry_manifest::load(ws.path()).unwrap();
    let checked = ferry_package::check_templates(&loaded, &loaded.services);
    assert_eq!(checked.len(), 1, "{checked:?}");

    // With a build of the service's own, a path its build may write is not asked for, and a
    // nested template that is not there yet is not read.
    let built = "[service]\nkind = \"sam\"\n\n[package]\nbuild = [\"true\"]\n";
    for child in [None, Some(function("      CodeUri: src/\n"))] {
        let mut files = vec![
            ("services/worker/service.toml", built),
            ("services/worker/template.yaml", parent),
        ];
        if let Some(c) = &child {
            files.push(("services/worker/nested/child.yaml", c));
        }
        let ws = workspace(&files);
        let loaded = ferry_manifest::load(ws.path()).unwrap();
        let checked = ferry_package::check_templates(&loaded, &loaded.services);
        assert!(checked.is_empty(), "{child:?}: {checked:?}");
    }
}

/// Packages `worker` and validates the workspace: packaging's error, validate's problems.
fn both(ws: &Path) -> (String, Vec<String>) {
    let e = run(ws, tempfile::tempdir().unwrap().path()).unwrap_err();
    let loaded = ferry_manifest::load(ws).unwrap();
    let checked = ferry_package::check_templates(&loaded, &loaded.services)
        .iter()
        .map(ToString::to_string)
        .collect();
    (e, checked)
}

/// A template reached first near the top and later five levels down is checked again there:
/// what it nests is then too deep, for validate as for packaging.
#[test]
fn a_template_reached_deeper_later_is_checked_again() {
    let app = |id: &str, location: &str| {
        format!(
            "  {id}:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: {location}\n"
        )
    };
    let sam = "Transform: AWS::Serverless-2016-10-31\nResources:\n";
    let own = format!("{sam}{}{}", app("A", "x.yaml"), app("B", "c1.yaml"));
    let mut files = vec![
        (
            "services/worker/service.toml".to_string(),
            MANIFEST.to_string(),
        ),
        ("services/worker/template.yaml".to_string(), own),
        (
            "services/worker/x.yaml".to_string(),
            format!("{sam}{}", app("Y", "y.yaml")),
        ),
        (
            "services/worker/y.yaml".to_string(),
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n".to_string(),
        ),
    ];
    for n in 1..=4 {
        let next = if n == 4 {
            "x.yaml".to_string()
        } else {
            format!("c{}.yaml", n + 1)
        };
        files.push((
            format!("services/worker/c{n}.yaml"),
            format!("{sam}{}", app("Down", &next)),
        ));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let ws = workspace(&files);
    let (e, checked) = both(ws.path());
    let want = "worker: template services/worker/x.yaml: Y.Location names \"y.yaml\", and nested applications go at most 5 levels deep";
    assert!(e.contains(want), "{e}");
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert!(checked[0].contains(want), "{checked:?}");
}

/// Hostile files where a template is expected: a link to a device that never ends, a pipe
/// nobody writes to, a file larger than CloudFormation takes. validate ends, and says why, as
/// packaging does; neither reads them whole.
#[cfg(unix)]
#[test]
fn validate_never_reads_a_device_a_pipe_or_a_huge_file_as_a_template() {
    let parent = "Transform: AWS::Serverless-2016-10-31\nResources:\n  App:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location: nested/child.yaml\n";
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        ("services/worker/template.yaml", parent),
    ]);
    let child = ws.path().join("services/worker/nested/child.yaml");
    fs::create_dir_all(child.parent().unwrap()).unwrap();

    std::os::unix::fs::symlink("/dev/zero", &child).unwrap();
    let (e, checked) = both(ws.path());
    for said in std::iter::once(&e).chain(&checked) {
        assert!(
            said.contains("leads to /dev/zero, outside the repository"),
            "{said}"
        );
    }
    assert_eq!(checked.len(), 1, "{checked:?}");

    fs::remove_file(&child).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&child)
        .status()
        .unwrap();
    assert!(made.success());
    let (e, checked) = both(ws.path());
    assert_eq!(checked.len(), 1, "{checked:?}");
    for said in std::iter::once(&e).chain(&checked) {
        assert!(said.contains("nested/child.yaml"), "{said}");
    }

    fs::remove_file(&child).unwrap();
    let big = format!("Resources:\n{}", "# padding\n".repeat(110_000));
    fs::write(&child, big).unwrap();
    let (e, checked) = both(ws.path());
    let want = "worker: template services/worker/nested/child.yaml: it is 1100011 bytes; CloudFormation accepts templates of at most 1048576 bytes";
    assert!(e.contains(want), "{e}");
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert!(checked[0].contains(want), "{checked:?}");
}

/// Folders a template names that the zip would refuse: one outside the service folder that
/// holds nothing, one inside it that is a link to a place the service does not watch, one
/// inside it holding a link out of the repository (validate passed it; packaging refused it),
/// a link that leads nowhere. validate refuses each as packaging does.
#[cfg(unix)]
#[test]
fn validate_walks_the_folders_packaging_would_refuse() {
    let fun = |code: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: {code}\n      Handler: app.handler\n      Runtime: python3.12\n"
        )
    };
    let declared = "[service]\nkind = \"sam\"\ninputs = [\"shared/**\"]\n";
    // Outside, declared, empty but for a credential file (left out of any artifact).
    let ws = workspace(&[
        ("services/worker/service.toml", declared),
        ("services/worker/template.yaml", &fun("../../shared/lib")),
        ("shared/lib/.env", "SECRET=1\n"),
    ]);
    let (e, checked) = both(ws.path());
    let want = "artifact ../../shared/lib of resource `Fn` holds no files";
    assert!(e.contains(want), "{e}");
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert!(checked[0].contains(want), "{checked:?}");

    // Inside, through a link to a folder the service does not declare.
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        ("services/worker/template.yaml", &fun("src/")),
        ("shared/lib/app.py", "def handler(e, c): pass\n"),
    ]);
    std::os::unix::fs::symlink("../../shared/lib", ws.path().join("services/worker/src")).unwrap();
    let (e, checked) = both(ws.path());
    assert!(e.contains("leads to shared/lib/app.py"), "{e}");
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert!(
        checked[0].contains("leads to shared/lib/app.py"),
        "{checked:?}"
    );

    // Inside, a real folder holding a link out of the repository.
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        ("services/worker/template.yaml", &fun("src/")),
        ("services/worker/src/app.py", "def handler(e, c): pass\n"),
    ]);
    std::os::unix::fs::symlink(
        "/etc/hostname",
        ws.path().join("services/worker/src/extra.txt"),
    )
    .unwrap();
    let (e, checked) = both(ws.path());
    let want = "extra.txt leads to /etc/hostname, outside the repository";
    assert!(e.contains(want), "{e}");
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert!(checked[0].contains(want), "{checked:?}");

    // A link that leads nowhere.
    let ws = workspace(&[
        ("services/worker/service.toml", MANIFEST),
        ("services/worker/template.yaml", &fun("src/")),
    ]);
    std::os::unix::fs::symlink("gone", ws.path().join("services/worker/src")).unwrap();
    let (e, checked) = both(ws.path());
    assert!(
        e.contains("artifact src of resource `Fn` does not exist"),
        "{e}"
    );
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert!(
        checked[0].contains("Fn.CodeUri names services/worker/src, which does not exist"),
        "{checked:?}"
    );
}

/// A function whose code folder is a compiled language's project (Java, .NET, Go, Rust) for a
/// runtime that runs only built code: without a build, Ferry's zip would deploy the source, so
/// packaging and validate refuse it alike, saying to give the service `sam build`. With a
/// build, or a `provided` function whose `bootstrap` is already there, it is packaged.
#[test]
fn compiled_source_without_a_build_is_refused_by_validate_and_packaging() {
    let fun = |runtime: &str| {
        format!(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: fn/\n      Handler: app.handler\n      Runtime: {runtime}\n"
        )
    };
    for (runtime, project, want) in [
        (
            "java21",
            "pom.xml",
            "Fn.CodeUri (fn/pom.xml, runtime java21)",
        ),
        (
            "java17",
            "build.gradle.kts",
            "Fn.CodeUri (fn/build.gradle.kts, runtime java17)",
        ),
        (
            "dotnet8",
            "Api.csproj",
            "Fn.CodeUri (fn/Api.csproj, runtime dotnet8)",
        ),
        (
            "provided.al2023",
            "go.mod",
            "Fn.CodeUri (fn/go.mod, runtime provided.al2023)",
        ),
    ] {
        let ws = workspace(&[
            ("services/worker/service.toml", MANIFEST),
            ("services/worker/template.yaml", &fun(runtime)),
            (&format!("services/worker/fn/{project}"), "project\n"),
            ("services/worker/fn/src/main.txt", "source\n"),
        ]);
        let (e, checked) = both(ws.path());
        assert!(
            e.contains(want) && e.contains("sam build"),
            "{runtime}: {e}"
        );
        assert_eq!(checked.len(), 1, "{runtime}: {checked:?}");
        assert!(checked[0].contains(want), "{runtime}: {checked:?}");
    }
    // Runtimes that run source, a bootstrap already built, a build of the service's own: no
    // refusal.
    let fine = |runtime: &str, extra: (&str, &str), manifest: &str| {
        let ws = workspace(&[
            ("services/worker/service.toml", manifest),
            ("services/worker/template.yaml", &fun(runtime)),
            ("services/worker/fn/go.mod", "module x\n"),
            ("services/worker/fn/pom.xml", "<project/>\n"),
            extra,
        ]);
        let loaded = ferry_manifest::load(ws.path()).unwrap();
        let checked = ferry_package::check_templates(&loaded, &loaded.services);
        assert!(checked.is_empty(), "{runtime}: {checked:?}");
        run(ws.path(), tempfile::tempdir().unwrap().path())
    };
    assert!(fine("python3.12", ("services/worker/fn/app.py", ""), MANIFEST).is_ok());
    assert!(
        fine(
            "provided.al2",
            ("services/worker/fn/bootstrap", "binary"),
            MANIFEST
        )
        .is_ok()
    );
    // A go1.x function's handler binary, already built beside its go.mod.
    assert!(
        fine(
            "go1.x",
            ("services/worker/fn/app.handler", "binary"),
            MANIFEST
        )
        .is_ok()
    );
    let built = "[service]\nkind = \"sam\"\n\n[package]\nbuild = [\"true\"]\n";
    assert!(fine("java21", ("services/worker/fn/app.jar", "jar"), built).is_ok());
}
