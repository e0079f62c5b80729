//! Graph rendering: Mermaid, Graphviz DOT, JSON.

use serde::Serialize;

use crate::DepGraph;

/// `graph LR` with an edge from each dependency to its dependent. Node ids are positional
/// (`n0`, `n1`, …) with the name as label, so any name renders.
pub fn mermaid(g: &DepGraph) -> String {
    mermaid_with(g, &|n| n.to_string())
}

/// [`mermaid`] with each node labelled `label(name)` (quotes in a label are dropped).
pub fn mermaid_with(g: &DepGraph, label: &dyn Fn(&str) -> String) -> String {
    let names: Vec<&str> = g.nodes().collect();
    let id = |n: &str| names.iter().position(|m| *m == n).expect("known node");
    let mut out = String::from("graph LR\n");
    for (i, n) in names.iter().enumerate() {
        let l = label(n).replace('"', "");
        out.push_str(&format!("  n{i}[\"{l}\"]\n"));
    }
    for n in &names {
        for d in g.dependencies(n) {
            out.push_str(&format!("  n{} --> n{}\n", id(d), id(n)));
        }
    }
    out
}

/// Graphviz DOT, dependencies pointing at dependents.
pub fn dot(g: &DepGraph) -> String {
    dot_with(g, None)
}

/// [`dot`] with each node labelled `label(name)` (quotes in a label are dropped).
pub fn dot_with(g: &DepGraph, label: Option<&dyn Fn(&str) -> String>) -> String {
    let mut out = String::from("digraph ferry {\n  rankdir=LR;\n");
    for n in g.nodes() {
        match label {
            Some(label) => {
                let l = label(n).replace('"', "");
                out.push_str(&format!("  \"{n}\" [label=\"{l}\"];\n"));
            }
            None => out.push_str(&format!("  \"{n}\";\n")),
        }
    }
    for n in g.nodes() {
        for d in g.dependencies(n) {
            out.push_str(&format!("  \"{d}\" -> \"{n}\";\n"));
        }
    }
    out.push_str("}\n");
    out
}

/// The JSON shape of a graph: `{"nodes": [{"name", "depends_on"}], "order", "waves"}`.
#[derive(Debug, Serialize)]
pub struct GraphJson<'g> {
    pub nodes: Vec<NodeJson<'g>>,
    pub order: Vec<String>,
    pub waves: Vec<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct NodeJson<'g> {
    pub name: &'g str,
    pub depends_on: Vec<&'g str>,
}

pub fn json(g: &DepGraph) -> GraphJson<'_> {
    GraphJson {
        nodes: g
            .nodes()
            .map(|n| NodeJson {
                name: n,
                depends_on: g.dependencies(n),
            })
            .collect(),
        order: g.topo_order(),
        waves: g.waves(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> DepGraph {
        DepGraph::new([
            ("api", vec!["database", "events"]),
            ("database", vec![]),
            ("events", vec![]),
            ("frontend", vec!["api"]),
        ])
        .unwrap()
    }

    #[test]
    fn mermaid_snapshot() {
        assert_eq!(
            mermaid(&example()),
            "graph LR\n  n0[\"api\"]\n  n1[\"database\"]\n  n2[\"events\"]\n  n3[\"frontend\"]\n  n1 --> n0\n  n2 --> n0\n  n0 --> n3\n"
        );
    }

    #[test]
    fn dot_snapshot() {
        assert_eq!(
            dot(&example()),
            "digraph ferry {\n  rankdir=LR;\n  \"api\";\n  \"database\";\n  \"events\";\n  \"frontend\";\n  \"database\" -> \"api\";\n  \"events\" -> \"api\";\n  \"api\" -> \"frontend\";\n}\n"
        );
    }

    #[test]
    fn labels_name_nodes_without_changing_their_ids() {
        let label = |n: &str| format!("{n} (\"sam\")");
        let m = mermaid_with(&example(), &label);
        assert!(m.contains("  n0[\"api (sam)\"]\n"), "{m}");
        assert!(m.contains("  n1 --> n0\n"), "{m}");
        let d = dot_with(&example(), Some(&label));
        assert!(d.contains("  \"api\" [label=\"api (sam)\"];\n"), "{d}");
        assert!(d.contains("  \"database\" -> \"api\";\n"), "{d}");
    }

    #[test]
    fn json_shape() {
        let g = example();
        let j = json(&g);
        assert_eq!(j.order, ["database", "events", "api", "frontend"]);
        assert_eq!(
            j.waves,
            vec![vec!["database", "events"], vec!["api"], vec!["frontend"]]
        );
        assert_eq!(j.nodes[0].name, "api");
        assert_eq!(j.nodes[0].depends_on, ["database", "events"]);
    }
}
