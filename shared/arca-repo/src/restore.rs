//! Restore of a snapshot to a file or block device (format doc, section 10).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::error::{RepoError, Result};
use crate::format::{BlobEntry, MapEntry, Snapshot};
use crate::id::Id;
use crate::repo::{BlobScratch, Repository, key_for, open_blob_in_place};
use arca_core::model::layout::RepositoryLayout;

/// Bytes written between two early flushes of the target ([`EarlyFlush`]).
const FLUSH_EVERY: u64 = 256 << 20;

/// Largest byte range fetched at once, and the gap between blobs worth reading through.
const MAX_FETCH: u64 = 2 << 20;
const MAX_GAP: u64 = 256 << 10;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreStats {
    pub bytes_written: u64,
    pub bytes_fetched: u64,
    pub blobs: u64,
}

#[derive(Default)]
pub struct RestoreOptions {
    /// fsync the target before returning.
    pub sync: bool,
    /// Parallel fetch+decode tasks; 0 means one per core plus two.
    pub parallel: usize,
    pub progress: Option<crate::backup::Progress>,
}

struct Fetch {
    pack: Id,
    start: u64,
    end: u64,
    /// Blobs in the range, each with the target offsets it is written to.
    blobs: Vec<(BlobEntry, Vec<u64>)>,
}

/// Restores `snapshot` to `target`, checking every block on the way.
pub async fn restore(
    repo: &Repository,
    snapshot_id: &Id,
    snapshot: &Snapshot,
    target: &Path,
    options: RestoreOptions,
) -> Result<RestoreStats> {
    let damaged = |detail: String| RepoError::SnapshotDamaged {
        snapshot: snapshot_id.to_hex(),
        detail,
    };
    let index = repo.load_index(false).await?;
    let target_err = |e: std::io::Error| RepoError::io(format!("writing target {}", target.display()), e);
    let is_device = std::fs::metadata(target)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    let file = if is_device {
        OpenOptions::new().write(true).open(target).map_err(target_err)?
    } else {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(target)
            .map_err(target_err)?;
        // A fresh file of the right length: zero runs stay holes.
        file.set_len(snapshot.size).map_err(target_err)?;
        file
    };
    let file = Arc::new(file);
    let parallel = match options.parallel {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) + 2,
        n => n,
    };
    let maps = snapshot.map_ids().map_err(|e| damaged(e.to_string()))?;
    let mut stats = RestoreStats::default();
    let mut offset = 0u64;
    let mut tasks: JoinSet<Result<Written>> = JoinSet::new();
    let mut flush = EarlyFlush::new(options.sync.then(|| file.clone()));
    for map_id in &maps {
        let entries = repo
            .read_map(&index, map_id)
            .await
            .map_err(|e| damaged(format!("block map: {e}")))?;
        // Group this segment's blobs by pack, each blob once with all its target offsets.
        let mut by_pack: HashMap<u32, HashMap<Id, (BlobEntry, Vec<u64>)>> = HashMap::new();
        for entry in &entries {
            match entry {
                MapEntry::Zero(len) => {
                    if is_device {
                        write_zeros(&file, offset, *len).map_err(target_err)?;
                    }
                }
                MapEntry::Data { len, id } => {
                    let (pack, blob) = index.get(id).ok_or_else(|| {
                        damaged(format!("block at offset {offset}: blob {id} is missing from the index"))
                    })?;
                    if blob.raw_len != *len {
                        return Err(damaged(format!(
                            "block at offset {offset}: blob {id} has the wrong length"
                        )));
                    }
                    let pos = index.pack_position(&pack.id).unwrap_or(0);
                    by_pack
                        .entry(pos)
                        .or_default()
                        .entry(*id)
                        .or_insert_with(|| (*blob, Vec::new()))
                        .1
                        .push(offset);
                }
            }
            offset += entry.len();
        }
        let mut fetches = Vec::new();
        for (pos, blobs) in by_pack {
            let pack = index.packs[pos as usize].id;
            let mut blobs: Vec<_> = blobs.into_values().collect();
            blobs.sort_by_key(|(e, _)| e.offset);
            let mut current: Option<Fetch> = None;
            for (entry, targets) in blobs {
                let (start, end) = (
                    u64::from(entry.offset),
                    u64::from(entry.offset) + u64::from(entry.stored_len),
                );
                match &mut current {
                    // Another blob of the frame just added: fetched and opened with it.
                    Some(f) if f.blobs.last().is_some_and(|(e, _)| same_frame(e, &entry)) => {
                        f.blobs.push((entry, targets));
                    }
                    Some(f) if start >= f.end && start - f.end <= MAX_GAP && end - f.start <= MAX_FETCH => {
                        f.end = end;
                        f.blobs.push((entry, targets));
                    }
                    _ => {
                        fetches.extend(current.take());
                        current = Some(Fetch {
                            pack,
                            start,
                            end,
                            blobs: vec![(entry, targets)],
                        });
                    }
                }
            }
            fetches.extend(current);
        }
        // Reading packs in order keeps object-store reads sequential.
        fetches.sort_by_key(|a| (a.pack, a.start));
        for fetch in fetches {
            while tasks.len() >= parallel {
                collect(&mut tasks, &mut stats, &options, &mut flush).await?;
            }
            let repo = repo.clone();
            let file = file.clone();
            let snapshot = snapshot_id.to_hex();
            tasks.spawn(async move { fetch_and_write(&repo, &snapshot, fetch, file).await });
        }
    }
    while !tasks.is_empty() {
        collect(&mut tasks, &mut stats, &options, &mut flush).await?;
    }
    flush.settle().await.map_err(target_err)?;
    if options.sync {
        let file = file.clone();
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| RepoError::Internal(e.to_string()))?
            .map_err(target_err)?;
    }
    stats.bytes_written = snapshot.size;
    Ok(stats)
}

