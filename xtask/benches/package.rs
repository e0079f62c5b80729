//! Package benchmark, in one run, on a generated service of 2,000 files / 100 MB (half text-like,
//! half incompressible, as code plus native libraries are):
//!
//! - first package: Ferry's wall time (the release binary, cold: no earlier package) against
//!   `zip -qrX` of the same folder followed by `sha256sum` of the archive;
//! - re-package with nothing changed: wall time as a fraction of the first, with and without the
//!   upload step (which must send nothing: the bucket already has the archive);
//! - a second clone in another folder: its archive must be byte-identical.
//!
//! Run: `cargo bench -p xtask --bench package` (or `cargo xtask bench package`); `-- FILES MB` for
//! another size.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let nums: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let files = nums.first().copied().unwrap_or(2000) as usize;
    let mb = nums.get(1).copied().unwrap_or(100);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("a");
    let t = Instant::now();
    generate(&repo, files, mb << 20);
    eprintln!(
        "bench: generated {files} files, {mb} MB in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let state = tmp.path().join("emulator");
    let _stop = ferry_test_support::StopEmulatorOnDrop(state.clone());
    let src = repo.join("services/big/src");

    // Reference: zip -rX + sha256sum, best of 3.
    let out_zip = tmp.path().join("ref.zip");
    let reference = best_of(3, || {
        let _ = std::fs::remove_file(&out_zip);
        let t = Instant::now();
        sh(&src, "zip", &["-qrX", out_zip.to_str().unwrap(), "."]);
        sh(&src, "sha256sum", &[out_zip.to_str().unwrap()]);
        t.elapsed()
    });
    let ref_size = std::fs::metadata(&out_zip).unwrap().len();

    // Ferry, cold, best of 3.
    let package_dir = repo.join("target/ferry/package");
    let mut manifest = serde_json::Value::Null;
    let first = best_of(3, || {
        let _ = std::fs::remove_dir_all(&package_dir);
        let t = Instant::now();
        manifest = xtask(&repo, &state, &["package", "--json"]).0;
        t.elapsed()
    });
    let artifact = &manifest["services"]["big"]["artifacts"][0];
    let sha = artifact["sha256"].as_str().unwrap().to_string();
    let size = artifact["size"].as_u64().unwrap();

    // Upload once, then re-package with nothing changed.
    let (_, err) = xtask(
        &repo,
        &state,
        &["--local", "package", "--upload", "dev", "--json"],
    );
    let first_upload = upload_line(&err);
    let again = best_of(3, || {
        let t = Instant::now();
        xtask(&repo, &state, &["package", "--json"]);
        t.elapsed()
    });
    let mut again_err = String::new();
    let again_upload = best_of(3, || {
        let t = Instant::now();
        again_err = xtask(
            &repo,
            &state,
            &["--local", "package", "--upload", "dev", "--json"],
        )
        .1;
        t.elapsed()
    });

    // Another clone, another folder: the same bytes.
    let b = tmp.path().join("elsewhere/b");
    sh(
        tmp.path(),
        "git",
        &["clone", "-q", repo.to_str().unwrap(), b.to_str().unwrap()],
    );
    let mb_manifest = xtask(&b, &state, &["package", "--json"]).0;
    let sha_b = mb_manifest["services"]["big"]["artifacts"][0]["sha256"]
        .as_str()
        .unwrap();
    let bytes_a = std::fs::read(package_dir.join(format!("artifacts/{sha}.zip"))).unwrap();
    let bytes_b =
        std::fs::read(b.join(format!("target/ferry/package/artifacts/{sha_b}.zip"))).unwrap();

    let s = |d: Duration| d.as_secs_f64();
    println!("package benchmark: 1 service, {files} files, {mb} MB (best of 3 each)");
    println!(
        "  first package   Ferry {:>7.3}s  (archive {:.1} MB)",
        s(first),
        size as f64 / 1e6
    );
    println!(
        "  reference       zip -rX + sha256sum {:>7.3}s  (archive {:.1} MB)",
        s(reference),
        ref_size as f64 / 1e6
    );
    println!(
        "  ratio           {:.2}x  (target <= 1.0)",
        s(first) / s(reference)
    );
    println!("  upload          first: {first_upload}");
    println!(
        "  re-package      {:>7.3}s = {:.3}x of the first  (target <= 0.3)",
        s(again),
        s(again) / s(first)
    );
    println!(
        "  re-package+upload {:>5.3}s = {:.3}x of the first; {}",
        s(again_upload),
        s(again_upload) / s(first),
        upload_line(&again_err)
    );
    println!(
        "  other folder    {} ({} vs {})",
        if bytes_a == bytes_b {
            "byte-identical"
        } else {
            "DIFFERENT"
        },
        &sha[..16],
        &sha_b[..16]
    );
    assert_eq!(bytes_a, bytes_b, "archives differ between folders");
    assert!(
        upload_line(&again_err).contains("0 object(s) sent"),
        "{again_err}"
    );
}

