//! Lambda entry point: a thin shell over [`inventory::handle`].

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arca_runtime::init_tracing();
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        inventory::handle(event.payload)
    }))
    .await
}
