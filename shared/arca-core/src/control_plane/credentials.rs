//! The access an agent's job gets to its destination: the grant (read or read-write in
//! which cluster's prefix) and the archive keys its repositories need.

use crate::control_plane::ControlPlane;
use crate::control_plane::agent::lease_lost;
use crate::ids::{JobId, OrgId};
use crate::model::agent::AgentPrincipal;
use crate::model::archive_key::{KeyId, customer_key_master};
use crate::model::backup::BackupDefinition;
use crate::model::cluster::Cluster;
use crate::model::destination::{CustomerKey, Destination, effective_destination, lock_until};
use crate::model::job::{Job, JobType};
use crate::model::org::Org;
use crate::model::recovery::RecoveryPoint;
use crate::ports::credentials::{DestinationAccess, Grant, KeyedArchiveKey, ObjectLockWrite};
use crate::{Error, Result};

impl ControlPlane {
    /// Access to the destination of one of the agent's jobs (see `credentials`).
    pub async fn agent_credentials(
        &self,
        agent: &AgentPrincipal,
        session: &str,
        id: &JobId,
    ) -> Result<DestinationAccess> {
        self.current_session(agent, session).await?;
        let job = self.agent_job(agent, id).await?;
        if job.state.is_terminal() {
            return Err(lease_lost(format!("job {id} is {:?}", job.state)));
        }
        // Restores read the point's cluster prefix (another cluster's, restoring there) and
        // write nothing; deletions and backups work in their cluster's prefix. Each job gets
        // the one key its repositories need: the cluster's current one to back up, the
        // point's to restore or delete it, and all the cluster's to collect its garbage.
        let (dest_id, grant, keys) = match (job.definition_id, job.recovery_point_id) {
            // Maintenance works in the prefix of the cluster whose repositories it collects
            // (a deleted cluster's, run by another agent of the org).
            _ if job.maintenance.is_some() => {
                let work = job.maintenance.as_ref().map(|w| w.repository.clone());
                let cluster = work.as_ref().map_or(agent.cluster_id, |w| w.cluster_id);
                (
                    work.as_ref().map(|w| w.destination_id),
                    Grant::ReadWrite(cluster),
                    JobKeys::AllOf(cluster),
                )
            }
            (_, Some(rp)) if job.job_type != JobType::K8sBackup => {
                let rp = self.store.get::<RecoveryPoint>(&agent.org_id, &rp).await?;
                let grant = if job.job_type == JobType::K8sRestore {
                    Grant::ReadOnly(rp.cluster_id)
                } else {
                    Grant::ReadWrite(rp.cluster_id)
                };
                let keys = JobKeys::OfPoint(
                    rp.location
                        .as_ref()
                        .and_then(|l| crate::model::layout::key_of_location(&l.prefix)),
                );
                (rp.location.map(|l| l.destination_id), grant, keys)
            }
            (Some(def), _) => {
                let def = self.store.get::<BackupDefinition>(&agent.org_id, &def).await?;
                let org = self.store.get::<Org>(&agent.org_id, &agent.org_id).await?;
                let cluster = self.store.get::<Cluster>(&agent.org_id, &agent.cluster_id).await?;
                let dest = effective_destination(
                    def.spec.destination_id,
                    cluster.spec.default_destination_id,
                    org.default_destination_id,
                )
                .map(|e| e.destination_id);
                (
                    dest,
                    Grant::ReadWrite(agent.cluster_id),
                    JobKeys::Current(cluster.archive_key_generation),
                )
            }
            _ => (
                None,
                Grant::ReadWrite(agent.cluster_id),
                JobKeys::AllOf(agent.cluster_id),
            ),
        };
        let dest_id = dest_id.ok_or_else(|| Error::not_found(format!("destination of job {id}")))?;
        let dest = self.store.get::<Destination>(&agent.org_id, &dest_id).await?;
        let mut access = self.vendor.access(&agent.org_id, grant, &dest).await?;
        access.object_lock = self.object_lock_for(&job, &dest);
        if let Some(customer_key) = &dest.spec.customer_key {
            self.add_customer_keys(&mut access, customer_key, &agent.org_id, grant, keys)
                .await?;
        } else if let Some(ring) = &self.config.archive_keyring {
            let org = &agent.org_id;
            let (current, earlier) = match keys {
                JobKeys::Current(generation) => (Some(ring.current_id(generation)), vec![]),
                JobKeys::OfPoint(id) => (id, vec![]),
                JobKeys::AllOf(cluster) => {
                    let latest = self.latest_key_generation(org, &cluster, &dest_id).await?;
                    let current = ring.current_id(latest);
                    let earlier = ring.all_ids(latest).into_iter().filter(|id| *id != current).collect();
                    (Some(current), earlier)
                }
            };
            let cluster = grant.cluster();
            if let Some(id) = current {
                access.archive_key = Some(ring.key(org, cluster, &id)?);
                access.key_id = Some(id);
            }
            access.earlier_keys = earlier
                .into_iter()
                .filter_map(|key_id| {
                    // A master dropped from the ring opens nothing any more: nothing to collect.
                    let archive_key = ring.key(org, cluster, &key_id).ok()?;
                    Some(KeyedArchiveKey {
                        key_id,
                        archive_key: Some(archive_key),
                    })
                })
                .collect();
        }
        Ok(access)
    }

