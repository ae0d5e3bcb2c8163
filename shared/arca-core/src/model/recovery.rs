//! Recovery points: the restorable result of a backup.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BackupDefinitionId, ClusterId, DestinationId, JobId, OrgId, RecoveryPointId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecoveryPointType {
    /// Resources plus CSI snapshots left in the cluster's storage.
    Snapshot,
    /// Resources plus PV data copied to a destination.
    Copy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecoveryPointState {
    /// Being written by its job.
    Pending,
    /// Complete and restorable.
    Ready,
    /// Expired or deleted; its data is being removed.
    Deleting,
}

/// Where the recovery point's data is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPointLocation {
    pub destination_id: DestinationId,
    /// The key prefix of this recovery point inside the destination.
    pub prefix: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPoint {
    pub id: RecoveryPointId,
    pub org_id: OrgId,
    pub cluster_id: ClusterId,
    pub definition_id: BackupDefinitionId,
    /// The job that produced it.
    pub job_id: JobId,
    #[serde(rename = "type")]
    pub rp_type: RecoveryPointType,
    pub state: RecoveryPointState,
    /// Its job ended PARTIAL (objects or volumes left out): restorable, but it never
    /// counts toward `keepLast`, so bad points cannot protect themselves while good ones
    /// expire; it goes at its own expiry.
    #[serde(default)]
    pub partial: bool,
    /// DELETING, and its data in the destination is deleted; what Arca made on AWS for
    /// it (EBS snapshots) goes next, then the point (retention retries until it can).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data_deleted: bool,
    /// When retention lets it go; `None` keeps it until deleted by hand.
    pub expires_at: Option<DateTime<Utc>>,
    /// Locked points are never removed by retention.
    #[serde(default)]
    pub locked: bool,
    /// Its data is immutable (S3 Object Lock) until a date: nothing deletes it earlier,
    /// retention included, whatever its expiry says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<PointLock>,
    /// The policy schedule row that produced it (`None`: a manual run). Points of one
    /// (definition, rule) share a `keepLast`.
    #[serde(default)]
    pub rule: Option<u32>,
    /// The newest this-many points of the same (definition, rule) are kept whatever
    /// their age.
    #[serde(default)]
    pub keep_last: Option<u32>,
    pub location: Option<RecoveryPointLocation>,
    #[serde(default)]
    pub resource_count: u64,
    #[serde(default)]
    pub pv_count: u64,
    #[serde(default)]
    pub snapshot_bytes: u64,
    #[serde(default)]
    pub copy_bytes: u64,
    /// Counts per kind and namespace, warnings and errors of the backup (bounded).
    #[serde(flatten)]
    pub details: BackupDetails,
    /// Its latest restore verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::model::verification::PointVerification>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// The key of cluster-scoped objects in [`BackupDetails::counts_by_namespace`].
pub const CLUSTER_SCOPED: &str = "(cluster)";
/// Where counts beyond [`MAX_COUNT_KEYS`] keys are summed.
pub const OTHER_KEYS: &str = "(other)";
/// At most this many keys in each count map (DynamoDB items are at most 400 KB).
pub const MAX_COUNT_KEYS: usize = 500;
/// At most this many warnings and this many errors are listed; the counts are exact.
pub const MAX_ISSUES: usize = 100;
/// Longest reason kept, in bytes.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest resource, namespace or name kept, in bytes (Kubernetes names are at most 253).
const MAX_NAME_CHARS: usize = 320;
/// The most bytes the details may take as stored: within DynamoDB's 400 KB item with
/// room for the rest of the point, whatever an agent reports.
pub const MAX_DETAILS_BYTES: usize = 256 * 1024;

/// An object or a whole type left out of a backup, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIssue {
    /// `plural.group` (`deployments.apps`; the plural alone for the core group).
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Empty when the issue concerns the whole type (in `namespace`, if any).
    #[serde(default)]
    pub name: String,
    pub reason: String,
}

