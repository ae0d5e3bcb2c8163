//! Restore verification, the agent's part: what a verification's restore proves (every
//! object restored, every copied volume read back equal to its backup), the user's probe
//! Job, and the removal of the scratch namespaces. The restore itself is the ordinary
//! one (`runner`), into the namespaces the control plane chose
//! (`arca_core::model::verification::scratch_namespace`).

use std::time::Duration;

use arca_core::model::recovery::RecoveryPoint;
use arca_core::model::verification::{VerificationProbe, VerificationReport};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use serde_json::json;

use crate::resources::restore::{ItemResult, Outcome};

/// The probe Job's name in the first scratch namespace.
pub const PROBE_JOB: &str = "arca-verify-probe";
/// Lines of the probe's log quoted when it fails.
const PROBE_LOG_LINES: i64 = 10;

/// What the restore proved (pure): objects restored (created, or cluster-scoped and
/// already there), the failures, the volume warnings, and the point's copies that were
/// not read back equal.
pub fn findings(
    items: &[ItemResult],
    volume_lines: &[String],
    volumes_verified: u64,
    point: &RecoveryPoint,
) -> VerificationReport {
    let mut report = VerificationReport {
        volumes_verified,
        ..Default::default()
    };
    for item in items {
        let name = match &item.namespace {
            Some(ns) => format!("{} {ns}/{}", item.resource, item.name),
            None => format!("{} {}", item.resource, item.name),
        };
        match &item.outcome {
            Outcome::Created | Outcome::Updated => report.objects_verified += 1,
            // Present in the cluster, as the restore would have made it.
            Outcome::Skipped { reason } if item.namespace.is_none() && reason == "already exists" => {
                report.objects_verified += 1
            }
            // Left out by design (owned Pods, the agent's own objects...).
            Outcome::Skipped { .. } => {}
            Outcome::Failed { error } => report.reasons.push(format!("{name} was not restored: {error}")),
        }
    }
    for line in volume_lines.iter().filter(|l| l.starts_with("WARNING")) {
        report.reasons.push(line.trim_start_matches("WARNING: ").to_string());
    }
    let copies = point.details.volumes.iter().filter(|v| v.copy.is_some()).count() as u64;
    if volumes_verified < copies {
        report.reasons.push(format!(
            "{} of the point's {copies} volume copies were not read back equal to the backup",
            copies - volumes_verified
        ));
    }
    if report.objects_verified == 0 {
        report.reasons.push("nothing was restored".into());
    }
    report
}

/// Runs the probe as a Job in `namespaces[0]` and waits for it: `Err` says why it did not
/// succeed (its failure, or its time running out), with the end of its log.
pub async fn run_probe(
    client: &Client,
    namespaces: &[String],
    probe: &VerificationProbe,
    poll: Duration,
) -> Result<(), String> {
    let Some(namespace) = namespaces.first() else {
        return Err("no scratch namespace to run the probe in".into());
    };
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let mut container = json!({
        "name": "probe",
        "image": probe.image,
        "env": [
            { "name": "ARCA_VERIFY_NAMESPACE", "value": namespace },
            { "name": "ARCA_VERIFY_NAMESPACES", "value": namespaces.join(" ") },
        ],
    });
    if !probe.command.is_empty() {
        container["command"] = json!(probe.command);
    }
    let manifest = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": PROBE_JOB, "namespace": namespace, "labels": { "app.kubernetes.io/managed-by": "arca" } },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": probe.timeout_seconds,
            "template": {
                "metadata": { "labels": { "job-name": PROBE_JOB } },
                "spec": { "restartPolicy": "Never", "containers": [container] },
            },
        },
    });
    let job: Job = serde_json::from_value(manifest).map_err(|e| format!("the probe Job: {e}"))?;
    jobs.create(&PostParams::default(), &job)
        .await
        .map_err(|e| format!("creating the probe Job: {e}"))?;
    // The Job's own deadline ends it; this one covers a cluster that never schedules it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(probe.timeout_seconds) + 60);
    loop {
        let current = jobs
            .get(PROBE_JOB)
            .await
            .map_err(|e| format!("reading the probe Job: {e}"))?;
        let value = serde_json::to_value(&current).unwrap_or_default();
        match crate::volumes::mover::job_state(&value) {
            Some(Ok(())) => return Ok(()),
            Some(Err(why)) => {
                let log = probe_log(client, namespace).await;
                return Err(format!("the probe Job failed ({why}){log}"));
            }
            None if tokio::time::Instant::now() >= deadline => {
                let log = probe_log(client, namespace).await;
                return Err(format!(
                    "the probe Job did not finish within {} s{log}",
                    probe.timeout_seconds
                ));
            }
            None => tokio::time::sleep(poll).await,
        }
    }
}

