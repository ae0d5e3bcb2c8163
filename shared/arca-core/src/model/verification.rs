//! Restore verification: a recovery point restored into scratch namespaces, checked
//! (every object created, every volume's data read back and compared with the backup's
//! record, an optional probe Job of the user's), recorded on the point, then removed.
//!
//! A verification is a K8S_RESTORE job whose restore carries a [`RestoreVerification`]:
//! the agent runs it like any restore, into namespaces named by [`scratch_namespace`]
//! (never a live one), with `skip` for what exists, so the live cluster is only read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, JobId, RestoreId};
use crate::{Error, Result};

/// When a definition's points are verified (besides `POST /v1/recoverypoints/{id}/verify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VerifyWhen {
    /// Each backup's point, as soon as the backup ends.
    AfterBackup,
    /// The newest point, when none of the definition's points was verified for a week
    /// (checked at every retention sweep, hourly).
    Weekly,
}

/// A backup definition's verification schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSpec {
    pub when: VerifyWhen,
    /// Where the scratch restore runs; `None`: the definition's own cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster_id: Option<ClusterId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<VerificationProbe>,
}

/// A check of the user's: a Job of this image run in the first scratch namespace once
/// everything is restored, which must succeed. It finds the namespaces it checks in
/// `ARCA_VERIFY_NAMESPACES` (space-separated) and `ARCA_VERIFY_NAMESPACE` (the first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationProbe {
    pub image: String,
    /// argv; empty: the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default = "default_probe_timeout")]
    pub timeout_seconds: u32,
}

pub const DEFAULT_PROBE_TIMEOUT_SECONDS: u32 = 600;
const MAX_PROBE_TIMEOUT_SECONDS: u32 = 3600;
const MAX_PROBE_ARGS: usize = 64;
const MAX_PROBE_ARG_BYTES: usize = 4096;

fn default_probe_timeout() -> u32 {
    DEFAULT_PROBE_TIMEOUT_SECONDS
}

/// At most this many reasons are kept on a point (the first ones), each bounded.
pub const MAX_REASONS: usize = 20;
const MAX_REASON_BYTES: usize = 500;

/// A week: the period of [`VerifyWhen::Weekly`].
pub const WEEK: chrono::Duration = chrono::Duration::days(7);

impl VerificationSpec {
    pub fn validate(&self, field: &str) -> Result<()> {
        if let Some(probe) = &self.probe {
            probe.validate(&format!("{field}.probe"))?;
        }
        Ok(())
    }
}

impl VerificationProbe {
    pub fn validate(&self, field: &str) -> Result<()> {
        let image = self.image.as_str();
        if image.is_empty() || image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(
                format!("{field}.image"),
                "an image reference (registry/name:tag or @digest), without spaces, at most 512 characters",
            ));
        }
        if self.command.len() > MAX_PROBE_ARGS {
            return Err(Error::invalid(
                format!("{field}.command"),
                format!("at most {MAX_PROBE_ARGS} arguments"),
            ));
        }
        if let Some(i) = self.command.iter().position(|a| a.len() > MAX_PROBE_ARG_BYTES) {
            return Err(Error::invalid(
                format!("{field}.command[{i}]"),
                format!("at most {MAX_PROBE_ARG_BYTES} bytes"),
            ));
        }
        if !(1..=MAX_PROBE_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            return Err(Error::invalid(
                format!("{field}.timeoutSeconds"),
                format!("between 1 and {MAX_PROBE_TIMEOUT_SECONDS}"),
            ));
        }
        Ok(())
    }
}

/// What a verification's restore carries for the agent (on [`crate::model::restore::Restore`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreVerification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<VerificationProbe>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerificationState {
    /// Its restore job is queued or running.
    Running,
    /// Everything was restored, every volume read back equal to the backup, the probe
    /// (if any) succeeded.
    Verified,
    /// With the reasons.
    Failed,
}

/// The latest verification of a recovery point, as stored on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointVerification {
    pub state: VerificationState,
    /// The K8S_RESTORE job that does it, and its restore.
    pub job_id: JobId,
    pub restore_id: RestoreId,
    pub target_cluster_id: ClusterId,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Objects found restored (created in the scratch namespaces, or cluster-scoped and
    /// already present).
    #[serde(default)]
    pub objects_verified: u64,
    /// Volumes whose restored data was read back equal to the backup's record.
    #[serde(default)]
    pub volumes_verified: u64,
    /// Why it FAILED (the first [`MAX_REASONS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl PointVerification {
    pub fn running(job_id: JobId, restore_id: RestoreId, target_cluster_id: ClusterId, now: DateTime<Utc>) -> Self {
        PointVerification {
            state: VerificationState::Running,
            job_id,
            restore_id,
            target_cluster_id,
            started_at: now,
            ended_at: None,
            objects_verified: 0,
            volumes_verified: 0,
            reasons: Vec::new(),
        }
    }

    /// How its job ended: the agent's findings when it sent them, else the job's own
    /// reason (a verification that could not run is not a verified one).
    pub fn ended(&mut self, report: Option<&VerificationReport>, job_reason: Option<&str>, now: DateTime<Utc>) {
        self.ended_at = Some(now);
        match report {
            Some(r) => {
                let r = r.clone().bounded();
                self.objects_verified = r.objects_verified;
                self.volumes_verified = r.volumes_verified;
                self.state = if r.reasons.is_empty() {
                    VerificationState::Verified
                } else {
                    VerificationState::Failed
                };
                self.reasons = r.reasons;
            }
            None => {
                self.state = VerificationState::Failed;
                self.reasons = vec![bounded_reason(
                    job_reason.unwrap_or("the verification's restore job ended without a verification report"),
                )];
            }
        }
    }
}

