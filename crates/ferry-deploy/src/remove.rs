//! Removing a stage (e.g. a preview stage): its stacks in reverse dependency order, then their
//! records. Every stack is checked before the first is deleted: one that belongs to another
//! project or stage (by its tags), or that Ferry did not make (unless adopted), stops the remove
//! before anything is gone.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use ferry_graph::Cancel;
use ferry_manifest::{Stage, Workspace};
use ferry_records::{Record, RecordError, RecordStore};
use ferry_stacks::{Engine, StackError};

use crate::{Event, ownership};

/// How to remove.
#[derive(Debug, Clone)]
pub struct RemoveOptions {
    /// Only services whose folder is gone but whose record remains.
    pub orphans: bool,
    /// Remove a protected stage (termination protection is turned off first).
    pub allow_protected: bool,
    /// Delete stacks of this stage's names that have no Ferry tags.
    pub adopt: bool,
    /// How long one stack's delete may wait.
    pub timeout: Duration,
}

/// What a remove did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// (service, stack) deleted, in order.
    pub deleted: Vec<(String, String)>,
    /// Services whose stack did not exist (their records, if any, are deleted too).
    pub absent: Vec<String>,
    /// Interrupted: the services not reached keep their stacks and records.
    pub cancelled: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    #[error("stage `{stage}` is protected; removing its stacks needs --allow-protected")]
    Protected { stage: String },
    #[error(
        "nothing was deleted: {} stack(s) of stage `{stage}` may not be removed by this project:\n  {}",
        refused.len(),
        refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    Refused {
        stage: String,
        refused: Vec<StackError>,
    },
    #[error(
        "failed to delete stack {stack} of `{service}`; the stacks after it were not touched: {source}"
    )]
    Stack {
        service: String,
        stack: String,
        source: Box<StackError>,
    },
    #[error("failed to delete the record of `{service}`: {source}")]
    Record {
        service: String,
        source: Box<RecordError>,
    },
}

/// Whether `stage` may be removed at all (before any AWS call): a protected stage needs
/// `allow_protected`.
pub fn check_removable(stage: &Stage, options: &RemoveOptions) -> Result<(), RemoveError> {
    if stage.config.protected && !options.allow_protected {
        return Err(RemoveError::Protected {
            stage: stage.name.clone(),
        });
    }
    Ok(())
}

/// The stage a remove works on.
pub struct RemoveContext<'a> {
    pub ws: &'a Workspace,
    pub stage: &'a Stage,
    pub config: &'a SdkConfig,
    pub records: &'a RecordStore,
    /// The stage's records, read before.
    pub previous: &'a BTreeMap<String, Record>,
    /// Cancelled: no further stack is deleted.
    pub cancel: &'a Cancel,
}

/// Deletes the stage's stacks (dependents before their dependencies) and their records.
pub async fn remove(
    ctx: &RemoveContext<'_>,
    options: &RemoveOptions,
    on: &(dyn Fn(Event) + Send + Sync),
) -> Result<RemoveReport, RemoveError> {
    let RemoveContext {
        ws,
        stage,
        config,
        records,
        previous,
        cancel,
    } = *ctx;
    check_removable(stage, options)?;
    // (service, stack) in the order to delete.
    let targets: Vec<(String, String)> = if options.orphans {
        previous
            .iter()
            .filter(|(s, _)| ws.service(s).is_none())
            .map(|(s, r)| (s.clone(), r.stack.clone()))
            .collect()
    } else {
        let mut order = ws.graph().topo_order();
        order.reverse();
        order
            .into_iter()
            .map(|s| {
                let stack = ws.stack_name(&s, stage);
                (s, stack)
            })
            .collect()
    };
    let engine = Engine::for_config(
        config,
        ferry_stacks::DeployOptions {
            timeout: options.timeout,
            ..Default::default()
        },
    );

    // Check every stack first: a refusal deletes nothing.
    let mut existing = BTreeMap::new();
    let mut refused = Vec::new();
    for (service, stack) in &targets {
        let info = engine
            .describe(stack)
            .await
            .map_err(|source| RemoveError::Stack {
                service: service.clone(),
                stack: stack.clone(),
                source: Box::new(source),
            })?;
        if let Some(info) = info {
            let owner = ownership(ws, stage, service);
            match ferry_stacks::verify(stack, &info, Some(&owner), options.adopt) {
                Ok(()) => {
                    existing.insert(service.clone(), info);
                }
                Err(e) => refused.push(e),
            }
        }
    }
    if !refused.is_empty() {
        return Err(RemoveError::Refused {
            stage: stage.name.clone(),
            refused,
        });
    }

    let mut report = RemoveReport::default();
    for (service, stack) in &targets {
        if cancel.is_cancelled() {
            report.cancelled = true;
            break;
        }
        let fail = |source| RemoveError::Stack {
            service: service.clone(),
            stack: stack.clone(),
            source: Box::new(source),
        };
        if let Some(info) = existing.get(service) {
            if info.protected {
                engine.set_protection(stack, false).await.map_err(fail)?;
            }
            let owner = ownership(ws, stage, service);
            let print = |p| {
                on(Event::Stack {
                    service: service.clone(),
                    progress: p,
                })
            };
            let existed = engine
                .delete(stack, Some(&owner), options.adopt, &print)
                .await
                .map_err(fail)?;
            if existed {
                report.deleted.push((service.clone(), stack.clone()));
            } else {
                report.absent.push(service.clone());
            }
        } else {
            report.absent.push(service.clone());
        }
        records
            .delete(service)
            .await
            .map_err(|source| RemoveError::Record {
                service: service.clone(),
                source: Box::new(source),
            })?;
    }
    Ok(report)
}
