//! Clusters and installing their agents.
//!
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
use crate::model::agent::AgentState;
use crate::model::auth::{Operation, Principal};
use crate::model::cluster::{Cluster, ClusterSpec, ClusterState, Heartbeat};
use crate::model::destination::Destination;
use crate::model::recovery::RecoveryPointState;
use crate::model::secret::{AGENT_TOKEN_PREFIX, Secret};
use crate::store::Tx;
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};
use serde::Serialize;

use crate::control_plane::{ControlPlane, retry_on_conflict, retry_on_stale};
use crate::error::ConflictKind;
use crate::model::install::{
    AgentInstall, CreatedInstallLink, INSTALL_LINK_TTL, InstallLink, PENDING_TOKEN_TTL, PendingAgentToken,
};
use crate::model::secret::INSTALL_TOKEN_PREFIX;

/// A registered cluster with its agent token, shown this once.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredCluster {
    #[serde(flatten)]
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
    /// Registers a cluster (REGISTERED) and mints its agent token, returned this once.
    pub async fn register_cluster(&self, p: &Principal, spec: ClusterSpec) -> Result<RegisteredCluster> {
        p.require(Operation::RegisterCluster)?;
        let spec = self.checked_cluster_spec(&p.org_id, spec).await?;
        let now = self.now();
        let token = Secret::generate(AGENT_TOKEN_PREFIX)?;
        let id = ClusterId::new();
        // The queue first: a cluster must never exist without one. A queue left behind
        // by a failed write below is harmless (nothing sends to it) and rare.
        let queue = match &self.queue {
            Some(q) => Some(q.create_queue(id).await?),
            None => None,
        };
        let mut cluster = Cluster::registered(id, p.org_id, spec, Some(token.hash()), now);
        let mut agent = AgentState::new(p.org_id, id, queue, now);
        let mut tx = Tx::new();
        tx.create(&mut cluster)?.create(&mut agent)?;
        self.store.commit(tx).await?;
        Ok(RegisteredCluster {
            cluster: self.presented(cluster, Some(&agent)),
            agent_token: token,
        })
    }

    /// The cluster as callers see it: what its agent reported (kept in its own item)
    /// joined in, and its state aged by the heartbeat timeout.
    pub(crate) fn presented(&self, mut cluster: Cluster, agent: Option<&AgentState>) -> Cluster {
        if let Some(a) = agent {
            if a.last_heartbeat_at.is_some() {
                cluster.state = ClusterState::Active;
            }
            cluster.last_heartbeat_at = a.last_heartbeat_at;
            cluster.kubernetes_version = a.kubernetes_version.clone();
            cluster.agent_version = a.agent_version.clone();
            cluster.node_count = a.node_count;
            cluster.inventory = a.inventory.clone();
            cluster.capabilities = a.capabilities;
        }
        cluster.state = cluster.state_at(self.now(), self.config.heartbeat_timeout);
        cluster
    }

    /// A cluster with its agent's state joined in.
    pub(crate) async fn cluster_view(&self, org: &OrgId, id: &ClusterId) -> Result<Cluster> {
        let cluster = self.store.get::<Cluster>(org, id).await?;
        let agent = self.store.find::<AgentState>(org, id).await?;
        Ok(self.presented(cluster, agent.as_ref()))
    }

    pub async fn get_cluster(&self, p: &Principal, id: &ClusterId) -> Result<Cluster> {
        p.require(Operation::GetCluster)?;
        self.cluster_view(&p.org_id, id).await
    }

    pub async fn list_clusters(&self, p: &Principal, page: &PageRequest) -> Result<Listing<Cluster>> {
        p.require(Operation::ListClusters)?;
        let listing = self.store.list::<Cluster>(&p.org_id, page).await?;
        // The page's agents only, in one batch: whatever the org holds.
        let ids: Vec<ClusterId> = listing.items.iter().map(|c| c.id).collect();
        let mut agents = self.store.find_many::<AgentState>(&p.org_id, &ids).await?.into_iter();
        Ok(listing.map(|c| {
            let agent = agents.next().flatten();
            self.presented(c, agent.as_ref())
        }))
    }

    /// A cluster spec, validated, whose default destination and cloud account exist.
    async fn checked_cluster_spec(&self, org: &OrgId, spec: ClusterSpec) -> Result<ClusterSpec> {
        let spec = spec.validated()?;
        if let Some(dest) = &spec.default_destination_id {
            self.existing::<Destination>(org, dest, "defaultDestinationId").await?;
        }
        if let Some(aws) = &spec.aws {
            self.existing::<crate::model::cloud::account::CloudAccount>(
                org,
                &aws.cloud_account_id,
                "aws.cloudAccountId",
            )
            .await?;
        }
        Ok(spec)
    }

    /// Replaces the user-editable part of a cluster; what the agent reports is kept.
    pub async fn update_cluster(
        &self,
        p: &Principal,
        id: &ClusterId,
        spec: ClusterSpec,
        expected_version: u64,
    ) -> Result<Cluster> {
        p.require(Operation::UpdateCluster)?;
        let spec = self.checked_cluster_spec(&p.org_id, spec).await?;
        let mut cluster = self.store.get::<Cluster>(&p.org_id, id).await?;
        cluster.spec = spec;
        cluster.updated_at = self.now();
        let cluster = self.store.update(cluster, expected_version).await?;
        let agent = self.store.find::<AgentState>(&p.org_id, id).await?;
        Ok(self.presented(cluster, agent.as_ref()))
    }

    /// Replaces the agent token (the old one stops working at once).
    pub async fn rotate_agent_token(
        &self,
        p: &Principal,
        id: &ClusterId,
        expected_version: u64,
    ) -> Result<RegisteredCluster> {
        p.require(Operation::RotateAgentToken)?;
        let mut cluster = self.store.get::<Cluster>(&p.org_id, id).await?;
        let token = Secret::generate(AGENT_TOKEN_PREFIX)?;
        cluster.agent_token_hash = Some(token.hash());
        cluster.updated_at = self.now();
        let cluster = self.store.update(cluster, expected_version).await?;
        let agent = self.store.find::<AgentState>(&p.org_id, id).await?;
        Ok(RegisteredCluster {
            cluster: self.presented(cluster, agent.as_ref()),
            agent_token: token,
        })
    }

    /// Rotates the cluster's archive key: its next backups start new repositories under
    /// a key of the next generation (a full copy, nothing is shared with what the old
    /// key sealed); existing points keep the key they name and stay restorable until
    /// they expire. Refused when the deployment derives no keys (agents hold their own).
    pub async fn rotate_archive_key(&self, p: &Principal, id: &ClusterId, expected_version: u64) -> Result<Cluster> {
        p.require(Operation::RotateArchiveKey)?;
        let mut cluster = self.store.get::<Cluster>(&p.org_id, id).await?;
        if self.config.archive_keyring.is_none() {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::KeysHeldByAgents,
                "this deployment has no master key: its agents hold their archive key (ARCA_ARCHIVE_KEY); \
                 rotate that key on the agents",
            ));
        }
        cluster.archive_key_generation = cluster
            .archive_key_generation
            .checked_add(1)
            .ok_or_else(|| Error::invalid("archiveKeyGeneration", "no generation is left"))?;
        let now = self.now();
        cluster.archive_key_rotated_at = Some(now);
        cluster.updated_at = now;
        let cluster = self.store.update(cluster, expected_version).await?;
        let agent = self.store.find::<AgentState>(&p.org_id, id).await?;
        Ok(self.presented(cluster, agent.as_ref()))
    }

    /// Deletes a cluster. Refused (`Conflict`) while a backup definition references it,
    /// and while it has recovery points unless `confirm_recovery_points`: they stay
    /// until they expire, but can no longer be listed or restored.
    pub async fn delete_cluster(
        &self,
        p: &Principal,
        id: &ClusterId,
        expected_version: u64,
        confirm_recovery_points: bool,
    ) -> Result<()> {
        p.require(Operation::DeleteCluster)?;
        let cluster = self.store.get_at::<Cluster>(&p.org_id, id, expected_version).await?;
        if !cluster.backup_definition_ids.is_empty() {
            let ids: Vec<String> = cluster.backup_definition_ids.iter().map(ToString::to_string).collect();
            return Err(Error::conflict_of(
                crate::error::ConflictKind::ClusterInUse,
                format!(
                    "cluster {:?} is used by backup definitions {}: delete them first",
                    cluster.spec.name,
                    ids.join(", ")
                ),
            ));
        }
        if !confirm_recovery_points {
            // One bounded page of the cluster's live points: the answer needs "some", and
            // says how many up to a page.
            const COUNTED: u32 = 100;
            let live = self
                .store
                .recovery_points_of_cluster(&p.org_id, id, &PageRequest::first(COUNTED), true, |rp| {
                    rp.state != RecoveryPointState::Deleting
                })
                .await?;
            // A cursor with no item: a long run of points being deleted; more may follow.
            if !live.items.is_empty() || live.next_cursor.is_some() {
                let count = match live.next_cursor {
                    Some(_) => format!("{} or more", live.items.len()),
                    None => live.items.len().to_string(),
                };
                return Err(Error::conflict_of(
                    crate::error::ConflictKind::ConfirmationRequired,
                    format!(
                        "cluster {:?} has {count} recovery point(s); they stay until they expire but can no longer be \
                     listed or restored once the cluster is deleted: confirm to delete",
                        cluster.spec.name
                    ),
                ));
            }
        }
        // The version condition also catches a definition attached since the read:
        // attaching one bumps the cluster's version.
        let agent = self.store.find::<AgentState>(&p.org_id, id).await?;
        let install_link = self
            .store
            .find::<crate::model::install::InstallLink>(&p.org_id, id)
            .await?;
        let pending_token = self.store.find::<PendingAgentToken>(&p.org_id, id).await?;
        let mut tx = Tx::new();
        tx.delete::<Cluster>(&p.org_id, id, expected_version);
        if let Some(a) = &agent {
            tx.delete::<AgentState>(&p.org_id, id, a.version);
        }
        // A pending install link or agent token must not outlive its cluster.
        if let Some(link) = &install_link {
            tx.delete::<crate::model::install::InstallLink>(&p.org_id, id, link.version);
        }
        if let Some(pending) = &pending_token {
            tx.delete::<PendingAgentToken>(&p.org_id, id, pending.version);
        }
        match self.store.commit(tx).await {
            Ok(()) => {}
            Err(Error::Conflict { .. }) => {
                return Err(self
                    .store
                    .version_failure::<Cluster>(&p.org_id, id, expected_version)
                    .await);
            }
            Err(e) => return Err(e),
        }
        // After the cluster is gone nothing sends to the queue; deleting an absent queue
        // is not an error, so a retry after a failure here is clean.
        if let (Some(q), Some(queue_ref)) = (&self.queue, agent.and_then(|a| a.queue)) {
            q.delete_queue(&queue_ref).await?;
        }
        Ok(())
    }

    /// Cross-tenant: records a heartbeat of the cluster whose agent token this is,
    /// without a session (tooling and tests; agents use `agent_heartbeat`). The
    /// cluster becomes ACTIVE; its item (and ETag) is not touched.
    pub async fn record_heartbeat(&self, agent_token: &Secret, heartbeat: Heartbeat) -> Result<Cluster> {
        let agent = self.authenticate_agent(agent_token).await?;
        self.write_heartbeat(&agent, None, heartbeat).await
    }

    /// Creates (or replaces) the cluster's one-time install link (admin).
    pub async fn create_install_link(&self, p: &Principal, cluster_id: &ClusterId) -> Result<CreatedInstallLink> {
        p.require(Operation::CreateInstallLink)?;
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
    /// answers both 410). On success the link is gone and a new agent token, returned for
    /// the manifest, is pending: it becomes the cluster's (and the old one stops working)
    /// at the new agent's first call.
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
                let cluster = self.store.get::<Cluster>(&link.org_id, &link.cluster_id).await?;
                let now = self.now();
                let mut pending = PendingAgentToken {
                    cluster_id: link.cluster_id,
                    org_id: link.org_id,
                    expires_at: now + PENDING_TOKEN_TTL,
                    created_at: now,
                    version: 0,
                    token_hash: Some(agent_token.hash()),
                };
                let mut tx = Tx::new();
                // Deleting the link at the version read is what makes it single-use: a
                // concurrent fetch fails this condition and, retrying, finds no link.
                tx.delete::<InstallLink>(&link.org_id, &link.cluster_id, link.version);
                // The token waits for its agent's first call (`authenticate_agent`); the
                // running agent keeps its own until then. An earlier manifest's unused
                // token is replaced.
                match self
                    .store
                    .find::<PendingAgentToken>(&link.org_id, &link.cluster_id)
                    .await?
                {
                    Some(old) => tx.update(&mut pending, old.version)?,
                    None => tx.create(&mut pending)?,
                };
                tx.check::<Cluster>(&link.org_id, &link.cluster_id, cluster.version);
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(cluster)
            })
            .await?;
        let agent = self
            .store
            .find::<crate::model::agent::AgentState>(&cluster.org_id, &cluster.id)
            .await?;
        Ok(AgentInstall {
            cluster: self.presented(cluster, agent.as_ref()),
            agent_token: agent_token.clone(),
        })
    }

    /// The manifest path with an API key (admin): mints and returns a new agent token
    /// (rotating the old one), whatever the cluster's current version.
    pub async fn install_agent_token(&self, p: &Principal, cluster_id: &ClusterId) -> Result<AgentInstall> {
        p.require(Operation::InstallAgentToken)?;
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
            .find::<crate::model::agent::AgentState>(&p.org_id, cluster_id)
            .await?;
        Ok(AgentInstall {
            cluster: self.presented(cluster, agent.as_ref()),
            agent_token,
        })
    }
}
