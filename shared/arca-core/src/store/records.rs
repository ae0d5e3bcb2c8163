//! The [`Record`] impl of every stored entity: its key, its indexes, its name.

use crate::Result;
use crate::ids::{
    AlertChannelId, AlertDeliveryId, ApiKeyId, AuditRecordId, BackupDefinitionId, CloudAccountId, ClusterId,
    DestinationId, EksRecreationId, JobId, OrgId, PolicyId, RdsBackupDefinitionId, RecoveryPointId, RestoreId,
};
use crate::model::agent::{ActiveJob, AgentState};
use crate::model::alert::{AlertChannel, AlertDelivery, AlertEventMarker, DeliveryStatus as AlertDeliveryStatus};
use crate::model::audit::AuditRecord;
use crate::model::auth::ApiKey;
use crate::model::backup::BackupDefinition;
use crate::model::cloud::account::CloudAccount;
use crate::model::cloud::ebs::{EksRecreation, RecoveryPointAws};
use crate::model::cloud::inventory::{AwsInventory, AwsInventoryId, AwsInventoryPart, AwsInventoryPartId};
use crate::model::cloud::security::{SecurityFinding, SecurityFindingId, SecurityScan};
use crate::model::cluster::Cluster;
use crate::model::destination::Destination;
use crate::model::install::{InstallLink, PendingAgentToken};
use crate::model::job::Job;
use crate::model::maintenance::{RepositoryKey, RepositoryUpkeep};
use crate::model::org::Org;
use crate::model::policy::Policy;
use crate::model::rds::{RdsBackupDefinition, RdsCopyInProgress, RdsDatabaseKey, RdsRecoveryPoint};
use crate::model::recovery::RecoveryPoint;
use crate::model::restore::{Restore, RestoreObjectsPage, RestoreObjectsPageId};
use crate::model::secret::SecretHash;
use crate::ports::item_store::{IndexKey, Item};

use super::{Record, keys};

