//! SSM Parameter Store.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{ParameterTier, ParameterType};

use aws_sdk_ssm::error::ProvideErrorMetadata;

use crate::{CredentialsError, Masker};

/// An SSM client for a stage's SDK config.
pub fn client(config: &aws_config::SdkConfig) -> Client {
    Client::new(config)
}

/// A parameter's full name for `stage`: `name` when absolute, else under the stage's
/// `parameters-path`. A relative name without one is refused (it would land at the root of the
/// account's parameters), and the full name is checked against SSM's rules before anything is
/// read or sent.
pub fn full_name(stage: &ferry_manifest::Stage, name: &str) -> Result<String, CredentialsError> {
    let full = compose(stage, name)?;
    ferry_manifest::check_ssm_name(&full, false)?;
    Ok(full)
}

/// [`full_name`] of a parameter to read, which may be one of AWS's own (a public parameter under
/// `/aws/service/`, a Secrets Manager secret under `/aws/reference/secretsmanager/`).
pub fn full_name_to_read(
    stage: &ferry_manifest::Stage,
    name: &str,
) -> Result<String, CredentialsError> {
    let full = compose(stage, name)?;
    ferry_manifest::check_ssm_read_name(&full)?;
    Ok(full)
}

fn compose(stage: &ferry_manifest::Stage, name: &str) -> Result<String, CredentialsError> {
    if !name.starts_with('/') && stage.config.parameters_path.is_none() {
        return Err(CredentialsError::NoParametersPath {
            stage: stage.name.clone(),
            name: name.to_string(),
        });
    }
    Ok(stage.config.parameter_name(name))
}

fn from_sdk<E>(
    stage: &str,
    op: &'static str,
    e: &aws_sdk_ssm::error::SdkError<E>,
) -> CredentialsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    CredentialsError::from_sdk(stage, op, e)
}

/// One parameter. `Debug` never shows a SecureString's value.
#[derive(Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub value: String,
    pub secure: bool,
    pub version: i64,
    /// What changes whenever the value does: the version, or for a Secrets Manager secret read
    /// through Parameter Store (whose version there is always the same) the secret's
    /// `VersionId`, so that rotating it is seen.
    pub revision: String,
}

impl std::fmt::Debug for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.secure {
            crate::mask::MASK
        } else {
            &self.value
        };
        f.debug_struct("Parameter")
            .field("name", &self.name)
            .field("value", &value)
            .field("secure", &self.secure)
            .field("version", &self.version)
            .field("revision", &self.revision)
            .finish()
    }
}

fn from_api(p: &aws_sdk_ssm::types::Parameter, masker: &Masker) -> Parameter {
    let secure = p.r#type() == Some(&ParameterType::SecureString);
    let value = p.value().unwrap_or_default().to_string();
    if secure {
        masker.register(&value);
    }
    Parameter {
        name: p.name().unwrap_or_default().to_string(),
        value,
        secure,
        version: p.version(),
        revision: p
            .source_result()
            .and_then(secret_version_id)
            .unwrap_or_else(|| p.version().to_string()),
    }
}

/// The `VersionId` of the Secrets Manager answer a reference's `SourceResult` holds (the rest
/// of it, the secret included, is dropped here).
fn secret_version_id(source: &str) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_str(source).ok()?;
    answer
        .get("VersionId")?
        .as_str()
        .map(|v| format!("secret:{v}"))
}

/// The largest value an SSM parameter holds (an advanced one), in bytes.
pub const MAX_VALUE: usize = 8 * 1024;

