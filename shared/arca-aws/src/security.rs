//! The security scan's reads (`CloudConnector::security_facts`): the describe/list/get
//! calls AWS's `SecurityAudit` policy allows, through the linked role, normalised into
//! [`SecurityFacts`]. Each service is read on its own: one refused or failing (the
//! permission set is off, the service is not offered in the region) becomes that
//! service's `Err(reason)`, which the rules report as "not evaluated", never a pass.

use std::collections::{BTreeMap, HashMap};

use arca_core::model::cloud::account::RoleRef;
use arca_core::model::cloud::security::{
    AccessKeyFacts, BACKUP_BUCKET_TAG, BucketFacts, DetectorFacts, EksClusterFacts, GlobalFacts, IamFacts,
    IamUserFacts, IngressRule, RdsInstanceFacts, RdsSnapshotFacts, Read, SecurityFacts, SecurityGroupFacts,
    SnapshotFacts, TrailFacts, VolumeFacts,
};
use arca_core::ports::cloud::CloudFailure;
use aws_config::SdkConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::cloud::{AwsCloudConnector, denied, time};
use crate::errors::classify;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Why a call could not be answered, for "not evaluated: <reason>".
fn reason<E>(err: SdkError<E, HttpResponse>, what: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match denied(&err) {
        Some(why) => format!("{what}: {why}"),
        None => classify(err, what).to_string(),
    }
}

/// The error code of a service error (`NoSuchBucketPolicy`), if it is one.
fn code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    err.as_service_error().and_then(ProvideErrorMetadata::code)
}

pub(crate) async fn security_facts(
    connector: &AwsCloudConnector,
    role: &RoleRef,
    region: &str,
    global: bool,
) -> Result<SecurityFacts, CloudFailure> {
    let session = connector.session(role).await?;
    let config = connector.config(&session, region).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let rds = aws_sdk_rds::Client::new(&config);
    let global = if global {
        Some(GlobalFacts {
            buckets: buckets(connector, &session, &config).await,
            iam: iam(&aws_sdk_iam::Client::new(&config)).await,
        })
    } else {
        None
    };
    Ok(SecurityFacts {
        account_id: session.account.clone(),
        region: region.to_string(),
        global,
        security_groups: security_groups(&ec2).await,
        volumes: volumes(&ec2).await,
        snapshots: snapshots(&ec2, &session.account).await,
        rds_instances: rds_instances(&rds).await,
        rds_snapshots: rds_snapshots(&rds).await,
        trails: trails(&aws_sdk_cloudtrail::Client::new(&config)).await,
        eks_clusters: eks_clusters(&aws_sdk_eks::Client::new(&config)).await,
        guardduty_detectors: detectors(&aws_sdk_guardduty::Client::new(&config)).await,
    })
}

// ---- S3 (global: buckets listed once, each read in its own region) ----------------------

async fn buckets(
    connector: &AwsCloudConnector,
    session: &crate::cloud::Session,
    home: &SdkConfig,
) -> Read<Vec<BucketFacts>> {
    let s3 = crate::config::s3_client(home);
    let listed = s3
        .list_buckets()
        .send()
        .await
        .map_err(|e| reason(e, "S3 ListBuckets"))?;
    let mut clients: HashMap<String, aws_sdk_s3::Client> = HashMap::new();
    let mut out = Vec::new();
    for b in listed.buckets() {
        let Some(name) = b.name() else { continue };
        let region = match b.bucket_region() {
            Some(r) => r.to_string(),
            None => {
                let location = s3
                    .get_bucket_location()
                    .bucket(name)
                    .send()
                    .await
                    .map_err(|e| reason(e, &format!("S3 GetBucketLocation {name}")))?;
                match location.location_constraint().map(|l| l.as_str()) {
                    None | Some("") => "us-east-1".to_string(),
                    Some("EU") => "eu-west-1".to_string(),
                    Some(r) => r.to_string(),
                }
            }
        };
        if !clients.contains_key(&region) {
            let config = connector.config(session, &region).await;
            clients.insert(region.clone(), crate::config::s3_client(&config));
        }
        let Some(client) = clients.get(&region) else { continue };
        out.push(bucket(client, name, &region).await?);
    }
    Ok(out)
}

