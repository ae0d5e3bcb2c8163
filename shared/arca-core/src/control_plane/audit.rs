//! The audit trail: the API records each mutating API-key call here, and admins read it.
//! Records are only ever created: no method updates or deletes one; the store's TTL
//! removes them after the org's `auditRetentionDays`.

use std::sync::Mutex;

use chrono::Duration;

use super::ControlPlane;
use crate::Result;
use crate::ids::AuditRecordId;
use crate::model::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::model::auth::{Operation, Principal};
use crate::model::org::Org;
use crate::store::page::{Listing, PageRequest};

/// Audit ids minted by this process within one millisecond still sort in call order.
static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

fn audit_id(at: std::time::SystemTime) -> AuditRecordId {
    let monotonic = IDS
        .lock()
        .ok()
        .and_then(|mut generator| generator.generate_from_datetime(at).ok());
    monotonic.map_or_else(|| AuditRecordId::at(at), AuditRecordId::from_ulid)
}

impl ControlPlane {
    /// Records one call of `org`'s (the API's audit layer calls it after answering): reads
    /// the org for its retention, writes `AUDIT#<ulid>` with that TTL.
    pub async fn record_audit(&self, org: &crate::ids::OrgId, entry: AuditEntry) -> Result<AuditRecord> {
        let retention = self.store.get::<Org>(org, org).await?.audit_retention_days;
        let at = self.now();
        let record = AuditRecord {
            id: audit_id(at.into()),
            org_id: *org,
            at,
            call: entry.bounded(),
            expires_at: at + Duration::days(i64::from(retention)),
            version: 0,
        };
        self.store.create(record).await
    }

    /// One page of the org's audit records, newest first, that pass `filter` (admin). A
    /// filtered page, like the jobs': at most 10 store queries per call.
    pub async fn list_audit_records(
        &self,
        p: &Principal,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Listing<AuditRecord>> {
        p.require(Operation::ListAuditRecords)?;
        let now = self.now();
        self.store
            .list_where(&p.org_id, page, false, |r: &AuditRecord| filter.keeps(r, now))
            .await
    }
}
