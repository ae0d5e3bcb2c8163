//! Mover Jobs: a pod of this agent's image that runs `arca-agent volume backup|restore` on
//! a claim attached as a raw block device, with what it needs to reach the repository in a
//! Secret of its own (deleted with the Job), and temporary claims.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use serde_json::{Value, json};

use super::{already_exists, not_found};

/// Where the claim's device appears in the mover's container.
pub const DEVICE_PATH: &str = "/dev/arca-volume";

/// One mover run.
#[derive(Clone, Debug)]
pub struct Mover {
    pub name: String,
    pub namespace: String,
    pub image: String,
    /// `volume backup …` or `volume restore …` (without the binary).
    pub args: Vec<String>,
    /// The claim attached at [`DEVICE_PATH`].
    pub claim: String,
    /// Plain (non-secret) environment.
    pub env: BTreeMap<String, String>,
    /// A host directory mounted at the same path (a local-filesystem repository).
    pub host_path: Option<String>,
    pub service_account: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The Job's `activeDeadlineSeconds`.
    pub deadline: Duration,
}

/// The mover's Job. Secret values come from the Secret named like the Job (`envFrom`),
/// never from the Job's own spec. `HOSTNAME` is the Job's name: the repository records it
/// with the snapshot, which is how the agent finds the snapshot (and its statistics) the
/// mover made.
pub fn job_manifest(m: &Mover) -> Value {
    let mut env: Vec<Value> = m.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    env.push(json!({"name": "HOSTNAME", "value": m.name}));
    let mut volumes = vec![json!({"name": "volume", "persistentVolumeClaim": {"claimName": m.claim}})];
    let mut mounts = vec![json!({"name": "tmp", "mountPath": "/tmp"})];
    volumes.push(json!({"name": "tmp", "emptyDir": {}}));
    if let Some(path) = &m.host_path {
        volumes.push(json!({"name": "repository", "hostPath": {"path": path, "type": "Directory"}}));
        mounts.push(json!({"name": "repository", "mountPath": path}));
    }
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "containers": [{
            "name": "mover",
            "image": m.image,
            "args": m.args,
            "env": env,
            "envFrom": [{"secretRef": {"name": m.name}}],
            "volumeDevices": [{"name": "volume", "devicePath": DEVICE_PATH}],
            "volumeMounts": mounts,
            // Reading and writing a block device node takes its owner, root; nothing more.
            "securityContext": {
                "runAsUser": 0,
                "runAsNonRoot": false,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
        }],
        "volumes": volumes,
    });
    if let Some(sa) = &m.service_account {
        pod_spec["serviceAccountName"] = json!(sa);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": m.name, "namespace": m.namespace, "labels": m.labels},
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": m.deadline.as_secs().max(60),
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": m.labels}, "spec": pod_spec},
        },
    })
}

/// The Secret the mover's environment comes from, owned by its Job (the garbage collector
/// removes it with the Job should the agent not).
pub fn secret_manifest(m: &Mover, data: &BTreeMap<String, String>, job_uid: Option<&str>) -> Value {
    let mut meta = json!({"name": m.name, "namespace": m.namespace, "labels": m.labels});
    if let Some(uid) = job_uid {
        meta["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": m.name, "uid": uid}]);
    }
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "stringData": data})
}

/// A claim of `size_bytes` in block mode, optionally filled from a VolumeSnapshot.
pub fn claim_manifest(
    namespace: &str,
    name: &str,
    storage_class: Option<&str>,
    size_bytes: u64,
    from_snapshot: Option<&str>,
    labels: &BTreeMap<String, String>,
) -> Value {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Block",
        "resources": {"requests": {"storage": size_bytes.max(1 << 20).to_string()}},
    });
    if let Some(class) = storage_class {
        spec["storageClassName"] = json!(class);
    }
    if let Some(snapshot) = from_snapshot {
        spec["dataSource"] = super::snapshot_data_source(snapshot);
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    })
}

