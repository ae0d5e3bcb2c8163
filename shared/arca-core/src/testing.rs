//! Contract suites: one test body per port, run by every adapter against its real
//! backend (a temporary directory, moto's S3, ...). An adapter passes when its suite does.

use bytes::Bytes;

use crate::Error;
use crate::ports::ObjectStore;

/// Exercises every [`ObjectStore`] operation under `prefix` (which the caller makes
/// unique per run) and panics with a description of the first broken promise.
pub async fn object_store_contract(store: &dyn ObjectStore, prefix: &str) {
    let key = |name: &str| format!("{prefix}/{name}");

    match store.get(&key("absent")).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("get of an absent key must be NotFound, got {other:?}"),
    }

    let body = Bytes::from_static(b"0123456789abcdef");
    store.put(&key("data/one"), body.clone()).await.expect("put");
    assert_eq!(
        store.get(&key("data/one")).await.expect("get"),
        body,
        "get returns what put wrote"
    );
    assert_eq!(
        store.get_range(&key("data/one"), 4..10).await.expect("get_range"),
        Bytes::from_static(b"456789"),
        "get_range returns exactly the requested bytes"
    );

    store
        .put(&key("data/one"), Bytes::from_static(b"replaced"))
        .await
        .expect("overwrite");
    assert_eq!(
        store.get(&key("data/one")).await.expect("get"),
        Bytes::from_static(b"replaced")
    );

    store.put(&key("data/two"), Bytes::new()).await.expect("put empty");
    store.put(&key("index/a"), Bytes::from_static(b"a")).await.expect("put");
    store
        .put(&format!("{prefix}-sibling/x"), Bytes::from_static(b"x"))
        .await
        .expect("put");

    let listed = store.list(&key("data/")).await.expect("list");
    let keys: Vec<_> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, [key("data/one"), key("data/two")], "list is by prefix and sorted");
    assert_eq!(listed[0].size, 8);
    assert_eq!(listed[1].size, 0);
    let all = store.list(&format!("{prefix}/")).await.expect("list");
    assert_eq!(all.len(), 3, "a prefix ending in / does not match the sibling: {all:?}");

    store.delete(&key("data/one")).await.expect("delete");
    store
        .delete(&key("data/one"))
        .await
        .expect("deleting an absent key is not an error");
    assert!(matches!(store.get(&key("data/one")).await, Err(Error::NotFound { .. })));
    let keys: Vec<_> = store
        .list(&key("data/"))
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, [key("data/two")]);
}

/// Exercises every [`ItemStore`](crate::store::item::ItemStore) operation and every
/// failure the port promises, and panics with a description of the first broken promise.
///
/// Every key it writes starts with a prefix unique to the call, so the suite can run
/// again and again against one shared table. It loops over pages until the cursor is
/// `None` (never until a short page), since DynamoDB may end with an empty page.
pub async fn item_store_contract(store: &dyn crate::store::item::ItemStore) {
    item_store_suite::run(store).await;
}

mod item_store_suite {
    use serde_json::json;

    use crate::Error;
    use crate::store::item::{
        Condition, Index, IndexKey, Item, ItemStore, MAX_TRANSACTION_WRITES, Query, SortKeyRange, Write,
    };

    pub(super) async fn run(store: &dyn ItemStore) {
        let run = format!("contract-{}", ulid::Ulid::new());
        single_writes(store, &run).await;
        table_queries(store, &run).await;
        index_queries(store, &run).await;
        transactions(store, &run).await;
    }

    fn item(pk: &str, sk: &str, version: u64) -> Item {
        Item {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            gsi1: None,
            gsi2: None,
            version,
            expires_at: None,
            body: json!({ "sk": sk, "version": version, "nested": { "list": [1, "two", null] } }),
        }
    }

    fn index_key(pk: &str, sk: &str) -> Option<IndexKey> {
        Some(IndexKey {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
        })
    }

    #[track_caller]
    fn assert_conflict(result: crate::Result<()>, what: &str) {
        match result {
            Err(Error::Conflict { .. }) => {}
            other => panic!("{what}: expected Conflict, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_invalid<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
        match result {
            Err(Error::Invalid { .. }) => {}
            other => panic!("{what}: expected Invalid, got {other:?}"),
        }
    }

    async fn get(store: &dyn ItemStore, pk: &str, sk: &str) -> Option<Item> {
        store
            .get(pk, sk)
            .await
            .unwrap_or_else(|e| panic!("get ({pk}, {sk}): {e}"))
    }

    async fn put(store: &dyn ItemStore, item: &Item, condition: Condition) {
        store
            .put(item.clone(), condition)
            .await
            .unwrap_or_else(|e| panic!("put ({}, {}) {condition:?}: {e}", item.pk, item.sk));
    }

    fn query(index: Option<Index>, pk: &str, range: SortKeyRange, limit: u32, ascending: bool) -> Query {
        Query {
            index,
            pk: pk.to_owned(),
            range,
            limit,
            ascending,
            cursor: None,
        }
    }

    /// Reads every page of `query`, checking each page against its limit, and returns
    /// the items in the order the pages gave them.
    async fn read_all(store: &dyn ItemStore, mut query: Query) -> Vec<Item> {
        let mut items = Vec::new();
        for _ in 0..1000 {
            let page = store
                .query(query.clone())
                .await
                .unwrap_or_else(|e| panic!("query {query:?}: {e}"));
            assert!(
                page.items.len() <= query.limit as usize,
                "a page has {} items, more than the limit {} ({query:?})",
                page.items.len(),
                query.limit
            );
            items.extend(page.items);
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return items,
            }
        }
        panic!("{query:?} did not end after 1000 pages");
    }

    fn keys(items: &[Item]) -> Vec<(String, String)> {
        items.iter().map(|i| (i.pk.clone(), i.sk.clone())).collect()
    }

    fn sks(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.sk.as_str()).collect()
    }

    async fn single_writes(store: &dyn ItemStore, run: &str) {
        let pk = format!("{run}#single");
        assert_eq!(get(store, &pk, "absent").await, None, "get of an absent key is None");

        // NotExists: succeeds on an absent key, then fails; the item is stored exactly.
        let mut first = item(&pk, "a", 1);
        first.gsi1 = index_key(&format!("{run}#g1"), "x");
        first.expires_at = Some(4_102_444_800);
        put(store, &first, Condition::NotExists).await;
        assert_eq!(
            get(store, &pk, "a").await,
            Some(first.clone()),
            "get returns exactly what put wrote"
        );
        assert_conflict(
            store.put(item(&pk, "a", 9), Condition::NotExists).await,
            "put NotExists on a present key",
        );
        assert_eq!(
            get(store, &pk, "a").await,
            Some(first.clone()),
            "a failed put changes nothing"
        );

        // Exists: succeeds on a present key, fails on an absent one (which stays absent).
        let second = item(&pk, "a", 2);
        put(store, &second, Condition::Exists).await;
        assert_eq!(
            get(store, &pk, "a").await,
            Some(second.clone()),
            "put replaces the whole item"
        );
        assert_conflict(
            store.put(item(&pk, "b", 1), Condition::Exists).await,
            "put Exists on an absent key",
        );
        assert_eq!(get(store, &pk, "b").await, None, "a failed put creates nothing");

        // Version: the stored version must match; a stale one and an absent item fail.
        put(store, &item(&pk, "a", 3), Condition::Version(2)).await;
        assert_conflict(
            store.put(item(&pk, "a", 4), Condition::Version(2)).await,
            "put with a stale version",
        );
        assert_conflict(
            store.put(item(&pk, "a", 4), Condition::Version(4)).await,
            "put with a future version",
        );
        assert_conflict(
            store.put(item(&pk, "b", 1), Condition::Version(0)).await,
            "put Version on an absent key",
        );
        assert_eq!(get(store, &pk, "a").await.map(|i| i.version), Some(3));
        assert_eq!(get(store, &pk, "b").await, None);

        // None: unconditional create and overwrite.
        put(store, &item(&pk, "b", 1), Condition::None).await;
        put(store, &item(&pk, "a", 10), Condition::None).await;
        assert_eq!(get(store, &pk, "a").await.map(|i| i.version), Some(10));

        // An expiry in the past is stored and the item is still returned: only the
        // store's own removal (DynamoDB TTL) makes it go away.
        let mut expired = item(&pk, "expired", 1);
        expired.expires_at = Some(1_000_000_000);
        put(store, &expired, Condition::NotExists).await;
        assert_eq!(
            get(store, &pk, "expired").await,
            Some(expired),
            "expired items are returned until deleted"
        );

        // Conditional deletes.
        assert_conflict(
            store.delete(&pk, "a", Condition::Version(9)).await,
            "delete with a wrong version",
        );
        assert_conflict(
            store.delete(&pk, "a", Condition::NotExists).await,
            "delete NotExists on a present key",
        );
        assert_conflict(
            store.delete(&pk, "absent", Condition::Exists).await,
            "delete Exists on an absent key",
        );
        assert_conflict(
            store.delete(&pk, "absent", Condition::Version(1)).await,
            "delete Version on an absent key",
        );
        assert!(get(store, &pk, "a").await.is_some(), "a failed delete deletes nothing");
        store
            .delete(&pk, "a", Condition::Version(10))
            .await
            .expect("delete with the right version");
        assert_eq!(get(store, &pk, "a").await, None, "a deleted item is gone");
        store.delete(&pk, "b", Condition::Exists).await.expect("delete Exists");
        store
            .delete(&pk, "a", Condition::None)
            .await
            .expect("deleting an absent key unconditionally is fine");
        store
            .delete(&pk, "a", Condition::NotExists)
            .await
            .expect("delete NotExists on an absent key holds");

        // Keys are never empty (DynamoDB refuses empty key attributes).
        assert_invalid(
            store.put(item("", "a", 1), Condition::None).await,
            "put with an empty pk",
        );
        assert_invalid(
            store.put(item(&pk, "", 1), Condition::None).await,
            "put with an empty sk",
        );
        let mut empty_index = item(&pk, "c", 1);
        empty_index.gsi2 = index_key(&format!("{run}#g2"), "");
        assert_invalid(
            store.put(empty_index, Condition::None).await,
            "put with an empty index sort key",
        );
    }

