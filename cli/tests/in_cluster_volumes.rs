//! Persistent-volume data through real mover Pods: a `snapshotAndCopy` backup in cluster
//! a and a restore from the repository into cluster b, each mover a Job the real Job
//! controller turns into a Pod that the real kubelet runs from the agent image, with the
//! claim attached as a real block device.
//!
//! No CSI driver that carries data runs in the test environment (docs/testing.md), so this
//! test plays the CSI driver and the external snapshot controller, for the control path
//! only:
//! - a "volume" is a file attached as a loop device; a "storage snapshot" is a copy of
//!   the file;
//! - the snapshot controller: each VolumeSnapshot gets its VolumeSnapshotContent and both
//!   statuses ready (status subresources);
//! - the provisioner: each pending claim of the test namespace gets a file (a copy of its
//!   `dataSource` snapshot's, or an empty one), a loop device on it and a `local`
//!   PersistentVolume (block mode, pinned to the node) bound to the claim, which the kubelet
//!   maps into the Pod that uses the claim.
//!
//! The data path is real: the mover reads (backup) and writes (restore) the loop devices
//! through the kubelet's block mapping, into and out of a user S3 bucket (moto). The
//! restored bytes are compared with the source byte for byte.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::User;
use common::node::{
    AGENT_NAMESPACE, Kubectl, PodWatch, assert_agent_pod, bucket_destination, install_with_link, start_server,
};
use serde_json::{Value, json};

const DRIVER: &str = "block.csi.arca.test";
const STORAGE_CLASS: &str = "arca-test-block";
const SNAPSHOT_CLASS: &str = "arca-test-block-snapshots";
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

fn quantity_bytes(q: &str) -> u64 {
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap() * factor;
        }
    }
    q.parse().unwrap()
}

fn losetup(file: &Path) -> String {
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "losetup {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// One cluster as the test plays its storage.
#[derive(Clone, Copy)]
struct Side<'a> {
    name: &'static str,
    node: &'static str,
    k: Kubectl<'a>,
}

/// What the playing controllers share with the test, and what is removed at the end
/// whatever happened.
struct Storage<'a> {
    sides: [Side<'a>; 2],
    namespace: String,
    /// Label value on every PersistentVolume the test makes.
    tag: String,
    dir: PathBuf,
    stop: AtomicBool,
    /// `<cluster>/pvc/<name>` and `<cluster>/snap/<name>` -> the file standing for it.
    files: Mutex<HashMap<String, PathBuf>>,
    loops: Mutex<Vec<String>>,
    done: Mutex<HashSet<String>>,
    log: Mutex<Vec<String>>,
}

