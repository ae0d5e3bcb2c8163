//! RDS and Aurora protection: backup definitions (databases of one linked account and
//! region, by list or by AWS tag), the recovery points Arca's snapshots and copies are
//! recorded as, the work an RDS job carries from one check to the next, and the ports the
//! domain reaches RDS by ([`RdsOperations`]) and re-checks long operations through
//! ([`RdsWorkQueue`]). The rules that use them are in `rds_service` (`ControlPlane`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cloud::RoleRef;
use crate::ids::{CloudAccountId, EksRecreationId, JobId, OrgId, PolicyId, RdsBackupDefinitionId, RecoveryPointId};
use crate::job::Retention;
use crate::{Error, Result, validate};

/// The tag every snapshot Arca takes or copies carries: the recovery point's id.
pub const TAG_RECOVERY_POINT: &str = "arca:recovery-point";
/// The tag with the recovery point's expiry (RFC 3339, UTC; absent: kept until deleted).
pub const TAG_EXPIRES_AT: &str = "arca:expires-at";
/// How long an RDS job waits before it checks a running AWS operation again.
pub const RECHECK_DELAY: Duration = Duration::from_secs(60);
/// Checks after which a job stops waiting (three days of [`RECHECK_DELAY`]).
pub const MAX_CHECKS: u32 = 3 * 24 * 60;
/// At most this many databases in one definition's list.
pub const MAX_DATABASES: usize = 100;

/// RDS snapshot identifiers: 1-255 letters, digits and hyphens, starting with a letter,
/// without two hyphens in a row and not ending with one.
pub const MAX_SNAPSHOT_IDENTIFIER: usize = 255;

/// The identifier of the snapshot Arca takes of `db_identifier` at `taken_at`:
/// `arca-<db>-<unix seconds>`, so Arca's snapshots are recognisable, sort by time and
/// never collide for one database.
pub fn snapshot_identifier(db_identifier: &str, taken_at: SystemTime) -> Result<String> {
    let secs = taken_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::invalid("takenAt", "before 1970"))?
        .as_secs();
    let mut db: String = db_identifier
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while db.contains("--") {
        db = db.replace("--", "-");
    }
    let db = db.trim_matches('-');
    if db.is_empty() {
        return Err(Error::invalid(
            "dbIdentifier",
            format!("{db_identifier:?} has no letters or digits"),
        ));
    }
    let suffix = format!("-{secs}");
    let room = MAX_SNAPSHOT_IDENTIFIER - "arca-".len() - suffix.len();
    let db = db[..db.len().min(room)].trim_end_matches('-');
    Ok(format!("arca-{db}{suffix}"))
}

/// The identifier of a copy of `source` made at `copied_at`: `<source>-copy-<unix seconds>`
/// (`rds:` of automated snapshots dropped), so copying one snapshot twice never collides.
pub fn copy_identifier(source: &str, copied_at: SystemTime) -> Result<String> {
    let secs = copied_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::invalid("copiedAt", "before 1970"))?
        .as_secs();
    let suffix = format!("-copy-{secs}");
    let base = snapshot_identifier_like(source.trim_start_matches("rds:"))?;
    let room = MAX_SNAPSHOT_IDENTIFIER - suffix.len();
    let base = base[..base.len().min(room)].trim_end_matches('-');
    Ok(format!("{base}{suffix}"))
}

fn snapshot_identifier_like(text: &str) -> Result<String> {
    let mut id: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while id.contains("--") {
        id = id.replace("--", "-");
    }
    let mut id = id.trim_matches('-').to_string();
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        id = format!("arca-{id}");
    }
    id.truncate(MAX_SNAPSHOT_IDENTIFIER);
    Ok(id.trim_end_matches('-').to_string())
}

/// Checks an RDS identifier the user chose (a restore's new instance or cluster):
/// 1-63 letters, digits and hyphens, starting with a letter, no `--`, no trailing `-`.
pub fn check_db_identifier(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
        && !id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{id:?} is not an RDS identifier (1-63 letters, digits, hyphens; starts with a letter)"),
        ))
    }
}

