//! An immutable destination (S3 Object Lock) on moto, through the agent's own code: the
//! store the agent opens for a job, the resource archive and the volume repository. What
//! a point reads is retained until the point's date, data a later point reuses is extended
//! to the later date, S3 refuses to delete a retained version, and maintenance leaves
//! unreferenced packs alone until their date, then deletes every version of them.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use arca_agent::maintenance;
use arca_agent::resources::ResourceType;
use arca_agent::resources::archive::{Manifest, NewEntry, ObjectStoreArchive, ResourceArchive};
use arca_agent::volumes::Repo;
use arca_agent::volumes::repo::{cluster_repository, open_store_at};
use arca_core::ids::DestinationId;
use arca_core::model::destination::{DestinationTarget, LockMode};
use arca_core::ports::ObjectStore;
use arca_core::ports::credentials::{DestinationAccess, ObjectLockWrite};
use arca_repo::{KdfParams, VolumeBackup, backup_volume};
use chrono::{DateTime, Utc};

const KEY: [u8; 32] = [9u8; 32];
const ARCHIVES: &str = "org/cl/resources";

fn access(bucket: &str, endpoint: &str, retain_until: Option<DateTime<Utc>>) -> DestinationAccess {
    DestinationAccess {
        destination_id: DestinationId::new(),
        target: DestinationTarget::S3 {
            endpoint: Some(endpoint.to_owned()),
            bucket: bucket.to_owned(),
            region: "us-east-1".into(),
            prefix: String::new(),
            credentials_ref: None,
            skip_tls_verify: false,
            path_style: None,
            ca_bundle: None,
        },
        cluster_prefix: "org/cl/".into(),
        credentials: None,
        archive_key: None,
        key_id: None,
        earlier_keys: Vec::new(),
        object_lock: Some(ObjectLockWrite {
            mode: LockMode::Governance,
            retain_until,
        }),
        customer_key: None,
    }
}

/// Whole seconds from now: S3 keeps retention dates to the second.
fn in_secs(secs: i64) -> DateTime<Utc> {
    let now = DateTime::<Utc>::from(std::time::SystemTime::now());
    DateTime::from_timestamp(now.timestamp() + secs, 0).unwrap()
}

async fn archive_once(store: Arc<dyn ObjectStore>, until: DateTime<Utc>) -> String {
    let archive = ObjectStoreArchive::new(store, ARCHIVES, &KEY)
        .unwrap()
        .with_retention(Some(until));
    let writer = archive.begin().await.unwrap();
    let json =
        serde_json::to_vec(&serde_json::json!({ "kind": "ConfigMap", "data": { "v": "same".repeat(5000) } })).unwrap();
    let entry = NewEntry {
        resource: ResourceType {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            namespaced: true,
        },
        namespace: Some("app".into()),
        name: "settings".into(),
        uid: "u1".into(),
    };
    writer.put_object(entry, json).await.unwrap();
    writer.finish(Manifest::default()).await.unwrap().archive_id
}

async fn keys_under(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    store.list(prefix).await.unwrap().into_iter().map(|m| m.key).collect()
}

