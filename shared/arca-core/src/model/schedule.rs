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
use crate::model::policy::{self, PolicySpec};
use crate::{Error, Result};
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
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
    /// [`policy::normalize_cron`].
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
    policy::parse_timezone("timezone", &policy.timezone)?;
    policy
        .schedules
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let rule = u32::try_from(i).map_err(|_| Error::invalid("schedules", "too many schedule rows"))?;
            let field = format!("schedules[{i}].cron");
            let cron = policy::normalize_cron(&field, &row.cron)?;
            // Refuse here what EventBridge cannot express, naming the row.
            eventbridge_expression_of(&field, &cron)?;
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
        if policy::normalize_cron(&field, &s.cron)? != s.cron {
            return Err(Error::invalid(field, format!("{:?} is not in normalised form", s.cron)));
        }
        eventbridge_expression_of(&field, &s.cron)?;
        policy::parse_timezone(&format!("schedules[{i}].timezone"), &s.timezone)?;
    }
    Ok(())
}

const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Converts a five-field cron (`minute hour day-of-month month day-of-week`, as policies
/// hold it) to an EventBridge Scheduler expression `cron(min hour dom month dow year)`.
///
/// EventBridge differs from Unix cron in ways that change meaning, not just syntax:
/// - exactly one of day-of-month and day-of-week must be `?`. Unix cron fires when
///   *either* matches if both are restricted, which EventBridge cannot express: refused.
/// - day-of-week numbers run 1-7 from Sunday (Unix: 0-7, 0 and 7 Sunday), so the field
///   is rewritten as day names (`MON,WED`), which mean the same on both sides.
/// - `*/n` steps become `0/n` (minutes, hours) or `1/n` (days, months).
pub fn eventbridge_expression(cron: &str) -> Result<String> {
    eventbridge_expression_of("cron", cron)
}

/// Like [`eventbridge_expression`], with errors naming `field` (e.g. `schedules[1].cron`):
/// policy validation calls it so a cron the scheduler cannot express is refused when the
/// policy is saved, not when a definition is later scheduled.
pub(crate) fn eventbridge_expression_of(field: &str, cron: &str) -> Result<String> {
    let normalised = policy::normalize_cron(field, cron)?;
    let parts: Vec<&str> = normalised.split(' ').collect();
    let [minute, hour, dom, month, dow] = parts.as_slice() else {
        return Err(Error::invalid(field, format!("{cron:?}: expected 5 fields")));
    };
    let star = |f: &str| if f == "?" { "*".to_string() } else { f.to_string() };
    let (dom, dow) = (star(dom), star(dow));
    if dow.contains('+') {
        return Err(Error::invalid(
            field,
            format!("{cron:?}: the '+' (day-of-month AND day-of-week) modifier is not supported"),
        ));
    }
    let days = if dow == "*" {
        None
    } else {
        weekday_field(field, cron, &dow)?
    };
    let (dom, dow) = match (dom.as_str(), days) {
        (_, None) => (steps(&dom, "1"), "?".to_string()),
        ("*", Some(days)) => ("?".to_string(), days),
        (_, Some(_)) => {
            return Err(Error::invalid(
                field,
                format!(
                    "{cron:?} restricts both day-of-month and day-of-week, which fires when either matches; \
                     EventBridge cannot express that: use two schedule rows"
                ),
            ));
        }
    };
    Ok(format!(
        "cron({} {} {dom} {} {dow} *)",
        steps(minute, "0"),
        steps(hour, "0"),
        steps(month, "1")
    ))
}

/// Rewrites `*/n` items of a list as `<first>/n`.
fn steps(field: &str, first: &str) -> String {
    field
        .split(',')
        .map(|item| match item.strip_prefix("*/") {
            Some(step) => format!("{first}/{step}"),
            None => item.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The day-of-week field in EventBridge terms, or `None` when it matches every day.
fn weekday_field(field: &str, cron: &str, dow: &str) -> Result<Option<String>> {
    let unsupported = |why: &str| Error::invalid(field, format!("{cron:?}: {why}"));
    if dow.contains('L') {
        return Err(unsupported("'L' in day-of-week is not supported"));
    }
    if let Some((day, nth)) = dow.split_once('#') {
        // "MON#2": the second Monday. EventBridge numbers days 1-7 from Sunday.
        if dow.contains(',') {
            return Err(unsupported("'#' cannot be combined with other days"));
        }
        let day = weekday(day).ok_or_else(|| unsupported("bad day before '#'"))?;
        return Ok(Some(format!("{}#{nth}", day + 1)));
    }
    let mut set = [false; 7];
    for item in dow.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, step.parse::<usize>().map_err(|_| unsupported("bad step"))?),
            None => (item, 1),
        };
        if step == 0 {
            return Err(unsupported("a step of 0"));
        }
        let (from, to) = match range.split_once('-') {
            _ if range == "*" => (Some(0), Some(6)),
            Some((a, b)) => (weekday_number(a), weekday_number(b)),
            // croner refuses "n/s", so a lone value is just that day.
            None => (weekday_number(range), weekday_number(range)),
        };
        let (Some(from), Some(to)) = (from, to) else {
            return Err(unsupported("bad day of week"));
        };
        if from > to {
            return Err(unsupported("a day-of-week range must not wrap around the week"));
        }
        for day in (from..=to).step_by(step) {
            set[day % 7] = true;
        }
    }
    if set.iter().all(|d| *d) {
        return Ok(None);
    }
    let names: Vec<&str> = WEEKDAYS
        .iter()
        .zip(set)
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect();
    Ok(Some(names.join(",")))
}

/// A day of week as 0-7 (0 and 7 Sunday), from a number or a name.
fn weekday_number(s: &str) -> Option<usize> {
    match s.parse::<usize>() {
        Ok(n) if n <= 7 => Some(n),
        Ok(_) => None,
        Err(_) => WEEKDAYS.iter().position(|d| d.eq_ignore_ascii_case(s)),
    }
}

/// A day of week as 0-6 from Sunday.
fn weekday(s: &str) -> Option<usize> {
    weekday_number(s).map(|n| n % 7)
}

fn parse_cron(cron: &str) -> Result<Cron> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(cron)
        .map_err(|e| Error::invalid("cron", format!("{cron:?}: {e}")))
}

