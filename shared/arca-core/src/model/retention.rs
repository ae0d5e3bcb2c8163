//! Retention planning, pure: which recovery points to delete at `now`.
//!
//! A point goes when its expiry has passed, unless it is locked, is not READY (still
//! being written, or already being deleted), or is among the newest `keepLast` complete
//! points of its (definition, schedule row). A partial point (its job ended PARTIAL)
//! never counts toward `keepLast`: it goes at its own expiry, and three partial backups
//! in a row cannot keep themselves while every complete one expires. The sweep (`ControlPlane::retention_sweep`) reads the
//! candidates through GSI2, the siblings of their definitions, plans here, and carries
//! the plan out.
//!
//! RDS points follow the same rule ([`plan_rds`]), counted per (definition, database,
//! region, type): a snapshot and its cross-region copies are kept apart, so `keepLast`
//! 3 keeps three snapshots and three copies in each copy region.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::ids::{CloudAccountId, OrgId, RdsBackupDefinitionId, RecoveryPointId};
use crate::model::rds::{RdsDatabaseRef, RdsRecoveryPoint, RdsRecoveryPointState, RdsRecoveryPointType};
use crate::model::recovery::{RecoveryPoint, RecoveryPointState};

/// The newest items of each group, as many as the group asks for: the largest `keep_last`
/// among its members, so a `keepLast` lowered since still holds the points made under
/// the larger one until newer points push them out. `age` orders items, larger newer.
pub fn newest_per_group<'a, T, G: Ord, A: Ord>(
    items: impl IntoIterator<Item = &'a T>,
    group: impl Fn(&'a T) -> G,
    age: impl Fn(&'a T) -> A,
    keep_last: impl Fn(&'a T) -> Option<u32>,
) -> Vec<&'a T> {
    let mut groups: BTreeMap<G, Vec<&'a T>> = BTreeMap::new();
    for item in items {
        groups.entry(group(item)).or_default().push(item);
    }
    let mut out = Vec::new();
    for mut members in groups.into_values() {
        let keep = members.iter().filter_map(|m| keep_last(*m)).max().unwrap_or(0) as usize;
        if keep == 0 {
            continue;
        }
        members.sort_by_key(|m| std::cmp::Reverse(age(*m)));
        out.extend(members.into_iter().take(keep));
    }
    out
}

/// Why a point past its expiry is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepReason {
    Locked,
    /// Its Object Lock holds: its data cannot be deleted before the date.
    Immutable,
    /// Among the newest `keepLast` of its (definition, rule).
    KeepLast,
    /// PENDING (being written) or DELETING (already on its way out).
    NotReady,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Points to delete, oldest first.
    pub delete: Vec<RecoveryPointId>,
    /// Expired points kept, and why.
    pub kept: Vec<(RecoveryPointId, KeepReason)>,
}

/// Plans over `points`: every point of the definitions concerned (expired or not, since
/// `keepLast` counts the newest whatever their age).
pub fn plan(points: &[RecoveryPoint], now: DateTime<Utc>) -> RetentionPlan {
    // The newest `keepLast` complete READY points of each (definition, rule) are protected.
    let protected: BTreeSet<RecoveryPointId> = newest_per_group(
        points
            .iter()
            .filter(|p| p.state == RecoveryPointState::Ready && !p.partial),
        |p| (p.definition_id, p.rule),
        |p| (p.created_at, p.id),
        |p| p.keep_last,
    )
    .into_iter()
    .map(|p| p.id)
    .collect();
    let mut expired: Vec<&RecoveryPoint> = points
        .iter()
        .filter(|p| p.expires_at.is_some_and(|at| at <= now))
        .collect();
    expired.sort_by_key(|p| (p.expires_at, p.created_at));
    let mut out = RetentionPlan::default();
    for p in expired {
        if p.locked {
            out.kept.push((p.id, KeepReason::Locked));
        } else if p.immutable_at(now).is_some() {
            out.kept.push((p.id, KeepReason::Immutable));
        } else if p.state != RecoveryPointState::Ready {
            out.kept.push((p.id, KeepReason::NotReady));
        } else if protected.contains(&p.id) {
            out.kept.push((p.id, KeepReason::KeepLast));
        } else {
            out.delete.push(p.id);
        }
    }
    out
}

/// What to do with due RDS points: delete, or keep with a reason for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RdsRetentionPlan {
    /// In the order the points were due.
    pub delete: Vec<RecoveryPointId>,
    pub kept: Vec<(RecoveryPointId, String)>,
}

