//! What Ferry tells a test about the stage under test.

use std::collections::BTreeMap;

use ferry_env as names;

/// One stack's outputs: key → value.
pub type Outputs = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(
        "{0} is not set: acceptance tests run against a deployed stage; run them with Ferry's `test-acceptance <stage>` (or `deploy <stage> --test`), which sets it"
    )]
    Missing(&'static str),
    #[error("cannot read the outputs file {path}: {message}")]
    OutputsFile { path: String, message: String },
    #[error(
        "service `{service}` has no outputs here; the test sees its own service and its dependencies: {known}"
    )]
    UnknownService { service: String, known: String },
    #[error("stack of `{service}` has no output `{key}`; it has: {known}")]
    UnknownOutput {
        service: String,
        key: String,
        known: String,
    },
}

/// The stage under test.
#[derive(Debug, Clone)]
pub struct StageEnv {
    /// `FERRY_STAGE`.
    pub stage: String,
    /// `FERRY_STAGE_ID` (what stack and resource names contain).
    pub stage_id: String,
    pub region: String,
    pub project: String,
    /// The service whose tests run (`FERRY_SERVICE`).
    pub service: String,
    /// Stack outputs of the service and of its dependencies, by service.
    pub outputs: BTreeMap<String, Outputs>,
}

fn var(name: &'static str) -> Result<String, EnvError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(EnvError::Missing(name))
}

impl StageEnv {
    /// Reads `FERRY_*` and the outputs file.
    pub fn from_env() -> Result<StageEnv, EnvError> {
        let path = var(names::OUTPUTS_FILE)?;
        let text = std::fs::read_to_string(&path).map_err(|e| EnvError::OutputsFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let outputs = serde_json::from_str(&text).map_err(|e| EnvError::OutputsFile {
            path,
            message: e.to_string(),
        })?;
        Ok(StageEnv {
            stage: var(names::STAGE)?,
            stage_id: var(names::STAGE_ID)?,
            region: var(names::REGION)?,
            project: var(names::PROJECT)?,
            service: var(names::SERVICE)?,
            outputs,
        })
    }

    /// Output `key` of `service`'s stack.
    pub fn output(&self, service: &str, key: &str) -> Result<&str, EnvError> {
        let o = self
            .outputs
            .get(service)
            .ok_or_else(|| EnvError::UnknownService {
                service: service.to_string(),
                known: self.outputs.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        o.get(key)
            .map(String::as_str)
            .ok_or_else(|| EnvError::UnknownOutput {
                service: service.to_string(),
                key: key.to_string(),
                known: o.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}
