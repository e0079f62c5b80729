//! Scheduler benchmark: makespan of random DAGs against the lower bound.
//!
//! 200-node random DAGs, each node 30–600 s of simulated work in virtual time (tokio's paused
//! clock, so a run takes milliseconds). For caps 4, 8 and unbounded it prints, averaged over the
//! DAGs, makespan ÷ lower bound (max of the critical path and total work ÷ cap) for:
//! - Ferry's scheduler knowing the durations (e.g. from previous deploys),
//! - Ferry's scheduler without estimates (every node weighs 1),
//! - wave-by-wave scheduling (what Serverless Compose does): a wave starts when the previous one
//!   has finished entirely.
//!
//! Run: `cargo bench -p ferry-graph --bench scheduler` (or `cargo xtask bench scheduler`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::num::NonZeroUsize;
use std::time::Duration;

use ferry_graph::DepGraph;
use ferry_graph::schedule::{self, Cancel, ScheduleOptions};

const NODES: usize = 200;
const DAGS: u64 = 30;

struct Dag {
    graph: DepGraph,
    secs: BTreeMap<String, u64>,
}

fn random_dag(seed: u64) -> Dag {
    let mut rng = fastrand::Rng::with_seed(seed);
    let name = |i: usize| format!("s{i:03}");
    let mut nodes = Vec::new();
    let mut secs = BTreeMap::new();
    for i in 0..NODES {
        let k = if i == 0 { 0 } else { rng.usize(0..=3).min(i) };
        let mut deps: Vec<String> = (0..k).map(|_| name(rng.usize(0..i))).collect();
        deps.sort();
        deps.dedup();
        secs.insert(name(i), rng.u64(30..=600));
        nodes.push((name(i), deps));
    }
    Dag {
        graph: DepGraph::new(nodes).expect("acyclic by construction"),
        secs,
    }
}

fn lower_bound(d: &Dag, cap: Option<usize>) -> f64 {
    let critical = *schedule::remaining_path(&d.graph, &d.secs)
        .values()
        .max()
        .unwrap() as f64;
    let total: u64 = d.secs.values().sum();
    match cap {
        Some(c) => critical.max(total as f64 / c as f64),
        None => critical,
    }
}

/// Ferry's real scheduler on a paused clock; returns the makespan in virtual seconds.
fn ferry(d: &Dag, cap: Option<usize>, estimates: bool) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let options = ScheduleOptions {
            concurrency: cap.and_then(NonZeroUsize::new),
            estimates: if estimates {
                d.secs.clone()
            } else {
                BTreeMap::new()
            },
        };
        let t0 = tokio::time::Instant::now();
        let report = schedule::run(&d.graph, &options, &Cancel::new(), |n| {
            let s = d.secs[&n];
            async move {
                tokio::time::sleep(Duration::from_secs(s)).await;
                Ok::<(), ()>(())
            }
        })
        .await;
        assert!(report.all_succeeded());
        t0.elapsed().as_secs_f64()
    })
}

/// Wave by wave: within a wave, nodes by name fill free slots; the next wave waits for all.
fn waves(d: &Dag, cap: Option<usize>) -> f64 {
    let mut now = 0u64;
    for wave in d.graph.waves() {
        let slots = cap.unwrap_or(wave.len()).max(1);
        let mut free: BinaryHeap<Reverse<u64>> = (0..slots).map(|_| Reverse(now)).collect();
        let mut end = now;
        for n in &wave {
            let Reverse(start) = free.pop().unwrap();
            let finish = start + d.secs[n];
            end = end.max(finish);
            free.push(Reverse(finish));
        }
        now = end;
    }
    now as f64
}

fn main() {
    let dags: Vec<Dag> = (0..DAGS).map(random_dag).collect();
    println!("scheduler: {DAGS} random DAGs of {NODES} nodes, 30-600 s per node (virtual time)");
    println!("makespan / lower bound (mean, worst)");
    println!(
        "{:<10} {:>22} {:>22} {:>22}",
        "cap", "ferry (durations known)", "ferry (no estimates)", "wave by wave"
    );
    for cap in [Some(4), Some(8), None] {
        let mut rows = [Vec::new(), Vec::new(), Vec::new()];
        for d in &dags {
            let lb = lower_bound(d, cap);
            rows[0].push(ferry(d, cap, true) / lb);
            rows[1].push(ferry(d, cap, false) / lb);
            rows[2].push(waves(d, cap) / lb);
        }
        let cell = |v: &Vec<f64>| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let worst = v.iter().cloned().fold(0.0, f64::max);
            format!("{mean:.3} ({worst:.3})")
        };
        let label = cap.map_or("unbounded".to_string(), |c| c.to_string());
        println!(
            "{label:<10} {:>22} {:>22} {:>22}",
            cell(&rows[0]),
            cell(&rows[1]),
            cell(&rows[2])
        );
    }
}
