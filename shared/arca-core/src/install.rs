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

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{Principal, Role};
use crate::cluster::Cluster;
use crate::error::ConflictKind;
use crate::ids::{ClusterId, OrgId};
use crate::secret::{AGENT_TOKEN_PREFIX, INSTALL_TOKEN_PREFIX, Secret, SecretHash};
use crate::service::{ControlPlane, retry_on_conflict, retry_on_stale};
use crate::store::Tx;
use crate::{Error, Result};

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

fn link_used() -> Error {
    Error::conflict_of(
        ConflictKind::InstallLinkUsed,
        "this install link is unknown or was already used (links work once): create a new one with \
         POST /v1/clusters/{id}/install",
    )
}

impl ControlPlane {
    /// Creates (or replaces) the cluster's one-time install link (admin).
    pub async fn create_install_link(&self, p: &Principal, cluster_id: &ClusterId) -> Result<CreatedInstallLink> {
        p.require(Role::Admin)?;
        // NotFound for another org's cluster: it is not in this org's partition.
        self.store.get::<Cluster>(&p.org_id, cluster_id).await?;
        let token = Secret::generate(INSTALL_TOKEN_PREFIX)?;
        let now = self.now();
        let expires_at = now + INSTALL_LINK_TTL;
        let hash = token.hash();
        let hash = &hash;
        self.retrying(|| async move {
            let mut link = InstallLink {
                cluster_id: *cluster_id,
                org_id: p.org_id,
                expires_at,
                created_at: now,
                version: 0,
                token_hash: Some(hash.clone()),
            };
            let mut tx = Tx::new();
            match self.store.find::<InstallLink>(&p.org_id, cluster_id).await? {
                // The previous link stops working: its index entry is replaced.
                Some(old) => tx.update(&mut link, old.version)?,
                None => tx.create(&mut link)?,
            };
            // The cluster must still exist when the link is written.
            let cluster = self.store.get::<Cluster>(&p.org_id, cluster_id).await?;
            tx.check::<Cluster>(&p.org_id, cluster_id, cluster.version);
            self.store.commit(tx).await.map_err(retry_on_conflict)
        })
        .await?;
        Ok(CreatedInstallLink {
            cluster_id: *cluster_id,
            token,
            expires_at,
        })
    }

    /// Cross-tenant, no API key: spends an install link. Unknown or used links are
    /// `Conflict(InstallLinkUsed)`, expired ones `Conflict(InstallLinkExpired)` (the API
    /// answers both 410). On success the link is gone and the cluster has a new agent
    /// token (the old one stops working), returned for the manifest.
    pub async fn consume_install_link(&self, presented: &Secret) -> Result<AgentInstall> {
        let text = presented.expose();
        if !text.starts_with(INSTALL_TOKEN_PREFIX) || text.len() > 200 {
            return Err(link_used());
        }
        let hash = presented.hash();
        let hash = &hash;
        let agent_token = Secret::generate(AGENT_TOKEN_PREFIX)?;
        let agent_token = &agent_token;
        let cluster = self
            .retrying(|| async move {
                let Some(link) = self.store.find_install_link_by_hash_cross_tenant(hash).await? else {
                    return Err(link_used());
                };
                if link.expires_at <= self.now() {
                    return Err(Error::conflict_of(
                        ConflictKind::InstallLinkExpired,
                        format!(
                            "this install link expired at {}: create a new one with POST /v1/clusters/{}/install",
                            link.expires_at.to_rfc3339(),
                            link.cluster_id
                        ),
                    ));
                }
                let mut cluster = self.store.get::<Cluster>(&link.org_id, &link.cluster_id).await?;
                let expected = cluster.version;
                cluster.agent_token_hash = Some(agent_token.hash());
                cluster.updated_at = self.now();
                let mut tx = Tx::new();
                // Deleting the link at the version read is what makes it single-use: a
                // concurrent fetch fails this condition and, retrying, finds no link.
                tx.delete::<InstallLink>(&link.org_id, &link.cluster_id, link.version);
                tx.update(&mut cluster, expected)?;
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(cluster)
            })
            .await?;
        let agent = self
            .store
            .find::<crate::agent::AgentState>(&cluster.org_id, &cluster.id)
            .await?;
        Ok(AgentInstall {
            cluster: self.presented(cluster, agent.as_ref()),
            agent_token: agent_token.clone(),
        })
    }

    /// The manifest path with an API key (admin): mints and returns a new agent token
    /// (rotating the old one), whatever the cluster's current version.
    pub async fn install_agent_token(&self, p: &Principal, cluster_id: &ClusterId) -> Result<AgentInstall> {
        p.require(Role::Admin)?;
        let agent_token = Secret::generate(AGENT_TOKEN_PREFIX)?;
        let token = &agent_token;
        let cluster = self
            .retrying(|| async move {
                let mut cluster = self.store.get::<Cluster>(&p.org_id, cluster_id).await?;
                let expected = cluster.version;
                cluster.agent_token_hash = Some(token.hash());
                cluster.updated_at = self.now();
                self.store.update(cluster, expected).await.map_err(retry_on_stale)
            })
            .await?;
        let agent = self
            .store
            .find::<crate::agent::AgentState>(&p.org_id, cluster_id)
            .await?;
        Ok(AgentInstall {
            cluster: self.presented(cluster, agent.as_ref()),
            agent_token,
        })
    }
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
