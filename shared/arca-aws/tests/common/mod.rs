//! What the moto suites share: accounts reached by AssumeRole, a fresh DynamoDB table, a
//! signed-up org and a linked account.

// Each suite uses some of these.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arca_aws::{AwsCloudConnector, DynamoItemStore, StsCredentialVendor, StsCredentialVendorConfig};
use arca_core::control_plane::{ControlPlane, ControlPlaneConfig, SignupRequest};
use arca_core::ids::{CloudAccountId, DestinationId, OrgId};
use arca_core::model::auth::Principal;
use arca_core::model::cloud::account::{CloudAccountSpec, CloudAccountView, RoleStackConfig};
use arca_core::model::destination::{Destination, DestinationSpec, DestinationTarget};
use arca_core::model::plan::PlanLimits;
use arca_core::ports::Clock;
use arca_core::ports::item_store::ItemStore;
use arca_core::store::Store;
use aws_config::{Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use chrono::{DateTime, Utc};

/// A fresh 12-digit account per run (and `salt`), so reruns on the same moto start empty.
pub fn fresh_account(salt: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    format!(
        "{:012}",
        ((nanos / 1000 + salt * 7_919) % 900_000_000_000) + 100_000_000_000
    )
}

/// Configuration acting inside `account` (moto: credentials from AssumeRole into it).
pub async fn as_account(base: &SdkConfig, account: &str, region: &str) -> SdkConfig {
    let out = aws_sdk_sts::Client::new(base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/seed"))
        .role_session_name("seed")
        .send()
        .await
        .expect("assume role on moto");
    let c = out.credentials().expect("credentials");
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "seed",
    );
    base.to_builder()
        .region(Region::new(region.to_string()))
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .build()
}

/// An item store on a new DynamoDB table named after `prefix`.
pub async fn dynamo_store(base: &SdkConfig, prefix: &str) -> DynamoItemStore {
    let client = aws_sdk_dynamodb::Client::new(base);
    let table = arca_testenv::unique(prefix);
    arca_aws::dynamo::create_table(&client, &table)
        .await
        .expect("create table on moto");
    DynamoItemStore::new(client, &table)
}

/// Signs up an org called `name`; its bootstrap admin.
pub async fn sign_up(cp: &ControlPlane, name: &str) -> Principal {
    let signed = cp
        .signup(SignupRequest {
            org_name: name.into(),
            admin_key_name: None,
        })
        .await
        .expect("signup");
    cp.authenticate(&signed.admin_key.secret).await.expect("auth")
}

/// The control plane over `items` at `clock`, reaching accounts through `connector`
/// (open sign-up, default limits).
pub fn cloud_control_plane(
    items: Arc<dyn ItemStore>,
    clock: Arc<dyn Clock>,
    connector: Arc<AwsCloudConnector>,
) -> ControlPlane {
    let config = ControlPlaneConfig {
        signup_open: true,
        ..ControlPlaneConfig::default()
    };
    ControlPlane::new(Store::new(items), PlanLimits::default(), clock, config)
        .with_cloud(connector, RoleStackConfig::default())
}

/// Links a cloud account called `name` in `regions` and sets its role, named by
/// `role_name` from the new account's id, in AWS account `aws_account`.
pub async fn link_account(
    cp: &ControlPlane,
    p: &Principal,
    name: String,
    regions: Vec<String>,
    aws_account: &str,
    role_name: impl FnOnce(&CloudAccountId) -> String,
) -> CloudAccountView {
    let view = cp
        .link_cloud_account(
            p,
            CloudAccountSpec {
                name,
                description: String::new(),
                regions,
            },
        )
        .await
        .expect("link");
    let role = format!("arn:aws:iam::{aws_account}:role/{}", role_name(&view.account.id));
    cp.set_cloud_account_role(p, &view.account.id, &role, view.account.version)
        .await
        .expect("role")
}

/// A new SQS queue named after `prefix`: the client and the queue's URL.
pub async fn sqs_queue(base: &SdkConfig, prefix: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(base);
    let url = sqs
        .create_queue()
        .queue_name(arca_testenv::unique(prefix))
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_string();
    (sqs, url)
}

/// The STS credential vendor of Arca-managed storage in `bucket` under `prefix`, on moto.
pub fn managed_vendor(sdk: &SdkConfig, bucket: &str, prefix: &str) -> StsCredentialVendor {
    StsCredentialVendor::new(
        aws_sdk_sts::Client::new(sdk),
        StsCredentialVendorConfig {
            role_arn: "arn:aws:iam::123456789012:role/arca-managed-storage".into(),
            bucket: bucket.to_string(),
            region: "us-east-1".into(),
            prefix: prefix.into(),
            endpoint: sdk.endpoint_url().map(str::to_owned),
            duration: Duration::from_secs(900),
            kms_key_arn: None,
        },
    )
}

/// An Arca-managed destination of `org`, at `version`.
pub fn managed_destination(org: OrgId, now: DateTime<Utc>, version: u64) -> Destination {
    Destination {
        bucket_lock: None,
        id: DestinationId::new(),
        org_id: org,
        spec: DestinationSpec {
            object_lock: None,
            customer_key: None,
            name: "managed".into(),
            target: DestinationTarget::ArcaManaged { region: None },
        },
        retiring: false,
        created_at: now,
        updated_at: now,
        version,
    }
}

/// The bodies of the messages waiting in a queue (up to ten), as JSON.
pub async fn received<T: serde::de::DeserializeOwned>(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<T> {
    let got = sqs
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(1)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    got.messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap_or_default()).expect("json"))
        .collect()
}

/// A small Postgres instance `id` to create (more settings may follow before `send`).
pub fn postgres_instance(
    rds: &aws_sdk_rds::Client,
    id: &str,
) -> aws_sdk_rds::operation::create_db_instance::builders::CreateDBInstanceFluentBuilder {
    rds.create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("arca")
        .master_user_password("not-a-secret-1")
}
