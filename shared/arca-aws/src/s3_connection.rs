//! How a client reaches an S3 bucket beyond the SDK's defaults: the addressing style and
//! the TLS trust of an S3-compatible store (a private CA, or no check at all for a test
//! store with `skipTlsVerify`). The agent opens its destination with it, and hands the same
//! settings to its mover Pods as environment variables ([`S3Connection::env`]), which the
//! mover reads back ([`S3Connection::from_env`]).
//!
//! The SDK's own HTTP client has no switch for skipping certificate checks, so a custom
//! trust goes through the SDK's HTTP client traits over reqwest, which has both.

use std::collections::BTreeMap;

use std::sync::Arc;

use arca_core::model::destination::DestinationTarget;
use arca_core::ports::credentials::DestinationAccess;
use arca_core::ports::{DestinationOpener, ObjectStore};
use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// The mover's environment variables for an [`S3Connection`].
pub const ENV_PATH_STYLE: &str = "ARCA_S3_PATH_STYLE";
pub const ENV_CA_BUNDLE: &str = "ARCA_S3_CA_BUNDLE";
pub const ENV_SKIP_TLS_VERIFY: &str = "ARCA_S3_SKIP_TLS_VERIFY";

/// A bucket's addressing and TLS trust (a destination's `pathStyle`, `caBundle`,
/// `skipTlsVerify`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Connection {
    /// `None`: path style exactly when the SDK config has a custom endpoint.
    pub path_style: Option<bool>,
    /// PEM certificates trusted besides the system's roots.
    pub ca_bundle: Option<String>,
    /// Accept any certificate.
    pub skip_tls_verify: bool,
}

impl S3Connection {
    /// As environment variables (only those that differ from the default).
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        if let Some(p) = self.path_style {
            env.insert(ENV_PATH_STYLE.to_string(), p.to_string());
        }
        if let Some(pem) = &self.ca_bundle {
            env.insert(ENV_CA_BUNDLE.to_string(), pem.clone());
        }
        if self.skip_tls_verify {
            env.insert(ENV_SKIP_TLS_VERIFY.to_string(), "true".to_string());
        }
        env
    }

    /// Read back from `lookup` (the process environment: [`S3Connection::from_env`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let flag = |name: &str| -> Result<Option<bool>, String> {
            match lookup(name).as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some("true") => Ok(Some(true)),
                Some("false") => Ok(Some(false)),
                Some(other) => Err(format!("{name}={other:?}: expected true or false")),
            }
        };
        Ok(S3Connection {
            path_style: flag(ENV_PATH_STYLE)?,
            ca_bundle: lookup(ENV_CA_BUNDLE).filter(|s| !s.trim().is_empty()),
            skip_tls_verify: flag(ENV_SKIP_TLS_VERIFY)?.unwrap_or(false),
        })
    }

    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// An S3 destination's addressing and trust (`pathStyle`, `caBundle`,
    /// `skipTlsVerify`); `None` for other kinds.
    pub fn of(target: &DestinationTarget) -> Option<Self> {
        match target {
            DestinationTarget::S3 {
                path_style,
                ca_bundle,
                skip_tls_verify,
                ..
            } => Some(S3Connection {
                path_style: *path_style,
                ca_bundle: ca_bundle.clone(),
                skip_tls_verify: *skip_tls_verify,
            }),
            _ => None,
        }
    }

    /// An S3 client for `config` with this addressing and trust.
    pub fn client(&self, config: &SdkConfig) -> Result<aws_sdk_s3::Client, String> {
        let path_style = self.path_style.unwrap_or(config.endpoint_url().is_some());
        let mut builder = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .retry_config(crate::config::s3_retry_config())
            .retry_classifier(crate::config::RefusedCertificateNotRetried);
        if self.ca_bundle.is_some() || self.skip_tls_verify {
            builder = builder.http_client(ReqwestClient::new(self)?);
        }
        Ok(aws_sdk_s3::Client::from_conf(builder.build()))
    }
}

