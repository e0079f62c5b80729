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

mod build;
mod deps;
mod files;
mod links;
mod reach;
mod s3;
mod sam;
mod template;
pub mod zip;

pub use deps::{UnbuiltDependencies, sam_build_wanted, unbuilt_dependencies};
pub use files::{CREDENTIAL_NAMES, DOTENV_TEMPLATES, is_credential_name, withheld_summary};
pub use links::{
    EchoedSecret, MissingOutput, SharedName, StageSharedName, Templates, UnlinkedImporter,
    UnlinkedReader, echoed_secrets, empty_parameters, given_names, literal_secrets,
    missing_outputs, names_every_stage_gives, refused_stage_values, shared_names, ssm_typed_names,
    unbounded_roles, unlinked_importers, unlinked_ssm_readers,
};
pub use reach::{Reached, reached, reached_from_below};

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ferry_manifest::{Service, ServiceKind, Workspace};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use s3::{
    MAX_INLINE_TEMPLATE, ServiceUpload, UploadError, UploadReport, client as s3_client, entry_key,
    fetch_package, site_file_key, template_key, upload, upload_services, upload_site,
};
pub use sam::{SAM_TRANSFORM, is_sam, nested_template_key, point_nested_template};
pub use template::{
    BOUNDARY_PARAMETER, BUCKET_PARAMETER, MAX_FLOW_DEPTH, MAX_PARAMETER_VALUE, MAX_TEMPLATE,
    SSM_PARAMETER_TYPE, add_bucket_parameter, is_no_echo, literal_value, local_code_paths,
    parse as parse_template, ssm_typed_parameters,
};

/// Bumped when the package layout or the archive format changes: old cache entries are then
/// never reused.
pub const FORMAT: u32 = 1;

/// A template that cannot be read, deployed or rewritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("not a valid template: {0}")]
    Parse(String),
    #[error(
        "it is not UTF-8 text (UTF-16, say), which CloudFormation does not read; save it as UTF-8"
    )]
    NotUtf8,
    #[error("it cannot be read: {0}")]
    Unreadable(io::Error),
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
    #[error(
        "[parameters] gives `{key}` the value of an SSM parameter (`${{ssm:…}}`), but the template declares it of type {ty}, whose value is the parameter's name: CloudFormation reads the parameter itself; pass the name instead (e.g. `{key} = \"/${{project}}/${{stage}}/…\"`), and Ferry redeploys the service when the parameter gets a new version"
    )]
    SsmValueForSsmType { key: String, ty: String },
    #[error(
        "[parameters] gives `{key}` an empty value, and the template declares it of type {ty}, which takes none (CloudFormation refuses the stack): set its value in the service.toml (`init` leaves such values empty for you to fill)"
    )]
    EmptyTypedParameter { key: String, ty: String },
    #[error(
        "[parameters] gives `{key}` a value of {bytes} bytes, and CloudFormation takes at most {max} bytes per parameter value (the stack operation fails): keep a larger value elsewhere (an S3 object, an SSM parameter the template reads with a dynamic reference) and pass its name",
        max = template::MAX_PARAMETER_VALUE
    )]
    ParameterValueTooLong { key: String, bytes: usize },
    #[error(
        "[parameters] gives `{key}` a value the template's declaration of it refuses: {why} (CloudFormation refuses the stack); set another value in the service.toml (`init` leaves values it cannot infer empty for you to fill)"
    )]
    RefusedParameterValue { key: String, why: String },
    #[error(
        "[parameters] gives `{key}` a value the template's declaration of it refuses: {why} (CloudFormation refuses the stack); `{key}` is a secret (NoEcho): never write its value in the service.toml, keep it in SSM as a SecureString (`param set <stage> <name> --secure`) and give `{key} = \"${{ssm:<name>}}\"`"
    )]
    RefusedSecretValue { key: String, why: String },
    #[error(
        "service.toml says kind = \"sam\", but the template has no `Transform: {transform}`; add it, or set kind = \"cloudformation\""
    )]
    NotSam { transform: &'static str },
    #[error(
        "{} names {:?}, which is {}, outside the service folder and its declared inputs; Ferry deploys a service again when its folder or inputs change, so what it packages from there would go stale: declare it in the service's `inputs` (inputs = [\"{}\"]), move it into the folder, or copy it there with [package] build",
        .0.at, .0.path, .0.repo_path, globset::escape(&.0.repo_path)
    )]
    PathOutside(Box<OutsidePath>),
    #[error(
        "{at} names {path:?}, which lies outside the repository (or is absolute): a template's paths are relative to its own folder, and what it names must be in the repository (in the service folder or its declared inputs); is the template written for another folder (a build output such as `build/`)?"
    )]
    PathOutsideRepository { at: String, path: String },
    #[error("{at}: {what}")]
    Unsupported { at: String, what: String },
    #[error(
        "{at}: {what}; CloudFormation refuses the whole template (fix the name, or declare it)"
    )]
    Unresolved { at: String, what: String },
    #[error(
        "{site}.Location names {path:?}, and nested applications go at most {max} levels deep; is an application nested in itself?"
    )]
    NestedTooDeep {
        site: String,
        path: String,
        max: usize,
    },
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

impl TemplateError {
    /// Whether the template's structure is wrong (not a mapping with a non-empty `Resources`
    /// mapping): every other check needs it sound.
    pub fn is_structural(&self) -> bool {
        matches!(
            self,
            TemplateError::NotAMapping { .. }
                | TemplateError::NoResources
                | TemplateError::EmptyResources
                | TemplateError::ResourcesNotAMapping { .. }
        )
    }
}

/// A path a template names outside its service folder (see [`TemplateError::PathOutside`]).
#[derive(Debug)]
pub struct OutsidePath {
    /// `<resource>.<property>`, e.g. `Fn.CodeUri`.
    pub at: String,
    /// As the template writes it.
    pub path: String,
    /// From the repository's root.
    pub repo_path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Each service that failed, when more than one did: every service is tried, so that one
    /// run names every problem.
    #[error(
        "{} services failed to package:\n{}",
        .0.len(),
        .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
    )]
    Several(Vec<PackageError>),
    #[error(
        "the checkout changed while it was being packaged ({what}): what was read may be of neither state, so nothing was kept; package again once it is still (a branch switched, or files edited, during a package or deploy)"
    )]
    CheckoutChanged { what: String },
    #[error("{service}: template {path}: {source}")]
    Template {
        service: String,
        path: String,
        source: TemplateError,
    },
    #[error(
        "{service}: resource `{resource}` has a local path in {at}, which CloudFormation cannot read; declare it in {manifest} as [package.artifacts] {resource} = {artifact:?} (relative to the service folder)"
    )]
    Undeclared {
        service: String,
        resource: String,
        /// The property and the path as the template writes it: `Code ("./src")`.
        at: String,
        /// The path from the service folder (the template's is written from its own folder).
        artifact: String,
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
        "{service}: not packaged: the run was cancelled (interrupted, or its stage lock lost), and a build it was running was stopped; services packaged from committed files are reused by the next run"
    )]
    Cancelled { service: String },
    #[error(
        "{service}: artifact {path} of resource `{resource}` does not exist; the path is relative to {dir} (if the build command makes it, check what it writes)"
    )]
    MissingArtifact {
        service: String,
        resource: String,
        path: String,
        dir: String,
    },
    #[error(
        "{service}: {at} names {path}, which does not exist; the template's paths are relative to its own folder (a build's output? give the service a [package] build that makes it)"
    )]
    MissingPath {
        service: String,
        /// `<resource>.<property>`, e.g. `Flow.DefinitionUri`.
        at: String,
        /// From the repository's root.
        path: String,
    },
    #[error(
        "{service}: its build ran and did not write {path}, the template [package] built-template names; check where the build writes it (`sam build` writes .aws-sam/build/template.yaml in the folder it runs in)"
    )]
    BuiltTemplateMissing { service: String, path: String },
    #[error(
        "{service}: {resource}.{property} names {path}, a folder; a definition or a nested template is one file"
    )]
    NotAFile {
        service: String,
        resource: String,
        property: String,
        path: String,
    },
    #[error("{service}: artifact {path} of resource `{resource}` holds no files (after excludes)")]
    EmptyArtifact {
        service: String,
        resource: String,
        path: String,
    },
    #[error(
        "{service}: the prebuilt archive {path} of resource `{resource}` {problem}; nothing was packaged"
    )]
    PrebuiltArchive {
        service: String,
        resource: String,
        path: String,
        problem: String,
    },
    #[error("{service}: site folder {path} does not exist; the path is relative to {dir}")]
    MissingSite {
        service: String,
        path: String,
        dir: String,
    },
    #[error(
        "{service} is a Serverless Framework service: its framework compiles it for each stage when it deploys (`deploy <stage>`), not ahead of the stage"
    )]
    PerStage { service: String },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    /// Copying `from` (a file, or a folder as an archive) into the package folder failed:
    /// `source` names the file read or the one written.
    #[error("copying {from} into the package folder: {source}")]
    Store { from: String, source: io::Error },
    /// The files of an archive another tool wrote, unpacked, cannot be taken as they are (a link
    /// out of the archive, say): `source` names the entry.
    #[error("{source}")]
    Unpacked { source: io::Error },
    #[error("package manifest {path} is not readable: {message}; delete it to package again")]
    Manifest { path: String, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn store_err(from: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Store {
        from: from.display().to_string(),
        source,
    }
}

/// The package of one commit (or dirty tree): what every stage deploys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageManifest {
    pub format: u32,
    /// The [`FILE_RULES`] it was made under: one made under other rules is packaged again.
    #[serde(default)]
    pub file_rules: u32,
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
    /// For a service without a build: the fingerprint of the files git ignores in its folders
    /// when it was packaged ([`ignored_files_key`]), which its input key does not see. A
    /// package is reused only while they are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_files: Option<String>,
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

    /// The entry as the artifact bucket keeps it: the SHA-256 of its JSON, and the JSON.
    pub fn stored(&self) -> (String, Vec<u8>) {
        let json = serde_json::to_vec(self).expect("a package entry serialises");
        (sha256_hex(&json), json)
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
    /// Template resource (logical id), or `Globals.<section>` for a SAM template's globals.
    pub resource: String,
    /// The property rewritten (`Code`, `Content`, `CodeUri`, `ContentUri`, `DefinitionUri`,
    /// `Location`).
    pub property: String,
    /// A zip, or one file uploaded as it is (a definition, a nested template).
    #[serde(default)]
    pub format: ArtifactFormat,
    /// Source folder or file, relative to the service folder.
    pub source: String,
    /// `<project>/<service>/<sha256>.zip`.
    pub key: String,
    pub sha256: String,
    pub size: u64,
    pub files: usize,
}

/// What an artifact's bytes are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactFormat {
    /// A zip (kept under `artifacts/`).
    #[default]
    Zip,
    /// A file uploaded as it is (kept under `blobs/`).
    File,
}

