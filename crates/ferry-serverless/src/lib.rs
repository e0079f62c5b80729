#![doc = include_str!("../README.md")]
//! Serverless Framework services (`kind = "serverless"`).
//!
//! The framework resolves stage-specific values while it packages, so a Serverless service is
//! compiled for each stage, by the framework's own CLI ([`find_cli`]):
//! `package --stage <stage id> --region <region> --package <dir> --param Key=value…`, in the
//! service folder, with the stage's credentials in the child's environment only (for `${ssm:…}`,
//! `${cf:…}`), its output captured and masked. [`compile`] then takes what it wrote:
//!
//! - every archive a function or layer names is unpacked and zipped again the way Ferry zips
//!   (sorted names, fixed dates, normalised modes), so the same files give the same bytes on
//!   every run and in every stage, and stored content-addressed: `<project>/<service>/<sha256>.zip`
//!   in the stage's artifact bucket (not the framework's deployment bucket with timestamped keys);
//! - the compiled template (`cloudformation-template-update-stack.json`) points each function at
//!   its key in the bucket given by the `FerryArtifactBucket` parameter; a function version's
//!   `CodeSha256` and logical id follow the new archive, so they too are the same on every run;
//!   the framework's deployment bucket resource stays (a stack first deployed by
//!   `serverless deploy` holds it, and an update must not delete it).
//!
//! A compile is reused when the service's inputs (git tree ids), the stage, the region, the
//! parameters and the CLI are the same as an earlier one's.

mod cli;
mod rewrite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_manifest::Service;
use ferry_package::PackagedArtifact;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use cli::find_cli;
pub use rewrite::rewrite;

/// Bumped when what a compile keeps changes, so that older compiles are never reused (2: the
/// stack name takes the stage Ferry passed; 3: credential files are left out of archives). The
/// rules of which files an archive holds count apart, as [`ferry_package::FILE_RULES`].
const FORMAT: u32 = 3;
/// Lines of the framework's output shown when it fails.
const TAIL: usize = 20;

/// What to compile.
pub struct Compile<'a> {
    /// The repository root.
    pub root: &'a Path,
    pub project: &'a str,
    pub service: &'a Service,
    /// The stage id (`--stage`).
    pub stage_id: &'a str,
    pub region: &'a str,
    /// The service's `[parameters]`, resolved (`--param Key=value`).
    pub parameters: &'a BTreeMap<String, String>,
    /// The stage's credentials and region for the child (`ferry_credentials::env::child_env`).
    pub env: &'a [(String, String)],
    /// The package store (`target/ferry/package`).
    pub out: &'a Path,
    /// An exact key of the service's inputs (git tree ids of a clean tree), for reuse.
    pub input_key: Option<&'a str>,
    pub mask: &'a (dyn Fn(&str) -> String + Sync),
    /// How long the framework's `package` may take before it is stopped (the service's
    /// `[package] build` has its own `[package] timeout`).
    pub timeout: Duration,
    /// Builds started ahead of their compiles ([`Prebuilds`]): the service's is awaited instead
    /// of run again.
    pub prebuilt: Option<&'a Prebuilds>,
    /// Hears each step that runs a command ("running its build `npm install`", "running
    /// `serverless package`"), for progress lines.
    pub on_step: &'a (dyn Fn(&str) + Sync),
}

/// How a shared build ended: `Err` holds its error for every compile that waits for it.
type BuildResult = Result<(), Arc<ServerlessError>>;

/// The `[package] build` commands (e.g. `npm install`) of Serverless services, started in the
/// background at the beginning of a run, each in its service's folder as [`compile`] would run
/// it. The build needs no stage value, so it runs while the stacks the service depends on
/// deploy; the compile, which needs their outputs, then waits only for what is left of it.
/// Dropping it leaves running builds to the runtime, which stops them when it shuts down; a run
/// that ends normally calls [`Prebuilds::finish`] so that none is cut off half done.
#[derive(Debug, Default)]
pub struct Prebuilds {
    by_service: ferry_acceptance::Awaited<BuildResult>,
}

impl Prebuilds {
    /// Starts the builds of those of `services` that are Serverless services with a `[package]
    /// build`, one task each, on the current tokio runtime. `masker` hides secrets in what a
    /// failed build printed. Each build is stopped after its service's `[package] timeout`;
    /// `concurrency` builds run at once (`None`: all).
    pub fn start<'s>(
        ws: &ferry_manifest::Workspace,
        services: impl IntoIterator<Item = &'s str>,
        masker: &ferry_credentials::Masker,
        concurrency: Option<std::num::NonZeroUsize>,
    ) -> Prebuilds {
        let slots = concurrency.map(|n| Arc::new(tokio::sync::Semaphore::new(n.get())));
        let mut by_service = ferry_acceptance::Awaited::default();
        for name in services {
            let Some(service) = ws.service(name) else {
                continue;
            };
            if service.kind != ferry_manifest::ServiceKind::Serverless
                || service.package.build.is_empty()
            {
                continue;
            }
            let job = by_service.expect(name);
            let (root, project, service) =
                (ws.root.clone(), ws.project.name.clone(), service.clone());
            let masker = masker.clone();
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = match &slots {
                    Some(s) => Some(s.clone().acquire_owned().await),
                    None => None,
                };
                let mask = move |s: &str| masker.mask(s);
                let built = cli::build(&root, &project, &service, &mask).await;
                job.publish(built.map_err(Arc::new));
            });
        }
        Prebuilds { by_service }
    }

    /// The services whose builds were started.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.by_service.names()
    }

    /// Whether `service`'s build was started ahead.
    pub fn has(&self, service: &str) -> bool {
        self.by_service.has(service)
    }

    /// How `service`'s build ended, once it has; `None` when none was started for it or its
    /// task was lost (the caller then runs the build itself).
    pub async fn wait(&self, service: &str) -> Option<BuildResult> {
        self.by_service.wait(service).await
    }

    /// Waits for every build still running.
    pub async fn finish(&self) {
        self.by_service.finish().await
    }
}

