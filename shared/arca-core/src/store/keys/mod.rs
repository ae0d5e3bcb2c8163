//! Every key shape of the table, and nothing else. No other module formats a key.
//!
//! - PK `ORG#<orgId>` holds everything a tenant owns; the org record is SK `ORG`.
//! - SKs: `APIKEY#<id>`, `CLUSTER#<id>`, `DEST#<id>`, `POLICY#<id>`, `BACKUP#<id>`,
//!   `JOB#<ulid>` (time-ordered), `RP#<id>`, `RESTORE#<id>`, `AGENT#<clusterId>` (the
//!   agent's session, liveness and facts, apart from the user-editable cluster item so a
//!   heartbeat never changes the cluster's ETag), `ACTIVE#<bkpId>` (the one unfinished
//!   job of a backup definition, created with `NotExists` together with the job),
//!   `INSTALL#<clusterId>` (the cluster's one pending install link; a new one replaces it),
//!   `AGENTNEXT#<clusterId>` (the agent token a fetched install link handed out, until
//!   its agent's first call; not `AGENT#…`, the listing of agent items),
//!   `RSTOBJ#<restoreId>#<seq:06>` (a batch of a restore's per-object results; not
//!   `RESTORE#<id>#...`, which would fall inside the `RESTORE#` listing of restores),
//!   `CLOUDACCT#<id>` (a linked AWS account), `AWSINV#<cloudAccountId>#<region>` (what
//!   the last inventory found there), `RDSBACKUP#<id>` (an RDS backup definition),
//!   `RDSRP#<rpId>` (an RDS snapshot or copy Arca made), `RDSCOPY#<cloudAccountId>#<region>#<i|c>#<db>`
//!   (a copy of that database in progress), `RPAWS#<rpId>` (EBS snapshots and EKS
//!   metadata Arca keeps with a recovery point), `EKSRE#<id>` (an EKS cluster re-creation),
//!   `UPKEEP#<destinationId>#<clusterId>` (the maintenance state of a cluster's
//!   repositories in a destination), `AUDIT#<ulid>` (an audit record, time-ordered; it
//!   carries a TTL, the org's audit retention), `ALERTCH#<id>` (an alert channel),
//!   `ALERTDLV#<ulid>` (one delivery of an alert event to a channel, time-ordered, with a
//!   TTL), `ALERTEVT#<eventId>` (the marker that an event was raised, created with
//!   `NotExists` together with its deliveries, so raising it again sends nothing; TTL),
//!   `SECFIND#<cloudAccountId>#<fingerprint>` (a security finding of a linked account:
//!   the fingerprint hashes rule and resource ARN), `SECSCAN#<cloudAccountId>` (the
//!   account's last security scan; not under `SECFIND#<id>#`, its findings).
//! - GSI1 (cross-tenant lookup by secret hash): `APIKEY#<sha256hex>` / `APIKEY`,
//!   `AGENT#<sha256hex>` / `CLUSTER`, `INSTALL#<sha256hex>` / `INSTALL`,
//!   `AGENTNEXT#<sha256hex>` / `PENDING`.
//! - GSI2 (cross-tenant, time-ordered): `RPEXPIRY` / `<expiry>#ORG#<orgId>#RP#<id>`;
//!   `CLOUDACCT` / `ORG#<orgId>#CA#<id>` (every linked account, for the 12-hour inventory);
//!   `BKPDEF` / `ORG#<orgId>#BKP#<id>` (every backup definition, for the schedule
//!   reconciler); `RDSBKPDEF` / `ORG#<orgId>#RDSBKP#<id>` (every RDS backup definition, likewise);
//!   `RDSEXPIRY` / `<expiry>#ORG#<orgId>#RDSRP#<id>` (RDS recovery points, for retention);
//!   `UPKEEPDUE` / `<due>#ORG#<orgId>#UPKEEP#<destinationId>#<clusterId>` (repositories
//!   whose maintenance is due; only those with a due time are in it);
//!   `ALERTCH` / `ORG#<orgId>#ALERTCH#<id>` (every alert channel, for the alert sweep's
//!   disconnected-agent check); `ALERTDUE` / `<next attempt>#ORG#<orgId>#ALERTDLV#<ulid>`
//!   (PENDING alert deliveries by their next attempt, for the retries).
//! - GSI3 (in-org relations, by parent; every partition key starts with the org's):
//!   `ORG#<orgId>#CL#<clusterId>` / `RP#<rpId>` (a cluster's recovery points, in creation
//!   order) and `JOB#<ulid>` (its jobs); `ORG#<orgId>#DST#<dstId>` / `CLUSTER#<id>` (clusters
//!   whose default it is) and `BACKUP#<id>` (definitions that name it);
//!   `ORG#<orgId>#RDSBKP#<id>` / `RDSRP#<rpId>` (an RDS definition's points);
//!   `ORG#<orgId>#ACH#<channelId>` / `ALERTDLV#<ulid>` (a channel's deliveries).
//! - GSI1 also holds one in-org relation, for records whose GSI3 slot is taken:
//!   `ORG#<orgId>#DST#<dstId>` / `RP#<clusterId>#<rpId>` (the recovery points whose data is
//!   in a destination, by cluster). These never meet a hash lookup: those partitions
//!   start with `APIKEY#`, `AGENT#`, `INSTALL#` or `AGENTNEXT#`.

