//! [`ObjectStore`] on S3 or any S3-compatible service.
//!
//! Large objects (repository packs) go up as multipart uploads: fixed-size parts, a bounded
//! number of them in flight per object, each part a zero-copy slice of the body the caller
//! already holds, so an upload adds no memory beyond that body. A failed upload is aborted
//! so its parts are not kept (and billed); uploads a killed process left behind are aborted
//! by [`ObjectStore::abort_stale_uploads`] (the repository's gc calls it). Retries of every
//! call are the client's ([`crate::config::s3_retry_config`]).
//!
//! An immutable destination (S3 Object Lock, [`S3ObjectStore::with_object_lock`]) has every
//! `put` retained until the job's date, extends the retention of data a backup reuses
//! ([`ObjectStore::retain_until`]) and deletes objects version by version.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use arca_core::model::destination::{BucketLock, LockMode};
use arca_core::ports::credentials::ObjectLockWrite;
use arca_core::ports::{ObjectMeta, ObjectStore};
use arca_core::{Error, Result};
use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};
use bytes::Bytes;
use chrono::Utc;
use tokio::task::JoinSet;

use crate::errors::classify;

/// Objects larger than this go up as multipart uploads.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
/// The part size of multipart uploads (S3's minimum is 5 MiB). The last part also takes
/// the remainder, so it is below twice this.
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one object uploaded at once.
pub const PARTS_IN_FLIGHT: usize = 4;
/// S3's limit of parts per upload: bigger objects get bigger parts.
const MAX_PARTS: usize = 10_000;
/// Attempts at reading a response body that breaks off midway (the SDK retries the call
/// itself, but not a body stream that fails after the headers came).
const BODY_ATTEMPTS: u32 = 3;

/// When a `put` becomes a multipart upload, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Multipart {
    pub threshold: usize,
    pub part_size: usize,
    pub parts_in_flight: usize,
}

impl Default for Multipart {
    fn default() -> Self {
        Multipart {
            threshold: MULTIPART_THRESHOLD,
            part_size: PART_SIZE,
            parts_in_flight: PARTS_IN_FLIGHT,
        }
    }
}

/// The byte ranges of the parts of an object of `len` bytes: `part_size` each, the last one
/// taking the remainder (so no part but a lone one is smaller than `part_size`), at most
/// [`MAX_PARTS`] of them.
pub fn part_ranges(len: usize, part_size: usize) -> Vec<Range<usize>> {
    let part_size = part_size.max(1).max(len.div_ceil(MAX_PARTS));
    let n = (len / part_size).max(1);
    (0..n)
        .map(|i| i * part_size..if i + 1 == n { len } else { (i + 1) * part_size })
        .collect()
}

/// Whether an upload initiated at `initiated` is older than `older_than` at `now`. One
/// without a time is left alone.
fn stale(initiated: Option<&DateTime>, now: SystemTime, older_than: Duration) -> bool {
    let Some(initiated) = initiated else { return false };
    let cutoff = now
        .checked_sub(older_than)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    initiated.secs() <= cutoff
}

/// `at` as S3 takes it: whole seconds, rounded up (a retention never ends before `at`).
fn whole_seconds_after(at: chrono::DateTime<Utc>) -> DateTime {
    DateTime::from_secs(at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0))
}

/// An S3 date as chrono's (`None` out of chrono's range).
fn to_chrono(at: &DateTime) -> Option<chrono::DateTime<Utc>> {
    chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos())
}

/// The mode `retain_until` extends a retention in: the store's; without one, the object's
/// own, else GOVERNANCE. An object still `held` in COMPLIANCE stays so: S3 refuses to turn
/// it into GOVERNANCE before its date.
fn retention_mode(store: Option<LockMode>, object: Option<&ObjectLockMode>, held: bool) -> ObjectLockRetentionMode {
    let object = object.map(ObjectLockMode::as_str);
    let mode = match (store, object) {
        (_, Some("COMPLIANCE")) if held => "COMPLIANCE",
        (Some(mode), _) => mode.as_str(),
        (None, Some(mode)) => mode,
        (None, None) => LockMode::Governance.as_str(),
    };
    ObjectLockRetentionMode::from(mode)
}

