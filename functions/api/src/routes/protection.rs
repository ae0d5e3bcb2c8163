//! What an admin configures: clusters, destinations, policies, backup definitions.

use arca_core::control_plane::{DestinationDeletion, RegisteredCluster};
use arca_core::model::auth::Operation as Op;
use arca_core::model::backup::BackupDefinitionView;
use arca_core::model::cluster::Cluster;
use arca_core::model::destination::Destination;
use arca_core::model::policy::Policy;
use arca_core::store::page::Listing;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Page, Tagged, role_doc};
use crate::dto::{BackupBody, ClusterBody, DestinationBody, PolicyBody};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IfMatch, KeyCall, PageParams, Path, Query, path_id};
use crate::problem::Problem;

// ---- clusters -------------------------------------------------------------------

/// Registered clusters, their state aged by the heartbeat timeout.
#[utoipa::path(get, path = "/v1/clusters", tag = "clusters", description = role_doc(Op::ListClusters, ""), params(PageParams),
    responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_clusters(call: KeyCall, Query(page): Query<PageParams>) -> ApiResult<Json<Listing<Cluster>>> {
    let (cp, p) = call.require(Op::ListClusters)?;
    Ok(Json(cp.list_clusters(p, &page.into()).await?))
}

/// Registers a cluster; the response holds its agent token, shown only here.
#[utoipa::path(post, path = "/v1/clusters", tag = "clusters", description = role_doc(Op::RegisterCluster, ""), request_body = ClusterBody,
    responses((status = 201, description = "The cluster and `agentToken`", body = serde_json::Value),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_cluster(call: KeyCall, Body(body): Body<ClusterBody>) -> ApiResult<Tagged<RegisteredCluster>> {
    let (cp, p) = call.require(Op::RegisterCluster)?;
    let registered = cp.register_cluster(p, body.into()).await?;
    Ok(Tagged::new_in("/v1/clusters", registered.cluster.id, registered))
}

#[utoipa::path(get, path = "/v1/clusters/{id}", tag = "clusters", description = role_doc(Op::GetCluster, ""),
    params(("id" = String, Path, description = "cl_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_cluster(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<Cluster>> {
    let (cp, p) = call.require(Op::GetCluster)?;
    Ok(Tagged::current(cp.get_cluster(p, &path_id(&id)?).await?))
}

/// Replaces the user-editable part of a cluster (name, description, tags, default destination).
#[utoipa::path(put, path = "/v1/clusters/{id}", tag = "clusters", description = role_doc(Op::UpdateCluster, "Requires `If-Match`."),
    request_body = ClusterBody, params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 428, body = Problem)))]
pub async fn update_cluster(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(body): Body<ClusterBody>,
) -> ApiResult<Tagged<Cluster>> {
    let (cp, p) = call.require(Op::UpdateCluster)?;
    Ok(Tagged::current(
        cp.update_cluster(p, &path_id(&id)?, body.into(), version).await?,
    ))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConfirmParams {
    /// Delete although recovery points exist (they stay until they expire, but can no
    /// longer be listed or restored).
    #[serde(default)]
    pub confirm: bool,
}

/// Deletes a cluster. 409 `cluster_in_use` while a backup definition references it;
/// 409 `confirmation_required` (saying how many) while it has recovery points, unless `?confirm=true`.
#[utoipa::path(delete, path = "/v1/clusters/{id}", tag = "clusters", description = role_doc(Op::DeleteCluster, "Requires `If-Match`."),
    params(("id" = String, Path), ("If-Match" = String, Header), ConfirmParams),
    responses((status = 204), (status = 404, body = Problem),
        (status = 409, description = "cluster_in_use | confirmation_required", body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn delete_cluster(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Query(q): Query<ConfirmParams>,
) -> ApiResult<StatusCode> {
    let (cp, p) = call.require(Op::DeleteCluster)?;
    cp.delete_cluster(p, &path_id(&id)?, version, q.confirm).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the cluster's agent token; the old one stops working at once.
#[utoipa::path(post, path = "/v1/clusters/{id}/rotate-token", tag = "clusters", description = role_doc(Op::RotateAgentToken, "Requires `If-Match`."),
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, description = "The cluster and its new `agentToken`", body = serde_json::Value),
        (status = 404, body = Problem), (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn rotate_agent_token(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
) -> ApiResult<Tagged<RegisteredCluster>> {
    let (cp, p) = call.require(Op::RotateAgentToken)?;
    Ok(Tagged::current(
        cp.rotate_agent_token(p, &path_id(&id)?, version).await?,
    ))
}

/// Rotates the cluster's archive key: its next backups start new repositories under a
/// key of the next generation; existing points keep theirs and stay restorable.
#[utoipa::path(post, path = "/v1/clusters/{id}/rotate-archive-key", tag = "clusters",
    description = role_doc(Op::RotateArchiveKey, "Requires `If-Match`. The first backup after a rotation copies everything again \
        (nothing is shared with what the old key sealed). 409 `keys_held_by_agents` when the deployment has no \
        master key (its agents hold their key)."),
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, description = "The cluster, its `archiveKeyGeneration` raised", body = serde_json::Value),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem),
        (status = 428, body = Problem)))]
