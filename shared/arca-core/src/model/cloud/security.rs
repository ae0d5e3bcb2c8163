//! Security scanning of linked accounts (the role stack's `security-scanning` permission
//! set, AWS's `SecurityAudit` policy).
//!
//! The connector reads a [`SecurityFacts`] snapshot of one account region (what the
//! describe/list/get calls answered, or why a service could not be read); the rules are
//! data: [`RULES`], each with an id, title, severity, remediation and a pure predicate
//! over the snapshot, so every rule is tested here without AWS. [`evaluate`] runs them
//! all; a rule whose facts could not be read is "not evaluated" with the reason, never a
//! silent pass. Findings are kept per account ([`SecurityFinding`], one per rule and
//! resource ARN) and merged scan by scan ([`merge_findings`]): seen again updates
//! `lastSeenAt`, not seen again in a region that was evaluated resolves it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{CloudAccountId, OrgId};

/// How bad a finding is. Ordered: `Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "LOW" => Some(Severity::Low),
            "MEDIUM" => Some(Severity::Medium),
            "HIGH" => Some(Severity::High),
            "CRITICAL" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// The AWS service a rule reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    S3,
    Ec2,
    Rds,
    Iam,
    Cloudtrail,
    Eks,
    Guardduty,
}

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

// ---- rules -------------------------------------------------------------------------------

/// What a rule is judged against besides the facts.
#[derive(Clone, Copy, Debug)]
pub struct ScanContext {
    pub now: DateTime<Utc>,
}

/// One resource failing a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub resource_arn: String,
    /// What exactly is wrong ("22/tcp open to 0.0.0.0/0").
    pub detail: String,
}

/// What a rule found in one region: `Ok(hits)` (empty: it passed), `Err(why)` when
/// its facts could not be read, `None` when it does not apply there (a global rule
/// outside the account's first region).
pub type Verdict = Option<std::result::Result<Vec<Hit>, String>>;

/// A check, as data.
pub struct Rule {
    /// Stable: `S3.PUBLIC_ACL`. Part of every finding's id.
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub service: Service,
    pub remediation: &'static str,
    pub check: fn(&SecurityFacts, &ScanContext) -> Verdict,
}

/// Access keys older than this are reported.
pub const ACCESS_KEY_MAX_AGE_DAYS: i64 = 90;
/// Ports from which administration is done: SSH, RDP, WinRM.
pub const ADMIN_PORTS: [i32; 4] = [22, 3389, 5985, 5986];
const ANYWHERE: [&str; 2] = ["0.0.0.0/0", "::/0"];

fn over<T>(read: &Read<Vec<T>>, hit: impl Fn(&T) -> Option<Hit>) -> Verdict {
    Some(match read {
        Ok(items) => Ok(items.iter().filter_map(hit).collect()),
        Err(why) => Err(why.clone()),
    })
}

fn global<T>(facts: &SecurityFacts, pick: impl Fn(&GlobalFacts) -> &Read<T>, hits: impl Fn(&T) -> Vec<Hit>) -> Verdict {
    let g = facts.global.as_ref()?;
    Some(pick(g).as_ref().map(hits).map_err(Clone::clone))
}

fn buckets(facts: &SecurityFacts, hit: impl Fn(&BucketFacts) -> Option<Hit>) -> Verdict {
    global(facts, |g| &g.buckets, |bs| bs.iter().filter_map(&hit).collect())
}

fn bucket_arn(b: &BucketFacts) -> String {
    format!("arn:aws:s3:::{}", b.name)
}

fn hit(arn: impl Into<String>, detail: impl Into<String>) -> Option<Hit> {
    Some(Hit {
        resource_arn: arn.into(),
        detail: detail.into(),
    })
}

fn ec2_arn(f: &SecurityFacts, kind: &str, id: &str) -> String {
    format!("arn:aws:ec2:{}:{}:{kind}/{id}", f.region, f.account_id)
}

/// The admin ports a rule opens to the world, and to which range.
fn open_admin_ports(rule: &IngressRule) -> Vec<(i32, &str)> {
    let open: Vec<&str> = rule
        .ipv4_ranges
        .iter()
        .chain(&rule.ipv6_ranges)
        .map(String::as_str)
        .filter(|r| ANYWHERE.contains(r))
        .collect();
    if open.is_empty() || !matches!(rule.protocol.as_str(), "-1" | "tcp" | "6") {
        return Vec::new();
    }
    let (from, to) = match (rule.protocol.as_str(), rule.from_port, rule.to_port) {
        ("-1", _, _) | (_, None, _) | (_, _, None) => (0, 65535),
        (_, Some(-1), _) => (0, 65535),
        (_, Some(from), Some(to)) => (from, to),
    };
    ADMIN_PORTS
        .iter()
        .filter(|p| (from..=to).contains(*p))
        .flat_map(|p| open.iter().map(move |r| (*p, *r)))
        .collect()
}

