//! What a stage holds before a run: its deployment records, and what its stacks say against
//! them.
//!
//! A record says what Ferry last deployed; the stack may since have been deleted, left in a
//! failed state, or changed outside Ferry. [`read`] reads the records (one GetParametersByPath
//! per 10 records), checks that each belongs to this stage and names this stage's stack, and
//! compares them with one paginated ListStacks pass (one call per 100 stacks of the account and
//! region, however many services there are). [`drift`] is the pure rule: a missing, failed,
//! busy, replaced or out-of-band updated stack deploys again with a named reason.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use ferry_manifest::{Stage, Workspace};
use ferry_plan::Reason;
use ferry_records::{Record, RecordError, RecordStore};
use ferry_stacks::{Engine, StackList, StackSummary};

/// The records of a stage and what its stacks say about them.
#[derive(Debug, Clone, Default)]
pub struct StageState {
    /// Records by service (including services whose folder is gone).
    pub records: BTreeMap<String, Record>,
    /// Per recorded service whose stack does not match its record: why it must deploy (a
    /// stack moved among them).
    pub drift: BTreeMap<String, Reason>,
    /// ListStacks calls made.
    pub list_calls: usize,
    /// Per recorded service, the dependencies deployed since it last received their outputs
    /// ([`crate::prepare::not_received`]).
    pub not_received: BTreeMap<String, Vec<String>>,
    /// Services whose stack moved since they deployed (their `stack-name`, the project's
    /// pattern or a Serverless service's name changed): service → where from and to (the
    /// stack its record names, the one the configuration of the record's commit gave it; the
    /// one this checkout gives it). They deploy to the new stack; the old one stays, tagged
    /// for them, until `remove --orphans` deletes it.
    pub moved: Moves,
    /// Services no record names (or whose stack moved) whose stack the stage's stack list holds
    /// all the same: service → stack. [`StageState::describe_unrecorded`] says what a deploy
    /// will do with each.
    pub unrecorded: BTreeMap<String, String>,
    /// Those described ([`Reason::StackFound`]): a plan says what a deploy does with each.
    pub found: BTreeMap<String, Reason>,
}

impl StageState {
    /// Notes for a plan of this state: each Serverless configuration reading (`${cf:…}`) a
    /// stack a service moves away from, which would go on reading the old stack's outputs
    /// after the move (and keeps `remove --orphans` from deleting it).
    pub fn move_notes(&self, ws: &Workspace, stage: &Stage) -> Vec<String> {
        self.moved
            .iter()
            .filter_map(|(service, (from, to))| {
                let readers = ferry_serverless::stack_readers(ws, &from.stack, &stage.id);
                (!readers.is_empty()).then(|| {
                    format!(
                        "{} read{} {} by `${{cf:…}}`, the stack `{service}` moves away from (to {}): point {} at the new name, or {} go on reading the old stack's outputs",
                        readers.join(", "),
                        if readers.len() == 1 { "s" } else { "" },
                        from.stack,
                        to.stack,
                        if readers.len() == 1 { "it" } else { "them" },
                        if readers.len() == 1 { "it will" } else { "they will" },
                    )
                })
            })
            .collect()
    }

    /// Plans from this state, as `deploy` and `plan` both do: each recorded service's base is
    /// its record's commit, and what the stacks say comes on top. A record of a deploy from
    /// uncommitted changes among the service's inputs deploys the service again
    /// ([`Reason::DeployedDirty`]).
    pub fn apply(&self, req: &mut ferry_plan::PlanRequest) {
        req.bases = self
            .records
            .iter()
            .map(|(k, r)| (k.clone(), r.commit.clone()))
            .collect();
        req.stacks = self.drift.clone();
        // Without `--since` (which may skip a service without a record): each deploys anyway,
        // and the plan says what its deploy will meet.
        if req.since.is_none() {
            req.stacks
                .extend(self.found.iter().map(|(s, r)| (s.clone(), r.clone())));
        }
        // A record of a deploy from uncommitted changes among its inputs: the stage may run
        // code that no diff from its commit shows (discarded since, or never pushed where a
        // plan of a commit runs), so the service deploys until a commit's package is what it
        // runs. (From that very tree, the diff from its commit says `changed` as well.)
        for (service, r) in self
            .records
            .iter()
            .filter(|(_, r)| r.from_uncommitted_inputs())
        {
            req.stacks
                .entry(service.clone())
                .or_insert_with(|| Reason::DeployedDirty {
                    commit: r.commit.clone(),
                });
        }
        // A service whose dependencies deployed since it last received their outputs deploys
        // too, so that a plan says what a deploy will touch (before, a plan said "0 to deploy"
        // while its stack still ran a dependency's old output, and a batch planned from it
        // never brought it up to date).
        for (service, of) in &self.not_received {
            req.stacks
                .entry(service.clone())
                .or_insert_with(|| Reason::NotReceived { of: of.clone() });
        }
    }
}

