//! Destinations.

use crate::ids::DestinationId;
use crate::model::auth::{Principal, Role};
use crate::model::backup::BackupDefinition;
use crate::model::cluster::Cluster;
use crate::model::destination::{Destination, DestinationSpec};
use crate::model::org::Org;
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};

use super::ControlPlane;

impl ControlPlane {
    pub async fn create_destination(&self, p: &Principal, spec: DestinationSpec) -> Result<Destination> {
        p.require(Role::Admin)?;
        let spec = spec.validated(self.config.local_destinations)?;
        let now = self.now();
        let dest = Destination {
            id: DestinationId::new(),
            org_id: p.org_id,
            spec,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.store.create(dest).await
    }

    pub async fn get_destination(&self, p: &Principal, id: &DestinationId) -> Result<Destination> {
        p.require(Role::Viewer)?;
        self.store.get(&p.org_id, id).await
    }

    pub async fn list_destinations(&self, p: &Principal, page: &PageRequest) -> Result<Listing<Destination>> {
        p.require(Role::Viewer)?;
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
        p.require(Role::Admin)?;
        let spec = spec.validated(self.config.local_destinations)?;
        let mut dest = self.store.get::<Destination>(&p.org_id, id).await?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        if self
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
        dest.spec = spec;
        dest.updated_at = self.now();
        self.store.update(dest, expected_version).await
    }

    /// Deletes a destination nothing refers to (org default, cluster default or a
    /// definition's override). The check reads, then deletes: not transactional.
    pub async fn delete_destination(&self, p: &Principal, id: &DestinationId, expected_version: u64) -> Result<()> {
        p.require(Role::Admin)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let mut users = Vec::new();
        if org.default_destination_id == Some(*id) {
            users.push("the org's default".to_string());
        }
        for c in self.store.list_all::<Cluster>(&p.org_id).await? {
            if c.spec.default_destination_id == Some(*id) {
                users.push(format!("cluster {:?}", c.spec.name));
            }
        }
        for d in self.store.list_all::<BackupDefinition>(&p.org_id).await? {
            if d.spec.destination_id == Some(*id) {
                users.push(format!("backup definition {:?}", d.spec.name));
            }
        }
        if !users.is_empty() {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::DestinationInUse,
                format!("destination {id} is used by {}", users.join(", ")),
            ));
        }
        self.store.delete::<Destination>(&p.org_id, id, expected_version).await
    }
}
