//! EKS re-creation followed by the agent's installation and the restore, end to end:
//! `arca server` whose AWS is moto (the nodes' environment's) backs up a namespace of
//! cluster a (linked to an EKS cluster seeded on moto), re-creates that EKS cluster with
//! `arca eks recreate --install-agent`, and the CLI installs the agent from the cluster's
//! own manifest (server-side apply) into the "new" cluster, whose queued restore then runs
//! to its end there.
//!
//! moto's EKS makes no Kubernetes API: its endpoint and CA are only checked to reach the
//! kubeconfig the CLI writes (exec plugin `aws eks get-token`). The real API server the
//! agent goes into is cluster b's, given with `--kubeconfig`: everything after the
//! kubeconfig (reaching the API, applying the manifest, the agent Pod from this project's
//! image connecting, the restore job) is real. The server steps re-creations once a
//! minute (EKS_RECHECK_DELAY), so the test waits about that long.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::node::{
    AGENT_NAMESPACE, BucketEndpoint, Scene, assert_agent_pod, bucket_destination, chrono_now, install_with_link,
    link_moto_account, start_server_on_moto, wait_agent_namespace_gone, wait_cluster_active,
};
use common::{User, config_in_env, fresh_account, stderr};
use serde_json::{Value, json};

/// The CLI killed after `limit` (a wait that never ends fails the test instead of hanging
/// it), with no EC2 instance metadata to find.
fn run_within(user: &User, args: &[&str], limit: Duration) -> Output {
    user.run_within(args, &[("AWS_EC2_METADATA_DISABLED", "true")], limit)
}

/// One line on stderr, `arca: error: ...`, exit 1.
fn one_line_failure(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.trim_end().lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("arca: error: "), "{err}");
    last
}

/// EKS acting inside `account` on the nodes' moto.
async fn eks_in(aws: &arca_testenv::AwsEnv, account: &str) -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::new(&config_in_env(aws, account, "us-east-1").await)
}

