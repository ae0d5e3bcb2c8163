//! The OpenAPI document's error contract, checked on the document itself (issue #17):
//! every operation lists the statuses its shape lets it return, every error is
//! `application/problem+json` with the `Problem` schema, and what the router answers an
//! unauthenticated or malformed request is listed for the operation. A new route that
//! misses one fails here, without scripts/api-contract.sh's schemathesis run.

// Test helpers outside #[test] fns fail loudly too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, header};
use common::Api;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

struct Op<'a> {
    method: &'a str,
    path: &'a str,
    op: &'a Value,
}

impl Op<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    fn statuses(&self) -> BTreeSet<u16> {
        self.op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|s| s.parse().unwrap_or_else(|_| panic!("{}: status {s:?}", self.name())))
            .collect()
    }

    /// The security scheme names the operation requires (the document's by default).
    fn schemes(&self, doc: &Value) -> BTreeSet<String> {
        let security = self.op.get("security").unwrap_or(&doc["security"]);
        security
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r.as_object().unwrap().keys().cloned())
            .collect()
    }

    fn params(&self, location: &str) -> Vec<&Value> {
        self.op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == location)
            .collect()
    }
}

fn doc() -> Value {
    serde_json::to_value(arca_api::openapi()).unwrap()
}

fn operations(doc: &Value) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.push(Op { method, path, op });
            }
        }
    }
    assert!(ops.len() > 60, "{} operations", ops.len());
    ops
}

/// A response, its `$ref` (to `#/components/responses/...`) followed.
fn resolve<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/components/responses/").unwrap();
            doc["components"]["responses"]
                .get(name)
                .unwrap_or_else(|| panic!("dangling {r}"))
        }
        None => response,
    }
}

/// Every member name a schema declares under `properties`, with where it is.
fn property_names(at: &str, schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().map(|k| format!("{at}.{k}")));
            }
            for (key, value) in map {
                property_names(&format!("{at}/{key}"), value, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                property_names(&format!("{at}[{i}]"), item, out);
            }
        }
        _ => {}
    }
}

/// The API reads and writes camelCase members: a documented snake_case one is a member
/// the API would refuse (serde attributes the OpenAPI derive does not read, such as
/// `rename_all_fields`, once documented `credentials_ref` where the API takes
/// `credentialsRef`).
#[test]
fn documented_members_are_camel_case_as_the_api_reads_them() {
    let doc = doc();
    let mut names = Vec::new();
    property_names("#/components/schemas", &doc["components"]["schemas"], &mut names);
    property_names("#/paths", &doc["paths"], &mut names);
    assert!(names.len() > 100, "{} members", names.len());
    let snake: Vec<&String> = names
        .iter()
        .filter(|n| n.rsplit('.').next().is_some_and(|m| m.contains('_')))
        .collect();
    assert!(snake.is_empty(), "snake_case members documented: {snake:#?}");
    assert!(
        names.iter().any(|n| n.ends_with(".credentialsRef")),
        "the S3 target's credentialsRef is documented"
    );
}

