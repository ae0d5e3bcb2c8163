//! Vended credentials renewed for long jobs: the agent's provider hands out the job's first
//! credentials while they are fresh, and asks the real API (on a loopback port, its STS
//! vendor on moto) for new ones once they near expiry; a store opened with it writes to
//! moto's S3 after the renewal. Once the job is no longer the agent's, renewal is refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use arca_agent::protocol::AgentClient;
use arca_agent::renewal::{RENEW_BEFORE, Renewal, RenewingCredentials};
use arca_core::control_plane::ControlPlaneConfig;
use arca_core::ids::JobId;
use aws_credential_types::provider::ProvideCredentials;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vended_credentials_are_renewed_from_the_control_plane_before_they_lapse() {
    let Some(aws) = arca_testenv::aws() else { return };
    let sdk = aws.sdk_config().await;
    let bucket = arca_testenv::unique("arca-renew").to_lowercase();
    let admin_s3 = arca_aws::config::s3_client(&sdk);
    admin_s3.create_bucket().bucket(&bucket).send().await.unwrap();

    // The API with managed storage on moto's STS.
    let dir = tempfile::tempdir().unwrap();
    let config = ControlPlaneConfig {
        signup_open: true,
        poll_wait: Duration::from_secs(1),
        archive_keyring: common::fresh_keyring(),
        ..Default::default()
    };
    let mut state = common::embedded_state(dir.path(), config);
    let managed = arca_aws::wiring::ManagedStorage {
        bucket: bucket.clone(),
        role_arn: "arn:aws:iam::123456789012:role/arca-managed-storage".into(),
        region: Some("us-east-1".into()),
        prefix: "managed".into(),
        kms_key_arn: None,
        endpoint: Some(aws.endpoint_url.clone()),
        session: Duration::from_secs(900),
    };
    state.control_plane = state
        .control_plane
        .with_credential_vendor(Arc::new(managed.vendor(&sdk).unwrap()));

    // An org, its managed destination, a cluster and a job leased by the cluster's agent.
    let admin = common::serve_and_sign_up(state, &arca_testenv::unique("renew")).await;
    let cluster = admin
        .register_cluster_a(json!({ "name": "managed", "target": { "kind": "ARCA_MANAGED" } }))
        .await;
    let def = admin.post(
        "/v1/backups",
        json!({ "name": "ns", "clusterId": cluster["id"], "pvMode": "none", "selection": { "namespaces": ["default"] } }),
    )
    .await;
    let agent = AgentClient::new(&admin.base, cluster["agentToken"].as_str().unwrap()).unwrap();
    agent.connect("test").await.unwrap();
    agent.heartbeat(&Default::default()).await.unwrap();
    admin
        .post(&format!("/v1/backups/{}/run", def["id"].as_str().unwrap()), json!({}))
        .await;
    let mut leased = None;
    for _ in 0..20 {
        leased = agent.poll().await.unwrap();
        if leased.is_some() {
            break;
        }
    }
    let leased = leased.expect("the run-now job");
    let job: JobId = leased.job.id;

    // Fresh credentials are handed out as they are, without asking anyone.
    let access = agent.credentials(&job).await.unwrap();
    let first = access.credentials.clone().unwrap();
    let renewal = Renewal::new(agent.clone(), job);
    let fresh = RenewingCredentials::new(first.clone(), renewal.clone())
        .provide_credentials()
        .await
        .unwrap();
    assert_eq!(fresh.access_key_id(), first.access_key_id);

    // Credentials about to lapse are replaced by new ones from the control plane.
    let mut lapsing = first.clone();
    lapsing.expiration = now() + chrono::Duration::seconds(30);
    let renewed = RenewingCredentials::new(lapsing.clone(), renewal.clone())
        .provide_credentials()
        .await
        .unwrap();
    assert_ne!(
        renewed.access_key_id(),
        first.access_key_id,
        "new credentials were vended"
    );
    let left = renewed
        .expiry()
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > RENEW_BEFORE, "the renewed credentials are fresh: {left:?} left");

    // A store opened with lapsing credentials renews before its first request and writes.
    let mut lapsing_access = access.clone();
    lapsing_access.credentials = Some(lapsing);
    let store = arca_agent::volumes::repo::open_store_at(&lapsing_access, &access.cluster_prefix, Some(&renewal))
        .await
        .unwrap();
    store
        .put("renewed", bytes::Bytes::from_static(b"written after renewal"))
        .await
        .unwrap();
    let got = admin_s3
        .get_object()
        .bucket(&bucket)
        .key(format!("{}renewed", access.cluster_prefix))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"written after renewal"
    );

    // Once the job has ended it is no longer the agent's: no more credentials for it.
    let report = arca_core::model::agent::CompletionReport {
        lease_token: leased.lease_token.clone(),
        state: arca_core::model::job::JobState::Failed,
        reason: Some("the test ends it".into()),
        counters: None,
        progress: None,
        backup: None,
        maintenance: None,
        verification: None,
    };
    agent.complete(&job, &report).await.unwrap();
    let refused = RenewingCredentials::new(first_lapsed(&first), renewal)
        .provide_credentials()
        .await
        .unwrap_err();
    assert!(format!("{refused:?}").contains("renewing job"), "{refused:?}");
}

fn first_lapsed(
    c: &arca_core::ports::credentials::TemporaryCredentials,
) -> arca_core::ports::credentials::TemporaryCredentials {
    let mut c = c.clone();
    c.expiration = now() - chrono::Duration::seconds(1);
    c
}

fn now() -> chrono::DateTime<chrono::Utc> {
    std::time::SystemTime::now().into()
}
