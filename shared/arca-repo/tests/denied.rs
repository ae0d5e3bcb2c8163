//! A destination that refuses, on a private moto of the test's own that enforces IAM (the
//! shared one does not: that is server-wide): the repository says so in one line naming
//! the bucket and the cause, loses nothing it stored, and a backup run again once the
//! store accepts resumes: it reuses the packs the refused run stored.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arca_core::ports::ObjectStore;
use arca_repo::{Repository, RestoreOptions, VolumeBackup, backup_volume, restore};
use async_trait::async_trait;
use aws_config::BehaviorVersion;
use common::{Hooked, StoreHooks, local_repo, noise, small_config, wrapper};
use tokio::sync::{Notify, watch};

const PACK: u64 = 1 << 20;

fn allow_bucket(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
    )
}

fn deny_put(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    )
}

/// The repository's store on the private moto, as `key`/`secret`, naming its endpoint.
async fn s3(moto: &arca_testenv::PrivateMoto, bucket: &str, key: &str, secret: &str) -> Arc<dyn ObjectStore> {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint_url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(key, secret, None, None, "test"))
        .load()
        .await;
    Arc::new(
        arca_aws::S3ObjectStore::new(arca_aws::config::s3_client(&config), bucket, "repos/one")
            .with_endpoint(Some(&moto.endpoint_url)),
    )
}

/// A bucket on `moto` and a user allowed everything in it (made before IAM is enforced).
async fn bucket_and_user(moto: &arca_testenv::PrivateMoto, prefix: &str) -> (String, arca_testenv::IamUser) {
    let bucket = arca_testenv::unique(prefix).to_lowercase();
    let user = moto.iam_user(&format!("{prefix}-writer"), &allow_bucket(&bucket));
    let setup = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint_url)
        .load()
        .await;
    arca_aws::config::s3_client(&setup)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    (bucket, user)
}

/// Passes everything through; counts the bytes of packs (`data/`) stored; with a gate,
/// holds every pack after the first `hold_after` until the gate opens, and says when the
/// first one is held.
struct Gated {
    pack_bytes: AtomicU64,
    /// Packs stored (their put returned).
    stored: AtomicU64,
    started: AtomicU64,
    hold_after: u64,
    holding: Notify,
    gate: watch::Receiver<bool>,
}

impl Gated {
    fn new(inner: Arc<dyn ObjectStore>, hold_after: u64, gate: watch::Receiver<bool>) -> Arc<Hooked<Gated>> {
        Hooked::new(
            inner,
            Gated {
                pack_bytes: AtomicU64::new(0),
                stored: AtomicU64::new(0),
                started: AtomicU64::new(0),
                hold_after,
                holding: Notify::new(),
                gate,
            },
        )
    }
}