#[test]
fn every_operation_lists_the_errors_its_shape_can_return() {
    let doc = doc();
    let mut missing = Vec::new();
    for op in operations(&doc) {
        let statuses = op.statuses();
        let schemes = op.schemes(&doc);
        let mut need = BTreeSet::new();
        if op.path != "/v1/openapi.json" {
            need.extend([500, 503]);
        }
        if !schemes.is_empty() {
            need.insert(401);
        }
        if schemes.contains("apiKey") || schemes.contains("operatorToken") {
            need.insert(403);
        }
        if op.op.get("requestBody").is_some() {
            need.extend([400, 413, 415]);
        }
        if ["query", "path", "header"].iter().any(|at| !op.params(at).is_empty()) {
            need.insert(400);
        }
        if !op.params("path").is_empty() {
            need.insert(404);
        }
        if let Some(if_match) = op.params("header").into_iter().find(|p| p["name"] == "If-Match") {
            need.insert(412);
            if if_match["required"] == true {
                need.insert(428);
            }
        }
        if !schemes.is_empty() && op.method != "get" {
            need.insert(409);
        }
        let absent: Vec<_> = need.difference(&statuses).collect();
        if !absent.is_empty() {
            missing.push(format!("{}: {absent:?}", op.name()));
        }
        assert!(
            statuses.iter().any(|s| (200..300).contains(s)),
            "{} documents no success",
            op.name()
        );
    }
    assert!(
        missing.is_empty(),
        "operations missing error responses:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_response_is_described_and_every_error_is_problem_json() {
    let doc = doc();
    let mut wrong = Vec::new();
    for op in operations(&doc) {
        for (status, response) in op.op["responses"].as_object().unwrap() {
            let response = resolve(&doc, response);
            // OpenAPI requires a description on every response.
            if response["description"].as_str().unwrap_or("").is_empty() {
                wrong.push(format!("{} {status}: no description", op.name()));
            }
            if status.parse::<u16>().unwrap() < 400 {
                continue;
            }
            let content = response["content"].as_object().unwrap();
            let types: Vec<_> = content.keys().collect();
            if types != ["application/problem+json"]
                || content["application/problem+json"]["schema"]["$ref"] != "#/components/schemas/Problem"
            {
                wrong.push(format!("{} {status}: {}", op.name(), response["content"]));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "responses without a description, or errors not problem+json:\n{}",
        wrong.join("\n")
    );
    // `extensions` is flattened into the problem, so the schema is an `allOf` of the
    // members and an open object: the required members are in one of its parts.
    let problem = &doc["components"]["schemas"]["Problem"];
    let required: BTreeSet<&str> = std::iter::once(problem)
        .chain(problem["allOf"].as_array().into_iter().flatten())
        .flat_map(|part| part["required"].as_array().into_iter().flatten())
        .map(|v| v.as_str().unwrap())
        .collect();
    for member in ["code", "title", "status", "detail"] {
        assert!(required.contains(member), "Problem.{member} is not required: {problem}");
    }
}

/// The path with every `{param}` filled with something that is no id.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str("not-an-id");
        rest = &rest[end + 1..];
    }
    out + rest
}

/// What the router really answers a request without a credential, and one with the
/// operation's credential and a body that is not JSON, is what the document lists for the
/// operation, as a problem.
#[tokio::test]
async fn the_router_answers_bad_requests_as_documented() {
    let api = Api::new();
    let doc = doc();
    let tenant = api.signup("contract").await;
    let (_, agent_token) = api.cluster(&tenant.admin, "contract", None).await;
    let mut undocumented = Vec::new();
    for op in operations(&doc) {
        let statuses = op.statuses();
        let method = Method::from_bytes(op.method.to_uppercase().as_bytes()).unwrap();
        let uri = concrete(op.path);
        let mut requests = vec![("no credential", Request::builder().method(method.clone()).uri(&uri))];
        if op.op.get("requestBody").is_some() {
            let schemes = op.schemes(&doc);
            let mut request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header(header::CONTENT_TYPE, "text/plain");
            if schemes.contains("apiKey") {
                request = request.header(header::AUTHORIZATION, format!("Bearer {}", tenant.admin));
            } else if schemes.contains("agentToken") {
                request = request.header(header::AUTHORIZATION, format!("Bearer {agent_token}"));
            }
            requests.push(("a text body", request));
        }
        for (what, request) in requests {
            let reply = api.send(request.body(Body::from("not json")).unwrap()).await;
            let status = reply.status.as_u16();
            if status >= 400 {
                assert_eq!(
                    reply.content_type.as_deref(),
                    Some("application/problem+json"),
                    "{} ({what}): {status} {}",
                    op.name(),
                    reply.text
                );
            }
            if !statuses.contains(&status) {
                undocumented.push(format!("{} ({what}): {status} {}", op.name(), reply.text));
            }
            if what == "a text body" && ["/v1/signup", "/v1/agent/connect", "/v1/clusters"].contains(&op.path) {
                assert_eq!(status, 415, "{} with a text body: {}", op.name(), reply.text);
            }
            if what == "no credential" && !op.schemes(&doc).is_empty() {
                assert_eq!(status, 401, "{} without a credential: {}", op.name(), reply.text);
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "answers the document does not list:\n{}",
        undocumented.join("\n")
    );
}

/// A path segment that does not decode to UTF-8 is a problem naming the path, not
/// axum's plain-text rejection (which no operation documents).
#[tokio::test]
async fn an_undecodable_path_is_a_problem() {
    let api = Api::new();
    let tenant = api.signup("contract").await;
    for path in ["/v1/clusters/%FF", "/v1/destinations/%C3%28/maintenance"] {
        let reply = api.get(path, &tenant.admin).await.problem(400, "invalid_path");
        assert!(
            reply.body["detail"].as_str().unwrap().contains("path"),
            "{}",
            reply.text
        );
    }
}

/// Every id in a path has a pattern, and the prefix it names is the one the route parses:
/// an id of that form that exists nowhere is a 404 (or another documented refusal), never
/// a 400 `invalid_id`.
#[tokio::test]
async fn path_ids_have_the_pattern_their_route_parses() {
    let api = Api::new();
    let tenant = api.signup("contract").await;
    let (_, agent_token) = api.cluster(&tenant.admin, "contract", None).await;
    let doc = doc();
    let ulid = ulid::Ulid::new().to_string();
    let mut checked = 0;
    for op in operations(&doc) {
        let mut uri = op.path.to_owned();
        for param in op.params("path") {
            let name = param["name"].as_str().unwrap();
            if name == "token" {
                continue; // an install link's secret, not an id
            }
            let pattern = param["schema"]["pattern"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: path parameter {name} has no pattern", op.name()));
            let prefix = &pattern[1..pattern.find("_[").unwrap()];
            uri = uri.replace(&format!("{{{name}}}"), &format!("{prefix}_{ulid}"));
        }
        if uri == op.path || uri.contains('{') {
            continue;
        }
        let schemes = op.schemes(&doc);
        let mut request = Request::builder()
            .method(Method::from_bytes(op.method.to_uppercase().as_bytes()).unwrap())
            .uri(&uri)
            .header(header::IF_MATCH, "\"1\"")
            .header(header::CONTENT_TYPE, "application/json");
        if schemes.contains("apiKey") {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", tenant.admin));
        } else if schemes.contains("agentToken") {
            request = request.header(header::AUTHORIZATION, format!("Bearer {agent_token}"));
        }
        let reply = api.send(request.body(Body::from("{}")).unwrap()).await;
        assert_ne!(
            reply.body["code"],
            "invalid_id",
            "{} as {uri}: {}",
            op.name(),
            reply.text
        );
        assert!(
            op.statuses().contains(&reply.status.as_u16()),
            "{} as {uri}: undocumented {} {}",
            op.name(),
            reply.status,
            reply.text
        );
        checked += 1;
    }
    assert!(checked > 30, "{checked} operations with ids");
}

/// Found by the schemathesis run: a purge on an Arca-managed destination of a deployment
/// without managed storage was a 500 after marking the points DELETING. It is a 409
/// `managed_storage_unavailable`, before anything changes.
#[tokio::test]
async fn managed_storage_a_deployment_lacks_is_a_conflict_not_a_fault() {
    let api = Api::new();
    let tenant = api.signup("contract").await;
    let destination = api
        .post(
            "/v1/destinations",
            &tenant.admin,
            serde_json::json!({ "name": "managed", "target": { "kind": "ARCA_MANAGED" } }),
        )
        .await
        .expect(201)
        .id();
    let gone_cluster = arca_core::ids::ClusterId::new();
    let purge = format!("/v1/destinations/{destination}/repositories/{gone_cluster}/purge");
    api.post(&purge, &tenant.admin, serde_json::json!({}))
        .await
        .problem(409, "managed_storage_unavailable");
    // Nothing was begun: completing finds no purge to complete.
    api.post(&format!("{purge}/complete"), &tenant.admin, serde_json::json!({}))
        .await
        .problem(409, "purge_not_possible");
}
