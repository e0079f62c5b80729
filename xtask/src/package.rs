//! `package`: the immutable artifacts of the current commit (or dirty tree).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use ferry_changes::{Repo, ServiceInputs};
use ferry_ci::CiContext;
use ferry_manifest::Workspace;
use ferry_package::{Event, PackageRequest};

use crate::aws::{runtime, stage_aws};
use crate::{Ctx, masker};

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

/// Where packages live: `target/ferry/package` of the repository.
pub fn package_dir(ws: &Workspace) -> PathBuf {
    ws.root.join(ferry_manifest::OUTPUT_DIR).join("package")
}

/// The package request for `services` of the working tree: the commit's id when the tree is
/// clean, a distinct one when it is dirty; input keys from git tree ids where they are exact.
pub fn request(
    ws: &Workspace,
    services: Vec<String>,
    ci: &CiContext,
) -> anyhow::Result<PackageRequest> {
    let inputs: Vec<ServiceInputs> = ws
        .services
        .iter()
        .map(|s| ServiceInputs {
            name: s.name.clone(),
            dir: s.dir.clone(),
            inputs: s.inputs.clone(),
        })
        .collect();
    match Repo::open(&ws.root) {
        Ok(repo) => {
            let snap = repo
                .snapshot(&inputs, &ws.project.global_inputs)
                .context("failed to read the state of the working tree")?;
            Ok(PackageRequest {
                id: snap.id,
                commit: snap.commit,
                dirty: snap.dirty,
                services,
                input_keys: snap.input_keys,
            })
        }
        // No repository (e.g. a CodePipeline source zip): nothing tells whether files changed,
        // so the package is made afresh under an id of its own.
        Err(_) => {
            let commit = ci.commit.clone().unwrap_or_else(|| "unversioned".into());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Ok(PackageRequest {
                id: format!("{commit}-nogit-{now}"),
                commit,
                dirty: false,
                services,
                input_keys: Default::default(),
            })
        }
    }
}

/// A progress line for a packaging event.
pub fn describe(e: &Event) -> String {
    match e {
        Event::Kept { service } => format!("{service}: already in this package"),
        Event::Reused { service } => {
            format!("{service}: inputs unchanged (same git trees): package reused, nothing built")
        }
        Event::Building { service, command } => format!("{service}: building: {command}"),
        Event::Zipped {
            service,
            resource,
            files,
            size,
            sha256,
        } => format!(
            "{service}: {resource}: {files} files, {} ({})",
            human(*size),
            &sha256[..12]
        ),
        Event::Packaged { service } => format!("{service}: packaged"),
    }
}

pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

pub fn print_event(t0: Instant) -> impl Fn(Event) {
    move |e| {
        eprintln!(
            "[{:>6.1}s] {}",
            t0.elapsed().as_secs_f64(),
            masker().mask(&describe(&e))
        )
    }
}

fn mask(s: &str) -> String {
    masker().mask(s)
}

pub fn run(ctx: &Ctx, args: &PackageArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let ws = ctx.workspace()?;
    for s in &args.services {
        if ws.service(s).is_none() {
            anyhow::bail!(
                "unknown service `{s}`{}",
                ferry_manifest::did_you_mean(s, ws.services.iter().map(|x| x.name.as_str()))
            );
        }
    }
    let services = if args.services.is_empty() {
        ws.services.iter().map(|s| s.name.clone()).collect()
    } else {
        args.services.clone()
    };
    let ci = CiContext::from_env();
    let req = request(&ws, services, &ci)?;
    crate::output_dir(&ws)?;
    let dir = package_dir(&ws);
    let manifest = match &args.upload {
        None => ferry_package::package(&ws, &dir, &req, &mask, &print_event(t0))
            .context("packaging failed; nothing was uploaded")?,
        Some(stage) => runtime()?.block_on(async {
            let (stage, aws) = stage_aws(ctx, &ws, stage).await?;
            let options = ferry_deploy::PrepareOptions {
                request: req.clone(),
                dir: &dir,
                create_bucket: ctx.local,
            };
            let p =
                ferry_deploy::prepare(&ws, &stage, &aws.config, &options, &mask, &print_event(t0))
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
        print!("{}", table(&manifest, &req.services, &dir));
    }
    eprintln!(
        "package {}{} in {:.2}s",
        manifest.id,
        if manifest.dirty {
            " (uncommitted changes: never reused for the commit)"
        } else {
            ""
        },
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn table(m: &ferry_package::PackageManifest, services: &[String], dir: &Path) -> String {
    let mut out = format!(
        "{:<16} {:<20} {:>10}  {}\n",
        "SERVICE", "ARTIFACT", "SIZE", "SHA-256"
    );
    for name in services {
        let Some(sp) = m.services.get(name) else {
            continue;
        };
        out.push_str(&format!(
            "{:<16} {:<20} {:>10}  {}\n",
            name,
            "template",
            human(sp.template_size),
            &sp.template_sha256[..16]
        ));
        for a in &sp.artifacts {
            out.push_str(&format!(
                "{:<16} {:<20} {:>10}  {}\n",
                "",
                a.resource,
                human(a.size),
                &a.sha256[..16]
            ));
        }
        if let Some(site) = &sp.site {
            let size: u64 = site.files.iter().map(|f| f.size).sum();
            out.push_str(&format!(
                "{:<16} {:<20} {:>10}  {}\n",
                "",
                format!("site ({} files)", site.files.len()),
                human(size),
                &site.sha256[..16]
            ));
        }
    }
    out.push_str(&format!(
        "manifest: {}\n",
        ferry_package::package_dir(dir, &m.id)
            .join("manifest.json")
            .display()
    ));
    out
}
