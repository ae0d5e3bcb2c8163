//! End to end: the real API router on a loopback port (embedded store, queue and
//! scheduler, a local-filesystem destination in a temp dir), two real agent workers with
//! the real [`ResourceRunner`], one per kube-apiserver (cluster a and cluster b).
//!
//! A namespace of cluster a (ConfigMaps, a Secret, a Deployment, a Service) is backed up
//! (job COMPLETED, recovery point READY with its counts), restored into cluster b under a
//! mapped namespace (restore job COMPLETED, every object there with the restore id
//! label), and finally expired by retention: the DELETE_BACKUP job removes the archive's
//! manifest and index (the point disappears), and the REPOSITORY_MAINTENANCE job that
//! follows deletes its packs, reporting the bytes freed.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use arca_core::control_plane::ControlPlaneConfig;
use arca_e2e::harness::Harness;
use arca_e2e::{create_in, obj};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

/// Regular files anywhere under `dir` (0 when it does not exist).
fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
        .sum()
}

/// Clusters a and b of the test environment, the control plane with a local-filesystem
/// destination (in a temp dir) and an agent worker per cluster, both defaulting to it;
/// maintenance condemns and deletes in one run here (production keeps hours between).
struct TwoAgents {
    a: arca_testenv::Cluster,
    b: arca_testenv::Cluster,
    h: Harness,
    _dir: tempfile::TempDir,
    /// The destination's directory and id.
    dest_dir: std::path::PathBuf,
    dest: String,
    /// The clusters' ids.
    cluster_a: String,
    cluster_b: String,
}

