//! Packaging real folders: reproducible archives, excludes, template rewrites of every supported
//! resource type, build failures, missing folders, reuse by input key; uploads and sites against
//! the local emulator's S3.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use ferry_package::{Event, PackageError, PackageRequest, UploadError, package};
use serde_json::Value;

/// A workspace folder with `ferry.toml` and the given files.
fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for (rel, body) in files {
        write(dir.path(), rel, body);
    }
    dir
}

fn write(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

const FUNCTION: &str = "Resources:\n  Role:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {}\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python3.12\n      Handler: app.handle\n      Role: !GetAtt Role.Arn\n      Code: src\n";

/// A workspace whose one service, `api`, zips `src` for its function.
fn api_workspace() -> tempfile::TempDir {
    workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", API_MANIFEST),
        ("services/api/src/app.py", "x = 1\n"),
    ])
}

/// Packages `services` of the workspace at `root` into `out` as package `c1`.
fn packaged(root: &Path, out: &Path, services: &[&str]) -> ferry_package::PackageManifest {
    run(root, out, &request("c1", services)).0.unwrap()
}

fn request(id: &str, services: &[&str]) -> PackageRequest {
    PackageRequest {
        id: id.into(),
        commit: "0".repeat(40),
        dirty: false,
        services: services.iter().map(|s| s.to_string()).collect(),
        input_keys: BTreeMap::new(),
        dirty_keys: BTreeMap::new(),
    }
}

/// The request a deploy makes of the git checkout at `root`: its HEAD, and the services' input
/// keys as they are now.
fn snapshot_request(root: &Path, services: &[&str]) -> PackageRequest {
    let ws = ferry_manifest::load(root).unwrap();
    let inputs: Vec<_> = ws
        .services
        .iter()
        .map(ferry_package::service_inputs)
        .collect();
    let snap = ferry_changes::Repo::open(root)
        .unwrap()
        .snapshot(&inputs, &ws.project.global_inputs)
        .unwrap();
    PackageRequest {
        id: snap.id,
        commit: snap.commit,
        dirty: snap.dirty,
        services: services.iter().map(|s| s.to_string()).collect(),
        input_keys: snap.input_keys,
        dirty_keys: snap.dirty_keys,
    }
}

fn no_mask(s: &str) -> String {
    s.to_string()
}

/// Packages `services` of the workspace at `root` into `out`, collecting events.
fn run(
    root: &Path,
    out: &Path,
    req: &PackageRequest,
) -> (
    Result<ferry_package::PackageManifest, PackageError>,
    Vec<Event>,
) {
    let ws = ferry_manifest::load(root).unwrap();
    let events = RefCell::new(Vec::new());
    let r = package(&ws, out, req, &no_mask, &|e| events.borrow_mut().push(e));
    (r, events.into_inner())
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The listing Python's zipfile reads from an archive: name, mode, date, and the check of every
/// entry's CRC.
fn inspect(zip: &Path) -> Vec<String> {
    let script = r#"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None, "bad CRC"
for i in z.infolist():
    print(i.filename, oct(i.external_attr >> 16), i.date_time, len(z.read(i)))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn service_files(template: &str, manifest: &str) -> Vec<(String, String)> {
    vec![
        ("services/api/template.yaml".into(), template.into()),
        ("services/api/service.toml".into(), manifest.into()),
    ]
}

const API_MANIFEST: &str =
    "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src\"\n";

#[test]
fn the_same_files_give_byte_identical_archives_whatever_their_modes_times_and_creation_order() {
    let files = service_files(FUNCTION, API_MANIFEST);
    let a = workspace(
        &files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
    );
    let b = workspace(
        &files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
    );
    let sources = [
        (
            "app.py",
            "def handle(event, context):\n    return 1\n".repeat(50),
        ),
        ("lib/util.py", "X = 1\n".into()),
        ("lib/zeta/deep.txt", "deep\n".into()),
        ("run.sh", "#!/bin/sh\necho run\n".into()),
        (
            "noise.bin",
            (0..5000u32)
                .map(|i| char::from(b'a' + (i * 7919 % 26) as u8))
                .collect(),
        ),
    ];
    // Created in opposite orders, with different permissions and times.
    for (rel, body) in &sources {
        write(a.path(), &format!("services/api/src/{rel}"), body);
    }
    for (rel, body) in sources.iter().rev() {
        write(b.path(), &format!("services/api/src/{rel}"), body);
    }
    for (root, plain, exec, age) in [
        (a.path(), 0o600, 0o700, 0),
        (b.path(), 0o664, 0o775, 86_400 * 400),
    ] {
        let src = root.join("services/api/src");
        for (rel, _) in &sources {
            let p = src.join(rel);
            set_mode(&p, if rel.ends_with(".sh") { exec } else { plain });
            let f = fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(age))
                .unwrap();
        }
    }
    let (out_a, out_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ma = run(a.path(), out_a.path(), &request("c1", &["api"]))
        .0
        .unwrap();
    let mb = run(b.path(), out_b.path(), &request("c1", &["api"]))
        .0
        .unwrap();
    let (za, zb) = (
        &ma.services["api"].artifacts[0],
        &mb.services["api"].artifacts[0],
    );
    assert_eq!(za.sha256, zb.sha256);
    let bytes_a = fs::read(ferry_package::artifact_path(out_a.path(), &za.sha256)).unwrap();
    let bytes_b = fs::read(ferry_package::artifact_path(out_b.path(), &zb.sha256)).unwrap();
    assert_eq!(bytes_a, bytes_b, "archives differ");
    assert_eq!(ferry_package::sha256_hex(&bytes_a), za.sha256);
    assert_eq!(za.key, format!("shop/api/{}.zip", za.sha256));
    assert_eq!(za.files, 5);
    // Sorted names, normalised modes, the fixed date, and every CRC right.
    assert_eq!(
        inspect(&ferry_package::artifact_path(out_a.path(), &za.sha256)),
        [
            "app.py 0o100644 (1980, 1, 1, 0, 0, 0) 2050",
            "lib/util.py 0o100644 (1980, 1, 1, 0, 0, 0) 6",
            "lib/zeta/deep.txt 0o100644 (1980, 1, 1, 0, 0, 0) 5",
            "noise.bin 0o100644 (1980, 1, 1, 0, 0, 0) 5000",
            "run.sh 0o100755 (1980, 1, 1, 0, 0, 0) 19",
        ]
    );
    // `unzip` (Info-ZIP) reads it too.
    let t = Command::new("unzip")
        .arg("-tq")
        .arg(ferry_package::artifact_path(out_a.path(), &za.sha256))
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stdout));
    // The packaged templates are identical too.
    assert_eq!(
        ma.services["api"].template_sha256,
        mb.services["api"].template_sha256
    );
}

#[test]
fn excludes_apply_to_every_artifact_and_per_artifact() {
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package]\nexclude = [\"__pycache__\", \"*.pyc\"]\n\n[package.artifacts]\nFn = { path = \"src\", exclude = [\"tests/**\", \"/README.md\"] }\n";
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", manifest),
        ("services/api/src/app.py", "x = 1\n"),
        ("services/api/src/README.md", "docs\n"),
        (
            "services/api/src/lib/README.md",
            "kept: the exclude is relative to src\n",
        ),
        ("services/api/src/app.pyc", "bytecode"),
        (
            "services/api/src/__pycache__/app.cpython-312.pyc",
            "bytecode",
        ),
        ("services/api/src/lib/__pycache__/x.pyc", "bytecode"),
        ("services/api/src/tests/test_app.py", "def test(): pass\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api"]);
    let a = &m.services["api"].artifacts[0];
    let names: Vec<String> = inspect(&ferry_package::artifact_path(out.path(), &a.sha256))
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["app.py", "lib/README.md"]);
}

