//! The package a deploy deploys: which services it may touch, the package request of the
//! working tree, packaging it and uploading what the stage's bucket lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use ferry_changes::{Repo, ServiceInputs};
use ferry_ci::CiContext;
use ferry_graph::Cancel;
use ferry_manifest::{Reference, Service, ServiceKind, Stage, Workspace};
use ferry_package::{PackageManifest, PackageRequest, UploadReport};
use ferry_plan::Plan;
use ferry_records::Record;

/// The services a deploy of `plan` may touch: those it deploys, the services of the plan that
/// read values kept outside git ([`reads_outside_git`]: a new value may have changed their stack
/// since their record), services whose dependencies deployed since they last received their
/// outputs ([`not_received`]: a run that deployed the dependency never came to check them), and
/// the dependents of all these. All but the first are checked and redeploy
/// only when what they receive changed, so only those with a record in the stage (`records`)
/// are checked: a service never deployed there receives nothing yet, and creating it is the
/// plan's decision (`not deployed yet`), never a side effect of deploying what it depends on
/// (`--service api` must not create every other dependent of `api`'s dependencies, and a
/// promote must not create a service the gate never saw).
pub fn candidates(
    ws: &Workspace,
    plan: &Plan,
    records: &BTreeMap<String, Record>,
) -> BTreeSet<String> {
    let checked = plan
        .services
        .iter()
        .filter(|s| s.action == ferry_plan::Action::Skip)
        .filter(|s| {
            ws.service(&s.name)
                .is_some_and(|s| reads_outside_git(ws, s))
        })
        .map(|s| s.name.as_str());
    // Within what the plan considers (`--service` narrows it).
    let behind: Vec<String> = behind(ws, records)
        .into_iter()
        .filter(|s| plan.service(s).is_some())
        .collect();
    let mut c = ws.graph().with_dependents(
        plan.order
            .iter()
            .map(String::as_str)
            .chain(checked)
            .chain(behind.iter().map(String::as_str)),
    );
    c.retain(|s| ws.service(s).is_some() && (plan.order.contains(s) || records.contains_key(s)));
    c
}

/// Why a deploy checks `service`, one of its `candidates` it does not deploy whatever its record
/// says: it redeploys only when its template or parameters differ from that record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Dependencies among the candidates (deployed or checked before it); and whether it
    /// reads values kept outside git too ([`reads_outside_git`]).
    Dependent(Vec<String>, bool),
    /// Dependencies deployed since it last received their outputs, by a run that did not come
    /// to check it ([`not_received`]).
    NotReceived(Vec<String>),
    /// It reads values kept outside git ([`reads_outside_git`]).
    Outside,
    /// None of these (a batch node's own service, say).
    Record,
}

impl Check {
    /// Why `service` is checked, as one of `candidates`.
    pub fn of(
        ws: &Workspace,
        candidates: &BTreeSet<String>,
        records: &BTreeMap<String, Record>,
        service: &Service,
    ) -> Check {
        let deps: Vec<String> = ws
            .graph()
            .dependencies(&service.name)
            .into_iter()
            .filter(|d| candidates.contains(*d))
            .map(String::from)
            .collect();
        let behind = not_received(ws, records, &service.name);
        let outside = reads_outside_git(ws, service);
        if !deps.is_empty() {
            Check::Dependent(deps, outside)
        } else if !behind.is_empty() {
            Check::NotReceived(behind)
        } else if outside {
            Check::Outside
        } else {
            Check::Record
        }
    }

    /// The cause alone (`dependent of api`), as a plan shows it beside "checked".
    pub fn cause(&self) -> String {
        match self {
            Check::Dependent(deps, false) => format!("dependent of {}", deps.join(", ")),
            Check::Dependent(deps, true) => format!(
                "dependent of {}; {}",
                deps.join(", "),
                Check::Outside.cause()
            ),
            Check::NotReceived(behind) => format!(
                "{} deployed since it last received {} outputs (a run that did not come to check it)",
                behind.join(", "),
                if behind.len() == 1 { "its" } else { "their" }
            ),
            Check::Outside => "reads values kept outside git (SSM, S3)".into(),
            Check::Record => String::new(),
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Dependent(..) => f.write_str(&self.cause()),
            Check::Record => f.write_str("checked against its record"),
            _ => write!(f, "{}: checked against its record", self.cause()),
        }
    }
}

