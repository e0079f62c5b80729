//! Finding and running the framework's CLI.

use std::path::Path;

use ferry_acceptance::process::{Ended, run_captured};
use ferry_manifest::Service;

use crate::{Compile, ServerlessError, TAIL};

/// The CLI that compiles `service`, as a user expects it to be found: `serverless-command` from
/// its service.toml; else `node_modules/.bin/serverless` in the service folder or a folder above
/// it, up to the repository root; else `serverless` on PATH.
pub fn find_cli(root: &Path, service: &Service) -> Result<Vec<String>, ServerlessError> {
    if let Some(argv) = &service.serverless_command {
        return Ok(argv.clone());
    }
    let mut dir = root.join(&service.dir);
    // The nearest package.json naming a CLI, for the error when none is installed.
    let mut declared = None;
    loop {
        let bin = dir.join("node_modules/.bin/serverless");
        if bin.is_file() {
            return Ok(vec![bin.to_string_lossy().into_owned()]);
        }
        if declared.is_none() && ferry_manifest::FrameworkCli::named_in(&dir.join("package.json")) {
            declared = dir
                .join("package.json")
                .strip_prefix(root)
                .ok()
                .map(|p| p.to_string_lossy().into_owned());
        }
        if dir == root || !dir.pop() || !dir.starts_with(root) {
            break;
        }
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("serverless").is_file()));
    if on_path {
        return Ok(vec!["serverless".into()]);
    }
    let config = std::fs::read_to_string(root.join(service.template_path())).unwrap_or_default();
    Err(ServerlessError::NoCli {
        service: service.name.clone(),
        dir: service.dir.clone(),
        wants: ferry_manifest::FrameworkCli::of_config(&config),
        declared,
    })
}

/// Runs `service`'s `[package] build` (e.g. `npm install`, which may install the CLI) in its
/// folder, without the stage's variables and credentials, as a package build runs, stopped
/// after its `[package] timeout`.
pub(crate) async fn build(
    root: &Path,
    project: &str,
    service: &Service,
    mask: &(dyn Fn(&str) -> String + Sync),
) -> Result<(), ServerlessError> {
    let timeout = service.package.build_timeout();
    let argv = &service.package.build;
    let shown = mask(&argv.join(" "));
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(root.join(&service.dir));
    for k in ferry_env::inherited_stage_variables() {
        cmd.env_remove(k);
    }
    cmd.env(ferry_env::PROJECT, project)
        .env(ferry_env::SERVICE, &service.name)
        .envs([ferry_env::SOURCE_DATE_EPOCH])
        .envs(ferry_env::NO_AWS_SETUP);
    let ran =
        run_captured(cmd, Some(timeout), 200)
            .await
            .map_err(|e| ServerlessError::NotStarted {
                service: service.name.clone(),
                command: argv[0].clone(),
                message: e.to_string(),
            })?;
    match ran.ended {
        Ended::Exited(s) if s.success() => Ok(()),
        ended => Err(ServerlessError::BuildFailed {
            service: service.name.clone(),
            command: shown,
            status: match ended {
                Ended::Exited(s) => s.to_string(),
                Ended::TimedOut(t) => format!(
                    "stopped after {} s; package.timeout in {} sets how long it may run",
                    t.as_secs(),
                    service.manifest_path()
                ),
                Ended::Lost(e) => format!("waiting for it failed: {e}"),
                Ended::Stopped => "stopped, as the run was cancelled".to_string(),
            },
            tail: tail(&ran.lines, mask),
        }),
    }
}

/// The last lines of a command's output, masked, for a message; and before them, when the
/// first line that says an error ([`ferry_env::says_error`]: `Error:`, `✖ …`, `npm error …`)
/// lies further up (the framework prints its error, then pages of warnings or a stack trace;
/// npm its cause, then its usage), that line and the few after it: the cause, which the last
/// lines alone left out.
fn tail(lines: &[String], mask: &(dyn Fn(&str) -> String + Sync)) -> String {
    let start = lines.len().saturating_sub(TAIL);
    let first = lines[..start]
        .iter()
        .position(|l| ferry_env::says_error(l))
        .map(|first| {
            let end = (first + ferry_env::ERROR_LINES).min(start);
            (&lines[first..end], start - end)
        });
    ferry_env::output_excerpt(first, &lines[start..], &|l| mask(l))
}

