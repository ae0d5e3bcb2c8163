//! The one place tests learn where the real test environment is.
//!
//! `scripts/testenv.sh up` starts two kube-apiservers and moto (and builds helm);
//! `scripts/testenv.sh env` prints the variables read here. A test that needs the environment asks for it:
//!
//! ```text
//! let Some(cluster) = arca_testenv::cluster_a().await else { return };
//! ```
//!
//! When a variable is missing, the test is skipped with a loud message on a developer
//! machine, and fails when `CI` is set: CI must never go green by skipping.
//!
//! [`api`] serves the API in-process, for the tests that drive it over HTTP; [`noise`]
//! makes test data.

pub mod api;
pub mod webhook;

use std::path::PathBuf;

use aws_config::{BehaviorVersion, SdkConfig};
use kube::config::{KubeConfigOptions, Kubeconfig};

const HOW_TO_START: &str =
    "start it with `scripts/testenv.sh up && eval \"$(scripts/testenv.sh env)\"` (or run scripts/test.sh)";

/// Returns the variable's value, or reports it missing (panicking under CI).
fn required(var: &str) -> Option<String> {
    required_from(var, |name| std::env::var(name).ok(), std::env::var_os("CI").is_some())
}

/// [`required`] over any lookup, so the rule itself is unit-tested without touching the
/// process environment.
fn required_from(var: &str, lookup: impl Fn(&str) -> Option<String>, ci: bool) -> Option<String> {
    match lookup(var) {
        Some(value) if !value.is_empty() => Some(value),
        _ if ci => {
            panic!("the test environment is missing ({var} is not set) and CI is set: {HOW_TO_START}")
        }
        _ => {
            eprintln!("SKIPPING: this test needs the real test environment ({var} is not set); {HOW_TO_START}");
            None
        }
    }
}

/// moto, standing in for the AWS APIs.
#[derive(Clone, Debug)]
pub struct AwsEnv {
    pub endpoint_url: String,
    /// The same moto over TLS (`https://127.0.0.1:<port>`, or the nodes' host IP from Pods),
    /// with a certificate of the test environment's private CA.
    pub tls: S3Tls,
}

/// moto's TLS listener: an S3-compatible store behind a private CA.
#[derive(Clone, Debug)]
pub struct S3Tls {
    pub port: u16,
    /// The private CA's certificate (PEM), for a destination's `caBundle`.
    pub ca: PathBuf,
}

fn s3_tls(port_var: &str, ca_var: &str) -> Option<S3Tls> {
    let port = required(port_var)?;
    Some(S3Tls {
        port: port
            .parse()
            .unwrap_or_else(|_| panic!("{port_var}={port:?} is not a port")),
        ca: PathBuf::from(required(ca_var)?),
    })
}

impl AwsEnv {
    /// SDK configuration pointed at moto (endpoint, dummy credentials and region come
    /// from the environment, exactly as a deployed function would get them).
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint_url)
            .load()
            .await
    }
}

pub fn aws() -> Option<AwsEnv> {
    Some(AwsEnv {
        endpoint_url: required("AWS_ENDPOINT_URL")?,
        tls: s3_tls("ARCA_TEST_S3_TLS_PORT", "ARCA_TEST_S3_TLS_CA")?,
    })
}

/// One of the test environment's kube-apiservers, through one identity.
#[derive(Clone)]
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
}

async fn cluster(var: &str) -> Option<Cluster> {
    let kubeconfig = PathBuf::from(required(var)?);
    let parsed = Kubeconfig::read_from(&kubeconfig)
        .unwrap_or_else(|e| panic!("reading {} (from {var}): {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading {} (from {var}): {e}", kubeconfig.display()));
    let client = kube::Client::try_from(config).unwrap_or_else(|e| panic!("kube client for {var}: {e}"));
    Some(Cluster { kubeconfig, client })
}

/// Cluster "a", as cluster-admin.
pub async fn cluster_a() -> Option<Cluster> {
    cluster("KUBECONFIG").await
}

