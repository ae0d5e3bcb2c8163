//! Scheduler drift repair: whatever happened to the schedules behind the store's back (a
//! sync that failed after its commit, a console edit, a definition deleted while the
//! scheduler was down), `reconcile_schedules` puts back exactly what each definition's
//! policy and pause say, removes orphans, and leaves what is right alone.

mod common;

use std::sync::Arc;

use arca_core::ports::scheduler::Scheduler;
use arca_embedded::EmbeddedScheduler;
use common::Api;
use serde_json::json;

/// An API whose control plane writes to an embedded scheduler the test can tamper with.
fn scheduled_api() -> (Api, Arc<EmbeddedScheduler>, arca_core::control_plane::ControlPlane) {
    let mut api = Api::new();
    let scheduler = Arc::new(EmbeddedScheduler::new(Arc::new(arca_core::ports::SystemClock)));
    api.state.control_plane = api.state.control_plane.clone().with_scheduler(scheduler.clone());
    api.router = arca_api::router(api.state.clone());
    let cp = api.state.control_plane.clone();
    (api, scheduler, cp)
}

#[tokio::test]
async fn drifted_schedules_are_repaired_and_orphans_removed() {
    let (api, scheduler, cp) = scheduled_api();

    let t = api.signup("drift").await;
    let (cluster, _) = api.cluster(&t.admin, "c", None).await;
    let dest = api.destination(&t.admin, "d").await;
    let scheduled = api.default_backup(&t, &cluster, Some(&dest)).await;
    let on_demand = api.backup(&t.admin, &cluster, None, Some(&dest)).await.expect(201).id();
    let written = scheduler.list(&scheduled).await.unwrap();
    assert!(!written.is_empty(), "the API wrote the schedules");

    // In step: nothing to repair.
    let report = cp.reconcile_schedules().await.unwrap();
    assert!(report.checked >= 2, "{report:?}");
    assert!(
        report.repaired.is_empty() && report.orphans_removed.is_empty(),
        "{report:?}"
    );
    assert!(report.failed.is_empty(), "{report:?}");

    // Missing: deleted behind Arca's back.
    scheduler.sync(&scheduled, &[]).await.unwrap();
    let report = cp.reconcile_schedules().await.unwrap();
    assert_eq!(
        report.repaired.iter().map(ToString::to_string).collect::<Vec<_>>(),
        std::slice::from_ref(&scheduled),
        "{report:?}"
    );
    assert_eq!(scheduler.list(&scheduled).await.unwrap(), written);

    // Stale: disabled (as if paused) though the definition runs; extra: a schedule on the
    // on-demand definition.
    let mut stale = written.clone();
    stale[0].enabled = false;
    scheduler.sync(&scheduled, &stale).await.unwrap();
    let mut extra = written.clone();
    for s in &mut extra {
        s.name = s.name.replacen(&scheduled, &on_demand, 1);
        s.input.definition_id = on_demand.clone();
    }
    scheduler.sync(&on_demand, &extra).await.unwrap();
    let report = cp.reconcile_schedules().await.unwrap();
    let mut repaired: Vec<String> = report.repaired.iter().map(ToString::to_string).collect();
    repaired.sort();
    let mut want = vec![scheduled.clone(), on_demand.clone()];
    want.sort();
    assert_eq!(repaired, want, "{report:?}");
    assert_eq!(scheduler.list(&scheduled).await.unwrap(), written);
    assert!(scheduler.list(&on_demand).await.unwrap().is_empty());

    // Orphans: schedules of a definition the store does not have; a schedule name that is
    // not a definition's is never touched.
    let ghost = arca_core::ids::BackupDefinitionId::new().to_string();
    let mut orphans = written.clone();
    for s in &mut orphans {
        s.name = s.name.replacen(&scheduled, &ghost, 1);
        s.input.definition_id = ghost.clone();
    }
    scheduler.sync(&ghost, &orphans).await.unwrap();
    let mut foreign = written[0].clone();
    foreign.name = "arca-dev-retention-0".into();
    foreign.input.definition_id = "arca-dev-retention".into();
    scheduler.sync("arca-dev-retention", &[foreign.clone()]).await.unwrap();
    let report = cp.reconcile_schedules().await.unwrap();
    assert_eq!(report.orphans_removed, std::slice::from_ref(&ghost), "{report:?}");
    assert!(scheduler.list(&ghost).await.unwrap().is_empty());
    assert_eq!(scheduler.list("arca-dev-retention").await.unwrap(), [foreign]);

    // A definition written before the definitions' index existed (its item has no GSI2
    // key) is found through its schedules, indexed, and repaired like the others.
    let legacy = api.default_backup(&t, &cluster, Some(&dest)).await;
    let org: arca_core::ids::OrgId = t.org_id.parse().unwrap();
    let legacy_id: arca_core::ids::BackupDefinitionId = legacy.parse().unwrap();
    let (pk, sk) = (
        arca_core::store::keys::org_pk(&org),
        arca_core::store::keys::backup_sk(&legacy_id),
    );
    let mut item = api.items.get(&pk, &sk).await.unwrap().unwrap();
    item.gsi2 = None;
    api.items
        .put(item, arca_core::ports::item_store::Condition::None)
        .await
        .unwrap();
    let legacy_written = scheduler.list(&legacy).await.unwrap();
    let mut stale = legacy_written.clone();
    stale[0].enabled = false;
    scheduler.sync(&legacy, &stale).await.unwrap();
    // Later than the definition's last write, as any run after the upgrade is.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let report = cp.reconcile_schedules().await.unwrap();
    assert_eq!(report.reindexed, vec![legacy_id], "{report:?}");
    assert_eq!(report.repaired, vec![legacy_id], "{report:?}");
    assert!(
        report.orphans_removed.is_empty(),
        "never taken for an orphan: {report:?}"
    );
    assert_eq!(scheduler.list(&legacy).await.unwrap(), legacy_written);
    let item = api.items.get(&pk, &sk).await.unwrap().unwrap();
    assert!(item.gsi2.is_some(), "indexed now");
    let report = cp.reconcile_schedules().await.unwrap();
    assert!(report.reindexed.is_empty() && report.repaired.is_empty(), "{report:?}");

    // A paused definition's schedules stay, disabled: that is its desired state.
    api.post(&format!("/v1/backups/{scheduled}/pause"), &t.admin, json!({}))
        .await
        .expect(200);
    let report = cp.reconcile_schedules().await.unwrap();
    assert!(report.repaired.is_empty(), "{report:?}");
    assert!(scheduler.list(&scheduled).await.unwrap().iter().all(|s| !s.enabled));
}

