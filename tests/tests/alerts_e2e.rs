//! End to end (issue #18, alerts): the real API router on a loopback port, a real agent
//! worker with the real resource runner against cluster a's kube-apiserver, and two
//! webhook receivers of the test's own (axum on 127.0.0.1). A backup whose destination
//! the agent cannot write (a directory under /proc) fails for that reason, and produces
//! exactly one signed delivery to each channel, carrying the job's id and the cause; the
//! receiver that answers 500 first gets the same event again when the retry is due, and
//! the delivery log shows both.

#![allow(clippy::unwrap_used)]

use arca_core::control_plane::ControlPlaneConfig;
use arca_core::model::alert::verify_signature;
use arca_e2e::harness::Harness;
use arca_testenv::webhook::WebhookReceiver;
use serde_json::{Value, json};

fn unix_now() -> i64 {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()).timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backup_produces_one_signed_webhook_delivery_with_its_job_and_cause() {
    let Some(a) = arca_testenv::cluster_a().await else {
        return;
    };
    let mut h = Harness::start(ControlPlaneConfig::default()).await;
    let ok = WebhookReceiver::start(&[]).await;
    let flaky = WebhookReceiver::start(&[500]).await;
    let mut secrets = Vec::new();
    for (name, url) in [("oncall", &ok.url), ("flaky", &flaky.url)] {
        let created = h
            .user
            .post(
                "/v1/alerts/channels",
                json!({ "name": name, "kind": "webhook", "url": url, "events": ["job.failed"] }),
            )
            .await;
        secrets.push(created["signingSecret"].as_str().unwrap().to_owned());
    }
    let flaky_channel = h.user.get("/v1/alerts/channels").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "flaky")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Nobody can create a directory under /proc, root included: the backup fails there.
    let dest = h
        .user
        .post(
            "/v1/destinations",
            json!({ "name": "unwritable", "target": { "kind": "LOCAL_FILESYSTEM",
                    "path": format!("/proc/{}", arca_testenv::unique("arca-alerts")) } }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cluster = h
        .agent("cluster-a", &a.client, json!({ "defaultDestinationId": dest }))
        .await;
    let ns = arca_testenv::unique("alerts");
    arca_e2e::create_namespace(&a.client, &ns).await.unwrap();
    let def = h.user.namespace_backup("nightly", &cluster, &ns).await;
    let job = h
        .user
        .post(
            &format!("/v1/backups/{def}/run"),
            json!({ "retention": { "retainDays": 1 } }),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let ended = h.user.wait_job(&job_id).await;
    assert_eq!(ended["state"], "FAILED", "{ended}");
    let cause = ended["reason"].as_str().unwrap().to_owned();
    // The agent's own words: its archive storage (the destination) refused the write.
    assert!(cause.contains("storage"), "the cause is the destination's: {cause}");

    // Exactly one signed delivery, verified with the secret shown at creation.
    let got = ok.wait_for(1).await;
    assert_eq!(got.len(), 1, "one delivery: {got:?}");
    let (signature, body) = (&got[0].header("arca-signature"), &got[0].body);
    assert!(
        verify_signature(&secrets[0], signature, body, unix_now()),
        "signature {signature} verifies"
    );
    assert!(
        !verify_signature(&secrets[1], signature, body, unix_now()),
        "another channel's secret does not"
    );
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "job.failed", "{event}");
    assert_eq!(event["jobId"], job_id.as_str());
    assert_eq!(event["clusterId"], cluster.as_str());
    assert_eq!(event["definitionId"], def.as_str());
    assert_eq!(event["reason"], cause.as_str());

    // The flaky receiver answered 500: the delivery waits for its retry a minute on.
    assert_eq!(flaky.wait_for(1).await.len(), 1);
    let log = h
        .user
        .get(&format!("/v1/alerts/deliveries?channelId={flaky_channel}"))
        .await;
    let pending = &log["items"][0];
    assert_eq!(
        (pending["status"].as_str(), pending["lastStatus"].as_u64()),
        (Some("PENDING"), Some(500)),
        "{log}"
    );
    let retry_at: chrono::DateTime<chrono::Utc> = pending["nextAttemptAt"].as_str().unwrap().parse().unwrap();
    let early =
        h.cp.deliver_due_alerts(retry_at - chrono::Duration::seconds(30))
            .await
            .unwrap();
    assert_eq!(early.attempted, 0, "not before its time");
    let due =
        h.cp.deliver_due_alerts(retry_at + chrono::Duration::seconds(1))
            .await
            .unwrap();
    assert_eq!((due.attempted, due.delivered), (1, 1), "{due:?}");
    let tries = flaky.wait_for(2).await;
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[0].body, tries[1].body, "the retry carries the same event");
    let retry = &tries[1];
    assert!(verify_signature(
        &secrets[1],
        &retry.header("arca-signature"),
        &retry.body,
        unix_now()
    ));
    let log = h.user.get("/v1/alerts/deliveries?status=DELIVERED").await;
    let delivered = log["items"].as_array().unwrap();
    assert_eq!(delivered.len(), 2, "{log}");
    let attempts: Vec<u64> = delivered.iter().map(|d| d["attempts"].as_u64().unwrap()).collect();
    assert!(attempts.contains(&1) && attempts.contains(&2), "{attempts:?}");
    assert!(delivered.iter().all(|d| d["event"]["jobId"] == job_id.as_str()));
    assert_eq!(ok.got().len(), 1, "still one delivery to the healthy receiver");

    arca_e2e::delete_namespace(&a.client, &ns).await;
}
