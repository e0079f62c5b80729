use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// A problem that keeps a set of nodes and dependencies from forming a valid DAG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    #[error("`{node}` is declared more than once")]
    DuplicateNode { node: String },
    #[error("`{node}` depends on `{dependency}`, which does not exist")]
    UnknownDependency { node: String, dependency: String },
    #[error("`{node}` depends on itself")]
    SelfDependency { node: String },
    /// `path` starts and ends with the same node: `["api", "events", "api"]`.
    #[error("dependency cycle: {}", .path.join(" -> "))]
    Cycle { path: Vec<String> },
}

/// A validated, acyclic dependency graph. Edges point from a dependency to its dependent, so a
/// topological order is an order in which the nodes can be deployed.
#[derive(Debug, Clone)]
pub struct DepGraph {
    graph: DiGraph<String, ()>,
    index: BTreeMap<String, NodeIndex>,
}

impl DepGraph {
    /// Builds a graph from `(node, dependencies)` pairs. Every problem is reported, not only the
    /// first: duplicates, unknown and self dependencies, then every cycle (one per strongly
    /// connected component, starting at its alphabetically first node).
    pub fn new<N, D, S>(nodes: N) -> Result<Self, Vec<GraphError>>
    where
        N: IntoIterator<Item = (S, D)>,
        D: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut errors = Vec::new();
        let mut declared: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (node, deps) in nodes {
            let node = node.into();
            let deps: BTreeSet<String> = deps.into_iter().map(Into::into).collect();
            match declared.entry(node) {
                std::collections::btree_map::Entry::Occupied(e) => {
                    errors.push(GraphError::DuplicateNode {
                        node: e.key().clone(),
                    })
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(deps);
                }
            }
        }

        let mut graph = DiGraph::new();
        let index: BTreeMap<String, NodeIndex> = declared
            .keys()
            .map(|name| (name.clone(), graph.add_node(name.clone())))
            .collect();
        for (node, deps) in &declared {
            for dep in deps {
                if dep == node {
                    errors.push(GraphError::SelfDependency { node: node.clone() });
                } else if let Some(&from) = index.get(dep) {
                    graph.add_edge(from, index[node], ());
                } else {
                    errors.push(GraphError::UnknownDependency {
                        node: node.clone(),
                        dependency: dep.clone(),
                    });
                }
            }
        }

        let this = DepGraph { graph, index };
        errors.extend(
            this.cycles()
                .into_iter()
                .map(|path| GraphError::Cycle { path }),
        );
        if errors.is_empty() {
            Ok(this)
        } else {
            Err(errors)
        }
    }

    /// One cycle per strongly connected component of more than one node, as a closed path that
    /// starts at the component's alphabetically first node and follows dependencies.
    fn cycles(&self) -> Vec<Vec<String>> {
        let mut cycles: Vec<Vec<String>> = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|scc| scc.len() > 1)
            .map(|scc| {
                let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
                let start = *scc
                    .iter()
                    .min_by_key(|&&n| &self.graph[n])
                    .expect("non-empty scc");
                self.cycle_through(start, &members)
            })
            .collect();
        cycles.sort();
        cycles
    }

    /// Shortest path from `start` back to itself along "depends on" edges inside `members`
    /// (breadth first, names in order, so the answer is deterministic).
    fn cycle_through(&self, start: NodeIndex, members: &BTreeSet<NodeIndex>) -> Vec<String> {
        let mut parent: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for next in self.sorted_neighbors(node, Direction::Incoming) {
                if !members.contains(&next) {
                    continue;
                }
                if next == start {
                    let mut path = vec![node];
                    while let Some(&p) = parent.get(path.last().expect("non-empty")) {
                        path.push(p);
                    }
                    path.reverse();
                    let mut names: Vec<String> =
                        path.iter().map(|&n| self.graph[n].clone()).collect();
                    names.push(self.graph[start].clone());
                    return names;
                }
                if next != start && !parent.contains_key(&next) {
                    parent.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        unreachable!("a strongly connected component of two or more nodes has a cycle")
    }

    fn sorted_neighbors(&self, node: NodeIndex, dir: Direction) -> Vec<NodeIndex> {
        let mut n: Vec<NodeIndex> = self.graph.neighbors_directed(node, dir).collect();
        n.sort_by(|a, b| self.graph[*a].cmp(&self.graph[*b]));
        n.dedup();
        n
    }

    fn idx(&self, name: &str) -> Option<NodeIndex> {
        self.index.get(name).copied()
    }

    /// All node names, sorted.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Direct dependencies of `name`, sorted (empty for an unknown name).
    pub fn dependencies(&self, name: &str) -> Vec<&str> {
        self.direct(name, Direction::Incoming)
    }

    /// Direct dependents of `name`, sorted (empty for an unknown name).
    pub fn dependents(&self, name: &str) -> Vec<&str> {
        self.direct(name, Direction::Outgoing)
    }

    fn direct(&self, name: &str, dir: Direction) -> Vec<&str> {
        self.idx(name)
            .map(|n| {
                self.sorted_neighbors(n, dir)
                    .into_iter()
                    .map(|m| self.graph[m].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `roots` and everything they transitively depend on. Unknown names are ignored.
    pub fn with_dependencies<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<String> {
        self.closure(roots, Direction::Incoming)
    }

    /// `roots` and everything that transitively depends on them. Unknown names are ignored.
    pub fn with_dependents<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<String> {
        self.closure(roots, Direction::Outgoing)
    }

    fn closure<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a str>,
        dir: Direction,
    ) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<NodeIndex> = roots.into_iter().filter_map(|r| self.idx(r)).collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(self.graph.neighbors_directed(n, dir));
            }
        }
        seen.into_iter().map(|n| self.graph[n].clone()).collect()
    }

    /// Waves: wave 0 holds the nodes without dependencies, wave k the nodes whose deepest
    /// dependency is in wave k-1. Names within a wave are sorted. For display; the scheduler does
    /// not wait for whole waves.
    pub fn waves(&self) -> Vec<Vec<String>> {
        let mut depth: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        for n in self.topo_indices() {
            let d = self
                .graph
                .neighbors_directed(n, Direction::Incoming)
                .map(|m| depth[&m] + 1)
                .max()
                .unwrap_or(0);
            depth.insert(n, d);
        }
        let mut waves: Vec<Vec<String>> = Vec::new();
        for (n, d) in depth {
            if waves.len() <= d {
                waves.resize_with(d + 1, Vec::new);
            }
            waves[d].push(self.graph[n].clone());
        }
        for w in &mut waves {
            w.sort();
        }
        waves
    }

    /// A topological order (dependencies first), ties broken by wave then name.
    pub fn topo_order(&self) -> Vec<String> {
        self.waves().into_iter().flatten().collect()
    }

    /// Kahn's algorithm with a name-ordered ready set: deterministic.
    fn topo_indices(&self) -> Vec<NodeIndex> {
        let mut indegree: BTreeMap<NodeIndex, usize> = self
            .graph
            .node_indices()
            .map(|n| {
                (
                    n,
                    self.graph
                        .neighbors_directed(n, Direction::Incoming)
                        .count(),
                )
            })
            .collect();
        let mut ready: BTreeSet<(&str, NodeIndex)> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(&n, _)| (self.graph[n].as_str(), n))
            .collect();
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some((_, n)) = ready.pop_first() {
            order.push(n);
            for m in self.graph.neighbors_directed(n, Direction::Outgoing) {
                let d = indegree.get_mut(&m).expect("known node");
                *d -= 1;
                if *d == 0 {
                    ready.insert((self.graph[m].as_str(), m));
                }
            }
        }
        order
    }

    /// The subgraph induced by `keep` (edges between kept nodes only). Unknown names are ignored.
    pub fn subgraph(&self, keep: &BTreeSet<String>) -> DepGraph {
        let nodes: Vec<(String, Vec<String>)> = keep
            .iter()
            .filter(|n| self.contains(n))
            .map(|n| {
                let deps = self
                    .dependencies(n)
                    .into_iter()
                    .filter(|d| keep.contains(*d))
                    .map(String::from)
                    .collect();
                (n.clone(), deps)
            })
            .collect();
        DepGraph::new(nodes).expect("a subgraph of a valid graph is valid")
    }
}

