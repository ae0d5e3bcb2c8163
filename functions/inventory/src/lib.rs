//! Inventory and the security scan that rides it: every 12 hours (a fixed schedule), on
//! demand (one linked account), and the receiving end of the role stack's custom resource
//! (SNS), which is how Arca learns a linked account's role. All the rules live in
//! `ControlPlane`; this maps events.

use std::time::Duration;

use arca_core::control_plane::ControlPlane;
use arca_core::ids::{CloudAccountId, OrgId};
use arca_core::model::cloud::account::LinkEvent;
use arca_core::model::cloud::account::{AccountLinkNotification, CloudAccountState, PermissionSets};
use arca_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What one invocation is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// The fixed 12-hour schedule: every linked account of every org.
    Everything,
    /// "Inventory now" for one linked account.
    Account {
        org_id: OrgId,
        cloud_account_id: CloudAccountId,
    },
    /// Role stack custom-resource requests, delivered by SNS.
    AccountLinks(Vec<CustomResourceRequest>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OnDemand {
    org_id: OrgId,
    cloud_account_id: CloudAccountId,
}

/// A CloudFormation custom-resource request (the SNS message body).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceRequest {
    pub request_type: String,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: LinkProperties,
}

/// The role stack's `Custom::ArcaAccountLink` properties (`cfn/README.md`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LinkProperties {
    #[serde(default)]
    pub account_link_id: String,
    #[serde(default)]
    pub external_id: String,
    #[serde(default)]
    pub role_arn: String,
    #[serde(default)]
    pub template_version: String,
    #[serde(default)]
    pub permission_sets: String,
}

/// The answer CloudFormation waits for at the ResponseURL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceResponse {
    pub status: String,
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub data: Value,
}

/// Reads an event: the schedule's, an SNS delivery, or an on-demand request.
pub fn request(event: Value) -> Result<Request> {
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return Ok(Request::Everything);
    }
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let mut requests = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let message = record
                .pointer("/Sns/Message")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid(format!("Records[{i}].Sns.Message"), "missing"))?;
            let request: CustomResourceRequest = serde_json::from_str(message).map_err(|e| {
                Error::invalid(
                    format!("Records[{i}].Sns.Message"),
                    format!("not a CloudFormation request: {e}"),
                )
            })?;
            requests.push(request);
        }
        return Ok(Request::AccountLinks(requests));
    }
    let on_demand: OnDemand = serde_json::from_value(event).map_err(|e| {
        Error::invalid(
            "event",
            format!("expected a scheduled event, an SNS delivery or {{orgId, cloudAccountId}}: {e}"),
        )
    })?;
    Ok(Request::Account {
        org_id: on_demand.org_id,
        cloud_account_id: on_demand.cloud_account_id,
    })
}

impl CustomResourceRequest {
    fn notification(&self) -> Result<AccountLinkNotification> {
        let kind = match self.request_type.as_str() {
            "Create" => LinkEvent::Create,
            "Update" => LinkEvent::Update,
            "Delete" => LinkEvent::Delete,
            other => return Err(Error::invalid("RequestType", format!("unknown request type {other:?}"))),
        };
        let p = &self.resource_properties;
        Ok(AccountLinkNotification {
            kind,
            link_id: p.account_link_id.clone(),
            external_id: p.external_id.clone(),
            role_arn: p.role_arn.clone(),
            role_stack_version: p.template_version.clone(),
            permission_sets: PermissionSets::parse(&p.permission_sets)?,
        })
    }

    fn response(&self, ok: bool, reason: String) -> CustomResourceResponse {
        CustomResourceResponse {
            status: if ok { "SUCCESS" } else { "FAILED" }.into(),
            reason,
            // Stable across updates (a new id would make CloudFormation delete the old one).
            physical_resource_id: self
                .physical_resource_id
                .clone()
                .unwrap_or_else(|| format!("arca-link-{}", self.resource_properties.account_link_id)),
            stack_id: self.stack_id.clone(),
            request_id: self.request_id.clone(),
            logical_resource_id: self.logical_resource_id.clone(),
            data: json!({}),
        }
    }
}

