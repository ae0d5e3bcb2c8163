//! The `/v1` routes. Each handler declares its route and OpenAPI description together
//! (`#[utoipa::path]`) and is registered only through [`v1`], so the router and the
//! document come from one source. Handlers parse, gate the caller by the role of the
//! operation they call, call that one method of the control plane and shape the
//! response; the rules live in `arca_core::control_plane`. No handler names a role: the
//! gate, the service's own check and the "Role: x." of each description ([`role_doc`])
//! all read the one table, [`Operation::role`].

mod account;
mod agent;
mod alerts;
mod audit;
mod cloud;
pub mod contract;
mod install;
mod operations;
mod protection;
mod rds;

use std::sync::Arc;

use arca_core::model::auth::Operation;
use axum::Json;
use axum::extract::Extension;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as OpenApiDoc, SecurityRequirement};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::etag;
use crate::problem::Problem;
use crate::state::AppState;

/// The security scheme every operation but sign-up and the document uses.
pub const API_KEY_SCHEME: &str = "apiKey";
/// The scheme of the agent protocol: the cluster's agent token.
pub const AGENT_TOKEN_SCHEME: &str = "agentToken";
/// The scheme of the deployment operator's calls: its token, not an org's key.
pub const OPERATOR_TOKEN_SCHEME: &str = "operatorToken";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Arca API",
        description = "Backups of Kubernetes clusters and AWS RDS. Every change is conditional: \
            reads return an `ETag` (the entity's version); PUT and DELETE require `If-Match` \
            (428 without it, 412 when stale). Errors are `application/problem+json` with a stable `code`.",
    ),
    modifiers(&Security),
    components(schemas(Problem, Page)),
    tags(
        (name = "account", description = "Sign-up, the org and its API keys"),
        (name = "clusters"), (name = "cloud accounts", description = "Linked AWS accounts, their roles and inventory"), (name = "destinations"), (name = "policies"),
        (name = "backups", description = "Kubernetes backup definitions"),
        (name = "rds", description = "RDS and Aurora: backup definitions, snapshots and copies, restores"),
        (name = "jobs"), (name = "recoverypoints"), (name = "restores"),
        (name = "audit", description = "The org's audit trail (read only)"),
        (name = "alerts", description = "Alert channels (signed webhooks, email) and the delivery log"), (name = "meta"),
        (name = "agent", description = "The in-cluster agent's protocol (agent token, not an API key)"),
        (name = "operator", description = "The deployment operator's calls (operator token, not an API key)"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(API_KEY_SCHEME, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            AGENT_TOKEN_SCHEME,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            OPERATOR_TOKEN_SCHEME,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // Every operation needs a key unless it says otherwise (`security(())`).
        openapi.security = Some(vec![SecurityRequirement::new(API_KEY_SCHEME, Vec::<String>::new())]);
    }
}

/// One page of a listing (`items` are of the listed kind).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub items: Vec<serde_json::Value>,
    /// Present when more may follow: pass it back as `cursor`.
    pub next_cursor: Option<String>,
}

/// Every `/v1` route and the document describing them, its error responses completed
/// from each operation's shape ([`contract::complete`]).
pub fn v1_parts() -> (axum::Router<AppState>, OpenApiDoc) {
    let (router, mut doc) = v1().split_for_parts();
    contract::complete(&mut doc);
    (router, doc)
}

