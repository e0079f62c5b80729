//! Change detection on real git repositories in temporary folders.

use std::collections::BTreeSet;
use std::process::Command;

use ferry_changes::{BaseUnavailable, ChangesError, Head, Repo};
use ferry_test_support::{TestRepo, git};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn seeded() -> (TestRepo, String) {
    let r = TestRepo::new();
    r.write("ferry.toml", "[project]\n")
        .write("services/a/service.toml", "[service]\n")
        .write("services/a/x.txt", "x\n")
        .write("services/b/service.toml", "[service]\n")
        .write("services/c/service.toml", "[service]\nname = \"gamma\"\n")
        .write("services/c/main.py", "print(1)\n")
        .write(".gitignore", "*.log\nbuild/\n");
    let base = r.commit("base").to_string();
    (r, base)
}

fn changed(r: &TestRepo, base: &str, head: Head) -> ferry_changes::ChangedPaths {
    Repo::open(r.path())
        .unwrap()
        .changed_paths(base, &head)
        .unwrap()
}

#[test]
fn a_rename_across_services_yields_both_paths() {
    let (r, base) = seeded();
    r.rename("services/a/x.txt", "services/b/x.txt");
    r.commit("move x");
    let c = changed(&r, &base, Head::Rev("HEAD".into()));
    assert_eq!(c.paths, set(&["services/a/x.txt", "services/b/x.txt"]));
    assert_eq!(c.deleted, set(&["services/a/x.txt"]));
}

#[test]
fn deleted_files_and_service_folders_count() {
    let (r, base) = seeded();
    r.remove("services/c");
    r.commit("drop c");
    let c = changed(&r, &base, Head::Rev("HEAD".into()));
    assert_eq!(
        c.paths,
        set(&["services/c/main.py", "services/c/service.toml"])
    );
    assert_eq!(c.deleted, c.paths);
    let repo = Repo::open(r.path()).unwrap();
    let base_oid = repo.resolve(&base).unwrap();
    assert_eq!(
        repo.file_at(base_oid, "services/c/service.toml").unwrap(),
        "[service]\nname = \"gamma\"\n"
    );
}

#[test]
fn the_working_tree_counts_staged_unstaged_and_untracked_but_not_ignored_files() {
    let (r, base) = seeded();
    r.write("services/a/x.txt", "committed\n");
    r.commit("edit a");
    r.write(
        "services/b/new/deep/file.txt",
        "untracked in a new folder\n",
    )
    .write("services/c/main.py", "print(2)\n")
    .write("services/a/debug.log", "ignored\n")
    .write("services/b/build/out.bin", "ignored folder\n");
    // Stage one edit through the index, leave the others unstaged / untracked.
    r.write("ferry.toml", "[project]\nname = \"x\"\n");
    let mut index = r.repo.index().unwrap();
    index.add_path(std::path::Path::new("ferry.toml")).unwrap();
    index.write().unwrap();

    let c = changed(&r, &base, Head::WorkingTree);
    assert_eq!(
        c.paths,
        set(&[
            "ferry.toml",
            "services/a/x.txt",
            "services/b/new/deep/file.txt",
            "services/c/main.py"
        ])
    );
    // The same base against the HEAD commit sees only what was committed.
    assert_eq!(
        changed(&r, &base, Head::Rev("HEAD".into())).paths,
        set(&["services/a/x.txt"])
    );
    assert!(Repo::open(r.path()).unwrap().is_dirty().unwrap());
}

#[test]
fn an_unchanged_head_has_no_changes_and_a_clean_tree_is_not_dirty() {
    let (r, base) = seeded();
    assert!(changed(&r, &base, Head::Rev(base.clone())).paths.is_empty());
    assert!(changed(&r, &base, Head::WorkingTree).paths.is_empty());
    assert!(!Repo::open(r.path()).unwrap().is_dirty().unwrap());
}

fn base_error(r: &Repo, base: &str, head: Head) -> BaseUnavailable {
    match r.changed_paths(base, &head) {
        Err(ChangesError::BaseUnavailable(b)) => b,
        other => panic!("expected an unavailable base, got {other:?}"),
    }
}

#[test]
fn an_unknown_base_is_not_found() {
    let (r, _) = seeded();
    let repo = Repo::open(r.path()).unwrap();
    let missing = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(
        base_error(&repo, missing, Head::WorkingTree),
        BaseUnavailable::NotFound {
            base: missing.into()
        }
    );
    let msg = base_error(&repo, "no-such-branch", Head::Rev("HEAD".into())).to_string();
    assert!(msg.contains("force push"), "{msg}");
}

// A base that names something of the repository other than a commit is said as such: it was
// "not in the repository (force push?)", which sent the reader looking for lost history.
#[test]
fn a_base_that_is_no_commit_says_what_it_is() {
    let (r, _) = seeded();
    r.write("services/a/x.txt", "2\n");
    r.commit("second");
    let repo = Repo::open(r.path()).unwrap();
    for (base, kind) in [
        ("HEAD^{tree}", "tree"),
        ("HEAD:services", "tree"),
        ("HEAD:services/a/x.txt", "blob"),
        ("HEAD~1..HEAD", "range"),
    ] {
        let e = base_error(&repo, base, Head::Rev("HEAD".into()));
        assert_eq!(
            e,
            BaseUnavailable::NotACommit {
                base: base.into(),
                kind: kind.into()
            }
        );
        assert_eq!(
            e.to_string(),
            format!("base `{base}` is a {kind}, not a commit: give a branch, a tag or a commit id")
        );
    }
}

#[test]
fn a_base_hidden_by_a_shallow_clone_says_how_to_deepen() {
    let (r, base) = seeded();
    r.write("services/a/x.txt", "2\n");
    r.commit("second");
    r.write("services/a/x.txt", "3\n");
    r.commit("third");
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", r.path().display());
    let status = Command::new("git")
        .args(["clone", "--quiet", "--depth", "1", &url])
        .arg(clone.path().join("c"))
        .status()
        .expect("git runs");
    assert!(status.success());
    let repo = Repo::open(&clone.path().join("c")).unwrap();
    assert!(repo.is_shallow());
    let err = base_error(&repo, &base, Head::Rev("HEAD".into()));
    assert_eq!(err, BaseUnavailable::Shallow { base: base.clone() });
    assert!(err.to_string().contains("git fetch --unshallow"), "{err}");
}

