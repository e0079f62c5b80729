//! Acceptance harness overhead: 20 services whose test command is `true`, run in parallel by the
//! harness (outputs file, environment, process group, capture, masking, scheduling), against
//! spawning `true` directly. Prints the total time and the time per service beyond the command
//! itself, at two concurrency caps.
//!
//! Run: `cargo bench -p xtask --bench acceptance` (or `cargo xtask bench acceptance`); `-- N` for
//! another number of services.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use ferry_acceptance::{Harness, Status};
use ferry_credentials::Masker;
use ferry_graph::Cancel;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(
        root.join("ferry.toml"),
        "[project]\nname = \"bench\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    )
    .unwrap();
    for i in 0..n {
        let dir = root.join(format!("services/s{i:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.yaml"), "Resources: {}\n").unwrap();
        std::fs::write(
            dir.join("service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"true\"]\n",
        )
        .unwrap();
    }
    let ws = ferry_manifest::load(root).unwrap();
    let stage = ws.stage("dev").unwrap();
    let masker = Masker::new();
    masker.register("not-a-real-secret");
    let outputs: BTreeMap<String, BTreeMap<String, String>> = ws
        .services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                BTreeMap::from([("Url".to_string(), format!("https://{}.example", s.name))]),
            )
        })
        .collect();
    let selected: BTreeSet<String> = ws.services.iter().map(|s| s.name.clone()).collect();

    // The command itself: spawn `true` and wait, n times, best of 5 rounds.
    let bare = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                assert!(
                    std::process::Command::new("true")
                        .status()
                        .unwrap()
                        .success()
                );
            }
            t.elapsed() / n as u32
        })
        .min()
        .unwrap();

    // As `cargo xtask` runs it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let harness = Harness {
        ws: &ws,
        stage: &stage,
        env: vec![("AWS_REGION".into(), "us-east-1".into())],
        masker: &masker,
        work_dir: root.join("target/ferry/acceptance/dev"),
        builds: None,
    };
    println!(
        "acceptance harness overhead: {n} services, test command `true` (best of 5 runs each)"
    );
    println!("  `true` spawned directly: {:.2} ms per run", ms(bare));
    for cap in [4usize, n] {
        let mut best: Option<(Duration, Duration)> = None;
        for _ in 0..5 {
            let t = Instant::now();
            let report = rt.block_on(ferry_acceptance::run(
                &harness,
                &selected,
                &outputs,
                NonZeroUsize::new(cap),
                &Cancel::new(),
                &|_| {},
            ));
            let total = t.elapsed();
            assert!(report.outcomes.iter().all(|o| o.status == Status::Passed));
            let mean = report.outcomes.iter().map(|o| o.duration).sum::<Duration>() / n as u32;
            if best.is_none_or(|(b, _)| total < b) {
                best = Some((total, mean));
            }
        }
        let (total, mean) = best.unwrap();
        // Wall time a service takes in a run at this cap, beyond the command itself.
        let per_service = total.as_secs_f64() * cap.min(n) as f64 / n as f64;
        println!(
            "  cap {cap:>2}: total {:>7.1} ms; per service {:>5.1} ms of wall time x cap, {:>5.1} ms in the harness ({:>5.1} ms beyond the command)  (target <= 50 ms)",
            ms(total),
            per_service * 1e3,
            ms(mean),
            ms(mean.saturating_sub(bare))
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
