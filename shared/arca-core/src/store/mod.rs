//! Storage: the port ([`item`]) and, above it, the typed tenant-scoped [`Store`].
//!
//! The typed store is the only code that turns entities into items. It enforces
//! tenancy (every tenant-owned item lives under `ORG#<orgId>`, so another org's id is
//! simply not there: NotFound), versions (every write sets `version + 1` under a
//! `Version`/`NotExists` condition), and the opaque cursors of every listing.

pub mod checks;
mod cross_tenant;
mod findings;
mod inventory;
pub mod keys;
pub mod page;
mod records;
mod relations;

use std::fmt::Display;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::page::{Listing, PageRequest, decode_cursor, encode_cursor};
use crate::ids::{ClusterId, DestinationId, OrgId, RestoreId};
use crate::model::auth::ApiKey;
use crate::model::backup::BackupDefinition;
use crate::model::cloud::account::CloudAccount;
use crate::model::cluster::Cluster;
use crate::model::job::Job;
use crate::model::rds::RdsRecoveryPoint;
use crate::model::recovery::RecoveryPoint;
use crate::model::secret::SecretHash;
use crate::ports::item_store::{Condition, Cursor, Index, IndexKey, Item, ItemStore, Query, SortKeyRange, Write};
use crate::{Error, Result};

/// An entity the typed store keeps: how it maps onto an [`Item`].
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync {
    type Id: Display + Send + Sync;
    /// The entity's name in messages ("policy pol_… not found").
    const WHAT: &'static str;
    /// The sort-key prefix shared by every record of this kind in an org's partition.
    const SK_PREFIX: &'static str;

    fn sk_for(id: &Self::Id) -> String;
    fn id(&self) -> &Self::Id;
    fn org_id(&self) -> &OrgId;
    fn version(&self) -> u64;
    fn set_version(&mut self, version: u64);

    fn gsi1(&self) -> Option<IndexKey> {
        None
    }
    fn gsi2(&self) -> Option<IndexKey> {
        None
    }
    fn gsi3(&self) -> Option<IndexKey> {
        None
    }
    /// Unix seconds after which the store may remove the item (DynamoDB TTL); none by
    /// default.
    fn expires_at(&self) -> Option<i64> {
        None
    }
    /// Fields kept only in the item's index keys, restored after reading the body.
    fn restore_from_item(&mut self, _item: &Item) -> Result<()> {
        Ok(())
    }
}

fn to_item<T: Record>(record: &T) -> Result<Item> {
    Ok(Item {
        pk: keys::org_pk(record.org_id()),
        sk: T::sk_for(record.id()),
        gsi1: record.gsi1(),
        gsi2: record.gsi2(),
        gsi3: record.gsi3(),
        version: record.version(),
        expires_at: record.expires_at(),
        body: serde_json::to_value(record).map_err(Error::permanent)?,
    })
}

fn from_item<T: Record>(item: &Item) -> Result<T> {
    // Deserialized from the borrowed document: no copy of the body per record read.
    let mut record: T = T::deserialize(&item.body).map_err(|e| {
        Error::permanent(format!(
            "stored {} at {}/{} does not parse: {e}",
            T::WHAT,
            item.pk,
            item.sk
        ))
    })?;
    // The item's version is the truth; the body's copy is informational.
    record.set_version(item.version);
    record.restore_from_item(item)?;
    Ok(record)
}

/// The generation of index keys this version writes: raised whenever a record kind gains
/// or changes an index key, so [`Store::reindex_all`] runs again after the upgrade.
/// 2: GSI3, the recovery points' GSI1 relation, RDS definitions in GSI2 `RDSBKPDEF`.
pub const INDEX_GENERATION: u64 = 2;

type IndexKeys = (Option<IndexKey>, Option<IndexKey>, Option<IndexKey>);

