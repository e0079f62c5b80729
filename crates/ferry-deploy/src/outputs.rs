//! The stack outputs of a stage's services, read from their stacks (`cargo xtask outputs`).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use ferry_manifest::{Stage, Workspace};
use ferry_outputs::{OutputCache, OutputsFile};
use ferry_records::Record;
use ferry_stacks::{Engine, StackError};

use crate::ownership;

/// The outputs of a stage, the services whose stack is missing, and those whose stack could
/// not be read.
#[derive(Debug)]
pub struct StageOutputs {
    pub file: OutputsFile,
    /// Services whose stack does not exist although their record says it was deployed
    /// (deleted outside Ferry): (service, stack, record).
    pub missing: Vec<(String, String, Record)>,
    /// Services whose stack could not be read (another owner's, an API failure): the others
    /// are still read.
    pub unreadable: Vec<(String, StackError)>,
    /// The reading stopped at a failure that would meet every stack (no or expired
    /// credentials, an endpoint that does not answer, throttling): the services after it were
    /// not read.
    pub stopped: bool,
}

/// Stacks whose records say they were deployed, but which do not exist.
#[derive(Debug, thiserror::Error)]
#[error(
    "the stacks of {} do not exist, though their records say they were deployed (deleted outside Ferry?); `deploy {stage}` creates them again (`promote` or `rollback` in a stage with promote-from, which takes no other package)",
    .missing.iter().map(|(s, stack, r)| format!("{s} (stack {stack}, recorded as deployed at {} UTC)", ferry_records::format_time(r.deployed_at))).collect::<Vec<_>>().join(", ")
)]
pub struct MissingStacks {
    pub stage: String,
    pub missing: Vec<(String, String, Record)>,
}

/// Outputs a stage could not give whole; those it could are in [`StageOutputs::file`].
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct IncompleteOutputs {
    /// (service, why): stacks that could not be read.
    pub unreadable: Vec<(String, String)>,
    /// The reading stopped at the last of them.
    pub stopped: bool,
    /// Stacks that are gone though their records say they were deployed.
    pub missing: Option<MissingStacks>,
    /// Some outputs were read (and printed above).
    pub some_read: bool,
}

impl IncompleteOutputs {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.unreadable.is_empty() {
            let names: Vec<&str> = self.unreadable.iter().map(|(s, _)| s.as_str()).collect();
            let why: Vec<&str> = self.unreadable.iter().map(|(_, e)| e.as_str()).collect();
            parts.push(format!(
                "the outputs of {} could not be read{}: {}{}",
                names.join(", "),
                if self.some_read {
                    " (the other services' are above)"
                } else {
                    ""
                },
                why.join("; "),
                if self.stopped {
                    "; the services after it were not read, as the same failure would meet them"
                } else {
                    ""
                }
            ));
        }
        if let Some(m) = &self.missing {
            parts.push(m.to_string());
        }
        parts.join("; and ")
    }
}

impl StageOutputs {
    /// An error naming the stacks that could not be read and the missing ones, if any.
    pub fn check_complete(&self) -> Result<(), IncompleteOutputs> {
        if self.unreadable.is_empty() && self.missing.is_empty() {
            return Ok(());
        }
        Err(IncompleteOutputs {
            unreadable: self
                .unreadable
                .iter()
                .map(|(s, e)| (s.clone(), e.to_string()))
                .collect(),
            stopped: self.stopped,
            missing: (!self.missing.is_empty()).then(|| MissingStacks {
                stage: self.file.stage.clone(),
                missing: self.missing.clone(),
            }),
            some_read: !self.file.services.is_empty(),
        })
    }
}

/// Whether a failure to read one stack would meet every stack (no or expired credentials, an
/// endpoint that does not answer or is no AWS, throttling): reading on would repeat it.
fn meets_every_stack(e: &StackError) -> bool {
    use ferry_aws::Kind;
    matches!(
        e,
        StackError::Api { source, .. } if matches!(
            source.kind,
            Kind::NoCredentials
                | Kind::Expired
                | Kind::Unreachable
                | Kind::BadEndpoint
                | Kind::Timeout
                | Kind::Throttled
                | Kind::NotAws { .. }
        )
    )
}

/// Reads the outputs of `services` (all when empty) of `stage`, one DescribeStacks each; a
/// stack whose Ferry tags name another owner is never read as this stage's. A stack that cannot
/// be read is kept in [`StageOutputs::unreadable`] while the others are read. A stack without a
/// record and without outputs (one a deploy left unfinished) is not listed.
pub async fn stage_outputs(
    ws: &Workspace,
    stage: &Stage,
    config: &SdkConfig,
    records: &BTreeMap<String, Record>,
    services: &[String],
) -> StageOutputs {
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
        unreadable: Vec::new(),
        stopped: false,
    };
    for s in ws
        .services
        .iter()
        .filter(|s| services.is_empty() || services.contains(&s.name))
    {
        // The stack its record names, what runs (a move committed and not deployed yet names
        // another, which is not there: before, its outputs were said to be deleted), else the
        // one the checkout gives it; either is read only if its tags say it is the service's.
        let stack = records
            .get(&s.name)
            .map_or_else(|| ws.stack_name(&s.name, stage), |r| r.stack.clone());
        let owner = ownership(ws, stage, &s.name);
        match cache.get(&stack, Some(&owner)).await {
            Ok(Some(o)) if o.is_empty() && !records.contains_key(&s.name) => {}
            Ok(Some(o)) => {
                out.file.services.insert(s.name.clone(), o);
            }
            Ok(None) => {
                if let Some(r) = records.get(&s.name) {
                    out.missing.push((s.name.clone(), stack, r.clone()));
                }
            }
            Err(e) => {
                let every = meets_every_stack(&e);
                out.unreadable.push((s.name.clone(), e));
                if every {
                    out.stopped = true;
                    break;
                }
            }
        }
    }
    out
}