/// Every parameter under `path` (recursive, decrypted; pages of 10 followed to the end), sorted
/// by name. SecureString values are registered with `masker`.
pub async fn load_path(
    client: &Client,
    stage: &str,
    path: &str,
    masker: &Masker,
) -> Result<Vec<Parameter>, CredentialsError> {
    ferry_manifest::check_ssm_name(path, true)?;
    let mut out = Vec::new();
    let mut pages = client
        .get_parameters_by_path()
        .path(path)
        .recursive(true)
        .with_decryption(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk(stage, "GetParametersByPath", &e))?;
        out.extend(page.parameters().iter().map(|p| from_api(p, masker)));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Registers with `masker` every earlier value of the SecureString `name` that SSM keeps (its
/// history, decrypted): after a rotation, the old value still lives in the stacks until they
/// deploy again, and an output that echoes it is as secret as the new one. Gives how many
/// values were registered; a history that cannot be read (not allowed) is an error, which a
/// caller printing values must not pass over (the current value, registered by [`get`], is
/// still masked).
pub async fn register_history(
    client: &Client,
    stage: &str,
    name: &str,
    masker: &Masker,
) -> Result<usize, CredentialsError> {
    let (base, _) = ferry_manifest::split_ssm_selector(name);
    let mut registered = 0;
    let mut pages = client
        .get_parameter_history()
        .name(base)
        .with_decryption(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk(stage, "GetParameterHistory", &e))?;
        for p in page.parameters() {
            if p.r#type() == Some(&aws_sdk_ssm::types::ParameterType::SecureString)
                && let Some(v) = p.value()
            {
                masker.register(v);
                registered += 1;
            }
        }
    }
    Ok(registered)
}

/// [`register_history`] of each SecureString of `params` (as [`load_path`] gives them): what
/// prints them, or what a command run with them prints, masks their earlier values too. The
/// first history that cannot be read stops it, named.
pub async fn register_histories(
    client: &Client,
    stage: &str,
    params: &[Parameter],
    masker: &Masker,
) -> Result<(), CredentialsError> {
    for p in params.iter().filter(|p| p.secure) {
        register_history(client, stage, &p.name, masker).await?;
    }
    Ok(())
}

/// One parameter, decrypted. `name` may end in `:VERSION` or `:LABEL`
/// ([`split_ssm_selector`](ferry_manifest::split_ssm_selector)); the parameter's `name` is then
/// the name without it, and its `version` the one selected.
pub async fn get(
    client: &Client,
    stage: &str,
    name: &str,
    masker: &Masker,
) -> Result<Parameter, CredentialsError> {
    ferry_manifest::check_ssm_read_name(name)?;
    get_as_written(client, stage, name, masker).await
}

/// [`get`] of a name as a template gives it to CloudFormation (`{{resolve:ssm-secure:NAME}}`):
/// not checked to be hierarchical, as SSM also holds names without a `/` (`DbPassword`); SSM
/// judges it.
pub async fn get_as_written(
    client: &Client,
    stage: &str,
    name: &str,
    masker: &Masker,
) -> Result<Parameter, CredentialsError> {
    let not_found = || match ferry_manifest::split_ssm_selector(name) {
        (base, Some(selector)) => CredentialsError::SelectorNotFound {
            name: base.to_string(),
            selector: selector.to_string(),
        },
        (_, None) => CredentialsError::ParameterNotFound {
            name: name.to_string(),
        },
    };
    match client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
    {
        Ok(out) => out
            .parameter()
            .map(|p| from_api(p, masker))
            .ok_or_else(not_found),
        // A selector names a version or label that is not there: ParameterVersionNotFound.
        Err(e)
            if matches!(
                e.code(),
                Some("ParameterNotFound" | "ParameterVersionNotFound")
            ) =>
        {
            Err(not_found())
        }
        Err(e) => Err(from_sdk(stage, "GetParameter", &e)),
    }
}

/// The current version of parameter `name`, `None` when it does not exist. Its value is not
/// decrypted nor kept: this is for parameters CloudFormation reads itself (a template parameter
/// of an SSM parameter type), whose new version is a change of the stack. `name` is passed as
/// written (such names need not be hierarchical); SSM checks it.
pub async fn version(
    client: &Client,
    stage: &str,
    name: &str,
) -> Result<Option<i64>, CredentialsError> {
    match client
        .get_parameter()
        .name(name)
        .with_decryption(false)
        .send()
        .await
    {
        Ok(out) => Ok(out.parameter().map(|p| p.version())),
        Err(e) if e.code() == Some("ParameterNotFound") => Ok(None),
        Err(e) => Err(from_sdk(stage, "GetParameter", &e)),
    }
}

/// Writes a parameter (String or SecureString). Without `overwrite` an existing name is an error
/// (SSM refuses it atomically, which also makes this usable as a lock). Returns the new version.
pub async fn put(
    client: &Client,
    stage: &str,
    name: &str,
    value: &str,
    secure: bool,
    overwrite: bool,
) -> Result<i64, CredentialsError> {
    ferry_manifest::check_ssm_name(name, false)?;
    let kind = if secure {
        ParameterType::SecureString
    } else {
        ParameterType::String
    };
    match client
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        // Standard unless the value needs the advanced tier (over 4 KB); a parameter made
        // advanced elsewhere is updated, not refused as a downgrade.
        .tier(ParameterTier::IntelligentTiering)
        .overwrite(overwrite)
        .send()
        .await
    {
        Ok(out) => Ok(out.version()),
        Err(e) if e.code() == Some("ParameterAlreadyExists") => {
            Err(CredentialsError::ParameterExists {
                name: name.to_string(),
            })
        }
        Err(e) => Err(from_sdk(stage, "PutParameter", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secure_value() {
        let p = Parameter {
            name: "/a".into(),
            value: "s3cret".into(),
            secure: true,
            version: 1,
            revision: "1".into(),
        };
        assert!(!format!("{p:?}").contains("s3cret"));
    }
}
