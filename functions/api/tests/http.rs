//! The API over HTTP (through the router, on a real redb store): every entity's
//! lifecycle, the conditional-write rules, roles, and every rule of the spec.

// Test helpers outside #[test] fns fail loudly too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use arca_core::ids::{ClusterId, JobId, OrgId, RecoveryPointId};
use arca_core::model::job::{Job, JobState};
use arca_core::model::plan::PlanLimits;
use arca_core::ports::item_store::{Condition, Item};
use axum::http::Method;
use chrono::Utc;
use common::{Api, Reply};
use serde_json::{Value, json};

/// Create, get (ETag), list across pages, update (If-Match: 428 without, 412 stale),
/// delete (the same), then 404.
async fn crud(api: &Api, key: &str, base: &str, create: impl Fn(usize) -> Value, update: Value) {
    let mut ids = BTreeSet::new();
    let mut first: Option<Reply> = None;
    for i in 0..3 {
        let created = api.post(base, key, create(i)).await.expect(201);
        assert_eq!(created.etag(), "\"1\"", "{base}: a new entity is version 1");
        assert_eq!(
            created.location.as_deref(),
            Some(format!("{base}/{}", created.id()).as_str())
        );
        ids.insert(created.id());
        first.get_or_insert(created);
    }
    let first = first.unwrap();
    let path = format!("{base}/{}", first.id());

    let got = api.get(&path, key).await.expect(200);
    assert_eq!(got.etag(), first.etag());
    assert_eq!(got.body["id"], first.body["id"]);

    // Pages of 2 over 3+ entities: every id once, the last page without a cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 10, "{base}: pagination does not end");
        let url = match &cursor {
            Some(c) => format!("{base}?limit=2&cursor={c}"),
            None => format!("{base}?limit=2"),
        };
        let reply = api.get(&url, key).await.expect(200);
        let items = reply.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match reply.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(
        seen.len() >= 3 && seen.len() == seen.iter().collect::<BTreeSet<_>>().len(),
        "{base}: {seen:?}"
    );
    assert!(
        ids.iter().all(|id| seen.contains(id)),
        "{base}: {ids:?} not all in {seen:?}"
    );

    // Updates and deletes are conditional.
    api.request(Method::PUT, &path, Some(key), None, Some(update.clone()))
        .await
        .problem(428, "if_match_required");
    let updated = api.put(&path, key, &first.etag(), update.clone()).await.expect(200);
    assert_eq!(updated.etag(), "\"2\"");
    assert_eq!(updated.body["name"], update["name"]);
    api.put(&path, key, &first.etag(), update)
        .await
        .problem(412, "precondition_failed");
    api.request(Method::DELETE, &path, Some(key), None, None)
        .await
        .problem(428, "if_match_required");
    api.delete(&path, key, &first.etag())
        .await
        .problem(412, "precondition_failed");
    api.delete(&path, key, &updated.etag()).await.expect(204);
    api.get(&path, key).await.problem(404, "not_found");
}

