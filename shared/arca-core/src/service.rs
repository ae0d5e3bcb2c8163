//! The control plane's service layer: every business rule the API applies, over the
//! typed store. Handlers parse, call one method here, and map the result; they decide
//! nothing.
//!
//! Every method takes the authenticated [`Principal`] (its org is the tenant scope, its
//! role is checked here) except sign-up, authentication, the agent's heartbeat and
//! `set_plan`, which are not made by a signed-in user.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::AgentState;
use crate::auth::{ApiKey, ApiKeySpec, CreatedApiKey, Principal, Role};
use crate::backup::{BackupDefinition, BackupDefinitionSpec, BackupDefinitionView, PvMode};
use crate::cluster::{Cluster, ClusterSpec, ClusterState, Heartbeat, Inventory};
use crate::credentials::{ConfigVendor, CredentialVendor};
use crate::destination::{Destination, DestinationSpec, EffectiveDestination, effective_destination};
use crate::dispatch::DispatchRequest;
use crate::ids::{
    ApiKeyId, BackupDefinitionId, ClusterId, DestinationId, JobId, OrgId, PolicyId, RecoveryPointId, RestoreId,
};
use crate::job::{Job, JobState, JobTrigger, JobType, Retention};
use crate::org::{Org, OrgSpec};
use crate::plan::{Plan, PlanLimits};
use crate::policy::{self, Policy, PolicyReferrer, PolicySpec, ReferrerKind};
use crate::ports::Clock;
use crate::queue::Queue;
use crate::recovery::{RecoveryPoint, RecoveryPointState};
use crate::restore::{Restore, RestoreSpec};
use crate::scheduler::Scheduler;
use crate::secret::{AGENT_TOKEN_PREFIX, API_KEY_PREFIX, Secret};
use crate::store::page::{Listing, PageRequest};
use crate::store::{Record, Store, Tx};
use crate::{Error, Result, validate};

/// How often a read-check-write is retried when a concurrent writer got there first.
pub(crate) const CONCURRENCY_RETRIES: usize = 4;

/// Deployment configuration of the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    /// Whether anyone may sign up (creating an org). Closed by default: a private
    /// deployment creates orgs with [`ControlPlane::create_org`] from its tooling.
    pub signup_open: bool,
    /// Whether LOCAL_FILESYSTEM destinations are allowed (single-machine mode only).
    pub local_destinations: bool,
    /// An ACTIVE cluster not heard from for this long reads as PENDING (the grace
    /// period; default 2 minutes).
    pub heartbeat_timeout: Duration,
    /// How often the agent is told to heartbeat (default 30 s).
    pub heartbeat_interval: Duration,
    /// Longest wait of an agent's poll for a job (at most 20 s, SQS's long-poll limit).
    pub poll_wait: Duration,
    /// A job's lease: the agent extends it before it lapses, else the job is redelivered.
    pub lease: Duration,
    /// Retention of a run-now job whose definition has no policy and whose request
    /// names none.
    pub default_run_now_retain_days: u32,
    /// Derives each org's archive key, handed to its agents with a job's destination
    /// access. Without it agents must be given a key of their own.
    pub archive_master_key: Option<crate::archive_key::ArchiveMasterKey>,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        ControlPlaneConfig {
            signup_open: false,
            local_destinations: false,
            heartbeat_timeout: Duration::from_secs(2 * 60),
            heartbeat_interval: Duration::from_secs(30),
            poll_wait: Duration::from_secs(20),
            lease: Duration::from_secs(5 * 60),
            default_run_now_retain_days: 7,
            archive_master_key: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupRequest {
    pub org_name: String,
    /// Name of the bootstrap admin key; "bootstrap admin" when absent.
    #[serde(default)]
    pub admin_key_name: Option<String>,
}

/// What sign-up returns: the org, its first admin key (secret shown this once) and
/// its default policy.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupResult {
    pub org: Org,
    pub admin_key: CreatedApiKey,
    pub default_policy: Policy,
}

/// A registered cluster with its agent token, shown this once.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredCluster {
    #[serde(flatten)]
    pub cluster: Cluster,
    pub agent_token: Secret,
}

/// Options of a run-now; without a retention, the first schedule row of the
/// definition's policy decides, else the configured default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunNowRequest {
    #[serde(default)]
    pub retention: Option<Retention>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobFilter {
    #[serde(default)]
    pub cluster_id: Option<ClusterId>,
    #[serde(default)]
    pub definition_id: Option<BackupDefinitionId>,
    #[serde(default)]
    pub state: Option<JobState>,
    #[serde(default)]
    pub job_type: Option<JobType>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPointFilter {
    #[serde(default)]
    pub cluster_id: Option<ClusterId>,
    #[serde(default)]
    pub definition_id: Option<BackupDefinitionId>,
}

/// A restore request and the K8S_RESTORE job it created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreCreated {
    pub restore: Restore,
    pub job: Job,
}

/// The control plane: the store, the plan limits, the clock, the configuration and the
/// ports that move work (the cluster queues, the scheduler, the credential vendor).
#[derive(Clone)]
pub struct ControlPlane {
    pub(crate) store: Store,
    pub(crate) limits: PlanLimits,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: ControlPlaneConfig,
    /// `None` only in store-level tests: registering then creates no queue, and
    /// dispatching fails (`Permanent`) rather than creating jobs nobody can receive.
    pub(crate) queue: Option<Arc<dyn Queue>>,
    /// `None` only in store-level tests: definition changes then sync no schedules.
    pub(crate) scheduler: Option<Arc<dyn Scheduler>>,
    pub(crate) vendor: Arc<dyn CredentialVendor>,
    /// `None` when the deployment does not reach AWS accounts (linking is refused).
    pub(crate) cloud: Option<crate::cloud_service::CloudWiring>,
    /// `None` when the deployment does not protect RDS (RDS runs are refused).
    pub(crate) rds: Option<crate::rds_service::RdsWiring>,
}

