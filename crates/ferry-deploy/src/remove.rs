//! Removing a stage (e.g. a preview stage): its stacks in reverse dependency order, then their
//! records. Every stack is checked before the first is deleted: one that belongs to another
//! project or stage (by its tags), or that Ferry did not make (unless adopted), stops the remove
//! before anything is gone.
//!
//! CloudFormation cannot delete a bucket that holds objects, so before a stack's delete the S3
//! buckets it owns are emptied, every object version and delete marker (a bucket the template
//! keeps with `DeletionPolicy: Retain` is left whole: it outlives the stack). A stack that fails
//! to delete is reported with its reason, its dependencies are kept (they still serve it), the
//! others go on; at the end every deleted stack is looked up again, and one still there is a
//! failure too. A record is deleted only once its stack is confirmed gone.

use std::collections::{BTreeMap, BTreeSet};
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
    /// Only services whose record remains but which the checkout no longer has (folder gone,
    /// or renamed).
    pub orphans: bool,
    /// With `orphans`: whatever commit deployed them, which the checkout then does not judge
    /// (a squashed branch's, a checkout without git).
    pub any_commit: bool,
    /// Remove a protected stage (termination protection is turned off first).
    pub allow_protected: bool,
    /// Delete stacks of this stage's names that have no Ferry tags.
    pub adopt: bool,
    /// How long one stack's delete may wait.
    pub timeout: Duration,
    /// The local emulator: its ways are allowed for ([`ferry_stacks::DeployOptions::emulator`];
    /// a call it lacks, ListImports, is asked once, not retried for seconds).
    pub local: bool,
}

/// What a remove did.
#[derive(Debug, Default)]
pub struct RemoveReport {
    /// (service, stack) deleted and confirmed gone, in order.
    pub deleted: Vec<(String, String)>,
    /// Services whose stack did not exist (their records, if any, are deleted too).
    pub absent: Vec<String>,
    /// Buckets emptied before their stack's delete: (service, bucket, objects and versions
    /// deleted).
    pub emptied: Vec<(String, String, usize)>,
    /// Buckets a template retains (`DeletionPolicy: Retain`): (service, bucket), left whole.
    pub retained: Vec<(String, String)>,
    /// Stacks that failed to delete (or are still there after their delete), with why. Their
    /// records stay.
    pub failed: Vec<RemoveFailure>,
    /// Services not deleted because a stack that depends on them failed to delete: (service,
    /// the failed dependent).
    pub kept: Vec<(String, String)>,
    /// Interrupted: the services not reached keep their stacks and records.
    pub cancelled: bool,
    /// Records that could not be deleted although their stack is gone (the next `remove`
    /// deletes them: their stacks are absent then).
    pub records_left: Vec<RemoveError>,
    /// Services this stage never deployed whose stack name this checkout gives them belongs to
    /// another stage's or service's stack (by its Ferry tags): (service, stack, why), left
    /// alone. (Two previews `feat` and `x-feat` of services `a-x` and `a`: both `a-x-feat`.)
    pub others: Vec<(String, String, String)>,
}

impl RemoveReport {
    /// Every stack is gone (and nothing was interrupted).
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
            && self.kept.is_empty()
            && !self.cancelled
            && self.records_left.is_empty()
    }
}

/// A stack that did not go.
#[derive(Debug, thiserror::Error)]
#[error("stack {stack} of `{service}` was not deleted: {reason}")]
pub struct RemoveFailure {
    pub service: String,
    pub stack: String,
    pub reason: Box<dyn std::error::Error + Send + Sync>,
}

/// Why emptying a stack's bucket failed, or (no `bucket`) listing its resources to find its
/// buckets.
#[derive(Debug, thiserror::Error)]
#[error("{}", match .bucket {
    Some(b) => format!("failed to empty bucket {b} before deleting its stack: {}", .message),
    None => format!("failed to list the stack's resources (to find the buckets to empty before deleting it): {}", .message),
})]
pub struct EmptyBucketError {
    pub bucket: Option<String>,
    pub message: String,
}

/// Why a stack with exports was left whole: CloudFormation refuses to delete an export that
/// another stack imports, and would do so only after its buckets were emptied.
#[derive(Debug, thiserror::Error)]
pub enum InUseError {
    #[error(
        "nothing of it was emptied or deleted: other stacks import its exports ({}); remove those stacks first, or stop them importing",
        imports.iter().map(|(e, by)| format!("{e} by {}", by.join(", "))).collect::<Vec<_>>().join("; ")
    )]
    Imported {
        /// (export, the stacks that import it).
        imports: Vec<(String, Vec<String>)>,
    },
    #[error(
        "nothing of it was emptied or deleted: whether other stacks import its exports could not be checked: {source}; run `remove` again"
    )]
    Unchecked { source: StackError },
    #[error(
        "nothing of it was emptied or deleted: whether other stacks import its exports could not be checked: ListImports was answered, but not as AWS answers (a proxy in the way?); run `remove` again where AWS answers"
    )]
    NotAnswered,
}

