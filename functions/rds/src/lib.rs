//! RDS: snapshots, cross-region copies, restores and point-in-time restores of RDS
//! instances and Aurora clusters in linked accounts; and the re-creation of EKS clusters,
//! which waits on AWS the same way.
//!
//! The function is a thin shell over `ControlPlane::rds_step` and
//! `ControlPlane::eks_recreation_step`: each message of its SQS work queue names one RDS
//! job (`{orgId, jobId}`) or one EKS re-creation (`{orgId, eksRecreationId}`); the step
//! starts what has not started, checks what AWS is still doing, records the outcome and,
//! while anything is in progress, sends the message again with a delay. Nothing waits
//! inside the Lambda. Failed records are reported one by one (`batchItemFailures`), so
//! one bad message does not redeliver the others. The rules and the naming of snapshots
//! live in `arca_core::model::rds` / `control_plane/rds` / `control_plane/eks.rs`.

use arca_core::control_plane::ControlPlane;
use arca_core::ports::rds::AwsWorkMessage;
use arca_core::{Error, Result};
use serde_json::{Value, json};

pub use arca_core::model::rds::snapshot_identifier;

/// The work messages of an event: an SQS batch (`Records[].body`), or one message sent
/// directly (e.g. by an operator). Each with the id to report it by, and the message or
/// why it could not be read: in a batch, an unreadable record is that record's failure
/// (reported alone, so SQS redrives it to the dead-letter queue without the others).
pub fn parse(event: Value) -> Result<Vec<(Option<String>, Result<AwsWorkMessage>)>> {
    match event.get("Records").and_then(Value::as_array) {
        Some(records) => Ok(records
            .iter()
            .map(|r| {
                let id = r.get("messageId").and_then(Value::as_str).map(str::to_string);
                let message = r
                    .get("body")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::invalid("Records[].body", "missing"))
                    .and_then(|body| serde_json::from_str(body).map_err(|e| Error::invalid("body", e.to_string())))
                    .and_then(AwsWorkMessage::from_json);
                (id, message)
            })
            .collect()),
        None => Ok(vec![(None, Ok(AwsWorkMessage::from_json(event)?))]),
    }
}

/// One step of what the message names, as the `steps` entry of the answer.
async fn step(cp: &ControlPlane, m: &AwsWorkMessage) -> Result<Value> {
    match m {
        AwsWorkMessage::Rds(m) => {
            let job = cp.rds_step(&m.org_id, &m.job_id).await?;
            tracing::info!(job_id = %job.id, state = ?job.state, "rds step");
            Ok(json!({"jobId": job.id, "state": job.state}))
        }
        AwsWorkMessage::EksRecreation(m) => {
            let r = cp.eks_recreation_step(&m.org_id, &m.eks_recreation_id).await?;
            tracing::info!(eks_recreation_id = %r.id, state = ?r.state, "eks re-creation step");
            Ok(json!({"eksRecreationId": r.id, "state": r.state}))
        }
    }
}

/// Steps what every message of the event names. A job or re-creation that is gone is
/// done with (its message is dropped); a failure is reported for its record so SQS
/// redelivers that one.
pub async fn run(cp: &ControlPlane, event: Value) -> Result<Value> {
    let mut failures = Vec::new();
    let mut steps = Vec::new();
    for (id, m) in parse(event)? {
        let (outcome, message) = match m {
            Ok(m) => (step(cp, &m).await, format!("{m:?}")),
            Err(e) => (Err(e), "unreadable".to_owned()),
        };
        match outcome {
            Ok(done) => steps.push(done),
            Err(Error::NotFound { what }) => tracing::warn!(%what, "the job or re-creation is gone"),
            Err(e) => {
                tracing::warn!(%message, error = %e, "step failed; redelivered");
                match id {
                    Some(id) => failures.push(json!({"itemIdentifier": id})),
                    None => return Err(e),
                }
            }
        }
    }
    Ok(json!({"batchItemFailures": failures, "steps": steps}))
}

/// The Lambda handler: the control plane is built once per sandbox by `main`.
pub async fn handle(cp: &ControlPlane, event: Value) -> Result<Value, lambda_runtime::Error> {
    let answer = run(cp, event).await;
    metrics(&answer).emit();
    Ok(answer?)
}

