//! Backups: volumes cut into fixed blocks by a parallel pipeline, and streams cut by
//! FastCDC (format doc, sections 3, 6 and 7).
//!
//! Volume pipeline, all stages bounded so memory does not grow with the volume:
//! reader thread (1 MiB batches) -> hash/compress/seal workers (one per core) -> packer
//! (async, at most [`crate::pack::UPLOADS_IN_FLIGHT`] pack uploads in flight besides the
//! pack being built); block results -> collector thread, which turns each completed segment
//! of 16,384 blocks into a map blob. The bytes in flight are bounded by those stages, not by
//! the volume's size: docs/volumes.md, "Throughput to S3", gives the figure.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use tokio::sync::mpsc;

use crate::error::{RepoError, Result};
use crate::format::{BackupStats, KIND_DATA, KIND_MAP, MapEntry, Snapshot, SnapshotKind, encode_map, sealed_units};
use crate::id::{Id, IdSet};
use crate::pack::{Packer, SealedBlob, compressible, read_sealed, seal_blob, seal_frame, seal_uncompressed};
use crate::repo::{Index, Repository, key_for, now_ms};
use arca_core::model::layout::RepositoryLayout;

/// Longest time allowed between the final check against gc and the manifest write. gc's
/// grace period must be longer (the CLI enforces at least an hour).
const FINAL_CHECK_LIMIT: Duration = Duration::from_secs(600);
/// Bytes read at a time: at least this, and a whole frame (`Config::frame_bytes`), since a
/// frame is made of the new blocks of one read.
const BATCH_BYTES: usize = 1 << 20;

pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// What to back up.
pub struct VolumeBackup {
    /// The volume's name: snapshots of the same name form its history.
    pub name: String,
    pub source: PathBuf,
    /// Byte ranges that changed since the previous snapshot of `name` (from CSI
    /// GetMetadataDelta or EBS ListChangedBlocks). Blocks outside them are not read.
    pub changed_ranges: Option<Vec<Range<u64>>>,
    /// With `changed_ranges`: the `origin` of the snapshot they are relative to. The backup
    /// fails, rather than record unread blocks as unchanged, when the volume's latest
    /// snapshot is not that one (another backup came between).
    pub changes_since: Option<String>,
    /// Recorded as the snapshot's `origin` (see [`Snapshot::origin`]).
    pub origin: Option<String>,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Pack uploads in flight; 0 means [`crate::pack::UPLOADS_IN_FLIGHT`].
    pub uploads: usize,
    pub progress: Option<Progress>,
}

impl VolumeBackup {
    pub fn new(name: impl Into<String>, source: impl Into<PathBuf>) -> Self {
        VolumeBackup {
            name: name.into(),
            source: source.into(),
            changed_ranges: None,
            changes_since: None,
            origin: None,
            threads: 0,
            uploads: 0,
            progress: None,
        }
    }
}

fn source_err(path: &Path, e: std::io::Error) -> RepoError {
    RepoError::io(format!("reading source {}", path.display()), e)
}

/// Size of a regular file or a block device.
fn source_size(file: &mut File, path: &Path) -> Result<u64> {
    let meta = file.metadata().map_err(|e| source_err(path, e))?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    if meta.is_dir() {
        return Err(RepoError::Invalid(format!(
            "source {} is a directory, not a volume image",
            path.display()
        )));
    }
    file.seek(SeekFrom::End(0)).map_err(|e| source_err(path, e))
}

fn is_zero(block: &[u8]) -> bool {
    // OR-folding fixed chunks vectorises; an early-exit byte loop would not.
    block.chunks(4096).all(|c| c.iter().fold(0u8, |acc, b| acc | b) == 0)
}

struct Batch {
    first_block: u64,
    data: Vec<u8>,
}

/// Per block: `None` is all zeros, `Some(id)` a data blob.
struct Results {
    first_block: u64,
    blocks: Vec<Option<Id>>,
}