/// The stack is still there after its delete.
#[derive(Debug, thiserror::Error)]
#[error(
    "it still exists after its delete, in status {status}; see its events in the CloudFormation console"
)]
pub struct StillThere {
    pub status: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    #[error("stage `{stage}` is protected; removing its stacks needs --allow-protected")]
    Protected { stage: String },
    #[error(
        "nothing was deleted: {} stack(s) of stage `{stage}` may not be removed:\n  {}",
        refused.len(),
        refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    Refused {
        stage: String,
        refused: Vec<StackError>,
    },
    #[error(
        "nothing was deleted: stack {stack} of `{service}` could not be read to check whose it is ({source}); run `remove` again when it can be (on the local emulator, a stack it cannot describe stays so: `local down` forgets every stack it held)"
    )]
    Check {
        service: String,
        stack: String,
        source: Box<StackError>,
    },
    #[error(
        "nothing was deleted: `{orphan}` is no service of the checkout, but the stack its record names, {stack}, is the stack of service `{service}` (a service renamed whose stack kept its name, as one that names its stack itself does): that stack is in use, not an orphan"
    )]
    OrphanInUse {
        orphan: String,
        stack: String,
        service: String,
    },
    #[error(
        "nothing was deleted: the stack of a service the checkout no longer has is still used:\n  {}\ndeploy the stage until they have deployed without it (`plan` shows them; a deploy of theirs that failed left them on its outputs), and have every `${{cf:…}}` read another stack, then remove the orphans",
        .used.join("\n  ")
    )]
    OrphanUsed {
        /// `<stack> (<orphan>'s): <user> …`, each.
        used: Vec<String>,
    },
    #[error(
        "nothing was deleted: {} {} no service of the working tree, but HEAD's commit still has {} (a sparse checkout, or a folder deleted, moved or renamed, or a service.toml naming it otherwise, not committed yet); commit the change first, and deploy what replaces {}, or run this in a whole checkout of HEAD",
        .services.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
        if .services.len() == 1 { "is" } else { "are" },
        if .services.len() == 1 { "it" } else { "them" },
        if .services.len() == 1 { "it" } else { "them" },
    )]
    OrphansAtHead { services: Vec<String> },
    #[error(
        "nothing was deleted: HEAD's configuration could not be read to tell whether the services the working tree lacks are gone from its commit too ({message}); fix it, or run this in a checkout whose HEAD's ferry.toml and service.toml files load"
    )]
    HeadUnreadable { message: String },
    #[error(
        "nothing was deleted: this checkout cannot tell that {} {} no service any more: {} deployed by a commit that HEAD does not descend from, whose checkout may still have {}:\n  {}\nrun `remove --orphans` in a checkout of that commit's branch (or of one that descends from it), or, when you know {} gone, add --any-commit",
        .judged.len(),
        if .judged.len() == 1 { "service is" } else { "services are" },
        if .judged.len() == 1 { "it was" } else { "they were" },
        if .judged.len() == 1 { "it" } else { "them" },
        .judged.join("\n  "),
        if .judged.len() == 1 { "that service is" } else { "those services are" }
    )]
    OrphansNotJudged {
        /// `<service> (record of commit <c>: <why>)`, each.
        judged: Vec<String>,
    },
    #[error(
        "nothing was deleted: a stack tagged for a service is not the stack this checkout gives it, but HEAD does not descend from the commit of the service's record (an older checkout, another branch's, or one a shallow clone hides), so this checkout cannot tell that the service moved away from it:\n  {}\nrun `remove --orphans` in a checkout of that commit's branch (or of one that descends from it), or, when you know the service moved to another stack, add --any-commit",
        .judged.join("\n  ")
    )]
    MovedNotJudged {
        /// `<service>'s old stack <stack> (…)`, each.
        judged: Vec<String>,
    },
    #[error(
        "nothing was deleted: a stack a service moved away from is still used:\n  {}\ndeploy the stage until its dependents take the new stack's outputs (`plan` names them `not-received`), and have every `${{cf:…}}` read the new stack's name, then remove the old stacks",
        .in_use.join("\n  ")
    )]
    MovedInUse {
        /// `<stack>, <service>'s old stack: <dependents> …`, each.
        in_use: Vec<String>,
    },
    #[error(
        "nothing was deleted: the stacks of stage `{stage}` could not be listed with their tags, to find those its services moved away from ({source}); run `remove` again"
    )]
    Find {
        stage: String,
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
    /// Every stack of the stage found by its tags (service → stack), for a stage removed
    /// whole whatever this checkout holds (`previews prune`): these, and the services with a
    /// record, are removed too when the checkout lacks them, before the checkout's own.
    pub found: Option<&'a BTreeMap<String, String>>,
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
        found,
    } = *ctx;
    check_removable(stage, options)?;
    let engine = Engine::for_config(
        config,
        ferry_stacks::DeployOptions {
            timeout: options.timeout,
            emulator: options.local.then_some(ferry_stacks::EMULATOR_BUSY_WAIT),
            ..Default::default()
        },
    );
    // Services whose stack is known only by the name this checkout gives it (no record of the
    // stage names it, no stack tagged for it was found).
    let mut named_only: BTreeSet<String> = BTreeSet::new();
    // (service, stack) in the order to delete.
    let mut targets: Vec<(String, String)> = if options.orphans {
        let orphans: Vec<(String, String)> = previous
            .iter()
            .filter(|(s, _)| ws.service(s).is_none())
            .map(|(s, r)| (s.clone(), r.stack.clone()))
            .collect();
        // A service is orphaned only if the checkout is at or after the commit that deployed
        // it: an older checkout (another branch, a second repository of the same project
        // name) lacks the services added since, which are not orphans.
        let repo = ferry_changes::Repo::open(&ws.root);
        // A service HEAD's commit still has is no orphan, whatever the working tree lacks (a
        // sparse checkout, a delete or move not committed yet): its stack would go before what
        // replaces it deployed.
        if !orphans.is_empty()
            && let Ok(repo) = &repo
            && repo.head_commit().is_some()
        {
            let at_head = ferry_plan::workspace_at(repo, "HEAD").map_err(|e| {
                RemoveError::HeadUnreadable {
                    message: e.to_string(),
                }
            })?;
            let services: Vec<String> = orphans
                .iter()
                .filter(|(o, _)| at_head.service(o).is_some())
                .map(|(o, _)| o.clone())
                .collect();
            if !services.is_empty() {
                return Err(RemoveError::OrphansAtHead { services });
            }
        }
        let judged: Vec<String> = orphans
            .iter()
            .filter(|_| !options.any_commit)
            .filter_map(|(orphan, _)| {
                let commit = previous[orphan].checkout();
                let why = why_head_is_not_after(&repo, commit)?;
                Some(format!(
                    "{orphan} (record of commit {}: {why})",
                    commit.get(..12).unwrap_or(commit)
                ))
            })
            .collect();
        if !judged.is_empty() {
            return Err(RemoveError::OrphansNotJudged { judged });
        }
        // A record of a name no service has any more may still name a live stack: one whose
        // name does not come from the service's (a service renamed in service.toml that names its
        // stack itself keeps it: a Serverless service, a `stack-name` without `{service}`). Deleting it would take down a running service.
        for (orphan, stack) in &orphans {
            if let Some(s) = ws
                .services
                .iter()
                .find(|s| ws.service_stack_name(s, stage) == *stack)
            {
                return Err(RemoveError::OrphanInUse {
                    orphan: orphan.clone(),
                    stack: stack.clone(),
                    service: s.name.clone(),
                });
            }
        }
        let used = orphan_users(ws, stage, previous, &orphans, &repo);
        if !used.is_empty() {
            return Err(RemoveError::OrphanUsed { used });
        }
        orphans
    } else {
        let mut order = ws.graph().topo_order();
        order.reverse();
        // The stack a service really has: the one its record names, else the one found by its
        // tags, and only else the name this checkout would give it (which differs once the
        // stack-name pattern or a Serverless service's name changed since it deployed). (A
        // stack it moved away from, tagged for it too, is one of `moved_out`'s.)
        order
            .into_iter()
            .map(|s| {
                let known = previous
                    .get(&s)
                    .map(|r| r.stack.clone())
                    .or_else(|| found.and_then(|f| f.get(&s).cloned()));
                let stack = known.clone().unwrap_or_else(|| {
                    named_only.insert(s.clone());
                    ws.stack_name(&s, stage)
                });
                (s, stack)
            })
            .collect()
    };
    // Exports imported by a service that does not depend on the exporter (validate warns of
    // them): the importer goes first, or CloudFormation refuses to delete the export in use.
    let imports: Vec<(String, String)> = if options.orphans {
        Vec::new()
    } else {
        ferry_package::unlinked_importers(&ferry_package::Templates::new(ws))
            .into_iter()
            .map(|u| (u.importer, u.exporter))
            .collect()
    };
    importers_first(&mut targets, &imports);
    if let Some(found) = found {
        let known: BTreeSet<String> = targets.iter().map(|(s, _)| s.clone()).collect();
        let extra: BTreeMap<String, String> = found
            .iter()
            .map(|(s, st)| (s.clone(), st.clone()))
            .chain(previous.iter().map(|(s, r)| (s.clone(), r.stack.clone())))
            .filter(|(s, _)| !known.contains(s))
            .collect();
        // Services this checkout lacks have no place in its graph: they go first (nothing
        // this checkout deploys can depend on them).
        targets.splice(0..0, extra);
    }
    // The stacks the stage's services moved away from: first (nothing runs on them now).
    let moved = moved_out(&engine, ws, stage, previous, &targets, options).await?;
    let moved_stacks: BTreeSet<String> = moved.iter().map(|(_, st)| st.clone()).collect();
    targets.splice(0..0, moved);

    // Check every stack first: a refusal deletes nothing.
    let mut existing = BTreeMap::new();
    let mut refused = Vec::new();
    let mut others = Vec::new();
    for (service, stack) in &targets {
        let info = engine
            .describe(stack)
            .await
            .map_err(|source| RemoveError::Check {
                service: service.clone(),
                stack: stack.clone(),
                source: Box::new(source),
            })?;
        if let Some(info) = info {
            let owner = ownership(ws, stage, service);
            match ferry_stacks::verify(stack, &info, Some(&owner), options.adopt) {
                // The stack's own protection counts, not only this checkout's word on the
                // stage: a protected stage that this checkout does not name is taken for a
                // preview (`previews prune` would remove it), and protection may have been
                // turned on by hand.
                Ok(()) if info.protected && !options.allow_protected => {
                    refused.push(StackError::TerminationProtected {
                        stack: stack.clone(),
                    });
                }
                Ok(()) => {
                    existing.insert(stack.clone(), info);
                }
                // Not this stage's stack, and nothing says this stage ever had it: the stage
                // has no such stack to remove (a refusal here kept every other stack of the
                // stage for good).
                Err(e @ StackError::Foreign { .. }) if named_only.contains(service) => {
                    others.push((service.clone(), stack.clone(), e.to_string()));
                }
                Err(e) => refused.push(e),
            }
        }
    }
    targets.retain(|(s, _)| !others.iter().any(|(o, _, _)| o == s));
    if !refused.is_empty() {
        return Err(RemoveError::Refused {
            stage: stage.name.clone(),
            refused,
        });
    }

    let s3 = ferry_package::s3_client(config);
    // Calls go to an endpoint of the user's (`AWS_ENDPOINT_URL`, the emulator), not AWS's.
    let own_endpoint = config.endpoint_url().is_some();
    let graph = ws.graph();
    let mut report = RemoveReport {
        others,
        ..Default::default()
    };
    for (service, stack) in &targets {
        if cancel.is_cancelled() {
            report.cancelled = true;
            break;
        }
        // A stack that depends on this one (or imports its exports) failed to delete: this one
        // still serves it.
        if let Some(f) = report.failed.iter().find(|f| {
            graph
                .with_dependencies([f.service.as_str()])
                .contains(service)
                || imports.iter().any(|(i, e)| *i == f.service && e == service)
        }) {
            report.kept.push((service.clone(), f.service.clone()));
            continue;
        }
        let Some(info) = existing.get(stack) else {
            // No stack: its record goes with the others' below (a stack moved away from is
            // none of a record's).
            if !moved_stacks.contains(stack) {
                report.absent.push(service.clone());
            }
            continue;
        };
        let print = |p| {
            on(Event::Stack {
                service: service.clone(),
                progress: p,
            })
        };
        let fail = |reason: Box<dyn std::error::Error + Send + Sync>| RemoveFailure {
            service: service.clone(),
            stack: stack.clone(),
            reason,
        };
        if let Err(e) = check_not_imported(&engine, stack, info, own_endpoint, &print).await {
            report.failed.push(fail(Box::new(e)));
            continue;
        }
        // The stage's lock is still this run's: else nothing more is emptied or deleted.
        if let Err(e) = records.check_held().await {
            report.failed.push(fail(Box::new(e)));
            break;
        }
        if info.protected
            && let Err(e) = engine.set_protection(stack, false).await
        {
            report.failed.push(fail(Box::new(e)));
            continue;
        }
        // Marked before anything is emptied: a remove stopped from here on leaves the service
        // planned again, not up to date with its site or data gone.
        if let Some(r) = previous.get(service)
            && r.removing.is_none()
            && r.stack == *stack
        {
            let marked = Record {
                removing: Some(ferry_records::now_secs()),
                ..r.clone()
            };
            if let Err(e) = records.write(&marked).await {
                report.failed.push(fail(Box::new(e)));
                continue;
            }
        }
        match empty_buckets(&engine, &s3, stack, &print).await {
            Ok(buckets) => {
                for (bucket, emptied) in buckets {
                    match emptied {
                        Some(n) => report.emptied.push((service.clone(), bucket, n)),
                        None => report.retained.push((service.clone(), bucket)),
                    }
                }
            }
            Err(e) => {
                report.failed.push(fail(Box::new(e)));
                continue;
            }
        }
        let owner = ownership(ws, stage, service);
        match engine
            .delete(stack, Some(&owner), options.adopt, &print)
            .await
        {
            Ok(true) => report.deleted.push((service.clone(), stack.clone())),
            Ok(false) => report.absent.push(service.clone()),
            Err(e) => report.failed.push(fail(Box::new(e))),
        }
    }
    // Confirmed: every stack deleted is gone; only then its record goes.
    let mut confirmed = Vec::new();
    for (service, stack) in std::mem::take(&mut report.deleted) {
        match engine.describe(&stack).await {
            Ok(None) => {
                if !moved_stacks.contains(&stack)
                    && let Err(e) = delete_record(records, &service).await
                {
                    report.records_left.push(e);
                }
                confirmed.push((service, stack));
            }
            Ok(Some(info)) => report.failed.push(RemoveFailure {
                service,
                stack,
                reason: Box::new(StillThere {
                    status: info.status,
                }),
            }),
            Err(e) => report.failed.push(RemoveFailure {
                service,
                stack,
                reason: Box::new(e),
            }),
        }
    }
    report.deleted = confirmed;
    // A service whose only stack is another's (left alone) has no record, but may have its
    // health and a batch node's mark in the stage.
    let left = report.others.iter().map(|(s, _, _)| s);
    for service in report.absent.iter().chain(left) {
        if let Err(e) = delete_record(records, service).await {
            report.records_left.push(e);
        }
    }
    Ok(report)
}

