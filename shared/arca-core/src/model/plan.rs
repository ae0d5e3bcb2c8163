//! Plans and their limits. Every limit lives in [`PlanLimits`], as data, so a deployment
//! can change them without touching a rule.

use serde::{Deserialize, Serialize};

use crate::model::destination::DestinationTarget;
use crate::{Error, Result};

/// What an org pays for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Paid,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Paid => "paid",
        }
    }
}

/// The limits of one plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Longest retention of a recovery point; `None` is unlimited.
    pub max_retain_days: Option<u32>,
    /// Whether PV data may be copied to Arca-managed storage (snapshotAndCopy).
    pub copy_to_managed_storage: bool,
    /// Whether PV data may be copied to the org's own storage (its S3 bucket, an
    /// S3-compatible store or a local directory): a paid feature in the product FAQ, while
    /// resource backups and local snapshots are free everywhere.
    pub copy_to_own_storage: bool,
    /// Most API keys an org may hold at once; `None` is unlimited.
    pub max_api_keys: Option<u32>,
}

/// The limits of every plan: the one place they are defined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanLimits {
    pub free: Limits,
    pub paid: Limits,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits {
            free: Limits {
                max_retain_days: Some(30),
                copy_to_managed_storage: false,
                copy_to_own_storage: false,
                max_api_keys: Some(10),
            },
            paid: Limits {
                max_retain_days: None,
                copy_to_managed_storage: true,
                copy_to_own_storage: true,
                max_api_keys: Some(10),
            },
        }
    }
}

impl PlanLimits {
    pub fn for_plan(&self, plan: Plan) -> &Limits {
        match plan {
            Plan::Free => &self.free,
            Plan::Paid => &self.paid,
        }
    }

    pub fn check_retain_days(&self, plan: Plan, field: &str, days: u32) -> Result<()> {
        match self.for_plan(plan).max_retain_days {
            Some(max) if days > max => Err(Error::limit_exceeded(
                field,
                format!(
                    "retainDays {days} exceeds the {} plan's limit of {max} days",
                    plan.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether `plan` may copy PV data (snapshotAndCopy) to `target`; the error names the
    /// limit and what the plan does allow.
    pub fn check_pv_copy(&self, plan: Plan, target: &DestinationTarget, field: &str) -> Result<()> {
        let limits = self.for_plan(plan);
        let (allowed, to) = if target.is_arca_managed() {
            (limits.copy_to_managed_storage, "Arca-managed storage")
        } else {
            (limits.copy_to_own_storage, "a destination of your own")
        };
        if allowed {
            return Ok(());
        }
        Err(Error::limit_exceeded(
            field,
            format!(
                "the {} plan does not copy PV data to {to} (snapshotAndCopy is a paid-plan feature): \
                 use pvMode snapshot (local snapshots) or upgrade the org",
                plan.as_str()
            ),
        ))
    }

    pub fn check_api_key_count(&self, plan: Plan, existing: usize) -> Result<()> {
        match self.for_plan(plan).max_api_keys {
            Some(max) if existing >= max as usize => Err(Error::limit_exceeded(
                "apiKeys",
                format!("the {} plan allows at most {max} API keys", plan.as_str()),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_retention_is_capped_and_the_message_names_the_limit() {
        let limits = PlanLimits::default();
        assert!(limits.check_retain_days(Plan::Free, "x", 30).is_ok());
        let err = limits
            .check_retain_days(Plan::Free, "schedules[0].retainDays", 45)
            .unwrap_err();
        match err {
            Error::LimitExceeded { field, message } => {
                assert_eq!(field, "schedules[0].retainDays");
                assert_eq!(message, "retainDays 45 exceeds the free plan's limit of 30 days");
            }
            other => panic!("{other:?}"),
        }
        assert!(limits.check_retain_days(Plan::Paid, "x", 3650).is_ok());
    }

    #[test]
    fn only_paid_copies_pv_data_anywhere() {
        let limits = PlanLimits::default();
        let own = DestinationTarget::LocalFilesystem { path: "/b".into() };
        let managed = DestinationTarget::ArcaManaged { region: None };
        for target in [&own, &managed] {
            assert!(limits.check_pv_copy(Plan::Paid, target, "pvMode").is_ok());
        }
        match limits.check_pv_copy(Plan::Free, &own, "pvMode") {
            Err(Error::LimitExceeded { field, message }) => {
                assert_eq!(field, "pvMode");
                assert!(
                    message.contains("free plan does not copy PV data to a destination of your own"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        match limits.check_pv_copy(Plan::Free, &managed, "target.kind") {
            Err(Error::LimitExceeded { message, .. }) => assert!(message.contains("Arca-managed storage"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(serde_json::to_string(&Plan::Paid).unwrap(), "\"paid\"");
    }
}
