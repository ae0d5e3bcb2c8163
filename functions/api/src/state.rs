//! Configuration (from the environment) and the application state built from it.
//!
//! The store backend follows the environment, not the build: `ARCA_TABLE` selects
//! DynamoDB (what the deployed function gets from `template.yaml`); without it the API
//! runs on an embedded redb file under `ARCA_DATA_DIR`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use arca_core::plan::PlanLimits;
use arca_core::ports::SystemClock;
use arca_core::service::{ControlPlane, ControlPlaneConfig};
use arca_core::store::Store;
use arca_core::store::item::ItemStore;

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
    pub limits: PlanLimits,
}

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
        let limits = match var("ARCA_PLAN_LIMITS") {
            Some(json) => serde_json::from_str(&json).context("ARCA_PLAN_LIMITS is not a JSON plan-limits document")?,
            None => PlanLimits::default(),
        };
        Ok(Config {
            backend,
            signup_open,
            limits,
        })
    }
}

/// What every handler gets: the control plane (service layer over the typed store).
#[derive(Clone)]
pub struct AppState {
    pub control_plane: ControlPlane,
}

impl AppState {
    /// State over any item store: what tests build on a temp-dir redb store.
    pub fn new(items: Arc<dyn ItemStore>, signup_open: bool, limits: PlanLimits, local_destinations: bool) -> Self {
        let config = ControlPlaneConfig {
            signup_open,
            local_destinations,
            ..ControlPlaneConfig::default()
        };
        AppState {
            control_plane: ControlPlane::new(Store::new(items), limits, Arc::new(SystemClock), config),
        }
    }

    /// State on a redb file in `data_dir` (created if missing). Local-filesystem
    /// destinations are allowed: this is single-machine mode.
    pub fn embedded(data_dir: &Path, signup_open: bool, limits: PlanLimits) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let path = data_dir.join(DB_FILE);
        let store = arca_embedded::RedbItemStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Self::new(Arc::new(store), signup_open, limits, true))
    }

    /// State on a DynamoDB table, with the SDK configured from the environment.
    pub async fn dynamo(table: &str, signup_open: bool, limits: PlanLimits) -> Self {
        let sdk = arca_aws::config::load().await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        Self::new(
            Arc::new(arca_aws::DynamoItemStore::new(client, table)),
            signup_open,
            limits,
            false,
        )
    }

    pub async fn from_config(config: &Config) -> anyhow::Result<Self> {
        match &config.backend {
            Backend::Embedded { data_dir } => Self::embedded(data_dir, config.signup_open, config.limits.clone()),
            Backend::Dynamo { table } => Ok(Self::dynamo(table, config.signup_open, config.limits.clone()).await),
        }
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
        assert_eq!(c.limits, PlanLimits::default());
    }

    #[test]
    fn a_table_selects_dynamo_with_signup_closed_unless_opened() {
        let c = config(&[("ARCA_TABLE", "arca")]).unwrap();
        assert_eq!(c.backend, Backend::Dynamo { table: "arca".into() });
        assert!(!c.signup_open);
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
    fn plan_limits_come_from_json() {
        let mut limits = PlanLimits::default();
        limits.free.max_retain_days = Some(14);
        let json = serde_json::to_string(&limits).unwrap();
        assert_eq!(config(&[("ARCA_PLAN_LIMITS", &json)]).unwrap().limits, limits);
    }
}
