//! Security scanning on moto: two linked accounts, two regions, resources made to fail
//! and to pass each rule moto can exercise, scanned through the assumed roles by the
//! control plane on DynamoDB (the same run as inventory). Then some are fixed and a
//! second scan resolves exactly those, keeps the others with the same ids and a later
//! `lastSeenAt`, and the filters narrow the listing.
//!
//! What moto cannot produce (an access key older than 90 days, root access keys, a
//! service refusing the role) is covered by the rules' unit tests in
//! `arca_core::model::cloud::security` and by `functions/api/tests/cloud_findings.rs`.

mod common;

use std::sync::Arc;

use arca_aws::AwsCloudConnector;
use arca_core::control_plane::FindingFilter;
use arca_core::model::cloud::account::{CloudAccountState, RoleRef};
use arca_core::model::cloud::security::{FindingState, SecurityFinding, Severity, evaluate};
use arca_core::ports::SystemClock;
use arca_core::ports::cloud::CloudConnector;
use arca_core::store::Store;
use arca_core::store::page::PageRequest;
use aws_config::SdkConfig;
use common::{as_account, cloud_control_plane, dynamo_store, fresh_account, link_account, postgres_instance, sign_up};

/// Sorted, as the account keeps them: the first one also reads S3 and IAM.
const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];

/// What was made in one account that the assertions name: EC2 ids per region.
#[derive(Debug, Default)]
struct Seeded {
    ec2: Vec<(String, Ec2Seed)>,
}

/// One region's security groups (SSH from anywhere, SSH from an office range), volumes
/// (plain, encrypted) and their snapshots (the plain one public).
#[derive(Debug, Default)]
struct Ec2Seed {
    sg_open: String,
    sg_office: String,
    volume_plain: String,
    volume_encrypted: String,
    snapshot_public: String,
    snapshot_private: String,
}

