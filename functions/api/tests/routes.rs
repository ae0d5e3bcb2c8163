//! The route table: what the OpenAPI document says is exactly what is routed, and every
//! route keeps one org out of another's objects. Both tests are driven by the document,
//! so a new route without an isolation case fails here.

// Test helpers outside #[test] fns fail loudly too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use arca_core::ids::{ClusterId, JobId, OrgId, RecoveryPointId};
use axum::http::{Method, StatusCode};
use chrono::Utc;
use common::{Api, Reply, Tenant};
use serde_json::{Value, json};

/// Every (METHOD, path) of the OpenAPI document.
fn documented() -> BTreeSet<(String, String)> {
    let doc = serde_json::to_value(arca_api::openapi()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_documented_route_is_routed_and_served_as_documented() {
    let api = Api::new();
    let routes = documented();
    assert!(routes.len() > 30, "{routes:?}");
    for (method, path) in &routes {
        let concrete = path.replace("{id}", &ClusterId::new().to_string());
        let reply = api
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &concrete,
                None,
                None,
                None,
            )
            .await;
        assert_ne!(
            reply.body["code"], "route_not_found",
            "{method} {path} is documented but not routed"
        );
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed"
        );
    }
    // The served document is the generated one.
    let served = api
        .request(Method::GET, "/v1/openapi.json", None, None, None)
        .await
        .expect(200);
    assert_eq!(served.body, serde_json::to_value(arca_api::openapi()).unwrap());
    assert!(served.body["openapi"].as_str().unwrap().starts_with("3."));
    assert!(served.body["components"]["securitySchemes"]["apiKey"].is_object());
}

#[test]
fn every_operation_documents_its_role_or_that_it_is_public() {
    let doc = serde_json::to_value(arca_api::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"] == json!([{}]);
            let role = op["description"].as_str().is_some_and(|d| d.starts_with("Role: "));
            let agent = op["security"] == json!([{ "agentToken": [] }])
                && op["description"].as_str().is_some_and(|d| d.starts_with("Agent: "));
            let operator = op["security"] == json!([{ "operatorToken": [] }])
                && op["description"].as_str().is_some_and(|d| d.starts_with("Operator: "));
            assert_eq!(
                [public, role, agent, operator].iter().filter(|b| **b).count(),
                1,
                "{method} {path}: a role in its description, `security(())`, the agent token or the operator \
                 token, exactly one"
            );
            assert_eq!(
                path.starts_with("/v1/operator/"),
                operator,
                "{method} {path}: operator routes, and only they, use the operator token"
            );
            assert_eq!(
                path.starts_with("/v1/agent/"),
                agent,
                "{method} {path}: agent routes, and only they, use the agent token"
            );
        }
    }
}

