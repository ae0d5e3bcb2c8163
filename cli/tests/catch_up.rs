//! Single-machine mode catches up schedules that fired while the server was down: a daily
//! 03:00 backup whose server was stopped for two days runs once at the next start, and a
//! restart without a missed fire time runs nothing early.

use std::time::Duration;

use arca_cli::server::{ServerOptions, WATERMARK_FILE, start};
use arca_core::control_plane::ControlPlane;
use arca_core::control_plane::{JobFilter, SignupRequest};
use arca_core::ids::BackupDefinitionId;
use arca_core::model::auth::Principal;
use arca_core::model::job::JobTrigger;
use arca_core::store::page::PageRequest;
use serde_json::json;

/// Scheduled runs of the definition so far.
async fn scheduled(cp: &ControlPlane, p: &Principal, def: BackupDefinitionId) -> usize {
    cp.list_jobs(
        p,
        &JobFilter {
            definition_id: Some(def),
            ..Default::default()
        },
        &PageRequest::after(None, 50),
    )
    .await
    .expect("jobs")
    .items
    .into_iter()
    .filter(|j| j.trigger == JobTrigger::Scheduled)
    .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_backup_missed_while_down_runs_once_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let options = || ServerOptions::new(data.clone(), "127.0.0.1:0".parse().expect("addr"));

    let server = start(options()).await.expect("start");
    let cp = server.control_plane.clone();
    let signed = cp
        .signup(SignupRequest {
            org_name: "catch-up".into(),
            admin_key_name: None,
        })
        .await
        .expect("signup");
    let p = cp.authenticate(&signed.admin_key.secret).await.expect("auth");
    let dest = cp
        .create_destination(
            &p,
            serde_json::from_value(
                json!({"name": "local", "target": {"kind": "LOCAL_FILESYSTEM", "path": "/tmp/arca-catch-up"}}),
            )
            .expect("spec"),
        )
        .await
        .expect("destination");
    let cluster = cp
        .register_cluster(&p, serde_json::from_value(json!({"name": "laptop"})).expect("spec"))
        .await
        .expect("cluster")
        .cluster;
    let policy = cp
        .create_policy(
            &p,
            serde_json::from_value(json!({"name": "nightly", "schedules": [{"cron": "0 3 * * *", "retainDays": 7}]}))
                .expect("spec"),
        )
        .await
        .expect("policy");
    let def = cp
        .create_backup_definition(
            &p,
            serde_json::from_value(json!({
                "name": "nightly", "clusterId": cluster.id, "selection": {"fullCluster": true},
                "policyId": policy.id, "destinationId": dest.id,
            }))
            .expect("spec"),
        )
        .await
        .expect("definition")
        .definition;
    // The loop has evaluated the schedules at least once: the watermark exists.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(data.join(WATERMARK_FILE).exists());
    drop(cp);
    server.stop().await.expect("stop");

    // Down for two days (as far as the watermark says): 03:00 passed at least once.
    let two_days_ago = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()) - chrono::Duration::days(2);
    std::fs::write(data.join(WATERMARK_FILE), two_days_ago.to_rfc3339()).expect("watermark");
    let server = start(options()).await.expect("restart");
    assert_eq!(server.recovered.caught_up_schedules, 1);
    let cp = server.control_plane.clone();
    let mut runs = 0;
    for _ in 0..50 {
        runs = scheduled(&cp, &p, def.id).await;
        if runs > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(runs, 1, "two missed nights make one run");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(scheduled(&cp, &p, def.id).await, 1, "and only one");
    drop(cp);
    server.stop().await.expect("stop");

    // Restarted at once: nothing was missed since the last evaluation.
    let server = start(options()).await.expect("restart");
    assert_eq!(server.recovered.caught_up_schedules, 0);
    server.stop().await.expect("stop");

    // A damaged watermark stops start-up with a clear cause instead of guessing.
    std::fs::write(data.join(WATERMARK_FILE), "yesterday").expect("watermark");
    let err = start(options()).await.err().expect("refused");
    assert!(format!("{err:#}").contains("RFC 3339"), "{err:#}");
}
