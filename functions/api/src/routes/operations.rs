//! What an operator does (run, pause, resume, cancel, restore) and what it produces
//! (jobs, recovery points, restores).

use arca_core::control_plane::{JobFilter, RecoveryPointFilter, RestoreCreated};
use arca_core::ids::{BackupDefinitionId, ClusterId};
use arca_core::model::auth::Operation as Op;
use arca_core::model::backup::BackupDefinitionView;
use arca_core::model::job::{Job, JobState, JobType};
use arca_core::model::recovery::RecoveryPoint;
use arca_core::model::restore::{ObjectOutcome, Restore, RestoreObjectResult};
use arca_core::store::page::{Listing, PageRequest};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Page, Tagged, role_doc};
use crate::dto::{RestoreBody, RunNowBody, VerifyBody};
use crate::error::ApiResult;
use crate::extract::{Body, KeyCall, OptionalIfMatch, PageParams, Path, Query, path_id};
use crate::problem::Problem;

// ---- actions on backup definitions ------------------------------------------------

/// Runs a backup definition now: creates a PENDING job (returned, `Location` names it).
#[utoipa::path(post, path = "/v1/backups/{id}/run", tag = "backups", description = role_doc(Op::RunBackupNow, "The body may be empty."),
    request_body(content = Option<RunNowBody>, description = "Optional: a retention for this run"),
    params(("id" = String, Path, description = "bkp_<ULID>")),
    responses((status = 201, description = "The job", body = serde_json::Value), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn run_backup(call: KeyCall, Path(id): Path<String>, Body(body): Body<RunNowBody>) -> ApiResult<Tagged<Job>> {
    let (cp, p) = call.require(Op::RunBackupNow)?;
    let job = cp.run_backup_now(p, &path_id(&id)?, body.into()).await?;
    Ok(Tagged::new_in("/v1/jobs", job.id, job))
}

/// Pauses the definition's schedule (it can still be run by hand).
#[utoipa::path(post, path = "/v1/backups/{id}/pause", tag = "backups", description = role_doc(Op::SetBackupPaused, "`If-Match` optional."),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn pause_backup(
    call: KeyCall,
    OptionalIfMatch(version): OptionalIfMatch,
    Path(id): Path<String>,
) -> ApiResult<Tagged<BackupDefinitionView>> {
    let (cp, p) = call.require(Op::SetBackupPaused)?;
    Ok(Tagged::current(
        cp.pause_backup_definition(p, &path_id(&id)?, version).await?,
    ))
}

#[utoipa::path(post, path = "/v1/backups/{id}/resume", tag = "backups", description = role_doc(Op::SetBackupPaused, "`If-Match` optional."),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn resume_backup(
    call: KeyCall,
    OptionalIfMatch(version): OptionalIfMatch,
    Path(id): Path<String>,
) -> ApiResult<Tagged<BackupDefinitionView>> {
    let (cp, p) = call.require(Op::SetBackupPaused)?;
    Ok(Tagged::current(
        cp.resume_backup_definition(p, &path_id(&id)?, version).await?,
    ))
}

