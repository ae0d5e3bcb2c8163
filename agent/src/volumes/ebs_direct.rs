//! EBS snapshots into a volume repository through the EBS direct APIs, and back out to a
//! new EBS snapshot, with no volume attached and no full read.
//!
//! A copy reads the snapshot's blocks (`ListSnapshotBlocks`, or `ListChangedBlocks` against
//! the snapshot the volume's latest copy was made from) with `GetSnapshotBlock`, checks
//! each block's SHA-256, stages them in a sparse scratch file at their offsets, and backs
//! that file up with the read blocks as its changed ranges: the repository reads only
//! those, and takes every other block from the parent copy. Each copy records its origin
//! (`ebs:<snapshot id>`), and an incremental refuses to apply to any other parent, so a
//! block EBS did not list is never taken from the wrong copy.
//!
//! Scratch space: the blocks read (all written blocks for a first copy, the changed ones
//! after), as a sparse file of the volume's size.

use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, bail};
use arca_repo::format::{Snapshot, SnapshotKind};
use arca_repo::{Id, Repository, RestoreOptions, VolumeBackup, backup_volume, restore};
use aws_sdk_ebs::error::DisplayErrorContext;
use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::ChecksumAlgorithm;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The EBS direct APIs' block: every index is in units of 512 KiB.
pub const EBS_BLOCK: u64 = 512 * 1024;
/// Block reads and writes in flight (the APIs' per-snapshot request rate allows far more;
/// 16 keeps a copy's memory under 10 MiB of block buffers).
const IN_FLIGHT: usize = 16;
const GIB: u64 = 1 << 30;

/// What a copy read from EBS.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsRead {
    pub snapshot_id: String,
    /// The snapshot only the changes since were read, when the copy is incremental.
    pub incremental_from: Option<String>,
    pub volume_bytes: u64,
    pub blocks_read: u64,
    pub bytes_read: u64,
}

/// The `origin` a copy of EBS snapshot `id` records in the repository.
pub fn origin(snapshot_id: &str) -> String {
    format!("ebs:{snapshot_id}")
}

/// Copies EBS snapshot `snapshot_id` into `repo` as a snapshot of `volume`. With `parent`
/// (the EBS snapshot taken before it), only the changed blocks are read when the volume's
/// latest copy in the repository is of `parent`; otherwise every written block.
pub async fn backup(
    repo: &Repository,
    ebs: &aws_sdk_ebs::Client,
    volume: &str,
    snapshot_id: &str,
    parent: Option<&str>,
    scratch: &Path,
) -> anyhow::Result<(Id, Snapshot, EbsRead)> {
    let latest = repo
        .snapshots()
        .await?
        .into_iter()
        .rev()
        .find(|(_, s)| s.kind == SnapshotKind::Volume && s.name == volume);
    let since = parent.filter(|p| latest.as_ref().and_then(|(_, s)| s.origin.as_deref()) == Some(origin(p).as_str()));
    if let (Some(p), None) = (parent, since) {
        tracing::info!(
            volume,
            parent = p,
            "the volume's latest copy is not of the parent snapshot: a full copy"
        );
    }
    let file = tempfile::Builder::new()
        .prefix("arca-ebs-")
        .tempfile_in(scratch)
        .with_context(|| format!("a scratch file in {}", scratch.display()))?;
    let (read, ranges) = stage(ebs, snapshot_id, since, file.path()).await?;
    let mut job = VolumeBackup::new(volume, file.path());
    job.origin = Some(origin(snapshot_id));
    if let Some(since) = since {
        job.changed_ranges = Some(ranges);
        job.changes_since = Some(origin(since));
    }
    let (id, snap) = backup_volume(repo, job).await?;
    Ok((id, snap, read))
}

