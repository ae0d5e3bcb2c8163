//! The [`Scheduler`] port on EventBridge Scheduler.
//!
//! Every schedule lives in one Arca schedule group, named `<definition id>-<rule>`. Its
//! expression is the policy row's cron converted to EventBridge syntax, evaluated in the
//! policy's timezone, with the flexible time window off (backups start on the minute),
//! targeting the dispatch function with the [`ScheduleInput`] JSON as input. Paused
//! definitions keep their schedules, DISABLED.
//!
//! The schedule's description holds the five-field cron it was made from, so `list`
//! returns what was synced rather than re-deriving it from the EventBridge expression
//! (the conversion is not reversible: `1-5` becomes `MON,TUE,WED,THU,FRI`).

use arca_core::model::cron::eventbridge_expression;
use arca_core::model::schedule::{Schedule, ScheduleInput, check_desired, rule_of};
use arca_core::ports::scheduler::Scheduler;
use arca_core::{Error, Result};
use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target};

use crate::errors::classify;

const DESCRIPTION_PREFIX: &str = "arca cron: ";

/// Fills and sends a create or an update of `schedule` (the SDK's two requests take the
/// same fields but share no type).
macro_rules! send_schedule {
    ($request:expr, $scheduler:expr, $schedule:expr) => {{
        let (expression, window, target, state) = $scheduler.parts($schedule)?;
        $request
            .group_name(&$scheduler.config.group)
            .name(&$schedule.name)
            .description(format!("{DESCRIPTION_PREFIX}{}", $schedule.cron))
            .schedule_expression(expression)
            .schedule_expression_timezone(&$schedule.timezone)
            .flexible_time_window(window)
            .target(target)
            .state(state)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "schedule"))
    }};
}

/// Where the schedules go and what they invoke.
#[derive(Clone, Debug)]
pub struct EventBridgeSchedulerConfig {
    /// The schedule group (created with the stack; [`EventBridgeScheduler::ensure_group`]
    /// creates it where nothing else does, as in tests).
    pub group: String,
    /// ARN of the dispatch function.
    pub target_arn: String,
    /// ARN of the role EventBridge Scheduler assumes to invoke it.
    pub role_arn: String,
}

/// Schedules on EventBridge Scheduler.
pub struct EventBridgeScheduler {
    client: Client,
    config: EventBridgeSchedulerConfig,
}

/// A schedule as read back, with whether its target is the configured one (a redeploy
/// may move the dispatch function; sync then rewrites the schedule).
struct Existing {
    schedule: Option<Schedule>,
    target_current: bool,
}

impl EventBridgeScheduler {
    pub fn new(client: Client, config: EventBridgeSchedulerConfig) -> Self {
        EventBridgeScheduler { client, config }
    }

