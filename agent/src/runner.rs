//! The agent's real [`JobRunner`]: Kubernetes resource backup (K8S_BACKUP), restore
//! (K8S_RESTORE) and deletion of a backup's archive (DELETE_BACKUP), on the job's
//! destination as the control plane vends it (`credentials`).
//!
//! Where things go: the destination's root holds `<clusterPrefix>resources/`, the
//! [`ObjectStoreArchive`] of the cluster; a backup's recovery point location is the
//! archive's own folder, `<clusterPrefix>resources/archives/<archiveId>`, so a restore
//! (possibly by another cluster's agent) finds both the archive and its objects from it.
//!
//! PV data (pvMode `snapshot`/`snapshotAndCopy`) is [`crate::volumes`]: after the resources,
//! each selected claim not on EBS (the control plane snapshots those, when the cluster is
//! linked to an AWS account: `AgentJob::ebs_by_control_plane`) is snapshotted and,
//! with copy, moved into the destination's volume repository; what was captured is
//! recorded on the recovery point (`volumes`). Restores create claims from it, deletions
//! remove it.
//!
//! A deletion removes what only its point names (the archive's manifest and index, its
//! repository snapshots); the packs it shared with other points are collected by the
//! REPOSITORY_MAINTENANCE job the control plane issues afterwards (`crate::maintenance`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arca_core::model::agent::{AgentJob, BackupResult, ProgressReport, RestoreResultsBatch};
use arca_core::model::backup::PvMode;
use arca_core::model::cloud::ebs::EbsVolumeRef;
use arca_core::model::destination::BucketLock;
use arca_core::model::hooks::{HookOutcome, OnError};
use arca_core::model::job::{JobCounters, JobState, JobType};
use arca_core::model::layout;
use arca_core::model::recovery::{BackupDetails, PointLock, ResourceIssue};
use arca_core::model::restore::{MAX_OBJECTS_PER_BATCH, ObjectOutcome, RestoreObjectResult};
use arca_core::ports::ObjectStore;
use arca_core::ports::credentials::DestinationAccess;
use async_trait::async_trait;

use crate::hooks::{self, Hooks};
use crate::protocol::AgentClient;
use crate::renewal::Renewal;
use crate::resources::archive::{ArchiveReader, ArchiveWriter, Manifest, NewEntry, ResourceArchive};
use crate::resources::restore::{Outcome as ItemOutcome, RestoreStatus};
use crate::resources::{self, BackupOptions, BackupReport, ObjectStoreArchive, RestoreOptions, Selection, Skipped};
use crate::volumes::{self, VolumeOptions, VolumeRestore, VolumesOutcome};
use crate::worker::{JobRunner, Outcome};

/// The namespace the agent runs in: `ARCA_AGENT_NAMESPACE`, else the Pod's own (its
/// service account's namespace file); `None` for an agent run outside the cluster, whose
/// kubeconfig namespace says nothing about where its install is.
pub fn own_namespace() -> Option<String> {
    std::env::var("ARCA_AGENT_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok())
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
}

/// Folder of the cluster's resource archive under its cluster prefix.
/// At most this many per-object lines (failures, skips) go to the job log.
const MAX_DETAIL_LINES: usize = 40;

/// The key the resource archive is sealed with.
#[derive(Clone)]
pub enum ArchiveKey {
    /// The org's key the control plane hands out with each job's destination access
    /// (derived from its master key): the default, and what lets every cluster of an org
    /// restore what another backed up.
    FromControlPlane,
    /// 32 secret bytes given to this agent (`ARCA_ARCHIVE_KEY`), for deployments that
    /// keep the key away from the control plane; every agent of the org needs the same.
    Configured([u8; 32]),
}

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveKey::FromControlPlane => f.write_str("ArchiveKey::FromControlPlane"),
            ArchiveKey::Configured(_) => f.write_str("ArchiveKey::Configured(..)"),
        }
    }
}

impl ArchiveKey {
    /// 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, String> {
        let hex = hex.trim();
        let invalid = || "the archive key must be 64 hex digits (32 bytes)".to_string();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(invalid());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        Ok(ArchiveKey::Configured(key))
    }

    /// The key bytes for a job, or why there are none: never a key anyone could guess.
    fn bytes(&self, access: &DestinationAccess) -> Result<[u8; 32], String> {
        // A destination's customer-held key decides, whatever this agent was given: its
        // keys were unwrapped into the access (`crate::customer_key`).
        if access.customer_key.is_some() {
            return access.archive_key.as_ref().and_then(|k| k.bytes()).ok_or_else(|| {
                "no archive key: the destination's customer-held key was not unwrapped for this job".to_string()
            });
        }
        match self {
            ArchiveKey::Configured(k) => Ok(*k),
            ArchiveKey::FromControlPlane => access.archive_key.as_ref().and_then(|k| k.bytes()).ok_or_else(|| {
                "no archive key: the control plane hands out none (set ARCA_ARCHIVE_MASTER_KEY on the API) \
                 and this agent has no ARCA_ARCHIVE_KEY"
                    .to_string()
            }),
        }
    }
}

/// Runs K8S_BACKUP, K8S_RESTORE and DELETE_BACKUP jobs against the agent's cluster;
/// other job types fail with the reason.
pub struct ResourceRunner {
    kube: kube::Client,
    key: ArchiveKey,
    backup_options: BackupOptions,
    /// How often progress counters are sent while a backup runs.
    progress_every: Duration,
    volumes: VolumeOptions,
}

impl ResourceRunner {
    pub fn new(kube: kube::Client, key: ArchiveKey) -> Self {
        ResourceRunner {
            kube,
            key,
            backup_options: BackupOptions {
                own_namespace: own_namespace(),
                ..BackupOptions::default()
            },
            progress_every: Duration::from_secs(5),
            volumes: VolumeOptions::default(),
        }
    }

    /// How PV snapshots and mover Jobs run (timeouts, mover image, parallelism).
    pub fn with_volume_options(mut self, options: VolumeOptions) -> Self {
        self.volumes = options;
        self
    }

    /// The namespace the agent runs in, whose objects are never backed up nor restored
    /// (default: the Pod's own, see [`own_namespace`]).
    pub fn with_own_namespace(mut self, namespace: Option<String>) -> Self {
        self.backup_options.own_namespace = namespace;
        self
    }

    /// How often progress counters are reported while a backup runs (default 5 s).
    pub fn with_progress_every(mut self, every: Duration) -> Self {
        self.progress_every = every.max(Duration::from_millis(100));
        self
    }
}

#[async_trait]
impl JobRunner for ResourceRunner {
    async fn run(&self, job: &AgentJob, client: &AgentClient) -> Outcome {
        match job.job.job_type {
            JobType::K8sBackup => self.backup(job, client).await,
            JobType::K8sRestore => self.restore(job, client).await,
            JobType::DeleteBackup => self.delete(job, client).await,
            JobType::RepositoryMaintenance => self.maintain(job, client).await,
            other => failed(format!("this agent version cannot run {other:?} jobs yet")),
        }
    }
}

fn failed(reason: impl Into<String>) -> Outcome {
    let reason = reason.into();
    Outcome {
        state: Some(JobState::Failed),
        messages: vec![reason.clone()],
        reason: Some(reason),
        ..Default::default()
    }
}

