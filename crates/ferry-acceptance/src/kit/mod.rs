//! A library for writing acceptance tests that Ferry runs (`[acceptance] command`).
//!
//! - [`StageEnv::from_env`]: the stage, region, service and stack outputs Ferry hands the test;
//! - [`eventually`] / [`never`]: poll until a check holds, or prove it never does in a window;
//! - with feature `aws`, [`sdk_config`]: an SDK config for the stage (credentials and
//!   `AWS_ENDPOINT_URL` from the environment Ferry sets);
//! - checks per AWS service, each behind its own feature so a test crate compiles only the
//!   clients it uses: `dynamodb`, `s3`, `sqs`, `sns` (a temporary queue subscribed to a topic),
//!   `lambda`; and `http` (an HTTP response has a status and a body). Every failed check says
//!   what it expected and the last value it saw.

mod check;
mod env;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqs")]
pub mod sqs;

pub use check::{CheckError, DEFAULT_TIMEOUT, eventually, never};
pub use env::{EnvError, StageEnv};

/// An SDK config for the stage under test: region from `FERRY_REGION`, credentials and endpoint
/// (`AWS_ENDPOINT_URL` when local) from the environment Ferry gives the test.
#[cfg(feature = "aws")]
pub async fn sdk_config(stage: &StageEnv) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(stage.region.clone()))
        .load()
        .await
}
