//! Test support (feature `testing`): the contract suites every adapter of a port runs
//! ([`contracts`]), the scenarios every item store runs ([`scenarios`]), and fakes of the
//! AWS-only ports ([`fakes`]).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, Utc};

use crate::control_plane::{ControlPlane, ControlPlaneConfig, RegisteredCluster, SignupRequest};
use crate::ids::{BackupDefinitionId, ClusterId, DestinationId, OrgId, PolicyId};
use crate::model::auth::Principal;
use crate::model::backup::{BackupDefinition, BackupDefinitionSpec, PvMode, Selection};
use crate::model::cloud::account::{CloudAccount, CloudAccountSpec, RoleRef};
use crate::model::cluster::{ClusterSpec, Heartbeat};
use crate::model::destination::{DestinationSpec, DestinationTarget};
use crate::model::plan::PlanLimits;
use crate::model::policy::Policy;
use crate::model::recovery::RecoveryPoint;
use crate::model::secret::Secret;
use crate::ports::FixedClock;
use crate::ports::item_store::ItemStore;
use crate::store::Store;

/// The instant the suite's clock shows (fixed, so expiry queries are deterministic).
pub const CONTRACT_NOW_SECS: u64 = 1_893_456_000; // 2030-01-01T00:00:00Z

macro_rules! expect_err {
    ($result:expr, $pattern:pat, $what:expr) => {
        match $result {
            Err(e @ $pattern) => e,
            other => panic!("{}: expected {}, got {other:?}", $what, stringify!($pattern)),
        }
    };
}

pub mod contracts;
pub mod fakes;
pub mod recording;
pub mod scenarios;

use scenarios::clusters::{agent_token_lookup, cluster_in_use_and_deletion, heartbeats_leave_the_cluster_etag_alone};
use scenarios::jobs::{
    dispatch_races_yield_one_job, jobs_and_restores, pagination_across_pages, recovery_points_expiring_before,
};
use scenarios::plan::plan_rules;
use scenarios::policies::policy_in_use;
use scenarios::tenancy::{
    authentication_and_roles, optimistic_concurrency, signup_writes_the_documented_items, tenant_isolation,
    transactions_are_all_or_nothing,
};

pub(crate) fn contract_plane(items: Arc<dyn ItemStore>, at_secs: u64) -> ControlPlane {
    ControlPlane::new(
        Store::new(items),
        PlanLimits::default(),
        Arc::new(FixedClock(UNIX_EPOCH + Duration::from_secs(at_secs))),
        ControlPlaneConfig {
            signup_open: true,
            local_destinations: true,
            ..ControlPlaneConfig::default()
        },
    )
}

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(UNIX_EPOCH + Duration::from_secs(CONTRACT_NOW_SECS))
}

/// Signs up an org called `name`: its bootstrap admin, that admin's key and the org's
/// default policy.
pub async fn new_org(cp: &ControlPlane, name: &str) -> (Principal, Secret, Policy) {
    let signed = cp
        .signup(SignupRequest {
            org_name: name.to_string(),
            admin_key_name: None,
        })
        .await
        .expect("signup");
    let principal = cp
        .authenticate(&signed.admin_key.secret)
        .await
        .expect("the bootstrap key authenticates");
    (principal, signed.admin_key.secret, signed.default_policy)
}

