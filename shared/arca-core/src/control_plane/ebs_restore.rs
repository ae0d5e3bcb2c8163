//! Restores of EBS-backed claims from the EC2 snapshots taken at backup
//! ([`ControlPlane::protect_on_aws`]).
//!
//! The agent never calls AWS. A restore job of a point with EBS snapshots carries those
//! the target cluster can use ([`EbsRestoreSources`]: the cluster is linked to the same
//! account and region) or why it cannot. For each claim it restores from one, the agent
//! picks a zone where the cluster has nodes and asks for a volume
//! ([`ControlPlane::agent_ebs_volume`]); the control plane creates it from the snapshot
//! through the linked role, with the original volume's type, and the agent binds it to
//! the restored claim as a static PV of the EBS CSI driver.

use crate::control_plane::ControlPlane;
use crate::ids::{ClusterId, JobId, OrgId};
use crate::model::agent::AgentPrincipal;
use crate::model::cloud::account::RoleRef;
use crate::model::cloud::ebs::{
    EbsRestoreSources, EbsVolumeCreated, EbsVolumeRequest, RecoveryPointAws, is_zone_of, restore_volume_tags,
    restore_volume_token,
};
use crate::model::cloud::inventory::{AwsInventoryId, AwsResource, EbsVolume};
use crate::model::cluster::Cluster;
use crate::model::job::{Job, JobType};
use crate::model::restore::Restore;
use crate::ports::cloud::NewEbsVolume;
use crate::{Error, Result};

impl ControlPlane {
    /// What a K8S_RESTORE job may build claims from on EBS: `None` when the point has no
    /// EBS snapshots or the restore leaves PVs out.
    pub(in crate::control_plane) async fn ebs_restore_sources(
        &self,
        job: &Job,
        restore: Option<&Restore>,
    ) -> Result<Option<EbsRestoreSources>> {
        let (JobType::K8sRestore, Some(rp), Some(cluster)) = (job.job_type, job.recovery_point_id, job.cluster_id)
        else {
            return Ok(None);
        };
        if restore.is_some_and(|r| !r.spec.restore_pvs) {
            return Ok(None);
        }
        let Some(record) = self.store.find::<RecoveryPointAws>(&job.org_id, &rp).await? else {
            return Ok(None);
        };
        if record.ebs_snapshots.is_empty() {
            return Ok(None);
        }
        Ok(Some(match self.ebs_target(&job.org_id, &cluster, &record).await? {
            Ok(_) => EbsRestoreSources {
                snapshots: record.ebs_snapshots,
                unusable: None,
            },
            Err(why) => EbsRestoreSources {
                snapshots: Vec::new(),
                unusable: Some(why),
            },
        }))
    }

    /// The role to create `cluster`'s volumes from `record`'s snapshots with, or why
    /// that cannot be done (EBS volumes come from snapshots of their own account and
    /// region; Arca does not share or copy them).
    async fn ebs_target(
        &self,
        org: &OrgId,
        cluster: &ClusterId,
        record: &RecoveryPointAws,
    ) -> Result<std::result::Result<RoleRef, String>> {
        let snapshots_in = format!(
            "the EBS snapshots are in cloud account {} ({})",
            record.cloud_account_id, record.region
        );
        if self.cloud.is_none() {
            return Ok(Err(format!(
                "{snapshots_in} and this deployment has no AWS access configured"
            )));
        }
        let cluster = self.store.get::<Cluster>(org, cluster).await?;
        let Some(link) = cluster.spec.aws else {
            return Ok(Err(format!(
                "{snapshots_in}; cluster {} is not linked to an AWS account (link it: `arca clusters update {} --aws-account ... --aws-region ...`)",
                cluster.spec.name, cluster.id
            )));
        };
        if link.cloud_account_id != record.cloud_account_id || link.region != record.region {
            return Ok(Err(format!(
                "{snapshots_in}; cluster {} is linked to {} ({}): volumes are created from snapshots in their own account and region",
                cluster.spec.name, link.cloud_account_id, link.region
            )));
        }
        Ok(self
            .linked_role(org, &link.cloud_account_id)
            .await
            .map_err(|e| format!("{snapshots_in}: {e}")))
    }

    /// Creates the volume of a restored claim from one of its job's EBS snapshots, in the
    /// zone the agent chose. Retried requests get the same volume (EC2's client token).
    pub async fn agent_ebs_volume(
        &self,
        agent: &AgentPrincipal,
        session: &str,
        id: &JobId,
        request: EbsVolumeRequest,
    ) -> Result<EbsVolumeCreated> {
        let job = self.running_job(agent, session, id).await?;
        let (JobType::K8sRestore, Some(rp), Some(restore)) = (job.job_type, job.recovery_point_id, job.restore_id)
        else {
            return Err(Error::invalid("id", "EBS volumes are created for K8S_RESTORE jobs"));
        };
        let record = self
            .store
            .find::<RecoveryPointAws>(&agent.org_id, &rp)
            .await?
            .ok_or_else(|| Error::not_found(format!("EBS snapshots of recovery point {rp}")))?;
        let Some(snapshot) = record
            .ebs_snapshots
            .iter()
            .find(|s| s.snapshot_id == request.snapshot_id)
        else {
            return Err(Error::invalid(
                "snapshotId",
                format!("{} is not an EBS snapshot of recovery point {rp}", request.snapshot_id),
            ));
        };
        if !is_zone_of(&request.availability_zone, &record.region) {
            return Err(Error::invalid(
                "availabilityZone",
                format!(
                    "{:?} is not an availability zone of {}, the snapshot's region",
                    request.availability_zone, record.region
                ),
            ));
        }
        let role = self
            .ebs_target(&agent.org_id, &agent.cluster_id, &record)
            .await?
            .map_err(Error::conflict)?;
        let like = self
            .inventoried_volume(&agent.org_id, &record, &snapshot.volume_id)
            .await?;
        let volume = NewEbsVolume {
            snapshot_id: snapshot.snapshot_id.clone(),
            availability_zone: request.availability_zone.clone(),
            volume_type: like.as_ref().and_then(|v| v.volume_type.clone()),
            iops: like.as_ref().and_then(|v| v.iops),
            throughput: like.as_ref().and_then(|v| v.throughput),
            tags: restore_volume_tags(&restore, &rp, snapshot, &agent.cluster_id),
            client_token: restore_volume_token(&restore, &snapshot.snapshot_id),
        };
        let volume_id = self
            .cloud()?
            .connector
            .create_volume_from_snapshot(&role, &record.region, &volume)
            .await
            .map_err(Error::from)?;
        Ok(EbsVolumeCreated {
            volume_id,
            availability_zone: request.availability_zone,
        })
    }

    /// The backed-up volume as the inventory last saw it (type, IOPS, throughput), even
    /// if it is gone since.
    async fn inventoried_volume(
        &self,
        org: &OrgId,
        record: &RecoveryPointAws,
        volume_id: &str,
    ) -> Result<Option<EbsVolume>> {
        let key = AwsInventoryId {
            cloud_account_id: record.cloud_account_id,
            region: record.region.clone(),
        };
        Ok(self.store.find_inventory(org, &key).await?.and_then(|inv| {
            inv.entries.into_iter().find_map(|e| match e.resource {
                AwsResource::EbsVolume(v) if v.volume_id == volume_id => Some(v),
                _ => None,
            })
        }))
    }
}
