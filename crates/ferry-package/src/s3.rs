//! The artifact bucket: content-addressed archives, templates, site files and package entries
//! put there (so a recorded package can be deployed again without the source tree), fetched back
//! and verified by hash; and static sites published to the bucket a stack created.
//!
//! Keys under `<project>/<service>/`: `<sha256>.zip` (archives), `<sha256>.template.<ext>`,
//! `site/<sha256>` (site files) and `<sha256>.package.json` (the service's package entry, which
//! names all the others). The name of every object is the hash of its bytes, so an object
//! present under its key holds those bytes.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::{ArtifactFormat, PackageManifest, PackagedSite, ServicePackage, blob_path, sha256_hex};

/// CloudFormation's limit for a template passed inline; larger ones are deployed by URL.
pub use ferry_aws::MAX_INLINE_TEMPLATE;

/// An S3 client for `config`. With a custom endpoint (the local emulator), bucket names go in
/// the path: `<bucket>.127.0.0.1` resolves nowhere.
pub fn client(config: &aws_config::SdkConfig) -> Client {
    // Uploads of large archives take longer than the run's default read timeout allows.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(15 * 60))
        .build();
    let mut b = aws_sdk_s3::config::Builder::from(config).timeout_config(timeouts);
    if config.endpoint_url().is_some() {
        b = b.force_path_style(true);
    }
    Client::from_conf(b.build())
}

/// Uploads at once.
const PARALLEL_UPLOADS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "artifact bucket `{bucket}` is not usable: {message}; create it (versioning and encryption on, public access blocked) or set `artifact-bucket` for the stage in ferry.toml"
    )]
    Bucket { bucket: String, message: String },
    #[error("s3://{bucket}/{key}: {message}")]
    S3 {
        op: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
    #[error("{path}: {message}; package again (Ferry's `package`)")]
    Local { path: String, message: String },
    #[error(
        "{path}, a file of the local package store, is damaged (SHA-256 {got}, not the {expected} its name promises: truncated or written over): nothing was uploaded from it, and it was removed, so that the next run packages it anew; run again"
    )]
    Damaged {
        path: String,
        expected: String,
        got: String,
    },
    #[error(
        "s3://{bucket}/{key} is missing: the stored package of {what} is gone from the artifact bucket (deleted, or never uploaded by this version of Ferry); deploy that commit again to store it"
    )]
    Missing {
        bucket: String,
        key: String,
        what: String,
    },
    #[error(
        "s3://{bucket}/{key} does not hold the bytes its name promises (it was stored with {got}, not the SHA-256 {expected}: written over outside Ferry), and this machine's package store has no {path} to put them back from: nothing was deployed from it; restore the version Ferry put where the bucket keeps versions (those `bootstrap` makes do: `aws s3api list-object-versions --bucket {bucket} --prefix {key}` lists them), or deploy from a machine that packaged it"
    )]
    WrittenOver {
        bucket: String,
        key: String,
        path: String,
        expected: String,
        got: String,
    },
    #[error(
        "s3://{bucket}/{key} does not hold the bytes its name promises (SHA-256 {got}, expected {expected}); someone wrote over it: nothing was deployed from it"
    )]
    Mismatch {
        bucket: String,
        key: String,
        expected: String,
        got: String,
    },
}

/// What [`upload`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    pub uploaded: usize,
    /// Already in the bucket: not sent again.
    pub present: usize,
    pub bytes: u64,
    /// Service → URL of its template, for templates too large to pass inline.
    pub template_urls: BTreeMap<String, String>,
    /// Service → key of its stored package entry (see [`entry_key`]).
    pub entries: BTreeMap<String, String>,
}

/// What an object's bytes come from.
enum Body {
    File(std::path::PathBuf),
    Bytes(Vec<u8>),
}

/// An object to put unless present.
struct Object {
    key: String,
    body: Body,
    content_type: &'static str,
    /// The SHA-256 (hex) the bytes must have: S3 checks it and refuses other bytes.
    sha256: String,
}

/// What one service deploys from the bucket: its package (archives, files, template, site).
pub struct ServiceUpload<'a> {
    pub service: &'a str,
    pub package: &'a ServicePackage,
}

/// The key of a service's template in the artifact bucket.
pub fn template_key(project: &str, service: &str, package: &ServicePackage) -> String {
    let ext = package.template.rsplit('.').next().unwrap_or("json");
    format!(
        "{project}/{service}/{}.template.{ext}",
        package.template_sha256
    )
}

