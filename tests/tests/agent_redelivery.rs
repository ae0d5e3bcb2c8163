//! A job whose lease lapses is redelivered; after `maxReceives` deliveries its message is
//! dead-lettered and the next dispatch (or retention) run marks it FAILED with "lease
//! lapsed N times", freeing its definition so the next run is not SKIPPED.
//!
//! End to end through the API router and the agent protocol, with a 1 s lease and 2
//! deliveries at most: on the embedded queue, and on SQS (moto) with its RedrivePolicy.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use arca_api::AppState;
use arca_core::control_plane::ControlPlaneConfig;
use arca_core::ports::queue::Queue;
use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};
use tower::ServiceExt;

struct World {
    router: axum::Router,
    state: AppState,
}

impl World {
    fn new(queue: Arc<dyn Queue>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let items = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).unwrap());
        // The store file outlives the test's use of it (the directory is removed at exit).
        std::mem::forget(dir);
        let clock: Arc<dyn arca_core::ports::Clock> = Arc::new(arca_core::ports::SystemClock);
        let state = AppState::with_ports(
            items,
            queue,
            Arc::new(arca_embedded::EmbeddedScheduler::new(clock)),
            Default::default(),
            ControlPlaneConfig {
                signup_open: true,
                lease: Duration::from_secs(1),
                poll_wait: Duration::from_secs(3),
                ..Default::default()
            },
        );
        World {
            router: arca_api::router(state.clone()),
            state,
        }
    }

    /// A request with a bearer (API key or agent token) and, for agents, a session.
    async fn call(&self, method: Method, path: &str, bearer: &str, session: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(s) = session {
            request = request.header(arca_core::model::agent::SESSION_HEADER, s);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: Method, path: &str, bearer: &str, session: Option<&str>, body: Value) -> Value {
        let (status, v) = self.call(method.clone(), path, bearer, session, body).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
        v
    }
}

async fn lapsed_leases_end_in_failed_and_free_the_definition(queue: Arc<dyn Queue>) {
    let w = World::new(queue);
    let (status, signup) = w
        .call(
            Method::POST,
            "/v1/signup",
            "none",
            None,
            json!({ "orgName": "redelivery" }),
        )
        .await;
    assert_eq!(status, 201, "{signup}");
    let key = signup["adminKey"]["secret"].as_str().unwrap().to_owned();
    let org_id = signup["org"]["id"].as_str().unwrap().to_owned();
    let policy = signup["defaultPolicy"]["id"].as_str().unwrap().to_owned();
    let dest = w
        .ok(
            Method::POST,
            "/v1/destinations",
            &key,
            None,
            json!({ "name": "d", "target": { "kind": "S3", "bucket": "arca-backups", "region": "eu-west-1" } }),
        )
        .await;
    let cluster = w
        .ok(
            Method::POST,
            "/v1/clusters",
            &key,
            None,
            json!({ "name": "c", "defaultDestinationId": dest["id"] }),
        )
        .await;
    let token = cluster["agentToken"].as_str().unwrap().to_owned();
    let def = w
        .ok(
            Method::POST,
            "/v1/backups",
            &key,
            None,
            json!({ "name": "b", "clusterId": cluster["id"], "selection": { "fullCluster": true }, "policyId": policy }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The agent connects and heartbeats (the cluster is ACTIVE), then a run is queued.
    let session = w.ok(Method::POST, "/v1/agent/connect", &token, None, json!({})).await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    w.ok(Method::POST, "/v1/agent/heartbeat", &token, Some(&session), json!({}))
        .await;
    let job = w
        .ok(Method::POST, &format!("/v1/backups/{def}/run"), &key, None, json!({}))
        .await;
    assert_eq!(job["state"], "PENDING", "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();

    // Delivery 1: the agent takes the job and never extends its lease.
    let first = w
        .ok(Method::POST, "/v1/agent/poll", &token, Some(&session), json!({}))
        .await;
    assert_eq!(first["job"]["id"], job_id.as_str());
    assert_eq!(first["delivery"], 1);
    assert_eq!(first["job"]["state"], "RUNNING");

    // Delivery 2, once the 1 s lease lapsed (the poll waits for it).
    let second = w
        .ok(Method::POST, "/v1/agent/poll", &token, Some(&session), json!({}))
        .await;
    assert_eq!(second["job"]["id"], job_id.as_str(), "{second}");
    assert_eq!(second["delivery"], 2);
    let activity = second["job"]["activity"].to_string();
    assert!(
        activity.contains("handed out again after a lapsed lease (delivery 2)"),
        "{activity}"
    );

    // It lapses again: after 2 deliveries the message is dead-lettered, not handed out.
    let (status, body) = w
        .call(Method::POST, "/v1/agent/poll", &token, Some(&session), json!({}))
        .await;
    assert_eq!(status, 204, "{body}");
    let running = w
        .ok(Method::GET, &format!("/v1/jobs/{job_id}"), &key, None, Value::Null)
        .await;
    assert_eq!(running["state"], "RUNNING", "nothing has drained the dead letters yet");

    // The next fired schedule drains first (job FAILED, definition freed), then runs.
    let outcome = arca_fn_dispatch::on_schedule(
        &w.state.control_plane,
        json!({ "orgId": org_id, "definitionId": def, "rule": 0 }),
    )
    .await
    .unwrap();
    assert_eq!(outcome["state"], "PENDING", "not SKIPPED as already running: {outcome}");
    assert_ne!(outcome["jobId"], job_id.as_str());
    let failed = w
        .ok(Method::GET, &format!("/v1/jobs/{job_id}"), &key, None, Value::Null)
        .await;
    assert_eq!(failed["state"], "FAILED", "{failed}");
    assert!(
        failed["reason"].as_str().unwrap().starts_with("lease lapsed 2 times"),
        "{failed}"
    );

    // The late agent finds its lease gone.
    let (status, body) = w
        .call(
            Method::POST,
            &format!("/v1/agent/jobs/{job_id}/complete"),
            &token,
            Some(&session),
            json!({ "leaseToken": second["leaseToken"], "state": "COMPLETED" }),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("lease_lost")), "{body}");

    // A later drain (retention's) finds nothing more to do.
    let swept = arca_fn_retention::sweep(&w.state.control_plane).await.unwrap();
    assert_eq!(swept["deadLetters"], 0, "{swept}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_queue() {
    lapsed_leases_end_in_failed_and_free_the_definition(Arc::new(arca_embedded::EmbeddedQueue::new(2))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqs_on_moto() {
    let Some(env) = arca_testenv::aws() else {
        return;
    };
    let client = aws_sdk_sqs::Client::new(&env.sdk_config().await);
    let queue = arca_aws::SqsQueue::new(
        client.clone(),
        arca_aws::SqsQueueConfig {
            name_prefix: arca_testenv::unique("arca-redeliver"),
            max_receives: 2,
        },
    )
    .unwrap();
    let dead_letters = queue.dead_letter_queue_name();
    lapsed_leases_end_in_failed_and_free_the_definition(Arc::new(queue)).await;
    // The test's own dead-letter queue (the adapter never deletes the shared one).
    let url = client.get_queue_url().queue_name(dead_letters).send().await.unwrap();
    client
        .delete_queue()
        .queue_url(url.queue_url().unwrap())
        .send()
        .await
        .unwrap();
}
