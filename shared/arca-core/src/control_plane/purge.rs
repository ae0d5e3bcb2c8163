//! Purging a deleted cluster's data from a destination without an agent.
//!
//! A deleted cluster's expired points are deleted by another ACTIVE agent of the org
//! (`retention_sweep`). With none left, they wait, and their repository's upkeep says
//! so (`awaitingAgent`). An admin then deletes the cluster's whole prefix in the
//! destination with their own credentials (`arca destinations purge`): no per-point
//! work is needed, because nothing else lives under that prefix once every point there
//! goes. In two steps, so that no point is ever READY without its data:
//!
//! 1. [`ControlPlane::begin_purge`] checks that every point there may go, marks them
//!    DELETING (expired now, so retention finishes them if the second step never comes)
//!    and answers the destination's access for the cluster prefix;
//! 2. the caller deletes every object under the prefix;
//! 3. [`ControlPlane::complete_purge`] deletes the points (with their EBS snapshots, as an
//!    agent's deletion would) and the repository's upkeep.
//!
//! In Arca-managed storage the control plane does all three itself, at the sweep that
//! finds no agent (`purge_unattended`, wired by [`ControlPlane::with_managed_purge`]):
//! the storage is the deployment's, and the credentials are the ones it vends to agents.

use crate::ids::{ClusterId, DestinationId, OrgId, RecoveryPointId};
use crate::model::auth::{Operation, Principal};
use crate::model::cluster::Cluster;
use crate::model::destination::Destination;
use crate::model::maintenance::{RepositoryKey, RepositoryUpkeep};
use crate::model::recovery::{RecoveryPoint, RecoveryPointState};
use crate::model::retention;
use crate::ports::credentials::{DestinationAccess, Grant};
use crate::store::Tx;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ControlPlane;

/// Points marked DELETING per transaction (DynamoDB takes 100 items in one).
const POINTS_PER_TX: usize = 50;

/// What a begun purge hands the admin's CLI: where to delete, and which points go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeGrant {
    pub repository: RepositoryKey,
    /// The destination and the cluster prefix to delete everything under (with vended
    /// credentials for Arca-managed storage; the user's own for their buckets).
    pub access: DestinationAccess,
    pub recovery_points: Vec<RecoveryPointId>,
}

/// What a completed purge deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeDone {
    pub repository: RepositoryKey,
    pub recovery_points_deleted: Vec<RecoveryPointId>,
    /// Points whose EBS snapshots could not be deleted yet: they stay DELETING and the
    /// retention sweep tries again.
    pub aws_cleanup_failed: Vec<(RecoveryPointId, String)>,
}

impl ControlPlane {
    /// Step 1 of a purge (module docs). Refused (409 `purge_not_possible`) while the
    /// cluster exists, while a job works on its data there, or while a point there is
    /// locked or (without `include_unexpired`) not due for deletion.
    pub async fn begin_purge(
        &self,
        p: &Principal,
        destination_id: &DestinationId,
        cluster_id: &ClusterId,
        include_unexpired: bool,
    ) -> Result<PurgeGrant> {
        p.require(Operation::BeginPurge)?;
        let key = RepositoryKey {
            destination_id: *destination_id,
            cluster_id: *cluster_id,
        };
        self.start_purge(&p.org_id, &key, include_unexpired).await
    }

    /// [`ControlPlane::begin_purge`] for `org`, whoever asks.
    async fn start_purge(&self, org: &OrgId, key: &RepositoryKey, include_unexpired: bool) -> Result<PurgeGrant> {
        let org = *org;
        let key = key.clone();
        let destination = self.store.get::<Destination>(&org, &key.destination_id).await?;
        self.refuse_purge_of_live_cluster(&org, &key).await?;
        let upkeep = self.store.find::<RepositoryUpkeep>(&org, &key).await?;
        if let Some(job) = upkeep.as_ref().and_then(|u| u.job_id) {
            return Err(purge_refused(format!(
                "maintenance job {job} works on the {key}: try again when it has ended"
            )));
        }
        let resumed = upkeep.as_ref().is_some_and(|u| u.purge_begun_at.is_some());
        let now = self.now();
        let points = self.cluster_points_in(&org, &key).await?;
        let blockers = blockers(&points, now, resumed, include_unexpired);
        if !blockers.is_empty() {
            return Err(purge_refused(format!(
                "the {key} cannot be purged: {}",
                blockers.join("; ")
            )));
        }
        // Credentials first: a destination this deployment cannot reach (managed storage
        // without a vendor) refuses the purge before any point becomes DELETING.
        let access = self
            .vendor
            .access(&org, Grant::ReadWrite(key.cluster_id), &destination)
            .await?;

        let mut upkeep = match upkeep {
            Some(u) => u,
            None => {
                let mut created = RepositoryUpkeep::new(org, key.clone(), now);
                let mut tx = Tx::new();
                tx.create(&mut created)?;
                self.store.commit(tx).await?;
                created
            }
        };
        let expected = upkeep.version;
        upkeep.purge_begun_at.get_or_insert(now);
        upkeep.updated_at = now;
        let mut tx = Tx::new();
        tx.update(&mut upkeep, expected)?;
        // The upkeep's version is the purge's claim: a concurrent purge or maintenance
        // issue loses the race here, before any point changes.
        self.store.commit(tx).await?;
        for chunk in points.chunks(POINTS_PER_TX) {
            let mut tx = Tx::new();
            let mut changed = false;
            for rp in chunk.iter().filter(|rp| rp.state != RecoveryPointState::Deleting) {
                let mut rp = rp.clone();
                let expected = rp.version;
                rp.state = RecoveryPointState::Deleting;
                // Due now: if the purge is never completed, the retention sweep still
                // sees these points (and an agent, once one is ACTIVE, deletes them).
                rp.expires_at = Some(rp.expires_at.map_or(now, |at| at.min(now)));
                rp.keep_last = None;
                rp.updated_at = now;
                tx.update(&mut rp, expected)?;
                changed = true;
            }
            if changed {
                self.store.commit(tx).await?;
            }
        }
        Ok(PurgeGrant {
            access,
            recovery_points: points.iter().map(|rp| rp.id).collect(),
            repository: key,
        })
    }

