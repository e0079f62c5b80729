//! Releases in the stage's artifact bucket: `<project>/_releases/<stage id>/<release id>.json`.
//!
//! The `_` keeps them apart from the packages, which lie under `<project>/<service>/`: no service
//! name holds one. (Under `<project>/releases/`, a service named `releases` had its site files
//! at `<project>/releases/site/…`, which the removal of a preview `site` deleted.) Releases an
//! earlier Ferry wrote there are still read, and deleted with the stage: only keys that are
//! a release's or a review's (`<id>.json`, `pending/<id>.json`), which no package's key is.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{PendingRelease, Release, valid_id};

/// Why releases could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    #[error("s3://{bucket}/{key}: {op} failed: {message}")]
    S3 {
        op: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
    #[error(
        "s3://{bucket}/{key} is not a release Ferry can read ({reason}); delete it, or upgrade Ferry if a newer version wrote it"
    )]
    Corrupt {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error(
        "`{}` is not a release id (letters, digits, '-', '.' and '_', such as 20261202-130512.123-3e18202: the run that made a release prints its id, and `status` the newest of each stage)",
        ferry_manifest::clipped(.id, 80)
    )]
    BadId { id: String },
}

/// The folder of every stage's releases under the project's: a name no service can have.
pub const PREFIX: &str = "_releases";

/// The releases of one stage.
#[derive(Debug, Clone)]
pub struct ReleaseStore {
    s3: Client,
    bucket: String,
    /// Ends with `/`.
    prefix: String,
    /// Where an earlier Ferry wrote them (`<project>/releases/<stage id>/`); ends with `/`.
    legacy: String,
}

impl ReleaseStore {
    /// The releases of the stage with id `stage_id` of `project`, in `bucket`.
    pub fn new(s3: Client, bucket: &str, project: &str, stage_id: &str) -> ReleaseStore {
        ReleaseStore {
            s3,
            bucket: bucket.to_string(),
            prefix: format!("{project}/{PREFIX}/{stage_id}/"),
            legacy: format!("{project}/releases/{stage_id}/"),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}.json", self.prefix)
    }

    fn pending_key(&self, id: &str) -> String {
        format!("{}pending/{id}.json", self.prefix)
    }

    /// The object at `key`, else at the same key under the legacy prefix.
    async fn get_either<T: DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Option<T>, ReleaseError> {
        let legacy = key.replacen(&self.prefix, &self.legacy, 1);
        match self.get_json(key).await? {
            Some(v) => Ok(Some(v)),
            None => self.get_json(legacy).await,
        }
    }

    /// Writes (replaces) a release.
    pub async fn put(&self, release: &Release) -> Result<(), ReleaseError> {
        self.put_json(self.key(&release.id), release).await
    }

    /// Writes (replaces) a pending release (a review).
    pub async fn put_pending(&self, pending: &PendingRelease) -> Result<(), ReleaseError> {
        self.put_json(self.pending_key(&pending.id), pending).await
    }

    /// A pending release by id; `None` when there is none.
    pub async fn get_pending(&self, id: &str) -> Result<Option<PendingRelease>, ReleaseError> {
        if !valid_id(id) {
            return Err(ReleaseError::BadId { id: id.into() });
        }
        self.get_either(self.pending_key(id)).await
    }

    async fn put_json(&self, key: String, value: &impl Serialize) -> Result<(), ReleaseError> {
        let body = serde_json::to_vec_pretty(value).expect("a release serialises");
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| ReleaseError::S3 {
                op: "PutObject",
                bucket: self.bucket.clone(),
                key,
                message: ferry_aws::explain("PutObject", &e).to_string(),
            })?;
        Ok(())
    }

    /// A release by id; `None` when there is none.
    pub async fn get(&self, id: &str) -> Result<Option<Release>, ReleaseError> {
        if !valid_id(id) {
            return Err(ReleaseError::BadId { id: id.into() });
        }
        self.get_either(self.key(id)).await
    }

    async fn get_json<T: DeserializeOwned>(&self, key: String) -> Result<Option<T>, ReleaseError> {
        let out = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(e) => {
                return Err(ReleaseError::S3 {
                    op: "GetObject",
                    bucket: self.bucket.clone(),
                    key,
                    message: ferry_aws::explain("GetObject", &e).to_string(),
                });
            }
        };
        let bytes = out.body.collect().await.map_err(|e| ReleaseError::S3 {
            op: "GetObject",
            bucket: self.bucket.clone(),
            key: key.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_slice(&bytes.into_bytes())
            .map(Some)
            .map_err(|e| ReleaseError::Corrupt {
                bucket: self.bucket.clone(),
                key,
                reason: e.to_string(),
            })
    }

    /// The ids of every release, newest first. A stage without a bucket yet has none.
    pub async fn ids(&self) -> Result<Vec<String>, ReleaseError> {
        // A release's key is `<prefix><id>.json`; a review's has `pending/` before the id.
        let mut ids: Vec<String> = self
            .release_keys()
            .await?
            .iter()
            .filter_map(|(prefix, k)| k.strip_prefix(prefix)?.strip_suffix(".json"))
            .filter(|id| valid_id(id))
            .map(String::from)
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        ids.dedup();
        Ok(ids)
    }

    /// Deletes every release of the stage (and every pending review): for a preview that is
    /// removed, whose releases name stacks and packages that are gone. Gives how many objects
    /// went; a bucket that does not exist holds none.
    pub async fn delete_all(&self) -> Result<usize, ReleaseError> {
        let keys: Vec<String> = self
            .release_keys()
            .await?
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        for key in &keys {
            self.s3
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| ReleaseError::S3 {
                    op: "DeleteObject",
                    bucket: self.bucket.clone(),
                    key: key.clone(),
                    message: ferry_aws::explain("DeleteObject", &e).to_string(),
                })?;
        }
        Ok(keys.len())
    }

    /// The keys of the stage's releases and pending reviews, each with the prefix it lies
    /// under (this store's, then the legacy one): only what a store writes, never anything else
    /// put under those prefixes.
    async fn release_keys(&self) -> Result<Vec<(&str, String)>, ReleaseError> {
        let mut out = Vec::new();
        for prefix in [self.prefix.as_str(), self.legacy.as_str()] {
            out.extend(
                self.keys(prefix)
                    .await?
                    .into_iter()
                    .filter(|k| is_release_key(prefix, k))
                    .map(|k| (prefix, k)),
            );
        }
        Ok(out)
    }

    /// Every key under `prefix` (the stage's releases and pending reviews, and whatever else
    /// lies there); none when the bucket does not exist.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, ReleaseError> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_bucket()) => {
                    return Ok(Vec::new());
                }
                Err(e) => {
                    return Err(ReleaseError::S3 {
                        op: "ListObjectsV2",
                        bucket: self.bucket.clone(),
                        key: prefix.to_string(),
                        message: ferry_aws::explain("ListObjectsV2", &e).to_string(),
                    });
                }
            };
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
        }
        Ok(keys)
    }

    /// The newest `limit` releases, newest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<Release>, ReleaseError> {
        let mut out = Vec::new();
        for id in self.ids().await?.into_iter().take(limit) {
            if let Some(r) = self.get(&id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Whether `key` under `prefix` is one a store writes: a release or a pending review.
fn is_release_key(prefix: &str, key: &str) -> bool {
    key.strip_prefix(prefix)
        .map(|k| k.strip_prefix("pending/").unwrap_or(k))
        .and_then(|k| k.strip_suffix(".json"))
        .is_some_and(valid_id)
}