/// Objects live in `bucket` under `root` (which may be empty); the keys the port sees
/// are relative to `root`.
#[derive(Clone, Debug)]
pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    root: String,
    multipart: Multipart,
    /// The endpoint the client reaches, when not AWS's own: named in errors.
    endpoint: Option<String>,
    /// The bucket has Object Lock and this store writes to it ([`Self::with_object_lock`]).
    object_lock: Option<ObjectLockWrite>,
}

impl S3ObjectStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, root: impl Into<String>) -> Self {
        let mut root = root.into();
        if !root.is_empty() && !root.ends_with('/') {
            root.push('/');
        }
        Self {
            client,
            bucket: bucket.into(),
            root,
            multipart: Multipart::default(),
            endpoint: None,
            object_lock: None,
        }
    }

    /// The bucket has S3 Object Lock (so it is versioned): with a `retain_until` date every
    /// `put` is retained until then (not `put_if_absent`: locks must stay deletable), and
    /// `delete` removes every version of the object it can.
    pub fn with_object_lock(mut self, lock: Option<ObjectLockWrite>) -> Self {
        self.object_lock = lock;
        self
    }

    /// The Object Lock headers of a `put`: the store's mode and date, when it has a date.
    fn put_lock(&self) -> (Option<ObjectLockMode>, Option<DateTime>) {
        match self.object_lock {
            Some(ObjectLockWrite {
                mode,
                retain_until: Some(until),
            }) => (
                Some(ObjectLockMode::from(mode.as_str())),
                Some(whole_seconds_after(until)),
            ),
            _ => (None, None),
        }
    }

    /// Other multipart settings (tests and benchmarks; the defaults suit repositories).
    pub fn with_multipart(mut self, multipart: Multipart) -> Self {
        self.multipart = Multipart {
            threshold: multipart.threshold,
            part_size: multipart.part_size.max(5 << 20),
            parts_in_flight: multipart.parts_in_flight.max(1),
        };
        self
    }

    /// The custom endpoint the client was configured with (an S3-compatible store), for
    /// errors to name: the SDK's client does not tell it back.
    pub fn with_endpoint(mut self, endpoint: Option<&str>) -> Self {
        self.endpoint = endpoint.map(str::to_owned);
        self
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }

    /// How errors name an object: with its bucket (and a custom endpoint), so a job's one
    /// line says which destination failed.
    fn object(&self, key: &str) -> String {
        format!("object s3://{}/{}{}", self.bucket, self.full_key(key), self.at())
    }

    /// How errors name the bucket.
    fn bucket_name(&self) -> String {
        format!("bucket {}{}", self.bucket, self.at())
    }

    fn at(&self) -> String {
        self.endpoint.as_ref().map(|e| format!(" at {e}")).unwrap_or_default()
    }

    /// A single PutObject. Lock headers need a checksum of the body: the SDK sends a CRC32
    /// by default (its `WhenSupported` request checksums).
    async fn put_single(&self, key: &str, body: Bytes) -> Result<()> {
        let (mode, until) = self.put_lock();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(until)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(e, &self.object(key)))?;
        Ok(())
    }

    async fn put_multipart(&self, key: &str, body: Bytes) -> Result<()> {
        let full_key = self.full_key(key);
        let (mode, until) = self.put_lock();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(until)
            .send()
            .await
            .map_err(|e| classify(e, &self.object(key)))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| Error::permanent(format!("object {key}: the store gave no multipart upload id")))?
            .to_owned();
        let result = match self.upload_parts(key, &full_key, &upload_id, &body).await {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&full_key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(e, &self.object(key))),
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Parts of an upload that is neither completed nor aborted are kept and billed.
            if let Err(abort) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full_key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::warn!(
                    key,
                    error = %classify(abort, &self.object(key)),
                    "aborting a failed multipart upload failed; gc aborts it later"
                );
            }
        }
        result
    }

    /// Uploads every part, at most `parts_in_flight` at a time; the first failure cancels
    /// the others.
    async fn upload_parts(
        &self,
        key: &str,
        full_key: &str,
        upload_id: &str,
        body: &Bytes,
    ) -> Result<Vec<CompletedPart>> {
        let mut ranges = part_ranges(body.len(), self.multipart.part_size)
            .into_iter()
            .enumerate();
        let mut tasks: JoinSet<Result<CompletedPart>> = JoinSet::new();
        let mut parts = Vec::new();
        loop {
            while tasks.len() < self.multipart.parts_in_flight {
                let Some((i, range)) = ranges.next() else { break };
                let number = i as i32 + 1;
                let request = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(full_key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(ByteStream::from(body.slice(range)));
                let what = format!("{} part {number}", self.object(key));
                tasks.spawn(async move {
                    let out = request.send().await.map_err(|e| classify(e, &what))?;
                    let e_tag = out
                        .e_tag()
                        .ok_or_else(|| Error::permanent(format!("{what}: the store gave no ETag")))?;
                    Ok(CompletedPart::builder().part_number(number).e_tag(e_tag).build())
                });
            }
            let Some(done) = tasks.join_next().await else { break };
            let part = done.map_err(|e| Error::transient(format!("object {key}: part upload task: {e}")))?;
            match part {
                Ok(part) => parts.push(part),
                Err(e) => {
                    tasks.abort_all();
                    return Err(e);
                }
            }
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    async fn head(&self, key: &str) -> Result<HeadObjectOutput> {
        self.client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| classify(e, &self.object(key)))
    }

    /// The version ids of every version and delete marker of exactly `key`.
    async fn versions(&self, key: &str) -> Result<Vec<String>> {
        let full_key = self.full_key(key);
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        let mut ids = Vec::new();
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&full_key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| classify(e, &self.object(key)))?;
            let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
            let markers = page.delete_markers().iter().map(|m| (m.key(), m.version_id()));
            ids.extend(
                versions
                    .chain(markers)
                    .filter(|(k, _)| *k == Some(full_key.as_str()))
                    .filter_map(|(_, id)| id.map(str::to_owned)),
            );
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_version_id_marker().map(str::to_owned);
            if page.is_truncated() != Some(true) || (key_marker.is_none() && id_marker.is_none()) {
                return Ok(ids);
            }
        }
    }

    /// Deletes every version of `key` (and its delete markers) S3 lets go of. In a bucket
    /// with Object Lock (always versioned) a plain delete only adds a delete marker and
    /// keeps every byte; deleting the versions frees the storage once their lock has
    /// passed. A version still locked is refused (AccessDenied) and left: a delete marker
    /// then hides the key from listings, and the bucket's lifecycle rule removes the
    /// version after its date.
    async fn delete_versions(&self, key: &str) -> Result<()> {
        let mut left = 0;
        for id in self.versions(key).await? {
            let deleted = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .version_id(&id)
                .send()
                .await;
            match deleted {
                Ok(_) => {}
                Err(e) if e.code() == Some("AccessDenied") => left += 1,
                Err(e) => return Err(classify(e, &self.object(key))),
            }
        }
        if left > 0 {
            tracing::debug!(key, left, "versions still retained by Object Lock; hiding the key");
            self.delete_current(key).await?;
        }
        Ok(())
    }

    /// A plain DeleteObject (in a versioned bucket: a delete marker).
    async fn delete_current(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| classify(e, &self.object(key)))?;
        Ok(())
    }

    /// The object's bytes (`range` of them), `None` when it is larger than `max`: the size
    /// is known from the response's headers before any of the body is read (a response
    /// without one is checked after reading).
    async fn get_body(&self, key: &str, range: Option<&Range<u64>>, max: Option<u64>) -> Result<Option<Bytes>> {
        let too_large = |n: u64| max.is_some_and(|max| n > max);
        let mut attempt = 1;
        loop {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .set_range(range.map(|r| format!("bytes={}-{}", r.start, r.end - 1)))
                .send()
                .await
                .map_err(|e| classify(e, &self.object(key)))?;
            if out
                .content_length()
                .is_some_and(|n| u64::try_from(n).map_or(true, too_large))
            {
                return Ok(None);
            }
            match out.body.collect().await {
                Ok(data) => {
                    let data = data.into_bytes();
                    return Ok((!too_large(data.len() as u64)).then_some(data));
                }
                Err(e) if attempt >= BODY_ATTEMPTS => {
                    return Err(Error::transient(format!("reading object {key}: {e}")));
                }
                Err(e) => {
                    tracing::debug!(key, attempt, error = %e, "object body broke off; reading it again");
                    attempt += 1;
                }
            }
        }
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        if body.len() > self.multipart.threshold {
            self.put_multipart(key, body).await
        } else {
            self.put_single(key, body).await
        }
    }

    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match sent.map_err(|e| classify(e, &self.object(key))) {
            Ok(_) => Ok(true),
            // 412: the object exists; 409 (ConditionalRequestConflict): a concurrent
            // conditional write of the same key is winning.
            Err(Error::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        // No bound: never `None`.
        Ok(self.get_body(key, None, None).await?.unwrap_or_default())
    }

    async fn get_at_most(&self, key: &str, max: u64) -> Result<Option<Bytes>> {
        self.get_body(key, None, Some(max)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        Ok(self.get_body(key, Some(&range), None).await?.unwrap_or_default())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(e, &self.bucket_name()))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.root)) else {
                    continue;
                };
                let size = u64::try_from(object.size().unwrap_or(0)).unwrap_or(0);
                out.push(ObjectMeta {
                    key: key.to_owned(),
                    size,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// With Object Lock, version by version ([`Self::delete_versions`]).
    async fn delete(&self, key: &str) -> Result<()> {
        if self.object_lock.is_some() {
            self.delete_versions(key).await
        } else {
            self.delete_current(key).await
        }
    }

    async fn retained_until(&self, key: &str) -> Result<Option<chrono::DateTime<Utc>>> {
        let head = self.head(key).await?;
        Ok(head.object_lock_retain_until_date().and_then(to_chrono))
    }

    /// Extends the current version's retention to `until` (PutObjectRetention), never
    /// shortening it; the mode is [`retention_mode`]'s.
    async fn retain_until(&self, key: &str, until: chrono::DateTime<Utc>) -> Result<()> {
        let head = self.head(key).await?;
        let current = head.object_lock_retain_until_date().and_then(to_chrono);
        if current.is_some_and(|c| c >= until) {
            return Ok(());
        }
        let held = current.is_some_and(|c| c > chrono::DateTime::<Utc>::from(SystemTime::now()));
        let mode = retention_mode(self.object_lock.map(|l| l.mode), head.object_lock_mode(), held);
        let retention = ObjectLockRetention::builder()
            .mode(mode)
            .retain_until_date(whole_seconds_after(until))
            .build();
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .set_version_id(head.version_id().map(str::to_owned))
            .retention(retention)
            .send()
            .await
            .map_err(|e| classify(e, &self.object(key)))?;
        Ok(())
    }

    /// GetObjectLockConfiguration: a bucket created without Object Lock answers
    /// `ObjectLockConfigurationNotFoundError`, which is an answer (`enabled: false`), not
    /// an error.
    async fn lock_configuration(&self) -> Result<Option<BucketLock>> {
        let sent = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await;
        let config = match sent {
            Ok(out) => out.object_lock_configuration().cloned(),
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => None,
            Err(e) => return Err(classify(e, &self.bucket_name())),
        };
        let enabled = config
            .as_ref()
            .and_then(|c| c.object_lock_enabled())
            .is_some_and(|e| e.as_str() == "Enabled");
        let retention = config
            .as_ref()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention());
        Ok(Some(BucketLock {
            enabled,
            default_mode: retention.and_then(|r| r.mode()).and_then(|m| match m.as_str() {
                "GOVERNANCE" => Some(LockMode::Governance),
                "COMPLIANCE" => Some(LockMode::Compliance),
                _ => None,
            }),
            default_days: retention.and_then(|r| {
                let days = r.days().or_else(|| r.years().map(|y| y.saturating_mul(365)))?;
                u32::try_from(days).ok()
            }),
        }))
    }

    /// Aborts multipart uploads under this store's root that were started more than
    /// `older_than` ago (a killed process's: it could not abort them itself).
    async fn abort_stale_uploads(&self, older_than: Duration) -> Result<u64> {
        let now = SystemTime::now();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        let mut aborted = 0;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&self.root)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| classify(e, &self.bucket_name()))?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                if !stale(upload.initiated(), now, older_than) {
                    continue;
                }
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.object(key)))?;
                aborted += 1;
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(aborted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uploads_older_than_the_limit_are_stale() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        let at = |secs: i64| DateTime::from_secs(secs);
        assert!(stale(Some(&at(1_000_000 - 3601)), now, hour));
        assert!(!stale(Some(&at(1_000_000 - 3599)), now, hour));
        assert!(stale(Some(&at(1_000_000)), now, Duration::ZERO));
        assert!(!stale(None, now, Duration::ZERO), "no time: left alone");
    }

    #[test]
    fn retention_dates_round_up_to_whole_seconds() {
        let at = |s: i64, ns: u32| chrono::DateTime::<Utc>::from_timestamp(s, ns).unwrap();
        assert_eq!(whole_seconds_after(at(1_000, 0)), DateTime::from_secs(1_000));
        assert_eq!(whole_seconds_after(at(1_000, 1)), DateTime::from_secs(1_001));
        assert_eq!(to_chrono(&DateTime::from_secs(1_000)), Some(at(1_000, 0)));
    }

    #[test]
    fn extended_retention_keeps_the_stores_mode_but_never_leaves_compliance() {
        use LockMode::{Compliance, Governance};
        let (gov, comp) = (ObjectLockMode::Governance, ObjectLockMode::Compliance);
        let mode = |store, object, held| retention_mode(store, object, held).as_str().to_owned();
        assert_eq!(mode(Some(Governance), Some(&gov), true), "GOVERNANCE");
        assert_eq!(mode(Some(Compliance), Some(&gov), true), "COMPLIANCE");
        assert_eq!(mode(Some(Governance), None, false), "GOVERNANCE");
        assert_eq!(mode(Some(Governance), Some(&comp), true), "COMPLIANCE");
        assert_eq!(
            mode(Some(Governance), Some(&comp), false),
            "GOVERNANCE",
            "its date passed"
        );
        assert_eq!(
            mode(None, Some(&comp), false),
            "COMPLIANCE",
            "no store mode: the object's"
        );
        assert_eq!(mode(None, None, false), "GOVERNANCE");
    }

    #[test]
    fn parts_are_fixed_size_with_the_remainder_in_the_last() {
        const M: usize = 1 << 20;
        assert_eq!(part_ranges(17 * M, 8 * M), vec![0..8 * M, 8 * M..17 * M]);
        assert_eq!(part_ranges(16 * M, 8 * M), vec![0..8 * M, 8 * M..16 * M]);
        assert_eq!(part_ranges(3 * M, 8 * M), vec![0..3 * M]);
        assert_eq!(part_ranges(0, 8 * M), vec![0..0]);
        // Past S3's part limit the parts grow instead.
        let many = part_ranges(MAX_PARTS * 6 * M, 5 * M);
        assert_eq!(many.len(), MAX_PARTS);
        assert!(many.iter().all(|r| r.len() == 6 * M));
        for len in [1, 5 * M + 1, 40 * M - 3] {
            let parts = part_ranges(len, 5 * M);
            assert_eq!(parts.first().map(|r| r.start), Some(0));
            assert_eq!(parts.last().map(|r| r.end), Some(len));
            assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
        }
    }
}
