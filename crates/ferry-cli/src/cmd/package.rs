//! `package`: the immutable artifacts of the current commit (or dirty tree).

use std::path::Path;

use anyhow::Context as _;

use crate::Ctx;
use crate::context::runtime;
use crate::ui::{Clock, human, mask, package_event, table};

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// Only these services (repeatable) [default: all]
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    /// Also upload to this stage's artifact bucket (deploy uploads on its own otherwise)
    #[arg(long, value_name = "STAGE")]
    upload: Option<String>,
    /// Print the package manifest as JSON instead of a table
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: &PackageArgs) -> anyhow::Result<()> {
    let clock = Clock::start();
    let ws = ctx.workspace()?;
    ctx.check_services(&args.services)?;
    let services = if args.services.is_empty() {
        ws.services.iter().map(|s| s.name.clone()).collect()
    } else {
        args.services.clone()
    };
    let req = ferry_deploy::package_request(ws, services, ctx.ci())?;
    ctx.output_dir()?;
    let dir = ws.layout().package();
    let on = |e: ferry_package::Event| clock.say(&package_event(&e));
    let manifest = match &args.upload {
        None => ferry_package::package(ws, &dir, &req, &mask, &on)
            .context("packaging failed; nothing was uploaded")?,
        Some(stage) => runtime()?.block_on(async {
            let (stage, aws) = ctx.stage_aws(stage).await?;
            let options = ferry_deploy::PrepareOptions {
                request: req.clone(),
                dir: &dir,
                create_bucket: ctx.local,
                // No lock and no signal handling here: a signal ends the process.
                cancel: &ferry_graph::Cancel::new(),
            };
            let p = ferry_deploy::prepare(ws, &stage, &aws.config, &options, &mask, &on)
                .await
                .context("packaging or uploading failed")?;
            eprintln!(
                "upload to {}: {} object(s) sent ({}), {} already there",
                p.bucket.as_deref().unwrap_or("(no bucket needed)"),
                p.upload.uploaded,
                human(p.upload.bytes),
                p.upload.present
            );
            anyhow::Ok(p.manifest)
        })?,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&manifest).expect("manifest serializes")
        );
    } else {
        print!("{}", manifest_table(&manifest, &req.services, &dir));
    }
    eprintln!(
        "package {}{} in {:.2}s",
        manifest.id,
        if manifest.dirty {
            " (uncommitted changes: never reused for the commit)"
        } else {
            ""
        },
        clock.seconds()
    );
    Ok(())
}

/// One row per artifact of each service: its template, its zips, its site.
fn manifest_table(m: &ferry_package::PackageManifest, services: &[String], dir: &Path) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    for name in services {
        let Some(sp) = m.services.get(name) else {
            continue;
        };
        rows.push([
            name.clone(),
            "template".into(),
            human(sp.template_size),
            sp.template_sha256[..16].to_string(),
        ]);
        for a in &sp.artifacts {
            rows.push([
                String::new(),
                a.resource.clone(),
                human(a.size),
                a.sha256[..16].to_string(),
            ]);
        }
        if let Some(site) = &sp.site {
            let size: u64 = site.files.iter().map(|f| f.size).sum();
            rows.push([
                String::new(),
                format!("site ({} files)", site.files.len()),
                human(size),
                site.sha256[..16].to_string(),
            ]);
        }
    }
    let mut out = table(["SERVICE", "ARTIFACT", "SIZE", "SHA-256"], &rows);
    out.push_str(&format!(
        "manifest: {}\n",
        ferry_package::package_dir(dir, &m.id)
            .join("manifest.json")
            .display()
    ));
    out
}
