use aws_sdk_sts::error::DisplayErrorContext;

/// Why AWS access failed, with what to do about it. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    #[error(
        "no AWS credentials were found for stage `{stage}`; configure a profile (AWS_PROFILE, or `aws sso login` for SSO), export credentials in the environment, or use --local for the local emulator"
    )]
    NoCredentials { stage: String },
    #[error(
        "the AWS credentials for stage `{stage}` have expired; refresh them (e.g. `aws sso login`, or a new session) and run again"
    )]
    Expired { stage: String },
    #[error(
        "access denied when {caller} assumed role {role} for stage `{stage}`; check that the role's trust policy allows this caller{external_id_hint}"
    )]
    AssumeRoleDenied {
        stage: String,
        role: String,
        caller: String,
        external_id_hint: String,
    },
    #[error(
        "stage `{stage}` must be deployed to account {expected}, but the credentials belong to account {actual} ({arn}); use the profile or role of account {expected}"
    )]
    WrongAccount {
        stage: String,
        expected: String,
        actual: String,
        arn: String,
    },
    #[error("AWS throttled {operation} even after retries; run again later or lower --concurrency")]
    Throttled { operation: &'static str },
    #[error(
        "SSM parameter `{name}` does not exist; create it with `cargo xtask param set <stage> {name}`"
    )]
    ParameterNotFound { name: String },
    #[error("SSM parameter `{name}` exists already; pass --overwrite to replace it")]
    ParameterExists { name: String },
    #[error("{operation} failed: {message}")]
    Api {
        operation: &'static str,
        message: String,
    },
}

/// The kind of failure an SDK error chain describes, read from its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    NoCredentials,
    Expired,
    Denied,
    Throttled,
    NotFound,
    Exists,
    Other,
}

pub(crate) fn classify<E: std::error::Error>(e: &E) -> (Kind, String) {
    let text = DisplayErrorContext(e).to_string();
    let has = |codes: &[&str]| codes.iter().any(|c| text.contains(c));
    let kind = if has(&["ExpiredToken", "RequestExpired", "TokenRefreshRequired"]) {
        Kind::Expired
    } else if has(&["AccessDenied", "not authorized to perform"]) {
        Kind::Denied
    } else if has(&[
        "Throttling",
        "TooManyRequests",
        "RequestLimitExceeded",
        "ThrottledException",
    ]) {
        Kind::Throttled
    } else if has(&["ParameterNotFound"]) {
        Kind::NotFound
    } else if has(&["ParameterAlreadyExists"]) {
        Kind::Exists
    } else if has(&[
        "no providers in chain provided credentials",
        "CredentialsNotLoaded",
        "failed to load credentials",
        "the credential provider was not enabled",
    ]) {
        Kind::NoCredentials
    } else {
        Kind::Other
    };
    (kind, text)
}

impl CredentialsError {
    /// The typed error an SDK error of `operation` means for the user: missing or expired
    /// credentials and throttling are recognised by their codes anywhere in the error chain.
    pub fn from_sdk<E: std::error::Error>(
        stage: &str,
        operation: &'static str,
        e: &E,
    ) -> CredentialsError {
        from_sdk(stage, operation, e)
    }
}

pub(crate) fn from_sdk<E: std::error::Error>(
    stage: &str,
    operation: &'static str,
    e: &E,
) -> CredentialsError {
    match classify(e) {
        (Kind::NoCredentials, _) => CredentialsError::NoCredentials {
            stage: stage.to_string(),
        },
        (Kind::Expired, _) => CredentialsError::Expired {
            stage: stage.to_string(),
        },
        (Kind::Throttled, _) => CredentialsError::Throttled { operation },
        (_, message) => CredentialsError::Api { operation, message },
    }
}
