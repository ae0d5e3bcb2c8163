//! Security scanning of linked accounts (the role stack's `security-scanning` permission
//! set, AWS's `SecurityAudit` policy).
//!
//! The connector reads a [`SecurityFacts`] snapshot of one account region (what the
//! describe/list/get calls answered, or why a service could not be read); the rules are
//! data: [`RULES`], each with an id, title, severity, remediation and a pure predicate
//! over the snapshot, so every rule is tested here without AWS. [`evaluate`] runs them
//! all; a rule whose facts could not be read is "not evaluated" with the reason, never a
//! silent pass. Findings are kept per account ([`SecurityFinding`], one per rule and
//! resource ARN) and merged scan by scan ([`merge_findings`]): seen again updates
//! `lastSeenAt`, not seen again in a region that was evaluated resolves it.
//!
//! Files: `facts.rs`, what a scan reads ([`SecurityFacts`] of one account region);
//! `rules.rs`, the checks as data ([`RULES`]) and [`evaluate`]; `findings.rs`, findings
//! across scans ([`merge_findings`]) and the last scan's summary. All re-exported here.

use serde::{Deserialize, Serialize};

mod facts;
mod findings;
mod rules;
#[cfg(test)]
mod tests;

pub use facts::*;
pub use findings::*;
pub use rules::*;

/// How bad a finding is. Ordered: `Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "LOW" => Some(Severity::Low),
            "MEDIUM" => Some(Severity::Medium),
            "HIGH" => Some(Severity::High),
            "CRITICAL" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// The AWS service a rule reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    S3,
    Ec2,
    Rds,
    Iam,
    Cloudtrail,
    Eks,
    Guardduty,
}
