//! `arca eks install-agent` (and `arca eks recreate --install-agent`): once EKS has made
//! the re-created cluster, the agent goes into it from the product's own manifest, and
//! the restore the control plane queued there runs when the agent connects.
//!
//! The kubeconfig is built from what the API kept of EKS's DescribeCluster (endpoint and
//! certificate authority) with the standard exec credential plugin, `aws eks get-token`:
//! kube-rs runs it at each use, so no token is ever written or printed. `--kubeconfig`
//! takes the user's own instead. The manifest is the cluster's (`GET
//! /v1/clusters/{id}/agent.yaml`, as `arca clusters install --output-file` fetches it),
//! applied object by object with server-side apply, as `kubectl apply --server-side` would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{done, poll_until};
use crate::CliError;
use crate::args::{Global, InstallAgentArgs};
use crate::client::Client;
use crate::config;
use crate::output::{Format, at};

/// The field manager of what the CLI applies (`kubectl get -o yaml --show-managed-fields`).
const FIELD_MANAGER: &str = "arca-cli";
/// How often the cluster is read while waiting for the agent to connect.
const AGENT_EVERY: Duration = Duration::from_secs(2);

/// A kubeconfig of an EKS cluster: its endpoint and CA, credentials from
/// `aws eks get-token` at each use (the exec plugin `aws eks update-kubeconfig` writes).
pub fn kubeconfig(name: &str, region: &str, endpoint: &str, certificate_authority_data: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": { "server": endpoint, "certificate-authority-data": certificate_authority_data },
        }],
        "users": [{
            "name": name,
            "user": { "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["--region", region, "eks", "get-token", "--cluster-name", name, "--output", "json"],
                "interactiveMode": "Never",
            } },
        }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": name } }],
        "current-context": name,
    })
}

/// The objects of a manifest stream (YAML documents; comments and empty ones skipped).
pub fn manifest_objects(yaml: &str) -> Result<Vec<Value>, CliError> {
    let mut objects = Vec::new();
    for document in serde_norway::Deserializer::from_str(yaml) {
        let value = Value::deserialize(document)
            .map_err(|e| CliError::other(format!("the agent manifest is not YAML: {e}")))?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// Where the built kubeconfig goes by default: beside the config file.
fn default_kubeconfig_path(g: &Global, name: &str) -> Result<PathBuf, CliError> {
    let config = config::path(g.config.as_deref())?;
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(dir.join(format!("eks-{name}.kubeconfig")))
}

fn seconds(flag: &str, s: f64) -> Result<Duration, CliError> {
    super::interval(flag, s)
}

/// Waits for the re-creation to leave CREATING_CLUSTER, installs the agent into the new
/// cluster, waits for it to connect; with `wait`, follows the restore job to its end.
pub(super) async fn install_agent(
    g: &Global,
    client: &Client,
    recreation_path: &str,
    every: Duration,
    wait: bool,
    opts: &InstallAgentArgs,
) -> Result<(), CliError> {
    let timeout = seconds("--timeout", opts.timeout)?;
    let agent_timeout = seconds("--agent-timeout", opts.agent_timeout)?;
    let id = recreation_path.rsplit('/').next().unwrap_or_default().to_owned();
    let label = format!("EKS re-creation {id}");
    let r = tokio::time::timeout(
        timeout,
        poll_until(
            client,
            recreation_path,
            &label,
            every,
            |r| at(r, "/state") != "CREATING_CLUSTER",
            |r| at(r, "/state"),
        ),
    )
    .await
    .map_err(|_| {
        CliError::api(
            "timeout",
            format!(
                "{label} was still CREATING_CLUSTER after {} s; run `arca eks install-agent {id}` again later",
                timeout.as_secs()
            ),
        )
    })??;
    if at(&r, "/state") == "FAILED" {
        return Err(CliError::api(
            "eks_recreation_failed",
            format!("{label} failed: {}", at(&r, "/error")),
        ));
    }
    let (name, region, cluster_id, restore_id) = (
        at(&r, "/name"),
        at(&r, "/region"),
        at(&r, "/clusterId"),
        at(&r, "/restoreId"),
    );
    if cluster_id.is_empty() {
        return Err(CliError::other(format!(
            "{label} is {} with no Arca cluster registered",
            at(&r, "/state")
        )));
    }

    // ---- the kubeconfig: the user's, or one built from EKS's endpoint and CA
    let kubeconfig_path = match &opts.kubeconfig {
        Some(path) => path.clone(),
        None => {
            let (endpoint, ca) = (at(&r, "/access/endpoint"), at(&r, "/access/certificateAuthorityData"));
            if endpoint.is_empty() || ca.is_empty() {
                return Err(CliError::api(
                    "no_endpoint",
                    format!("{label} has no endpoint of the new cluster recorded: give --kubeconfig"),
                ));
            }
            let path = match &opts.kubeconfig_out {
                Some(p) => p.clone(),
                None => default_kubeconfig_path(g, &name)?,
            };
            let doc = serde_norway::to_string(&kubeconfig(&name, &region, &endpoint, &ca))
                .map_err(|e| CliError::other(format!("kubeconfig: {e}")))?;
            config::write_private(&path, doc.as_bytes())?;
            eprintln!(
                "kubeconfig of EKS cluster {name} written to {} (credentials from `aws eks get-token` at each use)",
                path.display()
            );
            path
        }
    };
    let kube = kube_client(&kubeconfig_path).await?;
    // Reached before the manifest is fetched: fetching it rotates the cluster's agent
    // token, which a kubeconfig that cannot reach the cluster must not cost an agent.
    let server = kube.apiserver_version().await.map_err(|e| {
        CliError::other(format!(
            "the new cluster's API cannot be reached with kubeconfig {}: {e}",
            kubeconfig_path.display()
        ))
    })?;
    eprintln!(
        "EKS cluster {name}: Kubernetes {}.{} reached",
        server.major, server.minor
    );

    // ---- the cluster's manifest (a fresh agent token), applied object by object
    let yaml = client
        .get_text(&format!("/v1/clusters/{cluster_id}/agent.yaml"))
        .await?;
    let objects = manifest_objects(&yaml)?;
    let applied = apply(&kube, &objects).await?;
    eprintln!("agent manifest of cluster {cluster_id} applied to EKS cluster {name}: {applied}");

    // ---- the agent connects: the cluster turns ACTIVE and the restore is leased
    let cluster_path = format!("/v1/clusters/{cluster_id}");
    tokio::time::timeout(
        agent_timeout,
        poll_until(
            client,
            &cluster_path,
            &format!("cluster {cluster_id}"),
            AGENT_EVERY,
            |c| at(c, "/state") == "ACTIVE",
            |c| at(c, "/state"),
        ),
    )
    .await
    .map_err(|_| {
        CliError::api(
            "timeout",
            format!(
                "the agent in EKS cluster {name} did not connect within {} s: look at its Pod (`kubectl -n arca-system get pods`)",
                agent_timeout.as_secs()
            ),
        )
    })??;
    let restore = client.get(&format!("/v1/restores/{restore_id}")).await?.body;
    let job_id = at(&restore, "/jobId");
    if wait && !job_id.is_empty() {
        if g.output == Format::Table {
            super::emit(&format!(
                "agent connected in EKS cluster {name} (cluster {cluster_id}, ACTIVE); restore {restore_id} runs: job {job_id}"
            ));
        }
        return super::jobs::watch(g, client, &job_id, AGENT_EVERY).await;
    }
    let r = client.get(recreation_path).await?.body;
    done(
        g.output,
        &r,
        format!(
            "agent connected in EKS cluster {name} (cluster {cluster_id}, ACTIVE); restore {restore_id} runs now: \
             follow it with `arca jobs watch {job_id}`"
        ),
    )
}

/// A Kubernetes client from a kubeconfig file (its current context).
async fn kube_client(path: &Path) -> Result<kube::Client, CliError> {
    let fail = |e: &dyn std::fmt::Display| CliError::other(format!("kubeconfig {}: {e}", path.display()));
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| fail(&e))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| fail(&e))?;
    kube::Client::try_from(config).map_err(|e| fail(&e))
}

