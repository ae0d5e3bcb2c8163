//! Inventories in parts. One account region may hold thousands of resources (a year of
//! RDS snapshots), more than one DynamoDB item takes (400 KB), so an inventory is stored
//! as its header (the `AwsInventory` record with no entries) and its entries in parts of
//! at most [`PART_BYTES`], written with the header in one transaction under the header's
//! new version. Readers take the parts of the version they read; the previous version's
//! parts are deleted in the same transaction. An inventory written before parts existed
//! keeps its entries in the header and reads as it did.

use crate::ids::{CloudAccountId, OrgId};
use crate::model::cloud::inventory::{AwsInventory, AwsInventoryId, AwsInventoryPart, AwsInventoryPartId};
use crate::store::{Store, Tx, keys};
use crate::{Error, Result};

/// The most a part's entries take, as JSON: well under DynamoDB's 400 KB item.
pub const PART_BYTES: usize = 256 * 1024;
/// The most parts one inventory has. A DynamoDB transaction carries at most 4 MB, and the
/// header and the old parts' deletions ride along.
pub const MAX_PARTS: usize = 12;
/// Reads of an inventory that a run may overtake before the reader gives up.
const CONCURRENT_READS: usize = 3;

impl Store {
    /// One region's inventory of an account, entries and all.
    pub async fn find_inventory(&self, org: &OrgId, id: &AwsInventoryId) -> Result<Option<AwsInventory>> {
        match self.find::<AwsInventory>(org, id).await? {
            Some(header) => self.with_parts(org, header).await.map(Some),
            None => Ok(None),
        }
    }

    /// Every region's inventory of one linked account, entries and all.
    pub async fn aws_inventories(&self, org: &OrgId, account: &CloudAccountId) -> Result<Vec<AwsInventory>> {
        let headers: Vec<AwsInventory> = self.all_with_prefix(org, &keys::aws_inventory_prefix(account)).await?;
        let mut out = Vec::with_capacity(headers.len());
        for header in headers {
            out.push(self.with_parts(org, header).await?);
        }
        Ok(out)
    }

    /// `header` with the entries of its parts. A run that committed between reading the
    /// header and its parts has deleted those parts: the header is read again then, so a
    /// reader never sees a run's header with another run's (or no) entries.
    async fn with_parts(&self, org: &OrgId, mut header: AwsInventory) -> Result<AwsInventory> {
        for _ in 0..CONCURRENT_READS {
            let parts = self.inventory_parts(org, &header.id, Some(header.version)).await?;
            let now = self.get::<AwsInventory>(org, &header.id).await?;
            if now.version == header.version {
                header.entries.extend(parts.into_iter().flat_map(|p| p.entries));
                return Ok(header);
            }
            header = now;
        }
        Err(Error::conflict_of(
            crate::ConflictKind::ConcurrentModification,
            format!("the inventory of {} kept changing while read", header.id),
        ))
    }

    /// Writes `inventory` over the version read (`previous`, `None` when new). Refused
    /// with `LimitExceeded` when its entries need more than [`MAX_PARTS`] parts.
    pub async fn save_inventory(&self, mut inventory: AwsInventory, previous: Option<&AwsInventory>) -> Result<()> {
        let parts = split(&inventory)?;
        let org = inventory.org_id;
        let mut tx = Tx::new();
        inventory.entries.clear();
        match previous {
            Some(p) => tx.update(&mut inventory, p.version)?,
            None => tx.create(&mut inventory)?,
        };
        for (n, entries) in parts.into_iter().enumerate() {
            let mut part = AwsInventoryPart {
                id: AwsInventoryPartId {
                    inventory: inventory.id.clone(),
                    of_version: inventory.version,
                    part: n as u32,
                },
                org_id: org,
                entries,
                version: 0,
            };
            tx.create(&mut part)?;
        }
        if let Some(p) = previous {
            for old in self.inventory_parts(&org, &p.id, Some(p.version)).await? {
                tx.delete::<AwsInventoryPart>(&org, &old.id, old.version);
            }
        }
        self.commit(tx).await
    }

