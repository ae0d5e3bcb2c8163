//! The PV part of a backup: snapshot each selected claim, and with `snapshotAndCopy` copy
//! each snapshot into the repository through a mover Job.

use arca_core::model::backup::PvMode;
use arca_core::model::recovery::ResourceIssue;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, stream};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::{Api, Client};

use super::mover::{self, DEVICE_PATH, Mover};
use super::snapshot::{self, ClassInfo};
use super::{CsiSnapshotRecord, Repo, VolumeCopyRecord, VolumeOptions, VolumeRecord, labels, object_name};
use crate::resources::archive::PvcRef;

/// Drivers that serve file shares only: their volumes cannot be attached as a block
/// device, so their snapshots are kept but not copied by the block-level data path.
const FILESYSTEM_ONLY_DRIVERS: &[&str] = &[
    "nfs.csi.k8s.io",
    "smb.csi.k8s.io",
    "efs.csi.aws.com",
    "fsx.csi.aws.com",
    "file.csi.azure.com",
    "filestore.csi.storage.gke.io",
    "cephfs.csi.ceph.com",
];

pub fn filesystem_only(driver: &str) -> bool {
    FILESYSTEM_ONLY_DRIVERS.contains(&driver) || driver.ends_with(".cephfs.csi.ceph.com")
}

/// What the PV part of one backup is asked to do.
#[derive(Clone, Debug)]
pub struct BackupRequest {
    /// The job's id: names and labels of what it creates.
    pub job_id: String,
    pub mode: PvMode,
    pub delete_snapshot_after_copy: bool,
    /// The claims the backup selected, minus those handled elsewhere (EBS).
    pub claims: Vec<PvcRef>,
    /// The repository (with `snapshotAndCopy`).
    pub repo: Option<Repo>,
    /// Renews the movers' credentials while they run (vended ones expire within the hour).
    pub renewal: Option<std::sync::Arc<dyn super::RepoAccess>>,
}

/// What the PV part produced.
#[derive(Clone, Debug, Default)]
pub struct VolumesOutcome {
    /// One per claim with a snapshot or a copy, in claim order.
    pub records: Vec<VolumeRecord>,
    /// Claims whose data was not captured by design (no CSI driver, no snapshot class,
    /// unbound, file-share driver with copy).
    pub warnings: Vec<ResourceIssue>,
    /// Claims whose capture failed.
    pub errors: Vec<ResourceIssue>,
    pub messages: Vec<String>,
    /// For the job's counters.
    pub snapshots_attempted: u64,
    pub snapshots_completed: u64,
    pub copies_attempted: u64,
    pub copies_completed: u64,
}

impl VolumesOutcome {
    pub fn snapshot_bytes(&self) -> u64 {
        self.records
            .iter()
            .filter_map(|r| r.snapshot.as_ref().map(|s| s.restore_size.unwrap_or(r.size_bytes)))
            .sum()
    }

    pub fn copy_bytes(&self) -> u64 {
        self.records
            .iter()
            .filter_map(|r| r.copy.as_ref().map(|c| c.bytes_stored))
            .sum()
    }
}

fn issue(pvc: &PvcRef, reason: impl Into<String>) -> ResourceIssue {
    ResourceIssue {
        resource: "persistentvolumeclaims".into(),
        namespace: Some(pvc.namespace.clone()),
        name: pvc.name.clone(),
        reason: reason.into(),
    }
}

/// A claim as far as snapshotting goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    pub pv: Option<String>,
    pub driver: Option<String>,
    pub storage_class: Option<String>,
    pub volume_mode: Option<String>,
    pub size_bytes: u64,
}

/// The claim's facts from its object, its PV and its storage class (pure).
pub fn claim_facts(pvc: &PersistentVolumeClaim, pv: Option<&PersistentVolume>, class: Option<&StorageClass>) -> Claim {
    let spec = pvc.spec.clone().unwrap_or_default();
    let size = pvc
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .or_else(|| {
            spec.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
        })
        .and_then(|q| super::parse_quantity(&q.0))
        .unwrap_or(0);
    let driver = pv
        .and_then(|pv| pv.spec.as_ref())
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.driver.clone())
        .or_else(|| class.map(|c| c.provisioner.clone()));
    Claim {
        pv: spec.volume_name.clone(),
        driver,
        storage_class: spec.storage_class_name.clone(),
        volume_mode: Some(spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into())),
        size_bytes: size,
    }
}

