//! The contract of linking and inventory that every item store runs.

use crate::Error;
use crate::model::cloud::AwsResource;
use crate::model::cloud::account::{
    AccountLinkNotification, CloudAccountSpec, CloudAccountState, PermissionSets, RoleRef, RoleStackConfig,
};
use crate::model::cloud::account::{LinkEvent, ROLE_STACK_VERSION};
use crate::model::cloud::inventory::{EksCluster, RdsInstance, RdsSnapshot};
use crate::ports::cloud::CloudConnector;
use crate::ports::item_store::ItemStore;
use crate::store::page::PageRequest;
use crate::testing::{CONTRACT_NOW_SECS, contract_plane, new_org};
use std::sync::Arc;

use crate::testing::fakes::cloud::{ACCESS_DENIED, FakeCloud};

fn instance(id: &str) -> AwsResource {
    AwsResource::RdsInstance(RdsInstance {
        identifier: id.into(),
        arn: format!("arn:aws:rds:us-east-1:111122223333:db:{id}"),
        engine: "postgres".into(),
        ..Default::default()
    })
}

fn spec(name: &str) -> CloudAccountSpec {
    CloudAccountSpec {
        name: name.into(),
        description: String::new(),
        regions: vec!["us-west-2".into(), "us-east-1".into()],
    }
}

fn notification(link_id: String, external_id: String, role_arn: &str, version: &str) -> AccountLinkNotification {
    AccountLinkNotification {
        kind: LinkEvent::Create,
        link_id,
        external_id,
        role_arn: role_arn.into(),
        role_stack_version: version.into(),
        permission_sets: PermissionSets {
            security_scanning: false,
            ..Default::default()
        },
    }
}

