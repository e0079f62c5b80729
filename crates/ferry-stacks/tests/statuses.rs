//! Every stack status path, with scripted CloudFormation responses (aws-smithy-mocks): the
//! statuses the local emulator cannot produce on demand.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ErrorMetadata;
use aws_sdk_cloudformation::operation::continue_update_rollback::ContinueUpdateRollbackOutput;
use aws_sdk_cloudformation::operation::create_change_set::{
    CreateChangeSetError, CreateChangeSetOutput,
};
use aws_sdk_cloudformation::operation::create_stack::{CreateStackError, CreateStackOutput};
use aws_sdk_cloudformation::operation::delete_change_set::DeleteChangeSetOutput;
use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stacks::{
    DescribeStacksError, DescribeStacksOutput,
};
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
use aws_sdk_cloudformation::operation::update_stack::{UpdateStackError, UpdateStackOutput};
use aws_sdk_cloudformation::operation::update_termination_protection::UpdateTerminationProtectionOutput;
use aws_sdk_cloudformation::primitives::DateTime;
use aws_sdk_cloudformation::types::{
    ChangeSetStatus, Output, ResourceStatus, Stack, StackEvent, StackStatus, Tag,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use ferry_stacks::{
    Action, DeployOptions, Engine, Method, Progress, StackError, StackSpec, TemplateSource,
};

const ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/api-dev/1";

/// The stack `api-dev` in `status`, tagged as [`spec`] tags it.
fn stack(status: &str) -> DescribeStacksOutput {
    let s = Stack::builder()
        .stack_name("api-dev")
        .stack_id(ID)
        .stack_status(StackStatus::from(status))
        .creation_time(DateTime::from_secs(0))
        .tags(Tag::builder().key("ferry:service").value("api").build())
        .outputs(
            Output::builder()
                .output_key("Url")
                .output_value(format!("https://{status}"))
                .build(),
        )
        .build();
    DescribeStacksOutput::builder().stacks(s).build()
}

/// CloudFormation's answer to what it refuses: a `ValidationError` with `message`.
fn validation_error(message: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("ValidationError")
        .message(message)
        .build()
}

/// In `describes`: the stack does not exist (yet, or any more).
const MISSING: &str = "";

/// DescribeStacks answering with these stack statuses in turn (`MISSING`: no such stack).
fn describes(statuses: &[&'static str]) -> Rule {
    let mut seq = mock!(Client::describe_stacks).sequence();
    for &status in statuses {
        seq = if status == MISSING {
            seq.error(missing)
        } else {
            seq.output(move || stack(status))
        };
    }
    seq.build()
}

fn missing() -> DescribeStacksError {
    DescribeStacksError::generic(validation_error("Stack with id api-dev does not exist"))
}

fn event(id: &str, logical: &str, status: &str, reason: Option<&str>) -> StackEvent {
    StackEvent::builder()
        .stack_id(ID)
        .stack_name("api-dev")
        .event_id(id)
        .logical_resource_id(logical)
        .resource_type("AWS::Lambda::Function")
        .resource_status(ResourceStatus::from(status))
        .set_resource_status_reason(reason.map(String::from))
        .timestamp(DateTime::from_secs(1))
        .build()
}

fn events(list: Vec<StackEvent>) -> DescribeStackEventsOutput {
    DescribeStackEventsOutput::builder()
        .set_stack_events(Some(list))
        .build()
}

fn spec(method: Method) -> StackSpec {
    StackSpec {
        name: "api-dev".into(),
        template: TemplateSource::Body("Resources: {}\n".into()),
        parameters: BTreeMap::from([("Stage".into(), "dev".into())]),
        tags: BTreeMap::from([("ferry:service".into(), "api".into())]),
        method,
        termination_protection: false,
        owner: None,
        adopt: false,
        renamed_from: None,
    }
}

fn options() -> DeployOptions {
    DeployOptions {
        timeout: Duration::from_secs(1),
        poll_initial: Duration::from_millis(1),
        poll_max: Duration::from_millis(5),
        continue_rollback: false,
        emulator: None,
    }
}

fn no_events() -> Rule {
    mock!(Client::describe_stack_events)
        .sequence()
        .output(|| events(vec![]))
        .repeatedly()
        .build()
}

struct Run {
    result: Result<ferry_stacks::Deployed, StackError>,
    progress: Vec<Progress>,
}

async fn deploy(rules: &[&Rule], spec: &StackSpec, options: DeployOptions) -> Run {
    let client = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, rules);
    let seen = Mutex::new(Vec::new());
    let result = Engine::new(client, options)
        .deploy(spec, &|p| seen.lock().unwrap().push(p))
        .await;
    Run {
        result,
        progress: seen.into_inner().unwrap(),
    }
}

#[tokio::test]
async fn no_stack_is_created_and_its_events_streamed() {
    let describe = describes(&[MISSING, "CREATE_IN_PROGRESS", "CREATE_COMPLETE"]);
    let create = mock!(Client::create_stack)
        .then_output(|| CreateStackOutput::builder().stack_id(ID).build());
    let evs = mock!(Client::describe_stack_events)
        .sequence()
        .output(|| events(vec![event("e1", "Fn", "CREATE_IN_PROGRESS", None)]))
        .output(|| {
            events(vec![
                event("e2", "Fn", "CREATE_COMPLETE", None),
                event("e1", "Fn", "CREATE_IN_PROGRESS", None),
            ])
        })
        .build();
    let run = deploy(
        &[&describe, &create, &evs],
        &spec(Method::Direct),
        options(),
    )
    .await;
    let d = run.result.unwrap();
    assert_eq!(d.action, Action::Created);
    assert_eq!(d.outputs["Url"], "https://CREATE_COMPLETE");
    let statuses: Vec<String> = run
        .progress
        .iter()
        .filter_map(|p| match p {
            Progress::Event(e) => Some(e.status.clone()),
            Progress::Note(_) => None,
        })
        .collect();
    assert_eq!(
        statuses,
        ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"],
        "each event once, oldest first"
    );
    assert_eq!(create.num_calls(), 1);
}

/// Records the `ClientRequestToken` of every CreateStack request sent (each attempt).
#[derive(Debug)]
struct Tokens(std::sync::Arc<Mutex<Vec<String>>>);

impl aws_sdk_cloudformation::config::Intercept for Tokens {
    fn name(&self) -> &'static str {
        "Tokens"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_cloudformation::config::interceptors::BeforeTransmitInterceptorContextRef<
            '_,
        >,
        _: &aws_sdk_cloudformation::config::RuntimeComponents,
        _: &mut aws_sdk_cloudformation::config::ConfigBag,
    ) -> Result<(), aws_sdk_cloudformation::error::BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        let body = String::from_utf8_lossy(body);
        if body.contains("Action=CreateStack") {
            let token = body
                .split('&')
                .find_map(|kv| kv.strip_prefix("ClientRequestToken="))
                .unwrap_or("(none)");
            self.0.lock().unwrap().push(token.to_string());
        }
        Ok(())
    }
}

