//! Extractors: the caller, the `If-Match` precondition, JSON bodies and query strings,
//! each rejecting with a problem that names what is wrong (field, header, parameter).

use std::str::FromStr;

use arca_core::control_plane::ControlPlane;
use arca_core::model::auth::{Operation, Principal, Role};
use arca_core::model::secret::Secret;
use arca_core::store::page::PageRequest;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::error::{ApiError, unauthenticated};
use crate::problem::Problem;
use crate::state::AppState;

/// A call with an API key (`Authorization: Bearer <api key>`): the application state and
/// the authenticated caller, what every API-key handler starts from. Extracting it is
/// authenticating (401 without a valid key); [`KeyCall::require`] is the role gate.
pub struct KeyCall {
    pub state: AppState,
    caller: Principal,
}

impl KeyCall {
    /// The control plane and the caller, once the caller's role admits `operation`. The
    /// role comes from the one table ([`Operation::role`]) the service enforces too;
    /// checked here, before the handler parses ids, so a caller below it learns nothing
    /// else (403 `forbidden` naming `requiredRole`).
    pub fn require(&self, operation: Operation) -> Result<(&ControlPlane, &Principal), ApiError> {
        self.caller.require(operation).map_err(|e| {
            ApiError::from(e)
                .recode(StatusCode::FORBIDDEN, "forbidden")
                .with_required_role(operation.role())
        })?;
        Ok((&self.state.control_plane, &self.caller))
    }
}

impl ApiError {
    fn with_required_role(mut self, role: Role) -> Self {
        self.0
            .extensions
            .insert("requiredRole".to_owned(), role.as_str().into());
        self
    }
}

/// The bearer token of a request, or a 401 naming what was expected.
fn bearer(parts: &Parts, what: &str) -> Result<Secret, ApiError> {
    let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::from(unauthenticated(&format!(
            "missing Authorization header: send `Authorization: Bearer <{what}>`"
        )))
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::from(unauthenticated(&format!(
                "the Authorization header must be `Bearer <{what}>`"
            )))
        })?;
    // The token itself is never logged: `Secret`'s Debug hides it.
    Ok(Secret::from_presented(token))
}

impl FromRequestParts<AppState> for KeyCall {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // A failed sign-in is logged, never the presented key: an API key carries no id,
        // so there is no org whose audit trail it could go to.
        let signin_failed = |reason: &str| {
            tracing::warn!(method = %parts.method, path = %parts.uri.path(), reason, "API key sign-in failed");
        };
        let key = bearer(parts, "api key").inspect_err(|_| signin_failed("no bearer token"))?;
        let (caller, api_key) = state.control_plane.authenticate_key(&key).await.inspect_err(|e| {
            if matches!(e, arca_core::Error::Unauthenticated) {
                signin_failed("no such key");
            }
        })?;
        if let Some(slot) = parts.extensions.get::<crate::audit::AuditSlot>() {
            slot.fill(&api_key);
        }
        Ok(KeyCall {
            state: state.clone(),
            caller,
        })
    }
}

/// The deployment operator's token as presented (checked by the service it is given to).
pub struct OperatorToken(pub Secret);

impl FromRequestParts<AppState> for OperatorToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        bearer(parts, "operator token").map(OperatorToken)
    }
}

/// An authenticated agent (from `Authorization: Bearer <agent token>`) and the session
/// it presents (`X-Arca-Agent-Session`, absent only on connect).
#[derive(Clone, Debug)]
pub struct AgentCaller {
    pub agent: arca_core::model::agent::AgentPrincipal,
    session: Option<String>,
}

impl AgentCaller {
    /// The session id, required on every agent call but connect.
    pub fn session(&self) -> Result<&str, ApiError> {
        self.session.as_deref().ok_or_else(|| {
            ApiError::from(
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "session_required",
                    "send the session id from /v1/agent/connect in X-Arca-Agent-Session",
                )
                .with_field(arca_core::model::agent::SESSION_HEADER),
            )
        })
    }
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::from(unauthenticated(
                    "agent calls need `Authorization: Bearer <agent token>` (the cluster's token)",
                ))
            })?;
        // The token is never logged: `Secret`'s Debug hides it.
        let agent = state
            .control_plane
            .authenticate_agent(&Secret::from_presented(token))
            .await
            .map_err(|e| match e {
                arca_core::Error::Unauthenticated => ApiError::from(unauthenticated("invalid agent token")),
                other => ApiError::from(other),
            })?;
        let session = parts
            .headers
            .get(arca_core::model::agent::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .map(str::to_owned);
        Ok(AgentCaller { agent, session })
    }
}

