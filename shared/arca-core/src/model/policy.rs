//! Policies: when backups run and how long their recovery points are kept.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::ids::{OrgId, PolicyId};
use crate::model::cron::{normalize_cron, parse_normalised, parse_timezone};
use crate::model::plan::{Plan, PlanLimits};
use crate::{Error, Result, validate};

/// The name of the policy every org starts with.
pub const DEFAULT_POLICY_NAME: &str = "hourly";
pub const MAX_SCHEDULES: usize = 20;
/// Most recent points kept regardless of age (CloudCasa's `numAlwaysRetain` cap).
pub const MAX_KEEP_LAST: u32 = 30;
/// A sanity bound on retention for plans without a limit: 100 years.
pub const MAX_RETAIN_DAYS: u32 = 36_500;
/// The shortest gap between two runs of a policy used for an RDS copy.
pub const RDS_COPY_MIN_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// How many fire times of each row the frequency check looks at. 400 covers more than
/// a year of a daily row, so monthly and yearly rows are seen too.
const PROBE_OCCURRENCES: usize = 400;
const PROBE_HORIZON_DAYS: i64 = 400;

/// One schedule row: a cron expression with its own retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Five fields (minute hour day-of-month month day-of-week), in the policy's timezone.
    pub cron: String,
    pub retain_days: u32,
    /// Keep at least this many most recent points, whatever their age.
    #[serde(default)]
    pub keep_last: Option<u32>,
}

fn utc() -> String {
    "UTC".to_string()
}

/// What a user sends to create or replace a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    pub name: String,
    /// An IANA timezone name; the cron expressions are read in it.
    #[serde(default = "utc")]
    pub timezone: String,
    pub schedules: Vec<ScheduleSpec>,
    #[serde(default)]
    pub suspended: bool,
}

impl PolicySpec {
    /// The policy every org is created with: hourly, kept 7 days.
    pub fn default_hourly() -> Self {
        PolicySpec {
            name: DEFAULT_POLICY_NAME.to_string(),
            timezone: utc(),
            schedules: vec![ScheduleSpec {
                cron: "0 * * * *".to_string(),
                retain_days: 7,
                keep_last: None,
            }],
            suspended: false,
        }
    }

    /// Validates every field and returns the normalised spec (trimmed name, canonical
    /// cron text). Plan limits are checked here too, so the error names the row.
    pub fn validated(mut self, plan: Plan, limits: &PlanLimits) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        parse_timezone("timezone", &self.timezone)?;
        if self.schedules.is_empty() {
            return Err(Error::invalid("schedules", "a policy needs at least one schedule"));
        }
        if self.schedules.len() > MAX_SCHEDULES {
            return Err(Error::invalid(
                "schedules",
                format!("at most {MAX_SCHEDULES} schedules"),
            ));
        }
        for (i, row) in self.schedules.iter_mut().enumerate() {
            let cron_field = format!("schedules[{i}].cron");
            row.cron = normalize_cron(&cron_field, &row.cron)?;
            crate::model::cron::eventbridge_expression_of(&cron_field, &row.cron)?;
            let field = format!("schedules[{i}].retainDays");
            if row.retain_days == 0 || row.retain_days > MAX_RETAIN_DAYS {
                return Err(Error::invalid(
                    field,
                    format!("must be between 1 and {MAX_RETAIN_DAYS}"),
                ));
            }
            limits.check_retain_days(plan, &field, row.retain_days)?;
            if let Some(keep) = row.keep_last
                && (keep == 0 || keep > MAX_KEEP_LAST)
            {
                return Err(Error::invalid(
                    format!("schedules[{i}].keepLast"),
                    format!("must be between 1 and {MAX_KEEP_LAST}"),
                ));
            }
        }
        Ok(self)
    }

    pub fn tz(&self) -> Result<Tz> {
        parse_timezone("timezone", &self.timezone)
    }
}
/// Every fire time of all the rows together from `from` on, on the wall clock of the
/// policy's timezone, sorted; times that coincide count once (two rows firing together
/// make one run).
///
/// Frequency is a property of the wall clock: a daily 02:30 run is daily even on the
/// night the clocks skip 02:30 (absolute gaps then shrink by the DST shift), so gaps are
/// measured between wall-clock times, never between instants.
fn wall_clock_fire_times(spec: &PolicySpec, from: DateTime<Utc>) -> Result<Vec<NaiveDateTime>> {
    let tz = spec.tz()?;
    let start = from.with_timezone(&tz).naive_local();
    let mut horizon = start + chrono::Duration::days(PROBE_HORIZON_DAYS);
    let mut times = Vec::new();
    for row in &spec.schedules {
        let cron = parse_normalised(&row.cron)?;
        let row_times: Vec<NaiveDateTime> = cron
            .iter_after(start)
            .take_while(|t| *t <= horizon)
            .take(PROBE_OCCURRENCES)
            .collect();
        // A row cut short by the count is only known up to its last time: comparing
        // other rows beyond it would miss its later fires.
        if row_times.len() == PROBE_OCCURRENCES
            && let Some(last) = row_times.last()
        {
            horizon = horizon.min(*last);
        }
        times.extend(row_times);
    }
    times.retain(|t| *t <= horizon);
    times.sort();
    times.dedup();
    Ok(times)
}