    /// The keys of a job in a destination with a customer-held key: ids only, never a key
    /// (the agent unwraps them from the destination through KMS). A point taken before the
    /// destination had its customer key names a key of the master ring: that one is handed
    /// out as before, so the point stays restorable.
    async fn add_customer_keys(
        &self,
        access: &mut DestinationAccess,
        customer_key: &CustomerKey,
        org: &OrgId,
        grant: Grant,
        keys: JobKeys,
    ) -> Result<()> {
        let master = customer_key_master(&access.destination_id);
        let customer_id = |generation| KeyId {
            generation,
            master: master.clone(),
        };
        let cluster = grant.cluster();
        let ring_key = |id: &KeyId| match &self.config.archive_keyring {
            Some(ring) => ring.key(org, cluster, id),
            None => Err(Error::conflict_of(
                crate::error::ConflictKind::ArchiveKeyRetired,
                format!("key {id} came from a master key this deployment does not have (ARCA_ARCHIVE_MASTER_KEY)"),
            )),
        };
        let (current, earlier) = match keys {
            JobKeys::Current(generation) => (Some(customer_id(generation)), Vec::new()),
            JobKeys::OfPoint(id) => (id, Vec::new()),
            JobKeys::AllOf(of) => {
                let latest = self.latest_key_generation(org, &of, &access.destination_id).await?;
                let mut earlier: Vec<KeyId> = (1..latest).map(customer_id).collect();
                // What the cluster wrote here before the destination had its customer key.
                if let Some(ring) = &self.config.archive_keyring {
                    earlier.extend(ring.all_ids(latest));
                }
                (Some(customer_id(latest)), earlier)
            }
        };
        match current {
            Some(id) if id.master == master => access.key_id = Some(id),
            Some(id) => {
                access.archive_key = Some(ring_key(&id)?);
                access.key_id = Some(id);
            }
            None => {}
        }
        access.earlier_keys = earlier
            .into_iter()
            .filter_map(|key_id| {
                if key_id.master == master {
                    return Some(KeyedArchiveKey {
                        key_id,
                        archive_key: None,
                    });
                }
                let archive_key = ring_key(&key_id).ok()?;
                Some(KeyedArchiveKey {
                    key_id,
                    archive_key: Some(archive_key),
                })
            })
            .collect();
        access.customer_key = Some(customer_key.clone());
        Ok(())
    }

    /// How `job` treats `dest` when it is immutable: the mode, and for a backup the date
    /// its point's data is retained until ([`lock_until`]; computed from the job alone,
    /// so every credential renewal of one job gives the same date).
    pub(in crate::control_plane) fn object_lock_for(&self, job: &Job, dest: &Destination) -> Option<ObjectLockWrite> {
        let mode = dest.spec.lock_mode(self.config.managed_object_lock)?;
        let retain_until = (job.job_type == JobType::K8sBackup).then(|| {
            lock_until(
                job.recovery_point_expires_at,
                job.created_at,
                std::time::Duration::from_secs(u64::from(self.config.default_run_now_retain_days) * 86_400),
                self.config.gc_grace,
            )
        });
        Some(ObjectLockWrite { mode, retain_until })
    }

    /// The newest key generation a cluster's repositories in `destination` may have: the
    /// cluster's, or for a deleted cluster the newest its deleted points named.
    async fn latest_key_generation(
        &self,
        org: &OrgId,
        cluster: &crate::ids::ClusterId,
        destination: &crate::ids::DestinationId,
    ) -> Result<u32> {
        let of_cluster = self
            .store
            .find::<Cluster>(org, cluster)
            .await?
            .map(|c| c.archive_key_generation);
        let key = crate::model::maintenance::RepositoryKey {
            destination_id: *destination,
            cluster_id: *cluster,
        };
        let of_deleted_points = self
            .store
            .find::<crate::model::maintenance::RepositoryUpkeep>(org, &key)
            .await?
            .map(|u| u.latest_key_generation);
        Ok(of_cluster.max(of_deleted_points).unwrap_or(1))
    }
}

/// Which keys a job's access carries (see `agent_credentials`).
enum JobKeys {
    /// The cluster's current key (of this generation): a backup.
    Current(u32),
    /// The key the point's location names (`None`: an agent's own key): restores and deletions.
    OfPoint(Option<crate::model::archive_key::KeyId>),
    /// Every key the cluster's repositories may have: maintenance.
    AllOf(crate::ids::ClusterId),
}
