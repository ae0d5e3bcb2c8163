//! Serves the API on Lambda (when the Lambda runtime API is present) or on a local
//! listener: the same router either way; the mode and the store come from the
//! environment (see `arca_api::state::Config`).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    arca_runtime::init_tracing();
    let config = arca_api::Config::from_env()?;
    tracing::info!(backend = ?config.backend, signup_open = config.signup_open, "configuration");
    let state = arca_api::AppState::from_config(&config).await?;
    let app = arca_api::router(state);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        // CloudWatch metrics of each request (docs/metrics.md), on Lambda only.
        let app = app.layer(axum::middleware::from_fn(request_metrics));
        return lambda_http::run(app)
            .await
            .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"));
    }
    let addr = std::env::var("ARCA_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "Arca API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // Ctrl-C ends the server cleanly, releasing the redb file lock.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving the API")
}

/// One EMF line per request: counted and timed by route template (never the path, whose
/// ids would make a metric per object) and status class.
async fn request_metrics(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    arca_runtime::emf::Emf::new("api")
        .dimension("Route", route)
        .dimension("StatusClass", format!("{}xx", status / 100))
        .count("Requests", 1)
        .count("ServerErrors", u64::from(status >= 500))
        .milliseconds("Latency", started.elapsed().as_secs_f64() * 1000.0)
        .emit();
    response
}