struct Shared {
    repo: Repository,
    index: Arc<Index>,
    pending: Mutex<IdSet>,
    referenced: Vec<AtomicBool>,
    failure: Mutex<Option<RepoError>>,
    stop: AtomicBool,
    bytes_read: AtomicU64,
    blocks_zero: AtomicU64,
    blocks_new: AtomicU64,
    blocks_skipped: AtomicU64,
    bytes_new: AtomicU64,
}

impl Shared {
    fn fail(&self, e: RepoError) {
        if let Ok(mut slot) = self.failure.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Resolves a blob: reuses a stored copy, or claims it for sealing. Returns true when the
    /// caller must seal and send it.
    fn claim(&self, id: &Id) -> bool {
        if let Some(p) = self.index.reusable(id) {
            self.referenced[p as usize].store(true, Ordering::Relaxed);
            return false;
        }
        self.pending.lock().map(|mut set| set.insert(*id)).unwrap_or(false)
    }
}

/// Backs up a volume. Returns the new snapshot's id; the snapshot is visible when this returns.
pub async fn backup_volume(repo: &Repository, job: VolumeBackup) -> Result<(Id, Snapshot)> {
    let started = Instant::now();
    let mut file = File::open(&job.source).map_err(|e| source_err(&job.source, e))?;
    let size = source_size(&mut file, &job.source)?;
    let block_size = u64::from(repo.config().block_size);
    let n_blocks = size.div_ceil(block_size);

    let index = repo.load_index(true).await?;
    adopt(repo, &index).await?;
    let parent = repo.snapshots().await?.into_iter().rev().find(|(_, s)| {
        s.kind == SnapshotKind::Volume && s.name == job.name && s.block_size == repo.config().block_size
    });
    if let (Some(_), Some(since)) = (&job.changed_ranges, &job.changes_since) {
        let found = parent.as_ref().and_then(|(_, s)| s.origin.as_deref());
        if found != Some(since.as_str()) {
            return Err(RepoError::Concurrent(format!(
                "the changed ranges are relative to {since}, but the latest snapshot of volume {} is {}: back it up \
                 again in full",
                job.name,
                found.unwrap_or("not a copy of it")
            )));
        }
    }
    let index = Arc::new(index);
    let shared = Arc::new(Shared {
        repo: repo.clone(),
        referenced: (0..index.packs.len()).map(|_| AtomicBool::new(false)).collect(),
        index,
        pending: Mutex::new(IdSet::default()),
        failure: Mutex::new(None),
        stop: AtomicBool::new(false),
        bytes_read: AtomicU64::new(0),
        blocks_zero: AtomicU64::new(0),
        blocks_new: AtomicU64::new(0),
        blocks_skipped: AtomicU64::new(0),
        bytes_new: AtomicU64::new(0),
    });
    let threads = if job.threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        job.threads
    };

    let (work_tx, work_rx) = bounded::<Batch>(threads * 2);
    // Read buffers go back to the reader: fresh 1 MiB allocations would page-fault in
    // every time (measured: most of a first backup's system time).
    let (pool_tx, pool_rx) = bounded::<Vec<u8>>(threads * 3 + 2);
    let (res_tx, res_rx) = bounded::<Results>(threads * 4);
    // Sealed blobs travel to the packer a read batch at a time: one message per 64 KiB
    // blob cost a wake-up of the packer's thread each (34k context switches for 2 GiB).
    let (blob_tx, mut blob_rx) = mpsc::channel::<Vec<SealedBlob>>(threads * 2);
    let runtime = tokio::runtime::Handle::current();

