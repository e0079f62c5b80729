//! Pointing a compiled Serverless template at Ferry's archives, on a package folder shaped like
//! the one the framework writes (its template, and archives zipped with their own dates).

use std::path::Path;
use std::process::Command;

use ferry_serverless::{ServerlessError, rewrite};
use serde_json::{Value, json};

/// A zip of `files` written by Python's zipfile, every entry dated `year`.
fn framework_zip(path: &Path, files: &[(&str, &str)], year: u32) {
    let script = r#"
import sys, zipfile, json
path, year, files = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for name, body in files:
        info = zipfile.ZipInfo(name, (year, 5, 6, 7, 8, 10))
        info.external_attr = 0o100644 << 16
        z.writestr(info, body)
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(year.to_string())
        .arg(serde_json::to_string(files).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A zip written by Python's zipfile at `path`, whose entries `lines` (indented Python, `z` the
/// open archive) write: for archives `framework_zip` cannot shape.
fn python_zip(path: &Path, lines: &str) {
    let script =
        format!("import zipfile,sys\nwith zipfile.ZipFile(sys.argv[1],'w') as z:\n{lines}\n");
    let status = Command::new("python3")
        .args(["-c", &script])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// What the framework compiles for one function with a version and an output of it.
fn compiled(stamp: &str, version_id: &str) -> Value {
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "ServerlessDeploymentBucket": {"Type": "AWS::S3::Bucket"},
            "NotifyLambdaFunction": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Code": {
                        "S3Bucket": {"Ref": "ServerlessDeploymentBucket"},
                        "S3Key": format!("serverless/orders-notifier/dev/{stamp}/orders-notifier.zip")
                    },
                    "Handler": "notify.handle"
                }
            },
            version_id: {
                "Type": "AWS::Lambda::Version",
                "DeletionPolicy": "Retain",
                "Properties": {
                    "FunctionName": {"Ref": "NotifyLambdaFunction"},
                    "CodeSha256": "framework-hash-of-its-own-zip"
                }
            }
        },
        "Outputs": {
            "NotifyLambdaFunctionQualifiedArn": {"Value": {"Ref": version_id}},
            "NotifyCodeS3Key": {
                "Value": format!("serverless/orders-notifier/dev/{stamp}/orders-notifier.zip")
            },
            "ServerlessDeploymentBucketName": {"Value": {"Ref": "ServerlessDeploymentBucket"}}
        }
    })
}

