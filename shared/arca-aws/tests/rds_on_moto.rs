//! RDS protection on moto, end to end through the control plane on DynamoDB: two AWS
//! accounts reached by AssumeRole (moto keeps their state apart), two regions. Snapshots
//! (instance and Aurora cluster, tagged), cross-region copies keeping and deleting the
//! source, copy-only from the latest (automated) snapshot, restores from a snapshot, from a
//! copy in the other region (explicit DBSubnetGroupName), to a point in time, of an Aurora
//! cluster, and retention deleting snapshots and copies. The RDS work queue is SQS on moto.
//!
//! moto makes snapshots `available` at once; the "still creating" path is covered by
//! `arca_core::testing::scenarios::rds` with its fake.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arca_aws::{AwsCloudConnector, AwsRdsOperations, DynamoItemStore, SqsRdsWorkQueue};
use arca_core::Error;
use arca_core::control_plane::ControlPlane;
use arca_core::control_plane::RdsRunRequest;
use arca_core::ids::{CloudAccountId, RecoveryPointId};
use arca_core::model::auth::Principal;
use arca_core::model::cloud::account::CloudAccountState;
use arca_core::model::job::{Job, JobState};
use arca_core::model::rds::{
    RdsBackupDefinitionSpec, RdsCopySpec, RdsDatabaseRef, RdsRecoveryPoint, RdsRecoveryPointType, RdsRestoreSource,
    RdsRestoreSpec, RdsRestoreTarget, RdsVerificationSpec, TAG_EXPIRES_AT, TAG_RECOVERY_POINT, TAG_VERIFICATION,
};
use arca_core::model::verification::{VerificationState, VerifyWhen};
use arca_core::ports::FixedClock;
use arca_core::ports::rds::RdsOperations;
use arca_core::ports::rds::{RdsWorkMessage, RdsWorkQueue};
use arca_core::store::page::PageRequest;
use arca_core::testing::fakes::rds::FakeRdsQueue;
use aws_config::SdkConfig;
use common::{
    as_account, cloud_control_plane, dynamo_store, fresh_account, link_account, postgres_instance, received, sign_up,
    sqs_queue,
};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

/// An instance and an Aurora cluster in the east; a subnet group in the west.
async fn seed(base: &SdkConfig, account: &str) {
    let east = aws_sdk_rds::Client::new(&as_account(base, account, EAST).await);
    postgres_instance(&east, "orders")
        .backup_retention_period(7)
        .send()
        .await
        .expect("create db instance");
    east.create_db_cluster()
        .db_cluster_identifier("ledger")
        .engine("aurora-postgresql")
        .master_username("arca")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .expect("create db cluster");
    let west_config = as_account(base, account, WEST).await;
    let ec2 = aws_sdk_ec2::Client::new(&west_config);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.1.0.0/16")
        .send()
        .await
        .expect("vpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();
    let mut subnets = Vec::new();
    for (i, az) in ["us-west-2a", "us-west-2b"].iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.1.{i}.0/24"))
            .availability_zone(*az)
            .send()
            .await
            .expect("subnet");
        subnets.push(s.subnet().and_then(|s| s.subnet_id()).expect("id").to_string());
    }
    aws_sdk_rds::Client::new(&west_config)
        .create_db_subnet_group()
        .db_subnet_group_name("west-subnets")
        .db_subnet_group_description("restores in the west")
        .set_subnet_ids(Some(subnets))
        .send()
        .await
        .expect("subnet group");
}

struct Deployment {
    items: Arc<DynamoItemStore>,
    connector: Arc<AwsCloudConnector>,
    queue: Arc<FakeRdsQueue>,
    start: SystemTime,
}

impl Deployment {
    /// The control plane `secs` after the start (each run gets its own second, so
    /// snapshot names never collide).
    fn at(&self, secs: u64) -> ControlPlane {
        cloud_control_plane(
            self.items.clone(),
            Arc::new(FixedClock(self.start + Duration::from_secs(secs))),
            self.connector.clone(),
        )
        .with_rds(
            Arc::new(AwsRdsOperations::new(self.connector.clone())),
            Some(self.queue.clone()),
        )
    }

