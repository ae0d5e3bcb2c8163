//! The ports the domain reaches RDS by ([`RdsOperations`]) and re-checks long
//! operations through ([`RdsWorkQueue`]), with their message types.

use crate::ids::{EksRecreationId, JobId, OrgId};
use crate::model::cloud::account::RoleRef;
use crate::model::rds::*;
use crate::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The body of an RDS job's message: only ids, the job holds the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RdsWorkMessage {
    pub org_id: OrgId,
    pub job_id: JobId,
}

/// The body of an EKS re-creation's message (`ControlPlane::eks_recreation_step`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EksRecreationWorkMessage {
    pub org_id: OrgId,
    pub eks_recreation_id: EksRecreationId,
}

/// One message of the AWS work queue (the RDS work queue, which also carries EKS
/// re-creations): what to check once more.
///
/// Untagged, so the body is exactly `{orgId, jobId}` as RDS messages always were (those
/// already queued when this shipped still parse) or `{orgId, eksRecreationId}`: the id's
/// field names the kind. Both variants deny unknown fields, so a body naming both ids is
/// refused instead of being taken for whichever variant is tried first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AwsWorkMessage {
    Rds(RdsWorkMessage),
    EksRecreation(EksRecreationWorkMessage),
}

impl AwsWorkMessage {
    /// The message of a JSON body, with an error that says which shapes are accepted
    /// (serde's own for an untagged enum names neither).
    pub fn from_json(body: serde_json::Value) -> Result<Self> {
        serde_json::from_value(body).map_err(|_| {
            Error::invalid(
                "body",
                "a work message is {\"orgId\", \"jobId\"} (an RDS job) or {\"orgId\", \"eksRecreationId\"} (an EKS re-creation)",
            )
        })
    }

    pub fn org_id(&self) -> OrgId {
        match self {
            AwsWorkMessage::Rds(m) => m.org_id,
            AwsWorkMessage::EksRecreation(m) => m.org_id,
        }
    }
}

impl From<RdsWorkMessage> for AwsWorkMessage {
    fn from(m: RdsWorkMessage) -> Self {
        AwsWorkMessage::Rds(m)
    }
}

impl From<EksRecreationWorkMessage> for AwsWorkMessage {
    fn from(m: EksRecreationWorkMessage) -> Self {
        AwsWorkMessage::EksRecreation(m)
    }
}

/// Delivers [`AwsWorkMessage`]s after a delay: that is how an RDS job or an EKS
/// re-creation is started and re-checked without waiting inside a Lambda (the RDS
/// function steps both). `SqsRdsWorkQueue` (arca-aws: SQS `DelaySeconds`, at most 15
/// minutes, the function's event source) and `EmbeddedRdsWorkQueue` (arca-embedded: in
/// process, read with `due`).
#[async_trait]
pub trait RdsWorkQueue: Send + Sync {
    /// Delivers `message` once `delay` has passed (at most [`MAX_DELAY`]).
    async fn send(&self, message: &AwsWorkMessage, delay: Duration) -> Result<()>;
}

/// SQS's limit on a message delay.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// A snapshot as AWS describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsSnapshotInfo {
    pub snapshot: RdsSnapshotRef,
    pub state: RdsOperationState,
    /// `manual` or `automated` (AWS's words).
    #[serde(default)]
    pub snapshot_type: Option<String>,
    #[serde(default)]
    pub engine: Option<String>,
    #[serde(default)]
    pub encrypted: bool,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub source_identifier: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Where an AWS operation is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", tag = "state", content = "reason")]
pub enum RdsOperationState {
    InProgress,
    Available,
    Failed(String),
}

impl RdsOperationState {
    /// From an RDS status word (`available`, `creating`, `copying`, `failed`, ...).
    pub fn from_status(status: &str) -> Self {
        match status {
            "available" => RdsOperationState::Available,
            "failed"
            | "error"
            | "incompatible-restore"
            | "incompatible-parameters"
            | "incompatible-network"
            | "inaccessible-encryption-credentials"
            | "deleting"
            | "deleted"
            | "storage-full" => RdsOperationState::Failed(format!("AWS says {status}")),
            _ => RdsOperationState::InProgress,
        }
    }
}

/// A database as AWS describes it now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsDatabaseInfo {
    pub database: RdsDatabaseRef,
    pub state: RdsOperationState,
    #[serde(default)]
    pub engine: Option<String>,
    #[serde(default)]
    pub encrypted: bool,
    #[serde(default)]
    pub earliest_restorable_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub latest_restorable_time: Option<DateTime<Utc>>,
}

/// Everything a restore from a snapshot or to a point in time needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsRestoreRequest {
    pub cluster: bool,
    pub target: RdsRestoreTarget,
    /// Snapshot identifier or ARN (from a snapshot).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Source database (to a point in time).
    #[serde(default)]
    pub source_database: Option<String>,
    #[serde(default)]
    pub restore_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub use_latest_restorable_time: bool,
    pub tags: BTreeMap<String, String>,
}

