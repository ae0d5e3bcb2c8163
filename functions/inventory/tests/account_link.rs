//! The role stack's custom resource, the way CloudFormation delivers it: an SNS record
//! whose message is the request, answered by a PUT to a pre-signed S3 URL (moto's S3 here,
//! read back to see exactly what CloudFormation would receive). The role is checked
//! through `FakeCloud`, which enforces the ExternalId as AWS does and moto does not.

use std::sync::Arc;
use std::time::Duration;

use arca_core::control_plane::{ControlPlane, ControlPlaneConfig};
use arca_core::model::cloud::account::{CloudAccountState, RoleStackConfig};
use arca_core::model::plan::PlanLimits;
use arca_core::ports::SystemClock;
use arca_core::store::Store;
use arca_core::testing::fakes::cloud::FakeCloud;
use arca_core::testing::{link_account, new_org};
use arca_embedded::RedbItemStore;
use arca_fn_inventory::{CustomResourceResponse, LinkRetry};
use aws_sdk_s3::presigning::PresigningConfig;
use serde_json::{Value, json};

fn sns_event(request_type: &str, response_url: &str, properties: Value) -> Value {
    let message = json!({
        "RequestType": request_type,
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:us-east-1:111122223333:stack/arca-x/1",
        "RequestId": "req-1",
        "LogicalResourceId": "ArcaAccountLink",
        "PhysicalResourceId": if request_type == "Create" { Value::Null } else { json!("arca-link-x") },
        "ResourceType": "Custom::ArcaAccountLink",
        "ResourceProperties": properties,
    });
    json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": message.to_string()}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_stack_notification_links_the_account_and_answers_cloudformation() {
    let Some(env) = arca_testenv::aws() else { return };
    let s3 = arca_aws::config::s3_client(&env.sdk_config().await);
    let bucket = arca_testenv::unique("arca-cfn-responses");
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let presigned = |key: &'static str| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("config"))
                .await
                .expect("presign")
                .uri()
                .to_string()
        }
    };
    let answer = |key: &'static str| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .expect("answer written");
            let bytes = body.body.collect().await.expect("body").into_bytes();
            serde_json::from_slice::<CustomResourceResponse>(&bytes).expect("a CloudFormation response")
        }
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(FakeCloud::default());
    let cp = ControlPlane::new(
        Store::new(Arc::new(
            RedbItemStore::open(dir.path().join("arca.redb")).expect("redb"),
        )),
        PlanLimits::default(),
        Arc::new(SystemClock),
        ControlPlaneConfig {
            signup_open: true,
            ..ControlPlaneConfig::default()
        },
    )
    .with_cloud(fake.clone(), RoleStackConfig::default());
    let (p, _, _) = new_org(&cp, "links").await;
    let account = link_account(&cp, &p, "prod", &["us-east-1"]).await;
    let role = "arn:aws:iam::111122223333:role/arca-x";
    fake.add_role(role, &account.external_id);
    let properties = |external_id: &str| {
        json!({
            "ServiceToken": "arn:aws:sns:us-east-1:999988887777:arca-link",
            "ServiceTimeout": "600",
            "AccountLinkId": account.link_id(),
            "ExternalId": external_id,
            "AccountId": "111122223333",
            "RoleArn": role,
            "TemplateVersion": "1.0.0",
            "PermissionSets": "core,rds,ebs",
        })
    };
    let http = reqwest::Client::new();
    let retry = LinkRetry {
        attempts: 2,
        pause: Duration::from_millis(10),
    };

    // Answers go to moto's pre-signed URLs here, to CloudFormation's on AWS.
    let urls = arca_fn_inventory::ResponseUrls::with_prefix(env.endpoint_url.clone());

    // The SNS notification of a stack's request through the function.
    let deliver = async |request: &str, url: &str, external_id: &str| -> Value {
        arca_fn_inventory::run(
            &cp,
            &http,
            sns_event(request, url, properties(external_id)),
            retry,
            &urls,
        )
        .await
        .expect("run")
    };
    // A ResponseURL that is not CloudFormation's, with the right ExternalId: ignored (no
    // link, no answer), and the batch does not fail.
    let out = deliver("Create", "https://collector.example.com/steal", &account.external_id).await;
    assert_eq!(out["answered"], json!(["IGNORED"]));
    let still = cp.get_cloud_account(&p, &account.id).await.expect("get").account;
    assert_eq!((still.state, still.role_arn), (CloudAccountState::Pending, None));

    // A forged request (someone else's ExternalId): the stack fails, nothing is linked.
    let url = presigned("forged").await;
    deliver("Create", &url, "arca-guess").await;
    let forged = answer("forged").await;
    assert_eq!(forged.status, "FAILED");
    assert!(forged.reason.contains("does not match"), "{forged:?}");
    let still = cp.get_cloud_account(&p, &account.id).await.expect("get").account;
    assert_eq!((still.state, still.role_arn), (CloudAccountState::Pending, None));

    // The real one: ACTIVE, the stack succeeds.
    let url = presigned("create").await;
    let out = deliver("Create", &url, &account.external_id).await;
    assert_eq!(out["answered"], json!(["SUCCESS"]));
    let created = answer("create").await;
    assert_eq!(created.status, "SUCCESS", "{created:?}");
    assert_eq!(created.physical_resource_id, format!("arca-link-{}", account.link_id()));
    assert_eq!(
        (created.request_id.as_str(), created.logical_resource_id.as_str()),
        ("req-1", "ArcaAccountLink")
    );
    let linked = cp.get_cloud_account(&p, &account.id).await.expect("get").account;
    assert_eq!(linked.state, CloudAccountState::Active);
    assert_eq!(linked.role_arn.as_deref(), Some(role));
    let sets = linked.permission_sets.expect("sets");
    assert!(sets.rds && sets.ebs && !sets.eks && !sets.security_scanning);

    // The role stops working before an update arrives: the stack still succeeds (the
    // account says DISCONNECTED and why), after the retries.
    fake.revoke(role, Some("AccessDenied: trust policy changed"));
    let url = presigned("update").await;
    deliver("Update", &url, &account.external_id).await;
    let updated = answer("update").await;
    assert_eq!(updated.status, "SUCCESS");
    assert_eq!(updated.physical_resource_id, "arca-link-x", "kept across updates");
    assert!(updated.reason.contains("trust policy changed"), "{updated:?}");
    let down = cp.get_cloud_account(&p, &account.id).await.expect("get").account;
    assert_eq!(down.state, CloudAccountState::Disconnected);

    // Delete always succeeds, even for a link Arca never heard of.
    let url = presigned("delete").await;
    deliver("Delete", &url, "arca-guess").await;
    assert_eq!(answer("delete").await.status, "SUCCESS");
}
