//! The shell every control-plane Lambda function's `main` is: logs, the control plane wired
//! from the environment (`arca_aws::wiring`), and the Lambda runtime calling a handler with
//! it for each event.

use arca_core::control_plane::{ControlPlane, ControlPlaneConfig};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

/// Runs `handler` for every event this Lambda function receives, with the control plane the
/// environment describes (built once, at start-up).
pub async fn run_with_control_plane<H>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: AsyncFn(&ControlPlane, Value) -> Result<Value, lambda_runtime::Error>,
{
    arca_runtime::init_tracing();
    let sdk = crate::config::load().await;
    let cp = crate::wiring::ControlPlaneEnv::from_env()?.control_plane(&sdk, ControlPlaneConfig::default())?;
    let (cp, handler) = (&cp, &handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler(cp, event.payload).await
    }))
    .await
}
