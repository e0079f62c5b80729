//! Batch benchmark, against a dedicated local emulator, in one run: N services (default 50, in
//! waves of 10, each depending on one service of the wave before) deployed
//!
//! - on one machine: `deploy one` (the reference), and
//! - as a batch: every node of the generated build-graph a separate process of the binary
//!   (`batch node`), started as soon as the nodes it depends on succeeded, siblings at once (as
//!   CodeBuild runs a build-graph; here all on this machine's cores, where real CI nodes would
//!   each have their own), then `batch finish`;
//!
//! and the overhead of one node that finds its service up to date (lock join, records, plan,
//! record check; process start included), run one at a time: wall time and API calls, against a
//! no-op deploy of all N on one machine.
//!
//! Run: `cargo bench -p xtask --bench batch` (or `cargo xtask bench batch`); `-- N` for another
//! number of services.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{LocalAws, commit_all, count};

fn main() {
    let n = count(50);
    let tmp = tempfile::tempdir().unwrap();
    let aws = LocalAws::start(tmp.path());
    let repo = tmp.path().join("repo");
    generate(&repo, n);
    let timed = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = aws.ferry(&repo, args);
        c.envs(env.iter().copied());
        let (before, t) = (aws.requests(), Instant::now());
        let ok = c.status().unwrap().success();
        assert!(ok, "ferry {args:?} failed");
        (t.elapsed(), aws.requests() - before)
    };

    let (single, single_calls) = timed(&["deploy", "one"], &[]);
    let deps = graph(n);
    let t = Instant::now();
    let before = aws.requests();
    run_batch(&aws, &repo, &deps, "b1");
    timed(&["batch", "finish", "many"], &[("FERRY_BATCH_ID", "b1")]);
    let (batch, batch_calls) = (t.elapsed(), aws.requests() - before);

    // Overhead of a node with nothing to do, one at a time.
    let mut nodes: Vec<(Duration, usize)> = (0..n)
        .map(|i| {
            timed(
                &["batch", "node", "many", &name(i)],
                &[("FERRY_BATCH_ID", "b2")],
            )
        })
        .collect();
    timed(&["batch", "finish", "many"], &[("FERRY_BATCH_ID", "b2")]);
    nodes.sort();
    let (node, node_calls) = nodes[n / 2];
    let (noop, noop_calls) = timed(&["deploy", "one"], &[]);

    let s = |d: Duration| d.as_secs_f64();
    let waves = n.div_ceil(10);
    println!(
        "batch benchmark: {n} services in {waves} waves (one SQS queue each), local emulator, {} cores",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!(
        "  first deploy   one machine {:>6.2} s ({single_calls} API calls)   batch of {n} node processes + finish {:>6.2} s ({batch_calls} API calls)   ratio {:.2}",
        s(single),
        s(batch),
        s(batch) / s(single)
    );
    println!(
        "  per node, up to date (median of {n})   {:>6.3} s, {node_calls} API calls (lock join, records, stack outputs, plan)   one machine, all {n} up to date {:>6.2} s ({noop_calls} API calls) = {:.3} s per service",
        s(node),
        s(noop),
        s(noop) / n as f64
    );
}

fn name(i: usize) -> String {
    format!("s{i:03}")
}

/// Service i depends on service i-10.
fn graph(n: usize) -> BTreeMap<String, Vec<String>> {
    (0..n)
        .map(|i| {
            let deps = if i >= 10 { vec![name(i - 10)] } else { vec![] };
            (name(i), deps)
        })
        .collect()
}

/// Runs every node as CodeBuild runs a build-graph: each as soon as its dependencies
/// succeeded, all ready ones at once.
fn run_batch(aws: &LocalAws, repo: &Path, deps: &BTreeMap<String, Vec<String>>, batch: &str) {
    let mut done: Vec<String> = Vec::new();
    let mut running: Vec<(String, std::process::Child)> = Vec::new();
    while done.len() < deps.len() {
        for (s, d) in deps {
            let started = done.contains(s) || running.iter().any(|(r, _)| r == s);
            if !started && d.iter().all(|d| done.contains(d)) {
                let mut c = aws.ferry(repo, &["batch", "node", "many", s]);
                let log = std::fs::File::create(repo.join(format!("../{s}.log"))).unwrap();
                c.env("FERRY_BATCH_ID", batch).stderr(log);
                running.push((s.clone(), c.spawn().unwrap()));
            }
        }
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].1.try_wait().unwrap() {
                let (s, _) = running.remove(i);
                assert!(
                    status.success(),
                    "node {s} failed:\n{}",
                    std::fs::read_to_string(repo.join(format!("../{s}.log"))).unwrap_or_default()
                );
                done.push(s);
            } else {
                i += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn generate(repo: &Path, n: usize) {
    std::fs::create_dir_all(repo).unwrap();
    std::fs::write(
        repo.join("ferry.toml"),
        "[project]\nname = \"batchbench\"\nstack-name = \"{project}-{service}-{stage}\"\n\n\
         [stages.\"*\"]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n",
    )
    .unwrap();
    for (s, deps) in graph(n) {
        let dir = repo.join(format!("services/{s}"));
        std::fs::create_dir_all(&dir).unwrap();
        let depends = deps
            .iter()
            .map(|d| format!("\"{d}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            dir.join("service.toml"),
            format!("[service]\ntemplate = \"t.yaml\"\ndepends-on = [{depends}]\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("t.yaml"),
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueUrl:\n    Value: !Ref Q\n",
        )
        .unwrap();
    }
    commit_all(repo, "services");
}
