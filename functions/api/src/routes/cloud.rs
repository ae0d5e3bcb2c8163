//! Linked AWS accounts: linking (ExternalId + quick-create link), the role, verification,
//! inventory and security findings.

use arca_core::control_plane::{FindingFilter, FindingsPage, InventoryReport};
use arca_core::model::auth::Operation as Op;
use arca_core::model::cloud::AwsInventory;
use arca_core::model::cloud::account::CloudAccountView;
use arca_core::model::cloud::ebs::{EksRecreation, RecoveryPointAws};
use arca_core::model::cloud::security::{FindingState, Severity};
use arca_core::store::page::{Listing, PageRequest};
use axum::Json;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Page, Tagged, role_doc};
use crate::dto::{CloudAccountBody, RecreateEksBody, RoleArnBody};
use crate::error::ApiResult;
use crate::extract::{Body, IfMatch, KeyCall, PageParams, Path, Query, path_id};
use crate::problem::Problem;

#[utoipa::path(get, path = "/v1/cloud-accounts", tag = "cloud accounts", description = role_doc(Op::ListCloudAccounts, ""),
    params(PageParams), responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_cloud_accounts(
    call: KeyCall,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Listing<CloudAccountView>>> {
    let (cp, p) = call.require(Op::ListCloudAccounts)?;
    Ok(Json(cp.list_cloud_accounts(p, &page.into()).await?))
}

/// Starts linking an AWS account: the response carries the account's `externalId` and
/// the `quickCreateLink` that creates the role stack in that account. The account is
/// `PENDING` until the stack reports its role (or `PUT .../role`) and the role is verified.
#[utoipa::path(post, path = "/v1/cloud-accounts", tag = "cloud accounts", description = role_doc(Op::LinkCloudAccount, ""),
    request_body = CloudAccountBody,
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn link_cloud_account(
    call: KeyCall,
    Body(body): Body<CloudAccountBody>,
) -> ApiResult<Tagged<CloudAccountView>> {
    let (cp, p) = call.require(Op::LinkCloudAccount)?;
    let view = cp.link_cloud_account(p, body.into()).await?;
    Ok(Tagged::new_in("/v1/cloud-accounts", view.account.id, view))
}

#[utoipa::path(get, path = "/v1/cloud-accounts/{id}", tag = "cloud accounts", description = role_doc(Op::GetCloudAccount, ""),
    params(("id" = String, Path, description = "ca_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_cloud_account(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<CloudAccountView>> {
    let (cp, p) = call.require(Op::GetCloudAccount)?;
    Ok(Tagged::current(cp.get_cloud_account(p, &path_id(&id)?).await?))
}

/// Replaces name, description and regions.
#[utoipa::path(put, path = "/v1/cloud-accounts/{id}", tag = "cloud accounts",
    description = role_doc(Op::UpdateCloudAccount, "Requires `If-Match`."), request_body = CloudAccountBody,
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn update_cloud_account(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(body): Body<CloudAccountBody>,
) -> ApiResult<Tagged<CloudAccountView>> {
    let (cp, p) = call.require(Op::UpdateCloudAccount)?;
    Ok(Tagged::current(
        cp.update_cloud_account(p, &path_id(&id)?, body.into(), version).await?,
    ))
}

/// Forgets the account and its inventory (the role stack stays in the AWS account).
#[utoipa::path(delete, path = "/v1/cloud-accounts/{id}", tag = "cloud accounts",
    description = role_doc(Op::DeleteCloudAccount, "Requires `If-Match`."), params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn delete_cloud_account(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (cp, p) = call.require(Op::DeleteCloudAccount)?;
    cp.delete_cloud_account(p, &path_id(&id)?, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the role by hand (instead of the stack's notification) and verifies it at once:
/// the account comes back `ACTIVE`, or `DISCONNECTED` with the AWS error in `lastError`.
#[utoipa::path(put, path = "/v1/cloud-accounts/{id}/role", tag = "cloud accounts",
    description = role_doc(Op::SetCloudAccountRole, "Requires `If-Match`."), request_body = RoleArnBody,
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn set_role(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(body): Body<RoleArnBody>,
) -> ApiResult<Tagged<CloudAccountView>> {
    let (cp, p) = call.require(Op::SetCloudAccountRole)?;
    Ok(Tagged::current(
        cp.set_cloud_account_role(p, &path_id(&id)?, &body.role_arn, version)
            .await?,
    ))
}

/// Assumes the role again now (after fixing its trust policy, say).
#[utoipa::path(post, path = "/v1/cloud-accounts/{id}/verify", tag = "cloud accounts", description = role_doc(Op::VerifyCloudAccount, ""),
    params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem),
        (status = 409, description = "no role yet", body = Problem)))]
pub async fn verify(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<CloudAccountView>> {
    let (cp, p) = call.require(Op::VerifyCloudAccount)?;
    Ok(Tagged::current(cp.verify_cloud_account(p, &path_id(&id)?).await?))
}

/// "Inventory now": discovers every enabled region and answers what changed.
#[utoipa::path(post, path = "/v1/cloud-accounts/{id}/inventory", tag = "cloud accounts",
    description = role_doc(Op::InventoryCloudAccount, ""), params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem),
        (status = 409, description = "no role yet", body = Problem)))]
