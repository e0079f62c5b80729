//! `[acceptance] build`: the commands that compile a service's tests. A deploy with `--test`
//! starts them before it packages anything, so that they compile while the stacks deploy; a
//! service's tests then wait only for what is left of its build.

use std::time::{Duration, Instant};

use crate::awaited::{Awaited, Publisher};
use crate::process::Ended;
use ferry_credentials::Masker;
use ferry_manifest::Workspace;

/// Lines of a failed build's output kept for its message (the last ones).
const KEPT_LINES: usize = 30;

/// How a build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    Ok {
        took: Duration,
    },
    /// The command failed or could not start (`message`, one line), and the last lines it
    /// printed (masked).
    Failed {
        message: String,
        output: Vec<String>,
    },
}

/// What the builds report while they run.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// `dir`: relative to the repository root (`""` is the root).
    Started {
        command: String,
        dir: String,
    },
    Finished {
        command: String,
        built: Built,
    },
}

/// The builds of one run, by service. Dropping it leaves running builds to the runtime, which
/// stops them when it shuts down (each build is its own process group, killed on drop).
#[derive(Debug, Default)]
pub struct Builds {
    by_service: Awaited<Built>,
}

impl Builds {
    /// Starts the `[acceptance] build` commands of `services`, one after another in the
    /// background (on the current tokio runtime): each distinct command and folder once, even
    /// when several services share it. Services without one are not waited for.
    pub fn start<'s>(
        ws: &Workspace,
        services: impl IntoIterator<Item = &'s str>,
        masker: &Masker,
        on: impl Fn(BuildEvent) + Send + Sync + 'static,
    ) -> Builds {
        let mut jobs: Vec<(Vec<String>, String, Publisher<Built>)> = Vec::new();
        let mut by_service = Awaited::default();
        for name in services {
            let Some(service) = ws.service(name) else {
                continue;
            };
            let Some(acceptance) = service.acceptance.as_ref() else {
                continue;
            };
            let Some(argv) = acceptance.build.clone() else {
                continue;
            };
            let dir = acceptance.build_folder(&service.dir);
            match jobs.iter().find(|(a, d, _)| *a == argv && d == dir) {
                Some((.., job)) => by_service.share(name, job),
                None => {
                    let job = by_service.expect(name);
                    jobs.push((argv, dir.to_string(), job));
                }
            }
        }
        if jobs.is_empty() {
            return Builds::default();
        }
        let root = ws.root.clone();
        let project = ws.project.name.clone();
        let masker = masker.clone();
        tokio::spawn(async move {
            for (argv, dir, job) in jobs {
                let command = argv.join(" ");
                on(BuildEvent::Started {
                    command: command.clone(),
                    dir: dir.clone(),
                });
                let built = match inside(&root, &dir) {
                    Ok(folder) => run(&argv, &folder, &project, &masker).await,
                    Err(message) => Built::Failed {
                        message,
                        output: Vec::new(),
                    },
                };
                on(BuildEvent::Finished {
                    command,
                    built: built.clone(),
                });
                job.publish(built);
            }
        });
        Builds { by_service }
    }

    /// Whether any build was started.
    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty()
    }

    /// Whether `service`'s build is still running (or waiting for another build to finish).
    pub fn pending(&self, service: &str) -> bool {
        self.by_service.pending(service)
    }

    /// Waits for `service`'s build; `None` when it has none (or the builds were dropped).
    pub async fn wait(&self, service: &str) -> Option<Built> {
        self.by_service.wait(service).await
    }
}

/// The folder `dir` (relative to `root`) as a real path, when it is a folder inside the
/// repository; a symbolic link out of it is refused, as a template outside it is.
fn inside(root: &std::path::Path, dir: &str) -> Result<std::path::PathBuf, String> {
    let folder = root.join(dir);
    let shown = if dir.is_empty() { "." } else { dir };
    let real = match folder.canonicalize() {
        Ok(p) => p,
        Err(_) => {
            return Err(format!(
                "its folder {shown} does not exist: fix the service's acceptance.build-dir"
            ));
        }
    };
    if !real.is_dir() {
        return Err(format!(
            "{shown} is not a folder: fix the service's acceptance.build-dir"
        ));
    }
    match root.canonicalize() {
        Ok(r) if real.starts_with(&r) => Ok(real),
        _ => Err(format!(
            "its folder {shown} leads out of the repository (to {}): a build runs inside it",
            real.display()
        )),
    }
}

/// Runs one build command in `dir`: without the stage's variables (a build is stage
/// independent), its output captured and masked. A run that ends (or is aborted) before its
/// build does stops the whole build: cargo and the compilers it started share a process group.
async fn run(argv: &[String], dir: &std::path::Path, project: &str, masker: &Masker) -> Built {
    let t0 = Instant::now();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(dir);
    for k in ferry_env::inherited_stage_variables() {
        cmd.env_remove(k);
    }
    cmd.env(ferry_env::PROJECT, project)
        .envs(ferry_env::NO_AWS_SETUP);
    let ran = match crate::process::run_captured(cmd, None, KEPT_LINES).await {
        Ok(r) => r,
        Err(e) => {
            return Built::Failed {
                message: format!(
                    "`{}` could not start: {e}; is it installed and on PATH?",
                    argv[0]
                ),
                output: Vec::new(),
            };
        }
    };
    match ran.ended {
        Ended::Exited(s) if s.success() => Built::Ok { took: t0.elapsed() },
        Ended::Exited(s) => Built::Failed {
            message: masker.mask(&format!("`{}` {s}", argv.join(" "))),
            output: ran.lines.iter().map(|l| masker.mask(l)).collect(),
        },
        Ended::TimedOut(_) | Ended::Lost(_) | Ended::Stopped => Built::Failed {
            message: masker.mask(&format!("`{}` could not be awaited", argv.join(" "))),
            output: Vec::new(),
        },
    }
}