/// Server-side apply of each object, in the manifest's order (the namespace first); the
/// kinds' resources from discovery. Answers what was applied, e.g. "Namespace arca-system, …".
async fn apply(kube: &kube::Client, objects: &[Value]) -> Result<String, CliError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    for object in objects {
        let (kind, name) = (at(object, "/kind"), at(object, "/metadata/name"));
        let fail = |e: &dyn std::fmt::Display| CliError::other(format!("applying {kind} {name}: {e}"));
        let api_version = at(object, "/apiVersion");
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let (resource, caps) = kube::discovery::pinned_kind(kube, &gvk).await.map_err(|e| fail(&e))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let namespace = at(object, "/metadata/namespace");
                if namespace.is_empty() {
                    return Err(fail(&"a namespaced object without a namespace"));
                }
                Api::namespaced_with(kube.clone(), &namespace, &resource)
            }
            Scope::Cluster => Api::all_with(kube.clone(), &resource),
        };
        api.patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| fail(&e))?;
        applied.push(format!("{kind} {name}"));
    }
    Ok(applied.join(", "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_kubeconfig_reaches_the_endpoint_with_the_ca_and_aws_eks_get_token() {
        let doc = kubeconfig(
            "prod-2",
            "eu-west-1",
            "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
            "Q0E=",
        );
        let yaml = serde_norway::to_string(&doc).unwrap();
        // What kube-rs (and kubectl) read back from it.
        let parsed = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some("prod-2"));
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(
            cluster.server.as_deref(),
            Some("https://ABC.gr7.eu-west-1.eks.amazonaws.com")
        );
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        let auth = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        let exec = auth.exec.as_ref().unwrap();
        assert_eq!(
            exec.api_version.as_deref(),
            Some("client.authentication.k8s.io/v1beta1")
        );
        assert_eq!(exec.command.as_deref(), Some("aws"));
        assert_eq!(
            exec.args.clone().unwrap(),
            [
                "--region",
                "eu-west-1",
                "eks",
                "get-token",
                "--cluster-name",
                "prod-2",
                "--output",
                "json"
            ]
        );
        // No credential of any kind is in the file.
        assert!(auth.token.is_none() && auth.client_key_data.is_none() && auth.password.is_none());
        let context = parsed.contexts[0].context.as_ref().unwrap();
        assert_eq!(
            (context.cluster.as_str(), context.user.as_deref()),
            ("prod-2", Some("prod-2"))
        );
    }

    #[test]
    fn manifest_streams_are_split_into_objects() {
        let yaml = "# a comment\n---\n{\"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n---\n\
                    kind: ServiceAccount\nmetadata:\n  name: b\n  namespace: a\n---\n";
        let objects = manifest_objects(yaml).unwrap();
        assert_eq!(objects.len(), 2, "{objects:?}");
        assert_eq!(objects[1]["metadata"]["namespace"], "a");
        assert!(manifest_objects("a: [").is_err());
    }
}
