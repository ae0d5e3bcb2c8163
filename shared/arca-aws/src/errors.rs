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
    ("InvalidToken", "the session token is not valid for the access key"),
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
    "ConditionalRequestConflict",
    "ConflictException",
];

/// Classifies an SDK error; `what` names the thing being accessed, for NotFound.
pub fn classify<E>(err: SdkError<E, HttpResponse>, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // A certificate nothing trusts is refused the same way on every try: it is the
    // destination's configuration, not the network.
    if let SdkError::DispatchFailure(_) = &err
        && let Some(cert) = refused_certificate(&err)
    {
        return Error::permanent(format!(
            "{what}: the endpoint's TLS certificate is not trusted ({}): fix with the \
             destination's caBundle (the CA that signed it) or skipTlsVerify",
            certificate_cause(cert)
        ));
    }
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
                Error::transient(Described::service(err, what))
            } else {
                Error::permanent(Described::service(err, what))
            }
        }
        _ => Error::permanent(Described::new(err, what)),
    }
}

/// The certificate refusal somewhere in `err`'s source chain: rustls's, however the HTTP
/// client wrapped it (the SDK's hyper client and reqwest both bury it in `io::Error`s, whose
/// `source()` skips their own payload, so each one's payload is searched too).
pub(crate) fn refused_certificate<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::CertificateError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
            return Some(cert);
        }
        if let Some(payload) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && let Some(cert) = refused_certificate(payload)
        {
            return Some(cert);
        }
        next = e.source();
    }
    None
}

/// Why a certificate was refused, in words (rustls's own text where it has one).
fn certificate_cause(cert: &rustls::CertificateError) -> String {
    match cert {
        rustls::CertificateError::UnknownIssuer => "signed by a CA that is not trusted".to_owned(),
        rustls::CertificateError::NotValidForName => "issued for another host name".to_owned(),
        rustls::CertificateError::Expired => "expired".to_owned(),
        other => other.to_string(),
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

    /// A service's answer in one line, its code and message ("InvalidVolume.NotFound: The
    /// volume 'vol-1' does not exist. (HTTP 400)"): the whole context (raw response,
    /// headers) stays the source, for whoever walks the chain.
    fn service<E>(err: SdkError<E, HttpResponse>, what: &str) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (code, message, status) = match &err {
            SdkError::ServiceError(ctx) => (
                ctx.err().code().map(str::to_string),
                ctx.err().message().map(str::to_string),
                ctx.raw().status().as_u16(),
            ),
            _ => (None, None, 0),
        };
        match code {
            Some(code) => Self {
                message: match message {
                    Some(m) => format!("{what}: {code}: {m} (HTTP {status})"),
                    None => format!("{what}: {code} (HTTP {status})"),
                },
                source: Box::new(err),
            },
            None => Self::new(err, what),
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
    fn a_refused_certificate_anywhere_in_the_chain_is_permanent_and_the_rest_of_dispatch_transient() {
        use aws_sdk_s3::operation::get_object::GetObjectError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        // As the SDK's hyper client nests it: io::Error(Other, io::Error(InvalidData, rustls)).
        let refused = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        let err = classify(
            SdkError::<GetObjectError, HttpResponse>::dispatch_failure(ConnectorError::io(Box::new(refused))),
            "object s3://b/k at https://s3.example",
        );
        assert!(matches!(err, Error::Permanent(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "permanent failure: object s3://b/k at https://s3.example: the endpoint's TLS certificate \
             is not trusted (signed by a CA that is not trusted): fix with the destination's caBundle \
             (the CA that signed it) or skipTlsVerify"
        );
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let err = classify(
            SdkError::<GetObjectError, HttpResponse>::dispatch_failure(ConnectorError::io(Box::new(reset))),
            "object s3://b/k",
        );
        assert!(err.is_retryable(), "{err:?}");
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

    #[test]
    fn a_service_refusal_is_one_line_with_its_code_and_message() {
        use aws_sdk_ec2::operation::create_snapshot::CreateSnapshotError;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let refusal = CreateSnapshotError::generic(
            ErrorMetadata::builder()
                .code("InvalidVolume.NotFound")
                .message("The volume 'vol-1' does not exist.")
                .build(),
        );
        let raw = HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from("<Response>...</Response>"),
        );
        let err = classify(SdkError::service_error(refusal, raw), "EBS volume");
        assert!(matches!(err, Error::Permanent(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "permanent failure: EBS volume: InvalidVolume.NotFound: The volume 'vol-1' does not exist. (HTTP 400)"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "the SDK error stays the source"
        );
    }

    #[test]
    fn a_bucket_in_another_region_is_a_permanent_misconfiguration() {
        use aws_sdk_s3::operation::put_object::PutObjectError;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        // What S3 answers a client signing for the wrong region (moto does not check).
        for (code, status) in [("AuthorizationHeaderMalformed", 400), ("PermanentRedirect", 301)] {
            let refusal = PutObjectError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("the region 'us-east-1' is wrong; expecting 'eu-west-1'")
                    .build(),
            );
            let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
            let err = classify(SdkError::service_error(refusal, raw), "object s3://b/k");
            assert!(matches!(err, Error::Permanent(_)), "{code}: {err:?}");
            let line = err.to_string();
            assert!(
                line.contains("object s3://b/k: the bucket is in another region") && line.contains(code),
                "{line}"
            );
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }
}
