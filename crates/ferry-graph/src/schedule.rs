//! Runs async jobs over a DAG: a node starts the moment all its dependencies succeeded.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::DepGraph;

/// How to run a graph.
#[derive(Debug, Clone, Default)]
pub struct ScheduleOptions {
    /// At most this many jobs at once; `None` = no limit.
    pub concurrency: Option<NonZeroUsize>,
    /// Expected cost of each node (e.g. its last deploy in seconds); a missing node costs 1.
    /// Among ready nodes the one with the longest remaining path (its own cost plus the costliest
    /// chain of dependents) starts first; ties go by name.
    pub estimates: BTreeMap<String, u64>,
}

/// Set it to stop starting new nodes; running ones finish. Clones share one flag, so a task of
/// its own (a signal watcher) can cancel what another task runs.
#[derive(Debug, Default, Clone)]
pub struct Cancel(std::sync::Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What happened to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T, E> {
    Succeeded(T),
    Failed(E),
    /// Not started because `failed_dependency` (a direct or indirect dependency) failed.
    Skipped {
        failed_dependency: String,
    },
    /// Not started because the run was cancelled.
    Cancelled,
}

/// The result of a run.
#[derive(Debug)]
pub struct Report<T, E> {
    pub outcomes: BTreeMap<String, Outcome<T, E>>,
    /// Nodes in the order they were started.
    pub started: Vec<String>,
}

impl<T, E> Report<T, E> {
    /// True when every node succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.outcomes
            .values()
            .all(|o| matches!(o, Outcome::Succeeded(_)))
    }
}

/// Longest remaining path of every node: its estimate plus the costliest chain of dependents.
pub fn remaining_path(
    graph: &DepGraph,
    estimates: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for node in graph.topo_order().into_iter().rev() {
        let own = estimates.get(&node).copied().unwrap_or(1);
        let tail = graph
            .dependents(&node)
            .iter()
            .map(|d| out[*d])
            .max()
            .unwrap_or(0);
        out.insert(node, own + tail);
    }
    out
}

