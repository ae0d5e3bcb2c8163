//! The agent protocol (`/v1/agent/...`), authenticated by the cluster's agent token.
//! Every call but `connect` carries the session id `connect` returned; a newer connect
//! with the same token supersedes it (409 `superseded`: the older agent stops).

use arca_core::ids::JobId;
use arca_core::model::agent::{
    AgentJob, CompletionReport, ConnectRequest, Connected, LeaseRequest, ProgressReport, RestoreResultsBatch,
};
use arca_core::model::cloud::ebs::{EbsSnapshotsRequest, EbsSnapshotsTaken, EbsVolumeCreated, EbsVolumeRequest};
use arca_core::model::cluster::{Cluster, Heartbeat};
use arca_core::model::job::Job;
use arca_core::ports::credentials::DestinationAccess;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiResult;
use crate::extract::{AgentBody, AgentCaller, Path, path_id};
use crate::problem::Problem;
use crate::state::AppState;

/// Starts a session; every earlier session of this cluster is superseded.
#[utoipa::path(post, path = "/v1/agent/connect", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token. Returns the session id and the timing to keep. The body may be empty.",
    request_body = Option<serde_json::Value>,
    responses((status = 200, body = serde_json::Value), (status = 401, body = Problem)))]
pub async fn connect(
    State(s): State<AppState>,
    caller: AgentCaller,
    AgentBody(body): AgentBody<ConnectRequest>,
) -> ApiResult<Json<Connected>> {
    Ok(Json(s.control_plane.agent_connect(&caller.agent, body).await?))
}

/// Liveness and facts (versions, node count, inventory, capabilities).
#[utoipa::path(post, path = "/v1/agent/heartbeat", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token and session. The body may be empty.",
    request_body = Option<serde_json::Value>,
    params(("X-Arca-Agent-Session" = String, Header, description = "The session id `connect` returned")),
    responses((status = 200, description = "The cluster as the API shows it", body = serde_json::Value),
        (status = 401, body = Problem), (status = 409, description = "superseded", body = Problem)))]
pub async fn heartbeat(
    State(s): State<AppState>,
    caller: AgentCaller,
    AgentBody(body): AgentBody<Heartbeat>,
) -> ApiResult<Json<Cluster>> {
    let session = caller.session()?;
    Ok(Json(
        s.control_plane.agent_heartbeat(&caller.agent, session, body).await?,
    ))
}

/// Long poll (at most 20 s) for one job; 204 when none came.
#[utoipa::path(post, path = "/v1/agent/poll", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token and session.",
    params(("X-Arca-Agent-Session" = String, Header, description = "The session id `connect` returned")),
    responses((status = 200, description = "A job, leased to the caller", body = serde_json::Value),
        (status = 204, description = "No job"), (status = 409, description = "superseded", body = Problem)))]
pub async fn poll(State(s): State<AppState>, caller: AgentCaller) -> ApiResult<Response> {
    let session = caller.session()?;
    Ok(match s.control_plane.agent_poll(&caller.agent, session).await? {
        Some(job) => Json::<AgentJob>(job).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Extends the job's lease; the job in the answer says CANCELLING when the agent must stop.
#[utoipa::path(post, path = "/v1/agent/jobs/{id}/lease", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token and session.", request_body = serde_json::Value,
    params(("id" = String, Path, description = "job_<ULID>"), ("X-Arca-Agent-Session" = String, Header, description = "The session id `connect` returned")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem),
        (status = 409, description = "superseded | lease_lost", body = Problem)))]
