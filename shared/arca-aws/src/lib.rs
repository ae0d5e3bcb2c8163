//! AWS adapters for Arca's ports. Each adapter maps SDK errors onto
//! [`arca_core::Error`] by kind (see [`errors`]), so the domain never sees SDK types.

pub mod cloud;
pub mod config;
pub mod dynamo;
pub mod errors;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod rds;
pub mod s3;
pub mod s3_connection;
pub mod scheduler;
pub mod secrets;
#[cfg(feature = "security-scan")]
mod security;
#[cfg(feature = "ses")]
pub mod ses;
mod sqs;
pub mod sts;
pub mod webhook;
pub mod wiring;

pub use cloud::AwsCloudConnector;
pub use dynamo::DynamoItemStore;
pub use rds::{AwsRdsOperations, SqsRdsWorkQueue};
pub use s3::S3ObjectStore;
pub use scheduler::{EventBridgeScheduler, EventBridgeSchedulerConfig};
#[cfg(feature = "ses")]
pub use ses::SesEmailSender;
pub use sqs::{SqsQueue, SqsQueueConfig};
pub use sts::{StsCredentialVendor, StsCredentialVendorConfig};
pub use webhook::HttpWebhookSender;