#[tokio::test]
async fn clusters_destinations_and_policies_have_the_full_lifecycle() {
    let api = Api::new();
    let t = api.signup("acme").await;
    crud(
        &api,
        &t.admin,
        "/v1/clusters",
        |i| json!({ "name": format!("cluster-{i}") }),
        json!({ "name": "renamed" }),
    )
    .await;
    let s3 =
        |name: &str| json!({ "name": name, "target": { "kind": "S3", "bucket": "arca-b", "region": "eu-west-1" } });
    crud(
        &api,
        &t.admin,
        "/v1/destinations",
        |i| s3(&format!("dest-{i}")),
        s3("renamed"),
    )
    .await;
    let policy = |name: &str| json!({ "name": name, "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] });
    crud(
        &api,
        &t.admin,
        "/v1/policies",
        |i| policy(&format!("policy-{i}")),
        policy("renamed"),
    )
    .await;
}

#[tokio::test]
async fn backup_definitions_have_the_full_lifecycle() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let dest = api.destination(&t.admin, "s3").await;
    let (cluster, _) = api.cluster(&t.admin, "prod", Some(&dest)).await;
    let body = |name: &str| json!({ "name": name, "clusterId": cluster, "selection": { "fullCluster": true } });
    crud(
        &api,
        &t.admin,
        "/v1/backups",
        |i| body(&format!("backup-{i}")),
        body("renamed"),
    )
    .await;
}

#[tokio::test]
async fn api_keys_are_created_once_listed_without_secrets_and_deleted_conditionally() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let created = api
        .post("/v1/apikeys", &t.admin, json!({ "name": "ci", "role": "viewer" }))
        .await
        .expect(201);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("arca_"));
    let path = format!("/v1/apikeys/{}", created.id());
    let got = api.get(&path, &t.admin).await.expect(200);
    assert_eq!(got.etag(), created.etag());
    assert!(
        got.body.get("secret").is_none() && !got.text.contains(&secret),
        "a key is shown once"
    );
    let list = api.get("/v1/apikeys?limit=1", &t.admin).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let rest = api
        .get(
            &format!("/v1/apikeys?cursor={}", list.body["nextCursor"].as_str().unwrap()),
            &t.admin,
        )
        .await
        .expect(200);
    assert!(!list.text.contains(&secret) && !rest.text.contains(&secret));
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1, "two keys in all");

    api.get("/v1/org", &secret).await.expect(200);
    api.request(Method::DELETE, &path, Some(&t.admin), None, None)
        .await
        .problem(428, "if_match_required");
    api.delete(&path, &t.admin, "\"9\"")
        .await
        .problem(412, "precondition_failed");
    api.delete(&path, &t.admin, &created.etag()).await.expect(204);
    api.get("/v1/org", &secret).await.problem(401, "unauthenticated");

    // The org's last admin key cannot go.
    let list = api.get("/v1/apikeys", &t.admin).await.expect(200);
    let me = &list.body["items"][0];
    let reply = api
        .delete(
            &format!("/v1/apikeys/{}", me["id"].as_str().unwrap()),
            &t.admin,
            &format!("\"{}\"", me["version"]),
        )
        .await;
    reply.problem(409, "last_admin_key");
}

#[tokio::test]
async fn the_org_is_read_and_updated_conditionally() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let org = api.get("/v1/org", &t.admin).await.expect(200);
    assert_eq!(org.body["id"], t.org_id.as_str());
    assert_eq!(org.body["plan"], "free");
    api.request(
        Method::PUT,
        "/v1/org",
        Some(&t.admin),
        None,
        Some(json!({ "name": "acme2" })),
    )
    .await
    .problem(428, "if_match_required");
    let updated = api
        .put("/v1/org", &t.admin, &org.etag(), json!({ "name": "acme2" }))
        .await
        .expect(200);
    assert_eq!(updated.body["name"], "acme2");
    api.put("/v1/org", &t.admin, &org.etag(), json!({ "name": "acme3" }))
        .await
        .problem(412, "precondition_failed");
    api.put("/v1/org", &t.admin, "not-an-etag", json!({ "name": "x" }))
        .await
        .problem(400, "invalid_if_match");
}