#[async_trait]
impl StoreHooks for Gated {
    async fn before_put(&self, key: &str, _len: u64) -> arca_core::Result<()> {
        if key.starts_with("data/") && self.started.fetch_add(1, Ordering::SeqCst) >= self.hold_after {
            self.holding.notify_one();
            let _ = self.gate.clone().wait_for(|open| *open).await;
        }
        Ok(())
    }
    fn after_put(&self, key: &str, len: u64) {
        if key.starts_with("data/") {
            self.pack_bytes.fetch_add(len, Ordering::SeqCst);
            self.stored.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn listing(store: &dyn ObjectStore, prefix: &str) -> (BTreeSet<String>, u64) {
    let listed = store.list(prefix).await.unwrap();
    (
        listed.iter().map(|o| o.key.clone()).collect(),
        listed.iter().map(|o| o.size).sum(),
    )
}

fn image(dir: &Path, name: &str, seed: u64, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data = noise(seed, len);
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

async fn restored(repo: &Repository, volume: &str, target: &Path) -> Vec<u8> {
    let (id, snap) = repo.find_snapshot("latest", Some(volume)).await.unwrap();
    restore(repo, &id, &snap, target, RestoreOptions::default())
        .await
        .unwrap();
    std::fs::read(target).unwrap()
}

#[tokio::test]
async fn a_backup_denied_put_object_fails_in_one_line_keeps_what_is_stored_and_resumes_once_allowed() {
    let Some(moto) = arca_testenv::private_moto() else {
        return;
    };
    let (bucket, user) = bucket_and_user(&moto, "denied").await;
    moto.enforce_iam();
    let store = s3(&moto, &bucket, &user.access_key_id, &user.secret_access_key).await;
    let dir = tempfile::tempdir().unwrap();

    // What is already stored: a repository and a first volume's snapshot.
    let repo = Repository::init(store.clone(), "t", &wrapper(), Some(small_config()))
        .await
        .unwrap();
    let (first, first_data) = image(dir.path(), "first.img", 1, 4 << 20);
    backup_volume(&repo, VolumeBackup::new("first", &first)).await.unwrap();
    let (stored_before, _) = listing(store.as_ref(), "").await;
    let (_, data_before) = listing(store.as_ref(), "data/").await;

    // A second volume: after 8 of its packs are stored, the user's policy denies PutObject.
    let (second, second_data) = image(dir.path(), "second.img", 2, 24 << 20);
    let (open, gate) = watch::channel(false);
    let gated = Gated::new(store.clone(), 8, gate);
    let run = Repository::open(gated.clone() as Arc<dyn ObjectStore>, "t", &wrapper())
        .await
        .unwrap();
    let source = second.clone();
    let task = tokio::spawn(async move { backup_volume(&run, VolumeBackup::new("second", source)).await });
    gated.holding.notified().await;
    // The first 8 may still be on their way (uploads run in parallel): the denial comes
    // once they are stored, so what "stored before the denial" means is exact.
    let waiting = std::time::Instant::now();
    while gated.stored.load(Ordering::SeqCst) < 8 {
        assert!(
            waiting.elapsed() < std::time::Duration::from_secs(60),
            "the first 8 packs never landed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    moto.put_user_policy(&user.name, "deny-put", &deny_put(&bucket));
    open.send(true).unwrap();
    let err = task.await.unwrap().expect_err("PutObject is denied");

    let line = err.to_string();
    eprintln!("the refused backup: {line}");
    assert!(line.contains(&format!("s3://{bucket}/")), "names the bucket: {line}");
    assert!(line.contains(&moto.endpoint_url), "names the endpoint: {line}");
    assert!(line.contains("access denied (AccessDenied"), "says why: {line}");
    assert!(!line.contains('\n') && line.len() < 600, "one line: {line}");
    assert!(!line.contains(&user.secret_access_key), "no secret: {line}");

    // Nothing already stored is lost: every object is still there, the first snapshot
    // restores, and the packs the refused run stored before the denial are kept.
    let (stored_after, _) = listing(store.as_ref(), "").await;
    assert!(
        stored_before.is_subset(&stored_after),
        "lost: {:?}",
        stored_before.difference(&stored_after).collect::<Vec<_>>()
    );
    assert_eq!(
        restored(&repo, "first", &dir.path().join("first.out")).await,
        first_data
    );
    let (_, data_after) = listing(store.as_ref(), "data/").await;
    let kept = data_after - data_before;
    assert!(kept >= 8 * PACK, "the refused run's first 8 packs are stored: {kept} B");

    // The policy fixed, the backup run again: it completes, uploads only what the refused
    // run did not store, and restores byte for byte.
    moto.delete_user_policy(&user.name, "deny-put");
    let full = {
        let local = tempfile::tempdir().unwrap();
        let (local_store, local_repo) = local_repo(local.path()).await;
        backup_volume(&local_repo, VolumeBackup::new("second", &second))
            .await
            .unwrap();
        listing(local_store.as_ref(), "data/").await.1
    };
    let (_open, never_held) = watch::channel(true);
    let counting = Gated::new(store.clone(), u64::MAX, never_held);
    let rerun = Repository::open(counting.clone() as Arc<dyn ObjectStore>, "t", &wrapper())
        .await
        .unwrap();
    let (_, snap) = backup_volume(&rerun, VolumeBackup::new("second", &second))
        .await
        .unwrap();
    let uploaded = counting.pack_bytes.load(Ordering::SeqCst);
    println!("full backup {full} B; the refused run kept {kept} B; the rerun uploaded {uploaded} B");
    assert!(
        uploaded <= full - kept + PACK,
        "uploaded {uploaded} of {full}, though {kept} were already stored"
    );
    assert!(snap.stats.bytes_new <= full - kept + PACK, "{:?}", snap.stats);
    assert_eq!(
        restored(&rerun, "second", &dir.path().join("second.out")).await,
        second_data
    );
}

#[tokio::test]
async fn opening_a_repository_with_a_wrong_secret_says_so_and_not_that_there_is_none() {
    let Some(moto) = arca_testenv::private_moto() else {
        return;
    };
    let (bucket, user) = bucket_and_user(&moto, "wrongkey").await;
    moto.enforce_iam();
    let good = s3(&moto, &bucket, &user.access_key_id, &user.secret_access_key).await;
    Repository::init(good, "t", &wrapper(), Some(small_config()))
        .await
        .unwrap();

    let wrong = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let bad = s3(&moto, &bucket, &user.access_key_id, wrong).await;
    let started = std::time::Instant::now();
    let Err(err) = Repository::open(bad, "t", &wrapper()).await else {
        panic!("a wrong secret is refused")
    };
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "not retried: {:?}",
        started.elapsed()
    );
    assert!(!matches!(err, arca_repo::RepoError::NotARepository(_)), "{err:?}");
    let line = err.to_string();
    eprintln!("{line}");
    assert!(line.contains(&format!("s3://{bucket}/")), "names the bucket: {line}");
    assert!(
        line.contains("the secret key does not match the access key (SignatureDoesNotMatch"),
        "says why: {line}"
    );
    assert!(
        !line.contains('\n') && !line.contains(wrong),
        "one line, no secret: {line}"
    );
}
