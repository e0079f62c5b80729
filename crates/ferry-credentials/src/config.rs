//! The SDK config of a stage.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use ferry_manifest::Stage;

use crate::{CredentialsError, Identity, Masker, caller_identity};

/// Role sessions are asked for one hour: the most STS grants when the caller is itself a role
/// (role chaining, e.g. from CodeBuild's service role). The provider refreshes before expiry, so
/// longer deploys keep working.
pub const ROLE_SESSION: Duration = Duration::from_secs(3600);

/// Where AWS calls go for a run.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The local emulator's endpoint: dummy credentials, never a real account.
    pub local_endpoint: Option<String>,
}

/// How long one attempt of a call may wait for an answer, and a whole call with its retries.
/// Every CloudFormation, SSM and STS call Ferry makes is small: an endpoint that accepts a
/// connection and never answers must not hang a deploy. (S3 uploads get longer; see
/// `ferry_package::s3_client`.)
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The default chain for `region`, honouring `AWS_ENDPOINT_URL`, with adaptive retries (the SDK
/// backs off on throttling across all calls of the client) and bounded waits. Tells
/// `ferry_aws` where calls go, for its messages.
pub async fn base_config(region: &str, target: &Target) -> SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(READ_TIMEOUT)
        .operation_timeout(CALL_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::adaptive().with_max_attempts(5))
        .timeout_config(timeouts);
    if let Some(endpoint) = &target.local_endpoint {
        loader = loader
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(
                ferry_local_key(),
                ferry_local_key(),
                None,
                None,
                "ferry-local",
            ));
    }
    let config = loader.load().await;
    let config = match &target.local_endpoint {
        Some(_) => only_the_emulator(config),
        None => config,
    };
    // The AWS ones only (`vars()` would panic on a variable that is not Unicode).
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("AWS_"))
        .collect();
    ferry_aws::set_endpoint(endpoint_of(
        target.local_endpoint.as_deref(),
        config.endpoint_url(),
        region,
        &vars,
    ));
    config
}

/// `config` (the emulator's, `--local`) without its per-service configuration: a client
/// prefers the shell's `AWS_ENDPOINT_URL_<SERVICE>` (another project's MinIO, say) to the
/// emulator's endpoint, and `--local` must send every call to the emulator.
fn only_the_emulator(config: SdkConfig) -> SdkConfig {
    config.to_builder().service_config(NoServiceConfig).build()
}

/// No per-service configuration at all (see [`only_the_emulator`]).
#[derive(Debug)]
struct NoServiceConfig;

impl aws_types::service_config::LoadServiceConfig for NoServiceConfig {
    fn load_config(&self, _: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        None
    }
}

/// Where calls go, for messages: the emulator, the endpoint of every service and the setting
/// that names it (`AWS_ENDPOINT_URL`, else a profile's `endpoint_url`), or AWS, naming the
/// `AWS_ENDPOINT_URL_<SERVICE>` variables that send one service elsewhere (the SDK honours
/// them unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true).
fn endpoint_of(
    local: Option<&str>,
    configured: Option<&str>,
    region: &str,
    vars: &[(String, String)],
) -> ferry_aws::Endpoint {
    let var = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let ignored =
        var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut overrides: Vec<(String, String)> = vars
        .iter()
        .filter(|(k, v)| !ignored && k.starts_with("AWS_ENDPOINT_URL_") && !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    overrides.sort();
    match (local, configured) {
        (Some(e), _) => ferry_aws::Endpoint::Emulator(e.to_string()),
        (None, Some(url)) => ferry_aws::Endpoint::Custom {
            url: url.to_string(),
            from: if var("AWS_ENDPOINT_URL") == Some(url) {
                "AWS_ENDPOINT_URL".to_string()
            } else {
                "the AWS profile's endpoint_url".to_string()
            },
            overrides,
        },
        (None, None) => ferry_aws::Endpoint::Aws {
            region: region.to_string(),
            overrides,
        },
    }
}

/// The HTTP(S) client of every SDK config Ferry makes: the SDK's own hyper client, with rustls
/// on the ring crypto provider and the system's root certificates. (The SDK's default client is
/// the same on aws-lc, whose C build is the largest single step of a cold `cargo xtask` build.)
/// Configs made without it have no HTTP client at all: their first call fails with "no HTTP
/// client", so a config must come from [`base_config`] or carry this client.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Dummy key for the emulator (not a credential).
fn ferry_local_key() -> &'static str {
    "ferry-local"
}

/// A role session name: `ferry-<stage>-<build id>`, reduced to STS's characters
/// (`[\w+=,.@-]`) and 64 characters.
pub fn session_name(stage_id: &str, build_id: Option<&str>) -> String {
    let raw = match build_id {
        Some(b) => format!("ferry-{stage_id}-{b}"),
        None => format!("ferry-{stage_id}"),
    };
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    clean.chars().take(64).collect()
}