/// Every rule. Order is the order of the docs table (docs/cloud-accounts.md).
pub static RULES: &[Rule] = &[
    Rule {
        id: "S3.PUBLIC_ACL",
        title: "S3 bucket is public through its ACL",
        severity: Severity::Critical,
        service: Service::S3,
        remediation: "Remove the AllUsers/AuthenticatedUsers grants (PutBucketAcl private) and turn on Block Public Access (BlockPublicAcls, IgnorePublicAcls).",
        check: |f, _| {
            buckets(f, |b| {
                (b.acl_public && !b.ignore_public_acls)
                    .then(|| bucket_arn(b))
                    .and_then(|arn| hit(arn, "the ACL grants access to AllUsers or AuthenticatedUsers"))
            })
        },
    },
    Rule {
        id: "S3.PUBLIC_POLICY",
        title: "S3 bucket is public through its bucket policy",
        severity: Severity::Critical,
        service: Service::S3,
        remediation: "Narrow the bucket policy's Principal \"*\" statements to named accounts or conditions, and turn on Block Public Access (BlockPublicPolicy, RestrictPublicBuckets).",
        check: |f, _| {
            buckets(f, |b| {
                (b.policy_public && !b.restrict_public_buckets)
                    .then(|| bucket_arn(b))
                    .and_then(|arn| hit(arn, "GetBucketPolicyStatus says the policy is public"))
            })
        },
    },
    Rule {
        id: "S3.NO_DEFAULT_ENCRYPTION",
        title: "S3 bucket has no default encryption",
        severity: Severity::Medium,
        service: Service::S3,
        remediation: "Set a default encryption rule (PutBucketEncryption with SSE-S3 or SSE-KMS).",
        check: |f, _| {
            buckets(f, |b| {
                (!b.default_encryption)
                    .then(|| bucket_arn(b))
                    .and_then(|arn| hit(arn, "no default encryption configuration"))
            })
        },
    },
    Rule {
        id: "S3.BACKUP_BUCKET_NO_VERSIONING",
        title: "S3 bucket holding backups has no versioning",
        severity: Severity::High,
        service: Service::S3,
        remediation: "Enable versioning (PutBucketVersioning Enabled) on buckets that hold backups, with a lifecycle rule expiring noncurrent versions; consider Object Lock.",
        check: |f, _| {
            let g = f.global.as_ref()?;
            let buckets = match &g.buckets {
                Ok(b) => b,
                Err(why) => return Some(Err(why.clone())),
            };
            let mut hits = Vec::new();
            for b in buckets.iter().filter(|b| b.tags.contains_key(BACKUP_BUCKET_TAG)) {
                match &b.versioning {
                    Ok(Some(status)) if status == "Enabled" => {}
                    Ok(status) => hits.extend(hit(
                        bucket_arn(b),
                        format!(
                            "tagged {BACKUP_BUCKET_TAG}, versioning {}",
                            status.as_deref().unwrap_or("never enabled")
                        ),
                    )),
                    Err(why) => return Some(Err(format!("bucket {}: {why}", b.name))),
                }
            }
            Some(Ok(hits))
        },
    },
    Rule {
        id: "EC2.SG_ADMIN_PORT_OPEN",
        title: "Security group opens an administration port to the internet",
        severity: Severity::High,
        service: Service::Ec2,
        remediation: "Restrict the ingress rule to known address ranges, or reach instances through SSM Session Manager or a bastion instead.",
        check: |f, _| {
            over(&f.security_groups, |g| {
                let open: Vec<String> = g
                    .ingress
                    .iter()
                    .flat_map(open_admin_ports)
                    .map(|(port, range)| format!("{port}/tcp open to {range}"))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                (!open.is_empty())
                    .then(|| ec2_arn(f, "security-group", &g.id))
                    .and_then(|arn| hit(arn, open.join(", ")))
            })
        },
    },
    Rule {
        id: "EC2.EBS_VOLUME_UNENCRYPTED",
        title: "EBS volume is not encrypted",
        severity: Severity::Medium,
        service: Service::Ec2,
        remediation: "Copy the data to an encrypted volume (snapshot, copy the snapshot with encryption, create a volume from it) and turn on EBS encryption by default in the region.",
        check: |f, _| {
            over(&f.volumes, |v| {
                (!v.encrypted)
                    .then(|| ec2_arn(f, "volume", &v.id))
                    .and_then(|arn| hit(arn, "Encrypted is false"))
            })
        },
    },
    Rule {
        id: "EC2.EBS_SNAPSHOT_UNENCRYPTED",
        title: "EBS snapshot is not encrypted",
        severity: Severity::Medium,
        service: Service::Ec2,
        remediation: "Copy the snapshot with encryption (CopySnapshot --encrypted) and delete the unencrypted one.",
        check: |f, _| {
            over(&f.snapshots, |s| {
                (!s.encrypted)
                    .then(|| format!("arn:aws:ec2:{}::snapshot/{}", f.region, s.id))
                    .and_then(|arn| hit(arn, "Encrypted is false"))
            })
        },
    },
    Rule {
        id: "EC2.EBS_SNAPSHOT_PUBLIC",
        title: "EBS snapshot is public",
        severity: Severity::Critical,
        service: Service::Ec2,
        remediation: "Remove the public create-volume permission (ModifySnapshotAttribute --create-volume-permission Remove=[{Group=all}]) and turn on Block Public Access for EBS snapshots.",
        check: |f, _| {
            let snapshots = match &f.snapshots {
                Ok(s) => s,
                Err(why) => return Some(Err(why.clone())),
            };
            let mut hits = Vec::new();
            for s in snapshots {
                match &s.public {
                    Ok(true) => hits.extend(hit(
                        format!("arn:aws:ec2:{}::snapshot/{}", f.region, s.id),
                        "createVolumePermission includes group all",
                    )),
                    Ok(false) => {}
                    Err(why) => return Some(Err(format!("snapshot {}: {why}", s.id))),
                }
            }
            Some(Ok(hits))
        },
    },
    Rule {
        id: "RDS.PUBLIC_INSTANCE",
        title: "RDS instance is publicly accessible",
        severity: Severity::High,
        service: Service::Rds,
        remediation: "Modify the instance with --no-publicly-accessible and keep it in private subnets; connect through a VPN, bastion or RDS Proxy.",
        check: |f, _| {
            over(&f.rds_instances, |db| {
                db.publicly_accessible
                    .then(|| db.arn.clone())
                    .and_then(|arn| hit(arn, "PubliclyAccessible is true"))
            })
        },
    },
    Rule {
        id: "RDS.INSTANCE_UNENCRYPTED",
        title: "RDS instance storage is not encrypted",
        severity: Severity::Medium,
        service: Service::Rds,
        remediation: "Restore an encrypted copy: snapshot, copy the snapshot with a KMS key, restore from the copy, switch over.",
        check: |f, _| {
            over(&f.rds_instances, |db| {
                (!db.storage_encrypted)
                    .then(|| db.arn.clone())
                    .and_then(|arn| hit(arn, "StorageEncrypted is false"))
            })
        },
    },
    Rule {
        id: "RDS.NO_AUTOMATED_BACKUPS",
        title: "RDS instance has no automated backups",
        severity: Severity::High,
        service: Service::Rds,
        remediation: "Set a backup retention period of at least 7 days (ModifyDBInstance --backup-retention-period 7), or back it up with Arca.",
        check: |f, _| {
            over(&f.rds_instances, |db| {
                (!db.cluster_member && db.backup_retention_days <= 0)
                    .then(|| db.arn.clone())
                    .and_then(|arn| hit(arn, "BackupRetentionPeriod is 0"))
            })
        },
    },
    Rule {
        id: "RDS.NO_DELETION_PROTECTION",
        title: "RDS instance has no deletion protection",
        severity: Severity::Low,
        service: Service::Rds,
        remediation: "Turn on deletion protection (ModifyDBInstance --deletion-protection).",
        check: |f, _| {
            over(&f.rds_instances, |db| {
                (!db.cluster_member && !db.deletion_protection)
                    .then(|| db.arn.clone())
                    .and_then(|arn| hit(arn, "DeletionProtection is false"))
            })
        },
    },
    Rule {
        id: "RDS.SNAPSHOT_PUBLIC",
        title: "RDS snapshot is shared publicly",
        severity: Severity::Critical,
        service: Service::Rds,
        remediation: "Remove `all` from the snapshot's restore attribute (ModifyDBSnapshotAttribute --values-to-remove all).",
        check: |f, _| {
            let snapshots = match &f.rds_snapshots {
                Ok(s) => s,
                Err(why) => return Some(Err(why.clone())),
            };
            let mut hits = Vec::new();
            for s in snapshots {
                match &s.public {
                    Ok(true) => hits.extend(hit(s.arn.clone(), "the restore attribute includes all")),
                    Ok(false) => {}
                    Err(why) => return Some(Err(format!("snapshot {}: {why}", s.identifier))),
                }
            }
            Some(Ok(hits))
        },
    },
    Rule {
        id: "IAM.USER_NO_MFA",
        title: "IAM user with a console password has no MFA",
        severity: Severity::High,
        service: Service::Iam,
        remediation: "Assign an MFA device to the user (or remove the console password); prefer IAM Identity Center for people.",
        check: |f, _| {
            global(
                f,
                |g| &g.iam,
                |iam| {
                    iam.users
                        .iter()
                        .filter(|u| u.console_access && u.mfa_devices == 0)
                        .filter_map(|u| hit(u.arn.clone(), "console password and no MFA device"))
                        .collect()
                },
            )
        },
    },
    Rule {
        id: "IAM.ACCESS_KEY_OLD",
        title: "IAM access key older than 90 days",
        severity: Severity::Medium,
        service: Service::Iam,
        remediation: "Rotate the key: create a new one, move its users to it, deactivate and delete the old one; prefer roles over long-lived keys.",
        check: |f, ctx| {
            global(
                f,
                |g| &g.iam,
                |iam| {
                    let limit = ctx.now - Duration::days(ACCESS_KEY_MAX_AGE_DAYS);
                    iam.users
                        .iter()
                        .flat_map(|u| {
                            u.access_keys
                                .iter()
                                .filter(move |k| k.active && k.created_at.is_some_and(|t| t < limit))
                                .map(move |k| (u, k))
                        })
                        .filter_map(|(u, k)| {
                            let days = k.created_at.map(|t| (ctx.now - t).num_days()).unwrap_or_default();
                            hit(u.arn.clone(), format!("access key {} is {days} days old", k.id))
                        })
                        .collect()
                },
            )
        },
    },
    Rule {
        id: "IAM.ROOT_ACCESS_KEY",
        title: "The root user has access keys",
        severity: Severity::Critical,
        service: Service::Iam,
        remediation: "Delete the root user's access keys (signed in as root: Security credentials); use IAM roles instead.",
        check: |f, _| {
            global(
                f,
                |g| &g.iam,
                |iam| {
                    if iam.root_access_keys_present {
                        hit(
                            format!("arn:aws:iam::{}:root", f.account_id),
                            "AccountAccessKeysPresent is 1",
                        )
                        .into_iter()
                        .collect()
                    } else {
                        Vec::new()
                    }
                },
            )
        },
    },
    Rule {
        id: "CLOUDTRAIL.OFF",
        title: "No CloudTrail trail is logging in the region",
        severity: Severity::High,
        service: Service::Cloudtrail,
        remediation: "Create a multi-region trail (CreateTrail --is-multi-region-trail, StartLogging) delivering to a bucket in a separate account.",
        check: |f, _| {
            let trails = match &f.trails {
                Ok(t) => t,
                Err(why) => return Some(Err(why.clone())),
            };
            let mut logging = false;
            for t in trails.iter().filter(|t| t.multi_region || t.home_region == f.region) {
                match &t.logging {
                    Ok(on) => logging |= *on,
                    Err(why) => return Some(Err(format!("trail {}: {why}", t.name))),
                }
            }
            Some(Ok(if logging {
                Vec::new()
            } else {
                hit(
                    format!("arn:aws:cloudtrail:{}:{}:trail/*", f.region, f.account_id),
                    "no trail covering this region is logging",
                )
                .into_iter()
                .collect()
            }))
        },
    },
    Rule {
        id: "CLOUDTRAIL.SINGLE_REGION",
        title: "CloudTrail logs this region only through single-region trails",
        severity: Severity::Medium,
        service: Service::Cloudtrail,
        remediation: "Make the trail multi-region (UpdateTrail --is-multi-region-trail) so activity in every region, including new ones, is recorded.",
        check: |f, _| {
            let trails = match &f.trails {
                Ok(t) => t,
                Err(why) => return Some(Err(why.clone())),
            };
            let on = |t: &&TrailFacts| t.logging == Ok(true);
            if trails.iter().filter(on).any(|t| t.multi_region) {
                return Some(Ok(Vec::new()));
            }
            Some(Ok(trails
                .iter()
                .filter(on)
                .filter(|t| t.home_region == f.region)
                .filter_map(|t| hit(t.arn.clone(), "logging, but not multi-region"))
                .collect()))
        },
    },
    Rule {
        id: "EKS.PUBLIC_ENDPOINT_OPEN",
        title: "EKS cluster endpoint is public to the whole internet",
        severity: Severity::High,
        service: Service::Eks,
        remediation: "Turn off public endpoint access, or limit publicAccessCidrs to known ranges (UpdateClusterConfig --resources-vpc-config).",
        check: |f, _| {
            over(&f.eks_clusters, |c| {
                let open = c.public_access_cidrs.is_empty()
                    || c.public_access_cidrs.iter().any(|r| ANYWHERE.contains(&r.as_str()));
                (c.endpoint_public_access && open)
                    .then(|| c.arn.clone())
                    .and_then(|arn| hit(arn, "endpointPublicAccess with publicAccessCidrs 0.0.0.0/0"))
            })
        },
    },
    Rule {
        id: "EKS.NO_SECRETS_ENCRYPTION",
        title: "EKS cluster does not envelope-encrypt Kubernetes secrets with a KMS key",
        severity: Severity::Medium,
        service: Service::Eks,
        remediation: "Associate a KMS key for secrets (AssociateEncryptionConfig with resources [\"secrets\"]).",
        check: |f, _| {
            over(&f.eks_clusters, |c| {
                (!c.secrets_encrypted)
                    .then(|| c.arn.clone())
                    .and_then(|arn| hit(arn, "no encryptionConfig with a KMS key"))
            })
        },
    },
    Rule {
        id: "GUARDDUTY.OFF",
        title: "GuardDuty is not enabled in the region",
        severity: Severity::Medium,
        service: Service::Guardduty,
        remediation: "Enable GuardDuty (CreateDetector --enable) in every region, ideally from a delegated administrator account.",
        check: |f, _| {
            Some(match &f.guardduty_detectors {
                Ok(d) if d.iter().any(|d| d.enabled) => Ok(Vec::new()),
                Ok(_) => Ok(hit(
                    format!("arn:aws:guardduty:{}:{}:detector/*", f.region, f.account_id),
                    "no enabled detector",
                )
                .into_iter()
                .collect()),
                Err(why) => Err(why.clone()),
            })
        },
    },
];

pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// A rule that could not be judged in a region, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotEvaluated {
    pub rule_id: String,
    pub reason: String,
}

/// One rule failing on one resource, in one region's scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub rule: &'static Rule,
    pub region: String,
    pub hit: Hit,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id)
    }
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Rule {}

/// What every rule said about one region.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionEvaluation {
    pub observed: Vec<Observed>,
    /// Rules judged here (passed or failed): their absent findings are resolved.
    pub evaluated: BTreeSet<&'static str>,
    pub not_evaluated: Vec<NotEvaluated>,
}

/// Runs every rule over one region's facts.
pub fn evaluate(facts: &SecurityFacts, ctx: &ScanContext) -> RegionEvaluation {
    let mut out = RegionEvaluation::default();
    for rule in RULES {
        match (rule.check)(facts, ctx) {
            None => {}
            Some(Ok(hits)) => {
                out.evaluated.insert(rule.id);
                out.observed.extend(hits.into_iter().map(|hit| Observed {
                    rule,
                    region: facts.region.clone(),
                    hit,
                }));
            }
            Some(Err(reason)) => out.not_evaluated.push(NotEvaluated {
                rule_id: rule.id.into(),
                reason,
            }),
        }
    }
    out
}

// ---- findings ----------------------------------------------------------------------------

