//! Garbage collection of a resource archive store: the packs no finished archive
//! references any more are deleted, in two phases with a grace period, safe against
//! concurrent backups (docs/resource-archive.md, "Garbage collection").
//!
//! A pack is deleted whole or not at all: archives' indexes point into packs by offset,
//! so objects cannot move without rewriting every archive that names them. A pack shared
//! by a deleted and a remaining archive stays until the last of them goes.
//!
//! - **Mark**: packs older than the grace period that no archive with a manifest
//!   references are condemned by a sealed marker (`gc/<id>`). From then on backups do not
//!   reuse their objects, and a backup that already did copies them out in its final
//!   check.
//! - **Sweep** (a later run, once a marker is older than the grace period): its packs
//!   that are still unreferenced leave the pack indexes first, then the store.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use arca_repo::lock::StoreLock;
use serde::{Deserialize, Serialize};

use super::{Error, Inner, Known, ObjectStoreArchive, ReadFilter, ResourceArchive, Result, new_file_id, valid_file_id};
use bytes::Bytes;

/// What one collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectReport {
    /// Finished archives read for the live set.
    pub archives: u64,
    /// Packs some archive references.
    pub live_packs: u64,
    pub packs_condemned: u64,
    pub packs_deleted: u64,
    /// Condemned packs referenced again by the time of the sweep (a backup reused them).
    pub packs_spared: u64,
    /// Unreferenced packs still retained by S3 Object Lock: condemned again, and
    /// deleted by a run after their date.
    #[serde(default)]
    pub packs_locked: u64,
    pub bytes_deleted: u64,
    /// Markers younger than the grace period: their packs go at a later run.
    pub markers_pending: u64,
    pub stale_lock_taken_over: bool,
}

/// A set of packs condemned at a time.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    created_ms: u64,
    packs: Vec<String>,
}

fn marker_aad(id: &str) -> String {
    format!("resource-gc-marker/{id}")
}

/// Every pack a gc marker condemns.
pub(super) async fn condemned_packs(inner: &Inner) -> Result<HashSet<String>> {
    Ok(markers(inner).await?.into_iter().flat_map(|(_, m)| m.packs).collect())
}

