//! `arca alerts`: the org's alert channels (signed webhooks, email) and the delivery log
//! (docs/alerts.md).

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::audit::newest;
use super::{
    Kind, connect, delete_entity, done, emit, entity_action, list_entities, resolve_opt, show_entity, with_query,
};
use crate::CliError;
use crate::args::{AlertChannelsCmd, AlertsCmd, Global};
use crate::config;
use crate::output::{Column, at, render_list};

pub(super) const ALERT_CHANNEL: Kind = Kind {
    path: "/v1/alerts/channels",
    prefix: "ach_",
    noun: "alert channel",
    named: true,
    columns: CHANNEL_COLUMNS,
    body: &[],
};

const CHANNEL_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("NAME", "/name"),
    Column::at("KIND", "/kind"),
    Column::with("TARGET", target),
    Column::with("EVENTS", events),
    Column::at("ENABLED", "/enabled"),
];

const DELIVERY_COLUMNS: &[Column] = &[
    Column::at("CREATED", "/createdAt"),
    Column::at("ID", "/id"),
    Column::at("CHANNEL", "/channelId"),
    Column::at("EVENT", "/event/type"),
    Column::at("STATUS", "/status"),
    Column::at("ATTEMPTS", "/attempts"),
    Column::at("LAST HTTP", "/lastStatus"),
    Column::at("NEXT ATTEMPT", "/nextAttemptAt"),
    Column::at("SUBJECT", "/event/summary"),
];

fn target(channel: &Value) -> String {
    match channel.get("recipients").and_then(Value::as_array) {
        Some(to) => to.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        None => at(channel, "/url"),
    }
}

fn events(channel: &Value) -> String {
    match channel.get("events").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        _ => "all".to_owned(),
    }
}

/// The create body of `arca alerts channels create`.
fn create_body(
    name: &str,
    webhook: Option<String>,
    email: Vec<String>,
    events: Vec<String>,
    disconnected_after: Option<u32>,
) -> Result<Value, CliError> {
    let mut body = Map::new();
    body.insert("name".into(), json!(name));
    match (webhook, email.is_empty()) {
        (Some(url), true) => {
            body.insert("kind".into(), json!("webhook"));
            body.insert("url".into(), json!(url));
        }
        (None, false) => {
            body.insert("kind".into(), json!("email"));
            body.insert("recipients".into(), json!(email));
        }
        _ => {
            return Err(CliError::usage(
                "give either --webhook URL or --email ADDRESS (repeatable), not both",
            ));
        }
    }
    if !events.is_empty() {
        body.insert("events".into(), json!(events));
    }
    if let Some(minutes) = disconnected_after {
        body.insert("disconnectedAfterMinutes".into(), json!(minutes));
    }
    Ok(Value::Object(body))
}

pub(super) async fn alerts(g: &Global, cmd: AlertsCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        AlertsCmd::Channels(AlertChannelsCmd::List) => list_entities(g, &client, ALERT_CHANNEL).await?,
        AlertsCmd::Channels(AlertChannelsCmd::Get { channel }) => {
            show_entity(g, &client, ALERT_CHANNEL, &channel).await?
        }
        AlertsCmd::Channels(AlertChannelsCmd::Delete { channel }) => {
            delete_entity(&client, ALERT_CHANNEL, &channel, "").await?
        }
        AlertsCmd::Channels(AlertChannelsCmd::Test { channel }) => {
            entity_action(g, &client, ALERT_CHANNEL, &channel, "test", "sent a test event").await?
        }
        AlertsCmd::Channels(AlertChannelsCmd::Create {
            name,
            webhook,
            email,
            events,
            disconnected_after,
            secret_file,
        }) => {
            let body = create_body(&name, webhook, email, events, disconnected_after)?;
            let created = client.post(ALERT_CHANNEL.path, &body).await?.body;
            create_answer(g, &name, created, secret_file)?;
        }
        AlertsCmd::Deliveries { channel, status, limit } => {
            let path = with_query(
                "/v1/alerts/deliveries",
                &[
                    (
                        "channelId",
                        resolve_opt(&client, ALERT_CHANNEL, channel.as_deref()).await?,
                    ),
                    ("status", status.map(|s| s.to_uppercase())),
                ],
            );
            let deliveries = newest(&client, &path, limit).await?;
            emit(&render_list(g.output, &deliveries, DELIVERY_COLUMNS)?);
        }
    }
    Ok(())
}

/// Shows a created channel; a webhook's signing secret is printed (shown only now) or
/// written to `secret_file` (mode 0600).
fn create_answer(g: &Global, name: &str, created: Value, secret_file: Option<PathBuf>) -> Result<(), CliError> {
    let id = at(&created, "/id");
    let secret = created.get("signingSecret").and_then(Value::as_str).map(str::to_owned);
    match (secret, secret_file) {
        (Some(secret), Some(file)) => {
            config::write_private(&file, secret.as_bytes())?;
            let mut shown = created.clone();
            if let Value::Object(m) = &mut shown {
                m.remove("signingSecret");
            }
            done(
                g.output,
                &shown,
                format!(
                    "alert channel {name} ({id}) created; its signing secret is in {} (mode 0600)",
                    file.display()
                ),
            )
        }
        (Some(secret), None) => done(
            g.output,
            &created,
            format!("alert channel {name} ({id}) created; its signing secret (shown only now): {secret}"),
        ),
        (None, _) => done(g.output, &created, format!("alert channel {name} ({id}) created")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::output::Format;

    #[test]
    fn a_webhook_or_an_email_channel_but_not_both() {
        let body = create_body(
            "oncall",
            Some("https://h.example/x".into()),
            vec![],
            vec!["job.failed".into()],
            Some(60),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"name": "oncall", "kind": "webhook", "url": "https://h.example/x",
                   "events": ["job.failed"], "disconnectedAfterMinutes": 60})
        );
        let body = create_body("mail", None, vec!["a@b.example".into()], vec![], None).unwrap();
        assert_eq!(
            body,
            json!({"name": "mail", "kind": "email", "recipients": ["a@b.example"]})
        );
        assert!(create_body("x", Some("https://h".into()), vec!["a@b.c".into()], vec![], None).is_err());
        assert!(create_body("x", None, vec![], vec![], None).is_err());
    }

    #[test]
    fn listings_show_the_target_and_all_for_no_event_filter() {
        let ch = json!({"id": "ach_1", "name": "oncall", "kind": "webhook", "url": "https://h.example/x",
                        "events": [], "enabled": true});
        let out = render_list(Format::Table, &[ch], CHANNEL_COLUMNS).unwrap();
        let row = out.lines().nth(1).unwrap();
        for cell in ["ach_1", "oncall", "webhook", "https://h.example/x", "all", "yes"] {
            assert!(row.contains(cell), "{cell} not in {row}");
        }
        let d = json!({"createdAt": "2026-12-07T10:00:00Z", "id": "adl_1", "channelId": "ach_1",
                       "event": {"type": "job.failed", "summary": "K8S_BACKUP job job_1 FAILED"},
                       "status": "PENDING", "attempts": 1, "lastStatus": 500,
                       "nextAttemptAt": "2026-12-07T10:01:00Z"});
        let out = render_list(Format::Table, &[d], DELIVERY_COLUMNS).unwrap();
        let row = out.lines().nth(1).unwrap();
        for cell in [
            "adl_1",
            "job.failed",
            "PENDING",
            "500",
            "2026-12-07T10:01:00Z",
            "job_1 FAILED",
        ] {
            assert!(row.contains(cell), "{cell} not in {row}");
        }
    }
}
