//! Security findings of a linked account: one item per (rule, resource), under the
//! account's `SECFIND#<account>#` prefix, and the account's last scan.

use super::{Slice, Store, keys};
use crate::Result;
use crate::ids::{CloudAccountId, OrgId};
use crate::model::cloud::security::{SecurityFinding, SecurityScan};
use crate::store::page::{Listing, PageRequest};

impl Store {
    /// Every finding of one account, open and resolved (a scan merges into them).
    pub async fn security_findings(&self, org: &OrgId, account: &CloudAccountId) -> Result<Vec<SecurityFinding>> {
        self.all_with_prefix(org, &keys::security_findings_prefix(account))
            .await
    }

    /// One page of an account's findings that pass `keep`.
    pub async fn security_findings_page(
        &self,
        org: &OrgId,
        account: &CloudAccountId,
        page: &PageRequest,
        keep: impl Fn(&SecurityFinding) -> bool,
    ) -> Result<Listing<SecurityFinding>> {
        let slice = Slice::table(org, &keys::security_findings_prefix(account));
        self.page_of(&slice, page, true, keep).await
    }

    /// Writes a finding over the version read (`0`: new).
    pub async fn save_security_finding(&self, finding: SecurityFinding) -> Result<SecurityFinding> {
        match finding.version {
            0 => self.create(finding).await,
            v => self.update(finding, v).await,
        }
    }

    /// Replaces the account's last scan, whatever it was.
    pub async fn save_security_scan(&self, scan: SecurityScan) -> Result<SecurityScan> {
        match self.find::<SecurityScan>(&scan.org_id, &scan.cloud_account_id).await? {
            Some(old) => self.update(scan, old.version).await,
            None => self.create(scan).await,
        }
    }
}
