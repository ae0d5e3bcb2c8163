//! Immutable repositories (S3 Object Lock; docs/volumes.md, "Immutable backups").
//!
//! The store writes a backup's new objects retained until its recovery point's lock
//! date. Deduplication means a backup also *reads* packs earlier backups wrote, retained
//! only until their own points' dates: [`retain_snapshot`] extends each of those to the
//! new date, so every object a point needs is retained as long as the point is. gc asks
//! [`still_locked`] before it deletes anything, and leaves what is retained for a run
//! after the date.

use std::collections::BTreeSet;

use arca_core::model::layout::RepositoryLayout;
use arca_core::ports::ObjectStore;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::format::{MapEntry, Snapshot};
use crate::id::Id;
use crate::repo::{Repository, key_for};

/// Retention calls in flight at once (each a HEAD, some a PutObjectRetention).
const IN_FLIGHT: usize = 16;

/// What [`retain_all`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetainReport {
    /// Objects whose retention was read.
    pub checked: u64,
    /// Of them, retained too briefly and extended.
    pub extended: u64,
}

/// Whether the store still retains `key` at `now` (gc must not delete it yet).
pub async fn still_locked(store: &dyn ObjectStore, key: &str, now: DateTime<Utc>) -> arca_core::Result<bool> {
    Ok(store.retained_until(key).await?.is_some_and(|until| until > now))
}

/// Retains every object of `keys` at least until `until`, extending those retained for
/// less (never shortening any).
pub async fn retain_all(
    store: &dyn ObjectStore,
    keys: impl IntoIterator<Item = String>,
    until: DateTime<Utc>,
) -> arca_core::Result<RetainReport> {
    let outcomes: Vec<bool> = futures::stream::iter(keys)
        .map(|key| async move {
            if store.retained_until(&key).await?.is_some_and(|at| at >= until) {
                return Ok(false);
            }
            store.retain_until(&key, until).await.map(|()| true)
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(RetainReport {
        checked: outcomes.len() as u64,
        extended: outcomes.iter().filter(|e| **e).count() as u64,
    })
}

/// The packs `snapshot` reads (those of its block maps and of every data blob they
/// name), retained at least until `until`.
pub async fn retain_snapshot(repo: &Repository, snapshot: &Snapshot, until: DateTime<Utc>) -> Result<RetainReport> {
    let index = repo.load_index(false).await?;
    let mut packs = BTreeSet::new();
    let mut note = |blob: &Id| -> Result<()> {
        let pack = index.pack_of(blob).ok_or_else(|| {
            RepoError::Internal(format!(
                "blob {} of the new snapshot is in no indexed pack",
                blob.to_hex()
            ))
        })?;
        packs.insert(pack);
        Ok(())
    };
    for map in snapshot
        .map_ids()
        .map_err(|e| RepoError::corrupt("the new snapshot", e))?
    {
        note(&map)?;
        for entry in repo.read_map(&index, &map).await? {
            if let MapEntry::Data { id, .. } = entry {
                note(&id)?;
            }
        }
    }
    let keys = packs
        .iter()
        .map(|pack| key_for(RepositoryLayout::pack, pack))
        .collect::<Result<Vec<_>>>()?;
    retain_all(repo.store().as_ref(), keys, until)
        .await
        .map_err(|e| RepoError::store("retaining the snapshot's packs (S3 Object Lock)", e))
}