/// The two closest consecutive fire times of all the rows together from `from` on, as
/// wall-clock times in the policy's timezone.
pub fn closest_fire_times(spec: &PolicySpec, from: DateTime<Utc>) -> Result<Option<(NaiveDateTime, NaiveDateTime)>> {
    let times = wall_clock_fire_times(spec, from)?;
    Ok(times
        .windows(2)
        .map(|w| (w[0], w[1]))
        .min_by_key(|(a, b)| b.signed_duration_since(*a)))
}

/// The rule for policies used by an RDS copy: no two runs less than a day apart
/// ([`RDS_COPY_MIN_INTERVAL`]), over a year of fire times in the policy's timezone.
/// Checked when a policy is attached to an RDS copy and whenever such a policy is edited.
pub fn ensure_at_most_daily(spec: &PolicySpec, from: DateTime<Utc>) -> Result<()> {
    let day = chrono::Duration::seconds(RDS_COPY_MIN_INTERVAL.as_secs() as i64);
    let Some((a, b)) = closest_fire_times(spec, from)? else {
        return Ok(());
    };
    let gap = b.signed_duration_since(a);
    if gap >= day {
        return Ok(());
    }
    Err(Error::invalid(
        "schedules",
        format!(
            "a policy used for an RDS copy may run at most once a day, but it runs at {} and again at {} {} ({}h{:02}m later)",
            a.format("%Y-%m-%d %H:%M"),
            b.format("%Y-%m-%d %H:%M"),
            spec.timezone,
            gap.num_hours(),
            gap.num_minutes() % 60
        ),
    ))
}

/// What refers to a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReferrerKind {
    K8sBackup,
    RdsBackup,
    RdsCopy,
}

/// One definition that uses a policy, as shown in the policy's `usedBy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReferrer {
    pub kind: ReferrerKind,
    pub id: String,
    pub name: String,
}

/// How long a run's recovery point is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    pub retain_days: u32,
    #[serde(default)]
    pub keep_last: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub id: PolicyId,
    pub org_id: OrgId,
    #[serde(flatten)]
    pub spec: PolicySpec,
    /// Kept in the same transaction as the referring definitions, so "in use" is exact.
    pub used_by: Vec<PolicyReferrer>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// The most definitions one policy serves: `usedBy` lives in the policy's one item (at most
/// ~100 KB of it at this count, under DynamoDB's 400 KB), and every referrer's change writes
/// that item.
pub const MAX_REFERRERS: usize = 1000;

impl Policy {
    /// Adds or renames the referrer with this id; a new one past [`MAX_REFERRERS`] is refused.
    pub fn upsert_referrer(&mut self, referrer: PolicyReferrer) -> Result<()> {
        let known = self
            .used_by
            .iter()
            .position(|r| r.kind == referrer.kind && r.id == referrer.id);
        match known {
            Some(i) => self.used_by[i] = referrer,
            None if self.used_by.len() >= MAX_REFERRERS => {
                return Err(Error::invalid(
                    "policyId",
                    format!(
                        "policy {:?} already serves {MAX_REFERRERS} definitions, the most one policy may: \
                         give this definition a copy of the policy",
                        self.spec.name
                    ),
                ));
            }
            None => self.used_by.push(referrer),
        }
        Ok(())
    }

