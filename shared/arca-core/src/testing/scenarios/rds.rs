//! The RDS contract suite: definitions (with the policies' `usedBy`), runs that start an
//! AWS operation and are re-checked until done (the "still creating" path, through
//! [`FakeRds`]), copies (keep or delete the source, copy-only from the latest automated
//! snapshot, snapshots SKIPPED while a copy runs), restores (snapshot, cross-region copy,
//! point in time) and retention. Every item store runs it.

use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::control_plane::ControlPlane;
use crate::control_plane::RdsRunRequest;
use crate::ids::{CloudAccountId, RecoveryPointId};
use crate::model::auth::Principal;
use crate::model::cloud::account::{CloudAccountState, RoleRef, RoleStackConfig};
use crate::model::job::{JobState, JobType};
use crate::model::policy::{PolicySpec, ReferrerKind, ScheduleSpec};
use crate::model::rds::{
    RdsBackupDefinitionSpec, RdsCopySpec, RdsDatabaseRef, RdsRecoveryPointState, RdsRecoveryPointType,
    RdsRestoreSource, RdsRestoreSpec, RdsRestoreTarget, RdsTagSelector,
};
use crate::ports::item_store::ItemStore;
use crate::store::page::PageRequest;
use crate::testing::fakes::cloud::FakeCloud;
use crate::testing::fakes::rds::{FakeRds, FakeRdsQueue};
use crate::testing::{CONTRACT_NOW_SECS, contract_plane, linked_fake_account, new_org};

/// A run-now of only the copies, from the latest existing snapshots.
const COPY_ONLY: RdsRunRequest = RdsRunRequest {
    copy_only: true,
    retention: None,
};
const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

struct Rig {
    cp: ControlPlane,
    rds: Arc<FakeRds>,
    queue: Arc<FakeRdsQueue>,
    cloud: Arc<FakeCloud>,
    items: Arc<dyn ItemStore>,
}

fn stack() -> RoleStackConfig {
    RoleStackConfig {
        arca_account_id: Some("999988887777".into()),
        principal_arns: Vec::new(),
        template_url: None,
        notification_topic_arn: None,
        console_region: EAST.into(),
    }
}

impl Rig {
    fn new(items: Arc<dyn ItemStore>) -> Self {
        let rds = Arc::new(FakeRds::new());
        let queue = Arc::new(FakeRdsQueue::new());
        let cloud = Arc::new(FakeCloud::default());
        let cp = Self::plane(&items, &cloud, &rds, &queue, CONTRACT_NOW_SECS);
        Rig {
            cp,
            rds,
            queue,
            cloud,
            items,
        }
    }

    fn plane(
        items: &Arc<dyn ItemStore>,
        cloud: &Arc<FakeCloud>,
        rds: &Arc<FakeRds>,
        queue: &Arc<FakeRdsQueue>,
        at: u64,
    ) -> ControlPlane {
        contract_plane(items.clone(), at)
            .with_cloud(cloud.clone(), stack())
            .with_rds(rds.clone(), Some(queue.clone()))
    }

    /// The same deployment `secs` later.
    fn later(&self, secs: u64) -> ControlPlane {
        Self::plane(
            &self.items,
            &self.cloud,
            &self.rds,
            &self.queue,
            CONTRACT_NOW_SECS + secs,
        )
    }

    /// Delivers every queued work message (each to its step), as the RDS function does.
    async fn deliver(&self, cp: &ControlPlane) -> usize {
        let sent = self.queue.take();
        for (m, _) in &sent {
            cp.rds_step(&m.org_id, &m.job_id).await.expect("step");
        }
        sent.len()
    }

    async fn account(&self, p: &Principal, role_arn: &str) -> (CloudAccountId, RoleRef) {
        let (a, role) = linked_fake_account(&self.cp, &self.cloud, p, &[EAST, WEST], role_arn).await;
        assert_eq!(a.state, CloudAccountState::Active);
        (a.id, role)
    }
}

fn db(id: &str) -> RdsDatabaseRef {
    RdsDatabaseRef {
        identifier: id.into(),
        cluster: false,
    }
}

fn aurora(id: &str) -> RdsDatabaseRef {
    RdsDatabaseRef {
        identifier: id.into(),
        cluster: true,
    }
}

fn def_spec(account: CloudAccountId, dbs: Vec<RdsDatabaseRef>) -> RdsBackupDefinitionSpec {
    RdsBackupDefinitionSpec {
        name: "orders".into(),
        cloud_account_id: account,
        region: EAST.into(),
        databases: dbs,
        tag: None,
        policy_id: None,
        paused: false,
        copy: None,
        verification: None,
    }
}

