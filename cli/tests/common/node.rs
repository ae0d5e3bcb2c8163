//! The in-cluster tests' tools: `arca server` where Pods reach it, kubectl against the
//! test environment's clusters, and what an agent Pod must look like.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::User;

pub const AGENT_NAMESPACE: &str = "arca-system";

/// `arca server` as a process, listening where the Pods reach the host, and its log.
pub struct ServerProcess {
    child: Child,
    log: PathBuf,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server said: its work directory is gone after.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("---- arca server log (last {} lines) ----", tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_server(data: &Path, host_ip: &str, image: &str) -> (ServerProcess, String) {
    start_server_with(data, host_ip, image, &[])
}

/// [`start_server`] with more environment (e.g. Arca-managed storage's `ARCA_MANAGED_*`).
pub fn start_server_with(data: &Path, host_ip: &str, image: &str, env: &[(&str, &str)]) -> (ServerProcess, String) {
    let port = free_port(host_ip);
    let url = format!("http://{host_ip}:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(["server", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("{host_ip}:{port}")])
        .env("ARCA_PUBLIC_URL", &url)
        .env("ARCA_AGENT_IMAGE", image)
        .env("ARCA_SIGNUP", "open")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let server = ServerProcess {
        child,
        log: data.join("server.log"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect((host_ip, port)).is_err() {
        assert!(Instant::now() < deadline, "arca server did not listen on {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, url)
}

/// [`start_server_with`] on the nodes' host and agent image, its AWS the nodes' moto
/// (through the standard variables), and `env`.
pub fn start_server_on_moto(data: &Path, nodes: &arca_testenv::Nodes, env: &[(&str, &str)]) -> (ServerProcess, String) {
    let endpoint = nodes.aws.endpoint_url.trim_end_matches('/').to_owned();
    let mut all = env.to_vec();
    all.extend([
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ]);
    start_server_with(data, &nodes.host_ip, &nodes.agent_image, &all)
}

/// Links moto's `account` as cloud account `moto` (us-east-1) and sets its cross-account
/// role.
pub fn link_moto_account(user: &User, account: &str) {
    user.ok(&["cloud-accounts", "link", "--name", "moto", "--region", "us-east-1"]);
    let role = format!("arn:aws:iam::{account}:role/arca-cross-account");
    user.ok(&["cloud-accounts", "set-role", "moto", "--role-arn", &role]);
}

/// kubectl against one cluster; panics with its output unless it succeeds.
#[derive(Clone, Copy)]
pub struct Kubectl<'a> {
    pub nodes: &'a arca_testenv::Nodes,
    pub kubeconfig: &'a Path,
}

impl<'a> Kubectl<'a> {
    /// kubectl against the nodes' clusters a and b.
    pub fn a_and_b(nodes: &'a arca_testenv::Nodes) -> [Kubectl<'a>; 2] {
        [&nodes.kubeconfig_a, &nodes.kubeconfig_b].map(|kubeconfig| Kubectl { nodes, kubeconfig })
    }

    /// The Secret `bucket-keys` beside the agent: moto's keys, as a destination's
    /// `credentialsRef` names them.
    pub fn create_bucket_keys(&self) {
        self.ok(&[
            "create",
            "secret",
            "generic",
            "bucket-keys",
            "-n",
            AGENT_NAMESPACE,
            "--from-literal=AWS_ACCESS_KEY_ID=testing",
            "--from-literal=AWS_SECRET_ACCESS_KEY=testing",
        ]);
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.nodes.kubectl(self.kubeconfig).args(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn apply_json(&self, object: &Value) {
        let mut child = self
            .nodes
            .kubectl(self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), object.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Merges `patch` into an object's status subresource, as its controller would.
    pub fn patch_status(&self, what: &[&str], patch: &Value) -> std::process::Output {
        let patch = patch.to_string();
        let mut args = vec!["patch"];
        args.extend(what);
        args.extend(["--subresource=status", "--type=merge", "-p", &patch]);
        self.run(&args)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Waits until `kubectl get <what> -o json` satisfies `done`, or panics after `secs`
    /// with the last answer and the namespace's events.
    pub fn wait_for(&self, what: &[&str], secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let mut args = vec!["get"];
            args.extend(what);
            args.extend(["-o", "json"]);
            let out = self.run(&args);
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                if done(&v) {
                    return v;
                }
                if Instant::now() > deadline {
                    let events = self.run(&["get", "events", "-A", "--sort-by=.lastTimestamp"]);
                    panic!(
                        "kubectl get {what:?} never got there: {v:#}\nevents:\n{}",
                        String::from_utf8_lossy(&events.stdout)
                    );
                }
            } else if Instant::now() > deadline {
                panic!("kubectl get {what:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The agent's Pod, once Ready (its readiness probe answered through the kubelet).
    pub fn ready_agent_pod(&self) -> Value {
        let pods = self.wait_for(
            &["pods", "-n", AGENT_NAMESPACE, "-l", "app.kubernetes.io/name=arca-agent"],
            180,
            |v| {
                let items = v["items"].as_array().cloned().unwrap_or_default();
                items.len() == 1
                    && items
                        .iter()
                        .all(|p| pod_ready(p) && p["metadata"]["deletionTimestamp"].is_null())
            },
        );
        pods["items"][0].clone()
    }
}

pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

pub fn wait_cluster_active(user: &User, name: &str, after_session: Option<&str>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = user.json(&["clusters", "get", name]);
        let fresh = after_session.is_none_or(|t| c["lastHeartbeatAt"].as_str().is_some_and(|h| h > t));
        if c["state"] == "ACTIVE" && fresh {
            return c;
        }
        assert!(Instant::now() < deadline, "cluster {name} never became ACTIVE: {c:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What a Pod of the agent must look like on a node: the built image by digest, non-root,
/// read-only root filesystem, probes answered.
pub fn assert_agent_pod(pod: &Value, image: &str) {
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["image"], image, "{pod:#}");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["ready"], true, "{pod:#}");
    let digest = image.rsplit_once('@').map(|(_, d)| d).unwrap();
    assert!(
        status["imageID"].as_str().unwrap().ends_with(digest),
        "the node runs the image by its digest: {status:#}"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(container["readinessProbe"]["httpGet"].is_object());
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true, "{pod:#}");
}

pub fn install_line(register_output: &str) -> String {
    register_output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("kubectl apply -f "))
        .unwrap_or_else(|| panic!("no kubectl line in: {register_output}"))
        .trim_start_matches("kubectl apply -f ")
        .to_owned()
}

pub fn running_pods(k: &Kubectl, namespace: &str, label: &str, count: usize) -> Value {
    k.wait_for(&["pods", "-n", namespace, "-l", label], 180, |v| {
        let items = v["items"].as_array().cloned().unwrap_or_default();
        items.len() == count && items.iter().all(pod_ready)
    })
}

/// Now, as the API writes timestamps (RFC 3339, UTC), for comparing heartbeats.
pub fn chrono_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Registers `cluster` and applies its one-time install link with kubectl; returns the
/// agent's Pod once Ready and the cluster ACTIVE.
pub fn install_with_link(user: &User, k: &Kubectl, cluster: &str) -> Value {
    wait_agent_namespace_gone(k);
    let link = install_line(&user.ok(&["clusters", "register", cluster]));
    k.ok(&["apply", "-f", &link]);
    let pod = k.ready_agent_pod();
    wait_cluster_active(user, cluster, None);
    pod
}

/// How the agents reach the test bucket: moto over plain HTTP, or over TLS with a
/// certificate of the test environment's private CA, trusted through the destination's
/// `caBundle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketEndpoint {
    Http,
    TlsWithCaBundle,
}

/// A user S3 bucket on moto as destination `name`, reached from Pods on the host IP, its
/// keys in a Secret `bucket-keys` in the agent namespace of each cluster (`credentialsRef`).
pub fn bucket_destination(
    user: &User,
    clusters: &[&Kubectl],
    aws: &arca_testenv::AwsEnv,
    host_ip: &str,
    name: &str,
    endpoint: BucketEndpoint,
) -> String {
    let bucket = arca_testenv::unique(name).to_lowercase();
    let created = Command::new("curl")
        .args(["-sf", "-X", "PUT", &format!("{}/{bucket}", aws.endpoint_url)])
        .status()
        .unwrap();
    assert!(created.success(), "creating bucket {bucket} on moto");
    for k in clusters {
        k.create_bucket_keys();
    }
    let moto_port = aws.endpoint_url.rsplit(':').next().unwrap().trim_end_matches('/');
    let url = match endpoint {
        BucketEndpoint::Http => format!("http://{host_ip}:{moto_port}"),
        BucketEndpoint::TlsWithCaBundle => format!("https://{host_ip}:{}", aws.tls.port),
    };
    let ca = aws.tls.ca.to_str().unwrap();
    let mut args = vec![
        "destinations",
        "create",
        name,
        "--s3-bucket",
        &bucket,
        "--s3-region",
        "us-east-1",
        "--s3-endpoint",
        &url,
        "--credentials-ref",
        "bucket-keys",
    ];
    if endpoint == BucketEndpoint::TlsWithCaBundle {
        args.extend(["--s3-ca-bundle", ca]);
    }
    user.ok(&args);
    bucket
}

/// Every version of the Pods matching a label selector that the API server showed a
/// `kubectl get -w` (so short-lived Pods are seen even once deleted).
pub struct PodWatch {
    child: Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl PodWatch {
    pub fn start(k: &Kubectl, selector: &str) -> PodWatch {
        let mut child = k
            .nodes
            .kubectl(k.kubeconfig)
            .args(["get", "pods", "-A", "-l", selector, "-w", "-o", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for v in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
                let Ok(v) = v else { break };
                sink.lock().unwrap().push(v);
            }
        });
        PodWatch { child, seen }
    }

    /// The versions seen so far.
    pub fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (up to `secs`) for a version satisfying `done`.
    pub fn wait_for(&self, secs: u64, done: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = self.seen().into_iter().find(|v| done(v)) {
                return Some(v);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The file holding the bytes of the CSI volume bound to `namespace/claim` (the test
/// driver keeps each volume as `<volumes>/<pv>.img`).
pub fn volume_file(k: &Kubectl, volumes: &Path, namespace: &str, claim: &str) -> std::path::PathBuf {
    let pvc = k.wait_for(&["pvc", claim, "-n", namespace], 60, |v| {
        v["status"]["phase"] == "Bound"
    });
    let pv = pvc["spec"]["volumeName"].as_str().unwrap();
    volumes.join(format!("{pv}.img"))
}

/// Panics naming the first differing byte (not megabytes of both).
pub fn same_bytes(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {at}");
    }
}

/// What moto was asked while recording (its `/moto-api/recorder/`): the requests as they
/// arrived, bodies included, to check what a server sent to AWS rather than what it says
/// it sent. Recording is moto-wide: other clients' requests are in it too.
pub struct MotoRecording {
    endpoint: String,
}

impl MotoRecording {
    pub fn start(aws: &arca_testenv::AwsEnv) -> MotoRecording {
        let endpoint = aws.endpoint_url.trim_end_matches('/').to_owned();
        for action in ["reset-recording", "start-recording"] {
            let out = Command::new("curl")
                .args(["-sf", "-X", "POST", &format!("{endpoint}/moto-api/recorder/{action}")])
                .output()
                .unwrap();
            assert!(out.status.success(), "moto recorder {action}");
        }
        MotoRecording { endpoint }
    }

    /// The form parameters of every recorded request whose `Action` is `action` (the query
    /// protocol of STS, IAM, ...).
    pub fn actions(&self, action: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        self.requests()
            .into_iter()
            .filter_map(|(_, form)| (form.get("Action").map(String::as_str) == Some(action)).then_some(form))
            .collect()
    }

    /// Every recorded request in the order moto received it: its URL and its form
    /// parameters (empty when its body is no form).
    pub fn requests(&self) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
        use base64::Engine as _;
        let out = Command::new("curl")
            .args([
                "-sf",
                &format!("{}/moto-api/recorder/download-recording", self.endpoint),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "downloading moto's recording");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| {
                let entry: Value = serde_json::from_str(line).ok()?;
                let url = entry["url"].as_str().unwrap_or_default().to_owned();
                let body = entry["body"].as_str().unwrap_or_default();
                let body = if entry["body_encoded"] == true {
                    base64::engine::general_purpose::STANDARD.decode(body).ok()?
                } else {
                    body.as_bytes().to_vec()
                };
                Some((url, form_urlencoded::parse(&body).into_owned().collect()))
            })
            .collect()
    }
}

impl Drop for MotoRecording {
    fn drop(&mut self) {
        let _ = Command::new("curl")
            .args([
                "-sf",
                "-X",
                "POST",
                &format!("{}/moto-api/recorder/stop-recording", self.endpoint),
            ])
            .status();
    }
}

/// Waits until no agent namespace is left in the cluster: an earlier test's may still be
/// finalizing, and applying a manifest into a terminating namespace fails.
pub fn wait_agent_namespace_gone(k: &Kubectl) {
    k.wait_for(&["namespaces"], 180, |v| {
        !v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["metadata"]["name"] == AGENT_NAMESPACE)
    });
}

/// Removes what a test made in both clusters, whatever happened: its application namespace
/// (claims and snapshots, and with them the volumes and storage snapshots) and the agents.
pub struct Cleanup<'a> {
    pub clusters: [Kubectl<'a>; 2],
    pub namespace: String,
}

/// What an in-cluster test starts from: kubectl for clusters a and b, a work directory, a
/// unique application namespace, and the [`Cleanup`] of both clusters.
pub struct Scene<'a> {
    pub a: Kubectl<'a>,
    pub b: Kubectl<'a>,
    pub namespace: String,
    /// (Dropped before `work`, as fields drop in order.)
    pub cleanup: Cleanup<'a>,
    pub work: tempfile::TempDir,
}

impl<'a> Scene<'a> {
    /// The scene of a test on `nodes`, its namespace named after `prefix`.
    pub fn new(nodes: &'a arca_testenv::Nodes, prefix: &str) -> Scene<'a> {
        let [a, b] = Kubectl::a_and_b(nodes);
        let namespace = arca_testenv::unique(prefix);
        Scene {
            a,
            b,
            work: tempfile::tempdir().unwrap(),
            cleanup: Cleanup {
                clusters: [a, b],
                namespace: namespace.clone(),
            },
            namespace,
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for k in &self.clusters {
            // A failing test shows what the agents said before their namespace goes.
            if std::thread::panicking() {
                let logs = k.run(&["logs", "-n", AGENT_NAMESPACE, "deploy/arca-agent", "--tail=60"]);
                if logs.status.success() {
                    eprintln!(
                        "---- agent log ({}) ----\n{}",
                        k.kubeconfig.display(),
                        String::from_utf8_lossy(&logs.stdout)
                    );
                }
            }
            let _ = k.run(&["delete", "namespace", &self.namespace, "--wait=false"]);
            let _ = k.run(&["delete", "namespace", AGENT_NAMESPACE, "--wait=false"]);
            let _ = k.run(&[
                "delete",
                "clusterrole,clusterrolebinding",
                "-l",
                "app.kubernetes.io/part-of=arca",
            ]);
        }
    }
}
