//! The org (its name, default destination) and its API keys.

use serde_json::{Value, json};

use super::destinations::DESTINATION;
use super::{Kind, connect, delete_entity, done, emit, list_entities, reference, set, show_entity, update_at};
use crate::CliError;
use crate::args::{ApiKeysCmd, Global, OperatorCmd, OrgCmd};
use crate::config;
use crate::output::{Column, at, render_one};

pub(super) const API_KEY: Kind = Kind {
    path: "/v1/apikeys",
    prefix: "key_",
    noun: "API key",
    named: true,
    columns: API_KEY_COLUMNS,
    body: &[],
};

const API_KEY_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("NAME", "/name"),
    Column::at("ROLE", "/role"),
    Column::at("SNIPPET", "/snippet"),
    Column::at("CREATED", "/createdAt"),
];

pub(super) async fn org(g: &Global, cmd: OrgCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        OrgCmd::Get => emit(&render_one(g.output, &client.get("/v1/org").await?.body)?),
        OrgCmd::Update {
            name,
            default_destination,
            no_default_destination,
            audit_retention_days,
        } => {
            let destination = reference(
                &client,
                DESTINATION,
                default_destination.as_deref(),
                no_default_destination,
            )
            .await?;
            let org = update_at(
                &client,
                "/v1/org",
                &["name", "defaultDestinationId", "auditRetentionDays"],
                |b| {
                    set(b, "name", name.map(Value::from));
                    set(b, "defaultDestinationId", destination);
                    set(b, "auditRetentionDays", audit_retention_days.map(Value::from));
                    Ok(())
                },
            )
            .await?;
            done(g.output, &org, format!("org {} updated", at(&org, "/name")))?;
        }
    }
    Ok(())
}

pub(super) async fn api_keys(g: &Global, cmd: ApiKeysCmd) -> Result<(), CliError> {
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

/// The deployment operator's commands: authenticated by the operator token, never by the
/// saved API key.
pub(super) async fn operator(g: &Global, cmd: OperatorCmd) -> Result<(), CliError> {
    match cmd {
        OperatorCmd::SetPlan {
            org,
            plan,
            operator_token,
        } => {
            let token = operator_token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                CliError::api(
                    "no_operator_token",
                    "no operator token: set ARCA_OPERATOR_TOKEN (the token whose SHA-256 the deployment has)",
                )
            })?;
            let (url, _) = super::settings(g)?;
            let client = crate::client::Client::new(&url, Some(token))?;
            let path = format!("/v1/operator/orgs/{org}/plan");
            let updated = client
                .call(reqwest::Method::PUT, &path, Some(&json!({ "plan": plan })), None)
                .await?
                .body;
            done(
                g.output,
                &updated,
                format!("org {} ({org}) is on the {plan} plan", at(&updated, "/name")),
            )
        }
    }
}
