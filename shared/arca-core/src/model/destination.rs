//! Destinations (object storage for backup data) and the one rule that picks which
//! destination a backup uses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DestinationId, OrgId};
use crate::{Error, Result, validate};

/// The largest `caBundle` a destination keeps (a few CA certificates).
pub const MAX_CA_BUNDLE_BYTES: usize = 64 * 1024;

/// Where backup data goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
pub enum DestinationTarget {
    /// A bucket Arca operates; its location is chosen by the deployment.
    ArcaManaged {
        #[serde(default)]
        region: Option<String>,
    },
    /// A bucket of the user's, on S3 or an S3-compatible service.
    S3 {
        /// `None` for AWS S3 itself; an `https://` URL for S3-compatible services.
        #[serde(default)]
        endpoint: Option<String>,
        bucket: String,
        region: String,
        #[serde(default)]
        prefix: String,
        /// A reference to where the credentials are kept (a secret's name or ARN),
        /// never the credentials: `None` uses the workload's own identity.
        #[serde(default)]
        credentials_ref: Option<String>,
        #[serde(default)]
        skip_tls_verify: bool,
        /// Path-style addressing (`https://host/bucket/key`); `None`: path style exactly
        /// when `endpoint` is set (S3-compatible stores rarely serve virtual-host buckets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path_style: Option<bool>,
        /// PEM certificates trusted, besides the system's roots, for the endpoint's TLS
        /// (a store behind a private CA). Not secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_bundle: Option<String>,
    },
    /// A directory on the machine (embedded, single-machine mode only).
    LocalFilesystem { path: String },
}

impl DestinationTarget {
    pub fn is_arca_managed(&self) -> bool {
        matches!(self, DestinationTarget::ArcaManaged { .. })
    }

    /// Whether `other` is the same place for data: the kind, region, endpoint, bucket,
    /// prefix or path. How it is reached (credentials, TLS, addressing) may change.
    pub fn same_location(&self, other: &DestinationTarget) -> bool {
        match (self, other) {
            (DestinationTarget::ArcaManaged { region: a }, DestinationTarget::ArcaManaged { region: b }) => a == b,
            (
                DestinationTarget::S3 {
                    endpoint: e1,
                    bucket: b1,
                    region: r1,
                    prefix: p1,
                    ..
                },
                DestinationTarget::S3 {
                    endpoint: e2,
                    bucket: b2,
                    region: r2,
                    prefix: p2,
                    ..
                },
            ) => e1 == e2 && b1 == b2 && r1 == r2 && p1 == p2,
            (DestinationTarget::LocalFilesystem { path: a }, DestinationTarget::LocalFilesystem { path: b }) => a == b,
            _ => false,
        }
    }

