//! Destinations.

use crate::ids::{DestinationId, OrgId};
use crate::model::auth::{Operation, Principal};
use crate::model::destination::{Destination, DestinationSpec};
use crate::model::org::Org;
use crate::model::recovery::{RecoveryPoint, RecoveryPointState};
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};

use super::ControlPlane;

impl ControlPlane {
    pub async fn create_destination(&self, p: &Principal, spec: DestinationSpec) -> Result<Destination> {
        p.require(Operation::CreateDestination)?;
        let spec = self.checked_destination(spec)?;
        let now = self.now();
        let dest = Destination {
            id: DestinationId::new(),
            org_id: p.org_id,
            spec,
            retiring: false,
            bucket_lock: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.store.create(dest).await
    }

    /// A destination spec as this deployment can serve it: Object Lock on Arca-managed
    /// storage needs a bucket the stack created with it.
    fn checked_destination(&self, spec: DestinationSpec) -> Result<DestinationSpec> {
        let spec = spec.validated(self.config.local_destinations)?;
        if spec.object_lock.is_some() && spec.target.is_arca_managed() && self.config.managed_object_lock.is_none() {
            return Err(Error::invalid(
                "objectLock",
                "this deployment's managed storage has no Object Lock: deploy the stack with \
                 ManagedStorageObjectLock=GOVERNANCE or COMPLIANCE, or use an S3 bucket of your own created with Object Lock",
            ));
        }
        Ok(spec)
    }

    pub async fn get_destination(&self, p: &Principal, id: &DestinationId) -> Result<Destination> {
        p.require(Operation::GetDestination)?;
        self.store.get(&p.org_id, id).await
    }

    pub async fn list_destinations(&self, p: &Principal, page: &PageRequest) -> Result<Listing<Destination>> {
        p.require(Operation::ListDestinations)?;
        self.store.list(&p.org_id, page).await
    }

    /// Replaces a destination. A target the org's plan may not copy PV data to is refused
    /// while a snapshotAndCopy definition resolves to it (an org moved to the free plan).
    pub async fn update_destination(
        &self,
        p: &Principal,
        id: &DestinationId,
        spec: DestinationSpec,
        expected_version: u64,
    ) -> Result<Destination> {
        p.require(Operation::UpdateDestination)?;
        let spec = self.checked_destination(spec)?;
        let mut dest = self.store.get::<Destination>(&p.org_id, id).await?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        // What the plan allows depends on whether the target is Arca-managed: an update
        // that keeps that cannot make a copying definition newly refused.
        if dest.spec.target.is_arca_managed() != spec.target.is_arca_managed()
            && self
                .limits
                .check_pv_copy(org.plan, &spec.target, "target.kind")
                .is_err()
        {
            for def in self.copying_definitions(&p.org_id).await? {
                if self.effective_for(&org, &def).await?.map(|e| e.destination_id) == Some(*id) {
                    self.limits.check_pv_copy(org.plan, &spec.target, "target.kind")?;
                }
            }
        }
        if !dest.spec.target.same_location(&spec.target) && self.store.holds_recovery_points(&p.org_id, id).await? {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::DestinationInUse,
                format!(
                    "destination {:?} holds {}: its location cannot change while they live there (they would \
                     become unrestorable); a new location is a new destination",
                    dest.spec.name,
                    self.holding_in(&p.org_id, id).await?
                ),
            ));
        }
        if dest.spec.customer_key.is_some()
            && spec.customer_key.is_none()
            && self.store.holds_recovery_points(&p.org_id, id).await?
        {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::DestinationInUse,
                format!(
                    "destination {:?} holds {} sealed with keys its customer key wraps: the customer key cannot \
                     be removed while they live there; to change it, set another KMS key (the keys are re-wrapped, \
                     the data stays)",
                    dest.spec.name,
                    self.holding_in(&p.org_id, id).await?
                ),
            ));
        }
        dest.spec = spec;
        dest.updated_at = self.now();
        self.store.update(dest, expected_version).await
    }

    /// The recovery points whose data is in destination `id`: what it holds, not what
    /// the org holds.
    pub(in crate::control_plane) async fn points_in(
        &self,
        org: &OrgId,
        id: &DestinationId,
    ) -> Result<Vec<RecoveryPoint>> {
        self.store.recovery_points_in(org, id, None).await
    }

    /// What a refusal says a destination holds, from one small page of its points: "3
    /// recovery point(s) (the nearest expires …)", or "10 or more recovery point(s)".
    async fn holding_in(&self, org: &OrgId, id: &DestinationId) -> Result<String> {
        const SHOWN: u32 = 10;
        let page = self
            .store
            .recovery_points_in_page(org, id, &PageRequest::first(SHOWN))
            .await?;
        Ok(match page.next_cursor {
            Some(_) => format!("{} or more recovery point(s)", page.items.len()),
            None => holding(&page.items),
        })
    }

    /// After a point's deletion: a retiring destination with no point left goes.
    pub(in crate::control_plane) async fn finish_retiring(&self, org: &OrgId, id: &DestinationId) -> Result<()> {
        let Some(dest) = self.store.find::<Destination>(org, id).await? else {
            return Ok(());
        };
        if !dest.retiring || self.store.holds_recovery_points(org, id).await? {
            return Ok(());
        }
        match self.store.delete::<Destination>(org, id, dest.version).await {
            // Changed meanwhile (a concurrent completion deleted it or updated it): the
            // next completion or a repeated deletion sees it again.
            Ok(()) | Err(Error::NotFound { .. }) | Err(Error::PreconditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes a destination nothing refers to (org default, cluster default or a
    /// definition's override). The check reads, then deletes: not transactional.
    ///
    /// A destination holding recovery points is refused (409 `confirmation_required`,
    /// how many and the nearest expiry): deleting it would leave them unrestorable and
    /// their deletion jobs failing. Confirmed, its points expire now (locked ones refuse
    /// it) and it becomes `retiring`: retention deletes them with their data, and the
    /// destination goes after the last ([`DestinationDeletion::Retiring`]).
    pub async fn delete_destination(
        &self,
        p: &Principal,
        id: &DestinationId,
        expected_version: u64,
        confirm: bool,
    ) -> Result<DestinationDeletion> {
        p.require(Operation::DeleteDestination)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let mut users = Vec::new();
        if org.default_destination_id == Some(*id) {
            users.push("the org's default".to_string());
        }
        // Named through the destination's relations index: a bounded few, enough to act on.
        const NAMED: u32 = 20;
        for c in self.store.clusters_defaulting_to(&p.org_id, id, NAMED).await? {
            users.push(format!("cluster {:?}", c.spec.name));
        }
        for d in self.store.definitions_naming(&p.org_id, id, NAMED).await? {
            users.push(format!("backup definition {:?}", d.spec.name));
        }
        if !users.is_empty() {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::DestinationInUse,
                format!("destination {id} is used by {}", users.join(", ")),
            ));
        }
        let mut dest = self
            .store
            .get_at::<Destination>(&p.org_id, id, expected_version)
            .await?;
        if !self.store.holds_recovery_points(&p.org_id, id).await? {
            self.store
                .delete::<Destination>(&p.org_id, id, expected_version)
                .await?;
            return Ok(DestinationDeletion::Deleted);
        }
        if !confirm {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::ConfirmationRequired,
                format!(
                    "destination {:?} holds {}; deleting it would leave them unrestorable: confirm to expire them now \
                     (retention deletes them and their data) and delete the destination after the last",
                    dest.spec.name,
                    self.holding_in(&p.org_id, id).await?
                ),
            ));
        }
        // Confirmed: every point there is expired, so every one is read.
        let points = self.points_in(&p.org_id, id).await?;
        let now = self.now();
        if let Some(latest) = points
            .iter()
            .filter_map(|rp| rp.immutable_at(now))
            .max_by_key(|l| l.retain_until)
        {
            let count = points.iter().filter(|rp| rp.immutable_at(now).is_some()).count();
            return Err(Error::conflict_of(
                crate::error::ConflictKind::RecoveryPointImmutable,
                format!(
                    "destination {:?} holds {count} recovery point(s) whose data is immutable, the last {}: it can be \
                     deleted after that date",
                    dest.spec.name,
                    latest.reason()
                ),
            ));
        }
        let locked = points.iter().filter(|rp| rp.locked).count();
        if locked > 0 {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::DestinationInUse,
                format!(
                    "destination {:?} holds {locked} locked recovery point(s): unlock them first",
                    dest.spec.name
                ),
            ));
        }
        for rp in points.iter().filter(|rp| rp.state != RecoveryPointState::Deleting) {
            let (org, rp_id) = (p.org_id, rp.id);
            self.retrying(|| async move {
                let mut rp = self.store.get::<RecoveryPoint>(&org, &rp_id).await?;
                let expected = rp.version;
                rp.expires_at = Some(now);
                // keepLast must not hold them back.
                rp.keep_last = None;
                rp.updated_at = now;
                self.store
                    .update(rp, expected)
                    .await
                    .map(|_| ())
                    .map_err(super::retry_on_stale)
            })
            .await?;
        }
        dest.retiring = true;
        dest.updated_at = now;
        let dest = self.store.update(dest, expected_version).await?;
        Ok(DestinationDeletion::Retiring {
            destination: Box::new(dest),
            recovery_points: points.len(),
        })
    }
}

/// What a destination's deletion did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationDeletion {
    Deleted,
    /// Its recovery points were expired; it goes after the last is deleted.
    Retiring {
        destination: Box<Destination>,
        recovery_points: usize,
    },
}

/// "3 recovery point(s) (the nearest expires 2030-01-01T00:00:00Z, 1 never expires)".
fn holding(points: &[RecoveryPoint]) -> String {
    let nearest = points.iter().filter_map(|rp| rp.expires_at).min();
    let never = points.iter().filter(|rp| rp.expires_at.is_none()).count();
    let mut notes = Vec::new();
    if let Some(at) = nearest {
        notes.push(format!("the nearest expires {}", at.to_rfc3339()));
    }
    if never > 0 {
        notes.push(format!("{never} never expire"));
    }
    format!("{} recovery point(s) ({})", points.len(), notes.join(", "))
}
