//! Dispatch: EventBridge Scheduler fires one schedule per (backup definition, policy
//! row); this function decides whether that run happens and hands the job to the
//! cluster's queue. The decision logic arrives with the scheduling issue; what is
//! settled now is the event contract.

use arca_core::ids::OrgId;
use arca_core::{Error, Result};
use serde::Deserialize;

/// The input our schedules carry (set as the Scheduler target's `Input`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleFired {
    pub org_id: OrgId,
    pub definition_id: String,
    /// Index of the policy's schedule row that fired (each row has its own retention).
    pub rule: u32,
}

pub fn parse(event: serde_json::Value) -> Result<ScheduleFired> {
    serde_json::from_value(event).map_err(|e| Error::invalid("event", e.to_string()))
}

pub async fn handle(event: serde_json::Value) -> Result<serde_json::Value, lambda_runtime::Error> {
    let fired = parse(event)?;
    tracing::info!(org_id = %fired.org_id, definition_id = %fired.definition_id, rule = fired.rule, "schedule fired");
    Err("dispatch is not wired to the store and queues yet (scheduling issue)".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_the_schedule_input() {
        let org = OrgId::new();
        let fired = parse(json!({"orgId": org.to_string(), "definitionId": "bd-1", "rule": 2})).unwrap();
        assert_eq!(fired, ScheduleFired { org_id: org, definition_id: "bd-1".into(), rule: 2 });
    }

    #[test]
    fn rejects_malformed_input_naming_the_problem() {
        let err = parse(json!({"orgId": "cl_01J0000000000000000000000", "definitionId": "x", "rule": 0})).unwrap_err();
        assert!(err.to_string().contains("org_<ULID>"), "{err}");
        let err = parse(json!({"orgId": OrgId::new().to_string(), "rule": 0})).unwrap_err();
        assert!(err.to_string().contains("definitionId"), "{err}");
    }
}
