//! EBS volumes end to end: a claim on an EBS volume (the EBS CSI driver's static PV, its
//! volume on moto's EC2) in cluster a, linked to an AWS account; a backup with pvMode
//! snapshot, where the agent (a Pod) reports the volume and `arca server` snapshots it
//! through the account's role; a restore into cluster b, linked to the same account, whose
//! only node is in another zone: the server creates a volume there from the snapshot (on
//! moto) and the agent binds it to the restored claim as a static PV, which the real PV
//! controller binds. No EBS CSI driver runs here, so nothing mounts the volume: what
//! Kubernetes needs to attach it (driver, volume handle, zone, claim) is what is checked.
//! The application's Pod has backup hooks (Velero's annotations): the EC2 snapshot is
//! taken between its pre and post hook, which moto's request recorder shows in order.

#![allow(clippy::unwrap_used)]

mod common;

use common::node::{
    BucketEndpoint, Kubectl, MotoRecording, Scene, assert_agent_pod, bucket_destination, install_with_link,
    link_moto_account, start_server_on_moto,
};
use common::{User, config_in_env, fresh_account};
use serde_json::{Value, json};

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Cluster-scoped objects of the test and node labels, removed whatever happened.
struct ClusterScoped<'a> {
    objects: Vec<(Kubectl<'a>, String)>,
    node_label: Option<(Kubectl<'a>, String)>,
}

impl Drop for ClusterScoped<'_> {
    fn drop(&mut self) {
        for (k, what) in &self.objects {
            let _ = k.run(&["delete", what, "--ignore-not-found", "--wait=false"]);
        }
        if let Some((k, node)) = &self.node_label {
            let _ = k.run(&["label", "node", node, &format!("{ZONE_LABEL}-")]);
        }
    }
}

