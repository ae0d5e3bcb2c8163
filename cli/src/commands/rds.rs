//! RDS and Aurora: backup definitions (databases of a linked account by list or tag, a
//! policy, cross-region copies), Arca's snapshots and copies (recovery points), and
//! restores into new instances or clusters (RDS_RESTORE jobs, followed as jobs).

use serde_json::{Map, Value, json};

use super::cloud::CLOUD_ACCOUNT;
use super::jobs::{JOB, run_body, run_definition, started_job};
use super::policies::POLICY;
use super::{
    Kind, connect, delete_entity, done, entity_action, entity_path, list_at, list_entities, pair, reference, resolve,
    resolve_opt, set, show_entity, update_entity, with_query,
};
use crate::CliError;
use crate::args::{
    Global, RdsBackupCreate, RdsBackupUpdate, RdsBackupsCmd, RdsCmd, RdsCopyArgs, RdsRecoveryPointsCmd,
    RdsRestoreCreate, RdsRestoresCmd, RdsSelectionArgs, RdsVerificationArgs, VerifyArg,
};
use crate::client::Client;
use crate::output::{Column, at, text};

pub(super) const RDS_BACKUP: Kind = Kind {
    path: "/v1/rds-backups",
    prefix: "rdsbkp_",
    noun: "RDS backup",
    named: true,
    columns: RDS_BACKUP_COLUMNS,
    body: &[
        "name",
        "cloudAccountId",
        "region",
        "databases",
        "tag",
        "policyId",
        "paused",
        "copy",
        "verification",
    ],
};
const RDS_RECOVERY_POINT: Kind = Kind {
    path: "/v1/rds-recoverypoints",
    prefix: "rp_",
    noun: "RDS recovery point",
    named: false,
    columns: RDS_RP_COLUMNS,
    body: &[],
};
/// Restores are RDS_RESTORE jobs: created here, read and listed as jobs.
const RDS_RESTORE: Kind = Kind {
    path: "/v1/rds-restores",
    prefix: "job_",
    noun: "RDS restore",
    named: false,
    columns: RDS_RESTORE_COLUMNS,
    body: &[],
};

