//! Serverless benchmark, in one run, on generated Serverless Framework services (default 20, one
//! Python function each), compiled by the pinned `osls` CLI that the example uses (installed once
//! under `target/ferry/bench/serverless` with `npm ci`):
//!
//! - first package: Ferry compiling every service for a stage as a deploy does
//!   (`ferry_serverless::compile`: the framework's `package`, then Ferry's re-zip and rewrite),
//!   at most one per core at once, against a loop of the framework's own `package` over the same
//!   services; target ≥ 1.5× on 2 cores;
//! - nothing changed: the same again. Ferry reuses each compile under the key of its inputs (in a
//!   deploy: the git tree ids of the service's folder and inputs, the stage, the region, the
//!   parameters); the framework compiles every service again. Target ≥ 20×.
//!
//! - no-op deploy of the mixed example (CloudFormation, SAM and Serverless services), deployed
//!   once to a dedicated local emulator: the wall time of deploying it again with nothing
//!   changed; target ≤ 1 s.
//!
//! Run: `cargo bench -p xtask --bench serverless` (or `cargo xtask bench serverless`); `-- N` for
//! another number of services.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let root = workspace.join("target/ferry/bench/serverless");
    generate(&workspace, &root, n);
    let ws = Arc::new(ferry_manifest::load(&root).unwrap_or_else(|e| panic!("{e}")));
    let cli = root.join("node_modules/.bin/serverless");

    let loop_first = framework_loop(&ws, &cli);
    let out = root.join("target/ferry/package");
    let _ = std::fs::remove_dir_all(&out);
    let cores = std::thread::available_parallelism().map_or(2, |c| c.get());
    let (ferry_first, reused_first) = ferry_compile(&ws, &out, cores);
    let (ferry_noop, reused_noop) = ferry_compile(&ws, &out, cores);
    let loop_noop = framework_loop(&ws, &cli);
    assert_eq!(reused_first, 0, "a first compile reuses nothing");
    assert_eq!(reused_noop, n, "nothing changed: every compile is reused");

    let noop_deploy = example_noop_deploy(&workspace);

    let s = |d: Duration| d.as_secs_f64();
    println!("serverless benchmark: {n} Serverless Framework services, osls 4.3.1, {cores} cores");
    println!(
        "  first package       Ferry {:>7.2} s   framework loop {:>7.2} s   ratio {:>6.2} (target >= 1.5)",
        s(ferry_first),
        s(loop_first),
        s(loop_first) / s(ferry_first)
    );
    println!(
        "  nothing changed     Ferry {:>7.1} ms  framework loop {:>7.2} s   ratio {:>6.0} (target >= 20)",
        s(ferry_noop) * 1e3,
        s(loop_noop),
        s(loop_noop) / s(ferry_noop)
    );
    println!(
        "  no-op deploy of the mixed example (6 services: cloudformation, sam, serverless)   {:>6.2} s (target <= 1)",
        s(noop_deploy)
    );
}

/// The example monorepo (its committed files) in a new repository, deployed to a dedicated
/// emulator, then deployed again with nothing changed: the second deploy's wall time.
fn example_noop_deploy(workspace: &Path) -> Duration {
    let tmp = tempfile::tempdir_in(workspace.join("target")).unwrap();
    let repo = tmp.path().join("example");
    std::fs::create_dir_all(&repo).unwrap();
    let files = Command::new("git")
        .args(["ls-files", "-z", "ferry.toml", "services"])
        .current_dir(workspace)
        .output()
        .unwrap();
    for rel in String::from_utf8(files.stdout)
        .unwrap()
        .split('\0')
        .filter(|s| !s.is_empty())
    {
        let to = repo.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(workspace.join(rel), to).unwrap();
    }
    std::fs::write(repo.join(".gitignore"), "target/\nnode_modules/\n").unwrap();
    for args in [
        &["init", "--quiet"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=b@ferry.invalid",
            "commit",
            "--quiet",
            "-m",
            "example",
        ],
    ] {
        assert!(
            Command::new("git")
                .args(args)
                .current_dir(&repo)
                .status()
                .unwrap()
                .success()
        );
    }
    let state = tmp.path().join("emulator");
    let _stop = ferry_test_support::StopEmulatorOnDrop(state.clone());
    let deploy = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.arg("--root")
            .arg(&repo)
            .args(["--local", "deploy", "dev"])
            .env("FERRY_LOCAL_DIR", &state)
            .env_remove("CI")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let t = Instant::now();
        assert!(c.status().unwrap().success(), "the example's deploy failed");
        t.elapsed()
    };
    let first = deploy();
    eprintln!(
        "bench: the example's first deploy took {:.1}s",
        first.as_secs_f64()
    );
    deploy()
}