/// The key of a site file in the artifact bucket.
pub fn site_file_key(project: &str, service: &str, sha256: &str) -> String {
    format!("{project}/{service}/site/{sha256}")
}

/// The key of a package entry (its JSON, [`ServicePackage::stored`]) in the artifact bucket.
pub fn entry_key(project: &str, service: &str, sha256: &str) -> String {
    format!("{project}/{service}/{sha256}.package.json")
}

/// Uploads the artifacts (and templates over [`MAX_INLINE_TEMPLATE`]) of `services` in
/// `manifest` to `bucket`, skipping objects already there.
pub async fn upload(
    s3: &Client,
    bucket: &str,
    out: &Path,
    manifest: &PackageManifest,
    services: &[String],
) -> Result<UploadReport, UploadError> {
    let uploads: Vec<ServiceUpload<'_>> = services
        .iter()
        .filter_map(|name| {
            Some(ServiceUpload {
                service: name,
                package: manifest.services.get(name)?,
            })
        })
        .collect();
    upload_services(s3, bucket, out, &manifest.project, &uploads).await
}

/// Uploads what `uploads` deploy from `bucket` (project `project`), skipping objects already
/// there: archives, the template, site files and the package entry, so that the package can be
/// deployed again from the bucket alone. A template over [`MAX_INLINE_TEMPLATE`] gets its URL in
/// the report.
pub async fn upload_services(
    s3: &Client,
    bucket: &str,
    out: &Path,
    project: &str,
    uploads: &[ServiceUpload<'_>],
) -> Result<UploadReport, UploadError> {
    let mut objects = Vec::new();
    let mut report = UploadReport::default();
    for u in uploads {
        let sp = u.package;
        for a in &sp.artifacts {
            objects.push(Object {
                key: a.key.clone(),
                body: Body::File(a.local_path(out)),
                content_type: match a.format {
                    ArtifactFormat::Zip => "application/zip",
                    ArtifactFormat::File => "text/plain",
                },
                sha256: a.sha256.clone(),
            });
        }
        let key = template_key(project, u.service, sp);
        if sp.template_size > MAX_INLINE_TEMPLATE as u64 {
            report
                .template_urls
                .insert(u.service.to_string(), template_url(s3, bucket, &key));
        }
        objects.push(Object {
            key,
            body: Body::File(out.join(&sp.template)),
            content_type: "text/plain",
            sha256: sp.template_sha256.clone(),
        });
        for f in sp.site.iter().flat_map(|s| &s.files) {
            objects.push(Object {
                key: site_file_key(project, u.service, &f.sha256),
                body: Body::File(blob_path(out, &f.sha256)),
                content_type: "application/octet-stream",
                sha256: f.sha256.clone(),
            });
        }
        let (sha, json) = sp.stored();
        let key = entry_key(project, u.service, &sha);
        report.entries.insert(u.service.to_string(), key.clone());
        objects.push(Object {
            key,
            body: Body::Bytes(json),
            content_type: "application/json",
            sha256: sha,
        });
    }
    // An object several artifacts share (keys are content hashes: the same archive of two
    // functions, or of two services) is put once, and counted once.
    let mut seen = std::collections::HashSet::new();
    objects.retain(|o| seen.insert(o.key.clone()));
    if objects.is_empty() {
        return Ok(report);
    }
    if let Err(e) = s3.head_bucket().bucket(bucket).send().await {
        return Err(UploadError::Bucket {
            bucket: bucket.to_string(),
            message: ferry_aws::explain("HeadBucket", &e).to_string(),
        });
    }
    let results: Vec<Option<u64>> = stream::iter(objects)
        .map(|o| put_unless_present(s3, bucket, o))
        .buffer_unordered(PARALLEL_UPLOADS)
        .try_collect()
        .await?;
    for r in results {
        match r {
            Some(bytes) => {
                report.uploaded += 1;
                report.bytes += bytes;
            }
            None => report.present += 1,
        }
    }
    Ok(report)
}

/// The URL CloudFormation reads a template from (path style, regional endpoint).
fn template_url(s3: &Client, bucket: &str, key: &str) -> String {
    let region = s3
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    format!("https://s3.{region}.amazonaws.com/{bucket}/{key}")
}

/// Puts an object unless one with the key holds its bytes already: keys are content hashes,
/// and S3 keeps the SHA-256 each of Ferry's uploads carried, which a HeadObject returns. An
/// object under the key whose stored checksum is another, or that has none (put by someone
/// else: a role that may write the bucket, a pull request's build where stages share one,
/// could plant other code under the name of a package a named stage deploys), is put again.
/// Returns the bytes sent, or `None` when it was present.
async fn put_unless_present(
    s3: &Client,
    bucket: &str,
    o: Object,
) -> Result<Option<u64>, UploadError> {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(&o.key)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await;
    let expected = crate::sha256_base64(&o.sha256);
    // What another writer left under the key, when it is not the package.
    let mut other = None;
    match head {
        Ok(h) if expected.is_some() && h.checksum_sha256() == expected.as_deref() => {
            return Ok(None);
        }
        Ok(h) => {
            other = Some(
                h.checksum_sha256()
                    .map_or_else(|| "no SHA-256".to_string(), |c| format!("the SHA-256 {c}")),
            );
        }
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
        Err(e) => {
            return Err(UploadError::S3 {
                op: "HeadObject",
                bucket: bucket.into(),
                key: o.key,
                message: ferry_aws::explain("HeadObject", &e).to_string(),
            });
        }
    }
    match o.body {
        // Only the local store can put the package back; without it, say what happened to the
        // object, not that the store lacks a file.
        Body::File(path) if !path.exists() && other.is_some() => Err(UploadError::WrittenOver {
            bucket: bucket.into(),
            key: o.key,
            path: path.display().to_string(),
            expected: expected.unwrap_or_default(),
            got: other.unwrap_or_default(),
        }),
        Body::File(path) => put(s3, bucket, &o.key, &path, o.content_type, &o.sha256)
            .await
            .map(Some),
        Body::Bytes(bytes) => {
            let size = bytes.len() as u64;
            let body = ByteStream::from(bytes);
            put_body(s3, bucket, &o.key, body, o.content_type, &o.sha256).await?;
            Ok(Some(size))
        }
    }
}

/// The bytes of `key`, checked against `sha256`; `what` names the package in errors.
async fn get_verified(
    s3: &Client,
    bucket: &str,
    key: &str,
    sha256: &str,
    what: &str,
) -> Result<Vec<u8>, UploadError> {
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            return Err(UploadError::Missing {
                bucket: bucket.into(),
                key: key.into(),
                what: what.into(),
            });
        }
        Err(e) => {
            return Err(UploadError::S3 {
                op: "GetObject",
                bucket: bucket.into(),
                key: key.into(),
                message: ferry_aws::explain("GetObject", &e).to_string(),
            });
        }
    };
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| UploadError::S3 {
            op: "GetObject",
            bucket: bucket.into(),
            key: key.into(),
            message: e.to_string(),
        })?
        .into_bytes()
        .to_vec();
    let got = sha256_hex(&bytes);
    if got != sha256 {
        return Err(UploadError::Mismatch {
            bucket: bucket.into(),
            key: key.into(),
            expected: sha256.into(),
            got,
        });
    }
    Ok(bytes)
}

