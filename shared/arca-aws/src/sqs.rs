//! The [`Queue`] port on SQS: one standard queue per cluster, named
//! `<prefix>-<cluster id>`, each with a RedrivePolicy to the shared dead-letter queue
//! `<prefix>-dead-letters`, which does the dead-lettering after `max_receives`.

use std::time::Duration;

use arca_core::ids::ClusterId;
use arca_core::model::agent::QueueRef;
use arca_core::ports::queue::{
    DeadLetter, Delivery, JobMessage, MAX_VISIBILITY, MAX_WAIT, Queue, Receipt, whole_seconds,
};
use arca_core::{Error, Result};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use tokio::sync::OnceCell;

use crate::errors::classify;

/// SQS's limit on queue names.
const MAX_QUEUE_NAME: usize = 80;
/// The longest cluster id part of a name: `cl_` and a 26-character ULID.
const CLUSTER_ID_LEN: usize = 29;
const DEAD_LETTER_SUFFIX: &str = "dead-letters";

/// SQS codes for a queue that does not exist (the JSON protocol's and the legacy query
/// protocol's spelling).
const NO_QUEUE_CODES: &[&str] = &["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"];
/// SQS codes that mean the receipt no longer holds the message: the lease is lost.
const LEASE_LOST_CODES: &[&str] = &[
    "ReceiptHandleIsInvalid",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
];
/// SQS codes for "a queue of this name exists with other attributes".
const QUEUE_EXISTS_CODES: &[&str] = &[
    "QueueAlreadyExists",
    "QueueNameExists",
    "AWS.SimpleQueueService.QueueNameExists",
];

fn code_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

/// [`classify`], plus the SQS codes it does not know.
fn sqs_error<E>(err: SdkError<E, HttpResponse>, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match code_of(&err) {
        Some(code) if NO_QUEUE_CODES.contains(&code) => Error::not_found(what),
        Some(code) if LEASE_LOST_CODES.contains(&code) => Error::conflict(format!(
            "lease lost on a message of {what}: it was acknowledged or delivered again"
        )),
        _ => classify(err, what),
    }
}

/// How the queues are named and when messages are dead-lettered.
#[derive(Clone, Debug)]
pub struct SqsQueueConfig {
    /// Names every queue of the deployment (`arca-prod`): alphanumerics, `-`, `_`, at
    /// most 50 characters so that `<prefix>-<cluster id>` fits SQS's 80.
    pub name_prefix: String,
    /// Deliveries after which a message is dead-lettered.
    pub max_receives: u32,
}

/// Per-cluster SQS queues with a shared dead-letter queue.
pub struct SqsQueue {
    client: Client,
    config: SqsQueueConfig,
    /// The dead-letter queue's URL and ARN, found or created on first need.
    dead_letters: OnceCell<(String, String)>,
}

