//! Restore verification of RDS recovery points: the point's snapshot restored to a
//! temporary small database in the snapshot's region, which must come up `available`;
//! then it is deleted (no final snapshot) and the outcome is recorded on the point.
//!
//! A verification is an RDS_RESTORE job whose work names the point it verifies
//! ([`super::RdsJobWork::verifies`]); the database it creates is named by
//! [`verification_identifier`] and carries [`TAG_VERIFICATION`], so nothing else is
//! ever deleted by it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RdsDatabaseRef;
use crate::ids::JobId;
use crate::model::verification::{MAX_REASONS, VerificationState, VerifyWhen, bounded_reason};
use crate::{Error, Result};

/// The instance class of a temporary database when the definition names none: the
/// smallest class every engine Arca backs up (MySQL, MariaDB, PostgreSQL, Oracle, SQL
/// Server Express, Aurora) runs on.
pub const DEFAULT_VERIFICATION_CLASS: &str = "db.t3.micro";

/// The tag on every temporary database, with the id of the job that made it.
pub const TAG_VERIFICATION: &str = "arca:verification-job";

/// At most this many security groups on a temporary database.
const MAX_SECURITY_GROUPS: usize = 5;

/// An RDS definition's verification schedule and where its temporary databases run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsVerificationSpec {
    /// `afterBackup` only for now (and on demand through the API).
    pub when: VerifyWhen,
    /// Default [`DEFAULT_VERIFICATION_CLASS`]; for a cluster, the class of its writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_class: Option<String>,
    /// The temporary database's DB subnet group (default: the region's default VPC);
    /// required to verify copies held in another region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
}

impl RdsVerificationSpec {
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.when == VerifyWhen::Weekly {
            return Err(Error::invalid(
                format!("{field}.when"),
                "weekly verification of RDS points is not available yet: use afterBackup, or \
                 POST /v1/rds-recoverypoints/{id}/verify from a schedule of your own",
            ));
        }
        if let Some(class) = &self.instance_class {
            let ok = class.starts_with("db.")
                && class.len() <= 64
                && class.split('.').count() == 3
                && class.split('.').all(|p| !p.is_empty())
                && class.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
            if !ok {
                return Err(Error::invalid(
                    format!("{field}.instanceClass"),
                    format!("{class:?} is not an RDS instance class (like db.t3.micro)"),
                ));
            }
        }
        if let Some(group) = &self.subnet_group
            && (group.is_empty() || group.len() > 255)
        {
            return Err(Error::invalid(
                format!("{field}.subnetGroup"),
                "a DB subnet group name of 1-255 characters",
            ));
        }
        if self.security_group_ids.len() > MAX_SECURITY_GROUPS {
            return Err(Error::invalid(
                format!("{field}.securityGroupIds"),
                format!("at most {MAX_SECURITY_GROUPS}"),
            ));
        }
        if let Some((i, sg)) = self.security_group_ids.iter().enumerate().find(|(_, sg)| {
            !(sg.starts_with("sg-") && sg.len() <= 32 && sg[3..].chars().all(|c| c.is_ascii_hexdigit()) && sg.len() > 3)
        }) {
            return Err(Error::invalid(
                format!("{field}.securityGroupIds[{i}]"),
                format!("{sg:?} is not a security group id (sg-…)"),
            ));
        }
        Ok(())
    }
}

/// The identifier of the temporary database a verification job creates: unique per job
/// (AWS keeps a deleted database's name taken while it is `deleting`).
pub fn verification_identifier(job: &JobId) -> String {
    format!("arca-verify-{}", job.ulid().to_string().to_ascii_lowercase())
}

/// The latest verification of an RDS recovery point, as stored on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsPointVerification {
    pub state: VerificationState,
    /// The RDS_RESTORE job that does it.
    pub job_id: JobId,
    /// The temporary database.
    pub database: RdsDatabaseRef,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it FAILED.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl RdsPointVerification {
    pub fn running(job_id: JobId, database: RdsDatabaseRef, now: DateTime<Utc>) -> Self {
        RdsPointVerification {
            state: VerificationState::Running,
            job_id,
            database,
            started_at: now,
            ended_at: None,
            reasons: Vec::new(),
        }
    }

    /// How it ended: verified when no reason is given.
    pub fn ended(&mut self, reasons: Vec<String>, now: DateTime<Utc>) {
        self.ended_at = Some(now);
        self.state = if reasons.is_empty() {
            VerificationState::Verified
        } else {
            VerificationState::Failed
        };
        self.reasons = reasons.iter().take(MAX_REASONS).map(|r| bounded_reason(r)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RdsVerificationSpec {
        RdsVerificationSpec {
            when: VerifyWhen::AfterBackup,
            instance_class: Some("db.t4g.micro".into()),
            subnet_group: Some("private".into()),
            security_group_ids: vec!["sg-0123abcd".into()],
        }
    }

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn specs_are_checked_field_by_field() {
        assert!(spec().validate("verification").is_ok());
        let weekly = RdsVerificationSpec {
            when: VerifyWhen::Weekly,
            ..spec()
        };
        assert_eq!(field_of(weekly.validate("verification")), "verification.when");
        for class in ["t3.micro", "db.t3", "db..micro", "db.t3.micro; rm", ""] {
            let bad = RdsVerificationSpec {
                instance_class: Some(class.into()),
                ..spec()
            };
            assert_eq!(
                field_of(bad.validate("verification")),
                "verification.instanceClass",
                "{class}"
            );
        }
        let bad = RdsVerificationSpec {
            security_group_ids: vec!["sg-0123abcd".into(), "default".into()],
            ..spec()
        };
        assert_eq!(field_of(bad.validate("v")), "v.securityGroupIds[1]");
        let bad = RdsVerificationSpec {
            security_group_ids: vec!["sg-1".into(); 6],
            ..spec()
        };
        assert_eq!(field_of(bad.validate("v")), "v.securityGroupIds");
    }

    #[test]
    fn temporary_identifiers_are_rds_identifiers_unique_per_job() {
        let (a, b) = (JobId::new(), JobId::new());
        let id = verification_identifier(&a);
        assert!(super::super::check_db_identifier("id", &id).is_ok(), "{id}");
        assert!(id.starts_with("arca-verify-"));
        assert_ne!(id, verification_identifier(&b));
    }

    #[test]
    fn an_ended_verification_is_verified_without_reasons() {
        let now: DateTime<Utc> = std::time::SystemTime::now().into();
        let db = RdsDatabaseRef {
            identifier: "arca-verify-x".into(),
            cluster: false,
        };
        let mut v = RdsPointVerification::running(JobId::new(), db, now);
        assert_eq!(v.state, VerificationState::Running);
        v.ended(vec![], now);
        assert_eq!((v.state, v.ended_at), (VerificationState::Verified, Some(now)));
        v.ended((0..30).map(|i| format!("r{i}")).collect(), now);
        assert_eq!((v.state, v.reasons.len()), (VerificationState::Failed, MAX_REASONS));
    }
}
