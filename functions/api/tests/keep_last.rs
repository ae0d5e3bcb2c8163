//! keepLast in the retention sweep: the newest complete READY points of each (definition,
//! rule) outlive their expiry, however many newer points of other definitions the cluster
//! holds (the sweep reads a definition's points newest first through the cluster's index,
//! past the others, until it has enough).

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use arca_core::ids::{BackupDefinitionId, ClusterId, OrgId, RecoveryPointId};
use arca_core::model::recovery::{RecoveryPoint, RecoveryPointState};
use chrono::{DateTime, Duration, Utc};
use common::Api;
use serde_json::json;

struct Planted {
    definition: BackupDefinitionId,
    rule: u32,
    keep_last: Option<u32>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    partial: bool,
}

fn point(org: OrgId, cluster: ClusterId, p: &Planted) -> RecoveryPoint {
    RecoveryPoint {
        rule: Some(p.rule),
        keep_last: p.keep_last,
        id: RecoveryPointId::at(p.created_at.into()),
        org_id: org,
        cluster_id: cluster,
        partial: p.partial,
        resource_count: 1,
        version: 0,
        ..RecoveryPoint::fixture(p.definition, p.created_at, Some(p.expires_at))
    }
}

#[tokio::test]
async fn keep_last_keeps_the_newest_complete_points_of_each_rule() {
    let api = Api::new();
    let t = api.signup("keep-last").await;
    let (cluster, token) = api.cluster(&t.admin, "c", None).await;
    let session = api.agent_session(&token).await;
    api.agent(&token, "/v1/agent/heartbeat", Some(&session), json!({}))
        .await
        .expect(200);
    let store = api.state.control_plane.store();
    let org: OrgId = t.org_id.parse().unwrap();
    let cluster: ClusterId = cluster.parse().unwrap();
    let now = DateTime::<Utc>::from(std::time::SystemTime::now());
    let (hourly, daily, busy) = (
        BackupDefinitionId::new(),
        BackupDefinitionId::new(),
        BackupDefinitionId::new(),
    );
    let plant = async |p: Planted| store.create(point(org, cluster, &p)).await.unwrap().id;

    // `hourly`: six expired points, keepLast 2; the newest is partial, so it counts for
    // nothing.
    let mut hourly_points = Vec::new();
    for n in 0..6 {
        hourly_points.push(
            plant(Planted {
                definition: hourly,
                rule: 0,
                keep_last: Some(2),
                created_at: now - Duration::days(10) + Duration::hours(n),
                expires_at: now - Duration::days(1),
                partial: n == 5,
            })
            .await,
        );
    }
    // ... and a seventh, newer and not expired: it counts among the newest two, so only
    // one expired point is kept (a sweep that weighed the expired points alone would keep
    // two).
    let unexpired = plant(Planted {
        definition: hourly,
        rule: 0,
        keep_last: Some(2),
        created_at: now - Duration::days(10) + Duration::hours(6),
        expires_at: now + Duration::days(30),
        partial: false,
    })
    .await;
    // `daily`: two expired points of another rule, keepLast 1.
    let mut daily_points = Vec::new();
    for n in 0..2 {
        daily_points.push(
            plant(Planted {
                definition: daily,
                rule: 1,
                keep_last: Some(1),
                created_at: now - Duration::days(9) + Duration::hours(n),
                expires_at: now - Duration::days(1),
                partial: false,
            })
            .await,
        );
    }
    // `busy`: many newer, unexpired points of a third definition on the same cluster,
    // which the keepLast reads must page past.
    for n in 0..250 {
        plant(Planted {
            definition: busy,
            rule: 0,
            keep_last: Some(3),
            created_at: now - Duration::days(5) + Duration::minutes(n),
            expires_at: now + Duration::days(30),
            partial: false,
        })
        .await;
    }

    let report = api.state.control_plane.retention_sweep().await.unwrap();
    assert_eq!(report.examined, 8, "{report:?}");
    assert_eq!(report.kept, 2, "{report:?}");
    assert_eq!(report.deletion_jobs.len(), 6, "{report:?}");
    let state = async |id: &RecoveryPointId| store.get::<RecoveryPoint>(&org, id).await.unwrap().state;
    for (n, id) in hourly_points.iter().enumerate() {
        let expected = if n == 4 {
            RecoveryPointState::Ready
        } else {
            RecoveryPointState::Deleting
        };
        assert_eq!(state(id).await, expected, "hourly point {n}");
    }
    assert_eq!(state(&unexpired).await, RecoveryPointState::Ready);
    assert_eq!(state(&daily_points[0]).await, RecoveryPointState::Deleting);
    assert_eq!(
        state(&daily_points[1]).await,
        RecoveryPointState::Ready,
        "the newest daily"
    );

    // Kept points stay kept at the next sweep, and nothing is issued twice.
    let again = api.state.control_plane.retention_sweep().await.unwrap();
    assert_eq!(again.kept, 8, "the kept two and the six already DELETING: {again:?}");
    assert!(again.deletion_jobs.is_empty(), "{again:?}");
}
