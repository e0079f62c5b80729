//! `services` and `validate`.

use crate::Ctx;
use crate::ui::table;

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum ListFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    /// Output format; json is a stable contract for scripts
    #[arg(long, value_enum, default_value_t)]
    format: ListFormat,
}

pub fn run(ctx: &Ctx, args: &ServicesArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    match args.format {
        ListFormat::Json => {
            // A struct keeps the documented field order whatever serde_json's features are.
            #[derive(serde::Serialize)]
            struct Entry<'s> {
                name: &'s str,
                dir: &'s str,
                kind: ferry_manifest::ServiceKind,
                template: String,
                depends_on: std::collections::BTreeSet<String>,
                inputs: &'s [String],
                parameters: std::collections::BTreeMap<&'s str, String>,
            }
            let list: Vec<Entry<'_>> = ws
                .services
                .iter()
                .map(|s| Entry {
                    name: &s.name,
                    dir: &s.dir,
                    kind: s.kind,
                    template: s.template_path(),
                    depends_on: s.dependencies(),
                    inputs: &s.inputs,
                    parameters: s
                        .parameters
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.to_string()))
                        .collect(),
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        ListFormat::Text => {
            let rows: Vec<[String; 5]> = ws
                .services
                .iter()
                .map(|s| {
                    let deps: Vec<String> = s.dependencies().into_iter().collect();
                    let deps = if deps.is_empty() {
                        "-".to_string()
                    } else {
                        deps.join(", ")
                    };
                    [
                        s.name.clone(),
                        s.kind.to_string(),
                        s.dir.clone(),
                        deps,
                        s.template.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(["NAME", "KIND", "FOLDER", "DEPENDS ON", "TEMPLATE"], &rows)
            );
        }
    }
    Ok(())
}

pub fn validate(ctx: &Ctx) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let problems = ferry_package::check_templates(ws, &ws.services);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        anyhow::bail!(
            "{} problem(s) in the services' templates (the configuration itself is valid)",
            problems.len()
        );
    }
    // Advice, not errors: a reader of an SSM parameter another service writes, not ordered
    // after it.
    for u in ferry_package::unlinked_ssm_readers(ws) {
        eprintln!("warning: {u}");
    }
    let stages: Vec<&str> = ws
        .stages
        .keys()
        .map(String::as_str)
        .chain(ws.default_stage.as_ref().map(|_| "*"))
        .collect();
    println!(
        "ok: project `{}`, {} service(s), stage(s) {}",
        ws.project.name,
        ws.services.len(),
        stages.join(", ")
    );
    Ok(())
}