async fn bucket(s3: &aws_sdk_s3::Client, name: &str, region: &str) -> Read<BucketFacts> {
    let what = |call: &str| format!("S3 {call} {name}");
    let acl = s3
        .get_bucket_acl()
        .bucket(name)
        .send()
        .await
        .map_err(|e| reason(e, &what("GetBucketAcl")))?;
    let acl_public = acl
        .grants()
        .iter()
        .filter_map(|g| g.grantee().and_then(|g| g.uri()))
        .any(|uri| uri == ALL_USERS || uri == AUTHENTICATED_USERS);
    let policy_public = match s3.get_bucket_policy_status().bucket(name).send().await {
        Ok(out) => out.policy_status().and_then(|s| s.is_public()).unwrap_or(false),
        Err(e) if code(&e) == Some("NoSuchBucketPolicy") => false,
        Err(e) => return Err(reason(e, &what("GetBucketPolicyStatus"))),
    };
    let block = match s3.get_public_access_block().bucket(name).send().await {
        Ok(out) => out.public_access_block_configuration().cloned(),
        Err(e) if code(&e) == Some("NoSuchPublicAccessBlockConfiguration") => None,
        Err(e) => return Err(reason(e, &what("GetPublicAccessBlock"))),
    };
    let block = block.unwrap_or_else(|| aws_sdk_s3::types::PublicAccessBlockConfiguration::builder().build());
    let default_encryption = match s3.get_bucket_encryption().bucket(name).send().await {
        Ok(out) => out
            .server_side_encryption_configuration()
            .is_some_and(|c| !c.rules().is_empty()),
        Err(e) if code(&e) == Some("ServerSideEncryptionConfigurationNotFoundError") => false,
        Err(e) => return Err(reason(e, &what("GetBucketEncryption"))),
    };
    let tags = match s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) => out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        Err(e) if code(&e) == Some("NoSuchTagSet") => BTreeMap::new(),
        Err(e) => return Err(reason(e, &what("GetBucketTagging"))),
    };
    // Only the backup-bucket rule reads versioning: asked of tagged buckets only.
    let versioning = if tags.contains_key(BACKUP_BUCKET_TAG) {
        s3.get_bucket_versioning()
            .bucket(name)
            .send()
            .await
            .map(|v| v.status().map(|s| s.as_str().to_string()))
            .map_err(|e| reason(e, &what("GetBucketVersioning")))
    } else {
        Ok(None)
    };
    Ok(BucketFacts {
        name: name.to_string(),
        region: region.to_string(),
        acl_public,
        policy_public,
        block_public_acls: block.block_public_acls().unwrap_or(false),
        ignore_public_acls: block.ignore_public_acls().unwrap_or(false),
        block_public_policy: block.block_public_policy().unwrap_or(false),
        restrict_public_buckets: block.restrict_public_buckets().unwrap_or(false),
        default_encryption,
        versioning,
        tags,
    })
}

// ---- IAM (global) ----------------------------------------------------------------------

async fn iam(iam: &aws_sdk_iam::Client) -> Read<IamFacts> {
    let summary = iam
        .get_account_summary()
        .send()
        .await
        .map_err(|e| reason(e, "IAM GetAccountSummary"))?;
    let root_access_keys_present = summary
        .summary_map()
        .and_then(|m| m.get(&aws_sdk_iam::types::SummaryKeyType::AccountAccessKeysPresent))
        .is_some_and(|n| *n > 0);
    let mut users = Vec::new();
    let mut pages = iam.list_users().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| reason(e, "IAM ListUsers"))?;
        for u in page.users() {
            let name = u.user_name();
            let console_access = match iam.get_login_profile().user_name(name).send().await {
                Ok(_) => true,
                Err(e) if code(&e) == Some("NoSuchEntity") => false,
                Err(e) => return Err(reason(e, &format!("IAM GetLoginProfile {name}"))),
            };
            let mfa = iam
                .list_mfa_devices()
                .user_name(name)
                .send()
                .await
                .map_err(|e| reason(e, &format!("IAM ListMFADevices {name}")))?;
            let keys = iam
                .list_access_keys()
                .user_name(name)
                .send()
                .await
                .map_err(|e| reason(e, &format!("IAM ListAccessKeys {name}")))?;
            users.push(IamUserFacts {
                arn: u.arn().to_string(),
                name: name.to_string(),
                console_access,
                mfa_devices: mfa.mfa_devices().len(),
                access_keys: keys
                    .access_key_metadata()
                    .iter()
                    .map(|k| AccessKeyFacts {
                        id: k.access_key_id().unwrap_or_default().to_string(),
                        active: k.status() == Some(&aws_sdk_iam::types::StatusType::Active),
                        created_at: time(k.create_date()),
                    })
                    .collect(),
            });
        }
    }
    Ok(IamFacts {
        users,
        root_access_keys_present,
    })
}