    async fn table_queries(store: &dyn ItemStore, run: &str) {
        let pk = format!("{run}#q");
        // Byte-wise order: upper case before lower case, multi-byte UTF-8 after ASCII.
        let sorted = ["B#1", "a#1", "a#2", "a#3", "b#1", "b#2", "c", "z", "\u{e9}"];
        for sk in ["c", "a#2", "\u{e9}", "b#1", "a#1", "z", "B#1", "b#2", "a#3"] {
            put(store, &item(&pk, sk, 1), Condition::NotExists).await;
        }
        // Neighbouring partitions, one a string prefix of the other, must not leak in.
        put(store, &item(&format!("{pk}2"), "a#1", 1), Condition::NotExists).await;
        put(store, &item(&format!("{run}#p"), "a#1", 1), Condition::NotExists).await;

        let all = read_all(store, query(None, &pk, SortKeyRange::All, 100, true)).await;
        assert_eq!(sks(&all), sorted, "All, ascending, byte-wise");
        assert!(all.iter().all(|i| i.pk == pk), "only the queried partition");
        assert_eq!(all[1], item(&pk, "a#1", 1), "queries return whole items");
        let mut reversed = sorted;
        reversed.reverse();
        let desc = read_all(store, query(None, &pk, SortKeyRange::All, 100, false)).await;
        assert_eq!(sks(&desc), reversed, "All, descending");

        let ranges: [(SortKeyRange, &[&str]); 7] = [
            (SortKeyRange::BeginsWith("a#".into()), &["a#1", "a#2", "a#3"]),
            (SortKeyRange::BeginsWith("b".into()), &["b#1", "b#2"]),
            (SortKeyRange::BeginsWith("zz".into()), &[]),
            (SortKeyRange::LessThan("b#1".into()), &["B#1", "a#1", "a#2", "a#3"]),
            (SortKeyRange::LessThan("A".into()), &[]),
            (
                SortKeyRange::Between("a#2".into(), "b#1".into()),
                &["a#2", "a#3", "b#1"],
            ),
            (SortKeyRange::Between("a#9".into(), "c".into()), &["b#1", "b#2", "c"]),
        ];
        for (range, expected) in ranges {
            let asc = read_all(store, query(None, &pk, range.clone(), 100, true)).await;
            assert_eq!(sks(&asc), expected, "{range:?} ascending");
            let desc = read_all(store, query(None, &pk, range.clone(), 100, false)).await;
            let mut expected_desc = expected.to_vec();
            expected_desc.reverse();
            assert_eq!(sks(&desc), expected_desc, "{range:?} descending");
        }

        // Pagination: every item exactly once, in order, whatever the page size.
        for limit in [1, 2, 4, 8] {
            for ascending in [true, false] {
                let paged = read_all(store, query(None, &pk, SortKeyRange::All, limit, ascending)).await;
                let expected = if ascending { sorted } else { reversed };
                assert_eq!(sks(&paged), expected, "All paged by {limit}, ascending={ascending}");
            }
            let paged = read_all(
                store,
                query(None, &pk, SortKeyRange::BeginsWith("a#".into()), limit, false),
            )
            .await;
            assert_eq!(
                sks(&paged),
                ["a#3", "a#2", "a#1"],
                "BeginsWith paged by {limit}, descending"
            );
        }
        // The first page of a limited query holds the first items and a cursor.
        let page = store
            .query(query(None, &pk, SortKeyRange::All, 2, true))
            .await
            .expect("query");
        assert_eq!(sks(&page.items), ["B#1", "a#1"], "limit caps the page");
        assert!(page.cursor.is_some(), "a cursor when more items follow");

        assert_invalid(
            store
                .query(query(
                    None,
                    &pk,
                    SortKeyRange::Between("b".into(), "a".into()),
                    10,
                    true,
                ))
                .await,
            "Between with from after to",
        );
        assert_invalid(
            store.query(query(None, &pk, SortKeyRange::All, 0, true)).await,
            "limit 0",
        );
        let empty = read_all(
            store,
            query(None, &format!("{run}#nothing"), SortKeyRange::All, 10, true),
        )
        .await;
        assert!(empty.is_empty(), "an empty partition has no items: {empty:?}");
    }

