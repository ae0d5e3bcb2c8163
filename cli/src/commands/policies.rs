//! Policies: schedule rows (`CRON=RETAIN_DAYS[:KEEP_LAST]`) and their timezone; a
//! policy in use cannot go (its users are named).

use serde_json::{Value, json};

use super::{Kind, connect, delete_entity, done, list_entities, set, show_entity, update_entity};
use crate::CliError;
use crate::args::{Global, PoliciesCmd};
use crate::output::{Column, at};

pub(super) const POLICY: Kind = Kind {
    path: "/v1/policies",
    prefix: "pol_",
    noun: "policy",
    named: true,
    columns: POLICY_COLUMNS,
    body: &["name", "timezone", "schedules", "suspended"],
};

fn schedules_text(v: &Value) -> String {
    let Some(rows) = v.get("schedules").and_then(Value::as_array) else {
        return String::new();
    };
    rows.iter()
        .map(|r| {
            let keep = match r.get("keepLast") {
                Some(Value::Number(n)) => format!(":{n}"),
                _ => String::new(),
            };
            format!("{}={}{keep}", at(r, "/cron"), at(r, "/retainDays"))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn used_by_text(v: &Value) -> String {
    v.get("usedBy")
        .and_then(Value::as_array)
        .map(|refs| refs.iter().map(|r| at(r, "/name")).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

const POLICY_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("NAME", "/name"),
    Column::at("TIMEZONE", "/timezone"),
    Column::with("SCHEDULES (CRON=DAYS[:KEEP])", schedules_text),
    Column::at("SUSPENDED", "/suspended"),
    Column::with("USED BY", used_by_text),
];

/// `CRON=RETAIN_DAYS[:KEEP_LAST]` as the API's schedule row. The cron has spaces but no
/// `=`, so the last `=` splits.
pub fn parse_schedule(row: &str) -> Result<Value, CliError> {
    let bad = |why: &str| {
        CliError::usage(format!(
            "--schedule {row:?}: {why} (expected \"CRON=RETAIN_DAYS[:KEEP_LAST]\")"
        ))
    };
    let (cron, retention) = row.rsplit_once('=').ok_or_else(|| bad("no '='"))?;
    let cron = cron.trim();
    if cron.is_empty() {
        return Err(bad("empty cron"));
    }
    let (days, keep) = match retention.split_once(':') {
        Some((d, k)) => (d, Some(k)),
        None => (retention, None),
    };
    let days: u32 = days.trim().parse().map_err(|_| bad("RETAIN_DAYS is not a number"))?;
    let mut doc = json!({ "cron": cron, "retainDays": days });
    if let Some(k) = keep {
        let k: u32 = k.trim().parse().map_err(|_| bad("KEEP_LAST is not a number"))?;
        doc["keepLast"] = json!(k);
    }
    Ok(doc)
}

pub(super) async fn policies(g: &Global, cmd: PoliciesCmd) -> Result<(), CliError> {
    // Parse before connecting: a malformed row is a usage error whatever the server says.
    if let PoliciesCmd::Create { schedules, .. } | PoliciesCmd::Update { schedules, .. } = &cmd {
        for s in schedules {
            parse_schedule(s)?;
        }
    }
    let client = connect(g)?;
    match cmd {
        PoliciesCmd::List => list_entities(g, &client, POLICY).await?,
        PoliciesCmd::Get { policy } => show_entity(g, &client, POLICY, &policy).await?,
        PoliciesCmd::Update {
            policy,
            name,
            schedules,
            timezone,
            suspended,
        } => {
            let rows = if schedules.is_empty() {
                None
            } else {
                Some(Value::Array(
                    schedules
                        .iter()
                        .map(|s| parse_schedule(s))
                        .collect::<Result<Vec<_>, _>>()?,
                ))
            };
            update_entity(g, &client, POLICY, &policy, |b| {
                set(b, "name", name.map(Value::from));
                set(b, "timezone", timezone.map(Value::from));
                set(b, "schedules", rows);
                set(b, "suspended", suspended.map(Value::from));
                Ok(())
            })
            .await?;
        }
        PoliciesCmd::Create {
            name,
            schedules,
            timezone,
            suspended,
        } => {
            let rows = schedules
                .iter()
                .map(|s| parse_schedule(s))
                .collect::<Result<Vec<_>, _>>()?;
            let body = json!({ "name": name, "timezone": timezone, "schedules": rows, "suspended": suspended });
            let policy = client.post(POLICY.path, &body).await?.body;
            done(
                g.output,
                &policy,
                format!("policy {name} created ({})", at(&policy, "/id")),
            )?;
        }
        PoliciesCmd::Delete { policy } => delete_entity(&client, POLICY, &policy, "").await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schedule_rows_parse_with_spaces_in_the_cron() {
        assert_eq!(
            parse_schedule("0 * * * *=7").unwrap(),
            json!({"cron": "0 * * * *", "retainDays": 7})
        );
        assert_eq!(
            parse_schedule("30 2 * * 1=30:4").unwrap(),
            json!({"cron": "30 2 * * 1", "retainDays": 30, "keepLast": 4})
        );
        for bad in ["0 * * * *", "=7", "0 * * * *=x", "0 * * * *=7:y"] {
            assert_eq!(parse_schedule(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }
}
