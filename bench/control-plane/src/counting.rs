//! An [`ItemStore`] that counts what passes through it, around the real adapter.
//!
//! Reads are items, as DynamoDB bills them (rounded per item, not per 4 KB): a `get` is one
//! read whether or not the item exists, a `get_many` one per key, a query is the items it
//! returned and at least one (an empty query is still a round trip), a transaction's
//! `Check` is one read. Writes are
//! the items put or deleted, alone or in a transaction. `calls` counts round trips to the
//! store (gets, queries, puts, deletes, transactions).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arca_core::Result;
use arca_core::ports::item_store::{Condition, Item, ItemStore, Page, Query, Write};
use async_trait::async_trait;

/// The counters at one moment; subtract two to get what happened between them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub reads: u64,
    pub writes: u64,
    pub calls: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, earlier: Counts) -> Counts {
        Counts {
            reads: self.reads - earlier.reads,
            writes: self.writes - earlier.writes,
            calls: self.calls - earlier.calls,
        }
    }
}

pub struct CountingItemStore {
    inner: Arc<dyn ItemStore>,
    reads: AtomicU64,
    writes: AtomicU64,
    calls: AtomicU64,
}

impl CountingItemStore {
    pub fn new(inner: Arc<dyn ItemStore>) -> Self {
        CountingItemStore {
            inner,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
        }
    }

    fn add(&self, reads: u64, writes: u64) {
        self.reads.fetch_add(reads, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl ItemStore for CountingItemStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        self.add(1, 0);
        self.inner.get(pk, sk).await
    }

    /// Forwarded (the trait's default would turn it into single gets): one round trip,
    /// a read per key.
    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Item>>> {
        self.add(keys.len() as u64, 0);
        self.inner.get_many(keys).await
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<()> {
        self.add(0, 1);
        self.inner.put(item, condition).await
    }

    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> Result<()> {
        self.add(0, 1);
        self.inner.delete(pk, sk, condition).await
    }

    async fn query(&self, query: Query) -> Result<Page> {
        let page = self.inner.query(query).await?;
        self.add(page.items.len().max(1) as u64, 0);
        Ok(page)
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<()> {
        let checks = writes.iter().filter(|w| matches!(w, Write::Check { .. })).count() as u64;
        self.add(checks, writes.len() as u64 - checks);
        self.inner.transact(writes).await
    }

    /// Not on any path the bench measures (migrations only); counted as the partitions
    /// found, though on DynamoDB it is a Scan of the whole table.
    async fn scan_partitions_with(&self, sk: &str) -> Result<Vec<String>> {
        let found = self.inner.scan_partitions_with(sk).await?;
        self.add(found.len().max(1) as u64, 0);
        Ok(found)
    }
}