/// Marks each service `plan` skips that a deploy of it would still check against its record
/// ([`candidates`]) with why ([`ferry_plan::ServicePlan::checked`]): a plan then says which
/// of its skips may redeploy, and on what.
pub fn mark_checks(ws: &Workspace, plan: &mut Plan, records: &BTreeMap<String, Record>) {
    let candidates = candidates(ws, plan, records);
    for s in plan
        .services
        .iter_mut()
        .filter(|s| s.action == ferry_plan::Action::Skip && candidates.contains(&s.name))
    {
        if let Some(service) = ws.service(&s.name) {
            s.checked = match Check::of(ws, &candidates, records, service) {
                Check::Record => None,
                check => Some(check.cause()),
            };
        }
    }
}

/// The services of the workspace with a record in `records` that received an earlier deploy
/// of a dependency than the one its record is of ([`not_received`]): a run deploying, promoting
/// or approving anything checks them too.
pub fn behind(ws: &Workspace, records: &BTreeMap<String, Record>) -> BTreeSet<String> {
    records
        .keys()
        .filter(|s| ws.service(s).is_some() && !not_received(ws, records, s).is_empty())
        .cloned()
        .collect()
}

/// [`behind`], without the services a dependency of which failed its tests in the stage: a
/// promote, approval or rollback (which run no owed tests before their dependents) leaves them
/// until that dependency passes, rather than wire them to it.
pub fn behind_ready(ws: &Workspace, records: &BTreeMap<String, Record>) -> BTreeSet<String> {
    let failed = |d: &str| records.get(d).and_then(Record::tests_passed) == Some(false);
    behind(ws, records)
        .into_iter()
        .filter(|s| !ws.graph().dependencies(s).into_iter().any(failed))
        .collect()
}

/// The dependencies of `service` that deployed since its parameters were last resolved: those
/// whose record's [`revision`](Record::revision) differs from the one its own record says it
/// received. Empty for a service without a record (it has received nothing yet) and for a
/// record written before Ferry kept what it received (taken as having received what runs:
/// checking every such service at once on the first run after an upgrade would check the whole
/// stage).
pub fn not_received(
    ws: &Workspace,
    records: &BTreeMap<String, Record>,
    service: &str,
) -> Vec<String> {
    let Some(own) = records.get(service) else {
        return Vec::new();
    };
    ws.graph()
        .dependencies(service)
        .into_iter()
        .filter(|d| {
            records.get(*d).is_some_and(|r| {
                own.received
                    .as_ref()
                    .is_some_and(|got| got.get(*d) != Some(&r.revision()))
            })
        })
        .map(String::from)
        .collect()
}

/// Whether `service` reads a value kept outside git, whose new version changes its stack though
/// no file changed: `${ssm:…}` in its `[parameters]`, a `{{resolve:ssm:…}}` of its template, or
/// another stage's output
/// (`${output:prod:api.Url}`: that stage deploys on its own, never in this run, so nothing
/// else would bring its new value here); a template parameter of an SSM parameter
/// type (CloudFormation reads that parameter at every stack operation); a Serverless Framework
/// configuration reading `${ssm:…}` or `${s3:…}` when it compiles. Reads the
/// service's template or configuration from the working tree.
pub fn reads_outside_git(ws: &Workspace, service: &Service) -> bool {
    let in_parameters = service
        .parameters
        .values()
        .flat_map(|t| t.references())
        .any(|r| {
            matches!(
                r,
                Reference::Ssm { .. } | Reference::Output { stage: Some(_), .. }
            )
        });
    in_parameters
        || match service.kind {
            ServiceKind::Serverless => ferry_serverless::reads_aws_values(&ws.root, service),
            _ => std::fs::read_to_string(ws.root.join(service.template_path())).is_ok_and(|t| {
                // A dynamic reference CloudFormation resolves at each stack operation.
                !crate::parameters::dynamic_ssm_references(&t).is_empty()
                    // Most templates have none: only those that name the type are parsed.
                    || (t.contains(ferry_package::SSM_PARAMETER_TYPE)
                        && ferry_package::parse_template(&t)
                            .is_ok_and(|v| !ferry_package::ssm_typed_parameters(&v).is_empty()))
            }),
        }
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
    /// Exact keys of the services' inputs (git tree ids of a clean tree): a Serverless
    /// Framework service's compile for a stage is reused under it.
    pub input_keys: std::collections::BTreeMap<String, String>,
    /// Where a service's package came from, where it is not this package's own commit (a
    /// package put together from stored ones, for a promote or rollback).
    pub origins: std::collections::BTreeMap<String, Origin>,
}

