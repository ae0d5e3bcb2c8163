//! Backups restore byte for byte; incrementals share blocks; forget + gc keep what remains.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::ops::Range;
use std::path::Path;

use arca_repo::{
    GcOptions, Repository, RestoreOptions, SnapshotKind, VolumeBackup, backup_stream, backup_volume, compare, gc,
    restore, verify,
};
use common::{local_repo, noise};
use proptest::prelude::*;

/// An image described by segments: (kind, length) with kind 0 zeros, 1 noise, 2 text.
fn build_image(segments: &[(u8, usize)], seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (kind, len)) in segments.iter().enumerate() {
        match kind {
            0 => out.extend(std::iter::repeat_n(0u8, *len)),
            1 => out.extend(noise(seed + i as u64, *len)),
            _ => {
                let line = format!("{{\"seg\":{i},\"msg\":\"log line for block maps\"}}\n");
                out.extend(line.bytes().cycle().take(*len));
            }
        }
    }
    out
}

async fn restore_bytes(repo: &Repository, id: &arca_repo::Id, dir: &Path) -> Vec<u8> {
    let (_, snap) = repo.find_snapshot(&id.to_hex(), None).await.unwrap();
    let target = dir.join(format!("restore-{}", id.short()));
    restore(repo, id, &snap, &target, RestoreOptions::default())
        .await
        .unwrap();
    std::fs::read(&target).unwrap()
}

fn apply(image: &mut Vec<u8>, writes: &[(usize, usize, u8)], grow: usize) {
    for (at, len, byte) in writes {
        if image.is_empty() {
            break;
        }
        let start = at % image.len();
        let end = (start + len).min(image.len());
        for (i, b) in image[start..end].iter_mut().enumerate() {
            *b = byte.wrapping_add(i as u8);
        }
    }
    image.extend(noise(99, grow));
}

fn segments() -> impl Strategy<Value = Vec<(u8, usize)>> {
    prop::collection::vec((0u8..3, 1usize..40_000), 0..8)
}

fn writes() -> impl Strategy<Value = Vec<(usize, usize, u8)>> {
    prop::collection::vec((any::<usize>(), 1usize..9000, any::<u8>()), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random images and random modifications: every snapshot restores byte for byte, and
    /// the incremental stores no more new blocks than the writes touched.
    #[test]
    fn backups_restore_identically_and_incrementals_share_blocks(
        segs in segments(), mods in writes(), grow in 0usize..10_000, seed in any::<u64>(),
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (_, repo) = local_repo(dir.path()).await;
            let source = dir.path().join("disk.img");
            let mut image = build_image(&segs, seed);
            std::fs::write(&source, &image).unwrap();
            let (first, snap1) = backup_volume(&repo, VolumeBackup::new("vol", &source)).await.unwrap();
            assert_eq!(snap1.size, image.len() as u64);
            let original = image.clone();

            apply(&mut image, &mods, grow);
            std::fs::write(&source, &image).unwrap();
            let (second, snap2) = backup_volume(&repo, VolumeBackup::new("vol", &source)).await.unwrap();
            assert_eq!(snap2.parent.as_deref(), Some(first.to_hex().as_str()));

            // Blocks the writes touched (plus the grown tail) bound what the incremental stores.
            let bs = 4096usize;
            let touched: usize = mods.iter().map(|(_, len, _)| len.div_ceil(bs) + 1).sum::<usize>() + grow.div_ceil(bs) + 1;
            assert!(snap2.stats.blocks_new as usize <= touched, "{} new blocks for {touched} touched", snap2.stats.blocks_new);

            assert_eq!(restore_bytes(&repo, &first, dir.path()).await, original);
            assert_eq!(restore_bytes(&repo, &second, dir.path()).await, image);
            let report = verify(&repo, true).await.unwrap();
            assert!(report.errors.is_empty(), "{:?}", report.errors);
        });
    }

    /// forget + gc never takes a block a remaining snapshot needs, and does reclaim space.
    #[test]
    fn forget_and_gc_keep_every_block_a_remaining_snapshot_needs(
        images in prop::collection::vec((segments(), any::<u64>()), 2..4), forget_mask in any::<u8>(),
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (_, repo) = local_repo(dir.path()).await;
            let source = dir.path().join("disk.img");
            let mut snaps = Vec::new();
            for (segs, seed) in &images {
                let image = build_image(segs, *seed);
                std::fs::write(&source, &image).unwrap();
                let (id, _) = backup_volume(&repo, VolumeBackup::new("vol", &source)).await.unwrap();
                snaps.push((id, image));
            }
            let mut kept = Vec::new();
            for (i, (id, image)) in snaps.into_iter().enumerate() {
                if forget_mask & (1 << i) != 0 { repo.forget(&id).await.unwrap(); } else { kept.push((id, image)); }
            }
            let options = GcOptions { grace: std::time::Duration::ZERO, ..GcOptions::default() };
            gc(&repo, &options).await.unwrap();
            for (id, image) in &kept {
                assert_eq!(&restore_bytes(&repo, id, dir.path()).await, image);
            }
            let report = verify(&repo, true).await.unwrap();
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            assert_eq!(report.unindexed_packs, 0);
            if kept.is_empty() {
                assert_eq!(report.blobs, 0, "everything was forgotten, gc must reclaim every blob");
            }
        });
    }
}