/// The role an operation's description names ("Role: admin.", written from the table the
/// service enforces) is the role the route enforces: every key below it is refused with
/// 403 `forbidden` naming it in `requiredRole`, and a key with it is refused for its role
/// neither by the route's gate nor by the service (whose refusal says "this needs the x
/// role; the key has y").
#[tokio::test]
async fn every_route_enforces_the_role_it_documents() {
    const ROLES: [&str; 3] = ["viewer", "operator", "admin"];
    let api = Api::new();
    let a = api.signup("org-a").await;
    let world = org_a(&api, &a).await;
    let mut keys = Vec::new();
    for role in ROLES {
        let key = if role == "admin" {
            a.admin.clone()
        } else {
            api.key(&a, role).await
        };
        keys.push((role, key));
    }
    let doc = serde_json::to_value(arca_api::openapi()).unwrap();
    let rank = |role: &str| ROLES.iter().position(|r| *r == role);
    let mut documented_roles = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            documented_roles += usize::from(op["description"].as_str().is_some_and(|d| d.starts_with("Role: ")));
        }
    }
    let mut checked = 0;
    for ((method, path), case) in &cases(&world) {
        let description = doc["paths"][*path][method.to_lowercase()]["description"]
            .as_str()
            .unwrap_or("");
        let Some(role) = description.strip_prefix("Role: ").and_then(|d| d.split('.').next()) else {
            continue;
        };
        let needed = rank(role).unwrap_or_else(|| panic!("{method} {path}: no such role: {role}"));
        let body = match case {
            Case::ForeignId { body } => body.clone(),
            Case::CreateWithForeignRefs(body) | Case::CreateInOwnOrg(body) => Some(body.clone()),
            Case::OwnOrg if *method == "PUT" => Some(json!({ "name": "org-a" })),
            _ => None,
        };
        let mut concrete = path.replace("{clusterId}", &world.ids["clusters"]);
        if let Some(id) = world.ids.get(kind(path)) {
            concrete = concrete.replace("{id}", id);
        }
        for (key_role, key) in &keys {
            let what = format!("{method} {path} as {key_role}");
            // A stale ETag: a change the role admits is refused after the gate, by its precondition.
            let reply = api
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &concrete,
                    Some(key),
                    Some("\"999\""),
                    body.clone(),
                )
                .await;
            if rank(key_role) < Some(needed) {
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "{what}: {}", reply.text);
                assert_eq!(reply.body["code"], "forbidden", "{what}");
                assert_eq!(reply.body["requiredRole"], role, "{what}");
            } else {
                // Neither the route's gate nor the service behind it refuses the role.
                let refused_role = reply.body.get("requiredRole").is_some()
                    || reply.body["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains(" role; the key has "));
                assert!(!refused_role, "{what}: {}", reply.text);
            }
        }
        checked += 1;
    }
    assert_eq!(checked, documented_roles, "every operation with a role is checked");
    assert!(checked > 50, "{checked}");
}

/// Routes can be added only through the documented router: no plain `.route(...)`
/// outside `/healthz`, which is not part of `/v1`.
#[test]
fn no_route_bypasses_the_documented_router() {
    fn scan(dir: &std::path::Path, hits: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, hits);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines() {
                    let code = line.trim_start();
                    if code.starts_with("//") {
                        continue;
                    }
                    if [".route(", ".nest(", ".merge(", ".route_service(", ".nest_service("]
                        .iter()
                        .any(|m| code.contains(m))
                        && !code.contains(".route(\"/healthz\"")
                    {
                        hits.push(format!("{}: {code}", path.display()));
                    }
                }
            }
        }
    }
    let mut hits = Vec::new();
    scan(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut hits);
    assert!(hits.is_empty(), "undocumented routes: {hits:#?}");
}

/// How a route keeps org B out of org A's objects.
enum Case {
    /// Called with one of A's ids: 404, as if it did not exist.
    ForeignId { body: Option<Value> },
    /// A listing: none of A's objects appear in B's.
    List,
    /// The caller's own org: B sees B's.
    OwnOrg,
    /// A create that references A's objects: refused (400/404), nothing created.
    CreateWithForeignRefs(Value),
    /// A create without references: it lands in B's org, invisible to A.
    CreateInOwnOrg(Value),
    /// No caller, no tenant.
    Public,
    /// An agent route called by B's agent with one of A's jobs: 404.
    AgentForeignJob,
    /// An agent route about the caller's own cluster: B's agent reaches only B's.
    AgentOwnCluster,
    /// The deployment operator's route: no org's API key opens it, so B's admin cannot
    /// touch A (nor B) through it.
    Operator,
    /// The audit trail: B's holds only B's records (its own attempts on A's ids
    /// included), none of A's.
    OwnTrail,
}

/// A's objects, by kind, with their ETags before B's attempts.
struct World {
    ids: BTreeMap<&'static str, String>,
}

