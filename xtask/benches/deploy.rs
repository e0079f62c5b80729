//! Deploy benchmark, against a dedicated local emulator, in one run:
//!
//! - first deploy of 50 independent services: Ferry's wall time against the sum of 50
//!   single-service `aws cloudformation deploy` runs (what a build.sh loop does);
//! - no-op: the same 50 services already deployed, nothing changed: Ferry's wall time and number
//!   of AWS API calls (counted from the emulator's request log) against the same loop of
//!   `aws cloudformation deploy --no-fail-on-empty-changeset` over the 50 stacks.
//!
//! Run: `cargo bench -p xtask --bench deploy` (or `cargo xtask bench deploy`); `-- N` for another
//! number of services.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_local::Emulator;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let emu = Emulator::for_repository(&root).with_state_dir(tmp.path().join("emulator"));
    emu.ensure_installed(|s| eprintln!("bench: {s}")).unwrap();
    let (state, _) = emu.up(0).unwrap();
    let _stop = Stop(emu.clone());
    let aws = aws_cli(&emu);
    let endpoint = state.endpoint();
    let requests = || {
        std::fs::read_to_string(emu.log_path())
            .map(|t| {
                t.lines()
                    .filter(|l| l.contains("\" 200 ") || l.contains("\" 400 "))
                    .count()
            })
            .unwrap_or(0)
    };

    let repo = tmp.path().join("repo");
    generate(&repo, n);
    let xtask = env!("CARGO_BIN_EXE_xtask");
    let env = |c: &mut Command| {
        for v in [
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "CI",
            "FORCE_DEPLOY_ALL",
        ] {
            c.env_remove(v);
        }
        c.env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    };
    let ferry_deploy = || {
        let mut c = Command::new(xtask);
        c.args(["--root", repo.to_str().unwrap(), "deploy", "dev"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        env(&mut c);
        let (before, t) = (requests(), Instant::now());
        assert!(c.status().unwrap().success(), "ferry deploy failed");
        (t.elapsed(), requests() - before)
    };
    let cli_deploy = |stack: &str, service: usize| {
        let mut c = Command::new(&aws);
        c.args([
            "cloudformation",
            "deploy",
            "--stack-name",
            stack,
            "--no-fail-on-empty-changeset",
            "--template-file",
        ])
        .arg(repo.join(format!("services/s{service:03}/t.yaml")))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        env(&mut c);
        let t = Instant::now();
        assert!(
            c.status().unwrap().success(),
            "aws cloudformation deploy {stack} failed"
        );
        t.elapsed()
    };

    // First deploy.
    let (first, first_calls) = ferry_deploy();
    let loop_first: Duration = (0..n)
        .map(|i| cli_deploy(&format!("loop-s{i:03}-dev"), i))
        .sum();
    // No-op: median of three Ferry runs; one pass of the loop over Ferry's own stacks.
    let mut noops: Vec<(Duration, usize)> = (0..3).map(|_| ferry_deploy()).collect();
    noops.sort();
    let (noop, noop_calls) = noops[1];
    let loop_noop: Duration = (0..n)
        .map(|i| cli_deploy(&format!("bench-s{i:03}-dev"), i))
        .sum();

    let s = |d: Duration| d.as_secs_f64();
    println!("deploy benchmark: {n} independent services (one SQS queue each), local emulator");
    println!(
        "  first deploy   ferry {:>7.2} s ({first_calls} API calls)   sum of {n} single-service `aws cloudformation deploy` {:>7.2} s   ratio {:.1}x faster",
        s(first),
        s(loop_first),
        s(loop_first) / s(first)
    );
    println!(
        "  no-op deploy   ferry {:>7.2} s ({noop_calls} API calls for {n} services: identity, lock, one page of records per 10 services, one ListStacks page per 100 stacks (the drift check), release (read, delete); target <= 1.5 s)   build.sh loop {:>7.2} s   ratio {:.0}x faster (target >= 20x)",
        s(noop),
        s(loop_noop),
        s(loop_noop) / s(noop)
    );
}

struct Stop(Emulator);
impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.down();
    }
}

/// The AWS CLI: on PATH, or installed once into the emulator's venv.
fn aws_cli(emu: &Emulator) -> PathBuf {
    if Command::new("aws")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return PathBuf::from("aws");
    }
    // A venv of its own beside the emulator's: the emulator's is shared by every repository,
    // and awscli's pins of botocore and PyYAML must not change what moto runs on.
    let venv = emu.installs().join("bench-awscli");
    let bin = venv.join("bin");
    if !bin.join("aws").exists() {
        eprintln!(
            "bench: installing awscli into {} (the reference of this benchmark)",
            venv.display()
        );
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        let ok = made
            && Command::new(bin.join("pip"))
                .args(["install", "--quiet", "awscli"])
                .status()
                .unwrap()
                .success();
        assert!(ok, "installing awscli into {} failed", venv.display());
    }
    bin.join("aws")
}

fn generate(repo: &Path, n: usize) {
    std::fs::create_dir_all(repo).unwrap();
    std::fs::write(
        repo.join("ferry.toml"),
        "[project]\nname = \"bench\"\nstack-name = \"{project}-{service}-{stage}\"\n\n[stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n",
    )
    .unwrap();
    for i in 0..n {
        let dir = repo.join(format!("services/s{i:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("t.yaml"), "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueUrl:\n    Value: !Ref Q\n").unwrap();
    }
    let git = |args: &[&str]| {
        assert!(
            Command::new("git")
                .args(args)
                .current_dir(repo)
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        )
    };
    git(&["init", "--quiet"]);
    git(&["-c", "user.name=b", "-c", "user.email=b@b", "add", "-A"]);
    git(&[
        "-c",
        "user.name=b",
        "-c",
        "user.email=b@b",
        "commit",
        "--quiet",
        "-m",
        "services",
    ]);
}