#[tokio::test]
async fn signup_creates_an_org_with_an_admin_key_and_a_default_policy() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let policy = api
        .get(&format!("/v1/policies/{}", t.default_policy_id), &t.admin)
        .await
        .expect(200);
    assert_eq!(policy.body["name"], "hourly");
    assert_eq!(policy.body["usedBy"], json!([]));
    let closed = Api::with(false, PlanLimits::default());
    let reply = closed
        .request(Method::POST, "/v1/signup", None, None, Some(json!({ "orgName": "x" })))
        .await;
    let reply = reply.problem(403, "signup_closed");
    assert!(
        reply.body["detail"].as_str().unwrap().contains("sign-up is closed"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn requests_without_a_valid_key_are_401() {
    let api = Api::new();
    api.request(Method::GET, "/v1/clusters", None, None, None)
        .await
        .problem(401, "unauthenticated");
    api.get("/v1/clusters", "arca_nope")
        .await
        .problem(401, "unauthenticated");
    let reply = api.get("/v1/clusters", "garbage").await.problem(401, "unauthenticated");
    assert!(!reply.text.contains("garbage"), "the presented key is not echoed");
}

#[tokio::test]
async fn roles_gate_reads_operations_and_configuration() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let viewer = api.key(&t, "viewer").await;
    let operator = api.key(&t, "operator").await;
    let dest = api.destination(&t.admin, "s3").await;
    let (cluster, token) = api.cluster(&t.admin, "prod", Some(&dest)).await;
    // Runs need an ACTIVE cluster: its agent heartbeats.
    api.activate(&token).await;
    let def = api.default_backup(&t, &cluster, None).await;
    let run = format!("/v1/backups/{def}/run");

    // Viewer reads, and nothing else.
    api.get("/v1/clusters", &viewer).await.expect(200);
    api.get(&format!("/v1/backups/{def}"), &viewer).await.expect(200);
    let reply = api.post(&run, &viewer, json!({})).await.problem(403, "forbidden");
    assert_eq!(reply.body["requiredRole"], "operator");
    api.post("/v1/clusters", &viewer, json!({ "name": "x" }))
        .await
        .problem(403, "forbidden");
    api.get("/v1/apikeys", &viewer).await.problem(403, "forbidden");

    // Operator runs, pauses, cancels and restores, but does not configure.
    let job = api.post(&run, &operator, json!({})).await.expect(201);
    api.post(&format!("/v1/jobs/{}/cancel", job.id()), &operator, json!({}))
        .await
        .expect(200);
    api.post(&format!("/v1/backups/{def}/pause"), &operator, json!({}))
        .await
        .expect(200);
    api.post(&format!("/v1/backups/{def}/resume"), &operator, json!({}))
        .await
        .expect(200);
    let reply = api
        .post("/v1/clusters", &operator, json!({ "name": "x" }))
        .await
        .problem(403, "forbidden");
    assert_eq!(reply.body["requiredRole"], "admin");
    let policy = json!({ "name": "p", "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] });
    api.post("/v1/policies", &operator, policy.clone())
        .await
        .problem(403, "forbidden");
    api.post(
        "/v1/destinations",
        &operator,
        json!({ "name": "d", "target": { "kind": "ARCA_MANAGED" } }),
    )
    .await
    .problem(403, "forbidden");
    api.backup(&operator, &cluster, None, None)
        .await
        .problem(403, "forbidden");
    api.delete(&format!("/v1/backups/{def}"), &operator, "\"1\"")
        .await
        .problem(403, "forbidden");
    api.post("/v1/apikeys", &operator, json!({ "name": "k", "role": "admin" }))
        .await
        .problem(403, "forbidden");
    api.put("/v1/org", &operator, "\"1\"", json!({ "name": "x" }))
        .await
        .problem(403, "forbidden");
    // A restore is an operator's action: it passes the role gate and meets the rules.
    let rp = RecoveryPointId::new();
    let reply = api
        .post(
            "/v1/restores",
            &operator,
            json!({ "recoveryPointId": rp.to_string(), "targetClusterId": cluster }),
        )
        .await;
    reply.problem(400, "validation_failed");
    api.post(
        "/v1/restores",
        &viewer,
        json!({ "recoveryPointId": rp.to_string(), "targetClusterId": cluster }),
    )
    .await
    .problem(403, "forbidden");

    // Admin configures.
    api.post("/v1/policies", &t.admin, policy).await.expect(201);
}

#[tokio::test]
async fn jobs_recovery_points_and_restores_over_http() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let dest = api.destination(&t.admin, "s3").await;
    let (cluster, token) = api.cluster(&t.admin, "prod", Some(&dest)).await;
    let def = api.default_backup(&t, &cluster, None).await;

    // Before the agent is there a run is SKIPPED, saying why.
    let skipped = api.run(&t.admin, &def).await.expect(201);
    assert_eq!(skipped.body["state"], "SKIPPED");
    assert!(
        skipped.body["reason"].as_str().unwrap().contains("cluster not active"),
        "{}",
        skipped.text
    );
    api.activate(&token).await;
    // Jobs: run three times (each canceled before the next: one unfinished job per
    // definition), read one with its ETag, page through them.
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let job = api.run(&t.admin, &def).await.expect(201);
        assert_eq!(job.body["state"], "PENDING");
        assert_eq!(job.body["retention"]["retainDays"], 7, "the policy's first row decides");
        assert_eq!(job.location.as_deref(), Some(format!("/v1/jobs/{}", job.id()).as_str()));
        let again = api.run(&t.admin, &def).await.expect(201);
        assert_eq!(again.body["state"], "SKIPPED", "one unfinished job per definition");
        api.post(&format!("/v1/jobs/{}/cancel", job.id()), &t.admin, json!({}))
            .await
            .expect(200);
        jobs.push(job.id());
    }
    let got = api.get(&format!("/v1/jobs/{}", jobs[0]), &t.admin).await.expect(200);
    assert_eq!(got.etag(), "\"2\"", "created, then canceled");
    let page = api.get("/v1/jobs?limit=2", &t.admin).await.expect(200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        page.body["items"][1]["id"],
        jobs[2].as_str(),
        "newest first (after its SKIPPED twin)"
    );
    let next = page.body["nextCursor"].as_str().unwrap();
    let rest = api
        .get(&format!("/v1/jobs?limit=2&cursor={next}"), &t.admin)
        .await
        .expect(200);
    assert_eq!(rest.body["items"][1]["id"], jobs[1].as_str());
    let filtered = api
        .get(&format!("/v1/jobs?definitionId={def}&state=CANCELED"), &t.admin)
        .await
        .expect(200);
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 3);
    api.get("/v1/jobs?state=BOGUS", &t.admin)
        .await
        .problem(400, "invalid_query");

    // Recovery points (written by the agent protocol; planted here).
    let rp = api.plant_recovery_point(&t.org_id, &cluster, &def, None).await;
    let list = api
        .get(&format!("/v1/recoverypoints?clusterId={cluster}"), &t.admin)
        .await
        .expect(200);
    assert_eq!(list.body["items"][0]["id"], rp.to_string());
    let got = api.get(&format!("/v1/recoverypoints/{rp}"), &t.admin).await.expect(200);
    assert_eq!(got.body["state"], "READY");
    assert!(got.etag.is_some());

    // Restores need an ACTIVE target: a cluster whose agent never connected is 409.
    let (idle, _) = api.cluster(&t.admin, "idle", Some(&dest)).await;
    api.post(
        "/v1/restores",
        &t.admin,
        json!({ "recoveryPointId": rp.to_string(), "targetClusterId": idle }),
    )
    .await
    .problem(409, "restore_not_possible");
    let restore = json!({ "recoveryPointId": rp.to_string(), "targetClusterId": cluster });
    api.activate(&token).await;
    let created = api.post("/v1/restores", &t.admin, restore).await.expect(201);
    let restore_id = created.body["restore"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["job"]["type"], "K8S_RESTORE");
    assert_eq!(
        created.location.as_deref(),
        Some(format!("/v1/restores/{restore_id}").as_str())
    );
    let got = api
        .get(&format!("/v1/restores/{restore_id}"), &t.admin)
        .await
        .expect(200);
    assert_eq!(got.body["recoveryPointId"], rp.to_string());
    assert_eq!(got.etag(), "\"1\"");
    let list = api.get("/v1/restores", &t.admin).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_job_state_machine_refuses_to_cancel_finished_jobs() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let dest = api.destination(&t.admin, "s3").await;
    let (cluster, token) = api.cluster(&t.admin, "prod", Some(&dest)).await;
    // Runs need an ACTIVE cluster: its agent heartbeats.
    api.activate(&token).await;
    let def = api.backup(&t.admin, &cluster, None, None).await.expect(201).id();
    let run = format!("/v1/backups/{def}/run");

    let pending = api.post(&run, &t.admin, json!({})).await.expect(201).id();
    let canceled = api
        .post(&format!("/v1/jobs/{pending}/cancel"), &t.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(canceled.body["state"], "CANCELED");
    let again = api
        .post(&format!("/v1/jobs/{pending}/cancel"), &t.admin, json!({}))
        .await;
    again.problem(409, "illegal_job_transition");

    // A completed job (moved there as the agent would) cannot be canceled either.
    let done = api.post(&run, &t.admin, json!({})).await.expect(201).id();
    let store = api.state.control_plane.store();
    let org = t.org_id.parse::<OrgId>().unwrap();
    let mut job: Job = store.get(&org, &done.parse::<JobId>().unwrap()).await.unwrap();
    job.transition(
        JobState::Running,
        None,
        chrono::DateTime::<Utc>::from(std::time::SystemTime::now()),
    )
    .unwrap();
    job.transition(
        JobState::Completed,
        None,
        chrono::DateTime::<Utc>::from(std::time::SystemTime::now()),
    )
    .unwrap();
    let v = job.version;
    store.update(job, v).await.unwrap();
    let reply = api
        .post(&format!("/v1/jobs/{done}/cancel"), &t.admin, json!({}))
        .await
        .problem(409, "illegal_job_transition");
    assert!(
        reply.body["detail"].as_str().unwrap().contains("Completed"),
        "{}",
        reply.text
    );
    // A stale If-Match on an action is a 412, not a silent retry.
    let running = api.post(&run, &t.admin, json!({})).await.expect(201).id();
    let reply = api
        .request(
            Method::POST,
            &format!("/v1/jobs/{running}/cancel"),
            Some(&t.admin),
            Some("\"7\""),
            None,
        )
        .await;
    reply.problem(412, "precondition_failed");
}

#[tokio::test]
async fn a_policy_in_use_cannot_be_deleted_and_says_by_whom() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let dest = api.destination(&t.admin, "s3").await;
    let (cluster, _) = api.cluster(&t.admin, "prod", Some(&dest)).await;
    let def = api.default_backup(&t, &cluster, None).await;
    let path = format!("/v1/policies/{}", t.default_policy_id);
    let policy = api.get(&path, &t.admin).await.expect(200);
    assert_eq!(policy.body["usedBy"][0]["id"], def.as_str(), "GET shows usedBy");
    let reply = api
        .delete(&path, &t.admin, &policy.etag())
        .await
        .problem(409, "policy_in_use");
    assert!(reply.body["detail"].as_str().unwrap().contains(&def), "{}", reply.text);
    assert_eq!(reply.body["usedBy"][0]["id"], def.as_str());
    assert_eq!(reply.body["usedBy"][0]["name"], "nightly");

    // Once the definition is gone, the policy can go.
    let d = api.get(&format!("/v1/backups/{def}"), &t.admin).await.expect(200);
    api.delete(&format!("/v1/backups/{def}"), &t.admin, &d.etag())
        .await
        .expect(204);
    let policy = api.get(&path, &t.admin).await.expect(200);
    assert_eq!(policy.body["usedBy"], json!([]));
    api.delete(&path, &t.admin, &policy.etag()).await.expect(204);
}

