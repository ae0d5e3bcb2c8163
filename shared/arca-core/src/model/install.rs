//! Installing an agent: one-time install links and the agent token they hand over.
//!
//! Agent tokens are stored hashed, so a manifest that carries one must mint it: fetching
//! a manifest **rotates** the cluster's agent token (an agent still running with the old
//! one gets 401 until the re-applied Deployment replaces it).
//!
//! `kubectl apply -f <url>` cannot send an API key, so an admin first creates an install
//! link ([`ControlPlane::create_install_link`]): a random token, stored only as its
//! SHA-256 in GSI1 (`INSTALL#<hash>`), valid for [`INSTALL_LINK_TTL`], one per cluster
//! (SK `INSTALL#<clusterId>`; a new link replaces the previous one). Fetching the
//! manifest through the link ([`ControlPlane::consume_install_link`]) deletes the link
//! and sets the new agent-token hash on the cluster in **one conditional transaction**,
//! so of two fetches racing for one link exactly one gets a manifest.

use crate::ids::{ClusterId, OrgId};
use crate::model::cluster::Cluster;
use crate::model::secret::{Secret, SecretHash};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long an install link works: long enough to copy a command to a terminal, short
/// enough that a link left in a chat log is dead by the time anyone finds it.
pub const INSTALL_LINK_TTL: Duration = Duration::from_secs(60 * 60);

/// A pending install link of a cluster (its token only as a hash, in the index key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallLink {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub version: u64,
    /// Kept only in the GSI1 entry (`INSTALL#<hash>`), never in the body.
    #[serde(skip)]
    pub token_hash: Option<SecretHash>,
}

/// A freshly created install link: the token (shown this once) and its expiry.
#[derive(Clone, Debug)]
pub struct CreatedInstallLink {
    pub cluster_id: ClusterId,
    pub token: Secret,
    pub expires_at: DateTime<Utc>,
}

/// What a manifest is rendered from: the cluster and its new agent token.
#[derive(Clone, Debug)]
pub struct AgentInstall {
    pub cluster: Cluster,
    pub agent_token: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_hash_never_reaches_json() {
        let hash = Secret::from_presented("arcainst_x").hash();
        let link = InstallLink {
            cluster_id: ClusterId::new(),
            org_id: OrgId::new(),
            expires_at: DateTime::UNIX_EPOCH,
            created_at: DateTime::UNIX_EPOCH,
            version: 1,
            token_hash: Some(hash.clone()),
        };
        let json = serde_json::to_string(&link).unwrap();
        assert!(!json.contains(hash.as_str()), "{json}");
    }
}
