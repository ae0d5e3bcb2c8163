//! Linked AWS accounts (link, role, verification, inventory, security findings) and the re-creation of
//! backed-up EKS clusters through them.

use serde_json::{Value, json};

use super::recovery::RECOVERY_POINT;
use super::{
    Kind, connect, delete_entity, done, emit, entity_path, interval, list_entities, poll_until, resolve, set,
    show_entity, spinner, update_entity,
};
use crate::CliError;
use crate::args::{CloudAccountsCmd, EksCmd, Global};
use crate::client::{Client, encode};
use crate::output::{Column, Format, at, render_list, text};

pub(super) const CLOUD_ACCOUNT: Kind = Kind {
    path: "/v1/cloud-accounts",
    prefix: "ca_",
    noun: "cloud account",
    named: true,
    columns: CLOUD_ACCOUNT_COLUMNS,
    body: &["name", "description", "regions"],
};
const EKS_RECREATION: Kind = Kind {
    path: "/v1/eks-recreations",
    prefix: "eksr_",
    noun: "EKS re-creation",
    named: false,
    columns: EKS_RECREATION_COLUMNS,
    body: &[],
};

const EKS_RECREATION_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("NAME", "/name"),
    Column::at("REGION", "/region"),
    Column::at("STATE", "/state"),
    Column::at("RECOVERY POINT", "/recoveryPointId"),
    Column::at("CLUSTER", "/clusterId"),
    Column::at("CREATED", "/createdAt"),
    Column::at("ERROR", "/error"),
];

const CLOUD_ACCOUNT_COLUMNS: &[Column] = &[
    Column::at("ID", "/id"),
    Column::at("NAME", "/name"),
    Column::at("STATE", "/state"),
    Column::at("AWS ACCOUNT", "/awsAccountId"),
    Column::with("REGIONS", |v| {
        v.get("regions")
            .and_then(Value::as_array)
            .map(|r| r.iter().map(text).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    }),
    Column::at("LAST INVENTORY", "/lastInventoryAt"),
    Column::at("LAST ERROR", "/lastError"),
];

/// One row per region of an inventory run.
const INVENTORY_RUN_COLUMNS: &[Column] = &[
    Column::at("REGION", "/region"),
    Column::at("PRESENT", "/present"),
    Column::at("VANISHED", "/vanished"),
    Column::at("ERROR", "/error"),
];

/// One row per resource found (entries of every region, the region added).
const INVENTORY_COLUMNS: &[Column] = &[
    Column::at("REGION", "/region"),
    Column::with("KIND", resource_kind),
    Column::with("ID", |v| {
        ["/identifier", "/name", "/volumeId"]
            .iter()
            .map(|p| at(v, p))
            .find(|s| !s.is_empty())
            .unwrap_or_default()
    }),
    Column::with("STATUS", |v| {
        let status = at(v, "/status");
        if status.is_empty() { at(v, "/state") } else { status }
    }),
    Column::with("ENGINE", |v| {
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
    }),
    Column::with("VANISHED", |v| match v.get("vanishedAt").and_then(Value::as_str) {
        Some(at) => format!("vanished {at}"),
        None => String::new(),
    }),
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

pub(super) async fn cloud_accounts(g: &Global, cmd: CloudAccountsCmd) -> Result<(), CliError> {
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
        CloudAccountsCmd::Findings {
            account,
            severity,
            state,
        } => {
            let id = resolve(&client, CLOUD_ACCOUNT, &account).await?;
            let mut query = Vec::new();
            if let Some(s) = severity {
                query.push(format!("severity={}", s.to_ascii_uppercase()));
            }
            if !state.eq_ignore_ascii_case("all") {
                query.push(format!("state={}", state.to_ascii_uppercase()));
            }
            let path = format!("{}/findings?{}", entity_path(CLOUD_ACCOUNT, &id), query.join("&"));
            show_findings(g.output, &client, &path).await?;
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
                Ok(())
            })
            .await?;
        }
        CloudAccountsCmd::Delete { account } => delete_entity(&client, CLOUD_ACCOUNT, &account, "").await?,
    }
    Ok(())
}

/// One row per finding, worst first.
const FINDING_COLUMNS: &[Column] = &[
    Column::at("SEVERITY", "/severity"),
    Column::at("RULE", "/ruleId"),
    Column::at("RESOURCE", "/resourceArn"),
    Column::at("REGION", "/region"),
    Column::at("STATE", "/state"),
    Column::at("DETAIL", "/detail"),
    Column::at("LAST SEEN", "/lastSeenAt"),
];

fn severity_rank(v: &Value) -> u8 {
    match at(v, "/severity").as_str() {
        "CRITICAL" => 0,
        "HIGH" => 1,
        "MEDIUM" => 2,
        _ => 3,
    }
}

/// The findings (every page) and the last scan; machine formats get both as one document.
async fn show_findings(format: Format, client: &Client, path: &str) -> Result<(), CliError> {
    let mut items = client.list_all(path).await?;
    items.sort_by_key(|v| (severity_rank(v), at(v, "/ruleId"), at(v, "/resourceArn")));
    let sep = if path.ends_with('?') { "" } else { "&" };
    let last_scan = client
        .get(&format!("{path}{sep}limit=1"))
        .await?
        .body
        .get("lastScan")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(out) = crate::output::machine(format, &json!({ "items": items, "lastScan": last_scan }))? {
        emit(&out);
        return Ok(());
    }
    if items.is_empty() {
        emit("no findings");
    } else {
        emit(&render_list(Format::Table, &items, FINDING_COLUMNS)?);
        for f in &items {
            emit(&format!(
                "{} {}: {}",
                at(f, "/ruleId"),
                at(f, "/resourceArn"),
                at(f, "/remediation")
            ));
        }
    }
    emit(&scan_text(&last_scan));
    Ok(())
}