/// A job's destination access as the control plane vends it again (a `credentialsRef`
/// Secret read again), for [`volumes::RepoAccess`].
struct JobRepoAccess {
    client: AgentClient,
    kube: kube::Client,
    job: arca_core::ids::JobId,
    key: ArchiveKey,
}

#[async_trait]
impl volumes::RepoAccess for JobRepoAccess {
    async fn reopen(&self, prefix: &str) -> Result<volumes::Repo, String> {
        let access = self
            .client
            .credentials(&self.job)
            .await
            .map_err(|e| format!("renewing access to the destination: {e}"))?;
        let access = crate::credentials_ref::resolve(&self.kube, access).await?;
        let access = if access.customer_key.is_some() {
            let store = crate::volumes::repo::open_store_at(&access, "", None).await?;
            crate::customer_key::unwrap_keys(access, &store, false).await?
        } else {
            access
        };
        let key = self.key.bytes(&access)?;
        volumes::Repo::new(&access, prefix, &key)
    }
}

/// `<clusterPrefix>resources-<key id>` ([`layout`]): the store of the job's key.
fn archive_prefix(access: &DestinationAccess) -> String {
    layout::cluster_folder(
        &access.cluster_prefix,
        &layout::resources_folder(access.key_id.as_ref()),
    )
}

impl ResourceRunner {
    async fn destination(
        &self,
        job: &AgentJob,
        client: &AgentClient,
    ) -> Result<(Arc<dyn ObjectStore>, DestinationAccess), String> {
        let access = client
            .credentials(&job.job.id)
            .await
            .map_err(|e| format!("getting access to the destination: {e}"))?;
        let access = crate::credentials_ref::resolve(&self.kube, access).await?;
        // Rooted at the destination's root (keys carry the cluster prefix); vended
        // credentials are renewed for as long as the job runs.
        let renewal = Renewal::new(client.clone(), job.job.id);
        let store = crate::volumes::repo::open_store_at(&access, "", Some(&renewal)).await?;
        // Restores only read; every other job may create or re-wrap the cluster's key.
        let writes = job.job.job_type != JobType::K8sRestore;
        let access = crate::customer_key::unwrap_keys(access, &store, writes).await?;
        Ok((store, access))
    }

    /// Fresh access to a job's volume repository, for movers that outlive their credentials.
    fn renewal(&self, job: &AgentJob, client: &AgentClient) -> Arc<dyn volumes::RepoAccess> {
        Arc::new(JobRepoAccess {
            client: client.clone(),
            kube: self.kube.clone(),
            job: job.job.id,
            key: self.key.clone(),
        })
    }

    fn archive(
        &self,
        access: &DestinationAccess,
        store: Arc<dyn ObjectStore>,
        prefix: &str,
    ) -> Result<ObjectStoreArchive, String> {
        let key = self.key.bytes(access)?;
        Ok(ObjectStoreArchive::new(store, prefix, &key)
            .map_err(|e| format!("opening the archive: {e}"))?
            .with_retention(access.object_lock.and_then(|l| l.retain_until)))
    }

