//! The RDS function over a control plane on redb with fakes: an SQS batch of work
//! messages steps each job; a job still creating is re-queued with a delay, not waited
//! for; a record that fails is reported alone (`batchItemFailures`); a job that is gone
//! is dropped. EKS re-creations ride the same queue: their messages step them.

use std::sync::Arc;
use std::time::SystemTime;

use arca_core::control_plane::{ControlPlane, ControlPlaneConfig};
use arca_core::ids::{EksRecreationId, RecoveryPointId};
use arca_core::model::cloud::account::RoleStackConfig;
use arca_core::model::cloud::ebs::EksRecreation;
use arca_core::model::cloud::inventory::EksCluster;
use arca_core::model::job::{Job, JobState, JobTrigger, JobType};
use arca_core::model::plan::PlanLimits;
use arca_core::model::rds::{RECHECK_DELAY, RdsBackupDefinitionSpec, RdsDatabaseRef};
use arca_core::ports::SystemClock;
use arca_core::ports::cloud::CloudConnector;
use arca_core::ports::rds::{AwsWorkMessage, EksRecreationWorkMessage, RdsWorkMessage};
use arca_core::store::Store;
use arca_core::testing::fakes::cloud::FakeCloud;
use arca_core::testing::fakes::rds::{FakeRds, FakeRdsQueue};
use arca_core::testing::{linked_fake_account, new_org};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::111122223333:role/arca-fn";

/// A deployment on redb in a temporary directory (kept while the `TempDir` lives) with the
/// fakes of linked accounts, `rds` and the RDS work queue.
struct Deployment {
    _dir: tempfile::TempDir,
    cp: ControlPlane,
    cloud: Arc<FakeCloud>,
    queue: Arc<FakeRdsQueue>,
}

fn deployment(rds: Arc<FakeRds>) -> Deployment {
    let dir = tempfile::tempdir().expect("tempdir");
    let items = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).expect("redb"));
    let cloud = Arc::new(FakeCloud::default());
    let queue = Arc::new(FakeRdsQueue::new());
    let cp = ControlPlane::new(
        Store::new(items),
        PlanLimits::default(),
        Arc::new(SystemClock),
        ControlPlaneConfig {
            signup_open: true,
            ..Default::default()
        },
    )
    .with_cloud(cloud.clone(), RoleStackConfig::default())
    .with_rds(rds, Some(queue.clone()));
    Deployment {
        _dir: dir,
        cp,
        cloud,
        queue,
    }
}

fn batch(messages: &[(&str, &RdsWorkMessage)]) -> Value {
    json!({ "Records": messages.iter().map(|(id, m)| json!({
        "messageId": id, "body": serde_json::to_string(m).expect("json")
    })).collect::<Vec<_>>() })
}

#[tokio::test]
async fn a_batch_steps_each_job_and_reports_failures_alone() {
    let rds = Arc::new(FakeRds::new());
    let Deployment { _dir, cp, cloud, queue } = deployment(rds.clone());
    let (p, _, _) = new_org(&cp, "rds-fn").await;
    let (a, role) = linked_fake_account(&cp, &cloud, &p, &["us-east-1"], ROLE).await;
    let db = RdsDatabaseRef {
        identifier: "orders".into(),
        cluster: false,
    };
    let now = chrono::DateTime::<chrono::Utc>::from(SystemTime::now());
    rds.add_database(&role, "us-east-1", &db, "postgres", &[], now);
    let def = cp
        .create_rds_backup_definition(
            &p,
            RdsBackupDefinitionSpec {
                name: "orders".into(),
                cloud_account_id: a.id,
                region: "us-east-1".into(),
                databases: vec![db],
                tag: None,
                policy_id: None,
                paused: false,
                copy: None,
                verification: None,
            },
        )
        .await
        .unwrap();
    rds.hold_creating(2);
    let job = cp.run_rds_backup_now(&p, &def.id, Default::default()).await.unwrap();
    let (start, _) = queue.take().pop().unwrap();

    // Not an RDS job: its record fails alone; a job that is gone is dropped.
    let stray = cp
        .store()
        .create(Job::pending(p.org_id, JobType::K8sBackup, JobTrigger::Manual, now))
        .await
        .unwrap();
    let stray = RdsWorkMessage {
        org_id: p.org_id,
        job_id: stray.id,
    };
    let gone = RdsWorkMessage {
        org_id: p.org_id,
        job_id: arca_core::ids::JobId::new(),
    };
    let out = arca_fn_rds::run(
        &cp,
        batch(&[("m-start", &start), ("m-stray", &stray), ("m-gone", &gone)]),
    )
    .await
    .unwrap();
    assert_eq!(
        out["batchItemFailures"],
        json!([{ "itemIdentifier": "m-stray" }]),
        "{out}"
    );
    assert_eq!(out["steps"][0]["state"], "RUNNING");
    let (recheck, delay) = queue.take().pop().expect("a re-check");
    assert_eq!(delay, RECHECK_DELAY, "checked again later, not waited for");

    // Still creating at the next delivery; done at the one after.
    arca_fn_rds::run(&cp, batch(&[("m-2", &recheck)])).await.unwrap();
    assert_eq!(cp.get_job(&p, &job.id).await.unwrap().state, JobState::Running);
    let (recheck, _) = queue.take().pop().expect("another re-check");
    let out = arca_fn_rds::handle(&cp, serde_json::to_value(&recheck).unwrap())
        .await
        .unwrap();
    assert_eq!(out["steps"][0]["state"], "COMPLETED", "{out}");
    assert!(queue.take().is_empty());
}

