//! Kubernetes backup definitions: what of a cluster, how its volumes are handled, which
//! policy and destination; run now, pause and resume.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::clusters::CLUSTER;
use super::destinations::DESTINATION;
use super::jobs::{run_body, run_definition};
use super::policies::POLICY;
use super::{
    Kind, connect, delete_entity, done, entity_action, json_array_file, list_entities, pairs, reference, resolve, set,
    show_entity, update_entity,
};
use crate::CliError;
use crate::args::{BackupCreate, BackupUpdate, BackupsCmd, Global, VerificationArgs, VerifyArg};
use crate::client::Client;
use crate::output::{Column, at, text};

pub(super) const BACKUP: Kind = Kind {
    path: "/v1/backups",
    prefix: "bkp_",
    noun: "backup",
    named: true,
    columns: BACKUP_COLUMNS,
    body: &[
        "name",
        "description",
        "clusterId",
        "selection",
        "pvMode",
        "deleteSnapshotAfterCopy",
        "policyId",
        "destinationId",
        "paused",
        "tags",
        "hooks",
        "verification",
    ],
};

const BACKUP_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("NAME", "/name"),
    Column::at("CLUSTER", "/clusterId"),
    Column::with("SELECTION", |v| {
        let ns = v.pointer("/selection/namespaces").and_then(Value::as_array);
        match ns {
            Some(list) if !list.is_empty() => list.iter().map(text).collect::<Vec<_>>().join(","),
            _ => "whole cluster".to_owned(),
        }
    }),
    Column::at("PV MODE", "/pvMode"),
    Column::at("POLICY", "/policyId"),
    Column::at("DESTINATION", "/effectiveDestination/destinationId"),
    Column::at("PAUSED", "/paused"),
    Column::at("VERIFY", "/verification/when"),
];

pub(super) async fn backups(g: &Global, cmd: BackupsCmd) -> Result<(), CliError> {
    if let BackupsCmd::Create(c) = &cmd {
        pairs("--labels", &c.labels)?;
    }
    if let BackupsCmd::Update(u) = &cmd
        && let Some(labels) = &u.labels
    {
        label_pairs(labels)?;
    }
    let client = connect(g)?;
    match cmd {
        BackupsCmd::List => list_entities(g, &client, BACKUP).await?,
        BackupsCmd::Get { backup } => show_entity(g, &client, BACKUP, &backup).await?,
        BackupsCmd::Create(c) => create_backup(g, &client, c).await?,
        BackupsCmd::Update(u) => update_backup(g, &client, u).await?,
        BackupsCmd::Run { backup, run } => {
            run_definition(g, &client, BACKUP, &backup, run_body(&run), run.wait).await?
        }
        BackupsCmd::Pause { backup } => entity_action(g, &client, BACKUP, &backup, "pause", "paused").await?,
        BackupsCmd::Resume { backup } => entity_action(g, &client, BACKUP, &backup, "resume", "resumed").await?,
        BackupsCmd::Delete { backup } => delete_entity(&client, BACKUP, &backup, "").await?,
    }
    Ok(())
}

async fn create_backup(g: &Global, client: &Client, c: BackupCreate) -> Result<(), CliError> {
    let cluster_id = resolve(client, CLUSTER, &c.cluster).await?;
    let mut body = json!({
        "name": c.name,
        "description": c.description,
        "clusterId": cluster_id,
        "selection": {
            "fullCluster": c.namespaces.is_empty(),
            "namespaces": c.namespaces,
            "labels": pairs("--labels", &c.labels)?,
        },
        "pvMode": c.pv_mode.api(),
        "paused": c.paused,
    });
    if let Some(p) = &c.policy {
        body["policyId"] = json!(resolve(client, POLICY, p).await?);
    }
    if let Some(d) = &c.destination {
        body["destinationId"] = json!(resolve(client, DESTINATION, d).await?);
    }
    if let Some(file) = &c.hooks {
        body["hooks"] = json_array_file("--hooks", file)?;
    }
    if let Some(v) = verification(client, &c.verification).await? {
        body["verification"] = v;
    }
    let view = client.post(BACKUP.path, &body).await?.body;
    done(
        g.output,
        &view,
        format!("backup {} created ({})", c.name, at(&view, "/id")),
    )
}

/// The `verification` member the flags describe (`None` without `--verify`).
async fn verification(client: &Client, a: &VerificationArgs) -> Result<Option<Value>, CliError> {
    let Some(when) = a.verify else {
        return Ok(None);
    };
    let mut v = json!({ "when": match when {
        VerifyArg::AfterBackup => "afterBackup",
        VerifyArg::Weekly => "weekly",
    } });
    if let Some(cluster) = &a.verify_cluster {
        v["targetClusterId"] = json!(resolve(client, CLUSTER, cluster).await?);
    }
    if let Some(image) = &a.probe_image {
        let mut probe = json!({ "image": image, "command": a.probe_arg });
        if let Some(t) = a.probe_timeout {
            probe["timeoutSeconds"] = json!(t);
        }
        v["probe"] = probe;
    }
    Ok(Some(v))
}

/// `--labels` of an update: an empty value (`--labels ""`) clears them.
fn label_pairs(items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let items: Vec<String> = items.iter().filter(|i| !i.is_empty()).cloned().collect();
    pairs("--labels", &items)
}

async fn update_backup(g: &Global, client: &Client, u: BackupUpdate) -> Result<(), CliError> {
    let policy = reference(client, POLICY, u.policy.as_deref(), u.no_policy).await?;
    let destination = reference(client, DESTINATION, u.destination.as_deref(), u.no_destination).await?;
    let labels = u.labels.as_deref().map(label_pairs).transpose()?.map(|l| json!(l));
    let hooks = match (&u.hooks, u.no_hooks) {
        (Some(file), _) => Some(json_array_file("--hooks", file)?),
        (None, true) => Some(json!([])),
        (None, false) => None,
    };
    let verification = match verification(client, &u.verification).await? {
        Some(v) => Some(v),
        None if u.no_verify => Some(Value::Null),
        None => None,
    };
    update_entity(g, client, BACKUP, &u.backup, |b| {
        set(b, "hooks", hooks);
        set(b, "verification", verification);
        set(b, "name", u.name.map(Value::from));
        set(b, "description", u.description.map(Value::from));
        set(b, "pvMode", u.pv_mode.map(|m| json!(m.api())));
        set(b, "policyId", policy);
        set(b, "destinationId", destination);
        let selection = b.entry("selection").or_insert_with(|| json!({}));
        if let Some(sel) = selection.as_object_mut() {
            if let Some(ns) = u.namespaces {
                sel.insert("fullCluster".into(), json!(false));
                sel.insert("namespaces".into(), json!(ns));
            } else if u.full_cluster {
                sel.insert("fullCluster".into(), json!(true));
                sel.insert("namespaces".into(), json!([]));
            }
            set(sel, "labels", labels);
        }
        Ok(())
    })
    .await?;
    Ok(())
}