/// Why a stage's state could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error(
        "the deployment record of `{service}` in stage `{stage}` names stack {recorded}, but this stage's stack of `{service}` is {expected}: {why}"
    )]
    OtherStack {
        service: String,
        stage: String,
        recorded: String,
        expected: String,
        /// Why it is not taken for a move of the service's stack, and what to do.
        why: String,
    },
    #[error("failed to list the stacks of stage `{stage}`: {source}")]
    List {
        stage: String,
        source: Box<ferry_stacks::StackError>,
    },
}

/// Reads the stage's records and checks them against its stacks.
pub async fn read(
    ws: &Workspace,
    stage: &Stage,
    config: &SdkConfig,
    records: &RecordStore,
) -> Result<StageState, StateError> {
    let records = records.read_all().await?;
    let (mut moved, unjudged) = check_stacks(ws, stage, &records)?;
    let engine = Engine::for_config(config, ferry_stacks::DeployOptions::default());
    // A record whose commit is gone (a branch's move force-pushed away): a move when the stack
    // it names is gone, or is this service's of this stage by its tags (Ferry deployed it so).
    for (service, recorded, expected, why) in unjudged {
        let ours = match engine.describe(&recorded).await {
            Ok(None) => true,
            Ok(Some(info)) => ferry_stacks::verify(
                &recorded,
                &info,
                Some(&crate::ownership(ws, stage, &service)),
                false,
            )
            .is_ok(),
            Err(_) => false,
        };
        if !ours {
            return Err(StateError::OtherStack {
                service,
                stage: stage.name.clone(),
                recorded,
                expected,
                why,
            });
        }
        moved.insert(service, places(stage, &recorded, &expected));
    }
    let list = engine.list().await.map_err(|source| StateError::List {
        stage: stage.name.clone(),
        source: Box::new(source),
    })?;
    let not_received = records
        .keys()
        .filter(|s| ws.service(s).is_some())
        .filter_map(|s| {
            let of = crate::prepare::not_received(ws, &records, s);
            (!of.is_empty()).then(|| (s.clone(), of))
        })
        .collect();
    let mut drift = drifts(&records, &list);
    // A service whose stack moved deploys anew, whatever its old stack says (that one is left
    // as it is): a deploy, and a promote, rollback or approval, which take a package again for
    // a drifted stack.
    for (service, (from, to)) in &moved {
        drift.insert(
            service.clone(),
            Reason::StackMoved {
                from: from.clone(),
                to: to.clone(),
            },
        );
    }
    // And those whose stack moved onto one that is there already (made by hand, another's).
    let unrecorded = ws
        .services
        .iter()
        .filter(|s| !records.contains_key(&s.name) || moved.contains_key(&s.name))
        .map(|s| (s.name.clone(), ws.service_stack_name(s, stage)))
        .filter(|(_, stack)| list.stacks.contains_key(stack))
        .collect();
    Ok(StageState {
        drift,
        list_calls: list.calls,
        records,
        not_received,
        moved,
        unrecorded,
        found: BTreeMap::new(),
    })
}

