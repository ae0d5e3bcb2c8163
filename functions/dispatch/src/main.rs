//! Lambda entry point: a thin shell over [`dispatch::handle`].

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arca_runtime::init_tracing();
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| dispatch::handle(event.payload))).await
}