/// RDS in a linked account, through its role. Errors: the role refused is
/// `Forbidden`; a missing snapshot or database `NotFound`; AWS refusing the request
/// (wrong state, quota) `Conflict` or `Invalid`.
#[async_trait]
pub trait RdsOperations: Send + Sync {
    /// The database now (status, engine, restorable window).
    async fn describe_database(&self, role: &RoleRef, region: &str, db: &RdsDatabaseRef) -> Result<RdsDatabaseInfo>;

    /// Every instance and cluster carrying the tag (cluster members are left to their
    /// cluster).
    async fn databases_with_tag(
        &self,
        role: &RoleRef,
        region: &str,
        tag: &RdsTagSelector,
    ) -> Result<Vec<RdsDatabaseRef>>;

    /// Starts a manual snapshot (a cluster snapshot for clusters), tagged.
    async fn create_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
        snapshot_identifier: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<RdsSnapshotInfo>;

    /// The snapshot now; `None` if it does not exist.
    async fn describe_snapshot(&self, role: &RoleRef, snapshot: &RdsSnapshotRef) -> Result<Option<RdsSnapshotInfo>>;

    /// The newest available snapshot of the database, manual or automated.
    async fn latest_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
    ) -> Result<Option<RdsSnapshotInfo>>;

    /// Starts a copy of `source` into `destination_region` (called in the destination
    /// region with the source ARN), re-encrypted with `kms_key_id` when given, tagged.
    async fn copy_snapshot(
        &self,
        role: &RoleRef,
        source: &RdsSnapshotRef,
        destination_region: &str,
        target_identifier: &str,
        kms_key_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<RdsSnapshotInfo>;

    /// Deletes the snapshot; an absent one is not an error.
    async fn delete_snapshot(&self, role: &RoleRef, snapshot: &RdsSnapshotRef) -> Result<()>;

    /// Starts a restore into a new instance or cluster (from a snapshot, or to a point in
    /// time when `request.source_database` is set).
    async fn restore(&self, role: &RoleRef, region: &str, request: &RdsRestoreRequest) -> Result<RdsDatabaseInfo>;

    /// Starts deleting a database Arca created to verify a recovery point (for a cluster:
    /// its instances, then the cluster), with no final snapshot and without its automated
    /// backups. Only databases carrying `tag` (key, value) are deleted: any other is a
    /// `Conflict`. An absent one is not an error.
    async fn delete_verification_database(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
        tag: (&str, &str),
    ) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_onto_states() {
        assert_eq!(
            RdsOperationState::from_status("available"),
            RdsOperationState::Available
        );
        assert_eq!(
            RdsOperationState::from_status("creating"),
            RdsOperationState::InProgress
        );
        assert!(matches!(
            RdsOperationState::from_status("failed"),
            RdsOperationState::Failed(_)
        ));
        let json = serde_json::to_value(RdsRestoreSource::PointInTime {
            region: "us-east-1".into(),
            database: RdsDatabaseRef {
                identifier: "db".into(),
                cluster: false,
            },
            restore_time: None,
            use_latest_restorable_time: true,
        })
        .unwrap();
        assert_eq!(json["kind"], "POINT_IN_TIME");
        assert_eq!(json["useLatestRestorableTime"], true);
    }

    #[test]
    fn work_messages_keep_the_rds_wire_shape_and_name_their_kind() {
        let org = OrgId::new();
        let job = JobId::new();
        // A body as RDS messages were sent before EKS re-creations shared the queue.
        let old = serde_json::json!({"orgId": org.to_string(), "jobId": job.to_string()});
        let parsed = AwsWorkMessage::from_json(old.clone()).unwrap();
        assert_eq!(
            parsed,
            AwsWorkMessage::Rds(RdsWorkMessage {
                org_id: org,
                job_id: job
            })
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), old, "sent as it was");

        let eks = EksRecreationId::new();
        let body = serde_json::json!({"orgId": org.to_string(), "eksRecreationId": eks.to_string()});
        let parsed = AwsWorkMessage::from_json(body.clone()).unwrap();
        assert_eq!(
            parsed,
            AwsWorkMessage::EksRecreation(EksRecreationWorkMessage {
                org_id: org,
                eks_recreation_id: eks
            })
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), body);
        assert_eq!(parsed.org_id(), org);

        let both =
            serde_json::json!({"orgId": org.to_string(), "jobId": job.to_string(), "eksRecreationId": eks.to_string()});
        let err = AwsWorkMessage::from_json(both).unwrap_err();
        assert!(err.to_string().contains("eksRecreationId"), "{err}");
        assert!(AwsWorkMessage::from_json(serde_json::json!({"orgId": org.to_string()})).is_err());
    }
}
