//! Deploys one stage.
//!
//! [`deploy`] takes a [`Plan`] and runs its services on the graph scheduler: each service starts
//! the moment its dependencies are done. For each one it resolves the parameters (outputs of this
//! run's deploys, or read once from the stacks; SSM values), then either deploys the stack or,
//! for a dependent whose own files did not change, skips it when its template and resolved
//! parameters equal its record — so a dependent redeploys only when what it receives really
//! changed. A record is written only after the stack reached a COMPLETE state; a failure skips
//! only the failed service's dependents, everything independent finishes.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use ferry_credentials::{Masker, ssm};
use ferry_graph::{Cancel, Outcome, ScheduleOptions};
use ferry_manifest::{Reference, Service, Stage, Workspace};
use ferry_outputs::{Lookups, OutputCache, Outputs, OutputsFile};
use ferry_package::{PackageManifest, ServicePackage, UploadReport};
use ferry_plan::{Action as PlanAction, Plan};
use ferry_records::{Record, RecordStore, parameters_hash, sha256_hex};
use ferry_stacks::{
    Action, Engine, Method, Ownership, Progress, StackEvent, StackSpec, TemplateSource,
};

mod outputs;
mod remove;
pub mod state;

pub use outputs::{StageOutputs, stage_outputs};
pub use remove::{
    RemoveContext, RemoveError, RemoveOptions, RemoveReport, check_removable, remove,
};
pub use state::{StageState, StateError};

/// Who `service`'s stack in `stage` belongs to: what its tags say, and what Ferry checks
/// before it updates, deletes or reads it.
pub fn ownership(ws: &Workspace, stage: &Stage, service: &str) -> Ownership {
    Ownership {
        project: ws.project.name.clone(),
        stage_id: stage.id.clone(),
        stage: stage.name.clone(),
        service: service.to_string(),
    }
}

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
}

/// The services a deploy of `plan` may touch: those it deploys, the services of the plan that
/// read SSM parameters (a value outside git may have changed since their record), and the
/// dependents of both. All but the first are checked and redeploy only when what they receive
/// changed.
pub fn candidates(ws: &Workspace, plan: &Plan) -> BTreeSet<String> {
    let reads_ssm = |name: &str| {
        ws.service(name).is_some_and(|s| {
            s.parameters
                .values()
                .flat_map(|t| t.references())
                .any(|r| matches!(r, Reference::Ssm { .. }))
        })
    };
    let checked = plan
        .services
        .iter()
        .filter(|s| s.action == ferry_plan::Action::Skip && reads_ssm(&s.name))
        .map(|s| s.name.as_str());
    let mut c = ws
        .graph()
        .with_dependents(plan.order.iter().map(String::as_str).chain(checked));
    c.retain(|s| ws.service(s).is_some());
    c
}

/// A package made (or reused) for this deploy and uploaded to the stage's artifact bucket.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub manifest: PackageManifest,
    /// The local package folder (`target/ferry/package`).
    pub dir: PathBuf,
    /// The stage's artifact bucket, when a service needs one.
    pub bucket: Option<String>,
    pub upload: UploadReport,
    pub s3: aws_sdk_s3::Client,
}

/// Why a package could not be made or uploaded.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Package(#[from] ferry_package::PackageError),
    #[error(transparent)]
    Upload(#[from] ferry_package::UploadError),
    #[error(
        "stage `{stage}` has no artifact bucket, and {services} need one (packaged code, or a template over 51,200 bytes); set `artifact-bucket` under [stages.{stage}] in ferry.toml"
    )]
    NoBucket { stage: String, services: String },
    #[error("failed to create the local artifact bucket `{bucket}`: {message}")]
    LocalBucket { bucket: String, message: String },
}

/// How [`prepare`] packages.
pub struct PrepareOptions<'a> {
    pub request: ferry_package::PackageRequest,
    /// `target/ferry/package` of the repository.
    pub dir: &'a Path,
    /// Create the artifact bucket when missing (the local emulator), named
    /// `ferry-artifacts-<project>` unless the stage names one.
    pub create_bucket: bool,
}

