//! Persistent-volume data through real mover Pods: a `snapshotAndCopy` backup in cluster
//! a and a restore from the repository into cluster b, on the nodes' real CSI stack
//! (scripts/testenv.sh): the external-provisioner provisions every claim, the snapshot
//! controller and the csi-snapshotter take every VolumeSnapshot, the kubelet publishes
//! each block volume into the Pod that uses it through the CSI node service, and each
//! mover is a Job the Job controller turns into a Pod that the kubelet runs from the agent
//! image. The driver under them is the test environment's own (tests/csi-driver: each
//! volume a file on a loop device), for want of a served driver that carries data.
//!
//! The destination is a user bucket on moto over TLS, with a certificate of the test
//! environment's private CA that the destination's `caBundle` makes trusted, for the
//! agents and for the movers they start.
//!
//! Movers run in the agent's namespace: the test watches every namespace of both clusters
//! for the Jobs and Secrets the agents make and fails on any outside `arca-system`. The
//! agent of cluster a renews its movers' credentials at once (a renewal margin longer than
//! their lifetime), so the test sees the mover's Secret rewritten while the mover runs.
//!
//! The test puts the application's bytes on the source volume's file and reads the
//! restored volume's file, as a storage admin could; everything between is the product on
//! real Kubernetes. The bytes are compared one for one.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::User;
use common::node::{
    AGENT_NAMESPACE, BucketEndpoint, Kubectl, PodWatch, Scene, assert_agent_pod, bucket_destination, install_with_link,
    same_bytes, start_server, volume_file,
};
use serde_json::{Value, json};

/// The source volume: 6 MiB.
const SIZE: usize = 6 << 20;
const MOVER: &str = "arca.dev/role=mover";

/// Recognisable, partly compressible: pseudo-random bytes, numbered text lines, zeros, and
/// random again.
fn source_data() -> Vec<u8> {
    let mut data = Vec::with_capacity(SIZE);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut random = |data: &mut Vec<u8>, n: usize| {
        for _ in 0..n / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
    };
    random(&mut data, 2 << 20);
    let mut line = 0u64;
    while data.len() < 4 << 20 {
        data.extend_from_slice(format!("arca volume test, block line {line:010}\n").as_bytes());
        line += 1;
    }
    data.truncate(4 << 20);
    data.resize(5 << 20, 0);
    random(&mut data, 1 << 20);
    assert_eq!(data.len(), SIZE);
    data
}

