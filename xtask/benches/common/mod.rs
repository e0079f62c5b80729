//! What the benchmarks that drive the binary against a dedicated local emulator share.

#![allow(dead_code, reason = "each benchmark uses what it needs")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferry_local::Emulator;

/// The service count from the command line (`-- N`), else `default`.
pub fn count(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .find_map(|a| a.parse().ok())
        .unwrap_or(default)
}

/// A dedicated emulator with its state in `dir`, stopped when dropped.
pub struct LocalAws {
    pub emu: Emulator,
    pub state: PathBuf,
    pub endpoint: String,
}

impl LocalAws {
    pub fn start(dir: &Path) -> LocalAws {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let state = dir.join("emulator");
        let emu = Emulator::for_repository(root).with_state_dir(&state);
        emu.ensure_installed(|s| eprintln!("bench: {s}")).unwrap();
        let (running, _) = emu.up(0).unwrap();
        LocalAws {
            emu,
            state,
            endpoint: running.endpoint(),
        }
    }

    /// Requests the emulator answered so far (200 or 400), from its log.
    pub fn requests(&self) -> usize {
        std::fs::read_to_string(self.emu.log_path())
            .map(|t| {
                t.lines()
                    .filter(|l| l.contains("\" 200 ") || l.contains("\" 400 "))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The binary on `repo` with `--local` against this emulator, quiet, with nothing of the
    /// caller's AWS or CI setup.
    pub fn ferry(&self, repo: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.args(["--root", repo.to_str().unwrap(), "--local"])
            .args(args)
            .env("FERRY_LOCAL_DIR", &self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for v in [
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "CI",
            "AWS_ENDPOINT_URL",
            "FERRY_BATCH_ID",
            "GITHUB_ACTIONS",
            "CODEBUILD_BUILD_ID",
        ] {
            c.env_remove(v);
        }
        c
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        let _ = self.emu.down();
    }
}

pub fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.name=b", "-c", "user.email=b@b"])
        .args(args)
        .current_dir(repo)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?} failed");
}

/// Makes `repo` a git repository whose one commit holds every file in it.
pub fn commit_all(repo: &Path, message: &str) {
    git(repo, &["init", "--quiet"]);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "--quiet", "-m", message]);
}

/// Runs a Python script with the emulator's own venv (boto3 is there), the endpoint as its
/// first argument; gives its standard output.
pub fn python(aws: &LocalAws, script: &str) -> String {
    let out = Command::new(aws.emu.venv().join("bin/python"))
        .args(["-c", script, &aws.endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
