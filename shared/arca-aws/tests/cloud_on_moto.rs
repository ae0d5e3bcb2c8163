//! Linked accounts on moto: `AwsCloudConnector` assumes roles into two AWS accounts and
//! inventories two regions of each (moto keeps every account's state apart, which is what
//! proves the credentials really are the linked account's), then the control plane runs
//! linking and inventory end to end on DynamoDB.
//!
//! moto does not enforce trust policies or ExternalIds: rejection is covered by
//! `arca_core::testing::scenarios::cloud` with its fake. EKS re-creations' work messages cross SQS
//! and step the re-creation through the linked role.

mod common;

use std::sync::Arc;

use std::time::Duration;

use arca_aws::{AwsCloudConnector, SqsRdsWorkQueue};
use arca_core::ids::{EksRecreationId, RecoveryPointId};
use arca_core::model::cloud::AwsResource;
use arca_core::model::cloud::account::{CloudAccountState, RoleRef};
use arca_core::model::cloud::ebs::{EksRecreation, EksRecreationState};
use arca_core::ports::SystemClock;
use arca_core::ports::cloud::CloudConnector;
use arca_core::ports::rds::{AwsWorkMessage, EksRecreationWorkMessage, RdsWorkQueue};
use aws_config::{Region, SdkConfig};
use common::{
    as_account, cloud_control_plane, dynamo_store, fresh_account, link_account, postgres_instance, received, sign_up,
    sqs_queue,
};

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// Seeds one account and region: an RDS instance with a manual snapshot, an EBS volume,
/// and in the first region an Aurora cluster with a cluster snapshot and an EKS cluster
/// with a node group. Names carry account and region, so a mix-up shows.
async fn seed(config: &SdkConfig, account: &str, region: &str, first: bool) {
    let rds = aws_sdk_rds::Client::new(config);
    let db = format!("db-{account}-{region}");
    postgres_instance(&rds, &db)
        .storage_encrypted(true)
        .send()
        .await
        .expect("create db instance");
    rds.create_db_snapshot()
        .db_instance_identifier(&db)
        .db_snapshot_identifier(format!("{db}-manual"))
        .send()
        .await
        .expect("snapshot");
    aws_sdk_ec2::Client::new(config)
        .create_volume()
        .availability_zone(format!("{region}a"))
        .size(8)
        .send()
        .await
        .expect("volume");
    if !first {
        return;
    }
    let cluster = format!("aurora-{account}");
    rds.create_db_cluster()
        .db_cluster_identifier(&cluster)
        .engine("aurora-postgresql")
        .master_username("arca")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .expect("create db cluster");
    rds.create_db_cluster_snapshot()
        .db_cluster_identifier(&cluster)
        .db_cluster_snapshot_identifier(format!("{cluster}-manual"))
        .send()
        .await
        .expect("cluster snapshot");
    let eks = aws_sdk_eks::Client::new(config);
    let name = format!("eks-{account}");
    eks.create_cluster()
        .name(&name)
        .version("1.33")
        .role_arn(format!("arn:aws:iam::{account}:role/eks"))
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .subnet_ids("subnet-2")
                .build(),
        )
        .send()
        .await
        .expect("eks cluster");
    eks.create_nodegroup()
        .cluster_name(&name)
        .nodegroup_name("workers")
        .node_role(format!("arn:aws:iam::{account}:role/node"))
        .subnets("subnet-1")
        .instance_types("m6i.large")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(1)
                .max_size(3)
                .desired_size(2)
                .build(),
        )
        .labels("team", "payments")
        .send()
        .await
        .expect("node group");
}

/// The resources Arca found, sorted, without the automated snapshots (moto, like RDS,
/// takes one per instance and cluster, named by the time: checked apart).
fn keys(found: &[AwsResource]) -> Vec<(&'static str, String)> {
    let mut keys: Vec<_> = found
        .iter()
        .filter(|r| !matches!(r, AwsResource::RdsSnapshot(s) if s.snapshot_type.as_deref() == Some("automated")))
        .map(AwsResource::key)
        .collect();
    keys.sort();
    keys
}