/// Links a cloud account called `name` in `regions` (PENDING until its role is set).
pub async fn link_account(cp: &ControlPlane, p: &Principal, name: &str, regions: &[&str]) -> CloudAccount {
    cp.link_cloud_account(
        p,
        CloudAccountSpec {
            name: name.into(),
            description: String::new(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
        },
    )
    .await
    .expect("link")
    .account
}

/// Links a cloud account "prod" in `regions` whose role `role_arn` `fake` lets in, and sets
/// that role: the account as set, and how to reach it.
pub async fn linked_fake_account(
    cp: &ControlPlane,
    fake: &fakes::cloud::FakeCloud,
    p: &Principal,
    regions: &[&str],
    role_arn: &str,
) -> (CloudAccount, RoleRef) {
    let a = link_account(cp, p, "prod", regions).await;
    fake.add_role(role_arn, &a.external_id);
    let set = cp
        .set_cloud_account_role(p, &a.id, role_arn, a.version)
        .await
        .expect("role")
        .account;
    let role = RoleRef {
        role_arn: role_arn.into(),
        external_id: a.external_id,
    };
    (set, role)
}

/// Registers a cluster called `name` (REGISTERED; its agent token in the answer).
pub async fn register(cp: &ControlPlane, p: &Principal, name: &str) -> RegisteredCluster {
    cp.register_cluster(
        p,
        ClusterSpec {
            name: name.into(),
            ..Default::default()
        },
    )
    .await
    .expect("register")
}

/// Registers a cluster called `name` whose agent has sent a heartbeat (ACTIVE).
pub async fn active_cluster(cp: &ControlPlane, p: &Principal, name: &str) -> RegisteredCluster {
    let registered = register(cp, p, name).await;
    cp.record_heartbeat(&registered.agent_token, Heartbeat::default())
        .await
        .expect("heartbeat");
    registered
}

/// Creates a backup definition (it must be valid).
pub async fn create_definition(cp: &ControlPlane, p: &Principal, spec: BackupDefinitionSpec) -> BackupDefinition {
    cp.create_backup_definition(p, spec).await.expect("create").definition
}

fn s3(name: &str) -> DestinationSpec {
    DestinationSpec {
        object_lock: None,
        customer_key: None,
        name: name.to_string(),
        target: DestinationTarget::S3 {
            endpoint: Some("https://s3.example.test".into()),
            bucket: "arca-backups".into(),
            region: "us-east-1".into(),
            prefix: "c/".into(),
            credentials_ref: Some("creds".into()),
            skip_tls_verify: false,
            path_style: None,
            ca_bundle: None,
        },
    }
}

fn definition(
    cluster: ClusterId,
    policy: Option<PolicyId>,
    dest: Option<DestinationId>,
    name: &str,
) -> BackupDefinitionSpec {
    BackupDefinitionSpec {
        name: name.to_string(),
        description: String::new(),
        cluster_id: cluster,
        selection: Selection {
            namespaces: vec!["shop".into()],
            ..Selection::default()
        },
        pv_mode: PvMode::Snapshot,
        delete_snapshot_after_copy: false,
        policy_id: policy,
        destination_id: dest,
        paused: false,
        tags: Default::default(),
        hooks: Vec::new(),
        verification: None,
    }
}

fn recovery_point(org: OrgId, cluster: ClusterId, expires_at: Option<DateTime<Utc>>) -> RecoveryPoint {
    stored_point(org, cluster, None, expires_at)
}

/// A READY point of `cluster` (its own definition and job), in `destination` when given
/// (an archive at `resources/archives/a1`), to create in a store.
pub fn stored_point(
    org: OrgId,
    cluster: ClusterId,
    destination: Option<DestinationId>,
    expires_at: Option<DateTime<Utc>>,
) -> RecoveryPoint {
    RecoveryPoint {
        org_id: org,
        cluster_id: cluster,
        rule: None,
        location: destination.map(|destination_id| crate::model::recovery::RecoveryPointLocation {
            destination_id,
            prefix: "resources/archives/a1".into(),
        }),
        resource_count: 10,
        pv_count: 1,
        snapshot_bytes: 100,
        version: 0,
        ..RecoveryPoint::fixture(BackupDefinitionId::new(), now(), expires_at)
    }
}

/// Runs every part of the typed-store contract. Each part creates its own orgs (fresh
/// ids), so the suite may share a table with other runs.
pub async fn store_contract(items: Arc<dyn ItemStore>) {
    signup_writes_the_documented_items(items.clone()).await;
    authentication_and_roles(items.clone()).await;
    tenant_isolation(items.clone()).await;
    optimistic_concurrency(items.clone()).await;
    transactions_are_all_or_nothing(items.clone()).await;
    policy_in_use(items.clone()).await;
    cluster_in_use_and_deletion(items.clone()).await;
    agent_token_lookup(items.clone()).await;
    recovery_points_expiring_before(items.clone()).await;
    pagination_across_pages(items.clone()).await;
    jobs_and_restores(items.clone()).await;
    dispatch_races_yield_one_job(items.clone()).await;
    heartbeats_leave_the_cluster_etag_alone(items.clone()).await;
    plan_rules(items.clone()).await;
    crate::testing::scenarios::cloud::linked_accounts(items.clone()).await;
    crate::testing::scenarios::cloud::large_inventories(items.clone()).await;
    crate::testing::scenarios::relations::relations_follow_their_records(items.clone()).await;
    crate::testing::scenarios::alerts::alerts_outbox_retries_and_idempotence(items.clone()).await;
    crate::testing::scenarios::alerts::missed_runs_of_the_alert_sweep(items.clone()).await;
    crate::testing::scenarios::rds::rds_protection(items).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::memory_store::MemoryItemStore;

    #[tokio::test]
    async fn the_store_contract_holds_on_the_in_memory_store() {
        store_contract(Arc::new(MemoryItemStore::default())).await;
    }
}
