//! What each command does: a few API calls and one rendering.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::CliError;
use crate::args::{
    ApiKeysCmd, BackupCreate, BackupUpdate, BackupsCmd, Cli, CloudAccountsCmd, ClustersCmd, Command, DestinationCreate,
    DestinationsCmd, ExistingArg, Global, JobsCmd, LoginArgs, OrgCmd, PoliciesCmd, RecoveryPointsCmd, RestoreCreate,
    RestoresCmd, ServerArgs, SignupArgs,
};
use crate::client::{Client, encode};
use crate::config::{self, FileConfig};
use crate::output::{Column, Format, at, render_list, render_one, text};

/// A kind of resource the CLI names: where it is listed, its id prefix, the columns of
/// its listing and the members its `PUT` body takes (the rest of a read is computed by
/// the API, and the bodies refuse unknown members).
#[derive(Clone, Copy)]
struct Kind {
    path: &'static str,
    prefix: &'static str,
    noun: &'static str,
    columns: &'static [Column],
    body: &'static [&'static str],
}

const CLUSTER: Kind = Kind {
    path: "/v1/clusters",
    prefix: "cl_",
    noun: "cluster",
    columns: CLUSTER_COLUMNS,
    // `aws`: the AWS link of a cluster, where the API has it (kept as read).
    body: &["name", "description", "tags", "defaultDestinationId", "aws"],
};
const POLICY: Kind = Kind {
    path: "/v1/policies",
    prefix: "pol_",
    noun: "policy",
    columns: POLICY_COLUMNS,
    body: &["name", "timezone", "schedules", "suspended"],
};
const BACKUP: Kind = Kind {
    path: "/v1/backups",
    prefix: "bkp_",
    noun: "backup",
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
    ],
};
const DESTINATION: Kind = Kind {
    path: "/v1/destinations",
    prefix: "dst_",
    noun: "destination",
    columns: DESTINATION_COLUMNS,
    body: &["name", "target"],
};
const CLOUD_ACCOUNT: Kind = Kind {
    path: "/v1/cloud-accounts",
    prefix: "ca_",
    noun: "cloud account",
    columns: CLOUD_ACCOUNT_COLUMNS,
    body: &["name", "description", "regions"],
};
const API_KEY: Kind = Kind {
    path: "/v1/apikeys",
    prefix: "key_",
    noun: "API key",
    columns: API_KEY_COLUMNS,
    body: &[],
};

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let g = &cli.global;
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "arca", &mut std::io::stdout());
            Ok(())
        }
        Command::Server(args) => server(args).await,
        Command::Signup(args) => signup(g, args).await,
        Command::Login(args) => login(g, args).await,
        Command::Clusters(c) => clusters(g, c).await,
        Command::Policies(c) => policies(g, c).await,
        Command::Backups(c) => backups(g, c).await,
        Command::Jobs(c) => jobs(g, c).await,
        Command::RecoveryPoints(c) => recovery_points(g, c).await,
        Command::Restores(c) => restores(g, c).await,
        Command::Destinations(c) => destinations(g, c).await,
        Command::CloudAccounts(c) => cloud_accounts(g, c).await,
        Command::Org(c) => org(g, c).await,
        Command::ApiKeys(c) => api_keys(g, c).await,
    }
}

// ---- connection ---------------------------------------------------------------------

/// The URL and key: flag or environment, else the config file, else the default URL.
fn settings(g: &Global) -> Result<(String, Option<String>), CliError> {
    let path = config::path(g.config.as_deref())?;
    let file = config::load(&path)?;
    let url = g
        .api_url
        .clone()
        .or(file.api_url)
        .unwrap_or_else(|| config::DEFAULT_API_URL.to_owned());
    Ok((url, g.api_key.clone().or(file.api_key)))
}

fn connect(g: &Global) -> Result<Client, CliError> {
    let (url, key) = settings(g)?;
    if key.is_none() {
        return Err(CliError::api(
            "not_logged_in",
            "no API key: run `arca login` (or `arca signup`), or set ARCA_API_KEY",
        ));
    }
    Client::new(&url, key)
}

/// Prints to stdout. A closed pipe (`arca jobs list | head -1`) is not an error worth
/// a panic: the reader has what it wanted.
fn emit(s: &str) {
    use std::io::Write;
    if !s.is_empty() {
        let _ = writeln!(std::io::stdout().lock(), "{s}");
    }
}

/// Prints the outcome of a write: a sentence in table mode, the document otherwise.
fn done(format: Format, doc: &Value, sentence: String) -> Result<(), CliError> {
    match crate::output::machine(format, doc)? {
        Some(out) => emit(&out),
        None => emit(&sentence),
    }
    Ok(())
}