/// A finding's key: its account and a fingerprint of (rule, resource ARN), so a rerun
/// finds the same finding again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityFindingId {
    pub cloud_account_id: CloudAccountId,
    /// 32 hex digits of SHA-256(rule id, NUL, resource ARN).
    pub fingerprint: String,
}

impl SecurityFindingId {
    pub fn new(account: CloudAccountId, rule_id: &str, resource_arn: &str) -> Self {
        let mut h = Sha256::new();
        h.update(rule_id.as_bytes());
        h.update([0]);
        h.update(resource_arn.as_bytes());
        let digest = h.finalize();
        let fingerprint = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        SecurityFindingId {
            cloud_account_id: account,
            fingerprint,
        }
    }
}

impl std::fmt::Display for SecurityFindingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.fingerprint, self.cloud_account_id)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FindingState {
    Open,
    Resolved,
}

impl FindingState {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "OPEN" => Some(FindingState::Open),
            "RESOLVED" => Some(FindingState::Resolved),
            _ => None,
        }
    }
}

/// One rule failing on one resource of a linked account, across scans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityFinding {
    #[serde(flatten)]
    pub id: SecurityFindingId,
    pub org_id: OrgId,
    pub rule_id: String,
    pub title: String,
    pub severity: Severity,
    pub service: Service,
    pub region: String,
    pub resource_arn: String,
    pub detail: String,
    pub remediation: String,
    pub state: FindingState,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub version: u64,
}

