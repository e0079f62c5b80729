//! One deploy run: the plan's services on the graph scheduler, each deployed (or found up to
//! date), recorded, and with `--test` tested, while independent services go on.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use ferry_credentials::Masker;
use ferry_graph::{Cancel, Outcome, ScheduleOptions};
use ferry_manifest::{Service, ServiceKind, Stage, Workspace};
use ferry_outputs::{OutputCache, OutputsFile};
use ferry_package::ServicePackage;
use ferry_plan::{Action as PlanAction, Plan};
use ferry_records::{Record, RecordStore, parameters_hash, sha256_hex};
use ferry_releases::Reviewed;
use ferry_releases::review::StackReview;
use ferry_stacks::{Action, Engine, Method, Progress, StackSpec, TemplateSource};

use crate::parameters::{
    Resolved, check_secret_parameters, resolve_parameters, ssm_typed_versions,
};
use crate::site::{publish_site, site_config};
use crate::{Prepared, ServiceError, candidates, ownership, reads_outside_git};

/// How to deploy.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// At most this many stack operations at once; `None` = no limit.
    pub concurrency: Option<NonZeroUsize>,
    pub engine: ferry_stacks::DeployOptions,
    /// Overrides the stage's `deployment-method` (the local emulator needs `Direct`).
    pub method: Option<Method>,
    /// Run each deployed service's acceptance tests right after it deploys; its dependents wait
    /// for them, and a failure skips them.
    pub test: bool,
    /// Deploy nothing: for each service that would change, say what would change (the diff of
    /// its deployed template and parameters against the ones it would deploy) and keep exactly
    /// what would deploy, for an approval (see [`DeployReport::reviews`]).
    pub review: bool,
    /// With `test`: services whose acceptance tests are owed ([`crate::tests_owed`]; the
    /// caller packages them): each is a candidate of [`deploy`], checked, and, up to date,
    /// tested where it stands in the graph, so its dependents wait for those tests as for a
    /// deploy's.
    pub tests_owed: BTreeSet<String>,
}

impl DeployOptions {
    /// A run's options: at most `concurrency` stack operations at once, each within `timeout`;
    /// on the local emulator (`local`) stacks are updated directly, since the emulator
    /// publishes no outputs after a change set, and its ways are allowed for
    /// ([`ferry_stacks::DeployOptions::emulator`]). No tests, no review.
    pub fn for_run(concurrency: Option<NonZeroUsize>, timeout: Duration, local: bool) -> Self {
        DeployOptions {
            concurrency,
            engine: ferry_stacks::DeployOptions {
                timeout,
                emulator: local.then_some(ferry_stacks::EMULATOR_BUSY_WAIT),
                ..Default::default()
            },
            method: local.then_some(Method::Direct),
            test: false,
            review: false,
            tests_owed: BTreeSet::new(),
        }
    }
}

/// The commit being deployed.
#[derive(Debug, Clone)]
pub struct Source {
    pub commit: String,
    pub dirty: bool,
}

/// Everything a deploy needs besides the plan.
pub struct DeployContext<'a> {
    pub ws: &'a Workspace,
    pub stage: &'a Stage,
    pub config: &'a SdkConfig,
    pub records: &'a RecordStore,
    /// Records read before planning, by service.
    pub previous: &'a BTreeMap<String, Record>,
    pub source: Source,
    pub masker: &'a Masker,
    pub cancel: &'a Cancel,
    /// The package to deploy (see [`prepare`]); without one, templates are read from the
    /// working tree as they are (for templates that need no packaging).
    pub package: Option<&'a Prepared>,
    /// Take over existing stacks that have no Ferry tags.
    pub adopt: bool,
    /// With `DeployOptions::test`: the `[acceptance] build` commands started before the deploy
    /// (see `ferry_acceptance::Builds`); each service's tests wait for its build.
    pub builds: Option<&'a ferry_acceptance::Builds>,
    /// Expands SAM templates before they deploy, for a target that does not run the transform
    /// itself (the local emulator, which would create a SAM stack with its functions silently
    /// left out). `None` on AWS, where CloudFormation expands them.
    pub expand_sam: Option<&'a dyn ExpandSam>,
    /// The release this run makes: every record it writes names it.
    pub release: Option<ReleaseStamp<'a>>,
    /// Services compiled per stage (the Serverless Framework) whose archives must come out of
    /// their compile byte for byte as these (resource → key): what passed in the stage a
    /// promote takes them from. A difference fails the service before its stack is touched.
    pub expected_archives: Option<&'a BTreeMap<String, BTreeMap<String, String>>>,
    /// Deploy only the parameters the template declares (a stored package of an older commit
    /// may declare fewer than the working tree's service.toml gives).
    pub declared_parameters_only: bool,
    /// The AWS access of every other stage whose outputs the services read
    /// (`${output:STAGE:service.Key}`, see [`stages_read`](crate::stages_read)), by name.
    pub other_stages: &'a BTreeMap<String, SdkConfig>,
    /// An approval: each service's parameters, resolved afresh, must be exactly the reviewed
    /// ones (compared in the view a record hashes: a SecureString by name and version, never
    /// by value), else the service fails before its stack is touched.
    pub fixed_parameters: Option<&'a BTreeMap<String, BTreeMap<String, String>>>,
}

/// The release a run makes, as every record it writes names it: enough for a later run to
/// write that release as this one would have, when this one stops before it does (see
/// [`recover_releases`](crate::release::recover_releases)).
#[derive(Debug, Clone, Copy)]
pub struct ReleaseStamp<'a> {
    pub id: &'a str,
    pub kind: ferry_releases::ReleaseKind,
    /// Who runs it (the caller's ARN).
    pub by: &'a str,
    /// An approval: the review it deploys.
    pub review: Option<&'a str>,
    /// A rollback: the release whose packages it deploys again.
    pub restores: Option<&'a str>,
    /// A promote: the stage it promotes from.
    pub from: Option<&'a str>,
}

/// Turns a packaged SAM template into plain CloudFormation, given the stack's parameter values
/// (the values may be secrets: an implementation keeps them out of argv and output).
pub trait ExpandSam: Sync {
    /// The expanded template's text, or why it could not be expanded.
    fn expand(
        &self,
        template: &serde_json::Value,
        parameters: &BTreeMap<String, String>,
    ) -> Result<String, String>;

    /// [`expand`](Self::expand) of each of `requests`, in order; an implementation may expand
    /// them at once (one start of the translator for the many templates a nesting holds).
    fn expand_all(
        &self,
        requests: &[(&serde_json::Value, &BTreeMap<String, String>)],
    ) -> Vec<Result<String, String>> {
        requests
            .iter()
            .map(|(template, parameters)| self.expand(template, parameters))
            .collect()
    }
}

impl std::fmt::Display for ServiceResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceResult::Deployed {
                action: Action::Created,
            } => f.write_str("created"),
            ServiceResult::Deployed {
                action: Action::Updated,
            } => f.write_str("updated"),
            ServiceResult::Deployed {
                action: Action::Recreated,
            } => f.write_str("re-created"),
            ServiceResult::Deployed {
                action: Action::Unchanged,
            } => f.write_str("no changes"),
            ServiceResult::UpToDate { behind: false, .. } => f.write_str("skipped (up to date)"),
            // Unchanged since a base that is not its record (`--since`): not known to be up to
            // date (its record may be older).
            ServiceResult::UpToDate { behind: true, .. } => f.write_str("skipped"),
            // Deployed, and its tests stopped by a cancel: nothing failed.
            ServiceResult::Failed { error }
                if matches!(**error, ServiceError::TestsStopped { .. }) =>
            {
                f.write_str("deployed, tests cancelled")
            }
            ServiceResult::Failed { .. } => f.write_str("FAILED"),
            ServiceResult::Skipped { failed_dependency } => {
                write!(f, "skipped ({failed_dependency} failed)")
            }
            ServiceResult::Cancelled => f.write_str("cancelled"),
            ServiceResult::WouldChange { create: true, .. } => f.write_str("would create"),
            ServiceResult::WouldChange {
                resources: Some(n), ..
            } => write!(f, "would change ({n} resource(s))"),
            ServiceResult::WouldChange {
                resources: None, ..
            } => f.write_str("would change (resources not compared)"),
        }
    }
}

/// What happened to one service.
#[derive(Debug, Clone)]
pub enum ServiceResult {
    Deployed {
        action: Action,
    },
    /// Nothing to do: `why`.
    UpToDate {
        why: String,
        /// Skipped by the plan for a base that is not its record's commit (`--since`), or with
        /// no record in the stage: not known to be up to date.
        behind: bool,
    },
    /// Why it failed; the report keeps the typed error (its `Display` may quote what AWS said:
    /// mask it before printing).
    Failed {
        error: Arc<ServiceError>,
    },
    Skipped {
        failed_dependency: String,
    },
    Cancelled,
    /// A review: this would deploy (a new stack, or `resources` resources changing; `None`
    /// when they could not be compared).
    WouldChange {
        create: bool,
        resources: Option<usize>,
    },
}

#[derive(Debug, Clone)]
pub struct ServiceReport {
    pub name: String,
    /// What the service is written in (`None` for a service removed since its base).
    pub kind: Option<ServiceKind>,
    pub stack: String,
    pub result: ServiceResult,
    /// How long its own deploy (or check) took: parameters, stack operation, site, record.
    pub duration: Duration,
    /// How long its acceptance tests took, when they ran during the deploy.
    pub tests: Option<Duration>,
    /// Why it was considered (plan reasons, or "dependent of X").
    pub why: String,
}

#[derive(Debug, Clone)]
pub struct DeployReport {
    pub services: Vec<ServiceReport>,
    /// Acceptance tests run during the deploy (`DeployOptions::test`), in the order they ran.
    pub tests: Vec<ferry_acceptance::TestOutcome>,
    /// All outputs of the stage's services known after the deploy.
    pub outputs: OutputsFile,
    /// DescribeStacks calls made to read outputs.
    pub output_reads: usize,
    /// A review (`DeployOptions::review`): what each service that would change would change,
    /// and exactly what it would deploy, by service.
    pub reviews: BTreeMap<String, (StackReview, Reviewed)>,
}

