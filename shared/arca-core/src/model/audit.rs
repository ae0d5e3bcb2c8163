//! The audit trail: one record per mutating API-key call, kept per org for the org's
//! `auditRetentionDays` and then removed by the store's TTL. There is no route that
//! changes or deletes a record, so a key cannot erase its own trail.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, AuditRecordId, OrgId};
use crate::model::auth::{Operation, Role};

/// Most target ids a record names (path ids and the created resource's id).
pub const MAX_TARGETS: usize = 8;
/// Longest target id kept (a path segment; ids are ~30 characters).
pub const MAX_TARGET_CHARS: usize = 100;

/// One mutating call, as the API answered it. Never the key's secret: its id and name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: AuditRecordId,
    pub org_id: OrgId,
    /// When the call was answered.
    pub at: DateTime<Utc>,
    /// Who called, what, and how it was answered (its fields sit beside these in JSON).
    #[serde(flatten)]
    pub call: AuditEntry,
    /// After this the store removes the record (the org's retention at the time).
    pub expires_at: DateTime<Utc>,
    pub version: u64,
}

/// What the API knows about a call it records; the control plane adds id, time and
/// expiry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub key_id: ApiKeyId,
    /// The key's name when the call was made.
    pub key_name: String,
    /// The key's role when the call was made.
    pub role: Role,
    /// The operation the route performs (its stable name: `createApiKey`).
    pub operation: Operation,
    /// The HTTP method (`POST`, `PUT`, `PATCH`, `DELETE`).
    pub method: String,
    /// The route template, e.g. `/v1/backups/{id}`.
    pub route: String,
    /// The ids in the path, then the id of what the call created (when it says).
    pub target_ids: Vec<String>,
    /// The HTTP status of the answer (a refusal is recorded too: 403, 400, 409, ...).
    pub status: u16,
}

impl AuditEntry {
    /// The entry with its target ids bounded ([`MAX_TARGETS`], [`MAX_TARGET_CHARS`]),
    /// so a hostile path cannot make an item large.
    pub fn bounded(mut self) -> Self {
        self.target_ids.truncate(MAX_TARGETS);
        for id in &mut self.target_ids {
            if id.chars().count() > MAX_TARGET_CHARS {
                *id = id.chars().take(MAX_TARGET_CHARS).collect();
            }
        }
        self.route = self.route.chars().take(200).collect();
        self
    }
}

/// `GET /v1/audit`'s filters; every one that is set must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    pub key_id: Option<ApiKeyId>,
    pub operation: Option<Operation>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// Whether `record` is listed at `now`: it passes every filter and has not expired
    /// (a store without TTL, single-machine mode's, keeps expired records: they are
    /// hidden instead).
    pub fn keeps(&self, record: &AuditRecord, now: DateTime<Utc>) -> bool {
        record.expires_at > now
            && self.key_id.is_none_or(|k| record.call.key_id == k)
            && self.operation.is_none_or(|o| record.call.operation == o)
            && self.since.is_none_or(|t| record.at >= t)
            && self.until.is_none_or(|t| record.at < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: DateTime<Utc>) -> AuditRecord {
        AuditRecord {
            id: AuditRecordId::new(),
            org_id: OrgId::new(),
            at,
            call: AuditEntry {
                key_id: ApiKeyId::new(),
                key_name: "ci".into(),
                role: Role::Admin,
                operation: Operation::CreateApiKey,
                method: "POST".into(),
                route: "/v1/apikeys".into(),
                target_ids: vec![],
                status: 201,
            },
            expires_at: at + chrono::Duration::days(1),
            version: 1,
        }
    }

    #[test]
    fn filters_match_every_field_set_and_hide_expired_records() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        let r = record(t);
        let all = AuditFilter::default();
        assert!(all.keeps(&r, t));
        assert!(!all.keeps(&r, t + chrono::Duration::days(1)), "expired");
        let by = |f: AuditFilter| f.keeps(&r, t);
        assert!(by(AuditFilter {
            key_id: Some(r.call.key_id),
            ..Default::default()
        }));
        assert!(!by(AuditFilter {
            key_id: Some(ApiKeyId::new()),
            ..Default::default()
        }));
        assert!(by(AuditFilter {
            operation: Some(Operation::CreateApiKey),
            ..Default::default()
        }));
        assert!(!by(AuditFilter {
            operation: Some(Operation::DeleteApiKey),
            ..Default::default()
        }));
        assert!(by(AuditFilter {
            since: Some(t),
            until: Some(t + chrono::Duration::seconds(1)),
            ..Default::default()
        }));
        assert!(
            !by(AuditFilter {
                until: Some(t),
                ..Default::default()
            }),
            "until is exclusive"
        );
    }

    #[test]
    fn operations_have_stable_json_names() {
        assert_eq!(Operation::CreateApiKey.name(), "createApiKey");
        assert_eq!(Operation::ListAuditRecords.name(), "listAuditRecords");
        let json = serde_json::to_value(record(DateTime::UNIX_EPOCH)).unwrap();
        assert_eq!(json["operation"], "createApiKey");
        assert_eq!(json["role"], "admin");
    }

    #[test]
    fn targets_are_bounded() {
        let entry = AuditEntry {
            key_id: ApiKeyId::new(),
            key_name: "k".into(),
            role: Role::Admin,
            operation: Operation::UpdateCluster,
            method: "PUT".into(),
            route: "/v1/clusters/{id}".into(),
            target_ids: vec!["x".repeat(500); 20],
            status: 200,
        }
        .bounded();
        assert_eq!(entry.target_ids.len(), MAX_TARGETS);
        assert!(entry.target_ids.iter().all(|t| t.len() == MAX_TARGET_CHARS));
    }
}