// ---- EC2 --------------------------------------------------------------------------------

async fn security_groups(ec2: &aws_sdk_ec2::Client) -> Read<Vec<SecurityGroupFacts>> {
    let mut out = Vec::new();
    let mut pages = ec2.describe_security_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| reason(e, "EC2 DescribeSecurityGroups"))?;
        for g in page.security_groups() {
            out.push(SecurityGroupFacts {
                id: g.group_id().unwrap_or_default().to_string(),
                name: g.group_name().unwrap_or_default().to_string(),
                ingress: g
                    .ip_permissions()
                    .iter()
                    .map(|p| IngressRule {
                        protocol: p.ip_protocol().unwrap_or("-1").to_string(),
                        from_port: p.from_port(),
                        to_port: p.to_port(),
                        ipv4_ranges: p
                            .ip_ranges()
                            .iter()
                            .filter_map(|r| r.cidr_ip().map(str::to_string))
                            .collect(),
                        ipv6_ranges: p
                            .ipv6_ranges()
                            .iter()
                            .filter_map(|r| r.cidr_ipv6().map(str::to_string))
                            .collect(),
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

async fn volumes(ec2: &aws_sdk_ec2::Client) -> Read<Vec<VolumeFacts>> {
    let mut out = Vec::new();
    let mut pages = ec2.describe_volumes().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| reason(e, "EC2 DescribeVolumes"))?;
        out.extend(page.volumes().iter().map(|v| VolumeFacts {
            id: v.volume_id().unwrap_or_default().to_string(),
            encrypted: v.encrypted().unwrap_or(false),
        }));
    }
    Ok(out)
}

/// The account's own snapshots, each with whether anyone may create volumes from it.
async fn snapshots(ec2: &aws_sdk_ec2::Client, account: &str) -> Read<Vec<SnapshotFacts>> {
    use aws_sdk_ec2::types::{Filter, PermissionGroup, SnapshotAttributeName};
    let mut out = Vec::new();
    // `self` and, the same on AWS, an `owner-id` filter (moto honours only the filter,
    // and would otherwise list its stock AMIs' snapshots as the account's).
    let mut describe = ec2.describe_snapshots().owner_ids("self");
    if !account.is_empty() {
        describe = describe.filters(Filter::builder().name("owner-id").values(account).build());
    }
    let mut pages = describe.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| reason(e, "EC2 DescribeSnapshots"))?;
        for s in page.snapshots() {
            let id = s.snapshot_id().unwrap_or_default().to_string();
            let public = ec2
                .describe_snapshot_attribute()
                .snapshot_id(&id)
                .attribute(SnapshotAttributeName::CreateVolumePermission)
                .send()
                .await
                .map(|a| {
                    a.create_volume_permissions()
                        .iter()
                        .any(|p| p.group() == Some(&PermissionGroup::All))
                })
                .map_err(|e| reason(e, "EC2 DescribeSnapshotAttribute"));
            out.push(SnapshotFacts {
                id,
                encrypted: s.encrypted().unwrap_or(false),
                public,
            });
        }
    }
    Ok(out)
}

// ---- RDS --------------------------------------------------------------------------------

async fn rds_instances(rds: &aws_sdk_rds::Client) -> Read<Vec<RdsInstanceFacts>> {
    let mut out = Vec::new();
    let mut pages = rds.describe_db_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| reason(e, "RDS DescribeDBInstances"))?;
        out.extend(page.db_instances().iter().map(|db| RdsInstanceFacts {
            arn: db.db_instance_arn().unwrap_or_default().to_string(),
            identifier: db.db_instance_identifier().unwrap_or_default().to_string(),
            publicly_accessible: db.publicly_accessible().unwrap_or(false),
            storage_encrypted: db.storage_encrypted().unwrap_or(false),
            backup_retention_days: db.backup_retention_period().unwrap_or(0),
            deletion_protection: db.deletion_protection().unwrap_or(false),
            cluster_member: db.db_cluster_identifier().is_some(),
        }));
    }
    Ok(out)
}

