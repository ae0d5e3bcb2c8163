//! Security findings over HTTP, on `FakeCloud` (the moto run is
//! `arca-aws/tests/security_on_moto.rs`): what moto cannot produce. An access key older
//! than 90 days and root access keys (moto's keys are created now, its root has none), a
//! region whose services refuse the role (recorded as "not evaluated", not passed),
//! `cloudAccount.findings` raised for new HIGH/CRITICAL findings only, the filters and
//! their 400s, roles, and the findings going with the account.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use arca_core::model::cloud::security::{
    AccessKeyFacts, BucketFacts, IamFacts, IamUserFacts, RULES, SecurityFacts, VolumeFacts,
};
use chrono::{DateTime, Duration, Utc};
use common::Api;
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::111122223333:role/arca-scan";

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

/// us-east-1 (the first region: S3 and IAM too): a public bucket, a user whose key is
/// `key_age` days old, root access keys, a trail and GuardDuty missing, one volume
/// unencrypted unless `fixed`.
fn east(key_age: i64, fixed: bool) -> SecurityFacts {
    let mut f = SecurityFacts::empty("111122223333", "us-east-1", true);
    if let Some(g) = f.global.as_mut() {
        g.buckets = Ok(vec![BucketFacts {
            name: "media".into(),
            region: "us-east-1".into(),
            acl_public: true,
            default_encryption: true,
            ..Default::default()
        }]);
        g.iam = Ok(IamFacts {
            root_access_keys_present: true,
            users: vec![IamUserFacts {
                arn: "arn:aws:iam::111122223333:user/deploy".into(),
                name: "deploy".into(),
                console_access: false,
                mfa_devices: 0,
                access_keys: vec![AccessKeyFacts {
                    id: "AKIAOLD".into(),
                    active: true,
                    created_at: Some(now() - Duration::days(key_age)),
                }],
            }],
        });
    }
    f.volumes = Ok(vec![VolumeFacts {
        id: "vol-1".into(),
        encrypted: fixed,
    }]);
    f
}

fn rules(items: &Value) -> Vec<String> {
    let mut r: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ruleId"].as_str().unwrap().to_owned())
        .collect();
    r.sort();
    r
}