/// One database: an instance, or an Aurora/Multi-AZ cluster (snapshotted as a whole).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsDatabaseRef {
    pub identifier: String,
    /// An Aurora (or Multi-AZ DB) cluster: cluster snapshots and cluster restores.
    #[serde(default)]
    pub cluster: bool,
}

/// An AWS tag that selects databases (`key` = `value`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsTagSelector {
    pub key: String,
    pub value: String,
}

/// Copies to another region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsCopySpec {
    pub destination_region: String,
    /// KMS key (id, alias or ARN) in the destination region: required to copy encrypted
    /// snapshots (a KMS key is regional).
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// Delete Arca's source snapshot once its copy is available.
    #[serde(default)]
    pub delete_source_after_copy: bool,
    /// When copies run: `None` copies every snapshot a run takes as soon as it is
    /// available; a policy (at most daily) copies the latest snapshot of each database
    /// on its own schedule.
    #[serde(default)]
    pub policy_id: Option<PolicyId>,
    /// How long copies are kept; without it, a copy expires with its source's retention.
    #[serde(default)]
    pub retain_days: Option<u32>,
}

/// What a user sends to create or replace an RDS backup definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsBackupDefinitionSpec {
    pub name: String,
    pub cloud_account_id: CloudAccountId,
    pub region: String,
    /// Databases by name (instances and clusters, every engine including Aurora).
    #[serde(default)]
    pub databases: Vec<RdsDatabaseRef>,
    /// Or every database carrying this tag when the run starts.
    #[serde(default)]
    pub tag: Option<RdsTagSelector>,
    /// `None`: runs on demand only.
    #[serde(default)]
    pub policy_id: Option<PolicyId>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub copy: Option<RdsCopySpec>,
}

