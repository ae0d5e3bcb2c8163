//! Loading the shared SDK configuration, and the one place S3 clients get their retries.

use std::time::Duration;

use aws_config::retry::{RetryConfig, RetryMode};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};

/// Attempts per S3 call (the first one included). Throttling (`SlowDown`, 503), 5xx,
/// timeouts and connection failures are retried; other 4xx (`AccessDenied`,
/// `NoSuchBucket`, ...) are not.
pub const S3_MAX_ATTEMPTS: u32 = 8;
/// First backoff after a throttling answer; each retry doubles it (full jitter), up to
/// [`S3_MAX_BACKOFF`]. Other transient errors start at the SDK's 50 ms. With 8 attempts a
/// call waits at most about 1+2+4+8+16+20+20 s = 71 s before giving up.
pub const S3_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const S3_MAX_BACKOFF: Duration = Duration::from_secs(20);

/// The retries of every S3 client Arca builds ([`s3_client`] and
/// [`crate::s3_connection::S3Connection::client`]): the SDK's standard mode (exponential
/// backoff with jitter, and its retry quota, which stops retry storms when a store is down)
/// with more attempts than the SDK's default of 3, since a backup makes thousands of calls
/// and one that fails after three throttled tries fails the whole backup.
pub fn s3_retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_retry_mode(RetryMode::Standard)
        .with_max_attempts(S3_MAX_ATTEMPTS)
        .with_initial_backoff(S3_INITIAL_BACKOFF)
        .with_max_backoff(S3_MAX_BACKOFF)
}

/// Keeps the SDK from retrying a refused TLS certificate: its standard classifiers take
/// any connection failure for a passing one, so a destination behind a CA nothing trusts
/// would be tried [`S3_MAX_ATTEMPTS`] times (about a minute) before failing with the same
/// answer. Installed by every S3 client Arca builds, beside [`s3_retry_config`].
#[derive(Debug)]
pub(crate) struct RefusedCertificateNotRetried;

impl ClassifyRetry for RefusedCertificateNotRetried {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(err))
                if err
                    .as_connector_error()
                    .is_some_and(|c| crate::errors::refused_certificate(c).is_some()) =>
            {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "RefusedCertificateNotRetried"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// The SDK configuration from the standard sources (environment, profile, IMDS/Lambda
/// role). `AWS_ENDPOINT_URL` is honoured by the SDK itself, which is how tests and
/// S3-compatible stores point every client at another endpoint.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// An S3 client for `config`. Path-style addressing is used whenever a custom endpoint
/// is configured: S3-compatible stores and emulators rarely serve virtual-host buckets
/// (a destination can say otherwise: [`crate::s3_connection::S3Connection`]).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = config.endpoint_url().is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .retry_config(s3_retry_config())
        .retry_classifier(RefusedCertificateNotRetried)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_clients_get_the_retry_settings() {
        let client = s3_client(&SdkConfig::builder().behavior_version(BehaviorVersion::latest()).build());
        let retry = client
            .config()
            .retry_config()
            .cloned()
            .unwrap_or_else(RetryConfig::disabled);
        assert_eq!(retry.max_attempts(), S3_MAX_ATTEMPTS);
        assert_eq!(retry.mode(), RetryMode::Standard);
        assert_eq!(retry.initial_backoff(), S3_INITIAL_BACKOFF);
    }
}
