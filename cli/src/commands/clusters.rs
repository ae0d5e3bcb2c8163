//! Kubernetes clusters: registration (the install line, or the agent token in a file),
//! their link to an AWS account (EKS), updates, deletion.

use serde_json::{Value, json};

use super::cloud::CLOUD_ACCOUNT;
use super::destinations::DESTINATION;
use super::{
    Kind, connect, delete_entity, done, edit_object, emit, hint, list_entities, reference, resolve, resolve_opt, set,
    show_entity, update_entity,
};
use crate::CliError;
use crate::args::{ClustersCmd, Global};
use crate::client::Client;
use crate::config;
use crate::output::{Column, at};

pub(super) const CLUSTER: Kind = Kind {
    path: "/v1/clusters",
    prefix: "cl_",
    noun: "cluster",
    named: true,
    columns: CLUSTER_COLUMNS,
    // `aws`: where the cluster lives on AWS (EKS), kept as read unless a flag changes it.
    body: &["name", "description", "tags", "defaultDestinationId", "aws"],
};

const CLUSTER_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("NAME", "/name"),
    Column::at("STATE", "/state"),
    Column::at("KUBERNETES", "/kubernetesVersion"),
    Column::at("AGENT", "/agentVersion"),
    Column::at("LAST HEARTBEAT", "/lastHeartbeatAt"),
];

async fn install_line(client: &Client, id: &str, output_file: Option<&std::path::Path>) -> Result<String, CliError> {
    match output_file {
        Some(file) => {
            let yaml = client.get_text(&format!("/v1/clusters/{id}/agent.yaml")).await?;
            // The manifest holds the agent token: owner-only, like the config.
            config::write_private(file, yaml.as_bytes())?;
            Ok(format!(
                "agent manifest written to {} (it holds the agent token); install it with:\n  kubectl apply -f {}",
                file.display(),
                file.display()
            ))
        }
        None => {
            let link = client
                .post(&format!("/v1/clusters/{id}/install"), &json!({}))
                .await?
                .body;
            Ok(format!(
                "install the agent with (the link works once, until {}):\n  {}",
                at(&link, "/expiresAt"),
                at(&link, "/command")
            ))
        }
    }
}

pub(super) async fn clusters(g: &Global, cmd: ClustersCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        ClustersCmd::List => list_entities(g, &client, CLUSTER).await?,
        ClustersCmd::Get { cluster } => show_entity(g, &client, CLUSTER, &cluster).await?,
        ClustersCmd::Update {
            cluster,
            name,
            description,
            default_destination,
            no_default_destination,
            aws_account,
            aws_region,
            eks_cluster,
            no_eks_cluster,
            no_aws,
        } => {
            let destination = reference(
                &client,
                DESTINATION,
                default_destination.as_deref(),
                no_default_destination,
            )
            .await?;
            let account = resolve_opt(&client, CLOUD_ACCOUNT, aws_account.as_deref()).await?;
            let eks = match eks_cluster {
                Some(n) => Some(json!(n)),
                None if no_eks_cluster => Some(Value::Null),
                None => None,
            };
            let link_edited = account.is_some() || aws_region.is_some() || eks.is_some();
            update_entity(g, &client, CLUSTER, &cluster, |b| {
                set(b, "name", name.map(Value::from));
                set(b, "description", description.map(Value::from));
                set(b, "defaultDestinationId", destination);
                if no_aws {
                    b.insert("aws".into(), Value::Null);
                } else if link_edited {
                    let linked = b.get("aws").is_some_and(Value::is_object);
                    if !linked && (account.is_none() || aws_region.is_none()) {
                        return Err(CliError::usage(format!(
                            "cluster {cluster} is not linked to AWS yet: give --aws-account and --aws-region"
                        )));
                    }
                    edit_object(b, "aws", |link| {
                        set(link, "cloudAccountId", account.map(Value::from));
                        set(link, "region", aws_region.map(Value::from));
                        set(link, "eksClusterName", eks);
                    });
                }
                Ok(())
            })
            .await?;
        }
        ClustersCmd::Register {
            name,
            description,
            output_file,
            agent_token_file,
            aws_account,
            aws_region,
            eks_cluster,
        } => {
            let mut body = json!({ "name": name, "description": description });
            if let Some(account) = resolve_opt(&client, CLOUD_ACCOUNT, aws_account.as_deref()).await? {
                body["aws"] = json!({ "cloudAccountId": account, "region": aws_region, "eksClusterName": eks_cluster });
            }
            let created = client.post(CLUSTER.path, &body).await?.body;
            // The answer holds the agent token: it is removed before anything is shown
            // (the agent gets a fresh one through the install link or manifest, or this
            // one in a private file with --agent-token-file).
            let mut cluster = created;
            let token = match &mut cluster {
                Value::Object(fields) => fields.remove("agentToken"),
                _ => None,
            };
            let id = at(&cluster, "/id");
            let line = match agent_token_file {
                Some(file) => {
                    let token = token
                        .as_ref()
                        .and_then(Value::as_str)
                        .ok_or_else(|| CliError::other("the registration answer holds no agent token"))?;
                    config::write_private(&file, token.as_bytes())?;
                    format!(
                        "its agent token is in {} (mode 0600); run the agent with:\n  \
                         ARCA_AGENT_TOKEN=\"$(cat {})\" arca-agent run --api-url {} --kubeconfig <kubeconfig>",
                        file.display(),
                        file.display(),
                        client.base()
                    )
                }
                None => install_line(&client, &id, output_file.as_deref()).await?,
            };
            done(g.output, &cluster, format!("cluster {name} registered ({id}); {line}"))?;
        }
        ClustersCmd::Install { cluster, output_file } => {
            let id = resolve(&client, CLUSTER, &cluster).await?;
            emit(&install_line(&client, &id, output_file.as_deref()).await?);
        }
        ClustersCmd::RotateKey { cluster } => {
            let id = resolve(&client, CLUSTER, &cluster).await?;
            let path = format!("{}/{id}", CLUSTER.path);
            let current = client.get(&path).await?;
            let etag = current
                .etag
                .ok_or_else(|| CliError::other(format!("the API sent no ETag for {path}")))?;
            let rotated = client
                .call(
                    reqwest::Method::POST,
                    &format!("{path}/rotate-archive-key"),
                    Some(&json!({})),
                    Some(&etag),
                )
                .await
                .map_err(|e| {
                    hint(
                        e,
                        "keys_held_by_agents",
                        "rotate ARCA_ARCHIVE_KEY on the agents instead",
                    )
                })?
                .body;
            let generation = at(&rotated, "/archiveKeyGeneration");
            done(
                g.output,
                &rotated,
                format!(
                    "cluster {cluster}: archive key rotated to generation {generation}; its next backups copy everything \
                     again under the new key, its existing points keep theirs"
                ),
            )?;
        }
        ClustersCmd::Delete { cluster, confirm } => {
            let query = if confirm { "?confirm=true" } else { "" };
            delete_entity(&client, CLUSTER, &cluster, query)
                .await
                .map_err(|e| hint(e, "confirmation_required", "pass --confirm to delete it anyway"))?;
        }
    }
    Ok(())
}