/// Reads the blocks to copy into a sparse file of the volume's size at `path`; what was
/// read and the byte ranges it covers (blocks EBS lists without data are zeros there).
async fn stage(
    ebs: &aws_sdk_ebs::Client,
    snapshot_id: &str,
    since: Option<&str>,
    path: &Path,
) -> anyhow::Result<(EbsRead, Vec<Range<u64>>)> {
    let (volume_gib, blocks) = match since {
        Some(first) => changed_blocks(ebs, first, snapshot_id).await?,
        None => written_blocks(ebs, snapshot_id).await?,
    };
    let volume_bytes = volume_gib * GIB;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.set_len(volume_bytes)
        .with_context(|| format!("sizing {} to {volume_bytes} bytes", path.display()))?;
    let mut read = EbsRead {
        snapshot_id: snapshot_id.to_owned(),
        incremental_from: since.map(str::to_owned),
        volume_bytes,
        ..EbsRead::default()
    };
    let mut ranges = Vec::with_capacity(blocks.len());
    let mut fetched = futures::stream::iter(blocks.into_iter().map(|(index, token)| async move {
        let data = match token {
            Some(token) => Some(get_block(ebs, snapshot_id, index, &token).await?),
            None => None,
        };
        anyhow::Ok((index, data))
    }))
    .buffer_unordered(IN_FLIGHT);
    while let Some((index, data)) = fetched.try_next().await? {
        let offset = u64::from(index) * EBS_BLOCK;
        if offset + EBS_BLOCK > volume_bytes {
            bail!("snapshot {snapshot_id}: block {index} lies beyond the volume's {volume_gib} GiB");
        }
        ranges.push(offset..offset + EBS_BLOCK);
        if let Some(data) = data {
            file.write_all_at(&data, offset)
                .with_context(|| format!("writing block {index} to {}", path.display()))?;
            read.blocks_read += 1;
            read.bytes_read += data.len() as u64;
        }
    }
    ranges.sort_by_key(|r| r.start);
    Ok((read, ranges))
}

/// Every block `snapshot_id` holds data for, with its token; and the volume's size in GiB.
async fn written_blocks(
    ebs: &aws_sdk_ebs::Client,
    snapshot_id: &str,
) -> anyhow::Result<(u64, Vec<(u32, Option<String>)>)> {
    let mut blocks = Vec::new();
    let mut next = None;
    loop {
        let page = ebs
            .list_snapshot_blocks()
            .snapshot_id(snapshot_id)
            .max_results(10_000)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListSnapshotBlocks {snapshot_id}: {}", DisplayErrorContext(e)))?;
        let volume_gib = gib(page.volume_size(), snapshot_id)?;
        for block in page.blocks() {
            blocks.push((
                index(block.block_index(), snapshot_id)?,
                block.block_token().map(str::to_owned),
            ));
        }
        next = page.next_token().map(str::to_owned);
        if next.is_none() {
            return Ok((volume_gib, blocks));
        }
    }
}

/// The blocks that differ between `first` and `second`, with `second`'s token (none where
/// `second` holds no data: the block is zeros now); and the volume's size in GiB.
async fn changed_blocks(
    ebs: &aws_sdk_ebs::Client,
    first: &str,
    second: &str,
) -> anyhow::Result<(u64, Vec<(u32, Option<String>)>)> {
    let mut blocks = Vec::new();
    let mut next = None;
    loop {
        let page = ebs
            .list_changed_blocks()
            .first_snapshot_id(first)
            .second_snapshot_id(second)
            .max_results(10_000)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListChangedBlocks {first}..{second}: {}", DisplayErrorContext(e)))?;
        let volume_gib = gib(page.volume_size(), second)?;
        for block in page.changed_blocks() {
            blocks.push((
                index(block.block_index(), second)?,
                block.second_block_token().map(str::to_owned),
            ));
        }
        next = page.next_token().map(str::to_owned);
        if next.is_none() {
            return Ok((volume_gib, blocks));
        }
    }
}

fn gib(size: Option<i64>, snapshot_id: &str) -> anyhow::Result<u64> {
    size.and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .with_context(|| format!("snapshot {snapshot_id}: EBS gave no volume size"))
}

fn index(index: Option<i32>, snapshot_id: &str) -> anyhow::Result<u32> {
    index
        .and_then(|i| u32::try_from(i).ok())
        .with_context(|| format!("snapshot {snapshot_id}: a block without a valid index"))
}