/// The package a stored service package was made as: what its record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The package id.
    pub package: String,
    pub commit: String,
    pub dirty: bool,
    /// Its record's [`inputs_dirty`](Record::inputs_dirty), carried into the records the
    /// package is deployed again with.
    pub inputs_dirty: Option<bool>,
    /// Its record's [`compiled_with`](Record::compiled_with): what a Serverless Framework
    /// service's stored compile took.
    pub compiled_with: Option<String>,
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
    #[error(
        "nothing was packaged: the run was cancelled while another process was packaging into {}",
        .folder.display()
    )]
    Cancelled { folder: PathBuf },
}

/// How [`prepare`] packages.
pub struct PrepareOptions<'a> {
    pub request: ferry_package::PackageRequest,
    /// `target/ferry/package` of the repository.
    pub dir: &'a Path,
    /// Create the artifact bucket when missing (the local emulator), named
    /// `ferry-artifacts-<project>` unless the stage names one.
    pub create_bucket: bool,
    /// The run's cancellation: a build running when it is set is stopped, and no further
    /// service is packaged.
    pub cancel: &'a Cancel,
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
    // Waiting for another process's packaging is an await, not a blocked thread: the caller's
    // lock renewal and signal handling go on meanwhile.
    let mut waiting = false;
    let lock = loop {
        if let Some(lock) = ferry_package::FolderLock::try_take(options.dir)? {
            break lock;
        }
        if options.cancel.is_cancelled() {
            return Err(PrepareError::Cancelled {
                folder: options.dir.to_path_buf(),
            });
        }
        if !waiting {
            waiting = true;
            on(ferry_package::Event::Waiting {
                folder: options.dir.to_path_buf(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let cancel = options.cancel;
    let manifest = ferry_package::package_held(&lock, ws, &options.request, mask, on, &|| {
        cancel.is_cancelled()
    })?;
    drop(lock);
    let s3 = ferry_package::s3_client(config);
    let needing: Vec<&str> = options
        .request
        .services
        .iter()
        .filter(|s| {
            // A Serverless Framework service's archives go to the bucket when it deploys.
            let compiled_per_stage = ws
                .service(s)
                .is_some_and(|s| s.kind == ferry_manifest::ServiceKind::Serverless);
            compiled_per_stage
                || manifest.services.get(*s).is_some_and(|p| {
                    !p.artifacts.is_empty()
                        || p.template_size > ferry_package::MAX_INLINE_TEMPLATE as u64
                })
        })
        .map(String::as_str)
        .collect();
    let bucket = stage_bucket(ws, stage, options.create_bucket);
    let mut upload = UploadReport::default();
    if !needing.is_empty() && bucket.is_none() {
        return Err(PrepareError::NoBucket {
            stage: stage.name.clone(),
            services: needing.join(", "),
        });
    }
    // With a bucket, every service's package goes there (not only the archives it needs), so
    // that what this deploy records can be promoted and rolled back to without a rebuild.
    if let Some(b) = &bucket {
        if options.create_bucket {
            ensure_local_bucket(&s3, b).await?;
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
        input_keys: options.request.input_keys.clone(),
        origins: Default::default(),
    })
}

/// Creates the emulator's artifact bucket when it is missing, in the client's region (S3
/// refuses a bucket without a location constraint anywhere but us-east-1). The emulator's
/// buckets are one namespace, as S3's are: a bucket another stage made in another region is
/// taken as it is.
pub(crate) async fn ensure_local_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<(), PrepareError> {
    use aws_sdk_s3::error::ProvideErrorMetadata as _;
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    if s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    let region = s3.config().region().map(|r| r.as_ref().to_string());
    let constraint = region.filter(|r| r != "us-east-1").map(|r| {
        CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(r.as_str()))
            .build()
    });
    match s3
        .create_bucket()
        .bucket(bucket)
        .set_create_bucket_configuration(constraint)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
        Err(e) => Err(PrepareError::LocalBucket {
            bucket: bucket.to_string(),
            message: ferry_aws::explain("CreateBucket", &e).to_string(),
        }),
    }
}

/// The artifact bucket of `stage`: its `artifact-bucket`, else with `local` the emulator's
/// `ferry-artifacts-<project>` (cut to S3's 63 characters, with a hash, for a long project name).
pub fn stage_bucket(ws: &Workspace, stage: &Stage, local: bool) -> Option<String> {
    stage.config.artifact_bucket.clone().or_else(|| {
        local.then(|| ferry_manifest::fit_name(&format!("ferry-artifacts-{}", ws.project.name), 63))
    })
}

/// Why the working tree's package request could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("failed to read the state of the working tree of {}: {source}", .root.display())]
    WorkingTree {
        root: PathBuf,
        source: ferry_changes::ChangesError,
    },
    /// Git reports no change in a submodule whose folder is empty, so the package would be
    /// made without its files.
    #[error("{}", not_checked_out(.missing))]
    SubmodulesNotCheckedOut {
        /// Service → its inputs' submodules that are not checked out.
        missing: BTreeMap<String, Vec<String>>,
    },
    /// A sparse checkout leaves committed files of a service off the disk: git reports no
    /// change, so the package would be made without them, under the commit's id.
    #[error(
        "this sparse checkout leaves out files of {}, so their package would be made without them: {}; package from a full checkout (`git sparse-checkout disable`), or add their folders to it (`git sparse-checkout add …`)",
        .absent.keys().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
        ferry_manifest::first_few(&.absent.values().flatten().collect::<Vec<_>>(), 5)
    )]
    SparseCheckout {
        /// Service → its committed files that are not on the disk.
        absent: BTreeMap<String, Vec<String>>,
    },
}

