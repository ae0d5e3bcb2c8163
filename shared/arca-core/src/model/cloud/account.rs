//! A linked AWS account: Arca works in it through the cross-account role the user creates
//! with the role stack (`cfn/role-stack.yaml`), assumed with the account's ExternalId.
//!
//! How Arca learns the role: the stack's custom resource notifies Arca's SNS topic with
//! the role ARN, stack version and enabled permission sets ([`AccountLinkNotification`];
//! the inventory function receives it), or the user pastes the role ARN. Either way the
//! role is verified (AssumeRole with the ExternalId) before the account is `ACTIVE`; a
//! role that stops working turns the account `DISCONNECTED` with the AWS error.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CloudAccountId, OrgId};
use crate::{Error, Result, validate};

/// A role to assume and the ExternalId its trust policy requires. `Debug` leaves the
/// ExternalId out: it is not a secret to AWS, but it is what stops a confused deputy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoleRef {
    pub role_arn: String,
    pub external_id: String,
}

impl std::fmt::Debug for RoleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleRef")
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

/// The role stack version this release of Arca publishes. It must equal the stack's
/// `TemplateVersion` (a test reads `cfn/role-stack.yaml`); a linked account whose stack
/// reports an older version shows `updateAvailable`.
pub const ROLE_STACK_VERSION: &str = "1.1.0";

/// Regions an account may enable; more than this is a typo, not a deployment.
const MAX_REGIONS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CloudAccountState {
    /// Created; the role is not known or not verified yet.
    Pending,
    /// The role was assumed with the ExternalId the last time Arca tried.
    Active,
    /// The role stopped working (deleted, trust changed, wrong ExternalId): `lastError`.
    Disconnected,
}

/// The role stack's switches, as the stack reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionSets {
    pub rds: bool,
    pub ebs: bool,
    pub eks: bool,
    pub security_scanning: bool,
}

impl PermissionSets {
    /// The stack's `PermissionSets` value: `core,rds,ebs,eks,security-scanning`, with the
    /// switched-off sets left out.
    pub fn parse(list: &str) -> Result<Self> {
        let mut sets = PermissionSets {
            rds: false,
            ebs: false,
            eks: false,
            security_scanning: false,
        };
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "core" => {}
                "rds" => sets.rds = true,
                "ebs" => sets.ebs = true,
                "eks" => sets.eks = true,
                "security-scanning" => sets.security_scanning = true,
                other => {
                    return Err(Error::invalid(
                        "PermissionSets",
                        format!("unknown permission set {other:?}"),
                    ));
                }
            }
        }
        Ok(sets)
    }
}

impl Default for PermissionSets {
    fn default() -> Self {
        PermissionSets {
            rds: true,
            ebs: true,
            eks: true,
            security_scanning: true,
        }
    }
}

/// What a user sends to link or edit an account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudAccountSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Regions Arca inventories and works in (e.g. `us-east-1`).
    pub regions: Vec<String>,
}

