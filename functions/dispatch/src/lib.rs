//! Dispatch: EventBridge Scheduler fires one schedule per (backup definition, policy
//! row) with [`ScheduleFired`]; this function decides whether that run happens and
//! hands the job to the cluster's queue (`ControlPlane::dispatch_scheduled`: the pure
//! decision is `arca_core::model::dispatch::decide`). It also drains the shared dead-letter
//! queue, so jobs whose lease lapsed too often end FAILED.

use arca_core::control_plane::ControlPlane;
use arca_core::{Error, Result};
use serde_json::json;

/// The input our schedules carry (the Scheduler target's `Input`): the same JSON as
/// `arca_core::model::schedule::ScheduleInput`.
pub type ScheduleFired = arca_core::model::schedule::ScheduleInput;

/// Dead letters handled per invocation: bounded so one run stays short.
const DEAD_LETTERS_PER_RUN: usize = 25;

pub fn parse(event: serde_json::Value) -> Result<ScheduleFired> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Strict {
        org_id: arca_core::ids::OrgId,
        definition_id: String,
        rule: u32,
    }
    let s: Strict = serde_json::from_value(event).map_err(|e| Error::invalid("event", e.to_string()))?;
    Ok(ScheduleFired {
        org_id: s.org_id,
        definition_id: s.definition_id,
        rule: s.rule,
    })
}

/// The whole function, over a control plane: drain dead letters, then run or skip the
/// fired definition. A schedule of a definition deleted a moment ago is not an error
/// (the scheduler would retry it for nothing).
pub async fn on_schedule(cp: &ControlPlane, event: serde_json::Value) -> Result<serde_json::Value> {
    let fired = parse(event)?;
    tracing::info!(org_id = %fired.org_id, definition_id = %fired.definition_id, rule = fired.rule, "schedule fired");
    match cp.drain_dead_letters(DEAD_LETTERS_PER_RUN).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "dead-lettered jobs marked FAILED"),
        // The dispatch itself matters more; the next run drains again.
        Err(e) => tracing::warn!(error = %e, "draining the dead-letter queue failed"),
    }
    match cp.dispatch_scheduled(&fired).await {
        Ok(job) => {
            tracing::info!(job_id = %job.id, state = ?job.state, reason = ?job.reason, "dispatched");
            Ok(json!({ "jobId": job.id, "state": job.state, "reason": job.reason }))
        }
        Err(Error::NotFound { what }) => {
            tracing::warn!(%what, "the fired schedule's definition is gone");
            Ok(json!({ "skipped": format!("{what} not found") }))
        }
        Err(e) => Err(e),
    }
}

/// The Lambda handler: the control plane is built once per sandbox by `main`. Its
/// CloudWatch metrics go out as one EMF line per invocation.
pub async fn handle(cp: &ControlPlane, event: serde_json::Value) -> Result<serde_json::Value, lambda_runtime::Error> {
    let answer = on_schedule(cp, event).await;
    metrics(&answer).emit();
    Ok(answer?)
}

/// What one dispatch counts (docs/metrics.md): a job dispatched, a run skipped (a SKIPPED
/// job, or the definition gone), or an error.
pub fn metrics(answer: &Result<serde_json::Value>) -> arca_runtime::emf::Emf {
    let (dispatched, skipped, errors) = match answer {
        Err(_) => (0, 0, 1),
        Ok(v) if v.get("skipped").is_some() || v["state"] == "SKIPPED" => (0, 1, 0),
        Ok(_) => (1, 0, 0),
    };
    arca_runtime::emf::Emf::new("dispatch")
        .count("JobsDispatched", dispatched)
        .count("JobsSkipped", skipped)
        .count("Errors", errors)
}

#[cfg(test)]
mod tests {
    use arca_core::ids::OrgId;
    use serde_json::json;

    use super::*;

    #[test]
    fn each_outcome_counts_once() {
        let counts = |answer: Result<serde_json::Value>| {
            let doc = metrics(&answer).document(0);
            (
                doc["JobsDispatched"].clone(),
                doc["JobsSkipped"].clone(),
                doc["Errors"].clone(),
            )
        };
        assert_eq!(
            counts(Ok(json!({"state": "PENDING"}))),
            (json!(1.0), json!(0.0), json!(0.0))
        );
        assert_eq!(
            counts(Ok(json!({"state": "SKIPPED"}))),
            (json!(0.0), json!(1.0), json!(0.0))
        );
        assert_eq!(
            counts(Ok(json!({"skipped": "gone"}))),
            (json!(0.0), json!(1.0), json!(0.0))
        );
        assert_eq!(counts(Err(Error::permanent("x"))), (json!(0.0), json!(0.0), json!(1.0)));
    }

    #[test]
    fn parses_the_schedule_input() {
        let org = OrgId::new();
        let fired = parse(json!({"orgId": org.to_string(), "definitionId": "bd-1", "rule": 2})).unwrap();
        assert_eq!(
            fired,
            ScheduleFired {
                org_id: org,
                definition_id: "bd-1".into(),
                rule: 2
            }
        );
    }

    #[test]
    fn rejects_malformed_input_naming_the_problem() {
        let err = parse(json!({"orgId": "cl_01J0000000000000000000000", "definitionId": "x", "rule": 0})).unwrap_err();
        assert!(err.to_string().contains("org_<ULID>"), "{err}");
        let err = parse(json!({"orgId": OrgId::new().to_string(), "rule": 0})).unwrap_err();
        assert!(err.to_string().contains("definitionId"), "{err}");
    }
}
