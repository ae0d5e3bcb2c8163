//! Plan rules.

use std::sync::Arc;

use crate::model::backup::PvMode;
use crate::model::cluster::ClusterSpec;
use crate::model::destination::{DestinationSource, DestinationSpec, DestinationTarget};
use crate::model::plan::Plan;
use crate::ports::item_store::ItemStore;

use crate::testing::*;

/// The free plan caps retention and refuses PV copies (to Arca-managed storage and to the
/// org's own storage alike), wherever the destination comes from; paid lifts both.
pub async fn plan_rules(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items, CONTRACT_NOW_SECS);
    let (p, _, policy) = new_org(&cp, "plans").await;
    let managed = cp
        .create_destination(
            &p,
            DestinationSpec {
                object_lock: None,
                customer_key: None,
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
    // The org's own bucket is no way around it: copying PV data is the paid feature.
    let own = cp
        .create_destination(
            &p,
            DestinationSpec {
                object_lock: None,
                customer_key: None,
                name: "own".into(),
                target: DestinationTarget::S3 {
                    endpoint: None,
                    bucket: "own-bucket".into(),
                    region: "eu-west-1".into(),
                    prefix: String::new(),
                    credentials_ref: None,
                    skip_tls_verify: false,
                    path_style: None,
                    ca_bundle: None,
                },
            },
        )
        .await
        .expect("create");
    let mut to_own = spec.clone();
    to_own.destination_id = Some(own.id);
    let err = expect_err!(
        cp.create_backup_definition(&p, to_own.clone()).await,
        crate::Error::LimitExceeded { .. },
        "free copy to own storage"
    );
    assert!(err.to_string().contains("a destination of your own"), "{err}");
    to_own.pv_mode = PvMode::Snapshot;
    to_own.name = "own-snapshots".into();
    to_own.policy_id = None;
    cp.create_backup_definition(&p, to_own)
        .await
        .expect("local snapshots are free on any destination");
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
