use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ferry_graph::DepGraph;
use serde::{Deserialize, Serialize};

use crate::reference::Template;

/// A loaded, validated repository: the project, its stages and its services.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Absolute path of the repository root (the folder holding `ferry.toml`).
    pub root: PathBuf,
    pub project: Project,
    /// Named stages, `[stages.<name>]`.
    pub stages: BTreeMap<String, StageConfig>,
    /// `[stages."*"]`: the configuration of any other stage name (preview stages).
    pub default_stage: Option<StageConfig>,
    /// Sorted by name.
    pub services: Vec<Service>,
    pub(crate) graph: DepGraph,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    /// Stack name pattern with `{project}`, `{service}` and `{stage}`.
    pub stack_name: String,
    /// Globs of service folders, repository relative.
    pub services: Vec<String>,
    /// Repository-relative globs; a change to a matching file affects every service.
    pub global_inputs: Vec<String>,
    /// `[ci]`: which stage a CI build deploys (`deploy --from-ci`), by what triggered it.
    #[serde(default)]
    pub ci: ferry_ci::StageRules,
    /// `[notifications]`: where a stage's changes of state are announced.
    #[serde(default)]
    pub notifications: Notifications,
}

/// `[notifications]` of `ferry.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notifications {
    /// Where to POST a Slack-compatible message: each an https URL, or the name of an SSM
    /// parameter holding one (a webhook URL is a secret).
    pub webhooks: Vec<Webhook>,
    /// An SNS topic ARN to publish to.
    pub sns_topic: Option<String>,
    /// Only these stages (`"*"`: every preview stage); `None`: every stage.
    pub stages: Option<Vec<String>>,
}

impl Notifications {
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.sns_topic.is_none()
    }

    /// Whether `stage` (its name; `preview` for a stage of `[stages."*"]`) is announced.
    pub fn covers(&self, stage: &str, preview: bool) -> bool {
        !self.is_empty()
            && self
                .stages
                .as_ref()
                .is_none_or(|s| s.iter().any(|n| n == stage || (preview && n == "*")))
    }
}

/// One webhook of `[notifications]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Webhook {
    /// The URL itself (not a secret one).
    Url(String),
    /// `ssm:<name>`: the URL is read from this SSM parameter with the stage's credentials.
    Ssm(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentMethod {
    #[default]
    Changeset,
    Direct,
}

/// `[stages.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StageConfig {
    pub region: String,
    pub account: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub parameters_path: Option<String>,
    pub deployment_method: DeploymentMethod,
    pub protected: bool,
    pub artifact_bucket: Option<String>,
    /// Where deployment records and the stage lock live in SSM; default
    /// `/ferry/<project>/<stage id>/`.
    pub records_path: Option<String>,
    /// `promote-from`: the named stage whose passed packages this stage takes (`promote`); a
    /// plain `deploy` of a package that has not passed there is refused unless overridden.
    #[serde(default)]
    pub promote_from: Option<String>,
    /// `on-test-failure`: what `deploy --test` / `promote --test` do when acceptance tests
    /// fail in this stage.
    #[serde(default)]
    pub on_test_failure: OnTestFailure,
    /// `approval`: a deploy or promote of this stage must be reviewed (`--review`) and approved
    /// (`approve`) by a person.
    #[serde(default)]
    pub approval: bool,
    /// `variables`: values services read as `${var:NAME}`, also as the stage of an output
    /// (`${output:${var:NAME}:service.Key}`).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// What a deploy with `--test` does when a service's acceptance tests fail in a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTestFailure {
    /// Leave what deployed in place (its record says the tests failed).
    #[default]
    Keep,
    /// Deploy the failed services, and the dependents deployed in the same run, back to the
    /// stage's previous release whose tests passed.
    Rollback,
}

impl StageConfig {
    /// Whether a stage of this configuration and one of `other` share no parameter, stack or
    /// resource name: their regions differ, or their accounts are known to.
    pub fn apart_from(&self, other: &StageConfig) -> bool {
        self.region != other.region || self.in_another_account(other)
    }

