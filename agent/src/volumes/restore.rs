//! The PV part of a restore, as the resource restore's [`ClaimData`]: each claim the
//! recovery point holds volume data for is created once, by the resource restore, with its
//! original name (in the renamed namespace, with the mapped class) and a `dataSource`
//! VolumeSnapshot prepared here:
//!
//! 1. the backup's own VolumeSnapshot, when restoring into its cluster and namespace;
//! 2. an import of it (a `Retain` VolumeSnapshotContent on the same storage snapshot, and a
//!    VolumeSnapshot bound to it) in the target namespace of the same cluster;
//! 3. otherwise from the repository: a temporary block claim, a mover Job running
//!    `arca-agent volume restore` onto it, and a VolumeSnapshot of that claim (which is
//!    then deleted). The snapshot stays (labelled with the restore) until the claim is
//!    provisioned from it; [`VolumeRestore::finish`] removes those whose claim is bound.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use arca_core::ports::credentials::DestinationAccess;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

use super::mover::{self, DEVICE_PATH, Mover};
use super::{RESTORE_LABEL, Repo, VolumeOptions, VolumeRecord, labels, object_name, snapshot, snapshot_data_source};
use crate::resources::restore::ClaimData;

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
pub fn restore_args(repo_url: &str, volume: &str, snapshot_id: &str) -> Vec<String> {
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
    .iter()
    .map(|s| s.to_string())
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
    /// (namespace, snapshot, claim) of snapshots made for this restore.
    made: Mutex<Vec<(String, String, String)>>,
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
            made: Mutex::new(Vec::new()),
        }
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
        let imported = snapshot::imported_snapshot_manifest(target_ns, &name, &name, &snap.class, &labels);
        snapshot::create(&self.client, &imported).await?;
        self.note(format!(
            "PVC {target_ns}/{}: from VolumeSnapshot {}/{} (imported as {target_ns}/{name})",
            record.pvc, record.namespace, snap.name
        ));
        Ok(snapshot_data_source(&name))
    }

    /// The driver behind the claim's storage class (its own, or the target's default).
    async fn target_driver(&self, claim: &Value) -> Result<String, String> {
        let classes: Api<StorageClass> = Api::all(self.client.clone());
        let class = match claim.pointer("/spec/storageClassName").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => classes
                .get_opt(name)
                .await
                .map_err(|e| format!("reading StorageClass {name}: {e}"))?
                .ok_or_else(|| format!("the target has no StorageClass {name}"))?,
            _ => classes
                .list(&ListParams::default())
                .await
                .map_err(|e| format!("listing StorageClasses: {e}"))?
                .items
                .into_iter()
                .find(|c| {
                    c.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                        .is_some_and(|v| v == "true")
                })
                .ok_or("the claim names no StorageClass and the target has no default one")?,
        };
        Ok(class.provisioner)
    }

    async fn source_from_repository(
        &self,
        record: &VolumeRecord,
        claim: &Value,
        target_ns: &str,
    ) -> Result<Value, String> {
        let copy = record.copy.as_ref().ok_or("no copy")?;
        let (access, key) = self.destination.as_ref().ok_or("no destination")?;
        let repo = Repo::new(access, &copy.repository, key)?;
        let driver = self.target_driver(claim).await?;
        let classes = snapshot::list_classes(&self.client).await?;
        let class = snapshot::choose_class(&driver, &classes)
            .ok_or_else(|| format!("the target has no VolumeSnapshotClass for the CSI driver {driver}"))?
            .name
            .clone();
        let key = format!("{}/{}/{}/{target_ns}", self.restore_id, record.namespace, record.pvc);
        let name = object_name("arca-restore", &record.pvc, &key);
        let storage_class = claim.pointer("/spec/storageClassName").and_then(Value::as_str);
        let size = copy.size.max(record.size_bytes);
        let temp = mover::claim_manifest(
            target_ns,
            &name,
            storage_class,
            size,
            None,
            &self.labels("restore-target"),
        );
        mover::create_claim(&self.client, &temp).await?;
        let m = Mover {
            name: name.clone(),
            namespace: target_ns.to_string(),
            image: self.opts.mover_image.clone(),
            args: restore_args(&repo.url(), &copy.volume, &copy.snapshot_id),
            claim: name.clone(),
            env: repo.mover_env(),
            host_path: repo.host_path(),
            service_account: self.opts.mover_service_account.clone(),
            labels: self.labels("mover"),
            deadline: self.opts.mover_timeout,
        };
        let result = async {
            mover::run(
                &self.client,
                &m,
                &repo.mover_secret(),
                self.opts.mover_timeout,
                self.opts.poll_every,
            )
            .await?;
            let snap = snapshot::snapshot_manifest(target_ns, &name, &name, &class, &self.labels("restore-source"));
            snapshot::create(&self.client, &snap).await?;
            let ready = snapshot::wait_ready(
                &self.client,
                target_ns,
                &name,
                self.opts.snapshot_timeout,
                self.opts.poll_every,
            )
            .await?;
            let block = claim.pointer("/spec/volumeMode").and_then(Value::as_str) == Some("Block");
            if !block && let Some(content) = &ready.content {
                snapshot::allow_mode_change(&self.client, content).await?;
            }
            Ok::<_, String>(())
        }
        .await;
        // The temporary claim goes either way: the snapshot holds the data now.
        if let Err(e) = mover::delete_claim(&self.client, target_ns, &name).await {
            tracing::warn!(claim = %name, error = %e, "removing a temporary claim failed");
        }
        if let Err(e) = result {
            let _ = snapshot::delete(&self.client, target_ns, &name).await;
            return Err(e);
        }
        let claim_name = claim
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Ok(mut made) = self.made.lock() {
            made.push((target_ns.to_string(), name.clone(), claim_name.to_string()));
        }
        self.note(format!(
            "PVC {target_ns}/{}: from repository snapshot {} of {} through VolumeSnapshot {target_ns}/{name}",
            record.pvc,
            &copy.snapshot_id[..copy.snapshot_id.len().min(12)],
            copy.volume
        ));
        Ok(snapshot_data_source(&name))
    }

    /// Removes the snapshots made from the repository once their claims are bound
    /// (provisioned from them), waiting up to `claim_bind_timeout` for the provisioner (or,
    /// with `WaitForFirstConsumer`, for the restored Pods); the others are kept, and said so.
    pub async fn finish(&self) {
        let mut pending = self.made.lock().map(|m| m.clone()).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + self.opts.claim_bind_timeout;
        loop {
            let mut still = Vec::new();
            for (ns, snap, claim) in pending {
                let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
                let bound = matches!(
                    claims.get_opt(&claim).await,
                    Ok(Some(c)) if c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                );
                if bound {
                    let _ = snapshot::delete(&self.client, &ns, &snap).await;
                } else {
                    still.push((ns, snap, claim));
                }
            }
            pending = still;
            if pending.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(self.opts.poll_every).await;
        }
        let kept = pending.len();
        if kept > 0 {
            self.note(format!(
                "{kept} VolumeSnapshot(s) made from the repository are kept until their claims are provisioned from \
                 them (labelled {RESTORE_LABEL}={} and {}=restore-source); delete them once the claims are bound",
                super::label_value(&self.restore_id),
                super::ROLE_LABEL
            ));
        }
    }
}

#[async_trait::async_trait]
impl ClaimData for VolumeRestore {
    fn provides(&self, source_namespace: &str, name: &str) -> bool {
        self.records
            .contains_key(&(source_namespace.to_string(), name.to_string()))
    }

    fn provides_pv(&self, pv: &str) -> bool {
        self.pvs.contains(pv)
    }

    async fn prepare(&self, source_namespace: &str, claim: &Value) -> Result<Value, String> {
        let name = claim
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let target_ns = claim
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let record = self
            .records
            .get(&(source_namespace.to_string(), name.to_string()))
            .ok_or("no volume data recorded")?;
        let mut failures = Vec::new();
        for source in plan(record, self.same_cluster, self.destination.is_some()) {
            let attempt = match source {
                Source::Snapshot => self.source_from_snapshot(record, target_ns).await,
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
    fn the_mover_restores_onto_the_device() {
        assert_eq!(
            restore_args("s3://b/p", "ns/data", "abcd").join(" "),
            format!("volume restore --repo s3://b/p --volume ns/data --snapshot abcd --target {DEVICE_PATH} --sync")
        );
    }
}
