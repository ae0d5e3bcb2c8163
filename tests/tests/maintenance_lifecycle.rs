//! Retention that really deletes, end to end: the real API, a real agent worker with the
//! real runner, and the destination on a local directory or on S3 (moto over TLS).
//!
//! Three backups of a namespace whose data changes between them; the first two expire,
//! their DELETE_BACKUP jobs remove what only they name, and the repository maintenance
//! that follows runs twice, a grace period apart (condemn, then delete): the packs only
//! the expired points needed are deleted, the bytes freed are reported per destination,
//! and the remaining point restores as it was.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use arca_core::control_plane::ControlPlaneConfig;
use arca_core::model::maintenance::SETTLE;
use arca_e2e::harness::Harness;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The grace period between condemning and deleting (production: 24 h).
const GRACE: Duration = Duration::from_secs(2);

/// Data that differs per version and does not compress away (a pack per backup).
fn payload(version: u32) -> String {
    let mut x = u64::from(version).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..40_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Where the stored packs are, by key with their sizes.
type Listing<'a> = Box<dyn Fn(String) -> std::pin::Pin<Box<dyn Future<Output = BTreeMap<String, u64>> + 'a>> + 'a>;

async fn lifecycle(target: Value, packs_under: Listing<'_>) {
    let Some(a) = arca_testenv::cluster_a().await else {
        return;
    };
    let mut h = Harness::start(ControlPlaneConfig {
        gc_grace: GRACE,
        ..Default::default()
    })
    .await;
    let dest = h
        .user
        .post("/v1/destinations", json!({ "name": "store", "target": target }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cluster = h
        .agent("lifecycle", &a.client, json!({ "defaultDestinationId": dest }))
        .await;
    let user = &h.user;

    let ns = arca_testenv::unique("life");
    arca_e2e::create_namespace(&a.client, &ns).await.unwrap();
    let cms = Api::<ConfigMap>::namespaced(a.client.clone(), &ns);
    let cm = |name: &str, data: &str| -> ConfigMap {
        serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "v": data } })).unwrap()
    };
    cms.create(&PostParams::default(), &cm("stable", "unchanged"))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("changing", &payload(1)))
        .await
        .unwrap();
    let def = user.namespace_backup("life", &cluster, &ns).await;

    // Three backups, the data changed before the second and the third; the last one is
    // kept longer than the others.
    let mut points = Vec::new();
    let mut packs_after = Vec::new();
    let mut packs_prefix = String::new();
    for (version, retain_days) in [(1u32, 1u32), (2, 1), (3, 5)] {
        if version > 1 {
            cms.patch(
                "changing",
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": { "v": payload(version) } })),
            )
            .await
            .unwrap();
        }
        let done = user.run_completed(&def, retain_days).await;
        let listed = user.get(&format!("/v1/recoverypoints?definitionId={def}")).await;
        let point = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["jobId"] == done["id"])
            .unwrap()
            .clone();
        let location = point["location"]["prefix"].as_str().unwrap();
        packs_prefix = format!("{}/packs/", location.rsplit_once("/archives/").unwrap().0);
        points.push(point);
        packs_after.push(packs_under(packs_prefix.clone()).await);
    }
    let all = packs_after[2].clone();
    assert_eq!(all.len(), 3, "a pack per backup (the changed data): {all:?}");
    let second_pack = packs_after[1]
        .keys()
        .find(|k| !packs_after[0].contains_key(*k))
        .unwrap()
        .clone();
    // The first pack holds the stable object the last point still uses; the second only
    // what the expired points had.
    let expected_freed = all[&second_pack];

    // The first two expire; their deletions complete.
    h.clock.advance(Duration::from_secs(2 * 86_400));
    let report = h.cp.retention_sweep().await.unwrap();
    assert_eq!(report.deletion_jobs.len(), 2, "{report:?}");
    for job in &report.deletion_jobs {
        let done = user.wait_job(&job.to_string()).await;
        assert_eq!(done["state"], "COMPLETED", "{done}");
    }
    assert_eq!(
        packs_under(packs_prefix.clone()).await,
        all,
        "deletion alone frees no pack"
    );

    // The first maintenance run (the packs are older than the grace period by now):
    // the second pack is condemned, not yet deleted.
    tokio::time::sleep(GRACE).await;
    h.clock.advance(SETTLE);
    let sweep = h.cp.maintenance_sweep().await.unwrap();
    assert_eq!(sweep.jobs.len(), 1, "{sweep:?}");
    let first = user.wait_job(&sweep.jobs[0].to_string()).await;
    assert_eq!(first["state"], "COMPLETED", "{first}");
    assert_eq!(
        packs_under(packs_prefix.clone()).await,
        all,
        "condemned, kept for the grace period"
    );
    let upkeep = user.get(&format!("/v1/destinations/{dest}/maintenance")).await;
    assert_eq!(upkeep["repositories"][0]["markersPending"], 1, "{upkeep}");
    assert_eq!(upkeep["bytesFreedTotal"], 0, "{upkeep}");
    assert!(
        h.cp.maintenance_sweep().await.unwrap().jobs.is_empty(),
        "the next run waits for the grace period"
    );

    // After the grace period the second run deletes it: the repository holds what the
    // remaining point needs.
    tokio::time::sleep(GRACE).await;
    h.clock.advance(GRACE + Duration::from_secs(61));
    let sweep = h.cp.maintenance_sweep().await.unwrap();
    assert_eq!(sweep.jobs.len(), 1, "{sweep:?}");
    let second = user.wait_job(&sweep.jobs[0].to_string()).await;
    assert_eq!(second["state"], "COMPLETED", "{second}");
    let left = packs_under(packs_prefix.clone()).await;
    let mut expected = all.clone();
    expected.remove(&second_pack);
    assert_eq!(left, expected, "exactly the expired points' own pack is gone");
    let upkeep = user.get(&format!("/v1/destinations/{dest}/maintenance")).await;
    assert_eq!(upkeep["bytesFreedTotal"].as_u64(), Some(expected_freed), "{upkeep}");
    assert_eq!(upkeep["repositories"][0]["markersPending"], 0, "{upkeep}");
    assert!(upkeep["repositories"][0]["dueAt"].is_null(), "{upkeep}");
    let before: u64 = all.values().sum();
    let after: u64 = left.values().sum();
    println!(
        "lifecycle: packs {} -> {}, bytes {before} -> {after} (freed {expected_freed})",
        all.len(),
        left.len()
    );

    // The remaining point restores as it was.
    let target_ns = format!("{ns}-back");
    let created = user
        .post(
            "/v1/restores",
            json!({ "recoveryPointId": points[2]["id"], "targetClusterId": cluster,
                    "namespaceMap": { ns.clone(): target_ns } }),
        )
        .await;
    let restored = user.wait_job(created["job"]["id"].as_str().unwrap()).await;
    assert_eq!(restored["state"], "COMPLETED", "{restored}");
    let back = Api::<ConfigMap>::namespaced(a.client.clone(), &target_ns);
    let value = |c: ConfigMap| c.data.unwrap_or_default().get("v").cloned().unwrap_or_default();
    assert_eq!(value(back.get("changing").await.unwrap()), payload(3));
    assert_eq!(value(back.get("stable").await.unwrap()), "unchanged");

    arca_e2e::delete_namespace(&a.client, &ns).await;
    arca_e2e::delete_namespace(&a.client, &target_ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_points_data_is_reclaimed_on_a_local_destination() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let listing: Listing<'_> = Box::new(move |prefix: String| {
        let root = root.clone();
        Box::pin(async move {
            let mut out = BTreeMap::new();
            if let Ok(entries) = std::fs::read_dir(root.join(&prefix)) {
                for e in entries {
                    let e = e.unwrap();
                    out.insert(
                        format!("{prefix}{}", e.file_name().to_string_lossy()),
                        e.metadata().unwrap().len(),
                    );
                }
            }
            out
        })
    });
    lifecycle(json!({ "kind": "LOCAL_FILESYSTEM", "path": dir.path() }), listing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_points_data_is_reclaimed_on_s3() {
    let Some(aws) = arca_testenv::aws() else {
        return;
    };
    let s3 = arca_aws::config::s3_client(&aws.sdk_config().await);
    let bucket = arca_testenv::unique("lifecycle").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let listing_bucket = bucket.clone();
    let listing: Listing<'_> = Box::new(move |prefix: String| {
        let (s3, bucket) = (s3.clone(), listing_bucket.clone());
        Box::pin(async move {
            let listed = s3
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(&prefix)
                .send()
                .await
                .unwrap();
            listed
                .contents()
                .iter()
                .map(|o| (o.key().unwrap().to_owned(), o.size().unwrap() as u64))
                .collect()
        })
    });
    let https = format!("https://127.0.0.1:{}", aws.tls.port);
    let ca = std::fs::read_to_string(&aws.tls.ca).unwrap();
    lifecycle(
        json!({ "kind": "S3", "bucket": bucket, "region": "us-east-1", "prefix": "arca",
                "endpoint": https, "caBundle": ca }),
        listing,
    )
    .await;
}