/// Cluster "a", as a low-privilege reader (reads workloads and storage; no Secrets, no Nodes, no writes).
pub async fn cluster_a_reader() -> Option<Cluster> {
    cluster("ARCA_TEST_KUBECONFIG_READER").await
}

/// Cluster "b", a second independent control plane (restore-to-another-cluster), as admin.
pub async fn cluster_b() -> Option<Cluster> {
    cluster("ARCA_TEST_KUBECONFIG_B").await
}

/// The `helm` binary `scripts/testenv.sh` builds from the Go module proxy (`ARCA_HELM`):
/// the agent chart's tests render and install it with the real helm.
pub fn helm() -> Option<PathBuf> {
    required("ARCA_HELM").map(PathBuf::from)
}

/// The clusters' nodes (kubelet + containerd), for tests that run Pods: the agent as
/// users run it, workloads whose controllers must really create Pods.
#[derive(Clone, Debug)]
pub struct Nodes {
    /// `kubectl` of the clusters' release (`ARCA_KUBECTL`).
    pub kubectl: PathBuf,
    /// The host as Pods of either cluster reach it (an `arca server` listening there).
    pub host_ip: String,
    /// The agent image this project builds, as the nodes pull it (`repository@sha256:…`).
    pub agent_image: String,
    /// A busybox image for test workloads.
    pub busybox_image: String,
    /// Cluster-admin kubeconfigs of the two clusters with nodes. They are not the clusters
    /// of [`cluster_a`]/[`cluster_b`]: those stay bare control planes, whose tests count
    /// objects no controller may add to.
    pub kubeconfig_a: PathBuf,
    pub kubeconfig_b: PathBuf,
    /// The nodes' environment's moto (S3 for agents and movers).
    pub aws: AwsEnv,
    /// `KEY=VALUE` settings that point `scripts/testenv.sh` at the nodes' environment.
    pub testenv: Vec<(String, String)>,
    /// The nodes' storage: a real CSI stack around the test driver (tests/csi-driver).
    pub csi: Csi,
}

/// The CSI driver of the nodes and where it keeps the bytes of each volume: the storage
/// admin's view, for putting data on a source volume and reading a restored one.
#[derive(Clone, Debug)]
pub struct Csi {
    pub driver: String,
    /// The StorageClass (block volumes) and VolumeSnapshotClass of the driver.
    pub storage_class: String,
    pub snapshot_class: String,
    /// `<dir>/<PersistentVolume name>.img` is the volume, in cluster a and b.
    pub volumes_a: PathBuf,
    pub volumes_b: PathBuf,
}

impl Nodes {
    /// `kubectl` against `kubeconfig`.
    pub fn kubectl(&self, kubeconfig: &std::path::Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(kubeconfig);
        cmd
    }
}

/// The test environment with nodes (`scripts/testenv.sh env-nodes`).
pub fn nodes() -> Option<Nodes> {
    required("ARCA_TEST_NODES")?;
    let testenv = required("ARCA_TEST_NODE_TESTENV")?
        .split_whitespace()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    Some(Nodes {
        kubectl: PathBuf::from(required("ARCA_KUBECTL")?),
        host_ip: required("ARCA_TEST_NODE_HOST_IP")?,
        agent_image: required("ARCA_TEST_AGENT_IMAGE")?,
        busybox_image: required("ARCA_TEST_BUSYBOX_IMAGE")?,
        kubeconfig_a: PathBuf::from(required("ARCA_TEST_NODE_KUBECONFIG_A")?),
        kubeconfig_b: PathBuf::from(required("ARCA_TEST_NODE_KUBECONFIG_B")?),
        aws: AwsEnv {
            endpoint_url: required("ARCA_TEST_NODE_AWS_ENDPOINT_URL")?,
            tls: s3_tls("ARCA_TEST_NODE_S3_TLS_PORT", "ARCA_TEST_NODE_S3_TLS_CA")?,
        },
        testenv,
        csi: Csi {
            driver: required("ARCA_TEST_CSI_DRIVER")?,
            storage_class: required("ARCA_TEST_CSI_STORAGE_CLASS")?,
            snapshot_class: required("ARCA_TEST_CSI_SNAPSHOT_CLASS")?,
            volumes_a: PathBuf::from(required("ARCA_TEST_CSI_VOLUMES_A")?),
            volumes_b: PathBuf::from(required("ARCA_TEST_CSI_VOLUMES_B")?),
        },
    })
}