impl Storage<'_> {
    fn file(&self, key: &str) -> Option<PathBuf> {
        self.files.lock().unwrap().get(key).cloned()
    }

    fn note(&self, line: String) {
        eprintln!("storage: {line}");
        self.log.lock().unwrap().push(line);
    }

    /// The class objects in both clusters (the same driver).
    fn classes(&self) {
        for side in &self.sides {
            side.k.apply_json(&json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": STORAGE_CLASS}, "provisioner": DRIVER,
                "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"}));
            side.k.apply_json(&json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
                "metadata": {"name": SNAPSHOT_CLASS,
                             "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
                "driver": DRIVER, "deletionPolicy": "Delete"}));
        }
    }

    /// A block PersistentVolume of the test's class with `source` (`csi` or `local` and its
    /// node affinity), bound to `claim`.
    fn pv(&self, side: &Side, name: &str, size: u64, source: Value, claim: Value) {
        let mut spec = json!({"capacity": {"storage": size.to_string()}, "accessModes": ["ReadWriteOnce"],
                              "volumeMode": "Block", "persistentVolumeReclaimPolicy": "Retain",
                              "storageClassName": STORAGE_CLASS, "claimRef": claim});
        for (k, v) in source.as_object().unwrap() {
            spec[k] = v.clone();
        }
        side.k
            .apply_json(&json!({"apiVersion": "v1", "kind": "PersistentVolume",
                                  "metadata": {"name": name, "labels": {"arca-test": self.tag}}, "spec": spec}));
    }

    /// The application's volume in cluster a: a CSI PersistentVolume of the test's driver
    /// on `file` (attached as a loop device), pre-bound to the claim `data`.
    fn source_volume(&self, file: &Path) {
        let side = self.sides[0];
        let device = losetup(file);
        self.loops.lock().unwrap().push(device.clone());
        self.files
            .lock()
            .unwrap()
            .insert(format!("a/pvc/{}", "data"), file.to_owned());
        self.pv(
            &side,
            &format!("{}-source", self.tag),
            SIZE as u64,
            json!({"csi": {"driver": DRIVER, "volumeHandle": format!("{}-source", self.tag)}}),
            json!({"namespace": self.namespace, "name": "data"}),
        );
        side.k.apply_json(&json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": self.namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Block", "storageClassName": STORAGE_CLASS,
                     "volumeName": format!("{}-source", self.tag),
                     "resources": {"requests": {"storage": SIZE.to_string()}}}}));
        side.k.wait_for(&["pvc", "data", "-n", &self.namespace], 60, |v| {
            v["status"]["phase"] == "Bound"
        });
        self.note(format!(
            "source volume {device} on {} bound to a/{}/data",
            file.display(),
            self.namespace
        ));
    }

    fn play(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            for side in &self.sides {
                if let Err(e) = self.snapshots(side) {
                    self.note(format!("{}: snapshot controller: {e}", side.name));
                }
                if let Err(e) = self.provision(side) {
                    self.note(format!("{}: provisioner: {e}", side.name));
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn list(&self, side: &Side, kind: &str) -> Result<Vec<Value>, String> {
        let out = side.k.run(&["get", kind, "-n", &self.namespace, "-o", "json"]);
        if !out.status.success() {
            return Err(format!("get {kind}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// The external snapshot controller and the driver's snapshot: a copy of the file.
    fn snapshots(&self, side: &Side) -> Result<(), String> {
        for vs in self.list(side, "volumesnapshots")? {
            let name = vs["metadata"]["name"].as_str().unwrap_or_default();
            let uid = vs["metadata"]["uid"].as_str().unwrap_or_default();
            if vs["status"]["readyToUse"] == true || !vs["metadata"]["deletionTimestamp"].is_null() {
                continue;
            }
            let Some(pvc) = vs["spec"]["source"]["persistentVolumeClaimName"].as_str() else {
                return Err(format!("VolumeSnapshot {name} has no claim as source: {vs}"));
            };
            let Some(source) = self.file(&format!("{}/pvc/{pvc}", side.name)) else {
                continue; // not provisioned (yet)
            };
            let key = format!("{}/snap/{name}", side.name);
            if self.file(&key).is_none() {
                let copy = self.dir.join(format!("{}-snap-{name}.img", side.name));
                std::fs::copy(&source, &copy).map_err(|e| e.to_string())?;
                self.files.lock().unwrap().insert(key.clone(), copy);
            }
            let size = std::fs::metadata(self.file(&key).unwrap()).unwrap().len();
            let content = format!("snapcontent-{uid}");
            let handle = format!("snap-{uid}");
            side.k.apply_json(&json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                "metadata": {"name": content, "labels": {"arca-test": self.tag}},
                "spec": {"deletionPolicy": "Delete", "driver": DRIVER,
                         "source": {"volumeHandle": format!("{}-{pvc}", side.name)},
                         "volumeSnapshotClassName": vs["spec"]["volumeSnapshotClassName"],
                         "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                                               "namespace": self.namespace, "name": name, "uid": uid}}}));
            for (what, status) in [
                (
                    vec!["volumesnapshotcontent", content.as_str()],
                    json!({"status": {"snapshotHandle": handle, "readyToUse": true, "restoreSize": size,
                                      "creationTime": 1_700_000_000_000_000_000i64}}),
                ),
                (
                    vec!["volumesnapshot", name, "-n", self.namespace.as_str()],
                    json!({"status": {"boundVolumeSnapshotContentName": content, "readyToUse": true,
                                      "restoreSize": size.to_string(), "creationTime": "2026-01-01T00:00:00Z"}}),
                ),
            ] {
                let out = side.k.patch_status(&what, &status);
                if !out.status.success() {
                    return Err(format!("status of {what:?}: {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
            self.note(format!(
                "{}: VolumeSnapshot {name} of claim {pvc} ready ({size} bytes)",
                side.name
            ));
        }
        Ok(())
    }

    /// The provisioner: a loop device and a `local` block PersistentVolume on the node for
    /// each pending claim.
    fn provision(&self, side: &Side) -> Result<(), String> {
        for pvc in self.list(side, "pvc")? {
            let name = pvc["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let key = format!("{}/pvc/{name}", side.name);
            if pvc["status"]["phase"] != "Pending"
                || pvc["spec"]["volumeName"].as_str().is_some_and(|v| !v.is_empty())
                || self.done.lock().unwrap().contains(&key)
                || !pvc["metadata"]["deletionTimestamp"].is_null()
            {
                continue;
            }
            let size = quantity_bytes(pvc["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("0"));
            let file = self.dir.join(format!("{}-pvc-{name}.img", side.name));
            let from = match pvc["spec"]["dataSource"]["name"].as_str() {
                Some(snap) => {
                    let Some(snap_file) = self.file(&format!("{}/snap/{snap}", side.name)) else {
                        continue; // its snapshot is not ready yet
                    };
                    std::fs::copy(&snap_file, &file).map_err(|e| e.to_string())?;
                    format!("a copy of snapshot {snap}")
                }
                None => {
                    std::fs::File::create(&file).map_err(|e| e.to_string())?;
                    "empty".to_owned()
                }
            };
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            if f.metadata().unwrap().len() < size {
                f.set_len(size).unwrap();
            }
            drop(f);
            let device = losetup(&file);
            self.loops.lock().unwrap().push(device.clone());
            self.pv(
                side,
                &format!("{}-{}-{name}", self.tag, side.name),
                size,
                json!({"local": {"path": device},
                       "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                           {"key": "kubernetes.io/hostname", "operator": "In", "values": [side.node]}]}]}}}),
                json!({"namespace": self.namespace, "name": name, "uid": pvc["metadata"]["uid"]}),
            );
            self.files.lock().unwrap().insert(key.clone(), file);
            self.done.lock().unwrap().insert(key);
            self.note(format!(
                "{}: claim {name} ({size} bytes, {from}) on {device}",
                side.name
            ));
        }
        Ok(())
    }
}

impl Drop for Storage<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for side in &self.sides {
            let _ = side.k.run(&["delete", "namespace", &self.namespace, "--wait=false"]);
            let _ = side.k.run(&["delete", "namespace", AGENT_NAMESPACE, "--wait=false"]);
            let _ = side.k.run(&[
                "delete",
                "clusterrole,clusterrolebinding",
                "-l",
                "app.kubernetes.io/part-of=arca",
            ]);
        }
        // The namespaces' Pods go first, then their volumes (the kubelet unmaps them).
        let deadline = Instant::now() + Duration::from_secs(60);
        for side in &self.sides {
            while Instant::now() < deadline && side.k.run(&["get", "namespace", &self.namespace]).status.success() {
                std::thread::sleep(Duration::from_millis(500));
            }
            let _ = side.k.run(&[
                "delete",
                "pv,volumesnapshotcontents",
                "-l",
                &format!("arca-test={}", self.tag),
                "--wait=false",
            ]);
            let _ = side
                .k
                .run(&["delete", "storageclass", STORAGE_CLASS, "--ignore-not-found"]);
            let _ = side
                .k
                .run(&["delete", "volumesnapshotclass", SNAPSHOT_CLASS, "--ignore-not-found"]);
        }
        for device in self.loops.lock().unwrap().iter() {
            let out = Command::new("losetup").args(["-d", device]).output();
            if let Ok(out) = out
                && !out.status.success()
            {
                eprintln!("losetup -d {device}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

/// A mover Pod that ran to success on `node` from the agent image (by digest).
fn assert_mover_pod(watch: &PodWatch, node: &str, image: &str, args_start: &[&str]) -> Value {
    let pod = watch
        .wait_for(10, |p| p["status"]["phase"] == "Succeeded")
        .unwrap_or_else(|| panic!("no mover Pod succeeded; seen: {:#}", Value::Array(watch.seen())));
    assert_eq!(pod["spec"]["nodeName"], node, "{pod:#}");
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

fn same_bytes(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {at}");
    }
}

#[test]
fn snapshot_and_copy_runs_real_movers_and_restores_the_bytes_into_another_cluster() {
    let Some(nodes) = arca_testenv::nodes() else { return };
    let aws = nodes.aws.clone();
    let (kc_a, kc_b) = (nodes.kubeconfig_a.clone(), nodes.kubeconfig_b.clone());
    let started = Instant::now();
    let (kc_a, kc_b) = (Path::new(&kc_a), Path::new(&kc_b));
    let a = Kubectl {
        nodes: &nodes,
        kubeconfig: kc_a,
    };
    let b = Kubectl {
        nodes: &nodes,
        kubeconfig: kc_b,
    };
    let work = tempfile::tempdir().unwrap();
    let namespace = arca_testenv::unique("vols");
    let storage = Storage {
        sides: [
            Side {
                name: "a",
                node: "arca-a-node",
                k: a,
            },
            Side {
                name: "b",
                node: "arca-b-node",
                k: b,
            },
        ],
        tag: namespace.clone(),
        namespace: namespace.clone(),
        dir: work.path().to_owned(),
        stop: AtomicBool::new(false),
        files: Mutex::default(),
        loops: Mutex::default(),
        done: Mutex::default(),
        log: Mutex::default(),
    };

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
    bucket_destination(&user, &[&a, &b], &aws, &nodes.host_ip, "bucket");
    eprintln!("agents up after {:?}", started.elapsed());

    // ---- storage: classes in both clusters, the application's block volume in a
    storage.classes();
    a.ok(&["create", "namespace", &namespace]);
    let data = source_data();
    let source = work.path().join("source.img");
    std::fs::write(&source, &data).unwrap();
    storage.source_volume(&source);

    let watch_a = PodWatch::start(&a, MOVER);
    let watch_b = PodWatch::start(&b, MOVER);
    std::thread::scope(|s| {
        s.spawn(|| storage.play());
        let _stop = StopOnDrop(&storage.stop);
        run_backup_and_restore(
            &user, &storage, &cluster_a, &cluster_b, &nodes, &watch_a, &watch_b, &data,
        );
    });
    eprintln!("done after {:?}", started.elapsed());
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
fn run_backup_and_restore(
    user: &User,
    storage: &Storage,
    cluster_a: &str,
    cluster_b: &str,
    nodes: &arca_testenv::Nodes,
    watch_a: &PodWatch,
    watch_b: &PodWatch,
    data: &[u8],
) {
    let namespace = &storage.namespace;
    let b = storage.sides[1].k;
    let t = Instant::now();

    // ---- backup: snapshot, clone claim, mover Job in cluster a
    user.ok(&[
        "backups",
        "create",
        "vols",
        "--cluster",
        cluster_a,
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
    assert_mover_pod(
        watch_a,
        "arca-a-node",
        &nodes.agent_image,
        &["volume", "backup", "--repo"],
    );
    // The agent removed its mover Job (and with it the Pod and Secret) and the clone claim.
    let a = storage.sides[0].k;
    a.wait_for(
        &[
            "jobs,secrets,pvc",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/managed-by=arca",
        ],
        30,
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
    assert_eq!(volume["driver"], DRIVER, "{volume:#}");
    let copy = &volume["copy"];
    assert_eq!(copy["size"], SIZE as u64, "the mover read the whole device: {volume:#}");
    assert!(copy["snapshotId"].as_str().is_some_and(|s| !s.is_empty()), "{volume:#}");
    let stored = copy["bytesStored"].as_u64().unwrap();
    assert!(
        stored > 0 && stored < SIZE as u64,
        "the text and zeros compress, the random part does not: {volume:#}"
    );

    // ---- restore into cluster b, where the namespace does not exist: the mover writes
    // the repository copy onto a new claim
    assert!(!b.run(&["get", "namespace", namespace]).status.success());
    let t = Instant::now();
    let restore = user.json(&[
        "restores",
        "create",
        "--recovery-point",
        &id,
        "--cluster",
        cluster_b,
        "--wait",
    ]);
    eprintln!("restore after {:?}: {restore:#}", t.elapsed());
    assert_eq!(restore["state"], "COMPLETED", "{restore:#}");
    assert_mover_pod(
        watch_b,
        "arca-b-node",
        &nodes.agent_image,
        &["volume", "restore", "--repo"],
    );
    let target = {
        let files = storage.files.lock().unwrap();
        let (_, file) = files
            .iter()
            .find(|(k, _)| k.starts_with("b/pvc/arca-restore-"))
            .unwrap_or_else(|| panic!("no restore target was provisioned: {files:?}"));
        file.clone()
    };
    same_bytes(
        "the volume the restore mover wrote",
        &std::fs::read(&target).unwrap()[..data.len()],
        data,
    );

    // ---- the restored claim, provisioned from the snapshot of that volume, holds the bytes
    b.wait_for(&["pvc", "data", "-n", namespace], 60, |v| {
        v["status"]["phase"] == "Bound"
    });
    let restored = storage.file("b/pvc/data").unwrap();
    same_bytes(
        "the restored claim",
        &std::fs::read(&restored).unwrap()[..data.len()],
        data,
    );
    eprintln!("storage log:\n{}", storage.log.lock().unwrap().join("\n"));
}