    async fn index_queries(store: &dyn ItemStore, run: &str) {
        let g1 = format!("{run}#G1");
        let g1_other = format!("{run}#G1-other");
        let g2 = format!("{run}#G2");
        let at = |pk: &str| format!("{run}#{pk}");

        // Gsi1: two items tie on "t#2" (broken by table key), one without an index key.
        let mut indexed = Vec::new();
        for (pk, sk, isk) in [
            ("u1", "k2", "t#2"),
            ("u3", "k1", "t#3"),
            ("u2", "k1", "t#1"),
            ("u1", "k1", "t#2"),
        ] {
            let mut it = item(&at(pk), sk, 1);
            it.gsi1 = index_key(&g1, isk);
            put(store, &it, Condition::NotExists).await;
            indexed.push(it);
        }
        put(store, &item(&at("u3"), "no-index", 1), Condition::NotExists).await;
        let mut elsewhere = item(&at("u4"), "k1", 1);
        elsewhere.gsi1 = index_key(&g1_other, "t#1");
        put(store, &elsewhere, Condition::NotExists).await;
        // Gsi2 only: must not appear in Gsi1, and the other way round.
        let mut due = Vec::new();
        for (pk, isk) in [("u5", "2026-03"), ("u6", "2026-01"), ("u7", "2026-02")] {
            let mut it = item(&at(pk), "job", 1);
            it.gsi2 = index_key(&g2, isk);
            put(store, &it, Condition::NotExists).await;
            due.push(it);
        }
        let mut both = item(&at("u8"), "both", 1);
        both.gsi1 = index_key(&g1, "t#4");
        both.gsi2 = index_key(&g2, "2026-04");
        put(store, &both, Condition::NotExists).await;

        let expected_g1 = [
            (at("u2"), "k1"),
            (at("u1"), "k1"),
            (at("u1"), "k2"),
            (at("u3"), "k1"),
            (at("u8"), "both"),
        ];
        let expected_g1: Vec<(String, String)> =
            expected_g1.iter().map(|(p, s)| (p.clone(), (*s).to_owned())).collect();
        let asc = read_all(store, query(Some(Index::Gsi1), &g1, SortKeyRange::All, 100, true)).await;
        assert_eq!(
            keys(&asc),
            expected_g1,
            "Gsi1 by index sort key, ties by table key, sparse"
        );
        assert_eq!(asc[0], indexed[2], "index queries return whole items");
        let mut expected_g1_desc = expected_g1.clone();
        expected_g1_desc.reverse();
        let desc = read_all(store, query(Some(Index::Gsi1), &g1, SortKeyRange::All, 100, false)).await;
        assert_eq!(keys(&desc), expected_g1_desc, "Gsi1 descending is the exact reverse");
        for limit in [1, 2, 3] {
            for ascending in [true, false] {
                let paged = read_all(
                    store,
                    query(Some(Index::Gsi1), &g1, SortKeyRange::All, limit, ascending),
                )
                .await;
                let expected = if ascending { &expected_g1 } else { &expected_g1_desc };
                assert_eq!(
                    &keys(&paged),
                    expected,
                    "Gsi1 paged by {limit} (cursors inside a tie), asc={ascending}"
                );
            }
        }
        let in_range = |range: SortKeyRange| query(Some(Index::Gsi1), &g1, range, 100, true);
        let found = read_all(store, in_range(SortKeyRange::LessThan("t#2".into()))).await;
        assert_eq!(keys(&found), expected_g1[..1], "Gsi1 LessThan");
        let found = read_all(store, in_range(SortKeyRange::Between("t#2".into(), "t#3".into()))).await;
        assert_eq!(keys(&found), expected_g1[1..4], "Gsi1 Between");
        let found = read_all(store, in_range(SortKeyRange::BeginsWith("t#".into()))).await;
        assert_eq!(found.len(), 5, "Gsi1 BeginsWith");

        let expected_g2 = [at("u6"), at("u7"), at("u5"), at("u8")];
        let found = read_all(store, query(Some(Index::Gsi2), &g2, SortKeyRange::All, 2, true)).await;
        assert_eq!(
            found.iter().map(|i| i.pk.clone()).collect::<Vec<_>>(),
            expected_g2,
            "Gsi2 ascending, paged"
        );
        let found = read_all(
            store,
            query(
                Some(Index::Gsi2),
                &g2,
                SortKeyRange::LessThan("2026-03".into()),
                1,
                false,
            ),
        )
        .await;
        assert_eq!(
            found.iter().map(|i| i.pk.clone()).collect::<Vec<_>>(),
            [at("u7"), at("u6")],
            "Gsi2 LessThan desc"
        );
        let found = read_all(store, query(Some(Index::Gsi2), &g1, SortKeyRange::All, 10, true)).await;
        assert!(found.is_empty(), "Gsi1 keys are not in Gsi2: {found:?}");
        let found = read_all(store, query(Some(Index::Gsi1), &g1_other, SortKeyRange::All, 10, true)).await;
        assert_eq!(
            keys(&found),
            [(at("u4"), "k1".to_owned())],
            "index partitions are separate"
        );

        // Moving an index key on update moves the entry: the old position is gone.
        let mut moved = indexed[1].clone();
        moved.gsi1 = index_key(&g1, "t#0");
        moved.version = 2;
        put(store, &moved, Condition::Version(1)).await;
        let found = read_all(store, in_range(SortKeyRange::All)).await;
        assert_eq!(found.len(), 5, "a moved key is indexed once: {:?}", keys(&found));
        assert_eq!(found[0], moved, "at its new index sort key");
        let found = read_all(store, in_range(SortKeyRange::BeginsWith("t#3".into()))).await;
        assert!(
            found.is_empty(),
            "nothing left at the old index sort key: {:?}",
            keys(&found)
        );

        // ... to another index partition.
        moved.gsi1 = index_key(&g1_other, "t#9");
        moved.version = 3;
        put(store, &moved, Condition::Version(2)).await;
        let found = read_all(store, in_range(SortKeyRange::All)).await;
        assert_eq!(found.len(), 4, "moved out of the partition: {:?}", keys(&found));
        let found = read_all(store, query(Some(Index::Gsi1), &g1_other, SortKeyRange::All, 10, true)).await;
        assert_eq!(keys(&found), [(at("u4"), "k1".to_owned()), (at("u3"), "k1".to_owned())]);

        // ... and out of the index altogether, keeping the item.
        moved.gsi1 = None;
        moved.version = 4;
        put(store, &moved, Condition::Version(3)).await;
        let found = read_all(store, query(Some(Index::Gsi1), &g1_other, SortKeyRange::All, 10, true)).await;
        assert_eq!(
            keys(&found),
            [(at("u4"), "k1".to_owned())],
            "an item without the key leaves the index"
        );
        assert_eq!(get(store, &at("u3"), "k1").await, Some(moved), "the item itself stays");

        // A deleted item leaves every index it was in.
        store
            .delete(&at("u8"), "both", Condition::Exists)
            .await
            .expect("delete");
        let found = read_all(store, in_range(SortKeyRange::All)).await;
        assert!(found.iter().all(|i| i.pk != at("u8")), "deleted item still in Gsi1");
        let found = read_all(store, query(Some(Index::Gsi2), &g2, SortKeyRange::All, 10, true)).await;
        assert_eq!(found, due_sorted(due), "deleted item still in Gsi2");

        // A cursor of an index query must carry the index key.
        let mut bad = query(Some(Index::Gsi1), &g1, SortKeyRange::All, 10, true);
        bad.cursor = Some(crate::store::item::Cursor {
            pk: at("u1"),
            sk: "k1".into(),
            index_key: None,
        });
        assert_invalid(store.query(bad).await, "an index query with a table cursor");
    }

    async fn assert_unchanged(store: &dyn ItemStore, pk: &str, snapshot: &[Item], what: &str) {
        let now = read_all(store, query(None, pk, SortKeyRange::All, 100, true)).await;
        assert_eq!(now, snapshot, "{what}: nothing of a failed transaction is applied");
    }

    fn due_sorted(mut due: Vec<Item>) -> Vec<Item> {
        due.sort_by(|a, b| a.gsi2.as_ref().map(|k| &k.sk).cmp(&b.gsi2.as_ref().map(|k| &k.sk)));
        due
    }

    async fn transactions(store: &dyn ItemStore, run: &str) {
        let pk = format!("{run}#tx");
        let g1 = format!("{run}#tx-G1");
        for sk in ["keep", "bump", "drop", "guard"] {
            put(store, &item(&pk, sk, 1), Condition::NotExists).await;
        }

        // Success: every kind of write, each condition holding.
        let mut created = item(&pk, "new", 1);
        created.gsi1 = index_key(&g1, "a");
        store
            .transact(vec![
                Write::Put {
                    item: created.clone(),
                    condition: Condition::NotExists,
                },
                Write::Put {
                    item: item(&pk, "bump", 2),
                    condition: Condition::Version(1),
                },
                Write::Delete {
                    pk: pk.clone(),
                    sk: "drop".into(),
                    condition: Condition::Exists,
                },
                Write::Check {
                    pk: pk.clone(),
                    sk: "guard".into(),
                    condition: Condition::Version(1),
                },
                Write::Check {
                    pk: pk.clone(),
                    sk: "absent".into(),
                    condition: Condition::None,
                },
            ])
            .await
            .expect("a transaction whose conditions hold");
        assert_eq!(get(store, &pk, "new").await, Some(created.clone()));
        assert_eq!(get(store, &pk, "bump").await.map(|i| i.version), Some(2));
        assert_eq!(get(store, &pk, "drop").await, None);
        assert_eq!(
            get(store, &pk, "guard").await,
            Some(item(&pk, "guard", 1)),
            "a Check writes nothing"
        );
        let indexed = read_all(store, query(Some(Index::Gsi1), &g1, SortKeyRange::All, 10, true)).await;
        assert_eq!(indexed, [created.clone()], "transactional puts are indexed");

        let snapshot = read_all(store, query(None, &pk, SortKeyRange::All, 100, true)).await;
        let mut would_index = item(&pk, "never", 1);
        would_index.gsi1 = index_key(&g1, "b");

        // Failing on a Check (the second of three writes).
        let result = store
            .transact(vec![
                Write::Put {
                    item: would_index.clone(),
                    condition: Condition::NotExists,
                },
                Write::Check {
                    pk: pk.clone(),
                    sk: "guard".into(),
                    condition: Condition::Version(7),
                },
                Write::Delete {
                    pk: pk.clone(),
                    sk: "keep".into(),
                    condition: Condition::None,
                },
            ])
            .await;
        match result {
            Err(Error::Conflict { message, .. }) => {
                assert!(
                    message.contains("write 2 of 3: condition failed"),
                    "names the failing write: {message}"
                );
            }
            other => panic!("a failed Check must be a Conflict, got {other:?}"),
        }
        assert_unchanged(store, &pk, &snapshot, "failed Check").await;

        // Failing on a Put's condition (the last write), after writes that would succeed.
        let result = store
            .transact(vec![
                Write::Put {
                    item: would_index.clone(),
                    condition: Condition::NotExists,
                },
                Write::Delete {
                    pk: pk.clone(),
                    sk: "keep".into(),
                    condition: Condition::Version(1),
                },
                Write::Put {
                    item: item(&pk, "bump", 3),
                    condition: Condition::NotExists,
                },
            ])
            .await;
        match result {
            Err(Error::Conflict { message, .. }) => {
                assert!(
                    message.contains("write 3 of 3: condition failed"),
                    "names the failing write: {message}"
                );
            }
            other => panic!("a failed Put condition must be a Conflict, got {other:?}"),
        }
        assert_unchanged(store, &pk, &snapshot, "failed Put").await;

        // Failing on the first write, a Delete's condition.
        let result = store
            .transact(vec![
                Write::Delete {
                    pk: pk.clone(),
                    sk: "keep".into(),
                    condition: Condition::Version(5),
                },
                Write::Put {
                    item: would_index.clone(),
                    condition: Condition::None,
                },
            ])
            .await;
        match result {
            Err(Error::Conflict { message, .. }) => {
                assert!(
                    message.contains("write 1 of 2: condition failed"),
                    "names the failing write: {message}"
                );
            }
            other => panic!("a failed Delete condition must be a Conflict, got {other:?}"),
        }
        assert_unchanged(store, &pk, &snapshot, "failed Delete").await;
        let indexed = read_all(store, query(Some(Index::Gsi1), &g1, SortKeyRange::All, 10, true)).await;
        assert_eq!(indexed, [created], "failed transactions leave the index alone");

        // Two writes on one key, or too many writes, are refused before anything runs.
        let result = store
            .transact(vec![
                Write::Put {
                    item: would_index.clone(),
                    condition: Condition::None,
                },
                Write::Check {
                    pk: pk.clone(),
                    sk: "never".into(),
                    condition: Condition::None,
                },
            ])
            .await;
        assert_invalid(result, "two writes on one key");
        assert_unchanged(store, &pk, &snapshot, "duplicate keys").await;

        let bulk = format!("{run}#bulk");
        let checks: Vec<Write> = (0..=MAX_TRANSACTION_WRITES)
            .map(|i| Write::Put {
                item: item(&bulk, &format!("{i:03}"), 1),
                condition: Condition::None,
            })
            .collect();
        assert_invalid(store.transact(checks).await, "more than MAX_TRANSACTION_WRITES writes");
        assert!(
            read_all(store, query(None, &bulk, SortKeyRange::All, 10, true))
                .await
                .is_empty()
        );

        // Exactly the maximum is fine, and all of it lands.
        let puts: Vec<Write> = (0..MAX_TRANSACTION_WRITES)
            .map(|i| Write::Put {
                item: item(&bulk, &format!("{i:03}"), 1),
                condition: Condition::NotExists,
            })
            .collect();
        store
            .transact(puts)
            .await
            .expect("a transaction of MAX_TRANSACTION_WRITES writes");
        let all = read_all(store, query(None, &bulk, SortKeyRange::All, 30, true)).await;
        let expected: Vec<String> = (0..MAX_TRANSACTION_WRITES).map(|i| format!("{i:03}")).collect();
        assert_eq!(
            sks(&all),
            expected,
            "all {MAX_TRANSACTION_WRITES} writes applied, paged by 30"
        );

        store
            .transact(Vec::new())
            .await
            .expect("an empty transaction is a no-op");
    }
}

