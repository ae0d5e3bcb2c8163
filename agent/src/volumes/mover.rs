//! Mover Jobs: a pod of this agent's image that runs `arca-agent volume backup|restore` on
//! a claim attached as a raw block device, with what it needs to reach the repository in a
//! Secret of its own (deleted with the Job), and temporary claims.
//!
//! Everything here lives in the agent's own namespace ([`super::VolumeOptions::namespace`]),
//! never in an application's: whoever may read Secrets there must not get the org's
//! repository passphrase or the bucket's keys. The Secret reaches the mover as files (a
//! Secret volume, which the kubelet keeps up to date), so the agent can renew short-lived
//! bucket credentials while a long copy runs ([`Renewal`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{already_exists, not_found};

/// Where the claim's device appears in the mover's container.
pub const DEVICE_PATH: &str = "/dev/arca-volume";
/// Where the mover's Secret is mounted (read-only, root only).
pub const SECRET_DIR: &str = "/var/run/secrets/arca-mover";
/// The Secret's key holding the repository passphrase.
pub const PASSWORD_KEY: &str = "repo-password";
/// The Secret's key holding the bucket credentials ([`CredentialsFile`]), when the mover
/// gets any (vended by the control plane or from a `credentialsRef`).
pub const CREDENTIALS_KEY: &str = "s3-credentials.json";
/// The environment variable naming the passphrase file (`volume …` reads it).
pub const PASSWORD_FILE_ENV: &str = "ARCA_REPO_PASSWORD_FILE";
/// The environment variable naming the credentials file (`volume …` reads it, again
/// whenever the credentials near their expiry).
pub const CREDENTIALS_FILE_ENV: &str = "ARCA_S3_CREDENTIALS_FILE";
/// The environment variable carrying an immutable destination's Object Lock (the job's
/// `ObjectLockWrite` as JSON): a backing-up mover writes with it and extends the packs
/// its snapshot reuses to its date.
pub const OBJECT_LOCK_ENV: &str = "ARCA_OBJECT_LOCK";

/// The bucket credentials a mover reads from its Secret: the `credential_process` JSON
/// shape the AWS tools know (`Version` 1), so an operator recognises it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CredentialsFile {
    pub version: u8,
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// When they stop working; absent for long-term keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<chrono::DateTime<chrono::Utc>>,
}

impl std::fmt::Debug for CredentialsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsFile")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// When the credentials in a mover's Secret data expire (`None`: no credentials, or
/// long-term keys).
pub fn credentials_expiry(data: &BTreeMap<String, String>) -> Option<chrono::DateTime<chrono::Utc>> {
    let file: CredentialsFile = serde_json::from_str(data.get(CREDENTIALS_KEY)?).ok()?;
    file.expiration
}

/// Whether a running mover's credentials are to be renewed now: once they are within
/// `margin` of expiring. The margin covers the control plane's answer, the kubelet
/// refreshing the mounted Secret (up to its sync period, about a minute, plus its cache
/// TTL) and the mover's own re-read before expiry (`arca-agent volume`: 5 minutes).
pub fn renewal_due(
    expiry: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    margin: Duration,
) -> bool {
    let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
    expiry.is_some_and(|e| now.checked_add_signed(margin).is_none_or(|t| t >= e))
}

/// Fresh Secret data for a running mover (the same repository, newly vended access).
#[async_trait::async_trait]
pub trait Renewal: Send + Sync {
    async fn secret(&self) -> Result<BTreeMap<String, String>, String>;
}

/// What the mover's Secret holds, and how to renew it while the mover runs.
#[derive(Clone)]
pub struct MoverSecret {
    pub data: BTreeMap<String, String>,
    pub renewal: Option<Arc<dyn Renewal>>,
    /// See [`renewal_due`].
    pub margin: Duration,
}

impl MoverSecret {
    pub fn has_credentials(&self) -> bool {
        self.data.contains_key(CREDENTIALS_KEY)
    }
}

/// How soon a failed (or too early) renewal is tried again.
const RENEW_RETRY: Duration = Duration::from_secs(60);

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
    /// Whether its Secret holds bucket credentials ([`CREDENTIALS_KEY`]); without, the
    /// mover uses its pod's identity.
    pub credentials_file: bool,
    /// A host directory mounted at the same path (a local-filesystem repository).
    pub host_path: Option<String>,
    pub service_account: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The Job's `activeDeadlineSeconds`.
    pub deadline: Duration,
}

