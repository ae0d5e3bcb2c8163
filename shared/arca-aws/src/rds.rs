//! [`RdsOperations`] on AWS, through [`AwsCloudConnector::clients`] (the linked account's
//! role, cached sessions), and [`RdsWorkQueue`] on SQS (`DelaySeconds`).
//!
//! Instances and clusters are told apart by [`RdsDatabaseRef::cluster`]: clusters (Aurora,
//! Multi-AZ DB clusters) take cluster snapshots, cluster copies and cluster restores. A
//! cross-region copy is made by the destination region's client with the source ARN (the
//! Rust SDK has no `SourceRegion`). A cluster restore creates the cluster and, when an
//! instance class is given, its writer instance `<identifier>-1`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arca_core::model::cloud::account::RoleRef;
use arca_core::model::rds::{RdsDatabaseRef, RdsSnapshotRef, RdsTagSelector};
use arca_core::ports::rds::{
    AwsWorkMessage, RdsDatabaseInfo, RdsOperationState, RdsOperations, RdsRestoreRequest, RdsSnapshotInfo, RdsWorkQueue,
};
use arca_core::{Error, Result};
use async_trait::async_trait;
use aws_sdk_rds::types::Tag;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};

use crate::AwsCloudConnector;
use crate::errors::classify;

/// RDS in linked accounts.
pub struct AwsRdsOperations {
    connector: Arc<AwsCloudConnector>,
}

impl AwsRdsOperations {
    pub fn new(connector: Arc<AwsCloudConnector>) -> Self {
        AwsRdsOperations { connector }
    }

    async fn rds(&self, role: &RoleRef, region: &str) -> Result<aws_sdk_rds::Client> {
        Ok(self.connector.clients(role, region).await.map_err(Error::from)?.rds)
    }
}

/// An SDK error as the domain's: refused → `Forbidden`, `*NotFound*` → `NotFound`, AWS
/// rejecting the request for the resource's state → `Conflict`.
fn rds_error<E>(err: SdkError<E, HttpResponse>, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(ctx) = &err {
        let code = ctx.err().code().unwrap_or_default().to_string();
        let message = ctx.err().message().unwrap_or_default().to_string();
        if code.contains("NotFound") {
            return Error::not_found(format!("{what}: {message}"));
        }
        if code == "AccessDenied" || code == "AccessDeniedException" || ctx.raw().status().as_u16() == 403 {
            return Error::Forbidden {
                message: format!("{what}: {code}: {message} (is the RDS permission set enabled in the role stack?)"),
            };
        }
        if code.starts_with("Invalid") && code.ends_with("State")
            || code.ends_with("AlreadyExists")
            || code.ends_with("AlreadyExistsFault")
            || code.ends_with("QuotaExceeded")
        {
            return Error::conflict(format!("{what}: {code}: {message}"));
        }
    }
    classify(err, what)
}

fn tags(map: &BTreeMap<String, String>) -> Vec<Tag> {
    map.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(crate) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect()
}