use chrono::{DateTime, Utc};

use crate::ids::{
    AlertChannelId, AlertDeliveryId, ApiKeyId, AuditRecordId, BackupDefinitionId, CloudAccountId, ClusterId,
    DestinationId, JobId, OrgId, PolicyId, RdsBackupDefinitionId, RecoveryPointId, RestoreId,
};
use crate::model::secret::SecretHash;
use crate::ports::item_store::IndexKey;

pub const ORG_SK: &str = "ORG";
pub const API_KEY_SK_PREFIX: &str = "APIKEY#";
pub const CLUSTER_SK_PREFIX: &str = "CLUSTER#";
pub const DESTINATION_SK_PREFIX: &str = "DEST#";
pub const POLICY_SK_PREFIX: &str = "POLICY#";
pub const BACKUP_SK_PREFIX: &str = "BACKUP#";
pub const JOB_SK_PREFIX: &str = "JOB#";
pub const RECOVERY_POINT_SK_PREFIX: &str = "RP#";
pub const RESTORE_SK_PREFIX: &str = "RESTORE#";
/// Not `CLUSTER#<id>#AGENT`: that would fall inside the `CLUSTER#` listing of clusters.
pub const AGENT_SK_PREFIX: &str = "AGENT#";
pub const ACTIVE_JOB_SK_PREFIX: &str = "ACTIVE#";
pub const INSTALL_SK_PREFIX: &str = "INSTALL#";
pub const PENDING_AGENT_TOKEN_SK_PREFIX: &str = "AGENTNEXT#";
/// Not `RESTORE#<id>#OBJ#<seq>`: that would fall inside the `RESTORE#` listing.
pub const RESTORE_OBJECTS_SK_PREFIX: &str = "RSTOBJ#";

pub const CLOUD_ACCOUNT_SK_PREFIX: &str = "CLOUDACCT#";
pub const AWS_INVENTORY_SK_PREFIX: &str = "AWSINV#";
/// Not `AWSINV#<account>#<region>#…`: that would fall inside an account's inventories.
pub const AWS_INVENTORY_PART_SK_PREFIX: &str = "AWSINVPART#";
/// Not `RP#<id>#AWS`: that would fall inside the `RP#` listing of recovery points.
pub const RECOVERY_POINT_AWS_SK_PREFIX: &str = "RPAWS#";
pub const EKS_RECREATION_SK_PREFIX: &str = "EKSRE#";
pub const RDS_BACKUP_SK_PREFIX: &str = "RDSBACKUP#";
pub const RDS_RECOVERY_POINT_SK_PREFIX: &str = "RDSRP#";
pub const RDS_COPY_SK_PREFIX: &str = "RDSCOPY#";
pub const UPKEEP_SK_PREFIX: &str = "UPKEEP#";
pub const AUDIT_SK_PREFIX: &str = "AUDIT#";
pub const ALERT_CHANNEL_SK_PREFIX: &str = "ALERTCH#";
pub const ALERT_DELIVERY_SK_PREFIX: &str = "ALERTDLV#";
pub const ALERT_EVENT_SK_PREFIX: &str = "ALERTEVT#";
pub const SECURITY_FINDING_SK_PREFIX: &str = "SECFIND#";
pub const SECURITY_SCAN_SK_PREFIX: &str = "SECSCAN#";
/// The GSI2 partition of every org's alert channels (one reader: the alert sweep).
pub const GSI2_ALERT_CHANNELS_PK: &str = "ALERTCH";
/// The GSI2 partition of PENDING alert deliveries by next attempt (one reader: the
/// alert sweep's retries).
pub const GSI2_ALERT_DUE_PK: &str = "ALERTDUE";
/// The GSI2 partition of repositories by maintenance due time (one reader: retention).
pub const GSI2_UPKEEP_DUE_PK: &str = "UPKEEPDUE";
/// The GSI2 partition of RDS recovery points by expiry (one reader: retention).
pub const GSI2_RDS_EXPIRY_PK: &str = "RDSEXPIRY";

