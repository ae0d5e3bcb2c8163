//! `arca audit list`: the org's audit trail, newest first (admin keys only).

use serde_json::Value;

use super::org::API_KEY;
use super::{connect, emit, resolve_opt, with_query};
use crate::CliError;
use crate::args::{AuditCmd, Global};
use crate::client::{Client, encode};
use crate::output::{Column, render_list, text};

const AUDIT_PATH: &str = "/v1/audit";
/// The API's largest page.
const MAX_PAGE: usize = 200;

const AUDIT_COLUMNS: &[Column] = &[
    Column::at("AT", "/at"),
    Column::at("KEY", "/keyName"),
    Column::at("KEY ID", "/keyId"),
    Column::at("ROLE", "/role"),
    Column::at("OPERATION", "/operation"),
    Column::at("METHOD", "/method"),
    Column::at("ROUTE", "/route"),
    Column::with("TARGETS", targets),
    Column::at("STATUS", "/status"),
];

/// The target ids, comma-separated.
fn targets(record: &Value) -> String {
    record
        .get("targetIds")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().map(text).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

pub(super) async fn audit(g: &Global, cmd: AuditCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        AuditCmd::List {
            key,
            operation,
            since,
            until,
            limit,
        } => {
            let path = with_query(
                AUDIT_PATH,
                &[
                    ("keyId", resolve_opt(&client, API_KEY, key.as_deref()).await?),
                    ("operation", operation),
                    ("since", since),
                    ("until", until),
                ],
            );
            let records = newest(&client, &path, limit).await?;
            emit(&render_list(g.output, &records, AUDIT_COLUMNS)?);
        }
    }
    Ok(())
}

/// Up to `limit` records of `path`, page after page, newest first.
pub(super) async fn newest(client: &Client, path: &str, limit: usize) -> Result<Vec<Value>, CliError> {
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    while records.len() < limit {
        let sep = if path.contains('?') { '&' } else { '?' };
        let size = (limit - records.len()).min(MAX_PAGE);
        let mut page_path = format!("{path}{sep}limit={size}");
        if let Some(c) = &cursor {
            page_path.push_str(&format!("&cursor={}", encode(c)));
        }
        let page = client.get(&page_path).await?.body;
        if let Some(Value::Array(batch)) = page.get("items") {
            records.extend(batch.iter().take(limit - records.len()).cloned());
        }
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::output::Format;

    fn record() -> Value {
        json!({
            "id": "aud_01ARZ3NDEKTSV4RRFFQ69G5FAV", "orgId": "org_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "at": "2026-12-07T09:00:00Z", "keyId": "key_01ARZ3NDEKTSV4RRFFQ69G5FAV", "keyName": "ci",
            "role": "admin", "operation": "beginPurge", "method": "POST",
            "route": "/v1/destinations/{id}/repositories/{clusterId}/purge",
            "targetIds": ["dst_1", "cl_2"], "status": 403, "expiresAt": "2027-12-07T09:00:00Z", "version": 1
        })
    }

    #[test]
    fn a_record_is_one_table_row_with_its_targets_joined() {
        let out = render_list(Format::Table, &[record()], AUDIT_COLUMNS).unwrap();
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        for column in ["AT", "KEY", "ROLE", "OPERATION", "ROUTE", "TARGETS", "STATUS"] {
            assert!(header.contains(column), "{header}");
        }
        let row = lines.next().unwrap();
        for cell in [
            "2026-12-07T09:00:00Z",
            "ci",
            "admin",
            "beginPurge",
            "POST",
            "dst_1,cl_2",
            "403",
        ] {
            assert!(row.contains(cell), "{cell} not in {row}");
        }
        assert!(lines.next().is_none());
    }

    #[test]
    fn json_output_is_the_records_as_the_api_answered() {
        let out = render_list(Format::Json, &[record()], AUDIT_COLUMNS).unwrap();
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, json!([record()]));
    }
}
