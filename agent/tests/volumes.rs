//! CSI orchestration on the real kube-apiserver with the real external-snapshotter CRDs,
//! through the real control plane (API router in-process) and the agent's worker.
//!
//! No controllers and no kubelet run here, so this test plays them:
//! - the external snapshot controller: for each new VolumeSnapshot it creates the
//!   VolumeSnapshotContent and sets both statuses ready (status subresources); a
//!   "storage snapshot" is a copy of the file standing for the claim's volume;
//! - the node: for each mover Job it runs the Job's own command line with the real
//!   `arca-agent` binary, its environment, its Secret's files (written where the Job
//!   mounts them), the device path replaced by a file standing for the attached claim (a
//!   clone of the snapshot's file, or a new file for a restore target), then marks the Job
//!   complete (or failed) through its status subresource as the Job controller would;
//! - the external-provisioner and the PV controller, for what the movers use: a restore
//!   target claim gets a PV (bound), and a claim created with the `volumeName` of a PV
//!   pre-bound to it is bound.
//!
//! Movers run in the agent's namespace: the test watches every namespace for a mover's
//! Job or Secret anywhere else.
//!
//! Orchestration and data path are each real; the repository is a local destination.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_agent::runner::{ArchiveKey, ResourceRunner};
use arca_agent::volumes::VolumeOptions;
use arca_agent::volumes::mover::{DEVICE_PATH, PASSWORD_KEY, SECRET_DIR};
use arca_core::control_plane::ControlPlaneConfig;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

const SIZE: usize = 4 << 20;

fn ar(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "snapshot.storage.k8s.io".into(),
        version: "v1".into(),
        api_version: "snapshot.storage.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn snapshots_all(c: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(c.clone(), &ar("VolumeSnapshot", "volumesnapshots"))
}

fn snapshots(c: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(c.clone(), ns, &ar("VolumeSnapshot", "volumesnapshots"))
}

fn contents(c: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(c.clone(), &ar("VolumeSnapshotContent", "volumesnapshotcontents"))
}

fn classes(c: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(c.clone(), &ar("VolumeSnapshotClass", "volumesnapshotclasses"))
}

/// What the playing controllers share with the test.
#[derive(Default)]
struct World {
    dir: PathBuf,
    /// The test's namespaces start with this.
    tag: String,
    /// The agent's namespace, where movers run.
    agent_ns: String,
    /// Every mover Job or Secret seen outside the agent's namespace: (kind, namespace, name).
    leaks: Mutex<HashSet<(String, String, String)>>,
    /// Mover Secrets seen in the agent's namespace.
    secrets_seen: Mutex<HashSet<String>>,
    /// `pvc:<ns>/<name>`, `snap:<ns>/<name>`, `handle:<h>` -> the file standing for it.
    files: Mutex<HashMap<String, PathBuf>>,
    /// (namespace, job, subcommand, claim) of every mover run.
    movers: Mutex<Vec<(String, String, String, String)>>,
    handled: Mutex<HashSet<String>>,
    password: Mutex<Option<String>>,
    failures: Mutex<Vec<String>>,
}

impl World {
    fn file(&self, key: &str) -> Option<PathBuf> {
        self.files.lock().unwrap().get(key).cloned()
    }
    fn put(&self, key: String, path: PathBuf) {
        self.files.lock().unwrap().insert(key, path);
    }
    fn ours(&self, ns: &str) -> bool {
        ns.starts_with(&self.tag)
    }
}

fn utc_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
}

