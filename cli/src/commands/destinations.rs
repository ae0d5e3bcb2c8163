//! Destinations: where backup data goes (a local directory, an S3 bucket, Arca-managed).

use std::sync::Arc;

use arca_core::model::destination::DestinationTarget;
use arca_core::ports::ObjectStore;
use arca_core::ports::credentials::DestinationAccess;
use serde_json::{Map, Value, json};

use super::{Kind, connect, done, emit, entity_path, hint, list_entities, resolve, set, show_entity, update_entity};
use crate::CliError;
use crate::args::{DestinationCreate, DestinationsCmd, Global};
use crate::output::{Column, at};

pub(super) const DESTINATION: Kind = Kind {
    path: "/v1/destinations",
    prefix: "dst_",
    noun: "destination",
    named: true,
    columns: DESTINATION_COLUMNS,
    body: &["name", "target", "objectLock", "customerKey"],
};

const DESTINATION_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("NAME", "/name"),
    Column::at("KIND", "/target/kind"),
    Column::with("WHERE", |v| match v.pointer("/target/kind").and_then(Value::as_str) {
        Some("LOCAL_FILESYSTEM") => at(v, "/target/path"),
        Some("S3") => format!("s3://{}/{}", at(v, "/target/bucket"), at(v, "/target/prefix")),
        _ => at(v, "/target/region"),
    }),
    Column::at("OBJECT LOCK", "/objectLock/mode"),
    Column::at("CUSTOMER KEY", "/customerKey/kmsKeyArn"),
];

const UPKEEP_COLUMNS: &[Column] = &[
    Column::at("CLUSTER", "/repository/clusterId"),
    Column::at("DUE", "/dueAt"),
    Column::at("LAST RUN", "/lastRunAt"),
    Column::at("FREED LAST", "/bytesFreedLast"),
    Column::at("FREED", "/bytesFreedTotal"),
    Column::at("PENDING MARKERS", "/markersPending"),
    Column::at("LAST ERROR", "/lastError"),
];

