//! Schedules: one per (backup definition, policy schedule row) that
//! fires the dispatch function with [`ScheduleInput`].
//!
//! The port is declarative. The caller computes the schedules a definition should have
//! ([`schedules_for`]) after every change to the definition or its policy and hands them
//! to [`Scheduler::sync`], which creates, updates and deletes until exactly that set
//! exists; deleting a definition is a sync to nothing. That keeps schedules in step
//! without the caller remembering what it created before.
//!
//! Adapters: `EventBridgeScheduler` (arca-aws; EventBridge Scheduler evaluates the cron
//! in the policy's timezone) and `EmbeddedScheduler` (arca-embedded; evaluates the same
//! rows in process with [`next_fire`]). Both pass `testing::contracts::scheduler`; the trait is `ports::scheduler::Scheduler`.
//!
//! Pure helpers here: the schedule names, the 5-field-cron-to-EventBridge conversion
//! ([`eventbridge_expression`]) and the next fire time in a timezone with EventBridge's
//! daylight-saving rules ([`next_fire`]).

use crate::ids::OrgId;
use crate::model::cron;
use crate::model::policy::PolicySpec;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// EventBridge Scheduler's limit on schedule names (`[0-9A-Za-z_.-]{1,64}`).
pub const MAX_NAME_LEN: usize = 64;

/// What a schedule hands the dispatch function when it fires (the Scheduler target's
/// `Input`). The JSON is the contract of `dispatch::ScheduleFired`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleInput {
    pub org_id: OrgId,
    pub definition_id: String,
    /// Index of the policy's schedule row (each row has its own retention).
    pub rule: u32,
}

/// One schedule as it should exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// [`schedule_name`] of the input's definition and rule.
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week), normalised by
    /// [`cron::normalize_cron`].
    pub cron: String,
    /// IANA timezone the cron is read in.
    pub timezone: String,
    pub input: ScheduleInput,
    /// False while the definition is paused or the policy suspended: the schedule
    /// exists (so resuming needs no re-creation) but does not fire.
    pub enabled: bool,
}

