//! Retention: runs hourly. Finds recovery points whose expiry has passed (GSI2), keeps
//! locked ones and the newest `keepLast` of each (definition, schedule row), marks the
//! rest DELETING and issues a DELETE_BACKUP job per point to its cluster's agent
//! (`ControlPlane::retention_sweep`; the plan is the pure `arca_core::model::retention::plan`).
//! A point disappears only when the agent completes its deletion. It also drains the
//! shared dead-letter queue (jobs whose lease lapsed too often end FAILED), and deletes
//! expired RDS snapshots and copies through the RDS adapter
//! (`ControlPlane::rds_retention_sweep`). Then it issues the repository maintenance jobs
//! that are due (`ControlPlane::maintenance_sweep`): deleted points' data is reclaimed by
//! gc in two runs a grace period apart. Last, it repairs schedules that drifted from
//! the store (`ControlPlane::reconcile_schedules`).

use arca_core::Result;
use arca_core::control_plane::ControlPlane;
use serde_json::json;

/// Dead letters handled per run.
const DEAD_LETTERS_PER_RUN: usize = 100;

/// The whole function over a control plane.
pub async fn sweep(cp: &ControlPlane) -> Result<serde_json::Value> {
    // After an upgrade that added index keys, the first run gives older records theirs
    // (a table scan, once); every later run reads one marker item.
    let reindexed = match cp.store().reindex_all().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "re-indexing older records failed; the next run tries again");
            None
        }
    };
    let drained = match cp.drain_dead_letters(DEAD_LETTERS_PER_RUN).await {
        Ok(n) => n,
        Err(e) => {
            // Retention matters more; the next run (or dispatch) drains again.
            tracing::warn!(error = %e, "draining the dead-letter queue failed");
            0
        }
    };
    let report = cp.retention_sweep().await?;
    // After the deletions, so that a repository they made due settles first
    // (`maintenance::SETTLE`) and is collected once for the whole batch.
    let maintenance = cp.maintenance_sweep().await?;
    // Schedules that drifted from the store (a failed sync after a commit, a console
    // edit) are repaired; a failure is reported and tried again next hour.
    let schedules = match cp.reconcile_schedules().await {
        Ok(r) => json!({
            "checked": r.checked,
            "repaired": r.repaired,
            "rdsRepaired": r.rds_repaired,
            "orphansRemoved": r.orphans_removed,
            "reindexed": r.reindexed,
            "failed": r.failed.iter().map(|(id, why)| json!({ "id": id, "error": why })).collect::<Vec<_>>(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "the schedule reconciliation failed; the next run tries again");
            json!({ "error": e.to_string() })
        }
    };
    // RDS snapshots and copies are deleted in AWS directly (no agent involved).
    let rds = match cp.rds_retention_sweep().await {
        Ok(r) => json!({"examined": r.examined, "deleted": r.deleted, "kept": r.kept.len()}),
        // This deployment does not protect RDS.
        Err(arca_core::Error::Forbidden { .. }) => json!(null),
        Err(e) => {
            tracing::warn!(error = %e, "the RDS retention sweep failed; the next run tries again");
            json!({"error": e.to_string()})
        }
    };
    // Weekly restore verifications that are due; one that cannot start is tried again
    // next hour.
    let verifications = match cp.verification_sweep().await {
        Ok(r) => json!({
            "examined": r.examined,
            "started": r.started,
            "failed": r.failed.iter().map(|(id, why)| json!({ "recoveryPointId": id, "error": why })).collect::<Vec<_>>(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "the verification sweep failed; the next run tries again");
            json!({ "error": e.to_string() })
        }
    };
    tracing::info!(
        examined = report.examined,
        deletion_jobs = report.deletion_jobs.len(),
        kept = report.kept,
        awaiting_direct_deletion = report.awaiting_direct_deletion.len(),
        maintenance_jobs = maintenance.jobs.len(),
        maintenance_awaiting_agent = maintenance.awaiting_agent.len(),
        purged = report.purged.len() + maintenance.purged.len(),
        purge_failed = report.purge_failed.len() + maintenance.purge_failed.len(),
        dead_letters = drained,
        "retention sweep"
    );
    Ok(json!({
        "reindexed": reindexed,
        "examined": report.examined,
        "deletionJobs": report.deletion_jobs,
        "kept": report.kept,
        "awaitingDirectDeletion": report.awaiting_direct_deletion,
        "maintenanceJobs": maintenance.jobs,
        "maintenanceAwaitingAgent": maintenance.awaiting_agent,
        // Deleted clusters' prefixes in Arca-managed storage purged with no agent left.
        "purged": report.purged.iter().map(|p| &p.repository).chain(&maintenance.purged).collect::<Vec<_>>(),
        "purgeFailed": report.purge_failed.iter().chain(&maintenance.purge_failed)
            .map(|(key, why)| json!({ "repository": key, "error": why })).collect::<Vec<_>>(),
        "schedules": schedules,
        "deadLetters": drained,
        "rds": rds,
        "verifications": verifications,
    }))
}

/// The alert sweep (`{"run": "alerts"}`, every 5 minutes): due webhook retries, then
/// agents silent for longer than a channel allows and scheduled runs that never
/// happened (`ControlPlane::alert_sweep`).
pub async fn alert_sweep(cp: &ControlPlane) -> Result<serde_json::Value> {
    let report = cp.alert_sweep().await?;
    tracing::info!(
        attempted = report.attempted,
        delivered = report.delivered,
        disconnected = report.disconnected,
        missed = report.missed,
        "alert sweep"
    );
    Ok(json!(report))
}

/// The Lambda handler: the hourly retention schedule (its event carries nothing we
/// need), or the alert sweep's.
pub async fn handle(cp: &ControlPlane, event: serde_json::Value) -> Result<serde_json::Value, lambda_runtime::Error> {
    // The 5-minute `alerts` schedule (template.yaml) runs only the alert sweep.
    if event["run"] == "alerts" {
        return Ok(alert_sweep(cp).await?);
    }
    let answer = sweep(cp).await;
    metrics(&answer).emit();
    Ok(answer?)
}

/// What one sweep counts (docs/metrics.md), from its answer.
pub fn metrics(answer: &Result<serde_json::Value>) -> arca_runtime::emf::Emf {
    let emf = arca_runtime::emf::Emf::new("retention");
    let Ok(v) = answer else {
        return emf.count("Errors", 1);
    };
    let len = |key: &str| v[key].as_array().map_or(0, |a| a.len() as u64);
    emf.count("RecoveryPointsExpired", len("deletionJobs"))
        .count("MaintenanceJobs", len("maintenanceJobs"))
        .count("DeadLetters", v["deadLetters"].as_u64().unwrap_or(0))
        .count(
            "RdsSnapshotsDeleted",
            v["rds"]["deleted"].as_array().map_or(0, |a| a.len() as u64),
        )
        .count("Errors", 0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_sweeps_answer_gives_its_counts() {
        let answer = Ok(json!({
            "deletionJobs": ["job_1", "job_2"],
            "maintenanceJobs": ["job_3"],
            "deadLetters": 4,
            "rds": { "examined": 3, "deleted": ["rp_1"], "kept": 2 },
        }));
        let doc = metrics(&answer).document(0);
        assert_eq!(doc["Function"], "retention");
        assert_eq!(doc["RecoveryPointsExpired"], 2.0);
        assert_eq!(doc["MaintenanceJobs"], 1.0);
        assert_eq!(doc["DeadLetters"], 4.0);
        assert_eq!(doc["RdsSnapshotsDeleted"], 1.0);
        assert_eq!(doc["Errors"], 0.0);
        // A deployment without RDS answers null there.
        let doc = metrics(&Ok(json!({ "rds": null }))).document(0);
        assert_eq!(doc["RdsSnapshotsDeleted"], 0.0);
        let doc = metrics(&Err(arca_core::Error::permanent("down"))).document(0);
        assert_eq!(doc["Errors"], 1.0);
    }
}
