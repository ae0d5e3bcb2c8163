//! The control plane's service layer: every business rule the API applies, over the
//! typed store. Handlers parse, call one method here, and map the result; they decide
//! nothing.
//!
//! Every method takes the authenticated [`Principal`] (its org is the tenant scope, its
//! role is checked here) except sign-up, authentication, the agent's heartbeat and
//! `set_plan`, which are not made by a signed-in user.

mod agent;
mod alerts;
mod audit;
mod backups;
mod cloud_accounts;
mod clusters;
mod credentials;
mod destinations;
mod dispatch;
mod ebs_restore;
mod eks;
mod jobs;
mod maintenance;
mod orgs;
mod policies;
mod purge;
mod rds;
mod recovery;
mod retention;
mod schedules;
mod security;
mod verification;

pub use alerts::{AlertSweepReport, DeliveryFilter, EMAIL_NEEDS_SES};
pub use backups::RunNowRequest;
pub use cloud_accounts::{InventoryReport, RegionReport};
pub use clusters::RegisteredCluster;
pub use destinations::DestinationDeletion;
pub use eks::{EKS_CREATE_TIMEOUT, EKS_RECHECK_DELAY};
pub use jobs::JobFilter;
pub use maintenance::{DestinationMaintenance, MaintenanceSweepReport};
pub use orgs::{SignupRequest, SignupResult};
pub use purge::{PurgeDone, PurgeGrant};
pub use rds::{RdsRetentionReport, RdsRunRequest};
pub use recovery::{RecoveryPointFilter, RestoreCreated};
pub use retention::RetentionReport;
pub use schedules::ScheduleReconcileReport;
pub use security::{FindingFilter, FindingsPage, SCANNING_OFF};
pub use verification::VerificationSweepReport;

use crate::model::plan::PlanLimits;
use crate::ports::Clock;
use crate::ports::credentials::{ConfigVendor, CredentialVendor};
use crate::ports::queue::Queue;
use crate::ports::scheduler::Scheduler;
use crate::store::Store;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// How often a read-check-write is retried when a concurrent writer got there first.
const CONCURRENCY_RETRIES: usize = 4;

/// Deployment configuration of the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    /// Whether anyone may sign up (creating an org). Closed by default: a private
    /// deployment creates orgs with [`ControlPlane::create_org`] from its tooling.
    pub signup_open: bool,
    /// The plan new orgs start on: free on a shared deployment (an operator moves an org
    /// with [`ControlPlane::set_plan`]); single-machine mode, with nobody to bill, starts
    /// them on paid.
    pub signup_plan: crate::model::plan::Plan,
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
    /// Derives each cluster's archive keys, handed to its agent with one job's
    /// destination access. Without it agents must be given a key of their own.
    pub archive_keyring: Option<crate::model::archive_key::ArchiveKeyring>,
    /// The SHA-256 of the deployment operator's token (`ARCA_OPERATOR_TOKEN_SHA256`):
    /// who may set an org's plan. Not an org's API key: no org admin can use it.
    pub operator_token_hash: Option<crate::model::secret::SecretHash>,
    /// Repository gc's grace period (`ARCA_GC_GRACE_SECONDS`, default 24 h): between
    /// condemning unreferenced data and deleting it. Keep it hours long in production.
    pub gc_grace: Duration,
    /// The Object Lock mode of Arca-managed storage (`ARCA_MANAGED_OBJECT_LOCK`, set by
    /// the stack's `ManagedStorageObjectLock`): every managed destination is immutable.
    pub managed_object_lock: Option<crate::model::destination::LockMode>,
    /// Where users reach this deployment (`ARCA_PUBLIC_URL`): alert emails link to the
    /// console there. `None`: they carry no link.
    pub console_url: Option<String>,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        ControlPlaneConfig {
            signup_open: false,
            signup_plan: crate::model::plan::Plan::Free,
            local_destinations: false,
            heartbeat_timeout: Duration::from_secs(2 * 60),
            heartbeat_interval: Duration::from_secs(30),
            poll_wait: Duration::from_secs(20),
            lease: Duration::from_secs(5 * 60),
            default_run_now_retain_days: 7,
            archive_keyring: None,
            operator_token_hash: None,
            gc_grace: crate::model::maintenance::DEFAULT_GRACE,
            managed_object_lock: None,
            console_url: None,
        }
    }
}