/// The markers in the store. A marker that does not open under the archive's keys fails
/// the caller: a gc or backup that ignored it could delete or reuse condemned data.
async fn markers(inner: &Inner) -> Result<Vec<(String, Marker)>> {
    let mut out = Vec::new();
    for meta in inner.store.list(&inner.layout.gc_markers()).await? {
        let Some(id) = meta.key.rsplit('/').next().filter(|id| valid_file_id(id)) else {
            continue;
        };
        let sealed = match inner.store.get(&meta.key).await {
            Ok(body) => body,
            // Swept since the listing.
            Err(arca_core::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let marker: Marker = serde_json::from_slice(&inner.open(&marker_aad(id), &sealed)?)?;
        out.push((meta.key, marker));
    }
    Ok(out)
}

/// When a pack was written: its name is a ULID. `None` for a name Arca did not make.
fn written_ms(pack: &str) -> Option<u64> {
    ulid::Ulid::from_string(&pack.to_ascii_uppercase())
        .ok()
        .map(|u| u.timestamp_ms())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ObjectStoreArchive {
    /// Collects the packs no finished archive needs (module doc). One collection at a
    /// time per store: the lock is a conditional write (`arca_repo::lock`).
    pub async fn collect(&self, grace: Duration) -> Result<CollectReport> {
        let store = self.inner.store.clone();
        let held = StoreLock::acquire(store.as_ref(), &self.inner.layout.gc_lock())
            .await
            .map_err(|e| Error::Concurrent(e.to_string()))?;
        let took_over = held.took_over();
        let result = self.collect_locked(grace).await;
        let released = held
            .release(store.as_ref())
            .await
            .map_err(|e| Error::Concurrent(e.to_string()));
        let mut report = result?;
        released?;
        report.stale_lock_taken_over = took_over;
        Ok(report)
    }

    /// The packs finished archives reference, and how many archives there are. Fails
    /// rather than guess when an archive cannot be read: an incomplete live set would
    /// delete data.
    async fn live_packs(&self) -> Result<(u64, HashSet<String>)> {
        let layout = &self.inner.layout;
        let ids: BTreeSet<String> = self
            .inner
            .store
            .list(&layout.archives())
            .await?
            .into_iter()
            .filter_map(|meta| {
                let id = layout.archive_of_manifest(&meta.key)?;
                valid_file_id(id).then(|| id.to_string())
            })
            .collect();
        let mut live = HashSet::new();
        let mut archives = 0;
        for id in ids {
            let reader = match self.open(&id).await {
                Ok(reader) => reader,
                // Deleted since the listing (a DELETE_BACKUP job): it needs nothing.
                Err(Error::Store(arca_core::Error::NotFound { .. })) => continue,
                Err(e) => {
                    return Err(Error::Format(format!(
                        "archive {id} unreadable, gc refuses to run: {e}"
                    )));
                }
            };
            let entries = match reader.entries(&ReadFilter::everything()).await {
                Ok(entries) => entries,
                // Its manifest went first and its index with it: a deletion under way.
                Err(Error::Store(arca_core::Error::NotFound { .. })) if !self.has_manifest(&id).await? => continue,
                Err(e) => {
                    return Err(Error::Format(format!(
                        "archive {id} unreadable, gc refuses to run: {e}"
                    )));
                }
            };
            archives += 1;
            live.extend(entries.into_iter().filter_map(|e| e.pack));
        }
        Ok((archives, live))
    }

    async fn has_manifest(&self, id: &str) -> Result<bool> {
        match self.inner.store.get(&self.inner.layout.manifest(id)).await {
            Ok(_) => Ok(true),
            Err(arca_core::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn collect_locked(&self, grace: Duration) -> Result<CollectReport> {
        let inner = &self.inner;
        let grace_ms = grace.as_millis() as u64;
        let mut report = CollectReport::default();

        // ---- mark
        let (archives, live) = self.live_packs().await?;
        report.archives = archives;
        report.live_packs = live.len() as u64;
        let already = condemned_packs(inner).await?;
        let now = now_ms();
        let condemn: Vec<String> = inner
            .existing_packs()
            .await?
            .into_keys()
            .filter(|pack| !live.contains(pack) && !already.contains(pack))
            // Young packs may be a running backup's, not referenced yet.
            .filter(|pack| written_ms(pack).is_some_and(|t| now.saturating_sub(t) >= grace_ms))
            .collect();
        if !condemn.is_empty() {
            report.packs_condemned = condemn.len() as u64;
            let id = new_file_id();
            let marker = Marker {
                created_ms: now_ms(),
                packs: condemn,
            };
            let sealed = inner.seal(&marker_aad(&id), &serde_json::to_vec(&marker)?)?;
            inner
                .store
                .put(&inner.layout.gc_marker(&id), Bytes::from(sealed))
                .await?;
        }

        // ---- sweep: markers at least `grace` old, against the store as it is now
        let now = now_ms();
        let (due, pending): (Vec<_>, Vec<_>) = markers(inner)
            .await?
            .into_iter()
            .partition(|(_, m)| now.saturating_sub(m.created_ms) >= grace_ms);
        report.markers_pending = pending.len() as u64;
        if due.is_empty() {
            return Ok(report);
        }
        let (_, live) = self.live_packs().await?;
        let existing = inner.existing_packs().await?;
        let mut doomed = HashSet::new();
        let at = chrono::DateTime::from_timestamp_millis(now as i64).unwrap_or_default();
        for pack in due.iter().flat_map(|(_, m)| m.packs.iter()) {
            if live.contains(pack) {
                report.packs_spared += 1;
                continue;
            }
            let Some(size) = existing.get(pack).filter(|_| !doomed.contains(pack)) else {
                continue;
            };
            if arca_repo::immutability::still_locked(inner.store.as_ref(), &inner.layout.pack(pack), at).await? {
                report.packs_locked += 1;
            } else {
                doomed.insert(pack.clone());
                report.bytes_deleted += size;
            }
        }
        if !doomed.is_empty() {
            // The pack indexes first: a backup must never find an object in a deleted pack.
            let mut known = inner.load_pack_indexes().await?;
            known.forget_packs(&doomed);
            let stored = |pack: &str| existing.contains_key(pack) && !doomed.contains(pack);
            rewrite_pack_indexes(inner, &known, stored).await?;
            for pack in &doomed {
                inner.store.delete(&inner.layout.pack(pack)).await?;
                report.packs_deleted += 1;
            }
        }
        for (key, _) in &due {
            inner.store.delete(key).await?;
        }
        Ok(report)
    }
}

/// Replaces the pack indexes read into `known` by one that lists only objects in packs
/// `stored` accepts. The new index is written before the old ones are deleted, so a
/// concurrent backup always finds every surviving object.
async fn rewrite_pack_indexes(inner: &Inner, known: &Known, stored: impl Fn(&str) -> bool) -> Result<()> {
    let kept: Vec<_> = known
        .objects
        .iter()
        .filter(|(_, loc)| stored(&known.packs[loc.pack as usize]))
        .collect();
    if !kept.is_empty() {
        let plain = known.write_pack_index(kept.into_iter());
        let index_id = new_file_id();
        let sealed = inner.seal(&format!("resource-pack-index/{index_id}"), &plain)?;
        inner
            .store
            .put(&inner.layout.pack_index(&index_id), Bytes::from(sealed))
            .await?;
    }
    for old in &known.indexes {
        inner.store.delete(old).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arca_core::model::layout::ArchiveLayout;
    use arca_core::ports::ObjectStore;
    use arca_embedded::LocalFsObjectStore;
    use serde_json::json;

    use super::super::{Manifest, NewEntry, ResourceType};
    use super::*;

    const PREFIX: &str = "org/cl/resources";

    fn entry(name: &str, value: &str) -> (NewEntry, Vec<u8>) {
        let resource = ResourceType {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            namespaced: true,
        };
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"namespace": "app", "name": name}, "data": {"k": value}});
        let entry = NewEntry {
            resource,
            namespace: Some("app".into()),
            name: name.into(),
            uid: format!("uid-{name}"),
        };
        (entry, serde_json::to_vec(&obj).unwrap())
    }

    async fn backup(archive: &ObjectStoreArchive, objects: &[(&str, &str)]) -> Manifest {
        let writer = archive.begin().await.unwrap();
        for (name, value) in objects {
            let (e, json) = entry(name, value);
            writer.put_object(e, json).await.unwrap();
        }
        writer.finish(Manifest::default()).await.unwrap()
    }

    /// What the DELETE_BACKUP job does: the manifest first, then the archive's files.
    async fn delete_archive(store: &dyn ObjectStore, id: &str) {
        let layout = ArchiveLayout::new(PREFIX);
        store.delete(&layout.manifest(id)).await.unwrap();
        for meta in store.list(&layout.archive_files(id)).await.unwrap() {
            store.delete(&meta.key).await.unwrap();
        }
    }

    /// Every object of the archive, as (name, data.k).
    async fn contents(archive: &ObjectStoreArchive, id: &str) -> Vec<(String, String)> {
        let reader = archive.open(id).await.unwrap();
        let mut out = Vec::new();
        for e in reader.entries(&ReadFilter::everything()).await.unwrap() {
            let obj = reader.object(&e).await.unwrap();
            out.push((e.name.clone(), obj["data"]["k"].as_str().unwrap().to_string()));
        }
        out.sort();
        out
    }

    async fn packs(store: &dyn ObjectStore) -> Vec<(String, u64)> {
        store
            .list(&format!("{PREFIX}/packs/"))
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.key, m.size))
            .collect()
    }

    fn setup() -> (tempfile::TempDir, Arc<dyn ObjectStore>, ObjectStoreArchive) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFsObjectStore::new(dir.path()));
        let archive = ObjectStoreArchive::new(store.clone(), PREFIX, &[9; 32]).unwrap();
        (dir, store, archive)
    }

    /// As `contents` gives them: sorted.
    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn collect_deletes_exactly_the_packs_no_remaining_archive_needs() {
        let (_dir, store, archive) = setup();
        let old = [("one", "1"), ("two", "2")];
        let kept = [("three", "3"), ("four", "4")];
        let a = backup(&archive, &old).await;
        let b = backup(&archive, &kept).await;
        let before = packs(store.as_ref()).await;
        assert_eq!(before.len(), 2, "one pack per backup: {before:?}");

        // With both archives there, nothing is collectable.
        let report = archive.collect(Duration::ZERO).await.unwrap();
        assert_eq!((report.archives, report.live_packs, report.packs_deleted), (2, 2, 0));

        delete_archive(store.as_ref(), &a.archive_id).await;
        let report = archive.collect(Duration::ZERO).await.unwrap();
        let after = packs(store.as_ref()).await;
        assert_eq!(after.len(), 1, "{after:?}");
        let freed: u64 = before.iter().filter(|p| !after.contains(p)).map(|p| p.1).sum();
        assert_eq!(
            (
                report.archives,
                report.packs_condemned,
                report.packs_deleted,
                report.bytes_deleted
            ),
            (1, 1, 1, freed)
        );
        assert_eq!(report.markers_pending, 0);
        assert!(
            store.list(&format!("{PREFIX}/gc/")).await.unwrap().is_empty(),
            "swept markers are gone"
        );
        assert_eq!(contents(&archive, &b.archive_id).await, pairs(&kept));

        // The pack indexes forgot the deleted pack: the same content is stored again.
        let again = backup(&archive, &old).await;
        assert_eq!(again.new_objects, 2, "objects of a collected pack are written anew");
        assert_eq!(contents(&archive, &again.archive_id).await, pairs(&old));
    }

    #[tokio::test]
    async fn a_backup_that_reused_a_condemned_pack_copies_it_out_and_keeps_its_data() {
        let (_dir, store, archive) = setup();
        let grace = Duration::from_millis(300);
        let a = backup(&archive, &[("one", "1"), ("two", "2")]).await;
        tokio::time::sleep(grace).await;

        // A backup starts while A still exists, so it may reuse A's objects ...
        let running = archive.begin().await.unwrap();
        // ... then A expires and gc condemns its pack (not yet deleted: grace).
        delete_archive(store.as_ref(), &a.archive_id).await;
        let marked = archive.collect(grace).await.unwrap();
        assert_eq!(
            (marked.packs_condemned, marked.packs_deleted, marked.markers_pending),
            (1, 0, 1)
        );

        // A backup begun after the mark does not reuse condemned objects.
        let fresh = backup(&archive, &[("two", "2")]).await;
        assert_eq!(fresh.new_objects, 1);

        let (e, json) = entry("one", "1");
        assert!(
            !running.put_object(e, json).await.unwrap(),
            "reused from the condemned pack"
        );
        let (e, json) = entry("five", "5");
        running.put_object(e, json).await.unwrap();
        let finished = running.finish(Manifest::default()).await.unwrap();

        // After the grace period the condemned pack goes; the running backup's copy stays.
        tokio::time::sleep(grace).await;
        let swept = archive.collect(grace).await.unwrap();
        assert_eq!(swept.packs_deleted, 1, "{swept:?}");
        assert_eq!(
            contents(&archive, &finished.archive_id).await,
            pairs(&[("five", "5"), ("one", "1")])
        );
        assert_eq!(contents(&archive, &fresh.archive_id).await, pairs(&[("two", "2")]));
    }

    #[tokio::test]
    async fn one_collection_at_a_time() {
        let (_dir, store, archive) = setup();
        backup(&archive, &[("one", "1")]).await;
        let held = StoreLock::acquire(store.as_ref(), &format!("{PREFIX}/locks/gc"))
            .await
            .unwrap();
        let err = archive.collect(Duration::ZERO).await.unwrap_err();
        assert!(matches!(&err, Error::Concurrent(m) if m.contains("locks/gc")), "{err}");
        held.release(store.as_ref()).await.unwrap();
        archive.collect(Duration::ZERO).await.unwrap();
    }
}
