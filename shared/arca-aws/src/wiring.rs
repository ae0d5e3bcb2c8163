//! The AWS composition root every function shares: which table, which queues and which
//! plan limits, read from the environment strictly — a bad value stops start-up naming
//! the variable, instead of silently falling back to a default.

use std::sync::Arc;

use arca_core::plan::PlanLimits;
use arca_core::ports::SystemClock;
use arca_core::service::{ControlPlane, ControlPlaneConfig};
use arca_core::store::Store;
use arca_core::{Error, Result};
use aws_config::SdkConfig;

use crate::{DynamoItemStore, SqsQueue, SqsQueueConfig};

/// Deliveries of a job message before it is dead-lettered, unless `ARCA_MAX_RECEIVES` says.
pub const DEFAULT_MAX_RECEIVES: u32 = 5;
/// Names the deployment's queues, unless `ARCA_QUEUE_PREFIX` says.
pub const DEFAULT_QUEUE_PREFIX: &str = "arca";

/// `ARCA_QUEUE_PREFIX` and `ARCA_MAX_RECEIVES`.
pub fn queue_config(var: &impl Fn(&str) -> Option<String>) -> Result<SqsQueueConfig> {
    let max_receives = match var("ARCA_MAX_RECEIVES") {
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::invalid("ARCA_MAX_RECEIVES", format!("must be a positive number, not {n:?}")))?,
        None => DEFAULT_MAX_RECEIVES,
    };
    Ok(SqsQueueConfig {
        name_prefix: var("ARCA_QUEUE_PREFIX").unwrap_or_else(|| DEFAULT_QUEUE_PREFIX.to_owned()),
        max_receives,
    })
}

/// `ARCA_PLAN_LIMITS`: a JSON plan-limits document; the built-in limits without it.
pub fn plan_limits(var: &impl Fn(&str) -> Option<String>) -> Result<PlanLimits> {
    match var("ARCA_PLAN_LIMITS") {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| Error::invalid("ARCA_PLAN_LIMITS", format!("not a JSON plan-limits document: {e}"))),
        None => Ok(PlanLimits::default()),
    }
}

/// What an event function (dispatch, retention) needs of the control plane.
#[derive(Clone, Debug)]
pub struct ControlPlaneEnv {
    pub table: String,
    pub queue: SqsQueueConfig,
    pub limits: PlanLimits,
}

impl ControlPlaneEnv {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads through `var`, so tests need not touch the process environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        Ok(Self {
            table: var("ARCA_TABLE")
                .ok_or_else(|| Error::invalid("ARCA_TABLE", "must be set (the control plane's DynamoDB table)"))?,
            queue: queue_config(&var)?,
            limits: plan_limits(&var)?,
        })
    }

    /// The control plane on DynamoDB with the per-cluster SQS queues.
    pub fn control_plane(&self, sdk: &SdkConfig, config: ControlPlaneConfig) -> Result<ControlPlane> {
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), self.queue.clone())?;
        let store = DynamoItemStore::new(aws_sdk_dynamodb::Client::new(sdk), &self.table);
        Ok(ControlPlane::new(
            Store::new(Arc::new(store)),
            self.limits.clone(),
            Arc::new(SystemClock),
            config,
        )
        .with_queue(Arc::new(queue)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn defaults_apply_only_when_unset() {
        let env = ControlPlaneEnv::from_lookup(lookup(&[("ARCA_TABLE", "arca")])).unwrap();
        assert_eq!(env.table, "arca");
        assert_eq!(env.queue.max_receives, DEFAULT_MAX_RECEIVES);
        assert_eq!(env.queue.name_prefix, DEFAULT_QUEUE_PREFIX);
        assert_eq!(env.limits, PlanLimits::default());
    }

    #[test]
    fn bad_values_stop_start_up_naming_the_variable() {
        for (vars, name) in [
            (vec![], "ARCA_TABLE"),
            (
                vec![("ARCA_TABLE", "t"), ("ARCA_MAX_RECEIVES", "five")],
                "ARCA_MAX_RECEIVES",
            ),
            (
                vec![("ARCA_TABLE", "t"), ("ARCA_MAX_RECEIVES", "0")],
                "ARCA_MAX_RECEIVES",
            ),
            (vec![("ARCA_TABLE", "t"), ("ARCA_PLAN_LIMITS", "{")], "ARCA_PLAN_LIMITS"),
        ] {
            let err = ControlPlaneEnv::from_lookup(lookup(&vars)).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == name),
                "{vars:?}: {err:?}"
            );
        }
    }
}
