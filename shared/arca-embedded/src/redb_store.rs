//! [`ItemStore`] on a redb file: the table of single-machine mode.
//!
//! Layout (one redb file):
//! - `items`: `(pk, sk) -> Item as JSON`.
//! - `gsi1`, `gsi2`, `gsi3`: `(index pk, index sk, pk, sk) -> ()`, one entry per item that has a
//!   key for that index. A range scan over this key *is* the index order of the port:
//!   byte-wise on the index sort key, ties broken by the table key ascending; a
//!   descending query is the exact reverse (as DynamoDB and moto do it).
//!
//! Every write runs in one redb write transaction that updates the item and its index
//! entries together, so an index never points at a missing item or a stale key.
//!
//! Keys are stored as byte strings rather than `&str` so that range bounds which are not
//! valid UTF-8 (the successor of a prefix) can be expressed; every stored key is UTF-8.
//!
//! redb is synchronous and a write transaction ends in an fsync. Each operation therefore
//! runs whole on tokio's blocking pool (`spawn_blocking`): a commit never stalls a runtime
//! worker, and a transaction never spans an `.await`. redb serialises write transactions
//! itself, which gives the all-or-nothing, condition-then-write atomicity the port needs.

use std::cmp::Ordering;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Weak};

use arca_core::ports::item_store::{
    Condition, Cursor, Index, IndexKey, Item, ItemStore, Page, Query, SortKeyRange, Write,
};
use arca_core::store::checks::{check_batch_get, check_item, check_key, check_query, check_transaction};
use arca_core::{Error, Result};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};

type TableKey = (&'static [u8], &'static [u8]);
type IndexEntry = (&'static [u8], &'static [u8], &'static [u8], &'static [u8]);

const ITEMS: TableDefinition<TableKey, &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<IndexEntry, ()> = TableDefinition::new("gsi1");
const GSI2: TableDefinition<IndexEntry, ()> = TableDefinition::new("gsi2");
const GSI3: TableDefinition<IndexEntry, ()> = TableDefinition::new("gsi3");

fn index_table(index: Index) -> TableDefinition<'static, IndexEntry, ()> {
    match index {
        Index::Gsi1 => GSI1,
        Index::Gsi2 => GSI2,
        Index::Gsi3 => GSI3,
    }
}

/// The storage port on a redb file. Cheap to clone; clones share the open database.
#[derive(Clone)]
pub struct RedbItemStore {
    db: Arc<Database>,
}

/// See [`RedbItemStore::lease`].
#[derive(Debug)]
pub struct StoreLease(Weak<Database>);

impl StoreLease {
    /// Whether the database is closed (no store clone is left).
    pub fn is_released(&self) -> bool {
        self.0.strong_count() == 0
    }
}

impl std::fmt::Debug for RedbItemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbItemStore").finish_non_exhaustive()
    }
}

/// redb failures are I/O or corruption of the local file: retrying the same call will
/// not help, so they are permanent.
fn storage(err: impl Into<redb::Error>) -> Error {
    Error::permanent(err.into())
}

fn corrupt(what: String) -> Error {
    Error::permanent(format!("corrupt item store: {what}"))
}

impl RedbItemStore {
    /// Opens the database file at `path`, creating it (and its tables) if needed.
    ///
    /// Synchronous: it is called once while wiring the process, before serving. A file
    /// can be open only once at a time (redb holds a lock), so one process owns it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Database::create(path.as_ref()).map_err(storage)?;
        // Create every table up front, so read transactions never meet a missing table.
        let tx = db.begin_write().map_err(storage)?;
        {
            tx.open_table(ITEMS).map_err(storage)?;
            tx.open_table(GSI1).map_err(storage)?;
            tx.open_table(GSI2).map_err(storage)?;
            tx.open_table(GSI3).map_err(storage)?;
        }
        tx.commit().map_err(storage)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// A handle that tells when every clone of this store is gone, and with them the
    /// file's lock: a process reopening the same file (a restart in place) waits on it,
    /// since a connection task can drop its clone of the state just after the server
    /// says it stopped.
    pub fn lease(&self) -> StoreLease {
        StoreLease(Arc::downgrade(&self.db))
    }

