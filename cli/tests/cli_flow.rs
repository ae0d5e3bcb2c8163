//! The `arca` binary against a real single-machine server: `arca_cli::server::start`
//! (the code `arca server` runs) on a loopback port, driven by the built binary over
//! HTTP as a user would. A second test stops the server and starts it on the same data
//! directory.

#![allow(clippy::unwrap_used)]

mod common;

#[cfg(unix)]
use common::mode;
use common::{
    Server, User, fails, fresh_account, postgres, rds_in, server_and_admin, spawn_server, stderr, stop_with_sigterm,
};
use serde_json::{Value, json};

#[test]
fn the_cli_drives_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let admin = User::new(&server.url(), dir.path(), "admin");

    // signup: the key goes to the config file (0600), never to the terminal.
    let out = admin.ok(&["signup", "--org-name", "acme"]);
    let key = admin.saved_key();
    assert!(key.starts_with("arca"), "a real API key was saved");
    assert!(!out.contains(&key), "signup must not print the saved key: {out}");
    #[cfg(unix)]
    assert_eq!(mode(&admin.config), 0o600);

    // login: another user's config, checked against the API before it is written.
    let other = User::new(&server.url(), dir.path(), "other");
    let out = other.run_with(&["login"], &[("ARCA_API_KEY", &key)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(printed.contains("acme") && !printed.contains(&key), "{printed}");
    assert_eq!(other.saved_key(), key);
    #[cfg(unix)]
    assert_eq!(mode(&other.config), 0o600);

    // policies create / list in each format.
    admin.ok(&[
        "policies",
        "create",
        "nightly",
        "--schedule",
        "0 2 * * *=14:3",
        "--schedule",
        "0 * * * *=1",
        "--timezone",
        "Europe/Paris",
    ]);
    let table = admin.ok(&["policies", "list"]);
    let header = table.lines().next().unwrap();
    assert!(header.contains("NAME") && header.contains("SCHEDULES"), "{table}");
    assert!(table.contains("0 2 * * *=14:3; 0 * * * *=1"), "{table}");
    let listed = admin.json(&["policies", "list"]);
    let nightly = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "nightly")
        .unwrap()
        .clone();
    assert_eq!(nightly["timezone"], "Europe/Paris");
    assert_eq!(
        nightly["schedules"][0],
        json!({"cron": "0 2 * * *", "retainDays": 14, "keepLast": 3})
    );
    let yaml: Value = serde_norway::from_str(&admin.ok(&["policies", "list", "-o", "yaml"])).unwrap();
    assert_eq!(yaml, listed, "YAML and JSON carry the same document");

    // clusters register: the one line to run, and no agent token on the terminal.
    let out = admin.ok(&["clusters", "register", "prod"]);
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("kubectl apply -f "))
        .unwrap();
    assert!(line.contains(&format!("{}/v1/install/", server.url())), "{out}");
    assert!(!out.contains("arcagent_"), "the agent token is never printed: {out}");
    let manifest = dir.path().join("agent.yaml");
    let out = admin.ok(&[
        "clusters",
        "register",
        "staging",
        "--output-file",
        manifest.to_str().unwrap(),
    ]);
    assert!(
        out.contains(&format!("kubectl apply -f {}", manifest.display())),
        "{out}"
    );
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        yaml.contains("ARCA_AGENT_TOKEN") && yaml.contains("Deployment"),
        "{yaml}"
    );
    #[cfg(unix)]
    assert_eq!(mode(&manifest), 0o600, "the manifest holds a credential");

    // --agent-token-file: only the token, private, never printed, and the live one (an
    // agent outside the cluster connects with it).
    let token_file = dir.path().join("edge.token");
    let out = admin.ok(&[
        "clusters",
        "register",
        "edge",
        "--agent-token-file",
        token_file.to_str().unwrap(),
    ]);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.starts_with("arcagent_"), "the file holds an agent token");
    assert!(!out.contains(&token), "the agent token is never printed: {out}");
    assert!(
        out.contains("ARCA_AGENT_TOKEN=") && out.contains("arca-agent run"),
        "{out}"
    );
    #[cfg(unix)]
    assert_eq!(mode(&token_file), 0o600, "the token file holds a credential");
    let connect = server.rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/agent/connect", server.url()))
            .bearer_auth(&token)
            .json(&json!({ "agentVersion": "0.0.0-cli-test" }))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(connect.is_success(), "the written token is the cluster's: {connect}");
    let out = admin.run(&[
        "clusters",
        "register",
        "both",
        "--output-file",
        "m.yaml",
        "--agent-token-file",
        "t",
    ]);
    assert_eq!(out.status.code(), Some(2), "a manifest and a bare token are exclusive");

    // backups create / run, by names.
    let backups_dir = dir.path().join("backups");
    admin.ok(&[
        "destinations",
        "create",
        "local",
        "--local-path",
        backups_dir.to_str().unwrap(),
    ]);
    admin.ok(&[
        "backups",
        "create",
        "web",
        "--cluster",
        "prod",
        "--namespaces",
        "web,db",
        "--labels",
        "app=web",
        "--pv-mode",
        "snapshot-and-copy",
        "--policy",
        "nightly",
        "--destination",
        "local",
    ]);
    let backup = admin.json(&["backups", "get", "web"]);
    assert_eq!(backup["selection"]["namespaces"], json!(["web", "db"]));
    assert_eq!(backup["selection"]["labels"], json!({"app": "web"}));
    assert_eq!(backup["pvMode"], "snapshotAndCopy");
    assert_eq!(backup["policyId"], nightly["id"]);
    let bkp_id = backup["id"].as_str().unwrap();
    let out = admin.ok(&["backups", "run", "web"]);
    assert!(out.contains("SKIPPED"), "no agent has connected to prod yet: {out}");

    // jobs list shows the run; watch ends at once on a finished job, exit 1 unless COMPLETED.
    let jobs = admin.json(&["jobs", "list", "--backup", "web"]);
    let job = &jobs[0];
    assert_eq!(job["definitionId"], bkp_id);
    assert_eq!(job["state"], "SKIPPED");
    let out = admin.run(&["jobs", "watch", job["id"].as_str().unwrap(), "--interval", "0.1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("job_skipped"), "{}", stderr(&out));

    // pause is visible on the definition.
    admin.ok(&["backups", "pause", "web"]);
    assert_eq!(admin.json(&["backups", "get", bkp_id])["paused"], true);

    // A policy in use is refused: exit 1, one line, the code and who uses it.
    let out = admin.run(&["policies", "delete", "nightly"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("arca: error: policy_in_use: ") && err.contains("web"),
        "{err}"
    );

    // Usage errors exit 2: clap's (missing --schedule) and ours (a malformed row).
    assert_eq!(admin.run(&["policies", "create", "x"]).status.code(), Some(2));
    let out = admin.run(&["policies", "create", "x", "--schedule", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // A wrong key: exit 1, `unauthenticated`, and the key is not echoed.
    let out = admin.run_with(&["policies", "list"], &[("ARCA_API_KEY", "arca_wrongkey")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("unauthenticated") && !err.contains("arca_wrongkey"),
        "{err}"
    );

    // A cluster no backup uses can go; the listing no longer shows it.
    admin.ok(&["clusters", "delete", "staging"]);
    let clusters = admin.json(&["clusters", "list"]);
    assert!(
        clusters.as_array().unwrap().iter().all(|c| c["name"] != "staging"),
        "{clusters}"
    );
    // A restore of a recovery point that does not exist is refused with the API's code.
    let out = admin.run(&[
        "restores",
        "create",
        "--recovery-point",
        "rp_01J0000000000000000000000",
        "--cluster",
        "prod",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("arca: error: "), "{}", stderr(&out));

    // Completions are generated from the same command tree.
    assert!(admin.ok(&["completions", "bash"]).contains("recovery-points"));

    server.stop();
}

#[test]
fn a_restart_keeps_the_state_and_rebuilds_queues_schedules_and_pending_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let admin = User::new(&server.url(), dir.path(), "admin");
    admin.ok(&["signup", "--org-name", "acme"]);
    admin.ok(&["policies", "create", "hourly-1", "--schedule", "5 * * * *=3"]);
    admin.ok(&["destinations", "create", "local", "--local-path", "/tmp/arca-cli-test"]);
    // Nothing deleted yet: nothing reclaimed, no repository due.
    let upkeep = admin.ok(&["destinations", "maintenance", "local"]);
    assert!(
        upkeep.contains("local: 0 bytes freed by maintenance in all"),
        "{upkeep}"
    );
    let upkeep = admin.json(&["destinations", "maintenance", "local"]);
    assert_eq!(upkeep["bytesFreedTotal"], 0, "{upkeep}");
    assert_eq!(upkeep["repositories"], serde_json::json!([]), "{upkeep}");
    let manifest = dir.path().join("agent.yaml");
    admin.ok(&[
        "clusters",
        "register",
        "prod",
        "--output-file",
        manifest.to_str().unwrap(),
    ]);
    admin.ok(&[
        "backups",
        "create",
        "web",
        "--cluster",
        "prod",
        "--policy",
        "hourly-1",
        "--destination",
        "local",
    ]);
    let bkp_id = admin.json(&["backups", "get", "web"])["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // An agent connects (the token from the manifest), so a run is PENDING, not SKIPPED.
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    // The manifest's documents are JSON (valid YAML): `"ARCA_AGENT_TOKEN": "arcagent_…",`.
    let token = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"ARCA_AGENT_TOKEN\":"))
        .unwrap()
        .trim()
        .trim_matches(|c| c == '"' || c == ',')
        .to_owned();
    assert!(token.starts_with("arcagent_"), "{token}");
    let agent = |url: String, path: &'static str, session: Option<String>, body: Value| {
        let token = token.clone();
        async move {
            let mut r = reqwest::Client::new()
                .post(format!("{url}{path}"))
                .bearer_auth(token)
                .json(&body);
            if let Some(s) = session {
                r = r.header("x-arca-agent-session", s);
            }
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, connected) = server.rt.block_on(agent(
        server.url(),
        "/v1/agent/connect",
        None,
        json!({"agentVersion": "test"}),
    ));
    assert_eq!(status, 200, "{connected}");
    let session = connected["sessionId"].as_str().unwrap().to_owned();
    let (status, body) = server.rt.block_on(agent(
        server.url(),
        "/v1/agent/heartbeat",
        Some(session.clone()),
        json!({"kubernetesVersion": "v1.33.0", "agentVersion": "test", "nodeCount": 1}),
    ));
    assert_eq!(status, 200, "{body}");
    let out = admin.ok(&["backups", "run", "web"]);
    assert!(out.contains("PENDING"), "{out}");
    let job_id = admin.json(&["jobs", "list", "--state", "pending"])[0]["id"].clone();
    assert!(job_id.is_string());
    let schedules_before = server.rt.block_on(schedules(&server, &bkp_id));
    assert_eq!(schedules_before, 1, "one schedule per policy row");
    server.stop();

    // Same data directory: the org, its policies and the job survive; the in-memory
    // queue and scheduler are rebuilt from them.
    let server = Server::start(&data);
    assert_eq!(server.running.recovered.orgs, 1);
    assert_eq!(server.running.recovered.requeued_jobs, 1);
    let admin = User {
        url: server.url(),
        ..admin
    };
    let names: Vec<Value> = admin
        .json(&["policies", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert!(names.contains(&json!("hourly-1")), "{names:?}");
    assert_eq!(server.rt.block_on(schedules(&server, &bkp_id)), 1, "schedules rebuilt");
    // The PENDING job's message was re-sent: the (re-connected) agent receives it.
    let (status, connected) = server
        .rt
        .block_on(agent(server.url(), "/v1/agent/connect", None, json!({})));
    assert_eq!(status, 200, "{connected}");
    let session = connected["sessionId"].as_str().unwrap().to_owned();
    let (status, leased) = server
        .rt
        .block_on(agent(server.url(), "/v1/agent/poll", Some(session), json!({})));
    assert_eq!(status, 200, "the job must reach the agent after a restart: {leased}");
    assert_eq!(leased["job"]["id"], job_id, "{leased}");
    assert_eq!(leased["job"]["state"], "RUNNING");
    server.stop();

    // Restarted while the job RUNS: its lease died with the process, so it is handed
    // out again, as after a lapsed lease.
    let server = Server::start(&data);
    assert_eq!(server.running.recovered.requeued_jobs, 1, "the RUNNING job");
    let (_, connected) = server
        .rt
        .block_on(agent(server.url(), "/v1/agent/connect", None, json!({})));
    let session = connected["sessionId"].as_str().unwrap().to_owned();
    let (status, again) = server
        .rt
        .block_on(agent(server.url(), "/v1/agent/poll", Some(session), json!({})));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["job"]["id"], job_id);
    assert!(again.to_string().contains("handed out again"), "{again}");
    server.stop();
}

async fn schedules(server: &Server, definition_id: &str) -> usize {
    use arca_core::ports::scheduler::Scheduler;
    server.running.scheduler.list(definition_id).await.unwrap().len()
}

/// The real binary: `arca server --listen 127.0.0.1:0` prints where it listens, serves,
/// and stops cleanly on SIGTERM (the redb file is released: a second start works).
#[cfg(unix)]
#[test]
fn the_server_binary_starts_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for round in 0..2 {
        let (child, url, mut lines) = spawn_server(&["server", "--data-dir", data.to_str().unwrap()], dir.path());
        let recovered = lines.next().unwrap().unwrap();
        assert!(recovered.contains(&format!("{round} orgs")), "{recovered}");
        let user = User::new(&url, dir.path(), "u");
        if round == 0 {
            user.ok(&["signup", "--org-name", "acme"]);
        }
        assert!(user.ok(&["policies", "list"]).contains("hourly"), "the default policy");
        stop_with_sigterm(child);
    }
}

/// The org, API keys, the update commands and linked accounts as far as they go without
/// AWS: each output format, the ETag on every edit, and the error exits.
#[test]
fn org_keys_updates_and_cloud_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_and_admin(dir.path(), "acme");

    // org get in each format; update renames and sets the default destination by name.
    let org = admin.json(&["org", "get"]);
    assert_eq!(org["name"], "acme");
    let table = admin.ok(&["org", "get"]);
    assert!(table.lines().next().unwrap().contains("FIELD"), "{table}");
    assert!(table.contains("acme"), "{table}");
    let yaml: Value = serde_norway::from_str(&admin.ok(&["org", "get", "-o", "yaml"])).unwrap();
    assert_eq!(yaml, org);
    admin.ok(&["destinations", "create", "local", "--local-path", "/tmp/arca-cli-upd"]);
    let dst = admin.json(&["destinations", "get", "local"]);
    let out = admin.ok(&["org", "update", "--name", "acme-2", "--default-destination", "local"]);
    assert!(out.contains("acme-2"), "{out}");
    let org = admin.json(&["org", "get"]);
    assert_eq!(
        (org["name"].clone(), org["defaultDestinationId"].clone()),
        (json!("acme-2"), dst["id"].clone())
    );
    let org = admin.json(&["org", "update", "--no-default-destination"]);
    assert_eq!(org["name"], "acme-2", "what is not given is kept");
    assert!(org["defaultDestinationId"].is_null(), "{org}");

    // A customer-held key: set at creation, shown, changed (its endpoint kept), kept by a
    // rename; a malformed ARN is refused naming the member.
    let (k1, k2) = (
        "arn:aws:kms:eu-west-1:123456789012:key/k1",
        "arn:aws:kms:eu-west-1:123456789012:key/k2",
    );
    admin.ok(&[
        "destinations",
        "create",
        "held",
        "--local-path",
        "/tmp/arca-cli-held",
        "--kms-key-arn",
        k1,
        "--kms-endpoint",
        "https://kms.internal",
    ]);
    let table = admin.ok(&["destinations", "list"]);
    assert!(table.contains("CUSTOMER KEY") && table.contains(k1), "{table}");
    let held = admin.json(&["destinations", "update", "held", "--kms-key-arn", k2]);
    assert_eq!(
        held["customerKey"],
        json!({ "kmsKeyArn": k2, "endpoint": "https://kms.internal" })
    );
    let held = admin.json(&["destinations", "update", "held", "--name", "held-2"]);
    assert_eq!(held["customerKey"]["kmsKeyArn"], k2, "{held}");
    let out = fails(
        &admin,
        &[
            "destinations",
            "create",
            "bad",
            "--local-path",
            "/tmp/arca-cli-bad",
            "--kms-key-arn",
            "alias/x",
        ],
        1,
    );
    assert!(out.contains("customerKey.kmsKeyArn"), "{out}");
    fails(
        &admin,
        &[
            "org",
            "update",
            "--default-destination",
            "x",
            "--no-default-destination",
        ],
        2,
    );

    // apikeys: the secret is printed once by create, and works; never by list or get.
    let out = admin.ok(&["apikeys", "create", "ci", "--role", "viewer"]);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret (shown once, keep it safe): "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    let viewer = User::new(&server.url(), dir.path(), "viewer");
    let out = viewer.run_with(&["policies", "list"], &[("ARCA_API_KEY", &secret)]);
    assert!(out.status.success(), "the new key works: {}", stderr(&out));
    let keys = admin.json(&["apikeys", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    assert!(!keys.to_string().contains(&secret), "{keys}");
    let table = admin.ok(&["api-keys", "list"]);
    assert!(
        table.contains("ci") && table.contains("viewer") && !table.contains(&secret),
        "{table}"
    );
    let ci = admin.json(&["apikeys", "get", "ci"]);
    assert_eq!(ci["role"], "viewer");
    let secret_file = dir.path().join("ops.key");
    let created = admin.json(&[
        "apikeys",
        "create",
        "ops",
        "--role",
        "operator",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ]);
    assert!(created.get("secret").is_none(), "the file has it: {created}");
    assert!(std::fs::read_to_string(&secret_file).unwrap().starts_with("arca"));
    #[cfg(unix)]
    assert_eq!(mode(&secret_file), 0o600);
    // A viewer may not manage keys: the API's code, exit 1.
    let out = viewer.run_with(&["apikeys", "list"], &[("ARCA_API_KEY", &secret)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("arca: error: forbidden"), "{}", stderr(&out));
    admin.ok(&["apikeys", "delete", "ci"]);
    let out = viewer.run_with(&["policies", "list"], &[("ARCA_API_KEY", &secret)]);
    assert!(
        stderr(&out).contains("unauthenticated"),
        "a deleted key is revoked: {}",
        stderr(&out)
    );
    fails(&admin, &["apikeys", "create", "x", "--role", "root"], 2);

    // Updates keep what is not given, and go through the ETag.
    admin.ok(&[
        "clusters",
        "register",
        "prod",
        "--agent-token-file",
        dir.path().join("t").to_str().unwrap(),
    ]);
    let c = admin.json(&[
        "clusters",
        "update",
        "prod",
        "--description",
        "the main one",
        "--default-destination",
        "local",
    ]);
    assert_eq!(
        (c["name"].clone(), c["description"].clone()),
        (json!("prod"), json!("the main one"))
    );
    assert_eq!(c["defaultDestinationId"], dst["id"]);
    admin.ok(&["clusters", "update", "prod", "--name", "production"]);
    let c = admin.json(&["clusters", "get", "production"]);
    assert_eq!(
        (c["description"].clone(), c["defaultDestinationId"].clone()),
        (json!("the main one"), dst["id"].clone())
    );

    admin.ok(&[
        "destinations",
        "update",
        "local",
        "--name",
        "disk",
        "--local-path",
        "/tmp/arca-cli-upd2",
    ]);
    let d = admin.json(&["destinations", "get", "disk"]);
    assert_eq!(
        d["target"],
        json!({"kind": "LOCAL_FILESYSTEM", "path": "/tmp/arca-cli-upd2"})
    );

    admin.ok(&["policies", "create", "daily", "--schedule", "0 3 * * *=7"]);
    admin.ok(&[
        "policies",
        "update",
        "daily",
        "--schedule",
        "0 4 * * *=30:2",
        "--suspended",
        "true",
    ]);
    let p = admin.json(&["policies", "get", "daily"]);
    assert_eq!(
        p["schedules"],
        json!([{"cron": "0 4 * * *", "retainDays": 30, "keepLast": 2}])
    );
    assert_eq!(
        (p["suspended"].clone(), p["timezone"].clone()),
        (json!(true), json!("UTC"))
    );
    fails(&admin, &["policies", "update", "daily", "--schedule", "nope"], 2);
    let err = fails(
        &admin,
        &["policies", "update", "daily", "--timezone", "Mars/Olympus"],
        1,
    );
    assert!(err.contains("validation_failed") && err.contains("timezone"), "{err}");

    admin.ok(&[
        "backups",
        "create",
        "web",
        "--cluster",
        "production",
        "--namespaces",
        "web",
        "--policy",
        "daily",
    ]);
    admin.ok(&[
        "backups",
        "update",
        "web",
        "--namespaces",
        "web,db",
        "--labels",
        "app=web",
        "--pv-mode",
        "none",
        "--no-policy",
        "--destination",
        "disk",
    ]);
    let b = admin.json(&["backups", "get", "web"]);
    assert_eq!(b["selection"]["namespaces"], json!(["web", "db"]));
    assert_eq!(b["selection"]["labels"], json!({"app": "web"}));
    assert_eq!(
        (b["pvMode"].clone(), b["policyId"].clone()),
        (json!("none"), Value::Null)
    );
    assert_eq!(b["destinationId"], dst["id"]);
    let b = admin.json(&["backups", "update", "web", "--full-cluster", "--labels", ""]);
    assert_eq!(b["selection"]["fullCluster"], true);
    assert_eq!(b["selection"]["labels"], json!({}));
    assert_eq!(b["name"], "web");
    fails(
        &admin,
        &["backups", "update", "web", "--policy", "daily", "--no-policy"],
        2,
    );
    let err = fails(&admin, &["backups", "update", "nope", "--name", "x"], 1);
    assert!(err.contains("not_found"), "{err}");

    // Cloud accounts: link prints the ExternalId (and says how to set the role, as this
    // server publishes no role stack template); -o json is the whole account.
    let out = admin.ok(&[
        "cloud-accounts",
        "link",
        "--name",
        "aws-prod",
        "--region",
        "us-east-1,eu-west-1",
    ]);
    let external = out
        .lines()
        .find_map(|l| l.strip_prefix("ExternalId: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    assert!(external.starts_with("arca-"), "{out}");
    assert!(out.contains("set-role ca_"), "{out}");
    let linked = admin.json(&[
        "accounts",
        "link",
        "--name",
        "aws-dev",
        "--region",
        "us-west-2",
        "--description",
        "dev",
    ]);
    assert_eq!(linked["state"], "PENDING");
    assert!(linked["externalId"].as_str().unwrap().starts_with("arca-"), "{linked}");
    assert!(linked["quickCreateLink"].is_null(), "{linked}");
    let table = admin.ok(&["cloud-accounts", "list"]);
    let header = table.lines().next().unwrap();
    assert!(header.contains("STATE") && header.contains("REGIONS"), "{table}");
    assert!(
        table.contains("eu-west-1,us-east-1") && table.contains("PENDING"),
        "{table}"
    );
    let listed = admin.json(&["cloud-accounts", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let yaml: Value = serde_norway::from_str(&admin.ok(&["cloud-accounts", "list", "-o", "yaml"])).unwrap();
    assert_eq!(yaml, listed);
    let got = admin.json(&["cloud-accounts", "get", "aws-prod"]);
    assert_eq!(got["externalId"], external.as_str());
    assert!(admin.ok(&["cloud-accounts", "get", "aws-prod"]).contains(&external));
    let updated = admin.json(&[
        "cloud-accounts",
        "update",
        "aws-dev",
        "--name",
        "aws-staging",
        "--region",
        "eu-central-1",
    ]);
    assert_eq!(
        (
            updated["name"].clone(),
            updated["regions"].clone(),
            updated["description"].clone()
        ),
        (json!("aws-staging"), json!(["eu-central-1"]), json!("dev"))
    );
    assert_eq!(
        updated["externalId"], linked["externalId"],
        "an edit keeps the ExternalId"
    );

    // API errors: one line with the problem's code, exit 1.
    let err = fails(
        &admin,
        &["cloud-accounts", "link", "--name", "bad", "--region", "US-EAST"],
        1,
    );
    assert!(err.contains("validation_failed") && err.contains("regions[0]"), "{err}");
    let err = fails(
        &admin,
        &["cloud-accounts", "update", "aws-prod", "--region", "us-east-1,nowhere"],
        1,
    );
    assert!(err.contains("validation_failed") && err.contains("regions[1]"), "{err}");
    let err = fails(
        &admin,
        &[
            "cloud-accounts",
            "set-role",
            "aws-prod",
            "--role-arn",
            "arn:aws:iam::12:role/x",
        ],
        1,
    );
    assert!(err.contains("validation_failed") && err.contains("roleArn"), "{err}");
    let err = fails(&admin, &["cloud-accounts", "verify", "aws-prod"], 1);
    assert!(err.contains("no role"), "{err}");
    let err = fails(&admin, &["cloud-accounts", "inventory", "aws-prod"], 1);
    assert!(err.contains("no role"), "{err}");
    let err = fails(&admin, &["cloud-accounts", "get", "nope"], 1);
    assert!(err.contains("not_found"), "{err}");
    let found = admin.json(&["cloud-accounts", "inventory", "aws-prod", "--show"]);
    assert_eq!(found, json!([]), "nothing inventoried yet");
    // Usage errors: exit 2.
    fails(&admin, &["cloud-accounts", "link", "--name", "x"], 2);
    fails(
        &admin,
        &["cloud-accounts", "inventory", "aws-prod", "--region", "us-east-1"],
        2,
    );
    fails(&admin, &["cloud-accounts", "set-role", "aws-prod"], 2);
    fails(&admin, &["cloud-accounts", "frobnicate"], 2);

    admin.ok(&["cloud-accounts", "delete", "aws-staging"]);
    let listed = admin.json(&["cloud-accounts", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    server.stop();
}

/// Linked accounts for real against moto (`arca server` reaches AWS through the standard
/// configuration: AWS_ENDPOINT_URL and the dummy credentials of the test environment):
/// set-role verifies by AssumeRole, inventory finds a seeded database, then marks it
/// vanished once it is deleted.
#[test]
fn cloud_accounts_on_moto() {
    let Some(_) = arca_testenv::aws() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_and_admin(dir.path(), "acme");

    let account = fresh_account();
    let db = format!("db-{account}");
    let rds = server.rt.block_on(rds_in(&account, "us-east-1"));
    server.rt.block_on(postgres(&rds, &db).send()).unwrap();

    admin.ok(&[
        "cloud-accounts",
        "link",
        "--name",
        "moto",
        "--region",
        "us-east-1,eu-west-1",
    ]);
    let role = format!("arn:aws:iam::{account}:role/arca-cross-account");
    let out = admin.ok(&["cloud-accounts", "set-role", "moto", "--role-arn", &role]);
    assert!(out.contains("ACTIVE") && out.contains(&account), "{out}");
    let got = admin.json(&["cloud-accounts", "get", "moto"]);
    assert_eq!(
        (
            got["state"].clone(),
            got["roleArn"].clone(),
            got["awsAccountId"].clone()
        ),
        (json!("ACTIVE"), json!(role), json!(account))
    );
    let verified = admin.json(&["cloud-accounts", "verify", "moto"]);
    assert_eq!(verified["state"], "ACTIVE");

    // Inventory now: a row per region (table), the report (json).
    let table = admin.ok(&["cloud-accounts", "inventory", "moto"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("REGION") && header.contains("PRESENT") && header.contains("VANISHED"),
        "{table}"
    );
    let east = table
        .lines()
        .find(|l| l.trim_start().starts_with("us-east-1"))
        .unwrap_or_else(|| panic!("{table}"));
    let counts: Vec<&str> = east.split_whitespace().collect();
    assert!(
        counts[1].parse::<u32>().unwrap() >= 1,
        "the database was found: {table}"
    );
    assert_eq!(counts[2], "0", "{table}");
    assert!(
        table.lines().any(|l| l.trim_start().starts_with("eu-west-1")),
        "{table}"
    );

    let shown = admin.ok(&["cloud-accounts", "inventory", "moto", "--show"]);
    let row = shown
        .lines()
        .find(|l| l.contains("RDS_INSTANCE") && l.contains(&db))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(row.contains("postgres") && !row.contains("vanished"), "{row}");
    let west: Value = serde_json::from_str(&admin.ok(&[
        "cloud-accounts",
        "inventory",
        "moto",
        "--show",
        "--region",
        "eu-west-1",
        "-o",
        "json",
    ]))
    .unwrap();
    assert!(
        west.as_array().unwrap().iter().all(|r| r["region"] == "eu-west-1"),
        "{west}"
    );
    let yaml: Value =
        serde_norway::from_str(&admin.ok(&["cloud-accounts", "inventory", "moto", "--show", "-o", "yaml"])).unwrap();
    assert_eq!(yaml.as_array().unwrap().len(), 2, "both regions: {yaml}");

    // The database goes: the next run counts it vanished, and --show marks it.
    server
        .rt
        .block_on(
            rds.delete_db_instance()
                .db_instance_identifier(&db)
                .skip_final_snapshot(true)
                .send(),
        )
        .unwrap();
    let report = admin.json(&["cloud-accounts", "inventory", "moto"]);
    let east = report["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "us-east-1")
        .unwrap();
    assert!(east["vanished"].as_u64().unwrap() >= 1, "{report}");
    let shown = admin.ok(&["cloud-accounts", "inventory", "moto", "--show", "--region", "us-east-1"]);
    let row = shown
        .lines()
        .find(|l| l.contains("RDS_INSTANCE") && l.contains(&db))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(row.contains("vanished 20"), "{row}");

    admin.ok(&["cloud-accounts", "delete", "moto"]);
    server.stop();
}