fn now() -> String {
    utc_now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The external snapshot controller's part.
async fn snapshot_controller(client: &kube::Client, world: &World) {
    let Ok(list) = snapshots_all(client).list(&ListParams::default()).await else {
        return;
    };
    for vs in list.items {
        let ns = vs.metadata.namespace.clone().unwrap_or_default();
        let name = vs.metadata.name.clone().unwrap_or_default();
        if !world.ours(&ns) || vs.data["status"]["readyToUse"] == true {
            continue;
        }
        let uid = vs.metadata.uid.clone().unwrap_or_default();
        let class = vs.data["spec"]["volumeSnapshotClassName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (content_name, handle) = if let Some(pvc) = vs.data["spec"]["source"]["persistentVolumeClaimName"].as_str()
        {
            let Some(source) = world.file(&format!("pvc:{ns}/{pvc}")) else {
                continue;
            };
            let handle = format!("snap-{uid}");
            let copy = world.dir.join(format!("{handle}.img"));
            std::fs::copy(&source, &copy).unwrap();
            world.put(format!("handle:{handle}"), copy);
            let driver = classes(client).get(&class).await.unwrap().data["driver"]
                .as_str()
                .unwrap()
                .to_string();
            let content_name = format!("snapcontent-{uid}");
            let content: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                "metadata": {"name": content_name},
                "spec": {
                    "deletionPolicy": "Delete", "driver": driver,
                    "source": {"volumeHandle": format!("vol-{pvc}")},
                    "volumeSnapshotClassName": class,
                    "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                                          "namespace": ns, "name": name, "uid": uid},
                },
            }))
            .unwrap();
            match contents(client).create(&PostParams::default(), &content).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => panic!("creating content: {e}"),
            }
            (content_name, handle)
        } else if let Some(content_name) = vs.data["spec"]["source"]["volumeSnapshotContentName"].as_str() {
            // A pre-provisioned (imported) content.
            let content = contents(client).get(content_name).await.unwrap();
            let handle = content.data["spec"]["source"]["snapshotHandle"]
                .as_str()
                .unwrap()
                .to_string();
            (content_name.to_string(), handle)
        } else {
            continue;
        };
        let Some(file) = world.file(&format!("handle:{handle}")) else {
            continue;
        };
        let size = std::fs::metadata(&file).unwrap().len();
        let status = json!({"status": {"snapshotHandle": handle, "readyToUse": true, "restoreSize": size,
                                       "creationTime": 1_700_000_000_000_000_000i64}});
        contents(client)
            .patch_status(&content_name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        let status = json!({"status": {"boundVolumeSnapshotContentName": content_name, "readyToUse": true,
                                       "restoreSize": size.to_string(), "creationTime": now()}});
        snapshots(client, &ns)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        world.put(format!("snap:{ns}/{name}"), file);
    }
}

/// The node's (and the Job controller's) part.
async fn node(client: &kube::Client, world: &World) {
    let jobs: Api<Job> = Api::all(client.clone());
    let Ok(list) = jobs.list(&ListParams::default().labels("arca.dev/role=mover")).await else {
        return;
    };
    for job in list.items {
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let name = job.metadata.name.clone().unwrap_or_default();
        let key = format!("{ns}/{name}");
        if !world.ours(&ns) || world.handled.lock().unwrap().contains(&key) {
            continue;
        }
        let value = serde_json::to_value(&job).unwrap();
        let pod = &value["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert!(container.get("envFrom").is_none(), "secrets come as files: {container}");
        let secret_volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["secret"].is_object())
            .unwrap_or_else(|| panic!("no Secret volume: {pod}"));
        let secret_name = secret_volume["secret"]["secretName"].as_str().unwrap();
        let mount = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == secret_volume["name"])
            .unwrap();
        assert_eq!(mount["mountPath"], SECRET_DIR);
        let Ok(Some(secret)) = Api::<Secret>::namespaced(client.clone(), &ns)
            .get_opt(secret_name)
            .await
        else {
            continue; // the agent creates it right after the Job
        };
        if ns == world.agent_ns {
            world.secrets_seen.lock().unwrap().insert(secret_name.to_string());
        }
        let claim = pod["volumes"][0]["persistentVolumeClaim"]["claimName"]
            .as_str()
            .unwrap()
            .to_string();
        let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
            .get(&claim)
            .await
            .unwrap();
        assert_eq!(
            pvc.spec.as_ref().unwrap().volume_mode.as_deref(),
            Some("Block"),
            "movers attach block claims"
        );
        let device = world.dir.join(format!("{ns}-{claim}-device.img"));
        match pvc.spec.as_ref().unwrap().data_source.as_ref() {
            Some(ds) => {
                assert_eq!(ds.kind, "VolumeSnapshot");
                let Some(source) = world.file(&format!("snap:{ns}/{}", ds.name)) else {
                    continue;
                };
                std::fs::copy(source, &device).unwrap(); // the clone
            }
            None => {
                std::fs::write(&device, b"").unwrap();
                provision(client, &pvc, world, &device).await;
            }
        }
        world.put(format!("pvc:{ns}/{claim}"), device.clone());
        world.handled.lock().unwrap().insert(key.clone());

        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().replace(DEVICE_PATH, device.to_str().unwrap()))
            .collect();
        // The Secret's files, where the kubelet would mount them.
        let secret_dir = world.dir.join(format!("{ns}-{name}-secret"));
        std::fs::create_dir_all(&secret_dir).unwrap();
        for (k, v) in secret.data.clone().unwrap_or_default() {
            let v = String::from_utf8(v.0).unwrap();
            if k == PASSWORD_KEY {
                *world.password.lock().unwrap() = Some(v.clone());
            }
            std::fs::write(secret_dir.join(&k), v).unwrap();
        }
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_arca-agent"));
        cmd.args(&args);
        cmd.env_remove("ARCA_REPO_PASSWORD");
        for e in container["env"].as_array().unwrap() {
            let value = e["value"].as_str().unwrap();
            let password = world.password.lock().unwrap().clone().unwrap_or_default();
            assert!(
                password.is_empty() || !value.contains(&password),
                "the passphrase is not in the Job's spec"
            );
            cmd.env(
                e["name"].as_str().unwrap(),
                value.replace(SECRET_DIR, secret_dir.to_str().unwrap()),
            );
        }
        let started = now();
        let out = cmd.output().await.unwrap();
        world
            .movers
            .lock()
            .unwrap()
            .push((ns.clone(), name.clone(), args[1].clone(), claim.clone()));
        let status = if out.status.success() {
            json!({"status": {"startTime": started, "completionTime": now(), "succeeded": 1, "active": 0,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                     "message": "Reached expected number of succeeded pods", "lastTransitionTime": now(), "lastProbeTime": now()},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                     "message": "Reached expected number of succeeded pods", "lastTransitionTime": now(), "lastProbeTime": now()}]}})
        } else {
            world.failures.lock().unwrap().push(format!(
                "mover {key} ({}) failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
            json!({"status": {"startTime": started, "failed": 1, "active": 0,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit", "lastTransitionTime": now(), "lastProbeTime": now()},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit", "lastTransitionTime": now(), "lastProbeTime": now()}]}})
        };
        if let Err(e) = jobs_in(client, &ns)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            world
                .failures
                .lock()
                .unwrap()
                .push(format!("marking {key} finished: {e}"));
        }
    }
}