async fn org_a(api: &Api, a: &Tenant) -> World {
    let dest = api.destination(&a.admin, "a-dest").await;
    let (cluster, token) = api.cluster(&a.admin, "a-cluster", Some(&dest)).await;
    api.activate(&token).await;
    let backup = api.default_backup(a, &cluster, None).await;
    let job = api.run(&a.admin, &backup).await.expect(201).id();
    let rp = api
        .plant_recovery_point(&a.org_id, &cluster, &backup, Some(&job))
        .await
        .to_string();
    let now = chrono::DateTime::<Utc>::from(std::time::SystemTime::now());
    let eks_recreation = api
        .state
        .control_plane
        .store()
        .create(arca_core::model::cloud::ebs::EksRecreation {
            id: arca_core::ids::EksRecreationId::new(),
            org_id: a.org_id.parse::<OrgId>().unwrap(),
            recovery_point_id: rp.parse().unwrap(),
            cloud_account_id: arca_core::ids::CloudAccountId::new(),
            region: "us-east-1".into(),
            name: "a-eks".into(),
            state: arca_core::model::cloud::ebs::EksRecreationState::Failed,
            cluster_id: None,
            restore_id: None,
            next_step: None,
            error: Some("planted for the isolation test".into()),
            created_at: now,
            updated_at: now,
            version: 0,
            access: None,
        })
        .await
        .unwrap()
        .id
        .to_string();
    let restore = api
        .post(
            "/v1/restores",
            &a.admin,
            json!({ "recoveryPointId": rp, "targetClusterId": cluster }),
        )
        .await
        .expect(201);
    let restore = restore.body["restore"]["id"].as_str().unwrap().to_owned();
    let apikey = api
        .post("/v1/apikeys", &a.admin, json!({ "name": "a-ci", "role": "viewer" }))
        .await
        .expect(201)
        .id();
    let cloud_account = api
        .link_account(&a.admin, "a-aws", &["us-east-1"])
        .await
        .expect(201)
        .id();
    let rds_backup = api
        .post(
            "/v1/rds-backups",
            &a.admin,
            json!({ "name": "a-rds", "cloudAccountId": cloud_account, "region": "us-east-1",
                    "databases": [{ "identifier": "orders" }] }),
        )
        .await
        .expect(201)
        .id();
    let rds_point = api
        .state
        .control_plane
        .store()
        .create(arca_core::model::rds::RdsRecoveryPoint {
            id: RecoveryPointId::new(),
            org_id: a.org_id.parse::<OrgId>().unwrap(),
            definition_id: Some(rds_backup.parse().unwrap()),
            job_id: JobId::new(),
            cloud_account_id: cloud_account.parse().unwrap(),
            rp_type: arca_core::model::rds::RdsRecoveryPointType::Snapshot,
            state: arca_core::model::rds::RdsRecoveryPointState::Available,
            database: arca_core::model::rds::RdsDatabaseRef {
                identifier: "orders".into(),
                cluster: false,
            },
            snapshot: arca_core::model::rds::RdsSnapshotRef {
                identifier: "arca-orders-1".into(),
                arn: String::new(),
                region: "us-east-1".into(),
                cluster: false,
            },
            source_recovery_point_id: None,
            engine: Some("postgres".into()),
            encrypted: false,
            expires_at: None,
            keep_last: None,
            verification: None,
            created_at: now,
            updated_at: now,
            version: 0,
        })
        .await
        .unwrap()
        .id
        .to_string();
    // Nothing listens on port 9 here: a test event to it is refused at once.
    let alert_channel = api
        .post(
            "/v1/alerts/channels",
            &a.admin,
            json!({ "name": "a-oncall", "kind": "webhook", "url": "http://127.0.0.1:9/hook" }),
        )
        .await
        .expect(201)
        .id();
    let ids = BTreeMap::from([
        ("alerts/channels", alert_channel),
        ("rds-backups", rds_backup),
        ("rds-recoverypoints", rds_point),
        ("cloud-accounts", cloud_account),
        ("eks-recreations", eks_recreation),
        ("destinations", dest),
        ("clusters", cluster),
        ("policies", a.default_policy_id.clone()),
        ("backups", backup),
        ("jobs", job),
        ("recoverypoints", rp),
        ("restores", restore),
        ("apikeys", apikey),
    ]);
    World { ids }
}

/// The collection a path is under: `/v1/clusters/{id}/rotate-token` -> `clusters`.
fn kind(path: &str) -> &str {
    let rest = path.trim_start_matches("/v1/");
    // Alert channels are one level down (`/v1/alerts/channels/{id}`).
    if rest.starts_with("alerts/channels") {
        return "alerts/channels";
    }
    rest.split('/').next().unwrap()
}

