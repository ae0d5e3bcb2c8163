//! The object-store port: where agents write archives and the control plane reads them.

use crate::Result;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::ops::Range;
use std::time::Duration;

/// One object as listed by an [`ObjectStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// Flat key/value object storage: S3, an S3-compatible service, or a local directory.
///
/// Keys are `/`-separated relative paths; the layout of keys is owned by the
/// repository crate, never chosen ad hoc by callers.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Writes the whole object; a later `get` sees all of it or, before, none of it.
    async fn put(&self, key: &str, body: Bytes) -> Result<()>;
    /// Writes the object only if no object has the key, atomically (S3 `If-None-Match: *`,
    /// a local `link` that fails on an existing name): of two concurrent callers exactly
    /// one gets `true`. Locks are built on it, so no check-then-write stands in for it.
    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool>;
    /// Reads the whole object; [`crate::Error::NotFound`] when absent.
    async fn get(&self, key: &str) -> Result<Bytes>;
    /// Reads the whole object if it is at most `max` bytes; `Ok(None)` when it is larger.
    /// Readers of objects whose size their format bounds use it, so a hostile object cannot
    /// make them allocate more than that bound. Stores override the default (which reads
    /// first) to look at the size before reading anything.
    async fn get_at_most(&self, key: &str, max: u64) -> Result<Option<Bytes>> {
        let body = self.get(key).await?;
        Ok((body.len() as u64 <= max).then_some(body))
    }
    /// Reads `range` (end exclusive) of the object.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;
    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// Deletes the object; deleting an absent object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Until when S3 Object Lock retains the object (`None`: not retained, or no such
    /// thing in this store). gc asks before deleting a pack, and skips it while locked.
    async fn retained_until(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        let _ = key;
        Ok(None)
    }
    /// Retains the object at least until `until`: a backup reusing data an earlier one
    /// wrote extends that data's lock to its own. Never shortens a lock. Stores without
    /// Object Lock refuse.
    async fn retain_until(&self, key: &str, until: DateTime<Utc>) -> Result<()> {
        let _ = (key, until);
        Err(crate::Error::permanent("this store has no Object Lock"))
    }
    /// The Object Lock configuration of the bucket beneath this store; `None` for stores
    /// without such a thing (a local directory).
    async fn lock_configuration(&self) -> Result<Option<crate::model::destination::BucketLock>> {
        Ok(None)
    }
    /// Discards uploads that were started more than `older_than` ago and never finished
    /// (an S3 multipart upload of a killed process, whose parts are stored and billed but
    /// not visible as an object). Returns how many. Stores that write objects at once have
    /// none: the default does nothing.
    async fn abort_stale_uploads(&self, older_than: Duration) -> Result<u64> {
        let _ = older_than;
        Ok(0)
    }
}

/// Opens a destination's store as the control plane itself reaches it: Arca-managed
/// storage, with credentials it vends for itself, so the retention function can delete a
/// deleted cluster's prefix there when no agent is left to ([`crate::control_plane`],
/// `purge`). User buckets are never opened by the control plane.
#[async_trait]
pub trait DestinationOpener: Send + Sync {
    /// The store rooted at `access`'s cluster prefix.
    async fn open(
        &self,
        access: &crate::ports::credentials::DestinationAccess,
    ) -> Result<std::sync::Arc<dyn ObjectStore>>;
}