/// What a scan changes in an account's stored findings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FindingChanges {
    /// New findings, and resolved ones seen again (OPEN again, first seen kept).
    pub opened: Vec<SecurityFinding>,
    /// Open findings seen again (last seen and detail updated).
    pub seen_again: Vec<SecurityFinding>,
    /// Open findings not seen in a region where their rule was evaluated.
    pub resolved: Vec<SecurityFinding>,
}

/// Merges one scan into the account's stored findings. A finding whose rule could not be
/// evaluated in its region (or whose region was not scanned) is left as it was: not
/// knowing is not a pass.
pub fn merge_findings(
    org: OrgId,
    account: CloudAccountId,
    stored: &[SecurityFinding],
    scanned: &BTreeMap<String, RegionEvaluation>,
    now: DateTime<Utc>,
) -> FindingChanges {
    let by_id: BTreeMap<&SecurityFindingId, &SecurityFinding> = stored.iter().map(|f| (&f.id, f)).collect();
    let mut changes = FindingChanges::default();
    let mut seen = BTreeSet::new();
    for eval in scanned.values() {
        for o in &eval.observed {
            let id = SecurityFindingId::new(account, o.rule.id, &o.hit.resource_arn);
            if !seen.insert(id.clone()) {
                continue; // the same global resource reported twice
            }
            let fresh = SecurityFinding {
                id: id.clone(),
                org_id: org,
                rule_id: o.rule.id.into(),
                title: o.rule.title.into(),
                severity: o.rule.severity,
                service: o.rule.service,
                region: o.region.clone(),
                resource_arn: o.hit.resource_arn.clone(),
                detail: o.hit.detail.clone(),
                remediation: o.rule.remediation.into(),
                state: FindingState::Open,
                first_seen_at: now,
                last_seen_at: now,
                resolved_at: None,
                version: 0,
            };
            match by_id.get(&id) {
                None => changes.opened.push(fresh),
                Some(old) => {
                    let again = SecurityFinding {
                        first_seen_at: old.first_seen_at,
                        version: old.version,
                        ..fresh
                    };
                    if old.state == FindingState::Resolved {
                        changes.opened.push(again);
                    } else {
                        changes.seen_again.push(again);
                    }
                }
            }
        }
    }
    for old in stored
        .iter()
        .filter(|f| f.state == FindingState::Open && !seen.contains(&f.id))
    {
        let judged = scanned
            .get(&old.region)
            .is_some_and(|e| e.evaluated.contains(old.rule_id.as_str()));
        if judged {
            changes.resolved.push(SecurityFinding {
                state: FindingState::Resolved,
                resolved_at: Some(now),
                ..old.clone()
            });
        }
    }
    changes
}

/// Open findings by severity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeverityCounts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

impl SeverityCounts {
    pub fn add(&mut self, s: Severity) {
        match s {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            Severity::Low => self.low += 1,
        }
    }
}

/// One region of the last scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionScan {
    pub region: String,
    /// Rules judged (passed or failed) in the region.
    pub evaluated: usize,
    /// Rules that could not be judged, and why.
    pub not_evaluated: Vec<NotEvaluated>,
}

