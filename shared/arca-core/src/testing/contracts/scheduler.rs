//! The contract suite of the [`Scheduler`] port, run by every adapter against its real
//! backend (EventBridge Scheduler on moto, the embedded scheduler): after each sync, the
//! schedules that exist are exactly the expected set.

use crate::Error;
use crate::ids::{BackupDefinitionId, OrgId};
use crate::model::policy::{PolicySpec, ScheduleSpec};
use crate::model::schedule::{Schedule, schedules_for};
use crate::ports::scheduler::Scheduler;

/// A policy in `timezone` with a row per cron (7 days' retention each).
pub fn policy(timezone: &str, crons: &[&str]) -> PolicySpec {
    PolicySpec {
        name: "contract".into(),
        timezone: timezone.into(),
        schedules: crons
            .iter()
            .map(|c| ScheduleSpec {
                cron: (*c).into(),
                retain_days: 7,
                keep_last: None,
            })
            .collect(),
        suspended: false,
    }
}

fn desired(org: OrgId, definition: &str, policy: &PolicySpec, paused: bool) -> Vec<Schedule> {
    schedules_for(org, definition, policy, paused).unwrap_or_else(|e| panic!("schedules_for {definition}: {e}"))
}

async fn sync(s: &dyn Scheduler, definition: &str, want: &[Schedule]) {
    s.sync(definition, want)
        .await
        .unwrap_or_else(|e| panic!("sync {definition}: {e}"));
}

async fn assert_exactly(s: &dyn Scheduler, definition: &str, want: &[Schedule], step: &str) {
    let mut want = want.to_vec();
    want.sort_by(|a, b| a.name.cmp(&b.name));
    let got = s
        .list(definition)
        .await
        .unwrap_or_else(|e| panic!("list {definition}: {e}"));
    assert_eq!(
        got, want,
        "{step}: the schedules of {definition} must be exactly the desired set"
    );
}

/// Exercises every [`Scheduler`] promise and panics with a description of the first
/// broken one. Definition ids are fresh, so runs can share one schedule group.
pub async fn scheduler_contract(s: &dyn Scheduler) {
    let org = OrgId::new();
    let d1 = BackupDefinitionId::new().to_string();
    let d2 = BackupDefinitionId::new().to_string();
    // An id that extends another's: its schedules must not be mistaken for d2's.
    let d2x = format!("{d2}-9");

    assert_exactly(s, &d1, &[], "before any sync").await;

    let v1 = desired(
        org,
        &d1,
        &policy("Europe/Berlin", &["0 3 * * *", "30 4 * * SUN"]),
        false,
    );
    sync(s, &d1, &v1).await;
    assert_exactly(s, &d1, &v1, "create").await;

    let other = desired(org, &d2, &policy("UTC", &["15 */6 * * *"]), false);
    sync(s, &d2, &other).await;
    let nested = desired(org, &d2x, &policy("Asia/Tokyo", &["0 1 * * *", "0 2 * * *"]), false);
    sync(s, &d2x, &nested).await;
    assert_exactly(s, &d2, &other, "another definition").await;
    assert_exactly(s, &d2x, &nested, "a definition whose id extends another's").await;
    assert_exactly(s, &d1, &v1, "syncing other definitions leaves this one alone").await;
    let known = s.definitions().await.unwrap_or_else(|e| panic!("definitions: {e}"));
    for d in [&d1, &d2, &d2x] {
        assert!(known.contains(d), "definitions() lists {d}: {known:?}");
    }

    sync(s, &d1, &v1).await;
    assert_exactly(s, &d1, &v1, "a repeated sync changes nothing").await;

    // Edit the policy: new cron and timezone for row 0, a row added.
    let v2 = desired(
        org,
        &d1,
        &policy("America/New_York", &["0 2 * * MON-FRI", "30 4 * * SUN", "0 12 1 * *"]),
        false,
    );
    sync(s, &d1, &v2).await;
    assert_exactly(s, &d1, &v2, "edit cron and timezone, add a row").await;

    // Rows removed: their schedules go.
    let v3 = desired(org, &d1, &policy("America/New_York", &["0 2 * * MON-FRI"]), false);
    sync(s, &d1, &v3).await;
    assert_exactly(s, &d1, &v3, "remove rows").await;

    let paused = desired(org, &d1, &policy("America/New_York", &["0 2 * * MON-FRI"]), true);
    assert!(paused.iter().all(|p| !p.enabled));
    sync(s, &d1, &paused).await;
    assert_exactly(s, &d1, &paused, "pause: the schedules exist, disabled").await;
    sync(s, &d1, &v3).await;
    assert_exactly(s, &d1, &v3, "resume").await;

    // A set that is not d1's is refused and changes nothing.
    match s.sync(&d1, &other).await {
        Err(Error::Invalid { .. }) => {}
        other => panic!("syncing another definition's schedules must be Invalid, got {other:?}"),
    }
    assert_exactly(s, &d1, &v3, "after a refused sync").await;

    // Deleting the definition: none left; the others untouched.
    sync(s, &d1, &[]).await;
    assert_exactly(s, &d1, &[], "delete definition").await;
    sync(s, &d1, &[]).await;
    assert_exactly(s, &d2, &other, "others survive a deletion").await;
    assert_exactly(s, &d2x, &nested, "others survive a deletion").await;

    sync(s, &d2, &[]).await;
    assert_exactly(s, &d2, &[], "delete d2").await;
    assert_exactly(
        s,
        &d2x,
        &nested,
        "deleting d2 leaves the definition whose id extends it",
    )
    .await;
    sync(s, &d2x, &[]).await;
    assert_exactly(s, &d2x, &[], "delete d2x").await;
    let known = s.definitions().await.unwrap_or_else(|e| panic!("definitions: {e}"));
    for d in [&d1, &d2, &d2x] {
        assert!(
            !known.contains(d),
            "a definition without schedules is not listed: {d} in {known:?}"
        );
    }
}