impl RdsBackupDefinitionSpec {
    pub fn validated(mut self) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        if !crate::cloud::account::is_region(&self.region) {
            return Err(Error::invalid(
                "region",
                format!("{:?} is not an AWS region", self.region),
            ));
        }
        match (&self.tag, self.databases.is_empty()) {
            (Some(_), false) => {
                return Err(Error::invalid(
                    "databases",
                    "choose databases by list or by tag, not both",
                ));
            }
            (None, true) => return Err(Error::invalid("databases", "name at least one database, or a tag")),
            _ => {}
        }
        if self.databases.len() > MAX_DATABASES {
            return Err(Error::invalid("databases", format!("at most {MAX_DATABASES}")));
        }
        for (i, db) in self.databases.iter().enumerate() {
            check_db_identifier(&format!("databases[{i}].identifier"), &db.identifier)?;
            if self.databases[..i].contains(db) {
                return Err(Error::invalid(
                    format!("databases[{i}]"),
                    format!("{:?} appears twice", db.identifier),
                ));
            }
        }
        if let Some(tag) = &self.tag
            && (tag.key.trim().is_empty() || tag.key.len() > 128 || tag.value.len() > 256)
        {
            return Err(Error::invalid(
                "tag.key",
                "a tag key of 1-128 characters, a value of at most 256",
            ));
        }
        if let Some(copy) = &self.copy {
            if !crate::cloud::account::is_region(&copy.destination_region) {
                return Err(Error::invalid(
                    "copy.destinationRegion",
                    format!("{:?} is not an AWS region", copy.destination_region),
                ));
            }
            if copy.destination_region == self.region {
                return Err(Error::invalid(
                    "copy.destinationRegion",
                    "copies go to another region than the databases'",
                ));
            }
            if let Some(days) = copy.retain_days
                && (days == 0 || days > crate::policy::MAX_RETAIN_DAYS)
            {
                return Err(Error::invalid(
                    "copy.retainDays",
                    format!("must be between 1 and {}", crate::policy::MAX_RETAIN_DAYS),
                ));
            }
        }
        Ok(self)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsBackupDefinition {
    pub id: RdsBackupDefinitionId,
    pub org_id: OrgId,
    #[serde(flatten)]
    pub spec: RdsBackupDefinitionSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// The id the copy schedules of a definition are synced under (`<id>.copy`).
pub fn copy_schedule_id(id: &RdsBackupDefinitionId) -> String {
    format!("{id}.copy")
}

/// A snapshot in one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsSnapshotRef {
    pub identifier: String,
    #[serde(default)]
    pub arn: String,
    pub region: String,
    #[serde(default)]
    pub cluster: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RdsRecoveryPointType {
    /// A manual snapshot Arca took in the database's region.
    Snapshot,
    /// A copy of a snapshot in another region.
    Copy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RdsRecoveryPointState {
    /// AWS is still creating (or copying) the snapshot.
    Creating,
    /// Restorable.
    Available,
    /// The snapshot failed; nothing to restore.
    Failed,
}

/// An RDS snapshot or copy Arca made, with the expiry retention deletes it at. Kept
/// apart from Kubernetes recovery points (no cluster, no destination) under `RDSRP#`,
/// indexed by expiry in their own GSI2 partition `RDSEXPIRY`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsRecoveryPoint {
    pub id: RecoveryPointId,
    pub org_id: OrgId,
    pub definition_id: Option<RdsBackupDefinitionId>,
    pub job_id: JobId,
    pub cloud_account_id: CloudAccountId,
    #[serde(rename = "type")]
    pub rp_type: RdsRecoveryPointType,
    pub state: RdsRecoveryPointState,
    pub database: RdsDatabaseRef,
    pub snapshot: RdsSnapshotRef,
    /// For copies: the recovery point (or AWS snapshot) copied.
    #[serde(default)]
    pub source_recovery_point_id: Option<RecoveryPointId>,
    #[serde(default)]
    pub engine: Option<String>,
    #[serde(default)]
    pub encrypted: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// The `keepLast` of the run that made it: retention keeps the newest this many
    /// available points of its (definition, database, region, type) past their expiry.
    /// Absent on points recorded before it existed (expiry alone applies).
    #[serde(default)]
    pub keep_last: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// A copy in progress of one database: its snapshot runs are skipped until it ends (AWS
/// does not allow both). Created when the copy starts, deleted when it ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsCopyInProgress {
    pub key: RdsDatabaseKey,
    pub org_id: OrgId,
    pub job_id: JobId,
    pub started_at: DateTime<Utc>,
    pub version: u64,
}

/// One database of one linked account and region.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsDatabaseKey {
    pub cloud_account_id: CloudAccountId,
    pub region: String,
    pub database: RdsDatabaseRef,
}

impl std::fmt::Display for RdsDatabaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.database.cluster { "cluster" } else { "instance" };
        write!(
            f,
            "{} {} in {} of {}",
            kind, self.database.identifier, self.region, self.cloud_account_id
        )
    }
}

/// Where a restore starts from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RdsRestoreSource {
    /// One of Arca's recovery points (a snapshot, or a copy held in another region: the
    /// restore happens in that region).
    #[serde(rename = "RECOVERY_POINT")]
    RecoveryPoint {
        #[serde(rename = "recoveryPointId")]
        recovery_point_id: RecoveryPointId,
    },
    /// Any snapshot of the account in `region` (automated ones included).
    #[serde(rename = "SNAPSHOT")]
    Snapshot {
        region: String,
        identifier: String,
        #[serde(default)]
        cluster: bool,
    },
    /// The database as it was at `restoreTime` (or its latest restorable time).
    #[serde(rename = "POINT_IN_TIME")]
    PointInTime {
        region: String,
        database: RdsDatabaseRef,
        #[serde(default, rename = "restoreTime")]
        restore_time: Option<DateTime<Utc>>,
        #[serde(default, rename = "useLatestRestorableTime")]
        use_latest_restorable_time: bool,
    },
}

/// The new instance or cluster a restore creates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsRestoreTarget {
    pub identifier: String,
    /// Instance class (for a cluster: the class of the writer instance created in it).
    #[serde(default)]
    pub instance_class: Option<String>,
    /// Required when restoring a copy in another region (the copy names the source
    /// region's subnet group).
    #[serde(default)]
    pub subnet_group: Option<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    #[serde(default)]
    pub parameter_group: Option<String>,
    #[serde(default)]
    pub option_group: Option<String>,
    #[serde(default)]
    pub multi_az: Option<bool>,
    /// The cluster engine (required by AWS for cluster restores; taken from the
    /// recovery point when known).
    #[serde(default)]
    pub engine: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsRestoreSpec {
    pub cloud_account_id: CloudAccountId,
    pub source: RdsRestoreSource,
    pub target: RdsRestoreTarget,
}