/// Runs `argv package …` for `c`, writing into `package_dir`. On success, the last lines it
/// printed (masked), for an error found in what it wrote.
pub(crate) async fn run(
    c: &Compile<'_>,
    argv: &[String],
    package_dir: &Path,
) -> Result<String, ServerlessError> {
    let service = &c.service.name;
    let mut args: Vec<String> = argv[1..].to_vec();
    args.extend([
        "package".into(),
        "--stage".into(),
        c.stage_id.into(),
        "--region".into(),
        c.region.into(),
        "--package".into(),
        package_dir.to_string_lossy().into_owned(),
    ]);
    let mut shown_args = args.clone();
    // A value goes by the environment, which only this user's processes can read, not on the
    // command line, which every process of the machine can (`ps`): the argument names a
    // variable, which the framework resolves as it resolves one written in serverless.yml
    // (a value holding `${` is refused before: the framework would resolve that too). Its
    // end trimmed, as the framework trims a value given on the command line.
    let mut values = Vec::new();
    for (i, (k, v)) in c.parameters.iter().enumerate() {
        let var = format!("{PARAM_VALUE_PREFIX}{i}");
        args.push("--param".into());
        args.push(format!("{k}=${{env:{var}}}"));
        values.push((var, v.trim_end()));
        // Shown by name only: a value may be a secret the masker does not know (a password in
        // a URL kept in an SSM String parameter, a stack output).
        shown_args.push("--param".into());
        shown_args.push(format!("{k}=…"));
    }
    let shown = (c.mask)(&format!("{} {}", argv[0], shown_args.join(" ")));
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&args).current_dir(c.root.join(&c.service.dir));
    for var in ferry_credentials::env::not_inherited(c.env) {
        cmd.env_remove(var);
    }
    cmd.envs(c.env.iter().map(|(k, v)| (k, v)))
        .envs(values)
        .env(ferry_env::PROJECT, c.project)
        .env(ferry_env::SERVICE, service)
        .env("SLS_TELEMETRY_DISABLED", "1")
        .env("SLS_NOTIFICATIONS_MODE", "off")
        .env("SLS_INTERACTIVE_SETUP_DISABLE", "1")
        // The AWS SDK inside the CLI warns about Node versions on every call.
        .env("AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED", "true")
        // Archives whose tools honour it embed no build time.
        .envs([ferry_env::SOURCE_DATE_EPOCH]);
    let ran =
        run_captured(cmd, Some(c.timeout), 200)
            .await
            .map_err(|e| ServerlessError::NotStarted {
                service: service.clone(),
                command: argv[0].clone(),
                message: e.to_string(),
            })?;
    let tail = || tail(&ran.lines, c.mask);
    match &ran.ended {
        Ended::Exited(s) if s.success() => Ok(tail()),
        Ended::Exited(s) => Err(ServerlessError::Failed {
            service: service.clone(),
            command: shown,
            status: s.to_string(),
            tail: tail(),
        }),
        Ended::Lost(e) => Err(ServerlessError::Failed {
            service: service.clone(),
            command: shown,
            status: format!("waiting for it failed: {e}"),
            tail: tail(),
        }),
        Ended::Stopped => Err(ServerlessError::Failed {
            service: service.clone(),
            command: shown,
            status: "stopped, as the run was cancelled".to_string(),
            tail: tail(),
        }),
        Ended::TimedOut(after) => Err(ServerlessError::TimedOut {
            service: service.clone(),
            command: shown,
            secs: after.as_secs(),
            tail: tail(),
        }),
    }
}

/// Prefix of the variables that hold the `--param` values of a compile, numbered in the
/// parameters' order: `--param Table=${env:FERRY_SERVERLESS_PARAM_0}`.
pub const PARAM_VALUE_PREFIX: &str = "FERRY_SERVERLESS_PARAM_";

/// The stack name the framework used, from the `serverless-state.json` it wrote:
/// `provider.stackName`, else `<service>-<stage>`, where the stage is the `--stage` Ferry passed
/// (the state's `provider.stage` keeps the configuration's default, `dev`, whatever the option).
pub(crate) fn stack_name_of(package_dir: &Path, stage: &str) -> Option<String> {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(package_dir.join("serverless-state.json")).ok()?)
            .ok()?;
    let service = &state["service"];
    if let Some(n) = service["provider"]["stackName"].as_str() {
        return Some(n.to_string());
    }
    let name = service["service"]
        .as_str()
        .or_else(|| service["service"]["name"].as_str())?;
    Some(format!("{name}-{stage}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The framework's error, printed above pages of other lines, is shown with the last lines:
    /// the message held only noise.
    #[test]
    fn a_failure_shows_the_error_above_the_last_lines() {
        let mut lines: Vec<String> =
            vec!["Packaging".into(), "Error:".into(), "THE REAL CAUSE".into()];
        lines.extend((1..=30).map(|i| format!("noise {i}")));
        let shown = tail(&lines, &|l: &str| l.replace("CAUSE", "C*"));
        let got: Vec<&str> = shown.lines().collect();
        assert_eq!(got[0], "  | Error:");
        assert_eq!(got[1], "  | THE REAL C*");
        assert_eq!(got[8], "  | … (4 lines)");
        assert_eq!(got[9], "  | noise 11");
        assert_eq!(got.last(), Some(&"  | noise 30"));
        // Short output, or an error among the last lines: the last lines alone.
        let short: Vec<String> = vec!["Error: x".into(), "y".into()];
        assert_eq!(
            tail(&short, &|l: &str| l.to_string()),
            "  | Error: x\n  | y"
        );
    }
}