/// The mover's Job. Secret values come from the Secret named like the Job, mounted as
/// files at [`SECRET_DIR`] (not environment variables: a mounted Secret is refreshed by the
/// kubelet, so renewed credentials reach a running mover), never from the Job's own spec.
/// `HOSTNAME` is the Job's name: the repository records it with the snapshot, which is how
/// the agent finds the snapshot (and its statistics) the mover made.
pub fn job_manifest(m: &Mover) -> Value {
    let mut env: Vec<Value> = m.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    env.push(json!({"name": "HOSTNAME", "value": m.name}));
    env.push(json!({"name": PASSWORD_FILE_ENV, "value": format!("{SECRET_DIR}/{PASSWORD_KEY}")}));
    if m.credentials_file {
        env.push(json!({"name": CREDENTIALS_FILE_ENV, "value": format!("{SECRET_DIR}/{CREDENTIALS_KEY}")}));
    }
    let mut volumes = vec![json!({"name": "volume", "persistentVolumeClaim": {"claimName": m.claim}})];
    let mut mounts = vec![
        json!({"name": "tmp", "mountPath": "/tmp"}),
        // The whole volume, not subPath items: only those are kept up to date.
        json!({"name": "secret", "mountPath": SECRET_DIR, "readOnly": true}),
    ];
    volumes.push(json!({"name": "tmp", "emptyDir": {}}));
    volumes.push(json!({"name": "secret", "secret": {"secretName": m.name, "defaultMode": 0o400}}));
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

/// The Secret the mover's files come from, owned by its Job (the garbage collector
/// removes it with the Job should the agent not).
pub fn secret_manifest(m: &Mover, data: &BTreeMap<String, String>, job_uid: Option<&str>) -> Value {
    let mut meta = json!({"name": m.name, "namespace": m.namespace, "labels": m.labels});
    if let Some(uid) = job_uid {
        meta["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": m.name, "uid": uid}]);
    }
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "stringData": data})
}

