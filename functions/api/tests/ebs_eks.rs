//! A Kubernetes cluster on EKS, linked to its AWS account, over HTTP and the agent
//! protocol: the agent reports the EBS volumes behind its PVs, the control plane snapshots
//! them through the linked role (tagged with the point and its expiry) and saves the EKS
//! metadata with the point; a repeated completion snapshots nothing twice; a re-creation
//! builds the cluster and its node groups from that metadata, registers it and queues the
//! restore for its agent, moved by its work messages and not by reads (a duplicate does
//! nothing; a vanished or never-ready cluster fails it), and is listed for its org only;
//! retention deletes the snapshots. AWS is `FakeCloud` (EKS never
//! becomes ACTIVE on moto's clock, and it enforces the role); the AWS adapter's calls are
//! tested on moto in arca-aws.

mod common;

use arca_core::model::cloud::AwsResource;
use arca_core::model::cloud::ebs::{EksRecreation, EksRecreationState};
use arca_core::model::cloud::inventory::{EbsVolume, EksCluster, EksNodegroup};
use arca_core::model::recovery::RecoveryPoint;
use arca_core::model::secret::Secret;
use common::Api;
use serde_json::json;

#[tokio::test]
async fn ebs_snapshots_eks_metadata_recreation_and_retention() {
    let api = Api::new();
    let t = api.signup("eks").await;

    // A linked account whose inventory knows the EKS cluster.
    let account = api.link_account(&t.admin, "prod", &["us-east-1"]).await.expect(201);
    let account_id = account.id();
    let role = "arn:aws:iam::111122223333:role/arca-prod";
    api.give_role(&t.admin, &account, role).await.expect(200);
    let eks = EksCluster {
        name: "prod-eks".into(),
        version: Some("1.33".into()),
        role_arn: Some("arn:aws:iam::111122223333:role/eks".into()),
        subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
        nodegroups: vec![EksNodegroup {
            name: "workers".into(),
            node_role: Some("arn:aws:iam::111122223333:role/node".into()),
            instance_types: vec!["m6i.large".into()],
            desired_size: Some(3),
            ..Default::default()
        }],
        ..Default::default()
    };
    // EBS volumes of that account: one of this cluster (tagged by its provisioner), one of
    // another cluster in the same account.
    let tagged = |id: &str, tags: &[(&str, &str)]| {
        AwsResource::EbsVolume(EbsVolume {
            volume_id: id.into(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        })
    };
    api.cloud.set_resources(
        role,
        "us-east-1",
        vec![
            AwsResource::EksCluster(eks.clone()),
            tagged("vol-0aaa", &[("kubernetes.io/cluster/prod-eks", "owned")]),
            tagged("vol-0gone", &[("kubernetes.io/cluster/prod-eks", "owned")]),
            tagged(
                "vol-0bbb",
                &[
                    ("kubernetes.io/cluster/staging-eks", "owned"),
                    ("kubernetes.io/created-for/pv/name", "pv-theirs"),
                ],
            ),
        ],
    );
    api.post(
        &format!("/v1/cloud-accounts/{account_id}/inventory"),
        &t.admin,
        json!({}),
    )
    .await
    .expect(200);

    // The Kubernetes cluster, linked; a bad link is refused naming the field.
    api.post(
        "/v1/clusters",
        &t.admin,
        json!({ "name": "x", "aws": { "cloudAccountId": account_id, "region": "nowhere" } }),
    )
    .await
    .expect(400);
    let dest = api.destination(&t.admin, "local").await;
    let cluster = api
        .post(
            "/v1/clusters",
            &t.admin,
            json!({ "name": "prod", "defaultDestinationId": dest,
                    "aws": { "cloudAccountId": account_id, "region": "us-east-1", "eksClusterName": "prod-eks" } }),
        )
        .await
        .expect(201);
    let cluster_id = cluster.id();
    let token = cluster.body["agentToken"].as_str().unwrap().to_owned();
    assert_eq!(cluster.body["aws"]["eksClusterName"], "prod-eks", "{}", cluster.text);
    let backup = api.default_backup(&t, &cluster_id, None).await;

    // The agent runs the backup and reports two EBS volumes, one of which is gone.
    let session = api.agent_session(&token).await;
    api.run(&t.admin, &backup).await.expect(201);
    let polled = api.poll(&token, &session).await.expect(200);
    let job = polled.job_id();
    let lease = polled.body["leaseToken"].as_str().unwrap().to_owned();
    assert_eq!(
        polled.body["ebsByControlPlane"], true,
        "a linked cluster's EBS volumes are the control plane's: {}",
        polled.text
    );
    api.cloud
        .break_volume("vol-0gone", "InvalidVolume.NotFound: the volume does not exist");
    let completion = json!({
        "leaseToken": lease, "state": "COMPLETED",
        "backup": { "prefix": common::archive_at(&t.org_id, &cluster_id, "x"), "resourceCount": 12, "ebsVolumes": [
            { "pvName": "pv-data", "volumeId": "vol-0aaa", "availabilityZone": "us-east-1a" },
            { "pvName": "pv-old", "volumeId": "vol-0gone" },
            // Another cluster's volume, reported by a (compromised) agent: not snapshotted.
            { "pvName": "pv-theirs", "volumeId": "vol-0bbb" },
            { "pvName": "pv-nowhere", "volumeId": "vol-0ccc" },
        ] },
    });
    let done = api
        .agent_job(&token, &session, &job, "complete", completion.clone())
        .await
        .expect(200);
    let rp = done.body["recoveryPointId"].as_str().unwrap().to_owned();
    // The volume AWS would not snapshot is not protected: the job says so, naming it.
    assert_eq!(done.body["state"], "PARTIAL", "{}", done.text);
    assert!(
        done.body["reason"]
            .as_str()
            .unwrap()
            .contains("3 EBS volume(s) have no snapshot"),
        "{}",
        done.text
    );
    assert!(
        done.text
            .contains("PV pv-old (EBS vol-0gone): not snapshotted: invalid volumeId: InvalidVolume.NotFound"),
        "{}",
        done.text
    );
    assert!(
        done.text
            .contains("PV pv-theirs (EBS vol-0bbb): not snapshotted: tagged for cluster(s) staging-eks, not for EKS cluster prod-eks"),
        "{}",
        done.text
    );
    assert!(
        done.text
            .contains("PV pv-nowhere (EBS vol-0ccc): not snapshotted: no such volume in us-east-1"),
        "{}",
        done.text
    );
    // A retried completion (lost answer) snapshots nothing twice.
    let again = api
        .agent_job(&token, &session, &job, "complete", completion)
        .await
        .expect(200);
    assert_eq!(again.body["state"], "PARTIAL", "{}", again.text);

    let snapshots = api.cloud.snapshots();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let job_now = api.get(&format!("/v1/jobs/{job}"), &t.admin).await.expect(200);
    assert_eq!(job_now.body["state"], "PARTIAL", "{}", job_now.text);
    let (region, volume, tags) = snapshots.values().next().unwrap().clone();
    assert_eq!((region.as_str(), volume.as_str()), ("us-east-1", "vol-0aaa"));
    assert_eq!(tags["arca:recovery-point"], rp);
    assert_eq!(tags["arca:pv"], "pv-data");
    assert!(tags.contains_key("arca:expires-at"), "{tags:?}");
    let aws = api
        .get(&format!("/v1/recoverypoints/{rp}/aws"), &t.admin)
        .await
        .expect(200);
    assert_eq!(aws.body["ebsSnapshots"][0]["volumeId"], "vol-0aaa", "{}", aws.text);
    assert_eq!(aws.body["ebsSnapshots"].as_array().unwrap().len(), 1);
    assert!(
        aws.body["errors"][0].as_str().unwrap().contains("vol-0gone"),
        "{}",
        aws.text
    );
    assert_eq!(aws.body["eks"]["name"], "prod-eks");
    let point = api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(200);
    assert_eq!(
        point.body["partial"], true,
        "a point missing an EBS snapshot never counts toward keepLast: {}",
        point.text
    );
    assert_eq!(aws.body["eks"]["nodegroups"][0]["desiredSize"], 3);

    // Re-create the EKS cluster: CREATING for one check, then ACTIVE.
    api.cloud.eks_takes(1);
    api.post(
        &format!("/v1/recoverypoints/{rp}/recreate-eks"),
        &t.admin,
        json!({ "name": "bad name!" }),
    )
    .await
    .expect(400);
    let started = api
        .post(
            &format!("/v1/recoverypoints/{rp}/recreate-eks"),
            &t.admin,
            json!({ "name": "prod-eks-2" }),
        )
        .await
        .expect(201);
    assert_eq!(started.body["state"], "CREATING_CLUSTER");
    assert!(
        started.body["access"].is_null(),
        "no endpoint before ACTIVE: {}",
        started.text
    );
    let created = api.cloud.eks_clusters();
    let like = &created[&("us-east-1".to_owned(), "prod-eks-2".to_owned())];
    assert_eq!((like.version.as_deref(), like.subnet_ids.len()), (Some("1.33"), 2));
    let path = format!("/v1/eks-recreations/{}", started.id());
    let cp = &api.state.control_plane;
    let org: arca_core::ids::OrgId = t.org_id.parse().unwrap();
    // Reading is only reading: EKS reports ACTIVE at its second check, and three reads
    // leave the re-creation where it was.
    for _ in 0..3 {
        let read = api.get(&path, &t.admin).await.expect(200);
        assert_eq!(read.body["state"], "CREATING_CLUSTER", "{}", read.text);
    }
    assert!(api.cloud.eks_nodegroups().is_empty(), "node groups wait for ACTIVE");
    // The work queue moves it, nobody reading it: CREATING re-sends the message later...
    let sent = api.rds_queue.take_eks();
    assert_eq!(sent.len(), 1, "one message at the start: {sent:?}");
    assert_eq!(sent[0].1, arca_core::control_plane::EKS_RECHECK_DELAY);
    assert_eq!(sent[0].0.eks_recreation_id.to_string(), started.id());
    let step = cp
        .eks_recreation_step(&org, &sent[0].0.eks_recreation_id)
        .await
        .unwrap();
    assert_eq!(step.state, EksRecreationState::CreatingCluster);
    assert!(api.cloud.eks_nodegroups().is_empty(), "node groups wait for ACTIVE");
    let again = api.rds_queue.take_eks();
    assert_eq!(again.len(), 1, "checked again later: {again:?}");
    assert_eq!(again[0].1, arca_core::control_plane::EKS_RECHECK_DELAY);
    // ... and ACTIVE finishes it.
    let step = cp
        .eks_recreation_step(&org, &again[0].0.eks_recreation_id)
        .await
        .unwrap();
    assert_eq!(step.state, EksRecreationState::WaitingForAgent, "{step:?}");
    assert!(api.rds_queue.take_eks().is_empty(), "nothing more to check");
    // A duplicate delivery of the finished one does nothing.
    let duplicate = cp
        .eks_recreation_step(&org, &again[0].0.eks_recreation_id)
        .await
        .unwrap();
    assert_eq!(duplicate, step, "unchanged, version included");
    assert!(api.rds_queue.take_eks().is_empty());
    let ready = api.get(&path, &t.admin).await.expect(200);
    assert_eq!(ready.body["state"], "WAITING_FOR_AGENT", "{}", ready.text);
    // Where the new cluster's Kubernetes API is, read from EKS once ACTIVE (no credential).
    assert_eq!(
        ready.body["access"],
        json!({
            "endpoint": "https://prod-eks-2.us-east-1.eks.fake.invalid",
            "certificateAuthorityData": arca_core::testing::fakes::cloud::fake_ca("prod-eks-2"),
        }),
        "{}",
        ready.text
    );
    assert!(
        ready.body["nextStep"]
            .as_str()
            .unwrap()
            .contains(&format!("arca eks install-agent {}", started.id())),
        "{}",
        ready.text
    );
    let groups = api.cloud.eks_nodegroups();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].1.as_str(), groups[0].2.name.as_str()),
        ("prod-eks-2", "workers")
    );
    let new_cluster = ready.body["clusterId"].as_str().unwrap().to_owned();
    let restore = ready.body["restoreId"].as_str().unwrap().to_owned();
    assert!(
        ready.body["nextStep"]
            .as_str()
            .unwrap()
            .contains(&format!("arca clusters install {new_cluster}"))
    );
    let registered = api
        .get(&format!("/v1/clusters/{new_cluster}"), &t.admin)
        .await
        .expect(200);
    assert_eq!(registered.body["state"], "REGISTERED");
    assert_eq!(registered.body["aws"]["eksClusterName"], "prod-eks-2");

    let clusters = api.get("/v1/clusters", &t.admin).await.expect(200);
    let same_name = clusters.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "prod-eks-2")
        .count();
    assert_eq!(same_name, 1, "the duplicate registered nothing: {}", clusters.text);
    assert_eq!(api.cloud.eks_nodegroups().len(), 1, "nor made node groups");

    // A cluster deleted while EKS was creating it: FAILED, with why, and no more checks.
    api.cloud.eks_takes(5);
    let gone = api
        .post(
            &format!("/v1/recoverypoints/{rp}/recreate-eks"),
            &t.admin,
            json!({ "name": "prod-eks-3" }),
        )
        .await
        .expect(201);
    let (m, _) = api.rds_queue.take_eks().pop().unwrap();
    cp.eks_recreation_step(&org, &m.eks_recreation_id).await.unwrap();
    let (m, _) = api.rds_queue.take_eks().pop().expect("a re-check");
    api.cloud.delete_eks_cluster("us-east-1", "prod-eks-3");
    let failed = cp.eks_recreation_step(&org, &m.eks_recreation_id).await.unwrap();
    assert_eq!(failed.state, EksRecreationState::Failed);
    assert_eq!(failed.error.as_deref(), Some("the EKS cluster no longer exists"));
    assert!(api.rds_queue.take_eks().is_empty(), "nothing more to check");
    let read = api
        .get(&format!("/v1/eks-recreations/{}", gone.id()), &t.admin)
        .await
        .expect(200);
    assert_eq!(read.body["state"], "FAILED");
    assert_eq!(read.body["error"], "the EKS cluster no longer exists");

    // EKS still CREATING an hour after the start: FAILED rather than checked forever.
    let slow = api
        .post(
            &format!("/v1/recoverypoints/{rp}/recreate-eks"),
            &t.admin,
            json!({ "name": "prod-eks-4" }),
        )
        .await
        .expect(201);
    let (m, _) = api.rds_queue.take_eks().pop().unwrap();
    let store = cp.store();
    let mut record = store.get::<EksRecreation>(&org, &m.eks_recreation_id).await.unwrap();
    let version = record.version;
    record.created_at -= chrono::Duration::minutes(61);
    store.update(record, version).await.unwrap();
    let timed_out = cp.eks_recreation_step(&org, &m.eks_recreation_id).await.unwrap();
    assert_eq!(timed_out.state, EksRecreationState::Failed);
    assert!(
        timed_out
            .error
            .as_deref()
            .unwrap()
            .contains("still creating the cluster 60 minutes"),
        "{timed_out:?}"
    );
    assert!(api.rds_queue.take_eks().is_empty());

    // The org's re-creations, newest first, paginated; another org sees none of them.
    let listed = api.get("/v1/eks-recreations", &t.admin).await.expect(200);
    let ids = listed.ids();
    assert_eq!(
        ids,
        vec![slow.id().as_str(), gone.id().as_str(), started.id().as_str()],
        "{}",
        listed.text
    );
    let first = api.get("/v1/eks-recreations?limit=2", &t.admin).await.expect(200);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2, "{}", first.text);
    let cursor = first.body["nextCursor"].as_str().expect("more follow").to_owned();
    let rest = api
        .get(&format!("/v1/eks-recreations?limit=2&cursor={cursor}"), &t.admin)
        .await
        .expect(200);
    assert_eq!(rest.body["items"][0]["id"], started.id().as_str(), "{}", rest.text);
    let other = api.signup("not-eks").await;
    let theirs = api.get("/v1/eks-recreations", &other.admin).await.expect(200);
    assert_eq!(theirs.body["items"], json!([]), "{}", theirs.text);
    api.get(&path, &other.admin).await.expect(404);

    // The agent installed there connects and finds the restore waiting.
    let rotated = api
        .post(&format!("/v1/clusters/{new_cluster}/rotate-token"), &t.admin, json!({}))
        .await;
    let rotated = if rotated.status.as_u16() == 428 {
        api.request(
            axum::http::Method::POST,
            &format!("/v1/clusters/{new_cluster}/rotate-token"),
            Some(&t.admin),
            Some(&registered.etag()),
            None,
        )
        .await
        .expect(200)
    } else {
        rotated.expect(200)
    };
    let new_token = rotated.body["agentToken"].as_str().unwrap().to_owned();
    let new_session = api.connect(&new_token).await;
    let waiting = api.poll(&new_token, &new_session).await.expect(200);
    assert_eq!(waiting.body["job"]["type"], "K8S_RESTORE", "{}", waiting.text);
    assert_eq!(waiting.body["job"]["restoreId"], restore.as_str());

    // Retention: the point expires, its EBS snapshot goes with it.
    let mut point = store.get::<RecoveryPoint>(&org, &rp.parse().unwrap()).await.unwrap();
    let version = point.version;
    point.expires_at = Some(chrono::DateTime::UNIX_EPOCH);
    point.keep_last = None;
    store.update(point, version).await.unwrap();
    // The agent of the source cluster is connected: retention hands it the deletion.
    cp.record_heartbeat(&Secret::from_presented(token.clone()), Default::default())
        .await
        .unwrap();
    let report = cp.retention_sweep().await.unwrap();
    assert!(report.aws_cleanup_failed.is_empty(), "{report:?}");
    assert_eq!(report.deletion_jobs.len(), 1, "{report:?}");
    assert_eq!(
        api.cloud.snapshots().len(),
        1,
        "the EBS snapshot stays until the point's data is deleted"
    );
    // The agent deletes the data while the role is refused: the point stays DELETING
    // with its snapshot record, and the sweep says why and tries again.
    let session = api.agent_session(&token).await;
    let polled = api.poll(&token, &session).await.expect(200);
    assert_eq!(polled.body["job"]["type"], "DELETE_BACKUP", "{}", polled.text);
    api.cloud
        .revoke(role, Some("AccessDenied: the trust policy was changed"));
    api.complete(&token, &session, &polled, json!({})).await.expect(200);
    let left = store.get::<RecoveryPoint>(&org, &rp.parse().unwrap()).await.unwrap();
    assert!(
        left.data_deleted && left.state == arca_core::model::recovery::RecoveryPointState::Deleting,
        "{left:?}"
    );
    assert_eq!(api.cloud.snapshots().len(), 1);
    let report = cp.retention_sweep().await.unwrap();
    assert_eq!(report.aws_cleanup_failed.len(), 1, "{report:?}");
    assert!(report.deletion_jobs.is_empty(), "{report:?}");
    // The role works again: the next sweep deletes the snapshot, then the point.
    api.cloud.revoke(role, None);
    let report = cp.retention_sweep().await.unwrap();
    assert!(report.aws_cleanup_failed.is_empty(), "{report:?}");
    assert!(api.cloud.snapshots().is_empty(), "the EBS snapshot is deleted");
    let rp_id: arca_core::ids::RecoveryPointId = rp.parse().unwrap();
    assert!(
        store
            .find::<arca_core::model::cloud::ebs::RecoveryPointAws>(&org, &rp_id)
            .await
            .unwrap()
            .is_none(),
        "and its record"
    );
    api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(404);
    assert!(
        store
            .find::<RecoveryPoint>(&org, &rp.parse().unwrap())
            .await
            .unwrap()
            .is_none(),
        "the point goes last"
    );
}

