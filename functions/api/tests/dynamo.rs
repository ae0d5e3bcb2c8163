//! The same router on DynamoDB (moto): sign-up, a conditional create/update/list cycle
//! and tenant isolation, over the wire. Skipped (loudly) without the test environment.

// Test helpers outside #[test] fns fail loudly too.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arca_core::model::plan::PlanLimits;
use common::Api;
use serde_json::json;

#[tokio::test]
async fn the_api_runs_on_dynamodb() {
    let Some(env) = arca_testenv::aws() else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&env.sdk_config().await);
    let table = arca_testenv::unique("arca-api");
    arca_aws::dynamo::create_table(&client, &table)
        .await
        .expect("create table on moto");
    let api = Api::on(
        Arc::new(arca_aws::DynamoItemStore::new(client, &table)),
        true,
        PlanLimits::default(),
    );

    let t = api.signup("acme").await;
    let other = api.signup("other").await;
    let body = json!({ "name": "daily", "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] });
    let created = api.post("/v1/policies", &t.admin, body.clone()).await.expect(201);
    let path = format!("/v1/policies/{}", created.id());
    assert_eq!(api.get(&path, &t.admin).await.expect(200).etag(), "\"1\"");
    let list = api.get("/v1/policies?limit=1", &t.admin).await.expect(200);
    let cursor = list.body["nextCursor"]
        .as_str()
        .expect("two policies: the default and ours")
        .to_owned();
    let rest = api
        .get(&format!("/v1/policies?limit=1&cursor={cursor}"), &t.admin)
        .await
        .expect(200);
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    let updated = api
        .put(
            &path,
            &t.admin,
            "\"1\"",
            json!({ "name": "renamed", "schedules": body["schedules"] }),
        )
        .await
        .expect(200);
    assert_eq!(updated.etag(), "\"2\"");
    api.put(&path, &t.admin, "\"1\"", body)
        .await
        .problem(412, "precondition_failed");
    api.get(&path, &other.admin).await.problem(404, "not_found");
    api.get("/v1/org", "arca_unknown").await.problem(401, "unauthenticated");
    api.delete(&path, &t.admin, "\"2\"").await.expect(204);
}