/// The last security scan of a linked account (one per account).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityScan {
    pub cloud_account_id: CloudAccountId,
    pub org_id: OrgId,
    pub scanned_at: DateTime<Utc>,
    pub regions: Vec<RegionScan>,
    /// Open findings after the scan.
    pub open: SeverityCounts,
    /// Findings this scan opened (new, or resolved ones back).
    pub opened: usize,
    /// Findings this scan resolved.
    pub resolved: usize,
    /// Why the account was not scanned at all (the permission set is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(default)]
    pub version: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ACCT: &str = "111122223333";

    fn ctx() -> ScanContext {
        ScanContext {
            now: DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z").unwrap().into(),
        }
    }

    /// The ARNs rule `id` reports in `facts`; panics if it was not evaluated.
    fn hits(id: &str, facts: &SecurityFacts) -> Vec<String> {
        let r = rule(id).unwrap();
        match (r.check)(facts, &ctx()) {
            Some(Ok(h)) => h.into_iter().map(|h| h.resource_arn).collect(),
            other => panic!("{id}: {other:?}"),
        }
    }

    fn with_global(f: impl FnOnce(&mut GlobalFacts)) -> SecurityFacts {
        let mut facts = SecurityFacts::empty(ACCT, "us-east-1", true);
        f(facts.global.as_mut().unwrap());
        facts
    }

    fn bucket(name: &str) -> BucketFacts {
        BucketFacts {
            name: name.into(),
            region: "us-east-1".into(),
            default_encryption: true,
            ..Default::default()
        }
    }

    #[test]
    fn rule_ids_are_unique_and_shaped() {
        let ids: BTreeSet<_> = RULES.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), RULES.len());
        for r in RULES {
            let (service, name) = r.id.split_once('.').unwrap();
            assert_eq!(service.to_ascii_lowercase(), serde_json::to_value(r.service).unwrap());
            assert!(name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{}", r.id);
            assert!(!r.remediation.is_empty() && !r.title.is_empty());
        }
    }

    #[test]
    fn s3_rules() {
        let facts = with_global(|g| {
            g.buckets = Ok(vec![
                BucketFacts {
                    acl_public: true,
                    ..bucket("acl")
                },
                BucketFacts {
                    acl_public: true,
                    ignore_public_acls: true,
                    ..bucket("acl-blocked")
                },
                BucketFacts {
                    policy_public: true,
                    ..bucket("policy")
                },
                BucketFacts {
                    policy_public: true,
                    restrict_public_buckets: true,
                    ..bucket("policy-blocked")
                },
                BucketFacts {
                    default_encryption: false,
                    ..bucket("plain")
                },
                BucketFacts {
                    tags: BTreeMap::from([(BACKUP_BUCKET_TAG.into(), "yes".into())]),
                    versioning: Ok(Some("Suspended".into())),
                    ..bucket("backups")
                },
                BucketFacts {
                    tags: BTreeMap::from([(BACKUP_BUCKET_TAG.into(), "yes".into())]),
                    versioning: Ok(Some("Enabled".into())),
                    ..bucket("backups-versioned")
                },
                bucket("unversioned-but-not-backups"),
                BucketFacts {
                    tags: BTreeMap::from([(BACKUP_BUCKET_TAG.into(), "yes".into())]),
                    ..bucket("backups-never-versioned")
                },
            ])
        });
        assert_eq!(hits("S3.PUBLIC_ACL", &facts), ["arn:aws:s3:::acl"]);
        assert_eq!(hits("S3.PUBLIC_POLICY", &facts), ["arn:aws:s3:::policy"]);
        assert_eq!(hits("S3.NO_DEFAULT_ENCRYPTION", &facts), ["arn:aws:s3:::plain"]);
        assert_eq!(
            hits("S3.BACKUP_BUCKET_NO_VERSIONING", &facts),
            ["arn:aws:s3:::backups", "arn:aws:s3:::backups-never-versioned"]
        );
        // A tagged bucket whose versioning could not be read: not evaluated, not passed.
        let unreadable = with_global(|g| {
            g.buckets = Ok(vec![BucketFacts {
                tags: BTreeMap::from([(BACKUP_BUCKET_TAG.into(), "yes".into())]),
                versioning: Err("GetBucketVersioning: bad answer".into()),
                ..bucket("b")
            }])
        });
        assert_eq!(
            (rule_by("S3.BACKUP_BUCKET_NO_VERSIONING").check)(&unreadable, &ctx()),
            Some(Err("bucket b: GetBucketVersioning: bad answer".into()))
        );
        assert_eq!(hits("S3.PUBLIC_ACL", &unreadable), Vec::<String>::new());
    }

    #[test]
    fn admin_ports_open_to_the_world() {
        let rule = |protocol: &str, from, to, v4: &[&str], v6: &[&str]| IngressRule {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            ipv4_ranges: v4.iter().map(|s| s.to_string()).collect(),
            ipv6_ranges: v6.iter().map(|s| s.to_string()).collect(),
        };
        let mut facts = SecurityFacts::empty(ACCT, "eu-west-1", false);
        facts.security_groups = Ok(vec![
            SecurityGroupFacts {
                id: "sg-ssh".into(),
                ingress: vec![rule("tcp", Some(22), Some(22), &["0.0.0.0/0"], &[])],
                ..Default::default()
            },
            SecurityGroupFacts {
                id: "sg-v6-range".into(),
                ingress: vec![rule("tcp", Some(3000), Some(4000), &[], &["::/0"])],
                ..Default::default()
            },
            SecurityGroupFacts {
                id: "sg-all".into(),
                ingress: vec![rule("-1", None, None, &["0.0.0.0/0"], &[])],
                ..Default::default()
            },
            SecurityGroupFacts {
                id: "sg-office".into(),
                ingress: vec![rule("tcp", Some(22), Some(22), &["203.0.113.0/24"], &[])],
                ..Default::default()
            },
            SecurityGroupFacts {
                id: "sg-https".into(),
                ingress: vec![rule("tcp", Some(443), Some(443), &["0.0.0.0/0"], &["::/0"])],
                ..Default::default()
            },
            SecurityGroupFacts {
                id: "sg-udp".into(),
                ingress: vec![rule("udp", Some(0), Some(65535), &["0.0.0.0/0"], &[])],
                ..Default::default()
            },
        ]);
        assert_eq!(
            hits("EC2.SG_ADMIN_PORT_OPEN", &facts),
            [
                "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-ssh",
                "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-v6-range",
                "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-all",
            ]
        );
        let detail = (rule_by("EC2.SG_ADMIN_PORT_OPEN").check)(&facts, &ctx())
            .unwrap()
            .unwrap();
        assert_eq!(detail[1].detail, "3389/tcp open to ::/0");
    }

    fn rule_by(id: &str) -> &'static Rule {
        rule(id).unwrap()
    }

    #[test]
    fn ebs_and_rds_rules() {
        let mut facts = SecurityFacts::empty(ACCT, "us-east-1", false);
        facts.volumes = Ok(vec![
            VolumeFacts {
                id: "vol-plain".into(),
                encrypted: false,
            },
            VolumeFacts {
                id: "vol-enc".into(),
                encrypted: true,
            },
        ]);
        facts.snapshots = Ok(vec![
            SnapshotFacts {
                id: "snap-public".into(),
                encrypted: true,
                public: Ok(true),
            },
            SnapshotFacts {
                id: "snap-plain".into(),
                encrypted: false,
                public: Ok(false),
            },
        ]);
        let db = |id: &str| RdsInstanceFacts {
            arn: format!("arn:aws:rds:us-east-1:{ACCT}:db:{id}"),
            identifier: id.into(),
            storage_encrypted: true,
            backup_retention_days: 7,
            deletion_protection: true,
            ..Default::default()
        };
        facts.rds_instances = Ok(vec![
            RdsInstanceFacts {
                publicly_accessible: true,
                storage_encrypted: false,
                backup_retention_days: 0,
                deletion_protection: false,
                ..db("bad")
            },
            db("good"),
            RdsInstanceFacts {
                backup_retention_days: 0,
                deletion_protection: false,
                cluster_member: true,
                ..db("aurora-member")
            },
        ]);
        facts.rds_snapshots = Ok(vec![
            RdsSnapshotFacts {
                arn: "arn:snap:shared".into(),
                identifier: "shared".into(),
                public: Ok(true),
            },
            RdsSnapshotFacts {
                arn: "arn:snap:private".into(),
                identifier: "private".into(),
                public: Ok(false),
            },
        ]);
        assert_eq!(
            hits("EC2.EBS_VOLUME_UNENCRYPTED", &facts),
            ["arn:aws:ec2:us-east-1:111122223333:volume/vol-plain"]
        );
        assert_eq!(
            hits("EC2.EBS_SNAPSHOT_UNENCRYPTED", &facts),
            ["arn:aws:ec2:us-east-1::snapshot/snap-plain"]
        );
        assert_eq!(
            hits("EC2.EBS_SNAPSHOT_PUBLIC", &facts),
            ["arn:aws:ec2:us-east-1::snapshot/snap-public"]
        );
        let bad = vec![format!("arn:aws:rds:us-east-1:{ACCT}:db:bad")];
        for id in [
            "RDS.PUBLIC_INSTANCE",
            "RDS.INSTANCE_UNENCRYPTED",
            "RDS.NO_AUTOMATED_BACKUPS",
            "RDS.NO_DELETION_PROTECTION",
        ] {
            assert_eq!(hits(id, &facts), bad, "{id}");
        }
        assert_eq!(hits("RDS.SNAPSHOT_PUBLIC", &facts), ["arn:snap:shared"]);

        // One snapshot whose attribute could not be read: the rule is not evaluated.
        facts.rds_snapshots = Ok(vec![RdsSnapshotFacts {
            arn: "arn:snap:x".into(),
            identifier: "x".into(),
            public: Err("AccessDenied".into()),
        }]);
        let verdict = (rule_by("RDS.SNAPSHOT_PUBLIC").check)(&facts, &ctx());
        assert_eq!(verdict, Some(Err("snapshot x: AccessDenied".into())));
    }

    #[test]
    fn iam_rules_with_an_injected_clock() {
        let now = ctx().now;
        let key = |id: &str, days: i64, active| AccessKeyFacts {
            id: id.into(),
            active,
            created_at: Some(now - Duration::days(days)),
        };
        let facts = with_global(|g| {
            g.iam = Ok(IamFacts {
                root_access_keys_present: true,
                users: vec![
                    IamUserFacts {
                        arn: "arn:aws:iam::1:user/alice".into(),
                        name: "alice".into(),
                        console_access: true,
                        mfa_devices: 0,
                        access_keys: vec![key("AKIAOLD", 91, true), key("AKIANEW", 89, true)],
                    },
                    IamUserFacts {
                        arn: "arn:aws:iam::1:user/bob".into(),
                        name: "bob".into(),
                        console_access: true,
                        mfa_devices: 1,
                        access_keys: vec![key("AKIAOFF", 400, false)],
                    },
                    IamUserFacts {
                        arn: "arn:aws:iam::1:user/ci".into(),
                        name: "ci".into(),
                        console_access: false,
                        mfa_devices: 0,
                        access_keys: vec![key("AKIAFRESH", 0, true)],
                    },
                ],
            })
        });
        assert_eq!(hits("IAM.USER_NO_MFA", &facts), ["arn:aws:iam::1:user/alice"]);
        assert_eq!(hits("IAM.ACCESS_KEY_OLD", &facts), ["arn:aws:iam::1:user/alice"]);
        let detail = (rule_by("IAM.ACCESS_KEY_OLD").check)(&facts, &ctx()).unwrap().unwrap();
        assert_eq!(detail[0].detail, "access key AKIAOLD is 91 days old");
        assert_eq!(hits("IAM.ROOT_ACCESS_KEY", &facts), ["arn:aws:iam::111122223333:root"]);
        // Global rules do not apply outside the first region.
        let elsewhere = SecurityFacts::empty(ACCT, "eu-west-1", false);
        assert_eq!((rule_by("IAM.USER_NO_MFA").check)(&elsewhere, &ctx()), None);
    }

    #[test]
    fn cloudtrail_eks_and_guardduty_rules() {
        let trail = |name: &str, home: &str, multi, logging| TrailFacts {
            arn: format!("arn:aws:cloudtrail:{home}:{ACCT}:trail/{name}"),
            name: name.into(),
            home_region: home.into(),
            multi_region: multi,
            logging,
        };
        let mut facts = SecurityFacts::empty(ACCT, "us-east-1", false);
        assert_eq!(
            hits("CLOUDTRAIL.OFF", &facts),
            ["arn:aws:cloudtrail:us-east-1:111122223333:trail/*"]
        );
        assert_eq!(hits("GUARDDUTY.OFF", &facts).len(), 1);
        facts.trails = Ok(vec![trail("local", "us-east-1", false, Ok(true))]);
        assert!(hits("CLOUDTRAIL.OFF", &facts).is_empty());
        assert_eq!(
            hits("CLOUDTRAIL.SINGLE_REGION", &facts),
            ["arn:aws:cloudtrail:us-east-1:111122223333:trail/local"]
        );
        // A multi-region trail homed elsewhere covers this region too.
        facts.trails = Ok(vec![trail("org", "eu-west-1", true, Ok(true))]);
        assert!(hits("CLOUDTRAIL.OFF", &facts).is_empty());
        assert!(hits("CLOUDTRAIL.SINGLE_REGION", &facts).is_empty());
        // Stopped: off again.
        facts.trails = Ok(vec![trail("org", "eu-west-1", true, Ok(false))]);
        assert_eq!(hits("CLOUDTRAIL.OFF", &facts).len(), 1);

        facts.guardduty_detectors = Ok(vec![DetectorFacts {
            id: "d1".into(),
            enabled: false,
        }]);
        assert_eq!(hits("GUARDDUTY.OFF", &facts).len(), 1);
        facts.guardduty_detectors = Ok(vec![DetectorFacts {
            id: "d1".into(),
            enabled: true,
        }]);
        assert!(hits("GUARDDUTY.OFF", &facts).is_empty());

        let eks = |name: &str, public, cidrs: &[&str], enc| EksClusterFacts {
            arn: format!("arn:eks:{name}"),
            name: name.into(),
            endpoint_public_access: public,
            public_access_cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
            secrets_encrypted: enc,
        };
        facts.eks_clusters = Ok(vec![
            eks("open", true, &[], false),
            eks("world", true, &["0.0.0.0/0"], true),
            eks("office", true, &["203.0.113.0/24"], true),
            eks("private", false, &[], true),
        ]);
        assert_eq!(
            hits("EKS.PUBLIC_ENDPOINT_OPEN", &facts),
            ["arn:eks:open", "arn:eks:world"]
        );
        assert_eq!(hits("EKS.NO_SECRETS_ENCRYPTION", &facts), ["arn:eks:open"]);
    }

    #[test]
    fn unreadable_services_are_not_evaluated_not_passed() {
        let facts = SecurityFacts::unreadable(ACCT, "us-east-1", true, "AccessDenied: no SecurityAudit");
        let eval = evaluate(&facts, &ctx());
        assert!(eval.observed.is_empty());
        assert!(eval.evaluated.is_empty());
        assert_eq!(eval.not_evaluated.len(), RULES.len());
        assert!(eval.not_evaluated.iter().all(|n| n.reason.contains("AccessDenied")));
        // Outside the first region, global rules are neither.
        let elsewhere = evaluate(&SecurityFacts::unreadable(ACCT, "eu-west-1", false, "x"), &ctx());
        let global_rules = RULES
            .iter()
            .filter(|r| matches!(r.service, Service::S3 | Service::Iam))
            .count();
        assert_eq!(elsewhere.not_evaluated.len(), RULES.len() - global_rules);
    }

    #[test]
    fn merging_opens_updates_resolves_and_reopens() {
        let org = OrgId::new();
        let account = CloudAccountId::new();
        let t0 = ctx().now;
        let t1 = t0 + Duration::hours(12);
        let t2 = t1 + Duration::hours(12);
        let mut facts = SecurityFacts::empty(ACCT, "us-east-1", false);
        facts.volumes = Ok(vec![VolumeFacts {
            id: "vol-1".into(),
            encrypted: false,
        }]);
        let scan = |facts: &SecurityFacts| BTreeMap::from([(facts.region.clone(), evaluate(facts, &ctx()))]);

        let first = merge_findings(org, account, &[], &scan(&facts), t0);
        // vol-1 unencrypted, no trail, no GuardDuty.
        assert_eq!(first.opened.len(), 3, "{first:#?}");
        let mut stored = first.opened.clone();

        let second = merge_findings(org, account, &stored, &scan(&facts), t1);
        assert!(second.opened.is_empty() && second.resolved.is_empty());
        assert_eq!(second.seen_again.len(), 3);
        assert!(
            second
                .seen_again
                .iter()
                .all(|f| f.first_seen_at == t0 && f.last_seen_at == t1)
        );
        assert_eq!(
            second.seen_again.iter().map(|f| &f.id).collect::<BTreeSet<_>>(),
            stored.iter().map(|f| &f.id).collect::<BTreeSet<_>>(),
            "the same finding ids on a rerun"
        );

        // Encrypted now: resolved. EC2 unreadable instead: left alone.
        facts.volumes = Ok(vec![VolumeFacts {
            id: "vol-1".into(),
            encrypted: true,
        }]);
        let third = merge_findings(org, account, &stored, &scan(&facts), t2);
        assert_eq!(third.resolved.len(), 1);
        assert_eq!(third.resolved[0].rule_id, "EC2.EBS_VOLUME_UNENCRYPTED");
        assert_eq!(third.resolved[0].resolved_at, Some(t2));
        let mut unreadable = facts.clone();
        unreadable.volumes = Err("AccessDenied".into());
        assert!(
            merge_findings(org, account, &stored, &scan(&unreadable), t2)
                .resolved
                .is_empty()
        );

        // Back again: reopened, first seen kept.
        for f in &mut stored {
            if f.rule_id == "EC2.EBS_VOLUME_UNENCRYPTED" {
                *f = third.resolved[0].clone();
            }
        }
        facts.volumes = Ok(vec![VolumeFacts {
            id: "vol-1".into(),
            encrypted: false,
        }]);
        let fourth = merge_findings(org, account, &stored, &scan(&facts), t2);
        assert_eq!(fourth.opened.len(), 1);
        assert_eq!(
            (
                fourth.opened[0].state,
                fourth.opened[0].first_seen_at,
                fourth.opened[0].resolved_at
            ),
            (FindingState::Open, t0, None)
        );
    }
}