/// How long a just-created role gets to become assumable (IAM is eventually consistent).
#[derive(Clone, Copy, Debug)]
pub struct LinkRetry {
    pub attempts: u32,
    pub pause: Duration,
}

impl Default for LinkRetry {
    fn default() -> Self {
        LinkRetry {
            attempts: 6,
            pause: Duration::from_secs(5),
        }
    }
}

/// Applies one custom-resource request and decides the answer. A request that does not
/// match an account being linked fails the stack (the user re-launches from Arca's link);
/// a role that cannot be assumed yet is retried, and if it still cannot, the stack
/// succeeds with the account `DISCONNECTED` and the AWS error on it (fixable without
/// tearing the stack down). Delete always succeeds: a stack must be removable.
pub async fn apply_link(cp: &ControlPlane, req: &CustomResourceRequest, retry: LinkRetry) -> CustomResourceResponse {
    let notification = match req.notification() {
        Ok(n) => n,
        Err(e) if req.request_type == "Delete" => return req.response(true, format!("ignored: {e}")),
        Err(e) => return req.response(false, e.to_string()),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match cp.apply_account_link(&notification).await {
            Ok(a) if a.state == CloudAccountState::Active || notification.kind == LinkEvent::Delete => {
                return req.response(true, format!("cloud account {} is {:?}", a.id, a.state));
            }
            Ok(a) if attempt >= retry.attempts => {
                let why = a.last_error.unwrap_or_default();
                return req.response(true, format!("linked, but the role does not work yet: {why}"));
            }
            Ok(_) => tokio::time::sleep(retry.pause).await,
            Err(e) if notification.kind == LinkEvent::Delete => return req.response(true, format!("ignored: {e}")),
            Err(e) => return req.response(false, e.to_string()),
        }
    }
}

/// Where answers to CloudFormation may go. The account-link topic takes messages from
/// any role stack, so a message's `ResponseURL` is whatever its sender chose: the function
/// answers only CloudFormation's own pre-signed S3 URLs
/// (`https://cloudformation-custom-resource-response-<region>.s3…amazonaws.com[.cn]/…`) and
/// ignores the rest, neither linking nor answering, without failing the batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseUrls {
    /// One more accepted prefix: an emulator's endpoint in tests; unset on AWS.
    also: Option<String>,
}

/// The variable naming [`ResponseUrls`]' extra prefix.
pub const RESPONSE_URL_PREFIX_ENV: &str = "ARCA_CFN_RESPONSE_URL_PREFIX";

impl ResponseUrls {
    pub fn from_env() -> Self {
        ResponseUrls {
            also: std::env::var(RESPONSE_URL_PREFIX_ENV).ok().filter(|v| !v.is_empty()),
        }
    }

    /// CloudFormation's URLs and those starting with `prefix`.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        ResponseUrls {
            also: Some(prefix.into()),
        }
    }

    pub fn allows(&self, url: &str) -> bool {
        if self.also.as_deref().is_some_and(|p| url.starts_with(p)) {
            return true;
        }
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return false;
        };
        let host = parsed.host_str().unwrap_or_default();
        parsed.scheme() == "https"
            && parsed.username().is_empty()
            && parsed.password().is_none()
            && parsed.port().is_none()
            && host.starts_with("cloudformation-custom-resource-response-")
            && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
    }
}

/// Sends the answer to the pre-signed ResponseURL (S3). CloudFormation's pre-signed URL
/// is signed without a content type, so none is sent.
pub async fn respond(http: &reqwest::Client, url: &str, response: &CustomResourceResponse) -> Result<()> {
    let body = serde_json::to_vec(response).map_err(|e| Error::permanent(e.to_string()))?;
    let answer = http
        .put(url)
        .header(reqwest::header::CONTENT_TYPE, "")
        .body(body)
        .send()
        .await
        .map_err(|e| Error::transient(format!("answering CloudFormation: {e}")))?;
    if !answer.status().is_success() {
        return Err(Error::transient(format!(
            "answering CloudFormation: HTTP {}",
            answer.status()
        )));
    }
    Ok(())
}

