//! Repository URLs: `file:///path` or `s3://bucket/prefix`.

use std::sync::Arc;

use anyhow::bail;
use arca_core::ports::ObjectStore;

pub async fn open(url: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            bail!("repository URL {url:?}: a file URL needs an absolute path (file:///path)");
        }
        return Ok(Arc::new(arca_embedded::LocalFsObjectStore::new(path)));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("repository URL {url:?}: no bucket");
        }
        let config = match std::env::var_os(arca_agent::volumes::mover::CREDENTIALS_FILE_ENV) {
            // A mover: the credentials its Secret mounts, read again as they near expiry
            // (the agent renews them while it runs).
            Some(path) if !path.is_empty() => {
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .credentials_provider(super::credentials::FileCredentials::new(path))
                    .load()
                    .await
            }
            _ => arca_aws::config::load().await,
        };
        // The destination's addressing and TLS trust, as the agent passed them to this mover.
        let client = arca_aws::s3_connection::S3Connection::from_env()
            .and_then(|c| c.client(&config))
            .map_err(|e| anyhow::anyhow!("repository URL {url:?}: {e}"))?;
        return Ok(Arc::new(
            arca_aws::S3ObjectStore::new(client, bucket, prefix.trim_end_matches('/'))
                .with_endpoint(config.endpoint_url())
                .with_object_lock(object_lock()?),
        ));
    }
    bail!("repository URL {url:?}: expected file:///path or s3://bucket/prefix")
}

/// The Object Lock a mover was given ([`arca_agent::volumes::mover::OBJECT_LOCK_ENV`]).
pub fn object_lock() -> anyhow::Result<Option<arca_core::ports::credentials::ObjectLockWrite>> {
    match std::env::var(arca_agent::volumes::mover::OBJECT_LOCK_ENV) {
        Ok(json) if !json.is_empty() => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}: {e}", arca_agent::volumes::mover::OBJECT_LOCK_ENV)),
        _ => Ok(None),
    }
}
