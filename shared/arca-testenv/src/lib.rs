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
