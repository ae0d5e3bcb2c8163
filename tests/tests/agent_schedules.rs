//! Schedule sync against EventBridge Scheduler on moto: the API (router, embedded store
//! and queue) wired with `arca_aws::EventBridgeScheduler`, driven over HTTP through
//! create, policy edit, pause, resume, policy change and delete of a definition. After
//! every call the schedules in the group are exactly the expected set, read both through
//! the adapter's `list` and straight from `ListSchedules`; a second definition's
//! schedules stay untouched throughout. (moto keeps schedules but never fires them.)

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arca_api::AppState;
use arca_aws::{EventBridgeScheduler, EventBridgeSchedulerConfig};
use arca_core::control_plane::ControlPlaneConfig;
use arca_core::model::schedule::Schedule;
use arca_core::ports::scheduler::Scheduler;
use aws_sdk_scheduler::types::ScheduleState;
use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};
use tower::ServiceExt;

const TARGET: &str = "arn:aws:lambda:us-east-1:123456789012:function:arca-dispatch";
const ROLE: &str = "arn:aws:iam::123456789012:role/arca-scheduler";

struct Http {
    router: axum::Router,
    key: String,
}

impl Http {
    async fn call(
        &self,
        method: Method,
        path: &str,
        etag: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Option<String>, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        if let Some(e) = etag {
            request = request.header(header::IF_MATCH, e);
        }
        let request = match body {
            Some(b) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get(header::ETAG)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, etag, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: Method, path: &str, etag: Option<&str>, body: Option<Value>) -> (Option<String>, Value) {
        let (status, etag, body_out) = self.call(method.clone(), path, etag, body).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {body_out}");
        (etag, body_out)
    }

    async fn etag(&self, path: &str) -> String {
        self.ok(Method::GET, path, None, None).await.0.unwrap()
    }
}

/// One expected schedule: (cron, timezone, rule, enabled).
type Want = (&'static str, &'static str, u32, bool);

struct Check<'a> {
    scheduler: &'a EventBridgeScheduler,
    client: &'a aws_sdk_scheduler::Client,
    group: &'a str,
    org: &'a str,
}