fn not_checked_out(missing: &BTreeMap<String, Vec<String>>) -> String {
    let quoted = |names: &mut dyn Iterator<Item = &String>| -> Vec<String> {
        names.map(|n| format!("`{n}`")).collect()
    };
    let submodules = quoted(
        &mut missing
            .values()
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter(),
    );
    let services = quoted(&mut missing.keys());
    let (named, its, folder) = if submodules.len() == 1 {
        (
            format!("the git submodule {} is", submodules[0]),
            "its",
            "its folder is",
        )
    } else {
        (
            format!(
                "the git submodules {} are",
                ferry_manifest::first_few(&submodules, 5)
            ),
            "their",
            "their folders are",
        )
    };
    format!(
        "{named} not checked out here ({folder} empty or missing), so the package of {} would be made without {its} files: run `git submodule update --init --recursive` first (CodeBuild: `git-submodules-config: fetch-submodules: true` in the project's source; GitHub Actions: `submodules: recursive` for actions/checkout)",
        ferry_manifest::first_few(&services, 5)
    )
}

/// The package request for `services` of the working tree: the commit's id when the tree is
/// clean, a distinct one when it is dirty; input keys from git tree ids where they are exact.
/// Without a repository (e.g. a CodePipeline source zip) nothing tells whether files changed, so
/// the package is made afresh under an id of its own (the time to the millisecond and the
/// process: two runs in one second made one id, and the second deployed the first's files).
pub fn package_request(
    ws: &Workspace,
    services: Vec<String>,
    ci: &CiContext,
) -> Result<PackageRequest, RequestError> {
    let Ok(repo) = Repo::open(&ws.root) else {
        let commit = ci.commit.clone().unwrap_or_else(|| "unversioned".into());
        return Ok(PackageRequest {
            // Never another run's: a package made a moment ago may hold other files.
            id: format!(
                "{commit}-nogit-{}-{}",
                ferry_records::now_millis(),
                std::process::id()
            ),
            commit,
            dirty: false,
            services,
            input_keys: Default::default(),
            dirty_keys: Default::default(),
        });
    };
    let inputs: Vec<ServiceInputs> = ws.services.iter().map(service_inputs).collect();
    let snap = repo
        .snapshot(&inputs, &ws.project.global_inputs)
        .map_err(|source| RequestError::WorkingTree {
            root: ws.root.clone(),
            source,
        })?;
    let missing: BTreeMap<String, Vec<String>> = snap
        .submodules_not_checked_out
        .into_iter()
        .filter(|(s, _)| services.contains(s))
        .collect();
    if !missing.is_empty() {
        return Err(RequestError::SubmodulesNotCheckedOut { missing });
    }
    let absent: BTreeMap<String, Vec<String>> = snap
        .sparse_absent
        .into_iter()
        .filter(|(s, _)| services.contains(s))
        .collect();
    if !absent.is_empty() {
        return Err(RequestError::SparseCheckout { absent });
    }
    Ok(PackageRequest {
        id: snap.id,
        commit: snap.commit,
        dirty: snap.dirty,
        services,
        input_keys: snap.input_keys,
        dirty_keys: snap.dirty_keys,
    })
}

