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
    /// Print the package manifest as JSON instead of a table (with --service, those services'
    /// entries only; the manifest file keeps every service's)
    #[arg(long)]
    json: bool,
}

/// Watches for Ctrl-C and SIGTERM on `rt`: the first cancels `cancel`, the next ends the
/// process. Watched until the handle is dropped.
fn watch_signals(
    rt: &tokio::runtime::Runtime,
    cancel: &ferry_graph::Cancel,
) -> anyhow::Result<crate::lock::AbortOnDrop<()>> {
    let _in = rt.enter();
    let (watcher, mut again) = crate::lock::watch_signals(
        cancel,
        "stopping the build that runs, packaging nothing more (again to end at once)",
    )?;
    rt.spawn(async move {
        if let Some(name) = again.recv().await {
            crate::ui::note(&format!("interrupted ({name}) again: ending now"));
            std::process::exit(130);
        }
    });
    Ok(watcher)
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
    // Ctrl-C or SIGTERM (a CI's cancel) stops a running build with its process tree, as a
    // deploy's does, and packages nothing more; a second one ends Ferry at once. Before, the
    // build ran on, writing into the folders of the next package.
    let rt = runtime()?;
    let cancel = ferry_graph::Cancel::new();
    let _watcher = watch_signals(&rt, &cancel)?;
    let manifest = match &args.upload {
        None => ferry_package::package_until(ws, &dir, &req, &mask, &on, &|| cancel.is_cancelled())
            .context("packaging failed; nothing was uploaded")?,
        Some(stage) => rt.block_on(async {
            let (stage, aws) = ctx.stage_aws(stage).await?;
            let options = ferry_deploy::PrepareOptions {
                request: req.clone(),
                dir: &dir,
                create_bucket: ctx.local,
                // No stage lock: packaging and uploading change no stack or record.
                cancel: &cancel,
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
        let mut shown = manifest.clone();
        shown.services.retain(|name, _| req.services.contains(name));
        println!(
            "{}",
            serde_json::to_string_pretty(&shown).expect("manifest serializes")
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
