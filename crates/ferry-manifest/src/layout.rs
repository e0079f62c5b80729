//! Where Ferry writes in a repository: everything under [`OUTPUT_DIR`], by one type.

use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` whole or not at all: into a temporary file beside it (named for this
/// process, so two processes writing at once each write their own; the last rename wins), then
/// renamed into place, so a reader finds the old file or the new one, never half of one. The
/// temporary file goes when the write or the rename fails (a full disk, a folder where the file
/// goes). Its folder is made if missing.
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let name = path.file_name().map_or_else(
        || std::borrow::Cow::Borrowed("file"),
        |n| n.to_string_lossy(),
    );
    let tmp = dir
        .unwrap_or_else(|| Path::new("."))
        .join(format!(".{name}.{}.tmp", std::process::id()));
    let done = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Where Ferry writes what it makes in a repository (packages, outputs files, reports, the
/// emulator's state), relative to the repository root. Ferry keeps it out of `git status` (a
/// `.gitignore` inside it) and out of every dirty-tree decision.
pub const OUTPUT_DIR: &str = "target/ferry";

/// The paths under a repository's `target/ferry/`. Every path Ferry writes in a repository comes
/// from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of the repository at `root`.
    pub fn new(root: &Path) -> Layout {
        Layout {
            dir: root.join(OUTPUT_DIR),
        }
    }

    /// `target/ferry` itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Packages: `package/<id>/manifest.json`, `package/artifacts/<sha256>.zip`, ….
    pub fn package(&self) -> PathBuf {
        self.dir.join("package")
    }

    /// The outputs file a deploy writes: `outputs-<stage id>.json`.
    pub fn outputs_file(&self, stage_id: &str) -> PathBuf {
        self.dir.join(format!("outputs-{stage_id}.json"))
    }

    /// The outputs files acceptance tests read: `acceptance/<stage id>/<service>.outputs.json`.
    pub fn acceptance(&self, stage_id: &str) -> PathBuf {
        self.dir.join("acceptance").join(stage_id)
    }

    /// The JUnit report of a stage's acceptance tests: `reports/acceptance-<stage id>.xml`.
    /// The Markdown summary of a stage's last deploy: `reports/deploy-<stage id>.md`.
    pub fn deploy_summary(&self, stage_id: &str) -> PathBuf {
        self.dir
            .join("reports")
            .join(format!("deploy-{stage_id}.md"))
    }

    /// A review of a stage (`deploy --review`): `reports/review-<stage id>-<release>.<ext>`
    /// (`json` and `md`).
    pub fn review_report(&self, stage_id: &str, release: &str, ext: &str) -> PathBuf {
        self.dir
            .join("reports")
            .join(format!("review-{stage_id}-{release}.{ext}"))
    }

    pub fn acceptance_report(&self, stage_id: &str) -> PathBuf {
        self.dir
            .join("reports")
            .join(format!("acceptance-{stage_id}.xml"))
    }

    /// The JUnit report of a `run <script>`: `reports/script-<script>.xml`.
    pub fn script_report(&self, script: &str) -> PathBuf {
        self.dir
            .join("reports")
            .join(format!("script-{script}.xml"))
    }

    /// The local emulator's virtual environment, state file and log: `local/`.
    pub fn local(&self) -> PathBuf {
        self.dir.join("local")
    }
}

impl crate::Workspace {
    /// Where Ferry writes in this workspace's repository.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that cannot land (a folder where the file goes) leaves no temporary file behind
    /// (before, each plan in such a checkout left one in `.git/ferry/`).
    #[test]
    fn an_atomic_write_replaces_the_file_or_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new/cache.bin");
        write_atomic(&file, b"one").unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let folder = dir.path().join("taken");
        std::fs::create_dir_all(folder.join("inside")).unwrap();
        assert!(write_atomic(&folder, b"x").is_err());
        let names = |d: &Path| -> Vec<String> {
            std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let mut left = names(dir.path());
        left.sort();
        assert_eq!(left, ["new", "taken"]);
        assert_eq!(names(&dir.path().join("new")), ["cache.bin"]);
    }

    #[test]
    fn paths() {
        let l = Layout::new(Path::new("/repo"));
        assert_eq!(l.dir(), Path::new("/repo/target/ferry"));
        assert_eq!(l.package(), Path::new("/repo/target/ferry/package"));
        assert_eq!(
            l.outputs_file("feature-x"),
            Path::new("/repo/target/ferry/outputs-feature-x.json")
        );
        assert_eq!(
            l.acceptance("dev"),
            Path::new("/repo/target/ferry/acceptance/dev")
        );
        assert_eq!(
            l.acceptance_report("dev"),
            Path::new("/repo/target/ferry/reports/acceptance-dev.xml")
        );
        assert_eq!(l.local(), Path::new("/repo/target/ferry/local"));
    }
}