/// A partial clone (`git clone --filter=blob:none`, as CI checks out large repositories) has an
/// older commit's trees but not its blobs: they are read through git, which fetches them from
/// the promisor remote (before, an older lock file or manifest read as missing: "changed" for
/// every service, or "not in the commit").
#[test]
fn a_partial_clone_reads_an_older_commits_files_through_git() {
    let (r, base) = seeded();
    r.write("services/a/x.txt", "2\n");
    r.commit("second");
    git(r.path(), &["config", "uploadpack.allowFilter", "true"]);
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", r.path().display());
    let status = Command::new("git")
        .args(["clone", "--quiet", "--filter=blob:none", &url])
        .arg(clone.path().join("c"))
        .status()
        .expect("git runs");
    assert!(status.success());
    let repo = Repo::open(&clone.path().join("c")).unwrap();
    let base_oid = repo.resolve(&base).unwrap();
    // Left out of the clone (only HEAD's blobs were fetched): read through git.
    assert_eq!(
        repo.file_at(base_oid, "services/a/x.txt").as_deref(),
        Some("x\n")
    );
    use ferry_manifest::Source;
    let source = repo.source_at(&base).unwrap();
    assert_eq!(source.read("services/a/x.txt").unwrap(), "x\n");
}

#[test]
fn a_folder_without_git_is_no_repository() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ferry.toml"), "").unwrap();
    let err = Repo::open(dir.path()).unwrap_err();
    assert_eq!(
        err,
        BaseUnavailable::NoRepository {
            root: dir.path().to_path_buf()
        }
    );
    assert!(err.to_string().contains("CodePipeline"), "{err}");
}

#[test]
fn a_service_folder_inside_another_repository_does_not_borrow_its_history() {
    let (r, _) = seeded();
    let err = Repo::open(&r.path().join("services/a")).unwrap_err();
    let BaseUnavailable::NotRepositoryRoot { top, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        top.canonicalize().unwrap(),
        r.path().canonicalize().unwrap()
    );
    assert!(
        err.to_string()
            .contains("is a folder inside the git repository at"),
        "{err}"
    );
    // A folder that only lies under a repository, which tracks nothing in it (a source zip
    // unpacked in a home folder kept in git), is no repository.
    r.write("unpacked/zip/ferry.toml", "[project]\n");
    assert!(matches!(
        Repo::open(&r.path().join("unpacked/zip")),
        Err(BaseUnavailable::NoRepository { .. })
    ));
}

