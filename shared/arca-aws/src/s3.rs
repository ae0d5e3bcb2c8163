//! [`ObjectStore`] on S3 or any S3-compatible service.
//!
//! Large objects (repository packs) go up as multipart uploads: fixed-size parts, a bounded
//! number of them in flight per object, each part a zero-copy slice of the body the caller
//! already holds, so an upload adds no memory beyond that body. A failed upload is aborted
//! so its parts are not kept (and billed); uploads a killed process left behind are aborted
//! by [`ObjectStore::abort_stale_uploads`] (the repository's gc calls it). Retries of every
//! call are the client's ([`crate::config::s3_retry_config`]).

use std::ops::Range;
use std::time::{Duration, SystemTime};

use arca_core::ports::{ObjectMeta, ObjectStore};
use arca_core::{Error, Result};
use async_trait::async_trait;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
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

    async fn put_single(&self, key: &str, body: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(e, &self.object(key)))?;
        Ok(())
    }

    async fn put_multipart(&self, key: &str, body: Bytes) -> Result<()> {
        let full_key = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
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

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| classify(e, &self.object(key)))?;
        Ok(())
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
