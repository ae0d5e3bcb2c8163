//! The STS credential vendor against moto: AssumeRole with the session policy returns
//! credentials, and they work against moto's S3 under the cluster's prefix.
//!
//! moto does NOT enforce IAM or session policies: credentials from any AssumeRole can do
//! anything. So this proves the vend and the shape of what the agent gets, not the
//! restriction; the policy's exact content is unit-tested in `sts.rs`
//! (`session_policy`: read-write for backups and deletions, read-only for restores), which
//! is what real AWS enforces.

mod common;

use arca_core::ids::{ClusterId, OrgId};
use arca_core::model::destination::DestinationTarget;
use arca_core::ports::credentials::{CredentialVendor, Grant};
use common::{managed_destination, managed_vendor};

#[tokio::test]
async fn vended_credentials_reach_the_clusters_prefix_of_the_managed_bucket() {
    let Some(env) = arca_testenv::aws() else { return };
    let sdk = env.sdk_config().await;
    let bucket = arca_testenv::unique("arca-managed");
    let admin_s3 = arca_aws::config::s3_client(&sdk);
    admin_s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");

    let vendor = managed_vendor(&sdk, &bucket, "backups");
    let (org, cluster) = (OrgId::new(), ClusterId::new());
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let destination = managed_destination(org, now, 1);
    let access = vendor
        .access(&org, Grant::ReadWrite(cluster), &destination)
        .await
        .expect("vend");
    assert_eq!(access.cluster_prefix, format!("backups/{org}/{cluster}/"));
    let DestinationTarget::S3 {
        bucket: got_bucket,
        region,
        ..
    } = &access.target
    else {
        panic!("managed storage resolves to its bucket: {:?}", access.target);
    };
    assert_eq!((got_bucket.as_str(), region.as_str()), (bucket.as_str(), "us-east-1"));
    let creds = access.credentials.expect("managed storage comes with credentials");
    assert!(!creds.access_key_id.is_empty() && !creds.session_token.is_empty());
    assert!(creds.expiration > now, "{:?}", creds.expiration);

    // The agent's S3 client: the vended credentials only, against the same endpoint.
    let s3_with = |c: &arca_core::ports::credentials::TemporaryCredentials| {
        arca_aws::config::s3_client(
            &sdk.to_builder()
                .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                    aws_sdk_s3::config::Credentials::new(
                        c.access_key_id.clone(),
                        c.secret_access_key.clone(),
                        Some(c.session_token.clone()),
                        None,
                        "arca-sts-test",
                    ),
                ))
                .build(),
        )
    };
    let agent_s3 = s3_with(&creds);
    let key = format!("{}data/one", access.cluster_prefix);
    agent_s3
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"hello"))
        .send()
        .await
        .expect("put under the cluster prefix");
    let listed = agent_s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&access.cluster_prefix)
        .send()
        .await
        .expect("list the cluster prefix");
    assert_eq!(listed.contents().len(), 1);
    let body = agent_s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("get");
    let bytes = body.body.collect().await.expect("read").into_bytes();
    assert_eq!(&bytes[..], b"hello");

    // A restore of this cluster's point, run by another cluster's agent: credentials of
    // their own (a read-only session policy, `sts.rs`) on the point's cluster prefix, not
    // on the restoring cluster's.
    let restoring = ClusterId::new();
    let read = vendor
        .access(&org, Grant::ReadOnly(cluster), &destination)
        .await
        .expect("vend read-only");
    assert_eq!(read.cluster_prefix, access.cluster_prefix);
    assert!(!read.cluster_prefix.contains(&restoring.to_string()));
    let read_creds = read.credentials.expect("credentials");
    assert_ne!(read_creds.access_key_id, creds.access_key_id, "a session of its own");
    let reader = s3_with(&read_creds);
    let got = reader
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("the restore reads the point's data");
    assert_eq!(&got.body.collect().await.expect("read").into_bytes()[..], b"hello");
    agent_s3
        .delete_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("delete");
    admin_s3
        .delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("delete bucket");
}