/// The external-provisioner's part for a restore target claim (no data source): a PV of
/// the claim's mode, bound to it. `pv:<name>` is the device file.
async fn provision(client: &kube::Client, pvc: &PersistentVolumeClaim, world: &World, device: &std::path::Path) {
    let ns = pvc.metadata.namespace.clone().unwrap();
    let name = pvc.metadata.name.clone().unwrap();
    let uid = pvc.metadata.uid.clone().unwrap();
    let spec = pvc.spec.clone().unwrap();
    let class = spec.storage_class_name.clone().unwrap();
    let driver = Api::<k8s_openapi::api::storage::v1::StorageClass>::all(client.clone())
        .get(&class)
        .await
        .unwrap()
        .provisioner;
    let pv_name = format!("pvc-{uid}");
    create(
        &Api::<PersistentVolume>::all(client.clone()),
        json!({"metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": driver}},
               "spec": {"capacity": {"storage": "8Mi"}, "accessModes": spec.access_modes, "volumeMode": spec.volume_mode,
                        "storageClassName": class, "persistentVolumeReclaimPolicy": "Delete",
                        "csi": {"driver": driver, "volumeHandle": format!("vol-{uid}")},
                        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name, "uid": uid}}}),
    )
    .await;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    claims
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"volumeName": pv_name}})),
        )
        .await
        .unwrap();
    mark_bound(client, &ns, &name).await;
    world.put(format!("handle:vol-{uid}"), device.to_path_buf());
}

/// Sets claim `ns/name`'s phase to Bound, as the PV controller does.
async fn mark_bound(client: &kube::Client, ns: &str, name: &str) {
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"phase": "Bound"}})),
        )
        .await
        .unwrap();
}

/// The PV controller's part for claims created with the `volumeName` of a PV pre-bound to
/// them (`claimRef` without uid): both bound.
async fn pv_controller(client: &kube::Client, world: &World) {
    let Ok(list) = Api::<PersistentVolumeClaim>::all(client.clone())
        .list(&ListParams::default())
        .await
    else {
        return;
    };
    for pvc in list.items {
        let ns = pvc.metadata.namespace.clone().unwrap_or_default();
        let name = pvc.metadata.name.clone().unwrap_or_default();
        let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let Some(volume) = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
            continue;
        };
        if !world.ours(&ns) || bound {
            continue;
        }
        let pvs = Api::<PersistentVolume>::all(client.clone());
        let Ok(Some(pv)) = pvs.get_opt(&volume).await else {
            continue;
        };
        let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.clone()).unwrap_or_default();
        if claim_ref.namespace.as_deref() != Some(ns.as_str())
            || claim_ref.name.as_deref() != Some(name.as_str())
            || claim_ref.uid.is_some()
        {
            continue;
        }
        let patch = json!({"spec": {"claimRef": {"uid": pvc.metadata.uid}}});
        pvs.patch(&volume, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        mark_bound(client, &ns, &name).await;
    }
}

