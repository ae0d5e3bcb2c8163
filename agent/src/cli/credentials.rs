//! The mover's S3 credentials: a file its Secret mounts (`mover::CredentialsFile`), read
//! again as they near expiry. The agent renews the Secret while the mover runs and the
//! kubelet refreshes the mounted file; this provider is how a long copy picks that up,
//! through the SDK's identity cache (which asks again once the expiry we report is near).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use arca_agent::volumes::mover::CredentialsFile;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};

/// Read again this long before the credentials expire: the agent writes renewed ones
/// earlier than that (its margin, 15 minutes by default), so they are there by then.
pub const REREAD_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Once within that margin and still given the same credentials (the renewal is late),
/// ask again this often. Longer than the SDK cache's 10 s buffer, so it does not ask on
/// every request.
const RECHECK: Duration = Duration::from_secs(30);
/// Read again at least this often, so renewed (or rotated long-term) keys are used soon.
const MAX_CACHE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug)]
pub struct FileCredentials {
    path: PathBuf,
}

impl FileCredentials {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileCredentials { path: path.into() }
    }

    async fn load(&self) -> Result<Credentials, CredentialsError> {
        let text = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
            CredentialsError::provider_error(format!("reading the credentials file {}: {e}", self.path.display()))
        })?;
        let file: CredentialsFile = serde_json::from_str(&text).map_err(|e| {
            CredentialsError::invalid_configuration(format!("the credentials file {}: {e}", self.path.display()))
        })?;
        let expiration = file.expiration.map(SystemTime::from);
        let until = cache_until(expiration, SystemTime::now()).map_err(|expired| {
            CredentialsError::provider_error(format!(
                "the credentials in {} expired at {} and were not renewed",
                self.path.display(),
                chrono::DateTime::<chrono::Utc>::from(expired).to_rfc3339()
            ))
        })?;
        Ok(Credentials::new(
            file.access_key_id,
            file.secret_access_key,
            file.session_token.filter(|t| !t.is_empty()),
            Some(until),
            "arca-mover-file",
        ))
    }
}

impl ProvideCredentials for FileCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}

/// The expiry to report for credentials that expire at `expiration` (`None`: long-term
/// keys), read at `now`: the moment the file is to be read again. Before the re-read
/// margin that is its start; within it, soon again (never after the real expiry); at most
/// [`MAX_CACHE`] away. `Err(expiration)` once expired: those would only be refused.
pub fn cache_until(expiration: Option<SystemTime>, now: SystemTime) -> Result<SystemTime, SystemTime> {
    let cap = now + MAX_CACHE;
    let Some(expiration) = expiration else {
        return Ok(cap);
    };
    if expiration <= now {
        return Err(expiration);
    }
    let reread = expiration.checked_sub(REREAD_BEFORE_EXPIRY).unwrap_or(now);
    let until = if reread > now + RECHECK {
        reread
    } else {
        (now + RECHECK).min(expiration)
    };
    Ok(until.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn fresh_credentials_are_read_again_at_the_start_of_the_margin_or_the_cap() {
        let now = t0();
        // An hour left: the cap (15 min) comes first.
        assert_eq!(cache_until(Some(now + 60 * MIN), now), Ok(now + MAX_CACHE));
        // 12 minutes left: read again at 7 (5 before expiry).
        assert_eq!(cache_until(Some(now + 12 * MIN), now), Ok(now + 7 * MIN));
        // Long-term keys: at the cap.
        assert_eq!(cache_until(None, now), Ok(now + MAX_CACHE));
    }

    #[test]
    fn within_the_margin_the_file_is_read_again_soon_but_never_past_expiry() {
        let now = t0();
        // 4 minutes left (the renewal has not arrived): again in 30 s.
        assert_eq!(cache_until(Some(now + 4 * MIN), now), Ok(now + RECHECK));
        // 5 min 10 s left: the margin starts within the recheck interval: 30 s as well.
        assert_eq!(
            cache_until(Some(now + 5 * MIN + Duration::from_secs(10)), now),
            Ok(now + RECHECK)
        );
        // 10 s left: until the expiry itself.
        let soon = now + Duration::from_secs(10);
        assert_eq!(cache_until(Some(soon), now), Ok(soon));
    }

    #[test]
    fn expired_credentials_are_an_error() {
        let now = t0();
        assert_eq!(cache_until(Some(now), now), Err(now));
        assert_eq!(cache_until(Some(now - MIN), now), Err(now - MIN));
    }

    #[tokio::test]
    async fn the_provider_reads_the_file_again_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        let write = |id: &str, expires: chrono::DateTime<chrono::Utc>| {
            let file = CredentialsFile {
                version: 1,
                access_key_id: id.into(),
                secret_access_key: "s".into(),
                session_token: Some("t".into()),
                expiration: Some(expires),
            };
            std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        };
        let provider = FileCredentials::new(&path);
        let in_an_hour = chrono::DateTime::<chrono::Utc>::from(SystemTime::now()) + chrono::Duration::hours(1);
        write("ASIA1", in_an_hour);
        let first = provider.provide_credentials().await.unwrap();
        assert_eq!(first.access_key_id(), "ASIA1");
        assert_eq!(first.session_token(), Some("t"));
        let until = first.expiry().unwrap();
        assert!(until <= SystemTime::now() + MAX_CACHE && until > SystemTime::now() + 14 * MIN);
        write("ASIA2", in_an_hour);
        assert_eq!(provider.provide_credentials().await.unwrap().access_key_id(), "ASIA2");
        write(
            "ASIA3",
            chrono::DateTime::<chrono::Utc>::from(SystemTime::now()) - chrono::Duration::minutes(1),
        );
        assert!(provider.provide_credentials().await.is_err());
    }
}