fn cases(w: &World) -> BTreeMap<(&'static str, &'static str), Case> {
    use Case::*;
    let id = |k: &str| w.ids[k].clone();
    let policy = json!({ "name": "p", "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] });
    let s3 = json!({ "name": "d", "target": { "kind": "S3", "bucket": "b-bucket", "region": "eu-west-1" } });
    let backup = json!({ "name": "b", "clusterId": id("clusters"), "selection": { "fullCluster": true } });
    let rds_backup = json!({ "name": "r", "cloudAccountId": id("cloud-accounts"), "region": "us-east-1",
        "databases": [{ "identifier": "orders" }] });
    BTreeMap::from([
        (("GET", "/v1/openapi.json"), Public),
        (("POST", "/v1/signup"), Public),
        (("GET", "/v1/org"), OwnOrg),
        (("GET", "/v1/whoami"), OwnOrg),
        (("PUT", "/v1/org"), OwnOrg),
        (("GET", "/v1/apikeys"), List),
        (("GET", "/v1/audit"), OwnTrail),
        (("GET", "/v1/alerts/channels"), List),
        (
            ("POST", "/v1/alerts/channels"),
            CreateInOwnOrg(json!({ "name": "b-oncall", "kind": "webhook", "url": "http://127.0.0.1:9/hook" })),
        ),
        (("GET", "/v1/alerts/channels/{id}"), ForeignId { body: None }),
        (
            ("PATCH", "/v1/alerts/channels/{id}"),
            ForeignId {
                body: Some(json!({ "enabled": false })),
            },
        ),
        (("DELETE", "/v1/alerts/channels/{id}"), ForeignId { body: None }),
        (("POST", "/v1/alerts/channels/{id}/test"), ForeignId { body: None }),
        (("GET", "/v1/alerts/deliveries"), List),
        (
            ("POST", "/v1/apikeys"),
            CreateInOwnOrg(json!({ "name": "b-ci", "role": "viewer" })),
        ),
        (("GET", "/v1/apikeys/{id}"), ForeignId { body: None }),
        (("DELETE", "/v1/apikeys/{id}"), ForeignId { body: None }),
        (("GET", "/v1/clusters"), List),
        (
            ("POST", "/v1/clusters"),
            CreateWithForeignRefs(json!({ "name": "c", "defaultDestinationId": id("destinations") })),
        ),
        (("GET", "/v1/clusters/{id}"), ForeignId { body: None }),
        (
            ("PUT", "/v1/clusters/{id}"),
            ForeignId {
                body: Some(json!({ "name": "stolen" })),
            },
        ),
        (("DELETE", "/v1/clusters/{id}"), ForeignId { body: None }),
        (("POST", "/v1/clusters/{id}/rotate-token"), ForeignId { body: None }),
        (
            ("POST", "/v1/clusters/{id}/rotate-archive-key"),
            ForeignId { body: None },
        ),
        (("POST", "/v1/clusters/{id}/install"), ForeignId { body: None }),
        (("GET", "/v1/clusters/{id}/agent.yaml"), ForeignId { body: None }),
        // The one-time token is the credential; an unknown one is 410, whoever calls.
        (("GET", "/v1/install/{token}/agent.yaml"), Public),
        (("GET", "/v1/cloud-accounts"), List),
        (
            ("POST", "/v1/cloud-accounts"),
            CreateInOwnOrg(json!({ "name": "b-aws", "regions": ["eu-west-1"] })),
        ),
        (("GET", "/v1/cloud-accounts/{id}"), ForeignId { body: None }),
        (
            ("PUT", "/v1/cloud-accounts/{id}"),
            ForeignId {
                body: Some(json!({ "name": "stolen", "regions": ["us-east-1"] })),
            },
        ),
        (("DELETE", "/v1/cloud-accounts/{id}"), ForeignId { body: None }),
        (
            ("PUT", "/v1/cloud-accounts/{id}/role"),
            ForeignId {
                body: Some(json!({ "roleArn": "arn:aws:iam::111122223333:role/stolen" })),
            },
        ),
        (("POST", "/v1/cloud-accounts/{id}/verify"), ForeignId { body: None }),
        (("POST", "/v1/cloud-accounts/{id}/inventory"), ForeignId { body: None }),
        (("GET", "/v1/cloud-accounts/{id}/inventory"), ForeignId { body: None }),
        (("GET", "/v1/cloud-accounts/{id}/findings"), ForeignId { body: None }),
        (("GET", "/v1/rds-backups"), List),
        (("POST", "/v1/rds-backups"), CreateWithForeignRefs(rds_backup.clone())),
        (("GET", "/v1/rds-backups/{id}"), ForeignId { body: None }),
        (("PUT", "/v1/rds-backups/{id}"), ForeignId { body: Some(rds_backup) }),
        (("DELETE", "/v1/rds-backups/{id}"), ForeignId { body: None }),
        (
            ("POST", "/v1/rds-backups/{id}/run"),
            ForeignId { body: Some(json!({})) },
        ),
        (("POST", "/v1/rds-backups/{id}/pause"), ForeignId { body: None }),
        (("POST", "/v1/rds-backups/{id}/resume"), ForeignId { body: None }),
        (("GET", "/v1/rds-recoverypoints"), List),
        (("GET", "/v1/rds-recoverypoints/{id}"), ForeignId { body: None }),
        (("POST", "/v1/rds-recoverypoints/{id}/verify"), ForeignId { body: None }),
        (
            ("POST", "/v1/rds-restores"),
            CreateWithForeignRefs(json!({ "cloudAccountId": id("cloud-accounts"),
                "source": { "kind": "RECOVERY_POINT", "recoveryPointId": id("rds-recoverypoints") },
                "target": { "identifier": "stolen" } })),
        ),
        (("GET", "/v1/destinations"), List),
        (("POST", "/v1/destinations"), CreateInOwnOrg(s3.clone())),
        (("GET", "/v1/destinations/{id}"), ForeignId { body: None }),
        (("GET", "/v1/destinations/{id}/maintenance"), ForeignId { body: None }),
        (
            ("POST", "/v1/destinations/{id}/repositories/{clusterId}/purge"),
            ForeignId {
                body: Some(json!({ "includeUnexpired": true })),
            },
        ),
        (
            ("POST", "/v1/destinations/{id}/repositories/{clusterId}/purge/complete"),
            ForeignId { body: None },
        ),
        (("PUT", "/v1/destinations/{id}"), ForeignId { body: Some(s3) }),
        (("DELETE", "/v1/destinations/{id}"), ForeignId { body: None }),
        (("GET", "/v1/policies"), List),
        (("POST", "/v1/policies"), CreateInOwnOrg(policy.clone())),
        (("GET", "/v1/policies/{id}"), ForeignId { body: None }),
        (("PUT", "/v1/policies/{id}"), ForeignId { body: Some(policy) }),
        (("DELETE", "/v1/policies/{id}"), ForeignId { body: None }),
        (("GET", "/v1/backups"), List),
        (("POST", "/v1/backups"), CreateWithForeignRefs(backup.clone())),
        (("GET", "/v1/backups/{id}"), ForeignId { body: None }),
        (("PUT", "/v1/backups/{id}"), ForeignId { body: Some(backup) }),
        (("DELETE", "/v1/backups/{id}"), ForeignId { body: None }),
        (("POST", "/v1/backups/{id}/run"), ForeignId { body: Some(json!({})) }),
        (("POST", "/v1/backups/{id}/pause"), ForeignId { body: None }),
        (("POST", "/v1/backups/{id}/resume"), ForeignId { body: None }),
        (("GET", "/v1/jobs"), List),
        (("GET", "/v1/jobs/{id}"), ForeignId { body: None }),
        (("POST", "/v1/jobs/{id}/cancel"), ForeignId { body: None }),
        (("GET", "/v1/recoverypoints"), List),
        (("GET", "/v1/recoverypoints/{id}"), ForeignId { body: None }),
        (("GET", "/v1/recoverypoints/{id}/aws"), ForeignId { body: None }),
        (("DELETE", "/v1/recoverypoints/{id}"), ForeignId { body: None }),
        (
            ("POST", "/v1/recoverypoints/{id}/verify"),
            ForeignId { body: Some(json!({})) },
        ),
        (
            ("POST", "/v1/recoverypoints/{id}/recreate-eks"),
            ForeignId {
                body: Some(json!({ "name": "stolen" })),
            },
        ),
        (("GET", "/v1/eks-recreations"), List),
        (("GET", "/v1/eks-recreations/{id}"), ForeignId { body: None }),
        (("GET", "/v1/restores"), List),
        (
            ("POST", "/v1/restores"),
            CreateWithForeignRefs(
                json!({ "recoveryPointId": id("recoverypoints"), "targetClusterId": id("clusters") }),
            ),
        ),
        (("GET", "/v1/restores/{id}"), ForeignId { body: None }),
        (("GET", "/v1/restores/{id}/objects"), ForeignId { body: None }),
        (("POST", "/v1/agent/connect"), AgentOwnCluster),
        (("POST", "/v1/agent/heartbeat"), AgentOwnCluster),
        (("POST", "/v1/agent/poll"), AgentOwnCluster),
        (("POST", "/v1/agent/jobs/{id}/lease"), AgentForeignJob),
        (("POST", "/v1/agent/jobs/{id}/progress"), AgentForeignJob),
        (("POST", "/v1/agent/jobs/{id}/results"), AgentForeignJob),
        (("POST", "/v1/agent/jobs/{id}/complete"), AgentForeignJob),
        (("POST", "/v1/agent/jobs/{id}/credentials"), AgentForeignJob),
        (("POST", "/v1/agent/jobs/{id}/ebs-volumes"), AgentForeignJob),
        (("POST", "/v1/agent/jobs/{id}/ebs-snapshots"), AgentForeignJob),
        (("PUT", "/v1/operator/orgs/{id}/plan"), Operator),
    ])
}

#[tokio::test]
async fn no_route_lets_one_org_touch_another_orgs_objects() {
    let api = Api::new();
    let a = api.signup("org-a").await;
    let b = api.signup("org-b").await;
    let world = org_a(&api, &a).await;
    let cases = cases(&world);

    let table: BTreeSet<(String, String)> = cases.keys().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    let documented = documented();
    assert_eq!(
        table,
        documented,
        "the isolation table must cover exactly the documented routes; missing: {:?}, extra: {:?}",
        documented.difference(&table).collect::<Vec<_>>(),
        table.difference(&documented).collect::<Vec<_>>()
    );

    // B's own agent, connected.
    let b_dest = api.destination(&b.admin, "b-dest").await;
    let (_, b_token) = api.cluster(&b.admin, "b-cluster", Some(&b_dest)).await;
    let mut b_session = api.connect(&b_token).await;

    // What A sees before B tries anything.
    let mut before = BTreeMap::new();
    for (k, id) in &world.ids {
        let reply = api.get(&format!("/v1/{k}/{id}"), &a.admin).await.expect(200);
        before.insert(*k, reply.etag());
    }

    for ((method, path), case) in &cases {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let what = format!("{method} {path}");
        match case {
            Case::ForeignId { body } => {
                let concrete = path
                    .replace("{id}", &world.ids[kind(path)])
                    .replace("{clusterId}", &world.ids["clusters"]);
                // A's real ETag, so nothing but the org stands in the way.
                let etag = before[kind(path)].clone();
                let reply: Reply = api
                    .request(method, &concrete, Some(&b.admin), Some(&etag), body.clone())
                    .await;
                assert_eq!(reply.status, StatusCode::NOT_FOUND, "{what}: {}", reply.text);
                assert_eq!(reply.body["code"], "not_found", "{what}");
            }
            Case::OwnTrail => {
                let theirs = api.get(path, &a.admin).await.expect(200);
                assert!(!theirs.ids().is_empty(), "A's calls are recorded");
                let reply = api.request(method, path, Some(&b.admin), None, None).await.expect(200);
                for item in reply.body["items"].as_array().unwrap() {
                    assert_eq!(item["orgId"], b.org_id.as_str(), "{what}");
                }
                for id in theirs.ids() {
                    assert!(!reply.text.contains(id), "{what} shows A's {id}");
                }
            }
            Case::List => {
                let reply = api.request(method, path, Some(&b.admin), None, None).await.expect(200);
                for id in world.ids.values() {
                    assert!(!reply.text.contains(id.as_str()), "{what} shows A's {id}");
                }
            }
            Case::OwnOrg => {
                let org = api.get("/v1/org", &b.admin).await.expect(200);
                assert_eq!(org.body["id"], b.org_id.as_str(), "{what}");
                if method == Method::PUT {
                    let reply = api
                        .put(path, &b.admin, &org.etag(), json!({ "name": "org-b2" }))
                        .await
                        .expect(200);
                    assert_eq!(reply.body["id"], b.org_id.as_str(), "{what}");
                    let reply = api
                        .put(
                            path,
                            &b.admin,
                            &reply.etag(),
                            json!({ "name": "x", "defaultDestinationId": world.ids["destinations"] }),
                        )
                        .await;
                    assert_eq!(
                        reply.status,
                        StatusCode::BAD_REQUEST,
                        "{what}: A's destination is not B's: {}",
                        reply.text
                    );
                }
                assert_eq!(
                    api.get("/v1/org", &a.admin).await.expect(200).body["name"],
                    "org-a",
                    "{what}"
                );
            }
            Case::CreateWithForeignRefs(body) => {
                let reply = api
                    .request(method, path, Some(&b.admin), None, Some(body.clone()))
                    .await;
                assert!(
                    [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND].contains(&reply.status),
                    "{what} with A's ids: {} {}",
                    reply.status,
                    reply.text
                );
            }
            Case::CreateInOwnOrg(body) => {
                let reply = api
                    .request(method, path, Some(&b.admin), None, Some(body.clone()))
                    .await
                    .expect(201);
                let location = reply.location.clone().unwrap();
                api.get(&location, &a.admin).await.problem(404, "not_found");
                api.get(&location, &b.admin).await.expect(200);
            }
            Case::Public => {
                let reply = api.request(method, path, Some(&b.admin), None, None).await;
                assert_ne!(reply.status, StatusCode::NOT_FOUND, "{what}");
            }
            Case::Operator => {
                for org in [&a.org_id, &b.org_id] {
                    let concrete = path.replace("{id}", org);
                    let reply = api
                        .request(
                            method.clone(),
                            &concrete,
                            Some(&b.admin),
                            None,
                            Some(json!({ "plan": "paid" })),
                        )
                        .await;
                    assert!(
                        matches!(reply.status.as_u16(), 401 | 403),
                        "{what}: an org's API key is no operator token: {}",
                        reply.text
                    );
                }
                let org = api.get("/v1/org", &a.admin).await.expect(200);
                assert_eq!(org.body["plan"], "free", "{what}: {}", org.text);
            }
            Case::AgentForeignJob => {
                let concrete = path.replace("{id}", &world.ids["jobs"]);
                let body = json!({ "leaseToken": "x", "state": "FAILED" });
                let reply = api.agent(&b_token, &concrete, Some(&b_session), body).await;
                assert_eq!(reply.status, StatusCode::NOT_FOUND, "{what}: {}", reply.text);
                // And an API key is no agent token.
                let reply = api
                    .request(method.clone(), &concrete, Some(&b.admin), None, Some(json!({})))
                    .await;
                assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}: {}", reply.text);
            }
            Case::AgentOwnCluster => {
                let reply = api.agent(&b_token, path, Some(&b_session), json!({})).await;
                assert!(reply.status.is_success(), "{what}: {} {}", reply.status, reply.text);
                assert!(
                    !reply.text.contains(world.ids["jobs"].as_str()),
                    "{what} handed out A's job"
                );
                assert!(
                    !reply.text.contains(world.ids["clusters"].as_str()),
                    "{what} shows A's cluster"
                );
                if path.ends_with("/connect") {
                    // A new connect supersedes the session the other calls used.
                    b_session = reply.body["sessionId"].as_str().unwrap().to_owned();
                }
            }
        }
    }

    // Nothing of A's changed.
    for (k, id) in &world.ids {
        let reply = api.get(&format!("/v1/{k}/{id}"), &a.admin).await.expect(200);
        assert_eq!(reply.etag(), before[k], "A's {k} changed");
    }
}
