#![doc = include_str!("../README.md")]
//! Per-stage AWS identity, without a credential on disk, in argv or in a log.
//!
//! - [`config`]: the SDK config of a stage: the default chain (environment, profiles with SSO,
//!   CodeBuild's container credentials, instance metadata), the stage's region, `AWS_ENDPOINT_URL`
//!   honoured, adaptive retries; a stage's `role-arn` assumed through a refreshing provider.
//! - [`identity`]: one GetCallerIdentity per stage, and the `account` check.
//! - [`ssm`]: Parameter Store — load a path (recursive, decrypted, paginated), get, put.
//! - [`mask`]: one masker for every secret value and credential, applied to all output.
//! - [`env`]: the environment a child process needs, with fresh credentials at each start.
//!
//! Every function takes an `SdkConfig` or a client, so tests point them at the local emulator or
//! at scripted responses.

pub mod config;
pub mod env;
mod error;
pub mod identity;
pub mod mask;
pub mod ssm;

/// The SDK's configuration, as every function here takes and gives it.
pub use aws_config::SdkConfig;
pub use config::{StageAws, base_config, https_client, session_name, stage_config};
pub use error::CredentialsError;
pub use identity::{Identity, caller_identity, check_account};
pub use mask::Masker;
