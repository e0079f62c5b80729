use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType, Parameter, Tag};
use tokio::time::{Instant, sleep};

use crate::ownership::{Ownership, Verdict, check};
use crate::status::{Disposition, disposition, in_progress};
use crate::{MAX_INLINE_TEMPLATE, Refuser, StackError};

/// How to create and update stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// CreateChangeSet + ExecuteChangeSet (reviewable; the default).
    #[default]
    ChangeSet,
    /// CreateStack / UpdateStack.
    Direct,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    Body(String),
    /// An S3 URL, for templates above 51,200 bytes.
    Url(String),
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct StackSpec {
    pub name: String,
    pub template: TemplateSource,
    /// Resolved parameter values.
    pub parameters: BTreeMap<String, String>,
    /// Tags besides the ownership tags, which `owner` adds.
    pub tags: BTreeMap<String, String>,
    pub method: Method,
    /// Turn on termination protection (protected stages).
    pub termination_protection: bool,
    /// Who the stack belongs to: an existing stack's tags must say the same (see
    /// [`crate::ownership`]), and the stack is tagged so. `None`: no check, no tags added.
    pub owner: Option<Ownership>,
    /// Take over an existing stack that has no Ferry tags (first deployed by another tool), or
    /// one tagged for the service `renamed_from`.
    pub adopt: bool,
    /// The service of this project and stage that this one was renamed from, when that service
    /// is gone and its record names this stack (a service that names its stack itself, a
    /// Serverless Framework service or one with a `stack-name` without `{service}`, keeps it
    /// when Ferry's name for it changes). A stack tagged for it is
    /// taken over with `adopt`, and refused without, saying so.
    pub renamed_from: Option<String>,
}

/// Waits and recovery choices.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// How long one [`Engine::deploy`] or [`Engine::delete`] may wait in all: for another
    /// operation running on the stack, for a change set, and for its own operation.
    pub timeout: Duration,
    /// First poll interval; doubles up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// Call ContinueUpdateRollback on an UPDATE_ROLLBACK_FAILED stack instead of stopping.
    pub continue_rollback: bool,
    /// Deploying to Ferry's local emulator (`--local`), with how long a stack in progress (found
    /// so, or left so by Ferry's own operation) is waited for. The emulator ends every operation
    /// within its request, so one left in progress is one it failed and never ends: after this
    /// wait it is reported as stuck, not waited for until `timeout`. It also ignores the
    /// `ClientRequestToken` that makes a retried CreateStack safe on AWS, and answers HTTP 500 to
    /// a template it cannot create after recording the stack (or an update it failed after
    /// applying part of it): a retry was told
    /// "already exists" (or "no updates are to be performed"), hiding that error, so each
    /// request that starts an operation (CreateStack, UpdateStack, a change set's creation and
    /// execution) is sent once; DeleteStack and ContinueUpdateRollback, which change nothing
    /// when repeated, are retried. `None`: AWS (or another endpoint), as usual.
    pub emulator: Option<Duration>,
}

/// How long a deploy to the local emulator waits for a stack another operation holds (see
/// [`DeployOptions::emulator`]).
pub const EMULATOR_BUSY_WAIT: Duration = Duration::from_secs(15);

/// The most tags CloudFormation gives one stack.
const MAX_TAGS: usize = 50;

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            timeout: Duration::from_secs(60 * 60),
            poll_initial: Duration::from_millis(500),
            poll_max: Duration::from_secs(10),
            continue_rollback: false,
            emulator: None,
        }
    }
}

/// One stack event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    pub id: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

impl StackEvent {
    pub fn is_failure(&self) -> bool {
        self.status.ends_with("_FAILED")
    }
}

/// What the engine reports while it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Event(StackEvent),
    /// A decision worth telling the user ("deleting … before re-creating it").
    Note(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    /// The first creation had failed: the stack was deleted and created again.
    Recreated,
    /// Nothing to change.
    Unchanged,
}

/// A successful deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub stack_name: String,
    pub stack_id: String,
    pub action: Action,
    pub status: String,
    pub outputs: BTreeMap<String, String>,
    /// When CloudFormation last changed the stack (its creation time if never updated), in
    /// milliseconds since the epoch: what a later run compares to notice changes made outside.
    pub last_updated: Option<i64>,
}

/// What one operation has seen of the stack's events: ids already streamed, and the failures.
#[derive(Debug, Default)]
struct Watch {
    seen: HashSet<String>,
    failures: Vec<StackEvent>,
}

/// A stack as DescribeStacks shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackInfo {
    pub id: String,
    pub status: String,
    pub outputs: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// Last update (else creation), milliseconds since the epoch.
    pub last_updated: Option<i64>,
    /// Termination protection is on.
    pub protected: bool,
    /// The stack's parameters as DescribeStacks shows them (NoEcho values as `****`).
    pub parameters: BTreeMap<String, String>,
    /// The names its outputs export (`Export: Name:`), which other stacks may import.
    pub exports: Vec<String>,
}

type Current = StackInfo;

/// One stack of a ListStacks pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSummary {
    pub name: String,
    pub id: String,
    pub status: String,
    /// Last update (else creation), milliseconds since the epoch.
    pub last_updated: Option<i64>,
}

/// Every stack of the account and region that is not deleted, by name, from one paginated
/// ListStacks pass.
#[derive(Debug, Clone, Default)]
pub struct StackList {
    pub stacks: BTreeMap<String, StackSummary>,
    /// ListStacks calls made (one per page of up to 100 stacks).
    pub calls: usize,
}