async fn seed_eks(eks: &aws_sdk_eks::Client, account: &str, name: &str) {
    eks.create_cluster()
        .name(name)
        .version("1.33")
        .role_arn(format!("arn:aws:iam::{account}:role/eks"))
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    eks.create_nodegroup()
        .cluster_name(name)
        .nodegroup_name("workers")
        .node_role(format!("arn:aws:iam::{account}:role/node"))
        .subnets("subnet-1")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(1)
                .max_size(2)
                .desired_size(1)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[test]
fn eks_recreation_installs_the_agent_from_the_manifest_and_the_restore_runs() {
    let Some(nodes) = arca_testenv::nodes() else { return };
    let scene = Scene::new(&nodes, "eks");
    let (a, b, work, namespace) = (scene.a, scene.b, &scene.work, scene.namespace.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();

    // ---- an AWS account on moto with an EKS cluster; the server reaches it as the machine's AWS
    let aws = &nodes.aws;
    let account = fresh_account();
    let eks_name = format!("eks-{account}");
    let eks = rt.block_on(eks_in(aws, &account));
    rt.block_on(seed_eks(&eks, &account, &eks_name));
    let (_server, url) = start_server_on_moto(work.path(), &nodes, &[]);
    let user = User::new(&url, work.path(), "admin");
    user.ok(&["signup", "--org-name", &arca_testenv::unique("eks")]);
    link_moto_account(&user, &account);
    user.ok(&["cloud-accounts", "inventory", "moto"]);

    // ---- cluster a is that EKS cluster: its agent as a Pod, its link, a namespace backed up
    let source = arca_testenv::unique("src");
    assert_agent_pod(&install_with_link(&user, &a, &source), &nodes.agent_image);
    user.ok(&[
        "clusters",
        "update",
        &source,
        "--aws-account",
        "moto",
        "--aws-region",
        "us-east-1",
        "--eks-cluster",
        &eks_name,
    ]);
    bucket_destination(&user, &[&a], aws, &nodes.host_ip, "eksbucket", BucketEndpoint::Http);
    a.ok(&["create", "namespace", &namespace]);
    a.apply_json(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": {"from": "the backed-up EKS cluster"}}));
    user.ok(&[
        "backups",
        "create",
        "eksweb",
        "--cluster",
        &source,
        "--namespaces",
        &namespace,
        "--destination",
        "eksbucket",
        "--pv-mode",
        "none",
    ]);
    let job = user.json(&["backups", "run", "eksweb", "--wait"]);
    assert_eq!(job["state"], "COMPLETED", "{job:#}");
    let point = user.json(&["recovery-points", "list", "--backup", "eksweb"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let saved = user.json(&["recovery-points", "aws", &point]);
    assert_eq!(saved["eks"]["name"], eks_name.as_str(), "{saved:#}");

    // ---- the "new" cluster is b: nothing of Arca in it but the destination's keys, which
    // the restore reads beside the agent (credentialsRef)
    wait_agent_namespace_gone(&b);
    b.ok(&["create", "namespace", AGENT_NAMESPACE]);
    b.create_bucket_keys();

    // A second re-creation whose EKS cluster is deleted behind its back: not yet checked,
    // install-agent times out; once checked, it fails. Each: exit 1, one line.
    let doomed_name = format!("eks-{account}-gone");
    let doomed = user.json(&["eks", "recreate", &point, "--name", &doomed_name]);
    let doomed = doomed["id"].as_str().unwrap().to_owned();
    rt.block_on(eks.delete_cluster().name(&doomed_name).send()).unwrap();
    let out = run_within(
        &user,
        &["eks", "install-agent", &doomed, "--timeout", "1", "--interval", "0.2"],
        Duration::from_secs(30),
    );
    let line = one_line_failure(&out);
    assert!(
        line.contains("timeout") && line.contains("CREATING_CLUSTER") && line.contains(&doomed),
        "{line}"
    );
    // Usage: --interval alone means nothing to a plain re-create.
    let out = user.run(&["eks", "recreate", &point, "--name", "x", "--interval", "3"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // ---- re-create, install the agent, run the restore: one command
    let new_name = format!("eks-{account}-2");
    let started = Instant::now();
    let out = run_within(
        &user,
        &[
            "eks",
            "recreate",
            &point,
            "--name",
            &new_name,
            "--install-agent",
            "--kubeconfig",
            nodes.kubeconfig_b.to_str().unwrap(),
            "--interval",
            "2",
            "--wait",
            "-o",
            "json",
        ],
        Duration::from_secs(400),
    );
    let progress = stderr(&out);
    assert!(out.status.success(), "{progress}");
    eprintln!("recreate --install-agent took {:?}:\n{progress}", started.elapsed());
    let restore_job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(restore_job["state"], "COMPLETED", "{restore_job:#}\n{progress}");
    assert_eq!(restore_job["type"], "K8S_RESTORE", "{restore_job:#}");
    assert!(
        progress.contains("WAITING_FOR_AGENT")
            && progress.contains("Namespace arca-system")
            && progress.contains("Deployment arca-agent"),
        "progress on stderr: {progress}"
    );

    // What the re-creation says, and what EKS (moto) said: the endpoint and CA it keeps.
    let recreations = user.json(&["eks", "list"]);
    let r = recreations
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == new_name.as_str())
        .unwrap()
        .clone();
    assert_eq!(r["state"], "WAITING_FOR_AGENT", "{r:#}");
    let described = rt.block_on(eks.describe_cluster().name(&new_name).send()).unwrap();
    let described = described.cluster().unwrap();
    assert_eq!(r["access"]["endpoint"].as_str(), described.endpoint(), "{r:#}");
    assert_eq!(
        r["access"]["certificateAuthorityData"].as_str(),
        described.certificate_authority().and_then(|c| c.data())
    );
    let cluster_id = r["clusterId"].as_str().unwrap().to_owned();
    let restore_id = r["restoreId"].as_str().unwrap();
    let restore = user.json(&["restores", "get", restore_id]);
    assert_eq!(restore["jobId"], restore_job["id"], "{restore:#}");
    assert_eq!(restore["targetClusterId"], cluster_id.as_str(), "{restore:#}");
    let cluster = user.json(&["clusters", "get", &cluster_id]);
    assert_eq!(cluster["state"], "ACTIVE", "{cluster:#}");
    assert_eq!(cluster["aws"]["eksClusterName"], new_name.as_str(), "{cluster:#}");

    // The agent in b: the project's image, applied by the CLI (its field manager).
    let pod = b.ready_agent_pod();
    assert_agent_pod(&pod, &nodes.agent_image);
    let deployment = b.json(&[
        "get",
        "deployment",
        "arca-agent",
        "-n",
        AGENT_NAMESPACE,
        "--show-managed-fields",
    ]);
    assert!(
        deployment["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["manager"] == "arca-cli" && f["operation"] == "Apply"),
        "{:#}",
        deployment["metadata"]["managedFields"]
    );
    // ... and the restore put the backed-up namespace there.
    let settings = b.json(&["get", "configmap", "settings", "-n", &namespace]);
    assert_eq!(settings["data"], json!({"from": "the backed-up EKS cluster"}));

    // ---- the kubeconfig the CLI builds from EKS's answer: written, named, no token. It
    // reaches nothing here (moto's endpoint is no cluster), so the command stops there,
    // before the manifest is fetched: the running agent keeps its token.
    let built = work.path().join("new.kubeconfig");
    let out = run_within(
        &user,
        &[
            "eks",
            "install-agent",
            r["id"].as_str().unwrap(),
            "--kubeconfig-out",
            built.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let line = one_line_failure(&out);
    assert!(
        line.contains("cannot be reached") && line.contains("new.kubeconfig"),
        "{line}"
    );
    assert!(
        stderr(&out).contains(&format!("written to {}", built.display())),
        "{}",
        stderr(&out)
    );
    let written: Value = serde_norway::from_str(&std::fs::read_to_string(&built).unwrap()).unwrap();
    assert_eq!(
        written["clusters"][0]["cluster"]["server"].as_str(),
        described.endpoint()
    );
    let exec = &written["users"][0]["user"]["exec"];
    assert_eq!(exec["command"], "aws");
    assert_eq!(
        exec["args"],
        json!([
            "--region",
            "us-east-1",
            "eks",
            "get-token",
            "--cluster-name",
            new_name,
            "--output",
            "json"
        ])
    );
    assert_eq!(common::mode(&built), 0o600);
    // A heartbeat after that attempt: the agent's token still works.
    wait_cluster_active(&user, &cluster_id, Some(&chrono_now()));

    // ---- the doomed re-creation was checked meanwhile (a minute after it started): FAILED
    let deadline = Instant::now() + Duration::from_secs(90);
    let line = loop {
        let out = run_within(
            &user,
            &["eks", "install-agent", &doomed, "--timeout", "5", "--interval", "1"],
            Duration::from_secs(30),
        );
        let line = one_line_failure(&out);
        if !line.contains("timeout") || Instant::now() > deadline {
            break line;
        }
    };
    assert!(
        line.contains("eks_recreation_failed") && line.contains("no longer exists"),
        "{line}"
    );
}
