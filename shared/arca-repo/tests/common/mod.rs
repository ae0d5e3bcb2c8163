//! Shared by the repository's integration tests: small repositories on a temp dir or moto.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use arca_core::ports::ObjectStore;
use arca_repo::{Config, Id, KdfParams, PassphraseWrapper, Repository};

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

/// Deterministic pseudo-random bytes (xorshift), so tests need no rand crate.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