/// An id from an id or a name: names are looked up in the listing (they must match one).
async fn resolve(client: &Client, kind: Kind, arg: &str) -> Result<String, CliError> {
    if arg.starts_with(kind.prefix) {
        return Ok(arg.to_owned());
    }
    let matches: Vec<String> = client
        .list_all(kind.path)
        .await?
        .iter()
        .filter(|item| item.get("name").and_then(Value::as_str) == Some(arg))
        .filter_map(|item| item.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    match matches.as_slice() {
        [id] => Ok(id.clone()),
        [] => Err(CliError::api("not_found", format!("no {} named {arg:?}", kind.noun))),
        _ => Err(CliError::api(
            "ambiguous_name",
            format!(
                "{} {} are named {arg:?}: use an id ({})",
                matches.len(),
                kind.noun,
                matches.join(", ")
            ),
        )),
    }
}

// ---- the shape every entity shares: list, get, update, delete ----------------------

fn entity_path(kind: Kind, id: &str) -> String {
    format!("{}/{id}", kind.path)
}

/// `arca <kind> list`: every page, in the kind's columns.
async fn list_entities(g: &Global, client: &Client, kind: Kind) -> Result<(), CliError> {
    emit(&render_list(
        g.output,
        &client.list_all(kind.path).await?,
        kind.columns,
    )?);
    Ok(())
}

/// `arca <kind> get NAME|ID`.
async fn show_entity(g: &Global, client: &Client, kind: Kind, arg: &str) -> Result<(), CliError> {
    let id = resolve(client, kind, arg).await?;
    emit(&render_one(g.output, &client.get(&entity_path(kind, &id)).await?.body)?);
    Ok(())
}

/// `arca <kind> delete NAME|ID` (`query`: e.g. `?confirm=true`).
async fn delete_entity(client: &Client, kind: Kind, arg: &str, query: &str) -> Result<(), CliError> {
    let id = resolve(client, kind, arg).await?;
    client.delete_current(&entity_path(kind, &id), query).await?;
    emit(&format!("{} {arg} deleted", kind.noun));
    Ok(())
}

/// The members of a read that its `PUT` body takes (the API answers `null` for an
/// absent option, which the bodies read as absent too).
fn body_of(doc: &Value, members: &[&str]) -> Map<String, Value> {
    members
        .iter()
        .filter_map(|m| doc.get(*m).map(|v| ((*m).to_owned(), v.clone())))
        .collect()
}

/// Reads the entity at `path`, applies `edit` to its body and replaces it with the ETag
/// read: a change made meanwhile by someone else is refused (412), never overwritten.
async fn update_at(
    client: &Client,
    path: &str,
    members: &[&str],
    edit: impl FnOnce(&mut Map<String, Value>),
) -> Result<Value, CliError> {
    let current = client.get(path).await?;
    let tag = current
        .etag
        .ok_or_else(|| CliError::other(format!("GET {path} returned no ETag")))?;
    let mut body = body_of(&current.body, members);
    edit(&mut body);
    Ok(client.put(path, &Value::Object(body), &tag).await?.body)
}

/// `arca <kind> update NAME|ID ...`: prints a sentence, or the updated document.
async fn update_entity(
    g: &Global,
    client: &Client,
    kind: Kind,
    arg: &str,
    edit: impl FnOnce(&mut Map<String, Value>),
) -> Result<Value, CliError> {
    let id = resolve(client, kind, arg).await?;
    let updated = update_at(client, &entity_path(kind, &id), kind.body, edit).await?;
    done(g.output, &updated, format!("{} {arg} updated", kind.noun))?;
    Ok(updated)
}

/// Sets `member` when the flag was given.
fn set(body: &mut Map<String, Value>, member: &str, value: Option<Value>) {
    if let Some(v) = value {
        body.insert(member.to_owned(), v);
    }
}

/// An optional reference flag pair (`--policy X` / `--no-policy`) as the new value of
/// the member: `Some(id)`, `Some(null)` to clear it, `None` to keep it.
async fn reference(client: &Client, kind: Kind, given: Option<&str>, clear: bool) -> Result<Option<Value>, CliError> {
    match given {
        Some(arg) => Ok(Some(json!(resolve(client, kind, arg).await?))),
        None if clear => Ok(Some(Value::Null)),
        None => Ok(None),
    }
}

/// `k=v` pairs into a map; a pair without `=` is a usage error naming the flag.
fn pairs(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(CliError::usage(format!("{flag} takes KEY=VALUE, not {item:?}"))),
        })
        .collect()
}

// ---- account ----------------------------------------------------------------------

async fn signup(g: &Global, args: SignupArgs) -> Result<(), CliError> {
    let (url, _) = settings(g)?;
    let client = Client::new(&url, None)?;
    let mut body = json!({ "orgName": args.org_name });
    if let Some(name) = &args.key_name {
        body["adminKeyName"] = json!(name);
    }
    let result = client.post("/v1/signup", &body).await?.body;
    let secret = result
        .pointer("/adminKey/secret")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::other("the sign-up answer holds no admin key"))?
        .to_owned();
    let org = format!("{} ({})", at(&result, "/org/name"), at(&result, "/org/id"));
    if args.no_save {
        // Asked for explicitly: the only time this key can be seen.
        emit(&format!(
            "org {org} created\nadmin key (shown once, keep it safe): {secret}"
        ));
        return Ok(());
    }
    let path = config::path(g.config.as_deref())?;
    config::save(
        &path,
        &FileConfig {
            api_url: Some(client.base().to_owned()),
            api_key: Some(secret),
        },
    )?;
    emit(&format!(
        "org {org} created; its admin key is saved in {}",
        path.display()
    ));
    Ok(())
}

