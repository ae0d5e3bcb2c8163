//! Retention planning, pure: which recovery points to delete at `now`.
//!
//! A point goes when its expiry has passed, unless it is locked, is not READY (still
//! being written, or already being deleted), or is among the newest `keepLast` points of
//! its (definition, schedule row). The sweep (`ControlPlane::retention_sweep`) reads the
//! candidates through GSI2, the siblings of their definitions, plans here, and carries
//! the plan out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::ids::{BackupDefinitionId, RecoveryPointId};
use crate::recovery::{RecoveryPoint, RecoveryPointState};

/// Why a point past its expiry is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepReason {
    Locked,
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
    // The newest `keepLast` READY points of each (definition, rule) are protected.
    let mut groups: BTreeMap<(BackupDefinitionId, Option<u32>), Vec<&RecoveryPoint>> = BTreeMap::new();
    for p in points.iter().filter(|p| p.state == RecoveryPointState::Ready) {
        groups.entry((p.definition_id, p.rule)).or_default().push(p);
    }
    let mut protected = std::collections::BTreeSet::new();
    for group in groups.values_mut() {
        group.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let keep = group.iter().filter_map(|p| p.keep_last).max().unwrap_or(0) as usize;
        protected.extend(group.iter().take(keep).map(|p| p.id));
    }
    let mut expired: Vec<&RecoveryPoint> = points
        .iter()
        .filter(|p| p.expires_at.is_some_and(|at| at <= now))
        .collect();
    expired.sort_by_key(|p| (p.expires_at, p.created_at));
    let mut out = RetentionPlan::default();
    for p in expired {
        if p.locked {
            out.kept.push((p.id, KeepReason::Locked));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ids::{ClusterId, JobId, OrgId};
    use crate::recovery::RecoveryPointType;

    fn at(day: u64) -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::from_secs(day * 86_400)
    }

    fn point(def: BackupDefinitionId, created: u64, expires: Option<u64>, keep_last: Option<u32>) -> RecoveryPoint {
        RecoveryPoint {
            id: RecoveryPointId::new(),
            org_id: OrgId::new(),
            cluster_id: ClusterId::new(),
            definition_id: def,
            job_id: JobId::new(),
            rp_type: RecoveryPointType::Snapshot,
            state: RecoveryPointState::Ready,
            expires_at: expires.map(at),
            locked: false,
            rule: Some(0),
            keep_last,
            location: None,
            resource_count: 0,
            pv_count: 0,
            snapshot_bytes: 0,
            copy_bytes: 0,
            details: Default::default(),
            created_at: at(created),
            updated_at: at(created),
            version: 1,
        }
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
}