    pub fn remove_referrer(&mut self, kind: ReferrerKind, id: &str) {
        self.used_by.retain(|r| !(r.kind == kind && r.id == id));
    }

    pub fn is_used_by_rds_copy(&self) -> bool {
        self.used_by.iter().any(|r| r.kind == ReferrerKind::RdsCopy)
    }

    /// Refuses deletion while anything refers to the policy, naming what does.
    pub fn ensure_unused(&self) -> Result<()> {
        if self.used_by.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = self.used_by.iter().map(|r| format!("{} ({})", r.name, r.id)).collect();
        Err(Error::conflict_of(
            crate::error::ConflictKind::PolicyInUse,
            format!(
                "policy {:?} is used by {}: change their policy first",
                self.spec.name,
                names.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cron::next_fire_after;

    fn spec(tz: &str, crons: &[&str]) -> PolicySpec {
        PolicySpec {
            name: "p".into(),
            timezone: tz.into(),
            schedules: crons
                .iter()
                .map(|c| ScheduleSpec {
                    cron: c.to_string(),
                    retain_days: 7,
                    keep_last: None,
                })
                .collect(),
            suspended: false,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn unused_policy() -> Policy {
        Policy {
            id: PolicyId::new(),
            org_id: OrgId::new(),
            spec: PolicySpec::default_hourly(),
            used_by: vec![],
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            version: 1,
        }
    }

    #[test]
    fn a_policy_serves_at_most_max_referrers() {
        let mut p = unused_policy();
        let referrer = |n: usize| PolicyReferrer {
            kind: ReferrerKind::K8sBackup,
            id: format!("bkp_{n}"),
            name: format!("definition {n}"),
        };
        for n in 0..MAX_REFERRERS {
            p.upsert_referrer(referrer(n)).unwrap();
        }
        p.upsert_referrer(referrer(7)).unwrap();
        let err = p.upsert_referrer(referrer(MAX_REFERRERS)).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "policyId"),
            "{err:?}"
        );
        assert!(err.to_string().contains("1000 definitions"), "{err}");
        assert_eq!(p.used_by.len(), MAX_REFERRERS);
        let item = serde_json::to_vec(&p).unwrap();
        assert!(
            item.len() < 200 * 1024,
            "a full usedBy stays well inside one item: {} bytes",
            item.len()
        );
    }

    #[test]
    fn cron_is_normalised_and_garbage_names_the_row() {
        assert_eq!(normalize_cron("c", "  0   3 * *  mon ").unwrap(), "0 3 * * MON");
        assert_eq!(normalize_cron("c", "@daily").unwrap(), "0 0 * * *");
        let mut bad = PolicySpec::default_hourly();
        bad.schedules.push(ScheduleSpec {
            cron: "61 * * * *".into(),
            retain_days: 7,
            keep_last: None,
        });
        let err = bad.validated(Plan::Free, &PlanLimits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "schedules[1].cron"),
            "{err:?}"
        );
        for garbage in ["* * * *", "0 0 * * * *", "not a cron", "0 0 30 2 *"] {
            assert!(normalize_cron("c", garbage).is_err(), "{garbage} must be rejected");
        }
    }

    #[test]
    fn a_cron_the_scheduler_cannot_express_is_refused_on_save() {
        // Unix cron fires when day-of-month OR day-of-week matches; EventBridge cannot say that.
        let mut s = PolicySpec::default_hourly();
        s.schedules[0].cron = "0 0 1 * MON".into();
        let err = s.validated(Plan::Paid, &PlanLimits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "schedules[0].cron"),
            "{err:?}"
        );
    }

    #[test]
    fn timezone_and_retention_are_validated_with_their_paths() {
        let mut s = PolicySpec::default_hourly();
        s.timezone = "Mars/Olympus".into();
        assert!(
            matches!(s.validated(Plan::Paid, &PlanLimits::default()), Err(Error::Invalid { field, .. }) if field == "timezone")
        );
        let mut s = PolicySpec::default_hourly();
        s.schedules[0].retain_days = 45;
        let err = s.clone().validated(Plan::Free, &PlanLimits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plan limit: retainDays 45 exceeds the free plan's limit of 30 days"
        );
        assert!(s.clone().validated(Plan::Paid, &PlanLimits::default()).is_ok());
        s.schedules[0].keep_last = Some(31);
        assert!(
            matches!(s.validated(Plan::Paid, &PlanLimits::default()), Err(Error::Invalid { field, .. }) if field == "schedules[0].keepLast")
        );
        let mut empty = PolicySpec::default_hourly();
        empty.schedules.clear();
        assert!(
            matches!(empty.validated(Plan::Paid, &PlanLimits::default()), Err(Error::Invalid { field, .. }) if field == "schedules")
        );
    }

    #[test]
    fn daily_and_slower_schedules_are_allowed_for_rds_copies() {
        let from = at("2025-01-01T00:00:00Z");
        for crons in [
            &["0 3 * * *"][..],
            &["0 0 * * 0"],
            &["0 0 1 * *"],
            &["0 1 * * *", "0 1 * * 0"],
            &["0 0 * * 1", "0 12 * * 3"],
        ] {
            assert!(ensure_at_most_daily(&spec("UTC", crons), from).is_ok(), "{crons:?}");
        }
    }

    #[test]
    fn more_often_than_daily_is_refused_even_across_rows_or_once_a_month() {
        let from = at("2025-01-01T00:00:00Z");
        assert!(ensure_at_most_daily(&spec("UTC", &["0 * * * *"]), from).is_err());
        assert!(ensure_at_most_daily(&spec("UTC", &["0 1 * * *", "0 13 * * *"]), from).is_err());
        // Twice on the 15th only: fine for 14 days, too frequent once a month.
        let err = ensure_at_most_daily(&spec("UTC", &["0 0,12 15 * *"]), from).unwrap_err();
        assert!(
            err.to_string()
                .contains("2025-01-15 00:00 and again at 2025-01-15 12:00 UTC"),
            "{err}"
        );
        assert!(err.to_string().contains("12h00m later"), "{err}");
        // Twice on 29 February: only in a leap year, seen within a year from 2027-06.
        assert!(ensure_at_most_daily(&spec("UTC", &["0 0,6 29 2 *"]), at("2027-06-01T00:00:00Z")).is_err());
    }

    #[test]
    fn a_daily_schedule_across_dst_changes_is_daily() {
        for tz in ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"] {
            for cron in ["0 3 * * *", "30 2 * * *", "30 1 * * *", "0 0 * * *"] {
                let r = ensure_at_most_daily(&spec(tz, &[cron]), at("2025-01-01T00:00:00Z"));
                assert!(r.is_ok(), "{tz} {cron}: {r:?}");
            }
        }
    }

    #[test]
    fn fire_times_are_read_in_the_policy_timezone() {
        let tz = parse_timezone("timezone", "Europe/Berlin").unwrap();
        let next = next_fire_after("0 3 * * *", tz, at("2025-01-01T00:00:00Z")).unwrap();
        assert_eq!(next, Some(at("2025-01-01T02:00:00Z")));
        let pair = closest_fire_times(&spec("Asia/Tokyo", &["0 */6 * * *"]), at("2025-01-01T00:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(
            pair.0.to_string(),
            "2025-01-01 12:00:00",
            "09:00 in Tokyo is the start; 12:00 the first fire"
        );
        assert_eq!(pair.1.signed_duration_since(pair.0), chrono::Duration::hours(6));
    }

    #[test]
    fn in_use_policies_name_their_referrers() {
        let mut p = unused_policy();
        assert!(p.ensure_unused().is_ok());
        p.upsert_referrer(PolicyReferrer {
            kind: ReferrerKind::K8sBackup,
            id: "bkp_1".into(),
            name: "old".into(),
        })
        .unwrap();
        p.upsert_referrer(PolicyReferrer {
            kind: ReferrerKind::K8sBackup,
            id: "bkp_1".into(),
            name: "nightly".into(),
        })
        .unwrap();
        assert_eq!(p.used_by.len(), 1);
        let err = p.ensure_unused().unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }));
        assert!(err.to_string().contains("nightly (bkp_1)"), "{err}");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["usedBy"][0]["kind"], "K8S_BACKUP");
        assert_eq!(json["schedules"][0]["retainDays"], 7);
        p.remove_referrer(ReferrerKind::K8sBackup, "bkp_1");
        assert!(p.ensure_unused().is_ok());
    }
}