impl CloudAccountSpec {
    pub fn validated(mut self) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        validate::description("description", &self.description)?;
        if self.regions.is_empty() {
            return Err(Error::invalid("regions", "at least one region is required"));
        }
        if self.regions.len() > MAX_REGIONS {
            return Err(Error::invalid("regions", format!("at most {MAX_REGIONS} regions")));
        }
        for (i, region) in self.regions.iter().enumerate() {
            if !is_region(region) {
                return Err(Error::invalid(
                    format!("regions[{i}]"),
                    format!("{region:?} is not an AWS region name such as us-east-1"),
                ));
            }
        }
        self.regions.sort();
        self.regions.dedup();
        Ok(self)
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`: letters, dashes, a digit.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// The AWS account id of an IAM role ARN (`arn:aws:iam::123456789012:role/name`).
pub fn role_account_id(role_arn: &str) -> Result<String> {
    let invalid = || {
        Error::invalid(
            "roleArn",
            format!("{role_arn:?} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)"),
        )
    };
    let mut parts = role_arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid());
    };
    let name = resource.strip_prefix("role/").ok_or_else(invalid)?;
    if !partition.starts_with("aws")
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
        || name.is_empty()
        || name.len() > 512
    {
        return Err(invalid());
    }
    Ok(account.to_string())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudAccount {
    pub id: CloudAccountId,
    pub org_id: OrgId,
    #[serde(flatten)]
    pub spec: CloudAccountSpec,
    /// Required by the role's trust policy (confused-deputy protection); minted by Arca,
    /// one per linked account.
    pub external_id: String,
    pub state: CloudAccountState,
    /// Known once the role is: the account the role lives in.
    pub aws_account_id: Option<String>,
    pub role_arn: Option<String>,
    /// The role stack's version, as its custom resource reported it (`None` when the
    /// ARN was pasted: then Arca cannot tell).
    pub role_stack_version: Option<String>,
    pub permission_sets: Option<PermissionSets>,
    /// The AWS error that made the account `DISCONNECTED`.
    pub last_error: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    pub last_inventory_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl CloudAccount {
    /// A newly linked account: PENDING, with its ExternalId and nothing known of its AWS
    /// side yet.
    pub fn pending(org_id: OrgId, spec: CloudAccountSpec, external_id: String, now: DateTime<Utc>) -> Self {
        CloudAccount {
            id: CloudAccountId::new(),
            org_id,
            spec,
            external_id,
            state: CloudAccountState::Pending,
            aws_account_id: None,
            role_arn: None,
            role_stack_version: None,
            permission_sets: None,
            last_error: None,
            verified_at: None,
            last_inventory_at: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// The role and ExternalId to assume, once the role is known.
    pub fn role(&self) -> Option<RoleRef> {
        self.role_arn.as_ref().map(|arn| RoleRef {
            role_arn: arn.clone(),
            external_id: self.external_id.clone(),
        })
    }

    /// What the stack's `ArcaAccountLinkId` parameter holds: enough to find this account
    /// from a notification without a cross-tenant index.
    pub fn link_id(&self) -> String {
        format!("{}.{}", self.org_id, self.id)
    }

    /// Whether the stack that reported itself is older than [`ROLE_STACK_VERSION`].
    pub fn update_available(&self) -> bool {
        match self.role_stack_version.as_deref() {
            Some(v) => version_tuple(v).is_none_or(|v| Some(v) < version_tuple(ROLE_STACK_VERSION)),
            None => false,
        }
    }

    /// The outcome of trying the role: `Ok` with the account the credentials belong to,
    /// or the AWS error that says the role does not work.
    pub fn record_verification(&mut self, outcome: std::result::Result<String, String>, now: DateTime<Utc>) {
        match outcome {
            Ok(account) => {
                self.state = CloudAccountState::Active;
                self.aws_account_id = Some(account);
                self.last_error = None;
                self.verified_at = Some(now);
            }
            Err(message) => {
                self.state = CloudAccountState::Disconnected;
                self.last_error = Some(message);
            }
        }
        self.updated_at = now;
    }
}

/// `1.2.3` as numbers; `None` when it is not dotted numbers.
fn version_tuple(v: &str) -> Option<Vec<u64>> {
    v.trim_start_matches('v').split('.').map(|p| p.parse().ok()).collect()
}

/// Mints an ExternalId: 32 hex digits of randomness behind a recognizable prefix.
pub fn new_external_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::permanent(format!("no randomness: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("arca-{hex}"))
}

/// Where the role stack is published and who it trusts: the deployment's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleStackConfig {
    /// The AWS account Arca runs in: the trusted principals must be in it.
    pub arca_account_id: Option<String>,
    /// The deployment's roles that assume linked accounts' roles (the API's, inventory's,
    /// RDS's and retention's execution roles): the stack trusts exactly these ARNs
    /// (`ArcaPrincipalArns`), not Arca's whole account.
    pub principal_arns: Vec<String>,
    /// Where the quick-create link points CloudFormation (an https S3 URL).
    pub template_url: Option<String>,
    /// The SNS topic the stack's custom resource notifies (empty: the user pastes the ARN).
    pub notification_topic_arn: Option<String>,
    /// The console region the link opens in.
    pub console_region: String,
}

impl RoleStackConfig {
    /// The CloudFormation console's quick-create URL with template, stack name and every
    /// parameter filled in; `None` when the deployment does not publish the template.
    pub fn quick_create_link(&self, account: &CloudAccount) -> Option<String> {
        let template_url = self.template_url.as_deref()?;
        let region = if self.console_region.is_empty() {
            "us-east-1"
        } else {
            &self.console_region
        };
        // One name for stack and role, unique per linked account: two orgs linking the same
        // AWS account must not collide on the role name.
        let name = format!("arca-{}", account.id.ulid().to_string().to_lowercase());
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("templateURL", template_url)
            .append_pair("stackName", &name)
            .append_pair("param_RoleName", &name)
            .append_pair("param_ExternalId", &account.external_id)
            .append_pair("param_ArcaAccountLinkId", &account.link_id());
        if let Some(id) = &self.arca_account_id {
            query.append_pair("param_ArcaAccountId", id);
        }
        if !self.principal_arns.is_empty() {
            query.append_pair("param_ArcaPrincipalArns", &self.principal_arns.join(","));
        }
        if let Some(topic) = &self.notification_topic_arn {
            query.append_pair("param_ArcaNotificationTopicArn", topic);
        }
        Some(format!(
            "https://{region}.console.aws.amazon.com/cloudformation/home?region={region}#/stacks/quickcreate?{}",
            query.finish()
        ))
    }
}

/// A linked account as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudAccountView {
    #[serde(flatten)]
    pub account: CloudAccount,
    pub update_available: bool,
    pub current_role_stack_version: &'static str,
    /// Create (or, when `updateAvailable`, re-launch) the role stack from here.
    pub quick_create_link: Option<String>,
}

/// What the role stack's custom resource tells Arca (through SNS) on create, update and
/// delete. Property names: `cfn/README.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountLinkNotification {
    pub kind: LinkEvent,
    pub link_id: String,
    pub external_id: String,
    pub role_arn: String,
    pub role_stack_version: String,
    pub permission_sets: PermissionSets,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    Create,
    Update,
    Delete,
}

impl AccountLinkNotification {
    /// The org and account a link id names.
    pub fn target(&self) -> Result<(OrgId, CloudAccountId)> {
        let (org, account) = self
            .link_id
            .split_once('.')
            .ok_or_else(|| Error::invalid("ArcaAccountLinkId", "expected <orgId>.<cloudAccountId>"))?;
        Ok((org.parse()?, account.parse()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> CloudAccount {
        let spec = CloudAccountSpec {
            name: "prod".into(),
            description: String::new(),
            regions: vec!["us-east-1".into()],
        };
        CloudAccount {
            version: 1,
            ..CloudAccount::pending(OrgId::new(), spec, new_external_id().unwrap(), DateTime::UNIX_EPOCH)
        }
    }

    #[test]
    fn regions_are_checked_sorted_and_deduplicated() {
        let spec = CloudAccountSpec {
            name: "a".into(),
            description: String::new(),
            regions: vec!["us-west-2".into(), "us-east-1".into(), "us-west-2".into()],
        };
        assert_eq!(spec.validated().unwrap().regions, ["us-east-1", "us-west-2"]);
        for bad in ["useast1", "US-EAST-1", "us-east-x", "", "us--1"] {
            let spec = CloudAccountSpec {
                name: "a".into(),
                description: String::new(),
                regions: vec!["us-east-1".into(), bad.into()],
            };
            let err = spec.validated().unwrap_err();
            assert!(err.to_string().contains("regions[1]"), "{bad}: {err}");
        }
        assert!(is_region("us-gov-west-1") && is_region("ap-southeast-4"));
        let none = CloudAccountSpec {
            name: "a".into(),
            ..Default::default()
        };
        assert!(none.validated().unwrap_err().to_string().contains("regions"));
    }

    #[test]
    fn role_arns_name_their_account() {
        assert_eq!(
            role_account_id("arn:aws:iam::111122223333:role/arca-x").unwrap(),
            "111122223333"
        );
        assert_eq!(
            role_account_id("arn:aws-us-gov:iam::111122223333:role/path/arca").unwrap(),
            "111122223333"
        );
        for bad in [
            "arn:aws:iam::11112222333:role/x",
            "arn:aws:iam::111122223333:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::111122223333:role/",
            "role/x",
        ] {
            assert!(
                role_account_id(bad).unwrap_err().to_string().contains("roleArn"),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_older_stack_has_an_update_available() {
        let mut a = account();
        assert!(!a.update_available(), "unknown version: nothing to say");
        a.role_stack_version = Some(ROLE_STACK_VERSION.into());
        assert!(!a.update_available());
        a.role_stack_version = Some("0.9.9".into());
        assert!(a.update_available());
        a.role_stack_version = Some("99.0.0".into());
        assert!(!a.update_available());
        a.role_stack_version = Some("garbage".into());
        assert!(a.update_available(), "an unreadable version is treated as old");
    }

    #[test]
    fn verification_moves_the_state_both_ways() {
        let mut a = account();
        let t = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        a.record_verification(Ok("111122223333".into()), t);
        assert_eq!(a.state, CloudAccountState::Active);
        assert_eq!(a.verified_at, Some(t));
        a.record_verification(Err("AccessDenied: not authorized to perform sts:AssumeRole".into()), t);
        assert_eq!(a.state, CloudAccountState::Disconnected);
        assert!(a.last_error.as_deref().unwrap().contains("AccessDenied"));
        assert_eq!(a.aws_account_id.as_deref(), Some("111122223333"), "kept for the user");
        a.record_verification(Ok("111122223333".into()), t);
        assert_eq!((a.state, a.last_error.clone()), (CloudAccountState::Active, None));
    }

    #[test]
    fn the_quick_create_link_fills_in_every_parameter() {
        let a = account();
        let config = RoleStackConfig {
            arca_account_id: Some("999988887777".into()),
            principal_arns: vec![
                "arn:aws:iam::999988887777:role/arca-dev-ApiFunctionRole-A".into(),
                "arn:aws:iam::999988887777:role/arca-dev-RdsFunctionRole-B".into(),
            ],
            template_url: Some("https://bucket.s3.amazonaws.com/role-stack/1.0.0.yaml".into()),
            notification_topic_arn: Some("arn:aws:sns:eu-west-1:999988887777:arca-link".into()),
            console_region: "eu-west-1".into(),
        };
        let link = config.quick_create_link(&a).unwrap();
        assert!(link.starts_with("https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/quickcreate?templateURL=https%3A%2F%2Fbucket.s3"), "{link}");
        assert!(link.contains(&format!("param_ExternalId={}", a.external_id)), "{link}");
        assert!(link.contains("param_ArcaAccountId=999988887777"));
        assert!(
            link.contains(
                "param_ArcaPrincipalArns=arn%3Aaws%3Aiam%3A%3A999988887777%3Arole%2Farca-dev-ApiFunctionRole-A\
                 %2Carn%3Aaws%3Aiam%3A%3A999988887777%3Arole%2Farca-dev-RdsFunctionRole-B"
            ),
            "{link}"
        );
        let name = format!("arca-{}", a.id.ulid().to_string().to_lowercase());
        assert!(
            link.contains(&format!("stackName={name}&param_RoleName={name}")),
            "{link}"
        );
        assert!(link.contains("param_ArcaNotificationTopicArn=arn%3Aaws%3Asns%3Aeu-west-1"));
        assert!(link.contains(&format!("param_ArcaAccountLinkId={}.{}", a.org_id, a.id)));
        assert!(RoleStackConfig::default().quick_create_link(&a).is_none());
    }

    #[test]
    fn permission_sets_read_as_the_stack_writes_them() {
        assert_eq!(
            PermissionSets::parse("core,rds,ebs,eks,security-scanning").unwrap(),
            PermissionSets::default()
        );
        let some = PermissionSets::parse("core,eks").unwrap();
        assert!(some.eks && !some.rds && !some.ebs && !some.security_scanning);
        assert!(PermissionSets::parse("core,s3").unwrap_err().to_string().contains("s3"));
    }

    /// The version Arca announces is the one the stack it publishes reports.
    #[test]
    fn the_role_stack_version_is_the_templates() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../cfn/role-stack.yaml");
        let template = std::fs::read_to_string(path).expect("cfn/role-stack.yaml");
        let mapping = template.find("Template:").expect("the Template mapping");
        let version_line = template[mapping..]
            .lines()
            .find(|l| l.trim_start().starts_with("Value:"))
            .expect("Version.Value");
        let value = version_line
            .trim()
            .trim_start_matches("Value:")
            .trim()
            .trim_matches('"');
        assert_eq!(value, ROLE_STACK_VERSION);
    }

    #[test]
    fn external_ids_are_unique_and_fit_the_trust_policy() {
        let a = new_external_id().unwrap();
        assert_ne!(a, new_external_id().unwrap());
        assert_eq!(a.len(), 37);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }

    #[test]
    fn a_link_id_names_org_and_account() {
        let a = account();
        let n = AccountLinkNotification {
            kind: LinkEvent::Create,
            link_id: a.link_id(),
            external_id: a.external_id.clone(),
            role_arn: "arn:aws:iam::111122223333:role/r".into(),
            role_stack_version: "1.0.0".into(),
            permission_sets: PermissionSets::default(),
        };
        assert_eq!(n.target().unwrap(), (a.org_id, a.id));
        let bad = AccountLinkNotification {
            link_id: "nope".into(),
            ..n
        };
        assert!(bad.target().is_err());
    }
}