/// A cluster not linked to an AWS account: its agent is told to capture EBS-backed claims
/// through CSI, and EBS volumes reported anyway (an older agent) leave the job PARTIAL,
/// naming them, never COMPLETED.
#[tokio::test]
async fn an_unlinked_clusters_ebs_volumes_are_never_reported_protected() {
    let api = Api::new();
    let t = api.signup("unlinked").await;
    let dest = api.destination(&t.admin, "local").await;
    let (cluster, token) = api.cluster(&t.admin, "plain", Some(&dest)).await;
    let backup = api.default_backup(&t, &cluster, None).await;
    let session = api.agent_session(&token).await;
    api.run(&t.admin, &backup).await.expect(201);
    let polled = api.poll(&token, &session).await.expect(200);
    assert_eq!(polled.body["ebsByControlPlane"], false, "{}", polled.text);
    let prefix = common::archive_at(&t.org_id, &cluster, "y");
    let done = api
        .complete(
            &token,
            &session,
            &polled,
            json!({ "backup": { "prefix": prefix, "resourceCount": 3, "ebsVolumes": [
                    { "pvName": "pv-db", "volumeId": "vol-0ccc" },
                ] } }),
        )
        .await
        .expect(200);
    assert_eq!(done.body["state"], "PARTIAL", "{}", done.text);
    assert!(
        done.text
            .contains("PV pv-db (EBS vol-0ccc): not snapshotted: the cluster is not linked to an AWS account"),
        "{}",
        done.text
    );
    assert!(api.cloud.snapshots().is_empty());
}

