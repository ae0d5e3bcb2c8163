//! The storage port, shaped for a single-table design: items addressed by a partition
//! key and a sort key, an optional sparse secondary index entry per index, a version
//! for optimistic concurrency, and all-or-nothing transactions.
//!
//! Adapters (DynamoDB in `arca-aws`, redb in `arca-embedded`) implement only this;
//! the typed, tenant-scoped layer above it owns every key shape.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

/// The secondary indexes the table has. Each item may carry one key per index;
/// an item without a key for an index is not in it (sparse index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Index {
    /// Cross-tenant lookups by secret hash: API keys and agent tokens. Overloaded with
    /// one in-org relation whose records already use GSI3: recovery points by destination.
    Gsi1,
    /// Cross-tenant time-ordered queries: recovery points by expiry, due work.
    Gsi2,
    /// In-org relations, by parent: a cluster's recovery points and jobs, the clusters
    /// and definitions that name a destination. Its partition keys start with the org's,
    /// so it is tenant-scoped like the table.
    Gsi3,
}

impl Index {
    pub const ALL: [Index; 3] = [Index::Gsi1, Index::Gsi2, Index::Gsi3];
}

/// A key in a secondary index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexKey {
    pub pk: String,
    pub sk: String,
}

/// One stored item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    /// Index keys by index; at most one per index.
    pub gsi1: Option<IndexKey>,
    pub gsi2: Option<IndexKey>,
    pub gsi3: Option<IndexKey>,
    /// Incremented by the typed layer on every write; the adapters store it as given
    /// and evaluate [`Condition::Version`] against the stored value.
    pub version: u64,
    /// Unix seconds after which the item may be removed by the store (DynamoDB TTL).
    /// Readers must still treat expired items as present until they are gone.
    pub expires_at: Option<i64>,
    /// The entity, as a JSON document.
    pub body: serde_json::Value,
}

impl Item {
    pub fn index_key(&self, index: Index) -> Option<&IndexKey> {
        match index {
            Index::Gsi1 => self.gsi1.as_ref(),
            Index::Gsi2 => self.gsi2.as_ref(),
            Index::Gsi3 => self.gsi3.as_ref(),
        }
    }
}

/// A precondition on the item currently stored at (pk, sk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Unconditional.
    None,
    /// No item exists at the key.
    NotExists,
    /// An item exists at the key.
    Exists,
    /// An item exists and its version equals this.
    Version(u64),
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Put {
        item: Item,
        condition: Condition,
    },
    Delete {
        pk: String,
        sk: String,
        condition: Condition,
    },
    /// Writes nothing; the transaction fails unless the condition holds.
    Check {
        pk: String,
        sk: String,
        condition: Condition,
    },
}

/// Which part of a partition (or index partition) a query reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKeyRange {
    All,
    /// Sort keys starting with this prefix.
    BeginsWith(String),
    /// Sort keys `< bound` (byte-wise): "everything before T" on time-ordered keys.
    LessThan(String),
    /// `from <= sk <= to`.
    Between(String, String),
}

/// A query on the table (`index: None`) or on one secondary index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub index: Option<Index>,
    pub pk: String,
    pub range: SortKeyRange,
    /// Results per page (the adapter may return fewer; a page may be empty with a cursor).
    pub limit: u32,
    /// Descending sort-key order when false.
    pub ascending: bool,
    /// Continue after the position this cursor marks (from [`Page::cursor`]).
    pub cursor: Option<Cursor>,
}

/// An opaque position in a query's results. It encodes the last item returned (its
/// table key and, for index queries, its index key), which is all either adapter needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub pk: String,
    pub sk: String,
    pub index_key: Option<IndexKey>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Present when more results may follow.
    pub cursor: Option<Cursor>,
}

/// The storage port. Failed conditions are [`crate::Error::Conflict`]; for transactions
/// the message names the index of the first write whose condition failed
/// ("write 1 of 3: condition failed"), and nothing of the transaction is applied.
#[async_trait]
pub trait ItemStore: Send + Sync {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>>;
    /// The items at these keys, in their order (`None` where there is none): what a page
    /// joins in (its clusters' agents, its definitions' clusters) in one round trip. At most
    /// [`MAX_BATCH_GET`] keys. Reads as [`Self::get`] does (strongly consistent).
    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Item>>> {
        if keys.len() > MAX_BATCH_GET {
            return Err(crate::Error::invalid(
                "keys",
                format!("{} keys, at most {MAX_BATCH_GET} per batch get", keys.len()),
            ));
        }
        let mut out = Vec::with_capacity(keys.len());
        for (pk, sk) in keys {
            out.push(self.get(pk, sk).await?);
        }
        Ok(out)
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<()>;
    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> Result<()>;
    async fn query(&self, query: Query) -> Result<Page>;
    /// All writes or none. At most 100 writes, each on a distinct key.
    async fn transact(&self, writes: Vec<Write>) -> Result<()>;
    /// Every partition key holding an item at sort key `sk`, in no particular order. On
    /// DynamoDB a full-table scan: for one-time migrations only, never on a request path
    /// (the access-pattern test fails on it). A store that cannot refuses.
    async fn scan_partitions_with(&self, sk: &str) -> Result<Vec<String>> {
        Err(crate::Error::permanent(format!(
            "this item store cannot list the partitions holding {sk:?}"
        )))
    }
}

/// Keys one [`ItemStore::get_many`] takes: a page's worth (DynamoDB's BatchGetItem takes 100
/// per call; the adapter makes as many calls as it needs).
pub const MAX_BATCH_GET: usize = 200;

/// Transactions are capped at DynamoDB's limit so both adapters behave the same.
pub const MAX_TRANSACTION_WRITES: usize = 100;
