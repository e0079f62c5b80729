//! Commands about one stage's AWS access: `whoami`, `param`, `exec`.

use std::io::IsTerminal;

use anyhow::Context as _;
use ferry_credentials::ssm;

use crate::Ctx;
use crate::context::runtime;
use crate::ui::{masker, table};

#[derive(Debug, clap::Args)]
pub struct WhoamiArgs {
    /// The stage whose identity to show
    stage: String,
}

pub fn whoami(ctx: &Ctx, args: &WhoamiArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let (stage, aws) = ctx.stage_aws(&args.stage).await?;
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
        /// The stage whose parameters-path a relative name is under
        stage: String,
        /// Name relative to the stage's parameters-path, or absolute (starting with '/')
        name: String,
        /// Store it encrypted (SecureString)
        #[arg(long)]
        secure: bool,
        /// Replace an existing value
        #[arg(long)]
        overwrite: bool,
        /// (A value given here is refused, unshown: it is read from standard input only.)
        #[arg(hide = true, num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
        value_on_command_line: Vec<String>,
    },
    /// Print one parameter's value (SecureString values hidden unless --show-secrets)
    Get {
        /// The stage whose credentials read it (and whose parameters-path a relative name is
        /// under)
        stage: String,
        /// Name relative to the stage's parameters-path, or absolute (starting with '/'); a
        /// `:VERSION` or `:LABEL` selects one version
        name: String,
        /// Print a SecureString's value instead of hiding it
        #[arg(long)]
        show_secrets: bool,
    },
    /// List the parameters under the stage's parameters-path
    List {
        /// The stage whose parameters-path to list
        stage: String,
        /// Print SecureString values instead of hiding them
        #[arg(long)]
        show_secrets: bool,
    },
}

/// A parameter's value as printed: a SecureString's hidden, and any other masked like every
/// output (a stack may copy a secret into a String parameter), unless `--show-secrets`.
fn shown(p: &ssm::Parameter, show_secrets: bool) -> String {
    match (p.secure, show_secrets) {
        (_, true) => p.value.clone(),
        (true, false) => "(secure; --show-secrets to show)".to_string(),
        (false, false) => masker().mask(&p.value),
    }
}

