//! An [`ItemStore`] adapter that records every operation it passes on, so a test can see
//! what one request or one sweep costs: which items it read, with which queries, and
//! whether a query followed a cursor (read on past its first page).
//!
//! Issue #23: the reads one API request costs must not grow with the org's size. The
//! port has no Scan and every query has a limit, but a caller that follows cursors to the
//! end of a prefix (`Store::list_all`) reads the whole prefix; the recording makes that
//! visible as queries continued from a cursor and as items read.
//!
//! ```ignore
//! let recording = Arc::new(RecordingItemStore::new(inner));
//! // ... build the control plane over `recording.clone()`, seed ...
//! recording.clear();
//! // ... one request ...
//! let ops = recording.take();
//! println!("{} items read in {} queries", ops.items_read(), ops.queries().count());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::Result;
use crate::ports::item_store::{Condition, Index, Item, ItemStore, Page, Query, SortKeyRange, Write};

/// What an operation was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Get,
    Put,
    Delete,
    Query,
    /// [`ItemStore::get_many`]: one round trip for many keys (`items`: those found).
    BatchGet,
    Transact,
    /// [`ItemStore::scan_partitions_with`]: a full-table scan on DynamoDB (migrations only).
    Scan,
}

/// One write of a transaction, as recorded: what it did and to which key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Put,
    Delete,
    Check,
}

/// One recorded operation. Fields that do not apply to its kind are `None`/empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub kind: OpKind,
    /// The index a query read (`None`: the table).
    pub index: Option<Index>,
    /// The partition key (of the table, or of the index for an index query); empty for a
    /// transaction (see `writes`).
    pub pk: String,
    /// The sort key of a get, put or delete.
    pub sk: Option<String>,
    /// The sort-key range of a query.
    pub range: Option<SortKeyRange>,
    /// The page limit of a query.
    pub limit: Option<u32>,
    /// A query that continued from a cursor (a second or later page of one listing).
    pub continued: bool,
    /// A query whose page came back with a cursor (more may follow).
    pub more: bool,
    /// Items returned: a query's page size, 1 for a get that found its item, else 0.
    pub items: usize,
    /// A transaction's writes.
    pub writes: Vec<(WriteKind, String, String)>,
    /// The operation succeeded (a failed condition is recorded too, as not ok).
    pub ok: bool,
}

impl Op {
    fn new(kind: OpKind, pk: &str) -> Self {
        Op {
            kind,
            index: None,
            pk: pk.to_string(),
            sk: None,
            range: None,
            limit: None,
            continued: false,
            more: false,
            items: 0,
            writes: Vec::new(),
            ok: true,
        }
    }

    /// A get or a query.
    pub fn is_read(&self) -> bool {
        matches!(self.kind, OpKind::Get | OpKind::BatchGet | OpKind::Query | OpKind::Scan)
    }

    /// A put, a delete or a transaction.
    pub fn is_write(&self) -> bool {
        !self.is_read()
    }

    /// What the operation addressed, with ids cut off: the index (if any) and the
    /// sort key's (or range's) leading `KIND#`, e.g. `RP#`, `GSI2 RPEXPIRY`, `tx`. Used to
    /// group reads in [`Recording::summary`].
    pub fn target(&self) -> String {
        fn kind_of(key: &str) -> &str {
            match key.find('#') {
                Some(i) => &key[..=i],
                None => key,
            }
        }
        match (self.kind, self.index) {
            (OpKind::Transact, _) => "tx".to_string(),
            (_, Some(index)) => format!("{index:?} {}", kind_of(&self.pk)),
            (OpKind::Query, None) => match &self.range {
                Some(SortKeyRange::BeginsWith(p) | SortKeyRange::LessThan(p) | SortKeyRange::Between(p, _)) => {
                    kind_of(p).to_string()
                }
                _ => format!("{} (all)", kind_of(&self.pk)),
            },
            _ => kind_of(self.sk.as_deref().unwrap_or_default()).to_string(),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = if self.ok { "" } else { " (failed)" };
        match self.kind {
            OpKind::Query => {
                let index = self.index.map(|i| format!("{i:?} ")).unwrap_or_default();
                write!(
                    f,
                    "query {index}{} {:?} limit {} -> {}{}{}{failed}",
                    self.pk,
                    self.range.as_ref().unwrap_or(&SortKeyRange::All),
                    self.limit.unwrap_or_default(),
                    self.items,
                    if self.continued { " (continued)" } else { "" },
                    if self.more { " (more)" } else { "" },
                )
            }
            OpKind::Transact => write!(f, "transact {} writes{failed}", self.writes.len()),
            kind => write!(
                f,
                "{kind:?} {} {} -> {}{failed}",
                self.pk,
                self.sk.as_deref().unwrap_or_default(),
                self.items
            ),
        }
    }
}

/// Recorded operations, in order, with the sums a test asks about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recording(pub Vec<Op>);

impl Recording {
    /// Items the reads returned (gets that found their item, and query pages).
    pub fn items_read(&self) -> usize {
        self.reads().map(|op| op.items).sum()
    }

