//! Configuration (from the environment) and the application state built from it.
//!
//! The store backend follows the environment, not the build: `ARCA_TABLE` selects
//! DynamoDB (what the deployed function gets from `template.yaml`); without it the API
//! runs on an embedded redb file under `ARCA_DATA_DIR`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
pub use arca_aws::wiring::ManagedStorage;
use arca_core::control_plane::{ControlPlane, ControlPlaneConfig};
use arca_core::model::archive_key::{ArchiveKeyring, ArchiveMasterKey, MasterKeyForm};
use arca_core::model::plan::{Plan, PlanLimits};
use arca_core::ports::SystemClock;
use arca_core::ports::item_store::ItemStore;
use arca_core::ports::queue::Queue;
use arca_core::ports::scheduler::Scheduler;
use arca_core::store::Store;

/// Where the state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A redb file in this directory (single-machine mode).
    Embedded { data_dir: PathBuf },
    /// This DynamoDB table, reached with the standard AWS configuration.
    Dynamo { table: String },
}

/// Everything the API reads from its environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub backend: Backend,
    pub signup_open: bool,
    /// `ARCA_SIGNUP_PLAN` (`free` or `paid`): the plan new orgs start on; free on
    /// DynamoDB (a shared deployment), paid in single-machine mode (nobody to bill).
    pub signup_plan: Plan,
    pub limits: PlanLimits,
    /// Where the SQS queues and the EventBridge schedules are (AWS backend only).
    pub aws: AwsPorts,
    pub agent: AgentSettings,
    /// Where the master keys each cluster's archive keys derive from come from
    /// ([`MasterKeySource`]). Without one, single-machine mode keeps a key in a key file
    /// in its data directory.
    pub archive_master_key: Option<MasterKeySource>,
    /// Where the role stack is published and who it trusts (`arca_aws::wiring::role_stack`).
    pub role_stack: arca_core::model::cloud::account::RoleStackConfig,
    /// `ARCA_OPERATOR_TOKEN_SHA256`: the SHA-256 (64 lower-case hex digits) of the
    /// deployment operator's token, who sets orgs' plans. Without it nobody can.
    pub operator_token_hash: Option<arca_core::model::secret::SecretHash>,
    /// `ARCA_GC_GRACE_SECONDS` (`arca_aws::wiring::gc_grace`): used where this process
    /// issues maintenance jobs (`arca server`'s retention loop).
    pub gc_grace: std::time::Duration,
}

/// Where the archive master keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterKeySource {
    /// `ARCA_ARCHIVE_MASTER_KEY`: 64 hex digits, or several separated by commas (current
    /// first, during a rotation). For single-machine mode and tests.
    Environment(ArchiveKeyring),
    /// `ARCA_ARCHIVE_MASTER_KEY_SECRET`: a Secrets Manager secret (name or ARN), read at
    /// start: what a deployment uses, so the key is in no environment variable.
    Secret(String),
}

/// The AWS side of the queue and scheduler ports, from `ARCA_QUEUE_PREFIX`,
/// `ARCA_MAX_RECEIVES`, `ARCA_SCHEDULE_GROUP`, `ARCA_DISPATCH_ARN`, `ARCA_SCHEDULER_ROLE_ARN`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsPorts {
    pub queue_prefix: String,
    pub max_receives: u32,
    pub schedule_group: Option<String>,
    pub dispatch_arn: Option<String>,
    pub scheduler_role_arn: Option<String>,
    /// Arca-managed storage (`arca_aws::wiring::managed_storage`): without it,
    /// ARCA_MANAGED destinations get no credentials.
    pub managed_storage: Option<ManagedStorage>,
}

/// What the agent manifest is made of: `ARCA_PUBLIC_URL` (the URL agents call; without
/// it, the URL the request came in on) and `ARCA_AGENT_IMAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSettings {
    pub public_url: Option<String>,
    pub image: String,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            public_url: None,
            image: DEFAULT_AGENT_IMAGE.to_owned(),
        }
    }
}

