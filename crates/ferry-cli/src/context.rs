//! What every command gets: the repository, its workspace (loaded once), the runtime for AWS
//! calls, and a stage's AWS access.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ferry_credentials::StageAws;
use ferry_credentials::config::Target;
use ferry_manifest::{Stage, Workspace};
use ferry_records::RecordStore;

use crate::{App, Global};

/// What Serverless Framework configurations read that the framework writes, in clear, into
/// the templates it compiles (see [`Ctx::register_secrets`]), each (service, name).
#[derive(Debug)]
pub struct Inlined {
    pub ssm: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
}

/// Where to work and how, for one command.
#[derive(Debug)]
pub struct Ctx {
    pub app: App,
    pub root: PathBuf,
    pub local: bool,
    pub verbose: u8,
    workspace: OnceCell<Workspace>,
    ci: OnceCell<ferry_ci::CiContext>,
}

/// The nearest folder at or above `dir` holding `ferry.toml`, else `dir`.
fn discover(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|d| d.join(ferry_manifest::PROJECT_FILE).is_file())
        .unwrap_or(dir)
        .to_path_buf()
}

impl Ctx {
    pub fn new(app: &App, global: &Global) -> Ctx {
        let root = match (&global.root, &app.default_root) {
            (Some(root), _) => root.clone(),
            (None, Some(root)) => root.clone(),
            (None, None) => discover(&std::env::current_dir().unwrap_or_else(|_| ".".into())),
        };
        Ctx {
            app: app.clone(),
            root,
            local: global.local,
            verbose: global.verbose,
            workspace: OnceCell::new(),
            ci: OnceCell::new(),
        }
    }