// ---- the typed store and the services over any ItemStore ---------------------------

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, Utc};

use crate::auth::{ApiKeySpec, Principal, Role};
use crate::backup::{BackupDefinitionSpec, PvMode, Selection};
use crate::cluster::{ClusterSpec, ClusterState, Heartbeat};
use crate::destination::{DestinationSource, DestinationSpec, DestinationTarget};
use crate::ids::{BackupDefinitionId, ClusterId, DestinationId, JobId, OrgId, PolicyId, RecoveryPointId};
use crate::job::{Job, JobState, JobType};
use crate::plan::{Plan, PlanLimits};
use crate::policy::{Policy, PolicySpec, ReferrerKind, ScheduleSpec};
use crate::ports::FixedClock;
use crate::recovery::{RecoveryPoint, RecoveryPointState, RecoveryPointType};
use crate::restore::RestoreSpec;
use crate::secret::Secret;
use crate::service::{ControlPlane, ControlPlaneConfig, JobFilter, RecoveryPointFilter, RunNowRequest, SignupRequest};
use crate::store::item::{Condition, ItemStore, Query, SortKeyRange, Write};
use crate::store::page::PageRequest;
use crate::store::{Store, Tx, keys};

/// The instant the suite's clock shows (fixed, so expiry queries are deterministic).
pub const CONTRACT_NOW_SECS: u64 = 1_893_456_000; // 2030-01-01T00:00:00Z

macro_rules! expect_err {
    ($result:expr, $pattern:pat, $what:expr) => {
        match $result {
            Err(e @ $pattern) => e,
            other => panic!("{}: expected {}, got {other:?}", $what, stringify!($pattern)),
        }
    };
}

pub(crate) fn contract_plane(items: Arc<dyn ItemStore>, at_secs: u64) -> ControlPlane {
    ControlPlane::new(
        Store::new(items),
        PlanLimits::default(),
        Arc::new(FixedClock(UNIX_EPOCH + Duration::from_secs(at_secs))),
        ControlPlaneConfig {
            signup_open: true,
            local_destinations: true,
            ..ControlPlaneConfig::default()
        },
    )
}

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(UNIX_EPOCH + Duration::from_secs(CONTRACT_NOW_SECS))
}

pub(crate) async fn new_org(cp: &ControlPlane, name: &str) -> (Principal, Secret, Policy) {
    let signed = cp
        .signup(SignupRequest {
            org_name: name.to_string(),
            admin_key_name: None,
        })
        .await
        .expect("signup");
    let principal = cp
        .authenticate(&signed.admin_key.secret)
        .await
        .expect("the bootstrap key authenticates");
    (principal, signed.admin_key.secret, signed.default_policy)
}

fn s3(name: &str) -> DestinationSpec {
    DestinationSpec {
        name: name.to_string(),
        target: DestinationTarget::S3 {
            endpoint: Some("https://s3.example.test".into()),
            bucket: "arca-backups".into(),
            region: "us-east-1".into(),
            prefix: "c/".into(),
            credentials_ref: Some("creds".into()),
            skip_tls_verify: false,
        },
    }
}

fn definition(
    cluster: ClusterId,
    policy: Option<PolicyId>,
    dest: Option<DestinationId>,
    name: &str,
) -> BackupDefinitionSpec {
    BackupDefinitionSpec {
        name: name.to_string(),
        description: String::new(),
        cluster_id: cluster,
        selection: Selection {
            namespaces: vec!["shop".into()],
            ..Selection::default()
        },
        pv_mode: PvMode::Snapshot,
        delete_snapshot_after_copy: false,
        policy_id: policy,
        destination_id: dest,
        paused: false,
        tags: Default::default(),
    }
}

fn recovery_point(org: OrgId, cluster: ClusterId, expires_at: Option<DateTime<Utc>>) -> RecoveryPoint {
    RecoveryPoint {
        rule: None,
        keep_last: None,
        id: RecoveryPointId::new(),
        org_id: org,
        cluster_id: cluster,
        definition_id: BackupDefinitionId::new(),
        job_id: JobId::new(),
        rp_type: RecoveryPointType::Snapshot,
        state: RecoveryPointState::Ready,
        expires_at,
        locked: false,
        location: None,
        resource_count: 10,
        pv_count: 1,
        snapshot_bytes: 100,
        copy_bytes: 0,
        details: Default::default(),
        created_at: now(),
        updated_at: now(),
        version: 0,
    }
}

/// Runs every part of the typed-store contract. Each part creates its own orgs (fresh
/// ids), so the suite may share a table with other runs.
pub async fn store_contract(items: Arc<dyn ItemStore>) {
    signup_writes_the_documented_items(items.clone()).await;
    authentication_and_roles(items.clone()).await;
    tenant_isolation(items.clone()).await;
    optimistic_concurrency(items.clone()).await;
    transactions_are_all_or_nothing(items.clone()).await;
    policy_in_use(items.clone()).await;
    cluster_in_use_and_deletion(items.clone()).await;
    agent_token_lookup(items.clone()).await;
    recovery_points_expiring_before(items.clone()).await;
    pagination_across_pages(items.clone()).await;
    jobs_and_restores(items.clone()).await;
    dispatch_races_yield_one_job(items.clone()).await;
    heartbeats_leave_the_cluster_etag_alone(items.clone()).await;
    plan_rules(items.clone()).await;
    crate::cloud_contract::linked_accounts(items.clone()).await;
    crate::rds_contract::rds_protection(items).await;
}