    /// Every distinct partition key in the table, in order. Single-machine mode uses it
    /// to find its tenants at start-up; it is not on the port because on DynamoDB it
    /// would be a full-table scan. A scan here too, which is fine at one machine's scale.
    pub async fn partition_keys(&self) -> Result<Vec<String>> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(storage)?;
            let table = tx.open_table(ITEMS).map_err(storage)?;
            let mut keys: Vec<String> = Vec::new();
            for entry in table.iter().map_err(storage)? {
                let (key, _) = entry.map_err(storage)?;
                let (pk, _) = key.value();
                let pk = std::str::from_utf8(pk).map_err(|e| corrupt(format!("partition key: {e}")))?;
                if keys.last().map(String::as_str) != Some(pk) {
                    keys.push(pk.to_owned());
                }
            }
            Ok(keys)
        })
        .await
    }

    /// Runs `f` on the blocking pool with the database.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| Error::permanent(format!("item store task failed: {e}")))?
    }
}

// ----- validation: arca_core::store::checks, shared with the DynamoDB adapter ----------

/// Whether `condition` holds for the stored version (`None` when absent).
fn holds(condition: Condition, stored: Option<u64>) -> bool {
    match condition {
        Condition::None => true,
        Condition::NotExists => stored.is_none(),
        Condition::Exists => stored.is_some(),
        Condition::Version(v) => stored == Some(v),
    }
}

// ----- the write path -----------------------------------------------------------------

struct Tables<'tx> {
    items: Table<'tx, TableKey, &'static [u8]>,
    gsi1: Table<'tx, IndexEntry, ()>,
    gsi2: Table<'tx, IndexEntry, ()>,
    gsi3: Table<'tx, IndexEntry, ()>,
}

impl<'tx> Tables<'tx> {
    fn open(tx: &'tx redb::WriteTransaction) -> Result<Self> {
        Ok(Self {
            items: tx.open_table(ITEMS).map_err(storage)?,
            gsi1: tx.open_table(GSI1).map_err(storage)?,
            gsi2: tx.open_table(GSI2).map_err(storage)?,
            gsi3: tx.open_table(GSI3).map_err(storage)?,
        })
    }

    fn index(&mut self, index: Index) -> &mut Table<'tx, IndexEntry, ()> {
        match index {
            Index::Gsi1 => &mut self.gsi1,
            Index::Gsi2 => &mut self.gsi2,
            Index::Gsi3 => &mut self.gsi3,
        }
    }

    fn load(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let found = self.items.get((pk.as_bytes(), sk.as_bytes())).map_err(storage)?;
        found.map(|guard| decode_item(guard.value())).transpose()
    }

    /// Fails with the position-free message; transactions add the write's position.
    fn check(&self, pk: &str, sk: &str, condition: Condition) -> Result<Option<Item>> {
        let stored = self.load(pk, sk)?;
        if holds(condition, stored.as_ref().map(|i| i.version)) {
            Ok(stored)
        } else {
            Err(Error::conflict(format!("({pk}, {sk}): condition failed")))
        }
    }

    fn remove_index_entries(&mut self, item: &Item) -> Result<()> {
        index_entries(item, |index, entry| {
            self.index(index).remove(entry).map_err(storage)?;
            Ok(())
        })
    }

    fn put(&mut self, item: &Item, condition: Condition) -> Result<()> {
        if let Some(old) = self.check(&item.pk, &item.sk, condition)? {
            self.remove_index_entries(&old)?;
        }
        index_entries(item, |index, entry| {
            self.index(index).insert(entry, ()).map_err(storage)?;
            Ok(())
        })?;
        let body = serde_json::to_vec(item).map_err(Error::permanent)?;
        self.items
            .insert((item.pk.as_bytes(), item.sk.as_bytes()), body.as_slice())
            .map_err(storage)?;
        Ok(())
    }

    fn delete(&mut self, pk: &str, sk: &str, condition: Condition) -> Result<()> {
        if let Some(old) = self.check(pk, sk, condition)? {
            self.remove_index_entries(&old)?;
            self.items.remove((pk.as_bytes(), sk.as_bytes())).map_err(storage)?;
        }
        Ok(())
    }
}

fn decode_item(bytes: &[u8]) -> Result<Item> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("undecodable item: {e}")))
}

