//! The RDS and EKS commands of `arca` against a real single-machine server whose AWS is
//! moto (the test environment's AWS_ENDPOINT_URL; `arca server` reaches it through the
//! standard AWS configuration and drives RDS jobs with its RDS loop): RDS definitions
//! (create with a list and copies, list, get, update, pause, resume, run, copy-only,
//! delete), their recovery points, restores from a recovery point (waited for), from a
//! snapshot and to a point in time; a cluster registered with its AWS link, a backup of
//! it whose EKS metadata is kept, and the re-creation of that EKS cluster (listed, and
//! moved by the server's work queue, re-sent after a restart, not by reads). Each account
//! is a fresh one on moto, so reruns start empty.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, User, config_in, fails, fresh_account, postgres, rds_in, server_and_admin, stderr};
use serde_json::{Value, json};

/// Runs the CLI, killing it after `limit`: a `--wait` that never ends fails the test
/// instead of hanging it. Returns stdout, asserting success.
fn ok_within(user: &User, args: &[&str], limit: Duration) -> String {
    let out = user.run_within(args, &[], limit);
    assert!(out.status.success(), "arca {args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Reads the job until it ends (bounded: the RDS loop checks its queue every 2 s).
fn job_ends(user: &User, job: &str) -> Value {
    let start = Instant::now();
    loop {
        let doc = user.json(&["jobs", "get", job]);
        let state = doc["state"].as_str().unwrap().to_owned();
        if !matches!(state.as_str(), "PENDING" | "RUNNING" | "CANCELLING") {
            return doc;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "job {job} never ended: {doc}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn id(doc: &Value) -> String {
    doc["id"].as_str().unwrap().to_owned()
}

/// Seeds moto: a PostgreSQL instance and an EKS cluster with a node group in `account`.
async fn seed(account: &str, db: &str, eks_name: &str) {
    postgres(&rds_in(account, "us-east-1").await, db)
        .backup_retention_period(7)
        .send()
        .await
        .unwrap();
    let eks = aws_sdk_eks::Client::new(&config_in(account, "us-east-1").await);
    eks.create_cluster()
        .name(eks_name)
        .version("1.33")
        .role_arn(format!("arn:aws:iam::{account}:role/eks"))
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .subnet_ids("subnet-2")
                .build(),
        )
        .send()
        .await
        .unwrap();
    eks.create_nodegroup()
        .cluster_name(eks_name)
        .nodegroup_name("workers")
        .node_role(format!("arn:aws:iam::{account}:role/node"))
        .subnets("subnet-1")
        .instance_types("m6i.large")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(1)
                .max_size(3)
                .desired_size(2)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[test]
fn rds_and_eks_on_moto() {
    let Some(_) = arca_testenv::aws() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_and_admin(dir.path(), "acme");

    let account = fresh_account();
    let db = format!("db-{account}");
    let eks_name = format!("eks-{account}");
    server.rt.block_on(seed(&account, &db, &eks_name));
    admin.ok(&[
        "cloud-accounts",
        "link",
        "--name",
        "moto",
        "--region",
        "us-east-1,us-west-2",
    ]);
    let role = format!("arn:aws:iam::{account}:role/arca-cross-account");
    admin.ok(&["cloud-accounts", "set-role", "moto", "--role-arn", &role]);
    admin.ok(&["policies", "create", "daily", "--schedule", "0 3 * * *=7"]);
    let daily = id(&admin.json(&["policies", "get", "daily"]));

    // ---- RDS definitions ----
    // Usage errors (exit 2) are found before the API: copy flags without a region to copy
    // to, a tag without '=', a selection by list and by tag.
    let create = [
        "rds",
        "backups",
        "create",
        "x",
        "--account",
        "moto",
        "--region",
        "us-east-1",
    ];
    fails(
        &admin,
        &[&create[..], &["--db-instance", &db, "--copy-retain-days", "3"]].concat(),
        2,
    );
    fails(&admin, &[&create[..], &["--tag", "backup"]].concat(), 2);
    fails(
        &admin,
        &[&create[..], &["--tag", "a=b", "--db-instance", &db]].concat(),
        2,
    );
    fails(&admin, &create, 2);
    // The API's refusal: exit 1, one line with the problem code and the field.
    let err = fails(&admin, &[&create[..], &["--db-instance", "9-bad"]].concat(), 1);
    assert!(err.contains("databases[0].identifier"), "{err}");

    let out = admin.ok(&[
        "rds",
        "backups",
        "create",
        "orders",
        "--account",
        "moto",
        "--region",
        "us-east-1",
        "--db-instance",
        &db,
        "--policy",
        "daily",
        "--copy-to",
        "us-west-2",
        "--copy-retain-days",
        "30",
    ]);
    assert!(
        out.starts_with("RDS backup orders created (rdsbkp_") && out.contains(&db),
        "{out}"
    );
    let table = admin.ok(&["rds", "backups", "list"]);
    let header = table.lines().next().unwrap();
    assert!(header.contains("DATABASES") && header.contains("COPIES TO"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains("orders"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains(&db) && row.contains("us-west-2") && row.contains(&daily),
        "{row}"
    );
    let def: Value = serde_norway::from_str(&admin.ok(&["rds", "backups", "get", "orders", "-o", "yaml"])).unwrap();
    assert_eq!(
        def["databases"],
        json!([{ "identifier": db, "cluster": false }]),
        "{def}"
    );
    assert_eq!(
        (
            def["policyId"].clone(),
            def["copy"]["destinationRegion"].clone(),
            def["copy"]["retainDays"].clone()
        ),
        (json!(daily), json!("us-west-2"), json!(30))
    );
    let def_id = id(&def);
    assert_eq!(
        admin.json(&["policies", "get", "daily"])["usedBy"][0]["id"],
        def_id.as_str()
    );

    // update keeps what is not given; the copy flags edit the current copy.
    let updated = admin.json(&[
        "rds",
        "backups",
        "update",
        "orders",
        "--copy-retain-days",
        "14",
        "--copy-delete-source",
        "false",
        "--no-policy",
    ]);
    assert_eq!(updated["copy"]["retainDays"], 14, "{updated}");
    assert_eq!(updated["copy"]["destinationRegion"], "us-west-2", "{updated}");
    assert_eq!(updated["copy"]["deleteSourceAfterCopy"], false, "{updated}");
    assert!(updated["policyId"].is_null(), "{updated}");
    assert_eq!(updated["databases"], def["databases"]);
    assert!(admin.ok(&["rds", "backups", "pause", "orders"]).contains("paused"));
    assert_eq!(admin.json(&["rds", "backups", "get", &def_id])["paused"], true);
    assert_eq!(admin.json(&["rds", "backups", "resume", "orders"])["paused"], false);

    // run --wait: the server's RDS loop takes the snapshot and copies it to the west.
    let out = ok_within(
        &admin,
        &["rds", "backups", "run", "orders", "--wait"],
        Duration::from_secs(90),
    );
    assert!(out.contains("COMPLETED"), "{out}");
    let points = admin.json(&["rds", "recovery-points", "list", "--backup", "orders"]);
    let points = points.as_array().unwrap();
    assert_eq!(points.len(), 2, "a snapshot and its copy: {points:?}");
    let pick = |t: &str| points.iter().find(|p| p["type"] == t).unwrap().clone();
    let (snap, copy) = (pick("SNAPSHOT"), pick("COPY"));
    assert_eq!(
        (snap["snapshot"]["region"].as_str(), copy["snapshot"]["region"].as_str()),
        (Some("us-east-1"), Some("us-west-2"))
    );
    let table = admin.ok(&["rds", "recovery-points", "list"]);
    assert!(table.lines().next().unwrap().contains("SNAPSHOT"), "{table}");
    assert!(table.contains(&id(&copy)) && table.contains("AVAILABLE"), "{table}");
    let one = admin.ok(&["rds", "recovery-points", "get", &id(&copy)]);
    assert!(one.contains("FIELD") && one.contains("us-west-2"), "{one}");

    // Restore verification: set by update, run on demand with --wait (the snapshot to a
    // temporary db.t3.small on moto, deleted), VERIFIED in the table; a copy needs the
    // definition's subnet group: one line, exit 1; --no-verify drops the settings.
    let verifying = admin.json(&[
        "rds",
        "backups",
        "update",
        "orders",
        "--verify",
        "after-backup",
        "--verify-class",
        "db.t3.small",
    ]);
    assert_eq!(verifying["verification"]["instanceClass"], "db.t3.small", "{verifying}");
    let out = ok_within(
        &admin,
        &["rds", "recovery-points", "verify", &id(&snap), "--wait"],
        Duration::from_secs(90),
    );
    assert!(out.contains("COMPLETED"), "{out}");
    let shown = admin.json(&["rds", "recovery-points", "get", &id(&snap)]);
    assert_eq!(shown["verification"]["state"], "VERIFIED", "{shown}");
    let temporary = shown["verification"]["database"]["identifier"]
        .as_str()
        .unwrap_or_default();
    assert!(temporary.starts_with("arca-verify-"), "{shown}");
    let table = admin.ok(&["rds", "recovery-points", "list"]);
    assert!(
        table.lines().next().unwrap().trim_end().ends_with("VERIFIED")
            && table
                .lines()
                .any(|l| l.contains(&id(&snap)) && l.trim_end().ends_with("VERIFIED")),
        "{table}"
    );
    let err = fails(&admin, &["rds", "recovery-points", "verify", &id(&copy)], 1);
    assert!(
        err.contains("restore_not_possible") && err.contains("subnetGroup"),
        "{err}"
    );
    let dropped = admin.json(&["rds", "backups", "update", "orders", "--no-verify"]);
    assert!(dropped["verification"].is_null(), "{dropped}");

    // copy only: an RDS_COPY job, followed by polling.
    let job = admin.json(&["rds", "backups", "run", "orders", "--copy-only"]);
    assert_eq!(job["type"], "RDS_COPY", "{job}");
    assert_eq!(job_ends(&admin, &id(&job))["state"], "COMPLETED");

    // ---- RDS restores ----
    fails(
        &admin,
        &[
            "rds",
            "restores",
            "create",
            "--account",
            "moto",
            "--db-instance",
            &db,
            "--region",
            "us-east-1",
            "--restore-time",
            "yesterday",
            "--target",
            "x",
        ],
        2,
    );
    fails(
        &admin,
        &["rds", "restores", "create", "--account", "moto", "--target", "x"],
        2,
    );
    let from_point = format!("rp-{account}");
    let out = ok_within(
        &admin,
        &[
            "rds",
            "restores",
            "create",
            "--account",
            "moto",
            "--recovery-point",
            &id(&snap),
            "--target",
            &from_point,
            "--instance-class",
            "db.t3.small",
            "--wait",
        ],
        Duration::from_secs(90),
    );
    assert!(out.contains("COMPLETED"), "{out}");
    let from_snapshot = format!("snap-{account}");
    let by_snapshot = admin.json(&[
        "rds",
        "restores",
        "create",
        "--account",
        "moto",
        "--snapshot",
        snap["snapshot"]["identifier"].as_str().unwrap(),
        "--region",
        "us-east-1",
        "--target",
        &from_snapshot,
    ]);
    let pitr = format!("pitr-{account}");
    let out = admin.ok(&[
        "rds",
        "restores",
        "create",
        "--account",
        "moto",
        "--db-instance",
        &db,
        "--region",
        "us-east-1",
        "--latest",
        "--target",
        &pitr,
    ]);
    assert!(
        out.starts_with(&format!("RDS restore into {pitr} started: job job_")),
        "{out}"
    );
    assert_eq!(job_ends(&admin, &id(&by_snapshot))["state"], "COMPLETED");
    // The three restores, and the verification's (an RDS_RESTORE job too, naming its point).
    let listed = admin.json(&["rds", "restores", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");
    let verifications: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["rds"]["verifies"] == snap["id"])
        .collect();
    assert_eq!(verifications.len(), 1, "{listed}");
    for restore in listed.as_array().unwrap() {
        assert_eq!(job_ends(&admin, &id(restore))["state"], "COMPLETED", "{restore}");
    }
    let table = admin.ok(&["rds", "restores", "list"]);
    assert!(table.lines().next().unwrap().contains("FROM"), "{table}");
    assert!(
        table.contains(&from_point) && table.contains(&from_snapshot) && table.contains(&format!("{db} at latest")),
        "{table}"
    );
    let shown: Value =
        serde_norway::from_str(&admin.ok(&["rds", "restores", "get", &id(&by_snapshot), "-o", "yaml"])).unwrap();
    assert_eq!(shown["rds"]["restore"]["target"]["identifier"], from_snapshot.as_str());
    let made = server.rt.block_on(async {
        let rds = rds_in(&account, "us-east-1").await;
        let mut found = Vec::new();
        for target in [&from_point, &from_snapshot, &pitr] {
            let d = rds.describe_db_instances().db_instance_identifier(target).send().await;
            found.push(d.is_ok());
        }
        found
    });
    assert_eq!(made, [true, true, true], "the three instances exist in the account");

    admin.ok(&["rds", "backups", "delete", "orders"]);
    assert_eq!(admin.json(&["rds", "backups", "list"]), json!([]));
    fails(&admin, &["rds", "backups", "get", "orders"], 1);

    // ---- a cluster on EKS: linked, backed up with its EKS metadata, re-created ----
    admin.ok(&["cloud-accounts", "inventory", "moto"]);
    let backups_dir = dir.path().join("backups");
    admin.ok(&[
        "destinations",
        "create",
        "local",
        "--local-path",
        backups_dir.to_str().unwrap(),
    ]);
    fails(&admin, &["clusters", "register", "x", "--aws-region", "us-east-1"], 2);
    let token_file = dir.path().join("eks.token");
    admin.ok(&[
        "clusters",
        "register",
        "prod",
        "--agent-token-file",
        token_file.to_str().unwrap(),
        "--aws-account",
        "moto",
        "--aws-region",
        "us-east-1",
        "--eks-cluster",
        &eks_name,
    ]);
    let cluster = admin.json(&["clusters", "get", "prod"]);
    let account_id = id(&admin.json(&["cloud-accounts", "get", "moto"]));
    assert_eq!(
        cluster["aws"],
        json!({ "cloudAccountId": account_id, "region": "us-east-1", "eksClusterName": eks_name })
    );
    // update edits the link (and --no-eks-cluster / --no-aws unlink), keeping the rest.
    let edited = admin.json(&["clusters", "update", "prod", "--no-eks-cluster"]);
    assert!(edited["aws"]["eksClusterName"].is_null(), "{edited}");
    assert_eq!(edited["aws"]["region"], "us-east-1");
    let edited = admin.json(&["clusters", "update", "prod", "--no-aws"]);
    assert!(edited["aws"].is_null(), "{edited}");
    fails(&admin, &["clusters", "update", "prod", "--eks-cluster", &eks_name], 2);
    let edited = admin.json(&[
        "clusters",
        "update",
        "prod",
        "--aws-account",
        "moto",
        "--aws-region",
        "us-east-1",
        "--eks-cluster",
        &eks_name,
    ]);
    assert_eq!(edited["aws"], cluster["aws"]);

    // The agent (its protocol, by hand) completes a backup: the point keeps the EKS shape.
    admin.ok(&[
        "backups",
        "create",
        "web",
        "--cluster",
        "prod",
        "--destination",
        "local",
        "--pv-mode",
        "none",
    ]);
    let token = std::fs::read_to_string(&token_file).unwrap();
    let rp = server.rt.block_on(agent_backs_up(&server.url(), &token, || {
        admin.ok(&["backups", "run", "web"]);
    }));
    let aws = admin.json(&["recovery-points", "aws", &rp]);
    assert_eq!(aws["eks"]["name"], eks_name.as_str(), "{aws}");
    assert_eq!(aws["eks"]["nodegroups"][0]["name"], "workers", "{aws}");

    fails(&admin, &["eks", "recreate", &rp, "--name", "bad name!"], 1);
    let new_name = format!("eks-{account}-2");
    let started = admin.json(&["eks", "recreate", &rp, "--name", &new_name]);
    assert_eq!(started["state"], "CREATING_CLUSTER", "{started}");
    let recreation = id(&started);
    assert!(recreation.starts_with("eksr_"), "{started}");
    let shown = admin.ok(&["eks", "get", &recreation]);
    assert!(shown.contains(&new_name) && shown.contains(&rp), "{shown}");
    // Reading does not move it (its first check is a minute away on the work queue).
    let shown = admin.json(&["eks", "get", &recreation]);
    assert_eq!(shown["state"], "CREATING_CLUSTER", "{shown}");
    let listed = admin.ok(&["eks", "list"]);
    assert!(
        listed.contains("RECOVERY POINT") && listed.contains(&recreation) && listed.contains(&new_name),
        "{listed}"
    );
    let listed = admin.json(&["eks", "list"]);
    assert_eq!(listed[0]["id"], recreation.as_str(), "{listed}");
    let yaml: Value = serde_norway::from_str(&admin.ok(&["eks", "list", "-o", "yaml"])).unwrap();
    assert_eq!(yaml, listed, "YAML and JSON carry the same document");
    let created = server.rt.block_on(async {
        aws_sdk_eks::Client::new(&config_in(&account, "us-east-1").await)
            .describe_cluster()
            .name(&new_name)
            .send()
            .await
            .unwrap()
    });
    let like = created.cluster().unwrap();
    assert_eq!(like.version(), Some("1.33"));

    // A restart loses the in-memory work queue; start-up sends the unfinished
    // re-creation's message again, and the loop steps it (moto's cluster is ACTIVE at
    // once): nobody's read moves it.
    server.stop();
    let server = Server::start(&dir.path().join("data"));
    let admin = User::new(&server.url(), dir.path(), "admin");
    let start = Instant::now();
    let ready = loop {
        let doc = admin.json(&["eks", "get", &recreation]);
        if doc["state"] != "CREATING_CLUSTER" {
            break doc;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never stepped: {doc}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(ready["state"], "WAITING_FOR_AGENT", "{ready}");
    let cluster = ready["clusterId"].as_str().unwrap();
    assert!(
        ready["nextStep"]
            .as_str()
            .unwrap()
            .contains(&format!("arca clusters install {cluster}")),
        "{ready}"
    );
    let listed = admin.ok(&["eks", "list"]);
    assert!(
        listed.contains("WAITING_FOR_AGENT") && listed.contains(cluster),
        "{listed}"
    );
    server.stop();
}

/// What an agent of the cluster does for one backup: connects, runs `trigger` (the
/// backup is run now), leases the job and completes it; answers the recovery point.
async fn agent_backs_up(url: &str, token: &str, trigger: impl FnOnce()) -> String {
    let http = reqwest::Client::new();
    let call = |path: &str, session: Option<&str>, body: Value| {
        let mut request = http.post(format!("{url}{path}")).bearer_auth(token).json(&body);
        if let Some(s) = session {
            request = request.header("x-arca-agent-session", s);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let doc: Value = response.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{status}: {doc}");
            doc
        }
    };
    let connected = call("/v1/agent/connect", None, json!({ "agentVersion": "0.0.0-cli-test" })).await;
    let session = connected["sessionId"].as_str().unwrap().to_owned();
    call("/v1/agent/heartbeat", Some(&session), json!({})).await;
    trigger();
    let polled = call("/v1/agent/poll", Some(&session), json!({})).await;
    let job = polled["job"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{polled}"))
        .to_owned();
    let lease = polled["leaseToken"].as_str().unwrap().to_owned();
    // The archive where the job's destination access says this cluster's data goes.
    let access = call(&format!("/v1/agent/jobs/{job}/credentials"), Some(&session), json!({})).await;
    let prefix = format!("{}resources/archives/x1", access["clusterPrefix"].as_str().unwrap());
    let done = call(
        &format!("/v1/agent/jobs/{job}/complete"),
        Some(&session),
        json!({ "leaseToken": lease, "state": "COMPLETED", "backup": { "prefix": prefix, "resourceCount": 3 } }),
    )
    .await;
    done["recoveryPointId"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"))
        .to_owned()
}