/// How far before `after` (on the wall clock) the search for the next fire starts: more
/// than any daylight-saving shift, so a wall-clock time repeated by a fall-back whose
/// first pass is before `after` is seen (and skipped) rather than missed.
const DST_MARGIN_HOURS: i64 = 3;
/// How far ahead a search goes before concluding the cron never fires again.
const SEARCH_YEARS: i64 = 10;

/// The first time strictly after `after` at which `cron` fires when read in `tz`, with
/// EventBridge Scheduler's daylight-saving rules, so local mode fires when AWS would:
/// - a wall-clock time skipped by a spring-forward does not fire that day;
/// - a wall-clock time repeated by a fall-back fires once, on its first pass.
///
/// (croner's own search differs: it moves a skipped fixed time to just after the gap
/// and fires wildcard hours twice in a repeated hour.)
pub fn next_fire(cron: &str, tz: Tz, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    let cron = parse_cron(cron)?;
    let start: NaiveDateTime = after.with_timezone(&tz).naive_local() - chrono::Duration::hours(DST_MARGIN_HOURS);
    let horizon = start + chrono::Duration::days(366 * SEARCH_YEARS);
    for wall in cron.iter_after(start).take_while(|t| *t <= horizon) {
        let instant = match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => t,
            LocalResult::Ambiguous(first, _) => first,
            LocalResult::None => continue,
        };
        let instant = instant.with_timezone(&Utc);
        if instant > after {
            return Ok(Some(instant));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::ScheduleSpec as Row;

    fn eb(cron: &str) -> String {
        eventbridge_expression(cron).unwrap_or_else(|e| panic!("{cron}: {e}"))
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> Tz {
        name.parse().unwrap()
    }

    fn fire(cron: &str, zone: &str, after: &str) -> Option<DateTime<Utc>> {
        next_fire(cron, tz(zone), at(after)).unwrap()
    }

    #[test]
    fn every_day_crons_put_the_question_mark_on_day_of_week() {
        assert_eq!(eb("0 3 * * *"), "cron(0 3 * * ? *)");
        assert_eq!(eb("@hourly"), "cron(0 * * * ? *)");
        assert_eq!(eb("30 1 1,15 * *"), "cron(30 1 1,15 * ? *)");
        assert_eq!(eb("0 0 L * *"), "cron(0 0 L * ? *)");
        assert_eq!(eb("0 0 ? * ?"), "cron(0 0 * * ? *)");
    }

    #[test]
    fn day_of_week_becomes_names_with_the_question_mark_on_day_of_month() {
        assert_eq!(eb("0 3 * * 1-5"), "cron(0 3 ? * MON,TUE,WED,THU,FRI *)");
        assert_eq!(eb("0 3 * * MON-FRI"), "cron(0 3 ? * MON,TUE,WED,THU,FRI *)");
        // 0 and 7 are both Sunday in Unix cron; EventBridge's 1 is Sunday, so numbers
        // must never be passed through.
        assert_eq!(eb("0 3 * * 0"), "cron(0 3 ? * SUN *)");
        assert_eq!(eb("0 3 * * 7"), "cron(0 3 ? * SUN *)");
        assert_eq!(eb("0 3 * * 5-7"), "cron(0 3 ? * SUN,FRI,SAT *)");
        assert_eq!(eb("0 3 * * 1-5/2"), "cron(0 3 ? * MON,WED,FRI *)");
        assert_eq!(eb("0 3 * * */3"), "cron(0 3 ? * SUN,WED,SAT *)");
        assert_eq!(eb("0 3 * * SAT,SUN"), "cron(0 3 ? * SUN,SAT *)");
        assert_eq!(eb("0 3 * * 0-6"), "cron(0 3 * * ? *)", "every day is no restriction");
        assert_eq!(
            eb("0 3 * * MON#2"),
            "cron(0 3 ? * 2#2 *)",
            "second Monday; EventBridge Monday is 2"
        );
    }

    #[test]
    fn steps_start_at_the_first_value_of_their_field() {
        assert_eq!(eb("*/15 */6 * * *"), "cron(0/15 0/6 * * ? *)");
        assert_eq!(eb("0 0 */2 */3 *"), "cron(0 0 1/2 1/3 ? *)");
        assert_eq!(eb("5-59/10 1-5 * JAN,JUL *"), "cron(5-59/10 1-5 * JAN,JUL ? *)");
    }

    #[test]
    fn what_eventbridge_cannot_express_is_refused_naming_why() {
        let err = eventbridge_expression("0 0 1 * MON").unwrap_err();
        assert!(err.to_string().contains("both day-of-month and day-of-week"), "{err}");
        assert!(eventbridge_expression("0 0 * * 5L").is_err());
        assert!(eventbridge_expression("not a cron").is_err());
    }

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

    #[test]
    fn fire_times_are_read_in_the_timezone() {
        assert_eq!(
            fire("0 3 * * *", "UTC", "2025-01-01T00:00:00Z"),
            Some(at("2025-01-01T03:00:00Z"))
        );
        assert_eq!(
            fire("0 3 * * *", "Europe/Berlin", "2025-01-01T00:00:00Z"),
            Some(at("2025-01-01T02:00:00Z"))
        );
        assert_eq!(
            fire("0 3 * * *", "Europe/Berlin", "2025-07-01T00:00:00Z"),
            Some(at("2025-07-01T01:00:00Z")),
            "summer time"
        );
        assert_eq!(
            fire("0 3 * * *", "Europe/Berlin", "2025-01-01T02:00:00Z"),
            Some(at("2025-01-02T02:00:00Z")),
            "strictly after"
        );
        assert_eq!(
            fire("0 9 * * MON", "Asia/Tokyo", "2025-01-01T00:00:00Z"),
            Some(at("2025-01-06T00:00:00Z"))
        );
        assert_eq!(
            fire("30 0 1 * *", "America/New_York", "2025-01-31T12:00:00Z"),
            Some(at("2025-02-01T05:30:00Z"))
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_does_not_fire_that_day() {
        // Berlin 2025-03-30: 02:00 jumps to 03:00, so 02:30 does not exist.
        assert_eq!(
            fire("30 2 * * *", "Europe/Berlin", "2025-03-29T12:00:00Z"),
            Some(at("2025-03-31T00:30:00Z"))
        );
        assert_eq!(
            fire("0 3 * * *", "Europe/Berlin", "2025-03-29T12:00:00Z"),
            Some(at("2025-03-30T01:00:00Z"))
        );
        // Hourly: the 02:00 run is skipped, 01:00 CET is followed by 03:00 CEST.
        assert_eq!(
            fire("0 * * * *", "Europe/Berlin", "2025-03-30T00:00:00Z"),
            Some(at("2025-03-30T01:00:00Z"))
        );
        // New York 2025-03-09: 02:00 jumps to 03:00.
        assert_eq!(
            fire("30 2 * * *", "America/New_York", "2025-03-08T12:00:00Z"),
            Some(at("2025-03-10T06:30:00Z"))
        );
    }

    #[test]
    fn a_time_repeated_by_fall_back_fires_once_on_its_first_pass() {
        // Berlin 2025-10-26: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        assert_eq!(
            fire("30 2 * * *", "Europe/Berlin", "2025-10-25T12:00:00Z"),
            Some(at("2025-10-26T00:30:00Z"))
        );
        // After the first pass, the next fire is the next day, not the second pass.
        assert_eq!(
            fire("30 2 * * *", "Europe/Berlin", "2025-10-26T00:30:00Z"),
            Some(at("2025-10-27T01:30:00Z"))
        );
        // Hourly across the repeated hour: 02:00 CEST (00:00Z), then 03:00 CET (02:00Z).
        assert_eq!(
            fire("0 * * * *", "Europe/Berlin", "2025-10-25T23:30:00Z"),
            Some(at("2025-10-26T00:00:00Z"))
        );
        assert_eq!(
            fire("0 * * * *", "Europe/Berlin", "2025-10-26T00:00:00Z"),
            Some(at("2025-10-26T02:00:00Z"))
        );
        // Lord Howe shifts by 30 minutes: 01:45 happens twice on 2025-04-06, fires once.
        let first = fire("45 1 * * *", "Australia/Lord_Howe", "2025-04-05T12:00:00Z").unwrap();
        assert_eq!(first, at("2025-04-05T14:45:00Z"), "01:45 +11:00");
        assert_eq!(
            fire("45 1 * * *", "Australia/Lord_Howe", &first.to_rfc3339()),
            Some(at("2025-04-06T15:15:00Z")),
            "next day, +10:30"
        );
    }

    #[test]
    fn a_rare_cron_is_found_years_ahead_and_garbage_is_invalid() {
        // 29 February fires again within the horizon, so it is found.
        assert_eq!(
            fire("0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z"),
            Some(at("2028-02-29T00:00:00Z"))
        );
        assert!(next_fire("61 * * * *", tz("UTC"), at("2025-01-01T00:00:00Z")).is_err());
    }
}
