//! [`CloudConnector`] on AWS: AssumeRole into each linked account with its ExternalId,
//! then RDS, EKS and EC2 calls with those credentials.
//!
//! Sessions are cached per role and refreshed [`REFRESH_BEFORE`] ahead of expiry, so a
//! run over many regions assumes each role once. `AssumeRole` failing with an access
//! error is the role being rejected (the account turns `DISCONNECTED`); a service call
//! refused inside a working session is a permission set the user switched off, and that
//! part of the inventory is left empty instead.

use std::collections::HashMap;
use std::time::Duration;

use std::collections::BTreeMap;

use arca_core::model::cloud::AwsResource;
use arca_core::model::cloud::account::RoleRef;
use arca_core::model::cloud::inventory::{
    EbsVolume, EksCluster, EksLaunchTemplate, EksNodegroup, EksTaint, RdsCluster, RdsInstance, RdsSnapshot,
};
use arca_core::ports::cloud::{CloudConnector, CloudFailure, NewEbsVolume};
use arca_core::{Error, Result};
use async_trait::async_trait;
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::errors::classify;

/// Sessions are renewed this long before they expire, so no call runs on dying ones.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// One hour: the longest a role-chained session may last.
const SESSION_SECONDS: i32 = 3600;

/// Error codes of a call that was refused (not failed): the role or a permission is missing.
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "ExpiredToken",
];

/// Why a linked account would refuse us, from an SDK error.
pub(crate) fn denied<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    let SdkError::ServiceError(ctx) = err else {
        return None;
    };
    let code = ctx.err().code().unwrap_or_default();
    (DENIED_CODES.contains(&code) || ctx.raw().status().as_u16() == 403)
        .then(|| format!("{code}: {}", ctx.err().message().unwrap_or_default()))
}

/// Wall-clock now (chrono's `clock` feature is not enabled in the workspace).
fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

