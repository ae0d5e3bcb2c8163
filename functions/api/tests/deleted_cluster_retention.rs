//! Recovery points of a deleted cluster still expire, and their data is deleted: by the
//! agent of another ACTIVE cluster of the org, with the destination's access for that
//! point; with no active agent they wait, listed, and are tried again at every sweep.
//! Their repositories are then collected by a REPOSITORY_MAINTENANCE job, also run by
//! that other agent in the deleted cluster's prefix, whose result is reported per
//! destination.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use arca_core::model::maintenance::{RepositoryKey, RepositoryUpkeep};
use arca_core::model::recovery::{RecoveryPoint, RecoveryPointState};
use common::Api;
use serde_json::json;

#[tokio::test]
async fn a_deleted_clusters_expired_points_are_deleted_by_another_agent() {
    let api = Api::new();
    // The definition and the cluster go; the point stays, then expires.
    let Gone {
        t,
        dest,
        gone,
        other,
        other_token,
        points,
    } = gone_cluster(&api, "gone-cluster", 1).await;
    let rp = points[0].clone();
    let cp = &api.state.control_plane;
    let store = cp.store();
    let org: arca_core::ids::OrgId = t.org_id.parse().unwrap();
    let rp_id: arca_core::ids::RecoveryPointId = rp.parse().unwrap();

    // No agent of the org is active: the point waits, listed.
    let report = cp.retention_sweep().await.unwrap();
    assert_eq!(report.awaiting_direct_deletion, vec![rp_id], "{report:?}");
    assert!(report.deletion_jobs.is_empty(), "{report:?}");

    // Another cluster's agent is: it gets the deletion, with the point's destination.
    let other_session = api.agent_session(&other_token).await;
    api.agent(&other_token, "/v1/agent/heartbeat", Some(&other_session), json!({}))
        .await
        .expect(200);
    let report = cp.retention_sweep().await.unwrap();
    assert!(report.awaiting_direct_deletion.is_empty(), "{report:?}");
    assert_eq!(report.deletion_jobs.len(), 1, "{report:?}");
    let polled = api.poll(&other_token, &other_session).await.expect(200);
    assert_eq!(polled.body["job"]["type"], "DELETE_BACKUP", "{}", polled.text);
    assert_eq!(polled.body["job"]["clusterId"], other.as_str());
    assert_eq!(polled.body["recoveryPoint"]["id"], rp.as_str());
    assert_eq!(polled.body["recoveryPoint"]["clusterId"], gone.as_str());
    assert!(
        polled
            .text
            .contains("is deleted: this cluster's agent deletes its data"),
        "{}",
        polled.text
    );
    let access = api
        .credentials(&other_token, &other_session, &polled.job_id())
        .await
        .expect(200);
    assert_eq!(access.body["destinationId"], dest.as_str(), "{}", access.text);
    api.complete(&other_token, &other_session, &polled, json!({}))
        .await
        .expect(200);
    assert!(
        store.find::<RecoveryPoint>(&org, &rp_id).await.unwrap().is_none(),
        "the point is gone with its data"
    );

    // Its repositories (the deleted cluster's, in that destination) are to be collected:
    // not at once, so that one sweep's deletions make one run.
    let key = RepositoryKey {
        destination_id: dest.parse().unwrap(),
        cluster_id: gone.parse().unwrap(),
    };
    let mut upkeep = store.get::<RepositoryUpkeep>(&org, &key).await.unwrap();
    assert!(upkeep.due_at.is_some() && upkeep.dirty_since.is_some(), "{upkeep:?}");
    assert!(cp.maintenance_sweep().await.unwrap().jobs.is_empty(), "not due yet");
    let version = upkeep.version;
    upkeep.dirty_since = Some(chrono::DateTime::UNIX_EPOCH);
    upkeep.due_at = Some(chrono::DateTime::UNIX_EPOCH);
    store.update(upkeep, version).await.unwrap();

    // Due: the other cluster's agent runs it, in the deleted cluster's prefix.
    let sweep = cp.maintenance_sweep().await.unwrap();
    assert_eq!(sweep.jobs.len(), 1, "{sweep:?}");
    let polled = api.poll(&other_token, &other_session).await.expect(200);
    assert_eq!(polled.body["job"]["type"], "REPOSITORY_MAINTENANCE", "{}", polled.text);
    assert_eq!(polled.body["job"]["clusterId"], other.as_str());
    assert_eq!(
        polled.body["job"]["maintenance"]["repository"]["clusterId"],
        gone.as_str()
    );
    assert_eq!(polled.body["job"]["maintenance"]["graceSeconds"], 86_400);
    let job = polled.job_id();
    let access = api.credentials(&other_token, &other_session, &job).await.expect(200);
    assert_eq!(access.body["destinationId"], dest.as_str(), "{}", access.text);
    let prefix = access.body["clusterPrefix"].as_str().unwrap();
    assert!(prefix.ends_with(&format!("/{gone}/")), "{prefix}");
    assert!(
        cp.maintenance_sweep().await.unwrap().jobs.is_empty(),
        "one run at a time"
    );

    // It condemned data: the next run comes after the grace period.
    api.complete(
        &other_token,
        &other_session,
        &polled,
        json!({ "maintenance": { "bytesFreed": 1234, "packsDeleted": 2, "markersPending": 1 } }),
    )
    .await
    .expect(200);
    let seen = api
        .get(&format!("/v1/destinations/{dest}/maintenance"), &t.admin)
        .await
        .expect(200);
    assert_eq!(seen.body["bytesFreedTotal"], 1234, "{}", seen.text);
    let repo = &seen.body["repositories"][0];
    assert_eq!(repo["repository"]["clusterId"], gone.as_str(), "{}", seen.text);
    assert_eq!(repo["markersPending"], 1, "{}", seen.text);
    assert_eq!(repo["lastJobId"], job.as_str(), "{}", seen.text);
    let due: chrono::DateTime<chrono::Utc> = repo["dueAt"].as_str().unwrap().parse().unwrap();
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    assert!(due > now + chrono::Duration::hours(23), "after the grace period: {due}");
    assert!(repo["jobId"].is_null(), "{}", seen.text);
    // Another org sees none of it.
    let stranger = api.signup("stranger").await;
    api.get(&format!("/v1/destinations/{dest}/maintenance"), &stranger.admin)
        .await
        .expect(404);
}

