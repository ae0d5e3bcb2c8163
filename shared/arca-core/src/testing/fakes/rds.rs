//! Fakes of the RDS ports for tests: [`FakeRds`] keeps databases and snapshots per
//! (role, region) in memory and can hold every new snapshot, copy or restore in
//! `creating` for N checks (moto makes them `available` at once); [`FakeRdsQueue`]
//! records the work messages with their delays.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::cloud::account::RoleRef;
use crate::model::rds::{RdsDatabaseRef, RdsSnapshotRef, RdsTagSelector};
use crate::ports::rds::{
    AwsWorkMessage, EksRecreationWorkMessage, RdsDatabaseInfo, RdsOperationState, RdsOperations, RdsRestoreRequest,
    RdsSnapshotInfo, RdsWorkMessage, RdsWorkQueue,
};
use crate::{Error, Result};

#[derive(Clone, Debug)]
struct FakeDb {
    engine: String,
    tags: BTreeMap<String, String>,
    /// Checks left before it reads `available`.
    pending_checks: u32,
    earliest: Option<DateTime<Utc>>,
    latest: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
struct FakeSnapshot {
    info: RdsSnapshotInfo,
    pending_checks: u32,
}

#[derive(Default)]
struct State {
    /// (role arn, region, cluster, identifier) → database.
    dbs: BTreeMap<(String, String, bool, String), FakeDb>,
    /// (role arn, region, cluster, identifier) → snapshot.
    snapshots: BTreeMap<(String, String, bool, String), FakeSnapshot>,
    hold_checks: u32,
    fail_next: Option<String>,
    calls: Vec<String>,
    restores: Vec<RdsRestoreRequest>,
    seq: u64,
}

/// RDS in memory.
#[derive(Default)]
pub struct FakeRds {
    state: Mutex<State>,
}

impl FakeRds {
    pub fn new() -> Self {
        FakeRds::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a database (available, restorable over the last day up to `now`).
    pub fn add_database(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
        engine: &str,
        tags: &[(&str, &str)],
        now: DateTime<Utc>,
    ) {
        self.lock().dbs.insert(
            (role.role_arn.clone(), region.into(), db.cluster, db.identifier.clone()),
            FakeDb {
                engine: engine.into(),
                tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                pending_checks: 0,
                earliest: Some(now - chrono::Duration::days(1)),
                latest: Some(now),
            },
        );
    }

    /// Adds an automated snapshot of a database, created at `at`.
    pub fn add_automated_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
        id: &str,
        at: DateTime<Utc>,
    ) {
        let mut s = self.lock();
        let engine = s
            .dbs
            .get(&(role.role_arn.clone(), region.into(), db.cluster, db.identifier.clone()))
            .map(|d| d.engine.clone());
        s.snapshots.insert(
            (role.role_arn.clone(), region.into(), db.cluster, id.into()),
            FakeSnapshot {
                info: RdsSnapshotInfo {
                    snapshot: RdsSnapshotRef {
                        identifier: id.into(),
                        arn: format!("arn:aws:rds:{region}:000000000000:snapshot:{id}"),
                        region: region.into(),
                        cluster: db.cluster,
                    },
                    state: RdsOperationState::Available,
                    snapshot_type: Some("automated".into()),
                    engine,
                    encrypted: false,
                    created_at: Some(at),
                    source_identifier: db.identifier.clone(),
                    tags: BTreeMap::new(),
                },
                pending_checks: 0,
            },
        );
    }

    /// Every snapshot, copy and restore started from now on reads `creating` for the
    /// next `checks` describes.
    pub fn hold_creating(&self, checks: u32) {
        self.lock().hold_checks = checks;
    }

    /// The next operation fails with `message` (AWS refusing it).
    pub fn fail_next(&self, message: &str) {
        self.lock().fail_next = Some(message.into());
    }

    /// The snapshots of one role and region: identifiers, sorted.
    pub fn snapshots(&self, role: &RoleRef, region: &str) -> Vec<String> {
        self.lock()
            .snapshots
            .keys()
            .filter(|(r, g, _, _)| *r == role.role_arn && g == region)
            .map(|(_, _, _, id)| id.clone())
            .collect()
    }

    /// A snapshot's tags.
    pub fn snapshot_tags(&self, role: &RoleRef, region: &str, id: &str) -> Option<BTreeMap<String, String>> {
        self.lock()
            .snapshots
            .iter()
            .find(|((r, g, _, i), _)| *r == role.role_arn && g == region && i == id)
            .map(|(_, s)| s.info.tags.clone())
    }

    /// The restore requests made.
    /// The databases of (role, region) by identifier.
    pub fn databases(&self, role: &RoleRef, region: &str) -> Vec<String> {
        self.lock()
            .dbs
            .keys()
            .filter(|(r, g, _, _)| *r == role.role_arn && g == region)
            .map(|(_, _, _, id)| id.clone())
            .collect()
    }

    pub fn restores(&self) -> Vec<RdsRestoreRequest> {
        self.lock().restores.clone()
    }