/// A compiled stage of a service, kept under the package store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiled {
    /// The template to deploy, relative to the package store (`templates/<sha256>.json`).
    pub template: String,
    pub template_sha256: String,
    pub template_size: u64,
    /// The archives, content-addressed.
    pub artifacts: Vec<PackagedArtifact>,
    /// The stack name the framework gave (`provider.stackName`, else `<service>-<stage>`).
    pub stack_name: Option<String>,
    /// Taken from an earlier compile with the same inputs.
    #[serde(skip)]
    pub reused: bool,
}

impl Compiled {
    /// The compile as a package entry: what the artifact bucket keeps of it, so that the stage
    /// can be rolled back to it without compiling again.
    pub fn package(&self) -> ferry_package::ServicePackage {
        ferry_package::ServicePackage {
            template: self.template.clone(),
            template_sha256: self.template_sha256.clone(),
            template_size: self.template_size,
            artifacts: self.artifacts.clone(),
            site: None,
            input_key: None,
            ignored_files: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerlessError {
    #[error("{}", no_cli(.service, .dir, *.wants, .declared.as_deref()))]
    NoCli {
        service: String,
        dir: String,
        /// The CLI its `frameworkVersion` takes.
        wants: ferry_manifest::FrameworkCli,
        /// The `package.json` (repository-relative) in its folder or above that names a CLI
        /// whose dependencies were not installed.
        declared: Option<String>,
    },
    #[error(
        "{service}: `{command}` could not start: {message}; is it installed and on PATH? (the Serverless Framework CLI needs Node.js 20.19 or newer)"
    )]
    NotStarted {
        service: String,
        command: String,
        message: String,
    },
    #[error(
        "{service}: parameter `{key}` holds a secret (an SSM SecureString), and the framework writes a parameter's value into the template it compiles, which Ferry keeps and uploads (as it does a ${{ssm:…}} of it in serverless.yml); have the function read the secret from SSM when it runs instead"
    )]
    SecretParameter { service: String, key: String },
    #[error(
        "{service}: the value of parameter `{key}` (not shown) holds `${{`, which the framework would resolve as a variable of its own: a stack output or SSM value holding `${{env:AWS_SECRET_ACCESS_KEY}}` would write the stage's credentials into the template it compiles; nothing was compiled. Find where the value comes from (its reference in the service.toml) and remove the `${{` there"
    )]
    VariableInParameter { service: String, key: String },
    #[error(
        "{service}: build command `{command}` failed ({status}); nothing was compiled or deployed. Its last lines:\n{tail}"
    )]
    BuildFailed {
        service: String,
        command: String,
        status: String,
        tail: String,
    },
    #[error(
        "{service}: `{command}` failed ({status}); nothing was deployed. Its last lines:\n{tail}"
    )]
    Failed {
        service: String,
        command: String,
        status: String,
        tail: String,
    },
    #[error(
        "{service}: `{command}` did not finish within {secs} s and was stopped; nothing was deployed. Its last lines:\n{tail}"
    )]
    TimedOut {
        service: String,
        command: String,
        secs: u64,
        tail: String,
    },
    #[error(
        "{service}: `{command}` exited successfully but wrote no {file}: a hook or plugin may have failed without failing the CLI (Serverless Framework 3 exits 0 after a failed hook script), or it is no Serverless Framework CLI (v3 or a compatible fork). Its last lines:\n{tail}"
    )]
    NoTemplate {
        service: String,
        command: String,
        file: String,
        /// The CLI's last lines, masked.
        tail: String,
    },
    #[error("{service}: the compiled template is not usable: {message}")]
    Template { service: String, message: String },
    #[error(
        "{service}: resource `{resource}` names the archive {archive}, which the framework did not write into its package folder"
    )]
    MissingArchive {
        service: String,
        resource: String,
        archive: String,
    },
    #[error(
        "{service}: archive {archive}, which the framework's CLI wrote, cannot be read: {message}; nothing was deployed from it (a CLI of version 1 writes corrupt archives under current Node.js: upgrade it, e.g. `npm install --save-dev osls@3`)"
    )]
    BadArchive {
        service: String,
        archive: String,
        message: String,
    },
    #[error("{service}: the framework's archive {archive} cannot be re-zipped as it is: {message}")]
    Rezip {
        service: String,
        archive: String,
        message: String,
    },
    #[error(transparent)]
    Package(Box<ferry_package::PackageError>),
    /// The build started ahead of the compile ([`Prebuilds`]) failed: its own error.
    #[error(transparent)]
    Prebuilt(Arc<ServerlessError>),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<ferry_package::PackageError> for ServerlessError {
    fn from(e: ferry_package::PackageError) -> Self {
        ServerlessError::Package(Box::new(e))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServerlessError + '_ {
    move |source| ServerlessError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The framework's scratch folder, `.serverless/` of the service folder, where it works before
/// it copies to `--package`: a compile that fails (a full disk) left it there, an untracked
/// folder that made every later package of the checkout dirty. One that was not there before
/// the compile is Ferry's to remove after it; a note beside the reusable compiles (the
/// compile's process id) says so meanwhile, so that one a killed compile left goes with the
/// next compile, unless it changed after the killed compile could have ended (the user's own
/// since) or that process still runs (another Ferry's compile, at work).
struct Scratch {
    folder: PathBuf,
    note: PathBuf,
    ours: bool,
}

impl Scratch {
    fn claim(c: &Compile<'_>) -> Scratch {
        let folder = c.root.join(&c.service.dir).join(".serverless");
        let note = c
            .out
            .join("serverless")
            .join(&c.service.name)
            .join("scratch-folder-to-remove");
        let left_by_a_killed_compile = || {
            let written = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let pid: Option<u32> = std::fs::read_to_string(&note).ok()?.trim().parse().ok();
            let (noted, changed) = (written(&note)?, written(&folder)?);
            let gone = pid.is_some_and(|p| !ferry_package::process_alive(p));
            Some(gone && changed <= noted + c.timeout)
        };
        let ours = folder.symlink_metadata().is_err() || left_by_a_killed_compile() == Some(true);
        if ours && let Some(dir) = note.parent() {
            let _ = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&note, std::process::id().to_string()));
        }
        Scratch { folder, note, ours }
    }

    /// After the framework ran: the folder and the note go, when ours, and the note's folders
    /// when nothing else is kept there (a first compile that failed keeps nothing).
    fn release(self) {
        if !self.ours {
            return;
        }
        if self.folder.is_dir() {
            let _ = std::fs::remove_dir_all(&self.folder);
        }
        let _ = std::fs::remove_file(&self.note);
        for folder in self.note.ancestors().skip(1).take(2) {
            let _ = std::fs::remove_dir(folder);
        }
    }
}

