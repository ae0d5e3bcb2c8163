//! Immutable destinations through the API: the setting and its refusals, the lock a
//! backup job is handed (its point's expiry plus the gc grace period), the point that
//! records it, and every way of deleting data early refused with the date: deleting the
//! point, deleting the destination, retention. Once the date has passed the point goes.
//! The bucket's own configuration, as the agent found it, shows on the destination.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use arca_core::model::recovery::RecoveryPoint;
use chrono::{DateTime, Duration, Utc};
use common::Api;
use serde_json::json;

fn date(v: &serde_json::Value) -> DateTime<Utc> {
    v.as_str().unwrap_or_else(|| panic!("not a date: {v}")).parse().unwrap()
}

#[tokio::test]
async fn an_immutable_destination_locks_points_until_their_expiry_and_the_grace() {
    let api = Api::new();
    let t = api.signup("immutable").await;
    let s3 = json!({ "kind": "S3", "bucket": "locked-backups", "region": "eu-west-1" });

    // Only storage that has Object Lock can be immutable.
    api.post(
        "/v1/destinations",
        &t.admin,
        json!({ "name": "here", "target": { "kind": "LOCAL_FILESYSTEM", "path": "/srv/b" }, "objectLock": { "mode": "GOVERNANCE" } }),
    )
    .await
    .problem(400, "validation_failed");
    let managed = api
        .post(
            "/v1/destinations",
            &t.admin,
            json!({ "name": "managed", "target": { "kind": "ARCA_MANAGED" }, "objectLock": { "mode": "GOVERNANCE" } }),
        )
        .await
        .problem(400, "validation_failed");
    assert!(managed.text.contains("ManagedStorageObjectLock"), "{}", managed.text);
    api.post(
        "/v1/destinations",
        &t.admin,
        json!({ "name": "typo", "target": s3, "objectLock": { "mode": "FOREVER" } }),
    )
    .await
    .expect(400);
    let created = api
        .post(
            "/v1/destinations",
            &t.admin,
            json!({ "name": "vault", "target": s3, "objectLock": { "mode": "COMPLIANCE" } }),
        )
        .await
        .expect(201);
    assert_eq!(created.body["objectLock"]["mode"], "COMPLIANCE", "{}", created.text);
    let dest = created.id();

    // A backup's job is told the mode and its point's date: expiry plus gc grace (24 h).
    let (cluster, token) = api.cluster(&t.admin, "prod", None).await;
    let session = api.agent_session(&token).await;
    let backup = api.default_backup(&t, &cluster, Some(&dest)).await;
    api.run(&t.admin, &backup).await.expect(201);
    let polled = api.poll(&token, &session).await.expect(200);
    let expires = date(&polled.body["job"]["recoveryPointExpiresAt"]);
    let access = api.credentials(&token, &session, &polled.job_id()).await.expect(200);
    let lock = access.body["objectLock"].clone();
    assert_eq!(lock["mode"], "COMPLIANCE", "{}", access.text);
    let until = date(&lock["retainUntil"]);
    assert!(
        until >= expires + Duration::hours(24) && until <= expires + Duration::hours(24) + Duration::seconds(1),
        "{until} for a point expiring {expires}"
    );
    let again = api.credentials(&token, &session, &polled.job_id()).await.expect(200);
    assert_eq!(again.body["objectLock"], lock, "every renewal gives the same date");

    // The agent reports what it wrote with; the point records it.
    let done = api
        .complete(
            &token,
            &session,
            &polled,
            json!({ "backup": {
                "prefix": common::archive_at(&t.org_id, &cluster, "a1"),
                "resourceCount": 3,
                "objectLock": lock,
                "bucketLock": { "enabled": true, "defaultMode": "GOVERNANCE", "defaultDays": 1 },
            } }),
        )
        .await
        .expect(200);
    let rp = done.body["recoveryPointId"].as_str().unwrap().to_owned();
    let point = api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(200);
    assert_eq!(point.body["objectLock"], lock, "{}", point.text);
    // And the destination shows what the agent found on the bucket.
    let shown = api.get(&format!("/v1/destinations/{dest}"), &t.admin).await.expect(200);
    let found = &shown.body["bucketLock"];
    assert_eq!(
        (&found["enabled"], &found["defaultMode"], &found["defaultDays"]),
        (&json!(true), &json!("GOVERNANCE"), &json!(1)),
        "{}",
        shown.text
    );
    assert_eq!(found["jobId"], polled.job_id().as_str(), "{}", shown.text);

    // Early deletion is refused, naming the date: the point, and the destination.
    let viewer = api.key(&t, "viewer").await;
    api.delete(&format!("/v1/recoverypoints/{rp}"), &viewer, &point.etag())
        .await
        .expect(403);
    let refused = api
        .delete(&format!("/v1/recoverypoints/{rp}"), &t.admin, &point.etag())
        .await
        .problem(409, "recovery_point_immutable");
    assert!(
        refused.text.contains(&until.to_rfc3339()) && refused.text.contains("COMPLIANCE"),
        "{}",
        refused.text
    );
    let def = api.get(&format!("/v1/backups/{backup}"), &t.admin).await.expect(200);
    api.delete(&format!("/v1/backups/{backup}"), &t.admin, &def.etag())
        .await
        .expect(204);
    let d = api.get(&format!("/v1/destinations/{dest}"), &t.admin).await.expect(200);
    let refused = api
        .delete(&format!("/v1/destinations/{dest}?confirm=true"), &t.admin, &d.etag())
        .await
        .problem(409, "recovery_point_immutable");
    assert!(refused.text.contains(&until.to_rfc3339()), "{}", refused.text);

    // Retention: past its expiry (a shortened policy, say) the lock still holds it.
    let cp = &api.state.control_plane;
    let store = cp.store();
    let org: arca_core::ids::OrgId = t.org_id.parse().unwrap();
    let rp_id: arca_core::ids::RecoveryPointId = rp.parse().unwrap();
    let mut stored = store.get::<RecoveryPoint>(&org, &rp_id).await.unwrap();
    let version = stored.version;
    stored.expires_at = Some(DateTime::UNIX_EPOCH);
    stored.keep_last = None;
    store.update(stored, version).await.unwrap();
    let sweep = cp.retention_sweep().await.unwrap();
    assert!(sweep.deletion_jobs.is_empty(), "{sweep:?}");
    assert_eq!(sweep.kept, 1, "{sweep:?}");

    // Once the date has passed: deleted on request, by a DELETE_BACKUP job.
    let mut stored = store.get::<RecoveryPoint>(&org, &rp_id).await.unwrap();
    let version = stored.version;
    stored.object_lock.as_mut().unwrap().retain_until = DateTime::UNIX_EPOCH;
    stored.expires_at = None;
    store.update(stored, version).await.unwrap();
    let point = api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(200);
    let deleting = api
        .delete(&format!("/v1/recoverypoints/{rp}"), &t.admin, &point.etag())
        .await
        .expect(202);
    assert_eq!(deleting.body["recoveryPointId"], rp.as_str(), "{}", deleting.text);
    let point = api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(200);
    assert_eq!(point.body["state"], "DELETING", "{}", point.text);
    api.delete(&format!("/v1/recoverypoints/{rp}"), &t.admin, &point.etag())
        .await
        .problem(409, "recovery_point_busy");
    let polled = api.poll(&token, &session).await.expect(200);
    assert_eq!(polled.body["job"]["type"], "DELETE_BACKUP", "{}", polled.text);
    assert_eq!(polled.job_id(), deleting.body["jobId"].as_str().unwrap());
    let access = api.credentials(&token, &session, &polled.job_id()).await.expect(200);
    assert_eq!(access.body["objectLock"]["mode"], "COMPLIANCE", "{}", access.text);
    assert!(
        access.body["objectLock"].get("retainUntil").is_none(),
        "a deletion writes nothing to retain: {}",
        access.text
    );
}
