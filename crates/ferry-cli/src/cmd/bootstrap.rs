//! `bootstrap`: the stack a stage needs before Ferry deploys to it (artifact bucket, deployer
//! role, notification topic, optionally a CodeBuild project), deployed with Ferry's own engine
//! and left alone when it is already what it should be.

use std::time::Duration;

use anyhow::Context as _;
use ferry_manifest::Stage;
use ferry_stacks::Engine;

use crate::Ctx;
use crate::context::runtime;
use crate::ui::{Clock, table};

#[derive(Debug, clap::Args)]
pub struct BootstrapArgs {
    /// The stage, or `*` for the preview stages (they share [stages."*"])
    stage: String,
    /// A principal the deployer role trusts (repeatable): the role or user your CI or you
    /// deploy as, e.g. arn:aws:iam::111111111111:role/ci
    #[arg(long, value_name = "ARN")]
    trust: Vec<String>,
    /// Also make a CodeBuild project building this repository (e.g.
    /// https://github.com/acme/shop.git), triggered by the [ci] rules that name the stage
    #[arg(long, value_name = "REPOSITORY")]
    codebuild: Option<String>,
    /// Write the template to standard output instead of deploying it (no AWS call)
    #[arg(long)]
    print: bool,
    /// How long Ferry waits for the stack, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 1800, value_parser = crate::ui::timeout_secs())]
    timeout: u64,
}

pub fn run(ctx: &Ctx, args: &BootstrapArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let stage = if args.stage == "*" {
        ferry_deploy::previews::preview_access(ws)?
    } else {
        ws.stage(&args.stage)?
    };
    // Every preview shares one bootstrap, `*`'s: one made under a preview's name was tagged
    // for that preview, and `bootstrap '*'` then refused it for good.
    if stage.preview && args.stage != "*" {
        return Err(crate::UsageError(format!(
            "`{}` is no stage of ferry.toml but a preview stage, and every preview shares one bootstrap: run `{} bootstrap '*'` (quoted, so the shell leaves the `*`){}",
            args.stage,
            ctx.app.name,
            ws.misspelt_stage_hint(&stage)
        ))
        .into());
    }
    // The bootstrap stack grants what every later deploy may do, previews' included: never
    // deployed from a pull request's build (`--print` only writes the template).
    if !args.print {
        ctx.ci().check_may_change("bootstrap", &stage.name, false)?;
    }
    let options = ferry_bootstrap::Options {
        trust: args.trust.clone(),
        codebuild: args.codebuild.clone(),
    };
    let b = ferry_bootstrap::plan(ws, &stage, &options).map_err(|e| match e {
        // Naming nobody to trust is a command line that names too little.
        ferry_bootstrap::BootstrapError::NoTrust => crate::UsageError(e.to_string()).into(),
        e => anyhow::Error::new(e),
    })?;
    let body = b.body();
    // The permissions, for review, every time.
    let rows: Vec<[String; 3]> = b
        .permissions
        .iter()
        .map(|p| {
            let why = if p.deny {
                format!("DENY {}", p.why)
            } else {
                p.why.clone()
            };
            let on = match &p.condition {
                Some(c) => format!("{} when {c}", p.resources.join(" ")),
                None => p.resources.join(" "),
            };
            [why, p.actions.join(" "), on]
        })
        .collect();
    eprint!("{}", table(["DEPLOYER ROLE MAY", "ACTIONS", "ON"], &rows));
    for n in &b.notes {
        eprintln!("note: {n}");
    }
    if args.print {
        print!("{body}");
        return Ok(());
    }
    runtime()?.block_on(deploy(ctx, &stage, &b, &body, args.timeout))
}

async fn deploy(
    ctx: &Ctx,
    stage: &Stage,
    b: &ferry_bootstrap::Bootstrap,
    body: &str,
    timeout: u64,
) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let clock = Clock::start();
    // The role does not exist before its bootstrap: the base credentials deploy it.
    let mut base = stage.clone();
    base.config.role_arn = None;
    base.config.external_id = None;
    let aws = ctx.aws(&base).await?;
    let engine = Engine::for_config(
        &aws.config,
        ferry_stacks::DeployOptions {
            timeout: Duration::from_secs(timeout),
            emulator: ctx.local.then_some(ferry_stacks::EMULATOR_BUSY_WAIT),
            ..Default::default()
        },
    );
    let name = &b.stack_name;
    let applied = ferry_deploy::bootstrap::apply(&engine, ws, stage, b, body, &|p| {
        if let ferry_stacks::Progress::Event(e) = &p {
            clock.say(&format!("{name}: {} {}", e.logical_id, e.status));
        }
    })
    .await
    .with_context(|| format!("the bootstrap of stage `{}` failed", stage.name))?;
    match applied.action {
        None => clock.say(&format!("{name}: up to date: nothing written")),
        Some(action) => clock.say(&format!("{name}: {}", format!("{action:?}").to_lowercase())),
    }
    for (k, v) in &applied.outputs {
        println!("{k} = {v}");
    }
    let todo = ferry_bootstrap::suggestions(ws, stage, &applied.outputs);
    if !todo.settings.is_empty() {
        println!(
            "set in ferry.toml under [stages.{}]: {}",
            todo.table,
            todo.settings.join(", ")
        );
    }
    if let Some(topic) = todo.sns_topic {
        println!("announce to it with [notifications] sns-topic = \"{topic}\"");
    }
    Ok(())
}