pub async fn rotate_archive_key(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
) -> ApiResult<Tagged<Cluster>> {
    let (cp, p) = call.require(Op::RotateArchiveKey)?;
    Ok(Tagged::current(
        cp.rotate_archive_key(p, &path_id(&id)?, version).await?,
    ))
}

// ---- destinations ---------------------------------------------------------------

#[utoipa::path(get, path = "/v1/destinations", tag = "destinations", description = role_doc(Op::ListDestinations, ""), params(PageParams),
    responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_destinations(call: KeyCall, Query(page): Query<PageParams>) -> ApiResult<Json<Listing<Destination>>> {
    let (cp, p) = call.require(Op::ListDestinations)?;
    Ok(Json(cp.list_destinations(p, &page.into()).await?))
}

#[utoipa::path(post, path = "/v1/destinations", tag = "destinations", description = role_doc(Op::CreateDestination, ""), request_body = DestinationBody,
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_destination(call: KeyCall, Body(body): Body<DestinationBody>) -> ApiResult<Tagged<Destination>> {
    let (cp, p) = call.require(Op::CreateDestination)?;
    let d = cp.create_destination(p, body.into()).await?;
    Ok(Tagged::new_in("/v1/destinations", d.id, d))
}

#[utoipa::path(get, path = "/v1/destinations/{id}", tag = "destinations", description = role_doc(Op::GetDestination, ""),
    params(("id" = String, Path, description = "dst_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_destination(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<Destination>> {
    let (cp, p) = call.require(Op::GetDestination)?;
    Ok(Tagged::current(cp.get_destination(p, &path_id(&id)?).await?))
}

#[utoipa::path(get, path = "/v1/destinations/{id}/maintenance", tag = "destinations",
    description = role_doc(Op::DestinationMaintenance, "What repository maintenance reclaimed there: bytes freed in all, and per cluster \
        repository when its next run is due, its last run and what that freed (docs/data-model.md, \
        \"What deletes what\")."),
    params(("id" = String, Path, description = "dst_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn destination_maintenance(
    call: KeyCall,
    Path(id): Path<String>,
) -> ApiResult<Json<arca_core::control_plane::DestinationMaintenance>> {
    let (cp, p) = call.require(Op::DestinationMaintenance)?;
    Ok(Json(cp.destination_maintenance(p, &path_id(&id)?).await?))
}

/// What a purge of a deleted cluster's data may include.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurgeBody {
    /// Also the points not yet due (kept by `keepLast`, or expiring later); locked
    /// points always refuse a purge.
    #[serde(default)]
    pub include_unexpired: bool,
}

/// Begins deleting a deleted cluster's data from a destination without an agent
/// (`arca destinations purge`): its points there become DELETING and the answer holds the
/// cluster prefix to delete every object under (docs/data-model.md, "What deletes what").
#[utoipa::path(post, path = "/v1/destinations/{id}/repositories/{clusterId}/purge", tag = "destinations",
    description = role_doc(Op::BeginPurge, "409 `purge_not_possible` while the cluster exists, a job works on its data there, \
        or a point there is locked or (without `includeUnexpired`) not due for deletion. The answer's `access` \
        holds vended credentials for Arca-managed storage, scoped to that cluster prefix."),
    request_body = Option<PurgeBody>,
    params(("id" = String, Path, description = "dst_<ULID>"), ("clusterId" = String, Path, description = "cl_<ULID>, deleted")),
    responses((status = 200, body = serde_json::Value), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn begin_purge(
    call: KeyCall,
    Path((id, cluster)): Path<(String, String)>,
    Body(body): Body<PurgeBody>,
) -> ApiResult<Json<arca_core::control_plane::PurgeGrant>> {
    let (cp, p) = call.require(Op::BeginPurge)?;
    Ok(Json(
        cp.begin_purge(p, &path_id(&id)?, &path_id(&cluster)?, body.include_unexpired)
            .await?,
    ))
}

/// Ends a purge once every object under the cluster prefix is deleted: the points go
/// (their EBS snapshots first) and the repository is forgotten.
#[utoipa::path(post, path = "/v1/destinations/{id}/repositories/{clusterId}/purge/complete", tag = "destinations",
    description = role_doc(Op::CompletePurge, "409 `purge_not_possible` when no purge was begun."),
    params(("id" = String, Path, description = "dst_<ULID>"), ("clusterId" = String, Path, description = "cl_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn complete_purge(
    call: KeyCall,
    Path((id, cluster)): Path<(String, String)>,
) -> ApiResult<Json<arca_core::control_plane::PurgeDone>> {
    let (cp, p) = call.require(Op::CompletePurge)?;
    Ok(Json(cp.complete_purge(p, &path_id(&id)?, &path_id(&cluster)?).await?))
}

#[utoipa::path(put, path = "/v1/destinations/{id}", tag = "destinations", description = role_doc(Op::UpdateDestination, "Requires `If-Match`."),
    request_body = DestinationBody, params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem), (status = 428, body = Problem)))]
