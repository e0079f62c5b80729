use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

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
/// topological order is an order in which the nodes can be deployed. Nodes are added in name
/// order, so comparing indices compares names, and a name is found by binary search over the
/// nodes (no second copy of every name).
#[derive(Debug, Clone)]
pub struct DepGraph {
    graph: DiGraph<String, ()>,
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

        let mut graph = DiGraph::with_capacity(declared.len(), 0);
        for name in declared.keys() {
            graph.add_node(name.clone());
        }
        let mut this = DepGraph { graph };
        for (i, (node, deps)) in declared.iter().enumerate() {
            for dep in deps {
                if dep == node {
                    errors.push(GraphError::SelfDependency { node: node.clone() });
                } else if let Some(from) = this.idx(dep) {
                    this.graph.add_edge(from, NodeIndex::new(i), ());
                } else {
                    errors.push(GraphError::UnknownDependency {
                        node: node.clone(),
                        dependency: dep.clone(),
                    });
                }
            }
        }

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

    /// Neighbours in name order (indices are in name order).
    fn sorted_neighbors(&self, node: NodeIndex, dir: Direction) -> Vec<NodeIndex> {
        let mut n: Vec<NodeIndex> = self.graph.neighbors_directed(node, dir).collect();
        n.sort_unstable();
        n.dedup();
        n
    }

    fn idx(&self, name: &str) -> Option<NodeIndex> {
        self.graph
            .raw_nodes()
            .binary_search_by(|n| n.weight.as_str().cmp(name))
            .ok()
            .map(NodeIndex::new)
    }