#[test]
fn credential_files_are_never_packaged_into_an_artifact_or_a_site_and_are_reported() {
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src\"\n\n[package.site]\npath = \"site\"\nbucket-output = \"BucketName\"\n";
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", manifest),
        ("services/api/src/app.py", "x = 1\n"),
        ("services/api/src/.env", "DB_PASSWORD=hunter2\n"),
        ("services/api/src/lib/.aws/credentials", "[default]\n"),
        ("services/api/site/index.html", "<h1>shop</h1>\n"),
        ("services/api/site/.env.production", "API_KEY=k\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let (m, events) = run(ws.path(), out.path(), &request("c1", &["api"]));
    let m = m.unwrap();
    let a = &m.services["api"].artifacts[0];
    let names: Vec<String> = inspect(&ferry_package::artifact_path(out.path(), &a.sha256))
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["app.py"]);
    let site = m.services["api"].site.clone().unwrap();
    let site_names: Vec<&str> = site.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(site_names, ["index.html"]);
    let withheld: Vec<(String, Vec<String>)> = events
        .into_iter()
        .filter_map(|e| match e {
            Event::Withheld { what, files, .. } => Some((what, files)),
            _ => None,
        })
        .collect();
    assert_eq!(
        withheld,
        [
            (
                "Fn".to_string(),
                vec![".env".to_string(), "lib/.aws".to_string()]
            ),
            ("site".to_string(), vec![".env.production".to_string()]),
        ]
    );
    // Nothing in the store holds the secret.
    for entry in walk(out.path()) {
        let bytes = fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("hunter2"),
            "{} holds the secret",
            entry.display()
        );
    }

    // Named as the artifact itself, it stops the package with its name.
    write(
        ws.path(),
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src/.env\"\n",
    );
    let out = tempfile::tempdir().unwrap();
    let err = run(ws.path(), out.path(), &request("c2", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("src/.env is (or leads to) a credential file"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Writes a zip of `files` (name, body) with Python's zipfile, stored uncompressed.
fn python_zip(path: &Path, files: &[(&str, &[u8])]) {
    let script = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:
    for i in range(2, len(sys.argv), 2):
        z.writestr(sys.argv[i], open(sys.argv[i + 1], "rb").read())
"#;
    let bodies = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]).arg(path);
    for (i, (name, body)) in files.iter().enumerate() {
        let f = bodies.path().join(i.to_string());
        fs::write(&f, body).unwrap();
        cmd.arg(name).arg(f);
    }
    assert!(cmd.status().unwrap().success());
}

#[test]
fn a_prebuilt_archive_is_stored_byte_for_byte_under_its_hash() {
    let manifest =
        "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"build/app.jar\"\n";
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", manifest),
    ]);
    let jar = ws.path().join("services/api/build/app.jar");
    fs::create_dir_all(jar.parent().unwrap()).unwrap();
    // Over 8 MiB, so that it is streamed into the store rather than read whole.
    let big: Vec<u8> = (0..9_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    python_zip(
        &jar,
        &[("app/Main.class", &big), ("META-INF/MANIFEST.MF", b"v\n")],
    );
    let bytes = fs::read(&jar).unwrap();
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api"]);
    let a = &m.services["api"].artifacts[0];
    assert_eq!(a.sha256, ferry_package::sha256_hex(&bytes));
    assert_eq!((a.size, a.files), (bytes.len() as u64, 1));
    let stored = ferry_package::artifact_path(out.path(), &a.sha256);
    assert_eq!(fs::read(&stored).unwrap(), bytes);
    // Readable as every other stored file, and no temporary file left beside it.
    assert_eq!(
        fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let left: Vec<_> = fs::read_dir(out.path().join("artifacts"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");

    // One that holds a credential file, or is no archive at all, is refused by name.
    python_zip(
        &jar,
        &[
            ("app/Main.class", b"c"),
            ("config/.env", b"DB_PASSWORD=hunter2"),
            (".aws/credentials", b"[default]"),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let e = run(ws.path(), out.path(), &request("c2", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "api: the prebuilt archive build/app.jar of resource `Fn` holds 2 files (credential files are never packaged): .aws/credentials, config/.env; leave them out where the archive is built; nothing was packaged"
    );
    nothing_packaged(out.path());
    fs::write(&jar, b"not a zip").unwrap();
    let e = run(ws.path(), out.path(), &request("c3", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("build/app.jar of resource `Fn` is not a zip archive"),
        "{e}"
    );
}

#[test]
fn a_file_too_large_for_an_archive_is_refused_before_it_is_read() {
    // A sparse file of 5 GiB: it takes no disk, and would take that much memory if read.
    let ws = api_workspace();
    let f = fs::File::create(ws.path().join("services/api/src/big.bin")).unwrap();
    f.set_len(5 << 30).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = run(ws.path(), out.path(), &request("c1", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "the archive is too large for a zip without zip64 (big.bin is 5368709120 bytes)"
        ),
        "{e}"
    );
    nothing_packaged(out.path());
}

#[test]
fn a_service_nested_in_an_artifact_folder_is_left_to_itself() {
    // `services/**` finds api and the service nested in its code folder, src/admin: admin's
    // files are admin's (an edit there deploys admin), so api's archive leaves them out.
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", API_MANIFEST),
        ("services/api/src/app.py", "x = 1\n"),
        (
            "services/api/src/admin/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n",
        ),
        (
            "services/api/src/admin/t.yaml",
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        ),
        (
            "services/api/src/admin-notes.txt",
            "kept: not a service folder\n",
        ),
    ]);
    write(
        ws.path(),
        "ferry.toml",
        "[project]\nname = \"shop\"\nservices = [\"services/**\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api", "admin"]);
    let a = &m.services["api"].artifacts[0];
    let names: Vec<String> = inspect(&ferry_package::artifact_path(out.path(), &a.sha256))
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["admin-notes.txt", "app.py"]);
}

#[test]
fn every_supported_resource_type_is_rewritten_to_the_bucket_parameter() {
    let template = r#"AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
  Plain:
    Type: AWS::Lambda::Function
    Properties:
      Role: !GetAtt Role.Arn
      Code: fn
  Layer:
    Type: AWS::Lambda::LayerVersion
    Properties:
      Content: layer
  Sam:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/handler.py
      Environment:
        Variables:
          NAME: !Sub "${AWS::StackName}-x"
  SamLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer
Outputs:
  Arn:
    Value: !GetAtt Plain.Arn
"#;
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nPlain = \"fn\"\nLayer = \"layer\"\nSam = \"fn/handler.py\"\nSamLayer = \"layer\"\n";
    let ws = workspace(&[
        ("services/api/template.yaml", template),
        ("services/api/service.toml", manifest),
        ("services/api/fn/handler.py", "def handle(e, c): pass\n"),
        ("services/api/layer/python/lib.py", "LIB = 1\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api"]);
    let sp = &m.services["api"];
    let key = |r: &str| {
        sp.artifacts
            .iter()
            .find(|a| a.resource == r)
            .unwrap()
            .key
            .clone()
    };
    let t: Value =
        serde_json::from_slice(&fs::read(out.path().join(&sp.template)).unwrap()).unwrap();
    let r = &t["Resources"];
    let bucket = serde_json::json!({"Ref": "FerryArtifactBucket"});
    assert_eq!(
        r["Plain"]["Properties"]["Code"],
        serde_json::json!({"S3Bucket": bucket, "S3Key": key("Plain")})
    );
    assert_eq!(
        r["Layer"]["Properties"]["Content"],
        serde_json::json!({"S3Bucket": bucket, "S3Key": key("Layer")})
    );
    assert_eq!(
        r["Sam"]["Properties"]["CodeUri"],
        serde_json::json!({"Bucket": bucket, "Key": key("Sam")})
    );
    assert_eq!(
        r["SamLayer"]["Properties"]["ContentUri"],
        serde_json::json!({"Bucket": bucket, "Key": key("SamLayer")})
    );
    // Two resources with the same folder share one archive.
    assert_eq!(key("Layer"), key("SamLayer"));
    assert_eq!(t["Parameters"]["FerryArtifactBucket"]["Type"], "String");
    // Short forms normalised; everything else as written, in order.
    assert_eq!(
        r["Plain"]["Properties"]["Role"],
        serde_json::json!({"Fn::GetAtt": ["Role", "Arn"]})
    );
    assert_eq!(
        r["Sam"]["Properties"]["Environment"]["Variables"]["NAME"],
        serde_json::json!({"Fn::Sub": "${AWS::StackName}-x"})
    );
    assert_eq!(t["Transform"], "AWS::Serverless-2016-10-31");
    let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "AWSTemplateFormatVersion",
            "Transform",
            "Resources",
            "Outputs",
            "Parameters"
        ]
    );
    assert!(sp.template.ends_with(".json"));
}

#[test]
fn a_template_without_artifacts_is_deployed_as_written() {
    let template = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    let ws = workspace(&[
        ("services/api/template.yaml", template),
        (
            "services/api/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n",
        ),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api"]);
    let sp = &m.services["api"];
    assert!(sp.artifacts.is_empty());
    assert_eq!(
        fs::read_to_string(out.path().join(&sp.template)).unwrap(),
        template
    );
    assert_eq!(
        sp.template_sha256,
        ferry_package::sha256_hex(template.as_bytes())
    );
}

#[test]
fn a_stored_template_edited_after_packaging_is_written_again_by_the_next_package() {
    let ws = api_workspace();
    let out = tempfile::tempdir().unwrap();
    let first = packaged(ws.path(), out.path(), &["api"]);
    let path = out.path().join(&first.services["api"].template);
    let good = fs::read(&path).unwrap();
    // Edited by hand (a wider permission slipped in): the file no longer holds its hash.
    fs::write(&path, b"{\"Resources\": {\"Evil\": {}}}\n").unwrap();
    let second = run(ws.path(), out.path(), &request("c2", &["api"]))
        .0
        .unwrap();
    assert_eq!(
        second.services["api"].template_sha256,
        first.services["api"].template_sha256
    );
    assert_eq!(fs::read(&path).unwrap(), good, "the edit is gone");
}

#[test]
fn a_local_code_path_that_is_not_declared_is_refused_before_anything_runs() {
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        (
            "services/api/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"touch built\"]\n",
        ),
    ]);
    let out = tempfile::tempdir().unwrap();
    let e = run(ws.path(), out.path(), &request("c1", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "api: resource `Fn` has a local path in Code (\"src\"), which CloudFormation cannot read; declare it in services/api/service.toml as [package.artifacts] Fn = \"src\" (relative to the service folder)"
    );
    assert!(
        !ws.path().join("services/api/built").exists(),
        "the build ran"
    );
    // A template in a folder of the service: the path to declare is from the service folder
    // (before, the template's own was advised, which then did not exist).
    let ws = workspace(&[
        (
            "services/api/infra/template.yaml",
            &FUNCTION.replace("Code: src", "Code: ./lambda/fn"),
        ),
        (
            "services/api/service.toml",
            "[service]\ntemplate = \"infra/template.yaml\"\n",
        ),
    ]);
    let e = run(ws.path(), out.path(), &request("c2", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "[package.artifacts] Fn = \"infra/lambda/fn\" (relative to the service folder)"
        ),
        "{e}"
    );
}

#[test]
fn a_declared_resource_the_template_lacks_or_cannot_take_code_is_refused() {
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        (
            "services/api/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src\"\nFunction = \"src\"\n",
        ),
        ("services/api/src/app.py", "x\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let e = run(ws.path(), out.path(), &request("c1", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "api: template services/api/template.yaml: it has no resource `Function` (resources: Role, Fn)"
    );

    write(
        ws.path(),
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src\"\nRole = \"src\"\n",
    );
    let e = run(ws.path(), out.path(), &request("c1", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("resource `Role` is of type AWS::IAM::Role, which takes no code package"),
        "{e}"
    );
}

fn nothing_packaged(out: &Path) {
    assert!(
        !out.join("c1/manifest.json").exists(),
        "a manifest was written"
    );
    let zips: Vec<PathBuf> = fs::read_dir(out.join("artifacts"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(zips.is_empty(), "archives were written: {zips:?}");
}

#[test]
fn a_missing_artifact_folder_names_the_resource_and_the_folder() {
    let ws = workspace(
        &service_files(FUNCTION, API_MANIFEST)
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
    );
    let out = tempfile::tempdir().unwrap();
    let e = run(ws.path(), out.path(), &request("c1", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "api: artifact src of resource `Fn` does not exist; the path is relative to services/api (if the build command makes it, check what it writes)"
    );
    nothing_packaged(out.path());
}

#[test]
fn a_failing_build_shows_its_last_lines_masked_and_packages_nothing() {
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"for i in $(seq 1 30); do echo line $i; done; echo token=hunter22-secret; printf 'coloured \\\\033[1m%ser22\\\\033[0m-secret \\\\033[31mcompile error\\\\033[0m\\\\n' hunt >&2; exit 3\"]\n\n[package.artifacts]\nFn = \"src\"\n";
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", manifest),
        ("services/api/src/app.py", "x\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let loaded = ferry_manifest::load(ws.path()).unwrap();
    let mask = |s: &str| s.replace("hunter22-secret", "****");
    let e = package(
        &loaded,
        out.path(),
        &request("c1", &["api"]),
        &mask,
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("api: build command `sh -c for i in"), "{e}");
    assert!(
        e.contains("failed (exit status: 3); nothing was packaged"),
        "{e}"
    );
    // Colour codes are taken out (they read as text, and a secret coloured inside is still the
    // secret, masked).
    assert!(
        e.contains("  | token=****\n  | coloured **** compile error"),
        "{e}"
    );
    assert!(!e.contains('\u{1b}'), "{e}");
    assert!(e.contains("  | line 30\n"), "{e}");
    assert!(!e.contains("line 11\n"), "more than the last 20 lines: {e}");
    assert!(!e.contains("hunter22"), "secret shown: {e}");
    nothing_packaged(out.path());
}

/// npm prints the cause first, then pages of usage: the first line that says an error is shown
/// with the few after it, before the last lines (a probe's `npm ci` out of sync with its lock
/// file showed only the usage).
#[test]
fn a_failing_build_shows_the_first_error_it_printed_too() {
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"echo 'npm error `npm ci` can only install packages when your package.json and package-lock.json are in sync.'; echo 'npm error Missing: bindings@1.5.0 from lock file'; for i in $(seq 1 40); do echo \\\"npm error   --option-$i\\\"; done; exit 1\"]\n\n[package.artifacts]\nFn = \"src\"\n";
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", manifest),
        ("services/api/src/app.py", "x\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let loaded = ferry_manifest::load(ws.path()).unwrap();
    let e = package(
        &loaded,
        out.path(),
        &request("c1", &["api"]),
        &|s: &str| s.to_string(),
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("Its last lines:\n  | npm error `npm ci` can only install packages when your package.json and package-lock.json are in sync.\n  | npm error Missing: bindings@1.5.0 from lock file\n"),
        "{e}"
    );
    // Eight lines from the first error, then what lies between them and the last 20.
    assert!(
        e.contains("  | npm error   --option-6\n  | … (14 lines)\n  | npm error   --option-21\n"),
        "{e}"
    );
    assert!(e.ends_with("  | npm error   --option-40"), "{e}");
}

#[test]
fn a_build_past_its_timeout_is_stopped_and_fails_with_what_it_printed() {
    // The build prints, reads standard input to its end (null: at once), prints again and
    // sleeps far past its timeout of 1 s.
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"echo resolving; cat; echo stdin-ended; exec sleep 60\"]\ntimeout = 1\n\n[package.artifacts]\nFn = \"src\"\n";
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", manifest),
        ("services/api/src/app.py", "x\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let e = run(ws.path(), out.path(), &request("c1", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(30),
        "not stopped: {e}"
    );
    assert!(
        e.contains("failed (stopped after 1 s; package.timeout in services/api/service.toml sets how long it may run); nothing was packaged"),
        "{e}"
    );
    assert!(e.contains("  | resolving\n  | stdin-ended"), "{e}");
    nothing_packaged(out.path());
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped).
fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat[stat.rfind(')').unwrap() + 1..]
            .trim_start()
            .starts_with('Z'),
    }
}

#[test]
fn a_timeout_stops_the_processes_the_build_started_too() {
    // `sh` starts a sleep in the background, notes its pid and waits for it: the sleep is the
    // build's child's child, and holds the output pipe open.
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"sleep 60 & echo $! > grandchild.pid; wait\"]\ntimeout = 1\n\n[package.artifacts]\nFn = \"src\"\n";
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", manifest),
        ("services/api/src/app.py", "x\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let e = run(ws.path(), out.path(), &request("c1", &["api"]))
        .0
        .unwrap_err()
        .to_string();
    assert!(e.contains("stopped after 1 s"), "{e}");
    let pid: u32 = fs::read_to_string(ws.path().join("services/api/grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !gone(pid) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let alive = !gone(pid);
    if alive {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    assert!(
        !alive,
        "the build's background sleep {pid} outlived its timeout"
    );
}

#[test]
fn the_build_runs_in_the_service_folder_and_its_output_is_zipped() {
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"mkdir -p dist && cp app.py dist/ && echo \\\"$FERRY_SERVICE $SOURCE_DATE_EPOCH $AWS_SHARED_CREDENTIALS_FILE $AWS_CONFIG_FILE $AWS_EC2_METADATA_DISABLED\\\" > dist/built.txt\"]\n\n[package.artifacts]\nFn = \"dist\"\n";
    let template = FUNCTION.replace("Code: src", "Code: dist");
    let ws = workspace(&[
        ("services/api/template.yaml", &template),
        ("services/api/service.toml", manifest),
        ("services/api/app.py", "x = 1\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let (m, events) = run(ws.path(), out.path(), &request("c1", &["api"]));
    let m = m.unwrap();
    assert!(matches!(&events[0], Event::Building { service, .. } if service == "api"));
    assert_eq!(
        fs::read_to_string(ws.path().join("services/api/dist/built.txt")).unwrap(),
        // The AWS setup a build could find on its own (a default profile in ~/.aws, the
        // machine's role) is pointed at nothing.
        "api 315532800 /dev/null /dev/null true\n"
    );
    assert_eq!(m.services["api"].artifacts[0].files, 2);
}

// A file git ignores in the folder a service without a build zips (a generated setting, an
// installed `node_modules`): no input key nor package id sees it change, so a package kept
// under the same id, or cached under the same key, is reused only while such files are the
// same. Before, an edit there deployed the old bytes for good, even with `--all`.
#[test]
fn files_git_ignores_in_an_artifact_folder_are_part_of_what_a_reused_package_matches() {
    let r = ferry_test_support::TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(".gitignore", "*.cfg\ntarget/\n")
    .write("services/api/template.yaml", FUNCTION)
    .write(
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src\"\n",
    )
    .write("services/api/src/app.py", "x\n");
    r.commit("api");
    r.write("services/api/src/conf.cfg", "k=1\n");
    let out = tempfile::tempdir().unwrap();
    let req = snapshot_request(r.path(), &["api"]);
    let first = run(r.path(), out.path(), &req).0.unwrap();
    assert_eq!(first.services["api"].artifacts[0].files, 2);
    // Nothing changed: kept.
    let (_, events) = run(r.path(), out.path(), &req);
    assert_eq!(
        events,
        [Event::Kept {
            service: "api".into()
        }]
    );
    // The ignored file changes: zipped again, under the same id and the same input key.
    r.write("services/api/src/conf.cfg", "k=22\n");
    let (second, events) = run(r.path(), out.path(), &req);
    let second = second.unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::Zipped { .. })),
        "{events:?}"
    );
    assert_ne!(
        second.services["api"].artifacts[0].sha256,
        first.services["api"].artifacts[0].sha256
    );
    // Another commit of the same tree, same files: the cache serves it.
    let mut again = req.clone();
    again.id = "c2".into();
    let (third, events) = run(r.path(), out.path(), &again);
    assert_eq!(
        events,
        [Event::Reused {
            service: "api".into()
        }]
    );
    assert_eq!(third.unwrap().services["api"], second.services["api"]);
    // A file git ignores that goes away is a change too.
    fs::remove_file(r.path().join("services/api/src/conf.cfg")).unwrap();
    let (fourth, _) = run(r.path(), out.path(), &again);
    assert_eq!(fourth.unwrap().services["api"].artifacts[0].files, 1);
}

#[test]
fn a_known_input_key_reuses_the_package_without_building_or_zipping() {
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"echo run >> ../build.log\"]\n\n[package.artifacts]\nFn = \"src\"\n";
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", manifest),
        ("services/api/src/app.py", "x\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let mut req = request("c1", &["api"]);
    req.input_keys.insert("api".into(), "tree-1".into());
    let (first, events) = run(ws.path(), out.path(), &req);
    let first = first.unwrap();
    assert!(events.iter().any(|e| matches!(e, Event::Zipped { .. })));

    // Another commit, same tree: nothing is built or zipped, the package is the same.
    let mut again = req.clone();
    again.id = "c2".into();
    let (second, events) = run(ws.path(), out.path(), &again);
    assert_eq!(
        events,
        [Event::Reused {
            service: "api".into()
        }]
    );
    assert_eq!(second.unwrap().services["api"], first.services["api"]);
    assert_eq!(
        fs::read_to_string(ws.path().join("services/build.log")).unwrap(),
        "run\n"
    );

    // The same id again keeps what it has.
    let (_, events) = run(ws.path(), out.path(), &again);
    assert_eq!(
        events,
        [Event::Kept {
            service: "api".into()
        }]
    );
    // Unless its files left the store (cleaned by hand): then it is packaged again, so that
    // an upload asking to package again is answered.
    let kept = run(ws.path(), out.path(), &again).0.unwrap();
    let archive = kept.services["api"].artifacts[0].local_path(out.path());
    fs::remove_file(&archive).unwrap();
    let (redone, events) = run(ws.path(), out.path(), &again);
    assert!(
        !events.contains(&Event::Kept {
            service: "api".into()
        }),
        "{events:?}"
    );
    assert!(archive.is_file());
    assert_eq!(redone.unwrap().services["api"], kept.services["api"]);
    // So is one made under older file rules (before credential files were left out): its
    // archives may hold what the rules now leave out.
    let manifest = out.path().join("c2/manifest.json");
    let mut old: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("file_rules");
    fs::write(&manifest, serde_json::to_string(&old).unwrap()).unwrap();
    let (_, events) = run(ws.path(), out.path(), &again);
    assert!(
        !events.contains(&Event::Kept {
            service: "api".into()
        }),
        "{events:?}"
    );

    // A different key packages again.
    let mut other = req.clone();
    other.id = "c3".into();
    other.input_keys.insert("api".into(), "tree-2".into());
    let (_, events) = run(ws.path(), out.path(), &other);
    assert!(events.iter().any(|e| matches!(e, Event::Zipped { .. })));
}

// --- Against the emulator's S3 ---------------------------------------------------------------

async fn s3() -> aws_sdk_s3::Client {
    let config = ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some(ferry_test_support::moto().endpoint()),
        },
    )
    .await;
    ferry_package::s3_client(&config)
}

async fn bucket(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket().bucket(name).send().await.unwrap();
}

async fn object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (Vec<u8>, Option<String>) {
    let o = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let ct = o.content_type().map(String::from);
    (o.body.collect().await.unwrap().into_bytes().to_vec(), ct)
}

/// Two functions of one service built from the same files share one archive, whose key is its
/// hash: it is put once and counted once. It was put once per function (at once, racing), and
/// the run said "2 uploaded" of one object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_two_functions_share_is_put_and_counted_once() {
    let template = format!(
        "{FUNCTION}  Fn2:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python3.12\n      Handler: app.handle\n      Role: !GetAtt Role.Arn\n      Code: src\n"
    );
    let ws = workspace(&[
        ("services/api/template.yaml", &template),
        (
            "services/api/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src\"\nFn2 = \"src\"\n",
        ),
        ("services/api/src/app.py", "x = 1\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api"]);
    let sp = &m.services["api"];
    assert_eq!(sp.artifacts.len(), 2);
    assert_eq!(sp.artifacts[0].key, sp.artifacts[1].key);
    let s3 = s3().await;
    bucket(&s3, "ferry-test-upload-shared").await;
    let services = vec!["api".to_string()];
    let first = ferry_package::upload(&s3, "ferry-test-upload-shared", out.path(), &m, &services)
        .await
        .unwrap();
    // The archive, the template and the package entry.
    assert_eq!((first.uploaded, first.present), (3, 0));
}

/// An archive of the local store cut short (a disk filled, a copy killed) was reused and
/// uploaded under the name of its full bytes: the emulator kept it (a function of 100 bytes
/// deployed, and every later plan said nothing to do), and S3, which checks the SHA-256 the
/// request carries, refused it with `BadDigest` on every run. The file is checked as it is read
/// for upload now: refused, removed, and packaged anew by the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_archive_of_the_store_is_never_uploaded_and_is_packaged_anew() {
    let ws = api_workspace();
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api"]);
    let a = m.services["api"].artifacts[0].clone();
    let path = a.local_path(out.path());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let s3 = s3().await;
    bucket(&s3, "ferry-test-upload-damaged").await;
    let services = vec!["api".to_string()];
    let e = ferry_package::upload(&s3, "ferry-test-upload-damaged", out.path(), &m, &services)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ferry_package::UploadError::Damaged { expected, .. } if *expected == a.sha256),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("a file of the local package store, is damaged"),
        "{e}"
    );
    assert!(!path.exists(), "the damaged file is removed");
    let missing = s3
        .head_object()
        .bucket("ferry-test-upload-damaged")
        .key(&a.key)
        .send()
        .await;
    assert!(missing.is_err(), "nothing went up under its name");
    // The next run packages it anew, and it goes up whole.
    let m = packaged(ws.path(), out.path(), &["api"]);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    ferry_package::upload(&s3, "ferry-test-upload-damaged", out.path(), &m, &services)
        .await
        .unwrap();
    let (body, _) = object(&s3, "ferry-test-upload-damaged", &a.key).await;
    assert_eq!(ferry_package::sha256_hex(&body), a.sha256);
}

/// An object already under an archive's name was taken for that archive (HeadObject found a
/// key): one planted there by another writer of the bucket (a pull request's build where
/// stages share a bucket) would be what a named stage deploys. Only an object whose stored
/// SHA-256 is the name's counts as present now; another is put again, with the right bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_planted_under_an_archive_s_name_is_replaced() {
    let ws = api_workspace();
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api"]);
    let a = m.services["api"].artifacts[0].clone();
    let s3 = s3().await;
    bucket(&s3, "ferry-test-upload-planted").await;
    // Another writer of the bucket puts other bytes under the archive's key, without a checksum.
    let plant = async || {
        s3.put_object()
            .bucket("ferry-test-upload-planted")
            .key(&a.key)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(
                b"planted code",
            ))
            .send()
            .await
            .unwrap();
    };
    plant().await;
    let services = vec!["api".to_string()];
    let r = ferry_package::upload(&s3, "ferry-test-upload-planted", out.path(), &m, &services)
        .await
        .unwrap();
    assert_eq!((r.uploaded, r.present), (3, 0));
    let (body, _) = object(&s3, "ferry-test-upload-planted", &a.key).await;
    assert_eq!(ferry_package::sha256_hex(&body), a.sha256);
    // Its own upload, with its checksum, is present the next time.
    let r = ferry_package::upload(&s3, "ferry-test-upload-planted", out.path(), &m, &services)
        .await
        .unwrap();
    assert_eq!((r.uploaded, r.present), (0, 3));
    // Planted again, on a machine whose store lacks the archive (a rollback elsewhere): what
    // happened to the object is said, and how to put it back, not that a file is missing.
    plant().await;
    std::fs::remove_file(a.local_path(out.path())).unwrap();
    let e = ferry_package::upload(&s3, "ferry-test-upload-planted", out.path(), &m, &services)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ferry_package::UploadError::WrittenOver { key, .. } if *key == a.key),
        "{e:?}"
    );
    let said = e.to_string();
    assert!(
        said.contains("it was stored with no SHA-256")
            && said.contains("written over outside Ferry")
            && said.contains("aws s3api list-object-versions --bucket ferry-test-upload-planted")
            && !said.contains("package again"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_puts_each_archive_once_and_skips_what_the_bucket_has() {
    let ws = api_workspace();
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api"]);
    let s3 = s3().await;
    bucket(&s3, "ferry-test-upload-once").await;
    let services = vec!["api".to_string()];
    let first = ferry_package::upload(&s3, "ferry-test-upload-once", out.path(), &m, &services)
        .await
        .unwrap();
    // The archive, the template and the package entry naming both.
    assert_eq!((first.uploaded, first.present), (3, 0));
    let sp = &m.services["api"];
    let a = &sp.artifacts[0];
    assert!(first.bytes > a.size + sp.template_size);
    let (body, ct) = object(&s3, "ferry-test-upload-once", &a.key).await;
    assert_eq!(ferry_package::sha256_hex(&body), a.sha256);
    assert_eq!(ct.as_deref(), Some("application/zip"));

    let second = ferry_package::upload(&s3, "ferry-test-upload-once", out.path(), &m, &services)
        .await
        .unwrap();
    assert_eq!((second.uploaded, second.present, second.bytes), (0, 3, 0));

    // Every object went up with the SHA-256 its name holds, for S3 to check the bytes against.
    let entry = &first.entries["api"];
    let entry_sha = entry
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".package.json"))
        .unwrap();
    let template = ferry_package::template_key("shop", "api", sp);
    for (key, sha) in [
        (a.key.as_str(), a.sha256.as_str()),
        (template.as_str(), sp.template_sha256.as_str()),
        (entry.as_str(), entry_sha),
    ] {
        let head = s3
            .head_object()
            .bucket("ferry-test-upload-once")
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let digest: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&sha[i..i + 2], 16).unwrap())
            .collect();
        use base64::Engine as _;
        assert_eq!(
            head.checksum_sha256(),
            Some(
                base64::engine::general_purpose::STANDARD
                    .encode(digest)
                    .as_str()
            ),
            "{key}"
        );
    }

    // The stored package comes back whole into an empty store, every object checked by hash.
    let fresh = tempfile::tempdir().unwrap();
    let fetched = ferry_package::fetch_package(
        &s3,
        "ferry-test-upload-once",
        fresh.path(),
        "shop",
        "api",
        entry,
        true,
    )
    .await
    .unwrap();
    assert_eq!(&fetched, sp);
    assert_eq!(
        std::fs::read(fresh.path().join(&sp.template)).unwrap(),
        std::fs::read(out.path().join(&sp.template)).unwrap()
    );
    assert_eq!(
        std::fs::read(a.local_path(fresh.path())).unwrap(),
        std::fs::read(a.local_path(out.path())).unwrap()
    );
    // Bytes written over the template, or a package entry gone: refused, naming the object.
    let template_key = ferry_package::template_key("shop", "api", sp);
    s3.put_object()
        .bucket("ferry-test-upload-once")
        .key(&template_key)
        .body(b"Resources: {}\n".to_vec().into())
        .send()
        .await
        .unwrap();
    let other = tempfile::tempdir().unwrap();
    let e = ferry_package::fetch_package(
        &s3,
        "ferry-test-upload-once",
        other.path(),
        "shop",
        "api",
        entry,
        false,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UploadError::Mismatch { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("does not hold the bytes its name promises"),
        "{e}"
    );
    s3.delete_object()
        .bucket("ferry-test-upload-once")
        .key(entry)
        .send()
        .await
        .unwrap();
    let e = ferry_package::fetch_package(
        &s3,
        "ferry-test-upload-once",
        other.path(),
        "shop",
        "api",
        entry,
        false,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UploadError::Missing { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named_with_what_to_do() {
    let ws = api_workspace();
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["api"]);
    let e = ferry_package::upload(
        &s3().await,
        "ferry-test-no-such-bucket",
        out.path(),
        &m,
        &["api".into()],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UploadError::Bucket { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("artifact bucket `ferry-test-no-such-bucket` is not usable:"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("set `artifact-bucket` for the stage"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_over_the_inline_limit_is_uploaded_and_deployed_by_url() {
    // 400 queues with long logical ids: well over 51,200 bytes.
    let mut template = String::from("Resources:\n");
    for i in 0..400 {
        template.push_str(&format!("  QueueNumber{i:04}WithAQuiteLongLogicalIdForSize:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: 30\n      MessageRetentionPeriod: 345600\n"));
    }
    template.push_str("Outputs:\n  First:\n    Value: !GetAtt QueueNumber0000WithAQuiteLongLogicalIdForSize.QueueName\n");
    assert!(template.len() > 51_200);
    let ws = workspace(&[
        ("services/big/template.yaml", &template),
        (
            "services/big/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n",
        ),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["big"]);
    let s3 = s3().await;
    bucket(&s3, "ferry-test-large-template").await;
    let r = ferry_package::upload(
        &s3,
        "ferry-test-large-template",
        out.path(),
        &m,
        &["big".into()],
    )
    .await
    .unwrap();
    // The template and the package entry.
    assert_eq!(r.uploaded, 2);
    let url = &r.template_urls["big"];
    let sha = &m.services["big"].template_sha256;
    assert_eq!(
        url,
        &format!(
            "https://s3.us-east-1.amazonaws.com/ferry-test-large-template/shop/big/{sha}.template.yaml"
        )
    );
    let (body, _) = object(
        &s3,
        "ferry-test-large-template",
        &format!("shop/big/{sha}.template.yaml"),
    )
    .await;
    assert_eq!(body, template.as_bytes());

    // CloudFormation reads it from the URL.
    let config = ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some(ferry_test_support::moto().endpoint()),
        },
    )
    .await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    cfn.create_stack()
        .stack_name("ferry-test-large-template")
        .template_url(url)
        .send()
        .await
        .unwrap();
    let stacks = cfn
        .describe_stacks()
        .stack_name("ferry-test-large-template")
        .send()
        .await
        .unwrap();
    let outputs = stacks.stacks()[0].outputs();
    assert_eq!(outputs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_is_snapshotted_at_package_time_and_published_with_its_config_file() {
    let manifest = "[service]\ntemplate = \"template.yaml\"\n\n[package.site]\npath = \"site\"\nbucket-output = \"BucketName\"\nprefix = \"app/\"\nconfig-file = \"config.json\"\nexclude = [\"*.map\"]\n";
    let ws = workspace(&[
        (
            "services/web/template.yaml",
            "Resources:\n  B:\n    Type: AWS::S3::Bucket\n",
        ),
        ("services/web/service.toml", manifest),
        ("services/web/site/index.html", "<h1>shop</h1>\n"),
        ("services/web/site/css/app.css", "h1 { color: red }\n"),
        ("services/web/site/app.js.map", "{}"),
        ("services/web/site/config.json", "{\"stale\": true}"),
        // Same name in a subfolder: a file of the site, not the generated one.
        ("services/web/site/vendor/config.json", "{\"vendor\": true}"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let m = packaged(ws.path(), out.path(), &["web"]);
    let site = m.services["web"].site.clone().unwrap();
    let names: Vec<&str> = site.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["css/app.css", "index.html", "vendor/config.json"]);
    // The same files for another bucket output: another site, published again.
    let moved = tempfile::tempdir().unwrap();
    write(
        ws.path(),
        "services/web/service.toml",
        &manifest.replace("BucketName", "OtherBucket"),
    );
    let other = packaged(ws.path(), moved.path(), &["web"]).services["web"]
        .site
        .clone()
        .unwrap();
    assert_eq!(other.files, site.files);
    assert_ne!(other.sha256, site.sha256);
    write(ws.path(), "services/web/service.toml", manifest);
    // A file kept for the site that no longer holds what its name says (edited in place, the
    // same size) is stored again by the next packaging, never published as it is.
    let index = site.files.iter().find(|f| f.name == "index.html").unwrap();
    let kept = ferry_package::blob_path(out.path(), &index.sha256);
    fs::write(&kept, "<h1>SHOP</h1>\n").unwrap();
    let again = packaged(ws.path(), out.path(), &["web"]).services["web"]
        .site
        .clone()
        .unwrap();
    assert_eq!(again.files, site.files);
    assert_eq!(fs::read_to_string(&kept).unwrap(), "<h1>shop</h1>\n");
    // Edited after packaging: the package still publishes what it snapshotted.
    write(
        ws.path(),
        "services/web/site/index.html",
        "<h1>edited</h1>\n",
    );

    let s3 = s3().await;
    bucket(&s3, "ferry-test-site").await;
    let n = ferry_package::upload_site(
        &s3,
        out.path(),
        &site,
        "ferry-test-site",
        Some(b"{\"api\":{\"Url\":\"x\"}}"),
    )
    .await
    .unwrap();
    assert_eq!(n, 4);
    let (body, ct) = object(&s3, "ferry-test-site", "app/index.html").await;
    assert_eq!(
        (body.as_slice(), ct.as_deref()),
        (&b"<h1>shop</h1>\n"[..], Some("text/html; charset=utf-8"))
    );
    let (_, ct) = object(&s3, "ferry-test-site", "app/css/app.css").await;
    assert_eq!(ct.as_deref(), Some("text/css; charset=utf-8"));
    let (body, _) = object(&s3, "ferry-test-site", "app/config.json").await;
    assert_eq!(body, b"{\"api\":{\"Url\":\"x\"}}");
}

// A package killed while it zipped leaves its temporary archive (tens of MB); the next one to
// take the folder removes those of processes that are gone, and leaves a live one's.
#[test]
fn temporary_files_a_killed_packaging_left_are_removed_by_the_next() {
    let ws = api_workspace();
    let out = tempfile::tempdir().unwrap();
    let artifacts = out.path().join("artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let left = [
        format!(".api-Fn.{dead}.tmp"),
        format!(".folder-{dead}-dist.tmp"),
        format!(".abc.zip.{dead}.tmp"),
    ];
    // Process 1 is always there (another process's own name: this one's packaging writes
    // `.api-Fn.<its pid>.tmp` itself).
    let live = ".web-Fn.1.tmp".to_string();
    for name in left.iter().chain([&live]) {
        fs::write(artifacts.join(name), "partial").unwrap();
    }
    packaged(ws.path(), out.path(), &["api"]);
    for name in &left {
        assert!(!artifacts.join(name).exists(), "{name} is left");
    }
    assert!(
        artifacts.join(&live).exists(),
        "a live process's file is kept"
    );
}

#[test]
fn a_second_process_packaging_into_the_same_folder_waits_for_the_first() {
    let ws = api_workspace();
    let out = tempfile::tempdir().unwrap();
    // Another process holds the folder (an open file description of its own: flock).
    fs::create_dir_all(out.path()).unwrap();
    let held = fs::File::create(out.path().join(".lock")).unwrap();
    held.lock().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let root = ws.path().to_path_buf();
    let dir = out.path().to_path_buf();
    let waiter = std::thread::spawn(move || {
        let ws = ferry_manifest::load(&root).unwrap();
        let tx = std::sync::Mutex::new(tx);
        package(&ws, &dir, &request("c1", &["api"]), &no_mask, &|e| {
            let _ = tx.lock().unwrap().send(e);
        })
        .map_err(|e| e.to_string())
    });
    // It says what it waits for, and packages nothing meanwhile.
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        first,
        Event::Waiting {
            folder: out.path().to_path_buf()
        }
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rx.try_recv().is_err(),
        "nothing happens while the folder is held"
    );
    assert!(!out.path().join("c1").exists());
    // Let go (as a process that ends does): it packages.
    drop(held);
    let m = waiter.join().unwrap().unwrap();
    assert!(m.services.contains_key("api"));
    let rest: Vec<Event> = rx.try_iter().collect();
    assert!(rest.contains(&Event::Packaged {
        service: "api".into()
    }));
}

// A link in an artifact folder that packaging would refuse (out of what the service's change
// detection watches) is named by the template check `validate` and a deploy's preflight make:
// before, validate said ok and only the package failed.
#[test]
fn the_template_check_walks_artifact_folders_as_packaging_does() {
    let ws = workspace(&[
        ("services/api/template.yaml", FUNCTION),
        (
            "services/api/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src\"\n",
        ),
        ("services/api/src/app.py", "x = 1\n"),
        ("shared/dir with space/f.txt", "x\n"),
    ]);
    std::os::unix::fs::symlink(
        "../../../shared/dir with space",
        ws.path().join("services/api/src/d"),
    )
    .unwrap();
    let checked = |root: &Path| {
        let ws = ferry_manifest::load(root).unwrap();
        ferry_package::check_templates(&ws, &ws.services)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let found = checked(ws.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("leads to shared/dir with space/f.txt, outside the service's folder and its declared inputs"),
        "{found:?}"
    );
    // Declared: what packaging takes, the check takes.
    write(
        ws.path(),
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ninputs = [\"shared/**\"]\n\n[package.artifacts]\nFn = \"src\"\n",
    );
    assert_eq!(checked(ws.path()), Vec::<String>::new());
    // A service with a build makes its folder when it packages: not walked before.
    write(
        ws.path(),
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"true\"]\n\n[package.artifacts]\nFn = \"src\"\n",
    );
    assert_eq!(checked(ws.path()), Vec::<String>::new());
    // A link to a file at the repository's root: the input suggested is the file itself, and
    // it is taken (a probe's find: `esbuild-plugins.ts/**` was suggested, which then matched
    // nothing).
    write(
        ws.path(),
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src\"\n",
    );
    std::fs::remove_file(ws.path().join("services/api/src/d")).unwrap();
    write(ws.path(), "plugins.ts", "export {}\n");
    std::os::unix::fs::symlink(
        "../../../plugins.ts",
        ws.path().join("services/api/src/plugins.ts"),
    )
    .unwrap();
    let found = checked(ws.path());
    assert!(
        found.len() == 1 && found[0].contains("(e.g. inputs = [\"plugins.ts\"])"),
        "{found:?}"
    );
    write(
        ws.path(),
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ninputs = [\"plugins.ts\"]\n\n[package.artifacts]\nFn = \"src\"\n",
    );
    assert_eq!(checked(ws.path()), Vec::<String>::new());
}

#[test]
fn an_ssm_value_given_to_a_parameter_of_an_ssm_parameter_type_is_refused() {
    const SSM_TYPED: &str = "Parameters:\n  Table:\n    Type: AWS::SSM::Parameter::Value<String>\n  Image:\n    Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>'\n    Default: /aws/service/ami\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    let ws = workspace(&[
        ("services/api/template.yaml", SSM_TYPED),
        (
            "services/api/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n\n[parameters]\nTable = \"/shop/${stage}/table\"\n",
        ),
    ]);
    let checked = |root: &Path| {
        let ws = ferry_manifest::load(root).unwrap();
        ferry_package::check_templates(&ws, &ws.services)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    // A name: CloudFormation reads the parameter itself.
    assert_eq!(checked(ws.path()), Vec::<String>::new());
    // Its value instead of its name.
    write(
        ws.path(),
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[parameters]\nTable = \"/shop/${stage}/table\"\nImage = \"${ssm:/shop/image}\"\n",
    );
    let problems = checked(ws.path());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("api: template services/api/template.yaml: [parameters] gives `Image` the value of an SSM parameter (`${ssm:…}`), but the template declares it of type AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>, whose value is the parameter's name"),
        "{problems:?}"
    );
    assert_eq!(
        ferry_package::ssm_typed_parameters(&ferry_package::parse_template(SSM_TYPED).unwrap()),
        [
            ("Table".to_string(), None),
            ("Image".to_string(), Some("/aws/service/ami".to_string()))
        ],
        "in the template's order"
    );
}

#[test]
fn every_service_is_tried_and_every_failure_named_in_one_run() {
    let ws = workspace(&[
        // A missing artifact folder.
        ("services/api/template.yaml", FUNCTION),
        ("services/api/service.toml", API_MANIFEST),
        // A local path that is not declared.
        ("services/jobs/template.yaml", FUNCTION),
        (
            "services/jobs/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n",
        ),
        // A service that packages.
        ("services/web/template.yaml", FUNCTION),
        ("services/web/service.toml", API_MANIFEST),
        ("services/web/src/app.py", "x = 1\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let (result, events) = run(
        ws.path(),
        out.path(),
        &request("c1", &["api", "jobs", "web"]),
    );
    let e = result.unwrap_err();
    let PackageError::Several(errors) = &e else {
        panic!("{e:?}");
    };
    let text = e.to_string();
    assert_eq!(errors.len(), 2, "{text}");
    assert!(
        text.starts_with(
            "2 services failed to package:\n  - api: artifact src of resource `Fn` does not exist"
        ),
        "{text}"
    );
    assert!(
        text.contains("\n  - jobs: resource `Fn` has a local path in Code"),
        "{text}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Packaged { service } if service == "web")),
        "the service that could be packaged was: {events:?}"
    );
    assert!(
        !out.path().join("c1/manifest.json").exists(),
        "no package is written with services missing"
    );
    // One failure alone is that failure.
    let e = run(ws.path(), out.path(), &request("c1", &["api", "web"]))
        .0
        .unwrap_err();
    assert!(matches!(e, PackageError::MissingArtifact { .. }), "{e:?}");
}

#[test]
fn a_reader_of_an_ssm_parameter_another_service_writes_is_told_to_depend_on_it() {
    const WRITER: &str = "Parameters:\n  Environment: {Type: String}\nResources:\n  Bus:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub /shop/${Environment}/bus\n      Type: String\n      Value: x\n  Own:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub [\"/shop/${Stack}/own\", {Stack: !Ref AWS::StackName}]\n      Type: String\n      Value: y\n";
    const READER: &str = "Parameters:\n  Bus:\n    Type: AWS::SSM::Parameter::Value<String>\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    const BY_DEFAULT: &str = "Parameters:\n  Bus:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: /shop/dev/bus\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n";
    let ws = workspace(&[
        ("services/platform/template.yaml", WRITER),
        (
            "services/platform/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n\n[parameters]\nEnvironment = \"${stage}\"\n",
        ),
        ("services/orders/template.yaml", READER),
        (
            "services/orders/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n\n[parameters]\nBus = \"/shop/${stage}/bus\"\n",
        ),
        ("services/billing/template.yaml", BY_DEFAULT),
        (
            "services/billing/service.toml",
            "[service]\ntemplate = \"template.yaml\"\ndepends-on = [\"platform\"]\n",
        ),
        ("services/audit/template.yaml", READER),
        (
            "services/audit/service.toml",
            "[service]\ntemplate = \"template.yaml\"\n\n[parameters]\nBus = \"/shop/${stage}/elsewhere\"\n",
        ),
    ]);
    let unlinked = |root: &Path| {
        let ws = ferry_manifest::load(root).unwrap();
        ferry_package::unlinked_ssm_readers(&ferry_package::Templates::new(&ws))
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        unlinked(ws.path()),
        [
            "orders: template parameter Bus names SSM parameter `/shop/dev/bus`, which the template of platform writes, and orders does not depend on platform: add \"platform\" to its depends-on, so that platform deploys first"
        ],
        "billing depends on it, audit reads another"
    );
    // Read through a stack name (the writer's own parameter), and once the reader depends on it.
    write(
        ws.path(),
        "services/orders/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ndepends-on = [\"billing\"]\n\n[parameters]\nBus = \"/shop/platform-${stage}/own\"\n",
    );
    assert_eq!(
        unlinked(ws.path()),
        Vec::<String>::new(),
        "depending on billing, which depends on platform, orders deploys after it"
    );
    write(
        ws.path(),
        "services/orders/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[parameters]\nBus = \"/shop/platform-${stage}/own\"\n",
    );
    let told = unlinked(ws.path());
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("`/shop/platform-dev/own`"), "{told:?}");
}

/// A name built from a stage variable (`${var:env}`) is known before a deploy: two stages
/// that give it the same value give the same name (warned of), and stages that give it their
/// own do not. Before, a `${var:…}` made the name unknown, so neither was told.
#[test]
fn a_name_built_from_a_stage_variable_is_judged_per_stage() {
    let ws = workspace(&[
        (
            "ferry.toml",
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nvariables = { env = \"nonprod\", own = \"d\" }\n\n[stages.qa]\nregion = \"us-east-1\"\nvariables = { env = \"nonprod\", own = \"q\" }\n",
        ),
        (
            "services/api/t.yaml",
            "Parameters:\n  Env: {Type: String}\n  Own: {Type: String}\nResources:\n  Shared:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub 'q-${Env}'\n  Apart:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub 'q-${Own}'\n",
        ),
        (
            "services/api/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nEnv = \"${var:env}\"\nOwn = \"${var:own}\"\n",
        ),
    ]);
    let loaded = ferry_manifest::load(ws.path()).unwrap();
    let shared = ferry_package::names_every_stage_gives(&ferry_package::Templates::new(&loaded));
    let said: Vec<String> = shared.iter().map(|n| n.to_string()).collect();
    assert_eq!(shared.len(), 1, "{said:#?}");
    assert!(
        said[0].starts_with("`api` gives the queue `q-nonprod` the same in every stage (Resources.Shared.Properties.QueueName)"),
        "{said:#?}"
    );
}

// The checkout changing while its files are read (a branch switched, a file edited, during a
// package or deploy): the archives may be of neither state, and would be kept under the first
// one's id and input key, so nothing is kept. Before, a branch's code was deployed and recorded
// as main's commit, and every later package of that tree reused it. (The change is made when
// the first service is packaged, before the second is read.)
#[test]
fn a_checkout_that_changes_while_it_is_packaged_is_kept_nowhere() {
    let r = ferry_test_support::TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(".gitignore", "target/\n");
    for s in ["a", "b"] {
        r.write(&format!("services/{s}/template.yaml"), FUNCTION)
            .write(&format!("services/{s}/service.toml"), API_MANIFEST)
            .write(&format!("services/{s}/src/app.py"), &format!("{s}\n"));
    }
    r.commit("a and b");
    let out = tempfile::tempdir().unwrap();
    let ws = ferry_manifest::load(r.path()).unwrap();
    let package_while = |req: &PackageRequest, change: &dyn Fn()| {
        // Once a is done (packaged, or reused from the cache once it was), before b is read.
        let on = |e: Event| {
            if e == (Event::Packaged {
                service: "a".into(),
            }) || e
                == (Event::Reused {
                    service: "a".into(),
                })
            {
                change();
            }
        };
        package(&ws, out.path(), req, &no_mask, &on).map_err(|e| e.to_string())
    };

    // b's code edited once a is packaged, before b is read.
    let req = snapshot_request(r.path(), &["a", "b"]);
    let err = package_while(&req, &|| {
        r.write("services/b/src/app.py", "edited\n");
    })
    .unwrap_err();
    assert!(
        err.contains("the checkout changed while it was being packaged (files of b were edited)"),
        "{err}"
    );
    assert!(!out.path().join("package").join(&req.id).exists());
    assert!(!out.path().join("cache").exists(), "nothing cached");

    // HEAD moved (a branch switched) meanwhile.
    r.write("services/b/src/app.py", "b\n");
    let req = snapshot_request(r.path(), &["a", "b"]);
    let err = package_while(&req, &|| {
        ferry_test_support::git(r.path(), &["commit", "-q", "--allow-empty", "-m", "moved"]);
    })
    .unwrap_err();
    assert!(
        err.contains(&format!(
            "the checkout changed while it was being packaged (HEAD moved from {} to ",
            &req.commit[..12]
        )),
        "{err}"
    );
    assert!(!out.path().join("package").join(&req.id).exists());

    // Still: kept, and cached.
    let req = snapshot_request(r.path(), &["a", "b"]);
    let m = package_while(&req, &|| {}).unwrap();
    assert_eq!(m.services.len(), 2);
    assert!(out.path().join("cache/b").is_dir());

    // b with an uncommitted file, and a log of the run written at the root meanwhile
    // (`deploy dev > deploy.log`): b's own files are as they were, so it is kept (every such
    // deploy failed, blaming b); b's own file edited meanwhile is still refused.
    r.write("services/b/notes.txt", "draft\n");
    let req = snapshot_request(r.path(), &["a", "b"]);
    assert!(req.dirty && req.dirty_keys.contains_key("b"), "{req:?}");
    package_while(&req, &|| {
        r.write("deploy.log", "packaging a\n");
    })
    .unwrap();
    let req = snapshot_request(r.path(), &["a", "b"]);
    let err = package_while(&req, &|| {
        r.write("services/b/notes.txt", "draft 2\n");
    })
    .unwrap_err();
    assert!(
        err.contains("the checkout changed while it was being packaged (files of b were edited)"),
        "{err}"
    );
}

// A build that writes a tracked file every service's key holds (an `npm install` rewriting the
// root lock file, a global input): packaging judges HEAD alone then, and goes on.
#[test]
fn a_build_rewriting_a_global_input_does_not_stop_packaging() {
    let r = ferry_test_support::TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\nglobal-inputs = [\"ferry.toml\", \"package-lock.json\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(".gitignore", "target/\n")
    .write("package-lock.json", "{}\n")
    .write("services/a/template.yaml", FUNCTION)
    .write(
        "services/a/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"echo '{\\\"v\\\": 2}' > ../../package-lock.json\"]\n\n[package.artifacts]\nFn = \"src\"\n",
    )
    .write("services/a/src/app.py", "a\n")
    .write("services/b/template.yaml", FUNCTION)
    .write("services/b/service.toml", API_MANIFEST)
    .write("services/b/src/app.py", "b\n");
    r.commit("a's build rewrites the lock file");
    let out = tempfile::tempdir().unwrap();
    let req = snapshot_request(r.path(), &["a", "b"]);
    let m = run(r.path(), out.path(), &req).0.unwrap();
    assert_eq!(m.services.len(), 2);
    assert_ne!(
        fs::read_to_string(r.path().join("package-lock.json")).unwrap(),
        "{}\n",
        "the build did rewrite it"
    );
}

/// Any two preview stages share an account and region: a literal export name (as the Serverless
/// examples' shared gateway gives) fails the second preview's deploy. Before, only two named
/// stages were judged, so a project with one named stage and previews was told nothing.
#[test]
fn a_literal_name_is_judged_between_two_previews_too() {
    let ws = workspace(&[
        (
            "ferry.toml",
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\naccount = \"111111111111\"\n\n[stages.\"*\"]\nregion = \"eu-west-1\"\naccount = \"222222222222\"\n",
        ),
        (
            "services/gateway/t.yaml",
            "Resources:\n  Api:\n    Type: AWS::ApiGateway::RestApi\nOutputs:\n  Id:\n    Value: !Ref Api\n    Export:\n      Name: SharedGW-restApiId\n  Own:\n    Value: !Ref Api\n    Export:\n      Name: !Sub '${AWS::StackName}-id'\n",
        ),
        (
            "services/gateway/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n",
        ),
    ]);
    let loaded = ferry_manifest::load(ws.path()).unwrap();
    let shared = ferry_package::names_every_stage_gives(&ferry_package::Templates::new(&loaded));
    let said: Vec<String> = shared.iter().map(|n| n.to_string()).collect();
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(
        said[0].contains("gives the export name `SharedGW-restApiId` literally")
            && said[0].contains("any two preview stages (`pr-1` and `pr-2`: [stages.\"*\"] makes one per branch or pull request) deploy to eu-west-1"),
        "{said:#?}"
    );
}

/// An SSM parameter's name is unique in an account and region: a template writing one under a
/// literal name (aws-samples/aws-serverless-shopping-cart's
/// `/serverless-shopping-cart-demo/auth/user-pool-arn`) gives every stage that name, so two
/// stages of one account and region collide (the second one's deploy failed with
/// ParameterAlreadyExists, or read the first's value), which is now warned of; a name built
/// from the stage is not.
#[test]
fn an_ssm_parameter_every_stage_names_alike_is_warned_of() {
    let ws = workspace(&[
        (
            "ferry.toml",
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.staging]\nregion = \"us-east-1\"\n",
        ),
        (
            "services/auth/t.yaml",
            "Parameters:\n  Stage: {Type: String}\nResources:\n  Arn:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: /serverless-shopping-cart-demo/auth/user-pool-arn\n      Type: String\n      Value: x\n  Own:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub /shop/${Stage}/auth/url\n      Type: String\n      Value: y\n  Count:\n    Type: AWS::CloudFormation::Macro\n    Properties:\n      Name: Count\n      FunctionName: arn:aws:lambda:us-east-1:123456789012:function:count\n",
        ),
        (
            "services/auth/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nStage = \"${stage}\"\n",
        ),
    ]);
    let loaded = ferry_manifest::load(ws.path()).unwrap();
    let shared = ferry_package::names_every_stage_gives(&ferry_package::Templates::new(&loaded));
    let said: Vec<String> = shared.iter().map(|n| n.to_string()).collect();
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(
        said[0].starts_with("`auth` gives the SSM parameter `/serverless-shopping-cart-demo/auth/user-pool-arn` literally (Resources.Arn.Properties.Name)"),
        "{said:#?}"
    );
    // A macro's name is one per account and region too.
    assert!(
        said[1].starts_with(
            "`auth` gives the macro `Count` literally (Resources.Count.Properties.Name)"
        ),
        "{said:#?}"
    );
}