#[tokio::test]
async fn retention_beyond_the_plan_is_422_naming_the_limit() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let body = json!({ "name": "long", "schedules": [{ "cron": "0 3 * * *", "retainDays": 90 }] });
    let reply = api
        .post("/v1/policies", &t.admin, body)
        .await
        .problem(422, "plan_limit_exceeded");
    assert_eq!(reply.body["field"], "schedules[0].retainDays");
    assert!(
        reply.body["detail"].as_str().unwrap().contains("30"),
        "the limit is named: {}",
        reply.text
    );

    // The limit is configuration: a deployment may lift it.
    let mut limits = PlanLimits::default();
    limits.free.max_retain_days = Some(365);
    let generous = Api::with(true, limits);
    let t = generous.signup("acme").await;
    let body = json!({ "name": "long", "schedules": [{ "cron": "0 3 * * *", "retainDays": 90 }] });
    generous.post("/v1/policies", &t.admin, body).await.expect(201);
}

#[tokio::test]
async fn copying_pv_data_is_a_paid_feature_even_to_the_orgs_own_bucket() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let dest = api.destination(&t.admin, "own bucket").await;
    let (cluster, _) = api.cluster(&t.admin, "prod", Some(&dest)).await;
    let body = |mode: &str| json!({ "name": format!("pv-{mode}"), "clusterId": cluster, "selection": { "namespaces": ["default"] }, "pvMode": mode });
    let reply = api
        .post("/v1/backups", &t.admin, body("snapshotAndCopy"))
        .await
        .problem(422, "plan_limit_exceeded");
    assert_eq!(reply.body["field"], "pvMode");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("free plan") && detail.contains("your own") && detail.contains("paid-plan feature"),
        "the limit is named: {detail}"
    );
    // Local snapshots and resource backups stay free.
    api.post("/v1/backups", &t.admin, body("snapshot")).await.expect(201);

    // An org on the paid plan copies.
    api.state
        .control_plane
        .set_plan(&t.org_id.parse().unwrap(), arca_core::model::plan::Plan::Paid)
        .await
        .unwrap();
    api.post("/v1/backups", &t.admin, body("snapshotAndCopy"))
        .await
        .expect(201);
}

