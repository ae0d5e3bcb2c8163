//! RFC 9457 problem details: the shape of every error the API returns.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// An error as the client sees it: a stable machine `code` and a human `detail`.
/// Internal error text never goes in here; it is logged with the request id instead.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(skip)]
    status_code: StatusCode,
    /// Stable, machine-readable (`policy_in_use`, `validation_failed`, ...).
    #[schema(value_type = String, example = "policy_in_use")]
    pub code: &'static str,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation errors: the offending field, as a JSON path into the request
    /// (`schedules[0].retainDays`), or the header / query parameter's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Extra members some codes carry (`usedBy` of `policy_in_use`, `requestId` of
    /// `internal`, `requiredRole` of `forbidden`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
    /// Headers that belong with the problem (`WWW-Authenticate` on a 401).
    #[serde(skip)]
    headers: Vec<(header::HeaderName, HeaderValue)>,
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
            extensions: Map::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_extension(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status_code(&self) -> StatusCode {
        self.status_code
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status_code, [(header::CONTENT_TYPE, crate::PROBLEM_JSON)], body).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