/// What one fetch did: bytes fetched, blobs opened, bytes written.
type Written = (u64, u64, u64);

/// Starts writing the target back to its device while the restore goes on: an fdatasync
/// in a blocking thread every [`FLUSH_EVERY`] bytes written (one at a time). Without it
/// the kernel keeps up to its dirty limit (a tenth of memory: gigabytes) in the page cache
/// and the final fsync writes it all at the end; with it the device writes while blocks
/// are fetched and decrypted, and the final fsync waits for the tail only
/// (docs/repository-format.md, section 12).
struct EarlyFlush {
    file: Option<Arc<File>>,
    since: u64,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl EarlyFlush {
    /// `None`: the restore does not sync (nothing is flushed early either).
    fn new(file: Option<Arc<File>>) -> Self {
        EarlyFlush {
            file,
            since: 0,
            running: None,
        }
    }

    fn wrote(&mut self, bytes: u64) {
        let Some(file) = &self.file else { return };
        self.since += bytes;
        if self.since < FLUSH_EVERY || self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        // A finished flush's error is not lost: the final fsync reports the same failure.
        self.since = 0;
        let file = file.clone();
        self.running = Some(tokio::task::spawn_blocking(move || file.sync_data()));
    }

    /// Waits for the flush in flight.
    async fn settle(&mut self) -> std::io::Result<()> {
        match self.running.take() {
            Some(h) => h.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

async fn collect(
    tasks: &mut JoinSet<Result<Written>>,
    stats: &mut RestoreStats,
    options: &RestoreOptions,
    flush: &mut EarlyFlush,
) -> Result<()> {
    if let Some(done) = tasks.join_next().await {
        let (fetched, blobs, written) = done.map_err(|e| RepoError::Internal(format!("restore task: {e}")))??;
        stats.bytes_fetched += fetched;
        stats.blobs += blobs;
        flush.wrote(written);
        if let Some(progress) = &options.progress {
            progress(stats.bytes_fetched, 0);
        }
    }
    Ok(())
}

async fn fetch_and_write(repo: &Repository, snapshot: &str, fetch: Fetch, file: Arc<File>) -> Result<Written> {
    let key = key_for(RepositoryLayout::pack, &fetch.pack)?;
    let damaged = |detail: String| RepoError::SnapshotDamaged {
        snapshot: snapshot.to_string(),
        detail,
    };
    let bytes = repo
        .store()
        .get_range(&key, fetch.start..fetch.end)
        .await
        .map_err(|e| damaged(format!("reading pack {}: {e}", fetch.pack)))?;
    let fetched = bytes.len() as u64;
    let repo = repo.clone();
    let snapshot = snapshot.to_string();
    tokio::task::spawn_blocking(move || {
        let damaged = |detail: String| RepoError::SnapshotDamaged {
            snapshot: snapshot.clone(),
            detail,
        };
        // Blobs are decrypted where they lie in the fetched range (the local store hands
        // over its buffer; otherwise one copy per range, not one per blob).
        let mut buf: Vec<u8> = match bytes.try_into_mut() {
            Ok(owned) => owned.into(),
            Err(shared) => shared.to_vec(),
        };
        let mut scratch = BlobScratch::new().map_err(RepoError::Internal)?;
        let n = fetch.blobs.len() as u64;
        let mut written = 0u64;
        for (entry, targets) in &fetch.blobs {
            let at = (u64::from(entry.offset) - fetch.start) as usize;
            let end = (at + entry.stored_len as usize).min(buf.len());
            let sealed = buf.get_mut(at.min(end)..end).unwrap_or_default();
            let plain = open_blob_in_place(repo.keys(), entry, sealed, &mut scratch).map_err(|e| {
                damaged(format!(
                    "block at offset {}: blob {} in pack {}: {e}",
                    targets[0], entry.id, fetch.pack
                ))
            })?;
            for &t in targets {
                file.write_all_at(plain, t)
                    .map_err(|e| RepoError::io("writing target", e))?;
            }
            written += plain.len() as u64 * targets.len() as u64;
        }
        Ok((fetched, n, written))
    })
    .await
    .map_err(|e| RepoError::Internal(format!("restore worker: {e}")))?
}

fn same_frame(a: &BlobEntry, b: &BlobEntry) -> bool {
    a.in_frame() && b.in_frame() && a.offset == b.offset
}

fn write_zeros(file: &File, mut offset: u64, mut len: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; (len.min(1 << 20)) as usize];
    while len > 0 {
        let n = len.min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], offset)?;
        offset += n;
        len -= n;
    }
    Ok(())
}

/// How a target compared with a snapshot ([`compare`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompareReport {
    pub bytes_compared: u64,
    /// Bytes in blocks that differ from the snapshot's record.
    pub bytes_differing: u64,
    /// The first [`MAX_DIFFERENCES`] differing blocks, as (offset, length).
    pub differences: Vec<(u64, u64)>,
}

