//! Serves the API on Lambda (when the Lambda runtime API is present) or on a local
//! listener: the same router either way; the mode comes from the environment.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    arca_runtime::init_tracing();
    let app = api::router();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda_http::run(app).await.map_err(|e| anyhow::anyhow!("lambda runtime: {e}"));
    }
    let addr = std::env::var("ARCA_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "Arca API listening");
    axum::serve(listener, app).await.context("serving the API")
}
