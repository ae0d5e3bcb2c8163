//! The checks, as data: each rule is an id, a severity, a remediation and a pure predicate
//! over [`SecurityFacts`]; [`evaluate`] runs them all over one region.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::*;

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