/// Reads what [`claim_facts`] needs.
async fn inspect(client: &Client, pvc: &PvcRef) -> Result<Claim, String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &pvc.namespace);
    let claim = claims
        .get_opt(&pvc.name)
        .await
        .map_err(|e| format!("reading the claim: {e}"))?
        .ok_or("the claim is gone")?;
    let volume = claim.spec.as_ref().and_then(|s| s.volume_name.clone());
    let pv = match &volume {
        Some(name) => Api::<PersistentVolume>::all(client.clone())
            .get_opt(name)
            .await
            .map_err(|e| format!("reading PV {name}: {e}"))?,
        None => None,
    };
    let class_name = claim.spec.as_ref().and_then(|s| s.storage_class_name.clone());
    let class = match &class_name {
        Some(name) if !name.is_empty() => Api::<StorageClass>::all(client.clone())
            .get_opt(name)
            .await
            .ok()
            .flatten(),
        _ => None,
    };
    Ok(claim_facts(&claim, pv.as_ref(), class.as_ref()))
}

/// What happened to one claim.
enum ClaimResult {
    Captured(Box<VolumeRecord>, Vec<String>),
    /// Not captured by design.
    Warning(String),
    /// Captured partly (a snapshot without its copy), or not at all.
    Failed(Option<Box<VolumeRecord>>, String),
}

/// A claim whose snapshot is ready, waiting for its copy (with `snapshotAndCopy`).
pub struct Taken {
    index: usize,
    record: Box<VolumeRecord>,
    ready: snapshot::Ready,
    notes: Vec<String>,
}

/// The snapshot phase's result: what the copy phase (or [`Snapshots::without_copies`])
/// finishes.
pub struct Snapshots {
    /// One per claim (by its index in the request) that ended in this phase.
    ended: Vec<(usize, ClaimResult)>,
    taken: Vec<Taken>,
    /// Set when the phase failed as a whole (no snapshot classes, no repository).
    outcome: Option<VolumesOutcome>,
}

/// Runs the PV part of a backup: [`snapshot`] then [`copy`].
pub async fn backup(client: &Client, opts: &VolumeOptions, req: &BackupRequest) -> VolumesOutcome {
    let snapshots = snapshot(client, opts, req).await;
    copy(client, opts, req, snapshots).await
}

/// Snapshots every selected claim (at most `opts.parallel` at once), and waits for them
/// to be ready: all the snapshots of a backup are taken close together, before any data
/// is copied (what backup hooks hold the application for).
pub async fn snapshot(client: &Client, opts: &VolumeOptions, req: &BackupRequest) -> Snapshots {
    let mut out = Snapshots {
        ended: Vec::new(),
        taken: Vec::new(),
        outcome: None,
    };
    if req.mode == PvMode::None || req.claims.is_empty() {
        out.outcome = Some(VolumesOutcome::default());
        return out;
    }
    let failed_all = |e: String, messages: Vec<String>| VolumesOutcome {
        errors: req.claims.iter().map(|p| issue(p, e.clone())).collect(),
        messages,
        ..VolumesOutcome::default()
    };
    let classes = match snapshot::list_classes(client).await {
        Ok(c) => c,
        Err(e) => {
            out.outcome = Some(failed_all(e, Vec::new()));
            return out;
        }
    };
    if req.mode == PvMode::SnapshotAndCopy
        && let Some(repo) = &req.repo
    {
        // Created here if needed: the movers only ever open it.
        if let Err(e) = repo.open(Some(opts.repo_kdf)).await {
            out.outcome = Some(failed_all(e.clone(), vec![format!("FAILED: {e}")]));
            return out;
        }
    }
    // Boxed one by one so the future is provably Send (see resources/backup.rs).
    let tasks: Vec<BoxFuture<'_, (usize, Result<Taken, ClaimResult>)>> = req
        .claims
        .iter()
        .enumerate()
        .map(|(i, pvc)| {
            let classes = &classes;
            async move { (i, snapshot_claim(client, opts, req, classes, pvc, i).await) }.boxed()
        })
        .collect();
    let results: Vec<(usize, Result<Taken, ClaimResult>)> = stream::iter(tasks)
        .buffer_unordered(opts.parallel.max(1))
        .collect()
        .await;
    for (i, result) in results {
        match result {
            Ok(taken) => out.taken.push(taken),
            Err(ended) => out.ended.push((i, ended)),
        }
    }
    out
}

