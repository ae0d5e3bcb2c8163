//! The audit layer: one place that records every mutating API-key call. It wraps each
//! `/v1` route (after routing, so it knows the route template); for the routes of
//! [`audited_operation`] it hands the request a slot that the [`crate::extract::KeyCall`]
//! extractor fills with the caller once the key authenticates, and after the handler
//! answered it writes one `AuditRecord` with the answer's status. A failed write is
//! logged and never changes the answer. Calls that did not authenticate have no org to
//! record into: the extractor logs them (never the presented key).

use std::sync::{Arc, Mutex};

use arca_core::ids::{ApiKeyId, OrgId};
use arca_core::model::audit::AuditEntry;
use arca_core::model::auth::{Operation, Role};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Who a call authenticated as, as the audit record names it (never the secret).
#[derive(Clone, Debug)]
struct Caller {
    org_id: OrgId,
    key_id: ApiKeyId,
    key_name: String,
    role: Role,
}

/// Where the key extractor leaves the caller of an audited request.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuditSlot(Arc<Mutex<Option<Caller>>>);

impl AuditSlot {
    pub(crate) fn fill(&self, key: &arca_core::model::auth::ApiKey) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(Caller {
                org_id: key.org_id,
                key_id: key.id,
                key_name: key.name.clone(),
                role: key.role,
            });
        }
    }

    fn take(&self) -> Option<Caller> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// The operation an API-key route performs when it is audited: every POST, PUT, PATCH
/// and DELETE called with an API key, and the one GET that changes something (an
/// admin's agent manifest replaces the cluster's agent token). Sign-up, the operator's
/// route and the agent protocol are not API-key calls. A unit test holds this table to
/// the OpenAPI document: every mutating API-key route is here, with its role.
pub fn audited_operation(method: &Method, route: &str) -> Option<Operation> {
    use Operation as Op;
    let op = match (method.as_str(), route) {
        ("PUT", "/v1/org") => Op::UpdateOrg,
        ("POST", "/v1/apikeys") => Op::CreateApiKey,
        ("DELETE", "/v1/apikeys/{id}") => Op::DeleteApiKey,
        ("POST", "/v1/clusters") => Op::RegisterCluster,
        ("PUT", "/v1/clusters/{id}") => Op::UpdateCluster,
        ("DELETE", "/v1/clusters/{id}") => Op::DeleteCluster,
        ("POST", "/v1/clusters/{id}/rotate-token") => Op::RotateAgentToken,
        ("POST", "/v1/clusters/{id}/rotate-archive-key") => Op::RotateArchiveKey,
        ("POST", "/v1/clusters/{id}/install") => Op::CreateInstallLink,
        ("GET", "/v1/clusters/{id}/agent.yaml") => Op::InstallAgentToken,
        ("POST", "/v1/destinations") => Op::CreateDestination,
        ("PUT", "/v1/destinations/{id}") => Op::UpdateDestination,
        ("DELETE", "/v1/destinations/{id}") => Op::DeleteDestination,
        ("POST", "/v1/destinations/{id}/repositories/{clusterId}/purge") => Op::BeginPurge,
        ("POST", "/v1/destinations/{id}/repositories/{clusterId}/purge/complete") => Op::CompletePurge,
        ("POST", "/v1/policies") => Op::CreatePolicy,
        ("PUT", "/v1/policies/{id}") => Op::UpdatePolicy,
        ("DELETE", "/v1/policies/{id}") => Op::DeletePolicy,
        ("POST", "/v1/backups") => Op::CreateBackupDefinition,
        ("PUT", "/v1/backups/{id}") => Op::UpdateBackupDefinition,
        ("DELETE", "/v1/backups/{id}") => Op::DeleteBackupDefinition,
        ("POST", "/v1/backups/{id}/run") => Op::RunBackupNow,
        ("POST", "/v1/backups/{id}/pause" | "/v1/backups/{id}/resume") => Op::SetBackupPaused,
        ("POST", "/v1/jobs/{id}/cancel") => Op::CancelJob,
        ("DELETE", "/v1/recoverypoints/{id}") => Op::DeleteRecoveryPoint,
        ("POST", "/v1/restores") => Op::CreateRestore,
        ("POST", "/v1/recoverypoints/{id}/verify") => Op::VerifyRecoveryPoint,
        ("POST", "/v1/cloud-accounts") => Op::LinkCloudAccount,
        ("PUT", "/v1/cloud-accounts/{id}") => Op::UpdateCloudAccount,
        ("DELETE", "/v1/cloud-accounts/{id}") => Op::DeleteCloudAccount,
        ("PUT", "/v1/cloud-accounts/{id}/role") => Op::SetCloudAccountRole,
        ("POST", "/v1/cloud-accounts/{id}/verify") => Op::VerifyCloudAccount,
        ("POST", "/v1/cloud-accounts/{id}/inventory") => Op::InventoryCloudAccount,
        ("POST", "/v1/recoverypoints/{id}/recreate-eks") => Op::RecreateEks,
        ("POST", "/v1/rds-backups") => Op::CreateRdsBackupDefinition,
        ("PUT", "/v1/rds-backups/{id}") => Op::UpdateRdsBackupDefinition,
        ("DELETE", "/v1/rds-backups/{id}") => Op::DeleteRdsBackupDefinition,
        ("POST", "/v1/rds-backups/{id}/run") => Op::RunRdsBackupNow,
        ("POST", "/v1/rds-backups/{id}/pause" | "/v1/rds-backups/{id}/resume") => Op::SetRdsBackupPaused,
        ("POST", "/v1/rds-restores") => Op::CreateRdsRestore,
        ("POST", "/v1/rds-recoverypoints/{id}/verify") => Op::VerifyRecoveryPoint,
        ("POST", "/v1/alerts/channels") => Op::CreateAlertChannel,
        ("PATCH", "/v1/alerts/channels/{id}") => Op::UpdateAlertChannel,
        ("DELETE", "/v1/alerts/channels/{id}") => Op::DeleteAlertChannel,
        ("POST", "/v1/alerts/channels/{id}/test") => Op::TestAlertChannel,
        _ => return None,
    };
    Some(op)
}