fn automated(found: &[AwsResource]) -> Vec<String> {
    let mut sources: Vec<_> = found
        .iter()
        .filter_map(|r| match r {
            AwsResource::RdsSnapshot(s) if s.snapshot_type.as_deref() == Some("automated") => {
                assert!(s.identifier.starts_with("rds:"), "{s:?}");
                Some(s.source_identifier.clone())
            }
            _ => None,
        })
        .collect();
    sources.sort();
    sources
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_two_regions_through_assumed_roles() {
    let Some(env) = arca_testenv::aws() else { return };
    let base = env.sdk_config().await;
    let accounts = [fresh_account(0), format!("{}9", &fresh_account(0)[..11])];
    assert_ne!(accounts[0], accounts[1]);
    for account in &accounts {
        for (i, region) in REGIONS.iter().enumerate() {
            seed(&as_account(&base, account, region).await, account, region, i == 0).await;
        }
    }

    let connector = AwsCloudConnector::new(base.clone());
    for account in &accounts {
        let role = RoleRef {
            role_arn: format!("arn:aws:iam::{account}:role/arca-cross-account"),
            external_id: "arca-0123456789abcdef0123456789abcdef".into(),
        };
        assert_eq!(&connector.verify(&role).await.expect("verify"), account);
        let east = connector.discover(&role, "us-east-1").await.expect("discover");
        assert_eq!(
            keys(&east),
            vec![
                ("EBS_VOLUME", keys(&east)[0].1.clone()),
                ("EKS_CLUSTER", format!("eks-{account}")),
                ("RDS_CLUSTER", format!("aurora-{account}")),
                ("RDS_CLUSTER_SNAPSHOT", format!("aurora-{account}-manual")),
                ("RDS_INSTANCE", format!("db-{account}-us-east-1")),
                ("RDS_SNAPSHOT", format!("db-{account}-us-east-1-manual")),
            ],
            "{east:#?}"
        );
        assert_eq!(
            automated(&east),
            [format!("aurora-{account}"), format!("db-{account}-us-east-1")]
        );
        let west = connector.discover(&role, "eu-west-1").await.expect("discover");
        let west_keys = keys(&west);
        assert_eq!(west_keys.len(), 3, "{west:#?}");
        assert_eq!(automated(&west), [format!("db-{account}-eu-west-1")]);
        assert!(west_keys.contains(&("RDS_INSTANCE", format!("db-{account}-eu-west-1"))));

        // What re-creating or restoring needs is recorded.
        for r in &east {
            match r {
                AwsResource::RdsInstance(db) => {
                    assert_eq!((db.engine.as_str(), db.storage_encrypted), ("postgres", true));
                    assert_eq!(db.instance_class.as_deref(), Some("db.t3.micro"));
                }
                AwsResource::RdsCluster(c) => assert_eq!(c.engine, "aurora-postgresql"),
                AwsResource::EksCluster(c) => {
                    assert_eq!(c.version.as_deref(), Some("1.33"));
                    assert_eq!(c.subnet_ids, ["subnet-1", "subnet-2"]);
                    let ng = &c.nodegroups[0];
                    assert_eq!(
                        (ng.name.as_str(), ng.desired_size, ng.max_size),
                        ("workers", Some(2), Some(3))
                    );
                    assert_eq!(ng.instance_types, ["m6i.large"]);
                    assert_eq!(ng.labels.get("team").map(String::as_str), Some("payments"));
                }
                AwsResource::EbsVolume(v) => {
                    assert_eq!(
                        (v.size_gib, v.availability_zone.as_deref()),
                        (Some(8), Some("us-east-1a"))
                    )
                }
                AwsResource::RdsSnapshot(s) => assert!(
                    matches!(s.snapshot_type.as_deref(), Some("manual" | "automated")),
                    "{s:?}"
                ),
            }
        }
    }

    // The control plane over DynamoDB with the AWS connector: link both accounts by ARN,
    // inventory them, then a database disappears and is marked.
    let cp = cloud_control_plane(
        Arc::new(dynamo_store(&base, "arca-cloud").await),
        Arc::new(SystemClock),
        Arc::new(connector),
    );
    let p = sign_up(&cp, "moto").await;
    let mut linked = Vec::new();
    for account in &accounts {
        let regions = REGIONS.iter().map(|r| r.to_string()).collect();
        let view = link_account(&cp, &p, format!("acct-{account}"), regions, account, |_| {
            "arca-cross-account".into()
        })
        .await;
        assert_eq!(view.account.state, CloudAccountState::Active, "{:?}", view.account);
        let report = cp
            .inventory_cloud_account(&p, &view.account.id)
            .await
            .expect("inventory");
        let counts: Vec<_> = report.regions.iter().map(|r| (r.region.as_str(), r.present)).collect();
        assert_eq!(counts, [("eu-west-1", 4), ("us-east-1", 8)], "{report:?}");
        linked.push(view.account.id);
    }

    let west = as_account(&base, &accounts[0], "eu-west-1").await;
    aws_sdk_rds::Client::new(&west)
        .delete_db_instance()
        .db_instance_identifier(format!("db-{}-eu-west-1", accounts[0]))
        .skip_final_snapshot(true)
        .send()
        .await
        .expect("delete db");
    let report = cp.inventory_cloud_account(&p, &linked[0]).await.expect("inventory");
    let west_report = report.regions.iter().find(|r| r.region == "eu-west-1").expect("region");
    assert!(west_report.vanished >= 1 && west_report.present <= 3, "{report:?}");
    let inventory = cp
        .get_cloud_inventory(&p, &linked[0], Some("eu-west-1"))
        .await
        .expect("inventory");
    let gone = inventory[0]
        .entries
        .iter()
        .find(|e| e.resource.key() == ("RDS_INSTANCE", format!("db-{}-eu-west-1", accounts[0])))
        .expect("the deleted database is still listed");
    assert!(gone.vanished_at.is_some(), "{gone:?}");
    let other = cp.inventory_cloud_account(&p, &linked[1]).await.expect("inventory");
    assert!(
        other.regions.iter().all(|r| r.vanished == 0),
        "the other account is untouched"
    );
    let everything = cp.inventory_everything().await.expect("everything");
    assert!(everything.iter().filter_map(|r| r.as_ref().ok()).count() >= 2);
}

/// EBS snapshots and EKS re-creation through a linked account's role, on moto: the
/// snapshot carries Arca's tags and deleting it twice is fine; the EKS cluster and its
/// node group are created from saved metadata in the linked account, not in Arca's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebs_snapshots_and_eks_recreation_through_the_role() {
    let Some(env) = arca_testenv::aws() else { return };
    let base = env.sdk_config().await;
    let account = fresh_account(0);
    let region = "eu-west-1";
    let seeded = as_account(&base, &account, region).await;
    let ec2 = aws_sdk_ec2::Client::new(&seeded);
    let volume = ec2
        .create_volume()
        .availability_zone(format!("{region}a"))
        .size(4)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("kubernetes.io/cluster/prod-eks")
                        .value("owned")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("volume");
    let volume_id = volume.volume_id().expect("id").to_owned();

    let connector = AwsCloudConnector::new(base.clone());
    let role = RoleRef {
        role_arn: format!("arn:aws:iam::{account}:role/arca-cross-account"),
        external_id: "arca-0123456789abcdef0123456789abcdef".into(),
    };
    // What the control plane checks before snapshotting a reported volume: EC2's live
    // answer, an unknown id left out rather than failing the call.
    let described = connector
        .describe_volumes(&role, region, &[volume_id.clone(), "vol-0000000000000dead".to_owned()])
        .await
        .expect("describe");
    assert_eq!(described.len(), 1, "{described:?}");
    assert_eq!(described[0].volume_id, volume_id);
    let cluster = arca_core::ids::ClusterId::new();
    assert!(
        described[0].check_owner(&cluster, "pv-x", Some("prod-eks")).is_ok(),
        "{described:?}"
    );
    assert!(described[0].check_owner(&cluster, "pv-x", Some("other")).is_err());
    let tags = std::collections::BTreeMap::from([
        ("arca:recovery-point".to_owned(), "rp_x".to_owned()),
        ("arca:expires-at".to_owned(), "2030-01-01T00:00:00+00:00".to_owned()),
    ]);
    let snapshot = connector
        .snapshot_volume(&role, region, &volume_id, &tags)
        .await
        .expect("snapshot");
    let described = ec2
        .describe_snapshots()
        .snapshot_ids(&snapshot)
        .send()
        .await
        .expect("describe");
    let s = &described.snapshots()[0];
    assert_eq!(s.volume_id(), Some(volume_id.as_str()));
    let found: std::collections::BTreeMap<String, String> = s
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(found["arca:recovery-point"], "rp_x", "{found:?}");

    // A restore's volume: from the snapshot, in another zone, typed and tagged.
    let new_volume = arca_core::ports::cloud::NewEbsVolume {
        snapshot_id: snapshot.clone(),
        availability_zone: format!("{region}b"),
        volume_type: Some("io2".into()),
        iops: Some(3000),
        throughput: None,
        tags: std::collections::BTreeMap::from([("arca:restore".to_owned(), "rst_x".to_owned())]),
        client_token: format!("arca-rst_x-{snapshot}"),
    };
    let restored = connector
        .create_volume_from_snapshot(&role, region, &new_volume)
        .await
        .expect("volume from snapshot");
    let described = ec2
        .describe_volumes()
        .volume_ids(&restored)
        .send()
        .await
        .expect("describe");
    let v = &described.volumes()[0];
    assert_eq!(v.snapshot_id(), Some(snapshot.as_str()));
    assert_eq!(v.availability_zone(), Some(format!("{region}b").as_str()));
    assert_eq!(v.volume_type().map(|t| t.as_str()), Some("io2"));
    assert_eq!(v.size(), Some(4), "the snapshot's size");
    assert!(
        v.tags()
            .iter()
            .any(|t| t.key() == Some("arca:restore") && t.value() == Some("rst_x")),
        "{:?}",
        v.tags()
    );
    let missing = connector
        .create_volume_from_snapshot(
            &role,
            region,
            &arca_core::ports::cloud::NewEbsVolume {
                snapshot_id: "snap-0000000000000dead".into(),
                ..new_volume.clone()
            },
        )
        .await;
    assert!(missing.is_err(), "a missing snapshot is an error: {missing:?}");

    connector
        .delete_volume_snapshot(&role, region, &snapshot)
        .await
        .expect("delete");
    connector
        .delete_volume_snapshot(&role, region, &snapshot)
        .await
        .expect("deleting again is not an error");
    let missing = connector
        .snapshot_volume(&role, region, "vol-0000000000000dead", &tags)
        .await;
    assert!(missing.is_err(), "a missing volume is an error: {missing:?}");

    // EKS: the saved shape, re-created under a new name.
    let saved = arca_core::model::cloud::inventory::EksCluster {
        name: "prod".into(),
        version: Some("1.33".into()),
        role_arn: Some(format!("arn:aws:iam::{account}:role/eks")),
        subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
        endpoint_public_access: true,
        tags: std::collections::BTreeMap::from([("team".to_owned(), "payments".to_owned())]),
        ..Default::default()
    };
    connector
        .create_eks_cluster(&role, region, "prod-restored", &saved)
        .await
        .expect("create cluster");
    let status = connector
        .eks_cluster_status(&role, region, "prod-restored")
        .await
        .expect("status");
    assert!(matches!(status.as_deref(), Some("ACTIVE" | "CREATING")), "{status:?}");
    assert_eq!(
        connector
            .eks_cluster_status(&role, region, "never-made")
            .await
            .expect("status"),
        None
    );
    connector
        .create_eks_nodegroup(
            &role,
            region,
            "prod-restored",
            &arca_core::model::cloud::inventory::EksNodegroup {
                name: "workers".into(),
                node_role: Some(format!("arn:aws:iam::{account}:role/node")),
                subnets: vec!["subnet-1".into()],
                instance_types: vec!["m6i.large".into()],
                min_size: Some(1),
                max_size: Some(4),
                desired_size: Some(2),
                labels: std::collections::BTreeMap::from([("pool".to_owned(), "general".to_owned())]),
                ..Default::default()
            },
        )
        .await
        .expect("node group");
    let eks = aws_sdk_eks::Client::new(&seeded);
    let cluster = eks
        .describe_cluster()
        .name("prod-restored")
        .send()
        .await
        .expect("in the linked account");
    let cluster = cluster.cluster().expect("cluster");
    // Where its Kubernetes API is: what EKS says, read through the role.
    let access = connector
        .eks_cluster_access(&role, region, "prod-restored")
        .await
        .expect("access")
        .expect("an ACTIVE cluster has an endpoint");
    assert_eq!(Some(access.endpoint.as_str()), cluster.endpoint(), "{access:?}");
    assert!(access.endpoint.starts_with("https://"), "{access:?}");
    assert_eq!(
        Some(access.certificate_authority_data.as_str()),
        cluster.certificate_authority().and_then(|c| c.data())
    );
    assert!(!access.certificate_authority_data.is_empty());
    assert_eq!(
        connector
            .eks_cluster_access(&role, region, "never-made")
            .await
            .expect("access"),
        None
    );
    assert_eq!(cluster.version(), Some("1.33"));
    assert_eq!(
        cluster.tags().and_then(|t| t.get("team")).map(String::as_str),
        Some("payments")
    );
    let ng = eks
        .describe_nodegroup()
        .cluster_name("prod-restored")
        .nodegroup_name("workers")
        .send()
        .await
        .expect("node group");
    let ng = ng.nodegroup().expect("node group");
    assert_eq!(ng.scaling_config().and_then(|s| s.desired_size()), Some(2));
    assert_eq!(
        ng.labels().and_then(|l| l.get("pool")).map(String::as_str),
        Some("general")
    );
    // Arca's own account has no such cluster: the calls went through the role.
    let own = aws_sdk_eks::Client::new(&base.to_builder().region(Region::new(region)).build());
    assert!(own.describe_cluster().name("prod-restored").send().await.is_err());
}