/// The RDS group `keepLast` counts in. The account is part of it because a database
/// name only means one database within one account.
type RdsGroup<'a> = (
    OrgId,
    Option<RdsBackupDefinitionId>,
    CloudAccountId,
    &'a RdsDatabaseRef,
    &'a str,
    &'static str,
);

fn rds_group(p: &RdsRecoveryPoint) -> RdsGroup<'_> {
    (
        p.org_id,
        p.definition_id,
        p.cloud_account_id,
        &p.database,
        &p.snapshot.region,
        rds_kind(p.rp_type),
    )
}

fn rds_kind(t: RdsRecoveryPointType) -> &'static str {
    match t {
        RdsRecoveryPointType::Snapshot => "snapshots",
        RdsRecoveryPointType::Copy => "copies",
    }
}

/// Plans over `due` (the points whose expiry has passed, as the expiry index returned
/// them) with `siblings`: the other points of their definitions, expired or not, since
/// `keepLast` counts the newest whatever their age. A due point goes unless it is still
/// CREATING or among the newest `keepLast` AVAILABLE points of its group; FAILED points
/// count toward nothing and go at their expiry (only their record is left), and so do
/// points made without a definition.
pub fn plan_rds(due: &[RdsRecoveryPoint], siblings: &[RdsRecoveryPoint]) -> RdsRetentionPlan {
    // A point may be in both lists; the sibling (read from the table) wins over the
    // index's copy, which may lag.
    let mut all: BTreeMap<RecoveryPointId, &RdsRecoveryPoint> = due.iter().map(|p| (p.id, p)).collect();
    all.extend(siblings.iter().map(|p| (p.id, p)));
    let protected: BTreeSet<RecoveryPointId> = newest_per_group(
        all.values()
            .copied()
            .filter(|p| p.state == RdsRecoveryPointState::Available && p.definition_id.is_some()),
        rds_group,
        |p| (p.created_at, p.id),
        |p| p.keep_last,
    )
    .into_iter()
    .map(|p| p.id)
    .collect();
    let mut out = RdsRetentionPlan::default();
    for p in due {
        if p.state == RdsRecoveryPointState::Creating {
            out.kept.push((p.id, "still being created".into()));
        } else if protected.contains(&p.id) {
            let def = p.definition_id.map(|d| d.to_string()).unwrap_or_default();
            out.kept.push((
                p.id,
                format!(
                    "among the newest keepLast {} of definition {def} for {} in {}",
                    rds_kind(p.rp_type),
                    p.database.identifier,
                    p.snapshot.region
                ),
            ));
        } else {
            out.delete.push(p.id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ids::{BackupDefinitionId, JobId};

    fn at(day: u64) -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::from_secs(day * 86_400)
    }

    fn point(def: BackupDefinitionId, created: u64, expires: Option<u64>, keep_last: Option<u32>) -> RecoveryPoint {
        RecoveryPoint {
            keep_last,
            ..RecoveryPoint::fixture(def, at(created), expires.map(at))
        }
    }

    #[test]
    fn an_object_lock_outlives_the_expiry_and_then_lets_go() {
        use crate::model::destination::LockMode;
        use crate::model::recovery::PointLock;
        let def = BackupDefinitionId::new();
        let mut immutable = point(def, 0, Some(7), None);
        immutable.object_lock = Some(PointLock {
            mode: LockMode::Compliance,
            retain_until: at(8),
        });
        let held = plan(std::slice::from_ref(&immutable), at(7));
        assert_eq!(held.delete, vec![]);
        assert_eq!(held.kept, vec![(immutable.id, KeepReason::Immutable)]);
        assert!(!immutable.is_expired(at(7)));
        assert_eq!(plan(std::slice::from_ref(&immutable), at(8)).delete, vec![immutable.id]);
        assert!(immutable.is_expired(at(8)));
    }

    #[test]
    fn expired_points_go_locked_and_unexpired_ones_stay() {
        let def = BackupDefinitionId::new();
        let old = point(def, 0, Some(7), None);
        let mut locked = point(def, 1, Some(8), None);
        locked.locked = true;
        let young = point(def, 5, Some(12), None);
        let forever = point(def, 0, None, None);
        let mut deleting = point(def, 2, Some(9), None);
        deleting.state = RecoveryPointState::Deleting;
        let plan = plan(&[old.clone(), locked.clone(), young, forever, deleting.clone()], at(10));
        assert_eq!(plan.delete, vec![old.id]);
        assert_eq!(
            plan.kept,
            vec![(locked.id, KeepReason::Locked), (deleting.id, KeepReason::NotReady)]
        );
    }

    #[test]
    fn keep_last_holds_the_newest_whatever_their_age() {
        let def = BackupDefinitionId::new();
        let other = BackupDefinitionId::new();
        // Five daily points, all expired; keepLast 2 keeps the two newest.
        let points: Vec<_> = (0..5).map(|d| point(def, d, Some(d + 1), Some(2))).collect();
        // Another definition's points do not count toward this one's keepLast.
        let foreign = point(other, 9, Some(9), None);
        let mut all = points.clone();
        all.push(foreign.clone());
        let plan = plan(&all, at(30));
        assert_eq!(
            plan.delete,
            vec![points[0].id, points[1].id, points[2].id, foreign.id],
            "oldest first; the newest two of `def` are kept"
        );
        assert_eq!(
            plan.kept,
            vec![
                (points[3].id, KeepReason::KeepLast),
                (points[4].id, KeepReason::KeepLast)
            ]
        );
    }

    #[test]
    fn partial_points_never_count_toward_keep_last() {
        let def = BackupDefinitionId::new();
        // Three complete points, then three partial ones, all expired; keepLast 3.
        let complete: Vec<_> = (0..3).map(|d| point(def, d, Some(d + 1), Some(3))).collect();
        let partial: Vec<_> = (3..6)
            .map(|d| {
                let mut p = point(def, d, Some(d + 1), Some(3));
                p.partial = true;
                p
            })
            .collect();
        let mut all = complete.clone();
        all.extend(partial.iter().cloned());
        let plan = plan(&all, at(30));
        assert_eq!(
            plan.delete,
            partial.iter().map(|p| p.id).collect::<Vec<_>>(),
            "the partial points go at their expiry"
        );
        assert_eq!(
            plan.kept,
            complete
                .iter()
                .map(|p| (p.id, KeepReason::KeepLast))
                .collect::<Vec<_>>(),
            "the newest three complete points are what keepLast holds"
        );
        // Not yet expired, a partial point stays like any other.
        let mut young = point(def, 29, Some(40), Some(3));
        young.partial = true;
        let later = super::plan(&[young], at(30));
        assert!(later.delete.is_empty() && later.kept.is_empty(), "{later:?}");
    }

    fn rds_point(
        def: Option<RdsBackupDefinitionId>,
        db: &str,
        region: &str,
        rp_type: RdsRecoveryPointType,
        created: u64,
        keep_last: Option<u32>,
    ) -> RdsRecoveryPoint {
        // Shared by every point of a test, so that only the fields under test differ.
        const ORG: &str = "org_01ARZ3NDEKTSV4RRFFQ69G5FAV";
        const ACCOUNT: &str = "ca_01ARZ3NDEKTSV4RRFFQ69G5FAV";
        RdsRecoveryPoint {
            id: RecoveryPointId::new(),
            org_id: ORG.parse().unwrap(),
            definition_id: def,
            job_id: JobId::new(),
            cloud_account_id: ACCOUNT.parse().unwrap(),
            rp_type,
            state: RdsRecoveryPointState::Available,
            database: RdsDatabaseRef {
                identifier: db.into(),
                cluster: false,
            },
            snapshot: crate::model::rds::RdsSnapshotRef {
                identifier: format!("arca-{db}-{created}"),
                arn: String::new(),
                region: region.into(),
                cluster: false,
            },
            source_recovery_point_id: None,
            engine: None,
            encrypted: false,
            expires_at: Some(at(created + 1)),
            keep_last,
            verification: None,
            created_at: at(created),
            updated_at: at(created),
            version: 1,
        }
    }

    fn ids(points: &[&RdsRecoveryPoint]) -> Vec<RecoveryPointId> {
        points.iter().map(|p| p.id).collect()
    }

    /// What `plan_rds` keeps for `keepLast`, in `due` order.
    fn kept_for_keep_last(plan: &RdsRetentionPlan) -> Vec<RecoveryPointId> {
        plan.kept
            .iter()
            .filter(|(_, why)| why.starts_with("among the newest keepLast"))
            .map(|(id, _)| *id)
            .collect()
    }

    #[test]
    fn rds_keep_last_holds_the_newest_of_each_database_region_and_type() {
        use RdsRecoveryPointType::{Copy, Snapshot};
        let def = Some(RdsBackupDefinitionId::new());
        let series = |db: &str, region: &str, t: RdsRecoveryPointType| -> Vec<RdsRecoveryPoint> {
            (0..4).map(|d| rds_point(def, db, region, t, d, Some(2))).collect()
        };
        // Four expired days of each group: orders' snapshots (east) and copies (west),
        // and ledger's snapshots; keepLast 2 keeps the two newest of each.
        let orders = series("orders", "us-east-1", Snapshot);
        let copies = series("orders", "us-west-2", Copy);
        let ledger = series("ledger", "us-east-1", Snapshot);
        // Copies of orders in a second region are counted on their own.
        let far = series("orders", "eu-west-1", Copy);
        let due: Vec<RdsRecoveryPoint> = [&orders, &copies, &ledger, &far]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let plan = plan_rds(&due, &due);
        let mut want_deleted = Vec::new();
        let mut want_kept = Vec::new();
        for group in [&orders, &copies, &ledger, &far] {
            want_deleted.extend(ids(&[&group[0], &group[1]]));
            want_kept.extend(ids(&[&group[2], &group[3]]));
        }
        assert_eq!(plan.delete, want_deleted, "the two oldest of each group go");
        assert_eq!(kept_for_keep_last(&plan), want_kept);
        assert_eq!(plan.kept.len(), want_kept.len(), "{:?}", plan.kept);
        assert!(
            plan.kept[0].1.contains("snapshots") && plan.kept[0].1.contains("orders"),
            "{:?}",
            plan.kept[0]
        );
        assert!(plan.kept[2].1.contains("copies") && plan.kept[2].1.contains("us-west-2"));
    }

    #[test]
    fn rds_keep_last_counts_unexpired_siblings_and_only_available_points() {
        use RdsRecoveryPointType::Snapshot;
        let def = RdsBackupDefinitionId::new();
        let p = |created, keep| rds_point(Some(def), "orders", "us-east-1", Snapshot, created, keep);
        let (old, older_kept) = (p(0, Some(2)), p(1, Some(2)));
        let (mut failed, mut creating) = (p(2, Some(2)), p(3, Some(2)));
        failed.state = RdsRecoveryPointState::Failed;
        creating.state = RdsRecoveryPointState::Creating;
        // Not due yet, but the newest: one of the two that keepLast keeps.
        let young = p(5, Some(2));
        let due = vec![old.clone(), older_kept.clone(), failed.clone(), creating.clone()];
        let siblings = vec![old.clone(), older_kept.clone(), failed.clone(), creating.clone(), young];
        let plan = plan_rds(&due, &siblings);
        // FAILED and CREATING do not count toward the two: `older_kept` is the second.
        assert_eq!(plan.delete, vec![old.id, failed.id]);
        assert_eq!(
            plan.kept,
            vec![
                (
                    older_kept.id,
                    format!("among the newest keepLast snapshots of definition {def} for orders in us-east-1")
                ),
                (creating.id, "still being created".to_string()),
            ]
        );
        // Without its siblings the plan would keep `old` too: they are what pushes it out.
        let alone = plan_rds(&due, &due);
        assert_eq!(kept_for_keep_last(&alone), vec![old.id, older_kept.id]);
    }

    #[test]
    fn rds_points_without_definition_or_keep_last_go_at_their_expiry() {
        use RdsRecoveryPointType::Snapshot;
        let def = Some(RdsBackupDefinitionId::new());
        let manual: Vec<_> = (0..3)
            .map(|d| rds_point(None, "orders", "us-east-1", Snapshot, d, Some(5)))
            .collect();
        let plain: Vec<_> = (0..3)
            .map(|d| rds_point(def, "ledger", "us-east-1", Snapshot, d, None))
            .collect();
        let due: Vec<_> = manual.iter().chain(&plain).cloned().collect();
        let plan = plan_rds(&due, &due);
        assert_eq!(plan.delete, due.iter().map(|p| p.id).collect::<Vec<_>>());
        assert!(plan.kept.is_empty(), "{:?}", plan.kept);
    }

    #[test]
    fn newest_per_group_keeps_the_largest_keep_last_asked_in_a_group() {
        // (group, age, keep_last)
        let items = [
            (1, 1, Some(1)),
            (1, 2, None),
            (1, 3, Some(2)),
            (2, 1, None),
            (2, 2, None),
        ];
        let kept = newest_per_group(items.iter(), |i| i.0, |i| i.1, |i| i.2);
        assert_eq!(kept, vec![&items[2], &items[1]], "group 1 keeps 2; group 2 asks none");
    }
}
