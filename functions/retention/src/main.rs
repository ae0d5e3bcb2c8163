//! Lambda entry point: a thin shell over [`arca_fn_retention::handle`]; the control plane comes
//! from the environment (`ARCA_TABLE`, `ARCA_QUEUE_PREFIX`, `ARCA_MAX_RECEIVES`,
//! `ARCA_PLAN_LIMITS`; see `arca_aws::wiring`).

use arca_core::control_plane::ControlPlaneConfig;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arca_runtime::init_tracing();
    let sdk = arca_aws::config::load().await;
    let cp = arca_aws::wiring::ControlPlaneEnv::from_env()?.control_plane(&sdk, ControlPlaneConfig::default())?;
    let cp = &cp;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        arca_fn_retention::handle(cp, event.payload).await
    }))
    .await
}
