//! Uploads: content-addressed artifacts and large templates to a stage's artifact bucket, and
//! static sites to the bucket a stack created.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::{ArtifactFormat, PackageManifest, PackagedArtifact, PackagedSite, blob_path};

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
    #[error("{path}: {message}; package again (`cargo xtask package`)")]
    Local { path: String, message: String },
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
}

/// An object to put unless present.
struct Object {
    key: String,
    path: std::path::PathBuf,
    content_type: &'static str,
}

/// What one service deploys from the bucket: its archives and files, and its template (put
/// there only when it is too large to pass inline).
pub struct ServiceUpload<'a> {
    pub service: &'a str,
    pub artifacts: &'a [PackagedArtifact],
    /// Relative to the package store.
    pub template: &'a str,
    pub template_sha256: &'a str,
    pub template_size: u64,
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
            let sp = manifest.services.get(name)?;
            Some(ServiceUpload {
                service: name,
                artifacts: &sp.artifacts,
                template: &sp.template,
                template_sha256: &sp.template_sha256,
                template_size: sp.template_size,
            })
        })
        .collect();
    upload_services(s3, bucket, out, &manifest.project, &uploads).await
}

/// Uploads what `uploads` deploy from `bucket` (project `project`), skipping objects already
/// there; a template over [`MAX_INLINE_TEMPLATE`] gets its URL in the report.
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
        for a in u.artifacts {
            objects.push(Object {
                key: a.key.clone(),
                path: a.local_path(out),
                content_type: match a.format {
                    ArtifactFormat::Zip => "application/zip",
                    ArtifactFormat::File => "text/plain",
                },
            });
        }
        if u.template_size > MAX_INLINE_TEMPLATE as u64 {
            let ext = u.template.rsplit('.').next().unwrap_or("json");
            let key = format!(
                "{project}/{}/{}.template.{ext}",
                u.service, u.template_sha256
            );
            report
                .template_urls
                .insert(u.service.to_string(), template_url(s3, bucket, &key));
            objects.push(Object {
                key,
                path: out.join(u.template),
                content_type: "text/plain",
            });
        }
    }
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

/// Puts an object unless one with the key exists (keys are content hashes, so it is the same).
/// Returns the bytes sent, or `None` when it was present.
async fn put_unless_present(
    s3: &Client,
    bucket: &str,
    o: Object,
) -> Result<Option<u64>, UploadError> {
    match s3.head_object().bucket(bucket).key(&o.key).send().await {
        Ok(_) => return Ok(None),
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
    put(s3, bucket, &o.key, &o.path, o.content_type)
        .await
        .map(Some)
}

async fn put(
    s3: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    content_type: &str,
) -> Result<u64, UploadError> {
    let size = std::fs::metadata(path)
        .map_err(|e| UploadError::Local {
            path: path.display().to_string(),
            message: e.to_string(),
        })?
        .len();
    let body = ByteStream::from_path(path)
        .await
        .map_err(|e| UploadError::Local {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| UploadError::S3 {
            op: "PutObject",
            bucket: bucket.into(),
            key: key.into(),
            message: ferry_aws::explain("PutObject", &e).to_string(),
        })?;
    Ok(size)
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
        .map(|f| Object {
            key: site_key(&site.prefix, &f.name),
            path: blob_path(out, &f.sha256),
            content_type: content_type(&f.name),
        })
        .collect();
    let n = objects.len();
    stream::iter(objects)
        .map(|o| async move { put(s3, bucket, &o.key, &o.path, o.content_type).await })
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
