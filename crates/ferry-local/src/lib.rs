#![doc = include_str!("../README.md")]
//! The local AWS emulator: moto's server on loopback.
//!
//! [`Emulator`] owns one folder (by default `target/ferry/local` of the repository): a virtual
//! environment with a pinned `moto[server]`, the state file of a running server (pid, port) and
//! its log. A *detached* server (`cargo xtask local up`) outlives the command that started it; an
//! *attached* server ([`Emulator::spawn_attached`], for tests) exits when its parent does.
//!
//! The emulator's known gaps are listed in the README (section "Credentials", `--local`);
//! the code that depends on one says so where it does.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// The moto release Ferry is tested against.
pub const MOTO_VERSION: &str = "5.2.5";
/// The `aws-sam-translator` release installed beside moto: the emulator does not run the SAM
/// transform, so `--local` expands SAM templates with it before they are deployed.
pub const SAM_TRANSLATOR_VERSION: &str = "1.115.0";
/// The `cfn-lint` release the project's tests check generated templates with: in a venv of its
/// own beside the emulator's (it pins its own aws-sam-translator).
pub const CFN_LINT_VERSION: &str = "1.58.0";
/// Expands one SAM template offline (no AWS call: managed policy names come from the list
/// bundled with the translator); JSON request on stdin, the template on stdout.
const SAM_EXPAND: &str = include_str!("sam_expand.py");
/// Access key the local emulator is given: not a credential, any value works with moto.
pub const DUMMY_KEY: &str = "ferry-local";
const LAUNCHER: &str = include_str!("launcher.py");
/// pip's arguments for the emulator's packages. `--no-compile`: byte-compiling every module of
/// moto at install time is half of a first run's install (about 20 s of CPU on two cores, while
/// the example's tests compile beside it); Python compiles the modules the emulator imports on
/// first use instead, and `Emulator::python_command` lets it keep them.
const PIP_INSTALL: &[&str] = &[
    "install",
    "--quiet",
    "--disable-pip-version-check",
    "--no-compile",
];
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    #[error(
        "the local emulator (pid {pid}, port {port}) runs but does not answer (too busy, or stopped: a machine waking from sleep, a debugger); what it holds (every stage's stacks, records and parameters) stays while it runs: run again once it answers, or `local down` to stop it, losing what it holds, and a new one starts"
    )]
    NotAnswering { pid: u32, port: u16 },
    #[error(
        "`{python}` was not found; the local emulator needs Python 3.10 or newer with venv (e.g. `apt-get install python3 python3-venv`), or set FERRY_PYTHON to a python executable"
    )]
    PythonMissing { python: String },
    #[error(
        "failed to install moto[server]=={MOTO_VERSION} and aws-sam-translator=={SAM_TRANSLATOR_VERSION} into {venv}: `{step}` exited with {status}; its last lines:\n{tail}"
    )]
    Install {
        venv: PathBuf,
        step: String,
        status: String,
        tail: String,
    },
    #[error(
        "the SAM template could not be expanded for the emulator (aws-sam-translator {SAM_TRANSLATOR_VERSION}):\n{errors}"
    )]
    SamExpand { errors: String },
    #[error("failed to start the emulator: {reason}; see {log}")]
    Start { reason: String, log: PathBuf },
    #[error(
        "failed to start the emulator: port {port} on 127.0.0.1 cannot be taken ({reason}): another process listens there; give another --port, or none for any free port"
    )]
    PortTaken { port: u16, reason: String },
    #[error(
        "{} is not the emulator's state Ferry writes ({reason}): a server it named may still run; stop that server (its command line holds `ferry-moto`) and delete the file, then start the emulator again",
        .path.display()
    )]
    BadState { path: PathBuf, reason: String },
    #[error("failed to stop the emulator (pid {pid}): {source}")]
    Stop { pid: u32, source: std::io::Error },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LocalError + 'a {
    move |source| LocalError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What is recorded about a detached server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerState {
    pub pid: u32,
    pub port: u16,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub moto_version: String,
}

impl ServerState {
    pub fn endpoint(&self) -> String {
        endpoint(self.port)
    }
}

pub fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Whether the emulator runs, as far as its state file and the process table tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    NotStarted,
    Running(ServerState),
    /// A state file whose process is gone or does not answer (e.g. after a reboot).
    Stale(ServerState),
}

