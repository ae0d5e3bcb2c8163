//! The error half of the API contract, in one place. Handlers declare their success
//! responses and the errors only they can return (with the codes, e.g. 409
//! `policy_in_use`); everything a request can fail on because of what the extractors and
//! the store do is added here from the operation's shape, so a new route gets it without
//! repeating it:
//!
//! | shape of the operation                    | statuses                  |
//! |-------------------------------------------|---------------------------|
//! | any credential (API key, agent, operator) | 401                       |
//! | an API key or the operator token          | 403 (role gate)           |
//! | a request body                            | 400, 413, 415             |
//! | query, path or header parameters          | 400                       |
//! | a path parameter (an id)                  | 404                       |
//! | `If-Match`, required / optional           | 412 and 428 / 412         |
//! | an authenticated write                    | 409 (concurrent change)   |
//! | anything reaching the store               | 500, 503                  |
//!
//! Statuses only some handlers return (409 with a rule's code, 410, 422) are declared
//! there; a declaration without a description gets the shared one of its status.
//! No handler returns 429: the API has no rate limit of its own (on AWS, API Gateway's
//! throttling answers before the function runs).
//!
//! Every 4xx and 5xx, declared or added, is then `application/problem+json` with the
//! [`Problem`](crate::problem::Problem) schema: that is what [`crate::problem`] sends.
//! Every id in a path gets the pattern its parser accepts (`cl_<ULID>`, ...), so a client
//! (and a fuzzer) can tell a malformed id (400) from an unknown one (404).
//! `tests/api_contract.rs` checks the result.

use arca_core::ids::{
    AlertChannelId, ApiKeyId, BackupDefinitionId, CloudAccountId, ClusterId, DestinationId, EksRecreationId, JobId,
    OrgId, PolicyId, RdsBackupDefinitionId, RecoveryPointId, RestoreId,
};
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The operations that touch no store and need nothing: nothing but success to document.
const STATIC_PATHS: &[&str] = &["/v1/openapi.json"];

/// A reusable error response: its component name, status and what it means here.
struct Common {
    name: &'static str,
    status: u16,
    description: &'static str,
}

const BAD_REQUEST: Common = Common {
    name: "BadRequest",
    status: 400,
    description: "The request is malformed: `invalid_body`, `malformed_json`, `invalid_query`, `invalid_id`, \
        `invalid_path`, `invalid_if_match`, `session_required`, `validation_failed` (`field` names what is wrong)",
};
const UNAUTHENTICATED: Common = Common {
    name: "Unauthenticated",
    status: 401,
    description: "`unauthenticated`: no credential, or not a valid one",
};
const FORBIDDEN: Common = Common {
    name: "Forbidden",
    status: 403,
    description: "`forbidden`: the key's role is below the route's (`requiredRole`)",
};
const NOT_FOUND: Common = Common {
    name: "NotFound",
    status: 404,
    description: "`not_found`: no such entity in the caller's org",
};
const CONFLICT: Common = Common {
    name: "Conflict",
    status: 409,
    description: "`conflict`, `concurrent_modification` or a rule's own code",
};
const GONE: Common = Common {
    name: "Gone",
    status: 410,
    description: "`install_link_used` or `install_link_expired`",
};
const PRECONDITION_FAILED: Common = Common {
    name: "PreconditionFailed",
    status: 412,
    description: "`precondition_failed`: `If-Match` names a version that is no longer current",
};
const PAYLOAD_TOO_LARGE: Common = Common {
    name: "PayloadTooLarge",
    status: 413,
    description: "`body_too_large`",
};
const UNSUPPORTED_MEDIA_TYPE: Common = Common {
    name: "UnsupportedMediaType",
    status: 415,
    description: "`unsupported_media_type`: bodies are `application/json`",
};
const UNPROCESSABLE: Common = Common {
    name: "Unprocessable",
    status: 422,
    description: "`plan_limit_exceeded`: over a limit of the org's plan (`field` names what)",
};
const PRECONDITION_REQUIRED: Common = Common {
    name: "PreconditionRequired",
    status: 428,
    description: "`if_match_required`: send `If-Match` with the ETag of the version read",
};
const INTERNAL: Common = Common {
    name: "Internal",
    status: 500,
    description: "`internal`: a fault of the service; `requestId` says which log lines to ask about",
};
const UNAVAILABLE: Common = Common {
    name: "Unavailable",
    status: 503,
    description: "`unavailable`: a transient failure of the store; retry after `Retry-After` seconds",
};

const ALL: &[Common] = &[
    BAD_REQUEST,
    UNAUTHENTICATED,
    FORBIDDEN,
    NOT_FOUND,
    CONFLICT,
    GONE,
    PRECONDITION_FAILED,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    UNPROCESSABLE,
    PRECONDITION_REQUIRED,
    INTERNAL,
    UNAVAILABLE,
];

fn problem_content() -> Content {
    Content::new(Some(Ref::from_schema_name("Problem")))
}

fn string_header(description: &str) -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
    header.description = Some(description.to_owned());
    header
}

fn common_response(common: &Common) -> Response {
    let mut response = ResponseBuilder::new()
        .description(common.description)
        .content(PROBLEM_JSON, problem_content());
    if common.status == 401 {
        response = response.header("WWW-Authenticate", string_header("`Bearer`"));
    }
    if common.status == 503 {
        response = response.header("Retry-After", string_header("Seconds to wait"));
    }
    response.build()
}

/// Which credential an operation takes, from its (or the document's) security.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credential {
    None,
    ApiKey,
    Agent,
    Operator,
}

