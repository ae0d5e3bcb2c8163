//! Installing an agent: one-time install links and the agent token they hand over.
//!
//! Agent tokens are stored hashed, so a manifest that carries one must mint it. The token
//! a link's manifest carries is **pending** ([`PendingAgentToken`]) until the new agent's
//! first call, which makes it the cluster's: the agent already running keeps working
//! until then, so a link-preview bot that fetches a pasted `kubectl apply -f <url>` line
//! burns the link but stops nothing. A pending token is good for [`PENDING_TOKEN_TTL`].
//!
//! `kubectl apply -f <url>` cannot send an API key, so an admin first creates an install
//! link ([`ControlPlane::create_install_link`]): a random token, stored only as its
//! SHA-256 in GSI1 (`INSTALL#<hash>`), valid for [`INSTALL_LINK_TTL`], one per cluster
//! (SK `INSTALL#<clusterId>`; a new link replaces the previous one). Fetching the
//! manifest through the link ([`ControlPlane::consume_install_link`]) deletes the link
//! and writes the pending token in **one conditional transaction**, so of two fetches
//! racing for one link exactly one gets a manifest.

use crate::ids::{ClusterId, OrgId};
use crate::model::cluster::Cluster;
use crate::model::secret::{Secret, SecretHash};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long an install link works: long enough to copy a command to a terminal, short
/// enough that a link left in a chat log is dead by the time anyone finds it.
pub const INSTALL_LINK_TTL: Duration = Duration::from_secs(60 * 60);

/// How long the agent token of a fetched manifest waits for its agent's first call.
pub const PENDING_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The agent token a fetched install link handed out, not used yet: one per cluster (SK
/// `AGENTNEXT#<clusterId>`; a newer manifest's replaces it), its hash only in GSI1
/// (`AGENTNEXT#<hash>`). The first agent call with it makes it the cluster's token and
/// deletes this, in one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingAgentToken {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub version: u64,
    /// Kept only in the GSI1 entry, never in the body.
    #[serde(skip)]
    pub token_hash: Option<SecretHash>,
}

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
