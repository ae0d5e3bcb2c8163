//! Configuration (from the environment) and the application state built from it.
//!
//! The store backend follows the environment, not the build: `ARCA_TABLE` selects
//! DynamoDB (what the deployed function gets from `template.yaml`); without it the API
//! runs on an embedded redb file under `ARCA_DATA_DIR`. Either way the control plane is
//! built by its adapter family's composition root (`arca_aws::wiring`,
//! `arca_embedded::wiring`); this module adds only what is the API's own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
pub use arca_aws::wiring::{ControlPlaneEnv, ManagedStorage};
use arca_core::control_plane::{ControlPlane, ControlPlaneConfig};
use arca_core::model::archive_key::{ArchiveKeyring, MasterKeyForm};
use arca_core::model::plan::{Plan, PlanLimits};
use arca_core::ports::item_store::ItemStore;
use arca_core::ports::queue::Queue;
use arca_core::ports::scheduler::Scheduler;
pub use arca_embedded::wiring::{DB_FILE, LocalPorts};

/// Where the state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A redb file in this directory (single-machine mode).
    Embedded { data_dir: PathBuf },
    /// This DynamoDB table, reached with the standard AWS configuration.
    Dynamo { table: String },
}

/// Everything the API reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub backend: Backend,
    /// The settings every binary of the control plane reads alike (`arca_aws::wiring`):
    /// queues, plan limits, schedules, role stack, gc grace, managed storage, RDS queue.
    pub control_plane: ControlPlaneEnv,
    pub signup_open: bool,
    /// `ARCA_SIGNUP_PLAN` (`free` or `paid`): the plan new orgs start on; free on
    /// DynamoDB (a shared deployment), paid in single-machine mode (nobody to bill).
    pub signup_plan: Plan,
    pub agent: AgentSettings,
    /// Where the master keys each cluster's archive keys derive from come from
    /// ([`MasterKeySource`]). Without one, single-machine mode keeps a key in a key file
    /// in its data directory.
    pub archive_master_key: Option<MasterKeySource>,
    /// `ARCA_OPERATOR_TOKEN_SHA256`: the SHA-256 (64 lower-case hex digits) of the
    /// deployment operator's token, who sets orgs' plans. Without it nobody can.
    pub operator_token_hash: Option<arca_core::model::secret::SecretHash>,
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

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads the configuration through `var`, so tests need not touch the process
    /// environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let control_plane = ControlPlaneEnv::from_lookup(&var)?;
        let backend = match &control_plane.table {
            Some(table) => {
                if control_plane.scheduler.is_none() {
                    bail!(
                        "ARCA_SCHEDULE_GROUP, ARCA_DISPATCH_ARN and ARCA_SCHEDULER_ROLE_ARN must be set with \
                         ARCA_TABLE (where backup schedules go)"
                    );
                }
                Backend::Dynamo { table: table.clone() }
            }
            // On Lambda a local file would silently vanish with the sandbox.
            None if var("AWS_LAMBDA_RUNTIME_API").is_some() => {
                bail!("ARCA_TABLE must be set on Lambda (the DynamoDB table of the control plane)")
            }
            None => Backend::Embedded {
                data_dir: var("ARCA_DATA_DIR").map_or_else(arca_embedded::wiring::default_data_dir, PathBuf::from),
            },
        };
        let local = matches!(backend, Backend::Embedded { .. });
        // A deployed API is reachable by anyone, so sign-up is opt-in there; the local
        // server listens on loopback for its one user, who needs an org to start.
        let signup_open = match var("ARCA_SIGNUP").as_deref() {
            Some("open") => true,
            Some("closed") => false,
            Some(other) => bail!("ARCA_SIGNUP must be `open` or `closed`, not {other:?}"),
            None => local,
        };
        let signup_plan = match var("ARCA_SIGNUP_PLAN").as_deref() {
            Some("free") => Plan::Free,
            Some("paid") => Plan::Paid,
            Some(other) => bail!("ARCA_SIGNUP_PLAN must be `free` or `paid`, not {other:?}"),
            None if local => Plan::Paid,
            None => Plan::Free,
        };
        let archive_master_key = match (var("ARCA_ARCHIVE_MASTER_KEY"), var("ARCA_ARCHIVE_MASTER_KEY_SECRET")) {
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
            .map(|hex| {
                arca_core::model::secret::SecretHash::from_hex(&hex).map_err(|_| {
                    anyhow::anyhow!(
                        "ARCA_OPERATOR_TOKEN_SHA256 must be the SHA-256 of the operator token: 64 lower-case hex digits"
                    )
                })
            })
            .transpose()?;
        Ok(Config {
            backend,
            control_plane,
            signup_open,
            signup_plan,
            archive_master_key,
            operator_token_hash,
            agent: AgentSettings {
                public_url: var("ARCA_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
                image: var("ARCA_AGENT_IMAGE").unwrap_or_else(|| DEFAULT_AGENT_IMAGE.to_owned()),
            },
        })
    }

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

    /// The control plane's own settings, with the master keys found.
    fn control_plane_config(&self, keyring: Option<ArchiveKeyring>) -> ControlPlaneConfig {
        self.control_plane.config(ControlPlaneConfig {
            signup_open: self.signup_open,
            signup_plan: self.signup_plan,
            operator_token_hash: self.operator_token_hash.clone(),
            archive_keyring: keyring,
            ..ControlPlaneConfig::default()
        })
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
        let config = ControlPlaneConfig {
            signup_open,
            local_destinations,
            ..ControlPlaneConfig::default()
        };
        AppState {
            control_plane: arca_aws::wiring::with_alert_senders(arca_embedded::wiring::in_process(
                items,
                arca_aws::wiring::DEFAULT_MAX_RECEIVES,
                limits,
                config,
            )),
            agent: AgentSettings::default(),
        }
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
            control_plane: arca_aws::wiring::with_alert_senders(arca_embedded::wiring::with_ports(
                items, queue, scheduler, limits, config,
            )),
            agent: AgentSettings::default(),
        }
    }

    /// State on a redb file in `data_dir` (created if missing), with the defaults of
    /// single-machine mode and nothing of AWS: what the router's unit tests use.
    pub fn embedded(data_dir: &Path, signup_open: bool, limits: PlanLimits, max_receives: u32) -> anyhow::Result<Self> {
        let config = ControlPlaneConfig {
            signup_open,
            ..ControlPlaneConfig::default()
        };
        let (control_plane, _) = arca_embedded::wiring::open(data_dir, max_receives, limits, config)?;
        let control_plane = arca_aws::wiring::with_alert_senders(control_plane);
        Ok(AppState {
            control_plane,
            agent: AgentSettings::default(),
        })
    }

    /// The state `config` describes: on DynamoDB through `arca_aws::wiring`, or in
    /// single-machine mode ([`AppState::local`]).
    pub async fn from_config(config: &Config) -> anyhow::Result<Self> {
        match &config.backend {
            Backend::Embedded { data_dir } => Ok(Self::local(config, data_dir).await?.0),
            Backend::Dynamo { .. } => {
                let sdk = arca_aws::config::load().await;
                let cp_config = config.control_plane_config(config.archive_keyring().await?);
                Ok(AppState {
                    control_plane: config.control_plane.control_plane(&sdk, cp_config)?,
                    agent: config.agent.clone(),
                })
            }
        }
    }

    /// Single-machine mode on `data_dir` (the local API and `arca server`): the state
    /// and in-process ports of `arca_embedded::wiring`, the master keys of its key file
    /// unless configured, and what the machine reaches in AWS as the Lambdas do. The
    /// ports are returned for whoever drives them.
    pub async fn local(config: &Config, data_dir: &Path) -> anyhow::Result<(Self, LocalPorts)> {
        let keyring = arca_embedded::wiring::archive_keyring(data_dir, config.archive_keyring().await?)?;
        let cp_config = config.control_plane_config(Some(keyring));
        let (cp, ports) = arca_embedded::wiring::open(
            data_dir,
            config.control_plane.queue.max_receives,
            config.control_plane.limits.clone(),
            cp_config,
        )
        .with_context(|| format!("opening the state in {}", data_dir.display()))?;
        let cp = arca_aws::wiring::with_alert_senders(cp);
        let control_plane = config.control_plane.reach_aws(cp, ports.rds_queue.clone()).await?;
        Ok((
            AppState {
                control_plane,
                agent: config.agent.clone(),
            },
            ports,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arca_core::model::archive_key::ArchiveMasterKey;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    /// On DynamoDB: the table and where its schedules go.
    const DEPLOYED: [(&str, &str); 4] = [
        ("ARCA_TABLE", "arca"),
        ("ARCA_SCHEDULE_GROUP", "arca-dev"),
        (
            "ARCA_DISPATCH_ARN",
            "arn:aws:lambda:us-east-1:111122223333:function:dispatch",
        ),
        ("ARCA_SCHEDULER_ROLE_ARN", "arn:aws:iam::111122223333:role/scheduler"),
    ];

    fn deployed(more: &[(&str, &str)]) -> anyhow::Result<Config> {
        config(&[&DEPLOYED[..], more].concat())
    }

    #[tokio::test]
    async fn archive_master_keys_come_from_one_variable_or_one_secret() {
        let configured = config(&[("ARCA_ARCHIVE_MASTER_KEY", &"ab".repeat(32))]).unwrap();
        assert!(configured.archive_keyring().await.unwrap().is_some());
        assert_eq!(config(&[]).unwrap().archive_keyring().await.unwrap(), None);
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

    /// `arca server` takes email channels when `ARCA_ALERTS_FROM` names an SES sender
    /// (`ControlPlaneEnv::reach_aws`), and refuses them with `email_needs_ses` otherwise.
    #[tokio::test]
    async fn single_machine_mode_takes_email_channels_only_with_an_ses_sender() {
        use arca_core::control_plane::{EMAIL_NEEDS_SES, SignupRequest};
        use arca_core::model::alert::{ChannelSpec, ChannelTarget};

        for (vars, accepted) in [
            (vec![], false),
            (vec![("ARCA_ALERTS_FROM", "alerts@example.com")], true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (state, _) = AppState::local(&config(&vars).unwrap(), dir.path()).await.unwrap();
            let cp = &state.control_plane;
            let signed = cp
                .signup(SignupRequest {
                    org_name: "acme".into(),
                    admin_key_name: None,
                })
                .await
                .unwrap();
            let p = cp.authenticate(&signed.admin_key.secret).await.unwrap();
            let spec = ChannelSpec {
                name: "mail".into(),
                target: ChannelTarget::Email {
                    recipients: vec!["oncall@example.com".into()],
                },
                events: vec![],
                enabled: true,
                disconnected_after_minutes: 30,
            };
            match cp.create_alert_channel(&p, spec).await {
                Ok(_) => assert!(accepted, "{vars:?}: an email channel without a sender"),
                Err(arca_core::Error::Invalid { message, .. }) if !accepted => assert_eq!(message, EMAIL_NEEDS_SES),
                Err(e) => panic!("{vars:?}: {e:?}"),
            }
        }
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
        assert_eq!(c.control_plane.limits, PlanLimits::default());
    }

    #[test]
    fn a_table_selects_dynamo_with_signup_closed_unless_opened() {
        let c = deployed(&[]).unwrap();
        assert_eq!(c.backend, Backend::Dynamo { table: "arca".into() });
        assert!(!c.signup_open);
        assert_eq!(c.signup_plan, Plan::Free);
        let paid = deployed(&[("ARCA_SIGNUP_PLAN", "paid")]).unwrap();
        assert_eq!(paid.signup_plan, Plan::Paid);
        let err = config(&[("ARCA_SIGNUP_PLAN", "gold")]).unwrap_err();
        assert!(err.to_string().contains("ARCA_SIGNUP_PLAN"), "{err}");
        assert!(deployed(&[("ARCA_SIGNUP", "open")]).unwrap().signup_open);
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
        let err = config(&[("ARCA_TABLE", "arca")]).unwrap_err();
        assert!(
            err.to_string().contains("ARCA_SCHEDULE_GROUP"),
            "a table needs its schedules' target: {err}"
        );
    }

    #[test]
    fn managed_storage_is_read_by_the_shared_wiring() {
        assert_eq!(config(&[]).unwrap().control_plane.managed_storage, None);
        let c = config(&[
            ("ARCA_MANAGED_BUCKET", "arca-managed"),
            ("ARCA_MANAGED_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])
        .unwrap();
        assert_eq!(
            c.control_plane.managed_storage.map(|m| m.bucket).as_deref(),
            Some("arca-managed")
        );
        let err = config(&[("ARCA_MANAGED_BUCKET", "arca-managed")]).unwrap_err();
        assert!(err.to_string().contains("ARCA_MANAGED_ROLE_ARN"), "{err}");
    }

    #[test]
    fn plan_limits_come_from_json() {
        let mut limits = PlanLimits::default();
        limits.free.max_retain_days = Some(14);
        let json = serde_json::to_string(&limits).unwrap();
        assert_eq!(
            config(&[("ARCA_PLAN_LIMITS", &json)]).unwrap().control_plane.limits,
            limits
        );
    }
}