/// The deterministic name of a definition's schedule for policy row `rule`:
/// `<definition id>-<rule>`. The rule is the digits after the last `-`, so names of
/// different definitions never collide even when one id is a prefix of another.
pub fn schedule_name(definition_id: &str, rule: u32) -> Result<String> {
    let name = format!("{definition_id}-{rule}");
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if definition_id.is_empty() || !definition_id.chars().all(allowed) {
        return Err(Error::invalid(
            "definitionId",
            format!("{definition_id:?} cannot be part of a schedule name"),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(
            "definitionId",
            format!("{definition_id:?} makes a schedule name over {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(name)
}

/// The rule of a schedule named `name` if it belongs to `definition_id`.
/// The definition a schedule name belongs to (the part before its `-<rule>`), if the
/// name is one of ours.
pub fn definition_of(name: &str) -> Option<&str> {
    let (definition, _) = name.rsplit_once('-')?;
    rule_of(definition, name).map(|_| definition)
}

pub fn rule_of(definition_id: &str, name: &str) -> Option<u32> {
    let digits = name.strip_prefix(definition_id)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The schedules a definition using `policy` should have: one per schedule row, all
/// disabled while the definition is paused or the policy suspended.
pub fn schedules_for(org_id: OrgId, definition_id: &str, policy: &PolicySpec, paused: bool) -> Result<Vec<Schedule>> {
    cron::parse_timezone("timezone", &policy.timezone)?;
    policy
        .schedules
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let rule = u32::try_from(i).map_err(|_| Error::invalid("schedules", "too many schedule rows"))?;
            let field = format!("schedules[{i}].cron");
            let cron = cron::normalize_cron(&field, &row.cron)?;
            // Refuse here what EventBridge cannot express, naming the row.
            cron::eventbridge_expression_of(&field, &cron)?;
            Ok(Schedule {
                name: schedule_name(definition_id, rule)?,
                cron,
                timezone: policy.timezone.clone(),
                input: ScheduleInput {
                    org_id,
                    definition_id: definition_id.to_string(),
                    rule,
                },
                enabled: !paused && !policy.suspended,
            })
        })
        .collect()
}

/// Checks that `desired` is a valid set of schedules for `definition_id`: each belongs
/// to it, is named after its rule, has a valid cron (expressible on EventBridge) and
/// timezone, and no name appears twice. Adapters call it before changing anything, so
/// a bad set changes nothing.
pub fn check_desired(definition_id: &str, desired: &[Schedule]) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for (i, s) in desired.iter().enumerate() {
        if s.input.definition_id != definition_id {
            return Err(Error::invalid(
                format!("schedules[{i}].input.definitionId"),
                format!(
                    "{:?} is not the definition being synced ({definition_id:?})",
                    s.input.definition_id
                ),
            ));
        }
        if s.name != schedule_name(definition_id, s.input.rule)? {
            return Err(Error::invalid(
                format!("schedules[{i}].name"),
                format!("{:?} is not named after its rule", s.name),
            ));
        }
        if !names.insert(s.name.as_str()) {
            return Err(Error::invalid(
                format!("schedules[{i}].name"),
                format!("{:?} appears twice", s.name),
            ));
        }
        let field = format!("schedules[{i}].cron");
        if cron::normalize_cron(&field, &s.cron)? != s.cron {
            return Err(Error::invalid(field, format!("{:?} is not in normalised form", s.cron)));
        }
        cron::eventbridge_expression_of(&field, &s.cron)?;
        cron::parse_timezone(&format!("schedules[{i}].timezone"), &s.timezone)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::ScheduleSpec as Row;

    #[test]
    fn names_are_deterministic_and_owned_by_exactly_one_definition() {
        assert_eq!(
            schedule_name("bkp_01ARZ3NDEKTSV4RRFFQ69G5FAV", 3).unwrap(),
            "bkp_01ARZ3NDEKTSV4RRFFQ69G5FAV-3"
        );
        assert_eq!(rule_of("a", "a-12"), Some(12));
        assert_eq!(rule_of("a", "a-1-0"), None, "a-1-0 belongs to definition a-1");
        assert_eq!(rule_of("a-1", "a-1-0"), Some(0));
        assert_eq!(rule_of("a", "ab-1"), None);
        assert_eq!(rule_of("a", "a-"), None);
        assert!(schedule_name("has space", 0).is_err());
        assert!(schedule_name(&"x".repeat(63), 0).is_err(), "over 64 characters");
    }

    #[test]
    fn a_policy_gives_one_schedule_per_row_disabled_when_paused() {
        let org = OrgId::new();
        let policy = PolicySpec {
            name: "p".into(),
            timezone: "Europe/Berlin".into(),
            schedules: vec![
                Row {
                    cron: "0 3 * * *".into(),
                    retain_days: 7,
                    keep_last: None,
                },
                Row {
                    cron: " 0  4 * * sun".into(),
                    retain_days: 30,
                    keep_last: None,
                },
            ],
            suspended: false,
        };
        let s = schedules_for(org, "bkp_1", &policy, false).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].name, "bkp_1-1");
        assert_eq!(s[1].cron, "0 4 * * SUN", "stored normalised");
        assert_eq!(s[1].timezone, "Europe/Berlin");
        assert_eq!(
            s[1].input,
            ScheduleInput {
                org_id: org,
                definition_id: "bkp_1".into(),
                rule: 1
            }
        );
        assert!(s.iter().all(|s| s.enabled));
        assert!(
            schedules_for(org, "bkp_1", &policy, true)
                .unwrap()
                .iter()
                .all(|s| !s.enabled)
        );
        let mut suspended = policy.clone();
        suspended.suspended = true;
        assert!(
            schedules_for(org, "bkp_1", &suspended, false)
                .unwrap()
                .iter()
                .all(|s| !s.enabled)
        );
        check_desired("bkp_1", &s).unwrap();
        let mut bad = policy;
        bad.schedules[1].cron = "0 0 1 * MON".into();
        let err = schedules_for(org, "bkp_1", &bad, false).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "schedules[1].cron"),
            "{err:?}"
        );
    }

    #[test]
    fn a_desired_set_must_belong_to_the_definition_and_be_named_after_its_rules() {
        let org = OrgId::new();
        let s = schedules_for(org, "bkp_1", &PolicySpec::default_hourly(), false).unwrap();
        assert!(check_desired("bkp_2", &s).is_err(), "another definition's schedules");
        let mut renamed = s.clone();
        renamed[0].name = "bkp_1-7".into();
        assert!(check_desired("bkp_1", &renamed).is_err());
        let twice = [s[0].clone(), s[0].clone()];
        assert!(check_desired("bkp_1", &twice).is_err());
        let mut raw = s.clone();
        raw[0].cron = "0  * * * *".into();
        assert!(check_desired("bkp_1", &raw).is_err(), "not normalised");
        let mut zone = s;
        zone[0].timezone = "Mars/Base".into();
        assert!(check_desired("bkp_1", &zone).is_err());
    }

    #[test]
    fn the_input_is_the_dispatch_functions_json() {
        let org = OrgId::new();
        let json = serde_json::to_value(ScheduleInput {
            org_id: org,
            definition_id: "bkp_1".into(),
            rule: 2,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"orgId": org.to_string(), "definitionId": "bkp_1", "rule": 2})
        );
    }
}
