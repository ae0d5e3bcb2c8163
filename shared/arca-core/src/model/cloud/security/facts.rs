//! What one scan of an account region reads: the facts the rules judge.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// What one service read gave: the facts, or why they could not be read (AccessDenied
/// when the permission set is off, a service not offered in the region, ...).
pub type Read<T> = std::result::Result<T, String>;

/// One account region, as the SecurityAudit calls see it.
#[derive(Clone, Debug)]
pub struct SecurityFacts {
    pub account_id: String,
    pub region: String,
    /// S3 and IAM are global: read once per account, with its first region; `None`
    /// in the others.
    pub global: Option<GlobalFacts>,
    pub security_groups: Read<Vec<SecurityGroupFacts>>,
    pub volumes: Read<Vec<VolumeFacts>>,
    pub snapshots: Read<Vec<SnapshotFacts>>,
    pub rds_instances: Read<Vec<RdsInstanceFacts>>,
    pub rds_snapshots: Read<Vec<RdsSnapshotFacts>>,
    pub trails: Read<Vec<TrailFacts>>,
    pub eks_clusters: Read<Vec<EksClusterFacts>>,
    pub guardduty_detectors: Read<Vec<DetectorFacts>>,
}

impl SecurityFacts {
    /// A region with nothing in it (every read answered, empty): the start of tests.
    pub fn empty(account_id: &str, region: &str, global: bool) -> Self {
        SecurityFacts {
            account_id: account_id.into(),
            region: region.into(),
            global: global.then(|| GlobalFacts {
                buckets: Ok(Vec::new()),
                iam: Ok(IamFacts::default()),
            }),
            security_groups: Ok(Vec::new()),
            volumes: Ok(Vec::new()),
            snapshots: Ok(Vec::new()),
            rds_instances: Ok(Vec::new()),
            rds_snapshots: Ok(Vec::new()),
            trails: Ok(Vec::new()),
            eks_clusters: Ok(Vec::new()),
            guardduty_detectors: Ok(Vec::new()),
        }
    }

    /// A region none of whose services could be read, for the same `why`.
    pub fn unreadable(account_id: &str, region: &str, global: bool, why: &str) -> Self {
        fn e<T>(why: &str) -> Read<T> {
            Err(why.to_string())
        }
        SecurityFacts {
            account_id: account_id.into(),
            region: region.into(),
            global: global.then(|| GlobalFacts {
                buckets: e(why),
                iam: e(why),
            }),
            security_groups: e(why),
            volumes: e(why),
            snapshots: e(why),
            rds_instances: e(why),
            rds_snapshots: e(why),
            trails: e(why),
            eks_clusters: e(why),
            guardduty_detectors: e(why),
        }
    }
}

#[derive(Clone, Debug)]
pub struct GlobalFacts {
    pub buckets: Read<Vec<BucketFacts>>,
    pub iam: Read<IamFacts>,
}

/// The tag that marks a bucket holding backups (versioning is checked on those).
pub const BACKUP_BUCKET_TAG: &str = "arca:backups";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketFacts {
    pub name: String,
    pub region: String,
    /// The ACL grants something to AllUsers or AuthenticatedUsers.
    pub acl_public: bool,
    /// GetBucketPolicyStatus's IsPublic (`false` without a policy).
    pub policy_public: bool,
    /// The bucket's public access block (all `false` without one).
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
    /// A default encryption rule is configured.
    pub default_encryption: bool,
    /// GetBucketVersioning's status (`Enabled`, `Suspended`; `None` if never enabled, or
    /// not read: it is read only for buckets tagged [`BACKUP_BUCKET_TAG`]); an error if
    /// it could not be read.
    pub versioning: Read<Option<String>>,
    pub tags: BTreeMap<String, String>,
}

impl Default for BucketFacts {
    fn default() -> Self {
        BucketFacts {
            name: String::new(),
            region: String::new(),
            acl_public: false,
            policy_public: false,
            block_public_acls: false,
            ignore_public_acls: false,
            block_public_policy: false,
            restrict_public_buckets: false,
            default_encryption: false,
            versioning: Ok(None),
            tags: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityGroupFacts {
    pub id: String,
    pub name: String,
    pub ingress: Vec<IngressRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngressRule {
    /// `tcp`, `udp`, `icmp` or `-1` (all).
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub ipv4_ranges: Vec<String>,
    pub ipv6_ranges: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeFacts {
    pub id: String,
    pub encrypted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFacts {
    pub id: String,
    pub encrypted: bool,
    /// `createVolumePermission` includes the group `all`; an error if that attribute
    /// could not be read.
    pub public: Read<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RdsInstanceFacts {
    pub arn: String,
    pub identifier: String,
    pub publicly_accessible: bool,
    pub storage_encrypted: bool,
    pub backup_retention_days: i32,
    pub deletion_protection: bool,
    /// A member of an Aurora cluster: backups and deletion protection are the cluster's.
    pub cluster_member: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdsSnapshotFacts {
    pub arn: String,
    pub identifier: String,
    /// The `restore` attribute includes `all`; an error if it could not be read.
    pub public: Read<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IamFacts {
    pub users: Vec<IamUserFacts>,
    /// GetAccountSummary's `AccountAccessKeysPresent`.
    pub root_access_keys_present: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IamUserFacts {
    pub arn: String,
    pub name: String,
    /// The user has a console password (a login profile).
    pub console_access: bool,
    pub mfa_devices: usize,
    pub access_keys: Vec<AccessKeyFacts>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKeyFacts {
    pub id: String,
    pub active: bool,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailFacts {
    pub arn: String,
    pub name: String,
    pub home_region: String,
    pub multi_region: bool,
    /// GetTrailStatus's IsLogging; an error if it could not be read.
    pub logging: Read<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EksClusterFacts {
    pub arn: String,
    pub name: String,
    pub endpoint_public_access: bool,
    /// Empty means EKS's default, `0.0.0.0/0`.
    pub public_access_cidrs: Vec<String>,
    /// Secrets are envelope-encrypted with a KMS key of the account's (an
    /// `encryptionConfig` with a provider key).
    pub secrets_encrypted: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DetectorFacts {
    pub id: String,
    /// GetDetector's status is `ENABLED`.
    pub enabled: bool,
}