impl ServiceResult {
    /// Deployed (or up to date), and its acceptance tests stopped by a cancel before they
    /// ended: no outcome, nothing failed.
    pub fn tests_stopped(&self) -> bool {
        matches!(self, ServiceResult::Failed { error } if matches!(**error, ServiceError::TestsStopped { .. }))
    }

    /// Deployed, up to date, or (a review) would change: not failed, skipped or cancelled.
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            ServiceResult::Deployed { .. }
                | ServiceResult::UpToDate { .. }
                | ServiceResult::WouldChange { .. }
        )
    }
}

impl DeployReport {
    pub fn succeeded(&self) -> bool {
        self.services.iter().all(|s| s.result.succeeded())
    }

    /// Every service of `deploy` (a [`Selection::deploy`]) has its stack where the run meant
    /// it to be: each succeeded, or failed only in its acceptance tests
    /// ([`ServiceError::after_the_stack`]). A service the run was only to check may have
    /// failed, been skipped or been cancelled: it is behind, and the next run checks it.
    /// Running the same selection again would deploy nothing.
    pub fn stacks_in_place(&self, deploy: &BTreeSet<String>) -> bool {
        self.services.iter().all(|s| match &s.result {
            ServiceResult::Failed { error } => error.after_the_stack() || !deploy.contains(&s.name),
            ServiceResult::Skipped { .. } | ServiceResult::Cancelled => !deploy.contains(&s.name),
            r => r.succeeded(),
        })
    }
}

/// What a deploy reports while it runs.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        service: String,
        stack: String,
        /// A review: nothing deploys.
        review: bool,
        /// A check against its record (the plan skips it, but what it reads from outside git
        /// or receives from a dependency may have changed): it deploys only if that changed.
        check: bool,
    },
    Stack {
        service: String,
        progress: Progress,
    },
    Finished {
        service: String,
        result: ServiceResult,
        duration: Duration,
    },
}

/// What every service's job in one run shares.
struct Run<'a> {
    ctx: &'a DeployContext<'a>,
    method: Method,
    engine: Engine,
    cache: OutputCache,
    /// Outputs of other stages, each read with that stage's own access.
    others: BTreeMap<String, OutputCache>,
    ssm: aws_sdk_ssm::Client,
    /// With `--test`: the outcomes of the tests run so far.
    tests: Option<Mutex<Vec<ferry_acceptance::TestOutcome>>>,
    /// With `review`: what each service would change.
    reviews: Option<Mutex<BTreeMap<String, (StackReview, Reviewed)>>>,
    /// The `[package] build` of each Serverless service that deploys, started with the run.
    prebuilds: ferry_serverless::Prebuilds,
    /// The records this run wrote, by service: with the stage's records read before, the
    /// latest of each (what a dependent's parameters resolve against: [`Record::received`]).
    written: Mutex<BTreeMap<String, Record>>,
    /// [`check_review`]: each service stops once its parameters are compared with the
    /// reviewed ones; one the review did not fix is passed over.
    check_only: bool,
    on: &'a (dyn Fn(Event) + Send + Sync),
}

impl Run<'_> {
    /// The latest record of `service`: the one this run wrote, else the one it read.
    fn latest(&self, service: &str) -> Option<Record> {
        let written = self.written.lock().expect("written lock");
        written
            .get(service)
            .or_else(|| self.ctx.previous.get(service))
            .cloned()
    }

    /// Keeps `record`, just written, as its service's latest.
    fn wrote(&self, record: &Record) {
        self.written
            .lock()
            .expect("written lock")
            .insert(record.service.clone(), record.clone());
    }

    /// Records in `r`, a checked service's record, that it received what its dependencies run
    /// now, so that the next run does not check it again for the same deploys (not by a review
    /// or an approval's check: they write nothing).
    async fn keep_received(&self, r: &Record) -> Result<(), ServiceError> {
        let received = Some(self.received_now(&r.service));
        if self.reviews.is_none() && !self.check_only && r.received != received {
            let checked = Record {
                received,
                ..r.clone()
            };
            self.ctx.records.write(&checked).await?;
            self.wrote(&checked);
        }
        Ok(())
    }

    /// The revisions of `service`'s dependencies' latest records (see [`Record::received`]).
    fn received_now(&self, service: &str) -> BTreeMap<String, String> {
        self.ctx
            .ws
            .graph()
            .dependencies(service)
            .into_iter()
            .filter_map(|d| Some((d.to_string(), self.latest(d)?.revision())))
            .collect()
    }
}

/// One finished job, as the scheduler hands it back.
#[derive(Debug, Clone)]
struct Done {
    result: ServiceResult,
    duration: Duration,
    tests: Option<Duration>,
    why: String,
}

/// Why the plan has `service` where it is: its reasons, joined.
pub(crate) fn plan_reason(plan: &Plan, service: &str) -> String {
    plan.service(service)
        .map(|s| {
            s.reasons
                .iter()
                .map(ferry_plan::reason_text)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// Which services a run touches.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Services deployed whatever their record says.
    pub deploy: BTreeSet<String>,
    /// Every service the run checks: `deploy`, and services that redeploy only when their
    /// template or parameters differ from their record (e.g. dependents of what deploys).
    pub candidates: BTreeSet<String>,
    /// Why a service was selected (a dependent without an entry gets "dependent of …").
    pub why: BTreeMap<String, String>,
}

/// Whether `service` is in the plan only for [`ferry_plan::Reason::NotReceived`].
pub(crate) fn only_not_received(plan: &Plan, service: &str) -> bool {
    plan.service(service)
        .is_some_and(ferry_plan::ServicePlan::only_not_received)
}

/// Deploys the plan's services (and checks their dependents). Never fails as a whole for one
/// service: the report says what happened to each.
pub async fn deploy(
    ctx: &DeployContext<'_>,
    plan: &Plan,
    options: &DeployOptions,
    on: &(dyn Fn(Event) + Send + Sync),
) -> DeployReport {
    // Dependents of what deploys are checked too: they redeploy only if what they receive changed.
    let mut selection = Selection {
        // A service planned only because a dependency deployed since it last received its
        // outputs is checked against its record, as a dependent is: it redeploys only when
        // what it receives changed.
        deploy: plan
            .order
            .iter()
            .filter(|s| !only_not_received(plan, s))
            .cloned()
            .collect(),
        candidates: candidates(ctx.ws, plan, ctx.previous),
        why: plan
            .order
            .iter()
            .map(|s| (s.clone(), plan_reason(plan, s)))
            .collect(),
    };
    // With --test, a service whose tests are owed (a run killed while they ran, a failure left
    // from an earlier commit) is tested where it stands in the graph, before its dependents.
    if options.test && !options.review {
        for s in options
            .tests_owed
            .iter()
            .filter(|s| ctx.previous.contains_key(*s))
        {
            if selection.candidates.insert(s.clone()) {
                selection
                    .why
                    .insert(s.clone(), crate::acceptance::OWED.into());
            }
        }
    }
    let mut report = deploy_selection(ctx, &selection, options, on).await;
    // The commit each service was planned against.
    let base_of = |service: &str| {
        plan.bases
            .iter()
            .find(|b| b.services.iter().any(|s| s == service))
            .and_then(|b| b.commit.as_deref())
    };
    // Services the plan skipped, for a complete summary.
    for s in plan
        .services
        .iter()
        .filter(|s| s.action == PlanAction::Skip && !selection.candidates.contains(&s.name))
    {
        let why = s
            .reasons
            .iter()
            .map(ferry_plan::reason_text)
            .collect::<Vec<_>>()
            .join("; ");
        report.services.push(ServiceReport {
            name: s.name.clone(),
            kind: s.kind,
            stack: s.stack_name.clone(),
            result: ServiceResult::UpToDate {
                why: why.clone(),
                behind: ctx
                    .previous
                    .get(&s.name)
                    .is_none_or(|r| base_of(&s.name) != Some(r.commit.as_str())),
            },
            duration: Duration::ZERO,
            tests: None,
            why,
        });
    }
    report
}

/// Deploys `selection` on the graph scheduler (see [`deploy`]).
pub async fn deploy_selection(
    ctx: &DeployContext<'_>,
    selection: &Selection,
    options: &DeployOptions,
    on: &(dyn Fn(Event) + Send + Sync),
) -> DeployReport {
    run_selection(ctx, selection, options, false, on).await
}

/// An approval's first step: each service of `selection` whose parameters the review fixed
/// ([`DeployContext::fixed_parameters`]) resolves them again, as its deploy would, and nothing
/// deploys. Any that resolve otherwise (a SecureString rotated, an SSM parameter or an output
/// changed since the review), or cannot be resolved, fail the whole approval before a stack
/// moves: deploying the rest would put a part of the reviewed change in place.
pub async fn check_review(
    ctx: &DeployContext<'_>,
    selection: &Selection,
    options: &DeployOptions,
) -> Result<(), ReviewMoved> {
    let options = DeployOptions {
        test: false,
        review: false,
        tests_owed: BTreeSet::new(),
        ..options.clone()
    };
    let report = run_selection(ctx, selection, &options, true, &|_| {}).await;
    let failed: Vec<Arc<ServiceError>> = report
        .services
        .iter()
        .filter_map(|s| match &s.result {
            ServiceResult::Failed { error } => Some(error.clone()),
            _ => None,
        })
        .collect();
    let cancelled = report
        .services
        .iter()
        .any(|s| matches!(s.result, ServiceResult::Cancelled));
    let (changed, unchecked): (Vec<_>, Vec<_>) = failed
        .into_iter()
        .partition(|e| matches!(**e, ServiceError::ParametersChanged { .. }));
    match (changed.is_empty(), unchecked.is_empty(), cancelled) {
        (true, true, false) => Ok(()),
        (true, true, true) => Err(ReviewMoved::Cancelled),
        (true, false, _) => Err(ReviewMoved::Unchecked(unchecked)),
        (false, _, _) => Err(ReviewMoved::Changed { changed, unchecked }),
    }
}

/// Why an approval deployed nothing: see [`check_review`].
#[derive(Debug, thiserror::Error)]
pub enum ReviewMoved {
    /// Parameters of some services resolve otherwise than reviewed (and others, if any, could
    /// not be checked).
    #[error(
        "what the review fixed no longer holds, so nothing was deployed: {}{}",
        joined(.changed),
        if .unchecked.is_empty() { String::new() } else { format!("; and these could not be checked: {}", joined(.unchecked)) }
    )]
    Changed {
        changed: Vec<Arc<ServiceError>>,
        unchecked: Vec<Arc<ServiceError>>,
    },
    /// The reviewed parameters could not be resolved again (AWS refused or failed, a package is
    /// gone): nothing is known to have changed.
    #[error(
        "the reviewed parameters could not be checked, so nothing was deployed: {}; fix that and approve again",
        joined(.0)
    )]
    Unchecked(Vec<Arc<ServiceError>>),
    #[error("cancelled while checking the reviewed parameters; nothing was deployed")]
    Cancelled,
}