fn copy_to_west(delete_source: bool) -> RdsCopySpec {
    RdsCopySpec {
        destination_region: WEST.into(),
        kms_key_id: None,
        delete_source_after_copy: delete_source,
        policy_id: None,
        retain_days: None,
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from(std::time::UNIX_EPOCH + Duration::from_secs(CONTRACT_NOW_SECS))
}

pub async fn rds_protection(items: Arc<dyn ItemStore>) {
    definitions_keep_used_by(items.clone()).await;
    runs_wait_for_aws_through_rechecks(items.clone()).await;
    copies_and_copy_only(items.clone()).await;
    restores(items.clone()).await;
    verifications(items.clone()).await;
    retention_deletes_expired_snapshots(items.clone()).await;
    retention_keeps_the_newest_keep_last(items).await;
}

/// CRUD with `usedBy` in the same transaction; the copy policy must be at most daily.
pub async fn definitions_keep_used_by(items: Arc<dyn ItemStore>) {
    let rig = Rig::new(items);
    let cp = &rig.cp;
    let (p, _, hourly) = new_org(cp, "rds-defs").await;
    let (account, _) = rig.account(&p, "arn:aws:iam::111122223333:role/arca-a").await;
    let daily = cp
        .create_policy(
            &p,
            PolicySpec {
                name: "daily".into(),
                timezone: "UTC".into(),
                schedules: vec![ScheduleSpec {
                    cron: "0 3 * * *".into(),
                    retain_days: 14,
                    keep_last: None,
                }],
                suspended: false,
            },
        )
        .await
        .expect("policy");
    let mut spec = def_spec(account, vec![db("orders"), aurora("ledger")]);
    spec.policy_id = Some(hourly.id);
    spec.copy = Some(RdsCopySpec {
        policy_id: Some(hourly.id),
        ..copy_to_west(false)
    });
    let err = cp.create_rds_backup_definition(&p, spec.clone()).await;
    assert!(
        matches!(&err, Err(Error::Invalid { field, .. }) if field == "copy.policyId"),
        "an hourly copy policy is refused: {err:?}"
    );
    spec.copy = Some(RdsCopySpec {
        policy_id: Some(daily.id),
        ..copy_to_west(false)
    });
    let def = cp.create_rds_backup_definition(&p, spec.clone()).await.expect("create");
    let used =
        |pol: &crate::model::policy::Policy| pol.used_by.iter().map(|r| (r.kind, r.id.clone())).collect::<Vec<_>>();
    let h = cp.get_policy(&p, &hourly.id).await.expect("get");
    assert_eq!(used(&h), [(ReferrerKind::RdsBackup, def.id.to_string())]);
    let d = cp.get_policy(&p, &daily.id).await.expect("get");
    assert_eq!(used(&d), [(ReferrerKind::RdsCopy, def.id.to_string())]);
    assert!(
        matches!(
            cp.delete_policy(&p, &daily.id, d.version).await,
            Err(Error::Conflict { .. })
        ),
        "a policy in use stays"
    );
    // A region the account does not work in, an unknown account: refused by field.
    let mut bad = spec.clone();
    bad.region = "ap-south-1".into();
    assert!(
        matches!(cp.create_rds_backup_definition(&p, bad).await, Err(Error::Invalid { field, .. }) if field == "region")
    );
    let mut bad = spec.clone();
    bad.cloud_account_id = CloudAccountId::new();
    assert!(
        matches!(cp.create_rds_backup_definition(&p, bad).await, Err(Error::Invalid { field, .. }) if field == "cloudAccountId")
    );
    // Dropping the copy releases the daily policy; pause and resume.
    spec.copy = None;
    let def = cp
        .update_rds_backup_definition(&p, &def.id, spec.clone(), def.version)
        .await
        .expect("update");
    assert!(used(&cp.get_policy(&p, &daily.id).await.expect("get")).is_empty());
    assert!(matches!(
        cp.update_rds_backup_definition(&p, &def.id, spec, 1).await,
        Err(Error::PreconditionFailed { .. })
    ));
    let paused = cp.set_rds_backup_paused(&p, &def.id, None, true).await.expect("pause");
    assert!(paused.spec.paused);
    // Schedules fire through dispatch: `<id>` backups, `<id>.copy` copies; paused skips.
    let fired = |definition_id: String, rule: u32| crate::model::schedule::ScheduleInput {
        org_id: p.org_id,
        definition_id,
        rule,
    };
    let skipped = cp
        .dispatch_scheduled(&fired(def.id.to_string(), 0))
        .await
        .expect("dispatch");
    assert_eq!(
        (skipped.job_type, skipped.state, skipped.reason.as_deref()),
        (JobType::RdsBackup, JobState::Skipped, Some("definition paused"))
    );
    let resumed = cp
        .set_rds_backup_paused(&p, &def.id, None, false)
        .await
        .expect("resume");
    let gone_row = cp
        .dispatch_scheduled(&fired(def.id.to_string(), 7))
        .await
        .expect("dispatch");
    assert_eq!(
        gone_row.reason.as_deref(),
        Some("schedule row 7 no longer exists in the policy")
    );
    let run = cp
        .dispatch_scheduled(&fired(def.id.to_string(), 0))
        .await
        .expect("dispatch");
    assert_eq!((run.job_type, run.state), (JobType::RdsBackup, JobState::Pending));
    assert_eq!(rig.queue.take().len(), 1, "handed to the RDS work queue");
    let copy_run = cp
        .dispatch_scheduled(&fired(crate::model::rds::copy_schedule_id(&def.id), 0))
        .await
        .expect("dispatch");
    assert_eq!(
        (copy_run.job_type, copy_run.state, copy_run.reason.as_deref()),
        (
            JobType::RdsCopy,
            JobState::Skipped,
            Some("the definition has no policy (on demand only)")
        ),
        "the copy policy was dropped above"
    );
    let paused = resumed;
    // Another org sees nothing.
    let (other, _, _) = new_org(cp, "rds-defs-other").await;
    assert!(matches!(
        cp.get_rds_backup_definition(&other, &def.id).await,
        Err(Error::NotFound { .. })
    ));
    cp.delete_rds_backup_definition(&p, &def.id, paused.version)
        .await
        .expect("delete");
    assert!(used(&cp.get_policy(&p, &hourly.id).await.expect("get")).is_empty());
}

/// A run starts the snapshots, records the job RUNNING and asks to be re-checked; while
/// AWS says `creating` it stays RUNNING; then the points are AVAILABLE and the job done.
/// Aurora clusters get cluster snapshots; tags carry the point's id and expiry.
pub async fn runs_wait_for_aws_through_rechecks(items: Arc<dyn ItemStore>) {
    let rig = Rig::new(items);
    let (p, _, _) = new_org(&rig.cp, "rds-runs").await;
    let (account, role) = rig.account(&p, "arn:aws:iam::111122223333:role/arca-runs").await;
    rig.rds.add_database(&role, EAST, &db("orders"), "postgres", &[], now());
    rig.rds
        .add_database(&role, EAST, &aurora("ledger"), "aurora-postgresql", &[], now());
    let def = rig
        .cp
        .create_rds_backup_definition(&p, def_spec(account, vec![db("orders"), aurora("ledger")]))
        .await
        .expect("create");
    rig.rds.hold_creating(2);
    let job = rig
        .cp
        .run_rds_backup_now(&p, &def.id, RdsRunRequest::default())
        .await
        .expect("run");
    assert_eq!((job.state, job.job_type), (JobState::Pending, JobType::RdsBackup));
    let sent = rig.queue.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, Duration::ZERO, "started at once");
    let step = rig.cp.rds_step(&p.org_id, &job.id).await.expect("start");
    assert_eq!(step.state, JobState::Running, "{:?}", step.activity);
    let calls = rig.rds.calls();
    assert!(calls.contains(&"create_snapshot".to_string()) && calls.contains(&"create_cluster_snapshot".to_string()));
    let again = rig.queue.take();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].1,
        crate::model::rds::RECHECK_DELAY,
        "re-checked later, not waited for"
    );
    let points = rig
        .cp
        .list_rds_recovery_points(&p, Some(def.id), &PageRequest::first(50))
        .await
        .expect("list")
        .items;
    assert_eq!(points.len(), 2);
    assert!(points.iter().all(|rp| rp.state == RdsRecoveryPointState::Creating));
    let rp = &points[0];
    let tags = rig
        .rds
        .snapshot_tags(&role, EAST, &rp.snapshot.identifier)
        .expect("the snapshot exists");
    assert_eq!(
        tags.get(crate::model::rds::TAG_RECOVERY_POINT),
        Some(&rp.id.to_string())
    );
    assert!(tags.contains_key(crate::model::rds::TAG_EXPIRES_AT));
    assert!(rp.snapshot.identifier.starts_with("arca-"));
    // Still creating at the next check (hold 2: the start's own check and this one).
    let step = rig.cp.rds_step(&p.org_id, &job.id).await.expect("check");
    assert_eq!(step.state, JobState::Running);
    assert_eq!(rig.deliver(&rig.cp).await, 1, "one re-check message per step");
    let done = rig.cp.get_job(&p, &job.id).await.expect("get");
    assert_eq!(done.state, JobState::Completed, "{:?}", done.activity);
    assert_eq!(done.counters.snapshots_completed, 2);
    assert!(rig.queue.take().is_empty(), "nothing more to check");
    let points = rig
        .cp
        .list_rds_recovery_points(&p, Some(def.id), &PageRequest::first(50))
        .await
        .expect("list")
        .items;
    assert!(points.iter().all(|rp| rp.state == RdsRecoveryPointState::Available));
    assert!(points.iter().any(|rp| rp.database.cluster && rp.snapshot.cluster));
    // A finished job's late message changes nothing.
    assert_eq!(
        rig.cp.rds_step(&p.org_id, &job.id).await.expect("late").version,
        done.version
    );

    // Tag selection: the databases carrying the tag when the run starts.
    rig.rds.hold_creating(0);
    rig.rds
        .add_database(&role, EAST, &db("billing"), "mysql", &[("backup", "arca")], now());
    let mut spec = def_spec(account, vec![]);
    spec.tag = Some(RdsTagSelector {
        key: "backup".into(),
        value: "arca".into(),
    });
    let tagged = rig.cp.create_rds_backup_definition(&p, spec).await.expect("create");
    let cp = rig.later(10);
    let job = cp
        .run_rds_backup_now(&p, &tagged.id, RdsRunRequest::default())
        .await
        .expect("run");
    rig.deliver(&cp).await;
    let done = cp.get_job(&p, &job.id).await.expect("get");
    assert_eq!(done.state, JobState::Completed, "{:?}", done.activity);
    let work = done.rds.expect("rds work");
    assert_eq!(work.items.len(), 1);
    assert_eq!(work.items[0].database.identifier, "billing");

    // AWS refusing the snapshot fails the job, naming why.
    rig.rds.fail_next("InvalidDBInstanceState: backing-up");
    let cp = rig.later(20);
    let job = cp
        .run_rds_backup_now(&p, &tagged.id, RdsRunRequest::default())
        .await
        .expect("run");
    rig.deliver(&cp).await;
    let failed = cp.get_job(&p, &job.id).await.expect("get");
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.reason.unwrap_or_default().contains("backing-up"));
}