    /// Whether a stage of this configuration and one of `other` are in accounts known to
    /// differ (each names its own, by `account` or its role-arn's): such stages share no
    /// parameter, role or bucket name.
    pub fn in_another_account(&self, other: &StageConfig) -> bool {
        matches!(
            (self.named_account(), other.named_account()),
            (Some(a), Some(b)) if a != b
        )
    }

    /// The account the stage names: its `account`, else the one of its `role-arn`. `None`
    /// when it names neither (the caller's credentials decide).
    pub fn named_account(&self) -> Option<&str> {
        self.account.as_deref().or_else(|| {
            let [.., account, _] = crate::arn_fields(self.role_arn.as_deref()?)?;
            (!account.is_empty()).then_some(account)
        })
    }

    /// An SSM parameter name: relative names are under `parameters-path` (or `/`), absolute ones
    /// stay as they are.
    pub fn parameter_name(&self, name: &str) -> String {
        if name.starts_with('/') {
            return name.to_string();
        }
        match &self.parameters_path {
            Some(p) => format!("{}/{name}", p.trim_end_matches('/')),
            None => format!("/{name}"),
        }
    }
}

/// What a service is written in, and so how Ferry makes the CloudFormation template it deploys.
/// The transform a template declares to be an AWS SAM template.
pub const SAM_TRANSFORM: &str = "AWS::Serverless-2016-10-31";

/// Whether `template` declares the SAM transform (alone or in a list).
pub fn is_sam(template: &serde_json::Value) -> bool {
    match template.get("Transform") {
        Some(serde_json::Value::String(s)) => s == SAM_TRANSFORM,
        Some(serde_json::Value::Array(items)) => {
            items.iter().any(|t| t.as_str() == Some(SAM_TRANSFORM))
        }
        _ => false,
    }
}

/// Whether a template fragment (an output's definition) reads parameter `name`: `Ref`, or
/// `${name}` in `Fn::Sub` (unless the `Fn::Sub` defines a variable of that name itself),
/// anywhere inside it.
pub fn reads_parameter(v: &serde_json::Value, name: &str) -> bool {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            m.get("Ref").and_then(Value::as_str) == Some(name)
                || m.get("Fn::Sub").is_some_and(|sub| {
                    let (text, local) = match sub {
                        Value::Array(a) => (
                            a.first().and_then(Value::as_str),
                            a.get(1)
                                .and_then(Value::as_object)
                                .is_some_and(|vars| vars.contains_key(name)),
                        ),
                        other => (other.as_str(), false),
                    };
                    !local && text.is_some_and(|t| t.contains(&format!("${{{name}}}")))
                })
                || m.values().any(|x| reads_parameter(x, name))
        }
        Value::Array(a) => a.iter().any(|x| reads_parameter(x, name)),
        _ => false,
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// A hand-written CloudFormation template; local code paths are declared in
    /// `[package.artifacts]`.
    #[default]
    Cloudformation,
    /// An AWS SAM template (`Transform: AWS::Serverless-2016-10-31`): every local path its
    /// resources name (`CodeUri`, also in `Globals`, `ContentUri`, `DefinitionUri`, an
    /// application's `Location`) is packaged.
    Sam,
    /// A Serverless Framework service (`serverless.yml`): compiled by the framework's own CLI
    /// for each stage, then deployed by Ferry.
    Serverless,
}

impl ServiceKind {
    /// Every kind, in the order `--help` and messages list them.
    pub const ALL: &[ServiceKind] = &[
        ServiceKind::Cloudformation,
        ServiceKind::Sam,
        ServiceKind::Serverless,
    ];