    let prev_maps = match (&job.changed_ranges, &parent) {
        (Some(_), Some((_, snap))) => Some(snap.map_ids().map_err(|e| RepoError::corrupt("parent snapshot", e))?),
        _ => None,
    };
    let reader = {
        let shared = shared.clone();
        let res_tx = res_tx.clone();
        let path = job.source.clone();
        let ranges = job.changed_ranges.clone().map(normalize);
        let prev_size = parent.as_ref().map_or(0, |(_, s)| s.size);
        std::thread::Builder::new()
            .name("arca-read".into())
            .spawn(move || {
                let plan = ReadPlan {
                    file,
                    path,
                    size,
                    block_size,
                    ranges,
                    prev_maps,
                    prev_size,
                    runtime,
                };
                if let Err(e) = plan.run(&shared, &work_tx, &res_tx, &pool_rx) {
                    shared.fail(e);
                }
            })
            .map_err(|e| RepoError::io("starting reader thread", e))?
    };
    let mut workers = Vec::new();
    for i in 0..threads {
        let shared = shared.clone();
        let work_rx = work_rx.clone();
        let res_tx = res_tx.clone();
        let blob_tx = blob_tx.clone();
        let pool_tx = pool_tx.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("arca-hash-{i}"))
                .spawn(move || {
                    if let Err(e) = hash_worker(&shared, block_size as usize, &work_rx, &res_tx, &blob_tx, &pool_tx) {
                        shared.fail(e);
                    }
                })
                .map_err(|e| RepoError::io("starting worker thread", e))?,
        );
    }
    drop((work_rx, res_tx, pool_tx));
    let collector = {
        let shared = shared.clone();
        let blob_tx = blob_tx.clone();
        let segment = u64::from(repo.config().map_segment_blocks);
        let progress = job.progress.clone();
        std::thread::Builder::new()
            .name("arca-collect".into())
            .spawn(move || {
                let c = Collector {
                    size,
                    block_size,
                    n_blocks,
                    segment,
                    progress,
                };
                match c.run(&shared, &res_rx, &blob_tx) {
                    Ok(maps) => maps,
                    Err(e) => {
                        shared.fail(e);
                        Vec::new()
                    }
                }
            })
            .map_err(|e| RepoError::io("starting collector thread", e))?
    };
    drop(blob_tx);

    let mut packer = match job.uploads {
        0 => Packer::new(repo),
        n => Packer::new(repo).with_uploads(n),
    };
    let packed: Result<()> = async {
        while let Some(blobs) = blob_rx.recv().await {
            for blob in blobs {
                packer.add(blob).await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = packed {
        shared.fail(e);
        drop(blob_rx); // unblocks every sender: the threads see the failure and stop
    }
    let joined = tokio::task::spawn_blocking(move || {
        let reader_ok = reader.join().is_ok();
        let workers_ok = workers.into_iter().all(|w| w.join().is_ok());
        (reader_ok && workers_ok, collector.join().ok())
    })
    .await
    .map_err(|e| RepoError::Internal(format!("joining pipeline: {e}")))?;
    if let Some(e) = shared.failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    let (threads_ok, maps) = joined;
    let maps = match maps {
        Some(maps)
            if threads_ok && maps.len() as u64 == n_blocks.div_ceil(u64::from(repo.config().map_segment_blocks)) =>
        {
            maps
        }
        _ => return Err(RepoError::Internal("backup pipeline stopped early".into())),
    };
    packer.finish().await?;

    let referenced: HashSet<Id> = shared
        .referenced
        .iter()
        .enumerate()
        .filter(|(_, r)| r.load(Ordering::Relaxed))
        .map(|(p, _)| shared.index.packs[p].id)
        .chain(packer.written.iter().copied())
        .collect();
    final_check(repo, &shared.index, &packer, referenced).await?;

    let stats = BackupStats {
        bytes_read: shared.bytes_read.load(Ordering::Relaxed),
        blocks_total: n_blocks,
        blocks_zero: shared.blocks_zero.load(Ordering::Relaxed),
        blocks_new: shared.blocks_new.load(Ordering::Relaxed),
        blocks_unchanged_skipped: shared.blocks_skipped.load(Ordering::Relaxed),
        bytes_new: shared.bytes_new.load(Ordering::Relaxed),
        bytes_stored: packer.bytes_stored,
        packs_written: packer.written.len() as u64,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let snapshot = Snapshot {
        version: repo.config().version,
        kind: SnapshotKind::Volume,
        name: job.name,
        created_ms: now_ms(),
        size,
        block_size: repo.config().block_size,
        map: maps.iter().map(Id::to_hex).collect(),
        parent: parent.map(|(id, _)| id.to_hex()),
        hostname: std::env::var("HOSTNAME").ok(),
        stats,
        origin: job.origin,
    };
    let id = repo.write_snapshot(&snapshot).await?;
    Ok((id, snapshot))
}

/// Indexes packs a killed run uploaded but never indexed, so this run reuses them and gc
/// sees them as indexed from now on.
async fn adopt(repo: &Repository, index: &Index) -> Result<()> {
    let adopted: Vec<_> = index
        .packs
        .iter()
        .filter(|p| p.source == crate::repo::PackSource::Adopted)
        .map(|p| (p.id, p.entries.clone()))
        .collect();
    // A few packs per index file, as the packer writes them: readers refuse an index file
    // of more blobs than `format::MAX_INDEX_BLOBS`.
    for packs in adopted.chunks(crate::pack::INDEX_EVERY) {
        repo.write_index(packs.to_vec()).await?;
    }
    Ok(())
}

/// The backup's side of the gc protocol (format doc, section 8): just before the manifest
/// is written, every pack the snapshot references must exist, and blobs in packs that a gc
/// marker condemned are copied into new packs.
async fn final_check(repo: &Repository, index: &Index, own: &Packer, referenced: HashSet<Id>) -> Result<()> {
    let check_started = Instant::now();
    let existing = repo.list_packs().await?;
    let condemned: HashSet<Id> = repo
        .gc_markers()
        .await?
        .iter()
        .flat_map(|(_, m)| m.pack_ids().unwrap_or_default())
        .collect();
    let mut copier = Packer::new(repo);
    for pack in &referenced {
        if !existing.contains_key(pack) {
            return Err(RepoError::Concurrent(format!(
                "pack {pack} this backup relies on was deleted by a concurrent gc; run the backup again"
            )));
        }
        if !condemned.contains(pack) {
            continue;
        }
        let entries = match index.pack_position(pack) {
            Some(p) => index.packs[p as usize].entries.clone(),
            // One of this backup's own packs (condemned only if the backup outlived gc's
            // grace period): its header lists its blobs.
            None if own.written.contains(pack) => {
                let size = existing.get(pack).copied().unwrap_or_default();
                repo.read_pack_header(pack, size).await?.blobs
            }
            None => Vec::new(),
        };
        let key = key_for(RepositoryLayout::pack, pack)?;
        for unit in sealed_units(&entries) {
            copier
                .add(read_sealed(repo, &key, unit, "copying from condemned").await?)
                .await?;
        }
    }
    copier.finish().await?;
    if check_started.elapsed() > FINAL_CHECK_LIMIT {
        return Err(RepoError::Concurrent(
            "the final check against gc took too long; run the backup again".into(),
        ));
    }
    Ok(())
}

/// Sorted, merged, non-empty ranges.
fn normalize(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

struct ReadPlan {
    file: File,
    path: PathBuf,
    size: u64,
    block_size: u64,
    ranges: Option<Vec<Range<u64>>>,
    prev_maps: Option<Vec<Id>>,
    prev_size: u64,
    runtime: tokio::runtime::Handle,
}

impl ReadPlan {
    fn run(
        self,
        shared: &Shared,
        work_tx: &Sender<Batch>,
        res_tx: &Sender<Results>,
        pool: &Receiver<Vec<u8>>,
    ) -> Result<()> {
        let bs = self.block_size;
        let n_blocks = self.size.div_ceil(bs);
        let frame_bytes = u64::from(shared.repo.config().frame_bytes);
        let batch_blocks = (BATCH_BYTES as u64).max(frame_bytes).div_ceil(bs).max(1);
        let segment = u64::from(shared.repo.config().map_segment_blocks);
        let mut prev = PrevMap {
            maps: self.prev_maps.clone(),
            segment,
            loaded: None,
            block_size: bs,
        };
        let mut range_pos = 0usize;
        let mut b = 0u64;
        while b < n_blocks {
            if shared.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Unchanged blocks (outside every changed range, inside the parent, and reusable)
            // are taken from the parent's map without reading them.
            let mut skipped = Vec::new();
            while b < n_blocks && skipped.len() < batch_blocks as usize {
                match self.unchanged(b, &mut range_pos, &mut prev, shared)? {
                    Some(known) => skipped.push(known),
                    None => break,
                }
                b += 1;
            }
            if !skipped.is_empty() {
                shared.blocks_skipped.fetch_add(skipped.len() as u64, Ordering::Relaxed);
                let first_block = b - skipped.len() as u64;
                if res_tx
                    .send(Results {
                        first_block,
                        blocks: skipped,
                    })
                    .is_err()
                {
                    return Ok(());
                }
                continue;
            }
            // Read a batch of blocks that must be read.
            let first = b;
            let mut end = b + 1;
            while end < n_blocks && end - first < batch_blocks {
                let mut probe = range_pos;
                if self.unchanged(end, &mut probe, &mut prev, shared)?.is_some() {
                    break;
                }
                end += 1;
            }
            let offset = first * bs;
            let len = (end * bs).min(self.size) - offset;
            let mut data = pool.try_recv().unwrap_or_default();
            data.resize(len as usize, 0);
            self.file
                .read_exact_at(&mut data, offset)
                .map_err(|e| source_err(&self.path, e))?;
            shared.bytes_read.fetch_add(len, Ordering::Relaxed);
            if work_tx
                .send(Batch {
                    first_block: first,
                    data,
                })
                .is_err()
            {
                return Ok(());
            }
            b = end;
        }
        Ok(())
    }

    /// `Some(result)` when block `b` need not be read.
    fn unchanged(
        &self,
        b: u64,
        range_pos: &mut usize,
        prev: &mut PrevMap,
        shared: &Shared,
    ) -> Result<Option<Option<Id>>> {
        let Some(ranges) = &self.ranges else { return Ok(None) };
        let bs = self.block_size;
        let (start, end) = (b * bs, ((b + 1) * bs).min(self.size));
        // Blocks the parent did not fully cover (a grown volume, its old last block) are read.
        if end > self.prev_size || (end - start) != bs.min(self.prev_size - start) {
            return Ok(None);
        }
        while *range_pos < ranges.len() && ranges[*range_pos].end <= start {
            *range_pos += 1;
        }
        if ranges.get(*range_pos).is_some_and(|r| r.start < end) {
            return Ok(None);
        }
        match prev.block(b, shared, &self.runtime)? {
            Some(None) => Ok(Some(None)),
            Some(Some(id)) => match shared.index.reusable(&id) {
                Some(p) => {
                    shared.referenced[p as usize].store(true, Ordering::Relaxed);
                    Ok(Some(Some(id)))
                }
                None => Ok(None),
            },
            None => Ok(None),
        }
    }
}

/// The parent's block map, one segment in memory at a time.
struct PrevMap {
    maps: Option<Vec<Id>>,
    segment: u64,
    loaded: Option<(u64, Option<Vec<Option<Id>>>)>,
    block_size: u64,
}

impl PrevMap {
    /// `None`: unknown (no parent map, or not block-aligned): the block must be read.
    fn block(&mut self, b: u64, shared: &Shared, runtime: &tokio::runtime::Handle) -> Result<Option<Option<Id>>> {
        let Some(maps) = &self.maps else { return Ok(None) };
        let seg = b / self.segment;
        if self.loaded.as_ref().is_none_or(|(s, _)| *s != seg) {
            let blocks = match maps.get(seg as usize) {
                Some(map_id) => {
                    let entries = runtime.block_on(shared.repo.read_map(&shared.index, map_id))?;
                    expand(&entries, self.block_size)
                }
                None => None,
            };
            self.loaded = Some((seg, blocks));
        }
        let (_, blocks) = self
            .loaded
            .as_ref()
            .ok_or_else(|| RepoError::Internal("parent map".into()))?;
        Ok(blocks
            .as_ref()
            .and_then(|v| v.get((b % self.segment) as usize).copied()))
    }
}

/// A volume map segment as one entry per block, if it is block-aligned.
fn expand(entries: &[MapEntry], bs: u64) -> Option<Vec<Option<Id>>> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            MapEntry::Zero(len) => {
                let n = len.div_ceil(bs);
                out.extend(std::iter::repeat_n(None, n as usize));
            }
            MapEntry::Data { id, .. } => out.push(Some(*id)),
        }
    }
    Some(out)
}

fn hash_worker(
    shared: &Shared,
    block_size: usize,
    work_rx: &Receiver<Batch>,
    res_tx: &Sender<Results>,
    blob_tx: &mpsc::Sender<Vec<SealedBlob>>,
    pool: &Sender<Vec<u8>>,
) -> Result<()> {
    let keys = shared.repo.keys();
    let mut compressor = zstd::bulk::Compressor::new(shared.repo.config().zstd_level)
        .map_err(|e| RepoError::Internal(format!("zstd: {e}")))?;
    let frame_bytes = shared.repo.config().frame_bytes as usize;
    let mut scratch = Vec::new();
    let mut frame_plain = Vec::new();
    for batch in work_rx {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut blocks = Vec::with_capacity(batch.data.len().div_ceil(block_size));
        let mut sealed_blobs = Vec::new();
        // Version 3: the batch's new compressible blocks, compressed together as frames of
        // at most `frame_bytes`; incompressible ones (the probe) are stored alone and raw.
        let mut frame: Vec<(Id, Range<usize>)> = Vec::new();
        let mut frame_len = 0usize;
        for (i, block) in batch.data.chunks(block_size).enumerate() {
            if is_zero(block) {
                shared.blocks_zero.fetch_add(1, Ordering::Relaxed);
                blocks.push(None);
                continue;
            }
            let id = keys.blob_id(block);
            if shared.claim(&id) {
                if frame_bytes == 0 {
                    sealed_blobs.push(seal_blob(keys, &mut compressor, &mut scratch, KIND_DATA, id, block)?);
                } else if compressible(block) {
                    if frame_len + block.len() > frame_bytes && !frame.is_empty() {
                        sealed_blobs.push(seal_frame(
                            keys,
                            &mut compressor,
                            &mut scratch,
                            &mut frame_plain,
                            &batch.data,
                            &frame,
                        )?);
                        frame.clear();
                        frame_len = 0;
                    }
                    let at = i * block_size;
                    frame.push((id, at..at + block.len()));
                    frame_len += block.len();
                } else {
                    sealed_blobs.push(seal_uncompressed(keys, KIND_DATA, id, block)?);
                }
                shared.blocks_new.fetch_add(1, Ordering::Relaxed);
                shared.bytes_new.fetch_add(block.len() as u64, Ordering::Relaxed);
            }
            blocks.push(Some(id));
        }
        if !frame.is_empty() {
            sealed_blobs.push(seal_frame(
                keys,
                &mut compressor,
                &mut scratch,
                &mut frame_plain,
                &batch.data,
                &frame,
            )?);
        }
        let _ = pool.try_send(batch.data); // a full pool just frees the buffer
        // Blobs before the results that name them: the packer must hold every blob a
        // finished map segment refers to.
        if !sealed_blobs.is_empty() && blob_tx.blocking_send(sealed_blobs).is_err() {
            return Ok(());
        }
        if res_tx
            .send(Results {
                first_block: batch.first_block,
                blocks,
            })
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

struct Collector {
    size: u64,
    block_size: u64,
    n_blocks: u64,
    segment: u64,
    progress: Option<Progress>,
}

impl Collector {
    fn run(
        self,
        shared: &Shared,
        res_rx: &Receiver<Results>,
        blob_tx: &mpsc::Sender<Vec<SealedBlob>>,
    ) -> Result<Vec<Id>> {
        let keys = shared.repo.keys();
        let mut compressor = zstd::bulk::Compressor::new(3).map_err(|e| RepoError::Internal(format!("zstd: {e}")))?;
        let mut scratch = Vec::new();
        let mut open: BTreeMap<u64, (Vec<Option<Id>>, u64)> = BTreeMap::new();
        let mut maps: BTreeMap<u64, Id> = BTreeMap::new();
        let mut done_blocks = 0u64;
        for results in res_rx {
            for (i, r) in results.blocks.into_iter().enumerate() {
                let b = results.first_block + i as u64;
                let seg = b / self.segment;
                let seg_len = self.segment.min(self.n_blocks - seg * self.segment);
                let (blocks, filled) = open.entry(seg).or_insert_with(|| (vec![None; seg_len as usize], 0));
                blocks[(b % self.segment) as usize] = r;
                *filled += 1;
                if *filled == seg_len {
                    let (blocks, _) = open.remove(&seg).unwrap_or_default();
                    let entries = self.segment_entries(seg, &blocks);
                    let plain = encode_map(&entries);
                    let id = keys.blob_id(&plain);
                    if shared.claim(&id) {
                        let sealed = seal_blob(keys, &mut compressor, &mut scratch, KIND_MAP, id, &plain)?;
                        if blob_tx.blocking_send(vec![sealed]).is_err() {
                            return Ok(Vec::new());
                        }
                    }
                    maps.insert(seg, id);
                }
            }
            done_blocks = done_blocks.max(results.first_block);
            if let Some(progress) = &self.progress {
                progress((done_blocks * self.block_size).min(self.size), self.size);
            }
        }
        Ok(maps.into_values().collect())
    }

    fn segment_entries(&self, seg: u64, blocks: &[Option<Id>]) -> Vec<MapEntry> {
        let mut entries: Vec<MapEntry> = Vec::new();
        for (i, r) in blocks.iter().enumerate() {
            let b = seg * self.segment + i as u64;
            let len = self.block_size.min(self.size - b * self.block_size);
            match (r, entries.last_mut()) {
                (None, Some(MapEntry::Zero(run))) => *run += len,
                (None, _) => entries.push(MapEntry::Zero(len)),
                (Some(id), _) => entries.push(MapEntry::Data {
                    len: len as u32,
                    id: *id,
                }),
            }
        }
        entries
    }
}

/// Backs up a byte stream (a resource archive, a dump) with content-defined chunks.
pub async fn backup_stream<R: Read + Send + 'static>(
    repo: &Repository,
    name: &str,
    source: R,
) -> Result<(Id, Snapshot)> {
    let started = Instant::now();
    let index = Arc::new(repo.load_index(true).await?);
    adopt(repo, &index).await?;
    let (blob_tx, mut blob_rx) = mpsc::channel::<SealedBlob>(16);
    let chunker = {
        let repo = repo.clone();
        let index = index.clone();
        std::thread::Builder::new()
            .name("arca-cdc".into())
            .spawn(move || chunk_stream(&repo, &index, source, &blob_tx))
            .map_err(|e| RepoError::io("starting chunker thread", e))?
    };
    let mut packer = Packer::new(repo);
    let packed: Result<()> = async {
        while let Some(blob) = blob_rx.recv().await {
            packer.add(blob).await?;
        }
        Ok(())
    }
    .await;
    drop(blob_rx);
    let chunked = tokio::task::spawn_blocking(move || chunker.join())
        .await
        .map_err(|e| RepoError::Internal(format!("joining chunker: {e}")))?
        .map_err(|_| RepoError::Internal("chunker thread panicked".into()))?;
    packed?;
    let (maps, size, mut stats, referenced) = chunked?;
    packer.finish().await?;
    let referenced: HashSet<Id> = referenced
        .into_iter()
        .map(|p| index.packs[p as usize].id)
        .chain(packer.written.iter().copied())
        .collect();
    final_check(repo, &index, &packer, referenced).await?;
    stats.bytes_stored = packer.bytes_stored;
    stats.packs_written = packer.written.len() as u64;
    stats.duration_ms = started.elapsed().as_millis() as u64;
    let snapshot = Snapshot {
        version: repo.config().version,
        kind: SnapshotKind::Stream,
        name: name.into(),
        created_ms: now_ms(),
        size,
        block_size: 0,
        map: maps.iter().map(Id::to_hex).collect(),
        parent: None,
        hostname: std::env::var("HOSTNAME").ok(),
        stats,
        origin: None,
    };
    let id = repo.write_snapshot(&snapshot).await?;
    Ok((id, snapshot))
}

type Chunked = (Vec<Id>, u64, BackupStats, HashSet<u32>);

fn chunk_stream<R: Read>(
    repo: &Repository,
    index: &Index,
    source: R,
    blob_tx: &mpsc::Sender<SealedBlob>,
) -> Result<Chunked> {
    let keys = repo.keys();
    let cdc = repo.config().cdc;
    let segment = repo.config().map_segment_blocks as usize;
    let mut compressor =
        zstd::bulk::Compressor::new(repo.config().zstd_level).map_err(|e| RepoError::Internal(format!("zstd: {e}")))?;
    let mut scratch = Vec::new();
    let mut pending = IdSet::default();
    let mut referenced = HashSet::new();
    let mut stats = BackupStats::default();
    let mut maps = Vec::new();
    let mut entries = Vec::new();
    let mut size = 0u64;
    let mut store = |kind: u8, plain: &[u8], stats: &mut BackupStats| -> Result<Id> {
        let id = keys.blob_id(plain);
        if let Some(p) = index.reusable(&id) {
            referenced.insert(p);
        } else if pending.insert(id) {
            let sealed = seal_blob(keys, &mut compressor, &mut scratch, kind, id, plain)?;
            if kind == KIND_DATA {
                stats.blocks_new += 1;
                stats.bytes_new += plain.len() as u64;
            }
            blob_tx
                .blocking_send(sealed)
                .map_err(|_| RepoError::Internal("packer stopped".into()))?;
        }
        Ok(id)
    };
    for chunk in fastcdc::v2020::StreamCDC::new(source, cdc.min, cdc.avg, cdc.max) {
        let chunk = chunk.map_err(|e| RepoError::io("reading stream", std::io::Error::other(e.to_string())))?;
        size += chunk.length as u64;
        stats.bytes_read += chunk.length as u64;
        stats.blocks_total += 1;
        let id = store(KIND_DATA, &chunk.data, &mut stats)?;
        entries.push(MapEntry::Data {
            len: chunk.length as u32,
            id,
        });
        if entries.len() == segment {
            maps.push(store(KIND_MAP, &encode_map(&entries), &mut stats)?);
            entries.clear();
        }
    }
    if !entries.is_empty() || maps.is_empty() {
        maps.push(store(KIND_MAP, &encode_map(&entries), &mut stats)?);
    }
    Ok((maps, size, stats, referenced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_sorted_and_merged() {
        assert_eq!(normalize(vec![10..20, 0..5, 4..8, 30..30, 19..25]), vec![0..8, 10..25]);
    }

    #[test]
    fn zero_detection_sees_a_single_set_byte() {
        let mut block = vec![0u8; 65536];
        assert!(is_zero(&block));
        block[65535] = 1;
        assert!(!is_zero(&block));
    }
}
