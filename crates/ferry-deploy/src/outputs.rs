//! The stack outputs of a stage's services, read from their stacks (`cargo xtask outputs`).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use ferry_manifest::{Stage, Workspace};
use ferry_outputs::{OutputCache, OutputsFile};
use ferry_records::Record;
use ferry_stacks::{Engine, StackError};

use crate::ownership;

/// The outputs of a stage, and the services whose stack is missing.
#[derive(Debug, Clone)]
pub struct StageOutputs {
    pub file: OutputsFile,
    /// Services whose stack does not exist although their record says it was deployed
    /// (deleted outside Ferry): (service, stack, record).
    pub missing: Vec<(String, String, Record)>,
}

/// Stacks whose records say they were deployed, but which do not exist.
#[derive(Debug, thiserror::Error)]
#[error(
    "the stacks of {} do not exist, though their records say they were deployed (deleted outside Ferry?); `cargo xtask deploy {stage}` creates them again",
    .missing.iter().map(|(s, stack, r)| format!("{s} (stack {stack}, recorded as deployed at {} UTC)", ferry_records::format_time(r.deployed_at))).collect::<Vec<_>>().join(", ")
)]
pub struct MissingStacks {
    pub stage: String,
    pub missing: Vec<(String, String, Record)>,
}

impl StageOutputs {
    /// An error naming the missing stacks, if any.
    pub fn check_complete(&self) -> Result<(), MissingStacks> {
        if self.missing.is_empty() {
            return Ok(());
        }
        Err(MissingStacks {
            stage: self.file.stage.clone(),
            missing: self.missing.clone(),
        })
    }
}

/// Reads the outputs of `services` (all when empty) of `stage`, one DescribeStacks each; a
/// stack whose Ferry tags name another owner is an error, never read as this stage's.
pub async fn stage_outputs(
    ws: &Workspace,
    stage: &Stage,
    config: &SdkConfig,
    records: &BTreeMap<String, Record>,
    services: &[String],
) -> Result<StageOutputs, StackError> {
    let cache = OutputCache::new(Engine::for_config(
        config,
        ferry_stacks::DeployOptions::default(),
    ));
    let mut out = StageOutputs {
        file: OutputsFile {
            stage: stage.name.clone(),
            services: BTreeMap::new(),
        },
        missing: Vec::new(),
    };
    for s in ws
        .services
        .iter()
        .filter(|s| services.is_empty() || services.contains(&s.name))
    {
        let stack = ws.stack_name(&s.name, stage);
        let owner = ownership(ws, stage, &s.name);
        match cache.get(&stack, Some(&owner)).await? {
            Some(o) => {
                out.file.services.insert(s.name.clone(), o);
            }
            None => {
                if let Some(r) = records.get(&s.name) {
                    out.missing.push((s.name.clone(), stack, r.clone()));
                }
            }
        }
    }
    Ok(out)
}