    /// Names of the calls made, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn begin(&self, call: &str) -> Result<std::sync::MutexGuard<'_, State>> {
        let mut s = self.lock();
        s.calls.push(call.to_string());
        if let Some(m) = s.fail_next.take() {
            return Err(Error::conflict(m));
        }
        Ok(s)
    }
}

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

#[async_trait]
impl RdsOperations for FakeRds {
    async fn describe_database(&self, role: &RoleRef, region: &str, db: &RdsDatabaseRef) -> Result<RdsDatabaseInfo> {
        let mut s = self.begin("describe_database")?;
        let d = s
            .dbs
            .get_mut(&(role.role_arn.clone(), region.into(), db.cluster, db.identifier.clone()))
            .ok_or_else(|| Error::not_found(format!("database {}", db.identifier)))?;
        let state = if d.pending_checks > 0 {
            d.pending_checks -= 1;
            RdsOperationState::InProgress
        } else {
            RdsOperationState::Available
        };
        Ok(RdsDatabaseInfo {
            database: db.clone(),
            state,
            engine: Some(d.engine.clone()),
            encrypted: false,
            earliest_restorable_time: d.earliest,
            latest_restorable_time: d.latest,
        })
    }

    async fn databases_with_tag(
        &self,
        role: &RoleRef,
        region: &str,
        tag: &RdsTagSelector,
    ) -> Result<Vec<RdsDatabaseRef>> {
        let s = self.begin("databases_with_tag")?;
        Ok(s.dbs
            .iter()
            .filter(|((r, g, _, _), d)| *r == role.role_arn && g == region && d.tags.get(&tag.key) == Some(&tag.value))
            .map(|((_, _, cluster, id), _)| RdsDatabaseRef {
                identifier: id.clone(),
                cluster: *cluster,
            })
            .collect())
    }

    async fn create_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
        snapshot_identifier: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<RdsSnapshotInfo> {
        let mut s = self.begin(if db.cluster {
            "create_cluster_snapshot"
        } else {
            "create_snapshot"
        })?;
        let engine = s
            .dbs
            .get(&(role.role_arn.clone(), region.into(), db.cluster, db.identifier.clone()))
            .map(|d| d.engine.clone())
            .ok_or_else(|| Error::not_found(format!("database {}", db.identifier)))?;
        let key = (
            role.role_arn.clone(),
            region.to_string(),
            db.cluster,
            snapshot_identifier.to_string(),
        );
        if s.snapshots.contains_key(&key) {
            return Err(Error::conflict(format!(
                "snapshot {snapshot_identifier} already exists"
            )));
        }
        let hold = s.hold_checks;
        let info = RdsSnapshotInfo {
            snapshot: RdsSnapshotRef {
                identifier: snapshot_identifier.into(),
                arn: format!("arn:aws:rds:{region}:000000000000:snapshot:{snapshot_identifier}"),
                region: region.into(),
                cluster: db.cluster,
            },
            state: if hold > 0 {
                RdsOperationState::InProgress
            } else {
                RdsOperationState::Available
            },
            snapshot_type: Some("manual".into()),
            engine: Some(engine),
            encrypted: false,
            created_at: Some(now()),
            source_identifier: db.identifier.clone(),
            tags: tags.clone(),
        };
        s.snapshots.insert(
            key,
            FakeSnapshot {
                info: info.clone(),
                pending_checks: hold,
            },
        );
        Ok(info)
    }

    async fn describe_snapshot(&self, role: &RoleRef, snapshot: &RdsSnapshotRef) -> Result<Option<RdsSnapshotInfo>> {
        let mut s = self.begin("describe_snapshot")?;
        let key = (
            role.role_arn.clone(),
            snapshot.region.clone(),
            snapshot.cluster,
            snapshot.identifier.clone(),
        );
        let Some(snap) = s.snapshots.get_mut(&key) else {
            return Ok(None);
        };
        if snap.pending_checks > 0 {
            snap.pending_checks -= 1;
            snap.info.state = RdsOperationState::InProgress;
        } else {
            snap.info.state = RdsOperationState::Available;
        }
        Ok(Some(snap.info.clone()))
    }

