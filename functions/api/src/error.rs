//! How errors of the core become problems: one mapping, status by kind, and nothing
//! internal in a body. Internal errors are logged here, inside the request's span (so
//! the log line carries the request id), and the client gets only the request id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

tokio::task_local! {
    /// The id of the request being handled, set by the request-id middleware, so an
    /// internal error can tell the client which log lines to ask about.
    pub(crate) static CURRENT_REQUEST_ID: String;
}

fn current_request_id() -> String {
    CURRENT_REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The error every handler returns.
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// Replaces the code of a problem of `status`, leaving other problems alone.
    pub fn recode(mut self, status: StatusCode, code: &'static str) -> Self {
        if self.0.status_code() == status {
            self.0.code = code;
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status_code()
    }
}

fn internal_problem(request_id: &str) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("internal error (request id {request_id})"),
    )
    .with_extension("requestId", request_id)
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        ApiError(Box::new(problem))
    }
}

impl From<arca_core::Error> for ApiError {
    fn from(error: arca_core::Error) -> Self {
        use arca_core::Error as E;
        let problem = match error {
            E::NotFound { what } => Problem::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found")),
            // The core says which rule refused; its kind is the stable problem code.
            E::Conflict {
                kind: kind @ (arca_core::ConflictKind::InstallLinkUsed | arca_core::ConflictKind::InstallLinkExpired),
                message,
            } => Problem::new(StatusCode::GONE, kind.code(), message),
            E::Conflict { kind, message } => Problem::new(StatusCode::CONFLICT, kind.code(), message),
            E::Invalid { field, message } => Problem::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                format!("{field}: {message}"),
            )
            .with_field(field),
            E::PreconditionFailed { message } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!("{message}; read the resource again and retry with its current ETag"),
            ),
            E::LimitExceeded { field, message } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "plan_limit_exceeded", message).with_field(field)
            }
            E::Unauthenticated => unauthenticated("invalid API key"),
            E::Forbidden { message } => Problem::new(StatusCode::FORBIDDEN, "forbidden", message),
            E::Transient(source) => {
                let request_id = current_request_id();
                tracing::warn!(error = %source, request_id = %request_id, "transient failure");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("temporarily unavailable, retry shortly (request id {request_id})"),
                )
                .with_extension("requestId", request_id)
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
            E::Permanent(source) => {
                let request_id = current_request_id();
                tracing::error!(error = %source, request_id = %request_id, "internal error");
                internal_problem(&request_id)
            }
        };
        ApiError(Box::new(problem))
    }
}

/// A 401: says what is expected, never why a presented key was refused.
pub fn unauthenticated(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(e: arca_core::Error) -> Problem {
        *ApiError::from(e).0
    }

    #[tokio::test]
    async fn failures_of_the_machinery_show_only_the_request_id() {
        let (transient, permanent) = CURRENT_REQUEST_ID
            .scope("req-1".to_owned(), async {
                (
                    problem(arca_core::Error::transient("throttled on table arca-prod")),
                    problem(arca_core::Error::permanent("disk /var/lib/arca full")),
                )
            })
            .await;
        assert_eq!((transient.status, transient.code), (503, "unavailable"));
        assert_eq!((permanent.status, permanent.code), (500, "internal"));
        for p in [&transient, &permanent] {
            let body = serde_json::to_string(p).unwrap();
            assert!(
                body.contains("req-1") && !body.contains("arca-prod") && !body.contains("/var/lib"),
                "{body}"
            );
        }
    }

    #[test]
    fn each_kind_has_its_status_and_code() {
        let cases = [
            (arca_core::Error::not_found("policy pol_1"), 404, "not_found"),
            (arca_core::Error::conflict("in use"), 409, "conflict"),
            (arca_core::Error::invalid("name", "empty"), 400, "validation_failed"),
            (
                arca_core::Error::precondition_failed("version 2, not 1"),
                412,
                "precondition_failed",
            ),
            (
                arca_core::Error::limit_exceeded("retainDays", "over 30"),
                422,
                "plan_limit_exceeded",
            ),
            (arca_core::Error::Unauthenticated, 401, "unauthenticated"),
            (arca_core::Error::forbidden("needs admin"), 403, "forbidden"),
            (
                arca_core::Error::conflict_of(arca_core::ConflictKind::ConcurrentModification, "raced"),
                409,
                "concurrent_modification",
            ),
            (
                arca_core::Error::conflict_of(arca_core::ConflictKind::PolicyInUse, "used by b1"),
                409,
                "policy_in_use",
            ),
            (
                arca_core::Error::conflict_of(arca_core::ConflictKind::InstallLinkUsed, "used"),
                410,
                "install_link_used",
            ),
            (
                arca_core::Error::conflict_of(arca_core::ConflictKind::InstallLinkExpired, "expired"),
                410,
                "install_link_expired",
            ),
        ];
        for (error, status, code) in cases {
            let p = problem(error);
            assert_eq!((p.status, p.code), (status, code));
        }
        assert_eq!(
            problem(arca_core::Error::invalid("schedules[0].cron", "bad"))
                .field
                .as_deref(),
            Some("schedules[0].cron")
        );
    }
}
