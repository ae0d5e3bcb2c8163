//! Relations inside an org read through the indexes: a cluster's recovery points and jobs,
//! a channel's alert deliveries, what a destination holds, which clusters and definitions
//! name a destination or policy, an RDS definition's points.

use super::*;

impl Store {
    // Index reads may lag the table by a moment on DynamoDB. Listings show what the index
    // holds; the answers that decide something (is a destination still holding points?)
    // re-read their hits from the table.

    /// One page of a cluster's recovery points that pass `keep`, in creation order (or
    /// newest first).
    pub async fn recovery_points_of_cluster(
        &self,
        org: &OrgId,
        cluster: &ClusterId,
        page: &PageRequest,
        ascending: bool,
        keep: impl Fn(&RecoveryPoint) -> bool,
    ) -> Result<Listing<RecoveryPoint>> {
        let slice = Slice::index(
            Index::Gsi3,
            keys::cluster_relations_pk(org, cluster),
            keys::RECOVERY_POINT_SK_PREFIX,
        );
        self.page_of(&slice, page, ascending, keep).await
    }

    /// One page of a cluster's jobs that pass `keep`, in creation order (or newest first).
    pub async fn jobs_of_cluster(
        &self,
        org: &OrgId,
        cluster: &ClusterId,
        page: &PageRequest,
        ascending: bool,
        keep: impl Fn(&Job) -> bool,
    ) -> Result<Listing<Job>> {
        let slice = Slice::index(
            Index::Gsi3,
            keys::cluster_relations_pk(org, cluster),
            keys::JOB_SK_PREFIX,
        );
        self.page_of(&slice, page, ascending, keep).await
    }

    /// A cluster's jobs created at or after `since` that pass `keep`, oldest first: a
    /// range of the cluster's job index (its keys are ULIDs, so time-ordered), so it
    /// costs the jobs since then, not all of them. The alert sweep's missed-run check.
    pub async fn jobs_of_cluster_since(
        &self,
        org: &OrgId,
        cluster: &ClusterId,
        since: DateTime<Utc>,
        keep: impl Fn(&Job) -> bool,
    ) -> Result<Vec<Job>> {
        let millis = u64::try_from(since.timestamp_millis()).unwrap_or(0);
        let first = crate::ids::JobId::from_ulid(ulid::Ulid::from_parts(millis, 0));
        // `~` sorts after every Crockford base-32 digit: to the newest job.
        let range = SortKeyRange::Between(keys::job_sk(&first), format!("{}~", keys::JOB_SK_PREFIX));
        let pk = keys::cluster_relations_pk(org, cluster);
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .collect(
                    Some(Index::Gsi3),
                    pk.clone(),
                    keys::JOB_SK_PREFIX,
                    range.clone(),
                    &PageRequest::after(cursor, page::MAX_PAGE_SIZE),
                    true,
                    &keep,
                )
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// One page of an alert channel's deliveries that pass `keep`, newest first.
    pub async fn alert_deliveries_of_channel(
        &self,
        org: &OrgId,
        channel: &crate::ids::AlertChannelId,
        page: &PageRequest,
        keep: impl Fn(&crate::model::alert::AlertDelivery) -> bool,
    ) -> Result<Listing<crate::model::alert::AlertDelivery>> {
        let slice = Slice::index(
            Index::Gsi3,
            keys::alert_channel_relations_pk(org, channel),
            keys::ALERT_DELIVERY_SK_PREFIX,
        );
        self.page_of(&slice, page, false, keep).await
    }

    /// Every recovery point whose data is in `destination` (only `cluster`'s, when given):
    /// what the destination holds, not what the org holds.
    pub async fn recovery_points_in(
        &self,
        org: &OrgId,
        destination: &DestinationId,
        cluster: Option<&ClusterId>,
    ) -> Result<Vec<RecoveryPoint>> {
        let prefix = match cluster {
            Some(c) => keys::recovery_points_of_cluster_prefix(c),
            None => keys::RECOVERY_POINT_SK_PREFIX.to_string(),
        };
        self.all_of(&Slice::index(
            Index::Gsi1,
            keys::destination_relations_pk(org, destination),
            &prefix,
        ))
        .await
    }

    /// One page of the recovery points whose data is in `destination`, by cluster.
    pub async fn recovery_points_in_page(
        &self,
        org: &OrgId,
        destination: &DestinationId,
        page: &PageRequest,
    ) -> Result<Listing<RecoveryPoint>> {
        self.page_of(&points_in_slice(org, destination), page, true, |_| true)
            .await
    }

    /// Whether any recovery point's data is in `destination`, read from the table: an
    /// index entry of a point deleted a moment ago does not count.
    pub async fn holds_recovery_points(&self, org: &OrgId, destination: &DestinationId) -> Result<bool> {
        let slice = points_in_slice(org, destination);
        let mut cursor = None;
        loop {
            let page: Listing<RecoveryPoint> = self
                .page_of(&slice, &PageRequest::after(cursor, 10), true, |_| true)
                .await?;
            for hit in &page.items {
                if self.find::<RecoveryPoint>(org, &hit.id).await?.is_some() {
                    return Ok(true);
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(false),
            }
        }
    }

    /// Up to `max` clusters whose default destination is `destination`, as the table has
    /// them now.
    pub async fn clusters_defaulting_to(
        &self,
        org: &OrgId,
        destination: &DestinationId,
        max: u32,
    ) -> Result<Vec<Cluster>> {
        self.naming(org, destination, max, |c: &Cluster| c.spec.default_destination_id)
            .await
    }

    /// Up to `max` backup definitions that name `destination`, as the table has them now.
    pub async fn definitions_naming(
        &self,
        org: &OrgId,
        destination: &DestinationId,
        max: u32,
    ) -> Result<Vec<BackupDefinition>> {
        self.naming(org, destination, max, |d: &BackupDefinition| d.spec.destination_id)
            .await
    }

    /// Up to `max` records of a kind that name `destination` in GSI3, each re-read: one that
    /// named it a moment ago (`named` says whom it names now) is left out.
    async fn naming<T: Record>(
        &self,
        org: &OrgId,
        destination: &DestinationId,
        max: u32,
        named: impl Fn(&T) -> Option<DestinationId>,
    ) -> Result<Vec<T>> {
        let slice = Slice::index(
            Index::Gsi3,
            keys::destination_relations_pk(org, destination),
            T::SK_PREFIX,
        );
        let hits: Listing<T> = self
            .page_of(&slice, &PageRequest::first(max), true, |_: &T| true)
            .await?;
        let mut out = Vec::new();
        for hit in hits.items {
            if let Some(now) = self.find::<T>(org, hit.id()).await?
                && named(&now) == Some(*destination)
            {
                out.push(now);
            }
        }
        Ok(out)
    }

    /// Every RDS recovery point of one RDS backup definition.
    pub async fn rds_recovery_points_of_definition(
        &self,
        org: &OrgId,
        definition: &crate::ids::RdsBackupDefinitionId,
    ) -> Result<Vec<RdsRecoveryPoint>> {
        self.all_of(&Slice::index(
            Index::Gsi3,
            keys::rds_definition_relations_pk(org, definition),
            keys::RDS_RECOVERY_POINT_SK_PREFIX,
        ))
        .await
    }
}