/// Clients of the clusters with nodes, as [`cluster_a`] and [`cluster_b`] are of the bare ones.
pub async fn node_clusters() -> Option<(Cluster, Cluster)> {
    Some((
        cluster("ARCA_TEST_NODE_KUBECONFIG_A").await?,
        cluster("ARCA_TEST_NODE_KUBECONFIG_B").await?,
    ))
}

/// A moto server of the test's own, on a free loopback port, stopped when dropped: for
/// what the shared one must not do, since it is server-wide (IAM enforcement).
///
/// It starts with every request unauthenticated, for the test's setup (users, keys,
/// policies, buckets); [`PrivateMoto::enforce_iam`] then makes moto check every request's
/// signature and the IAM policies of its caller, as AWS does (moto's own switch for
/// `INITIAL_NO_AUTH_ACTION_COUNT`, `/moto-api/reset-auth`). Needs `ARCA_TEST_MOTO_PYTHON`
/// and `ARCA_TEST_MOTO_SERVER` (`scripts/testenv.sh env`: the environment's moto virtualenv
/// and `scripts/moto_server.py`).
///
/// Its IAM is driven with boto3 from the same virtualenv ([`PrivateMoto::iam_user`],
/// [`PrivateMoto::put_user_policy`], ...), as an admin user made at start, so it works before
/// and after enforcement.
#[derive(Debug)]
pub struct PrivateMoto {
    /// `http://127.0.0.1:<port>`
    pub endpoint_url: String,
    port: u16,
    python: String,
    admin: IamUser,
    child: std::process::Child,
    log: PathBuf,
}

/// An IAM user of a [`PrivateMoto`] and its access key.
#[derive(Clone, Debug)]
pub struct IamUser {
    pub name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The IAM calls of [`PrivateMoto`]: `endpoint key secret op user [policy-name policy]`;
/// `create` prints the new access key's id and secret.
const IAM_SCRIPT: &str = r#"
import sys, boto3
endpoint, key, secret, op, user = sys.argv[1:6]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)
if op == "create":
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName=sys.argv[6], PolicyDocument=sys.argv[7])
    k = iam.create_access_key(UserName=user)["AccessKey"]
    print(k["AccessKeyId"], k["SecretAccessKey"])
elif op == "put-policy":
    iam.put_user_policy(UserName=user, PolicyName=sys.argv[6], PolicyDocument=sys.argv[7])
elif op == "delete-policy":
    iam.delete_user_policy(UserName=user, PolicyName=sys.argv[6])
else:
    sys.exit("unknown op " + op)
"#;

/// An IAM policy document allowing everything.
const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// Starts a [`PrivateMoto`] (or skips, as every test does without the environment).
pub fn private_moto() -> Option<PrivateMoto> {
    let python = required("ARCA_TEST_MOTO_PYTHON")?;
    let server = required("ARCA_TEST_MOTO_SERVER")?;
    Some(PrivateMoto::start(&python, &server))
}

