//! `outputs`: the stack outputs of a stage's services.

use anyhow::Context as _;

use crate::Ctx;
use crate::context::runtime;
use crate::ui::mask;

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum OutputsFormat {
    #[default]
    Text,
    Json,
    /// FERRY_OUTPUT_<SERVICE>_<KEY>=value lines
    Env,
}

#[derive(Debug, clap::Args)]
pub struct OutputsArgs {
    /// The stage whose stacks' outputs to print
    stage: String,
    /// Only these services (repeatable)
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    format: OutputsFormat,
}

pub fn run(ctx: &Ctx, args: &OutputsArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let stage = ws.stage(&args.stage)?;
    ctx.check_services(&args.services)?;
    runtime()?.block_on(async {
        let aws = ctx.aws(&stage).await?;
        // A stack output may echo a secret the services read: masked like all output.
        ctx.register_secrets(&stage, &aws).await?;
        let records = ctx
            .records(&stage, &aws)?
            .read_all()
            .await
            .context("failed to read the stage's deployment records")?;
        let found =
            ferry_deploy::stage_outputs(ws, &stage, &aws.config, &records, &args.services).await;
        let file = found.file.masked(&mask);
        let (text, left_out) = match args.format {
            OutputsFormat::Text => (file.text(), Vec::new()),
            OutputsFormat::Json => (file.json(), Vec::new()),
            OutputsFormat::Env => file.env(),
        };
        print!("{text}");
        let nothing = found.missing.is_empty() && found.unreadable.is_empty();
        if file.services.is_empty() && nothing {
            // On standard error, so a script reading the outputs gets nothing; a preview's
            // name a letter from a named stage's is most likely that stage's, misspelt.
            let hint = ws.misspelt_stage_hint(&stage);
            let of = if args.services.is_empty() {
                String::new()
            } else {
                format!(
                    " of {}",
                    args.services
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            eprintln!(
                "no stack{of} of stage `{}` has been deployed yet{hint}",
                stage.name
            );
        }
        found
            .check_complete()
            .with_context(|| format!("failed to read the outputs of stage `{}`", stage.name))?;
        if !left_out.is_empty() {
            let said: Vec<String> = left_out.iter().map(ToString::to_string).collect();
            anyhow::bail!(
                "left out: {}; read {} with --format json",
                said.join("; "),
                if left_out.len() == 1 { "it" } else { "them" },
            );
        }
        Ok(())
    })
}