/// Puts fetched `bytes` at `path` in the local store, atomically (as a package writes it).
fn keep_local(path: &Path, bytes: &[u8]) -> Result<(), UploadError> {
    crate::write_atomic(path, bytes).map_err(|e| UploadError::Local {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Fetches the package entry stored at `key` (see [`entry_key`]) from `bucket` into the local
/// package store `out`: the entry, its template and site files and, with `archives`, the
/// archives the store lacks. Every object is checked against the hash its name holds; what the
/// store already has with the right hash is not fetched again. `what` names the package in errors.
pub async fn fetch_package(
    s3: &Client,
    bucket: &str,
    out: &Path,
    project: &str,
    service: &str,
    key: &str,
    archives: bool,
) -> Result<ServicePackage, UploadError> {
    let what = format!("{service} ({key})");
    let sha = key
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".package.json"))
        .unwrap_or_default()
        .to_string();
    let bytes = get_verified(s3, bucket, key, &sha, &what).await?;
    let sp: ServicePackage = serde_json::from_slice(&bytes).map_err(|e| UploadError::S3 {
        op: "GetObject",
        bucket: bucket.into(),
        key: key.into(),
        message: format!(
            "not a package entry Ferry can read ({e}); delete it and deploy that commit again"
        ),
    })?;
    let template = out.join(&sp.template);
    if !crate::holds(&template, &sp.template_sha256) {
        let k = template_key(project, service, &sp);
        let b = get_verified(s3, bucket, &k, &sp.template_sha256, &what).await?;
        keep_local(&template, &b)?;
    }
    for f in sp.site.iter().flat_map(|s| &s.files) {
        let path = blob_path(out, &f.sha256);
        if !crate::holds(&path, &f.sha256) {
            let k = site_file_key(project, service, &f.sha256);
            let b = get_verified(s3, bucket, &k, &f.sha256, &what).await?;
            keep_local(&path, &b)?;
        }
    }
    if archives {
        for a in &sp.artifacts {
            let path = a.local_path(out);
            if !crate::holds(&path, &a.sha256) {
                let b = get_verified(s3, bucket, &a.key, &a.sha256, &what).await?;
                keep_local(&path, &b)?;
            }
        }
    }
    Ok(sp)
}

/// Puts the file at `path`; S3 refuses bytes whose SHA-256 is not `sha256` (hex).
async fn put(
    s3: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    content_type: &str,
    sha256: &str,
) -> Result<u64, UploadError> {
    let local = |e: std::io::Error| UploadError::Local {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let size = std::fs::metadata(path).map_err(local)?.len();
    // The store is content addressed and trusted as such on reuse; a file cut short or written
    // over would go up under a name that promises other bytes (S3 refuses it, `BadDigest`, on
    // every run; a store without that check keeps it). Checked here, where it is read anyway.
    let got = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || crate::file_sha256(&path))
            .await
            .map_err(|e| local(std::io::Error::other(e)))?
            .map_err(local)?
    };
    if got != sha256 {
        let _ = std::fs::remove_file(path);
        return Err(UploadError::Damaged {
            path: path.display().to_string(),
            expected: sha256.to_string(),
            got,
        });
    }
    let body = ByteStream::from_path(path)
        .await
        .map_err(|e| UploadError::Local {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    put_body(s3, bucket, key, body, content_type, sha256).await?;
    Ok(size)
}

/// One PutObject. The request carries `sha256` (hex) as its checksum and S3 checks the bytes it
/// receives against it: the bytes stored under a content address are the ones hashed, even
/// when the local file changed after it was hashed.
async fn put_body(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: ByteStream,
    content_type: &str,
    sha256: &str,
) -> Result<(), UploadError> {
    let checksum = crate::sha256_base64(sha256);
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .set_checksum_algorithm(
            checksum
                .is_some()
                .then_some(aws_sdk_s3::types::ChecksumAlgorithm::Sha256),
        )
        .set_checksum_sha256(checksum)
        .body(body)
        .send()
        .await
        .map_err(|e| UploadError::S3 {
            op: "PutObject",
            bucket: bucket.into(),
            key: key.into(),
            message: ferry_aws::explain("PutObject", &e).to_string(),
        })?;
    Ok(())
}

/// The Content-Type of a site file, by extension.
fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn site_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Publishes a packaged site to `bucket`, then its generated config file (when the site has one)
/// with `config` as content. Returns the number of objects written. Objects the site no longer
/// has are left in place, so pages still open during a deploy keep loading.
pub async fn upload_site(
    s3: &Client,
    out: &Path,
    site: &PackagedSite,
    bucket: &str,
    config: Option<&[u8]>,
) -> Result<usize, UploadError> {
    let objects: Vec<_> = site
        .files
        .iter()
        .map(|f| {
            (
                site_key(&site.prefix, &f.name),
                blob_path(out, &f.sha256),
                content_type(&f.name),
                f.sha256.as_str(),
            )
        })
        .collect();
    let n = objects.len();
    stream::iter(objects)
        .map(|(key, path, ct, sha)| async move { put(s3, bucket, &key, &path, ct, sha).await })
        .buffer_unordered(PARALLEL_UPLOADS)
        .try_collect::<Vec<_>>()
        .await?;
    let mut written = n;
    if let (Some(name), Some(body)) = (&site.config_file, config) {
        let key = site_key(&site.prefix, name);
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(content_type(name))
            .cache_control("no-cache")
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .map_err(|e| UploadError::S3 {
                op: "PutObject",
                bucket: bucket.into(),
                key,
                message: ferry_aws::explain("PutObject", &e).to_string(),
            })?;
        written += 1;
    }
    Ok(written)
}