#[test]
fn the_same_function_files_give_the_same_archive_key_and_version_whatever_the_framework_wrote() {
    let out = tempfile::tempdir().unwrap();
    let files = [
        ("notify.py", "def handle(e, c):\n    return 1\n"),
        ("lib/util.py", "X = 1\n"),
    ];
    let mut results = Vec::new();
    for (year, stamp, version) in [
        (
            2024,
            "1700000000000-2023-11-14T22:13:20.000Z",
            "NotifyLambdaVersionAAAA",
        ),
        (
            2026,
            "1796199613214-2026-12-02T08:20:13.214Z",
            "NotifyLambdaVersionBBBB",
        ),
    ] {
        let pkg = tempfile::tempdir().unwrap();
        framework_zip(&pkg.path().join("orders-notifier.zip"), &files, year);
        let mut t = compiled(stamp, version);
        let artifacts = rewrite(
            &mut t,
            pkg.path(),
            out.path(),
            "shop/notifier",
            "notifier",
            &|_| {},
        )
        .unwrap();
        results.push((t, artifacts));
    }
    let (t, artifacts) = &results[0];
    assert_eq!(results[1].0, *t, "the same template on every run");
    assert_eq!(results[1].1, *artifacts);

    assert_eq!(artifacts.len(), 1);
    let a = &artifacts[0];
    assert_eq!(a.resource, "NotifyLambdaFunction");
    assert_eq!(a.key, format!("shop/notifier/{}.zip", a.sha256));
    assert_eq!(a.files, 2);
    let bytes = std::fs::read(a.local_path(out.path())).unwrap();
    assert_eq!(ferry_package::sha256_hex(&bytes), a.sha256);

    assert_eq!(
        t["Resources"]["NotifyLambdaFunction"]["Properties"]["Code"],
        json!({"S3Bucket": {"Ref": "FerryArtifactBucket"}, "S3Key": a.key})
    );
    assert!(t["Parameters"]["FerryArtifactBucket"].is_object());
    assert!(
        t["Resources"]["ServerlessDeploymentBucket"].is_object(),
        "the framework's bucket stays: an existing stack holds it"
    );
    let version_ids: Vec<&String> = t["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("NotifyLambdaVersion"))
        .collect();
    assert_eq!(version_ids.len(), 1);
    let version = version_ids[0];
    assert_eq!(
        t["Outputs"]["NotifyLambdaFunctionQualifiedArn"]["Value"]["Ref"],
        json!(version),
        "references follow the renamed version"
    );
    // An output naming the archive's key (as a layer's `…LambdaLayerS3Key` does) names
    // Ferry's: the framework's was never uploaded.
    assert_eq!(t["Outputs"]["NotifyCodeS3Key"]["Value"], json!(a.key));
    use base64::Engine as _;
    let sha: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&a.sha256[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(
        t["Resources"][version]["Properties"]["CodeSha256"],
        json!(base64::engine::general_purpose::STANDARD.encode(sha))
    );

    // Other code: another version id and archive key.
    let pkg = tempfile::tempdir().unwrap();
    framework_zip(
        &pkg.path().join("orders-notifier.zip"),
        &[("notify.py", "def handle(e, c):\n    return 2\n")],
        2024,
    );
    let mut other = compiled("x", "NotifyLambdaVersionAAAA");
    let changed = rewrite(
        &mut other,
        pkg.path(),
        out.path(),
        "shop/notifier",
        "notifier",
        &|_| {},
    )
    .unwrap();
    assert_ne!(changed[0].sha256, a.sha256);
    assert!(other["Resources"].get(version.as_str()).is_none());
}

#[test]
fn an_archive_the_framework_did_not_write_or_cannot_be_read_is_an_error_naming_it() {
    let out = tempfile::tempdir().unwrap();
    let pkg = tempfile::tempdir().unwrap();
    let mut t = compiled("x", "NotifyLambdaVersionAAAA");
    let mut run = || {
        rewrite(
            &mut t,
            pkg.path(),
            out.path(),
            "shop/notifier",
            "notifier",
            &|_| {},
        )
    };
    let e = run().unwrap_err();
    assert!(matches!(e, ServerlessError::MissingArchive { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "notifier: resource `NotifyLambdaFunction` names the archive orders-notifier.zip, which the framework did not write into its package folder"
    );

    let zip = pkg.path().join("orders-notifier.zip");
    std::fs::write(&zip, "not a zip").unwrap();
    let e = run().unwrap_err();
    assert!(
        e.to_string().starts_with(
            "notifier: archive orders-notifier.zip, which the framework's CLI wrote, cannot be read"
        ),
        "{e}"
    );

    // A link in the archive that loops back into a folder holding it.
    python_zip(
        &zip,
        "  z.writestr('handler.py','x')\n  i=zipfile.ZipInfo('lib/loop'); i.create_system=3; i.external_attr=0o120777<<16\n  z.writestr(i,'..')",
    );
    assert_eq!(
        run().unwrap_err().to_string(),
        "notifier: the framework's archive orders-notifier.zip cannot be re-zipped as it is: entry lib/loop is a symbolic link back into the archive's top folder, a folder that holds it: the walk would never end; remove it or exclude it"
    );

    // An entry that climbs out of the folder is refused, not written outside it.
    python_zip(&zip, "  z.writestr('../../escape.py','x')");
    let r = run();
    assert!(!out.path().parent().unwrap().join("escape.py").exists());
    if let Ok(a) = r {
        let names = std::fs::read(a[0].local_path(out.path())).unwrap();
        assert!(
            !String::from_utf8_lossy(&names).contains(".."),
            "no climbing entry kept"
        );
    }

    let mut no_resources = json!({"Outputs": {}});
    let e = rewrite(
        &mut no_resources,
        pkg.path(),
        out.path(),
        "p/s",
        "notifier",
        &|_| {},
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "notifier: the compiled template is not usable: it has no Resources mapping"
    );
}

#[test]
fn credential_files_the_framework_packaged_are_left_out_and_reported() {
    let out = tempfile::tempdir().unwrap();
    let pkg = tempfile::tempdir().unwrap();
    framework_zip(
        &pkg.path().join("orders-notifier.zip"),
        &[
            ("notify.py", "def handle(e, c):\n    return 1\n"),
            (".env", "SLACK_TOKEN=xoxb-secret\n"),
            ("node_modules/dep/.npmrc", "//registry/:_authToken=t\n"),
        ],
        2024,
    );
    let mut t = compiled("x", "NotifyLambdaVersionAAAA");
    let lines = std::sync::Mutex::new(Vec::new());
    let artifacts = rewrite(
        &mut t,
        pkg.path(),
        out.path(),
        "shop/notifier",
        "notifier",
        &|l: &str| lines.lock().unwrap().push(l.to_string()),
    )
    .unwrap();
    assert_eq!(artifacts[0].files, 1, "only notify.py is packaged");
    assert_eq!(
        lines.into_inner().unwrap(),
        [
            "left out of orders-notifier.zip 2 files (credential files are never packaged): .env, node_modules/dep/.npmrc"
        ]
    );
    // The stored archive holds no trace of them.
    let stored = std::fs::read(artifacts[0].local_path(out.path())).unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(!text.contains(".env") && !text.contains(".npmrc"));
}
