//! Linked AWS accounts: linking (ExternalId + quick-create link), the role, verification
//! and inventory.

use arca_core::control_plane::InventoryReport;
use arca_core::ids::CloudAccountId;
use arca_core::model::auth::Role;
use arca_core::model::cloud::AwsInventory;
use arca_core::model::cloud::account::CloudAccountView;
use arca_core::model::cloud::ebs::{EksRecreation, RecoveryPointAws};
use arca_core::store::page::Listing;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Page, Tagged};
use crate::dto::{CloudAccountBody, RecreateEksBody, RoleArnBody};
use crate::error::ApiResult;
use crate::extract::{Body, Caller, IfMatch, PageParams, Path, Query, path_id};
use crate::problem::Problem;
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/cloud-accounts", tag = "cloud accounts", description = "Role: viewer.",
    params(PageParams), responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_cloud_accounts(
    State(s): State<AppState>,
    caller: Caller,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Listing<CloudAccountView>>> {
    let p = caller.require(Role::Viewer)?;
    Ok(Json(s.control_plane.list_cloud_accounts(p, &page.into()).await?))
}

/// Starts linking an AWS account: the response carries the account's `externalId` and
/// the `quickCreateLink` that creates the role stack in that account. The account is
/// `PENDING` until the stack reports its role (or `PUT .../role`) and the role is verified.
#[utoipa::path(post, path = "/v1/cloud-accounts", tag = "cloud accounts", description = "Role: admin.",
    request_body = CloudAccountBody,
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn link_cloud_account(
    State(s): State<AppState>,
    caller: Caller,
    Body(body): Body<CloudAccountBody>,
) -> ApiResult<Tagged<CloudAccountView>> {
    let p = caller.require(Role::Admin)?;
    let view = s.control_plane.link_cloud_account(p, body.into()).await?;
    let a = &view.account;
    Ok(Tagged::created(a.version, format!("/v1/cloud-accounts/{}", a.id), view))
}

#[utoipa::path(get, path = "/v1/cloud-accounts/{id}", tag = "cloud accounts", description = "Role: viewer.",
    params(("id" = String, Path, description = "ca_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_cloud_account(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Tagged<CloudAccountView>> {
    let p = caller.require(Role::Viewer)?;
    let view = s.control_plane.get_cloud_account(p, &path_id(&id)?).await?;
    Ok(Tagged::ok(view.account.version, view))
}

/// Replaces name, description and regions.
#[utoipa::path(put, path = "/v1/cloud-accounts/{id}", tag = "cloud accounts",
    description = "Role: admin. Requires `If-Match`.", request_body = CloudAccountBody,
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn update_cloud_account(
    State(s): State<AppState>,
    caller: Caller,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(body): Body<CloudAccountBody>,
) -> ApiResult<Tagged<CloudAccountView>> {
    let p = caller.require(Role::Admin)?;
    let view = s
        .control_plane
        .update_cloud_account(p, &path_id::<CloudAccountId>(&id)?, body.into(), version)
        .await?;
    Ok(Tagged::ok(view.account.version, view))
}

/// Forgets the account and its inventory (the role stack stays in the AWS account).
#[utoipa::path(delete, path = "/v1/cloud-accounts/{id}", tag = "cloud accounts",
    description = "Role: admin. Requires `If-Match`.", params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn delete_cloud_account(
    State(s): State<AppState>,
    caller: Caller,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let p = caller.require(Role::Admin)?;
    s.control_plane
        .delete_cloud_account(p, &path_id::<CloudAccountId>(&id)?, version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the role by hand (instead of the stack's notification) and verifies it at once:
/// the account comes back `ACTIVE`, or `DISCONNECTED` with the AWS error in `lastError`.
#[utoipa::path(put, path = "/v1/cloud-accounts/{id}/role", tag = "cloud accounts",
    description = "Role: admin. Requires `If-Match`.", request_body = RoleArnBody,
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn set_role(
    State(s): State<AppState>,
    caller: Caller,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(body): Body<RoleArnBody>,
) -> ApiResult<Tagged<CloudAccountView>> {
    let p = caller.require(Role::Admin)?;
    let view = s
        .control_plane
        .set_cloud_account_role(p, &path_id::<CloudAccountId>(&id)?, &body.role_arn, version)
        .await?;
    Ok(Tagged::ok(view.account.version, view))
}

/// Assumes the role again now (after fixing its trust policy, say).
#[utoipa::path(post, path = "/v1/cloud-accounts/{id}/verify", tag = "cloud accounts", description = "Role: admin.",
    params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem),
        (status = 409, description = "no role yet", body = Problem)))]
pub async fn verify(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Tagged<CloudAccountView>> {
    let p = caller.require(Role::Admin)?;
    let view = s.control_plane.verify_cloud_account(p, &path_id(&id)?).await?;
    Ok(Tagged::ok(view.account.version, view))
}

/// "Inventory now": discovers every enabled region and answers what changed.
#[utoipa::path(post, path = "/v1/cloud-accounts/{id}/inventory", tag = "cloud accounts",
    description = "Role: operator.", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem),
        (status = 409, description = "no role yet", body = Problem)))]
