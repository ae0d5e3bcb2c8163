//! Lambda entry point: a thin shell over [`retention::handle`]; the control plane comes
//! from the environment (`ARCA_TABLE`, `ARCA_QUEUE_PREFIX`, `ARCA_MAX_RECEIVES`).

use std::sync::Arc;

use arca_core::plan::PlanLimits;
use arca_core::ports::SystemClock;
use arca_core::service::{ControlPlane, ControlPlaneConfig};
use arca_core::store::Store;
use lambda_runtime::{LambdaEvent, service_fn};

fn var(name: &str) -> Result<String, lambda_runtime::Error> {
    std::env::var(name).map_err(|_| format!("{name} must be set").into())
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arca_runtime::init_tracing();
    let sdk = arca_aws::config::load().await;
    let table = var("ARCA_TABLE")?;
    let queue = arca_aws::SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        arca_aws::SqsQueueConfig {
            name_prefix: std::env::var("ARCA_QUEUE_PREFIX").unwrap_or_else(|_| "arca".to_owned()),
            max_receives: std::env::var("ARCA_MAX_RECEIVES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(5),
        },
    )?;
    let limits: PlanLimits = match std::env::var("ARCA_PLAN_LIMITS") {
        Ok(json) => serde_json::from_str(&json)?,
        Err(_) => PlanLimits::default(),
    };
    let cp = ControlPlane::new(
        Store::new(Arc::new(arca_aws::DynamoItemStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table,
        ))),
        limits,
        Arc::new(SystemClock),
        ControlPlaneConfig::default(),
    )
    .with_queue(Arc::new(queue));
    let cp = &cp;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        retention::handle(cp, event.payload).await
    }))
    .await
}
