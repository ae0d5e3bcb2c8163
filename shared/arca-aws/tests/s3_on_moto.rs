//! The S3 adapter against moto's S3, over the wire.

use arca_aws::S3ObjectStore;
use arca_core::Error;
use arca_core::ports::ObjectStore;

#[tokio::test]
async fn s3_object_store_passes_the_contract() {
    let Some(env) = arca_testenv::aws() else { return };
    let config = env.sdk_config().await;
    let client = arca_aws::config::s3_client(&config);
    let bucket = arca_testenv::unique("arca-contract");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket on moto");

    let store = S3ObjectStore::new(client.clone(), &bucket, "tenant-a");
    arca_core::testing::contracts::object_store::object_store_contract(&store, "contract").await;

    // The root is honoured: a store with another root sees none of these objects.
    let other = S3ObjectStore::new(client, &bucket, "tenant-b");
    assert!(other.list("").await.unwrap().is_empty());
    assert!(matches!(
        other.get("contract/data/two").await,
        Err(Error::NotFound { .. })
    ));
}
