//! The AWS composition root: every setting the control plane reads from the environment,
//! read here once and strictly (a bad value stops start-up naming the variable instead of
//! silently falling back to a default), and the AWS adapters wired from them. Every
//! Lambda and the deployed API build their control plane with
//! [`ControlPlaneEnv::control_plane`]; single-machine mode (`arca_embedded::wiring`) adds
//! what it reaches in AWS with [`ControlPlaneEnv::reach_aws`].

use std::sync::Arc;
use std::time::Duration;

use arca_core::control_plane::{ControlPlane, ControlPlaneConfig};
use arca_core::model::cloud::account::RoleStackConfig;
use arca_core::model::destination::LockMode;
use arca_core::model::plan::PlanLimits;
use arca_core::ports::SystemClock;
use arca_core::ports::rds::RdsWorkQueue;
use arca_core::store::Store;
use arca_core::{Error, Result};
use aws_config::SdkConfig;

use crate::{
    AwsCloudConnector, AwsRdsOperations, DynamoItemStore, EventBridgeScheduler, EventBridgeSchedulerConfig, SqsQueue,
    SqsQueueConfig, SqsRdsWorkQueue, StsCredentialVendor, StsCredentialVendorConfig,
};

/// Deliveries of a job message before it is dead-lettered, unless `ARCA_MAX_RECEIVES` says.
pub const DEFAULT_MAX_RECEIVES: u32 = 5;
/// Names the deployment's queues, unless `ARCA_QUEUE_PREFIX` says.
pub const DEFAULT_QUEUE_PREFIX: &str = "arca";

/// `ARCA_QUEUE_PREFIX` and `ARCA_MAX_RECEIVES`.
pub fn queue_config(var: &impl Fn(&str) -> Option<String>) -> Result<SqsQueueConfig> {
    let max_receives = match var("ARCA_MAX_RECEIVES") {
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::invalid("ARCA_MAX_RECEIVES", format!("must be a positive number, not {n:?}")))?,
        None => DEFAULT_MAX_RECEIVES,
    };
    Ok(SqsQueueConfig {
        name_prefix: var("ARCA_QUEUE_PREFIX").unwrap_or_else(|| DEFAULT_QUEUE_PREFIX.to_owned()),
        max_receives,
    })
}

/// `ARCA_PLAN_LIMITS`: a JSON plan-limits document; the built-in limits without it.
pub fn plan_limits(var: &impl Fn(&str) -> Option<String>) -> Result<PlanLimits> {
    match var("ARCA_PLAN_LIMITS") {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| Error::invalid("ARCA_PLAN_LIMITS", format!("not a JSON plan-limits document: {e}"))),
        None => Ok(PlanLimits::default()),
    }
}

/// The backup schedules' EventBridge Scheduler: `ARCA_SCHEDULE_GROUP`,
/// `ARCA_DISPATCH_ARN` (the target) and `ARCA_SCHEDULER_ROLE_ARN` (the role it invokes
/// with); `None` unless all three are set.
pub fn scheduler_config(var: &impl Fn(&str) -> Option<String>) -> Option<EventBridgeSchedulerConfig> {
    Some(EventBridgeSchedulerConfig {
        group: var("ARCA_SCHEDULE_GROUP")?,
        target_arn: var("ARCA_DISPATCH_ARN")?,
        role_arn: var("ARCA_SCHEDULER_ROLE_ARN")?,
    })
}

/// Repository gc's grace period, `ARCA_GC_GRACE_SECONDS` (default 24 h, at most 30 days):
/// the time between condemning data no recovery point needs and deleting it. Backups
/// running longer than it may have to copy what they reused; keep it hours long.
pub fn gc_grace(var: &impl Fn(&str) -> Option<String>) -> Result<Duration> {
    match var("ARCA_GC_GRACE_SECONDS") {
        None => Ok(arca_core::model::maintenance::DEFAULT_GRACE),
        Some(text) => match text.parse::<u64>() {
            Ok(secs) if secs <= 30 * 24 * 3600 => Ok(Duration::from_secs(secs)),
            _ => Err(Error::invalid(
                "ARCA_GC_GRACE_SECONDS",
                format!("must be a number of seconds up to 2592000 (30 days), not {text:?}"),
            )),
        },
    }
}