pub async fn lease(
    State(s): State<AppState>,
    caller: AgentCaller,
    Path(id): Path<String>,
    AgentBody(body): AgentBody<LeaseRequest>,
) -> ApiResult<Json<Job>> {
    let session = caller.session()?;
    let id = path_id::<JobId>(&id)?;
    Ok(Json(
        s.control_plane
            .agent_extend_lease(&caller.agent, session, &id, body)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/agent/jobs/{id}/progress", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token and session.", request_body = serde_json::Value,
    params(("id" = String, Path), ("X-Arca-Agent-Session" = String, Header, description = "The session id `connect` returned")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn progress(
    State(s): State<AppState>,
    caller: AgentCaller,
    Path(id): Path<String>,
    AgentBody(body): AgentBody<ProgressReport>,
) -> ApiResult<Json<Job>> {
    let session = caller.session()?;
    let id = path_id::<JobId>(&id)?;
    Ok(Json(
        s.control_plane
            .agent_progress(&caller.agent, session, &id, body)
            .await?,
    ))
}

/// One batch (at most 100) of a restore job's per-object results; sending batch `seq`
/// again replaces it.
#[utoipa::path(post, path = "/v1/agent/jobs/{id}/results", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token and session. `{leaseToken, seq, objects[]}`.",
    request_body = serde_json::Value,
    params(("id" = String, Path), ("X-Arca-Agent-Session" = String, Header, description = "The session id `connect` returned")),
    responses((status = 204, description = "Stored"), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn results(
    State(s): State<AppState>,
    caller: AgentCaller,
    Path(id): Path<String>,
    AgentBody(body): AgentBody<RestoreResultsBatch>,
) -> ApiResult<StatusCode> {
    let session = caller.session()?;
    let id = path_id::<JobId>(&id)?;
    s.control_plane
        .agent_restore_results(&caller.agent, session, &id, body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How the job ended (COMPLETED, PARTIAL, FAILED, CANCELED), with what it produced.
#[utoipa::path(post, path = "/v1/agent/jobs/{id}/complete", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token and session.", request_body = serde_json::Value,
    params(("id" = String, Path), ("X-Arca-Agent-Session" = String, Header, description = "The session id `connect` returned")),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn complete(
    State(s): State<AppState>,
    caller: AgentCaller,
    Path(id): Path<String>,
    AgentBody(body): AgentBody<CompletionReport>,
) -> ApiResult<Json<Job>> {
    let session = caller.session()?;
    let id = path_id::<JobId>(&id)?;
    Ok(Json(
        s.control_plane
            .agent_complete(&caller.agent, session, &id, body)
            .await?,
    ))
}

/// Access to the job's destination: its configuration, plus short-lived credentials
/// scoped to this cluster's prefix for Arca-managed storage.
#[utoipa::path(post, path = "/v1/agent/jobs/{id}/credentials", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token and session.",
    params(("id" = String, Path), ("X-Arca-Agent-Session" = String, Header, description = "The session id `connect` returned")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn credentials(
    State(s): State<AppState>,
    caller: AgentCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<DestinationAccess>> {
    let session = caller.session()?;
    let id = path_id::<JobId>(&id)?;
    Ok(Json(
        s.control_plane.agent_credentials(&caller.agent, session, &id).await?,
    ))
}

/// EC2 snapshots of a running backup's EBS volumes, taken now: the agent asks between its
/// pre and post hooks, so the snapshots are of quiesced applications.
#[utoipa::path(post, path = "/v1/agent/jobs/{id}/ebs-snapshots", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token and session. `{volumes: [{pvName, volumeId, ...}]}`; the \
                   answer `{snapshots, errors, unprotected, ...}` is recorded on the job, and the same request \
                   again returns it.",
    request_body = serde_json::Value,
    params(("id" = String, Path), ("X-Arca-Agent-Session" = String, Header, description = "The session id `connect` returned")),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn ebs_snapshots(
    State(s): State<AppState>,
    caller: AgentCaller,
    Path(id): Path<String>,
    AgentBody(body): AgentBody<EbsSnapshotsRequest>,
) -> ApiResult<Json<EbsSnapshotsTaken>> {
    let session = caller.session()?;
    let id = path_id::<JobId>(&id)?;
    Ok(Json(
        s.control_plane
            .agent_ebs_snapshots(&caller.agent, session, &id, body.volumes)
            .await?,
    ))
}

/// A new EBS volume, from one of the restore job's EBS snapshots, for a claim the agent
/// restores: created through the cluster's linked AWS account in the zone asked for.
#[utoipa::path(post, path = "/v1/agent/jobs/{id}/ebs-volumes", tag = "agent", security(("agentToken" = [])),
    description = "Agent: the cluster's agent token and session. `{snapshotId, availabilityZone}`; the same \
                   request again returns the same volume.",
    request_body = serde_json::Value,
    params(("id" = String, Path), ("X-Arca-Agent-Session" = String, Header, description = "The session id `connect` returned")),
    responses((status = 201, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn ebs_volume(
    State(s): State<AppState>,
    caller: AgentCaller,
    Path(id): Path<String>,
    AgentBody(body): AgentBody<EbsVolumeRequest>,
) -> ApiResult<(StatusCode, Json<EbsVolumeCreated>)> {
    let session = caller.session()?;
    let id = path_id::<JobId>(&id)?;
    let created = s
        .control_plane
        .agent_ebs_volume(&caller.agent, session, &id, body)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}
