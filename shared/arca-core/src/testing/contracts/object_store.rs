//! The object-store contract.

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
    assert_eq!(
        store.get_at_most(&key("data/one"), 16).await.expect("get_at_most"),
        Some(body.clone()),
        "get_at_most returns an object of exactly the bound"
    );
    assert_eq!(
        store.get_at_most(&key("data/one"), 15).await.expect("get_at_most"),
        None,
        "get_at_most refuses an object one byte over the bound"
    );
    match store.get_at_most(&key("absent"), 16).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("get_at_most of an absent key must be NotFound, got {other:?}"),
    }

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

    // Conditional creation: the lock primitive.
    let lock = key("locks/gc");
    let take_lock = async |body: &'static [u8]| {
        store
            .put_if_absent(&lock, Bytes::from_static(body))
            .await
            .expect("put_if_absent")
    };
    assert!(take_lock(b"first").await, "put_if_absent of a new key writes it");
    assert!(
        !take_lock(b"second").await,
        "put_if_absent of an existing key is refused"
    );
    assert_eq!(
        store.get(&lock).await.expect("get"),
        Bytes::from_static(b"first"),
        "and leaves it as it was"
    );
    store.delete(&lock).await.expect("delete");
    assert!(take_lock(b"again").await, "a deleted key can be taken again");
    let locks = store.list(&key("locks/")).await.expect("list");
    assert_eq!(locks.len(), 1, "no partial or temporary objects are listed: {locks:?}");
}

/// Concurrent conditional writes of one key: exactly one wins. Run against backends that
/// promise atomicity as the real service does (S3 does; moto checks and writes in two
/// steps, so its result under a race proves nothing either way).
pub async fn conditional_put_race(store: &dyn ObjectStore, prefix: &str) {
    for round in 0..20 {
        let race = format!("{prefix}/race/{round}");
        let (a, b, c) = tokio::join!(
            store.put_if_absent(&race, Bytes::from_static(b"a")),
            store.put_if_absent(&race, Bytes::from_static(b"b")),
            store.put_if_absent(&race, Bytes::from_static(b"c")),
        );
        let winners = [a.expect("a"), b.expect("b"), c.expect("c")]
            .iter()
            .filter(|w| **w)
            .count();
        assert_eq!(
            winners, 1,
            "of concurrent put_if_absent calls exactly one wins (round {round})"
        );
    }
}
