//! The PV part of a restore, as the resource restore's [`ClaimData`]: each claim the
//! recovery point holds volume data for is created once, by the resource restore, with its
//! original name (in the renamed namespace, with the mapped class) and a `dataSource`
//! VolumeSnapshot prepared here:
//!
//! 1. the backup's own VolumeSnapshot, when restoring into its cluster and namespace;
//! 2. an import of it (a `Retain` VolumeSnapshotContent on the same storage snapshot, and a
//!    VolumeSnapshot bound to it) in the target namespace of the same cluster;
//! 3. otherwise from the repository, in the agent's namespace (Velero's generic restore
//!    does the same): a temporary block claim of the target's class, access modes and
//!    size, and a mover Job running `arca-agent volume restore` onto it. Its volume then
//!    changes hands: reclaim policy `Retain`, the temporary claim deleted, the volume
//!    pre-bound (`claimRef`) to the restored claim, which is created with its
//!    `volumeName`. [`VolumeRestore::finish`] waits for the binding and gives the volume
//!    back the reclaim policy it was provisioned with. Nothing of the mover (its Job, its
//!    Secret) is ever in the application's namespace.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arca_core::ports::credentials::DestinationAccess;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::mover::{self, DEVICE_PATH, Mover};
use super::{
    RESTORE_LABEL, Repo, RepoAccess, VolumeOptions, VolumeRecord, already_exists, labels, not_found, object_name,
    snapshot, snapshot_data_source,
};
use crate::resources::restore::{ClaimData, ClaimSource, claim_name_and_namespace};

/// Where a claim's data comes from, in the order tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The backup's VolumeSnapshot (in the source cluster).
    Snapshot,
    /// The copy in the repository.
    Repository,
}

/// The sources to try for a record (pure): the snapshot first when it is in this
/// cluster, then the copy.
pub fn plan(record: &VolumeRecord, same_cluster: bool, repository_reachable: bool) -> Vec<Source> {
    let mut sources = Vec::new();
    if same_cluster && record.snapshot.is_some() {
        sources.push(Source::Snapshot);
    }
    if record.copy.is_some() && repository_reachable {
        sources.push(Source::Repository);
    }
    sources
}

/// The mover's command line for a restore.
pub fn restore_args(repo_url: &str, volume: &str, snapshot_id: &str, verify: bool) -> Vec<String> {
    let verify = if verify { Some("--verify") } else { None };
    [
        "volume",
        "restore",
        "--repo",
        repo_url,
        "--volume",
        volume,
        "--snapshot",
        snapshot_id,
        "--target",
        DEVICE_PATH,
        "--sync",
    ]
    .into_iter()
    .chain(verify)
    .map(str::to_string)
    .collect()
}

/// The volume restore of one restore job.
pub struct VolumeRestore {
    client: Client,
    opts: VolumeOptions,
    job_id: String,
    restore_id: String,
    records: HashMap<(String, String), VolumeRecord>,
    pvs: HashSet<String>,
    same_cluster: bool,
    /// The recovery point's destination and the org's key, to open its repository.
    destination: Option<(DestinationAccess, [u8; 32])>,
    notes: Mutex<Vec<String>>,
    /// Volumes filled from the repository and handed over to their claims.
    handed_over: Mutex<Vec<HandedOver>>,
    /// Renews the movers' credentials while they run.
    renewal: Option<Arc<dyn RepoAccess>>,
    /// Claims rebuilt from the point's EBS snapshots (a linked cluster).
    ebs: Option<crate::ebs::EbsRestore>,
    /// A verification: copies are read back after their restore and compared with the
    /// backup's record, and a claim with a copy comes from it only.
    verify_data: bool,
    /// Volumes whose restored data compared equal.
    verified: std::sync::atomic::AtomicU64,
}

/// A volume a mover filled, pre-bound to the claim the restore creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandedOver {
    pub namespace: String,
    pub claim: String,
    pub pv: String,
    /// The reclaim policy it was provisioned with (`Retain` while it changes hands).
    pub policy: String,
}

