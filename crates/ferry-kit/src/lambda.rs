//! Lambda checks on a function's configuration (what is deployed, without invoking it).

use std::collections::BTreeMap;

use aws_sdk_lambda::Client;

use crate::CheckError;

/// The function exists; returns its environment variables.
pub async fn function_environment(
    client: &Client,
    name: &str,
) -> Result<BTreeMap<String, String>, CheckError> {
    let c = client
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .map_err(|e| CheckError::Failed {
            what: format!("function {name} exists"),
            message: ferry_aws::explain("GetFunctionConfiguration", &e).to_string(),
        })?;
    Ok(c.environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// The function's environment variable `var` is `expected`.
pub async fn environment_has(
    client: &Client,
    name: &str,
    var: &str,
    expected: &str,
) -> Result<(), CheckError> {
    let env = function_environment(client, name).await?;
    match env.get(var) {
        Some(v) if v == expected => Ok(()),
        other => Err(CheckError::Failed {
            what: format!("function {name} has {var}={expected:?}"),
            message: format!(
                "it has {var}={other:?}; all variables: {:?}",
                env.keys().collect::<Vec<_>>()
            ),
        }),
    }
}