fn upload_line(err: &str) -> String {
    err.lines()
        .find(|l| l.starts_with("upload to "))
        .unwrap_or("(no upload line)")
        .to_string()
}

fn best_of(n: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..n).map(|_| f()).min().unwrap()
}

fn sh(dir: &Path, program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

/// Runs the release binary; returns the JSON it printed and its stderr.
fn xtask(root: &Path, state: &Path, args: &[&str]) -> (serde_json::Value, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("--root").arg(root).args(args);
    for v in [
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "CI",
        "CODEBUILD_BUILD_ID",
        "GITHUB_ACTIONS",
    ] {
        c.env_remove(v);
    }
    let out = c.env("FERRY_LOCAL_DIR", state).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "xtask {args:?} failed:\n{err}");
    (serde_json::from_slice(&out.stdout).unwrap(), err)
}

/// A repository with one service whose `src` holds `files` files of `bytes` in all: half of the
/// files text-like (words from a small vocabulary), half random bytes.
fn generate(repo: &Path, files: usize, bytes: u64) {
    let src = repo.join("services/big/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        repo.join("ferry.toml"),
        "[project]\nname = \"bench\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .unwrap();
    std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
    std::fs::write(
        repo.join("services/big/service.toml"),
        "[service]\ntemplate = \"template.yaml\"\n\n[package.artifacts]\nFn = \"src\"\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("services/big/template.yaml"),
        "Resources:\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python3.12\n      Handler: m.h\n      Role: arn:aws:iam::123456789012:role/x\n      Code: src\n",
    )
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let words = [
        "def", "return", "import", "self", "value", "order", "table", "event", "for", "in", "if",
        "else", "None", "True", "client", "response", "json", "items", "key", "status",
    ];
    let per = bytes / files as u64;
    for i in 0..files {
        let dir = src.join(format!("pkg{:02}/mod{:02}", i % 40, (i / 40) % 50));
        std::fs::create_dir_all(&dir).unwrap();
        let mut data = Vec::with_capacity(per as usize);
        if i % 2 == 0 {
            while (data.len() as u64) < per {
                data.extend_from_slice(words[rng.usize(..words.len())].as_bytes());
                data.push(if rng.u8(..12) == 0 { b'\n' } else { b' ' });
            }
            data.truncate(per as usize);
            std::fs::write(dir.join(format!("f{i:05}.py")), data).unwrap();
        } else {
            data.resize(per as usize, 0);
            rng.fill(&mut data);
            std::fs::write(dir.join(format!("f{i:05}.so")), data).unwrap();
        }
    }
    sh(repo, "git", &["init", "-q"]);
    sh(repo, "git", &["add", "-A"]);
    sh(
        repo,
        "git",
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-qm",
            "bench",
        ],
    );
}