/// A stage's AWS access: its config (with the assumed role, if any) and who it is.
#[derive(Debug, Clone)]
pub struct StageAws {
    pub stage: String,
    pub config: SdkConfig,
    pub identity: Identity,
    pub role_arn: Option<String>,
}

/// The config of `stage` from the `base` config: its role assumed when it has `role-arn` (with
/// `external-id`, a one-hour refreshing session), then one identity check, which enforces the
/// stage's `account`.
pub async fn stage_config(
    stage: &Stage,
    base: &SdkConfig,
    build_id: Option<&str>,
    masker: &Masker,
) -> Result<StageAws, CredentialsError> {
    let base = &masking(base, masker);
    let config = match &stage.config.role_arn {
        None => base.clone(),
        Some(role) => {
            let mut builder = AssumeRoleProvider::builder(role)
                .session_name(session_name(&stage.id, build_id))
                .session_length(ROLE_SESSION)
                .configure(base);
            if let Some(id) = &stage.config.external_id {
                builder = builder.external_id(id);
            }
            let provider = builder.build().await;
            // Assume once now: a denied role is reported here, with the caller named. The
            // role's credentials are registered with the masker before any call signs with
            // them (the identity check below is the first).
            match provider.provide_credentials().await {
                Ok(c) => register(masker, &c),
                Err(e) => return Err(assume_error(stage, role, base, &e).await),
            }
            base.to_builder()
                .credentials_provider(SharedCredentialsProvider::new(Masking {
                    inner: SharedCredentialsProvider::new(provider),
                    masker: masker.clone(),
                }))
                .build()
        }
    };
    let identity = caller_identity(&config, &stage.name).await?;
    crate::check_account(stage, &identity)?;
    Ok(StageAws {
        stage: stage.name.clone(),
        config,
        identity,
        role_arn: stage.config.role_arn.clone(),
    })
}

/// A credentials provider that registers every credential it gives with a masker before it
/// is used: an endpoint that echoes a request's token or signature in its error (a proxy, a
/// look-alike of AWS reached through `AWS_ENDPOINT_URL`) cannot make Ferry print it.
#[derive(Debug)]
struct Masking {
    inner: SharedCredentialsProvider,
    masker: Masker,
}

impl ProvideCredentials for Masking {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let c = self.inner.provide_credentials().await?;
            register(&self.masker, &c);
            Ok(c)
        })
    }
}

/// The shortest value of a credential that is registered: AWS's key ids have 20 characters,
/// secret keys 40, session tokens hundreds. The dummy credentials emulators take (`test`,
/// `testing`, Ferry's own `ferry-local`) are shorter, and masking them would garble every
/// word that holds them (`test-acceptance`).
const MIN_CREDENTIAL: usize = 16;

/// Registers the access key id, secret key and session token of `c`.
fn register(masker: &Masker, c: &Credentials) {
    let values = [
        Some(c.access_key_id()),
        Some(c.secret_access_key()),
        c.session_token(),
    ];
    for v in values.into_iter().flatten() {
        if v.chars().count() >= MIN_CREDENTIAL {
            masker.register(v);
        }
    }
}

/// `config` with its credentials provider wrapped so that every credential it gives is
/// registered with `masker` before a call signs with it (see [`Masking`]). A config without a
/// provider is returned as it is.
pub fn masking(config: &SdkConfig, masker: &Masker) -> SdkConfig {
    let Some(inner) = config.credentials_provider() else {
        return config.clone();
    };
    config
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(Masking {
            inner,
            masker: masker.clone(),
        }))
        .build()
}

async fn assume_error(
    stage: &Stage,
    role: &str,
    base: &SdkConfig,
    e: &aws_credential_types::provider::error::CredentialsError,
) -> CredentialsError {
    let explained = ferry_aws::explain_error("AssumeRole", e);
    match explained.kind {
        ferry_aws::Kind::Denied => {
            let caller = match caller_identity(base, &stage.name).await {
                Ok(id) => id.arn,
                Err(_) => "the current credentials".to_string(),
            };
            let external_id_hint = if stage.config.external_id.is_some() {
                " and that the external id matches its condition".to_string()
            } else {
                "; if the trust policy requires an external id, set external-id for the stage"
                    .to_string()
            };
            CredentialsError::AssumeRoleDenied {
                stage: stage.name.clone(),
                role: role.to_string(),
                caller,
                external_id_hint,
            }
        }
        // The role's provider words any failure of STS (a page, a server error) as credentials
        // not loaded; when the caller's own credentials load, STS failed, not them.
        ferry_aws::Kind::NoCredentials if base_loads(base).await => {
            CredentialsError::AssumeRoleFailed {
                stage: stage.name.clone(),
                role: role.to_string(),
                detail: explained.detail,
            }
        }
        _ => crate::error::from_aws(&stage.name, explained),
    }
}

