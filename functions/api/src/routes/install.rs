//! Installing the agent: the one-time install link and the manifest it serves.
//!
//! `POST /v1/clusters/{id}/install` (admin) answers `{url, command, expiresAt}`; the user
//! runs `kubectl apply -f <url>`, which fetches `GET /v1/install/{token}/agent.yaml` with
//! no API key. That fetch works once (410 afterwards, and after an hour) and puts a new
//! agent token in the manifest's Secret, which becomes the cluster's at the new agent's
//! first call. `GET /v1/clusters/{id}/agent.yaml` serves it with an API key and rotates
//! the token at once.

use arca_core::ids::ClusterId;
use arca_core::model::auth::Operation as Op;
use arca_core::model::install::AgentInstall;
use arca_core::model::secret::Secret;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::role_doc;
use crate::error::{ApiError, ApiResult};
use crate::extract::{KeyCall, Path, Query, path_id};
use crate::manifest::{self, AgentRbac, ManifestInput, RestoreKind};
use crate::problem::Problem;
use crate::state::AppState;

/// `?restore=&restoreKinds=&hooks=` of the manifest: the agent's RBAC (docs/agent.md,
/// "RBAC").
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ManifestParams {
    /// `false`: no restore role (a backup-only cluster); default `true`.
    pub restore: Option<bool>,
    /// The kinds a restore may write, comma-separated `group/resource` (`resource` for
    /// the core group), e.g. `apps/deployments,configmaps`; default every kind.
    pub restore_kinds: Option<String>,
    /// `false`: no hooks role (backup hooks cannot exec in Pods); default `true`.
    pub hooks: Option<bool>,
}

impl ManifestParams {
    /// Checked before anything else happens (a one-time link is not spent on a typo).
    fn rbac(&self) -> Result<AgentRbac, ApiError> {
        let bad = |detail: String| {
            ApiError::from(Problem::new(StatusCode::BAD_REQUEST, "invalid_query", detail).with_field("restoreKinds"))
        };
        let restore_kinds = RestoreKind::parse_list(self.restore_kinds.as_deref().unwrap_or(""))
            .map_err(|e| bad(format!("restoreKinds: {e}")))?;
        let backup_only = self.restore == Some(false);
        if backup_only && !restore_kinds.is_empty() {
            return Err(bad(
                "restoreKinds: a backup-only agent (restore=false) restores no kind".into(),
            ));
        }
        Ok(AgentRbac {
            backup_only,
            restore_kinds,
            without_hooks: self.hooks == Some(false),
        })
    }
}

/// What creating an install link answers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallLinkBody {
    pub cluster_id: ClusterId,
    /// The manifest's one-time URL; the token in it is the only credential needed.
    pub url: String,
    /// The one line the user runs.
    pub command: String,
    pub expires_at: DateTime<Utc>,
    /// How to remove the agent again.
    pub uninstall: Vec<String>,
}

/// The base URL agents and `kubectl` reach this API at: `ARCA_PUBLIC_URL`, else the
/// host this request came in on (behind a proxy, `X-Forwarded-Host`/`-Proto`).
fn base_url(s: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(url) = &s.agent.public_url {
        return Ok(url.clone());
    }
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let host = value("x-forwarded-host")
        .or_else(|| value(header::HOST.as_str()))
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        })
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "host_required",
                "no usable Host header to build the agent's API URL from; the deployment can set ARCA_PUBLIC_URL",
            )
        })?;
    let proto = match value("x-forwarded-proto") {
        Some("http") => "http",
        Some(_) => "https",
        // A direct request to a local server is plain HTTP; anything else is behind TLS.
        None if host.starts_with("127.0.0.1") || host.starts_with("localhost") || host.starts_with("[::1]") => "http",
        None => "https",
    };
    Ok(format!("{proto}://{host}"))
}

fn uninstall_commands() -> Vec<String> {
    vec![
        format!("kubectl delete namespace {}", manifest::NAMESPACE),
        format!(
            "kubectl delete clusterrole,clusterrolebinding,crd -l {}={}",
            manifest::PART_OF_LABEL,
            manifest::PART_OF
        ),
    ]
}

