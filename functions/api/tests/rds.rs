//! RDS over HTTP: definitions (problems naming the field, roles, ETags, `usedBy`), run
//! now and copy-only answering their jobs, the jobs driven to the end by the RDS work
//! queue's messages, recovery points, restores (snapshot, cross-region copy, PITR),
//! restore verification, pause, resume and deletion. RDS is `FakeRds` (the adapter is tested on moto in
//! arca-aws; this is the HTTP surface).

mod common;

use arca_core::model::cloud::account::RoleRef;
use arca_core::model::rds::RdsDatabaseRef;
use common::{Api, Tenant};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::111122223333:role/arca-rds";

/// A linked, verified account in two regions with an instance and an Aurora cluster.
async fn account(api: &Api, t: &Tenant) -> String {
    let linked = api
        .link_account(&t.admin, "prod", &["us-east-1", "us-west-2"])
        .await
        .expect(201);
    let id = linked.id();
    let external_id = linked.body["externalId"].as_str().expect("externalId").to_owned();
    api.give_role(&t.admin, &linked, ROLE).await.expect(200);
    let role = RoleRef {
        role_arn: ROLE.into(),
        external_id,
    };
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    for (db, cluster, engine) in [("orders", false, "postgres"), ("ledger", true, "aurora-postgresql")] {
        api.rds.add_database(
            &role,
            "us-east-1",
            &RdsDatabaseRef {
                identifier: db.into(),
                cluster,
            },
            engine,
            &[],
            now,
        );
    }
    id
}

/// Delivers the RDS work queue until it is empty (what the RDS function does).
async fn drain(api: &Api) {
    for _ in 0..10 {
        let sent = api.rds_queue.take();
        if sent.is_empty() {
            return;
        }
        for (m, _) in sent {
            api.state
                .control_plane
                .rds_step(&m.org_id, &m.job_id)
                .await
                .expect("step");
        }
    }
    panic!("RDS jobs never settled");
}

async fn job_state(api: &Api, t: &Tenant, job: &Value) -> Value {
    let id = job["id"].as_str().expect("job id");
    api.get(&format!("/v1/jobs/{id}"), &t.admin).await.expect(200).body
}

