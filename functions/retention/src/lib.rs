//! Retention: runs hourly. Finds recovery points whose expiry has passed (GSI2), keeps
//! locked ones and the newest `keepLast` of each (definition, schedule row), marks the
//! rest DELETING and issues a DELETE_BACKUP job per point to its cluster's agent
//! (`ControlPlane::retention_sweep`; the plan is the pure `arca_core::model::retention::plan`).
//! A point disappears only when the agent completes its deletion. It also drains the
//! shared dead-letter queue (jobs whose lease lapsed too often end FAILED), and deletes
//! expired RDS snapshots and copies through the RDS adapter
//! (`ControlPlane::rds_retention_sweep`).

use arca_core::Result;
use arca_core::control_plane::ControlPlane;
use serde_json::json;

/// Dead letters handled per run.
const DEAD_LETTERS_PER_RUN: usize = 100;

/// The whole function over a control plane.
pub async fn sweep(cp: &ControlPlane) -> Result<serde_json::Value> {
    let drained = match cp.drain_dead_letters(DEAD_LETTERS_PER_RUN).await {
        Ok(n) => n,
        Err(e) => {
            // Retention matters more; the next run (or dispatch) drains again.
            tracing::warn!(error = %e, "draining the dead-letter queue failed");
            0
        }
    };
    let report = cp.retention_sweep().await?;
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
    tracing::info!(
        examined = report.examined,
        deletion_jobs = report.deletion_jobs.len(),
        kept = report.kept,
        awaiting_direct_deletion = report.awaiting_direct_deletion.len(),
        dead_letters = drained,
        "retention sweep"
    );
    Ok(json!({
        "examined": report.examined,
        "deletionJobs": report.deletion_jobs,
        "kept": report.kept,
        "awaitingDirectDeletion": report.awaiting_direct_deletion,
        "deadLetters": drained,
        "rds": rds,
    }))
}

/// The Lambda handler (an EventBridge hourly rule; the event carries nothing we need).
pub async fn handle(cp: &ControlPlane, _event: serde_json::Value) -> Result<serde_json::Value, lambda_runtime::Error> {
    Ok(sweep(cp).await?)
}