/// The agent image a manifest names unless `ARCA_AGENT_IMAGE` says otherwise: the name
/// `scripts/agent-image.sh build` gives the image in its OCI archive (`arca.local` is no
/// registry: the image is loaded into the nodes' runtime, e.g. `ctr images import`). A
/// deployed stack sets `ARCA_AGENT_IMAGE` to its ECR repository, by digest.
pub const DEFAULT_AGENT_IMAGE: &str = concat!("arca.local/arca-agent:", env!("CARGO_PKG_VERSION"));

/// The name of the redb file inside `ARCA_DATA_DIR`.
pub const DB_FILE: &str = "arca.redb";

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads the configuration through `var`, so tests need not touch the process
    /// environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let backend = match var("ARCA_TABLE") {
            Some(table) => Backend::Dynamo { table },
            // On Lambda a local file would silently vanish with the sandbox.
            None if var("AWS_LAMBDA_RUNTIME_API").is_some() => {
                bail!("ARCA_TABLE must be set on Lambda (the DynamoDB table of the control plane)")
            }
            None => Backend::Embedded {
                data_dir: var("ARCA_DATA_DIR").map_or_else(|| "./arca-data".into(), PathBuf::from),
            },
        };
        // A deployed API is reachable by anyone, so sign-up is opt-in there; the local
        // server listens on loopback for its one user, who needs an org to start.
        let signup_open = match var("ARCA_SIGNUP").as_deref() {
            Some("open") => true,
            Some("closed") => false,
            Some(other) => bail!("ARCA_SIGNUP must be `open` or `closed`, not {other:?}"),
            None => matches!(backend, Backend::Embedded { .. }),
        };
        let signup_plan = match var("ARCA_SIGNUP_PLAN").as_deref() {
            Some("free") => Plan::Free,
            Some("paid") => Plan::Paid,
            Some(other) => bail!("ARCA_SIGNUP_PLAN must be `free` or `paid`, not {other:?}"),
            None if matches!(backend, Backend::Embedded { .. }) => Plan::Paid,
            None => Plan::Free,
        };
        // One reading of the variables the event functions share (arca_aws::wiring).
        let limits = arca_aws::wiring::plan_limits(&var)?;
        let queue = arca_aws::wiring::queue_config(&var)?;
        let managed_storage = arca_aws::wiring::managed_storage(&var)?;
        let archive_master_key = match (
            var("ARCA_ARCHIVE_MASTER_KEY").filter(|k| !k.is_empty()),
            var("ARCA_ARCHIVE_MASTER_KEY_SECRET").filter(|k| !k.is_empty()),
        ) {
            (Some(_), Some(_)) => {
                bail!("set ARCA_ARCHIVE_MASTER_KEY or ARCA_ARCHIVE_MASTER_KEY_SECRET, not both")
            }
            (Some(hex), None) => Some(MasterKeySource::Environment(ArchiveKeyring::parse(
                "ARCA_ARCHIVE_MASTER_KEY",
                &hex,
                MasterKeyForm::Hex,
            )?)),
            (None, Some(secret)) => Some(MasterKeySource::Secret(secret)),
            (None, None) => None,
        };
        let operator_token_hash = var("ARCA_OPERATOR_TOKEN_SHA256")
            .filter(|h| !h.is_empty())
            .map(|hex| {
                arca_core::model::secret::SecretHash::from_hex(&hex).map_err(|_| {
                    anyhow::anyhow!(
                        "ARCA_OPERATOR_TOKEN_SHA256 must be the SHA-256 of the operator token: 64 lower-case hex digits"
                    )
                })
            })
            .transpose()?;
        Ok(Config {
            gc_grace: arca_aws::wiring::gc_grace(&var)?,
            operator_token_hash,
            role_stack: arca_aws::wiring::role_stack(&var)?,
            archive_master_key,
            backend,
            signup_open,
            signup_plan,
            limits,
            aws: AwsPorts {
                queue_prefix: queue.name_prefix,
                max_receives: queue.max_receives,
                schedule_group: var("ARCA_SCHEDULE_GROUP"),
                dispatch_arn: var("ARCA_DISPATCH_ARN"),
                scheduler_role_arn: var("ARCA_SCHEDULER_ROLE_ARN"),
                managed_storage,
            },
            agent: AgentSettings {
                public_url: var("ARCA_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
                image: var("ARCA_AGENT_IMAGE").unwrap_or_else(|| DEFAULT_AGENT_IMAGE.to_owned()),
            },
        })
    }
}

