//! Alerts over any item store: raising writes one delivery per channel that hears the
//! event and nothing the second time; the delivery log reads through the channel index
//! (GSI3) and the status filter; retries come from the due index (GSI2 `ALERTDUE`) only
//! when due, and a delivery leaves that index once DELIVERED or FAILED. The sender here
//! records what it is asked to post (the HTTP side is tested over a real socket in
//! `functions/api/tests/alerts.rs`); the item store is the adapter under test.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Duration;

use crate::control_plane::{ControlPlane, DeliveryFilter};
use crate::ids::AlertChannelId;
use crate::model::alert::{
    AlertDelivery, AlertEvent, AlertEventKind, ChannelSpec, ChannelTarget, DeliveryStatus, MAX_ATTEMPTS,
    verify_signature,
};
use crate::model::auth::Principal;
use crate::ports::item_store::ItemStore;
use crate::ports::notify::WebhookSender;
use crate::store::page::PageRequest;

use crate::testing::*;

/// One post the sender was asked to make: (url, headers, body).
type Post = (String, Vec<(String, String)>, Vec<u8>);

/// Answers each post with the next scripted status (204 once the script is spent) and
/// keeps the posts.
#[derive(Default)]
struct ScriptedSender {
    answers: Mutex<VecDeque<u16>>,
    posts: Mutex<Vec<Post>>,
}

#[async_trait]
impl WebhookSender for ScriptedSender {
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Result<u16, String> {
        self.posts
            .lock()
            .expect("posts")
            .push((url.to_owned(), headers.to_vec(), body.to_vec()));
        Ok(self.answers.lock().expect("answers").pop_front().unwrap_or(204))
    }
}

fn webhook(name: &str, url: &str, events: Vec<AlertEventKind>) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        target: ChannelTarget::Webhook { url: url.into() },
        events,
        enabled: true,
        disconnected_after_minutes: 30,
    }
}

/// The org's deliveries that pass `filter`, newest first (one page).
async fn log(cp: &ControlPlane, p: &Principal, filter: DeliveryFilter) -> Vec<AlertDelivery> {
    cp.list_alert_deliveries(p, &filter, &PageRequest::first(50))
        .await
        .expect("delivery log")
        .items
}

/// The log of one channel (through its index).
async fn log_of_channel(cp: &ControlPlane, p: &Principal, channel: AlertChannelId) -> Vec<AlertDelivery> {
    let filter = DeliveryFilter {
        channel_id: Some(channel),
        status: None,
    };
    log(cp, p, filter).await
}

/// The log of the deliveries in `status`.
async fn log_in(cp: &ControlPlane, p: &Principal, status: DeliveryStatus) -> Vec<AlertDelivery> {
    let filter = DeliveryFilter {
        channel_id: None,
        status: Some(status),
    };
    log(cp, p, filter).await
}