fn referrer(def: &BackupDefinition) -> PolicyReferrer {
    PolicyReferrer {
        kind: ReferrerKind::K8sBackup,
        id: def.id.to_string(),
        name: def.spec.name.clone(),
    }
}

impl ControlPlane {
    pub fn new(store: Store, limits: PlanLimits, clock: Arc<dyn Clock>, config: ControlPlaneConfig) -> Self {
        ControlPlane {
            store,
            limits,
            clock,
            config,
            queue: None,
            scheduler: None,
            vendor: Arc::new(ConfigVendor),
            cloud: None,
            rds: None,
        }
    }

    /// Wires the per-cluster job queues (every deployment does).
    pub fn with_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Sets the master key each org's archive key is derived from (see
    /// [`crate::archive_key`]); `None` leaves agents to bring their own.
    pub fn with_archive_master_key(mut self, key: Option<crate::archive_key::ArchiveMasterKey>) -> Self {
        self.config.archive_master_key = key;
        self
    }

    /// Wires the scheduler that keeps one schedule per (definition, policy row).
    pub fn with_scheduler(mut self, scheduler: Arc<dyn Scheduler>) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    pub fn with_credential_vendor(mut self, vendor: Arc<dyn CredentialVendor>) -> Self {
        self.vendor = vendor;
        self
    }