/// An AWS timestamp as chrono's.
pub(crate) fn time(t: Option<&aws_sdk_sts::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn strings<T>(items: &[T], f: impl Fn(&T) -> Option<&str>) -> Vec<String> {
    items.iter().filter_map(|i| f(i).map(str::to_string)).collect()
}

#[derive(Clone)]
pub(crate) struct Session {
    credentials: Credentials,
    pub(crate) account: String,
    expires_at: DateTime<Utc>,
}

/// The AWS adapter of linked accounts.
pub struct AwsCloudConnector {
    /// Arca's own configuration: its credentials assume the linked roles. Loaded on first
    /// use when built with [`AwsCloudConnector::from_environment`], so a server that never
    /// links an account never looks for AWS credentials.
    base: tokio::sync::OnceCell<SdkConfig>,
    sessions: Mutex<HashMap<RoleRef, Session>>,
}

impl AwsCloudConnector {
    pub fn new(base: SdkConfig) -> Self {
        AwsCloudConnector {
            base: tokio::sync::OnceCell::new_with(Some(base)),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The standard AWS configuration (`crate::config::load`), loaded when first needed.
    pub fn from_environment() -> Self {
        AwsCloudConnector {
            base: tokio::sync::OnceCell::new(),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    async fn base(&self) -> &SdkConfig {
        self.base.get_or_init(crate::config::load).await
    }

    /// A valid session of the role: cached, or assumed now.
    pub(crate) async fn session(&self, role: &RoleRef) -> std::result::Result<Session, CloudFailure> {
        let now = now();
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(role)
            && s.expires_at - now > chrono::Duration::from_std(REFRESH_BEFORE).unwrap_or_default()
        {
            return Ok(s.clone());
        }
        let session = self.assume(role).await?;
        sessions.insert(role.clone(), session.clone());
        Ok(session)
    }

    async fn assume(&self, role: &RoleRef) -> std::result::Result<Session, CloudFailure> {
        let sts = aws_sdk_sts::Client::new(self.base().await);
        let out = sts
            .assume_role()
            .role_arn(&role.role_arn)
            .external_id(&role.external_id)
            .role_session_name("arca")
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(|e| match denied(&e) {
                Some(why) => CloudFailure::RoleRejected(why),
                None => CloudFailure::Other(classify(e, "linked account role")),
            })?;
        let c = out
            .credentials()
            .ok_or_else(|| Error::permanent("AssumeRole answered without credentials"))?;
        let expires_at = time(Some(c.expiration())).unwrap_or_else(now);
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            Some(expires_at.into()),
            "arca-linked-account",
        );
        // The assumed role's ARN names its account: arn:aws:sts::<account>:assumed-role/...
        let account = out
            .assumed_role_user()
            .and_then(|u| u.arn().split(':').nth(4))
            .map(str::to_string)
            .unwrap_or_default();
        Ok(Session {
            credentials,
            account,
            expires_at,
        })
    }

    /// SDK configuration for one region of a linked account.
    pub(crate) async fn config(&self, session: &Session, region: &str) -> SdkConfig {
        self.base()
            .await
            .to_builder()
            .region(Region::new(region.to_string()))
            .credentials_provider(SharedCredentialsProvider::new(session.credentials.clone()))
            .build()
    }

    /// The linked account's clients in `region`.
    pub async fn clients(&self, role: &RoleRef, region: &str) -> std::result::Result<AccountClients, CloudFailure> {
        let session = self.session(role).await?;
        let config = self.config(&session, region).await;
        Ok(AccountClients {
            rds: aws_sdk_rds::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            eks: aws_sdk_eks::Client::new(&config),
        })
    }
}

/// Service clients in one region of a linked account, on its role's session.
#[derive(Clone, Debug)]
pub struct AccountClients {
    pub rds: aws_sdk_rds::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub eks: aws_sdk_eks::Client,
}

/// A discovery call's result: refused calls (a permission set switched off) give nothing.
fn allowed<T, E>(result: std::result::Result<T, SdkError<E, HttpResponse>>, what: &str) -> Result<Option<T>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => match denied(&e) {
            Some(why) => {
                tracing::info!(what, %why, "not permitted in this account; skipped");
                Ok(None)
            }
            None => Err(classify(e, what)),
        },
    }
}

#[async_trait]
impl CloudConnector for AwsCloudConnector {
    async fn verify(&self, role: &RoleRef) -> std::result::Result<String, CloudFailure> {
        // A fresh AssumeRole, never the cache: verifying is asking AWS again.
        let session = self.assume(role).await?;
        let out = aws_sdk_sts::Client::new(&self.config(&session, "us-east-1").await)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| CloudFailure::Other(classify(e, "caller identity")))?;
        let account = out.account().map(str::to_string).unwrap_or(session.account.clone());
        self.sessions.lock().await.insert(role.clone(), session);
        Ok(account)
    }

    async fn discover(&self, role: &RoleRef, region: &str) -> std::result::Result<Vec<AwsResource>, CloudFailure> {
        let c = self.clients(role, region).await?;
        let mut found = Vec::new();
        found.extend(rds_instances(&c.rds).await?);
        found.extend(rds_clusters(&c.rds).await?);
        found.extend(rds_snapshots(&c.rds).await?);
        found.extend(eks_clusters(&c.eks).await?);
        found.extend(ebs_volumes(&c.ec2).await?);
        Ok(found)
    }

    async fn security_facts(
        &self,
        role: &RoleRef,
        region: &str,
        global: bool,
    ) -> std::result::Result<arca_core::model::cloud::security::SecurityFacts, CloudFailure> {
        #[cfg(feature = "security-scan")]
        {
            crate::security::security_facts(self, role, region, global).await
        }
        // A binary built without the feature (the agent, and the API function, whose
        // on-demand inventory leaves the scan to the inventory function's 12-hourly run):
        // every rule is "not evaluated", saying why, and no finding changes.
        #[cfg(not(feature = "security-scan"))]
        {
            let session = self.session(role).await?;
            Ok(arca_core::model::cloud::security::SecurityFacts::unreadable(
                &session.account,
                region,
                global,
                "scanned by the inventory function's 12-hourly run, not by an on-demand inventory on AWS \
                 (this binary is built without arca-aws's security-scan feature)",
            ))
        }
    }

    async fn describe_volumes(
        &self,
        role: &RoleRef,
        region: &str,
        volume_ids: &[String],
    ) -> std::result::Result<Vec<EbsVolume>, CloudFailure> {
        if volume_ids.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.clients(role, region).await?;
        // A filter, not VolumeIds: one unknown id would fail the whole call.
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name("volume-id")
            .set_values(Some(volume_ids.to_vec()))
            .build();
        let mut out = Vec::new();
        let mut pages = c.ec2.describe_volumes().filters(filter).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| failure(e, "EBS volumes"))?;
            out.extend(page.volumes().iter().map(ebs_volume));
        }
        Ok(out)
    }

    async fn snapshot_volume(
        &self,
        role: &RoleRef,
        region: &str,
        volume_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> std::result::Result<String, CloudFailure> {
        use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
        let c = self.clients(role, region).await?;
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Snapshot)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build();
        let out = c
            .ec2
            .create_snapshot()
            .volume_id(volume_id)
            .description("Arca backup")
            .tag_specifications(tags)
            .send()
            .await
            .map_err(|e| failure(e, "EBS volume"))?;
        out.snapshot_id()
            .map(str::to_string)
            .ok_or_else(|| CloudFailure::Other(Error::permanent("CreateSnapshot answered without an id")))
    }

    async fn create_volume_from_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        volume: &NewEbsVolume,
    ) -> std::result::Result<String, CloudFailure> {
        use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification, VolumeType};
        let c = self.clients(role, region).await?;
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Volume)
            .set_tags(Some(
                volume
                    .tags
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build();
        let out = c
            .ec2
            .create_volume()
            .snapshot_id(&volume.snapshot_id)
            .availability_zone(&volume.availability_zone)
            .set_volume_type(volume.volume_type.as_deref().map(VolumeType::from))
            .set_iops(volume.iops)
            .set_throughput(volume.throughput)
            .tag_specifications(tags)
            .client_token(&volume.client_token)
            .send()
            .await
            .map_err(|e| failure(e, &format!("EBS volume from snapshot {}", volume.snapshot_id)))?;
        out.volume_id()
            .map(str::to_string)
            .ok_or_else(|| CloudFailure::Other(Error::permanent("CreateVolume answered without an id")))
    }

    async fn delete_volume_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        snapshot_id: &str,
    ) -> std::result::Result<(), CloudFailure> {
        let c = self.clients(role, region).await?;
        match c.ec2.delete_snapshot().snapshot_id(snapshot_id).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("InvalidSnapshot.NotFound") => {
                Ok(())
            }
            Err(e) => Err(failure(e, "EBS snapshot")),
        }
    }

    async fn create_eks_cluster(
        &self,
        role: &RoleRef,
        region: &str,
        name: &str,
        like: &EksCluster,
    ) -> std::result::Result<(), CloudFailure> {
        use aws_sdk_eks::types::{LogSetup, LogType, Logging, VpcConfigRequest};
        let c = self.clients(role, region).await?;
        let role_arn = like
            .role_arn
            .clone()
            .ok_or_else(|| CloudFailure::Other(Error::invalid("eks.roleArn", "the saved cluster has no role")))?;
        let vpc = VpcConfigRequest::builder()
            .set_subnet_ids(Some(like.subnet_ids.clone()))
            .set_security_group_ids(Some(like.security_group_ids.clone()))
            .endpoint_public_access(like.endpoint_public_access)
            .endpoint_private_access(like.endpoint_private_access)
            .set_public_access_cidrs((!like.public_access_cidrs.is_empty()).then(|| like.public_access_cidrs.clone()))
            .build();
        let logging = Logging::builder()
            .cluster_logging(
                LogSetup::builder()
                    .enabled(true)
                    .set_types(Some(
                        like.enabled_log_types
                            .iter()
                            .map(|t| LogType::from(t.as_str()))
                            .collect(),
                    ))
                    .build(),
            )
            .build();
        let mut create = c
            .eks
            .create_cluster()
            .name(name)
            .role_arn(role_arn)
            .resources_vpc_config(vpc)
            .set_version(like.version.clone())
            .set_tags(Some(like.tags.clone().into_iter().collect()));
        if !like.enabled_log_types.is_empty() {
            create = create.logging(logging);
        }
        create.send().await.map_err(|e| failure(e, "EKS cluster"))?;
        Ok(())
    }

    async fn eks_cluster_status(
        &self,
        role: &RoleRef,
        region: &str,
        name: &str,
    ) -> std::result::Result<Option<String>, CloudFailure> {
        let c = self.clients(role, region).await?;
        match c.eks.describe_cluster().name(name).send().await {
            Ok(out) => Ok(out.cluster().and_then(|c| c.status()).map(|s| s.as_str().to_string())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(failure(e, "EKS cluster")),
        }
    }

    async fn create_eks_nodegroup(
        &self,
        role: &RoleRef,
        region: &str,
        cluster: &str,
        like: &EksNodegroup,
    ) -> std::result::Result<(), CloudFailure> {
        use aws_sdk_eks::types::{
            AmiTypes, CapacityTypes, LaunchTemplateSpecification, NodegroupScalingConfig, Taint, TaintEffect,
        };
        let c = self.clients(role, region).await?;
        let node_role = like.node_role.clone().ok_or_else(|| {
            CloudFailure::Other(Error::invalid("nodegroup.nodeRole", "the saved node group has no role"))
        })?;
        let create = c
            .eks
            .create_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(&like.name)
            .node_role(node_role)
            .set_subnets(Some(like.subnets.clone()))
            // A launch template fixes the instance types and disk; EKS refuses both.
            .set_instance_types(
                (like.launch_template.is_none() && !like.instance_types.is_empty())
                    .then(|| like.instance_types.clone()),
            )
            .set_disk_size(if like.launch_template.is_none() {
                like.disk_size
            } else {
                None
            })
            .set_ami_type(like.ami_type.as_deref().map(AmiTypes::from))
            .set_capacity_type(like.capacity_type.as_deref().map(CapacityTypes::from))
            .scaling_config(
                NodegroupScalingConfig::builder()
                    .set_min_size(like.min_size)
                    .set_max_size(like.max_size)
                    .set_desired_size(like.desired_size)
                    .build(),
            )
            .set_labels(Some(like.labels.clone().into_iter().collect()))
            .set_taints(Some(
                like.taints
                    .iter()
                    .map(|t| {
                        Taint::builder()
                            .key(&t.key)
                            .set_value(t.value.clone())
                            .effect(TaintEffect::from(t.effect.as_str()))
                            .build()
                    })
                    .collect(),
            ))
            .set_launch_template(like.launch_template.as_ref().map(|lt| {
                LaunchTemplateSpecification::builder()
                    .set_id(lt.id.clone())
                    .set_name(if lt.id.is_some() { None } else { lt.name.clone() })
                    .set_version(lt.version.clone())
                    .build()
            }))
            .set_tags(Some(like.tags.clone().into_iter().collect()));
        create.send().await.map_err(|e| failure(e, "EKS node group"))?;
        Ok(())
    }

    async fn eks_cluster_access(
        &self,
        role: &RoleRef,
        region: &str,
        name: &str,
    ) -> std::result::Result<Option<arca_core::model::cloud::ebs::EksAccess>, CloudFailure> {
        let c = self.clients(role, region).await?;
        let out = match c.eks.describe_cluster().name(name).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(failure(e, "EKS cluster")),
        };
        let Some(cluster) = out.cluster() else {
            return Ok(None);
        };
        let endpoint = cluster.endpoint().filter(|e| !e.is_empty());
        let ca = cluster
            .certificate_authority()
            .and_then(|c| c.data())
            .filter(|d| !d.is_empty());
        Ok(match (endpoint, ca) {
            (Some(endpoint), Some(ca)) => Some(arca_core::model::cloud::ebs::EksAccess {
                endpoint: endpoint.to_string(),
                certificate_authority_data: ca.to_string(),
            }),
            _ => None,
        })
    }
}

