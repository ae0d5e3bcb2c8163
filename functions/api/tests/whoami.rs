//! `GET /v1/whoami`: the calling key's org, id and role (what the web console shows or
//! hides by), for every role, and a 401 without a valid key.

#![allow(clippy::unwrap_used)]

mod common;

use axum::http::Method;
use common::Api;

#[tokio::test]
async fn whoami_names_the_calling_key_and_its_role() {
    let api = Api::new();
    let tenant = api.signup("acme").await;
    let admin = api.get("/v1/whoami", &tenant.admin).await.expect(200);
    assert_eq!(admin.body["orgId"], tenant.org_id.as_str());
    assert_eq!(admin.body["role"], "admin");
    assert!(admin.body["apiKeyId"].as_str().unwrap().starts_with("key_"));
    for role in ["viewer", "operator"] {
        let key = api.key(&tenant, role).await;
        let me = api.get("/v1/whoami", &key).await.expect(200);
        assert_eq!(me.body["role"], role);
        assert_eq!(me.body["orgId"], tenant.org_id.as_str());
        assert_ne!(me.body["apiKeyId"], admin.body["apiKeyId"], "each key is itself");
    }
    // Another org's admin is that org's.
    let other = api.signup("other").await;
    let them = api.get("/v1/whoami", &other.admin).await.expect(200);
    assert_eq!(them.body["orgId"], other.org_id.as_str());
    api.request(Method::GET, "/v1/whoami", None, None, None)
        .await
        .problem(401, "unauthenticated");
    api.get("/v1/whoami", "arca_not_a_key")
        .await
        .problem(401, "unauthenticated");
}
