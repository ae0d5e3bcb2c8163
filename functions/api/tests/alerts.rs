//! Alerts through the API on a redb store, delivered over real HTTP to a receiver of the
//! test's own (axum on 127.0.0.1) that verifies each signature with the secret the
//! channel's creation returned: a failed job is one signed delivery and its repeated
//! report sends nothing; a receiver answering 500 is retried on the backoff schedule and
//! the log shows it; an unreachable one is given up after the last attempt; a skipped
//! run alerts with its reason; silent agents alert once per silence; channels are
//! validated and admin-only, and email is refused where no email sender is wired; where
//! SES is (moto), a failed job is one email naming the job and its cause.

#![allow(clippy::unwrap_used)]

mod common;

use arca_core::model::agent::AgentState;
use arca_core::model::alert::{MAX_ATTEMPTS, verify_signature};
use arca_testenv::webhook::WebhookReceiver;
use axum::http::Method;
use chrono::{DateTime, Duration, Utc};
use common::{Api, Tenant};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

/// A webhook channel of the tenant's org to `url`: (id, signing secret).
async fn webhook(api: &Api, t: &Tenant, url: &str, events: Value) -> (String, String) {
    let reply = api
        .post(
            "/v1/alerts/channels",
            &t.admin,
            json!({ "name": "oncall", "kind": "webhook", "url": url, "events": events }),
        )
        .await
        .expect(201);
    let secret = reply.body["signingSecret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("arcawhsec_"), "{secret}");
    (reply.id(), secret)
}

/// Every delivery of the org (newest first) read with `query`.
async fn deliveries(api: &Api, t: &Tenant, query: &str) -> Vec<Value> {
    let page = api
        .get(&format!("/v1/alerts/deliveries?{query}"), &t.admin)
        .await
        .expect(200);
    page.body["items"].as_array().unwrap().clone()
}

/// A connected cluster with a backup definition whose job the agent takes and ends
/// FAILED with `reason`: (cluster, job, the completion body, token, session).
async fn failed_backup(api: &Api, t: &Tenant, reason: &str) -> (String, String, Value, String, String) {
    let d = api.destination(&t.admin, "d").await;
    let (cluster, token, session) = api.connected_cluster(&t.admin, "prod", Some(&d)).await;
    let backup = api.default_backup(t, &cluster, None).await;
    api.run(&t.admin, &backup).await.expect(201);
    let polled = api.poll(&token, &session).await.expect(200);
    let body = json!({ "leaseToken": polled.body["leaseToken"], "state": "FAILED", "reason": reason });
    let job = polled.job_id();
    api.agent_job(&token, &session, &job, "complete", body.clone())
        .await
        .expect(200);
    (cluster, job, body, token, session)
}

#[tokio::test]
async fn a_failed_job_is_one_signed_delivery_and_its_repeated_report_sends_nothing() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let receiver = WebhookReceiver::start(&[]).await;
    let (channel, secret) = webhook(&api, &t, &receiver.url, json!(["job.failed"])).await;
    let cause = "hook pg-dump failed: exit status 3";
    let (cluster, job, body, token, session) = failed_backup(&api, &t, cause).await;

    let got = receiver.got();
    assert_eq!(got.len(), 1, "one delivery: {got:?}");
    let r = &got[0];
    assert!(
        verify_signature(&secret, &r.header("arca-signature"), &r.body, now().timestamp()),
        "the signature verifies with the secret shown at creation: {}",
        r.header("arca-signature")
    );
    assert!(!verify_signature(
        "arcawhsec_other",
        &r.header("arca-signature"),
        &r.body,
        now().timestamp()
    ));
    let event = r.json();
    assert_eq!(event["type"], "job.failed");
    assert_eq!(event["jobId"], job.as_str());
    assert_eq!(event["clusterId"], cluster.as_str());
    assert_eq!(event["orgId"], t.org_id.as_str());
    assert_eq!(event["reason"], cause);
    assert_eq!(event["id"], format!("job.failed:{job}"));
    assert_eq!(r.header("arca-event-id"), format!("job.failed:{job}"));
    assert_eq!(r.header("content-type"), "application/json");

    // The agent's completion again (its answer was lost): nothing more is sent.
    api.agent_job(&token, &session, &job, "complete", body)
        .await
        .expect(200);
    assert_eq!(receiver.got().len(), 1, "a repeated report sends nothing");

    let log = deliveries(&api, &t, "").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "DELIVERED");
    assert_eq!(log[0]["attempts"], 1);
    assert_eq!(log[0]["lastStatus"], 204);
    assert_eq!(log[0]["channelId"], channel.as_str());
    assert_eq!(log[0]["event"]["jobId"], job.as_str());
    assert_eq!(r.header("arca-delivery-id"), log[0]["id"].as_str().unwrap());
}