// ---- jobs -------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobParams {
    #[param(value_type = Option<String>)]
    pub cluster_id: Option<ClusterId>,
    #[param(value_type = Option<String>)]
    pub definition_id: Option<BackupDefinitionId>,
    /// PENDING, RUNNING, COMPLETED, PARTIAL, FAILED, SKIPPED, CANCELLING, CANCELED.
    #[param(value_type = Option<String>)]
    pub state: Option<JobState>,
    /// K8S_BACKUP, K8S_RESTORE, ...
    #[serde(rename = "type")]
    #[param(value_type = Option<String>, rename = "type")]
    pub job_type: Option<JobType>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Jobs, newest first, optionally filtered.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", description = role_doc(Op::ListJobs, ""), params(JobParams),
    responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_jobs(call: KeyCall, Query(q): Query<JobParams>) -> ApiResult<Json<Listing<Job>>> {
    let (cp, p) = call.require(Op::ListJobs)?;
    let filter = JobFilter {
        cluster_id: q.cluster_id,
        definition_id: q.definition_id,
        state: q.state,
        job_type: q.job_type,
    };
    Ok(Json(
        cp.list_jobs(
            p,
            &filter,
            &PageRequest {
                cursor: q.cursor,
                limit: q.limit,
            },
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", description = role_doc(Op::GetJob, ""),
    params(("id" = String, Path, description = "job_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_job(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<Job>> {
    let (cp, p) = call.require(Op::GetJob)?;
    Ok(Tagged::current(cp.get_job(p, &path_id(&id)?).await?))
}

/// Cancels a job: PENDING becomes CANCELED, RUNNING becomes CANCELLING; a finished job
/// is 409 `illegal_job_transition`.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", description = role_doc(Op::CancelJob, "`If-Match` optional."),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem),
        (status = 409, description = "illegal_job_transition", body = Problem), (status = 412, body = Problem)))]
pub async fn cancel_job(
    call: KeyCall,
    OptionalIfMatch(version): OptionalIfMatch,
    Path(id): Path<String>,
) -> ApiResult<Tagged<Job>> {
    let (cp, p) = call.require(Op::CancelJob)?;
    Ok(Tagged::current(cp.cancel_job(p, &path_id(&id)?, version).await?))
}

// ---- recovery points ----------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecoveryPointParams {
    #[param(value_type = Option<String>)]
    pub cluster_id: Option<ClusterId>,
    #[param(value_type = Option<String>)]
    pub definition_id: Option<BackupDefinitionId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Recovery points of clusters that still exist.
#[utoipa::path(get, path = "/v1/recoverypoints", tag = "recoverypoints", description = role_doc(Op::ListRecoveryPoints, ""), params(RecoveryPointParams),
    responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_recovery_points(
    call: KeyCall,
    Query(q): Query<RecoveryPointParams>,
) -> ApiResult<Json<Listing<RecoveryPoint>>> {
    let (cp, p) = call.require(Op::ListRecoveryPoints)?;
    let filter = RecoveryPointFilter {
        cluster_id: q.cluster_id,
        definition_id: q.definition_id,
    };
    Ok(Json(
        cp.list_recovery_points(
            p,
            &filter,
            &PageRequest {
                cursor: q.cursor,
                limit: q.limit,
            },
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/v1/recoverypoints/{id}", tag = "recoverypoints", description = role_doc(Op::GetRecoveryPoint, ""),
    params(("id" = String, Path, description = "rp_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_recovery_point(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<RecoveryPoint>> {
    let (cp, p) = call.require(Op::GetRecoveryPoint)?;
    Ok(Tagged::current(cp.get_recovery_point(p, &path_id(&id)?).await?))
}

/// Deletes a recovery point before its expiry: it becomes DELETING and its DELETE_BACKUP
/// job deletes its data, as retention would. 409 `recovery_point_immutable` (with the date)
/// while S3 Object Lock retains its data; 409 `recovery_point_busy` when it is locked or
/// not READY.
#[utoipa::path(delete, path = "/v1/recoverypoints/{id}", tag = "recoverypoints", description = role_doc(Op::DeleteRecoveryPoint, ""),
    params(("id" = String, Path, description = "rp_<ULID>")),
    responses((status = 202, description = "`{recoveryPointId, jobId}`: the deletion job", body = serde_json::Value),
        (status = 404, body = Problem),
        (status = 409, description = "recovery_point_immutable, recovery_point_busy", body = Problem)))]
pub async fn delete_recovery_point(
    call: KeyCall,
    Path(id): Path<String>,
) -> ApiResult<(axum::http::StatusCode, Json<serde_json::Value>)> {
    let (cp, p) = call.require(Op::DeleteRecoveryPoint)?;
    let id: arca_core::ids::RecoveryPointId = path_id(&id)?;
    let job = cp.delete_recovery_point(p, &id).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(serde_json::json!({ "recoveryPointId": id, "jobId": job })),
    ))
}

/// Verifies a READY recovery point: restores it into scratch namespaces of an ACTIVE
/// cluster, checks every object, every volume's data against the backup's record and the
/// definition's probe, then removes the namespaces. The point's `verification` says how
/// it went; the restore and its K8S_RESTORE job are returned.
#[utoipa::path(post, path = "/v1/recoverypoints/{id}/verify", tag = "recoverypoints", description = role_doc(Op::VerifyRecoveryPoint, "The body may be empty."),
    request_body(content = Option<VerifyBody>, description = "Optional: the cluster to verify in"),
    params(("id" = String, Path, description = "rp_<ULID>")),
    responses((status = 201, description = "`{restore, job}`", body = serde_json::Value), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "restore_not_possible, recovery_point_busy", body = Problem)))]