/// Copies the ready snapshots (with `snapshotAndCopy`; at most `opts.parallel` at once)
/// and sums up the PV part.
pub async fn copy(client: &Client, opts: &VolumeOptions, req: &BackupRequest, snapshots: Snapshots) -> VolumesOutcome {
    if let Some(outcome) = snapshots.outcome {
        return outcome;
    }
    let mut results = snapshots.ended;
    let tasks: Vec<BoxFuture<'_, (usize, ClaimResult)>> = snapshots
        .taken
        .into_iter()
        .map(|taken| async move { (taken.index, copy_claim(client, opts, req, taken).await) }.boxed())
        .collect();
    results.extend(
        stream::iter(tasks)
            .buffer_unordered(opts.parallel.max(1))
            .collect::<Vec<_>>()
            .await,
    );
    results.sort_by_key(|(i, _)| *i);
    sum_up(req, results)
}

fn sum_up(req: &BackupRequest, results: Vec<(usize, ClaimResult)>) -> VolumesOutcome {
    let mut out = VolumesOutcome::default();
    let copy = req.mode == PvMode::SnapshotAndCopy;
    for (i, result) in results {
        let pvc = &req.claims[i];
        match result {
            ClaimResult::Captured(record, notes) => {
                out.snapshots_attempted += 1;
                out.snapshots_completed += 1;
                if copy {
                    out.copies_attempted += 1;
                    out.copies_completed += u64::from(record.copy.is_some());
                }
                out.messages.extend(notes);
                out.records.push(*record);
            }
            ClaimResult::Warning(reason) => {
                out.messages.push(format!(
                    "WARNING: PVC {}/{}: data not captured: {reason}",
                    pvc.namespace, pvc.name
                ));
                out.warnings.push(issue(pvc, reason));
            }
            ClaimResult::Failed(record, reason) => {
                out.messages
                    .push(format!("FAILED: PVC {}/{}: {reason}", pvc.namespace, pvc.name));
                out.errors.push(issue(pvc, reason));
                out.snapshots_attempted += 1;
                if let Some(record) = record {
                    // The snapshot was taken; its copy was not.
                    out.snapshots_completed += 1;
                    out.copies_attempted += u64::from(copy);
                    out.records.push(*record);
                }
            }
        }
    }
    out
}