/// The environment a process needs to use an emulator at `endpoint`: endpoint, dummy keys,
/// region. Any existing session token or profile must not leak into local runs, so those are
/// listed as empty to be removed.
pub fn client_env(endpoint: &str, region: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", DUMMY_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", DUMMY_KEY.to_string()),
        ("AWS_REGION", region.to_string()),
        // Read by the AWS CLI v1 and older SDKs.
        ("AWS_DEFAULT_REGION", region.to_string()),
    ]
}

/// Variables that would point a local run at a real account; cleared for local runs.
pub const CLEARED_ENV: &[&str] = &["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"];

/// The emulator: its folder (state, log) and where its installations live (the venvs of moto
/// and cfn-lint, and their install lock).
#[derive(Debug, Clone)]
pub struct Emulator {
    dir: PathBuf,
    /// The installations' folder.
    installs: PathBuf,
}

/// The folder of this user's installations, which every repository's emulator shares:
/// `FERRY_CACHE_DIR`, else `$XDG_CACHE_HOME/ferry`, else `$HOME/.cache/ferry` (each only when
/// set to an absolute path); `None` without any.
pub fn user_cache() -> Option<PathBuf> {
    cache_from(|name| std::env::var_os(name))
}

/// [`user_cache`] with the environment read by `env`.
fn cache_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let var = |name: &str| env(name).map(PathBuf::from).filter(|p| p.is_absolute());
    var("FERRY_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("ferry")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("ferry")))
}

/// A server that lives as long as this value and stops when it is dropped or when the process
/// that holds it exits, however it exits.
#[derive(Debug)]
pub struct AttachedServer {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
}

impl AttachedServer {
    pub fn endpoint(&self) -> String {
        endpoint(self.port)
    }
}

