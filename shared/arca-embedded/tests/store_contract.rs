//! The typed, tenant-scoped store and the control-plane services of `arca-core`, over
//! the redb adapter on a real file: every key shape, condition, transaction, index
//! query and page the domain relies on.

use std::sync::Arc;

use arca_embedded::RedbItemStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_store_contract_holds_on_redb() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Arc::new(RedbItemStore::open(dir.path().join("arca.redb")).expect("open redb"));
    arca_core::testing::store_contract(store.clone()).await;
    // Every part makes fresh orgs, so the suite passes again on the same file.
    arca_core::testing::store_contract(store).await;
}