    /// Creates a restore, delivers its work and checks it COMPLETED.
    async fn restored(&self, cp: &ControlPlane, p: &Principal, spec: RdsRestoreSpec, what: &str) -> Job {
        let job = cp.create_rds_restore(p, spec).await.expect(what);
        self.drain(cp).await;
        finished(cp, p, &job).await
    }

    /// Delivers the queued work until no job asks to be checked again.
    async fn drain(&self, cp: &ControlPlane) {
        for _ in 0..10 {
            let sent = self.queue.take();
            if sent.is_empty() {
                return;
            }
            for (m, _) in sent {
                cp.rds_step(&m.org_id, &m.job_id).await.expect("step");
            }
        }
        panic!("jobs never settled");
    }
}

async fn link(cp: &ControlPlane, p: &Principal, account: &str) -> CloudAccountId {
    let regions = vec![EAST.into(), WEST.into()];
    let v = link_account(cp, p, format!("acct-{account}"), regions, account, |id| {
        format!("arca-{id}")
    })
    .await;
    assert_eq!(v.account.state, CloudAccountState::Active, "{:?}", v.account.last_error);
    v.account.id
}

fn db(id: &str, cluster: bool) -> RdsDatabaseRef {
    RdsDatabaseRef {
        identifier: id.into(),
        cluster,
    }
}

fn spec(account: CloudAccountId, dbs: Vec<RdsDatabaseRef>, delete_source: bool) -> RdsBackupDefinitionSpec {
    RdsBackupDefinitionSpec {
        name: "moto".into(),
        cloud_account_id: account,
        region: EAST.into(),
        databases: dbs,
        tag: None,
        policy_id: None,
        paused: false,
        copy: Some(RdsCopySpec {
            destination_region: WEST.into(),
            kms_key_id: None,
            delete_source_after_copy: delete_source,
            policy_id: None,
            retain_days: Some(30),
        }),
        verification: None,
    }
}

/// A restore of recovery point `rp` of `account` into `target`.
fn from_point(account: CloudAccountId, rp: RecoveryPointId, target: RdsRestoreTarget) -> RdsRestoreSpec {
    RdsRestoreSpec {
        cloud_account_id: account,
        source: RdsRestoreSource::RecoveryPoint { recovery_point_id: rp },
        target,
    }
}

async fn finished(cp: &ControlPlane, p: &Principal, job: &Job) -> Job {
    let j = cp.get_job(p, &job.id).await.expect("job");
    assert_eq!(j.state, JobState::Completed, "{:?} {:?}", j.reason, j.activity);
    j
}

async fn points(cp: &ControlPlane, p: &Principal, def: arca_core::ids::RdsBackupDefinitionId) -> Vec<RdsRecoveryPoint> {
    cp.list_rds_recovery_points(p, Some(def), &PageRequest::first(100))
        .await
        .expect("points")
        .items
}

