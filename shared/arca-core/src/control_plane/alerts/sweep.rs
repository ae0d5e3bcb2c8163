//! The alert sweep (the retention function's `alerts` schedule on AWS, a loop in `arca
//! server`): due retries of every org's deliveries, scheduled runs that never happened,
//! and agents silent for longer than a channel allows.

use super::*;

impl ControlPlane {
    /// Attempts again the PENDING deliveries (of every org) due at `now`, at most
    /// [`SWEEP_DELIVERIES`]; each is claimed first, so concurrent sweeps send it once.
    pub async fn deliver_due_alerts(&self, now: DateTime<Utc>) -> Result<AlertSweepReport> {
        let due = self
            .store
            .alert_deliveries_due_before_cross_tenant(now + Duration::seconds(1), &PageRequest::first(SWEEP_DELIVERIES))
            .await?;
        let mut report = AlertSweepReport::default();
        for indexed in due.items {
            // The index may lag: read the delivery itself, and skip it unless still due.
            let Some(mut delivery) = self.store.find::<AlertDelivery>(&indexed.org_id, &indexed.id).await? else {
                continue;
            };
            if delivery.status != DeliveryStatus::Pending || delivery.next_attempt_at.is_none_or(|t| t > now) {
                continue;
            }
            let expected = delivery.version;
            delivery.next_attempt_at = Some(now + Duration::seconds(CLAIM_SECONDS));
            let claimed = match self.store.update(delivery, expected).await {
                Ok(claimed) => claimed,
                Err(Error::PreconditionFailed { .. } | Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let channel = self
                .store
                .find::<AlertChannel>(&claimed.org_id, &claimed.channel_id)
                .await?;
            report.attempted += 1;
            match self.attempt(claimed, channel.as_ref(), now).await {
                Ok(d) if d.status == DeliveryStatus::Delivered => report.delivered += 1,
                Ok(_) | Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// The periodic alert run (`arca server` every minute; on AWS the retention
    /// function's `alerts` schedule): due retries, then agents silent for longer than a
    /// channel allows.
    pub async fn alert_sweep(&self) -> Result<AlertSweepReport> {
        let now = self.now();
        let mut report = self.deliver_due_alerts(now).await?;
        let channels = self.every_alert_channel().await?;
        report.disconnected = self.alert_disconnected_agents(now, &channels).await?;
        report.missed = self.alert_missed_runs(now, &channels).await?;
        Ok(report)
    }

    /// Every org's channels, sorted by org (GSI2 `ALERTCH`, one partition, to its end).
    async fn every_alert_channel(&self) -> Result<Vec<AlertChannel>> {
        let mut channels = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .alert_channels_cross_tenant(&PageRequest::after(cursor, crate::store::page::MAX_PAGE_SIZE))
                .await?;
            channels.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(channels),
            }
        }
    }

    /// Raises `schedule.missed` where a backup definition's schedule should have fired
    /// (a fire time of its policy's rows, read in the policy's timezone, between
    /// [`MISSED_RUN_LOOKBACK_MINUTES`] and [`MISSED_RUN_GRACE_MINUTES`] ago) but no
    /// scheduled job of that row was made for it: the schedule was deleted or disabled
    /// behind Arca's back, or the dispatch failed for good. Only for orgs with a channel
    /// hearing it; per definition and row the latest such fire time, once (its event id).
    /// Paused definitions, suspended policies and fire times before the definition's or
    /// the policy's last change (their schedules were re-made then) are not checked.
    async fn alert_missed_runs(&self, now: DateTime<Utc>, channels: &[AlertChannel]) -> Result<usize> {
        let mut orgs: Vec<OrgId> = channels
            .iter()
            .filter(|c| c.hears(AlertEventKind::ScheduleMissed))
            .map(|c| c.org_id)
            .collect();
        orgs.dedup();
        let mut raised = 0;
        for org in orgs {
            raised += self.alert_missed_runs_of(&org, now).await?;
        }
        Ok(raised)
    }

    /// [`Self::alert_missed_runs`] for one org: its definitions and policies (two
    /// queries), then per definition with a fire time in the window its cluster's jobs
    /// since then (GSI3, a range).
    async fn alert_missed_runs_of(&self, org: &OrgId, now: DateTime<Utc>) -> Result<usize> {
        use crate::model::backup::BackupDefinition;
        use crate::model::cron;
        use crate::model::job::JobTrigger;
        use crate::model::policy::Policy;

        let until = now - Duration::minutes(MISSED_RUN_GRACE_MINUTES);
        let from = until - Duration::minutes(MISSED_RUN_LOOKBACK_MINUTES);
        let skew = Duration::seconds(FIRE_SKEW_SECONDS);
        let definitions: Vec<BackupDefinition> = self
            .store
            .list_all::<BackupDefinition>(org)
            .await?
            .into_iter()
            .filter(|d| !d.spec.paused && d.spec.policy_id.is_some())
            .collect();
        if definitions.is_empty() {
            return Ok(0);
        }
        let policies = self.store.list_all::<Policy>(org).await?;
        let mut raised = 0;
        for def in definitions {
            let Some(policy) = policies.iter().find(|p| Some(p.id) == def.spec.policy_id) else {
                continue;
            };
            if policy.spec.suspended {
                continue;
            }
            let def_id = def.id.to_string();
            // A policy Arca accepted always has schedules; one that no longer parses is
            // the reconciler's to report, not a missed run.
            let Ok(schedules) = crate::model::schedule::schedules_for(*org, &def_id, &policy.spec, false) else {
                continue;
            };
            let changed = def.updated_at.max(policy.updated_at);
            // (row, fire time, the row's next fire time after it)
            let mut fires = Vec::new();
            for schedule in &schedules {
                let Ok(tz) = cron::parse_timezone("timezone", &schedule.timezone) else {
                    continue;
                };
                let mut after = from.max(changed);
                for _ in 0..MAX_FIRES_CHECKED {
                    let Some(fire) = cron::next_fire(&schedule.cron, tz, after)? else {
                        break;
                    };
                    if fire > until {
                        break;
                    }
                    let next = cron::next_fire(&schedule.cron, tz, fire)?.unwrap_or(DateTime::<Utc>::MAX_UTC);
                    fires.push((&schedule.input, fire, next));
                    after = fire;
                }
            }
            let Some(earliest) = fires.iter().map(|(_, fire, _)| *fire).min() else {
                continue;
            };
            let jobs = self
                .store
                .jobs_of_cluster_since(org, &def.spec.cluster_id, earliest - skew, |j| {
                    j.definition_id == Some(def.id) && j.trigger == JobTrigger::Scheduled
                })
                .await?;
            // A fire time is answered by a scheduled job of its row made from just before
            // it until just before the row's next one.
            let missed: Vec<_> = fires
                .iter()
                .filter(|(input, fire, next)| {
                    !jobs.iter().any(|j| {
                        j.rule == Some(input.rule) && j.created_at >= *fire - skew && j.created_at < *next - skew
                    })
                })
                .collect();
            for schedule in &schedules {
                let of_row: Vec<_> = missed
                    .iter()
                    .filter(|(input, ..)| input.rule == schedule.input.rule)
                    .collect();
                let Some((input, fire, _)) = of_row.iter().max_by_key(|(_, fire, _)| *fire) else {
                    continue;
                };
                let reason = format!(
                    "no scheduled job was made for it within {MISSED_RUN_GRACE_MINUTES} minutes ({} such fire \
                     time(s) of this schedule row in the last {} minutes); check the definition's schedule \
                     (the retention run repairs a drifted one) and the dispatch function's dead letters",
                    of_row.len(),
                    MISSED_RUN_LOOKBACK_MINUTES + MISSED_RUN_GRACE_MINUTES,
                );
                if self.raise_missed_run(input, *fire, &reason).await? > 0 {
                    raised += 1;
                }
            }
        }
        Ok(raised)
    }

    /// Raises `agent.disconnected` for each agent (once connected) not heard from for
    /// longer than a channel's `disconnectedAfterMinutes`, once per silence and channel.
    /// Reads the channels of every org (GSI2, one partition) and, for orgs with a channel
    /// that hears it, their agents' state items (one per cluster).
    async fn alert_disconnected_agents(&self, now: DateTime<Utc>, channels: &[AlertChannel]) -> Result<usize> {
        let mut raised = 0;
        let mut agents_of: Option<(OrgId, Vec<AgentState>)> = None;
        for channel in channels {
            if !channel.hears(AlertEventKind::AgentDisconnected) {
                continue;
            }
            // Channels are sorted by org: an org's agents are read once.
            if agents_of.as_ref().is_none_or(|(org, _)| *org != channel.org_id) {
                let agents = self.store.list_all::<AgentState>(&channel.org_id).await?;
                agents_of = Some((channel.org_id, agents));
            }
            let Some((_, agents)) = &agents_of else {
                continue;
            };
            let limit = Duration::minutes(i64::from(channel.spec.disconnected_after_minutes));
            for agent in agents {
                let Some(last) = agent.last_heartbeat_at else {
                    continue;
                };
                if now - last <= limit {
                    continue;
                }
                let event = AlertEvent::new(
                    AlertEventKind::AgentDisconnected,
                    format_args!("{}:{}@{}", agent.cluster_id, last.timestamp(), channel.id),
                    agent.org_id,
                    now,
                    format!(
                        "the agent of cluster {} has not been heard from since {}",
                        agent.cluster_id,
                        last.to_rfc3339()
                    ),
                )
                .with_reason(Some(&format!(
                    "no heartbeat for more than {} minutes",
                    channel.spec.disconnected_after_minutes
                )))
                .with_subject(AlertSubject {
                    cluster_id: Some(agent.cluster_id),
                    ..Default::default()
                });
                raised += self.raise_to(event, vec![channel.clone()]).await?.len();
            }
        }
        Ok(raised)
    }
}
