//! What each command does: a few API calls and one rendering. One module per area; the
//! shape every entity shares (resolve a name, list, get, update with the ETag read,
//! delete, run an action, follow a job) lives here once, driven by a [`Kind`].

mod account;
mod alerts;
mod audit;
mod backups;
mod cloud;
mod clusters;
mod destinations;
mod eks_agent;
mod jobs;
mod org;
mod policies;
mod rds;
mod recovery;
mod serve;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::CliError;
use crate::args::{Cli, Command, Global};
use crate::client::{Client, encode};
use crate::config;
use crate::output::{Column, Format, render_list, render_one};

pub use policies::parse_schedule;

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let g = &cli.global;
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "arca", &mut std::io::stdout());
            Ok(())
        }
        Command::Server(args) => serve::server(args).await,
        Command::Signup(args) => account::signup(g, args).await,
        Command::Login(args) => account::login(g, args).await,
        Command::Clusters(c) => clusters::clusters(g, c).await,
        Command::Policies(c) => policies::policies(g, c).await,
        Command::Backups(c) => backups::backups(g, c).await,
        Command::Jobs(c) => jobs::jobs(g, c).await,
        Command::RecoveryPoints(c) => recovery::recovery_points(g, c).await,
        Command::Restores(c) => recovery::restores(g, c).await,
        Command::Destinations(c) => destinations::destinations(g, c).await,
        Command::CloudAccounts(c) => cloud::cloud_accounts(g, c).await,
        Command::Rds(c) => rds::rds(g, c).await,
        Command::Eks(c) => cloud::eks(g, c).await,
        Command::Org(c) => org::org(g, c).await,
        Command::ApiKeys(c) => org::api_keys(g, c).await,
        Command::Operator(c) => org::operator(g, c).await,
        Command::Audit(c) => audit::audit(g, c).await,
        Command::Alerts(c) => alerts::alerts(g, c).await,
    }
}

/// A kind of resource the CLI names: where it is listed, its id prefix, the columns of
/// its listing and the members its `PUT` body takes (the rest of a read is computed by
/// the API, and the bodies refuse unknown members).
#[derive(Clone, Copy)]
pub(crate) struct Kind {
    pub path: &'static str,
    pub prefix: &'static str,
    pub noun: &'static str,
    /// Whether the API gives it a `name` to find it by (else the argument is its id).
    pub named: bool,
    pub columns: &'static [Column],
    pub body: &'static [&'static str],
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
    if arg.starts_with(kind.prefix) || !kind.named {
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

/// An optional name-or-id flag as an id.
async fn resolve_opt(client: &Client, kind: Kind, arg: Option<&str>) -> Result<Option<String>, CliError> {
    match arg {
        Some(a) => Ok(Some(resolve(client, kind, a).await?)),
        None => Ok(None),
    }
}

// ---- the shape every entity shares: list, get, update, delete, actions ------------

fn entity_path(kind: Kind, id: &str) -> String {
    format!("{}/{id}", kind.path)
}

/// `path` with the query terms that are given (values encoded).
fn with_query(path: &str, terms: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = terms
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// `arca <kind> list`: every page of `path` (the kind's, maybe filtered), in its columns.
async fn list_at(g: &Global, client: &Client, kind: Kind, path: &str) -> Result<(), CliError> {
    emit(&render_list(g.output, &client.list_all(path).await?, kind.columns)?);
    Ok(())
}

/// `arca <kind> list`: every page, in the kind's columns.
async fn list_entities(g: &Global, client: &Client, kind: Kind) -> Result<(), CliError> {
    list_at(g, client, kind, kind.path).await
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

/// `arca <kind> pause|resume NAME|ID`: `POST <path>/<id>/<action>`, the entity answered.
async fn entity_action(
    g: &Global,
    client: &Client,
    kind: Kind,
    arg: &str,
    action: &str,
    past: &str,
) -> Result<(), CliError> {
    let id = resolve(client, kind, arg).await?;
    let view = client
        .post(&format!("{}/{action}", entity_path(kind, &id)), &json!({}))
        .await?
        .body;
    done(g.output, &view, format!("{} {arg} {past}", kind.noun))
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
/// `edit` may refuse (a usage error seen only against the current document).
async fn update_at(
    client: &Client,
    path: &str,
    members: &[&str],
    edit: impl FnOnce(&mut Map<String, Value>) -> Result<(), CliError>,
) -> Result<Value, CliError> {
    let current = client.get(path).await?;
    let tag = current
        .etag
        .ok_or_else(|| CliError::other(format!("GET {path} returned no ETag")))?;
    let mut body = body_of(&current.body, members);
    edit(&mut body)?;
    Ok(client.put(path, &Value::Object(body), &tag).await?.body)
}

/// `arca <kind> update NAME|ID ...`: prints a sentence, or the updated document.
async fn update_entity(
    g: &Global,
    client: &Client,
    kind: Kind,
    arg: &str,
    edit: impl FnOnce(&mut Map<String, Value>) -> Result<(), CliError>,
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

/// Edits the object at `member`, made (or replacing a `null`) when absent.
fn edit_object(body: &mut Map<String, Value>, member: &str, edit: impl FnOnce(&mut Map<String, Value>)) {
    let mut object = match body.remove(member) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    edit(&mut object);
    body.insert(member.to_owned(), Value::Object(object));
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
    items.iter().map(|item| pair(flag, item)).collect()
}

/// One `k=v`.
fn pair(flag: &str, item: &str) -> Result<(String, String), CliError> {
    match item.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(CliError::usage(format!("{flag} takes KEY=VALUE, not {item:?}"))),
    }
}

/// A file flag's JSON array (`--hooks FILE`), as the API takes it (the API checks each
/// field and names it).
fn json_array_file(flag: &str, path: &std::path::Path) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("{flag}: cannot read {}: {e}", path.display())))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(array @ Value::Array(_)) => Ok(array),
        Ok(_) => Err(CliError::usage(format!(
            "{flag}: {} must hold a JSON array",
            path.display()
        ))),
        Err(e) => Err(CliError::usage(format!("{flag}: {} is not JSON: {e}", path.display()))),
    }
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

/// A positive number of seconds, from a flag.
fn interval(flag: &str, seconds: f64) -> Result<Duration, CliError> {
    if seconds.is_finite() && seconds > 0.0 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(CliError::usage(format!("{flag} must be a positive number of seconds")))
    }
}