/// Runs `f` on the tables in one write transaction, committed only if `f` succeeds
/// (dropping an uncommitted redb transaction aborts it).
fn write_tx(db: &Database, f: impl FnOnce(&mut Tables<'_>) -> Result<()>) -> Result<()> {
    let tx = db.begin_write().map_err(storage)?;
    {
        let mut tables = Tables::open(&tx)?;
        f(&mut tables)?;
    }
    tx.commit().map_err(storage)
}

fn transact_blocking(db: &Database, writes: &[Write]) -> Result<()> {
    let total = writes.len();
    write_tx(db, |tables| {
        // Keys are distinct (checked before), so checking each condition just before its
        // own write sees the same state as checking them all up front.
        for (i, write) in writes.iter().enumerate() {
            let outcome = match write {
                Write::Put { item, condition } => tables.put(item, *condition),
                Write::Delete { pk, sk, condition } => tables.delete(pk, sk, *condition),
                Write::Check { pk, sk, condition } => tables.check(pk, sk, *condition).map(drop),
            };
            outcome.map_err(|e| match e {
                Error::Conflict { .. } => Error::conflict(format!("write {} of {total}: condition failed", i + 1)),
                other => other,
            })?;
        }
        Ok(())
    })
}

// ----- the read path ------------------------------------------------------------------

/// A key of the items table (2 parts) or of an index table (4 parts), compared the way
/// redb compares tuples of byte strings: part by part, each byte-wise.
type Parts = Vec<Vec<u8>>;

/// The smallest byte string greater than every string that starts with `prefix`, or
/// `None` when there is none (the prefix is empty or all 0xFF, which UTF-8 never is).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bound = prefix.to_vec();
    while let Some(last) = bound.pop() {
        if last < u8::MAX {
            bound.push(last + 1);
            return Some(bound);
        }
    }
    None
}

/// The smallest byte string greater than `s`.
fn successor(s: &[u8]) -> Vec<u8> {
    let mut next = s.to_vec();
    next.push(0);
    next
}

/// The key span a query reads, before the cursor: `[lower, upper)` over `Parts`, where
/// `width` is the number of parts of the table's keys (the trailing ones are empty, the
/// smallest value, so a bound on the sort key covers every table key under it).
fn span(partition: &str, range: &SortKeyRange, width: usize) -> Result<(Parts, Parts)> {
    let pad = |first: Vec<u8>, second: Vec<u8>| {
        let mut parts = vec![first, second];
        parts.resize(width, Vec::new());
        parts
    };
    let p = partition.as_bytes();
    let end_of_partition = pad(successor(p), Vec::new());
    let (from, to): (&[u8], Option<Vec<u8>>) = match range {
        SortKeyRange::All => (b"", None),
        SortKeyRange::BeginsWith(prefix) => (prefix.as_bytes(), prefix_successor(prefix.as_bytes())),
        SortKeyRange::LessThan(bound) => (b"", Some(bound.as_bytes().to_vec())),
        SortKeyRange::Between(from, to) => {
            if from > to {
                return Err(Error::invalid(
                    "range",
                    format!("Between({from:?}, {to:?}): from is after to"),
                ));
            }
            (from.as_bytes(), Some(successor(to.as_bytes())))
        }
    };
    let lower = pad(p.to_vec(), from.to_vec());
    let upper = to.map_or(end_of_partition, |to| pad(p.to_vec(), to));
    Ok((lower, upper))
}

/// The position of the cursor in the table (or index) key order.
fn cursor_parts(query: &Query, cursor: &Cursor) -> Parts {
    let table_key = vec![cursor.pk.as_bytes().to_vec(), cursor.sk.as_bytes().to_vec()];
    match (&query.index, &cursor.index_key) {
        (Some(_), Some(key)) => {
            let mut parts = vec![key.pk.as_bytes().to_vec(), key.sk.as_bytes().to_vec()];
            parts.extend(table_key);
            parts
        }
        _ => table_key,
    }
}

/// The bounds of the scan: the span, narrowed to strictly after the cursor in the
/// direction of the query. `None` when nothing can match.
fn scan_bounds(query: &Query, width: usize) -> Result<Option<(Bound<Parts>, Bound<Parts>)>> {
    let (lower, upper) = span(&query.pk, &query.range, width)?;
    let mut lower = Bound::Included(lower);
    let mut upper = Bound::Excluded(upper);
    if let Some(cursor) = &query.cursor {
        let at = cursor_parts(query, cursor);
        if query.ascending {
            if let Bound::Included(l) = &lower
                && at >= *l
            {
                lower = Bound::Excluded(at);
            }
        } else if let Bound::Excluded(u) = &upper
            && at < *u
        {
            upper = Bound::Excluded(at);
        }
    }
    let empty = match (&lower, &upper) {
        (Bound::Included(l), Bound::Excluded(u)) => l >= u,
        (Bound::Excluded(l), Bound::Excluded(u)) => l.cmp(u) != Ordering::Less,
        _ => false,
    };
    Ok((!empty).then_some((lower, upper)))
}