async fn login(g: &Global, args: LoginArgs) -> Result<(), CliError> {
    let (url, _) = settings(g)?;
    let key = if args.key_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::other(format!("reading the key from stdin: {e}")))?;
        line.trim().to_owned()
    } else {
        g.api_key
            .clone()
            .ok_or_else(|| CliError::usage("give the key with --api-key, ARCA_API_KEY or --key-stdin"))?
    };
    if key.is_empty() {
        return Err(CliError::usage("the API key is empty"));
    }
    let client = Client::new(&url, Some(key.clone()))?;
    // Checked before saving: a typo is found now, not at the next command.
    let org = client.get("/v1/org").await?.body;
    let path = config::path(g.config.as_deref())?;
    config::save(
        &path,
        &FileConfig {
            api_url: Some(client.base().to_owned()),
            api_key: Some(key),
        },
    )?;
    emit(&format!(
        "logged in to {} as org {} ({}); saved in {}",
        client.base(),
        at(&org, "/name"),
        at(&org, "/id"),
        path.display()
    ));
    Ok(())
}

// ---- clusters ---------------------------------------------------------------------

const CLUSTER_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        get: |v| at(v, "/id"),
    },
    Column {
        header: "NAME",
        get: |v| at(v, "/name"),
    },
    Column {
        header: "STATE",
        get: |v| at(v, "/state"),
    },
    Column {
        header: "KUBERNETES",
        get: |v| at(v, "/kubernetesVersion"),
    },
    Column {
        header: "AGENT",
        get: |v| at(v, "/agentVersion"),
    },
    Column {
        header: "LAST HEARTBEAT",
        get: |v| at(v, "/lastHeartbeatAt"),
    },
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

async fn clusters(g: &Global, cmd: ClustersCmd) -> Result<(), CliError> {
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
        } => {
            let destination = reference(
                &client,
                DESTINATION,
                default_destination.as_deref(),
                no_default_destination,
            )
            .await?;
            update_entity(g, &client, CLUSTER, &cluster, |b| {
                set(b, "name", name.map(Value::from));
                set(b, "description", description.map(Value::from));
                set(b, "defaultDestinationId", destination);
            })
            .await?;
        }
        ClustersCmd::Register {
            name,
            description,
            output_file,
            agent_token_file,
        } => {
            let created = client
                .post("/v1/clusters", &json!({ "name": name, "description": description }))
                .await?
                .body;
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
        ClustersCmd::Delete { cluster, confirm } => {
            let query = if confirm { "?confirm=true" } else { "" };
            delete_entity(&client, CLUSTER, &cluster, query)
                .await
                .map_err(|e| hint(e, "confirmation_required", "pass --confirm to delete it anyway"))?;
        }
    }
    Ok(())
}

/// Adds what to do next to the error of `code`.
fn hint(e: CliError, code: &str, advice: &str) -> CliError {
    match e {
        CliError::Api { code: c, detail } if c == code => CliError::Api {
            code: c,
            detail: format!("{detail} ({advice})"),
        },
        other => other,
    }
}

// ---- policies ---------------------------------------------------------------------

