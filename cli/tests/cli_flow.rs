//! The `arca` binary against a real single-machine server: `arca_cli::server::start`
//! (the code `arca server` runs) on a loopback port, driven by the built binary over
//! HTTP as a user would. A second test stops the server and starts it on the same data
//! directory.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use arca_cli::server::{RunningServer, ServerOptions, start};
use serde_json::{Value, json};

/// A server on its own runtime, so the test body can run the CLI synchronously.
struct Server {
    rt: tokio::runtime::Runtime,
    running: RunningServer,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = ServerOptions::new(data_dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
        let running = rt.block_on(start(options)).unwrap();
        Server { rt, running }
    }

    fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    fn stop(self) {
        self.rt.block_on(self.running.stop()).unwrap();
    }
}

/// One user's CLI: a config file of its own, the server's URL, no key from the
/// environment unless given.
struct User {
    url: String,
    config: PathBuf,
    home: PathBuf,
}

impl User {
    fn new(url: &str, dir: &Path, name: &str) -> User {
        User {
            url: url.to_owned(),
            config: dir.join(name).join("config.json"),
            home: dir.join(name),
        }
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_arca"));
        cmd.args(args)
            .env("ARCA_API_URL", &self.url)
            .env("ARCA_CONFIG", &self.config)
            .env("HOME", &self.home)
            .env_remove("ARCA_API_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "arca {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn saved_key(&self) -> String {
        let doc: Value = serde_json::from_slice(&std::fs::read(&self.config).unwrap()).unwrap();
        doc["apiKey"].as_str().unwrap().to_owned()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

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
    use arca_core::scheduler::Scheduler;
    server.running.scheduler.list(definition_id).await.unwrap().len()
}

/// The real binary: `arca server --listen 127.0.0.1:0` prints where it listens, serves,
/// and stops cleanly on SIGTERM (the redb file is released: a second start works).
#[cfg(unix)]
#[test]
fn the_server_binary_starts_serves_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for round in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arca"))
            .args([
                "server",
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_owned();
        let recovered = lines.next().unwrap().unwrap();
        assert!(recovered.contains(&format!("{round} orgs")), "{recovered}");
        let user = User::new(&url, dir.path(), "u");
        if round == 0 {
            user.ok(&["signup", "--org-name", "acme"]);
        }
        assert!(user.ok(&["policies", "list"]).contains("hourly"), "the default policy");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "a clean stop on SIGTERM, got {status:?}");
    }
}
