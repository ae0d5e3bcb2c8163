//! Clusters: in use, deletion, agent tokens, heartbeats.

use std::sync::Arc;

use crate::control_plane::RecoveryPointFilter;
use crate::model::cluster::{ClusterSpec, ClusterState, Heartbeat};
use crate::model::recovery::RecoveryPoint;
use crate::model::restore::RestoreSpec;
use crate::ports::item_store::ItemStore;
use crate::store::page::PageRequest;
use crate::store::{Store, keys};

use crate::testing::*;

/// A cluster referenced by a definition cannot be deleted; with recovery points it
/// needs confirmation; afterwards its points are hidden but kept.
pub async fn cluster_in_use_and_deletion(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let store = Store::new(items);
    let (p, _, policy) = new_org(&cp, "clusters").await;
    let listed_points = async || {
        cp.list_recovery_points(&p, &RecoveryPointFilter::default(), &PageRequest::default())
            .await
            .expect("list")
            .items
            .len()
    };
    let dest = cp.create_destination(&p, s3("d")).await.expect("create");
    let cluster = register(&cp, &p, "doomed").await.cluster;
    assert_eq!(cluster.state, ClusterState::Registered);
    let def = create_definition(
        &cp,
        &p,
        definition(cluster.id, Some(policy.id), Some(dest.id), "protects-doomed"),
    )
    .await;
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
    assert_eq!(listed_points().await, 2);
    cp.delete_cluster(&p, &cluster.id, released.version, true)
        .await
        .expect("confirmed delete");

    expect_err!(
        cp.get_cluster(&p, &cluster.id).await,
        crate::Error::NotFound { .. },
        "deleted cluster"
    );
    assert!(listed_points().await == 0, "points of a deleted cluster are not listed");
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
    let other = active_cluster(&cp, &p, "target").await;
    let restore = RestoreSpec::everything(rp1.id, other.cluster.id);
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
    let registered = register(&cp, &p, "edge").await;
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

/// A heartbeat writes the agent item, not the cluster: the cluster's ETag stays, so a
/// user's edit with it succeeds, and reads still show the agent's facts.
pub async fn heartbeats_leave_the_cluster_etag_alone(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let (p, _, _) = new_org(&cp, "etag").await;
    let reg = register(&cp, &p, "c").await;
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