/// Concurrent dispatches of one definition: exactly one PENDING job, every other one
/// SKIPPED naming the winner (the active-job item is written with `NotExists` in the
/// job's transaction). Once the job ends, the next dispatch runs again.
pub async fn dispatch_races_yield_one_job(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let (p, _, policy) = new_org(&cp, "race").await;
    let dest = cp.create_destination(&p, s3("d")).await.expect("create");
    let reg = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "c".into(),
                ..Default::default()
            },
        )
        .await
        .expect("register");
    cp.record_heartbeat(&reg.agent_token, Heartbeat::default())
        .await
        .expect("heartbeat");
    let def = cp
        .create_backup_definition(&p, definition(reg.cluster.id, Some(policy.id), Some(dest.id), "b"))
        .await
        .expect("create")
        .definition;
    let input = crate::scheduler::ScheduleInput {
        org_id: p.org_id,
        definition_id: def.id.to_string(),
        rule: 0,
    };
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let cp = cp.clone();
        let input = input.clone();
        tasks.push(tokio::spawn(async move { cp.dispatch_scheduled(&input).await }));
    }
    let mut jobs = Vec::new();
    for t in tasks {
        jobs.push(t.await.expect("task").expect("dispatch"));
    }
    let pending: Vec<&Job> = jobs.iter().filter(|j| j.state == JobState::Pending).collect();
    assert_eq!(pending.len(), 1, "exactly one run: {jobs:#?}");
    let winner = pending[0];
    assert_eq!(winner.trigger, crate::job::JobTrigger::Scheduled);
    assert_eq!(winner.retention.map(|r| r.retain_days), Some(7));
    assert!(
        winner.recovery_point_expires_at.is_some(),
        "the job carries its point's expiry"
    );
    for j in jobs.iter().filter(|j| j.id != winner.id) {
        assert_eq!(j.state, JobState::Skipped, "{j:?}");
        let reason = j.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("another job of this definition is still") && reason.contains(&winner.id.to_string()),
            "{reason}"
        );
    }
    // Every outcome is stored.
    let stored = cp
        .list_jobs(
            &p,
            &JobFilter {
                definition_id: Some(def.id),
                ..Default::default()
            },
            &PageRequest::after(None, 50),
        )
        .await
        .expect("list");
    assert_eq!(stored.items.len(), 6);
    // The job ends (canceled): the definition is free again.
    cp.cancel_job(&p, &winner.id, None).await.expect("cancel");
    let next = cp.dispatch_scheduled(&input).await.expect("dispatch");
    assert_eq!(next.state, JobState::Pending, "{next:?}");
    // A paused definition's schedule is skipped with its reason.
    cp.cancel_job(&p, &next.id, None).await.expect("cancel");
    cp.pause_backup_definition(&p, &def.id, None).await.expect("pause");
    let paused = cp.dispatch_scheduled(&input).await.expect("dispatch");
    assert_eq!(
        (paused.state, paused.reason.as_deref()),
        (JobState::Skipped, Some("definition paused"))
    );
}

/// A heartbeat writes the agent item, not the cluster: the cluster's ETag stays, so a
/// user's edit with it succeeds, and reads still show the agent's facts.
pub async fn heartbeats_leave_the_cluster_etag_alone(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let (p, _, _) = new_org(&cp, "etag").await;
    let reg = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "c".into(),
                ..Default::default()
            },
        )
        .await
        .expect("register");
    let v = reg.cluster.version;
    cp.record_heartbeat(
        &reg.agent_token,
        Heartbeat {
            node_count: Some(4),
            ..Default::default()
        },
    )
    .await
    .expect("heartbeat");
    let read = cp.get_cluster(&p, &reg.cluster.id).await.expect("get");
    assert_eq!(
        (read.version, read.state, read.node_count),
        (v, ClusterState::Active, Some(4))
    );
    let edited = cp
        .update_cluster(
            &p,
            &reg.cluster.id,
            ClusterSpec {
                name: "renamed".into(),
                ..Default::default()
            },
            v,
        )
        .await
        .expect("an edit with the ETag read before the heartbeat");
    assert_eq!(edited.node_count, Some(4));
    let raw = items
        .get(&keys::org_pk(&p.org_id), &keys::agent_sk(&reg.cluster.id))
        .await
        .expect("get")
        .expect("the agent item exists");
    assert_eq!(raw.body["nodeCount"], 4);
    // Deleting the cluster deletes its agent item too.
    cp.delete_cluster(&p, &reg.cluster.id, edited.version, true)
        .await
        .expect("delete");
    assert!(
        items
            .get(&keys::org_pk(&p.org_id), &keys::agent_sk(&reg.cluster.id))
            .await
            .expect("get")
            .is_none()
    );
}

/// Sign-up writes the org, the bootstrap key (hash only in GSI1) and the default policy
/// at the documented keys, at version 1.
pub async fn signup_writes_the_documented_items(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let (p, secret, policy) = new_org(&cp, "keys").await;
    let pk = format!("ORG#{}", p.org_id);
    let org = items
        .get(&pk, "ORG")
        .await
        .expect("get")
        .expect("the org record is at ORG#<id> / ORG");
    assert_eq!(org.version, 1);
    assert_eq!(org.body["plan"], "free");
    let key_id = p.api_key_id.expect("a key authenticated");
    let key = items
        .get(&pk, &format!("APIKEY#{key_id}"))
        .await
        .expect("get")
        .expect("APIKEY#<id>");
    let gsi1 = key.gsi1.clone().expect("API keys are in GSI1");
    assert_eq!(gsi1.pk, format!("APIKEY#{}", secret.hash().as_str()));
    let body = key.body.to_string();
    assert!(!body.contains(secret.expose()), "the plaintext key is never stored");
    assert!(
        !body.contains(secret.hash().as_str()),
        "the hash is only in the index key"
    );
    assert_eq!(key.body["role"], "admin");
    let stored = items
        .get(&pk, &format!("POLICY#{}", policy.id))
        .await
        .expect("get")
        .expect("POLICY#<id>");
    assert_eq!(stored.body["name"], "hourly");
    assert_eq!(stored.body["schedules"][0]["cron"], "0 * * * *");
    assert_eq!(stored.body["schedules"][0]["retainDays"], 7);
    assert_eq!(stored.version, 1);
}

/// Keys authenticate by hash through GSI1; deleted, unknown or malformed keys do not;
/// roles limit what a key may do.
pub async fn authentication_and_roles(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items, CONTRACT_NOW_SECS);
    let (admin, bootstrap, _) = new_org(&cp, "auth").await;
    assert_eq!(admin.role, Role::Admin);
    for bad in ["arca_unknown", "not-a-key", ""] {
        expect_err!(
            cp.authenticate(&Secret::from_presented(bad)).await,
            crate::Error::Unauthenticated,
            bad
        );
    }
    let viewer = cp
        .create_api_key(
            &admin,
            ApiKeySpec {
                name: "ro".into(),
                role: Role::Viewer,
            },
        )
        .await
        .expect("create key");
    assert!(viewer.secret.expose().starts_with("arca_"));
    assert!(viewer.secret.expose().starts_with(&viewer.api_key.snippet));
    let vp = cp.authenticate(&viewer.secret).await.expect("viewer authenticates");
    assert_eq!((vp.role, vp.org_id), (Role::Viewer, admin.org_id));
    expect_err!(
        cp.create_destination(&vp, s3("x")).await,
        crate::Error::Forbidden { .. },
        "viewer creating"
    );
    expect_err!(
        cp.list_api_keys(&vp, &PageRequest::default()).await,
        crate::Error::Forbidden { .. },
        "viewer keys"
    );
    assert!(
        cp.list_destinations(&vp, &PageRequest::default()).await.is_ok(),
        "viewers read"
    );

    let bootstrap_id = admin.api_key_id.expect("id");
    let err = expect_err!(
        cp.delete_api_key(&admin, &bootstrap_id, 1).await,
        crate::Error::Conflict { .. },
        "last admin"
    );
    assert!(err.to_string().contains("last admin"), "{err}");
    cp.create_api_key(
        &admin,
        ApiKeySpec {
            name: "second admin".into(),
            role: Role::Admin,
        },
    )
    .await
    .expect("create");
    let keys = cp.list_api_keys(&admin, &PageRequest::default()).await.expect("list");
    assert_eq!(keys.items.len(), 3);
    expect_err!(
        cp.delete_api_key(&admin, &bootstrap_id, 7).await,
        crate::Error::PreconditionFailed { .. },
        "stale key delete"
    );
    cp.delete_api_key(&admin, &bootstrap_id, 1)
        .await
        .expect("delete the bootstrap key");
    expect_err!(
        cp.authenticate(&bootstrap).await,
        crate::Error::Unauthenticated,
        "a deleted key"
    );
}

