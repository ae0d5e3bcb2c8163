//! RFC 9457 problem details: the shape of every error the API returns.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error as the client sees it: a stable machine `code` and a human `detail`.
/// Internal error text never goes in here; it is logged with the request id instead.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(skip)]
    status_code: StatusCode,
    /// Stable, machine-readable (`policy_in_use`, `validation_failed`, ...).
    pub code: &'static str,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation errors: the offending field, as a JSON path into the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status_code: status,
            code,
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (self.status_code, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
    }
}