fn schedules_text(v: &Value) -> String {
    let Some(rows) = v.get("schedules").and_then(Value::as_array) else {
        return String::new();
    };
    rows.iter()
        .map(|r| {
            let keep = match r.get("keepLast") {
                Some(Value::Number(n)) => format!(":{n}"),
                _ => String::new(),
            };
            format!("{}={}{keep}", at(r, "/cron"), at(r, "/retainDays"))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn used_by_text(v: &Value) -> String {
    v.get("usedBy")
        .and_then(Value::as_array)
        .map(|refs| refs.iter().map(|r| at(r, "/name")).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

const POLICY_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        get: |v| at(v, "/id"),
    },
    Column {
        header: "NAME",
        get: |v| at(v, "/name"),
    },
    Column {
        header: "TIMEZONE",
        get: |v| at(v, "/timezone"),
    },
    Column {
        header: "SCHEDULES (CRON=DAYS[:KEEP])",
        get: schedules_text,
    },
    Column {
        header: "SUSPENDED",
        get: |v| at(v, "/suspended"),
    },
    Column {
        header: "USED BY",
        get: used_by_text,
    },
];

/// `CRON=RETAIN_DAYS[:KEEP_LAST]` as the API's schedule row. The cron has spaces but no
/// `=`, so the last `=` splits.
pub fn parse_schedule(row: &str) -> Result<Value, CliError> {
    let bad = |why: &str| {
        CliError::usage(format!(
            "--schedule {row:?}: {why} (expected \"CRON=RETAIN_DAYS[:KEEP_LAST]\")"
        ))
    };
    let (cron, retention) = row.rsplit_once('=').ok_or_else(|| bad("no '='"))?;
    let cron = cron.trim();
    if cron.is_empty() {
        return Err(bad("empty cron"));
    }
    let (days, keep) = match retention.split_once(':') {
        Some((d, k)) => (d, Some(k)),
        None => (retention, None),
    };
    let days: u32 = days.trim().parse().map_err(|_| bad("RETAIN_DAYS is not a number"))?;
    let mut doc = json!({ "cron": cron, "retainDays": days });
    if let Some(k) = keep {
        let k: u32 = k.trim().parse().map_err(|_| bad("KEEP_LAST is not a number"))?;
        doc["keepLast"] = json!(k);
    }
    Ok(doc)
}

async fn policies(g: &Global, cmd: PoliciesCmd) -> Result<(), CliError> {
    // Parse before connecting: a malformed row is a usage error whatever the server says.
    if let PoliciesCmd::Create { schedules, .. } | PoliciesCmd::Update { schedules, .. } = &cmd {
        for s in schedules {
            parse_schedule(s)?;
        }
    }
    let client = connect(g)?;
    match cmd {
        PoliciesCmd::List => list_entities(g, &client, POLICY).await?,
        PoliciesCmd::Get { policy } => show_entity(g, &client, POLICY, &policy).await?,
        PoliciesCmd::Update {
            policy,
            name,
            schedules,
            timezone,
            suspended,
        } => {
            let rows = if schedules.is_empty() {
                None
            } else {
                Some(Value::Array(
                    schedules
                        .iter()
                        .map(|s| parse_schedule(s))
                        .collect::<Result<Vec<_>, _>>()?,
                ))
            };
            update_entity(g, &client, POLICY, &policy, |b| {
                set(b, "name", name.map(Value::from));
                set(b, "timezone", timezone.map(Value::from));
                set(b, "schedules", rows);
                set(b, "suspended", suspended.map(Value::from));
            })
            .await?;
        }
        PoliciesCmd::Create {
            name,
            schedules,
            timezone,
            suspended,
        } => {
            let rows = schedules
                .iter()
                .map(|s| parse_schedule(s))
                .collect::<Result<Vec<_>, _>>()?;
            let body = json!({ "name": name, "timezone": timezone, "schedules": rows, "suspended": suspended });
            let policy = client.post(POLICY.path, &body).await?.body;
            done(
                g.output,
                &policy,
                format!("policy {name} created ({})", at(&policy, "/id")),
            )?;
        }
        PoliciesCmd::Delete { policy } => delete_entity(&client, POLICY, &policy, "").await?,
    }
    Ok(())
}

// ---- backups ----------------------------------------------------------------------

const BACKUP_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        get: |v| at(v, "/id"),
    },
    Column {
        header: "NAME",
        get: |v| at(v, "/name"),
    },
    Column {
        header: "CLUSTER",
        get: |v| at(v, "/clusterId"),
    },
    Column {
        header: "SELECTION",
        get: |v| {
            let ns = v.pointer("/selection/namespaces").and_then(Value::as_array);
            match ns {
                Some(list) if !list.is_empty() => list.iter().map(text).collect::<Vec<_>>().join(","),
                _ => "whole cluster".to_owned(),
            }
        },
    },
    Column {
        header: "PV MODE",
        get: |v| at(v, "/pvMode"),
    },
    Column {
        header: "POLICY",
        get: |v| at(v, "/policyId"),
    },
    Column {
        header: "DESTINATION",
        get: |v| at(v, "/effectiveDestination/destinationId"),
    },
    Column {
        header: "PAUSED",
        get: |v| at(v, "/paused"),
    },
];

async fn backups(g: &Global, cmd: BackupsCmd) -> Result<(), CliError> {
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
        BackupsCmd::Run {
            backup,
            retain_days,
            keep_last,
            wait,
        } => {
            let id = resolve(&client, BACKUP, &backup).await?;
            let body = match retain_days {
                Some(days) => json!({ "retention": { "retainDays": days, "keepLast": keep_last } }),
                None => json!({}),
            };
            let job = client.post(&format!("/v1/backups/{id}/run"), &body).await?.body;
            let job_id = at(&job, "/id");
            if wait {
                return watch(g, &client, &job_id, Duration::from_secs(2)).await;
            }
            let state = at(&job, "/state");
            let mut sentence = format!("job {job_id} {state}");
            if let Some(reason) = job.get("reason").and_then(Value::as_str) {
                sentence.push_str(&format!(": {reason}"));
            }
            done(g.output, &job, sentence)?;
        }
        BackupsCmd::Pause { backup } => {
            let id = resolve(&client, BACKUP, &backup).await?;
            let view = client.post(&format!("/v1/backups/{id}/pause"), &json!({})).await?.body;
            done(g.output, &view, format!("backup {backup} paused"))?;
        }
        BackupsCmd::Resume { backup } => {
            let id = resolve(&client, BACKUP, &backup).await?;
            let view = client.post(&format!("/v1/backups/{id}/resume"), &json!({})).await?.body;
            done(g.output, &view, format!("backup {backup} resumed"))?;
        }
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
    let view = client.post(BACKUP.path, &body).await?.body;
    done(
        g.output,
        &view,
        format!("backup {} created ({})", c.name, at(&view, "/id")),
    )
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
    update_entity(g, client, BACKUP, &u.backup, |b| {
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
    })
    .await?;
    Ok(())
}

// ---- jobs -------------------------------------------------------------------------

const JOB_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        get: |v| at(v, "/id"),
    },
    Column {
        header: "TYPE",
        get: |v| at(v, "/type"),
    },
    Column {
        header: "STATE",
        get: |v| at(v, "/state"),
    },
    Column {
        header: "TRIGGER",
        get: |v| at(v, "/trigger"),
    },
    Column {
        header: "CLUSTER",
        get: |v| at(v, "/clusterId"),
    },
    Column {
        header: "BACKUP",
        get: |v| at(v, "/definitionId"),
    },
    Column {
        header: "CREATED",
        get: |v| at(v, "/createdAt"),
    },
    Column {
        header: "REASON",
        get: |v| at(v, "/reason"),
    },
];

const TERMINAL: &[&str] = &["COMPLETED", "PARTIAL", "FAILED", "SKIPPED", "CANCELED"];