/// Every `/v1` route, with its documentation as the handlers declare it.
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .routes(routes!(account::signup))
        .routes(routes!(account::whoami))
        .routes(routes!(account::get_org, account::update_org))
        .routes(routes!(account::list_api_keys, account::create_api_key))
        .routes(routes!(account::get_api_key, account::delete_api_key))
        .routes(routes!(account::set_org_plan))
        .routes(routes!(audit::list_audit_records))
        .routes(routes!(alerts::list_alert_channels, alerts::create_alert_channel))
        .routes(routes!(
            alerts::get_alert_channel,
            alerts::update_alert_channel,
            alerts::delete_alert_channel
        ))
        .routes(routes!(alerts::test_alert_channel))
        .routes(routes!(alerts::list_alert_deliveries))
        .routes(routes!(protection::list_clusters, protection::create_cluster))
        .routes(routes!(
            protection::get_cluster,
            protection::update_cluster,
            protection::delete_cluster
        ))
        .routes(routes!(protection::rotate_agent_token))
        .routes(routes!(protection::rotate_archive_key))
        .routes(routes!(install::create_install_link))
        .routes(routes!(install::agent_manifest))
        .routes(routes!(install::install_manifest))
        .routes(routes!(protection::list_destinations, protection::create_destination))
        .routes(routes!(
            protection::get_destination,
            protection::update_destination,
            protection::delete_destination
        ))
        .routes(routes!(protection::destination_maintenance))
        .routes(routes!(protection::begin_purge))
        .routes(routes!(protection::complete_purge))
        .routes(routes!(protection::list_policies, protection::create_policy))
        .routes(routes!(
            protection::get_policy,
            protection::update_policy,
            protection::delete_policy
        ))
        .routes(routes!(protection::list_backups, protection::create_backup))
        .routes(routes!(
            protection::get_backup,
            protection::update_backup,
            protection::delete_backup
        ))
        .routes(routes!(operations::run_backup))
        .routes(routes!(operations::pause_backup))
        .routes(routes!(operations::resume_backup))
        .routes(routes!(operations::list_jobs))
        .routes(routes!(operations::get_job))
        .routes(routes!(operations::cancel_job))
        .routes(routes!(operations::list_recovery_points))
        .routes(routes!(
            operations::get_recovery_point,
            operations::delete_recovery_point
        ))
        .routes(routes!(operations::verify_recovery_point))
        .routes(routes!(operations::list_restores, operations::create_restore))
        .routes(routes!(operations::get_restore))
        .routes(routes!(operations::list_restore_objects))
        .routes(routes!(cloud::list_cloud_accounts, cloud::link_cloud_account))
        .routes(routes!(
            cloud::get_cloud_account,
            cloud::update_cloud_account,
            cloud::delete_cloud_account
        ))
        .routes(routes!(cloud::set_role))
        .routes(routes!(cloud::verify))
        .routes(routes!(cloud::run_inventory, cloud::get_inventory))
        .routes(routes!(cloud::list_findings))
        .routes(routes!(cloud::recovery_point_aws))
        .routes(routes!(cloud::recreate_eks))
        .routes(routes!(cloud::list_eks_recreations))
        .routes(routes!(cloud::get_eks_recreation))
        .routes(routes!(rds::list_rds_backups, rds::create_rds_backup))
        .routes(routes!(
            rds::get_rds_backup,
            rds::update_rds_backup,
            rds::delete_rds_backup
        ))
        .routes(routes!(rds::run_rds_backup))
        .routes(routes!(rds::pause_rds_backup))
        .routes(routes!(rds::resume_rds_backup))
        .routes(routes!(rds::list_rds_recovery_points))
        .routes(routes!(rds::get_rds_recovery_point))
        .routes(routes!(rds::verify_rds_recovery_point))
        .routes(routes!(rds::create_rds_restore))
        .routes(routes!(agent::connect))
        .routes(routes!(agent::heartbeat))
        .routes(routes!(agent::poll))
        .routes(routes!(agent::lease))
        .routes(routes!(agent::progress))
        .routes(routes!(agent::results))
        .routes(routes!(agent::complete))
        .routes(routes!(agent::credentials))
        .routes(routes!(agent::ebs_volume))
        .routes(routes!(agent::ebs_snapshots))
}

/// The OpenAPI document of this API, generated from the handlers.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3 document", body = serde_json::Value)))]
async fn openapi_json(Extension(doc): Extension<Arc<OpenApiDoc>>) -> Json<Arc<OpenApiDoc>> {
    Json(doc)
}

/// The description of an operation called with an API key: the role it takes, from the
/// table the service enforces ([`Operation::role`]), then `more` (may be empty).
pub(crate) fn role_doc(operation: Operation, more: &str) -> String {
    let role = operation.role().as_str();
    if more.is_empty() {
        format!("Role: {role}.")
    } else {
        format!("Role: {role}. {more}")
    }
}

/// An entity the API answers with its `ETag`: the version it names.
pub trait Versioned {
    fn version(&self) -> u64;
}

macro_rules! versioned {
    ($($entity:ty $(=> $($field:ident).+)?),+ $(,)?) => {$(
        impl Versioned for $entity {
            fn version(&self) -> u64 {
                self$($(.$field)+)?.version
            }
        }
    )+};
}

versioned!(
    arca_core::model::org::Org,
    arca_core::model::auth::ApiKey,
    arca_core::model::auth::CreatedApiKey => api_key,
    arca_core::model::cluster::Cluster,
    arca_core::control_plane::RegisteredCluster => cluster,
    arca_core::model::destination::Destination,
    arca_core::model::policy::Policy,
    arca_core::model::backup::BackupDefinitionView => definition,
    arca_core::model::job::Job,
    arca_core::model::recovery::RecoveryPoint,
    arca_core::model::restore::Restore,
    arca_core::control_plane::RestoreCreated => restore,
    arca_core::model::cloud::account::CloudAccountView => account,
    arca_core::model::cloud::ebs::EksRecreation,
    arca_core::model::rds::RdsBackupDefinition,
    arca_core::model::rds::RdsRecoveryPoint,
);

/// A JSON entity with its `ETag`; `201 Created` adds `Location`.
pub struct Tagged<T> {
    status: StatusCode,
    version: u64,
    location: Option<String>,
    body: T,
}

impl<T> Tagged<T> {
    pub fn ok(version: u64, body: T) -> Self {
        Tagged {
            status: StatusCode::OK,
            version,
            location: None,
            body,
        }
    }

    pub fn created(version: u64, location: String, body: T) -> Self {
        Tagged {
            status: StatusCode::CREATED,
            version,
            location: Some(location),
            body,
        }
    }
}

impl<T: Versioned> Tagged<T> {
    /// `200 OK` with the entity's version.
    pub fn current(body: T) -> Self {
        Tagged::ok(body.version(), body)
    }

    /// `201 Created` at `collection/{id}`.
    pub fn new_in(collection: &str, id: impl std::fmt::Display, body: T) -> Self {
        Tagged::created(body.version(), format!("{collection}/{id}"), body)
    }
}

impl<T: Serialize> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&etag(self.version)) {
            response.headers_mut().insert(header::ETAG, value);
        }
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}