/// A refused call is the role's problem (the account turns DISCONNECTED only on
/// AssumeRole, so inside a session it is reported as forbidden); anything else is classified.
fn failure<E>(err: SdkError<E, HttpResponse>, what: &str) -> CloudFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match denied(&err) {
        Some(why) => CloudFailure::Other(Error::Forbidden {
            message: format!("{what}: {why} (is the permission set enabled in the role stack?)"),
        }),
        None => CloudFailure::Other(classify(err, what)),
    }
}

async fn rds_instances(rds: &aws_sdk_rds::Client) -> Result<Vec<AwsResource>> {
    let mut out = Vec::new();
    let mut pages = rds.describe_db_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let Some(page) = allowed(page, "RDS instances")? else {
            return Ok(out);
        };
        for db in page.db_instances() {
            let identifier = db.db_instance_identifier().unwrap_or_default().to_string();
            let earliest = crate::rds::earliest_restorable(rds, &identifier).await;
            out.push(AwsResource::RdsInstance(RdsInstance {
                arn: db.db_instance_arn().unwrap_or_default().to_string(),
                engine: db.engine().unwrap_or_default().to_string(),
                engine_version: db.engine_version().map(str::to_string),
                instance_class: db.db_instance_class().map(str::to_string),
                status: db.db_instance_status().map(str::to_string),
                storage_encrypted: db.storage_encrypted().unwrap_or(false),
                kms_key_id: db.kms_key_id().map(str::to_string),
                multi_az: db.multi_az().unwrap_or(false),
                cluster_identifier: db.db_cluster_identifier().map(str::to_string),
                subnet_group: db
                    .db_subnet_group()
                    .and_then(|g| g.db_subnet_group_name())
                    .map(str::to_string),
                security_group_ids: strings(db.vpc_security_groups(), |g| g.vpc_security_group_id()),
                parameter_groups: strings(db.db_parameter_groups(), |g| g.db_parameter_group_name()),
                option_groups: strings(db.option_group_memberships(), |g| g.option_group_name()),
                backup_retention_days: db.backup_retention_period(),
                earliest_restorable_time: earliest,
                latest_restorable_time: time(db.latest_restorable_time()),
                tags: crate::rds::tag_map(db.tag_list()),
                identifier,
            }));
        }
    }
    Ok(out)
}