/// Runs `job` for every node of `graph`, each as soon as all its dependencies succeeded, at most
/// `options.concurrency` at once. A failed node's dependents are skipped (naming it) while
/// everything independent continues. Polls the jobs itself: any runtime (or none) works.
pub async fn run<T, E, F, Fut>(
    graph: &DepGraph,
    options: &ScheduleOptions,
    cancel: &Cancel,
    mut job: F,
) -> Report<T, E>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let priority = remaining_path(graph, &options.estimates);
    let cap = options.concurrency.map_or(usize::MAX, NonZeroUsize::get);
    let mut waiting: BTreeMap<&str, usize> = graph
        .nodes()
        .map(|n| (n, graph.dependencies(n).len()))
        .collect();
    let mut ready: BinaryHeap<(u64, Reverse<&str>)> = BinaryHeap::new();
    for (n, deps) in &waiting {
        if *deps == 0 {
            ready.push((priority[*n], Reverse(*n)));
        }
    }
    let mut outcomes: BTreeMap<String, Outcome<T, E>> = BTreeMap::new();
    let mut started = Vec::new();
    let mut running = FuturesUnordered::new();

    loop {
        while running.len() < cap && !cancel.is_cancelled() {
            let Some((_, Reverse(node))) = ready.pop() else {
                break;
            };
            started.push(node.to_string());
            let fut = job(node.to_string());
            running.push(async move { (node, fut.await) });
        }
        let Some((node, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(value) => {
                outcomes.insert(node.to_string(), Outcome::Succeeded(value));
                for dependent in graph.dependents(node) {
                    let left = waiting.get_mut(dependent).expect("known node");
                    *left -= 1;
                    if *left == 0 && !outcomes.contains_key(dependent) {
                        ready.push((priority[dependent], Reverse(dependent)));
                    }
                }
            }
            Err(e) => {
                outcomes.insert(node.to_string(), Outcome::Failed(e));
                for dependent in graph.with_dependents([node]) {
                    if dependent != node {
                        outcomes
                            .entry(dependent)
                            .or_insert_with(|| Outcome::Skipped {
                                failed_dependency: node.to_string(),
                            });
                    }
                }
            }
        }
    }
    for n in graph.nodes() {
        outcomes.entry(n.to_string()).or_insert(Outcome::Cancelled);
    }
    Report { outcomes, started }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use tokio::time::{Instant, sleep};

    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> DepGraph {
        crate::graph::graph_of(edges).expect("a valid test graph")
    }

    fn opts(cap: Option<usize>) -> ScheduleOptions {
        ScheduleOptions {
            concurrency: cap.and_then(NonZeroUsize::new),
            estimates: BTreeMap::new(),
        }
    }

    /// Runs with simulated durations (seconds of virtual time); returns start times and the report.
    async fn simulate(
        g: &DepGraph,
        o: &ScheduleOptions,
        cancel: &Cancel,
        durations: &[(&str, u64)],
        fail: &[&str],
    ) -> (BTreeMap<String, u64>, Report<(), String>, usize) {
        let t0 = Instant::now();
        let starts = RefCell::new(BTreeMap::new());
        let live = RefCell::new((0usize, 0usize));
        let report = run(g, o, cancel, |n| {
            let secs = durations
                .iter()
                .find(|(d, _)| *d == n)
                .map_or(1, |(_, s)| *s);
            let fails = fail.contains(&n.as_str());
            starts
                .borrow_mut()
                .insert(n.clone(), t0.elapsed().as_secs());
            let mut l = live.borrow_mut();
            l.0 += 1;
            l.1 = l.1.max(l.0);
            drop(l);
            let live = &live;
            async move {
                sleep(Duration::from_secs(secs)).await;
                live.borrow_mut().0 -= 1;
                if fails {
                    Err(format!("{n} broke"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let max_live = live.borrow().1;
        (starts.into_inner(), report, max_live)
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_starts_the_moment_its_own_dependencies_finish() {
        // a(1s) -> c ; b(10s) -> d. Wave scheduling would start c at 10s; eager starts it at 1s.
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &["a"]), ("d", &["b"])]);
        let (starts, report, _) =
            simulate(&g, &opts(None), &Cancel::new(), &[("b", 10)], &[]).await;
        assert_eq!(starts["c"], 1);
        assert_eq!(starts["d"], 10);
        assert!(report.all_succeeded());
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_is_respected() {
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &[]), ("d", &[]), ("e", &[])]);
        let (_, report, max_live) = simulate(&g, &opts(Some(2)), &Cancel::new(), &[], &[]).await;
        assert_eq!(max_live, 2);
        assert_eq!(report.started, ["a", "b", "c", "d", "e"], "ties go by name");
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_remaining_path_starts_first() {
        // One slot: `z-chain` heads a 3-node chain, so it goes first although `a-solo` sorts
        // first by name (names only break ties).
        let g = graph(&[
            ("a-solo", &[]),
            ("z-chain", &[]),
            ("z2", &["z-chain"]),
            ("z3", &["z2"]),
        ]);
        let (_, report, _) = simulate(&g, &opts(Some(1)), &Cancel::new(), &[], &[]).await;
        assert_eq!(report.started[0], "z-chain");
        let mut o = opts(Some(1));
        o.estimates.insert("a-solo".into(), 100);
        let (_, report, _) = simulate(&g, &o, &Cancel::new(), &[], &[]).await;
        assert_eq!(report.started[0], "a-solo", "estimates weigh the path");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_skips_only_its_dependents() {
        let g = graph(&[
            ("database", &[]),
            ("events", &[]),
            ("api", &["database", "events"]),
            ("frontend", &["api"]),
            ("worker", &["events"]),
        ]);
        let (_, report, _) = simulate(
            &g,
            &opts(None),
            &Cancel::new(),
            &[("events", 5)],
            &["database"],
        )
        .await;
        let o = &report.outcomes;
        assert_eq!(o["database"], Outcome::Failed("database broke".into()));
        assert_eq!(
            o["api"],
            Outcome::Skipped {
                failed_dependency: "database".into()
            }
        );
        assert_eq!(
            o["frontend"],
            Outcome::Skipped {
                failed_dependency: "database".into()
            }
        );
        assert_eq!(o["events"], Outcome::Succeeded(()));
        assert_eq!(
            o["worker"],
            Outcome::Succeeded(()),
            "independent work continues"
        );
        assert!(!report.all_succeeded());
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_lets_running_jobs_finish_and_starts_nothing_new() {
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &["a"]), ("d", &["b"])]);
        let cancel = Cancel::new();
        let t0 = Instant::now();
        let report = run(&g, &opts(None), &cancel, |n| {
            let cancel = &cancel;
            async move {
                let secs = if n == "a" { 1 } else { 3 };
                sleep(Duration::from_secs(secs)).await;
                if n == "a" {
                    cancel.cancel();
                }
                Ok::<_, ()>(t0.elapsed().as_secs())
            }
        })
        .await;
        assert_eq!(report.outcomes["a"], Outcome::Succeeded(1));
        assert_eq!(
            report.outcomes["b"],
            Outcome::Succeeded(3),
            "a running job finishes"
        );
        assert_eq!(report.outcomes["c"], Outcome::Cancelled);
        assert_eq!(report.outcomes["d"], Outcome::Cancelled);
        assert_eq!(report.started, ["a", "b"]);
    }
}
