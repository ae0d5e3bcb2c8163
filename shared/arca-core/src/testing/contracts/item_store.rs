//! The item-store contract.

/// Exercises every [`ItemStore`](crate::ports::item_store::ItemStore) operation and every
/// failure the port promises, and panics with a description of the first broken promise.
///
/// Every key it writes starts with a prefix unique to the call, so the suite can run
/// again and again against one shared table. It loops over pages until the cursor is
/// `None` (never until a short page), since DynamoDB may end with an empty page.
pub async fn item_store_contract(store: &dyn crate::ports::item_store::ItemStore) {
    item_store_suite::run(store).await;
}

mod item_store_suite {
    use serde_json::json;

    use crate::Error;
    use crate::ports::item_store::{
        Condition, Index, IndexKey, Item, ItemStore, MAX_TRANSACTION_WRITES, Query, SortKeyRange, Write,
    };

    pub(super) async fn run(store: &dyn ItemStore) {
        let run = format!("contract-{}", ulid::Ulid::new());
        single_writes(store, &run).await;
        table_queries(store, &run).await;
        index_queries(store, &run).await;
        transactions(store, &run).await;
        batch_gets(store, &run).await;
    }

    /// `get_many` answers in the keys' order, `None` for a missing key, a key asked twice
    /// twice, past DynamoDB's 100 keys per call; more than a page's worth is refused.
    async fn batch_gets(store: &dyn ItemStore, run: &str) {
        let pk = format!("{run}#batch");
        let mut keys = Vec::new();
        for n in 0..150 {
            let sk = format!("item#{n:03}");
            put(store, &item(&pk, &sk, 1), Condition::NotExists).await;
            keys.push((pk.clone(), sk));
        }
        keys.push((pk.clone(), "missing".to_owned()));
        keys.push(keys[3].clone());
        keys.reverse();
        let found = store.get_many(&keys).await.expect("get_many");
        assert_eq!(found.len(), keys.len());
        for ((pk, sk), got) in keys.iter().zip(&found) {
            match got {
                Some(item) => assert_eq!((&item.pk, &item.sk), (pk, sk), "in the keys' order"),
                None => assert_eq!(sk, "missing"),
            }
        }
        assert_eq!(
            found.iter().flatten().count(),
            151,
            "150 items, one of them asked twice"
        );
        assert_eq!(found[0].as_ref().map(|i| i.sk.as_str()), Some("item#003"));
        assert_eq!(store.get_many(&[]).await.expect("empty"), Vec::<Option<Item>>::new());
        let too_many: Vec<(String, String)> = (0..=crate::ports::item_store::MAX_BATCH_GET)
            .map(|n| (pk.clone(), format!("k{n}")))
            .collect();
        assert_invalid(store.get_many(&too_many).await, "more keys than a batch get takes");
    }

    fn item(pk: &str, sk: &str, version: u64) -> Item {
        Item {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            gsi1: None,
            gsi2: None,
            gsi3: None,
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
        let g3 = format!("{run}#G3");
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
        both.gsi3 = index_key(&g3, "RP#b");
        put(store, &both, Condition::NotExists).await;
        let mut child = item(&at("u9"), "child", 1);
        child.gsi3 = index_key(&g3, "RP#a");
        put(store, &child, Condition::NotExists).await;

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

        let found = read_all(
            store,
            query(Some(Index::Gsi3), &g3, SortKeyRange::BeginsWith("RP#".into()), 1, false),
        )
        .await;
        assert_eq!(
            keys(&found),
            [(at("u8"), "both".to_owned()), (at("u9"), "child".to_owned())],
            "Gsi3 holds exactly the items with a Gsi3 key, descending, paged"
        );
        let found = read_all(store, query(Some(Index::Gsi3), &g1, SortKeyRange::All, 10, true)).await;
        assert!(found.is_empty(), "Gsi1 keys are not in Gsi3: {found:?}");

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
        bad.cursor = Some(crate::ports::item_store::Cursor {
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