/// An EKS re-creation moved by its work message on AWS's adapters (moto): the message
/// crosses SQS as `{orgId, eksRecreationId}`, and the step checks EKS through the linked
/// role. The cluster was deleted meanwhile, so the re-creation fails with why; a second
/// delivery of the same message leaves it as it is. (A re-creation that reaches the agent
/// runs end to end in the CLI's `rds_eks` test, whose server drains this same queue.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_recreation_messages_cross_sqs_and_step_it() {
    let Some(env) = arca_testenv::aws() else { return };
    let base = env.sdk_config().await;
    let account = fresh_account(0);
    let region = "us-east-1";
    let (sqs, url) = sqs_queue(&base, "arca-work").await;
    let queue = Arc::new(SqsRdsWorkQueue::new(sqs.clone(), &url));
    let connector = Arc::new(AwsCloudConnector::new(base.clone()));
    let cp = cloud_control_plane(
        Arc::new(dynamo_store(&base, "arca-eks").await),
        Arc::new(SystemClock),
        connector.clone(),
    )
    .with_rds(
        Arc::new(arca_aws::AwsRdsOperations::new(connector.clone())),
        Some(queue.clone()),
    );
    let p = sign_up(&cp, "moto-eks").await;
    let view = link_account(&cp, &p, "eks".into(), vec![region.into()], &account, |_| {
        "arca-cross-account".into()
    })
    .await;
    let role = view.account.role().expect("role");

    // What `recreate_eks` leaves: the cluster asked of EKS, the record, its message.
    let saved = arca_core::model::cloud::inventory::EksCluster {
        name: "prod".into(),
        version: Some("1.33".into()),
        role_arn: Some(format!("arn:aws:iam::{account}:role/eks")),
        subnet_ids: vec!["subnet-1".into()],
        ..Default::default()
    };
    connector
        .create_eks_cluster(&role, region, "prod-again", &saved)
        .await
        .expect("create cluster");
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let r = cp
        .store()
        .create(EksRecreation::creating_cluster(
            EksRecreationId::new(),
            p.org_id,
            RecoveryPointId::new(),
            view.account.id,
            region.into(),
            "prod-again".into(),
            now,
        ))
        .await
        .expect("record");
    let message: AwsWorkMessage = EksRecreationWorkMessage {
        org_id: p.org_id,
        eks_recreation_id: r.id,
    }
    .into();
    queue.send(&message, Duration::ZERO).await.expect("send");
    queue.send(&message, Duration::ZERO).await.expect("a duplicate");

    // Deleted in the linked account before the check.
    aws_sdk_eks::Client::new(&as_account(&base, &account, region).await)
        .delete_cluster()
        .name("prod-again")
        .send()
        .await
        .expect("delete");
    let bodies: Vec<serde_json::Value> = received(&sqs, &url).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(
        bodies[0],
        serde_json::json!({"orgId": p.org_id.to_string(), "eksRecreationId": r.id.to_string()})
    );
    let mut states = Vec::new();
    for body in bodies {
        let AwsWorkMessage::EksRecreation(m) = AwsWorkMessage::from_json(body).expect("a work message") else {
            panic!("not an EKS re-creation's message");
        };
        states.push(
            cp.eks_recreation_step(&m.org_id, &m.eks_recreation_id)
                .await
                .expect("step"),
        );
    }
    assert_eq!(states[0].state, EksRecreationState::Failed, "{:?}", states[0]);
    assert_eq!(states[0].error.as_deref(), Some("the EKS cluster no longer exists"));
    assert_eq!(states[1], states[0], "the duplicate changed nothing");
    let listed = cp
        .list_eks_recreations(&p, &arca_core::store::page::PageRequest::after(None, 10))
        .await
        .expect("list");
    assert_eq!(listed.items, vec![states[0].clone()]);
}