/// Copies: chained after a snapshot, keeping or deleting the source; copy-only copies the
/// latest existing (automated) snapshot; snapshots are SKIPPED while a copy runs.
pub async fn copies_and_copy_only(items: Arc<dyn ItemStore>) {
    let rig = Rig::new(items);
    let (p, _, _) = new_org(&rig.cp, "rds-copies").await;
    let (account, role) = rig.account(&p, "arn:aws:iam::111122223333:role/arca-copies").await;
    rig.rds.add_database(&role, EAST, &db("keep"), "postgres", &[], now());
    rig.rds.add_database(&role, EAST, &db("drop"), "postgres", &[], now());

    // Keep the source.
    let mut spec = def_spec(account, vec![db("keep")]);
    spec.copy = Some(copy_to_west(false));
    let keep = rig.cp.create_rds_backup_definition(&p, spec).await.expect("create");
    let job = rig
        .cp
        .run_rds_backup_now(&p, &keep.id, RdsRunRequest::default())
        .await
        .expect("run");
    rig.deliver(&rig.cp).await;
    let done = rig.cp.get_job(&p, &job.id).await.expect("get");
    assert_eq!(done.state, JobState::Completed, "{:?}", done.activity);
    assert_eq!(done.counters.copies_completed, 1);
    let points = rig
        .cp
        .list_rds_recovery_points(&p, Some(keep.id), &PageRequest::first(50))
        .await
        .expect("list")
        .items;
    let kinds: Vec<_> = points
        .iter()
        .map(|rp| (rp.rp_type, rp.snapshot.region.clone()))
        .collect();
    assert!(
        kinds.contains(&(RdsRecoveryPointType::Snapshot, EAST.into())),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(RdsRecoveryPointType::Copy, WEST.into())), "{kinds:?}");
    assert_eq!(rig.rds.snapshots(&role, EAST).len(), 1);
    assert_eq!(rig.rds.snapshots(&role, WEST).len(), 1);

    // Delete the source once copied.
    let mut spec = def_spec(account, vec![db("drop")]);
    spec.copy = Some(copy_to_west(true));
    let drop = rig.cp.create_rds_backup_definition(&p, spec).await.expect("create");
    let job = rig
        .cp
        .run_rds_backup_now(&p, &drop.id, RdsRunRequest::default())
        .await
        .expect("run");
    rig.deliver(&rig.cp).await;
    assert_eq!(
        rig.cp.get_job(&p, &job.id).await.expect("get").state,
        JobState::Completed
    );
    let points = rig
        .cp
        .list_rds_recovery_points(&p, Some(drop.id), &PageRequest::first(50))
        .await
        .expect("list")
        .items;
    assert_eq!(points.len(), 1, "only the copy is left");
    assert_eq!(points[0].rp_type, RdsRecoveryPointType::Copy);
    assert!(
        !rig.rds
            .snapshots(&role, EAST)
            .iter()
            .any(|s| s.starts_with("arca-drop")),
        "the source snapshot is deleted in AWS"
    );

    // Copy only: the latest existing snapshot, automated included; no new snapshot.
    rig.rds.add_automated_snapshot(
        &role,
        EAST,
        &db("keep"),
        "rds:keep-2030-01-02-00-00",
        now() + chrono::Duration::days(1),
    );
    let cp = rig.later(100);
    let before = rig.rds.snapshots(&role, EAST).len();
    let job = cp.run_rds_backup_now(&p, &keep.id, COPY_ONLY).await.expect("copy only");
    assert_eq!(job.job_type, JobType::RdsCopy);
    rig.deliver(&cp).await;
    let done = cp.get_job(&p, &job.id).await.expect("get");
    assert_eq!(done.state, JobState::Completed, "{:?}", done.activity);
    assert_eq!(rig.rds.snapshots(&role, EAST).len(), before, "no new snapshot taken");
    assert!(
        rig.rds
            .snapshots(&role, WEST)
            .iter()
            .any(|s| s.starts_with("keep-2030-01-02-00-00-copy-")),
        "the automated snapshot was copied: {:?}",
        rig.rds.snapshots(&role, WEST)
    );
    // Copy only with nothing to copy (the source was deleted after its copy): FAILED, said why.
    let nothing = cp.run_rds_backup_now(&p, &drop.id, COPY_ONLY).await.expect("copy only");
    rig.deliver(&cp).await;
    let failed = cp.get_job(&p, &nothing.id).await.expect("get");
    assert_eq!(failed.state, JobState::Failed);
    assert!(
        failed
            .reason
            .unwrap_or_default()
            .contains("no available snapshot to copy"),
        "{:?}",
        failed.activity
    );

    // While a copy of a database runs, its snapshot jobs are SKIPPED with that reason.
    rig.rds.hold_creating(5);
    let cp = rig.later(200);
    let copying = cp.run_rds_backup_now(&p, &keep.id, COPY_ONLY).await.expect("copy only");
    rig.deliver(&cp).await;
    assert_eq!(cp.get_job(&p, &copying.id).await.expect("get").state, JobState::Running);
    rig.queue.take();
    let cp = rig.later(300);
    let snap = cp
        .run_rds_backup_now(&p, &keep.id, RdsRunRequest::default())
        .await
        .expect("run");
    rig.deliver(&cp).await;
    let skipped = cp.get_job(&p, &snap.id).await.expect("get");
    assert_eq!(skipped.state, JobState::Skipped);
    let reason = skipped.reason.unwrap_or_default();
    assert!(
        reason.contains("a copy of instance keep is in progress") && reason.contains(&copying.id.to_string()),
        "{reason}"
    );
    // Copy-only without copy settings is refused.
    let plain = rig
        .cp
        .create_rds_backup_definition(&p, def_spec(account, vec![db("keep")]))
        .await
        .expect("create");
    assert!(matches!(
        rig.cp.run_rds_backup_now(&p, &plain.id, RdsRunRequest { copy_only: true, retention: None }).await,
        Err(Error::Invalid { field, .. }) if field == "copyOnly"
    ));
}