async fn rds_clusters(rds: &aws_sdk_rds::Client) -> Result<Vec<AwsResource>> {
    let mut out = Vec::new();
    let mut pages = rds.describe_db_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let Some(page) = allowed(page, "RDS clusters")? else {
            return Ok(out);
        };
        for c in page.db_clusters() {
            out.push(AwsResource::RdsCluster(RdsCluster {
                identifier: c.db_cluster_identifier().unwrap_or_default().to_string(),
                arn: c.db_cluster_arn().unwrap_or_default().to_string(),
                engine: c.engine().unwrap_or_default().to_string(),
                engine_version: c.engine_version().map(str::to_string),
                status: c.status().map(str::to_string),
                storage_encrypted: c.storage_encrypted().unwrap_or(false),
                kms_key_id: c.kms_key_id().map(str::to_string),
                members: strings(c.db_cluster_members(), |m| m.db_instance_identifier()),
                subnet_group: c.db_subnet_group().map(str::to_string),
                security_group_ids: strings(c.vpc_security_groups(), |g| g.vpc_security_group_id()),
                parameter_group: c.db_cluster_parameter_group().map(str::to_string),
                backup_retention_days: c.backup_retention_period(),
                earliest_restorable_time: time(c.earliest_restorable_time()),
                latest_restorable_time: time(c.latest_restorable_time()),
                tags: crate::rds::tag_map(c.tag_list()),
            }));
        }
    }
    Ok(out)
}