/// Another org's ids are NotFound for every operation, and never listed.
pub async fn tenant_isolation(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items, CONTRACT_NOW_SECS);
    let (a, _, a_policy) = new_org(&cp, "tenant a").await;
    let (b, _, _) = new_org(&cp, "tenant b").await;
    let dest = cp.create_destination(&a, s3("a-dest")).await.expect("create");
    let cluster = cp
        .register_cluster(
            &a,
            ClusterSpec {
                name: "a-cluster".into(),
                ..Default::default()
            },
        )
        .await
        .expect("register")
        .cluster;

    expect_err!(
        cp.get_policy(&b, &a_policy.id).await,
        crate::Error::NotFound { .. },
        "cross-tenant get"
    );
    expect_err!(
        cp.get_destination(&b, &dest.id).await,
        crate::Error::NotFound { .. },
        "cross-tenant get"
    );
    expect_err!(
        cp.get_cluster(&b, &cluster.id).await,
        crate::Error::NotFound { .. },
        "cross-tenant get"
    );
    expect_err!(
        cp.update_destination(&b, &dest.id, s3("stolen"), dest.version).await,
        crate::Error::NotFound { .. },
        "cross-tenant update"
    );
    expect_err!(
        cp.delete_destination(&b, &dest.id, dest.version).await,
        crate::Error::NotFound { .. },
        "cross-tenant delete"
    );
    expect_err!(
        cp.delete_policy(&b, &a_policy.id, a_policy.version).await,
        crate::Error::NotFound { .. },
        "cross-tenant delete"
    );
    expect_err!(
        cp.create_backup_definition(&b, definition(cluster.id, None, Some(dest.id), "steal"))
            .await,
        crate::Error::Invalid { .. },
        "a definition on another org's cluster"
    );
    assert!(
        cp.list_destinations(&b, &PageRequest::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let b_policies = cp.list_policies(&b, &PageRequest::default()).await.expect("list");
    assert_eq!(b_policies.items.len(), 1, "only b's own default policy");
    assert_ne!(b_policies.items[0].id, a_policy.id);
    assert_eq!(
        cp.get_destination(&a, &dest.id).await.expect("still a's").spec.name,
        "a-dest"
    );
}

/// Updates and deletes carry the expected version; a stale one is PreconditionFailed,
/// a missing record NotFound, and each write moves the version by one.
pub async fn optimistic_concurrency(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items, CONTRACT_NOW_SECS);
    let (p, _, _) = new_org(&cp, "versions").await;
    let dest = cp.create_destination(&p, s3("v")).await.expect("create");
    assert_eq!(dest.version, 1);
    let updated = cp
        .update_destination(&p, &dest.id, s3("v2"), 1)
        .await
        .expect("update at 1");
    assert_eq!(updated.version, 2);
    expect_err!(
        cp.update_destination(&p, &dest.id, s3("v3"), 1).await,
        crate::Error::PreconditionFailed { .. },
        "stale update"
    );
    expect_err!(
        cp.delete_destination(&p, &dest.id, 1).await,
        crate::Error::PreconditionFailed { .. },
        "stale delete"
    );
    assert_eq!(
        cp.get_destination(&p, &dest.id).await.expect("get").spec.name,
        "v2",
        "a failed write changes nothing"
    );
    cp.delete_destination(&p, &dest.id, 2).await.expect("delete at 2");
    expect_err!(
        cp.get_destination(&p, &dest.id).await,
        crate::Error::NotFound { .. },
        "deleted"
    );
    expect_err!(
        cp.update_destination(&p, &dest.id, s3("v4"), 2).await,
        crate::Error::NotFound { .. },
        "update of deleted"
    );
    expect_err!(
        cp.delete_destination(&p, &dest.id, 2).await,
        crate::Error::NotFound { .. },
        "delete of deleted"
    );
}

/// A transaction with one failing condition writes nothing.
pub async fn transactions_are_all_or_nothing(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let (p, _, policy) = new_org(&cp, "tx").await;
    let store = Store::new(items.clone());
    let mut fresh = recovery_point(p.org_id, ClusterId::new(), None);
    let mut stale = policy.clone();
    let mut tx = Tx::new();
    tx.create(&mut fresh)
        .expect("build")
        .update(&mut stale, policy.version + 5)
        .expect("build");
    expect_err!(
        store.commit(tx).await,
        crate::Error::Conflict { .. },
        "a stale write in a transaction"
    );
    assert!(
        store
            .find::<RecoveryPoint>(&p.org_id, &fresh.id)
            .await
            .expect("find")
            .is_none(),
        "nothing was applied"
    );
    let raw = items
        .transact(vec![Write::Check {
            pk: keys::org_pk(&p.org_id),
            sk: "NOPE".into(),
            condition: Condition::Exists,
        }])
        .await;
    expect_err!(raw, crate::Error::Conflict { .. }, "a failed check");
}

/// A policy referenced by a definition cannot be deleted; `usedBy` follows the
/// definitions through create, policy change, rename and delete; a delete racing an
/// attach fails on the version.
pub async fn policy_in_use(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items, CONTRACT_NOW_SECS);
    let (p, _, hourly) = new_org(&cp, "policies").await;
    let dest = cp.create_destination(&p, s3("d")).await.expect("create");
    let cluster = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "c".into(),
                ..Default::default()
            },
        )
        .await
        .expect("register")
        .cluster;
    let daily = cp
        .create_policy(
            &p,
            PolicySpec {
                name: "daily".into(),
                timezone: "Europe/Berlin".into(),
                schedules: vec![ScheduleSpec {
                    cron: "0 3 * * *".into(),
                    retain_days: 14,
                    keep_last: Some(3),
                }],
                suspended: false,
            },
        )
        .await
        .expect("create policy");

    let stale_hourly_version = hourly.version;
    let view = cp
        .create_backup_definition(&p, definition(cluster.id, Some(hourly.id), Some(dest.id), "nightly"))
        .await
        .expect("create definition");
    let def = view.definition;
    assert_eq!(
        view.effective_destination.map(|e| e.source),
        Some(DestinationSource::BackupDefinition)
    );
    let used = cp.get_policy(&p, &hourly.id).await.expect("get");
    assert_eq!(used.used_by.len(), 1);
    assert_eq!(
        (used.used_by[0].kind, used.used_by[0].id.as_str()),
        (ReferrerKind::K8sBackup, def.id.to_string().as_str())
    );
    expect_err!(
        cp.delete_policy(&p, &hourly.id, stale_hourly_version).await,
        crate::Error::PreconditionFailed { .. },
        "a delete with the version read before the attach"
    );
    let err = expect_err!(
        cp.delete_policy(&p, &hourly.id, used.version).await,
        crate::Error::Conflict { .. },
        "in use"
    );
    assert!(
        err.to_string().contains("nightly"),
        "the refusal names the definition: {err}"
    );

    // Rename and move to the other policy: usedBy follows in the same transaction.
    let mut spec = def.spec.clone();
    spec.name = "nightly-2".into();
    let moved = cp
        .update_backup_definition(&p, &def.id, spec.clone(), def.version)
        .await
        .expect("rename");
    assert_eq!(
        cp.get_policy(&p, &hourly.id).await.expect("get").used_by[0].name,
        "nightly-2"
    );
    expect_err!(
        cp.update_backup_definition(&p, &def.id, spec.clone(), def.version)
            .await,
        crate::Error::PreconditionFailed { .. },
        "a stale definition update"
    );
    spec.policy_id = Some(daily.id);
    let moved = cp
        .update_backup_definition(&p, &def.id, spec, moved.definition.version)
        .await
        .expect("move");
    assert!(cp.get_policy(&p, &hourly.id).await.expect("get").used_by.is_empty());
    assert_eq!(cp.get_policy(&p, &daily.id).await.expect("get").used_by.len(), 1);
    let hourly_now = cp.get_policy(&p, &hourly.id).await.expect("get");
    cp.delete_policy(&p, &hourly.id, hourly_now.version)
        .await
        .expect("an unused policy goes");
    expect_err!(
        cp.create_backup_definition(&p, definition(cluster.id, Some(hourly.id), Some(dest.id), "late"))
            .await,
        crate::Error::Invalid { .. },
        "a definition on a deleted policy"
    );

    cp.delete_backup_definition(&p, &def.id, moved.definition.version)
        .await
        .expect("delete definition");
    let daily_now = cp.get_policy(&p, &daily.id).await.expect("get");
    assert!(
        daily_now.used_by.is_empty(),
        "deleting the definition releases its policy"
    );
    cp.delete_policy(&p, &daily.id, daily_now.version)
        .await
        .expect("now deletable");
}

