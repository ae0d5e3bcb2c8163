//! Kubernetes recovery points (and what AWS holds for them) and restores from them.

use serde_json::json;

use super::backups::BACKUP;
use super::clusters::CLUSTER;
use super::jobs::started_job;
use super::{
    Kind, connect, done, emit, entity_path, json_array_file, list_at, list_entities, pairs, resolve, resolve_opt,
    show_entity, with_query,
};
use crate::CliError;
use crate::args::{ExistingArg, Global, RecoveryPointsCmd, RestoreCreate, RestoresCmd};
use crate::client::Client;
use crate::output::{Column, at, render_one};

pub(super) const RECOVERY_POINT: Kind = Kind {
    path: "/v1/recoverypoints",
    prefix: "rp_",
    noun: "recovery point",
    named: false,
    columns: RP_COLUMNS,
    body: &[],
};
const RESTORE: Kind = Kind {
    path: "/v1/restores",
    prefix: "rst_",
    noun: "restore",
    named: false,
    columns: RESTORE_COLUMNS,
    body: &[],
};

const RP_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("TYPE", "/type"),
    Column::at("STATE", "/state"),
    Column::at("CLUSTER", "/clusterId"),
    Column::at("BACKUP", "/definitionId"),
    Column::at("CREATED", "/createdAt"),
    Column::at("EXPIRES", "/expiresAt"),
    Column::at("LOCKED", "/locked"),
    Column::at("IMMUTABLE UNTIL", "/objectLock/retainUntil"),
    Column::at("VERIFIED", "/verification/state"),
];

pub(super) async fn recovery_points(g: &Global, cmd: RecoveryPointsCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        RecoveryPointsCmd::List { cluster, backup } => {
            let path = with_query(
                RECOVERY_POINT.path,
                &[
                    ("clusterId", resolve_opt(&client, CLUSTER, cluster.as_deref()).await?),
                    ("definitionId", resolve_opt(&client, BACKUP, backup.as_deref()).await?),
                ],
            );
            list_at(g, &client, RECOVERY_POINT, &path).await?;
        }
        RecoveryPointsCmd::Get { recovery_point } => show_entity(g, &client, RECOVERY_POINT, &recovery_point).await?,
        RecoveryPointsCmd::Aws { recovery_point } => {
            let path = format!("{}/aws", entity_path(RECOVERY_POINT, &recovery_point));
            let found = client.get(&path).await?.body;
            if found.is_null() && g.output == crate::output::Format::Table {
                emit(&format!(
                    "recovery point {recovery_point} has no EBS snapshots or EKS metadata (its cluster is not linked to AWS)"
                ));
            } else {
                emit(&render_one(g.output, &found)?);
            }
        }
        RecoveryPointsCmd::Delete { recovery_point } => {
            let answer = client
                .delete_current_answer(&entity_path(RECOVERY_POINT, &recovery_point), "")
                .await?
                .body;
            done(
                g.output,
                &answer,
                format!(
                    "recovery point {recovery_point} is being deleted; job {}",
                    at(&answer, "/jobId")
                ),
            )?;
        }
        RecoveryPointsCmd::Verify {
            recovery_point,
            cluster,
            wait,
        } => {
            let mut body = json!({});
            if let Some(c) = resolve_opt(&client, CLUSTER, cluster.as_deref()).await? {
                body["targetClusterId"] = json!(c);
            }
            let path = format!("{}/verify", entity_path(RECOVERY_POINT, &recovery_point));
            let created = client.post(&path, &body).await?.body;
            let job = created.get("job").cloned().unwrap_or_default();
            let sentence = format!(
                "verification of {recovery_point} started: restore {}, job {}",
                at(&created, "/restore/id"),
                at(&job, "/id")
            );
            started_job(g, &client, &job, wait, &created, sentence).await?;
        }
    }
    Ok(())
}

const RESTORE_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("RECOVERY POINT", "/recoveryPointId"),
    Column::at("FROM", "/sourceClusterId"),
    Column::at("TO", "/targetClusterId"),
    Column::at("JOB", "/jobId"),
    Column::at("CREATED", "/createdAt"),
];

pub(super) async fn restores(g: &Global, cmd: RestoresCmd) -> Result<(), CliError> {
    if let RestoresCmd::Create(c) = &cmd {
        pairs("--namespace-map", &c.namespace_map)?;
        pairs("--storage-class-map", &c.storage_class_map)?;
    }
    let client = connect(g)?;
    match cmd {
        RestoresCmd::List => list_entities(g, &client, RESTORE).await?,
        RestoresCmd::Get { restore } => show_entity(g, &client, RESTORE, &restore).await?,
        RestoresCmd::Create(c) => create_restore(g, &client, c).await?,
    }
    Ok(())
}

async fn create_restore(g: &Global, client: &Client, c: RestoreCreate) -> Result<(), CliError> {
    let cluster_id = resolve(client, CLUSTER, &c.cluster).await?;
    let existing = match c.existing {
        ExistingArg::Skip => "skip",
        ExistingArg::Update => "update",
        ExistingArg::Fail => "fail",
    };
    let mut body = json!({
        "recoveryPointId": c.recovery_point,
        "targetClusterId": cluster_id,
        "selection": { "namespaces": c.namespaces },
        "namespacePrefix": c.namespace_prefix,
        "namespaceSuffix": c.namespace_suffix,
        "namespaceMap": pairs("--namespace-map", &c.namespace_map)?,
        "storageClassMap": pairs("--storage-class-map", &c.storage_class_map)?,
        "existingResourcePolicy": existing,
        "restorePvs": !c.no_pvs,
    });
    if let Some(file) = &c.hooks {
        body["hooks"] = json_array_file("--hooks", file)?;
    }
    let created = client.post(RESTORE.path, &body).await?.body;
    let job = created.get("job").cloned().unwrap_or_default();
    let sentence = format!(
        "restore {} created; job {}",
        at(&created, "/restore/id"),
        at(&job, "/id")
    );
    started_job(g, client, &job, c.wait, &created, sentence).await
}