/// A spinner on stderr when it is a terminal (logs and pipes get no control characters).
fn spinner(prefix: &str, message: &str) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_prefix(prefix.to_owned());
        bar.set_message(message.to_owned());
        bar
    })
}

/// Reads `path` every `every` until `finished` says so, and answers the last read. The
/// spinner shows `describe` of each read; without a terminal, one stderr line per change.
async fn poll_until(
    client: &Client,
    path: &str,
    label: &str,
    every: Duration,
    finished: impl Fn(&Value) -> bool,
    describe: impl Fn(&Value) -> String,
) -> Result<Value, CliError> {
    let bar = spinner(label, "");
    let mut last = String::new();
    let doc = loop {
        let doc = client.get(path).await?.body;
        let now = describe(&doc);
        match &bar {
            Some(b) => b.set_message(now.clone()),
            None if now != last => eprintln!("{label}: {now}"),
            None => {}
        }
        if finished(&doc) {
            break doc;
        }
        last = now;
        tokio::time::sleep(every).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn array_files_must_hold_a_json_array() {
        let dir = tempfile::tempdir().unwrap();
        let file = |text: &str| {
            let path = dir.path().join("f.json");
            std::fs::write(&path, text).unwrap();
            json_array_file("--hooks", &path)
        };
        assert_eq!(file(r#"[{"name": "a"}]"#).unwrap()[0]["name"], "a");
        for (text, says) in [("{}", "must hold a JSON array"), ("[", "is not JSON")] {
            match file(text) {
                Err(CliError::Usage(m)) => assert!(m.starts_with("--hooks: ") && m.contains(says), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        let missing = json_array_file("--hooks", &dir.path().join("nope.json"));
        assert!(matches!(missing, Err(CliError::Usage(m)) if m.contains("cannot read")));
    }

    #[test]
    fn pairs_need_an_equals_sign() {
        assert_eq!(pairs("--labels", &["app=web".into()]).unwrap()["app"], "web");
        assert!(pairs("--labels", &["app".into()]).is_err());
    }

    #[test]
    fn queries_hold_only_what_is_given() {
        assert_eq!(with_query("/v1/jobs", &[("a", None)]), "/v1/jobs");
        assert_eq!(
            with_query(
                "/v1/jobs",
                &[("a", Some("x y".into())), ("b", None), ("c", Some("1".into()))]
            ),
            "/v1/jobs?a=x%20y&c=1"
        );
    }
}