/// A stack as DescribeStacks shows it.
fn stack_info(s: &aws_sdk_cloudformation::types::Stack, name: &str) -> StackInfo {
    StackInfo {
        id: s.stack_id().unwrap_or(name).to_string(),
        status: s
            .stack_status()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default(),
        outputs: s
            .outputs()
            .iter()
            .filter_map(|o| {
                Some((
                    o.output_key()?.to_string(),
                    o.output_value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        tags: s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
        last_updated: millis(s.last_updated_time().or(s.creation_time())),
        protected: s.enable_termination_protection().unwrap_or(false),
        parameters: s
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_string(),
                    p.parameter_value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        exports: s
            .outputs()
            .iter()
            .filter_map(|o| o.export_name().map(String::from))
            .collect(),
    }
}

fn millis(t: Option<&aws_sdk_cloudformation::primitives::DateTime>) -> Option<i64> {
    t.and_then(|t| t.to_millis().ok())
}

/// Deploys and deletes stacks with one CloudFormation client.
#[derive(Debug, Clone)]
pub struct Engine {
    client: Client,
    options: DeployOptions,
}

/// The end of an operation: `success` reached, or a failure with the failing events.
fn conclude(
    name: &str,
    end: Option<Current>,
    failures: Vec<StackEvent>,
    success: &str,
    action: Action,
) -> Result<Deployed, StackError> {
    match end {
        Some(c) if c.status == success => Ok(Deployed {
            stack_name: name.to_string(),
            stack_id: c.id,
            action,
            status: c.status,
            outputs: c.outputs,
            last_updated: c.last_updated,
        }),
        Some(c) => Err(StackError::Failed {
            stack: name.to_string(),
            status: c.status,
            failures,
        }),
        None => Err(StackError::Failed {
            stack: name.to_string(),
            status: "DELETE_COMPLETE".into(),
            failures,
        }),
    }
}

/// Parameters, tags, capabilities and template of `spec` on any of the three stack requests
/// (CreateStack, UpdateStack, CreateChangeSet: distinct builder types with the same setters).
macro_rules! with_stack_input {
    ($req:expr, $spec:expr) => {{
        let req = $req
            .set_parameters(Some(Engine::parameters($spec)))
            .set_tags(Some(Engine::tags($spec)))
            .set_capabilities(Some(Engine::CAPABILITIES.to_vec()));
        match &$spec.template {
            TemplateSource::Body(b) => req.template_body(b),
            TemplateSource::Url(u) => req.template_url(u),
        }
    }};
}

/// Sends a request that starts a stack operation (CreateStack, UpdateStack, a change set's
/// creation or execution): on AWS with the SDK's retries, which its `ClientRequestToken` makes
/// safe; to the emulator once, as it ignores the token and answers HTTP 500 to an operation it
/// failed after recording it: a retry was then told "already exists" or "no updates are to be
/// performed", and a failed update was reported, and recorded, as done (see
/// [`DeployOptions::emulator`]).
macro_rules! send_operation {
    ($engine:expr, $req:expr) => {{
        let req = $req;
        if $engine.options.emulator.is_some() {
            let once = aws_sdk_cloudformation::config::Builder::default()
                .retry_config(aws_sdk_cloudformation::config::retry::RetryConfig::disabled());
            req.customize().config_override(once).send().await
        } else {
            req.send().await
        }
    }};
}

/// A token for one stack operation (`ClientRequestToken`, a change set's `ClientToken`). The SDK
/// sends the very same request again when it retries one (a timeout, a 5xx, throttling), and
/// CloudFormation then takes the retry for the request it already has: without a token, a
/// retried CreateStack whose first attempt went through is refused ("already exists") while
/// the stack is being created. Unique per operation: this process, this moment, a counter.
fn request_token() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("ferry-{nanos:x}-{:x}-{n:x}", std::process::id())
}

fn is_no_change(message: &str) -> bool {
    message.contains("No updates are to be performed") || message.contains("didn't contain changes")
}

/// The service's own message of an error (empty when it sent none).
fn service_message<E: ProvideErrorMetadata>(e: &E) -> String {
    e.message().unwrap_or_default().to_string()
}

/// What the service said of a failed call: its message, or, where the SDK could not read the
/// answer (an error in JSON where CloudFormation's protocol is XML, as the emulator writes
/// some), the message `ferry_aws` read from it (`explained`, the call's error explained).
fn said<E: ProvideErrorMetadata>(e: &E, explained: &ferry_aws::AwsError) -> String {
    let own = service_message(e);
    if !own.is_empty() {
        return own;
    }
    match &explained.code {
        Some(code) => explained
            .detail
            .strip_prefix(&format!("{code}: "))
            .unwrap_or(&explained.detail)
            .to_string(),
        None => explained.detail.clone(),
    }
}

impl Engine {
    /// How long an operation that hit its deadline waited, as the user set it: every deadline is
    /// the start of the whole stack operation plus `timeout`, so `--timeout 3` reports 3s even
    /// when the last wait began after earlier calls (and the poll that noticed came a little
    /// later).
    fn waited_secs(&self) -> u64 {
        self.options.timeout.as_secs()
    }

    /// An engine whose CloudFormation client is made from `config` (e.g. a stage's).
    pub fn for_config(config: &aws_config::SdkConfig, options: DeployOptions) -> Self {
        Engine::new(Client::new(config), options)
    }

    pub fn new(client: Client, options: DeployOptions) -> Self {
        Engine { client, options }
    }

    /// Who refuses this engine's requests; `template`: a refusal of what a template holds,
    /// `message` its words. What AWS refuses alike ([`refused_alike`]: a name another stack
    /// holds, a missing export) is no limit of the emulator.
    fn refuser(&self, template: bool, message: &str) -> Refuser {
        match (self.options.emulator.is_some(), template) {
            (false, _) => Refuser::CloudFormation,
            (true, true) if !refused_alike(message) => Refuser::EmulatorJudgingTemplate,
            (true, _) => Refuser::Emulator,
        }
    }

    fn api<E>(
        &self,
        stack: &str,
        operation: &'static str,
        e: &aws_sdk_cloudformation::error::SdkError<E>,
    ) -> StackError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.explained(stack, operation, e, ferry_aws::explain(operation, e))
    }

    /// [`Engine::api`] of an error already explained.
    fn explained<E: ProvideErrorMetadata>(
        &self,
        stack: &str,
        operation: &'static str,
        e: &E,
        explained: ferry_aws::AwsError,
    ) -> StackError {
        match explained.code.as_deref() {
            Some(
                "ValidationError"
                | "InsufficientCapabilitiesException"
                | "AlreadyExistsException"
                | "LimitExceededException",
            ) => {
                let message = said(e, &explained);
                let judged = explained.code.as_deref() == Some("ValidationError");
                StackError::Rejected {
                    stack: stack.to_string(),
                    operation,
                    by: self.refuser(judged, &message),
                    message,
                }
            }
            _ => StackError::Api {
                stack: stack.to_string(),
                source: explained,
            },
        }
    }

    /// The stack's id, status, outputs and tags; `None` when it does not exist.
    async fn current(&self, name: &str) -> Result<Option<Current>, StackError> {
        match self.client.describe_stacks().stack_name(name).send().await {
            Ok(out) => Ok(out.stacks().first().map(|s| stack_info(s, name))),
            Err(e) => {
                let explained = ferry_aws::explain("DescribeStacks", &e);
                if said(&e, &explained).contains("does not exist") {
                    Ok(None)
                } else {
                    Err(self.explained(name, "DescribeStacks", &e, explained))
                }
            }
        }
    }

    /// The stacks that import `export` (ListImports, every page): none when CloudFormation
    /// answers that no stack imports it (a `ValidationError`, its answer for an export in no
    /// use); `None` when the endpoint answers that it has no such call (HTTP 500 or 501
    /// without AWS's error document: an emulator that lacks ListImports answers with a page). `stack` names the exporting stack in an
    /// error.
    pub async fn importers(
        &self,
        stack: &str,
        export: &str,
    ) -> Result<Option<Vec<String>>, StackError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let req = self
                .client
                .list_imports()
                .export_name(export)
                .set_next_token(next.take());
            // The emulator lacks the call: asked once, not retried for seconds per stack.
            let sent = if self.options.emulator.is_some() {
                let once = aws_sdk_cloudformation::config::Builder::default()
                    .retry_config(aws_sdk_cloudformation::config::retry::RetryConfig::disabled());
                req.customize().config_override(once).send().await
            } else {
                req.send().await
            };
            match sent {
                Ok(page) => {
                    out.extend(page.imports.unwrap_or_default());
                    // A token given again would page forever (the SDK's paginators stop too).
                    match page.next_token {
                        Some(t) if !t.is_empty() && !seen.contains(&t) => {
                            seen.insert(t.clone());
                            next = Some(t);
                        }
                        _ => break,
                    }
                }
                Err(e) if service_message(&e).contains("is not imported by any stack") => break,
                Err(e) => {
                    let explained = ferry_aws::explain("ListImports", &e);
                    // HTTP 500 or 501 without AWS's error document: an endpoint that has no
                    // such operation (AWS's own failures name their code, `InternalFailure`; a
                    // gateway's 502, 503 or 504 is a failure like any other).
                    let not_aws = match explained.kind {
                        ferry_aws::Kind::NotAws { status: 500 | 501 } => true,
                        ferry_aws::Kind::ServerError { status: 500 | 501 } => {
                            explained.code.is_none()
                        }
                        _ => false,
                    };
                    if not_aws {
                        return Ok(None);
                    }
                    return Err(self.explained(stack, "ListImports", &e, explained));
                }
            }
        }
        Ok(Some(out))
    }

    /// The template the stack runs (GetTemplate, as processed: a SAM template expanded); `None`
    /// when the stack does not exist.
    pub async fn template(&self, name: &str) -> Result<Option<String>, StackError> {
        self.template_at(
            name,
            aws_sdk_cloudformation::types::TemplateStage::Processed,
        )
        .await
    }

    /// The template the stack was last given, as it was given (GetTemplate, original: a SAM
    /// template unexpanded, what a review of a SAM template compares with); `None` when the
    /// stack does not exist.
    pub async fn original_template(&self, name: &str) -> Result<Option<String>, StackError> {
        self.template_at(name, aws_sdk_cloudformation::types::TemplateStage::Original)
            .await
    }

    async fn template_at(
        &self,
        name: &str,
        stage: aws_sdk_cloudformation::types::TemplateStage,
    ) -> Result<Option<String>, StackError> {
        match self
            .client
            .get_template()
            .stack_name(name)
            .template_stage(stage)
            .send()
            .await
        {
            Ok(out) => Ok(out.template_body().map(String::from)),
            Err(e) if service_message(&e).contains("does not exist") => Ok(None),
            Err(e) => Err(self.api(name, "GetTemplate", &e)),
        }
    }

    /// Refuses to take over (`--adopt`) a stack without Ferry's tags when the update would
    /// delete resources it holds: a stack another template made (a script deploying another
    /// service's folder gave this service its name) would lose them (a probe's adopted storage
    /// stack lost its topic). Resources whose logical ids change from one compile to the next
    /// (an API deployment, a Lambda version) do not count, nor a template expanded by a
    /// transform (SAM's resources are named by CloudFormation), nor one given by URL.
    async fn check_adoption(
        &self,
        spec: &StackSpec,
        current: &StackInfo,
    ) -> Result<(), StackError> {
        let adopting = takes_over(spec, &current.tags);
        // A change set says what it would remove (see `change_set`), SAM's and a template by
        // URL too; a direct update is judged by the template's body.
        let TemplateSource::Body(body) = &spec.template else {
            return Ok(());
        };
        if !adopting || spec.method == Method::ChangeSet {
            return Ok(());
        }
        let Some(keep) = adopted_logical_ids(body) else {
            return Ok(());
        };
        let lost: Vec<String> = self
            .resources(&spec.name)
            .await?
            .into_iter()
            .filter(|r| {
                !keep.contains(&r.logical_id)
                    && !RENAMED_EACH_COMPILE.contains(&r.resource_type.as_str())
            })
            .map(|r| format!("{} ({})", r.logical_id, r.resource_type))
            .collect();
        if lost.is_empty() {
            return Ok(());
        }
        Err(StackError::AdoptionWouldDelete {
            stack: spec.name.clone(),
            resources: lost,
        })
    }

    /// The stack's resources as (logical id, type, physical id) (ListStackResources, every
    /// page); empty when the stack does not exist. A resource without a physical id yet has "".
    pub async fn resources(&self, name: &str) -> Result<Vec<StackResource>, StackError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_stack_resources()
            .stack_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if service_message(&e).contains("does not exist") => return Ok(Vec::new()),
                Err(e) => return Err(self.api(name, "ListStackResources", &e)),
            };
            for r in page.stack_resource_summaries() {
                out.push(StackResource {
                    logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: r.resource_type().unwrap_or_default().to_string(),
                    physical_id: r.physical_resource_id().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(out)
    }

    /// Every stack of the account and region that is not deleted, with its tags and outputs, by
    /// name (DescribeStacks without a name, every page).
    pub async fn describe_all(&self) -> Result<BTreeMap<String, StackInfo>, StackError> {
        let mut out = BTreeMap::new();
        let mut pages = self.client.describe_stacks().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.api("(every stack)", "DescribeStacks", &e))?;
            for s in page.stacks() {
                let name = s.stack_name().unwrap_or_default();
                let info = stack_info(s, name);
                if info.status != "DELETE_COMPLETE" {
                    out.insert(name.to_string(), info);
                }
            }
        }
        Ok(out)
    }

    /// The stack as DescribeStacks shows it (one call); `None` when it does not exist.
    pub async fn describe(&self, name: &str) -> Result<Option<StackInfo>, StackError> {
        Ok(self
            .current(name)
            .await?
            .filter(|c| c.status != "DELETE_COMPLETE"))
    }

    /// The stack's outputs (one DescribeStacks call); `None` when it does not exist. With an
    /// `owner`, a stack whose tags name another owner is an error: its outputs are not this
    /// stage's (a stack without Ferry's tags is read).
    pub async fn outputs(
        &self,
        name: &str,
        owner: Option<&Ownership>,
    ) -> Result<Option<BTreeMap<String, String>>, StackError> {
        let Some(c) = self.describe(name).await? else {
            return Ok(None);
        };
        verify(name, &c, owner, true)?;
        Ok(Some(c.outputs))
    }

    /// Every stack of the account and region that is not deleted (one paginated ListStacks
    /// pass: one call per 100 stacks, against one DescribeStacks per stack).
    pub async fn list(&self) -> Result<StackList, StackError> {
        use aws_sdk_cloudformation::types::StackStatus;
        let live: Vec<StackStatus> = StackStatus::values()
            .iter()
            .map(|v| StackStatus::from(*v))
            .filter(|s| *s != StackStatus::DeleteComplete)
            .collect();
        let mut out = StackList::default();
        let mut pages = self
            .client
            .list_stacks()
            .set_stack_status_filter(Some(live))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            out.calls += 1;
            let page = page.map_err(|e| self.api("(every stack)", "ListStacks", &e))?;
            for s in page.stack_summaries() {
                let (Some(name), Some(status)) = (s.stack_name(), s.stack_status()) else {
                    continue;
                };
                if *status == StackStatus::DeleteComplete {
                    continue;
                }
                out.stacks.insert(
                    name.to_string(),
                    StackSummary {
                        name: name.to_string(),
                        id: s.stack_id().unwrap_or(name).to_string(),
                        status: status.as_str().to_string(),
                        last_updated: millis(s.last_updated_time().or(s.creation_time())),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The stack's status; `None` when it does not exist.
    pub async fn status(&self, name: &str) -> Result<Option<String>, StackError> {
        Ok(self.current(name).await?.map(|c| c.status))
    }

    /// A watch that knows the events the stack has now, so that only newer ones are streamed.
    async fn watch(&self, name: &str) -> Watch {
        let seen = match self
            .client
            .describe_stack_events()
            .stack_name(name)
            .send()
            .await
        {
            Ok(out) => out
                .stack_events()
                .iter()
                .filter_map(|e| e.event_id().map(String::from))
                .collect(),
            Err(_) => HashSet::new(),
        };
        Watch {
            seen,
            failures: Vec::new(),
        }
    }

    /// Emits the events not seen yet, oldest first, and keeps the failures.
    async fn stream_events(
        &self,
        stack_id: &str,
        watch: &mut Watch,
        on: &(dyn Fn(Progress) + Send + Sync),
    ) {
        let Ok(out) = self
            .client
            .describe_stack_events()
            .stack_name(stack_id)
            .send()
            .await
        else {
            return;
        };
        let mut new: Vec<StackEvent> = out
            .stack_events()
            .iter()
            .filter_map(|e| {
                let id = e.event_id()?.to_string();
                if watch.seen.contains(&id) {
                    return None;
                }
                // What CloudFormation says is shown on one line, steering no terminal: a
                // reason is text a template's author or a custom resource wrote.
                let shown = |t: &str| ferry_ci::one_line(t).into_owned();
                Some(StackEvent {
                    id,
                    logical_id: shown(e.logical_resource_id().unwrap_or_default()),
                    resource_type: shown(e.resource_type().unwrap_or_default()),
                    status: e
                        .resource_status()
                        .map(|s| shown(s.as_str()))
                        .unwrap_or_default(),
                    reason: e.resource_status_reason().map(shown),
                })
            })
            .collect();
        new.reverse();
        for e in new {
            watch.seen.insert(e.id.clone());
            if e.is_failure() && e.reason.is_some() {
                watch.failures.push(e.clone());
            }
            on(Progress::Event(e));
        }
    }

    /// Polls until the stack leaves `*_IN_PROGRESS` (or disappears), streaming events; gives up
    /// at `deadline`, and on the local emulator after [`DeployOptions::emulator`]: it ends an
    /// operation within its request, so one left in progress (its own, or another process's)
    /// is one it failed and never ends (its own create was waited for up to the whole
    /// `--timeout`, an hour, saying nothing).
    async fn wait(
        &self,
        name: &str,
        stack_id: &str,
        deadline: Instant,
        watch: &mut Watch,
        on: &(dyn Fn(Progress) + Send + Sync),
        busy: bool,
    ) -> Result<Option<Current>, StackError> {
        let mut delay = self.options.poll_initial;
        let started = Instant::now();
        let bound = self
            .options
            .emulator
            .map(|b| started + b)
            .filter(|b| *b < deadline);
        let deadline = bound.unwrap_or(deadline);
        loop {
            // Deleted stacks are only found by id.
            let current = self.current(stack_id).await?;
            self.stream_events(stack_id, watch, on).await;
            match current {
                Some(c) if in_progress(&c.status) => {
                    if bound.is_some() && Instant::now() >= deadline {
                        return Err(StackError::StuckInEmulator {
                            stack: name.to_string(),
                            status: c.status,
                            waited_secs: started.elapsed().as_secs(),
                        });
                    }
                    if Instant::now() >= deadline {
                        let waited_secs = self.waited_secs();
                        return Err(if busy {
                            StackError::Busy {
                                stack: name.to_string(),
                                status: c.status,
                                waited_secs,
                            }
                        } else {
                            StackError::Timeout {
                                stack: name.to_string(),
                                status: c.status,
                                waited_secs,
                            }
                        });
                    }
                }
                other => return Ok(other),
            }
            sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
            delay = (delay * 2).min(self.options.poll_max);
        }
    }

    /// Deploys `spec`: create, update or re-create as its status requires; waits for the end.
    pub async fn deploy(
        &self,
        spec: &StackSpec,
        on: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Deployed, StackError> {
        if let TemplateSource::Body(b) = &spec.template
            && b.len() > MAX_INLINE_TEMPLATE
        {
            return Err(StackError::TemplateTooLarge {
                stack: spec.name.clone(),
                size: b.len(),
                max: MAX_INLINE_TEMPLATE,
            });
        }
        let name = spec.name.as_str();
        // One bound for everything this deploy waits for, another operation's end included.
        let deadline = Instant::now() + self.options.timeout;
        let mut recreated = false;
        let mut rolled_back = false;
        loop {
            let current = self
                .current(name)
                .await?
                .filter(|c| c.status != "DELETE_COMPLETE");
            if let Some(c) = &current {
                verify_spec(c, spec)?;
            }
            let status = current.as_ref().map(|c| c.status.clone());
            match disposition(status.as_deref()) {
                Disposition::Create => {
                    let d = self.create(spec, deadline, on).await?;
                    return Ok(Deployed {
                        action: if recreated {
                            Action::Recreated
                        } else {
                            Action::Created
                        },
                        ..d
                    });
                }
                Disposition::Update => {
                    let current = current.expect("a stable stack exists");
                    self.check_adoption(spec, &current).await?;
                    return self.update(spec, current, deadline, on).await;
                }
                Disposition::Recreate if !recreated => {
                    let c = current.expect("a stack to delete exists");
                    on(Progress::Note(format!(
                        "stack {name} is {}: it can only be deleted; deleting it, then creating it again",
                        c.status
                    )));
                    self.delete_and_wait(name, &c.id, deadline, on).await?;
                    recreated = true;
                }
                Disposition::Wait => {
                    let c = current.expect("a busy stack exists");
                    on(Progress::Note(format!(
                        "stack {name} is {}; waiting for that operation to finish",
                        c.status
                    )));
                    let mut watch = self.watch(&c.id).await;
                    // The local emulator leaves in progress only what it failed: a short wait
                    // (another process's operation), not the whole deadline (see `wait`).
                    self.wait(name, &c.id, deadline, &mut watch, on, true)
                        .await?;
                }
                Disposition::UpdateRollbackFailed
                    if self.options.continue_rollback && !rolled_back =>
                {
                    on(Progress::Note(format!(
                        "stack {name} is UPDATE_ROLLBACK_FAILED; calling ContinueUpdateRollback"
                    )));
                    let c = current.expect("a stuck stack exists");
                    let mut watch = self.watch(&c.id).await;
                    self.client
                        .continue_update_rollback()
                        .stack_name(name)
                        .send()
                        .await
                        .map_err(|e| self.api(name, "ContinueUpdateRollback", &e))?;
                    let after = self
                        .wait(name, &c.id, deadline, &mut watch, on, false)
                        .await?;
                    let after_status = after.map(|a| a.status).unwrap_or_default();
                    if after_status != "UPDATE_ROLLBACK_COMPLETE" {
                        return Err(StackError::Failed {
                            stack: name.to_string(),
                            status: after_status,
                            failures: watch.failures,
                        });
                    }
                    rolled_back = true;
                }
                Disposition::UpdateRollbackFailed => {
                    return Err(StackError::UpdateRollbackFailed {
                        stack: name.to_string(),
                    });
                }
                Disposition::Paused => {
                    return Err(StackError::Paused {
                        stack: name.to_string(),
                        status: status.unwrap_or_default(),
                    });
                }
                Disposition::DeleteFailed | Disposition::Recreate => {
                    // A re-creation whose delete left the stack behind.
                    let status = status.unwrap_or_default();
                    if status == "DELETE_FAILED" {
                        return Err(StackError::DeleteFailed {
                            stack: name.to_string(),
                            failures: Vec::new(),
                        });
                    }
                    return Err(StackError::Failed {
                        stack: name.to_string(),
                        status,
                        failures: Vec::new(),
                    });
                }
            }
        }
    }

    fn parameters(spec: &StackSpec) -> Vec<Parameter> {
        spec.parameters
            .iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build()
            })
            .collect()
    }

    fn tags(spec: &StackSpec) -> Vec<Tag> {
        let mut tags = spec.tags.clone();
        if let Some(o) = &spec.owner {
            tags.extend(o.tags());
        }
        tags.iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }

    /// Sends UpdateStack for `spec`: `Ok(false)` when CloudFormation finds nothing to change.
    async fn update_directly(&self, spec: &StackSpec) -> Result<bool, StackError> {
        let req = self
            .client
            .update_stack()
            .stack_name(&spec.name)
            .client_request_token(request_token());
        match send_operation!(self, with_stack_input!(req, spec)) {
            Ok(_) => Ok(true),
            Err(e) if is_no_change(&service_message(&e)) => Ok(false),
            Err(e) => Err(self.api(&spec.name, "UpdateStack", &e)),
        }
    }

    /// Whether `spec` gives the stack a tag it lacks or another value of one it has.
    fn retags(spec: &StackSpec, current: &Current) -> bool {
        Self::tags(spec).iter().any(|t| {
            current
                .tags
                .get(t.key().unwrap_or_default())
                .map(String::as_str)
                != t.value()
        })
    }

    const CAPABILITIES: [Capability; 3] = [
        Capability::CapabilityIam,
        Capability::CapabilityNamedIam,
        Capability::CapabilityAutoExpand,
    ];

    async fn create(
        &self,
        spec: &StackSpec,
        deadline: Instant,
        on: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Deployed, StackError> {
        let name = spec.name.as_str();
        let stack_id = match spec.method {
            Method::Direct => {
                let req = self
                    .client
                    .create_stack()
                    .stack_name(name)
                    .client_request_token(request_token())
                    .enable_termination_protection(spec.termination_protection);
                let sent = send_operation!(self, with_stack_input!(req, spec));
                let out = sent.map_err(|e| self.api(name, "CreateStack", &e))?;
                out.stack_id().unwrap_or(name).to_string()
            }
            Method::ChangeSet => match self
                .change_set(spec, ChangeSetType::Create, deadline, false)
                .await?
            {
                Some(id) => id,
                None => {
                    return Err(StackError::Rejected {
                        stack: name.to_string(),
                        operation: "CreateChangeSet",
                        message:
                            "an empty change set for a new stack: the template has no resources"
                                .to_string(),
                        by: self.refuser(false, ""),
                    });
                }
            },
        };
        let mut watch = Watch::default();
        let end = self
            .wait(name, &stack_id, deadline, &mut watch, on, false)
            .await?;
        let created = conclude(
            name,
            end,
            watch.failures,
            "CREATE_COMPLETE",
            Action::Created,
        )?;
        // CreateStack set protection itself; a change set cannot.
        if spec.termination_protection && spec.method == Method::ChangeSet {
            self.set_protection(name, true).await?;
        }
        Ok(created)
    }

    /// Turns termination protection on or off (off before deleting a protected stage's stack on
    /// request).
    pub async fn set_protection(&self, name: &str, on: bool) -> Result<(), StackError> {
        self.client
            .update_termination_protection()
            .stack_name(name)
            .enable_termination_protection(on)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.api(name, "UpdateTerminationProtection", &e))
    }

    async fn update(
        &self,
        spec: &StackSpec,
        current: Current,
        deadline: Instant,
        on: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Deployed, StackError> {
        let name = spec.name.as_str();
        let was_protected = current.protected;
        let unchanged = |c: Current| Deployed {
            stack_name: name.to_string(),
            stack_id: c.id,
            action: Action::Unchanged,
            status: c.status,
            outputs: c.outputs,
            last_updated: c.last_updated,
        };
        // Ferry sets only its own tags; every other tag the stack has (a team's, a cost
        // centre's, set by the tool that deployed it before Ferry adopted it) is passed on, as
        // an update replaces a stack's whole tag set.
        let kept = StackSpec {
            tags: current
                .tags
                .iter()
                .filter(|(k, _)| !k.starts_with("ferry:") && !k.starts_with("aws:"))
                .chain(&spec.tags)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..spec.clone()
        };
        // CloudFormation takes at most 50 tags, and an update must carry them all: one that
        // would need more is refused here, naming how many to take off, rather than failing
        // with CloudFormation's bare refusal (or dropping a team's tags unasked).
        // (Ferry's own tags, of `spec.owner`, join the tags in `tags`.)
        let (total, ferry) = (Self::tags(&kept).len(), Self::tags(spec).len());
        if total > MAX_TAGS {
            return Err(StackError::TooManyTags {
                stack: name.to_string(),
                own: total - ferry,
                ferry,
            });
        }
        let spec = &kept;
        let mut watch = self.watch(&current.id).await;
        let started = match spec.method {
            Method::Direct => self.update_directly(spec).await?,
            // A change set that changes only the stack's tags changes nothing to CloudFormation
            // when no resource takes tags (and always to the emulator), yet the tags must be
            // set: a stack adopted with the template its earlier tool deployed, one taken over
            // for a renamed service, a named stage's mark. UpdateStack sets them.
            Method::ChangeSet => {
                let adopting = takes_over(spec, &current.tags);
                self.change_set(spec, ChangeSetType::Update, deadline, adopting)
                    .await?
                    .is_some()
                    || (Self::retags(spec, &current) && self.update_directly(spec).await?)
            }
        };
        if !started {
            // Tags that cannot be set fail a stack taken over (adopted, or from a renamed
            // service): it would stay another's, or nobody's, and the next deploy refuse it. A
            // stack already this service's lacks only tags an earlier Ferry did not write (a
            // named stage's mark), which its next change brings.
            let taken_over = spec.owner.as_ref().is_some_and(|o| {
                current.tags.get("ferry:service") != Some(&o.service)
                    || current.tags.get("ferry:project") != Some(&o.project)
            });
            if taken_over && Self::retags(spec, &current) {
                return Err(StackError::TagsNotSet {
                    stack: name.to_string(),
                    by: self.refuser(false, ""),
                });
            }
            self.protect_if(spec, was_protected).await?;
            return Ok(unchanged(current));
        }
        let end = self
            .wait(name, &current.id, deadline, &mut watch, on, false)
            .await?;
        let updated = conclude(
            name,
            end,
            watch.failures,
            "UPDATE_COMPLETE",
            Action::Updated,
        )?;
        self.protect_if(spec, was_protected).await?;
        Ok(updated)
    }

    /// Turns protection on when the spec asks for it and the stack does not have it yet.
    async fn protect_if(&self, spec: &StackSpec, protected: bool) -> Result<(), StackError> {
        if spec.termination_protection && !protected {
            self.set_protection(&spec.name, true).await
        } else {
            Ok(())
        }
    }

    /// Creates a change set, waits for it and executes it. `Ok(None)`: nothing to change (an
    /// empty change set, refused at creation as the local emulator does, or FAILED as AWS does).
    /// `Ok(Some(stack id))`: executing. `adopting` a stack without Ferry's tags, a change set
    /// that would remove its resources is deleted, not executed, and refused (see
    /// [`StackError::AdoptionWouldDelete`]).
    async fn change_set(
        &self,
        spec: &StackSpec,
        kind: ChangeSetType,
        deadline: Instant,
        adopting: bool,
    ) -> Result<Option<String>, StackError> {
        let name = spec.name.as_str();
        let Some((cs_id, stack_id)) = self.create_change_set(spec, kind, deadline).await? else {
            return Ok(None);
        };
        if adopting {
            let lost = self.resource_changes(name, &cs_id).await.map(|changes| {
                changes
                    .iter()
                    .filter(|rc| {
                        rc.action() == Some(&aws_sdk_cloudformation::types::ChangeAction::Remove)
                    })
                    .filter(|rc| {
                        !RENAMED_EACH_COMPILE.contains(&rc.resource_type().unwrap_or_default())
                    })
                    .map(|rc| {
                        format!(
                            "{} ({})",
                            rc.logical_resource_id().unwrap_or_default(),
                            rc.resource_type().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
            });
            if !matches!(&lost, Ok(l) if l.is_empty()) {
                // Never left behind; the refusal (or the failure to read it) is what is said.
                let _ = self.delete_change_set(name, &cs_id).await;
                return Err(match lost {
                    Err(e) => e,
                    Ok(resources) => StackError::AdoptionWouldDelete {
                        stack: name.to_string(),
                        resources,
                    },
                });
            }
        }
        let execute = self
            .client
            .execute_change_set()
            .change_set_name(&cs_id)
            .stack_name(name)
            .client_request_token(request_token());
        send_operation!(self, execute).map_err(|e| self.api(name, "ExecuteChangeSet", &e))?;
        Ok(Some(stack_id))
    }

    /// What CloudFormation says an update of an existing stack to `spec` would replace: each
    /// changing resource's logical id and its `Replacement` (`True`, `False`, `Conditional`),
    /// from a change set that is created, read and deleted, never executed. `Ok(None)`: nothing
    /// would change.
    pub async fn replacements(
        &self,
        spec: &StackSpec,
    ) -> Result<Option<BTreeMap<String, String>>, StackError> {
        let name = spec.name.as_str();
        // A change set is made only on a stack that is ours (as an update would be).
        let Some(current) = self.describe(name).await? else {
            return Ok(None);
        };
        verify_spec(&current, spec)?;
        let deadline = Instant::now() + self.options.timeout;
        let Some((cs_id, _)) = self
            .create_change_set(spec, ChangeSetType::Update, deadline)
            .await?
        else {
            return Ok(None);
        };
        let read = self.resource_changes(name, &cs_id).await.map(|changes| {
            changes
                .iter()
                .filter_map(|rc| {
                    let replacement = rc
                        .replacement()
                        .map(|r| r.as_str().to_string())
                        .unwrap_or_else(|| "False".into());
                    Some((rc.logical_resource_id()?.to_string(), replacement))
                })
                .collect::<BTreeMap<String, String>>()
        });
        // Never left behind, whatever happened reading it; a failed delete is said.
        let deleted = self.delete_change_set(name, &cs_id).await;
        let out = read?;
        deleted?;
        Ok(Some(out))
    }

    /// Deletes change set `cs_id` of stack `name`, never executed.
    async fn delete_change_set(&self, name: &str, cs_id: &str) -> Result<(), StackError> {
        self.client
            .delete_change_set()
            .change_set_name(cs_id)
            .stack_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.api(name, "DeleteChangeSet", &e))
    }

    /// The resource changes of change set `cs_id` of stack `name` (DescribeChangeSet, every
    /// page).
    async fn resource_changes(
        &self,
        name: &str,
        cs_id: &str,
    ) -> Result<Vec<aws_sdk_cloudformation::types::ResourceChange>, StackError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_change_set()
                .change_set_name(cs_id)
                .stack_name(name)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.api(name, "DescribeChangeSet", &e))?;
            out.extend(
                page.changes()
                    .iter()
                    .filter_map(|c| c.resource_change().cloned()),
            );
            match page.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Creates a change set and waits until it is ready: `Ok(Some((change set id, stack id)))`,
    /// or `Ok(None)` when it would change nothing (then it is deleted).
    async fn create_change_set(
        &self,
        spec: &StackSpec,
        kind: ChangeSetType,
        deadline: Instant,
    ) -> Result<Option<(String, String)>, StackError> {
        let name = spec.name.as_str();
        let cs_name = format!(
            "ferry-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        let req = self
            .client
            .create_change_set()
            .stack_name(name)
            .client_token(request_token())
            .change_set_name(&cs_name)
            .change_set_type(kind);
        let created = match send_operation!(self, with_stack_input!(req, spec)) {
            Ok(o) => o,
            Err(e) => {
                if is_no_change(&service_message(&e)) {
                    return Ok(None);
                }
                return Err(self.api(name, "CreateChangeSet", &e));
            }
        };
        let cs_id = created.id().unwrap_or(&cs_name).to_string();
        let stack_id = created.stack_id().unwrap_or(name).to_string();
        let mut delay = self.options.poll_initial;
        loop {
            let d = self
                .client
                .describe_change_set()
                .change_set_name(&cs_id)
                .stack_name(name)
                .send()
                .await
                .map_err(|e| self.api(name, "DescribeChangeSet", &e))?;
            match d.status() {
                Some(ChangeSetStatus::CreateComplete) => break,
                Some(ChangeSetStatus::Failed) => {
                    let reason =
                        ferry_ci::one_line(d.status_reason().unwrap_or_default()).into_owned();
                    let _ = self.delete_change_set(name, &cs_id).await;
                    if is_no_change(&reason) {
                        return Ok(None);
                    }
                    return Err(StackError::Rejected {
                        stack: name.to_string(),
                        operation: "CreateChangeSet",
                        by: self.refuser(true, &reason),
                        message: reason,
                    });
                }
                _ if Instant::now() >= deadline => {
                    return Err(StackError::Timeout {
                        stack: name.to_string(),
                        status: "change set CREATE_IN_PROGRESS".into(),
                        waited_secs: self.waited_secs(),
                    });
                }
                _ => {
                    sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
                    delay = (delay * 2).min(self.options.poll_max);
                }
            }
        }
        Ok(Some((cs_id, stack_id)))
    }

    async fn delete_and_wait(
        &self,
        name: &str,
        stack_id: &str,
        deadline: Instant,
        on: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(), StackError> {
        let mut watch = self.watch(stack_id).await;
        self.client
            .delete_stack()
            .stack_name(stack_id)
            .client_request_token(request_token())
            .send()
            .await
            .map_err(|e| self.api(name, "DeleteStack", &e))?;
        match self
            .wait(name, stack_id, deadline, &mut watch, on, false)
            .await?
        {
            None => Ok(()),
            Some(c) if c.status == "DELETE_COMPLETE" => Ok(()),
            Some(c) if c.status == "DELETE_FAILED" => Err(StackError::DeleteFailed {
                stack: name.to_string(),
                failures: watch.failures,
            }),
            Some(c) => Err(StackError::Failed {
                stack: name.to_string(),
                status: c.status,
                failures: watch.failures,
            }),
        }
    }

    /// Deletes a stack and waits. `Ok(false)` when there was none.
    /// With an `owner`, a stack whose tags name another owner is refused, and so is one
    /// without Ferry's tags unless `adopt`.
    pub async fn delete(
        &self,
        name: &str,
        owner: Option<&Ownership>,
        adopt: bool,
        on: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<bool, StackError> {
        let Some(c) = self.describe(name).await? else {
            return Ok(false);
        };
        verify(name, &c, owner, adopt)?;
        let deadline = Instant::now() + self.options.timeout;
        self.delete_and_wait(name, &c.id, deadline, on).await?;
        Ok(true)
    }
}

/// Whether a deploy of `spec` takes over (`--adopt`) a stack whose tags (`tags`) are not
/// Ferry's.
fn takes_over(spec: &StackSpec, tags: &BTreeMap<String, String>) -> bool {
    spec.adopt
        && spec
            .owner
            .as_ref()
            .is_some_and(|o| check(o, tags) == Verdict::Unmanaged)
}

/// Resource types named anew by each compile (the Serverless Framework's
/// `ApiGatewayDeployment<time>`, `WebsocketsDeployment<id>`, `<Fn>LambdaVersion<hash>`; Ferry's
/// own renaming, in ferry-serverless' rewrite, names the deployments by the template): one
/// taken over loses them to their new ids, as every deploy does.
const RENAMED_EACH_COMPILE: [&str; 4] = [
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGatewayV2::Deployment",
    "AWS::Lambda::Version",
    "AWS::Lambda::LayerVersion",
];

/// The logical ids of the resources a template's body declares, when they are the stack's own
/// (no `Transform`, which makes others); `None` when it cannot tell.
fn adopted_logical_ids(body: &str) -> Option<HashSet<String>> {
    let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(body).ok()?;
    if template.get("Transform").is_some() {
        return None;
    }
    template
        .get("Resources")?
        .as_mapping()?
        .keys()
        .map(|k| k.as_str().map(String::from))
        .collect()
}

/// One resource of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResource {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
}

/// [`verify`] for a deploy of `spec`: a stack tagged for the service `spec` was renamed from
/// is taken over with `adopt`, and refused without, saying how to take it over.
fn verify_spec(stack: &StackInfo, spec: &StackSpec) -> Result<(), StackError> {
    if let (Some(expected), Some(from)) = (&spec.owner, &spec.renamed_from)
        && let Verdict::OtherService { service, .. } = check(expected, &stack.tags)
        && service == *from
    {
        return if spec.adopt {
            Ok(())
        } else {
            Err(StackError::RenamedService {
                stack: spec.name.clone(),
                from: service,
                to: expected.service.clone(),
            })
        };
    }
    verify(&spec.name, stack, spec.owner.as_ref(), spec.adopt)
}

/// Refuses a stack whose tags name another owner than `owner` (another service of the same
/// project and stage too), and, unless `adopt`, one without Ferry's tags. No owner: no check.
pub fn verify(
    name: &str,
    stack: &StackInfo,
    owner: Option<&Ownership>,
    adopt: bool,
) -> Result<(), StackError> {
    let Some(expected) = owner else {
        return Ok(());
    };
    match check(expected, &stack.tags) {
        Verdict::Ours => Ok(()),
        Verdict::Unmanaged if adopt => Ok(()),
        Verdict::Unmanaged => Err(StackError::Unmanaged {
            stack: name.to_string(),
        }),
        Verdict::NamedElsewhere => Err(StackError::NamedElsewhere {
            stack: name.to_string(),
            stage: expected.stage.clone(),
        }),
        Verdict::Foreign { owner } | Verdict::OtherService { owner, .. } => {
            Err(StackError::Foreign {
                stack: name.to_string(),
                owner,
                expected: format!(
                    "service `{}` of stage `{}` of project `{}`",
                    expected.service, expected.stage, expected.project
                ),
            })
        }
    }
}

/// Whether a refusal says what AWS refuses alike, so that the emulator's refusal is no limit
/// of its own: a name another stack holds (an export, as CloudFormation words it), an import
/// of an export no stack gives.
fn refused_alike(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("export names must be unique")
        || m.contains("is already exported")
        || m.contains("already exists in stack")
        || (m.contains("no export named") && m.contains("found"))
}

#[cfg(test)]
mod tests {
    use super::{refused_alike, request_token};

    #[test]
    fn request_tokens_are_unique_and_of_the_form_cloudformation_takes() {
        let (a, b) = (request_token(), request_token());
        assert_ne!(a, b);
        for t in [&a, &b] {
            // [a-zA-Z0-9][-a-zA-Z0-9]*, at most 128 characters.
            assert!(t.len() <= 128, "{t}");
            assert!(t.starts_with(|c: char| c.is_ascii_alphanumeric()), "{t}");
            assert!(
                t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{t}"
            );
        }
    }

    #[test]
    fn what_aws_refuses_alike_is_no_limit_of_the_emulator() {
        // An import of an export no stack gives (AWS: "No export named x found.").
        assert!(refused_alike("No export named no-such-export found."));
        assert!(refused_alike(
            "Export with name SharedGW-restApiId is already exported by stack x"
        ));
        assert!(refused_alike(
            "Template error: Export names must be unique across a given region"
        ));
        assert!(!refused_alike(
            "Template format error: Unrecognized resource types"
        ));
    }
}
