//! CSI orchestration: the persistent-volume part of K8S_BACKUP, K8S_RESTORE and
//! DELETE_BACKUP jobs (`docs/volumes.md`).
//!
//! - [`backup`]: for each selected claim, a VolumeSnapshot with the class of its CSI driver,
//!   awaited until `readyToUse`; with `snapshotAndCopy`, a temporary claim cloned from it in
//!   block mode and a mover Job (this agent's image, `arca-agent volume backup`) that copies
//!   the device into the destination's volume repository ([`repo`]).
//! - [`restore`]: a [`crate::resources::restore::ClaimData`] for the resource restore, which
//!   creates each claim once, with its original name, from the VolumeSnapshot prepared here
//!   (the original one, one imported into the target namespace, or one taken of a temporary
//!   claim a mover Job filled from the repository).
//! - [`delete`]: the recovery point's VolumeSnapshots and repository snapshots.
//!
//! The planning (names, manifests, choices) is pure and unit-tested; the kube calls are thin.

pub mod backup;
pub mod delete;
pub mod ebs_direct;
pub mod mover;
pub mod repo;
pub mod restore;
pub mod snapshot;
pub mod snapshot_metadata;

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::resources::restore::ClaimSource;
pub use arca_core::model::recovery::{CsiSnapshotRecord, VolumeCopyRecord, VolumeRecord};
pub use backup::{BackupRequest, Snapshots, VolumesOutcome, backup};
pub use delete::delete;
pub use repo::Repo;
pub use restore::VolumeRestore;

/// Label on every object the agent creates for volumes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "arca");
/// The job that made an object.
pub const JOB_LABEL: &str = "arca.dev/job-id";
/// What an object is for: `backup-snapshot`, `copy-source`, `mover`, `restore-source`, ...
pub const ROLE_LABEL: &str = "arca.dev/role";
/// The restore an object belongs to (as on every restored object).
pub use crate::resources::clean::RESTORE_ID_LABEL as RESTORE_LABEL;

/// How volume work runs.
#[derive(Clone, Debug)]
pub struct VolumeOptions {
    /// The image of mover Jobs: this agent's (`ARCA_MOVER_IMAGE`, which the install
    /// manifest and the chart set to the agent's own image; else the locally built agent
    /// image of this version).
    pub mover_image: String,
    /// The namespace of everything a mover needs (its Job, its Secret, the temporary
    /// claims and the snapshot imports they come from): the agent's own (`None`: the
    /// client's default namespace, the service account's in a Pod). Never an
    /// application's: reading its Secrets would give away the org's repository passphrase
    /// and the bucket's keys.
    pub namespace: Option<String>,
    /// The service account mover pods run as (default: the agent namespace's default).
    pub mover_service_account: Option<String>,
    /// How long a VolumeSnapshot may take to become ready.
    pub snapshot_timeout: Duration,
    /// How long one mover Job may run.
    pub mover_timeout: Duration,
    /// How long the end of a restore waits for restored claims to be provisioned from the
    /// snapshots it made (then deletes those snapshots; a claim still pending keeps its own).
    pub claim_bind_timeout: Duration,
    /// How often the agent looks at what it waits for.
    pub poll_every: Duration,
    /// Claims worked on at once.
    pub parallel: usize,
    /// Cost of the key file when the agent creates a repository.
    pub repo_kdf: arca_repo::KdfParams,
    /// How long before a running mover's credentials expire the agent renews them
    /// (`mover::renewal_due`; `ARCA_MOVER_RENEWAL_MARGIN_SECS`).
    pub renewal_margin: Duration,
}

impl VolumeOptions {
    /// The namespace movers run in ([`VolumeOptions::namespace`]).
    pub fn mover_namespace(&self, client: &kube::Client) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string())
    }
}

/// Vended access renewed while a mover runs: the control plane's credentials for the job
/// again (and a `credentialsRef` Secret read again), for the same repository.
#[async_trait::async_trait]
pub trait RepoAccess: Send + Sync {
    /// The repository at `prefix` with fresh access.
    async fn reopen(&self, prefix: &str) -> Result<Repo, String>;
}

impl std::fmt::Debug for dyn RepoAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepoAccess")
    }
}

/// A [`mover::Renewal`] of `repo`'s mover Secret through a [`RepoAccess`].
pub struct RepoRenewal {
    pub access: std::sync::Arc<dyn RepoAccess>,
    pub prefix: String,
}

#[async_trait::async_trait]
impl mover::Renewal for RepoRenewal {
    async fn secret(&self) -> Result<BTreeMap<String, String>, String> {
        Ok(self.access.reopen(&self.prefix).await?.mover_secret())
    }
}

