//! Credentials for Arca-managed storage: STS `AssumeRole` with an inline session policy
//! that narrows the role to one cluster's prefix of the managed bucket.
//!
//! The role itself may reach the whole bucket; the effective permissions of the vended
//! credentials are the intersection of the role's policies and the session policy
//! ([`session_policy`]), so an agent can read, write and delete only under
//! `<prefix>/<org>/<cluster>/` and list only that prefix. Other destinations (the
//! user's S3, local directories) are handed out as configuration ([`ConfigVendor`]).

use std::time::Duration;

use arca_core::ids::OrgId;
use arca_core::model::destination::{Destination, DestinationTarget};
use arca_core::model::layout::cluster_prefix;
use arca_core::ports::credentials::{ConfigVendor, CredentialVendor, DestinationAccess, Grant, TemporaryCredentials};
use arca_core::{Error, Result};
use async_trait::async_trait;
use aws_sdk_sts::Client;
use serde_json::{Value, json};

use crate::errors::classify;

/// Where Arca-managed storage is and how its credentials are vended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsCredentialVendorConfig {
    /// The role assumed for every vend (it may reach the whole managed bucket).
    pub role_arn: String,
    pub bucket: String,
    pub region: String,
    /// The managed bucket's base prefix (may be empty).
    pub prefix: String,
    /// `None` for AWS S3; an endpoint for tests (moto).
    pub endpoint: Option<String>,
    /// Lifetime of vended credentials (STS allows 15 min up to the role's maximum).
    pub duration: Duration,
    /// The bucket's SSE-KMS key: uploads and reads of KMS-encrypted objects need
    /// `kms:GenerateDataKey`/`kms:Decrypt` on it, so the session policy must allow them.
    pub kms_key_arn: Option<String>,
}

/// The [`CredentialVendor`] of deployments with Arca-managed storage.
#[derive(Clone, Debug)]
pub struct StsCredentialVendor {
    client: Client,
    config: StsCredentialVendorConfig,
}

