//! Cron expressions, pure: the policy's 5-field crons normalised, converted to
//! EventBridge's 6-field form, and their next fire time in a timezone with EventBridge's
//! daylight-saving rules. Used by `policy` (validation) and `schedule` (the schedules).

use crate::{Error, Result};
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use std::str::FromStr;

/// Parses an IANA timezone name.
pub fn parse_timezone(field: &str, name: &str) -> Result<Tz> {
    Tz::from_str(name)
        .map_err(|_| Error::invalid(field, format!("{name:?} is not an IANA timezone (e.g. Europe/Berlin)")))
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

/// Checks a five-field cron expression and returns it in canonical form: nicknames
/// expanded, single spaces, upper-case names (`MON`, `JAN`).
pub fn normalize_cron(field: &str, expr: &str) -> Result<String> {
    let trimmed = expr.trim();
    let expanded = match trimmed.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
        "@monthly" => "0 0 1 * *".to_string(),
        "@weekly" => "0 0 * * 0".to_string(),
        "@daily" | "@midnight" => "0 0 * * *".to_string(),
        "@hourly" => "0 * * * *".to_string(),
        _ => trimmed
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase(),
    };
    let fields = expanded.split(' ').filter(|f| !f.is_empty()).count();
    if fields != 5 {
        return Err(Error::invalid(
            field,
            format!("{expr:?} has {fields} fields; expected 5 (minute hour day-of-month month day-of-week)"),
        ));
    }
    let cron = parser()
        .parse(&expanded)
        .map_err(|e| Error::invalid(field, format!("{expr:?} is not a valid cron expression: {e}")))?;
    // A pattern that can never fire (30 February) parses but is useless as a schedule.
    let probe = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
    if cron.find_next_occurrence(&probe, false).is_err() {
        return Err(Error::invalid(field, format!("{expr:?} never fires")));
    }
    Ok(expanded)
}

/// The next time `cron` fires strictly after `after`, read in `tz`.
pub fn next_fire_after(cron: &str, tz: Tz, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    let cron = parse_normalised(cron)?;
    Ok(cron
        .find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc)))
}

pub(crate) fn parse_normalised(cron: &str) -> Result<Cron> {
    parser()
        .parse(cron)
        .map_err(|e| Error::invalid("cron", format!("{cron:?}: {e}")))
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
    let normalised = normalize_cron(field, cron)?;
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