#[tokio::test]
async fn findings_are_listed_filtered_alerted_and_not_evaluated_is_said() {
    let api = Api::new();
    let t = api.signup("sec").await;
    let viewer = api.key(&t, "viewer").await;
    // A channel for the findings alert; its receiver is refused, the log still says.
    api.post(
        "/v1/alerts/channels",
        &t.admin,
        json!({ "name": "sec", "kind": "webhook", "url": "http://127.0.0.1:9/hook",
                "events": ["cloudAccount.findings"] }),
    )
    .await
    .expect(201);
    let linked = api
        .link_account(&t.admin, "prod", &["us-east-1", "us-west-2"])
        .await
        .expect(201);
    let id = linked.id();
    let findings = format!("/v1/cloud-accounts/{id}/findings");

    // Not scanned yet: no findings, no last scan.
    let empty = api.get(&findings, &viewer).await.expect(200);
    assert_eq!(empty.body["items"], json!([]));
    assert!(empty.body["lastScan"].is_null());

    api.give_role(&t.admin, &linked, ROLE).await.expect(200);
    api.cloud.set_security_facts(ROLE, east(120, false));
    // us-west-2 has no facts in the fake: every service there is unreadable.
    let report = api
        .post(&format!("/v1/cloud-accounts/{id}/inventory"), &t.admin, json!({}))
        .await
        .expect(200);
    let scan = &report.body["scan"];
    assert_eq!(scan["opened"], 6, "{}", report.text);
    let west = scan["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "us-west-2")
        .unwrap();
    assert_eq!(west["evaluated"], 0);
    let global = RULES
        .iter()
        .filter(|r| r.id.starts_with("S3.") || r.id.starts_with("IAM."))
        .count();
    assert_eq!(west["notEvaluated"].as_array().unwrap().len(), RULES.len() - global);
    assert!(
        west["notEvaluated"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no security facts"),
        "{west}"
    );

    let all = api.get(&format!("{findings}?limit=200"), &viewer).await.expect(200);
    assert_eq!(
        rules(&all.body["items"]),
        [
            "CLOUDTRAIL.OFF",
            "EC2.EBS_VOLUME_UNENCRYPTED",
            "GUARDDUTY.OFF",
            "IAM.ACCESS_KEY_OLD",
            "IAM.ROOT_ACCESS_KEY",
            "S3.PUBLIC_ACL"
        ]
    );
    let old_key = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ruleId"] == "IAM.ACCESS_KEY_OLD")
        .unwrap();
    assert_eq!(old_key["detail"], "access key AKIAOLD is 120 days old");
    assert_eq!(old_key["severity"], "MEDIUM");
    assert_eq!(old_key["state"], "OPEN");
    assert!(old_key["remediation"].as_str().unwrap().contains("Rotate"));
    assert_eq!(all.body["lastScan"]["open"]["critical"], 2);

    // Filters: severity is "this and worse"; bad values are 400s naming the problem.
    let critical = api
        .get(&format!("{findings}?severity=CRITICAL"), &viewer)
        .await
        .expect(200);
    assert_eq!(rules(&critical.body["items"]), ["IAM.ROOT_ACCESS_KEY", "S3.PUBLIC_ACL"]);
    let high = api
        .get(&format!("{findings}?severity=HIGH&state=OPEN"), &viewer)
        .await
        .expect(200);
    assert_eq!(high.body["items"].as_array().unwrap().len(), 3, "{}", high.text);
    let resolved = api
        .get(&format!("{findings}?state=RESOLVED"), &viewer)
        .await
        .expect(200);
    assert_eq!(resolved.body["items"], json!([]));
    let bad = api
        .get(&format!("{findings}?severity=URGENT"), &viewer)
        .await
        .expect(400);
    assert!(
        bad.text.contains("severity") || bad.text.contains("URGENT"),
        "{}",
        bad.text
    );
    api.get(&format!("{findings}?colour=red"), &viewer).await.expect(400);
    let paged = api.get(&format!("{findings}?limit=2"), &viewer).await.expect(200);
    assert_eq!(paged.body["items"].as_array().unwrap().len(), 2);
    let cursor = paged.body["nextCursor"].as_str().unwrap().to_owned();
    let next = api
        .get(&format!("{findings}?limit=200&cursor={cursor}"), &viewer)
        .await
        .expect(200);
    assert_eq!(next.body["items"].as_array().unwrap().len(), 4);
    api.get("/v1/cloud-accounts/ca_01ARZ3NDEKTSV4RRFFQ69G5FAV/findings", &viewer)
        .await
        .expect(404);

    // The alert: one event for the scan that opened HIGH/CRITICAL findings.
    let log = api.get("/v1/alerts/deliveries", &t.admin).await.expect(200);
    let events: Vec<&Value> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["event"])
        .filter(|e| e["type"] == "cloudAccount.findings")
        .collect();
    assert_eq!(events.len(), 1, "{}", log.text);
    assert_eq!(events[0]["cloudAccountId"], id.as_str());
    let reason = events[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("S3.PUBLIC_ACL") && reason.contains("IAM.ROOT_ACCESS_KEY"),
        "{reason}"
    );
    assert!(
        !reason.contains("GUARDDUTY.OFF"),
        "MEDIUM findings do not alert: {reason}"
    );

    // The volume is encrypted and the key rotated: both resolve; nothing new, no alert.
    api.cloud.set_security_facts(ROLE, east(10, true));
    let report = api
        .post(&format!("/v1/cloud-accounts/{id}/inventory"), &t.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(
        (&report.body["scan"]["opened"], &report.body["scan"]["resolved"]),
        (&json!(0), &json!(2))
    );
    let resolved = api
        .get(&format!("{findings}?state=RESOLVED"), &viewer)
        .await
        .expect(200);
    assert_eq!(
        rules(&resolved.body["items"]),
        ["EC2.EBS_VOLUME_UNENCRYPTED", "IAM.ACCESS_KEY_OLD"]
    );
    assert!(resolved.body["items"][0]["resolvedAt"].is_string());
    let log = api.get("/v1/alerts/deliveries", &t.admin).await.expect(200);
    let count = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event"]["type"] == "cloudAccount.findings")
        .count();
    assert_eq!(count, 1, "no new HIGH findings, no second alert");

    // The role refuses everything in us-west-2 (a revoked permission set): the scan says
    // why, per rule.
    api.cloud.set_security_facts(
        ROLE,
        SecurityFacts::unreadable("111122223333", "us-west-2", false, "AccessDenied: not authorized"),
    );
    let report = api
        .post(&format!("/v1/cloud-accounts/{id}/inventory"), &t.admin, json!({}))
        .await
        .expect(200);
    let west = report.body["scan"]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "us-west-2")
        .unwrap()
        .clone();
    assert!(
        west["notEvaluated"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("AccessDenied")
    );

    // The findings go with the account (the store side: security_on_moto.rs).
    let etag = api
        .get(&format!("/v1/cloud-accounts/{id}"), &t.admin)
        .await
        .expect(200)
        .etag();
    api.delete(&format!("/v1/cloud-accounts/{id}"), &t.admin, &etag)
        .await
        .expect(204);
    api.get(&findings, &viewer).await.expect(404);
}

/// The stack reported its permission sets without `security-scanning`: the inventory still
/// runs, the scan does not, and the last scan says why (findings kept as they were).
#[tokio::test]
async fn an_account_whose_stack_switched_scanning_off_is_not_scanned() {
    use arca_core::model::cloud::account::{AccountLinkNotification, LinkEvent, PermissionSets};
    let api = Api::new();
    let t = api.signup("off").await;
    let linked = api.link_account(&t.admin, "prod", &["us-east-1"]).await.expect(201);
    let id = linked.id();
    api.give_role(&t.admin, &linked, ROLE).await.expect(200);
    api.cloud.set_security_facts(ROLE, east(120, false));
    let cp = api.state.control_plane.clone();
    let notice = |sets: PermissionSets| AccountLinkNotification {
        kind: LinkEvent::Update,
        link_id: format!("{}.{id}", t.org_id),
        external_id: linked.body["externalId"].as_str().unwrap().to_owned(),
        role_arn: ROLE.into(),
        role_stack_version: arca_core::model::cloud::account::ROLE_STACK_VERSION.into(),
        permission_sets: sets,
    };
    cp.apply_account_link(&notice(PermissionSets {
        security_scanning: false,
        ..PermissionSets::default()
    }))
    .await
    .unwrap();
    let report = api
        .post(&format!("/v1/cloud-accounts/{id}/inventory"), &t.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(report.body["state"], "ACTIVE");
    assert!(
        report.body["scan"]["skipped"]
            .as_str()
            .unwrap()
            .contains("security-scanning permission set is off"),
        "{}",
        report.text
    );
    assert_eq!(report.body["scan"]["regions"], json!([]));
    let findings = api
        .get(&format!("/v1/cloud-accounts/{id}/findings"), &t.admin)
        .await
        .expect(200);
    assert_eq!(findings.body["items"], json!([]));
    assert!(findings.body["lastScan"]["skipped"].is_string());

    // Switched back on: scanned again.
    cp.apply_account_link(&notice(PermissionSets::default())).await.unwrap();
    let report = api
        .post(&format!("/v1/cloud-accounts/{id}/inventory"), &t.admin, json!({}))
        .await
        .expect(200);
    assert!(report.body["scan"]["skipped"].is_null(), "{}", report.text);
    assert_eq!(report.body["scan"]["opened"], 6, "{}", report.text);
}