pub const GSI1_API_KEY_PREFIX: &str = "APIKEY#";
pub const GSI1_AGENT_PREFIX: &str = "AGENT#";
pub const GSI1_INSTALL_PREFIX: &str = "INSTALL#";
pub const GSI1_PENDING_AGENT_PREFIX: &str = "AGENTNEXT#";
/// The one GSI2 partition of recovery points by expiry. A single partition is fine at
/// our scale (one reader, the retention sweep); shard it by suffix if it ever is not.
pub const GSI2_RP_EXPIRY_PK: &str = "RPEXPIRY";
/// The one GSI2 partition of backup definitions (one reader: the schedule reconciler).
pub const GSI2_BACKUP_DEFINITIONS_PK: &str = "BKPDEF";
/// The one GSI2 partition of linked accounts (few per org; one reader, the inventory).
pub const GSI2_CLOUD_ACCOUNTS_PK: &str = "CLOUDACCT";

pub fn org_pk(org: &OrgId) -> String {
    format!("ORG#{org}")
}

/// The org a partition key belongs to: the inverse of [`org_pk`], `None` for the
/// partitions that are not a tenant's (index-only and global ones).
pub fn org_of_pk(pk: &str) -> Option<OrgId> {
    pk.strip_prefix("ORG#")?.parse().ok()
}

pub fn api_key_sk(id: &ApiKeyId) -> String {
    format!("{API_KEY_SK_PREFIX}{id}")
}

pub fn cluster_sk(id: &ClusterId) -> String {
    format!("{CLUSTER_SK_PREFIX}{id}")
}

pub fn destination_sk(id: &DestinationId) -> String {
    format!("{DESTINATION_SK_PREFIX}{id}")
}

pub fn policy_sk(id: &PolicyId) -> String {
    format!("{POLICY_SK_PREFIX}{id}")
}

pub fn backup_sk(id: &BackupDefinitionId) -> String {
    format!("{BACKUP_SK_PREFIX}{id}")
}

/// The bare ULID, so sort-key order is time order.
pub fn audit_sk(id: &AuditRecordId) -> String {
    format!("{AUDIT_SK_PREFIX}{}", id.ulid())
}

pub fn alert_channel_sk(id: &AlertChannelId) -> String {
    format!("{ALERT_CHANNEL_SK_PREFIX}{id}")
}

pub fn alert_channel_gsi2(org: &OrgId, id: &AlertChannelId) -> IndexKey {
    IndexKey {
        pk: GSI2_ALERT_CHANNELS_PK.to_string(),
        sk: format!("ORG#{org}#ALERTCH#{id}"),
    }
}

/// The bare ULID, so sort-key order is time order (the delivery log, newest first).
pub fn alert_delivery_sk(id: &AlertDeliveryId) -> String {
    format!("{ALERT_DELIVERY_SK_PREFIX}{}", id.ulid())
}

/// A PENDING delivery by when it is next due.
pub fn alert_delivery_due_gsi2(org: &OrgId, id: &AlertDeliveryId, due: DateTime<Utc>) -> IndexKey {
    IndexKey {
        pk: GSI2_ALERT_DUE_PK.to_string(),
        sk: format!("{}#ORG#{org}#ALERTDLV#{}", time_sort_key(due), id.ulid()),
    }
}