async fn jobs(g: &Global, cmd: JobsCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        JobsCmd::List {
            cluster,
            backup,
            state,
            job_type,
        } => {
            let mut query = Vec::new();
            if let Some(c) = cluster {
                query.push(format!("clusterId={}", encode(&resolve(&client, CLUSTER, &c).await?)));
            }
            if let Some(b) = backup {
                query.push(format!("definitionId={}", encode(&resolve(&client, BACKUP, &b).await?)));
            }
            if let Some(s) = state {
                query.push(format!("state={}", encode(&s.to_uppercase())));
            }
            if let Some(t) = job_type {
                query.push(format!("type={}", encode(&t.to_uppercase())));
            }
            let path = if query.is_empty() {
                "/v1/jobs".to_owned()
            } else {
                format!("/v1/jobs?{}", query.join("&"))
            };
            emit(&render_list(g.output, &client.list_all(&path).await?, JOB_COLUMNS)?);
        }
        JobsCmd::Get { job } => emit(&render_one(
            g.output,
            &client.get(&format!("/v1/jobs/{job}")).await?.body,
        )?),
        JobsCmd::Cancel { job } => {
            let j = client.post(&format!("/v1/jobs/{job}/cancel"), &json!({})).await?.body;
            done(g.output, &j, format!("job {job} {}", at(&j, "/state")))?;
        }
        JobsCmd::Watch { job, interval } => {
            if !(interval.is_finite() && interval > 0.0) {
                return Err(CliError::usage("--interval must be a positive number of seconds"));
            }
            watch(g, &client, &job, Duration::from_secs_f64(interval)).await?;
        }
    }
    Ok(())
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
    if n("/progress/estimatedBytes") > 0 {
        parts.push(format!(
            "{}/{} bytes",
            n("/progress/transferredBytes"),
            n("/progress/estimatedBytes")
        ));
    }
    parts.join(", ")
}

/// Polls the job until it ends. A spinner on a terminal; otherwise one stderr line per
/// state change (logs and pipes get no control characters).
async fn watch(g: &Global, client: &Client, job_id: &str, every: Duration) -> Result<(), CliError> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_prefix(job_id.to_owned());
        bar
    });
    let mut last_state = String::new();
    let job = loop {
        let job = client.get(&format!("/v1/jobs/{job_id}")).await?.body;
        let state = at(&job, "/state");
        match &bar {
            Some(b) => b.set_message(progress_text(&job)),
            None if state != last_state => eprintln!("job {job_id}: {}", progress_text(&job)),
            None => {}
        }
        if TERMINAL.contains(&state.as_str()) {
            break job;
        }
        last_state = state;
        tokio::time::sleep(every).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
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

// ---- recovery points, restores ---------------------------------------------------

const RP_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        get: |v| at(v, "/id"),
    },
    Column {
        header: "TYPE",
        get: |v| at(v, "/type"),
    },
    Column {
        header: "STATE",
        get: |v| at(v, "/state"),
    },
    Column {
        header: "CLUSTER",
        get: |v| at(v, "/clusterId"),
    },
    Column {
        header: "BACKUP",
        get: |v| at(v, "/definitionId"),
    },
    Column {
        header: "CREATED",
        get: |v| at(v, "/createdAt"),
    },
    Column {
        header: "EXPIRES",
        get: |v| at(v, "/expiresAt"),
    },
    Column {
        header: "LOCKED",
        get: |v| at(v, "/locked"),
    },
];

async fn recovery_points(g: &Global, cmd: RecoveryPointsCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        RecoveryPointsCmd::List { cluster, backup } => {
            let mut query = Vec::new();
            if let Some(c) = cluster {
                query.push(format!("clusterId={}", encode(&resolve(&client, CLUSTER, &c).await?)));
            }
            if let Some(b) = backup {
                query.push(format!("definitionId={}", encode(&resolve(&client, BACKUP, &b).await?)));
            }
            let path = if query.is_empty() {
                "/v1/recoverypoints".to_owned()
            } else {
                format!("/v1/recoverypoints?{}", query.join("&"))
            };
            emit(&render_list(g.output, &client.list_all(&path).await?, RP_COLUMNS)?);
        }
        RecoveryPointsCmd::Get { recovery_point } => emit(&render_one(
            g.output,
            &client.get(&format!("/v1/recoverypoints/{recovery_point}")).await?.body,
        )?),
    }
    Ok(())
}

const RESTORE_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        get: |v| at(v, "/id"),
    },
    Column {
        header: "RECOVERY POINT",
        get: |v| at(v, "/recoveryPointId"),
    },
    Column {
        header: "FROM",
        get: |v| at(v, "/sourceClusterId"),
    },
    Column {
        header: "TO",
        get: |v| at(v, "/targetClusterId"),
    },
    Column {
        header: "JOB",
        get: |v| at(v, "/jobId"),
    },
    Column {
        header: "CREATED",
        get: |v| at(v, "/createdAt"),
    },
];