/// A claim of `size_bytes` in block mode, optionally filled from a VolumeSnapshot (in
/// its namespace). `access_modes`: `ReadWriteOnce` when none are given.
pub fn claim_manifest(
    namespace: &str,
    name: &str,
    storage_class: Option<&str>,
    size_bytes: u64,
    from_snapshot: Option<&str>,
    access_modes: &[String],
    labels: &BTreeMap<String, String>,
) -> Value {
    let modes: Vec<&str> = if access_modes.is_empty() {
        vec!["ReadWriteOnce"]
    } else {
        access_modes.iter().map(String::as_str).collect()
    };
    let mut spec = json!({
        "accessModes": modes,
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

/// Waits until a deleted claim is gone (its protection finalizer removed once no pod uses it).
pub async fn wait_claim_gone(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<(), String> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match api.get_opt(name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!(claim = %name, error = %e, "reading a deleted claim failed"),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "PersistentVolumeClaim {namespace}/{name} still exists {timeout:?} after its deletion"
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Runs the mover to its end (or `timeout`), renewing its credentials when due, then
/// deletes its Job (with its pods) and Secret.
pub async fn run(
    client: &Client,
    m: &Mover,
    secret: &MoverSecret,
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
    secret: &MoverSecret,
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
    let secret_obj: Secret =
        serde_json::from_value(secret_manifest(m, &secret.data, uid)).map_err(|e| e.to_string())?;
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
    let mut expiry = credentials_expiry(&secret.data);
    let mut next_renewal = tokio::time::Instant::now();
    loop {
        if let Some(renewal) = &secret.renewal
            && tokio::time::Instant::now() >= next_renewal
            && renewal_due(expiry, std::time::SystemTime::now().into(), secret.margin)
        {
            next_renewal = tokio::time::Instant::now() + RENEW_RETRY;
            match renew(&secrets, &m.name, renewal.as_ref()).await {
                Ok(new_expiry) => {
                    tracing::info!(job = %m.name, expires = ?new_expiry, "mover credentials renewed");
                    expiry = new_expiry;
                }
                Err(e) => tracing::warn!(job = %m.name, error = %e, "renewing the mover's credentials failed"),
            }
        }
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

/// Replaces the mover's Secret data with renewed data; returns the new expiry. The
/// kubelet brings the new files into the running mover.
async fn renew(
    secrets: &Api<Secret>,
    name: &str,
    renewal: &dyn Renewal,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let data = renewal.secret().await?;
    let expiry = credentials_expiry(&data);
    // `stringData` is merged into `data` by the apiserver: every key is replaced.
    let patch = json!({"stringData": data});
    secrets
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| format!("updating the mover's Secret {name}: {e}"))?;
    Ok(expiry)
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
            credentials_file: true,
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
        // The Secret as files, the whole volume (subPath mounts are never refreshed).
        assert!(c.get("envFrom").is_none(), "{c}");
        let secret_volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["secret"]["secretName"] == "arca-copy-x")
            .unwrap();
        let mount = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == secret_volume["name"])
            .unwrap();
        assert_eq!(mount["mountPath"], SECRET_DIR);
        assert_eq!(mount["readOnly"], true);
        assert!(mount.get("subPath").is_none());
        let env = c["env"].as_array().unwrap();
        let var = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].clone());
        assert_eq!(var("HOSTNAME"), Some(json!("arca-copy-x")));
        assert_eq!(
            var(PASSWORD_FILE_ENV),
            Some(json!(format!("{SECRET_DIR}/{PASSWORD_KEY}")))
        );
        assert_eq!(
            var(CREDENTIALS_FILE_ENV),
            Some(json!(format!("{SECRET_DIR}/{CREDENTIALS_KEY}")))
        );
        assert!(!job.to_string().contains("ARCA_REPO_PASSWORD\""));
        assert!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["hostPath"]["path"] == "/srv/backups")
        );
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 3600);
        assert_eq!(pod["restartPolicy"], "Never");
        let mut no_host = mover(None);
        no_host.credentials_file = false;
        let no_host = job_manifest(&no_host);
        assert!(!no_host.to_string().contains("hostPath"));
        assert!(
            !no_host.to_string().contains(CREDENTIALS_FILE_ENV),
            "without keys the pod's identity"
        );
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
        let c = claim_manifest("ns", "tmp", Some("fast"), 10, Some("snap"), &[], &BTreeMap::new());
        assert_eq!(c["spec"]["volumeMode"], "Block");
        assert_eq!(c["spec"]["accessModes"], json!(["ReadWriteOnce"]));
        assert_eq!(c["spec"]["storageClassName"], "fast");
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "1048576");
        assert_eq!(c["spec"]["dataSource"]["kind"], "VolumeSnapshot");
        assert_eq!(c["spec"]["dataSource"]["name"], "snap");
        let plain = claim_manifest(
            "ns",
            "tmp",
            None,
            1 << 30,
            None,
            &["ReadWriteMany".into()],
            &BTreeMap::new(),
        );
        assert!(plain["spec"].get("dataSource").is_none() && plain["spec"].get("storageClassName").is_none());
        assert_eq!(plain["spec"]["accessModes"], json!(["ReadWriteMany"]));
    }

    #[test]
    fn credentials_are_renewed_once_within_the_margin_of_their_expiry() {
        let now = chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let margin = Duration::from_secs(15 * 60);
        let at = |mins: i64| Some(now + chrono::Duration::minutes(mins));
        assert!(!renewal_due(at(60), now, margin));
        assert!(!renewal_due(at(16), now, margin));
        assert!(renewal_due(at(15), now, margin));
        assert!(renewal_due(at(1), now, margin));
        assert!(renewal_due(at(-5), now, margin), "expired: renew all the more");
        assert!(!renewal_due(None, now, margin), "nothing that expires");
        assert!(renewal_due(at(60 * 24), now, Duration::MAX), "a margin past any expiry");
    }

    #[test]
    fn the_expiry_is_read_from_the_secret_data_and_never_printed_with_the_keys() {
        let file = CredentialsFile {
            version: 1,
            access_key_id: "ASIA1".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("tok".into()),
            expiration: chrono::DateTime::from_timestamp(1_800_000_000, 0),
        };
        let json = serde_json::to_string(&file).unwrap();
        assert!(
            json.contains("\"AccessKeyId\":\"ASIA1\"") && json.contains("\"Version\":1"),
            "{json}"
        );
        let data = BTreeMap::from([(CREDENTIALS_KEY.to_string(), json)]);
        assert_eq!(credentials_expiry(&data), file.expiration);
        assert_eq!(credentials_expiry(&BTreeMap::new()), None);
        assert!(!format!("{file:?}").contains("very-secret") && !format!("{file:?}").contains("tok"));
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
