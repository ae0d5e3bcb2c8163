//! Alerts: an org's channels (CRUD), raising an event (one delivery per channel that
//! hears it, written with the event's marker in one transaction: an outbox), attempting
//! deliveries through the `ports::notify` senders, the retries of the alert sweep and
//! the delivery log.
//!
//! Delivery is at least once, and in practice once: whoever sends an attempt first
//! claims the delivery by moving its `nextAttemptAt` past the attempt's timeout (the
//! raiser creates it claimed), so the sweep never sends what another caller is sending.

use chrono::{DateTime, Duration, Utc};

use super::ControlPlane;
use crate::ids::{AlertChannelId, OrgId};
use crate::model::agent::AgentState;
use crate::model::alert::{
    AlertChannel, AlertDelivery, AlertEvent, AlertEventKind, AlertEventMarker, AlertSubject, AttemptOutcome,
    ChannelPatch, ChannelSpec, ChannelTarget, DELIVERY_RETENTION_DAYS, DeliveryStatus, MAX_CHANNELS, SigningSecret,
    signature_header,
};
use crate::model::auth::{Operation, Principal};
use crate::model::job::{Job, JobState, JobType};
use crate::store::Tx;
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};

mod sweep;

/// How long an attempt holds its delivery (longer than any sender's timeout), so the
/// sweep does not send it a second time meanwhile.
const CLAIM_SECONDS: i64 = 60;
/// Most deliveries one sweep attempts (the rest wait for the next run).
pub const SWEEP_DELIVERIES: u32 = 100;
/// A scheduled run with no job this long after its fire time was missed (EventBridge
/// fires within a minute and retries a failed dispatch for a while; this is well past both).
pub const MISSED_RUN_GRACE_MINUTES: i64 = 15;
/// How far before the grace the sweep looks for fire times (it runs every 5 minutes:
/// a few failed runs lose nothing).
const MISSED_RUN_LOOKBACK_MINUTES: i64 = 60;
/// A job created this long before its fire time still answers it (clocks differ).
const FIRE_SKEW_SECONDS: i64 = 60;
/// Most fire times of one schedule row one sweep checks (a cron every minute has 60 in
/// the window).
const MAX_FIRES_CHECKED: usize = 60;
/// The message of the refusal of an email channel where no email sender is wired; the
/// API answers it as `email_needs_ses`.
pub const EMAIL_NEEDS_SES: &str = "email channels need SES: the deployment sets ARCA_ALERTS_FROM (the stack's \
     AlertsFromAddress), an address SES has verified; until then use a webhook channel";

/// `GET /v1/alerts/deliveries`'s filters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeliveryFilter {
    pub channel_id: Option<AlertChannelId>,
    pub status: Option<DeliveryStatus>,
}

/// What one alert sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSweepReport {
    /// Deliveries attempted again (due retries).
    pub attempted: usize,
    pub delivered: usize,
    /// `agent.disconnected` events raised.
    pub disconnected: usize,
    /// `schedule.missed` events raised.
    pub missed: usize,
}

impl ControlPlane {
    // ---- channels ----------------------------------------------------------------------