fn joined(errors: &[Arc<ServiceError>]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn run_selection(
    ctx: &DeployContext<'_>,
    selection: &Selection,
    options: &DeployOptions,
    check_only: bool,
    on: &(dyn Fn(Event) + Send + Sync),
) -> DeployReport {
    let graph = ctx.ws.graph();
    let to_deploy = &selection.deploy;
    let candidates = &selection.candidates;
    let sub = graph.subgraph(candidates);
    let reason = |name: &str| selection.why.get(name).cloned().unwrap_or_default();

    let engine = Engine::for_config(ctx.config, options.engine.clone());
    // A Serverless service compiles when its dependencies have deployed (it needs their
    // outputs), but its build (`npm install`) needs nothing of the stage: it starts now.
    // Only the services this run compiles: one whose compile the package holds already (a
    // rollback's) deploys that.
    let prebuilds = match ctx.package.filter(|_| !check_only) {
        Some(p) => ferry_serverless::Prebuilds::start(
            ctx.ws,
            to_deploy
                .iter()
                .filter(|s| !p.manifest.services.contains_key(*s))
                .map(String::as_str),
            ctx.masker,
            options.concurrency,
        ),
        None => ferry_serverless::Prebuilds::default(),
    };
    for service in prebuilds.services() {
        let build = ctx
            .ws
            .service(service)
            .map(|s| ctx.masker.mask(&s.package.build.join(" ")))
            .unwrap_or_default();
        on(Event::Stack {
            service: service.to_string(),
            progress: Progress::Note(format!("started its build `{build}` ahead of its compile")),
        });
    }
    let run = Run {
        ctx,
        prebuilds,
        method: options
            .method
            .unwrap_or(match ctx.stage.config.deployment_method {
                ferry_manifest::DeploymentMethod::Changeset => Method::ChangeSet,
                ferry_manifest::DeploymentMethod::Direct => Method::Direct,
            }),
        cache: OutputCache::new(engine.clone()),
        others: ctx
            .other_stages
            .iter()
            .map(|(name, config)| {
                let engine = Engine::for_config(config, options.engine.clone());
                (name.clone(), OutputCache::new(engine))
            })
            .collect(),
        engine,
        ssm: aws_sdk_ssm::Client::new(ctx.config),
        tests: (options.test && !options.review).then(Mutex::default),
        reviews: options.review.then(Mutex::default),
        written: Mutex::default(),
        check_only,
        on,
    };
    let estimates = ctx
        .previous
        .iter()
        .map(|(k, r)| (k.clone(), r.duration_ms.max(1)))
        .collect();
    let schedule = ScheduleOptions {
        concurrency: options.concurrency,
        estimates,
    };

    let report = ferry_graph::schedule::run(&sub, &schedule, ctx.cancel, |name| {
        let service = ctx
            .ws
            .service(&name)
            .expect("planned services exist")
            .clone();
        let stack = ctx.ws.stack_name(&name, ctx.stage);
        let why = match selection.why.get(&name) {
            Some(why) => why.clone(),
            None => {
                crate::prepare::Check::of(ctx.ws, candidates, ctx.previous, &service).to_string()
            }
        };
        let run = &run;
        let must_deploy = to_deploy.contains(&name);
        async move {
            on(Event::Started {
                service: name.clone(),
                stack: stack.clone(),
                review: run.reviews.is_some(),
                check: !must_deploy,
            });
            let t0 = Instant::now();
            let deployed = deploy_one(run, &service, &stack, must_deploy).await;
            let duration = t0.elapsed();
            let mut why = why;
            let (result, tests) = match deployed {
                Ok(Deployed::Stack {
                    action,
                    record,
                    differs,
                }) => {
                    if let Some(differs) = differs {
                        why = format!("{why}: {differs}");
                    }
                    let t1 = Instant::now();
                    let r = run_tests(run, &service, &record, Some(action)).await;
                    let tests =
                        (service.acceptance.is_some() && run.tests.is_some()).then(|| t1.elapsed());
                    (r, tests)
                }
                Ok(Deployed::UpToDate { why, behind })
                    if options.tests_owed.contains(&name) && run.tests.is_some() =>
                {
                    // Tested now, before its dependents; its record is the one that stands, as
                    // this run left it (a check writes what it received).
                    let t1 = Instant::now();
                    let record = run.latest(&name).unwrap_or_default();
                    let r = run_tests(run, &service, &record, None).await.map(|_| {
                        ServiceResult::UpToDate {
                            why: format!("{why}; the acceptance tests it owed passed"),
                            behind,
                        }
                    });
                    (r, Some(t1.elapsed()))
                }
                Ok(Deployed::UpToDate { why, behind }) => {
                    (Ok(ServiceResult::UpToDate { why, behind }), None)
                }
                Ok(Deployed::Reviewed { create, resources }) => {
                    (Ok(ServiceResult::WouldChange { create, resources }), None)
                }
                Ok(Deployed::Cancelled) => (Ok(ServiceResult::Cancelled), None),
                Err(e) => (Err(e), None),
            };
            let failed = result.is_err();
            let r = result.unwrap_or_else(|e| ServiceResult::Failed { error: Arc::new(e) });
            on(Event::Finished {
                service: name.clone(),
                result: r.clone(),
                duration: duration + tests.unwrap_or_default(),
            });
            // The scheduler skips the dependents of a job that returns Err.
            let done = Done {
                result: r,
                duration,
                tests,
                why,
            };
            if failed { Err(done) } else { Ok(done) }
        }
    })
    .await;
    // A build whose service never compiled (a dependency failed) is not cut off half done
    // (a half-written node_modules), unless the run was cancelled.
    if !ctx.cancel.is_cancelled() {
        run.prebuilds.finish().await;
    }

    let mut services = Vec::new();
    for name in sub.topo_order() {
        let stack = ctx.ws.stack_name(&name, ctx.stage);
        let done = match report.outcomes.get(&name) {
            Some(Outcome::Succeeded(d) | Outcome::Failed(d)) => d.clone(),
            // Not reached because a cancel stopped a dependency's tests (it deployed, nothing
            // failed): cancelled, as what a cancel keeps from starting is.
            Some(Outcome::Skipped { failed_dependency })
                if matches!(
                    report.outcomes.get(failed_dependency),
                    Some(Outcome::Failed(d)) if d.result.tests_stopped()
                ) =>
            {
                Done {
                    result: ServiceResult::Cancelled,
                    duration: Duration::ZERO,
                    tests: None,
                    why: reason(&name),
                }
            }
            Some(Outcome::Skipped { failed_dependency }) => Done {
                result: ServiceResult::Skipped {
                    failed_dependency: failed_dependency.clone(),
                },
                duration: Duration::ZERO,
                tests: None,
                why: reason(&name),
            },
            Some(Outcome::Cancelled) | None => Done {
                result: ServiceResult::Cancelled,
                duration: Duration::ZERO,
                tests: None,
                why: reason(&name),
            },
        };
        services.push(ServiceReport {
            kind: ctx.ws.service(&name).map(|s| s.kind),
            name,
            stack,
            result: done.result,
            duration: done.duration,
            tests: done.tests,
            why: done.why,
        });
    }
    // Outputs known in this run (deployed or read), else those recorded by the last deploy.
    let mut outputs = OutputsFile {
        stage: ctx.stage.name.clone(),
        services: BTreeMap::new(),
    };
    for s in &ctx.ws.services {
        let known = match run
            .cache
            .known(&ctx.ws.stack_name(&s.name, ctx.stage))
            .await
        {
            Some(Some(o)) => Some(o),
            _ => ctx
                .previous
                .get(&s.name)
                .map(|r| r.outputs.clone())
                .filter(|o| !o.is_empty()),
        };
        if let Some(o) = known {
            outputs.services.insert(s.name.clone(), o);
        }
    }
    let outputs = outputs.masked(&|v| ctx.masker.mask(v));
    DeployReport {
        services,
        output_reads: run.cache.calls(),
        tests: run
            .tests
            .map(|t| t.into_inner().expect("tests lock"))
            .unwrap_or_default(),
        reviews: run
            .reviews
            .map(|r| r.into_inner().expect("reviews lock"))
            .unwrap_or_default(),
        outputs,
    }
}

/// What one service's deploy did, before its tests.
enum Deployed {
    Stack {
        action: Action,
        record: Box<Record>,
        /// Why a service checked against its record (not one the plan deploys) deployed:
        /// what differs from the record.
        differs: Option<&'static str>,
    },
    UpToDate {
        why: String,
        /// Its own changes since its record were left out of the run (see
        /// [`ServiceResult::UpToDate`]).
        behind: bool,
    },
    /// A review: what would change is in the run's reviews.
    Reviewed {
        create: bool,
        resources: Option<usize>,
    },
    /// The run was interrupted before its stack operation started (during a compile, a
    /// build, the parameters' resolution): nothing was started.
    Cancelled,
}

/// How long a framework may take to compile one service.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A Serverless Framework service compiled for the stage.
struct CompiledHere {
    template: TemplateSource,
    package: ServicePackage,
    /// Its package entry's key in the stage's bucket.
    entry_key: Option<String>,
    stack_name: Option<String>,
}

/// Compiles a Serverless Framework service for this stage with its resolved `parameters` (or
/// reuses the compile of the same inputs), uploads what the stage's bucket lacks, and gives the
/// template to deploy.
async fn compile_serverless(
    run: &Run<'_>,
    service: &Service,
    parameters: &BTreeMap<String, String>,
) -> Result<CompiledHere, ServiceError> {
    let ctx = run.ctx;
    let Some(p) = ctx.package else {
        return Err(ServiceError::NotPackaged {
            service: service.name.clone(),
            package: "(none: a Serverless Framework service deploys from a package run)".into(),
        });
    };
    // The framework follows the folder's links when it zips: checked as Ferry's archives are.
    // (Owners that cannot be made are the configuration check's to report.)
    if let Ok(owners) = ferry_manifest::Owners::of_workspace(ctx.ws)
        && let Some(index) = ferry_changes::ProjectIndex::open(&ctx.ws.root)
    {
        ferry_package::check_serverless_links(ctx.ws, service, &owners, &index).map_err(|e| {
            ServiceError::Links {
                service: service.name.clone(),
                source: Box::new(e),
            }
        })?;
    }
    let env = ferry_credentials::env::child_env(ctx.config, &ctx.stage.name, ctx.masker).await?;
    let mask = |s: &str| ctx.masker.mask(s);
    // The step the compile is in, for the heartbeat.
    let first_step = "compiling with its Serverless Framework CLI";
    let step_now = Mutex::new(first_step.to_string());
    let compile = ferry_serverless::Compile {
        root: &ctx.ws.root,
        project: &ctx.ws.project.name,
        service,
        stage_id: &ctx.stage.id,
        region: &ctx.stage.config.region,
        parameters,
        env: &env,
        out: &p.dir,
        input_key: p.input_keys.get(&service.name).map(String::as_str),
        mask: &mask,
        timeout: COMPILE_TIMEOUT,
        prebuilt: Some(&run.prebuilds),
        on_step: &|step: &str| {
            *step_now.lock().expect("step lock") = step.to_string();
            (run.on)(Event::Stack {
                service: service.name.clone(),
                progress: Progress::Note(step.to_string()),
            });
        },
    };
    (run.on)(Event::Stack {
        service: service.name.clone(),
        progress: Progress::Note(first_step.into()),
    });
    let compiled = ferry_acceptance::with_heartbeat(ferry_serverless::compile(&compile), |t| {
        let step = step_now.lock().expect("step lock").clone();
        (run.on)(Event::Stack {
            service: service.name.clone(),
            progress: Progress::Note(format!("still {step} ({}s)", t.as_secs())),
        });
    })
    .await?;
    (run.on)(Event::Stack {
        service: service.name.clone(),
        progress: Progress::Note(if compiled.reused {
            "compiled before with the same inputs, stage and parameters: reused".into()
        } else {
            // Functions sharing one archive (the framework's default) count once.
            format!(
                "compiled: {} archive(s)",
                compiled
                    .artifacts
                    .iter()
                    .map(|a| &a.key)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            )
        }),
    });
    let package = compiled.package();
    if let Some(expected) = ctx.expected_archives.and_then(|e| e.get(&service.name)) {
        let got = package.artifact_keys();
        if let Some((resource, _)) = expected
            .iter()
            .find(|(r, k)| got.get(*r) != Some(*k))
            .or_else(|| got.iter().find(|(r, _)| !expected.contains_key(*r)))
        {
            return Err(ServiceError::ArchiveDiffers {
                service: service.name.clone(),
                resource: resource.clone(),
                expected: expected
                    .get(resource)
                    .cloned()
                    .unwrap_or_else(|| "(none)".into()),
                got: got
                    .get(resource)
                    .cloned()
                    .unwrap_or_else(|| "(none)".into()),
            });
        }
    }
    let bucket = p.bucket.clone().unwrap_or_default();
    let upload = ferry_package::upload_services(
        &p.s3,
        &bucket,
        &p.dir,
        &ctx.ws.project.name,
        &[ferry_package::ServiceUpload {
            service: &service.name,
            package: &package,
        }],
    )
    .await?;
    let template = template_source(p, &upload, &service.name, &package)?;
    Ok(CompiledHere {
        template,
        entry_key: upload.entries.get(&service.name).cloned(),
        package,
        stack_name: compiled.stack_name,
    })
}

/// Where the engine reads a packaged template: its URL when it was uploaded for being too large
/// to pass inline, else its text.
fn template_source(
    p: &Prepared,
    upload: &ferry_package::UploadReport,
    service: &str,
    sp: &ServicePackage,
) -> Result<TemplateSource, ServiceError> {
    Ok(match upload.template_urls.get(service) {
        Some(url) => TemplateSource::Url(url.clone()),
        None => {
            // Deployed from this file: it must be the bytes its name (their hash) says.
            let path = p.dir.join(&sp.template);
            let text = std::fs::read_to_string(&path).map_err(|source| ServiceError::Template {
                path: path.clone(),
                source,
            })?;
            let actual = sha256_hex(text.as_bytes());
            if actual != sp.template_sha256 {
                return Err(ServiceError::TemplateChanged {
                    service: service.to_string(),
                    path,
                    actual,
                });
            }
            TemplateSource::Body(text)
        }
    })
}

/// Whether every error is a missing stack or output of one of `pending` (dependencies a review
/// creates or changes) in the stage deploying (`stage`: read without naming it, or by naming
/// it), so that the parameters can be known only once those deploy.
fn only_pending_outputs(
    errors: &[ferry_outputs::ResolveError],
    pending: &[String],
    stage: &str,
) -> bool {
    use ferry_outputs::ResolveError;
    let this_stage = |named: &str| named.is_empty() || named == format!(" in stage `{stage}`");
    !pending.is_empty()
        && errors.iter().all(|e| match e {
            ResolveError::NoStack { from, stage, .. } => {
                this_stage(stage) && pending.contains(from)
            }
            ResolveError::MissingOutput { from, .. } => pending.contains(from),
            _ => false,
        })
}

/// In a review: the dependencies of `service` that the review creates or changes (their
/// outputs are not known until they deploy).
fn pending_dependencies(run: &Run<'_>, service: &Service) -> Vec<String> {
    let Some(reviews) = &run.reviews else {
        return Vec::new();
    };
    let reviews = reviews.lock().expect("reviews lock");
    service
        .dependencies()
        .into_iter()
        .filter(|d| reviews.contains_key(d))
        .collect()
}

/// Where `service`'s package came from: its origin when stored (a promote's, a rollback's), the
/// package id, commit and whether the tree was dirty.
fn provenance<'c>(
    ctx: &'c DeployContext<'_>,
    service: &Service,
) -> (Option<&'c crate::Origin>, Option<String>, String, bool) {
    // A stored one names its own package id and commit.
    let origin = ctx.package.and_then(|p| p.origins.get(&service.name));
    let package_id = ctx
        .package
        .map(|p| origin.map_or_else(|| p.manifest.id.clone(), |o| o.package.clone()));
    let commit = origin.map_or_else(|| ctx.source.commit.clone(), |o| o.commit.clone());
    let dirty = origin.map_or(ctx.source.dirty, |o| o.dirty);
    (origin, package_id, commit, dirty)
}

