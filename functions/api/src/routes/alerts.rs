//! Alert channels (webhooks, email) and the delivery log. docs/alerts.md describes the
//! events, the payload and how a receiver verifies a webhook's signature.

use arca_core::control_plane::{DeliveryFilter, EMAIL_NEEDS_SES};
use arca_core::ids::AlertChannelId;
use arca_core::model::alert::{
    AlertChannelView, AlertDelivery, AlertEventKind, ChannelPatch, ChannelSpec, ChannelTarget, DeliveryStatus,
};
use arca_core::model::auth::Operation as Op;
use arca_core::store::page::{Listing, PageRequest};
use axum::Json;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Page, Tagged, role_doc};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IfMatch, KeyCall, PageParams, Path, Query, path_id};
use crate::problem::Problem;

/// The kind of a channel.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKindBody {
    Webhook,
    Email,
}

/// A new channel: `kind` with `url` (webhook) or `recipients` (email).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelBody {
    pub name: String,
    pub kind: ChannelKindBody,
    /// Webhooks: where to POST (https://…).
    pub url: Option<String>,
    /// Email: 1 to 10 addresses.
    pub recipients: Option<Vec<String>>,
    /// The event types it hears (`job.failed`, `job.partial`, `job.skipped`,
    /// `schedule.missed`, `agent.disconnected`, `cloudAccount.roleBroken`,
    /// `cloudAccount.stackUpdateAvailable`, `cloudAccount.findings`, `storage.reclaimFailed`); absent or empty:
    /// every one.
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Vec<AlertEventKind>>,
    /// Default true.
    pub enabled: Option<bool>,
    /// `agent.disconnected` after this many minutes without a heartbeat (5 to 10080,
    /// default 30).
    pub disconnected_after_minutes: Option<u32>,
}

/// The fields to change; the others stay. The kind never changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelPatchBody {
    pub name: Option<String>,
    /// Webhook channels only.
    pub url: Option<String>,
    /// Email channels only.
    pub recipients: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Vec<AlertEventKind>>,
    pub enabled: Option<bool>,
    pub disconnected_after_minutes: Option<u32>,
}

/// A created channel: the channel and, for a webhook, its signing secret (only here).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedChannel {
    #[serde(flatten)]
    pub channel: AlertChannelView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

fn target(
    kind: ChannelKindBody,
    url: Option<String>,
    recipients: Option<Vec<String>>,
) -> Result<ChannelTarget, ApiError> {
    let refuse = |field: &str, message: &str| ApiError::from(arca_core::Error::invalid(field, message));
    match (kind, url, recipients) {
        (ChannelKindBody::Webhook, Some(url), None) => Ok(ChannelTarget::Webhook { url }),
        (ChannelKindBody::Email, None, Some(recipients)) => Ok(ChannelTarget::Email { recipients }),
        (ChannelKindBody::Webhook, _, Some(_)) => {
            Err(refuse("recipients", "a webhook channel has a url, no recipients"))
        }
        (ChannelKindBody::Webhook, None, None) => Err(refuse("url", "a webhook channel needs a url")),
        (ChannelKindBody::Email, Some(_), _) => Err(refuse("url", "an email channel has recipients, no url")),
        (ChannelKindBody::Email, None, None) => Err(refuse("recipients", "an email channel needs recipients")),
    }
}

/// `email_needs_ses` for an email channel where no email sender is wired.
fn recoded(e: arca_core::Error) -> ApiError {
    let needs_ses = matches!(&e, arca_core::Error::Invalid { message, .. } if message == EMAIL_NEEDS_SES);
    let error = ApiError::from(e);
    if needs_ses {
        error.recode(StatusCode::BAD_REQUEST, "email_needs_ses")
    } else {
        error
    }
}