/// The template the framework writes for an update (what `serverless deploy` deploys).
pub const TEMPLATE_FILE: &str = "cloudformation-template-update-stack.json";

/// Compiles `c.service` for its stage, or reuses an earlier compile of the same inputs.
pub async fn compile(c: &Compile<'_>) -> Result<Compiled, ServerlessError> {
    let service = &c.service.name;
    for (key, value) in c.parameters {
        if (c.mask)(value) != *value {
            return Err(ServerlessError::SecretParameter {
                service: service.clone(),
                key: key.clone(),
            });
        }
        if value.contains("${") {
            return Err(ServerlessError::VariableInParameter {
                service: service.clone(),
                key: key.clone(),
            });
        }
    }
    // A configuration that reads values from outside the repository (SSM, other stacks, the
    // environment, S3) compiles to something else when they change, which no input key sees:
    // it is compiled every time.
    let input_key = c.input_key.filter(|_| !reads_outside(c.root, c.service));
    let reuse_path = input_key.map(|k| {
        c.out
            .join("serverless")
            .join(service)
            .join(format!("{}.json", reuse_key(c, k)))
    });
    if let Some(compiled) = reuse_path.as_deref().and_then(|p| read_reused(c.out, p)) {
        return Ok(compiled);
    }
    // The build may install the CLI (`npm install`): it runs first, or was started ahead.
    if !c.service.package.build.is_empty() {
        let shown = (c.mask)(&c.service.package.build.join(" "));
        let ahead = match c.prebuilt {
            Some(p) if p.has(service) => {
                (c.on_step)(&format!("waiting for its build `{shown}` (started ahead)"));
                p.wait(service).await
            }
            _ => None,
        };
        match ahead {
            Some(result) => result.map_err(ServerlessError::Prebuilt)?,
            None => {
                (c.on_step)(&format!("running its build `{shown}`"));
                cli::build(c.root, c.project, c.service, c.mask).await?;
            }
        }
    }
    let argv = find_cli(c.root, c.service)?;
    (c.on_step)(&format!("running `{} package`", (c.mask)(&argv.join(" "))));

    let work = tempfile::Builder::new()
        .prefix(".serverless-")
        .tempdir_in(ensure_dir(c.out)?)
        .map_err(io_err(c.out))?;
    let package_dir = work.path().join("package");
    let scratch = Scratch::claim(c);
    let ran = cli::run(c, &argv, &package_dir).await;
    scratch.release();
    let tail = ran?;

    let template_path = package_dir.join(TEMPLATE_FILE);
    let text =
        std::fs::read_to_string(&template_path).map_err(|_| ServerlessError::NoTemplate {
            service: service.clone(),
            command: (c.mask)(&argv.join(" ")),
            file: TEMPLATE_FILE.into(),
            tail: if tail.trim().is_empty() {
                "  (it printed nothing)".to_string()
            } else {
                tail
            },
        })?;
    let mut template: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ServerlessError::Template {
            service: service.clone(),
            message: format!("{TEMPLATE_FILE} is not JSON: {e}"),
        })?;
    // Unzipping and zipping again takes seconds for a bundle of megabytes: on a thread of its
    // own, so that the run's other work and its progress lines go on meanwhile (on the
    // runtime's thread, it held back the line saying what the run waits for).
    if text.contains("S3Key") {
        (c.on_step)("zipping its archives again, reproducibly");
    }
    let (template, artifacts, said) = {
        let (package_dir, out) = (package_dir.clone(), c.out.to_path_buf());
        let (prefix, service) = (format!("{}/{service}", c.project), service.clone());
        tokio::task::spawn_blocking(move || {
            let said = std::sync::Mutex::new(Vec::new());
            let on = |line: &str| said.lock().expect("not poisoned").push(line.to_string());
            rewrite(&mut template, &package_dir, &out, &prefix, &service, &on).map(|artifacts| {
                (
                    template,
                    artifacts,
                    said.into_inner().expect("not poisoned"),
                )
            })
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?
    };
    for line in &said {
        (c.on_step)(line);
    }
    let mut bytes = serde_json::to_vec_pretty(&template).expect("JSON values serialize");
    bytes.push(b'\n');
    let (rel, sha) = ferry_package::store_template(c.out, &bytes, "json")?;
    let compiled = Compiled {
        template: rel,
        template_sha256: sha,
        template_size: bytes.len() as u64,
        artifacts,
        stack_name: cli::stack_name_of(&package_dir, c.stage_id),
        reused: false,
    };
    if let Some(p) = reuse_path {
        let mut json = serde_json::to_vec_pretty(&compiled).expect("serializable");
        json.push(b'\n');
        ferry_manifest::write_atomic(&p, json).map_err(io_err(&p))?;
    }
    Ok(compiled)
}

fn ensure_dir(dir: &Path) -> Result<&Path, ServerlessError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    Ok(dir)
}