    /// Deletes a region's inventory and every part of it, whatever version they belong to.
    pub async fn delete_inventory(&self, org: &OrgId, inventory: &AwsInventory) -> Result<()> {
        let mut tx = Tx::new();
        tx.delete::<AwsInventory>(org, &inventory.id, inventory.version);
        for part in self.inventory_parts(org, &inventory.id, None).await? {
            tx.delete::<AwsInventoryPart>(org, &part.id, part.version);
        }
        self.commit(tx).await
    }

    async fn inventory_parts(
        &self,
        org: &OrgId,
        id: &AwsInventoryId,
        of_version: Option<u64>,
    ) -> Result<Vec<AwsInventoryPart>> {
        self.all_with_prefix(org, &keys::aws_inventory_parts_prefix(id, of_version))
            .await
    }
}

/// The entries in parts of at most [`PART_BYTES`] of JSON each.
fn split(inventory: &AwsInventory) -> Result<Vec<Vec<crate::model::cloud::InventoryEntry>>> {
    let mut parts: Vec<Vec<_>> = Vec::new();
    let mut bytes = 0;
    let mut total = 0;
    for entry in &inventory.entries {
        let size = serde_json::to_vec(entry)
            .map_err(|e| Error::Permanent(Box::new(e)))?
            .len()
            + 1;
        total += size;
        if parts.is_empty() || bytes + size > PART_BYTES {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(last) = parts.last_mut() {
            last.push(entry.clone());
        }
    }
    if parts.len() > MAX_PARTS {
        return Err(Error::limit_exceeded(
            "inventory",
            format!(
                "the inventory of {} holds {} resources ({:.1} MiB), more than the {} MiB one region's inventory \
                 may take",
                inventory.id,
                inventory.entries.len(),
                total as f64 / (1024.0 * 1024.0),
                MAX_PARTS * PART_BYTES / (1024 * 1024),
            ),
        ));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cloud::inventory::{AwsResource, RdsInstance};

    fn inventory(n: usize, name_len: usize) -> AwsInventory {
        let mut inv = AwsInventory::empty(OrgId::new(), CloudAccountId::new(), "us-east-1");
        let found = (0..n)
            .map(|i| {
                AwsResource::RdsInstance(RdsInstance {
                    identifier: format!("{i:0name_len$}"),
                    ..Default::default()
                })
            })
            .collect();
        inv.merge(found, chrono::DateTime::UNIX_EPOCH);
        inv
    }

    #[test]
    fn parts_hold_every_entry_once_in_order_within_their_size() {
        let inv = inventory(5000, 100);
        let parts = split(&inv).unwrap();
        assert!(parts.len() > 1, "{} parts", parts.len());
        for part in &parts {
            let bytes: usize = part.iter().map(|e| serde_json::to_vec(e).unwrap().len() + 1).sum();
            assert!(bytes <= PART_BYTES, "{bytes}");
        }
        assert_eq!(parts.concat(), inv.entries);
        assert!(split(&inventory(0, 1)).unwrap().is_empty());
    }

    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn a_reader_overtaken_by_a_run_reads_that_run_whole() {
        let store = Store::new(std::sync::Arc::new(
            crate::testing::fakes::memory_store::MemoryItemStore::default(),
        ));
        let first = inventory(3000, 100);
        store.save_inventory(first.clone(), None).await.unwrap();
        let stale = store
            .find::<AwsInventory>(&first.org_id, &first.id)
            .await
            .unwrap()
            .unwrap();
        let read = store.find_inventory(&first.org_id, &first.id).await.unwrap().unwrap();
        assert_eq!(read.entries, first.entries);
        // A run commits after a reader took the header: its parts replaced the ones named.
        let mut second = inventory(2500, 100);
        second.org_id = first.org_id;
        second.id = first.id.clone();
        store.save_inventory(second.clone(), Some(&read)).await.unwrap();
        let read = store.with_parts(&first.org_id, stale).await.unwrap();
        assert_eq!(read.version, 2);
        assert_eq!(read.entries, second.entries);
    }

    #[test]
    fn an_inventory_beyond_the_parts_is_refused_naming_the_limit() {
        let err = split(&inventory(60_000, 100)).unwrap_err();
        assert!(
            matches!(&err, Error::LimitExceeded { field, message } if field == "inventory"
                && message.contains("60000 resources") && message.contains("3 MiB")),
            "{err:?}"
        );
    }
}
