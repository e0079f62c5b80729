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
mod ssm_name;
mod stage;

pub use diag::{Diagnostic, ManifestErrors, did_you_mean};
pub use load::{PROJECT_FILE, SERVICE_FILE, declared_service_name, load, load_from};
pub use memo::{read_memo, write_memo};
pub use model::{
    Acceptance, Artifact, DEFAULT_ACCEPTANCE_TIMEOUT, DeploymentMethod, Package, Project, Service,
    Site, StageConfig, Workspace,
};
pub use reference::{Reference, ReferenceError, Segment, Template};
pub use source::{FsSource, ManifestCache, Source, normalize_relative, skipped_folder};
pub use ssm_name::{MAX_SSM_LEVELS, MAX_SSM_NAME, SsmNameError, check_ssm_name};
pub use stage::{
    MAX_STACK_NAME, Stage, StageError, is_valid_stack_name, records_path, render_stack_name,
    sanitize_stage_name,
};

/// Where Ferry writes what it makes in a repository (packages, outputs files, reports, the
/// emulator's state), relative to the repository root. Ferry keeps it out of `git status` (a
/// `.gitignore` inside it) and out of every dirty-tree decision.
pub const OUTPUT_DIR: &str = "target/ferry";