/// The messages moto's SES accepted for `to` (its data endpoint, `ses` → `Message`).
async fn emails_to(endpoint: &str, to: &str) -> Vec<Value> {
    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["destinations"]["ToAddresses"] == json!([to]))
        .collect()
}

#[tokio::test]
async fn a_failed_job_with_an_email_channel_is_one_email_through_ses() {
    // A private moto: its data dump (`/moto-api/data.json`) holds only this test's mail;
    // the shared one's also holds every other test's state, which moto may fail to dump.
    let Some(env) = arca_testenv::private_moto() else {
        return;
    };
    let ses = aws_sdk_sesv2::Client::new(&env.sdk_config().await);
    let from = format!("{}@alerts.example.com", arca_testenv::unique("arca"));
    ses.create_email_identity().email_identity(&from).send().await.unwrap();
    let api = Api::new().with_email_sender(std::sync::Arc::new(arca_aws::SesEmailSender::new(ses, from.clone())));
    let t = api.signup("acme").await;
    let to = format!("{}@example.com", arca_testenv::unique("oncall"));
    let created = api
        .post(
            "/v1/alerts/channels",
            &t.admin,
            json!({ "name": "mail", "kind": "email", "recipients": [to], "events": ["job.failed"] }),
        )
        .await
        .expect(201);
    assert!(created.body.get("signingSecret").is_none(), "{}", created.text);
    assert_eq!(created.body["recipients"], json!([to]));

    let cause = "hook pg-dump failed: exit status 3";
    let (cluster, job, body, token, session) = failed_backup(&api, &t, cause).await;
    // The agent's completion again (its answer was lost): no second email.
    api.agent_job(&token, &session, &job, "complete", body)
        .await
        .expect(200);

    let sent = emails_to(&env.endpoint_url, &to).await;
    assert_eq!(sent.len(), 1, "one email: {sent:?}");
    let m = &sent[0];
    assert_eq!(m["source"], from.as_str());
    assert_eq!(m["subject"], format!("[Arca] K8S_BACKUP job {job} FAILED"));
    let text = m["body"].as_str().unwrap();
    for line in [
        "type: job.failed\n".to_owned(),
        format!("jobId: {job}\n"),
        format!("clusterId: {cluster}\n"),
        format!("reason: {cause}\n"),
        format!("org: {}\n", t.org_id),
    ] {
        assert!(text.contains(&line), "{line:?} in {text}");
    }
    assert!(!text.contains(&t.admin) && !text.contains("arcawhsec_"), "{text}");

    let log = deliveries(&api, &t, "").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["attempts"].as_u64()),
        (Some("DELIVERED"), Some(1))
    );
    assert_eq!(log[0]["channelId"], created.id().as_str());
}

#[tokio::test]
async fn a_receiver_that_fails_is_retried_with_backoff_and_an_unreachable_one_given_up() {
    let api = Api::new();
    let cp = api.state.control_plane.clone();
    let t = api.signup("acme").await;
    let receiver = WebhookReceiver::start(&[500]).await;
    let (channel, _) = webhook(&api, &t, &receiver.url, json!([])).await;
    // Nothing listens on port 9 of this machine: every attempt is refused.
    let (dead, _) = webhook(&api, &t, "http://127.0.0.1:9/hook", json!(["job.failed"])).await;
    let raised_at = now();
    let (_, job, ..) = failed_backup(&api, &t, "the destination refused the write").await;

    let log = deliveries(&api, &t, &format!("channelId={channel}")).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["lastStatus"].as_u64()),
        (Some("PENDING"), Some(500))
    );
    assert_eq!(log[0]["lastError"], "the receiver answered HTTP 500");
    let next: DateTime<Utc> = log[0]["nextAttemptAt"].as_str().unwrap().parse().unwrap();
    let wait = next - raised_at;
    assert!(
        wait >= Duration::seconds(59) && wait <= Duration::seconds(75),
        "the first retry a minute later: {wait}"
    );
    let refused = deliveries(&api, &t, &format!("channelId={dead}")).await;
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]["lastError"].as_str().unwrap().contains("sending failed"),
        "{}",
        refused[0]
    );

    // Not due yet: nothing is sent.
    let report = cp.deliver_due_alerts(now()).await.unwrap();
    assert_eq!(report.attempted, 0, "{report:?}");
    assert_eq!(receiver.got().len(), 1);

    // A minute on: both are due; the receiver now answers 204.
    let report = cp.deliver_due_alerts(now() + Duration::seconds(61)).await.unwrap();
    assert_eq!((report.attempted, report.delivered), (2, 1), "{report:?}");
    let got = receiver.got();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, got[1].body, "a retry sends the same event");
    assert_eq!(got[1].json()["jobId"], job.as_str());
    let log = deliveries(&api, &t, &format!("channelId={channel}")).await;
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["attempts"].as_u64()),
        (Some("DELIVERED"), Some(2))
    );

    // The unreachable one: retried at 1 min, 5 min, 30 min, 2 h, 6 h after each failure,
    // then FAILED for good.
    let mut at = now() + Duration::seconds(61);
    for _ in 2..MAX_ATTEMPTS {
        let d = &deliveries(&api, &t, &format!("channelId={dead}")).await[0];
        assert_eq!(d["status"], "PENDING", "{d}");
        at = d["nextAttemptAt"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
            .max(at)
            + Duration::seconds(1);
        let report = cp.deliver_due_alerts(at).await.unwrap();
        assert_eq!(report.attempted, 1, "{report:?}");
    }
    let d = &deliveries(&api, &t, "status=FAILED").await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["attempts"], MAX_ATTEMPTS);
    assert!(d[0].get("nextAttemptAt").is_none(), "{}", d[0]);
    let report = cp.deliver_due_alerts(at + Duration::days(1)).await.unwrap();
    assert_eq!(report.attempted, 0, "a FAILED delivery is not attempted again");
    assert_eq!(deliveries(&api, &t, "status=PENDING").await.len(), 0);
}