pub async fn update_destination(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(body): Body<DestinationBody>,
) -> ApiResult<Tagged<Destination>> {
    let (cp, p) = call.require(Op::UpdateDestination)?;
    Ok(Tagged::current(
        cp.update_destination(p, &path_id(&id)?, body.into(), version).await?,
    ))
}

/// Deletes a destination nothing refers to (409 `destination_in_use` names the users).
/// One holding recovery points: 409 `confirmation_required` (how many, the nearest
/// expiry) unless `?confirm=true`, which expires them (locked ones refuse it: 409
/// `destination_in_use`) and answers 202 with the destination, now `retiring`: retention
/// deletes the points and their data, and the destination goes after the last.
#[utoipa::path(delete, path = "/v1/destinations/{id}", tag = "destinations", description = role_doc(Op::DeleteDestination, "Requires `If-Match`."),
    params(("id" = String, Path), ("If-Match" = String, Header), ConfirmParams),
    responses((status = 204, description = "Deleted"),
        (status = 202, description = "Retiring: `{destination, recoveryPoints}`, the points expired", body = serde_json::Value),
        (status = 404, body = Problem),
        (status = 409, description = "destination_in_use | confirmation_required", body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn delete_destination(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Query(q): Query<ConfirmParams>,
) -> ApiResult<Response> {
    let (cp, p) = call.require(Op::DeleteDestination)?;
    let done = cp.delete_destination(p, &path_id(&id)?, version, q.confirm).await?;
    Ok(match done {
        DestinationDeletion::Deleted => StatusCode::NO_CONTENT.into_response(),
        DestinationDeletion::Retiring {
            destination,
            recovery_points,
        } => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "destination": destination, "recoveryPoints": recovery_points })),
        )
            .into_response(),
    })
}

// ---- policies -------------------------------------------------------------------

/// Policies, each with `usedBy` (the definitions that use it).
#[utoipa::path(get, path = "/v1/policies", tag = "policies", description = role_doc(Op::ListPolicies, ""), params(PageParams),
    responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_policies(call: KeyCall, Query(page): Query<PageParams>) -> ApiResult<Json<Listing<Policy>>> {
    let (cp, p) = call.require(Op::ListPolicies)?;
    Ok(Json(cp.list_policies(p, &page.into()).await?))
}

/// Creates a policy; retention beyond the plan is 422 `plan_limit_exceeded` naming the limit.
#[utoipa::path(post, path = "/v1/policies", tag = "policies", description = role_doc(Op::CreatePolicy, ""), request_body = PolicyBody,
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "plan_limit_exceeded", body = Problem)))]
pub async fn create_policy(call: KeyCall, Body(body): Body<PolicyBody>) -> ApiResult<Tagged<Policy>> {
    let (cp, p) = call.require(Op::CreatePolicy)?;
    let policy = cp.create_policy(p, body.into()).await?;
    Ok(Tagged::new_in("/v1/policies", policy.id, policy))
}

