//! Restore verification through the API, with the agent's side played over the agent
//! protocol: a definition verified after each backup gets a K8S_RESTORE job into scratch
//! namespaces as soon as its backup completes; how that job ends goes on the point; a
//! verification on demand, a second one refused while one runs; the weekly sweep starts
//! one for the newest unverified point, once; bad settings are 400s naming the field.

mod common;

use common::{Api, Tenant, archive_at};
use serde_json::{Value, json};

struct Agent {
    token: String,
    session: String,
}

async fn definition(api: &Api, t: &Tenant, cluster: &str, dest: &str, verification: Value) -> String {
    api.post(
        "/v1/backups",
        &t.admin,
        json!({ "name": "verified", "clusterId": cluster, "destinationId": dest,
                "selection": { "namespaces": ["shop", "db"] }, "verification": verification }),
    )
    .await
    .expect(201)
    .id()
}

/// Runs `definition` and completes its backup job with an archive holding two
/// namespaces: the point's id.
async fn backed_up(api: &Api, t: &Tenant, agent: &Agent, cluster: &str, definition: &str) -> String {
    api.run(&t.admin, definition).await.expect(201);
    let polled = api.poll(&agent.token, &agent.session).await.expect(200);
    assert_eq!(polled.body["job"]["type"], "K8S_BACKUP", "{}", polled.text);
    let location = archive_at(&t.org_id, cluster, "a1");
    let done = api
        .complete(
            &agent.token,
            &agent.session,
            &polled,
            json!({ "state": "COMPLETED", "backup": { "prefix": location, "resourceCount": 5,
                    "countsByNamespace": { "shop": 3, "db": 1, "(cluster)": 1 } } }),
        )
        .await
        .expect(200);
    done.body["recoveryPointId"].as_str().expect("a point").to_owned()
}

async fn point(api: &Api, t: &Tenant, id: &str) -> Value {
    api.get(&format!("/v1/recoverypoints/{id}"), &t.admin)
        .await
        .expect(200)
        .body
}

#[tokio::test]
async fn a_verified_definition_restores_each_point_into_scratch_namespaces_and_records_how_it_went() {
    let api = Api::new();
    let t = api.signup("verify").await;
    let dest = api.destination(&t.admin, "local").await;
    let (cluster, token, session) = api.connected_cluster(&t.admin, "c", Some(&dest)).await;
    let agent = Agent { token, session };
    let probe = json!({ "image": "registry.example/probe:1", "command": ["check", "--all"], "timeoutSeconds": 90 });
    let def = definition(
        &api,
        &t,
        &cluster,
        &dest,
        json!({ "when": "afterBackup", "probe": probe }),
    )
    .await;

    // ---- after the backup: the point RUNNING, its restore job queued for the agent
    let rp = backed_up(&api, &t, &agent, &cluster, &def).await;
    let p = point(&api, &t, &rp).await;
    assert_eq!(p["verification"]["state"], "RUNNING", "{p:#}");
    assert_eq!(p["verification"]["targetClusterId"], cluster.as_str(), "{p:#}");
    let polled = api.poll(&agent.token, &agent.session).await.expect(200);
    let job = &polled.body["job"];
    assert_eq!(job["type"], "K8S_RESTORE", "{}", polled.text);
    assert_eq!(job["id"], p["verification"]["jobId"], "{}", polled.text);
    let restore = &polled.body["restore"];
    assert_eq!(restore["verification"]["probe"], probe, "{}", polled.text);
    assert_eq!(restore["existingResourcePolicy"], "skip", "{restore:#}");
    assert_eq!(restore["selection"]["namespaces"], json!(["db", "shop"]), "{restore:#}");
    let map = restore["namespaceMap"].as_object().expect("a namespace map");
    assert_eq!(map.len(), 2, "{restore:#}");
    for (source, scratch) in map {
        let scratch = scratch.as_str().unwrap();
        assert!(
            scratch.starts_with("arca-verify-") && scratch.ends_with(&format!("-{source}")),
            "{scratch}"
        );
    }
    // The restore is listed like any other, naming its purpose.
    let restore_id = restore["id"].as_str().unwrap().to_owned();
    let got = api
        .get(&format!("/v1/restores/{restore_id}"), &t.admin)
        .await
        .expect(200);
    assert!(got.body["verification"].is_object(), "{}", got.text);

    // ---- the agent found a failure: FAILED on the point, with its reason
    api.complete(
        &agent.token,
        &agent.session,
        &polled,
        json!({ "state": "FAILED", "reason": "verification failed: the probe Job failed",
                "verification": { "objectsVerified": 4, "volumesVerified": 0,
                                  "reasons": ["the probe Job failed (BackoffLimitExceeded)"] } }),
    )
    .await
    .expect(200);
    let p = point(&api, &t, &rp).await;
    let v = &p["verification"];
    assert_eq!(v["state"], "FAILED", "{p:#}");
    assert_eq!(v["objectsVerified"], 4, "{v:#}");
    assert_eq!(
        v["reasons"],
        json!(["the probe Job failed (BackoffLimitExceeded)"]),
        "{v:#}"
    );
    assert!(v["endedAt"].is_string(), "{v:#}");

    // ---- on demand: RUNNING again; a second request is refused while it runs
    let path = format!("/v1/recoverypoints/{rp}/verify");
    let created = api.post(&path, &t.admin, json!({})).await.expect(201);
    assert!(created.body["job"]["id"].is_string(), "{}", created.text);
    api.post(&path, &t.admin, json!({}))
        .await
        .problem(409, "recovery_point_busy");
    let polled = api.poll(&agent.token, &agent.session).await.expect(200);
    assert_eq!(polled.body["job"]["id"], created.body["job"]["id"], "{}", polled.text);
    api.complete(
        &agent.token,
        &agent.session,
        &polled,
        json!({ "state": "COMPLETED", "verification": { "objectsVerified": 5, "volumesVerified": 1, "reasons": [] } }),
    )
    .await
    .expect(200);
    let v = point(&api, &t, &rp).await["verification"].clone();
    assert_eq!(v["state"], "VERIFIED", "{v:#}");
    assert_eq!(
        (v["objectsVerified"].clone(), v["volumesVerified"].clone()),
        (json!(5), json!(1))
    );
    assert!(v.get("reasons").is_none(), "{v:#}");

    // ---- a job that ended without the agent's findings is no verification
    let created = api.post(&path, &t.admin, json!({})).await.expect(201);
    let polled = api.poll(&agent.token, &agent.session).await.expect(200);
    assert_eq!(polled.body["job"]["id"], created.body["job"]["id"]);
    api.complete(
        &agent.token,
        &agent.session,
        &polled,
        json!({ "state": "FAILED", "reason": "getting access to the destination: denied" }),
    )
    .await
    .expect(200);
    let v = point(&api, &t, &rp).await["verification"].clone();
    assert_eq!(v["state"], "FAILED", "{v:#}");
    assert_eq!(
        v["reasons"],
        json!(["getting access to the destination: denied"]),
        "{v:#}"
    );

    // ---- what cannot be verified, or by whom
    let viewer = api.key(&t, "viewer").await;
    api.post(&path, &viewer, json!({})).await.expect(403);
    api.post(
        "/v1/recoverypoints/rp_01J0000000000000000000000Z/verify",
        &t.admin,
        json!({}),
    )
    .await
    .expect(404);
    api.post(
        &path,
        &t.admin,
        json!({ "targetClusterId": "cl_01J0000000000000000000000Z" }),
    )
    .await
    .problem(400, "validation_failed");
    api.post(&path, &t.admin, json!({ "cluster": "x" }))
        .await
        .problem(400, "invalid_body");
}