    /// Validates under the JSON path `field` (e.g. `target`).
    pub fn validate(&self, field: &str, local_allowed: bool) -> Result<()> {
        match self {
            DestinationTarget::ArcaManaged { region } => {
                if let Some(region) = region {
                    aws_region(&format!("{field}.region"), region)?;
                }
            }
            DestinationTarget::S3 {
                endpoint,
                bucket,
                region,
                prefix,
                credentials_ref,
                ca_bundle,
                ..
            } => {
                if let Some(pem) = ca_bundle
                    && (pem.len() > MAX_CA_BUNDLE_BYTES || !pem.contains("-----BEGIN CERTIFICATE-----"))
                {
                    return Err(Error::invalid(
                        format!("{field}.caBundle"),
                        format!(
                            "must be PEM certificates (-----BEGIN CERTIFICATE-----), at most {MAX_CA_BUNDLE_BYTES} bytes"
                        ),
                    ));
                }
                if let Some(endpoint) = endpoint
                    && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
                {
                    return Err(Error::invalid(
                        format!("{field}.endpoint"),
                        "must be an http:// or https:// URL",
                    ));
                }
                let bucket_ok = (3..=63).contains(&bucket.len())
                    && bucket
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                    && bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
                if !bucket_ok {
                    return Err(Error::invalid(
                        format!("{field}.bucket"),
                        format!("{bucket:?} is not a valid bucket name"),
                    ));
                }
                if region.trim().is_empty() {
                    return Err(Error::invalid(format!("{field}.region"), "must not be empty"));
                }
                if prefix.starts_with('/') || prefix.contains("..") || prefix.len() > 512 {
                    return Err(Error::invalid(
                        format!("{field}.prefix"),
                        "must be a relative key prefix (no leading '/', no '..', at most 512 characters)",
                    ));
                }
                if let Some(reference) = credentials_ref
                    && (reference.trim().is_empty() || reference.len() > 2048)
                {
                    return Err(Error::invalid(
                        format!("{field}.credentialsRef"),
                        "must name where credentials are kept",
                    ));
                }
            }
            DestinationTarget::LocalFilesystem { path } => {
                if !local_allowed {
                    return Err(Error::invalid(
                        format!("{field}.kind"),
                        "LOCAL_FILESYSTEM destinations exist only in single-machine mode",
                    ));
                }
                if !path.starts_with('/') || path.split('/').any(|part| part == "..") || path.contains('\0') {
                    return Err(Error::invalid(
                        format!("{field}.path"),
                        "must be an absolute path without '..'",
                    ));
                }
                // Retention and maintenance delete under it: never the whole filesystem.
                if path.split('/').all(|part| part.is_empty() || part == ".") {
                    return Err(Error::invalid(
                        format!("{field}.path"),
                        "must be a directory below /, not the root directory",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn aws_region(field: &str, region: &str) -> Result<()> {
    if !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("{region:?} is not a region")))
    }
}

/// What a user sends to create or replace a destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSpec {
    pub name: String,
    pub target: DestinationTarget,
    /// Immutable backups: every object a backup writes is retained by S3 Object Lock at
    /// least until its recovery point may be deleted ([`lock_until`]). The bucket must
    /// have Object Lock enabled (the agent checks it before writing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    /// A KMS key of the user's that wraps the keys sealing this destination's data
    /// (envelope encryption, docs/security.md): the agent creates each cluster's key, keeps
    /// it in the destination wrapped by this key, and unwraps it through KMS for every job;
    /// the control plane never holds it. `None`: keys derived from the deployment's master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_key: Option<CustomerKey>,
}

/// A customer-held key: the KMS key that wraps a destination's data keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerKey {
    /// `arn:aws:kms:<region>:<account>:key/<id>` (or `alias/<name>`): a full ARN, so the
    /// agent calls the key's own region and account whatever its identity's defaults.
    pub kms_key_arn: String,
    /// KMS endpoint to call instead of the region's public one (a VPC endpoint without
    /// private DNS, a KMS-compatible service). Not secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// The longest KMS key ARN accepted (AWS: 2048 characters for a key id or ARN).
const MAX_KMS_KEY_ARN: usize = 2048;

impl CustomerKey {
    /// The region in the key's ARN (checked by [`Self::validate`]).
    pub fn region(&self) -> &str {
        self.kms_key_arn.split(':').nth(3).unwrap_or_default()
    }

    /// Validates under the JSON path `field` (`customerKey`).
    pub fn validate(&self, field: &str) -> Result<()> {
        let arn = &self.kms_key_arn;
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let well_formed = arn.len() <= MAX_KMS_KEY_ARN
            && parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "kms"
            && aws_region("", parts[3]).is_ok()
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && (parts[5]
                .strip_prefix("key/")
                .or_else(|| parts[5].strip_prefix("alias/")))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()));
        if !well_formed {
            return Err(Error::invalid(
                format!("{field}.kmsKeyArn"),
                format!(
                    "{arn:?} is not a KMS key ARN (arn:aws:kms:<region>:<12-digit account>:key/<id> or alias/<name>)"
                ),
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return Err(Error::invalid(
                format!("{field}.endpoint"),
                "must be an http:// or https:// URL",
            ));
        }
        Ok(())
    }
}

impl DestinationSpec {
    pub fn validated(mut self, local_allowed: bool) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        self.target.validate("target", local_allowed)?;
        if let Some(key) = &self.customer_key {
            key.validate("customerKey")?;
        }
        if self.object_lock.is_some() && matches!(self.target, DestinationTarget::LocalFilesystem { .. }) {
            return Err(Error::invalid(
                "objectLock",
                "Object Lock is an S3 feature: a LOCAL_FILESYSTEM destination cannot be immutable",
            ));
        }
        Ok(self)
    }

    /// The Object Lock mode backups to it write with: its own, or for Arca-managed
    /// storage the deployment's (`managed`, from the stack's `ManagedStorageObjectLock`).
    pub fn lock_mode(&self, managed: Option<LockMode>) -> Option<LockMode> {
        match self.target {
            DestinationTarget::ArcaManaged { .. } => self.object_lock.map(|l| l.mode).or(managed),
            DestinationTarget::S3 { .. } => self.object_lock.map(|l| l.mode),
            DestinationTarget::LocalFilesystem { .. } => None,
        }
    }
}

/// S3 Object Lock's retention modes. GOVERNANCE: nobody without
/// `s3:BypassGovernanceRetention` can delete or shorten it (Arca's roles never have it);
/// COMPLIANCE: nobody at all, the account's root included, until the date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    /// The name S3 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

impl std::fmt::Display for LockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bucket's Object Lock configuration (S3 `GetObjectLockConfiguration`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketLock {
    /// Object Lock is enabled on the bucket (only possible at its creation).
    pub enabled: bool,
    /// The bucket's default retention, which S3 applies to every new object version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mode: Option<LockMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_days: Option<u32>,
}

/// A [`BucketLock`] as an agent reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketLockReport {
    #[serde(flatten)]
    pub lock: BucketLock,
    pub reported_at: DateTime<Utc>,
    /// The backup job whose agent found it.
    pub job_id: crate::ids::JobId,
}