/// "orders, ledger (cluster)", or "tag k=v".
fn databases_text(v: &Value) -> String {
    if let Some(tag) = v.get("tag").filter(|t| t.is_object()) {
        return format!("tag {}={}", at(tag, "/key"), at(tag, "/value"));
    }
    v.get("databases")
        .and_then(Value::as_array)
        .map(|dbs| dbs.iter().map(database_text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn database_text(db: &Value) -> String {
    if db.get("cluster").and_then(Value::as_bool) == Some(true) {
        format!("{} (cluster)", at(db, "/identifier"))
    } else {
        at(db, "/identifier")
    }
}

const RDS_BACKUP_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("NAME", "/name"),
    Column::at("ACCOUNT", "/cloudAccountId"),
    Column::at("REGION", "/region"),
    Column::with("DATABASES", databases_text),
    Column::at("POLICY", "/policyId"),
    Column::at("COPIES TO", "/copy/destinationRegion"),
    Column::at("VERIFY", "/verification/when"),
    Column::at("PAUSED", "/paused"),
];

const RDS_RP_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("TYPE", "/type"),
    Column::at("STATE", "/state"),
    Column::with("DATABASE", |v| v.get("database").map(database_text).unwrap_or_default()),
    Column::at("SNAPSHOT", "/snapshot/identifier"),
    Column::at("REGION", "/snapshot/region"),
    Column::at("CREATED", "/createdAt"),
    Column::at("EXPIRES", "/expiresAt"),
    Column::at("VERIFIED", "/verification/state"),
];

/// Where a restore job restores from.
fn source_text(job: &Value) -> String {
    let Some(source) = job.pointer("/rds/restore/source") else {
        return String::new();
    };
    match source.get("kind").and_then(Value::as_str) {
        Some("RECOVERY_POINT") => at(source, "/recoveryPointId"),
        Some("SNAPSHOT") => format!("snapshot {}", at(source, "/identifier")),
        Some("POINT_IN_TIME") => {
            let when = match source.get("restoreTime").map(text) {
                Some(t) if !t.is_empty() => t,
                _ => "latest".to_owned(),
            };
            format!(
                "{} at {when}",
                source.get("database").map(database_text).unwrap_or_default()
            )
        }
        _ => text(source),
    }
}

const RDS_RESTORE_COLUMNS: &[Column] = &[
    Column::at("JOB", "/id"),
    Column::at("STATE", "/state"),
    Column::with("FROM", source_text),
    Column::at("TO", "/rds/restore/target/identifier"),
    Column::at("REGION", "/rds/region"),
    Column::at("CREATED", "/createdAt"),
    Column::at("REASON", "/reason"),
];

pub(super) async fn rds(g: &Global, cmd: RdsCmd) -> Result<(), CliError> {
    match cmd {
        RdsCmd::Backups(c) => backups(g, c).await,
        RdsCmd::RecoveryPoints(c) => recovery_points(g, c).await,
        RdsCmd::Restores(c) => restores(g, c).await,
    }
}

async fn backups(g: &Global, cmd: RdsBackupsCmd) -> Result<(), CliError> {
    // Malformed flags are usage errors whatever the server says: checked before connecting.
    match &cmd {
        RdsBackupsCmd::Create(c) => {
            selection(&c.selection)?;
            copy_edit(None, &c.copy, None)?;
        }
        RdsBackupsCmd::Update(u) => {
            selection(&u.selection)?;
        }
        _ => {}
    }
    let client = connect(g)?;
    match cmd {
        RdsBackupsCmd::List => list_entities(g, &client, RDS_BACKUP).await?,
        RdsBackupsCmd::Get { backup } => show_entity(g, &client, RDS_BACKUP, &backup).await?,
        RdsBackupsCmd::Create(c) => create_backup(g, &client, *c).await?,
        RdsBackupsCmd::Update(u) => update_backup(g, &client, *u).await?,
        RdsBackupsCmd::Run { backup, copy_only, run } => {
            let mut body = run_body(&run);
            if copy_only {
                body["copyOnly"] = json!(true);
            }
            run_definition(g, &client, RDS_BACKUP, &backup, body, run.wait).await?;
        }
        RdsBackupsCmd::Pause { backup } => entity_action(g, &client, RDS_BACKUP, &backup, "pause", "paused").await?,
        RdsBackupsCmd::Resume { backup } => {
            entity_action(g, &client, RDS_BACKUP, &backup, "resume", "resumed").await?;
        }
        RdsBackupsCmd::Delete { backup } => delete_entity(&client, RDS_BACKUP, &backup, "").await?,
    }
    Ok(())
}

/// The selection given, as the API's `databases` and `tag`; `None` when none is given.
fn selection(s: &RdsSelectionArgs) -> Result<Option<(Value, Value)>, CliError> {
    if let Some(tag) = &s.tag {
        let (key, value) = pair("--tag", tag)?;
        return Ok(Some((json!([]), json!({ "key": key, "value": value }))));
    }
    if s.db_instances.is_empty() && s.db_clusters.is_empty() {
        return Ok(None);
    }
    let databases: Vec<Value> = s
        .db_instances
        .iter()
        .map(|id| json!({ "identifier": id, "cluster": false }))
        .chain(
            s.db_clusters
                .iter()
                .map(|id| json!({ "identifier": id, "cluster": true })),
        )
        .collect();
    Ok(Some((Value::Array(databases), Value::Null)))
}

/// The copy settings after the flags: `current` (the definition's, if it copies) with
/// what is given; `None` when nothing copy-related is given. `policy`: the copy policy's
/// id, `null` to copy after every run, `None` to keep it.
fn copy_edit(current: Option<&Value>, c: &RdsCopyArgs, policy: Option<Value>) -> Result<Option<Value>, CliError> {
    let given = c.copy_to.is_some()
        || c.copy_kms_key.is_some()
        || c.copy_delete_source.is_some()
        || c.copy_policy.is_some()
        || c.copy_retain_days.is_some()
        || policy.is_some();
    if !given {
        return Ok(None);
    }
    let mut copy = match current {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    set(&mut copy, "destinationRegion", c.copy_to.clone().map(Value::from));
    set(&mut copy, "kmsKeyId", c.copy_kms_key.clone().map(Value::from));
    set(
        &mut copy,
        "deleteSourceAfterCopy",
        c.copy_delete_source.map(Value::from),
    );
    set(&mut copy, "policyId", policy);
    set(&mut copy, "retainDays", c.copy_retain_days.map(Value::from));
    if copy.get("destinationRegion").is_none_or(Value::is_null) {
        return Err(CliError::usage(
            "the --copy-* flags need --copy-to REGION (the definition makes no copies yet)",
        ));
    }
    Ok(Some(Value::Object(copy)))
}

async fn create_backup(g: &Global, client: &Client, c: RdsBackupCreate) -> Result<(), CliError> {
    let account = resolve(client, CLOUD_ACCOUNT, &c.account).await?;
    let (databases, tag) = selection(&c.selection)?.unwrap_or((json!([]), Value::Null));
    let policy = resolve_opt(client, POLICY, c.policy.as_deref()).await?;
    let copy_policy = reference(client, POLICY, c.copy.copy_policy.as_deref(), false).await?;
    let copy = copy_edit(None, &c.copy, copy_policy)?;
    let body = json!({
        "name": c.name,
        "cloudAccountId": account,
        "region": c.region,
        "databases": databases,
        "tag": tag,
        "policyId": policy,
        "paused": c.paused,
        "copy": copy,
        "verification": verification(&c.verification),
    });
    let view = client.post(RDS_BACKUP.path, &body).await?.body;
    done(
        g.output,
        &view,
        format!(
            "RDS backup {} created ({}): {} in {}",
            c.name,
            at(&view, "/id"),
            databases_text(&view),
            at(&view, "/region")
        ),
    )
}

async fn update_backup(g: &Global, client: &Client, u: RdsBackupUpdate) -> Result<(), CliError> {
    let policy = reference(client, POLICY, u.policy.as_deref(), u.no_policy).await?;
    let copy_policy = reference(client, POLICY, u.copy.copy_policy.as_deref(), u.no_copy_policy).await?;
    let chosen = selection(&u.selection)?;
    let verification = match verification(&u.verification) {
        Value::Null if u.no_verify => Some(Value::Null),
        Value::Null => None,
        v => Some(v),
    };
    update_entity(g, client, RDS_BACKUP, &u.backup, |b| {
        set(b, "verification", verification);
        set(b, "name", u.name.map(Value::from));
        set(b, "region", u.region.map(Value::from));
        set(b, "policyId", policy);
        if let Some((databases, tag)) = chosen {
            b.insert("databases".into(), databases);
            b.insert("tag".into(), tag);
        }
        if u.no_copy {
            b.insert("copy".into(), Value::Null);
        } else if let Some(copy) = copy_edit(b.get("copy"), &u.copy, copy_policy)? {
            b.insert("copy".into(), copy);
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// The `verification` member the flags describe (null without `--verify`).
fn verification(a: &RdsVerificationArgs) -> Value {
    let Some(when) = a.verify else {
        return Value::Null;
    };
    let mut v = json!({ "when": match when {
        VerifyArg::AfterBackup => "afterBackup",
        VerifyArg::Weekly => "weekly",
    } });
    if let Some(class) = &a.verify_class {
        v["instanceClass"] = json!(class);
    }
    if let Some(group) = &a.verify_subnet_group {
        v["subnetGroup"] = json!(group);
    }
    if !a.verify_security_groups.is_empty() {
        v["securityGroupIds"] = json!(a.verify_security_groups);
    }
    v
}

async fn recovery_points(g: &Global, cmd: RdsRecoveryPointsCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        RdsRecoveryPointsCmd::List { backup } => {
            let definition = resolve_opt(&client, RDS_BACKUP, backup.as_deref()).await?;
            let path = with_query(RDS_RECOVERY_POINT.path, &[("definitionId", definition)]);
            list_at(g, &client, RDS_RECOVERY_POINT, &path).await?;
        }
        RdsRecoveryPointsCmd::Get { recovery_point } => {
            show_entity(g, &client, RDS_RECOVERY_POINT, &recovery_point).await?;
        }
        RdsRecoveryPointsCmd::Verify { recovery_point, wait } => {
            let path = format!("{}/verify", entity_path(RDS_RECOVERY_POINT, &recovery_point));
            let job = client.post(&path, &json!({})).await?.body;
            let sentence = format!(
                "verification of {recovery_point} started: job {}, temporary database {}",
                at(&job, "/id"),
                at(&job, "/rds/restore/target/identifier")
            );
            started_job(g, &client, &job, wait, &job, sentence).await?;
        }
    }
    Ok(())
}

async fn restores(g: &Global, cmd: RdsRestoresCmd) -> Result<(), CliError> {
    let source = match &cmd {
        RdsRestoresCmd::Create(c) => Some(restore_source(c)?),
        _ => None,
    };
    let client = connect(g)?;
    match cmd {
        RdsRestoresCmd::List => {
            let path = with_query(JOB.path, &[("type", Some("RDS_RESTORE".to_owned()))]);
            list_at(g, &client, RDS_RESTORE, &path).await?;
        }
        RdsRestoresCmd::Get { restore } => show_entity(g, &client, JOB, &restore).await?,
        RdsRestoresCmd::Create(c) => {
            let account = resolve(&client, CLOUD_ACCOUNT, &c.account).await?;
            let target = json!({
                "identifier": c.target,
                "instanceClass": c.instance_class,
                "subnetGroup": c.subnet_group,
                "securityGroupIds": c.security_groups,
                "parameterGroup": c.parameter_group,
                "optionGroup": c.option_group,
                "multiAz": c.multi_az,
                "engine": c.engine,
            });
            let body = json!({ "cloudAccountId": account, "source": source, "target": target });
            let job = client.post(RDS_RESTORE.path, &body).await?.body;
            let sentence = format!(
                "RDS restore into {} started: job {} {}",
                c.target,
                at(&job, "/id"),
                at(&job, "/state")
            );
            started_job(g, &client, &job, c.wait, &job, sentence).await?;
        }
    }
    Ok(())
}

/// The restore's `source` from the one source flag given (clap ensures there is one).
fn restore_source(c: &RdsRestoreCreate) -> Result<Value, CliError> {
    if let Some(rp) = &c.recovery_point {
        return Ok(json!({ "kind": "RECOVERY_POINT", "recoveryPointId": rp }));
    }
    if let Some(snapshot) = &c.snapshot {
        return Ok(
            json!({ "kind": "SNAPSHOT", "region": c.region, "identifier": snapshot, "cluster": c.cluster_snapshot }),
        );
    }
    let database = match (&c.db_instance, &c.db_cluster) {
        (Some(id), _) => json!({ "identifier": id, "cluster": false }),
        (None, Some(id)) => json!({ "identifier": id, "cluster": true }),
        (None, None) => {
            return Err(CliError::usage(
                "give one source: --recovery-point, --snapshot, --db-instance or --db-cluster",
            ));
        }
    };
    let mut source = json!({ "kind": "POINT_IN_TIME", "region": c.region, "database": database });
    match &c.restore_time {
        Some(t) => {
            let at = chrono::DateTime::parse_from_rfc3339(t).map_err(|e| {
                CliError::usage(format!(
                    "--restore-time {t:?} is not an RFC 3339 time such as 2025-01-31T12:00:00Z: {e}"
                ))
            })?;
            source["restoreTime"] = json!(at.with_timezone(&chrono::Utc).to_rfc3339());
        }
        None => source["useLatestRestorableTime"] = json!(true),
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn copy_args(to: Option<&str>, retain: Option<u32>) -> RdsCopyArgs {
        RdsCopyArgs {
            copy_to: to.map(str::to_owned),
            copy_kms_key: None,
            copy_delete_source: None,
            copy_policy: None,
            copy_retain_days: retain,
        }
    }

    #[test]
    fn copy_flags_edit_the_current_copy_or_need_a_region() {
        assert_eq!(copy_edit(None, &copy_args(None, None), None).unwrap(), None);
        assert_eq!(
            copy_edit(None, &copy_args(None, Some(3)), None)
                .unwrap_err()
                .exit_code(),
            2
        );
        let current = json!({ "destinationRegion": "us-west-2", "retainDays": 30, "policyId": "pol_1" });
        let edited = copy_edit(Some(&current), &copy_args(None, Some(7)), Some(Value::Null))
            .unwrap()
            .unwrap();
        assert_eq!(
            edited,
            json!({ "destinationRegion": "us-west-2", "retainDays": 7, "policyId": null })
        );
    }

    #[test]
    fn a_selection_is_a_list_or_a_tag() {
        let s = RdsSelectionArgs {
            db_instances: vec!["orders".into()],
            db_clusters: vec!["ledger".into()],
            tag: None,
        };
        let (dbs, tag) = selection(&s).unwrap().unwrap();
        assert_eq!(
            dbs,
            json!([{ "identifier": "orders", "cluster": false }, { "identifier": "ledger", "cluster": true }])
        );
        assert!(tag.is_null());
        let s = RdsSelectionArgs {
            db_instances: vec![],
            db_clusters: vec![],
            tag: Some("backup".into()),
        };
        assert_eq!(selection(&s).unwrap_err().exit_code(), 2, "KEY=VALUE");
    }
}