pub(super) async fn destinations(g: &Global, cmd: DestinationsCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        DestinationsCmd::List => list_entities(g, &client, DESTINATION).await?,
        DestinationsCmd::Get { destination } => show_entity(g, &client, DESTINATION, &destination).await?,
        DestinationsCmd::Create(c) => {
            let name = c.name.clone();
            let mut body = json!({ "name": c.name });
            if let Some(mode) = c.object_lock {
                let mode = match mode {
                    crate::args::LockModeArg::Governance => "GOVERNANCE",
                    crate::args::LockModeArg::Compliance => "COMPLIANCE",
                };
                body["objectLock"] = json!({ "mode": mode });
            }
            if let Some(key) = customer_key(c.kms_key_arn.clone(), c.kms_endpoint.clone()) {
                body["customerKey"] = key;
            }
            body["target"] = target(c)?;
            let d = client.post(DESTINATION.path, &body).await?.body;
            done(g.output, &d, format!("destination {name} created ({})", at(&d, "/id")))?;
        }
        DestinationsCmd::Update {
            destination,
            name,
            local_path,
            kms_key_arn,
            kms_endpoint,
        } => {
            if local_path.is_some() {
                let id = resolve(&client, DESTINATION, &destination).await?;
                let current = client.get(&entity_path(DESTINATION, &id)).await?.body;
                let kind = at(&current, "/target/kind");
                if kind != "LOCAL_FILESYSTEM" {
                    return Err(CliError::api(
                        "not_local",
                        format!("--local-path: destination {destination} is {kind}, not a local directory"),
                    ));
                }
            }
            update_entity(g, &client, DESTINATION, &destination, |b| {
                set(b, "name", name.map(Value::from));
                if let Some(arn) = kms_key_arn {
                    // The endpoint is kept unless given again.
                    super::edit_object(b, "customerKey", |key| {
                        key.insert("kmsKeyArn".into(), json!(arn));
                        if let Some(endpoint) = kms_endpoint {
                            key.insert("endpoint".into(), json!(endpoint));
                        }
                    });
                }
                if let Some(path) = local_path
                    && let Some(target) = b.get_mut("target").and_then(Value::as_object_mut)
                {
                    target.insert("path".into(), json!(path));
                }
                Ok(())
            })
            .await?;
        }
        DestinationsCmd::Maintenance { destination } => {
            let id = resolve(&client, DESTINATION, &destination).await?;
            let doc = client
                .get(&format!("{}/maintenance", entity_path(DESTINATION, &id)))
                .await?
                .body;
            match crate::output::machine(g.output, &doc)? {
                Some(out) => emit(&out),
                None => {
                    emit(&format!(
                        "destination {destination}: {} bytes freed by maintenance in all",
                        at(&doc, "/bytesFreedTotal")
                    ));
                    let repositories = doc
                        .get("repositories")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    emit(&crate::output::render_list(g.output, &repositories, UPKEEP_COLUMNS)?);
                    for waiting in repositories.iter().filter(|r| r["awaitingAgent"].is_object()) {
                        emit(&format!(
                            "cluster {} is deleted and no agent of the org is ACTIVE: {} expired recovery point(s) \
                             wait since {}; without an agent, run: {}",
                            at(waiting, "/repository/clusterId"),
                            at(waiting, "/awaitingAgent/expiredPoints"),
                            at(waiting, "/awaitingAgent/since"),
                            at(waiting, "/awaitingAgent/action"),
                        ));
                    }
                }
            }
        }
        DestinationsCmd::Purge {
            destination,
            cluster,
            include_unexpired,
        } => purge(g, &client, &destination, &cluster, include_unexpired).await?,
        DestinationsCmd::Delete { destination, confirm } => {
            let id = resolve(&client, DESTINATION, &destination).await?;
            let query = if confirm { "?confirm=true" } else { "" };
            let answer = client
                .delete_current_answer(&entity_path(DESTINATION, &id), query)
                .await
                .map_err(|e| {
                    hint(
                        e,
                        "confirmation_required",
                        "pass --confirm to expire them now and delete the destination after the last",
                    )
                })?;
            match answer.body.get("recoveryPoints").and_then(Value::as_u64) {
                Some(n) => emit(&format!(
                    "destination {destination} is retiring: {n} recovery point(s) expired; retention deletes them and \
                     their data, then the destination"
                )),
                None => emit(&format!("destination {destination} deleted")),
            }
        }
    }
    Ok(())
}

/// `arca destinations purge` (docs/data-model.md, "What deletes what"): the control plane
/// checks and marks the points, this process deletes the objects with the caller's
/// credentials, and the control plane then deletes the points.
async fn purge(
    g: &Global,
    client: &crate::client::Client,
    destination: &str,
    cluster: &str,
    include_unexpired: bool,
) -> Result<(), CliError> {
    let id = resolve(client, DESTINATION, destination).await?;
    let path = format!("{}/repositories/{cluster}/purge", entity_path(DESTINATION, &id));
    let grant = client
        .post(&path, &json!({ "includeUnexpired": include_unexpired }))
        .await
        .map_err(|e| {
            hint(
                e,
                "purge_not_possible",
                "--include-unexpired also takes the points not due yet",
            )
        })?
        .body;
    let access: DestinationAccess = serde_json::from_value(grant["access"].clone())
        .map_err(|e| CliError::other(format!("the purge's destination access: {e}")))?;
    let store = open_cluster_prefix(&access).await?;
    let where_ = format!("{} in destination {destination}", access.cluster_prefix);
    let objects = store
        .list("")
        .await
        .map_err(|e| CliError::other(format!("listing {where_}: {e}")))?;
    let bytes: u64 = objects.iter().map(|o| o.size).sum();
    for object in &objects {
        store
            .delete(&object.key)
            .await
            .map_err(|e| CliError::other(format!("deleting {}{}: {e}", access.cluster_prefix, object.key)))?;
    }
    let left = store
        .list("")
        .await
        .map_err(|e| CliError::other(format!("listing {where_}: {e}")))?;
    if !left.is_empty() {
        return Err(CliError::other(format!(
            "{} object(s) are still under {where_} (written meanwhile?): run the purge again",
            left.len()
        )));
    }
    if let DestinationTarget::LocalFilesystem { path } = &access.target {
        // The emptied directories of the cluster prefix.
        let _ = std::fs::remove_dir_all(std::path::Path::new(path).join(access.cluster_prefix.trim_matches('/')));
    }
    let mut done_doc = client.post(&format!("{path}/complete"), &json!({})).await?.body;
    let points = done_doc["recoveryPointsDeleted"].as_array().map_or(0, Vec::len);
    let failed = done_doc["awsCleanupFailed"].as_array().map_or(0, Vec::len);
    done_doc["objectsDeleted"] = json!(objects.len());
    done_doc["bytesDeleted"] = json!(bytes);
    let mut sentence = format!(
        "purged {where_}: {} object(s), {bytes} bytes; {points} recovery point(s) deleted",
        objects.len()
    );
    if failed > 0 {
        sentence.push_str(&format!(
            "; {failed} wait for their EBS snapshots to be deleted (retention tries again)"
        ));
    }
    done(g.output, &done_doc, sentence)
}

