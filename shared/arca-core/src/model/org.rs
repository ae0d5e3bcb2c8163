//! The tenant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DestinationId, OrgId};
use crate::model::plan::Plan;
use crate::{Result, validate};

/// A tenant: everything else belongs to exactly one org.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub plan: Plan,
    /// The last fallback of destination precedence (definition > cluster > org).
    pub default_destination_id: Option<DestinationId>,
    /// How long the org's audit records are kept, in days (independent of backups).
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// What an admin may change on the org. The plan is not here: it changes through
/// billing (`ControlPlane::set_plan`), never through the org's own API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgSpec {
    pub name: String,
    #[serde(default)]
    pub default_destination_id: Option<DestinationId>,
    /// Days audit records are kept, 1 to 3650; absent: unchanged.
    #[serde(default)]
    pub audit_retention_days: Option<u32>,
}

/// Audit records are kept a year unless the org says otherwise.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 365;
/// The longest an org may keep its audit records: ten years.
pub const MAX_AUDIT_RETENTION_DAYS: u32 = 3650;

fn default_audit_retention_days() -> u32 {
    DEFAULT_AUDIT_RETENTION_DAYS
}

impl OrgSpec {
    pub fn validated(mut self) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        if let Some(days) = self.audit_retention_days
            && !(1..=MAX_AUDIT_RETENTION_DAYS).contains(&days)
        {
            return Err(crate::Error::invalid(
                "auditRetentionDays",
                format!("must be between 1 and {MAX_AUDIT_RETENTION_DAYS} days"),
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_retention_is_bounded_and_defaults_to_a_year() {
        let spec = |days| OrgSpec {
            name: "acme".into(),
            audit_retention_days: days,
            ..Default::default()
        };
        assert!(spec(None).validated().is_ok());
        assert!(spec(Some(1)).validated().is_ok());
        assert!(spec(Some(MAX_AUDIT_RETENTION_DAYS)).validated().is_ok());
        for bad in [0, MAX_AUDIT_RETENTION_DAYS + 1] {
            let err = spec(Some(bad)).validated().unwrap_err();
            assert!(err.to_string().contains("auditRetentionDays"), "{err}");
        }
        let stored: Org = serde_json::from_value(serde_json::json!({
            "id": OrgId::new(), "name": "acme", "plan": "free", "defaultDestinationId": null,
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "version": 1
        }))
        .unwrap();
        assert_eq!(stored.audit_retention_days, DEFAULT_AUDIT_RETENTION_DAYS);
    }
}
