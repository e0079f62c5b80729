use crate::engine::StackEvent;

fn render_failures(events: &[StackEvent]) -> String {
    if events.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "  {} ({}): {} {}",
                e.logical_id,
                e.resource_type,
                e.status,
                e.reason.as_deref().unwrap_or("")
            )
        })
        .collect();
    format!("; failing resources:\n{}", lines.join("\n"))
}

/// Why a stack operation failed, with what to do. The failing events are kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    #[error("stack {stack} ended in {status}{}", render_failures(.failures))]
    Failed {
        stack: String,
        status: String,
        failures: Vec<StackEvent>,
    },
    #[error(
        "stack {stack} is still {status} after waiting {waited_secs}s for another operation to finish; run again later, or look at the stack's events in the console"
    )]
    Busy {
        stack: String,
        status: String,
        waited_secs: u64,
    },
    #[error(
        "stack {stack} is still {status} in the local emulator after {waited_secs}s: the emulator ends an operation within its request, so one left in progress is one it failed (its log says why; `local status` names it); delete the stack in the emulator, or run `local down` (which forgets all it held), then run the command again"
    )]
    StuckInEmulator {
        stack: String,
        status: String,
        waited_secs: u64,
    },
    #[error(
        "stack {stack} is UPDATE_ROLLBACK_FAILED; fix the resources that could not roll back, then deploy with --continue-rollback to call ContinueUpdateRollback"
    )]
    UpdateRollbackFailed { stack: String },
    #[error(
        "stack {stack} is {status} (created with rollback disabled, paused after a failure); roll it back or delete it, then deploy again"
    )]
    Paused { stack: String, status: String },
    #[error("stack {stack} is DELETE_FAILED; remove or retain the resources that could not be deleted, then delete the stack and deploy again{}", render_failures(.failures))]
    DeleteFailed {
        stack: String,
        failures: Vec<StackEvent>,
    },
    #[error(
        "stack {stack} did not finish within {waited_secs}s (still {status}); raise the timeout or look at the stack's events"
    )]
    Timeout {
        stack: String,
        status: String,
        waited_secs: u64,
    },
    #[error("{by} refused {operation} for stack {stack}: {message}{}", by.hint())]
    Rejected {
        stack: String,
        operation: &'static str,
        message: String,
        by: Refuser,
    },
    #[error(
        "the template of stack {stack} is {size} bytes, above the {max} bytes CloudFormation accepts inline; upload it and deploy it by URL"
    )]
    TemplateTooLarge {
        stack: String,
        size: usize,
        max: usize,
    },
    #[error(
        "refusing to touch stack {stack}: its Ferry tags say it belongs to {owner}, not to {expected}; give this project's stacks other names (stack-name in ferry.toml, with a separator no service or stage name holds between the two, e.g. \"{{project}}-{{stage}}--{{service}}\" when no stage name holds `--`: `a` of stage `x-feat` and `a-x` of stage `feat` give one name with a single `-`), or use another stage name"
    )]
    Foreign {
        stack: String,
        owner: String,
        expected: String,
    },
    #[error(
        "refusing to touch stack {stack}: its Ferry tags say it belongs to stage `{stage}` as a named stage of the ferry.toml that deployed it, which this checkout does not name and takes for a preview; run in a checkout that names it (another branch's), or name it in this ferry.toml's [stages]"
    )]
    NamedElsewhere { stack: String, stage: String },
    #[error(
        "stack {stack} is tagged for service `{from}`, which is no service any more: `{to}` was renamed from it and kept its stack; `deploy` with --adopt takes the stack over for `{to}` (Ferry tags it for `{to}` and drops the record of `{from}`; promote, rollback and approve never take a stack over), or give `{to}` its old name back (`name = \"{from}\"` in its service.toml)"
    )]
    RenamedService {
        stack: String,
        from: String,
        to: String,
    },
    #[error(
        "stack {stack} has termination protection on (deployed as a protected stage's, or protected by hand): only `remove` with --allow-protected removes it, turning the protection off first (`previews prune` never does)"
    )]
    TerminationProtected { stack: String },
    #[error(
        "stack {stack} exists but has no Ferry tags (it was made by another tool or by hand); pass --adopt to take it over (Ferry tags it, then updates or deletes it), or give this project's stacks other names (stack-name in ferry.toml, or a service's in its service.toml)"
    )]
    Unmanaged { stack: String },
    #[error(
        "stack {stack} has no Ferry tags, and taking it over (--adopt) would delete resources it holds that this service's template does not declare: {}; it is probably another template's stack (check the service's stack-name, and what init read it from); nothing was changed. To take it over all the same, deploy once the template declares them, or delete the stack first",
        .resources.join(", ")
    )]
    AdoptionWouldDelete {
        stack: String,
        resources: Vec<String>,
    },
    #[error(
        "stack {stack} could not be given Ferry's tags: {by} found nothing to change in an update whose only change is the stack's tags (the local emulator does so for a template with parameters), so it stays untagged and the next deploy would refuse it; change its template once (a `Metadata` entry will do), then deploy with --adopt again"
    )]
    TagsNotSet { stack: String, by: Refuser },
    #[error(
        "stack {stack} carries {own} tags that are not Ferry's and Ferry sets {ferry}: an update gives a stack all its tags at once, and CloudFormation takes at most 50; take {} of the stack's own tags off (in the console, or `aws cloudformation update-stack --stack-name {stack} --use-previous-template` with each parameter's `UsePreviousValue=true`, the capabilities the stack needs and `--tags` of those to keep), then deploy again",
        own + ferry - 50
    )]
    TooManyTags {
        stack: String,
        /// Tags the stack has that are not Ferry's (a team's, a cost centre's).
        own: usize,
        /// Tags Ferry sets.
        ferry: usize,
    },
    #[error("stack {stack}: {source}")]
    Api {
        stack: String,
        source: ferry_aws::AwsError,
    },
}

/// Who refused a request: CloudFormation, or the local emulator standing in for it (`--local`),
/// which refuses some templates AWS takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refuser {
    CloudFormation,
    /// The emulator, for what is no matter of the template (a name taken, capabilities).
    Emulator,
    /// The emulator judging a template (a validation error, a change set it could not make),
    /// which may be its own limit: AWS itself may take the template.
    EmulatorJudgingTemplate,
}

impl Refuser {
    /// What to add to a refusal: for the emulator judging a template, that it may be its own
    /// limit.
    fn hint(self) -> &'static str {
        match self {
            Refuser::CloudFormation | Refuser::Emulator => "",
            Refuser::EmulatorJudgingTemplate => {
                "; the emulator may not model a resource type or property the template uses (AWS itself may take it): its log says more (`local status` names it)"
            }
        }
    }
}

impl std::fmt::Display for Refuser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refuser::CloudFormation => "CloudFormation",
            Refuser::Emulator | Refuser::EmulatorJudgingTemplate => "the local AWS emulator",
        })
    }
}