async fn rds_snapshots(rds: &aws_sdk_rds::Client) -> Result<Vec<AwsResource>> {
    let mut out = Vec::new();
    let mut pages = rds.describe_db_snapshots().into_paginator().send();
    while let Some(page) = pages.next().await {
        let Some(page) = allowed(page, "RDS snapshots")? else {
            break;
        };
        for s in page.db_snapshots() {
            out.push(AwsResource::RdsSnapshot(RdsSnapshot {
                identifier: s.db_snapshot_identifier().unwrap_or_default().to_string(),
                arn: s.db_snapshot_arn().unwrap_or_default().to_string(),
                source_identifier: s.db_instance_identifier().unwrap_or_default().to_string(),
                cluster: false,
                snapshot_type: s.snapshot_type().map(str::to_string),
                status: s.status().map(str::to_string),
                engine: s.engine().map(str::to_string),
                created_at: time(s.snapshot_create_time()),
                encrypted: s.encrypted().unwrap_or(false),
                kms_key_id: s.kms_key_id().map(str::to_string),
                tags: crate::rds::tag_map(s.tag_list()),
            }));
        }
    }
    let mut pages = rds.describe_db_cluster_snapshots().into_paginator().send();
    while let Some(page) = pages.next().await {
        let Some(page) = allowed(page, "RDS cluster snapshots")? else {
            break;
        };
        for s in page.db_cluster_snapshots() {
            out.push(AwsResource::RdsSnapshot(RdsSnapshot {
                identifier: s.db_cluster_snapshot_identifier().unwrap_or_default().to_string(),
                arn: s.db_cluster_snapshot_arn().unwrap_or_default().to_string(),
                source_identifier: s.db_cluster_identifier().unwrap_or_default().to_string(),
                cluster: true,
                snapshot_type: s.snapshot_type().map(str::to_string),
                status: s.status().map(str::to_string),
                engine: s.engine().map(str::to_string),
                created_at: time(s.snapshot_create_time()),
                encrypted: s.storage_encrypted().unwrap_or(false),
                kms_key_id: s.kms_key_id().map(str::to_string),
                tags: crate::rds::tag_map(s.tag_list()),
            }));
        }
    }
    Ok(out)
}