pub async fn alerts_outbox_retries_and_idempotence(items: Arc<dyn ItemStore>) {
    let sender = Arc::new(ScriptedSender::default());
    sender.answers.lock().expect("answers").extend([500, 204]);
    let cp = contract_plane(items, CONTRACT_NOW_SECS).with_alert_senders(sender.clone(), None);
    let (p, _, _) = new_org(&cp, "alerts").await;
    let (failures, secret) = cp
        .create_alert_channel(
            &p,
            webhook(
                "failures",
                "https://hooks.example.com/f",
                vec![AlertEventKind::JobFailed],
            ),
        )
        .await
        .expect("channel");
    let secret = secret.expect("a webhook has a signing secret");
    let (skips, _) = cp
        .create_alert_channel(
            &p,
            webhook("skips", "https://hooks.example.com/s", vec![AlertEventKind::JobSkipped]),
        )
        .await
        .expect("channel");
    let t = now();

    // One delivery, to the channel that hears it, attempted at once (the receiver: 500).
    let event = AlertEvent::new(AlertEventKind::JobFailed, "job_1", p.org_id, t, "backup failed")
        .with_reason(Some("hook failed"));
    let raised = cp.raise_alert(event.clone()).await.expect("raise");
    assert_eq!(raised.len(), 1, "{raised:?}");
    let first = &raised[0];
    assert_eq!(
        (first.channel_id, first.status, first.attempts),
        (failures.id, DeliveryStatus::Pending, 1)
    );
    assert_eq!(first.last_status, Some(500));
    assert_eq!(first.next_attempt_at, Some(t + Duration::minutes(1)));
    {
        let posts = sender.posts.lock().expect("posts");
        assert_eq!(posts.len(), 1);
        let (url, headers, body) = &posts[0];
        assert_eq!(url, "https://hooks.example.com/f");
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert!(verify_signature(
            secret.expose(),
            &header("Arca-Signature"),
            body,
            t.timestamp()
        ));
        assert_eq!(header("Arca-Event-Id"), "job.failed:job_1");
        assert_eq!(header("Arca-Delivery-Id"), first.id.to_string());
    }
    // Raised again (a retried report): nothing written, nothing sent.
    assert!(cp.raise_alert(event).await.expect("raise again").is_empty());
    assert_eq!(sender.posts.lock().expect("posts").len(), 1);

    // The log: by channel through its index, by status, the other channel empty.
    let by_channel = log_of_channel(&cp, &p, failures.id).await;
    assert_eq!(by_channel.iter().map(|d| d.id).collect::<Vec<_>>(), vec![first.id]);
    assert!(log_of_channel(&cp, &p, skips.id).await.is_empty());
    assert_eq!(log_in(&cp, &p, DeliveryStatus::Pending).await.len(), 1);
    assert!(log_in(&cp, &p, DeliveryStatus::Delivered).await.is_empty());

    // Not due yet; a minute on, retried from the due index and delivered (204).
    cp.deliver_due_alerts(t + Duration::seconds(30)).await.expect("sweep");
    assert_eq!(sender.posts.lock().expect("posts").len(), 1, "not before its time");
    cp.deliver_due_alerts(t + Duration::seconds(61)).await.expect("sweep");
    let d = cp
        .store()
        .get::<AlertDelivery>(&p.org_id, &first.id)
        .await
        .expect("delivery");
    assert_eq!(
        (d.status, d.attempts, d.last_status),
        (DeliveryStatus::Delivered, 2, Some(204))
    );
    assert_eq!(sender.posts.lock().expect("posts").len(), 2);
    // Delivered: out of the due index, never sent again.
    cp.deliver_due_alerts(t + Duration::days(2)).await.expect("sweep");
    assert_eq!(sender.posts.lock().expect("posts").len(), 2);

    // A receiver that always fails: retried on the backoff schedule, then FAILED for good.
    sender
        .answers
        .lock()
        .expect("answers")
        .extend([503; MAX_ATTEMPTS as usize]);
    let event = AlertEvent::new(AlertEventKind::JobSkipped, "job_2", p.org_id, t, "backup skipped");
    let raised = cp.raise_alert(event).await.expect("raise");
    assert_eq!(raised.len(), 1);
    let id = raised[0].id;
    let mut at = t;
    for attempt in 2..=MAX_ATTEMPTS {
        let d = cp.store().get::<AlertDelivery>(&p.org_id, &id).await.expect("delivery");
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, attempt - 1));
        let due = d.next_attempt_at.expect("a pending delivery is due sometime");
        cp.deliver_due_alerts(due - Duration::seconds(2)).await.expect("sweep");
        assert_eq!(
            cp.store()
                .get::<AlertDelivery>(&p.org_id, &id)
                .await
                .expect("delivery")
                .attempts,
            attempt - 1,
            "attempt {attempt} not before {due}"
        );
        at = due + Duration::seconds(1);
        cp.deliver_due_alerts(at).await.expect("sweep");
    }
    let d = cp.store().get::<AlertDelivery>(&p.org_id, &id).await.expect("delivery");
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at),
        (DeliveryStatus::Failed, MAX_ATTEMPTS, None)
    );
    assert_eq!(d.last_error.as_deref(), Some("the receiver answered HTTP 503"));
    cp.deliver_due_alerts(at + Duration::days(1)).await.expect("sweep");
    assert_eq!(
        cp.store()
            .get::<AlertDelivery>(&p.org_id, &id)
            .await
            .expect("delivery")
            .attempts,
        MAX_ATTEMPTS,
        "a FAILED delivery is not attempted again"
    );
    assert_eq!(log_in(&cp, &p, DeliveryStatus::Failed).await.len(), 1);
}