    async fn latest_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
    ) -> Result<Option<RdsSnapshotInfo>> {
        let s = self.begin("latest_snapshot")?;
        Ok(s.snapshots
            .iter()
            .filter(|((r, g, c, _), snap)| {
                *r == role.role_arn
                    && g == region
                    && *c == db.cluster
                    && snap.info.source_identifier == db.identifier
                    && snap.pending_checks == 0
            })
            .map(|(_, snap)| snap.info.clone())
            .max_by_key(|i| i.created_at))
    }

    async fn copy_snapshot(
        &self,
        role: &RoleRef,
        source: &RdsSnapshotRef,
        destination_region: &str,
        target_identifier: &str,
        kms_key_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<RdsSnapshotInfo> {
        let mut s = self.begin(if source.cluster {
            "copy_cluster_snapshot"
        } else {
            "copy_snapshot"
        })?;
        let src = s
            .snapshots
            .get(&(
                role.role_arn.clone(),
                source.region.clone(),
                source.cluster,
                source.identifier.clone(),
            ))
            .cloned()
            .ok_or_else(|| Error::not_found(format!("snapshot {}", source.identifier)))?;
        if src.info.encrypted && kms_key_id.is_none() {
            return Err(Error::invalid("copy.kmsKeyId", "an encrypted snapshot needs a KMS key"));
        }
        let hold = s.hold_checks;
        let mut info = src.info.clone();
        info.snapshot = RdsSnapshotRef {
            identifier: target_identifier.into(),
            arn: format!("arn:aws:rds:{destination_region}:000000000000:snapshot:{target_identifier}"),
            region: destination_region.into(),
            cluster: source.cluster,
        };
        info.snapshot_type = Some("manual".into());
        info.tags = tags.clone();
        info.state = if hold > 0 {
            RdsOperationState::InProgress
        } else {
            RdsOperationState::Available
        };
        s.snapshots.insert(
            (
                role.role_arn.clone(),
                destination_region.into(),
                source.cluster,
                target_identifier.into(),
            ),
            FakeSnapshot {
                info: info.clone(),
                pending_checks: hold,
            },
        );
        Ok(info)
    }

    async fn delete_snapshot(&self, role: &RoleRef, snapshot: &RdsSnapshotRef) -> Result<()> {
        let mut s = self.begin("delete_snapshot")?;
        s.snapshots.remove(&(
            role.role_arn.clone(),
            snapshot.region.clone(),
            snapshot.cluster,
            snapshot.identifier.clone(),
        ));
        Ok(())
    }

    async fn delete_verification_database(
        &self,
        role: &RoleRef,
        region: &str,
        db: &RdsDatabaseRef,
        tag: (&str, &str),
    ) -> Result<()> {
        let mut s = self.begin("delete_verification_database")?;
        let key = (
            role.role_arn.clone(),
            region.to_string(),
            db.cluster,
            db.identifier.clone(),
        );
        match s.dbs.get(&key) {
            None => Ok(()),
            Some(d) if d.tags.get(tag.0).map(String::as_str) != Some(tag.1) => Err(Error::conflict(format!(
                "{} does not carry {}={}",
                db.identifier, tag.0, tag.1
            ))),
            Some(_) => {
                s.dbs.remove(&key);
                Ok(())
            }
        }
    }

    async fn restore(&self, role: &RoleRef, region: &str, request: &RdsRestoreRequest) -> Result<RdsDatabaseInfo> {
        let mut s = self.begin(if request.source_database.is_some() {
            "restore_to_point_in_time"
        } else {
            "restore_from_snapshot"
        })?;
        let key = (
            role.role_arn.clone(),
            region.to_string(),
            request.cluster,
            request.target.identifier.clone(),
        );
        if s.dbs.contains_key(&key) {
            return Err(Error::conflict(format!("{} already exists", request.target.identifier)));
        }
        s.seq += 1;
        let hold = s.hold_checks;
        s.restores.push(request.clone());
        s.dbs.insert(
            key,
            FakeDb {
                engine: request.target.engine.clone().unwrap_or_else(|| "postgres".into()),
                tags: request.tags.clone(),
                pending_checks: hold,
                earliest: None,
                latest: None,
            },
        );
        Ok(RdsDatabaseInfo {
            database: RdsDatabaseRef {
                identifier: request.target.identifier.clone(),
                cluster: request.cluster,
            },
            state: RdsOperationState::InProgress,
            engine: request.target.engine.clone(),
            encrypted: false,
            earliest_restorable_time: None,
            latest_restorable_time: None,
        })
    }
}

/// Records work messages with their delays; tests take them with [`FakeRdsQueue::take`]
/// (RDS jobs) and [`FakeRdsQueue::take_eks`] (EKS re-creations).
#[derive(Default)]
pub struct FakeRdsQueue {
    sent: Mutex<Vec<(AwsWorkMessage, Duration)>>,
}

impl FakeRdsQueue {
    pub fn new() -> Self {
        FakeRdsQueue::default()
    }

    fn drain<T>(&self, pick: impl Fn(&AwsWorkMessage) -> Option<T>) -> Vec<(T, Duration)> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = Vec::new();
        sent.retain(|(m, delay)| match pick(m) {
            Some(t) => {
                taken.push((t, *delay));
                false
            }
            None => true,
        });
        taken
    }

    /// Every RDS job message sent since the last take, in order.
    pub fn take(&self) -> Vec<(RdsWorkMessage, Duration)> {
        self.drain(|m| match m {
            AwsWorkMessage::Rds(m) => Some(m.clone()),
            AwsWorkMessage::EksRecreation(_) => None,
        })
    }

    /// Every EKS re-creation message sent since the last take, in order.
    pub fn take_eks(&self) -> Vec<(EksRecreationWorkMessage, Duration)> {
        self.drain(|m| match m {
            AwsWorkMessage::EksRecreation(m) => Some(m.clone()),
            AwsWorkMessage::Rds(_) => None,
        })
    }
}

#[async_trait]
impl RdsWorkQueue for FakeRdsQueue {
    async fn send(&self, message: &AwsWorkMessage, delay: Duration) -> Result<()> {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((message.clone(), delay));
        Ok(())
    }
}
