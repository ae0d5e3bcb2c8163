//! Findings kept across scans: one per rule and resource ARN, merged scan by scan, and
//! the last scan's summary.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{CloudAccountId, OrgId};

use super::*;

/// A finding's key: its account and a fingerprint of (rule, resource ARN), so a rerun
/// finds the same finding again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityFindingId {
    pub cloud_account_id: CloudAccountId,
    /// 32 hex digits of SHA-256(rule id, NUL, resource ARN).
    pub fingerprint: String,
}

impl SecurityFindingId {
    pub fn new(account: CloudAccountId, rule_id: &str, resource_arn: &str) -> Self {
        let mut h = Sha256::new();
        h.update(rule_id.as_bytes());
        h.update([0]);
        h.update(resource_arn.as_bytes());
        let digest = h.finalize();
        let fingerprint = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        SecurityFindingId {
            cloud_account_id: account,
            fingerprint,
        }
    }
}

impl std::fmt::Display for SecurityFindingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.fingerprint, self.cloud_account_id)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FindingState {
    Open,
    Resolved,
}

impl FindingState {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "OPEN" => Some(FindingState::Open),
            "RESOLVED" => Some(FindingState::Resolved),
            _ => None,
        }
    }
}

/// One rule failing on one resource of a linked account, across scans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityFinding {
    #[serde(flatten)]
    pub id: SecurityFindingId,
    pub org_id: OrgId,
    pub rule_id: String,
    pub title: String,
    pub severity: Severity,
    pub service: Service,
    pub region: String,
    pub resource_arn: String,
    pub detail: String,
    pub remediation: String,
    pub state: FindingState,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub version: u64,
}

/// What a scan changes in an account's stored findings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FindingChanges {
    /// New findings, and resolved ones seen again (OPEN again, first seen kept).
    pub opened: Vec<SecurityFinding>,
    /// Open findings seen again (last seen and detail updated).
    pub seen_again: Vec<SecurityFinding>,
    /// Open findings not seen in a region where their rule was evaluated.
    pub resolved: Vec<SecurityFinding>,
}

/// Merges one scan into the account's stored findings. A finding whose rule could not be
/// evaluated in its region (or whose region was not scanned) is left as it was: not
/// knowing is not a pass.
pub fn merge_findings(
    org: OrgId,
    account: CloudAccountId,
    stored: &[SecurityFinding],
    scanned: &BTreeMap<String, RegionEvaluation>,
    now: DateTime<Utc>,
) -> FindingChanges {
    let by_id: BTreeMap<&SecurityFindingId, &SecurityFinding> = stored.iter().map(|f| (&f.id, f)).collect();
    let mut changes = FindingChanges::default();
    let mut seen = BTreeSet::new();
    for eval in scanned.values() {
        for o in &eval.observed {
            let id = SecurityFindingId::new(account, o.rule.id, &o.hit.resource_arn);
            if !seen.insert(id.clone()) {
                continue; // the same global resource reported twice
            }
            let fresh = SecurityFinding {
                id: id.clone(),
                org_id: org,
                rule_id: o.rule.id.into(),
                title: o.rule.title.into(),
                severity: o.rule.severity,
                service: o.rule.service,
                region: o.region.clone(),
                resource_arn: o.hit.resource_arn.clone(),
                detail: o.hit.detail.clone(),
                remediation: o.rule.remediation.into(),
                state: FindingState::Open,
                first_seen_at: now,
                last_seen_at: now,
                resolved_at: None,
                version: 0,
            };
            match by_id.get(&id) {
                None => changes.opened.push(fresh),
                Some(old) => {
                    let again = SecurityFinding {
                        first_seen_at: old.first_seen_at,
                        version: old.version,
                        ..fresh
                    };
                    if old.state == FindingState::Resolved {
                        changes.opened.push(again);
                    } else {
                        changes.seen_again.push(again);
                    }
                }
            }
        }
    }
    for old in stored
        .iter()
        .filter(|f| f.state == FindingState::Open && !seen.contains(&f.id))
    {
        let judged = scanned
            .get(&old.region)
            .is_some_and(|e| e.evaluated.contains(old.rule_id.as_str()));
        if judged {
            changes.resolved.push(SecurityFinding {
                state: FindingState::Resolved,
                resolved_at: Some(now),
                ..old.clone()
            });
        }
    }
    changes
}

/// Open findings by severity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeverityCounts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

impl SeverityCounts {
    pub fn add(&mut self, s: Severity) {
        match s {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            Severity::Low => self.low += 1,
        }
    }
}

/// One region of the last scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionScan {
    pub region: String,
    /// Rules judged (passed or failed) in the region.
    pub evaluated: usize,
    /// Rules that could not be judged, and why.
    pub not_evaluated: Vec<NotEvaluated>,
}

/// The last security scan of a linked account (one per account).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityScan {
    pub cloud_account_id: CloudAccountId,
    pub org_id: OrgId,
    pub scanned_at: DateTime<Utc>,
    pub regions: Vec<RegionScan>,
    /// Open findings after the scan.
    pub open: SeverityCounts,
    /// Findings this scan opened (new, or resolved ones back).
    pub opened: usize,
    /// Findings this scan resolved.
    pub resolved: usize,
    /// Why the account was not scanned at all (the permission set is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(default)]
    pub version: u64,
}
