//! Arca's HTTP API. [`router`] is the whole API over an [`AppState`]; `main.rs` only
//! decides whether it is served by Lambda or by a local listener.

pub mod audit;
pub mod console;
pub mod dto;
pub mod error;
pub mod extract;
pub mod manifest;
pub mod problem;
mod routes;
pub use routes::contract::PROBLEM_JSON;
pub mod state;

use std::sync::Arc;

use axum::extract::{Extension, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tracing::Instrument;

pub use error::{ApiError, ApiResult};
pub use problem::Problem;
pub use state::{AppState, Config};

/// Every response carries this header; every log line of the request carries its value.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The API router: `/healthz`, every `/v1` route and `/v1/openapi.json`, which
/// documents exactly the routes registered here (both come from [`routes::v1`]), and the
/// web console under `/` ([`console`]).
pub fn router(state: AppState) -> Router {
    let (v1, doc) = routes::v1_parts();
    // After routing (`route_layer`), so the audit layer knows each call's route template.
    v1.route_layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .route("/healthz", get(healthz))
        .fallback(console::serve)
        .layer(Extension(Arc::new(doc)))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// The OpenAPI document, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::v1_parts().1
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

pub(crate) async fn not_found(request: Request) -> Problem {
    Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

/// The path as logged: an install link's token is a credential, so it is masked.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/v1/install/") {
        Some(rest) => {
            let tail = rest.split_once('/').map_or("", |(_, tail)| tail);
            format!("/v1/install/<redacted>/{tail}").into()
        }
        None => path.into(),
    }
}

/// Assigns a request id (a client-supplied one is kept when it is a sane token) and
/// runs the request inside a span carrying it, so internal errors can be logged with
/// it without being shown; the id is also in a task-local for the error bodies.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned);
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID.clone(), value.clone());
    let path = loggable_path(request.uri().path());
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %path);
    let mut response = error::CURRENT_REQUEST_ID
        .scope(id, async move {
            let response = next.run(request).await;
            tracing::info!(status = response.status().as_u16(), "handled");
            response
        })
        .instrument(span)
        .await;
    response.headers_mut().insert(REQUEST_ID.clone(), value);
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    /// The router over an embedded state (the console's unit tests use it too).
    pub(crate) fn router() -> Router {
        // Health and 404s touch no store, but the router needs a state: a redb file in a
        // temp dir that lives as long as the router (leaked: these tests are short).
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        super::router(
            AppState::embedded(
                dir.path(),
                true,
                Default::default(),
                arca_aws::wiring::DEFAULT_MAX_RECEIVES,
            )
            .unwrap(),
        )
    }

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn health_answers_with_a_request_id() {
        let response = router()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(&REQUEST_ID).is_some());
        assert_eq!(body_json(response).await["status"], "ok");
    }

    #[tokio::test]
    async fn unknown_routes_are_problem_json_404s() {
        let request = Request::get("/v1/nope")
            .header(&REQUEST_ID, "req-123")
            .body(Body::empty())
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        assert_eq!(
            response.headers()[&REQUEST_ID],
            "req-123",
            "a sane client request id is kept"
        );
        let body = body_json(response).await;
        assert_eq!(body["code"], "route_not_found");
        assert_eq!(body["status"], 404);
        assert!(body["detail"].as_str().unwrap().contains("GET /v1/nope"));
    }

    #[test]
    fn install_tokens_are_masked_in_logged_paths() {
        assert_eq!(
            loggable_path("/v1/install/arcainst_SECRET/agent.yaml"),
            "/v1/install/<redacted>/agent.yaml"
        );
        assert_eq!(loggable_path("/v1/clusters/cl_1"), "/v1/clusters/cl_1");
    }

    #[tokio::test]
    async fn a_hostile_request_id_is_replaced() {
        let request = Request::get("/healthz")
            .header(&REQUEST_ID, "a\"b c")
            .body(Body::empty())
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        let id = response.headers()[&REQUEST_ID].to_str().unwrap();
        assert_eq!(id.len(), 26, "a fresh ULID, got {id:?}");
    }
}
