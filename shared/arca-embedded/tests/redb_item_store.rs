//! The redb adapter of the storage port, on a real file in a temporary directory.

use arca_core::Error;
use arca_core::ports::item_store::{Condition, Index, IndexKey, Item, ItemStore, Query, SortKeyRange, Write};
use arca_embedded::RedbItemStore;
use serde_json::json;

#[tokio::test]
async fn redb_item_store_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbItemStore::open(dir.path().join("arca.redb")).unwrap();
    arca_core::testing::contracts::item_store::item_store_contract(&store).await;
    // The suite keeps its keys apart, so it passes again on the same file.
    arca_core::testing::contracts::item_store::item_store_contract(&store).await;
}

fn indexed(pk: &str, sk: &str, version: u64) -> Item {
    Item {
        pk: pk.into(),
        sk: sk.into(),
        gsi1: Some(IndexKey {
            pk: "HASH".into(),
            sk: sk.into(),
        }),
        gsi2: None,
        gsi3: None,
        version,
        expires_at: Some(1_900_000_000),
        body: json!({ "name": sk }),
    }
}

#[tokio::test]
async fn state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arca.redb");
    {
        let store = RedbItemStore::open(&path).unwrap();
        store.put(indexed("P", "a", 1), Condition::NotExists).await.unwrap();
        store
            .transact(vec![
                Write::Put {
                    item: indexed("P", "b", 1),
                    condition: Condition::NotExists,
                },
                Write::Put {
                    item: indexed("P", "c", 1),
                    condition: Condition::NotExists,
                },
            ])
            .await
            .unwrap();
        store.delete("P", "c", Condition::Version(1)).await.unwrap();
        // A failed transaction must leave no trace in the file either.
        let failed = store
            .transact(vec![
                Write::Put {
                    item: indexed("P", "d", 1),
                    condition: Condition::None,
                },
                Write::Check {
                    pk: "P".into(),
                    sk: "a".into(),
                    condition: Condition::Version(9),
                },
            ])
            .await;
        assert!(matches!(failed, Err(Error::Conflict { .. })), "{failed:?}");
    }

    let store = RedbItemStore::open(&path).unwrap();
    assert_eq!(store.get("P", "a").await.unwrap(), Some(indexed("P", "a", 1)));
    assert_eq!(store.get("P", "c").await.unwrap(), None);
    assert_eq!(store.get("P", "d").await.unwrap(), None);
    let page = store
        .query(Query {
            index: Some(Index::Gsi1),
            pk: "HASH".into(),
            range: SortKeyRange::All,
            limit: 10,
            ascending: true,
            cursor: None,
        })
        .await
        .unwrap();
    let sks: Vec<_> = page.items.iter().map(|i| i.sk.as_str()).collect();
    assert_eq!(sks, ["a", "b"], "the index is persisted in step with the items");
    assert_eq!(page.cursor, None);
    // Conditions are evaluated against the persisted versions.
    let stale = store.put(indexed("P", "a", 2), Condition::Version(0)).await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    store.put(indexed("P", "a", 2), Condition::Version(1)).await.unwrap();
}

#[tokio::test]
async fn a_file_is_open_in_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arca.redb");
    let _store = RedbItemStore::open(&path).unwrap();
    let second = RedbItemStore::open(&path);
    assert!(matches!(second, Err(Error::Permanent(_))), "{second:?}");
}

#[tokio::test]
async fn concurrent_conditional_creates_let_exactly_one_win() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbItemStore::open(dir.path().join("arca.redb")).unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put(indexed("P", "once", i), Condition::NotExists).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(Error::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(won, 1, "NotExists admits exactly one creator");
}