fn tags(v: &aws_sdk_ec2::types::Volume) -> std::collections::BTreeMap<String, String> {
    v.tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn ebs_claims_are_snapshotted_and_restored_onto_new_volumes_in_the_targets_zone() {
    let Some(nodes) = arca_testenv::nodes() else { return };
    let scene = Scene::new(&nodes, "ebs");
    let (a, b, work, namespace) = (scene.a, scene.b, &scene.work, scene.namespace.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();

    // ---- the AWS account (fresh on moto) and the application's EBS volume in us-east-1a
    let account = fresh_account();
    let ec2 = aws_sdk_ec2::Client::new(&rt.block_on(config_in_env(&nodes.aws, &account, "us-east-1")));
    // Tagged as the EBS CSI driver tags what it provisions: the control plane snapshots a
    // reported volume only when its tags show it as this cluster's (here: its PV's name).
    let source_pv = arca_testenv::unique("pv-ebs");
    let csi_tags = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("kubernetes.io/created-for/pv/name")
                .value(&source_pv)
                .build(),
        )
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("ebs.csi.aws.com/cluster")
                .value("true")
                .build(),
        )
        .build();
    let original = rt
        .block_on(
            ec2.create_volume()
                .availability_zone("us-east-1a")
                .size(2)
                .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
                .tag_specifications(csi_tags)
                .send(),
        )
        .unwrap()
        .volume_id()
        .unwrap()
        .to_owned();

    let aws = &nodes.aws;
    let (_server, url) = start_server_on_moto(work.path(), &nodes, &[]);
    let user = User::new(&url, work.path(), "admin");
    user.ok(&["signup", "--org-name", &arca_testenv::unique("ebs")]);
    link_moto_account(&user, &account);
    let (cluster_a, cluster_b) = (arca_testenv::unique("a"), arca_testenv::unique("b"));
    for (k, name) in [(&a, &cluster_a), (&b, &cluster_b)] {
        assert_agent_pod(&install_with_link(&user, k, name), &nodes.agent_image);
        user.ok(&[
            "clusters",
            "update",
            name,
            "--aws-account",
            "moto",
            "--aws-region",
            "us-east-1",
        ]);
    }
    let dest = arca_testenv::unique("ebs-dest");
    bucket_destination(&user, &[&a, &b], aws, &nodes.host_ip, &dest, BucketEndpoint::Http);

    // ---- cluster a: the claim on the EBS volume, as the EBS CSI driver provisions it
    let class = arca_testenv::unique("ebs-gp3");
    let mut scoped = ClusterScoped {
        objects: vec![
            (a, format!("persistentvolume/{source_pv}")),
            (a, format!("storageclass/{class}")),
            (b, format!("storageclass/{class}")),
        ],
        node_label: None,
    };
    for k in [&a, &b] {
        k.apply_json(&json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": class}, "provisioner": "ebs.csi.aws.com",
            "parameters": {"type": "gp3"}, "volumeBindingMode": "WaitForFirstConsumer"}));
    }
    a.ok(&["create", "namespace", &namespace]);
    a.apply_json(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace}, "data": {"engine": "postgres"}}));
    a.apply_json(&json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": source_pv},
        "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": class,
                 "persistentVolumeReclaimPolicy": "Retain",
                 "claimRef": {"namespace": namespace, "name": "db"},
                 "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": original, "fsType": "xfs"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": ZONE_LABEL, "operator": "In", "values": ["us-east-1a"]}]}]}}}}));
    a.apply_json(&json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class, "volumeName": source_pv,
                 "resources": {"requests": {"storage": "2Gi"}}}}));
    a.wait_for(&["pvc", "db", "-n", &namespace], 60, |c| {
        c["status"]["phase"] == "Bound"
    });

    // ---- the application's Pod, with Velero's hook annotations: each hook calls moto (a
    // request its recorder keeps in order with the control plane's CreateSnapshot)
    let moto_port = nodes
        .aws
        .endpoint_url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let marker = arca_testenv::unique("hook").to_lowercase();
    let call = |phase: &str| {
        json!([
            "/bin/sh",
            "-c",
            format!(
                "wget -q -O /dev/null http://{}:{moto_port}/{marker}-{phase}; true",
                nodes.host_ip
            )
        ])
        .to_string()
    };
    a.apply_json(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": namespace, "annotations": {
            "pre.hook.backup.velero.io/command": call("pre"),
            "post.hook.backup.velero.io/command": call("post")}},
        "spec": {"containers": [{"name": "main", "image": nodes.busybox_image, "command": ["sleep", "3600"]}],
                 "terminationGracePeriodSeconds": 1}}));
    a.wait_for(&["pod", "db-0", "-n", &namespace], 120, |p| {
        p["status"]["containerStatuses"][0]["ready"] == true
    });

    // ---- backup: the server snapshots the volume through the account's role, while the
    // pre hook holds the application
    user.ok(&[
        "backups",
        "create",
        "ebs",
        "--cluster",
        &cluster_a,
        "--namespaces",
        &namespace,
        "--destination",
        &dest,
        "--pv-mode",
        "snapshot",
    ]);
    let recording = MotoRecording::start(aws);
    let job = user.json(&["backups", "run", "ebs", "--wait"]);
    assert_eq!(job["state"], "COMPLETED", "the EBS volume is protected: {job:#}");
    let order: Vec<String> = recording
        .requests()
        .into_iter()
        .filter_map(|(url, form)| match form.get("Action").map(String::as_str) {
            Some("CreateSnapshot") => Some("CreateSnapshot".to_owned()),
            _ if url.contains(&format!("{marker}-pre")) => Some("pre".to_owned()),
            _ if url.contains(&format!("{marker}-post")) => Some("post".to_owned()),
            _ => None,
        })
        .collect();
    drop(recording);
    assert_eq!(
        order,
        ["pre", "CreateSnapshot", "post"],
        "the EC2 snapshot is taken between the pre and the post hook"
    );
    assert!(
        job.to_string()
            .contains("snapshotted by the control plane between the hooks"),
        "{job:#}"
    );
    let points = user.json(&["recovery-points", "list", "--backup", "ebs"]);
    let point = points[0]["id"].as_str().unwrap().to_owned();
    let on_aws = user.json(&["recovery-points", "aws", &point]);
    let snapshots = on_aws["ebsSnapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 1, "{on_aws:#}");
    assert_eq!(snapshots[0]["volumeId"], original.as_str());
    assert_eq!(snapshots[0]["claim"], json!({"namespace": namespace, "name": "db"}));
    let snapshot = snapshots[0]["snapshotId"].as_str().unwrap().to_owned();
    let described = rt
        .block_on(ec2.describe_snapshots().snapshot_ids(&snapshot).send())
        .unwrap();
    assert_eq!(described.snapshots()[0].volume_id(), Some(original.as_str()));

    // ---- restore into b, whose only node is in us-east-1c
    let node_b = b.json(&["get", "nodes"])["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    b.ok(&[
        "label",
        "node",
        &node_b,
        &format!("{ZONE_LABEL}=us-east-1c"),
        "--overwrite",
    ]);
    scoped.node_label = Some((b, node_b));
    let restore = user.restore_waiting(&point, &cluster_b);
    assert_eq!(restore["state"], "COMPLETED", "{restore:#}");
    let restore_id = restore["restoreId"].as_str().unwrap().to_owned();

    let claim = b.wait_for(&["pvc", "db", "-n", &namespace], 60, |c| {
        c["status"]["phase"] == "Bound"
    });
    let pv_name = claim["spec"]["volumeName"].as_str().unwrap().to_owned();
    scoped.objects.push((b, format!("persistentvolume/{pv_name}")));
    assert!(pv_name.starts_with("arca-ebs-db-"), "{claim:#}");
    let pv: Value = b.json(&["get", "pv", &pv_name]);
    let spec = &pv["spec"];
    assert_eq!(spec["csi"]["driver"], "ebs.csi.aws.com", "{pv:#}");
    assert_eq!(spec["csi"]["fsType"], "xfs", "the source PV's file system: {pv:#}");
    assert_eq!(spec["storageClassName"], class.as_str());
    assert_eq!(
        spec.pointer("/nodeAffinity/required/nodeSelectorTerms/0/matchExpressions/0/values/0"),
        Some(&json!("us-east-1c")),
        "pinned where the volume is: {pv:#}"
    );
    let restored = spec["csi"]["volumeHandle"].as_str().unwrap().to_owned();
    assert_ne!(restored, original, "a new volume, not the source's");
    let missing = b.run(&["get", "pv", &source_pv]);
    assert!(!missing.status.success(), "the source PV object is not restored into b");
    let settings = b.json(&["get", "configmap", "settings", "-n", &namespace]);
    assert_eq!(settings["data"]["engine"], "postgres");

    // ---- the new volume on EC2: from the point's snapshot, in b's zone, typed, tagged
    let volumes = rt
        .block_on(ec2.describe_volumes().volume_ids(&restored).send())
        .unwrap();
    let v = &volumes.volumes()[0];
    assert_eq!(v.snapshot_id(), Some(snapshot.as_str()));
    assert_eq!(v.availability_zone(), Some("us-east-1c"));
    assert_eq!(v.size(), Some(2));
    let t = tags(v);
    assert_eq!(t["arca:recovery-point"], point, "{t:?}");
    assert_eq!(t["arca:snapshot"], snapshot, "{t:?}");
    assert_eq!(t["arca:restore"], restore_id, "{t:?}");
    // Cluster b's now: its own backups may snapshot it (the control plane checks whose a volume is).
    let b_id = user.json(&["clusters", "get", &cluster_b])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(t["arca:cluster"], b_id, "{t:?}");
    let log = user.json(&["jobs", "get", restore["id"].as_str().unwrap()]).to_string();
    assert!(
        log.contains(&format!(
            "from EBS snapshot {snapshot} onto new volume {restored} in us-east-1c"
        )),
        "{log}"
    );
    drop(scoped);
}