/// The key file single-machine mode keeps its archive master key in.
pub const ARCHIVE_MASTER_KEY_FILE: &str = "archive-master.key";

impl Config {
    /// The master keys, wherever they are configured; `None` when nowhere (agents then
    /// hold their own).
    pub async fn archive_keyring(&self) -> anyhow::Result<Option<ArchiveKeyring>> {
        Ok(match &self.archive_master_key {
            Some(MasterKeySource::Environment(ring)) => Some(ring.clone()),
            Some(MasterKeySource::Secret(id)) => Some(
                arca_aws::secrets::archive_keyring(&arca_aws::config::load().await, id)
                    .await
                    .context("reading the archive master keys (ARCA_ARCHIVE_MASTER_KEY_SECRET)")?,
            ),
            None => None,
        })
    }

    /// The configured master keys if any, else the key in `data_dir`'s key file, created
    /// (mode 0600) on first use. Losing that file loses access to the archives sealed
    /// under it, so it lives next to the state and is backed up with it. The file may
    /// hold several keys, current first, like `ARCA_ARCHIVE_MASTER_KEY`.
    pub async fn local_archive_keyring(&self, data_dir: &Path) -> anyhow::Result<ArchiveKeyring> {
        if let Some(ring) = self.archive_keyring().await? {
            return Ok(ring);
        }
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let path = data_dir.join(ARCHIVE_MASTER_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(hex) => Ok(ArchiveKeyring::parse(
                &path.display().to_string(),
                &hex,
                MasterKeyForm::Hex,
            )?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ArchiveMasterKey::generate()?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                std::io::Write::write_all(&mut file, key.to_hex().as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(ArchiveKeyring::new(key, vec![]))
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
        }
    }
}

/// What every handler gets: the control plane (service layer over the typed store,
/// the cluster queues and the scheduler) and how agent manifests are made.
#[derive(Clone)]
pub struct AppState {
    pub control_plane: ControlPlane,
    pub agent: AgentSettings,
}

impl AppState {
    /// State over any item store with in-process queues and scheduler: what tests build
    /// on a temp-dir redb store. Messages are dead-lettered after the deployment default
    /// of deliveries ([`arca_aws::wiring::DEFAULT_MAX_RECEIVES`]).
    pub fn new(items: Arc<dyn ItemStore>, signup_open: bool, limits: PlanLimits, local_destinations: bool) -> Self {
        Self::in_process(
            items,
            signup_open,
            limits,
            local_destinations,
            arca_aws::wiring::DEFAULT_MAX_RECEIVES,
        )
    }

    /// [`AppState::new`] with the deliveries after which a job message is dead-lettered
    /// (`ARCA_MAX_RECEIVES`, read by `arca_aws::wiring::queue_config` as everywhere else).
    fn in_process(
        items: Arc<dyn ItemStore>,
        signup_open: bool,
        limits: PlanLimits,
        local_destinations: bool,
        max_receives: u32,
    ) -> Self {
        let config = ControlPlaneConfig {
            signup_open,
            local_destinations,
            ..ControlPlaneConfig::default()
        };
        let clock: Arc<dyn arca_core::ports::Clock> = Arc::new(SystemClock);
        Self::with_ports(
            items,
            Arc::new(arca_embedded::EmbeddedQueue::new(max_receives)),
            Arc::new(arca_embedded::EmbeddedScheduler::new(clock)),
            limits,
            config,
        )
    }

    /// State over explicit ports (the end-to-end tests drive the scheduler themselves).
    pub fn with_ports(
        items: Arc<dyn ItemStore>,
        queue: Arc<dyn Queue>,
        scheduler: Arc<dyn Scheduler>,
        limits: PlanLimits,
        config: ControlPlaneConfig,
    ) -> Self {
        AppState {
            control_plane: ControlPlane::new(Store::new(items), limits, Arc::new(SystemClock), config)
                .with_queue(queue)
                .with_scheduler(scheduler),
            agent: AgentSettings::default(),
        }
    }

    /// State on a redb file in `data_dir` (created if missing). Local-filesystem
    /// destinations are allowed: this is single-machine mode. `max_receives` is
    /// `ARCA_MAX_RECEIVES` (`Config::aws`), the setting `arca server` and the Lambdas honour.
    pub fn embedded(data_dir: &Path, signup_open: bool, limits: PlanLimits, max_receives: u32) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let path = data_dir.join(DB_FILE);
        let store = arca_embedded::RedbItemStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Self::in_process(
            Arc::new(store),
            signup_open,
            limits,
            true,
            max_receives,
        ))
    }