/// Every version of the objects of one kind, in every namespace, that the agents label
/// (`kubectl get -A -w`), from before the jobs start.
struct Watch {
    child: Child,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Watch {
    fn start(k: &Kubectl, kind: &str) -> Watch {
        let mut child = k
            .nodes
            .kubectl(k.kubeconfig)
            .args([
                "get",
                kind,
                "-A",
                "-l",
                "app.kubernetes.io/managed-by=arca",
                "-w",
                "-o",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for v in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
                let Ok(v) = v else { break };
                sink.lock().unwrap().push(v);
            }
        });
        Watch { child, seen }
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    /// Asserts nothing was ever outside the agent's namespace, and returns what was in it.
    fn only_in_agent_namespace(&self, what: &str) -> Vec<Value> {
        let seen = self.seen();
        let outside: Vec<&Value> = seen
            .iter()
            .filter(|v| v["metadata"]["namespace"] != AGENT_NAMESPACE)
            .collect();
        assert!(outside.is_empty(), "{what} outside {AGENT_NAMESPACE}: {outside:#?}");
        seen
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A mover Pod that ran to success on `node` from the agent image (by digest).
fn assert_mover_pod(watch: &PodWatch, node: &str, image: &str, args_start: &[&str]) -> Value {
    let pod = watch
        .wait_for(10, |p| p["status"]["phase"] == "Succeeded")
        .unwrap_or_else(|| panic!("no mover Pod succeeded; seen: {:#}", Value::Array(watch.seen())));
    assert_eq!(pod["spec"]["nodeName"], node, "{pod:#}");
    assert_eq!(pod["metadata"]["namespace"], AGENT_NAMESPACE, "{pod:#}");
    assert!(
        watch
            .seen()
            .iter()
            .all(|p| p["metadata"]["namespace"] == AGENT_NAMESPACE),
        "mover Pods only in the agent's namespace: {:#}",
        Value::Array(watch.seen())
    );
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["image"], image, "{pod:#}");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.starts_with(args_start), "{args:?}");
    assert_eq!(
        container["volumeDevices"][0]["devicePath"], "/dev/arca-volume",
        "{pod:#}"
    );
    let status = &pod["status"]["containerStatuses"][0];
    let digest = image.rsplit_once('@').unwrap().1;
    assert!(
        status["imageID"].as_str().unwrap().ends_with(digest),
        "the node ran the agent image by its digest: {status:#}"
    );
    assert_eq!(status["state"]["terminated"]["exitCode"], 0, "{status:#}");
    assert!(
        pod["metadata"]["ownerReferences"][0]["kind"] == "Job",
        "the Job controller made it: {pod:#}"
    );
    pod
}

#[test]
fn snapshot_and_copy_runs_real_movers_and_restores_the_bytes_into_another_cluster() {
    let Some(nodes) = arca_testenv::nodes() else { return };
    let started = Instant::now();
    let scene = Scene::new(&nodes, "vols");
    let (a, b, work, namespace) = (scene.a, scene.b, &scene.work, scene.namespace.clone());

    // ---- server, user, an agent in each cluster (the install link, applied with kubectl)
    let (_server, url) = start_server(work.path(), &nodes.host_ip, &nodes.agent_image);
    let user = User::new(&url, work.path(), "admin");
    user.ok(&["signup", "--org-name", &arca_testenv::unique("volumes")]);
    let (cluster_a, cluster_b) = (arca_testenv::unique("a"), arca_testenv::unique("b"));
    for (k, name) in [(&a, &cluster_a), (&b, &cluster_b)] {
        let pod = install_with_link(&user, k, name);
        assert_agent_pod(&pod, &nodes.agent_image);
        // Movers run the agent's own image.
        let env = &pod["spec"]["containers"][0]["env"];
        assert!(
            env.as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "ARCA_MOVER_IMAGE" && e["value"] == nodes.agent_image.as_str()),
            "{env:#}"
        );
    }
    // Cluster a's agent renews its movers' credentials as soon as they run: its margin
    // (48 h) is longer than the lifetime of the keys it reads from the credentialsRef
    // Secret (24 h).
    a.ok(&[
        "set",
        "env",
        "deployment/arca-agent",
        "-n",
        AGENT_NAMESPACE,
        "ARCA_MOVER_RENEWAL_MARGIN_SECS=172800",
    ]);
    // The new Pod replaces the old one (Recreate): wait for the rollout, then for it.
    a.ok(&[
        "rollout",
        "status",
        "deployment/arca-agent",
        "-n",
        AGENT_NAMESPACE,
        "--timeout=180s",
    ]);
    let pod = a.ready_agent_pod();
    assert!(
        pod["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "ARCA_MOVER_RENEWAL_MARGIN_SECS"),
        "{pod:#}"
    );
    bucket_destination(
        &user,
        &[&a, &b],
        &nodes.aws,
        &nodes.host_ip,
        "bucket",
        BucketEndpoint::TlsWithCaBundle,
    );
    eprintln!("agents up after {:?}", started.elapsed());

    // ---- the application's block volume in cluster a, provisioned by the CSI stack,
    // holding the source bytes
    a.ok(&["create", "namespace", &namespace]);
    a.apply_json(&json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Block", "storageClassName": nodes.csi.storage_class,
                 "resources": {"requests": {"storage": SIZE.to_string()}}}}));
    let source = volume_file(&a, &nodes.csi.volumes_a, &namespace, "data");
    let data = source_data();
    std::fs::write(&source, &data).unwrap();

    let watch_a = PodWatch::start(&a, MOVER);
    let watch_b = PodWatch::start(&b, MOVER);
    let (secrets_a, jobs_a) = (Watch::start(&a, "secrets"), Watch::start(&a, "jobs"));
    let (secrets_b, jobs_b) = (Watch::start(&b, "secrets"), Watch::start(&b, "jobs"));
    let namespace = namespace.as_str();
    let t = Instant::now();

    // ---- backup: snapshot, clone claim, mover Job in cluster a
    user.ok(&[
        "backups",
        "create",
        "vols",
        "--cluster",
        &cluster_a,
        "--namespaces",
        namespace,
        "--destination",
        "bucket",
        "--pv-mode",
        "snapshot-and-copy",
    ]);
    let job = user.json(&["backups", "run", "vols", "--wait"]);
    eprintln!("backup job after {:?}: {job:#}", t.elapsed());
    assert_eq!(job["state"], "COMPLETED", "{job:#}");
    let mover = assert_mover_pod(
        &watch_a,
        "arca-a-node",
        &nodes.agent_image,
        &["volume", "backup", "--repo"],
    );
    // The mover reached the store over TLS, trusting the private CA it was handed.
    let env = &mover["spec"]["containers"][0]["env"];
    let var = |name: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .map(str::to_owned)
    };
    assert!(
        var("AWS_ENDPOINT_URL").is_some_and(|u| u.starts_with("https://")),
        "{env:#}"
    );
    assert_eq!(
        var("ARCA_S3_CA_BUNDLE"),
        Some(std::fs::read_to_string(&nodes.aws.tls.ca).unwrap()),
        "{env:#}"
    );
    // Its keys and passphrase are files of its Secret, not environment variables.
    assert_eq!(
        var("ARCA_S3_CREDENTIALS_FILE").as_deref(),
        Some("/var/run/secrets/arca-mover/s3-credentials.json"),
        "{env:#}"
    );
    assert!(
        var("AWS_ACCESS_KEY_ID").is_none() && var("ARCA_REPO_PASSWORD").is_none(),
        "{env:#}"
    );
    assert!(mover["spec"]["containers"][0].get("envFrom").is_none(), "{mover:#}");
    // Nothing of the mover was ever in the application's namespace; its Job and Secret
    // were in the agent's, and the Secret was renewed while the mover ran.
    let job_name = mover["metadata"]["labels"]["job-name"].as_str().unwrap().to_owned();
    assert!(
        jobs_a
            .only_in_agent_namespace("mover Jobs")
            .iter()
            .any(|j| j["metadata"]["name"] == job_name.as_str()),
        "the mover's Job in {AGENT_NAMESPACE}"
    );
    let versions: Vec<Value> = secrets_a
        .only_in_agent_namespace("mover Secrets")
        .into_iter()
        .filter(|s| s["metadata"]["name"] == job_name.as_str())
        .collect();
    let credentials: std::collections::BTreeSet<&str> = versions
        .iter()
        .filter_map(|s| s["data"]["s3-credentials.json"].as_str())
        .collect();
    assert!(
        credentials.len() >= 2,
        "the mover's Secret was written, then renewed: {} versions, {} distinct credential files",
        versions.len(),
        credentials.len()
    );
    // The agent removed its mover Job (and with it the Pod and Secret), the clone claim
    // and the snapshot import it came from, all in its own namespace.
    a.wait_for(
        &[
            "jobs,secrets,pvc,volumesnapshots",
            "-n",
            AGENT_NAMESPACE,
            "-l",
            "arca.dev/job-id",
        ],
        60,
        |v| v["items"] == json!([]),
    );
    a.wait_for(
        &["volumesnapshotcontents", "-l", "arca.dev/role=copy-source"],
        60,
        |v| v["items"] == json!([]),
    );
    a.wait_for(
        &[
            "jobs,secrets,pvc",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/managed-by=arca",
        ],
        5,
        |v| v["items"] == json!([]),
    );
    let points = user.json(&["recovery-points", "list", "--backup", "vols"]);
    let id = points[0]["id"].as_str().unwrap().to_owned();
    let point = user.json(&["recovery-points", "get", &id]);
    eprintln!("recovery point: {point:#}");
    assert_eq!(point["state"], "READY", "{point:#}");
    let volumes = point
        .pointer("/details/volumes")
        .or_else(|| point.pointer("/volumes"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no volumes in {point:#}"));
    assert_eq!(volumes.len(), 1, "{point:#}");
    let volume = &volumes[0];
    assert_eq!(volume["pvc"], "data", "{volume:#}");
    assert_eq!(volume["driver"], nodes.csi.driver.as_str(), "{volume:#}");
    let copy = &volume["copy"];
    assert_eq!(copy["size"], SIZE as u64, "the mover read the whole device: {volume:#}");
    assert!(copy["snapshotId"].as_str().is_some_and(|s| !s.is_empty()), "{volume:#}");
    let stored = copy["bytesStored"].as_u64().unwrap();
    assert!(
        stored > 0 && stored < SIZE as u64,
        "the text and zeros compress, the random part does not: {volume:#}"
    );

    // The backup's VolumeSnapshot stays in cluster a, taken by the snapshot controller and
    // the csi-snapshotter: a storage snapshot of the source volume, as large as it.
    let snapshots = a.json(&["get", "volumesnapshots", "-n", namespace]);
    let [snapshot] = snapshots["items"].as_array().unwrap().as_slice() else {
        panic!("one VolumeSnapshot in a/{namespace}: {snapshots:#}");
    };
    assert_eq!(snapshot["status"]["readyToUse"], true, "{snapshot:#}");
    let content_name = snapshot["status"]["boundVolumeSnapshotContentName"].as_str().unwrap();
    let content = a.json(&["get", "volumesnapshotcontent", content_name]);
    assert_eq!(content["spec"]["driver"], nodes.csi.driver.as_str(), "{content:#}");
    let handle = content["status"]["snapshotHandle"].as_str().unwrap();
    let stored_snapshot = nodes
        .csi
        .volumes_a
        .parent()
        .unwrap()
        .join("snapshots")
        .join(format!("{handle}.img"));
    same_bytes(
        "the storage snapshot",
        &std::fs::read(&stored_snapshot).unwrap()[..data.len()],
        &data,
    );

    // ---- restore into cluster b, where the namespace does not exist: the mover writes
    // the repository copy onto a claim in the agent's namespace, whose volume then becomes
    // the restored claim's
    assert!(!b.run(&["get", "namespace", namespace]).status.success());
    let t = Instant::now();
    let restore = user.restore_waiting(&id, &cluster_b);
    eprintln!("restore after {:?}: {restore:#}", t.elapsed());
    assert_eq!(restore["state"], "COMPLETED", "{restore:#}");
    let restore_mover = assert_mover_pod(
        &watch_b,
        "arca-b-node",
        &nodes.agent_image,
        &["volume", "restore", "--repo"],
    );
    let restored = volume_file(&b, &nodes.csi.volumes_b, namespace, "data");
    let pvc = b.json(&["get", "pvc", "data", "-n", namespace]);
    assert!(pvc["spec"].get("dataSource").is_none(), "{pvc:#}");
    assert_eq!(
        pvc["spec"]["storageClassName"],
        nodes.csi.storage_class.as_str(),
        "{pvc:#}"
    );
    assert_eq!(pvc["spec"]["volumeMode"], "Block", "{pvc:#}");
    same_bytes(
        "the restored claim",
        &std::fs::read(&restored).unwrap()[..data.len()],
        &data,
    );
    // The volume the mover filled is the restored claim's, with the class's reclaim
    // policy again (Retain only while it changed hands).
    let pv_name = pvc["spec"]["volumeName"].as_str().unwrap();
    let pv = b.wait_for(&["pv", pv_name], 60, |pv| {
        pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    });
    assert_eq!(pv["spec"]["claimRef"]["namespace"], namespace, "{pv:#}");
    assert_eq!(pv["spec"]["claimRef"]["name"], "data", "{pv:#}");
    assert_eq!(pv["spec"]["claimRef"]["uid"], pvc["metadata"]["uid"], "{pv:#}");
    let restore_job = restore_mover["metadata"]["labels"]["job-name"].as_str().unwrap();
    assert!(
        jobs_b
            .only_in_agent_namespace("mover Jobs")
            .iter()
            .any(|j| j["metadata"]["name"] == restore_job),
        "the restore mover's Job in {AGENT_NAMESPACE}"
    );
    assert!(
        secrets_b
            .only_in_agent_namespace("mover Secrets")
            .iter()
            .any(|s| s["metadata"]["name"] == restore_job),
        "the restore mover's Secret in {AGENT_NAMESPACE}"
    );
    // The restore's temporary claim, Job and Secret are gone; the claim's volume stays.
    b.wait_for(
        &["jobs,secrets,pvc", "-n", AGENT_NAMESPACE, "-l", "arca.dev/job-id"],
        60,
        |v| v["items"] == json!([]),
    );
    assert!(
        b.json(&["get", "volumesnapshots", "-A", "-l", "arca.dev/role=restore-source"])["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no snapshot is made for a restore from the repository"
    );
    assert_eq!(
        b.json(&["get", "pv", pv_name])["status"]["phase"],
        "Bound",
        "the restored volume stays bound"
    );
    // Both clusters, start to end: no mover Job or Secret outside the agent's namespace.
    jobs_a.only_in_agent_namespace("mover Jobs");
    secrets_a.only_in_agent_namespace("mover Secrets");
    eprintln!("restored after {:?}", started.elapsed());

    verification_after_backup_and_on_demand(&user, &a, &watch_a, &nodes.agent_image, namespace);
    eprintln!("done after {:?}", started.elapsed());
}

/// Restore verification in cluster a: each backup's point restored into a scratch
/// namespace, its copy written and read back by a real mover (`--verify`), a probe Job of
/// the agent's image, the namespace removed; then a failing probe on demand.
fn verification_after_backup_and_on_demand(user: &User, a: &Kubectl, movers: &PodWatch, image: &str, namespace: &str) {
    let t = Instant::now();
    verify_after_backup_with_probe(user, image, &["arca-agent", "--version"], &["--probe-timeout", "120"]);
    let job = user.json(&["backups", "run", "vols", "--wait"]);
    assert_eq!(job["state"], "COMPLETED", "{job:#}");
    let point_id = job["recoveryPointId"].as_str().unwrap().to_owned();
    let point = wait_verified(user, &point_id);
    eprintln!("verified after {:?}: {:#}", t.elapsed(), point["verification"]);
    let v = &point["verification"];
    assert_eq!(v["state"], "VERIFIED", "{point:#}");
    assert_eq!(v["volumesVerified"], 1, "{v:#}");
    // The namespace and its claim at least.
    assert!(v["objectsVerified"].as_u64().unwrap() >= 2, "{v:#}");
    assert!(v.get("reasons").is_none(), "{v:#}");
    // The copy came back through a mover that compared it with the backup's record.
    let verifying = movers
        .wait_for(60, |p| {
            p["status"]["phase"] == "Succeeded"
                && p["spec"]["containers"][0]["args"]
                    .as_array()
                    .is_some_and(|args| args.iter().any(|x| x == "--verify"))
        })
        .unwrap_or_else(|| panic!("no verifying mover: {:#}", Value::Array(movers.seen())));
    assert_eq!(verifying["metadata"]["namespace"], AGENT_NAMESPACE, "{verifying:#}");
    let restore_job = user.json(&["jobs", "get", v["jobId"].as_str().unwrap()]);
    let log = restore_job.to_string();
    assert!(
        log.contains("the probe") && log.contains("succeeded"),
        "{restore_job:#}"
    );
    let scratch = "arca-verify-";
    assert!(log.contains(scratch) && log.contains(namespace), "{restore_job:#}");
    // The scratch namespace is gone (with its claim and the volume provisioned for it);
    // the application's is untouched.
    a.wait_for(&["namespaces"], 180, |list| {
        !list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ns| ns["metadata"]["name"].as_str().unwrap().starts_with(scratch))
    });
    assert!(a.run(&["get", "pvc", "data", "-n", namespace]).status.success());

    // A probe that fails: the verification fails with its reason, on the point and in the
    // job (whose FAILED end is what alerts see), and the CLI says so.
    verify_after_backup_with_probe(user, image, &["arca-agent", "no-such-command"], &[]);
    let out = user.run(&["recovery-points", "verify", &point_id, "--wait"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("arca: error: job_failed: ")
            && last.contains("verification failed")
            && last.contains("probe Job failed")
            && last.contains("unrecognized subcommand 'no-such-command'"),
        "the probe's failure and the end of its log: {err}"
    );
    let point = user.json(&["recovery-points", "get", &point_id]);
    let v = &point["verification"];
    assert_eq!(v["state"], "FAILED", "{point:#}");
    assert!(v["reasons"][0].as_str().unwrap().contains("probe Job failed"), "{v:#}");
    let listed = user.ok(&["recovery-points", "list", "--backup", "vols"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&point_id) && l.trim_end().ends_with("FAILED")),
        "{listed}"
    );
    eprintln!("verification checks took {:?}", t.elapsed());
}

/// `backups update vols --verify after-backup` with a probe of `image` running
/// `probe` (its argv), and any further `flags`.
fn verify_after_backup_with_probe(user: &User, image: &str, probe: &[&str], flags: &[&str]) {
    let mut args = vec![
        "backups",
        "update",
        "vols",
        "--verify",
        "after-backup",
        "--probe-image",
        image,
    ];
    for arg in probe {
        args.extend(["--probe-arg", arg]);
    }
    args.extend(flags);
    user.ok(&args);
}

/// The point once its verification has ended.
fn wait_verified(user: &User, point: &str) -> Value {
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let p = user.json(&["recovery-points", "get", point]);
        match p["verification"]["state"].as_str() {
            Some("VERIFIED" | "FAILED") => return p,
            _ if Instant::now() > deadline => panic!("the verification did not end: {p:#}"),
            _ => std::thread::sleep(std::time::Duration::from_secs(2)),
        }
    }
}