/// The stacks of the stage's services that none of `targets` is, nor any record names, nor
/// the checkout gives a service: stacks a service moved away from (its `stack-name`, the
/// project's pattern or a Serverless service's name changed, and it deployed to the new one),
/// which a deploy leaves in place. Tagged for this project, this stage and the service
/// (Ferry's own stacks, `_bootstrap`, are none). For `--orphans`, only those of the checkout's
/// services whose record names their new stack, judged from a checkout at or after that record
/// (an older one may not know of the move), and none while a dependent of the service has not
/// received the outputs of its new stack (its deploy failed or was stopped: it still uses the
/// old one's).
async fn moved_out(
    engine: &Engine,
    ws: &Workspace,
    stage: &Stage,
    previous: &BTreeMap<String, Record>,
    targets: &[(String, String)],
    options: &RemoveOptions,
) -> Result<Vec<(String, String)>, RemoveError> {
    let current: Vec<String> = ws
        .services
        .iter()
        .map(|s| ws.service_stack_name(s, stage))
        .collect();
    let known: BTreeSet<&str> = targets
        .iter()
        .map(|(_, st)| st.as_str())
        .chain(previous.values().map(|r| r.stack.as_str()))
        .chain(current.iter().map(String::as_str))
        .collect();
    let all = engine
        .describe_all()
        .await
        .map_err(|source| RemoveError::Find {
            stage: stage.name.clone(),
            source: Box::new(source),
        })?;
    let mut out = Vec::new();
    for (name, info) in &all {
        let Some(service) = info.tags.get(ferry_stacks::ownership::TAG_SERVICE) else {
            continue;
        };
        if known.contains(name.as_str())
            || service.starts_with('_')
            // For --orphans: a service with a record (of the checkout, or one it removes, whose
            // records go too), whose record names the stack it moved to.
            || (options.orphans && !previous.contains_key(service))
            || ferry_stacks::verify(name, info, Some(&ownership(ws, stage, service)), false)
                .is_err()
        {
            continue;
        }
        out.push((service.clone(), name.clone()));
    }
    if !options.orphans || out.is_empty() {
        return Ok(out);
    }
    if !options.any_commit {
        let repo = ferry_changes::Repo::open(&ws.root);
        let judged: Vec<String> = out
            .iter()
            .filter_map(|(service, stack)| {
                let commit = previous[service].checkout();
                let why = why_head_is_not_after(&repo, commit)?;
                Some(format!(
                    "{service}'s old stack {stack} (its record is of commit {}: {why})",
                    commit.get(..12).unwrap_or(commit)
                ))
            })
            .collect();
        if !judged.is_empty() {
            return Err(RemoveError::MovedNotJudged { judged });
        }
    }
    let graph = ws.graph();
    // The other stages (and the previews) of the checkout, whose parameters may read this
    // stage's outputs (`${output:<stage>:<service>.<Output>}`).
    let others: Vec<Stage> = ws
        .stages
        .keys()
        .filter(|n| **n != stage.name)
        .filter_map(|n| ws.stage(n).ok())
        .chain(crate::previews::preview_access(ws).ok())
        .collect();
    let in_use: Vec<String> = out
        .iter()
        .filter_map(|(service, stack)| {
            // A dependent known to have taken the new stack's outputs is one whose record says
            // it received the moved service's deploy; one with no record but a stack, or a
            // record older than what it received was kept, cannot be told.
            let mut users: Vec<String> = graph
                .dependents(service)
                .into_iter()
                .filter(|d| match previous.get(*d) {
                    Some(r) if r.received.is_none() => true,
                    Some(_) => crate::prepare::not_received(ws, previous, d)
                        .iter()
                        .any(|of| of == service),
                    None => ws
                        .service(d)
                        .is_some_and(|s| all.contains_key(&ws.service_stack_name(s, stage))),
                })
                .map(String::from)
                .collect();
            for other in &others {
                for reader in &ws.services {
                    let reads = reader.parameters.values().flat_map(|t| t.references()).any(|r| {
                        matches!(r, ferry_manifest::Reference::Output { stage: Some(of), service: from, .. }
                            if from == service
                                && ferry_manifest::Workspace::output_stage(other, of).as_deref()
                                    == Some(stage.name.as_str()))
                    });
                    if reads {
                        users.push(format!("{} of stage `{}`", reader.name, other.name));
                    }
                }
            }
            (!users.is_empty()).then(|| {
                format!(
                    "{stack}, {service}'s old stack: {} may still use its outputs (not known to have deployed since {service} moved)",
                    users.join(", ")
                )
            })
        })
        .collect();
    // A Serverless configuration reading the old stack by name (`${cf:<stack>.<Output>}`):
    // its function would point at what is gone.
    let read: Vec<String> = out
        .iter()
        .flat_map(|(service, stack)| {
            ferry_serverless::stack_readers(ws, stack, &stage.id)
                .into_iter()
                .map(move |reader| {
                    format!(
                        "{stack}, {service}'s old stack: {reader} reads its outputs (${{cf:…}})"
                    )
                })
        })
        .collect();
    let in_use: Vec<String> = in_use.into_iter().chain(read).collect();
    if !in_use.is_empty() {
        return Err(RemoveError::MovedInUse { in_use });
    }
    Ok(out)
}

