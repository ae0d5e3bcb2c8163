//! The deployment operator sets an org's plan with its own token (the deployment keeps
//! only its SHA-256), never with an org's API key: free caps retention at 30 days, paid
//! lifts the cap, and both are reachable. A deployment without the token refuses.

mod common;

use arca_core::model::secret::Secret;
use common::Api;
use serde_json::json;

const TOKEN: &str = "arca-operator-4f1c9e2b7a0d";

fn with_operator(mut api: Api) -> Api {
    api.state.control_plane = api
        .state
        .control_plane
        .clone()
        .with_operator_token_hash(Some(Secret::from_presented(TOKEN).hash()));
    api.router = arca_api::router(api.state.clone());
    api
}

async fn set_plan(api: &Api, token: &str, org: &str, plan: &str) -> common::Reply {
    api.request(
        axum::http::Method::PUT,
        &format!("/v1/operator/orgs/{org}/plan"),
        Some(token),
        None,
        Some(json!({ "plan": plan })),
    )
    .await
}

fn policy(name: &str, days: u32) -> serde_json::Value {
    json!({ "name": name, "schedules": [{ "cron": "0 3 * * *", "retainDays": days }] })
}

#[tokio::test]
async fn the_operator_moves_an_org_between_plans_and_nobody_else_can() {
    // Without an operator token configured, nobody sets plans.
    let plain = Api::new();
    let t = plain.signup("no-operator").await;
    set_plan(&plain, TOKEN, &t.org_id, "paid")
        .await
        .problem(403, "forbidden");

    let api = with_operator(Api::new());
    let t = api.signup("acme").await;
    let org = api.get("/v1/org", &t.admin).await.expect(200);
    assert_eq!(org.body["plan"], "free", "{}", org.text);
    api.post("/v1/policies", &t.admin, policy("long", 60))
        .await
        .problem(422, "plan_limit_exceeded");

    // The org's own admin key, a wrong token, no token: not the operator.
    set_plan(&api, &t.admin, &t.org_id, "paid")
        .await
        .problem(401, "unauthenticated");
    set_plan(&api, "arca-operator-wrong", &t.org_id, "paid")
        .await
        .problem(401, "unauthenticated");
    api.request(
        axum::http::Method::PUT,
        &format!("/v1/operator/orgs/{}/plan", t.org_id),
        None,
        None,
        Some(json!({ "plan": "paid" })),
    )
    .await
    .problem(401, "unauthenticated");
    assert_eq!(api.get("/v1/org", &t.admin).await.expect(200).body["plan"], "free");

    // Bad input: an unknown plan, an unknown org.
    set_plan(&api, TOKEN, &t.org_id, "gold").await.expect(400);
    set_plan(&api, TOKEN, &arca_core::ids::OrgId::new().to_string(), "paid")
        .await
        .expect(404);

    // Paid: retention without the 30-day cap.
    let paid = set_plan(&api, TOKEN, &t.org_id, "paid").await.expect(200);
    assert_eq!(paid.body["plan"], "paid", "{}", paid.text);
    api.post("/v1/policies", &t.admin, policy("long", 60)).await.expect(201);
    api.post("/v1/policies", &t.admin, policy("decade", 3650))
        .await
        .expect(201);

    // And back to free: the cap applies again to what is written next.
    set_plan(&api, TOKEN, &t.org_id, "free").await.expect(200);
    api.post("/v1/policies", &t.admin, policy("again", 60))
        .await
        .problem(422, "plan_limit_exceeded");
    api.post("/v1/policies", &t.admin, policy("month", 30))
        .await
        .expect(201);
}
