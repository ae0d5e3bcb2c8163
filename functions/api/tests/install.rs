//! Installing the agent through the router: the one-time install link, the manifest it
//! serves, the token rotation it implies, expiry, and tenancy.

#![allow(clippy::unwrap_used)]

mod common;

use arca_core::ids::{ClusterId, OrgId};
use arca_core::model::install::InstallLink;
use arca_core::model::secret::Secret;
use axum::body::Body;
use axum::http::{Method, Request, header};
use chrono::{DateTime, Utc};
use common::{Api, Reply, Tenant};
use serde_json::{Value, json};

async fn create_link(api: &Api, key: &str, cluster: &str) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/clusters/{cluster}/install"))
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::HOST, "arca.example.com")
        .body(Body::empty())
        .unwrap();
    api.send(request).await
}

/// Org A and its cluster `prod` (no destination): the tenant, the cluster's id and its
/// agent token.
async fn org_a_prod(api: &Api) -> (Tenant, String, String) {
    let a = api.signup("org-a").await;
    let (cluster, token) = api.cluster(&a.admin, "prod", None).await;
    (a, cluster, token)
}

/// A new install link's URL.
async fn link_url(api: &Api, key: &str, cluster: &str) -> String {
    create_link(api, key, cluster).await.expect(201).body["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Fetches a manifest URL the way `kubectl apply -f <url>` does: no API key.
async fn fetch(api: &Api, url: &str) -> Reply {
    let path = url.strip_prefix("https://arca.example.com").unwrap();
    let request = Request::get(path)
        .header(header::HOST, "arca.example.com")
        .body(Body::empty())
        .unwrap();
    api.send(request).await
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .skip(1)
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn token_in(yaml: &str) -> String {
    let docs = documents(yaml);
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    secret["stringData"]["ARCA_AGENT_TOKEN"].as_str().unwrap().to_owned()
}

async fn connects(api: &Api, token: &str) -> bool {
    let reply = api.agent(token, "/v1/agent/connect", None, json!({})).await;
    match reply.status.as_u16() {
        200 => true,
        401 => false,
        other => panic!("connect: {other} {}", reply.text),
    }
}

#[tokio::test]
async fn an_install_link_works_once_and_rotates_the_agent_token() {
    let api = Api::new();
    let (a, cluster, first_token) = org_a_prod(&api).await;

    let link = create_link(&api, &a.admin, &cluster).await.expect(201);
    let url = link.body["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("https://arca.example.com/v1/install/arcainst_") && url.ends_with("/agent.yaml"),
        "{url}"
    );
    assert_eq!(link.body["command"], format!("kubectl apply -f {url}"));
    assert_eq!(link.body["clusterId"], cluster.as_str());
    let expires: DateTime<Utc> = link.body["expiresAt"].as_str().unwrap().parse().unwrap();
    let in_an_hour = DateTime::<Utc>::from(std::time::SystemTime::now()) + chrono::Duration::minutes(61);
    assert!(expires < in_an_hour, "{expires}");
    assert_eq!(
        link.body["uninstall"],
        json!([
            "kubectl delete namespace arca-system",
            "kubectl delete clusterrole,clusterrolebinding,crd -l app.kubernetes.io/part-of=arca"
        ])
    );

    // The first fetch gets the manifest...
    let manifest = fetch(&api, &url).await.expect(200);
    assert_eq!(manifest.content_type.as_deref(), Some("application/yaml"));
    let docs = documents(&manifest.text);
    // Namespace, ServiceAccount, the backup ClusterRole(Binding), the movers'
    // Role(Binding), the hooks and the restore ClusterRole(Binding)s, Secret, Deployment.
    assert_eq!(docs.len(), 12);
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    assert_eq!(secret["stringData"]["ARCA_API_URL"], "https://arca.example.com");
    assert_eq!(secret["stringData"]["ARCA_CLUSTER_ID"], cluster.as_str());
    let new_token = token_in(&manifest.text);
    assert!(new_token.starts_with("arcagent_") && new_token != first_token);
    // ...whose token waits for its agent: the running agent keeps working meanwhile (a
    // link-preview bot that fetched the link stops nothing)...
    let running = api.agent_session(&first_token).await;
    api.agent(&first_token, "/v1/agent/heartbeat", Some(&running), json!({}))
        .await
        .expect(200);
    // ...until the new agent's first call makes it the cluster's, and the old one is dead.
    assert!(connects(&api, &new_token).await);
    assert!(!connects(&api, &first_token).await);
    api.agent(&first_token, "/v1/agent/heartbeat", Some(&running), json!({}))
        .await
        .problem(401, "unauthenticated");
    assert!(connects(&api, &new_token).await, "adopted once, used again");

    // The second fetch of the same link is refused.
    fetch(&api, &url).await.problem(410, "install_link_used");
    // A made-up token too, and an install link is no API key.
    fetch(&api, "https://arca.example.com/v1/install/arcainst_nope/agent.yaml")
        .await
        .problem(410, "install_link_used");
    let link_token = url.split('/').nth(5).unwrap();
    api.get("/v1/clusters", link_token)
        .await
        .problem(401, "unauthenticated");
    assert!(connects(&api, &new_token).await, "a refused fetch rotates nothing");
}

#[tokio::test]
async fn racing_fetches_of_one_link_get_exactly_one_manifest() {
    let api = Api::new();
    let (a, cluster, _) = org_a_prod(&api).await;
    let url = link_url(&api, &a.admin, &cluster).await;
    let replies = futures_join(&api, &url).await;
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        ok.len(),
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 410, "{}", r.text);
    }
    assert!(connects(&api, &token_in(&ok[0].text)).await);
}

async fn futures_join(api: &Api, url: &str) -> Vec<Reply> {
    let (a, b, c, d) = tokio::join!(fetch(api, url), fetch(api, url), fetch(api, url), fetch(api, url));
    vec![a, b, c, d]
}

#[tokio::test]
async fn expired_replaced_and_orphaned_links_are_refused() {
    let api = Api::new();
    let (a, cluster, token) = org_a_prod(&api).await;

    // An expired link (planted: the clock is the system's).
    let expired = Secret::from_presented("arcainst_expired-for-this-test");
    let past = DateTime::<Utc>::from(std::time::SystemTime::now()) - chrono::Duration::minutes(1);
    api.state
        .control_plane
        .store()
        .create(InstallLink {
            cluster_id: cluster.parse::<ClusterId>().unwrap(),
            org_id: a.org_id.parse::<OrgId>().unwrap(),
            expires_at: past,
            created_at: past,
            version: 0,
            token_hash: Some(expired.hash()),
        })
        .await
        .unwrap();
    let reply = fetch(
        &api,
        &format!("https://arca.example.com/v1/install/{}/agent.yaml", expired.expose()),
    )
    .await
    .problem(410, "install_link_expired");
    assert!(reply.body["detail"].as_str().unwrap().contains("expired"));
    assert!(connects(&api, &token).await, "an expired link rotates nothing");

    // A new link replaces the previous one (the expired one, then the first new one).
    let first = link_url(&api, &a.admin, &cluster).await;
    let second = link_url(&api, &a.admin, &cluster).await;
    fetch(&api, &first).await.problem(410, "install_link_used");
    fetch(&api, &second).await.expect(200);

    // A pending link dies with its cluster.
    let third = link_url(&api, &a.admin, &cluster).await;
    let etag = api
        .get(&format!("/v1/clusters/{cluster}"), &a.admin)
        .await
        .expect(200)
        .etag();
    api.delete(&format!("/v1/clusters/{cluster}"), &a.admin, &etag)
        .await
        .expect(204);
    fetch(&api, &third).await.problem(410, "install_link_used");
}

#[tokio::test]
async fn only_an_admin_of_the_clusters_org_gets_a_link_or_a_manifest() {
    let api = Api::new();
    let (a, cluster, token) = org_a_prod(&api).await;
    let b = api.signup("org-b").await;
    let operator = api.key(&a, "operator").await;

    create_link(&api, &b.admin, &cluster).await.problem(404, "not_found");
    create_link(&api, &operator, &cluster).await.problem(403, "forbidden");
    let yaml = format!("/v1/clusters/{cluster}/agent.yaml");
    api.get(&yaml, &b.admin).await.problem(404, "not_found");
    api.get(&yaml, &operator).await.problem(403, "forbidden");
    assert!(connects(&api, &token).await, "refused calls rotate nothing");

    // The admin's manifest (API key, no link) carries a fresh token; the old one is dead.
    let request = Request::get(&yaml)
        .header(header::AUTHORIZATION, format!("Bearer {}", a.admin))
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap();
    let manifest = api.send(request).await.expect(200);
    assert_eq!(manifest.content_type.as_deref(), Some("application/yaml"));
    let docs = documents(&manifest.text);
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    assert_eq!(
        secret["stringData"]["ARCA_API_URL"], "http://127.0.0.1:8080",
        "a local server is plain HTTP"
    );
    let fresh = token_in(&manifest.text);
    assert!(connects(&api, &fresh).await);
    assert!(!connects(&api, &token).await);
}

/// A fetched manifest's token that no agent used within its TTL, or whose cluster was
/// deleted, opens nothing; the running agent's token stays the cluster's.
#[tokio::test]
async fn an_unused_manifest_token_expires_and_dies_with_its_cluster() {
    let api = Api::new();
    let (a, cluster, token) = org_a_prod(&api).await;
    let link = create_link(&api, &a.admin, &cluster).await.expect(201);
    let manifest = fetch(&api, link.body["url"].as_str().unwrap()).await.expect(200);
    let pending = token_in(&manifest.text);
    let store = api.state.control_plane.store();
    let org: OrgId = a.org_id.parse().unwrap();
    let id: ClusterId = cluster.parse().unwrap();
    let mut waiting = store
        .get::<arca_core::model::install::PendingAgentToken>(&org, &id)
        .await
        .unwrap();
    let version = waiting.version;
    waiting.expires_at = DateTime::<Utc>::UNIX_EPOCH;
    store.update(waiting, version).await.unwrap();
    assert!(!connects(&api, &pending).await, "expired");
    assert!(
        connects(&api, &token).await,
        "the running agent's token is still the cluster's"
    );

    // A fresh manifest, then the cluster goes: its token goes with it.
    let link = create_link(&api, &a.admin, &cluster).await.expect(201);
    let manifest = fetch(&api, link.body["url"].as_str().unwrap()).await.expect(200);
    let pending = token_in(&manifest.text);
    let current = api.get(&format!("/v1/clusters/{cluster}"), &a.admin).await.expect(200);
    api.delete(&format!("/v1/clusters/{cluster}"), &a.admin, &current.etag())
        .await
        .expect(204);
    assert!(
        store
            .find::<arca_core::model::install::PendingAgentToken>(&org, &id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!connects(&api, &pending).await, "its cluster is gone");
}

fn restore_role(yaml: &str) -> Option<Value> {
    documents(yaml)
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "arca-agent-restore")
}

#[tokio::test]
async fn the_manifest_query_chooses_the_agents_restore_rbac() {
    let api = Api::new();
    let (a, cluster, _) = org_a_prod(&api).await;
    // Bad choices are refused before the one-time link is spent.
    let url = link_url(&api, &a.admin, &cluster).await;
    for query in [
        "restoreKinds=apps/*",
        "restore=false&restoreKinds=configmaps",
        "restore=maybe",
        "hooks=maybe",
        "restorekinds=configmaps",
    ] {
        fetch(&api, &format!("{url}?{query}"))
            .await
            .problem(400, "invalid_query");
    }
    // Backup-only: no restore role at all.
    let yaml = fetch(&api, &format!("{url}?restore=false")).await.expect(200).text;
    assert!(restore_role(&yaml).is_none(), "{yaml}");
    assert!(!yaml.contains("arca-agent-restore"), "no binding either");
    assert!(yaml.contains("arca-agent-hooks"), "hooks stay unless left out");

    // No hooks: no exec in Pods.
    let url = link_url(&api, &a.admin, &cluster).await;
    let yaml = fetch(&api, &format!("{url}?hooks=false")).await.expect(200).text;
    assert!(
        !yaml.contains("arca-agent-hooks") && !yaml.contains("pods/exec"),
        "{yaml}"
    );
    assert!(restore_role(&yaml).is_some(), "{yaml}");

    // Limited kinds.
    let url = link_url(&api, &a.admin, &cluster).await;
    let yaml = fetch(&api, &format!("{url}?restoreKinds=apps/deployments,configmaps"))
        .await
        .expect(200)
        .text;
    let rules = restore_role(&yaml).unwrap()["rules"].clone();
    assert_eq!(rules[0]["apiGroups"], json!(["apps"]));
    assert_eq!(rules[0]["resources"], json!(["deployments"]));
    assert_eq!(rules[1]["resources"], json!(["configmaps"]));
    assert_eq!(rules.as_array().unwrap().len(), 2, "{rules}");

    // With the API key (rotating the token): every kind by default.
    let request = Request::get(format!("/v1/clusters/{cluster}/agent.yaml"))
        .header(header::AUTHORIZATION, format!("Bearer {}", a.admin))
        .header(header::HOST, "arca.example.com")
        .body(Body::empty())
        .unwrap();
    let yaml = api.send(request).await.expect(200).text;
    assert_eq!(restore_role(&yaml).unwrap()["rules"][0]["resources"], json!(["*"]));
}
