//! One mapping from AWS SDK errors to [`arca_core::Error`], shared by every adapter.

use arca_core::Error;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// Error codes that mean "try again later", across the services we call.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
];

const NOT_FOUND_CODES: &[&str] = &["NoSuchKey", "NoSuchBucket", "NotFound", "ResourceNotFoundException"];

const CONFLICT_CODES: &[&str] = &[
    "ConditionalCheckFailedException",
    "TransactionCanceledException",
    "PreconditionFailed",
    "ConflictException",
];

/// Classifies an SDK error; `what` names the thing being accessed, for NotFound.
pub fn classify<E>(err: SdkError<E, HttpResponse>, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Error::transient(err)
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or_default();
            if status == 404 || NOT_FOUND_CODES.contains(&code) {
                Error::not_found(what)
            } else if status == 412 || CONFLICT_CODES.contains(&code) {
                Error::conflict(format!("{what}: {}", ctx.err().message().unwrap_or(code)))
            } else if status == 429 || status >= 500 || RETRYABLE_CODES.contains(&code) {
                Error::transient(err)
            } else {
                Error::permanent(err)
            }
        }
        _ => Error::permanent(err),
    }
}
