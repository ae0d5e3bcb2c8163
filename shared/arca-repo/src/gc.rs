//! Garbage collection in two phases with a grace period, safe against concurrent backups
//! (format doc, section 8).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::format::{BlobEntry, GcMarker, MapEntry, sealed_units};
use crate::id::{Id, IdSet};
use crate::lock::StoreLock;
use crate::pack::{Packer, read_sealed};
use crate::repo::{Index, Repository, key_for, list_objects, now_ms};
use arca_core::model::layout::RepositoryLayout;

/// Index files written by gc hold at most this many blobs each.
const INDEX_FILE_BLOBS: usize = 200_000;
/// Unfinished uploads (S3 multipart) younger than this, or than the grace period if that
/// is longer, may be a running backup's and are left alone.
const STALE_UPLOAD_MIN: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Time between condemning a pack and deleting it. Must be longer than any clock skew
    /// between machines and than a backup's final check (minutes); default 24 h.
    pub grace: Duration,
    /// Packs whose live bytes are below this fraction are repacked.
    pub repack_below: f64,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(24 * 3600),
            repack_below: 0.5,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub live_blobs: u64,
    pub packs_condemned: u64,
    pub packs_repacked: u64,
    pub packs_deleted: u64,
    pub packs_spared: u64,
    /// Unreferenced packs still retained by S3 Object Lock: condemned again, and
    /// deleted by a run after their date.
    pub packs_locked: u64,
    pub bytes_deleted: u64,
    pub markers_pending: u64,
    /// Unfinished uploads a killed backup left in the store (S3 multipart), aborted.
    pub uploads_aborted: u64,
    /// Why unfinished uploads could not be listed or aborted (e.g. AccessDenied).
    pub uploads_abort_error: Option<String>,
    /// The lock of a gc that crashed (older than two hours) was removed to run this one.
    pub stale_lock_taken_over: bool,
}

/// Every blob some snapshot reaches: map blobs and the data blobs they name. Fails rather
/// than guess when a map cannot be read: collecting with an incomplete live set would
/// delete data.
pub async fn live_blobs(repo: &Repository, index: &Index) -> Result<IdSet> {
    let mut live = IdSet::default();
    for (snap_id, snap) in repo.snapshots().await? {
        let maps = snap
            .map_ids()
            .map_err(|e| RepoError::corrupt(format!("snapshot {snap_id}"), e))?;
        for map in maps {
            live.insert(map);
            let entries = repo
                .read_map(index, &map)
                .await
                .map_err(|e| RepoError::SnapshotDamaged {
                    snapshot: snap_id.to_hex(),
                    detail: format!("block map unreadable, gc refuses to run: {e}"),
                })?;
            for e in entries {
                if let MapEntry::Data { id, .. } = e {
                    live.insert(id);
                }
            }
        }
    }
    Ok(live)
}

pub async fn gc(repo: &Repository, options: &GcOptions) -> Result<GcReport> {
    let held = take_lock(repo).await?;
    let took_over = held.took_over();
    let result = run(repo, options).await;
    let released = held.release(repo.store().as_ref()).await;
    let mut report = result?;
    report.stale_lock_taken_over = took_over;
    released?;
    Ok(report)
}

/// Takes the repository's gc lock ([`crate::lock`]), after checking that no gc of an
/// older version (one lock object per gc, `locks/<id>`) holds one of its own.
async fn take_lock(repo: &Repository) -> Result<StoreLock> {
    let store = repo.store();
    let now = now_ms();
    for object in list_objects(store.as_ref(), RepositoryLayout::GC_LOCKS, "locks")
        .await?
        .into_iter()
        .filter(|o| RepositoryLayout::id_of(&o.key).is_some())
    {
        if let Some(lock) = crate::lock::read(store.as_ref(), &object.key).await?
            && !lock.is_stale(now)
        {
            return Err(lock.held(&object.key, now));
        }
    }
    StoreLock::acquire(store.as_ref(), RepositoryLayout::GC_LOCK).await
}

