//! The agent as users run it: the image this project builds, in a Pod on a real node
//! (kubelet, containerd, runc; `scripts/testenv.sh`), connecting out to `arca server`.
//!
//! One user, two clusters: cluster a gets the agent with `kubectl apply -f <link>`, cluster
//! b with Helm. A namespace of running workloads (a Deployment, a StatefulSet with a
//! volume) is backed up from a into a user S3 bucket (moto, keys in a Secret the
//! destination's `credentialsRef` names) and restored into b, where the restored
//! controllers create Pods that run. Then both agents are upgraded and uninstalled as
//! docs/agent.md says.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::User;
use common::node::{
    AGENT_NAMESPACE, BucketEndpoint, Kubectl, assert_agent_pod, bucket_destination, chrono_now, install_line,
    pod_ready, running_pods, start_server, wait_agent_namespace_gone, wait_cluster_active,
};
use serde_json::{Value, json};

/// Removes what the installs made, as docs/agent.md says (also after a failure).
struct Uninstall<'a> {
    nodes: &'a arca_testenv::Nodes,
    kubeconfigs: [&'a Path; 2],
    helm: &'a Path,
}

impl Drop for Uninstall<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.helm)
            .args(["uninstall", "arca-agent", "--namespace", "default", "--kubeconfig"])
            .arg(self.kubeconfigs[1])
            .output();
        for kubeconfig in self.kubeconfigs {
            let _ = self
                .nodes
                .kubectl(kubeconfig)
                .args([
                    "delete",
                    "namespace",
                    AGENT_NAMESPACE,
                    "--ignore-not-found",
                    "--timeout=120s",
                ])
                .output();
            let _ = self
                .nodes
                .kubectl(kubeconfig)
                .args([
                    "delete",
                    "clusterrole,clusterrolebinding",
                    "-l",
                    "app.kubernetes.io/part-of=arca",
                ])
                .output();
        }
    }
}

/// The workload: a Deployment and a StatefulSet whose Pod writes into its volume (a
/// hostPath PersistentVolume the test provides, as a storage admin would).
fn workload(namespace: &str, image: &str) -> Vec<Value> {
    let container = |name: &str, script: &str, mounts: Value| {
        json!({"name": name, "image": image, "command": ["sh", "-c", script],
               "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": false},
               "volumeMounts": mounts})
    };
    vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": namespace},
               "data": {"greeting": "hello from cluster a"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                         container("web", "echo \"$(cat /config/greeting)\" && exec sleep 3600",
                                                   json!([{"name": "config", "mountPath": "/config"}]))],
                                              "volumes": [{"name": "config", "configMap": {"name": "web-config"}}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": namespace},
               "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}},
                                     "spec": {"terminationGracePeriodSeconds": 1,
                                              "securityContext": {"fsGroup": 1000},
                                              "containers": [container("db",
                                                  "date >> /data/started && exec sleep 3600",
                                                  json!([{"name": "data", "mountPath": "/data"}]))]}},
                        "volumeClaimTemplates": [{"metadata": {"name": "data"},
                            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "arca-test-hostpath",
                                     "resources": {"requests": {"storage": "1Mi"}}}}]}}),
    ]
}

/// The test's storage class: volumes an admin made beforehand, bound as soon as claimed.
fn storage_class() -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "arca-test-hostpath"},
           "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate"})
}

/// A hostPath volume of the test's storage class, for one claim to bind.
fn host_path_volume(name: &str, dir: &Path) -> Value {
    std::fs::create_dir_all(dir).unwrap();
    // The Pod writes as uid 1000.
    std::os::unix::fs::chown(dir, Some(1000), Some(1000)).unwrap();
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
           "spec": {"capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "arca-test-hostpath",
                    "hostPath": {"path": dir.to_str().unwrap(), "type": "Directory"}}})
}

