//! The DynamoDB adapter of the storage port against moto's DynamoDB, over the wire.

use arca_aws::DynamoItemStore;
use arca_aws::dynamo::create_table;
use arca_core::Error;
use arca_core::ports::item_store::{Condition, Item, ItemStore, Query, SortKeyRange};

#[tokio::test]
async fn dynamo_item_store_passes_the_contract() {
    let Some(env) = arca_testenv::aws() else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&env.sdk_config().await);
    let table = arca_testenv::unique("arca-contract");
    create_table(&client, &table).await.expect("create table on moto");

    let store = DynamoItemStore::new(client.clone(), &table);
    arca_core::testing::contracts::item_store::item_store_contract(&store).await;
    // The suite keeps its keys apart, so it passes again on the same table.
    arca_core::testing::contracts::item_store::item_store_contract(&store).await;

    // The table has the documented shape: TTL on `ttl`, both indexes projecting ALL.
    let described = client.describe_table().table_name(&table).send().await.unwrap();
    let indexes = described.table().unwrap().global_secondary_indexes();
    let mut names: Vec<_> = indexes.iter().filter_map(|i| i.index_name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["GSI1", "GSI2", "GSI3"]);
    assert!(indexes.iter().all(|i| {
        i.projection().and_then(|p| p.projection_type()) == Some(&aws_sdk_dynamodb::types::ProjectionType::All)
    }));
    let ttl = client.describe_time_to_live().table_name(&table).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("ttl"));
}

#[tokio::test]
async fn items_are_stored_with_the_documented_attributes() {
    let Some(env) = arca_testenv::aws() else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&env.sdk_config().await);
    let table = arca_testenv::unique("arca-shape");
    create_table(&client, &table).await.expect("create table on moto");
    let store = DynamoItemStore::new(client.clone(), &table);
    let item = Item {
        pk: "ORG#1".into(),
        sk: "KEY#1".into(),
        gsi1: Some(arca_core::ports::item_store::IndexKey {
            pk: "HASH#x".into(),
            sk: "KEY".into(),
        }),
        gsi2: None,
        gsi3: None,
        version: 3,
        expires_at: Some(1_900_000_000),
        body: serde_json::json!({ "name": "ci" }),
    };
    store.put(item, Condition::NotExists).await.unwrap();

    use aws_sdk_dynamodb::types::AttributeValue;
    let raw = client
        .get_item()
        .table_name(&table)
        .key("PK", AttributeValue::S("ORG#1".into()))
        .key("SK", AttributeValue::S("KEY#1".into()))
        .send()
        .await
        .unwrap();
    let raw = raw.item().unwrap();
    assert_eq!(raw["GSI1PK"], AttributeValue::S("HASH#x".into()));
    assert_eq!(raw["GSI1SK"], AttributeValue::S("KEY".into()));
    assert!(!raw.contains_key("GSI2PK"), "the index is sparse: {raw:?}");
    assert_eq!(raw["version"], AttributeValue::N("3".into()));
    assert_eq!(raw["ttl"], AttributeValue::N("1900000000".into()));
    assert_eq!(raw["body"], AttributeValue::S(r#"{"name":"ci"}"#.into()));
}

#[tokio::test]
async fn a_missing_table_is_reported_as_not_found() {
    let Some(env) = arca_testenv::aws() else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&env.sdk_config().await);
    let store = DynamoItemStore::new(client, "arca-no-such-table");
    let err = store.get("P", "S").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = store
        .query(Query {
            index: None,
            pk: "P".into(),
            range: SortKeyRange::All,
            limit: 1,
            ascending: true,
            cursor: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