    /// The name `service.toml` and every output use.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Cloudformation => "cloudformation",
            ServiceKind::Sam => "sam",
            ServiceKind::Serverless => "serverless",
        }
    }

    pub fn from_name(name: &str) -> Option<ServiceKind> {
        ServiceKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One service: a folder with a `service.toml` and a CloudFormation or SAM template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    /// Repository-relative folder, `/`-separated, e.g. `services/api`.
    pub dir: String,
    /// `[service] kind`.
    pub kind: ServiceKind,
    /// Template path relative to `dir`; for a Serverless Framework service, its configuration
    /// file (`serverless.yml`).
    pub template: String,
    /// The service's own stack name pattern (`{stage}` for the stage id; `{project}` and
    /// `{service}` as in the project's): its `stack-name`, and for a Serverless Framework
    /// service without one, the framework's `<service>-<stage>` or `provider.stackName`.
    /// `None`: the project's `stack-name`.
    pub stack_name: Option<String>,
    /// `[service] serverless-command`: the framework CLI (argv) of a Serverless Framework
    /// service, when it is not found as `node_modules/.bin/serverless` or on PATH.
    pub serverless_command: Option<Vec<String>>,
    /// Explicit `depends-on`, as written.
    pub depends_on: Vec<String>,
    /// Extra repository-relative input globs.
    pub inputs: Vec<String>,
    /// CloudFormation parameters, parsed.
    #[serde(serialize_with = "ser_params", deserialize_with = "de_params")]
    pub parameters: BTreeMap<String, Template>,
    /// `[package]`: how the service's artifacts are built and zipped.
    pub package: Package,
    /// `[acceptance]`: the command that tests a deployed stage of the service.
    pub acceptance: Option<Box<Acceptance>>,
    /// `[scripts]`: named commands (argv) run in the service folder by `run <script>`, e.g.
    /// `lint`, `test`.
    pub scripts: BTreeMap<String, Vec<String>>,
}

/// `[package]` of a service manifest. Paths are relative to the service folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Build command (argv), run in the service folder before zipping; empty: none.
    pub build: Vec<String>,
    /// `timeout`: seconds the build may take before it is stopped and fails; `None`: the
    /// default ([`Package::build_timeout`]).
    pub timeout_secs: Option<u64>,
    /// Globs (relative to each artifact's folder) left out of every artifact.
    pub exclude: Vec<String>,
    /// Template resource (logical id) → the folder or file zipped for it.
    pub artifacts: BTreeMap<String, Artifact>,
    /// A static site uploaded after the stack deploys.
    pub site: Option<Box<Site>>,
    /// `built-template` (SAM only): the template `build` writes, packaged in place of the
    /// service's own (`.aws-sam/build/template.yaml`, where `sam build` writes it, its code
    /// paths pointing at the built functions).
    pub built_template: Option<String>,
}

/// Default `[package] timeout`, in seconds.
pub const DEFAULT_BUILD_TIMEOUT: u64 = 30 * 60;

/// The longest timeout any setting or `--timeout` takes, in seconds (7 days): far beyond any
/// stack operation, build or test, and far from the overflow of a deadline (`now` + a timeout
/// near `u64::MAX` seconds panics).
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 60 * 60;

impl Package {
    /// How long `build` may run.
    pub fn build_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs.unwrap_or(DEFAULT_BUILD_TIMEOUT))
    }

    /// Whether anything is packaged besides the template.
    pub fn is_empty(&self) -> bool {
        self.artifacts.is_empty() && self.site.is_none()
    }
}

/// `[package.artifacts]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Folder or file, relative to the service folder.
    pub path: String,
    /// Globs relative to `path`, in addition to `package.exclude`.
    pub exclude: Vec<String>,
}

/// `[package.site]`: a folder uploaded, after the stack deploys, to the bucket one of the stack's
/// outputs names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Site {
    /// Folder, relative to the service folder.
    pub path: String,
    /// The stack output holding the bucket name.
    pub bucket_output: String,
    /// Key prefix in the bucket ("" for the root).
    pub prefix: String,
    /// A JSON file written into the site with the stack outputs of the service's dependencies.
    pub config_file: Option<String>,
    pub exclude: Vec<String>,
}