/// The whole function over a control plane.
pub async fn run(
    cp: &ControlPlane,
    http: &reqwest::Client,
    event: Value,
    retry: LinkRetry,
    urls: &ResponseUrls,
) -> Result<Value> {
    match request(event)? {
        Request::Everything => {
            let reports = cp.inventory_everything().await?;
            let failed: Vec<String> = reports
                .iter()
                .filter_map(|r| match r {
                    Err(e) => Some(e.to_string()),
                    Ok(r) => r.error.as_ref().map(|e| format!("{}: {e}", r.cloud_account_id)),
                })
                .collect();
            let resources: usize = reports
                .iter()
                .flatten()
                .flat_map(|r| r.regions.iter().map(|region| region.present))
                .sum();
            // The security scan rides each account's inventory (docs/cloud-accounts.md).
            let findings_opened: usize = reports
                .iter()
                .flatten()
                .filter_map(|r| r.scan.as_ref().map(|s| s.opened))
                .sum();
            let scans_failed = reports.iter().flatten().filter(|r| r.scan_error.is_some()).count();
            tracing::info!(
                accounts = reports.len(),
                failed = failed.len(),
                resources,
                findings_opened,
                scans_failed,
                "inventory and security scan of every linked account"
            );
            Ok(json!({"accounts": reports.len(), "failed": failed, "resources": resources}))
        }
        Request::Account {
            org_id,
            cloud_account_id,
        } => {
            let report = cp.run_inventory(&org_id, &cloud_account_id).await?;
            serde_json::to_value(report).map_err(|e| Error::permanent(e.to_string()))
        }
        Request::AccountLinks(requests) => {
            let mut answered = Vec::new();
            for req in &requests {
                if !urls.allows(&req.response_url) {
                    // Not CloudFormation's: nothing is linked and nobody is answered. The URL
                    // is not logged (a pre-signed URL is a credential), only where it points.
                    let host = reqwest::Url::parse(&req.response_url)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_owned))
                        .unwrap_or_default();
                    tracing::warn!(
                        request = %req.request_type,
                        stack = %req.stack_id,
                        response_host = %host,
                        "role stack notification ignored: its ResponseURL is not CloudFormation's"
                    );
                    answered.push("IGNORED".to_string());
                    continue;
                }
                let response = apply_link(cp, req, retry).await;
                tracing::info!(
                    request = %req.request_type,
                    status = %response.status,
                    reason = %response.reason,
                    "role stack notification"
                );
                respond(http, &req.response_url, &response).await?;
                answered.push(response.status);
            }
            Ok(json!({"answered": answered}))
        }
    }
}