/// The Secret of a mover of `repo`, renewed through `access` when there is one.
pub fn mover_secret(
    opts: &VolumeOptions,
    repo: &Repo,
    access: Option<&std::sync::Arc<dyn RepoAccess>>,
) -> mover::MoverSecret {
    let data = repo.mover_secret();
    // Only credentials that expire are worth renewing.
    let renewal = access.filter(|_| mover::credentials_expiry(&data).is_some()).map(|a| {
        std::sync::Arc::new(RepoRenewal {
            access: a.clone(),
            prefix: repo.prefix.clone(),
        }) as std::sync::Arc<dyn mover::Renewal>
    });
    mover::MoverSecret {
        data,
        renewal,
        margin: opts.renewal_margin,
    }
}

/// The agent image mover Jobs run unless `ARCA_MOVER_IMAGE` says otherwise (the install
/// manifest and the chart set it to the agent's own image): the name
/// `scripts/agent-image.sh build` gives the image (arca_api::state::DEFAULT_AGENT_IMAGE).
pub fn default_mover_image() -> String {
    std::env::var("ARCA_MOVER_IMAGE")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("arca.local/arca-agent:{}", env!("CARGO_PKG_VERSION")))
}

/// 15 minutes: the control plane vends at most an hour (role chaining), the kubelet
/// takes up to about two minutes to refresh the mover's files, and the mover re-reads them
/// from 5 minutes before expiry.
const DEFAULT_RENEWAL_MARGIN: Duration = Duration::from_secs(15 * 60);

fn renewal_margin() -> Duration {
    std::env::var("ARCA_MOVER_RENEWAL_MARGIN_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_RENEWAL_MARGIN)
}

impl Default for VolumeOptions {
    fn default() -> Self {
        VolumeOptions {
            mover_image: default_mover_image(),
            namespace: None,
            mover_service_account: None,
            snapshot_timeout: Duration::from_secs(15 * 60),
            mover_timeout: Duration::from_secs(12 * 3600),
            claim_bind_timeout: Duration::from_secs(120),
            poll_every: Duration::from_secs(2),
            parallel: 2,
            repo_kdf: arca_repo::KdfParams::default(),
            renewal_margin: renewal_margin(),
        }
    }
}

/// Labels of an object made for job `job_id` in role `role`.
pub fn labels(job_id: &str, role: &str) -> BTreeMap<String, String> {
    [
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (JOB_LABEL.to_string(), label_value(job_id)),
        (ROLE_LABEL.to_string(), role.to_string()),
    ]
    .into()
}

/// A valid label value (at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends).
pub fn label_value(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// A DNS-label name `<prefix>-<base>-<8 hex of key>` of at most 63 characters: the base is
/// shortened, the hash keeps names of different keys apart and the same key's name stable
/// (a redelivered job finds what its earlier delivery made).
pub fn object_name(prefix: &str, base: &str, key: &str) -> String {
    let hash = blake3::hash(key.as_bytes()).to_hex();
    let suffix = &hash.as_str()[..8];
    let room = 63 - prefix.len() - suffix.len() - 2;
    let base: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(room)
        .collect();
    let base = base.trim_matches('-');
    if base.is_empty() {
        format!("{prefix}-{suffix}")
    } else {
        format!("{prefix}-{base}-{suffix}")
    }
}

/// The volume's name in the repository: its history across backups.
pub fn repo_volume_name(namespace: &str, pvc: &str) -> String {
    format!("{namespace}/{pvc}")
}

/// A Kubernetes quantity in bytes (`10Gi`, `500M`, `1073741824`, `1.5Gi`); `None` when it
/// is not one.
pub fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "m" => 1e-3,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let bytes = (value * factor).ceil();
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The `dataSource` of a claim restored from a VolumeSnapshot.
pub fn snapshot_data_source(name: &str) -> serde_json::Value {
    serde_json::json!({"apiGroup": snapshot::GROUP, "kind": "VolumeSnapshot", "name": name})
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub(crate) fn already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_already_exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_to_bytes() {
        assert_eq!(parse_quantity("10Gi"), Some(10 << 30));
        assert_eq!(parse_quantity("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_quantity("500M"), Some(500_000_000));
        assert_eq!(parse_quantity("4096"), Some(4096));
        assert_eq!(parse_quantity("1Zi"), None);
        assert_eq!(parse_quantity("x"), None);
    }

    #[test]
    fn names_are_dns_labels_stable_per_key_and_distinct_across_keys() {
        let long = "Data_".repeat(30);
        let a = object_name("arca-copy", &long, "job1/ns/pvc");
        assert!(a.len() <= 63, "{a}");
        assert!(a.starts_with("arca-copy-data-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
        assert_eq!(a, object_name("arca-copy", &long, "job1/ns/pvc"));
        assert_ne!(a, object_name("arca-copy", &long, "job2/ns/pvc"));
        assert_eq!(object_name("arca", "--", "k").len(), "arca-".len() + 8);
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("job_01ABC"), "job_01ABC");
        assert_eq!(label_value("-a/b-"), "a-b");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }
}