/// `[acceptance]` of a service manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// Test command (argv), run in the service folder.
    pub command: Vec<String>,
    /// Seconds before the command is stopped and counted as failed.
    pub timeout_secs: u64,
    /// Extra environment variables for the command.
    pub env: BTreeMap<String, String>,
    /// The command that compiles the tests (argv, run in [`Acceptance::build_dir`]), if any: a
    /// deploy with `--test` starts it before anything deploys, and the test command waits for it.
    pub build: Option<Vec<String>>,
    /// Where `build` runs, relative to the repository root (`""` is the root), from the
    /// manifest's `build-dir` (relative to the service folder); `None`: the service folder.
    /// Services that name the same `build` and folder share one build in a run.
    pub build_dir: Option<String>,
}

impl Acceptance {
    /// The folder `build` runs in, relative to the repository root, for a service in
    /// `service_dir`.
    pub fn build_folder<'a>(&'a self, service_dir: &'a str) -> &'a str {
        self.build_dir.as_deref().unwrap_or(service_dir)
    }
}

fn de_params<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Template>, D::Error> {
    // Parsed as they are read: the memo reads every service's parameters on every command.
    struct Params;
    impl<'de> serde::de::Visitor<'de> for Params {
        type Value = BTreeMap<String, Template>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of parameter names to templates")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                let t = Template::parse(&v).map_err(serde::de::Error::custom)?;
                out.insert(k, t);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Params)
}

/// Default `[acceptance] timeout`, in seconds.
pub const DEFAULT_ACCEPTANCE_TIMEOUT: u64 = 600;

fn ser_params<S: serde::Serializer>(
    p: &BTreeMap<String, Template>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(p.iter().map(|(k, v)| (k, v.to_string())))
}

/// One service as `services --format json` shows it, a stable contract for scripts: a struct
/// keeps the documented field order whatever serde_json's features are.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSummary<'s> {
    pub name: &'s str,
    pub dir: &'s str,
    pub kind: ServiceKind,
    /// The template's repository-relative path.
    pub template: String,
    /// Declared and implied dependencies ([`Service::dependencies`]).
    pub depends_on: BTreeSet<String>,
    pub inputs: &'s [String],
    /// Each parameter as written, `${…}` references unresolved.
    pub parameters: BTreeMap<&'s str, String>,
}

