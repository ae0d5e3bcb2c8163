//! Lambda entry point: a thin shell over [`rds::handle`].

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arca_runtime::init_tracing();
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        rds::handle(event.payload)
    }))
    .await
}