#[test]
fn a_base_in_a_repository_without_commits_says_so() {
    let r = TestRepo::new();
    r.write("ferry.toml", "[project]\n");
    let repo = Repo::open(r.path()).unwrap();
    let err = repo.resolve_base("HEAD").unwrap_err();
    assert!(
        matches!(err, BaseUnavailable::NoCommitYet { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("has no commit yet"), "{err}");
    // Whatever the unborn branch is called (libgit2 alone counts only `master` as new), and on
    // an orphan branch of a repository with commits.
    let r = TestRepo::new();
    git(r.path(), &["symbolic-ref", "HEAD", "refs/heads/main"]);
    r.write("ferry.toml", "[project]\n");
    let err = Repo::open(r.path())
        .unwrap()
        .resolve_base("HEAD")
        .unwrap_err();
    assert!(
        matches!(err, BaseUnavailable::NoCommitYet { .. }),
        "{err:?}"
    );
    let (r, _) = seeded();
    git(r.path(), &["checkout", "--quiet", "--orphan", "fresh"]);
    let err = Repo::open(r.path())
        .unwrap()
        .resolve_base("HEAD~1")
        .unwrap_err();
    assert!(
        matches!(err, BaseUnavailable::NoCommitYet { .. }),
        "{err:?}"
    );
    // A bad head names itself, with git's reason and no internal codes.
    let (r, _) = seeded();
    let err = Repo::open(r.path())
        .unwrap()
        .changed_paths("HEAD", &Head::Rev("nope".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("head `nope` is not a commit") && !err.contains("class="),
        "{err}"
    );
}

#[test]
fn a_repository_git_refuses_to_open_says_why() {
    let (r, _) = seeded();
    // A repository whose configuration git cannot read.
    std::fs::write(r.path().join(".git/config"), "[core\n  = broken\n").unwrap();
    let err = Repo::open(r.path()).unwrap_err();
    assert!(matches!(err, BaseUnavailable::Unopenable { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot be opened"), "{err}");
}

#[test]
fn a_base_on_a_diverged_history_is_not_an_ancestor() {
    let (r, base) = seeded();
    r.write("services/a/x.txt", "on main\n");
    let gone = r.commit("later rewritten");
    // Rewrite history: move HEAD back to base and commit something else (a force push).
    let base_commit = r
        .repo
        .find_commit(git2::Oid::from_str(&base).unwrap())
        .unwrap();
    r.repo
        .reset(base_commit.as_object(), git2::ResetType::Hard, None)
        .unwrap();
    r.write("services/b/y.txt", "rewritten\n");
    r.commit("rewritten");
    let repo = Repo::open(r.path()).unwrap();
    // HEAD does not descend from it: said where HEAD must (a move, a remove).
    assert!(matches!(
        repo.head_descends_from(&gone.to_string()),
        Err(ChangesError::BaseUnavailable(
            BaseUnavailable::NotAncestor { .. }
        ))
    ));
    // A diff still says exactly what differs between the two trees (before, the base was
    // unusable and every service of it deployed: after a squash merge, the same tree).
    let c = changed(&r, &gone.to_string(), Head::Rev("HEAD".into()));
    assert!(c.diverged);
    assert_eq!(c.paths, set(&["services/a/x.txt", "services/b/y.txt"]));
    let same = changed(&r, &r.head().to_string(), Head::Rev("HEAD".into()));
    assert!(!same.diverged && same.paths.is_empty());
}

/// A head older than its base (the base descends from it: a build of an old commit run again)
/// is told from diverged history: a deploy of it takes the service back.
#[test]
fn a_head_older_than_its_base_is_behind_it() {
    let (r, base) = seeded();
    r.write("services/a/x.txt", "newer\n");
    let newer = r.commit("newer").to_string();
    let repo = Repo::open(r.path()).unwrap();
    let err = base_error(&repo, &newer, Head::Rev(base.clone()));
    assert!(matches!(err, BaseUnavailable::HeadBehind { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "head `{base}` is older than base `{newer}`, which descends from it: a deploy takes the service back to older code (a build of an old commit run again?)"
        )
    );
    assert_eq!(
        serde_json::to_value(&err).unwrap(),
        serde_json::json!({"cause": "head-behind", "head": base})
    );
}

/// The working-tree scan gives the same answer through `git status` and through libgit2.
#[test]
fn git_cli_and_libgit2_working_tree_scans_agree() {
    let (r, base) = seeded();
    r.write("services/a/x.txt", "committed\n")
        .remove("services/c/main.py");
    r.commit("edit");
    r.write("services/b/new/file.txt", "untracked\n")
        .write("services/a/debug.log", "ignored\n")
        .remove("services/b/service.toml")
        .write("services/c/main.py", "back again\n");
    r.rename("ferry.toml", "root.toml");
    let cli = Repo::open(r.path())
        .unwrap()
        .changed_paths(&base, &Head::WorkingTree)
        .unwrap();
    let lib = Repo::open(r.path())
        .unwrap()
        .use_git_cli(false)
        .changed_paths(&base, &Head::WorkingTree)
        .unwrap();
    assert_eq!(cli, lib);
    assert_eq!(
        cli.paths,
        // main.py: deleted in a commit, back with other content in the working tree.
        set(&[
            "ferry.toml",
            "root.toml",
            "services/a/x.txt",
            "services/b/new/file.txt",
            "services/b/service.toml",
            "services/c/main.py"
        ])
    );
    assert_eq!(cli.deleted, set(&["ferry.toml", "services/b/service.toml"]));
}

/// The working-tree diff through `git status` and through libgit2, which must agree.
fn working_tree_diff(r: &TestRepo, base: &str) -> ferry_changes::ChangedPaths {
    let [cli, lib] = [true, false].map(|cli| {
        Repo::open(r.path())
            .unwrap()
            .use_git_cli(cli)
            .changed_paths(base, &Head::WorkingTree)
            .unwrap()
    });
    assert_eq!(cli, lib, "git status and libgit2 disagree");
    cli
}

/// An edit committed since the base and then put back in the working tree (edited back,
/// deleted again, restored as an untracked file) is no change: a reverted edit deploys nothing.
#[test]
fn a_committed_edit_put_back_in_the_working_tree_is_no_change() {
    let (r, base) = seeded();
    r.write("services/a/x.txt", "committed\n")
        .write("services/a/new.txt", "new\n")
        .write("services/c/main.py", "print(2)\n")
        .remove("services/b/service.toml");
    r.commit("edits");
    r.write("services/a/x.txt", "x\n")
        .remove("services/a/new.txt")
        .write("services/b/service.toml", "[service]\n")
        .write("services/c/main.py", "print(3)\n");
    let c = working_tree_diff(&r, &base);
    assert_eq!(c.paths, set(&["services/c/main.py"]));
    assert!(c.deleted.is_empty(), "{:?}", c.deleted);
    // A file git ignores but tracks (added with `git add -f`) since the base, edited again in
    // the working tree, is a change: only a path found as it was at the base is dropped.
    let (r, base) = seeded();
    r.write("services/a/keep.log", "tracked though ignored\n");
    let mut index = r.repo.index().unwrap();
    index
        .add_path(std::path::Path::new("services/a/keep.log"))
        .unwrap();
    index.write().unwrap();
    r.commit("force-add a log");
    r.write("services/a/keep.log", "edited\n");
    let c = working_tree_diff(&r, &base);
    assert_eq!(c.paths, set(&["services/a/keep.log"]));
    // A name that is not UTF-8, added since the base and deleted again: it cannot be looked
    // up by its (lossy) name, so it stays a change rather than be taken for the base's.
    let (r, base) = seeded();
    let latin1 = {
        use std::os::unix::ffi::OsStrExt as _;
        r.path()
            .join("services/a")
            .join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"))
    };
    std::fs::write(&latin1, "x\n").unwrap();
    r.commit("a latin-1 name");
    std::fs::remove_file(&latin1).unwrap();
    let c = changed(&r, &base, Head::WorkingTree);
    assert_eq!(c.paths, set(&["services/a/caf\u{FFFD}.txt"]));
    // A `\` is a character of a name, not a separator: a file named `services\b\x.txt` put
    // back takes nothing from a real change of `services/b/x.txt`.
    let (r, base) = seeded();
    r.write("services\\b\\x.txt", "1\n");
    let base = {
        let _ = base;
        r.commit("a name with backslashes").to_string()
    };
    r.write("services\\b\\x.txt", "2\n")
        .write("services/b/x.txt", "real\n");
    r.commit("both");
    r.write("services\\b\\x.txt", "1\n");
    let c = working_tree_diff(&r, &base);
    assert_eq!(c.paths, set(&["services/b/x.txt"]));
    // A mode put back is no change either; one left flipped is.
    let (r, base) = seeded();
    toggle_executable(&r.path().join("services/c/main.py"));
    toggle_executable(&r.path().join("services/a/x.txt"));
    r.commit("modes");
    toggle_executable(&r.path().join("services/c/main.py"));
    let c = changed(&r, &base, Head::WorkingTree);
    assert_eq!(c.paths, set(&["services/a/x.txt"]));
}

/// The tree of everything in the working tree that git does not ignore, as `git add -A` into
/// a fresh index would record it: what the working tree "is", to diff against.
fn working_tree_as_tree(r: &TestRepo) -> String {
    let index = r.path().join(".git/ferry-test-index");
    let _ = std::fs::remove_file(&index);
    for args in [&["add", "-A"][..], &["write-tree"]] {
        let out = Command::new("git")
            .args(args)
            .env("GIT_INDEX_FILE", &index)
            .current_dir(r.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args == ["write-tree"] {
            return String::from_utf8(out.stdout).unwrap().trim().to_string();
        }
    }
    unreachable!()
}

/// Over random histories and random working-tree edits (including edits put back as they were
/// at the base), the working-tree diff is `git diff --name-only` of the base against a tree of
/// the working tree, through `git status` and through libgit2 alike.
#[test]
fn the_working_tree_diff_matches_git_on_random_edits() {
    let mut rng = fastrand::Rng::with_seed(11);
    let r = TestRepo::new();
    let paths: Vec<String> = (0..24).map(|i| format!("d{}/f{i}.txt", i % 3)).collect();
    let edit = |rng: &mut fastrand::Rng, p: &str| {
        let full = r.path().join(p);
        let gone = full.symlink_metadata().is_err();
        match rng.u8(0..6) {
            0 if !gone => {
                r.remove(p);
            }
            1 if full.is_file() && !full.is_symlink() => toggle_executable(&full),
            // A symbolic link whose target is a text a file may hold: same blob, other mode.
            2 => {
                if !gone {
                    r.remove(p);
                }
                std::os::unix::fs::symlink(format!("{}\n", rng.u8(0..2)), &full).unwrap();
            }
            // A folder where the file was (or the file back).
            3 => {
                if !gone {
                    r.remove(p);
                }
                if rng.bool() {
                    r.write(&format!("{p}/inner.txt"), "0\n");
                }
            }
            // Few distinct texts, so that an edit often writes back what an older commit had.
            _ => {
                if full.is_dir() || full.is_symlink() {
                    r.remove(p);
                }
                r.write(p, &format!("{}\n", rng.u8(0..2)));
            }
        }
    };
    for p in &paths {
        r.write(p, "0\n");
    }
    let base = r.commit("base").to_string();
    for round in 0..12 {
        for _ in 0..rng.usize(1..6) {
            let p = paths[rng.usize(0..paths.len())].clone();
            edit(&mut rng, &p);
        }
        r.commit(&format!("c{round}"));
        for _ in 0..rng.usize(1..6) {
            let p = paths[rng.usize(0..paths.len())].clone();
            edit(&mut rng, &p);
        }
        let tree = working_tree_as_tree(&r);
        let out = Command::new("git")
            .args(["diff", "--name-only", "--no-renames", "-z", &base, &tree])
            .current_dir(r.path())
            .output()
            .unwrap();
        let theirs: BTreeSet<String> = out
            .stdout
            .split(|c| *c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        assert_eq!(working_tree_diff(&r, &base).paths, theirs, "round {round}");
    }
}

/// Flips a file's executable bits: its mode changes, its blob id does not.
fn toggle_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    perms.set_mode(perms.mode() ^ 0o111);
    std::fs::set_permissions(path, perms).unwrap();
}

#[test]
fn a_file_made_executable_or_a_symlink_with_the_same_text_is_changed() {
    let (r, base) = seeded();
    toggle_executable(&r.path().join("services/c/main.py"));
    // `services/a/x.txt` becomes a symlink whose target is its old text: the same blob id.
    r.remove("services/a/x.txt");
    std::os::unix::fs::symlink("x\n", r.path().join("services/a/x.txt")).unwrap();
    r.commit("modes");
    let c = changed(&r, &base, Head::Rev("HEAD".into()));
    assert_eq!(c.paths, set(&["services/a/x.txt", "services/c/main.py"]));
    assert!(c.deleted.is_empty(), "{:?}", c.deleted);
    // The working tree says the same before the commit.
    let (r, base) = seeded();
    toggle_executable(&r.path().join("services/c/main.py"));
    let c = changed(&r, &base, Head::WorkingTree);
    assert_eq!(c.paths, set(&["services/c/main.py"]));
}

/// The tree walk reports exactly what `git diff --name-only` reports, over random histories
/// with nested folders, additions, edits, deletions, mode flips and file/folder swaps.
#[test]
fn the_tree_walk_matches_git_diff_on_random_edits() {
    let mut rng = fastrand::Rng::with_seed(7);
    let r = TestRepo::new();
    let mut paths: Vec<String> = (0..60)
        .map(|i| format!("d{}/e{}/f{i}.txt", i % 4, i % 3))
        .collect();
    // Names that git orders between a file `e1` and a folder `e1/` (`.` and `-` sort before
    // `/`): the walk must still pair each name with itself.
    paths.extend((0..12).map(|i| format!("d{}/e{}.{i}", i % 4, i % 3)));
    paths.extend((0..12).map(|i| format!("d{}/e{}-{i}/g.txt", i % 4, i % 3)));
    for p in &paths {
        r.write(p, "0\n");
    }
    let mut commits = vec![r.commit("c0").to_string()];
    // Files where `p` needs folders go.
    let clear_ancestors = |p: &str| {
        let mut dir = p;
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if r.path().join(parent).is_file() {
                r.remove(parent);
            }
            dir = parent;
        }
    };
    for c in 1..16 {
        for _ in 0..rng.usize(1..8) {
            let p = &paths[rng.usize(0..paths.len())];
            let full = r.path().join(p);
            match rng.u8(0..5) {
                0 if full.exists() => {
                    r.remove(p);
                }
                // Only the mode: the blob id stays.
                4 if full.is_file() => toggle_executable(&full),
                1 => {
                    // A file where a folder was, or the reverse.
                    let dir = p.rsplit_once('/').unwrap().0;
                    if r.path().join(dir).is_dir() {
                        r.remove(dir);
                        r.write(dir, "now a file\n");
                    } else {
                        clear_ancestors(p);
                        r.write(p, "folder again\n");
                    }
                }
                _ => {
                    clear_ancestors(p);
                    r.write(p, &format!("{c}\n"));
                }
            }
        }
        commits.push(r.commit(&format!("c{c}")).to_string());
    }
    let repo = Repo::open(r.path()).unwrap();
    for _ in 0..60 {
        let (a, b) = (rng.usize(0..commits.len()), rng.usize(0..commits.len()));
        let (a, b) = (a.min(b), a.max(b));
        let ours = repo
            .changed_paths(&commits[a], &Head::Rev(commits[b].clone()))
            .unwrap();
        let out = Command::new("git")
            .args([
                "diff",
                "--name-only",
                "--no-renames",
                "-z",
                &commits[a],
                &commits[b],
            ])
            .current_dir(r.path())
            .output()
            .unwrap();
        let theirs: BTreeSet<String> = out
            .stdout
            .split(|c| *c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        assert_eq!(ours.paths, theirs, "c{a}..c{b}");
    }
}

fn inputs() -> Vec<ferry_changes::ServiceInputs> {
    vec![
        ferry_changes::ServiceInputs {
            name: "a".into(),
            dir: "services/a".into(),
            inputs: vec!["shared/lib/**".into()],
        },
        ferry_changes::ServiceInputs {
            name: "gamma".into(),
            dir: "services/c".into(),
            inputs: vec![],
        },
    ]
}

#[test]
fn a_clean_tree_is_named_by_its_commit_and_every_service_has_a_key_from_tree_ids() {
    let (r, base) = seeded();
    let repo = Repo::open(r.path()).unwrap();
    let s = repo.snapshot(&inputs(), &["ferry.toml".into()]).unwrap();
    assert_eq!(
        (s.id.as_str(), s.commit.as_str(), s.dirty),
        (base.as_str(), base.as_str(), false)
    );
    assert_eq!(s.input_keys.len(), 2);
    assert!(
        s.input_keys["a"].contains("services/a:"),
        "{:?}",
        s.input_keys
    );
    assert!(
        s.input_keys["a"].contains("shared/lib:none"),
        "{:?}",
        s.input_keys
    );

    // A commit that touches neither service keeps their keys; one that touches a's input
    // folder changes a's key only.
    r.write("services/b/new.txt", "b\n").commit("b only");
    let s2 = Repo::open(r.path())
        .unwrap()
        .snapshot(&inputs(), &["ferry.toml".into()])
        .unwrap();
    assert_ne!(s2.id, s.id);
    assert_eq!(s2.input_keys, s.input_keys);
    r.write("shared/lib/util.py", "U = 1\n").commit("shared");
    let s3 = Repo::open(r.path())
        .unwrap()
        .snapshot(&inputs(), &["ferry.toml".into()])
        .unwrap();
    assert_ne!(s3.input_keys["a"], s.input_keys["a"]);
    assert_eq!(s3.input_keys["gamma"], s.input_keys["gamma"]);
}

#[test]
fn a_dirty_tree_gets_its_own_id_per_content_and_dirty_services_lose_their_key() {
    let (r, base) = seeded();
    r.write("services/a/x.txt", "edited\n");
    let s = Repo::open(r.path())
        .unwrap()
        .snapshot(&inputs(), &[])
        .unwrap();
    assert!(s.dirty);
    assert!(s.id.starts_with(&format!("{base}-dirty-")), "{}", s.id);
    assert_eq!(s.id.len(), 40 + "-dirty-".len() + 12);
    assert_eq!(s.commit, base);
    assert!(!s.input_keys.contains_key("a"));
    assert!(s.input_keys.contains_key("gamma"));

    // Same edit, same id; another edit, another id; untracked files count.
    let again = Repo::open(r.path())
        .unwrap()
        .snapshot(&inputs(), &[])
        .unwrap();
    assert_eq!(again.id, s.id);
    r.write("services/a/x.txt", "edited twice\n");
    let other = Repo::open(r.path())
        .unwrap()
        .snapshot(&inputs(), &[])
        .unwrap();
    assert_ne!(other.id, s.id);
    r.write("services/a/x.txt", "x\n")
        .write("services/c/untracked.py", "u\n");
    let untracked = Repo::open(r.path())
        .unwrap()
        .snapshot(&inputs(), &[])
        .unwrap();
    assert!(untracked.dirty);
    assert!(untracked.input_keys.contains_key("a"));
    assert!(!untracked.input_keys.contains_key("gamma"));
    // Ignored files do not make a tree dirty.
    r.remove("services/c/untracked.py")
        .write("services/c/build/out.bin", "b");
    let ignored = Repo::open(r.path())
        .unwrap()
        .snapshot(&inputs(), &[])
        .unwrap();
    assert_eq!(ignored.id, base);
}

/// Links are never followed (one to `/dev/zero` or to a pipe would be read forever) and the
/// mode counts: a dirty tree's id is what git would store.
#[test]
fn a_dirty_tree_id_reads_no_link_target_and_counts_the_mode() {
    let (r, base) = seeded();
    let id = || {
        Repo::open(r.path())
            .unwrap()
            .snapshot(&inputs(), &[])
            .unwrap()
            .id
    };
    std::os::unix::fs::symlink("/dev/zero", r.path().join("services/a/zero")).unwrap();
    let fifo = r.path().join("services/a/pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::os::unix::fs::symlink(&fifo, r.path().join("services/a/to-pipe")).unwrap();
    let with_links = id();
    assert!(
        with_links.starts_with(&format!("{base}-dirty-")),
        "{with_links}"
    );
    assert_eq!(id(), with_links);
    toggle_executable(&r.path().join("services/a/x.txt"));
    assert_ne!(id(), with_links);
}

/// A workspace of 120 services chained by depends-on, and a folder without a manifest.
fn many_services() -> TestRepo {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"many\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for i in 0..120 {
        let deps = if i > 0 {
            format!("depends-on = [\"svc-{:03}\"]\n", i / 2)
        } else {
            String::new()
        };
        r.write(&format!("services/svc-{i:03}/t.yaml"), "Resources: {}\n")
            .write(
                &format!("services/svc-{i:03}/service.toml"),
                &format!("[service]\ntemplate = \"t.yaml\"\n{deps}"),
            );
    }
    r.write("services/notes/readme.md", "no manifest here\n");
    r.commit("many");
    r
}

#[test]
fn a_commit_and_the_working_tree_load_alike_with_every_problem_named() {
    let r = many_services();
    let repo = Repo::open(r.path()).unwrap();
    let from_commit = |rev: &str| {
        let source = repo.source_at(rev).unwrap();
        ferry_manifest::load_from(r.path(), &source, None)
    };
    let summary = |ws: &ferry_manifest::Workspace| -> Vec<(String, String, Vec<String>)> {
        ws.services
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.dir.clone(),
                    s.dependencies().into_iter().collect(),
                )
            })
            .collect()
    };
    let on_disk = ferry_manifest::load(r.path()).unwrap();
    let committed = from_commit("HEAD").unwrap();
    assert_eq!(on_disk.services.len(), 120);
    assert_eq!(summary(&on_disk), summary(&committed));
    assert_eq!(
        committed.services[119]
            .dependencies()
            .into_iter()
            .collect::<Vec<_>>(),
        ["svc-059"]
    );

    // Two broken manifests far apart are both reported, from the working tree and the commit.
    r.write("services/svc-003/service.toml", "[service]\ntemplate = 3\n")
        .write("services/svc-117/service.toml", "[service\n");
    r.commit("two broken manifests");
    let problems = |e: ferry_manifest::ManifestErrors| {
        e.0.iter()
            .map(|d| d.file.display().to_string())
            .collect::<Vec<_>>()
    };
    let on_disk = problems(ferry_manifest::load(r.path()).unwrap_err());
    let committed = problems(from_commit("HEAD").unwrap_err());
    assert_eq!(on_disk, committed);
    for broken in [
        "services/svc-003/service.toml",
        "services/svc-117/service.toml",
    ] {
        assert!(on_disk.iter().any(|f| f == broken), "{broken}: {on_disk:?}");
    }
}

/// A repository with services `a` (folder `services/a`, holding the submodule
/// `services/a/vendor`) and `b` (inputs below the submodule `libs/common`), and the library
/// both submodules check out. Returns (library, repository, the commit adding them).
fn with_submodules() -> (TestRepo, TestRepo, String) {
    let lib = TestRepo::new();
    lib.write("src/util.py", "V = 1\n").write("README", "lib\n");
    lib.commit("lib 1");
    let r = TestRepo::new();
    r.write("ferry.toml", "[project]\n")
        .write("services/a/service.toml", "[service]\n")
        .write("services/b/service.toml", "[service]\n");
    r.commit("services");
    let url = lib.path().to_str().unwrap();
    git(
        r.path(),
        &["submodule", "--quiet", "add", url, "services/a/vendor"],
    );
    git(
        r.path(),
        &["submodule", "--quiet", "add", url, "libs/common"],
    );
    git(r.path(), &["commit", "--quiet", "-m", "submodules"]);
    let added = git(r.path(), &["rev-parse", "HEAD"]).trim().to_string();
    (lib, r, added)
}

fn submodule_inputs() -> Vec<ferry_changes::ServiceInputs> {
    vec![
        ferry_changes::ServiceInputs {
            name: "a".into(),
            dir: "services/a".into(),
            inputs: vec![],
        },
        ferry_changes::ServiceInputs {
            name: "b".into(),
            dir: "services/b".into(),
            inputs: vec!["libs/common/src/**".into()],
        },
    ]
}

#[test]
fn a_submodule_moved_or_edited_is_a_change_that_stands_for_its_files() {
    let (lib, r, added) = with_submodules();
    let clean = Repo::open(r.path())
        .unwrap()
        .snapshot(&submodule_inputs(), &[])
        .unwrap();
    assert!(!clean.dirty);
    assert!(clean.submodules_not_checked_out.is_empty());
    assert!(
        clean.input_keys["b"].contains("libs/common/src:"),
        "{:?}",
        clean.input_keys
    );
    assert!(
        !clean.input_keys["b"].contains("libs/common/src:none"),
        "the key below a submodule is its commit: {:?}",
        clean.input_keys
    );

    // The library moves on and both checkouts follow: the working tree differs, though git
    // lists no file of it. Both git itself and libgit2 (the fallback) say so.
    lib.write("src/util.py", "V = 2\n");
    lib.commit("lib 2");
    for sub in ["services/a/vendor", "libs/common"] {
        git(&r.path().join(sub), &["pull", "--quiet", "origin", "HEAD"]);
    }
    for cli in [true, false] {
        let c = Repo::open(r.path())
            .unwrap()
            .use_git_cli(cli)
            .changed_paths("HEAD", &Head::WorkingTree)
            .unwrap();
        let both = set(&["libs/common", "services/a/vendor"]);
        assert_eq!(c.paths, both, "git cli: {cli}");
        assert_eq!(c.submodules, both, "git cli: {cli}");
        assert!(c.deleted.is_empty());
    }
    let moved = Repo::open(r.path())
        .unwrap()
        .snapshot(&submodule_inputs(), &[])
        .unwrap();
    assert!(moved.dirty);
    assert!(
        moved.input_keys.is_empty(),
        "both services' inputs moved: {:?}",
        moved.input_keys
    );

    // An edit inside a checked-out submodule counts, and another edit gives another id.
    std::fs::write(r.path().join("libs/common/src/util.py"), "V = 3\n").unwrap();
    let edited = Repo::open(r.path())
        .unwrap()
        .snapshot(&submodule_inputs(), &[])
        .unwrap();
    std::fs::write(r.path().join("libs/common/src/util.py"), "V = 4\n").unwrap();
    let edited_again = Repo::open(r.path())
        .unwrap()
        .snapshot(&submodule_inputs(), &[])
        .unwrap();
    assert_ne!(edited.id, moved.id);
    assert_ne!(edited_again.id, edited.id);
    git(&r.path().join("libs/common"), &["checkout", "--quiet", "."]);

    // Committed, the move is a change between commits, and it changes the key of `b`'s
    // inputs below it.
    git(r.path(), &["commit", "--quiet", "-am", "bump"]);
    let c = changed(&r, &added, Head::Rev("HEAD".into()));
    assert_eq!(c.paths, set(&["libs/common", "services/a/vendor"]));
    assert_eq!(c.submodules, c.paths);
    let bumped = Repo::open(r.path())
        .unwrap()
        .snapshot(&submodule_inputs(), &[])
        .unwrap();
    assert!(!bumped.dirty);
    assert_ne!(bumped.input_keys["b"], clean.input_keys["b"]);
    assert_ne!(bumped.input_keys["a"], clean.input_keys["a"]);
}

// A sparse checkout leaves committed files off the disk, and git sees no change: a package
// made there would lack them, under the commit's clean id (and be reused later in a full
// checkout). The snapshot names them for the services whose inputs hold them.
#[test]
fn files_a_sparse_checkout_leaves_out_are_named_for_the_services_they_belong_to() {
    let (r, _) = seeded();
    r.write("services/a/sub/m.py", "X = 1\n");
    r.commit("sub");
    git(
        r.path(),
        &[
            "sparse-checkout",
            "set",
            "--no-cone",
            "/*",
            "!/services/a/sub/",
        ],
    );
    assert!(!r.path().join("services/a/sub/m.py").exists());
    let repo = Repo::open(r.path()).unwrap();
    assert_eq!(
        repo.dirty_changes().unwrap().sparse_absent,
        ["services/a/sub/m.py".to_string()].into()
    );
    for git_cli in [true, false] {
        let repo = Repo::open(r.path()).unwrap().use_git_cli(git_cli);
        let s = repo.snapshot(&inputs(), &[]).unwrap();
        assert!(!s.dirty, "git sees no change");
        assert_eq!(
            s.sparse_absent,
            [("a".to_string(), vec!["services/a/sub/m.py".to_string()])].into()
        );
    }
    git(r.path(), &["sparse-checkout", "disable"]);
    let s = Repo::open(r.path())
        .unwrap()
        .snapshot(&inputs(), &[])
        .unwrap();
    assert!(s.sparse_absent.is_empty());
}

#[test]
fn a_submodule_that_is_not_checked_out_is_named_for_the_services_it_feeds() {
    let (_lib, r, _) = with_submodules();
    let clone = tempfile::tempdir().unwrap();
    git(
        clone.path(),
        &["clone", "--quiet", r.path().to_str().unwrap(), "c"],
    );
    let c = clone.path().join("c");
    let repo = Repo::open(&c).unwrap();
    assert_eq!(
        repo.submodules_not_checked_out().unwrap(),
        ["libs/common", "services/a/vendor"]
    );
    let s = repo.snapshot(&submodule_inputs(), &[]).unwrap();
    assert!(!s.dirty, "git sees no change in an empty submodule folder");
    assert_eq!(s.submodules_not_checked_out["a"], ["services/a/vendor"]);
    assert_eq!(s.submodules_not_checked_out["b"], ["libs/common"]);
    let only_a = repo.snapshot(&submodule_inputs()[..1], &[]).unwrap();
    assert_eq!(only_a.submodules_not_checked_out.len(), 1);

    git(
        &c,
        &["submodule", "--quiet", "update", "--init", "libs/common"],
    );
    let s = Repo::open(&c)
        .unwrap()
        .snapshot(&submodule_inputs(), &[])
        .unwrap();
    assert_eq!(
        s.submodules_not_checked_out.keys().collect::<Vec<_>>(),
        ["a"]
    );
}

#[test]
fn a_submodule_moved_by_a_commit_and_edited_since_stays_changed() {
    let (_lib, r, added) = with_submodules();
    let lib2 = TestRepo::new();
    lib2.write("src/util.py", "V = 9\n");
    lib2.commit("other history");
    // Moved by a commit to another library's commit, then edited in the working tree.
    let sub = r.path().join("libs/common");
    git(&sub, &["fetch", "--quiet", lib2.path().to_str().unwrap()]);
    git(&sub, &["checkout", "--quiet", "FETCH_HEAD"]);
    git(r.path(), &["commit", "--quiet", "-am", "bump"]);
    std::fs::write(sub.join("src/util.py"), "V = 10\n").unwrap();
    for cli in [true, false] {
        let c = Repo::open(r.path())
            .unwrap()
            .use_git_cli(cli)
            .changed_paths(&added, &Head::WorkingTree)
            .unwrap();
        assert!(c.paths.contains("libs/common"), "git cli {cli}: {c:?}");
        assert!(c.submodules.contains("libs/common"), "git cli {cli}: {c:?}");
    }
}

#[test]
fn a_submodule_inside_a_submodule_that_is_not_checked_out_is_named() {
    let inner = TestRepo::new();
    inner.write("x.txt", "x\n");
    inner.commit("inner");
    let outer = TestRepo::new();
    outer.write("README", "outer\n");
    outer.commit("outer");
    git(
        outer.path(),
        &[
            "submodule",
            "--quiet",
            "add",
            inner.path().to_str().unwrap(),
            "deps/inner",
        ],
    );
    git(outer.path(), &["commit", "--quiet", "-m", "inner"]);
    let r = TestRepo::new();
    r.write("ferry.toml", "[project]\n")
        .write("services/a/service.toml", "[service]\n");
    r.commit("services");
    git(
        r.path(),
        &[
            "submodule",
            "--quiet",
            "add",
            outer.path().to_str().unwrap(),
            "services/a/vendor",
        ],
    );
    git(r.path(), &["commit", "--quiet", "-m", "outer"]);
    let clone = tempfile::tempdir().unwrap();
    git(
        clone.path(),
        &["clone", "--quiet", r.path().to_str().unwrap(), "c"],
    );
    let c = clone.path().join("c");
    // Checked out, but not recursively: the inner folder is empty.
    git(&c, &["submodule", "--quiet", "update", "--init"]);
    assert_eq!(
        Repo::open(&c)
            .unwrap()
            .submodules_not_checked_out()
            .unwrap(),
        ["services/a/vendor/deps/inner"]
    );
    git(
        &c,
        &["submodule", "--quiet", "update", "--init", "--recursive"],
    );
    assert!(
        Repo::open(&c)
            .unwrap()
            .submodules_not_checked_out()
            .unwrap()
            .is_empty()
    );
}

/// A commit keeps a linked ferry.toml as its target's path: loading the commit says so, as the
/// working tree does, instead of parsing the path as TOML.
#[test]
fn a_linked_project_file_is_refused_in_a_commit_as_on_disk() {
    let r = many_services();
    std::fs::create_dir_all(r.path().join("config")).unwrap();
    std::fs::rename(
        r.path().join("ferry.toml"),
        r.path().join("config/ferry.toml"),
    )
    .unwrap();
    std::os::unix::fs::symlink("config/ferry.toml", r.path().join("ferry.toml")).unwrap();
    r.commit("linked");
    let repo = Repo::open(r.path()).unwrap();
    let source = repo.source_at("HEAD").unwrap();
    let from_commit = ferry_manifest::load_from(r.path(), &source, None).unwrap_err();
    let on_disk = ferry_manifest::load(r.path()).unwrap_err();
    let expected = "ferry.toml: is a symbolic link (to `config/ferry.toml`); ferry.toml must be a file at the repository root: replace the link with a copy";
    assert_eq!(from_commit.0.len(), 1);
    assert_eq!(from_commit.0[0].to_string(), expected);
    assert_eq!(on_disk.0[0].to_string(), expected);
}

#[test]
fn an_input_glob_into_an_ignored_folder_is_refused_from_the_working_tree() {
    // `vendor/` is on disk but ignored: no commit, clone or plan holds its files. A file forced
    // into an ignored folder is tracked, and taken.
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .write(".gitignore", "vendor/\nbuild/\n")
    .write("vendor/lib.py", "V = 1\n")
    .write("build/forced.py", "F = 1\n")
    .write("services/api/template.yaml", "Resources: {}\n")
    .write(
        "services/api/service.toml",
        "[service]\ntemplate = \"template.yaml\"\ninputs = [\"vendor/**\", \"build/forced.py\"]\n",
    );
    r.commit("first");
    git(r.path(), &["add", "--force", "build/forced.py"]);
    git(r.path(), &["commit", "--quiet", "-m", "forced"]);
    let err = ferry_changes::load_worktree(r.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("service.inputs: `vendor/**` matches nothing git tracks: `vendor` is ignored"),
        "{err}"
    );
    assert!(!err.contains("build/forced.py"), "{err}");
    // Once the file in it is tracked, the glob is taken.
    git(r.path(), &["add", "--force", "vendor/lib.py"]);
    ferry_changes::load_worktree(r.path()).unwrap();
    // The plain file-system load cannot know, and neither can a folder outside git.
    std::fs::remove_dir_all(r.path().join(".git")).unwrap();
    ferry_changes::load_worktree(r.path()).unwrap();
}

// `git update-index --assume-unchanged` / `--skip-worktree` hide an edit from `git status`,
// while packaging zips the file on disk: such an edit is a change, by git and by libgit2 alike
// (before, it deployed under the commit's clean id). A skip-worktree file a sparse checkout
// leaves off the disk is not.
#[test]
fn edits_hidden_by_assume_unchanged_or_skip_worktree_are_changes() {
    let (r, _) = seeded();
    r.write("services/c/settings.json", "{}\n")
        .write("services/c/sparse.txt", "s\n");
    r.commit("more");
    let dir = r.path();
    git(
        dir,
        &["update-index", "--assume-unchanged", "services/a/x.txt"],
    );
    git(
        dir,
        &[
            "update-index",
            "--skip-worktree",
            "services/c/settings.json",
        ],
    );
    git(
        dir,
        &["update-index", "--skip-worktree", "services/c/sparse.txt"],
    );
    git(
        dir,
        &["update-index", "--assume-unchanged", "services/c/main.py"],
    );
    // Flagged, but as HEAD has them: no change.
    for cli in [true, false] {
        let repo = Repo::open(dir).unwrap().use_git_cli(cli);
        assert!(repo.dirty_paths().unwrap().is_empty(), "cli: {cli}");
    }
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
    r.write("services/a/x.txt", "edited\n")
        .write("services/c/settings.json", "{\"debug\": true}\n")
        .remove("services/c/sparse.txt");
    // Git itself sees none of it.
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
    for cli in [true, false] {
        let repo = Repo::open(dir).unwrap().use_git_cli(cli);
        assert_eq!(
            repo.dirty_paths().unwrap(),
            set(&["services/a/x.txt", "services/c/settings.json"]),
            "cli: {cli}"
        );
    }
    // An assume-unchanged file deleted is a change.
    r.remove("services/c/main.py");
    for cli in [true, false] {
        let repo = Repo::open(dir).unwrap().use_git_cli(cli);
        assert!(
            repo.dirty_paths().unwrap().contains("services/c/main.py"),
            "cli: {cli}"
        );
    }
}

/// What a checkout of the repository writes under Ferry's output folder is refused wherever the
/// index holds it: also only at a merge conflict's stages (a checkout writes the conflicted
/// file), and under another letter case where `core.ignorecase` says the file system does not
/// tell them apart. Before, both went unseen.
#[test]
fn the_output_folder_check_sees_conflicted_and_differently_cased_entries() {
    use ferry_changes::{ProjectIndex, prepare_output_dir};
    let git = |r: &TestRepo, args: &[&str]| ferry_test_support::git(r.path(), args);

    // `target` added on two branches with other contents: after the merge, only at stages 2
    // and 3.
    let r = TestRepo::new();
    r.write("README.md", "x\n");
    r.commit("start");
    git(&r, &["checkout", "-q", "-b", "other"]);
    r.write("target", "theirs\n");
    git(&r, &["add", "-f", "target"]);
    git(&r, &["commit", "-q", "-m", "theirs"]);
    git(&r, &["checkout", "-q", "-"]);
    r.write("target", "ours\n");
    git(&r, &["add", "-f", "target"]);
    git(&r, &["commit", "-q", "-m", "ours"]);
    let merged = std::process::Command::new("git")
        .args(["-C", r.path().to_str().unwrap(), "merge", "-q", "other"])
        .output()
        .unwrap();
    assert!(!merged.status.success(), "a conflict");
    let index = ProjectIndex::open(r.path()).unwrap();
    assert!(index.holds("target"));
    let err = prepare_output_dir(r.path()).unwrap_err();
    assert!(
        err.to_string().contains("the repository commits target:"),
        "{err}"
    );

    // `Target/ferry/x` where the file system ignores case.
    let r = TestRepo::new();
    git(&r, &["config", "core.ignorecase", "true"]);
    r.write("Target/ferry/x", "x\n");
    git(&r, &["add", "-f", "Target/ferry/x"]);
    git(&r, &["commit", "-q", "-m", "cased"]);
    let index = ProjectIndex::open(r.path()).unwrap();
    assert_eq!(
        index.first_under("target/ferry").as_deref(),
        Some("Target/ferry/x")
    );
    assert!(prepare_output_dir(r.path()).is_err());
    // Where case counts, it is another folder.
    git(&r, &["config", "core.ignorecase", "false"]);
    let index = ProjectIndex::open(r.path()).unwrap();
    assert_eq!(index.first_under("target/ferry"), None);
}