/// The variable sources of the framework that resolve outside the repository at compile time.
const OUTSIDE_SOURCES: &[&str] = &[
    "ssm:",
    "ssm(",
    "cf:",
    "cf(",
    "env:",
    "aws:",
    "s3:",
    "sls:instanceId",
];

/// The sources whose values are kept in AWS, where they change without any commit: a service
/// whose configuration reads one is checked by every deploy of its stage. Not `${cf:…}`: the
/// stack of a service of the repository is a dependency, whose deploy re-checks its dependents
/// already, and compiling every reader of a stack output on every deploy would cost each of them
/// a compile.
const AWS_SOURCES: &[&str] = &["ssm:", "ssm(", "s3:"];

/// Whether a configuration's text reads a variable of one of `sources`, as the source of a
/// variable or of any of its fallbacks (`${env:KEY, ssm:/name}` reads SSM when `KEY` is unset).
fn uses(text: &str, sources: &[&str]) -> bool {
    // A source ending in a name (`param:Key`) is that name, not a longer one (`param:KeyId`).
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    ferry_manifest::serverless_variable_sources(text)
        .iter()
        .any(|v| {
            sources.iter().any(|s| {
                v.strip_prefix(s)
                    .is_some_and(|rest| !s.ends_with(name_char) || !rest.starts_with(name_char))
            })
        })
}

/// Whether `service`'s configuration (in the repository at `root`) may read a value from
/// outside the repository when it compiles (`${ssm:…}`, `${cf:…}`, `${env:…}`, …, itself or in a
/// file it includes): such a service may compile to another template though no file changed, so
/// its compile is never reused.
pub fn reads_outside(root: &Path, service: &Service) -> bool {
    let dir = root.join(&service.dir);
    config_reads_outside(&dir, &dir.join(&service.template))
}

/// Whether `service`'s configuration reads a value kept in AWS (`${ssm:…}`, `${s3:…}`; see
/// [`AWS_SOURCES`]), itself or in a file it includes: a new value there changes its stack though no
/// file changed, so every deploy of its stage checks it (compiles it and compares the template
/// with its record). A configuration written as a program, or one that includes a file Ferry
/// cannot name or read, is not known to: it is checked when its files change.
pub fn reads_aws_values(root: &Path, service: &Service) -> bool {
    let dir = root.join(&service.dir);
    config_reads(&dir, &dir.join(&service.template), AWS_SOURCES).unwrap_or(false)
}

/// Whether `service`'s configuration reads the parameter `name` (`${param:name}`), itself or in
/// a file it includes: a parameter Ferry gives only the services that read it (the stage's
/// permissions boundary), as giving it to others would change their parameters and redeploy
/// them. Where that cannot be known (a configuration written as a program), whether its own
/// text names it.
pub fn reads_param(root: &Path, service: &Service, name: &str) -> bool {
    let dir = root.join(&service.dir);
    let config = dir.join(&service.template);
    config_reads(&dir, &config, &[&format!("param:{name}")])
        .unwrap_or_else(|| std::fs::read_to_string(&config).is_ok_and(|text| text.contains(name)))
}

