//! Protection on AWS of Kubernetes recovery points (EBS snapshots) and EKS re-creation.

use super::cloud_accounts::check_eks_name;
use crate::control_plane::ControlPlane;
use crate::control_plane::retry_on_stale;
use crate::ids::{CloudAccountId, ClusterId, JobId, OrgId};
use crate::ids::{EksRecreationId, RecoveryPointId};
use crate::model::agent::AgentPrincipal;
use crate::model::agent::CompletionReport;
use crate::model::auth::{Operation, Principal};
use crate::model::cloud::account::{CloudAccount, CloudAccountState};
use crate::model::cloud::ebs::{
    ClusterAwsLink, EbsSnapshotRef, EbsSnapshotsTaken, EbsVolumeRef, EksRecreation, EksRecreationState,
    RecoveryPointAws, snapshot_tags,
};
use crate::model::cloud::inventory::{AwsInventoryId, AwsResource};
use crate::model::cluster::{Cluster, ClusterSpec};
use crate::model::job::{Job, JobState, JobType};
use crate::model::recovery::RecoveryPoint;
use crate::model::restore::RestoreSpec;
use crate::ports::rds::{EksRecreationWorkMessage, RdsWorkQueue};
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};
use std::sync::Arc;
use std::time::Duration;

impl ControlPlane {
    /// The linked account and role of a cluster's AWS link.
    pub(in crate::control_plane) async fn linked_role(
        &self,
        org: &OrgId,
        account: &CloudAccountId,
    ) -> Result<crate::model::cloud::account::RoleRef> {
        let account = self.store.get::<CloudAccount>(org, account).await?;
        match (account.state, account.role()) {
            (CloudAccountState::Active, Some(role)) => Ok(role),
            (state, _) => Err(Error::conflict(format!(
                "cloud account {} is {state:?}, so Arca cannot act in it",
                account.id
            ))),
        }
    }

    /// Whether the control plane snapshots a cluster's EBS volumes itself for its next
    /// backup: AWS access is configured, the cluster is linked and its account is active.
    pub(in crate::control_plane) async fn ebs_by_control_plane(&self, org: &OrgId, cluster: &ClusterId) -> bool {
        if self.cloud.is_none() {
            return false;
        }
        let Ok(Some(cluster)) = self.store.find::<Cluster>(org, cluster).await else {
            return false;
        };
        match cluster.spec.aws {
            Some(link) => self.linked_role(org, &link.cloud_account_id).await.is_ok(),
            None => false,
        }
    }