#[tokio::test]
async fn bad_verification_settings_are_refused_naming_the_field() {
    let api = Api::new();
    let t = api.signup("verify-bad").await;
    let dest = api.destination(&t.admin, "local").await;
    let (cluster, _) = api.cluster(&t.admin, "c", Some(&dest)).await;
    for (verification, field) in [
        (
            json!({ "when": "afterBackup", "probe": { "image": "has space" } }),
            "verification.probe.image",
        ),
        (
            json!({ "when": "weekly", "probe": { "image": "p:1", "timeoutSeconds": 0 } }),
            "verification.probe.timeoutSeconds",
        ),
    ] {
        let reply = api
            .post(
                "/v1/backups",
                &t.admin,
                json!({ "name": "v", "clusterId": cluster, "selection": { "namespaces": ["a"] }, "verification": verification }),
            )
            .await
            .problem(400, "validation_failed");
        assert!(reply.text.contains(field), "{}", reply.text);
    }
    api.post(
        "/v1/backups",
        &t.admin,
        json!({ "name": "v", "clusterId": cluster, "selection": { "namespaces": ["a"] }, "verification": { "when": "daily" } }),
    )
    .await
    .problem(400, "invalid_body");
}

#[tokio::test]
async fn the_weekly_sweep_verifies_the_newest_unverified_point_once() {
    let api = Api::new();
    let t = api.signup("verify-weekly").await;
    let dest = api.destination(&t.admin, "local").await;
    let (cluster, token, session) = api.connected_cluster(&t.admin, "c", Some(&dest)).await;
    let agent = Agent { token, session };
    let def = definition(&api, &t, &cluster, &dest, json!({ "when": "weekly" })).await;
    let older = backed_up(&api, &t, &agent, &cluster, &def).await;
    let newest = backed_up(&api, &t, &agent, &cluster, &def).await;
    // Weekly: nothing after the backups themselves.
    assert!(point(&api, &t, &newest).await.get("verification").is_none());
    let cp = &api.state.control_plane;
    let swept = cp.verification_sweep().await.unwrap();
    assert_eq!(swept.examined, 1);
    assert_eq!(
        swept.started.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![newest.clone()]
    );
    assert!(point(&api, &t, &older).await.get("verification").is_none());
    assert_eq!(point(&api, &t, &newest).await["verification"]["state"], "RUNNING");
    // Started this week: not again.
    let again = cp.verification_sweep().await.unwrap();
    assert!(again.started.is_empty() && again.failed.is_empty(), "{again:?}");
}