pub async fn verify_recovery_point(
    call: KeyCall,
    Path(id): Path<String>,
    Body(body): Body<VerifyBody>,
) -> ApiResult<Tagged<RestoreCreated>> {
    let (cp, p) = call.require(Op::VerifyRecoveryPoint)?;
    let created = cp
        .verify_recovery_point(p, &path_id(&id)?, body.target_cluster_id)
        .await?;
    Ok(Tagged::new_in("/v1/restores", created.restore.id, created))
}

// ---- restores -------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/restores", tag = "restores", description = role_doc(Op::ListRestores, ""), params(PageParams),
    responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_restores(call: KeyCall, Query(page): Query<PageParams>) -> ApiResult<Json<Listing<Restore>>> {
    let (cp, p) = call.require(Op::ListRestores)?;
    Ok(Json(cp.list_restores(p, &page.into()).await?))
}

/// Restores a READY recovery point to an ACTIVE cluster: creates the restore and its job.
#[utoipa::path(post, path = "/v1/restores", tag = "restores", description = role_doc(Op::CreateRestore, ""), request_body = RestoreBody,
    responses((status = 201, description = "`{restore, job}`", body = serde_json::Value), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 409, description = "restore_not_possible", body = Problem)))]
pub async fn create_restore(call: KeyCall, Body(body): Body<RestoreBody>) -> ApiResult<Tagged<RestoreCreated>> {
    let (cp, p) = call.require(Op::CreateRestore)?;
    let created = cp.create_restore(p, body.into()).await?;
    Ok(Tagged::new_in("/v1/restores", created.restore.id, created))
}

#[utoipa::path(get, path = "/v1/restores/{id}", tag = "restores", description = role_doc(Op::GetRestore, ""),
    params(("id" = String, Path, description = "rst_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_restore(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<Restore>> {
    let (cp, p) = call.require(Op::GetRestore)?;
    Ok(Tagged::current(cp.get_restore(p, &path_id(&id)?).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RestoreObjectParams {
    /// created, updated, skipped or failed.
    #[param(value_type = Option<String>)]
    pub outcome: Option<ObjectOutcome>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The restore's per-object results (`{resource, namespace?, name, outcome, reason?}`), in
/// the order the agent reported them, optionally of one outcome.
#[utoipa::path(get, path = "/v1/restores/{id}/objects", tag = "restores", description = role_doc(Op::ListRestoreObjects, ""),
    params(("id" = String, Path, description = "rst_<ULID>"), RestoreObjectParams),
    responses((status = 200, body = Page), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_restore_objects(
    call: KeyCall,
    Path(id): Path<String>,
    Query(q): Query<RestoreObjectParams>,
) -> ApiResult<Json<Listing<RestoreObjectResult>>> {
    let (cp, p) = call.require(Op::ListRestoreObjects)?;
    Ok(Json(
        cp.list_restore_objects(
            p,
            &path_id(&id)?,
            q.outcome,
            &PageRequest {
                cursor: q.cursor,
                limit: q.limit,
            },
        )
        .await?,
    ))
}