/// [`TwoAgents`], unless the test environment is missing.
async fn two_agents_on_a_local_destination() -> Option<TwoAgents> {
    let (Some(a), Some(b)) = (arca_testenv::cluster_a().await, arca_testenv::cluster_b().await) else {
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let dest_dir = dir.path().join("dest");
    let mut h = Harness::start(ControlPlaneConfig {
        gc_grace: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let dest = h
        .user
        .post(
            "/v1/destinations",
            json!({ "name": "local", "target": { "kind": "LOCAL_FILESYSTEM", "path": dest_dir } }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cluster_a = h
        .agent("cluster-a", &a.client, json!({ "defaultDestinationId": dest }))
        .await;
    let cluster_b = h
        .agent("cluster-b", &b.client, json!({ "defaultDestinationId": dest }))
        .await;
    Some(TwoAgents {
        a,
        b,
        h,
        _dir: dir,
        dest_dir,
        dest,
        cluster_a,
        cluster_b,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_is_backed_up_restored_into_another_cluster_and_deleted() {
    // The control plane (its clock movable for the retention part) and an agent worker
    // per cluster. Each agent gets its cluster's archive key from the control plane; a
    // restore into cluster b gets cluster a's key for that job.
    let Some(t) = two_agents_on_a_local_destination().await else {
        return;
    };
    let (a, b, cluster_a, cluster_b) = (&t.a, &t.b, &t.cluster_a, &t.cluster_b);
    let (dest_dir, dest) = (&t.dest_dir, &t.dest);
    let (cp, clock, user) = (t.h.cp.clone(), t.h.clock.clone(), &t.h.user);

    // A namespace of cluster a with a few objects.
    let ns = arca_testenv::unique("bkrs");
    arca_e2e::create_namespace(&a.client, &ns).await.unwrap();
    for name in ["settings", "features"] {
        create_in::<ConfigMap>(
            &a.client,
            &ns,
            json!({ "metadata": { "name": name }, "data": { "name": name } }),
        )
        .await;
    }
    create_in::<Secret>(
        &a.client,
        &ns,
        json!({ "metadata": { "name": "creds" }, "stringData": { "password": "hunter2" } }),
    )
    .await;
    create_in::<Deployment>(
        &a.client,
        &ns,
        json!({
            "metadata": { "name": "web" },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": "web" } },
                "template": {
                    "metadata": { "labels": { "app": "web" } },
                    "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] }
                }
            }
        }),
    )
    .await;
    create_in::<Service>(
        &a.client,
        &ns,
        json!({
            "metadata": { "name": "web" },
            "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80, "targetPort": 8080 }] }
        }),
    )
    .await;

    // Backup: the job completes and its point is READY with the counts.
    let def = user.namespace_backup("ns", cluster_a, &ns).await;
    let done = user.run_completed(&def, 1).await;
    let resources = done["counters"]["resources"].as_u64().unwrap();
    // namespace, 2 ConfigMaps (+ kube-root-ca.crt if a controller made it), Secret,
    // Deployment, Service (+ default ServiceAccount, Endpoints, ReplicaSet where controllers run)
    assert!(resources >= 6, "{done}");
    let log = done["activity"].to_string();
    assert!(!log.contains("hunter2"), "{log}");
    let points = user.get(&format!("/v1/recoverypoints?definitionId={def}")).await;
    let point = points["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["jobId"] == done["id"])
        .unwrap_or_else(|| panic!("no point of the job: {points}"))
        .clone();
    assert_eq!(point["state"], "READY", "{point}");
    assert_eq!(point["resourceCount"].as_u64(), Some(resources), "{point}");
    assert_eq!(point["pvCount"], 0, "{point}");
    // Counts per kind and namespace add up to the total; nothing failed.
    let point = user
        .get(&format!("/v1/recoverypoints/{}", point["id"].as_str().unwrap()))
        .await;
    let sum = |key: &str| -> u64 {
        point[key]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum("countsByKind"), resources, "{point}");
    assert_eq!(sum("countsByNamespace"), resources, "{point}");
    assert_eq!(
        point["countsByKind"]["configmaps"].as_u64().map(|n| n >= 2),
        Some(true),
        "{point}"
    );
    assert_eq!(point["countsByKind"]["deployments.apps"], 1, "{point}");
    assert_eq!(point["countsByKind"]["namespaces"], 1, "{point}");
    assert_eq!(
        point["countsByNamespace"]["(cluster)"], 1,
        "the namespace itself: {point}"
    );
    assert!(
        point["countsByNamespace"][ns.as_str()].as_u64().unwrap() >= 5,
        "{point}"
    );
    assert_eq!(point["errorCount"], 0, "{point}");
    assert_eq!(point["errors"], json!([]), "{point}");
    assert_eq!(
        point["warningCount"].as_u64(),
        Some(point["warnings"].as_array().unwrap().len() as u64),
        "{point}"
    );
    let prefix = point["location"]["prefix"].as_str().unwrap().to_owned();
    assert!(
        prefix.contains(&format!("/{cluster_a}/resources-g1-")) && prefix.contains("/archives/"),
        "{prefix}"
    );
    assert!(dest_dir.join(&prefix).join("manifest").is_file(), "{prefix}");

    // Restore into cluster b under a mapped namespace.
    let target_ns = format!("{ns}-copy");
    let created = user
        .post(
            "/v1/restores",
            json!({
                "recoveryPointId": point["id"],
                "targetClusterId": cluster_b,
                "namespaceMap": { ns.clone(): target_ns },
            }),
        )
        .await;
    let restore_id = created["restore"]["id"].as_str().unwrap().to_owned();
    let restored = user.wait_job(created["job"]["id"].as_str().unwrap()).await;
    assert_eq!(restored["state"], "COMPLETED", "{restored}");
    assert!(restored["counters"]["resources"].as_u64().unwrap() >= 6, "{restored}");
    assert_eq!(restored["counters"]["errors"], 0, "{restored}");
    let log = restored["activity"].to_string();
    assert!(log.contains(&format!("restore {restore_id}")), "{log}");

    let label = format!("arca.io/restore-id={restore_id}");
    let by_label = ListParams::default().labels(&label);
    let ns_obj = Api::<Namespace>::all(b.client.clone()).get(&target_ns).await.unwrap();
    assert_eq!(
        ns_obj.metadata.labels.unwrap_or_default().get("arca.io/restore-id"),
        Some(&restore_id)
    );
    let mut names: Vec<String> = Api::<ConfigMap>::namespaced(b.client.clone(), &target_ns)
        .list(&by_label)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    names.sort();
    assert_eq!(names, ["features", "settings"]);
    let secret = Api::<Secret>::namespaced(b.client.clone(), &target_ns)
        .get("creds")
        .await
        .unwrap();
    assert_eq!(
        secret.metadata.labels.unwrap_or_default().get("arca.io/restore-id"),
        Some(&restore_id)
    );
    assert_eq!(
        secret.data.unwrap_or_default().get("password").map(|b| b.0.clone()),
        Some(b"hunter2".to_vec())
    );
    let deployments = Api::<Deployment>::namespaced(b.client.clone(), &target_ns)
        .list(&by_label)
        .await
        .unwrap();
    assert_eq!(deployments.items.len(), 1, "the Deployment, labelled");
    let service = Api::<Service>::namespaced(b.client.clone(), &target_ns)
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        service.metadata.labels.unwrap_or_default().get("arca.io/restore-id"),
        Some(&restore_id)
    );
    assert!(
        Api::<ConfigMap>::namespaced(b.client.clone(), &ns)
            .get_opt("settings")
            .await
            .unwrap()
            .is_none(),
        "nothing restored under the source namespace name"
    );

    // The restore's per-object results: every restored object, created.
    let objects = user.get(&format!("/v1/restores/{restore_id}/objects?limit=200")).await;
    let items = objects["items"].as_array().unwrap();
    assert!(objects["nextCursor"].is_null(), "{objects}");
    assert_eq!(
        items.len() as u64,
        restored["counters"]["resources"].as_u64().unwrap(),
        "{objects}"
    );
    assert!(items.iter().all(|o| o["outcome"] == "created"), "{objects}");
    let has = |resource: &str, namespace: Option<&str>, name: &str| {
        items
            .iter()
            .any(|o| o["resource"] == resource && o["namespace"].as_str() == namespace && o["name"] == name)
    };
    for name in ["features", "settings"] {
        assert!(has("configmaps", Some(&target_ns), name), "{name}: {objects}");
    }
    assert!(has("secrets", Some(&target_ns), "creds"), "{objects}");
    assert!(has("services", Some(&target_ns), "web"), "{objects}");
    assert!(has("namespaces", None, &target_ns), "{objects}");

    // The same restore again (policy skip): every object is skipped, with its reason.
    let again = user
        .post(
            "/v1/restores",
            json!({
                "recoveryPointId": point["id"],
                "targetClusterId": cluster_b,
                "namespaceMap": { ns.clone(): target_ns },
                "existingResourcePolicy": "skip",
            }),
        )
        .await;
    let again_id = again["restore"]["id"].as_str().unwrap().to_owned();
    let again_job = user.wait_job(again["job"]["id"].as_str().unwrap()).await;
    assert_eq!(again_job["state"], "COMPLETED", "{again_job}");
    let skipped = user
        .get(&format!("/v1/restores/{again_id}/objects?outcome=skipped&limit=200"))
        .await;
    let skipped_items = skipped["items"].as_array().unwrap();
    let settings = skipped_items
        .iter()
        .find(|o| o["resource"] == "configmaps" && o["name"] == "settings")
        .unwrap_or_else(|| panic!("settings not skipped: {skipped}"));
    assert!(
        !settings["reason"].as_str().unwrap_or_default().is_empty(),
        "{settings}"
    );
    let created_again = user
        .get(&format!("/v1/restores/{again_id}/objects?outcome=created"))
        .await;
    assert!(
        !created_again["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "settings"),
        "{created_again}"
    );

    // Retention: two days later the point expires; its DELETE_BACKUP job removes the
    // archive's manifest and index, and its packs wait for the repository's maintenance.
    clock.advance(Duration::from_secs(2 * 86_400));
    let report = cp.retention_sweep().await.unwrap();
    assert!(report.examined >= 1, "{report:?}");
    let point_id = point["id"].as_str().unwrap();
    let jobs = user.get("/v1/jobs?type=DELETE_BACKUP").await;
    let delete_job = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["recoveryPointId"] == point_id)
        .unwrap_or_else(|| panic!("no DELETE_BACKUP job for {point_id}: {jobs}"))
        .clone();
    let deleted = user.wait_job(delete_job["id"].as_str().unwrap()).await;
    assert_eq!(deleted["state"], "COMPLETED", "{deleted}");
    let log = deleted["activity"].to_string();
    assert!(log.contains("reclaimed by the repository maintenance"), "{log}");
    let (status, _) = user
        .call(reqwest::Method::GET, &format!("/v1/recoverypoints/{point_id}"), None)
        .await;
    assert_eq!(status, 404, "the point is gone");
    assert!(!dest_dir.join(&prefix).join("manifest").exists(), "manifest deleted");
    assert_eq!(
        files_under(&dest_dir.join(&prefix)),
        0,
        "the archive's index and manifest are deleted"
    );
    assert!(files_under(dest_dir) > 0, "the packs wait for maintenance");

    // Maintenance is due once the deletions settled; the agent's gc (grace 0 here)
    // condemns and deletes the packs no point needs: nothing is left.
    let sweep = cp.maintenance_sweep().await.unwrap();
    assert!(sweep.jobs.is_empty(), "not due before the deletions settle: {sweep:?}");
    clock.advance(arca_core::model::maintenance::SETTLE);
    let sweep = cp.maintenance_sweep().await.unwrap();
    assert_eq!(sweep.jobs.len(), 1, "{sweep:?}");
    let maintained = user.wait_job(&sweep.jobs[0].to_string()).await;
    assert_eq!(maintained["state"], "COMPLETED", "{maintained}");
    assert_eq!(maintained["type"], "REPOSITORY_MAINTENANCE", "{maintained}");
    assert_eq!(maintained["clusterId"], cluster_a.as_str(), "{maintained}");
    assert_eq!(files_under(dest_dir), 0, "every pack of the deleted point is gone");
    let upkeep = user.get(&format!("/v1/destinations/{dest}/maintenance")).await;
    assert!(upkeep["bytesFreedTotal"].as_u64().unwrap() > 0, "{upkeep}");
    let repo = &upkeep["repositories"][0];
    assert_eq!(repo["repository"]["clusterId"], cluster_a.as_str(), "{upkeep}");
    assert!(repo["dueAt"].is_null(), "nothing left to reclaim: {upkeep}");
    assert!(cp.maintenance_sweep().await.unwrap().jobs.is_empty());

    let _ = Api::<Namespace>::all(a.client.clone())
        .delete(&ns, &Default::default())
        .await;
    let _ = Api::<Namespace>::all(b.client.clone())
        .delete(&target_ns, &Default::default())
        .await;
}

/// The ConfigMap `settings` as restored into `ns` of the cluster behind `client`.
async fn restored_setting(client: &kube::Client, ns: &str) -> String {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("settings")
        .await
        .unwrap();
    cm.data.unwrap_or_default().get("value").cloned().unwrap_or_default()
}

/// Key rotation end to end: a cluster's archive key rotated between two backups. The
/// second backup is sealed under the new key in new repositories; the first point stays
/// restorable (into another cluster, whose agent gets the source's old key for that job);
/// when the first point expires, maintenance collects the old key's repositories while
/// the new point stays restorable.
#[tokio::test]
async fn a_rotated_key_seals_new_backups_while_old_points_stay_restorable_and_collectable() {
    let Some(t) = two_agents_on_a_local_destination().await else {
        return;
    };
    let (a, b, cluster_a, cluster_b) = (&t.a, &t.b, &t.cluster_a, &t.cluster_b);
    let dest_dir = &t.dest_dir;
    let (cp, clock, user) = (t.h.cp.clone(), t.h.clock.clone(), &t.h.user);

    let ns = arca_testenv::unique("rotate");
    let pp = PostParams::default();
    arca_e2e::create_namespace(&a.client, &ns).await.unwrap();
    let cms = Api::<ConfigMap>::namespaced(a.client.clone(), &ns);
    let settings =
        |value: &str| obj::<ConfigMap>(json!({ "metadata": { "name": "settings" }, "data": { "value": value } }));
    cms.create(&pp, &settings("before")).await.unwrap();
    let def = user.namespace_backup("ns", cluster_a, &ns).await;
    let backup = |retain_days: u32| {
        let def = def.clone();
        async move {
            let done = user.run_completed(&def, retain_days).await;
            let points = user.get(&format!("/v1/recoverypoints?definitionId={def}")).await;
            points["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["jobId"] == done["id"])
                .unwrap_or_else(|| panic!("no point of the job: {points}"))
                .clone()
        }
    };
    let store_of = |point: &Value| -> String {
        let prefix = point["location"]["prefix"].as_str().unwrap();
        prefix.split("/archives/").next().unwrap().to_string()
    };

    let old = backup(1).await;
    let old_store = store_of(&old);
    assert!(
        old_store.contains(&format!("/{cluster_a}/resources-g1-")),
        "{old_store}"
    );

    let cluster_path = format!("/v1/clusters/{cluster_a}");
    let rotated = user
        .post_if_match(&cluster_path, &format!("{cluster_path}/rotate-archive-key"), json!({}))
        .await;
    assert_eq!(rotated["archiveKeyGeneration"], 2, "{rotated}");

    cms.replace("settings", &pp, &{
        let mut cm = cms.get("settings").await.unwrap();
        cm.data = Some([("value".to_string(), "after".to_string())].into());
        cm
    })
    .await
    .unwrap();
    let new = backup(7).await;
    let new_store = store_of(&new);
    assert!(new_store.contains("/resources-g2-"), "{new_store}");
    assert_ne!(old_store, new_store);
    assert!(
        files_under(&dest_dir.join(&new_store)) > 0,
        "the new key's store has its own packs"
    );

    // Both points restore, each with its own key; the old one into the other cluster.
    let restore = |point: &Value, cluster: &str, target_ns: &str| json!({ "recoveryPointId": point["id"], "targetClusterId": cluster, "namespaceMap": { ns.clone(): target_ns } });
    let old_copy = format!("{ns}-old");
    let r = user.post("/v1/restores", restore(&old, cluster_b, &old_copy)).await;
    let done = user.wait_job(r["job"]["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(restored_setting(&b.client, &old_copy).await, "before");
    let new_copy = format!("{ns}-new");
    let r = user.post("/v1/restores", restore(&new, cluster_a, &new_copy)).await;
    let done = user.wait_job(r["job"]["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(restored_setting(&a.client, &new_copy).await, "after");

    // The old point expires; its deletion and the maintenance after it empty the old
    // key's store (the run gets every key of the cluster), the new one is untouched.
    clock.advance(Duration::from_secs(2 * 86_400));
    cp.retention_sweep().await.unwrap();
    let jobs = user.get("/v1/jobs?type=DELETE_BACKUP").await;
    let delete_job = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["recoveryPointId"] == old["id"])
        .unwrap_or_else(|| panic!("no DELETE_BACKUP job for the old point: {jobs}"))
        .clone();
    let deleted = user.wait_job(delete_job["id"].as_str().unwrap()).await;
    assert_eq!(deleted["state"], "COMPLETED", "{deleted}");
    clock.advance(arca_core::model::maintenance::SETTLE);
    let sweep = cp.maintenance_sweep().await.unwrap();
    assert_eq!(sweep.jobs.len(), 1, "{sweep:?}");
    let maintained = user.wait_job(&sweep.jobs[0].to_string()).await;
    assert_eq!(maintained["state"], "COMPLETED", "{maintained}");
    let log = maintained["activity"].to_string();
    assert!(
        log.contains("key g1-") && log.contains("key g2-"),
        "both keys' repositories: {log}"
    );
    assert_eq!(
        files_under(&dest_dir.join(&old_store)),
        0,
        "the old key's store is emptied"
    );
    assert!(files_under(&dest_dir.join(&new_store)) > 0, "the new store stays");

    // The clock jumped two days: cluster b is ACTIVE again at its agent's next heartbeat.
    user.wait_for(&format!("/v1/clusters/{cluster_b}"), |c| c["state"] == "ACTIVE")
        .await;
    let again = format!("{ns}-again");
    let r = user.post("/v1/restores", restore(&new, cluster_b, &again)).await;
    let done = user.wait_job(r["job"]["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(restored_setting(&b.client, &again).await, "after");

    for (client, name) in [
        (&a.client, &ns),
        (&a.client, &new_copy),
        (&b.client, &old_copy),
        (&b.client, &again),
    ] {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(name, &Default::default())
            .await;
    }
}
