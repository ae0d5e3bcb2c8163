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
}

impl OrgSpec {
    pub fn validated(mut self) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        Ok(self)
    }
}
