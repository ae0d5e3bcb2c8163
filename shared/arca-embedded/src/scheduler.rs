//! The [`Scheduler`] port in process: what EventBridge Scheduler does for the AWS
//! deployment, for single-machine mode.
//!
//! It keeps the synced schedules in memory and, when asked ([`EmbeddedScheduler::due`]),
//! says which fired, reading each cron in its timezone with EventBridge's daylight-saving
//! rules ([`arca_core::model::schedule::next_fire`]). Time comes from a [`Clock`], so tests
//! move time instead of sleeping; local mode calls `due` from a loop that sleeps until
//! [`EmbeddedScheduler::next_due`]. The schedules live in memory: the caller re-syncs
//! them from the store at start-up and catches up what fired while it was down
//! ([`EmbeddedScheduler::catch_up_from`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arca_core::Result;
use arca_core::model::cron::{next_fire, parse_timezone};
use arca_core::model::schedule::{Schedule, ScheduleInput, check_desired, rule_of};
use arca_core::ports::Clock;
use arca_core::ports::scheduler::Scheduler;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

struct Entry {
    schedule: Schedule,
    /// When it fires next; `None` while disabled (or if it never fires again).
    next: Option<DateTime<Utc>>,
}

impl Entry {
    fn new(schedule: Schedule, now: DateTime<Utc>) -> Result<Self> {
        let next = if schedule.enabled {
            next_after(&schedule, now)?
        } else {
            None
        };
        Ok(Entry { schedule, next })
    }
}

fn next_after(schedule: &Schedule, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    next_fire(&schedule.cron, parse_timezone("timezone", &schedule.timezone)?, after)
}

/// In-process schedules, evaluated against a [`Clock`].
pub struct EmbeddedScheduler {
    clock: Arc<dyn Clock>,
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl EmbeddedScheduler {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        EmbeddedScheduler {
            clock,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(self.clock.now())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // Entries are replaced whole, never left half-changed, so a poisoned lock still
        // guards a consistent map.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The inputs of the enabled schedules whose fire time has come, in name order; the
    /// dispatcher runs each. A schedule fires at most once per call: fire times missed
    /// while the process was down coalesce into one run, as one backup covers them all.
    /// A schedule created or re-enabled fires only at fire times after that moment.
    pub fn due(&self) -> Result<Vec<ScheduleInput>> {
        let now = self.now();
        let mut fired = Vec::new();
        for entry in self.lock().values_mut() {
            if entry.schedule.enabled && entry.next.is_some_and(|next| next <= now) {
                entry.next = next_after(&entry.schedule, now)?;
                fired.push(entry.schedule.input.clone());
            }
        }
        Ok(fired)
    }

    /// Catches up after downtime: every enabled schedule that had a fire time after
    /// `since` (when the schedules were last evaluated, before the process stopped) fires
    /// at the next [`EmbeddedScheduler::due`], once however many times it missed, as
    /// anacron does for a machine that was off at 3 a.m. The names of the schedules
    /// that will catch up.
    pub fn catch_up_from(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        let now = self.now();
        let mut caught = Vec::new();
        for (name, entry) in self.lock().iter_mut() {
            if !entry.schedule.enabled {
                continue;
            }
            if let Some(missed) = next_after(&entry.schedule, since)?
                && missed <= now
            {
                entry.next = Some(missed);
                caught.push(name.clone());
            }
        }
        Ok(caught)
    }

    /// What [`Self::catch_up_from`] would catch up, without changing anything: each
    /// enabled schedule's input and its first fire time after `since` that is past, for
    /// the `schedule.missed` alerts `arca server` raises at start.
    pub fn missed_since(&self, since: DateTime<Utc>) -> Result<Vec<(ScheduleInput, DateTime<Utc>)>> {
        let now = self.now();
        let mut missed = Vec::new();
        for entry in self.lock().values().filter(|e| e.schedule.enabled) {
            if let Some(at) = next_after(&entry.schedule, since)?
                && at <= now
            {
                missed.push((entry.schedule.input.clone(), at));
            }
        }
        Ok(missed)
    }

    /// The earliest time any enabled schedule fires: how long the local-mode loop sleeps.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.lock().values().filter_map(|e| e.next).min()
    }
}

#[async_trait]
impl Scheduler for EmbeddedScheduler {
    async fn sync(&self, definition_id: &str, desired: &[Schedule]) -> Result<()> {
        check_desired(definition_id, desired)?;
        let now = self.now();
        let mut entries = self.lock();
        // Build every new entry first, so an error leaves the map as it was.
        let mut fresh = Vec::new();
        for schedule in desired {
            match entries.get(&schedule.name) {
                // Unchanged: keep its next fire time (a re-sync must not postpone it).
                Some(existing) if existing.schedule == *schedule => {}
                _ => fresh.push(Entry::new(schedule.clone(), now)?),
            }
        }
        entries.retain(|name, _| rule_of(definition_id, name).is_none() || desired.iter().any(|s| s.name == *name));
        for entry in fresh {
            entries.insert(entry.schedule.name.clone(), entry);
        }
        Ok(())
    }

    async fn list(&self, definition_id: &str) -> Result<Vec<Schedule>> {
        Ok(self
            .lock()
            .iter()
            .filter(|(name, _)| rule_of(definition_id, name).is_some())
            .map(|(_, e)| e.schedule.clone())
            .collect())
    }

    async fn definitions(&self) -> Result<Vec<String>> {
        let ids: std::collections::BTreeSet<String> = self
            .lock()
            .keys()
            .filter_map(|name| arca_core::model::schedule::definition_of(name))
            .map(str::to_string)
            .collect();
        Ok(ids.into_iter().collect())
    }
}
