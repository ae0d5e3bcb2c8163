//! In-org relations (GSI3, and GSI1 for recovery points by destination): each index
//! follows its records through creation, update and deletion, and `reindex_org` gives
//! records written before an index existed their keys.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::ids::{JobId, RecoveryPointId};
use crate::model::cluster::ClusterSpec;
use crate::model::job::{Job, JobTrigger, JobType};
use crate::model::recovery::RecoveryPoint;
use crate::ports::item_store::ItemStore;
use crate::store::page::PageRequest;
use crate::store::{Store, keys};

use crate::testing::*;

pub async fn relations_follow_their_records(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let store = Store::new(items.clone());
    let (p, _, policy) = new_org(&cp, "relations").await;
    let org = p.org_id;
    let x = cp.create_destination(&p, s3("x")).await.expect("create x");
    let y = cp.create_destination(&p, s3("y")).await.expect("create y");
    let a = cp
        .register_cluster(
            &p,
            ClusterSpec {
                name: "a".into(),
                default_destination_id: Some(x.id),
                ..Default::default()
            },
        )
        .await
        .expect("register a")
        .cluster;
    let b = register(&cp, &p, "b").await.cluster;
    let on_b = create_definition(&cp, &p, definition(b.id, Some(policy.id), Some(y.id), "b-to-y")).await;

    // Who names a destination, and how that moves with an update.
    let names = |clusters: Vec<crate::model::cluster::Cluster>| clusters.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        names(
            store
                .clusters_defaulting_to(&org, &x.id, 10)
                .await
                .expect("relations scenario")
        ),
        [a.id]
    );
    assert!(
        store
            .clusters_defaulting_to(&org, &y.id, 10)
            .await
            .expect("relations scenario")
            .is_empty()
    );
    let named: Vec<_> = store
        .definitions_naming(&org, &y.id, 10)
        .await
        .expect("relations scenario");
    assert_eq!(named.iter().map(|d| d.id).collect::<Vec<_>>(), [on_b.id]);
    assert!(
        store
            .definitions_naming(&org, &x.id, 10)
            .await
            .expect("relations scenario")
            .is_empty()
    );
    cp.update_cluster(
        &p,
        &a.id,
        ClusterSpec {
            name: "a".into(),
            default_destination_id: Some(y.id),
            ..Default::default()
        },
        a.version,
    )
    .await
    .expect("move a's default");
    assert!(
        store
            .clusters_defaulting_to(&org, &x.id, 10)
            .await
            .expect("relations scenario")
            .is_empty(),
        "an updated default leaves its old destination's partition"
    );
    assert_eq!(
        names(
            store
                .clusters_defaulting_to(&org, &y.id, 10)
                .await
                .expect("relations scenario")
        ),
        [a.id]
    );

    // Recovery points by destination (and cluster) and by cluster.
    let mut in_x = BTreeSet::new();
    for _ in 0..3 {
        in_x.insert(
            store
                .create(stored_point(org, a.id, Some(x.id), None))
                .await
                .expect("relations scenario")
                .id,
        );
    }
    let a_in_y = store
        .create(stored_point(org, a.id, Some(y.id), None))
        .await
        .expect("relations scenario")
        .id;
    let mut b_in_y = BTreeSet::new();
    for _ in 0..2 {
        b_in_y.insert(
            store
                .create(stored_point(org, b.id, Some(y.id), None))
                .await
                .expect("relations scenario")
                .id,
        );
    }
    let nowhere = store
        .create(stored_point(org, b.id, None, None))
        .await
        .expect("relations scenario")
        .id;
    let ids = |points: Vec<RecoveryPoint>| points.into_iter().map(|p| p.id).collect::<BTreeSet<_>>();
    assert_eq!(
        ids(store
            .recovery_points_in(&org, &x.id, None)
            .await
            .expect("relations scenario")),
        in_x
    );
    assert_eq!(
        ids(store
            .recovery_points_in(&org, &y.id, Some(&b.id))
            .await
            .expect("relations scenario")),
        b_in_y
    );
    let mut all_in_y = b_in_y.clone();
    all_in_y.insert(a_in_y);
    assert_eq!(
        ids(store
            .recovery_points_in(&org, &y.id, None)
            .await
            .expect("relations scenario")),
        all_in_y
    );
    let mut of_b = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store
            .recovery_points_of_cluster(&org, &b.id, &PageRequest::after(cursor, 1), true, |_| true)
            .await
            .expect("relations scenario");
        assert!(page.items.len() <= 1);
        of_b.extend(page.items.into_iter().map(|p| p.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected_b = b_in_y.clone();
    expected_b.insert(nowhere);
    assert_eq!(of_b, expected_b, "a cluster's points, paged one by one");
    assert!(
        store
            .holds_recovery_points(&org, &x.id)
            .await
            .expect("relations scenario")
    );
    for id in &in_x {
        let rp = store.get::<RecoveryPoint>(&org, id).await.expect("relations scenario");
        store
            .delete::<RecoveryPoint>(&org, id, rp.version)
            .await
            .expect("relations scenario");
    }
    assert!(
        !store
            .holds_recovery_points(&org, &x.id)
            .await
            .expect("relations scenario")
    );
    assert!(
        store
            .recovery_points_in(&org, &x.id, None)
            .await
            .expect("relations scenario")
            .is_empty()
    );

    // A cluster's jobs, newest first.
    let mut jobs: Vec<JobId> = Vec::new();
    for minutes in 0..3 {
        let mut job = Job::pending(
            org,
            JobType::K8sBackup,
            JobTrigger::Manual,
            now() + chrono::Duration::minutes(minutes),
        );
        job.cluster_id = Some(b.id);
        jobs.push(store.create(job).await.expect("relations scenario").id);
    }
    let listed = store
        .jobs_of_cluster(&org, &b.id, &PageRequest::first(10), false, |_| true)
        .await
        .expect("relations scenario");
    jobs.reverse();
    assert_eq!(listed.items.iter().map(|j| j.id).collect::<Vec<_>>(), jobs);
    assert!(
        store
            .jobs_of_cluster(&org, &a.id, &PageRequest::first(10), false, |_| true)
            .await
            .expect("relations scenario")
            .items
            .is_empty()
    );

    // A record written before the indexes: stripped of its keys, it is found again after
    // `reindex_org`, with its body and version as they were.
    let key = (keys::org_pk(&org), keys::recovery_point_sk(&a_in_y));
    let stored = items
        .get(&key.0, &key.1)
        .await
        .expect("relations scenario")
        .expect("stored");
    let mut old = stored.clone();
    (old.gsi1, old.gsi3) = (None, None);
    items
        .put(old, crate::ports::item_store::Condition::Version(stored.version))
        .await
        .expect("relations scenario");
    assert!(
        !ids(store
            .recovery_points_in(&org, &y.id, Some(&a.id))
            .await
            .expect("relations scenario"))
        .contains(&a_in_y)
    );
    assert!(store.reindex_org(&org).await.expect("relations scenario") >= 1);
    assert_eq!(
        items.get(&key.0, &key.1).await.expect("relations scenario"),
        Some(stored),
        "only the index keys were given back"
    );
    let found: Vec<RecoveryPointId> = store
        .recovery_points_in(&org, &y.id, Some(&a.id))
        .await
        .expect("relations scenario")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(found, [a_in_y]);
    assert_eq!(
        store.reindex_org(&org).await.expect("relations scenario"),
        0,
        "nothing left to re-index"
    );

    // The whole table, once per index generation: an upgrade's first background run finds
    // the orgs (a scan) and re-indexes each; later runs read the marker and stop.
    let stripped = items
        .get(&key.0, &key.1)
        .await
        .expect("relations scenario")
        .expect("stored");
    let mut old = stripped.clone();
    old.gsi1 = None;
    items
        .put(old, crate::ports::item_store::Condition::Version(stripped.version))
        .await
        .expect("relations scenario");
    items
        .delete(
            keys::META_PK,
            keys::INDEX_GENERATION_SK,
            crate::ports::item_store::Condition::None,
        )
        .await
        .expect("relations scenario");
    let orgs = items
        .scan_partitions_with(keys::ORG_SK)
        .await
        .expect("relations scenario");
    assert!(orgs.contains(&keys::org_pk(&org)), "the scan finds the org");
    assert!(orgs.iter().all(|pk| keys::org_of_pk(pk).is_some()), "{orgs:?}");
    let reindexed = store.reindex_all().await.expect("relations scenario");
    assert!(reindexed.is_some_and(|n| n >= 1), "{reindexed:?}");
    assert_eq!(
        items.get(&key.0, &key.1).await.expect("relations scenario"),
        Some(stripped)
    );
    assert_eq!(
        store.reindex_all().await.expect("relations scenario"),
        None,
        "the marker says the table is current"
    );
}