fn manifest_response(s: &AppState, api_url: &str, install: &AgentInstall, rbac: &AgentRbac) -> ApiResult<Response> {
    let objects = manifest::objects(&ManifestInput {
        cluster_id: install.cluster.id,
        api_url,
        agent_token: &install.agent_token,
        image: &s.agent.image,
        installed_at: DateTime::<Utc>::from(std::time::SystemTime::now()),
        rbac,
    });
    let yaml = manifest::to_yaml(&install.cluster.id, &objects).map_err(arca_core::Error::permanent)?;
    let mut response = (StatusCode::OK, yaml).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
    // It holds a live credential: no cache anywhere may keep a copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Creates the cluster's one-time install link (replacing any earlier one).
#[utoipa::path(post, path = "/v1/clusters/{id}/install", tag = "clusters",
    description = role_doc(Op::CreateInstallLink, "The link works once, for an hour; the manifest's agent token becomes the cluster's \
        at the new agent's first call (the running agent keeps working until then)."),
    params(("id" = String, Path, description = "cl_<ULID>")),
    responses((status = 201, description = "`{clusterId, url, command, expiresAt, uninstall}`", body = serde_json::Value),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn create_install_link(
    call: KeyCall,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<InstallLinkBody>)> {
    let (cp, p) = call.require(Op::CreateInstallLink)?;
    let id = path_id(&id)?;
    // Another org's cluster is 404 before anything about this request is judged.
    cp.get_cluster(p, &id).await?;
    let base = base_url(&call.state, &headers)?;
    let link = cp.create_install_link(p, &id).await?;
    let url = format!("{base}/v1/install/{}/agent.yaml", link.token.expose());
    Ok((
        StatusCode::CREATED,
        Json(InstallLinkBody {
            cluster_id: link.cluster_id,
            command: format!("kubectl apply -f {url}"),
            url,
            expires_at: link.expires_at,
            uninstall: uninstall_commands(),
        }),
    ))
}

/// The cluster's agent manifest, with an API key. Rotates the agent token.
#[utoipa::path(get, path = "/v1/clusters/{id}/agent.yaml", tag = "clusters",
    description = role_doc(Op::InstallAgentToken, "Mints a new agent token (the old one stops working) and returns the manifest."),
    params(("id" = String, Path, description = "cl_<ULID>"), ManifestParams),
    responses((status = 200, description = "The manifest (application/yaml)", content_type = "application/yaml", body = String),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn agent_manifest(
    call: KeyCall,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<ManifestParams>,
) -> ApiResult<Response> {
    let (cp, p) = call.require(Op::InstallAgentToken)?;
    let rbac = params.rbac()?;
    let id = path_id(&id)?;
    cp.get_cluster(p, &id).await?;
    // Before the token rotates: a manifest that cannot be built must not cost the
    // running agent its token.
    let base = base_url(&call.state, &headers)?;
    let install = cp.install_agent_token(p, &id).await?;
    manifest_response(&call.state, &base, &install, &rbac)
}

/// The agent manifest behind a one-time install link (no API key: the token is the
/// credential). Works once; its agent token becomes the cluster's at the agent's first call.
#[utoipa::path(get, path = "/v1/install/{token}/agent.yaml", tag = "clusters", security(()),
    description = "No API key: the one-time token in the path. 410 `install_link_used` (unknown or already \
        fetched) or `install_link_expired`.",
    params(("token" = String, Path, description = "arcainst_…"), ManifestParams),
    responses((status = 200, description = "The manifest (application/yaml)", content_type = "application/yaml", body = String),
        (status = 400, body = Problem), (status = 410, body = Problem)))]
pub async fn install_manifest(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(params): Query<ManifestParams>,
) -> ApiResult<Response> {
    let rbac = params.rbac()?;
    let base = base_url(&s, &headers)?;
    let install = s
        .control_plane
        .consume_install_link(&Secret::from_presented(token))
        .await?;
    manifest_response(&s, &base, &install, &rbac)
}