    async fn backup(&self, job: &AgentJob, client: &AgentClient) -> Outcome {
        let Some(definition) = &job.definition else {
            return failed("the job carries no backup definition");
        };
        let (store, access) = match self.destination(job, client).await {
            Ok(d) => d,
            Err(e) => return failed(e),
        };
        let bucket_lock = match bucket_lock(store.as_ref(), &access).await {
            Ok(seen) => seen,
            Err(e) => return failed(e),
        };
        let prefix = archive_prefix(&access);
        // What the backup writes to the destination (sealed packs, indexes, manifest) is
        // counted as it is put.
        let store: Arc<dyn ObjectStore> = Arc::new(CountingStore(store));
        let archive = match self.archive(&access, store, &prefix) {
            Ok(a) => a,
            Err(e) => return failed(e),
        };
        let counted = CountingArchive {
            inner: archive,
            objects: Arc::new(AtomicU64::new(0)),
        };
        let selection = Selection::from(&definition.spec.selection);

        // The library reports nothing while it runs: the objects written so far are
        // counted at the archive and sent as progress.
        let objects = counted.objects.clone();
        let (kube, opts) = (self.kube.clone(), self.backup_options.clone());
        let work = spawned(async move { resources::backup(&kube, &selection, &counted, &opts).await });
        tokio::pin!(work);
        let mut ticker = tokio::time::interval(self.progress_every);
        ticker.tick().await;
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = ticker.tick() => {
                    let report = ProgressReport {
                        lease_token: job.lease_token.clone(),
                        counters: Some(JobCounters {
                            resources: objects.load(Ordering::Relaxed),
                            ..Default::default()
                        }),
                        progress: None,
                        messages: Vec::new(),
                    };
                    if let Err(e) = client.progress(&job.job.id, &report).await {
                        tracing::warn!(job_id = %job.job.id, error = %e, "progress report failed");
                    }
                }
            }
        };
        let report = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return failed(format!("resource backup failed: {e}")),
            Err(e) => return failed(e),
        };
        let pv_mode = definition.spec.pv_mode;
        // EBS-backed claims go to the control plane's EC2 snapshots only when it says it
        // takes them (a linked cluster); otherwise they are captured through CSI like any
        // other claim, or named as not captured: never silently left out.
        let (ebs, problems) = if pv_mode == PvMode::None || !job.ebs_by_control_plane {
            (Vec::new(), Vec::new())
        } else {
            crate::ebs::ebs_volumes(&self.kube, &report.manifest.pvcs).await
        };
        let on_ebs: Vec<String> = ebs.iter().map(|v| v.pv_name.clone()).collect();
        let claims = volumes::backup::claims_to_capture(&report.manifest.pvcs, &on_ebs);
        // Hooks hold the applications for the snapshots: only when there are any.
        let mut hooks = Hooks::new(self.kube.clone(), Vec::new());
        let mut hook_notes = Vec::new();
        if pv_mode != PvMode::None && !(claims.is_empty() && ebs.is_empty()) {
            let pods = match hooks::pods(&self.kube, &definition.spec.selection).await {
                Ok(p) => p,
                Err(e) => return failed(e),
            };
            let plan = hooks::plan(&definition.spec.hooks, &definition.spec.selection, &pods);
            if !plan.errors.is_empty() {
                return failed(format!(
                    "hook annotations that cannot be read (nothing was snapshotted): {}",
                    plan.errors.join("; ")
                ));
            }
            hook_notes = plan.notes;
            hooks = Hooks::new(self.kube.clone(), plan.hooks);
        }
        if let Err(hooks::Stop(why)) = hooks.before().await {
            hooks.after().await;
            let mut out = failed(format!("a pre hook failed, so nothing was snapshotted: {why}"));
            out.messages.extend(hook_notes);
            out.messages.extend(hooks.outcomes.iter().map(|o| o.line()));
            return out;
        }
        // The control plane's EC2 snapshots, now, while the pre hooks hold the applications
        // (EC2 snapshots the moment it is asked). A control plane that cannot still takes
        // them when the job reports, after the post hooks: said so, not hidden.
        let ebs_note = if ebs.is_empty() {
            None
        } else {
            Some(match client.ebs_snapshots(&job.job.id, &ebs).await {
                Ok(taken) => format!(
                    "EBS: {} of {} volume(s) snapshotted by the control plane between the hooks",
                    taken.snapshots.len(),
                    ebs.len()
                ),
                Err(e) => format!(
                    "WARNING: EBS snapshots could not be taken between the hooks ({e}): the control plane takes \
                     them when the job reports, after the post hooks (crash-consistent)"
                ),
            })
        };
        let volumes = if pv_mode == PvMode::None || claims.is_empty() {
            hooks.after().await;
            VolumesOutcome::default()
        } else {
            let repo = if pv_mode == PvMode::SnapshotAndCopy {
                match self
                    .key
                    .bytes(&access)
                    .and_then(|key| volumes::Repo::new(&access, &volumes::repo::cluster_repository(&access), &key))
                {
                    Ok(r) => Some(r),
                    Err(e) => return failed(format!("the volume repository: {e}")),
                }
            } else {
                None
            };
            let request = volumes::BackupRequest {
                job_id: job.job.id.to_string(),
                mode: pv_mode,
                delete_snapshot_after_copy: definition.spec.delete_snapshot_after_copy,
                claims,
                repo,
                renewal: Some(self.renewal(job, client)),
            };
            let (kube, opts, request) = (self.kube.clone(), self.volumes.clone(), Arc::new(request));
            let (k, o, r) = (kube.clone(), opts.clone(), request.clone());
            let snapshots = spawned(async move { volumes::backup::snapshot(&k, &o, &r).await }).await;
            // Released as soon as the snapshots are taken (or failed), before any copy.
            hooks.after().await;
            let snapshots = match snapshots {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
            match spawned(async move { volumes::backup::copy(&kube, &opts, &request, snapshots).await }).await {
                Ok(v) => v,
                Err(e) => return failed(e),
            }
        };
        let mut outcome = backup_outcome(pv_mode, &prefix, &report, ebs, &volumes);
        outcome.messages.extend(ebs_note);
        outcome.messages.extend(bucket_lock.warning);
        if let Some(result) = outcome.backup.as_mut() {
            result.bucket_lock = bucket_lock.found;
            result.object_lock = access.object_lock.and_then(|lock| {
                lock.retain_until.map(|retain_until| PointLock {
                    mode: lock.mode,
                    retain_until,
                })
            });
        }
        push_capped(&mut outcome.messages, problems, "PV lookups");
        push_capped(&mut outcome.messages, hook_notes, "hook notes");
        with_hooks(&mut outcome, hooks.outcomes);
        outcome
    }

    async fn restore(&self, job: &AgentJob, client: &AgentClient) -> Outcome {
        let (Some(restore), Some(point)) = (&job.restore, &job.recovery_point) else {
            return failed("the job carries no restore request or recovery point");
        };
        let Some(location) = &point.location else {
            return failed(format!("recovery point {} has no location", point.id));
        };
        let Some((prefix, archive_id)) = layout::split_location(&location.prefix) else {
            return failed(format!(
                "recovery point {} holds no resource archive this agent can read (location {:?})",
                point.id, location.prefix
            ));
        };
        let (store, access) = match self.destination(job, client).await {
            Ok(d) => d,
            Err(e) => return failed(e),
        };
        let archive = match self.archive(&access, store, prefix) {
            Ok(a) => a,
            Err(e) => return failed(e),
        };
        let restore_id = restore.id.to_string();
        let mut opts = RestoreOptions::from_spec(&restore.spec, archive_id, &restore_id);
        opts.own_namespace = self.backup_options.own_namespace.clone();
        // PV data: the claims the point holds volumes for are created from them.
        let records = &point.details.volumes;
        let mut volume_lines = Vec::new();
        let ebs_snapshots = job.ebs.as_ref().map(|e| e.snapshots.as_slice()).unwrap_or_default();
        if let Some(why) = job.ebs.as_ref().and_then(|e| e.unusable.as_ref()) {
            volume_lines.push(format!(
                "WARNING: the EBS-backed claims cannot be restored from their EBS snapshots here: {why}; they are \
                 provisioned empty"
            ));
        }
        let volume_restore = if restore.spec.restore_pvs && (!records.is_empty() || !ebs_snapshots.is_empty()) {
            let same_cluster = job.job.cluster_id == Some(point.cluster_id);
            let destination = self.key.bytes(&access).ok().map(|k| (access.clone(), k));
            for claim in VolumeRestore::unrestorable(records, same_cluster, destination.is_some()) {
                volume_lines.push(format!(
                    "WARNING: PVC {claim}: its data cannot be restored here (its snapshot is in the source cluster and \
                     it has no copy); the claim is restored empty"
                ));
            }
            let mut hook = VolumeRestore::new(
                self.kube.clone(),
                self.volumes.clone(),
                &job.job.id.to_string(),
                &restore_id,
                records,
                same_cluster,
                destination,
            )
            .with_renewal(self.renewal(job, client))
            .with_ebs(client.clone(), job.job.id, ebs_snapshots);
            if restore.verification.is_some() {
                hook = hook.verifying_data();
            }
            let hook = Arc::new(hook);
            opts.claim_data = Some(resources::restore::ClaimDataHook(hook.clone()));
            Some(hook)
        } else {
            None
        };
        let kube = self.kube.clone();
        let report = match spawned(async move { resources::restore(&kube, &archive, &opts).await }).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return self.restore_failed(restore, format!("restore failed: {e}")).await,
            Err(e) => return self.restore_failed(restore, e).await,
        };
        if let Some(hook) = &volume_restore {
            hook.finish().await;
            volume_lines.extend(hook.notes());
        }
        // Restore hooks, in the restored workloads' Pods once they are Ready.
        let workloads = hooks::restored_workloads(&self.kube, &report.items).await;
        let (steps, hook_errors) = hooks::restore_plan(&restore.spec, &workloads);
        let hook_outcomes = hooks::run_restore_hooks(&self.kube, &steps).await;
        // The full per-object result goes to the control plane (GET /v1/restores/{id}/objects);
        // the job log keeps a capped summary.
        let results = object_results(&report.items);
        let mut sent_all = true;
        for (seq, chunk) in results.chunks(MAX_OBJECTS_PER_BATCH).enumerate() {
            let batch = RestoreResultsBatch {
                lease_token: job.lease_token.clone(),
                seq: u32::try_from(seq).unwrap_or(u32::MAX),
                objects: chunk.to_vec(),
            };
            if let Err(e) = client.restore_results(&job.job.id, &batch).await {
                tracing::warn!(job_id = %job.job.id, error = %e, "sending object results failed");
                sent_all = false;
                break;
            }
        }
        let mut counters = JobCounters::default();
        let (mut created, mut updated) = (0u64, 0u64);
        let mut failures = Vec::new();
        let mut skips = Vec::new();
        for item in &report.items {
            let name = match &item.namespace {
                Some(ns) => format!("{} {ns}/{}", item.resource, item.name),
                None => format!("{} {}", item.resource, item.name),
            };
            match &item.outcome {
                ItemOutcome::Created => created += 1,
                ItemOutcome::Updated => updated += 1,
                ItemOutcome::Skipped { reason } => skips.push(format!("skipped {name}: {reason}")),
                ItemOutcome::Failed { error } => failures.push(format!("FAILED {name}: {error}")),
            }
        }
        counters.resources = created + updated;
        counters.warnings = skips.len() as u64;
        counters.errors = failures.len() as u64;
        let mut messages: Vec<String> = Vec::new();
        messages.push(format!(
            "restore {restore_id} of archive {archive_id}: {created} created, {updated} updated, {} skipped, {} failed \
             (objects labelled arca.io/restore-id={restore_id})",
            skips.len(),
            failures.len()
        ));
        // A verification: what the restore proved, the probe, then the scratch namespaces go.
        let verification = match &restore.verification {
            Some(v) => {
                let volumes_verified = volume_restore.as_ref().map_or(0, |h| h.volumes_verified());
                let mut found = crate::verification::findings(&report.items, &volume_lines, volumes_verified, point);
                let namespaces: Vec<String> = restore.spec.namespace_map.values().cloned().collect();
                if let Some(probe) = &v.probe {
                    match crate::verification::run_probe(&self.kube, &namespaces, probe, self.volumes.poll_every).await
                    {
                        Ok(()) => messages.push(format!("verification: the probe ({}) succeeded", probe.image)),
                        Err(why) => found.reasons.push(why),
                    }
                }
                let left = crate::verification::remove_scratch(&self.kube, &namespaces).await;
                messages.extend(left.into_iter().map(|l| format!("WARNING: {l}")));
                messages.push(format!(
                    "verification: {} objects restored, {} volumes read back equal to the backup, {}; scratch \
                     namespaces {} removed",
                    found.objects_verified,
                    found.volumes_verified,
                    if found.reasons.is_empty() {
                        "VERIFIED".to_string()
                    } else {
                        format!("FAILED ({} reasons)", found.reasons.len())
                    },
                    namespaces.join(", ")
                ));
                Some(found.bounded())
            }
            None => None,
        };
        push_capped(&mut messages, failures, "failures");
        push_capped(&mut messages, skips, "skips");
        if !sent_all {
            messages.push(
                "WARNING: the per-object results could not all be recorded; the lines above are a summary".into(),
            );
        }
        push_capped(&mut messages, volume_lines, "volume lines");
        if restore.spec.restore_pvs && point.pv_count > 0 && point.details.volumes.is_empty() && job.ebs.is_none() {
            messages.push(
                "WARNING: the recovery point records no volume data this agent can restore; only the resources were"
                    .into(),
            );
        }
        let (state, reason) = match (report.status, &verification) {
            // A verification that found anything wrong failed, whatever the restore did.
            (_, Some(v)) if !v.reasons.is_empty() => (
                JobState::Failed,
                Some(format!("verification failed: {}", v.reasons.join("; "))),
            ),
            (RestoreStatus::Completed, _) => (JobState::Completed, None),
            (RestoreStatus::Partial, _) => (JobState::Partial, Some(format!("{} objects failed", counters.errors))),
            (RestoreStatus::Failed, _) => (JobState::Failed, Some("every object failed".to_string())),
        };
        let mut outcome = Outcome {
            state: Some(state),
            reason,
            counters: Some(counters),
            backup: None,
            maintenance: None,
            verification,
            messages,
        };
        with_restore_hooks(&mut outcome, hook_errors, hook_outcomes);
        outcome
    }

    /// A restore that stopped midway; a verification's scratch namespaces go all the same.
    async fn restore_failed(&self, restore: &arca_core::model::restore::Restore, why: String) -> Outcome {
        let mut outcome = failed(why);
        if restore.verification.is_some() {
            let namespaces: Vec<String> = restore.spec.namespace_map.values().cloned().collect();
            let left = crate::verification::remove_scratch(&self.kube, &namespaces).await;
            outcome
                .messages
                .extend(left.into_iter().map(|l| format!("WARNING: {l}")));
        }
        outcome
    }

    async fn maintain(&self, job: &AgentJob, client: &AgentClient) -> Outcome {
        let Some(work) = &job.job.maintenance else {
            return failed("the job carries no maintenance work");
        };
        let (store, access) = match self.destination(job, client).await {
            Ok(d) => d,
            Err(e) => return failed(e),
        };
        // One repository pair per key the cluster has had (rotations leave the older
        // ones until their last point is deleted): each is collected, all are tried.
        let grace = Duration::from_secs(work.grace_seconds);
        let mut result = arca_core::model::maintenance::MaintenanceResult::default();
        let (mut messages, mut errors) = (Vec::new(), Vec::new());
        for keyed in access.each_key() {
            let label = keyed
                .key_id
                .as_ref()
                .map_or_else(|| "the agent's key".to_string(), |id| format!("key {id}"));
            let run = async {
                let key = self.key.bytes(&keyed)?;
                let archive = self.archive(&keyed, store.clone(), &archive_prefix(&keyed))?;
                crate::maintenance::run(&archive, &keyed, &key, grace).await
            };
            match run.await {
                Ok(done) => {
                    result.bytes_freed += done.result.bytes_freed;
                    result.packs_deleted += done.result.packs_deleted;
                    result.markers_pending += done.result.markers_pending;
                    messages.extend(done.messages.into_iter().map(|m| format!("{label}: {m}")));
                }
                Err(e) => errors.push(format!("{label}: {e}")),
            }
        }
        if !errors.is_empty() {
            return failed(format!(
                "{}; done meanwhile: {}",
                errors.join("; "),
                messages.join("; ")
            ));
        }
        Outcome {
            state: Some(JobState::Completed),
            messages,
            maintenance: Some(result),
            ..Default::default()
        }
    }

    async fn delete(&self, job: &AgentJob, client: &AgentClient) -> Outcome {
        let Some(point) = &job.recovery_point else {
            return failed("the job carries no recovery point");
        };
        let location = point.location.as_ref().and_then(|l| layout::split_location(&l.prefix));
        let records = &point.details.volumes;
        let mut destination = None;
        if location.is_some() || records.iter().any(|r| r.copy.is_some()) {
            destination = match self.destination(job, client).await {
                Ok(d) => Some(d),
                Err(e) => return failed(e),
            };
        }
        let mut messages = Vec::new();
        // The volumes first: if they cannot all go, the point stays (and the job is retried).
        if !records.is_empty() {
            let in_cluster = job.job.cluster_id == Some(point.cluster_id);
            let key = destination.as_ref().and_then(|(_, access)| self.key.bytes(access).ok());
            let access = destination.as_ref().map(|(_, access)| access);
            let deleted = volumes::delete(&self.kube, records, in_cluster, access.zip(key.as_ref())).await;
            messages.extend(deleted.messages);
            if !deleted.failures.is_empty() {
                let mut outcome = failed(format!(
                    "{} volume deletions failed: {}",
                    deleted.failures.len(),
                    deleted.failures.join("; ")
                ));
                outcome.messages.splice(0..0, messages);
                return outcome;
            }
        }
        let (Some((prefix, archive_id)), Some((store, _))) = (location, destination) else {
            messages.push(format!(
                "recovery point {} has no resource archive location; no archive to delete",
                point.id
            ));
            return Outcome {
                state: Some(JobState::Completed),
                messages,
                ..Default::default()
            };
        };
        // The manifest first: an archive without it is incomplete and never opened again.
        let archive = layout::ArchiveLayout::new(prefix);
        if let Err(e) = store.delete(&archive.manifest(archive_id)).await {
            return failed(format!("deleting the archive manifest: {e}"));
        }
        let files = match store.list(&archive.archive_files(archive_id)).await {
            Ok(f) => f,
            Err(e) => return failed(format!("listing the archive's files: {e}")),
        };
        let mut deleted = 1u64;
        for file in files {
            if let Err(e) = store.delete(&file.key).await {
                return failed(format!("deleting {}: {e}", file.key));
            }
            deleted += 1;
        }
        messages.push(format!(
            "deleted archive {archive_id}: its manifest and index ({deleted} files)"
        ));
        messages.push(
            "its packs, shared with other backups, are reclaimed by the repository maintenance that follows".into(),
        );
        Outcome {
            state: Some(JobState::Completed),
            messages,
            ..Default::default()
        }
    }
}

