//! The agent's HTTP client for the Arca API's agent protocol (`/v1/agent/...`). The
//! agent only ever calls out; everything it does for the control plane goes through here.
//!
//! The cluster token is sent on every call and never logged (`Debug` hides it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_core::ids::JobId;
use arca_core::model::agent::{
    AgentJob, CompletionReport, ConnectRequest, Connected, LeaseRequest, ProgressReport, SESSION_HEADER,
};
use arca_core::model::cluster::Heartbeat;
use arca_core::model::job::Job;
use arca_core::ports::credentials::DestinationAccess;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What can go wrong talking to the API, in the terms the worker acts on.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A newer agent connected with this cluster's token: this one must stop.
    #[error("superseded: another agent connected with this cluster's token")]
    Superseded,
    /// The job is no longer leased to this agent (lapsed, redelivered, or ended).
    #[error("lease lost: {0}")]
    LeaseLost(String),
    #[error("the API refused the agent token (401): check the token in the arca-agent Secret")]
    Unauthenticated,
    /// Any other problem answer of the API.
    #[error("API answered {status} {code}: {detail}")]
    Api { status: u16, code: String, detail: String },
    /// The API could not be reached or answered something unreadable.
    #[error("transport: {}", with_causes(.0))]
    Transport(#[from] reqwest::Error),
}