/// The inline session policy of one job's credentials ([`Grant`]): objects under
/// `cluster_prefix` (get, put, delete; get only for a read-only grant) and listing of
/// that prefix only; with a bucket key, its use through S3 (the only way these
/// credentials can reach it: decrypt only for a read-only grant).
///
/// For an immutable managed bucket (S3 Object Lock) a read-write grant also reads and
/// extends objects' retention, lists and deletes object versions (a delete on a locked
/// bucket removes the versions whose lock has passed) and reads the bucket's lock
/// configuration; a read-only grant reads retention (HeadObject shows an object's lock
/// only to callers allowed `s3:GetObjectRetention`). Never `s3:BypassGovernanceRetention`:
/// nothing vended can shorten or lift a lock. On a bucket without Object Lock they allow
/// nothing the rest does not, so the policy is the same for every bucket.
pub fn session_policy(bucket: &str, cluster_prefix: &str, kms_key_arn: Option<&str>, writes: bool) -> Value {
    let prefix = cluster_prefix.trim_start_matches('/');
    let (objects, list, kms) = if writes {
        (
            json!([
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:GetObjectRetention",
                "s3:PutObjectRetention",
                "s3:DeleteObjectVersion"
            ]),
            json!(["s3:ListBucket", "s3:ListBucketVersions"]),
            json!(["kms:GenerateDataKey", "kms:Decrypt"]),
        )
    } else {
        (
            json!(["s3:GetObject", "s3:GetObjectRetention"]),
            json!("s3:ListBucket"),
            json!(["kms:Decrypt"]),
        )
    };
    let mut statements = vec![
        json!({
            "Sid": "ClusterObjects",
            "Effect": "Allow",
            "Action": objects,
            "Resource": format!("arn:aws:s3:::{bucket}/{prefix}*"),
        }),
        json!({
            "Sid": "ListClusterPrefix",
            "Effect": "Allow",
            "Action": list,
            "Resource": format!("arn:aws:s3:::{bucket}"),
            "Condition": { "StringLike": { "s3:prefix": [format!("{prefix}*")] } },
        }),
    ];
    if writes {
        statements.push(json!({
            "Sid": "BucketObjectLock",
            "Effect": "Allow",
            "Action": "s3:GetBucketObjectLockConfiguration",
            "Resource": format!("arn:aws:s3:::{bucket}"),
        }));
    }
    if let Some(key) = kms_key_arn {
        statements.push(json!({
            "Sid": "BucketKeyThroughS3",
            "Effect": "Allow",
            "Action": kms,
            "Resource": key,
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// A role session name STS accepts (`[\w+=,.@-]{2,64}`) that names the cluster in
/// CloudTrail.
fn session_name(grant: &Grant) -> String {
    let name: String = match grant {
        Grant::ReadWrite(cluster) => format!("arca-{cluster}"),
        Grant::ReadOnly(cluster) => format!("arca-read-{cluster}"),
    }
    .chars()
    .filter(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(*c))
    .take(64)
    .collect();
    name
}

impl StsCredentialVendor {
    pub fn new(client: Client, config: StsCredentialVendorConfig) -> Self {
        StsCredentialVendor { client, config }
    }

    async fn assume(&self, grant: Grant, cluster_prefix: &str) -> Result<TemporaryCredentials> {
        let policy = session_policy(
            &self.config.bucket,
            cluster_prefix,
            self.config.kms_key_arn.as_deref(),
            grant.writes(),
        )
        .to_string();
        let seconds = i32::try_from(self.config.duration.as_secs())
            .map_err(|_| Error::invalid("duration", "too long for STS"))?;
        let out = self
            .client
            .assume_role()
            .role_arn(&self.config.role_arn)
            .role_session_name(session_name(&grant))
            .policy(policy)
            .duration_seconds(seconds)
            .send()
            .await
            .map_err(|e| classify(e, "managed-storage role"))?;
        let creds = out
            .credentials()
            .ok_or_else(|| Error::permanent("AssumeRole answered without credentials"))?;
        let expiration = creds.expiration();
        let expiration = chrono::DateTime::<chrono::Utc>::from_timestamp(expiration.secs(), expiration.subsec_nanos())
            .ok_or_else(|| Error::permanent("AssumeRole answered an expiration out of range"))?;
        Ok(TemporaryCredentials {
            access_key_id: creds.access_key_id().to_owned(),
            secret_access_key: creds.secret_access_key().to_owned(),
            session_token: creds.session_token().to_owned(),
            expiration,
        })
    }
}

#[async_trait]
impl CredentialVendor for StsCredentialVendor {
    async fn access(&self, org: &OrgId, grant: Grant, destination: &Destination) -> Result<DestinationAccess> {
        let DestinationTarget::ArcaManaged { region } = &destination.spec.target else {
            return ConfigVendor.access(org, grant, destination).await;
        };
        if region.as_ref().is_some_and(|r| *r != self.config.region) {
            return Err(Error::permanent(format!(
                "this deployment keeps Arca-managed storage in {}, not {}",
                self.config.region,
                region.as_deref().unwrap_or_default()
            )));
        }
        let prefix = cluster_prefix(&self.config.prefix, org, grant.cluster());
        let credentials = self.assume(grant, &prefix).await?;
        Ok(DestinationAccess {
            destination_id: destination.id,
            // Resolved to the concrete bucket: the agent needs nothing else to reach it.
            target: DestinationTarget::S3 {
                endpoint: self.config.endpoint.clone(),
                bucket: self.config.bucket.clone(),
                region: self.config.region.clone(),
                prefix: self.config.prefix.clone(),
                credentials_ref: None,
                skip_tls_verify: false,
                path_style: None,
                ca_bundle: None,
            },
            cluster_prefix: prefix,
            credentials: Some(credentials),
            // Added by the control plane, which holds the master key.
            archive_key: None,
            key_id: None,
            earlier_keys: Vec::new(),
            // Added by the control plane, which knows the job's point.
            object_lock: None,
            customer_key: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_core::ids::ClusterId;

    const PREFIX: &str = "backups/org_1/cl_2/";

    fn statements(objects: Value, list: Value) -> Vec<Value> {
        vec![
            json!({
                "Sid": "ClusterObjects",
                "Effect": "Allow",
                "Action": objects,
                "Resource": "arn:aws:s3:::arca-managed/backups/org_1/cl_2/*",
            }),
            json!({
                "Sid": "ListClusterPrefix",
                "Effect": "Allow",
                "Action": list,
                "Resource": "arn:aws:s3:::arca-managed",
                "Condition": { "StringLike": { "s3:prefix": ["backups/org_1/cl_2/*"] } },
            }),
        ]
    }

    /// Backups and deletions: the cluster's own prefix, read, write and delete, and on an
    /// immutable bucket extending retention and deleting versions; never bypassing a lock.
    #[test]
    fn a_read_write_grant_allows_exactly_the_cluster_prefix() {
        let policy = session_policy("arca-managed", PREFIX, None, true);
        assert_eq!(policy["Version"], "2012-10-17");
        let mut expected = statements(
            json!([
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:GetObjectRetention",
                "s3:PutObjectRetention",
                "s3:DeleteObjectVersion"
            ]),
            json!(["s3:ListBucket", "s3:ListBucketVersions"]),
        );
        expected.push(json!({
            "Sid": "BucketObjectLock",
            "Effect": "Allow",
            "Action": "s3:GetBucketObjectLockConfiguration",
            "Resource": "arn:aws:s3:::arca-managed",
        }));
        assert_eq!(policy["Statement"], json!(expected));
        assert!(!policy.to_string().contains("Bypass"));
        let with_key = session_policy("b", "p/", Some("arn:aws:kms:us-east-1:111122223333:key/k"), true);
        assert_eq!(
            with_key["Statement"][3],
            json!({"Sid": "BucketKeyThroughS3", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                   "Resource": "arn:aws:kms:us-east-1:111122223333:key/k"})
        );
    }

    /// Restores, into the same cluster or another: the recovery point's cluster prefix,
    /// read only (no put, no delete; the bucket key for decryption only).
    #[test]
    fn a_read_only_grant_reads_the_points_cluster_prefix_and_writes_nothing() {
        let policy = session_policy("arca-managed", PREFIX, None, false);
        assert_eq!(
            policy["Statement"],
            json!(statements(
                json!(["s3:GetObject", "s3:GetObjectRetention"]),
                json!("s3:ListBucket")
            ))
        );
        let with_key = session_policy("b", "p/", Some("arn:aws:kms:us-east-1:111122223333:key/k"), false);
        assert_eq!(with_key["Statement"][2]["Action"], json!(["kms:Decrypt"]));
        assert!(!policy.to_string().contains("Put") && !policy.to_string().contains("Delete"));
    }

    #[test]
    fn packed_policies_fit_sts() {
        // STS limits a packed session policy to 2048 characters.
        for writes in [true, false] {
            let long = session_policy(
                &"b".repeat(63),
                &format!(
                    "{}/org_01ARZ3NDEKTSV4RRFFQ69G5FAV/cl_01ARZ3NDEKTSV4RRFFQ69G5FAV/",
                    "p".repeat(200)
                ),
                Some("arn:aws:kms:us-east-1:111122223333:key/0123abcd-0123-abcd-0123-0123456789ab"),
                writes,
            );
            assert!(long.to_string().len() < 2048);
        }
    }

    #[test]
    fn session_names_are_what_sts_accepts() {
        let cl: ClusterId = "cl_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
        assert_eq!(
            session_name(&Grant::ReadWrite(cl)),
            "arca-cl_01ARZ3NDEKTSV4RRFFQ69G5FAV"
        );
        assert_eq!(
            session_name(&Grant::ReadOnly(cl)),
            "arca-read-cl_01ARZ3NDEKTSV4RRFFQ69G5FAV"
        );
    }
}