impl VolumeRestore {
    pub fn new(
        client: Client,
        opts: VolumeOptions,
        job_id: &str,
        restore_id: &str,
        records: &[VolumeRecord],
        same_cluster: bool,
        destination: Option<(DestinationAccess, [u8; 32])>,
    ) -> Self {
        VolumeRestore {
            client,
            opts,
            job_id: job_id.to_string(),
            restore_id: restore_id.to_string(),
            records: records
                .iter()
                .filter(|r| !plan(r, same_cluster, destination.is_some()).is_empty())
                .map(|r| ((r.namespace.clone(), r.pvc.clone()), r.clone()))
                .collect(),
            pvs: records.iter().filter_map(|r| r.pv.clone()).collect(),
            same_cluster,
            destination,
            notes: Mutex::new(Vec::new()),
            handed_over: Mutex::new(Vec::new()),
            renewal: None,
            ebs: None,
            verify_data: false,
            verified: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// For a verification: every copy is restored with `--verify` (read back and compared
    /// with the backup's record by the mover), never replaced by its snapshot.
    pub fn verifying_data(mut self) -> Self {
        self.verify_data = true;
        self
    }

    /// How many volumes were read back equal to their backup ([`Self::verifying_data`]).
    pub fn volumes_verified(&self) -> u64 {
        self.verified.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Claims on EBS come from new volumes the control plane (`api`) makes from these
    /// EBS snapshots of the point.
    pub fn with_ebs(
        mut self,
        api: crate::protocol::AgentClient,
        job: arca_core::ids::JobId,
        snapshots: &[arca_core::model::cloud::ebs::EbsSnapshotRef],
    ) -> Self {
        let labels = self.labels("restore-volume");
        self.ebs = Some(crate::ebs::EbsRestore::new(
            self.client.clone(),
            api,
            job,
            &self.restore_id,
            snapshots,
            labels,
        ));
        self
    }

    /// Renews the movers' credentials through `access` while they run.
    pub fn with_renewal(mut self, access: Arc<dyn RepoAccess>) -> Self {
        self.renewal = Some(access);
        self
    }

    fn note(&self, line: String) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(line);
        }
    }

    /// What happened, for the job's log.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// Records whose data none of the sources can bring (no snapshot here, no copy).
    pub fn unrestorable(records: &[VolumeRecord], same_cluster: bool, repository: bool) -> Vec<String> {
        records
            .iter()
            .filter(|r| plan(r, same_cluster, repository).is_empty())
            .map(|r| format!("{}/{}", r.namespace, r.pvc))
            .collect()
    }

    fn labels(&self, role: &str) -> std::collections::BTreeMap<String, String> {
        let mut l = labels(&self.job_id, role);
        l.insert(RESTORE_LABEL.to_string(), super::label_value(&self.restore_id));
        l
    }

    async fn source_from_snapshot(&self, record: &VolumeRecord, target_ns: &str) -> Result<Value, String> {
        let snap = record.snapshot.as_ref().ok_or("no snapshot")?;
        let source = snapshot::snapshots(&self.client, &record.namespace)
            .get_opt(&snap.name)
            .await
            .map_err(|e| format!("reading VolumeSnapshot {}/{}: {e}", record.namespace, snap.name))?
            .ok_or_else(|| format!("VolumeSnapshot {}/{} is gone", record.namespace, snap.name))?;
        if target_ns == record.namespace {
            return Ok(snapshot_data_source(&snap.name));
        }
        // Another namespace: import the same storage snapshot there.
        let handle = match source
            .data
            .pointer("/status/boundVolumeSnapshotContentName")
            .and_then(Value::as_str)
        {
            Some(content) => snapshot::content_handle(&self.client, content).await,
            None => None,
        }
        .or_else(|| snap.handle.clone())
        .ok_or_else(|| {
            format!(
                "VolumeSnapshot {}/{} has no snapshot handle to import",
                record.namespace, snap.name
            )
        })?;
        let key = format!("{}/{}/{}/{target_ns}", self.restore_id, record.namespace, record.pvc);
        let name = object_name("arca-import", &record.pvc, &key);
        let labels = self.labels("restore-import");
        let content =
            snapshot::imported_content_manifest(&name, &record.driver, &handle, &snap.class, target_ns, &name, &labels);
        snapshot::create_content(&self.client, &content).await?;
        let imported = snapshot::snapshot_manifest(
            target_ns,
            &name,
            snapshot::SnapshotSource::Content(&name),
            &snap.class,
            &labels,
        );
        snapshot::create(&self.client, &imported).await?;
        self.note(format!(
            "PVC {target_ns}/{}: from VolumeSnapshot {}/{} (imported as {target_ns}/{name})",
            record.pvc, record.namespace, snap.name
        ));
        Ok(snapshot_data_source(&name))
    }

    async fn source_from_repository(
        &self,
        record: &VolumeRecord,
        claim: &Value,
        target_ns: &str,
    ) -> Result<ClaimSource, String> {
        let copy = record.copy.as_ref().ok_or("no copy")?;
        let (access, key) = self.destination.as_ref().ok_or("no destination")?;
        let repo = Repo::new(access, &copy.repository, key)?;
        let target = Target::of(claim, target_ns);
        let namespace = self.opts.mover_namespace(&self.client);
        let key = format!("{}/{}/{}/{target_ns}", self.restore_id, record.namespace, record.pvc);
        let name = object_name("arca-restore", &record.pvc, &key);
        let size = copy.size.max(record.size_bytes).max(target.size_bytes);
        let temp = mover::claim_manifest(
            &namespace,
            &name,
            target.storage_class.as_deref(),
            size,
            None,
            &target.access_modes,
            &self.labels("restore-target"),
        );
        mover::create_claim(&self.client, &temp).await?;
        let secret = super::mover_secret(&self.opts, &repo, self.renewal.as_ref());
        let m = Mover {
            name: name.clone(),
            namespace: namespace.clone(),
            image: self.opts.mover_image.clone(),
            args: restore_args(&repo.url(), &copy.volume, &copy.snapshot_id, self.verify_data),
            claim: name.clone(),
            env: repo.mover_env(),
            credentials_file: secret.has_credentials(),
            host_path: repo.host_path(),
            service_account: self.opts.mover_service_account.clone(),
            labels: self.labels("mover"),
            deadline: self.opts.mover_timeout,
        };
        let handed = match mover::run(&self.client, &m, &secret, self.opts.mover_timeout, self.opts.poll_every).await {
            Ok(()) => self.hand_over(&namespace, &name, &target, &key).await,
            Err(e) => Err(e),
        };
        let handed = match handed {
            Ok(h) => h,
            Err(e) => {
                // Its volume goes with it (the policy it was provisioned with).
                if let Err(d) = mover::delete_claim(&self.client, &namespace, &name).await {
                    tracing::warn!(claim = %name, error = %d, "removing a temporary claim failed");
                }
                return Err(e);
            }
        };
        if self.verify_data {
            self.verified.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.note(format!(
            "PVC {target_ns}/{}: from repository snapshot {}{} of {} onto volume {}",
            record.pvc,
            &copy.snapshot_id[..copy.snapshot_id.len().min(12)],
            if self.verify_data {
                " (read back equal to the backup)"
            } else {
                ""
            },
            copy.volume,
            handed.pv
        ));
        let pv = handed.pv.clone();
        if let Ok(mut list) = self.handed_over.lock() {
            list.push(handed);
        }
        Ok(ClaimSource::Volume(pv))
    }

    /// Hands the volume of the filled temporary claim over to the restored claim: `Retain`
    /// (so deleting the temporary claim keeps it), the temporary claim deleted, then the
    /// volume pre-bound to the target claim. A PV's `volumeMode` cannot change, so a
    /// filesystem target gets a new PV object for the same volume (the temporary one is
    /// always a block claim) and the old object is deleted (`Retain`: the volume stays).
    async fn hand_over(&self, namespace: &str, temp: &str, target: &Target, key: &str) -> Result<HandedOver, String> {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv_name = claims
            .get(temp)
            .await
            .map_err(|e| format!("reading the temporary claim {namespace}/{temp}: {e}"))?
            .spec
            .and_then(|s| s.volume_name)
            .ok_or_else(|| format!("the temporary claim {namespace}/{temp} has no volume"))?;
        let pv = pvs
            .get(&pv_name)
            .await
            .map_err(|e| format!("reading PersistentVolume {pv_name}: {e}"))?;
        let policy = pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.clone())
            .unwrap_or_else(|| "Delete".into());
        set_reclaim_policy(&pvs, &pv_name, "Retain").await?;
        let moved = async {
            mover::delete_claim(&self.client, namespace, temp).await?;
            mover::wait_claim_gone(
                &self.client,
                namespace,
                temp,
                self.opts.claim_bind_timeout.max(std::time::Duration::from_secs(60)),
                self.opts.poll_every,
            )
            .await?;
            let mode = pv
                .spec
                .as_ref()
                .and_then(|s| s.volume_mode.clone())
                .unwrap_or_else(|| "Filesystem".into());
            if mode == target.volume_mode {
                // The temporary claim's binding mark goes too (as Velero's rebind does):
                // the controller did not bind the restored claim.
                let patch = json!({
                    "metadata": {"annotations": {"pv.kubernetes.io/bound-by-controller": null}},
                    "spec": {"claimRef": claim_ref(&target.namespace, &target.name)},
                });
                pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| {
                        format!(
                            "binding PersistentVolume {pv_name} to {}/{}: {e}",
                            target.namespace, target.name
                        )
                    })?;
                return Ok(pv_name.clone());
            }
            let new_name = object_name("arca-pv", &target.name, key);
            let manifest = rebound_volume(&pv, &new_name, target, &self.labels("restore-volume"))?;
            let obj: PersistentVolume = serde_json::from_value(manifest).map_err(|e| e.to_string())?;
            match pvs.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(e) if already_exists(&e) => {}
                Err(e) => return Err(format!("creating PersistentVolume {new_name}: {e}")),
            }
            // From here the new object holds the volume: the old one only goes.
            if let Err(e) = pvs.delete(&pv_name, &DeleteParams::default()).await
                && !not_found(&e)
            {
                self.note(format!(
                    "WARNING: PersistentVolume {pv_name} (Retain, released) could not be deleted: {e}; its volume is \
                     now {new_name}'s, delete only the object"
                ));
            }
            Ok(new_name)
        }
        .await;
        match moved {
            Ok(pv) => Ok(HandedOver {
                namespace: target.namespace.clone(),
                claim: target.name.clone(),
                pv,
                policy,
            }),
            Err(e) => {
                // Still the temporary claim's (or released): its own policy again.
                let _ = set_reclaim_policy(&pvs, &pv_name, &policy).await;
                Err(e)
            }
        }
    }

    /// Gives the volumes filled from the repository back their reclaim policy once their
    /// claims are bound to them, waiting up to `claim_bind_timeout` for the PV controller;
    /// those whose claim did not bind keep `Retain`, and the job log says so.
    pub async fn finish(&self) {
        let mut pending = self.handed_over.lock().map(|m| m.clone()).unwrap_or_default();
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let deadline = tokio::time::Instant::now() + self.opts.claim_bind_timeout;
        loop {
            let mut still = Vec::new();
            for h in pending {
                let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &h.namespace);
                let bound = matches!(
                    claims.get_opt(&h.claim).await,
                    Ok(Some(c)) if c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                        && c.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(h.pv.as_str())
                );
                if bound && set_reclaim_policy(&pvs, &h.pv, &h.policy).await.is_ok() {
                    continue;
                }
                still.push(h);
            }
            pending = still;
            if pending.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(self.opts.poll_every).await;
        }
        for h in pending {
            self.note(format!(
                "WARNING: PVC {}/{} is not bound to its restored volume {} yet; the volume keeps reclaim policy Retain \
                 (set it back to {} once the claim is bound)",
                h.namespace, h.claim, h.pv, h.policy
            ));
        }
    }
}

