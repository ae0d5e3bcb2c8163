//! What each job's destination access covers: a backup writes under its own cluster's
//! prefix; a restore into another cluster reads under the prefix of the cluster the point
//! was taken in (the vendor makes those credentials read-only: `arca_aws::sts`), not the
//! restoring cluster's, which holds nothing of that point.

mod common;

use common::Api;
use serde_json::json;

#[tokio::test]
async fn a_restore_into_another_cluster_reads_the_points_cluster_prefix() {
    let api = Api::new();
    let t = api.signup("creds").await;
    let dest = api.destination(&t.admin, "local").await;
    let mut clusters = Vec::new();
    for name in ["source", "target"] {
        let (id, token, session) = api.connected_cluster(&t.admin, name, Some(&dest)).await;
        clusters.push((id, token, session));
    }
    let (source, target) = (&clusters[0], &clusters[1]);

    // A backup in the source cluster: its credentials cover the source's prefix.
    let backup = api
        .backup(&t.admin, &source.0, Some(&t.default_policy_id), None)
        .await
        .expect(201)
        .id();
    api.run(&t.admin, &backup).await.expect(201);
    let polled = api.poll(&source.1, &source.2).await.expect(200);
    let job = polled.job_id();
    let access = api.credentials(&source.1, &source.2, &job).await.expect(200);
    let source_prefix = access.body["clusterPrefix"].as_str().unwrap().to_owned();
    assert!(source_prefix.ends_with(&format!("/{}/", source.0)), "{}", access.text);
    // A location outside the cluster's own archives is refused, and the job stays the
    // agent's to complete: another cluster's archive (restores would read it, retention
    // would delete it), a way out of the prefix, something that is no archive.
    let theirs = source_prefix.replace(&source.0, &target.0);
    for bad in [
        format!("{theirs}resources/archives/a1"),
        format!("{source_prefix}resources/../../{}/resources/archives/a1", target.0),
        format!("{source_prefix}resources/archives/a-1"),
        "archives/x".to_string(),
    ] {
        let refused = api
            .complete(
                &source.1,
                &source.2,
                &polled,
                json!({ "backup": { "prefix": bad, "resourceCount": 1 } }),
            )
            .await
            .problem(400, "validation_failed");
        assert_eq!(refused.body["field"], "backup.prefix", "{bad}: {}", refused.text);
    }
    // EBS volumes the control plane would snapshot in the linked account: well-formed ids.
    let refused = api
        .complete(
            &source.1,
            &source.2,
            &polled,
            json!({ "backup": { "prefix": format!("{source_prefix}resources/archives/a1"), "resourceCount": 1,
                                "ebsVolumes": [{ "pvName": "pv-1", "volumeId": "vol-1/../../snap" }] } }),
        )
        .await
        .problem(400, "validation_failed");
    assert_eq!(
        refused.body["field"], "backup.ebsVolumes[0].volumeId",
        "{}",
        refused.text
    );
    let done = api
        .complete(
            &source.1,
            &source.2,
            &polled,
            json!({ "backup": { "prefix": format!("{source_prefix}resources/archives/a1"), "resourceCount": 1 } }),
        )
        .await
        .expect(200);
    let rp = done.body["recoveryPointId"].as_str().unwrap().to_owned();

    // Its restore into the target cluster reads the source's prefix.
    api.post(
        "/v1/restores",
        &t.admin,
        json!({ "recoveryPointId": rp, "targetClusterId": target.0 }),
    )
    .await
    .expect(201);
    let polled = api.poll(&target.1, &target.2).await.expect(200);
    assert_eq!(polled.body["job"]["type"], "K8S_RESTORE", "{}", polled.text);
    let job = polled.job_id();
    let access = api.credentials(&target.1, &target.2, &job).await.expect(200);
    assert_eq!(access.body["clusterPrefix"], source_prefix.as_str(), "{}", access.text);
    assert!(
        !access.text.contains(&target.0),
        "nothing of the target's prefix: {}",
        access.text
    );
    // The source's agent cannot ask for the target's job.
    api.credentials(&source.1, &source.2, &job).await.expect(404);
}