/// `ARCA_MANAGED_OBJECT_LOCK`: the Object Lock mode Arca-managed storage's bucket was
/// created with (the stack's `ManagedStorageObjectLock`), `GOVERNANCE` or `COMPLIANCE`;
/// `None` when unset, empty or `NONE` (a bucket without Object Lock).
pub fn managed_object_lock(var: &impl Fn(&str) -> Option<String>) -> Result<Option<LockMode>> {
    match var("ARCA_MANAGED_OBJECT_LOCK").as_deref() {
        None | Some("" | "NONE") => Ok(None),
        Some("GOVERNANCE") => Ok(Some(LockMode::Governance)),
        Some("COMPLIANCE") => Ok(Some(LockMode::Compliance)),
        Some(other) => Err(Error::invalid(
            "ARCA_MANAGED_OBJECT_LOCK",
            format!("must be NONE, GOVERNANCE or COMPLIANCE, not {other:?}"),
        )),
    }
}

/// Where the role stack is published and who it trusts: `ARCA_ROLE_STACK_TEMPLATE_URL`,
/// `ARCA_ACCOUNT_LINK_TOPIC_ARN`, Arca's account (`ARCA_ACCOUNT_ID`, else the topic's) and
/// the roles in it that assume linked accounts' roles (`ARCA_ROLE_STACK_PRINCIPAL_ARNS`,
/// comma-separated role ARNs of that account); the console opens in `AWS_REGION`.
pub fn role_stack(var: &impl Fn(&str) -> Option<String>) -> Result<RoleStackConfig> {
    let topic = var("ARCA_ACCOUNT_LINK_TOPIC_ARN");
    if let Some(t) = &topic
        && !(t.starts_with("arn:aws") && t.split(':').count() == 6 && t.contains(":sns:"))
    {
        return Err(Error::invalid(
            "ARCA_ACCOUNT_LINK_TOPIC_ARN",
            format!("not an SNS topic ARN: {t:?}"),
        ));
    }
    let account =
        var("ARCA_ACCOUNT_ID").or_else(|| topic.as_ref().and_then(|t| t.split(':').nth(4)).map(str::to_owned));
    if let Some(a) = &account
        && (a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Error::invalid(
            "ARCA_ACCOUNT_ID",
            format!("expected 12 digits, not {a:?}"),
        ));
    }
    let principal_arns = match var("ARCA_ROLE_STACK_PRINCIPAL_ARNS") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|arn| check_principal_arn(arn.trim(), account.as_deref()).map(str::to_owned))
            .collect::<Result<Vec<_>>>()?,
    };
    Ok(RoleStackConfig {
        arca_account_id: account,
        principal_arns,
        template_url: var("ARCA_ROLE_STACK_TEMPLATE_URL"),
        notification_topic_arn: topic,
        console_region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
    })
}

/// One of `ARCA_ROLE_STACK_PRINCIPAL_ARNS`: a role ARN (what the role stack's
/// `ArcaPrincipalArns` accepts: no wildcard, no account root), in Arca's account if known.
fn check_principal_arn<'a>(arn: &'a str, account: Option<&str>) -> Result<&'a str> {
    let bad = |why: &str| Error::invalid("ARCA_ROLE_STACK_PRINCIPAL_ARNS", format!("{arn:?}: {why}"));
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_, partition, "iam", "", in_account, resource] = parts.as_slice() else {
        return Err(bad("not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"));
    };
    let name_ok = |c: char| c.is_ascii_alphanumeric() || "_+=,.@/-".contains(c);
    if *arn_ != "arn"
        || !partition.starts_with("aws")
        || !resource
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty() && n.chars().all(name_ok))
        || resource.contains(',')
    {
        return Err(bad("not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"));
    }
    if in_account.len() != 12 || !in_account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the account is not 12 digits"));
    }
    if let Some(a) = account
        && a != *in_account
    {
        return Err(bad(&format!("not a role of Arca's account {a}")));
    }
    Ok(arn)
}