async fn run(repo: &Repository, options: &GcOptions) -> Result<GcReport> {
    let mut report = GcReport::default();
    let grace_ms = options.grace.as_millis() as u64;

    // Parts of uploads no process will finish are billed but belong to no object. Not
    // fatal: credentials scoped to the repository's objects may not be allowed to list or
    // abort uploads, and collecting packs does not depend on it.
    match repo
        .store()
        .abort_stale_uploads(options.grace.max(STALE_UPLOAD_MIN))
        .await
    {
        Ok(n) => report.uploads_aborted = n,
        Err(e) => report.uploads_abort_error = Some(e.to_string()),
    }

    // ---- mark
    let index = repo.load_index(false).await?;
    let live = live_blobs(repo, &index).await?;
    report.live_blobs = live.len() as u64;
    let now = now_ms();
    let mut condemned = Vec::new();
    let mut repacker = Packer::new(repo);
    for pack in index.packs.iter().filter(|p| !p.condemned) {
        if now.saturating_sub(pack.time_ms) < grace_ms {
            continue; // young: possibly a running backup's, not yet referenced
        }
        // A frame is live while one of its blobs is, and is copied whole: its dead blobs
        // go when all of it is dead.
        let units: Vec<&[BlobEntry]> = sealed_units(&pack.entries).collect();
        let stored = |u: &&[BlobEntry]| u.first().map_or(0, |e| u64::from(e.stored_len));
        let total: u64 = units.iter().map(stored).sum();
        let live_units: Vec<&[BlobEntry]> = units
            .iter()
            .filter(|u| u.iter().any(|e| live.contains(&e.id)))
            .copied()
            .collect();
        let live_bytes: u64 = live_units.iter().map(stored).sum();
        if live_bytes == 0 {
            condemned.push(pack.id);
        } else if (live_bytes as f64) < options.repack_below * total as f64 {
            let key = key_for(RepositoryLayout::pack, &pack.id)?;
            for unit in live_units {
                repacker.add(read_sealed(repo, &key, unit, "repacking").await?).await?;
            }
            report.packs_repacked += 1;
            condemned.push(pack.id);
        }
    }
    repacker.finish().await?;
    // Packs no index lists: a killed backup's uploads (or a torn foreign object).
    for (pack, size) in &index.existing {
        if index.pack_position(pack).is_some() {
            continue;
        }
        match repo.read_pack_header(pack, *size).await {
            Ok(header) if header.blobs.iter().any(|e| live.contains(&e.id)) => {
                // Referenced but unindexed: index it instead of condemning it.
                repo.write_index(vec![(*pack, header.blobs)]).await?;
            }
            Ok(header) if now.saturating_sub(header.created_ms) < grace_ms => {}
            _ => condemned.push(*pack),
        }
    }
    if !condemned.is_empty() {
        report.packs_condemned = condemned.len() as u64;
        let marker = GcMarker {
            version: repo.config().version,
            created_ms: now_ms(),
            packs: condemned.iter().map(Id::to_hex).collect(),
        };
        let json = serde_json::to_vec(&marker).map_err(|e| RepoError::Internal(e.to_string()))?;
        repo.put_object(
            &key_for(RepositoryLayout::gc_marker, &Id::random()?)?,
            &json,
            crate::format::MAX_OBJECT_LEN,
        )
        .await?;
    }

    // ---- sweep: markers at least `grace` old, checked against the repository as it is now
    let markers = repo.gc_markers().await?;
    let now = now_ms();
    let (due, pending): (Vec<_>, Vec<_>) = markers
        .into_iter()
        .partition(|(_, m)| now.saturating_sub(m.created_ms) >= grace_ms);
    report.markers_pending = pending.len() as u64;
    if due.is_empty() {
        return Ok(report);
    }
    let index = repo.load_index(false).await?;
    let live = live_blobs(repo, &index).await?;
    let mut doomed: HashSet<Id> = HashSet::new();
    for (_, marker) in &due {
        for pack in marker.pack_ids().map_err(|e| RepoError::corrupt("gc marker", e))? {
            let Some(size) = index.existing.get(&pack) else {
                continue;
            };
            let entries = match index.pack_position(&pack) {
                Some(p) => index.packs[p as usize].entries.clone(),
                None => repo
                    .read_pack_header(&pack, *size)
                    .await
                    .map(|h| h.blobs)
                    .unwrap_or_default(),
            };
            // A live blob whose only copies are condemned keeps its pack.
            let needed = entries
                .iter()
                .any(|e| live.contains(&e.id) && index.reusable(&e.id).is_none());
            if needed {
                report.packs_spared += 1;
                continue;
            }
            if doomed.contains(&pack) {
                continue;
            }
            let key = key_for(RepositoryLayout::pack, &pack)?;
            let at = chrono::DateTime::from_timestamp_millis(now as i64).unwrap_or_default();
            if crate::immutability::still_locked(repo.store().as_ref(), &key, at)
                .await
                .map_err(|e| RepoError::store(format!("reading the Object Lock of {key}"), e))?
            {
                report.packs_locked += 1;
            } else {
                doomed.insert(pack);
                report.bytes_deleted += size;
            }
        }
    }
    if !doomed.is_empty() || index.missing_packs > 0 {
        rewrite_index(repo, &index, &doomed).await?;
    }
    for pack in &doomed {
        let key = key_for(RepositoryLayout::pack, pack)?;
        repo.store()
            .delete(&key)
            .await
            .map_err(|e| RepoError::store(format!("deleting {key}"), e))?;
        report.packs_deleted += 1;
    }
    for (key, _) in &due {
        repo.store()
            .delete(key)
            .await
            .map_err(|e| RepoError::store(format!("deleting {key}"), e))?;
    }
    Ok(report)
}

/// Replaces the loaded index files by files without `doomed` packs (and without entries of
/// packs that no longer exist). New files are written before old ones are deleted, so a
/// concurrent reader always finds every surviving pack. Packs keep their indexing time.
async fn rewrite_index(repo: &Repository, index: &Index, doomed: &HashSet<Id>) -> Result<()> {
    let mut by_time: BTreeMap<u64, Vec<(Id, Vec<BlobEntry>)>> = BTreeMap::new();
    for pack in index
        .packs
        .iter()
        .filter(|p| !doomed.contains(&p.id) && p.source == crate::repo::PackSource::Indexed)
    {
        by_time
            .entry(pack.time_ms)
            .or_default()
            .push((pack.id, pack.entries.clone()));
    }
    for (time_ms, packs) in by_time {
        let mut chunk = Vec::new();
        let mut blobs = 0;
        for pack in packs {
            blobs += pack.1.len();
            chunk.push(pack);
            if blobs >= INDEX_FILE_BLOBS {
                repo.write_index_at(std::mem::take(&mut chunk), time_ms).await?;
                blobs = 0;
            }
        }
        if !chunk.is_empty() {
            repo.write_index_at(chunk, time_ms).await?;
        }
    }
    for file in &index.files {
        let key = key_for(RepositoryLayout::index, file)?;
        repo.store()
            .delete(&key)
            .await
            .map_err(|e| RepoError::store(format!("deleting {key}"), e))?;
    }
    Ok(())
}
