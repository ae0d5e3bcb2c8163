//! A deleted cluster's data in Arca-managed storage with no agent of the org left: the
//! retention sweep purges the cluster's prefix itself, through the STS vendor and the S3
//! opener the retention function is wired with (`arca_aws::wiring::ControlPlaneEnv`),
//! with the store on DynamoDB, all on moto. A cluster whose points are not all due yet waits, and says so.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::sync::Arc;

use arca_aws::s3_connection::S3DestinationOpener;
use arca_core::control_plane::{ControlPlane, ControlPlaneConfig};
use arca_core::ids::{ClusterId, OrgId};
use arca_core::model::maintenance::{RepositoryKey, RepositoryUpkeep};
use arca_core::model::recovery::{RecoveryPoint, RecoveryPointState};
use arca_core::ports::SystemClock;
use arca_core::store::Store;
use arca_core::testing::stored_point;
use chrono::{DateTime, Utc};
use common::{managed_destination, managed_vendor};

const PREFIX: &str = "repositories";

#[tokio::test]
async fn the_retention_sweep_purges_a_deleted_clusters_prefix_in_managed_storage() {
    let env = arca_testenv::aws().expect("the test environment's moto (scripts/testenv.sh env)");
    let sdk = env.sdk_config().await;
    let bucket = arca_testenv::unique("arca-managed-purge");
    let s3 = arca_aws::config::s3_client(&sdk);
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    let vendor = managed_vendor(&sdk, &bucket, PREFIX);
    let store = Store::new(Arc::new(common::dynamo_store(&sdk, "arca-purge").await));
    let cp = ControlPlane::new(
        store.clone(),
        Default::default(),
        Arc::new(SystemClock),
        ControlPlaneConfig::default(),
    )
    .with_credential_vendor(Arc::new(vendor))
    .with_managed_purge(Arc::new(S3DestinationOpener));

    let org = OrgId::new();
    let now = DateTime::<Utc>::from(std::time::SystemTime::now());
    let managed = store.create(managed_destination(org, now, 0)).await.unwrap();
    // Two deleted clusters (no cluster of the org exists, so no agent is ACTIVE): one
    // whose points have all expired, one with a point due only later.
    let (done, waiting, unrelated) = (ClusterId::new(), ClusterId::new(), ClusterId::new());
    let mut done_points = Vec::new();
    for (cluster, expires_in) in [(done, -60), (done, -10), (waiting, -60), (waiting, 86_400)] {
        let rp = store
            .create(stored_point(
                org,
                cluster,
                Some(managed.id),
                Some(now + chrono::Duration::seconds(expires_in)),
            ))
            .await
            .unwrap();
        if cluster == done {
            done_points.push(rp.id);
        }
    }
    for cluster in [done, waiting, unrelated] {
        for key in ["resources/packs/p1", "volumes/data/ab/cd", "volumes/config"] {
            s3.put_object()
                .bucket(&bucket)
                .key(format!("{PREFIX}/{org}/{cluster}/{key}"))
                .body(b"repository bytes".to_vec().into())
                .send()
                .await
                .unwrap();
        }
    }

    let report = cp.retention_sweep().await.expect("sweep");
    assert_eq!(report.purge_failed, vec![], "{report:?}");
    assert_eq!(report.purged.len(), 1, "{report:?}");
    assert_eq!(report.purged[0].repository.cluster_id, done);
    let mut deleted = report.purged[0].recovery_points_deleted.clone();
    deleted.sort();
    done_points.sort();
    assert_eq!(deleted, done_points);
    assert_eq!(
        report.awaiting_direct_deletion.len(),
        1,
        "the waiting cluster's expired point: {report:?}"
    );

    assert_eq!(
        keys(&s3, &bucket, &format!("{PREFIX}/{org}/{done}/")).await.len(),
        0,
        "purged"
    );
    assert_eq!(
        keys(&s3, &bucket, &format!("{PREFIX}/{org}/{waiting}/")).await.len(),
        3,
        "waits"
    );
    assert_eq!(
        keys(&s3, &bucket, &format!("{PREFIX}/{org}/{unrelated}/")).await.len(),
        3
    );
    for id in &done_points {
        assert!(store.find::<RecoveryPoint>(&org, id).await.unwrap().is_none());
    }
    let done_key = RepositoryKey {
        destination_id: managed.id,
        cluster_id: done,
    };
    assert!(store.find::<RepositoryUpkeep>(&org, &done_key).await.unwrap().is_none());
    let waiting_key = RepositoryKey {
        destination_id: managed.id,
        cluster_id: waiting,
    };
    let upkeep = store.get::<RepositoryUpkeep>(&org, &waiting_key).await.unwrap();
    let awaiting = upkeep.awaiting_agent.expect("says what it waits for");
    assert_eq!(awaiting.expired_points, 1);
    assert!(upkeep.purge_begun_at.is_none(), "no purge was begun for it");
    let left: Vec<RecoveryPoint> = store.list_all::<RecoveryPoint>(&org).await.unwrap();
    assert!(
        left.iter()
            .all(|rp| rp.cluster_id == waiting && rp.state == RecoveryPointState::Ready),
        "{left:?}"
    );
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let listed = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}