/// Restores from a snapshot (instance and Aurora cluster), from a copy in another region
/// (subnet group required), and to a point in time inside the restorable window.
pub async fn restores(items: Arc<dyn ItemStore>) {
    let rig = Rig::new(items);
    let (p, _, _) = new_org(&rig.cp, "rds-restores").await;
    let (account, role) = rig.account(&p, "arn:aws:iam::111122223333:role/arca-restores").await;
    rig.rds.add_database(&role, EAST, &db("orders"), "postgres", &[], now());
    rig.rds
        .add_database(&role, EAST, &aurora("ledger"), "aurora-mysql", &[], now());
    let mut spec = def_spec(account, vec![db("orders"), aurora("ledger")]);
    spec.copy = Some(copy_to_west(false));
    let def = rig.cp.create_rds_backup_definition(&p, spec).await.expect("create");
    rig.cp
        .run_rds_backup_now(&p, &def.id, RdsRunRequest::default())
        .await
        .expect("run");
    rig.deliver(&rig.cp).await;
    let points = rig
        .cp
        .list_rds_recovery_points(&p, Some(def.id), &PageRequest::first(50))
        .await
        .expect("list")
        .items;
    let find = |t: RdsRecoveryPointType, cluster: bool| {
        points
            .iter()
            .find(|rp| rp.rp_type == t && rp.database.cluster == cluster)
            .expect("point")
            .clone()
    };
    let target = |id: &str| RdsRestoreTarget {
        identifier: id.into(),
        instance_class: Some("db.t3.micro".into()),
        ..Default::default()
    };

    // From a snapshot, with the "still creating" path.
    rig.rds.hold_creating(1);
    let rp = find(RdsRecoveryPointType::Snapshot, false);
    let job = rig
        .cp
        .create_rds_restore(
            &p,
            RdsRestoreSpec {
                cloud_account_id: account,
                source: RdsRestoreSource::RecoveryPoint {
                    recovery_point_id: rp.id,
                },
                target: RdsRestoreTarget {
                    security_group_ids: vec!["sg-1".into()],
                    multi_az: Some(true),
                    ..target("orders-restored")
                },
            },
        )
        .await
        .expect("restore");
    assert_eq!(job.job_type, JobType::RdsRestore);
    rig.deliver(&rig.cp).await;
    assert_eq!(rig.cp.get_job(&p, &job.id).await.expect("get").state, JobState::Running);
    rig.deliver(&rig.cp).await;
    let done = rig.cp.get_job(&p, &job.id).await.expect("get");
    assert_eq!(done.state, JobState::Completed, "{:?}", done.activity);
    rig.rds.hold_creating(0);
    let r = rig.rds.restores().pop().expect("a restore");
    assert_eq!(r.snapshot.as_deref(), Some(rp.snapshot.identifier.as_str()));
    assert_eq!(r.target.multi_az, Some(true));

    // Aurora: a cluster restore, the engine taken from the point.
    let rp = find(RdsRecoveryPointType::Snapshot, true);
    let job = rig
        .cp
        .create_rds_restore(
            &p,
            RdsRestoreSpec {
                cloud_account_id: account,
                source: RdsRestoreSource::RecoveryPoint {
                    recovery_point_id: rp.id,
                },
                target: target("ledger-restored"),
            },
        )
        .await
        .expect("restore");
    rig.deliver(&rig.cp).await;
    assert_eq!(
        rig.cp.get_job(&p, &job.id).await.expect("get").state,
        JobState::Completed
    );
    let r = rig.rds.restores().pop().expect("a restore");
    assert!(r.cluster);
    assert_eq!(r.target.engine.as_deref(), Some("aurora-mysql"));

    // Cross-region: a copy restores in its region, and needs a subnet group there.
    let copy = find(RdsRecoveryPointType::Copy, false);
    let source = RdsRestoreSource::RecoveryPoint {
        recovery_point_id: copy.id,
    };
    let err = rig
        .cp
        .create_rds_restore(
            &p,
            RdsRestoreSpec {
                cloud_account_id: account,
                source: source.clone(),
                target: target("orders-west"),
            },
        )
        .await;
    assert!(
        matches!(&err, Err(Error::Invalid { field, .. }) if field == "target.subnetGroup"),
        "{err:?}"
    );
    let job = rig
        .cp
        .create_rds_restore(
            &p,
            RdsRestoreSpec {
                cloud_account_id: account,
                source,
                target: RdsRestoreTarget {
                    subnet_group: Some("west-subnets".into()),
                    ..target("orders-west")
                },
            },
        )
        .await
        .expect("restore");
    assert_eq!(job.rds.as_ref().map(|w| w.region.as_str()), Some(WEST));
    rig.deliver(&rig.cp).await;
    assert_eq!(
        rig.cp.get_job(&p, &job.id).await.expect("get").state,
        JobState::Completed
    );

    // Point in time: inside the window, or refused naming the field.
    let pitr = |t: Option<chrono::DateTime<chrono::Utc>>, latest: bool, id: &str| RdsRestoreSpec {
        cloud_account_id: account,
        source: RdsRestoreSource::PointInTime {
            region: EAST.into(),
            database: db("orders"),
            restore_time: t,
            use_latest_restorable_time: latest,
        },
        target: target(id),
    };
    let err = rig
        .cp
        .create_rds_restore(&p, pitr(Some(now() + chrono::Duration::hours(1)), false, "orders-pitr"))
        .await;
    assert!(
        matches!(&err, Err(Error::Invalid { field, .. }) if field == "source.restoreTime"),
        "{err:?}"
    );
    assert!(matches!(
        rig.cp.create_rds_restore(&p, pitr(None, false, "orders-pitr")).await,
        Err(Error::Invalid { .. })
    ));
    let job = rig
        .cp
        .create_rds_restore(&p, pitr(Some(now() - chrono::Duration::hours(2)), false, "orders-pitr"))
        .await
        .expect("pitr");
    rig.deliver(&rig.cp).await;
    assert_eq!(
        rig.cp.get_job(&p, &job.id).await.expect("get").state,
        JobState::Completed
    );
    let r = rig.rds.restores().pop().expect("a restore");
    assert_eq!(r.source_database.as_deref(), Some("orders"));
    let job = rig
        .cp
        .create_rds_restore(&p, pitr(None, true, "orders-latest"))
        .await
        .expect("latest");
    rig.deliver(&rig.cp).await;
    assert_eq!(
        rig.cp.get_job(&p, &job.id).await.expect("get").state,
        JobState::Completed
    );
    assert!(rig.rds.restores().pop().expect("a restore").use_latest_restorable_time);
    // A snapshot that does not exist is refused up front.
    let err = rig
        .cp
        .create_rds_restore(
            &p,
            RdsRestoreSpec {
                cloud_account_id: account,
                source: RdsRestoreSource::Snapshot {
                    region: EAST.into(),
                    identifier: "nope".into(),
                    cluster: false,
                },
                target: target("x"),
            },
        )
        .await;
    assert!(
        matches!(&err, Err(Error::Invalid { field, .. }) if field == "source.identifier"),
        "{err:?}"
    );
}

