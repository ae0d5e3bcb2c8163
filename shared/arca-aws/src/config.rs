//! Loading the shared SDK configuration.

use aws_config::{BehaviorVersion, SdkConfig};

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
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}
