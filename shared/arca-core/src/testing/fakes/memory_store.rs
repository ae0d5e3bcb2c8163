//! A minimal in-memory [`ItemStore`] for this crate's own unit tests only. The real
//! adapters are verified by `testing::store_contract`, run from their crates.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::item_store::{Condition, Cursor, Index, Item, ItemStore, Page, Query, SortKeyRange, Write};
use crate::{Error, Result};

#[derive(Default)]
pub(crate) struct MemoryItemStore {
    items: Mutex<BTreeMap<(String, String), Item>>,
}

fn holds(condition: Condition, current: Option<&Item>) -> bool {
    match condition {
        Condition::None => true,
        Condition::NotExists => current.is_none(),
        Condition::Exists => current.is_some(),
        Condition::Version(v) => current.is_some_and(|i| i.version == v),
    }
}

fn in_range(range: &SortKeyRange, sk: &str) -> bool {
    match range {
        SortKeyRange::All => true,
        SortKeyRange::BeginsWith(p) => sk.starts_with(p.as_str()),
        SortKeyRange::LessThan(b) => sk < b.as_str(),
        SortKeyRange::Between(a, b) => a.as_str() <= sk && sk <= b.as_str(),
    }
}

type Position = (String, String, String);

fn position(index: Option<Index>, item: &Item) -> Option<Position> {
    match index {
        None => Some((item.sk.clone(), item.pk.clone(), item.sk.clone())),
        Some(ix) => item
            .index_key(ix)
            .map(|k| (k.sk.clone(), item.pk.clone(), item.sk.clone())),
    }
}

fn cursor_position(index: Option<Index>, cursor: &Cursor) -> Position {
    match (index, &cursor.index_key) {
        (Some(_), Some(k)) => (k.sk.clone(), cursor.pk.clone(), cursor.sk.clone()),
        _ => (cursor.sk.clone(), cursor.pk.clone(), cursor.sk.clone()),
    }
}

#[async_trait]
impl ItemStore for MemoryItemStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let items = self.items.lock().map_err(|_| Error::permanent("poisoned"))?;
        Ok(items.get(&(pk.to_string(), sk.to_string())).cloned())
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<()> {
        self.transact(vec![Write::Put { item, condition }]).await
    }

    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> Result<()> {
        self.transact(vec![Write::Delete {
            pk: pk.to_string(),
            sk: sk.to_string(),
            condition,
        }])
        .await
    }

    async fn query(&self, query: Query) -> Result<Page> {
        let items = self.items.lock().map_err(|_| Error::permanent("poisoned"))?;
        let mut hits: Vec<(Position, Item)> = items
            .values()
            .filter(|item| match query.index {
                None => item.pk == query.pk && in_range(&query.range, &item.sk),
                Some(ix) => item
                    .index_key(ix)
                    .is_some_and(|k| k.pk == query.pk && in_range(&query.range, &k.sk)),
            })
            .filter_map(|item| position(query.index, item).map(|p| (p, item.clone())))
            .collect();
        hits.sort_by(|a, b| a.0.cmp(&b.0));
        if !query.ascending {
            hits.reverse();
        }
        if let Some(cursor) = &query.cursor {
            let after = cursor_position(query.index, cursor);
            hits.retain(|(p, _)| if query.ascending { *p > after } else { *p < after });
        }
        let more = hits.len() > query.limit as usize;
        let page: Vec<Item> = hits.into_iter().take(query.limit as usize).map(|(_, i)| i).collect();
        let cursor = if more {
            page.last().map(|i| Cursor {
                pk: i.pk.clone(),
                sk: i.sk.clone(),
                index_key: query.index.and_then(|ix| i.index_key(ix).cloned()),
            })
        } else {
            None
        };
        Ok(Page { items: page, cursor })
    }

    async fn scan_partitions_with(&self, sk: &str) -> Result<Vec<String>> {
        let items = self.items.lock().map_err(|_| Error::permanent("poisoned"))?;
        Ok(items
            .keys()
            .filter(|(_, s)| s == sk)
            .map(|(pk, _)| pk.clone())
            .collect())
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<()> {
        let mut items = self.items.lock().map_err(|_| Error::permanent("poisoned"))?;
        let total = writes.len();
        for (i, write) in writes.iter().enumerate() {
            let (pk, sk, condition) = match write {
                Write::Put { item, condition } => (&item.pk, &item.sk, *condition),
                Write::Delete { pk, sk, condition } | Write::Check { pk, sk, condition } => (pk, sk, *condition),
            };
            if !holds(condition, items.get(&(pk.clone(), sk.clone()))) {
                return Err(Error::conflict(format!("write {} of {total}: condition failed", i + 1)));
            }
        }
        for write in writes {
            match write {
                Write::Put { item, .. } => {
                    items.insert((item.pk.clone(), item.sk.clone()), item);
                }
                Write::Delete { pk, sk, .. } => {
                    items.remove(&(pk, sk));
                }
                Write::Check { .. } => {}
            }
        }
        Ok(())
    }
}