async fn snapshot_claim(
    client: &Client,
    opts: &VolumeOptions,
    req: &BackupRequest,
    classes: &[ClassInfo],
    pvc: &PvcRef,
    index: usize,
) -> Result<Taken, ClaimResult> {
    let claim = match inspect(client, pvc).await {
        Ok(c) => c,
        Err(e) => return Err(ClaimResult::Failed(None, e)),
    };
    if claim.pv.is_none() {
        return Err(ClaimResult::Warning("the claim is not bound to a volume".into()));
    }
    let Some(driver) = claim.driver.clone() else {
        return Err(ClaimResult::Warning(
            "its volume is not a CSI volume (no CSI driver)".into(),
        ));
    };
    let Some(class) = snapshot::choose_class(&driver, classes) else {
        return Err(ClaimResult::Warning(format!(
            "no VolumeSnapshotClass for its CSI driver {driver}"
        )));
    };
    let key = format!("{}/{}/{}", req.job_id, pvc.namespace, pvc.name);
    let snap_name = object_name("arca", &pvc.name, &key);
    let manifest = snapshot::snapshot_manifest(
        &pvc.namespace,
        &snap_name,
        snapshot::SnapshotSource::Claim(&pvc.name),
        &class.name,
        &labels(&req.job_id, "backup-snapshot"),
    );
    if let Err(e) = snapshot::create(client, &manifest).await {
        return Err(ClaimResult::Failed(None, e));
    }
    let ready = match snapshot::wait_ready(
        client,
        &pvc.namespace,
        &snap_name,
        opts.snapshot_timeout,
        opts.poll_every,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            // A snapshot that never became ready is of no use to a restore.
            let _ = snapshot::delete(client, &pvc.namespace, &snap_name).await;
            return Err(ClaimResult::Failed(None, e));
        }
    };
    let handle = match &ready.content {
        Some(content) => snapshot::content_handle(client, content).await,
        None => None,
    };
    let record = VolumeRecord {
        namespace: pvc.namespace.clone(),
        pvc: pvc.name.clone(),
        pv: claim.pv.clone(),
        driver: driver.clone(),
        storage_class: claim.storage_class.clone(),
        volume_mode: claim.volume_mode.clone(),
        size_bytes: claim.size_bytes,
        snapshot: Some(CsiSnapshotRecord {
            name: snap_name.clone(),
            class: class.name.clone(),
            content: ready.content.clone(),
            handle,
            restore_size: ready.restore_size,
        }),
        copy: None,
    };
    let notes = vec![format!(
        "PVC {}/{}: VolumeSnapshot {snap_name} (class {}) ready",
        pvc.namespace, pvc.name, class.name
    )];
    Ok(Taken {
        index,
        record: Box::new(record),
        ready,
        notes,
    })
}

async fn copy_claim(client: &Client, opts: &VolumeOptions, req: &BackupRequest, taken: Taken) -> ClaimResult {
    let Taken {
        index,
        mut record,
        ready,
        mut notes,
    } = taken;
    let pvc = &req.claims[index];
    if req.mode != PvMode::SnapshotAndCopy {
        return ClaimResult::Captured(record, notes);
    }
    let driver = record.driver.clone();
    if filesystem_only(&driver) {
        return ClaimResult::Failed(
            Some(record),
            format!(
                "snapshot kept, data not copied: the CSI driver {driver} serves file shares, which cannot be attached \
                 as a block device"
            ),
        );
    }
    let Some(repo) = &req.repo else {
        return ClaimResult::Failed(Some(record), "no repository to copy to".into());
    };
    let snap_name = record.snapshot.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    match copy_data(client, opts, req, repo, pvc, &record, &ready).await {
        Ok(copied) => {
            notes.push(format!(
                "PVC {}/{}: copied to repository snapshot {} ({} bytes, {} new, {} stored)",
                pvc.namespace, pvc.name, copied.snapshot_id, copied.size, copied.bytes_new, copied.bytes_stored
            ));
            record.copy = Some(copied);
        }
        Err(e) => return ClaimResult::Failed(Some(record), format!("copy failed (snapshot kept): {e}")),
    }
    if req.delete_snapshot_after_copy {
        match snapshot::delete(client, &pvc.namespace, &snap_name).await {
            Ok(_) => {
                record.snapshot = None;
                notes.push(format!(
                    "PVC {}/{}: VolumeSnapshot {snap_name} deleted after its copy",
                    pvc.namespace, pvc.name
                ));
            }
            Err(e) => notes.push(format!("WARNING: {e}; it stays with the recovery point")),
        }
    }
    ClaimResult::Captured(record, notes)
}