fn as_pair(parts: &Parts) -> (&[u8], &[u8]) {
    (&parts[0], &parts[1])
}

fn as_quad(parts: &Parts) -> (&[u8], &[u8], &[u8], &[u8]) {
    (&parts[0], &parts[1], &parts[2], &parts[3])
}

fn map_bound<'a, T>(bound: &'a Bound<Parts>, f: impl Fn(&'a Parts) -> T) -> Bound<T> {
    match bound {
        Bound::Included(p) => Bound::Included(f(p)),
        Bound::Excluded(p) => Bound::Excluded(f(p)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| corrupt(format!("non-UTF-8 key: {e}")))
}

/// Takes up to `limit` results from `entries` (in query order), and a cursor if one
/// more result exists.
fn page_of(entries: impl Iterator<Item = Result<(Item, Option<IndexKey>)>>, limit: u32) -> Result<Page> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut last_index_key = None;
    let mut more = false;
    for entry in entries {
        let (item, index_key) = entry?;
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(item);
        last_index_key = index_key;
    }
    let cursor = match items.last() {
        Some(last) if more => Some(Cursor {
            pk: last.pk.clone(),
            sk: last.sk.clone(),
            index_key: last_index_key,
        }),
        _ => None,
    };
    Ok(Page { items, cursor })
}

fn query_blocking(db: &Database, query: &Query) -> Result<Page> {
    let tx = db.begin_read().map_err(storage)?;
    let items = tx.open_table(ITEMS).map_err(storage)?;
    match query.index {
        None => {
            let Some((lower, upper)) = scan_bounds(query, 2)? else {
                return Ok(empty_page());
            };
            let range = items
                .range((map_bound(&lower, as_pair), map_bound(&upper, as_pair)))
                .map_err(storage)?;
            let range = in_order(range, query.ascending);
            let entries = range.map(|entry| {
                let (_, value) = entry.map_err(storage)?;
                Ok((decode_item(value.value())?, None))
            });
            page_of(entries, query.limit)
        }
        Some(index) => {
            let Some((lower, upper)) = scan_bounds(query, 4)? else {
                return Ok(empty_page());
            };
            let table = tx.open_table(index_table(index)).map_err(storage)?;
            let range = table
                .range((map_bound(&lower, as_quad), map_bound(&upper, as_quad)))
                .map_err(storage)?;
            let range = in_order(range, query.ascending);
            let entries = range.map(|entry| {
                let (key, _) = entry.map_err(storage)?;
                let (ipk, isk, pk, sk) = key.value();
                let found = items.get((pk, sk)).map_err(storage)?;
                let Some(value) = found else {
                    return Err(corrupt(format!("{index:?} entry without its item ({pk:?}, {sk:?})")));
                };
                Ok((
                    decode_item(value.value())?,
                    Some(IndexKey {
                        pk: utf8(ipk)?,
                        sk: utf8(isk)?,
                    }),
                ))
            });
            page_of(entries, query.limit)
        }
    }
}

fn get_blocking(db: &Database, pk: &str, sk: &str) -> Result<Option<Item>> {
    let tx = db.begin_read().map_err(storage)?;
    let items = tx.open_table(ITEMS).map_err(storage)?;
    let found = items.get((pk.as_bytes(), sk.as_bytes())).map_err(storage)?;
    found.map(|guard| decode_item(guard.value())).transpose()
}

#[async_trait]
impl ItemStore for RedbItemStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        check_key("pk", pk)?;
        check_key("sk", sk)?;
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.blocking(move |db| get_blocking(db, &pk, &sk)).await
    }

    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Item>>> {
        check_batch_get(keys)?;
        let keys = keys.to_vec();
        // One read transaction for the whole batch: one snapshot, one trip to the pool.
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(storage)?;
            let items = tx.open_table(ITEMS).map_err(storage)?;
            keys.iter()
                .map(|(pk, sk)| {
                    let found = items.get((pk.as_bytes(), sk.as_bytes())).map_err(storage)?;
                    found.map(|guard| decode_item(guard.value())).transpose()
                })
                .collect()
        })
        .await
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<()> {
        check_item(&item)?;
        self.blocking(move |db| write_tx(db, |tables| tables.put(&item, condition)))
            .await
    }

    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> Result<()> {
        check_key("pk", pk)?;
        check_key("sk", sk)?;
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.blocking(move |db| write_tx(db, |tables| tables.delete(&pk, &sk, condition)))
            .await
    }

    async fn query(&self, query: Query) -> Result<Page> {
        check_query(&query)?;
        self.blocking(move |db| query_blocking(db, &query)).await
    }

    async fn scan_partitions_with(&self, sk: &str) -> Result<Vec<String>> {
        let sk = sk.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(storage)?;
            let table = tx.open_table(ITEMS).map_err(storage)?;
            let mut partitions = Vec::new();
            for entry in table.iter().map_err(storage)? {
                let (key, _) = entry.map_err(storage)?;
                let (pk, item_sk) = key.value();
                if item_sk == sk.as_bytes() {
                    let pk = std::str::from_utf8(pk).map_err(|e| corrupt(format!("partition key: {e}")))?;
                    partitions.push(pk.to_owned());
                }
            }
            Ok(partitions)
        })
        .await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<()> {
        check_transaction(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        self.blocking(move |db| transact_blocking(db, &writes)).await
    }
}