/// A destination's immutability setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLock {
    pub mode: LockMode,
}

/// Until when a backup's objects are retained: its point's expiry (or, for a point that
/// never expires, `fallback` after the job began) plus the gc grace period, in whole
/// seconds rounded up. Retention deletes the point only after this date, so nothing it
/// deletes is still locked; the grace covers gc's two runs over packs the point was the
/// last to use.
pub fn lock_until(
    expires_at: Option<DateTime<Utc>>,
    job_created: DateTime<Utc>,
    fallback: std::time::Duration,
    grace: std::time::Duration,
) -> DateTime<Utc> {
    let base = expires_at.unwrap_or(job_created + fallback).max(job_created) + grace;
    let whole = base.timestamp() + i64::from(base.timestamp_subsec_nanos() > 0);
    DateTime::from_timestamp(whole, 0).unwrap_or(base)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub id: DestinationId,
    pub org_id: OrgId,
    #[serde(flatten)]
    pub spec: DestinationSpec,
    /// Its deletion was confirmed while recovery points lived there: they were expired,
    /// and it goes when retention has deleted the last of them (their deletion jobs need
    /// it to reach the data).
    #[serde(default)]
    pub retiring: bool,
    /// The bucket's Object Lock configuration as the last agent to back up there found it
    /// (the control plane never reads a user's bucket itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_lock: Option<BucketLockReport>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// Which level of the precedence chose the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DestinationSource {
    BackupDefinition,
    Cluster,
    Org,
}

/// The destination a backup definition actually uses, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveDestination {
    pub destination_id: DestinationId,
    pub source: DestinationSource,
}