pub async fn run_inventory(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<InventoryReport>> {
    let p = caller.require(Role::Operator)?;
    Ok(Json(s.control_plane.inventory_cloud_account(p, &path_id(&id)?).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InventoryParams {
    /// Only this region.
    #[serde(default)]
    pub region: Option<String>,
}

/// What the last inventory found, one entry per region; vanished resources carry `vanishedAt`.
#[utoipa::path(get, path = "/v1/cloud-accounts/{id}/inventory", tag = "cloud accounts",
    description = "Role: viewer.", params(("id" = String, Path), InventoryParams),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_inventory(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<InventoryParams>,
) -> ApiResult<Json<Vec<AwsInventory>>> {
    let p = caller.require(Role::Viewer)?;
    Ok(Json(
        s.control_plane
            .get_cloud_inventory(p, &path_id(&id)?, q.region.as_deref())
            .await?,
    ))
}

// ---- EBS snapshots and EKS re-creation ---------------------------------------------

/// The EBS snapshots and EKS metadata Arca keeps with a recovery point (clusters linked to
/// an AWS account); `null` when there are none.
#[utoipa::path(get, path = "/v1/recoverypoints/{id}/aws", tag = "cloud accounts", description = "Role: viewer.",
    params(("id" = String, Path, description = "rp_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn recovery_point_aws(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Option<RecoveryPointAws>>> {
    let p = caller.require(Role::Viewer)?;
    Ok(Json(s.control_plane.get_recovery_point_aws(p, &path_id(&id)?).await?))
}

/// Re-creates the EKS cluster a recovery point was taken of (CreateCluster with the saved
/// metadata); it moves on by itself, follow it with `GET /v1/eks-recreations/{id}`.
#[utoipa::path(post, path = "/v1/recoverypoints/{id}/recreate-eks", tag = "cloud accounts",
    description = "Role: admin.", request_body = RecreateEksBody, params(("id" = String, Path)),
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "no saved EKS metadata, or the account is not ACTIVE", body = Problem)))]
pub async fn recreate_eks(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<RecreateEksBody>,
) -> ApiResult<Tagged<EksRecreation>> {
    let p = caller.require(Role::Admin)?;
    let r = s.control_plane.recreate_eks(p, &path_id(&id)?, &body.name).await?;
    Ok(Tagged::created(r.version, format!("/v1/eks-recreations/{}", r.id), r))
}

/// The org's EKS re-creations, newest first.
#[utoipa::path(get, path = "/v1/eks-recreations", tag = "cloud accounts", description = "Role: viewer.",
    params(PageParams), responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_eks_recreations(
    State(s): State<AppState>,
    caller: Caller,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Listing<EksRecreation>>> {
    let p = caller.require(Role::Viewer)?;
    Ok(Json(s.control_plane.list_eks_recreations(p, &page.into()).await?))
}

/// A re-creation. The AWS work queue checks EKS about once a minute (nothing waits in
/// the API): once the cluster is ACTIVE, its node groups are created, a cluster is
/// registered in Arca and the restore is queued; `nextStep` says how to install the agent
/// there, and `access` (`{endpoint, certificateAuthorityData}`, from EKS's DescribeCluster)
/// where the new cluster's Kubernetes API is, for a kubeconfig. Still creating after an
/// hour, or the cluster gone or failed: `FAILED` with `error`.
#[utoipa::path(get, path = "/v1/eks-recreations/{id}", tag = "cloud accounts", description = "Role: viewer.",
    params(("id" = String, Path, description = "eksr_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_eks_recreation(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Tagged<EksRecreation>> {
    let p = caller.require(Role::Viewer)?;
    let r = s.control_plane.get_eks_recreation(p, &path_id(&id)?).await?;
    Ok(Tagged::ok(r.version, r))
}