/// The control plane: the store, the plan limits, the clock, the configuration and the
/// ports that move work (the cluster queues, the scheduler, the credential vendor).
#[derive(Clone)]
pub struct ControlPlane {
    store: Store,
    limits: PlanLimits,
    clock: Arc<dyn Clock>,
    config: ControlPlaneConfig,
    /// `None` only in store-level tests: registering then creates no queue, and
    /// dispatching fails (`Permanent`) rather than creating jobs nobody can receive.
    queue: Option<Arc<dyn Queue>>,
    /// `None` only in store-level tests: definition changes then sync no schedules.
    scheduler: Option<Arc<dyn Scheduler>>,
    vendor: Arc<dyn CredentialVendor>,
    /// `None` when the deployment does not reach AWS accounts (linking is refused).
    cloud: Option<cloud_accounts::CloudWiring>,
    /// `None` when the deployment does not protect RDS (RDS runs are refused).
    rds: Option<rds::RdsWiring>,
    /// Opens Arca-managed storage for the control plane's own purges; `None`: a deleted
    /// cluster's data there waits for an agent or an admin's purge, as in a user bucket.
    managed_opener: Option<Arc<dyn crate::ports::DestinationOpener>>,
    /// Sends alert webhooks; `None` only in store-level tests (attempts then fail).
    webhooks: Option<Arc<dyn crate::ports::notify::WebhookSender>>,
    /// Sends alert emails (SES on AWS); `None`: email channels are refused.
    email: Option<Arc<dyn crate::ports::notify::EmailSender>>,
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
            managed_opener: None,
            webhooks: None,
            email: None,
        }
    }

    /// Wires the senders of alert deliveries (`ports::notify`).
    pub fn with_alert_senders(
        mut self,
        webhooks: Arc<dyn crate::ports::notify::WebhookSender>,
        email: Option<Arc<dyn crate::ports::notify::EmailSender>>,
    ) -> Self {
        self.webhooks = Some(webhooks);
        self.email = email;
        self
    }

    /// Wires the email sender alone (SES, where a sender address is configured), next to
    /// the webhook sender [`Self::with_alert_senders`] wired.
    pub fn with_email_sender(mut self, email: Arc<dyn crate::ports::notify::EmailSender>) -> Self {
        self.email = Some(email);
        self
    }

    /// Wires the per-cluster job queues (every deployment does).
    pub fn with_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Sets the master keys each cluster's archive keys are derived from (see
    /// [`crate::model::archive_key`]); `None` leaves agents to bring their own.
    pub fn with_archive_keyring(mut self, keys: Option<crate::model::archive_key::ArchiveKeyring>) -> Self {
        self.config.archive_keyring = keys;
        self
    }

    /// Sets the plan new orgs start on ([`ControlPlaneConfig::signup_plan`]).
    pub fn with_signup_plan(mut self, plan: crate::model::plan::Plan) -> Self {
        self.config.signup_plan = plan;
        self
    }

    /// The deployment operator's token, by its SHA-256 ([`ControlPlane::operator_set_plan`]).
    pub fn with_operator_token_hash(mut self, hash: Option<crate::model::secret::SecretHash>) -> Self {
        self.config.operator_token_hash = hash;
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

    /// Lets the retention sweep delete a deleted cluster's prefix in Arca-managed storage
    /// itself when no agent of the org is left (with credentials from the vendor).
    pub fn with_managed_purge(mut self, opener: Arc<dyn crate::ports::DestinationOpener>) -> Self {
        self.managed_opener = Some(opener);
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

    // ---- concurrency --------------------------------------------------------------

    /// Runs a read-check-write again when it lost a race (`Conflict` carrying
    /// [`RETRY`]); after the last attempt the caller gets a plain `Conflict`.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
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
    /// Reads a record, changes it and writes it back: at the caller's `expected_version`
    /// (its ETag) when given, else at the version just read, again when a race was lost.
    pub(in crate::control_plane) async fn update_record<T: crate::store::Record>(
        &self,
        org: &crate::ids::OrgId,
        id: &T::Id,
        expected_version: Option<u64>,
        change: impl Fn(&mut T),
    ) -> Result<T> {
        self.retrying(|| async {
            let mut record = self.store.get::<T>(org, id).await?;
            let expected = expected_version.unwrap_or(record.version());
            change(&mut record);
            let result = self.store.update(record, expected).await;
            if expected_version.is_none() {
                result.map_err(retry_on_stale)
            } else {
                result
            }
        })
        .await
    }
}

/// The marker of a lost race inside [`ControlPlane::retrying`]; never leaves it.
const RETRY: &str = "\u{0}retry";

/// A transaction of a read-check-write failed a condition: someone changed one of the
/// records since they were read. The attempt re-reads and re-checks everything, so a
/// stale caller ETag still surfaces as `PreconditionFailed` on the next attempt.
fn retry_on_conflict(e: Error) -> Error {
    match e {
        Error::Conflict { .. } => Error::conflict(RETRY),
        other => other,
    }
}

/// A write at a version the code itself just read (no caller ETag) found a newer one:
/// a lost race, so read again.
fn retry_on_stale(e: Error) -> Error {
    match e {
        Error::PreconditionFailed { .. } => Error::conflict(RETRY),
        other => other,
    }
}