/// Retention deletes expired snapshots and copies in AWS, then their records.
/// Restore verification: after each backup its snapshot is restored to a temporary,
/// tagged database of the default class, which is deleted once `available` and the point
/// VERIFIED; again on demand (409 while one runs); a restore AWS refuses, or a canceled
/// verification, is FAILED with why and leaves no database; a copy in another region
/// needs a subnet group; only a database carrying the job's tag is ever deleted.
pub async fn verifications(items: Arc<dyn ItemStore>) {
    use crate::error::ConflictKind;
    use crate::model::rds::{RdsRecoveryPoint, RdsVerificationSpec, TAG_VERIFICATION};
    use crate::model::verification::{VerificationState, VerifyWhen};
    use crate::ports::rds::RdsOperations;

    let rig = Rig::new(items);
    let (p, _, _) = new_org(&rig.cp, "rds-verify").await;
    let (account, role) = rig.account(&p, "arn:aws:iam::111122223333:role/arca-verify").await;
    rig.rds.add_database(&role, EAST, &db("orders"), "postgres", &[], now());
    let mut spec = def_spec(account, vec![db("orders")]);
    spec.copy = Some(copy_to_west(false));
    spec.verification = Some(RdsVerificationSpec {
        when: VerifyWhen::AfterBackup,
        instance_class: None,
        subnet_group: None,
        security_group_ids: vec![],
    });
    let def = rig.cp.create_rds_backup_definition(&p, spec).await.expect("create");
    let backup = rig
        .cp
        .run_rds_backup_now(&p, &def.id, RdsRunRequest::default())
        .await
        .expect("run");
    assert_eq!(rig.deliver(&rig.cp).await, 1);
    let backup = rig.cp.get_job(&p, &backup.id).await.expect("get");
    assert_eq!(backup.state, JobState::Completed, "{:?}", backup.activity);
    let point = |t: RdsRecoveryPointType| {
        let cp = &rig.cp;
        let p = &p;
        async move {
            cp.list_rds_recovery_points(p, Some(def.id), &PageRequest::first(50))
                .await
                .expect("list")
                .items
                .into_iter()
                .find(|rp| rp.rp_type == t)
                .expect("point")
        }
    };
    let rp = point(RdsRecoveryPointType::Snapshot).await;
    let v = rp.verification.clone().expect("verification started after the backup");
    assert_eq!(v.state, VerificationState::Running);
    assert!(v.database.identifier.starts_with("arca-verify-"), "{:?}", v.database);
    assert!(
        point(RdsRecoveryPointType::Copy).await.verification.is_none(),
        "copies are verified on demand only"
    );
    // The verification job: restore, available, delete, VERIFIED.
    assert_eq!(rig.deliver(&rig.cp).await, 1);
    let vjob = rig.cp.get_job(&p, &v.job_id).await.expect("get");
    assert_eq!(
        (vjob.job_type, vjob.state, vjob.recovery_point_id),
        (JobType::RdsRestore, JobState::Completed, Some(rp.id)),
        "{:?}",
        vjob.activity
    );
    let request = rig.rds.restores().pop().expect("a restore");
    assert_eq!(request.target.identifier, v.database.identifier);
    assert_eq!(request.target.instance_class.as_deref(), Some("db.t3.micro"));
    assert_eq!(request.target.multi_az, Some(false));
    assert_eq!(request.snapshot.as_deref(), Some(rp.snapshot.identifier.as_str()));
    assert_eq!(request.tags.get(TAG_VERIFICATION), Some(&v.job_id.to_string()));
    assert!(rig.rds.calls().contains(&"delete_verification_database".to_string()));
    assert_eq!(
        rig.rds.databases(&role, EAST),
        ["orders"],
        "the temporary database is gone"
    );
    let rp = point(RdsRecoveryPointType::Snapshot).await;
    let done = rp.verification.clone().expect("verification");
    assert_eq!((done.state, done.job_id), (VerificationState::Verified, v.job_id));
    assert!(done.ended_at.is_some() && done.reasons.is_empty());

    // On demand, held in `creating`: RUNNING, and a second request is a 409.
    rig.rds.hold_creating(2);
    let job = rig.cp.verify_rds_recovery_point(&p, &rp.id).await.expect("verify");
    assert_eq!(rig.deliver(&rig.cp).await, 1);
    let running = rig.cp.get_rds_recovery_point(&p, &rp.id).await.expect("get");
    assert_eq!(
        running.verification.as_ref().map(|v| (v.state, v.job_id)),
        Some((VerificationState::Running, job.id))
    );
    assert!(
        matches!(
            rig.cp.verify_rds_recovery_point(&p, &rp.id).await,
            Err(Error::Conflict {
                kind: ConflictKind::RecoveryPointBusy,
                ..
            })
        ),
        "one verification of a point at a time"
    );
    while rig.deliver(&rig.cp).await > 0 {}
    let again = rig.cp.get_rds_recovery_point(&p, &rp.id).await.expect("get");
    assert_eq!(again.verification.map(|v| v.state), Some(VerificationState::Verified));

    // Canceled while restoring: the temporary database is deleted, the point FAILED.
    rig.rds.hold_creating(5);
    let job = rig.cp.verify_rds_recovery_point(&p, &rp.id).await.expect("verify");
    assert_eq!(rig.deliver(&rig.cp).await, 1);
    assert_eq!(rig.rds.databases(&role, EAST).len(), 2, "restoring");
    rig.cp.cancel_job(&p, &job.id, None).await.expect("cancel");
    while rig.deliver(&rig.cp).await > 0 {}
    rig.cp.rds_step(&p.org_id, &job.id).await.expect("step");
    assert_eq!(
        rig.cp.get_job(&p, &job.id).await.expect("get").state,
        JobState::Canceled
    );
    assert_eq!(rig.rds.databases(&role, EAST), ["orders"]);
    let canceled = rig.cp.get_rds_recovery_point(&p, &rp.id).await.expect("get");
    let canceled = canceled.verification.expect("verification");
    assert_eq!(canceled.state, VerificationState::Failed);
    assert_eq!(canceled.reasons, ["the verification was canceled"]);

    // AWS refusing the restore: FAILED, naming why.
    rig.rds.hold_creating(0);
    rig.rds.fail_next("InsufficientDBInstanceCapacity: no db.t3.micro here");
    rig.cp.verify_rds_recovery_point(&p, &rp.id).await.expect("verify");
    while rig.deliver(&rig.cp).await > 0 {}
    let failed: RdsRecoveryPoint = rig.cp.get_rds_recovery_point(&p, &rp.id).await.expect("get");
    let failed = failed.verification.expect("verification");
    assert_eq!(failed.state, VerificationState::Failed);
    assert!(
        failed.reasons[0].contains("InsufficientDBInstanceCapacity"),
        "{:?}",
        failed.reasons
    );

    // A copy in another region needs a subnet group of that region.
    let copy = point(RdsRecoveryPointType::Copy).await;
    assert!(matches!(
        rig.cp.verify_rds_recovery_point(&p, &copy.id).await,
        Err(Error::Conflict { kind: ConflictKind::RestoreNotPossible, message }) if message.contains("subnetGroup")
    ));
    // Only a database carrying the job's tag is deleted.
    assert!(matches!(
        rig.rds
            .delete_verification_database(&role, EAST, &db("orders"), (TAG_VERIFICATION, "job"))
            .await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(rig.rds.databases(&role, EAST), ["orders"]);
}

pub async fn retention_deletes_expired_snapshots(items: Arc<dyn ItemStore>) {
    let rig = Rig::new(items);
    let (p, _, _) = new_org(&rig.cp, "rds-retention").await;
    let (account, role) = rig.account(&p, "arn:aws:iam::111122223333:role/arca-retention").await;
    rig.rds.add_database(&role, EAST, &db("orders"), "postgres", &[], now());
    let mut spec = def_spec(account, vec![db("orders")]);
    spec.copy = Some(RdsCopySpec {
        retain_days: Some(30),
        ..copy_to_west(false)
    });
    let def = rig.cp.create_rds_backup_definition(&p, spec).await.expect("create");
    rig.cp
        .run_rds_backup_now(
            &p,
            &def.id,
            RdsRunRequest {
                copy_only: false,
                retention: Some(crate::model::policy::Retention {
                    retain_days: 3,
                    keep_last: None,
                }),
            },
        )
        .await
        .expect("run");
    rig.deliver(&rig.cp).await;
    let list = |cp: ControlPlane| {
        let p = p.clone();
        async move {
            cp.list_rds_recovery_points(&p, Some(def.id), &PageRequest::first(50))
                .await
                .expect("list")
                .items
        }
    };
    assert_eq!(list(rig.cp.clone()).await.len(), 2);
    // Nothing is due yet.
    let report = rig.later(86_400).rds_retention_sweep().await.expect("sweep");
    assert!(report.deleted.is_empty(), "{report:?}");
    // After 3 days the snapshot goes; the copy (30 days) stays.
    let report = rig.later(4 * 86_400).rds_retention_sweep().await.expect("sweep");
    assert!(!report.deleted.is_empty(), "{report:?}");
    let left = list(rig.later(4 * 86_400)).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].rp_type, RdsRecoveryPointType::Copy);
    assert!(rig.rds.snapshots(&role, EAST).is_empty(), "deleted in AWS");
    assert_eq!(rig.rds.snapshots(&role, WEST).len(), 1);
    // After 31 days the copy goes too.
    rig.later(31 * 86_400).rds_retention_sweep().await.expect("sweep");
    assert!(list(rig.later(31 * 86_400)).await.is_empty());
    assert!(rig.rds.snapshots(&role, WEST).is_empty());
}

