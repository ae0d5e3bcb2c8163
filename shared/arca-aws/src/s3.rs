//! [`ObjectStore`] on S3 or any S3-compatible service.

use std::ops::Range;

use arca_core::ports::{ObjectMeta, ObjectStore};
use arca_core::{Error, Result};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::errors::classify;

/// Objects live in `bucket` under `root` (which may be empty); the keys the port sees
/// are relative to `root`.
#[derive(Clone, Debug)]
pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    root: String,
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
        }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }
}

async fn collect(body: ByteStream, key: &str) -> Result<Bytes> {
    body.collect()
        .await
        .map(|data| data.into_bytes())
        .map_err(|e| Error::transient(format!("reading object {key}: {e}")))
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(e, &format!("object {key}")))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| classify(e, &format!("object {key}")))?;
        collect(out.body, key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| classify(e, &format!("object {key}")))?;
        collect(out.body, key).await
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
            let page = page.map_err(|e| classify(e, &format!("bucket {}", self.bucket)))?;
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
            .map_err(|e| classify(e, &format!("object {key}")))?;
        Ok(())
    }
}