/// A stack operation carries a token (`ClientRequestToken`) that a retry of it repeats, so that
/// CloudFormation takes the retry for the request it already has rather than refusing a second
/// CreateStack of the name.
#[tokio::test(start_paused = true)]
async fn a_retried_create_repeats_its_request_token() {
    let create = mock!(Client::create_stack)
        .sequence()
        .error(|| {
            CreateStackError::generic(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .output(|| CreateStackOutput::builder().stack_id(ID).build())
        .build();
    let describe = describes(&[MISSING, "CREATE_IN_PROGRESS", "CREATE_COMPLETE"]);
    let events = no_events();
    let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &create, &events],
        |b| b
            .retry_config(
                aws_sdk_cloudformation::config::retry::RetryConfig::standard().with_max_attempts(3)
            )
            .interceptor(Tokens(sent.clone()))
    );
    let d = Engine::new(client, options())
        .deploy(&spec(Method::Direct), &|_| {})
        .await
        .unwrap();
    assert_eq!(d.action, Action::Created);
    assert_eq!(create.num_calls(), 2, "throttled once, then retried");
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "two attempts sent: {sent:?}");
    assert!(sent[0].starts_with("ferry-"), "{sent:?}");
    assert_eq!(sent[0], sent[1], "the retry repeats the token");
}

#[tokio::test]
async fn an_unchanged_direct_update_is_a_success() {
    let describe = mock!(Client::describe_stacks).then_output(|| stack("UPDATE_COMPLETE"));
    let update = mock!(Client::update_stack).then_error(|| {
        UpdateStackError::generic(validation_error("No updates are to be performed."))
    });
    let run = deploy(
        &[&describe, &update, &no_events()],
        &spec(Method::Direct),
        options(),
    )
    .await;
    let d = run.result.unwrap();
    assert_eq!(d.action, Action::Unchanged);
    assert_eq!(d.outputs["Url"], "https://UPDATE_COMPLETE");
}

