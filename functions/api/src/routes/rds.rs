//! RDS protection: backup definitions (databases of a linked account by list or tag, a
//! policy, optional cross-region copies), run now (or copy only), pause and resume, the
//! recovery points (Arca's snapshots and copies) and restores into new instances or
//! clusters (from a snapshot, from a copy in another region, to a point in time). Runs and
//! restores answer with their job; `GET /v1/jobs/{id}` follows it.

use arca_core::control_plane::RdsRunRequest;
use arca_core::ids::RdsBackupDefinitionId;
use arca_core::model::auth::Operation as Op;
use arca_core::model::job::Job;
use arca_core::model::rds::{RdsBackupDefinition, RdsBackupDefinitionSpec, RdsRecoveryPoint, RdsRestoreSpec};
use arca_core::store::page::Listing;
use axum::Json;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Page, Tagged, role_doc};
use crate::error::ApiResult;
use crate::extract::{Body, IfMatch, KeyCall, OptionalIfMatch, PageParams, Path, Query, path_id};
use crate::problem::Problem;

#[utoipa::path(get, path = "/v1/rds-backups", tag = "rds", description = role_doc(Op::ListRdsBackupDefinitions, ""),
    params(PageParams), responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_rds_backups(
    call: KeyCall,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Listing<RdsBackupDefinition>>> {
    let (cp, p) = call.require(Op::ListRdsBackupDefinitions)?;
    Ok(Json(cp.list_rds_backup_definitions(p, &page.into()).await?))
}

/// Creates an RDS backup definition: `{name, cloudAccountId, region, databases:
/// [{identifier, cluster}] | tag: {key, value}, policyId?, paused?, copy?:
/// {destinationRegion, kmsKeyId?, deleteSourceAfterCopy?, policyId? (at most daily),
/// retainDays?}}`.
#[utoipa::path(post, path = "/v1/rds-backups", tag = "rds", description = role_doc(Op::CreateRdsBackupDefinition, ""),
    request_body = serde_json::Value,
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_rds_backup(
    call: KeyCall,
    Body(spec): Body<RdsBackupDefinitionSpec>,
) -> ApiResult<Tagged<RdsBackupDefinition>> {
    let (cp, p) = call.require(Op::CreateRdsBackupDefinition)?;
    let def = cp.create_rds_backup_definition(p, spec).await?;
    Ok(Tagged::new_in("/v1/rds-backups", def.id, def))
}

#[utoipa::path(get, path = "/v1/rds-backups/{id}", tag = "rds", description = role_doc(Op::GetRdsBackupDefinition, ""),
    params(("id" = String, Path, description = "rdsbkp_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_rds_backup(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<RdsBackupDefinition>> {
    let (cp, p) = call.require(Op::GetRdsBackupDefinition)?;
    Ok(Tagged::current(cp.get_rds_backup_definition(p, &path_id(&id)?).await?))
}

#[utoipa::path(put, path = "/v1/rds-backups/{id}", tag = "rds", description = role_doc(Op::UpdateRdsBackupDefinition, "Requires `If-Match`."),
    request_body = serde_json::Value, params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn update_rds_backup(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(spec): Body<RdsBackupDefinitionSpec>,
) -> ApiResult<Tagged<RdsBackupDefinition>> {
    let (cp, p) = call.require(Op::UpdateRdsBackupDefinition)?;
    Ok(Tagged::current(
        cp.update_rds_backup_definition(p, &path_id(&id)?, spec, version)
            .await?,
    ))
}

/// Deletes the definition (its recovery points stay until they expire).
#[utoipa::path(delete, path = "/v1/rds-backups/{id}", tag = "rds", description = role_doc(Op::DeleteRdsBackupDefinition, "Requires `If-Match`."),
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn delete_rds_backup(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (cp, p) = call.require(Op::DeleteRdsBackupDefinition)?;
    cp.delete_rds_backup_definition(p, &path_id(&id)?, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs now: a snapshot of each database (then its copy, when copies follow each run),
/// or with `copyOnly` a copy of each database's latest existing snapshot (automated ones
/// included) without taking a new one. Answers the PENDING job.
#[utoipa::path(post, path = "/v1/rds-backups/{id}/run", tag = "rds", description = role_doc(Op::RunRdsBackupNow, "The body may be empty."),
    request_body(content = Option<serde_json::Value>, description = "Optional: `{copyOnly?, retention?: {retainDays, keepLast?}}`"),
    params(("id" = String, Path)),
    responses((status = 201, description = "The job", body = serde_json::Value), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn run_rds_backup(
    call: KeyCall,
    Path(id): Path<String>,
    Body(body): Body<RdsRunRequest>,
) -> ApiResult<Tagged<Job>> {
    let (cp, p) = call.require(Op::RunRdsBackupNow)?;
    let job = cp.run_rds_backup_now(p, &path_id(&id)?, body).await?;
    Ok(Tagged::new_in("/v1/jobs", job.id, job))
}

#[utoipa::path(post, path = "/v1/rds-backups/{id}/pause", tag = "rds", description = role_doc(Op::SetRdsBackupPaused, "`If-Match` optional."),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn pause_rds_backup(
    call: KeyCall,
    OptionalIfMatch(version): OptionalIfMatch,
    Path(id): Path<String>,
) -> ApiResult<Tagged<RdsBackupDefinition>> {
    let (cp, p) = call.require(Op::SetRdsBackupPaused)?;
    Ok(Tagged::current(
        cp.set_rds_backup_paused(p, &path_id(&id)?, version, true).await?,
    ))
}

#[utoipa::path(post, path = "/v1/rds-backups/{id}/resume", tag = "rds", description = role_doc(Op::SetRdsBackupPaused, "`If-Match` optional."),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn resume_rds_backup(
    call: KeyCall,
    OptionalIfMatch(version): OptionalIfMatch,
    Path(id): Path<String>,
) -> ApiResult<Tagged<RdsBackupDefinition>> {
    let (cp, p) = call.require(Op::SetRdsBackupPaused)?;
    Ok(Tagged::current(
        cp.set_rds_backup_paused(p, &path_id(&id)?, version, false).await?,
    ))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RdsPointParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Only the points of this definition.
    pub definition_id: Option<String>,
}

/// Arca's RDS snapshots and copies, newest first.
#[utoipa::path(get, path = "/v1/rds-recoverypoints", tag = "rds", description = role_doc(Op::ListRdsRecoveryPoints, ""),
    params(RdsPointParams), responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_rds_recovery_points(
    call: KeyCall,
    Query(q): Query<RdsPointParams>,
) -> ApiResult<Json<Listing<RdsRecoveryPoint>>> {
    let (cp, p) = call.require(Op::ListRdsRecoveryPoints)?;
    let definition = q
        .definition_id
        .as_deref()
        .map(path_id::<RdsBackupDefinitionId>)
        .transpose()?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(Json(cp.list_rds_recovery_points(p, definition, &page.into()).await?))
}

#[utoipa::path(get, path = "/v1/rds-recoverypoints/{id}", tag = "rds", description = role_doc(Op::GetRdsRecoveryPoint, ""),
    params(("id" = String, Path, description = "rp_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_rds_recovery_point(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<RdsRecoveryPoint>> {
    let (cp, p) = call.require(Op::GetRdsRecoveryPoint)?;
    Ok(Tagged::current(cp.get_rds_recovery_point(p, &path_id(&id)?).await?))
}

/// Verifies an AVAILABLE point: restores its snapshot to a temporary database (the
/// definition's `verification` settings, else a db.t3.micro in the default VPC), waits for
/// it to be `available`, deletes it. The point's `verification` says how it went; the
/// RDS_RESTORE job doing it is returned.
#[utoipa::path(post, path = "/v1/rds-recoverypoints/{id}/verify", tag = "rds", description = role_doc(Op::VerifyRecoveryPoint, "No body."),
    params(("id" = String, Path, description = "rp_<ULID>")),
    responses((status = 201, description = "The job", body = serde_json::Value), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "restore_not_possible, recovery_point_busy", body = Problem)))]
pub async fn verify_rds_recovery_point(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<Job>> {
    let (cp, p) = call.require(Op::VerifyRecoveryPoint)?;
    let job = cp.verify_rds_recovery_point(p, &path_id(&id)?).await?;
    Ok(Tagged::new_in("/v1/jobs", job.id, job))
}

/// Restores into a new instance or cluster: `{cloudAccountId, source: {kind:
/// RECOVERY_POINT, recoveryPointId} | {kind: SNAPSHOT, region, identifier, cluster?} |
/// {kind: POINT_IN_TIME, region, database: {identifier, cluster?}, restoreTime? |
/// useLatestRestorableTime}, target: {identifier, instanceClass?, subnetGroup?,
/// securityGroupIds?, parameterGroup?, optionGroup?, multiAz?, engine?}}`. A copy restores
/// in its own region and needs `target.subnetGroup` there. Answers the RDS_RESTORE job.
#[utoipa::path(post, path = "/v1/rds-restores", tag = "rds", description = role_doc(Op::CreateRdsRestore, ""),
    request_body = serde_json::Value,
    responses((status = 201, description = "The job", body = serde_json::Value), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn create_rds_restore(call: KeyCall, Body(spec): Body<RdsRestoreSpec>) -> ApiResult<Tagged<Job>> {
    let (cp, p) = call.require(Op::CreateRdsRestore)?;
    let job = cp.create_rds_restore(p, spec).await?;
    Ok(Tagged::new_in("/v1/jobs", job.id, job))
}
