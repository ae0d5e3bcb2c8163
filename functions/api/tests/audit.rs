//! The audit trail (`GET /v1/audit`): every mutating API-key call is recorded once, with
//! the key's id, name and role, the operation, the route, the target ids and the status,
//! refusals included; never a secret; kept for the org's `auditRetentionDays` (the item's
//! TTL); read by admins only, filtered and paged; agent calls, reads and failed sign-ins
//! are not recorded.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arca_core::ports::item_store::{Condition, ItemStore, Page, Query, SortKeyRange, Write};
use axum::http::Method;
use common::{Api, Reply, Tenant};
use serde_json::{Value, json};

/// A key of the tenant's org: (id, secret, name).
async fn key(api: &Api, t: &Tenant, name: &str, role: &str) -> (String, String, String) {
    let reply = api
        .post("/v1/apikeys", &t.admin, json!({ "name": name, "role": role }))
        .await
        .expect(201);
    (
        reply.id(),
        reply.body["secret"].as_str().unwrap().to_owned(),
        name.to_owned(),
    )
}

/// Every audit record of the org, newest first, read page by page with `query`.
async fn trail(api: &Api, admin: &str, query: &str) -> Vec<Value> {
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = match &cursor {
            Some(c) => format!("/v1/audit?{query}{sep}cursor={c}"),
            None => format!("/v1/audit?{query}"),
        };
        let page = api.get(&path, admin).await.expect(200);
        records.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return records,
        }
    }
}

/// The newest record of the org.
async fn newest(api: &Api, admin: &str) -> Value {
    let page = api.get("/v1/audit?limit=1", admin).await.expect(200);
    page.body["items"][0].clone()
}

/// What one call must have left as the newest record.
struct Expect<'a> {
    key: &'a (String, String, String),
    role: &'a str,
    operation: &'a str,
    method: &'a str,
    route: &'a str,
    targets: Vec<String>,
}

impl Expect<'_> {
    #[track_caller]
    fn check(&self, record: &Value, reply: &Reply) {
        let what = format!("{} {} -> {}: {record}", self.method, self.route, reply.status);
        assert_eq!(record["keyId"], self.key.0.as_str(), "{what}");
        assert_eq!(record["keyName"], self.key.2.as_str(), "{what}");
        assert_eq!(record["role"], self.role, "{what}");
        assert_eq!(record["operation"], self.operation, "{what}");
        assert_eq!(record["method"], self.method, "{what}");
        assert_eq!(record["route"], self.route, "{what}");
        assert_eq!(record["status"], reply.status.as_u16(), "{what}");
        let targets: Vec<&str> = record["targetIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(targets, self.targets, "{what}");
        assert!(record["id"].as_str().unwrap().starts_with("aud_"), "{what}");
    }
}

/// Calls `method path` with `key` and checks the one record it left (and that it left
/// exactly one). `created`: the call names what it created (`Location`), a target too.
#[allow(clippy::too_many_arguments)]
async fn call(
    api: &Api,
    admin: &str,
    (key, role): (&(String, String, String), &str),
    (method, route, path): (Method, &str, &str),
    if_match: Option<&str>,
    body: Option<Value>,
    (operation, status): (&str, u16),
    path_ids: &[&str],
) -> Reply {
    let before = trail(api, admin, "limit=200").await.len();
    let reply = api
        .request(method.clone(), path, Some(&key.1), if_match, body)
        .await
        .expect(status);
    let after = trail(api, admin, "limit=200").await;
    assert_eq!(after.len(), before + 1, "{method} {path}: one record per call");
    let mut targets: Vec<String> = path_ids.iter().map(|s| (*s).to_owned()).collect();
    if let Some(location) = reply.location.as_deref().filter(|l| *l != path) {
        targets.push(location.rsplit('/').next().unwrap().to_owned());
    }
    Expect {
        key,
        role,
        operation,
        method: method.as_str(),
        route,
        targets,
    }
    .check(&after[0], &reply);
    reply
}