#[tokio::test]
async fn a_skipped_run_alerts_with_its_reason() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let receiver = WebhookReceiver::start(&[]).await;
    webhook(&api, &t, &receiver.url, json!(["job.skipped"])).await;
    // Registered, never connected: a scheduled run is SKIPPED.
    let (cluster, _) = api.cluster(&t.admin, "offline", None).await;
    let d = api.destination(&t.admin, "d").await;
    let backup = api.default_backup(&t, &cluster, Some(&d)).await;
    let job = api
        .state
        .control_plane
        .dispatch_scheduled(&arca_core::model::schedule::ScheduleInput {
            org_id: t.org_id.parse().unwrap(),
            definition_id: backup.clone(),
            rule: 0,
        })
        .await
        .unwrap();
    assert_eq!(job.state, arca_core::model::job::JobState::Skipped);
    let got = receiver.got();
    assert_eq!(got.len(), 1, "{got:?}");
    let event = got[0].json();
    assert_eq!(event["type"], "job.skipped");
    assert_eq!(event["jobId"], job.id.to_string());
    assert_eq!(event["definitionId"], backup.as_str());
    assert!(
        event["reason"].as_str().unwrap().starts_with("cluster not active"),
        "{event}"
    );
}

#[tokio::test]
async fn a_silent_agent_alerts_once_per_silence_and_the_test_route_sends_a_test_event() {
    let api = Api::new();
    let cp = api.state.control_plane.clone();
    let t = api.signup("acme").await;
    let receiver = WebhookReceiver::start(&[]).await;
    let (channel, secret) = webhook(&api, &t, &receiver.url, json!(["agent.disconnected"])).await;
    let (cluster, token, _) = api.connected_cluster(&t.admin, "prod", None).await;

    let report = cp.alert_sweep().await.unwrap();
    assert_eq!(report.disconnected, 0, "heard from a moment ago");

    // Its last heartbeat 31 minutes ago (the channel's default limit is 30).
    let org = t.org_id.parse().unwrap();
    let id = cluster.parse().unwrap();
    let mut state = cp.store().get::<AgentState>(&org, &id).await.unwrap();
    let v = state.version;
    state.last_heartbeat_at = Some(now() - Duration::minutes(31));
    cp.store().update(state, v).await.unwrap();
    let report = cp.alert_sweep().await.unwrap();
    assert_eq!(report.disconnected, 1, "{report:?}");
    let report = cp.alert_sweep().await.unwrap();
    assert_eq!(report.disconnected, 0, "once per silence");
    let got = receiver.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["type"], "agent.disconnected");
    assert_eq!(got[0].json()["clusterId"], cluster.as_str());

    // It comes back and goes silent again: a new silence, a new alert.
    api.activate(&token).await;
    let mut state = cp.store().get::<AgentState>(&org, &id).await.unwrap();
    let v = state.version;
    state.last_heartbeat_at = Some(now() - Duration::minutes(40));
    cp.store().update(state, v).await.unwrap();
    assert_eq!(cp.alert_sweep().await.unwrap().disconnected, 1);

    let tested = api
        .post(&format!("/v1/alerts/channels/{channel}/test"), &t.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "DELIVERED", "{}", tested.text);
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    let last = got.last().unwrap();
    assert_eq!(last.json()["type"], "test");
    assert!(verify_signature(
        &secret,
        &last.header("arca-signature"),
        &last.body,
        now().timestamp()
    ));
}

