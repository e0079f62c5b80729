//! Who the credentials are.

use aws_config::SdkConfig;
use ferry_manifest::Stage;

use crate::CredentialsError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

/// GetCallerIdentity with `config`.
pub async fn caller_identity(
    config: &SdkConfig,
    stage: &str,
) -> Result<Identity, CredentialsError> {
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| CredentialsError::from_sdk(stage, "GetCallerIdentity", &e))?;
    Ok(Identity {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
        user_id: out.user_id().unwrap_or_default().to_string(),
    })
}

/// Refuses credentials of another account than the stage declares.
pub fn check_account(stage: &Stage, identity: &Identity) -> Result<(), CredentialsError> {
    match &stage.config.account {
        Some(expected) if *expected != identity.account => Err(CredentialsError::WrongAccount {
            stage: stage.name.clone(),
            expected: expected.clone(),
            actual: identity.account.clone(),
            arn: identity.arn.clone(),
        }),
        _ => Ok(()),
    }
}
