//! The HTTP side: one call per API operation, problem+json errors turned into
//! [`CliError::Api`] (one line: the problem's `code` and `detail`).

use reqwest::Method;
use reqwest::header::{ETAG, IF_MATCH};
use serde_json::Value;

use crate::CliError;

/// A response body with the entity's `ETag`, when the API sent one.
pub struct Tagged {
    pub body: Value,
    pub etag: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    /// Held here only to put in the `Authorization` header; never formatted.
    key: Option<String>,
}

impl Client {
    pub fn new(base: &str, key: Option<String>) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("arca-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::other(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request. `if_match` is an ETag read just before (edits are conditional).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Tagged, CliError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(tag) = if_match {
            request = request.header(IF_MATCH, tag);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(|e| {
            // reqwest's Display names the URL, which holds no credential (keys go in headers).
            CliError::api(
                "unreachable",
                format!("could not reach {}: {}", self.base, root_cause(&e)),
            )
        })?;
        let status = response.status();
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CliError::api("unreachable", format!("reading the response of {path}: {e}")))?;
        if status.is_success() {
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
            };
            return Ok(Tagged { body, etag });
        }
        Err(problem(status.as_u16(), &bytes))
    }

    pub async fn get(&self, path: &str) -> Result<Tagged, CliError> {
        self.call(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Tagged, CliError> {
        self.call(Method::POST, path, Some(body), None).await
    }

    /// A conditional replace: `if_match` is the ETag of the version the edit started from.
    pub async fn put(&self, path: &str, body: &Value, if_match: &str) -> Result<Tagged, CliError> {
        self.call(Method::PUT, path, Some(body), Some(if_match)).await
    }

    /// A body that is not JSON (the agent manifest), as text.
    pub async fn get_text(&self, path: &str) -> Result<String, CliError> {
        match self.get(path).await?.body {
            Value::String(s) => Ok(s),
            other => Ok(other.to_string()),
        }
    }

    /// Every item of a paginated listing, following `nextCursor`.
    pub async fn list_all(&self, path: &str) -> Result<Vec<Value>, CliError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let page_path = match &cursor {
                Some(c) => format!("{path}{sep}cursor={}", encode(c)),
                None => path.to_owned(),
            };
            let page = self.get(&page_path).await?.body;
            if let Some(Value::Array(batch)) = page.get("items") {
                items.extend(batch.iter().cloned());
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
                _ => return Ok(items),
            }
        }
    }

    /// Reads the entity, then deletes it with its ETag (deletes require `If-Match`).
    pub async fn delete_current(&self, path: &str, query: &str) -> Result<(), CliError> {
        self.delete_current_answer(path, query).await.map(|_| ())
    }

    /// [`Client::delete_current`], with what the API answered (202 bodies).
    pub async fn delete_current_answer(&self, path: &str, query: &str) -> Result<Tagged, CliError> {
        let current = self.get(path).await?;
        let tag = current
            .etag
            .ok_or_else(|| CliError::other(format!("GET {path} returned no ETag")))?;
        self.call(Method::DELETE, &format!("{path}{query}"), None, Some(&tag))
            .await
    }
}

/// The error with its causes ("error sending request: ... connection refused"): the
/// outer message alone does not say what went wrong.
fn root_cause(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

/// Percent-encodes a query value (cursors are opaque and may hold `+`, `/`, `=`).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error response as one [`CliError::Api`]: the problem's code and detail, else the
/// HTTP status.
fn problem(status: u16, bytes: &[u8]) -> CliError {
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        return CliError::api(
            "http_error",
            if text.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {text}")
            },
        );
    };
    let code = doc.get("code").and_then(Value::as_str).unwrap_or("http_error");
    let mut detail = doc
        .get("detail")
        .and_then(Value::as_str)
        .map_or_else(|| format!("HTTP {status}"), str::to_owned);
    if let Some(field) = doc.get("field").and_then(Value::as_str)
        && !detail.contains(field)
    {
        detail = format!("{field}: {detail}");
    }
    CliError::api(code, detail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn problems_become_one_coded_line() {
        let e = problem(
            409,
            br#"{"code":"policy_in_use","detail":"policy \"h\" is used by\nb1","status":409}"#,
        );
        assert_eq!(e.to_string(), "policy_in_use: policy \"h\" is used by b1");
        let e = problem(
            400,
            br#"{"code":"validation_failed","detail":"must not be empty","field":"name"}"#,
        );
        assert_eq!(e.to_string(), "validation_failed: name: must not be empty");
        assert_eq!(problem(502, b"").to_string(), "http_error: HTTP 502");
    }

    #[test]
    fn cursors_are_encoded() {
        assert_eq!(encode("a+b/c="), "a%2Bb%2Fc%3D");
    }
}