/// The values of the route's `{…}` segments in `path`, in order.
fn path_ids(route: &str, path: &str) -> Vec<String> {
    route
        .split('/')
        .zip(path.split('/'))
        .filter(|(template, _)| template.starts_with('{'))
        .map(|(_, value)| value.to_owned())
        .collect()
}

/// The id of what a call created, as its `Location` names it (`/v1/jobs/job_…`).
fn created_id(response: &Response, path: &str) -> Option<String> {
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    if location == path {
        return None;
    }
    location
        .rsplit('/')
        .next()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// The middleware: see the module's description.
pub(crate) async fn record(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let Some(operation) = audited_operation(&method, &route) else {
        return next.run(request).await;
    };
    let path = request.uri().path().to_owned();
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    // No caller: the key did not authenticate (logged by the extractor), no org to
    // record into.
    let Some(caller) = slot.take() else {
        return response;
    };
    let mut target_ids = path_ids(&route, &path);
    target_ids.extend(created_id(&response, &path));
    let entry = AuditEntry {
        key_id: caller.key_id,
        key_name: caller.key_name,
        role: caller.role,
        operation,
        method: method.as_str().to_owned(),
        route: route.clone(),
        target_ids,
        status: response.status().as_u16(),
    };
    if let Err(e) = state.control_plane.record_audit(&caller.org_id, entry).await {
        tracing::warn!(error = %e, operation = %operation.name(), route = %route, key_id = %caller.key_id,
            "the audit record of this call was not written");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_are_the_template_segments() {
        assert_eq!(
            path_ids(
                "/v1/destinations/{id}/repositories/{clusterId}/purge",
                "/v1/destinations/dst_1/repositories/cl_2/purge"
            ),
            vec!["dst_1", "cl_2"]
        );
        assert!(path_ids("/v1/apikeys", "/v1/apikeys").is_empty());
    }

    /// Every POST/PUT/PATCH/DELETE of the document that takes an API key is audited,
    /// and the table's operation takes the role the document states for the route.
    #[test]
    fn every_mutating_api_key_route_is_audited_with_its_role() {
        let doc = serde_json::to_value(crate::openapi()).expect("document");
        let paths = doc["paths"].as_object().expect("paths");
        let mut mutating = 0;
        for (route, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                let description = op["description"].as_str().unwrap_or("");
                let key_call = description.starts_with("Role: ");
                let audited = audited_operation(&method, route);
                let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
                if changes && key_call {
                    mutating += 1;
                    assert!(audited.is_some(), "{method} {route} is not audited");
                }
                if let Some(operation) = audited {
                    assert!(key_call, "{method} {route} is audited but takes no API key");
                    let role = format!("Role: {}.", operation.role().as_str());
                    assert!(
                        description.starts_with(&role),
                        "{method} {route}: {operation:?} takes {role} but the document says {description:?}"
                    );
                }
            }
        }
        assert!(mutating > 30, "only {mutating} mutating routes found");
    }
}