/// A restore of a point with EBS snapshots: a cluster linked to the same account and
/// region gets the snapshots with its job and asks for a volume per claim, created from
/// the snapshot in the zone it asks, with the original volume's type and IOPS, tagged with
/// the restore; the same request again gets the same volume. Another zone's region, a
/// snapshot not of the point and a backup job are refused, naming the field. A cluster
/// not linked is told why it cannot use them, and cannot ask.
#[tokio::test]
async fn restores_rebuild_ebs_claims_on_volumes_from_their_snapshots() {
    use arca_core::model::cloud::inventory::EbsVolume;
    let api = Api::new();
    let t = api.signup("ebs-restore").await;
    let account = api.link_account(&t.admin, "prod", &["us-east-1"]).await.expect(201);
    let account_id = account.id();
    let role = "arn:aws:iam::111122223333:role/arca-restore";
    api.give_role(&t.admin, &account, role).await.expect(200);
    api.cloud.set_resources(
        role,
        "us-east-1",
        vec![AwsResource::EbsVolume(EbsVolume {
            volume_id: "vol-0db".into(),
            size_gib: Some(20),
            volume_type: Some("io2".into()),
            iops: Some(4000),
            availability_zone: Some("us-east-1a".into()),
            // The EBS CSI driver's tag on what it provisions: the PV's name.
            tags: [("kubernetes.io/created-for/pv/name".to_string(), "pv-db".to_string())].into(),
            ..Default::default()
        })],
    );
    api.post(
        &format!("/v1/cloud-accounts/{account_id}/inventory"),
        &t.admin,
        json!({}),
    )
    .await
    .expect(200);
    let dest = api.destination(&t.admin, "bucket").await;
    let linked = api
        .post(
            "/v1/clusters",
            &t.admin,
            json!({ "name": "prod", "defaultDestinationId": dest,
                    "aws": { "cloudAccountId": account_id, "region": "us-east-1" } }),
        )
        .await
        .expect(201);
    let (cluster, token) = (linked.id(), linked.body["agentToken"].as_str().unwrap().to_owned());
    let session = api.agent_session(&token).await;
    let backup = api.default_backup(&t, &cluster, None).await;
    api.run(&t.admin, &backup).await.expect(201);
    let polled = api.poll(&token, &session).await.expect(200);
    let backup_job = polled.job_id();
    assert!(
        polled.body.get("ebs").is_none(),
        "backups carry no restore sources: {}",
        polled.text
    );
    let prefix = common::archive_at(&t.org_id, &cluster, "z");
    let done = api
        .complete(
            &token,
            &session,
            &polled,
            json!({ "backup": { "prefix": prefix, "resourceCount": 4, "ebsVolumes": [
                    { "pvName": "pv-db", "volumeId": "vol-0db", "availabilityZone": "us-east-1a",
                      "claim": { "namespace": "shop", "name": "db" }, "fsType": "xfs" },
                ] } }),
        )
        .await
        .expect(200);
    assert_eq!(done.body["state"], "COMPLETED", "{}", done.text);
    let rp = done.body["recoveryPointId"].as_str().unwrap().to_owned();
    let point = api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(200);
    assert_eq!(point.body["partial"], false, "{}", point.text);
    let snapshot = api.cloud.snapshots().into_keys().next().expect("a snapshot");

    // A restore into the linked cluster: the job carries the snapshot and its claim.
    api.post(
        "/v1/restores",
        &t.admin,
        json!({ "recoveryPointId": rp, "targetClusterId": cluster, "namespacePrefix": "r-" }),
    )
    .await
    .expect(201);
    let polled = api.poll(&token, &session).await.expect(200);
    assert_eq!(polled.body["job"]["type"], "K8S_RESTORE", "{}", polled.text);
    let job = polled.job_id();
    let sources = &polled.body["ebs"];
    assert!(sources.get("unusable").is_none(), "{}", polled.text);
    assert_eq!(
        sources["snapshots"][0]["snapshotId"],
        snapshot.as_str(),
        "{}",
        polled.text
    );
    assert_eq!(
        sources["snapshots"][0]["claim"],
        json!({ "namespace": "shop", "name": "db" })
    );
    assert_eq!(sources["snapshots"][0]["fsType"], "xfs");
    assert_eq!(sources["snapshots"][0]["availabilityZone"], "us-east-1a");

    let ask = |job: String, snapshot: String, zone: &'static str| {
        let (api, token, session) = (&api, token.clone(), session.clone());
        async move {
            api.agent_job(
                &token,
                &session,
                &job,
                "ebs-volumes",
                json!({ "snapshotId": snapshot, "availabilityZone": zone }),
            )
            .await
        }
    };
    let created = ask(job.clone(), snapshot.clone(), "us-east-1b").await.expect(201);
    let volume = created.body["volumeId"].as_str().unwrap().to_owned();
    assert_eq!(created.body["availabilityZone"], "us-east-1b");
    let volumes = api.cloud.volumes();
    let (region, made) = &volumes[&volume];
    assert_eq!(region, "us-east-1");
    assert_eq!(
        (made.snapshot_id.as_str(), made.availability_zone.as_str()),
        (snapshot.as_str(), "us-east-1b")
    );
    assert_eq!(
        (made.volume_type.as_deref(), made.iops),
        (Some("io2"), Some(4000)),
        "the original volume's type and IOPS, from the inventory"
    );
    assert_eq!(made.tags["arca:recovery-point"], rp);
    assert_eq!(made.tags["arca:source-pv"], "pv-db");
    let again = ask(job.clone(), snapshot.clone(), "us-east-1b").await.expect(201);
    assert_eq!(
        again.body["volumeId"],
        volume.as_str(),
        "a retried request makes no second volume"
    );
    assert_eq!(api.cloud.volumes().len(), 1);
    ask(job.clone(), snapshot.clone(), "eu-west-1a")
        .await
        .problem(400, "validation_failed");
    ask(job.clone(), "snap-0notours".into(), "us-east-1a")
        .await
        .problem(400, "validation_failed");
    ask(backup_job, snapshot.clone(), "us-east-1a").await.expect(409);

    // A cluster not linked to AWS: told why, and refused if it asks anyway.
    let (plain, plain_token, plain_session) = api.connected_cluster(&t.admin, "plain", Some(&dest)).await;
    api.post(
        "/v1/restores",
        &t.admin,
        json!({ "recoveryPointId": rp, "targetClusterId": plain }),
    )
    .await
    .expect(201);
    let polled = api.poll(&plain_token, &plain_session).await.expect(200);
    let why = polled.body["ebs"]["unusable"].as_str().unwrap_or_default();
    assert!(why.contains("is not linked to an AWS account"), "{}", polled.text);
    assert_eq!(polled.body["ebs"]["snapshots"], json!([]), "{}", polled.text);
    let plain_job = polled.job_id();
    api.agent_job(
        &plain_token,
        &plain_session,
        &plain_job,
        "ebs-volumes",
        json!({ "snapshotId": snapshot, "availabilityZone": "us-east-1a" }),
    )
    .await
    .problem(409, "conflict");
    assert_eq!(api.cloud.volumes().len(), 1, "nothing was created for it");
}