/// The alert sweep's missed-run check (`schedule.missed` where no dispatch happened, as
/// on AWS when a schedule was lost): on the default hourly policy, with definitions made
/// at 00:01 and the sweep at 02:20, the 02:00 fire time is checked (the window is 01:05
/// to 02:05). The definition no job answered raises once, however often the sweep runs;
/// the one whose scheduled job was made at 02:00:30 does not; a paused one does not; nor
/// does one changed after its fire time (its schedules were made again then). Only the
/// org's channel that hears `schedule.missed` gets it.
pub async fn missed_runs_of_the_alert_sweep(items: Arc<dyn ItemStore>) {
    let at = |minutes: u64, seconds: u64| contract_plane(items.clone(), CONTRACT_NOW_SECS + minutes * 60 + seconds);
    let cp = at(1, 0);
    let (p, _, hourly) = new_org(&cp, "missed").await;
    let dest = cp.create_destination(&p, s3("d")).await.expect("destination");
    let cluster = register(&cp, &p, "c").await.cluster;
    let spec = |name: &str| definition(cluster.id, Some(hourly.id), Some(dest.id), name);
    let missed = create_definition(&cp, &p, spec("missed")).await;
    let answered = create_definition(&cp, &p, spec("answered")).await;
    let paused = create_definition(&cp, &p, spec("paused")).await;
    cp.pause_backup_definition(&p, &paused.id, None).await.expect("pause");
    let changed = create_definition(&cp, &p, spec("changed")).await;
    let sender = Arc::new(ScriptedSender::default());
    let (hears, _) = cp
        .create_alert_channel(
            &p,
            webhook(
                "missed",
                "https://hooks.example.com/m",
                vec![AlertEventKind::ScheduleMissed],
            ),
        )
        .await
        .expect("channel");
    cp.create_alert_channel(
        &p,
        webhook(
            "failures",
            "https://hooks.example.com/f",
            vec![AlertEventKind::JobFailed],
        ),
    )
    .await
    .expect("channel");

    // 02:00:30: the schedule of `answered` fires (its cluster has no agent yet, so the
    // job is SKIPPED: a dispatch all the same).
    let input = |d: &crate::model::backup::BackupDefinition| crate::model::schedule::ScheduleInput {
        org_id: p.org_id,
        definition_id: d.id.to_string(),
        rule: 0,
    };
    at(120, 30)
        .dispatch_scheduled(&input(&answered))
        .await
        .expect("dispatch");
    // 02:10: `changed` is edited after its fire time.
    let late = at(130, 0);
    let current = late
        .get_backup_definition(&p, &changed.id)
        .await
        .expect("get")
        .definition;
    let mut edited = current.spec.clone();
    edited.description = "edited".into();
    late.update_backup_definition(&p, &changed.id, edited, current.version)
        .await
        .expect("edit");

    let sweeper = at(140, 0).with_alert_senders(sender.clone(), None);
    let report = sweeper.alert_sweep().await.expect("sweep");
    let fire = chrono::DateTime::from_timestamp(CONTRACT_NOW_SECS as i64 + 2 * 3600, 0).expect("02:00");
    let sent = log_of_channel(&sweeper, &p, hears.id).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(report.missed, 1, "{report:?}");
    let event = &sent[0].event;
    assert_eq!(event.kind, AlertEventKind::ScheduleMissed);
    assert_eq!(
        event.id,
        format!("schedule.missed:{}:0:{}", missed.id, fire.timestamp())
    );
    assert_eq!(event.subject.definition_id, Some(missed.id));
    assert!(
        event.reason.as_deref().is_some_and(|r| r.contains("no scheduled job")),
        "{event:?}"
    );
    assert_eq!(sent[0].status, DeliveryStatus::Delivered);
    assert_eq!(sender.posts.lock().expect("posts").len(), 1);

    // Again, and a few minutes later: the same fire time, raised already.
    for minutes in [140, 145] {
        let again = at(minutes, 0).with_alert_senders(sender.clone(), None);
        assert_eq!(again.alert_sweep().await.expect("sweep").missed, 0);
    }
    assert_eq!(log_of_channel(&sweeper, &p, hears.id).await.len(), 1);
    assert_eq!(sender.posts.lock().expect("posts").len(), 1);
}