impl Check<'_> {
    /// The definition's schedules through the adapter are exactly `want`.
    async fn adapter(&self, def: &str, want: &[Want]) -> Vec<Schedule> {
        let got = self.scheduler.list(def).await.unwrap();
        let got_view: Vec<(String, String, String, u32, bool, String, String)> = got
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.cron.clone(),
                    s.timezone.clone(),
                    s.input.rule,
                    s.enabled,
                    s.input.definition_id.clone(),
                    s.input.org_id.to_string(),
                )
            })
            .collect();
        let want_view: Vec<(String, String, String, u32, bool, String, String)> = want
            .iter()
            .map(|(cron, tz, rule, enabled)| {
                (
                    format!("{def}-{rule}"),
                    (*cron).to_owned(),
                    (*tz).to_owned(),
                    *rule,
                    *enabled,
                    def.to_owned(),
                    self.org.to_owned(),
                )
            })
            .collect();
        assert_eq!(got_view, want_view, "schedules of {def}");
        got
    }

    /// Everything in the group, straight from ListSchedules: name -> enabled.
    async fn group(&self, want: &BTreeMap<String, bool>) {
        let mut got = BTreeMap::new();
        let mut next = None;
        loop {
            let page = self
                .client
                .list_schedules()
                .group_name(self.group)
                .set_next_token(next)
                .send()
                .await
                .unwrap();
            for s in page.schedules() {
                assert_eq!(s.target().map(|t| t.arn()), Some(TARGET), "{s:?}");
                got.insert(
                    s.name().unwrap().to_owned(),
                    s.state() != Some(&ScheduleState::Disabled),
                );
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        assert_eq!(&got, want, "the schedules in group {}", self.group);
    }
}

fn names(def: &str, want: &[Want]) -> BTreeMap<String, bool> {
    want.iter()
        .map(|(_, _, rule, enabled)| (format!("{def}-{rule}"), *enabled))
        .collect()
}

fn union(a: BTreeMap<String, bool>, b: BTreeMap<String, bool>) -> BTreeMap<String, bool> {
    a.into_iter().chain(b).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definition_and_policy_changes_keep_eventbridge_schedules_in_step() {
    let Some(env) = arca_testenv::aws() else {
        return;
    };
    let client = aws_sdk_scheduler::Client::new(&env.sdk_config().await);
    let group = arca_testenv::unique("arca-sync");
    let scheduler = EventBridgeScheduler::new(
        client.clone(),
        EventBridgeSchedulerConfig {
            group: group.clone(),
            target_arn: TARGET.into(),
            role_arn: ROLE.into(),
        },
    );
    scheduler.ensure_group().await.unwrap();
    let scheduler = Arc::new(scheduler);

    let dir = tempfile::tempdir().unwrap();
    let items = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).unwrap());
    let state = AppState::with_ports(
        items,
        Arc::new(arca_embedded::EmbeddedQueue::new(3)),
        scheduler.clone(),
        Default::default(),
        ControlPlaneConfig {
            signup_open: true,
            ..Default::default()
        },
    );
    let router = arca_api::router(state);
    let signup = Http {
        router: router.clone(),
        key: String::new(),
    };
    let (_, org) = signup
        .ok(Method::POST, "/v1/signup", None, Some(json!({ "orgName": "sched" })))
        .await;
    let http = Http {
        router,
        key: org["adminKey"]["secret"].as_str().unwrap().to_owned(),
    };
    let org_id = org["org"]["id"].as_str().unwrap().to_owned();
    let check = Check {
        scheduler: &scheduler,
        client: &client,
        group: &group,
        org: &org_id,
    };

    let (_, dest) = http
        .ok(
            Method::POST,
            "/v1/destinations",
            None,
            Some(json!({ "name": "d", "target": { "kind": "S3", "bucket": "arca-backups", "region": "eu-west-1" } })),
        )
        .await;
    let (_, cluster) = http
        .ok(
            Method::POST,
            "/v1/clusters",
            None,
            Some(json!({ "name": "c", "defaultDestinationId": dest["id"] })),
        )
        .await;
    let cluster = cluster["id"].as_str().unwrap().to_owned();
    let policy = |name: &str, tz: &str, crons: &[&str]| {
        json!({
            "name": name,
            "timezone": tz,
            "schedules": crons.iter().map(|c| json!({ "cron": c, "retainDays": 7 })).collect::<Vec<_>>(),
        })
    };
    let (_, p1) = http
        .ok(
            Method::POST,
            "/v1/policies",
            None,
            Some(policy("twice", "Europe/Berlin", &["0 1 * * *", "0 13 * * *"])),
        )
        .await;
    let p1 = p1["id"].as_str().unwrap().to_owned();
    let (_, p2) = http
        .ok(
            Method::POST,
            "/v1/policies",
            None,
            Some(policy("once", "America/New_York", &["30 4 * * *"])),
        )
        .await;
    let p2 = p2["id"].as_str().unwrap().to_owned();
    let backup = |policy: &str| json!({ "name": "b", "clusterId": cluster, "selection": { "fullCluster": true }, "policyId": policy });

    // The bystander: a second definition on the other policy.
    let (_, other) = http.ok(Method::POST, "/v1/backups", None, Some(backup(&p2))).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let other_want: [Want; 1] = [("30 4 * * *", "America/New_York", 0, true)];
    let other_before = check.adapter(&other, &other_want).await;
    let modified = |client: aws_sdk_scheduler::Client, group: String, name: String| async move {
        let got = client.get_schedule().group_name(group).name(name).send().await.unwrap();
        got.last_modification_date().copied()
    };
    let other_modified = modified(client.clone(), group.clone(), format!("{other}-0")).await;
    assert!(other_modified.is_some(), "moto reports LastModificationDate");

    // Create: one schedule per row, enabled, with the row's cron and the policy's zone.
    let (_, def) = http.ok(Method::POST, "/v1/backups", None, Some(backup(&p1))).await;
    let def = def["id"].as_str().unwrap().to_owned();
    let want: Vec<Want> = vec![
        ("0 1 * * *", "Europe/Berlin", 0, true),
        ("0 13 * * *", "Europe/Berlin", 1, true),
    ];
    check.adapter(&def, &want).await;
    check
        .group(&union(names(&def, &want), names(&other, &other_want)))
        .await;
    // The target input is the dispatch contract.
    let raw = client
        .get_schedule()
        .group_name(&group)
        .name(format!("{def}-1"))
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(raw.target().unwrap().input().unwrap()).unwrap();
    assert_eq!(input, json!({ "orgId": org_id, "definitionId": def, "rule": 1 }));
    assert_eq!(raw.schedule_expression(), Some("cron(0 13 * * ? *)"));

    // Edit the policy: a changed row and a third row.
    let etag = http.etag(&format!("/v1/policies/{p1}")).await;
    http.ok(
        Method::PUT,
        &format!("/v1/policies/{p1}"),
        Some(&etag),
        Some(policy(
            "thrice",
            "Europe/Berlin",
            &["15 2 * * *", "0 13 * * *", "45 20 * * 0"],
        )),
    )
    .await;
    let want: Vec<Want> = vec![
        ("15 2 * * *", "Europe/Berlin", 0, true),
        ("0 13 * * *", "Europe/Berlin", 1, true),
        ("45 20 * * 0", "Europe/Berlin", 2, true),
    ];
    check.adapter(&def, &want).await;
    check
        .group(&union(names(&def, &want), names(&other, &other_want)))
        .await;

    // Pause: every schedule stays, disabled. Resume: enabled again.
    http.ok(Method::POST, &format!("/v1/backups/{def}/pause"), None, Some(json!({})))
        .await;
    let paused: Vec<Want> = want.iter().map(|(c, tz, r, _)| (*c, *tz, *r, false)).collect();
    check.adapter(&def, &paused).await;
    check
        .group(&union(names(&def, &paused), names(&other, &other_want)))
        .await;
    http.ok(
        Method::POST,
        &format!("/v1/backups/{def}/resume"),
        None,
        Some(json!({})),
    )
    .await;
    check.adapter(&def, &want).await;
    check
        .group(&union(names(&def, &want), names(&other, &other_want)))
        .await;

    // Move the definition to the other policy: its rows, its zone; rows 1 and 2 go.
    let etag = http.etag(&format!("/v1/backups/{def}")).await;
    http.ok(
        Method::PUT,
        &format!("/v1/backups/{def}"),
        Some(&etag),
        Some(backup(&p2)),
    )
    .await;
    let want: Vec<Want> = vec![("30 4 * * *", "America/New_York", 0, true)];
    check.adapter(&def, &want).await;
    check
        .group(&union(names(&def, &want), names(&other, &other_want)))
        .await;

    // Delete: none of its schedules are left; the bystander's are as they were.
    let etag = http.etag(&format!("/v1/backups/{def}")).await;
    http.ok(Method::DELETE, &format!("/v1/backups/{def}"), Some(&etag), None)
        .await;
    check.adapter(&def, &[]).await;
    check.group(&names(&other, &other_want)).await;
    assert_eq!(
        scheduler.list(&other).await.unwrap(),
        other_before,
        "the bystander is as it was"
    );
    assert_eq!(
        modified(client.clone(), group.clone(), format!("{other}-0")).await,
        other_modified,
        "the bystander was never rewritten"
    );

    http.ok(
        Method::DELETE,
        &format!("/v1/backups/{other}"),
        Some(&http.etag(&format!("/v1/backups/{other}")).await),
        None,
    )
    .await;
    check.group(&BTreeMap::new()).await;
    client.delete_schedule_group().name(group).send().await.unwrap();
}
