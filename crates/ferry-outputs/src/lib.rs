#![doc = include_str!("../README.md")]
//! Stack outputs.
//!
//! - [`resolve`]: a service's parameters with every reference filled in (`${stage}`,
//!   `${output:service.Key}`, `${ssm:…}`, …). Pure: the caller passes lookups, so the rules are
//!   tested without AWS and the deploy can feed outputs of this very run.
//! - [`OutputCache`]: stack outputs read at most once per stack per run.
//! - [`OutputsFile`]: all outputs of a stage, written under `target/ferry/` (JSON or env lines)
//!   for frontends and scripts.

mod cache;
mod file;
mod resolve;

pub use cache::OutputCache;
pub use file::{LeftOut, OutputsFile};
pub use resolve::{Lookups, ResolveError, resolve, resolve_value, ssm_names};

/// One stack's outputs, by key.
pub type Outputs = std::collections::BTreeMap<String, String>;