impl RdsRestoreSpec {
    pub fn validated(self) -> Result<Self> {
        check_db_identifier("target.identifier", &self.target.identifier)?;
        match &self.source {
            RdsRestoreSource::Snapshot { region, identifier, .. } => {
                if !crate::cloud::account::is_region(region) {
                    return Err(Error::invalid(
                        "source.region",
                        format!("{region:?} is not an AWS region"),
                    ));
                }
                if identifier.is_empty() {
                    return Err(Error::invalid("source.identifier", "must not be empty"));
                }
            }
            RdsRestoreSource::PointInTime {
                region,
                database,
                restore_time,
                use_latest_restorable_time,
            } => {
                if !crate::cloud::account::is_region(region) {
                    return Err(Error::invalid(
                        "source.region",
                        format!("{region:?} is not an AWS region"),
                    ));
                }
                check_db_identifier("source.database.identifier", &database.identifier)?;
                if restore_time.is_some() == *use_latest_restorable_time {
                    return Err(Error::invalid(
                        "source.restoreTime",
                        "give either restoreTime or useLatestRestorableTime",
                    ));
                }
            }
            RdsRestoreSource::RecoveryPoint { .. } => {}
        }
        for (i, sg) in self.target.security_group_ids.iter().enumerate() {
            if !sg.starts_with("sg-") {
                return Err(Error::invalid(
                    format!("target.securityGroupIds[{i}]"),
                    format!("{sg:?} is not a security group id"),
                ));
            }
        }
        Ok(self)
    }
}

/// Where one database of an RDS job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RdsPhase {
    /// Not started.
    Start,
    /// The snapshot is being created.
    Snapshotting,
    /// The copy is being made in the destination region.
    Copying,
    /// The new instance or cluster is being created.
    Restoring,
    Done,
    Failed,
    /// Left out (a copy of it was in progress).
    Skipped,
}

impl RdsPhase {
    pub fn is_final(self) -> bool {
        matches!(self, RdsPhase::Done | RdsPhase::Failed | RdsPhase::Skipped)
    }
}

/// One database's part of an RDS job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsWorkItem {
    pub database: RdsDatabaseRef,
    pub phase: RdsPhase,
    /// The snapshot taken (backup) or copied from (copy) or restored from (restore).
    #[serde(default)]
    pub snapshot: Option<RdsSnapshotRef>,
    #[serde(default)]
    pub recovery_point_id: Option<RecoveryPointId>,
    #[serde(default)]
    pub copy: Option<RdsSnapshotRef>,
    #[serde(default)]
    pub copy_recovery_point_id: Option<RecoveryPointId>,
    #[serde(default)]
    pub error: Option<String>,
}

impl RdsWorkItem {
    pub fn new(database: RdsDatabaseRef) -> Self {
        RdsWorkItem {
            database,
            phase: RdsPhase::Start,
            snapshot: None,
            recovery_point_id: None,
            copy: None,
            copy_recovery_point_id: None,
            error: None,
        }
    }
}

/// What an RDS job carries between checks (kept in the job item).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsJobWork {
    pub cloud_account_id: CloudAccountId,
    /// The databases' region (for restores: where the new database is created).
    pub region: String,
    #[serde(default)]
    pub definition_id: Option<RdsBackupDefinitionId>,
    /// The definition's copy settings when the job was created.
    #[serde(default)]
    pub copy: Option<RdsCopySpec>,
    /// Copy-only run: copy each database's latest existing snapshot.
    #[serde(default)]
    pub copy_only: bool,
    #[serde(default)]
    pub restore: Option<RdsRestoreSpec>,
    /// For restores from a recovery point: its snapshot.
    #[serde(default)]
    pub retention: Option<Retention>,
    #[serde(default)]
    pub items: Vec<RdsWorkItem>,
    /// Checks made so far (bounded by [`MAX_CHECKS`]).
    #[serde(default)]
    pub checks: u32,
}

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
}