/// The GSI3 partition of one channel's deliveries.
pub fn alert_channel_relations_pk(org: &OrgId, channel: &AlertChannelId) -> String {
    format!("ORG#{org}#ACH#{channel}")
}

/// A delivery among its channel's.
pub fn alert_delivery_by_channel_gsi3(org: &OrgId, channel: &AlertChannelId, id: &AlertDeliveryId) -> IndexKey {
    IndexKey {
        pk: alert_channel_relations_pk(org, channel),
        sk: alert_delivery_sk(id),
    }
}

/// The event id as given (`job.failed:job_…`): it is built by the domain from ids and
/// kind names, never from user text.
pub fn alert_event_sk(id: &str) -> String {
    format!("{ALERT_EVENT_SK_PREFIX}{id}")
}

/// The bare ULID, so sort-key order is creation order.
pub fn job_sk(id: &JobId) -> String {
    format!("{JOB_SK_PREFIX}{}", id.ulid())
}

pub fn recovery_point_sk(id: &RecoveryPointId) -> String {
    format!("{RECOVERY_POINT_SK_PREFIX}{id}")
}

pub fn restore_sk(id: &RestoreId) -> String {
    format!("{RESTORE_SK_PREFIX}{id}")
}

pub fn agent_sk(cluster: &ClusterId) -> String {
    format!("{AGENT_SK_PREFIX}{cluster}")
}

pub fn active_job_sk(definition: &BackupDefinitionId) -> String {
    format!("{ACTIVE_JOB_SK_PREFIX}{definition}")
}

pub fn cloud_account_sk(id: &CloudAccountId) -> String {
    format!("{CLOUD_ACCOUNT_SK_PREFIX}{id}")
}

pub fn aws_inventory_sk(id: &crate::model::cloud::inventory::AwsInventoryId) -> String {
    format!("{}{}", aws_inventory_prefix(&id.cloud_account_id), id.region)
}

/// Every region's inventory of one linked account.
pub fn aws_inventory_prefix(account: &CloudAccountId) -> String {
    format!("{AWS_INVENTORY_SK_PREFIX}{account}#")
}

/// A part of an inventory's entries: `AWSINVPART#<account>#<region>#<version>#<part>`,
/// numbers zero-padded so parts list in order.
pub fn aws_inventory_part_sk(id: &crate::model::cloud::inventory::AwsInventoryPartId) -> String {
    format!(
        "{}{:03}",
        aws_inventory_parts_prefix(&id.inventory, Some(id.of_version)),
        id.part
    )
}

/// The parts of one version of an inventory, or of every version (`None`).
pub fn aws_inventory_parts_prefix(
    id: &crate::model::cloud::inventory::AwsInventoryId,
    of_version: Option<u64>,
) -> String {
    let region = format!("{AWS_INVENTORY_PART_SK_PREFIX}{}#{}#", id.cloud_account_id, id.region);
    match of_version {
        Some(v) => format!("{region}{v:020}#"),
        None => region,
    }
}

pub fn recovery_point_aws_sk(id: &RecoveryPointId) -> String {
    format!("{RECOVERY_POINT_AWS_SK_PREFIX}{id}")
}

pub fn eks_recreation_sk(id: &crate::ids::EksRecreationId) -> String {
    format!("{EKS_RECREATION_SK_PREFIX}{id}")
}

pub fn security_finding_sk(id: &crate::model::cloud::security::SecurityFindingId) -> String {
    format!("{}{}", security_findings_prefix(&id.cloud_account_id), id.fingerprint)
}

/// Every security finding of one linked account.
pub fn security_findings_prefix(account: &CloudAccountId) -> String {
    format!("{SECURITY_FINDING_SK_PREFIX}{account}#")
}

pub fn security_scan_sk(account: &CloudAccountId) -> String {
    format!("{SECURITY_SCAN_SK_PREFIX}{account}")
}

pub fn cloud_account_gsi2(org: &OrgId, id: &CloudAccountId) -> IndexKey {
    IndexKey {
        pk: GSI2_CLOUD_ACCOUNTS_PK.to_string(),
        sk: format!("ORG#{org}#CA#{id}"),
    }
}

pub fn rds_backup_sk(id: &RdsBackupDefinitionId) -> String {
    format!("{RDS_BACKUP_SK_PREFIX}{id}")
}

