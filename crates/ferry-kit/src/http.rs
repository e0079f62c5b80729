//! HTTP checks (http and https, the platform's root certificates).

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::{CheckError, DEFAULT_TIMEOUT, eventually};

const INTERVAL: Duration = Duration::from_millis(250);

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.body);
        let short: String = text.chars().take(200).collect();
        write!(
            f,
            "HTTP {} with {} bytes: {short:?}",
            self.status,
            self.body.len()
        )
    }
}

/// One GET.
pub async fn get(url: &str) -> Result<Response, String> {
    // The provider named here rather than through hyper-rustls's own feature: the tests' build
    // then shares the AWS SDK's hyper-rustls with the xtask's instead of compiling it again.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("no root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| "no response within 10s".to_string())?
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(Response { status, body })
}

/// A GET of `url` answers `status` with a body containing `needle` (retried up to
/// [`DEFAULT_TIMEOUT`]).
pub async fn response_is(url: &str, status: u16, needle: &str) -> Result<Response, CheckError> {
    response_within(url, status, needle, DEFAULT_TIMEOUT).await
}

/// [`response_is`] with another timeout.
pub async fn response_within(
    url: &str,
    status: u16,
    needle: &str,
    timeout: Duration,
) -> Result<Response, CheckError> {
    eventually(
        &format!("GET {url} answers {status} with a body containing {needle:?}"),
        timeout,
        INTERVAL,
        || async {
            let r = get(url).await?;
            if r.status == status && String::from_utf8_lossy(&r.body).contains(needle) {
                Ok(r)
            } else {
                Err(r.to_string())
            }
        },
    )
    .await
}