/// The tags of a snapshot Arca makes for `rp`.
pub fn snapshot_tags(rp: &RecoveryPointId, expires_at: Option<DateTime<Utc>>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    tags.insert(TAG_RECOVERY_POINT.to_string(), rp.to_string());
    if let Some(at) = expires_at {
        tags.insert(
            TAG_EXPIRES_AT.to_string(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    tags.insert("arca:managed".to_string(), "true".to_string());
    tags
}

/// Checks a point-in-time against the restorable window.
pub fn check_restore_time(
    time: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
    latest: Option<DateTime<Utc>>,
) -> Result<()> {
    let (Some(earliest), Some(latest)) = (earliest, latest) else {
        return Err(Error::invalid(
            "source.restoreTime",
            "the database has no restorable window (automated backups are off)",
        ));
    };
    if time < earliest || time > latest {
        return Err(Error::invalid(
            "source.restoreTime",
            format!(
                "{} is outside the restorable window {} .. {}",
                time.to_rfc3339(),
                earliest.to_rfc3339(),
                latest.to_rfc3339()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn identifiers_follow_the_rds_rules() {
        assert_eq!(
            snapshot_identifier("orders-db", at(1_700_000_000)).unwrap(),
            "arca-orders-db-1700000000"
        );
        assert_eq!(snapshot_identifier("Orders__DB.", at(1)).unwrap(), "arca-orders-db-1");
        let long = "a".repeat(400);
        let id = snapshot_identifier(&long, at(5)).unwrap();
        assert_eq!(id.len(), MAX_SNAPSHOT_IDENTIFIER);
        assert!(id.ends_with("-5"));
        assert!(snapshot_identifier("--__--", at(1)).is_err());
        assert_eq!(copy_identifier("arca-db-5", at(7)).unwrap(), "arca-db-5-copy-7");
        assert_eq!(
            copy_identifier("rds:db-2026-01-01-00-05", at(7)).unwrap(),
            "db-2026-01-01-00-05-copy-7"
        );
        assert_eq!(
            copy_identifier(&"b".repeat(300), at(7)).unwrap().len(),
            MAX_SNAPSHOT_IDENTIFIER
        );
    }

    fn spec() -> RdsBackupDefinitionSpec {
        serde_json::from_value(serde_json::json!({
            "name": " orders ",
            "cloudAccountId": CloudAccountId::new().to_string(),
            "region": "us-east-1",
            "databases": [{"identifier": "orders"}, {"identifier": "aurora-1", "cluster": true}],
            "copy": {"destinationRegion": "eu-west-1", "deleteSourceAfterCopy": true}
        }))
        .unwrap()
    }

    #[test]
    fn definitions_are_validated_with_field_paths() {
        let s = spec().validated().unwrap();
        assert_eq!(s.name, "orders");
        let mut bad = spec();
        bad.tag = Some(RdsTagSelector {
            key: "backup".into(),
            value: "yes".into(),
        });
        assert!(matches!(bad.validated(), Err(Error::Invalid { field, .. }) if field == "databases"));
        let mut bad = spec();
        bad.databases[1].identifier = "9bad".into();
        assert!(matches!(bad.validated(), Err(Error::Invalid { field, .. }) if field == "databases[1].identifier"));
        let mut bad = spec();
        if let Some(c) = bad.copy.as_mut() {
            c.destination_region = "us-east-1".into();
        }
        assert!(matches!(bad.validated(), Err(Error::Invalid { field, .. }) if field == "copy.destinationRegion"));
    }

    #[test]
    fn restore_times_must_fall_in_the_window() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let (e, l) = (Some(t("2026-01-01T00:00:00Z")), Some(t("2026-01-02T00:00:00Z")));
        assert!(check_restore_time(t("2026-01-01T12:00:00Z"), e, l).is_ok());
        assert!(check_restore_time(t("2026-01-03T00:00:00Z"), e, l).is_err());
        assert!(check_restore_time(t("2026-01-01T12:00:00Z"), None, l).is_err());
    }

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