/// The agent asks for the EC2 snapshots between its pre and post hooks: they are taken at
/// once for the point the job will make (its id in their tags), recorded on the job, not
/// taken again at completion, and the point keeps them; asked twice, the same answer. A
/// backup that fails after asking leaves no snapshot behind.
#[tokio::test]
async fn ebs_snapshots_taken_during_the_job_go_to_its_point_or_away_with_it() {
    let api = Api::new();
    let t = api.signup("hooks-ebs").await;
    let account = api.link_account(&t.admin, "prod", &["us-east-1"]).await.expect(201);
    let role = "arn:aws:iam::111122223333:role/arca-prod";
    api.give_role(&t.admin, &account, role).await.expect(200);
    let volume = |id: &str| {
        AwsResource::EbsVolume(EbsVolume {
            volume_id: id.into(),
            tags: [("kubernetes.io/cluster/prod-eks".to_owned(), "owned".to_owned())].into(),
            ..Default::default()
        })
    };
    api.cloud
        .set_resources(role, "us-east-1", vec![volume("vol-0aaa"), volume("vol-0bbb")]);
    let dest = api.destination(&t.admin, "bucket").await;
    let cluster = api
        .post(
            "/v1/clusters",
            &t.admin,
            json!({ "name": "prod", "defaultDestinationId": dest,
                    "aws": { "cloudAccountId": account.id(), "region": "us-east-1", "eksClusterName": "prod-eks" } }),
        )
        .await
        .expect(201);
    let cluster_id = cluster.id();
    let token = cluster.body["agentToken"].as_str().unwrap().to_owned();
    let backup = api.default_backup(&t, &cluster_id, None).await;
    let session = api.agent_session(&token).await;
    let volumes = json!([{ "pvName": "pv-data", "volumeId": "vol-0aaa", "availabilityZone": "us-east-1a" }]);

    // Between the hooks: taken now, recorded on the job with the point's id to come.
    api.run(&t.admin, &backup).await.expect(201);
    let polled = api.poll(&token, &session).await.expect(200);
    let job = polled.job_id();
    let taken = api
        .agent_job(&token, &session, &job, "ebs-snapshots", json!({ "volumes": volumes }))
        .await
        .expect(200);
    assert_eq!(taken.body["snapshots"].as_array().unwrap().len(), 1, "{}", taken.text);
    let snapshot = taken.body["snapshots"][0]["snapshotId"].as_str().unwrap().to_owned();
    let snapshots = api.cloud.snapshots();
    assert_eq!(snapshots.keys().collect::<Vec<_>>(), [&snapshot], "{snapshots:?}");
    let tagged_point = snapshots[&snapshot].2["arca:recovery-point"].clone();
    let again = api
        .agent_job(&token, &session, &job, "ebs-snapshots", json!({ "volumes": volumes }))
        .await
        .expect(200);
    assert_eq!(again.body, taken.body, "asked twice, the same snapshots");
    assert_eq!(api.cloud.snapshots().len(), 1);

    // Completion: nothing taken again; the point is the one the tags name, and keeps them.
    let done = api
        .complete(
            &token,
            &session,
            &polled,
            json!({ "backup": { "prefix": common::archive_at(&t.org_id, &cluster_id, "x"), "ebsVolumes": volumes } }),
        )
        .await
        .expect(200);
    assert_eq!(done.body["state"], "COMPLETED", "{}", done.text);
    assert_eq!(done.body["recoveryPointId"], tagged_point.as_str(), "{}", done.text);
    assert_eq!(api.cloud.snapshots().len(), 1, "no second snapshot at completion");
    let aws = api
        .get(&format!("/v1/recoverypoints/{tagged_point}/aws"), &t.admin)
        .await
        .expect(200);
    assert_eq!(
        aws.body["ebsSnapshots"][0]["snapshotId"],
        snapshot.as_str(),
        "{}",
        aws.text
    );
    assert!(
        done.text.contains("EBS snapshots taken between the hooks"),
        "the job says when: {}",
        done.text
    );

    // A backup that fails after its snapshots were taken: they are deleted, no point.
    api.run(&t.admin, &backup).await.expect(201);
    let polled = api.poll(&token, &session).await.expect(200);
    let other = json!([{ "pvName": "pv-logs", "volumeId": "vol-0bbb" }]);
    let taken = api
        .agent_job(
            &token,
            &session,
            &polled.job_id(),
            "ebs-snapshots",
            json!({ "volumes": other }),
        )
        .await
        .expect(200);
    let doomed = taken.body["snapshots"][0]["snapshotId"].as_str().unwrap().to_owned();
    assert!(api.cloud.snapshots().contains_key(&doomed));
    let failed = api
        .agent_job(
            &token,
            &session,
            &polled.job_id(),
            "complete",
            json!({ "leaseToken": polled.body["leaseToken"], "state": "FAILED", "reason": "a copy failed" }),
        )
        .await
        .expect(200);
    assert!(failed.body["recoveryPointId"].is_null(), "{}", failed.text);
    assert_eq!(
        api.cloud.snapshots().keys().collect::<Vec<_>>(),
        [&snapshot],
        "the failed job's snapshot is gone, the point's stays"
    );
    // An ended job takes none.
    api.agent_job(
        &token,
        &session,
        &polled.job_id(),
        "ebs-snapshots",
        json!({ "volumes": other }),
    )
    .await
    .expect(409);
}