/// An S3 destination's store rooted at `prefix` (`""`: the bucket's root), in its region,
/// at its endpoint, with its addressing and trust. The credentials are `loader`'s: the
/// caller chooses them (vended, a Secret's, or its own identity when it sets none).
pub async fn open_s3_destination(
    target: &DestinationTarget,
    prefix: &str,
    loader: aws_config::ConfigLoader,
) -> Result<crate::S3ObjectStore, String> {
    let DestinationTarget::S3 {
        endpoint,
        bucket,
        region,
        ..
    } = target
    else {
        return Err("not an S3 destination".to_string());
    };
    let mut loader = loader.region(aws_config::Region::new(region.clone()));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    let client = S3Connection::of(target)
        .unwrap_or_default()
        .client(&config)
        .map_err(|e| format!("destination bucket {bucket}: {e}"))?;
    Ok(crate::S3ObjectStore::new(client, bucket.clone(), prefix.trim_matches('/')).with_endpoint(endpoint.as_deref()))
}

/// Opens S3 destinations at an access's cluster prefix with the access's vended
/// credentials, else the process's own identity (the default chain): the control plane's
/// purges of Arca-managed storage, and `arca destinations purge` in a user's bucket.
#[derive(Clone, Copy, Debug, Default)]
pub struct S3DestinationOpener;

#[async_trait::async_trait]
impl DestinationOpener for S3DestinationOpener {
    async fn open(&self, access: &DestinationAccess) -> arca_core::Result<Arc<dyn ObjectStore>> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(c) = &access.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                (!c.session_token.is_empty()).then(|| c.session_token.clone()),
                Some(c.expiration.into()),
                "arca-vended",
            ));
        }
        let store = open_s3_destination(&access.target, &access.cluster_prefix, loader)
            .await
            .map_err(arca_core::Error::permanent)?;
        Ok(Arc::new(store))
    }
}

/// The SDK's [`HttpClient`] over a reqwest client with this connection's trust.
#[derive(Clone, Debug)]
struct ReqwestClient {
    client: reqwest::Client,
}

impl ReqwestClient {
    fn new(conn: &S3Connection) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = &conn.ca_bundle {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("the destination's caBundle: {e}"))?;
            if certs.is_empty() {
                return Err("the destination's caBundle holds no certificate".into());
            }
            builder = builder.tls_certs_merge(certs);
        }
        if conn.skip_tls_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| format!("an HTTP client for the destination: {e}"))?;
        Ok(ReqwestClient { client })
    }
}

impl HttpClient for ReqwestClient {
    // The SDK applies its own operation and attempt timeouts around each call.
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for ReqwestClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let request = request.try_into_http1x().map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, reqwest::Body::wrap(body)))
                .map_err(|e| ConnectorError::user(e.into()))?;
            let response = client.execute(request).await.map_err(connector_error)?;
            let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
            HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from_body_1_x(body)))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Timeouts and connection failures are transient to the SDK's retries (but for a refused
/// certificate: [`crate::config::RefusedCertificateNotRetried`]); the rest is not.
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_travel_through_the_environment_unchanged() {
        for conn in [
            S3Connection::default(),
            S3Connection {
                path_style: Some(false),
                ca_bundle: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
                skip_tls_verify: true,
            },
            S3Connection {
                path_style: Some(true),
                ..Default::default()
            },
        ] {
            let env = conn.env();
            let back = S3Connection::from_lookup(|k| env.get(k).cloned()).unwrap();
            assert_eq!(back, conn);
        }
    }

    #[test]
    fn a_bad_flag_is_refused_by_name() {
        let err = S3Connection::from_lookup(|k| (k == ENV_SKIP_TLS_VERIFY).then(|| "yes".to_string())).unwrap_err();
        assert!(err.contains("ARCA_S3_SKIP_TLS_VERIFY"), "{err}");
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        let conn = S3Connection {
            ca_bundle: Some("not a certificate".into()),
            ..Default::default()
        };
        let err = ReqwestClient::new(&conn).unwrap_err();
        assert!(err.contains("caBundle"), "{err}");
    }
}