#[tokio::test]
async fn rds_definitions_runs_copies_and_restores() {
    let api = Api::new();
    let t = api.signup("rds").await;
    let account = account(&api, &t).await;

    // Problems name the field; viewers cannot configure.
    let spec = |dbs: Value| {
        json!({ "name": "orders", "cloudAccountId": account, "region": "us-east-1", "databases": dbs,
                "copy": { "destinationRegion": "us-west-2", "retainDays": 30 } })
    };
    let bad = api
        .post("/v1/rds-backups", &t.admin, spec(json!([{ "identifier": "9-bad" }])))
        .await
        .expect(400);
    assert_eq!(bad.body["field"], "databases[0].identifier", "{}", bad.text);
    let none = api.post("/v1/rds-backups", &t.admin, spec(json!([]))).await.expect(400);
    assert_eq!(none.body["field"], "databases", "{}", none.text);
    // A typo is refused, not defaulted: `deleteSourceAfterCopy` misspelt would keep sources.
    let mut typo = spec(json!([{ "identifier": "orders" }]));
    typo["copy"]["deleteSourceAfterCopi"] = json!(true);
    let typo = api.post("/v1/rds-backups", &t.admin, typo).await.expect(400);
    assert_eq!(typo.body["field"], "copy.deleteSourceAfterCopi", "{}", typo.text);
    let viewer = api.key(&t, "viewer").await;
    api.post("/v1/rds-backups", &viewer, spec(json!([{ "identifier": "orders" }])))
        .await
        .expect(403);

    // Create with the org's hourly policy: it names the definition in usedBy.
    let mut body = spec(json!([{ "identifier": "orders" }, { "identifier": "ledger", "cluster": true }]));
    body["policyId"] = json!(t.default_policy_id);
    let created = api.post("/v1/rds-backups", &t.admin, body.clone()).await.expect(201);
    let def = created.id();
    assert!(def.starts_with("rdsbkp_"));
    let policy = api
        .get(&format!("/v1/policies/{}", t.default_policy_id), &t.admin)
        .await
        .expect(200);
    assert_eq!(policy.body["usedBy"][0]["kind"], "RDS_BACKUP", "{}", policy.text);
    assert_eq!(policy.body["usedBy"][0]["id"], def);
    // An hourly policy cannot drive copies.
    let mut hourly_copies = body.clone();
    hourly_copies["copy"]["policyId"] = json!(t.default_policy_id);
    let refused = api
        .put(
            &format!("/v1/rds-backups/{def}"),
            &t.admin,
            &created.etag(),
            hourly_copies,
        )
        .await
        .expect(400);
    assert_eq!(refused.body["field"], "copy.policyId", "{}", refused.text);

    // Run now: 201 with the PENDING job; the queue drives it to COMPLETED.
    let run = api
        .post(&format!("/v1/rds-backups/{def}/run"), &viewer, json!({}))
        .await
        .expect(403);
    assert_eq!(run.body["code"], "forbidden");
    let operator = api.key(&t, "operator").await;
    let run = api
        .post(&format!("/v1/rds-backups/{def}/run"), &operator, json!({}))
        .await
        .expect(201);
    assert_eq!(
        (run.body["type"].as_str(), run.body["state"].as_str()),
        (Some("RDS_BACKUP"), Some("PENDING"))
    );
    drain(&api).await;
    let done = job_state(&api, &t, &run.body).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(done["counters"]["copiesCompleted"], 2);
    let points = api
        .get(&format!("/v1/rds-recoverypoints?definitionId={def}"), &t.admin)
        .await
        .expect(200);
    let items = points.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 4, "{}", points.text);
    let find = |t: &str, cluster: bool| {
        items
            .iter()
            .find(|p| p["type"] == t && p["database"]["cluster"] == cluster)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let snap = find("SNAPSHOT", false);
    let copy = find("COPY", false);
    let one = api
        .get(&format!("/v1/rds-recoverypoints/{copy}"), &t.admin)
        .await
        .expect(200);
    assert_eq!(one.body["snapshot"]["region"], "us-west-2");
    assert_eq!(one.body["state"], "AVAILABLE");

    // Copy only: an RDS_COPY job of the latest snapshots.
    let copy_only = api
        .post(
            &format!("/v1/rds-backups/{def}/run"),
            &operator,
            json!({ "copyOnly": true }),
        )
        .await
        .expect(201);
    assert_eq!(copy_only.body["type"], "RDS_COPY");
    drain(&api).await;
    assert_eq!(job_state(&api, &t, &copy_only.body).await["state"], "COMPLETED");

    // Restores: from the snapshot; from the copy (its region, a subnet group there); PITR.
    let restore =
        |source: Value, target: Value| json!({ "cloudAccountId": account, "source": source, "target": target });
    let r = api
        .post(
            "/v1/rds-restores",
            &operator,
            restore(
                json!({ "kind": "RECOVERY_POINT", "recoveryPointId": snap }),
                json!({ "identifier": "orders-restored", "instanceClass": "db.t3.micro",
                        "securityGroupIds": ["sg-1"], "multiAz": true }),
            ),
        )
        .await
        .expect(201);
    assert_eq!(r.body["type"], "RDS_RESTORE");
    let no_subnets = api
        .post(
            "/v1/rds-restores",
            &operator,
            restore(
                json!({ "kind": "RECOVERY_POINT", "recoveryPointId": copy }),
                json!({ "identifier": "orders-west" }),
            ),
        )
        .await
        .expect(400);
    assert_eq!(no_subnets.body["field"], "target.subnetGroup", "{}", no_subnets.text);
    let west = api
        .post(
            "/v1/rds-restores",
            &operator,
            restore(
                json!({ "kind": "RECOVERY_POINT", "recoveryPointId": copy }),
                json!({ "identifier": "orders-west", "subnetGroup": "west-subnets" }),
            ),
        )
        .await
        .expect(201);
    assert_eq!(west.body["rds"]["region"], "us-west-2");
    let outside = api
        .post(
            "/v1/rds-restores",
            &operator,
            restore(
                json!({ "kind": "POINT_IN_TIME", "region": "us-east-1", "database": { "identifier": "orders" },
                        "restoreTime": "2001-01-01T00:00:00Z" }),
                json!({ "identifier": "orders-pitr" }),
            ),
        )
        .await
        .expect(400);
    assert_eq!(outside.body["field"], "source.restoreTime", "{}", outside.text);
    let pitr = api
        .post(
            "/v1/rds-restores",
            &operator,
            restore(
                json!({ "kind": "POINT_IN_TIME", "region": "us-east-1", "database": { "identifier": "orders" },
                        "useLatestRestorableTime": true }),
                json!({ "identifier": "orders-pitr" }),
            ),
        )
        .await
        .expect(201);
    drain(&api).await;
    for job in [&r.body, &west.body, &pitr.body] {
        assert_eq!(job_state(&api, &t, job).await["state"], "COMPLETED");
    }
    assert_eq!(api.rds.restores().len(), 3);

    // Restore verification on demand: operators only; VERIFIED on the point once its job
    // ends; a copy without the definition's subnet group cannot be verified; weekly is
    // refused for RDS, naming the field.
    api.post(&format!("/v1/rds-recoverypoints/{snap}/verify"), &viewer, json!({}))
        .await
        .expect(403);
    let verifying = api
        .post(&format!("/v1/rds-recoverypoints/{snap}/verify"), &operator, json!({}))
        .await
        .expect(201);
    assert_eq!(verifying.body["type"], "RDS_RESTORE");
    assert_eq!(verifying.body["rds"]["verifies"], snap.as_str());
    let temporary = verifying.body["rds"]["restore"]["target"]["identifier"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(temporary.starts_with("arca-verify-"), "{temporary}");
    drain(&api).await;
    assert_eq!(job_state(&api, &t, &verifying.body).await["state"], "COMPLETED");
    let point = api
        .get(&format!("/v1/rds-recoverypoints/{snap}"), &t.admin)
        .await
        .expect(200);
    assert_eq!(point.body["verification"]["state"], "VERIFIED", "{}", point.text);
    assert_eq!(point.body["verification"]["database"]["identifier"], temporary.as_str());
    let refused = api
        .post(&format!("/v1/rds-recoverypoints/{copy}/verify"), &operator, json!({}))
        .await
        .expect(409);
    assert_eq!(refused.body["code"], "restore_not_possible", "{}", refused.text);
    let mut weekly = body.clone();
    weekly["verification"] = json!({ "when": "weekly" });
    let current = api.get(&format!("/v1/rds-backups/{def}"), &t.admin).await.expect(200);
    let weekly = api
        .put(&format!("/v1/rds-backups/{def}"), &t.admin, &current.etag(), weekly)
        .await
        .expect(400);
    assert_eq!(weekly.body["field"], "verification.when", "{}", weekly.text);

    // Pause and resume (operator, If-Match optional); delete (admin, If-Match required).
    let paused = api
        .post(&format!("/v1/rds-backups/{def}/pause"), &operator, json!({}))
        .await
        .expect(200);
    assert_eq!(paused.body["paused"], true);
    let resumed = api
        .post(&format!("/v1/rds-backups/{def}/resume"), &operator, json!({}))
        .await
        .expect(200);
    assert_eq!(resumed.body["paused"], false);
    api.delete(&format!("/v1/rds-backups/{def}"), &t.admin, "\"1\"")
        .await
        .expect(412);
    api.delete(&format!("/v1/rds-backups/{def}"), &t.admin, &resumed.etag())
        .await
        .expect(204);
    api.get(&format!("/v1/rds-backups/{def}"), &t.admin).await.expect(404);
    let policy = api
        .get(&format!("/v1/policies/{}", t.default_policy_id), &t.admin)
        .await
        .expect(200);
    assert_eq!(policy.body["usedBy"], json!([]), "released with the definition");
}
