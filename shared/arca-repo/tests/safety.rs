//! Wrong keys, corruption, a killed backup, gc racing a backup, and the S3 backend.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arca_core::ports::ObjectStore;
use arca_repo::{
    GcOptions, PassphraseWrapper, RepoError, Repository, RestoreOptions, VolumeBackup, backup_volume, gc, restore,
    verify,
};
use async_trait::async_trait;
use bytes::Bytes;
use common::{Hooked, StoreHooks, gc_with_grace, local_repo, noise, wrapper};

fn image(dir: &Path, seed: u64) -> (PathBuf, Vec<u8>) {
    let mut data = noise(seed, 300_000);
    data.extend(std::iter::repeat_n(0u8, 40_000));
    data.extend(b"some text ".repeat(10_000));
    let path = dir.join(format!("img-{seed}"));
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

async fn restored(repo: &Repository, spec: &str, target: &Path) -> Result<Vec<u8>, RepoError> {
    let (id, snap) = repo.find_snapshot(spec, None).await?;
    restore(repo, &id, &snap, target, RestoreOptions::default()).await?;
    Ok(std::fs::read(target).unwrap())
}

#[tokio::test]
async fn wrong_passphrase_and_missing_repository_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = local_repo(dir.path()).await;
    let err = Repository::open(store.clone(), "t", &PassphraseWrapper::new("nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::WrongPassword), "{err}");
    let empty: Arc<dyn ObjectStore> = Arc::new(arca_embedded::LocalFsObjectStore::new(dir.path().join("none")));
    let err = Repository::open(empty, "nowhere", &wrapper()).await.unwrap_err();
    assert!(matches!(err, RepoError::NotARepository(_)), "{err}");
    let err = Repository::init(store, "t", &wrapper(), None).await.unwrap_err();
    assert!(matches!(err, RepoError::AlreadyExists(_)), "{err}");
}

#[tokio::test]
async fn a_flipped_byte_in_a_pack_is_found_by_verify_and_by_restore_naming_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (store, repo) = local_repo(dir.path()).await;
    let (source, data) = image(dir.path(), 1);
    let (id, _) = backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    assert!(verify(&repo, true).await.unwrap().errors.is_empty());

    // Flip one byte in the first blob region of every pack (headers stay intact).
    let packs = store.list("data/").await.unwrap();
    assert!(!packs.is_empty());
    for pack in &packs {
        let mut bytes = store.get(&pack.key).await.unwrap().to_vec();
        bytes[100] ^= 0x40;
        store.put(&pack.key, Bytes::from(bytes)).await.unwrap();
    }
    assert!(
        verify(&repo, false).await.unwrap().errors.is_empty(),
        "structure alone does not read blob data"
    );
    let report = verify(&repo, true).await.unwrap();
    assert!(!report.errors.is_empty());
    assert!(
        report.errors.iter().any(|e| e.contains(&id.to_hex())),
        "{:?}",
        report.errors
    );
    let err = restored(&repo, "latest", &dir.path().join("out")).await.unwrap_err();
    assert!(err.to_string().contains(&id.to_hex()), "{err}");
    assert!(!err.to_string().contains('\n'));
    drop(data);
}

/// A store that fails every put after `allowed` of them: a backup dying at any point.
struct FailingStore {
    allowed: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl StoreHooks for FailingStore {
    async fn before_put(&self, _key: &str, _len: u64) -> arca_core::Result<()> {
        if self
            .allowed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(arca_core::Error::transient("injected failure"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_backup_failing_at_every_point_leaves_a_valid_repository_and_the_rerun_reuses_its_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let (store, repo) = local_repo(dir.path()).await;
    // Big enough for several packs at the 1 MiB test pack size.
    let data = noise(11, 3 << 20);
    let source = dir.path().join("big.img");
    std::fs::write(&source, &data).unwrap();
    for allowed in [0usize, 1, 2, 3] {
        let failing: Arc<dyn ObjectStore> = Hooked::new(
            store.clone(),
            FailingStore {
                allowed: std::sync::atomic::AtomicUsize::new(allowed),
            },
        );
        let broken = Repository::open(failing, "t", &wrapper()).await.unwrap();
        let err = backup_volume(&broken, VolumeBackup::new("v", &source))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert!(
            repo.snapshots().await.unwrap().is_empty(),
            "no snapshot may be visible after a failed backup"
        );
        assert!(verify(&repo, false).await.unwrap().errors.is_empty());
    }
    let (_, snap) = backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    // The failed attempts uploaded at least two packs' worth of blocks; the rerun reused them.
    assert!(snap.stats.blocks_new < (3 << 20) / 4096 - 200, "{:?}", snap.stats);
    assert_eq!(restored(&repo, "latest", &dir.path().join("out")).await.unwrap(), data);
    let gc_report = gc_with_grace(&repo, Duration::ZERO).await;
    assert_eq!(verify(&repo, true).await.unwrap().unindexed_packs, 0, "{gc_report:?}");
}

/// Runs a gc (grace 1 s; the packs are older than that, so it condemns them but does not
/// sweep) when the backup under test lists gc markers for the second time: after it decided
/// to reuse blobs (first listing, at start) and right before its final check reads them.
struct GcInTheMiddle {
    gc_repo: OnceLock<Repository>,
    marker_lists: std::sync::atomic::AtomicUsize,
    fired: AtomicBool,
}

#[async_trait]
impl StoreHooks for GcInTheMiddle {
    async fn before_list(&self, prefix: &str) {
        if prefix == "gc/"
            && self.marker_lists.fetch_add(1, Ordering::SeqCst) == 1
            && let Some(repo) = self.gc_repo.get()
        {
            let report = gc_with_grace(repo, Duration::from_secs(1)).await;
            assert!(
                report.packs_condemned > 0,
                "the race must condemn the packs the backup reuses: {report:?}"
            );
            assert_eq!(report.packs_deleted, 0);
            self.fired.store(true, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn gc_racing_a_backup_never_deletes_what_the_backup_references() {
    let dir = tempfile::tempdir().unwrap();
    let (store, repo) = local_repo(dir.path()).await;
    let (source, data) = image(dir.path(), 2);
    let (old, _) = backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    repo.forget(&old).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // the old packs are now past the grace period

    let hooked = Hooked::new(
        store.clone(),
        GcInTheMiddle {
            gc_repo: OnceLock::new(),
            marker_lists: std::sync::atomic::AtomicUsize::new(0),
            fired: AtomicBool::new(false),
        },
    );
    let _ = hooked.gc_repo.set(repo.clone());
    let racing = Repository::open(hooked.clone() as Arc<dyn ObjectStore>, "t", &wrapper())
        .await
        .unwrap();
    let (new, snap) = backup_volume(&racing, VolumeBackup::new("v", &source)).await.unwrap();
    assert!(hooked.fired.load(Ordering::SeqCst));
    assert_eq!(
        snap.stats.blocks_new, 0,
        "the backup reused every block of the forgotten snapshot"
    );

    // Past the grace period, the sweep deletes the condemned packs: the new snapshot must
    // survive because its final check copied what it reused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = gc_with_grace(&repo, Duration::from_secs(1)).await;
    assert!(report.packs_deleted > 0, "{report:?}");
    assert_eq!(
        restored(&repo, &new.to_hex(), &dir.path().join("out")).await.unwrap(),
        data
    );
    let v = verify(&repo, true).await.unwrap();
    assert!(v.errors.is_empty(), "{:?}", v.errors);
}

#[tokio::test]
async fn backup_restore_verify_and_gc_work_on_s3() {
    let Some(store) = common::s3_store().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(store.clone(), "s3", &wrapper(), Some(common::small_config()))
        .await
        .unwrap();
    let (source, data) = image(dir.path(), 3);
    let (first, _) = backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    let mut changed = data.clone();
    changed[5000] ^= 1;
    std::fs::write(&source, &changed).unwrap();
    let (_, snap2) = backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    assert_eq!(snap2.stats.blocks_new, 1);
    let reopened = Repository::open(store, "s3", &wrapper()).await.unwrap();
    assert_eq!(
        restored(&reopened, &first.to_hex(), &dir.path().join("a"))
            .await
            .unwrap(),
        data
    );
    assert_eq!(
        restored(&reopened, "latest", &dir.path().join("b")).await.unwrap(),
        changed
    );
    reopened.forget(&first).await.unwrap();
    gc_with_grace(&reopened, Duration::ZERO).await;
    assert_eq!(
        restored(&reopened, "latest", &dir.path().join("c")).await.unwrap(),
        changed
    );
    let v = verify(&reopened, true).await.unwrap();
    assert!(v.errors.is_empty(), "{:?}", v.errors);
}

/// The gc lock is a conditional write: of concurrent gcs exactly one runs and the others
/// are refused naming the lock; a crashed gc's stale lock is taken over by one gc only,
/// and a released lock leaves nothing behind.
#[tokio::test]
async fn one_gc_at_a_time_and_a_stale_lock_is_taken_over_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, repo) = local_repo(dir.path()).await;
    let (source, _) = image(dir.path(), 7);
    backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();

    let options = GcOptions::default();
    let (a, b, c) = tokio::join!(gc(&repo, &options), gc(&repo, &options), gc(&repo, &options));
    let results = [a, b, c];
    let ran = results.iter().filter(|r| r.is_ok()).count();
    // A gc that finished before another started lets that one run too; never two at once.
    assert!(ran >= 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(r, RepoError::Concurrent(m) if m.contains("locks/gc")),
            "a refused gc names the lock: {r}"
        );
    }
    assert!(
        store.list("locks/").await.unwrap().is_empty(),
        "released locks are gone"
    );

    // A fresh lock held elsewhere: refused, and the lock is left alone.
    let fresh = serde_json::json!({ "created_ms": now_ms(), "hostname": "agent-1" }).to_string();
    store.put("locks/gc", Bytes::from(fresh.clone())).await.unwrap();
    let err = gc(&repo, &options).await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Concurrent(m) if m.contains("agent-1")),
        "{err}"
    );
    assert_eq!(store.get("locks/gc").await.unwrap(), Bytes::from(fresh));

    // A crashed gc's lock (three hours old): two gcs race for it, one takes it over.
    let stale_ms = now_ms() - 3 * 3600 * 1000;
    let stale = serde_json::json!({ "created_ms": stale_ms }).to_string();
    store.put("locks/gc", Bytes::from(stale)).await.unwrap();
    let (a, b) = tokio::join!(gc(&repo, &options), gc(&repo, &options));
    let reports: Vec<_> = [a, b].into_iter().filter_map(Result::ok).collect();
    assert!(!reports.is_empty(), "the stale lock is taken over");
    assert_eq!(
        reports.iter().filter(|r| r.stale_lock_taken_over).count(),
        1,
        "exactly one gc took the stale lock over: {reports:?}"
    );
    assert!(
        store.list("locks/").await.unwrap().is_empty(),
        "the lock and the takeover claim are removed"
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `init` is a conditional write of the config: of two concurrent inits one makes the
/// repository, the other is told it exists and leaves no key file behind, so the
/// repository opens and a backup through either restores.
#[tokio::test]
async fn concurrent_inits_make_one_repository() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(arca_embedded::LocalFsObjectStore::new(dir.path().join("repo")));
    let (wa, wb) = (wrapper(), wrapper());
    let (a, b) = tokio::join!(
        Repository::init(store.clone(), "race", &wa, None),
        Repository::init(store.clone(), "race", &wb, None)
    );
    let made = [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count();
    assert_eq!(made, 1, "exactly one init wins");
    for r in [a, b].into_iter().filter_map(Result::err) {
        assert!(matches!(r, RepoError::AlreadyExists(_)), "{r}");
    }
    assert_eq!(
        store.list("keys/").await.unwrap().len(),
        1,
        "the loser's key file is gone"
    );
    let repo = Repository::open(store.clone(), "race", &wrapper()).await.unwrap();
    let (source, data) = image(dir.path(), 11);
    backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    let target = dir.path().join("restored");
    assert_eq!(restored(&repo, "latest", &target).await.unwrap(), data);
}
