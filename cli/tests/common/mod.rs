//! What the CLI tests share: a real single-machine server on a loopback port, a user
//! running the built `arca` binary against it, and AWS (moto) seen from inside an account.

#![allow(clippy::unwrap_used, dead_code)]

pub mod node;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use arca_cli::server::{RunningServer, ServerOptions, start};
use serde_json::Value;

/// A server on its own runtime, so the test body can run the CLI synchronously.
pub struct Server {
    pub rt: tokio::runtime::Runtime,
    pub running: RunningServer,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = ServerOptions::new(data_dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
        let running = rt.block_on(start(options)).unwrap();
        Server { rt, running }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    pub fn stop(self) {
        self.rt.block_on(self.running.stop()).unwrap();
    }
}

/// A server on `dir/data` and its first user, `admin` (files in `dir/admin`), who signed
/// up org `org`.
pub fn server_and_admin(dir: &Path, org: &str) -> (Server, User) {
    let server = Server::start(&dir.join("data"));
    let admin = User::new(&server.url(), dir, "admin");
    admin.ok(&["signup", "--org-name", org]);
    (server, admin)
}

/// `arca <args> --listen 127.0.0.1:0` as its own process in `dir`, once it has said where
/// it listens: the process, its URL, and the rest of its stdout.
pub fn spawn_server(
    args: &[&str],
    dir: &Path,
) -> (
    std::process::Child,
    String,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    (child, url, lines)
}

/// Sends SIGTERM to `child` and asserts it stops cleanly.
pub fn stop_with_sigterm(mut child: std::process::Child) {
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean stop on SIGTERM, got {status:?}");
}

/// One user's CLI: a config file of its own, the server's URL, no key from the
/// environment unless given.
pub struct User {
    pub url: String,
    pub config: PathBuf,
    pub home: PathBuf,
}

impl User {
    pub fn new(url: &str, dir: &Path, name: &str) -> User {
        User {
            url: url.to_owned(),
            config: dir.join(name).join("config.json"),
            home: dir.join(name),
        }
    }

    /// The `arca` command of this user, with `args` and `env`.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_arca"));
        cmd.args(args)
            .env("ARCA_API_URL", &self.url)
            .env("ARCA_CONFIG", &self.config)
            .env("HOME", &self.home)
            .env_remove("ARCA_API_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    /// [`User::run_with`], killing the CLI after `limit`: a wait that never ends fails the
    /// test instead of hanging it.
    pub fn run_within(&self, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
        let mut child = self
            .command(args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > limit {
                child.kill().unwrap();
                let out = child.wait_with_output().unwrap();
                panic!("arca {args:?} still running after {limit:?}: {}", stderr(&out));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait_with_output().unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "arca {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// `restores create --recovery-point POINT --cluster CLUSTER --wait`: the restore.
    pub fn restore_waiting(&self, point: &str, cluster: &str) -> Value {
        self.json(&[
            "restores",
            "create",
            "--recovery-point",
            point,
            "--cluster",
            cluster,
            "--wait",
        ])
    }

    pub fn saved_key(&self) -> String {
        let doc: Value = serde_json::from_slice(&std::fs::read(&self.config).unwrap()).unwrap();
        doc["apiKey"].as_str().unwrap().to_owned()
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs and asserts the exit code; returns stderr.
pub fn fails(user: &User, args: &[&str], code: i32) -> String {
    let out = user.run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "arca {args:?}: {err}");
    if code == 1 {
        assert!(err.starts_with("arca: error: "), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    err
}

/// A fresh 12-digit AWS account per run, so reruns on the same moto start empty.
pub fn fresh_account() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:012}", (nanos % 900_000_000_000) + 100_000_000_000)
}

/// The AWS configuration of a client acting inside `account` on moto (credentials from
/// AssumeRole into it).
pub async fn config_in(account: &str, region: &str) -> aws_config::SdkConfig {
    config_in_env(&arca_testenv::aws().unwrap(), account, region).await
}

/// [`config_in`] on the moto of `aws` (the nodes' environment has its own).
pub async fn config_in_env(aws: &arca_testenv::AwsEnv, account: &str, region: &str) -> aws_config::SdkConfig {
    use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
    let base = aws.sdk_config().await;
    let out = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/seed"))
        .role_session_name("seed")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "seed",
    );
    base.to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .build()
}

/// An RDS client acting inside `account` on moto.
pub async fn rds_in(account: &str, region: &str) -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&config_in(account, region).await)
}

/// The request that makes the tests' small PostgreSQL instance `id` (add options, then send).
pub fn postgres(
    rds: &aws_sdk_rds::Client,
    id: &str,
) -> aws_sdk_rds::operation::create_db_instance::builders::CreateDBInstanceFluentBuilder {
    rds.create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("arca")
        .master_user_password("not-a-secret-1")
}
