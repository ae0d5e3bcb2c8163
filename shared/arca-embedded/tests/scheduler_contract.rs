//! The embedded scheduler: the port's contract, and firing driven by a movable clock.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arca_core::ids::OrgId;
use arca_core::model::schedule::{ScheduleInput, schedules_for};
use arca_core::ports::scheduler::Scheduler;
use arca_core::ports::{Clock, FixedClock};
use arca_core::testing::contracts::scheduler::policy;
use arca_embedded::EmbeddedScheduler;
use chrono::{DateTime, Utc};

/// A clock the test moves by hand.
struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    fn at(s: &str) -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(at(s).into())))
    }

    fn set(&self, s: &str) {
        *self.0.lock().expect("clock lock") = at(s).into();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().expect("clock lock")
    }
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

fn rules(fired: &[ScheduleInput]) -> Vec<(String, u32)> {
    fired.iter().map(|f| (f.definition_id.clone(), f.rule)).collect()
}

#[tokio::test]
async fn embedded_scheduler_passes_the_contract() {
    let scheduler = EmbeddedScheduler::new(Arc::new(FixedClock(SystemTime::now())));
    arca_core::testing::contracts::scheduler::scheduler_contract(&scheduler).await;
}

#[tokio::test]
async fn schedules_fire_at_their_times_in_their_timezone() {
    let clock = ManualClock::at("2025-03-28T12:00:00Z");
    let s = EmbeddedScheduler::new(clock.clone());
    let org = OrgId::new();
    // Berlin 02:30 daily (skipped on 2025-03-30, when 02:00 jumps to 03:00) and Tokyo 09:00.
    let berlin = schedules_for(org, "bkp_a", &policy("Europe/Berlin", &["30 2 * * *"]), false).unwrap();
    let tokyo = schedules_for(org, "bkp_b", &policy("Asia/Tokyo", &["0 9 * * *"]), false).unwrap();
    s.sync("bkp_a", &berlin).await.unwrap();
    s.sync("bkp_b", &tokyo).await.unwrap();

    assert!(s.due().unwrap().is_empty(), "nothing is due at creation");
    assert_eq!(
        s.next_due(),
        Some(at("2025-03-29T00:00:00Z")),
        "09:00 in Tokyo comes first"
    );
    clock.set("2025-03-29T00:00:00Z");
    assert_eq!(rules(&s.due().unwrap()), [("bkp_b".to_string(), 0)]);
    assert!(s.due().unwrap().is_empty(), "a fire time fires once");
    clock.set("2025-03-29T01:30:00Z");
    let fired = s.due().unwrap();
    assert_eq!(rules(&fired), [("bkp_a".to_string(), 0)], "02:30 CET");
    assert_eq!(fired[0].org_id, org);
    // 30 March: no 02:30 in Berlin; the next Berlin run is 31 March 02:30 CEST.
    clock.set("2025-03-30T12:00:00Z");
    assert_eq!(
        rules(&s.due().unwrap()),
        [("bkp_b".to_string(), 0)],
        "only Tokyo (30 March 00:00Z)"
    );
    assert_eq!(s.next_due(), Some(at("2025-03-31T00:00:00Z")));
    clock.set("2025-03-31T00:30:00Z");
    assert_eq!(
        rules(&s.due().unwrap()),
        [("bkp_a".to_string(), 0), ("bkp_b".to_string(), 0)]
    );
}

#[tokio::test]
async fn missed_fires_coalesce_and_paused_schedules_do_not_fire_or_catch_up() {
    let clock = ManualClock::at("2025-01-01T00:30:00Z");
    let s = EmbeddedScheduler::new(clock.clone());
    let org = OrgId::new();
    let hourly = policy("UTC", &["0 * * * *"]);
    // The definition's hourly schedule, paused or not.
    let sync_hourly = async |paused: bool| {
        s.sync("bkp_h", &schedules_for(org, "bkp_h", &hourly, paused).unwrap())
            .await
            .unwrap()
    };
    sync_hourly(false).await;
    clock.set("2025-01-01T05:10:00Z");
    assert_eq!(s.due().unwrap().len(), 1, "five missed hours make one run");
    assert_eq!(s.next_due(), Some(at("2025-01-01T06:00:00Z")));

    sync_hourly(true).await;
    assert_eq!(s.next_due(), None, "a paused schedule has no next fire");
    clock.set("2025-01-01T09:30:00Z");
    assert!(s.due().unwrap().is_empty(), "paused");
    sync_hourly(false).await;
    assert!(
        s.due().unwrap().is_empty(),
        "resuming does not catch up on the paused hours"
    );
    assert_eq!(s.next_due(), Some(at("2025-01-01T10:00:00Z")));

    // A re-sync of the same set keeps the pending fire; deleting drops it.
    clock.set("2025-01-01T10:00:00Z");
    sync_hourly(false).await;
    assert_eq!(
        s.due().unwrap().len(),
        1,
        "an unchanged re-sync must not postpone a due fire"
    );
    s.sync("bkp_h", &[]).await.unwrap();
    clock.set("2025-01-01T12:00:00Z");
    assert!(s.due().unwrap().is_empty());
    assert_eq!(s.next_due(), None);
}

/// A restart after downtime: schedules synced anew fire only in the future, unless the
/// caller catches up from when they were last evaluated; then each schedule that missed
/// a fire time runs once, and one that did not miss any waits for its time.
#[tokio::test]
async fn a_restart_catches_up_missed_fires_once() {
    let clock = ManualClock::at("2025-01-03T09:00:00Z");
    let s = EmbeddedScheduler::new(clock.clone());
    let org = OrgId::new();
    s.sync(
        "bkp_daily",
        &schedules_for(org, "bkp_daily", &policy("UTC", &["0 3 * * *"]), false).unwrap(),
    )
    .await
    .unwrap();
    s.sync(
        "bkp_monthly",
        &schedules_for(org, "bkp_monthly", &policy("UTC", &["0 3 1 * *"]), false).unwrap(),
    )
    .await
    .unwrap();
    s.sync(
        "bkp_paused",
        &schedules_for(org, "bkp_paused", &policy("UTC", &["0 3 * * *"]), true).unwrap(),
    )
    .await
    .unwrap();
    assert!(s.due().unwrap().is_empty(), "synced anew: nothing is due yet");

    // Last evaluated two days ago, before the process stopped.
    let caught = s.catch_up_from(at("2025-01-01T12:00:00Z")).unwrap();
    assert_eq!(caught.len(), 1, "{caught:?}");
    let fired = s.due().unwrap();
    assert_eq!(
        rules(&fired),
        [("bkp_daily".to_owned(), 0)],
        "two missed 3 a.m. runs make one"
    );
    assert!(s.due().unwrap().is_empty(), "caught up once");
    assert_eq!(s.next_due(), Some(at("2025-01-04T03:00:00Z")));

    // Nothing missed since the last evaluation: nothing to catch up.
    assert!(s.catch_up_from(at("2025-01-03T08:59:00Z")).unwrap().is_empty());
}