/// An EKS re-creation's messages in a batch beside an RDS job's: each goes to its step.
/// CREATING is checked again later; a cluster deleted meanwhile fails the re-creation;
/// a duplicate of its message, or one for a re-creation that is gone, changes nothing.
#[tokio::test]
async fn eks_recreation_messages_step_the_recreation() {
    let Deployment { _dir, cp, cloud, queue } = deployment(Arc::new(FakeRds::new()));
    let (p, _, _) = new_org(&cp, "eks-fn").await;
    let (a, role) = linked_fake_account(&cp, &cloud, &p, &["us-east-1"], ROLE).await;
    // What `recreate_eks` leaves behind: the cluster asked of EKS and the record.
    cloud.eks_takes(3);
    cloud
        .create_eks_cluster(&role, "us-east-1", "restored", &EksCluster::default())
        .await
        .unwrap();
    let now = chrono::DateTime::<chrono::Utc>::from(SystemTime::now());
    let r = cp
        .store()
        .create(EksRecreation::creating_cluster(
            EksRecreationId::new(),
            p.org_id,
            RecoveryPointId::new(),
            a.id,
            "us-east-1".into(),
            "restored".into(),
            now,
        ))
        .await
        .unwrap();
    let message: AwsWorkMessage = EksRecreationWorkMessage {
        org_id: p.org_id,
        eks_recreation_id: r.id,
    }
    .into();
    let gone_job = RdsWorkMessage {
        org_id: p.org_id,
        job_id: arca_core::ids::JobId::new(),
    };
    let body = |m: &AwsWorkMessage| serde_json::to_string(m).unwrap();
    let both = json!({ "Records": [
        { "messageId": "m-eks", "body": body(&message) },
        { "messageId": "m-gone", "body": serde_json::to_string(&gone_job).unwrap() },
    ]});
    let out = arca_fn_rds::run(&cp, both).await.unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    assert_eq!(
        out["steps"],
        json!([{ "eksRecreationId": r.id, "state": "CREATING_CLUSTER" }])
    );
    let (recheck, delay) = queue.take_eks().pop().expect("a re-check");
    assert_eq!(
        delay,
        arca_core::control_plane::EKS_RECHECK_DELAY,
        "checked again later, not waited for"
    );
    assert!(queue.take().is_empty(), "the gone job's message is dropped");

    // Deleted in the console meanwhile.
    cloud.delete_eks_cluster("us-east-1", "restored");
    let out = arca_fn_rds::handle(
        &cp,
        serde_json::to_value(AwsWorkMessage::from(recheck.clone())).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(out["steps"][0]["state"], "FAILED", "{out}");
    let failed = cp.get_eks_recreation(&p, &r.id).await.unwrap();
    assert_eq!(failed.error.as_deref(), Some("the EKS cluster no longer exists"));
    assert!(queue.take_eks().is_empty(), "nothing more to check");

    // A duplicate of the message, and one for a re-creation that never was.
    let never: AwsWorkMessage = EksRecreationWorkMessage {
        org_id: p.org_id,
        eks_recreation_id: EksRecreationId::new(),
    }
    .into();
    let out = arca_fn_rds::run(
        &cp,
        json!({ "Records": [
            { "messageId": "m-dup", "body": body(&recheck.into()) },
            { "messageId": "m-never", "body": body(&never) },
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    assert_eq!(out["steps"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(cp.get_eks_recreation(&p, &r.id).await.unwrap(), failed, "unchanged");
    assert!(queue.take_eks().is_empty());
}