/// `error: cause: cause`, as reqwest's own message ("error sending request for url")
/// leaves out why (refused, reset, closed before the answer, timed out).
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl ProtocolError {
    /// Worth retrying after a pause (the API or the network had a moment).
    pub fn is_transient(&self) -> bool {
        match self {
            ProtocolError::Transport(_) => true,
            ProtocolError::Api { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;

/// The agent protocol client of one cluster. Clones share the session.
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    token: String,
    session: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A poll waits at most 20 s on the server; the client allows that plus slack.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);
/// Tries of a request that got no answer, or an answer saying "try again" (see
/// [`AgentClient::call`]): with [`retry_pause`] between them, about 15 s in all, so a
/// restarting API or a moment of network trouble does not fail a job.
const SEND_ATTEMPTS: u32 = 7;

/// The pause before try `attempt + 1`: 250 ms doubling, at most 4 s.
fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(250 * 2u64.pow(attempt.saturating_sub(1).min(4))).min(Duration::from_secs(4))
}

/// Answers that say the API (or the gateway in front of it) could not take the request
/// now and nothing was done.
fn try_again_later(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

impl AgentClient {
    /// `base` is the API's URL (`https://arca.example.com`, no `/v1`).
    pub fn new(base: &str, token: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("arca-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(AgentClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            session: Arc::new(Mutex::new(None)),
        })
    }

    fn session(&self) -> Option<String> {
        self.session
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    async fn call<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<Option<T>> {
        let mut attempt = 1;
        let response = loop {
            let mut request = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(body);
            if let Some(session) = self.session() {
                request = request.header(SESSION_HEADER, session);
            }
            // A request that never got an answer (a pooled connection the server had
            // closed, a reset, a refused connect) or was turned away unprocessed is sent
            // again: every call of the protocol can be repeated. A timeout is not: the
            // server may still be working on it.
            let again = match request.send().await {
                Ok(r) if try_again_later(r.status()) && attempt < SEND_ATTEMPTS => r.status().to_string(),
                Ok(r) => break r,
                Err(e) if attempt < SEND_ATTEMPTS && !e.is_timeout() && (e.is_connect() || e.is_request()) => {
                    with_causes(&e)
                }
                Err(e) => return Err(e.into()),
            };
            tracing::debug!(path, attempt, cause = %again, "sending again");
            tokio::time::sleep(retry_pause(attempt)).await;
            attempt += 1;
        };
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if status.is_success() {
            return Ok(Some(response.json::<T>().await?));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ProtocolError::Unauthenticated);
        }
        let problem: serde_json::Value = response.json().await.unwrap_or_default();
        let code = problem["code"].as_str().unwrap_or_default().to_owned();
        let detail = problem["detail"].as_str().unwrap_or_default().to_owned();
        Err(match code.as_str() {
            "superseded" => ProtocolError::Superseded,
            "lease_lost" => ProtocolError::LeaseLost(detail),
            _ => ProtocolError::Api {
                status: status.as_u16(),
                code,
                detail,
            },
        })
    }

    async fn expect<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(path, body).await?.ok_or_else(|| ProtocolError::Api {
            status: 204,
            code: "no_content".to_owned(),
            detail: format!("{path} answered without a body"),
        })
    }

    /// Starts a session (superseding any other agent of this cluster) and keeps its id
    /// for the later calls.
    pub async fn connect(&self, agent_version: &str) -> Result<Connected> {
        // A connect never carries an old session.
        if let Ok(mut s) = self.session.lock() {
            *s = None;
        }
        let connected: Connected = self
            .expect(
                "/v1/agent/connect",
                &ConnectRequest {
                    agent_version: Some(agent_version.to_owned()),
                },
            )
            .await?;
        if let Ok(mut s) = self.session.lock() {
            *s = Some(connected.session_id.clone());
        }
        Ok(connected)
    }

    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<serde_json::Value> {
        self.expect("/v1/agent/heartbeat", heartbeat).await
    }

    /// Long-polls for one job; `None` when none came within the server's wait.
    pub async fn poll(&self) -> Result<Option<AgentJob>> {
        self.call("/v1/agent/poll", &serde_json::json!({})).await
    }

    pub async fn lease(&self, job: &JobId, lease_token: &str) -> Result<Job> {
        let body = LeaseRequest {
            lease_token: lease_token.to_owned(),
        };
        self.expect(&format!("/v1/agent/jobs/{job}/lease"), &body).await
    }

    pub async fn progress(&self, job: &JobId, report: &ProgressReport) -> Result<Job> {
        self.expect(&format!("/v1/agent/jobs/{job}/progress"), report).await
    }

    /// One batch of a restore's per-object results (stored by the control plane).
    pub async fn restore_results(
        &self,
        job: &JobId,
        batch: &arca_core::model::agent::RestoreResultsBatch,
    ) -> Result<()> {
        self.call::<_, serde_json::Value>(&format!("/v1/agent/jobs/{job}/results"), batch)
            .await
            .map(|_| ())
    }

    pub async fn complete(&self, job: &JobId, report: &CompletionReport) -> Result<Job> {
        self.expect(&format!("/v1/agent/jobs/{job}/complete"), report).await
    }

    pub async fn credentials(&self, job: &JobId) -> Result<DestinationAccess> {
        self.expect(&format!("/v1/agent/jobs/{job}/credentials"), &serde_json::json!({}))
            .await
    }

    /// EC2 snapshots of the backup job's EBS volumes, taken now (between its hooks).
    pub async fn ebs_snapshots(
        &self,
        job: &JobId,
        volumes: &[arca_core::model::cloud::ebs::EbsVolumeRef],
    ) -> Result<arca_core::model::cloud::ebs::EbsSnapshotsTaken> {
        let body = arca_core::model::cloud::ebs::EbsSnapshotsRequest {
            volumes: volumes.to_vec(),
        };
        self.expect(&format!("/v1/agent/jobs/{job}/ebs-snapshots"), &body).await
    }

    /// A new EBS volume from one of the restore job's snapshots.
    pub async fn ebs_volume(
        &self,
        job: &JobId,
        request: &arca_core::model::cloud::ebs::EbsVolumeRequest,
    ) -> Result<arca_core::model::cloud::ebs::EbsVolumeCreated> {
        self.expect(&format!("/v1/agent/jobs/{job}/ebs-volumes"), request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows_in_debug() {
        let c = AgentClient::new("http://127.0.0.1:1/", "arcagent_secret-value").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.contains("http://127.0.0.1:1"), "{shown}");
    }

    /// What failed underneath shows in the message, not only reqwest's summary.
    #[tokio::test]
    async fn a_transport_error_names_its_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = AgentClient::new(&format!("http://127.0.0.1:{port}"), "arcagent_t").unwrap();
        let error = client.heartbeat(&Heartbeat::default()).await.unwrap_err().to_string();
        assert!(error.starts_with("transport: error sending request"), "{error}");
        assert!(error.to_lowercase().contains("refused"), "{error}");
    }

    #[test]
    fn only_server_and_network_trouble_is_transient() {
        let api = |status| ProtocolError::Api {
            status,
            code: String::new(),
            detail: String::new(),
        };
        assert!(api(503).is_transient());
        assert!(!api(400).is_transient());
        assert!(!ProtocolError::Superseded.is_transient());
    }

    #[test]
    fn pauses_double_up_to_four_seconds_and_add_up_to_about_fifteen() {
        let pauses: Vec<Duration> = (1..SEND_ATTEMPTS).map(retry_pause).collect();
        assert_eq!(pauses[0], Duration::from_millis(250));
        assert_eq!(pauses[1], Duration::from_millis(500));
        assert_eq!(*pauses.last().unwrap(), Duration::from_secs(4));
        let total: Duration = pauses.iter().sum();
        assert!(
            (Duration::from_secs(10)..Duration::from_secs(20)).contains(&total),
            "{total:?}"
        );
    }

    /// A gateway that answers 503 twice (an API restarting behind it), then the API.
    #[tokio::test]
    async fn a_request_turned_away_unprocessed_is_sent_again() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut answered = 0;
            for status in ["503 Service Unavailable", "503 Service Unavailable", "200 OK"] {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !String::from_utf8_lossy(&seen).contains("\r\n\r\n{") {
                    let n = conn.read(&mut buf).await.unwrap();
                    assert!(n > 0, "closed early");
                    seen.extend_from_slice(&buf[..n]);
                }
                let body = r#"{"ok":true}"#;
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(answer.as_bytes()).await.unwrap();
                answered += 1;
            }
            answered
        });
        let client = AgentClient::new(&format!("http://127.0.0.1:{port}"), "arcagent_t").unwrap();
        let answer = client.heartbeat(&Heartbeat::default()).await.unwrap();
        assert_eq!(answer["ok"], true);
        assert_eq!(server.await.unwrap(), 3);
    }

    /// A server that drops the first connection unanswered (as one closing an idle
    /// pooled connection does), then answers: the call is sent again and succeeds.
    #[tokio::test]
    async fn a_request_that_got_no_answer_is_sent_again() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (first, _) = listener.accept().await.unwrap();
            drop(first);
            let (mut second, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut seen = Vec::new();
            // Headers and the small JSON body arrive together or shortly after.
            while !String::from_utf8_lossy(&seen).contains("\r\n\r\n{") {
                let n = second.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                seen.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"volumeId":"vol-1","availabilityZone":"us-east-1a"}"#;
            let answer = format!(
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            second.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&seen).into_owned()
        });
        let client = AgentClient::new(&format!("http://127.0.0.1:{port}"), "arcagent_t").unwrap();
        let request = arca_core::model::cloud::ebs::EbsVolumeRequest {
            snapshot_id: "snap-1".into(),
            availability_zone: "us-east-1a".into(),
        };
        let created = client.ebs_volume(&JobId::new(), &request).await.unwrap();
        assert_eq!(created.volume_id, "vol-1");
        let seen = server.await.unwrap();
        assert!(seen.contains("/ebs-volumes"), "{seen}");
    }
}