    /// State on a DynamoDB table with SQS queues and EventBridge schedules, the SDK
    /// configured from the environment.
    pub async fn dynamo(table: &str, signup_open: bool, limits: PlanLimits, aws: &AwsPorts) -> anyhow::Result<Self> {
        let sdk = arca_aws::config::load().await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let need = |v: &Option<String>, name: &str| {
            v.clone()
                .with_context(|| format!("{name} must be set with ARCA_TABLE (the schedules' target)"))
        };
        let scheduler = arca_aws::EventBridgeScheduler::new(
            aws_sdk_scheduler::Client::new(&sdk),
            arca_aws::EventBridgeSchedulerConfig {
                group: need(&aws.schedule_group, "ARCA_SCHEDULE_GROUP")?,
                target_arn: need(&aws.dispatch_arn, "ARCA_DISPATCH_ARN")?,
                role_arn: need(&aws.scheduler_role_arn, "ARCA_SCHEDULER_ROLE_ARN")?,
            },
        );
        let queue = arca_aws::SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            arca_aws::SqsQueueConfig {
                name_prefix: aws.queue_prefix.clone(),
                max_receives: aws.max_receives,
            },
        )
        .context("ARCA_QUEUE_PREFIX / ARCA_MAX_RECEIVES")?;
        let config = ControlPlaneConfig {
            signup_open,
            local_destinations: false,
            ..ControlPlaneConfig::default()
        };
        Ok(Self::with_ports(
            Arc::new(arca_aws::DynamoItemStore::new(client, table)),
            Arc::new(queue),
            Arc::new(scheduler),
            limits,
            config,
        ))
    }

    pub async fn from_config(config: &Config) -> anyhow::Result<Self> {
        let (mut state, master_key) = match &config.backend {
            Backend::Embedded { data_dir } => (
                Self::embedded(
                    data_dir,
                    config.signup_open,
                    config.limits.clone(),
                    config.aws.max_receives,
                )?,
                Some(config.local_archive_keyring(data_dir).await?),
            ),
            Backend::Dynamo { table } => (
                Self::dynamo(table, config.signup_open, config.limits.clone(), &config.aws).await?,
                config.archive_keyring().await?,
            ),
        };
        state.control_plane = state
            .control_plane
            .with_archive_keyring(master_key)
            .with_signup_plan(config.signup_plan)
            .with_operator_token_hash(config.operator_token_hash.clone());
        // Arca-managed storage in both backends: single-machine mode can vend for a bucket
        // with whatever AWS identity the machine has (moto in the tests).
        if let Some(managed) = &config.aws.managed_storage {
            let vendor = managed.vendor(&arca_aws::config::load().await)?;
            state.control_plane = state.control_plane.with_credential_vendor(Arc::new(vendor));
        }
        // Linked AWS accounts work in both backends (single-machine mode can protect RDS
        // with whatever AWS credentials the machine has).
        let connector = Arc::new(arca_aws::AwsCloudConnector::from_environment());
        state.control_plane = state
            .control_plane
            .clone()
            .with_cloud(connector.clone(), config.role_stack.clone());
        // RDS runs and restores are handed to the RDS function through its work queue
        // (`ARCA_RDS_QUEUE_URL`); without one they wait for whoever steps them.
        let rds_queue = match std::env::var("ARCA_RDS_QUEUE_URL").ok().filter(|u| !u.is_empty()) {
            Some(url) => Some(Arc::new(arca_aws::SqsRdsWorkQueue::new(
                aws_sdk_sqs::Client::new(&arca_aws::config::load().await),
                url,
            )) as Arc<dyn arca_core::ports::rds::RdsWorkQueue>),
            None => None,
        };
        state.control_plane = state
            .control_plane
            .clone()
            .with_rds(Arc::new(arca_aws::AwsRdsOperations::new(connector)), rds_queue);
        state.agent = config.agent.clone();
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[tokio::test]
    async fn the_local_archive_master_key_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(&[]).unwrap();
        let first = c.local_archive_keyring(dir.path()).await.unwrap();
        assert_eq!(
            c.local_archive_keyring(dir.path()).await.unwrap(),
            first,
            "reused, not regenerated"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ARCHIVE_MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = config(&[("ARCA_ARCHIVE_MASTER_KEY", &"ab".repeat(32))]).unwrap();
        assert_ne!(
            configured.local_archive_keyring(dir.path()).await.unwrap(),
            first,
            "the variable wins"
        );
        let err = config(&[("ARCA_ARCHIVE_MASTER_KEY", "short")]).unwrap_err();
        assert!(err.to_string().contains("ARCA_ARCHIVE_MASTER_KEY"), "{err}");

        let both = config(&[
            ("ARCA_ARCHIVE_MASTER_KEY", &"ab".repeat(32)),
            ("ARCA_ARCHIVE_MASTER_KEY_SECRET", "arca/master"),
        ])
        .unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");
        let rotating = config(&[(
            "ARCA_ARCHIVE_MASTER_KEY",
            &format!("{},{}", "cd".repeat(32), "ab".repeat(32)),
        )])
        .unwrap();
        let ring = rotating.archive_keyring().await.unwrap().unwrap();
        let old = ArchiveKeyring::new(ArchiveMasterKey::from_hex("k", &"ab".repeat(32)).unwrap(), vec![]);
        assert_ne!(ring.current_id(1), old.current_id(1), "the first key is current");
        assert_eq!(ring.all_ids(1).len(), 2, "the second still opens what it sealed");
    }

    #[test]
    fn local_defaults_are_an_open_embedded_store() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.backend,
            Backend::Embedded {
                data_dir: "./arca-data".into()
            }
        );
        assert!(c.signup_open);
        assert_eq!(c.signup_plan, Plan::Paid, "single-machine mode bills nobody");
        assert_eq!(c.limits, PlanLimits::default());
    }

    #[test]
    fn a_table_selects_dynamo_with_signup_closed_unless_opened() {
        let c = config(&[("ARCA_TABLE", "arca")]).unwrap();
        assert_eq!(c.backend, Backend::Dynamo { table: "arca".into() });
        assert!(!c.signup_open);
        assert_eq!(c.signup_plan, Plan::Free);
        let paid = config(&[("ARCA_TABLE", "arca"), ("ARCA_SIGNUP_PLAN", "paid")]).unwrap();
        assert_eq!(paid.signup_plan, Plan::Paid);
        let err = config(&[("ARCA_SIGNUP_PLAN", "gold")]).unwrap_err();
        assert!(err.to_string().contains("ARCA_SIGNUP_PLAN"), "{err}");
        assert!(
            config(&[("ARCA_TABLE", "arca"), ("ARCA_SIGNUP", "open")])
                .unwrap()
                .signup_open
        );
    }

    #[test]
    fn bad_values_are_refused_at_start_up() {
        let err = config(&[("ARCA_SIGNUP", "yes")]).unwrap_err();
        assert!(err.to_string().contains("ARCA_SIGNUP"), "{err}");
        assert!(
            config(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]).is_err(),
            "Lambda needs a table"
        );
        assert!(config(&[("ARCA_PLAN_LIMITS", "{")]).is_err());
    }

    #[test]
    fn managed_storage_is_read_by_the_shared_wiring() {
        assert_eq!(config(&[]).unwrap().aws.managed_storage, None);
        let c = config(&[
            ("ARCA_MANAGED_BUCKET", "arca-managed"),
            ("ARCA_MANAGED_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])
        .unwrap();
        assert_eq!(c.aws.managed_storage.map(|m| m.bucket).as_deref(), Some("arca-managed"));
        let err = config(&[("ARCA_MANAGED_BUCKET", "arca-managed")]).unwrap_err();
        assert!(err.to_string().contains("ARCA_MANAGED_ROLE_ARN"), "{err}");
    }

    #[test]
    fn plan_limits_come_from_json() {
        let mut limits = PlanLimits::default();
        limits.free.max_retain_days = Some(14);
        let json = serde_json::to_string(&limits).unwrap();
        assert_eq!(config(&[("ARCA_PLAN_LIMITS", &json)]).unwrap().limits, limits);
    }
}
