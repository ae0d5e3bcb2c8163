//! Alert email through SES (`ports::notify::EmailSender` over the SESv2 `SendEmail`
//! call): the domain writes the subject and the plain-text body
//! (`model::alert::AlertEvent::email`), this only hands them to SES. Behind the crate's
//! `ses` feature, so the agent does not link the SES client.

use arca_core::ports::notify::EmailSender;
use async_trait::async_trait;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

/// Sends from one address (`ARCA_ALERTS_FROM`), which SES must have verified (the
/// address or its domain) in the deployment's account and region.
#[derive(Clone, Debug)]
pub struct SesEmailSender {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesEmailSender {
    pub fn new(client: aws_sdk_sesv2::Client, from: impl Into<String>) -> Self {
        SesEmailSender {
            client,
            from: from.into(),
        }
    }

    /// The address alerts come from.
    pub fn from_address(&self) -> &str {
        &self.from
    }
}

#[async_trait]
impl EmailSender for SesEmailSender {
    async fn send(&self, to: &[String], subject: &str, body: &str) -> Result<(), String> {
        let content = |text: &str| Content::builder().data(text).charset("UTF-8").build();
        let (subject, body) = match (content(subject), content(body)) {
            (Ok(s), Ok(b)) => (s, b),
            (Err(e), _) | (_, Err(e)) => return Err(format!("building the email: {e}")),
        };
        let message = Message::builder()
            .subject(subject)
            .body(Body::builder().text(body).build())
            .build();
        let destination = Destination::builder().set_to_addresses(Some(to.to_vec())).build();
        match self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(destination)
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // SES's code and message ("MessageRejected: Email address is not verified"),
            // else the transport's cause; neither holds the body.
            Err(e) => Err(match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("SES refused the email: {code}: {message}"),
                (Some(code), None) => format!("SES refused the email: {code}"),
                _ => format!("sending through SES failed: {}", DisplayErrorContext(&e)),
            }),
        }
    }
}
