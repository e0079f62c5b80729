//! A repository's own xtask calls `ferry_cli::run` (not `main`) to add commands of its own: its
//! process is made non-dumpable all the same, so that the builds and scripts Ferry starts, which
//! run as the same user, cannot read the caller's credentials from `/proc/<pid>/environ`.
//! Alone in its file: the test process is the one whose state is read.

#[cfg(target_os = "linux")]
#[test]
fn run_makes_the_process_non_dumpable() {
    use rustix::process::{DumpableBehavior, dumpable_behavior};

    assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::Dumpable);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ferry.toml"),
        "[project]\nname = \"hard\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .unwrap();
    let global = ferry_cli::Global {
        root: Some(dir.path().to_path_buf()),
        local: false,
        verbose: 0,
    };
    let app = ferry_cli::App::ferry();
    // Any command: the process is hardened before it starts.
    let _ = ferry_cli::run(&app, &global, ferry_cli::Command::Validate);
    assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
}