/// What one invocation counts (docs/metrics.md), from its answer: accounts inventoried
/// (every linked one, or the one asked for), those that failed, the resources found.
pub fn metrics(answer: &Result<Value>) -> arca_runtime::emf::Emf {
    let emf = arca_runtime::emf::Emf::new("inventory");
    let Ok(v) = answer else {
        return emf.count("Errors", 1);
    };
    let (accounts, failed, resources) = if let Some(accounts) = v["accounts"].as_u64() {
        let failed = v["failed"].as_array().map_or(0, |a| a.len() as u64);
        (accounts, failed, v["resources"].as_u64().unwrap_or(0))
    } else if v.get("cloudAccountId").is_some() {
        let present = v["regions"]
            .as_array()
            .map_or(0, |r| r.iter().filter_map(|r| r["present"].as_u64()).sum());
        (1, u64::from(v.get("error").is_some()), present)
    } else {
        // Role stack notifications inventory nothing.
        (0, 0, 0)
    };
    emf.count("AccountsInventoried", accounts)
        .count("AccountsFailed", failed)
        .count("ResourcesInventoried", resources)
        .count("Errors", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inventorys_answer_gives_its_counts() {
        let doc = metrics(&Ok(json!({"accounts": 3, "failed": ["ca_1: denied"], "resources": 7}))).document(0);
        assert_eq!(
            (
                &doc["AccountsInventoried"],
                &doc["AccountsFailed"],
                &doc["ResourcesInventoried"]
            ),
            (&json!(3.0), &json!(1.0), &json!(7.0))
        );
        let one = json!({"cloudAccountId": "ca_1", "state": "CONNECTED",
            "regions": [{"region": "us-east-1", "present": 2}, {"region": "eu-west-1", "present": 1}]});
        let doc = metrics(&Ok(one)).document(0);
        assert_eq!(
            (
                &doc["AccountsInventoried"],
                &doc["AccountsFailed"],
                &doc["ResourcesInventoried"]
            ),
            (&json!(1.0), &json!(0.0), &json!(3.0))
        );
        let doc = metrics(&Ok(json!({"answered": ["SUCCESS"]}))).document(0);
        assert_eq!(doc["AccountsInventoried"], 0.0);
        assert_eq!(metrics(&Err(Error::permanent("x"))).document(0)["Errors"], 1.0);
    }

    #[test]
    fn only_cloudformations_response_urls_are_answered() {
        let urls = ResponseUrls::default();
        for ok in [
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3A?X-Amz-Signature=1",
            "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/x",
            "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/x",
        ] {
            assert!(urls.allows(ok), "{ok}");
        }
        for bad in [
            "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",
            "https://attacker.example.com/collect",
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com.evil.io/x",
            "https://cloudformation-custom-resource-response-x.s3.amazonaws.com:8443/x",
            "https://user:pw@cloudformation-custom-resource-response-x.s3.amazonaws.com/x",
            "https://169.254.169.254/latest/meta-data/",
            "not a url",
        ] {
            assert!(!urls.allows(bad), "{bad}");
        }
        let testing = ResponseUrls::with_prefix("http://127.0.0.1:5000/");
        assert!(testing.allows("http://127.0.0.1:5000/bucket/key"));
        assert!(!testing.allows("http://127.0.0.1:6000/bucket/key"));
    }

    #[test]
    fn the_fixed_schedule_means_everything() {
        let event = json!({"detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}});
        assert_eq!(request(event).unwrap(), Request::Everything);
    }

    #[test]
    fn on_demand_names_one_account() {
        let org = OrgId::new();
        let id = CloudAccountId::new();
        let event = json!({"orgId": org.to_string(), "cloudAccountId": id.to_string()});
        assert_eq!(
            request(event).unwrap(),
            Request::Account {
                org_id: org,
                cloud_account_id: id
            }
        );
        let bad = json!({"orgId": org.to_string(), "cloudAccountId": "12345"});
        assert!(request(bad).unwrap_err().to_string().contains("ca_<ULID>"));
    }

    #[test]
    fn sns_deliveries_carry_custom_resource_requests() {
        let message = json!({
            "RequestType": "Create", "ResponseURL": "https://s3/presigned", "StackId": "arn:stack",
            "RequestId": "r1", "LogicalResourceId": "ArcaAccountLink", "ResourceType": "Custom::ArcaAccountLink",
            "ResourceProperties": {"ServiceToken": "arn:sns", "AccountLinkId": "org_x.ca_y", "ExternalId": "e",
                "AccountId": "111122223333", "RoleArn": "arn:aws:iam::111122223333:role/r",
                "TemplateVersion": "1.0.0", "PermissionSets": "core,rds", "ServiceTimeout": "600"}
        });
        let event = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": message.to_string()}}]});
        let Request::AccountLinks(reqs) = request(event).unwrap() else {
            panic!("not a link request")
        };
        let n = reqs[0].notification().unwrap();
        assert_eq!((n.kind, n.link_id.as_str()), (LinkEvent::Create, "org_x.ca_y"));
        assert!(n.permission_sets.rds && !n.permission_sets.eks);
        let r = reqs[0].response(true, "ok".into());
        assert_eq!(r.physical_resource_id, "arca-link-org_x.ca_y");
        let bad = json!({"Records": [{"Sns": {"Message": "{}"}}]});
        assert!(request(bad).unwrap_err().to_string().contains("Records[0].Sns.Message"));
    }
}
