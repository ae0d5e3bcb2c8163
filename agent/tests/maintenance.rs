//! The agent's REPOSITORY_MAINTENANCE work (`arca_agent::maintenance::run`) on a local
//! destination holding both of a cluster's repositories: a volume repository with a
//! forgotten snapshot and a resource archive store with a deleted archive. The first run
//! condemns (grace not passed), the second deletes; the bytes reported freed are the bytes
//! that left the destination, and what remains restores.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arca_agent::maintenance;
use arca_agent::resources::ResourceType;
use arca_agent::resources::archive::{Manifest, NewEntry, ObjectStoreArchive, ResourceArchive};
use arca_agent::volumes::Repo;
use arca_agent::volumes::repo::cluster_repository;
use arca_core::ids::DestinationId;
use arca_core::model::destination::DestinationTarget;
use arca_core::ports::ObjectStore;
use arca_core::ports::credentials::DestinationAccess;
use arca_repo::{KdfParams, RestoreOptions, VolumeBackup, backup_volume, restore};

fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                bytes_under(&p)
            } else {
                p.metadata().unwrap().len()
            }
        })
        .sum()
}

#[tokio::test]
async fn maintenance_frees_what_only_deleted_points_held_in_both_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dest");
    let access = DestinationAccess {
        destination_id: DestinationId::new(),
        target: DestinationTarget::LocalFilesystem {
            path: root.to_string_lossy().into_owned(),
        },
        cluster_prefix: "org/cl/".into(),
        credentials: None,
        archive_key: None,
        key_id: None,
        earlier_keys: Vec::new(),
        object_lock: None,
        customer_key: None,
    };
    let key = [5u8; 32];

    // Volumes: two snapshots of different data; the first is forgotten (its point deleted).
    let fast = KdfParams {
        memory_kib: 64,
        iterations: 1,
        ..KdfParams::default()
    };
    let repo = Repo::new(&access, &cluster_repository(&access), &key)
        .unwrap()
        .open(Some(fast))
        .await
        .unwrap();
    let (old, kept) = (arca_testenv::noise(1, 3 << 20), arca_testenv::noise(2, 3 << 20));
    std::fs::write(dir.path().join("old"), &old).unwrap();
    std::fs::write(dir.path().join("kept"), &kept).unwrap();
    let (old_id, _) = backup_volume(&repo, VolumeBackup::new("pvc", dir.path().join("old")))
        .await
        .unwrap();
    backup_volume(&repo, VolumeBackup::new("pvc", dir.path().join("kept")))
        .await
        .unwrap();
    repo.forget(&old_id).await.unwrap();

    // Resources: an archive whose point was deleted (its folder gone) and one kept.
    let store: Arc<dyn ObjectStore> = Arc::new(arca_embedded::LocalFsObjectStore::new(&root));
    let archive = ObjectStoreArchive::new(store.clone(), "org/cl/resources", &key).unwrap();
    let resource = ResourceType {
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
        namespaced: true,
    };
    let mut ids = Vec::new();
    for value in ["gone", "kept"] {
        let writer = archive.begin().await.unwrap();
        let json = serde_json::to_vec(&serde_json::json!({ "kind": "ConfigMap", "data": { "v": value.repeat(5000) } }))
            .unwrap();
        let entry = NewEntry {
            resource: resource.clone(),
            namespace: Some("app".into()),
            name: value.into(),
            uid: value.into(),
        };
        writer.put_object(entry, json).await.unwrap();
        ids.push(writer.finish(Manifest::default()).await.unwrap().archive_id);
    }
    let folder = format!("org/cl/resources/archives/{}/", ids[0]);
    for meta in store.list(&folder).await.unwrap() {
        store.delete(&meta.key).await.unwrap();
    }

    // First run: condemned only (the data is older than the grace period, the marks are not).
    let grace = Duration::from_millis(500);
    tokio::time::sleep(grace).await;
    let before = bytes_under(&root);
    let first = maintenance::run(&archive, &access, &key, grace).await.unwrap();
    assert_eq!(first.result.bytes_freed, 0, "{:?}", first.messages);
    assert_eq!(
        first.result.markers_pending, 2,
        "one mark per repository: {:?}",
        first.messages
    );
    assert!(first.messages.iter().any(|m| m.starts_with("resource archives:")));
    assert!(first.messages.iter().any(|m| m.starts_with("volume repository:")));

    // Second run, after the grace period: deleted, and the bytes reported are the bytes gone.
    tokio::time::sleep(grace).await;
    let marked = bytes_under(&root);
    let second = maintenance::run(&archive, &access, &key, grace).await.unwrap();
    let after = bytes_under(&root);
    assert_eq!(second.result.markers_pending, 0, "{:?}", second.messages);
    assert!(
        second.result.bytes_freed > 2 << 20,
        "the old volume data: {:?}",
        second.messages
    );
    // Markers, locks and rewritten indexes are small; packs are what was freed.
    let gone = marked - after;
    assert!(
        gone.abs_diff(second.result.bytes_freed) < 64 << 10,
        "freed {} reported, {gone} left the destination (before the first run: {before})",
        second.result.bytes_freed
    );

    // What remains restores.
    let repo = Repo::new(&access, &cluster_repository(&access), &key)
        .unwrap()
        .open_existing()
        .await
        .unwrap()
        .unwrap();
    let (id, snap) = repo.find_snapshot("latest", Some("pvc")).await.unwrap();
    let target = dir.path().join("restored");
    restore(&repo, &id, &snap, &target, RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), kept);
    let reader = archive.open(&ids[1]).await.unwrap();
    let entries = reader
        .entries(&arca_agent::resources::archive::ReadFilter::everything())
        .await
        .unwrap();
    assert_eq!(
        reader.object(&entries[0]).await.unwrap()["data"]["v"],
        "kept".repeat(5000)
    );
}