    /// Step 3 of a purge, once every object under the cluster prefix is deleted: the
    /// points go (their EBS snapshots first), then the repository's upkeep.
    pub async fn complete_purge(
        &self,
        p: &Principal,
        destination_id: &DestinationId,
        cluster_id: &ClusterId,
    ) -> Result<PurgeDone> {
        p.require(Operation::CompletePurge)?;
        let key = RepositoryKey {
            destination_id: *destination_id,
            cluster_id: *cluster_id,
        };
        self.finish_purge(&p.org_id, &key).await
    }

    /// [`ControlPlane::complete_purge`] for `org`, whoever asks.
    async fn finish_purge(&self, org: &OrgId, key: &RepositoryKey) -> Result<PurgeDone> {
        let (org, key) = (*org, key.clone());
        // Another org's destination reads as absent, whatever is asked of it.
        self.store.get::<Destination>(&org, &key.destination_id).await?;
        let upkeep = self
            .store
            .find::<RepositoryUpkeep>(&org, &key)
            .await?
            .filter(|u| u.purge_begun_at.is_some())
            .ok_or_else(|| purge_refused(format!("no purge of the {key} was begun")))?;
        let mut done = PurgeDone {
            repository: key.clone(),
            recovery_points_deleted: Vec::new(),
            aws_cleanup_failed: Vec::new(),
        };
        for mut rp in self.cluster_points_in(&org, &key).await? {
            if rp.state != RecoveryPointState::Deleting {
                // Not possible for a deleted cluster's points after `begin_purge`; kept
                // rather than deleted with its data unaccounted for.
                continue;
            }
            if !rp.data_deleted {
                let expected = rp.version;
                rp.data_deleted = true;
                rp.updated_at = self.now();
                rp = self.store.update(rp, expected).await?;
            }
            let id = rp.id;
            match self.finish_point_deletion(rp).await {
                Ok(()) => done.recovery_points_deleted.push(id),
                Err(e) => done.aws_cleanup_failed.push((id, e.to_string())),
            }
        }
        match self.store.delete::<RepositoryUpkeep>(&org, &key, upkeep.version).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(Error::PreconditionFailed { .. }) => {
                return Err(Error::conflict_of(
                    crate::error::ConflictKind::ConcurrentModification,
                    format!("the {key} changed during the purge: run it again"),
                ));
            }
            Err(e) => return Err(e),
        }
        self.finish_retiring(&org, &key.destination_id).await?;
        Ok(done)
    }

    /// The whole purge, by the control plane itself, of a deleted cluster's prefix in
    /// Arca-managed storage when no agent is left to delete its points (the retention
    /// and maintenance sweeps call it): `None` when it does not apply (not managed
    /// storage, no opener wired, or a point there is not due yet: it waits).
    pub(in crate::control_plane) async fn purge_unattended(
        &self,
        org: &OrgId,
        key: &RepositoryKey,
    ) -> Result<Option<PurgeDone>> {
        let Some(opener) = &self.managed_opener else {
            return Ok(None);
        };
        match self.store.find::<Destination>(org, &key.destination_id).await? {
            Some(d) if d.spec.target.is_arca_managed() => {}
            _ => return Ok(None),
        }
        let grant = match self.start_purge(org, key, false).await {
            Ok(grant) => grant,
            Err(Error::Conflict {
                kind: crate::error::ConflictKind::PurgeNotPossible,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let store = opener.open(&grant.access).await?;
        // A purge cut short (a timeout, a failure) is begun again at the next sweep and
        // goes on from what is left.
        for object in store.list("").await? {
            store.delete(&object.key).await?;
        }
        self.finish_purge(org, key).await.map(Some)
    }

    /// A live cluster's agent deletes its data; purging under it would break its backups.
    async fn refuse_purge_of_live_cluster(&self, org: &OrgId, key: &RepositoryKey) -> Result<()> {
        match self.store.find::<Cluster>(org, &key.cluster_id).await? {
            Some(c) => Err(purge_refused(format!(
                "cluster {:?} ({}) exists: its agent deletes its recovery points' data as they expire; only a \
                 deleted cluster's data is purged",
                c.spec.name, c.id
            ))),
            None => Ok(()),
        }
    }

    /// Every recovery point of the cluster whose data is in the destination.
    async fn cluster_points_in(&self, org: &OrgId, key: &RepositoryKey) -> Result<Vec<RecoveryPoint>> {
        self.store
            .recovery_points_in(org, &key.destination_id, Some(&key.cluster_id))
            .await
    }
}

fn purge_refused(message: String) -> Error {
    Error::conflict_of(crate::error::ConflictKind::PurgeNotPossible, message)
}

/// Why the points of one cluster in one destination cannot all go now (empty: they can).
/// `resumed`: a purge was begun, so DELETING points are its own.
fn blockers(points: &[RecoveryPoint], now: DateTime<Utc>, resumed: bool, include_unexpired: bool) -> Vec<String> {
    let due: std::collections::BTreeSet<RecoveryPointId> = retention::plan(points, now).delete.into_iter().collect();
    let (mut locked, mut deleting, mut not_due) = (0, 0, Vec::new());
    let mut immutable: Vec<&crate::model::recovery::PointLock> = Vec::new();
    for rp in points {
        if rp.locked {
            locked += 1;
        } else if let Some(lock) = rp.immutable_at(now) {
            immutable.push(lock);
        } else if rp.state == RecoveryPointState::Deleting {
            if !resumed {
                deleting += 1;
            }
        } else if !due.contains(&rp.id) && !include_unexpired {
            not_due.push(rp);
        }
    }
    let mut out = Vec::new();
    if locked > 0 {
        out.push(format!("{locked} recovery point(s) locked (unlock them first)"));
    }
    if let Some(last) = immutable.iter().max_by_key(|l| l.retain_until) {
        out.push(format!(
            "{} recovery point(s) whose data is immutable, the last {}",
            immutable.len(),
            last.reason()
        ));
    }
    if deleting > 0 {
        out.push(format!(
            "{deleting} recovery point(s) being deleted by an agent's job (try again when it has ended)"
        ));
    }
    if !not_due.is_empty() {
        let nearest = not_due
            .iter()
            .filter_map(|rp| rp.expires_at)
            .filter(|at| *at > now)
            .min();
        out.push(format!(
            "{} recovery point(s) not due for deletion ({}; include them with includeUnexpired)",
            not_due.len(),
            match nearest {
                Some(at) => format!("the nearest expires {}", at.to_rfc3339()),
                None => "kept by keepLast or never expiring".to_string(),
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BackupDefinitionId;

    fn point(expires_in_secs: i64, now: DateTime<Utc>) -> RecoveryPoint {
        RecoveryPoint {
            updated_at: now,
            ..RecoveryPoint::fixture(
                BackupDefinitionId::new(),
                now - chrono::Duration::hours(1),
                Some(now + chrono::Duration::seconds(expires_in_secs)),
            )
        }
    }

    #[test]
    fn only_points_due_for_deletion_let_a_purge_begin() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z").unwrap().to_utc();
        let expired = point(-60, now);
        assert!(blockers(std::slice::from_ref(&expired), now, false, false).is_empty());

        let later = point(3600, now);
        let both = [expired.clone(), later.clone()];
        let why = blockers(&both, now, false, false);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].starts_with("1 recovery point(s) not due"), "{why:?}");
        assert!(why[0].contains(&later.expires_at.unwrap().to_rfc3339()), "{why:?}");
        assert!(blockers(&both, now, false, true).is_empty(), "includeUnexpired");

        let mut locked = point(-60, now);
        locked.locked = true;
        let why = blockers(&[locked], now, false, true);
        assert!(
            why[0].contains("locked"),
            "a lock holds even with includeUnexpired: {why:?}"
        );

        let mut immutable = point(-60, now);
        immutable.object_lock = Some(crate::model::recovery::PointLock {
            mode: crate::model::destination::LockMode::Compliance,
            retain_until: now + chrono::Duration::hours(5),
        });
        let why = blockers(std::slice::from_ref(&immutable), now, false, true);
        assert!(
            why[0].contains("immutable until 2026-12-06T15:00:00+00:00 (S3 Object Lock, COMPLIANCE)"),
            "an Object Lock holds even with includeUnexpired, and says until when: {why:?}"
        );
        immutable.object_lock.as_mut().unwrap().retain_until = now;
        assert!(
            blockers(&[immutable], now, false, false).is_empty(),
            "a lock past its date"
        );

        let mut deleting = point(-60, now);
        deleting.state = RecoveryPointState::Deleting;
        let one = std::slice::from_ref(&deleting);
        assert!(blockers(one, now, false, false)[0].contains("agent's job"));
        assert!(blockers(one, now, true, false).is_empty(), "its own purge, resumed");
    }
}