/// The SSM parameters `service`'s configuration reads (`${ssm:…}`) when the framework compiles
/// it for stage id `stage_id` in `region`, itself or in a file it includes (a path built from the
/// stage, `${file(./env.${sls:stage}.yml)}`, too), resolved as the framework resolves them; `Err`
/// with what is written where Ferry cannot resolve it (another variable, a parameter of another
/// region, an include whose path it cannot build). A configuration written as a program is read
/// for the names its text holds. For the masker: a SecureString read this way is written,
/// resolved, into the template the framework compiles.
pub fn ssm_reads(
    root: &Path,
    service: &Service,
    stage_id: &str,
    region: &str,
) -> Vec<Result<ferry_manifest::SsmRead, String>> {
    let dir = root.join(&service.dir);
    let config_path = dir.join(&service.template);
    let Ok(config) = std::fs::read_to_string(&config_path) else {
        return Vec::new();
    };
    let concrete = |pattern: String| {
        pattern
            .replace("{stage}", stage_id)
            .replace("{region}", region)
    };
    let parsed = ferry_manifest::ServerlessConfig::parse(&config);
    let texts = config_texts(&dir, &config_path, &|path| {
        parsed.pattern(path).map(concrete)
    });
    let mut out: Vec<Result<ferry_manifest::SsmRead, String>> = texts
        .unresolved
        .iter()
        .map(|p| Err(format!("${{file({p})}}")))
        .collect();
    for text in texts.texts.iter().chain(&texts.programs) {
        for read in parsed.ssm_names(text) {
            let read = read.map(|r| ferry_manifest::SsmRead {
                name: concrete(r.name),
                ..r
            });
            if !out.contains(&read) {
                out.push(read);
            }
        }
    }
    out
}

