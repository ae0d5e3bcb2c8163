//! Shared by the repository's integration tests: small repositories on a temp dir or moto.
#![allow(dead_code, clippy::unwrap_used)]

use std::ops::{Deref, Range};
use std::path::Path;
use std::sync::Arc;

use arca_core::ports::{ObjectMeta, ObjectStore};
use arca_repo::{Config, GcOptions, GcReport, Id, KdfParams, PassphraseWrapper, Repository, gc};
use async_trait::async_trait;
use bytes::Bytes;

pub const PASS: &str = "correct horse";

/// Cheap argon2 so debug-mode tests stay fast; real repositories use the default.
pub fn wrapper() -> PassphraseWrapper {
    PassphraseWrapper::with_params(
        PASS,
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            ..KdfParams::default()
        },
    )
}

/// Tiny blocks, segments and packs, so small images exercise many blocks, several map
/// segments and several packs.
pub fn small_config() -> Config {
    let mut c = Config::new(&Id([7; 32]));
    c.block_size = 4096;
    c.map_segment_blocks = 8;
    c.pack_target = 1 << 20;
    c
}

pub async fn local_repo(dir: &Path) -> (Arc<dyn ObjectStore>, Repository) {
    let store: Arc<dyn ObjectStore> = Arc::new(arca_embedded::LocalFsObjectStore::new(dir.join("repo")));
    let repo = Repository::init(store.clone(), "test", &wrapper(), Some(small_config()))
        .await
        .unwrap();
    (store, repo)
}

pub async fn s3_store() -> Option<Arc<dyn ObjectStore>> {
    let env = arca_testenv::aws()?;
    let config = env.sdk_config().await;
    let client = arca_aws::config::s3_client(&config);
    let bucket = arca_testenv::unique("arca-repo");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket on moto");
    Some(Arc::new(arca_aws::S3ObjectStore::new(client, bucket, "repos/one")))
}

pub use arca_testenv::noise;

/// A gc of `repo` with grace period `grace` (the other options default); it must succeed.
pub async fn gc_with_grace(repo: &Repository, grace: std::time::Duration) -> GcReport {
    gc(
        repo,
        &GcOptions {
            grace,
            ..GcOptions::default()
        },
    )
    .await
    .unwrap()
}

/// What a test's store does around the calls it passes on (see [`Hooked`]).
#[async_trait]
pub trait StoreHooks: Send + Sync {
    /// Before a `put` of `len` bytes at `key`; an error fails the put, which is not passed on.
    async fn before_put(&self, _key: &str, _len: u64) -> arca_core::Result<()> {
        Ok(())
    }
    /// After a `put` of `len` bytes at `key` succeeded.
    fn after_put(&self, _key: &str, _len: u64) {}
    /// Before a `list` of `prefix`.
    async fn before_list(&self, _prefix: &str) {}
}

/// A store passing every call to `inner`, with `hooks` around puts and lists; it derefs to
/// its hooks, so a test reads their counters on it.
pub struct Hooked<H> {
    pub inner: Arc<dyn ObjectStore>,
    pub hooks: H,
}

impl<H> Hooked<H> {
    pub fn new(inner: Arc<dyn ObjectStore>, hooks: H) -> Arc<Hooked<H>> {
        Arc::new(Hooked { inner, hooks })
    }
}

impl<H> Deref for Hooked<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.hooks
    }
}

#[async_trait]
impl<H: StoreHooks> ObjectStore for Hooked<H> {
    async fn put_if_absent(&self, key: &str, body: Bytes) -> arca_core::Result<bool> {
        self.inner.put_if_absent(key, body).await
    }
    async fn put(&self, key: &str, body: Bytes) -> arca_core::Result<()> {
        let len = body.len() as u64;
        self.hooks.before_put(key, len).await?;
        self.inner.put(key, body).await?;
        self.hooks.after_put(key, len);
        Ok(())
    }
    async fn get(&self, key: &str) -> arca_core::Result<Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> arca_core::Result<Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn list(&self, prefix: &str) -> arca_core::Result<Vec<ObjectMeta>> {
        self.hooks.before_list(prefix).await;
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> arca_core::Result<()> {
        self.inner.delete(key).await
    }
}