#[tokio::test]
async fn zero_blocks_cost_nothing_and_restore_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let (_, repo) = local_repo(dir.path()).await;
    let source = dir.path().join("zeros.img");
    std::fs::write(&source, vec![0u8; 1 << 20]).unwrap();
    let (id, snap) = backup_volume(&repo, VolumeBackup::new("z", &source)).await.unwrap();
    assert_eq!(snap.stats.blocks_zero, 256);
    assert_eq!(snap.stats.blocks_new, 0);
    assert_eq!(restore_bytes(&repo, &id, dir.path()).await, vec![0u8; 1 << 20]);
}

#[tokio::test]
async fn a_restored_target_compares_equal_and_a_changed_byte_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let (_, repo) = local_repo(dir.path()).await;
    let source = dir.path().join("mixed.img");
    let image = build_image(&[(1, 300_000), (0, 200_000), (2, 100_000), (1, 5)], 7);
    std::fs::write(&source, &image).unwrap();
    let (id, snap) = backup_volume(&repo, VolumeBackup::new("m", &source)).await.unwrap();
    let target = dir.path().join("restored.img");
    restore(&repo, &id, &snap, &target, RestoreOptions::default())
        .await
        .unwrap();
    let report = compare(&repo, &id, &snap, &target).await.unwrap();
    assert!(report.equal(), "{report:?}");
    assert_eq!(report.bytes_compared, image.len() as u64);

    // One byte in a data block, one in a zero run, and a target cut short.
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[1000] ^= 0xff;
    bytes[350_000] = 1;
    std::fs::write(&target, &bytes).unwrap();
    let report = compare(&repo, &id, &snap, &target).await.unwrap();
    assert!(!report.equal());
    assert_eq!(report.differences.len(), 2, "{report:?}");
    assert!(report.differences[0].0 <= 1000 && 1000 < report.differences[0].0 + report.differences[0].1);
    assert!(report.differences[1].0 <= 350_000 && 350_000 < report.differences[1].0 + report.differences[1].1);
    std::fs::write(&target, &image[..image.len() - 3]).unwrap();
    let report = compare(&repo, &id, &snap, &target).await.unwrap();
    assert_eq!(report.differences.len(), 1, "{report:?}");
    assert_eq!(report.differences[0].0 + report.differences[0].1, image.len() as u64);
}

