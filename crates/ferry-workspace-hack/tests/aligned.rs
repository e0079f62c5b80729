//! The builds this repository makes share every third-party dependency: `cargo xtask` (the
//! binary alone), the example's acceptance tests (`cargo test -p shop-acceptance`, which a
//! deploy with `--test` builds) and `cargo test --workspace` resolve each package they have in
//! common with the same features, so cargo compiles it once. Read from `cargo tree`, offline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

type Features = BTreeMap<String, BTreeSet<String>>;

/// Each third-party package of one build with the features it is compiled with (the union of
/// its host and target units).
fn features(args: &[&str], edges: &str) -> Features {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["tree", "--offline", "--locked", "--prefix", "none"])
        .args(["-e", edges, "-f", "{p} [{f}]"])
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = Features::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (Some(open), Some(close)) = (line.rfind('['), line.rfind(']')) else {
            continue;
        };
        let package = &line[..open];
        // Workspace members carry their path; only third-party packages are compared.
        if package.contains("(/") || package.trim().is_empty() {
            continue;
        }
        let name: Vec<&str> = package.split_whitespace().take(2).collect();
        all.entry(name.join(" ")).or_default().extend(
            line[open + 1..close]
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string),
        );
    }
    all
}

/// Where `build` resolves a shared package with other features than `all` does, one line each.
fn differences(build: &str, of: &Features, all: &Features) -> Vec<String> {
    of.iter()
        .filter_map(|(package, features)| {
            let whole = all.get(package)?;
            (features != whole).then(|| {
                let missing: Vec<&str> = whole.difference(features).map(String::as_str).collect();
                let extra: Vec<&str> = features.difference(whole).map(String::as_str).collect();
                format!(
                    "{package}: {build} lacks {missing:?}{}",
                    if extra.is_empty() {
                        String::new()
                    } else {
                        format!(" and has {extra:?} that the workspace build lacks")
                    }
                )
            })
        })
        .collect()
}

#[test]
fn the_binary_the_example_tests_and_the_workspace_tests_share_every_dependency_build() {
    let workspace = features(&["--workspace"], "normal,build,dev");
    let binary = features(&["-p", "xtask"], "normal,build");
    let example = features(&["-p", "shop-acceptance"], "normal,build,dev");
    // The three builds are what they claim to be: the SDK in each, the test tools only in the
    // workspace's.
    for build in [&workspace, &binary, &example] {
        assert!(build.keys().any(|p| p.starts_with("aws-smithy-runtime ")));
    }
    assert!(workspace.keys().any(|p| p.starts_with("aws-smithy-mocks ")));
    assert!(!binary.keys().any(|p| p.starts_with("aws-smithy-mocks ")));

    let mut wrong = differences("`cargo xtask`", &binary, &workspace);
    wrong.extend(differences(
        "`cargo test -p shop-acceptance`",
        &example,
        &workspace,
    ));
    assert!(
        wrong.is_empty(),
        "these dependencies would be compiled more than once; add the missing features to \
         crates/ferry-workspace-hack/Cargo.toml (a `[build-dependencies]` entry for a build \
         tool):\n{}",
        wrong.join("\n")
    );
}