#[tokio::test]
async fn channels_are_validated_admin_only_and_never_show_their_secret_again() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let viewer = api.key(&t, "viewer").await;
    let body = json!({ "name": "oncall", "kind": "webhook", "url": "https://hooks.example.com/arca" });
    api.post("/v1/alerts/channels", &viewer, body.clone())
        .await
        .problem(403, "forbidden");
    api.get("/v1/alerts/channels", &viewer).await.problem(403, "forbidden");
    api.get("/v1/alerts/deliveries", &viewer).await.expect(200);

    let created = api.post("/v1/alerts/channels", &t.admin, body).await.expect(201);
    let secret = created.body["signingSecret"].as_str().unwrap().to_owned();
    let path = created.location.clone().unwrap();
    let read = api.get(&path, &t.admin).await.expect(200);
    let listed = api.get("/v1/alerts/channels", &t.admin).await.expect(200);
    for text in [&read.text, &listed.text] {
        assert!(!text.contains(&secret), "a read shows the secret: {text}");
        assert!(!text.contains("signingSecret"), "{text}");
    }
    assert_eq!(read.body["kind"], "webhook");
    assert_eq!(read.body["enabled"], true);
    assert_eq!(read.body["disconnectedAfterMinutes"], 30);

    // Email: no email sender in this deployment.
    api.post(
        "/v1/alerts/channels",
        &t.admin,
        json!({ "name": "mail", "kind": "email", "recipients": ["oncall@example.com"] }),
    )
    .await
    .problem(400, "email_needs_ses");
    for (bad, field) in [
        (json!({ "name": "x", "kind": "webhook", "url": "ftp://h/x" }), "url"),
        (json!({ "name": "x", "kind": "webhook" }), "url"),
        (
            json!({ "name": "", "kind": "webhook", "url": "https://h.example/x" }),
            "name",
        ),
        (
            json!({ "name": "x", "kind": "webhook", "url": "https://h.example/x", "disconnectedAfterMinutes": 1 }),
            "disconnectedAfterMinutes",
        ),
    ] {
        let reply = api
            .post("/v1/alerts/channels", &t.admin, bad.clone())
            .await
            .problem(400, "validation_failed");
        assert_eq!(reply.body["field"], field, "{bad}: {}", reply.text);
    }
    api.post(
        "/v1/alerts/channels",
        &t.admin,
        json!({ "name": "x", "kind": "webhook", "url": "https://h.example/x", "events": ["job.exploded"] }),
    )
    .await
    .expect(400);

    // PATCH: the kind stays; If-Match is required.
    let patch = async |etag: Option<&str>, body: Value| {
        api.request(Method::PATCH, &path, Some(&t.admin), etag, Some(body))
            .await
    };
    let etag = read.etag();
    patch(None, json!({ "enabled": false })).await.expect(428);
    patch(Some(&etag), json!({ "recipients": ["a@b.example"] }))
        .await
        .problem(400, "validation_failed");
    let patched = patch(Some(&etag), json!({ "enabled": false, "url": "https://h2.example/x" }))
        .await
        .expect(200);
    assert_eq!(
        (patched.body["enabled"].as_bool(), patched.body["url"].as_str()),
        (Some(false), Some("https://h2.example/x"))
    );
    patch(Some(&etag), json!({ "enabled": true })).await.expect(412);

    // At most 10 per org.
    for i in 1..10 {
        api.post(
            "/v1/alerts/channels",
            &t.admin,
            json!({ "name": format!("c{i}"), "kind": "webhook", "url": "https://h.example/x" }),
        )
        .await
        .expect(201);
    }
    let reply = api
        .post(
            "/v1/alerts/channels",
            &t.admin,
            json!({ "name": "c11", "kind": "webhook", "url": "https://h.example/x" }),
        )
        .await
        .problem(400, "validation_failed");
    assert_eq!(reply.body["field"], "channels");

    api.delete(&path, &t.admin, &patched.etag()).await.expect(204);
    api.get(&path, &t.admin).await.expect(404);
    // Another org cannot see it.
    let other = api.signup("other").await;
    assert_eq!(
        api.get("/v1/alerts/channels", &other.admin).await.expect(200).body["items"],
        json!([])
    );
}