impl Drop for AttachedServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// State, log and installations all in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Emulator {
            installs: dir.clone(),
            dir,
        }
    }

    /// State and log in `<root>/target/ferry/local`; the installations in `emulator/` of the
    /// user's cache ([`user_cache`]), shared by every repository and kept by `cargo clean`, or
    /// beside the state when there is no cache folder or it cannot be made.
    pub fn for_repository(root: &Path) -> Self {
        let emulator = Emulator::new(ferry_manifest::Layout::new(root).local());
        match user_cache().map(|c| c.join("emulator")) {
            Some(shared) if fs::create_dir_all(&shared).is_ok() => emulator.with_installs(shared),
            _ => emulator,
        }
    }

    /// Keeps the installations, moves state and log to `dir` (e.g. one emulator per test folder
    /// without installing moto again).
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    /// Keeps state and log, puts the installations in `dir`.
    pub fn with_installs(mut self, dir: impl Into<PathBuf>) -> Self {
        self.installs = dir.into();
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The venv of the pinned moto and translator, named by their versions: emulators of
    /// Ferry versions that pin others keep venvs of their own, never replacing one another's
    /// while a server runs from it.
    pub fn venv(&self) -> PathBuf {
        self.installs.join(format!(
            "venv-moto-{MOTO_VERSION}-sam-{SAM_TRANSLATOR_VERSION}"
        ))
    }

    /// Where the installations live, with their install lock: not the state folder, since
    /// emulators with state folders of their own (`with_state_dir`) share the installations,
    /// so they must share the lock too.
    pub fn installs(&self) -> &Path {
        &self.installs
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("moto.log")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("server.json")
    }

    /// Held while the server is started or stopped and its state written: two `up`s at once
    /// (two deploys with `--local`) start one server, and neither orphans the other's.
    fn state_lock(&self) -> Result<File, LocalError> {
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let path = self.dir.join("server.lock");
        let lock = File::create(&path).map_err(io("create", &path))?;
        lock.lock().map_err(io("lock", &path))?;
        Ok(lock)
    }

    fn python(&self) -> PathBuf {
        self.venv().join("bin").join("python")
    }

    /// The venv's Python, allowed to cache the bytecode of what it imports in the venv (the
    /// packages are installed uncompiled; an environment that sets `PYTHONDONTWRITEBYTECODE`
    /// would otherwise compile moto anew at every start, about 2 s each).
    fn python_command(&self) -> Command {
        let mut cmd = Command::new(self.python());
        cmd.env_remove("PYTHONDONTWRITEBYTECODE");
        cmd
    }

    /// Written last: a venv without it is an install that did not finish, made again.
    fn marker(&self) -> PathBuf {
        self.venv().join(format!(
            ".ferry-moto-{MOTO_VERSION}-sam-{SAM_TRANSLATOR_VERSION}"
        ))
    }

    pub fn is_installed(&self) -> bool {
        self.marker().is_file()
    }

    /// The pinned `cfn-lint`, installed once into `cfn-lint-<version>` beside the emulator's venv
    /// (a venv of its own) under the install lock; gives the program's path.
    pub fn ensure_cfn_lint(&self, mut progress: impl FnMut(&str)) -> Result<PathBuf, LocalError> {
        let home = self.installs.clone();
        let venv = home.join(format!("cfn-lint-{CFN_LINT_VERSION}"));
        let program = venv.join("bin").join("cfn-lint");
        let marker = venv.join(format!(".ferry-cfn-lint-{CFN_LINT_VERSION}"));
        if marker.is_file() {
            return Ok(program);
        }
        fs::create_dir_all(&home).map_err(io("create", &home))?;
        let lock_path = home.join("install.lock");
        let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
        lock.lock().map_err(io("lock", &lock_path))?;
        if marker.is_file() {
            return Ok(program);
        }
        let python = std::env::var("FERRY_PYTHON").unwrap_or_else(|_| "python3".to_string());
        if venv.exists() {
            fs::remove_dir_all(&venv).map_err(io("remove", &venv))?;
        }
        progress(&format!(
            "installing cfn-lint=={CFN_LINT_VERSION} into {}",
            venv.display()
        ));
        run_step(
            &venv,
            Command::new(&python).args(["-m", "venv"]).arg(&venv),
            &mut progress,
        )?;
        run_step(
            &venv,
            Command::new(venv.join("bin").join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("cfn-lint=={CFN_LINT_VERSION}")),
            &mut progress,
        )?;
        File::create(&marker).map_err(io("create", &marker))?;
        Ok(program)
    }

    /// Installs the pinned moto into the venv unless it is there already. Safe to call from
    /// several processes at once (a file lock serialises them). `progress` hears each step.
    pub fn ensure_installed(&self, progress: impl FnMut(&str)) -> Result<(), LocalError> {
        let python = std::env::var("FERRY_PYTHON").unwrap_or_else(|_| "python3".to_string());
        self.ensure_installed_with(&python, progress)
    }

    /// [`Emulator::ensure_installed`] with an explicit Python interpreter.
    pub fn ensure_installed_with(
        &self,
        python: &str,
        mut progress: impl FnMut(&str),
    ) -> Result<(), LocalError> {
        if self.is_installed() {
            return Ok(());
        }
        let home = &self.installs;
        fs::create_dir_all(home).map_err(io("create", home))?;
        let lock_path = home.join("install.lock");
        let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
        lock.lock().map_err(io("lock", &lock_path))?;
        if self.is_installed() {
            return Ok(());
        }
        if Command::new(python)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Err(LocalError::PythonMissing {
                python: python.to_string(),
            });
        }
        let venv = self.venv();
        if venv.exists() {
            fs::remove_dir_all(&venv).map_err(io("remove", &venv))?;
        }
        progress(&format!(
            "creating a virtual environment in {}",
            venv.display()
        ));
        run_step(
            &venv,
            Command::new(python).args(["-m", "venv"]).arg(&venv),
            &mut progress,
        )?;
        progress(&format!(
            "installing moto[server]=={MOTO_VERSION} and aws-sam-translator=={SAM_TRANSLATOR_VERSION} (once for every repository of this user)"
        ));
        run_step(
            &venv,
            Command::new(venv.join("bin").join("pip"))
                .args(PIP_INSTALL)
                .arg(format!("moto[server]=={MOTO_VERSION}"))
                .arg(format!("aws-sam-translator=={SAM_TRANSLATOR_VERSION}")),
            &mut progress,
        )?;
        File::create(self.marker()).map_err(io("create", &self.marker()))?;
        Ok(())
    }

    /// Expands a SAM template (JSON or YAML text, as CloudFormation would read it; Ferry's
    /// packaged templates are JSON) into plain CloudFormation for the emulator, with the stack's
    /// parameter values and region. Nothing leaves the machine; the values go to the translator
    /// on its standard input, never in its arguments. Installs the translator when needed.
    pub fn expand_sam(
        &self,
        template: &serde_json::Value,
        parameters: &std::collections::BTreeMap<String, String>,
        region: &str,
    ) -> Result<String, LocalError> {
        let request = serde_json::json!({
            "template": template,
            "parameters": parameters,
            "region": region,
        });
        let out = self.run_translator(&request)?;
        if !out.status.success() {
            let errors = String::from_utf8_lossy(&out.stderr)
                .lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n");
            return Err(LocalError::SamExpand { errors });
        }
        String::from_utf8(out.stdout).map_err(|e| LocalError::SamExpand {
            errors: format!("  the translator's output is not UTF-8: {e}"),
        })
    }

    /// [`expand_sam`](Self::expand_sam) of many templates in one run of the translator (whose
    /// start-up is most of a small template's time): each result in the order of `requests`, a
    /// template the translator refuses as its message. An error when the translator cannot run.
    pub fn expand_sam_all(
        &self,
        requests: &[(
            &serde_json::Value,
            &std::collections::BTreeMap<String, String>,
        )],
        region: &str,
    ) -> Result<Vec<Result<String, String>>, LocalError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let request = serde_json::json!({
            "requests": requests
                .iter()
                .map(|(template, parameters)| serde_json::json!({
                    "template": template,
                    "parameters": parameters,
                }))
                .collect::<Vec<_>>(),
            "region": region,
        });
        let out = self.run_translator(&request)?;
        let indented = |lines: &[String]| {
            lines
                .iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let results: Vec<serde_json::Value> = match serde_json::from_slice(&out.stdout) {
            Ok(results) if out.status.success() => results,
            _ => {
                let lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .map(String::from)
                    .collect();
                return Err(LocalError::SamExpand {
                    errors: indented(&lines),
                });
            }
        };
        if results.len() != requests.len() {
            return Err(LocalError::SamExpand {
                errors: format!(
                    "  the translator answered {} of {} templates",
                    results.len(),
                    requests.len()
                ),
            });
        }
        Ok(results
            .into_iter()
            .map(|r| match (r.get("template"), r.get("errors")) {
                (Some(t), _) => Ok(serde_json::to_string(t).expect("JSON values serialize")),
                (None, errors) => {
                    let lines: Vec<String> = errors
                        .and_then(serde_json::Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|l| l.as_str().map_or_else(|| l.to_string(), String::from))
                        .collect();
                    Err(LocalError::SamExpand {
                        errors: indented(&lines),
                    }
                    .to_string())
                }
            })
            .collect())
    }

    /// Runs the translator script on `request` (its standard input), installed when needed.
    fn run_translator(
        &self,
        request: &serde_json::Value,
    ) -> Result<std::process::Output, LocalError> {
        self.ensure_installed(|_| {})?;
        use std::os::unix::process::CommandExt as _;
        let mut child = self
            .python_command()
            .args(["-c", SAM_EXPAND])
            // In a process group of its own: a Ctrl-C at the terminal is Ferry's to handle
            // (the run is cancelled), not a KeyboardInterrupt reported as a broken template.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("run", &self.python()))?;
        let mut stdin = child.stdin.take().expect("piped");
        let body = serde_json::to_vec(request).expect("JSON values serialize");
        // Written from a thread: a large template must not block on a full pipe while the
        // translator's answer fills the other one.
        let writer = std::thread::spawn(move || stdin.write_all(&body));
        let out = child
            .wait_with_output()
            .map_err(io("run", &self.python()))?;
        let _ = writer.join();
        Ok(out)
    }

    fn launch(&self, port: u16, attached: bool) -> Result<(Child, u16), LocalError> {
        // A port another process listens on: moto's server thread fails to bind and the
        // launcher then waits for it forever (the start waited its whole minute, then said "no
        // answer"). Tried here first, and let go at once.
        if port != 0
            && let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port))
        {
            return Err(LocalError::PortTaken {
                port,
                reason: e.to_string(),
            });
        }
        self.ensure_installed(|_| {})?;
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        // Attached servers of parallel test binaries share one appended log; the detached
        // server's log starts afresh with each start.
        let log_path = if attached {
            self.dir.join("moto-attached.log")
        } else {
            self.log_path()
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(attached)
            .truncate(!attached)
            .open(&log_path)
            .map_err(io("open", &log_path))?;
        let mut cmd = self.python_command();
        cmd.arg("-c")
            .arg(LAUNCHER)
            .arg(port.to_string())
            .arg(if attached { "attached" } else { "detached" })
            .stdin(if attached {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(log);
        // Its request recorder (`/moto-api/recorder/…`, off unless started) writes beside its
        // log, never into the folder it was started from.
        cmd.env(
            "MOTO_RECORDER_FILEPATH",
            self.dir.join("moto-recording.jsonl"),
        );
        // moto answers requests for any region; keep real endpoints and profiles out of it.
        for var in ["AWS_ENDPOINT_URL", "AWS_PROFILE"] {
            cmd.env_remove(var);
        }
        if !attached {
            // Its own process group: a Ctrl-C in the terminal that ran `local up` does not stop it.
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let mut child = cmd.spawn().map_err(|e| LocalError::Start {
            reason: e.to_string(),
            log: log_path.clone(),
        })?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let fail = |child: &mut Child, reason: String| {
            let _ = child.kill();
            let _ = child.wait();
            LocalError::Start {
                reason,
                log: log_path.clone(),
            }
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(l) => l,
            Err(_) => {
                return Err(fail(
                    &mut child,
                    format!("no answer within {}s", START_TIMEOUT.as_secs()),
                ));
            }
        };
        let Some(port) = line
            .trim()
            .strip_prefix("ferry-moto ready ")
            .and_then(|p| p.parse().ok())
        else {
            let tail = tail_of(&log_path, 5);
            return Err(fail(
                &mut child,
                format!("the server exited before it was ready ({})", tail.trim()),
            ));
        };
        if !answers(port) {
            return Err(fail(
                &mut child,
                format!("port {port} does not answer HTTP"),
            ));
        }
        Ok((child, port))
    }

    /// Starts a server that dies with this process (tests).
    pub fn spawn_attached(&self) -> Result<AttachedServer, LocalError> {
        let (mut child, port) = self.launch(0, true)?;
        let stdin = child.stdin.take();
        Ok(AttachedServer { child, stdin, port })
    }

    /// Starts the detached server unless it already runs; `port` 0 picks a free port.
    /// Returns the state and whether it was started now.
    pub fn up(&self, port: u16) -> Result<(ServerState, bool), LocalError> {
        let _lock = self.state_lock()?;
        match self.status()? {
            Status::Running(state) => return Ok((state, false)),
            // Ours but not answering (too busy, or stopped: a laptop waking, a debugger): asked
            // again for a while, then left as it is. Replaced, everything it holds (every
            // stage's stacks, records and parameters) was lost without a word; `local down`
            // stops it when that is what is wanted.
            Status::Stale(state) if is_our_process(state.pid) => {
                if (0..3).any(|_| answers(state.port)) {
                    return Ok((state, false));
                }
                return Err(LocalError::NotAnswering {
                    pid: state.pid,
                    port: state.port,
                });
            }
            Status::Stale(_) | Status::NotStarted => {}
        }
        let (child, port) = self.launch(port, false)?;
        let state = ServerState {
            pid: child.id(),
            port,
            started_at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            moto_version: MOTO_VERSION.to_string(),
        };
        let path = self.state_path();
        let json = serde_json::to_string_pretty(&state).expect("state serialises");
        // Whole or not at all: a reader never finds half of it.
        ferry_manifest::write_atomic(&path, json).map_err(io("write", &path))?;
        Ok((state, true))
    }

    pub fn status(&self) -> Result<Status, LocalError> {
        let path = self.state_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Status::NotStarted),
            Err(e) => return Err(io("read", &path)(e)),
        };
        // Not "not started": a server it named may run, and a new one would orphan it.
        let state =
            serde_json::from_str::<ServerState>(&text).map_err(|e| LocalError::BadState {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if is_our_process(state.pid) && answers(state.port) {
            Ok(Status::Running(state))
        } else {
            Ok(Status::Stale(state))
        }
    }

    /// Stops exactly the recorded server (never another process that reuses its pid) and
    /// forgets it. Returns the state of the server that was stopped, if one ran.
    pub fn down(&self) -> Result<Option<ServerState>, LocalError> {
        let _lock = self.state_lock()?;
        let stopped = match self.status()? {
            Status::NotStarted => return Ok(None),
            // A recorded server that is alive but does not answer is still ours to stop.
            Status::Stale(state) if is_our_process(state.pid) => {
                terminate(state.pid)?;
                Some(state)
            }
            Status::Stale(_) => None,
            Status::Running(state) => {
                terminate(state.pid)?;
                Some(state)
            }
        };
        let path = self.state_path();
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove", &path)(e));
            }
            _ => {}
        }
        Ok(stopped)
    }
}