async fn restores(g: &Global, cmd: RestoresCmd) -> Result<(), CliError> {
    if let RestoresCmd::Create(c) = &cmd {
        pairs("--namespace-map", &c.namespace_map)?;
        pairs("--storage-class-map", &c.storage_class_map)?;
    }
    let client = connect(g)?;
    match cmd {
        RestoresCmd::List => emit(&render_list(
            g.output,
            &client.list_all("/v1/restores").await?,
            RESTORE_COLUMNS,
        )?),
        RestoresCmd::Get { restore } => emit(&render_one(
            g.output,
            &client.get(&format!("/v1/restores/{restore}")).await?.body,
        )?),
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
    let body = json!({
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
    let created = client.post("/v1/restores", &body).await?.body;
    let job_id = at(&created, "/job/id");
    if c.wait {
        return watch(g, client, &job_id, Duration::from_secs(2)).await;
    }
    done(
        g.output,
        &created,
        format!("restore {} created; job {job_id}", at(&created, "/restore/id")),
    )
}

// ---- destinations -------------------------------------------------------------------

const DESTINATION_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        get: |v| at(v, "/id"),
    },
    Column {
        header: "NAME",
        get: |v| at(v, "/name"),
    },
    Column {
        header: "KIND",
        get: |v| at(v, "/target/kind"),
    },
    Column {
        header: "WHERE",
        get: |v| match v.pointer("/target/kind").and_then(Value::as_str) {
            Some("LOCAL_FILESYSTEM") => at(v, "/target/path"),
            Some("S3") => format!("s3://{}/{}", at(v, "/target/bucket"), at(v, "/target/prefix")),
            _ => at(v, "/target/region"),
        },
    },
];

async fn destinations(g: &Global, cmd: DestinationsCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        DestinationsCmd::List => list_entities(g, &client, DESTINATION).await?,
        DestinationsCmd::Get { destination } => show_entity(g, &client, DESTINATION, &destination).await?,
        DestinationsCmd::Create(c) => {
            let name = c.name.clone();
            let body = json!({ "name": c.name, "target": target(c) });
            let d = client.post(DESTINATION.path, &body).await?.body;
            done(g.output, &d, format!("destination {name} created ({})", at(&d, "/id")))?;
        }
        DestinationsCmd::Update {
            destination,
            name,
            local_path,
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
                if let Some(path) = local_path
                    && let Some(target) = b.get_mut("target").and_then(Value::as_object_mut)
                {
                    target.insert("path".into(), json!(path));
                }
            })
            .await?;
        }
        DestinationsCmd::Delete { destination } => delete_entity(&client, DESTINATION, &destination, "").await?,
    }
    Ok(())
}

fn target(c: DestinationCreate) -> Value {
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
    Value::Object(t)
}

// ---- cloud accounts -----------------------------------------------------------------

const CLOUD_ACCOUNT_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        get: |v| at(v, "/id"),
    },
    Column {
        header: "NAME",
        get: |v| at(v, "/name"),
    },
    Column {
        header: "STATE",
        get: |v| at(v, "/state"),
    },
    Column {
        header: "AWS ACCOUNT",
        get: |v| at(v, "/awsAccountId"),
    },
    Column {
        header: "REGIONS",
        get: |v| {
            v.get("regions")
                .and_then(Value::as_array)
                .map(|r| r.iter().map(text).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        },
    },
    Column {
        header: "LAST INVENTORY",
        get: |v| at(v, "/lastInventoryAt"),
    },
    Column {
        header: "LAST ERROR",
        get: |v| at(v, "/lastError"),
    },
];

/// One row per region of an inventory run.
const INVENTORY_RUN_COLUMNS: &[Column] = &[
    Column {
        header: "REGION",
        get: |v| at(v, "/region"),
    },
    Column {
        header: "PRESENT",
        get: |v| at(v, "/present"),
    },
    Column {
        header: "VANISHED",
        get: |v| at(v, "/vanished"),
    },
    Column {
        header: "ERROR",
        get: |v| at(v, "/error"),
    },
];

/// One row per resource found (entries of every region, the region added).
const INVENTORY_COLUMNS: &[Column] = &[
    Column {
        header: "REGION",
        get: |v| at(v, "/region"),
    },
    Column {
        header: "KIND",
        get: resource_kind,
    },
    Column {
        header: "ID",
        get: |v| {
            ["/identifier", "/name", "/volumeId"]
                .iter()
                .map(|p| at(v, p))
                .find(|s| !s.is_empty())
                .unwrap_or_default()
        },
    },
    Column {
        header: "STATUS",
        get: |v| {
            let status = at(v, "/status");
            if status.is_empty() { at(v, "/state") } else { status }
        },
    },
    Column {
        header: "ENGINE",
        get: |v| {
            let engine = at(v, "/engine");
            let version = if engine.is_empty() {
                at(v, "/version")
            } else {
                at(v, "/engineVersion")
            };
            match (engine.is_empty(), version.is_empty()) {
                (false, false) => format!("{engine} {version}"),
                (false, true) => engine,
                (true, _) => version,
            }
        },
    },
    Column {
        header: "VANISHED",
        get: |v| match v.get("vanishedAt").and_then(Value::as_str) {
            Some(at) => format!("vanished {at}"),
            None => String::new(),
        },
    },
];

/// The resource's kind as the inventory keys it: snapshots of clusters apart.
fn resource_kind(v: &Value) -> String {
    let kind = at(v, "/kind");
    if kind == "RDS_SNAPSHOT" && v.get("cluster").and_then(Value::as_bool) == Some(true) {
        return "RDS_CLUSTER_SNAPSHOT".to_owned();
    }
    kind
}