/// One policy, with `usedBy`.
#[utoipa::path(get, path = "/v1/policies/{id}", tag = "policies", description = role_doc(Op::GetPolicy, ""),
    params(("id" = String, Path, description = "pol_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_policy(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<Policy>> {
    let (cp, p) = call.require(Op::GetPolicy)?;
    Ok(Tagged::current(cp.get_policy(p, &path_id(&id)?).await?))
}

#[utoipa::path(put, path = "/v1/policies/{id}", tag = "policies", description = role_doc(Op::UpdatePolicy, "Requires `If-Match`."),
    request_body = PolicyBody, params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem), (status = 428, body = Problem)))]
pub async fn update_policy(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(body): Body<PolicyBody>,
) -> ApiResult<Tagged<Policy>> {
    let (cp, p) = call.require(Op::UpdatePolicy)?;
    Ok(Tagged::current(
        cp.update_policy(p, &path_id(&id)?, body.into(), version).await?,
    ))
}

/// Deletes an unused policy; 409 `policy_in_use` lists the definitions using it (`usedBy`).
#[utoipa::path(delete, path = "/v1/policies/{id}", tag = "policies", description = role_doc(Op::DeletePolicy, "Requires `If-Match`."),
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, description = "policy_in_use", body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn delete_policy(call: KeyCall, IfMatch(version): IfMatch, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let (cp, p) = call.require(Op::DeletePolicy)?;
    let id = path_id(&id)?;
    match cp.delete_policy(p, &id, version).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e @ arca_core::Error::Conflict { .. }) => {
            let mut error = ApiError::from(e);
            // The referrers, as data, so a client can act on them without parsing text.
            if error.0.code == "policy_in_use"
                && let Ok(policy) = cp.get_policy(p, &id).await
                && let Ok(used_by) = serde_json::to_value(&policy.used_by)
            {
                error.0.extensions.insert("usedBy".to_owned(), used_by);
            }
            Err(error)
        }
        Err(e) => Err(e.into()),
    }
}

// ---- backup definitions ---------------------------------------------------------

/// Backup definitions, each with `effectiveDestination` (definition > cluster > org).
#[utoipa::path(get, path = "/v1/backups", tag = "backups", description = role_doc(Op::ListBackupDefinitions, ""), params(PageParams),
    responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_backups(
    call: KeyCall,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Listing<BackupDefinitionView>>> {
    let (cp, p) = call.require(Op::ListBackupDefinitions)?;
    Ok(Json(cp.list_backup_definitions(p, &page.into()).await?))
}

#[utoipa::path(post, path = "/v1/backups", tag = "backups", description = role_doc(Op::CreateBackupDefinition, ""), request_body = BackupBody,
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_backup(call: KeyCall, Body(body): Body<BackupBody>) -> ApiResult<Tagged<BackupDefinitionView>> {
    let (cp, p) = call.require(Op::CreateBackupDefinition)?;
    let view = cp.create_backup_definition(p, body.into()).await?;
    Ok(Tagged::new_in("/v1/backups", view.definition.id, view))
}

#[utoipa::path(get, path = "/v1/backups/{id}", tag = "backups", description = role_doc(Op::GetBackupDefinition, ""),
    params(("id" = String, Path, description = "bkp_<ULID>")),
    responses((status = 200, description = "The definition with `effectiveDestination`", body = serde_json::Value),
        (status = 404, body = Problem)))]
pub async fn get_backup(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<BackupDefinitionView>> {
    let (cp, p) = call.require(Op::GetBackupDefinition)?;
    Ok(Tagged::current(cp.get_backup_definition(p, &path_id(&id)?).await?))
}

#[utoipa::path(put, path = "/v1/backups/{id}", tag = "backups", description = role_doc(Op::UpdateBackupDefinition, "Requires `If-Match`."),
    request_body = BackupBody, params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem), (status = 428, body = Problem)))]
pub async fn update_backup(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(body): Body<BackupBody>,
) -> ApiResult<Tagged<BackupDefinitionView>> {
    let (cp, p) = call.require(Op::UpdateBackupDefinition)?;
    Ok(Tagged::current(
        cp.update_backup_definition(p, &path_id(&id)?, body.into(), version)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/backups/{id}", tag = "backups", description = role_doc(Op::DeleteBackupDefinition, "Requires `If-Match`."),
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn delete_backup(call: KeyCall, IfMatch(version): IfMatch, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let (cp, p) = call.require(Op::DeleteBackupDefinition)?;
    cp.delete_backup_definition(p, &path_id(&id)?, version).await?;
    Ok(StatusCode::NO_CONTENT)
}