impl PrivateMoto {
    fn start(python: &str, server: &str) -> PrivateMoto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("a free port for a private moto: {e}"));
        let log = std::env::temp_dir().join(format!("{}.log", unique("arca-private-moto")));
        let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = std::process::Command::new(python)
            .arg(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Setup first: nothing is checked until enforce_iam().
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "inf")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {python} {server}: {e}"));
        let mut moto = PrivateMoto {
            endpoint_url: format!("http://127.0.0.1:{port}"),
            port,
            python: python.to_owned(),
            // Until the admin exists, setup calls need no real key.
            admin: IamUser {
                name: "setup".into(),
                access_key_id: "testing".into(),
                secret_access_key: "testing".into(),
            },
            child,
            log,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if moto.request("GET", "/moto-api/", "").as_deref().is_some_and(ok) {
                moto.admin = moto.iam_user("arca-test-admin", ALLOW_ALL);
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("the private moto exited ({status}): {}", moto.log_text());
            }
            if std::time::Instant::now() > deadline {
                panic!("the private moto did not answer within 60 s: {}", moto.log_text());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The SDK pointed at this moto (credentials from the environment: until
    /// [`Self::enforce_iam`], any key is accepted).
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint_url)
            .load()
            .await
    }

    /// From now on every request is authenticated and authorized against moto's IAM.
    pub fn enforce_iam(&self) {
        let answer = self.request("POST", "/moto-api/reset-auth", "0");
        assert!(answer.as_deref().is_some_and(ok), "moto's reset-auth: {answer:?}");
    }

    /// A new IAM user with `policy` (a JSON policy document) as its inline policy
    /// `initial`, and an access key.
    pub fn iam_user(&self, name: &str, policy: &str) -> IamUser {
        let out = self.iam(&["create", name, "initial", policy]);
        let mut words = out.split_whitespace();
        match (words.next(), words.next()) {
            (Some(id), Some(secret)) => IamUser {
                name: name.to_owned(),
                access_key_id: id.to_owned(),
                secret_access_key: secret.to_owned(),
            },
            _ => panic!("creating IAM user {name}: unexpected output"),
        }
    }

    /// Sets (adds or replaces) the inline policy `policy_name` of `user`.
    pub fn put_user_policy(&self, user: &str, policy_name: &str, policy: &str) {
        self.iam(&["put-policy", user, policy_name, policy]);
    }

    pub fn delete_user_policy(&self, user: &str, policy_name: &str) {
        self.iam(&["delete-policy", user, policy_name]);
    }

    /// Runs [`IAM_SCRIPT`] as the admin; its standard output. Never prints a secret.
    fn iam(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(&self.python)
            .args(["-c", IAM_SCRIPT, &self.endpoint_url])
            .args([&self.admin.access_key_id, &self.admin.secret_access_key])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.python));
        assert!(
            out.status.success(),
            "IAM {} on the private moto failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One HTTP/1.1 request with `Connection: close`; the whole answer, or `None` when the
    /// server is not there (yet).
    fn request(&self, method: &str, path: &str, body: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .ok()?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Whether an HTTP answer's status is 200.
fn ok(answer: &str) -> bool {
    answer.split_whitespace().nth(1) == Some("200")
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A name unique to this test run, for namespaces, buckets, tables and queues.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{:x}{:x}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no rand crate.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_variable_is_returned() {
        let got = required_from("KUBECONFIG", |_| Some("/tmp/k".to_owned()), true);
        assert_eq!(got.as_deref(), Some("/tmp/k"));
    }

    #[test]
    fn a_missing_variable_skips_on_a_developer_machine() {
        assert_eq!(required_from("KUBECONFIG", |_| None, false), None);
        assert_eq!(required_from("KUBECONFIG", |_| Some(String::new()), false), None);
    }

    #[test]
    #[should_panic(expected = "KUBECONFIG is not set) and CI is set")]
    fn a_missing_variable_fails_under_ci() {
        required_from("KUBECONFIG", |_| None, true);
    }

    #[test]
    fn unique_names_do_not_repeat() {
        let names: std::collections::HashSet<_> = (0..1000).map(|_| unique("t")).collect();
        assert_eq!(names.len(), 1000);
        assert!(names.iter().all(|n| n.starts_with("t-") && n.len() <= 40));
    }
}