/// Whether a Serverless service's stored compile, made at `commit` with parameters whose hash
/// is `took`, would get other values now: its parameters as that commit's configuration writes
/// them, resolved today. The checkout's own parameters may differ from the package's (one
/// added, a literal edited since): that is no reason to refuse the package, which deploys as it
/// was compiled. A commit whose configuration cannot be read (a shallow clone, a squashed
/// branch) is not judged.
async fn stored_compile_is_stale(
    run: &Run<'_>,
    service: &Service,
    commit: &str,
    took: &str,
) -> bool {
    let ctx = run.ctx;
    let Ok(repo) = ferry_changes::Repo::open(&ctx.ws.root) else {
        return false;
    };
    let Ok(then) = ferry_plan::workspace_at(&repo, commit) else {
        return false;
    };
    let Some(own) = then.service(&service.name) else {
        return false;
    };
    // Its stage's settings of then too (`${var:…}`, the `parameters-path` of `${ssm:…}`).
    let Ok(stage_then) = then.stage(&ctx.stage.name) else {
        return false;
    };
    let ctx_then = DeployContext {
        stage: &stage_then,
        source: ctx.source.clone(),
        ..*ctx
    };
    let Ok(Resolved { mut hashed, .. }) =
        resolve_parameters(&ctx_then, own, &run.cache, &run.others, &run.ssm).await
    else {
        // What it reads cannot be resolved now (an output gone): it would not deploy well.
        return true;
    };
    if ferry_serverless::reads_param(&ctx.ws.root, service, ferry_bootstrap::BOUNDARY_PARAMETER) {
        fill_boundary(ctx, &mut BTreeMap::new(), &mut hashed);
    }
    parameters_hash(&hashed) != took
}