/// At most this many differing blocks are listed in a [`CompareReport`].
pub const MAX_DIFFERENCES: usize = 20;

impl CompareReport {
    pub fn equal(&self) -> bool {
        self.bytes_differing == 0
    }
}

/// Reads `target` back and compares each block with the snapshot's record: a data
/// block's keyed hash must be the blob id the snapshot names, a zero run must read as
/// zeros. Nothing is fetched from the object store but the block maps, so this checks
/// what a restore wrote (or what a volume holds) against the backup itself.
pub async fn compare(repo: &Repository, snapshot_id: &Id, snapshot: &Snapshot, target: &Path) -> Result<CompareReport> {
    let damaged = |detail: String| RepoError::SnapshotDamaged {
        snapshot: snapshot_id.to_hex(),
        detail,
    };
    let index = repo.load_index(false).await?;
    let file =
        Arc::new(File::open(target).map_err(|e| RepoError::io(format!("reading target {}", target.display()), e))?);
    let maps = snapshot.map_ids().map_err(|e| damaged(e.to_string()))?;
    let mut report = CompareReport::default();
    let mut offset = 0u64;
    for map_id in &maps {
        let entries = repo
            .read_map(&index, map_id)
            .await
            .map_err(|e| damaged(format!("block map: {e}")))?;
        let (file, repo, start) = (file.clone(), repo.clone(), offset);
        let (segment, end) = tokio::task::spawn_blocking(move || compare_segment(&repo, &file, &entries, start))
            .await
            .map_err(|e| RepoError::Internal(format!("compare worker: {e}")))??;
        offset = end;
        report.bytes_compared += segment.bytes_compared;
        report.bytes_differing += segment.bytes_differing;
        let room = MAX_DIFFERENCES - report.differences.len();
        report.differences.extend(segment.differences.into_iter().take(room));
    }
    Ok(report)
}

fn compare_segment(
    repo: &Repository,
    file: &File,
    entries: &[MapEntry],
    mut offset: u64,
) -> Result<(CompareReport, u64)> {
    let mut report = CompareReport::default();
    let mut buf = Vec::new();
    for entry in entries {
        let len = entry.len();
        let mut differs = false;
        let mut done = 0u64;
        // Zero runs can be long: read them in bounded pieces; a data block whole.
        while done < len {
            let piece = match entry {
                MapEntry::Zero(_) => (len - done).min(1 << 20),
                MapEntry::Data { .. } => len,
            };
            buf.resize(piece as usize, 0);
            let read =
                read_full_at(file, &mut buf, offset + done).map_err(|e| RepoError::io("reading the target back", e))?;
            if read < buf.len() {
                // The target is shorter than the snapshot.
                differs = true;
                break;
            }
            match entry {
                MapEntry::Zero(_) => differs |= buf.iter().any(|&b| b != 0),
                MapEntry::Data { id, .. } => differs |= repo.keys().blob_id(&buf) != *id,
            }
            done += piece;
        }
        report.bytes_compared += len;
        if differs {
            report.bytes_differing += len;
            if report.differences.len() < MAX_DIFFERENCES {
                report.differences.push((offset, len));
            }
        }
        offset += len;
    }
    Ok((report, offset))
}

/// Like `read_exact_at`, but says how much it read at the end of the file.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match file.read_at(&mut buf[read..], offset + read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}