/// A cluster referenced by a definition cannot be deleted; with recovery points it
/// needs confirmation; afterwards its points are hidden but kept.
pub async fn cluster_in_use_and_deletion(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let store = Store::new(items);
    let (p, _, policy) = new_org(&cp, "clusters").await;
    let dest = cp.create_destination(&p, s3("d")).await.expect("create");
    let cluster = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "doomed".into(),
                ..Default::default()
            },
        )
        .await
        .expect("register")
        .cluster;
    assert_eq!(cluster.state, ClusterState::Registered);
    let def = cp
        .create_backup_definition(
            &p,
            definition(cluster.id, Some(policy.id), Some(dest.id), "protects-doomed"),
        )
        .await
        .expect("create")
        .definition;
    let referenced = cp.get_cluster(&p, &cluster.id).await.expect("get");
    assert!(referenced.backup_definition_ids.contains(&def.id));
    expect_err!(
        cp.delete_cluster(&p, &cluster.id, cluster.version, true).await,
        crate::Error::PreconditionFailed { .. },
        "the attach bumped the cluster's version"
    );
    let err = expect_err!(
        cp.delete_cluster(&p, &cluster.id, referenced.version, true).await,
        crate::Error::Conflict { .. },
        "in use"
    );
    assert!(err.to_string().contains(&def.id.to_string()), "{err}");
    cp.delete_backup_definition(&p, &def.id, def.version)
        .await
        .expect("delete definition");

    let rp1 = store
        .create(recovery_point(
            p.org_id,
            cluster.id,
            Some(now() + chrono::Duration::days(3)),
        ))
        .await
        .expect("rp");
    store
        .create(recovery_point(p.org_id, cluster.id, None))
        .await
        .expect("rp");
    let released = cp.get_cluster(&p, &cluster.id).await.expect("get");
    assert!(released.backup_definition_ids.is_empty());
    let err = expect_err!(
        cp.delete_cluster(&p, &cluster.id, released.version, false).await,
        crate::Error::Conflict { .. },
        "unconfirmed"
    );
    assert!(
        err.to_string().contains("2 recovery point"),
        "the refusal counts them: {err}"
    );
    assert_eq!(
        cp.list_recovery_points(&p, &RecoveryPointFilter::default(), &PageRequest::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );
    cp.delete_cluster(&p, &cluster.id, released.version, true)
        .await
        .expect("confirmed delete");

    expect_err!(
        cp.get_cluster(&p, &cluster.id).await,
        crate::Error::NotFound { .. },
        "deleted cluster"
    );
    assert!(
        cp.list_recovery_points(&p, &RecoveryPointFilter::default(), &PageRequest::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "points of a deleted cluster are not listed"
    );
    expect_err!(
        cp.get_recovery_point(&p, &rp1.id).await,
        crate::Error::NotFound { .. },
        "nor readable"
    );
    assert!(
        store
            .find::<RecoveryPoint>(&p.org_id, &rp1.id)
            .await
            .expect("find")
            .is_some(),
        "but kept until expiry"
    );
    let other = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "target".into(),
                ..Default::default()
            },
        )
        .await
        .expect("register");
    cp.record_heartbeat(&other.agent_token, Heartbeat::default())
        .await
        .expect("heartbeat");
    let restore = RestoreSpec {
        recovery_point_id: rp1.id,
        target_cluster_id: other.cluster.id,
        selection: Selection::default(),
        namespace_prefix: String::new(),
        namespace_suffix: String::new(),
        namespace_map: Default::default(),
        storage_class_map: Default::default(),
        existing_resource_policy: Default::default(),
        restore_pvs: true,
    };
    expect_err!(
        cp.create_restore(&p, restore).await,
        crate::Error::Invalid { .. },
        "restore from a deleted cluster's point"
    );
}

/// The agent token finds its cluster across tenants (GSI1); a heartbeat makes it ACTIVE;
/// rotation retires the old token; a quiet agent reads as PENDING.
pub async fn agent_token_lookup(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let store = Store::new(items.clone());
    let (p, _, _) = new_org(&cp, "agents").await;
    let registered = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "edge".into(),
                ..Default::default()
            },
        )
        .await
        .expect("register");
    let found = store
        .find_cluster_by_agent_token_hash_cross_tenant(&registered.agent_token.hash())
        .await
        .expect("lookup")
        .expect("found by token hash");
    assert_eq!((found.id, found.org_id), (registered.cluster.id, p.org_id));
    assert_eq!(found.agent_token_hash, Some(registered.agent_token.hash()));
    let raw = items
        .get(&keys::org_pk(&p.org_id), &keys::cluster_sk(&found.id))
        .await
        .expect("get")
        .expect("item");
    assert_eq!(
        raw.gsi1.expect("indexed").pk,
        format!("AGENT#{}", registered.agent_token.hash().as_str())
    );
    assert!(!raw.body.to_string().contains(registered.agent_token.expose()));

    let beat = Heartbeat {
        kubernetes_version: Some("v1.33.1".into()),
        agent_version: Some("0.1.0".into()),
        node_count: Some(3),
        inventory: None,
        capabilities: None,
    };
    let active = cp
        .record_heartbeat(&registered.agent_token, beat)
        .await
        .expect("heartbeat");
    assert_eq!(active.state, ClusterState::Active);
    assert_eq!(cp.get_cluster(&p, &active.id).await.expect("get").node_count, Some(3));
    let later = contract_plane(items, CONTRACT_NOW_SECS + 3600);
    assert_eq!(
        later.get_cluster(&p, &active.id).await.expect("get").state,
        ClusterState::Pending,
        "quiet for an hour"
    );

    let rotated = cp
        .rotate_agent_token(&p, &active.id, active.version)
        .await
        .expect("rotate");
    expect_err!(
        cp.record_heartbeat(&registered.agent_token, Heartbeat::default()).await,
        crate::Error::Unauthenticated,
        "old token"
    );
    cp.record_heartbeat(&rotated.agent_token, Heartbeat::default())
        .await
        .expect("new token works");
    assert!(
        store
            .find_cluster_by_agent_token_hash_cross_tenant(&registered.agent_token.hash())
            .await
            .expect("lookup")
            .is_none()
    );
}

/// GSI2 lists recovery points of every org expiring before T, oldest first, across
/// pages; points without expiry, with a later one, or deleted are not in it.
pub async fn recovery_points_expiring_before(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let store = Store::new(items);
    let (a, _, _) = new_org(&cp, "expiry a").await;
    let (b, _, _) = new_org(&cp, "expiry b").await;
    let ca = ClusterId::new();
    let cb = ClusterId::new();
    let t = now();
    let h = |n: i64| Some(t - chrono::Duration::hours(n));
    let mut expected = [
        store.create(recovery_point(a.org_id, ca, h(5))).await.expect("rp"),
        store.create(recovery_point(b.org_id, cb, h(4))).await.expect("rp"),
        store.create(recovery_point(a.org_id, ca, h(3))).await.expect("rp"),
        store.create(recovery_point(b.org_id, cb, h(2))).await.expect("rp"),
    ];
    let moved = store.create(recovery_point(a.org_id, ca, h(1))).await.expect("rp");
    let deleted = store.create(recovery_point(a.org_id, ca, h(1))).await.expect("rp");
    store.create(recovery_point(a.org_id, ca, None)).await.expect("rp");
    store
        .create(recovery_point(b.org_id, cb, Some(t + chrono::Duration::hours(1))))
        .await
        .expect("rp");
    store
        .create(recovery_point(b.org_id, cb, Some(t)))
        .await
        .expect("rp at exactly T is not before T");

    let mut later = moved.clone();
    later.expires_at = Some(t + chrono::Duration::days(30));
    let moved_version = moved.version;
    store.update(later, moved_version).await.expect("extend expiry");
    store
        .delete::<RecoveryPoint>(&a.org_id, &deleted.id, deleted.version)
        .await
        .expect("delete");
    let mut locked = expected[2].clone();
    locked.locked = true;
    expected[2] = store.update(locked, expected[2].version).await.expect("lock");

    let ours = [a.org_id, b.org_id];
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let page = store
            .recovery_points_expiring_before_cross_tenant(t, &PageRequest::after(cursor, 2))
            .await
            .expect("query");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().filter(|rp| ours.contains(&rp.org_id)));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let ids: Vec<_> = seen.iter().map(|rp| rp.id).collect();
    let want: Vec<_> = expected.iter().map(|rp| rp.id).collect();
    assert_eq!(
        ids, want,
        "exactly the points expiring before T, oldest first, across orgs and pages"
    );
    assert!(seen[2].locked, "locked points are listed (retention skips them)");
    let bad = store
        .recovery_points_expiring_before_cross_tenant(t, &PageRequest::after(Some("garbage".into()), 2))
        .await;
    expect_err!(bad, crate::Error::Invalid { .. }, "a bad cursor");
}