    /// All node names, sorted.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.graph.node_weights().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn contains(&self, name: &str) -> bool {
        self.idx(name).is_some()
    }

    /// Direct dependencies of `name`, sorted (empty for an unknown name).
    pub fn dependencies(&self, name: &str) -> Vec<&str> {
        self.direct(name, Direction::Incoming)
    }

    /// The position of `name` among the sorted names ([`DepGraph::nodes`]).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.idx(name).map(NodeIndex::index)
    }

    /// Direct dependencies of the node at `position` (see [`DepGraph::position`]), sorted.
    ///
    /// # Panics
    /// If there is no such position.
    pub fn dependencies_at(&self, position: usize) -> Vec<&str> {
        self.sorted_neighbors(NodeIndex::new(position), Direction::Incoming)
            .into_iter()
            .map(|m| self.graph[m].as_str())
            .collect()
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
        let depth = self.depths();
        let mut waves: Vec<Vec<String>> = Vec::new();
        // Nodes are indexed in name order, so each wave fills already sorted.
        for n in self.graph.node_indices() {
            let d = depth[n.index()];
            if waves.len() <= d {
                waves.resize_with(d + 1, Vec::new);
            }
            waves[d].push(self.graph[n].clone());
        }
        waves
    }

    /// Each node's wave, by position.
    fn depths(&self) -> Vec<usize> {
        let mut depth = vec![0usize; self.graph.node_count()];
        for n in self.topo_indices() {
            depth[n.index()] = self
                .graph
                .neighbors_directed(n, Direction::Incoming)
                .map(|m| depth[m.index()] + 1)
                .max()
                .unwrap_or(0);
        }
        depth
    }

    /// A topological order (dependencies first), ties broken by wave then name.
    pub fn topo_order(&self) -> Vec<String> {
        self.topo_positions()
            .into_iter()
            .map(|i| self.graph[NodeIndex::new(i)].clone())
            .collect()
    }

    /// [`DepGraph::topo_order`] as positions among the sorted names ([`DepGraph::nodes`]), for
    /// callers that keep something per node in name order.
    pub fn topo_positions(&self) -> Vec<usize> {
        let depth = self.depths();
        let mut order: Vec<usize> = (0..depth.len()).collect();
        order.sort_by_key(|&i| (depth[i], i));
        order
    }

    /// Kahn's algorithm with a name-ordered ready set: deterministic. Nodes are indexed in name
    /// order, so the smallest ready index is the alphabetically first ready node.
    fn topo_indices(&self) -> Vec<NodeIndex> {
        let mut indegree: Vec<usize> = self
            .graph
            .node_indices()
            .map(|n| {
                self.graph
                    .neighbors_directed(n, Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<NodeIndex>> = self
            .graph
            .node_indices()
            .filter(|n| indegree[n.index()] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some(Reverse(n)) = ready.pop() {
            order.push(n);
            for m in self.graph.neighbors_directed(n, Direction::Outgoing) {
                let d = &mut indegree[m.index()];
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(m));
                }
            }
        }
        order
    }

    /// The graph of `keep` in which a kept node depends on the kept nodes it reaches, directly
    /// or through nodes left out (so an order of it never runs a node before an indirect
    /// dependency). Unknown names are ignored.
    ///
    /// Each kept node gets the kept nodes it reaches first (walking through left-out nodes
    /// only): the kept nodes beyond those are reached through them, so the order is the same as
    /// with every reachable one, and a chain of n kept services costs n steps, not n² (a
    /// 2,000-service chain took seconds that way).
    pub fn reachability_subgraph(&self, keep: &BTreeSet<String>) -> DepGraph {
        let kept: Vec<bool> = self
            .graph
            .node_indices()
            .map(|i| keep.contains(&self.graph[i]))
            .collect();
        // Which root last walked a node: one array for every walk, nothing allocated per node.
        let mut seen: Vec<usize> = vec![usize::MAX; kept.len()];
        let mut nodes = Vec::new();
        for (walk, root) in self
            .graph
            .node_indices()
            .filter(|i| kept[i.index()])
            .enumerate()
        {
            let mut deps: Vec<String> = Vec::new();
            let mut stack: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(root, Direction::Incoming)
                .collect();
            while let Some(d) = stack.pop() {
                if std::mem::replace(&mut seen[d.index()], walk) == walk {
                    continue;
                }
                if kept[d.index()] {
                    deps.push(self.graph[d].clone());
                } else {
                    stack.extend(self.graph.neighbors_directed(d, Direction::Incoming));
                }
            }
            nodes.push((self.graph[root].clone(), deps));
        }
        DepGraph::new(nodes).expect("a subgraph of a valid graph is valid")
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

/// The stored form of a [`DepGraph`]: names sorted, edges as (dependency, dependent) positions.
/// Reading it back checks what [`DepGraph::new`] guarantees (unique sorted names, known ends,
/// no cycle) in linear time, without the work of reporting every problem.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredGraph {
    nodes: Vec<String>,
    edges: Vec<(u32, u32)>,
}

impl serde::Serialize for DepGraph {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Nodes are added in name order, so a node's index is its position among the names.
        let stored = StoredGraph {
            nodes: self.graph.node_weights().cloned().collect(),
            edges: self
                .graph
                .raw_edges()
                .iter()
                .map(|e| (e.source().index() as u32, e.target().index() as u32))
                .collect(),
        };
        stored.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for DepGraph {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let stored = StoredGraph::deserialize(d)?;
        if !stored.nodes.windows(2).all(|w| w[0] < w[1]) {
            return Err(D::Error::custom("graph nodes are not unique and sorted"));
        }
        let n = stored.nodes.len();
        let mut indegree = vec![0usize; n];
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(from, to) in &stored.edges {
            let (from, to) = (from as usize, to as usize);
            if from >= n || to >= n || from == to {
                return Err(D::Error::custom("graph edge out of range"));
            }
            indegree[to] += 1;
            out[from].push(to);
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut visited = 0;
        while let Some(i) = ready.pop() {
            visited += 1;
            for &j in &out[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.push(j);
                }
            }
        }
        if visited != n {
            return Err(D::Error::custom("graph has a cycle"));
        }
        let mut graph = DiGraph::with_capacity(n, stored.edges.len());
        for name in stored.nodes {
            graph.add_node(name);
        }
        for (from, to) in stored.edges {
            graph.add_edge(
                NodeIndex::new(from as usize),
                NodeIndex::new(to as usize),
                (),
            );
        }
        Ok(DepGraph { graph })
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
    fn a_reachability_subgraph_keeps_indirect_dependencies() {
        let g = graph(&[
            ("api", &["database"]),
            ("database", &[]),
            ("frontend", &["api"]),
        ])
        .unwrap();
        let keep = set(&["database", "frontend"]);
        // The induced subgraph loses frontend → api → database; reachability keeps it.
        assert_eq!(g.subgraph(&keep).waves(), [vec!["database", "frontend"]]);
        let r = g.reachability_subgraph(&keep);
        assert_eq!(r.waves(), [vec!["database"], vec!["frontend"]]);
        assert_eq!(r.dependencies("frontend"), ["database"]);
    }

    /// On random graphs and kept sets: the same reachability among kept nodes, order and waves
    /// as a graph that gives each kept node every kept node it reaches.
    #[test]
    fn a_reachability_subgraph_orders_as_the_full_closure_does() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..200 {
            let n = rng.usize(1..30);
            let names: Vec<String> = (0..n).map(|i| format!("s{i:02}")).collect();
            let nodes: Vec<(String, Vec<String>)> = (0..n)
                .map(|i| {
                    let mut deps: Vec<String> = (0..rng.usize(0..=3))
                        .filter(|_| i > 0)
                        .map(|_| names[rng.usize(0..i)].clone())
                        .collect();
                    deps.sort();
                    deps.dedup();
                    (names[i].clone(), deps)
                })
                .collect();
            let g = DepGraph::new(nodes).unwrap();
            let keep: BTreeSet<String> = names.iter().filter(|_| rng.bool()).cloned().collect();
            let full = DepGraph::new(
                keep.iter()
                    .map(|k| {
                        let deps: Vec<String> = g
                            .with_dependencies([k.as_str()])
                            .into_iter()
                            .filter(|d| d != k && keep.contains(d))
                            .collect();
                        (k.clone(), deps)
                    })
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            let r = g.reachability_subgraph(&keep);
            assert_eq!(r.topo_order(), full.topo_order());
            assert_eq!(r.waves(), full.waves());
            for k in &keep {
                assert_eq!(
                    r.with_dependencies([k.as_str()]),
                    full.with_dependencies([k.as_str()]),
                    "{k}"
                );
            }
        }
    }

    #[test]
    fn positions_name_the_same_nodes_as_names_do() {
        let g = graph(&[
            ("web", &["api", "auth"]),
            ("api", &["database", "events"]),
            ("auth", &[]),
            ("database", &[]),
            ("events", &["database"]),
        ])
        .unwrap();
        let names: Vec<&str> = g.nodes().collect();
        assert_eq!(names, ["api", "auth", "database", "events", "web"]);
        for (pos, name) in names.iter().enumerate() {
            assert_eq!(g.position(name), Some(pos));
            assert_eq!(g.dependencies_at(pos), g.dependencies(name));
        }
        assert_eq!(g.position("nope"), None);
        let by_position: Vec<&str> = g.topo_positions().into_iter().map(|p| names[p]).collect();
        assert_eq!(by_position, g.topo_order());
        assert_eq!(g.topo_order(), ["auth", "database", "events", "api", "web"]);
    }

    #[test]
    fn a_stored_graph_reads_back_the_same_and_a_broken_one_is_refused() {
        let g = graph(&[
            ("api", &["database", "events"]),
            ("events", &[]),
            ("database", &[]),
            ("frontend", &["api"]),
        ])
        .unwrap();
        let json = serde_json::to_string(&g).unwrap();
        let back: DepGraph = serde_json::from_str(&json).unwrap();
        assert_eq!(back.waves(), g.waves());
        assert_eq!(back.dependencies("api"), ["database", "events"]);
        assert_eq!(back.dependents("api"), ["frontend"]);
        assert_eq!(
            back.nodes().collect::<Vec<_>>(),
            g.nodes().collect::<Vec<_>>()
        );

        for (broken, why) in [
            (r#"{"nodes":["b","a"],"edges":[]}"#, "not unique and sorted"),
            (r#"{"nodes":["a","a"],"edges":[]}"#, "not unique and sorted"),
            (r#"{"nodes":["a","b"],"edges":[[0,2]]}"#, "out of range"),
            (r#"{"nodes":["a","b"],"edges":[[1,1]]}"#, "out of range"),
            (
                r#"{"nodes":["a","b","c"],"edges":[[0,1],[1,2],[2,0]]}"#,
                "cycle",
            ),
        ] {
            let err = serde_json::from_str::<DepGraph>(broken).unwrap_err();
            assert!(err.to_string().contains(why), "{broken}: {err}");
        }
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