/// The last scan in a few lines: when, open counts, what could not be evaluated.
fn scan_text(scan: &Value) -> String {
    if scan.is_null() {
        return "not scanned yet (scans run with every inventory: arca cloud-accounts inventory <account>)".into();
    }
    if let Some(why) = scan.get("skipped").and_then(Value::as_str) {
        return format!("last scan {}: skipped: {why}", at(scan, "/scannedAt"));
    }
    let mut lines = vec![format!(
        "last scan {}: open {} critical, {} high, {} medium, {} low",
        at(scan, "/scannedAt"),
        at(scan, "/open/critical"),
        at(scan, "/open/high"),
        at(scan, "/open/medium"),
        at(scan, "/open/low"),
    )];
    for region in scan.get("regions").and_then(Value::as_array).into_iter().flatten() {
        for n in region
            .get("notEvaluated")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            lines.push(format!(
                "  not evaluated in {}: {}: {}",
                at(region, "/region"),
                at(n, "/ruleId"),
                at(n, "/reason")
            ));
        }
    }
    lines.join("\n")
}

/// "Inventory now": every region is read inline, which takes a while on a real account.
async fn run_inventory(format: Format, client: &Client, path: &str) -> Result<(), CliError> {
    let bar = spinner("", "inventorying every region");
    let report = client.post(path, &json!({})).await;
    if let Some(s) = bar {
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
        None => {
            emit(&render_list(Format::Table, &regions, INVENTORY_RUN_COLUMNS)?);
            if let Some(scan) = report.get("scan") {
                let not_evaluated: usize = scan
                    .get("regions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.get("notEvaluated").and_then(Value::as_array))
                    .map(Vec::len)
                    .sum();
                emit(&format!(
                    "security scan: {} opened, {} resolved; {} check(s) not evaluated; see arca cloud-accounts findings {}",
                    at(scan, "/opened"),
                    at(scan, "/resolved"),
                    not_evaluated,
                    at(&report, "/cloudAccountId")
                ));
            }
            if let Some(e) = report.get("scanError").and_then(Value::as_str) {
                emit(&format!("security scan failed: {e}"));
            }
        }
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

// ---- EKS re-creation ----------------------------------------------------------------

pub(super) async fn eks(g: &Global, cmd: EksCmd) -> Result<(), CliError> {
    let client = connect(g)?;
    match cmd {
        EksCmd::Recreate {
            recovery_point,
            name,
            wait,
            interval: every,
            install_agent,
            install,
        } => {
            if every.is_some() && !wait && !install_agent {
                return Err(CliError::usage("--interval needs --wait or --install-agent"));
            }
            let every = interval("--interval", every.unwrap_or(DEFAULT_EVERY))?;
            let path = format!("{}/recreate-eks", entity_path(RECOVERY_POINT, &recovery_point));
            let started = client.post(&path, &json!({ "name": name })).await?.body;
            if install_agent {
                let id = at(&started, "/id");
                eprintln!("{}", recreation_text(&started));
                let path = entity_path(EKS_RECREATION, &id);
                return super::eks_agent::install_agent(g, &client, &path, every, wait, &install).await;
            }
            if wait {
                let id = at(&started, "/id");
                let ended = poll_until(
                    &client,
                    &entity_path(EKS_RECREATION, &id),
                    &format!("EKS re-creation {id}"),
                    every,
                    |r| at(r, "/state") != "CREATING_CLUSTER",
                    |r| at(r, "/state"),
                )
                .await?;
                return recreation_outcome(g.output, &ended);
            }
            done(g.output, &started, recreation_text(&started))?;
        }
        EksCmd::List => list_entities(g, &client, EKS_RECREATION).await?,
        EksCmd::Get { recreation } => {
            let r = client.get(&entity_path(EKS_RECREATION, &recreation)).await?.body;
            recreation_outcome(g.output, &r)?;
        }
        EksCmd::InstallAgent {
            recreation,
            wait,
            interval: every,
            install,
        } => {
            let every = interval("--interval", every)?;
            let path = entity_path(EKS_RECREATION, &recreation);
            super::eks_agent::install_agent(g, &client, &path, every, wait, &install).await?;
        }
    }
    Ok(())
}

/// Seconds between checks of a re-creation, unless --interval says otherwise.
const DEFAULT_EVERY: f64 = 15.0;

/// What a re-creation is at, and what to do next.
fn recreation_text(r: &Value) -> String {
    let mut lines = vec![format!(
        "EKS re-creation {} of recovery point {}: cluster {} in {}, {}",
        at(r, "/id"),
        at(r, "/recoveryPointId"),
        at(r, "/name"),
        at(r, "/region"),
        at(r, "/state")
    )];
    for (label, pointer) in [
        ("Arca cluster", "/clusterId"),
        ("restore", "/restoreId"),
        ("Kubernetes API", "/access/endpoint"),
        ("error", "/error"),
    ] {
        let value = at(r, pointer);
        if !value.is_empty() {
            lines.push(format!("{label}: {value}"));
        }
    }
    let next = at(r, "/nextStep");
    if !next.is_empty() {
        lines.push(format!("next: {next}"));
    }
    lines.join("\n")
}

/// Prints a re-creation; exits 1 when it FAILED.
fn recreation_outcome(format: Format, r: &Value) -> Result<(), CliError> {
    if at(r, "/state") != "FAILED" {
        return done(format, r, recreation_text(r));
    }
    if let Some(out) = crate::output::machine(format, r)? {
        emit(&out);
    }
    Err(CliError::api(
        "eks_recreation_failed",
        format!("EKS re-creation {} failed: {}", at(r, "/id"), at(r, "/error")),
    ))
}