#[tokio::test]
async fn the_effective_destination_follows_definition_then_cluster_then_org() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let org_dest = api.destination(&t.admin, "org default").await;
    let cluster_dest = api.destination(&t.admin, "cluster default").await;
    let own_dest = api.destination(&t.admin, "override").await;

    // No destination anywhere: refused, naming the field.
    let (bare, _) = api.cluster(&t.admin, "bare", None).await;
    api.backup(&t.admin, &bare, None, None)
        .await
        .problem(400, "validation_failed")
        .body["field"]
        .as_str()
        .map(|f| assert_eq!(f, "destinationId"))
        .unwrap();

    let org = api.get("/v1/org", &t.admin).await.expect(200);
    api.put(
        "/v1/org",
        &t.admin,
        &org.etag(),
        json!({ "name": "acme", "defaultDestinationId": org_dest }),
    )
    .await
    .expect(200);
    let from_org = api.backup(&t.admin, &bare, None, None).await.expect(201);
    assert_eq!(
        from_org.body["effectiveDestination"],
        json!({ "destinationId": org_dest, "source": "ORG" })
    );

    let (with_default, _) = api.cluster(&t.admin, "with default", Some(&cluster_dest)).await;
    let from_cluster = api.backup(&t.admin, &with_default, None, None).await.expect(201);
    assert_eq!(
        from_cluster.body["effectiveDestination"],
        json!({ "destinationId": cluster_dest, "source": "CLUSTER" })
    );

    let own = api
        .backup(&t.admin, &with_default, None, Some(&own_dest))
        .await
        .expect(201);
    let got = api
        .get(&format!("/v1/backups/{}", own.id()), &t.admin)
        .await
        .expect(200);
    assert_eq!(
        got.body["effectiveDestination"],
        json!({ "destinationId": own_dest, "source": "BACKUP_DEFINITION" })
    );
    let list = api.get("/v1/backups", &t.admin).await.expect(200);
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["effectiveDestination"]["destinationId"].is_string())
    );
}