/// With no agent of the org left, a deleted cluster's expired points wait, their
/// repository says so with the command that deletes them, and an admin's purge does:
/// refused while a point there is not due (unless included), then the points become
/// DELETING, the caller gets the cluster prefix, and completing deletes the points and
/// the repository's upkeep.
#[tokio::test]
async fn with_no_agent_left_an_admin_purges_a_deleted_clusters_data() {
    let api = Api::new();
    // The first point expired; the second is not due for days.
    let Gone {
        t,
        dest,
        gone,
        other: live,
        points,
        ..
    } = gone_cluster(&api, "purge", 2).await;
    let cp = &api.state.control_plane;
    let store = cp.store();
    let org: arca_core::ids::OrgId = t.org_id.parse().unwrap();
    let first: arca_core::ids::RecoveryPointId = points[0].parse().unwrap();

    // No agent is ACTIVE (the live cluster never connected): the repository says so.
    let report = cp.retention_sweep().await.unwrap();
    assert_eq!(report.awaiting_direct_deletion, vec![first], "{report:?}");
    let seen = api
        .get(&format!("/v1/destinations/{dest}/maintenance"), &t.admin)
        .await
        .expect(200);
    let repo = &seen.body["repositories"][0];
    assert_eq!(repo["repository"]["clusterId"], gone.as_str(), "{}", seen.text);
    assert_eq!(repo["awaitingAgent"]["expiredPoints"], 1, "{}", seen.text);
    assert_eq!(
        repo["awaitingAgent"]["action"],
        format!("arca destinations purge {dest} --cluster {gone}").as_str(),
        "{}",
        seen.text
    );

    // Refused: a live cluster (its agent deletes), a point not due, no purge begun,
    // a viewer, another org.
    let purge = |cluster: &str| format!("/v1/destinations/{dest}/repositories/{cluster}/purge");
    let refused = api
        .post(&purge(&live), &t.admin, json!({}))
        .await
        .problem(409, "purge_not_possible");
    assert!(refused.text.contains("exists: its agent deletes"), "{}", refused.text);
    let refused = api
        .post(&purge(&gone), &t.admin, json!({}))
        .await
        .problem(409, "purge_not_possible");
    assert!(
        refused.text.contains("1 recovery point(s) not due for deletion"),
        "{}",
        refused.text
    );
    api.post(&format!("{}/complete", purge(&gone)), &t.admin, json!({}))
        .await
        .problem(409, "purge_not_possible");
    let viewer = api.key(&t, "viewer").await;
    api.post(&purge(&gone), &viewer, json!({ "includeUnexpired": true }))
        .await
        .expect(403);
    let stranger = api.signup("stranger").await;
    api.post(&purge(&gone), &stranger.admin, json!({ "includeUnexpired": true }))
        .await
        .expect(404);
    api.post(&purge(&gone), &t.admin, json!({ "includeUnexpired": "yes" }))
        .await
        .expect(400);
    // (A deleted cluster's points are not shown to users: the store tells.)
    let state = |id: &String| {
        let id: arca_core::ids::RecoveryPointId = id.parse().unwrap();
        async move { store.find::<RecoveryPoint>(&org, &id).await.unwrap().map(|rp| rp.state) }
    };
    for id in &points {
        assert_eq!(
            state(id).await,
            Some(RecoveryPointState::Ready),
            "a refused purge changes nothing"
        );
    }

    // Begun: both points DELETING, the caller gets the prefix to empty.
    let grant = api
        .post(&purge(&gone), &t.admin, json!({ "includeUnexpired": true }))
        .await
        .expect(200);
    assert_eq!(
        grant.body["recoveryPoints"].as_array().unwrap().len(),
        2,
        "{}",
        grant.text
    );
    let prefix = grant.body["access"]["clusterPrefix"].as_str().unwrap();
    assert_eq!(prefix, format!("{}/{gone}/", t.org_id), "{}", grant.text);
    assert!(grant.body["access"].get("archiveKey").is_none(), "{}", grant.text);
    for id in &points {
        assert_eq!(state(id).await, Some(RecoveryPointState::Deleting));
    }
    // Begun twice (a CLI that died after the first): the same answer.
    let again = api.post(&purge(&gone), &t.admin, json!({})).await.expect(200);
    assert_eq!(again.body["recoveryPoints"], grant.body["recoveryPoints"]);
    // No maintenance job works on it meanwhile.
    let key = RepositoryKey {
        destination_id: dest.parse().unwrap(),
        cluster_id: gone.parse().unwrap(),
    };
    let mut upkeep = store.get::<RepositoryUpkeep>(&org, &key).await.unwrap();
    let version = upkeep.version;
    upkeep.due_at = Some(chrono::DateTime::UNIX_EPOCH);
    store.update(upkeep, version).await.unwrap();
    assert!(cp.maintenance_sweep().await.unwrap().jobs.is_empty());

    // Completed: the points and the repository's upkeep are gone.
    let done = api
        .post(&format!("{}/complete", purge(&gone)), &t.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(
        done.body["recoveryPointsDeleted"].as_array().unwrap().len(),
        2,
        "{}",
        done.text
    );
    for id in &points {
        assert_eq!(state(id).await, None, "deleted");
    }
    assert!(store.find::<RepositoryUpkeep>(&org, &key).await.unwrap().is_none());
    let seen = api
        .get(&format!("/v1/destinations/{dest}/maintenance"), &t.admin)
        .await
        .expect(200);
    assert_eq!(seen.body["repositories"], json!([]), "{}", seen.text);
}

/// An org with a destination; cluster "gone" (a backup definition into the destination,
/// `points` points backed up by its agent, then the definition and the cluster deleted,
/// the first point expired) and cluster "other", which never connected.
struct Gone {
    t: common::Tenant,
    dest: String,
    gone: String,
    other: String,
    other_token: String,
    points: Vec<String>,
}

async fn gone_cluster(api: &Api, org: &str, points: usize) -> Gone {
    let t = api.signup(org).await;
    let dest = api.destination(&t.admin, "bucket").await;
    let (gone, gone_token) = api.cluster(&t.admin, "gone", None).await;
    let (other, other_token) = api.cluster(&t.admin, "other", None).await;
    let session = api.agent_session(&gone_token).await;
    let backup = api.default_backup(&t, &gone, Some(&dest)).await;
    let mut ids = Vec::new();
    for n in 0..points {
        let done = api
            .run_and_complete(
                &t.admin,
                &gone_token,
                &session,
                &backup,
                json!({ "prefix": common::archive_at(&t.org_id, &gone, &format!("p{n}")), "resourceCount": 1 }),
            )
            .await;
        ids.push(done.body["recoveryPointId"].as_str().unwrap().to_owned());
    }
    let def = api.get(&format!("/v1/backups/{backup}"), &t.admin).await.expect(200);
    api.delete(&format!("/v1/backups/{backup}"), &t.admin, &def.etag())
        .await
        .expect(204);
    let cluster = api.get(&format!("/v1/clusters/{gone}"), &t.admin).await.expect(200);
    api.delete(&format!("/v1/clusters/{gone}?confirm=true"), &t.admin, &cluster.etag())
        .await
        .expect(204);
    let store = api.state.control_plane.store();
    let org: arca_core::ids::OrgId = t.org_id.parse().unwrap();
    let first: arca_core::ids::RecoveryPointId = ids[0].parse().unwrap();
    let mut point = store.get::<RecoveryPoint>(&org, &first).await.unwrap();
    let version = point.version;
    point.expires_at = Some(chrono::DateTime::UNIX_EPOCH);
    point.keep_last = None;
    store.update(point, version).await.unwrap();
    Gone {
        t,
        dest,
        gone,
        other,
        other_token,
        points: ids,
    }
}