impl StageState {
    /// Describes the stacks of [`unrecorded`](Self::unrecorded) (one DescribeStacks each, only
    /// for those: an earlier deploy script's, adopted by `init`; another service's; this
    /// one's, its first deploy stopped before its record) and keeps in
    /// [`found`](Self::found) what their tags say a deploy will do with each. For a plan or
    /// deploy without `--since` (which may skip such a service). One that cannot be described
    /// is left to the deploy to judge.
    pub async fn describe_unrecorded(&mut self, ws: &Workspace, stage: &Stage, config: &SdkConfig) {
        let engine = Engine::for_config(config, ferry_stacks::DeployOptions::default());
        for (service, stack) in &self.unrecorded {
            let moved_from = self.moved.get(service).map(|(from, _)| from.stack.as_str());
            if let Some(reason) = found_stack(ws, stage, &engine, service, stack, moved_from).await
            {
                self.found.insert(service.clone(), reason);
            }
        }
    }
}

/// What a deploy of `service`, which no record names (or whose record names `moved_from`, the
/// stack it moved to), does with its stack `stack`, there.
async fn found_stack(
    ws: &Workspace,
    stage: &Stage,
    engine: &Engine,
    service: &str,
    stack: &str,
    moved_from: Option<&str>,
) -> Option<Reason> {
    let info = engine.describe(stack).await.ok()??;
    let owner = crate::ownership(ws, stage, service);
    let detail = match ferry_stacks::verify(stack, &info, Some(&owner), false) {
        Ok(()) => {
            use ferry_stacks::Disposition as D;
            let what = match ferry_stacks::disposition(Some(&info.status)) {
                D::Update => "updates it".to_string(),
                D::Recreate => format!("deletes it ({}) and creates it again", info.status),
                _ => format!("takes it as its status, {}, says", info.status),
            };
            match moved_from {
                Some(from) => format!(
                    "and is tagged for this service, whose record names {from}, the stack it moved to: a deploy moves it back here and {what}"
                ),
                None => format!(
                    "and is tagged for this service, though no record names it (a first deploy that stopped before its record, or a record lost): a deploy {what}"
                ),
            }
        }
        Err(ferry_stacks::StackError::Unmanaged { .. }) => "without Ferry's tags (another tool's, or made by hand): without --adopt a deploy refuses it; --adopt takes it over".to_string(),
        Err(e) => format!("and a deploy refuses it: {e}"),
    };
    Some(Reason::StackFound {
        stack: stack.to_string(),
        detail,
    })
}

/// A move of a service's stack: where from and to.
pub type Moves = BTreeMap<String, (ferry_plan::StackPlace, ferry_plan::StackPlace)>;

/// A record naming another stack than the checkout gives its service, whose commit this
/// checkout, a whole clone, lacks (force-pushed away): judged by the stack's tags
/// ([`read`]). (service, the stack recorded, the one expected, why it could not be judged).
pub type Unjudged = Vec<(String, String, String, String)>;

/// A record of a service of the workspace must name the stack this stage gives that service,
/// or the one the configuration that deployed it gave it there (the service's stack moved
/// since: returned, service → from and to). Anything else is another stage's or project's
/// record (a records-path they share), and writing ours over it would lose it. A record whose
/// commit this checkout lacks is returned unjudged.
pub fn check_stacks(
    ws: &Workspace,
    stage: &Stage,
    records: &BTreeMap<String, Record>,
) -> Result<(Moves, Unjudged), StateError> {
    let mut moved = BTreeMap::new();
    let mut unjudged = Vec::new();
    let repo = std::cell::OnceCell::new();
    for (service, r) in records {
        if ws.service(service).is_none() {
            continue;
        }
        let expected = ws.stack_name(service, stage);
        if r.stack == expected {
            continue;
        }
        let repo = repo.get_or_init(|| ferry_changes::Repo::open(&ws.root).ok());
        let at = r.checkout();
        // Gone from a whole clone (a move force-pushed away): judged by tags. A shallow clone
        // cannot tell gone from hidden, nor another line of history from its own.
        if let Some(repo) = repo.as_ref()
            && repo.resolve(at).is_none()
            && !repo.is_shallow()
        {
            let short = at.get(..12).unwrap_or(at);
            unjudged.push((
                service.clone(),
                r.stack.clone(),
                expected,
                format!(
                    "this checkout lacks commit {short}, which deployed it (force-pushed away), and the stack's tags do not say it is this service's of this stage: the record belongs to another stage or project (a shared records-path: give each stage its own)"
                ),
            ));
            continue;
        }
        if let Err(why) = moved_from(ws, repo.as_ref(), stage, service, r) {
            return Err(StateError::OtherStack {
                service: service.clone(),
                stage: stage.name.clone(),
                recorded: r.stack.clone(),
                expected,
                why,
            });
        }
        moved.insert(service.clone(), places(stage, &r.stack, &expected));
    }
    Ok((moved, unjudged))
}