/// What one batch counts (docs/metrics.md): the steps run and the RDS jobs among them that
/// ended COMPLETED or FAILED, and the records SQS is to redeliver.
pub fn metrics(answer: &Result<Value>) -> arca_runtime::emf::Emf {
    let emf = arca_runtime::emf::Emf::new("rds");
    let Ok(v) = answer else {
        return emf.count("Errors", 1);
    };
    let steps = v["steps"].as_array().map(Vec::as_slice).unwrap_or_default();
    let jobs_in = |state: &str| {
        steps
            .iter()
            .filter(|s| s.get("jobId").is_some() && s["state"] == state)
            .count() as u64
    };
    emf.count("Steps", steps.len() as u64)
        .count("RdsJobsCompleted", jobs_in("COMPLETED"))
        .count("RdsJobsFailed", jobs_in("FAILED"))
        .count(
            "Redeliveries",
            v["batchItemFailures"].as_array().map_or(0, |a| a.len() as u64),
        )
        .count("Errors", 0)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_batchs_answer_gives_its_counts() {
        let answer = Ok(json!({
            "steps": [
                {"jobId": "job_1", "state": "COMPLETED"},
                {"jobId": "job_2", "state": "RUNNING"},
                {"jobId": "job_3", "state": "FAILED"},
                {"eksRecreationId": "eks_1", "state": "COMPLETED"},
            ],
            "batchItemFailures": [{"itemIdentifier": "m-9"}],
        }));
        let doc = super::metrics(&answer).document(0);
        assert_eq!(doc["Steps"], 4.0);
        assert_eq!(doc["RdsJobsCompleted"], 1.0);
        assert_eq!(doc["RdsJobsFailed"], 1.0);
        assert_eq!(doc["Redeliveries"], 1.0);
        assert_eq!(doc["Errors"], 0.0);
    }

    use arca_core::ids::{EksRecreationId, JobId, OrgId};
    use arca_core::ports::rds::{EksRecreationWorkMessage, RdsWorkMessage};

    use super::*;

    #[test]
    fn identifiers_follow_the_rds_rules() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            snapshot_identifier("orders-db", at).unwrap(),
            "arca-orders-db-1700000000"
        );
    }

    #[test]
    fn sqs_batches_and_direct_messages_parse() {
        let m: AwsWorkMessage = RdsWorkMessage {
            org_id: OrgId::new(),
            job_id: JobId::new(),
        }
        .into();
        let e: AwsWorkMessage = EksRecreationWorkMessage {
            org_id: OrgId::new(),
            eks_recreation_id: EksRecreationId::new(),
        }
        .into();
        let body = |m: &AwsWorkMessage| serde_json::to_string(m).unwrap();
        let batch = json!({"Records": [
            {"messageId": "m-1", "body": body(&m)},
            {"messageId": "m-2", "body": body(&e)},
        ]});
        let ok = |parsed: Vec<(Option<String>, Result<AwsWorkMessage>)>| -> Vec<(Option<String>, AwsWorkMessage)> {
            parsed.into_iter().map(|(id, m)| (id, m.unwrap())).collect()
        };
        assert_eq!(
            ok(parse(batch).unwrap()),
            vec![
                (Some("m-1".to_string()), m.clone()),
                (Some("m-2".to_string()), e.clone())
            ]
        );
        assert_eq!(
            ok(parse(serde_json::to_value(&m).unwrap()).unwrap()),
            vec![(None, m.clone())]
        );
        assert_eq!(ok(parse(serde_json::to_value(&e).unwrap()).unwrap()), vec![(None, e)]);
        // In a batch an unreadable record is its own failure; the others still parse.
        let batch = json!({"Records": [
            {"messageId": "bad", "body": "{}"},
            {"messageId": "not-json", "body": "RDS job 42"},
            {"messageId": "good", "body": body(&m)},
        ]});
        let mut parsed = parse(batch).unwrap();
        let good = parsed.pop().unwrap();
        assert_eq!((good.0.as_deref(), good.1.unwrap()), (Some("good"), m));
        let err = parsed[0].1.as_ref().unwrap_err();
        assert!(
            err.to_string().contains("eksRecreationId"),
            "says what is accepted: {err}"
        );
        assert!(parsed[1].1.is_err(), "{parsed:?}");
        // A message sent directly is the whole invocation.
        assert!(parse(json!({})).is_err());
    }
}
