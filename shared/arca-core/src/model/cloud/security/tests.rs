#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration};

use super::*;
use crate::ids::{CloudAccountId, OrgId};

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