async fn instance_snapshots(config: &SdkConfig, db: &str) -> Vec<(String, Vec<(String, String)>)> {
    aws_sdk_rds::Client::new(config)
        .describe_db_snapshots()
        .db_instance_identifier(db)
        .send()
        .await
        .expect("describe")
        .db_snapshots()
        .iter()
        .map(|s| {
            (
                s.db_snapshot_identifier().unwrap_or_default().to_string(),
                s.tag_list()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_string(),
                            t.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

async fn snapshot_exists(config: &SdkConfig, id: &str, cluster: bool) -> bool {
    let rds = aws_sdk_rds::Client::new(config);
    if cluster {
        rds.describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(id)
            .send()
            .await
            .map(|o| !o.db_cluster_snapshots().is_empty())
            .unwrap_or(false)
    } else {
        rds.describe_db_snapshots()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map(|o| !o.db_snapshots().is_empty())
            .unwrap_or(false)
    }
}

async fn instance_exists(config: &SdkConfig, id: &str) -> bool {
    aws_sdk_rds::Client::new(config)
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .is_ok()
}

/// The restore's tag on a restored instance: what the role stack's `RdsModifyRestored`
/// condition (`rds:db-tag/arca:restore-job`) allows ModifyDBInstance on.
async fn restore_job_tag(config: &SdkConfig, id: &str) -> Option<String> {
    let out = aws_sdk_rds::Client::new(config)
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .expect("describe the restored instance");
    out.db_instances()[0]
        .tag_list()
        .iter()
        .find(|t| t.key() == Some("arca:restore-job"))
        .and_then(|t| t.value().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_snapshots_copies_restores_and_retention_across_accounts_and_regions() {
    let Some(env) = arca_testenv::aws() else { return };
    let base = env.sdk_config().await;
    let accounts = [fresh_account(1), fresh_account(2)];
    assert_ne!(accounts[0], accounts[1]);
    for a in &accounts {
        seed(&base, a).await;
    }
    let d = Deployment {
        items: Arc::new(dynamo_store(&base, "arca-rds").await),
        connector: Arc::new(AwsCloudConnector::new(base.clone())),
        queue: Arc::new(FakeRdsQueue::new()),
        start: SystemTime::now(),
    };
    let cp = d.at(0);
    let p = sign_up(&cp, "moto-rds").await;
    let a = link(&cp, &p, &accounts[0]).await;
    let b = link(&cp, &p, &accounts[1]).await;
    let east_a = as_account(&base, &accounts[0], EAST).await;
    let west_a = as_account(&base, &accounts[0], WEST).await;
    let east_b = as_account(&base, &accounts[1], EAST).await;

    // 1. Snapshot of an instance and an Aurora cluster, copied to the west, source kept.
    let keep = cp
        .create_rds_backup_definition(&p, spec(a, vec![db("orders", false), db("ledger", true)], false))
        .await
        .expect("definition");
    let cp = d.at(1);
    let job = cp
        .run_rds_backup_now(&p, &keep.id, RdsRunRequest::default())
        .await
        .expect("run");
    d.drain(&cp).await;
    let done = finished(&cp, &p, &job).await;
    assert_eq!(
        (done.counters.snapshots_completed, done.counters.copies_completed),
        (2, 2)
    );
    let pts = points(&cp, &p, keep.id).await;
    assert_eq!(pts.len(), 4, "{pts:#?}");
    let pick = |t: RdsRecoveryPointType, cluster: bool| {
        pts.iter()
            .find(|rp| rp.rp_type == t && rp.database.cluster == cluster)
            .expect("point")
            .clone()
    };
    let snap = pick(RdsRecoveryPointType::Snapshot, false);
    let copy = pick(RdsRecoveryPointType::Copy, false);
    let cluster_snap = pick(RdsRecoveryPointType::Snapshot, true);
    let cluster_copy = pick(RdsRecoveryPointType::Copy, true);
    assert_eq!(
        (snap.snapshot.region.as_str(), copy.snapshot.region.as_str()),
        (EAST, WEST)
    );
    assert!(snapshot_exists(&east_a, &snap.snapshot.identifier, false).await);
    assert!(snapshot_exists(&west_a, &copy.snapshot.identifier, false).await);
    assert!(snapshot_exists(&east_a, &cluster_snap.snapshot.identifier, true).await);
    assert!(snapshot_exists(&west_a, &cluster_copy.snapshot.identifier, true).await);
    let tagged = instance_snapshots(&east_a, "orders").await;
    let (_, tags) = tagged
        .iter()
        .find(|(id, _)| *id == snap.snapshot.identifier)
        .expect("the snapshot");
    assert!(
        tags.contains(&(TAG_RECOVERY_POINT.to_string(), snap.id.to_string())),
        "{tags:?}"
    );
    assert!(tags.iter().any(|(k, _)| k == TAG_EXPIRES_AT), "{tags:?}");
    assert!(
        !snapshot_exists(&east_b, &snap.snapshot.identifier, false).await,
        "account B never sees A's snapshots"
    );

    // 2. Copy deleting the source once it is available.
    let drop = cp
        .create_rds_backup_definition(&p, spec(a, vec![db("orders", false)], true))
        .await
        .expect("definition");
    let cp = d.at(2);
    let job = cp
        .run_rds_backup_now(&p, &drop.id, RdsRunRequest::default())
        .await
        .expect("run");
    d.drain(&cp).await;
    finished(&cp, &p, &job).await;
    let left = points(&cp, &p, drop.id).await;
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0].rp_type, RdsRecoveryPointType::Copy);
    let source = job_source(&cp, &p, &job).await;
    assert!(
        !snapshot_exists(&east_a, &source, false).await,
        "source {source} deleted"
    );
    assert!(snapshot_exists(&west_a, &left[0].snapshot.identifier, false).await);

    // 3. Copy only: the latest existing snapshot, no new one in the east.
    let before = instance_snapshots(&east_a, "orders").await.len();
    let cp = d.at(3);
    let job = cp
        .run_rds_backup_now(
            &p,
            &keep.id,
            RdsRunRequest {
                copy_only: true,
                retention: None,
            },
        )
        .await
        .expect("copy only");
    d.drain(&cp).await;
    finished(&cp, &p, &job).await;
    assert_eq!(
        instance_snapshots(&east_a, "orders").await.len(),
        before,
        "no new snapshot"
    );
    assert_eq!(points(&cp, &p, keep.id).await.len(), 6, "two more copies");

    // 4. Restore from a snapshot, with options.
    let target = |id: &str| RdsRestoreTarget {
        identifier: id.into(),
        instance_class: Some("db.t3.small".into()),
        multi_az: Some(false),
        ..Default::default()
    };
    let cp = d.at(4);
    let job = d
        .restored(&cp, &p, from_point(a, snap.id, target("orders-restored")), "restore")
        .await;
    assert!(instance_exists(&east_a, "orders-restored").await);
    assert_eq!(
        restore_job_tag(&east_a, "orders-restored").await,
        Some(job.id.to_string()),
        "tagged as Arca's restore"
    );

    // 5. Cross-region: from the copy held in the west, with the west's subnet group.
    let err = cp
        .create_rds_restore(&p, from_point(a, copy.id, target("orders-west")))
        .await;
    assert!(
        matches!(&err, Err(Error::Invalid { field, .. }) if field == "target.subnetGroup"),
        "{err:?}"
    );
    d.restored(
        &cp,
        &p,
        from_point(
            a,
            copy.id,
            RdsRestoreTarget {
                subnet_group: Some("west-subnets".into()),
                ..target("orders-west")
            },
        ),
        "cross-region restore",
    )
    .await;
    assert!(instance_exists(&west_a, "orders-west").await);
    assert!(!instance_exists(&east_a, "orders-west").await);

    // 6. Point in time: a time outside the window is refused; the latest restores.
    let pitr = |time: Option<chrono::DateTime<chrono::Utc>>, latest: bool, id: &str| RdsRestoreSpec {
        cloud_account_id: a,
        source: RdsRestoreSource::PointInTime {
            region: EAST.into(),
            database: db("orders", false),
            restore_time: time,
            use_latest_restorable_time: latest,
        },
        target: target(id),
    };
    let year_ago = chrono::DateTime::<chrono::Utc>::from(d.start) - chrono::Duration::days(365);
    let err = cp
        .create_rds_restore(&p, pitr(Some(year_ago), false, "orders-pitr"))
        .await;
    assert!(
        matches!(&err, Err(Error::Invalid { field, .. }) if field == "source.restoreTime"),
        "{err:?}"
    );
    d.restored(&cp, &p, pitr(None, true, "orders-pitr"), "pitr").await;
    assert!(instance_exists(&east_a, "orders-pitr").await);

    // 7. Aurora: the cluster snapshot restores into a new cluster with its writer.
    let job = d
        .restored(
            &cp,
            &p,
            from_point(
                a,
                cluster_snap.id,
                RdsRestoreTarget {
                    instance_class: Some("db.r6g.large".into()),
                    ..target("ledger-restored")
                },
            ),
            "cluster restore",
        )
        .await;
    let clusters = aws_sdk_rds::Client::new(&east_a)
        .describe_db_clusters()
        .db_cluster_identifier("ledger-restored")
        .send()
        .await
        .expect("restored cluster");
    assert_eq!(clusters.db_clusters()[0].engine(), Some("aurora-postgresql"));
    assert!(instance_exists(&east_a, "ledger-restored-1").await, "its writer");
    assert_eq!(
        restore_job_tag(&east_a, "ledger-restored-1").await,
        Some(job.id.to_string()),
        "the writer is tagged as Arca's restore too"
    );

    // 8. Account B, the same database name: its own snapshot, in its own account.
    let cp = d.at(5);
    let def_b = cp
        .create_rds_backup_definition(&p, spec(b, vec![db("orders", false)], false))
        .await
        .expect("definition");
    let job = cp
        .run_rds_backup_now(&p, &def_b.id, RdsRunRequest::default())
        .await
        .expect("run");
    d.drain(&cp).await;
    finished(&cp, &p, &job).await;
    let pb = points(&cp, &p, def_b.id).await;
    let snap_b = pb
        .iter()
        .find(|rp| rp.rp_type == RdsRecoveryPointType::Snapshot)
        .expect("b's snapshot");
    assert!(snapshot_exists(&east_b, &snap_b.snapshot.identifier, false).await);
    assert!(!snapshot_exists(&east_a, &snap_b.snapshot.identifier, false).await);

    // 9. Retention: snapshots (7 days, the default) then copies (30 days) are deleted.
    let cp = d.at(8 * 86_400);
    let report = cp.rds_retention_sweep().await.expect("sweep");
    assert!(report.kept.is_empty(), "{report:?}");
    assert!(!snapshot_exists(&east_a, &snap.snapshot.identifier, false).await);
    assert!(!snapshot_exists(&east_a, &cluster_snap.snapshot.identifier, true).await);
    assert!(!snapshot_exists(&east_b, &snap_b.snapshot.identifier, false).await);
    assert!(
        snapshot_exists(&west_a, &copy.snapshot.identifier, false).await,
        "copies last 30 days"
    );
    let cp = d.at(31 * 86_400);
    cp.rds_retention_sweep().await.expect("sweep");
    assert!(!snapshot_exists(&west_a, &copy.snapshot.identifier, false).await);
    assert!(!snapshot_exists(&west_a, &cluster_copy.snapshot.identifier, true).await);
    assert!(points(&cp, &p, keep.id).await.is_empty());
    assert!(points(&cp, &p, drop.id).await.is_empty());
}

async fn job_source(cp: &ControlPlane, p: &Principal, job: &Job) -> String {
    let j = cp.get_job(p, &job.id).await.expect("job");
    j.rds
        .and_then(|w| w.items.first().and_then(|i| i.snapshot.clone()))
        .map(|s| s.identifier)
        .expect("the source snapshot")
}

/// The identifiers of the account's instances and clusters in `config`'s region.
async fn databases(config: &SdkConfig) -> Vec<String> {
    let rds = aws_sdk_rds::Client::new(config);
    let instances = rds.describe_db_instances().send().await.expect("instances");
    let clusters = rds.describe_db_clusters().send().await.expect("clusters");
    let mut ids: Vec<String> = instances
        .db_instances()
        .iter()
        .filter_map(|i| i.db_instance_identifier().map(str::to_string))
        .chain(
            clusters
                .db_clusters()
                .iter()
                .filter_map(|c| c.db_cluster_identifier().map(|id| format!("cluster {id}"))),
        )
        .collect();
    ids.sort();
    ids
}

/// Restore verification through the AWS adapter: after a run, each snapshot (an instance's
/// and an Aurora cluster's) is restored to a temporary database tagged for its job, found
/// `available`, deleted (the cluster's writer first), and the point VERIFIED; on demand
/// again; the adapter refuses to delete a database without the job's tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_restore_verification_on_moto() {
    let Some(env) = arca_testenv::aws() else { return };
    let base = env.sdk_config().await;
    let account = fresh_account(3);
    seed(&base, &account).await;
    let d = Deployment {
        items: Arc::new(dynamo_store(&base, "arca-rds-verify").await),
        connector: Arc::new(AwsCloudConnector::new(base.clone())),
        queue: Arc::new(FakeRdsQueue::new()),
        start: SystemTime::now(),
    };
    let cp = d.at(0);
    let p = sign_up(&cp, "moto-rds-verify").await;
    let a = link(&cp, &p, &account).await;
    let east = as_account(&base, &account, EAST).await;
    let before = databases(&east).await;
    assert_eq!(before, ["cluster ledger", "orders"]);
    let mut def = spec(a, vec![db("orders", false), db("ledger", true)], false);
    def.copy = None;
    def.verification = Some(RdsVerificationSpec {
        when: VerifyWhen::AfterBackup,
        instance_class: Some("db.t3.small".into()),
        subnet_group: None,
        security_group_ids: vec![],
    });
    let def = cp.create_rds_backup_definition(&p, def).await.expect("definition");
    let cp = d.at(1);
    let job = cp
        .run_rds_backup_now(&p, &def.id, RdsRunRequest::default())
        .await
        .expect("run");
    d.drain(&cp).await;
    finished(&cp, &p, &job).await;
    let pts = points(&cp, &p, def.id).await;
    assert_eq!(pts.len(), 2);
    for rp in &pts {
        let v = rp.verification.as_ref().expect("verified after the run");
        assert_eq!(v.state, VerificationState::Verified, "{rp:#?}");
        assert!(v.database.identifier.starts_with("arca-verify-"));
        assert_eq!(v.database.cluster, rp.database.cluster);
        let vjob = cp.get_job(&p, &v.job_id).await.expect("verification job");
        assert_eq!(vjob.state, JobState::Completed, "{:?}", vjob.activity);
        let log: Vec<&str> = vjob.activity.iter().map(|e| e.message.as_str()).collect();
        assert!(log.iter().any(|m| m.ends_with(": available")), "{log:?}");
        assert!(log.iter().any(|m| m.ends_with(": deleted")), "{log:?}");
    }
    assert_eq!(
        databases(&east).await,
        before,
        "the temporary databases are gone, the others stay"
    );

    // On demand, the Aurora point again.
    let cluster_point = pts.iter().find(|rp| rp.database.cluster).expect("cluster point");
    let cp = d.at(2);
    let again = cp
        .verify_rds_recovery_point(&p, &cluster_point.id)
        .await
        .expect("verify");
    d.drain(&cp).await;
    finished(&cp, &p, &again).await;
    let rp = cp.get_rds_recovery_point(&p, &cluster_point.id).await.expect("point");
    let v = rp.verification.expect("verification");
    assert_eq!((v.state, v.job_id), (VerificationState::Verified, again.id));
    assert_eq!(databases(&east).await, before);

    // The adapter deletes only a database carrying the job's tag.
    let ops = AwsRdsOperations::new(d.connector.clone());
    let account_view = cp.get_cloud_account(&p, &a).await.expect("account");
    let role = account_view.account.role().expect("role");
    let refused = ops
        .delete_verification_database(&role, EAST, &db("orders", false), (TAG_VERIFICATION, "job"))
        .await;
    assert!(matches!(refused, Err(Error::Conflict { .. })), "{refused:?}");
    let refused = ops
        .delete_verification_database(&role, EAST, &db("ledger", true), (TAG_VERIFICATION, "job"))
        .await;
    assert!(matches!(refused, Err(Error::Conflict { .. })), "{refused:?}");
    assert!(instance_exists(&east, "orders").await);
    assert_eq!(databases(&east).await, before);
}

/// The SQS adapter of the RDS work queue: messages arrive as JSON bodies, delayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_work_messages_go_through_sqs() {
    let Some(env) = arca_testenv::aws() else { return };
    let base = env.sdk_config().await;
    let (sqs, url) = sqs_queue(&base, "arca-rds-work").await;
    let q = SqsRdsWorkQueue::new(sqs.clone(), &url);
    let m = RdsWorkMessage {
        org_id: arca_core::ids::OrgId::new(),
        job_id: arca_core::ids::JobId::new(),
    };
    q.send(&m.clone().into(), Duration::ZERO).await.expect("send");
    q.send(&m.clone().into(), Duration::from_secs(3600))
        .await
        .expect("a long delay is capped, not refused");
    let bodies: Vec<RdsWorkMessage> = received(&sqs, &url).await;
    assert_eq!(bodies, vec![m], "the delayed one is not visible yet");
}
