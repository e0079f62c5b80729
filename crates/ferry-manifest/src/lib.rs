//! Ferry's configuration model.
//!
//! `ferry.toml` at the repository root holds the project and its stages;
//! `services/<folder>/service.toml` describes one service. [`load`] reads them all, checks them,
//! and returns a typed [`Workspace`], or every problem at once as [`ManifestErrors`], each with
//! file, line, key and what to do. This crate reads files only: no git, no network.

mod diag;
mod load;
mod memo;
mod model;
pub mod reference;
mod source;
mod stage;

pub use diag::{Diagnostic, ManifestErrors, did_you_mean};
pub use load::{PROJECT_FILE, SERVICE_FILE, declared_service_name, load, load_from};
pub use memo::{read_memo, write_memo};
pub use model::{
    Acceptance, Artifact, DEFAULT_ACCEPTANCE_TIMEOUT, DeploymentMethod, Package, Project, Service,
    Site, StageConfig, Workspace,
};
pub use reference::{Reference, ReferenceError, Segment, Template};
pub use source::{FsSource, ManifestCache, Source, skipped_folder};
pub use stage::{
    MAX_STACK_NAME, Stage, StageError, is_valid_stack_name, render_stack_name, sanitize_stage_name,
};
