//! `arca server`'s Prometheus metrics: every family is defined here, once, and served as
//! OpenMetrics text at `/metrics` on the server's own listener, beside the API router
//! (which is shared with the Lambda, whose public API has no such route). Names and labels
//! are documented in docs/metrics.md.
//!
//! One set per running server (tests start several in one process); the HTTP layer
//! ([`track`]) records each request under its route template, the loops record what they
//! already log.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of the `/metrics` answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A status class: `2xx`, `4xx`, ...
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct StatusClass(u16);

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&format!("{}xx", self.0 / 100).as_str(), encoder)
    }
}

/// What a fired schedule came to.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Dispatch {
    /// A job was created and queued for the cluster's agent.
    Dispatched,
    /// The run was decided against (the previous one still running, a paused cluster, ...):
    /// a SKIPPED job records why.
    Skipped,
    /// The schedule's definition was deleted meanwhile.
    Gone,
    /// The dispatch failed.
    Error,
}

impl EncodeLabelValue for Dispatch {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let word = match self {
            Dispatch::Dispatched => "dispatched",
            Dispatch::Skipped => "skipped",
            Dispatch::Gone => "gone",
            Dispatch::Error => "error",
        };
        EncodeLabelValue::encode(&word, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status_class: StatusClass,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DispatchLabels {
    result: Dispatch,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SweepLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric of `arca server`.
pub struct ServerMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    dispatches: Family<DispatchLabels, Counter>,
    scheduler_ticks: Counter,
    retention_sweeps: Family<SweepLabels, Counter>,
}

/// Request durations: 1 ms to about 16 s.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl ServerMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "arca_server_http_requests",
            "API requests answered, by route template (e.g. /v1/jobs/{id}; `unmatched` for no route), method and \
             status class",
            requests.clone(),
        );
        let request_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(request_histogram);
        registry.register_with_unit(
            "arca_server_http_request_duration",
            "How long API requests took to answer, by route template (agents' long polls included)",
            Unit::Seconds,
            request_duration.clone(),
        );
        let dispatches = Family::<DispatchLabels, Counter>::default();
        registry.register(
            "arca_server_dispatches",
            "Fired schedules by what they came to: a job dispatched to the cluster's queue, a run skipped (a SKIPPED \
             job says why), the definition gone, or an error",
            dispatches.clone(),
        );
        let scheduler_ticks = Counter::default();
        registry.register(
            "arca_server_scheduler_ticks",
            "Evaluations of the schedules by the scheduler loop",
            scheduler_ticks.clone(),
        );
        let retention_sweeps = Family::<SweepLabels, Counter>::default();
        registry.register(
            "arca_server_retention_sweeps",
            "Retention sweeps (expired recovery points, RDS snapshots, repository maintenance), by result (ok, \
             error)",
            retention_sweeps.clone(),
        );
        registry.register(
            "arca_server_build",
            "arca server's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        ServerMetrics {
            registry,
            requests,
            request_duration,
            dispatches,
            scheduler_ticks,
            retention_sweeps,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a label.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        text
    }

    pub fn dispatch(&self, result: Dispatch) {
        self.dispatches.get_or_create(&DispatchLabels { result }).inc();
    }

    pub fn scheduler_tick(&self) {
        self.scheduler_ticks.inc();
    }

    pub fn retention_sweep(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.retention_sweeps.get_or_create(&SweepLabels { result }).inc();
    }

    /// One answered request (what [`track`] records).
    pub fn request(&self, route: String, method: String, status: u16, seconds: f64) {
        self.request_duration
            .get_or_create(&RouteLabels { route: route.clone() })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status_class: StatusClass(status),
            })
            .inc();
    }
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What a fired schedule's dispatch answered (`arca_fn_dispatch::on_schedule`).
pub fn dispatch_result(answer: &arca_core::Result<serde_json::Value>) -> Dispatch {
    match answer {
        Err(_) => Dispatch::Error,
        Ok(v) if v.get("skipped").is_some() => Dispatch::Gone,
        Ok(v) if v["state"] == "SKIPPED" => Dispatch::Skipped,
        Ok(_) => Dispatch::Dispatched,
    }
}

/// The API router's layer: each request counted under its route template (never its
/// path, whose ids would make a series per object).
pub async fn track(State(metrics): State<Arc<ServerMetrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.request(
        route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
pub async fn serve(State(metrics): State<Arc<ServerMetrics>>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn requests_are_counted_by_route_template_and_status_class() {
        let m = ServerMetrics::new();
        m.request("/v1/jobs/{id}".into(), "GET".into(), 404, 0.003);
        m.request("/v1/jobs/{id}".into(), "GET".into(), 200, 0.002);
        m.dispatch(dispatch_result(&Ok(json!({ "jobId": "job_1", "state": "PENDING" }))));
        m.dispatch(dispatch_result(&Ok(json!({ "jobId": "job_2", "state": "SKIPPED" }))));
        m.dispatch(dispatch_result(&Ok(json!({ "skipped": "definition bd not found" }))));
        m.scheduler_tick();
        let text = m.encode();
        for line in [
            "arca_server_http_requests_total{route=\"/v1/jobs/{id}\",method=\"GET\",status_class=\"4xx\"} 1",
            "arca_server_http_requests_total{route=\"/v1/jobs/{id}\",method=\"GET\",status_class=\"2xx\"} 1",
            "arca_server_http_request_duration_seconds_count{route=\"/v1/jobs/{id}\"} 2",
            "arca_server_dispatches_total{result=\"dispatched\"} 1",
            "arca_server_dispatches_total{result=\"skipped\"} 1",
            "arca_server_dispatches_total{result=\"gone\"} 1",
            "arca_server_scheduler_ticks_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