/// What still uses the stacks of `orphans` (service, stack): a service of the stage whose record
/// says it was deployed with an orphan's outputs (a dependent whose deploy since the orphan went
/// failed, or has not run: its stack still holds them), and a Serverless configuration reading
/// an orphan's stack (`${cf:…}`). A record that does not say what it received (written before
/// Ferry kept it) is judged by the configuration of its commit, and taken for a user when that
/// cannot be read.
fn orphan_users(
    ws: &Workspace,
    stage: &Stage,
    previous: &BTreeMap<String, Record>,
    orphans: &[(String, String)],
    repo: &Result<ferry_changes::Repo, ferry_changes::BaseUnavailable>,
) -> Vec<String> {
    let gone: BTreeSet<&str> = orphans.iter().map(|(o, _)| o.as_str()).collect();
    let mut configs: BTreeMap<String, Option<Workspace>> = BTreeMap::new();
    let mut depended_on = |record: &Record, orphan: &str| -> bool {
        if let Some(got) = &record.received {
            return got.contains_key(orphan);
        }
        let commit = record.checkout();
        let at = configs.entry(commit.to_string()).or_insert_with(|| {
            let repo = repo.as_ref().ok()?;
            ferry_plan::workspace_at(repo, commit).ok()
        });
        at.as_ref().is_none_or(|at| {
            at.service(&record.service).is_some()
                && at.graph().dependencies(&record.service).contains(&orphan)
        })
    };
    let mut used = Vec::new();
    for (orphan, stack) in orphans {
        let mut users: Vec<String> = Vec::new();
        for (service, record) in previous {
            if !gone.contains(service.as_str()) && depended_on(record, orphan) {
                users.push(match &record.received {
                    Some(_) => {
                        format!("{service} was deployed with its outputs and has not deployed since")
                    }
                    None => {
                        let at = record.checkout();
                        format!(
                            "{service}'s record (of commit {}, by an earlier Ferry) does not say what it received, and that commit's configuration makes it a dependent or cannot be read here",
                            at.get(..12).unwrap_or(at)
                        )
                    }
                });
            }
        }
        users.extend(
            ferry_serverless::stack_readers(ws, stack, &stage.id)
                .into_iter()
                .map(|reader| format!("{reader} reads its outputs (${{cf:…}})")),
        );
        if !users.is_empty() {
            used.push(format!("{stack} ({orphan}'s): {}", users.join("; ")));
        }
    }
    used
}