#[tokio::test]
async fn an_empty_change_set_is_a_success_whether_failed_or_refused() {
    // AWS: the change set is created, then FAILED with "didn't contain changes"; it is deleted.
    let describe = mock!(Client::describe_stacks).then_output(|| stack("CREATE_COMPLETE"));
    let create = mock!(Client::create_change_set).then_output(|| {
        CreateChangeSetOutput::builder()
            .id("cs-1")
            .stack_id(ID)
            .build()
    });
    let describe_cs = mock!(Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .status(ChangeSetStatus::Failed)
            .status_reason("The submitted information didn't contain changes. Submit different information to create a change set.")
            .build()
    });
    let delete_cs =
        mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build());
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let run = deploy(
        &[
            &describe,
            &create,
            &describe_cs,
            &delete_cs,
            &execute,
            &no_events(),
        ],
        &spec(Method::ChangeSet),
        options(),
    )
    .await;
    assert_eq!(run.result.unwrap().action, Action::Unchanged);
    assert_eq!(delete_cs.num_calls(), 1, "the empty change set is removed");
    assert_eq!(execute.num_calls(), 0);

    // The local emulator: CreateChangeSet itself answers "No updates are to be performed".
    let refused = mock!(Client::create_change_set).then_error(|| {
        CreateChangeSetError::generic(validation_error("No updates are to be performed."))
    });
    let run = deploy(
        &[&describe, &refused, &no_events()],
        &spec(Method::ChangeSet),
        options(),
    )
    .await;
    assert_eq!(run.result.unwrap().action, Action::Unchanged);
}

/// A stack whose template and parameters are the spec's but whose tags are not (adopted from the
/// tool that deployed that template, taken over for a renamed service): CloudFormation answers
/// the change set with "no changes" when no resource takes tags, so the tags are set by an
/// UpdateStack, which is awaited. Before, the stack stayed untagged and the next deploy
/// refused it again.
#[tokio::test]
async fn a_stack_lacking_only_its_tags_is_updated_for_them() {
    let untagged = |status: &'static str| {
        move || {
            let mut out = stack(status);
            out.stacks.as_mut().unwrap()[0].tags = None;
            out
        }
    };
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(untagged("UPDATE_COMPLETE"))
        .output(untagged("UPDATE_IN_PROGRESS"))
        .output(|| stack("UPDATE_COMPLETE"))
        .build();
    let create = mock!(Client::create_change_set).then_error(|| {
        CreateChangeSetError::generic(validation_error("No updates are to be performed."))
    });
    let update = mock!(Client::update_stack)
        .match_requests(|r| {
            r.use_previous_template().is_none()
                && r.tags()
                    .iter()
                    .any(|t| t.key() == Some("ferry:service") && t.value() == Some("api"))
        })
        .then_output(|| UpdateStackOutput::builder().stack_id(ID).build());
    let mut adopted = spec(Method::ChangeSet);
    adopted.adopt = true;
    let run = deploy(
        &[&describe, &create, &update, &no_events()],
        &adopted,
        options(),
    )
    .await;
    assert_eq!(run.result.unwrap().action, Action::Updated);
    assert_eq!(update.num_calls(), 1);

    // Tagged already: nothing to update.
    let describe = mock!(Client::describe_stacks).then_output(|| stack("UPDATE_COMPLETE"));
    let update = mock!(Client::update_stack).then_output(|| UpdateStackOutput::builder().build());
    let run = deploy(
        &[&describe, &create, &update, &no_events()],
        &spec(Method::ChangeSet),
        options(),
    )
    .await;
    assert_eq!(run.result.unwrap().action, Action::Unchanged);
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn a_change_set_update_is_executed_and_awaited() {
    let describe = describes(&[
        "UPDATE_COMPLETE",
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_COMPLETE",
    ]);
    let create = mock!(Client::create_change_set).then_output(|| {
        CreateChangeSetOutput::builder()
            .id("cs-1")
            .stack_id(ID)
            .build()
    });
    let describe_cs = mock!(Client::describe_change_set)
        .sequence()
        .output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateInProgress)
                .build()
        })
        .output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .build()
        })
        .build();
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let protect = mock!(Client::update_termination_protection)
        .then_output(|| UpdateTerminationProtectionOutput::builder().build());
    let mut s = spec(Method::ChangeSet);
    s.termination_protection = true;
    let run = deploy(
        &[
            &describe,
            &create,
            &describe_cs,
            &execute,
            &protect,
            &no_events(),
        ],
        &s,
        options(),
    )
    .await;
    let d = run.result.unwrap();
    assert_eq!(d.action, Action::Updated);
    assert_eq!(execute.num_calls(), 1);
    assert_eq!(
        protect.num_calls(),
        1,
        "protected stages get termination protection"
    );
}

