//! RDS backup definitions, recovery points and restore requests.

use super::*;
use crate::ids::{CloudAccountId, JobId, OrgId, PolicyId, RdsBackupDefinitionId, RecoveryPointId};
use crate::{Error, Result, validate};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// At most this many databases in one definition's list.
pub const MAX_DATABASES: usize = 100;

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
    /// Restore verification of the snapshots this definition takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<RdsVerificationSpec>,
}

impl RdsBackupDefinitionSpec {
    pub fn validated(mut self) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        if !crate::model::cloud::account::is_region(&self.region) {
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
            if !crate::model::cloud::account::is_region(&copy.destination_region) {
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
                && (days == 0 || days > crate::model::policy::MAX_RETAIN_DAYS)
            {
                return Err(Error::invalid(
                    "copy.retainDays",
                    format!("must be between 1 and {}", crate::model::policy::MAX_RETAIN_DAYS),
                ));
            }
        }
        if let Some(v) = &self.verification {
            v.validate("verification")?;
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
    /// Its latest restore verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<RdsPointVerification>,
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
                if !crate::model::cloud::account::is_region(region) {
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
                if !crate::model::cloud::account::is_region(region) {
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
}