/// Every version id S3 keeps for exactly `key`.
async fn versions(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<String> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    out.versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .filter_map(|v| v.version_id().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_destination_retains_what_each_point_reads_and_gc_waits_for_the_date() {
    let Some(aws) = arca_testenv::aws() else { return };
    let s3 = arca_aws::config::s3_client(&aws.sdk_config().await);
    let bucket = arca_testenv::unique("arca-lock").to_lowercase();
    s3.create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let (first, second) = (in_secs(10), in_secs(20));

    // Two backups of the same object: the second stores nothing new and extends the one
    // pack it reuses from the first's date to its own.
    let store = open_store_at(&access(&bucket, &aws.endpoint_url, Some(first)), "", None)
        .await
        .unwrap();
    let one = archive_once(store.clone(), first).await;
    let packs = keys_under(store.as_ref(), &format!("{ARCHIVES}/packs/")).await;
    assert_eq!(packs.len(), 1, "{packs:?}");
    let pack = &packs[0];
    assert_eq!(store.retained_until(pack).await.unwrap(), Some(first));
    let later = open_store_at(&access(&bucket, &aws.endpoint_url, Some(second)), "", None)
        .await
        .unwrap();
    let two = archive_once(later.clone(), second).await;
    assert_eq!(keys_under(store.as_ref(), &format!("{ARCHIVES}/packs/")).await, packs);
    assert_eq!(
        store.retained_until(pack).await.unwrap(),
        Some(second),
        "the reused pack is retained as long as the later point"
    );
    let manifest = format!("{ARCHIVES}/archives/{two}/manifest");
    assert!(
        keys_under(store.as_ref(), &format!("{ARCHIVES}/archives/{two}/"))
            .await
            .iter()
            .any(|k| k.ends_with("manifest")),
        "{manifest}"
    );

    // S3 itself refuses to delete a retained version: the lock is real, not Arca's word.
    let version = versions(&s3, &bucket, pack).await;
    assert_eq!(version.len(), 1, "{version:?}");
    let refused = s3
        .delete_object()
        .bucket(&bucket)
        .key(pack)
        .version_id(&version[0])
        .send()
        .await;
    assert!(refused.is_err(), "deleting a retained version must be refused");

    // A volume: every pack its snapshot reads is retained until its point's date.
    let locked = access(&bucket, &aws.endpoint_url, Some(second));
    let fast = KdfParams {
        memory_kib: 64,
        iterations: 1,
        ..KdfParams::default()
    };
    let repo = Repo::new(&locked, &cluster_repository(&locked), &KEY)
        .unwrap()
        .open(Some(fast))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("disk"), arca_testenv::noise(3, 2 << 20)).unwrap();
    let (snapshot_id, snapshot) = backup_volume(&repo, VolumeBackup::new("pvc", dir.path().join("disk")))
        .await
        .unwrap();
    let retained = arca_repo::immutability::retain_snapshot(&repo, &snapshot, second)
        .await
        .unwrap();
    assert!(retained.checked >= 1 && retained.extended == 0, "{retained:?}");
    let volume_packs = keys_under(store.as_ref(), &format!("{}/data/", cluster_repository(&locked))).await;
    assert!(!volume_packs.is_empty());
    for key in &volume_packs {
        assert_eq!(store.retained_until(key).await.unwrap(), Some(second), "{key}");
    }

    // Both points deleted (their archives' files and the volume snapshot), as DELETE_BACKUP
    // jobs do: on a locked bucket that hides the retained versions behind delete markers.
    for archive in [&one, &two] {
        for key in keys_under(store.as_ref(), &format!("{ARCHIVES}/archives/{archive}/")).await {
            store.delete(&key).await.unwrap();
        }
    }
    repo.forget(&snapshot_id).await.unwrap();

    // Maintenance before the date: condemned, then left alone because still retained.
    let maintain = access(&bucket, &aws.endpoint_url, None);
    let archive = ObjectStoreArchive::new(store.clone(), ARCHIVES, &KEY).unwrap();
    let grace = Duration::from_millis(300);
    let run = || maintenance::run(&archive, &maintain, &KEY, grace);
    tokio::time::sleep(grace).await;
    run().await.unwrap();
    tokio::time::sleep(grace).await;
    let early = run().await.unwrap();
    assert_eq!(early.result.bytes_freed, 0, "{:?}", early.messages);
    assert!(
        early
            .messages
            .iter()
            .any(|m| m.starts_with("resource archives:") && m.contains(" 1 still under Object Lock")),
        "{:?}",
        early.messages
    );
    assert!(
        early
            .messages
            .iter()
            .any(|m| m.starts_with("volume repository:") && !m.contains(" 0 still under Object Lock")),
        "{:?}",
        early.messages
    );
    assert_eq!(versions(&s3, &bucket, pack).await, version, "the pack is still stored");

    // After the date: condemned again, and deleted with every version.
    let wait = (second - DateTime::<Utc>::from(std::time::SystemTime::now()))
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_secs(1)).await;
    run().await.unwrap();
    tokio::time::sleep(grace).await;
    let late = run().await.unwrap();
    assert!(late.result.bytes_freed > 0, "{:?}", late.messages);
    assert!(
        versions(&s3, &bucket, pack).await.is_empty(),
        "no version of the pack is left"
    );
    for key in &volume_packs {
        assert!(versions(&s3, &bucket, key).await.is_empty(), "{key} is gone for good");
    }
}
