//! Backup hooks on a real node: the agent (a Pod) runs each hook's commands in the
//! application's Pod through the exec API (API server, kubelet, containerd, runc).
//!
//! The application is a busybox Pod using a block volume of the test CSI driver (each
//! volume a file on a loop device, each snapshot a copy of it: tests/csi-driver). Its
//! pre hook writes a marker at the start of the volume and its post hook overwrites it,
//! so the snapshot's file holds the marker and the live volume does not: the pre hook ran
//! before the snapshot and the post hook after it. Velero's hook annotations on the Pod
//! run too. Then a hook that times out and one that fails with `onError: continue` (the
//! backup ends PARTIAL, its snapshot kept), and one that fails with `onError: fail` (no
//! snapshot, no recovery point, the post hook still undoes the pre hook). Last, a restore
//! into cluster b whose hooks (the restore's and the Deployment's annotation) run in the
//! restored Deployment's Pod once it is Ready.

#![allow(clippy::unwrap_used)]

mod common;

use common::User;
use common::node::{Scene, assert_agent_pod, bucket_destination, install_with_link, start_server, volume_file};
use serde_json::{Value, json};

const MARKER: &[u8] = b"PRE-HOOK-MARKER";
const CLEARED: &[u8] = b"CLEARED-BY-POST";

/// A shell command writing `text` at the start of the Pod's block device, synced.
fn write_at_start(text: &[u8]) -> Value {
    let text = std::str::from_utf8(text).unwrap();
    json!([
        "/bin/sh",
        "-c",
        format!("printf {text} | dd of=/dev/data conv=notrunc,fsync 2>/dev/null")
    ])
}

