//! `cargo xtask package` on real clones: byte-identical archives whatever the umask and timezone,
//! reuse by git tree ids, and a distinct id for a dirty tree.

use std::path::Path;
use std::process::Command;

use crate::common::{run, xtask};
use ferry_test_support::TestRepo;
use serde_json::Value;

const FUNCTION: &str = "Resources:\n  Role:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {}\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python3.12\n      Handler: app.handle\n      Role: !GetAtt Role.Arn\n      Code: src\n";

fn repo() -> TestRepo {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"pkg\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(".gitignore", "target/\nservices/api/src/gen/\n")
    .write("services/api/template.yaml", FUNCTION)
    .write(
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"mkdir -p src/gen && date -u -d @$SOURCE_DATE_EPOCH +%Y > src/gen/year.txt\"]\n\n[package.artifacts]\nFn = \"src\"\n",
    )
    .write("services/api/src/app.py", "def handle(e, c):\n    return 1\n")
    .write("services/api/src/lib/util.py", "U = 1\n")
    .write("services/api/src/run.sh", "#!/bin/sh\n")
    .write(
        "services/db/template.yaml",
        "Resources:\n  T:\n    Type: AWS::SQS::Queue\n",
    )
    .write("services/db/service.toml", "[service]\ntemplate = \"template.yaml\"\n");
    std::fs::set_permissions(
        r.path().join("services/api/src/run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    r.commit("services");
    r
}

/// `package --json` in `root`, with a timezone: the manifest.
fn package(root: &Path, tz: &str) -> Value {
    let r = TestRepo::new(); // only for the environment `xtask` sets up
    let mut c = xtask(&r, &["package", "--json"]);
    c.arg("--root").arg(root).env("TZ", tz);
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn zip_of(root: &Path, manifest: &Value) -> Vec<u8> {
    let sha = manifest["services"]["api"]["artifacts"][0]["sha256"]
        .as_str()
        .unwrap();
    std::fs::read(root.join(format!("target/ferry/package/artifacts/{sha}.zip"))).unwrap()
}

fn clone(src: &Path, umask: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && git clone -q \"$0\" \"$1\""))
        .arg(src)
        .arg(dir.path().join("repo"))
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

#[test]
fn two_clones_with_different_umask_and_timezone_give_byte_identical_archives() {
    let r = repo();
    let (a, b) = (clone(r.path(), "077"), clone(r.path(), "002"));
    let (ra, rb) = (a.path().join("repo"), b.path().join("repo"));
    let ma = package(&ra, "Pacific/Kiritimati");
    let mb = package(&rb, "America/Adak");
    assert_eq!(ma["id"], r.head().to_string());
    assert_eq!(ma["dirty"], false);
    assert_eq!(ma["services"], mb["services"]);
    let (za, zb) = (zip_of(&ra, &ma), zip_of(&rb, &mb));
    assert_eq!(za, zb);
    // The build ran with SOURCE_DATE_EPOCH, and its output is in the archive.
    assert_eq!(
        std::fs::read_to_string(ra.join("services/api/src/gen/year.txt")).unwrap(),
        "1980\n"
    );
    assert_eq!(ma["services"]["api"]["artifacts"][0]["files"], 4);
}

#[test]
fn packaging_again_reuses_by_tree_id_and_a_dirty_tree_packages_under_its_own_id() {
    let r = repo();
    let first = package(r.path(), "UTC");
    let commit = r.head().to_string();
    let manifest_path = r
        .path()
        .join(format!("target/ferry/package/{commit}/manifest.json"));
    let committed = std::fs::read(&manifest_path).unwrap();
    // One service's entries alone, of the same package.
    let mut c = xtask(&r, &["package", "--json", "--service", "db"]);
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 0, "{err}");
    let db: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(db["id"], first["id"]);
    assert_eq!(db["services"]["db"], first["services"]["db"]);
    assert_eq!(db["services"].as_object().unwrap().len(), 1, "{out}");

    // A new commit that touches only db: api is reused without building.
    r.write("services/db/notes.md", "n\n").commit("db notes");
    let mut c = xtask(&r, &["package"]);
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("api: inputs unchanged (same git trees): package reused, nothing built"),
        "{err}"
    );
    assert!(!err.contains("api: building"), "{err}");
    assert!(out.contains("manifest: "), "{out}");

    // An uncommitted edit: a distinct id, marked dirty; the commit's package is untouched.
    r.write(
        "services/api/src/app.py",
        "def handle(e, c):\n    return 2\n",
    );
    let dirty = package(r.path(), "UTC");
    let id = dirty["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{}-dirty-", r.head())), "{id}");
    assert_eq!(dirty["dirty"], true);
    assert_ne!(
        dirty["services"]["api"]["artifacts"][0]["sha256"],
        first["services"]["api"]["artifacts"][0]["sha256"]
    );
    assert_eq!(std::fs::read(&manifest_path).unwrap(), committed);
}

#[test]
fn a_template_outside_the_service_folder_is_an_input_of_its_package() {
    let r = repo();
    r.write(
        "services/db/service.toml",
        "[service]\ntemplate = \"../../templates/db.yaml\"\n",
    )
    .write(
        "templates/db.yaml",
        "Resources:\n  T:\n    Type: AWS::SQS::Queue\n",
    )
    .commit("db's template lives outside its folder");
    let first = package(r.path(), "UTC");

    // Only the shared template changes: db is packaged again, not reused.
    r.write(
        "templates/db.yaml",
        "Resources:\n  T:\n    Type: AWS::SQS::Queue\n    Properties: {DelaySeconds: 5}\n",
    )
    .commit("db's template changes");
    let mut c = xtask(&r, &["package"]);
    let (code, _, err) = run(&mut c, None);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("db: inputs unchanged"), "{err}");
    let second = package(r.path(), "UTC");
    assert_ne!(
        first["services"]["db"]["template_sha256"], second["services"]["db"]["template_sha256"],
        "{second}"
    );
}

#[test]
fn package_names_an_unknown_service_with_a_suggestion() {
    let r = repo();
    let (code, _, err) = run(&mut xtask(&r, &["package", "--service", "apii"]), None);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown service `apii`; did you mean `api`?"),
        "{err}"
    );
}

/// Without a repository (a pipeline's source zip), two packagings in the same second each make
/// their own package: the second holds its own files. Before, both had one id (the second of
/// the time), and the second reused the first's archive.
#[test]
fn without_git_each_packaging_is_its_own_even_in_the_same_second() {
    let r = repo();
    let plain = tempfile::tempdir().unwrap();
    let root = plain.path().join("src");
    let status = Command::new("cp")
        .arg("-r")
        .arg(r.path())
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(root.join(".git")).unwrap();
    let sha = |m: &Value| m["services"]["api"]["artifacts"][0]["sha256"].clone();
    let first = package(&root, "UTC");
    std::fs::write(
        root.join("services/api/src/app.py"),
        "def handle(e, c):\n    return 2\n",
    )
    .unwrap();
    let second = package(&root, "UTC");
    assert_ne!(first["id"], second["id"]);
    assert!(
        first["id"]
            .as_str()
            .unwrap()
            .starts_with("unversioned-nogit-"),
        "{first}"
    );
    assert_ne!(sha(&first), sha(&second));
}
