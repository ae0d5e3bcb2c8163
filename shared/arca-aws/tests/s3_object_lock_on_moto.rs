//! Immutable destinations: the S3 adapter on a bucket with S3 Object Lock, on moto. A `put`
//! of a store with a lock date is retained until it (a `put_if_absent` is not), a locked
//! version cannot be deleted, the store's `delete` hides it all the same and removes every
//! version once the date has passed, and `retain_until` extends a lock but never shortens it.
//! The bucket's own configuration (enabled, default retention) is read as the agent reports it.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

use std::time::{Duration, SystemTime};

use arca_aws::S3ObjectStore;
use arca_core::Error;
use arca_core::model::destination::{BucketLock, LockMode};
use arca_core::ports::ObjectStore;
use arca_core::ports::credentials::ObjectLockWrite;
use aws_sdk_s3::Client;
use bytes::Bytes;
use chrono::{DateTime, Utc};

const ROOT: &str = "repositories/org/cluster";

fn now() -> DateTime<Utc> {
    DateTime::from(SystemTime::now())
}

/// Now plus `secs`, in whole seconds (what S3 keeps of a retention date).
fn in_secs(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(now().timestamp() + secs, 0).unwrap()
}

/// The version ids of exactly `key` (under [`ROOT`]): its versions, then its delete markers.
async fn versions(s3: &Client, bucket: &str, key: &str) -> (Vec<String>, Vec<String>) {
    let full = format!("{ROOT}/{key}");
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(&full)
        .send()
        .await
        .unwrap();
    let of_key = |k: Option<&str>, id: Option<&str>| (k == Some(full.as_str())).then(|| id.unwrap().to_owned());
    (
        out.versions()
            .iter()
            .filter_map(|v| of_key(v.key(), v.version_id()))
            .collect(),
        out.delete_markers()
            .iter()
            .filter_map(|m| of_key(m.key(), m.version_id()))
            .collect(),
    )
}

async fn listed(store: &S3ObjectStore) -> Vec<String> {
    store.list("").await.unwrap().into_iter().map(|o| o.key).collect()
}

/// A client of moto's S3 and a new bucket there with Object Lock enabled (`None` outside
/// the test environment).
async fn locked_bucket(prefix: &str) -> Option<(Client, String)> {
    let env = arca_testenv::aws()?;
    let s3 = arca_aws::config::s3_client(&env.sdk_config().await);
    let bucket = arca_testenv::unique(prefix);
    s3.create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create a bucket with Object Lock on moto");
    Some((s3, bucket))
}

#[tokio::test]
async fn objects_written_with_a_lock_are_retained_and_deleted_version_by_version() {
    let Some((s3, bucket)) = locked_bucket("arca-lock").await else {
        return;
    };
    let until = in_secs(10);
    let lock = |retain_until| {
        Some(ObjectLockWrite {
            mode: LockMode::Governance,
            retain_until,
        })
    };
    let store = S3ObjectStore::new(s3.clone(), &bucket, ROOT).with_object_lock(lock(Some(until)));
    // A job that retains nothing it writes (gc, a restore) on the same bucket.
    let unretained = S3ObjectStore::new(s3.clone(), &bucket, ROOT).with_object_lock(lock(None));

    // 1. A put is retained until the store's date; a lock file and an unretained job's
    //    writes are not.
    store.put("packs/a", Bytes::from_static(b"pack a")).await.unwrap();
    for _ in 0..2 {
        store.put("packs/b", Bytes::from_static(b"pack b")).await.unwrap();
    }
    assert!(
        store
            .put_if_absent("locks/l", Bytes::from_static(b"lock"))
            .await
            .unwrap()
    );
    unretained.put("index/i", Bytes::from_static(b"index")).await.unwrap();
    assert_eq!(store.retained_until("packs/a").await.unwrap(), Some(until));
    assert_eq!(store.retained_until("packs/b").await.unwrap(), Some(until));
    assert_eq!(
        store.retained_until("locks/l").await.unwrap(),
        None,
        "locks stay deletable"
    );
    assert_eq!(store.retained_until("index/i").await.unwrap(), None);
    assert!(matches!(
        store.retained_until("packs/absent").await,
        Err(Error::NotFound { .. })
    ));

    // 2. The locked version itself cannot be deleted; the store's delete hides the key
    //    and leaves the version.
    let (a_versions, _) = versions(&s3, &bucket, "packs/a").await;
    assert_eq!(a_versions.len(), 1);
    let refused = s3
        .delete_object()
        .bucket(&bucket)
        .key(format!("{ROOT}/packs/a"))
        .version_id(&a_versions[0])
        .send()
        .await;
    assert!(refused.is_err(), "a locked version was deleted: {refused:?}");
    store.delete("packs/a").await.unwrap();
    assert!(!listed(&store).await.contains(&"packs/a".to_owned()));
    let (left, markers) = versions(&s3, &bucket, "packs/a").await;
    assert_eq!(left, a_versions, "the locked version is kept");
    assert_eq!(markers.len(), 1, "hidden by a delete marker");
    // What is not locked goes at once, every version of it.
    store.delete("locks/l").await.unwrap();
    assert_eq!(versions(&s3, &bucket, "locks/l").await, (vec![], vec![]));

    // 3. retain_until extends a lock and never shortens it.
    store.put("packs/c", Bytes::from_static(b"pack c")).await.unwrap();
    let later = in_secs(60);
    store.retain_until("packs/c", later).await.unwrap();
    assert_eq!(store.retained_until("packs/c").await.unwrap(), Some(later));
    store.retain_until("packs/c", in_secs(30)).await.unwrap();
    assert_eq!(
        store.retained_until("packs/c").await.unwrap(),
        Some(later),
        "never shortened"
    );
    store.retain_until("packs/c", until).await.unwrap();
    assert_eq!(store.retained_until("packs/c").await.unwrap(), Some(later));

    // 4. Once the date has passed, the store's delete removes every version and marker.
    store.delete("packs/b").await.unwrap();
    assert_eq!(versions(&s3, &bucket, "packs/b").await.0.len(), 2, "still locked");
    while now() <= until + chrono::Duration::seconds(1) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    store.delete("packs/b").await.unwrap();
    assert_eq!(versions(&s3, &bucket, "packs/b").await, (vec![], vec![]));
    // The extended lock still holds past the first date.
    store.delete("packs/c").await.unwrap();
    assert_eq!(
        versions(&s3, &bucket, "packs/c").await.0.len(),
        1,
        "retained until later"
    );
    assert!(!listed(&store).await.contains(&"packs/c".to_owned()));
}