macro_rules! record {
    ($ty:ident, $id:ty, $what:literal, $prefix:expr, $sk:path) => {
        record!($ty, $id, $what, $prefix, $sk, id);
    };
    // `$field`: the record's own id, for records keyed by another entity's id (an
    // agent's state by its cluster, an active job by its definition).
    ($ty:ident, $id:ty, $what:literal, $prefix:expr, $sk:path, $field:ident) => {
        impl Record for $ty {
            type Id = $id;
            const WHAT: &'static str = $what;
            const SK_PREFIX: &'static str = $prefix;

            fn sk_for(id: &$id) -> String {
                $sk(id)
            }
            fn id(&self) -> &$id {
                &self.$field
            }
            fn org_id(&self) -> &OrgId {
                &self.org_id
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn set_version(&mut self, version: u64) {
                self.version = version;
            }
            record!(@extra $ty);
        }
    };
    (@extra ApiKey) => {
        record!(@hashed secret_hash, keys::api_key_gsi1, keys::GSI1_API_KEY_PREFIX);
    };
    (@extra Cluster) => {
        record!(@hashed agent_token_hash, keys::agent_token_gsi1, keys::GSI1_AGENT_PREFIX);
        // Destination deletion asks which clusters default to it.
        fn gsi3(&self) -> Option<IndexKey> {
            self.spec
                .default_destination_id
                .map(|d| keys::cluster_by_destination_gsi3(&self.org_id, &d, &self.id))
        }
    };
    (@extra RecoveryPoint) => {
        record!(@expiring keys::recovery_point_expiry_gsi2);
        // A destination's points (its deletion, location changes, purges).
        fn gsi1(&self) -> Option<IndexKey> {
            self.location.as_ref().map(|l| {
                keys::recovery_point_by_destination_gsi1(&self.org_id, &l.destination_id, &self.cluster_id, &self.id)
            })
        }
        // A cluster's points (listing by cluster or definition, keepLast, cluster deletion).
        fn gsi3(&self) -> Option<IndexKey> {
            Some(keys::recovery_point_by_cluster_gsi3(&self.org_id, &self.cluster_id, &self.id))
        }
    };
    (@extra RdsRecoveryPoint) => {
        record!(@expiring keys::rds_recovery_point_expiry_gsi2);
        // A definition's points (keepLast).
        fn gsi3(&self) -> Option<IndexKey> {
            self.definition_id
                .map(|d| keys::rds_recovery_point_by_definition_gsi3(&self.org_id, &d, &self.id))
        }
    };
    (@extra BackupDefinition) => {
        record!(@listed keys::backup_definition_gsi2);
        // Destination deletion asks which definitions name it.
        fn gsi3(&self) -> Option<IndexKey> {
            self.spec
                .destination_id
                .map(|d| keys::definition_by_destination_gsi3(&self.org_id, &d, &self.id))
        }
    };
    (@extra RdsBackupDefinition) => {
        record!(@listed keys::rds_backup_definition_gsi2);
    };
    (@extra Job) => {
        // A cluster's jobs (listing by cluster or definition).
        fn gsi3(&self) -> Option<IndexKey> {
            self.cluster_id
                .map(|c| keys::job_by_cluster_gsi3(&self.org_id, &c, &self.id))
        }
    };
    (@extra RepositoryUpkeep) => {
        fn gsi2(&self) -> Option<IndexKey> {
            self.due_at.map(|at| keys::upkeep_due_gsi2(&self.org_id, &self.repository, at))
        }
    };
    (@extra CloudAccount) => {
        record!(@listed keys::cloud_account_gsi2);
    };
    (@extra PendingAgentToken) => {
        record!(@hashed token_hash, keys::pending_agent_token_gsi1, keys::GSI1_PENDING_AGENT_PREFIX);
    };
    (@extra InstallLink) => {
        record!(@hashed token_hash, keys::install_token_gsi1, keys::GSI1_INSTALL_PREFIX);
    };
    (@extra AuditRecord) => {
        // Removed by the store's TTL after the org's audit retention: no route deletes it.
        fn expires_at(&self) -> Option<i64> {
            Some(self.expires_at.timestamp())
        }
    };
    (@extra AlertChannel) => {
        record!(@listed keys::alert_channel_gsi2);
    };
    (@extra AlertDelivery) => {
        // PENDING ones by their next attempt, for the alert sweep's retries.
        fn gsi2(&self) -> Option<IndexKey> {
            match (self.status, self.next_attempt_at) {
                (AlertDeliveryStatus::Pending, Some(due)) => {
                    Some(keys::alert_delivery_due_gsi2(&self.org_id, &self.id, due))
                }
                _ => None,
            }
        }
        // A channel's deliveries (the log filtered by channel).
        fn gsi3(&self) -> Option<IndexKey> {
            Some(keys::alert_delivery_by_channel_gsi3(&self.org_id, &self.channel_id, &self.id))
        }
        // The delivery log keeps 30 days: the store's TTL removes older records.
        fn expires_at(&self) -> Option<i64> {
            Some(self.expires_at.timestamp())
        }
    };
    (@extra AlertEventMarker) => {
        fn expires_at(&self) -> Option<i64> {
            Some(self.expires_at.timestamp())
        }
    };
    (@extra $other:ident) => {};
    // A point in GSI2 by its expiry (while it has one), for the retention sweep.
    (@expiring $gsi2:path) => {
        fn gsi2(&self) -> Option<IndexKey> {
            self.expires_at.map(|at| $gsi2(&self.org_id, &self.id, at))
        }
    };
    // A record listed across all orgs in GSI2 (for the runs that visit every one).
    (@listed $gsi2:path) => {
        fn gsi2(&self) -> Option<IndexKey> {
            Some($gsi2(&self.org_id, &self.id))
        }
    };
    // A record found by the hash of its secret in GSI1, the hash kept only in the index key.
    (@hashed $field:ident, $gsi1:path, $prefix:path) => {
        fn gsi1(&self) -> Option<IndexKey> {
            self.$field.as_ref().map($gsi1)
        }
        fn restore_from_item(&mut self, item: &Item) -> Result<()> {
            self.$field = hash_from_index(item, $prefix)?;
            Ok(())
        }
    };
}

fn hash_from_index(item: &Item, prefix: &str) -> Result<Option<SecretHash>> {
    match item.gsi1.as_ref().and_then(|k| k.pk.strip_prefix(prefix)) {
        Some(hex) => SecretHash::from_hex(hex).map(Some),
        None => Ok(None),
    }
}

fn org_sk(_: &OrgId) -> String {
    keys::ORG_SK.to_string()
}

impl Record for Org {
    type Id = OrgId;
    const WHAT: &'static str = "org";
    const SK_PREFIX: &'static str = keys::ORG_SK;

    fn sk_for(id: &OrgId) -> String {
        org_sk(id)
    }
    fn id(&self) -> &OrgId {
        &self.id
    }
    fn org_id(&self) -> &OrgId {
        &self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
}

record!(ApiKey, ApiKeyId, "API key", keys::API_KEY_SK_PREFIX, keys::api_key_sk);
record!(Cluster, ClusterId, "cluster", keys::CLUSTER_SK_PREFIX, keys::cluster_sk);
record!(
    Destination,
    DestinationId,
    "destination",
    keys::DESTINATION_SK_PREFIX,
    keys::destination_sk
);
record!(Policy, PolicyId, "policy", keys::POLICY_SK_PREFIX, keys::policy_sk);
record!(
    BackupDefinition,
    BackupDefinitionId,
    "backup definition",
    keys::BACKUP_SK_PREFIX,
    keys::backup_sk
);
record!(Job, JobId, "job", keys::JOB_SK_PREFIX, keys::job_sk);
record!(
    RecoveryPoint,
    RecoveryPointId,
    "recovery point",
    keys::RECOVERY_POINT_SK_PREFIX,
    keys::recovery_point_sk
);
record!(Restore, RestoreId, "restore", keys::RESTORE_SK_PREFIX, keys::restore_sk);
record!(
    CloudAccount,
    CloudAccountId,
    "cloud account",
    keys::CLOUD_ACCOUNT_SK_PREFIX,
    keys::cloud_account_sk
);
record!(
    RecoveryPointAws,
    RecoveryPointId,
    "AWS artifacts of recovery point",
    keys::RECOVERY_POINT_AWS_SK_PREFIX,
    keys::recovery_point_aws_sk,
    recovery_point_id
);
record!(
    EksRecreation,
    EksRecreationId,
    "EKS re-creation",
    keys::EKS_RECREATION_SK_PREFIX,
    keys::eks_recreation_sk
);
record!(
    AwsInventory,
    AwsInventoryId,
    "inventory",
    keys::AWS_INVENTORY_SK_PREFIX,
    keys::aws_inventory_sk
);
record!(
    AwsInventoryPart,
    AwsInventoryPartId,
    "inventory part",
    keys::AWS_INVENTORY_PART_SK_PREFIX,
    keys::aws_inventory_part_sk
);
record!(
    RdsBackupDefinition,
    RdsBackupDefinitionId,
    "RDS backup definition",
    keys::RDS_BACKUP_SK_PREFIX,
    keys::rds_backup_sk
);
record!(
    RdsRecoveryPoint,
    RecoveryPointId,
    "RDS recovery point",
    keys::RDS_RECOVERY_POINT_SK_PREFIX,
    keys::rds_recovery_point_sk
);
record!(
    RdsCopyInProgress,
    RdsDatabaseKey,
    "copy in progress of",
    keys::RDS_COPY_SK_PREFIX,
    keys::rds_copy_sk,
    key
);

record!(
    RepositoryUpkeep,
    RepositoryKey,
    "maintenance of",
    keys::UPKEEP_SK_PREFIX,
    keys::upkeep_sk,
    repository
);

record!(
    RestoreObjectsPage,
    RestoreObjectsPageId,
    "restore results",
    keys::RESTORE_OBJECTS_SK_PREFIX,
    keys::restore_objects_sk
);
record!(
    AgentState,
    ClusterId,
    "agent state of cluster",
    keys::AGENT_SK_PREFIX,
    keys::agent_sk,
    cluster_id
);
record!(
    ActiveJob,
    BackupDefinitionId,
    "active job of backup definition",
    keys::ACTIVE_JOB_SK_PREFIX,
    keys::active_job_sk,
    definition_id
);
record!(
    PendingAgentToken,
    ClusterId,
    "pending agent token of cluster",
    keys::PENDING_AGENT_TOKEN_SK_PREFIX,
    keys::pending_agent_token_sk,
    cluster_id
);
record!(
    InstallLink,
    ClusterId,
    "install link of cluster",
    keys::INSTALL_SK_PREFIX,
    keys::install_sk,
    cluster_id
);
record!(
    AuditRecord,
    AuditRecordId,
    "audit record",
    keys::AUDIT_SK_PREFIX,
    keys::audit_sk
);
record!(
    AlertChannel,
    AlertChannelId,
    "alert channel",
    keys::ALERT_CHANNEL_SK_PREFIX,
    keys::alert_channel_sk
);
record!(
    AlertDelivery,
    AlertDeliveryId,
    "alert delivery",
    keys::ALERT_DELIVERY_SK_PREFIX,
    keys::alert_delivery_sk
);
record!(
    AlertEventMarker,
    String,
    "alert event",
    keys::ALERT_EVENT_SK_PREFIX,
    keys::alert_event_sk
);
record!(
    SecurityFinding,
    SecurityFindingId,
    "security finding",
    keys::SECURITY_FINDING_SK_PREFIX,
    keys::security_finding_sk
);
record!(
    SecurityScan,
    CloudAccountId,
    "security scan",
    keys::SECURITY_SCAN_SK_PREFIX,
    keys::security_scan_sk,
    cloud_account_id
);
