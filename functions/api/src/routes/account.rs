//! Sign-up, the caller's org and its API keys.

use arca_core::control_plane::SignupResult;
use arca_core::model::auth::{ApiKey, CreatedApiKey, Operation as Op, Principal};
use arca_core::model::org::Org;
use arca_core::store::page::Listing;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{Tagged, role_doc};
use crate::dto::{ApiKeyBody, OrgBody, PlanBody, SignupBody};
use crate::error::ApiResult;
use crate::extract::{Body, IfMatch, KeyCall, OperatorToken, PageParams, Path, Query, path_id};
use crate::problem::Problem;
use crate::state::AppState;

/// Creates an org, its first admin key (returned once) and a default hourly policy.
#[utoipa::path(post, path = "/v1/signup", tag = "account", security(()),
    description = "No authentication. 403 `signup_closed` when the deployment does not allow sign-up.",
    request_body = SignupBody,
    responses(
        (status = 201, description = "`{org, adminKey: {..., secret}, defaultPolicy}`; the secret is shown only here", body = serde_json::Value),
        (status = 400, body = Problem), (status = 403, description = "signup_closed", body = Problem)))]
pub async fn signup(State(s): State<AppState>, Body(body): Body<SignupBody>) -> ApiResult<Tagged<SignupResult>> {
    let result = s
        .control_plane
        .signup(body.into())
        .await
        .map_err(|e| crate::error::ApiError::from(e).recode(StatusCode::FORBIDDEN, "signup_closed"))?;
    Ok(Tagged::created(result.org.version, "/v1/org".to_owned(), result))
}

/// The calling key: its org, id and role (a client such as the web console shows only
/// what the role may do). Gated as reading the org: every key may.
#[utoipa::path(get, path = "/v1/whoami", tag = "account", description = role_doc(Op::GetOrg, "`{orgId, role, apiKeyId}` of the calling key."),
    responses((status = 200, description = "The caller", body = serde_json::Value), (status = 401, body = Problem)))]
pub async fn whoami(call: KeyCall) -> ApiResult<Json<Principal>> {
    let (_, caller) = call.require(Op::GetOrg)?;
    Ok(Json(caller.clone()))
}

/// The caller's org.
#[utoipa::path(get, path = "/v1/org", tag = "account", description = role_doc(Op::GetOrg, ""),
    responses((status = 200, description = "The org, with its `ETag`", body = serde_json::Value), (status = 401, body = Problem)))]
pub async fn get_org(call: KeyCall) -> ApiResult<Tagged<Org>> {
    let (cp, p) = call.require(Op::GetOrg)?;
    Ok(Tagged::current(cp.get_org(p).await?))
}

/// Renames the org or sets its default destination.
#[utoipa::path(put, path = "/v1/org", tag = "account", description = role_doc(Op::UpdateOrg, "Requires `If-Match`."),
    request_body = OrgBody,
    params(("If-Match" = String, Header, description = "The ETag of the version read")),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn update_org(call: KeyCall, IfMatch(version): IfMatch, Body(body): Body<OrgBody>) -> ApiResult<Tagged<Org>> {
    let (cp, p) = call.require(Op::UpdateOrg)?;
    Ok(Tagged::current(cp.update_org(p, body.into(), version).await?))
}

/// The org's API keys (never their secrets).
#[utoipa::path(get, path = "/v1/apikeys", tag = "account", description = role_doc(Op::ListApiKeys, ""), params(PageParams),
    responses((status = 200, body = super::Page), (status = 403, body = Problem)))]
pub async fn list_api_keys(call: KeyCall, Query(page): Query<PageParams>) -> ApiResult<Json<Listing<ApiKey>>> {
    let (cp, p) = call.require(Op::ListApiKeys)?;
    Ok(Json(cp.list_api_keys(p, &page.into()).await?))
}

/// Creates an API key; its `secret` is in this response and nowhere else, ever.
#[utoipa::path(post, path = "/v1/apikeys", tag = "account", description = role_doc(Op::CreateApiKey, ""), request_body = ApiKeyBody,
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "plan_limit_exceeded: too many keys", body = Problem)))]
pub async fn create_api_key(call: KeyCall, Body(body): Body<ApiKeyBody>) -> ApiResult<Tagged<CreatedApiKey>> {
    let (cp, p) = call.require(Op::CreateApiKey)?;
    let created = cp.create_api_key(p, body.into()).await?;
    let location = format!("/v1/apikeys/{}", created.api_key.id);
    Ok(Tagged::created(created.api_key.version, location, created))
}

/// One API key (never its secret).
#[utoipa::path(get, path = "/v1/apikeys/{id}", tag = "account", description = role_doc(Op::GetApiKey, ""),
    params(("id" = String, Path, description = "key_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
pub async fn get_api_key(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<ApiKey>> {
    let (cp, p) = call.require(Op::GetApiKey)?;
    Ok(Tagged::current(cp.get_api_key(p, &path_id(&id)?).await?))
}

/// Deletes (revokes) an API key. The org's last admin key cannot be deleted.
#[utoipa::path(delete, path = "/v1/apikeys/{id}", tag = "account", description = role_doc(Op::DeleteApiKey, "Requires `If-Match`."),
    params(("id" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, description = "last_admin_key", body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn delete_api_key(call: KeyCall, IfMatch(version): IfMatch, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let (cp, p) = call.require(Op::DeleteApiKey)?;
    cp.delete_api_key(p, &path_id(&id)?, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The deployment operator sets an org's plan: not an org's API key but the operator
/// token the deployment is configured with (`ARCA_OPERATOR_TOKEN_SHA256`).
#[utoipa::path(put, path = "/v1/operator/orgs/{id}/plan", tag = "operator", security(("operatorToken" = [])),
    description = "Operator: the deployment operator's token (`Authorization: Bearer <operator token>`), not an API key.",
    request_body = PlanBody,
    params(("id" = String, Path, description = "The org's id")),
    responses((status = 200, description = "The org, on its new plan", body = serde_json::Value),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, description = "No operator token is configured", body = Problem), (status = 404, body = Problem)))]
pub async fn set_org_plan(
    State(s): State<AppState>,
    OperatorToken(token): OperatorToken,
    Path(id): Path<String>,
    Body(body): Body<PlanBody>,
) -> ApiResult<Tagged<Org>> {
    Ok(Tagged::current(
        s.control_plane
            .operator_set_plan(&token, &path_id::<arca_core::ids::OrgId>(&id)?, body.plan)
            .await?,
    ))
}