pub(crate) use ferry_package::service_inputs;

/// Template problems found before any AWS call: the templates' own, and outputs read that the
/// templates naming them do not declare.
#[derive(Debug, thiserror::Error)]
#[error("{} template problem(s); nothing was deployed:\n  {}\n(fix them, or deploy the other services with --service)", .0.len() + .1.len(), .0.iter().map(ToString::to_string).chain(.1.iter().map(ToString::to_string)).collect::<Vec<_>>().join("\n  "))]
pub struct TemplateProblems(
    pub Vec<ferry_package::PackageError>,
    pub Vec<ferry_package::MissingOutput>,
);

/// Checks the templates a deploy of `services` (all when empty) and their dependencies reads,
/// before any AWS call.
pub fn check_templates(ws: &Workspace, services: &[String]) -> Result<(), TemplateProblems> {
    let names: BTreeSet<String> = if services.is_empty() {
        ws.services.iter().map(|s| s.name.clone()).collect()
    } else {
        ws.graph()
            .with_dependencies(services.iter().map(String::as_str))
    };
    let problems = ferry_package::check_templates(ws, names.iter().filter_map(|n| ws.service(n)));
    let missing: Vec<ferry_package::MissingOutput> =
        ferry_package::missing_outputs(&ferry_package::Templates::new(ws))
            .into_iter()
            .filter(|m| names.contains(&m.reader))
            .collect();
    if problems.is_empty() && missing.is_empty() {
        Ok(())
    } else {
        Err(TemplateProblems(problems, missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn s3(region: &str) -> aws_sdk_s3::Client {
        let target = ferry_credentials::config::Target {
            local_endpoint: Some(ferry_test_support::moto().endpoint()),
        };
        ferry_package::s3_client(&ferry_credentials::base_config(region, &target).await)
    }

    // S3 refuses a bucket without a location constraint outside us-east-1, so a project whose
    // first stage deployed to the emulator was in another region failed before packaging.
    #[tokio::test]
    async fn the_local_bucket_is_made_in_any_region_and_found_from_another() {
        let bucket = "ferry-artifacts-local-bucket-regions";
        let west = s3("eu-west-1").await;
        ensure_local_bucket(&west, bucket).await.unwrap();
        let location = west
            .get_bucket_location()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(
            location.location_constraint().map(|c| c.as_str()),
            Some("eu-west-1")
        );
        // Again, and from a stage in us-east-1 and one in a third region: the same bucket.
        ensure_local_bucket(&west, bucket).await.unwrap();
        ensure_local_bucket(&s3("us-east-1").await, bucket)
            .await
            .unwrap();
        ensure_local_bucket(&s3("ap-southeast-1").await, bucket)
            .await
            .unwrap();
    }
}