    /// After a K8S_BACKUP's recovery point is stored: EBS snapshots of the volumes the
    /// agent found and the EKS cluster's metadata, through the cluster's linked account,
    /// kept beside the point. Runs once per point (a repeated completion finds the record).
    /// AWS failures are recorded on it, not raised: the resource backup itself succeeded.
    /// Returns the EBS volumes left without a snapshot, one line each (PV, volume, cause).
    pub(crate) async fn protect_on_aws(&self, job: &Job, report: &CompletionReport) -> Result<Vec<String>> {
        let (JobType::K8sBackup, Some(rp_id), Some(cluster_id)) = (job.job_type, job.recovery_point_id, job.cluster_id)
        else {
            return Ok(Vec::new());
        };
        if !matches!(job.state, JobState::Completed | JobState::Partial) {
            return Ok(Vec::new());
        }
        let volumes = report
            .backup
            .as_ref()
            .map(|b| b.ebs_volumes.clone())
            .unwrap_or_default();
        let none_taken = |why: &str| -> Vec<String> {
            volumes
                .iter()
                .map(|v| format!("PV {} (EBS {}): not snapshotted: {why}", v.pv_name, v.volume_id))
                .collect()
        };
        if self.cloud.is_none() {
            return Ok(none_taken("this deployment has no AWS access configured"));
        }
        let cluster = self.store.get::<Cluster>(&job.org_id, &cluster_id).await?;
        let Some(link) = cluster.spec.aws else {
            return Ok(none_taken("the cluster is not linked to an AWS account"));
        };
        if self
            .store
            .find::<RecoveryPointAws>(&job.org_id, &rp_id)
            .await?
            .is_some()
        {
            return Ok(Vec::new());
        }
        let rp = self.store.get::<RecoveryPoint>(&job.org_id, &rp_id).await?;
        let mut record = RecoveryPointAws {
            recovery_point_id: rp_id,
            org_id: job.org_id,
            cloud_account_id: link.cloud_account_id,
            region: link.region.clone(),
            ebs_snapshots: Vec::new(),
            eks: None,
            errors: Vec::new(),
            created_at: self.now(),
            version: 0,
        };
        // Taken while the job ran, between its hooks (`agent_ebs_snapshots`); the volumes
        // reported only now (an agent that did not ask) are taken now, crash-consistent.
        let earlier = job.ebs_snapshots.clone().unwrap_or_default();
        let later: Vec<EbsVolumeRef> = volumes
            .iter()
            .filter(|v| !earlier.volumes.contains(&v.volume_id))
            .cloned()
            .collect();
        let now_taken = self
            .snapshot_volumes(&job.org_id, &cluster_id, &link, &rp_id, rp.expires_at, &later)
            .await;
        let mut unprotected = Vec::new();
        for taken in [earlier, now_taken] {
            record.ebs_snapshots.extend(taken.snapshots);
            record.errors.extend(taken.errors);
            unprotected.extend(taken.unprotected);
        }
        if let Some(name) = &link.eks_cluster_name {
            let key = AwsInventoryId {
                cloud_account_id: link.cloud_account_id,
                region: link.region.clone(),
            };
            let saved = self.store.find_inventory(&job.org_id, &key).await?.and_then(|inv| {
                inv.present().find_map(|e| match &e.resource {
                    AwsResource::EksCluster(c) if c.name == *name => Some(c.clone()),
                    _ => None,
                })
            });
            match saved {
                Some(eks) => record.eks = Some(eks),
                None => record.errors.push(format!(
                    "EKS cluster {name} is not in the inventory of {} in {}: its metadata was not saved (run the inventory)",
                    link.cloud_account_id, link.region
                )),
            }
        }
        match self.store.create(record).await {
            Ok(_) => Ok(unprotected),
            // Another completion of the same job recorded it (and amended the job).
            Err(Error::Conflict { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// EC2 snapshots of `volumes` for point `rp_id` (tagged with it and its expiry), through
    /// `link`'s account: only of the volumes EC2 shows as this cluster's (an agent's word is
    /// not enough). What could not be snapshotted is in the answer's errors, never raised.
    async fn snapshot_volumes(
        &self,
        org: &OrgId,
        cluster_id: &ClusterId,
        link: &ClusterAwsLink,
        rp_id: &RecoveryPointId,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        volumes: &[EbsVolumeRef],
    ) -> EbsSnapshotsTaken {
        let mut taken = EbsSnapshotsTaken {
            cloud_account_id: link.cloud_account_id,
            region: link.region.clone(),
            volumes: volumes.iter().map(|v| v.volume_id.clone()).collect(),
            ..EbsSnapshotsTaken::default()
        };
        if volumes.is_empty() {
            return taken;
        }
        let failed = |taken: &mut EbsSnapshotsTaken, volume: &EbsVolumeRef, why: &str| {
            taken.errors.push(format!(
                "EBS snapshot of {} (PV {}): {why}",
                volume.volume_id, volume.pv_name
            ));
            taken.unprotected.push(format!(
                "PV {} (EBS {}): not snapshotted: {why}",
                volume.pv_name, volume.volume_id
            ));
        };
        let Some(cloud) = &self.cloud else {
            for v in volumes {
                failed(&mut taken, v, "this deployment has no AWS access configured");
            }
            return taken;
        };
        let role = match self.linked_role(org, &link.cloud_account_id).await {
            Ok(role) => role,
            Err(e) => {
                taken.errors.push(format!("EBS volumes not snapshotted: {e}"));
                taken.unprotected = volumes
                    .iter()
                    .map(|v| format!("PV {} (EBS {}): not snapshotted: {e}", v.pv_name, v.volume_id))
                    .collect();
                return taken;
            }
        };
        let ids: Vec<String> = volumes.iter().map(|v| v.volume_id.clone()).collect();
        let described = cloud
            .connector
            .describe_volumes(&role, &link.region, &ids)
            .await
            .map_err(Error::from);
        for volume in volumes {
            let owned = match &described {
                Ok(found) => match found.iter().find(|v| v.volume_id == volume.volume_id) {
                    Some(v) => v.check_owner(cluster_id, &volume.pv_name, link.eks_cluster_name.as_deref()),
                    None => Err(format!("no such volume in {}", link.region)),
                },
                Err(e) => Err(format!("describing the volumes: {e}")),
            };
            let snapshot = match owned {
                Ok(()) => {
                    let tags = snapshot_tags(rp_id, expires_at, volume);
                    cloud
                        .connector
                        .snapshot_volume(&role, &link.region, &volume.volume_id, &tags)
                        .await
                        .map_err(|e| Error::from(e).to_string())
                }
                Err(why) => Err(why),
            };
            match snapshot {
                Ok(snapshot_id) => taken.snapshots.push(EbsSnapshotRef::of(volume, snapshot_id)),
                Err(e) => failed(&mut taken, volume, &e),
            }
        }
        taken
    }

    /// Snapshots a running backup's EBS volumes now, between its pre and post hooks, for
    /// the point it will make: the agent asks once its pre hooks have run (the application
    /// is quiesced), and EC2 takes a snapshot at the moment it is asked for, so the post
    /// hooks may run as soon as this answers. Recorded on the job (the point takes them at
    /// completion); asked again, the same answer.
    pub async fn agent_ebs_snapshots(
        &self,
        agent: &AgentPrincipal,
        session: &str,
        id: &JobId,
        volumes: Vec<EbsVolumeRef>,
    ) -> Result<EbsSnapshotsTaken> {
        let job = self.running_job(agent, session, id).await?;
        if job.job_type != JobType::K8sBackup {
            return Err(Error::invalid("id", "EBS snapshots are taken for K8S_BACKUP jobs"));
        }
        crate::model::agent::BackupResult {
            ebs_volumes: volumes.clone(),
            ..Default::default()
        }
        .check()?;
        if let Some(taken) = job.ebs_snapshots {
            return Ok(taken);
        }
        let cluster = self.store.get::<Cluster>(&agent.org_id, &agent.cluster_id).await?;
        let Some(link) = cluster.spec.aws else {
            return Err(Error::conflict(format!(
                "cluster {} is not linked to an AWS account: its EBS volumes are not Arca's to snapshot",
                cluster.id
            )));
        };
        // The point's id, chosen now (`Default` makes a fresh one): the snapshots are
        // tagged with it.
        let rp_id = job.recovery_point_id.unwrap_or_default();
        let taken = self
            .snapshot_volumes(
                &agent.org_id,
                &cluster.id,
                &link,
                &rp_id,
                job.recovery_point_expires_at,
                &volumes,
            )
            .await;
        let (org, taken_ref) = (agent.org_id, &taken);
        self.retrying(|| async move {
            let mut job = self.store.get::<Job>(&org, id).await?;
            if job.ebs_snapshots.is_some() {
                return Ok(());
            }
            let expected = job.version;
            let now = self.now();
            job.recovery_point_id = Some(rp_id);
            job.ebs_snapshots = Some(taken_ref.clone());
            job.log(
                now,
                format!(
                    "EBS snapshots taken between the hooks: {}",
                    taken_ref
                        .snapshots
                        .iter()
                        .map(|s| format!("{} (PV {})", s.snapshot_id, s.pv_name))
                        .chain(taken_ref.unprotected.iter().cloned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            job.updated_at = now;
            self.store
                .update(job, expected)
                .await
                .map(|_| ())
                .map_err(retry_on_stale)
        })
        .await?;
        Ok(taken)
    }

    /// The EC2 snapshots a job took that no point keeps (it FAILED or was CANCELED):
    /// deleted, those already gone included.
    pub(in crate::control_plane) async fn discard_ebs_snapshots(&self, job: &Job) -> Result<()> {
        let Some(taken) = job.ebs_snapshots.as_ref().filter(|t| !t.snapshots.is_empty()) else {
            return Ok(());
        };
        let cloud = self.cloud()?;
        let role = self.linked_role(&job.org_id, &taken.cloud_account_id).await?;
        for s in &taken.snapshots {
            match cloud
                .connector
                .delete_volume_snapshot(&role, &taken.region, &s.snapshot_id)
                .await
                .map_err(Error::from)
            {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A COMPLETED backup with EBS volumes left without a snapshot becomes PARTIAL, naming
    /// them: a job never says its claims are protected when they are not.
    pub(in crate::control_plane) async fn ebs_unprotected(&self, job: &Job, unprotected: Vec<String>) -> Result<Job> {
        let (org, id) = (job.org_id, job.id);
        let unprotected = &unprotected;
        let job = self
            .retrying(|| async move {
                let mut job = self.store.get::<Job>(&org, &id).await?;
                if job.state != JobState::Completed {
                    return Ok(job);
                }
                let expected = job.version;
                let now = self.now();
                let text = format!(
                    "PV data incomplete: {} EBS volume(s) have no snapshot",
                    unprotected.len()
                );
                job.state = JobState::Partial;
                let reason = match job.reason.take() {
                    Some(earlier) => format!("{earlier}; {text}"),
                    None => text,
                };
                job.set_reason(reason);
                job.counters.errors += unprotected.len() as u64;
                for line in unprotected {
                    job.log(now, line.clone());
                }
                job.log(now, "ended PARTIAL (EBS snapshots)".to_string());
                job.updated_at = now;
                self.store.update(job, expected).await.map_err(retry_on_stale)
            })
            .await?;
        // Its point is partial too: it must not count toward keepLast.
        if let Some(rp_id) = job.recovery_point_id {
            self.retrying(|| async move {
                let mut rp = self.store.get::<RecoveryPoint>(&org, &rp_id).await?;
                if rp.partial {
                    return Ok(());
                }
                let expected = rp.version;
                rp.partial = true;
                rp.updated_at = self.now();
                self.store
                    .update(rp, expected)
                    .await
                    .map(|_| ())
                    .map_err(retry_on_stale)
            })
            .await?;
        }
        self.store.get::<Job>(&org, &id).await
    }

    /// What Arca made on AWS for a point, removed before the point goes (retention).
    /// Snapshots already gone count as deleted; an error leaves the record for the next try.
    pub(crate) async fn delete_aws_artifacts(&self, rp: &RecoveryPoint) -> Result<()> {
        let Some(record) = self.store.find::<RecoveryPointAws>(&rp.org_id, &rp.id).await? else {
            return Ok(());
        };
        if !record.ebs_snapshots.is_empty() {
            let cloud = self.cloud()?;
            let role = self.linked_role(&rp.org_id, &record.cloud_account_id).await?;
            for s in &record.ebs_snapshots {
                cloud
                    .connector
                    .delete_volume_snapshot(&role, &record.region, &s.snapshot_id)
                    .await
                    .map_err(Error::from)?;
            }
        }
        self.store
            .delete::<RecoveryPointAws>(&rp.org_id, &rp.id, record.version)
            .await
    }

    /// The EBS snapshots and EKS metadata Arca keeps for a recovery point, if any.
    pub async fn get_recovery_point_aws(
        &self,
        p: &Principal,
        id: &RecoveryPointId,
    ) -> Result<Option<RecoveryPointAws>> {
        p.require(Operation::GetRecoveryPointAws)?;
        self.get_recovery_point(p, id).await?;
        self.store.find::<RecoveryPointAws>(&p.org_id, id).await
    }

    /// Starts re-creating the EKS cluster a recovery point was taken of, under `name`, in
    /// the same account and region, from the metadata saved with the point. The AWS work
    /// queue then checks EKS every [`EKS_RECHECK_DELAY`] ([`ControlPlane::eks_recreation_step`]).
    pub async fn recreate_eks(&self, p: &Principal, rp_id: &RecoveryPointId, name: &str) -> Result<EksRecreation> {
        p.require(Operation::RecreateEks)?;
        check_eks_name(name)?;
        let cloud = self.cloud()?;
        self.get_recovery_point(p, rp_id).await?;
        let saved = self.store.find::<RecoveryPointAws>(&p.org_id, rp_id).await?;
        let Some((record, eks)) = saved.and_then(|r| r.eks.clone().map(|e| (r, e))) else {
            return Err(Error::conflict(format!(
                "recovery point {rp_id} has no saved EKS metadata (its cluster was not linked to an EKS cluster)"
            )));
        };
        let role = self.linked_role(&p.org_id, &record.cloud_account_id).await?;
        cloud
            .connector
            .create_eks_cluster(&role, &record.region, name, &eks)
            .await
            .map_err(Error::from)?;
        let now = self.now();
        let id = EksRecreationId::new();
        // The message goes before the record: if storing fails, its delivery finds
        // nothing and is dropped; the other way round a stored re-creation could be left
        // with no message to move it.
        self.enqueue_eks(&p.org_id, &id, EKS_RECHECK_DELAY).await?;
        self.store
            .create(EksRecreation {
                next_step: Some(
                    "EKS is creating the cluster (10-15 minutes); Arca checks it every minute and moves on when it is ACTIVE"
                        .into(),
                ),
                ..EksRecreation::creating_cluster(
                    id,
                    p.org_id,
                    *rp_id,
                    record.cloud_account_id,
                    record.region,
                    name.to_string(),
                    now,
                )
            })
            .await
    }

    /// A re-creation as stored. Where no work queue is wired (nothing would step it), a
    /// read of one still creating checks EKS once, as [`ControlPlane::eks_recreation_step`].
    pub async fn get_eks_recreation(&self, p: &Principal, id: &EksRecreationId) -> Result<EksRecreation> {
        p.require(Operation::GetEksRecreation)?;
        let r = self.store.get::<EksRecreation>(&p.org_id, id).await?;
        if r.state == EksRecreationState::CreatingCluster && self.work_queue().is_none() {
            return self.check_eks_recreation(r).await;
        }
        Ok(r)
    }

    /// The org's re-creations, newest first.
    pub async fn list_eks_recreations(&self, p: &Principal, page: &PageRequest) -> Result<Listing<EksRecreation>> {
        p.require(Operation::ListEksRecreations)?;
        self.store
            .list_where(&p.org_id, page, false, |_: &EksRecreation| true)
            .await
    }

    /// One delivery of a re-creation's work message: checks EKS once. Once the cluster is
    /// ACTIVE its node groups are created, an Arca cluster is registered for it and the
    /// restore of the point is queued there (it runs when the agent, installed by the
    /// user, connects). While EKS is still creating it the message is sent again. A
    /// finished re-creation is returned as it is, so a duplicate message does nothing.
    pub async fn eks_recreation_step(&self, org: &OrgId, id: &EksRecreationId) -> Result<EksRecreation> {
        let r = self.store.get::<EksRecreation>(org, id).await?;
        if r.state != EksRecreationState::CreatingCluster {
            return Ok(r);
        }
        let r = self.check_eks_recreation(r).await?;
        if r.state == EksRecreationState::CreatingCluster {
            self.enqueue_eks(org, id, EKS_RECHECK_DELAY).await?;
        }
        Ok(r)
    }

    /// The AWS work queue, when the deployment has one (it is wired with RDS).
    pub(in crate::control_plane) fn work_queue(&self) -> Option<Arc<dyn RdsWorkQueue>> {
        self.rds.as_ref().and_then(|w| w.queue.clone())
    }

    pub(in crate::control_plane) async fn enqueue_eks(
        &self,
        org: &OrgId,
        id: &EksRecreationId,
        delay: Duration,
    ) -> Result<()> {
        if let Some(q) = self.work_queue() {
            let message = EksRecreationWorkMessage {
                org_id: *org,
                eks_recreation_id: *id,
            };
            q.send(&message.into(), delay.min(crate::ports::rds::MAX_DELAY)).await?;
        }
        Ok(())
    }

    /// One check of EKS for a re-creation still creating its cluster, stored. EKS that
    /// cannot be asked (throttled, the account's role broken for a while) is recorded in
    /// `error` and tried again at the next check; only a cluster that is gone or failed,
    /// or still creating after [`EKS_CREATE_TIMEOUT`], fails the re-creation.
    pub(in crate::control_plane) async fn check_eks_recreation(&self, mut r: EksRecreation) -> Result<EksRecreation> {
        let expected = r.version;
        let now = self.now();
        r.updated_at = now;
        let timed_out = (now - r.created_at)
            .to_std()
            .is_ok_and(|creating| creating > EKS_CREATE_TIMEOUT);
        let checked = async {
            let cloud = self.cloud()?;
            let role = self.linked_role(&r.org_id, &r.cloud_account_id).await?;
            let status = cloud
                .connector
                .eks_cluster_status(&role, &r.region, &r.name)
                .await
                .map_err(Error::from)?;
            Ok::<_, Error>((role, status))
        }
        .await;
        match checked {
            Ok((role, Some(status))) if status == "ACTIVE" => {
                r.error = None;
                // Claimed first: of two deliveries racing here, only the one whose write
                // lands creates the node groups, the Arca cluster and the restore.
                let mut r = self.store.update(r, expected).await?;
                let expected = r.version;
                if let Err(e) = self.finish_eks_recreation(&mut r, &role).await {
                    fail(&mut r, e.to_string());
                }
                return self.store.update(r, expected).await;
            }
            Ok((_, Some(status))) if status == "CREATING" => {
                r.error = None;
                if timed_out {
                    fail(&mut r, timeout_message());
                }
            }
            Ok((_, Some(status))) => fail(&mut r, format!("EKS reports the cluster {status}")),
            Ok((_, None)) => fail(&mut r, "the EKS cluster no longer exists".into()),
            Err(e) if timed_out => fail(&mut r, format!("{} (last check: {e})", timeout_message())),
            Err(e) => r.error = Some(format!("checking EKS failed, retried at the next check: {e}")),
        }
        self.store.update(r, expected).await
    }

    pub(in crate::control_plane) async fn finish_eks_recreation(
        &self,
        r: &mut EksRecreation,
        role: &crate::model::cloud::account::RoleRef,
    ) -> Result<()> {
        let cloud = self.cloud()?;
        let saved = self
            .store
            .get::<RecoveryPointAws>(&r.org_id, &r.recovery_point_id)
            .await?
            .eks
            .unwrap_or_default();
        for ng in &saved.nodegroups {
            cloud
                .connector
                .create_eks_nodegroup(role, &r.region, &r.name, ng)
                .await
                .map_err(|e| Error::permanent(format!("node group {}: {}", ng.name, Error::from(e))))?;
        }
        // Where the new cluster's API is, for `arca eks install-agent`. Not reading it
        // leaves the re-creation without it, not failed: the agent can still be installed
        // with the user's own kubeconfig.
        let unread = match cloud.connector.eks_cluster_access(role, &r.region, &r.name).await {
            Ok(Some(access)) => {
                r.access = Some(access);
                String::new()
            }
            Ok(None) => " (EKS gave no endpoint: give the installer --kubeconfig)".to_string(),
            Err(e) => format!(
                " (the endpoint could not be read from EKS: {}; give the installer --kubeconfig)",
                Error::from(e)
            ),
        };
        let system = Principal::system(r.org_id);
        let registered = self
            .register_cluster(
                &system,
                ClusterSpec {
                    name: r.name.clone(),
                    description: format!("re-created from recovery point {}", r.recovery_point_id),
                    aws: Some(crate::model::cloud::ebs::ClusterAwsLink {
                        cloud_account_id: r.cloud_account_id,
                        region: r.region.clone(),
                        eks_cluster_name: Some(r.name.clone()),
                    }),
                    ..ClusterSpec::default()
                },
            )
            .await?;
        let cluster_id = registered.cluster.id;
        let created = self
            .queue_restore(&system, RestoreSpec::everything(r.recovery_point_id, cluster_id), None)
            .await?;
        r.state = EksRecreationState::WaitingForAgent;
        r.cluster_id = Some(cluster_id);
        r.restore_id = Some(created.restore.id);
        r.next_step = Some(format!(
            "install the agent in the new cluster: `arca eks install-agent {}` (its kubeconfig from EKS, or --kubeconfig){unread}, or `arca clusters install {cluster_id}` (POST /v1/clusters/{cluster_id}/install) prints the one kubectl command; restore {} runs when the agent connects",
            r.id, created.restore.id
        ));
        Ok(())
    }
}

/// How long a re-creation waits before it checks EKS again.
pub const EKS_RECHECK_DELAY: Duration = Duration::from_secs(60);

/// How long EKS may stay CREATING before the re-creation fails (it takes 10-15 minutes):
/// about 60 checks of [`EKS_RECHECK_DELAY`]. Measured from the start rather than counted
/// in checks, so a duplicated message cannot shorten it.
pub const EKS_CREATE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

fn timeout_message() -> String {
    format!(
        "EKS was still creating the cluster {} minutes after the re-creation started; look at the cluster in the EKS console",
        EKS_CREATE_TIMEOUT.as_secs() / 60
    )
}

fn fail(r: &mut EksRecreation, error: String) {
    r.state = EksRecreationState::Failed;
    r.error = Some(error);
    r.next_step = None;
}