/// What a backup reports besides its totals: counts by kind (`plural.group`) and by
/// namespace ([`CLUSTER_SCOPED`] for cluster-scoped objects), the objects skipped with
/// their reasons (warnings) and the types that could not be listed (errors). Bounded by
/// [`BackupDetails::bounded`] so a recovery point item stays far below 400 KB.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupDetails {
    #[serde(default)]
    pub counts_by_kind: BTreeMap<String, u64>,
    #[serde(default)]
    pub counts_by_namespace: BTreeMap<String, u64>,
    /// How many objects were skipped (all of them, not only those listed).
    #[serde(default)]
    pub warning_count: u64,
    /// The first [`MAX_ISSUES`] skipped objects.
    #[serde(default)]
    pub warnings: Vec<ResourceIssue>,
    #[serde(default)]
    pub error_count: u64,
    /// The first [`MAX_ISSUES`] failures (types or namespaces whose listing failed).
    #[serde(default)]
    pub errors: Vec<ResourceIssue>,
    /// The persistent volumes the backup captured (CSI snapshots, repository copies): what
    /// a restore rebuilds claims from and a deletion removes. At most [`MAX_VOLUMES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeRecord>,
    /// The hook commands that ran around the volume snapshots, in the order they ran:
    /// at most [`crate::model::hooks::MAX_HOOK_OUTCOMES`], each bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::model::hooks::HookOutcome>,
}

/// At most this many volumes are recorded on a recovery point (each well under 1 KB).
pub const MAX_VOLUMES: usize = 200;

/// One PVC's data as a backup captured it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    /// The claim, in the source cluster.
    pub namespace: String,
    pub pvc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pv: Option<String>,
    /// The CSI driver of its volume.
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `Filesystem` or `Block`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<String>,
    /// The claim's capacity (or request) in bytes.
    #[serde(default)]
    pub size_bytes: u64,
    /// The CSI VolumeSnapshot left in the cluster (in the claim's namespace); `None` when
    /// there is none (deleted after its copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<CsiSnapshotRecord>,
    /// The copy in the destination's volume repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<VolumeCopyRecord>,
}

/// A ready CSI VolumeSnapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsiSnapshotRecord {
    pub name: String,
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The storage system's id of the snapshot (to import it into another namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<u64>,
}

/// A volume snapshot in the destination's repository (`shared/arca-repo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeCopyRecord {
    /// The repository's key prefix inside the destination.
    pub repository: String,
    /// The volume's name in the repository (its history).
    pub volume: String,
    /// The repository snapshot's id (hex).
    pub snapshot_id: String,
    #[serde(default)]
    pub size: u64,
    /// Plaintext bytes new to the repository, and what they took once compressed and sealed.
    #[serde(default)]
    pub bytes_new: u64,
    #[serde(default)]
    pub bytes_stored: u64,
}

fn truncated(text: &str, max: usize) -> String {
    super::cut_to_bytes(text.to_string(), max)
}

fn bounded_counts(counts: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    if counts.len() <= MAX_COUNT_KEYS {
        return counts
            .into_iter()
            .map(|(k, v)| (truncated(&k, MAX_NAME_CHARS), v))
            .collect();
    }
    // The biggest keep their own key; the rest are summed under OTHER_KEYS.
    let mut all: Vec<(String, u64)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rest: u64 = all.iter().skip(MAX_COUNT_KEYS - 1).map(|(_, v)| v).sum();
    let mut out: BTreeMap<String, u64> = all
        .into_iter()
        .take(MAX_COUNT_KEYS - 1)
        .map(|(k, v)| (truncated(&k, MAX_NAME_CHARS), v))
        .collect();
    *out.entry(OTHER_KEYS.to_string()).or_default() += rest;
    out
}

fn bounded_issues(issues: Vec<ResourceIssue>) -> Vec<ResourceIssue> {
    issues
        .into_iter()
        .take(MAX_ISSUES)
        .map(|i| ResourceIssue {
            resource: truncated(&i.resource, MAX_NAME_CHARS),
            namespace: i.namespace.map(|n| truncated(&n, MAX_NAME_CHARS)),
            name: truncated(&i.name, MAX_NAME_CHARS),
            reason: truncated(&i.reason, MAX_REASON_CHARS),
        })
        .collect()
}

impl BackupDetails {
    /// Within the stored bounds: at most [`MAX_COUNT_KEYS`] keys per count map (the
    /// smallest summed under [`OTHER_KEYS`]), at most [`MAX_ISSUES`] warnings and errors
    /// (the counts stay exact, never below the list's length), strings truncated.
    pub fn bounded(self) -> Self {
        let warning_count = self.warning_count.max(self.warnings.len() as u64);
        let error_count = self.error_count.max(self.errors.len() as u64);
        BackupDetails {
            counts_by_kind: bounded_counts(self.counts_by_kind),
            counts_by_namespace: bounded_counts(self.counts_by_namespace),
            warning_count,
            warnings: bounded_issues(self.warnings),
            error_count,
            errors: bounded_issues(self.errors),
            // Kubernetes names are short; a record beyond 4 KB is not one an agent made.
            volumes: self
                .volumes
                .into_iter()
                .filter(|v| serde_json::to_vec(v).is_ok_and(|b| b.len() <= 4096))
                .take(MAX_VOLUMES)
                .collect(),
            hooks: self
                .hooks
                .into_iter()
                .take(crate::model::hooks::MAX_HOOK_OUTCOMES)
                .map(crate::model::hooks::HookOutcome::bounded)
                .collect(),
        }
        .within_budget()
    }

