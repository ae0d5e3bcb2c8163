//! The sending side of alerts: the domain builds and signs what is sent
//! (`model::alert`), an adapter only moves bytes. Webhooks: `arca_aws::webhook`
//! (reqwest, used by every deployment); email: `arca_aws::SesEmailSender` on AWS, none
//! in single-machine mode (email channels are refused there).

use async_trait::async_trait;

/// Posts a webhook.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `body` (JSON) to `url` with `headers` and returns the HTTP status of the
    /// answer; `Err` (a message for the delivery log) when there was no answer:
    /// connection refused, DNS, TLS, the timeout. Never follows a redirect.
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Result<u16, String>;
}

/// Sends a plain-text email.
#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Sends one message to `to`; `Err` with the provider's refusal.
    async fn send(&self, to: &[String], subject: &str, body: &str) -> Result<(), String>;
}