/// After a verification: exit 1 unless the role was assumed, with AWS's reason.
fn require_active(format: Format, account: &Value, sentence: String) -> Result<(), CliError> {
    let state = at(account, "/state");
    if state == "ACTIVE" {
        return done(format, account, sentence);
    }
    if let Some(out) = crate::output::machine(format, account)? {
        emit(&out);
    }
    let why = account
        .get("lastError")
        .and_then(Value::as_str)
        .unwrap_or("the role could not be assumed");
    Err(CliError::api(
        "cloud_account_disconnected",
        format!("cloud account {} is {state}: {why}", at(account, "/id")),
    ))
}

fn link_text(account: &Value) -> String {
    let id = at(account, "/id");
    let mut lines = vec![
        format!(
            "cloud account {} linked ({id}), {}",
            at(account, "/name"),
            at(account, "/state")
        ),
        format!("ExternalId: {}", at(account, "/externalId")),
    ];
    match account.get("quickCreateLink").and_then(Value::as_str) {
        Some(link) => {
            lines.push("create the role stack in that AWS account with this link (it reports the role back):".into());
            lines.push(format!("  {link}"));
            lines.push(format!(
                "or create the role yourself (cfn/) and run: arca cloud-accounts set-role {id} --role-arn <ARN>"
            ));
        }
        None => {
            lines.push("this deployment offers no quick-create link (no role stack template is published):".into());
            lines.push(format!(
                "create the role from cfn/ with that ExternalId, then run: arca cloud-accounts set-role {id} --role-arn <ARN>"
            ));
        }
    }
    lines.join("\n")
}

async fn cloud_accounts(g: &Global, cmd: CloudAccountsCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        CloudAccountsCmd::List => list_entities(g, &client, CLOUD_ACCOUNT).await?,
        CloudAccountsCmd::Get { account } => show_entity(g, &client, CLOUD_ACCOUNT, &account).await?,
        CloudAccountsCmd::Link {
            name,
            regions,
            description,
        } => {
            let body = json!({ "name": name, "description": description, "regions": regions });
            let account = client.post(CLOUD_ACCOUNT.path, &body).await?.body;
            done(g.output, &account, link_text(&account))?;
        }
        CloudAccountsCmd::SetRole { account, role_arn } => {
            let id = resolve(&client, CLOUD_ACCOUNT, &account).await?;
            let path = entity_path(CLOUD_ACCOUNT, &id);
            let tag = client
                .get(&path)
                .await?
                .etag
                .ok_or_else(|| CliError::other(format!("GET {path} returned no ETag")))?;
            let view = client
                .put(&format!("{path}/role"), &json!({ "roleArn": role_arn }), &tag)
                .await?
                .body;
            let sentence = format!(
                "cloud account {account}: role {role_arn} verified, ACTIVE (AWS account {})",
                at(&view, "/awsAccountId")
            );
            require_active(g.output, &view, sentence)?;
        }
        CloudAccountsCmd::Verify { account } => {
            let id = resolve(&client, CLOUD_ACCOUNT, &account).await?;
            let view = client
                .post(&format!("{}/verify", entity_path(CLOUD_ACCOUNT, &id)), &json!({}))
                .await?
                .body;
            require_active(g.output, &view, format!("cloud account {account}: ACTIVE"))?;
        }
        CloudAccountsCmd::Inventory { account, show, region } => {
            let id = resolve(&client, CLOUD_ACCOUNT, &account).await?;
            let path = format!("{}/inventory", entity_path(CLOUD_ACCOUNT, &id));
            if show {
                let query = region.map(|r| format!("?region={}", encode(&r))).unwrap_or_default();
                let found = client.get(&format!("{path}{query}")).await?.body;
                show_inventory(g.output, &found)?;
            } else {
                run_inventory(g.output, &client, &path).await?;
            }
        }
        CloudAccountsCmd::Update {
            account,
            name,
            regions,
            description,
        } => {
            update_entity(g, &client, CLOUD_ACCOUNT, &account, |b| {
                set(b, "name", name.map(Value::from));
                set(b, "regions", regions.map(|r| json!(r)));
                set(b, "description", description.map(Value::from));
            })
            .await?;
        }
        CloudAccountsCmd::Delete { account } => delete_entity(&client, CLOUD_ACCOUNT, &account, "").await?,
    }
    Ok(())
}

/// "Inventory now": every region is read inline, which takes a while on a real account.
async fn run_inventory(format: Format, client: &Client, path: &str) -> Result<(), CliError> {
    let spinner = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("inventorying every region");
        bar
    });
    let report = client.post(path, &json!({})).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let report = report?.body;
    let regions = report
        .get("regions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match crate::output::machine(format, &report)? {
        Some(out) => emit(&out),
        None => emit(&render_list(Format::Table, &regions, INVENTORY_RUN_COLUMNS)?),
    }
    // A rejected role stops the run (the account is now DISCONNECTED): a failure. A
    // region that could not be read is shown in its row; the others still count.
    match report.get("error").and_then(Value::as_str) {
        Some(error) => Err(CliError::api(
            "cloud_account_disconnected",
            format!("inventory of {} stopped: {error}", at(&report, "/cloudAccountId")),
        )),
        None => Ok(()),
    }
}

