//! `arca server`'s `/metrics`, scraped over HTTP from a running server: API calls counted by
//! route template and status class, a scheduled backup's dispatch, scheduler ticks. And the
//! docs' Grafana dashboard and alert rules: both parse, and every metric they name is one
//! the agent or the server defines (renaming a metric fails here).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arca_cli::server::{ServerOptions, WATERMARK_FILE, start};
use serde_json::{Value, json};

/// The samples of an OpenMetrics text: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse().expect("a number")))
        .collect()
}

async fn scrape(http: &reqwest::Client, base: &str) -> BTreeMap<String, f64> {
    let resp = http.get(format!("{base}/metrics")).send().await.expect("scrape");
    assert!(resp.status().is_success(), "/metrics: {}", resp.status());
    let content_type = resp.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.expect("text");
    assert!(text.ends_with("# EOF\n"), "{text}");
    samples(&text)
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// `method path` with the key and `body`; the status and the JSON answer.
async fn call(http: &reqwest::Client, base: &str, key: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let mut req = http
        .request(method.parse().expect("method"), format!("{base}{path}"))
        .bearer_auth(key);
    if !body.is_null() {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arca_servers_metrics_count_requests_and_dispatches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let options = || ServerOptions::new(data.clone(), "127.0.0.1:0".parse().expect("addr"));
    let http = reqwest::Client::new();

    let server = start(options()).await.expect("start");
    let base = format!("http://{}", server.addr);
    let key = arca_testenv::api::sign_up(&http, &base, &arca_testenv::unique("metrics")).await;
    let (status, dest) = call(
        &http,
        &base,
        &key,
        "POST",
        "/v1/destinations",
        json!({"name": "local", "target": {"kind": "LOCAL_FILESYSTEM", "path": dir.path().join("dest")}}),
    )
    .await;
    assert_eq!(status, 201, "{dest}");
    let (_, cluster) = call(&http, &base, &key, "POST", "/v1/clusters", json!({"name": "a"})).await;
    let cluster_id = cluster["id"].as_str().expect("cluster id").to_owned();
    let (_, policy) = call(
        &http,
        &base,
        &key,
        "POST",
        "/v1/policies",
        json!({"name": "nightly", "schedules": [{"cron": "0 3 * * *", "retainDays": 7}]}),
    )
    .await;
    let (status, def) = call(
        &http,
        &base,
        &key,
        "POST",
        "/v1/backups",
        json!({"name": "nightly", "clusterId": cluster_id, "selection": {"fullCluster": true},
               "policyId": policy["id"], "destinationId": dest["id"]}),
    )
    .await;
    assert_eq!(status, 201, "{def}");
    for _ in 0..2 {
        let (status, _) = call(
            &http,
            &base,
            &key,
            "GET",
            &format!("/v1/clusters/{cluster_id}"),
            Value::Null,
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = call(
        &http,
        &base,
        &key,
        "GET",
        "/v1/clusters/cl_01J00000000000000000000000",
        Value::Null,
    )
    .await;
    assert!((400..500).contains(&status), "{status}");
    let (status, _) = call(&http, &base, "not-a-key", "GET", "/v1/clusters", Value::Null).await;
    assert_eq!(status, 401);

    let scraped = scrape(&http, &base).await;
    let route = |path: &str, method: &str, class: &str| {
        format!("arca_server_http_requests_total{{route=\"{path}\",method=\"{method}\",status_class=\"{class}\"}}")
    };
    assert_eq!(
        value(&scraped, &route("/v1/clusters/{id}", "GET", "2xx")),
        2.0,
        "{scraped:?}"
    );
    assert_eq!(
        value(&scraped, &route("/v1/clusters/{id}", "GET", "4xx")),
        1.0,
        "{scraped:?}"
    );
    assert_eq!(
        value(&scraped, &route("/v1/clusters", "GET", "4xx")),
        1.0,
        "{scraped:?}"
    );
    assert_eq!(
        value(&scraped, &route("/v1/backups", "POST", "2xx")),
        1.0,
        "{scraped:?}"
    );
    assert_eq!(
        value(
            &scraped,
            "arca_server_http_request_duration_seconds_count{route=\"/v1/clusters/{id}\"}"
        ),
        3.0
    );
    // The scrape itself is not an API request.
    assert!(scraped.keys().all(|k| !k.contains("route=\"/metrics\"")), "{scraped:?}");
    assert!(value(&scraped, "arca_server_scheduler_ticks_total") >= 1.0);
    assert_eq!(
        scraped[&format!("arca_server_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))],
        1.0
    );
    server.stop().await.expect("stop");

    // Down over a 03:00: at the next start the schedule is caught up, through the
    // scheduler loop's dispatch.
    let two_days_ago = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()) - chrono::Duration::days(2);
    std::fs::write(data.join(WATERMARK_FILE), two_days_ago.to_rfc3339()).expect("watermark");
    let server = start(options()).await.expect("restart");
    let base = format!("http://{}", server.addr);
    let mut jobs = Value::Null;
    for _ in 0..50 {
        jobs = call(&http, &base, &key, "GET", "/v1/jobs", Value::Null).await.1;
        if jobs["items"].as_array().is_some_and(|j| !j.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = &jobs["items"][0];
    assert_eq!(job["trigger"], "SCHEDULED", "{jobs}");
    let scraped = scrape(&http, &base).await;
    // The job the dispatch made says which it was: queued for the agent, or skipped.
    let (counted, other) = if job["state"] == "SKIPPED" {
        ("skipped", "dispatched")
    } else {
        ("dispatched", "skipped")
    };
    let dispatches = |result: &str| {
        value(
            &scraped,
            &format!("arca_server_dispatches_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(dispatches(counted), 1.0, "{job} {scraped:?}");
    assert_eq!(dispatches(other), 0.0, "{scraped:?}");
    assert_eq!(dispatches("error"), 0.0, "{scraped:?}");
    server.stop().await.expect("stop");
}

/// The sample names a registry's text gives (`# TYPE` lines, with each type's suffixes).
fn sample_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, kind) in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
    {
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every `arca_agent_*` / `arca_server_*` name in `text`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("arca_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        if name.starts_with("arca_agent_") || name.starts_with("arca_server_") {
            found.insert(name.to_owned());
        }
        rest = &tail[end.max(1)..];
    }
    found
}

/// The agent's metrics text with every family recorded once.
fn every_agent_family() -> String {
    use arca_agent::metrics::{Data, ErrorKind, Metrics, PollResult};
    use arca_core::model::job::{JobState, JobType};
    let m = Metrics::new();
    m.job_started(JobType::K8sBackup);
    m.job_finished(JobType::K8sBackup, JobState::Completed, Duration::from_secs(1));
    m.data_read(Data::Resources, 1, 1);
    m.data_written(Data::Resources, 1);
    m.poll(PollResult::Empty);
    m.heartbeat(true);
    m.error(ErrorKind::Lease);
    let text = m.encode();
    assert_eq!(arca_agent::metrics::families(&text).len(), 11, "{text}");
    text
}

/// arca server's metrics text with every family recorded once.
fn every_server_family() -> String {
    use arca_cli::server::metrics::{Dispatch, ServerMetrics};
    let m = ServerMetrics::new();
    m.request("/v1/jobs".into(), "GET".into(), 200, 0.01);
    m.dispatch(Dispatch::Dispatched);
    m.scheduler_tick();
    m.retention_sweep(true);
    let text = m.encode();
    assert_eq!(arca_agent::metrics::families(&text).len(), 6, "{text}");
    text
}

fn docs(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_dashboard_and_the_alert_rules_name_only_metrics_that_exist() {
    // A family shows once it has a series: each is recorded once.
    let (agent, server) = (every_agent_family(), every_server_family());
    let mut defined = sample_names(&agent);
    defined.extend(sample_names(&server));
    assert!(defined.contains("arca_agent_jobs_finished_total") && defined.contains("arca_server_dispatches_total"));

    // The dashboard: Grafana JSON whose Prometheus queries are the panels' `expr`s.
    let dashboard: Value = serde_json::from_str(&docs("grafana/arca-dashboard.json")).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "arca-overview");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
        for target in panel["targets"].as_array().into_iter().flatten() {
            match target["datasource"]["type"].as_str() {
                Some("prometheus") => exprs.push(target["expr"].as_str().expect("expr").to_owned()),
                Some("cloudwatch") => assert_eq!(target["namespace"], "Arca", "{target}"),
                other => panic!("a target on {other:?}: {target}"),
            }
        }
    }
    let in_dashboard = referenced(&exprs.join("\n"));
    for family in [
        "jobs_finished",
        "read_bytes",
        "written_bytes",
        "deduplicated_bytes",
        "queue_polls",
    ] {
        assert!(
            in_dashboard.contains(&format!("arca_agent_{family}_total")),
            "the dashboard shows {family}"
        );
    }

    // The rules: a PrometheusRule whose groups are a Prometheus rules file.
    let rules: Value = serde_norway::from_str(&docs("prometheus/arca-alerts.yaml")).expect("the rules are YAML");
    assert_eq!(rules["kind"], "PrometheusRule");
    let mut alerts = BTreeSet::new();
    let mut rule_exprs = Vec::new();
    for group in rules["spec"]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let alert = rule["alert"].as_str().expect("an alert name");
            assert!(alerts.insert(alert.to_owned()), "{alert} twice");
            assert!(rule["labels"]["severity"].is_string(), "{alert} has a severity");
            assert!(rule["annotations"]["summary"].is_string(), "{alert} has a summary");
            rule_exprs.push(rule["expr"].as_str().expect("expr").to_owned());
        }
    }
    for alert in [
        "ArcaBackupJobFailed",
        "ArcaNoSuccessfulBackup",
        "ArcaAgentDown",
        "ArcaAgentNotPolling",
        "ArcaServerErrorRate",
    ] {
        assert!(alerts.contains(alert), "{alert} is missing");
    }
    let in_rules = referenced(&rule_exprs.join("\n"));

    let named: BTreeSet<_> = in_dashboard.union(&in_rules).collect();
    assert!(named.len() >= 10, "{named:?}");
    let unknown: Vec<_> = named.iter().filter(|n| !defined.contains(n.as_str())).collect();
    assert!(
        unknown.is_empty(),
        "named but not defined: {unknown:?}; defined: {defined:?}"
    );
    // And docs/metrics.md lists every metric there is.
    let page = docs("metrics.md");
    for (name, _) in arca_agent::metrics::families(&agent)
        .into_iter()
        .chain(arca_agent::metrics::families(&server))
    {
        assert!(
            page.contains(&format!("`{name}")),
            "docs/metrics.md does not list {name}"
        );
    }
}
