#![doc = include_str!("../README.md")]

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
pub use env::{EnvError, Outputs, StageEnv};

/// An SDK config for the stage under test: region from `FERRY_REGION`, credentials and endpoint
/// (`AWS_ENDPOINT_URL` when local) from the environment Ferry gives the test.
#[cfg(feature = "aws")]
pub async fn sdk_config(stage: &StageEnv) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    // The SDK's own client on ring, as Ferry's: the workspace builds the SDK without its default
    // client (rustls on aws-lc), so a config must name one.
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https)
        .region(aws_config::Region::new(stage.region.clone()))
        .load()
        .await
}