/// A move's two places, in the stage's region.
fn places(stage: &Stage, from: &str, to: &str) -> (ferry_plan::StackPlace, ferry_plan::StackPlace) {
    let place = |stack: &str| ferry_plan::StackPlace {
        stack: stack.to_string(),
        region: stage.config.region.clone(),
    };
    (place(from), place(to))
}

/// Whether `record` (of `service` in `stage`), naming another stack than the checkout gives the
/// service, is of a move of its stack: the configuration that deployed it (at the record's
/// [`named_at`](Record::named_at) commit, a promote's or rollback's checkout, else its
/// `commit`), which HEAD descends from, gave this project's service that stack there; or it
/// is of a deploy from uncommitted changes on such a commit (a stack name tried and dropped),
/// of this project's service and stage there, whose stack name no commit shows. Else why not,
/// and what to do.
fn moved_from(
    ws: &Workspace,
    repo: Option<&ferry_changes::Repo>,
    stage: &Stage,
    service: &str,
    record: &Record,
) -> Result<(), String> {
    let at = record.checkout();
    let short = at.get(..12).unwrap_or(at);
    let other = format!(
        "the record belongs to another stage or project (a shared records-path: give each stage its own), or this checkout lacks commit {short}, which deployed it (a shallow clone may hide it: `git fetch --unshallow`). (A service's stack name changed in the configuration, its `stack-name`, the project's pattern or a Serverless service's name, is a move: the service deploys to its new stack, and the old one stays until `remove {} --orphans`; from a checkout at or after the commit that deployed it)",
        stage.name
    );
    let Some(repo) = repo else {
        return Err(other);
    };
    // Another branch's deploy (a shared dev stage), or a newer one (a hotfix from an older
    // release branch): deploying from here would move the stack back, and their next deploy
    // forth again, each time with dependents taking the other stack's outputs.
    let behind = || {
        format!(
            "its record is of a deploy from commit {short}, whose configuration names that stack, and HEAD does not descend from it (another branch's deploy, or a newer one): deploying from here would move the service's stack back, and the next deploy of that line forth again; deploy from a checkout that holds {short} (merge it), or give the service the stack name it has there"
        )
    };
    let Ok(then) = ferry_plan::workspace_at(repo, at) else {
        return Err(other);
    };
    let Ok(stage_then) = then.stage(&stage.name) else {
        return Err(other);
    };
    let ours = then.project.name == ws.project.name
        && then.service(service).is_some()
        && stage_then.id == stage.id;
    // A deploy from uncommitted changes (a stack name tried, then dropped; a project pattern
    // changed with `global-inputs = []`): Ferry's own record of this project's stage and
    // service, though no commit shows the name it deployed to.
    let dirty = record.dirty && record.named_at.is_none();
    if !ours || !(dirty || then.stack_name(service, &stage_then) == record.stack) {
        return Err(other);
    }
    if repo.head_descends_from(at).is_err() {
        return Err(behind());
    }
    Ok(())
}

/// The drift of every recorded service against the stack list.
pub fn drifts(records: &BTreeMap<String, Record>, list: &StackList) -> BTreeMap<String, Reason> {
    records
        .iter()
        .filter_map(|(service, r)| {
            drift(r, list.stacks.get(&r.stack)).map(|reason| (service.clone(), reason))
        })
        .collect()
}

