//! Commands that talk to AWS: `whoami`, `param`, `exec`; and the stage access they share.

use std::io::{IsTerminal, Read};

use anyhow::Context as _;
use ferry_credentials::config::Target;
use ferry_credentials::{StageAws, ssm};
use ferry_manifest::Stage;

use crate::{Ctx, masker};

/// A runtime for one command's AWS calls.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// Where this run's AWS calls go: the local emulator with `--local` (started if needed), else
/// the default chain (which honours `AWS_ENDPOINT_URL`).
pub fn target(ctx: &Ctx) -> anyhow::Result<Target> {
    if !ctx.local {
        return Ok(Target::default());
    }
    let emu = ctx.emulator();
    emu.ensure_installed(|step| eprintln!("local: {step}"))
        .context("failed to install the local AWS emulator")?;
    let (state, started) = emu
        .up(0)
        .context("failed to start the local AWS emulator")?;
    if started {
        eprintln!(
            "local: started the AWS emulator at {} (stop it with `cargo xtask local down`)",
            state.endpoint()
        );
    }
    Ok(Target {
        local_endpoint: Some(state.endpoint()),
    })
}

/// The stage's deployment records and lock (SSM, under its records path).
pub fn record_store(
    ws: &ferry_manifest::Workspace,
    stage: &Stage,
    config: &aws_config::SdkConfig,
) -> ferry_records::RecordStore {
    ferry_records::RecordStore::new(
        aws_sdk_ssm::Client::new(config),
        &stage.name,
        &ws.records_path(stage),
    )
}

/// Registers every SecureString the stage's services reference with the masker, so that a
/// secret that reappears (a stack output that echoes it) is masked in everything printed or
/// written.
pub async fn register_secrets(
    ws: &ferry_manifest::Workspace,
    stage: &Stage,
    config: &aws_config::SdkConfig,
) -> anyhow::Result<()> {
    ferry_deploy::register_secrets(ws, stage, config, masker())
        .await
        .context("failed to read the SSM parameters the services reference")?;
    Ok(())
}

/// The stage and its AWS access (role assumed, identity checked).
pub async fn stage_aws(
    ctx: &Ctx,
    ws: &ferry_manifest::Workspace,
    stage: &str,
) -> anyhow::Result<(Stage, StageAws)> {
    let stage = ws.stage(stage)?;
    let aws = aws_of(ctx, &stage).await?;
    Ok((stage, aws))
}

/// The AWS access of a resolved stage.
pub async fn aws_of(ctx: &Ctx, stage: &Stage) -> anyhow::Result<StageAws> {
    let target = target(ctx)?;
    let base = ferry_credentials::base_config(&stage.config.region, &target).await;
    let build_id = ferry_ci::CiContext::from_env().build_id;
    ferry_credentials::stage_config(stage, &base, build_id.as_deref())
        .await
        .with_context(|| format!("failed to get AWS access for stage `{}`", stage.name))
}

#[derive(Debug, clap::Args)]
pub struct WhoamiArgs {
    /// The stage whose identity to show
    stage: String,
}

pub fn whoami(ctx: &Ctx, args: &WhoamiArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    runtime()?.block_on(async {
        let (stage, aws) = stage_aws(ctx, &ws, &args.stage).await?;
        let endpoint = match aws.config.endpoint_url() {
            Some(e) if ctx.local => format!("{e} (local emulator)"),
            Some(e) => e.to_string(),
            None => "AWS (default endpoints)".to_string(),
        };
        let role = match &aws.role_arn {
            Some(r) => format!("{r} (assumed)"),
            None => "-".to_string(),
        };
        let rows = [
            [
                "stage".to_string(),
                if stage.preview {
                    format!("{} (preview, id {})", stage.name, stage.id)
                } else {
                    stage.name.clone()
                },
            ],
            ["account".to_string(), aws.identity.account.clone()],
            ["arn".to_string(), aws.identity.arn.clone()],
            ["region".to_string(), stage.config.region.clone()],
            ["endpoint".to_string(), endpoint],
            ["role".to_string(), role],
        ];
        for [k, v] in rows {
            println!("{k:<9} {}", masker().mask(&v));
        }
        Ok(())
    })
}

#[derive(Debug, clap::Subcommand)]
pub enum ParamCmd {
    /// Write a parameter; the value is read from standard input, never from the command line
    /// (e.g. `printf %s "$TOKEN" | cargo xtask param set dev api-token --secure`)
    Set {
        stage: String,
        /// Name relative to the stage's parameters-path, or absolute (starting with '/')
        name: String,
        /// Store it encrypted (SecureString)
        #[arg(long)]
        secure: bool,
        /// Replace an existing value
        #[arg(long)]
        overwrite: bool,
    },
    /// Print one parameter's value (SecureString values hidden unless --show-secrets)
    Get {
        stage: String,
        name: String,
        #[arg(long)]
        show_secrets: bool,
    },
    /// List the parameters under the stage's parameters-path
    List {
        stage: String,
        #[arg(long)]
        show_secrets: bool,
    },
}

fn shown(p: &ssm::Parameter, show_secrets: bool) -> String {
    if p.secure && !show_secrets {
        "(secure; --show-secrets to show)".to_string()
    } else {
        p.value.clone()
    }
}