pub fn param(ctx: &Ctx, cmd: &ParamCmd) -> anyhow::Result<()> {
    let rt = runtime()?;
    let ws = ctx.workspace()?;
    match cmd {
        ParamCmd::Set { stage, name, secure, overwrite, value_on_command_line } => {
            // Never repeated in the error: a value typed here is in the shell's history and the
            // process list already, and must not be in the build log too.
            if !value_on_command_line.is_empty() {
                return Err(crate::UsageError(format!(
                    "param set takes the value from standard input only, never from the command line (where other processes and logs see it; it is not shown here): printf %s \"$VALUE\" | {} param set {stage} {name}",
                    ctx.app.name
                ))
                .into());
            }
            // `NAME=value` or `NAME value` in one argument: a value, never repeated in the error.
            if let Some(at) = name.find(|c: char| c == '=' || c.is_whitespace()) {
                return Err(crate::UsageError(format!(
                    "the name `{}…` is followed by {} (not shown): a value given with the name is refused; param set takes the value from standard input only: printf %s \"$VALUE\" | {} param set {stage} {}",
                    &name[..at],
                    if name[at..].starts_with('=') { "`=` and more" } else { "a space and more" },
                    ctx.app.name,
                    &name[..at]
                ))
                .into());
            }
            // The name is checked before the value is read or anything is sent.
            let target = ws.stage(stage)?;
            let full = ssm::full_name(&target, name)?;
            if let Some(whose) = ws.records_parameter_of(&full) {
                anyhow::bail!(
                    "`{full}` is Ferry's own parameter (a deployment record, health mark, batch node's mark or lock of {whose}): `param set` does not write it. A record Ferry cannot read is deleted to start afresh (`aws ssm delete-parameter --name {full}`); a stale lock is taken over with --force-unlock"
                );
            }
            ctx.ci().check_may_write_parameter(
                &target.name,
                target.preview,
                &full,
                target.config.parameters_path.as_deref(),
                &ws.named_stage_paths(),
            )?;
            // Another stage's parameter, written with this stage's credentials (a developer's
            // own, broad ones: `param set dev /shop/prod/db-password` replaced protected prod's
            // secret, unsaid).
            if let Some(owner) = ws.parameter_of_another_stage(&target, &full) {
                let (as_whose, writer) = match &owner.stage {
                    Some(name) => ("that stage's".to_string(), name.clone()),
                    None => (
                        "a preview's (every preview reads it)".to_string(),
                        "<preview>".to_string(),
                    ),
                };
                anyhow::bail!(
                    "`{full}` lies under {} parameters-path ({}): `param set {}` would write another stage's parameter with stage `{}`'s credentials; write it as {as_whose}: `{} param set {writer} {full}`",
                    owner.whose(),
                    owner.path,
                    target.name,
                    target.name,
                    ctx.app.name
                );
            }
            let typed = std::io::stdin().is_terminal();
            if typed {
                let shown = if *secure { " (not shown as you type)" } else { "" };
                eprintln!("type the value{shown}, then Ctrl-D (or pipe it in: printf %s \"$VALUE\" | {} param set …)", ctx.app.name);
            }
            let value = if typed && *secure {
                crate::ui::read_hidden(&rt)?
            } else {
                crate::ui::read_value(std::io::stdin())?
            };
            let value = value.as_str();
            if value.is_empty() {
                anyhow::bail!("no value on standard input; pipe it in, e.g. printf %s \"$VALUE\" | {} param set {stage} {name}", ctx.app.name);
            }
            if *secure {
                masker().register(value);
            }
            rt.block_on(async {
                let (stage, aws) = ctx.stage_aws(stage).await?;
                let full = ssm::full_name(&stage, name)?;
                let client = ssm::client(&aws.config);
                let version = ssm::put(&client, &stage.name, &full, value, *secure, *overwrite).await?;
                let kind = if *secure { "SecureString" } else { "String" };
                println!("{full} written ({kind}, version {version})");
                Ok(())
            })
        }
        ParamCmd::Get { stage, name, show_secrets } => rt.block_on(async {
            ssm::full_name_to_read(&ws.stage(stage)?, name)?;
            let (stage, aws) = ctx.stage_aws(stage).await?;
            let full = ssm::full_name_to_read(&stage, name)?;
            let client = ssm::client(&aws.config);
            let p = ssm::get(&client, &stage.name, &full, masker()).await?;
            // A String may hold a SecureString's value (a stack copies one into it): the
            // stage's secrets are read first, so that it is masked as `param list` masks it.
            if !p.secure
                && !show_secrets
                && let Some(path) = &stage.config.parameters_path
            {
                let secrets = ssm::load_path(&client, &stage.name, path, masker())
                    .await
                    .with_context(|| {
                        format!("failed to read the SecureStrings under {path}, which `param get` masks in what it prints; --show-secrets prints the value as it is")
                    })?;
                ssm::register_histories(&client, &stage.name, &secrets, masker())
                    .await
                    .with_context(|| {
                        format!("failed to read the earlier values of the SecureStrings under {path}, which `param get` masks in what it prints; --show-secrets prints the value as it is")
                    })?;
            }
            println!("{}", shown(&p, *show_secrets));
            Ok(())
        }),
        ParamCmd::List { stage, show_secrets } => rt.block_on(async {
            let (stage, aws) = ctx.stage_aws(stage).await?;
            let path = stage.config.parameters_path.clone().with_context(|| {
                format!("stage `{}` has no parameters-path; set it in ferry.toml, e.g. parameters-path = \"/shop/{}/\"", stage.name, stage.id)
            })?;
            let client = ssm::client(&aws.config);
            let params = ssm::load_path(&client, &stage.name, &path, masker()).await?;
            // A String may hold a secret's earlier value (a stack copied it before a rotation).
            if !show_secrets {
                ssm::register_histories(&client, &stage.name, &params, masker())
                    .await
                    .with_context(|| {
                        format!("failed to read the earlier values of the SecureStrings under {path}, which `param list` masks in what it prints; --show-secrets prints the values as they are")
                    })?;
            }
            let rows: Vec<[String; 4]> = params
                .iter()
                .map(|p| {
                    let kind = if p.secure { "SecureString" } else { "String" };
                    [p.name.clone(), kind.to_string(), p.version.to_string(), shown(p, *show_secrets)]
                })
                .collect();
            print!("{}", table(["NAME", "TYPE", "VERSION", "VALUE"], &rows));
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

pub fn exec(ctx: &Ctx, args: &ExecArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let project = &ws.project.name;
    // The command gets the stage's credentials, and may change anything they allow.
    let target = ws.stage(&args.stage)?;
    ctx.ci()
        .check_may_change("exec", &target.name, target.preview)?;
    let (stage, env) = runtime()?.block_on(async {
        let (stage, aws) = ctx.stage_aws(&args.stage).await?;
        // The SecureStrings the services read, wherever they lie: the command may print one
        // (before, only those under the stage's parameters-path were masked).
        ctx.register_secrets(&stage, &aws).await?;
        let env = ferry_credentials::env::exec_env(&aws.config, project, &stage, masker()).await?;
        anyhow::Ok((stage, env))
    })?;
    // A value written by another tool may hold what no environment variable can (a NUL byte):
    // named, never shown (the spawn's own error named nothing).
    if let Some((var, _)) = env.iter().find(|(_, v)| v.contains('\0')) {
        anyhow::bail!(
            "{var} would hold a NUL byte, which no environment variable can: nothing was run; give its parameter of stage `{}` another value (`param set`)",
            stage.name
        );
    }
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut command = std::process::Command::new(program);
    command.args(rest);
    for var in ferry_credentials::env::not_inherited(&env) {
        command.env_remove(var);
    }
    command.envs(env);
    // The command holds the stage's credentials: Ferry stays with it until it ends. SIGTERM (a
    // CI runner stopping the job), SIGINT (Ctrl-C; GitHub Actions cancels with it first) and
    // SIGHUP (a closed terminal) are passed on to it, and Ferry goes on relaying its masked
    // output and waits for it (a second SIGINT kills it, as a second Ctrl-C is meant to). In a
    // process group of its own, it gets each signal once, from
    // Ferry (a terminal's Ctrl-C reaches Ferry's group alone); its standard input is
    // `/dev/null`, so it never needs the terminal. Before, SIGINT and SIGHUP ended Ferry at once
    // and left the command running on its own, or cut the pipe its cleanup wrote to.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let rt = runtime()?;
    let _forward: Vec<crate::lock::AbortOnDrop<()>> = [
        (
            tokio::signal::unix::SignalKind::terminate(),
            rustix::process::Signal::TERM,
        ),
        (
            tokio::signal::unix::SignalKind::interrupt(),
            rustix::process::Signal::INT,
        ),
        (
            tokio::signal::unix::SignalKind::hangup(),
            rustix::process::Signal::HUP,
        ),
    ]
    .into_iter()
    .map(|(kind, sig)| {
        let mut watched = rt
            .block_on(async { tokio::signal::unix::signal(kind) })
            .with_context(|| format!("failed to watch for {sig:?}"))?;
        let child = child.clone();
        anyhow::Ok(crate::lock::AbortOnDrop(rt.spawn(async move {
            let mut times = 0;
            while watched.recv().await.is_some() {
                times += 1;
                let pid = child.load(std::sync::atomic::Ordering::SeqCst);
                if let Some(pid) = i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    // A second Ctrl-C stops a command that does not end on the first, as a
                    // terminal user expects; any other signal is passed on as it comes.
                    let sig = if sig == rustix::process::Signal::INT && times > 1 {
                        rustix::process::Signal::KILL
                    } else {
                        sig
                    };
                    // Its group: what it started gets the signal too, as from a terminal.
                    let _ = rustix::process::kill_process_group(pid, sig);
                }
            }
        })))
    })
    .collect::<anyhow::Result<_>>()?;
    let (status, tail) = ferry_credentials::env::run_masked(
        &mut command,
        masker(),
        crate::ui::Output::stdout(),
        crate::ui::Output::stderr(),
        10,
        |pid| child.store(pid, std::sync::atomic::Ordering::SeqCst),
    )
    .with_context(|| format!("failed to run `{program}` for stage `{}`", stage.name))?;
    if !status.success() {
        // The lines are masked as they were read; the status is the operating system's.
        let command = masker().mask(&args.command.join(" "));
        return Err(crate::MaskedError(if tail.is_empty() {
            format!("`{command}` {status} (it printed nothing)")
        } else {
            format!(
                "`{command}` {status}; its last lines:\n  {}",
                tail.join("\n  ")
            )
        })
        .into());
    }
    Ok(())
}
