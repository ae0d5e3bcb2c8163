//! Lambda entry point: a thin shell over [`arca_fn_inventory::run`]; the control plane comes from
//! the environment (see `arca_aws::wiring`).

use arca_core::control_plane::ControlPlaneConfig;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arca_runtime::init_tracing();
    let sdk = arca_aws::config::load().await;
    let cp = arca_aws::wiring::ControlPlaneEnv::from_env()?.control_plane(&sdk, ControlPlaneConfig::default())?;
    let http = reqwest::Client::new();
    let urls = arca_fn_inventory::ResponseUrls::from_env();
    let (cp, http, urls) = (&cp, &http, &urls);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, lambda_runtime::Error>(
            arca_fn_inventory::run(cp, http, event.payload, arca_fn_inventory::LinkRetry::default(), urls).await?,
        )
    }))
    .await
}
