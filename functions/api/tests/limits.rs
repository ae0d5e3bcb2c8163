//! Limits that fail loud: a list's page, a request body, and the lists kept inside one
//! item (a policy's `usedBy`, a cluster's definitions) are bounded, and going past a bound
//! is a 4xx naming it, with nothing stored.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use arca_core::ids::{BackupDefinitionId, ClusterId, OrgId, PolicyId};
use arca_core::model::cluster::{Cluster, MAX_DEFINITIONS};
use arca_core::model::policy::{MAX_REFERRERS, Policy, PolicyReferrer, ReferrerKind};
use common::Api;
use serde_json::json;

#[tokio::test]
async fn pages_and_bodies_are_bounded() {
    let api = Api::new();
    let t = api.signup("limits").await;
    for list in [
        "/v1/clusters",
        "/v1/backups",
        "/v1/recoverypoints",
        "/v1/jobs",
        "/v1/restores",
    ] {
        let refused = api.get(&format!("{list}?limit=201"), &t.admin).await;
        let refused = refused.problem(400, "validation_failed");
        assert!(refused.text.contains("between 1 and 200"), "{list}: {}", refused.text);
        api.get(&format!("{list}?limit=200"), &t.admin).await.expect(200);
    }
    // A body past 256 KiB is refused before it is parsed, whoever sends it.
    let (_, token) = api.cluster(&t.admin, "c", None).await;
    let session = api.agent_session(&token).await;
    let huge = json!({ "facts": { "padding": "x".repeat(300 * 1024) } });
    let refused = api
        .agent(&token, "/v1/agent/heartbeat", Some(&session), huge.clone())
        .await
        .problem(413, "body_too_large");
    assert!(refused.text.contains("262144 bytes"), "{}", refused.text);
    api.post("/v1/policies", &t.admin, huge)
        .await
        .problem(413, "body_too_large");
}

#[tokio::test]
async fn lists_kept_in_one_item_refuse_past_their_bound() {
    let api = Api::new();
    let t = api.signup("item-lists").await;
    let store = api.state.control_plane.store();
    let org: OrgId = t.org_id.parse().unwrap();
    let dest = api.destination(&t.admin, "bucket").await;
    let (full, _) = api.cluster(&t.admin, "full", Some(&dest)).await;
    let (other, _) = api.cluster(&t.admin, "other", Some(&dest)).await;

    // A cluster at MAX_DEFINITIONS takes no more.
    let id: ClusterId = full.parse().unwrap();
    let mut cluster = store.get::<Cluster>(&org, &id).await.unwrap();
    let version = cluster.version;
    cluster.backup_definition_ids = (0..MAX_DEFINITIONS).map(|_| BackupDefinitionId::new()).collect();
    store.update(cluster, version).await.unwrap();
    let refused = api
        .backup(&t.admin, &full, Some(&t.default_policy_id), None)
        .await
        .problem(400, "validation_failed");
    assert_eq!(refused.body["field"], "clusterId", "{}", refused.text);
    assert!(refused.text.contains("500 backup definitions"), "{}", refused.text);

    // A policy serving MAX_REFERRERS definitions takes no more; nothing is written.
    let pid: PolicyId = t.default_policy_id.parse().unwrap();
    let mut policy = store.get::<Policy>(&org, &pid).await.unwrap();
    let version = policy.version;
    policy.used_by = (0..MAX_REFERRERS)
        .map(|n| PolicyReferrer {
            kind: ReferrerKind::K8sBackup,
            id: BackupDefinitionId::new().to_string(),
            name: format!("definition {n}"),
        })
        .collect();
    store.update(policy, version).await.unwrap();
    let refused = api
        .backup(&t.admin, &other, Some(&t.default_policy_id), None)
        .await
        .problem(400, "validation_failed");
    assert_eq!(refused.body["field"], "policyId", "{}", refused.text);
    assert!(refused.text.contains("1000 definitions"), "{}", refused.text);
    let listed = api.get("/v1/backups", &t.admin).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 0, "{}", listed.text);
    let cluster = store.get::<Cluster>(&org, &other.parse().unwrap()).await.unwrap();
    assert!(cluster.backup_definition_ids.is_empty());
}
