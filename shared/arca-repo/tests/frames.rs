//! Format version 3: new blocks compressed together as frames, deduplicated and changed
//! per block; version 2 repositories still read and written as version 2.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::path::Path;
use std::sync::Arc;

use arca_core::ports::ObjectStore;
use arca_repo::{Config, Id, Repository, RestoreOptions, VolumeBackup, backup_volume, restore, verify};
use common::{noise, small_config, wrapper};

/// Log-like text: every block differs, blocks resemble each other (what a frame exploits
/// and a block compressed alone cannot).
fn logs(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut n = seed;
    while out.len() < len {
        n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let line = format!(
            "{{\"ts\":{},\"level\":\"info\",\"service\":\"orders\",\"msg\":\"order {} served in {} ms\"}}\n",
            1_700_000_000 + (n >> 44),
            n >> 20 & 0xffff,
            n % 251
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

/// 1.8 MiB: logs, random bytes, zeros, logs.
fn image() -> Vec<u8> {
    let mut img = logs(1, 768 << 10);
    img.extend(noise(2, 64 << 10));
    img.extend(vec![0u8; 256 << 10]);
    img.extend(logs(3, 768 << 10));
    img
}

async fn repo_with(dir: &Path, config: Config) -> Repository {
    let store: Arc<dyn ObjectStore> = Arc::new(arca_embedded::LocalFsObjectStore::new(dir.join("repo")));
    Repository::init(store, "test", &wrapper(), Some(config)).await.unwrap()
}

async fn restored(repo: &Repository, id: &Id, dir: &Path) -> Vec<u8> {
    let (_, snap) = repo.find_snapshot(&id.to_hex(), None).await.unwrap();
    let target = dir.join(format!("restore-{}", id.short()));
    restore(repo, id, &snap, &target, RestoreOptions::default())
        .await
        .unwrap();
    std::fs::read(&target).unwrap()
}

fn v2_config() -> Config {
    Config {
        version: 2,
        zstd_level: 1,
        frame_bytes: 0,
        ..small_config()
    }
}

#[tokio::test]
async fn new_blocks_are_compressed_together_and_restore_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("disk.img");
    let mut img = image();
    std::fs::write(&source, &img).unwrap();

    let v3 = repo_with(&dir.path().join("v3"), small_config()).await;
    assert_eq!(v3.config().version, 3);
    let (first, snap) = backup_volume(&v3, VolumeBackup::new("vol", &source)).await.unwrap();
    assert_eq!(snap.version, 3);
    let index = v3.load_index(false).await.unwrap();
    let entries: Vec<_> = index.packs.iter().flat_map(|p| p.entries.iter()).collect();
    let framed = entries.iter().filter(|e| e.in_frame()).count();
    // 4 KiB blocks: 384 log blocks in frames of at most 2 MiB; the 16 random blocks alone.
    assert_eq!(framed, 384, "log blocks are framed");
    assert_eq!(entries.iter().filter(|e| !e.in_frame() && e.kind == 0).count(), 16);
    assert!(
        entries
            .iter()
            .filter(|e| !e.in_frame() && e.kind == 0)
            .all(|e| e.flags == 0),
        "random blocks stored raw"
    );
    assert_eq!(restored(&v3, &first, dir.path()).await, img);

    // The same image one block at a time at level 1 (version 2) takes more room.
    let v2 = repo_with(&dir.path().join("v2"), v2_config()).await;
    let (_, snap2) = backup_volume(&v2, VolumeBackup::new("vol", &source)).await.unwrap();
    assert!(
        snap.stats.bytes_stored * 100 < snap2.stats.bytes_stored * 92,
        "frames save at least 8%: {} against {}",
        snap.stats.bytes_stored,
        snap2.stats.bytes_stored
    );

    // Scattered small writes: only the touched blocks are new, each restored exactly, and
    // the untouched blocks of their old frames are still read from them.
    for at in [10_000usize, 300_000, 1_900_000] {
        img[at..at + 100].copy_from_slice(&[0xab; 100]);
    }
    std::fs::write(&source, &img).unwrap();
    let (second, snap) = backup_volume(&v3, VolumeBackup::new("vol", &source)).await.unwrap();
    assert_eq!(snap.stats.blocks_new, 3, "{:?}", snap.stats);
    assert_eq!(restored(&v3, &second, dir.path()).await, img);
    let report = verify(&v3, true).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[tokio::test]
async fn a_version_2_repository_stays_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("disk.img");
    let mut img = image();
    std::fs::write(&source, &img).unwrap();
    let repo = repo_with(dir.path(), v2_config()).await;
    let (first, snap) = backup_volume(&repo, VolumeBackup::new("vol", &source)).await.unwrap();
    assert_eq!(snap.version, 2);

    // Reopened, it is still version 2, and what is written into it has no frames.
    let store: Arc<dyn ObjectStore> = Arc::new(arca_embedded::LocalFsObjectStore::new(dir.path().join("repo")));
    let repo = Repository::open(store, "test", &wrapper()).await.unwrap();
    assert_eq!(repo.config().version, 2);
    img[5000..5100].copy_from_slice(&[7; 100]);
    std::fs::write(&source, &img).unwrap();
    let (second, snap) = backup_volume(&repo, VolumeBackup::new("vol", &source)).await.unwrap();
    assert_eq!(snap.version, 2);
    let index = repo.load_index(false).await.unwrap();
    assert!(index.packs.iter().flat_map(|p| p.entries.iter()).all(|e| !e.in_frame()));
    for pack in &index.packs {
        let header = repo.read_pack_header(&pack.id, pack.size).await.unwrap();
        assert!(header.blobs.iter().all(|e| !e.in_frame()));
    }
    assert_eq!(restored(&repo, &second, dir.path()).await, img);
    assert_ne!(restored(&repo, &first, dir.path()).await, img);
    let report = verify(&repo, true).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}
