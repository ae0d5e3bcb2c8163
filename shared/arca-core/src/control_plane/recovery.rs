//! Recovery points and restores.

use crate::error::ConflictKind;
use crate::ids::JobId;
use crate::ids::{BackupDefinitionId, ClusterId, RecoveryPointId, RestoreId};
use crate::model::agent::AgentState;
use crate::model::auth::{Operation, Principal};
use crate::model::cluster::{Cluster, ClusterState};
use crate::model::job::{Job, JobTrigger, JobType};
use crate::model::recovery::{RecoveryPoint, RecoveryPointState};
use crate::model::restore::{Restore, RestoreSpec};
use crate::model::verification::{PointVerification, RestoreVerification};
use crate::store::Tx;
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::ControlPlane;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPointFilter {
    #[serde(default)]
    pub cluster_id: Option<ClusterId>,
    #[serde(default)]
    pub definition_id: Option<BackupDefinitionId>,
}

/// A restore request and the K8S_RESTORE job it created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreCreated {
    pub restore: Restore,
    pub job: Job,
}

impl ControlPlane {
    /// Recovery points of clusters that still exist (those of deleted clusters are
    /// kept until expiry but hidden), oldest first. With `clusterId` (or a `definitionId`
    /// whose definition exists) one cluster's points are read through its index; either
    /// way a call costs a page, not the org.
    pub async fn list_recovery_points(
        &self,
        p: &Principal,
        filter: &RecoveryPointFilter,
        page: &PageRequest,
    ) -> Result<Listing<RecoveryPoint>> {
        p.require(Operation::ListRecoveryPoints)?;
        let org = &p.org_id;
        let of_definition = |rp: &RecoveryPoint| filter.definition_id.is_none_or(|d| rp.definition_id == d);
        let cluster = match (filter.cluster_id, filter.definition_id) {
            (Some(c), _) => Some(c),
            (None, Some(d)) => self
                .store
                .find::<crate::model::backup::BackupDefinition>(org, &d)
                .await?
                .map(|def| def.spec.cluster_id),
            (None, None) => None,
        };
        if let Some(cluster) = cluster {
            if self.store.find::<Cluster>(org, &cluster).await?.is_none() {
                return Ok(Listing {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
            return self
                .store
                .recovery_points_of_cluster(org, &cluster, page, true, of_definition)
                .await;
        }
        // The whole org's points (or a deleted definition's): hide those of deleted
        // clusters by reading the page's clusters, each once. A page may come back
        // shorter than the limit with a cursor; clients follow the cursor.
        let listing = self.store.list_where(org, page, true, of_definition).await?;
        let ids: Vec<ClusterId> = listing
            .items
            .iter()
            .map(|rp| rp.cluster_id)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let found = self.store.find_many::<Cluster>(org, &ids).await?;
        let live: BTreeMap<ClusterId, bool> = ids.into_iter().zip(found).map(|(id, c)| (id, c.is_some())).collect();
        Ok(Listing {
            items: listing
                .items
                .into_iter()
                .filter(|rp| live.get(&rp.cluster_id).copied().unwrap_or(false))
                .collect(),
            next_cursor: listing.next_cursor,
        })
    }

    pub async fn get_recovery_point(&self, p: &Principal, id: &RecoveryPointId) -> Result<RecoveryPoint> {
        p.require(Operation::GetRecoveryPoint)?;
        let rp = self.store.get::<RecoveryPoint>(&p.org_id, id).await?;
        if self.store.find::<Cluster>(&p.org_id, &rp.cluster_id).await?.is_none() {
            return Err(Error::not_found(format!("recovery point {id}")));
        }
        Ok(rp)
    }

    /// Deletes a point before its expiry, as retention would at it: the point becomes
    /// DELETING with its DELETE_BACKUP job, for its cluster's agent. Refused while its
    /// data is immutable (naming the date), while it is locked, and unless it is READY.
    pub async fn delete_recovery_point(&self, p: &Principal, id: &RecoveryPointId) -> Result<JobId> {
        p.require(Operation::DeleteRecoveryPoint)?;
        let rp = self.get_recovery_point(p, id).await?;
        let busy =
            |why: String| Error::conflict_of(ConflictKind::RecoveryPointBusy, format!("recovery point {id} {why}"));
        if let Some(lock) = rp.immutable_at(self.now()) {
            return Err(Error::conflict_of(
                ConflictKind::RecoveryPointImmutable,
                format!(
                    "recovery point {id} is {}: it cannot be deleted before then",
                    lock.reason()
                ),
            ));
        }
        if rp.locked {
            return Err(busy("is locked".into()));
        }
        if rp.state != RecoveryPointState::Ready {
            return Err(busy(format!("is {:?}: only a READY point can be deleted", rp.state)));
        }
        let cluster = rp.cluster_id;
        self.issue_deletion(rp, cluster, JobTrigger::Manual, "deletion requested before the expiry")
            .await?
            .ok_or_else(|| {
                Error::conflict_of(
                    ConflictKind::ConcurrentModification,
                    format!("recovery point {id} changed meanwhile: try again"),
                )
            })
    }

    /// Creates a restore request and its PENDING K8S_RESTORE job together. The recovery
    /// point must be READY and visible; the target cluster must be ACTIVE.
    pub async fn create_restore(&self, p: &Principal, spec: RestoreSpec) -> Result<RestoreCreated> {
        p.require(Operation::CreateRestore)?;
        let spec = spec.validated()?;
        let rp = match self.get_recovery_point(p, &spec.recovery_point_id).await {
            Err(Error::NotFound { what }) => return Err(Error::invalid("recoveryPointId", what)),
            other => other?,
        };
        if rp.state != RecoveryPointState::Ready {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::RestoreNotPossible,
                format!("recovery point {} is {:?}, not READY", rp.id, rp.state),
            ));
        }
        self.active_target(p, &spec.target_cluster_id, "targetClusterId")
            .await?;
        self.queue_restore(p, spec, None).await
    }

    /// The cluster a restore goes to, which must exist (400 naming `field`) and be ACTIVE
    /// (409 `restore_not_possible`).
    pub(in crate::control_plane) async fn active_target(
        &self,
        p: &Principal,
        id: &ClusterId,
        field: &str,
    ) -> Result<Cluster> {
        let target = self.existing::<Cluster>(&p.org_id, id, field).await?;
        let agent = self.store.find::<AgentState>(&p.org_id, &target.id).await?;
        let target = self.presented(target, agent.as_ref());
        let state = target.state;
        if state != ClusterState::Active {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::RestoreNotPossible,
                format!(
                    "target cluster {:?} is {}; restores need an ACTIVE cluster (its agent connected)",
                    target.spec.name,
                    serde_json::to_value(state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
            ));
        }
        Ok(target)
    }

    /// Writes a restore and its job and queues the job for the target's agent, without
    /// asking whether that agent is connected: the job waits in the cluster's queue (an
    /// EKS re-creation queues its restore before the user installs the agent).
    /// A verification's restore also marks its point RUNNING, in the same transaction.
    pub(crate) async fn queue_restore(
        &self,
        p: &Principal,
        spec: RestoreSpec,
        verification: Option<RestoreVerification>,
    ) -> Result<RestoreCreated> {
        let mut rp = self.get_recovery_point(p, &spec.recovery_point_id).await?;
        let target = self.store.get::<Cluster>(&p.org_id, &spec.target_cluster_id).await?;
        let now = self.now();
        let mut job = Job::pending(p.org_id, JobType::K8sRestore, JobTrigger::Manual, now);
        let mut restore = Restore {
            id: RestoreId::new(),
            org_id: p.org_id,
            spec,
            source_cluster_id: rp.cluster_id,
            job_id: job.id,
            verification,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        job.cluster_id = Some(target.id);
        job.recovery_point_id = Some(rp.id);
        job.restore_id = Some(restore.id);
        let mut tx = Tx::new();
        if restore.verification.is_some() {
            job.log(now, format!("verification of recovery point {} requested", rp.id));
            let expected = rp.version;
            rp.verification = Some(PointVerification::running(job.id, restore.id, target.id, now));
            rp.updated_at = now;
            tx.update(&mut rp, expected)?;
        } else {
            job.log(now, "restore requested");
        }
        tx.create(&mut restore)?.create(&mut job)?;
        self.store.commit(tx).await?;
        self.enqueue(&job).await?;
        Ok(RestoreCreated { restore, job })
    }

    pub async fn get_restore(&self, p: &Principal, id: &RestoreId) -> Result<Restore> {
        p.require(Operation::GetRestore)?;
        self.store.get(&p.org_id, id).await
    }

    /// A restore's per-object results in the order the agent reported them, optionally
    /// only those of one outcome. `cursor` is the `nextCursor` of the previous page.
    pub async fn list_restore_objects(
        &self,
        p: &Principal,
        id: &RestoreId,
        outcome: Option<crate::model::restore::ObjectOutcome>,
        page: &PageRequest,
    ) -> Result<Listing<crate::model::restore::RestoreObjectResult>> {
        use crate::model::restore::ObjectCursor;
        // Batches read per store query, and queries per call (bounds the reads a filter
        // that matches little may cost; the cursor then says where to go on).
        const BATCHES: u32 = 10;
        const ROUNDS: usize = 5;
        p.require(Operation::ListRestoreObjects)?;
        // NotFound for another org's restore: its results are under its org only anyway.
        self.store.get::<Restore>(&p.org_id, id).await?;
        let limit = page.size()? as usize;
        let mut at = match &page.cursor {
            Some(text) => ObjectCursor::parse(text)?,
            None => ObjectCursor::default(),
        };
        let mut items = Vec::new();
        for _ in 0..ROUNDS {
            let pages = self.store.restore_object_pages(&p.org_id, id, at.seq, BATCHES).await?;
            let full = pages.len() as u32 == BATCHES;
            for batch in pages {
                if batch.id.seq != at.seq {
                    at = ObjectCursor {
                        seq: batch.id.seq,
                        index: 0,
                    };
                }
                while let Some(object) = batch.objects.get(at.index) {
                    at.index += 1;
                    if outcome.is_none_or(|o| o == object.outcome) {
                        items.push(object.clone());
                        if items.len() == limit {
                            let next = if at.index < batch.objects.len() {
                                at
                            } else {
                                ObjectCursor {
                                    seq: batch.id.seq.saturating_add(1),
                                    index: 0,
                                }
                            };
                            return Ok(Listing {
                                items,
                                next_cursor: (next.seq < crate::model::restore::MAX_RESULT_BATCHES)
                                    .then(|| next.encode()),
                            });
                        }
                    }
                }
                at = ObjectCursor {
                    seq: batch.id.seq.saturating_add(1),
                    index: 0,
                };
            }
            if !full || at.seq >= crate::model::restore::MAX_RESULT_BATCHES {
                return Ok(Listing {
                    items,
                    next_cursor: None,
                });
            }
        }
        Ok(Listing {
            items,
            next_cursor: Some(at.encode()),
        })
    }

    pub async fn list_restores(&self, p: &Principal, page: &PageRequest) -> Result<Listing<Restore>> {
        p.require(Operation::ListRestores)?;
        self.store.list(&p.org_id, page).await
    }
}