impl Service {
    /// What `services --format json` shows of this service.
    pub fn summary(&self) -> ServiceSummary<'_> {
        ServiceSummary {
            name: &self.name,
            dir: &self.dir,
            kind: self.kind,
            // From the root, without `..` (`infra/db.yaml`, not `infra/db/../db.yaml`).
            template: crate::normalize_relative(&self.template_path())
                .unwrap_or_else(|| self.template_path()),
            depends_on: self.dependencies(),
            inputs: &self.inputs,
            parameters: self
                .parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_string()))
                .collect(),
        }
    }

    /// Explicit dependencies plus those implied by `${output:…}` references
    /// ([`Template::output_services`]), but for a read of the service's own stack in a stage it
    /// names (a VPC peering with itself elsewhere): no order can serve that, and where that stage
    /// deploys, it reads its own outputs as they were.
    pub fn dependencies(&self) -> BTreeSet<String> {
        use crate::Reference;
        let implied = self.parameters.values().flat_map(|t| {
            t.references().filter_map(|r| match r {
                Reference::Output {
                    stage: Some(_),
                    service,
                    ..
                } if *service == self.name => None,
                Reference::Output { service, .. } => Some(service.clone()),
                _ => None,
            })
        });
        self.depends_on.iter().cloned().chain(implied).collect()
    }

    /// The services whose stacks of `stage` itself this one uses there: its declared
    /// dependencies and those whose outputs it reads in that stage (`${output:db.Name}`, or a
    /// reference naming `stage`, directly or by one of its variables). What a site's config and
    /// the acceptance tests are given: a dependency read from another stage is not one of these
    /// (its stack in `stage` is not what the service uses).
    pub fn dependencies_in(&self, stage: &crate::Stage) -> BTreeSet<String> {
        use crate::{OutputStage, Reference};
        let same_stage = self.parameters.values().flat_map(|t| {
            t.references().filter_map(|r| match r {
                Reference::Output {
                    stage: of, service, ..
                } => {
                    let here = match of {
                        None => true,
                        Some(OutputStage::Named(s)) => *s == stage.name,
                        Some(OutputStage::Var(v)) => {
                            stage.config.variables.get(v) == Some(&stage.name)
                        }
                    };
                    (here && *service != self.name).then(|| service.clone())
                }
                _ => None,
            })
        });
        self.depends_on.iter().cloned().chain(same_stage).collect()
    }

    /// The SSM parameters this service reads by `${ssm:…}` when a stage of id `stage_id` and
    /// settings `config` deploys: each reference's name, and its full name as a deploy renders
    /// it ([`ssm_full_name`]).
    pub fn ssm_names_in(
        &self,
        project: &str,
        stage_id: &str,
        config: &StageConfig,
    ) -> Vec<(&Template, Option<String>)> {
        self.parameters
            .values()
            .flat_map(|t| t.references())
            .filter_map(|r| match r {
                crate::Reference::Ssm { name } => Some(name),
                _ => None,
            })
            .map(|name| {
                let full = ssm_full_name(name, project, &self.name, stage_id, config);
                (name, full)
            })
            .collect()
    }

    /// Repository-relative path of the template.
    pub fn template_path(&self) -> String {
        format!("{}/{}", self.dir, self.template)
    }

    /// The template's repository-relative path when it lies outside the service folder
    /// (`template = "../shared/t.yaml"`): the folder's content id does not cover it, so whatever
    /// keys on the folder (change owners, package input keys, the folder cache) must name it.
    pub fn template_outside(&self) -> Option<String> {
        // A path that never climbs stays inside the (normalized) folder: no need to build it.
        // Plans call this for every service.
        if !self.template.split('/').any(|seg| seg == "..") {
            return None;
        }
        let path = crate::normalize_relative(&self.template_path())?;
        (!path.starts_with(&format!("{}/", self.dir))).then_some(path)
    }

    /// Repository-relative path of the manifest.
    pub fn manifest_path(&self) -> String {
        format!("{}/service.toml", self.dir)
    }
}

impl Workspace {
    pub fn service(&self, name: &str) -> Option<&Service> {
        // Sorted by name, and names are unique in a loaded workspace.
        self.services
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.services[i])
    }

    /// The dependency graph of all services (validated when the workspace was loaded).
    pub fn graph(&self) -> &DepGraph {
        &self.graph
    }
}

/// The value of a reference that the run alone decides, for `service` in a stage of id
/// `stage_id` and settings `config`: `${stage}` (the id), `${region}`, `${project}`,
/// `${service}`, `${var:NAME}`. `None` for any other reference, or a variable the stage does
/// not define.
pub fn run_value(
    r: &crate::Reference,
    project: &str,
    service: &str,
    stage_id: &str,
    config: &StageConfig,
) -> Option<String> {
    use crate::Reference;
    Some(match r {
        Reference::Stage => stage_id.to_string(),
        Reference::Region => config.region.clone(),
        Reference::Project => project.to_string(),
        Reference::Service => service.to_string(),
        Reference::Var(v) => config.variables.get(v)?.clone(),
        _ => return None,
    })
}

/// The full name of the SSM parameter `${ssm:NAME}` reads in `service` when a stage of id
/// `stage_id` and settings `config` deploys, as a deploy renders it
/// ([`StageConfig::parameter_name`]: under the stage's `parameters-path` when relative). `None`
/// for a variable the stage does not define (refused when it deploys).
pub fn ssm_full_name(
    name: &Template,
    project: &str,
    service: &str,
    stage_id: &str,
    config: &StageConfig,
) -> Option<String> {
    let rendered = name
        .render(|r| run_value(r, project, service, stage_id, config).ok_or(()))
        .ok()?;
    Some(config.parameter_name(&rendered))
}