/// What the agent found, sent with the completion of a verification's restore job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationReport {
    #[serde(default)]
    pub objects_verified: u64,
    #[serde(default)]
    pub volumes_verified: u64,
    /// Empty: verified.
    #[serde(default)]
    pub reasons: Vec<String>,
}

pub(crate) fn bounded_reason(text: &str) -> String {
    super::cut_to_bytes(text.to_string(), MAX_REASON_BYTES)
}

impl VerificationReport {
    /// At most [`MAX_REASONS`] reasons (the last one says how many more there were).
    pub fn bounded(mut self) -> Self {
        if self.reasons.len() > MAX_REASONS {
            let more = self.reasons.len() - (MAX_REASONS - 1);
            self.reasons.truncate(MAX_REASONS - 1);
            self.reasons.push(format!("… and {more} more"));
        }
        self.reasons = self.reasons.iter().map(|r| bounded_reason(r)).collect();
        self
    }
}

/// The scratch namespace a source namespace is restored into for a verification: a
/// prefix naming the restore, then the source's name (cut, with a hash of the whole, when
/// it would make the name longer than Kubernetes allows). Distinct sources get distinct
/// names; the result is a DNS label.
pub fn scratch_namespace(restore_id: &RestoreId, source: &str) -> String {
    let id = restore_id.to_string().to_ascii_lowercase();
    let tag: String = id.chars().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
    let prefix = format!("arca-verify-{tag}-");
    let room = 63 - prefix.len();
    if source.len() <= room {
        return format!("{prefix}{source}");
    }
    // FNV-1a: stable across versions and platforms, which `DefaultHasher` is not.
    let hash = source
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let keep = room - 9;
    let head = source[..keep].trim_end_matches('-');
    format!("{prefix}{head}-{hash:08x}")
}

/// Whether a weekly verification of a definition is due: its newest READY point is not
/// verified (nor being verified), and no verification of the definition started in the
/// last week.
pub fn weekly_due(newest_point_verified: bool, last_started: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    !newest_point_verified && last_started.is_none_or(|t| now - t >= WEEK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_namespaces_are_dns_labels_and_distinct() {
        let id = RestoreId::new();
        let short = scratch_namespace(&id, "shop");
        assert!(short.starts_with("arca-verify-") && short.ends_with("-shop"), "{short}");
        let long_a = scratch_namespace(&id, &"a".repeat(63));
        let long_b = scratch_namespace(&id, &format!("{}b", "a".repeat(62)));
        for ns in [&short, &long_a, &long_b] {
            assert!(ns.len() <= 63, "{ns}");
            assert!(
                ns.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{ns}"
            );
            assert!(!ns.ends_with('-'));
        }
        assert_ne!(long_a, long_b);
        assert_ne!(scratch_namespace(&RestoreId::new(), "shop"), short);
    }

    #[test]
    fn probes_are_checked() {
        let spec = VerificationSpec {
            when: VerifyWhen::AfterBackup,
            target_cluster_id: None,
            probe: Some(VerificationProbe {
                image: "busybox:1.36".into(),
                command: vec!["true".into()],
                timeout_seconds: 60,
            }),
        };
        assert!(spec.validate("verification").is_ok());
        let mut bad = spec.clone();
        bad.probe.as_mut().unwrap().image = "busy box".into();
        assert!(
            matches!(bad.validate("verification"), Err(Error::Invalid { field, .. }) if field == "verification.probe.image")
        );
        let mut bad = spec;
        bad.probe.as_mut().unwrap().timeout_seconds = 0;
        assert!(
            matches!(bad.validate("verification"), Err(Error::Invalid { field, .. }) if field == "verification.probe.timeoutSeconds")
        );
    }

    #[test]
    fn an_ended_verification_takes_the_agents_findings_or_the_jobs_reason() {
        let now: DateTime<Utc> = std::time::SystemTime::now().into();
        let mut v = PointVerification::running(JobId::new(), RestoreId::new(), ClusterId::new(), now);
        v.ended(
            Some(&VerificationReport {
                objects_verified: 7,
                volumes_verified: 1,
                reasons: vec![],
            }),
            None,
            now,
        );
        assert_eq!(
            (v.state, v.objects_verified, v.volumes_verified),
            (VerificationState::Verified, 7, 1)
        );
        let many = VerificationReport {
            reasons: (0..50).map(|i| format!("reason {i}")).collect(),
            ..Default::default()
        };
        v.ended(Some(&many), None, now);
        assert_eq!(v.state, VerificationState::Failed);
        assert_eq!(v.reasons.len(), MAX_REASONS);
        assert_eq!(v.reasons.last().unwrap(), "… and 31 more");
        v.ended(None, Some("agent lost"), now);
        assert_eq!(
            (v.state, v.reasons.clone()),
            (VerificationState::Failed, vec!["agent lost".to_string()])
        );
    }

    #[test]
    fn weekly_verification_is_due_once_a_week_for_an_unverified_point() {
        let now: DateTime<Utc> = std::time::SystemTime::now().into();
        assert!(weekly_due(false, None, now));
        assert!(!weekly_due(true, None, now));
        assert!(!weekly_due(false, Some(now - chrono::Duration::days(6)), now));
        assert!(weekly_due(false, Some(now - WEEK), now));
    }
}
