use ferry_aws::{AwsError, Kind};

/// Why AWS access failed, with what to do about it. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    #[error(
        "no AWS credentials were found for stage `{stage}` ({detail}); configure a profile (AWS_PROFILE, or `aws sso login` for SSO), export credentials in the environment, or use --local for the local emulator"
    )]
    NoCredentials { stage: String, detail: String },
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
    /// STS did not give the role's credentials, though the caller's own load (it answered with
    /// a page or a server error).
    #[error(
        "assuming role {role} for stage `{stage}` failed: STS did not answer with the role's credentials ({detail}); the caller's own credentials load, so check that STS is reachable from here (a proxy, AWS_ENDPOINT_URL), then run again"
    )]
    AssumeRoleFailed {
        stage: String,
        role: String,
        detail: String,
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
        "SSM parameter `{name}` does not exist; {}",
        ferry_manifest::create_advice(.name, "<stage>")
    )]
    ParameterNotFound { name: String },
    #[error(
        "SSM parameter `{name}` has no version or label `{selector}`, or does not exist; `aws ssm get-parameter-history --name {name}` lists its versions and labels"
    )]
    SelectorNotFound { name: String, selector: String },
    #[error("SSM parameter `{name}` exists already; pass --overwrite to replace it")]
    ParameterExists { name: String },
    #[error(
        "SSM parameters `{first}` and `{second}` both become the variable {var}, so a command would get one of them in place of the other (a secret in place of a plain value, or the other way round); rename one"
    )]
    ParameterVariableTaken {
        var: String,
        first: String,
        second: String,
    },
    #[error(transparent)]
    BadName(#[from] ferry_manifest::SsmNameError),
    #[error(
        "`{name}` is relative, and stage `{stage}` has no parameters-path, so it would be written at the root of the account's parameters; give an absolute name (/…), or set parameters-path under [stages.{stage}] in ferry.toml"
    )]
    NoParametersPath { stage: String, name: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl CredentialsError {
    /// The typed error an SDK error of `operation` means for the user: missing or expired
    /// credentials and throttling get their own variants; anything else is an [`AwsError`] that
    /// says what failed and what to do.
    pub fn from_sdk<E>(
        stage: &str,
        operation: &'static str,
        e: &aws_sdk_sts::error::SdkError<E>,
    ) -> CredentialsError
    where
        E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        from_aws(stage, ferry_aws::explain(operation, e))
    }

    /// The same for an error that is not an SDK call's (a credentials provider's).
    pub fn from_provider(
        stage: &str,
        operation: &'static str,
        e: &(dyn std::error::Error + 'static),
    ) -> CredentialsError {
        from_aws(stage, ferry_aws::explain_error(operation, e))
    }
}

pub(crate) fn from_aws(stage: &str, e: AwsError) -> CredentialsError {
    match e.kind {
        Kind::NoCredentials => CredentialsError::NoCredentials {
            stage: stage.to_string(),
            detail: e.detail,
        },
        Kind::Expired => CredentialsError::Expired {
            stage: stage.to_string(),
        },
        Kind::Throttled => CredentialsError::Throttled {
            operation: e.operation,
        },
        _ => CredentialsError::Aws(e),
    }
}