fn hooks_file(dir: &std::path::Path, name: &str, hooks: Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, hooks.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The outcomes on a recovery point as (hook, phase, result).
fn outcomes(point: &Value) -> Vec<(String, String, String)> {
    point["hooks"]
        .as_array()
        .unwrap_or_else(|| panic!("no hooks on the point: {point:#}"))
        .iter()
        .map(|o| {
            (
                o["hook"].as_str().unwrap().to_owned(),
                o["phase"].as_str().unwrap().to_owned(),
                o["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `backups run hooked --wait` for a job that does not complete: exit 1, the job on stdout.
fn run_ending_badly(user: &User) -> Value {
    let out = user.run(&["backups", "run", "hooked", "--wait", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn triple(hook: &str, phase: &str, result: &str) -> (String, String, String) {
    (hook.to_owned(), phase.to_owned(), result.to_owned())
}

#[test]
fn hooks_run_in_the_pods_around_the_snapshots_and_their_failures_follow_their_rules() {
    let Some(nodes) = arca_testenv::nodes() else { return };
    let scene = Scene::new(&nodes, "hooks");
    let (a, b, work, namespace) = (scene.a, scene.b, &scene.work, scene.namespace.clone());
    let ns = namespace.as_str();

    let (_server, url) = start_server(work.path(), &nodes.host_ip, &nodes.agent_image);
    let user = User::new(&url, work.path(), "admin");
    user.ok(&["signup", "--org-name", &arca_testenv::unique("hooks")]);
    let (cluster, cluster_b) = (arca_testenv::unique("a"), arca_testenv::unique("b"));
    for (k, name) in [(&a, &cluster), (&b, &cluster_b)] {
        assert_agent_pod(&install_with_link(&user, k, name), &nodes.agent_image);
    }
    bucket_destination(
        &user,
        &[&a, &b],
        &nodes.aws,
        &nodes.host_ip,
        "bucket",
        common::node::BucketEndpoint::Http,
    );

    // ---- the application: a Pod on a block volume, asking for a hook by annotation too
    a.ok(&["create", "namespace", ns]);
    a.apply_json(&json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Block", "storageClassName": nodes.csi.storage_class,
                 "resources": {"requests": {"storage": "1Mi"}}}}));
    a.apply_json(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db", "namespace": ns, "labels": {"app": "db"},
            "annotations": {
                "pre.hook.backup.velero.io/command": "[\"/bin/sh\", \"-c\", \"echo velero-pre >> /tmp/annotated\"]",
                "post.hook.backup.velero.io/command": "[\"/bin/sh\", \"-c\", \"echo velero-post >> /tmp/annotated\"]"}},
        "spec": {"containers": [{"name": "main", "image": nodes.busybox_image, "command": ["sleep", "3600"],
                                 "volumeDevices": [{"name": "data", "devicePath": "/dev/data"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                 "terminationGracePeriodSeconds": 0}}));
    // A Deployment whose Pod template asks for a restore hook (Velero's annotation).
    a.apply_json(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {
                    "post.hook.restore.velero.io/command": "[\"/bin/sh\", \"-c\", \"echo annotated > /tmp/restored\"]"}},
                "spec": {"containers": [{"name": "main", "image": nodes.busybox_image, "command": ["sleep", "3600"]}],
                         "terminationGracePeriodSeconds": 0}}}}));
    a.ok(&["wait", "-n", ns, "pod/db", "--for=condition=Ready", "--timeout=120s"]);
    let live = volume_file(&a, &nodes.csi.volumes_a, ns, "data");

    // ---- a backup whose hook marks the volume before the snapshot and clears it after
    let marked = hooks_file(
        work.path(),
        "marked.json",
        json!([{"name": "marker", "labels": {"app": "db"}, "pre": write_at_start(MARKER),
                "post": write_at_start(CLEARED), "timeoutSeconds": 20}]),
    );
    user.ok(&[
        "backups",
        "create",
        "hooked",
        "--cluster",
        &cluster,
        "--namespaces",
        ns,
        "--destination",
        "bucket",
        "--pv-mode",
        "snapshot",
        "--hooks",
        &marked,
    ]);
    let definition = user.json(&["backups", "get", "hooked"]);
    assert_eq!(definition["hooks"][0]["name"], "marker", "{definition:#}");
    let job = user.json(&["backups", "run", "hooked", "--wait"]);
    assert_eq!(job["state"], "COMPLETED", "{job:#}");
    let log = job.to_string();
    assert!(log.contains("pre hook marker in"), "the job names its hooks: {job:#}");

    let points = user.json(&["recovery-points", "list", "--backup", "hooked"]);
    let first_point = points[0]["id"].as_str().unwrap().to_owned();
    let point = user.json(&["recovery-points", "get", &first_point]);
    assert_eq!(
        outcomes(&point),
        [
            triple("marker", "pre", "succeeded"),
            triple("annotations", "pre", "succeeded"),
            triple("annotations", "post", "succeeded"),
            triple("marker", "post", "succeeded"),
        ],
        "pre hooks in order, post hooks in reverse: {point:#}"
    );
    assert_eq!(point["hooks"][0]["pod"], "db");
    assert_eq!(point["hooks"][0]["container"], "main");
    assert_eq!(point["hooks"][0]["exitCode"], 0);
    // The snapshot holds the marker; the live volume was cleared after it.
    let handle = point["volumes"][0]["snapshot"]["handle"].as_str().unwrap();
    let snapshot_file = nodes
        .csi
        .volumes_a
        .parent()
        .unwrap()
        .join("snapshots")
        .join(format!("{handle}.img"));
    let snapshot = std::fs::read(&snapshot_file).unwrap();
    assert_eq!(
        &snapshot[..MARKER.len()],
        MARKER,
        "the pre hook ran before the snapshot"
    );
    let now = std::fs::read(&live).unwrap();
    assert_eq!(&now[..CLEARED.len()], CLEARED, "the post hook ran after it");
    let annotated = a.ok(&["exec", "-n", ns, "db", "--", "cat", "/tmp/annotated"]);
    assert_eq!(
        annotated, "velero-pre\nvelero-post\n",
        "Velero's annotations ran, once each"
    );

    // ---- a hook that times out and one that fails, both `continue`: PARTIAL, snapshot kept
    let tolerated = hooks_file(
        work.path(),
        "tolerated.json",
        json!([
            {"name": "slow", "labels": {"app": "db"}, "pre": ["sleep", "30"], "timeoutSeconds": 2,
             "onError": "continue", "post": ["/bin/sh", "-c", "echo slow-post > /tmp/slow-post"]},
            {"name": "flaky", "labels": {"app": "db"}, "pre": ["/bin/sh", "-c", "echo flaky-out; exit 4"],
             "onError": "continue"}
        ]),
    );
    user.ok(&["backups", "update", "hooked", "--hooks", &tolerated]);
    let job = run_ending_badly(&user);
    assert_eq!(job["state"], "PARTIAL", "{job:#}");
    assert!(
        job["reason"].as_str().unwrap().contains("2 hook commands failed"),
        "{job:#}"
    );
    let points = user.json(&["recovery-points", "list", "--backup", "hooked"]);
    assert_eq!(points.as_array().unwrap().len(), 2, "{points:#}");
    let newest = points
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|p| p["createdAt"].as_str().unwrap().to_owned())
        .unwrap();
    let point = user.json(&["recovery-points", "get", newest["id"].as_str().unwrap()]);
    assert_eq!(point["partial"], true, "{point:#}");
    assert_eq!(
        point["volumes"].as_array().unwrap().len(),
        1,
        "the snapshot was taken: {point:#}"
    );
    let ran = outcomes(&point);
    assert!(ran.contains(&triple("slow", "pre", "timedOut")), "{ran:?}");
    assert!(ran.contains(&triple("flaky", "pre", "failed")), "{ran:?}");
    assert!(ran.contains(&triple("slow", "post", "succeeded")), "{ran:?}");
    let flaky = point["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["hook"] == "flaky")
        .unwrap();
    assert_eq!(flaky["exitCode"], 4);
    assert!(flaky["output"].as_str().unwrap().contains("flaky-out"), "{flaky:#}");
    let warnings = point["warnings"].to_string();
    assert!(
        warnings.contains("pre hook slow") && warnings.contains("timed out"),
        "{warnings}"
    );
    assert_eq!(
        a.ok(&["exec", "-n", ns, "db", "--", "cat", "/tmp/slow-post"]),
        "slow-post\n",
        "a timed-out pre hook's post hook still ran"
    );

    // ---- a hook that fails with `fail`: no snapshot, no point; its post hook undoes it
    let failing = hooks_file(
        work.path(),
        "failing.json",
        json!([{"name": "broken", "labels": {"app": "db"},
                "pre": ["/bin/sh", "-c", "echo half-done > /tmp/broken; echo boom >&2; exit 3"],
                "post": ["/bin/sh", "-c", "rm /tmp/broken && echo undone > /tmp/broken-post"]}]),
    );
    user.ok(&["backups", "update", "hooked", "--hooks", &failing]);
    let snapshots_before = a.json(&["get", "volumesnapshots", "-n", ns])["items"]
        .as_array()
        .unwrap()
        .len();
    let job = run_ending_badly(&user);
    assert_eq!(job["state"], "FAILED", "{job:#}");
    let reason = job["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("a pre hook failed, so nothing was snapshotted: FAILED: pre hook broken in")
            && reason.contains("exit code 3")
            && reason.contains("boom"),
        "{reason}"
    );
    let points = user.json(&["recovery-points", "list", "--backup", "hooked"]);
    assert_eq!(points.as_array().unwrap().len(), 2, "no recovery point: {points:#}");
    let snapshots_after = a.json(&["get", "volumesnapshots", "-n", ns])["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(snapshots_after, snapshots_before, "no snapshot was taken");
    assert_eq!(
        a.ok(&["exec", "-n", ns, "db", "--", "cat", "/tmp/broken-post"]),
        "undone\n",
        "the failed pre hook's post hook undid it"
    );

    // ---- restore hooks: into cluster b, once the restored Deployment's Pod is Ready
    let restore_hooks = hooks_file(
        work.path(),
        "restore.json",
        json!([
            {"name": "warm", "namespaces": [ns], "labels": {"app": "web"},
             "command": ["/bin/sh", "-c", "echo warm > /tmp/warm"]},
            {"name": "flaky", "labels": {"app": "web"}, "command": ["/bin/sh", "-c", "exit 5"], "onError": "continue"}
        ]),
    );
    let out = user.run(&[
        "restores",
        "create",
        "--recovery-point",
        &first_point,
        "--cluster",
        &cluster_b,
        "--namespaces",
        ns,
        "--hooks",
        &restore_hooks,
        "--wait",
        "-o",
        "json",
    ]);
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "PARTIAL", "{job:#}");
    assert!(
        job["reason"]
            .as_str()
            .unwrap()
            .contains("1 restore hook commands failed"),
        "{job:#}"
    );
    let log = job.to_string();
    for line in [
        "restore hook warm in ",
        "restore hook annotations in ",
        "WARNING: restore hook flaky in ",
        "failed (exit code 5)",
    ] {
        assert!(log.contains(line), "{line:?} in {job:#}");
    }
    assert_eq!(
        b.ok(&["exec", "-n", ns, "deploy/web", "--", "cat", "/tmp/warm"]),
        "warm\n"
    );
    assert_eq!(
        b.ok(&["exec", "-n", ns, "deploy/web", "--", "cat", "/tmp/restored"]),
        "annotated\n",
        "the Pod template's annotation ran in the restored Pod"
    );
}