/// `Some(Ok)` once the Job is Complete, `Some(Err(why))` once Failed, `None` while it runs.
pub fn job_state(job: &Value) -> Option<Result<(), String>> {
    let conditions = job.pointer("/status/conditions").and_then(Value::as_array)?;
    let true_of = |t: &str| conditions.iter().find(|c| c["type"] == t && c["status"] == "True");
    if true_of("Complete").is_some() {
        return Some(Ok(()));
    }
    true_of("Failed").map(|c| {
        let reason = c["reason"].as_str().unwrap_or("Failed");
        Err(match c["message"].as_str() {
            Some(m) if !m.is_empty() => format!("{reason}: {m}"),
            _ => reason.to_string(),
        })
    })
}

/// Creates a claim, tolerating the one an earlier delivery of the job made.
pub async fn create_claim(client: &Client, manifest: &Value) -> Result<(), String> {
    let namespace = manifest["metadata"]["namespace"].as_str().unwrap_or_default();
    let claim: PersistentVolumeClaim = serde_json::from_value(manifest.clone()).map_err(|e| e.to_string())?;
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    match api.create(&PostParams::default(), &claim).await {
        Ok(_) => Ok(()),
        Err(e) if already_exists(&e) => Ok(()),
        Err(e) => Err(format!(
            "creating PersistentVolumeClaim {namespace}/{}: {e}",
            claim.metadata.name.unwrap_or_default()
        )),
    }
}

pub async fn delete_claim(client: &Client, namespace: &str, name: &str) -> Result<(), String> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(format!("deleting PersistentVolumeClaim {namespace}/{name}: {e}")),
    }
}

/// Runs the mover to its end (or `timeout`), then deletes its Job (with its pods) and Secret.
pub async fn run(
    client: &Client,
    m: &Mover,
    secret: &BTreeMap<String, String>,
    timeout: Duration,
    poll: Duration,
) -> Result<(), String> {
    let result = run_inner(client, m, secret, timeout, poll).await;
    let cleanup = remove(client, &m.namespace, &m.name).await;
    match (result, cleanup) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => {
            tracing::warn!(job = %m.name, error = %e, "removing a finished mover failed");
            Ok(())
        }
        (Ok(()), Ok(())) => Ok(()),
    }
}