/// A graph from `(node, dependencies)` literals, for this crate's tests.
#[cfg(test)]
pub(crate) fn graph_of(edges: &[(&str, &[&str])]) -> Result<DepGraph, Vec<GraphError>> {
    DepGraph::new(
        edges
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::graph_of as graph;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cycle_is_reported_with_its_full_path_from_the_first_name() {
        let errors = graph(&[
            ("api", &["events"]),
            ("events", &["queue"]),
            ("queue", &["api"]),
            ("frontend", &["api"]),
        ])
        .unwrap_err();
        assert_eq!(
            errors,
            vec![GraphError::Cycle {
                path: vec!["api".into(), "events".into(), "queue".into(), "api".into()]
            }]
        );
        assert_eq!(
            errors[0].to_string(),
            "dependency cycle: api -> events -> queue -> api"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errors = graph(&[
            ("a", &["a", "ghost"]),
            ("b", &["c"]),
            ("c", &["b"]),
            ("d", &["e"]),
            ("e", &["d"]),
            ("a", &[]),
        ])
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "`a` is declared more than once",
                "`a` depends on itself",
                "`a` depends on `ghost`, which does not exist",
                "dependency cycle: b -> c -> b",
                "dependency cycle: d -> e -> d",
            ]
        );
    }

    #[test]
    fn closures_waves_and_order() {
        let g = graph(&[
            ("database", &[]),
            ("events", &[]),
            ("api", &["database", "events"]),
            ("frontend", &["api"]),
            ("worker", &["events"]),
        ])
        .unwrap();
        assert_eq!(
            g.with_dependencies(["frontend"]),
            set(&["api", "database", "events", "frontend"])
        );
        assert_eq!(
            g.with_dependents(["events"]),
            set(&["api", "events", "frontend", "worker"])
        );
        assert_eq!(g.dependencies("api"), ["database", "events"]);
        assert_eq!(g.dependents("events"), ["api", "worker"]);
        assert_eq!(
            g.waves(),
            vec![
                vec!["database", "events"],
                vec!["api", "worker"],
                vec!["frontend"]
            ]
        );
        assert_eq!(
            g.topo_order(),
            ["database", "events", "api", "worker", "frontend"]
        );
        let sub = g.subgraph(&set(&["api", "frontend", "events"]));
        assert_eq!(
            sub.waves(),
            vec![vec!["events"], vec!["api"], vec!["frontend"]]
        );
    }
}
