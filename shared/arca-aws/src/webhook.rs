//! The webhook sender of every deployment (`ports::notify::WebhookSender` over reqwest).
//! Not an AWS service: it lives here because this crate already links reqwest with
//! rustls and every composition root (the Lambdas, the local API, `arca server`) links
//! this crate, while `arca-embedded` links no HTTP client and the domain none at all.

use std::time::Duration;

use arca_core::ports::notify::WebhookSender;
use async_trait::async_trait;

/// An attempt gives up after this: the alert sweep retries later, and a raise made
/// inside an agent's report must not hold it for long.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// POSTs with the system's trust roots, a 5-second timeout and no redirects (a
/// redirect would re-send the signed body somewhere the user did not name).
#[derive(Clone, Debug)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
}

impl HttpWebhookSender {
    pub fn new() -> arca_core::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| arca_core::Error::permanent(format!("an HTTP client for webhooks: {e}")))?;
        Ok(HttpWebhookSender { client })
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Result<u16, String> {
        let mut request = self.client.post(url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) => Ok(response.status().as_u16()),
            // reqwest's message names the URL's host and the cause, never the body.
            Err(e) if e.is_timeout() => Err(format!("no answer within {} s", WEBHOOK_TIMEOUT.as_secs())),
            Err(e) => Err(format!("sending failed: {}", error_chain(&e))),
        }
    }
}

/// The error and its sources in one line (reqwest's own message is only "error sending
/// request"; the cause, e.g. "Connection refused", is in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