/// The index keys this version gives a stored item, for the kinds whose indexes changed
/// over time (`None`: a kind whose keys never changed).
fn fresh_index_keys(item: &Item) -> Result<Option<IndexKeys>> {
    fn keys_of<T: Record>(item: &Item) -> Result<Option<IndexKeys>> {
        let record: T = from_item(item)?;
        Ok(Some((record.gsi1(), record.gsi2(), record.gsi3())))
    }
    let sk = item.sk.as_str();
    if sk.starts_with(keys::RECOVERY_POINT_SK_PREFIX) {
        keys_of::<RecoveryPoint>(item)
    } else if sk.starts_with(keys::JOB_SK_PREFIX) {
        keys_of::<Job>(item)
    } else if sk.starts_with(keys::CLUSTER_SK_PREFIX) {
        keys_of::<Cluster>(item)
    } else if sk.starts_with(keys::BACKUP_SK_PREFIX) {
        keys_of::<BackupDefinition>(item)
    } else if sk.starts_with(keys::RDS_RECOVERY_POINT_SK_PREFIX) {
        keys_of::<RdsRecoveryPoint>(item)
    } else if sk.starts_with(keys::RDS_BACKUP_SK_PREFIX) {
        keys_of::<crate::model::rds::RdsBackupDefinition>(item)
    } else {
        Ok(None)
    }
}

fn not_found<T: Record>(id: &T::Id) -> Error {
    Error::not_found(format!("{} {id}", T::WHAT))
}

/// Where a listing reads: one partition of the table (`index: None`) or of an index, the
/// sort keys under `prefix`.
struct Slice {
    index: Option<Index>,
    pk: String,
    prefix: String,
}

impl Slice {
    fn table(org: &OrgId, prefix: &str) -> Self {
        Slice {
            index: None,
            pk: keys::org_pk(org),
            prefix: prefix.to_owned(),
        }
    }

    fn index(index: Index, pk: String, prefix: &str) -> Self {
        Slice {
            index: Some(index),
            pk,
            prefix: prefix.to_owned(),
        }
    }
}

/// The recovery points whose data is in a destination (GSI1's in-org relation).
fn points_in_slice(org: &OrgId, destination: &DestinationId) -> Slice {
    Slice::index(
        Index::Gsi1,
        keys::destination_relations_pk(org, destination),
        keys::RECOVERY_POINT_SK_PREFIX,
    )
}

/// Writes that must happen together, built from typed records and committed with
/// [`Store::commit`]. Versions are set on the records as they are added.
#[derive(Debug, Default)]
pub struct Tx {
    writes: Vec<Write>,
}

impl Tx {
    pub fn new() -> Self {
        Tx::default()
    }

    /// Creates `record` (version 1) unless something is already at its key.
    pub fn create<T: Record>(&mut self, record: &mut T) -> Result<&mut Self> {
        record.set_version(1);
        self.writes.push(Write::Put {
            item: to_item(record)?,
            condition: Condition::NotExists,
        });
        Ok(self)
    }

    /// Replaces `record` if its stored version is `expected`; sets it to `expected + 1`.
    pub fn update<T: Record>(&mut self, record: &mut T, expected: u64) -> Result<&mut Self> {
        record.set_version(expected + 1);
        self.writes.push(Write::Put {
            item: to_item(record)?,
            condition: Condition::Version(expected),
        });
        Ok(self)
    }

    pub fn delete<T: Record>(&mut self, org: &OrgId, id: &T::Id, expected: u64) -> &mut Self {
        self.writes.push(Write::Delete {
            pk: keys::org_pk(org),
            sk: T::sk_for(id),
            condition: Condition::Version(expected),
        });
        self
    }