/// Calls `f` with each index `item` is in and its entry there: (index pk, index sk, pk, sk).
fn index_entries(item: &Item, mut f: impl FnMut(Index, (&[u8], &[u8], &[u8], &[u8])) -> Result<()>) -> Result<()> {
    for index in Index::ALL {
        if let Some(key) = item.index_key(index) {
            f(
                index,
                (
                    key.pk.as_bytes(),
                    key.sk.as_bytes(),
                    item.pk.as_bytes(),
                    item.sk.as_bytes(),
                ),
            )?;
        }
    }
    Ok(())
}

/// A key range forwards, or backwards for a descending query.
fn in_order<'a, I>(range: I, ascending: bool) -> Box<dyn Iterator<Item = I::Item> + 'a>
where
    I: DoubleEndedIterator + 'a,
{
    if ascending {
        Box::new(range)
    } else {
        Box::new(range.rev())
    }
}

fn empty_page() -> Page {
    Page {
        items: Vec::new(),
        cursor: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(range: SortKeyRange) -> Query {
        Query {
            index: None,
            pk: "P".into(),
            range,
            limit: 10,
            ascending: true,
            cursor: None,
        }
    }

    #[test]
    fn the_prefix_successor_is_the_first_string_past_the_prefix() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }

    #[test]
    fn spans_cover_exactly_the_sort_key_range() {
        let parts = |a: &str, b: &[u8]| vec![a.as_bytes().to_vec(), b.to_vec()];
        assert_eq!(
            span("P", &SortKeyRange::All, 2).unwrap(),
            (parts("P", b""), parts("P\0", b""))
        );
        assert_eq!(
            span("P", &SortKeyRange::BeginsWith("a#".into()), 2).unwrap(),
            (parts("P", b"a#"), parts("P", b"a$"))
        );
        assert_eq!(
            span("P", &SortKeyRange::LessThan("m".into()), 2).unwrap(),
            (parts("P", b""), parts("P", b"m"))
        );
        assert_eq!(
            span("P", &SortKeyRange::Between("b".into(), "d".into()), 2).unwrap(),
            (parts("P", b"b"), parts("P", b"d\0"))
        );
        let (lower, upper) = span("P", &SortKeyRange::All, 4).unwrap();
        assert_eq!(lower.len(), 4);
        assert_eq!(upper, vec![b"P\0".to_vec(), vec![], vec![], vec![]]);
        assert!(matches!(
            span("P", &SortKeyRange::Between("d".into(), "b".into()), 2),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn a_cursor_narrows_the_scan_to_strictly_after_it() {
        let mut q = query(SortKeyRange::All);
        q.cursor = Some(Cursor {
            pk: "P".into(),
            sk: "k".into(),
            index_key: None,
        });
        let (lower, upper) = scan_bounds(&q, 2).unwrap().unwrap();
        assert_eq!(lower, Bound::Excluded(vec![b"P".to_vec(), b"k".to_vec()]));
        assert_eq!(upper, Bound::Excluded(vec![b"P\0".to_vec(), vec![]]));

        q.ascending = false;
        let (lower, upper) = scan_bounds(&q, 2).unwrap().unwrap();
        assert_eq!(lower, Bound::Included(vec![b"P".to_vec(), vec![]]));
        assert_eq!(upper, Bound::Excluded(vec![b"P".to_vec(), b"k".to_vec()]));

        // A cursor at the upper end of an ascending scan leaves nothing to read.
        let mut q = query(SortKeyRange::LessThan("k".into()));
        q.cursor = Some(Cursor {
            pk: "P".into(),
            sk: "k".into(),
            index_key: None,
        });
        assert!(scan_bounds(&q, 2).unwrap().is_none());
    }
}
