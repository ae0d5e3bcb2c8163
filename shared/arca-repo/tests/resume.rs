//! A backup killed midway (its task dropped, as when the mover's process dies) and run
//! again: the second run uploads only what the first did not store, and gc treats the
//! killed run's checkpointed packs like any other: spared while young, kept while a
//! snapshot needs them, reclaimed when none does.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arca_core::ports::ObjectStore;
use arca_repo::{GcOptions, Repository, RestoreOptions, VolumeBackup, backup_volume, gc, restore, verify};
use common::{Hooked, StoreHooks, gc_with_grace, local_repo, noise, wrapper};
use tokio::sync::Notify;

/// Counts what goes into `data/` (packs), and tells when `notify_after` packs are stored.
struct Counting {
    packs: AtomicU64,
    bytes: AtomicU64,
    notify_after: u64,
    reached: Notify,
}

impl Counting {
    fn new(inner: Arc<dyn ObjectStore>, notify_after: u64) -> Arc<Hooked<Counting>> {
        Hooked::new(
            inner,
            Counting {
                packs: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                notify_after,
                reached: Notify::new(),
            },
        )
    }
}

impl StoreHooks for Counting {
    fn after_put(&self, key: &str, len: u64) {
        if key.starts_with("data/") {
            self.bytes.fetch_add(len, Ordering::SeqCst);
            if self.packs.fetch_add(1, Ordering::SeqCst) + 1 == self.notify_after {
                self.reached.notify_one();
            }
        }
    }
}

/// 24 MiB of incompressible data: 24 packs at the tests' 1 MiB pack size.
const IMAGE: usize = 24 << 20;
const PACK: u64 = 1 << 20;

fn write_image(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let data = noise(99, IMAGE);
    let path = dir.join("vol.img");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

async fn sum_sizes(store: &dyn ObjectStore, prefix: &str) -> (usize, u64) {
    let listed = store.list(prefix).await.unwrap();
    (listed.len(), listed.iter().map(|o| o.size).sum())
}

/// Runs a backup through a counting store and drops it (no cleanup of any kind runs)
/// once `after` packs are stored. Returns the bytes of packs in the store then.
async fn killed_backup(store: &Arc<dyn ObjectStore>, source: &Path, after: u64) -> u64 {
    let counting = Counting::new(store.clone(), after);
    let repo = Repository::open(counting.clone() as Arc<dyn ObjectStore>, "t", &wrapper())
        .await
        .unwrap();
    let source = source.to_path_buf();
    let task = tokio::spawn(async move { backup_volume(&repo, VolumeBackup::new("vol", source)).await });
    tokio::time::timeout(Duration::from_secs(120), counting.reached.notified())
        .await
        .expect("the backup stores packs");
    task.abort();
    assert!(
        task.await.unwrap_err().is_cancelled(),
        "the backup was killed, not finished"
    );
    // Uploads that were in flight at the kill may still land (as on S3): let them settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sum_sizes(store.as_ref(), "data/").await.1
}

/// The bytes a full backup of `source` stores in a fresh repository.
async fn full_size(source: &Path) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let (store, repo) = local_repo(dir.path()).await;
    backup_volume(&repo, VolumeBackup::new("vol", source)).await.unwrap();
    sum_sizes(store.as_ref(), "data/").await.1
}

async fn restored(repo: &Repository, target: &Path) -> Vec<u8> {
    let (id, snap) = repo.find_snapshot("latest", Some("vol")).await.unwrap();
    restore(repo, &id, &snap, target, RestoreOptions::default())
        .await
        .unwrap();
    std::fs::read(target).unwrap()
}