/// Runs `work` as its own task.
///
/// Called from a [`JobRunner`] future, the resource library's futures over *borrowed*
/// arguments trip a known rustc limitation (their `Send`-ness is not provable through
/// the closures inside `buffer_unordered`, "FnOnce is not general enough"); owning the
/// arguments (`'static`) and spawning avoids it.
async fn spawned<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> Result<T, String> {
    tokio::spawn(work)
        .await
        .map_err(|e| format!("the job's task ended abnormally: {e}"))
}

fn push_capped(messages: &mut Vec<String>, lines: Vec<String>, what: &str) {
    let total = lines.len();
    messages.extend(lines.into_iter().take(MAX_DETAIL_LINES));
    if total > MAX_DETAIL_LINES {
        messages.push(format!("... and {} more {what}", total - MAX_DETAIL_LINES));
    }
}

/// How a finished resource backup ends: counts, skips, and PV data honestly not taken.
fn backup_outcome(
    pv_mode: PvMode,
    prefix: &str,
    report: &BackupReport,
    ebs: Vec<EbsVolumeRef>,
    volumes: &VolumesOutcome,
) -> Outcome {
    let manifest = &report.manifest;
    let mut messages: Vec<String> = Vec::new();
    messages.push(format!(
        "backed up {} objects into archive {} ({} new, {} bytes new)",
        manifest.objects, manifest.archive_id, manifest.new_objects, manifest.new_bytes
    ));
    let skips: Vec<String> = manifest
        .skipped
        .iter()
        .map(|s| {
            let what = match (&s.namespace, s.name.is_empty()) {
                (_, true) => format!("type {}", s.resource),
                (Some(ns), false) => format!("{} {ns}/{}", s.resource, s.name),
                (None, false) => format!("{} {}", s.resource, s.name),
            };
            format!("not backed up: {what}: {}", s.reason)
        })
        .collect();
    let object_skips = manifest.skipped.iter().filter(|s| !s.name.is_empty()).count() as u64;
    push_capped(&mut messages, skips, "skips");
    let mut counters = JobCounters {
        resources: manifest.objects as u64,
        warnings: object_skips,
        ..Default::default()
    };
    let mut state = JobState::Completed;
    let mut reason = None;
    let failures: Vec<String> = report
        .errors
        .iter()
        .map(|e| match &e.namespace {
            Some(ns) => format!("FAILED {} in namespace {ns}: {}", e.resource, e.reason),
            None => format!("FAILED {}: {}", e.resource, e.reason),
        })
        .collect();
    if !failures.is_empty() {
        // What the selection holds of these types is missing from the recovery point.
        counters.errors = failures.len() as u64;
        state = JobState::Partial;
        reason = Some(format!(
            "{} resource lists failed; their objects are not in the recovery point",
            failures.len()
        ));
        push_capped(&mut messages, failures, "failures");
    }
    let mut captured = 0u64;
    if pv_mode != PvMode::None {
        let mode = serde_json::to_value(pv_mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if !ebs.is_empty() {
            messages.push(format!(
                "{} EBS volumes reported for EC2 snapshots through the cluster's linked AWS account",
                ebs.len()
            ));
        }
        push_capped(&mut messages, volumes.messages.clone(), "volume lines");
        captured = volumes.records.len() as u64;
        counters.snapshots_attempted = volumes.snapshots_attempted;
        counters.snapshots_completed = volumes.snapshots_completed;
        counters.copies_attempted = volumes.copies_attempted;
        counters.copies_completed = volumes.copies_completed;
        if manifest.pvcs.is_empty() {
            messages.push(format!(
                "pvMode {mode}: the selection holds no PersistentVolumeClaims, so there was no PV data to capture"
            ));
        } else if !volumes.warnings.is_empty() || !volumes.errors.is_empty() {
            // Claims without their data in the recovery point: PARTIAL, named on the point.
            let missing = volumes.warnings.len() + volumes.errors.len();
            counters.warnings += volumes.warnings.len() as u64;
            counters.errors += volumes.errors.len() as u64;
            state = JobState::Partial;
            let text = format!(
                "PV data incomplete: {missing} of {} selected PersistentVolumeClaims not fully captured ({} without \
                 a snapshot by design, {} failed)",
                manifest.pvcs.len(),
                volumes.warnings.len(),
                volumes.errors.len()
            );
            reason = Some(match reason {
                Some(earlier) => format!("{earlier}; {text}"),
                None => text,
            });
        }
    }
    // The claims whose data is missing come first: the lists are capped.
    let mut details = backup_details(report);
    details.warnings = volumes.warnings.iter().cloned().chain(details.warnings).collect();
    details.warning_count += volumes.warnings.len() as u64;
    details.errors = volumes.errors.iter().cloned().chain(details.errors).collect();
    details.error_count += volumes.errors.len() as u64;
    details.volumes = volumes.records.clone();
    if details.volumes.len() > arca_core::model::recovery::MAX_VOLUMES {
        messages.push(format!(
            "WARNING: only the first {} volumes are recorded on the recovery point",
            arca_core::model::recovery::MAX_VOLUMES
        ));
    }
    Outcome {
        state: Some(state),
        reason,
        counters: Some(counters),
        backup: Some(BackupResult {
            prefix: layout::archive_location(prefix, &manifest.archive_id),
            resource_count: manifest.objects as u64,
            pv_count: captured,
            snapshot_bytes: volumes.snapshot_bytes(),
            copy_bytes: volumes.copy_bytes(),
            details: details.bounded(),
            ebs_volumes: ebs,
            // Set by the caller, which knows the job's access.
            object_lock: None,
            bucket_lock: None,
        }),
        maintenance: None,
        verification: None,
        messages,
    }
}

/// The destination bucket's Object Lock configuration, for the destination to show
/// ([`judge_bucket_lock`] decides what it means for this backup).
async fn bucket_lock(store: &dyn ObjectStore, access: &DestinationAccess) -> Result<BucketLockSeen, String> {
    judge_bucket_lock(
        store.lock_configuration().await.map_err(|e| e.to_string()),
        access.object_lock.is_some(),
    )
}

/// What a backup makes of its bucket's Object Lock configuration.
#[derive(Debug, Default, PartialEq)]
struct BucketLockSeen {
    /// Reported on the destination.
    found: Option<BucketLock>,
    /// A line for the job when the bucket locks what the destination does not ask for.
    warning: Option<String>,
}

/// An immutable destination whose bucket has no Object Lock (or whose configuration
/// cannot be read) fails the backup before anything is written: nothing written there
/// would be retained. A bucket with a default retention under a destination that is not
/// immutable is worth a warning: S3 retains what Arca writes by the bucket's rule, not
/// until each point's expiry, and Arca's deletions there only hide data.
fn judge_bucket_lock(read: Result<Option<BucketLock>, String>, immutable: bool) -> Result<BucketLockSeen, String> {
    match read {
        Ok(Some(found)) if immutable && !found.enabled => Err(
            "the destination is immutable, but its bucket has no Object Lock: enable Object Lock on the bucket \
             (S3 allows it on a versioned bucket) or point the destination at one that has it"
                .into(),
        ),
        Ok(found) => {
            let warning = found
                .filter(|f| !immutable && f.enabled && f.default_mode.is_some())
                .map(|f| {
                    format!(
                        "WARNING: the bucket retains every new object by its default rule ({} for {} days) but the \
                         destination is not immutable: set its objectLock to retain each point until its expiry",
                        f.default_mode.map(|m| m.as_str()).unwrap_or_default(),
                        f.default_days.unwrap_or_default()
                    )
                });
            Ok(BucketLockSeen { found, warning })
        }
        Err(e) if immutable => Err(format!(
            "reading the destination bucket's Object Lock configuration (the agent needs \
             s3:GetBucketObjectLockConfiguration): {e}"
        )),
        // Only shown on the destination: a backup that locks nothing does not need it.
        Err(_) => Ok(BucketLockSeen::default()),
    }
}

/// The hooks' part of a backup's outcome: a line each, their outcomes on the recovery
/// point, and a failure of any of them makes it PARTIAL (the snapshots were taken: a
/// post hook's failure must not throw them away), named as a warning (`onError:
/// continue`) or an error (`fail`).
fn with_hooks(outcome: &mut Outcome, hooks: Vec<HookOutcome>) {
    if hooks.is_empty() {
        return;
    }
    push_capped(
        &mut outcome.messages,
        hooks.iter().map(HookOutcome::line).collect(),
        "hook lines",
    );
    let failed: Vec<&HookOutcome> = hooks.iter().filter(|h| !h.succeeded()).collect();
    if let Some(result) = &mut outcome.backup {
        let issue = |h: &HookOutcome| ResourceIssue {
            resource: "pods".into(),
            namespace: Some(h.namespace.clone()),
            name: h.pod.clone(),
            reason: h.line(),
        };
        let (tolerated, failing): (Vec<&HookOutcome>, Vec<&HookOutcome>) =
            failed.iter().partition(|h| h.on_error == OnError::Continue);
        let details = &mut result.details;
        details.warnings.extend(tolerated.iter().map(|h| issue(h)));
        details.warning_count += tolerated.len() as u64;
        details.errors.extend(failing.iter().map(|h| issue(h)));
        details.error_count += failing.len() as u64;
        details.hooks = hooks.clone();
        // Bounded again with what was added (the hooks' outcomes are bounded each).
        result.details = std::mem::take(details).bounded();
        if let Some(counters) = &mut outcome.counters {
            counters.warnings += tolerated.len() as u64;
            counters.errors += failing.len() as u64;
        }
    }
    if !failed.is_empty() && outcome.state == Some(JobState::Completed) {
        outcome.state = Some(JobState::Partial);
    }
    if !failed.is_empty() {
        let text = format!("{} hook commands failed", failed.len());
        outcome.reason = Some(match outcome.reason.take() {
            Some(earlier) => format!("{earlier}; {text}"),
            None => text,
        });
    }
}

/// A restore's hooks in its outcome: a line each (and each annotation that could not be
/// read); any failure makes a completed restore PARTIAL (what was restored stays).
fn with_restore_hooks(outcome: &mut Outcome, unreadable: Vec<String>, hooks: Vec<HookOutcome>) {
    let failed = hooks.iter().filter(|h| !h.succeeded()).count() + unreadable.len();
    push_capped(
        &mut outcome.messages,
        unreadable
            .into_iter()
            .map(|e| format!("FAILED: restore hook not run: {e}"))
            .collect(),
        "unreadable hook annotations",
    );
    push_capped(
        &mut outcome.messages,
        hooks.iter().map(HookOutcome::line).collect(),
        "hook lines",
    );
    if failed == 0 {
        return;
    }
    if let Some(counters) = &mut outcome.counters {
        counters.errors += failed as u64;
    }
    if outcome.state == Some(JobState::Completed) {
        outcome.state = Some(JobState::Partial);
    }
    let text = format!("{failed} restore hook commands failed");
    outcome.reason = Some(match outcome.reason.take() {
        Some(earlier) => format!("{earlier}; {text}"),
        None => text,
    });
}

fn issue(s: &Skipped) -> ResourceIssue {
    ResourceIssue {
        resource: s.resource.clone(),
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        reason: s.reason.clone(),
    }
}

/// What the recovery point records besides its totals (bounded by the caller).
fn backup_details(report: &BackupReport) -> BackupDetails {
    // Warnings: objects left out on purpose by a skip rule. Whole types left out by
    // design (events, not listable) stay in the manifest only; failed lists are errors.
    let warnings: Vec<ResourceIssue> = report
        .manifest
        .skipped
        .iter()
        .filter(|s| !s.name.is_empty())
        .map(issue)
        .collect();
    BackupDetails {
        counts_by_kind: report.counts_by_kind.clone(),
        counts_by_namespace: report.counts_by_namespace.clone(),
        warning_count: warnings.len() as u64,
        warnings,
        error_count: report.errors.len() as u64,
        errors: report.errors.iter().map(issue).collect(),
        volumes: Vec::new(),
        hooks: Vec::new(),
    }
}

/// A restore's per-object outcomes as the control plane stores them.
fn object_results(items: &[resources::restore::ItemResult]) -> Vec<RestoreObjectResult> {
    items
        .iter()
        .map(|item| {
            let (outcome, reason) = match &item.outcome {
                ItemOutcome::Created => (ObjectOutcome::Created, None),
                ItemOutcome::Updated => (ObjectOutcome::Updated, None),
                ItemOutcome::Skipped { reason } => (ObjectOutcome::Skipped, Some(reason.clone())),
                ItemOutcome::Failed { error } => (ObjectOutcome::Failed, Some(error.clone())),
            };
            RestoreObjectResult {
                resource: item.resource.clone(),
                namespace: item.namespace.clone(),
                name: item.name.clone(),
                outcome,
                reason,
            }
            .bounded()
        })
        .collect()
}

/// Counts the objects a backup has archived so far, for progress reports.
struct CountingArchive {
    inner: ObjectStoreArchive,
    objects: Arc<AtomicU64>,
}

#[async_trait]
impl ResourceArchive for CountingArchive {
    async fn begin(&self) -> resources::Result<Box<dyn ArchiveWriter>> {
        Ok(Box::new(CountingWriter {
            inner: self.inner.begin().await?,
            objects: self.objects.clone(),
        }))
    }

    async fn open(&self, archive_id: &str) -> resources::Result<Box<dyn ArchiveReader>> {
        self.inner.open(archive_id).await
    }
}

struct CountingWriter {
    inner: Box<dyn ArchiveWriter>,
    objects: Arc<AtomicU64>,
}

#[async_trait]
impl ArchiveWriter for CountingWriter {
    fn archive_id(&self) -> &str {
        self.inner.archive_id()
    }

    async fn put_object(&self, entry: NewEntry, json: Vec<u8>) -> resources::Result<bool> {
        let read = json.len() as u64;
        let new = self.inner.put_object(entry, json).await?;
        self.objects.fetch_add(1, Ordering::Relaxed);
        // An object the archive already held is not written again: its bytes are deduplicated.
        let deduplicated = if new { 0 } else { read };
        crate::metrics::global().data_read(crate::metrics::Data::Resources, read, deduplicated);
        Ok(new)
    }

    async fn finish(&self, manifest: Manifest) -> resources::Result<Manifest> {
        self.inner.finish(manifest).await
    }
}

/// An object store that counts the bytes put through it as the resource data a backup
/// wrote ([`crate::metrics`]); everything else passes through.
struct CountingStore(Arc<dyn ObjectStore>);

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put(&self, key: &str, body: bytes::Bytes) -> arca_core::Result<()> {
        let len = body.len() as u64;
        self.0.put(key, body).await?;
        crate::metrics::global().data_written(crate::metrics::Data::Resources, len);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, body: bytes::Bytes) -> arca_core::Result<bool> {
        let len = body.len() as u64;
        let written = self.0.put_if_absent(key, body).await?;
        if written {
            crate::metrics::global().data_written(crate::metrics::Data::Resources, len);
        }
        Ok(written)
    }

    async fn get(&self, key: &str) -> arca_core::Result<bytes::Bytes> {
        self.0.get(key).await
    }

    async fn get_at_most(&self, key: &str, max: u64) -> arca_core::Result<Option<bytes::Bytes>> {
        self.0.get_at_most(key, max).await
    }

    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> arca_core::Result<bytes::Bytes> {
        self.0.get_range(key, range).await
    }

    async fn list(&self, prefix: &str) -> arca_core::Result<Vec<arca_core::ports::ObjectMeta>> {
        self.0.list(prefix).await
    }

    async fn delete(&self, key: &str) -> arca_core::Result<()> {
        self.0.delete(key).await
    }

    async fn retained_until(&self, key: &str) -> arca_core::Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.0.retained_until(key).await
    }

    async fn retain_until(&self, key: &str, until: chrono::DateTime<chrono::Utc>) -> arca_core::Result<()> {
        self.0.retain_until(key, until).await
    }

    async fn lock_configuration(&self) -> arca_core::Result<Option<BucketLock>> {
        self.0.lock_configuration().await
    }

    async fn abort_stale_uploads(&self, older_than: Duration) -> arca_core::Result<u64> {
        self.0.abort_stale_uploads(older_than).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_immutable_backup_needs_a_bucket_with_object_lock_and_others_are_warned_of_one() {
        use arca_core::model::destination::LockMode;
        let lock = |enabled, default_mode: Option<LockMode>| BucketLock {
            enabled,
            default_mode,
            default_days: default_mode.map(|_| 30),
        };
        let refused = judge_bucket_lock(Ok(Some(lock(false, None))), true).unwrap_err();
        assert!(refused.contains("its bucket has no Object Lock"), "{refused}");
        let unreadable = judge_bucket_lock(Err("AccessDenied".into()), true).unwrap_err();
        assert!(
            unreadable.contains("s3:GetBucketObjectLockConfiguration") && unreadable.contains("AccessDenied"),
            "{unreadable}"
        );
        // Immutable on a locked bucket: reported, nothing to say.
        let seen = judge_bucket_lock(Ok(Some(lock(true, Some(LockMode::Governance)))), true).unwrap();
        assert_eq!(seen.found, Some(lock(true, Some(LockMode::Governance))));
        assert_eq!(seen.warning, None);
        // Not immutable: an unreadable configuration costs nothing, a default rule a warning.
        assert_eq!(
            judge_bucket_lock(Err("AccessDenied".into()), false).unwrap(),
            BucketLockSeen::default()
        );
        assert_eq!(
            judge_bucket_lock(Ok(Some(lock(true, None))), false).unwrap().warning,
            None
        );
        let warned = judge_bucket_lock(Ok(Some(lock(true, Some(LockMode::Compliance)))), false)
            .unwrap()
            .warning
            .unwrap();
        assert!(warned.contains("COMPLIANCE for 30 days"), "{warned}");
        assert_eq!(judge_bucket_lock(Ok(None), false).unwrap(), BucketLockSeen::default());
    }

    fn manifest(pvcs: usize) -> Manifest {
        Manifest {
            archive_id: "01abc".into(),
            objects: 7,
            pvcs: (0..pvcs)
                .map(|i| crate::resources::archive::PvcRef {
                    namespace: "ns".into(),
                    name: format!("data-{i}"),
                    volume_name: None,
                    storage_class: None,
                })
                .collect(),
            ..Manifest::default()
        }
    }

    fn report(pvcs: usize) -> BackupReport {
        BackupReport {
            archive_id: "01abc".into(),
            manifest: manifest(pvcs),
            counts_by_kind: Default::default(),
            counts_by_namespace: Default::default(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn counts_warnings_and_failed_lists_reach_the_backup_result() {
        let mut r = report(0);
        let outcome = |r: &_| backup_outcome(PvMode::None, "o/c/resources", r, Vec::new(), &VolumesOutcome::default());
        r.counts_by_kind = [("configmaps".to_string(), 5), ("namespaces".to_string(), 2)].into();
        r.counts_by_namespace = [("shop".to_string(), 5), ("(cluster)".to_string(), 2)].into();
        let skip = |name: &str, reason: &str| Skipped {
            resource: "secrets".into(),
            namespace: Some("shop".into()),
            name: name.into(),
            reason: reason.into(),
        };
        // One skipped object, one type excluded by design (not a warning).
        r.manifest.skipped = vec![skip("sa-token", "service account token"), skip("", "never backed up")];
        let out = outcome(&r);
        assert_eq!(out.state, Some(JobState::Completed));
        let details = out.backup.unwrap().details;
        assert_eq!(details.counts_by_kind["configmaps"], 5);
        assert_eq!(details.counts_by_namespace["(cluster)"], 2);
        assert_eq!(details.warning_count, 1);
        assert_eq!(details.warnings[0].name, "sa-token");
        assert_eq!(details.warnings[0].reason, "service account token");
        assert_eq!(details.error_count, 0);

        // A failed list: the backup is PARTIAL and names it.
        r.errors = vec![Skipped {
            resource: "widgets.example.com".into(),
            namespace: None,
            name: String::new(),
            reason: "listing failed: 503".into(),
        }];
        let out = outcome(&r);
        assert_eq!(out.state, Some(JobState::Partial));
        assert!(
            out.reason.as_deref().unwrap().contains("1 resource lists failed"),
            "{:?}",
            out.reason
        );
        assert!(
            out.messages.iter().any(|m| m.contains("FAILED widgets.example.com")),
            "{:?}",
            out.messages
        );
        assert_eq!(out.counters.unwrap().errors, 1);
        let details = out.backup.unwrap().details;
        assert_eq!(details.error_count, 1);
        assert_eq!(details.errors[0].resource, "widgets.example.com");
    }

    #[test]
    fn every_restored_object_becomes_a_result_with_its_reason() {
        use crate::resources::restore::ItemResult;
        let item = |name: &str, outcome| ItemResult {
            resource: "configmaps".into(),
            namespace: Some("ns".into()),
            name: name.into(),
            outcome,
        };
        let results = object_results(&[
            item("a", ItemOutcome::Created),
            item("b", ItemOutcome::Updated),
            item(
                "c",
                ItemOutcome::Skipped {
                    reason: "exists".into(),
                },
            ),
            item("d", ItemOutcome::Failed { error: "denied".into() }),
        ]);
        let got: Vec<_> = results
            .iter()
            .map(|r| (r.name.as_str(), r.outcome, r.reason.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", ObjectOutcome::Created, None),
                ("b", ObjectOutcome::Updated, None),
                ("c", ObjectOutcome::Skipped, Some("exists")),
                ("d", ObjectOutcome::Failed, Some("denied")),
            ]
        );
    }

    fn pvc_issue(name: &str, reason: &str) -> ResourceIssue {
        ResourceIssue {
            resource: "persistentvolumeclaims".into(),
            namespace: Some("ns".into()),
            name: name.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn claims_without_their_data_end_partial_and_are_named_on_the_point() {
        let volumes = VolumesOutcome {
            records: vec![arca_core::model::recovery::VolumeRecord {
                namespace: "ns".into(),
                pvc: "data-0".into(),
                size_bytes: 5,
                snapshot: Some(arca_core::model::recovery::CsiSnapshotRecord {
                    name: "arca-data-0-1234abcd".into(),
                    restore_size: Some(100),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            warnings: vec![pvc_issue("data-1", "no VolumeSnapshotClass for its CSI driver x.csi")],
            errors: Vec::new(),
            messages: vec!["PVC ns/data-0: VolumeSnapshot arca-data-0-1234abcd (class c) ready".into()],
            snapshots_attempted: 1,
            snapshots_completed: 1,
            ..Default::default()
        };
        let out = backup_outcome(PvMode::Snapshot, "o/c/resources", &report(2), Vec::new(), &volumes);
        assert_eq!(out.state, Some(JobState::Partial));
        assert!(
            out.reason
                .as_deref()
                .unwrap()
                .contains("1 of 2 selected PersistentVolumeClaims"),
            "{:?}",
            out.reason
        );
        assert!(out.messages.iter().any(|m| m.contains("VolumeSnapshot arca-data-0")));
        let counters = out.counters.clone().unwrap();
        assert_eq!(
            (
                counters.snapshots_attempted,
                counters.snapshots_completed,
                counters.warnings
            ),
            (1, 1, 1)
        );
        let result = out.backup.unwrap();
        assert_eq!(result.prefix, "o/c/resources/archives/01abc");
        assert_eq!(
            (result.resource_count, result.pv_count, result.snapshot_bytes),
            (7, 1, 100)
        );
        assert_eq!(result.details.volumes.len(), 1);
        assert_eq!(result.details.warning_count, 1);
        assert_eq!(result.details.warnings[0].name, "data-1");
        assert!(result.details.warnings[0].reason.contains("no VolumeSnapshotClass"));

        let all = VolumesOutcome {
            warnings: Vec::new(),
            ..volumes.clone()
        };
        let complete = backup_outcome(PvMode::Snapshot, "o/c/resources", &report(1), Vec::new(), &all);
        assert_eq!(complete.state, Some(JobState::Completed), "{:?}", complete.reason);

        let none = backup_outcome(
            PvMode::None,
            "o/c/resources",
            &report(2),
            Vec::new(),
            &VolumesOutcome::default(),
        );
        assert_eq!(none.state, Some(JobState::Completed));

        let no_claims = backup_outcome(
            PvMode::SnapshotAndCopy,
            "o/c/resources",
            &report(0),
            Vec::new(),
            &VolumesOutcome::default(),
        );
        assert_eq!(no_claims.state, Some(JobState::Completed));
        assert!(no_claims.messages.iter().any(|m| m.contains("no PV data to capture")));
    }

    /// EBS-backed claims go to the control plane's EC2 snapshots; they travel with the result.
    #[test]
    fn ebs_volumes_are_reported() {
        let mut r = report(2);
        r.manifest.pvcs[0].volume_name = Some("pv-0".into());
        r.manifest.pvcs[1].volume_name = Some("pv-1".into());
        let ebs = |pv: &str| EbsVolumeRef {
            pv_name: pv.into(),
            volume_id: format!("vol-0{pv}").replace("pv-", ""),
            ..Default::default()
        };
        let all = backup_outcome(
            PvMode::Snapshot,
            "o/c/resources",
            &r,
            vec![ebs("pv-0"), ebs("pv-1")],
            &VolumesOutcome::default(),
        );
        assert_eq!(all.state, Some(JobState::Completed), "{:?}", all.messages);
        assert!(all.messages.iter().any(|m| m.contains("2 EBS volumes reported")));
        assert_eq!(all.backup.unwrap().ebs_volumes.len(), 2);
    }

    #[test]
    fn the_key_comes_from_the_control_plane_unless_configured_and_is_never_guessed() {
        let access = |archive_key| DestinationAccess {
            destination_id: arca_core::ids::DestinationId::new(),
            target: arca_core::model::destination::DestinationTarget::LocalFilesystem { path: "/tmp/x".into() },
            cluster_prefix: "o/c/".into(),
            credentials: None,
            archive_key,
            key_id: None,
            earlier_keys: Vec::new(),
            object_lock: None,
            customer_key: None,
        };
        let ring = arca_core::model::archive_key::ArchiveKeyring::new(
            arca_core::model::archive_key::ArchiveMasterKey::from_bytes([3; 32]),
            vec![],
        );
        let handed = ring
            .key(
                &arca_core::ids::OrgId::new(),
                &arca_core::ids::ClusterId::new(),
                &ring.current_id(1),
            )
            .unwrap();
        let from_cp = ArchiveKey::FromControlPlane
            .bytes(&access(Some(handed.clone())))
            .unwrap();
        assert_eq!(Some(from_cp), handed.bytes());
        let err = ArchiveKey::FromControlPlane.bytes(&access(None)).unwrap_err();
        assert!(err.contains("ARCA_ARCHIVE_MASTER_KEY"), "{err}");
        assert_eq!(
            ArchiveKey::Configured([9; 32]).bytes(&access(Some(handed))).unwrap(),
            [9; 32]
        );
    }

    #[test]
    fn archive_keys_are_64_hex_digits_and_stay_out_of_debug() {
        let key = ArchiveKey::from_hex(&"ab".repeat(32)).unwrap();
        assert!(matches!(key, ArchiveKey::Configured(k) if k == [0xab; 32]));
        assert!(!format!("{key:?}").contains("ab"), "{key:?}");
        assert!(ArchiveKey::from_hex("abc").is_err());
        assert!(ArchiveKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