/// Why HEAD of `repo` does not descend from `commit` (a record's), for a remove that judges
/// only what a checkout at or after it can; `None` when it does.
fn why_head_is_not_after(
    repo: &Result<ferry_changes::Repo, ferry_changes::BaseUnavailable>,
    commit: &str,
) -> Option<String> {
    use ferry_changes::{BaseUnavailable as B, ChangesError as C};
    Some(match repo {
        Ok(repo) => match repo.head_descends_from(commit).err()? {
            C::BaseUnavailable(B::NotFound { .. }) => {
                "a commit this repository does not have".to_string()
            }
            C::BaseUnavailable(B::HeadBehind { .. }) => "newer than HEAD".to_string(),
            C::BaseUnavailable(B::NotAncestor { .. }) => {
                "on another line of history than HEAD".to_string()
            }
            C::BaseUnavailable(B::Shallow { .. }) => {
                "hidden by the shallow clone's boundary (`git fetch --unshallow`)".to_string()
            }
            e => e.to_string(),
        },
        Err(e) => e.to_string(),
    })
}

/// Moves each exporter of `imports` (importer, exporter) after its importer in `targets`,
/// keeping the rest of the order; a circle of imports is left as it is (CloudFormation could
/// not delete it either way, and says so).
fn importers_first(targets: &mut Vec<(String, String)>, imports: &[(String, String)]) {
    let pos = |t: &[(String, String)], s: &str| t.iter().position(|(n, _)| n == s);
    for _ in 0..=imports.len() {
        let mut moved = false;
        for (importer, exporter) in imports {
            let (Some(e), Some(i)) = (pos(targets, exporter), pos(targets, importer)) else {
                continue;
            };
            if e < i {
                let entry = targets.remove(e);
                targets.insert(i, entry);
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

/// No stack imports an export of `stack` (those of this remove that did are gone by now: an
/// importer is deleted before its exporter). At an endpoint of the user's own
/// (`own_endpoint`: an emulator) that does not answer ListImports, the check is skipped, said.
async fn check_not_imported(
    engine: &Engine,
    stack: &str,
    info: &ferry_stacks::StackInfo,
    own_endpoint: bool,
    on: &(dyn Fn(ferry_stacks::Progress) + Send + Sync),
) -> Result<(), InUseError> {
    let mut imports = Vec::new();
    for export in &info.exports {
        let by = engine
            .importers(stack, export)
            .await
            .map_err(|source| InUseError::Unchecked { source })?;
        match by {
            Some(by) if !by.is_empty() => imports.push((export.clone(), by)),
            Some(_) => {}
            // The endpoint has no ListImports: the rest cannot be asked either, and what was
            // found so far still counts.
            None if own_endpoint => {
                on(ferry_stacks::Progress::Note(
                    "this endpoint does not answer ListImports (an emulator): whether other stacks import its exports was not checked".into(),
                ));
                break;
            }
            None => return Err(InUseError::NotAnswered),
        }
    }
    if imports.is_empty() {
        Ok(())
    } else {
        Err(InUseError::Imported { imports })
    }
}

async fn delete_record(records: &RecordStore, service: &str) -> Result<(), RemoveError> {
    records
        .delete(service)
        .await
        .map_err(|source| RemoveError::Record {
            service: service.to_string(),
            source: Box::new(source),
        })
}

/// Empties the S3 buckets `stack` owns (every version and delete marker), except those its
/// template retains. Gives each bucket with the count deleted, or `None` when retained.
async fn empty_buckets(
    engine: &Engine,
    s3: &aws_sdk_s3::Client,
    stack: &str,
    on: &(dyn Fn(ferry_stacks::Progress) + Send + Sync),
) -> Result<Vec<(String, Option<usize>)>, EmptyBucketError> {
    let wrap = |bucket: &str, e: &dyn std::fmt::Display| EmptyBucketError {
        bucket: Some(bucket.to_string()),
        message: e.to_string(),
    };
    let buckets: Vec<_> = engine
        .resources(stack)
        .await
        .map_err(|e| EmptyBucketError {
            bucket: None,
            message: e.to_string(),
        })?
        .into_iter()
        .filter(|r| r.resource_type == "AWS::S3::Bucket" && !r.physical_id.is_empty())
        .collect();
    if buckets.is_empty() {
        return Ok(Vec::new());
    }
    let template = engine
        .template(stack)
        .await
        .map_err(|e| wrap("(reading the stack's template)", &e))?
        .unwrap_or_default();
    let retained = retained_resources(&template);
    let mut out = Vec::new();
    for b in buckets {
        if retained.contains("*") || retained.contains(&b.logical_id) {
            on(ferry_stacks::Progress::Note(format!(
                "bucket {} is kept (DeletionPolicy: Retain): its objects stay",
                b.physical_id
            )));
            out.push((b.physical_id, None));
            continue;
        }
        let n = empty_bucket(s3, &b.physical_id)
            .await
            .map_err(|e| wrap(&b.physical_id, &e))?;
        if n > 0 {
            on(ferry_stacks::Progress::Note(format!(
                "bucket {} emptied: {n} object version(s) and delete marker(s)",
                b.physical_id
            )));
        }
        out.push((b.physical_id, Some(n)));
    }
    Ok(out)
}

/// Logical ids of the resources a template keeps when its stack is deleted (`DeletionPolicy`
/// `Retain` or `RetainExceptOnCreate`). A template that cannot be read retains everything it
/// might, and so does a policy that is not a plain word (`!Ref KeepData` under
/// `AWS::LanguageExtensions`, when the template read is not the processed one): nothing is
/// emptied on a guess.
pub fn retained_resources(template: &str) -> std::collections::BTreeSet<String> {
    let Ok(t) = ferry_package::parse_template(template) else {
        return std::iter::once("*".to_string()).collect();
    };
    t.get("Resources")
        .and_then(|r| r.as_object())
        .map(|r| {
            r.iter()
                .filter(|(_, v)| {
                    v.get("DeletionPolicy").is_some_and(|p| {
                        p.as_str()
                            .is_none_or(|p| matches!(p, "Retain" | "RetainExceptOnCreate"))
                    })
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes every object version and delete marker of `bucket`; gives how many. A bucket that
/// is gone already counts 0.
async fn empty_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<usize, String> {
    use aws_sdk_s3::error::ProvideErrorMetadata as _;
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let mut deleted = 0;
    loop {
        let page = match s3.list_object_versions().bucket(bucket).send().await {
            Ok(p) => p,
            Err(e) if e.code() == Some("NoSuchBucket") => return Ok(deleted),
            Err(e) => return Err(ferry_aws::explain("ListObjectVersions", &e).to_string()),
        };
        let ids: Vec<ObjectIdentifier> = page
            .versions()
            .iter()
            .filter_map(|v| Some((v.key()?, v.version_id())))
            .chain(
                page.delete_markers()
                    .iter()
                    .filter_map(|m| Some((m.key()?, m.version_id()))),
            )
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key)
                    .set_version_id(version.map(String::from))
                    .build()
                    .ok()
            })
            .collect();
        if ids.is_empty() {
            return Ok(deleted);
        }
        // A page holds at most 1,000 entries, DeleteObjects takes as many.
        let n = ids.len();
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| e.to_string())?;
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| ferry_aws::explain("DeleteObjects", &e).to_string())?;
        if let Some(err) = out.errors().first() {
            return Err(format!(
                "DeleteObjects refused {}: {} ({})",
                err.key().unwrap_or("?"),
                err.message().unwrap_or("no message"),
                err.code().unwrap_or("?")
            ));
        }
        deleted += n;
    }
}

#[cfg(test)]
mod tests {
    fn targets(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), format!("{n}-dev")))
            .collect()
    }

    #[test]
    fn a_bucket_is_kept_unless_its_template_plainly_lets_it_go() {
        let template = r#"{"Resources": {
            "Plain": {"Type": "AWS::S3::Bucket"},
            "Deleted": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Delete"},
            "Kept": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"},
            "KeptOnCreate": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "RetainExceptOnCreate"},
            "ByParameter": {"Type": "AWS::S3::Bucket", "DeletionPolicy": {"Ref": "KeepData"}}
        }}"#;
        let kept: Vec<String> = super::retained_resources(template).into_iter().collect();
        assert_eq!(kept, ["ByParameter", "Kept", "KeptOnCreate"]);
        assert!(super::retained_resources("not: [a template").contains("*"));
    }

    #[test]
    fn importers_go_before_their_exporters_and_the_rest_keeps_its_order() {
        let edge = |i: &str, e: &str| (i.to_string(), e.to_string());
        let mut t = targets(&["web", "db", "api", "queue"]);
        super::importers_first(&mut t, &[edge("api", "db"), edge("queue", "web")]);
        assert_eq!(t, targets(&["api", "db", "queue", "web"]));
        // A circle ends, as it is.
        let mut t = targets(&["a", "b"]);
        super::importers_first(&mut t, &[edge("a", "b"), edge("b", "a")]);
        assert_eq!(t.len(), 2);
        // Unknown names change nothing.
        let mut t = targets(&["a"]);
        super::importers_first(&mut t, &[edge("x", "a")]);
        assert_eq!(t, targets(&["a"]));
    }
}
