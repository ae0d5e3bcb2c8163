//! The retention sweep end to end on the embedded adapters with a fixed clock: expired
//! points get DELETE_BACKUP jobs, locked ones and the newest `keepLast` stay, and a
//! point disappears only when the agent completes its deletion.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use arca_core::control_plane::{ControlPlane, ControlPlaneConfig, SignupRequest};
use arca_core::model::agent::{CompletionReport, ConnectRequest};
use arca_core::model::auth::Principal;
use arca_core::model::backup::{BackupDefinitionSpec, PvMode, Selection};
use arca_core::model::cluster::Heartbeat;
use arca_core::model::destination::{DestinationSpec, DestinationTarget};
use arca_core::model::job::{JobState, JobType};
use arca_core::model::plan::PlanLimits;
use arca_core::model::policy::{PolicySpec, ScheduleSpec};
use arca_core::model::recovery::{RecoveryPoint, RecoveryPointState};
use arca_core::ports::FixedClock;
use arca_core::store::Store;
use arca_core::testing::{register, stored_point};
use chrono::{DateTime, Utc};

const NOW: u64 = 1_893_456_000; // 2030-01-01T00:00:00Z

fn days_ago(d: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from(UNIX_EPOCH + Duration::from_secs(NOW)) - chrono::Duration::days(d)
}

#[tokio::test]
async fn expired_points_are_deleted_through_the_agent_and_locked_and_keep_last_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let items = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).unwrap());
    let config = ControlPlaneConfig {
        signup_open: true,
        poll_wait: Duration::from_millis(100),
        ..Default::default()
    };
    let cp = ControlPlane::new(
        Store::new(items),
        PlanLimits::default(),
        Arc::new(FixedClock(UNIX_EPOCH + Duration::from_secs(NOW))),
        config,
    )
    .with_queue(Arc::new(arca_embedded::EmbeddedQueue::new(3)));

    let org = cp
        .create_org(SignupRequest {
            org_name: "ret".into(),
            admin_key_name: None,
        })
        .await
        .unwrap();
    let p = Principal::system(org.org.id);
    let dest = cp
        .create_destination(
            &p,
            DestinationSpec {
                object_lock: None,
                customer_key: None,
                name: "d".into(),
                target: DestinationTarget::S3 {
                    endpoint: None,
                    bucket: "b-bucket".into(),
                    region: "eu-west-1".into(),
                    prefix: String::new(),
                    credentials_ref: None,
                    skip_tls_verify: false,
                    path_style: None,
                    ca_bundle: None,
                },
            },
        )
        .await
        .unwrap();
    let policy = cp
        .create_policy(
            &p,
            PolicySpec {
                name: "daily".into(),
                timezone: "UTC".into(),
                schedules: vec![ScheduleSpec {
                    cron: "0 3 * * *".into(),
                    retain_days: 7,
                    keep_last: Some(1),
                }],
                suspended: false,
            },
        )
        .await
        .unwrap();
    let reg = register(&cp, &p, "c").await;
    let def = cp
        .create_backup_definition(
            &p,
            BackupDefinitionSpec {
                name: "b".into(),
                description: String::new(),
                cluster_id: reg.cluster.id,
                selection: Selection {
                    full_cluster: true,
                    ..Default::default()
                },
                pv_mode: PvMode::None,
                delete_snapshot_after_copy: false,
                policy_id: Some(policy.id),
                destination_id: Some(dest.id),
                paused: false,
                tags: Default::default(),
                hooks: Vec::new(),
                verification: None,
            },
        )
        .await
        .unwrap()
        .definition;

    let store = cp.store();
    let plant = |created: i64, expires: Option<i64>, locked: bool| RecoveryPoint {
        definition_id: def.id,
        locked,
        rule: Some(0),
        keep_last: Some(1),
        resource_count: 1,
        pv_count: 0,
        snapshot_bytes: 0,
        created_at: days_ago(created),
        updated_at: days_ago(created),
        ..stored_point(p.org_id, reg.cluster.id, None, expires.map(days_ago))
    };
    let oldest = store.create(plant(20, Some(13), false)).await.unwrap();
    let older = store.create(plant(10, Some(3), false)).await.unwrap();
    let locked = store.create(plant(15, Some(8), true)).await.unwrap();
    // The newest point has expired too, but keepLast 1 holds it.
    let newest = store.create(plant(9, Some(2), false)).await.unwrap();
    let fresh_unexpired = plant(0, Some(-7), false);
    let fresh = store
        .create(RecoveryPoint {
            rule: Some(1),
            ..fresh_unexpired
        })
        .await
        .unwrap();

    let report = arca_fn_retention::sweep(&cp).await.unwrap();
    assert_eq!(report["deletionJobs"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["kept"], 2, "locked + keepLast: {report}");
    for rp in [&oldest, &older] {
        let got: RecoveryPoint = store.get(&p.org_id, &rp.id).await.unwrap();
        assert_eq!(got.state, RecoveryPointState::Deleting);
    }
    for rp in [&locked, &newest, &fresh] {
        let got: RecoveryPoint = store.get(&p.org_id, &rp.id).await.unwrap();
        assert_eq!(got.state, RecoveryPointState::Ready, "{:?} stays", rp.id);
    }
    // A second sweep issues nothing new: the points are already DELETING.
    let again = arca_fn_retention::sweep(&cp).await.unwrap();
    assert_eq!(again["deletionJobs"].as_array().unwrap().len(), 0, "{again}");

    // The agent takes both deletion jobs; one completes, one fails.
    let agent = cp.authenticate_agent(&reg.agent_token).await.unwrap();
    let session = cp
        .agent_connect(&agent, ConnectRequest::default())
        .await
        .unwrap()
        .session_id;
    cp.agent_heartbeat(&agent, &session, Heartbeat::default())
        .await
        .unwrap();
    let first = cp.agent_poll(&agent, &session).await.unwrap().unwrap();
    let second = cp.agent_poll(&agent, &session).await.unwrap().unwrap();
    assert!(cp.agent_poll(&agent, &session).await.unwrap().is_none());
    for j in [&first, &second] {
        assert_eq!(j.job.job_type, JobType::DeleteBackup);
        assert!(j.recovery_point.is_some(), "the agent is told which point to delete");
    }
    let done = |job: &arca_core::model::agent::AgentJob, state| CompletionReport {
        lease_token: job.lease_token.clone(),
        state,
        reason: None,
        counters: None,
        progress: None,
        backup: None,
        maintenance: None,
        verification: None,
    };
    cp.agent_complete(&agent, &session, &first.job.id, done(&first, JobState::Completed))
        .await
        .unwrap();
    cp.agent_complete(&agent, &session, &second.job.id, done(&second, JobState::Failed))
        .await
        .unwrap();
    let deleted = first.job.recovery_point_id.unwrap();
    let failed = second.job.recovery_point_id.unwrap();
    assert!(
        store
            .find::<RecoveryPoint>(&p.org_id, &deleted)
            .await
            .unwrap()
            .is_none(),
        "a completed deletion removes the point"
    );
    let back: RecoveryPoint = store.get(&p.org_id, &failed).await.unwrap();
    assert_eq!(
        back.state,
        RecoveryPointState::Ready,
        "a failed deletion is retried by the next sweep"
    );
    let retry = arca_fn_retention::sweep(&cp).await.unwrap();
    assert_eq!(retry["deletionJobs"].as_array().unwrap().len(), 1, "{retry}");
}