impl PackagedArtifact {
    /// Where the artifact's bytes are kept under the package folder `out`.
    pub fn local_path(&self, out: &Path) -> PathBuf {
        match self.format {
            ArtifactFormat::Zip => artifact_path(out, &self.sha256),
            ArtifactFormat::File => blob_path(out, &self.sha256),
        }
    }
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
    /// Service → the key of its uncommitted changes, when it has some
    /// ([`ferry_changes::Snapshot::dirty_keys`]): such a service is still as requested while
    /// its own inputs are.
    pub dirty_keys: BTreeMap<String, String>,
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
    /// Credential files ([`CREDENTIAL_NAMES`]) left out of an artifact (`what`: its
    /// resource) or of the site (`what` = "site"), relative to its folder.
    Withheld {
        service: String,
        what: String,
        files: Vec<String>,
    },
    Packaged {
        service: String,
    },
    /// A Serverless Framework service: compiled for each stage when it deploys.
    PerStage {
        service: String,
    },
    /// Another process is packaging into the same folder: this one waits for it (their builds
    /// and caches would otherwise mix).
    Waiting {
        folder: PathBuf,
    },
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    zip::hex(&Sha256::digest(bytes))
}

/// The base64 of the digest whose hex [`sha256_hex`] gives: the form S3 checksums and Lambda's
/// `CodeSha256` take. `None` for anything that is not 64 hex digits.
pub fn sha256_base64(hex: &str) -> Option<String> {
    use base64::Engine as _;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digest: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex"))
        .collect();
    Some(base64::engine::general_purpose::STANDARD.encode(digest))
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
    if m.format != FORMAT || m.file_rules != FILE_RULES {
        return Ok(None);
    }
    Ok(Some(m))
}

/// Writes `bytes` to `path` through a temporary file, synced to disk, and a rename: readers never
/// see half a file, and after a crash the name holds either nothing or all of the bytes (the
/// stores are content-addressed: a name that exists is taken as holding its bytes).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    let dir = path.parent().expect("paths here have a parent");
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let written = fs::File::create(&tmp).and_then(|mut f| {
        io::Write::write_all(&mut f, bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Checks a `.zip` or `.jar` another tool built, which is stored as it is: it must be an
/// archive, and no entry may be a credential file or lie in a credential folder (the rule
/// Ferry's own archives follow, [`CREDENTIAL_NAMES`]); only its directory is read. `Err` says
/// what is wrong.
fn check_prebuilt(path: &Path) -> Result<(), String> {
    let file = fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let archive = ::zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| format!("is not a zip archive Ferry can read ({e})"))?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("has an entry whose name cannot be read ({e})"))?;
    let mut found: Vec<String> = names
        .into_iter()
        .filter(|name| name.split(['/', '\\']).any(files::is_credential_name))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    Err(format!(
        "holds {}; leave them out where the archive is built",
        files::withheld_summary(&found)
    ))
}

/// Files up to this size are read whole to be stored; larger ones are streamed.
const READ_WHOLE: u64 = 8 << 20;

/// Copies the file `src` into the content-addressed store: the path for a hash comes from
/// `dest`. Returns the hash and the size. A small file is read whole and written only when the
/// store lacks its bytes; a large one is hashed as it streams to a temporary file beside its
/// destination (never held in memory), which is renamed into place unless the store already
/// holds those bytes.
fn store_file(
    src: &Path,
    dest_dir: &Path,
    dest: impl Fn(&str) -> PathBuf,
) -> Result<(String, u64), PackageError> {
    if fs::metadata(src).map_err(io_err(src))?.len() <= READ_WHOLE {
        let bytes = fs::read(src).map_err(io_err(src))?;
        let sha = sha256_hex(&bytes);
        let path = dest(&sha);
        // A file kept under this name that no longer holds these bytes (edited, truncated) is
        // written again: what is published is read from here.
        if !holds_sized(&path, &sha, bytes.len() as u64) {
            write_atomic(&path, &bytes)?;
        }
        return Ok((sha, bytes.len() as u64));
    }
    fs::create_dir_all(dest_dir).map_err(io_err(dest_dir))?;
    let tmp = tempfile::NamedTempFile::new_in(dest_dir).map_err(io_err(dest_dir))?;
    let mut from = fs::File::open(src).map_err(io_err(src))?;
    let (sha, size) = {
        let mut to = zip::Hashing::new(io::BufWriter::new(zip::Named {
            inner: tmp.as_file(),
            path: tmp.path(),
        }));
        let size = io::copy(&mut from, &mut to).map_err(store_err(src))?;
        io::Write::flush(&mut to).map_err(store_err(src))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| store_err(src)(zip::writing(tmp.path(), e)))?;
        (zip::hex(&to.hash.finalize()), size)
    };
    let path = dest(&sha);
    if !holds_sized(&path, &sha, size) {
        // A temporary file is private (0600); stored files are readable as any other (0644).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
                .map_err(io_err(tmp.path()))?;
        }
        tmp.persist(&path).map_err(|e| PackageError::Io {
            path: path.display().to_string(),
            source: e.error,
        })?;
    }
    Ok((sha, size))
}

/// Packages the requested services of `ws` into `out` and returns the manifest of the id. A
/// failure packages nothing further and leaves earlier packages untouched. Waits (blocking) for
/// another process packaging into `out` ([`Event::Waiting`]); an async caller takes the folder
/// with [`FolderLock::try_take`] without blocking and calls [`package_held`].
pub fn package(
    ws: &Workspace,
    out: &Path,
    req: &PackageRequest,
    mask: &(dyn Fn(&str) -> String + Sync),
    on: &dyn Fn(Event),
) -> Result<PackageManifest, PackageError> {
    package_until(ws, out, req, mask, on, &|| false)
}

/// [`package`], stopped once `cancelled` says so, as [`package_held`] is: a build running then
/// is stopped with its process tree.
pub fn package_until(
    ws: &Workspace,
    out: &Path,
    req: &PackageRequest,
    mask: &(dyn Fn(&str) -> String + Sync),
    on: &dyn Fn(Event),
    cancelled: &dyn Fn() -> bool,
) -> Result<PackageManifest, PackageError> {
    let lock = match FolderLock::try_take(out)? {
        Some(lock) => lock,
        None => {
            on(Event::Waiting {
                folder: out.to_path_buf(),
            });
            FolderLock::take(out)?
        }
    };
    package_held(&lock, ws, req, mask, on, cancelled)
}

/// [`package`] into the folder `lock` holds. Once `cancelled` says so, a running build is
/// stopped (its process tree killed) and no further service is packaged:
/// [`PackageError::Cancelled`].
pub fn package_held(
    lock: &FolderLock,
    ws: &Workspace,
    req: &PackageRequest,
    mask: &(dyn Fn(&str) -> String + Sync),
    on: &dyn Fn(Event),
    cancelled: &dyn Fn() -> bool,
) -> Result<PackageManifest, PackageError> {
    let out = lock.folder.as_path();
    let mut manifest = load(out, &req.id)?.unwrap_or_else(|| PackageManifest {
        format: FORMAT,
        file_rules: FILE_RULES,
        id: req.id.clone(),
        commit: req.commit.clone(),
        dirty: req.dirty,
        project: ws.project.name.clone(),
        services: BTreeMap::new(),
    });
    let mut changed = false;
    let mut failed = Vec::new();
    // Written once the checkout is known to be as it was when the request was made.
    let mut to_cache: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut read_from_disk: Vec<&Service> = Vec::new();
    let mut stopped: Option<PackageError> = None;
    let repo = ferry_changes::Repo::open(&ws.root).ok();
    for name in &req.services {
        // Like a failure: what was packaged stays in the cache, for the next run to reuse.
        if cancelled() {
            stopped = Some(PackageError::Cancelled {
                service: name.clone(),
            });
            break;
        }
        let service = ws
            .service(name)
            .unwrap_or_else(|| panic!("the caller checked that service {name} exists"));
        if service.kind == ServiceKind::Serverless {
            on(Event::PerStage {
                service: name.clone(),
            });
            continue;
        }
        // Files git ignores that its archives would hold: no input key or package id sees
        // them change, so they are part of what a reused package must match.
        let ignored = ignored_files_in(repo.as_ref(), service);
        // Kept while its files are all there (a store cleaned by hand packages it again, rather
        // than fail every upload asking to package again).
        if manifest
            .services
            .get(name)
            .is_some_and(|sp| all_present(out, sp) && sp.ignored_files == ignored)
        {
            on(Event::Kept {
                service: name.clone(),
            });
            continue;
        }
        let cache_key = req
            .input_keys
            .get(name)
            .map(|k| cache_key(&ws.project.name, service, k, ignored.as_deref()));
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
                let mut sp = match package_service(ws, service, out, mask, on, cancelled) {
                    Ok(sp) => sp,
                    Err(e @ PackageError::Cancelled { .. }) => {
                        stopped = Some(e);
                        break;
                    }
                    // The others are still packaged, so that one run names every problem.
                    Err(e) => {
                        failed.push(e);
                        continue;
                    }
                };
                sp.input_key = cache_key.clone();
                sp.ignored_files = ignored;
                if let Some(k) = &cache_key {
                    let path = out.join("cache").join(name).join(format!("{k}.json"));
                    to_cache.push((path, to_json(&sp)));
                }
                read_from_disk.push(service);
                on(Event::Packaged {
                    service: name.clone(),
                });
                sp
            }
        };
        manifest.services.insert(name.clone(), sp);
        changed = true;
    }
    if let Some(repo) = &repo
        && !read_from_disk.is_empty()
    {
        still_as_requested(repo, ws, req, &read_from_disk)?;
    }
    for (path, json) in &to_cache {
        write_atomic(path, json)?;
    }
    if let Some(cancelled) = stopped {
        return Err(cancelled);
    }
    // What was packaged stays in the cache; the package itself is complete or not written.
    match failed.len() {
        0 => {}
        1 => return Err(failed.remove(0)),
        _ => return Err(PackageError::Several(failed)),
    }
    if changed {
        let path = package_dir(out, &req.id).join("manifest.json");
        write_atomic(&path, &to_json(&manifest))?;
    }
    Ok(manifest)
}

/// What a service's package is made from, for change detection: its folder and `inputs`, and a
/// template outside the folder.
pub fn service_inputs(s: &Service) -> ferry_changes::ServiceInputs {
    let mut inputs = s.inputs.clone();
    inputs.extend(s.template_outside());
    ferry_changes::ServiceInputs {
        name: s.name.clone(),
        dir: s.dir.clone(),
        inputs,
    }
}