#[tokio::test]
async fn a_cluster_in_use_or_with_recovery_points_is_not_deleted_lightly() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let dest = api.destination(&t.admin, "s3").await;
    let (cluster, _) = api.cluster(&t.admin, "prod", Some(&dest)).await;
    let def = api.backup(&t.admin, &cluster, None, None).await.expect(201).id();
    let path = format!("/v1/clusters/{cluster}");

    let c = api.get(&path, &t.admin).await.expect(200);
    let reply = api
        .delete(&path, &t.admin, &c.etag())
        .await
        .problem(409, "cluster_in_use");
    assert!(reply.body["detail"].as_str().unwrap().contains(&def), "{}", reply.text);

    api.plant_recovery_point(&t.org_id, &cluster, &def, None).await;
    api.plant_recovery_point(&t.org_id, &cluster, &def, None).await;
    let d = api.get(&format!("/v1/backups/{def}"), &t.admin).await.expect(200);
    api.delete(&format!("/v1/backups/{def}"), &t.admin, &d.etag())
        .await
        .expect(204);

    let c = api.get(&path, &t.admin).await.expect(200);
    let reply = api
        .delete(&path, &t.admin, &c.etag())
        .await
        .problem(409, "confirmation_required");
    assert!(
        reply.body["detail"].as_str().unwrap().contains("2 recovery point"),
        "says how many: {}",
        reply.text
    );
    api.delete(&format!("{path}?confirm=true"), &t.admin, &c.etag())
        .await
        .expect(204);
    api.get(&path, &t.admin).await.problem(404, "not_found");
    let rps = api.get("/v1/recoverypoints", &t.admin).await.expect(200);
    assert_eq!(rps.body["items"], json!([]), "points of a deleted cluster are hidden");
}

