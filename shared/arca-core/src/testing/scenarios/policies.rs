//! Policies in use.

use std::sync::Arc;

use crate::model::destination::DestinationSource;
use crate::model::policy::{PolicySpec, ReferrerKind, ScheduleSpec};
use crate::ports::item_store::ItemStore;

use crate::testing::*;

/// A policy referenced by a definition cannot be deleted; `usedBy` follows the
/// definitions through create, policy change, rename and delete; a delete racing an
/// attach fails on the version.
pub async fn policy_in_use(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items, CONTRACT_NOW_SECS);
    let (p, _, hourly) = new_org(&cp, "policies").await;
    let dest = cp.create_destination(&p, s3("d")).await.expect("create");
    let cluster = register(&cp, &p, "c").await.cluster;
    let daily = cp
        .create_policy(
            &p,
            PolicySpec {
                name: "daily".into(),
                timezone: "Europe/Berlin".into(),
                schedules: vec![ScheduleSpec {
                    cron: "0 3 * * *".into(),
                    retain_days: 14,
                    keep_last: Some(3),
                }],
                suspended: false,
            },
        )
        .await
        .expect("create policy");

    let stale_hourly_version = hourly.version;
    let view = cp
        .create_backup_definition(&p, definition(cluster.id, Some(hourly.id), Some(dest.id), "nightly"))
        .await
        .expect("create definition");
    let def = view.definition;
    assert_eq!(
        view.effective_destination.map(|e| e.source),
        Some(DestinationSource::BackupDefinition)
    );
    let used = cp.get_policy(&p, &hourly.id).await.expect("get");
    assert_eq!(used.used_by.len(), 1);
    assert_eq!(
        (used.used_by[0].kind, used.used_by[0].id.as_str()),
        (ReferrerKind::K8sBackup, def.id.to_string().as_str())
    );
    expect_err!(
        cp.delete_policy(&p, &hourly.id, stale_hourly_version).await,
        crate::Error::PreconditionFailed { .. },
        "a delete with the version read before the attach"
    );
    let err = expect_err!(
        cp.delete_policy(&p, &hourly.id, used.version).await,
        crate::Error::Conflict { .. },
        "in use"
    );
    assert!(
        err.to_string().contains("nightly"),
        "the refusal names the definition: {err}"
    );

    // Rename and move to the other policy: usedBy follows in the same transaction.
    let mut spec = def.spec.clone();
    spec.name = "nightly-2".into();
    let moved = cp
        .update_backup_definition(&p, &def.id, spec.clone(), def.version)
        .await
        .expect("rename");
    assert_eq!(
        cp.get_policy(&p, &hourly.id).await.expect("get").used_by[0].name,
        "nightly-2"
    );
    expect_err!(
        cp.update_backup_definition(&p, &def.id, spec.clone(), def.version)
            .await,
        crate::Error::PreconditionFailed { .. },
        "a stale definition update"
    );
    spec.policy_id = Some(daily.id);
    let moved = cp
        .update_backup_definition(&p, &def.id, spec, moved.definition.version)
        .await
        .expect("move");
    assert!(cp.get_policy(&p, &hourly.id).await.expect("get").used_by.is_empty());
    assert_eq!(cp.get_policy(&p, &daily.id).await.expect("get").used_by.len(), 1);
    let hourly_now = cp.get_policy(&p, &hourly.id).await.expect("get");
    cp.delete_policy(&p, &hourly.id, hourly_now.version)
        .await
        .expect("an unused policy goes");
    expect_err!(
        cp.create_backup_definition(&p, definition(cluster.id, Some(hourly.id), Some(dest.id), "late"))
            .await,
        crate::Error::Invalid { .. },
        "a definition on a deleted policy"
    );

    cp.delete_backup_definition(&p, &def.id, moved.definition.version)
        .await
        .expect("delete definition");
    let daily_now = cp.get_policy(&p, &daily.id).await.expect("get");
    assert!(
        daily_now.used_by.is_empty(),
        "deleting the definition releases its policy"
    );
    cp.delete_policy(&p, &daily.id, daily_now.version)
        .await
        .expect("now deletable");
}