/// The mover's command line for a backup.
pub fn backup_args(repo_url: &str, volume: &str) -> Vec<String> {
    [
        "volume",
        "backup",
        "--repo",
        repo_url,
        "--volume",
        volume,
        "--source",
        DEVICE_PATH,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Copies a ready snapshot, in the agent's namespace, the way Velero's CSI data mover
/// exposes one: a VolumeSnapshotContent on the same storage snapshot (pre-provisioned,
/// `deletionPolicy: Retain`, so removing it never deletes what the user's snapshot owns),
/// a VolumeSnapshot bound to it, a temporary block claim from that, and the mover Job on
/// the claim; then the statistics from the repository. Every temporary object goes
/// whatever happened; the user's snapshot and its content are not touched.
async fn copy_data(
    client: &Client,
    opts: &VolumeOptions,
    req: &BackupRequest,
    repo: &Repo,
    pvc: &PvcRef,
    record: &VolumeRecord,
    ready: &snapshot::Ready,
) -> Result<VolumeCopyRecord, String> {
    let snap = record.snapshot.as_ref().ok_or("no snapshot to copy")?;
    let handle = snap
        .handle
        .clone()
        .ok_or_else(|| format!("VolumeSnapshot {}/{} has no snapshot handle", pvc.namespace, snap.name))?;
    let namespace = opts.mover_namespace(client);
    let key = format!("{}/{}/{}", req.job_id, pvc.namespace, pvc.name);
    let name = object_name("arca-copy", &pvc.name, &key);
    let result = async {
        // The content carries the volume-mode consent itself: the user's content is not
        // annotated.
        let content = snapshot::imported_content_manifest(
            &name,
            &record.driver,
            &handle,
            &snap.class,
            &namespace,
            &name,
            &labels(&req.job_id, "copy-source"),
        );
        snapshot::create_content(client, &content).await?;
        let imported = snapshot::snapshot_manifest(
            &namespace,
            &name,
            snapshot::SnapshotSource::Content(&name),
            &snap.class,
            &labels(&req.job_id, "copy-source"),
        );
        snapshot::create(client, &imported).await?;
        snapshot::wait_ready(client, &namespace, &name, opts.snapshot_timeout, opts.poll_every).await?;
        let size = ready.restore_size.unwrap_or(0).max(record.size_bytes);
        let claim = mover::claim_manifest(
            &namespace,
            &name,
            record.storage_class.as_deref(),
            size,
            Some(&name),
            &[],
            &labels(&req.job_id, "copy-source"),
        );
        mover::create_claim(client, &claim).await?;
        let volume = super::repo_volume_name(&pvc.namespace, &pvc.name);
        let secret = super::mover_secret(opts, repo, req.renewal.as_ref());
        let m = Mover {
            name: name.clone(),
            namespace: namespace.clone(),
            image: opts.mover_image.clone(),
            args: backup_args(&repo.url(), &volume),
            claim: name.clone(),
            env: repo.mover_env(),
            credentials_file: secret.has_credentials(),
            host_path: repo.host_path(),
            service_account: opts.mover_service_account.clone(),
            labels: labels(&req.job_id, "mover"),
            deadline: opts.mover_timeout,
        };
        mover::run(client, &m, &secret, opts.mover_timeout, opts.poll_every).await?;
        Ok::<_, String>(volume)
    }
    .await;
    // The claim first (it holds the snapshot as its source), then the snapshot, then the
    // content: `Retain`, so deleting it leaves the storage snapshot to the user's.
    let mut problems = Vec::new();
    if let Err(e) = mover::delete_claim(client, &namespace, &name).await {
        problems.push(e);
    }
    if let Err(e) = snapshot::delete(client, &namespace, &name).await {
        problems.push(e);
    }
    if let Err(e) = snapshot::delete_content(client, &name).await {
        problems.push(e);
    }
    if !problems.is_empty() {
        tracing::warn!(name = %name, problems = %problems.join("; "), "removing a copy's temporary objects failed");
    }
    find_copy(repo, &result?, &name).await
}

/// The repository snapshot the mover `marker` made of `volume`, with its statistics.
pub async fn find_copy(repo: &Repo, volume: &str, marker: &str) -> Result<VolumeCopyRecord, String> {
    let opened = repo.open(None).await?;
    let snapshots = opened
        .snapshots()
        .await
        .map_err(|e| format!("listing the repository's snapshots: {e}"))?;
    let (id, snap) = snapshots
        .into_iter()
        .rev()
        .find(|(_, s)| s.name == volume && s.hostname.as_deref() == Some(marker))
        .ok_or_else(|| format!("the mover {marker} completed but its snapshot of {volume} is not in the repository"))?;
    // The one place the agent sees what a mover (another process) read and stored.
    let metrics = crate::metrics::global();
    let deduplicated = snap.stats.bytes_read.saturating_sub(snap.stats.bytes_new);
    metrics.data_read(crate::metrics::Data::Volumes, snap.stats.bytes_read, deduplicated);
    metrics.data_written(crate::metrics::Data::Volumes, snap.stats.bytes_stored);
    Ok(VolumeCopyRecord {
        repository: repo.prefix.clone(),
        volume: volume.to_string(),
        snapshot_id: id.to_hex(),
        size: snap.size,
        bytes_new: snap.stats.bytes_new,
        bytes_stored: snap.stats.bytes_stored,
    })
}

/// Claims the runner hands over: every selected claim not in `exclude_pvs`.
pub fn claims_to_capture(pvcs: &[PvcRef], exclude_pvs: &[String]) -> Vec<PvcRef> {
    pvcs.iter()
        .filter(|p| p.volume_name.as_ref().is_none_or(|pv| !exclude_pvs.contains(pv)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn facts_come_from_the_pv_then_the_class() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "shop"},
            "spec": {"volumeName": "pv-1", "storageClassName": "fast", "resources": {"requests": {"storage": "2Gi"}}},
            "status": {"capacity": {"storage": "3Gi"}},
        }))
        .unwrap();
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pv-1"},
            "spec": {"csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": "h"}},
        }))
        .unwrap();
        let class: StorageClass =
            serde_json::from_value(json!({"metadata": {"name": "fast"}, "provisioner": "other.csi"})).unwrap();
        let facts = claim_facts(&pvc, Some(&pv), Some(&class));
        assert_eq!(facts.driver.as_deref(), Some("hostpath.csi.k8s.io"));
        assert_eq!(facts.size_bytes, 3 << 30);
        assert_eq!(facts.volume_mode.as_deref(), Some("Filesystem"));
        assert_eq!(facts.pv.as_deref(), Some("pv-1"));
        let by_class = claim_facts(&pvc, None, Some(&class));
        assert_eq!(by_class.driver.as_deref(), Some("other.csi"));
        assert_eq!(claim_facts(&pvc, None, None).driver, None);
    }

    #[test]
    fn file_share_drivers_are_known() {
        assert!(filesystem_only("efs.csi.aws.com"));
        assert!(filesystem_only("rook-ceph.cephfs.csi.ceph.com"));
        assert!(!filesystem_only("ebs.csi.aws.com"));
    }

    #[test]
    fn the_mover_backs_up_the_device_as_the_claims_history() {
        let args = backup_args("file:///r", "shop/data");
        assert_eq!(
            args.join(" "),
            format!("volume backup --repo file:///r --volume shop/data --source {DEVICE_PATH} --json")
        );
    }

    #[test]
    fn claims_on_excluded_pvs_are_left_out() {
        let p = |name: &str, pv: Option<&str>| PvcRef {
            namespace: "ns".into(),
            name: name.into(),
            volume_name: pv.map(str::to_string),
            storage_class: None,
        };
        let kept = claims_to_capture(
            &[p("a", Some("ebs-1")), p("b", Some("pv-2")), p("c", None)],
            &["ebs-1".into()],
        );
        let names: Vec<_> = kept.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[test]
    fn totals_sum_snapshots_and_stored_copies() {
        let mut out = VolumesOutcome::default();
        out.records.push(VolumeRecord {
            size_bytes: 10,
            snapshot: Some(CsiSnapshotRecord {
                restore_size: Some(100),
                ..Default::default()
            }),
            copy: Some(VolumeCopyRecord {
                bytes_stored: 7,
                ..Default::default()
            }),
            ..Default::default()
        });
        out.records.push(VolumeRecord {
            size_bytes: 10,
            snapshot: Some(CsiSnapshotRecord::default()),
            ..Default::default()
        });
        assert_eq!(out.snapshot_bytes(), 110);
        assert_eq!(out.copy_bytes(), 7);
    }
}