/// The review of a Serverless service compiled when approved
/// ([`Reviewed::compile_when_approved`]): what its stack would become is known only then; the
/// stack's state is kept, as for every review, and the inputs to compile from.
async fn review_compiled_when_approved(
    run: &Run<'_>,
    service: &Service,
    stack: &str,
    parameters_after: Vec<String>,
    compile_failed: Option<String>,
) -> Result<Deployed, ServiceError> {
    let ctx = run.ctx;
    verifiable_compile(ctx, service, &parameters_after)?;
    let (_, package_id, commit, dirty) = provenance(ctx, service);
    let input_key = ctx
        .package
        .and_then(|p| p.input_keys.get(&service.name).cloned());
    let current = run.engine.describe(stack).await?;
    let deployed = match &current {
        Some(_) => run.engine.template(stack).await?,
        None => None,
    };
    let reviewed = Reviewed {
        kind: Some(service.kind.to_string()),
        package_key: String::new(),
        fingerprint: String::new(),
        package: package_id.unwrap_or_default(),
        commit,
        dirty,
        parameters: BTreeMap::new(),
        resolve_when_approved: true,
        compile_when_approved: true,
        archives: expected_archives(ctx, service),
        expressions: Some(crate::release::written_parameters(service)),
        stack: stack_state(current.as_ref(), deployed.as_deref()),
        input_key,
    };
    let review = StackReview {
        service: service.name.clone(),
        stack: stack.to_string(),
        create: current.is_none(),
        resources: Vec::new(),
        outputs: Vec::new(),
        parameters: Vec::new(),
        parameters_after,
        not_compared: Some(match compile_failed {
            None => "the Serverless Framework compiles its parameters into its template, so it is compiled when approved, after those deploy, from the checkout (which must hold the reviewed inputs)".into(),
            Some(why) => format!(
                "its compile failed now, perhaps on what this review changes, so it is compiled when approved, after those deploy, from the checkout (which must hold the reviewed inputs); the failure: {why}"
            ),
        }),
    };
    let result = Deployed::Reviewed {
        create: review.create,
        resources: None,
    };
    let reviews = run.reviews.as_ref().expect("a review");
    reviews
        .lock()
        .expect("reviews lock")
        .insert(service.name.clone(), (review, reviewed));
    Ok(result)
}

/// Checks that the approval can compile `service` from its checkout, as
/// [`Reviewed::compile_when_approved`] has it, and show that checkout holds the reviewed
/// inputs: by their key, else by a commit of this repository whose tree was clean.
fn verifiable_compile(
    ctx: &DeployContext<'_>,
    service: &Service,
    dependencies: &[String],
) -> Result<(), ServiceError> {
    let (origin, _, commit, dirty) = provenance(ctx, service);
    let keyed = ctx
        .package
        .is_some_and(|p| p.input_keys.contains_key(&service.name));
    let committed = !dirty
        && ferry_changes::Repo::open(&ctx.ws.root)
            .ok()
            .and_then(|r| r.resolve(&commit))
            .is_some();
    if keyed || committed {
        return Ok(());
    }
    Err(ServiceError::UnverifiableCompile {
        service: service.name.clone(),
        dependencies: dependencies.to_vec(),
        why: match (origin, dirty) {
            (Some(_), true) => "its package in the stage promoted from was made from uncommitted changes: promote one made from a commit".into(),
            (None, true) => "this checkout holds uncommitted changes among its inputs: commit them and review again".into(),
            _ => format!("commit `{commit}` is none of this repository's: review from a git checkout"),
        },
    })
}

/// The archives `service`'s compile must reproduce (past a gate: those that passed in the
/// source stage).
fn expected_archives(ctx: &DeployContext<'_>, service: &Service) -> BTreeMap<String, String> {
    ctx.expected_archives
        .and_then(|e| e.get(&service.name))
        .cloned()
        .unwrap_or_default()
}

/// The state of a stack (`current`, running the template `deployed`) that an approval checks
/// again.
fn stack_state(
    current: Option<&ferry_stacks::StackInfo>,
    deployed: Option<&str>,
) -> Option<ferry_releases::StackState> {
    current.map(|c| ferry_releases::StackState {
        id: c.id.clone(),
        template_sha256: sha256_hex(deployed.unwrap_or_default().as_bytes()),
        parameters_hash: parameters_hash(&c.parameters),
    })
}

/// What deploying `template` with `parameters` would change in `stack`: the diff against the
/// template and parameters it runs (GetTemplate, DescribeStacks), parameter values masked; and
/// the stack's state, which an approval checks again.
async fn review_stack(
    run: &Run<'_>,
    service: &Service,
    packaged: Option<&ServicePackage>,
    spec: &StackSpec,
    secure: &BTreeSet<String>,
    mut reviewed: Reviewed,
) -> Result<(StackReview, Reviewed), ServiceError> {
    let ctx = run.ctx;
    let (stack, parameters) = (spec.name.as_str(), &spec.parameters);
    let text = template_text(ctx, service, packaged, &spec.template)?;
    let parse = |t: &str| {
        ferry_package::parse_template(t).map_err(|e| ServiceError::Expand {
            service: service.name.clone(),
            message: e.to_string(),
        })
    };
    let after = parse(&text)?;
    let current = run.engine.describe(stack).await?;
    let deployed = match &current {
        Some(_) => run.engine.template(stack).await?,
        None => None,
    };
    // Like with like: a SAM template unexpanded (on AWS always; on the emulator, where Ferry
    // expands it, while its parameters wait for the approval) beside the template the stack
    // was given as it was given, never beside its expansion, whose resources are others
    // (`AWS::Lambda::Function` and its role for an `AWS::Serverless::Function`).
    let mut not_compared = None;
    let before = if current.is_some() && ferry_package::is_sam(&after) {
        let original = run.engine.original_template(stack).await?;
        match original.as_deref().map(parse).transpose()? {
            Some(o) if ferry_package::is_sam(&o) => Some(o),
            _ => {
                not_compared = Some(if ctx.expand_sam.is_some() {
                    "its SAM template expands only once its parameters resolve (at the approval), and the stack runs the expanded one".to_string()
                } else {
                    "the stack was last given a template that is not SAM (another kind of service deployed it, or it was adopted), and CloudFormation alone expands this one".to_string()
                });
                None
            }
        }
    } else {
        deployed.as_deref().map(parse).transpose()?
    };
    // A parameter that takes a SecureString is never shown, before or after: its old value may
    // be a secret the masker no longer knows (rotated since).
    let mask = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| {
                let shown = if secure.contains(k) {
                    "****".to_string()
                } else {
                    ctx.masker.mask(v)
                };
                (k.clone(), shown)
            })
            .collect()
    };
    let before_parameters = current
        .as_ref()
        .map(|c| mask(&c.parameters))
        .unwrap_or_default();
    reviewed.stack = stack_state(current.as_ref(), deployed.as_deref());
    let (mut resources, mut outputs) = if not_compared.is_some() {
        (Vec::new(), Vec::new())
    } else {
        (
            ferry_releases::review::diff_resources(before.as_ref(), &after),
            ferry_releases::review::diff_outputs(before.as_ref(), &after),
        )
    };
    let parameter_changes =
        ferry_releases::review::diff_parameters(&before_parameters, &mask(parameters));
    ferry_releases::review::with_parameter_outputs(&mut outputs, &after, &parameter_changes);
    // On AWS (change sets), CloudFormation's own replacement details, and the resources a new
    // parameter value reaches; the emulator's change sets say nothing useful about
    // replacements, so a direct deploy (--local) keeps Ferry's table.
    let changes = !resources.is_empty() || !parameter_changes.is_empty();
    if current.is_some()
        && run.method == Method::ChangeSet
        && changes
        && !reviewed.resolve_when_approved
        && let Some(cs) = run.engine.replacements(spec).await?
    {
        ferry_releases::review::with_change_set(&mut resources, &cs, &after);
    }
    let review = StackReview {
        service: service.name.clone(),
        stack: stack.to_string(),
        create: current.is_none(),
        resources,
        outputs,
        parameters: parameter_changes,
        parameters_after: Vec::new(),
        not_compared,
    };
    Ok((review, reviewed))
}

/// The text of the template a service deploys: its body, or (when it goes by URL) the packaged
/// file it was uploaded from.
pub(crate) fn template_text(
    ctx: &DeployContext<'_>,
    service: &Service,
    packaged: Option<&ServicePackage>,
    template: &TemplateSource,
) -> Result<String, ServiceError> {
    match (template, ctx.package, packaged) {
        (TemplateSource::Body(b), ..) => Ok(b.clone()),
        (TemplateSource::Url(_), Some(p), Some(sp)) => {
            let path = p.dir.join(&sp.template);
            std::fs::read_to_string(&path).map_err(|source| ServiceError::Template { path, source })
        }
        (TemplateSource::Url(url), ..) => Err(ServiceError::Expand {
            service: service.name.clone(),
            message: format!("its template is at {url}, not in a local package"),
        }),
    }
}