pub fn rds_recovery_point_sk(id: &RecoveryPointId) -> String {
    format!("{RDS_RECOVERY_POINT_SK_PREFIX}{id}")
}

/// `i` for an instance, `c` for a cluster: an instance and a cluster may share a name.
pub fn rds_copy_sk(key: &crate::model::rds::RdsDatabaseKey) -> String {
    let kind = if key.database.cluster { "c" } else { "i" };
    format!(
        "{RDS_COPY_SK_PREFIX}{}#{}#{kind}#{}",
        key.cloud_account_id, key.region, key.database.identifier
    )
}

pub fn rds_recovery_point_expiry_gsi2(org: &OrgId, id: &RecoveryPointId, expires_at: DateTime<Utc>) -> IndexKey {
    IndexKey {
        pk: GSI2_RDS_EXPIRY_PK.to_string(),
        sk: format!("{}#ORG#{org}#RDSRP#{id}", time_sort_key(expires_at)),
    }
}

pub fn install_sk(cluster: &ClusterId) -> String {
    format!("{INSTALL_SK_PREFIX}{cluster}")
}

/// Fixed-width sequence, so sort-key order is batch order.
pub fn restore_objects_sk(id: &crate::model::restore::RestoreObjectsPageId) -> String {
    format!("{}{:06}", restore_objects_prefix(&id.restore_id), id.seq)
}

/// Every batch of one restore's object results.
pub fn restore_objects_prefix(restore: &RestoreId) -> String {
    format!("{RESTORE_OBJECTS_SK_PREFIX}{restore}#")
}

pub fn pending_agent_token_sk(cluster: &ClusterId) -> String {
    format!("{PENDING_AGENT_TOKEN_SK_PREFIX}{cluster}")
}

pub fn pending_agent_token_gsi1(hash: &SecretHash) -> IndexKey {
    IndexKey {
        pk: format!("{GSI1_PENDING_AGENT_PREFIX}{}", hash.as_str()),
        sk: "PENDING".to_string(),
    }
}

pub fn install_token_gsi1(hash: &SecretHash) -> IndexKey {
    IndexKey {
        pk: format!("{GSI1_INSTALL_PREFIX}{}", hash.as_str()),
        sk: "INSTALL".to_string(),
    }
}

pub fn api_key_gsi1(hash: &SecretHash) -> IndexKey {
    IndexKey {
        pk: format!("{GSI1_API_KEY_PREFIX}{}", hash.as_str()),
        sk: "APIKEY".to_string(),
    }
}

pub fn agent_token_gsi1(hash: &SecretHash) -> IndexKey {
    IndexKey {
        pk: format!("{GSI1_AGENT_PREFIX}{}", hash.as_str()),
        sk: "CLUSTER".to_string(),
    }
}

/// Fixed-width UTC seconds, so byte order is time order.
pub fn time_sort_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn recovery_point_expiry_gsi2(org: &OrgId, id: &RecoveryPointId, expires_at: DateTime<Utc>) -> IndexKey {
    IndexKey {
        pk: GSI2_RP_EXPIRY_PK.to_string(),
        sk: format!("{}#ORG#{org}#RP#{id}", time_sort_key(expires_at)),
    }
}

pub fn backup_definition_gsi2(org: &OrgId, id: &BackupDefinitionId) -> IndexKey {
    IndexKey {
        pk: GSI2_BACKUP_DEFINITIONS_PK.to_string(),
        sk: format!("ORG#{org}#BKP#{id}"),
    }
}

pub fn upkeep_sk(key: &crate::model::maintenance::RepositoryKey) -> String {
    format!("{UPKEEP_SK_PREFIX}{}#{}", key.destination_id, key.cluster_id)
}

/// The prefix of [`upkeep_sk`] shared by one destination's repositories.
pub fn upkeep_destination_prefix(destination: &crate::ids::DestinationId) -> String {
    format!("{UPKEEP_SK_PREFIX}{destination}#")
}