/// The destination's store rooted at the cluster prefix of `access`: vended credentials
/// when the control plane gave some, else the caller's own (the default AWS chain).
async fn open_cluster_prefix(access: &DestinationAccess) -> Result<Arc<dyn ObjectStore>, CliError> {
    match &access.target {
        DestinationTarget::LocalFilesystem { path } => Ok(Arc::new(arca_embedded::LocalFsObjectStore::new(
            std::path::Path::new(path).join(access.cluster_prefix.trim_matches('/')),
        ))),
        DestinationTarget::S3 { .. } => {
            use arca_core::ports::DestinationOpener;
            arca_aws::s3_connection::S3DestinationOpener
                .open(access)
                .await
                .map_err(|e| CliError::other(e.to_string()))
        }
        DestinationTarget::ArcaManaged { .. } => Err(CliError::other(
            "the control plane answered Arca-managed storage without its bucket",
        )),
    }
}

fn target(c: DestinationCreate) -> Result<Value, CliError> {
    let mut t = Map::new();
    if let Some(path) = c.local_path {
        t.insert("kind".into(), json!("LOCAL_FILESYSTEM"));
        t.insert("path".into(), json!(path));
    } else if let Some(bucket) = c.s3_bucket {
        t.insert("kind".into(), json!("S3"));
        t.insert("bucket".into(), json!(bucket));
        t.insert("region".into(), json!(c.s3_region));
        t.insert("prefix".into(), json!(c.s3_prefix));
        t.insert("skipTlsVerify".into(), json!(c.skip_tls_verify));
        if let Some(p) = c.s3_path_style {
            t.insert("pathStyle".into(), json!(p));
        }
        if let Some(file) = c.s3_ca_bundle {
            let pem = std::fs::read_to_string(&file)
                .map_err(|e| CliError::usage(format!("--s3-ca-bundle {}: {e}", file.display())))?;
            t.insert("caBundle".into(), json!(pem));
        }
        if let Some(e) = c.s3_endpoint {
            t.insert("endpoint".into(), json!(e));
        }
        if let Some(r) = c.credentials_ref {
            t.insert("credentialsRef".into(), json!(r));
        }
    } else {
        t.insert("kind".into(), json!("ARCA_MANAGED"));
        if let Some(r) = c.region {
            t.insert("region".into(), json!(r));
        }
    }
    Ok(Value::Object(t))
}

/// The `customerKey` member of `--kms-key-arn` (and `--kms-endpoint`).
fn customer_key(kms_key_arn: Option<String>, endpoint: Option<String>) -> Option<Value> {
    let arn = kms_key_arn?;
    let mut key = json!({ "kmsKeyArn": arn });
    if let Some(endpoint) = endpoint {
        key["endpoint"] = json!(endpoint);
    }
    Some(key)
}
