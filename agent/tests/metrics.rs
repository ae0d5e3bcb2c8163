//! The agent's `/metrics`, scraped over HTTP from the real `arca-agent run` binary (beside
//! its probes) while it backs up a namespace of the real kube-apiserver through the real
//! API router: a backup moves the counters it should (the job counted once as COMPLETED,
//! its duration observed, the bytes it read and wrote, with what it wrote matching the
//! destination's files), and a second identical backup deduplicates what the first stored.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use serde_json::json;

/// The samples of an OpenMetrics text: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse().unwrap()))
        .collect()
}

async fn scrape(http: &reqwest::Client, addr: &str) -> BTreeMap<String, f64> {
    let resp = http.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert!(resp.status().is_success(), "/metrics: {}", resp.status());
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    samples(&text)
}

/// The value of `series` (0 before its first increment: a family shows only label sets
/// that were used).
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Total size of the files under `dir`.
fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            size_of(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

const FINISHED: &str = r#"arca_agent_jobs_finished_total{job_type="K8S_BACKUP",outcome="COMPLETED"}"#;
const STARTED: &str = r#"arca_agent_jobs_started_total{job_type="K8S_BACKUP"}"#;
const DURATIONS: &str = r#"arca_agent_job_duration_seconds_count{job_type="K8S_BACKUP"}"#;
const READ: &str = r#"arca_agent_read_bytes_total{data="resources"}"#;
const WRITTEN: &str = r#"arca_agent_written_bytes_total{data="resources"}"#;
const DEDUPLICATED: &str = r#"arca_agent_deduplicated_bytes_total{data="resources"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_moves_the_agents_counters() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let admin = common::serve_and_sign_up(
        common::embedded_state(dir.path(), common::quick_config()),
        &arca_testenv::unique("agent-metrics"),
    )
    .await;
    let dest = dir.path().join("dest");
    let registered = admin
        .register_cluster_a(json!({ "name": "local", "target": { "kind": "LOCAL_FILESYSTEM", "path": dest } }))
        .await;
    let cluster_id = registered["id"].as_str().unwrap().to_owned();
    let agent = common::run_agent(&admin, &registered, &cluster.kubeconfig, Stdio::null()).await;
    let addr = &agent.health_addr;

    // A namespace with a ConfigMap of 64 KiB (compressible: the archive stores it smaller).
    let ns = arca_testenv::unique("metrics");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(cluster.client.clone());
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(json!({ "metadata": { "name": ns } })).unwrap(),
        )
        .await
        .unwrap();
    let payload = "backup me ".repeat(64 * 1024 / 10);
    let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.client.clone(), &ns);
    config_maps
        .create(
            &Default::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "big" }, "data": { "payload": payload } })).unwrap(),
        )
        .await
        .unwrap();
    let def = admin
        .post(
            "/v1/backups",
            json!({ "name": "ns", "clusterId": cluster_id, "pvMode": "none", "selection": { "namespaces": [ns] } }),
        )
        .await;
    let run_backup = async || {
        let done = admin.run_backup(&def).await;
        assert_eq!(done["state"], "COMPLETED", "{done}");
    };

    let before = scrape(&admin.http, addr).await;
    assert_eq!(
        before[&format!("arca_agent_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))],
        1.0
    );
    assert_eq!(value(&before, FINISHED), 0.0, "{before:?}");
    run_backup().await;
    let first = scrape(&admin.http, addr).await;
    assert_eq!(value(&first, STARTED), 1.0, "{first:?}");
    assert_eq!(value(&first, FINISHED), 1.0, "{first:?}");
    assert_eq!(value(&first, DURATIONS), 1.0, "{first:?}");
    assert_eq!(value(&first, "arca_agent_jobs_running"), 0.0);
    let read = value(&first, READ);
    let written = value(&first, WRITTEN);
    // Every object's JSON was read, the ConfigMap's payload among it, and nothing was
    // already stored (a fresh destination).
    assert!(read > payload.len() as f64, "read {read} bytes");
    assert_eq!(value(&first, DEDUPLICATED), 0.0, "{first:?}");
    // What was written is in the destination (a lock taken during the backup and removed
    // after it counts too: at least the files, and compressed below what was read).
    let stored = size_of(&dest) as f64;
    assert!(stored > 0.0 && written >= stored, "written {written}, files {stored}");
    assert!(
        written < read,
        "written {written} of {read} read: the payload compresses"
    );
    // The job came through a poll that brought a message; the others were empty.
    assert!(value(&first, r#"arca_agent_queue_polls_total{result="message"}"#) >= 1.0);
    assert!(value(&first, r#"arca_agent_heartbeats_total{result="ok"}"#) >= 1.0);

    // The same namespace again: the same objects, already in the archive.
    run_backup().await;
    let second = scrape(&admin.http, addr).await;
    assert_eq!(value(&second, FINISHED), 2.0, "{second:?}");
    assert_eq!(value(&second, DURATIONS), 2.0);
    let read2 = value(&second, READ) - read;
    let deduplicated = value(&second, DEDUPLICATED);
    let written2 = value(&second, WRITTEN) - written;
    assert!(read2 > payload.len() as f64, "read {read2}");
    assert!(
        deduplicated > payload.len() as f64 && deduplicated <= read2,
        "deduplicated {deduplicated} of {read2} read"
    );
    // Only the new archive's index and manifest were written, not the payload again.
    assert!(
        written2 > 0.0 && written2 < written,
        "second backup wrote {written2}, first {written}"
    );
    assert_eq!(value(&second, r#"arca_agent_errors_total{kind="job"}"#), 0.0);
    namespaces.delete(&ns, &Default::default()).await.unwrap();
}