pub async fn run_inventory(call: KeyCall, Path(id): Path<String>) -> ApiResult<Json<InventoryReport>> {
    let (cp, p) = call.require(Op::InventoryCloudAccount)?;
    Ok(Json(cp.inventory_cloud_account(p, &path_id(&id)?).await?))
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
    description = role_doc(Op::GetCloudInventory, ""), params(("id" = String, Path), InventoryParams),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_inventory(
    call: KeyCall,
    Path(id): Path<String>,
    Query(q): Query<InventoryParams>,
) -> ApiResult<Json<Vec<AwsInventory>>> {
    let (cp, p) = call.require(Op::GetCloudInventory)?;
    Ok(Json(
        cp.get_cloud_inventory(p, &path_id(&id)?, q.region.as_deref()).await?,
    ))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindingParams {
    /// This severity and worse: LOW, MEDIUM, HIGH, CRITICAL.
    #[param(value_type = Option<String>)]
    pub severity: Option<Severity>,
    /// OPEN or RESOLVED.
    #[param(value_type = Option<String>)]
    pub state: Option<FindingState>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The account's security findings (one per rule and resource: `ruleId`, `title`,
/// `severity`, `resourceArn`, `detail`, `remediation`, `state` OPEN/RESOLVED,
/// `firstSeenAt`, `lastSeenAt`, `resolvedAt`), paged, and `lastScan`: when the account was
/// last scanned, per region the rules that could not be evaluated and why, open counts.
/// Scans run with every inventory (every 12 hours, and `POST .../inventory`).
#[utoipa::path(get, path = "/v1/cloud-accounts/{id}/findings", tag = "cloud accounts",
    description = role_doc(Op::ListCloudFindings, ""), params(("id" = String, Path), FindingParams),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_findings(
    call: KeyCall,
    Path(id): Path<String>,
    Query(q): Query<FindingParams>,
) -> ApiResult<Json<FindingsPage>> {
    let (cp, p) = call.require(Op::ListCloudFindings)?;
    let filter = FindingFilter {
        min_severity: q.severity,
        state: q.state,
    };
    let page = PageRequest {
        cursor: q.cursor,
        limit: q.limit,
    };
    Ok(Json(cp.list_cloud_findings(p, &path_id(&id)?, filter, &page).await?))
}

// ---- EBS snapshots and EKS re-creation ---------------------------------------------

/// The EBS snapshots and EKS metadata Arca keeps with a recovery point (clusters linked to
/// an AWS account); `null` when there are none.
#[utoipa::path(get, path = "/v1/recoverypoints/{id}/aws", tag = "cloud accounts", description = role_doc(Op::GetRecoveryPointAws, ""),
    params(("id" = String, Path, description = "rp_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn recovery_point_aws(call: KeyCall, Path(id): Path<String>) -> ApiResult<Json<Option<RecoveryPointAws>>> {
    let (cp, p) = call.require(Op::GetRecoveryPointAws)?;
    Ok(Json(cp.get_recovery_point_aws(p, &path_id(&id)?).await?))
}

/// Re-creates the EKS cluster a recovery point was taken of (CreateCluster with the saved
/// metadata); it moves on by itself, follow it with `GET /v1/eks-recreations/{id}`.
#[utoipa::path(post, path = "/v1/recoverypoints/{id}/recreate-eks", tag = "cloud accounts",
    description = role_doc(Op::RecreateEks, ""), request_body = RecreateEksBody, params(("id" = String, Path)),
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "no saved EKS metadata, or the account is not ACTIVE", body = Problem)))]
pub async fn recreate_eks(
    call: KeyCall,
    Path(id): Path<String>,
    Body(body): Body<RecreateEksBody>,
) -> ApiResult<Tagged<EksRecreation>> {
    let (cp, p) = call.require(Op::RecreateEks)?;
    let r = cp.recreate_eks(p, &path_id(&id)?, &body.name).await?;
    Ok(Tagged::new_in("/v1/eks-recreations", r.id, r))
}

/// The org's EKS re-creations, newest first.
#[utoipa::path(get, path = "/v1/eks-recreations", tag = "cloud accounts", description = role_doc(Op::ListEksRecreations, ""),
    params(PageParams), responses((status = 200, body = Page), (status = 400, body = Problem)))]
pub async fn list_eks_recreations(
    call: KeyCall,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Listing<EksRecreation>>> {
    let (cp, p) = call.require(Op::ListEksRecreations)?;
    Ok(Json(cp.list_eks_recreations(p, &page.into()).await?))
}

/// A re-creation. The AWS work queue checks EKS about once a minute (nothing waits in
/// the API): once the cluster is ACTIVE, its node groups are created, a cluster is
/// registered in Arca and the restore is queued; `nextStep` says how to install the agent
/// there, and `access` (`{endpoint, certificateAuthorityData}`, from EKS's DescribeCluster)
/// where the new cluster's Kubernetes API is, for a kubeconfig. Still creating after an
/// hour, or the cluster gone or failed: `FAILED` with `error`.
#[utoipa::path(get, path = "/v1/eks-recreations/{id}", tag = "cloud accounts", description = role_doc(Op::GetEksRecreation, ""),
    params(("id" = String, Path, description = "eksr_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_eks_recreation(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<EksRecreation>> {
    let (cp, p) = call.require(Op::GetEksRecreation)?;
    Ok(Tagged::current(cp.get_eks_recreation(p, &path_id(&id)?).await?))
}