/// What the restored claim asks of its volume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    pub storage_class: Option<String>,
    pub access_modes: Vec<String>,
    pub volume_mode: String,
    pub size_bytes: u64,
}

impl Target {
    /// From the claim as the resource restore will create it.
    pub fn of(claim: &Value, namespace: &str) -> Target {
        Target {
            namespace: namespace.to_string(),
            name: claim
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            storage_class: claim
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            access_modes: claim
                .pointer("/spec/accessModes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            volume_mode: claim
                .pointer("/spec/volumeMode")
                .and_then(Value::as_str)
                .unwrap_or("Filesystem")
                .to_string(),
            size_bytes: claim
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(super::parse_quantity)
                .unwrap_or(0),
        }
    }
}

/// A `claimRef` pre-binding a volume to a claim not created yet: no `uid` (the PV
/// controller binds it to the claim of that name once it exists), and whatever of the
/// old claim's reference a merge patch would keep is removed.
pub fn claim_ref(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace, "name": name,
        "uid": null, "resourceVersion": null, "fieldPath": null,
    })
}

/// A PV object for the same volume as `pv`, of the target's volume mode, pre-bound to the
/// target claim, `Retain` until [`VolumeRestore::finish`] gives it `pv`'s policy. The
/// provisioner's annotations are kept: they are how it deletes the volume later.
pub fn rebound_volume(
    pv: &PersistentVolume,
    name: &str,
    target: &Target,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<Value, String> {
    let mut spec =
        serde_json::to_value(pv.spec.as_ref().ok_or("the volume has no spec")?).map_err(|e| e.to_string())?;
    spec["volumeMode"] = json!(target.volume_mode);
    spec["persistentVolumeReclaimPolicy"] = json!("Retain");
    spec["claimRef"] = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                              "namespace": target.namespace, "name": target.name});
    let annotations: serde_json::Map<String, Value> = pv
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "pv.kubernetes.io/bound-by-controller")
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    Ok(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": spec,
    }))
}