/// A new stack's change set, executed: a read right after may still say `REVIEW_IN_PROGRESS`,
/// which is waited out (as `*_IN_PROGRESS` is), not taken for the end of the creation.
#[tokio::test]
async fn a_new_stack_read_as_in_review_right_after_its_change_set_runs_is_awaited() {
    let describe = describes(&[
        MISSING,
        "REVIEW_IN_PROGRESS",
        "CREATE_IN_PROGRESS",
        "CREATE_COMPLETE",
    ]);
    let create = mock!(Client::create_change_set).then_output(|| {
        CreateChangeSetOutput::builder()
            .id("cs-1")
            .stack_id(ID)
            .build()
    });
    let describe_cs = mock!(Client::describe_change_set)
        .sequence()
        .output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .build()
        })
        .repeatedly()
        .build();
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let run = deploy(
        &[&describe, &create, &describe_cs, &execute, &no_events()],
        &spec(Method::ChangeSet),
        options(),
    )
    .await;
    let d = run.result.unwrap();
    assert_eq!(d.action, Action::Created);
    assert_eq!(execute.num_calls(), 1);
}

#[tokio::test]
async fn rollback_complete_is_deleted_and_created_again_with_a_note() {
    let describe = describes(&[
        "ROLLBACK_COMPLETE",
        "DELETE_IN_PROGRESS",
        "DELETE_COMPLETE",
        MISSING,
        "CREATE_COMPLETE",
    ]);
    let delete = mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
    let create = mock!(Client::create_stack)
        .then_output(|| CreateStackOutput::builder().stack_id(ID).build());
    let run = deploy(
        &[&describe, &delete, &create, &no_events()],
        &spec(Method::Direct),
        options(),
    )
    .await;
    let d = run.result.unwrap();
    assert_eq!(d.action, Action::Recreated);
    assert_eq!((delete.num_calls(), create.num_calls()), (1, 1));
    assert!(
        run.progress.iter().any(|p| matches!(p, Progress::Note(n) if n.contains("ROLLBACK_COMPLETE") && n.contains("deleting it"))),
        "{:?}",
        run.progress
    );
}

#[tokio::test]
async fn a_busy_stack_is_awaited_then_updated_and_a_stuck_one_is_a_bounded_error() {
    let describe = describes(&[
        "UPDATE_IN_PROGRESS",
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE",
        "UPDATE_COMPLETE",
    ]);
    let update = mock!(Client::update_stack).then_error(|| {
        UpdateStackError::generic(validation_error("No updates are to be performed."))
    });
    let run = deploy(
        &[&describe, &update, &no_events()],
        &spec(Method::Direct),
        options(),
    )
    .await;
    assert_eq!(run.result.unwrap().action, Action::Unchanged);
    assert_eq!(
        update.num_calls(),
        1,
        "decided again once the other operation ended"
    );

    let stuck = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack("CREATE_IN_PROGRESS"))
        .repeatedly()
        .build();
    let run = deploy(&[&stuck, &no_events()], &spec(Method::Direct), options()).await;
    let err = run.result.unwrap_err();
    assert!(matches!(err, StackError::Busy { .. }), "{err:?}");
    assert!(
        err.to_string().contains("still CREATE_IN_PROGRESS"),
        "{err}"
    );
}

#[tokio::test]
async fn update_rollback_failed_stops_or_continues_the_rollback_when_asked() {
    let describe = || {
        describes(&[
            "UPDATE_ROLLBACK_FAILED",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "UPDATE_COMPLETE",
        ])
    };
    let d = describe();
    let run = deploy(&[&d, &no_events()], &spec(Method::Direct), options()).await;
    let err = run.result.unwrap_err();
    assert!(matches!(err, StackError::UpdateRollbackFailed { .. }));
    assert!(
        err.to_string().contains("--continue-rollback")
            && err.to_string().contains("ContinueUpdateRollback")
    );

    let d = describe();
    let cont = mock!(Client::continue_update_rollback)
        .then_output(|| ContinueUpdateRollbackOutput::builder().build());
    let update = mock!(Client::update_stack)
        .then_output(|| UpdateStackOutput::builder().stack_id(ID).build());
    let mut o = options();
    o.continue_rollback = true;
    let run = deploy(
        &[&d, &cont, &update, &no_events()],
        &spec(Method::Direct),
        o,
    )
    .await;
    assert_eq!(run.result.unwrap().action, Action::Updated);
    assert_eq!(cont.num_calls(), 1);
}