/// A monorepo of `n` Serverless services sharing one pinned CLI (reused when it exists).
fn generate(workspace: &Path, root: &Path, n: usize) {
    std::fs::create_dir_all(root).unwrap();
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "ferry.toml",
        "[project]\nname = \"bench\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    let example = workspace.join("services/notifier");
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(example.join(f), root.join(f)).unwrap();
    }
    if !root.join("node_modules/.bin/serverless").is_file() {
        let t = Instant::now();
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
            .current_dir(root)
            .status()
            .expect("npm runs")
            .success();
        assert!(ok, "npm ci failed");
        eprintln!("bench: installed osls in {:.1}s", t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(root.join("services"));
    for i in 0..n {
        let dir = format!("services/svc-{i:02}");
        write(
            &format!("{dir}/serverless.yml"),
            &format!(
                "service: bench-svc-{i:02}\nframeworkVersion: \"4\"\nprovider:\n  name: aws\n  runtime: python3.12\npackage:\n  patterns:\n    - \"!**\"\n    - src/**\nfunctions:\n  handle:\n    handler: src/handler.handle\n    environment:\n      TABLE: ${{param:Table}}\n"
            ),
        );
        for f in 0..20 {
            write(
                &format!("{dir}/src/mod{f:02}.py"),
                &format!("VALUE = {i}\n\ndef f{f}(x):\n    return x * {f}\n"),
            );
        }
        write(
            &format!("{dir}/src/handler.py"),
            "def handle(event, context):\n    return {'ok': True}\n",
        );
        write(
            &format!("{dir}/service.toml"),
            "[service]\nkind = \"serverless\"\n\n[parameters]\nTable = \"orders\"\n",
        );
    }
}

/// The framework's own `package` of every service, one after another.
fn framework_loop(ws: &ferry_manifest::Workspace, cli: &Path) -> Duration {
    let out = tempfile::tempdir().unwrap();
    let t = Instant::now();
    for s in &ws.services {
        let ok = Command::new(cli)
            .args([
                "package",
                "--stage",
                "dev",
                "--region",
                "us-east-1",
                "--package",
            ])
            .arg(out.path().join(&s.name))
            .args(["--param", "Table=orders"])
            .current_dir(ws.root.join(&s.dir))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("SLS_TELEMETRY_DISABLED", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "{}: the framework's package failed", s.name);
    }
    t.elapsed()
}

/// Ferry's compile of every service, `cores` at once: (time, how many were reused).
fn ferry_compile(
    ws: &Arc<ferry_manifest::Workspace>,
    out: &Path,
    cores: usize,
) -> (Duration, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let reused = rt.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(cores));
        let mut jobs = tokio::task::JoinSet::new();
        for i in 0..ws.services.len() {
            let (ws, out, limit) = (ws.clone(), PathBuf::from(out), limit.clone());
            jobs.spawn(async move {
                let _permit = limit.acquire().await.unwrap();
                let service = &ws.services[i];
                let parameters: BTreeMap<String, String> =
                    [("Table".to_string(), "orders".to_string())].into();
                let env = [("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string())];
                let key = format!("bench-inputs-{i}");
                let c = ferry_serverless::Compile {
                    root: &ws.root,
                    project: &ws.project.name,
                    service,
                    stage_id: "dev",
                    region: "us-east-1",
                    parameters: &parameters,
                    env: &env,
                    out: &out,
                    input_key: Some(&key),
                    mask: &|s: &str| s.to_string(),
                    timeout: Duration::from_secs(300),
                    prebuilt: None,
                    on_step: &|_| {},
                };
                ferry_serverless::compile(&c)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .reused
            });
        }
        let mut reused = 0;
        while let Some(r) = jobs.join_next().await {
            reused += usize::from(r.unwrap());
        }
        reused
    });
    (t.elapsed(), reused)
}