#[tokio::test]
async fn data_is_compressed_and_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (_, repo) = local_repo(dir.path()).await;
    let source = dir.path().join("text.img");
    let text: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("plaintext-marker line {i}\n").into_bytes())
        .collect();
    std::fs::write(&source, &text).unwrap();
    let (_, snap) = backup_volume(&repo, VolumeBackup::new("t", &source)).await.unwrap();
    assert!(snap.stats.bytes_stored < snap.stats.bytes_new / 2, "{:?}", snap.stats);
    let mut stored = Vec::new();
    for entry in walk(&dir.path().join("repo")) {
        stored.extend(std::fs::read(entry).unwrap());
    }
    assert!(
        !stored.windows(17).any(|w| w == b"plaintext-marker "),
        "plaintext visible in the repository"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

#[tokio::test]
async fn changed_ranges_skip_unchanged_blocks_and_still_restore_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (_, repo) = local_repo(dir.path()).await;
    let source = dir.path().join("disk.img");
    let mut image = build_image(&[(1, 100_000), (0, 50_000), (2, 60_000)], 5);
    std::fs::write(&source, &image).unwrap();
    backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    let changes: Vec<Range<u64>> = vec![10_000..10_100, 120_000..130_000];
    for r in &changes {
        for b in &mut image[r.start as usize..r.end as usize] {
            *b = b.wrapping_add(1);
        }
    }
    std::fs::write(&source, &image).unwrap();
    let mut job = VolumeBackup::new("v", &source);
    job.changed_ranges = Some(changes);
    let (id, snap) = backup_volume(&repo, job).await.unwrap();
    assert!(snap.stats.blocks_unchanged_skipped > 40, "{:?}", snap.stats);
    assert!(snap.stats.bytes_read < 20 * 4096, "{:?}", snap.stats);
    assert_eq!(restore_bytes(&repo, &id, dir.path()).await, image);
}

#[tokio::test]
async fn changed_ranges_since_an_origin_apply_only_to_the_copy_of_that_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (_, repo) = local_repo(dir.path()).await;
    let source = dir.path().join("disk.img");
    let mut image = build_image(&[(1, 200_000)], 9);
    std::fs::write(&source, &image).unwrap();
    let mut first = VolumeBackup::new("v", &source);
    first.origin = Some("ebs:snap-1".into());
    let (_, snap) = backup_volume(&repo, first).await.unwrap();
    assert_eq!(snap.origin.as_deref(), Some("ebs:snap-1"));
    image[5] ^= 0xff;
    std::fs::write(&source, &image).unwrap();
    let since = |origin: &str| {
        let mut job = VolumeBackup::new("v", &source);
        job.changed_ranges = Some(vec![Range { start: 0, end: 4096 }]);
        job.changes_since = Some(origin.into());
        job.origin = Some("ebs:snap-2".into());
        job
    };
    // Relative to a copy that is not the latest: refused, nothing recorded.
    let err = backup_volume(&repo, since("ebs:snap-0")).await.unwrap_err().to_string();
    assert!(err.contains("ebs:snap-0") && err.contains("ebs:snap-1"), "{err}");
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
    let (id, snap) = backup_volume(&repo, since("ebs:snap-1")).await.unwrap();
    assert!(snap.stats.bytes_read <= 64 * 1024, "{:?}", snap.stats);
    assert_eq!(restore_bytes(&repo, &id, dir.path()).await, image);
}

#[tokio::test]
async fn streams_use_content_defined_chunks_that_survive_an_insertion() {
    let dir = tempfile::tempdir().unwrap();
    let (_, repo) = local_repo(dir.path()).await;
    let data = noise(3, 3 << 20);
    let (first, snap) = backup_stream(&repo, "archive", std::io::Cursor::new(data.clone()))
        .await
        .unwrap();
    assert_eq!(snap.kind, SnapshotKind::Stream);
    let mut shifted = b"inserted at the front".to_vec();
    shifted.extend_from_slice(&data);
    let (second, snap2) = backup_stream(&repo, "archive", std::io::Cursor::new(shifted.clone()))
        .await
        .unwrap();
    // Only the chunk around the insertion is new (plus perhaps its neighbour).
    assert!(snap2.stats.blocks_new <= 2, "{:?}", snap2.stats);
    assert_eq!(restore_bytes(&repo, &first, dir.path()).await, data);
    assert_eq!(restore_bytes(&repo, &second, dir.path()).await, shifted);
}
