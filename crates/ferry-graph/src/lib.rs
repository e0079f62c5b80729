//! Dependency graphs of named nodes.
//!
//! `ferry-graph` knows nothing about services, manifests or AWS: nodes are names, edges go from a
//! dependency to its dependent. It validates a graph (unknown and self dependencies, cycles with
//! their full path), answers closure queries, orders nodes topologically and in waves, and renders
//! graphs.

mod graph;

pub use graph::{DepGraph, GraphError};