/// One block, its SHA-256 checked against the one EBS returns with it.
async fn get_block(ebs: &aws_sdk_ebs::Client, snapshot_id: &str, index: u32, token: &str) -> anyhow::Result<Vec<u8>> {
    let out = ebs
        .get_snapshot_block()
        .snapshot_id(snapshot_id)
        .block_index(i32::try_from(index)?)
        .block_token(token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GetSnapshotBlock {snapshot_id} #{index}: {}", DisplayErrorContext(e)))?;
    let checksum = out.checksum().map(str::to_owned);
    let data = out
        .block_data
        .collect()
        .await
        .with_context(|| format!("reading block {index} of {snapshot_id}"))?
        .into_bytes();
    if data.len() as u64 != EBS_BLOCK {
        bail!(
            "snapshot {snapshot_id}: block {index} is {} bytes, not {EBS_BLOCK}",
            data.len()
        );
    }
    if let Some(expected) = checksum
        && expected != sha256_b64(&data)
    {
        bail!("snapshot {snapshot_id}: block {index} does not match its SHA-256 checksum (damaged in transit)");
    }
    Ok(data.to_vec())
}

fn sha256_b64(data: &[u8]) -> String {
    B64.encode(Sha256::digest(data))
}

/// Writes the repository's snapshot `id` of a volume to a new EBS snapshot (its non-zero
/// blocks with `PutSnapshotBlock`), through a scratch file in `scratch`: for a restore in
/// another account or region, where a volume is then created from it. Returns the new
/// snapshot's id and how many blocks it holds.
pub async fn to_ebs_snapshot(
    repo: &Repository,
    ebs: &aws_sdk_ebs::Client,
    id: &Id,
    snapshot: &Snapshot,
    description: &str,
    scratch: &Path,
) -> anyhow::Result<(String, u64)> {
    let file = tempfile::Builder::new()
        .prefix("arca-ebs-")
        .tempfile_in(scratch)
        .with_context(|| format!("a scratch file in {}", scratch.display()))?;
    restore(repo, id, snapshot, file.path(), RestoreOptions::default()).await?;
    let volume_gib = snapshot.size.div_ceil(GIB).max(1);
    let started = ebs
        .start_snapshot()
        .volume_size(i64::try_from(volume_gib)?)
        .description(description)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("StartSnapshot: {}", DisplayErrorContext(e)))?;
    let new_id = started
        .snapshot_id()
        .context("StartSnapshot returned no snapshot id")?
        .to_owned();
    let blocks = snapshot.size.div_ceil(EBS_BLOCK);
    let source = file.as_file();
    let written = futures::stream::iter(0..blocks)
        .map(|index| {
            let new_id = new_id.clone();
            async move {
                let mut data = vec![0u8; EBS_BLOCK as usize];
                let offset = index * EBS_BLOCK;
                let len = usize::try_from((snapshot.size - offset).min(EBS_BLOCK))?;
                source
                    .read_exact_at(&mut data[..len], offset)
                    .with_context(|| format!("reading block {index} of the restored image"))?;
                if data.iter().all(|b| *b == 0) {
                    return anyhow::Ok(0u64);
                }
                ebs.put_snapshot_block()
                    .snapshot_id(&new_id)
                    .block_index(i32::try_from(index)?)
                    .checksum(sha256_b64(&data))
                    .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                    .data_length(i32::try_from(EBS_BLOCK)?)
                    .block_data(ByteStream::from(data))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("PutSnapshotBlock {new_id} #{index}: {}", DisplayErrorContext(e)))?;
                Ok(1)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_fold(0u64, |sum, n| async move { Ok(sum + n) })
        .await?;
    ebs.complete_snapshot()
        .snapshot_id(&new_id)
        .changed_blocks_count(i32::try_from(written)?)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("CompleteSnapshot {new_id}: {}", DisplayErrorContext(e)))?;
    Ok((new_id, written))
}