    /// Writes nothing, but fails the transaction unless the record is at `expected`.
    pub fn check<T: Record>(&mut self, org: &OrgId, id: &T::Id, expected: u64) -> &mut Self {
        self.writes.push(Write::Check {
            pk: keys::org_pk(org),
            sk: T::sk_for(id),
            condition: Condition::Version(expected),
        });
        self
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// The typed, tenant-scoped store. Every method takes the org it acts in, except the
/// three that are cross-tenant by design (marked so in their names and docs).
#[derive(Clone)]
pub struct Store {
    items: Arc<dyn ItemStore>,
}

impl Store {
    pub fn new(items: Arc<dyn ItemStore>) -> Self {
        Store { items }
    }

    pub async fn find<T: Record>(&self, org: &OrgId, id: &T::Id) -> Result<Option<T>> {
        match self.items.get(&keys::org_pk(org), &T::sk_for(id)).await? {
            Some(item) => from_item(&item).map(Some),
            None => Ok(None),
        }
    }

    /// The records at these ids, in their order (`None` where there is none), in one
    /// round trip: what a page joins in. At most a page's worth of ids.
    pub async fn find_many<T: Record>(&self, org: &OrgId, ids: &[T::Id]) -> Result<Vec<Option<T>>> {
        let pk = keys::org_pk(org);
        let keys: Vec<(String, String)> = ids.iter().map(|id| (pk.clone(), T::sk_for(id))).collect();
        self.items
            .get_many(&keys)
            .await?
            .iter()
            .map(|found| found.as_ref().map(from_item).transpose())
            .collect()
    }

    pub async fn get<T: Record>(&self, org: &OrgId, id: &T::Id) -> Result<T> {
        self.find(org, id).await?.ok_or_else(|| not_found::<T>(id))
    }

    /// Stores a new record at version 1 and returns it.
    pub async fn create<T: Record>(&self, mut record: T) -> Result<T> {
        record.set_version(1);
        match self.items.put(to_item(&record)?, Condition::NotExists).await {
            Ok(()) => Ok(record),
            Err(Error::Conflict { .. }) => Err(Error::conflict(format!("{} {} already exists", T::WHAT, record.id()))),
            Err(e) => Err(e),
        }
    }

    /// Replaces a record whose stored version is `expected`; returns it at `expected + 1`.
    /// A different stored version is `PreconditionFailed`; no record is `NotFound`.
    pub async fn update<T: Record>(&self, mut record: T, expected: u64) -> Result<T> {
        record.set_version(expected + 1);
        match self.items.put(to_item(&record)?, Condition::Version(expected)).await {
            Ok(()) => Ok(record),
            Err(Error::Conflict { .. }) => Err(self.version_failure::<T>(record.org_id(), record.id(), expected).await),
            Err(e) => Err(e),
        }
    }

    /// Deletes a record whose stored version is `expected`.
    pub async fn delete<T: Record>(&self, org: &OrgId, id: &T::Id, expected: u64) -> Result<()> {
        match self
            .items
            .delete(&keys::org_pk(org), &T::sk_for(id), Condition::Version(expected))
            .await
        {
            Ok(()) => Ok(()),
            Err(Error::Conflict { .. }) => Err(self.version_failure::<T>(org, id, expected).await),
            Err(e) => Err(e),
        }
    }

    /// A record as the caller last saw it, at version `expected` (its ETag): when it has
    /// moved on, `PreconditionFailed`; when it is gone, `NotFound`.
    pub async fn get_at<T: Record>(&self, org: &OrgId, id: &T::Id, expected: u64) -> Result<T> {
        let record = self.get::<T>(org, id).await?;
        if record.version() != expected {
            return Err(self.version_failure::<T>(org, id, expected).await);
        }
        Ok(record)
    }

    /// Why a version condition on `id` failed: it is gone, or it moved on.
    pub async fn version_failure<T: Record>(&self, org: &OrgId, id: &T::Id, expected: u64) -> Error {
        match self.items.get(&keys::org_pk(org), &T::sk_for(id)).await {
            Ok(None) => not_found::<T>(id),
            Ok(Some(item)) => Error::precondition_failed(format!(
                "{} {id} is at version {}, not {expected}: read it again",
                T::WHAT,
                item.version
            )),
            Err(e) => e,
        }
    }

    /// Commits a transaction. A failed condition is `Conflict` (the caller knows which
    /// of its records to re-read to tell a stale ETag from a concurrent change).
    pub async fn commit(&self, tx: Tx) -> Result<()> {
        self.items.transact(tx.writes).await
    }

    /// One page of an org's records of a kind, in sort-key order.
    pub async fn list<T: Record>(&self, org: &OrgId, page: &PageRequest) -> Result<Listing<T>> {
        self.list_where(org, page, true, |_: &T| true).await
    }

    /// One page of the records that pass `keep`. Filtering happens here, across as
    /// many store pages as it takes to fill the page (bounded), and the cursor marks
    /// the last record examined, so no record is skipped or repeated.
    pub async fn list_where<T: Record>(
        &self,
        org: &OrgId,
        page: &PageRequest,
        ascending: bool,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Listing<T>> {
        self.page_of(&Slice::table(org, T::SK_PREFIX), page, ascending, keep)
            .await
    }

    /// Every record of a kind in an org (for counts and reference checks of small sets).
    pub async fn list_all<T: Record>(&self, org: &OrgId) -> Result<Vec<T>> {
        self.all_with_prefix(org, T::SK_PREFIX).await
    }

    /// The upkeep of every cluster repository in one destination: a prefix of the
    /// upkeeps' keys, so it costs what the destination holds, not what the org holds.
    pub async fn upkeeps_in(
        &self,
        org: &OrgId,
        destination: &crate::ids::DestinationId,
    ) -> Result<Vec<crate::model::maintenance::RepositoryUpkeep>> {
        self.all_with_prefix(org, &keys::upkeep_destination_prefix(destination))
            .await
    }

    /// Every record of a kind in an org whose sort key starts with `prefix`.
    async fn all_with_prefix<T: Record>(&self, org: &OrgId, prefix: &str) -> Result<Vec<T>> {
        self.all_of(&Slice::table(org, prefix)).await
    }

    /// One page of the records in `slice` that pass `keep` (see [`Self::list_where`]).
    async fn page_of<T: Record>(
        &self,
        slice: &Slice,
        page: &PageRequest,
        ascending: bool,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Listing<T>> {
        let range = SortKeyRange::BeginsWith(slice.prefix.clone());
        self.collect(
            slice.index,
            slice.pk.clone(),
            &slice.prefix,
            range,
            page,
            ascending,
            keep,
        )
        .await
    }

    /// Every record in `slice`, page by page to the end.
    async fn all_of<T: Record>(&self, slice: &Slice) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .page_of(
                    slice,
                    &PageRequest::after(cursor, page::MAX_PAGE_SIZE),
                    true,
                    |_: &T| true,
                )
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(out),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn collect<T: Record>(
        &self,
        index: Option<Index>,
        pk: String,
        cursor_prefix: &str,
        range: SortKeyRange,
        page: &PageRequest,
        ascending: bool,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Listing<T>> {
        // Bounds the reads one listing may cost when a filter rejects most items.
        const MAX_ROUNDS: usize = 10;
        let limit = page.size()?;
        let mut cursor = match &page.cursor {
            Some(text) => Some(decode_cursor(text, index, &pk, cursor_prefix)?),
            None => None,
        };
        let mut items = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let result = self
                .items
                .query(Query {
                    index,
                    pk: pk.clone(),
                    range: range.clone(),
                    limit,
                    ascending,
                    cursor: cursor.clone(),
                })
                .await?;
            let more = result.cursor.is_some();
            let count = result.items.len();
            for (i, item) in result.items.into_iter().enumerate() {
                let position = Cursor {
                    pk: item.pk.clone(),
                    sk: item.sk.clone(),
                    index_key: index.and_then(|ix| item.index_key(ix).cloned()),
                };
                let record: T = from_item(&item)?;
                if keep(&record) {
                    items.push(record);
                }
                if items.len() == limit as usize {
                    let last_of_all = i + 1 == count && !more;
                    let next = if last_of_all {
                        None
                    } else {
                        Some(encode_cursor(&position)?)
                    };
                    return Ok(Listing {
                        items,
                        next_cursor: next,
                    });
                }
                cursor = Some(position);
            }
            if !more {
                return Ok(Listing {
                    items,
                    next_cursor: None,
                });
            }
            cursor = result.cursor.or(cursor);
        }
        let next = cursor.as_ref().map(encode_cursor).transpose()?;
        Ok(Listing {
            items,
            next_cursor: next,
        })
    }

    // ---- in-org relations (GSI3, and GSI1 for recovery points by destination) -----------
    //
    /// Once per index generation, for the whole table: gives every org's records this
    /// version's index keys ([`Self::reindex_org`]) and records that it did, so later calls
    /// read one item. The org listing is a scan ([`ItemStore::scan_partitions_with`]),
    /// which is why it runs once, from a background run, never a request. Returns the
    /// records re-indexed, `None` when the table was already current.
    pub async fn reindex_all(&self) -> Result<Option<usize>> {
        if let Some(marker) = self.items.get(keys::META_PK, keys::INDEX_GENERATION_SK).await?
            && marker.body["generation"].as_u64() >= Some(INDEX_GENERATION)
        {
            return Ok(None);
        }
        let mut reindexed = 0;
        for pk in self.items.scan_partitions_with(keys::ORG_SK).await? {
            if let Some(org) = keys::org_of_pk(&pk) {
                reindexed += self.reindex_org(&org).await?;
            }
        }
        let marker = Item {
            pk: keys::META_PK.to_owned(),
            sk: keys::INDEX_GENERATION_SK.to_owned(),
            gsi1: None,
            gsi2: None,
            gsi3: None,
            version: 1,
            expires_at: None,
            body: serde_json::json!({ "generation": INDEX_GENERATION }),
        };
        self.items.put(marker, Condition::None).await?;
        Ok(Some(reindexed))
    }

    /// Gives every record of the org the index keys this version computes, for records
    /// written before an index existed (GSI3 and the recovery points' GSI1 relation came
    /// later than the data of earlier deployments). Only index keys change: body, version
    /// and expiry stay as stored, and a record written meanwhile (its version moved) is
    /// left alone, its writer having indexed it. Returns how many records it re-indexed.
    pub async fn reindex_org(&self, org: &OrgId) -> Result<usize> {
        let pk = keys::org_pk(org);
        let mut cursor = None;
        let mut reindexed = 0;
        loop {
            let page = self
                .items
                .query(Query {
                    index: None,
                    pk: pk.clone(),
                    range: SortKeyRange::All,
                    limit: page::MAX_PAGE_SIZE,
                    ascending: true,
                    cursor,
                })
                .await?;
            for stored in &page.items {
                let Some(fresh) = fresh_index_keys(stored)? else {
                    continue;
                };
                let mut item = stored.clone();
                (item.gsi1, item.gsi2, item.gsi3) = fresh;
                if item == *stored {
                    continue;
                }
                match self.items.put(item, Condition::Version(stored.version)).await {
                    Ok(()) => reindexed += 1,
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(reindexed),
            }
        }
    }

    /// Up to `max` stored result batches of one restore, from batch `from_seq` on, in order.
    pub async fn restore_object_pages(
        &self,
        org: &OrgId,
        restore: &RestoreId,
        from_seq: u32,
        max: u32,
    ) -> Result<Vec<crate::model::restore::RestoreObjectsPage>> {
        let id = |seq| crate::model::restore::RestoreObjectsPageId {
            restore_id: *restore,
            seq,
        };
        let result = self
            .items
            .query(Query {
                index: None,
                pk: keys::org_pk(org),
                range: SortKeyRange::Between(
                    keys::restore_objects_sk(&id(from_seq)),
                    keys::restore_objects_sk(&id(crate::model::restore::MAX_RESULT_BATCHES)),
                ),
                limit: max.max(1),
                ascending: true,
                cursor: None,
            })
            .await?;
        result.items.iter().map(from_item).collect()
    }
}