pub fn param(ctx: &Ctx, cmd: &ParamCmd) -> anyhow::Result<()> {
    let rt = runtime()?;
    let ws = ctx.workspace()?;
    // A parameter's full name under the stage's path; checked before anything is read or sent.
    let full_name = |stage: &Stage, name: &str| -> anyhow::Result<String> {
        if !name.starts_with('/') && stage.config.parameters_path.is_none() {
            return Err(ferry_credentials::CredentialsError::NoParametersPath {
                stage: stage.name.clone(),
                name: name.to_string(),
            }
            .into());
        }
        let full = stage.config.parameter_name(name);
        ferry_manifest::check_ssm_name(&full, false)?;
        Ok(full)
    };
    match cmd {
        ParamCmd::Set { stage, name, secure, overwrite } => {
            full_name(&ws.stage(stage)?, name)?;
            if std::io::stdin().is_terminal() {
                eprintln!("type the value, then Ctrl-D (or pipe it in: printf %s \"$VALUE\" | cargo xtask param set …)");
            }
            let mut value = String::new();
            std::io::stdin().read_to_string(&mut value).context("failed to read the value from standard input")?;
            let value = value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value);
            if value.is_empty() {
                anyhow::bail!("no value on standard input; pipe it in, e.g. printf %s \"$VALUE\" | cargo xtask param set {stage} {name}");
            }
            if *secure {
                masker().register(value);
            }
            rt.block_on(async {
                let (stage, aws) = stage_aws(ctx, &ws, stage).await?;
                let full = full_name(&stage, name)?;
                let client = aws_sdk_ssm::Client::new(&aws.config);
                let version = ssm::put(&client, &stage.name, &full, value, *secure, *overwrite).await?;
                let kind = if *secure { "SecureString" } else { "String" };
                println!("{full} written ({kind}, version {version})");
                Ok(())
            })
        }
        ParamCmd::Get { stage, name, show_secrets } => rt.block_on(async {
            full_name(&ws.stage(stage)?, name)?;
            let (stage, aws) = stage_aws(ctx, &ws, stage).await?;
            let full = full_name(&stage, name)?;
            let client = aws_sdk_ssm::Client::new(&aws.config);
            let p = ssm::get(&client, &stage.name, &full, masker()).await?;
            println!("{}", shown(&p, *show_secrets));
            Ok(())
        }),
        ParamCmd::List { stage, show_secrets } => rt.block_on(async {
            let (stage, aws) = stage_aws(ctx, &ws, stage).await?;
            let path = stage.config.parameters_path.clone().with_context(|| {
                format!("stage `{}` has no parameters-path; set it in ferry.toml, e.g. parameters-path = \"/shop/{}/\"", stage.name, stage.id)
            })?;
            let client = aws_sdk_ssm::Client::new(&aws.config);
            let params = ssm::load_path(&client, &stage.name, &path, masker()).await?;
            let rows: Vec<[String; 4]> = params
                .iter()
                .map(|p| {
                    let kind = if p.secure { "SecureString" } else { "String" };
                    [p.name.clone(), kind.to_string(), p.version.to_string(), shown(p, *show_secrets)]
                })
                .collect();
            print!("{}", crate::services::table(["NAME", "TYPE", "VERSION", "VALUE"], &rows));
            eprintln!("{} parameter(s) under {path}", params.len());
            Ok(())
        }),
    }
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The stage whose credentials, region and parameters the command gets
    stage: String,
    /// The command and its arguments
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// `FERRY_PARAM_<NAME>` for a parameter under the stage's path: `db/password` → `DB_PASSWORD`.
fn param_var(path: &str, name: &str) -> String {
    let rel = name
        .strip_prefix(path.trim_end_matches('/'))
        .unwrap_or(name)
        .trim_start_matches('/');
    let key: String = rel
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("FERRY_PARAM_{key}")
}

pub fn exec(ctx: &Ctx, args: &ExecArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    let ws = ctx.workspace()?;
    let (stage, env) = rt.block_on(async {
        let (stage, aws) = stage_aws(ctx, &ws, &args.stage).await?;
        let mut env = ferry_credentials::env::child_env(&aws.config, &stage.name, masker()).await?;
        env.push(("FERRY_STAGE".into(), stage.name.clone()));
        env.push(("FERRY_STAGE_ID".into(), stage.id.clone()));
        env.push(("FERRY_REGION".into(), stage.config.region.clone()));
        if let Some(path) = &stage.config.parameters_path {
            let client = aws_sdk_ssm::Client::new(&aws.config);
            for p in ssm::load_path(&client, &stage.name, path, masker()).await? {
                env.push((param_var(path, &p.name), p.value));
            }
        }
        anyhow::Ok((stage, env))
    })?;
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut command = std::process::Command::new(program);
    command.args(rest);
    for var in ferry_credentials::env::REPLACED {
        command.env_remove(var);
    }
    command.envs(env);
    let (status, tail) = ferry_credentials::env::run_masked(
        &mut command,
        masker(),
        std::io::stdout(),
        std::io::stderr(),
        10,
    )
    .with_context(|| format!("failed to run `{program}` for stage `{}`", stage.name))?;
    if !status.success() {
        anyhow::bail!(
            "`{}` {status}; its last lines:\n  {}",
            args.command.join(" "),
            tail.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameter_variables() {
        assert_eq!(
            super::param_var("/shop/dev/", "/shop/dev/db/password"),
            "FERRY_PARAM_DB_PASSWORD"
        );
        assert_eq!(
            super::param_var("/shop/dev/", "/shop/dev/admin-email"),
            "FERRY_PARAM_ADMIN_EMAIL"
        );
    }
}