/// The parameter names a template declares (none when it cannot be read).
fn declared_parameters(
    ctx: &DeployContext<'_>,
    service: &Service,
    packaged: Option<&ServicePackage>,
    template: &TemplateSource,
) -> BTreeSet<String> {
    let text = template_text(ctx, service, packaged, template).ok();
    text.and_then(|t| ferry_package::parse_template(&t).ok())
        .and_then(|v| {
            v.get("Parameters")
                .and_then(|p| p.as_object())
                .map(|o| o.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// Gives `FerryPermissionsBoundary` the name of the stage's permissions boundary (what
/// `bootstrap` makes), unless service.toml gives it a value of its own (a boundary made
/// otherwise, for a stage Ferry did not bootstrap).
fn fill_boundary(
    ctx: &DeployContext<'_>,
    parameters: &mut BTreeMap<String, String>,
    hashed: &mut BTreeMap<String, String>,
) {
    let key = ferry_bootstrap::BOUNDARY_PARAMETER;
    if parameters.contains_key(key) {
        return;
    }
    let name = ferry_bootstrap::boundary_name(ctx.ws, ctx.stage);
    hashed.insert(key.to_string(), name.clone());
    parameters.insert(key.to_string(), name);
}

/// Deploys one service, or finds it up to date. `must_deploy`: the plan deploys it (else it is
/// a dependent or SSM reader, checked against its record).
async fn deploy_one(
    run: &Run<'_>,
    service: &Service,
    stack: &str,
    must_deploy: bool,
) -> Result<Deployed, ServiceError> {
    let ctx = run.ctx;
    let on = run.on;
    let fixed = ctx.fixed_parameters.and_then(|f| f.get(&service.name));
    if run.check_only && fixed.is_none() {
        return Ok(Deployed::UpToDate {
            why: "no parameters fixed by the review".into(),
            behind: false,
        });
    }
    // A review: dependencies it creates or changes, whose outputs are not known yet.
    let parameters_after = pending_dependencies(run, service);
    // A Serverless service the review deploys whose parameters wait for dependencies the
    // review creates or changes: the framework compiles their values into the template, so the
    // approval compiles it again, after those deploy (a compile now would deploy their old
    // values). Compiled now too where they resolve, for what the review shows.
    // (A dependent it only checks is compiled now to compare with its record, and, when it
    // differs and so is reviewed, compiled again when approved too.)
    let compile_when_approved = run.reviews.is_some()
        && service.kind == ServiceKind::Serverless
        && !parameters_after.is_empty();
    let mut waiting = false;
    let Resolved {
        mut parameters,
        mut hashed,
    } = match resolve_parameters(ctx, service, &run.cache, &run.others, &run.ssm).await {
        Ok(r) => r,
        // Only those outputs' errors; any other (a missing SSM parameter, a wrong key) is
        // reported.
        Err(ServiceError::Parameters(errors))
            if only_pending_outputs(&errors, &parameters_after, &run.ctx.stage.name) =>
        {
            waiting = true;
            Resolved {
                parameters: BTreeMap::new(),
                hashed: BTreeMap::new(),
            }
        }
        Err(e) => return Err(e),
    };
    // A Serverless service reading the stage's permissions boundary (`${param:…}`, in its
    // configuration or a file it includes) gets its name as a parameter of the compile.
    if service.kind == ServiceKind::Serverless
        && ferry_serverless::reads_param(&ctx.ws.root, service, ferry_bootstrap::BOUNDARY_PARAMETER)
    {
        fill_boundary(ctx, &mut parameters, &mut hashed);
    }
    // Those stacks are not there yet (a new stage): nothing to compile with.
    if compile_when_approved && waiting {
        return review_compiled_when_approved(run, service, stack, parameters_after, None).await;
    }
    let stored = ctx
        .package
        .and_then(|p| p.manifest.services.get(&service.name));
    let compiled;
    // What a Serverless service (compiled now, or a stored compile deploying as it is: a
    // rollback, an approval) was compiled from, for a promote to compare its checkout with.
    let input_key = ctx
        .package
        .filter(|_| service.kind == ServiceKind::Serverless)
        .and_then(|p| p.input_keys.get(&service.name).cloned());
    let (packaged, template, entry_key) = match (ctx.package, stored) {
        // Compiled now for this stage, unless a stored compile of it is what deploys (a rollback).
        (Some(_), None) if service.kind == ServiceKind::Serverless => {
            compiled = match compile_serverless(run, service, &parameters).await {
                Ok(c) => c,
                // Perhaps on what the review changes (a `${cf:…}` of a stack it creates, an
                // output it adds): left to the approval's compile, after those deploy.
                Err(e) if compile_when_approved => {
                    let why = Some(ctx.masker.mask(&e.to_string()));
                    return review_compiled_when_approved(
                        run,
                        service,
                        stack,
                        parameters_after,
                        why,
                    )
                    .await;
                }
                Err(e) => return Err(e),
            };
            if let Some(theirs) = compiled.stack_name.as_deref().filter(|n| *n != stack) {
                return Err(ServiceError::StackNameDiffers {
                    service: service.name.clone(),
                    framework: theirs.to_string(),
                    ferry: stack.to_string(),
                });
            }
            (
                Some(&compiled.package),
                compiled.template.clone(),
                compiled.entry_key.clone(),
            )
        }
        (Some(p), Some(sp)) => (
            Some(sp),
            template_source(p, &p.upload, &service.name, sp)?,
            p.upload.entries.get(&service.name).cloned(),
        ),
        (Some(p), None) => {
            return Err(ServiceError::NotPackaged {
                service: service.name.clone(),
                package: p.manifest.id.clone(),
            });
        }
        (None, _) if service.kind == ServiceKind::Serverless => {
            return Err(ServiceError::NotPackaged {
                service: service.name.clone(),
                package: "(none: a Serverless Framework service deploys from a package run)".into(),
            });
        }
        (None, _) => {
            let path = ctx.ws.root.join(service.template_path());
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ServiceError::Template { path, source })?;
            (None, TemplateSource::Body(text), None)
        }
    };
    if service.kind == ServiceKind::Serverless {
        // The framework took the parameters (`--param`); the stack takes only the bucket.
        parameters.clear();
    }
    if let Some((key, value)) = parameters
        .iter()
        .find(|(_, v)| v.len() > ferry_package::MAX_PARAMETER_VALUE)
    {
        return Err(ServiceError::ParameterTooLong {
            service: service.name.clone(),
            key: key.clone(),
            bytes: value.len(),
        });
    }
    let fingerprint = match (packaged, &template) {
        (Some(sp), _) => sp.fingerprint(),
        (None, TemplateSource::Body(text)) => sha256_hex(text.as_bytes()),
        (None, TemplateSource::Url(url)) => sha256_hex(url.as_bytes()),
    };
    let (origin, package_id, commit, dirty) = provenance(ctx, service);
    // Whether the uncommitted changes were among its own inputs: a service whose inputs were
    // all as committed has an input key; a stored package says what its record said (none, or
    // no package, is taken as dirty).
    let inputs_dirty = dirty
        && match (origin, ctx.package) {
            (Some(o), _) => o.inputs_dirty.unwrap_or(true),
            (None, Some(p)) => !p.input_keys.contains_key(&service.name),
            (None, None) => true,
        };
    let artifact_keys = packaged.map(|sp| sp.artifact_keys()).unwrap_or_default();
    let needs_bucket = packaged.is_some_and(|sp| !sp.artifacts.is_empty());
    // Not of a Serverless service compiled now (a promote's, an approval's compile): its
    // parameters went into the compile, and its record keeps them as a deploy's does (kept
    // out, its next check found them "changed", and redeployed it).
    let compiled_now = service.kind == ServiceKind::Serverless && stored.is_none();
    let declared = (ctx.declared_parameters_only && !compiled_now)
        .then(|| declared_parameters(ctx, service, packaged, &template));
    // What a Serverless service receives went into its compile (`--param`), not to its stack,
    // whose compiled template declares the bucket at most: kept apart for its record, which
    // holds it as a deploy's does also when a stored compile deploys as it is (a rollback; an
    // approval whose parameters resolve again). Dropped, the record held none of it: the
    // rollback found the parameters changed, redeployed the service ("no changes"), cleared its
    // tests, and the next check of it redeployed it again.
    let compiled_with = (service.kind == ServiceKind::Serverless).then(|| hashed.clone());
    if let Some(declared) = &declared {
        parameters.retain(|k, _| declared.contains(k));
        hashed.retain(|k, _| declared.contains(k));
    }
    if needs_bucket {
        let bucket = ctx
            .package
            .and_then(|p| p.bucket.clone())
            .unwrap_or_default();
        hashed.insert(ferry_package::BUCKET_PARAMETER.to_string(), bucket.clone());
        parameters.insert(ferry_package::BUCKET_PARAMETER.to_string(), bucket);
    }
    // What CloudFormation reads from SSM itself at each stack operation, so that its version is
    // part of what the stack receives (not in a review whose parameters wait for outputs: they
    // resolve again, versions too, when it is approved): a template parameter of an SSM
    // parameter type, and a dynamic reference (`{{resolve:ssm:…}}`, a compiled Serverless
    // template's too). The template's text is read once for both.
    let text = template_text(ctx, service, packaged, &template).ok();
    // The name of the stage's permissions boundary, to a template that declares the parameter
    // for it (its roles take `PermissionsBoundary: !Sub
    // "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${FerryPermissionsBoundary}"`): the
    // template stays the same bytes in every stage.
    if service.kind != ServiceKind::Serverless
        && let Some(parsed) = text
            .as_deref()
            .filter(|t| t.contains(ferry_bootstrap::BOUNDARY_PARAMETER))
            .and_then(|t| ferry_package::parse_template(t).ok())
        && parsed["Parameters"]
            .get(ferry_bootstrap::BOUNDARY_PARAMETER)
            .is_some()
    {
        fill_boundary(ctx, &mut parameters, &mut hashed);
    }
    let ssm_read_text = parameters_after.is_empty().then_some(text).flatten();
    if service.kind != ServiceKind::Serverless
        && let Some(parsed) = ssm_read_text
            .as_deref()
            .filter(|t| t.contains(ferry_package::SSM_PARAMETER_TYPE))
            .and_then(|t| ferry_package::parse_template(t).ok())
    {
        ssm_typed_versions(ctx, service, &parsed, &parameters, &run.ssm, &mut hashed).await?;
    }
    if let Some(text) = ssm_read_text.filter(|t| t.contains("{{resolve:ssm")) {
        crate::parameters::dynamic_reference_versions(ctx, &text, &run.ssm, &mut hashed).await?;
    }
    // The site's config file holds the dependencies' outputs: a change there is a change too.
    let site_config = match packaged.and_then(|sp| sp.site.as_ref()) {
        Some(site) if site.config_file.is_some() => {
            Some(site_config(ctx, service, &run.cache).await?)
        }
        _ => None,
    };
    let template_hash = match &site_config {
        Some(c) => sha256_hex(format!("{fingerprint}:{}", sha256_hex(c)).as_bytes()),
        None => fingerprint,
    };
    // A Serverless service's reviewed compile, approved: its parameters went into that compile,
    // as the review resolved them, and its record keeps them, as a deploy's does (the stored
    // template takes only the bucket: kept out, its next check found them changed).
    // What the framework writes into the template: taken now by a compile now; a stored
    // compile's took what its record says.
    let compile_hash = compiled_with.as_ref().map(parameters_hash);
    let took = if compiled_now {
        compile_hash.clone()
    } else {
        origin.and_then(|o| o.compiled_with.clone())
    };
    let params_hash = match (fixed, compiled_with) {
        (Some(reviewed), _) if service.kind == ServiceKind::Serverless && !compiled_now => {
            parameters_hash(reviewed)
        }
        // Any other Serverless service: what its compile took, with what its stack takes (the
        // bucket, the versions of its dynamic references), as a deploy hashes them.
        (_, Some(mut received)) => {
            received.extend(hashed.clone());
            parameters_hash(&received)
        }
        (_, None) => parameters_hash(&hashed),
    };

    let differs = match ctx.previous.get(&service.name) {
        _ if must_deploy => None,
        // Its site and data may be gone, whatever its record says of its package (a promote,
        // rollback or approval of the same package checks it this way).
        Some(r) if r.removing.is_some() => {
            Some("a remove that stopped after it began emptying its buckets left it")
        }
        Some(r) if r.template_hash == template_hash && r.parameters_hash == params_hash => {
            run.keep_received(r).await?;
            // Its outputs may still be needed by dependents: they come from the stack on demand.
            return Ok(Deployed::UpToDate {
                why: "template, artifacts and parameters unchanged since its record".into(),
                behind: false,
            });
        }
        // Checked for what it receives, which is unchanged: what differs is its own (template,
        // code), which this run left out (`--service` selected another; `--since` skipped it).
        // Deployed, it would go out unselected. (A site's config holds its dependencies'
        // outputs and counts in its template's hash: that difference may be theirs; so may a
        // Serverless Framework service's, whose compile writes in what it reads itself, a
        // dependency's `${cf:…}`, an `${ssm:…}`.)
        Some(r)
            if r.parameters_hash == params_hash
                && site_config.is_none()
                && service.kind != ServiceKind::Serverless =>
        {
            run.keep_received(r).await?;
            return Ok(Deployed::UpToDate {
                why: "what it receives is unchanged; its own changes since its record (template or code) are not part of this run: a deploy that selects it takes them".into(),
                behind: true,
            });
        }
        // What changed: the outputs of a dependency that deployed since, else a value read
        // outside git (an SSM parameter's new version: a rotated secret).
        Some(r) if r.template_hash == template_hash => Some(
            match (
                // A record of an earlier Ferry says nothing of what it received: the same when
                // it has no dependency to receive from.
                r.received.as_ref().map_or_else(
                    || ctx.ws.graph().dependencies(&service.name).is_empty(),
                    |got| *got == run.received_now(&service.name),
                ),
                reads_outside_git(ctx.ws, service),
            ) {
                (true, true) => {
                    "its parameters differ from its record (a value it reads outside git changed: an SSM parameter's new version, or another stage's output)"
                }
                (false, true) => {
                    "its parameters differ from its record (a dependency's outputs or a value it reads outside git changed)"
                }
                _ => "its parameters differ from its record (what it receives changed)",
            },
        ),
        Some(r) if r.parameters_hash == params_hash => {
            Some("its template or artifacts differ from its record")
        }
        Some(_) => Some(
            "its template and parameters differ from its record (what it receives changed, and it goes out with its own changes since its record)",
        ),
        None => Some("no record in this stage"),
    };
    // A stored compile deployed as it is (a rollback) whose dependencies give other values
    // now (a stack created again or a resource replaced since, a secret rotated): its
    // functions would name what is gone, and its record would say it is up to date.
    if service.kind == ServiceKind::Serverless
        && !compiled_now
        && fixed.is_none()
        && let Some(took) = &took
        && compile_hash.as_ref() != Some(took)
        && stored_compile_is_stale(run, service, &commit, took).await
    {
        return Err(ServiceError::StaleCompile {
            service: service.name.clone(),
            stage: ctx.stage.name.clone(),
            package: package_id.clone().unwrap_or_default(),
            commit: commit.clone(),
        });
    }

    check_secret_parameters(ctx, service, packaged, &template, &hashed, on)?;
    // An approval: what resolves now must be what was reviewed (else the review is stale),
    // both seen as the stored template takes them: a review resolved every parameter, while a
    // stored package takes only those its template declares (a Serverless Framework service's
    // compiled template declares only the artifact bucket; its parameters went into the
    // compile, which is deployed as reviewed).
    let reviewed = fixed.map(|r| {
        let mut r = r.clone();
        if let Some(declared) = &declared {
            // The versions of the template's own dynamic references (`{{resolve:ssm:…}}`)
            // are compared too, as they are in `hashed`.
            r.retain(|k, _| {
                declared.contains(k)
                    || k == ferry_package::BUCKET_PARAMETER
                    || k.starts_with("{{resolve:")
            });
        }
        r
    });
    if let Some(reviewed) = reviewed
        && reviewed != hashed
    {
        return Err(ServiceError::ParametersChanged {
            service: service.name.clone(),
            names: ferry_releases::review::diff_parameters(&reviewed, &hashed)
                .into_iter()
                .map(|c| c.name)
                .collect(),
        });
    }
    if run.check_only {
        return Ok(Deployed::UpToDate {
            why: "its parameters resolve as reviewed".into(),
            behind: false,
        });
    }
    let template = match (service.kind, ctx.expand_sam) {
        // Parameters known only when approved: the review shows the template unexpanded.
        (ServiceKind::Sam, Some(_)) if !parameters_after.is_empty() => template,
        (ServiceKind::Sam, Some(expander)) => {
            crate::emulator::expand_sam(ctx, service, packaged, template, &parameters, expander)
                .await?
        }
        (_, _) => template,
    };
    let spec = StackSpec {
        name: stack.to_string(),
        template,
        parameters,
        tags: BTreeMap::new(),
        method: run.method,
        termination_protection: ctx.stage.config.protected,
        owner: Some(ownership(ctx.ws, ctx.stage, &service.name)),
        adopt: ctx.adopt,
        renamed_from: renamed_from(ctx, service, stack),
    };
    if let Some(reviews) = &run.reviews {
        // A value that holds a secret (a stack output echoing one) is never kept in the
        // bucket: such a service's parameters resolve again when approved.
        let holds_secret = hashed.values().any(|v| ctx.masker.mask(v) != *v);
        let resolve_when_approved = holds_secret || !parameters_after.is_empty();
        if compile_when_approved {
            verifiable_compile(ctx, service, &parameters_after)?;
        }
        let reviewed = Reviewed {
            kind: Some(service.kind.to_string()),
            package_key: entry_key.clone().ok_or_else(|| ServiceError::NotStored {
                service: service.name.clone(),
                stage: ctx.stage.name.clone(),
            })?,
            fingerprint: packaged
                .map(ServicePackage::fingerprint)
                .unwrap_or_default(),
            package: package_id.clone().unwrap_or_default(),
            commit: commit.clone(),
            dirty,
            parameters: if resolve_when_approved {
                BTreeMap::new()
            } else {
                hashed.clone()
            },
            resolve_when_approved,
            compile_when_approved,
            archives: if compile_when_approved {
                expected_archives(ctx, service)
            } else {
                BTreeMap::new()
            },
            expressions: Some(crate::release::written_parameters(service)),
            stack: None,
            input_key: input_key.clone(),
        };
        let secure: BTreeSet<String> = hashed
            .iter()
            .filter(|(_, v)| !crate::parameters::secure_names(v).is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        let (mut review, reviewed) =
            review_stack(run, service, packaged, &spec, &secure, reviewed).await?;
        review.parameters_after = parameters_after;
        let result = Deployed::Reviewed {
            create: review.create,
            resources: review
                .not_compared
                .is_none()
                .then_some(review.resources.len()),
        };
        reviews
            .lock()
            .expect("reviews lock")
            .insert(service.name.clone(), (review, reviewed));
        return Ok(result);
    }
    // A record too large to write (dozens of archive keys) would fail the service after its
    // stack moved, and the stack would redeploy on every run: refused before. Checked without
    // outputs (a record leaves them out when it must), with a stack id, times and tests'
    // outcome as long as the real ones will be.
    let region = &ctx.stage.config.region;
    // A stored package of another commit (a promote, a rollback): the configuration that named
    // the stack is this checkout's.
    let named_at = (ctx.source.commit != commit).then(|| ctx.source.commit.clone());
    let record = Record {
        service: service.name.clone(),
        stage: Some(ctx.stage.name.clone()),
        named_stage: !ctx.stage.preview,
        stack: stack.to_string(),
        commit,
        dirty,
        inputs_dirty: dirty.then_some(inputs_dirty),
        template_hash,
        parameters_hash: params_hash,
        compiled_with: took,
        artifacts: artifact_keys,
        deployed_at: ferry_records::now_secs(),
        duration_ms: 99_999_999,
        acceptance: Some(ferry_records::Acceptance {
            passed: false,
            at: ferry_records::now_secs(),
        }),
        outputs: BTreeMap::new(),
        stack_id: Some(format!(
            "arn:{}:cloudformation:{region}:000000000000:stack/{stack}/00000000-0000-0000-0000-000000000000",
            partition(region)
        )),
        stack_updated: Some(ferry_records::now_millis() as i64),
        kind: Some(service.kind.to_string()),
        package: package_id,
        package_key: entry_key,
        release: ctx.release.map(|r| r.id.to_string()),
        release_kind: ctx.release.map(|r| r.kind.to_string()),
        release_by: ctx.release.map(|r| r.by.to_string()),
        review: ctx.release.and_then(|r| r.review).map(String::from),
        restores: ctx.release.and_then(|r| r.restores).map(String::from),
        promoted_from: ctx.release.and_then(|r| r.from).map(String::from),
        removing: None,
        package_fingerprint: packaged.map(ServicePackage::fingerprint),
        input_key,
        received: Some(run.received_now(&service.name)),
        named_at,
    };
    // With room for the mark a remove writes into it before it empties the stack's buckets.
    ferry_records::check_fits(&Record {
        removing: Some(u64::MAX),
        ..record.clone()
    })?;
    // Interrupted while this service was being made ready (a framework's compile runs on to
    // its end): the run starts nothing new, and so no stack operation.
    if ctx.cancel.is_cancelled() {
        return Ok(Deployed::Cancelled);
    }
    // The stage's lock is still this run's (between two renewals another run may have taken
    // it over): else nothing starts.
    ctx.records.check_held().await?;
    let name = service.name.clone();
    let t0 = Instant::now();
    let deployed = run
        .engine
        .deploy(&spec, &|p| {
            on(Event::Stack {
                service: name.clone(),
                progress: p,
            })
        })
        .await?;
    run.cache.set(stack, deployed.outputs.clone()).await;
    if let (Some(p), Some(site)) = (ctx.package, packaged.and_then(|sp| sp.site.as_ref())) {
        publish_site(
            ctx,
            p,
            service,
            site,
            &deployed.outputs,
            site_config.as_deref(),
            on,
        )
        .await?;
    }
    let record = Record {
        deployed_at: ferry_records::now_secs(),
        duration_ms: t0.elapsed().as_millis() as u64,
        acceptance: None,
        // A stack output may echo a secret (a SecureString passed in): records never hold one.
        outputs: deployed
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), ctx.masker.mask(v)))
            .collect(),
        stack_id: Some(deployed.stack_id.clone()),
        stack_updated: deployed.last_updated,
        ..record
    };
    ctx.records.write(&record).await?;
    run.wrote(&record);
    if let Some(from) = &spec.renamed_from {
        // Once the stack is tagged for this service, the record of the name it had goes (it is
        // what lets a later `--adopt` find the stack, so it stays while the tags do not say so:
        // an update CloudFormation found nothing to do in). The deploy stands either way; the
        // note says how to finish.
        let tagged = run
            .engine
            .describe(stack)
            .await
            .ok()
            .flatten()
            .is_some_and(|info| {
                info.tags.get(ferry_stacks::ownership::TAG_SERVICE) == Some(&service.name)
            });
        let note = if !tagged {
            format!(
                "warning: stack {stack} is still tagged for `{from}`, the name this service had (CloudFormation updated nothing); its record is kept: change the service's template or parameters, then deploy with --adopt again"
            )
        } else {
            match ctx.records.delete(from).await {
                Ok(()) => format!(
                    "took stack {stack} over from `{from}`, the name this service had: its record is dropped"
                ),
                Err(e) => format!(
                    "warning: took stack {stack} over from `{from}`, the name this service had, but its record could not be dropped ({e}); delete SSM parameter {}",
                    ctx.records.record_name(from)
                ),
            }
        };
        on(Event::Stack {
            service: service.name.clone(),
            progress: Progress::Note(note),
        });
    }
    Ok(Deployed::Stack {
        action: deployed.action,
        record: Box::new(record),
        differs,
    })
}

/// The service gone from the checkout whose record names `stack`: the name `service`, which
/// deploys `stack`, had before it was renamed (see [`StackSpec::renamed_from`]). Only a service
/// whose stack is not named after it keeps it through a rename (a Serverless service's
/// framework names it; a `stack-name` without `{service}`; a pattern giving the old name's
/// stack): one named after it has a new stack once renamed. Both are of one kind: a service of
/// another kind naming the stack is another service, not the same one renamed.
fn renamed_from(ctx: &DeployContext<'_>, service: &Service, stack: &str) -> Option<String> {
    ctx.previous
        .iter()
        .find(|(name, r)| {
            r.stack == stack
                && r.kind.as_deref() == Some(service.kind.as_str())
                && ctx.ws.service(name).is_none()
        })
        .map(|(name, _)| name.clone())
}

/// The AWS partition of a region, as its ARNs name it.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// With `--test`: runs a just-deployed service's acceptance tests and marks its `record` (just
/// written). A failure fails the service, so its dependents are skipped.
async fn run_tests(
    run: &Run<'_>,
    service: &Service,
    record: &Record,
    action: Option<Action>,
) -> Result<ServiceResult, ServiceError> {
    let (ctx, on) = (run.ctx, run.on);
    // What the result says on success (an up-to-date service's is replaced by the caller).
    let done = ServiceResult::Deployed {
        action: action.unwrap_or(Action::Updated),
    };
    let Some(tests) = &run.tests else {
        return Ok(done);
    };
    if service.acceptance.is_none() {
        return Ok(done);
    }
    on(Event::Stack {
        service: service.name.clone(),
        progress: Progress::Note("running its acceptance tests".into()),
    });
    // A stored package (promote, rollback, approval) was made elsewhere: this checkout's tests
    // are its tests only when the checkout holds what it was made from (see `unvouched`),
    // judged before they run. A package made from this checkout in this run is.
    let stored = ctx
        .package
        .is_some_and(|p| p.origins.contains_key(&service.name));
    let unvouched = if stored {
        crate::acceptance::unvouched(
            ctx.ws,
            &BTreeMap::from([(service.name.clone(), record.clone())]),
            &BTreeSet::from([service.name.clone()]),
        )
        .remove(&service.name)
    } else {
        None
    };
    let harness =
        crate::acceptance::harness(ctx.ws, ctx.stage, ctx.config, ctx.masker, ctx.builds).await?;
    let mut outputs = BTreeMap::new();
    for s in std::iter::once(service.name.clone()).chain(service.dependencies_in(ctx.stage)) {
        let stack = ctx.ws.stack_name(&s, ctx.stage);
        let owner = ownership(ctx.ws, ctx.stage, &s);
        if let Some(o) = run.cache.get(&stack, Some(&owner)).await? {
            outputs.insert(s, o);
        }
    }
    let test = harness.run_one_unless_cancelled(service, &outputs, ctx.cancel);
    let outcome = ferry_acceptance::with_heartbeat(test, |t| {
        let building = ctx.builds.is_some_and(|b| b.pending(&service.name));
        on(Event::Stack {
            service: service.name.clone(),
            progress: Progress::Note(if building {
                format!("waiting for its acceptance build ({}s)", t.as_secs())
            } else {
                format!("still running its acceptance tests ({}s)", t.as_secs())
            }),
        })
    })
    .await;
    tests.lock().expect("tests lock").push(outcome.clone());
    on(Event::Stack {
        service: service.name.clone(),
        progress: Progress::Note(format!(
            "acceptance tests {} in {:.1}s",
            outcome.status,
            outcome.duration.as_secs_f64()
        )),
    });
    if outcome.status == ferry_acceptance::Status::Cancelled {
        // Nothing is recorded of them: they are owed to the next run.
        return Err(ServiceError::TestsStopped {
            action: ServiceError::what_ran(action),
        });
    }
    // The outcome into the record; a write that fails is a failure of the tests' step, not of
    // the stack (which is where the run meant it to be).
    let mark = async || match ferry_acceptance::mark(record, &outcome, ferry_records::now_secs()) {
        Some(marked) => {
            ctx.records
                .write(&marked)
                .await
                .map_err(|source| ServiceError::OutcomeNotWritten {
                    service: service.name.clone(),
                    outcome: outcome.status.to_string(),
                    source: Box::new(source),
                })
        }
        None => Ok(()),
    };
    if outcome.status.is_failure() {
        if unvouched.is_none() {
            mark().await?;
        }
        return Err(ServiceError::tests_failed(action, &outcome.status));
    }
    if let Some(why) = unvouched {
        return Err(ServiceError::TestsNotRecorded {
            service: service.name.clone(),
            why,
        });
    }
    mark().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::{only_pending_outputs, partition};

    /// A service deployed whose tests a cancel stopped did not fail: the summary's result says
    /// so, as the note under it does (it said FAILED).
    #[test]
    fn a_service_whose_tests_a_cancel_stopped_is_not_shown_as_failed() {
        use super::{ServiceError, ServiceResult};
        let result = |error| ServiceResult::Failed {
            error: std::sync::Arc::new(error),
        };
        assert_eq!(
            result(ServiceError::TestsStopped {
                action: "deployed (created)".into()
            })
            .to_string(),
            "deployed, tests cancelled"
        );
        assert_eq!(
            result(ServiceError::TestsFailed {
                action: "deployed (created)".into(),
                status: "FAILED".into()
            })
            .to_string(),
            "FAILED"
        );
    }

    /// In a review, a dependency the review creates has no stack yet: a read of it defers the
    /// parameters whether it names the deploying stage or not; one of another stage is an
    /// error, and so is a stage-less read of a service the review does not create.
    #[test]
    fn a_review_defers_reads_of_what_it_creates_in_its_own_stage_only() {
        use ferry_outputs::ResolveError;
        let no_stack = |from: &str, stage: &str| ResolveError::NoStack {
            service: "api".into(),
            parameter: "P".into(),
            from: from.into(),
            stage: stage.into(),
        };
        let pending = ["db".to_string()];
        assert!(only_pending_outputs(
            &[no_stack("db", "")],
            &pending,
            "prod"
        ));
        assert!(only_pending_outputs(
            &[no_stack("db", " in stage `prod`")],
            &pending,
            "prod"
        ));
        assert!(!only_pending_outputs(
            &[no_stack("db", " in stage `dev`")],
            &pending,
            "prod"
        ));
        assert!(!only_pending_outputs(
            &[no_stack("queue", "")],
            &pending,
            "prod"
        ));
        assert!(!only_pending_outputs(&[no_stack("db", "")], &[], "prod"));
    }

    #[test]
    fn a_regions_partition_is_the_one_its_arns_name() {
        assert_eq!(partition("us-east-1"), "aws");
        assert_eq!(partition("eu-central-2"), "aws");
        assert_eq!(partition("cn-northwest-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }
}