async fn run_inner(
    client: &Client,
    m: &Mover,
    secret: &BTreeMap<String, String>,
    timeout: Duration,
    poll: Duration,
) -> Result<(), String> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), &m.namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &m.namespace);
    let job: Job = serde_json::from_value(job_manifest(m)).map_err(|e| e.to_string())?;
    // The Job first, so the Secret can be owned by it; the pod waits for its Secret.
    let created = match jobs.create(&PostParams::default(), &job).await {
        Ok(j) => j,
        // An earlier delivery of this job started it: wait for that run.
        Err(e) if already_exists(&e) => jobs
            .get(&m.name)
            .await
            .map_err(|e| format!("reading mover Job {}/{}: {e}", m.namespace, m.name))?,
        Err(e) => return Err(format!("creating mover Job {}/{}: {e}", m.namespace, m.name)),
    };
    let uid = created.metadata.uid.as_deref();
    let secret_obj: Secret = serde_json::from_value(secret_manifest(m, secret, uid)).map_err(|e| e.to_string())?;
    match secrets.create(&PostParams::default(), &secret_obj).await {
        Ok(_) => {}
        Err(e) if already_exists(&e) => {
            // Credentials may have been renewed since: replace it.
            let _ = secrets.delete(&m.name, &DeleteParams::default()).await;
            secrets
                .create(&PostParams::default(), &secret_obj)
                .await
                .map_err(|e| format!("creating the mover's Secret {}/{}: {e}", m.namespace, m.name))?;
        }
        Err(e) => return Err(format!("creating the mover's Secret {}/{}: {e}", m.namespace, m.name)),
    }
    tracing::info!(job = %m.name, namespace = %m.namespace, "mover started");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match jobs.get_opt(&m.name).await {
            Ok(Some(job)) => {
                let value = serde_json::to_value(&job).map_err(|e| e.to_string())?;
                match job_state(&value) {
                    Some(Ok(())) => return Ok(()),
                    Some(Err(why)) => return Err(format!("mover Job {}/{} failed: {why}", m.namespace, m.name)),
                    None => {}
                }
            }
            Ok(None) => return Err(format!("mover Job {}/{} disappeared", m.namespace, m.name)),
            Err(e) => tracing::warn!(job = %m.name, error = %e, "reading the mover Job failed"),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "mover Job {}/{} did not finish within {timeout:?}",
                m.namespace, m.name
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Deletes a mover's Job (foreground: its pods first) and Secret.
pub async fn remove(client: &Client, namespace: &str, name: &str) -> Result<(), String> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let mut problems = Vec::new();
    match jobs.delete(name, &dp).await {
        Ok(_) => {}
        Err(e) if not_found(&e) => {}
        Err(e) => problems.push(format!("deleting Job {namespace}/{name}: {e}")),
    }
    match secrets.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if not_found(&e) => {}
        Err(e) => problems.push(format!("deleting Secret {namespace}/{name}: {e}")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mover(host_path: Option<&str>) -> Mover {
        Mover {
            name: "arca-copy-x".into(),
            namespace: "shop".into(),
            image: "img:1".into(),
            args: vec!["volume".into(), "backup".into()],
            claim: "arca-copy-x".into(),
            env: [("AWS_REGION".to_string(), "eu-west-1".to_string())].into(),
            host_path: host_path.map(str::to_string),
            service_account: None,
            labels: [("a".to_string(), "b".to_string())].into(),
            deadline: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_job_attaches_the_claim_as_a_device_and_takes_secrets_from_its_secret_only() {
        let job = job_manifest(&mover(Some("/srv/backups")));
        let pod = &job["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "img:1");
        assert_eq!(c["volumeDevices"][0]["devicePath"], DEVICE_PATH);
        assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "arca-copy-x");
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "arca-copy-x");
        let env = c["env"].as_array().unwrap();
        assert!(
            env.iter()
                .any(|e| e["name"] == "HOSTNAME" && e["value"] == "arca-copy-x")
        );
        assert!(!job.to_string().contains("ARCA_REPO_PASSWORD"));
        assert!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["hostPath"]["path"] == "/srv/backups")
        );
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 3600);
        assert_eq!(pod["restartPolicy"], "Never");
        let no_host = job_manifest(&mover(None));
        assert!(!no_host.to_string().contains("hostPath"));
    }

    #[test]
    fn secrets_are_owned_by_their_job() {
        let data = [("ARCA_REPO_PASSWORD".to_string(), "p".to_string())].into();
        let s = secret_manifest(&mover(None), &data, Some("uid-1"));
        assert_eq!(s["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(s["stringData"]["ARCA_REPO_PASSWORD"], "p");
    }

    #[test]
    fn temporary_claims_are_block_mode_and_at_least_a_mebibyte() {
        let c = claim_manifest("ns", "tmp", Some("fast"), 10, Some("snap"), &BTreeMap::new());
        assert_eq!(c["spec"]["volumeMode"], "Block");
        assert_eq!(c["spec"]["storageClassName"], "fast");
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "1048576");
        assert_eq!(c["spec"]["dataSource"]["kind"], "VolumeSnapshot");
        assert_eq!(c["spec"]["dataSource"]["name"], "snap");
        let plain = claim_manifest("ns", "tmp", None, 1 << 30, None, &BTreeMap::new());
        assert!(plain["spec"].get("dataSource").is_none() && plain["spec"].get("storageClassName").is_none());
    }

    #[test]
    fn job_states_follow_the_terminal_conditions() {
        assert_eq!(job_state(&json!({})), None);
        assert_eq!(
            job_state(&json!({"status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}})),
            None
        );
        assert_eq!(
            job_state(&json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})),
            Some(Ok(()))
        );
        assert_eq!(
            job_state(&json!({"status": {"conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "3 failures"}]}})),
            Some(Err("BackoffLimitExceeded: 3 failures".into()))
        );
    }
}