/// Where Arca-managed storage is and the role whose narrowed credentials agents get:
/// `ARCA_MANAGED_BUCKET` and `ARCA_MANAGED_ROLE_ARN` (together), optional
/// `ARCA_MANAGED_REGION` (else the SDK's region), `ARCA_MANAGED_PREFIX`,
/// `ARCA_MANAGED_KMS_KEY_ARN` (the bucket's SSE-KMS key), `ARCA_MANAGED_ENDPOINT` (an
/// S3-compatible endpoint agents are sent to instead of AWS S3) and
/// `ARCA_MANAGED_SESSION_SECONDS` (lifetime of vended credentials, 900 to 3600: STS caps
/// role chaining, which a Lambda assuming the storage role is, at one hour; agents refresh
/// them for longer jobs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedStorage {
    pub bucket: String,
    pub role_arn: String,
    pub region: Option<String>,
    pub prefix: String,
    pub kms_key_arn: Option<String>,
    pub endpoint: Option<String>,
    pub session: std::time::Duration,
}

/// Vended credentials live this long unless `ARCA_MANAGED_SESSION_SECONDS` says.
pub const DEFAULT_MANAGED_SESSION: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// The deployment's managed storage, if it has one (see [`ManagedStorage`]).
pub fn managed_storage(var: &impl Fn(&str) -> Option<String>) -> Result<Option<ManagedStorage>> {
    let (bucket, role_arn) = match (var("ARCA_MANAGED_BUCKET"), var("ARCA_MANAGED_ROLE_ARN")) {
        (Some(bucket), Some(role)) => (bucket, role),
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(Error::invalid(
                "ARCA_MANAGED_ROLE_ARN",
                "must be set with ARCA_MANAGED_BUCKET (the role vended credentials narrow)",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::invalid(
                "ARCA_MANAGED_BUCKET",
                "must be set with ARCA_MANAGED_ROLE_ARN (Arca-managed storage's bucket)",
            ));
        }
    };
    let session = match var("ARCA_MANAGED_SESSION_SECONDS") {
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|s| (900..=3600).contains(s))
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| {
                Error::invalid(
                    "ARCA_MANAGED_SESSION_SECONDS",
                    format!("must be 900 to 3600 seconds (STS role chaining), not {s:?}"),
                )
            })?,
        None => DEFAULT_MANAGED_SESSION,
    };
    Ok(Some(ManagedStorage {
        bucket,
        role_arn,
        region: var("ARCA_MANAGED_REGION"),
        prefix: var("ARCA_MANAGED_PREFIX").unwrap_or_default(),
        kms_key_arn: var("ARCA_MANAGED_KMS_KEY_ARN"),
        endpoint: var("ARCA_MANAGED_ENDPOINT"),
        session,
    }))
}

impl ManagedStorage {
    /// The credential vendor of this storage, assuming its role with `sdk`'s identity.
    pub fn vendor(&self, sdk: &SdkConfig) -> Result<StsCredentialVendor> {
        let region = match &self.region {
            Some(r) => r.clone(),
            None => sdk.region().map(ToString::to_string).ok_or_else(|| {
                Error::invalid(
                    "ARCA_MANAGED_REGION",
                    "must be set for Arca-managed storage when no AWS region is configured",
                )
            })?,
        };
        Ok(StsCredentialVendor::new(
            aws_sdk_sts::Client::new(sdk),
            StsCredentialVendorConfig {
                role_arn: self.role_arn.clone(),
                bucket: self.bucket.clone(),
                region,
                prefix: self.prefix.clone(),
                endpoint: self.endpoint.clone(),
                duration: self.session,
                kms_key_arn: self.kms_key_arn.clone(),
            },
        ))
    }
}