async fn set_reclaim_policy(pvs: &Api<PersistentVolume>, name: &str, policy: &str) -> Result<(), String> {
    let patch = json!({"spec": {"persistentVolumeReclaimPolicy": policy}});
    pvs.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("setting PersistentVolume {name}'s reclaim policy to {policy}: {e}"))
}

#[async_trait::async_trait]
impl ClaimData for VolumeRestore {
    fn provides(&self, source_namespace: &str, name: &str) -> bool {
        self.ebs.as_ref().is_some_and(|e| e.provides(source_namespace, name))
            || self
                .records
                .contains_key(&(source_namespace.to_string(), name.to_string()))
    }

    fn provides_pv(&self, pv: &str) -> bool {
        self.ebs.as_ref().is_some_and(|e| e.provides_pv(pv)) || self.pvs.contains(pv)
    }

    async fn prepare(&self, source_namespace: &str, claim: &Value) -> Result<ClaimSource, String> {
        if let Some(ebs) = &self.ebs
            && ebs.provides(
                source_namespace,
                claim
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )
        {
            let (source, line) = ebs.prepare(source_namespace, claim).await?;
            self.note(line);
            return Ok(source);
        }
        let (name, target_ns) = claim_name_and_namespace(claim);
        let record = self
            .records
            .get(&(source_namespace.to_string(), name.to_string()))
            .ok_or("no volume data recorded")?;
        let mut failures = Vec::new();
        let mut sources = plan(record, self.same_cluster, self.destination.is_some());
        if self.verify_data && sources.contains(&Source::Repository) {
            // A snapshot would hide a copy that does not restore.
            sources.retain(|s| *s == Source::Repository);
        }
        for source in sources {
            let attempt = match source {
                Source::Snapshot => self
                    .source_from_snapshot(record, target_ns)
                    .await
                    .map(ClaimSource::DataSource),
                Source::Repository => self.source_from_repository(record, claim, target_ns).await,
            };
            match attempt {
                Ok(data_source) => {
                    if source == Source::Snapshot && target_ns == record.namespace {
                        self.note(format!("PVC {target_ns}/{name}: from its VolumeSnapshot"));
                    }
                    return Ok(data_source);
                }
                Err(e) => failures.push(format!("{source:?}: {e}")),
            }
        }
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::{CsiSnapshotRecord, VolumeCopyRecord};

    fn record(snapshot: bool, copy: bool) -> VolumeRecord {
        VolumeRecord {
            namespace: "ns".into(),
            pvc: "data".into(),
            snapshot: snapshot.then(CsiSnapshotRecord::default),
            copy: copy.then(VolumeCopyRecord::default),
            ..Default::default()
        }
    }

    #[test]
    fn the_local_snapshot_comes_first_then_the_copy() {
        assert_eq!(
            plan(&record(true, true), true, true),
            [Source::Snapshot, Source::Repository]
        );
        assert_eq!(plan(&record(true, true), false, true), [Source::Repository]);
        assert_eq!(plan(&record(false, true), true, true), [Source::Repository]);
        assert_eq!(plan(&record(true, false), true, false), [Source::Snapshot]);
        assert!(plan(&record(true, false), false, true).is_empty());
        assert!(plan(&record(false, true), true, false).is_empty());
    }

    #[test]
    fn unrestorable_claims_are_named() {
        let records = [record(true, false), record(false, true)];
        assert_eq!(VolumeRestore::unrestorable(&records, false, true), ["ns/data"]);
        assert!(VolumeRestore::unrestorable(&records, true, true).is_empty());
    }

    #[test]
    fn the_target_claim_says_what_its_volume_must_be() {
        let claim = json!({
            "metadata": {"name": "data", "namespace": "shop-r"},
            "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOncePod"],
                     "resources": {"requests": {"storage": "2Gi"}}},
        });
        let t = Target::of(&claim, "shop-r");
        assert_eq!(
            t,
            Target {
                namespace: "shop-r".into(),
                name: "data".into(),
                storage_class: Some("fast".into()),
                access_modes: vec!["ReadWriteOncePod".into()],
                volume_mode: "Filesystem".into(),
                size_bytes: 2 << 30,
            }
        );
        let block = Target::of(
            &json!({"metadata": {"name": "b"}, "spec": {"volumeMode": "Block", "storageClassName": ""}}),
            "ns",
        );
        assert_eq!((block.volume_mode.as_str(), block.storage_class), ("Block", None));
    }

    #[test]
    fn a_handed_over_volume_is_pre_bound_without_the_old_claims_uid() {
        let r = claim_ref("shop-r", "data");
        assert_eq!(
            (r["namespace"].as_str(), r["name"].as_str()),
            (Some("shop-r"), Some("data"))
        );
        // A merge patch removes what a null names: the temporary claim's uid must go.
        assert!(r["uid"].is_null() && r.as_object().unwrap().contains_key("uid"));
        assert!(r.as_object().unwrap().contains_key("resourceVersion"));
    }

    #[test]
    fn a_filesystem_target_gets_a_pv_of_its_mode_for_the_same_volume() {
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pvc-1", "annotations": {
                "pv.kubernetes.io/provisioned-by": "block.csi.test",
                "pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"volumeMode": "Block", "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                     "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "csi": {"driver": "block.csi.test", "volumeHandle": "vol-1"},
                     "claimRef": {"namespace": "arca-system", "name": "arca-restore-x", "uid": "u1"}},
        }))
        .unwrap();
        let target = Target {
            namespace: "shop-r".into(),
            name: "data".into(),
            volume_mode: "Filesystem".into(),
            ..Target::default()
        };
        let labels = [("a".to_string(), "b".to_string())].into();
        let v = rebound_volume(&pv, "arca-pv-data-1", &target, &labels).unwrap();
        assert_eq!(v["metadata"]["name"], "arca-pv-data-1");
        assert_eq!(v["spec"]["volumeMode"], "Filesystem");
        assert_eq!(v["spec"]["csi"]["volumeHandle"], "vol-1", "the same volume");
        assert_eq!(
            v["spec"]["persistentVolumeReclaimPolicy"], "Retain",
            "until its claim is bound"
        );
        assert_eq!(
            v["spec"]["claimRef"],
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "shop-r", "name": "data"})
        );
        let annotations = &v["metadata"]["annotations"];
        assert_eq!(annotations["pv.kubernetes.io/provisioned-by"], "block.csi.test");
        assert!(annotations.get("pv.kubernetes.io/bound-by-controller").is_none());
        assert_eq!(v["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn the_mover_restores_onto_the_device() {
        assert_eq!(
            restore_args("s3://b/p", "ns/data", "abcd", false).join(" "),
            format!("volume restore --repo s3://b/p --volume ns/data --snapshot abcd --target {DEVICE_PATH} --sync")
        );
        assert!(restore_args("s3://b/p", "ns/data", "abcd", true).ends_with(&["--sync".into(), "--verify".into()]));
    }
}