/// Linking (notification and pasted ARN), verification, DISCONNECTED and back, the
/// inventory of two accounts x two regions with vanished resources, a failing region,
/// the 12-hour run across orgs, tenant isolation and deletion.
pub async fn linked_accounts(items: Arc<dyn ItemStore>) {
    let fake = Arc::new(FakeCloud::default());
    let stack = RoleStackConfig {
        arca_account_id: Some("999988887777".into()),
        principal_arns: Vec::new(),
        template_url: Some("https://templates.example/role-stack.yaml".into()),
        notification_topic_arn: Some("arn:aws:sns:us-east-1:999988887777:arca-link".into()),
        console_region: "us-east-1".into(),
    };
    let cp = contract_plane(items, CONTRACT_NOW_SECS).with_cloud(fake.clone(), stack);
    let (p, _, _) = new_org(&cp, "cloud").await;
    let (other, _, _) = new_org(&cp, "cloud-other").await;

    // Link: PENDING, an ExternalId, a quick-create link that carries it.
    let view = cp.link_cloud_account(&p, spec("prod")).await.expect("link");
    let a = view.account.clone();
    assert_eq!(a.state, CloudAccountState::Pending);
    assert_eq!(a.spec.regions, ["us-east-1", "us-west-2"], "sorted");
    let link = view.quick_create_link.expect("a link");
    assert!(link.contains(&a.external_id) && link.contains(&a.link_id()), "{link}");
    assert!(!view.update_available);

    // A notification without the right ExternalId changes nothing.
    let role_a = "arn:aws:iam::111122223333:role/arca-prod";
    fake.add_role(role_a, &a.external_id);
    let forged = notification(a.link_id(), "arca-guess".into(), role_a, ROLE_STACK_VERSION);
    assert!(matches!(
        cp.apply_account_link(&forged).await,
        Err(Error::Forbidden { .. })
    ));
    let same = cp.get_cloud_account(&p, &a.id).await.expect("get").account;
    assert_eq!((same.state, same.role_arn), (CloudAccountState::Pending, None));

    // The stack's notification: verified, ACTIVE; an older stack has an update.
    let n = notification(a.link_id(), a.external_id.clone(), role_a, "0.9.0");
    let linked = cp.apply_account_link(&n).await.expect("link");
    assert_eq!(linked.state, CloudAccountState::Active, "{linked:?}");
    assert_eq!(linked.aws_account_id.as_deref(), Some("111122223333"));
    assert_eq!(linked.permission_sets.map(|s| s.security_scanning), Some(false));
    let view = cp.get_cloud_account(&p, &a.id).await.expect("get");
    assert!(view.update_available, "0.9.0 < {ROLE_STACK_VERSION}");

    // Inventory of two regions.
    fake.set_resources(
        role_a,
        "us-east-1",
        vec![
            instance("orders"),
            instance("billing"),
            AwsResource::RdsSnapshot(RdsSnapshot {
                identifier: "rds:orders-2030-01-01".into(),
                source_identifier: "orders".into(),
                snapshot_type: Some("automated".into()),
                ..Default::default()
            }),
        ],
    );
    fake.set_resources(
        role_a,
        "us-west-2",
        vec![AwsResource::EksCluster(EksCluster {
            name: "west".into(),
            ..Default::default()
        })],
    );
    let report = cp.inventory_cloud_account(&p, &a.id).await.expect("inventory");
    let counts: Vec<_> = report
        .regions
        .iter()
        .map(|r| (r.region.as_str(), r.present, r.vanished))
        .collect();
    assert_eq!(counts, [("us-east-1", 3, 0), ("us-west-2", 1, 0)], "{report:?}");
    let stored = cp.get_cloud_inventory(&p, &a.id, None).await.expect("inventory");
    assert_eq!(stored.len(), 2);
    assert!(
        cp.get_cloud_account(&p, &a.id)
            .await
            .expect("get")
            .account
            .last_inventory_at
            .is_some()
    );

    // A database disappears: marked, not dropped. A failing region keeps what it had.
    fake.set_resources(role_a, "us-east-1", vec![instance("orders")]);
    fake.fail_region(role_a, "us-west-2", "ThrottlingException: slow down");
    let report = cp.inventory_cloud_account(&p, &a.id).await.expect("inventory");
    assert_eq!(report.regions[0].vanished, 2, "billing and the snapshot: {report:?}");
    assert!(
        report.regions[1]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("Throttling")
    );
    assert_eq!(
        report.state,
        CloudAccountState::Active,
        "a region's failure is not the role's"
    );
    let east = cp.get_cloud_inventory(&p, &a.id, Some("us-east-1")).await.expect("inv");
    assert_eq!(east[0].entries.len(), 3, "vanished entries are kept");
    assert_eq!(east[0].present().count(), 1);
    let west = cp.get_cloud_inventory(&p, &a.id, Some("us-west-2")).await.expect("inv");
    assert_eq!(west[0].present().count(), 1, "the failed region is left as it was");

    // The role is revoked: DISCONNECTED with the AWS error; fixed: ACTIVE again.
    fake.revoke(role_a, Some(ACCESS_DENIED));
    let report = cp.inventory_cloud_account(&p, &a.id).await.expect("inventory");
    assert_eq!(report.state, CloudAccountState::Disconnected);
    let down = cp.get_cloud_account(&p, &a.id).await.expect("get").account;
    assert!(
        down.last_error.as_deref().unwrap_or_default().contains("AccessDenied"),
        "{down:?}"
    );
    let east = cp.get_cloud_inventory(&p, &a.id, Some("us-east-1")).await.expect("inv");
    assert_eq!(east[0].present().count(), 1, "a rejected role marks nothing vanished");
    fake.revoke(role_a, None);
    let up = cp.verify_cloud_account(&p, &a.id).await.expect("verify");
    assert_eq!(
        (up.account.state, up.account.last_error),
        (CloudAccountState::Active, None)
    );

    // A pasted ARN whose trust wants another ExternalId: DISCONNECTED, said why.
    let b = cp.link_cloud_account(&p, spec("staging")).await.expect("link").account;
    let role_b = "arn:aws:iam::444455556666:role/arca-staging";
    fake.add_role(role_b, "arca-someone-elses-id");
    let pasted = cp
        .set_cloud_account_role(&p, &b.id, role_b, b.version)
        .await
        .expect("set role");
    assert_eq!(pasted.account.state, CloudAccountState::Disconnected);
    assert!(
        pasted
            .account
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("AccessDenied")
    );
    // Credentials of another account than the ARN's are refused too.
    fake.add_role(role_b, &b.external_id);
    fake.set_account(role_b, "777777777777");
    let mixed = cp
        .set_cloud_account_role(&p, &b.id, role_b, pasted.account.version)
        .await
        .expect("set role");
    assert_eq!(mixed.account.state, CloudAccountState::Disconnected);
    assert!(
        mixed
            .account
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("777777777777")
    );
    fake.set_account(role_b, "444455556666");
    let fixed = cp
        .set_cloud_account_role(&p, &b.id, role_b, mixed.account.version)
        .await
        .expect("set role");
    assert_eq!(fixed.account.state, CloudAccountState::Active);
    let bad = cp
        .set_cloud_account_role(&p, &b.id, "arn:aws:iam::1:role/x", fixed.account.version)
        .await;
    assert!(
        matches!(bad, Err(Error::Invalid { ref field, .. }) if field == "roleArn"),
        "{bad:?}"
    );
    let stale = cp.set_cloud_account_role(&p, &b.id, role_b, 1).await;
    assert!(matches!(stale, Err(Error::PreconditionFailed { .. })), "{stale:?}");

    // Another org's account: invisible here, inventoried by the 12-hour run.
    let c = cp
        .link_cloud_account(&other, spec("theirs"))
        .await
        .expect("link")
        .account;
    let role_c = "arn:aws:iam::123123123123:role/arca";
    fake.add_role(role_c, &c.external_id);
    fake.set_resources(role_c, "us-east-1", vec![instance("theirs")]);
    cp.apply_account_link(&notification(
        c.link_id(),
        c.external_id.clone(),
        role_c,
        ROLE_STACK_VERSION,
    ))
    .await
    .expect("link");
    assert!(matches!(
        cp.get_cloud_account(&p, &c.id).await,
        Err(Error::NotFound { .. })
    ));
    let listed = cp
        .list_cloud_accounts(&p, &PageRequest::after(None, 50))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
    let reports = cp.inventory_everything().await.expect("everything");
    let ours: Vec<_> = reports
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| [a.id, b.id, c.id].contains(&r.cloud_account_id))
        .collect();
    assert_eq!(ours.len(), 3, "every linked account with a role: {reports:?}");
    let theirs = cp.get_cloud_inventory(&other, &c.id, None).await.expect("inv");
    assert_eq!(theirs.iter().map(|i| i.present().count()).sum::<usize>(), 1);

    // The stack is deleted: the account says so.
    let gone = AccountLinkNotification {
        kind: LinkEvent::Delete,
        ..notification(c.link_id(), c.external_id.clone(), role_c, ROLE_STACK_VERSION)
    };
    let c_now = cp.apply_account_link(&gone).await.expect("delete event");
    assert_eq!(c_now.state, CloudAccountState::Disconnected);

    // Deleting an account takes its inventory with it.
    let current = cp.get_cloud_account(&p, &a.id).await.expect("get").account;
    assert!(matches!(
        cp.delete_cloud_account(&p, &a.id, current.version + 1).await,
        Err(Error::PreconditionFailed { .. })
    ));
    assert!(
        !cp.store()
            .aws_inventories(&p.org_id, &a.id)
            .await
            .expect("list")
            .is_empty(),
        "a refused delete keeps the inventory"
    );
    cp.delete_cloud_account(&p, &a.id, current.version)
        .await
        .expect("delete");
    assert!(matches!(
        cp.get_cloud_account(&p, &a.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        cp.store()
            .aws_inventories(&p.org_id, &a.id)
            .await
            .expect("list")
            .is_empty()
    );

    // Without a work queue (this plane has no RDS wiring, so nothing would step a
    // re-creation), reading one still creating checks EKS once, as the step does.
    let role = RoleRef {
        role_arn: role_b.into(),
        external_id: b.external_id.clone(),
    };
    fake.eks_takes(1);
    fake.create_eks_cluster(&role, "us-east-1", "staging-again", &EksCluster::default())
        .await
        .expect("create");
    let now = cp.now();
    let r = cp
        .store()
        .create(crate::model::cloud::ebs::EksRecreation::creating_cluster(
            crate::ids::EksRecreationId::new(),
            p.org_id,
            crate::ids::RecoveryPointId::new(),
            b.id,
            "us-east-1".into(),
            "staging-again".into(),
            now,
        ))
        .await
        .expect("record");
    let read = cp.get_eks_recreation(&p, &r.id).await.expect("read");
    assert_eq!(
        read.state,
        crate::model::cloud::ebs::EksRecreationState::CreatingCluster
    );
    assert!(read.version > r.version, "the read checked EKS and stored it: {read:?}");
    fake.delete_eks_cluster("us-east-1", "staging-again");
    let read = cp.get_eks_recreation(&p, &r.id).await.expect("read");
    assert_eq!(read.state, crate::model::cloud::ebs::EksRecreationState::Failed);
    assert_eq!(read.error.as_deref(), Some("the EKS cluster no longer exists"));
    assert!(matches!(
        cp.get_eks_recreation(&other, &r.id).await,
        Err(Error::NotFound { .. })
    ));
    let theirs = cp
        .list_eks_recreations(&other, &PageRequest::after(None, 10))
        .await
        .expect("list");
    assert!(theirs.items.is_empty(), "another org's: {theirs:?}");
}

fn snapshot(n: usize) -> AwsResource {
    let id = format!("arca-orders-{n:06}-a-fairly-long-identifier-as-real-ones-are");
    AwsResource::RdsSnapshot(RdsSnapshot {
        arn: format!("arn:aws:rds:us-east-1:111122223333:snapshot:{id}"),
        identifier: id,
        source_identifier: "orders".into(),
        snapshot_type: Some("manual".into()),
        status: Some("available".into()),
        engine: Some("postgres".into()),
        tags: [("arca:recovery-point".to_string(), format!("rp_{n:026}"))].into(),
        ..Default::default()
    })
}

/// DynamoDB refuses an item over 400 KB; the other stores would take it.
const DYNAMODB_ITEM_BYTES: usize = 400 * 1024;

/// A region holding thousands of resources (a year of snapshots): its inventory is stored
/// in parts that each fit in one DynamoDB item, reads back whole, shrinks when resources
/// vanish for good, and goes with its account. One too large even for parts is refused
/// for that region alone, naming the limit, and its last inventory is kept.
pub async fn large_inventories(items: Arc<dyn ItemStore>) {
    let fake = Arc::new(FakeCloud::default());
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS).with_cloud(fake.clone(), RoleStackConfig::default());
    let (p, _, _) = new_org(&cp, "large-inventory").await;
    let role = "arn:aws:iam::111122223333:role/arca-large";
    let (a, _) = crate::testing::linked_fake_account(&cp, &fake, &p, &["us-east-1", "us-west-2"], role).await;
    let many: Vec<AwsResource> = (0..3000).map(snapshot).collect();
    fake.set_resources(role, "us-east-1", many.clone());
    fake.set_resources(role, "us-west-2", vec![instance("small")]);
    let report = cp.inventory_cloud_account(&p, &a.id).await.expect("inventory");
    assert!(report.regions.iter().all(|r| r.error.is_none()), "{report:?}");

    let largest = largest_item(items.as_ref(), &p.org_id).await;
    assert!(largest <= DYNAMODB_ITEM_BYTES, "an item of {largest} bytes");
    let stored = cp
        .get_cloud_inventory(&p, &a.id, Some("us-east-1"))
        .await
        .expect("read");
    assert_eq!(stored[0].entries.len(), 3000);
    assert_eq!(stored[0].present().count(), 3000);

    // A third vanish: marked, still listed, still in parts.
    fake.set_resources(role, "us-east-1", many[..2000].to_vec());
    cp.inventory_cloud_account(&p, &a.id).await.expect("inventory");
    let stored = cp.get_cloud_inventory(&p, &a.id, None).await.expect("read");
    let east = stored.iter().find(|i| i.id.region == "us-east-1").expect("east");
    assert_eq!((east.entries.len(), east.present().count()), (3000, 2000));
    let west = stored.iter().find(|i| i.id.region == "us-west-2").expect("west");
    assert_eq!(west.entries.len(), 1);

    // Too much even for parts: that region's run fails loud, its last inventory stays,
    // the other region is read as usual.
    let far_too_many: Vec<AwsResource> = (0..40_000).map(snapshot).collect();
    fake.set_resources(role, "us-east-1", far_too_many);
    fake.set_resources(role, "us-west-2", vec![instance("small"), instance("second")]);
    let report = cp.inventory_cloud_account(&p, &a.id).await.expect("inventory");
    let east_report = report.regions.iter().find(|r| r.region == "us-east-1").expect("east");
    let error = east_report.error.as_deref().expect("refused");
    assert!(error.contains("40000 resources") && error.contains("MiB"), "{error}");
    let stored = cp.get_cloud_inventory(&p, &a.id, None).await.expect("read");
    let east = stored.iter().find(|i| i.id.region == "us-east-1").expect("east");
    assert_eq!(east.present().count(), 2000, "the last inventory is kept");
    let west = stored.iter().find(|i| i.id.region == "us-west-2").expect("west");
    assert_eq!(west.present().count(), 2);

    // Deleting the account deletes every part.
    let a = cp.get_cloud_account(&p, &a.id).await.expect("account").account;
    cp.delete_cloud_account(&p, &a.id, a.version).await.expect("delete");
    let left = items
        .query(crate::ports::item_store::Query {
            index: None,
            pk: crate::store::keys::org_pk(&p.org_id),
            range: crate::ports::item_store::SortKeyRange::BeginsWith("AWSINV".into()),
            limit: 10,
            ascending: true,
            cursor: None,
        })
        .await
        .expect("query");
    assert!(
        left.items.is_empty(),
        "{:?}",
        left.items.iter().map(|i| &i.sk).collect::<Vec<_>>()
    );
}

/// The largest item of `org`'s partition, as DynamoDB counts it (near enough: names and
/// values of its attributes).
async fn largest_item(items: &dyn ItemStore, org: &crate::ids::OrgId) -> usize {
    let mut largest = 0;
    let mut cursor = None;
    loop {
        let page = items
            .query(crate::ports::item_store::Query {
                index: None,
                pk: crate::store::keys::org_pk(org),
                range: crate::ports::item_store::SortKeyRange::All,
                limit: 100,
                ascending: true,
                cursor,
            })
            .await
            .expect("query");
        for item in &page.items {
            largest = largest.max(item.pk.len() + item.sk.len() + item.body.to_string().len());
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return largest,
        }
    }
}