/// The control plane's settings, as every binary reads them.
#[derive(Clone, Debug)]
pub struct ControlPlaneEnv {
    /// `ARCA_TABLE`: the DynamoDB table; without it the state is elsewhere (single-machine
    /// mode), and [`ControlPlaneEnv::control_plane`] refuses to start.
    pub table: Option<String>,
    pub queue: SqsQueueConfig,
    pub limits: PlanLimits,
    pub role_stack: RoleStackConfig,
    /// `ARCA_RDS_QUEUE_URL`: the RDS function's work queue (starts and re-checks RDS
    /// jobs). Without it RDS runs are accepted but only stepped by the RDS function.
    pub rds_queue_url: Option<String>,
    /// `ARCA_GC_GRACE_SECONDS` ([`gc_grace`]).
    pub gc_grace: Duration,
    /// `ARCA_MANAGED_OBJECT_LOCK` ([`managed_object_lock`]).
    pub managed_object_lock: Option<LockMode>,
    /// [`scheduler_config`]: where the retention function repairs drifted schedules.
    pub scheduler: Option<EventBridgeSchedulerConfig>,
    /// [`managed_storage`]: where the retention function purges a deleted cluster's
    /// prefix itself when no agent of the org is left.
    pub managed_storage: Option<ManagedStorage>,
    /// [`alerts_from`]: the sender of alert email through SES; without it email channels
    /// are refused (`email_needs_ses`).
    pub alerts_from: Option<String>,
    /// `ARCA_PUBLIC_URL`: where users reach this deployment; alert emails link there.
    pub public_url: Option<String>,
}

impl ControlPlaneEnv {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads through `var`, so tests need not touch the process environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        Ok(Self {
            table: var("ARCA_TABLE"),
            queue: queue_config(&var)?,
            limits: plan_limits(&var)?,
            role_stack: role_stack(&var)?,
            rds_queue_url: var("ARCA_RDS_QUEUE_URL"),
            gc_grace: gc_grace(&var)?,
            managed_object_lock: managed_object_lock(&var)?,
            scheduler: scheduler_config(&var),
            managed_storage: managed_storage(&var)?,
            alerts_from: alerts_from(&var)?,
            public_url: var("ARCA_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
        })
    }

    /// `ARCA_TABLE`, which the AWS control plane cannot do without.
    pub fn table(&self) -> Result<&str> {
        self.table
            .as_deref()
            .ok_or_else(|| Error::invalid("ARCA_TABLE", "must be set (the control plane's DynamoDB table)"))
    }

    /// The control plane on DynamoDB with the per-cluster SQS queues, EventBridge
    /// schedules when configured, reaching linked accounts through their roles.
    pub fn control_plane(&self, sdk: &SdkConfig, config: ControlPlaneConfig) -> Result<ControlPlane> {
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), self.queue.clone())?;
        let store = DynamoItemStore::new(aws_sdk_dynamodb::Client::new(sdk), self.table()?);
        let rds_queue = self.rds_queue_url.as_ref().map(|url| {
            Arc::new(SqsRdsWorkQueue::new(aws_sdk_sqs::Client::new(sdk), url.clone())) as Arc<dyn RdsWorkQueue>
        });
        let mut cp = ControlPlane::new(
            Store::new(Arc::new(store)),
            self.limits.clone(),
            Arc::new(SystemClock),
            self.config(config),
        )
        .with_queue(Arc::new(queue));
        if let Some(scheduler) = &self.scheduler {
            cp = cp.with_scheduler(Arc::new(EventBridgeScheduler::new(
                aws_sdk_scheduler::Client::new(sdk),
                scheduler.clone(),
            )));
        }
        let vendor = self.managed_storage.as_ref().map(|m| m.vendor(sdk)).transpose()?;
        let cp = self.with_email(with_alert_senders(cp), sdk);
        Ok(self.attach(cp, AwsCloudConnector::new(sdk.clone()), rds_queue, vendor))
    }

    /// What a control plane whose state is not in AWS (single-machine mode) reaches
    /// there, as the Lambdas do: linked accounts and RDS through the standard AWS
    /// configuration (read when an account is first reached, so a machine without AWS
    /// starts as well), RDS work on `rds_queue`, and Arca-managed storage when
    /// `ARCA_MANAGED_*` name it.
    pub async fn reach_aws(&self, cp: ControlPlane, rds_queue: Arc<dyn RdsWorkQueue>) -> Result<ControlPlane> {
        let vendor = match &self.managed_storage {
            Some(m) => Some(m.vendor(&crate::config::load().await)?),
            None => None,
        };
        // Alert email through SES when `ARCA_ALERTS_FROM` names a sender, as on AWS.
        let cp = match &self.alerts_from {
            Some(_) => self.with_email(cp, &crate::config::load().await),
            None => cp,
        };
        Ok(self.attach(cp, AwsCloudConnector::from_environment(), Some(rds_queue), vendor))
    }

    /// `cp` sending alert email through SES from [`Self::alerts_from`], when set (and
    /// this crate is built with its `ses` feature, as the control plane's binaries are).
    fn with_email(&self, cp: ControlPlane, sdk: &SdkConfig) -> ControlPlane {
        #[cfg(feature = "ses")]
        if let Some(from) = &self.alerts_from {
            let sender = crate::ses::SesEmailSender::new(aws_sdk_sesv2::Client::new(sdk), from.clone());
            return cp.with_email_sender(Arc::new(sender));
        }
        #[cfg(not(feature = "ses"))]
        let _ = sdk;
        cp
    }

    /// `config` with the settings read here (the gc grace period, managed storage's
    /// Object Lock).
    pub fn config(&self, config: ControlPlaneConfig) -> ControlPlaneConfig {
        ControlPlaneConfig {
            gc_grace: self.gc_grace,
            managed_object_lock: self.managed_object_lock,
            console_url: self.public_url.clone(),
            ..config
        }
    }

    fn attach(
        &self,
        cp: ControlPlane,
        connector: AwsCloudConnector,
        rds_queue: Option<Arc<dyn RdsWorkQueue>>,
        managed: Option<StsCredentialVendor>,
    ) -> ControlPlane {
        let connector = Arc::new(connector);
        let mut cp = cp
            .with_cloud(connector.clone(), self.role_stack.clone())
            .with_rds(Arc::new(AwsRdsOperations::new(connector)), rds_queue);
        if let Some(vendor) = managed {
            cp = cp
                .with_credential_vendor(Arc::new(vendor))
                .with_managed_purge(Arc::new(crate::s3_connection::S3DestinationOpener));
        }
        cp
    }
}

