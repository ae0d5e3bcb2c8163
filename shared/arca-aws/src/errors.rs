//! One mapping from AWS SDK errors to [`arca_core::Error`], shared by every adapter.

use arca_core::Error;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Error codes that mean "try again later", across the services we call.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    // DynamoDB: a single-item write raced a transaction on the same item.
    "TransactionConflictException",
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
];

const NOT_FOUND_CODES: &[&str] = &["NoSuchKey", "NotFound", "ResourceNotFoundException"];

/// What a destination answers when it is misconfigured rather than missing an object:
/// none may read as "absent" (a missing bucket would make a repository look new), and the
/// job says which in one line.
const MISCONFIGURED: &[(&str, &str)] = &[
    ("NoSuchBucket", "the bucket does not exist"),
    ("AccessDenied", "access denied"),
    ("InvalidAccessKeyId", "the access key is not known to the store"),
    ("SignatureDoesNotMatch", "the secret key does not match the access key"),
    ("ExpiredToken", "the credentials have expired"),
    ("TokenRefreshRequired", "the credentials have expired"),
    ("PermanentRedirect", "the bucket is in another region"),
    (
        "AuthorizationHeaderMalformed",
        "the bucket is in another region than the one configured",
    ),
    ("IllegalLocationConstraintException", "the bucket is in another region"),
];

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
            Error::transient(Described::new(err, what))
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or_default();
            if let Some((_, cause)) = MISCONFIGURED.iter().find(|(c, _)| *c == code) {
                let detail = ctx.err().message().map(|m| format!(": {m}")).unwrap_or_default();
                return Error::permanent(format!("{what}: {cause} ({code}{detail})"));
            }
            if status == 404 || NOT_FOUND_CODES.contains(&code) {
                Error::not_found(what)
            } else if status == 412 || CONFLICT_CODES.contains(&code) {
                Error::conflict(format!("{what}: {}", ctx.err().message().unwrap_or(code)))
            } else if status == 429 || status >= 500 || RETRYABLE_CODES.contains(&code) {
                Error::transient(Described::new(err, what))
            } else {
                Error::permanent(Described::new(err, what))
            }
        }
        _ => Error::permanent(Described::new(err, what)),
    }
}

/// An SDK error with its whole chain in the message: an `SdkError` alone displays as
/// "service error", which tells an operator nothing. The SDK error stays the source.
#[derive(Debug)]
struct Described {
    message: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Described {
    fn new(err: impl std::error::Error + Send + Sync + 'static, what: &str) -> Self {
        Self {
            message: format!("{what}: {}", DisplayErrorContext(&err)),
            source: Box::new(err),
        }
    }
}

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Described {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Cancellation reason codes of a DynamoDB transaction that mean "try again": contention
/// with another transaction, or throttling.
const RETRYABLE_CANCELLATION_CODES: &[&str] = &[
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

/// Maps the cancellation reasons of a `TransactionCanceledException` (one code per write,
/// in request order; `"None"` for writes that were fine) to the port's error:
/// - a failed condition is a [`Error::Conflict`] naming the first such write, 1-based
///   ("write 2 of 3: condition failed"), whatever else went wrong: it is definitive;
/// - otherwise contention or throttling is [`Error::Transient`];
/// - otherwise (validation, item collection size, ...) [`Error::Permanent`].
///
/// `None` when there are no reasons to go by; the caller then falls back to [`classify`].
pub fn transaction_canceled(codes: &[Option<&str>]) -> Option<Error> {
    if codes.is_empty() {
        return None;
    }
    let total = codes.len();
    if let Some(i) = codes.iter().position(|code| *code == Some("ConditionalCheckFailed")) {
        return Some(Error::conflict(format!("write {} of {total}: condition failed", i + 1)));
    }
    let failed: Vec<String> = codes
        .iter()
        .enumerate()
        .filter_map(|(i, code)| match code {
            Some("None") | None => None,
            Some(code) => Some(format!("write {} of {total}: {code}", i + 1)),
        })
        .collect();
    let summary = format!("transaction canceled: {}", failed.join(", "));
    if codes
        .iter()
        .flatten()
        .any(|code| RETRYABLE_CANCELLATION_CODES.contains(code))
    {
        Some(Error::transient(summary))
    } else {
        Some(Error::permanent(summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_condition_names_the_first_failing_write() {
        let err = transaction_canceled(&[
            Some("None"),
            Some("ConditionalCheckFailed"),
            Some("ConditionalCheckFailed"),
        ]);
        match err {
            Some(Error::Conflict { message, .. }) => {
                assert_eq!(message, "write 2 of 3: condition failed")
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        // A condition failure wins over contention on another write.
        let err = transaction_canceled(&[Some("TransactionConflict"), Some("ConditionalCheckFailed")]);
        assert!(matches!(err, Some(Error::Conflict { .. })), "{err:?}");
    }

    #[test]
    fn contention_is_transient_and_the_rest_permanent() {
        let err = transaction_canceled(&[Some("None"), Some("TransactionConflict")]).unwrap();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("write 2 of 2: TransactionConflict"), "{err}");
        let err = transaction_canceled(&[Some("ValidationError"), Some("None")]).unwrap();
        assert!(matches!(err, Error::Permanent(_)), "{err:?}");
        assert!(transaction_canceled(&[]).is_none());
    }
}