    /// Read calls (gets and queries), whatever they returned.
    pub fn reads(&self) -> impl Iterator<Item = &Op> {
        self.0.iter().filter(|op| op.is_read())
    }

    /// Table scans (each reads the whole table, whatever `items` says).
    pub fn scans(&self) -> impl Iterator<Item = &Op> {
        self.0.iter().filter(|op| op.kind == OpKind::Scan)
    }

    pub fn queries(&self) -> impl Iterator<Item = &Op> {
        self.0.iter().filter(|op| op.kind == OpKind::Query)
    }

    /// Queries that continued from a cursor: a listing read past its first page.
    pub fn continued_queries(&self) -> impl Iterator<Item = &Op> {
        self.queries().filter(|op| op.continued)
    }

    pub fn writes(&self) -> impl Iterator<Item = &Op> {
        self.0.iter().filter(|op| op.is_write())
    }

    /// Items written by writes that succeeded (a transaction counts its puts and
    /// deletes, not its checks).
    pub fn items_written(&self) -> usize {
        self.writes()
            .filter(|op| op.ok)
            .map(|op| match op.kind {
                OpKind::Transact => op.writes.iter().filter(|w| w.0 != WriteKind::Check).count(),
                _ => 1,
            })
            .sum()
    }

    /// Items read per [`Op::target`], with the number of read calls:
    /// `RP#: 300 items in 2 reads; CLUSTER#: 1 item in 1 read`, largest first.
    pub fn summary(&self) -> String {
        let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for op in self.reads() {
            let entry = by.entry(op.target()).or_default();
            entry.0 += op.items;
            entry.1 += 1;
        }
        let mut rows: Vec<_> = by.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows.iter()
            .map(|(target, (items, calls))| format!("{target}: {items} items in {calls} reads"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Wraps an item store and records every operation passed through it (see the module
/// documentation). Clones share the log.
#[derive(Clone)]
pub struct RecordingItemStore {
    inner: Arc<dyn ItemStore>,
    log: Arc<Mutex<Vec<Op>>>,
}

impl RecordingItemStore {
    pub fn new(inner: Arc<dyn ItemStore>) -> Self {
        RecordingItemStore {
            inner,
            log: Arc::default(),
        }
    }

    fn log(&self) -> MutexGuard<'_, Vec<Op>> {
        // A test that panicked mid-record poisons nothing worth keeping from others.
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, op: Op) {
        self.log().push(op);
    }

    /// Everything recorded since the last `take` or `clear`; the log starts again empty.
    pub fn take(&self) -> Recording {
        Recording(std::mem::take(&mut *self.log()))
    }

    /// A copy of what is recorded so far (the log is kept).
    pub fn snapshot(&self) -> Recording {
        Recording(self.log().clone())
    }

    /// Forgets what is recorded so far.
    pub fn clear(&self) {
        self.log().clear();
    }
}

#[async_trait]
impl ItemStore for RecordingItemStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let result = self.inner.get(pk, sk).await;
        let mut op = Op::new(OpKind::Get, pk);
        op.sk = Some(sk.to_string());
        op.ok = result.is_ok();
        op.items = usize::from(matches!(result, Ok(Some(_))));
        self.record(op);
        result
    }

    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Item>>> {
        let result = self.inner.get_many(keys).await;
        let mut op = Op::new(OpKind::BatchGet, keys.first().map_or("", |(pk, _)| pk.as_str()));
        op.sk = keys.first().map(|(_, sk)| sk.clone());
        match &result {
            Ok(found) => op.items = found.iter().flatten().count(),
            Err(_) => op.ok = false,
        }
        self.record(op);
        result
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<()> {
        let mut op = Op::new(OpKind::Put, &item.pk);
        op.sk = Some(item.sk.clone());
        let result = self.inner.put(item, condition).await;
        op.ok = result.is_ok();
        self.record(op);
        result
    }

    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> Result<()> {
        let result = self.inner.delete(pk, sk, condition).await;
        let mut op = Op::new(OpKind::Delete, pk);
        op.sk = Some(sk.to_string());
        op.ok = result.is_ok();
        self.record(op);
        result
    }

    async fn query(&self, query: Query) -> Result<Page> {
        let mut op = Op::new(OpKind::Query, &query.pk);
        op.index = query.index;
        op.range = Some(query.range.clone());
        op.limit = Some(query.limit);
        op.continued = query.cursor.is_some();
        let result = self.inner.query(query).await;
        match &result {
            Ok(page) => {
                op.items = page.items.len();
                op.more = page.cursor.is_some();
            }
            Err(_) => op.ok = false,
        }
        self.record(op);
        result
    }

    async fn scan_partitions_with(&self, sk: &str) -> Result<Vec<String>> {
        let result = self.inner.scan_partitions_with(sk).await;
        let mut op = Op::new(OpKind::Scan, "");
        op.sk = Some(sk.to_string());
        match &result {
            Ok(partitions) => op.items = partitions.len(),
            Err(_) => op.ok = false,
        }
        self.record(op);
        result
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<()> {
        let mut op = Op::new(OpKind::Transact, "");
        op.writes = writes
            .iter()
            .map(|w| match w {
                Write::Put { item, .. } => (WriteKind::Put, item.pk.clone(), item.sk.clone()),
                Write::Delete { pk, sk, .. } => (WriteKind::Delete, pk.clone(), sk.clone()),
                Write::Check { pk, sk, .. } => (WriteKind::Check, pk.clone(), sk.clone()),
            })
            .collect();
        let result = self.inner.transact(writes).await;
        op.ok = result.is_ok();
        self.record(op);
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing::fakes::memory_store::MemoryItemStore;

    /// An item with no index keys (built from JSON, so new index fields default to none).
    fn item(pk: &str, sk: &str) -> Item {
        serde_json::from_value(serde_json::json!({ "pk": pk, "sk": sk, "version": 1, "body": {} })).unwrap()
    }

    fn query(prefix: &str, limit: u32, cursor: Option<crate::ports::item_store::Cursor>) -> Query {
        Query {
            index: None,
            pk: "ORG#o".into(),
            range: SortKeyRange::BeginsWith(prefix.into()),
            limit,
            ascending: true,
            cursor,
        }
    }

    #[tokio::test]
    async fn every_operation_is_recorded_with_what_it_read() {
        let store = RecordingItemStore::new(Arc::new(MemoryItemStore::default()));
        for i in 0..5 {
            store
                .put(item("ORG#o", &format!("RP#{i}")), Condition::NotExists)
                .await
                .unwrap();
        }
        store.put(item("ORG#o", "ORG"), Condition::None).await.unwrap();
        assert_eq!(store.take().items_written(), 6);
        assert!(store.snapshot().0.is_empty(), "take empties the log");

        assert!(store.get("ORG#o", "ORG").await.unwrap().is_some());
        assert!(store.get("ORG#o", "CLUSTER#x").await.unwrap().is_none());
        let first = store.query(query("RP#", 2, None)).await.unwrap();
        store.query(query("RP#", 2, first.cursor)).await.unwrap();
        let failed = store.put(item("ORG#o", "ORG"), Condition::NotExists).await;
        assert!(failed.is_err());
        store
            .transact(vec![
                Write::Delete {
                    pk: "ORG#o".into(),
                    sk: "RP#0".into(),
                    condition: Condition::Exists,
                },
                Write::Check {
                    pk: "ORG#o".into(),
                    sk: "ORG".into(),
                    condition: Condition::Exists,
                },
            ])
            .await
            .unwrap();

        let ops = store.take();
        assert_eq!(ops.0.len(), 6);
        assert_eq!(ops.items_read(), 1 + 2 + 2, "one get hit, two pages of two");
        assert_eq!(ops.reads().count(), 4);
        assert_eq!(ops.queries().count(), 2);
        assert_eq!(ops.continued_queries().count(), 1);
        let first_query = ops.queries().next().unwrap();
        assert_eq!(first_query.limit, Some(2));
        assert!(first_query.more && !first_query.continued);
        assert_eq!(first_query.range, Some(SortKeyRange::BeginsWith("RP#".into())));
        assert_eq!(ops.writes().count(), 2);
        assert!(!ops.0[4].ok, "the failed put is recorded as failed");
        assert_eq!(ops.items_written(), 1, "the delete; not the check, not the failed put");
        assert_eq!(
            ops.summary(),
            "RP#: 4 items in 2 reads; ORG: 1 items in 1 reads; CLUSTER#: 0 items in 1 reads"
        );
    }

    #[tokio::test]
    async fn a_scan_is_recorded_as_one() {
        let store = RecordingItemStore::new(Arc::new(MemoryItemStore::default()));
        store.put(item("ORG#a", "ORG"), Condition::NotExists).await.unwrap();
        store
            .put(item("ORG#a", "POLICY#p"), Condition::NotExists)
            .await
            .unwrap();
        store.clear();
        assert_eq!(store.scan_partitions_with("ORG").await.unwrap(), ["ORG#a"]);
        let ops = store.take();
        assert_eq!(ops.scans().count(), 1);
        assert_eq!(ops.reads().count(), 1, "a scan is a read");
        assert_eq!(ops.queries().count(), 0);
    }

    #[tokio::test]
    async fn clones_share_the_log_and_clear_forgets_it() {
        let store = RecordingItemStore::new(Arc::new(MemoryItemStore::default()));
        let other = store.clone();
        other.get("ORG#o", "ORG").await.unwrap();
        assert_eq!(store.snapshot().reads().count(), 1);
        store.clear();
        assert!(other.take().0.is_empty());
    }

    #[test]
    fn targets_cut_ids_off() {
        let mut get = Op::new(OpKind::Get, "ORG#o");
        get.sk = Some("CLUSTER#cl_1".into());
        assert_eq!(get.target(), "CLUSTER#");
        let mut gsi = Op::new(OpKind::Query, "RPEXPIRY");
        gsi.index = Some(Index::Gsi2);
        assert_eq!(gsi.target(), "Gsi2 RPEXPIRY");
        let mut all = Op::new(OpKind::Query, "ORG#o");
        all.range = Some(SortKeyRange::All);
        assert_eq!(all.target(), "ORG# (all)");
    }
}
