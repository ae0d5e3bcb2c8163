//! The few reads that cross tenants, by design: the secret lookups that find an org from
//! a credential, and the due-work listings of the fixed schedules (dispatch, retention,
//! alerts, inventory). Each says so in its name.

use super::*;

impl Store {
    /// Cross-tenant: the API key whose secret hashes to `hash`, if any.
    pub async fn find_api_key_by_hash_cross_tenant(&self, hash: &SecretHash) -> Result<Option<ApiKey>> {
        self.find_by_gsi1(keys::api_key_gsi1(hash)).await
    }

    /// Cross-tenant: the cluster whose agent token hashes to `hash`, if any.
    pub async fn find_cluster_by_agent_token_hash_cross_tenant(&self, hash: &SecretHash) -> Result<Option<Cluster>> {
        self.find_by_gsi1(keys::agent_token_gsi1(hash)).await
    }

    /// Cross-tenant: the install link whose token hashes to `hash`, if any.
    pub async fn find_install_link_by_hash_cross_tenant(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<crate::model::install::InstallLink>> {
        self.find_by_gsi1(keys::install_token_gsi1(hash)).await
    }

    /// Cross-tenant: the pending agent token (of a fetched install link) that hashes to
    /// `hash`, if any.
    pub async fn find_pending_agent_token_by_hash_cross_tenant(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<crate::model::install::PendingAgentToken>> {
        self.find_by_gsi1(keys::pending_agent_token_gsi1(hash)).await
    }

    async fn find_by_gsi1<T: Record>(&self, key: IndexKey) -> Result<Option<T>> {
        let page = self
            .items
            .query(Query {
                index: Some(Index::Gsi1),
                pk: key.pk,
                range: SortKeyRange::All,
                limit: 1,
                ascending: true,
                cursor: None,
            })
            .await?;
        let Some(hit) = page.items.first() else {
            return Ok(None);
        };
        // The index may lag the table (DynamoDB GSIs are eventually consistent): re-read
        // the item itself, so a key deleted a moment ago no longer authenticates.
        match self.items.get(&hit.pk, &hit.sk).await? {
            Some(item) if item.gsi1.as_ref() == hit.gsi1.as_ref() => from_item(&item).map(Some),
            _ => Ok(None),
        }
    }

    /// Cross-tenant: one page of the records of every org under GSI2 partition `pk` whose
    /// sort key is in `range`, in sort-key order.
    async fn cross_tenant<T: Record>(&self, pk: &str, range: SortKeyRange, page: &PageRequest) -> Result<Listing<T>> {
        self.collect(Some(Index::Gsi2), pk.to_string(), "", range, page, true, |_: &T| true)
            .await
    }

    /// [`Self::cross_tenant`] up to an instant: the records sorted by a time (expiry, due
    /// date) before `before`, to the second, earliest first.
    async fn cross_tenant_before<T: Record>(
        &self,
        pk: &str,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Listing<T>> {
        let range = SortKeyRange::LessThan(keys::recovery_point_expiry_bound(before));
        self.cross_tenant(pk, range, page).await
    }

    /// Cross-tenant: one page of every org's backup definitions (the schedule reconciler).
    pub async fn backup_definitions_cross_tenant(
        &self,
        page: &PageRequest,
    ) -> Result<Listing<crate::model::backup::BackupDefinition>> {
        self.cross_tenant(keys::GSI2_BACKUP_DEFINITIONS_PK, SortKeyRange::All, page)
            .await
    }

    /// Cross-tenant: one page of every org's RDS backup definitions (the schedule
    /// reconciler).
    pub async fn rds_backup_definitions_cross_tenant(
        &self,
        page: &PageRequest,
    ) -> Result<Listing<crate::model::rds::RdsBackupDefinition>> {
        self.cross_tenant(keys::GSI2_RDS_DEFINITIONS_PK, SortKeyRange::All, page)
            .await
    }

    /// Cross-tenant: one page of every org's linked accounts (the 12-hour inventory).
    pub async fn cloud_accounts_cross_tenant(&self, page: &PageRequest) -> Result<Listing<CloudAccount>> {
        self.cross_tenant(keys::GSI2_CLOUD_ACCOUNTS_PK, SortKeyRange::All, page)
            .await
    }

    /// Cross-tenant: RDS recovery points of every org whose expiry is before `before` (to
    /// the second), oldest first.
    pub async fn rds_recovery_points_expiring_before_cross_tenant(
        &self,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Listing<RdsRecoveryPoint>> {
        self.cross_tenant_before(keys::GSI2_RDS_EXPIRY_PK, before, page).await
    }

    /// Cross-tenant: repositories of every org whose maintenance is due before `before`
    /// (to the second), soonest first.
    pub async fn repositories_due_before_cross_tenant(
        &self,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Listing<crate::model::maintenance::RepositoryUpkeep>> {
        self.cross_tenant_before(keys::GSI2_UPKEEP_DUE_PK, before, page).await
    }

    /// Cross-tenant: one page of every org's alert channels (the alert sweep).
    pub async fn alert_channels_cross_tenant(
        &self,
        page: &PageRequest,
    ) -> Result<Listing<crate::model::alert::AlertChannel>> {
        self.cross_tenant(keys::GSI2_ALERT_CHANNELS_PK, SortKeyRange::All, page)
            .await
    }

    /// Cross-tenant: PENDING alert deliveries of every org due before `before` (to the
    /// second), soonest first.
    pub async fn alert_deliveries_due_before_cross_tenant(
        &self,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Listing<crate::model::alert::AlertDelivery>> {
        self.cross_tenant_before(keys::GSI2_ALERT_DUE_PK, before, page).await
    }

    /// Cross-tenant: recovery points of every org whose expiry is before `before` (to the
    /// second), oldest first. Locked points are included; retention must skip them.
    pub async fn recovery_points_expiring_before_cross_tenant(
        &self,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Listing<RecoveryPoint>> {
        self.cross_tenant_before(keys::GSI2_RP_EXPIRY_PK, before, page).await
    }
}
