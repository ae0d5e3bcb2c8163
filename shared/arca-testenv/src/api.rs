//! The API in-process, as the agent and end-to-end tests run it: a router served on a
//! loopback port, and an org signed up on it.

/// Serves `router` on a fresh loopback port, on a task of the test's runtime; returns its
/// base URL (`http://127.0.0.1:PORT`).
pub async fn serve_on_loopback(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// Signs up the org `org_name` at the API at `base`; returns its admin key's secret.
pub async fn sign_up(http: &reqwest::Client, base: &str, org_name: &str) -> String {
    let signup: serde_json::Value = http
        .post(format!("{base}/v1/signup"))
        .json(&serde_json::json!({ "orgName": org_name }))
        .send()
        .await
        .expect("sign-up")
        .json()
        .await
        .expect("sign-up answer");
    signup["adminKey"]["secret"].as_str().expect("admin key").to_owned()
}