/// RDS definitions too: their backup schedule set is put back when deleted behind Arca's
/// back, and the set of an RDS definition the store no longer has is removed.
#[tokio::test]
async fn rds_schedules_are_repaired_and_orphans_removed() {
    let (api, scheduler, cp) = scheduled_api();

    let t = api.signup("rds-drift").await;
    let linked = api
        .link_account(&t.admin, "prod", &["us-east-1", "us-west-2"])
        .await
        .expect(201);
    api.give_role(&t.admin, &linked, "arn:aws:iam::111122223333:role/arca-rds")
        .await
        .expect(200);
    let def = api
        .post(
            "/v1/rds-backups",
            &t.admin,
            json!({ "name": "orders", "cloudAccountId": linked.id(), "region": "us-east-1",
                    "databases": [{ "identifier": "orders" }], "policyId": t.default_policy_id }),
        )
        .await
        .expect(201)
        .id();
    let written = scheduler.list(&def).await.unwrap();
    assert!(!written.is_empty(), "the API wrote the RDS definition's schedules");
    let report = cp.reconcile_schedules().await.unwrap();
    assert!(report.rds_repaired.is_empty() && report.failed.is_empty(), "{report:?}");

    // Missing: deleted behind Arca's back, put back.
    scheduler.sync(&def, &[]).await.unwrap();
    let report = cp.reconcile_schedules().await.unwrap();
    assert_eq!(
        report.rds_repaired.iter().map(ToString::to_string).collect::<Vec<_>>(),
        std::slice::from_ref(&def),
        "{report:?}"
    );
    assert_eq!(scheduler.list(&def).await.unwrap(), written);

    // Orphan: the schedules of an RDS definition the store does not have.
    let ghost = arca_core::ids::RdsBackupDefinitionId::new().to_string();
    let mut orphan = written.clone();
    for s in &mut orphan {
        s.name = s.name.replacen(&def, &ghost, 1);
        s.input.definition_id = ghost.clone();
    }
    scheduler.sync(&ghost, &orphan).await.unwrap();
    let report = cp.reconcile_schedules().await.unwrap();
    assert_eq!(report.orphans_removed, std::slice::from_ref(&ghost), "{report:?}");
    assert!(scheduler.list(&ghost).await.unwrap().is_empty());
    assert_eq!(scheduler.list(&def).await.unwrap(), written, "the live one untouched");
}
