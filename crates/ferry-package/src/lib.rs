#![doc = include_str!("../README.md")]
//! One immutable, reproducible package per commit.
//!
//! [`package`] builds each service (its `[package] build` command, in its folder, with a
//! stage-independent environment), zips each declared artifact reproducibly (see [`zip`]),
//! hashes it, rewrites the template to point at `<project>/<service>/<sha256>.zip` in the bucket
//! named by the [`BUCKET_PARAMETER`] template parameter, snapshots static-site files, and writes a
//! package manifest under `<out>/<id>/manifest.json`. Nothing depends on the stage: every stage
//! deploys the same bytes. [`upload`] then puts what a stage's bucket lacks (content addressed,
//! so an object that exists is never sent again), and [`upload_site`] publishes a site after its
//! stack deployed.
//!
//! Layout of `<out>` (`target/ferry/package/` in a repository):
//! - `<id>/manifest.json`: the package of one commit (or of a dirty tree, under its own id);
//! - `artifacts/<sha256>.zip`, `templates/<sha256>.<ext>`, `blobs/<sha256>`: content addressed;
//! - `cache/<service>/<key>.json`: a service's package by input key. When the caller knows an
//!   exact key for a service's inputs (the git tree id of a clean service folder), a known key
//!   skips the build and the zipping altogether.
//!
//! The only network I/O is in [`upload`] and [`upload_site`], through the S3 client given.

mod files;
mod s3;
mod template;
pub mod zip;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ferry_manifest::{Service, Workspace};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use s3::{
    MAX_INLINE_TEMPLATE, UploadError, UploadReport, client as s3_client, upload, upload_site,
};
pub use template::{
    BUCKET_PARAMETER, MAX_FLOW_DEPTH, MAX_TEMPLATE, is_no_echo, parse as parse_template,
};

/// Bumped when the package layout or the archive format changes: old cache entries are then
/// never reused.
const FORMAT: u32 = 1;

/// A template that cannot be read, deployed or rewritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("not a valid template: {0}")]
    Parse(String),
    #[error(
        "it starts with a UTF-8 byte-order mark, which CloudFormation does not read; save the file as UTF-8 without a BOM"
    )]
    ByteOrderMark,
    #[error("it is empty; a template needs at least a Resources mapping with one resource")]
    Empty,
    #[error("it is {size} bytes; CloudFormation accepts templates of at most {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error(
        "its flow collections ([…], {{…}}) nest deeper than {max} levels at line {line}; no CloudFormation template needs that many"
    )]
    TooDeep { line: usize, max: usize },
    #[error("it is {found}, not a mapping with a Resources section")]
    NotAMapping { found: &'static str },
    #[error("it has no Resources mapping")]
    NoResources,
    #[error("its Resources is {found}; it must be a mapping of logical ids to resources")]
    ResourcesNotAMapping { found: &'static str },
    #[error("its Resources mapping is empty; CloudFormation needs at least one resource")]
    EmptyResources,
    #[error(
        "[parameters] passes `{key}`, which the template does not declare (declared: {declared}); declare it under Parameters or remove it from service.toml"
    )]
    UndeclaredParameter { key: String, declared: String },
    #[error(
        "it declares parameter `{key}` without a Default, and service.toml's [parameters] gives it no value; add `{key} = \"…\"` under [parameters] or a Default to the template"
    )]
    MissingParameter { key: String },
    #[error("it has no resource `{resource}` (resources: {known})")]
    UnknownResource { resource: String, known: String },
    #[error(
        "resource `{resource}` is of type {ty}, which takes no code package; supported: {supported}"
    )]
    UnsupportedType {
        resource: String,
        ty: String,
        supported: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{service}: template {path}: {source}")]
    Template {
        service: String,
        path: String,
        source: TemplateError,
    },
    #[error(
        "{service}: resource `{resource}` has a local path in {property} ({path:?}), which CloudFormation cannot read; declare it in {manifest} as [package.artifacts] {resource} = {path:?}"
    )]
    Undeclared {
        service: String,
        resource: String,
        property: String,
        path: String,
        manifest: String,
    },
    #[error(
        "{service}: build command `{command}` could not start: {message}; is the program installed and on PATH?"
    )]
    BuildNotStarted {
        service: String,
        command: String,
        message: String,
    },
    #[error(
        "{service}: build command `{command}` failed ({status}); nothing was packaged. Its last lines:\n{tail}"
    )]
    BuildFailed {
        service: String,
        command: String,
        status: String,
        tail: String,
    },
    #[error(
        "{service}: artifact {path} of resource `{resource}` does not exist; the path is relative to {dir} (if the build command makes it, check what it writes)"
    )]
    MissingArtifact {
        service: String,
        resource: String,
        path: String,
        dir: String,
    },
    #[error("{service}: artifact {path} of resource `{resource}` holds no files (after excludes)")]
    EmptyArtifact {
        service: String,
        resource: String,
        path: String,
    },
    #[error("{service}: site folder {path} does not exist; the path is relative to {dir}")]
    MissingSite {
        service: String,
        path: String,
        dir: String,
    },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("package manifest {path} is not readable: {message}; delete it to package again")]
    Manifest { path: String, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The package of one commit (or dirty tree): what every stage deploys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageManifest {
    pub format: u32,
    pub id: String,
    pub commit: String,
    pub dirty: bool,
    pub project: String,
    pub services: BTreeMap<String, ServicePackage>,
}

/// One service's package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePackage {
    /// The template to deploy, relative to the package folder (`templates/<sha256>.<ext>`).
    pub template: String,
    pub template_sha256: String,
    pub template_size: u64,
    /// Zips, in resource order.
    pub artifacts: Vec<PackagedArtifact>,
    pub site: Option<PackagedSite>,
    /// The input key it was packaged under, when one was known.
    pub input_key: Option<String>,
}