async fn seed_s3(config: &SdkConfig, account: &str) {
    use aws_sdk_s3::types::{
        BucketCannedAcl, BucketVersioningStatus, ServerSideEncryption, ServerSideEncryptionByDefault,
        ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
    };
    let s3 = arca_aws::config::s3_client(config);
    let encrypt = |name: String| {
        let s3 = s3.clone();
        async move {
            let rule = ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .expect("sse"),
                )
                .build();
            s3.put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(
                    ServerSideEncryptionConfiguration::builder()
                        .rules(rule)
                        .build()
                        .expect("sse config"),
                )
                .send()
                .await
                .expect("encryption");
        }
    };
    let tag = |name: String| {
        let s3 = s3.clone();
        async move {
            s3.put_bucket_tagging()
                .bucket(name)
                .tagging(
                    Tagging::builder()
                        .tag_set(Tag::builder().key("arca:backups").value("yes").build().expect("tag"))
                        .build()
                        .expect("tagging"),
                )
                .send()
                .await
                .expect("tag bucket");
        }
    };
    for suffix in ["public-acl", "public-policy", "plain", "backups", "backups-ok"] {
        s3.create_bucket()
            .bucket(format!("{account}-{suffix}"))
            .send()
            .await
            .expect("bucket");
        if suffix != "plain" {
            encrypt(format!("{account}-{suffix}")).await;
        }
    }
    s3.put_bucket_acl()
        .bucket(format!("{account}-public-acl"))
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("public acl");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{account}-public-policy/*"),
        }],
    });
    s3.put_bucket_policy()
        .bucket(format!("{account}-public-policy"))
        .policy(policy.to_string())
        .send()
        .await
        .expect("public policy");
    tag(format!("{account}-backups")).await;
    tag(format!("{account}-backups-ok")).await;
    // moto answers GetBucketVersioning of a never-versioned bucket with a document the
    // SDK cannot parse: the unversioned backup bucket is a suspended one here (never
    // enabled: the rule's unit test).
    for (suffix, status) in [
        ("backups", BucketVersioningStatus::Suspended),
        ("backups-ok", BucketVersioningStatus::Enabled),
    ] {
        s3.put_bucket_versioning()
            .bucket(format!("{account}-{suffix}"))
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await
            .expect("versioning");
    }
}

async fn seed_iam(config: &SdkConfig) {
    let iam = aws_sdk_iam::Client::new(config);
    for user in ["alice", "bob", "ci"] {
        iam.create_user().user_name(user).send().await.expect("user");
    }
    for user in ["alice", "bob"] {
        iam.create_login_profile()
            .user_name(user)
            .password("A-long-password-1")
            .send()
            .await
            .expect("login profile");
    }
    let mfa = iam
        .create_virtual_mfa_device()
        .virtual_mfa_device_name("bob")
        .send()
        .await
        .expect("mfa device");
    let serial = mfa
        .virtual_mfa_device()
        .map(|d| d.serial_number().to_owned())
        .expect("serial");
    iam.enable_mfa_device()
        .user_name("bob")
        .serial_number(serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .expect("enable mfa");
    // A fresh key: the 90-day rule passes (older keys: the rule's unit test).
    iam.create_access_key()
        .user_name("ci")
        .send()
        .await
        .expect("access key");
}

async fn seed_ec2(config: &SdkConfig, region: &str) -> Ec2Seed {
    use aws_sdk_ec2::types::{OperationType, SnapshotAttributeName};
    let ec2 = aws_sdk_ec2::Client::new(config);
    let mut out = Ec2Seed::default();
    for (name, cidr) in [("ssh-world", "0.0.0.0/0"), ("ssh-office", "203.0.113.0/24")] {
        let id = ec2
            .create_security_group()
            .group_name(name)
            .description(name)
            .send()
            .await
            .expect("security group")
            .group_id()
            .expect("group id")
            .to_owned();
        ec2.authorize_security_group_ingress()
            .group_id(&id)
            .ip_permissions(ssh_from(cidr))
            .send()
            .await
            .expect("ingress");
        if name == "ssh-world" {
            out.sg_open = id;
        } else {
            out.sg_office = id;
        }
    }
    for encrypted in [false, true] {
        let volume = ec2
            .create_volume()
            .availability_zone(format!("{region}a"))
            .size(1)
            .encrypted(encrypted)
            .send()
            .await
            .expect("volume")
            .volume_id()
            .expect("volume id")
            .to_owned();
        let snapshot = ec2
            .create_snapshot()
            .volume_id(&volume)
            .send()
            .await
            .expect("snapshot")
            .snapshot_id()
            .expect("snapshot id")
            .to_owned();
        if encrypted {
            out.volume_encrypted = volume;
            out.snapshot_private = snapshot;
        } else {
            ec2.modify_snapshot_attribute()
                .snapshot_id(&snapshot)
                .attribute(SnapshotAttributeName::CreateVolumePermission)
                .operation_type(OperationType::Add)
                .group_names("all")
                .send()
                .await
                .expect("make snapshot public");
            out.volume_plain = volume;
            out.snapshot_public = snapshot;
        }
    }
    out
}

fn ssh_from(cidr: &str) -> aws_sdk_ec2::types::IpPermission {
    aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip(cidr).build())
        .build()
}

async fn seed_rds_and_eks(config: &SdkConfig, account: &str) {
    let rds = aws_sdk_rds::Client::new(config);
    postgres_instance(&rds, "open-db")
        .publicly_accessible(true)
        .storage_encrypted(false)
        .backup_retention_period(0)
        .deletion_protection(false)
        .send()
        .await
        .expect("open db");
    postgres_instance(&rds, "tight-db")
        .publicly_accessible(false)
        .storage_encrypted(true)
        .backup_retention_period(7)
        .deletion_protection(true)
        .send()
        .await
        .expect("tight db");
    for (db, snapshot) in [("open-db", "open-db-shared"), ("tight-db", "tight-db-private")] {
        rds.create_db_snapshot()
            .db_instance_identifier(db)
            .db_snapshot_identifier(snapshot)
            .send()
            .await
            .expect("db snapshot");
    }
    rds.modify_db_snapshot_attribute()
        .db_snapshot_identifier("open-db-shared")
        .attribute_name("restore")
        .values_to_add("all")
        .send()
        .await
        .expect("share snapshot");

    use aws_sdk_eks::types::{EncryptionConfig, Provider, VpcConfigRequest};
    let eks = aws_sdk_eks::Client::new(config);
    eks.create_cluster()
        .name("open-eks")
        .role_arn(format!("arn:aws:iam::{account}:role/eks"))
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .endpoint_public_access(true)
                .public_access_cidrs("0.0.0.0/0")
                .build(),
        )
        .send()
        .await
        .expect("open eks");
    eks.create_cluster()
        .name("locked-eks")
        .role_arn(format!("arn:aws:iam::{account}:role/eks"))
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .endpoint_public_access(false)
                .endpoint_private_access(true)
                .build(),
        )
        .encryption_config(
            EncryptionConfig::builder()
                .provider(
                    Provider::builder()
                        .key_arn(format!("arn:aws:kms:us-east-1:{account}:key/secrets"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("locked eks");
}

/// CloudTrail and GuardDuty differ by account: the first has a single-region trail in
/// us-east-1 and GuardDuty on there; the second a multi-region trail and a detector
/// that is switched off.
async fn seed_trail_and_guardduty(config: &SdkConfig, account: &str, first: bool) {
    let ct = aws_sdk_cloudtrail::Client::new(config);
    let name = format!("trail-{account}");
    ct.create_trail()
        .name(&name)
        .s3_bucket_name(format!("{account}-backups-ok"))
        .is_multi_region_trail(!first)
        .send()
        .await
        .expect("trail");
    ct.start_logging().name(&name).send().await.expect("start logging");
    aws_sdk_guardduty::Client::new(config)
        .create_detector()
        .enable(first)
        .send()
        .await
        .expect("detector");
}

fn not_evaluated_rules(n: &[arca_core::model::cloud::security::NotEvaluated]) -> Vec<String> {
    n.iter().map(|n| n.rule_id.clone()).collect()
}

fn has(findings: &[SecurityFinding], rule: &str, arn_part: &str) -> bool {
    findings
        .iter()
        .any(|f| f.rule_id == rule && f.resource_arn.contains(arn_part))
}

fn rules_on(findings: &[SecurityFinding], arn_part: &str) -> Vec<String> {
    let mut rules: Vec<_> = findings
        .iter()
        .filter(|f| f.resource_arn.contains(arn_part))
        .map(|f| f.rule_id.clone())
        .collect();
    rules.sort();
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_two_regions_scanned_through_assumed_roles() {
    let Some(env) = arca_testenv::aws() else { return };
    let base = env.sdk_config().await;
    let first = fresh_account(3);
    let last = if first.ends_with('7') { '8' } else { '7' };
    let accounts = [first.clone(), format!("{}{last}", &first[..11])];
    assert_ne!(accounts[0], accounts[1]);
    let mut seeded = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let east = as_account(&base, account, "us-east-1").await;
        seed_s3(&east, account).await;
        seed_iam(&east).await;
        seed_rds_and_eks(&east, account).await;
        seed_trail_and_guardduty(&east, account, i == 0).await;
        let mut s = Seeded::default();
        for region in REGIONS {
            s.ec2.push((
                region.to_owned(),
                seed_ec2(&as_account(&base, account, region).await, region).await,
            ));
        }
        seeded.push(s);
    }

    // The adapter alone: facts of one region read through the role, judged by the rules.
    let connector = AwsCloudConnector::new(base.clone());
    let role = RoleRef {
        role_arn: format!("arn:aws:iam::{}:role/arca-cross-account", accounts[0]),
        external_id: "arca-0123456789abcdef0123456789abcdef".into(),
    };
    let facts = connector.security_facts(&role, "us-east-1", true).await.expect("facts");
    assert_eq!(facts.account_id, accounts[0]);
    let buckets = facts
        .global
        .as_ref()
        .expect("global")
        .buckets
        .as_ref()
        .expect("buckets");
    let mine: Vec<_> = buckets
        .iter()
        .filter(|b| b.name.starts_with(accounts[0].as_str()))
        .collect();
    assert_eq!(mine.len(), 5, "{buckets:#?}");
    let eval = evaluate(
        &facts,
        &arca_core::model::cloud::security::ScanContext {
            now: chrono::DateTime::from(std::time::SystemTime::now()),
        },
    );
    // moto answers GetBucketVersioning with a document that is not S3's (its root is
    // GetBucketVersioningResponse): the one rule reading it is "not evaluated", with the
    // reason, and every other rule is judged.
    assert_eq!(
        not_evaluated_rules(&eval.not_evaluated),
        ["S3.BACKUP_BUCKET_NO_VERSIONING"],
        "{:?}",
        eval.not_evaluated
    );
    assert!(
        eval.not_evaluated[0].reason.contains("GetBucketVersioning"),
        "{:?}",
        eval.not_evaluated
    );
    assert_eq!(
        eval.evaluated.len() + 1,
        arca_core::model::cloud::security::RULES.len(),
        "every other rule judged in the first region"
    );

    // The control plane: link both accounts, inventory (which scans), list findings.
    let items = Arc::new(dynamo_store(&base, "arca-scan").await);
    let cp = cloud_control_plane(items.clone(), Arc::new(SystemClock), Arc::new(connector));
    let p = sign_up(&cp, "scan").await;
    let all = FindingFilter::default();
    let page = PageRequest::after(None, 200);
    let mut linked = Vec::new();
    let mut first_findings = Vec::new();
    for account in &accounts {
        let regions = REGIONS.iter().map(|r| r.to_string()).collect();
        let view = link_account(&cp, &p, format!("acct-{account}"), regions, account, |_| {
            "arca-cross-account".into()
        })
        .await;
        assert_eq!(view.account.state, CloudAccountState::Active);
        let report = cp
            .inventory_cloud_account(&p, &view.account.id)
            .await
            .expect("inventory");
        let scan = report.scan.expect("the inventory scanned");
        assert_eq!(report.scan_error, None);
        assert_eq!(scan.regions.len(), 2);
        let not_evaluated: Vec<_> = scan
            .regions
            .iter()
            .map(|r| (r.region.as_str(), not_evaluated_rules(&r.not_evaluated)))
            .collect();
        assert_eq!(
            not_evaluated,
            [
                ("eu-west-1", vec!["S3.BACKUP_BUCKET_NO_VERSIONING".to_owned()]),
                ("us-east-1", vec![])
            ]
        );
        let listed = cp
            .list_cloud_findings(&p, &view.account.id, all, &page)
            .await
            .expect("findings");
        assert_eq!(listed.next_cursor, None);
        assert_eq!(listed.last_scan.as_ref().map(|s| s.opened), Some(listed.items.len()));
        linked.push(view.account.id);
        first_findings.push(listed.items);
    }

    for (i, account) in accounts.iter().enumerate() {
        let f = &first_findings[i];
        let other = &accounts[1 - i];
        assert!(
            f.iter().all(|x| !x.resource_arn.contains(other.as_str())),
            "account {account} sees only its own resources"
        );
        assert!(f.iter().all(|x| x.state == FindingState::Open));
        // S3: each failing bucket fails exactly its rule; the compliant one nothing.
        assert_eq!(rules_on(f, &format!(":::{account}-public-acl")), ["S3.PUBLIC_ACL"]);
        assert_eq!(
            rules_on(f, &format!(":::{account}-public-policy")),
            ["S3.PUBLIC_POLICY"]
        );
        assert_eq!(
            rules_on(f, &format!(":::{account}-plain")),
            ["S3.NO_DEFAULT_ENCRYPTION"]
        );
        // Tagged backup buckets: their rule could not be evaluated on moto (above), so
        // no finding either way.
        assert!(rules_on(f, &format!(":::{account}-backups")).is_empty());
        assert!(rules_on(f, &format!(":::{account}-backups-ok")).is_empty());
        // S3 and IAM are global: reported once, from the first region.
        assert!(
            f.iter()
                .filter(|x| x.rule_id.starts_with("S3.") || x.rule_id.starts_with("IAM."))
                .all(|x| x.region == "eu-west-1")
        );
        // IAM: a console user without MFA fails; with MFA, or a fresh key, passes.
        assert_eq!(rules_on(f, ":user/alice"), ["IAM.USER_NO_MFA"]);
        assert!(rules_on(f, ":user/bob").is_empty());
        assert!(rules_on(f, ":user/ci").is_empty());
        assert!(!f.iter().any(|x| x.rule_id == "IAM.ROOT_ACCESS_KEY"));
        // EC2, in both regions.
        for (region, e) in &seeded[i].ec2 {
            let in_region: Vec<_> = f.iter().filter(|x| &x.region == region).cloned().collect();
            assert_eq!(rules_on(&in_region, &e.sg_open), ["EC2.SG_ADMIN_PORT_OPEN"]);
            assert!(rules_on(&in_region, &e.sg_office).is_empty());
            assert_eq!(rules_on(&in_region, &e.volume_plain), ["EC2.EBS_VOLUME_UNENCRYPTED"]);
            assert!(rules_on(&in_region, &e.volume_encrypted).is_empty());
            assert_eq!(
                rules_on(&in_region, &e.snapshot_public),
                ["EC2.EBS_SNAPSHOT_PUBLIC", "EC2.EBS_SNAPSHOT_UNENCRYPTED"]
            );
            assert!(rules_on(&in_region, &e.snapshot_private).is_empty());
            let detail = in_region
                .iter()
                .find(|x| x.resource_arn.contains(&e.sg_open))
                .map(|x| x.detail.clone());
            assert_eq!(detail.as_deref(), Some("22/tcp open to 0.0.0.0/0"));
        }
        // RDS and EKS (us-east-1).
        assert_eq!(
            rules_on(f, ":db:open-db"),
            [
                "RDS.INSTANCE_UNENCRYPTED",
                "RDS.NO_AUTOMATED_BACKUPS",
                "RDS.NO_DELETION_PROTECTION",
                "RDS.PUBLIC_INSTANCE"
            ]
        );
        assert!(rules_on(f, ":db:tight-db").is_empty());
        assert_eq!(rules_on(f, "open-db-shared"), ["RDS.SNAPSHOT_PUBLIC"]);
        assert!(rules_on(f, "tight-db-private").is_empty());
        assert_eq!(
            rules_on(f, "cluster/open-eks"),
            ["EKS.NO_SECRETS_ENCRYPTION", "EKS.PUBLIC_ENDPOINT_OPEN"]
        );
        assert!(rules_on(f, "cluster/locked-eks").is_empty());
        // CloudTrail and GuardDuty, by account and region.
        let trail_off = |region: &str| has(f, "CLOUDTRAIL.OFF", &format!("cloudtrail:{region}:"));
        let guardduty_off = |region: &str| has(f, "GUARDDUTY.OFF", &format!("guardduty:{region}:"));
        if i == 0 {
            assert!(!trail_off("us-east-1") && trail_off("eu-west-1"), "{f:#?}");
            assert!(has(f, "CLOUDTRAIL.SINGLE_REGION", &format!("trail/trail-{account}")));
            assert!(!guardduty_off("us-east-1") && guardduty_off("eu-west-1"));
        } else {
            assert!(!trail_off("us-east-1") && !trail_off("eu-west-1"), "{f:#?}");
            assert!(!f.iter().any(|x| x.rule_id.starts_with("CLOUDTRAIL.")));
            assert!(guardduty_off("us-east-1") && guardduty_off("eu-west-1"));
        }
    }

    // Fix two things in the first account, break nothing: a rerun resolves exactly those.
    let account = &accounts[0];
    let east = as_account(&base, account, "us-east-1").await;
    arca_aws::config::s3_client(&east)
        .put_bucket_acl()
        .bucket(format!("{account}-public-acl"))
        .acl(aws_sdk_s3::types::BucketCannedAcl::Private)
        .send()
        .await
        .expect("private acl");
    let (west_region, west) = &seeded[0].ec2[0];
    aws_sdk_ec2::Client::new(&as_account(&base, account, west_region).await)
        .revoke_security_group_ingress()
        .group_id(&west.sg_open)
        .ip_permissions(ssh_from("0.0.0.0/0"))
        .send()
        .await
        .expect("revoke");
    let report = cp.inventory_cloud_account(&p, &linked[0]).await.expect("inventory");
    let scan = report.scan.expect("scanned");
    assert_eq!((scan.opened, scan.resolved), (0, 2), "{scan:?}");
    let resolved = cp
        .list_cloud_findings(
            &p,
            &linked[0],
            FindingFilter {
                state: Some(FindingState::Resolved),
                ..all
            },
            &page,
        )
        .await
        .expect("resolved");
    let mut resolved_rules: Vec<_> = resolved.items.iter().map(|f| f.rule_id.as_str()).collect();
    resolved_rules.sort();
    assert_eq!(resolved_rules, ["EC2.SG_ADMIN_PORT_OPEN", "S3.PUBLIC_ACL"]);
    assert!(resolved.items.iter().all(|f| f.resolved_at.is_some()));
    let open = cp
        .list_cloud_findings(
            &p,
            &linked[0],
            FindingFilter {
                state: Some(FindingState::Open),
                ..all
            },
            &page,
        )
        .await
        .expect("open");
    assert_eq!(open.items.len() + 2, first_findings[0].len());
    for f in &open.items {
        let before = first_findings[0]
            .iter()
            .find(|b| b.id == f.id)
            .expect("the same finding id on a rerun");
        assert_eq!(f.first_seen_at, before.first_seen_at);
        assert!(f.last_seen_at > before.last_seen_at, "{f:?}");
    }
    let serious = cp
        .list_cloud_findings(
            &p,
            &linked[0],
            FindingFilter {
                min_severity: Some(Severity::High),
                state: Some(FindingState::Open),
            },
            &page,
        )
        .await
        .expect("serious");
    assert!(!serious.items.is_empty());
    assert!(serious.items.iter().all(|f| f.severity >= Severity::High));
    assert!(serious.items.len() < open.items.len());
    assert_eq!(
        serious.items.len(),
        scan.open.critical + scan.open.high,
        "counts match the listing"
    );
    // The other account was not touched.
    let other = cp.list_cloud_findings(&p, &linked[1], all, &page).await.expect("other");
    assert_eq!(other.items, first_findings[1]);

    // Deleting the account forgets its findings and scan.
    let view = cp.get_cloud_account(&p, &linked[0]).await.expect("account");
    cp.delete_cloud_account(&p, &linked[0], view.account.version)
        .await
        .expect("delete");
    let gone = cp.list_cloud_findings(&p, &linked[0], all, &page).await;
    assert!(matches!(gone, Err(arca_core::Error::NotFound { .. })), "{gone:?}");
    let store = Store::new(items);
    assert_eq!(
        store
            .security_findings(&p.org_id, &linked[0])
            .await
            .expect("read")
            .len(),
        0
    );
    assert!(
        store
            .find::<arca_core::model::cloud::security::SecurityScan>(&p.org_id, &linked[0])
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        !store
            .security_findings(&p.org_id, &linked[1])
            .await
            .expect("read")
            .is_empty()
    );
}
