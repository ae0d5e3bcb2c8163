//! Jobs: listing, cancelling, and following one until it ends (`jobs watch`, and every
//! `--wait`): backups, restores, RDS runs and restores alike.

use std::time::Duration;

use serde_json::{Value, json};

use super::backups::BACKUP;
use super::clusters::CLUSTER;
use super::{
    Kind, connect, done, emit, entity_path, interval, list_at, poll_until, resolve, resolve_opt, show_entity,
    with_query,
};
use crate::CliError;
use crate::args::{Global, JobsCmd, RunArgs};
use crate::client::Client;
use crate::output::{Column, Format, at};

pub(super) const JOB: Kind = Kind {
    path: "/v1/jobs",
    prefix: "job_",
    noun: "job",
    named: false,
    columns: JOB_COLUMNS,
    body: &[],
};

const JOB_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("TYPE", "/type"),
    Column::at("STATE", "/state"),
    Column::at("TRIGGER", "/trigger"),
    Column::at("CLUSTER", "/clusterId"),
    Column::at("BACKUP", "/definitionId"),
    Column::at("CREATED", "/createdAt"),
    Column::at("REASON", "/reason"),
];

const TERMINAL: &[&str] = &["COMPLETED", "PARTIAL", "FAILED", "SKIPPED", "CANCELED"];

/// How often a `--wait` polls its job.
const WAIT_EVERY: Duration = Duration::from_secs(2);

pub(super) async fn jobs(g: &Global, cmd: JobsCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        JobsCmd::List {
            cluster,
            backup,
            state,
            job_type,
        } => {
            let path = with_query(
                JOB.path,
                &[
                    ("clusterId", resolve_opt(&client, CLUSTER, cluster.as_deref()).await?),
                    ("definitionId", resolve_opt(&client, BACKUP, backup.as_deref()).await?),
                    ("state", state.map(|s| s.to_uppercase())),
                    ("type", job_type.map(|t| t.to_uppercase())),
                ],
            );
            list_at(g, &client, JOB, &path).await?;
        }
        JobsCmd::Get { job } => show_entity(g, &client, JOB, &job).await?,
        JobsCmd::Cancel { job } => {
            let j = client
                .post(&format!("{}/cancel", entity_path(JOB, &job)), &json!({}))
                .await?
                .body;
            done(g.output, &j, format!("job {job} {}", at(&j, "/state")))?;
        }
        JobsCmd::Watch { job, interval: every } => {
            let every = interval("--interval", every)?;
            watch(g, &client, &job, every).await?;
        }
    }
    Ok(())
}

/// A retention for `run`: `{}` (the policy's first row) or the one given.
pub(super) fn run_body(run: &RunArgs) -> Value {
    match run.retain_days {
        Some(days) => json!({ "retention": { "retainDays": days, "keepLast": run.keep_last } }),
        None => json!({}),
    }
}

/// `arca <kind> run NAME|ID`: `POST <path>/<id>/run`, then the job it answered.
pub(super) async fn run_definition(
    g: &Global,
    client: &Client,
    kind: Kind,
    arg: &str,
    body: Value,
    wait: bool,
) -> Result<(), CliError> {
    let id = resolve(client, kind, arg).await?;
    let job = client
        .post(&format!("{}/run", entity_path(kind, &id)), &body)
        .await?
        .body;
    let sentence = job_sentence(&job);
    started_job(g, client, &job, wait, &job, sentence).await
}

/// "job <id> <STATE>[: <reason>]".
pub(super) fn job_sentence(job: &Value) -> String {
    let mut sentence = format!("job {} {}", at(job, "/id"), at(job, "/state"));
    if let Some(reason) = job.get("reason").and_then(Value::as_str) {
        sentence.push_str(&format!(": {reason}"));
    }
    sentence
}

/// What a command that started `job` prints: with `wait`, the job followed to its end
/// (as `jobs watch`); else `doc` (what the API answered), or `sentence` in table mode.
pub(super) async fn started_job(
    g: &Global,
    client: &Client,
    job: &Value,
    wait: bool,
    doc: &Value,
    sentence: String,
) -> Result<(), CliError> {
    if wait {
        return watch(g, client, &at(job, "/id"), WAIT_EVERY).await;
    }
    done(g.output, doc, sentence)
}

fn progress_text(job: &Value) -> String {
    let mut parts = vec![at(job, "/state")];
    let n = |p: &str| job.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    if n("/counters/resources") > 0 {
        parts.push(format!("{} resources", n("/counters/resources")));
    }
    if n("/counters/snapshotsAttempted") > 0 {
        parts.push(format!(
            "snapshots {}/{}",
            n("/counters/snapshotsCompleted"),
            n("/counters/snapshotsAttempted")
        ));
    }
    if n("/counters/copiesAttempted") > 0 {
        parts.push(format!(
            "copies {}/{}",
            n("/counters/copiesCompleted"),
            n("/counters/copiesAttempted")
        ));
    }
    if n("/progress/estimatedBytes") > 0 {
        parts.push(format!(
            "{}/{} bytes",
            n("/progress/transferredBytes"),
            n("/progress/estimatedBytes")
        ));
    }
    // RDS jobs: where each database is (SNAPSHOTTING, COPYING, RESTORING, DONE, ...).
    if let Some(items) = job.pointer("/rds/items").and_then(Value::as_array) {
        for item in items {
            parts.push(format!("{} {}", at(item, "/database/identifier"), at(item, "/phase")));
        }
    }
    parts.join(", ")
}

/// Polls the job until it ends (a spinner on a terminal, else one stderr line per
/// change); exits 1 unless it COMPLETED.
pub(super) async fn watch(g: &Global, client: &Client, job_id: &str, every: Duration) -> Result<(), CliError> {
    let job = poll_until(
        client,
        &entity_path(JOB, job_id),
        &format!("job {job_id}"),
        every,
        |job| TERMINAL.contains(&at(job, "/state").as_str()),
        progress_text,
    )
    .await?;
    let state = at(&job, "/state");
    if let Some(out) = crate::output::machine(g.output, &job)? {
        emit(&out);
    }
    if state == "COMPLETED" {
        if g.output == Format::Table {
            emit(&format!("job {job_id} COMPLETED"));
        }
        return Ok(());
    }
    let reason = job.get("reason").and_then(Value::as_str).unwrap_or("no reason given");
    Err(CliError::api(
        format!("job_{}", state.to_lowercase()),
        format!("job {job_id} ended {state}: {reason}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_names_each_rds_database() {
        let job = json!({"state": "RUNNING", "counters": {"copiesAttempted": 2, "copiesCompleted": 1},
            "rds": {"items": [{"database": {"identifier": "orders"}, "phase": "COPYING"}]}});
        assert_eq!(progress_text(&job), "RUNNING, copies 1/2, orders COPYING");
    }
}