    /// Creates the schedule group if it does not exist.
    pub async fn ensure_group(&self) -> Result<()> {
        match self.client.get_schedule_group().name(&self.config.group).send().await {
            Ok(_) => return Ok(()),
            Err(err) => match classify(err, "schedule group") {
                Error::NotFound { .. } => {}
                other => return Err(other),
            },
        }
        match self
            .client
            .create_schedule_group()
            .name(&self.config.group)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match classify(err, "schedule group") {
                // Created concurrently: what we wanted.
                Error::Conflict { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    /// The names of `definition_id`'s schedules. NamePrefix narrows the listing; the
    /// exact ownership test is [`rule_of`], since a prefix also matches longer ids.
    async fn names(&self, definition_id: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .group_schedule_names(Some(format!("{definition_id}-")))
            .await?
            .into_iter()
            .filter(|name| rule_of(definition_id, name).is_some())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The names of every schedule in the group (starting with `prefix` when given), page
    /// after page.
    async fn group_schedule_names(&self, prefix: Option<String>) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_schedules()
                .group_name(&self.config.group)
                .set_name_prefix(prefix.clone())
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify(e, "schedule group"))?;
            names.extend(page.schedules().iter().filter_map(|s| s.name()).map(str::to_string));
            token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(names)
    }

    /// Reads one schedule back; `None` when it vanished since the listing.
    async fn get(&self, name: &str) -> Result<Option<Existing>> {
        let out = match self
            .client
            .get_schedule()
            .group_name(&self.config.group)
            .name(name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) => {
                return match classify(err, "schedule") {
                    Error::NotFound { .. } => Ok(None),
                    other => Err(other),
                };
            }
        };
        let target = out.target();
        let target_current = target
            .is_some_and(|t| t.arn() == self.config.target_arn && t.role_arn() == self.config.role_arn)
            && out
                .flexible_time_window()
                .is_some_and(|w| *w.mode() == FlexibleTimeWindowMode::Off);
        let input: Option<ScheduleInput> = target
            .and_then(|t| t.input())
            .and_then(|i| serde_json::from_str(i).ok());
        let cron = out.description().and_then(|d| d.strip_prefix(DESCRIPTION_PREFIX));
        // A schedule changed outside Arca reads back as what it really is (its raw
        // expression), so it differs from the desired one and sync rewrites it.
        let schedule = match (input, cron) {
            (Some(input), Some(cron)) => {
                let expression = out.schedule_expression().unwrap_or_default();
                let cron = match eventbridge_expression(cron) {
                    Ok(converted) if converted == expression => cron.to_string(),
                    _ => expression.to_string(),
                };
                Some(Schedule {
                    name: name.to_string(),
                    cron,
                    timezone: out.schedule_expression_timezone().unwrap_or("UTC").to_string(),
                    input,
                    enabled: out.state() != Some(&ScheduleState::Disabled),
                })
            }
            _ => None,
        };
        Ok(Some(Existing {
            schedule,
            target_current,
        }))
    }

    fn parts(&self, schedule: &Schedule) -> Result<(String, FlexibleTimeWindow, Target, ScheduleState)> {
        let expression = eventbridge_expression(&schedule.cron)?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(Error::permanent)?;
        let input = serde_json::to_string(&schedule.input).map_err(Error::permanent)?;
        let target = Target::builder()
            .arn(&self.config.target_arn)
            .role_arn(&self.config.role_arn)
            .input(input)
            .build()
            .map_err(Error::permanent)?;
        let state = if schedule.enabled {
            ScheduleState::Enabled
        } else {
            ScheduleState::Disabled
        };
        Ok((expression, window, target, state))
    }

    async fn create(&self, schedule: &Schedule) -> Result<()> {
        send_schedule!(self.client.create_schedule(), self, schedule)
    }

    async fn update(&self, schedule: &Schedule) -> Result<()> {
        send_schedule!(self.client.update_schedule(), self, schedule)
    }

    /// Creates or replaces, whichever the schedule's current existence calls for; a
    /// concurrent sync that got there first is tolerated both ways.
    async fn put(&self, schedule: &Schedule, exists: bool) -> Result<()> {
        let first = if exists {
            self.update(schedule).await
        } else {
            self.create(schedule).await
        };
        match first {
            Err(Error::NotFound { .. }) if exists => self.create(schedule).await,
            Err(Error::Conflict { .. }) if !exists => self.update(schedule).await,
            other => other,
        }
    }

    async fn delete(&self, name: &str) -> Result<()> {
        match self
            .client
            .delete_schedule()
            .group_name(&self.config.group)
            .name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match classify(err, "schedule") {
                Error::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    async fn sync(&self, definition_id: &str, desired: &[Schedule]) -> Result<()> {
        check_desired(definition_id, desired)?;
        let names = self.names(definition_id).await?;
        for name in &names {
            if !desired.iter().any(|s| s.name == *name) {
                self.delete(name).await?;
            }
        }
        for schedule in desired {
            let existing = if names.contains(&schedule.name) {
                self.get(&schedule.name).await?
            } else {
                None
            };
            match existing {
                Some(Existing {
                    schedule: Some(current),
                    target_current: true,
                }) if current == *schedule => {}
                Some(_) => self.put(schedule, true).await?,
                None => self.put(schedule, false).await?,
            }
        }
        Ok(())
    }

    async fn definitions(&self) -> Result<Vec<String>> {
        let ids: std::collections::BTreeSet<String> = self
            .group_schedule_names(None)
            .await?
            .iter()
            .filter_map(|name| arca_core::model::schedule::definition_of(name))
            .map(str::to_string)
            .collect();
        Ok(ids.into_iter().collect())
    }

    async fn list(&self, definition_id: &str) -> Result<Vec<Schedule>> {
        let mut schedules = Vec::new();
        for name in self.names(definition_id).await? {
            if let Some(Existing {
                schedule: Some(schedule),
                ..
            }) = self.get(&name).await?
            {
                schedules.push(schedule);
            }
        }
        Ok(schedules)
    }
}