/// The ETag a write is conditional on, as the entity version it names.
fn parse_etag(value: &str) -> Option<u64> {
    let value = value.trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    value.parse().ok()
}

/// The ETag of an entity at `version`.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

fn if_match(parts: &Parts) -> Result<Option<u64>, ApiError> {
    let Some(value) = parts.headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value.to_str().ok().and_then(parse_etag).map(Some).ok_or_else(|| {
        ApiError::from(
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_if_match",
                "If-Match must be one ETag as returned by a read of the resource (e.g. \"3\")",
            )
            .with_field("If-Match"),
        )
    })
}

/// A required `If-Match`: edits and deletes must say which version they start from,
/// so a lost update is impossible (428 without it, 412 when it is stale).
#[derive(Clone, Copy, Debug)]
pub struct IfMatch(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match if_match(parts)? {
            Some(version) => Ok(IfMatch(version)),
            None => Err(ApiError::from(
                Problem::new(
                    StatusCode::PRECONDITION_REQUIRED,
                    "if_match_required",
                    "this change needs an If-Match header with the ETag of the version you read",
                )
                .with_field("If-Match"),
            )),
        }
    }
}

/// An optional `If-Match`, for actions (pause, cancel): without it they apply to
/// whatever the current version is.
#[derive(Clone, Copy, Debug)]
pub struct OptionalIfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for OptionalIfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(OptionalIfMatch(if_match(parts)?))
    }
}

/// Most bytes a request body may have: every document of the API is small.
const MAX_BODY: usize = 256 * 1024;

/// A user's JSON body, parsed so that an error names the field by its JSON path. A key
/// the type does not know is a 400, so a typo is never a silently ignored setting.
/// An empty body reads as `{}` when `T` allows it (actions with optional options).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse_json(&json_bytes(request, state).await?).map(Body)
    }
}

/// An agent's report. Unlike a user's [`Body`], keys this API does not know are skipped:
/// an agent newer than the control plane may report more than it reads.
#[derive(Debug)]
pub struct AgentBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AgentBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse_json_with(&json_bytes(request, state).await?, Unknown::Skip).map(AgentBody)
    }
}

/// The body of a JSON request, at most [`MAX_BODY`] bytes; an empty one reads as `{}`.
async fn json_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::from(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "request bodies are JSON: send Content-Type: application/json",
            )));
        }
    }
    let bytes = Bytes::from_request(request, state).await.map_err(|e| {
        ApiError::from(Problem::new(
            e.status(),
            "unreadable_body",
            format!("the body could not be read: {}", e.body_text()),
        ))
    })?;
    if bytes.len() > MAX_BODY {
        return Err(ApiError::from(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {MAX_BODY} bytes"),
        )));
    }
    Ok(if bytes.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        bytes
    })
}

/// What to do with a key the target type does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    Refuse,
    Skip,
}

/// Parses `bytes` as a `T`, or a 400 naming the JSON path of the first problem; a key
/// `T` does not know is such a problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json_with(bytes, Unknown::Refuse)
}

pub fn parse_json_with<T: DeserializeOwned>(bytes: &[u8], unknown_keys: Unknown) -> Result<T, ApiError> {
    let malformed = |e: &serde_json::Error| {
        ApiError::from(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        ))
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // Types that flatten their spec (stored entities) cannot `deny_unknown_fields`; an
    // ignored key is refused here instead, so a typo never becomes a silent default.
    let mut unknown: Option<String> = None;
    let mut track = serde_path_to_error::Track::new();
    let parsed: Result<T, _> = serde_ignored::deserialize(
        serde_path_to_error::Deserializer::new(&mut deserializer, &mut track),
        |path| {
            unknown.get_or_insert_with(|| json_path(&path));
        },
    );
    let value: T = parsed
        .map_err(|inner| serde_path_to_error::Error::new(track.path(), inner))
        .map_err(|e| {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                return malformed(inner);
            }
            let message = inner.to_string();
            let field = field_path(&e.path().to_string(), &message);
            // serde's own wording ("unknown field `x`, expected one of ...") names the
            // allowed fields: useful to the caller and free of internals.
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            ApiError::from(
                Problem::new(StatusCode::BAD_REQUEST, "invalid_body", format!("{field}: {message}")).with_field(field),
            )
        })?;
    deserializer.end().map_err(|e| malformed(&e))?;
    if let Some(field) = unknown.filter(|_| unknown_keys == Unknown::Refuse) {
        let name = field.rsplit('.').next().unwrap_or(&field).to_owned();
        return Err(ApiError::from(
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("{field}: unknown field `{name}`"),
            )
            .with_field(field),
        ));
    }
    Ok(value)
}