/// Whether the credentials of `base` (the caller's, which assume a stage's role) load.
async fn base_loads(base: &SdkConfig) -> bool {
    match base.credentials_provider() {
        Some(p) => p.provide_credentials().await.is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-service configuration that sends SSM elsewhere, as `AWS_ENDPOINT_URL_SSM` does.
    #[derive(Debug)]
    struct SsmElsewhere;

    impl aws_types::service_config::LoadServiceConfig for SsmElsewhere {
        fn load_config(
            &self,
            key: aws_types::service_config::ServiceConfigKey<'_>,
        ) -> Option<String> {
            (key.service_id() == "SSM" && key.env() == "AWS_ENDPOINT_URL")
                .then(|| "http://127.0.0.1:9".to_string())
        }
    }

    // With `--local`, a service's own endpoint variable of the shell does not take its calls
    // from the emulator. Before, an SSM client went where `AWS_ENDPOINT_URL_SSM` said.
    #[test]
    fn the_emulator_s_config_sends_every_service_to_the_emulator() {
        let emulator = "http://127.0.0.1:5000";
        let config = SdkConfig::builder()
            .endpoint_url(emulator)
            .region(Region::new("us-east-1"))
            .behavior_version(BehaviorVersion::latest())
            .service_config(SsmElsewhere)
            .build();
        // Where an SSM client's calls go: its config's endpoint, as its Debug shows it.
        let ssm = |c: &SdkConfig| format!("{:?}", aws_sdk_ssm::config::Config::from(c));
        let elsewhere = ssm(&config);
        assert!(elsewhere.contains("http://127.0.0.1:9"), "{elsewhere}");
        let local = ssm(&only_the_emulator(config));
        assert!(
            local.contains(emulator) && !local.contains("http://127.0.0.1:9"),
            "{local}"
        );
    }

    // A message names the setting that sent the calls where they went, not always
    // `AWS_ENDPOINT_URL`.
    #[test]
    fn the_endpoint_names_the_setting_that_chose_it() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let url = "http://127.0.0.1:4566";
        let shown = |local, configured, v: &[(&str, &str)]| {
            endpoint_of(local, configured, "eu-west-1", &vars(v)).to_string()
        };
        assert_eq!(
            shown(Some(url), Some(url), &[("AWS_ENDPOINT_URL", url)]),
            format!("the local AWS emulator at {url}")
        );
        assert_eq!(
            shown(None, Some(url), &[("AWS_ENDPOINT_URL", url)]),
            format!("{url} (AWS_ENDPOINT_URL)")
        );
        assert_eq!(
            shown(None, Some(url), &[]),
            format!("{url} (the AWS profile's endpoint_url)")
        );
        let per_service = [
            ("AWS_ENDPOINT_URL_SSM", url),
            ("AWS_ENDPOINT_URL_CLOUDFORMATION", url),
            ("AWS_ENDPOINT_URL_S3", " "),
        ];
        assert_eq!(
            shown(None, None, &per_service),
            format!(
                "AWS (eu-west-1) or {url} (AWS_ENDPOINT_URL_CLOUDFORMATION) or {url} (AWS_ENDPOINT_URL_SSM)"
            )
        );
        assert_eq!(
            shown(
                None,
                Some(url),
                &[&[("AWS_ENDPOINT_URL", url)][..], &per_service].concat()
            ),
            format!(
                "{url} (AWS_ENDPOINT_URL) or {url} (AWS_ENDPOINT_URL_CLOUDFORMATION) or {url} (AWS_ENDPOINT_URL_SSM)"
            )
        );
        let mut ignored = per_service.to_vec();
        ignored.push(("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"));
        assert_eq!(shown(None, None, &ignored), "AWS (eu-west-1)");
    }

    // An emulator's dummy credentials (LocalStack's `test`, moto's `testing`) are no secret, and
    // masking them garbled every word holding them; AWS's own are all masked.
    #[test]
    fn credentials_are_registered_unless_they_are_an_emulator_s_dummies() {
        let masker = Masker::new();
        register(&masker, &Credentials::new("test", "test", None, None, "t"));
        register(
            &masker,
            &Credentials::new("testing", "testing", None, None, "t"),
        );
        register(
            &masker,
            &Credentials::new(ferry_local_key(), ferry_local_key(), None, None, "t"),
        );
        assert!(masker.is_empty());
        assert_eq!(masker.mask("test-acceptance dev"), "test-acceptance dev");
        let token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ";
        register(
            &masker,
            &Credentials::new(
                "ASIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                Some(token.into()),
                None,
                "t",
            ),
        );
        assert_eq!(
            masker.mask("ASIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ"),
            "**** **** ****"
        );
    }

    #[test]
    fn session_names_fit_sts() {
        assert_eq!(session_name("dev", None), "ferry-dev");
        assert_eq!(
            session_name("dev", Some("shop:1b2c-3d4e")),
            "ferry-dev-shop-1b2c-3d4e"
        );
        let long = session_name("feature-x", Some(&"y".repeat(100)));
        assert_eq!(long.len(), 64);
        assert!(
            session_name("a b/c", Some("é"))
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
        );
    }
}