impl ServicePackage {
    /// What the deployment depends on besides parameters: the template (which names every zip
    /// by hash) and the site's files.
    pub fn fingerprint(&self) -> String {
        match &self.site {
            None => self.template_sha256.clone(),
            Some(s) => sha256_hex(format!("{}:{}", self.template_sha256, s.sha256).as_bytes()),
        }
    }

    /// Artifact keys by resource, for deployment records.
    pub fn artifact_keys(&self) -> BTreeMap<String, String> {
        self.artifacts
            .iter()
            .map(|a| (a.resource.clone(), a.key.clone()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagedArtifact {
    /// Template resource (logical id).
    pub resource: String,
    /// The property rewritten (`Code`, `Content`, `CodeUri`, `ContentUri`).
    pub property: String,
    /// Source folder or file, relative to the service folder.
    pub source: String,
    /// `<project>/<service>/<sha256>.zip`.
    pub key: String,
    pub sha256: String,
    pub size: u64,
    pub files: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagedSite {
    pub source: String,
    pub bucket_output: String,
    pub prefix: String,
    pub config_file: Option<String>,
    /// Hash over every file's name and hash.
    pub sha256: String,
    pub files: Vec<SiteFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteFile {
    /// Relative to the site folder.
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// What to package.
#[derive(Debug, Clone)]
pub struct PackageRequest {
    /// Package id: the commit, or a distinct id for a dirty tree.
    pub id: String,
    pub commit: String,
    pub dirty: bool,
    /// Services to package (others already in the id's manifest are kept).
    pub services: Vec<String>,
    /// Service → an exact key of its inputs (e.g. the tree id of its clean folder). A service
    /// without one is always built and zipped.
    pub input_keys: BTreeMap<String, String>,
}

/// Progress of [`package`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Already in this id's package.
    Kept {
        service: String,
    },
    /// Reused from a package with the same input key: nothing built or zipped.
    Reused {
        service: String,
    },
    Building {
        service: String,
        command: String,
    },
    Zipped {
        service: String,
        resource: String,
        files: usize,
        size: u64,
        sha256: String,
    },
    Packaged {
        service: String,
    },
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    zip::hex(&Sha256::digest(bytes))
}

/// The folder of package `id` under `out`.
pub fn package_dir(out: &Path, id: &str) -> PathBuf {
    out.join(id)
}

/// Reads the manifest of package `id`, if it was made.
pub fn load(out: &Path, id: &str) -> Result<Option<PackageManifest>, PackageError> {
    let path = package_dir(out, id).join("manifest.json");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let m: PackageManifest = serde_json::from_str(&text).map_err(|e| PackageError::Manifest {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if m.format != FORMAT {
        return Ok(None);
    }
    Ok(Some(m))
}

/// Writes `bytes` to `path` through a temporary file and a rename: readers never see half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    let dir = path.parent().expect("paths here have a parent");
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Packages the requested services of `ws` into `out` and returns the manifest of the id. A
/// failure packages nothing further and leaves earlier packages untouched.
pub fn package(
    ws: &Workspace,
    out: &Path,
    req: &PackageRequest,
    mask: &(dyn Fn(&str) -> String + Sync),
    on: &dyn Fn(Event),
) -> Result<PackageManifest, PackageError> {
    let mut manifest = load(out, &req.id)?.unwrap_or_else(|| PackageManifest {
        format: FORMAT,
        id: req.id.clone(),
        commit: req.commit.clone(),
        dirty: req.dirty,
        project: ws.project.name.clone(),
        services: BTreeMap::new(),
    });
    let mut changed = false;
    for name in &req.services {
        let service = ws
            .service(name)
            .unwrap_or_else(|| panic!("the caller checked that service {name} exists"));
        if manifest.services.contains_key(name) {
            on(Event::Kept {
                service: name.clone(),
            });
            continue;
        }
        let cache_key = req
            .input_keys
            .get(name)
            .map(|k| cache_key(&ws.project.name, service, k));
        let cached = match &cache_key {
            Some(k) => read_cache(out, name, k),
            None => None,
        };
        let sp = match cached {
            Some(sp) => {
                on(Event::Reused {
                    service: name.clone(),
                });
                sp
            }
            None => {
                let mut sp = package_service(ws, service, out, mask, on)?;
                sp.input_key = cache_key.clone();
                if let Some(k) = &cache_key {
                    let path = out.join("cache").join(name).join(format!("{k}.json"));
                    write_atomic(&path, &to_json(&sp))?;
                }
                on(Event::Packaged {
                    service: name.clone(),
                });
                sp
            }
        };
        manifest.services.insert(name.clone(), sp);
        changed = true;
    }
    if changed {
        let path = package_dir(out, &req.id).join("manifest.json");
        write_atomic(&path, &to_json(&manifest))?;
    }
    Ok(manifest)
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).expect("package structures serialize");
    s.push(b'\n');
    s
}

/// The cache key of a service: its exact input key plus everything else its package depends on.
fn cache_key(project: &str, service: &Service, input_key: &str) -> String {
    let config = serde_json::to_string(&service.package).expect("serializable");
    sha256_hex(
        format!(
            "ferry-package-{FORMAT}\0{project}\0{}\0{}\0{input_key}\0{config}",
            service.name, service.template
        )
        .as_bytes(),
    )
}

/// A cached service package whose files are all still present.
fn read_cache(out: &Path, service: &str, key: &str) -> Option<ServicePackage> {
    let text = fs::read(out.join("cache").join(service).join(format!("{key}.json"))).ok()?;
    let sp: ServicePackage = serde_json::from_slice(&text).ok()?;
    let present = out.join(&sp.template).is_file()
        && sp
            .artifacts
            .iter()
            .all(|a| artifact_path(out, &a.sha256).is_file())
        && sp
            .site
            .iter()
            .flat_map(|s| &s.files)
            .all(|f| blob_path(out, &f.sha256).is_file());
    present.then_some(sp)
}

/// Checks `service`'s template as a deploy needs it (see [`template::check`]): the parameters
/// it passes are declared, the ones without a default are passed.
fn check_parameters(service: &Service, parsed: &serde_json::Value) -> Result<(), TemplateError> {
    let passed: Vec<&str> = service.parameters.keys().map(String::as_str).collect();
    let provided = if service.package.artifacts.is_empty() {
        &[][..]
    } else {
        &[BUCKET_PARAMETER][..]
    };
    template::check(parsed, &passed, provided)
}

/// Reads and checks the template of each of `services` without packaging anything (what
/// `validate` and a deploy do before any AWS call); every problem, one per service.
pub fn check_templates<'a>(
    ws: &Workspace,
    services: impl IntoIterator<Item = &'a Service>,
) -> Vec<PackageError> {
    let mut problems = Vec::new();
    for service in services {
        let path = ws.root.join(service.template_path());
        let checked = fs::read_to_string(&path)
            .map_err(io_err(&path))
            .and_then(|text| {
                let parsed = template::parse(&text);
                parsed
                    .and_then(|p| check_parameters(service, &p))
                    .map_err(|source| PackageError::Template {
                        service: service.name.clone(),
                        path: service.template_path(),
                        source,
                    })
            });
        if let Err(e) = checked {
            problems.push(e);
        }
    }
    problems
}

/// Where a zip is kept locally.
pub fn artifact_path(out: &Path, sha256: &str) -> PathBuf {
    out.join("artifacts").join(format!("{sha256}.zip"))
}

/// Where a site file is kept locally.
pub fn blob_path(out: &Path, sha256: &str) -> PathBuf {
    out.join("blobs").join(sha256)
}

/// Last `n` lines of a command's output.
fn tail(stdout: &[u8], stderr: &[u8], n: usize) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_build(
    ws: &Workspace,
    service: &Service,
    dir: &Path,
    mask: &(dyn Fn(&str) -> String + Sync),
    on: &dyn Fn(Event),
) -> Result<(), PackageError> {
    let argv = &service.package.build;
    let command = mask(&argv.join(" "));
    on(Event::Building {
        service: service.name.clone(),
        command: command.clone(),
    });
    let sh = xshell::Shell::new().map_err(|e| PackageError::BuildNotStarted {
        service: service.name.clone(),
        command: command.clone(),
        message: e.to_string(),
    })?;
    sh.change_dir(dir);
    let mut cmd = sh.cmd(&argv[0]).args(&argv[1..]).quiet().ignore_status();
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(ferry_env::is_stage_variable) {
            cmd = cmd.env_remove(k);
        }
    }
    let output = cmd
        .env(ferry_env::PROJECT, &ws.project.name)
        .env(ferry_env::SERVICE, &service.name)
        // 1980-01-01, the earliest time a zip holds: tools that honour it embed no build time.
        .env("SOURCE_DATE_EPOCH", "315532800")
        .output()
        .map_err(|e| PackageError::BuildNotStarted {
            service: service.name.clone(),
            command: command.clone(),
            message: mask(&e.to_string()),
        })?;
    if !output.status.success() {
        return Err(PackageError::BuildFailed {
            service: service.name.clone(),
            command,
            status: output.status.to_string(),
            tail: mask(&tail(&output.stdout, &output.stderr, 20)),
        });
    }
    Ok(())
}

/// The files of `src` (a folder or a file) minus the exclude globs of `service`'s manifest.
fn files_of(
    service: &Service,
    src: &Path,
    globs: &[&str],
) -> Result<Vec<zip::Entry>, PackageError> {
    let set = files::exclude_set(globs).map_err(|e| PackageError::Io {
        path: service.manifest_path(),
        source: io::Error::other(e.to_string()),
    })?;
    files::collect(src, &set).map_err(io_err(src))
}

fn package_service(
    ws: &Workspace,
    service: &Service,
    out: &Path,
    mask: &(dyn Fn(&str) -> String + Sync),
    on: &dyn Fn(Event),
) -> Result<ServicePackage, PackageError> {
    let dir = ws.root.join(&service.dir);
    let spec = &service.package;
    let template_path = ws.root.join(service.template_path());
    let text = fs::read_to_string(&template_path).map_err(io_err(&template_path))?;
    let template_err = |source| PackageError::Template {
        service: service.name.clone(),
        path: service.template_path(),
        source,
    };

    // Check the template before running anything: an undeclared local path fails fast.
    let mut parsed = template::parse(&text).map_err(template_err)?;
    check_parameters(service, &parsed).map_err(template_err)?;
    for (resource, _ty, property) in template::local_code_paths(&parsed) {
        if !spec.artifacts.contains_key(&resource) {
            let path = parsed["Resources"][&resource]["Properties"][&property]
                .as_str()
                .unwrap_or_default()
                .to_string();
            return Err(PackageError::Undeclared {
                service: service.name.clone(),
                resource,
                property,
                path,
                manifest: service.manifest_path(),
            });
        }
    }

    // Every declared resource exists and takes a code package (checked before the build runs).
    for resource in spec.artifacts.keys() {
        template::point_at(&mut parsed, resource, "").map_err(template_err)?;
    }

    if !spec.build.is_empty() {
        run_build(ws, service, &dir, mask, on)?;
    }

    let mut artifacts = Vec::new();
    for (resource, a) in &spec.artifacts {
        let src = dir.join(&a.path);
        if !src.exists() {
            return Err(PackageError::MissingArtifact {
                service: service.name.clone(),
                resource: resource.clone(),
                path: a.path.clone(),
                dir: service.dir.clone(),
            });
        }
        let globs: Vec<&str> = spec
            .exclude
            .iter()
            .chain(&a.exclude)
            .map(String::as_str)
            .collect();
        let entries = files_of(service, &src, &globs)?;
        if entries.is_empty() {
            return Err(PackageError::EmptyArtifact {
                service: service.name.clone(),
                resource: resource.clone(),
                path: a.path.clone(),
            });
        }
        let dest_dir = out.join("artifacts");
        fs::create_dir_all(&dest_dir).map_err(io_err(&dest_dir))?;
        let tmp = dest_dir.join(format!(
            ".{}-{resource}.{}.tmp",
            service.name,
            std::process::id()
        ));
        let written = zip::write(&entries, &tmp).map_err(io_err(&src))?;
        let dest = artifact_path(out, &written.sha256);
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        on(Event::Zipped {
            service: service.name.clone(),
            resource: resource.clone(),
            files: written.entries,
            size: written.size,
            sha256: written.sha256.clone(),
        });
        let key = format!(
            "{}/{}/{}.zip",
            ws.project.name, service.name, written.sha256
        );
        let property = template::point_at(&mut parsed, resource, &key).map_err(template_err)?;
        artifacts.push(PackagedArtifact {
            resource: resource.clone(),
            property,
            source: a.path.clone(),
            key,
            sha256: written.sha256,
            size: written.size,
            files: written.entries,
        });
    }

    // Without artifacts the template is deployed exactly as written.
    let (bytes, ext) = if artifacts.is_empty() {
        let ext = Path::new(&service.template)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("yaml")
            .to_string();
        (text.into_bytes(), ext)
    } else {
        template::add_bucket_parameter(&mut parsed).map_err(template_err)?;
        let mut b = serde_json::to_vec_pretty(&parsed).expect("JSON values serialize");
        b.push(b'\n');
        (b, "json".to_string())
    };
    let template_sha256 = sha256_hex(&bytes);
    let template_rel = format!("templates/{template_sha256}.{ext}");
    let dest = out.join(&template_rel);
    if !dest.is_file() {
        write_atomic(&dest, &bytes)?;
    }

    let site = match &spec.site {
        Some(s) => Some(snapshot_site(service, &dir, s, out)?),
        None => None,
    };
    Ok(ServicePackage {
        template: template_rel,
        template_sha256,
        template_size: bytes.len() as u64,
        artifacts,
        site,
        input_key: None,
    })
}

/// Copies a site's files into the content-addressed blob store: the package keeps the exact
/// bytes that every stage will publish.
fn snapshot_site(
    service: &Service,
    dir: &Path,
    site: &ferry_manifest::Site,
    out: &Path,
) -> Result<PackagedSite, PackageError> {
    let src = dir.join(&site.path);
    if !src.is_dir() {
        return Err(PackageError::MissingSite {
            service: service.name.clone(),
            path: site.path.clone(),
            dir: service.dir.clone(),
        });
    }
    let mut globs: Vec<&str> = site.exclude.iter().map(String::as_str).collect();
    // The generated config file is written at upload time, never taken from the folder.
    if let Some(c) = &site.config_file {
        globs.push(c);
    }
    let entries = files_of(service, &src, &globs)?;
    let mut files = Vec::new();
    let mut all = Sha256::new();
    for e in entries {
        let bytes = fs::read(&e.path).map_err(io_err(&e.path))?;
        let sha = sha256_hex(&bytes);
        let blob = blob_path(out, &sha);
        if !blob.is_file() {
            write_atomic(&blob, &bytes)?;
        }
        all.update(format!("{}\0{sha}\n", e.name).as_bytes());
        files.push(SiteFile {
            name: e.name,
            sha256: sha,
            size: bytes.len() as u64,
        });
    }
    all.update(format!("{:?}{:?}", site.prefix, site.config_file).as_bytes());
    Ok(PackagedSite {
        source: site.path.clone(),
        bucket_output: site.bucket_output.clone(),
        prefix: site.prefix.clone(),
        config_file: site.config_file.clone(),
        sha256: zip::hex(&all.finalize()),
        files,
    })
}
