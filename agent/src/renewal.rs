//! Vended destination credentials outlive no job: STS gives a Lambda that assumes the
//! storage role (role chaining) at most an hour, and a large backup takes longer. So the
//! agent's S3 client for a job is given [`RenewingCredentials`], which the SDK's identity
//! cache asks again whenever the credentials it holds are within [`RENEW_BEFORE`] of
//! expiring; they then ask the control plane for the job's access anew (the same grant,
//! fresh credentials), as long as the job is the agent's.

use std::sync::Mutex;
use std::time::Duration;

use arca_core::ids::JobId;
use arca_core::ports::credentials::TemporaryCredentials;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};

use crate::protocol::AgentClient;

/// How long before expiry credentials are replaced: longer than any single request to
/// the store takes, so no request starts with credentials that lapse under it.
pub const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

/// Where one job's fresh credentials come from.
#[derive(Clone, Debug)]
pub struct Renewal {
    client: AgentClient,
    job: JobId,
}

impl Renewal {
    pub fn new(client: AgentClient, job: JobId) -> Self {
        Renewal { client, job }
    }
}

/// The credentials provider of a job's S3 client: the credentials the job started with
/// while they are fresh, then the control plane's answer for the job.
#[derive(Debug)]
pub struct RenewingCredentials {
    first: Mutex<Option<TemporaryCredentials>>,
    renewal: Renewal,
}

impl RenewingCredentials {
    pub fn new(first: TemporaryCredentials, renewal: Renewal) -> Self {
        RenewingCredentials {
            first: Mutex::new(Some(first)),
            renewal,
        }
    }

    async fn current(&self) -> provider::Result {
        let first = self
            .first
            .lock()
            .map(|mut f| f.take())
            .unwrap_or_else(|p| p.into_inner().take());
        if let Some(c) = first.filter(|c| fresh(c, now())) {
            return Ok(sdk_credentials(&c, "arca-vended"));
        }
        let access = self.renewal.client.credentials(&self.renewal.job).await.map_err(|e| {
            CredentialsError::provider_error(format!("renewing job {}'s credentials: {e}", self.renewal.job))
        })?;
        let c = access.credentials.ok_or_else(|| {
            CredentialsError::provider_error(format!(
                "renewing job {}'s credentials: the control plane answered none",
                self.renewal.job
            ))
        })?;
        tracing::info!(job_id = %self.renewal.job, expires = %c.expiration, "destination credentials renewed");
        Ok(sdk_credentials(&c, "arca-renewed"))
    }
}

impl ProvideCredentials for RenewingCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.current())
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    std::time::SystemTime::now().into()
}

/// Whether `c` may still be handed out at `at`: more than [`RENEW_BEFORE`] left.
pub fn fresh(c: &TemporaryCredentials, at: chrono::DateTime<chrono::Utc>) -> bool {
    chrono::Duration::from_std(RENEW_BEFORE).is_ok_and(|margin| c.expiration - at > margin)
}

/// The SDK's form of `c`, with its expiry (so the identity cache knows when to ask again).
pub fn sdk_credentials(c: &TemporaryCredentials, source: &'static str) -> Credentials {
    Credentials::new(
        c.access_key_id.clone(),
        c.secret_access_key.clone(),
        crate::credentials_ref::session_token(c),
        Some(c.expiration.into()),
        source,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiring_in(minutes: i64) -> TemporaryCredentials {
        TemporaryCredentials {
            access_key_id: "ASIA1".into(),
            secret_access_key: "s".into(),
            session_token: "t".into(),
            expiration: now() + chrono::Duration::minutes(minutes),
        }
    }

    #[test]
    fn credentials_are_replaced_well_before_they_lapse() {
        let at = now();
        assert!(fresh(&expiring_in(60), at));
        assert!(fresh(&expiring_in(6), at));
        assert!(!fresh(&expiring_in(4), at), "within the margin");
        assert!(!fresh(&expiring_in(-1), at), "already lapsed");
    }
}