    /// The typed store, for components (dispatch, retention, the agent protocol) that
    /// write jobs and recovery points directly.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn limits(&self) -> &PlanLimits {
        &self.limits
    }

    pub fn config(&self) -> &ControlPlaneConfig {
        &self.config
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(self.clock.now())
    }

    // ---- orgs, sign-up, API keys, authentication --------------------------------

    /// Public sign-up: refused with `Forbidden` unless the deployment allows it.
    pub async fn signup(&self, request: SignupRequest) -> Result<SignupResult> {
        if !self.config.signup_open {
            return Err(Error::forbidden("sign-up is closed on this deployment"));
        }
        self.create_org(request).await
    }

    /// Creates an org (free plan) with its bootstrap admin key and the default hourly
    /// policy, all in one transaction. Not gated by `signup_open`: for tooling.
    pub async fn create_org(&self, request: SignupRequest) -> Result<SignupResult> {
        let now = self.now();
        let name = validate::name("orgName", &request.org_name)?;
        let key_name = validate::name(
            "adminKeyName",
            request.admin_key_name.as_deref().unwrap_or("bootstrap admin"),
        )?;
        let mut org = Org {
            id: OrgId::new(),
            name,
            plan: Plan::Free,
            default_destination_id: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let (mut key, secret) = self.new_api_key(
            &org.id,
            ApiKeySpec {
                name: key_name,
                role: Role::Admin,
            },
            now,
        )?;
        let spec = PolicySpec::default_hourly().validated(org.plan, &self.limits)?;
        let mut policy = Policy {
            id: PolicyId::new(),
            org_id: org.id,
            spec,
            used_by: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let mut tx = Tx::new();
        tx.create(&mut org)?.create(&mut key)?.create(&mut policy)?;
        self.store.commit(tx).await?;
        Ok(SignupResult {
            org,
            admin_key: CreatedApiKey { api_key: key, secret },
            default_policy: policy,
        })
    }

    fn new_api_key(&self, org: &OrgId, spec: ApiKeySpec, now: DateTime<Utc>) -> Result<(ApiKey, Secret)> {
        let spec = spec.validated()?;
        let secret = Secret::generate(API_KEY_PREFIX)?;
        let key = ApiKey {
            id: ApiKeyId::new(),
            org_id: *org,
            name: spec.name,
            role: spec.role,
            snippet: secret.snippet(),
            created_at: now,
            updated_at: now,
            version: 0,
            secret_hash: Some(secret.hash()),
        };
        Ok((key, secret))
    }

    /// Who a presented API key belongs to. Any failure is `Unauthenticated`, with no
    /// hint whether the key is malformed, unknown or deleted.
    pub async fn authenticate(&self, presented: &Secret) -> Result<Principal> {
        let text = presented.expose();
        if !text.starts_with(API_KEY_PREFIX) || text.len() > 200 {
            return Err(Error::Unauthenticated);
        }
        match self.store.find_api_key_by_hash_cross_tenant(&presented.hash()).await? {
            Some(key) => Ok(Principal {
                org_id: key.org_id,
                role: key.role,
                api_key_id: Some(key.id),
            }),
            None => Err(Error::Unauthenticated),
        }
    }

    pub async fn get_org(&self, p: &Principal) -> Result<Org> {
        p.require(Role::Viewer)?;
        self.store.get::<Org>(&p.org_id, &p.org_id).await
    }

    /// Renames the org or sets its default destination (admin).
    pub async fn update_org(&self, p: &Principal, spec: OrgSpec, expected_version: u64) -> Result<Org> {
        p.require(Role::Admin)?;
        let spec = spec.validated()?;
        if let Some(dest) = &spec.default_destination_id {
            self.existing::<Destination>(&p.org_id, dest, "defaultDestinationId")
                .await?;
        }
        let mut org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        org.name = spec.name;
        org.default_destination_id = spec.default_destination_id;
        org.updated_at = self.now();
        self.store.update(org, expected_version).await
    }

    /// Changes an org's plan (billing, not a user). Existing policies are not
    /// re-validated: limits apply to the next edit and to new runs.
    pub async fn set_plan(&self, org_id: &OrgId, plan: Plan) -> Result<Org> {
        self.retrying(|| async move {
            let mut org = self.store.get::<Org>(org_id, org_id).await?;
            let expected = org.version;
            org.plan = plan;
            org.updated_at = self.now();
            self.store.update(org, expected).await.map_err(retry_on_stale)
        })
        .await
    }

    /// Creates an API key (admin); the plaintext is in the result, and nowhere else.
    pub async fn create_api_key(&self, p: &Principal, spec: ApiKeySpec) -> Result<CreatedApiKey> {
        p.require(Role::Admin)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let existing = self.store.list_all::<ApiKey>(&p.org_id).await?;
        self.limits.check_api_key_count(org.plan, existing.len())?;
        let (key, secret) = self.new_api_key(&p.org_id, spec, self.now())?;
        let api_key = self.store.create(key).await?;
        Ok(CreatedApiKey { api_key, secret })
    }

    pub async fn list_api_keys(&self, p: &Principal, page: &PageRequest) -> Result<Listing<ApiKey>> {
        p.require(Role::Admin)?;
        self.store.list(&p.org_id, page).await
    }

    pub async fn get_api_key(&self, p: &Principal, id: &ApiKeyId) -> Result<ApiKey> {
        p.require(Role::Admin)?;
        self.store.get(&p.org_id, id).await
    }

    /// Deletes a key (admin). The last admin key cannot go: the org would be locked out.
    pub async fn delete_api_key(&self, p: &Principal, id: &ApiKeyId, expected_version: u64) -> Result<()> {
        p.require(Role::Admin)?;
        let key = self.store.get::<ApiKey>(&p.org_id, id).await?;
        if key.role == Role::Admin {
            let admins = self
                .store
                .list_all::<ApiKey>(&p.org_id)
                .await?
                .into_iter()
                .filter(|k| k.role == Role::Admin)
                .count();
            if admins <= 1 {
                return Err(Error::conflict_of(
                    crate::error::ConflictKind::LastAdminKey,
                    "this is the org's last admin key: create another admin key first",
                ));
            }
        }
        self.store.delete::<ApiKey>(&p.org_id, id, expected_version).await
    }

    // ---- clusters ---------------------------------------------------------------

    /// Registers a cluster (REGISTERED) and mints its agent token, returned this once.
    pub async fn register_cluster(&self, p: &Principal, spec: ClusterSpec) -> Result<RegisteredCluster> {
        p.require(Role::Admin)?;
        let spec = spec.validated()?;
        if let Some(dest) = &spec.default_destination_id {
            self.existing::<Destination>(&p.org_id, dest, "defaultDestinationId")
                .await?;
        }
        if let Some(aws) = &spec.aws {
            self.existing::<crate::cloud::CloudAccount>(&p.org_id, &aws.cloud_account_id, "aws.cloudAccountId")
                .await?;
        }
        let now = self.now();
        let token = Secret::generate(AGENT_TOKEN_PREFIX)?;
        let id = ClusterId::new();
        // The queue first: a cluster must never exist without one. A queue left behind
        // by a failed write below is harmless (nothing sends to it) and rare.
        let queue = match &self.queue {
            Some(q) => Some(q.create_queue(id).await?),
            None => None,
        };
        let mut cluster = Cluster {
            id,
            org_id: p.org_id,
            spec,
            state: ClusterState::Registered,
            kubernetes_version: None,
            agent_version: None,
            node_count: None,
            inventory: Inventory::default(),
            capabilities: None,
            last_heartbeat_at: None,
            backup_definition_ids: BTreeSet::new(),
            created_at: now,
            updated_at: now,
            version: 0,
            agent_token_hash: Some(token.hash()),
        };
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
        p.require(Role::Viewer)?;
        self.cluster_view(&p.org_id, id).await
    }

    pub async fn list_clusters(&self, p: &Principal, page: &PageRequest) -> Result<Listing<Cluster>> {
        p.require(Role::Viewer)?;
        let listing = self.store.list::<Cluster>(&p.org_id, page).await?;
        let agents: std::collections::BTreeMap<ClusterId, AgentState> = self
            .store
            .list_all::<AgentState>(&p.org_id)
            .await?
            .into_iter()
            .map(|a| (a.cluster_id, a))
            .collect();
        Ok(listing.map(|c| {
            let agent = agents.get(&c.id);
            self.presented(c, agent)
        }))
    }

    /// Replaces the user-editable part of a cluster; what the agent reports is kept.
    pub async fn update_cluster(
        &self,
        p: &Principal,
        id: &ClusterId,
        spec: ClusterSpec,
        expected_version: u64,
    ) -> Result<Cluster> {
        p.require(Role::Admin)?;
        let spec = spec.validated()?;
        if let Some(dest) = &spec.default_destination_id {
            self.existing::<Destination>(&p.org_id, dest, "defaultDestinationId")
                .await?;
        }
        if let Some(aws) = &spec.aws {
            self.existing::<crate::cloud::CloudAccount>(&p.org_id, &aws.cloud_account_id, "aws.cloudAccountId")
                .await?;
        }
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
        p.require(Role::Admin)?;
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
        p.require(Role::Admin)?;
        let cluster = self.store.get::<Cluster>(&p.org_id, id).await?;
        if cluster.version != expected_version {
            return Err(self
                .store
                .version_failure::<Cluster>(&p.org_id, id, expected_version)
                .await);
        }
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
            let count = self
                .store
                .list_all::<RecoveryPoint>(&p.org_id)
                .await?
                .iter()
                .filter(|rp| rp.cluster_id == *id && rp.state != RecoveryPointState::Deleting)
                .count();
            if count > 0 {
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
        let install_link = self.store.find::<crate::install::InstallLink>(&p.org_id, id).await?;
        let mut tx = Tx::new();
        tx.delete::<Cluster>(&p.org_id, id, expected_version);
        if let Some(a) = &agent {
            tx.delete::<AgentState>(&p.org_id, id, a.version);
        }
        // A pending install link must not outlive its cluster.
        if let Some(link) = &install_link {
            tx.delete::<crate::install::InstallLink>(&p.org_id, id, link.version);
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

    // ---- destinations -----------------------------------------------------------

    pub async fn create_destination(&self, p: &Principal, spec: DestinationSpec) -> Result<Destination> {
        p.require(Role::Admin)?;
        let spec = spec.validated(self.config.local_destinations)?;
        let now = self.now();
        let dest = Destination {
            id: DestinationId::new(),
            org_id: p.org_id,
            spec,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.store.create(dest).await
    }

    pub async fn get_destination(&self, p: &Principal, id: &DestinationId) -> Result<Destination> {
        p.require(Role::Viewer)?;
        self.store.get(&p.org_id, id).await
    }

    pub async fn list_destinations(&self, p: &Principal, page: &PageRequest) -> Result<Listing<Destination>> {
        p.require(Role::Viewer)?;
        self.store.list(&p.org_id, page).await
    }

    /// Replaces a destination. Changing its kind to ARCA_MANAGED is refused on the free
    /// plan while a snapshotAndCopy definition resolves to it.
    pub async fn update_destination(
        &self,
        p: &Principal,
        id: &DestinationId,
        spec: DestinationSpec,
        expected_version: u64,
    ) -> Result<Destination> {
        p.require(Role::Admin)?;
        let spec = spec.validated(self.config.local_destinations)?;
        let mut dest = self.store.get::<Destination>(&p.org_id, id).await?;
        if spec.target.is_arca_managed() && !dest.spec.target.is_arca_managed() {
            let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
            if !self.limits.for_plan(org.plan).copy_to_managed_storage {
                for def in self.copying_definitions(&p.org_id).await? {
                    if self.effective_for(&org, &def).await?.map(|e| e.destination_id) == Some(*id) {
                        self.limits.check_copy_to_managed_storage(org.plan, "target.kind")?;
                    }
                }
            }
        }
        dest.spec = spec;
        dest.updated_at = self.now();
        self.store.update(dest, expected_version).await
    }

    /// Deletes a destination nothing refers to (org default, cluster default or a
    /// definition's override). The check reads, then deletes: not transactional.
    pub async fn delete_destination(&self, p: &Principal, id: &DestinationId, expected_version: u64) -> Result<()> {
        p.require(Role::Admin)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let mut users = Vec::new();
        if org.default_destination_id == Some(*id) {
            users.push("the org's default".to_string());
        }
        for c in self.store.list_all::<Cluster>(&p.org_id).await? {
            if c.spec.default_destination_id == Some(*id) {
                users.push(format!("cluster {:?}", c.spec.name));
            }
        }
        for d in self.store.list_all::<BackupDefinition>(&p.org_id).await? {
            if d.spec.destination_id == Some(*id) {
                users.push(format!("backup definition {:?}", d.spec.name));
            }
        }
        if !users.is_empty() {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::DestinationInUse,
                format!("destination {id} is used by {}", users.join(", ")),
            ));
        }
        self.store.delete::<Destination>(&p.org_id, id, expected_version).await
    }

    // ---- policies ---------------------------------------------------------------

    pub async fn create_policy(&self, p: &Principal, spec: PolicySpec) -> Result<Policy> {
        p.require(Role::Admin)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let spec = spec.validated(org.plan, &self.limits)?;
        let now = self.now();
        let policy = Policy {
            id: PolicyId::new(),
            org_id: p.org_id,
            spec,
            used_by: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.store.create(policy).await
    }

    pub async fn get_policy(&self, p: &Principal, id: &PolicyId) -> Result<Policy> {
        p.require(Role::Viewer)?;
        self.store.get(&p.org_id, id).await
    }

    pub async fn list_policies(&self, p: &Principal, page: &PageRequest) -> Result<Listing<Policy>> {
        p.require(Role::Viewer)?;
        self.store.list(&p.org_id, page).await
    }

    /// Replaces a policy's spec; `usedBy` is kept. A policy used by an RDS copy must
    /// stay at most daily.
    pub async fn update_policy(
        &self,
        p: &Principal,
        id: &PolicyId,
        spec: PolicySpec,
        expected_version: u64,
    ) -> Result<Policy> {
        p.require(Role::Admin)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let spec = spec.validated(org.plan, &self.limits)?;
        let mut policy = self.store.get::<Policy>(&p.org_id, id).await?;
        if policy.is_used_by_rds_copy() {
            policy::ensure_at_most_daily(&spec, self.now())?;
        }
        // Renaming changes nothing elsewhere: definitions refer to the policy by id.
        policy.spec = spec;
        policy.updated_at = self.now();
        let policy = self.store.update(policy, expected_version).await?;
        // Every definition on this policy gets its schedules re-derived (rows, crons,
        // timezone and suspension may all have changed).
        for user in policy.used_by.iter().filter(|u| u.kind == ReferrerKind::K8sBackup) {
            let Ok(def_id) = user.id.parse::<BackupDefinitionId>() else {
                continue;
            };
            if let Some(def) = self.store.find::<BackupDefinition>(&p.org_id, &def_id).await? {
                self.sync_schedules(&def).await?;
            }
        }
        for user in policy
            .used_by
            .iter()
            .filter(|u| matches!(u.kind, ReferrerKind::RdsBackup | ReferrerKind::RdsCopy))
        {
            let Ok(def_id) = user.id.parse::<crate::ids::RdsBackupDefinitionId>() else {
                continue;
            };
            if let Some(def) = self
                .store
                .find::<crate::rds::RdsBackupDefinition>(&p.org_id, &def_id)
                .await?
            {
                self.sync_rds_schedules(&def).await?;
            }
        }
        Ok(policy)
    }

    /// Deletes a policy nothing uses. `usedBy` changes bump the version, so the version
    /// condition makes "in use" race-free.
    pub async fn delete_policy(&self, p: &Principal, id: &PolicyId, expected_version: u64) -> Result<()> {
        p.require(Role::Admin)?;
        let policy = self.store.get::<Policy>(&p.org_id, id).await?;
        if policy.version != expected_version {
            return Err(self
                .store
                .version_failure::<Policy>(&p.org_id, id, expected_version)
                .await);
        }
        policy.ensure_unused()?;
        self.store.delete::<Policy>(&p.org_id, id, expected_version).await
    }

    /// The attach check for RDS copy definitions (which arrive in a later issue): the
    /// policy exists and never runs more often than daily.
    pub async fn check_policy_for_rds_copy(&self, p: &Principal, id: &PolicyId) -> Result<Policy> {
        p.require(Role::Viewer)?;
        let policy = self.existing::<Policy>(&p.org_id, id, "policyId").await?;
        policy::ensure_at_most_daily(&policy.spec, self.now()).map_err(|e| match e {
            Error::Invalid { message, .. } => Error::invalid("policyId", message),
            other => other,
        })?;
        Ok(policy)
    }

    // ---- backup definitions -----------------------------------------------------

    /// Reads a referenced record, turning NotFound into `Invalid` on the referencing
    /// field: the request is wrong, not the URL.
    async fn existing<T: Record>(&self, org: &OrgId, id: &T::Id, field: &str) -> Result<T> {
        match self.store.get::<T>(org, id).await {
            Err(Error::NotFound { what }) => Err(Error::invalid(field, what)),
            other => other,
        }
    }

    async fn effective_for(&self, org: &Org, def: &BackupDefinition) -> Result<Option<EffectiveDestination>> {
        let cluster_default = match self.store.find::<Cluster>(&org.id, &def.spec.cluster_id).await? {
            Some(c) => c.spec.default_destination_id,
            None => None,
        };
        Ok(effective_destination(
            def.spec.destination_id,
            cluster_default,
            org.default_destination_id,
        ))
    }

    async fn copying_definitions(&self, org: &OrgId) -> Result<Vec<BackupDefinition>> {
        Ok(self
            .store
            .list_all::<BackupDefinition>(org)
            .await?
            .into_iter()
            .filter(|d| d.spec.pv_mode == PvMode::SnapshotAndCopy)
            .collect())
    }

    /// The destination rules of a definition: one must resolve, it must exist, and the
    /// free plan does not copy PV data to Arca-managed storage.
    async fn check_destination(
        &self,
        org: &Org,
        spec: &BackupDefinitionSpec,
        cluster: &Cluster,
    ) -> Result<EffectiveDestination> {
        if let Some(id) = &spec.destination_id {
            self.existing::<Destination>(&org.id, id, "destinationId").await?;
        }
        let effective = effective_destination(
            spec.destination_id,
            cluster.spec.default_destination_id,
            org.default_destination_id,
        )
        .ok_or_else(|| {
            Error::invalid(
                "destinationId",
                "no destination: set one on the definition, its cluster or the org",
            )
        })?;
        let dest = self
            .store
            .get::<Destination>(&org.id, &effective.destination_id)
            .await?;
        if spec.pv_mode == PvMode::SnapshotAndCopy && dest.spec.target.is_arca_managed() {
            self.limits.check_copy_to_managed_storage(org.plan, "pvMode")?;
        }
        Ok(effective)
    }

    pub async fn create_backup_definition(
        &self,
        p: &Principal,
        spec: BackupDefinitionSpec,
    ) -> Result<BackupDefinitionView> {
        p.require(Role::Admin)?;
        let spec = &spec.validated()?;
        let id = BackupDefinitionId::new();
        let view = self
            .retrying(|| async move {
                let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
                let mut cluster = self
                    .existing::<Cluster>(&p.org_id, &spec.cluster_id, "clusterId")
                    .await?;
                let effective = self.check_destination(&org, spec, &cluster).await?;
                let now = self.now();
                let mut def = BackupDefinition {
                    id,
                    org_id: p.org_id,
                    spec: spec.clone(),
                    created_at: now,
                    updated_at: now,
                    version: 0,
                };
                let mut tx = Tx::new();
                tx.create(&mut def)?;
                let cluster_version = cluster.version;
                cluster.backup_definition_ids.insert(id);
                tx.update(&mut cluster, cluster_version)?;
                if let Some(policy_id) = &spec.policy_id {
                    let mut policy = self.existing::<Policy>(&p.org_id, policy_id, "policyId").await?;
                    let version = policy.version;
                    policy.upsert_referrer(referrer(&def));
                    tx.update(&mut policy, version)?;
                }
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(BackupDefinitionView {
                    definition: def,
                    effective_destination: Some(effective),
                })
            })
            .await?;
        self.sync_schedules(&view.definition).await?;
        Ok(view)
    }

    async fn view(&self, org: &Org, def: BackupDefinition) -> Result<BackupDefinitionView> {
        let effective_destination = self.effective_for(org, &def).await?;
        Ok(BackupDefinitionView {
            definition: def,
            effective_destination,
        })
    }

    pub async fn get_backup_definition(&self, p: &Principal, id: &BackupDefinitionId) -> Result<BackupDefinitionView> {
        p.require(Role::Viewer)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let def = self.store.get(&p.org_id, id).await?;
        self.view(&org, def).await
    }

    pub async fn list_backup_definitions(
        &self,
        p: &Principal,
        page: &PageRequest,
    ) -> Result<Listing<BackupDefinitionView>> {
        p.require(Role::Viewer)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let clusters: std::collections::BTreeMap<ClusterId, Option<DestinationId>> = self
            .store
            .list_all::<Cluster>(&p.org_id)
            .await?
            .into_iter()
            .map(|c| (c.id, c.spec.default_destination_id))
            .collect();
        let listing = self.store.list::<BackupDefinition>(&p.org_id, page).await?;
        Ok(listing.map(|definition| {
            let cluster_default = clusters.get(&definition.spec.cluster_id).copied().flatten();
            let effective_destination = effective_destination(
                definition.spec.destination_id,
                cluster_default,
                org.default_destination_id,
            );
            BackupDefinitionView {
                definition,
                effective_destination,
            }
        }))
    }

    /// Replaces a definition's spec. The cluster is fixed; a policy change moves the
    /// definition between the two policies' `usedBy` in the same transaction.
    pub async fn update_backup_definition(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        spec: BackupDefinitionSpec,
        expected_version: u64,
    ) -> Result<BackupDefinitionView> {
        p.require(Role::Admin)?;
        let spec = &spec.validated()?;
        let view = self
            .retrying(|| async move {
                let mut def = self.store.get::<BackupDefinition>(&p.org_id, id).await?;
                if def.version != expected_version {
                    return Err(self
                        .store
                        .version_failure::<BackupDefinition>(&p.org_id, id, expected_version)
                        .await);
                }
                if def.spec.cluster_id != spec.cluster_id {
                    return Err(Error::invalid(
                        "clusterId",
                        "a backup definition's cluster cannot change; create a new definition",
                    ));
                }
                let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
                let cluster = self.store.get::<Cluster>(&p.org_id, &spec.cluster_id).await?;
                let effective = self.check_destination(&org, spec, &cluster).await?;
                let old_policy = def.spec.policy_id;
                def.spec = spec.clone();
                def.updated_at = self.now();
                let mut tx = Tx::new();
                tx.update(&mut def, expected_version)?;
                // The old policy lets go, the new one takes it (the same one: just renamed).
                if old_policy != spec.policy_id
                    && let Some(pid) = old_policy
                    && let Some(mut policy) = self.store.find::<Policy>(&p.org_id, &pid).await?
                {
                    let v = policy.version;
                    policy.remove_referrer(ReferrerKind::K8sBackup, &id.to_string());
                    tx.update(&mut policy, v)?;
                }
                if let Some(pid) = spec.policy_id {
                    let mut policy = self.existing::<Policy>(&p.org_id, &pid, "policyId").await?;
                    let before = policy.used_by.clone();
                    policy.upsert_referrer(referrer(&def));
                    if policy.used_by != before || old_policy != spec.policy_id {
                        let v = policy.version;
                        tx.update(&mut policy, v)?;
                    } else {
                        // Unchanged, but it must still exist when the definition is written.
                        tx.check::<Policy>(&p.org_id, &pid, policy.version);
                    }
                }
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(BackupDefinitionView {
                    definition: def,
                    effective_destination: Some(effective),
                })
            })
            .await?;
        self.sync_schedules(&view.definition).await?;
        Ok(view)
    }

    /// Deletes a definition, releasing its policy and cluster in the same transaction.
    pub async fn delete_backup_definition(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        expected_version: u64,
    ) -> Result<()> {
        p.require(Role::Admin)?;
        self.retrying(|| async move {
            let def = self.store.get::<BackupDefinition>(&p.org_id, id).await?;
            if def.version != expected_version {
                return Err(self
                    .store
                    .version_failure::<BackupDefinition>(&p.org_id, id, expected_version)
                    .await);
            }
            let mut tx = Tx::new();
            tx.delete::<BackupDefinition>(&p.org_id, id, expected_version);
            if let Some(mut cluster) = self.store.find::<Cluster>(&p.org_id, &def.spec.cluster_id).await? {
                let v = cluster.version;
                cluster.backup_definition_ids.remove(id);
                tx.update(&mut cluster, v)?;
            }
            if let Some(pid) = def.spec.policy_id
                && let Some(mut policy) = self.store.find::<Policy>(&p.org_id, &pid).await?
            {
                let v = policy.version;
                policy.remove_referrer(ReferrerKind::K8sBackup, &id.to_string());
                tx.update(&mut policy, v)?;
            }
            self.store.commit(tx).await.map_err(retry_on_conflict)
        })
        .await?;
        self.sync_schedules_to_nothing(id).await
    }

    /// Pauses (stops scheduled runs of) a definition. `expected_version` `None` means
    /// "whatever the current version is" (an action, not an edit).
    pub async fn pause_backup_definition(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        expected_version: Option<u64>,
    ) -> Result<BackupDefinitionView> {
        self.set_paused(p, id, expected_version, true).await
    }

    pub async fn resume_backup_definition(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        expected_version: Option<u64>,
    ) -> Result<BackupDefinitionView> {
        self.set_paused(p, id, expected_version, false).await
    }

    async fn set_paused(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        expected_version: Option<u64>,
        paused: bool,
    ) -> Result<BackupDefinitionView> {
        p.require(Role::Operator)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let def = self
            .retrying(|| async {
                let mut def = self.store.get::<BackupDefinition>(&p.org_id, id).await?;
                let expected = expected_version.unwrap_or(def.version);
                def.spec.paused = paused;
                def.updated_at = self.now();
                let result = self.store.update(def, expected).await;
                if expected_version.is_none() {
                    result.map_err(retry_on_stale)
                } else {
                    result
                }
            })
            .await?;
        self.sync_schedules(&def).await?;
        self.view(&org, def).await
    }

    /// Runs a definition now: a PENDING K8S_BACKUP job. Paused definitions may still be
    /// run by hand (pause stops the schedule). The destination and plan rules are checked
    /// again, since defaults may have changed since the definition was saved.
    pub async fn run_backup_now(&self, p: &Principal, id: &BackupDefinitionId, request: RunNowRequest) -> Result<Job> {
        p.require(Role::Operator)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let def = self.store.get::<BackupDefinition>(&p.org_id, id).await?;
        let cluster = self.store.get::<Cluster>(&p.org_id, &def.spec.cluster_id).await?;
        self.check_destination(&org, &def.spec, &cluster).await?;
        let retention = match request.retention {
            Some(r) => r,
            None => match &def.spec.policy_id {
                Some(pid) => match self
                    .store
                    .find::<Policy>(&p.org_id, pid)
                    .await?
                    .and_then(|p| p.spec.schedules.first().cloned())
                {
                    Some(row) => Retention {
                        retain_days: row.retain_days,
                        keep_last: row.keep_last,
                    },
                    None => Retention {
                        retain_days: self.config.default_run_now_retain_days,
                        keep_last: None,
                    },
                },
                None => Retention {
                    retain_days: self.config.default_run_now_retain_days,
                    keep_last: None,
                },
            },
        };
        if retention.retain_days == 0 || retention.retain_days > policy::MAX_RETAIN_DAYS {
            return Err(Error::invalid(
                "retention.retainDays",
                format!("must be between 1 and {}", policy::MAX_RETAIN_DAYS),
            ));
        }
        self.limits
            .check_retain_days(org.plan, "retention.retainDays", retention.retain_days)?;
        // The same path as a schedule firing: the decision, the race-safe active-job
        // write and the enqueue all happen there.
        self.dispatch(DispatchRequest {
            org_id: p.org_id,
            definition_id: def.id,
            trigger: JobTrigger::Manual,
            rule: None,
            retention: Some(retention),
        })
        .await
    }

    // ---- jobs -------------------------------------------------------------------

    pub async fn get_job(&self, p: &Principal, id: &JobId) -> Result<Job> {
        p.require(Role::Viewer)?;
        self.store.get(&p.org_id, id).await
    }

    /// Jobs, newest first, optionally filtered.
    pub async fn list_jobs(&self, p: &Principal, filter: &JobFilter, page: &PageRequest) -> Result<Listing<Job>> {
        p.require(Role::Viewer)?;
        self.store
            .list_where(&p.org_id, page, false, |j: &Job| {
                filter.cluster_id.is_none_or(|c| j.cluster_id == Some(c))
                    && filter.definition_id.is_none_or(|d| j.definition_id == Some(d))
                    && filter.state.is_none_or(|s| j.state == s)
                    && filter.job_type.is_none_or(|t| j.job_type == t)
            })
            .await
    }

    /// Cancels a job: PENDING becomes CANCELED, RUNNING becomes CANCELLING; a finished
    /// job refuses (`Conflict`).
    pub async fn cancel_job(&self, p: &Principal, id: &JobId, expected_version: Option<u64>) -> Result<Job> {
        p.require(Role::Operator)?;
        self.retrying(|| async move {
            let mut job = self.store.get::<Job>(&p.org_id, id).await?;
            let expected = expected_version.unwrap_or(job.version);
            if job.version != expected {
                let e = self.store.version_failure::<Job>(&p.org_id, id, expected).await;
                return Err(if expected_version.is_none() {
                    retry_on_stale(e)
                } else {
                    e
                });
            }
            job.cancel(self.now())?;
            let mut tx = Tx::new();
            tx.update(&mut job, expected)?;
            // A job canceled outright no longer holds its definition.
            self.release_active(&mut tx, &job).await?;
            self.store.commit(tx).await.map_err(retry_on_conflict)?;
            Ok(job)
        })
        .await
    }

    // ---- recovery points and restores --------------------------------------------

    async fn live_cluster_ids(&self, org: &OrgId) -> Result<BTreeSet<ClusterId>> {
        Ok(self
            .store
            .list_all::<Cluster>(org)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    /// Recovery points of clusters that still exist (those of deleted clusters are
    /// kept until expiry but hidden).
    pub async fn list_recovery_points(
        &self,
        p: &Principal,
        filter: &RecoveryPointFilter,
        page: &PageRequest,
    ) -> Result<Listing<RecoveryPoint>> {
        p.require(Role::Viewer)?;
        let live = self.live_cluster_ids(&p.org_id).await?;
        self.store
            .list_where(&p.org_id, page, true, |rp: &RecoveryPoint| {
                live.contains(&rp.cluster_id)
                    && filter.cluster_id.is_none_or(|c| rp.cluster_id == c)
                    && filter.definition_id.is_none_or(|d| rp.definition_id == d)
            })
            .await
    }

    pub async fn get_recovery_point(&self, p: &Principal, id: &RecoveryPointId) -> Result<RecoveryPoint> {
        p.require(Role::Viewer)?;
        let rp = self.store.get::<RecoveryPoint>(&p.org_id, id).await?;
        if self.store.find::<Cluster>(&p.org_id, &rp.cluster_id).await?.is_none() {
            return Err(Error::not_found(format!("recovery point {id}")));
        }
        Ok(rp)
    }

    /// Creates a restore request and its PENDING K8S_RESTORE job together. The recovery
    /// point must be READY and visible; the target cluster must be ACTIVE.
    pub async fn create_restore(&self, p: &Principal, spec: RestoreSpec) -> Result<RestoreCreated> {
        p.require(Role::Operator)?;
        let spec = spec.validated()?;
        let rp = match self.get_recovery_point(p, &spec.recovery_point_id).await {
            Err(Error::NotFound { what }) => return Err(Error::invalid("recoveryPointId", what)),
            other => other?,
        };
        if rp.state != RecoveryPointState::Ready {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::RestoreNotPossible,
                format!("recovery point {} is {:?}, not READY", rp.id, rp.state),
            ));
        }
        let target = self
            .existing::<Cluster>(&p.org_id, &spec.target_cluster_id, "targetClusterId")
            .await?;
        let agent = self.store.find::<AgentState>(&p.org_id, &target.id).await?;
        let target = self.presented(target, agent.as_ref());
        let state = target.state;
        if state != ClusterState::Active {
            return Err(Error::conflict_of(
                crate::error::ConflictKind::RestoreNotPossible,
                format!(
                    "target cluster {:?} is {}; restores need an ACTIVE cluster (its agent connected)",
                    target.spec.name,
                    serde_json::to_value(state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
            ));
        }
        self.queue_restore(p, spec).await
    }

    /// Writes a restore and its job and queues the job for the target's agent, without
    /// asking whether that agent is connected: the job waits in the cluster's queue (an
    /// EKS re-creation queues its restore before the user installs the agent).
    pub(crate) async fn queue_restore(&self, p: &Principal, spec: RestoreSpec) -> Result<RestoreCreated> {
        let rp = self.get_recovery_point(p, &spec.recovery_point_id).await?;
        let target = self.store.get::<Cluster>(&p.org_id, &spec.target_cluster_id).await?;
        let now = self.now();
        let mut job = Job::pending(p.org_id, JobType::K8sRestore, JobTrigger::Manual, now);
        let mut restore = Restore {
            id: RestoreId::new(),
            org_id: p.org_id,
            spec,
            source_cluster_id: rp.cluster_id,
            job_id: job.id,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        job.cluster_id = Some(target.id);
        job.recovery_point_id = Some(rp.id);
        job.restore_id = Some(restore.id);
        job.log(now, "restore requested");
        let mut tx = Tx::new();
        tx.create(&mut restore)?.create(&mut job)?;
        self.store.commit(tx).await?;
        self.enqueue(&job).await?;
        Ok(RestoreCreated { restore, job })
    }

    pub async fn get_restore(&self, p: &Principal, id: &RestoreId) -> Result<Restore> {
        p.require(Role::Viewer)?;
        self.store.get(&p.org_id, id).await
    }

    /// A restore's per-object results in the order the agent reported them, optionally
    /// only those of one outcome. `cursor` is the `nextCursor` of the previous page.
    pub async fn list_restore_objects(
        &self,
        p: &Principal,
        id: &RestoreId,
        outcome: Option<crate::restore::ObjectOutcome>,
        page: &PageRequest,
    ) -> Result<Listing<crate::restore::RestoreObjectResult>> {
        use crate::restore::ObjectCursor;
        // Batches read per store query, and queries per call (bounds the reads a filter
        // that matches little may cost; the cursor then says where to go on).
        const BATCHES: u32 = 10;
        const ROUNDS: usize = 5;
        p.require(Role::Viewer)?;
        // NotFound for another org's restore: its results are under its org only anyway.
        self.store.get::<Restore>(&p.org_id, id).await?;
        let limit = page.size()? as usize;
        let mut at = match &page.cursor {
            Some(text) => ObjectCursor::parse(text)?,
            None => ObjectCursor::default(),
        };
        let mut items = Vec::new();
        for _ in 0..ROUNDS {
            let pages = self.store.restore_object_pages(&p.org_id, id, at.seq, BATCHES).await?;
            let full = pages.len() as u32 == BATCHES;
            for batch in pages {
                if batch.id.seq != at.seq {
                    at = ObjectCursor {
                        seq: batch.id.seq,
                        index: 0,
                    };
                }
                while let Some(object) = batch.objects.get(at.index) {
                    at.index += 1;
                    if outcome.is_none_or(|o| o == object.outcome) {
                        items.push(object.clone());
                        if items.len() == limit {
                            let next = if at.index < batch.objects.len() {
                                at
                            } else {
                                ObjectCursor {
                                    seq: batch.id.seq.saturating_add(1),
                                    index: 0,
                                }
                            };
                            return Ok(Listing {
                                items,
                                next_cursor: (next.seq < crate::restore::MAX_RESULT_BATCHES).then(|| next.encode()),
                            });
                        }
                    }
                }
                at = ObjectCursor {
                    seq: batch.id.seq.saturating_add(1),
                    index: 0,
                };
            }
            if !full || at.seq >= crate::restore::MAX_RESULT_BATCHES {
                return Ok(Listing {
                    items,
                    next_cursor: None,
                });
            }
        }
        Ok(Listing {
            items,
            next_cursor: Some(at.encode()),
        })
    }

    pub async fn list_restores(&self, p: &Principal, page: &PageRequest) -> Result<Listing<Restore>> {
        p.require(Role::Viewer)?;
        self.store.list(&p.org_id, page).await
    }

    // ---- concurrency --------------------------------------------------------------

    /// Runs a read-check-write again when it lost a race (`Conflict` carrying
    /// [`RETRY`]); after the last attempt the caller gets a plain `Conflict`.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        for _ in 1..CONCURRENCY_RETRIES {
            match attempt().await {
                Err(Error::Conflict { message, .. }) if message == RETRY => continue,
                other => return other,
            }
        }
        match attempt().await {
            Err(Error::Conflict { message, .. }) if message == RETRY => Err(Error::conflict_of(
                crate::error::ConflictKind::ConcurrentModification,
                "too many concurrent changes to the same records: try again",
            )),
            other => other,
        }
    }
}

/// The marker of a lost race inside [`ControlPlane::retrying`]; never leaves it.
const RETRY: &str = "\u{0}retry";

/// A transaction of a read-check-write failed a condition: someone changed one of the
/// records since they were read. The attempt re-reads and re-checks everything, so a
/// stale caller ETag still surfaces as `PreconditionFailed` on the next attempt.
pub(crate) fn retry_on_conflict(e: Error) -> Error {
    match e {
        Error::Conflict { .. } => Error::conflict(RETRY),
        other => other,
    }
}

/// A write at a version the code itself just read (no caller ETag) found a newer one:
/// a lost race, so read again.
pub(crate) fn retry_on_stale(e: Error) -> Error {
    match e {
        Error::PreconditionFailed { .. } => Error::conflict(RETRY),
        other => other,
    }
}
