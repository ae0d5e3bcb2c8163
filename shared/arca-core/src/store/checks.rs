//! Argument checks of the [`ItemStore`](crate::ports::item_store::ItemStore) port that every adapter
//! applies before touching its backend, so they all answer `Invalid` alike (DynamoDB
//! would reject some of these itself, with other words, and redb would accept them).

use std::collections::HashSet;

use crate::ports::item_store::{Index, Item, MAX_BATCH_GET, MAX_TRANSACTION_WRITES, Query, Write};
use crate::{Error, Result};

pub fn check_key(field: &str, value: &str) -> Result<()> {
    // DynamoDB rejects empty key attributes; refusing them here keeps both adapters equal.
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    Ok(())
}

pub fn check_item(item: &Item) -> Result<()> {
    check_key("pk", &item.pk)?;
    check_key("sk", &item.sk)?;
    for index in Index::ALL {
        if let Some(key) = item.index_key(index) {
            check_key(&format!("{index:?}.pk"), &key.pk)?;
            check_key(&format!("{index:?}.sk"), &key.sk)?;
        }
    }
    Ok(())
}

pub fn check_batch_get(keys: &[(String, String)]) -> Result<()> {
    if keys.len() > MAX_BATCH_GET {
        return Err(Error::invalid(
            "keys",
            format!("{} keys, at most {MAX_BATCH_GET} per batch get", keys.len()),
        ));
    }
    for (pk, sk) in keys {
        check_key("pk", pk)?;
        check_key("sk", sk)?;
    }
    Ok(())
}

pub fn write_key(write: &Write) -> (&str, &str) {
    match write {
        Write::Put { item, .. } => (&item.pk, &item.sk),
        Write::Delete { pk, sk, .. } | Write::Check { pk, sk, .. } => (pk, sk),
    }
}

pub fn check_transaction(writes: &[Write]) -> Result<()> {
    if writes.len() > MAX_TRANSACTION_WRITES {
        return Err(Error::invalid(
            "writes",
            format!(
                "{} writes, at most {MAX_TRANSACTION_WRITES} per transaction",
                writes.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, write) in writes.iter().enumerate() {
        let (pk, sk) = write_key(write);
        match write {
            Write::Put { item, .. } => check_item(item)?,
            _ => {
                check_key("pk", pk)?;
                check_key("sk", sk)?;
            }
        }
        if !seen.insert((pk, sk)) {
            return Err(Error::invalid(
                format!("writes[{i}]"),
                format!("a second write on ({pk}, {sk}): one write per key per transaction"),
            ));
        }
    }
    Ok(())
}

pub fn check_query(query: &Query) -> Result<()> {
    check_key("pk", &query.pk)?;
    if query.limit == 0 {
        return Err(Error::invalid("limit", "must be at least 1"));
    }
    if let Some(cursor) = &query.cursor {
        let partition = match (query.index, &cursor.index_key) {
            (None, _) => &cursor.pk,
            (Some(_), Some(key)) => &key.pk,
            (Some(index), None) => {
                return Err(Error::invalid(
                    "cursor",
                    format!("a cursor of a {index:?} query needs its index key"),
                ));
            }
        };
        if *partition != query.pk {
            return Err(Error::invalid(
                "cursor",
                "the cursor is from a query on another partition",
            ));
        }
    }
    Ok(())
}