/// Whether the checkout is still what `req` was made from, now that `packaged` were read from
/// disk: HEAD the same commit (a branch switched while the files were read gives archives of
/// neither branch, stored under the first one's id), and, when no build ran, each of them the
/// same inputs (edited meanwhile: its input key, or with none, the key of its own uncommitted
/// changes, moved). A
/// build may write tracked files itself (a lock file an install rewrites, a global input of
/// every service): when one ran, HEAD alone is judged. An edit undone before the end is not
/// seen.
fn still_as_requested(
    repo: &ferry_changes::Repo,
    ws: &Workspace,
    req: &PackageRequest,
    packaged: &[&Service],
) -> Result<(), PackageError> {
    let inputs: Vec<_> = packaged.iter().map(|s| service_inputs(s)).collect();
    let now = repo
        .snapshot(&inputs, &ws.project.global_inputs)
        .map_err(|e| PackageError::CheckoutChanged {
            what: format!("it could not be read again: {e}"),
        })?;
    if now.commit != req.commit {
        return Err(PackageError::CheckoutChanged {
            what: format!(
                "HEAD moved from {} to {}",
                req.commit.get(..12).unwrap_or(&req.commit),
                now.commit.get(..12).unwrap_or(&now.commit)
            ),
        });
    }
    // A build that ran may have written tracked files anywhere (an `npm install` rewrites the
    // lock file at the root, a global input of every service): then only HEAD is judged.
    if packaged.iter().any(|s| !s.package.build.is_empty()) {
        return Ok(());
    }
    let edited: Vec<&str> = packaged
        .iter()
        .map(|s| s.name.as_str())
        .filter(|name| {
            let (before, after) = (req.input_keys.get(*name), now.input_keys.get(*name));
            if before.is_some() || after.is_some() {
                return before != after;
            }
            // Dirty then and now: its own uncommitted changes decide, not a file written
            // elsewhere in the checkout meanwhile (a log of this very run).
            match (req.dirty_keys.get(*name), now.dirty_keys.get(*name)) {
                (Some(then), Some(now)) => then != now,
                _ => now.id != req.id,
            }
        })
        .collect();
    if !edited.is_empty() {
        return Err(PackageError::CheckoutChanged {
            what: format!("files of {} were edited", edited.join(", ")),
        });
    }
    Ok(())
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).expect("package structures serialize");
    s.push(b'\n');
    s
}

/// Bumped when the rules of which files go into an archive change, so that no package cached
/// under older rules is reused: input keys are git tree ids, which do not see the git-ignored
/// files such rules are about. 1: credential files are left out; 2: more credential names
/// (`.pgpass`, `.dev.vars`, SSH private keys) and links only to files change detection watches;
/// 3: not into the folder of a service nested in the artifact's (one ownership rule, `Owners`).
/// Every rule in [`CREDENTIAL_NAMES`] or in `files` that changes what an archive holds bumps it.
pub const FILE_RULES: u32 = 3;

/// The cache key of a service: its exact input key plus everything else its package depends on
/// (`ignored`: [`ignored_files_key`]).
fn cache_key(project: &str, service: &Service, input_key: &str, ignored: Option<&str>) -> String {
    let config = serde_json::to_string(&service.package).expect("serializable");
    sha256_hex(
        format!(
            "ferry-package-{FORMAT}-{FILE_RULES}\0{project}\0{}\0{}\0{}\0{input_key}\0{config}\0{}",
            service.name,
            service.kind,
            service.template,
            ignored.unwrap_or("")
        )
        .as_bytes(),
    )
}

/// For a service without a `[package] build`, whose archives hold its files as they are on
/// disk: a fingerprint (path, size, modification time) of the files git ignores and does not
/// track in its folder and the folders its `inputs` name (an `npm install`'s `node_modules`, a
/// generated file). Its input key is made of git tree ids, which never see them: a package
/// (or a Serverless Framework compile) cached under the same key, or kept under the same
/// commit's id, would otherwise deploy their old bytes, even with `--all`. `None` for a service
/// with a build (its build makes what it zips from its inputs), when there are none, or when
/// git cannot say.
pub fn ignored_files_key(root: &Path, service: &Service) -> Option<String> {
    if !service.package.build.is_empty() {
        return None;
    }
    ignored_files_in(ferry_changes::Repo::open(root).ok().as_ref(), service)
}

/// [`ignored_files_key`] with the repository opened once for many services.
fn ignored_files_in(repo: Option<&ferry_changes::Repo>, service: &Service) -> Option<String> {
    if !service.package.build.is_empty() {
        return None;
    }
    let repo = repo?;
    let folders: Vec<String> = std::iter::once(service.dir.clone())
        .chain(
            service
                .inputs
                .iter()
                .map(|g| ferry_manifest::fixed_start(g)),
        )
        .filter(|f| !f.is_empty())
        .collect();
    let folders: Vec<&str> = folders.iter().map(String::as_str).collect();
    let files = repo.ignored_files(&folders).ok()?;
    if files.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    for f in &files {
        let meta = fs::symlink_metadata(repo.root().join(f)).ok();
        let (size, modified) = meta.map_or((0, 0), |m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            (m.len(), t)
        });
        h.update(format!("{f}\0{size}\0{modified}\0").as_bytes());
    }
    Some(format!("{}:{:x}", files.len(), h.finalize()))
}

/// A cached service package whose files are all still present.
fn read_cache(out: &Path, service: &str, key: &str) -> Option<ServicePackage> {
    let text = fs::read(out.join("cache").join(service).join(format!("{key}.json"))).ok()?;
    let sp: ServicePackage = serde_json::from_slice(&text).ok()?;
    all_present(out, &sp).then_some(sp)
}

/// Whether every file a service's package names is in the store under `out` (the template as
/// its hash says: it is deployed from there; archives and site files are uploaded with their
/// hash as S3's checksum, which refuses other bytes).
fn all_present(out: &Path, sp: &ServicePackage) -> bool {
    holds(&out.join(&sp.template), &sp.template_sha256)
        && sp.artifacts.iter().all(|a| a.local_path(out).is_file())
        && sp
            .site
            .iter()
            .flat_map(|s| &s.files)
            .all(|f| holds_sized(&blob_path(out, &f.sha256), &f.sha256, f.size))
}

