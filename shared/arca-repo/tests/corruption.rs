//! Every object of a real repository, damaged in turn (truncated, bit-flipped, extended):
//! opening, listing, verifying and restoring report it as a one-line error, never panic, and
//! never restore wrong bytes. The decoders behind the sealed layer are fuzzed on their own
//! (`tests/decoders.rs`, `fuzz/`); this is the same question asked through the repository.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::sync::Arc;
use std::time::Duration;

use arca_core::ports::ObjectStore;
use arca_repo::{Id, RepoError, Repository, RestoreOptions, VolumeBackup, backup_volume, restore, verify};
use bytes::Bytes;
use common::{gc_with_grace, local_repo, noise, wrapper};

/// What reading the repository found: `Ok(())` when everything opened, verified and
/// restored byte for byte, else the first error line.
async fn read_everything(
    store: &Arc<dyn ObjectStore>,
    expected: &[(Id, Vec<u8>)],
    dir: &std::path::Path,
) -> Result<(), String> {
    let one_line = |e: RepoError| {
        let text = e.to_string();
        assert!(!text.contains('\n'), "multi-line error: {text:?}");
        text
    };
    let repo = Repository::open(store.clone(), "t", &wrapper())
        .await
        .map_err(one_line)?;
    let mut problems = Vec::new();
    match verify(&repo, true).await {
        Ok(report) => problems.extend(report.errors),
        Err(e) => problems.push(one_line(e)),
    }
    if let Err(e) = repo.load_index(true).await {
        problems.push(one_line(e));
    }
    match repo.snapshots().await {
        Ok(list) => {
            if list.len() != expected.len() {
                problems.push(format!("{} snapshots listed", list.len()));
            }
        }
        Err(e) => problems.push(one_line(e)),
    }
    for (id, data) in expected {
        let target = dir.join("restored");
        match repo.find_snapshot(&id.to_hex(), None).await {
            Ok((_, snap)) => match restore(&repo, id, &snap, &target, RestoreOptions::default()).await {
                Ok(_) => assert!(
                    std::fs::read(&target).unwrap() == *data,
                    "restore of {id} succeeded with wrong bytes"
                ),
                Err(e) => problems.push(one_line(e)),
            },
            Err(e) => problems.push(one_line(e)),
        }
    }
    match problems.into_iter().next() {
        None => Ok(()),
        Some(first) => Err(first),
    }
}

#[tokio::test]
async fn every_damaged_object_is_reported_in_one_line_and_nothing_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (store, repo) = local_repo(dir.path()).await;
    let source = dir.path().join("disk.img");

    // Two snapshots of a volume, a forgotten third whose packs a gc marker condemns.
    let mut image = noise(1, 200_000);
    image.extend(std::iter::repeat_n(0u8, 50_000));
    image.extend(b"text text ".repeat(5_000));
    std::fs::write(&source, &image).unwrap();
    let (a, _) = backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    let first = image.clone();
    image[1000..1100].fill(7);
    std::fs::write(&source, &image).unwrap();
    let (b, _) = backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    std::fs::write(&source, noise(2, 100_000)).unwrap();
    let (c, _) = backup_volume(&repo, VolumeBackup::new("w", &source)).await.unwrap();
    repo.forget(&c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = gc_with_grace(&repo, Duration::from_millis(10)).await;
    assert!(report.packs_condemned > 0, "{report:?}");

    let expected = vec![(a, first), (b, image)];
    read_everything(&store, &expected, dir.path()).await.unwrap();

    let objects = store.list("").await.unwrap();
    let kinds: Vec<&str> = ["config", "keys/", "data/", "index/", "snapshots/", "gc/"].to_vec();
    for kind in &kinds {
        assert!(
            objects.iter().any(|o| o.key.starts_with(kind)),
            "the repository has no {kind} object: {objects:?}"
        );
    }
    let mut cases = 0;
    for object in &objects {
        let original = store.get(&object.key).await.unwrap();
        let len = original.len();
        let mut mutations: Vec<(String, Vec<u8>)> = vec![
            ("empty".into(), Vec::new()),
            ("one byte short".into(), original[..len - 1].to_vec()),
            ("half".into(), original[..len / 2].to_vec()),
            ("one byte longer".into(), [&original[..], b"x"].concat()),
        ];
        for at in [
            0,
            1,
            len / 3,
            len / 2,
            len.saturating_sub(20),
            len - 5,
            len - 4,
            len - 1,
        ] {
            let mut m = original.to_vec();
            m[at] ^= 0x10;
            mutations.push((format!("bit flip at {at}"), m));
        }
        for (what, bytes) in mutations {
            store.put(&object.key, Bytes::from(bytes)).await.unwrap();
            let outcome = read_everything(&store, &expected, dir.path()).await;
            // Key files are plain JSON (the wrapped key inside is sealed): a flipped digit of
            // their creation time is harmless. Every other object is sealed or length-checked.
            if !object.key.starts_with("keys/") {
                assert!(outcome.is_err(), "{} ({what}) went unnoticed", object.key);
            }
            cases += 1;
        }
        store.put(&object.key, original).await.unwrap();
    }
    assert!(cases > 50, "{cases}");
    read_everything(&store, &expected, dir.path()).await.unwrap();
}