/// What the last inventory found: one row per resource (machine formats: the API's
/// per-region documents unchanged).
fn show_inventory(format: Format, found: &Value) -> Result<(), CliError> {
    if let Some(out) = crate::output::machine(format, found)? {
        emit(&out);
        return Ok(());
    }
    let mut rows = Vec::new();
    for region in found.as_array().map(Vec::as_slice).unwrap_or_default() {
        for entry in region
            .get("entries")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let mut row = entry.clone();
            if let Value::Object(m) = &mut row {
                m.insert("region".into(), region.get("region").cloned().unwrap_or(Value::Null));
            }
            rows.push(row);
        }
    }
    emit(&render_list(Format::Table, &rows, INVENTORY_COLUMNS)?);
    Ok(())
}

// ---- org, API keys --------------------------------------------------------------------

const API_KEY_COLUMNS: &[Column] = &[
    Column {
        header: "ID",
        get: |v| at(v, "/id"),
    },
    Column {
        header: "NAME",
        get: |v| at(v, "/name"),
    },
    Column {
        header: "ROLE",
        get: |v| at(v, "/role"),
    },
    Column {
        header: "SNIPPET",
        get: |v| at(v, "/snippet"),
    },
    Column {
        header: "CREATED",
        get: |v| at(v, "/createdAt"),
    },
];

async fn org(g: &Global, cmd: OrgCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        OrgCmd::Get => emit(&render_one(g.output, &client.get("/v1/org").await?.body)?),
        OrgCmd::Update {
            name,
            default_destination,
            no_default_destination,
        } => {
            let destination = reference(
                &client,
                DESTINATION,
                default_destination.as_deref(),
                no_default_destination,
            )
            .await?;
            let org = update_at(&client, "/v1/org", &["name", "defaultDestinationId"], |b| {
                set(b, "name", name.map(Value::from));
                set(b, "defaultDestinationId", destination);
            })
            .await?;
            done(g.output, &org, format!("org {} updated", at(&org, "/name")))?;
        }
    }
    Ok(())
}

async fn api_keys(g: &Global, cmd: ApiKeysCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        ApiKeysCmd::List => list_entities(g, &client, API_KEY).await?,
        ApiKeysCmd::Get { key } => show_entity(g, &client, API_KEY, &key).await?,
        ApiKeysCmd::Create {
            name,
            role,
            secret_file,
        } => {
            let created = client
                .post(API_KEY.path, &json!({ "name": name, "role": role.api() }))
                .await?
                .body;
            let secret = created
                .get("secret")
                .and_then(Value::as_str)
                .ok_or_else(|| CliError::other("the answer holds no secret"))?
                .to_owned();
            let id = at(&created, "/id");
            match secret_file {
                Some(file) => {
                    config::write_private(&file, secret.as_bytes())?;
                    // The document without its secret: the file has it.
                    let mut shown = created.clone();
                    if let Value::Object(m) = &mut shown {
                        m.remove("secret");
                    }
                    done(
                        g.output,
                        &shown,
                        format!(
                            "API key {name} ({id}, {}) created; its secret is in {} (mode 0600)",
                            role.api(),
                            file.display()
                        ),
                    )?;
                }
                // Asked for: the only time this secret can be seen.
                None => done(
                    g.output,
                    &created,
                    format!(
                        "API key {name} ({id}, {}) created\nsecret (shown once, keep it safe): {secret}",
                        role.api()
                    ),
                )?,
            }
        }
        ApiKeysCmd::Delete { key } => delete_entity(&client, API_KEY, &key, "").await?,
    }
    Ok(())
}

// ---- server -------------------------------------------------------------------------

async fn server(args: ServerArgs) -> Result<(), CliError> {
    arca_runtime::init_tracing();
    let mut options = crate::server::ServerOptions::new(args.data_dir.clone(), args.listen);
    options.retention_interval = Duration::from_secs(args.retention_interval_secs.max(1));
    options.inventory_interval = Duration::from_secs(args.inventory_interval_secs.max(1));
    let running = crate::server::start(options).await?;
    // The first line on stdout, so scripts (and tests) can learn a `:0` port.
    println!(
        "arca server listening on http://{} (data: {})",
        running.addr,
        args.data_dir.display()
    );
    let r = &running.recovered;
    println!(
        "recovered from the store: {} orgs, {} cluster queues, {} backup schedules synced, {} unfinished jobs re-queued, {} missed schedules catching up",
        r.orgs, r.queues, r.definitions, r.requeued_jobs, r.caught_up_schedules
    );
    shutdown_signal().await;
    println!("arca server stopping");
    running.stop().await?;
    Ok(())
}

/// Ctrl-C or SIGTERM (what `kill` and service managers send): both stop cleanly, so the
/// redb file is closed properly.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schedule_rows_parse_with_spaces_in_the_cron() {
        assert_eq!(
            parse_schedule("0 * * * *=7").unwrap(),
            json!({"cron": "0 * * * *", "retainDays": 7})
        );
        assert_eq!(
            parse_schedule("30 2 * * 1=30:4").unwrap(),
            json!({"cron": "30 2 * * 1", "retainDays": 30, "keepLast": 4})
        );
        for bad in ["0 * * * *", "=7", "0 * * * *=x", "0 * * * *=7:y"] {
            assert_eq!(parse_schedule(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn pairs_need_an_equals_sign() {
        assert_eq!(pairs("--labels", &["app=web".into()]).unwrap()["app"], "web");
        assert!(pairs("--labels", &["app".into()]).is_err());
    }
}