#[tokio::test]
async fn paused_and_delete_failed_stacks_are_clear_errors() {
    for (status, expect) in [
        ("CREATE_FAILED", "rollback disabled"),
        ("UPDATE_FAILED", "rollback disabled"),
        ("DELETE_FAILED", "DELETE_FAILED"),
    ] {
        let describe = mock!(Client::describe_stacks).then_output(move || stack(status));
        let run = deploy(&[&describe, &no_events()], &spec(Method::Direct), options()).await;
        let err = run.result.unwrap_err().to_string();
        assert!(
            err.contains(status) && err.contains(expect),
            "{status}: {err}"
        );
    }
}

#[tokio::test]
async fn a_failed_update_reports_its_failing_resources() {
    let describe = describes(&[
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE",
    ]);
    let update = mock!(Client::update_stack)
        .then_output(|| UpdateStackOutput::builder().stack_id(ID).build());
    let old = || event("old", "Fn", "CREATE_COMPLETE", None);
    let evs = mock!(Client::describe_stack_events)
        .sequence()
        .output(move || events(vec![old()]))
        .output(move || {
            events(vec![
                event(
                    "e2",
                    "Fn",
                    "UPDATE_FAILED",
                    // A reason is text a template's author or a custom resource wrote: it
                    // reaches the terminal on one line, steering nothing.
                    Some("Memory size 99999 is above the limit\n[  9.9s] api: created\u{1b}[2J"),
                ),
                event("e1", "Fn", "UPDATE_IN_PROGRESS", None),
                old(),
            ])
        })
        .repeatedly()
        .build();
    let run = deploy(
        &[&describe, &update, &evs],
        &spec(Method::Direct),
        options(),
    )
    .await;
    match run.result.unwrap_err() {
        StackError::Failed {
            status, failures, ..
        } => {
            assert_eq!(status, "UPDATE_ROLLBACK_COMPLETE");
            assert_eq!(failures.len(), 1);
            assert_eq!(
                failures[0].reason.as_deref(),
                Some("Memory size 99999 is above the limit [  9.9s] api: created\\u{1b}[2J")
            );
        }
        other => panic!("{other:?}"),
    }
    // The event from before the operation is not streamed again.
    assert!(
        !run.progress
            .iter()
            .any(|p| matches!(p, Progress::Event(e) if e.id == "old"))
    );
}

#[tokio::test]
async fn an_operation_that_never_ends_times_out_and_large_templates_are_refused() {
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .error(missing)
        .output(|| stack("CREATE_IN_PROGRESS"))
        .repeatedly()
        .build();
    let create = mock!(Client::create_stack)
        .then_output(|| CreateStackOutput::builder().stack_id(ID).build());
    let mut o = options();
    o.timeout = Duration::from_millis(100);
    let run = deploy(
        &[&describe, &create, &no_events()],
        &spec(Method::Direct),
        o,
    )
    .await;
    assert!(matches!(
        run.result.unwrap_err(),
        StackError::Timeout { .. }
    ));
    // On the local emulator, its own create left in progress (a custom resource waiting for an
    // answer nothing sends) is said after the short wait, not at `--timeout`: the emulator
    // ends an operation within its request. Before, Ferry waited the whole hour, silent.
    let mut o = options();
    o.timeout = Duration::from_secs(3600);
    o.emulator = Some(Duration::from_millis(50));
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .error(missing)
        .output(|| stack("CREATE_IN_PROGRESS"))
        .repeatedly()
        .build();
    let create = mock!(Client::create_stack)
        .then_output(|| CreateStackOutput::builder().stack_id(ID).build());
    let started = std::time::Instant::now();
    let run = deploy(
        &[&describe, &create, &no_events()],
        &spec(Method::Direct),
        o,
    )
    .await;
    assert_eq!(create.num_calls(), 1, "its own create");
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = run.result.unwrap_err();
    assert!(
        matches!(err, StackError::StuckInEmulator { ref status, .. } if status == "CREATE_IN_PROGRESS"),
        "{err:?}"
    );

    // A status this code does not know (the emulator's `CREATE_PENDING`) is waited for, within
    // the deadline: before, the wait ended at once and the deploy decided to wait again, for
    // ever (32,700 DescribeStacks in 10 minutes).
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack("CREATE_PENDING"))
        .repeatedly()
        .build();
    let mut o = options();
    o.timeout = Duration::from_millis(100);
    let run = deploy(&[&describe, &no_events()], &spec(Method::Direct), o).await;
    assert!(
        matches!(run.result, Err(StackError::Busy { ref status, .. }) if status == "CREATE_PENDING"),
        "{:?}",
        run.result
    );
    assert!(
        describe.num_calls() < 1000,
        "{} calls",
        describe.num_calls()
    );

    let mut big = spec(Method::Direct);
    big.template = TemplateSource::Body("x".repeat(ferry_stacks::MAX_INLINE_TEMPLATE + 1));
    let run = deploy(&[], &big, options()).await;
    let err = run.result.unwrap_err().to_string();
    assert!(
        err.contains("51201 bytes") && err.contains("by URL"),
        "{err}"
    );
}