/// Whether the stack of `record` still is what the record says (`None`), or why it must deploy.
pub fn drift(record: &Record, stack: Option<&StackSummary>) -> Option<Reason> {
    let name = || record.stack.clone();
    let Some(s) = stack else {
        return Some(Reason::StackMissing { stack: name() });
    };
    if record.removing.is_some() {
        return Some(Reason::Drifted {
            stack: name(),
            detail: "was being removed by a run that stopped after it began emptying the stack's buckets: its site and data may be gone".into(),
        });
    }
    if s.status.ends_with("_IN_PROGRESS") {
        return Some(Reason::Drifted {
            stack: name(),
            detail: format!(
                "is {}: an operation outside Ferry is running on it",
                s.status
            ),
        });
    }
    if !ferry_stacks::is_stable(&s.status) {
        return Some(Reason::StackFailed {
            stack: name(),
            status: s.status.clone(),
        });
    }
    if record.stack_id.as_ref().is_some_and(|id| *id != s.id) {
        return Some(Reason::Drifted {
            stack: name(),
            detail: "was deleted and created again outside Ferry".to_string(),
        });
    }
    match (record.stack_updated, s.last_updated) {
        (Some(recorded), Some(now)) if recorded != now => Some(Reason::Drifted {
            stack: name(),
            detail: format!(
                "was changed outside Ferry at {} UTC (the record has {} UTC)",
                ferry_records::format_time((now / 1000).max(0) as u64),
                ferry_records::format_time((recorded / 1000).max(0) as u64)
            ),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            service: "api".into(),
            stage: Some("dev".into()),
            stack: "api-dev".into(),
            commit: "c".into(),
            dirty: false,
            template_hash: "t".into(),
            parameters_hash: "p".into(),
            artifacts: BTreeMap::new(),
            deployed_at: 1,
            duration_ms: 1,
            acceptance: None,
            outputs: BTreeMap::new(),
            stack_id: Some("id-1".into()),
            stack_updated: Some(1_700_000_000_000),
            kind: None,
            ..Default::default()
        }
    }

    fn stack(status: &str, id: &str, updated: i64) -> StackSummary {
        StackSummary {
            name: "api-dev".into(),
            id: id.into(),
            status: status.into(),
            last_updated: Some(updated),
        }
    }

    #[test]
    fn every_row_of_the_drift_rule() {
        let r = record();
        let t = 1_700_000_000_000;
        assert_eq!(drift(&r, Some(&stack("UPDATE_COMPLETE", "id-1", t))), None);
        assert_eq!(
            drift(&r, None),
            Some(Reason::StackMissing {
                stack: "api-dev".into()
            })
        );
        assert_eq!(
            drift(&r, Some(&stack("ROLLBACK_COMPLETE", "id-1", t))),
            Some(Reason::StackFailed {
                stack: "api-dev".into(),
                status: "ROLLBACK_COMPLETE".into()
            })
        );
        for failed in ["UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_FAILED"] {
            assert!(matches!(
                drift(&r, Some(&stack(failed, "id-1", t))),
                Some(Reason::StackFailed { .. })
            ));
        }
        assert!(matches!(
            drift(&r, Some(&stack("UPDATE_IN_PROGRESS", "id-1", t))),
            Some(Reason::Drifted { detail, .. }) if detail.contains("UPDATE_IN_PROGRESS")
        ));
        assert!(matches!(
            drift(&r, Some(&stack("CREATE_COMPLETE", "id-2", t))),
            Some(Reason::Drifted { detail, .. }) if detail.contains("created again")
        ));
        assert!(matches!(
            drift(&r, Some(&stack("UPDATE_COMPLETE", "id-1", t + 60_000))),
            Some(Reason::Drifted { detail, .. }) if detail.contains("changed outside Ferry")
        ));
        // A record from before ids and times were kept: only what the status says.
        let old = Record {
            stack_id: None,
            stack_updated: None,
            kind: None,
            ..record()
        };
        assert_eq!(
            drift(&old, Some(&stack("UPDATE_COMPLETE", "id-9", t + 1))),
            None
        );
    }
}