/// A store writing with a lock keeps the object store's contract: an overwrite is a new
/// version, and a delete of a locked object hides it.
#[tokio::test]
async fn a_store_with_a_lock_passes_the_contract() {
    let Some((s3, bucket)) = locked_bucket("arca-lock-contract").await else {
        return;
    };
    let store = S3ObjectStore::new(s3, &bucket, ROOT).with_object_lock(Some(ObjectLockWrite {
        mode: LockMode::Governance,
        retain_until: Some(in_secs(60)),
    }));
    arca_core::testing::contracts::object_store::object_store_contract(&store, "contract").await;
}

/// A store and a bucket without Object Lock: nothing is retained, and nothing can be.
#[tokio::test]
async fn a_bucket_without_object_lock_retains_nothing() {
    let Some(env) = arca_testenv::aws() else { return };
    let s3 = arca_aws::config::s3_client(&env.sdk_config().await);
    let bucket = arca_testenv::unique("arca-unlocked");
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    let store = S3ObjectStore::new(s3.clone(), &bucket, ROOT);
    let none = BucketLock {
        enabled: false,
        default_mode: None,
        default_days: None,
    };
    assert_eq!(
        store.lock_configuration().await.unwrap(),
        Some(none),
        "answered, not an error"
    );
    store.put("packs/a", Bytes::from_static(b"pack a")).await.unwrap();
    assert_eq!(store.retained_until("packs/a").await.unwrap(), None);
    let refused = store.retain_until("packs/a", in_secs(60)).await;
    assert!(refused.is_err(), "{refused:?}");
    store.delete("packs/a").await.unwrap();
    assert!(listed(&store).await.is_empty());
}

#[tokio::test]
async fn a_buckets_lock_configuration_is_read_with_its_default_retention() {
    let Some((s3, bucket)) = locked_bucket("arca-lockcfg").await else {
        return;
    };
    let store = S3ObjectStore::new(s3.clone(), &bucket, ROOT);
    let enabled = BucketLock {
        enabled: true,
        default_mode: None,
        default_days: None,
    };
    assert_eq!(store.lock_configuration().await.unwrap(), Some(enabled));
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
    };
    s3.put_object_lock_configuration()
        .bucket(&bucket)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Compliance)
                                .days(3)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("default retention");
    assert_eq!(
        store.lock_configuration().await.unwrap(),
        Some(BucketLock {
            enabled: true,
            default_mode: Some(LockMode::Compliance),
            default_days: Some(3),
        })
    );
    let missing = S3ObjectStore::new(s3, arca_testenv::unique("arca-nobucket"), ROOT);
    assert!(
        missing.lock_configuration().await.is_err(),
        "no bucket is an error, not `disabled`"
    );
}