    /// Drops listed warnings, then errors, then count keys (the smallest summed under
    /// [`OTHER_KEYS`]) until the details fit [`MAX_DETAILS_BYTES`]; the counts stay exact.
    /// Each pass drops what the measured excess needs, so it takes a few passes at most.
    fn within_budget(mut self) -> Self {
        let size = |d: &BackupDetails| serde_json::to_vec(d).map(|b| b.len()).unwrap_or(usize::MAX);
        let json_len = |i: &ResourceIssue| serde_json::to_vec(i).map(|b| b.len()).unwrap_or(0) + 1;
        loop {
            let total = size(&self);
            if total <= MAX_DETAILS_BYTES {
                return self;
            }
            let mut excess = total - MAX_DETAILS_BYTES;
            for list in [&mut self.warnings, &mut self.errors] {
                while excess > 0 {
                    let Some(issue) = list.pop() else { break };
                    excess = excess.saturating_sub(json_len(&issue));
                }
            }
            for map in [&mut self.counts_by_kind, &mut self.counts_by_namespace] {
                let mut smallest: Vec<(String, u64)> = map
                    .iter()
                    .filter(|(k, _)| k.as_str() != OTHER_KEYS)
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                smallest.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
                for (key, n) in smallest {
                    if excess == 0 {
                        break;
                    }
                    map.remove(&key);
                    *map.entry(OTHER_KEYS.to_string()).or_default() += n;
                    excess = excess.saturating_sub(key.len() + 24);
                }
            }
            if excess > 0 && size(&self) == total {
                // Nothing left to drop: what remains is what it is.
                return self;
            }
        }
    }
}

impl RecoveryPoint {
    /// A READY, unlocked snapshot point of `definition_id` (a new org, cluster and job),
    /// from schedule row 0, empty: what the crate's tests, the `testing` suites and the API
    /// tests start from.
    #[cfg(any(test, feature = "testing"))]
    pub fn fixture(
        definition_id: BackupDefinitionId,
        created_at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        RecoveryPoint {
            id: RecoveryPointId::new(),
            org_id: OrgId::new(),
            cluster_id: ClusterId::new(),
            definition_id,
            job_id: JobId::new(),
            rp_type: RecoveryPointType::Snapshot,
            state: RecoveryPointState::Ready,
            partial: false,
            data_deleted: false,
            expires_at,
            locked: false,
            object_lock: None,
            rule: Some(0),
            keep_last: None,
            location: None,
            resource_count: 0,
            pv_count: 0,
            snapshot_bytes: 0,
            copy_bytes: 0,
            details: BackupDetails::default(),
            verification: None,
            created_at,
            updated_at: created_at,
            version: 1,
        }
    }

    /// Whether retention may remove it at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        !self.locked && self.immutable_at(now).is_none() && self.expires_at.is_some_and(|at| at <= now)
    }

    /// Its Object Lock, while it still holds at `now`.
    pub fn immutable_at(&self, now: DateTime<Utc>) -> Option<&PointLock> {
        self.object_lock.as_ref().filter(|l| l.retain_until > now)
    }
}

/// A recovery point's immutability: the Object Lock mode its objects were written with,
/// and the date they are retained until.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointLock {
    pub mode: crate::model::destination::LockMode,
    pub retain_until: DateTime<Utc>,
}