    /// The workspace of the repository: loaded and validated once per command.
    pub fn workspace(&self) -> anyhow::Result<&Workspace> {
        if let Some(ws) = self.workspace.get() {
            return Ok(ws);
        }
        // Said of the folder itself, not as a ferry.toml missing in it.
        match std::fs::metadata(&self.root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                "the root {} does not exist; give --root the folder that holds ferry.toml",
                self.root.display()
            ),
            Ok(m) if !m.is_dir() => anyhow::bail!(
                "the root {} is no folder; give --root the folder that holds ferry.toml",
                self.root.display()
            ),
            _ => {}
        }
        let ws = ferry_changes::load_worktree(&self.root).with_context(|| {
            format!(
                "failed to load the Ferry configuration of {}",
                self.root.display()
            )
        })?;
        Ok(self.workspace.get_or_init(|| ws))
    }

    /// The CI build this command runs in (all unset outside CI): read from the environment, and
    /// on GitHub Actions from its event file, once per command.
    pub fn ci(&self) -> &ferry_ci::CiContext {
        self.ci.get_or_init(ferry_ci::CiContext::from_env)
    }

    /// The root as an absolute path without symlinks (as the workspace records it).
    pub fn canonical_root(&self) -> PathBuf {
        std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone())
    }

    /// [`Ctx::emulator`], its state folder made safe to write first when it is the
    /// repository's `target/ferry/local` (no link there, nothing of it committed).
    pub fn checked_emulator(&self) -> anyhow::Result<ferry_local::Emulator> {
        if local_dir().is_none() {
            let home = self.app.emulator_home.as_deref().unwrap_or(&self.root);
            ferry_changes::prepare_output_dir(home).with_context(|| {
                format!(
                    "failed to prepare {}",
                    home.join(ferry_manifest::OUTPUT_DIR).display()
                )
            })?;
        }
        Ok(self.emulator())
    }

    /// The local emulator (`FERRY_LOCAL_DIR` moves its state, keeping the installation).
    pub fn emulator(&self) -> ferry_local::Emulator {
        let home = self.app.emulator_home.as_deref().unwrap_or(&self.root);
        let emu = ferry_local::Emulator::for_repository(home);
        match local_dir() {
            Some(dir) => emu.with_state_dir(dir),
            None => emu,
        }
    }

    /// Ferry's output folder of the repository (`target/ferry`), made with the `.gitignore` that
    /// keeps it out of `git status`.
    pub fn output_dir(&self) -> anyhow::Result<PathBuf> {
        let ws = self.workspace()?;
        ferry_changes::prepare_output_dir(&ws.root)
            .with_context(|| format!("failed to create {}", ws.layout().dir().display()))
    }

    /// Where this run's AWS calls go: the local emulator with `--local` (started if needed),
    /// else the default chain (which honours `AWS_ENDPOINT_URL`).
    fn target(&self) -> anyhow::Result<Target> {
        if !self.local {
            return Ok(Target::default());
        }
        let emu = self.checked_emulator()?;
        emu.ensure_installed(|step| eprintln!("local: {step}"))
            .context("failed to install the local AWS emulator")?;
        let (state, started) = emu
            .up(0)
            .context("failed to start the local AWS emulator")?;
        if started {
            eprintln!(
                "local: started the AWS emulator at {} (stop it with `{} local down`)",
                state.endpoint(),
                self.app.name
            );
        }
        Ok(Target {
            local_endpoint: Some(state.endpoint()),
        })
    }

    /// The AWS access of a stage: its role assumed, its identity checked.
    pub async fn aws(&self, stage: &Stage) -> anyhow::Result<StageAws> {
        let target = self.target()?;
        let base = ferry_credentials::base_config(&stage.config.region, &target).await;
        let access = ferry_credentials::stage_config(
            stage,
            &base,
            self.ci().build_id.as_deref(),
            crate::ui::masker(),
        );
        crate::ui::waiting_for(
            &format!(
                "AWS to answer (the identity and credentials of stage `{}`)",
                stage.name
            ),
            access,
        )
        .await
        .with_context(|| format!("failed to get AWS access for stage `{}`", stage.name))
    }

    /// The named stage and its AWS access.
    pub async fn stage_aws(&self, name: &str) -> anyhow::Result<(Stage, StageAws)> {
        let stage = self.workspace()?.stage(name)?;
        let aws = self.aws(&stage).await?;
        Ok((stage, aws))
    }

    /// The AWS access of every other stage whose outputs the services read in `stage`
    /// (`${output:STAGE:service.Key}`): each with its own credentials and region.
    pub async fn other_stages(
        &self,
        stage: &Stage,
    ) -> anyhow::Result<std::collections::BTreeMap<String, ferry_credentials::SdkConfig>> {
        let ws = self.workspace()?;
        let mut out = std::collections::BTreeMap::new();
        for name in ferry_deploy::stages_read(ws, stage) {
            let other = ws.stage(&name)?;
            let aws = self.aws(&other).await.with_context(|| {
                format!(
                    "stage `{}` reads outputs of stage `{name}`, which needs its access",
                    stage.name
                )
            })?;
            out.insert(name, aws.config);
        }
        Ok(out)
    }

    /// The stage's deployment records and lock.
    pub fn records(&self, stage: &Stage, aws: &StageAws) -> anyhow::Result<RecordStore> {
        Ok(ferry_deploy::record_store(
            self.workspace()?,
            stage,
            &aws.config,
        ))
    }

    /// The records of a stage other than the command's (a promote's source, the gate's stage),
    /// read with that stage's own credentials and region, which are given too; `why` ends the
    /// error (` for the gate`).
    pub async fn records_of(
        &self,
        stage: &Stage,
        why: &str,
    ) -> anyhow::Result<(
        StageAws,
        std::collections::BTreeMap<String, ferry_records::Record>,
    )> {
        let aws = self.aws(stage).await?;
        let records = self
            .records(stage, &aws)?
            .read_all()
            .await
            .with_context(|| {
                format!("failed to read the records of stage `{}`{why}", stage.name)
            })?;
        Ok((aws, records))
    }

    /// Registers every SecureString the stage's services reference with the masker, so that a
    /// secret that reappears (a stack output that echoes it) is masked in everything printed or
    /// written.
    /// Registers the secrets the services read in `stage`, and in each other stage whose
    /// outputs they read (`${output:STAGE:…}`, read with that stage's own credentials): an
    /// output there may echo one of its secrets. Returns what Serverless Framework
    /// configurations read whose values the framework writes into the templates it compiles:
    /// the SecureStrings of `stage` read with `${ssm:…}` (service, name), and the variables
    /// named as secrets read with `${env:…}` (service, variable).
    pub async fn register_secrets(&self, stage: &Stage, aws: &StageAws) -> anyhow::Result<Inlined> {
        let ws = self.workspace()?;
        let masker = crate::ui::masker();
        let warn = |stage: &Stage, done: ferry_deploy::Registered| {
            for (name, why) in done.unreadable {
                crate::ui::note(&crate::ui::mask(&format!(
                    "warning: SecureString `{name}`, which a template reads, could not be read in stage `{}` ({why}): an output that echoes it would not be masked",
                    stage.name
                )));
            }
        };
        let mut done = ferry_deploy::register_secrets(ws, stage, &aws.config, masker)
            .await
            .context("failed to read the SSM parameters the services reference")?;
        for (service, name) in std::mem::take(&mut done.unresolved) {
            crate::ui::note(&crate::ui::mask(&format!(
                "warning: {service} reads SSM parameters through `{name}`, which Ferry cannot resolve before the framework runs (a variable it cannot know, or an option it does not know): were one a SecureString, its value would not be masked in what Ferry prints; build names and include paths from the stage and region only (${{sls:stage}}, ${{aws:region}}, ${{self:…}})"
            )));
        }
        let inlined = Inlined {
            ssm: std::mem::take(&mut done.inlined),
            env: std::mem::take(&mut done.env_inlined),
        };
        warn(stage, done);
        for (other, config) in self.other_stages(stage).await? {
            let other = ws.stage(&other)?;
            let done = ferry_deploy::register_secrets(ws, &other, &config, masker)
                .await
                .with_context(|| {
                    format!(
                        "failed to read the SSM parameters the services reference in stage `{}`, whose outputs they read",
                        other.name
                    )
                })?;
            warn(&other, done);
        }
        Ok(inlined)
    }

    /// Checks that every name in `services` is a service of the workspace.
    pub fn check_services(&self, services: &[String]) -> anyhow::Result<()> {
        let ws = self.workspace()?;
        for s in services {
            if ws.service(s).is_none() {
                anyhow::bail!(
                    "unknown service `{s}`{}",
                    ferry_manifest::did_you_mean(s, ws.services.iter().map(|x| x.name.as_str()))
                );
            }
        }
        Ok(())
    }
}

/// A runtime for one command's AWS calls. Two worker threads: what runs in the background (the
/// tests' builds, the lock's renewal) goes on while the command itself blocks, e.g. while the
/// local emulator is installed.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// `FERRY_LOCAL_DIR`, where the emulator's state goes instead of the repository's; set but empty
/// is unset (it put the state in whatever folder Ferry ran in, and started a second emulator).
fn local_dir() -> Option<std::ffi::OsString> {
    std::env::var_os("FERRY_LOCAL_DIR").filter(|d| !d.is_empty())
}
