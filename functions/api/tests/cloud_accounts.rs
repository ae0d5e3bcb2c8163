//! Linked AWS accounts over HTTP: link (ExternalId + quick-create link), the role pasted
//! and verified, problems for bad input, inventory now and its listing, DISCONNECTED with
//! the AWS error and back, roles of the caller, deletion. The AWS side is
//! `FakeCloud` (moto enforces no trust policy; the adapter is tested on moto in arca-aws).

mod common;

use arca_core::model::cloud::AwsResource;
use arca_core::model::cloud::inventory::{EbsVolume, RdsInstance};
use arca_core::testing::fakes::cloud::ACCESS_DENIED;
use common::Api;
use serde_json::json;

#[tokio::test]
async fn link_verify_inventory_disconnect_and_delete() {
    let api = Api::new();
    let t = api.signup("aws").await;

    // Bad input: one clear problem naming the field, nothing created.
    let bad = api.link_account(&t.admin, "x", &["mars-1"]).await.expect(400);
    assert_eq!(bad.body["field"], "regions[0]", "{}", bad.text);
    let typo = api
        .post(
            "/v1/cloud-accounts",
            &t.admin,
            json!({ "name": "x", "region": ["us-east-1"] }),
        )
        .await
        .expect(400);
    assert!(typo.text.contains("region"), "{}", typo.text);
    let viewer = api.key(&t, "viewer").await;
    api.link_account(&viewer, "x", &["us-east-1"]).await.expect(403);
    let none = api.get("/v1/cloud-accounts", &t.admin).await.expect(200);
    assert_eq!(none.body["items"], json!([]));

    // Link: PENDING, an ExternalId, the quick-create link carrying it.
    let linked = api
        .link_account(&t.admin, "prod", &["us-east-1", "eu-west-1"])
        .await
        .expect(201);
    let id = linked.id();
    let external_id = linked.body["externalId"].as_str().unwrap().to_owned();
    assert_eq!(linked.body["state"], "PENDING");
    let link = linked.body["quickCreateLink"].as_str().unwrap();
    assert!(
        link.contains("#/stacks/quickcreate?templateURL=https%3A%2F%2Farca-templates"),
        "{link}"
    );
    assert!(link.contains(&format!("param_ExternalId={external_id}")), "{link}");
    assert!(link.contains("param_ArcaAccountId=999988887777"), "{link}");
    // The stack trusts the deployment's roles by ARN (cfn/role-stack.yaml ArcaPrincipalArns).
    assert!(
        link.contains("param_ArcaPrincipalArns=arn%3Aaws%3Aiam%3A%3A999988887777%3Arole%2Farca-test-ApiFunctionRole-X"),
        "{link}"
    );
    assert_eq!(
        linked.body["currentRoleStackVersion"],
        arca_core::model::cloud::account::ROLE_STACK_VERSION
    );

    // The role, pasted: verified through the fake (which enforces the ExternalId).
    let role = "arn:aws:iam::111122223333:role/arca-prod";
    api.cloud.add_role(role, &external_id);
    let role_path = format!("/v1/cloud-accounts/{id}/role");
    let not_arn = api
        .put(&role_path, &t.admin, &linked.etag(), json!({ "roleArn": "arca-prod" }))
        .await
        .expect(400);
    assert_eq!(not_arn.body["field"], "roleArn", "{}", not_arn.text);
    let active = api
        .put(&role_path, &t.admin, &linked.etag(), json!({ "roleArn": role }))
        .await
        .expect(200);
    assert_eq!(active.body["state"], "ACTIVE", "{}", active.text);
    assert_eq!(active.body["awsAccountId"], "111122223333");
    api.put(&role_path, &t.admin, &linked.etag(), json!({ "roleArn": role }))
        .await
        .expect(412);

    // Inventory now, then read it back per region.
    api.cloud.set_resources(
        role,
        "us-east-1",
        vec![
            AwsResource::RdsInstance(RdsInstance {
                identifier: "orders".into(),
                engine: "postgres".into(),
                ..Default::default()
            }),
            AwsResource::EbsVolume(EbsVolume {
                volume_id: "vol-1".into(),
                ..Default::default()
            }),
        ],
    );
    let report = api
        .post(&format!("/v1/cloud-accounts/{id}/inventory"), &t.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(report.body["state"], "ACTIVE");
    assert_eq!(
        report.body["regions"],
        json!([
            { "region": "eu-west-1", "present": 0, "vanished": 0 },
            { "region": "us-east-1", "present": 2, "vanished": 0 },
        ])
    );
    let east = api
        .get(&format!("/v1/cloud-accounts/{id}/inventory?region=us-east-1"), &viewer)
        .await
        .expect(200);
    let entries = east.body[0]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["kind"], "EBS_VOLUME");
    assert_eq!(entries[1]["identifier"], "orders");
    assert!(entries[1]["firstSeenAt"].is_string());
    let account = api.get(&format!("/v1/cloud-accounts/{id}"), &viewer).await.expect(200);
    assert!(account.body["lastInventoryAt"].is_string());

    // The user deletes the role: the next inventory says DISCONNECTED and why.
    api.cloud.revoke(role, Some(ACCESS_DENIED));
    let report = api
        .post(&format!("/v1/cloud-accounts/{id}/inventory"), &t.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(report.body["state"], "DISCONNECTED");
    let down = api.get(&format!("/v1/cloud-accounts/{id}"), &t.admin).await.expect(200);
    assert!(
        down.body["lastError"].as_str().unwrap().contains("AccessDenied"),
        "{}",
        down.text
    );
    api.cloud.revoke(role, None);
    let up = api
        .post(&format!("/v1/cloud-accounts/{id}/verify"), &t.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(up.body["state"], "ACTIVE");
    assert!(up.body["lastError"].is_null());

    // Inventory before a role is known: a clear 409.
    let pending = api.link_account(&t.admin, "later", &["us-east-1"]).await.expect(201);
    let early = api
        .post(
            &format!("/v1/cloud-accounts/{}/inventory", pending.id()),
            &t.admin,
            json!({}),
        )
        .await
        .expect(409);
    assert!(early.text.contains("no role yet"), "{}", early.text);

    // Rename, then delete with the current ETag.
    let renamed = api
        .put(
            &format!("/v1/cloud-accounts/{id}"),
            &t.admin,
            &up.etag(),
            json!({ "name": "production", "regions": ["us-east-1"] }),
        )
        .await
        .expect(200);
    assert_eq!(renamed.body["name"], "production");
    assert_eq!(renamed.body["state"], "ACTIVE", "editing keeps the link");
    api.delete(&format!("/v1/cloud-accounts/{id}"), &t.admin, &renamed.etag())
        .await
        .expect(204);
    api.get(&format!("/v1/cloud-accounts/{id}"), &t.admin).await.expect(404);
}