impl PointLock {
    /// Why it cannot be deleted, for errors: "immutable until <date> (S3 Object Lock, <mode>)".
    pub fn reason(&self) -> String {
        format!(
            "immutable until {} (S3 Object Lock, {})",
            self.retain_until.to_rfc3339(),
            self.mode
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_bounded_for_the_item_size_limit() {
        let issue = |i: usize| ResourceIssue {
            resource: "configmaps".into(),
            namespace: Some("ns".into()),
            name: format!("cm-{i}"),
            reason: "x".repeat(2_000),
        };
        let details = BackupDetails {
            counts_by_kind: (0..3).map(|i| (format!("k{i}"), 1)).collect(),
            counts_by_namespace: (0..2_000).map(|i| (format!("ns-{i:04}"), 1 + (i as u64 % 3))).collect(),
            warning_count: 0,
            warnings: (0..1_000).map(issue).collect(),
            error_count: 7,
            errors: vec![issue(0)],
            volumes: Vec::new(),
            hooks: Vec::new(),
        }
        .bounded();
        assert_eq!(details.counts_by_kind.len(), 3, "small maps stay as they are");
        assert_eq!(details.counts_by_namespace.len(), MAX_COUNT_KEYS);
        let total: u64 = (0..2_000u64).map(|i| 1 + i % 3).sum();
        assert_eq!(
            details.counts_by_namespace.values().sum::<u64>(),
            total,
            "nothing is lost"
        );
        assert!(details.counts_by_namespace.contains_key(OTHER_KEYS));
        assert_eq!(details.warnings.len(), MAX_ISSUES);
        assert_eq!(
            details.warning_count, 1_000,
            "the count covers what the list leaves out"
        );
        assert_eq!(details.error_count, 7);
        assert!(details.warnings[0].reason.len() <= MAX_REASON_CHARS);
        let bytes = serde_json::to_vec(&details).unwrap().len();
        assert!(bytes < 200_000, "{bytes} bytes");
    }

    #[test]
    fn volumes_are_capped_and_oversized_records_dropped() {
        let volume = |i: usize| VolumeRecord {
            namespace: "ns".into(),
            pvc: format!("data-{i}"),
            driver: "csi.example.com".into(),
            ..Default::default()
        };
        let mut volumes: Vec<VolumeRecord> = (0..MAX_VOLUMES + 5).map(volume).collect();
        volumes[0].pvc = "x".repeat(10_000);
        let details = BackupDetails {
            volumes,
            ..Default::default()
        }
        .bounded();
        assert_eq!(details.volumes.len(), MAX_VOLUMES);
        assert_eq!(details.volumes[0].pvc, "data-1");
        let json = serde_json::to_value(BackupDetails::default()).unwrap();
        assert!(json.get("volumes").is_none(), "absent when empty: {json}");
    }

    #[test]
    fn old_items_without_details_still_read() {
        let d: BackupDetails = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(d, BackupDetails::default());
    }

    #[test]
    fn details_fit_an_item_whatever_the_agent_sends() {
        // Four-byte characters everywhere, every list and map at its bound.
        let wide = |n: usize| "𝄞".repeat(n);
        let issue = || ResourceIssue {
            resource: wide(400),
            namespace: Some(wide(400)),
            name: wide(400),
            reason: wide(2_000),
        };
        let counts = |tag: &str| {
            (0..2_000u64)
                .map(|i| (format!("{tag}{i}{}", wide(300)), i + 1))
                .collect()
        };
        let details = BackupDetails {
            counts_by_kind: counts("k"),
            counts_by_namespace: counts("n"),
            warning_count: 0,
            warnings: (0..1_000).map(|_| issue()).collect(),
            error_count: 0,
            errors: (0..1_000).map(|_| issue()).collect(),
            volumes: Vec::new(),
            hooks: (0..1_000)
                .map(|_| crate::model::hooks::HookOutcome {
                    hook: wide(300),
                    phase: crate::model::hooks::HookPhase::Pre,
                    namespace: wide(400),
                    pod: wide(400),
                    container: wide(400),
                    command: (0..64).map(|_| wide(4096)).collect(),
                    result: crate::model::hooks::HookResult::Failed,
                    exit_code: Some(1),
                    duration_ms: 1,
                    on_error: crate::model::hooks::OnError::Continue,
                    output: wide(100_000),
                })
                .collect(),
        }
        .bounded();
        let bytes = serde_json::to_vec(&details).unwrap().len();
        assert!(bytes <= MAX_DETAILS_BYTES, "{bytes} bytes");
        assert_eq!(
            (details.warning_count, details.error_count),
            (1_000, 1_000),
            "counts stay exact"
        );
        let total: u64 = (0..2_000u64).map(|i| i + 1).sum();
        assert_eq!(details.counts_by_kind.values().sum::<u64>(), total, "nothing is lost");
        assert_eq!(details.counts_by_namespace.values().sum::<u64>(), total);
        assert_eq!(
            details.hooks.len(),
            crate::model::hooks::MAX_HOOK_OUTCOMES,
            "hook outcomes are kept, bounded"
        );
    }
}