/// `: <the last lines of the probe's log>`, or nothing when there is none to read.
async fn probe_log(client: &Client, namespace: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = pods
        .list(&ListParams::default().labels(&format!("job-name={PROBE_JOB}")))
        .await
    else {
        return String::new();
    };
    let Some(name) = list.items.first().and_then(|p| p.metadata.name.clone()) else {
        return String::new();
    };
    let params = LogParams {
        tail_lines: Some(PROBE_LOG_LINES),
        ..LogParams::default()
    };
    match pods.logs(&name, &params).await {
        Ok(text) if !text.trim().is_empty() => {
            let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
            format!(": {}", lines.join(" | "))
        }
        _ => String::new(),
    }
}

/// Deletes the scratch namespaces (their claims, and the volumes provisioned for them,
/// go with them). Returns what could not be deleted, with why.
pub async fn remove_scratch(client: &Client, namespaces: &[String]) -> Vec<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let mut failures = Vec::new();
    for ns in namespaces {
        match api.delete(ns, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => failures.push(format!("scratch namespace {ns} could not be deleted: {e}")),
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_core::ids::BackupDefinitionId;
    use arca_core::model::recovery::{VolumeCopyRecord, VolumeRecord};

    fn item(ns: Option<&str>, outcome: Outcome) -> ItemResult {
        ItemResult {
            resource: "configmaps".into(),
            namespace: ns.map(str::to_string),
            name: "c".into(),
            outcome,
        }
    }

    fn point(copies: usize) -> RecoveryPoint {
        let mut rp = RecoveryPoint::fixture(BackupDefinitionId::new(), std::time::SystemTime::now().into(), None);
        rp.details.volumes = (0..copies)
            .map(|i| VolumeRecord {
                namespace: "ns".into(),
                pvc: format!("data-{i}"),
                copy: Some(VolumeCopyRecord::default()),
                ..Default::default()
            })
            .collect();
        rp
    }

    #[test]
    fn a_complete_restore_is_verified() {
        let items = [
            item(Some("s"), Outcome::Created),
            item(
                None,
                Outcome::Skipped {
                    reason: "already exists".into(),
                },
            ),
            item(
                Some("s"),
                Outcome::Skipped {
                    reason: "owned by a controller".into(),
                },
            ),
        ];
        let r = findings(&items, &["PVC s/data-0: from repository snapshot".into()], 1, &point(1));
        assert_eq!((r.objects_verified, r.volumes_verified), (2, 1));
        assert!(r.reasons.is_empty(), "{:?}", r.reasons);
    }

    #[test]
    fn failures_warnings_and_unverified_copies_are_reasons() {
        let items = [
            item(Some("s"), Outcome::Created),
            item(Some("s"), Outcome::Failed { error: "denied".into() }),
        ];
        let r = findings(&items, &["WARNING: PVC s/x is not bound".into()], 0, &point(2));
        assert_eq!(r.reasons.len(), 3, "{:?}", r.reasons);
        assert!(r.reasons[0].contains("configmaps s/c was not restored: denied"));
        assert_eq!(r.reasons[1], "PVC s/x is not bound");
        assert!(r.reasons[2].starts_with("2 of the point's 2 volume copies"));
        let nothing = findings(&[], &[], 0, &point(0));
        assert_eq!(nothing.reasons, vec!["nothing was restored".to_string()]);
    }
}