/// `ARCA_ALERTS_FROM`: the address alert email is sent from through SES (verified there,
/// the address or its domain). Unset: no email. A value that is not one plain address
/// (`name@domain`, no display name, no spaces) stops start-up.
pub fn alerts_from(var: &impl Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let Some(from) = var("ARCA_ALERTS_FROM") else {
        return Ok(None);
    };
    let plain = from.len() <= 254
        && !from
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        && matches!(from.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    if !plain {
        return Err(Error::invalid(
            "ARCA_ALERTS_FROM",
            format!("must be one email address (alerts@example.com), not {from:?}"),
        ));
    }
    Ok(Some(from))
}

/// Attaches the alert senders every deployment has: webhooks over HTTP
/// ([`crate::webhook`]). Without an email sender, email channels are refused
/// (`email_needs_ses`). A client that cannot be built (no TLS roots) leaves webhooks
/// unsent, each attempt saying so in the delivery log, rather than stopping the start.
pub fn with_alert_senders(cp: ControlPlane) -> ControlPlane {
    match crate::webhook::HttpWebhookSender::new() {
        Ok(sender) => cp.with_alert_senders(Arc::new(sender), None),
        Err(_) => cp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn defaults_apply_only_when_unset() {
        let env = ControlPlaneEnv::from_lookup(lookup(&[("ARCA_TABLE", "arca")])).unwrap();
        assert_eq!(env.table().unwrap(), "arca");
        assert_eq!(env.queue.max_receives, DEFAULT_MAX_RECEIVES);
        assert_eq!(env.queue.name_prefix, DEFAULT_QUEUE_PREFIX);
        assert_eq!(env.limits, PlanLimits::default());
        assert_eq!(env.role_stack.template_url, None);
        assert_eq!(env.gc_grace, arca_core::model::maintenance::DEFAULT_GRACE);
        assert_eq!(env.managed_object_lock, None);
        assert!(env.scheduler.is_none(), "no scheduler without its three variables");
    }

    #[test]
    fn managed_object_lock_is_a_mode_or_none() {
        for (value, mode) in [
            (None, None),
            (Some(""), None),
            (Some("NONE"), None),
            (Some("GOVERNANCE"), Some(LockMode::Governance)),
            (Some("COMPLIANCE"), Some(LockMode::Compliance)),
        ] {
            let vars: Vec<(&str, &str)> = value.map(|v| ("ARCA_MANAGED_OBJECT_LOCK", v)).into_iter().collect();
            assert_eq!(managed_object_lock(&lookup(&vars)).unwrap(), mode, "{value:?}");
        }
        let env = ControlPlaneEnv::from_lookup(lookup(&[
            ("ARCA_TABLE", "arca"),
            ("ARCA_MANAGED_OBJECT_LOCK", "COMPLIANCE"),
        ]))
        .unwrap();
        let config = env.config(ControlPlaneConfig::default());
        assert_eq!(config.managed_object_lock, Some(LockMode::Compliance));
        for bad in ["governance", "Compliance", "yes", "LEGAL_HOLD"] {
            let err = ControlPlaneEnv::from_lookup(lookup(&[("ARCA_TABLE", "t"), ("ARCA_MANAGED_OBJECT_LOCK", bad)]))
                .unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == "ARCA_MANAGED_OBJECT_LOCK"),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn the_scheduler_and_the_grace_come_from_their_variables() {
        let env = ControlPlaneEnv::from_lookup(lookup(&[
            ("ARCA_TABLE", "arca"),
            ("ARCA_GC_GRACE_SECONDS", "3600"),
            ("ARCA_SCHEDULE_GROUP", "arca-dev"),
            ("ARCA_DISPATCH_ARN", "arn:aws:lambda:us-east-1:1:function:d"),
            ("ARCA_SCHEDULER_ROLE_ARN", "arn:aws:iam::1:role/s"),
        ]))
        .unwrap();
        assert_eq!(env.gc_grace, Duration::from_secs(3600));
        let scheduler = env.scheduler.unwrap();
        assert_eq!(
            (
                scheduler.group.as_str(),
                scheduler.target_arn.as_str(),
                scheduler.role_arn.as_str()
            ),
            (
                "arca-dev",
                "arn:aws:lambda:us-east-1:1:function:d",
                "arn:aws:iam::1:role/s"
            )
        );
    }

    #[test]
    fn arcas_account_comes_from_the_topic() {
        let env = ControlPlaneEnv::from_lookup(lookup(&[
            ("ARCA_TABLE", "arca"),
            (
                "ARCA_ACCOUNT_LINK_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:999988887777:arca-link",
            ),
            (
                "ARCA_ROLE_STACK_TEMPLATE_URL",
                "https://b.s3.amazonaws.com/role-stack.yaml",
            ),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(env.role_stack.arca_account_id.as_deref(), Some("999988887777"));
        assert_eq!(env.role_stack.console_region, "eu-west-1");
        assert!(env.role_stack.principal_arns.is_empty());
    }

    #[test]
    fn the_role_stack_trusts_the_listed_roles_of_arcas_account() {
        let base = [("ARCA_TABLE", "arca"), ("ARCA_ACCOUNT_ID", "999988887777")];
        let api = "arn:aws:iam::999988887777:role/arca-dev-ApiFunctionRole-AB12";
        let rds = "arn:aws:iam::999988887777:role/path/arca-dev-RdsFunctionRole-CD34";
        let list = format!("{api},{rds}");
        let env = ControlPlaneEnv::from_lookup(lookup(
            &[&base[..], &[("ARCA_ROLE_STACK_PRINCIPAL_ARNS", list.as_str())]].concat(),
        ))
        .unwrap();
        assert_eq!(env.role_stack.principal_arns, vec![api.to_owned(), rds.to_owned()]);
        for (bad, why) in [
            ("arn:aws:iam::999988887777:root", "not an IAM role ARN"),
            ("arn:aws:iam::999988887777:role/*", "not an IAM role ARN"),
            ("arn:aws:iam::999988887777:role/", "not an IAM role ARN"),
            ("arn:aws:sts::999988887777:role/x", "not an IAM role ARN"),
            (
                "arn:aws:iam::111122223333:role/x",
                "not a role of Arca's account 999988887777",
            ),
            ("arn:aws:iam::9999:role/x", "not 12 digits"),
        ] {
            let err = ControlPlaneEnv::from_lookup(lookup(
                &[&base[..], &[("ARCA_ROLE_STACK_PRINCIPAL_ARNS", bad)]].concat(),
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("ARCA_ROLE_STACK_PRINCIPAL_ARNS") && err.contains(why),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn bad_values_stop_start_up_naming_the_variable() {
        let err = ControlPlaneEnv::from_lookup(lookup(&[])).unwrap().table().unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "ARCA_TABLE"),
            "{err:?}"
        );
        for (vars, name) in [
            (
                vec![("ARCA_TABLE", "t"), ("ARCA_MAX_RECEIVES", "five")],
                "ARCA_MAX_RECEIVES",
            ),
            (
                vec![("ARCA_TABLE", "t"), ("ARCA_MAX_RECEIVES", "0")],
                "ARCA_MAX_RECEIVES",
            ),
            (vec![("ARCA_TABLE", "t"), ("ARCA_PLAN_LIMITS", "{")], "ARCA_PLAN_LIMITS"),
            (
                vec![("ARCA_TABLE", "t"), ("ARCA_ACCOUNT_LINK_TOPIC_ARN", "arca-link")],
                "ARCA_ACCOUNT_LINK_TOPIC_ARN",
            ),
            (vec![("ARCA_TABLE", "t"), ("ARCA_ACCOUNT_ID", "12")], "ARCA_ACCOUNT_ID"),
            (
                vec![("ARCA_TABLE", "t"), ("ARCA_GC_GRACE_SECONDS", "a day")],
                "ARCA_GC_GRACE_SECONDS",
            ),
            (
                vec![("ARCA_TABLE", "t"), ("ARCA_GC_GRACE_SECONDS", "99999999")],
                "ARCA_GC_GRACE_SECONDS",
            ),
            (vec![("ARCA_ALERTS_FROM", "alerts")], "ARCA_ALERTS_FROM"),
            (
                vec![("ARCA_ALERTS_FROM", "Arca <alerts@example.com>")],
                "ARCA_ALERTS_FROM",
            ),
            (
                vec![("ARCA_ALERTS_FROM", "a@example.com,b@example.com")],
                "ARCA_ALERTS_FROM",
            ),
            (vec![("ARCA_ALERTS_FROM", "alerts@localhost")], "ARCA_ALERTS_FROM"),
        ] {
            let err = ControlPlaneEnv::from_lookup(lookup(&vars)).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == name),
                "{vars:?}: {err:?}"
            );
        }
    }

    #[test]
    fn the_alert_sender_and_the_console_link_come_from_their_variables() {
        let env = ControlPlaneEnv::from_lookup(lookup(&[])).unwrap();
        assert_eq!((env.alerts_from, env.public_url), (None, None));
        let env = ControlPlaneEnv::from_lookup(lookup(&[
            ("ARCA_ALERTS_FROM", "arca-alerts@ops.example.com"),
            ("ARCA_PUBLIC_URL", "https://arca.example.com/"),
        ]))
        .unwrap();
        assert_eq!(env.alerts_from.as_deref(), Some("arca-alerts@ops.example.com"));
        let config = env.config(ControlPlaneConfig::default());
        assert_eq!(config.console_url.as_deref(), Some("https://arca.example.com"));
    }

    #[test]
    fn managed_storage_needs_a_bucket_and_a_role_and_a_chainable_session() {
        assert_eq!(managed_storage(&lookup(&[])).unwrap(), None);
        let m = managed_storage(&lookup(&[
            ("ARCA_MANAGED_BUCKET", "arca-managed"),
            ("ARCA_MANAGED_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            m,
            ManagedStorage {
                bucket: "arca-managed".into(),
                role_arn: "arn:aws:iam::1:role/r".into(),
                region: None,
                prefix: String::new(),
                kms_key_arn: None,
                endpoint: None,
                session: DEFAULT_MANAGED_SESSION,
            }
        );
        for (vars, name) in [
            (vec![("ARCA_MANAGED_BUCKET", "b")], "ARCA_MANAGED_ROLE_ARN"),
            (
                vec![("ARCA_MANAGED_ROLE_ARN", "arn:aws:iam::1:role/r")],
                "ARCA_MANAGED_BUCKET",
            ),
            (
                vec![
                    ("ARCA_MANAGED_BUCKET", "b"),
                    ("ARCA_MANAGED_ROLE_ARN", "arn:aws:iam::1:role/r"),
                    ("ARCA_MANAGED_SESSION_SECONDS", "43200"),
                ],
                "ARCA_MANAGED_SESSION_SECONDS",
            ),
        ] {
            let err = managed_storage(&lookup(&vars)).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == name),
                "{vars:?}: {err:?}"
            );
        }
    }
}