async fn a_restarted_backup_uploads_only_what_the_killed_one_did_not_store(
    store: Arc<dyn ObjectStore>,
    repo: Repository,
    dir: &Path,
) {
    let (source, data) = write_image(dir);
    let full = full_size(&source).await;
    assert!(full > IMAGE as u64, "random data does not compress: {full}");

    let stored = killed_backup(&store, &source, 18).await;
    assert!(stored >= 18 * PACK, "{stored}");
    assert!(
        repo.snapshots().await.unwrap().is_empty(),
        "a killed backup makes no snapshot"
    );
    // Checkpoints come every 8 packs whose upload finished (the last ones may still have been
    // in flight); the packs after the last checkpoint are orphans the next run adopts.
    let (checkpoints, _) = sum_sizes(store.as_ref(), "index/").await;
    assert!(checkpoints >= 1, "an index checkpoint was written: {checkpoints}");

    let counting = Counting::new(store.clone(), u64::MAX);
    let rerun = Repository::open(counting.clone() as Arc<dyn ObjectStore>, "t", &wrapper())
        .await
        .unwrap();
    let (_, snap) = backup_volume(&rerun, VolumeBackup::new("vol", &source)).await.unwrap();
    let uploaded = counting.bytes.load(Ordering::SeqCst);
    println!("full backup {full} B; the killed run stored {stored} B; the rerun uploaded {uploaded} B");
    // Every block the killed run stored is reused; what is uploaded is the rest (plus the
    // block maps, and a partial pack's worth of rounding).
    assert!(
        uploaded <= full - stored + PACK,
        "uploaded {uploaded} of {full}, though {stored} were already stored"
    );
    assert!(snap.stats.bytes_new <= (full - stored) + PACK, "{:?}", snap.stats);
    assert_eq!(restored(&repo, &dir.join("out")).await, data);
}

#[tokio::test]
async fn a_restarted_backup_reuses_the_packs_of_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (store, repo) = local_repo(dir.path()).await;
    a_restarted_backup_uploads_only_what_the_killed_one_did_not_store(store, repo, dir.path()).await;
}

#[tokio::test]
async fn a_restarted_backup_reuses_the_packs_of_a_killed_one_on_s3() {
    let Some(store) = common::s3_store().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(store.clone(), "t", &wrapper(), Some(common::small_config()))
        .await
        .unwrap();
    a_restarted_backup_uploads_only_what_the_killed_one_did_not_store(store, repo, dir.path()).await;
}

#[tokio::test]
async fn gc_spares_young_checkpointed_packs_and_reclaims_them_once_no_snapshot_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    let (store, repo) = local_repo(dir.path()).await;
    let (source, data) = write_image(dir.path());
    killed_backup(&store, &source, 18).await;
    let (packs_before, _) = sum_sizes(store.as_ref(), "data/").await;
    assert!(!store.list("index/").await.unwrap().is_empty());

    // Young (within the grace period): a running or restartable backup's, kept.
    let report = gc(&repo, &GcOptions::default()).await.unwrap();
    assert_eq!(report.packs_condemned, 0, "{report:?}");
    assert_eq!(sum_sizes(store.as_ref(), "data/").await.0, packs_before);

    // The restarted backup finishes and references them: gc keeps every one.
    backup_volume(&repo, VolumeBackup::new("vol", &source)).await.unwrap();
    let report = gc_with_grace(&repo, Duration::ZERO).await;
    assert_eq!((report.packs_condemned, report.packs_deleted), (0, 0), "{report:?}");
    assert!(sum_sizes(store.as_ref(), "data/").await.0 >= packs_before);
    assert_eq!(restored(&repo, &dir.path().join("out")).await, data);
    let v = verify(&repo, true).await.unwrap();
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(v.unindexed_packs, 0);

    // Forgotten: no snapshot needs them; past the grace period gc reclaims all of them,
    // the checkpoint index entries included.
    let (id, _) = repo.find_snapshot("latest", None).await.unwrap();
    repo.forget(&id).await.unwrap();
    let report = gc_with_grace(&repo, Duration::ZERO).await;
    assert_eq!(sum_sizes(store.as_ref(), "data/").await.0, 0, "{report:?}");
    let v = verify(&repo, false).await.unwrap();
    assert_eq!(v.blobs, 0, "the index lists nothing that is gone: {v:?}");
    assert!(v.errors.is_empty(), "{:?}", v.errors);
}

#[tokio::test]
async fn a_killed_backup_that_is_never_rerun_is_reclaimed_by_gc() {
    let dir = tempfile::tempdir().unwrap();
    let (store, repo) = local_repo(dir.path()).await;
    let (source, _) = write_image(dir.path());
    killed_backup(&store, &source, 14).await;
    assert!(
        !store.list("index/").await.unwrap().is_empty(),
        "a checkpoint was written"
    );
    // With a zero grace period one gc marks the packs and sweeps them at once, the
    // checkpointed ones and the orphans after the last checkpoint alike.
    let report = gc_with_grace(&repo, Duration::ZERO).await;
    assert!(report.packs_condemned >= 10, "{report:?}");
    assert!(report.packs_deleted >= 10, "{report:?}");
    assert_eq!(sum_sizes(store.as_ref(), "data/").await.0, 0);
    let v = verify(&repo, false).await.unwrap();
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(v.blobs, 0);
}