#[tokio::test]
async fn every_mutating_route_leaves_one_record_naming_caller_operation_targets_and_status() {
    let api = Api::new();
    let t = api.signup("audited").await;
    let admin_key = api.get("/v1/apikeys", &t.admin).await.expect(200).body["items"][0].clone();
    let admin = (
        admin_key["id"].as_str().unwrap().to_owned(),
        t.admin.clone(),
        admin_key["name"].as_str().unwrap().to_owned(),
    );
    let a = (&admin, "admin");
    let operator = key(&api, &t, "ops", "operator").await;
    let viewer = key(&api, &t, "eyes", "viewer").await;
    let (op, vw) = ((&operator, "operator"), (&viewer, "viewer"));
    let adm = t.admin.as_str();
    use Method as M;

    // The two key creations above are recorded, the created key its target.
    let created = trail(&api, adm, "").await;
    assert_eq!(created.len(), 2, "{created:?}");
    assert_eq!(created[0]["operation"], "createApiKey");
    assert_eq!(created[0]["targetIds"], json!([viewer.0]));
    assert_eq!(created[1]["targetIds"], json!([operator.0]));

    // The org.
    let org = api.get("/v1/org", adm).await.expect(200);
    let ok = call(
        &api,
        adm,
        a,
        (M::PUT, "/v1/org", "/v1/org"),
        Some(&org.etag()),
        Some(json!({ "name": "audited", "auditRetentionDays": 30 })),
        ("updateOrg", 200),
        &[],
    )
    .await;
    assert_eq!(ok.body["auditRetentionDays"], 30);

    // Destinations, clusters, policies, backups: create, update, actions, refusals, delete.
    let dst = call(
        &api,
        adm,
        a,
        (M::POST, "/v1/destinations", "/v1/destinations"),
        None,
        Some(json!({ "name": "d", "target": { "kind": "LOCAL_FILESYSTEM", "path": "/tmp/arca-audit-test" } })),
        ("createDestination", 201),
        &[],
    )
    .await
    .id();
    let cl = call(
        &api,
        adm,
        a,
        (M::POST, "/v1/clusters", "/v1/clusters"),
        None,
        Some(json!({ "name": "c", "defaultDestinationId": dst })),
        ("registerCluster", 201),
        &[],
    )
    .await;
    let (cl, token) = (cl.id(), cl.body["agentToken"].as_str().unwrap().to_owned());
    let path = format!("/v1/clusters/{cl}");
    let etag = api.get(&path, adm).await.etag();
    call(
        &api,
        adm,
        a,
        (M::PUT, "/v1/clusters/{id}", &path),
        Some(&etag),
        Some(json!({ "name": "c2", "defaultDestinationId": dst })),
        ("updateCluster", 200),
        &[&cl],
    )
    .await;
    let etag = api.get(&path, adm).await.etag();
    let rotated = call(
        &api,
        adm,
        a,
        (
            M::POST,
            "/v1/clusters/{id}/rotate-token",
            &format!("{path}/rotate-token"),
        ),
        Some(&etag),
        None,
        ("rotateAgentToken", 200),
        &[&cl],
    )
    .await;
    let token = rotated.body["agentToken"].as_str().map_or(token, str::to_owned);
    // A viewer's attempt: refused, and recorded as the viewer's.
    call(
        &api,
        adm,
        vw,
        (M::PUT, "/v1/clusters/{id}", &path),
        Some(&etag),
        Some(json!({ "name": "x" })),
        ("updateCluster", 403),
        &[&cl],
    )
    .await;

    let pol = call(
        &api,
        adm,
        a,
        (M::POST, "/v1/policies", "/v1/policies"),
        None,
        Some(json!({ "name": "p", "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] })),
        ("createPolicy", 201),
        &[],
    )
    .await;
    let (pol, pol_etag) = (pol.id(), pol.etag());
    let pol_path = format!("/v1/policies/{pol}");
    // Bad input: a 400 from the body and a 428 without If-Match are recorded too.
    call(
        &api,
        adm,
        a,
        (M::POST, "/v1/policies", "/v1/policies"),
        None,
        Some(json!({ "name": "p", "schedulez": [] })),
        ("createPolicy", 400),
        &[],
    )
    .await;
    call(
        &api,
        adm,
        a,
        (M::PUT, "/v1/policies/{id}", &pol_path),
        None,
        Some(json!({ "name": "p2", "schedules": [{ "cron": "0 4 * * *", "retainDays": 7 }] })),
        ("updatePolicy", 428),
        &[&pol],
    )
    .await;
    call(
        &api,
        adm,
        a,
        (M::PUT, "/v1/policies/{id}", &pol_path),
        Some(&pol_etag),
        Some(json!({ "name": "p2", "schedules": [{ "cron": "0 4 * * *", "retainDays": 7 }] })),
        ("updatePolicy", 200),
        &[&pol],
    )
    .await;

    let bkp = call(
        &api,
        adm,
        a,
        (M::POST, "/v1/backups", "/v1/backups"),
        None,
        Some(json!({ "name": "b", "clusterId": cl, "policyId": pol, "selection": { "fullCluster": true } })),
        ("createBackupDefinition", 201),
        &[],
    )
    .await
    .id();
    let bkp_path = format!("/v1/backups/{bkp}");
    call(
        &api,
        adm,
        op,
        (M::POST, "/v1/backups/{id}/pause", &format!("{bkp_path}/pause")),
        None,
        None,
        ("setBackupPaused", 200),
        &[&bkp],
    )
    .await;
    call(
        &api,
        adm,
        op,
        (M::POST, "/v1/backups/{id}/resume", &format!("{bkp_path}/resume")),
        None,
        None,
        ("setBackupPaused", 200),
        &[&bkp],
    )
    .await;
    api.activate(&token).await;
    let job = call(
        &api,
        adm,
        op,
        (M::POST, "/v1/backups/{id}/run", &format!("{bkp_path}/run")),
        None,
        Some(json!({})),
        ("runBackupNow", 201),
        &[&bkp],
    )
    .await
    .id();
    call(
        &api,
        adm,
        op,
        (M::POST, "/v1/jobs/{id}/cancel", &format!("/v1/jobs/{job}/cancel")),
        None,
        None,
        ("cancelJob", 200),
        &[&job],
    )
    .await;
    // An operator may not configure: 403, the operator's.
    call(
        &api,
        adm,
        op,
        (M::POST, "/v1/policies", "/v1/policies"),
        None,
        Some(json!({ "name": "p", "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] })),
        ("createPolicy", 403),
        &[],
    )
    .await;

    // A restore of a (planted) recovery point, then the point's deletion.
    let rp = api.plant_recovery_point(&t.org_id, &cl, &bkp, None).await.to_string();
    call(
        &api,
        adm,
        op,
        (M::POST, "/v1/restores", "/v1/restores"),
        None,
        Some(json!({ "recoveryPointId": rp, "targetClusterId": cl })),
        ("createRestore", 201),
        &[],
    )
    .await;
    let rp_path = format!("/v1/recoverypoints/{rp}");
    let rp_etag = api.get(&rp_path, adm).await.expect(200).etag();
    let deleted_rp = api
        .request(M::DELETE, &rp_path, Some(&admin.1), Some(&rp_etag), None)
        .await;
    let record = newest(&api, adm).await;
    assert_eq!(record["operation"], "deleteRecoveryPoint", "{record}");
    assert_eq!(record["status"], deleted_rp.status.as_u16(), "{record}");
    assert_eq!(record["targetIds"][0], rp.as_str(), "{record}");

    // Linked accounts and RDS definitions.
    let ca = call(
        &api,
        adm,
        a,
        (M::POST, "/v1/cloud-accounts", "/v1/cloud-accounts"),
        None,
        Some(json!({ "name": "aws", "regions": ["us-east-1"] })),
        ("linkCloudAccount", 201),
        &[],
    )
    .await
    .id();
    let rds = call(&api, adm, a, (M::POST, "/v1/rds-backups", "/v1/rds-backups"), None,
        Some(json!({ "name": "r", "cloudAccountId": ca, "region": "us-east-1", "databases": [{ "identifier": "orders" }] })),
        ("createRdsBackupDefinition", 201), &[]).await;
    let rds = rds.id();
    call(
        &api,
        adm,
        op,
        (
            M::POST,
            "/v1/rds-backups/{id}/pause",
            &format!("/v1/rds-backups/{rds}/pause"),
        ),
        None,
        None,
        ("setRdsBackupPaused", 200),
        &[&rds],
    )
    .await;
    let rds_etag = api.get(&format!("/v1/rds-backups/{rds}"), adm).await.etag();
    call(
        &api,
        adm,
        a,
        (M::DELETE, "/v1/rds-backups/{id}", &format!("/v1/rds-backups/{rds}")),
        Some(&rds_etag),
        None,
        ("deleteRdsBackupDefinition", 204),
        &[&rds],
    )
    .await;
    let ca_etag = api.get(&format!("/v1/cloud-accounts/{ca}"), adm).await.etag();
    call(
        &api,
        adm,
        a,
        (
            M::DELETE,
            "/v1/cloud-accounts/{id}",
            &format!("/v1/cloud-accounts/{ca}"),
        ),
        Some(&ca_etag),
        None,
        ("deleteCloudAccount", 204),
        &[&ca],
    )
    .await;

    // Deletes: a refused one (409: the policy is in use), then in order.
    let pol_etag = api.get(&pol_path, adm).await.etag();
    call(
        &api,
        adm,
        a,
        (M::DELETE, "/v1/policies/{id}", &pol_path),
        Some(&pol_etag),
        None,
        ("deletePolicy", 409),
        &[&pol],
    )
    .await;
    let bkp_etag = api.get(&bkp_path, adm).await.etag();
    call(
        &api,
        adm,
        a,
        (M::DELETE, "/v1/backups/{id}", &bkp_path),
        Some(&bkp_etag),
        None,
        ("deleteBackupDefinition", 204),
        &[&bkp],
    )
    .await;
    let pol_etag = api.get(&pol_path, adm).await.etag();
    call(
        &api,
        adm,
        a,
        (M::DELETE, "/v1/policies/{id}", &pol_path),
        Some(&pol_etag),
        None,
        ("deletePolicy", 204),
        &[&pol],
    )
    .await;
    let key_path = format!("/v1/apikeys/{}", viewer.0);
    let key_etag = api.get(&key_path, adm).await.etag();
    call(
        &api,
        adm,
        a,
        (M::DELETE, "/v1/apikeys/{id}", &key_path),
        Some(&key_etag),
        None,
        ("deleteApiKey", 204),
        &[&viewer.0],
    )
    .await;
    // The deleted key's trail stays, under its name.
    let its = trail(&api, adm, &format!("keyId={}", viewer.0)).await;
    assert_eq!(its.len(), 1);
    assert_eq!(its[0]["keyName"], "eyes");

    // Alert channels: create (the signing secret is in the answer, never in the trail),
    // an operator's refusal, update, test, delete.
    let hook = json!({ "name": "oncall", "kind": "webhook", "url": "http://127.0.0.1:9/hook" });
    call(
        &api,
        adm,
        op,
        (M::POST, "/v1/alerts/channels", "/v1/alerts/channels"),
        None,
        Some(hook.clone()),
        ("createAlertChannel", 403),
        &[],
    )
    .await;
    let channel = call(
        &api,
        adm,
        a,
        (M::POST, "/v1/alerts/channels", "/v1/alerts/channels"),
        None,
        Some(hook),
        ("createAlertChannel", 201),
        &[],
    )
    .await;
    let signing_secret = channel.body["signingSecret"].as_str().unwrap().to_owned();
    let ach = channel.id();
    let ach_path = format!("/v1/alerts/channels/{ach}");
    let patched = call(
        &api,
        adm,
        a,
        (M::PATCH, "/v1/alerts/channels/{id}", &ach_path),
        Some(&channel.etag()),
        Some(json!({ "enabled": false })),
        ("updateAlertChannel", 200),
        &[&ach],
    )
    .await;
    call(
        &api,
        adm,
        a,
        (M::POST, "/v1/alerts/channels/{id}/test", &format!("{ach_path}/test")),
        None,
        Some(json!({})),
        ("testAlertChannel", 200),
        &[&ach],
    )
    .await;
    call(
        &api,
        adm,
        a,
        (M::DELETE, "/v1/alerts/channels/{id}", &ach_path),
        Some(&patched.etag()),
        None,
        ("deleteAlertChannel", 204),
        &[&ach],
    )
    .await;

    // The one GET that changes something: an admin's manifest replaces the agent token.
    let manifest = || {
        axum::http::Request::get(format!("/v1/clusters/{cl}/agent.yaml"))
            .header(axum::http::header::AUTHORIZATION, format!("Bearer {adm}"))
            .header(axum::http::header::HOST, "arca.example.com")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    api.send(manifest()).await.expect(200);
    let record = newest(&api, adm).await;
    assert_eq!(record["operation"], "installAgentToken", "{record}");
    assert_eq!(record["method"], "GET", "{record}");
    assert_eq!(record["route"], "/v1/clusters/{id}/agent.yaml", "{record}");
    assert_eq!(record["targetIds"], json!([cl]), "{record}");
    assert_eq!(record["status"], 200, "{record}");
    let token = api
        .send(manifest())
        .await
        .expect(200)
        .text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .find(|w| w.starts_with("arcagent_"))
        .unwrap()
        .to_owned();

    // Not recorded: reads, the agent protocol, a failed sign-in (no org to put it in).
    let before = trail(&api, adm, "").await.len();
    api.get("/v1/clusters", adm).await.expect(200);
    api.connect(&token).await;
    api.request(
        M::POST,
        "/v1/policies",
        Some("arca_not-a-key"),
        None,
        Some(json!({ "name": "x" })),
    )
    .await
    .expect(401);
    api.request(M::POST, "/v1/policies", None, None, Some(json!({ "name": "x" })))
        .await
        .expect(401);
    assert_eq!(trail(&api, adm, "").await.len(), before);

    // No secret in any record: the answers, and the stored items themselves.
    let secrets = [&admin.1, &operator.1, &viewer.1, &token, &signing_secret];
    let answered = serde_json::to_string(&trail(&api, adm, "").await).unwrap();
    let stored = stored_audit_items(&api, &t.org_id).await;
    assert_eq!(stored.len(), before);
    let stored = serde_json::to_string(&stored.iter().map(|i| &i.body).collect::<Vec<_>>()).unwrap();
    for secret in secrets {
        assert!(!answered.contains(secret.as_str()), "a secret in an answered record");
        assert!(!stored.contains(secret.as_str()), "a secret in a stored record");
        let hash = arca_core::model::secret::Secret::from_presented(secret.as_str()).hash();
        assert!(!stored.contains(hash.as_str()), "a secret's hash in a stored record");
    }
}

/// The raw `AUDIT#` items of an org.
async fn stored_audit_items(api: &Api, org: &str) -> Vec<arca_core::ports::item_store::Item> {
    let org = org.parse().unwrap();
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = api
            .items
            .query(Query {
                index: None,
                pk: arca_core::store::keys::org_pk(&org),
                range: SortKeyRange::BeginsWith(arca_core::store::keys::AUDIT_SK_PREFIX.to_owned()),
                limit: 200,
                ascending: true,
                cursor,
            })
            .await
            .unwrap();
        items.extend(page.items);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return items,
        }
    }
}

#[tokio::test]
async fn records_expire_after_the_orgs_retention_which_is_bounded() {
    let api = Api::new();
    let t = api.signup("kept").await;
    let org = api.get("/v1/org", &t.admin).await.expect(200);
    assert_eq!(org.body["auditRetentionDays"], 365, "a year by default");
    for bad in [0, 3651] {
        api.put(
            "/v1/org",
            &t.admin,
            &org.etag(),
            json!({ "name": "kept", "auditRetentionDays": bad }),
        )
        .await
        .problem(400, "validation_failed");
    }
    let check_ttl = |item: &arca_core::ports::item_store::Item, days: i64| {
        let at = chrono::DateTime::parse_from_rfc3339(item.body["at"].as_str().unwrap()).unwrap();
        let expires = chrono::DateTime::parse_from_rfc3339(item.body["expiresAt"].as_str().unwrap()).unwrap();
        assert_eq!(expires - at, chrono::Duration::days(days), "{:?}", item.body);
        assert_eq!(
            item.expires_at,
            Some(expires.timestamp()),
            "the item's TTL is the record's expiry"
        );
    };
    // Recorded under the default (the refused updates above).
    let items = stored_audit_items(&api, &t.org_id).await;
    assert_eq!(items.len(), 2);
    check_ttl(&items[0], 365);

    let org = api
        .put(
            "/v1/org",
            &t.admin,
            &org.etag(),
            json!({ "name": "kept", "auditRetentionDays": 7 }),
        )
        .await
        .expect(200);
    // The update itself is recorded after it: under the new retention.
    let items = stored_audit_items(&api, &t.org_id).await;
    check_ttl(items.last().unwrap(), 7);
    // Absent from a later update: unchanged.
    let org = api
        .put("/v1/org", &t.admin, &org.etag(), json!({ "name": "kept2" }))
        .await
        .expect(200);
    assert_eq!(org.body["auditRetentionDays"], 7);
    // Retention is the org's, not a backup policy's: the default policy is untouched.
    let policy = api
        .get(&format!("/v1/policies/{}", t.default_policy_id), &t.admin)
        .await
        .expect(200);
    assert_eq!(policy.body["version"], 1);
}

#[tokio::test]
async fn only_admins_read_the_trail_and_nothing_changes_or_deletes_it() {
    let api = Api::new();
    let t = api.signup("guarded").await;
    for role in ["viewer", "operator"] {
        let k = api.key(&t, role).await;
        api.get("/v1/audit", &k).await.problem(403, "forbidden");
    }
    api.get("/v1/audit", "arca_nope").await.expect(401);
    let record = newest(&api, &t.admin).await;
    let id = record["id"].as_str().unwrap();
    for method in [Method::DELETE, Method::PUT, Method::PATCH, Method::POST] {
        let reply = api
            .request(
                method.clone(),
                &format!("/v1/audit/{id}"),
                Some(&t.admin),
                Some("\"1\""),
                Some(json!({})),
            )
            .await;
        assert!(reply.status == 404 || reply.status == 405, "{method}: {}", reply.text);
        let reply = api
            .request(
                method.clone(),
                "/v1/audit",
                Some(&t.admin),
                Some("\"1\""),
                Some(json!({})),
            )
            .await;
        assert!(reply.status == 404 || reply.status == 405, "{method}: {}", reply.text);
    }
    assert_eq!(newest(&api, &t.admin).await, record, "still there");
}

#[tokio::test]
async fn the_trail_filters_by_key_operation_and_time_and_pages_newest_first() {
    let api = Api::new();
    let t = api.signup("filtered").await;
    let ops = key(&api, &t, "ops", "operator").await;
    let start = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    for n in 0..5 {
        api.post(
            "/v1/policies",
            &t.admin,
            json!({ "name": format!("p{n}"), "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] }),
        )
        .await
        .expect(201);
        api.post(
            "/v1/policies",
            &ops.1,
            json!({ "name": "no", "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] }),
        )
        .await
        .expect(403);
    }
    let all = trail(&api, &t.admin, "").await;
    assert_eq!(all.len(), 11, "one key creation, five creations, five refusals");
    let time = |r: &Value| chrono::DateTime::parse_from_rfc3339(r["at"].as_str().unwrap()).unwrap();
    let ats: Vec<_> = all.iter().map(time).collect();
    let ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(ats.windows(2).all(|w| w[0] >= w[1]), "{ats:?}");

    // Pages of 3: every record once, in the same order.
    let paged = trail(&api, &t.admin, "limit=3").await;
    assert_eq!(paged, all);
    api.get("/v1/audit?limit=0", &t.admin)
        .await
        .problem(400, "validation_failed");
    api.get("/v1/audit?limit=201", &t.admin)
        .await
        .problem(400, "validation_failed");

    let by_ops = trail(&api, &t.admin, &format!("keyId={}", ops.0)).await;
    assert_eq!(by_ops.len(), 5);
    assert!(by_ops.iter().all(|r| r["keyName"] == "ops" && r["status"] == 403));
    let created = trail(&api, &t.admin, "operation=createPolicy&limit=2").await;
    assert_eq!(created.len(), 10);
    let keys = trail(&api, &t.admin, "operation=createApiKey").await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["targetIds"], json!([ops.0]));
    api.get("/v1/audit?operation=nope", &t.admin)
        .await
        .problem(400, "invalid_query");
    api.get("/v1/audit?keyId=cl_01ARZ3NDEKTSV4RRFFQ69G5FAV", &t.admin)
        .await
        .problem(400, "invalid_query");
    api.get("/v1/audit?what=1", &t.admin)
        .await
        .problem(400, "invalid_query");

    // Time: `since` inclusive, `until` exclusive.
    let enc = |t: &str| t.replace('+', "%2B");
    let newest_at = ats[0];
    let only_newest = trail(&api, &t.admin, &format!("since={}", enc(&newest_at.to_rfc3339()))).await;
    assert!(!only_newest.is_empty() && only_newest.iter().all(|r| time(r) >= newest_at));
    let before_start = trail(&api, &t.admin, &format!("until={}", enc(&start.to_rfc3339()))).await;
    assert_eq!(
        before_start.len(),
        1,
        "only the key creation came before: {before_start:?}"
    );
    let after_start = trail(&api, &t.admin, &format!("since={}", enc(&start.to_rfc3339()))).await;
    assert_eq!(after_start.len(), 10);
}

/// A store whose audit writes fail: the calls still succeed.
struct NoAuditWrites(Arc<dyn ItemStore>);

#[async_trait::async_trait]
impl ItemStore for NoAuditWrites {
    async fn get(&self, pk: &str, sk: &str) -> arca_core::Result<Option<arca_core::ports::item_store::Item>> {
        self.0.get(pk, sk).await
    }
    async fn put(&self, item: arca_core::ports::item_store::Item, condition: Condition) -> arca_core::Result<()> {
        if item.sk.starts_with(arca_core::store::keys::AUDIT_SK_PREFIX) {
            return Err(arca_core::Error::transient("audit writes are down"));
        }
        self.0.put(item, condition).await
    }
    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> arca_core::Result<()> {
        self.0.delete(pk, sk, condition).await
    }
    async fn query(&self, query: Query) -> arca_core::Result<Page> {
        self.0.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> arca_core::Result<()> {
        self.0.transact(writes).await
    }
}

#[tokio::test]
async fn a_failed_audit_write_does_not_fail_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ItemStore> = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("a.redb")).unwrap());
    let api = Api::on(Arc::new(NoAuditWrites(store)), true, Default::default());
    let t = api.signup("unrecorded").await;
    api.post(
        "/v1/policies",
        &t.admin,
        json!({ "name": "p", "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] }),
    )
    .await
    .expect(201);
    assert!(trail(&api, &t.admin, "").await.is_empty());
}