/// `keepLast` holds the newest available snapshots and, counted apart, the newest copies
/// of a database past their expiry (a definition whose runs stopped keeps its last
/// ones); the older ones are deleted in AWS and in the store.
pub async fn retention_keeps_the_newest_keep_last(items: Arc<dyn ItemStore>) {
    const DAY: u64 = 86_400;
    let rig = Rig::new(items);
    let (p, _, _) = new_org(&rig.cp, "rds-keep-last").await;
    let (account, role) = rig.account(&p, "arn:aws:iam::111122223333:role/arca-keep-last").await;
    rig.rds.add_database(&role, EAST, &db("orders"), "postgres", &[], now());
    let mut spec = def_spec(account, vec![db("orders")]);
    spec.copy = Some(copy_to_west(false));
    let def = rig.cp.create_rds_backup_definition(&p, spec).await.expect("create");
    // One run a day for four days, each point expiring a day later; then the runs stop.
    for day in 0..4 {
        let cp = rig.later(day * DAY);
        cp.run_rds_backup_now(
            &p,
            &def.id,
            RdsRunRequest {
                copy_only: false,
                retention: Some(crate::model::policy::Retention {
                    retain_days: 1,
                    keep_last: Some(2),
                }),
            },
        )
        .await
        .expect("run");
        while rig.deliver(&cp).await > 0 {}
    }
    let list = |cp: ControlPlane| {
        let p = p.clone();
        async move {
            let mut points = cp
                .list_rds_recovery_points(&p, Some(def.id), &PageRequest::first(50))
                .await
                .expect("list")
                .items;
            points.sort_by_key(|rp| rp.created_at);
            points
        }
    };
    let points = list(rig.later(4 * DAY)).await;
    assert_eq!(points.len(), 8, "a snapshot and a copy a day: {points:?}");
    assert!(
        points
            .iter()
            .all(|rp| rp.state == RdsRecoveryPointState::Available && rp.keep_last == Some(2)),
        "{points:?}"
    );
    let of = |t: RdsRecoveryPointType| -> Vec<_> { points.iter().filter(|rp| rp.rp_type == t).collect() };
    let (snaps, copies) = (of(RdsRecoveryPointType::Snapshot), of(RdsRecoveryPointType::Copy));
    assert_eq!((snaps.len(), copies.len()), (4, 4));
    // Ten days on, every point has expired: the two newest of each type stay. The sweep
    // is cross-tenant and the store is shared with the other tests: look at ours only.
    let ours = |id: &RecoveryPointId| points.iter().any(|rp| rp.id == *id);
    let report = rig.later(10 * DAY).rds_retention_sweep().await.expect("sweep");
    let mut deleted: Vec<_> = report.deleted.iter().copied().filter(ours).collect();
    deleted.sort();
    let mut want: Vec<_> = [snaps[0], snaps[1], copies[0], copies[1]]
        .iter()
        .map(|rp| rp.id)
        .collect();
    want.sort();
    assert_eq!(deleted, want, "{report:?}");
    let kept_ours: Vec<_> = report.kept.iter().filter(|(id, _)| ours(id)).collect();
    let mut kept: Vec<_> = kept_ours.iter().map(|(id, _)| *id).collect();
    kept.sort();
    let mut newest: Vec<_> = [snaps[2], snaps[3], copies[2], copies[3]]
        .iter()
        .map(|rp| rp.id)
        .collect();
    newest.sort();
    assert_eq!(kept, newest, "{report:?}");
    assert!(
        kept_ours
            .iter()
            .all(|(_, why)| why.contains("among the newest keepLast")),
        "{report:?}"
    );
    let mut left: Vec<_> = list(rig.later(10 * DAY)).await.iter().map(|rp| rp.id).collect();
    left.sort();
    assert_eq!(left, newest);
    // Deleted in AWS too: each region holds exactly the kept snapshots.
    let names = |pts: &[&crate::model::rds::RdsRecoveryPoint]| -> Vec<String> {
        let mut n: Vec<_> = pts.iter().map(|rp| rp.snapshot.identifier.clone()).collect();
        n.sort();
        n
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(rig.rds.snapshots(&role, EAST)), names(&snaps[2..]));
    assert_eq!(sorted(rig.rds.snapshots(&role, WEST)), names(&copies[2..]));
    // Later sweeps keep them still: nothing newer pushes them out.
    let report = rig.later(40 * DAY).rds_retention_sweep().await.expect("sweep");
    assert!(!report.deleted.iter().any(ours), "{report:?}");
    assert_eq!(report.kept.iter().filter(|(id, _)| ours(id)).count(), 4, "{report:?}");
}
