//! Sign-up and log-in: the key goes to the config file (0600), never to the terminal
//! unless asked for.

use serde_json::{Value, json};

use super::{emit, settings};
use crate::CliError;
use crate::args::{Global, LoginArgs, SignupArgs};
use crate::client::Client;
use crate::config::{self, FileConfig};
use crate::output::at;

pub(super) async fn signup(g: &Global, args: SignupArgs) -> Result<(), CliError> {
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
    let path = save_key(g, &client, secret)?;
    emit(&format!(
        "org {org} created; its admin key is saved in {}",
        path.display()
    ));
    Ok(())
}

pub(super) async fn login(g: &Global, args: LoginArgs) -> Result<(), CliError> {
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
    let path = save_key(g, &client, key)?;
    emit(&format!(
        "logged in to {} as org {} ({}); saved in {}",
        client.base(),
        at(&org, "/name"),
        at(&org, "/id"),
        path.display()
    ));
    Ok(())
}

/// Saves `client`'s API URL and `key` in the config file (0600); its path.
fn save_key(g: &Global, client: &Client, key: String) -> Result<std::path::PathBuf, CliError> {
    let path = config::path(g.config.as_deref())?;
    config::save(
        &path,
        &FileConfig {
            api_url: Some(client.base().to_owned()),
            api_key: Some(key),
        },
    )?;
    Ok(path)
}
