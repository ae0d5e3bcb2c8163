//! The typed, tenant-scoped store and the control-plane services of `arca-core`, over
//! the DynamoDB adapter against moto: the same suite the embedded store passes.

use std::sync::Arc;

use arca_aws::DynamoItemStore;
use arca_aws::dynamo::create_table;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_store_contract_holds_on_dynamodb() {
    let Some(env) = arca_testenv::aws() else { return };
    let client = aws_sdk_dynamodb::Client::new(&env.sdk_config().await);
    let table = arca_testenv::unique("arca-store");
    create_table(&client, &table).await.expect("create table on moto");
    let store = Arc::new(DynamoItemStore::new(client, &table));
    arca_core::testing::store_contract(store.clone()).await;
    // Every part makes fresh orgs, so the suite passes again on the same table.
    arca_core::testing::store_contract(store).await;
}