/// An ignored key's JSON path in the form the other errors use (`schedules[0].cronn`).
fn json_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", json_path(parent)),
        Path::Map { parent, key } => match json_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => json_path(parent),
    }
}

/// The JSON path of a deserialization error. For an unknown field, serde's path ends
/// at the object holding it, so the field's own name is appended.
fn field_path(path: &str, message: &str) -> String {
    let path = if path == "." { "" } else { path };
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match named {
        Some(name) if path.is_empty() || path.ends_with('?') => {
            let parent = path.trim_end_matches('?').trim_end_matches('.');
            if parent.is_empty() {
                name.to_owned()
            } else {
                format!("{parent}.{name}")
            }
        }
        Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
        _ if path.is_empty() => "body".to_owned(),
        _ => path.to_owned(),
    }
}

/// A query string, parsed into `T` (400 naming the parameter when it does not fit).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Query).map_err(|e| {
            let field = e.path().to_string();
            let message = e.inner().to_string();
            let field = field_path(&field, &message);
            ApiError::from(
                Problem::new(StatusCode::BAD_REQUEST, "invalid_query", format!("{field}: {message}")).with_field(field),
            )
        })
    }
}

/// `?limit=&cursor=` of every listing.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl From<PageParams> for PageRequest {
    fn from(p: PageParams) -> Self {
        PageRequest {
            cursor: p.cursor,
            limit: p.limit,
        }
    }
}

/// The URL path's parameters. axum's own extractor answers a path it cannot decode
/// (percent-encoding that is not UTF-8) with a plain-text 400; this one with a problem.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::from(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("the URL path could not be read: {}", rejection.body_text()),
            ))),
        }
    }
}

/// Parses an id from the URL path; a malformed id is a 400 naming the parameter.
pub fn path_id<T: FromStr<Err = arca_core::Error>>(raw: &str) -> Result<T, ApiError> {
    raw.parse::<T>().map_err(|e| match e {
        arca_core::Error::Invalid { message, .. } => ApiError::from(
            Problem::new(StatusCode::BAD_REQUEST, "invalid_id", format!("id: {message}")).with_field("id"),
        ),
        other => ApiError::from(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_parse_strong_weak_and_bare() {
        assert_eq!(parse_etag("\"3\""), Some(3));
        assert_eq!(parse_etag("W/\"12\""), Some(12));
        assert_eq!(parse_etag(" 7 "), Some(7));
        assert_eq!(parse_etag("*"), None, "a wildcard would defeat the lost-update check");
        assert_eq!(parse_etag("\"1\", \"2\""), None);
        assert_eq!(etag(4), "\"4\"");
    }

    #[test]
    fn unknown_fields_are_named_by_their_path() {
        assert_eq!(field_path("", "unknown field `nmae`, expected `name`"), "nmae");
        assert_eq!(
            field_path("schedules[0]", "unknown field `cronn`, expected ..."),
            "schedules[0].cronn"
        );
        assert_eq!(
            field_path("schedules[0].?", "unknown field `cronn`, expected ..."),
            "schedules[0].cronn"
        );
        assert_eq!(
            field_path("schedules[0].retainDays", "invalid type"),
            "schedules[0].retainDays"
        );
        assert_eq!(field_path("", "missing field `name`"), "name");
        assert_eq!(field_path("target", "missing field `bucket`"), "target.bucket");
        assert_eq!(field_path("", "expected a map"), "body");
    }

    #[test]
    fn keys_a_type_would_ignore_are_refused_by_path() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Row {
            cron: String,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Lenient {
            name: String,
            rows: Vec<Row>,
            copy: Option<Row>,
        }
        let refused = |body: &str| match parse_json::<Lenient>(body.as_bytes()) {
            Ok(v) => panic!("accepted {v:?}"),
            Err(e) => serde_json::to_value(&*e.0).expect("problem"),
        };
        let p = refused(r#"{"name":"n","rows":[{"cron":"x"},{"cron":"y","cronn":"z"}]}"#);
        assert_eq!(
            (p["code"].as_str(), p["field"].as_str()),
            (Some("invalid_body"), Some("rows[1].cronn"))
        );
        let p = refused(r#"{"name":"n","rows":[],"copy":{"cron":"x","retain":1}}"#);
        assert_eq!(p["field"], "copy.retain");
        let p = refused(r#"{"nmae":"n","name":"n","rows":[]}"#);
        assert_eq!(p["field"], "nmae");
        assert!(parse_json::<Lenient>(br#"{"name":"n","rows":[{"cron":"x"}],"copy":null}"#).is_ok());
    }
}