fn time(t: Option<&aws_sdk_rds::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn aws_time(t: DateTime<Utc>) -> aws_sdk_rds::primitives::DateTime {
    aws_sdk_rds::primitives::DateTime::from_secs(t.timestamp())
}

/// An instance or a cluster snapshot as the port's (the SDK's two types name some fields
/// differently: the identifiers, the ARN, the source, encryption).
macro_rules! snapshot_info {
    ($s:expr, $region:expr, cluster: $cluster:expr, $identifier:ident, $arn:ident, $source:ident, $encrypted:ident) => {{
        let s = $s;
        RdsSnapshotInfo {
            snapshot: RdsSnapshotRef {
                identifier: s.$identifier().unwrap_or_default().to_string(),
                arn: s.$arn().unwrap_or_default().to_string(),
                region: $region.to_string(),
                cluster: $cluster,
            },
            state: RdsOperationState::from_status(s.status().unwrap_or("creating")),
            snapshot_type: s.snapshot_type().map(str::to_string),
            engine: s.engine().map(str::to_string),
            encrypted: s.$encrypted().unwrap_or(false),
            created_at: time(s.snapshot_create_time()),
            source_identifier: s.$source().unwrap_or_default().to_string(),
            tags: tag_map(s.tag_list()),
        }
    }};
}

fn instance_snapshot(s: &aws_sdk_rds::types::DbSnapshot, region: &str) -> RdsSnapshotInfo {
    snapshot_info!(s, region, cluster: false, db_snapshot_identifier, db_snapshot_arn, db_instance_identifier, encrypted)
}

fn cluster_snapshot(s: &aws_sdk_rds::types::DbClusterSnapshot, region: &str) -> RdsSnapshotInfo {
    snapshot_info!(
        s,
        region,
        cluster: true,
        db_cluster_snapshot_identifier,
        db_cluster_snapshot_arn,
        db_cluster_identifier,
        storage_encrypted
    )
}

/// The start of an instance's restorable window, which lives with its automated backups
/// (`None` where none are listed).
pub(crate) async fn earliest_restorable(rds: &aws_sdk_rds::Client, identifier: &str) -> Option<DateTime<Utc>> {
    match rds
        .describe_db_instance_automated_backups()
        .db_instance_identifier(identifier)
        .send()
        .await
    {
        Ok(b) => b
            .db_instance_automated_backups()
            .iter()
            .filter_map(|b| time(b.restore_window()?.earliest_time()))
            .min(),
        Err(e) => {
            tracing::debug!(error = %aws_sdk_s3::error::DisplayErrorContext(&e), "no automated backups listed");
            None
        }
    }
}

/// Sends a request that answers with one snapshot (`$field`: an instance or a cluster
/// snapshot) and converts it with `$convert` in `$region`.
macro_rules! sent_snapshot {
    ($request:expr, $what:literal, $field:ident, $missing:literal, $convert:ident($region:expr)) => {{
        let out = $request.send().await.map_err(|e| rds_error(e, $what))?;
        let s = out.$field().ok_or_else(|| Error::permanent($missing))?;
        $convert(s, $region)
    }};
}

/// A describe or delete of a snapshot that is already gone: nothing (`None`, `()`).
fn unless_gone<T: Default>(result: Result<T>) -> Result<T> {
    match result {
        Err(Error::NotFound { .. }) => Ok(T::default()),
        other => other,
    }
}

/// Deletes an instance with no final snapshot and without its automated backups.
async fn delete_instance(rds: &aws_sdk_rds::Client, id: &str) -> Result<()> {
    rds.delete_db_instance()
        .db_instance_identifier(id)
        .skip_final_snapshot(true)
        .delete_automated_backups(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| rds_error(e, "RDS instance"))
}

/// The newest available snapshot of `snaps`.
fn newest(snaps: Vec<RdsSnapshotInfo>) -> Option<RdsSnapshotInfo> {
    snaps
        .into_iter()
        .filter(|s| s.state == RdsOperationState::Available)
        .max_by_key(|s| s.created_at)
}

#[async_trait]
impl RdsOperations for AwsRdsOperations {
    async fn describe_database(&self, role: &RoleRef, region: &str, db: &RdsDatabaseRef) -> Result<RdsDatabaseInfo> {
        let rds = self.rds(role, region).await?;
        if db.cluster {
            let out = rds
                .describe_db_clusters()
                .db_cluster_identifier(&db.identifier)
                .send()
                .await
                .map_err(|e| rds_error(e, "RDS cluster"))?;
            let c = out
                .db_clusters()
                .first()
                .ok_or_else(|| Error::not_found(format!("RDS cluster {}", db.identifier)))?;
            return Ok(RdsDatabaseInfo {
                database: db.clone(),
                state: RdsOperationState::from_status(c.status().unwrap_or("creating")),
                engine: c.engine().map(str::to_string),
                encrypted: c.storage_encrypted().unwrap_or(false),
                earliest_restorable_time: time(c.earliest_restorable_time()),
                latest_restorable_time: time(c.latest_restorable_time()),
            });
        }
        let out = rds
            .describe_db_instances()
            .db_instance_identifier(&db.identifier)
            .send()
            .await
            .map_err(|e| rds_error(e, "RDS instance"))?;
        let i = out
            .db_instances()
            .first()
            .ok_or_else(|| Error::not_found(format!("RDS instance {}", db.identifier)))?;
        let earliest = earliest_restorable(&rds, &db.identifier).await;
        let latest = time(i.latest_restorable_time());
        Ok(RdsDatabaseInfo {
            database: db.clone(),
            state: RdsOperationState::from_status(i.db_instance_status().unwrap_or("creating")),
            engine: i.engine().map(str::to_string),
            encrypted: i.storage_encrypted().unwrap_or(false),
            // Without automated-backup records (moto), the window starts at creation.
            earliest_restorable_time: earliest.or(time(i.instance_create_time())).filter(|_| latest.is_some()),
            latest_restorable_time: latest,
        })
    }

    async fn databases_with_tag(
        &self,
        role: &RoleRef,
        region: &str,
        tag: &RdsTagSelector,
    ) -> Result<Vec<RdsDatabaseRef>> {
        let rds = self.rds(role, region).await?;
        let matches = |tags: &[Tag]| {
            tags.iter()
                .any(|t| t.key() == Some(tag.key.as_str()) && t.value().unwrap_or_default() == tag.value)
        };
        let mut out = Vec::new();
        let mut pages = rds.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| rds_error(e, "RDS instances"))?;
            for i in page.db_instances() {
                // A cluster's members are protected by the cluster's snapshot.
                if i.db_cluster_identifier().is_none() && matches(i.tag_list()) {
                    out.push(RdsDatabaseRef {
                        identifier: i.db_instance_identifier().unwrap_or_default().to_string(),
                        cluster: false,
                    });
                }
            }
        }
        let mut pages = rds.describe_db_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| rds_error(e, "RDS clusters"))?;
            for c in page.db_clusters() {
                if matches(c.tag_list()) {
                    out.push(RdsDatabaseRef {
                        identifier: c.db_cluster_identifier().unwrap_or_default().to_string(),
                        cluster: true,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn create_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
        snapshot_identifier: &str,
        tag_values: &BTreeMap<String, String>,
    ) -> Result<RdsSnapshotInfo> {
        let rds = self.rds(role, region).await?;
        Ok(if db.cluster {
            sent_snapshot!(
                rds.create_db_cluster_snapshot()
                    .db_cluster_identifier(&db.identifier)
                    .db_cluster_snapshot_identifier(snapshot_identifier)
                    .set_tags(Some(tags(tag_values))),
                "RDS cluster snapshot",
                db_cluster_snapshot,
                "CreateDBClusterSnapshot answered without the snapshot",
                cluster_snapshot(region)
            )
        } else {
            sent_snapshot!(
                rds.create_db_snapshot()
                    .db_instance_identifier(&db.identifier)
                    .db_snapshot_identifier(snapshot_identifier)
                    .set_tags(Some(tags(tag_values))),
                "RDS snapshot",
                db_snapshot,
                "CreateDBSnapshot answered without the snapshot",
                instance_snapshot(region)
            )
        })
    }

    async fn describe_snapshot(&self, role: &RoleRef, snapshot: &RdsSnapshotRef) -> Result<Option<RdsSnapshotInfo>> {
        let rds = self.rds(role, &snapshot.region).await?;
        let result = if snapshot.cluster {
            rds.describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(&snapshot.identifier)
                .send()
                .await
                .map(|out| {
                    out.db_cluster_snapshots()
                        .first()
                        .map(|s| cluster_snapshot(s, &snapshot.region))
                })
                .map_err(|e| rds_error(e, "RDS cluster snapshot"))
        } else {
            rds.describe_db_snapshots()
                .db_snapshot_identifier(&snapshot.identifier)
                .send()
                .await
                .map(|out| {
                    out.db_snapshots()
                        .first()
                        .map(|s| instance_snapshot(s, &snapshot.region))
                })
                .map_err(|e| rds_error(e, "RDS snapshot"))
        };
        unless_gone(result)
    }

    async fn latest_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
    ) -> Result<Option<RdsSnapshotInfo>> {
        let rds = self.rds(role, region).await?;
        let mut found = Vec::new();
        if db.cluster {
            let mut pages = rds
                .describe_db_cluster_snapshots()
                .db_cluster_identifier(&db.identifier)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| rds_error(e, "RDS cluster snapshots"))?;
                found.extend(page.db_cluster_snapshots().iter().map(|s| cluster_snapshot(s, region)));
            }
        } else {
            let mut pages = rds
                .describe_db_snapshots()
                .db_instance_identifier(&db.identifier)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| rds_error(e, "RDS snapshots"))?;
                found.extend(page.db_snapshots().iter().map(|s| instance_snapshot(s, region)));
            }
        }
        Ok(newest(found))
    }

    async fn copy_snapshot(
        &self,
        role: &RoleRef,
        source: &RdsSnapshotRef,
        destination_region: &str,
        target_identifier: &str,
        kms_key_id: Option<&str>,
        tag_values: &BTreeMap<String, String>,
    ) -> Result<RdsSnapshotInfo> {
        // Cross-region: the destination's client, the source by ARN.
        let rds = self.rds(role, destination_region).await?;
        let source_id = if source.arn.is_empty() || source.region == destination_region {
            source.identifier.clone()
        } else {
            source.arn.clone()
        };
        Ok(if source.cluster {
            sent_snapshot!(
                rds.copy_db_cluster_snapshot()
                    .source_db_cluster_snapshot_identifier(&source_id)
                    .target_db_cluster_snapshot_identifier(target_identifier)
                    .set_kms_key_id(kms_key_id.map(str::to_string))
                    .set_tags(Some(tags(tag_values))),
                "RDS cluster snapshot copy",
                db_cluster_snapshot,
                "CopyDBClusterSnapshot answered without the copy",
                cluster_snapshot(destination_region)
            )
        } else {
            sent_snapshot!(
                rds.copy_db_snapshot()
                    .source_db_snapshot_identifier(&source_id)
                    .target_db_snapshot_identifier(target_identifier)
                    .set_kms_key_id(kms_key_id.map(str::to_string))
                    .set_tags(Some(tags(tag_values))),
                "RDS snapshot copy",
                db_snapshot,
                "CopyDBSnapshot answered without the copy",
                instance_snapshot(destination_region)
            )
        })
    }

    async fn delete_snapshot(&self, role: &RoleRef, snapshot: &RdsSnapshotRef) -> Result<()> {
        let rds = self.rds(role, &snapshot.region).await?;
        let result = if snapshot.cluster {
            rds.delete_db_cluster_snapshot()
                .db_cluster_snapshot_identifier(&snapshot.identifier)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| rds_error(e, "RDS cluster snapshot"))
        } else {
            rds.delete_db_snapshot()
                .db_snapshot_identifier(&snapshot.identifier)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| rds_error(e, "RDS snapshot"))
        };
        unless_gone(result)
    }

    async fn delete_verification_database(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
        tag: (&str, &str),
    ) -> Result<()> {
        let rds = self.rds(role, region).await?;
        let carries =
            |tags: &[aws_sdk_rds::types::Tag]| tags.iter().any(|t| t.key() == Some(tag.0) && t.value() == Some(tag.1));
        let refused = || Error::conflict(format!("{} does not carry {}={}", db.identifier, tag.0, tag.1));
        if !db.cluster {
            let out = match rds
                .describe_db_instances()
                .db_instance_identifier(&db.identifier)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => return unless_gone(Err(rds_error(e, "RDS instance"))),
            };
            let Some(instance) = out.db_instances().first() else {
                return Ok(());
            };
            if !carries(instance.tag_list()) {
                return Err(refused());
            }
            return unless_gone(delete_instance(&rds, &db.identifier).await);
        }
        let out = match rds
            .describe_db_clusters()
            .db_cluster_identifier(&db.identifier)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => return unless_gone(Err(rds_error(e, "RDS cluster"))),
        };
        let Some(cluster) = out.db_clusters().first() else {
            return Ok(());
        };
        if !carries(cluster.tag_list()) {
            return Err(refused());
        }
        // AWS refuses to delete a cluster with instances in it (deleting ones do not count).
        for member in cluster.db_cluster_members() {
            if let Some(id) = member.db_instance_identifier() {
                unless_gone(delete_instance(&rds, id).await)?;
            }
        }
        unless_gone(
            rds.delete_db_cluster()
                .db_cluster_identifier(&db.identifier)
                .skip_final_snapshot(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| rds_error(e, "RDS cluster")),
        )
    }

    async fn restore(&self, role: &RoleRef, region: &str, r: &RdsRestoreRequest) -> Result<RdsDatabaseInfo> {
        let rds = self.rds(role, region).await?;
        let t = &r.target;
        let sgs = (!t.security_group_ids.is_empty()).then(|| t.security_group_ids.clone());
        let restore_time = r.restore_time.map(aws_time);
        match (r.cluster, &r.source_database) {
            (false, None) => {
                let snapshot = r
                    .snapshot
                    .as_deref()
                    .ok_or_else(|| Error::invalid("source", "a restore from a snapshot needs the snapshot"))?;
                rds.restore_db_instance_from_db_snapshot()
                    .db_instance_identifier(&t.identifier)
                    .db_snapshot_identifier(snapshot)
                    .set_db_instance_class(t.instance_class.clone())
                    .set_db_subnet_group_name(t.subnet_group.clone())
                    .set_vpc_security_group_ids(sgs)
                    .set_db_parameter_group_name(t.parameter_group.clone())
                    .set_option_group_name(t.option_group.clone())
                    .set_multi_az(t.multi_az)
                    .set_tags(Some(tags(&r.tags)))
                    .send()
                    .await
                    .map_err(|e| rds_error(e, "RDS restore from snapshot"))?;
            }
            (false, Some(source)) => {
                rds.restore_db_instance_to_point_in_time()
                    .source_db_instance_identifier(source)
                    .target_db_instance_identifier(&t.identifier)
                    .set_restore_time(restore_time)
                    .use_latest_restorable_time(r.use_latest_restorable_time)
                    .set_db_instance_class(t.instance_class.clone())
                    .set_db_subnet_group_name(t.subnet_group.clone())
                    .set_vpc_security_group_ids(sgs)
                    .set_db_parameter_group_name(t.parameter_group.clone())
                    .set_option_group_name(t.option_group.clone())
                    .set_multi_az(t.multi_az)
                    .set_tags(Some(tags(&r.tags)))
                    .send()
                    .await
                    .map_err(|e| rds_error(e, "RDS point-in-time restore"))?;
            }
            (true, None) => {
                let snapshot = r
                    .snapshot
                    .as_deref()
                    .ok_or_else(|| Error::invalid("source", "a restore from a snapshot needs the snapshot"))?;
                let engine = t
                    .engine
                    .clone()
                    .ok_or_else(|| Error::invalid("target.engine", "a cluster restore needs the engine"))?;
                rds.restore_db_cluster_from_snapshot()
                    .db_cluster_identifier(&t.identifier)
                    .snapshot_identifier(snapshot)
                    .engine(&engine)
                    .set_db_subnet_group_name(t.subnet_group.clone())
                    .set_vpc_security_group_ids(sgs)
                    .set_db_cluster_parameter_group_name(t.parameter_group.clone())
                    .set_tags(Some(tags(&r.tags)))
                    .send()
                    .await
                    .map_err(|e| rds_error(e, "RDS cluster restore from snapshot"))?;
                self.writer_instance(&rds, r, &engine).await?;
            }
            (true, Some(source)) => {
                rds.restore_db_cluster_to_point_in_time()
                    .source_db_cluster_identifier(source)
                    .db_cluster_identifier(&t.identifier)
                    .set_restore_to_time(restore_time)
                    .use_latest_restorable_time(r.use_latest_restorable_time)
                    .set_db_subnet_group_name(t.subnet_group.clone())
                    .set_vpc_security_group_ids(sgs)
                    .set_db_cluster_parameter_group_name(t.parameter_group.clone())
                    .set_tags(Some(tags(&r.tags)))
                    .send()
                    .await
                    .map_err(|e| rds_error(e, "RDS cluster point-in-time restore"))?;
                if let Some(engine) = t.engine.clone() {
                    self.writer_instance(&rds, r, &engine).await?;
                }
            }
        }
        Ok(RdsDatabaseInfo {
            database: RdsDatabaseRef {
                identifier: t.identifier.clone(),
                cluster: r.cluster,
            },
            state: RdsOperationState::InProgress,
            engine: t.engine.clone(),
            encrypted: false,
            earliest_restorable_time: None,
            latest_restorable_time: None,
        })
    }
}

