//! A destination holding recovery points, over HTTP and the agent protocol: deleting it
//! is refused until confirmed (how many points, the nearest expiry), moving it elsewhere
//! is refused while they live there (credentials may change), locked points refuse even
//! a confirmed deletion; confirmed, the points expire, retention hands their deletion to
//! the agent with the destination still there to reach the data, and the destination goes
//! after the last point.

mod common;

use arca_core::model::recovery::RecoveryPoint;
use arca_core::model::secret::Secret;
use common::Api;
use serde_json::json;

#[tokio::test]
async fn a_destination_with_recovery_points_retires_instead_of_stranding_them() {
    let api = Api::new();
    let t = api.signup("dest-life").await;
    let dest = api.destination(&t.admin, "bucket").await;
    let (cluster, token, session) = api.connected_cluster(&t.admin, "prod", None).await;
    let backup = api.default_backup(&t, &cluster, Some(&dest)).await;
    let done = api
        .run_and_complete(
            &t.admin,
            &token,
            &session,
            &backup,
            json!({ "prefix": common::archive_at(&t.org_id, &cluster, "a1"), "resourceCount": 3 }),
        )
        .await;
    let rp = done.body["recoveryPointId"].as_str().unwrap().to_owned();
    let point = api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(200);
    assert_eq!(point.body["location"]["destinationId"], dest.as_str(), "{}", point.text);

    // The definition goes; its point stays, in the destination.
    let def = api.get(&format!("/v1/backups/{backup}"), &t.admin).await.expect(200);
    api.delete(&format!("/v1/backups/{backup}"), &t.admin, &def.etag())
        .await
        .expect(204);

    // Moving the destination elsewhere would strand the point; new credentials would not.
    let current = api.get(&format!("/v1/destinations/{dest}"), &t.admin).await.expect(200);
    let moved = api
        .put(
            &format!("/v1/destinations/{dest}"),
            &t.admin,
            &current.etag(),
            json!({ "name": "bucket", "target": { "kind": "S3", "bucket": "another-bucket", "region": "eu-west-1" } }),
        )
        .await
        .problem(409, "destination_in_use");
    assert!(
        moved.text.contains("holds 1 recovery point(s)") && moved.text.contains("a new location is a new destination"),
        "{}",
        moved.text
    );
    let rekeyed = api
        .put(
            &format!("/v1/destinations/{dest}"),
            &t.admin,
            &current.etag(),
            json!({ "name": "bucket", "target": { "kind": "S3", "bucket": "arca-backups", "region": "eu-west-1",
                    "credentialsRef": "other-keys" } }),
        )
        .await
        .expect(200);

    // Deleting it: refused until confirmed, saying how many and the nearest expiry.
    let path = format!("/v1/destinations/{dest}");
    let refused = api
        .delete(&path, &t.admin, &rekeyed.etag())
        .await
        .problem(409, "confirmation_required");
    let expires = point.body["expiresAt"].as_str().unwrap();
    let first_expiry = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
    let nearest = first_expiry.to_rfc3339();
    assert!(
        refused.text.contains("holds 1 recovery point(s)") && refused.text.contains(&nearest),
        "{}",
        refused.text
    );

    // A locked point refuses even a confirmed deletion.
    let cp = &api.state.control_plane;
    let store = cp.store();
    let org: arca_core::ids::OrgId = t.org_id.parse().unwrap();
    let rp_id = rp.parse().unwrap();
    let set_locked = |locked: bool| {
        let store = store.clone();
        async move {
            let mut p = store.get::<RecoveryPoint>(&org, &rp_id).await.unwrap();
            let v = p.version;
            p.locked = locked;
            store.update(p, v).await.unwrap();
        }
    };
    set_locked(true).await;
    let confirm = format!("{path}?confirm=true");
    api.delete(&confirm, &t.admin, &rekeyed.etag())
        .await
        .problem(409, "destination_in_use");
    set_locked(false).await;

    // Confirmed: the point expires now, the destination retires and stays meanwhile.
    let retiring = api.delete(&confirm, &t.admin, &rekeyed.etag()).await.expect(202);
    assert_eq!(retiring.body["recoveryPoints"], 1, "{}", retiring.text);
    assert_eq!(retiring.body["destination"]["retiring"], true, "{}", retiring.text);
    let point = api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(200);
    let expires = chrono::DateTime::parse_from_rfc3339(point.body["expiresAt"].as_str().unwrap()).unwrap();
    assert!(
        expires < first_expiry,
        "expired now, not at its policy's day: {}",
        point.text
    );
    api.get(&path, &t.admin).await.expect(200);

    // Retention hands the deletion to the agent, which still reaches the data...
    cp.record_heartbeat(&Secret::from_presented(token.clone()), Default::default())
        .await
        .unwrap();
    let report = cp.retention_sweep().await.unwrap();
    assert_eq!(report.deletion_jobs.len(), 1, "{report:?}");
    let polled = api.poll(&token, &session).await.expect(200);
    assert_eq!(polled.body["job"]["type"], "DELETE_BACKUP", "{}", polled.text);
    let access = api.credentials(&token, &session, &polled.job_id()).await.expect(200);
    assert_eq!(access.body["destinationId"], dest.as_str(), "{}", access.text);
    // ... and once the point is gone, so is the destination.
    api.complete(&token, &session, &polled, json!({})).await.expect(200);
    api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(404);
    api.get(&path, &t.admin).await.expect(404);
}

/// A destination without points is deleted at once, confirmed or not.
#[tokio::test]
async fn an_empty_destination_is_deleted_at_once() {
    let api = Api::new();
    let t = api.signup("dest-empty").await;
    let dest = api.destination(&t.admin, "bucket").await;
    let path = format!("/v1/destinations/{dest}");
    let current = api.get(&path, &t.admin).await.expect(200);
    api.delete(&path, &t.admin, &current.etag()).await.expect(204);
    api.get(&path, &t.admin).await.expect(404);
}
