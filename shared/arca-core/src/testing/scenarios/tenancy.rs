//! Sign-up, authentication, roles, tenant isolation, optimistic concurrency, transactions.

use std::sync::Arc;

use crate::ids::ClusterId;
use crate::model::auth::{ApiKeySpec, Role};
use crate::model::recovery::RecoveryPoint;
use crate::model::secret::Secret;
use crate::ports::item_store::{Condition, ItemStore, Write};
use crate::store::page::PageRequest;
use crate::store::{Store, Tx, keys};

use crate::testing::*;

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
    let cluster = register(&cp, &a, "a-cluster").await.cluster;

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
        cp.delete_destination(&b, &dest.id, dest.version, false).await,
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
        cp.delete_destination(&p, &dest.id, 1, false).await,
        crate::Error::PreconditionFailed { .. },
        "stale delete"
    );
    assert_eq!(
        cp.get_destination(&p, &dest.id).await.expect("get").spec.name,
        "v2",
        "a failed write changes nothing"
    );
    cp.delete_destination(&p, &dest.id, 2, false)
        .await
        .expect("delete at 2");
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
        cp.delete_destination(&p, &dest.id, 2, false).await,
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