/// Creates a channel. A webhook's `signingSecret` is in this response only: receivers
/// verify `Arca-Signature` with it (docs/alerts.md).
#[utoipa::path(post, path = "/v1/alerts/channels", tag = "alerts",
    description = role_doc(Op::CreateAlertChannel, "At most 10 channels per org. 400 `email_needs_ses`: this deployment has no SES sender address (`ARCA_ALERTS_FROM`); set one or use a webhook."),
    request_body = ChannelBody,
    responses((status = 201, description = "The channel, with `signingSecret` for a webhook (shown once)", body = serde_json::Value),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_alert_channel(call: KeyCall, Body(body): Body<ChannelBody>) -> ApiResult<Tagged<CreatedChannel>> {
    let (cp, p) = call.require(Op::CreateAlertChannel)?;
    let spec = ChannelSpec {
        name: body.name,
        target: target(body.kind, body.url, body.recipients)?,
        events: body.events.unwrap_or_default(),
        enabled: body.enabled.unwrap_or(true),
        disconnected_after_minutes: body
            .disconnected_after_minutes
            .unwrap_or(arca_core::model::alert::DEFAULT_DISCONNECTED_AFTER_MINUTES),
    };
    let (channel, secret) = cp.create_alert_channel(p, spec).await.map_err(recoded)?;
    let location = format!("/v1/alerts/channels/{}", channel.id);
    let created = CreatedChannel {
        channel: channel.view(),
        signing_secret: secret.map(|s| s.expose().to_owned()),
    };
    Ok(Tagged::created(channel.version, location, created))
}

/// The org's channels (never their secrets).
#[utoipa::path(get, path = "/v1/alerts/channels", tag = "alerts", description = role_doc(Op::ListAlertChannels, ""),
    params(PageParams),
    responses((status = 200, body = Page), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_alert_channels(
    call: KeyCall,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Listing<AlertChannelView>>> {
    let (cp, p) = call.require(Op::ListAlertChannels)?;
    let listing = cp.list_alert_channels(p, &page.into()).await?;
    Ok(Json(Listing {
        items: listing.items.iter().map(|c| c.view()).collect(),
        next_cursor: listing.next_cursor,
    }))
}

/// One channel (never its secret).
#[utoipa::path(get, path = "/v1/alerts/channels/{id}", tag = "alerts", description = role_doc(Op::GetAlertChannel, ""),
    params(("id" = String, Path, description = "ach_<ULID>")),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_alert_channel(call: KeyCall, Path(id): Path<String>) -> ApiResult<Tagged<AlertChannelView>> {
    let (cp, p) = call.require(Op::GetAlertChannel)?;
    let channel = cp.get_alert_channel(p, &path_id(&id)?).await?;
    Ok(Tagged::ok(channel.version, channel.view()))
}

/// Changes a channel's name, URL or recipients, events, `enabled` or
/// `disconnectedAfterMinutes`; its kind and secret stay.
#[utoipa::path(patch, path = "/v1/alerts/channels/{id}", tag = "alerts",
    description = role_doc(Op::UpdateAlertChannel, "Requires `If-Match`."),
    request_body = ChannelPatchBody,
    params(("id" = String, Path, description = "ach_<ULID>"), ("If-Match" = String, Header, description = "The ETag of the version read")),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn update_alert_channel(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
    Body(body): Body<ChannelPatchBody>,
) -> ApiResult<Tagged<AlertChannelView>> {
    let (cp, p) = call.require(Op::UpdateAlertChannel)?;
    let id: AlertChannelId = path_id(&id)?;
    let target = match (body.url, body.recipients) {
        (Some(url), None) => Some(ChannelTarget::Webhook { url }),
        (None, Some(recipients)) => Some(ChannelTarget::Email { recipients }),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(arca_core::Error::invalid("url", "a channel has a url or recipients, not both").into());
        }
    };
    let patch = ChannelPatch {
        name: body.name,
        target,
        events: body.events,
        enabled: body.enabled,
        disconnected_after_minutes: body.disconnected_after_minutes,
    };
    let channel = cp
        .update_alert_channel(p, &id, patch, Some(version))
        .await
        .map_err(recoded)?;
    Ok(Tagged::ok(channel.version, channel.view()))
}

/// Deletes a channel; its log stays until it expires.
#[utoipa::path(delete, path = "/v1/alerts/channels/{id}", tag = "alerts",
    description = role_doc(Op::DeleteAlertChannel, "Requires `If-Match`."),
    params(("id" = String, Path, description = "ach_<ULID>"), ("If-Match" = String, Header)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn delete_alert_channel(
    call: KeyCall,
    IfMatch(version): IfMatch,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (cp, p) = call.require(Op::DeleteAlertChannel)?;
    cp.delete_alert_channel(p, &path_id(&id)?, Some(version)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a `test` event to the channel now and answers its delivery as the attempt left
/// it (`DELIVERED`, or `PENDING` with `lastStatus`/`lastError` and its next attempt).
#[utoipa::path(post, path = "/v1/alerts/channels/{id}/test", tag = "alerts",
    description = role_doc(Op::TestAlertChannel, ""),
    params(("id" = String, Path, description = "ach_<ULID>")),
    responses((status = 200, description = "The test event's delivery", body = serde_json::Value),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn test_alert_channel(call: KeyCall, Path(id): Path<String>) -> ApiResult<Json<AlertDelivery>> {
    let (cp, p) = call.require(Op::TestAlertChannel)?;
    Ok(Json(cp.test_alert_channel(p, &path_id(&id)?).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Only this channel's deliveries (`ach_<ULID>`).
    #[param(value_type = Option<String>)]
    pub channel_id: Option<AlertChannelId>,
    /// Only deliveries in this state: PENDING, DELIVERED or FAILED.
    #[param(value_type = Option<String>)]
    pub status: Option<DeliveryStatus>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The delivery log, newest first: each event sent to each channel, its attempts, its
/// status and the last answer (kept 30 days).
#[utoipa::path(get, path = "/v1/alerts/deliveries", tag = "alerts",
    description = role_doc(Op::ListAlertDeliveries, "Newest first; a status filter reads at most 10 store pages, so a page may be short while `nextCursor` is set."),
    params(DeliveryParams),
    responses((status = 200, body = Page), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_alert_deliveries(
    call: KeyCall,
    Query(q): Query<DeliveryParams>,
) -> ApiResult<Json<Listing<AlertDelivery>>> {
    let (cp, p) = call.require(Op::ListAlertDeliveries)?;
    let filter = DeliveryFilter {
        channel_id: q.channel_id,
        status: q.status,
    };
    let page = PageRequest {
        cursor: q.cursor,
        limit: q.limit,
    };
    Ok(Json(cp.list_alert_deliveries(p, &filter, &page).await?))
}
