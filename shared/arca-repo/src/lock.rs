//! The one-at-a-time lock of a store's maintenance (volume repository and resource archive
//! gc alike): an object written with a conditional write (the store's `put_if_absent`: S3
//! `If-None-Match: *`, a local exclusive link), so two processes never both hold it, on
//! S3 as on a local directory. No check-then-write stands in for it.

use std::time::Duration;

use arca_core::ports::ObjectStore;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{FormatError, RepoError, Result};
use crate::format::MAX_LOCK_LEN;
use crate::repo::now_ms;

/// A lock older than this is a crashed holder's and may be taken over.
pub const LOCK_STALE: Duration = Duration::from_secs(2 * 3600);

/// What a lock object holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockBody {
    pub created_ms: u64,
    pub hostname: Option<String>,
}

impl LockBody {
    pub fn is_stale(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.created_ms) >= LOCK_STALE.as_millis() as u64
    }

    /// The refusal of a second holder, naming the lock, its age and its holder.
    pub fn held(&self, key: &str, now_ms: u64) -> RepoError {
        RepoError::Concurrent(format!(
            "another gc holds {key} (since {} s ago{}); only one gc may run at a time",
            now_ms.saturating_sub(self.created_ms) / 1000,
            self.hostname
                .as_deref()
                .map(|h| format!(", on {h}"))
                .unwrap_or_default()
        ))
    }
}

/// A held lock: release it when done (a crash leaves it to go stale).
#[derive(Debug)]
pub struct StoreLock {
    key: String,
    /// The takeover claim made to get a stale lock, removed with the lock.
    takeover: Option<String>,
}

impl StoreLock {
    /// Takes the lock at `key`. A lock older than [`LOCK_STALE`] is a crashed holder's:
    /// whoever first claims its takeover (another conditional write, named after that
    /// lock's time) removes it and tries once more; the others give up, so a fresh lock is
    /// never removed by a latecomer.
    pub async fn acquire(store: &dyn ObjectStore, key: &str) -> Result<StoreLock> {
        let now = now_ms();
        let body = body(now)?;
        if put_if_absent(store, key, body.clone()).await? {
            return Ok(StoreLock {
                key: key.into(),
                takeover: None,
            });
        }
        let Some(existing) = read(store, key).await? else {
            // Released between our write and our read: one more try.
            return match put_if_absent(store, key, body).await? {
                true => Ok(StoreLock {
                    key: key.into(),
                    takeover: None,
                }),
                false => Err(taken(key)),
            };
        };
        if !existing.is_stale(now) {
            return Err(existing.held(key, now));
        }
        let claim = format!("{key}-takeover-{}", existing.created_ms);
        if !put_if_absent(store, &claim, body.clone()).await? {
            // A claimant that crashed mid-takeover would block every later holder: its
            // claim goes stale too, and is removed for the next one to try.
            if let Some(other) = read(store, &claim).await?
                && other.is_stale(now)
            {
                let _ = store.delete(&claim).await;
            }
            return Err(RepoError::Concurrent(format!(
                "another gc is taking over the stale lock {key} (its {claim} exists)"
            )));
        }
        store
            .delete(key)
            .await
            .map_err(|e| RepoError::store(format!("removing the stale lock {key}"), e))?;
        if put_if_absent(store, key, body).await? {
            Ok(StoreLock {
                key: key.into(),
                takeover: Some(claim),
            })
        } else {
            let _ = store.delete(&claim).await;
            Err(taken(key))
        }
    }

    /// Whether a crashed holder's stale lock was taken over to get this one.
    pub fn took_over(&self) -> bool {
        self.takeover.is_some()
    }

    pub async fn release(self, store: &dyn ObjectStore) -> Result<()> {
        store
            .delete(&self.key)
            .await
            .map_err(|e| RepoError::store(format!("removing the lock {}", self.key), e))?;
        if let Some(claim) = &self.takeover {
            store
                .delete(claim)
                .await
                .map_err(|e| RepoError::store(format!("removing the takeover claim {claim}"), e))?;
        }
        Ok(())
    }
}

/// Decodes a lock object (the `lock` fuzz target's entry point).
pub fn decode_lock(bytes: &[u8]) -> std::result::Result<LockBody, FormatError> {
    if bytes.len() as u64 > MAX_LOCK_LEN {
        return Err(FormatError::new(format!(
            "lock of {} bytes, more than the {MAX_LOCK_LEN} the format allows",
            bytes.len()
        )));
    }
    serde_json::from_slice::<LockBody>(bytes).map_err(|e| FormatError::new(format!("lock: {e}")))
}

/// The lock at `key`; `None` when it is gone. An unreadable lock, or one larger than a lock
/// can be (not read), counts as just taken: no one runs beside a holder whose age it
/// cannot tell.
pub async fn read(store: &dyn ObjectStore, key: &str) -> Result<Option<LockBody>> {
    let just_taken = || LockBody {
        created_ms: now_ms(),
        hostname: None,
    };
    match store.get_at_most(key, MAX_LOCK_LEN).await {
        Ok(Some(bytes)) => Ok(Some(decode_lock(&bytes).unwrap_or_else(|_| just_taken()))),
        Ok(None) => Ok(Some(just_taken())),
        Err(arca_core::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(RepoError::store(format!("reading {key}"), e)),
    }
}

fn body(now: u64) -> Result<Bytes> {
    let lock = LockBody {
        created_ms: now,
        hostname: std::env::var("HOSTNAME").ok(),
    };
    serde_json::to_vec(&lock)
        .map(Bytes::from)
        .map_err(|e| RepoError::Internal(e.to_string()))
}

async fn put_if_absent(store: &dyn ObjectStore, key: &str, body: Bytes) -> Result<bool> {
    store
        .put_if_absent(key, body)
        .await
        .map_err(|e| RepoError::store(format!("writing {key}"), e))
}

fn taken(key: &str) -> RepoError {
    RepoError::Concurrent(format!("another gc took {key}; only one gc may run at a time"))
}