#[test]
fn the_agent_runs_in_cluster_and_restores_running_workloads_into_another_cluster() {
    let Some(nodes) = arca_testenv::nodes() else { return };
    let Some(helm) = arca_testenv::helm() else {
        panic!("the nodes are up but ARCA_HELM is missing");
    };
    let aws = nodes.aws.clone();
    let (kc_a, kc_b) = (nodes.kubeconfig_a.as_path(), nodes.kubeconfig_b.as_path());
    let a = Kubectl {
        nodes: &nodes,
        kubeconfig: kc_a,
    };
    let b = Kubectl {
        nodes: &nodes,
        kubeconfig: kc_b,
    };
    // An agent namespace an earlier test deleted may still be finalizing.
    for k in [&a, &b] {
        wait_agent_namespace_gone(k);
    }
    // Whatever happens below, no agent of this test outlives it (the next test installs its own).
    let _uninstall = Uninstall {
        nodes: &nodes,
        kubeconfigs: [kc_a, kc_b],
        helm: &helm,
    };
    let work = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(work.path(), &nodes.host_ip, &nodes.agent_image);
    let user = User::new(&url, work.path(), "admin");
    user.ok(&["signup", "--org-name", &arca_testenv::unique("incluster")]);

    // ---- cluster a: the one-time link, applied with kubectl
    let cluster_a = arca_testenv::unique("a");
    let link = install_line(&user.ok(&["clusters", "register", &cluster_a]));
    a.ok(&["apply", "-f", &link]);
    let pod_a = a.ready_agent_pod();
    assert_agent_pod(&pod_a, &nodes.agent_image);
    assert_eq!(pod_a["spec"]["nodeName"], "arca-a-node");
    let active = wait_cluster_active(&user, &cluster_a, None);
    assert_eq!(active["agentVersion"], env!("CARGO_PKG_VERSION"), "{active:#}");
    assert!(
        active["kubernetesVersion"].as_str().unwrap().starts_with("v1."),
        "{active:#}"
    );

    // ---- cluster b: Helm, with the agent token in a file
    let cluster_b = arca_testenv::unique("b");
    let token_file = work.path().join("b.token");
    user.ok(&[
        "clusters",
        "register",
        &cluster_b,
        "--agent-token-file",
        token_file.to_str().unwrap(),
    ]);
    let cluster_b_id = user.json(&["clusters", "get", &cluster_b])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (repository, digest) = nodes.agent_image.rsplit_once('@').unwrap();
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/chart");
    let helm_run = |args: &[&str]| {
        let out = Command::new(&helm)
            .args(args)
            .arg("--kubeconfig")
            .arg(kc_b)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let token = std::fs::read_to_string(&token_file).unwrap();
    helm_run(&[
        "install",
        "arca-agent",
        chart.to_str().unwrap(),
        "--namespace",
        "default",
        "--set",
        &format!("apiUrl={url}"),
        "--set",
        &format!("clusterId={cluster_b_id}"),
        "--set-string",
        &format!("agentToken={}", token.trim()),
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        &format!("image.digest={digest}"),
    ]);
    let pod_b = b.ready_agent_pod();
    assert_agent_pod(&pod_b, &nodes.agent_image);
    wait_cluster_active(&user, &cluster_b, None);

    // ---- a user bucket, its keys in a Secret in each agent's namespace
    bucket_destination(&user, &[&a, &b], &aws, &nodes.host_ip, "bucket", BucketEndpoint::Http);

    // ---- running workloads in cluster a
    let ns = arca_testenv::unique("shop");
    a.ok(&["create", "namespace", &ns]);
    let volumes = work.path().join("volumes");
    for k in [&a, &b] {
        k.apply_json(&storage_class());
    }
    a.apply_json(&host_path_volume(&format!("{ns}-a"), &volumes.join("a")));
    for object in workload(&ns, &nodes.busybox_image) {
        a.apply_json(&object);
    }
    running_pods(&a, &ns, "app=web", 2);
    running_pods(&a, &ns, "app=db", 1);
    assert!(
        volumes.join("a/started").is_file(),
        "the StatefulSet's Pod wrote into its volume"
    );

    user.ok(&[
        "backups",
        "create",
        "shop",
        "--cluster",
        &cluster_a,
        "--namespaces",
        &ns,
        "--destination",
        "bucket",
        // Resources only: volume data has its own test (a hostPath volume has no CSI
        // snapshot, which would make this backup PARTIAL, as it must).
        "--pv-mode",
        "none",
    ]);
    user.ok(&["backups", "run", "shop", "--wait"]);
    let points = user.json(&["recovery-points", "list", "--backup", "shop"]);
    let point = &points.as_array().unwrap()[0];
    assert_eq!(point["state"], "READY", "{points:#}");
    assert_eq!(point["countsByKind"]["deployments.apps"], 1, "{point:#}");
    assert_eq!(point["countsByKind"]["statefulsets.apps"], 1, "{point:#}");

    // ---- restored into cluster b: the controllers there create Pods that run. The claim's
    // PersistentVolume comes along (it is in the backup) and names the same host directory:
    // on this one host, both clusters' Pods write there.
    let restored = user.run(&[
        "restores",
        "create",
        "--recovery-point",
        point["id"].as_str().unwrap(),
        "--cluster",
        &cluster_b,
        "--wait",
    ]);
    if !restored.status.success() {
        // What failed, object by object, as the API keeps it.
        let id = user.json(&["restores", "list"])[0]["id"].as_str().unwrap().to_owned();
        let objects = Command::new("curl")
            .args(["-sf", "-H", &format!("Authorization: Bearer {}", user.saved_key())])
            .arg(format!("{url}/v1/restores/{id}/objects"))
            .output()
            .unwrap();
        panic!(
            "the restore did not complete: {}\nobjects: {}",
            common::stderr(&restored),
            String::from_utf8_lossy(&objects.stdout)
        );
    }
    let web = running_pods(&b, &ns, "app=web", 2);
    assert!(
        web["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["spec"]["nodeName"] == "arca-b-node")
    );
    running_pods(&b, &ns, "app=db", 1);
    let claim = b.json(&["get", "pvc", "-n", &ns, "data-db-0"]);
    assert_eq!(claim["status"]["phase"], "Bound", "{claim:#}");
    assert_eq!(claim["spec"]["volumeName"], format!("{ns}-a"), "{claim:#}");
    let started = std::fs::read_to_string(volumes.join("a/started")).unwrap();
    assert_eq!(started.lines().count(), 2, "the Pods of a and then b wrote: {started}");
    // Each web Pod printed the restored ConfigMap's greeting (the log may lag the Pod's start).
    let mut logs = String::new();
    for _ in 0..60 {
        logs = b.ok(&["logs", "-n", &ns, "-l", "app=web", "--prefix=false"]);
        if logs.lines().filter(|l| !l.trim().is_empty()).count() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let logs = logs
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("|");
    assert_eq!(
        logs, "hello from cluster a|hello from cluster a",
        "the restored ConfigMap reached the restored Pods"
    );

    // ---- upgrade: a new link applied with kubectl rolls the agent (the token rotates)
    let link = install_line(&user.ok(&["clusters", "install", &cluster_a]));
    let before = chrono_now();
    a.ok(&["apply", "-f", &link]);
    let new_pod = a.wait_for(
        &["pods", "-n", AGENT_NAMESPACE, "-l", "app.kubernetes.io/name=arca-agent"],
        180,
        |v| {
            let items = v["items"].as_array().cloned().unwrap_or_default();
            items.len() == 1 && items[0]["metadata"]["name"] != pod_a["metadata"]["name"] && pod_ready(&items[0])
        },
    );
    assert_agent_pod(&new_pod["items"][0], &nodes.agent_image);
    wait_cluster_active(&user, &cluster_a, Some(&before));
    // ... and a Helm upgrade keeps the values and rolls the agent too.
    helm_run(&[
        "upgrade",
        "arca-agent",
        chart.to_str().unwrap(),
        "--namespace",
        "default",
        "--reuse-values",
        "--set",
        "podAnnotations.upgraded=yes",
    ]);
    b.wait_for(
        &["pods", "-n", AGENT_NAMESPACE, "-l", "app.kubernetes.io/name=arca-agent"],
        180,
        |v| {
            let items = v["items"].as_array().cloned().unwrap_or_default();
            items.len() == 1 && items[0]["metadata"]["annotations"]["upgraded"] == "yes" && pod_ready(&items[0])
        },
    );

    // ---- uninstall as documented: nothing of ours is left, the namespaces are gone
    a.ok(&["delete", "namespace", AGENT_NAMESPACE, "--wait=true", "--timeout=120s"]);
    a.ok(&[
        "delete",
        "clusterrole,clusterrolebinding,crd",
        "-l",
        "app.kubernetes.io/part-of=arca",
    ]);
    helm_run(&[
        "uninstall",
        "arca-agent",
        "--namespace",
        "default",
        "--wait",
        "--timeout",
        "120s",
    ]);
    b.wait_for(&["namespaces"], 120, |v| {
        !v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["metadata"]["name"] == AGENT_NAMESPACE)
    });
    for k in [&a, &b] {
        let left = k.json(&[
            "get",
            "clusterrole,clusterrolebinding",
            "-l",
            "app.kubernetes.io/part-of=arca",
        ]);
        assert_eq!(left["items"], json!([]), "{left:#}");
        assert!(!k.run(&["get", "namespace", AGENT_NAMESPACE]).status.success());
        k.ok(&["delete", "namespace", &ns, "--wait=false"]);
        k.ok(&["delete", "pv", &format!("{ns}-a"), "--wait=false"]);
    }
}