impl SqsQueue {
    pub fn new(client: Client, config: SqsQueueConfig) -> Result<Self> {
        let prefix = &config.name_prefix;
        let max = MAX_QUEUE_NAME - CLUSTER_ID_LEN - 1;
        if prefix.is_empty() || prefix.len() > max {
            return Err(Error::invalid("namePrefix", format!("must be 1 to {max} characters")));
        }
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::invalid(
                "namePrefix",
                format!("{prefix:?}: only letters, digits, '-' and '_'"),
            ));
        }
        if config.max_receives == 0 || config.max_receives > 1000 {
            return Err(Error::invalid(
                "maxReceives",
                "must be between 1 and 1000 (SQS's maxReceiveCount)",
            ));
        }
        Ok(SqsQueue {
            client,
            config,
            dead_letters: OnceCell::new(),
        })
    }

    /// The queue name of a cluster.
    pub fn queue_name(&self, cluster: ClusterId) -> String {
        format!("{}-{cluster}", self.config.name_prefix)
    }

    /// The name of the shared dead-letter queue. Cluster ids start with `cl_`, so it
    /// cannot be a cluster's queue name.
    pub fn dead_letter_queue_name(&self) -> String {
        format!("{}-{DEAD_LETTER_SUFFIX}", self.config.name_prefix)
    }

    /// The dead-letter queue's URL and ARN. Looked up first, so a queue made by the
    /// stack with its own attributes (retention, encryption) is used as it is.
    async fn dead_letters(&self) -> Result<&(String, String)> {
        self.dead_letters
            .get_or_try_init(|| async {
                let name = self.dead_letter_queue_name();
                let url = match self.client.get_queue_url().queue_name(&name).send().await {
                    Ok(out) => out.queue_url().map(str::to_string),
                    Err(err) => match sqs_error(err, "dead-letter queue") {
                        Error::NotFound { .. } => None,
                        other => return Err(other),
                    },
                };
                let url = match url {
                    Some(url) => url,
                    None => {
                        let out = self
                            .client
                            .create_queue()
                            .queue_name(&name)
                            .send()
                            .await
                            .map_err(|e| sqs_error(e, &name))?;
                        out.queue_url()
                            .map(str::to_string)
                            .ok_or_else(|| Error::permanent("CreateQueue returned no URL"))?
                    }
                };
                let attrs = self
                    .client
                    .get_queue_attributes()
                    .queue_url(&url)
                    .attribute_names(QueueAttributeName::QueueArn)
                    .send()
                    .await
                    .map_err(|e| sqs_error(e, &name))?;
                let arn = attrs
                    .attributes()
                    .and_then(|a| a.get(&QueueAttributeName::QueueArn))
                    .cloned()
                    .ok_or_else(|| Error::permanent("GetQueueAttributes returned no QueueArn"))?;
                Ok((url, arn))
            })
            .await
    }

    fn redrive_policy(&self, dead_letter_arn: &str) -> String {
        serde_json::json!({
            "deadLetterTargetArn": dead_letter_arn,
            "maxReceiveCount": self.config.max_receives.to_string(),
        })
        .to_string()
    }

    async fn take(
        &self,
        url: &str,
        what: &str,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Option<(JobMessage, Receipt, u32)>> {
        let wait = whole_seconds("wait", wait, MAX_WAIT)?;
        let visibility = whole_seconds("visibility", visibility, MAX_VISIBILITY)?;
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(1)
            .wait_time_seconds(i32::try_from(wait).map_err(Error::permanent)?)
            .visibility_timeout(i32::try_from(visibility).map_err(Error::permanent)?)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sqs_error(e, what))?;
        let Some(message) = out.messages().first() else {
            return Ok(None);
        };
        let receipt = message
            .receipt_handle()
            .ok_or_else(|| Error::permanent("SQS message without a receipt handle"))?;
        let body: JobMessage = match serde_json::from_str(message.body().unwrap_or_default()) {
            Ok(body) => body,
            Err(e) => {
                // Only Arca writes to these queues, so this is a bug or tampering. Left in
                // place it would block nothing (SQS is not FIFO) but come back forever,
                // and it names no job that could be failed: drop it, loudly.
                tracing::error!(queue = what, error = %e, "dropping a message that is not a job message");
                self.client
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(|e| sqs_error(e, what))?;
                return Ok(None);
            }
        };
        let receive_count = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::permanent("SQS message without ApproximateReceiveCount"))?;
        Ok(Some((body, Receipt(receipt.to_string()), receive_count)))
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn create_queue(&self, cluster: ClusterId) -> Result<QueueRef> {
        let (_, dead_letter_arn) = self.dead_letters().await?;
        let name = self.queue_name(cluster);
        let policy = self.redrive_policy(dead_letter_arn);
        let created = self
            .client
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::RedrivePolicy, &policy)
            .send()
            .await;
        let url = match created {
            Ok(out) => out.queue_url().map(str::to_string),
            // The queue exists with other attributes (max_receives was changed): bring
            // its redrive policy up to date, as a repeated registration should.
            Err(err) if code_of(&err).is_some_and(|c| QUEUE_EXISTS_CODES.contains(&c)) => {
                let url = self.queue(cluster).await?.address;
                self.client
                    .set_queue_attributes()
                    .queue_url(&url)
                    .attributes(QueueAttributeName::RedrivePolicy, &policy)
                    .send()
                    .await
                    .map_err(|e| sqs_error(e, &name))?;
                Some(url)
            }
            Err(err) => return Err(sqs_error(err, &name)),
        };
        let address = url.ok_or_else(|| Error::permanent("CreateQueue returned no URL"))?;
        Ok(QueueRef {
            cluster_id: cluster,
            address,
        })
    }

    async fn queue(&self, cluster: ClusterId) -> Result<QueueRef> {
        let what = format!("queue of cluster {cluster}");
        let out = self
            .client
            .get_queue_url()
            .queue_name(self.queue_name(cluster))
            .send()
            .await
            .map_err(|e| sqs_error(e, &what))?;
        let address = out
            .queue_url()
            .ok_or_else(|| Error::permanent("GetQueueUrl returned no URL"))?
            .to_string();
        Ok(QueueRef {
            cluster_id: cluster,
            address,
        })
    }

    async fn delete_queue(&self, queue: &QueueRef) -> Result<()> {
        match self.client.delete_queue().queue_url(&queue.address).send().await {
            Ok(_) => Ok(()),
            Err(err) => match sqs_error(err, "queue") {
                Error::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn send(&self, queue: &QueueRef, message: &JobMessage) -> Result<()> {
        let body = serde_json::to_string(message).map_err(Error::permanent)?;
        self.client
            .send_message()
            .queue_url(&queue.address)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sqs_error(e, &format!("queue of cluster {}", queue.cluster_id)))
    }

    async fn receive(&self, queue: &QueueRef, wait: Duration, visibility: Duration) -> Result<Option<Delivery>> {
        let what = format!("queue of cluster {}", queue.cluster_id);
        let taken = self.take(&queue.address, &what, wait, visibility).await?;
        Ok(taken.map(|(message, receipt, receive_count)| Delivery {
            message,
            receipt,
            receive_count,
        }))
    }

    async fn extend(&self, queue: &QueueRef, receipt: &Receipt, visibility: Duration) -> Result<()> {
        let visibility = whole_seconds("visibility", visibility, MAX_VISIBILITY)?;
        self.client
            .change_message_visibility()
            .queue_url(&queue.address)
            .receipt_handle(&receipt.0)
            .visibility_timeout(i32::try_from(visibility).map_err(Error::permanent)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sqs_error(e, &format!("queue of cluster {}", queue.cluster_id)))
    }

    async fn ack(&self, queue: &QueueRef, receipt: &Receipt) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&queue.address)
            .receipt_handle(&receipt.0)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sqs_error(e, &format!("queue of cluster {}", queue.cluster_id)))
    }

    fn max_receives(&self) -> u32 {
        self.config.max_receives
    }

    async fn receive_dead_letter(&self, wait: Duration, visibility: Duration) -> Result<Option<DeadLetter>> {
        let (url, _) = self.dead_letters().await?;
        let taken = self.take(url, "dead-letter queue", wait, visibility).await?;
        Ok(taken.map(|(message, receipt, _)| DeadLetter {
            message,
            receipt,
            deliveries: self.config.max_receives,
        }))
    }

    async fn ack_dead_letter(&self, receipt: &Receipt) -> Result<()> {
        let (url, _) = self.dead_letters().await?;
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(&receipt.0)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sqs_error(e, "dead-letter queue"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .build();
        Client::from_conf(config)
    }

    #[test]
    fn names_fit_sqs_and_bad_prefixes_are_refused() {
        let q = SqsQueue::new(
            client(),
            SqsQueueConfig {
                name_prefix: "a".repeat(50),
                max_receives: 3,
            },
        )
        .unwrap();
        let name = q.queue_name(ClusterId::new());
        assert_eq!(
            name.len(),
            MAX_QUEUE_NAME,
            "the longest prefix makes an 80-character name"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{name}"
        );
        assert_eq!(q.dead_letter_queue_name(), format!("{}-dead-letters", "a".repeat(50)));
        for bad in ["", "has space", "dots.not.allowed", &"a".repeat(51)] {
            let config = SqsQueueConfig {
                name_prefix: bad.to_string(),
                max_receives: 3,
            };
            assert!(SqsQueue::new(client(), config).is_err(), "{bad:?}");
        }
        assert!(
            SqsQueue::new(
                client(),
                SqsQueueConfig {
                    name_prefix: "ok".into(),
                    max_receives: 0
                }
            )
            .is_err()
        );
    }
}