fn credential(operation: &Operation, default: &Option<Vec<utoipa::openapi::SecurityRequirement>>) -> Credential {
    let requirements = operation.security.as_ref().or(default.as_ref());
    // A requirement's scheme names are private to utoipa; its JSON form is `{name: []}`.
    let names: Vec<String> = requirements
        .into_iter()
        .flatten()
        .filter_map(|r| serde_json::to_value(r).ok())
        .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .flatten()
        .collect();
    if names.iter().any(|n| n == super::AGENT_TOKEN_SCHEME) {
        Credential::Agent
    } else if names.iter().any(|n| n == super::OPERATOR_TOKEN_SCHEME) {
        Credential::Operator
    } else if names.iter().any(|n| n == super::API_KEY_SCHEME) {
        Credential::ApiKey
    } else {
        Credential::None
    }
}

/// The statuses the operation's shape implies (table above).
fn implied(path: &str, method: &str, operation: &Operation, credential: Credential) -> Vec<&'static Common> {
    if STATIC_PATHS.contains(&path) {
        return Vec::new();
    }
    let params: Vec<(ParameterIn, String, bool)> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some((
                p.parameter_in.clone(),
                p.name.clone(),
                matches!(p.required, Required::True),
            )),
            RefOr::Ref(_) => None,
        })
        .collect();
    let mut statuses = vec![&INTERNAL, &UNAVAILABLE];
    if operation.request_body.is_some() {
        statuses.extend([&BAD_REQUEST, &PAYLOAD_TOO_LARGE, &UNSUPPORTED_MEDIA_TYPE]);
    }
    if !params.is_empty() {
        statuses.push(&BAD_REQUEST);
    }
    if params.iter().any(|(at, ..)| *at == ParameterIn::Path) {
        statuses.push(&NOT_FOUND);
    }
    if let Some((.., required)) = params
        .iter()
        .find(|(at, name, _)| *at == ParameterIn::Header && name.eq_ignore_ascii_case("if-match"))
    {
        statuses.push(&PRECONDITION_FAILED);
        if *required {
            statuses.push(&PRECONDITION_REQUIRED);
        }
    }
    if credential != Credential::None {
        statuses.push(&UNAUTHENTICATED);
        if method != "get" {
            statuses.push(&CONFLICT);
        }
    }
    if matches!(credential, Credential::ApiKey | Credential::Operator) {
        statuses.push(&FORBIDDEN);
    }
    statuses
}

/// The id prefix of a path parameter: `clusterId` is a cluster's, `id` that of the
/// collection the path names (`/v1/<collection>/{id}`, `/v1/agent/jobs/{id}`, ...).
fn id_prefix(path: &str, param: &str) -> Option<&'static str> {
    if param == "clusterId" {
        return Some(ClusterId::PREFIX);
    }
    if param != "id" {
        return None;
    }
    let collection = path.split("/{id}").next()?.rsplit('/').next()?;
    Some(match collection {
        "apikeys" => ApiKeyId::PREFIX,
        "backups" => BackupDefinitionId::PREFIX,
        "channels" => AlertChannelId::PREFIX,
        "cloud-accounts" => CloudAccountId::PREFIX,
        "clusters" => ClusterId::PREFIX,
        "destinations" => DestinationId::PREFIX,
        "eks-recreations" => EksRecreationId::PREFIX,
        "jobs" => JobId::PREFIX,
        "orgs" => OrgId::PREFIX,
        "policies" => PolicyId::PREFIX,
        "rds-backups" => RdsBackupDefinitionId::PREFIX,
        "recoverypoints" | "rds-recoverypoints" => RecoveryPointId::PREFIX,
        "restores" => RestoreId::PREFIX,
        _ => return None,
    })
}

/// What `Ulid::from_string` accepts after the prefix: 26 Crockford base-32 digits, the
/// first at most 7 (128 bits).
fn id_pattern(prefix: &str) -> String {
    format!("^{prefix}_[0-7][0-9A-HJKMNP-TV-Z]{{25}}$")
}

fn add_id_patterns(path: &str, operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else { continue };
        if parameter.parameter_in != ParameterIn::Path {
            continue;
        }
        let Some(prefix) = id_prefix(path, &parameter.name) else {
            continue;
        };
        parameter.schema = Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(id_pattern(prefix)))
                .into(),
        );
    }
}

/// Adds the implied error responses to every operation and makes every error response,
/// declared or added, `application/problem+json` with the `Problem` schema.
pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for common in ALL {
        components
            .responses
            .insert(common.name.to_owned(), RefOr::T(common_response(common)));
    }
    let default_security = doc.security.clone();
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation.as_mut() else { continue };
            add_id_patterns(path, operation);
            let credential = credential(operation, &default_security);
            for common in implied(path, method, operation, credential) {
                operation
                    .responses
                    .responses
                    .entry(common.status.to_string())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(common.name)));
            }
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(declared) = response else { continue };
                let code = status.parse::<u16>().ok();
                if code.is_none_or(|s| s < 400) {
                    // OpenAPI requires a description: a bare success gets its reason phrase.
                    if declared.description.is_empty() {
                        declared.description = code
                            .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                            .and_then(|c| c.canonical_reason())
                            .unwrap_or("Success")
                            .to_owned();
                    }
                    continue;
                }
                // A handler's own error keeps its description (the codes it names); a
                // bare one becomes the shared definition of its status.
                match ALL.iter().find(|c| c.status.to_string() == *status) {
                    Some(common) if declared.description.is_empty() => {
                        *response = RefOr::Ref(Ref::from_response_name(common.name));
                    }
                    _ => {
                        declared.content.clear();
                        declared
                            .content
                            .insert(PROBLEM_JSON.to_owned(), RefOr::T(problem_content()));
                    }
                }
            }
        }
    }
}