#[tokio::test]
async fn malformed_requests_are_400_naming_what_is_wrong() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let send = |body: &str| {
        let request = axum::http::Request::post("/v1/policies")
            .header("authorization", format!("Bearer {}", t.admin))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        api.send(request)
    };
    send("{\"name\": ").await.problem(400, "malformed_json");
    send(r#"{"name": "p", "schedules": [{"cron": "0 * * * *", "retainDays": 1}]} trailing"#)
        .await
        .problem(400, "malformed_json");

    let reply = send(r#"{"name": "p", "schedules": [], "retention": 3}"#)
        .await
        .problem(400, "invalid_body");
    assert_eq!(reply.body["field"], "retention", "{}", reply.text);
    let reply = send(r#"{"name": "p", "schedules": [{"cron": "0 * * * *", "retainDays": 1, "keep": 2}]}"#).await;
    assert_eq!(reply.problem(400, "invalid_body").body["field"], "schedules[0].keep");
    let reply = send(r#"{"name": "p", "schedules": [{"cron": "0 * * * *", "retainDays": "x"}]}"#).await;
    assert_eq!(
        reply.problem(400, "invalid_body").body["field"],
        "schedules[0].retainDays"
    );
    let reply = send(r#"{"schedules": []}"#).await;
    assert_eq!(reply.problem(400, "invalid_body").body["field"], "name");
    // Well-formed but invalid: the core's validation, with its field.
    let reply = send(r#"{"name": "p", "schedules": [{"cron": "every day", "retainDays": 1}]}"#).await;
    assert_eq!(
        reply.problem(400, "validation_failed").body["field"],
        "schedules[0].cron"
    );
    let target =
        json!({ "name": "d", "target": { "kind": "S3", "bucket": "arca-b", "region": "r", "bucketName": "x" } });
    let reply = api
        .post("/v1/destinations", &t.admin, target)
        .await
        .problem(400, "invalid_body");
    assert_eq!(reply.body["field"], "target.bucketName", "{}", reply.text);
    let reply = api
        .backup(&t.admin, "cl_nope", None, None)
        .await
        .problem(400, "invalid_body");
    assert_eq!(reply.body["field"], "clusterId");

    // Ids, cursors, limits, query parameters.
    api.get("/v1/clusters/not-an-id", &t.admin)
        .await
        .problem(400, "invalid_id");
    api.get(&format!("/v1/clusters/{}", JobId::new()), &t.admin)
        .await
        .problem(400, "invalid_id");
    let reply = api
        .get("/v1/clusters?cursor=bogus", &t.admin)
        .await
        .problem(400, "validation_failed");
    assert_eq!(reply.body["field"], "cursor");
    let reply = api
        .get("/v1/clusters?limit=0", &t.admin)
        .await
        .problem(400, "validation_failed");
    assert_eq!(reply.body["field"], "limit");
    let reply = api
        .get("/v1/clusters?limit=ten", &t.admin)
        .await
        .problem(400, "invalid_query");
    assert_eq!(reply.body["field"], "limit");
    let reply = api
        .get("/v1/clusters?limt=10", &t.admin)
        .await
        .problem(400, "invalid_query");
    assert_eq!(reply.body["field"], "limt");
    // A cursor of another listing is refused, not followed.
    for i in 0..2 {
        api.destination(&t.admin, &format!("d{i}")).await;
    }
    let page = api.get("/v1/destinations?limit=1", &t.admin).await.expect(200);
    let cursor = page.body["nextCursor"].as_str().unwrap();
    api.get(&format!("/v1/policies?cursor={cursor}"), &t.admin)
        .await
        .problem(400, "validation_failed");

    let request = axum::http::Request::post("/v1/policies")
        .header("authorization", format!("Bearer {}", t.admin))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    api.send(request).await.problem(415, "unsupported_media_type");
}

#[tokio::test]
async fn internal_errors_say_only_internal_error_and_the_request_id() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let (cluster, _) = api.cluster(&t.admin, "prod", None).await;
    // A record the code cannot read: the core reports it with keys and serde's text.
    let org = t.org_id.parse::<OrgId>().unwrap();
    let cluster_id = cluster.parse::<ClusterId>().unwrap();
    let item = Item {
        pk: arca_core::store::keys::org_pk(&org),
        sk: arca_core::store::keys::cluster_sk(&cluster_id),
        gsi1: None,
        gsi2: None,
        gsi3: None,
        version: 5,
        expires_at: None,
        body: json!({ "secretInternalDetail": true }),
    };
    api.items.put(item, Condition::None).await.unwrap();
    let request = axum::http::Request::get(format!("/v1/clusters/{cluster}"))
        .header("authorization", format!("Bearer {}", t.admin))
        .header("x-request-id", "req-internal-1")
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = api.send(request).await.problem(500, "internal");
    assert_eq!(reply.body["detail"], "internal error (request id req-internal-1)");
    assert_eq!(reply.body["requestId"], "req-internal-1");
    assert_eq!(reply.request_id.as_deref(), Some("req-internal-1"));
    for leak in ["parse", "ORG#", "CLUSTER#", "secretInternalDetail", "missing field"] {
        assert!(!reply.text.contains(leak), "{leak:?} leaked: {}", reply.text);
    }
}

#[tokio::test]
async fn a_restores_object_results_are_stored_in_batches_and_paged_by_outcome() {
    let api = Api::new();
    let t = api.signup("acme").await;
    let dest = api.destination(&t.admin, "s3").await;
    let (cluster, token) = api.cluster(&t.admin, "prod", Some(&dest)).await;
    let def = api.default_backup(&t, &cluster, None).await;
    let rp = api.plant_recovery_point(&t.org_id, &cluster, &def, None).await;
    api.activate(&token).await;
    let created = api
        .post(
            "/v1/restores",
            &t.admin,
            json!({ "recoveryPointId": rp.to_string(), "targetClusterId": cluster }),
        )
        .await
        .expect(201);
    let restore_id = created.body["restore"]["id"].as_str().unwrap().to_owned();
    let objects = format!("/v1/restores/{restore_id}/objects");
    let empty = api.get(&objects, &t.admin).await.expect(200);
    assert_eq!(empty.body["items"], json!([]), "nothing reported yet");

    // The agent takes the job and reports 250 objects in three batches.
    let session = api.connect(&token).await;
    let polled = api.poll(&token, &session).await.expect(200);
    let job = polled.job_id();
    assert_eq!(polled.body["job"]["type"], "K8S_RESTORE");
    let lease = polled.body["leaseToken"].as_str().unwrap().to_owned();
    let object = |i: usize| {
        let (outcome, reason) = match i % 5 {
            0 => ("skipped", Some(format!("already exists ({i})"))),
            1 => ("failed", Some("forbidden".to_string())),
            2 => ("updated", None),
            _ => ("created", None),
        };
        json!({ "resource": "configmaps", "namespace": "shop", "name": format!("cm-{i:03}"),
                "outcome": outcome, "reason": reason })
    };
    let results = format!("/v1/agent/jobs/{job}/results");
    for (seq, range) in [(0, 0..100), (1, 100..200), (2, 200..250)] {
        let batch = json!({ "leaseToken": lease, "seq": seq, "objects": range.map(object).collect::<Vec<_>>() });
        let reply = api.agent(&token, &results, Some(&session), batch.clone()).await;
        assert_eq!(reply.status.as_u16(), 204, "{}", reply.text);
        // A retried batch replaces itself: nothing is counted twice.
        let reply = api.agent(&token, &results, Some(&session), batch).await;
        assert_eq!(reply.status.as_u16(), 204, "{}", reply.text);
    }
    let too_big = json!({ "leaseToken": lease, "seq": 3, "objects": (0..101).map(object).collect::<Vec<_>>() });
    api.agent(&token, &results, Some(&session), too_big)
        .await
        .problem(400, "validation_failed");

    // Every object, in order, across pages (a viewer may read them).
    let viewer = api.key(&t, "viewer").await;
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{objects}?limit=70&cursor={c}"),
            None => format!("{objects}?limit=70"),
        };
        let page = api.get(&path, &viewer).await.expect(200);
        for o in page.body["items"].as_array().unwrap() {
            names.push(o["name"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, (0..250).map(|i| format!("cm-{i:03}")).collect::<Vec<_>>());

    // Only the skipped ones, with their reasons.
    let skipped = api
        .get(&format!("{objects}?outcome=skipped&limit=200"), &t.admin)
        .await
        .expect(200);
    let items = skipped.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 50, "{}", skipped.text);
    assert!(items.iter().all(|o| o["outcome"] == "skipped"));
    assert_eq!(items[1]["reason"], "already exists (5)");
    let failed = api
        .get(&format!("{objects}?outcome=failed&limit=200"), &t.admin)
        .await
        .expect(200);
    assert_eq!(failed.body["items"].as_array().unwrap().len(), 50);
    assert_eq!(failed.body["items"][0]["reason"], "forbidden");
    api.get(&format!("{objects}?cursor=garbage"), &t.admin)
        .await
        .problem(400, "validation_failed");
    api.get(&format!("{objects}?outcome=lost"), &t.admin).await.expect(400);

    // The result batches do not show up as restores.
    let list = api.get("/v1/restores", &t.admin).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1, "{}", list.text);
    assert_eq!(list.body["items"][0]["id"], restore_id.as_str());

    // Once the job has ended, no more results are taken.
    api.agent_job(
        &token,
        &session,
        &job,
        "complete",
        json!({ "leaseToken": lease, "state": "COMPLETED" }),
    )
    .await
    .expect(200);
    api.agent(
        &token,
        &results,
        Some(&session),
        json!({ "leaseToken": lease, "seq": 9, "objects": [object(3)] }),
    )
    .await
    .problem(409, "lease_lost");
}
