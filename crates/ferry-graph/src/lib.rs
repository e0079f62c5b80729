#![doc = include_str!("../README.md")]
//! Dependency graphs of named nodes.
//!
//! `ferry-graph` knows nothing about services, manifests or AWS: nodes are names, edges go from a
//! dependency to its dependent. It validates a graph (unknown and self dependencies, cycles with
//! their full path), answers closure queries, orders nodes topologically and in waves, renders
//! graphs (Mermaid, DOT, JSON), and runs async jobs over a graph with [`schedule::run`].

mod graph;
pub mod render;
pub mod schedule;

pub use graph::{DepGraph, GraphError};
pub use schedule::{Cancel, Outcome, Report, ScheduleOptions};