    /// Creates a channel; a webhook gets a signing secret, returned here once.
    pub async fn create_alert_channel(
        &self,
        p: &Principal,
        spec: ChannelSpec,
    ) -> Result<(AlertChannel, Option<SigningSecret>)> {
        p.require(Operation::CreateAlertChannel)?;
        self.check_channel_spec(&spec)?;
        // A bound, not a race-proof count: two concurrent creates may pass it together.
        if self.store.list_all::<AlertChannel>(&p.org_id).await?.len() >= MAX_CHANNELS {
            return Err(Error::invalid(
                "channels",
                format!("an org has at most {MAX_CHANNELS} alert channels; delete one first"),
            ));
        }
        let secret = match spec.target {
            ChannelTarget::Webhook { .. } => Some(SigningSecret::generate()?),
            ChannelTarget::Email { .. } => None,
        };
        let now = self.now();
        let channel = AlertChannel {
            id: AlertChannelId::new(),
            org_id: p.org_id,
            spec,
            signing_secret: secret.clone(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        Ok((self.store.create(channel).await?, secret))
    }

    fn check_channel_spec(&self, spec: &ChannelSpec) -> Result<()> {
        spec.validate()?;
        if matches!(spec.target, ChannelTarget::Email { .. }) && self.email.is_none() {
            return Err(Error::invalid("kind", EMAIL_NEEDS_SES));
        }
        Ok(())
    }

    /// The org's channels (at most [`MAX_CHANNELS`], one page).
    pub async fn list_alert_channels(&self, p: &Principal, page: &PageRequest) -> Result<Listing<AlertChannel>> {
        p.require(Operation::ListAlertChannels)?;
        self.store.list(&p.org_id, page).await
    }

    pub async fn get_alert_channel(&self, p: &Principal, id: &AlertChannelId) -> Result<AlertChannel> {
        p.require(Operation::GetAlertChannel)?;
        self.store.get(&p.org_id, id).await
    }

    /// Changes the fields `patch` sets; a channel's kind never changes (its secret, or
    /// its absence, goes with the kind).
    pub async fn update_alert_channel(
        &self,
        p: &Principal,
        id: &AlertChannelId,
        patch: ChannelPatch,
        expected_version: Option<u64>,
    ) -> Result<AlertChannel> {
        p.require(Operation::UpdateAlertChannel)?;
        let current = self.store.get::<AlertChannel>(&p.org_id, id).await?;
        let spec = patch.applied_to(&current.spec)?;
        self.check_channel_spec(&spec)?;
        let now = self.now();
        self.update_record::<AlertChannel>(&p.org_id, id, expected_version, |c| {
            c.spec = spec.clone();
            c.updated_at = now;
        })
        .await
    }

    /// Deletes a channel. Its pending deliveries fail at their next attempt; the log
    /// keeps them until they expire.
    pub async fn delete_alert_channel(
        &self,
        p: &Principal,
        id: &AlertChannelId,
        expected_version: Option<u64>,
    ) -> Result<()> {
        p.require(Operation::DeleteAlertChannel)?;
        let channel = match expected_version {
            Some(v) => self.store.get_at::<AlertChannel>(&p.org_id, id, v).await?,
            None => self.store.get::<AlertChannel>(&p.org_id, id).await?,
        };
        self.store.delete::<AlertChannel>(&p.org_id, id, channel.version).await
    }

    /// Sends a `test` event to one channel (enabled or not) and returns its delivery as
    /// the first attempt left it.
    pub async fn test_alert_channel(&self, p: &Principal, id: &AlertChannelId) -> Result<AlertDelivery> {
        p.require(Operation::TestAlertChannel)?;
        let channel = self.store.get::<AlertChannel>(&p.org_id, id).await?;
        let now = self.now();
        let event = AlertEvent::new(
            AlertEventKind::Test,
            crate::ids::AlertDeliveryId::at(now.into()),
            p.org_id,
            now,
            format!("test of alert channel {}", channel.spec.name),
        );
        let mut sent = self.raise_to(event, vec![channel]).await?;
        sent.pop()
            .ok_or_else(|| Error::permanent("the test event made no delivery"))
    }

    // ---- the delivery log --------------------------------------------------------------

    /// One page of the org's deliveries, newest first. By channel it reads that
    /// channel's index; a status filter is a filtered page (at most 10 store pages).
    pub async fn list_alert_deliveries(
        &self,
        p: &Principal,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Listing<AlertDelivery>> {
        p.require(Operation::ListAlertDeliveries)?;
        let now = self.now();
        // A store without TTL (single-machine mode) keeps expired records: hidden here.
        let keep = |d: &AlertDelivery| d.expires_at > now && filter.status.is_none_or(|s| d.status == s);
        match &filter.channel_id {
            Some(channel) => {
                self.store
                    .alert_deliveries_of_channel(&p.org_id, channel, page, keep)
                    .await
            }
            None => self.store.list_where(&p.org_id, page, false, keep).await,
        }
    }

    // ---- raising -----------------------------------------------------------------------

    /// Raises `event` to every enabled channel of its org that hears its kind: writes one
    /// PENDING delivery each together with the event's marker, then attempts them. An
    /// event id raised before sends nothing (a retried report). Returns the deliveries
    /// as their first attempt left them.
    pub async fn raise_alert(&self, event: AlertEvent) -> Result<Vec<AlertDelivery>> {
        let channels: Vec<AlertChannel> = self
            .store
            .list_all::<AlertChannel>(&event.org_id)
            .await?
            .into_iter()
            .filter(|c| c.hears(event.kind))
            .collect();
        self.raise_to(event, channels).await
    }

    /// [`Self::alert_job_outcome`] where a failure to raise must not fail the caller's
    /// own work (a SKIPPED job is written already; failing its dispatch would only skip
    /// again).
    pub(in crate::control_plane) async fn alert_job_outcome_quietly(&self, job: &Job) {
        let _lost_alert = self.alert_job_outcome(job).await;
    }

    async fn raise_to(&self, event: AlertEvent, channels: Vec<AlertChannel>) -> Result<Vec<AlertDelivery>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let mut marker = AlertEventMarker {
            id: event.id.clone(),
            org_id: event.org_id,
            raised_at: now,
            deliveries: u32::try_from(channels.len()).unwrap_or(u32::MAX),
            expires_at: now + Duration::days(DELIVERY_RETENTION_DAYS),
            version: 0,
        };
        let mut deliveries: Vec<AlertDelivery> = channels
            .iter()
            .map(|c| {
                let mut d = AlertDelivery::new(c.id, event.clone(), now);
                // Claimed by this call, which attempts it next.
                d.next_attempt_at = Some(now + Duration::seconds(CLAIM_SECONDS));
                d
            })
            .collect();
        let mut tx = Tx::new();
        tx.create(&mut marker)?;
        for d in &mut deliveries {
            tx.create(d)?;
        }
        match self.store.commit(tx).await {
            Ok(()) => {}
            // The marker exists: this event was raised before.
            Err(Error::Conflict { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        let mut attempted = Vec::with_capacity(deliveries.len());
        for (delivery, channel) in deliveries.into_iter().zip(&channels) {
            match self.attempt(delivery, Some(channel), now).await {
                Ok(d) => attempted.push(d),
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(attempted)
    }

    /// Raises what a job's end says, if anything: FAILED, PARTIAL or SKIPPED (a failed
    /// repository maintenance is `storage.reclaimFailed`). The event id is the job's id
    /// and kind, so a retried report raises nothing more.
    pub(in crate::control_plane) async fn alert_job_outcome(&self, job: &Job) -> Result<()> {
        let kind = match (job.state, job.job_type) {
            (JobState::Failed, JobType::RepositoryMaintenance) => AlertEventKind::StorageReclaimFailed,
            (JobState::Failed, _) => AlertEventKind::JobFailed,
            (JobState::Partial, _) => AlertEventKind::JobPartial,
            (JobState::Skipped, _) => AlertEventKind::JobSkipped,
            _ => return Ok(()),
        };
        let name = |v: serde_json::Result<serde_json::Value>| match v {
            Ok(serde_json::Value::String(s)) => s,
            _ => String::new(),
        };
        let summary = format!(
            "{} job {} {}",
            name(serde_json::to_value(job.job_type)),
            job.id,
            name(serde_json::to_value(job.state))
        );
        let event = AlertEvent::new(
            kind,
            job.id,
            job.org_id,
            job.ended_at.unwrap_or_else(|| self.now()),
            summary,
        )
        .with_reason(job.reason.as_deref())
        .with_subject(AlertSubject {
            cluster_id: job.cluster_id,
            job_id: Some(job.id),
            definition_id: job.definition_id,
            rds_definition_id: job.rds.as_ref().and_then(|r| r.definition_id.map(|d| d.to_string())),
            cloud_account_id: job.rds.as_ref().map(|r| r.cloud_account_id),
            destination_id: job.maintenance.as_ref().map(|m| m.repository.destination_id),
        });
        self.raise_alert(event).await.map(|_| ())
    }

    /// Raises `storage.reclaimFailed` for a purge of Arca-managed storage that failed
    /// (the sweeps retry it every run; on-call hears of it once a day per repository).
    /// Quiet: the sweep reports the failure and goes on either way.
    pub(in crate::control_plane) async fn alert_purge_failed(
        &self,
        org: &OrgId,
        key: &crate::model::maintenance::RepositoryKey,
        error: &Error,
    ) {
        let now = self.now();
        let event = AlertEvent::new(
            AlertEventKind::StorageReclaimFailed,
            format_args!(
                "purge:{}:{}:{}",
                key.destination_id,
                key.cluster_id,
                now.format("%Y-%m-%d")
            ),
            *org,
            now,
            format!(
                "purging deleted cluster {}'s data from destination {} failed",
                key.cluster_id, key.destination_id
            ),
        )
        .with_reason(Some(&error.to_string()))
        .with_subject(AlertSubject {
            cluster_id: Some(key.cluster_id),
            destination_id: Some(key.destination_id),
            ..Default::default()
        });
        let _lost_alert = self.raise_alert(event).await;
    }

    /// What an inventory found about a linked account's role: refused (once a day while
    /// it is), or its stack older than this Arca's (once per version). Quiet: the
    /// inventory's own report says the same.
    pub(in crate::control_plane) async fn alert_account_findings(
        &self,
        account: &crate::model::cloud::account::CloudAccount,
        rejected: Option<&str>,
    ) {
        let now = self.now();
        let subject = AlertSubject {
            cloud_account_id: Some(account.id),
            ..Default::default()
        };
        if let Some(message) = rejected {
            let event = AlertEvent::new(
                AlertEventKind::CloudAccountRoleBroken,
                format_args!("{}:{}", account.id, now.format("%Y-%m-%d")),
                account.org_id,
                now,
                format!("the role of linked account {} does not work", account.id),
            )
            .with_reason(Some(message))
            .with_subject(subject.clone());
            let _lost_alert = self.raise_alert(event).await;
        }
        if account.update_available() {
            let from = account.role_stack_version.as_deref().unwrap_or("unknown");
            let to = crate::model::cloud::account::ROLE_STACK_VERSION;
            let event = AlertEvent::new(
                AlertEventKind::CloudAccountStackUpdate,
                format_args!("{}:{from}:{to}", account.id),
                account.org_id,
                now,
                format!("the role stack of linked account {} can be updated", account.id),
            )
            .with_reason(Some(&format!("role stack version {from}; this Arca publishes {to}")))
            .with_subject(subject);
            let _lost_alert = self.raise_alert(event).await;
        }
    }

    /// Raises `schedule.missed` for a scheduled run that did not happen at `due` (single-
    /// machine mode: the server was down; it runs once now). Once per definition, row
    /// and fire time.
    pub async fn alert_missed_run(
        &self,
        input: &crate::model::schedule::ScheduleInput,
        due: DateTime<Utc>,
    ) -> Result<()> {
        self.raise_missed_run(
            input,
            due,
            "Arca was not running at the scheduled time; the run is caught up once now",
        )
        .await
        .map(|_| ())
    }

    /// Raises `schedule.missed` for `input`'s fire time `due` (its id: definition, row
    /// and fire time, whoever finds it) with `reason`; how many deliveries it made.
    async fn raise_missed_run(
        &self,
        input: &crate::model::schedule::ScheduleInput,
        due: DateTime<Utc>,
        reason: &str,
    ) -> Result<usize> {
        let event = AlertEvent::new(
            AlertEventKind::ScheduleMissed,
            format_args!("{}:{}:{}", input.definition_id, input.rule, due.timestamp()),
            input.org_id,
            self.now(),
            format!(
                "the scheduled run of {} due at {} was missed",
                input.definition_id,
                due.to_rfc3339()
            ),
        )
        .with_reason(Some(reason))
        .with_subject(AlertSubject {
            definition_id: input.definition_id.parse().ok(),
            rds_definition_id: input
                .definition_id
                .starts_with("rdsbkp_")
                .then(|| input.definition_id.clone()),
            ..Default::default()
        });
        self.raise_alert(event).await.map(|sent| sent.len())
    }

    // ---- attempts ----------------------------------------------------------------------

    /// Sends a claimed delivery once and records how it went.
    async fn attempt(
        &self,
        mut delivery: AlertDelivery,
        channel: Option<&AlertChannel>,
        now: DateTime<Utc>,
    ) -> Result<AlertDelivery> {
        let expected = delivery.version;
        let outcome = match channel {
            Some(channel) => self.send_alert(channel, &delivery, now).await,
            None => {
                // Nothing left to send to: no point in retrying.
                delivery.attempts = crate::model::alert::MAX_ATTEMPTS - 1;
                AttemptOutcome::Error("the channel was deleted".into())
            }
        };
        delivery.record_attempt(outcome, now);
        match self.store.update(delivery, expected).await {
            Ok(d) => Ok(d),
            // Deleted by its TTL meanwhile, or changed by another attempt: theirs stands.
            Err(Error::NotFound { .. } | Error::PreconditionFailed { .. }) => {
                Err(Error::conflict("the delivery changed during its attempt"))
            }
            Err(e) => Err(e),
        }
    }

    async fn send_alert(&self, channel: &AlertChannel, delivery: &AlertDelivery, now: DateTime<Utc>) -> AttemptOutcome {
        match &channel.spec.target {
            ChannelTarget::Webhook { url } => {
                let (Some(sender), Some(secret)) = (&self.webhooks, &channel.signing_secret) else {
                    return AttemptOutcome::Error("this deployment sends no webhooks".into());
                };
                let body = match delivery.event.body() {
                    Ok(body) => body,
                    Err(e) => return AttemptOutcome::Error(e.to_string()),
                };
                let headers = vec![
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                    ("User-Agent".to_owned(), "Arca-Alerts/1".to_owned()),
                    (
                        "Arca-Signature".to_owned(),
                        signature_header(secret, now.timestamp(), &body),
                    ),
                    ("Arca-Event-Id".to_owned(), delivery.event.id.clone()),
                    ("Arca-Event-Type".to_owned(), delivery.event.kind.name()),
                    ("Arca-Delivery-Id".to_owned(), delivery.id.to_string()),
                ];
                match sender.post(url, &headers, &body).await {
                    Ok(status) => AttemptOutcome::Answered(status),
                    Err(e) => AttemptOutcome::Error(e),
                }
            }
            ChannelTarget::Email { recipients } => {
                let Some(sender) = &self.email else {
                    return AttemptOutcome::Error(EMAIL_NEEDS_SES.into());
                };
                let (subject, body) = delivery.event.email(self.config.console_url.as_deref());
                match sender.send(recipients, &subject, &body).await {
                    Ok(()) => AttemptOutcome::Sent,
                    Err(e) => AttemptOutcome::Error(e),
                }
            }
        }
    }
}