/// The environment variables `service`'s configuration reads (`${env:NAME}`, a fallback's
/// too; `process.env.NAME` in a program, `serverless.ts` or a JavaScript resolver), itself or
/// in a file it includes, whose names say they hold a secret
/// ([`ferry_env::names_a_secret`]: `CLIENT_SECRET`, `DB_PASSWORD`), each once, in order: the
/// framework writes each value, in clear, into the template it compiles, which Ferry keeps and
/// uploads as it keeps every template; and no name in Ferry's configuration says to mask it.
pub fn secret_env_reads(root: &Path, service: &Service) -> Vec<String> {
    let read = written_config_texts(root, service);
    let mut out: Vec<String> = Vec::new();
    for text in read.texts.iter().chain(&read.programs) {
        // A name built with variables (`DB_PASSWORD_${sls:stage}`) is named as written: its
        // value is masked with every variable of Ferry's environment named as a secret.
        for source in ferry_manifest::serverless_variable_sources(text) {
            if let Some(name) = ferry_manifest::secret_env_source(source)
                && !out.contains(&name)
            {
                out.push(name);
            }
        }
    }
    // A program (`serverless.ts`, a resolver in JavaScript) reads them as `process.env.X`.
    for text in &read.programs {
        for name in ferry_env::program_env_reads(text) {
            if ferry_env::names_a_secret(&name) && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The stacks `service`'s configuration reads outputs of (`${cf:<stack>.<Output>}`,
/// `${cf(<region>):…}`, fallbacks too), as written, itself or in the files it includes.
pub fn cf_stacks(root: &Path, service: &Service) -> Vec<String> {
    let read = written_config_texts(root, service);
    let mut out: Vec<String> = Vec::new();
    for text in read.texts.iter().chain(&read.programs) {
        for source in ferry_manifest::serverless_variable_sources(text) {
            let source = source.trim();
            let reference = match source.strip_prefix("cf(") {
                Some(rest) => rest.split_once("):").map(|(_, r)| r),
                None => source.strip_prefix("cf:"),
            };
            if let Some((stack, _output)) = reference.and_then(|r| r.trim().rsplit_once('.'))
                && !out.iter().any(|s| s == stack)
            {
                out.push(stack.to_string());
            }
        }
    }
    out
}

/// Serverless Framework services of `ws` reading (`${cf:…}`) the stack of another service that
/// is none of their dependencies, in any named stage: (reader, that service (several when the
/// stack as written may be any of theirs), the stack as written). Ferry takes such a stack for a dependency's (a new output of it re-checks the
/// reader when it deploys), but without `depends-on` nothing orders them: the reader may
/// deploy beside it (its compile fails on an output not there yet), and is never re-checked.
pub fn unlinked_cf_readers(ws: &ferry_manifest::Workspace) -> Vec<(String, Vec<String>, String)> {
    let stages: Vec<ferry_manifest::Stage> = ws
        .stages
        .keys()
        .filter_map(|name| ws.stage(name).ok())
        .collect();
    let graph = ws.graph();
    let mut out = Vec::new();
    for reader in ws
        .services
        .iter()
        .filter(|s| s.kind == ferry_manifest::ServiceKind::Serverless)
    {
        let deps = graph.with_dependencies([reader.name.as_str()]);
        for stack in cf_stacks(&ws.root, reader) {
            // Every service whose stack it may be (a pattern of variables may match several):
            // named only when none is a dependency.
            let read: Vec<String> = ws
                .services
                .iter()
                .filter(|o| {
                    o.name != reader.name
                        && stages
                            .iter()
                            .any(|st| reads_stack(&stack, &st.id, &ws.service_stack_name(o, st)))
                })
                .map(|o| o.name.clone())
                .collect();
            if !read.is_empty() && !read.iter().any(|o| deps.contains(o)) {
                out.push((reader.name.clone(), read, stack));
            }
        }
    }
    out
}

/// The Serverless Framework services of `ws` whose configuration reads the outputs of `stack`
/// of the stage whose id is `stage_id` (`${cf:…}`, the stage's variables as that stage, any
/// other as a wildcard): before `stack` is deleted, each must read another.
pub fn stack_readers(ws: &ferry_manifest::Workspace, stack: &str, stage_id: &str) -> Vec<String> {
    ws.services
        .iter()
        .filter(|s| s.kind == ferry_manifest::ServiceKind::Serverless)
        .filter(|s| {
            cf_stacks(&ws.root, s)
                .iter()
                .any(|read| reads_stack(read, stage_id, stack))
        })
        .map(|s| s.name.clone())
        .collect()
}

/// Whether a `${cf:…}` stack name as written (`shop-api-${sls:stage}`) names `stack` in the
/// stage whose id is `stage_id`: the stage's variables are that stage (as a wildcard,
/// `shop-api-*` would take `shop-api-admin-dev` for it too), any other variable a wildcard.
fn reads_stack(read: &str, stage_id: &str, stack: &str) -> bool {
    let staged = with_stage(read, stage_id);
    ferry_manifest::serverless_name_pattern(&staged, 2)
        .is_some_and(|pattern| ferry_ci::glob_match(&pattern, stack))
}

/// `text` with each Serverless variable that gives the stage (`${sls:stage}`, `${opt:stage}`,
/// `${opt:stage, 'dev'}`, `${self:provider.stage}`) written as `stage`.
fn with_stage(text: &str, stage: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        // The variable whole, nested ones in it too.
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, c) in rest[at..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let var = &rest[at..end];
        let inner = var[2..].trim_start();
        if ["sls:stage", "opt:stage", "self:provider.stage"]
            .iter()
            .any(|s| inner.starts_with(s))
        {
            out.push_str(stage);
        } else {
            out.push_str(var);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// [`secret_env_reads`] of every Serverless Framework service of `ws`: (service, variable).
pub fn workspace_secret_env_reads(ws: &ferry_manifest::Workspace) -> Vec<(String, String)> {
    ws.services
        .iter()
        .filter(|s| s.kind == ferry_manifest::ServiceKind::Serverless)
        .flat_map(|s| {
            secret_env_reads(&ws.root, s)
                .into_iter()
                .map(|var| (s.name.clone(), var))
        })
        .collect()
}

/// What to say of `service` reading the variable `var`, a [`secret_env_reads`] of it.
pub fn env_secret_warning(service: &str, var: &str) -> String {
    format!(
        "{service} reads `{var}`, a secret by its name, from the environment (`${{env:…}}`, or `process.env` in a configuration written as a program), so the framework writes its value, in clear, into the template it compiles, which Ferry keeps (target/ferry/package) and uploads to the stage's artifact bucket as it keeps every template (a new value lands in a new one, and each is kept); keep the secret in SSM as a SecureString or in Secrets Manager, and have the function read it when it runs"
    )
}

/// [`config_texts`] of `service`'s configuration, with the files it includes by a path
/// written out (one built from variables is not followed).
fn written_config_texts(root: &Path, service: &Service) -> ConfigTexts {
    let dir = root.join(&service.dir);
    let config = dir.join(&service.template);
    config_texts(&dir, &config, &|p| {
        (!p.contains("${")).then(|| p.to_string())
    })
}

/// The texts of a configuration and of the files it includes with `${file(…)}` (read relative
/// to the service's folder `dir`, as the framework does, each once), and what could not be read.
#[derive(Default)]
struct ConfigTexts {
    /// The configuration's and its included files' texts (YAML or JSON).
    texts: Vec<String>,
    /// Those written as programs (`serverless.ts`, a JavaScript resolver `${file(./x.js):fn}`).
    programs: Vec<String>,
    /// The include paths `resolve` could not build (a variable Ferry cannot know).
    unresolved: Vec<String>,
    /// A file that could not be read, or more than 200 of them.
    unreadable: bool,
}

impl ConfigTexts {
    /// Whether every file the configuration reads was read as data.
    fn complete(&self) -> bool {
        self.programs.is_empty() && self.unresolved.is_empty() && !self.unreadable
    }
}

/// The largest configuration file, or file it includes, that is read (1 MiB, as for
/// `ferry.toml`): more is no configuration.
const MAX_INCLUDED_FILE: u64 = 1024 * 1024;

/// [`ConfigTexts`] of the configuration at `config`, `resolve` building an include's path (a
/// path with variables; `None` when it cannot).
fn config_texts(
    dir: &Path,
    config: &Path,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> ConfigTexts {
    let mut out = ConfigTexts::default();
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![config.to_path_buf()];
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        if seen.len() > 200 {
            out.unreadable = true;
            break;
        }
        // A regular file of configuration's size only: a FIFO would block the read for good,
        // `/dev/zero` would fill the memory.
        let text = std::fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file() && m.len() <= MAX_INCLUDED_FILE)
            .and_then(|_| std::fs::read_to_string(&path).ok());
        let Some(text) = text else {
            out.unreadable = true;
            continue;
        };
        for included in included_files(&text) {
            match resolve(included) {
                Some(p) => todo.push(dir.join(p)),
                None => out.unresolved.push(included.to_string()),
            }
        }
        let program = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "js" | "cjs" | "mjs" | "ts" | "mts" | "cts"));
        if program {
            out.programs.push(text);
        } else {
            out.texts.push(text);
        }
    }
    out
}

/// [`config_reads`] of every source outside the repository; when that cannot be known, it may.
fn config_reads_outside(dir: &Path, config: &Path) -> bool {
    config_reads(dir, config, OUTSIDE_SOURCES).unwrap_or(true)
}

/// Whether the configuration at `config` (of the service in `dir`) uses one of `sources`, itself
/// or through the files it includes with `${file(…)}` (read here, relative to the service's
/// folder, as the framework does). `None` when that cannot be known: a configuration written as
/// a program (`serverless.ts`, `.js`), a JavaScript resolver (`${file(./x.js):fn}`), an included
/// path built from a variable, or a file that cannot be read may read anything.
fn config_reads(dir: &Path, config: &Path, sources: &[&str]) -> Option<bool> {
    let read = config_texts(dir, config, &|p| (!p.contains("${")).then(|| p.to_string()));
    if read.texts.iter().any(|t| uses(t, sources)) {
        Some(true)
    } else {
        read.complete().then_some(false)
    }
}

/// The paths of the `${file(…)}` references in a configuration's text.
fn included_files(text: &str) -> Vec<&str> {
    ferry_manifest::serverless_variable_sources(text)
        .into_iter()
        .filter_map(ferry_manifest::serverless_file_source)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Everything a compile depends on besides the files the input key covers (for a service
/// without a build, the files git ignores in its folders too).
fn reuse_key(c: &Compile<'_>, input_key: &str) -> String {
    let cli = c
        .service
        .serverless_command
        .as_ref()
        .map_or_else(|| "found".to_string(), |a| a.join("\u{1f}"));
    let mut h = Sha256::new();
    h.update(
        format!(
            "ferry-serverless-{FORMAT}-{}\0{}\0{}\0{}\0{}\0{input_key}\0{cli}\0{}\0",
            ferry_package::FILE_RULES,
            c.project,
            c.service.name,
            c.stage_id,
            c.region,
            c.service.package.build.join("\u{1f}")
        )
        .as_bytes(),
    );
    for (k, v) in c.parameters {
        h.update(format!("{k}\0{v}\0").as_bytes());
    }
    // The files it includes with `${file(…)}`, which the input key does not see when they lie
    // outside the service's folder and its `inputs` (settings shared between services): a
    // change there is a new compile, also when no plan saw it (`deploy --all`).
    for text in written_config_texts(c.root, c.service).texts {
        h.update(format!("included\0{}\0{text}\0", text.len()).as_bytes());
    }
    // The files git ignores that the framework zips (a `node_modules` installed before Ferry
    // runs), which the input key never sees.
    if let Some(ignored) = ferry_package::ignored_files_key(c.root, c.service) {
        h.update(format!("ignored\0{ignored}\0").as_bytes());
    }
    ferry_package::zip::hex(&h.finalize())
}

/// An earlier compile whose files are all still present.
fn read_reused(out: &Path, path: &Path) -> Option<Compiled> {
    let mut compiled: Compiled = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let present = out.join(&compiled.template).is_file()
        && compiled
            .artifacts
            .iter()
            .all(|a| a.local_path(out).is_file());
    compiled.reused = true;
    present.then_some(compiled)
}

fn no_cli(
    service: &str,
    dir: &str,
    wants: ferry_manifest::FrameworkCli,
    declared: Option<&str>,
) -> String {
    let head = format!(
        "{service}: no Serverless Framework CLI found: not `node_modules/.bin/serverless` in {dir} or a folder above it up to the repository, nor `serverless` on PATH."
    );
    match declared {
        Some(pkg) => format!(
            "{head} `{pkg}` names one, but its dependencies are not installed: install them in its folder first (`npm ci`, `yarn install --frozen-lockfile` or `pnpm install --frozen-lockfile`, by its lock file), e.g. in CI's install phase or as a `[package] build` of the service"
        ),
        None => format!(
            "{head} Install one in the repository ({}; Node.js 20.19 or newer), or set serverless-command in its service.toml",
            install(wants)
        ),
    }
}

/// How to install the CLI a service's `frameworkVersion` takes, for [`ServerlessError::NoCli`].
fn install(wants: ferry_manifest::FrameworkCli) -> &'static str {
    match wants {
        ferry_manifest::FrameworkCli::Osls => {
            "`npm install --save-dev osls`, the open-source v3-compatible CLI that needs no account"
        }
        ferry_manifest::FrameworkCli::V3 => {
            "`npm install --save-dev osls@3`, the open-source CLI at version 3: its frameworkVersion takes version 3 and not 4, so osls 4 would refuse it; or let frameworkVersion take \"4\" and install osls"
        }
        ferry_manifest::FrameworkCli::Before3 => {
            "its frameworkVersion takes only versions before 3, which no CLI Ferry runs takes (osls 4 or a CLI at version 3 refuses it): upgrade the configuration to version 3 (frameworkVersion \"3\"; the framework's v3 upgrade notes say what changed, such as `service` no longer taking an object), then `npm install --save-dev osls@3`"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_from_outside_the_repository_prevent_reuse() {
        for outside in [
            "custom:\n  key: ${ssm:/shop/key}\n",
            "custom:\n  key: ${ssm(eu-west-1):/shop/key}\n",
            "custom:\n  arn: ${cf:db-${sls:stage}.TableArn}\n",
            "custom:\n  who: ${env:USER}\n",
            "custom:\n  account: ${aws:accountId}\n",
            "custom:\n  blob: ${s3:bucket/key}\n",
            // Only as a fallback (as in Enterprise-CMCS/macpro-mdct-carts).
            "custom:\n  key: ${param:Key, ssm:/${self:custom.stage}/key, ''}\n",
        ] {
            assert!(uses(outside, OUTSIDE_SOURCES), "{outside}");
        }
        assert!(uses(
            "custom:\n  key: ${param:Key, ssm:/shop/key}\n",
            AWS_SOURCES
        ));
        assert!(!uses(
            "custom:\n  arn: ${param:Arn, cf:db-dev.TableArn}\n  text: 'ssm: is a word'\n",
            AWS_SOURCES
        ));
        for inside in [
            "service: api\nprovider:\n  stage: ${opt:stage}\n",
            "custom:\n  table: ${param:Table}\n  file: ${file(./config.yml)}\n  self: ${self:service}\n",
        ] {
            assert!(!uses(inside, OUTSIDE_SOURCES), "{inside}");
        }
    }

    #[test]
    fn included_files_and_programs_count_as_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
        let config = d.join("serverless.yml");
        write(
            "serverless.yml",
            "service: api\ncustom: ${file(./custom.yml)}\n",
        );
        write("custom.yml", "table: ${file('./deep.yml'):table}\n");
        write("deep.yml", "table: orders\n");
        assert!(
            !config_reads_outside(d, &config),
            "only files of the service"
        );
        // An include that is only a fallback is read too.
        write(
            "custom.yml",
            "table: ${param:Table, file('./deep.yml'):table}\n",
        );
        write("deep.yml", "table: ${ssm:/shop/table}\n");
        assert_eq!(config_reads(d, &config, AWS_SOURCES), Some(true));
        write("custom.yml", "table: ${file('./deep.yml'):table}\n");
        write("deep.yml", "table: orders\n");
        assert_eq!(config_reads(d, &config, AWS_SOURCES), Some(false));
        // Two includes down, an SSM value: a value kept in AWS, so every deploy checks it.
        write("deep.yml", "table: ${ssm:/shop/table}\n");
        assert!(config_reads_outside(d, &config));
        assert_eq!(config_reads(d, &config, AWS_SOURCES), Some(true));
        // The environment is outside the repository, but not kept in AWS.
        write("deep.yml", "table: ${env:TABLE}\n");
        assert!(config_reads_outside(d, &config));
        assert_eq!(config_reads(d, &config, AWS_SOURCES), Some(false));
        write("deep.yml", "table: orders\n");
        // A JavaScript resolver, a path built from a variable, a file that is not there.
        for custom in [
            "x: ${file(./resolve.js):value}\n",
            "x: ${file(./config.${opt:stage}.yml)}\n",
            "x: ${file(./missing.yml)}\n",
        ] {
            write("custom.yml", custom);
            assert!(config_reads_outside(d, &config), "{custom}");
            assert_eq!(config_reads(d, &config, AWS_SOURCES), None, "{custom}");
        }
        // A configuration written as a program; an include that includes itself ends.
        write("serverless.ts", "export default {}\n");
        assert!(config_reads_outside(d, &d.join("serverless.ts")));
        write("custom.yml", "again: ${file(./custom.yml)}\n");
        assert!(!config_reads_outside(d, &config));
    }

    /// A `${cf:…}` read names a stack of the stage it runs in: its stage variables are that
    /// stage, not a wildcard that takes another service's longer name for it.
    #[test]
    fn a_cf_read_names_the_stack_of_its_stage_only() {
        assert!(reads_stack("shop-api-${sls:stage}", "dev", "shop-api-dev"));
        assert!(!reads_stack(
            "shop-api-${sls:stage}",
            "dev",
            "shop-api-admin-dev"
        ));
        assert!(!reads_stack(
            "shop-api-${sls:stage}",
            "prod",
            "shop-api-dev"
        ));
        assert!(reads_stack(
            "shop-${self:custom.name}-${opt:stage, 'dev'}",
            "prod",
            "shop-orders-prod"
        ));
        assert!(reads_stack(
            "shop-api-${self:provider.stage}",
            "pr-7",
            "shop-api-pr-7"
        ));
        assert!(reads_stack("shop-api-dev", "prod", "shop-api-dev"));
        assert_eq!(
            with_stage("a-${sls:stage}-${env:X}-${opt:stage, ${env:S}}", "qa"),
            "a-qa-${env:X}-qa"
        );
    }

    /// What a configuration includes is read only as a regular file of a configuration's size:
    /// a FIFO blocked `validate` for good, `/dev/zero` filled the memory. Such an include is
    /// one that cannot be read (it may read anything).
    #[test]
    fn an_include_that_is_no_regular_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = d.join("serverless.yml");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(d.join("pipe.yml"))
                .status()
                .unwrap()
                .success()
        );
        std::fs::write(&config, "service: a\ncustom: ${file(./pipe.yml)}\n").unwrap();
        assert!(config_reads_outside(d, &config));
        std::fs::write(&config, "service: a\ncustom: ${file(/dev/zero)}\n").unwrap();
        assert!(config_reads_outside(d, &config));
        std::fs::write(d.join("big.yml"), "a: 1\n".repeat(300_000)).unwrap();
        std::fs::write(&config, "service: a\ncustom: ${file(./big.yml)}\n").unwrap();
        assert!(config_reads_outside(d, &config));
        std::fs::write(d.join("small.yml"), "a: 1\n").unwrap();
        std::fs::write(&config, "service: a\ncustom: ${file(./small.yml)}\n").unwrap();
        assert!(!config_reads_outside(d, &config));
    }
}
