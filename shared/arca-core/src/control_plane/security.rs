//! Security scanning of linked accounts: run with every inventory (the 12-hour run and
//! "inventory now"), the rules of `model::cloud::security` over what the connector reads
//! through the role, findings merged into the account's stored ones.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::control_plane::ControlPlane;
use crate::ids::{CloudAccountId, OrgId};
use crate::model::alert::{AlertEvent, AlertEventKind, AlertSubject};
use crate::model::auth::{Operation, Principal};
use crate::model::cloud::account::{CloudAccount, RoleRef};
use crate::model::cloud::security::{
    FindingState, NotEvaluated, RegionEvaluation, RegionScan, ScanContext, SecurityFinding, SecurityScan, Severity,
    SeverityCounts, evaluate, merge_findings,
};
use crate::ports::cloud::CloudFailure;
use crate::store::page::PageRequest;
use crate::{Error, Result};

/// Why an account is not scanned: the stack said the permission set is off.
pub const SCANNING_OFF: &str = "the role stack's security-scanning permission set is off (PermissionSets)";

/// Which findings a listing shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FindingFilter {
    /// This severity and worse.
    pub min_severity: Option<Severity>,
    pub state: Option<FindingState>,
}

/// One page of an account's findings, with its last scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingsPage {
    pub items: Vec<SecurityFinding>,
    pub next_cursor: Option<String>,
    /// The last scan: when, which rules could not be evaluated where and why, counts.
    pub last_scan: Option<SecurityScan>,
}

impl ControlPlane {
    /// An account's findings, filtered and paged, and its last scan.
    pub async fn list_cloud_findings(
        &self,
        p: &Principal,
        id: &CloudAccountId,
        filter: FindingFilter,
        page: &PageRequest,
    ) -> Result<FindingsPage> {
        p.require(Operation::ListCloudFindings)?;
        self.store.get::<CloudAccount>(&p.org_id, id).await?;
        let listing = self
            .store
            .security_findings_page(&p.org_id, id, page, |f| {
                filter.min_severity.is_none_or(|s| f.severity >= s) && filter.state.is_none_or(|s| f.state == s)
            })
            .await?;
        Ok(FindingsPage {
            items: listing.items,
            next_cursor: listing.next_cursor,
            last_scan: self.store.find::<SecurityScan>(&p.org_id, id).await?,
        })
    }

    /// Scans every region of the account through its role and merges the findings. A
    /// service or region that cannot be read is recorded on the scan as "not evaluated"
    /// with the reason, and its findings are left as they were.
    pub(in crate::control_plane) async fn scan_account(
        &self,
        account: &CloudAccount,
        role: &RoleRef,
    ) -> Result<SecurityScan> {
        let cloud = self.cloud()?;
        let org = account.org_id;
        let now = self.now();
        let stored = self.store.security_findings(&org, &account.id).await?;
        if account.permission_sets.is_some_and(|s| !s.security_scanning) {
            let scan = SecurityScan {
                cloud_account_id: account.id,
                org_id: org,
                scanned_at: now,
                regions: Vec::new(),
                open: open_counts(stored.iter()),
                opened: 0,
                resolved: 0,
                skipped: Some(SCANNING_OFF.into()),
                version: 0,
            };
            return self.store.save_security_scan(scan).await;
        }
        let ctx = ScanContext { now };
        let mut evaluations = BTreeMap::new();
        let mut regions = Vec::new();
        // S3 and IAM are global: read with the first region only.
        for (i, region) in account.spec.regions.iter().enumerate() {
            let evaluation = match cloud.connector.security_facts(role, region, i == 0).await {
                Ok(facts) => evaluate(&facts, &ctx),
                Err(e @ (CloudFailure::RoleRejected(_) | CloudFailure::Other(_))) => RegionEvaluation {
                    not_evaluated: vec![NotEvaluated {
                        rule_id: "*".into(),
                        reason: e.to_string(),
                    }],
                    ..Default::default()
                },
            };
            regions.push(RegionScan {
                region: region.clone(),
                evaluated: evaluation.evaluated.len(),
                not_evaluated: evaluation.not_evaluated.clone(),
            });
            evaluations.insert(region.clone(), evaluation);
        }
        let changes = merge_findings(org, account.id, &stored, &evaluations, now);
        let mut after: BTreeMap<_, _> = stored.iter().map(|f| (f.id.clone(), f.clone())).collect();
        let mut newly_bad = Vec::new();
        for finding in changes
            .opened
            .iter()
            .chain(&changes.seen_again)
            .chain(&changes.resolved)
        {
            match self.store.save_security_finding(finding.clone()).await {
                Ok(saved) => {
                    after.insert(saved.id.clone(), saved);
                }
                // Another scan of the same account wrote it meanwhile: its write stands.
                Err(Error::PreconditionFailed { .. } | Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for f in &changes.opened {
            if f.severity >= Severity::High {
                newly_bad.push(f);
            }
        }
        let scan = SecurityScan {
            cloud_account_id: account.id,
            org_id: org,
            scanned_at: now,
            regions,
            open: open_counts(after.values()),
            opened: changes.opened.len(),
            resolved: changes.resolved.len(),
            skipped: None,
            version: 0,
        };
        let scan = self.store.save_security_scan(scan).await?;
        if !newly_bad.is_empty() {
            self.alert_new_findings(&org, &account.id, &newly_bad, &scan).await;
        }
        Ok(scan)
    }

    /// `cloudAccount.findings`: the scan opened HIGH or CRITICAL findings. Once per scan.
    async fn alert_new_findings(
        &self,
        org: &OrgId,
        account: &CloudAccountId,
        new: &[&SecurityFinding],
        scan: &SecurityScan,
    ) {
        let mut rules: Vec<&str> = new.iter().map(|f| f.rule_id.as_str()).collect();
        rules.sort_unstable();
        rules.dedup();
        let event = AlertEvent::new(
            AlertEventKind::CloudAccountFindings,
            format_args!("{account}:{}", scan.scanned_at.timestamp()),
            *org,
            scan.scanned_at,
            format!(
                "{} new HIGH or CRITICAL security finding(s) in linked account {account}",
                new.len()
            ),
        )
        .with_reason(Some(&format!(
            "rules {}; open now: {} critical, {} high",
            rules.join(", "),
            scan.open.critical,
            scan.open.high
        )))
        .with_subject(AlertSubject {
            cloud_account_id: Some(*account),
            ..Default::default()
        });
        let _lost_alert = self.raise_alert(event).await;
    }

    /// Deletes an account's findings and last scan (the account is gone).
    pub(in crate::control_plane) async fn forget_findings(&self, org: &OrgId, account: &CloudAccountId) -> Result<()> {
        for f in self.store.security_findings(org, account).await? {
            match self.store.delete::<SecurityFinding>(org, &f.id, f.version).await {
                Ok(()) | Err(Error::NotFound { .. } | Error::Conflict { .. } | Error::PreconditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(scan) = self.store.find::<SecurityScan>(org, account).await? {
            match self.store.delete::<SecurityScan>(org, account, scan.version).await {
                Ok(()) | Err(Error::NotFound { .. } | Error::Conflict { .. } | Error::PreconditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn open_counts<'a>(findings: impl Iterator<Item = &'a SecurityFinding>) -> SeverityCounts {
    let mut counts = SeverityCounts::default();
    for f in findings.filter(|f| f.state == FindingState::Open) {
        counts.add(f.severity);
    }
    counts
}