/// The precedence rule, in one place: the definition's override, else the cluster's
/// default, else the org's default; `None` when none is set.
pub fn effective_destination(
    definition_override: Option<DestinationId>,
    cluster_default: Option<DestinationId>,
    org_default: Option<DestinationId>,
) -> Option<EffectiveDestination> {
    let pick =
        |id: Option<DestinationId>, source| id.map(|destination_id| EffectiveDestination { destination_id, source });
    pick(definition_override, DestinationSource::BackupDefinition)
        .or_else(|| pick(cluster_default, DestinationSource::Cluster))
        .or_else(|| pick(org_default, DestinationSource::Org))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_key_is_a_full_kms_key_arn_and_its_region_comes_from_it() {
        let key = |arn: &str| CustomerKey {
            kms_key_arn: arn.into(),
            endpoint: None,
        };
        for good in [
            "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/backups",
        ] {
            key(good).validate("customerKey").unwrap();
        }
        assert_eq!(key("arn:aws:kms:eu-west-1:123456789012:key/k").region(), "eu-west-1");
        for bad in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/backups",
            "arn:aws:s3:eu-west-1:123456789012:key/k",
            "arn:aws:kms:eu-west-1:1234:key/k",
            "arn:aws:kms::123456789012:key/k",
            "arn:aws:kms:eu-west-1:123456789012:key/",
            "arn:aws:kms:eu-west-1:123456789012:grant/k",
        ] {
            let err = key(bad).validate("customerKey").unwrap_err().to_string();
            assert!(err.contains("customerKey.kmsKeyArn"), "{bad}: {err}");
        }
        let err = CustomerKey {
            endpoint: Some("kms.internal".into()),
            ..key("arn:aws:kms:eu-west-1:123456789012:key/k")
        }
        .validate("customerKey")
        .unwrap_err()
        .to_string();
        assert!(err.contains("customerKey.endpoint"), "{err}");
    }

    #[test]
    fn a_lock_outlasts_the_expiry_by_the_grace_in_whole_seconds() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let day = std::time::Duration::from_secs(86_400);
        let created = t("2030-01-01T00:00:00Z");
        assert_eq!(
            lock_until(Some(t("2030-01-31T00:00:00.2Z")), created, 7 * day, day),
            t("2030-02-01T00:00:01Z")
        );
        // No expiry: the fallback counts from the job's start, not from whenever asked.
        assert_eq!(lock_until(None, created, 7 * day, day), t("2030-01-09T00:00:00Z"));
        // An expiry already past never gives a lock shorter than the grace.
        assert_eq!(
            lock_until(Some(t("2029-12-01T00:00:00Z")), created, 7 * day, day),
            t("2030-01-02T00:00:00Z")
        );
    }

    #[test]
    fn only_s3_storage_locks_and_managed_storage_follows_the_deployment() {
        let spec = |target, object_lock| DestinationSpec {
            name: "d".into(),
            target,
            object_lock,
            customer_key: None,
        };
        let managed = DestinationTarget::ArcaManaged { region: None };
        let governance = Some(ObjectLock {
            mode: LockMode::Governance,
        });
        assert_eq!(spec(managed.clone(), None).lock_mode(None), None);
        assert_eq!(
            spec(managed.clone(), None).lock_mode(Some(LockMode::Compliance)),
            Some(LockMode::Compliance)
        );
        assert_eq!(
            spec(managed, governance).lock_mode(Some(LockMode::Compliance)),
            Some(LockMode::Governance)
        );
        let local = DestinationTarget::LocalFilesystem { path: "/srv/b".into() };
        let err = spec(local, governance).validated(true).unwrap_err();
        assert!(err.to_string().contains("objectLock"), "{err}");
        assert_eq!(
            serde_json::to_value(governance).unwrap(),
            serde_json::json!({"mode": "GOVERNANCE"})
        );
    }

    #[test]
    fn the_most_specific_destination_wins() {
        let (d, c, o) = (DestinationId::new(), DestinationId::new(), DestinationId::new());
        let eff = |a, b, c| effective_destination(a, b, c).map(|e| (e.destination_id, e.source));
        assert_eq!(
            eff(Some(d), Some(c), Some(o)),
            Some((d, DestinationSource::BackupDefinition))
        );
        assert_eq!(eff(None, Some(c), Some(o)), Some((c, DestinationSource::Cluster)));
        assert_eq!(eff(None, None, Some(o)), Some((o, DestinationSource::Org)));
        assert_eq!(eff(None, None, None), None);
    }

    #[test]
    fn targets_serialise_as_the_api_spells_them() {
        let s3 = DestinationTarget::S3 {
            endpoint: Some("https://minio.local:9000".into()),
            bucket: "backups".into(),
            region: "us-east-1".into(),
            prefix: "arca/".into(),
            credentials_ref: Some("minio-creds".into()),
            skip_tls_verify: true,
            path_style: None,
            ca_bundle: None,
        };
        let json = serde_json::to_value(&s3).unwrap();
        assert_eq!(json["kind"], "S3");
        assert_eq!(json["credentialsRef"], "minio-creds");
        assert_eq!(json["skipTlsVerify"], true);
        let back: DestinationTarget = serde_json::from_value(json).unwrap();
        assert_eq!(back, s3);
        let managed: DestinationTarget = serde_json::from_str(r#"{"kind":"ARCA_MANAGED"}"#).unwrap();
        assert!(managed.is_arca_managed());
    }

    #[test]
    fn bad_targets_name_the_field() {
        let bad = DestinationTarget::S3 {
            endpoint: None,
            bucket: "B".into(),
            region: "us-east-1".into(),
            prefix: String::new(),
            credentials_ref: None,
            skip_tls_verify: false,
            path_style: None,
            ca_bundle: None,
        };
        assert!(matches!(bad.validate("target", false), Err(Error::Invalid { field, .. }) if field == "target.bucket"));
        let local = DestinationTarget::LocalFilesystem {
            path: "/var/arca".into(),
        };
        assert!(local.validate("target", true).is_ok());
        assert!(matches!(local.validate("target", false), Err(Error::Invalid { field, .. }) if field == "target.kind"));
        for bad in [
            "/",
            "//",
            "/./",
            "relative/dir",
            "/srv/../etc",
            "/srv/..",
            "/srv/a\0b",
            "",
        ] {
            let target = DestinationTarget::LocalFilesystem { path: bad.into() };
            assert!(
                matches!(target.validate("target", true), Err(Error::Invalid { field, .. }) if field == "target.path"),
                "{bad:?} must be refused"
            );
        }
    }
}