impl AwsRdsOperations {
    /// A restored cluster has no instance: with an instance class, its writer is created.
    async fn writer_instance(&self, rds: &aws_sdk_rds::Client, r: &RdsRestoreRequest, engine: &str) -> Result<()> {
        let Some(class) = &r.target.instance_class else {
            return Ok(());
        };
        rds.create_db_instance()
            .db_instance_identifier(format!("{}-1", r.target.identifier))
            .db_cluster_identifier(&r.target.identifier)
            .engine(engine)
            .db_instance_class(class)
            .set_tags(Some(tags(&r.tags)))
            .send()
            .await
            .map_err(|e| rds_error(e, "RDS cluster writer instance"))?;
        Ok(())
    }
}

/// The RDS work queue on SQS (it also carries EKS re-creations): the RDS function's
/// event source. Delays above SQS's 15 minutes are cut to 15 (the step simply checks again).
pub struct SqsRdsWorkQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsRdsWorkQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsRdsWorkQueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl RdsWorkQueue for SqsRdsWorkQueue {
    async fn send(&self, message: &AwsWorkMessage, delay: Duration) -> Result<()> {
        let delay = arca_core::ports::queue::whole_seconds(
            "delay",
            delay.min(arca_core::ports::rds::MAX_DELAY),
            arca_core::ports::rds::MAX_DELAY,
        )?;
        let body = serde_json::to_string(message).map_err(Error::permanent)?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(i32::try_from(delay).unwrap_or(900))
            .send()
            .await
            .map_err(|e| classify(e, "RDS work queue"))?;
        Ok(())
    }
}