pub fn upkeep_due_gsi2(org: &OrgId, key: &crate::model::maintenance::RepositoryKey, due: DateTime<Utc>) -> IndexKey {
    IndexKey {
        pk: GSI2_UPKEEP_DUE_PK.to_string(),
        sk: format!(
            "{}#ORG#{org}#UPKEEP#{}#{}",
            time_sort_key(due),
            key.destination_id,
            key.cluster_id
        ),
    }
}

/// The GSI2 bound for "expiring strictly before `t`" (to the second).
pub fn recovery_point_expiry_bound(t: DateTime<Utc>) -> String {
    time_sort_key(t)
}

/// The GSI2 partition of every org's RDS backup definitions (the schedule reconciler).
pub const GSI2_RDS_DEFINITIONS_PK: &str = "RDSBKPDEF";

pub fn rds_backup_definition_gsi2(org: &OrgId, id: &RdsBackupDefinitionId) -> IndexKey {
    IndexKey {
        pk: GSI2_RDS_DEFINITIONS_PK.to_string(),
        sk: format!("ORG#{org}#RDSBKP#{id}"),
    }
}

/// The table's own bookkeeping, outside every tenant's partition.
pub const META_PK: &str = "META";
/// Which generation of index keys every record has been given (see `Store::reindex_all`).
pub const INDEX_GENERATION_SK: &str = "INDEXES";

/// The GSI3 partition of what belongs to one cluster.
pub fn cluster_relations_pk(org: &OrgId, cluster: &ClusterId) -> String {
    format!("ORG#{org}#CL#{cluster}")
}

/// The GSI3 (and, for recovery points, GSI1) partition of what names one destination.
pub fn destination_relations_pk(org: &OrgId, destination: &DestinationId) -> String {
    format!("ORG#{org}#DST#{destination}")
}

/// The GSI3 partition of one RDS backup definition's points.
pub fn rds_definition_relations_pk(org: &OrgId, definition: &RdsBackupDefinitionId) -> String {
    format!("ORG#{org}#RDSBKP#{definition}")
}

/// A recovery point among its cluster's, in creation order (ids are ULIDs).
pub fn recovery_point_by_cluster_gsi3(org: &OrgId, cluster: &ClusterId, id: &RecoveryPointId) -> IndexKey {
    IndexKey {
        pk: cluster_relations_pk(org, cluster),
        sk: recovery_point_sk(id),
    }
}

/// A recovery point among those whose data is in a destination, by cluster.
pub fn recovery_point_by_destination_gsi1(
    org: &OrgId,
    destination: &DestinationId,
    cluster: &ClusterId,
    id: &RecoveryPointId,
) -> IndexKey {
    IndexKey {
        pk: destination_relations_pk(org, destination),
        sk: format!("{}{cluster}#{id}", RECOVERY_POINT_SK_PREFIX),
    }
}

/// The prefix of [`recovery_point_by_destination_gsi1`] shared by one cluster's points.
pub fn recovery_points_of_cluster_prefix(cluster: &ClusterId) -> String {
    format!("{RECOVERY_POINT_SK_PREFIX}{cluster}#")
}

/// A job among its cluster's, in creation order.
pub fn job_by_cluster_gsi3(org: &OrgId, cluster: &ClusterId, id: &JobId) -> IndexKey {
    IndexKey {
        pk: cluster_relations_pk(org, cluster),
        sk: job_sk(id),
    }
}

/// A cluster among those whose default destination is `destination`.
pub fn cluster_by_destination_gsi3(org: &OrgId, destination: &DestinationId, id: &ClusterId) -> IndexKey {
    IndexKey {
        pk: destination_relations_pk(org, destination),
        sk: cluster_sk(id),
    }
}

/// A backup definition among those that name `destination`.
pub fn definition_by_destination_gsi3(org: &OrgId, destination: &DestinationId, id: &BackupDefinitionId) -> IndexKey {
    IndexKey {
        pk: destination_relations_pk(org, destination),
        sk: backup_sk(id),
    }
}

/// An RDS recovery point among its definition's, in creation order.
pub fn rds_recovery_point_by_definition_gsi3(
    org: &OrgId,
    definition: &RdsBackupDefinitionId,
    id: &RecoveryPointId,
) -> IndexKey {
    IndexKey {
        pk: rds_definition_relations_pk(org, definition),
        sk: rds_recovery_point_sk(id),
    }
}

#[cfg(test)]
mod tests;