/// How often a long install step is reported as still running.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Runs one install step, saying every [`HEARTBEAT`] that it still runs (a pip install takes
/// most of a minute, and is otherwise silent).
fn run_step(
    venv: &Path,
    cmd: &mut Command,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LocalError> {
    let step = format!("{cmd:?}").replace('"', "");
    let failed = |e: std::io::Error| LocalError::Install {
        venv: venv.to_path_buf(),
        step: step.clone(),
        status: e.to_string(),
        tail: String::new(),
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let t0 = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let mut next = HEARTBEAT;
    while !waiter.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if t0.elapsed() >= next {
            progress(&format!(
                "still running {program} ({}s)",
                t0.elapsed().as_secs()
            ));
            next += HEARTBEAT;
        }
    }
    let out = waiter
        .join()
        .expect("the waiting thread does not panic")
        .map_err(failed)?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    Err(LocalError::Install {
        venv: venv.to_path_buf(),
        step,
        status: out.status.to_string(),
        tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

fn tail_of(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    let v: Vec<&str> = text.lines().rev().take(lines).collect();
    v.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Whether something on 127.0.0.1:`port` answers an HTTP request.
pub fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// The pid is alive and is a Ferry-launched moto (checked through /proc where there is one).
fn is_our_process(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    if rustix::process::test_kill_process(p).is_err() {
        return false;
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains("ferry-moto ready"),
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

fn terminate(pid: u32) -> Result<(), LocalError> {
    let p = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("checked by is_our_process");
    let send = |sig| {
        rustix::process::kill_process(p, sig).map_err(|e| LocalError::Stop {
            pid,
            source: e.into(),
        })
    };
    send(rustix::process::Signal::TERM)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if rustix::process::test_kill_process(p).is_err() || !is_our_process(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    send(rustix::process::Signal::KILL)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `up --port` of a port another process listens on waited its whole minute (moto's
    /// server thread failed to bind, and the launcher waited for it), then said "no answer";
    /// refused at once now, naming the port. (Before the emulator is installed: nothing is
    /// started.)
    #[test]
    fn up_on_a_port_another_process_holds_is_refused_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let emu = Emulator::new(tmp.path());
        let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let start = Instant::now();
        let e = emu.up(port).unwrap_err();
        assert!(
            matches!(&e, LocalError::PortTaken { port: p, .. } if *p == port),
            "{e:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(e.to_string().contains("give another --port"), "{e}");
        assert_eq!(emu.status().unwrap(), Status::NotStarted);
    }

    /// A state file that is not Ferry's (cut short, edited) is named, not taken for "not
    /// started": a new server would orphan the one it named.
    #[test]
    fn a_state_file_that_cannot_be_read_is_named_not_taken_for_none() {
        let tmp = tempfile::tempdir().unwrap();
        let emu = Emulator::new(tmp.path());
        fs::write(tmp.path().join("server.json"), "{\"pid\":").unwrap();
        for e in [emu.status().unwrap_err(), emu.up(0).unwrap_err()] {
            assert!(matches!(e, LocalError::BadState { .. }), "{e:?}");
            assert!(
                e.to_string()
                    .contains("server.json is not the emulator's state Ferry writes"),
                "{e}"
            );
        }
    }

    #[test]
    fn status_of_a_fresh_folder_is_not_started_and_down_is_a_no_op() {
        let tmp = tempfile::tempdir().unwrap();
        let emu = Emulator::new(tmp.path());
        assert_eq!(emu.status().unwrap(), Status::NotStarted);
        assert_eq!(emu.down().unwrap(), None);
    }

    /// Records process `pid` in `dir` as the emulator's server, listening nowhere (port 1).
    fn recorded_server(dir: &Path, pid: u32) -> ServerState {
        let state = ServerState {
            pid,
            port: 1,
            started_at: 0,
            moto_version: MOTO_VERSION.into(),
        };
        fs::write(
            dir.join("server.json"),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        state
    }

    #[test]
    fn a_state_file_of_a_dead_process_is_stale_and_down_forgets_it_without_killing() {
        let tmp = tempfile::tempdir().unwrap();
        let emu = Emulator::new(tmp.path());
        // Our own pid is alive but is not a moto server: it must never be signalled.
        let state = recorded_server(tmp.path(), std::process::id());
        assert_eq!(emu.status().unwrap(), Status::Stale(state));
        assert_eq!(emu.down().unwrap(), None);
        assert_eq!(emu.status().unwrap(), Status::NotStarted);
    }

    /// A process whose command line is the launcher's, listening nowhere (a moto too busy to
    /// answer looks the same), recorded as the server of `dir`.
    fn silent_server(dir: &Path) -> (std::process::Child, ServerState) {
        let child = std::process::Command::new("sh")
            .args(["-c", "sleep 60; echo 'ferry-moto ready'"])
            .spawn()
            .unwrap();
        // Until the child has exec'd `sh`, its command line is still this test's.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_our_process(child.id()) {
            assert!(Instant::now() < deadline, "the child never ran its command");
            std::thread::sleep(Duration::from_millis(10));
        }
        let state = recorded_server(dir, child.id());
        (child, state)
    }

    #[test]
    fn down_stops_a_recorded_server_that_lives_but_does_not_answer() {
        let tmp = tempfile::tempdir().unwrap();
        let emu = Emulator::new(tmp.path());
        let (mut child, state) = silent_server(tmp.path());
        assert_eq!(emu.status().unwrap(), Status::Stale(state.clone()));
        assert_eq!(emu.down().unwrap(), Some(state));
        assert_eq!(emu.status().unwrap(), Status::NotStarted);
        let ended = child.wait().unwrap();
        assert!(!ended.success(), "stopped by a signal: {ended:?}");
    }

    /// A recorded server that lives but does not answer is left as it is by `up` (a command's
    /// `--local`), which says so: before, it was killed and replaced by an empty one, every
    /// stage's stacks and records lost without a word.
    #[test]
    fn up_leaves_a_recorded_server_that_lives_but_does_not_answer() {
        let tmp = tempfile::tempdir().unwrap();
        let emu = Emulator::new(tmp.path());
        let (mut child, state) = silent_server(tmp.path());
        let err = emu.up(0).unwrap_err();
        assert!(
            matches!(err, LocalError::NotAnswering { pid, .. } if pid == child.id()),
            "{err}"
        );
        assert!(err.to_string().contains("`local down`"), "{err}");
        assert!(child.try_wait().unwrap().is_none(), "still running");
        assert_eq!(emu.down().unwrap(), Some(state));
        let _ = child.wait();
    }

    #[test]
    fn the_users_cache_is_ferrys_own_then_xdgs_then_homes() {
        fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<std::ffi::OsString> + 'a {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        }
        let all = [
            ("FERRY_CACHE_DIR", "/f"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(cache_from(env(&all)), Some(PathBuf::from("/f")));
        assert_eq!(cache_from(env(&all[1..])), Some(PathBuf::from("/x/ferry")));
        assert_eq!(
            cache_from(env(&all[2..])),
            Some(PathBuf::from("/h/.cache/ferry"))
        );
        // A relative path would depend on where Ferry runs: passed over.
        assert_eq!(
            cache_from(env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/ferry"))
        );
        assert_eq!(cache_from(env(&[("HOME", "")])), None);
        assert_eq!(cache_from(env(&[])), None);
    }

    #[test]
    fn emulators_with_their_own_state_share_one_installation_named_by_its_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("cache");
        let a = Emulator::new(tmp.path().join("a")).with_installs(&shared);
        let b = a.clone().with_state_dir(tmp.path().join("b"));
        assert_eq!(a.venv(), b.venv());
        assert_eq!(b.installs(), shared);
        assert_eq!(b.dir(), tmp.path().join("b"));
        assert_eq!(
            a.venv(),
            shared.join(format!(
                "venv-moto-{MOTO_VERSION}-sam-{SAM_TRANSLATOR_VERSION}"
            ))
        );
        assert_eq!(b.log_path(), tmp.path().join("b").join("moto.log"));
        // Without a cache of the user's, all in the folder.
        let c = Emulator::new(tmp.path().join("c"));
        assert_eq!(c.installs(), tmp.path().join("c"));
    }

    #[test]
    fn missing_python_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let emu = Emulator::new(tmp.path());
        let err = emu
            .ensure_installed_with("/nonexistent/python3", |_| {})
            .unwrap_err();
        assert!(matches!(err, LocalError::PythonMissing { .. }), "{err}");
        assert!(err.to_string().contains("FERRY_PYTHON"), "{err}");
    }
}