/// A CloudFormation service's local code paths are declared in `[package.artifacts]`, and
/// every resource declared there exists and takes a code package. (`template` is pointed at
/// empty keys on the way: pass a copy that is not deployed.)
fn check_code_paths(
    service: &Service,
    template: &mut serde_json::Value,
) -> Result<(), PackageError> {
    match code_path_problems(service, template).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every problem [`check_code_paths`] finds, for `validate`.
fn code_path_problems(service: &Service, template: &mut serde_json::Value) -> Vec<PackageError> {
    let mut out = Vec::new();
    if service.kind != ServiceKind::Cloudformation {
        return out;
    }
    let artifacts = &service.package.artifacts;
    for (resource, _ty, property) in template::local_code_paths(template) {
        if !artifacts.contains_key(&resource) {
            let path = template["Resources"][&resource]["Properties"][&property]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let base = template_dir(service);
            let joined = match base.as_str() {
                "" => path.clone(),
                base => format!("{base}/{path}"),
            };
            out.push(PackageError::Undeclared {
                service: service.name.clone(),
                resource,
                at: format!("{property} ({path:?})"),
                // (A template outside the folder: its path climbs, `../shared/src`.)
                artifact: ferry_manifest::normalize_relative(&joined).unwrap_or(joined),
                manifest: service.manifest_path(),
            });
        }
    }
    for resource in artifacts.keys() {
        if let Err(source) = template::point_at(template, resource, "") {
            out.push(PackageError::Template {
                service: service.name.clone(),
                path: shown_template(service),
                source,
            });
        }
    }
    out
}

/// Checks `service`'s template as a deploy needs it (see [`template::check`]): the parameters
/// it passes are declared, the ones without a default are passed.
fn check_parameters(
    service: &Service,
    parsed: &serde_json::Value,
    watched: &files::Watched<'_>,
) -> Result<(), TemplateError> {
    let problems = template_problems(service, parsed);
    match problems.into_iter().next() {
        Some(e) => Err(e),
        // Before any build: each path the template names may be packaged from where it is.
        None if service.kind == ServiceKind::Sam => sam_path_problems(service, parsed, watched),
        None => Ok(()),
    }
}

/// The first local path or `AWS::Include` of the SAM service's own template (`parsed`) that
/// names a place outside the service folder and its declared inputs.
fn sam_path_problems(
    service: &Service,
    parsed: &serde_json::Value,
    watched: &files::Watched<'_>,
) -> Result<(), TemplateError> {
    let base = template_dir(service);
    for l in sam::local_paths(parsed) {
        inside_service(&service.dir, &base, &l, Some(watched))?;
    }
    for i in sam::local_includes(parsed) {
        in_service_folder(&service.dir, &base, &i.path, &i.label(), Some(watched))?;
    }
    Ok(())
}

/// Every problem [`check_parameters`] finds but the paths a SAM template names, which
/// [`SamCheck`] judges for `validate` (after the template's structure, which the other checks
/// need).
fn template_problems(service: &Service, parsed: &serde_json::Value) -> Vec<TemplateError> {
    let passed: Vec<&str> = service.parameters.keys().map(String::as_str).collect();
    // Ferry fills the stage's permissions boundary, and the artifact bucket of a template it
    // packages archives for.
    let provided = if service.package.artifacts.is_empty() && service.kind != ServiceKind::Sam {
        &[BOUNDARY_PARAMETER][..]
    } else {
        &[BUCKET_PARAMETER, BOUNDARY_PARAMETER][..]
    };
    let mut out = template::check(parsed, &passed, provided);
    // (A `Parameters` that is no mapping too: the checks below read its declarations.)
    if out
        .first()
        .is_some_and(|e| e.is_structural() || matches!(e, TemplateError::Parse(_)))
    {
        return out;
    }
    // An AWS-specific type (a VPC id, a list of subnets, an SSM parameter's name) takes no
    // empty value.
    for (key, value) in &service.parameters {
        let ty = parsed["Parameters"][key]["Type"]
            .as_str()
            .unwrap_or_default();
        if value.to_string().is_empty() && template::is_aws_specific(ty) {
            out.push(TemplateError::EmptyTypedParameter {
                key: key.clone(),
                ty: ty.to_string(),
            });
        }
    }
    // A literal value the parameter's declaration refuses (a Number, AllowedValues, a pattern, a
    // length): CloudFormation refuses the stack. An empty AWS-specific one is said above
    // (`value_problem` judges no AWS-specific type).
    for (key, value) in &service.parameters {
        let Ok(text) = value.render(|_| Err(())) else {
            continue;
        };
        if text.len() > template::MAX_PARAMETER_VALUE {
            out.push(TemplateError::ParameterValueTooLong {
                key: key.clone(),
                bytes: text.len(),
            });
            continue;
        }
        let decl = &parsed["Parameters"][key];
        let shown = !template::is_no_echo(parsed, key);
        if let Some(why) = template::value_problem(decl, &text, shown) {
            out.push(if shown {
                TemplateError::RefusedParameterValue {
                    key: key.clone(),
                    why,
                }
            } else {
                TemplateError::RefusedSecretValue {
                    key: key.clone(),
                    why,
                }
            });
        }
    }
    for (at, what) in template::undefined_references(parsed) {
        out.push(TemplateError::Unresolved { at, what });
    }
    for (key, _) in template::ssm_typed_parameters(parsed) {
        let reads_ssm = service.parameters.get(&key).is_some_and(|v| {
            v.references()
                .any(|r| matches!(r, ferry_manifest::Reference::Ssm { .. }))
        });
        if reads_ssm {
            let ty = parsed["Parameters"][&key]["Type"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            out.push(TemplateError::SsmValueForSsmType { key, ty });
        }
    }
    // A nested stack's `TemplateURL` naming a local file (`../shared/dlq.yaml`, as `aws
    // cloudformation package` would upload it): a CloudFormation service's template deploys as
    // written, and CloudFormation refuses it only then; nor would a plan see the nested
    // template change. (A local code path is `code_path_problems`' to name.)
    if service.kind == ServiceKind::Cloudformation {
        for l in sam::local_paths(parsed) {
            if let sam::Site::Resource { id, property } = &l.site
                && *property == "TemplateURL"
            {
                out.push(TemplateError::Unsupported {
                    at: format!("Resources.{id}.Properties.{property}"),
                    what: format!(
                        "names the local path `{}`, which CloudFormation cannot read (it takes an S3 location), and a `cloudformation` service's template deploys as written; declare `kind = \"sam\"` in service.toml and `Transform: {}` in the template, so that Ferry packages it (and what it names) as `sam package` does",
                        l.path,
                        sam::SAM_TRANSFORM
                    ),
                });
            }
        }
    }
    if service.kind == ServiceKind::Sam {
        if let Err(e) = require_sam(parsed) {
            out.push(e);
            return out;
        }
        for (at, what) in sam::unsupported(parsed) {
            out.push(TemplateError::Unsupported { at, what });
        }
        if service.package.build.is_empty() {
            for (at, what) in sam::needs_build(parsed) {
                out.push(TemplateError::Unsupported { at, what });
            }
        }
    }
    out
}

/// A SAM service's template declares the SAM transform.
fn require_sam(parsed: &serde_json::Value) -> Result<(), TemplateError> {
    if sam::is_sam(parsed) {
        Ok(())
    } else {
        Err(TemplateError::NotSam {
            transform: sam::SAM_TRANSFORM,
        })
    }
}

/// The folder of `service`'s template, relative to the service folder ("" for the folder itself).
fn template_dir(service: &Service) -> String {
    service
        .template
        .rsplit_once('/')
        .map_or(String::new(), |(d, _)| d.to_string())
}

/// `l`'s path relative to the service folder `dir` (see [`in_service_folder`]).
fn inside_service(
    dir: &str,
    base: &str,
    l: &sam::LocalPath,
    watched: Option<&files::Watched<'_>>,
) -> Result<String, TemplateError> {
    in_service_folder(
        dir,
        base,
        &l.path,
        &format!("{}.{}", l.site.label(), l.site.property()),
        watched,
    )
}

/// `path` (written relative to `base`, the folder of its template relative to the service
/// folder `dir`, which may lie above it: `..`) relative to the service folder; an error naming
/// `at` when it leaves the repository, or leaves the service folder for a place the service
/// does not watch (`watched`: its declared inputs, the project's global inputs; `None`: the
/// folder only). A watched place outside the folder (a nested template shared by several
/// services, `../shared/templates/dlq.yaml`) comes back as a path climbing out of the folder;
/// the packager checks each file under it as it reads it.
fn in_service_folder(
    dir: &str,
    base: &str,
    path: &str,
    at: &str,
    watched: Option<&files::Watched<'_>>,
) -> Result<String, TemplateError> {
    let joined = [dir, base, path]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let Some(p) = ferry_manifest::normalize_relative(&joined)
        .filter(|_| !path.starts_with('/') && !path.contains('\\'))
    else {
        return Err(TemplateError::PathOutsideRepository {
            at: at.to_string(),
            path: path.to_string(),
        });
    };
    if p == dir {
        return Ok(".".to_string());
    }
    if let Some(rel) = p.strip_prefix(&format!("{dir}/")) {
        return Ok(rel.to_string());
    }
    if dir.is_empty() {
        return Ok(p);
    }
    if watched.is_some_and(|w| w.declares(&p)) {
        let up = "../".repeat(dir.split('/').count());
        return Ok(format!("{up}{p}"));
    }
    Err(TemplateError::PathOutside(Box::new(OutsidePath {
        at: at.to_string(),
        path: path.to_string(),
        repo_path: p,
    })))
}

/// `rel` (from [`in_service_folder`]: relative to the service folder `dir`, perhaps climbing
/// out of it) from the repository's root.
fn repo_path(dir: &str, rel: &str) -> String {
    ferry_manifest::normalize_relative(&format!("{dir}/{rel}")).unwrap_or_else(|| rel.to_string())
}

/// Reads and checks the template of each of `services` without packaging anything (what
/// `validate` and a deploy do before any AWS call); every problem, one per service.
pub fn check_templates<'a>(
    ws: &Workspace,
    services: impl IntoIterator<Item = &'a Service>,
) -> Vec<PackageError> {
    let mut problems = Vec::new();
    // Globs that do not compile are the manifest check's to report.
    let owners = ferry_manifest::Owners::of_workspace(ws).ok();
    // A framework's configuration is not a template: the framework checks it when it compiles.
    // Its folder's links are checked here, as they would be in an archive of Ferry's.
    let (serverless, services): (Vec<&Service>, Vec<&Service>) = services
        .into_iter()
        .partition(|s| s.kind == ServiceKind::Serverless);
    // (The repository's index read once, for all of them.)
    let index = (!serverless.is_empty())
        .then(|| ferry_changes::ProjectIndex::open(&ws.root))
        .flatten();
    if let (Some(owners), Some(index)) = (&owners, &index) {
        for service in serverless {
            if let Err(e) = check_serverless_links(ws, service, owners, index) {
                problems.push(e);
            }
        }
    }
    for service in services {
        let path = ws.root.join(service.template_path());
        let as_problem = |source| PackageError::Template {
            service: service.name.clone(),
            path: shown_template(service),
            source,
        };
        let mut parsed = match read_template(&path) {
            Ok(p) => p,
            Err(e) => {
                problems.push(as_problem(e));
                continue;
            }
        };
        // Every problem of the template at once: a fix does not reveal the next one.
        let watched = owners
            .as_ref()
            .map(|o| files::Watched::new(o, &service.name));
        let found: Vec<PackageError> = template_problems(service, &parsed)
            .into_iter()
            .map(as_problem)
            .collect();
        let structural = found.len() == 1
            && matches!(
                &found[0],
                PackageError::Template { source, .. } if source.is_structural()
            );
        problems.extend(found);
        if !structural {
            problems.extend(code_path_problems(service, &mut parsed));
            problems.extend(SamCheck::problems(ws, service, &parsed, watched.as_ref()));
        }
        if let Some(watched) = &watched {
            problems.extend(artifact_link_problems(ws, service, watched));
        }
    }
    problems
}

/// The folders of `[package.artifacts]` and `[package.site]` that a service without a build
/// zips as they are on disk, walked as packaging walks them (no file read): a link out of the
/// repository, to a file change detection does not watch for the service, broken or looping,
/// stops the package, and `validate` says so first. A path that is not there is
/// [`absent_package_paths`]'s to name; a service with a build makes its folders when it
/// packages.
fn artifact_link_problems(
    ws: &Workspace,
    service: &Service,
    watched: &files::Watched<'_>,
) -> Vec<PackageError> {
    if !service.package.build.is_empty() {
        return Vec::new();
    }
    let dir = ws.root.join(&service.dir);
    let excludes: Vec<&str> = service.package.exclude.iter().map(String::as_str).collect();
    let site_excludes: Vec<&str> = service
        .package
        .site
        .iter()
        .flat_map(|s| s.exclude.iter().map(String::as_str))
        .collect();
    let paths = service
        .package
        .artifacts
        .iter()
        .map(|(name, a)| (name.as_str(), &a.path, &excludes))
        .chain(
            service
                .package
                .site
                .iter()
                .map(|site| ("site", &site.path, &site_excludes)),
        );
    let mut problems = Vec::new();
    for (what, path, globs) in paths {
        let src = dir.join(path);
        if !src.exists() || (src.is_file() && is_prebuilt_archive(path)) {
            continue;
        }
        if let Err(e) = files_of(ws, service, watched, &src, globs, what, &|_| {}) {
            problems.push(e);
        }
    }
    problems
}

/// The symbolic links a Serverless Framework service's folder commits. The framework follows
/// them when it zips, and writes what `${file(…)}` reads into the template, so each must lead
/// where a link in a Ferry archive may: inside the repository, to a file the service's change
/// detection watches (else an edit there deploys nothing), and never to a credential file
/// (Ferry leaves credential files out of the framework's archives by name, and a link's name
/// need not say what it leads to). Only links git holds are looked at (a local virtualenv's
/// links to its interpreter are the machine's, and no clone has them, nor an installed
/// package's), in the repository around the project (`ferry.toml` may lie in a subfolder of
/// it; `GIT_DIR` is honoured); those in the folders of services nested in it are theirs. (Its
/// `[package] exclude` globs are not honoured: Ferry re-zips the framework's archive, and the
/// framework decides what it holds.) Outside a git repository there is no `index`, and nothing
/// to check.
pub fn check_serverless_links(
    ws: &Workspace,
    service: &Service,
    owners: &ferry_manifest::Owners<'_>,
    index: &ferry_changes::ProjectIndex,
) -> Result<(), PackageError> {
    let nested = nested_service_globs(ws, service, &ws.root.join(&service.dir));
    let globs: Vec<&str> = nested.iter().map(String::as_str).collect();
    let set = files::exclude_set(&globs).map_err(|e| PackageError::Io {
        path: service.manifest_path(),
        source: io::Error::other(e.to_string()),
    })?;
    let boundary = fs::canonicalize(&ws.root).map_err(io_err(&ws.root))?;
    let watched = files::Watched::new(owners, &service.name);
    // Every link refused, said at once: a service whose configuration files are links to the
    // root's (`package.json`, `tsconfig.json`, …) took one validate per link.
    let mut refused: Vec<io::Error> = index
        .links_under(&service.dir)
        .into_iter()
        .filter(|(rel, _)| !set.is_match(rel))
        .filter_map(|(_, on_disk)| files::check_committed_link(&on_disk, &boundary, &watched).err())
        .collect();
    let source = match refused.len() {
        0 => return Ok(()),
        1 => refused.remove(0),
        n => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{n} of its committed links are refused:\n{}",
                refused
                    .iter()
                    .map(|e| format!("  - {e}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        ),
    };
    Err(PackageError::Io {
        path: format!("{} (a Serverless Framework service)", service.dir),
        source,
    })
}

/// Artifact and site paths (`[package.artifacts]`, `[package.site] path`) that are not on disk
/// in a service without a `[package] build` to make them: packaging now would fail on each.
/// Advice for `validate`, not an error: a CI step before Ferry may build them.
pub fn absent_package_paths(ws: &Workspace) -> Vec<String> {
    let mut out = Vec::new();
    for s in ws.services.iter().filter(|s| s.package.build.is_empty()) {
        let dir = ws.root.join(&s.dir);
        let paths = s
            .package
            .artifacts
            .iter()
            .map(|(name, a)| (format!("package.artifacts.{name}"), &a.path))
            .chain(
                s.package
                    .site
                    .iter()
                    .map(|site| ("package.site.path".to_string(), &site.path)),
            );
        for (key, path) in paths {
            if !dir.join(path).exists() {
                out.push(format!(
                    "{}: {key}: `{path}` does not exist in {}, and the service has no [package] build to make it: packaging now would fail (fine if an earlier CI step builds it)",
                    s.manifest_path(),
                    s.dir
                ));
            }
        }
    }
    out
}

/// The service's template as messages name it: from the repository's root, normalised
/// (`services/worker.yaml`, not `services/worker/../worker.yaml`).
fn shown_template(service: &Service) -> String {
    let path = service.template_path();
    ferry_manifest::normalize_relative(&path).unwrap_or(path)
}

/// What an `AWS::Include` at `slot` (the mapping holding its `Fn::Transform`) comes to: the
/// included `content`, merged with the keys beside the transform, as CloudFormation merges
/// them (a `Resources` holding both resources and an include of more; a bucket's `BucketName`
/// beside an include of its other properties). Put in whole, the include dropped those keys,
/// and a resource beside it was deleted from the stack. Content that is no mapping beside
/// other keys, or that gives one of their keys again, is refused: there is nothing to tell
/// which one CloudFormation would keep.
fn beside_include(
    slot: &serde_json::Value,
    content: serde_json::Value,
    include: &sam::LocalInclude,
) -> Result<serde_json::Value, TemplateError> {
    let siblings: Vec<(&String, &serde_json::Value)> = slot
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "Fn::Transform")
        .collect();
    if siblings.is_empty() {
        return Ok(content);
    }
    let unsupported = |what: String| TemplateError::Unsupported {
        at: include.label(),
        what,
    };
    let serde_json::Value::Object(mut merged) = content else {
        return Err(unsupported(format!(
            "the included file `{}` is no mapping, and keys stand beside the include ({}) to merge it with",
            include.path,
            siblings
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    for (k, v) in siblings {
        if merged.contains_key(k) {
            return Err(unsupported(format!(
                "the included file `{}` and the keys beside the include both give `{k}`; keep it in one of them",
                include.path
            )));
        }
        merged.insert(k.clone(), v.clone());
    }
    Ok(serde_json::Value::Object(merged))
}

/// Reads and parses the template at `path`: a regular file (not a device or a pipe, which
/// could be read without end or block), of which at most one byte more than CloudFormation
/// takes is read.
pub fn read_template(path: &Path) -> Result<serde_json::Value, TemplateError> {
    template::parse(&read_template_text(path)?)
}

/// The text of the template at `path`, read as [`read_template`] reads it.
pub(crate) fn read_template_text(path: &Path) -> Result<String, TemplateError> {
    use std::io::Read as _;
    let file = fs::File::open(path).map_err(TemplateError::Unreadable)?;
    let meta = file.metadata().map_err(TemplateError::Unreadable)?;
    if !meta.is_file() {
        return Err(TemplateError::Unreadable(io::Error::other(
            "not a regular file",
        )));
    }
    let mut bytes = Vec::new();
    file.take(template::MAX_TEMPLATE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(TemplateError::Unreadable)?;
    if bytes.len() > template::MAX_TEMPLATE {
        return Err(TemplateError::TooLarge {
            size: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            max: template::MAX_TEMPLATE,
        });
    }
    String::from_utf8(bytes).map_err(|_| TemplateError::NotUtf8)
}

/// The refusal of an `AWS::Include` (`first`, of those left) still there after
/// [`MAX_NESTING`] rounds of putting includes in: a file including itself.
fn includes_too_deep(first: &sam::LocalInclude) -> TemplateError {
    TemplateError::Unsupported {
        at: first.at.clone(),
        what: format!(
            "AWS::Include of {} is included more than {MAX_NESTING} levels deep; does a file include itself?",
            first.path
        ),
    }
}

/// The content an `AWS::Include` labelled `at` puts in, from `rel` (relative to `service`'s
/// folder): a file that is there, one the service may read (with `watched`), that parses.
fn include_content(
    ws: &Workspace,
    service: &Service,
    watched: Option<&files::Watched<'_>>,
    rel: &str,
    at: String,
) -> Result<serde_json::Value, PackageError> {
    let path = ws.root.join(&service.dir).join(rel);
    if !path.is_file() {
        return Err(PackageError::MissingArtifact {
            service: service.name.clone(),
            resource: at,
            path: rel.to_string(),
            dir: service.dir.clone(),
        });
    }
    if let Some(watched) = watched {
        check_single_file(ws, watched, &path)?;
    }
    read_template(&path).map_err(|source| PackageError::Template {
        service: service.name.clone(),
        path: repo_path(&service.dir, rel),
        source,
    })
}

/// Whether `rel`, a path a function's code names, is an archive taken as it is (`.zip`, `.jar`).
fn is_prebuilt_archive(rel: &str) -> bool {
    Path::new(rel)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip") || e.eq_ignore_ascii_case("jar"))
}

/// What packaging refuses in the local paths of a SAM service's templates, found without
/// packaging anything (`validate`, and a deploy before any AWS call), so that what `package`
/// would refuse `validate` finds first, mostly in the same words:
/// - every template, the service's own and each it nests (an application's `Location`, a
///   stack's `TemplateURL`), has its `AWS::Include`s put in as packaging puts them, then each
///   local path judged: inside the service folder or declared in its inputs; a nested template
///   also for what Ferry cannot package and, without a build, what wants one; a template
///   nested in itself, or deeper than packaging goes, is named;
/// - without a build of the service's own (which could write them), each path must be there;
///   a folder is walked file by file, as the zip walks it, and must hold a file that leads
///   neither out of the repository nor to one the service does not watch (a folder outside the
///   service folder: a glob may take the folder but not its files); an archive must be one
///   Ferry can read; a file packed as it is must be one the service may read.
///
/// With a build, packaging reads the template the build writes, but the paths of the source
/// templates are held to the same rule: they are what change detection watches. A template is
/// read only when it is a regular file, at most as large as CloudFormation takes, that the
/// service may read; each is checked once per depth it is reached at (at most
/// [`MAX_NESTING`] + 1 times), each folder walked once.
struct SamCheck<'a> {
    ws: &'a Workspace,
    service: &'a Service,
    watched: Option<&'a files::Watched<'a>>,
    /// The service has a build: what the templates name may not exist yet.
    built: bool,
    excludes: Vec<&'a str>,
    /// The nested templates checked so far, repository-relative, with the deepest depth each was
    /// checked at: reached deeper, one is checked again (what it nests may then be too deep).
    seen: BTreeMap<String, usize>,
    /// The folders walked so far, by their real paths.
    walked: std::collections::BTreeSet<PathBuf>,
    out: Vec<PackageError>,
}

impl<'a> SamCheck<'a> {
    fn problems(
        ws: &'a Workspace,
        service: &'a Service,
        parsed: &serde_json::Value,
        watched: Option<&'a files::Watched<'a>>,
    ) -> Vec<PackageError> {
        if service.kind != ServiceKind::Sam || !sam::is_sam(parsed) {
            return Vec::new();
        }
        let mut check = SamCheck {
            ws,
            service,
            watched,
            built: !service.package.build.is_empty(),
            excludes: service.package.exclude.iter().map(String::as_str).collect(),
            seen: BTreeMap::new(),
            walked: Default::default(),
            out: Vec::new(),
        };
        // Each template repository-relative and normalised, as messages name it and to find
        // one nested in itself.
        let own = shown_template(service);
        check.template(parsed.clone(), &template_dir(service), &mut vec![own]);
        // A template reached at several depths says its problems once.
        let mut said = std::collections::BTreeSet::new();
        check.out.retain(|e| said.insert(e.to_string()));
        check.out
    }

    /// A problem of the template `file`.
    fn push_in(&mut self, file: &str, source: TemplateError) {
        self.out.push(PackageError::Template {
            service: self.service.name.clone(),
            path: file.to_string(),
            source,
        });
    }

    /// Checks the template `parsed`, whose folder is `base` (relative to the service folder);
    /// `stack` holds the templates nesting it, the service's own first, itself last.
    fn template(&mut self, mut parsed: serde_json::Value, base: &str, stack: &mut Vec<String>) {
        let file = stack.last().cloned().expect("a template is on the stack");
        let dir = self.service.dir.clone();
        if stack.len() > 1 {
            for (at, what) in sam::refused_nested(&parsed, self.built) {
                self.push_in(&file, TemplateError::Unsupported { at, what });
            }
        }
        self.includes(&mut parsed, base, &file);
        for l in sam::local_paths(&parsed) {
            let rel = match inside_service(&dir, base, &l, self.watched) {
                Ok(rel) => rel,
                Err(e) => {
                    self.push_in(&file, e);
                    continue;
                }
            };
            self.path(&parsed, &l, &rel, stack);
        }
    }

    /// Puts `template`'s `AWS::Include`s in, as packaging does (at most [`MAX_NESTING`] rounds
    /// of includes in included files): each must name a file the service may read, and parse.
    /// One that does not is said, and left out. With a build, only where each lies is judged.
    fn includes(&mut self, template: &mut serde_json::Value, base: &str, file: &str) {
        let dir = self.service.dir.clone();
        for round in 0.. {
            let includes = sam::local_includes(template);
            if includes.is_empty() {
                return;
            }
            if round == MAX_NESTING {
                self.push_in(file, includes_too_deep(&includes[0]));
                return;
            }
            for i in includes {
                let content = self.include(&i, &dir, base, file);
                if let Some(slot) = template.pointer_mut(&i.pointer) {
                    match content {
                        Some(content) => match beside_include(slot, content, &i) {
                            Ok(merged) => *slot = merged,
                            Err(e) => {
                                self.push_in(file, e);
                                *slot = serde_json::Value::Null;
                            }
                        },
                        // Not put in (said already, or a build makes it): the keys beside it
                        // stay, for the checks after this one.
                        None => match slot.as_object_mut() {
                            Some(map) if map.len() > 1 => {
                                map.remove("Fn::Transform");
                            }
                            _ => *slot = serde_json::Value::Null,
                        },
                    }
                }
            }
        }
    }

    /// The content of the include `i`, when it is one packaging would put in.
    fn include(
        &mut self,
        i: &sam::LocalInclude,
        dir: &str,
        base: &str,
        file: &str,
    ) -> Option<serde_json::Value> {
        let at = i.label();
        let rel = match in_service_folder(dir, base, &i.path, &at, self.watched) {
            Ok(rel) => rel,
            Err(e) => {
                self.push_in(file, e);
                return None;
            }
        };
        if self.built {
            return None;
        }
        include_content(self.ws, self.service, self.watched, &rel, at)
            .map_err(|e| self.out.push(e))
            .ok()
    }

    /// The local path `l`, at `rel` (relative to the service folder), in the template last on
    /// `stack`.
    fn path(
        &mut self,
        template: &serde_json::Value,
        l: &sam::LocalPath,
        rel: &str,
        stack: &mut Vec<String>,
    ) {
        let dir = self.service.dir.clone();
        let at = format!("{}.{}", l.site.label(), l.site.property());
        let path = self.ws.root.join(&dir).join(rel);
        // Through links: a broken one is as missing as a path that names nothing.
        let Ok(meta) = fs::metadata(&path) else {
            if !self.built {
                self.out.push(PackageError::MissingPath {
                    service: self.service.name.clone(),
                    at,
                    path: repo_path(&dir, rel),
                });
            }
            return;
        };
        if l.packing != sam::Packing::Zip && meta.is_dir() {
            self.out.push(PackageError::NotAFile {
                service: self.service.name.clone(),
                resource: l.site.label(),
                property: l.site.property().to_string(),
                path: rel.to_string(),
            });
            return;
        }
        if !self.built
            && meta.is_dir()
            && let Some((at, what)) = sam::compiled_source(template, l, &path)
        {
            // Said, and the folder still judged: every problem at once.
            let file = stack.last().cloned().expect("a template is on the stack");
            self.push_in(&file, TemplateError::Unsupported { at, what });
        }
        let template = l.packing == sam::Packing::Template;
        // A template is read below: whatever the build, only one the service may read.
        let may_read = if self.built && !template {
            true
        } else if meta.is_dir() {
            self.folder(l, rel, &path)
        } else {
            self.file(l, rel, &path)
        };
        if template && may_read && meta.is_file() {
            self.nested(l, rel, stack);
        }
    }

    /// A file packaging packs (`path`, at `rel`): one the service may read; an archive, one
    /// Ferry can read. Whether it passed.
    fn file(&mut self, l: &sam::LocalPath, rel: &str, path: &Path) -> bool {
        if let Some(watched) = self.watched
            && let Err(e) = check_single_file(self.ws, watched, path)
        {
            self.out.push(e);
            return false;
        }
        let archive = l.packing == sam::Packing::Zip && is_prebuilt_archive(rel);
        if archive && let Err(problem) = check_prebuilt(path) {
            self.out.push(PackageError::PrebuiltArchive {
                service: self.service.name.clone(),
                resource: l.site.label(),
                path: rel.to_string(),
                problem,
            });
            return false;
        }
        true
    }

    /// A folder packaging zips (`path`, at `rel`): walked file by file, as the zip walks it
    /// (a folder inside the service folder too: a link in it may lead out of the repository,
    /// which the zip refuses). Whether it passed.
    fn folder(&mut self, l: &sam::LocalPath, rel: &str, path: &Path) -> bool {
        let Some(watched) = self.watched else {
            return true;
        };
        let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if !self.walked.insert(real) {
            return true;
        }
        let label = l.site.label();
        match files_of(
            self.ws,
            self.service,
            watched,
            path,
            &self.excludes,
            &label,
            &|_| {},
        ) {
            Ok(entries) if entries.is_empty() => {
                self.out.push(PackageError::EmptyArtifact {
                    service: self.service.name.clone(),
                    resource: label,
                    path: rel.to_string(),
                });
                false
            }
            Ok(_) => true,
            Err(e) => {
                self.out.push(e);
                false
            }
        }
    }

    /// The template `l` names, at `rel` (relative to the service folder), a regular file the
    /// service may read: read and checked, unless it was at this depth or deeper already;
    /// named as too deep when it nests itself or lies deeper than packaging goes.
    fn nested(&mut self, l: &sam::LocalPath, rel: &str, stack: &mut Vec<String>) {
        let file = repo_path(&self.service.dir, rel);
        let depth = stack.len();
        if depth > MAX_NESTING || stack.contains(&file) {
            let e = TemplateError::NestedTooDeep {
                site: l.site.label(),
                path: l.path.clone(),
                max: MAX_NESTING,
            };
            let naming = stack.last().cloned().expect("a template is on the stack");
            self.push_in(&naming, e);
            return;
        }
        if self.seen.get(&file).is_some_and(|d| *d >= depth) {
            return;
        }
        self.seen.insert(file.clone(), depth);
        match read_template(&self.ws.root.join(&file)) {
            Ok(parsed) => {
                let base = rel.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                stack.push(file);
                self.template(parsed, &base, stack);
                stack.pop();
            }
            Err(e) => self.push_in(&file, e),
        }
    }
}

/// Zips every file under `dir` reproducibly (see [`zip`]) into the artifact store under `out`,
/// as a package does; the archive is then at [`artifact_path`]. For archives another tool
/// wrote: unpacked into `dir`, they get the bytes Ferry would give the same files. Credential
/// files are left out as from any artifact; the second value lists them, for the caller to
/// report.
pub fn store_folder(out: &Path, dir: &Path) -> Result<(zip::Written, Vec<String>), PackageError> {
    // An unpacked archive: its own links stay inside it.
    let files::Collected { entries, withheld } =
        files::collect_unpacked(dir).map_err(|source| PackageError::Unpacked { source })?;
    let dest_dir = out.join("artifacts");
    fs::create_dir_all(&dest_dir).map_err(io_err(&dest_dir))?;
    let tmp = dest_dir.join(format!(
        ".folder-{}-{}.tmp",
        std::process::id(),
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    ));
    let written = zip::write(&entries, &tmp).map_err(store_err(dir))?;
    let dest = artifact_path(out, &written.sha256);
    fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
    Ok((written, withheld))
}

/// Keeps `bytes` in the content-addressed template store under `out`: the path relative to
/// `out` (`templates/<sha256>.<ext>`) and the hash.
pub fn store_template(
    out: &Path,
    bytes: &[u8],
    ext: &str,
) -> Result<(String, String), PackageError> {
    let sha = sha256_hex(bytes);
    let rel = format!("templates/{sha}.{ext}");
    let dest = out.join(&rel);
    if !holds(&dest, &sha) {
        write_atomic(&dest, bytes)?;
    }
    Ok((rel, sha))
}

/// Whether `path` holds bytes with this hash: a file of the store named by its hash that was
/// edited since (by hand, or a tool) is no longer what its name says.
pub(crate) fn holds(path: &Path, sha256: &str) -> bool {
    file_sha256(path).is_ok_and(|h| h == sha256)
}

/// The SHA-256 (hex) of the file at `path`, read in pieces.
pub(crate) fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut hash = Sha256::new();
    std::io::copy(&mut fs::File::open(path)?, &mut hash)?;
    Ok(zip::hex(&hash.finalize()))
}

/// [`holds`], for a file whose size is known: one of another size is judged without reading it.
fn holds_sized(path: &Path, sha256: &str, size: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size) && holds(path, sha256)
}

/// Where a zip is kept locally.
pub fn artifact_path(out: &Path, sha256: &str) -> PathBuf {
    out.join("artifacts").join(format!("{sha256}.zip"))
}

/// Where a site file is kept locally.
pub fn blob_path(out: &Path, sha256: &str) -> PathBuf {
    out.join("blobs").join(sha256)
}

/// Runs `service`'s `[package] build` in `dir` (see [`build::run`]): stage variables removed,
/// the project and service named, stopped after its `timeout`.
fn run_build(
    ws: &Workspace,
    service: &Service,
    dir: &Path,
    mask: &(dyn Fn(&str) -> String + Sync),
    on: &dyn Fn(Event),
    cancelled: &dyn Fn() -> bool,
) -> Result<(), PackageError> {
    let argv = &service.package.build;
    let command = mask(&argv.join(" "));
    on(Event::Building {
        service: service.name.clone(),
        command: command.clone(),
    });
    let remove = ferry_env::inherited_stage_variables();
    let env: Vec<(&str, &str)> = [
        (ferry_env::PROJECT, ws.project.name.as_str()),
        (ferry_env::SERVICE, service.name.as_str()),
        ferry_env::SOURCE_DATE_EPOCH,
    ]
    .into_iter()
    .chain(ferry_env::NO_AWS_SETUP)
    .collect();
    let limits = build::Limits {
        timeout: service.package.build_timeout(),
        keep: 20,
        cancelled,
    };
    let output = build::run(argv, dir, &env, &remove, &limits).map_err(|e| {
        PackageError::BuildNotStarted {
            service: service.name.clone(),
            command: command.clone(),
            message: mask(&e.to_string()),
        }
    })?;
    let status = match output.ran {
        build::Ran::Exited(s) if s.success() => return Ok(()),
        // The terminal's Ctrl-C reaches the build too, which may end before the wait sees the
        // run's cancellation.
        build::Ran::Exited(_) if cancelled() => {
            return Err(PackageError::Cancelled {
                service: service.name.clone(),
            });
        }
        build::Ran::Exited(s) => s.to_string(),
        build::Ran::TimedOut(t) => format!(
            "stopped after {} s; package.timeout in {} sets how long it may run",
            t.as_secs(),
            service.manifest_path()
        ),
        build::Ran::Lost(e) => format!("waiting for it failed: {e}"),
        build::Ran::Cancelled => {
            return Err(PackageError::Cancelled {
                service: service.name.clone(),
            });
        }
    };
    let first = output
        .first_error
        .as_ref()
        .map(|(lines, between)| (&lines[..], *between));
    let tail = ferry_env::output_excerpt(first, &output.lines, &|l| mask(l));
    Err(PackageError::BuildFailed {
        service: service.name.clone(),
        command,
        status,
        tail,
    })
}

/// The files of `src` (a folder or a file) minus the exclude globs of `service`'s manifest, minus
/// credential files (reported through `on` as [`Event::Withheld`] of `what`), and minus the
/// folders of services nested in it (their files are theirs: an edit there deploys them, not
/// `service`); symbolic links may lead anywhere inside the repository, not out of it.
fn files_of(
    ws: &Workspace,
    service: &Service,
    watched: &files::Watched<'_>,
    src: &Path,
    globs: &[&str],
    what: &str,
    on: &dyn Fn(Event),
) -> Result<Vec<zip::Entry>, PackageError> {
    let nested = nested_service_globs(ws, service, src);
    let globs: Vec<&str> = globs
        .iter()
        .copied()
        .chain(nested.iter().map(String::as_str))
        .collect();
    let root = &ws.root;
    let set = files::exclude_set(&globs).map_err(|e| PackageError::Io {
        path: service.manifest_path(),
        source: io::Error::other(e.to_string()),
    })?;
    let found = files::collect(src, &set, root, Some(watched)).map_err(io_err(src))?;
    if !found.withheld.is_empty() {
        on(Event::Withheld {
            service: service.name.clone(),
            what: what.to_string(),
            files: found.withheld,
        });
    }
    Ok(found.entries)
}

/// Globs (`/<path>`, anchored at `folder`) of the folders of services nested in `service`'s
/// folder that lie in `folder` (the service folder, or an artifact folder inside it): their
/// files are theirs, an edit there deploys them, not `service`.
fn nested_service_globs(ws: &Workspace, service: &Service, folder: &Path) -> Vec<String> {
    let inner = format!("{}/", service.dir);
    ws.services
        .iter()
        .filter(|o| o.dir.starts_with(&inner))
        .filter_map(|o| {
            let rel = ws.root.join(&o.dir);
            let rel = rel.strip_prefix(folder).ok()?.to_str()?;
            (!rel.is_empty()).then(|| format!("/{}", globset::escape(rel)))
        })
        .collect()
}

/// The package folder, held by this process until dropped: two processes packaging into one
/// folder (two stages deployed at once from one checkout) would run the same builds in the same
/// service folders while the other zips them, and cache what they zipped. The lock is the
/// operating system's (flock on `<folder>/.lock`), so a process that dies lets go of it.
#[derive(Debug)]
pub struct FolderLock {
    folder: PathBuf,
    _file: fs::File,
}

impl FolderLock {
    fn open(out: &Path) -> Result<(PathBuf, fs::File), PackageError> {
        fs::create_dir_all(out).map_err(io_err(out))?;
        let path = out.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok((path, file))
    }

    /// Takes the folder `out` unless another process holds it (`None`); never blocks.
    pub fn try_take(out: &Path) -> Result<Option<FolderLock>, PackageError> {
        let (path, file) = Self::open(out)?;
        match file.try_lock() {
            Ok(()) => {
                remove_leftovers(out);
                Ok(Some(FolderLock {
                    folder: out.to_path_buf(),
                    _file: file,
                }))
            }
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    /// Takes the folder `out`, waiting (blocking the thread) while another process holds it.
    pub fn take(out: &Path) -> Result<FolderLock, PackageError> {
        let (path, file) = Self::open(out)?;
        file.lock().map_err(io_err(&path))?;
        remove_leftovers(out);
        Ok(FolderLock {
            folder: out.to_path_buf(),
            _file: file,
        })
    }

    /// The folder held.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

/// Removes the temporary files of the stores under `out` that a process killed while it wrote
/// them left behind (an archive being zipped: tens of MB each): those naming a process that is
/// gone (`.<name>.<pid>.tmp`, `.folder-<pid>-<name>.tmp`), and any other a day old. Best effort.
fn remove_leftovers(out: &Path) {
    const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
    for store in ["artifacts", "templates", "blobs"] {
        let Ok(entries) = fs::read_dir(out.join(store)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if !name.starts_with('.') || !(name.ends_with(".tmp") || name.starts_with(".tmp")) {
                continue;
            }
            let gone = leftover_pid(name).is_some_and(|pid| !process_alive(pid));
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > DAY));
            if gone || old {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// The process id a temporary file's name holds, in the forms the stores write.
fn leftover_pid(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".tmp")?;
    if let Some(rest) = stem.strip_prefix(".folder-") {
        return rest.split('-').next()?.parse().ok();
    }
    stem.rsplit('.').next()?.parse().ok()
}

/// Whether process `pid` exists (on Linux, by `/proc`; elsewhere assumed alive).
pub fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// What change detection watches, for every service of `ws` (see [`files::Watched`]).
fn owners<'a>(
    ws: &'a Workspace,
    service: &Service,
) -> Result<ferry_manifest::Owners<'a>, PackageError> {
    ferry_manifest::Owners::of_workspace(ws).map_err(|e| PackageError::Io {
        path: service.manifest_path(),
        source: io::Error::other(e.to_string()),
    })
}

/// A single file an artifact names, checked as the files of a folder are: inside the
/// repository, a link only to what the service's change detection watches, no credential file.
fn check_single_file(
    ws: &Workspace,
    watched: &files::Watched<'_>,
    path: &Path,
) -> Result<(), PackageError> {
    files::collect(path, &globset::GlobSet::empty(), &ws.root, Some(watched))
        .map(drop)
        .map_err(io_err(path))
}

fn package_service(
    ws: &Workspace,
    service: &Service,
    out: &Path,
    mask: &(dyn Fn(&str) -> String + Sync),
    on: &dyn Fn(Event),
    cancelled: &dyn Fn() -> bool,
) -> Result<ServicePackage, PackageError> {
    let dir = ws.root.join(&service.dir);
    let spec = &service.package;
    let template_path = ws.root.join(service.template_path());
    let text = fs::read_to_string(&template_path).map_err(io_err(&template_path))?;
    let template_err = |source| PackageError::Template {
        service: service.name.clone(),
        path: shown_template(service),
        source,
    };

    // Check the template before running anything: an undeclared local path fails fast.
    let mut parsed = template::parse(&text).map_err(template_err)?;
    let owners = owners(ws, service)?;
    let watched = files::Watched::new(&owners, &service.name);
    check_parameters(service, &parsed, &watched).map_err(template_err)?;
    check_code_paths(service, &mut parsed)?;

    if !spec.build.is_empty() {
        run_build(ws, service, &dir, mask, on, cancelled)?;
    }
    // What a SAM build wrote (`sam build`: every code path pointing at what it built) is
    // packaged in place of the service's own template, which was checked above.
    let (text, mut parsed, template_name, base, packaged) = match &spec.built_template {
        Some(built) if service.kind == ServiceKind::Sam => {
            let rel = format!("{}/{built}", service.dir);
            let path = ws.root.join(&rel);
            let text =
                fs::read_to_string(&path).map_err(|_| PackageError::BuiltTemplateMissing {
                    service: service.name.clone(),
                    path: rel.clone(),
                })?;
            let built_err = |source| PackageError::Template {
                service: service.name.clone(),
                path: rel.clone(),
                source,
            };
            let parsed = template::parse(&text).map_err(built_err)?;
            require_sam(&parsed).map_err(built_err)?;
            let base = built
                .rsplit_once('/')
                .map_or(String::new(), |(d, _)| d.to_string());
            (text, parsed, built.clone(), base, rel)
        }
        _ => (
            text,
            parsed,
            service.template.clone(),
            template_dir(service),
            service.template_path(),
        ),
    };
    // From here on, a problem of the template names the file packaged (the built one, after a
    // SAM build).
    let template_err = |source| PackageError::Template {
        service: service.name.clone(),
        path: packaged.clone(),
        source,
    };

    let store = Store {
        ws,
        service,
        watched,
        dir: &dir,
        out,
        on,
    };
    let mut included = 0;
    let artifacts = match service.kind {
        ServiceKind::Cloudformation => {
            let mut artifacts = Vec::new();
            for (resource, a) in &spec.artifacts {
                let globs: Vec<&str> = spec
                    .exclude
                    .iter()
                    .chain(&a.exclude)
                    .map(String::as_str)
                    .collect();
                let (sha256, size, files) = store.zip(resource, &a.path, &globs)?;
                let key = store.key(&sha256, "zip");
                let property =
                    template::point_at(&mut parsed, resource, &key).map_err(template_err)?;
                artifacts.push(PackagedArtifact {
                    resource: resource.clone(),
                    property,
                    format: ArtifactFormat::Zip,
                    source: a.path.clone(),
                    key,
                    sha256,
                    size,
                    files,
                });
            }
            artifacts
        }
        ServiceKind::Serverless => {
            return Err(PackageError::PerStage {
                service: service.name.clone(),
            });
        }
        ServiceKind::Sam => {
            let mut artifacts = Vec::new();
            let nested = |e| match e {
                Nested::Template(source) => template_err(source),
                Nested::Package(p) => *p,
            };
            included = store.inline_includes(&mut parsed, &base).map_err(nested)?;
            store
                .sam(&mut parsed, &base, 0, &mut artifacts)
                .map_err(nested)?;
            artifacts
        }
    };

    // Without artifacts (nor included files) the template is deployed exactly as written.
    let (bytes, ext) = if artifacts.is_empty() && included == 0 {
        let ext = Path::new(&template_name)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("yaml")
            .to_string();
        (text.into_bytes(), ext)
    } else {
        // The bucket is passed only to a template with artifacts.
        if !artifacts.is_empty() {
            template::add_bucket_parameter(&mut parsed).map_err(template_err)?;
        }
        let mut b = serde_json::to_vec_pretty(&parsed).expect("JSON values serialize");
        b.push(b'\n');
        (b, "json".to_string())
    };
    let template_sha256 = sha256_hex(&bytes);
    let template_rel = format!("templates/{template_sha256}.{ext}");
    let dest = out.join(&template_rel);
    // Written again when edited since (a template goes to CloudFormation from this file).
    if !holds(&dest, &template_sha256) {
        write_atomic(&dest, &bytes)?;
    }

    let site = match &spec.site {
        Some(s) => Some(snapshot_site(
            ws,
            service,
            &store.watched,
            &dir,
            s,
            out,
            on,
        )?),
        None => None,
    };
    Ok(ServicePackage {
        template: template_rel,
        template_sha256,
        template_size: bytes.len() as u64,
        artifacts,
        site,
        input_key: None,
        ignored_files: None,
    })
}

/// Where one service's artifacts go: zips under `artifacts/`, files under `blobs/`, keys
/// `<project>/<service>/<sha256>.<ext>`.
struct Store<'a> {
    ws: &'a Workspace,
    service: &'a Service,
    /// What the service's change detection watches: where a link in its files may lead.
    watched: files::Watched<'a>,
    /// The service folder on disk.
    dir: &'a Path,
    out: &'a Path,
    on: &'a dyn Fn(Event),
}

/// Nested applications go at most this deep.
const MAX_NESTING: usize = 5;

/// A failure while packaging a (possibly nested) SAM template.
enum Nested {
    Template(TemplateError),
    Package(Box<PackageError>),
}

impl From<PackageError> for Nested {
    fn from(e: PackageError) -> Self {
        Nested::Package(Box::new(e))
    }
}

impl From<TemplateError> for Nested {
    fn from(e: TemplateError) -> Self {
        Nested::Template(e)
    }
}

impl Store<'_> {
    fn key(&self, sha256: &str, ext: &str) -> String {
        format!(
            "{}/{}/{sha256}.{ext}",
            self.ws.project.name, self.service.name
        )
    }

    /// Zips `rel` (relative to the service folder) into the store: (sha256, size, files). A
    /// `.zip` or `.jar` file is stored as it is.
    fn zip(
        &self,
        label: &str,
        rel: &str,
        globs: &[&str],
    ) -> Result<(String, u64, usize), PackageError> {
        let service = self.service;
        let src = self.dir.join(rel);
        if !src.exists() {
            return Err(PackageError::MissingArtifact {
                service: service.name.clone(),
                resource: label.to_string(),
                path: rel.to_string(),
                dir: service.dir.clone(),
            });
        }
        let dest_dir = self.out.join("artifacts");
        fs::create_dir_all(&dest_dir).map_err(io_err(&dest_dir))?;
        let archive = src.is_file() && is_prebuilt_archive(rel);
        let (sha256, size, files) = if archive {
            check_single_file(self.ws, &self.watched, &src)?;
            check_prebuilt(&src).map_err(|problem| PackageError::PrebuiltArchive {
                service: service.name.clone(),
                resource: label.to_string(),
                path: rel.to_string(),
                problem,
            })?;
            let (sha, size) = store_file(&src, &dest_dir, |sha| artifact_path(self.out, sha))?;
            (sha, size, 1)
        } else {
            let entries = files_of(self.ws, service, &self.watched, &src, globs, label, self.on)?;
            if entries.is_empty() {
                return Err(PackageError::EmptyArtifact {
                    service: service.name.clone(),
                    resource: label.to_string(),
                    path: rel.to_string(),
                });
            }
            let tmp = dest_dir.join(format!(
                ".{}-{label}.{}.tmp",
                service.name,
                std::process::id()
            ));
            let written = zip::write(&entries, &tmp).map_err(store_err(&src))?;
            let dest = artifact_path(self.out, &written.sha256);
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            (written.sha256, written.size, written.entries)
        };
        (self.on)(Event::Zipped {
            service: service.name.clone(),
            resource: label.to_string(),
            files,
            size,
            sha256: sha256.clone(),
        });
        Ok((sha256, size, files))
    }

    /// Puts the content of each file `template` includes with `AWS::Include` (a local
    /// `Location`, relative to `base`, the template's folder) in the transform's place, as the
    /// transform itself would (see [`sam::LocalInclude`]); included files may include others,
    /// [`MAX_NESTING`] deep. The files are checked as a single-file artifact is (inside the
    /// service folder, links only to watched files, no credential file). Returns how many were
    /// put in.
    fn inline_includes(
        &self,
        template: &mut serde_json::Value,
        base: &str,
    ) -> Result<usize, Nested> {
        let mut count = 0;
        for round in 0.. {
            let includes = sam::local_includes(template);
            if includes.is_empty() {
                break;
            }
            if round == MAX_NESTING {
                return Err(includes_too_deep(&includes[0]).into());
            }
            for i in includes {
                let at = i.label();
                let rel =
                    in_service_folder(&self.service.dir, base, &i.path, &at, Some(&self.watched))?;
                let content =
                    include_content(self.ws, self.service, Some(&self.watched), &rel, at)?;
                let slot = template
                    .pointer_mut(&i.pointer)
                    .expect("found in this template just now");
                *slot = beside_include(slot, content, &i)?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Keeps `bytes` in the blob store: (sha256, size).
    fn file(&self, bytes: &[u8]) -> Result<(String, u64), PackageError> {
        let sha = sha256_hex(bytes);
        let dest = blob_path(self.out, &sha);
        if !dest.is_file() {
            write_atomic(&dest, bytes)?;
        }
        Ok((sha, bytes.len() as u64))
    }

    /// Packages every local path of the SAM (or nested) template `template`, whose folder is
    /// `base` (relative to the service folder), and points each at its key.
    fn sam(
        &self,
        template: &mut serde_json::Value,
        base: &str,
        depth: usize,
        artifacts: &mut Vec<PackagedArtifact>,
    ) -> Result<(), Nested> {
        let spec = &self.service.package;
        let excludes: Vec<&str> = spec.exclude.iter().map(String::as_str).collect();
        sam::drop_unused_globals_code(template);
        for l in sam::local_paths(template) {
            let rel = inside_service(&self.service.dir, base, &l, Some(&self.watched))?;
            let label = l.site.label();
            let property = l.site.property().to_string();
            let not_a_file = || PackageError::NotAFile {
                service: self.service.name.clone(),
                resource: label.clone(),
                property: property.clone(),
                path: rel.clone(),
            };
            let missing = || PackageError::MissingArtifact {
                service: self.service.name.clone(),
                resource: label.clone(),
                path: rel.clone(),
                dir: self.service.dir.clone(),
            };
            // A path packed as one file: there, a file, and one the service may read.
            let single_file = || -> Result<PathBuf, Nested> {
                let path = self.dir.join(&rel);
                if path.is_dir() {
                    return Err(not_a_file().into());
                }
                if !path.exists() {
                    return Err(missing().into());
                }
                check_single_file(self.ws, &self.watched, &path)?;
                Ok(path)
            };
            let (format, sha256, size, files, ext) = match l.packing {
                sam::Packing::Zip => {
                    if spec.build.is_empty()
                        && let Some((at, what)) =
                            sam::compiled_source(template, &l, &self.dir.join(&rel))
                    {
                        return Err(TemplateError::Unsupported { at, what }.into());
                    }
                    let (sha, size, files) = self.zip(&label, &rel, &excludes)?;
                    (ArtifactFormat::Zip, sha, size, files, "zip".to_string())
                }
                sam::Packing::File | sam::Packing::S3Uri => {
                    let path = single_file()?;
                    let bytes = fs::read(&path).map_err(|_| missing())?;
                    let (sha, size) = self.file(&bytes)?;
                    let ext = Path::new(&rel)
                        .extension()
                        .and_then(|e| e.to_str())
                        .unwrap_or("txt")
                        .to_string();
                    (ArtifactFormat::File, sha, size, 1, ext)
                }
                sam::Packing::Template => {
                    if depth >= MAX_NESTING {
                        return Err(TemplateError::NestedTooDeep {
                            site: label,
                            path: l.path.clone(),
                            max: MAX_NESTING,
                        }
                        .into());
                    }
                    let path = single_file()?;
                    // A problem of the nested template names that file, not the one above it.
                    let in_nested = |e| match e {
                        Nested::Template(source) => Nested::from(PackageError::Template {
                            service: self.service.name.clone(),
                            path: repo_path(&self.service.dir, &rel),
                            source,
                        }),
                        other => other,
                    };
                    let mut nested = read_template(&path)
                        .map_err(Nested::from)
                        .map_err(in_nested)?;
                    // As for the service's own template: what Ferry cannot package, and what
                    // only a build would make deployable.
                    let built = !self.service.package.build.is_empty();
                    let refused = sam::refused_nested(&nested, built);
                    if let Some((at, what)) = refused.into_iter().next() {
                        return Err(in_nested(TemplateError::Unsupported { at, what }.into()));
                    }
                    let nested_base = rel.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                    self.inline_includes(&mut nested, &nested_base)
                        .map_err(in_nested)?;
                    self.sam(&mut nested, &nested_base, depth + 1, artifacts)
                        .map_err(in_nested)?;
                    // The stack passes the bucket down whether or not it uses it.
                    template::add_bucket_parameter(&mut nested)
                        .map_err(Nested::from)
                        .map_err(in_nested)?;
                    let mut bytes =
                        serde_json::to_vec_pretty(&nested).expect("JSON values serialize");
                    bytes.push(b'\n');
                    let (sha, size) = self.file(&bytes)?;
                    (
                        ArtifactFormat::File,
                        sha,
                        size,
                        1,
                        "template.json".to_string(),
                    )
                }
            };
            let key = self.key(&sha256, &ext);
            sam::point_at(template, &l, &key)?;
            artifacts.push(PackagedArtifact {
                resource: label,
                property,
                format,
                source: rel,
                key,
                sha256,
                size,
                files,
            });
        }
        Ok(())
    }
}

/// Copies a site's files into the content-addressed blob store: the package keeps the exact
/// bytes that every stage will publish.
fn snapshot_site(
    ws: &Workspace,
    service: &Service,
    watched: &files::Watched<'_>,
    dir: &Path,
    site: &ferry_manifest::Site,
    out: &Path,
    on: &dyn Fn(Event),
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
    // The generated config file is written at upload time, never taken from the folder: that
    // path exactly (anchored, its name not read as a pattern), not files of the same name in
    // subfolders.
    let config = site
        .config_file
        .as_ref()
        .map(|c| format!("/{}", globset::escape(c.trim_start_matches('/'))));
    if let Some(c) = &config {
        globs.push(c);
    }
    let entries = files_of(ws, service, watched, &src, &globs, "site", on)?;
    let mut files = Vec::new();
    let mut all = Sha256::new();
    let blobs = out.join("blobs");
    for e in entries {
        let (sha, size) = store_file(&e.path, &blobs, |sha| blob_path(out, sha))?;
        all.update(format!("{}\0{sha}\n", e.name).as_bytes());
        files.push(SiteFile {
            name: e.name,
            sha256: sha,
            size,
        });
    }
    // Where it goes counts too: a site pointed at another bucket output publishes again.
    all.update(
        format!(
            "{:?}{:?}{:?}",
            site.prefix, site.config_file, site.bucket_output
        )
        .as_bytes(),
    );
    Ok(PackagedSite {
        source: site.path.clone(),
        bucket_output: site.bucket_output.clone(),
        prefix: site.prefix.clone(),
        config_file: site.config_file.clone(),
        sha256: zip::hex(&all.finalize()),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input a path outside the service folder is advised as is the glob that matches it:
    /// a route folder's `[slug]` written as it is would be a set of characters.
    #[test]
    fn a_path_outside_is_advised_as_a_glob_of_it_alone() {
        let e = TemplateError::PathOutside(Box::new(OutsidePath {
            at: "Fn.CodeUri".into(),
            path: "../../lib/[slug]/".into(),
            repo_path: "lib/[slug]".into(),
        }));
        assert!(
            e.to_string().contains(
                "which is lib/[slug], outside the service folder and its declared inputs; "
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("(inputs = [\"lib/[[]slug[]]\"])"),
            "{e}"
        );
    }
}