/// Packages the request's services (reusing what the package id, or an input key, already has)
/// and uploads what the stage's bucket lacks.
pub async fn prepare(
    ws: &Workspace,
    stage: &Stage,
    config: &SdkConfig,
    options: &PrepareOptions<'_>,
    mask: &(dyn Fn(&str) -> String + Sync),
    on: &dyn Fn(ferry_package::Event),
) -> Result<Prepared, PrepareError> {
    let manifest = ferry_package::package(ws, options.dir, &options.request, mask, on)?;
    let s3 = ferry_package::s3_client(config);
    let needing: Vec<&str> = options
        .request
        .services
        .iter()
        .filter(|s| {
            manifest.services.get(*s).is_some_and(|p| {
                !p.artifacts.is_empty() || p.template_size > ferry_package::MAX_INLINE_TEMPLATE
            })
        })
        .map(String::as_str)
        .collect();
    let mut bucket = stage.config.artifact_bucket.clone();
    if bucket.is_none() && options.create_bucket {
        bucket = Some(format!("ferry-artifacts-{}", ws.project.name));
    }
    let mut upload = UploadReport::default();
    if !needing.is_empty() {
        let Some(b) = &bucket else {
            return Err(PrepareError::NoBucket {
                stage: stage.name.clone(),
                services: needing.join(", "),
            });
        };
        if options.create_bucket && s3.head_bucket().bucket(b).send().await.is_err() {
            s3.create_bucket()
                .bucket(b)
                .send()
                .await
                .map_err(|e| PrepareError::LocalBucket {
                    bucket: b.clone(),
                    message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                })?;
        }
        upload = ferry_package::upload(&s3, b, options.dir, &manifest, &options.request.services)
            .await?;
    }
    Ok(Prepared {
        manifest,
        dir: options.dir.to_path_buf(),
        bucket,
        upload,
        s3,
    })
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
            ServiceResult::UpToDate { .. } => f.write_str("skipped (up to date)"),
            ServiceResult::Failed { .. } => f.write_str("FAILED"),
            ServiceResult::Skipped { failed_dependency } => {
                write!(f, "skipped ({failed_dependency} failed)")
            }
            ServiceResult::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// What happened to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceResult {
    Deployed {
        action: Action,
    },
    /// Nothing to do: `why`.
    UpToDate {
        why: String,
    },
    Failed {
        error: String,
        failures: Vec<StackEvent>,
    },
    Skipped {
        failed_dependency: String,
    },
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct ServiceReport {
    pub name: String,
    pub stack: String,
    pub result: ServiceResult,
    pub duration: Duration,
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
}

impl DeployReport {
    pub fn succeeded(&self) -> bool {
        self.services.iter().all(|s| {
            matches!(
                s.result,
                ServiceResult::Deployed { .. } | ServiceResult::UpToDate { .. }
            )
        })
    }
}

/// What a deploy reports while it runs.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        service: String,
        stack: String,
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn plan_reason(plan: &Plan, service: &str) -> String {
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

/// Deploys the plan's services (and checks their dependents). Never fails as a whole for one
/// service: the report says what happened to each.
pub async fn deploy(
    ctx: &DeployContext<'_>,
    plan: &Plan,
    options: &DeployOptions,
    on: &(dyn Fn(Event) + Send + Sync),
) -> DeployReport {
    let graph = ctx.ws.graph();
    let to_deploy: BTreeSet<String> = plan.order.iter().cloned().collect();
    // Dependents of what deploys are checked too: they redeploy only if what they receive changed.
    let candidates = candidates(ctx.ws, plan);
    let sub = graph.subgraph(&candidates);

    let cfn = aws_sdk_cloudformation::Client::new(ctx.config);
    let ssm_client = aws_sdk_ssm::Client::new(ctx.config);
    let engine = Engine::new(cfn, options.engine.clone());
    let cache = OutputCache::new(engine.clone());
    let method = options
        .method
        .unwrap_or(match ctx.stage.config.deployment_method {
            ferry_manifest::DeploymentMethod::Changeset => Method::ChangeSet,
            ferry_manifest::DeploymentMethod::Direct => Method::Direct,
        });
    let estimates = ctx
        .previous
        .iter()
        .map(|(k, r)| (k.clone(), r.duration_ms.max(1)))
        .collect();
    let schedule = ScheduleOptions {
        concurrency: options.concurrency,
        estimates,
    };
    let started: Mutex<BTreeMap<String, Instant>> = Mutex::new(BTreeMap::new());
    let tests: Mutex<Vec<ferry_acceptance::TestOutcome>> = Mutex::new(Vec::new());

    let report = ferry_graph::schedule::run(&sub, &schedule, ctx.cancel, |name| {
        let service = ctx
            .ws
            .service(&name)
            .expect("planned services exist")
            .clone();
        let stack = ctx.ws.stack_name(&name, ctx.stage);
        let why = if to_deploy.contains(&name) {
            plan_reason(plan, &name)
        } else {
            let deps: Vec<&str> = graph
                .dependencies(&name)
                .into_iter()
                .filter(|d| candidates.contains(*d))
                .collect();
            format!("dependent of {}", deps.join(", "))
        };
        let (engine, cache, ssm_client, started, tests) =
            (&engine, &cache, &ssm_client, &started, &tests);
        let tests = options.test.then_some(tests);
        let must_deploy = to_deploy.contains(&name);
        async move {
            started
                .lock()
                .expect("lock")
                .insert(name.clone(), Instant::now());
            on(Event::Started {
                service: name.clone(),
                stack: stack.clone(),
            });
            let t0 = Instant::now();
            let result = deploy_one(
                ctx,
                &service,
                &stack,
                must_deploy,
                method,
                engine,
                cache,
                ssm_client,
                tests,
                on,
            )
            .await;
            let duration = t0.elapsed();
            let failed = result.is_err();
            let r = result.unwrap_or_else(|e| ServiceResult::Failed {
                error: ctx.masker.mask(&e.message),
                failures: e.failures,
            });
            on(Event::Finished {
                service: name.clone(),
                result: r.clone(),
                duration,
            });
            // The scheduler skips the dependents of a job that returns Err.
            if failed {
                Err((r, duration, why))
            } else {
                Ok((r, duration, why))
            }
        }
    })
    .await;

    let mut services = Vec::new();
    for name in sub.topo_order() {
        let stack = ctx.ws.stack_name(&name, ctx.stage);
        let (result, duration, why) = match report.outcomes.get(&name) {
            Some(Outcome::Succeeded((r, d, w))) => (r.clone(), *d, w.clone()),
            Some(Outcome::Failed((r, d, w))) => (r.clone(), *d, w.clone()),
            Some(Outcome::Skipped { failed_dependency }) => (
                ServiceResult::Skipped {
                    failed_dependency: failed_dependency.clone(),
                },
                Duration::ZERO,
                plan_reason(plan, &name),
            ),
            Some(Outcome::Cancelled) | None => (
                ServiceResult::Cancelled,
                Duration::ZERO,
                plan_reason(plan, &name),
            ),
        };
        services.push(ServiceReport {
            name,
            stack,
            result,
            duration,
            why,
        });
    }
    // Services the plan skipped, for a complete summary.
    for s in plan
        .services
        .iter()
        .filter(|s| s.action == PlanAction::Skip && !candidates.contains(&s.name))
    {
        let why = s
            .reasons
            .iter()
            .map(ferry_plan::reason_text)
            .collect::<Vec<_>>()
            .join("; ");
        services.push(ServiceReport {
            name: s.name.clone(),
            stack: s.stack_name.clone(),
            result: ServiceResult::UpToDate { why: why.clone() },
            duration: Duration::ZERO,
            why,
        });
    }

    // Outputs known in this run (deployed or read), else those recorded by the last deploy.
    let mut outputs = OutputsFile {
        stage: ctx.stage.name.clone(),
        services: BTreeMap::new(),
    };
    for s in &ctx.ws.services {
        let known = match cache.known(&ctx.ws.stack_name(&s.name, ctx.stage)).await {
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
        tests: tests.into_inner().expect("tests lock"),
        outputs,
        output_reads: cache.calls(),
    }
}

/// A failure of one service, with its failing stack events.
struct Failure {
    message: String,
    failures: Vec<StackEvent>,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            message: e.to_string(),
            failures: Vec::new(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn deploy_one(
    ctx: &DeployContext<'_>,
    service: &Service,
    stack: &str,
    must_deploy: bool,
    method: Method,
    engine: &Engine,
    cache: &OutputCache,
    ssm_client: &aws_sdk_ssm::Client,
    tests: Option<&Mutex<Vec<ferry_acceptance::TestOutcome>>>,
    on: &(dyn Fn(Event) + Send + Sync),
) -> Result<ServiceResult, Failure> {
    let packaged = match ctx.package {
        Some(p) => Some(p.manifest.services.get(&service.name).ok_or_else(|| {
            format!(
                "service {} is not in package {}; package it (`cargo xtask package --service {}`)",
                service.name, p.manifest.id, service.name
            )
        })?),
        None => None,
    };
    let (template, fingerprint) = match (ctx.package, packaged) {
        (Some(p), Some(sp)) => {
            let source = match p.upload.template_urls.get(&service.name) {
                Some(url) => TemplateSource::Url(url.clone()),
                None => {
                    let path = p.dir.join(&sp.template);
                    TemplateSource::Body(std::fs::read_to_string(&path).map_err(|e| {
                        format!("cannot read packaged template {}: {e}", path.display())
                    })?)
                }
            };
            (source, sp.fingerprint())
        }
        _ => {
            let path = ctx.ws.root.join(service.template_path());
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read template {}: {e}", path.display()))?;
            let hash = sha256_hex(text.as_bytes());
            (TemplateSource::Body(text), hash)
        }
    };
    let Resolved {
        mut parameters,
        mut hashed,
    } = resolve_parameters(ctx, service, cache, ssm_client).await?;
    if packaged.is_some_and(|sp| !sp.artifacts.is_empty()) {
        let bucket = ctx
            .package
            .and_then(|p| p.bucket.clone())
            .unwrap_or_default();
        hashed.insert(ferry_package::BUCKET_PARAMETER.to_string(), bucket.clone());
        parameters.insert(ferry_package::BUCKET_PARAMETER.to_string(), bucket);
    }
    // The site's config file holds the dependencies' outputs: a change there is a change too.
    let site_config = match packaged.and_then(|sp| sp.site.as_ref()) {
        Some(site) if site.config_file.is_some() => Some(site_config(ctx, service, cache).await?),
        _ => None,
    };
    let template_hash = match &site_config {
        Some(c) => sha256_hex(format!("{fingerprint}:{}", sha256_hex(c)).as_bytes()),
        None => fingerprint,
    };
    let params_hash = parameters_hash(&hashed);

    if !must_deploy {
        match ctx.previous.get(&service.name) {
            Some(r) if r.template_hash == template_hash && r.parameters_hash == params_hash => {
                // Its outputs may still be needed by dependents: they come from the stack on demand.
                return Ok(ServiceResult::UpToDate {
                    why: "template, artifacts and parameters unchanged since its record".into(),
                });
            }
            _ => {}
        }
    }

    warn_secrets_without_no_echo(ctx, service, packaged, &template, &hashed, on);
    let spec = StackSpec {
        name: stack.to_string(),
        template,
        parameters,
        tags: BTreeMap::new(),
        method,
        termination_protection: ctx.stage.config.protected,
        owner: Some(ownership(ctx.ws, ctx.stage, &service.name)),
        adopt: ctx.adopt,
    };
    let name = service.name.clone();
    let t0 = Instant::now();
    let deployed = engine
        .deploy(&spec, &|p| {
            on(Event::Stack {
                service: name.clone(),
                progress: p,
            })
        })
        .await
        .map_err(|e| {
            let failures = match &e {
                ferry_stacks::StackError::Failed { failures, .. }
                | ferry_stacks::StackError::DeleteFailed { failures, .. } => failures.clone(),
                _ => Vec::new(),
            };
            Failure {
                message: e.to_string(),
                failures,
            }
        })?;
    cache.set(stack, deployed.outputs.clone()).await;
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
        service: service.name.clone(),
        stage: Some(ctx.stage.name.clone()),
        stack: stack.to_string(),
        commit: ctx.source.commit.clone(),
        dirty: ctx.source.dirty,
        template_hash,
        parameters_hash: params_hash,
        artifacts: packaged
            .map(ServicePackage::artifact_keys)
            .unwrap_or_default(),
        deployed_at: now_secs(),
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
    };
    ctx.records.write(&record).await?;
    match tests {
        Some(tests) => run_tests(ctx, service, cache, tests, &record, deployed.action, on).await,
        None => Ok(ServiceResult::Deployed {
            action: deployed.action,
        }),
    }
}

/// Runs a just-deployed service's acceptance tests and marks its `record` (just written). A
/// failure fails the service, so its dependents are skipped.
async fn run_tests(
    ctx: &DeployContext<'_>,
    service: &Service,
    cache: &OutputCache,
    tests: &Mutex<Vec<ferry_acceptance::TestOutcome>>,
    record: &Record,
    action: Action,
    on: &(dyn Fn(Event) + Send + Sync),
) -> Result<ServiceResult, Failure> {
    if service.acceptance.is_none() {
        return Ok(ServiceResult::Deployed { action });
    }
    on(Event::Stack {
        service: service.name.clone(),
        progress: Progress::Note("running its acceptance tests".into()),
    });
    let harness = harness(ctx.ws, ctx.stage, ctx.config, ctx.masker).await?;
    let mut outputs = BTreeMap::new();
    for s in std::iter::once(service.name.clone()).chain(service.dependencies()) {
        let stack = ctx.ws.stack_name(&s, ctx.stage);
        let owner = ownership(ctx.ws, ctx.stage, &s);
        if let Some(o) = cache.get(&stack, Some(&owner)).await? {
            outputs.insert(s, o);
        }
    }
    let outcome = harness.run_one(service, &outputs).await;
    tests.lock().expect("tests lock").push(outcome.clone());
    on(Event::Stack {
        service: service.name.clone(),
        progress: Progress::Note(format!(
            "acceptance tests {} in {:.1}s",
            outcome.status,
            outcome.duration.as_secs_f64()
        )),
    });
    if let Some(marked) = ferry_acceptance::mark(record, &outcome, now_secs()) {
        ctx.records.write(&marked).await?;
    }
    if outcome.status.is_failure() {
        return Err(Failure {
            message: format!(
                "deployed ({}), but its acceptance tests {}",
                ServiceResult::Deployed { action },
                outcome.status
            ),
            failures: Vec::new(),
        });
    }
    Ok(ServiceResult::Deployed { action })
}

/// The acceptance harness of a stage: its commands get the stage's credentials.
async fn harness<'a>(
    ws: &'a Workspace,
    stage: &'a Stage,
    config: &SdkConfig,
    masker: &'a Masker,
) -> Result<ferry_acceptance::Harness<'a>, ferry_credentials::CredentialsError> {
    Ok(ferry_acceptance::Harness {
        ws,
        stage,
        env: ferry_credentials::env::child_env(config, &stage.name, masker).await?,
        masker,
        work_dir: acceptance_dir(ws, stage),
    })
}

/// Why acceptance tests of deployed services could not run or be recorded (a failing test is
/// not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    #[error(transparent)]
    Credentials(#[from] ferry_credentials::CredentialsError),
    #[error("failed to read the outputs of stack {stack}: {source}")]
    Outputs {
        stack: String,
        source: ferry_stacks::StackError,
    },
    #[error("failed to mark the record of `{service}`: {source}")]
    Mark {
        service: String,
        source: ferry_records::RecordError,
    },
}

/// Runs the acceptance tests of deployed services outside a deploy (`test-acceptance`, and the
/// services `deploy --test` still owes tests), on the scheduler with at most `concurrency` at
/// once. Outputs are those the records hold, read from the stack (once each) where a record left
/// them out (records stay under SSM's 4 KB). Marks each tested record passed or failed.
#[allow(clippy::too_many_arguments)]
pub async fn test_deployed(
    ws: &Workspace,
    stage: &Stage,
    config: &SdkConfig,
    records: &RecordStore,
    previous: &BTreeMap<String, Record>,
    selected: &BTreeSet<String>,
    concurrency: Option<NonZeroUsize>,
    masker: &Masker,
    on: &(dyn Fn(ferry_acceptance::Event) + Send + Sync),
) -> Result<ferry_acceptance::Report, TestError> {
    let harness = harness(ws, stage, config, masker).await?;
    let mut outputs: BTreeMap<String, Outputs> = previous
        .iter()
        .filter(|(_, r)| !r.outputs.is_empty())
        .map(|(k, r)| (k.clone(), r.outputs.clone()))
        .collect();
    let cache = OutputCache::new(Engine::new(
        aws_sdk_cloudformation::Client::new(config),
        ferry_stacks::DeployOptions::default(),
    ));
    let needed: BTreeSet<String> = selected
        .iter()
        .filter_map(|s| ws.service(s))
        .flat_map(|s| std::iter::once(s.name.clone()).chain(s.dependencies()))
        .collect();
    for s in needed {
        if outputs.contains_key(&s) {
            continue;
        }
        let stack = ws.stack_name(&s, stage);
        let found = cache
            .get(&stack, Some(&ownership(ws, stage, &s)))
            .await
            .map_err(|source| TestError::Outputs { stack, source })?;
        if let Some(o) = found {
            outputs.insert(s, o);
        }
    }
    let report = ferry_acceptance::run(
        &harness,
        selected,
        &outputs,
        concurrency,
        &Cancel::new(),
        on,
    )
    .await;
    let now = now_secs();
    for o in &report.outcomes {
        if let Some(r) = previous.get(&o.service)
            && let Some(marked) = ferry_acceptance::mark(r, o, now)
        {
            records
                .write(&marked)
                .await
                .map_err(|source| TestError::Mark {
                    service: o.service.clone(),
                    source,
                })?;
        }
    }
    Ok(report)
}

/// Where acceptance runs write their outputs files: `target/ferry/acceptance/<stage id>`.
pub fn acceptance_dir(ws: &Workspace, stage: &Stage) -> PathBuf {
    ws.root
        .join("target")
        .join("ferry")
        .join("acceptance")
        .join(&stage.id)
}

/// The content of a site's config file: the stack outputs of the service's dependencies, by
/// service, as JSON.
async fn site_config(
    ctx: &DeployContext<'_>,
    service: &Service,
    cache: &OutputCache,
) -> Result<Vec<u8>, Failure> {
    let mut all: BTreeMap<String, Outputs> = BTreeMap::new();
    for dep in service.dependencies() {
        let stack = ctx.ws.stack_name(&dep, ctx.stage);
        let owner = ownership(ctx.ws, ctx.stage, &dep);
        all.insert(
            dep,
            cache.get(&stack, Some(&owner)).await?.unwrap_or_default(),
        );
    }
    let mut bytes = serde_json::to_vec_pretty(&all).expect("outputs serialize");
    bytes.push(b'\n');
    Ok(bytes)
}

/// Uploads a service's static site to the bucket its stack output names.
async fn publish_site(
    ctx: &DeployContext<'_>,
    p: &Prepared,
    service: &Service,
    site: &ferry_package::PackagedSite,
    outputs: &Outputs,
    config: Option<&[u8]>,
    on: &(dyn Fn(Event) + Send + Sync),
) -> Result<(), Failure> {
    let bucket = outputs.get(&site.bucket_output).ok_or_else(|| {
        format!(
            "[package.site] bucket-output `{}` is not an output of stack {} (outputs: {}); add it to {}",
            site.bucket_output,
            ctx.ws.stack_name(&service.name, ctx.stage),
            outputs.keys().cloned().collect::<Vec<_>>().join(", "),
            service.template_path()
        )
    })?;
    let n = ferry_package::upload_site(&p.s3, &p.dir, site, bucket, config).await?;
    on(Event::Stack {
        service: service.name.clone(),
        progress: Progress::Note(format!(
            "site: {n} files published to s3://{bucket}/{}",
            site.prefix
        )),
    });
    Ok(())
}

/// Resolves a service's parameters: dependency outputs (this run's, or read once from stacks),
/// outputs of other stages, SSM values (registered with the masker when secure).
async fn resolve_parameters(
    ctx: &DeployContext<'_>,
    service: &Service,
    cache: &OutputCache,
    ssm_client: &aws_sdk_ssm::Client,
) -> Result<Resolved, Failure> {
    let mut outputs: BTreeMap<(Option<String>, String), Option<Outputs>> = BTreeMap::new();
    for r in service.parameters.values().flat_map(|t| t.references()) {
        if let Reference::Output {
            stage,
            service: from,
            ..
        } = r
        {
            let key = (stage.clone(), from.clone());
            if outputs.contains_key(&key) {
                continue;
            }
            let of_stage = match stage {
                None => ctx.stage.clone(),
                Some(other) => ctx.ws.stage(other)?,
            };
            let stack = ctx.ws.stack_name(from, &of_stage);
            let owner = ownership(ctx.ws, &of_stage, from);
            outputs.insert(key, cache.get(&stack, Some(&owner)).await?);
        }
    }
    let lookups_base = Lookups {
        project: &ctx.ws.project.name,
        stage: ctx.stage,
        outputs: &|_, _| None,
        ssm: &|_| None,
    };
    let mut ssm_values: BTreeMap<String, ssm::Parameter> = BTreeMap::new();
    for name in ferry_outputs::ssm_names(service, &lookups_base) {
        match ssm::get(ssm_client, &ctx.stage.name, &name, ctx.masker).await {
            Ok(p) => {
                ssm_values.insert(name, p);
            }
            Err(ferry_credentials::CredentialsError::ParameterNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let out_lookup = |stage: Option<&str>, from: &str| {
        outputs
            .get(&(stage.map(String::from), from.to_string()))
            .cloned()
            .flatten()
    };
    let ssm_lookup = |name: &str| ssm_values.get(name).map(|p| p.value.clone());
    let failure = |errors: Vec<ferry_outputs::ResolveError>| Failure {
        message: errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        failures: Vec::new(),
    };
    let resolve_with = |ssm: &dyn Fn(&str) -> Option<String>| {
        let lookups = Lookups {
            project: &ctx.ws.project.name,
            stage: ctx.stage,
            outputs: &out_lookup,
            ssm,
        };
        ferry_outputs::resolve(service, &lookups).map_err(failure)
    };
    Ok(Resolved {
        parameters: resolve_with(&ssm_lookup)?,
        hashed: resolve_with(&|name: &str| ssm_values.get(name).map(secure_stand_in))?,
    })
}

/// A service's parameters as CloudFormation gets them, and the view of them that is hashed into
/// its record.
struct Resolved {
    parameters: BTreeMap<String, String>,
    hashed: BTreeMap<String, String>,
}

/// The SecureString names a hashed parameter value stands in for (see [`secure_stand_in`]).
fn secure_names(hashed: &str) -> Vec<&str> {
    hashed
        .split("ssm-secure:")
        .skip(1)
        .filter_map(|rest| rest.rsplit_once('@').map(|(name, _)| name))
        .collect()
}

/// Warns about each parameter that receives a SecureString while the template does not declare
/// it `NoEcho: true`: CloudFormation would show the value in the console and to DescribeStacks.
fn warn_secrets_without_no_echo(
    ctx: &DeployContext<'_>,
    service: &Service,
    packaged: Option<&ServicePackage>,
    template: &TemplateSource,
    hashed: &BTreeMap<String, String>,
    on: &(dyn Fn(Event) + Send + Sync),
) {
    let secure: Vec<(&String, Vec<&str>)> = hashed
        .iter()
        .map(|(k, v)| (k, secure_names(v)))
        .filter(|(_, names)| !names.is_empty())
        .collect();
    if secure.is_empty() {
        return;
    }
    let text = match (template, ctx.package, packaged) {
        (TemplateSource::Body(b), ..) => Some(b.clone()),
        (TemplateSource::Url(_), Some(p), Some(sp)) => {
            std::fs::read_to_string(p.dir.join(&sp.template)).ok()
        }
        _ => None,
    };
    let Some(parsed) = text.and_then(|t| ferry_package::parse_template(&t).ok()) else {
        return;
    };
    for (key, names) in secure {
        if !ferry_package::is_no_echo(&parsed, key) {
            on(Event::Stack {
                service: service.name.clone(),
                progress: Progress::Note(format!(
                    "warning: parameter {key} receives SecureString {}, but {} does not declare it `NoEcho: true`; CloudFormation shows its value in the console and to DescribeStacks: add NoEcho: true to it",
                    names.join(", "),
                    service.template_path()
                )),
            });
        }
    }
}

/// Registers with `masker` every SecureString value the stage's services reference (one
/// GetParameter per name), so that wherever one reappears (a stack output that echoes it, a
/// test's output) it is masked. Returns how many names were read.
pub async fn register_secrets(
    ws: &Workspace,
    stage: &Stage,
    config: &SdkConfig,
    masker: &Masker,
) -> Result<usize, ferry_credentials::CredentialsError> {
    let lookups = Lookups {
        project: &ws.project.name,
        stage,
        outputs: &|_, _| None,
        ssm: &|_| None,
    };
    let names: BTreeSet<String> = ws
        .services
        .iter()
        .flat_map(|s| ferry_outputs::ssm_names(s, &lookups))
        .collect();
    if names.is_empty() {
        return Ok(0);
    }
    let client = aws_sdk_ssm::Client::new(config);
    for name in &names {
        match ssm::get(&client, &stage.name, name, masker).await {
            Ok(_) | Err(ferry_credentials::CredentialsError::ParameterNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(names.len())
}

/// What stands in for an SSM value in the hashed view: a SecureString by its name and version,
/// never its value (records are readable by whoever may read the stage's records, and an
/// unsalted hash of a short secret can be guessed offline). A new version of the secret still
/// changes the hash, so rotating it redeploys.
fn secure_stand_in(p: &ssm::Parameter) -> String {
    if p.secure {
        format!("ssm-secure:{}@{}", p.name, p.version)
    } else {
        p.value.clone()
    }
}

/// Why a deploy does not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightError {
    #[error(
        "stage `{stage}` is protected and the working tree has uncommitted changes ({paths}); commit or stash them, so that what is deployed is a commit"
    )]
    DirtyProtected { stage: String, paths: String },
    #[error(
        "stage `{stage}` is protected and {root} is not a git repository, so nothing tells which commit would be deployed; deploy it from a git checkout"
    )]
    NotARepository { stage: String, root: String },
}

/// The working tree a deploy starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    /// A git checkout, with the paths that differ from its HEAD (Ferry's own output left out).
    Git { dirty: Vec<String> },
    /// Not a git repository (e.g. a CodePipeline source zip).
    NotGit,
}

/// What to do before deploying: `Ok(Some(note))` means stop here successfully (pull requests).
pub fn preflight(
    plan: &Plan,
    ws: &Workspace,
    stage: &Stage,
    tree: &Tree,
) -> Result<Option<String>, PreflightError> {
    if let Some(pr) = &plan.pull_request {
        return Ok(Some(format!(
            "deployment is skipped for pull requests ({}); nothing was deployed",
            pr.source.as_deref().unwrap_or("pull request build")
        )));
    }
    preflight_tree(ws, stage, tree).map(|()| None)
}

/// A protected stage deploys only a commit: from a git checkout without uncommitted changes
/// (Ferry's own output aside), named when there are some.
pub fn preflight_tree(ws: &Workspace, stage: &Stage, tree: &Tree) -> Result<(), PreflightError> {
    if !stage.config.protected {
        return Ok(());
    }
    match tree {
        Tree::NotGit => Err(PreflightError::NotARepository {
            stage: stage.name.clone(),
            root: ws.root.display().to_string(),
        }),
        Tree::Git { dirty } if !dirty.is_empty() => {
            const SHOWN: usize = 10;
            let mut paths = dirty
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if dirty.len() > SHOWN {
                paths.push_str(&format!(" and {} more", dirty.len() - SHOWN));
            }
            Err(PreflightError::DirtyProtected {
                stage: stage.name.clone(),
                paths,
            })
        }
        Tree::Git { .. } => Ok(()),
    }
}

/// The summary table: service, action, result, duration, reason; then the failing resources.
pub fn summary(report: &DeployReport) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut details = Vec::new();
    for s in &report.services {
        let result = s.result.to_string();
        let why = match &s.result {
            ServiceResult::UpToDate { why } => why.clone(),
            _ => s.why.clone(),
        };
        let duration = if s.duration.is_zero() {
            "-".to_string()
        } else {
            format!("{:.1}s", s.duration.as_secs_f64())
        };
        rows.push([s.name.clone(), result, duration, why]);
        if let ServiceResult::Failed { error, failures } = &s.result {
            details.push(format!("{}: {error}", s.name));
            for f in failures {
                details.push(format!(
                    "  {} ({}): {} {}",
                    f.logical_id,
                    f.resource_type,
                    f.status,
                    f.reason.as_deref().unwrap_or("")
                ));
            }
        }
    }
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(["SERVICE", "RESULT", "TIME"][i].len())
        })
        .collect();
    let mut out = format!(
        "{:<w0$}  {:<w1$}  {:<w2$}  REASON\n",
        "SERVICE",
        "RESULT",
        "TIME",
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2]
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ));
    }
    for d in details {
        out.push_str(&d);
        out.push('\n');
    }
    out
}
