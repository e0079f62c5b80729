#![doc = include_str!("../README.md")]
//! Helpers for Ferry's tests, never for production code.
//!
//! - [`TestRepo`]: a real git repository in a temporary folder, with scripted edits and commits.
//! - [`moto`]: one local AWS emulator per test binary, started on first use on a free loopback
//!   port, stopped when the test binary exits (however it exits). Tests that share it use unique
//!   resource names.
//! - [`proxy`]: a scripted HTTP proxy in front of it, for faults the emulator does not make
//!   (rewritten answers, HTTP 500, HTML pages, delays, dropped connections).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub mod proxy;

use ferry_local::{AttachedServer, Emulator};
use git2::{IndexAddOption, Oid, Repository, Signature};

/// The Ferry workspace root (where `Cargo.toml` and `ferry.toml` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// Keeps the emulator's installation where this process has it when `c` runs with a `HOME` of
/// its own (a test's folder, to keep the caller's files out): the installation is found from
/// `HOME`, and a test must not install the emulator again under its folder.
pub fn keep_installation(c: &mut std::process::Command) -> &mut std::process::Command {
    if let Some(cache) = ferry_local::user_cache() {
        c.env("FERRY_CACHE_DIR", cache);
    }
    c
}

/// The emulator shared by this test binary. Installs the pinned moto on first use if
/// `cargo xtask test` has not already done so.
pub fn moto() -> &'static AttachedServer {
    static SERVER: OnceLock<AttachedServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let emu = Emulator::for_repository(&workspace_root());
        emu.ensure_installed(|step| eprintln!("test support: {step}"))
            .unwrap_or_else(|e| panic!("cannot install the local AWS emulator for tests: {e}"));
        emu.spawn_attached()
            .unwrap_or_else(|e| panic!("cannot start the local AWS emulator for tests: {e}"))
    })
}

/// Stops the detached emulator whose state lives in this folder (the `FERRY_LOCAL_DIR` a test or
/// benchmark gave the binary) when dropped, however the test or benchmark ends.
pub struct StopEmulatorOnDrop(pub PathBuf);

impl Drop for StopEmulatorOnDrop {
    fn drop(&mut self) {
        let _ = Emulator::for_repository(&workspace_root())
            .with_state_dir(&self.0)
            .down();
    }
}

/// Runs the git command in `dir` and returns its standard output; panics with git's message
/// when it fails. Submodules from local folders are allowed (`git submodule add /tmp/lib …`
/// needs `protocol.file.allow`), and commits get a test identity.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "protocol.file.allow=always",
            "-c",
            "user.name=Ferry Test",
            "-c",
        ])
        .arg("user.email=test@ferry.invalid")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git prints UTF-8")
}

/// A git repository in a temporary folder, deleted on drop.
pub struct TestRepo {
    dir: tempfile::TempDir,
    pub repo: Repository,
    commits: std::cell::Cell<i64>,
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRepo {
    pub fn new() -> Self {
        Self::with_dir(tempfile::tempdir().expect("temporary folder"))
    }

    /// A repository in a new folder under `parent` (created if missing).
    pub fn new_in(parent: &Path) -> Self {
        fs::create_dir_all(parent).expect("parent folder");
        Self::with_dir(tempfile::tempdir_in(parent).expect("temporary folder"))
    }

    fn with_dir(dir: tempfile::TempDir) -> Self {
        let repo = Repository::init(dir.path()).expect("git init");
        {
            let mut cfg = repo.config().expect("repository config");
            cfg.set_str("user.name", "Ferry Test").unwrap();
            cfg.set_str("user.email", "test@ferry.invalid").unwrap();
        }
        TestRepo {
            dir,
            repo,
            commits: std::cell::Cell::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders), relative to the repository root.
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().expect("has a parent")).unwrap();
        fs::write(p, content).unwrap();
        self
    }

    /// Removes a file or a whole folder.
    pub fn remove(&self, rel: &str) -> &Self {
        let p = self.path().join(rel);
        if p.is_dir() {
            fs::remove_dir_all(p).unwrap()
        } else {
            fs::remove_file(p).unwrap()
        }
        self
    }

    pub fn rename(&self, from: &str, to: &str) -> &Self {
        let to_path = self.path().join(to);
        fs::create_dir_all(to_path.parent().expect("has a parent")).unwrap();
        fs::rename(self.path().join(from), to_path).unwrap();
        self
    }

    /// Stages every change (additions, edits, deletions) and commits it. Commit times are fixed
    /// (one minute apart from a fixed epoch), so the same script gives the same commit ids.
    pub fn commit(&self, message: &str) -> Oid {
        let mut index = self.repo.index().unwrap();
        index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree_id = index.write_tree().unwrap();
        let tree = self.repo.find_tree(tree_id).unwrap();
        let n = self.commits.get();
        self.commits.set(n + 1);
        let when = git2::Time::new(1_700_000_000 + 60 * n, 0);
        let sig = Signature::new("Ferry Test", "test@ferry.invalid", &when).unwrap();
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap()
    }

    pub fn head(&self) -> Oid {
        self.repo.head().unwrap().peel_to_commit().unwrap().id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_record_additions_edits_and_deletions() {
        let r = TestRepo::new();
        r.write("a.txt", "1").write("dir/b.txt", "2");
        let first = r.commit("first");
        r.write("a.txt", "changed").remove("dir");
        let second = r.commit("second");
        assert_ne!(first, second);
        let tree = r.repo.find_commit(second).unwrap().tree().unwrap();
        assert!(tree.get_path(Path::new("a.txt")).is_ok());
        assert!(tree.get_path(Path::new("dir/b.txt")).is_err());
        assert_eq!(
            r.repo.find_commit(second).unwrap().parent_id(0).unwrap(),
            first
        );
    }

    #[test]
    fn the_shared_emulator_answers_on_loopback() {
        let server = moto();
        assert!(server.endpoint().starts_with("http://127.0.0.1:"));
        assert!(ferry_local::answers(server.port));
        // The same server for the whole binary.
        assert_eq!(moto().port, server.port);
    }
}