/// Records every mover Job or Secret outside the agent's namespace (there must be none).
async fn observe(client: &kube::Client, world: &World) {
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=arca");
    let mut seen = Vec::new();
    if let Ok(list) = Api::<Job>::all(client.clone()).list(&managed).await {
        seen.extend(list.items.into_iter().map(|j| ("Job", j.metadata)));
    }
    if let Ok(list) = Api::<Secret>::all(client.clone()).list(&managed).await {
        seen.extend(list.items.into_iter().map(|s| ("Secret", s.metadata)));
    }
    for (kind, meta) in seen {
        let ns = meta.namespace.unwrap_or_default();
        let name = meta.name.unwrap_or_default();
        if !world.ours(&ns) {
            continue;
        }
        if ns == world.agent_ns {
            if kind == "Secret" {
                world.secrets_seen.lock().unwrap().insert(name);
            }
        } else {
            world.leaks.lock().unwrap().insert((kind.to_string(), ns, name));
        }
    }
}

fn jobs_in(client: &kube::Client, ns: &str) -> Api<Job> {
    Api::namespaced(client.clone(), ns)
}

async fn create<K>(api: &Api<K>, value: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), &serde_json::from_value(value).unwrap())
        .await
        .unwrap();
}

fn image() -> Vec<u8> {
    // Patterned data with a zero stretch, so it is neither all-zero nor trivially compressible.
    let mut data = vec![0u8; SIZE];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for (i, b) in data.iter_mut().enumerate() {
        if (1 << 20..(3 << 19)).contains(&i) {
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn csi_snapshots_copies_restores_and_deletions() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let client = cluster.client.clone();
    let dir = tempfile::tempdir().unwrap();
    let tag = arca_testenv::unique("vol");
    let agent_ns = format!("{tag}-agent");
    let world = Arc::new(World {
        dir: dir.path().join("files"),
        tag: tag.clone(),
        agent_ns: agent_ns.clone(),
        ..World::default()
    });
    std::fs::create_dir_all(&world.dir).unwrap();

    // The control plane, in-process.
    let config = ControlPlaneConfig {
        // Copying PV data is a paid-plan feature.
        signup_plan: arca_core::model::plan::Plan::Paid,
        ..common::quick_config()
    };
    let state = common::embedded_state(dir.path(), config);
    let cp = state.control_plane.clone();
    let admin = common::serve_and_sign_up(state, &tag).await;
    let base = &admin.base;
    let dest_root = dir.path().join("dest");
    let registered = admin
        .register_cluster_a(json!({ "name": "local", "target": { "kind": "LOCAL_FILESYSTEM", "path": dest_root } }))
        .await;
    let cluster_id = registered["id"].as_str().unwrap().to_owned();

    // The agent's worker, in-process, with short timeouts and a cheap key file.
    let options = VolumeOptions {
        mover_image: "registry.example/arca-agent:test".into(),
        namespace: Some(agent_ns.clone()),
        snapshot_timeout: Duration::from_secs(60),
        mover_timeout: Duration::from_secs(120),
        claim_bind_timeout: Duration::from_secs(30),
        poll_every: Duration::from_millis(200),
        repo_kdf: arca_repo::KdfParams {
            memory_kib: 64,
            iterations: 1,
            ..arca_repo::KdfParams::default()
        },
        ..VolumeOptions::default()
    };
    let runner = Arc::new(
        ResourceRunner::new(client.clone(), ArchiveKey::FromControlPlane)
            .with_progress_every(Duration::from_millis(500))
            .with_volume_options(options),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker_config = arca_agent::worker::WorkerConfig {
        api_url: base.clone(),
        token: registered["agentToken"].as_str().unwrap().to_owned(),
        agent_version: "test".into(),
    };
    let worker = tokio::spawn(arca_agent::worker::run_until(
        worker_config,
        client.clone(),
        runner,
        async {
            let _ = stop_rx.await;
        },
    ));

    // The controllers this test plays.
    let playing = {
        let (client, world) = (client.clone(), world.clone());
        tokio::spawn(async move {
            loop {
                observe(&client, &world).await;
                snapshot_controller(&client, &world).await;
                node(&client, &world).await;
                pv_controller(&client, &world).await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    // The source: a CSI driver with a snapshot class, one without, a claim on each.
    let ns = format!("{tag}-src");
    let driver = format!("{tag}.csi.test");
    // The claim without a VolumeSnapshotClass is on EBS: the cluster is not linked to an
    // AWS account, so it is the agent's to capture (through CSI), and the point says it
    // could not be, instead of leaving it to EC2 snapshots nobody takes.
    let lonely_driver = "ebs.csi.aws.com".to_string();
    let (sc, vsc) = (format!("{tag}-csi"), format!("{tag}-snap"));
    for name in [&ns, &agent_ns] {
        create(
            &Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone()),
            json!({"metadata": {"name": name}}),
        )
        .await;
    }
    let lonely_sc = format!("{tag}-nosnap");
    for (class, provisioner) in [(&sc, &driver), (&lonely_sc, &lonely_driver)] {
        create(
            &Api::<k8s_openapi::api::storage::v1::StorageClass>::all(client.clone()),
            json!({"metadata": {"name": class}, "provisioner": provisioner}),
        )
        .await;
    }
    // A decoy class of another driver, marked default: the driver decides, not the flag.
    for (name, drv, default) in [
        (vsc.clone(), driver.clone(), false),
        (format!("{tag}-other"), format!("{tag}.other.test"), true),
    ] {
        classes(&client)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
                    "metadata": {"name": name, "annotations": {"snapshot.storage.kubernetes.io/is-default-class": default.to_string()}},
                    "driver": drv, "deletionPolicy": "Delete",
                }))
                .unwrap(),
            )
            .await
            .unwrap();
    }
    let pvs = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(client.clone());
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    for (claim, drv, class) in [("data", &driver, &sc), ("other", &lonely_driver, &lonely_sc)] {
        let pv = format!("{tag}-{claim}");
        create(
            &pvs,
            json!({"metadata": {"name": pv}, "spec": {"capacity": {"storage": "4Mi"}, "accessModes": ["ReadWriteOnce"],
                   "storageClassName": class, "csi": {"driver": drv, "volumeHandle": format!("vol-{claim}")}}}),
        )
        .await;
        create(
            &claims,
            json!({"metadata": {"name": claim}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                   "volumeName": pv, "resources": {"requests": {"storage": "4Mi"}}}}),
        )
        .await;
    }
    let original = world.dir.join("data-original.img");
    std::fs::write(&original, image()).unwrap();
    world.put(format!("pvc:{ns}/data"), original.clone());

    let wait_job = |id: String| {
        let admin = &admin;
        async move {
            let mut done = Value::Null;
            for _ in 0..900 {
                done = admin.get(&format!("/v1/jobs/{id}")).await;
                if ["FAILED", "COMPLETED", "PARTIAL", "CANCELED"].contains(&done["state"].as_str().unwrap()) {
                    return done;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("job {id} never ended: {done}");
        }
    };
    let backup = |name: &str, mode: &str, delete_after: bool| {
        let admin = &admin;
        let (name, mode, ns, cluster_id) = (name.to_string(), mode.to_string(), ns.clone(), cluster_id.clone());
        async move {
            let def = admin.post(
                "/v1/backups",
                json!({"name": name, "clusterId": cluster_id, "pvMode": mode, "deleteSnapshotAfterCopy": delete_after,
                       "selection": {"namespaces": [ns]}}),
            )
            .await;
            let job = admin
                .post(&format!("/v1/backups/{}/run", def["id"].as_str().unwrap()), json!({}))
                .await;
            (
                def["id"].as_str().unwrap().to_string(),
                job["id"].as_str().unwrap().to_string(),
            )
        }
    };
    let point_of = |def: String| {
        let admin = &admin;
        async move {
            let points = admin.get(&format!("/v1/recoverypoints?definitionId={def}")).await;
            points["items"][0].clone()
        }
    };
    let failures = || world.failures.lock().unwrap().clone();

    // The agent connects on its own schedule (slowly on a loaded machine): a run before its
    // first heartbeat is SKIPPED, which is not what this test is about.
    for _ in 0..600 {
        if admin.get(&format!("/v1/clusters/{cluster_id}")).await["state"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 1. pvMode snapshot: a VolumeSnapshot of the right class, the class-less claim reported, no mover.
    let (def1, job1) = backup("snap-only", "snapshot", false).await;
    let done = wait_job(job1).await;
    assert_eq!(
        done["state"], "PARTIAL",
        "the claim without a class makes it partial: {done}"
    );
    let point1 = point_of(def1).await;
    let volumes = point1["volumes"].as_array().unwrap_or_else(|| panic!("{point1}"));
    assert_eq!(volumes.len(), 1, "{point1}");
    let v = &volumes[0];
    assert_eq!(
        (v["namespace"].as_str(), v["pvc"].as_str()),
        (Some(ns.as_str()), Some("data"))
    );
    assert_eq!(v["driver"], driver.as_str());
    assert!(v.get("copy").is_none(), "{v}");
    let snap1 = v["snapshot"]["name"].as_str().unwrap().to_string();
    assert_eq!(v["snapshot"]["class"], vsc.as_str());
    let vs = snapshots(&client, &ns).get(&snap1).await.unwrap();
    assert_eq!(vs.data["spec"]["volumeSnapshotClassName"], vsc.as_str());
    assert_eq!(vs.data["spec"]["source"]["persistentVolumeClaimName"], "data");
    let warnings = point1["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w["name"] == "other"
            && w["resource"] == "persistentvolumeclaims"
            && w["reason"].as_str().unwrap().contains("no VolumeSnapshotClass")),
        "{point1}"
    );
    assert_eq!(point1["pvCount"], 1, "{point1}");
    assert!(world.movers.lock().unwrap().is_empty(), "snapshot mode runs no mover");
    let cluster_dir = dest_root.join(format!("{}/{cluster_id}", point1["orgId"].as_str().unwrap()));
    let repositories: Vec<String> = std::fs::read_dir(&cluster_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with("volumes"))
                .collect()
        })
        .unwrap_or_default();
    assert!(repositories.is_empty(), "no volume repository yet: {repositories:?}");

    // 2. snapshotAndCopy: the copy is in the repository; temporary objects gone; snapshot kept.
    let (def2, job2) = backup("copy", "snapshotAndCopy", false).await;
    let done = wait_job(job2).await;
    assert_eq!(done["state"], "PARTIAL", "{done} {:?}", failures());
    let point2 = point_of(def2).await;
    let v2 = point2["volumes"][0].clone();
    let copy2 = v2["copy"].clone();
    assert!(copy2.is_object(), "{point2} {:?}", failures());
    assert_eq!(copy2["volume"], format!("{ns}/data"));
    assert_eq!(copy2["size"], SIZE as u64);
    assert!(copy2["bytesStored"].as_u64().unwrap() > 0, "{copy2}");
    let snap2 = v2["snapshot"]["name"].as_str().unwrap().to_string();
    assert!(snapshots(&client, &ns).get_opt(&snap2).await.unwrap().is_some());
    assert!(point2["copyBytes"].as_u64().unwrap() > 0, "{point2}");
    let counters = &done["counters"];
    assert_eq!(
        (
            &counters["snapshotsCompleted"],
            &counters["copiesAttempted"],
            &counters["copiesCompleted"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{done}"
    );
    let movers = world.movers.lock().unwrap().clone();
    assert_eq!(movers.len(), 1, "{movers:?}");
    assert_eq!(movers[0].2, "backup");
    assert_eq!(movers[0].0, agent_ns, "the mover ran in the agent's namespace");
    assert!(
        world.secrets_seen.lock().unwrap().contains(&movers[0].1),
        "the mover's Secret was in the agent's namespace"
    );
    let temp_claim = movers[0].3.clone();
    let agent_claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &agent_ns);
    assert!(
        agent_claims.get_opt(&temp_claim).await.unwrap().is_none(),
        "the temporary claim is gone"
    );
    assert!(
        jobs_in(&client, &agent_ns)
            .get_opt(&movers[0].1)
            .await
            .unwrap()
            .is_none(),
        "the mover Job is gone"
    );
    assert!(
        Api::<Secret>::namespaced(client.clone(), &agent_ns)
            .get_opt(&movers[0].1)
            .await
            .unwrap()
            .is_none(),
        "the mover's Secret is gone"
    );
    // The copy's snapshot import (VolumeSnapshot and its Retain content) is gone; the
    // user's snapshot and content are untouched (no volume-mode consent added to theirs).
    assert!(
        snapshots(&client, &agent_ns)
            .get_opt(&temp_claim)
            .await
            .unwrap()
            .is_none()
    );
    assert!(contents(&client).get_opt(&temp_claim).await.unwrap().is_none());
    let user_content =
        snapshots(&client, &ns).get(&snap2).await.unwrap().data["status"]["boundVolumeSnapshotContentName"]
            .as_str()
            .unwrap()
            .to_string();
    let user_content = contents(&client).get(&user_content).await.unwrap();
    assert_eq!(user_content.data["spec"]["deletionPolicy"], "Delete");
    assert!(
        !user_content
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("snapshot.storage.kubernetes.io/allow-volume-mode-change"),
        "the user's content is not changed"
    );
    assert!(
        world.leaks.lock().unwrap().is_empty(),
        "{:?}",
        world.leaks.lock().unwrap()
    );
    let org = point2["orgId"].as_str().unwrap().to_string();
    // The repository of the cluster's current archive key (generation 1).
    let repository = copy2["repository"].as_str().unwrap().to_string();
    assert!(
        repository.starts_with(&format!("{org}/{cluster_id}/volumes-g1-")),
        "{repository}"
    );
    let repo_url = format!("file://{}/{repository}", dest_root.display());
    let password = world.password.lock().unwrap().clone().unwrap();
    // The repository snapshot restores byte-identical (the CLI, outside any Job).
    let check = dir.path().join("check.img");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arca-agent"))
        .args([
            "volume",
            "restore",
            "--repo",
            &repo_url,
            "--volume",
            &format!("{ns}/data"),
            "--snapshot",
        ])
        .arg(copy2["snapshotId"].as_str().unwrap())
        .arg("--target")
        .arg(&check)
        .env("ARCA_REPO_PASSWORD", &password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        std::fs::read(&check).unwrap() == image(),
        "the copy restores byte-identical"
    );

    // 3. snapshotAndCopy with deleteSnapshotAfterCopy: the snapshot goes once copied.
    let (def3, job3) = backup("copy-del", "snapshotAndCopy", true).await;
    let done = wait_job(job3).await;
    assert_eq!(done["state"], "PARTIAL", "{done} {:?}", failures());
    let point3 = point_of(def3).await;
    let v3 = point3["volumes"][0].clone();
    assert!(v3.get("snapshot").is_none(), "{v3}");
    assert!(v3["copy"].is_object(), "{v3}");
    let ours: Vec<String> = snapshots(&client, &ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(ours.len(), 2, "only the snapshots of backups 1 and 2 remain: {ours:?}");

    // 4. Restore point 2 into a renamed namespace: from its snapshot (imported), no mover.
    let restore = |point: &Value, suffix: &str| {
        let admin = &admin;
        let body = json!({"recoveryPointId": point["id"], "targetClusterId": cluster_id, "namespaceSuffix": suffix});
        async move {
            let created = admin.post("/v1/restores", body).await;
            created["job"]["id"].as_str().unwrap().to_string()
        }
    };
    // The restore of `point` into `{ns}{suffix}` (its job COMPLETED or PARTIAL): the job,
    // that namespace and its claim `data`.
    let restore_data = async |point: &Value, suffix: &str| {
        let done = wait_job(restore(point, suffix).await).await;
        assert!(
            ["COMPLETED", "PARTIAL"].contains(&done["state"].as_str().unwrap()),
            "{done} {:?}",
            failures()
        );
        let target = format!("{ns}{suffix}");
        let restored = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &target)
            .get("data")
            .await
            .unwrap();
        (done, target, restored)
    };
    let (done, r1, restored) = restore_data(&point2, "-r1").await;
    let spec = restored.spec.clone().unwrap();
    let ds = spec
        .data_source
        .clone()
        .unwrap_or_else(|| panic!("{restored:?} {done}"));
    assert_eq!(
        (ds.kind.as_str(), ds.api_group.as_deref()),
        ("VolumeSnapshot", Some("snapshot.storage.k8s.io"))
    );
    assert_eq!(spec.volume_name, None, "a new volume is provisioned from the snapshot");
    assert_eq!(spec.storage_class_name.as_deref(), Some(sc.as_str()));
    let imported = snapshots(&client, &r1).get(&ds.name).await.unwrap();
    let content = imported.data["spec"]["source"]["volumeSnapshotContentName"]
        .as_str()
        .unwrap();
    let original_content =
        snapshots(&client, &ns).get(&snap2).await.unwrap().data["status"]["boundVolumeSnapshotContentName"]
            .as_str()
            .unwrap()
            .to_string();
    let handle = |c: Value| c["status"]["snapshotHandle"].as_str().map(str::to_string);
    let imported_content = contents(&client).get(content).await.unwrap();
    assert_eq!(imported_content.data["spec"]["deletionPolicy"], "Retain");
    assert_eq!(
        imported_content.data["spec"]["source"]["snapshotHandle"]
            .as_str()
            .map(str::to_string),
        handle(contents(&client).get(&original_content).await.unwrap().data),
        "the import is the same storage snapshot"
    );
    assert_eq!(
        world.movers.lock().unwrap().len(),
        2,
        "no mover for a restore from a snapshot"
    );
    // The class-less claim is restored as a plain claim.
    assert!(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), &r1)
            .get_opt("other")
            .await
            .unwrap()
            .is_some()
    );

    // 5. Restore point 3 (no snapshot left): from the repository through a mover.
    let (done, r2, restored) = restore_data(&point3, "-r2").await;
    let spec = restored.spec.clone().unwrap();
    assert!(spec.data_source.is_none(), "{restored:?}");
    let volume = spec
        .volume_name
        .clone()
        .unwrap_or_else(|| panic!("bound to the volume the mover filled: {restored:?} {done}"));
    let movers = world.movers.lock().unwrap().clone();
    let restore_mover = movers
        .iter()
        .find(|m| m.2 == "restore")
        .unwrap_or_else(|| panic!("{movers:?}"));
    assert_eq!(restore_mover.0, agent_ns, "the mover ran in the agent's namespace");
    let filled = world.file(&format!("pvc:{agent_ns}/{}", restore_mover.3)).unwrap();
    assert!(
        std::fs::read(&filled).unwrap() == image(),
        "the mover restored the volume byte-identical"
    );
    // The claim is Filesystem and the mover's claim Block: a PV object of the claim's mode
    // for the same volume, bound to it, with the policy it was provisioned with again.
    let pv = pvs.get(&volume).await.unwrap();
    let pv_spec = pv.spec.clone().unwrap();
    let handle = pv_spec.csi.as_ref().unwrap().volume_handle.clone();
    assert_eq!(
        world.file(&format!("handle:{handle}")),
        Some(filled.clone()),
        "the claim's volume is the one the mover filled"
    );
    assert_eq!(pv_spec.volume_mode.as_deref(), Some("Filesystem"));
    let claim_ref = pv_spec.claim_ref.clone().unwrap();
    assert_eq!(
        (claim_ref.namespace.as_deref(), claim_ref.name.as_deref()),
        (Some(r2.as_str()), Some("data"))
    );
    assert_eq!(pv_spec.persistent_volume_reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(
        pv.metadata
            .annotations
            .unwrap_or_default()
            .get("pv.kubernetes.io/provisioned-by"),
        Some(&driver),
        "the provisioner still deletes it once released"
    );
    // The mover's claim and its PV object are gone (the volume is the restored claim's).
    assert!(agent_claims.get_opt(&restore_mover.3).await.unwrap().is_none());
    let pv_objects: Vec<String> = pvs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.csi.as_ref())
                .is_some_and(|c| c.volume_handle == handle)
        })
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(
        pv_objects,
        std::slice::from_ref(&volume),
        "one PV object for the volume"
    );
    assert!(
        jobs_in(&client, &agent_ns)
            .get_opt(&restore_mover.1)
            .await
            .unwrap()
            .is_none()
    );
    // (The VolumeSnapshots of the restored namespace are the archive's own objects.)
    assert!(
        snapshots_all(&client)
            .list(&ListParams::default().labels("arca.dev/role=restore-source"))
            .await
            .unwrap()
            .items
            .is_empty(),
        "no snapshot is made for a restore from the repository"
    );
    assert!(
        world.leaks.lock().unwrap().is_empty(),
        "{:?}",
        world.leaks.lock().unwrap()
    );

    // 6. DELETE_BACKUP of point 2 (retention): its snapshot deleted, its copy forgotten.
    let store = cp.store();
    let org_id: arca_core::ids::OrgId = org.parse().unwrap();
    let rp_id: arca_core::ids::RecoveryPointId = point2["id"].as_str().unwrap().parse().unwrap();
    let mut rp: arca_core::model::recovery::RecoveryPoint = store.get(&org_id, &rp_id).await.unwrap();
    let expected = rp.version;
    rp.expires_at = Some(utc_now() - chrono::Duration::hours(1));
    let mut tx = arca_core::store::Tx::new();
    tx.update(&mut rp, expected).unwrap();
    store.commit(tx).await.unwrap();
    let report = cp.retention_sweep().await.unwrap();
    assert_eq!(report.deletion_jobs.len(), 1, "{report:?}");
    let done = wait_job(report.deletion_jobs[0].to_string()).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert!(
        snapshots(&client, &ns).get_opt(&snap2).await.unwrap().is_none(),
        "the snapshot is deleted"
    );
    assert!(
        snapshots(&client, &ns).get_opt(&snap1).await.unwrap().is_some(),
        "other points keep theirs"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arca-agent"))
        .args(["volume", "snapshots", "--repo", &repo_url, "--json"])
        .env("ARCA_REPO_PASSWORD", &password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&copy2["snapshotId"].as_str().unwrap()),
        "forgotten: {ids:?}"
    );
    assert!(
        ids.contains(&v3["copy"]["snapshotId"].as_str().unwrap()),
        "point 3's copy stays: {ids:?}"
    );
    assert!(failures().is_empty(), "{:?}", failures());

    // Clean up what is cluster-scoped or ours.
    let _ = stop_tx.send(());
    let _ = worker.await;
    playing.abort();
    for name in [vsc, format!("{tag}-other")] {
        let _ = classes(&client).delete(&name, &DeleteParams::default()).await;
    }
    for class in [&sc, &lonely_sc] {
        let _ = Api::<k8s_openapi::api::storage::v1::StorageClass>::all(client.clone())
            .delete(class, &DeleteParams::default())
            .await;
    }
    for claim in ["data", "other"] {
        let _ = pvs.delete(&format!("{tag}-{claim}"), &DeleteParams::default()).await;
    }
    let _ = pvs.delete(&volume, &DeleteParams::default()).await;
    for content in contents(&client).list(&ListParams::default()).await.unwrap().items {
        let ns_of = content.data["spec"]["volumeSnapshotRef"]["namespace"]
            .as_str()
            .unwrap_or_default();
        if ns_of.starts_with(&tag) {
            let _ = contents(&client)
                .delete(&content.metadata.name.unwrap_or_default(), &DeleteParams::default())
                .await;
        }
    }
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    for n in [ns, r1, r2, agent_ns] {
        let _ = namespaces.delete(&n, &DeleteParams::default()).await;
    }
}