#[tokio::test]
async fn a_review_reads_replacements_from_a_change_set_it_never_executes() {
    use aws_sdk_cloudformation::types::{Change, Replacement, ResourceChange};
    let describe = describes(&["UPDATE_COMPLETE"]);
    let create = mock!(Client::create_change_set).then_output(|| {
        CreateChangeSetOutput::builder()
            .id("cs-review")
            .stack_id(ID)
            .build()
    });
    let change = |id: &str, r: Replacement| {
        Change::builder()
            .resource_change(
                ResourceChange::builder()
                    .logical_resource_id(id)
                    .replacement(r)
                    .build(),
            )
            .build()
    };
    // Two pages of changes, after the change set is ready.
    let describe_cs = mock!(Client::describe_change_set)
        .sequence()
        .output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .build()
        })
        .output(move || {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .changes(change("Table", Replacement::True))
                .next_token("page-2")
                .build()
        })
        .output(move || {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .changes(change("Fn", Replacement::Conditional))
                .build()
        })
        .build();
    let delete =
        mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build());
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &create, &describe_cs, &delete, &execute]
    );
    let got = Engine::new(client, options())
        .replacements(&spec(Method::ChangeSet))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        BTreeMap::from([
            ("Fn".to_string(), "Conditional".to_string()),
            ("Table".to_string(), "True".to_string()),
        ])
    );
    assert_eq!(execute.num_calls(), 0, "a review never executes");
    assert_eq!(delete.num_calls(), 1, "and leaves no change set behind");

    // Nothing would change: the empty change set is refused, nothing to read.
    let describe = describes(&["UPDATE_COMPLETE"]);
    let refused = mock!(Client::create_change_set).then_error(|| {
        CreateChangeSetError::generic(validation_error("No updates are to be performed."))
    });
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &refused]
    );
    let none = Engine::new(client, options())
        .replacements(&spec(Method::ChangeSet))
        .await
        .unwrap();
    assert_eq!(none, None);
}

#[tokio::test]
async fn the_importers_of_an_export_are_every_page_and_none_is_cloudformations_refusal() {
    use aws_sdk_cloudformation::operation::list_imports::{ListImportsError, ListImportsOutput};
    let importers = |rule: &Rule| {
        let client = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [rule]);
        async move {
            Engine::new(client, options())
                .importers("store-dev", "store-dev-bucket")
                .await
        }
    };
    // Two pages.
    let pages = mock!(Client::list_imports)
        .sequence()
        .output(|| {
            ListImportsOutput::builder()
                .imports("reports-dev")
                .imports("billing-dev")
                .next_token("page-2")
                .build()
        })
        .output(|| ListImportsOutput::builder().imports("audit-prod").build())
        .build();
    assert_eq!(
        importers(&pages).await.unwrap().unwrap(),
        ["reports-dev", "billing-dev", "audit-prod"]
    );
    // CloudFormation's answer for an export that nothing imports is an error.
    let none = mock!(Client::list_imports).then_error(|| {
        ListImportsError::generic(validation_error(
            "Export 'store-dev-bucket' is not imported by any stack.",
        ))
    });
    assert_eq!(importers(&none).await.unwrap(), Some(Vec::new()));
    // Any other refusal is an error naming the call and the stack: nothing is taken for "none".
    let denied = mock!(Client::list_imports).then_error(|| {
        ListImportsError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User is not authorized to perform: cloudformation:ListImports")
                .build(),
        )
    });
    let err = importers(&denied).await.unwrap_err().to_string();
    assert!(
        err.contains("ListImports") && err.contains("store-dev") && err.contains("not authorized"),
        "{err}"
    );
}
