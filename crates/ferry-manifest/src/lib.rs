#![doc = include_str!("../README.md")]
//! Ferry's configuration model.
//!
//! `ferry.toml` at the repository root holds the project and its stages;
//! `services/<folder>/service.toml` describes one service. [`load`] reads them all, checks them,
//! and returns a typed [`Workspace`], or every problem at once as [`ManifestErrors`], each with
//! file, line, key and what to do. This crate reads files only: no git, no network.

mod arn;
mod cache;
mod diag;
mod layout;
mod load;
mod memo;
mod model;
mod owners;
mod parsed;
pub mod reference;
mod source;
mod spanned;
mod ssm_name;
mod stage;
pub mod yaml;

pub use arn::{arn_fields, is_account_id};
pub use cache::ManifestCache;
pub use diag::{Diagnostic, ManifestErrors, clipped, did_you_mean, first_few};
pub use layout::{Layout, OUTPUT_DIR, write_atomic};
pub use load::{
    FrameworkCli, PROJECT_FILE, SERVICE_FILE, ServerlessConfig, SsmRead, check_webhook_url,
    declared_service_name, load, load_from, secret_env_source, serverless_file_source,
    serverless_name_pattern, serverless_stack_name, serverless_variable_sources,
    serverless_variables_replaced, shown_url,
};
pub use memo::{read_memo, write_memo};
pub use model::{
    Acceptance, Artifact, DEFAULT_ACCEPTANCE_TIMEOUT, DEFAULT_BUILD_TIMEOUT, DeploymentMethod,
    MAX_TIMEOUT_SECS, Notifications, OnTestFailure, Package, Project, SAM_TRANSFORM, Service,
    ServiceKind, ServiceSummary, Site, StageConfig, Webhook, Workspace, is_sam, reads_parameter,
    run_value, ssm_full_name,
};
pub use owners::{Affected, Owners, OwnersError, ServiceSpec, fixed_start, has_wildcard};
pub use reference::{OutputStage, Reference, ReferenceError, Segment, Template};
pub use source::{FsSource, Source, WithFiles, normalize_relative, skipped_folder};
pub use ssm_name::{
    DynamicSsmReference, MAX_SSM_LEVELS, MAX_SSM_NAME, SECRETS_MANAGER_REFERENCE,
    SSM_PARAMETER_TYPE, SsmNameError, check_ssm_name, check_ssm_read_name, create_advice,
    dynamic_ssm_references, read_by_stacks, split_ssm_selector,
};
pub use stage::{
    MAX_PREVIEW_ID, MAX_STACK_NAME, ParameterOwner, Stage, StageError, fit_name, is_region_name,
    is_valid_stack_name, preview_records_start, records_path, render_stack_name,
    sanitize_stage_name,
};
