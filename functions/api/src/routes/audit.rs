//! The org's audit trail: read only. There is no route that changes or deletes a
//! record; they expire after the org's `auditRetentionDays` (`PUT /v1/org`).

use arca_core::ids::ApiKeyId;
use arca_core::model::audit::{AuditFilter, AuditRecord};
use arca_core::model::auth::Operation as Op;
use arca_core::store::page::{Listing, PageRequest};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Page, role_doc};
use crate::error::ApiResult;
use crate::extract::{KeyCall, Query};
use crate::problem::Problem;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only the calls of this key (`key_<ULID>`).
    #[param(value_type = Option<String>)]
    pub key_id: Option<ApiKeyId>,
    /// Only this operation, by its stable name (`createApiKey`, `updateCluster`, ...).
    #[param(value_type = Option<String>)]
    pub operation: Option<Op>,
    /// Only calls at or after this time (RFC 3339).
    #[param(value_type = Option<String>)]
    pub since: Option<DateTime<Utc>>,
    /// Only calls before this time (RFC 3339).
    #[param(value_type = Option<String>)]
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The org's audit records, newest first: every mutating API-key call (refusals
/// included) with when, which key (id and name), its role, the operation, the route,
/// the target ids and the status. Never a secret.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    description = role_doc(Op::ListAuditRecords, "Newest first; a filtered page reads at most 10 store pages, so a page may be short while `nextCursor` is set."),
    params(AuditParams),
    responses((status = 200, body = Page), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_audit_records(call: KeyCall, Query(q): Query<AuditParams>) -> ApiResult<Json<Listing<AuditRecord>>> {
    let (cp, p) = call.require(Op::ListAuditRecords)?;
    let filter = AuditFilter {
        key_id: q.key_id,
        operation: q.operation,
        since: q.since,
        until: q.until,
    };
    let page = PageRequest {
        cursor: q.cursor,
        limit: q.limit,
    };
    Ok(Json(cp.list_audit_records(p, &filter, &page).await?))
}