fn map_tags(tags: Option<&HashMap<String, String>>) -> std::collections::BTreeMap<String, String> {
    tags.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

async fn eks_clusters(eks: &aws_sdk_eks::Client) -> Result<Vec<AwsResource>> {
    let mut names = Vec::new();
    let mut pages = eks.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let Some(page) = allowed(page, "EKS clusters")? else {
            return Ok(Vec::new());
        };
        names.extend(page.clusters().iter().cloned());
    }
    let mut out = Vec::new();
    for name in names {
        let Some(described) = allowed(eks.describe_cluster().name(&name).send().await, "EKS cluster")? else {
            continue;
        };
        let Some(c) = described.cluster() else { continue };
        let vpc = c.resources_vpc_config();
        let mut nodegroups = Vec::new();
        let mut ng_pages = eks.list_nodegroups().cluster_name(&name).into_paginator().send();
        while let Some(page) = ng_pages.next().await {
            let Some(page) = allowed(page, "EKS node groups")? else {
                break;
            };
            for ng_name in page.nodegroups() {
                let Some(d) = allowed(
                    eks.describe_nodegroup()
                        .cluster_name(&name)
                        .nodegroup_name(ng_name)
                        .send()
                        .await,
                    "EKS node group",
                )?
                else {
                    continue;
                };
                let Some(ng) = d.nodegroup() else { continue };
                let scaling = ng.scaling_config();
                nodegroups.push(EksNodegroup {
                    name: ng_name.clone(),
                    node_role: ng.node_role().map(str::to_string),
                    subnets: ng.subnets().to_vec(),
                    instance_types: ng.instance_types().to_vec(),
                    ami_type: ng.ami_type().map(|t| t.as_str().to_string()),
                    capacity_type: ng.capacity_type().map(|t| t.as_str().to_string()),
                    disk_size: ng.disk_size(),
                    min_size: scaling.and_then(|s| s.min_size()),
                    max_size: scaling.and_then(|s| s.max_size()),
                    desired_size: scaling.and_then(|s| s.desired_size()),
                    labels: map_tags(ng.labels()),
                    taints: ng
                        .taints()
                        .iter()
                        .map(|t| EksTaint {
                            key: t.key().unwrap_or_default().to_string(),
                            value: t.value().map(str::to_string),
                            effect: t.effect().map(|e| e.as_str().to_string()).unwrap_or_default(),
                        })
                        .collect(),
                    launch_template: ng.launch_template().map(|lt| EksLaunchTemplate {
                        id: lt.id().map(str::to_string),
                        name: lt.name().map(str::to_string),
                        version: lt.version().map(str::to_string),
                    }),
                    release_version: ng.release_version().map(str::to_string),
                    version: ng.version().map(str::to_string),
                    tags: map_tags(ng.tags()),
                });
            }
        }
        out.push(AwsResource::EksCluster(EksCluster {
            name: name.clone(),
            arn: c.arn().unwrap_or_default().to_string(),
            version: c.version().map(str::to_string),
            status: c.status().map(|s| s.as_str().to_string()),
            role_arn: c.role_arn().map(str::to_string),
            subnet_ids: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
            security_group_ids: vpc.map(|v| v.security_group_ids().to_vec()).unwrap_or_default(),
            endpoint_public_access: vpc.is_some_and(|v| v.endpoint_public_access()),
            endpoint_private_access: vpc.is_some_and(|v| v.endpoint_private_access()),
            public_access_cidrs: vpc.map(|v| v.public_access_cidrs().to_vec()).unwrap_or_default(),
            service_ipv4_cidr: c
                .kubernetes_network_config()
                .and_then(|n| n.service_ipv4_cidr())
                .map(str::to_string),
            enabled_log_types: c
                .logging()
                .map(|l| {
                    l.cluster_logging()
                        .iter()
                        .filter(|s| s.enabled().unwrap_or(false))
                        .flat_map(|s| s.types().iter().map(|t| t.as_str().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            tags: map_tags(c.tags()),
            nodegroups,
        }));
    }
    Ok(out)
}

async fn ebs_volumes(ec2: &aws_sdk_ec2::Client) -> Result<Vec<AwsResource>> {
    let mut out = Vec::new();
    let mut pages = ec2.describe_volumes().into_paginator().send();
    while let Some(page) = pages.next().await {
        let Some(page) = allowed(page, "EBS volumes")? else {
            return Ok(out);
        };
        out.extend(page.volumes().iter().map(|v| AwsResource::EbsVolume(ebs_volume(v))));
    }
    Ok(out)
}

fn ebs_volume(v: &aws_sdk_ec2::types::Volume) -> EbsVolume {
    EbsVolume {
        volume_id: v.volume_id().unwrap_or_default().to_string(),
        size_gib: v.size(),
        volume_type: v.volume_type().map(|t| t.as_str().to_string()),
        iops: v.iops(),
        throughput: v.throughput(),
        availability_zone: v.availability_zone().map(str::to_string),
        state: v.state().map(|s| s.as_str().to_string()),
        encrypted: v.encrypted().unwrap_or(false),
        kms_key_id: v.kms_key_id().map(str::to_string),
        attached_instance_ids: strings(v.attachments(), |a| a.instance_id()),
        tags: v
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect(),
    }
}