/// Every listing pages with an opaque cursor: no duplicates, nothing missing, and a
/// cursor from another listing or org is `Invalid { field: "cursor" }`.
pub async fn pagination_across_pages(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let (p, _, _) = new_org(&cp, "pages").await;
    let (q, _, _) = new_org(&cp, "other pages").await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            cp.create_destination(&p, s3(&format!("d{i}")))
                .await
                .expect("create")
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    let mut first_cursor = None;
    loop {
        let page = cp
            .list_destinations(&p, &PageRequest::after(cursor, 3))
            .await
            .expect("list");
        sizes.push(page.items.len());
        seen.extend(page.items.into_iter().map(|d| d.id));
        if first_cursor.is_none() {
            first_cursor = page.next_cursor.clone();
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(sizes.len() < 10, "pagination must end");
    }
    assert_eq!(sizes, [3, 3, 1]);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "no duplicates");
    created.sort();
    assert_eq!(sorted, created, "nothing missing");
    let first_cursor = first_cursor.expect("a first page of 3 of 7 has a cursor");
    let e = expect_err!(
        cp.list_destinations(&q, &PageRequest::after(Some(first_cursor.clone()), 3))
            .await,
        crate::Error::Invalid { .. },
        "another org's cursor"
    );
    assert!(matches!(e, crate::Error::Invalid { ref field, .. } if field == "cursor"));
    expect_err!(
        cp.list_policies(&p, &PageRequest::after(Some(first_cursor), 3)).await,
        crate::Error::Invalid { .. },
        "another listing's cursor"
    );
    expect_err!(
        cp.list_destinations(&p, &PageRequest::after(Some("!!".into()), 3))
            .await,
        crate::Error::Invalid { .. },
        "garbage"
    );
    expect_err!(
        cp.list_destinations(&p, &PageRequest::first(0)).await,
        crate::Error::Invalid { .. },
        "limit 0"
    );

    // Jobs list newest first; a filter fills pages across store pages.
    let cluster = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "c".into(),
                ..Default::default()
            },
        )
        .await
        .expect("register")
        .cluster;
    let store = Store::new(items.clone());
    let mut job_ids = Vec::new();
    for i in 0..6u64 {
        let at = now() + chrono::Duration::seconds(i as i64);
        let mut job = crate::job::Job::pending(p.org_id, JobType::K8sBackup, crate::job::JobTrigger::Scheduled, at);
        job.cluster_id = if i % 2 == 0 { Some(cluster.id) } else { None };
        job_ids.push(store.create(job).await.expect("job").id);
    }
    let raw = store
        .list_where(&p.org_id, &PageRequest::first(10), false, |_: &crate::job::Job| true)
        .await
        .expect("list");
    let newest_first: Vec<_> = job_ids.iter().rev().copied().collect();
    assert_eq!(raw.items.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);
    let filter = JobFilter {
        cluster_id: Some(cluster.id),
        ..JobFilter::default()
    };
    let mut filtered = Vec::new();
    let mut cursor = None;
    loop {
        let page = cp
            .list_jobs(&p, &filter, &PageRequest::after(cursor, 2))
            .await
            .expect("list jobs");
        filtered.extend(page.items.into_iter().map(|j| j.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(filtered.len() <= 6);
    }
    assert_eq!(filtered, [job_ids[4], job_ids[2], job_ids[0]]);
    let raw = items
        .query(Query {
            index: None,
            pk: keys::org_pk(&p.org_id),
            range: SortKeyRange::BeginsWith("JOB#".into()),
            limit: 10,
            ascending: true,
            cursor: None,
        })
        .await
        .expect("raw query");
    let sks: Vec<_> = raw.items.iter().map(|i| i.sk.clone()).collect();
    let want: Vec<_> = job_ids.iter().map(|id| format!("JOB#{}", id.ulid())).collect();
    assert_eq!(sks, want, "jobs are at JOB#<ulid>, in creation order");
}

/// Run-now creates a PENDING K8S_BACKUP job; cancel follows the state machine; a
/// restore needs an ACTIVE target and creates its K8S_RESTORE job with it.
pub async fn jobs_and_restores(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let store = Store::new(items.clone());
    let (p, _, policy) = new_org(&cp, "jobs").await;
    let dest = cp.create_destination(&p, s3("d")).await.expect("create");
    let reg = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "c".into(),
                ..Default::default()
            },
        )
        .await
        .expect("register");
    let def = cp
        .create_backup_definition(&p, definition(reg.cluster.id, Some(policy.id), Some(dest.id), "b"))
        .await
        .expect("create")
        .definition;
    let paused = cp.pause_backup_definition(&p, &def.id, None).await.expect("pause");
    assert!(paused.definition.spec.paused);
    expect_err!(
        cp.resume_backup_definition(&p, &def.id, Some(def.version)).await,
        crate::Error::PreconditionFailed { .. },
        "a resume with a stale version"
    );
    let resumed = cp
        .resume_backup_definition(&p, &def.id, Some(paused.definition.version))
        .await
        .expect("resume");
    assert!(!resumed.definition.spec.paused);

    // Runs need an ACTIVE cluster: its agent heartbeats.
    cp.record_heartbeat(&reg.agent_token, Heartbeat::default())
        .await
        .expect("heartbeat");
    let job = cp
        .run_backup_now(&p, &def.id, RunNowRequest::default())
        .await
        .expect("run now");
    assert_eq!((job.job_type, job.state), (JobType::K8sBackup, JobState::Pending));
    assert_eq!(
        (job.cluster_id, job.definition_id),
        (Some(reg.cluster.id), Some(def.id))
    );
    assert_eq!(
        job.retention.map(|r| r.retain_days),
        Some(7),
        "the policy's first row decides"
    );
    let canceled = cp.cancel_job(&p, &job.id, None).await.expect("cancel");
    assert_eq!(canceled.state, JobState::Canceled);
    expect_err!(
        cp.cancel_job(&p, &job.id, None).await,
        crate::Error::Conflict { .. },
        "a second cancel"
    );

    let running = cp
        .run_backup_now(&p, &def.id, RunNowRequest::default())
        .await
        .expect("run now");
    let mut started = running.clone();
    started.transition(JobState::Running, None, now()).expect("start");
    let started = store.update(started, running.version).await.expect("store");
    assert_eq!(
        cp.cancel_job(&p, &started.id, Some(started.version))
            .await
            .expect("cancel")
            .state,
        JobState::Cancelling
    );
    let listed = cp
        .list_jobs(
            &p,
            &JobFilter {
                state: Some(JobState::Cancelling),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .expect("list");
    assert_eq!(listed.items.iter().map(|j| j.id).collect::<Vec<_>>(), [started.id]);

    let mut rp = recovery_point(p.org_id, reg.cluster.id, Some(now() + chrono::Duration::days(7)));
    rp.definition_id = def.id;
    let rp = store.create(rp).await.expect("rp");
    let spec = RestoreSpec {
        recovery_point_id: rp.id,
        target_cluster_id: reg.cluster.id,
        selection: Selection::default(),
        namespace_prefix: "r-".into(),
        namespace_suffix: String::new(),
        namespace_map: Default::default(),
        storage_class_map: Default::default(),
        existing_resource_policy: crate::restore::ExistingResourcePolicy::Update,
        restore_pvs: true,
    };
    // An hour after its last heartbeat the target is PENDING: refused.
    let later = contract_plane(items.clone(), CONTRACT_NOW_SECS + 3600);
    let err = expect_err!(
        later.create_restore(&p, spec.clone()).await,
        crate::Error::Conflict { .. },
        "a PENDING target"
    );
    assert!(err.to_string().contains("ACTIVE"), "{err}");
    cp.record_heartbeat(&reg.agent_token, Heartbeat::default())
        .await
        .expect("heartbeat");
    let created = cp.create_restore(&p, spec).await.expect("restore");
    assert_eq!(
        (created.job.job_type, created.job.state),
        (JobType::K8sRestore, JobState::Pending)
    );
    assert_eq!(created.restore.job_id, created.job.id);
    assert_eq!(
        cp.get_job(&p, &created.job.id).await.expect("stored").restore_id,
        Some(created.restore.id)
    );
    assert_eq!(
        cp.get_restore(&p, &created.restore.id)
            .await
            .expect("stored")
            .source_cluster_id,
        reg.cluster.id
    );
    assert_eq!(
        cp.list_restores(&p, &PageRequest::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
}

/// The free plan caps retention and refuses copies to Arca-managed storage, wherever
/// the destination comes from; paid lifts both.
pub async fn plan_rules(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items, CONTRACT_NOW_SECS);
    let (p, _, policy) = new_org(&cp, "plans").await;
    let managed = cp
        .create_destination(
            &p,
            DestinationSpec {
                name: "arca".into(),
                target: DestinationTarget::ArcaManaged { region: None },
            },
        )
        .await
        .expect("create");
    let cluster = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "c".into(),
                default_destination_id: Some(managed.id),
                ..Default::default()
            },
        )
        .await
        .expect("register")
        .cluster;
    let mut spec = definition(cluster.id, Some(policy.id), None, "copy");
    spec.pv_mode = PvMode::SnapshotAndCopy;
    let err = expect_err!(
        cp.create_backup_definition(&p, spec.clone()).await,
        crate::Error::LimitExceeded { .. },
        "free copy"
    );
    assert!(err.to_string().contains("Arca-managed"), "{err}");
    assert!(
        cp.get_policy(&p, &policy.id).await.expect("get").used_by.is_empty(),
        "a refused definition leaves no trace"
    );
    let mut long = policy.spec.clone();
    long.schedules[0].retain_days = 45;
    let err = expect_err!(
        cp.update_policy(&p, &policy.id, long.clone(), policy.version).await,
        crate::Error::LimitExceeded { .. },
        "free retention"
    );
    assert!(err.to_string().contains("limit of 30 days"), "{err}");

    cp.set_plan(&p.org_id, Plan::Paid).await.expect("upgrade");
    let view = cp
        .create_backup_definition(&p, spec)
        .await
        .expect("paid copies to managed storage");
    assert_eq!(
        view.effective_destination.map(|e| (e.destination_id, e.source)),
        Some((managed.id, DestinationSource::Cluster))
    );
    let current = cp.get_policy(&p, &policy.id).await.expect("get");
    assert_eq!(current.version, policy.version + 1, "the attach bumped the policy");
    let updated = cp
        .update_policy(&p, &policy.id, long, current.version)
        .await
        .expect("paid retention");
    assert_eq!(
        (updated.version, updated.used_by.len()),
        (current.version + 1, 1),
        "usedBy survives an edit"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryItemStore;

    #[tokio::test]
    async fn the_store_contract_holds_on_the_in_memory_store() {
        store_contract(Arc::new(MemoryItemStore::default())).await;
    }
}