/// Manual snapshots (only those can be shared), each with its `restore` attribute.
async fn rds_snapshots(rds: &aws_sdk_rds::Client) -> Read<Vec<RdsSnapshotFacts>> {
    let mut out = Vec::new();
    let mut pages = rds
        .describe_db_snapshots()
        .snapshot_type("manual")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| reason(e, "RDS DescribeDBSnapshots"))?;
        for s in page.db_snapshots() {
            let identifier = s.db_snapshot_identifier().unwrap_or_default().to_string();
            let public = rds
                .describe_db_snapshot_attributes()
                .db_snapshot_identifier(&identifier)
                .send()
                .await
                .map(|a| {
                    a.db_snapshot_attributes_result()
                        .map(|r| r.db_snapshot_attributes())
                        .unwrap_or_default()
                        .iter()
                        .filter(|a| a.attribute_name() == Some("restore"))
                        .any(|a| a.attribute_values().iter().any(|v| v == "all"))
                })
                .map_err(|e| reason(e, "RDS DescribeDBSnapshotAttributes"));
            out.push(RdsSnapshotFacts {
                arn: s.db_snapshot_arn().unwrap_or_default().to_string(),
                identifier,
                public,
            });
        }
    }
    Ok(out)
}

// ---- CloudTrail, EKS, GuardDuty ---------------------------------------------------------

/// The trails that apply to the region (its own, and multi-region ones homed elsewhere).
async fn trails(ct: &aws_sdk_cloudtrail::Client) -> Read<Vec<TrailFacts>> {
    let described = ct
        .describe_trails()
        .send()
        .await
        .map_err(|e| reason(e, "CloudTrail DescribeTrails"))?;
    let mut out = Vec::new();
    for t in described.trail_list() {
        let arn = t.trail_arn().unwrap_or_default().to_string();
        let logging = ct
            .get_trail_status()
            .name(&arn)
            .send()
            .await
            .map(|s| s.is_logging().unwrap_or(false))
            .map_err(|e| reason(e, "CloudTrail GetTrailStatus"));
        out.push(TrailFacts {
            name: t.name().unwrap_or_default().to_string(),
            home_region: t.home_region().unwrap_or_default().to_string(),
            multi_region: t.is_multi_region_trail().unwrap_or(false),
            logging,
            arn,
        });
    }
    Ok(out)
}

async fn eks_clusters(eks: &aws_sdk_eks::Client) -> Read<Vec<EksClusterFacts>> {
    let mut names = Vec::new();
    let mut pages = eks.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        names.extend(
            page.map_err(|e| reason(e, "EKS ListClusters"))?
                .clusters()
                .iter()
                .cloned(),
        );
    }
    let mut out = Vec::new();
    for name in names {
        let described = eks
            .describe_cluster()
            .name(&name)
            .send()
            .await
            .map_err(|e| reason(e, &format!("EKS DescribeCluster {name}")))?;
        let Some(c) = described.cluster() else { continue };
        let vpc = c.resources_vpc_config();
        out.push(EksClusterFacts {
            arn: c.arn().unwrap_or_default().to_string(),
            endpoint_public_access: vpc.is_some_and(|v| v.endpoint_public_access()),
            public_access_cidrs: vpc.map(|v| v.public_access_cidrs().to_vec()).unwrap_or_default(),
            // EKS encrypts all API data at rest by default now (and deprecated the
            // config's `resources`): what is left to check is envelope encryption of
            // secrets with a KMS key of the account's.
            secrets_encrypted: c
                .encryption_config()
                .iter()
                .any(|e| e.provider().and_then(|p| p.key_arn()).is_some_and(|k| !k.is_empty())),
            name,
        });
    }
    Ok(out)
}

async fn detectors(gd: &aws_sdk_guardduty::Client) -> Read<Vec<DetectorFacts>> {
    let mut ids = Vec::new();
    let mut pages = gd.list_detectors().into_paginator().send();
    while let Some(page) = pages.next().await {
        ids.extend(
            page.map_err(|e| reason(e, "GuardDuty ListDetectors"))?
                .detector_ids()
                .iter()
                .cloned(),
        );
    }
    let mut out = Vec::new();
    for id in ids {
        let d = gd
            .get_detector()
            .detector_id(&id)
            .send()
            .await
            .map_err(|e| reason(e, "GuardDuty GetDetector"))?;
        out.push(DetectorFacts {
            enabled: d.status() == Some(&aws_sdk_guardduty::types::DetectorStatus::Enabled),
            id,
        });
    }
    Ok(out)
}
