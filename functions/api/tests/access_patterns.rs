//! Issue #23: the reads one API request costs must not grow with the org's size.
//!
//! Every request runs over an item store that records each operation
//! (`arca_core::testing::recording`), once in an org of a small size and once in the same
//! org shape at a large size (5× the clusters, 60× the recovery points, …). The items a
//! request reads at both sizes are compared against the cost its row in
//! docs/data-model.md ("Access patterns") gives, read from the document at run time:
//!
//! - `1`, `page` or any other cost that does not say **whole org** / **cross-tenant**: the
//!   request reads at most [`SLACK`] items more at the large size than at the small one
//!   (the test keeps the quantities such a cost names, like one account's regions or one
//!   policy's referrers, the same at both sizes).
//! - **whole org** / **cross-tenant**: allowed to grow; printed.
//!
//! A route the test calls that no row names fails, and so does a row whose cost does not
//! grow while the route's reads do: the docs and the code cannot drift apart. Run with
//! `--nocapture` for the table of route, documented cost and reads at both sizes.
//!
//! The second test runs the background sweeps at both sizes with only a few items due at
//! either, against bounds stated here next to their docs rows; a sweep that exceeds its
//! bound fails unless it is listed in [`KNOWN_WHOLE_ORG`].

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use arca_core::ids::{BackupDefinitionId, ClusterId, DestinationId, JobId, OrgId, RecoveryPointId};
use arca_core::model::archive_key::{ArchiveKeyring, ArchiveMasterKey};
use arca_core::model::plan::PlanLimits;
use arca_core::model::recovery::{RecoveryPoint, RecoveryPointLocation};
use arca_core::model::secret::Secret;
use arca_core::testing::recording::{Recording, RecordingItemStore};
use axum::http::Method;
use chrono::{DateTime, Utc};
use common::{Api, Reply, Tenant};
use serde_json::{Value, json};

/// How many items more a request whose documented cost does not grow may read at the
/// large size than at the small one.
const SLACK: usize = 10;

/// Background sweeps that read more than their stated bound today (they read whole
/// partitions); the list shrinks as they are fixed. A sweep listed here may grow, one not
/// listed must stay within its bound.
const KNOWN_WHOLE_ORG: &[&str] = &[
    // Empty against the working tree of 2026-12-07. At 45b5c2b the "retention sweep"
    // (all `RP#` of every org with an expired point, for keepLast siblings) and the "RDS
    // retention sweep" (all `RDSRP#` likewise) exceeded their bounds and belonged here.
];

// --- the docs table ----------------------------------------------------------------------

/// One row of an "Access patterns" table.
#[derive(Clone, Debug)]
struct DocRow {
    table: String,
    line: usize,
    operation: String,
    /// (METHOD, path template) the operation cell names, each with the index of its cost
    /// in `costs`.
    routes: Vec<(String, String, usize)>,
    /// The cost cell split on ` / ` (one per route group, the last one for the rest).
    costs: Vec<String>,
}

fn docs() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/data-model.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The rows of the tables under "## Access patterns".
fn doc_rows(text: &str) -> Vec<DocRow> {
    let mut rows = Vec::new();
    let mut in_section = false;
    let mut table = String::new();
    let mut base = String::new();
    let mut method = String::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(heading) = line.strip_prefix("## ") {
            in_section = heading.trim() == "Access patterns";
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            table = heading.trim().to_owned();
            continue;
        }
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<String> = line
            .replace("\\|", "\u{1}")
            .split('|')
            .map(|c| c.trim().replace('\u{1}', "|"))
            .collect();
        // "| a | b | c | d |" splits into ["", a, b, c, d, ""].
        if cells.len() < 6 || cells[1] == "Operation" || cells[1].starts_with("---") {
            continue;
        }
        let operation = cells[1].clone();
        let costs = cells[4].split(" / ").map(str::to_owned).collect();
        let routes = routes_named(&operation, &mut base, &mut method);
        rows.push(DocRow {
            table: table.clone(),
            line: n + 1,
            operation,
            routes,
            costs,
        });
    }
    assert!(rows.len() > 40, "no Access patterns tables found in docs/data-model.md");
    rows
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// The routes an operation cell names. Its code spans are routes (`GET /v1/clusters`),
/// methods of the collection named last (`POST`), methods sharing the next span's path
/// (`` `GET`/`PUT /{id}` ``), paths relative to the last absolute one (`/{id}`,
/// `/resume`, `…/rotate-token`, `…/{id}/aws`, `…/purge/complete`: after its last `{param}`,
/// overlapping segments merged) and optional parts (`/v1/rds-backups[/{id}]`); a span
/// without a method takes the last method. Other spans (`arca server`) are not routes.
/// `base` and `method` carry over from row to row (`PUT …/{id}/role` after the
/// cloud-accounts row).
fn routes_named(cell: &str, base: &mut String, method: &mut String) -> Vec<(String, String, usize)> {
    let parts: Vec<&str> = cell.split('`').collect();
    let mut routes = Vec::new();
    let mut group = 0;
    let mut pending: Vec<String> = Vec::new();
    // Odd parts are code spans; even ones the text between them.
    for i in (1..parts.len()).step_by(2) {
        let span = parts[i].trim();
        let mut words = span.split_whitespace().peekable();
        let mut methods = Vec::new();
        while let Some(w) = words.peek() {
            if METHODS.contains(w) {
                methods.push((*w).to_owned());
                words.next();
            } else {
                break;
            }
        }
        let path = words.collect::<Vec<_>>().join(" ");
        let is_path = path.starts_with('/') || path.starts_with("…/");
        if methods.is_empty() && !is_path {
            pending.clear();
            continue;
        }
        if !path.is_empty() && !is_path {
            continue;
        }
        let shares_next = parts.get(i + 1).is_some_and(|between| between.trim() == "/");
        if path.is_empty() && shares_next {
            pending.extend(methods);
            continue;
        }
        let mut methods = std::mem::take(&mut pending)
            .into_iter()
            .chain(methods)
            .collect::<Vec<_>>();
        if methods.is_empty() {
            methods.push(method.clone());
        }
        *method = methods.last().cloned().unwrap_or_default();
        let paths: Vec<String> = if path.is_empty() {
            vec![base.clone()]
        } else {
            let (without, with) = optional_parts(&path);
            let mut resolved = Vec::new();
            for p in [without, with].into_iter().flatten() {
                if p.starts_with("/v1/") {
                    resolved.push(p);
                } else {
                    resolved.push(relative(base, p.trim_start_matches('…')));
                }
            }
            if path.starts_with("/v1/") {
                *base = resolved[0].clone();
            }
            resolved
        };
        for m in &methods {
            for p in &paths {
                routes.push((m.clone(), p.clone(), group));
            }
        }
        group += 1;
    }
    routes
}

/// `/v1/rds-backups[/{id}]` -> (`/v1/rds-backups`, `/v1/rds-backups/{id}`).
fn optional_parts(path: &str) -> (Option<String>, Option<String>) {
    match (path.find('['), path.find(']')) {
        (Some(open), Some(close)) if open < close => (
            Some(format!("{}{}", &path[..open], &path[close + 1..])),
            Some(format!(
                "{}{}{}",
                &path[..open],
                &path[open + 1..close],
                &path[close + 1..]
            )),
        ),
        _ => (Some(path.to_owned()), None),
    }
}

/// `rel` (`/x/y`) after `base`'s last `{param}` segment (or all of `base`), the segments
/// they share merged: `/v1/recoverypoints/{id}` + `/{id}/aws` = `/v1/recoverypoints/{id}/aws`.
fn relative(base: &str, rel: &str) -> String {
    let mut b: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(last_param) = b.iter().rposition(|s| s.starts_with('{')) {
        b.truncate(last_param + 1);
    }
    let r: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    let overlap = (0..=r.len().min(b.len()))
        .rev()
        .find(|&k| b[b.len() - k..] == r[..k])
        .unwrap_or(0);
    let mut all = b;
    all.extend_from_slice(&r[overlap..]);
    format!("/{}", all.join("/"))
}

/// One clause of a cost: `1`, `admin key: **whole org: N(API keys)**`.
fn clauses(cost: &str) -> Vec<(Option<String>, String)> {
    cost.split("; ")
        .map(|clause| match clause.split_once(": ") {
            Some((condition, rest)) if !grows(condition) => (Some(condition.to_owned()), rest.to_owned()),
            _ => (None, clause.to_owned()),
        })
        .collect()
}

/// A documented cost that may grow with the org (or with every org).
fn grows(cost: &str) -> bool {
    cost.contains("whole org") || cost.contains("cross-tenant")
}

/// What the docs say a call of `method template` (in the situation `case`, a phrase of
/// one of the cost's clauses, such as "without `confirm`") costs: the clauses that apply,
/// one per row naming the route, and the rows; an error naming the route when no row
/// names it or none gives a cost for this case.
fn documented_cost<'a>(
    rows: &'a [DocRow],
    method: &str,
    template: &str,
    case: Option<&str>,
) -> Result<(Vec<String>, Vec<&'a DocRow>), String> {
    let naming: Vec<&DocRow> = rows
        .iter()
        .filter(|r| r.routes.iter().any(|(m, p, _)| m == method && p == template))
        .collect();
    if naming.is_empty() {
        return Err(format!(
            "{method} {template} is called by this test but no row of docs/data-model.md's \
             \"Access patterns\" tables names it"
        ));
    }
    let mut costs = Vec::new();
    for row in &naming {
        let group = row
            .routes
            .iter()
            .find(|(m, p, _)| m == method && p == template)
            .map(|r| r.2)
            .unwrap_or(0);
        let cost = &row.costs[group.min(row.costs.len() - 1)];
        let clauses = clauses(cost);
        let matching = case.and_then(|case| {
            clauses
                .iter()
                .find(|(c, text)| c.as_deref().is_some_and(|c| c.contains(case)) || text.contains(case))
        });
        let chosen = matching.or_else(|| clauses.iter().find(|(c, _)| c.is_none()));
        match chosen {
            Some((Some(condition), text)) => costs.push(format!("{condition}: {text}")),
            Some((None, text)) => costs.push(text.clone()),
            None => {
                return Err(format!(
                    "{method} {template}{}: docs/data-model.md line {} (`{}`) gives a cost only under \
                     conditions ({cost}), none of which is this call's",
                    case.map(|c| format!(" ({c})")).unwrap_or_default(),
                    row.line,
                    row.operation
                ));
            }
        }
    }
    Ok((costs, naming))
}

#[test]
fn the_docs_tables_name_routes_as_this_test_reads_them() {
    let rows = doc_rows(&docs());
    let named = |m: &str, p: &str| {
        rows.iter()
            .any(|r| r.routes.iter().any(|(rm, rp, _)| rm == m && rp == p))
    };
    for (m, p) in [
        ("GET", "/v1/destinations"),
        ("POST", "/v1/destinations"),
        ("GET", "/v1/destinations/{id}"),
        ("PUT", "/v1/cloud-accounts/{id}"),
        ("PUT", "/v1/cloud-accounts/{id}/role"),
        ("GET", "/v1/recoverypoints/{id}/aws"),
        ("POST", "/v1/backups/{id}/resume"),
        ("POST", "/v1/clusters/{id}/rotate-archive-key"),
        ("POST", "/v1/destinations/{id}/repositories/{clusterId}/purge/complete"),
        ("DELETE", "/v1/rds-backups/{id}"),
        ("POST", "/v1/rds-backups"),
        ("POST", "/v1/agent/jobs/{id}/progress"),
        ("POST", "/v1/agent/jobs/{id}/complete"),
    ] {
        assert!(named(m, p), "{m} {p} not read from the docs");
    }
    assert_eq!(
        relative(
            "/v1/destinations/{id}/repositories/{clusterId}/purge",
            "/purge/complete"
        ),
        "/v1/destinations/{id}/repositories/{clusterId}/purge/complete"
    );
    assert_eq!(
        clauses("1; admin key: **whole org: N(API keys)** (≤ 10)"),
        vec![
            (None, "1".to_owned()),
            (
                Some("admin key".to_owned()),
                "**whole org: N(API keys)** (≤ 10)".to_owned()
            )
        ]
    );
}

// --- sizes and seeding -------------------------------------------------------------------

/// The org shape, at one size.
#[derive(Clone, Copy, Debug)]
struct Size {
    name: &'static str,
    clusters: usize,
    points: usize,
    /// Backup runs (PENDING jobs), one per cluster from the third on.
    runs: usize,
    restores: usize,
    policies: usize,
    destinations: usize,
    /// Viewer keys besides the admin key (the free plan allows 10 keys in all).
    api_keys: usize,
    accounts: usize,
    rds_backups: usize,
    rds_points: usize,
    eks: usize,
}

const SMALL: Size = Size {
    name: "small",
    // More than the 20 referrers a refusal names, so a capped read is the same at both sizes.
    clusters: 25,
    points: 5,
    runs: 3,
    restores: 2,
    policies: 2,
    destinations: 2,
    api_keys: 2,
    accounts: 2,
    rds_backups: 2,
    rds_points: 3,
    eks: 2,
};

const LARGE: Size = Size {
    name: "large",
    clusters: 120,
    points: 300,
    runs: 100,
    restores: 30,
    policies: 40,
    destinations: 40,
    api_keys: 7,
    accounts: 20,
    rds_backups: 20,
    rds_points: 100,
    eks: 30,
};

/// The deployment operator's token (`PUT /v1/operator/orgs/{id}/plan`).
const OPERATOR: &str = "arca-operator-access-patterns";

/// `PUT /v1/operator/orgs/{org}/plan`.
async fn set_plan(api: &Api, org: &str, plan: &str) -> Reply {
    api.request(
        Method::PUT,
        &format!("/v1/operator/orgs/{org}/plan"),
        Some(OPERATOR),
        None,
        Some(json!({ "plan": plan })),
    )
    .await
}

/// One request's cost as recorded.
#[derive(Clone, Debug)]
struct Call {
    method: &'static str,
    template: &'static str,
    case: Option<&'static str>,
    status: u16,
    items: usize,
    reads: usize,
    summary: String,
}

/// An API over a redb store wrapped in the recording adapter.
struct World {
    api: Api,
    recording: RecordingItemStore,
    calls: RefCell<Vec<Call>>,
    _dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let redb = arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).unwrap();
        let recording = RecordingItemStore::new(Arc::new(redb));
        let mut api = Api::on(Arc::new(recording.clone()), true, PlanLimits::default())
            .with_archive_keyring(ArchiveKeyring::new(ArchiveMasterKey::from_bytes([7; 32]), Vec::new()));
        api.state.control_plane = api
            .state
            .control_plane
            .clone()
            .with_operator_token_hash(Some(Secret::from_presented(OPERATOR).hash()));
        api.router = arca_api::router(api.state.clone());
        World {
            api,
            recording,
            calls: RefCell::new(Vec::new()),
            _dir: dir,
        }
    }

    /// Runs `request` (a future not yet polled) alone on the recording and keeps its
    /// cost; `status` is what it must answer (`None`: anything but a 5xx).
    async fn measure(
        &self,
        method: &'static str,
        template: &'static str,
        case: Option<&'static str>,
        status: Option<u16>,
        request: impl Future<Output = Reply>,
    ) -> Reply {
        self.recording.clear();
        let reply = request.await;
        let ops = self.recording.take();
        assert_eq!(
            ops.scans().count(),
            0,
            "{method} {template}: a request scanned the table: {}",
            ops.summary()
        );
        match status {
            Some(s) => assert_eq!(reply.status.as_u16(), s, "{method} {template}: {}", reply.text),
            None => assert!(!reply.status.is_server_error(), "{method} {template}: {}", reply.text),
        }
        self.calls.borrow_mut().push(Call {
            method,
            template,
            case,
            status: reply.status.as_u16(),
            items: ops.items_read(),
            reads: ops.reads().count(),
            summary: ops.summary(),
        });
        reply
    }
}

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

/// A READY point of `cluster` in `destination`, expiring at `expires_at`, planted in the store.
async fn plant_point(
    api: &Api,
    org: &str,
    cluster: &str,
    definition: Option<&str>,
    destination: &str,
    expires_at: DateTime<Utc>,
) -> String {
    let definition = definition.map_or_else(BackupDefinitionId::new, |d| d.parse().unwrap());
    let rp = RecoveryPoint {
        rule: None,
        org_id: org.parse().unwrap(),
        cluster_id: cluster.parse::<ClusterId>().unwrap(),
        location: Some(RecoveryPointLocation {
            destination_id: destination.parse::<DestinationId>().unwrap(),
            prefix: format!("{org}/{cluster}/resources/archives/a1"),
        }),
        resource_count: 12,
        pv_count: 1,
        version: 0,
        ..RecoveryPoint::fixture(definition, now(), Some(expires_at))
    };
    api.state.control_plane.store().create(rp).await.unwrap().id.to_string()
}

async fn plant_rds_point(api: &Api, org: &str, account: &str, definition: &str, expires_at: Option<DateTime<Utc>>) {
    use arca_core::model::rds::*;
    let now = now();
    api.state
        .control_plane
        .store()
        .create(RdsRecoveryPoint {
            id: RecoveryPointId::new(),
            org_id: org.parse::<OrgId>().unwrap(),
            definition_id: Some(definition.parse().unwrap()),
            job_id: JobId::new(),
            cloud_account_id: account.parse().unwrap(),
            rp_type: RdsRecoveryPointType::Snapshot,
            state: RdsRecoveryPointState::Available,
            database: RdsDatabaseRef {
                identifier: "orders".into(),
                cluster: false,
            },
            snapshot: RdsSnapshotRef {
                identifier: format!("arca-orders-{}", JobId::new()),
                arn: String::new(),
                region: "us-east-1".into(),
                cluster: false,
            },
            source_recovery_point_id: None,
            engine: Some("postgres".into()),
            encrypted: false,
            expires_at,
            keep_last: None,
            verification: None,
            created_at: now,
            updated_at: now,
            version: 0,
        })
        .await
        .unwrap();
}

/// The seeded org: what the measured requests address.
struct Org {
    t: Tenant,
    /// The destination every cluster, definition and point uses.
    d0: String,
    /// (id, agent token) of each cluster: 0 is the subject, 1 the restores' target.
    clusters: Vec<(String, String)>,
    /// One definition per cluster, in the same order.
    defs: Vec<String>,
    /// Cluster 0's points: [to read and restore, to delete].
    c0_points: Vec<String>,
    /// A deleted cluster with two points left in `d0`.
    gone: String,
    /// Jobs of the seeded runs (PENDING).
    jobs: Vec<String>,
    restores: Vec<String>,
    keys: Vec<String>,
    /// Linked accounts: 0 has a role.
    accounts: Vec<String>,
    rds_backups: Vec<String>,
    rds_points: Vec<String>,
    eks: Vec<String>,
}

fn policy_body(name: &str) -> Value {
    json!({ "name": name, "schedules": [{ "cron": "0 3 * * *", "retainDays": 7 }] })
}

fn rds_body(name: &str, account: &str) -> Value {
    json!({ "name": name, "cloudAccountId": account, "region": "us-east-1",
            "databases": [{ "identifier": "orders" }] })
}

async fn seed(api: &Api, s: Size) -> Org {
    let t = api.signup(&format!("org-{}", s.name)).await;
    // Paid: no plan refusal makes a request read more than its common case (the free
    // plan's is measured on its own, below).
    set_plan(api, &t.org_id, "paid").await.expect(200);
    let admin = t.admin.clone();
    let d0 = api.destination(&admin, "d0").await;
    for i in 1..s.destinations {
        api.destination(&admin, &format!("d{i}")).await;
    }
    for i in 0..s.policies {
        api.post("/v1/policies", &admin, policy_body(&format!("p{i}")))
            .await
            .expect(201);
    }
    let mut keys = Vec::new();
    for i in 0..s.api_keys {
        let key = api
            .post(
                "/v1/apikeys",
                &admin,
                json!({ "name": format!("k{i}"), "role": "viewer" }),
            )
            .await
            .expect(201);
        keys.push(key.id());
    }
    let mut clusters = Vec::new();
    let mut defs = Vec::new();
    for i in 0..s.clusters {
        let (id, token) = api.cluster(&admin, &format!("c{i}"), Some(&d0)).await;
        api.activate(&token).await;
        defs.push(api.default_backup(&t, &id, Some(&d0)).await);
        clusters.push((id, token));
    }
    let mut jobs = Vec::new();
    for def in defs.iter().skip(2).take(s.runs) {
        jobs.push(api.run(&admin, def).await.expect(201).id());
    }
    let week = now() + chrono::Duration::days(7);
    let mut c0_points = Vec::new();
    for _ in 0..2 {
        c0_points.push(plant_point(api, &t.org_id, &clusters[0].0, Some(&defs[0]), &d0, week).await);
    }
    for i in 0..s.points {
        let c = i % s.clusters;
        plant_point(api, &t.org_id, &clusters[c].0, Some(&defs[c]), &d0, week).await;
    }
    let (gone, _) = api.cluster(&admin, "gone", None).await;
    for _ in 0..2 {
        plant_point(api, &t.org_id, &gone, None, &d0, week).await;
    }
    let cluster = api.get(&format!("/v1/clusters/{gone}"), &admin).await.expect(200);
    api.delete(&format!("/v1/clusters/{gone}?confirm=true"), &admin, &cluster.etag())
        .await
        .expect(204);
    let mut restores = Vec::new();
    for _ in 0..s.restores {
        let created = api
            .post(
                "/v1/restores",
                &admin,
                json!({ "recoveryPointId": c0_points[0], "targetClusterId": clusters[1].0 }),
            )
            .await
            .expect(201);
        restores.push(created.body["restore"]["id"].as_str().unwrap().to_owned());
    }
    let mut accounts = Vec::new();
    for i in 0..s.accounts {
        let linked = api
            .link_account(&admin, &format!("aws{i}"), &["us-east-1"])
            .await
            .expect(201);
        if i == 0 {
            api.give_role(&admin, &linked, "arn:aws:iam::111122223333:role/arca-prod")
                .await
                .expect(200);
        }
        accounts.push(linked.id());
    }
    let mut rds_backups = Vec::new();
    for i in 0..s.rds_backups {
        let created = api
            .post("/v1/rds-backups", &admin, rds_body(&format!("r{i}"), &accounts[0]))
            .await
            .expect(201);
        rds_backups.push(created.id());
    }
    let mut rds_points = Vec::new();
    for _ in 0..s.rds_points {
        plant_rds_point(api, &t.org_id, &accounts[0], &rds_backups[0], Some(week)).await;
    }
    let listed = api.get("/v1/rds-recoverypoints?limit=1", &admin).await.expect(200);
    rds_points.extend(listed.ids().iter().map(|s| (*s).to_owned()));
    let mut eks = Vec::new();
    for i in 0..s.eks {
        let created = api
            .state
            .control_plane
            .store()
            .create(arca_core::model::cloud::ebs::EksRecreation {
                id: arca_core::ids::EksRecreationId::new(),
                org_id: t.org_id.parse::<OrgId>().unwrap(),
                recovery_point_id: c0_points[0].parse().unwrap(),
                cloud_account_id: accounts[0].parse().unwrap(),
                region: "us-east-1".into(),
                name: format!("eks{i}"),
                state: arca_core::model::cloud::ebs::EksRecreationState::Failed,
                cluster_id: None,
                restore_id: None,
                next_step: None,
                error: Some("planted".into()),
                created_at: now(),
                updated_at: now(),
                version: 0,
                access: None,
            })
            .await
            .unwrap();
        eks.push(created.id.to_string());
    }
    Org {
        t,
        d0,
        clusters,
        defs,
        c0_points,
        gone,
        jobs,
        restores,
        keys,
        accounts,
        rds_backups,
        rds_points,
        eks,
    }
}

// --- the requests ------------------------------------------------------------------------

/// Seeds an org of size `s` and calls every route once (list routes with a small
/// `limit`, so a page is the same at both sizes): their costs, in call order.
async fn exercise(s: Size) -> Vec<Call> {
    let w = World::new();
    let api = &w.api;
    let o = seed(api, s).await;
    let admin = o.t.admin.as_str();
    let (c0, token0) = (&o.clusters[0].0, &o.clusters[0].1);
    let (c1, token1) = (&o.clusters[1].0, &o.clusters[1].1);
    let def0 = &o.defs[0];
    let d0 = &o.d0;

    // Sign-up (no key), org and API keys.
    w.measure(
        "POST",
        "/v1/signup",
        None,
        Some(201),
        api.request(
            Method::POST,
            "/v1/signup",
            None,
            None,
            Some(json!({ "orgName": "another" })),
        ),
    )
    .await;
    let org = w
        .measure("GET", "/v1/org", None, Some(200), api.get("/v1/org", admin))
        .await;
    w.measure("GET", "/v1/whoami", None, Some(200), api.get("/v1/whoami", admin))
        .await;
    w.measure(
        "PUT",
        "/v1/org",
        None,
        Some(200),
        api.put(
            "/v1/org",
            admin,
            &org.etag(),
            json!({ "name": "renamed", "defaultDestinationId": d0 }),
        ),
    )
    .await;
    w.measure(
        "GET",
        "/v1/apikeys",
        None,
        Some(200),
        api.get("/v1/apikeys?limit=3", admin),
    )
    .await;
    w.measure(
        "GET",
        "/v1/apikeys/{id}",
        None,
        Some(200),
        api.get(&format!("/v1/apikeys/{}", o.keys[0]), admin),
    )
    .await;
    let key = w
        .measure(
            "POST",
            "/v1/apikeys",
            None,
            Some(201),
            api.post("/v1/apikeys", admin, json!({ "name": "new", "role": "viewer" })),
        )
        .await;
    let key_etag = api
        .get(&format!("/v1/apikeys/{}", key.id()), admin)
        .await
        .expect(200)
        .etag();
    w.measure(
        "DELETE",
        "/v1/apikeys/{id}",
        None,
        Some(204),
        api.delete(&format!("/v1/apikeys/{}", key.id()), admin, &key_etag),
    )
    .await;

    // Clusters.
    w.measure(
        "GET",
        "/v1/clusters",
        None,
        Some(200),
        api.get("/v1/clusters?limit=3", admin),
    )
    .await;
    let created = w
        .measure(
            "POST",
            "/v1/clusters",
            None,
            Some(201),
            api.post(
                "/v1/clusters",
                admin,
                json!({ "name": "new", "defaultDestinationId": d0 }),
            ),
        )
        .await;
    let new_cluster = created.id();
    let path = format!("/v1/clusters/{c0}");
    let got = w
        .measure("GET", "/v1/clusters/{id}", None, Some(200), api.get(&path, admin))
        .await;
    w.measure(
        "PUT",
        "/v1/clusters/{id}",
        None,
        Some(200),
        api.put(
            &path,
            admin,
            &got.etag(),
            json!({ "name": "c0-renamed", "defaultDestinationId": d0 }),
        ),
    )
    .await;
    let new_path = format!("/v1/clusters/{new_cluster}");
    let etag = api.get(&new_path, admin).await.expect(200).etag();
    let rotated = w
        .measure(
            "POST",
            "/v1/clusters/{id}/rotate-token",
            None,
            Some(200),
            api.request(
                Method::POST,
                &format!("{new_path}/rotate-token"),
                Some(admin),
                Some(&etag),
                Some(json!({})),
            ),
        )
        .await;
    let etag = rotated.etag();
    w.measure(
        "POST",
        "/v1/clusters/{id}/rotate-archive-key",
        None,
        Some(200),
        api.request(
            Method::POST,
            &format!("{new_path}/rotate-archive-key"),
            Some(admin),
            Some(&etag),
            Some(json!({})),
        ),
    )
    .await;
    let host = |method: Method, uri: String, key: Option<&str>| {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(axum::http::header::HOST, "arca.example.com");
        if let Some(key) = key {
            request = request.header(axum::http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        request.body(axum::body::Body::empty()).unwrap()
    };
    let link = w
        .measure(
            "POST",
            "/v1/clusters/{id}/install",
            None,
            Some(201),
            api.send(host(Method::POST, format!("{new_path}/install"), Some(admin))),
        )
        .await;
    w.measure(
        "GET",
        "/v1/clusters/{id}/agent.yaml",
        None,
        Some(200),
        api.send(host(Method::GET, format!("{new_path}/agent.yaml"), Some(admin))),
    )
    .await;
    let install_path = link.body["url"]
        .as_str()
        .and_then(|u| u.strip_prefix("https://arca.example.com"))
        .unwrap_or_else(|| panic!("no install link in {}", link.text))
        .to_owned();
    w.measure(
        "GET",
        "/v1/install/{token}/agent.yaml",
        None,
        Some(200),
        api.send(host(Method::GET, install_path, None)),
    )
    .await;
    let etag = api.get(&new_path, admin).await.expect(200).etag();
    w.measure(
        "DELETE",
        "/v1/clusters/{id}",
        Some("without `confirm`"),
        Some(204),
        api.delete(&new_path, admin, &etag),
    )
    .await;

    // Destinations.
    w.measure(
        "GET",
        "/v1/destinations",
        None,
        Some(200),
        api.get("/v1/destinations?limit=3", admin),
    )
    .await;
    let new_dest = w
        .measure(
            "POST",
            "/v1/destinations",
            None,
            Some(201),
            api.post(
                "/v1/destinations",
                admin,
                json!({ "name": "new", "target": { "kind": "S3", "bucket": "new-bucket", "region": "eu-west-1" } }),
            ),
        )
        .await
        .id();
    let d0_path = format!("/v1/destinations/{d0}");
    let d0_got = w
        .measure(
            "GET",
            "/v1/destinations/{id}",
            None,
            Some(200),
            api.get(&d0_path, admin),
        )
        .await;
    // Moving d0, which holds points, is refused (it reads the points to know).
    w.measure(
        "PUT",
        "/v1/destinations/{id}",
        Some("in those cases"),
        Some(409),
        api.put(
            &d0_path,
            admin,
            &d0_got.etag(),
            json!({ "name": "d0", "target": { "kind": "S3", "bucket": "elsewhere", "region": "eu-west-1" } }),
        ),
    )
    .await;
    // Renaming one is not a move.
    let new_dest_path = format!("/v1/destinations/{new_dest}");
    let etag = api.get(&new_dest_path, admin).await.expect(200).etag();
    let renamed = w
        .measure(
            "PUT",
            "/v1/destinations/{id}",
            None,
            Some(200),
            api.put(
                &new_dest_path,
                admin,
                &etag,
                json!({ "name": "renamed", "target": { "kind": "S3", "bucket": "new-bucket", "region": "eu-west-1" } }),
            ),
        )
        .await;
    // On the free plan, the plan refuses PV copies to a destination of one's own: any
    // update looks for snapshotAndCopy definitions that resolve to it ("in those cases").
    w.measure(
        "PUT",
        "/v1/operator/orgs/{id}/plan",
        None,
        Some(200),
        set_plan(api, &o.t.org_id, "free"),
    )
    .await;
    let renamed = w
        .measure(
            "PUT",
            "/v1/destinations/{id}",
            Some("in those cases"),
            Some(200),
            api.put(
                &new_dest_path,
                admin,
                &renamed.etag(),
                json!({ "name": "renamed-free", "target": { "kind": "S3", "bucket": "new-bucket", "region": "eu-west-1" } }),
            ),
        )
        .await;
    set_plan(api, &o.t.org_id, "paid").await.expect(200);
    // d0 holds points and is referred to: a deletion needs confirming.
    w.measure(
        "DELETE",
        "/v1/destinations/{id}",
        None,
        Some(409),
        api.delete(&d0_path, admin, &d0_got.etag()),
    )
    .await;
    w.measure(
        "DELETE",
        "/v1/destinations/{id}",
        None,
        Some(204),
        api.delete(&new_dest_path, admin, &renamed.etag()),
    )
    .await;
    w.measure(
        "GET",
        "/v1/destinations/{id}/maintenance",
        None,
        Some(200),
        api.get(&format!("{d0_path}/maintenance"), admin),
    )
    .await;
    let purge = format!("{d0_path}/repositories/{}/purge", o.gone);
    w.measure(
        "POST",
        "/v1/destinations/{id}/repositories/{clusterId}/purge",
        None,
        Some(200),
        api.post(&purge, admin, json!({ "includeUnexpired": true })),
    )
    .await;
    w.measure(
        "POST",
        "/v1/destinations/{id}/repositories/{clusterId}/purge/complete",
        None,
        Some(200),
        api.post(&format!("{purge}/complete"), admin, json!({})),
    )
    .await;

    // Policies.
    w.measure(
        "GET",
        "/v1/policies",
        None,
        Some(200),
        api.get("/v1/policies?limit=3", admin),
    )
    .await;
    let policy = w
        .measure(
            "POST",
            "/v1/policies",
            None,
            Some(201),
            api.post("/v1/policies", admin, policy_body("new")),
        )
        .await;
    let policy_path = format!("/v1/policies/{}", policy.id());
    w.measure(
        "GET",
        "/v1/policies/{id}",
        None,
        Some(200),
        api.get(&format!("/v1/policies/{}", o.t.default_policy_id), admin),
    )
    .await;
    let updated = w
        .measure(
            "PUT",
            "/v1/policies/{id}",
            None,
            Some(200),
            api.put(&policy_path, admin, &policy.etag(), policy_body("new-renamed")),
        )
        .await;
    w.measure(
        "DELETE",
        "/v1/policies/{id}",
        None,
        Some(204),
        api.delete(&policy_path, admin, &updated.etag()),
    )
    .await;

    // Backup definitions.
    w.measure(
        "GET",
        "/v1/backups",
        None,
        Some(200),
        api.get("/v1/backups?limit=3", admin),
    )
    .await;
    let backup = w
        .measure(
            "POST",
            "/v1/backups",
            None,
            Some(201),
            api.backup(admin, c0, Some(&o.t.default_policy_id), Some(d0)),
        )
        .await;
    let backup_path = format!("/v1/backups/{}", backup.id());
    w.measure(
        "GET",
        "/v1/backups/{id}",
        None,
        Some(200),
        api.get(&format!("/v1/backups/{def0}"), admin),
    )
    .await;
    let updated = w
        .measure(
            "PUT",
            "/v1/backups/{id}",
            None,
            Some(200),
            api.put(
                &backup_path,
                admin,
                &backup.etag(),
                json!({ "name": "renamed", "clusterId": c0, "selection": { "namespaces": ["default"] },
                        "policyId": o.t.default_policy_id, "destinationId": d0 }),
            ),
        )
        .await;
    let paused = w
        .measure(
            "POST",
            "/v1/backups/{id}/pause",
            None,
            Some(200),
            api.request(
                Method::POST,
                &format!("{backup_path}/pause"),
                Some(admin),
                Some(&updated.etag()),
                Some(json!({})),
            ),
        )
        .await;
    let resumed = w
        .measure(
            "POST",
            "/v1/backups/{id}/resume",
            None,
            Some(200),
            api.request(
                Method::POST,
                &format!("{backup_path}/resume"),
                Some(admin),
                Some(&paused.etag()),
                Some(json!({})),
            ),
        )
        .await;
    w.measure(
        "DELETE",
        "/v1/backups/{id}",
        None,
        Some(204),
        api.delete(&backup_path, admin, &resumed.etag()),
    )
    .await;

    // The agent of cluster 0 and a backup of it.
    let session = w
        .measure(
            "POST",
            "/v1/agent/connect",
            None,
            Some(200),
            api.agent(token0, "/v1/agent/connect", None, json!({})),
        )
        .await
        .body["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    w.measure(
        "POST",
        "/v1/agent/heartbeat",
        None,
        Some(200),
        api.agent(token0, "/v1/agent/heartbeat", Some(&session), json!({})),
    )
    .await;
    w.measure("POST", "/v1/backups/{id}/run", None, Some(201), api.run(admin, def0))
        .await;
    let polled = w
        .measure(
            "POST",
            "/v1/agent/poll",
            None,
            Some(200),
            api.agent(token0, "/v1/agent/poll", Some(&session), json!({})),
        )
        .await;
    let job = polled.job_id();
    let lease = json!({ "leaseToken": polled.body["leaseToken"] });
    w.measure(
        "POST",
        "/v1/agent/jobs/{id}/lease",
        None,
        Some(200),
        api.agent_job(token0, &session, &job, "lease", lease.clone()),
    )
    .await;
    w.measure(
        "POST",
        "/v1/agent/jobs/{id}/progress",
        None,
        Some(200),
        api.agent_job(token0, &session, &job, "progress", lease.clone()),
    )
    .await;
    w.measure(
        "POST",
        "/v1/agent/jobs/{id}/credentials",
        None,
        Some(200),
        api.credentials(token0, &session, &job),
    )
    .await;
    // Not a linked cluster: refused, after the reads it documents.
    w.measure(
        "POST",
        "/v1/agent/jobs/{id}/ebs-snapshots",
        None,
        Some(409),
        api.agent_job(token0, &session, &job, "ebs-snapshots", json!({ "volumes": [] })),
    )
    .await;
    w.measure(
        "POST",
        "/v1/agent/jobs/{id}/complete",
        None,
        Some(200),
        api.complete(
            token0,
            &session,
            &polled,
            json!({ "backup": { "prefix": common::archive_at(&o.t.org_id, c0, "new"), "resourceCount": 1 } }),
        ),
    )
    .await;

    // The agent of cluster 1, the restores' target: object results.
    let session1 = api.connect(token1).await;
    let polled1 = api.poll(token1, &session1).await.expect(200);
    assert_eq!(polled1.body["job"]["type"], "K8S_RESTORE", "{}", polled1.text);
    w.measure(
        "POST",
        "/v1/agent/jobs/{id}/results",
        None,
        Some(204),
        api.agent_job(
            token1,
            &session1,
            &polled1.job_id(),
            "results",
            json!({ "leaseToken": polled1.body["leaseToken"], "seq": 0,
                    "objects": [{ "resource": "configmaps", "namespace": "shop", "name": "cm", "outcome": "created" }] }),
        ),
    )
    .await;
    // The point has no EBS snapshots: 404, after the reads it documents.
    w.measure(
        "POST",
        "/v1/agent/jobs/{id}/ebs-volumes",
        None,
        Some(404),
        api.agent_job(token1, &session1, &polled1.job_id(), "ebs-volumes", json!({})),
    )
    .await;

    // Jobs.
    w.measure("GET", "/v1/jobs", None, Some(200), api.get("/v1/jobs?limit=3", admin))
        .await;
    w.measure(
        "GET",
        "/v1/jobs",
        Some("filtered"),
        Some(200),
        api.get(&format!("/v1/jobs?clusterId={c0}&limit=1"), admin),
    )
    .await;
    w.measure(
        "GET",
        "/v1/jobs/{id}",
        None,
        Some(200),
        api.get(&format!("/v1/jobs/{}", o.jobs[0]), admin),
    )
    .await;
    w.measure(
        "POST",
        "/v1/jobs/{id}/cancel",
        None,
        Some(200),
        api.post(&format!("/v1/jobs/{}/cancel", o.jobs[0]), admin, json!({})),
    )
    .await;

    // Recovery points and restores.
    w.measure(
        "GET",
        "/v1/recoverypoints",
        None,
        Some(200),
        api.get("/v1/recoverypoints?limit=1", admin),
    )
    .await;
    let rp_path = format!("/v1/recoverypoints/{}", o.c0_points[0]);
    w.measure(
        "GET",
        "/v1/recoverypoints/{id}",
        None,
        Some(200),
        api.get(&rp_path, admin),
    )
    .await;
    w.measure(
        "GET",
        "/v1/recoverypoints/{id}/aws",
        None,
        Some(200),
        api.get(&format!("{rp_path}/aws"), admin),
    )
    .await;
    let doomed = format!("/v1/recoverypoints/{}", o.c0_points[1]);
    let etag = api.get(&doomed, admin).await.expect(200).etag();
    w.measure(
        "DELETE",
        "/v1/recoverypoints/{id}",
        None,
        Some(202),
        api.delete(&doomed, admin, &etag),
    )
    .await;
    w.measure(
        "GET",
        "/v1/restores",
        None,
        Some(200),
        api.get("/v1/restores?limit=3", admin),
    )
    .await;
    w.measure(
        "POST",
        "/v1/restores",
        None,
        Some(201),
        api.post(
            "/v1/restores",
            admin,
            json!({ "recoveryPointId": o.c0_points[0], "targetClusterId": c1 }),
        ),
    )
    .await;
    let restore_path = format!("/v1/restores/{}", o.restores[0]);
    w.measure(
        "GET",
        "/v1/restores/{id}",
        None,
        Some(200),
        api.get(&restore_path, admin),
    )
    .await;
    w.measure(
        "GET",
        "/v1/restores/{id}/objects",
        None,
        Some(200),
        api.get(&format!("{restore_path}/objects"), admin),
    )
    .await;

    // Linked accounts and EKS re-creations.
    w.measure(
        "GET",
        "/v1/cloud-accounts",
        None,
        Some(200),
        api.get("/v1/cloud-accounts?limit=3", admin),
    )
    .await;
    let linked = w
        .measure(
            "POST",
            "/v1/cloud-accounts",
            None,
            Some(201),
            api.link_account(admin, "new", &["us-east-1"]),
        )
        .await;
    let a0 = format!("/v1/cloud-accounts/{}", o.accounts[0]);
    let got = w
        .measure("GET", "/v1/cloud-accounts/{id}", None, Some(200), api.get(&a0, admin))
        .await;
    w.measure(
        "PUT",
        "/v1/cloud-accounts/{id}",
        None,
        Some(200),
        api.put(
            &a0,
            admin,
            &got.etag(),
            json!({ "name": "aws0", "regions": ["us-east-1"] }),
        ),
    )
    .await;
    api.cloud.add_role(
        "arn:aws:iam::111122223333:role/new",
        linked.body["externalId"].as_str().unwrap(),
    );
    let new_account = format!("/v1/cloud-accounts/{}", linked.id());
    w.measure(
        "PUT",
        "/v1/cloud-accounts/{id}/role",
        None,
        Some(200),
        api.put(
            &format!("{new_account}/role"),
            admin,
            &linked.etag(),
            json!({ "roleArn": "arn:aws:iam::111122223333:role/new" }),
        ),
    )
    .await;
    w.measure(
        "POST",
        "/v1/cloud-accounts/{id}/verify",
        None,
        Some(200),
        api.post(&format!("{new_account}/verify"), admin, json!({})),
    )
    .await;
    w.measure(
        "POST",
        "/v1/cloud-accounts/{id}/inventory",
        None,
        Some(200),
        api.post(&format!("{a0}/inventory"), admin, json!({})),
    )
    .await;
    w.measure(
        "GET",
        "/v1/cloud-accounts/{id}/inventory",
        None,
        Some(200),
        api.get(&format!("{a0}/inventory"), admin),
    )
    .await;
    w.measure(
        "GET",
        "/v1/cloud-accounts/{id}/findings",
        None,
        Some(200),
        api.get(&format!("{a0}/findings?severity=HIGH&limit=3"), admin),
    )
    .await;
    let etag = api.get(&new_account, admin).await.expect(200).etag();
    w.measure(
        "DELETE",
        "/v1/cloud-accounts/{id}",
        None,
        Some(204),
        api.delete(&new_account, admin, &etag),
    )
    .await;
    w.measure(
        "GET",
        "/v1/eks-recreations",
        None,
        Some(200),
        api.get("/v1/eks-recreations?limit=3", admin),
    )
    .await;
    w.measure(
        "GET",
        "/v1/eks-recreations/{id}",
        None,
        Some(200),
        api.get(&format!("/v1/eks-recreations/{}", o.eks[0]), admin),
    )
    .await;

    // RDS.
    w.measure(
        "GET",
        "/v1/rds-backups",
        None,
        Some(200),
        api.get("/v1/rds-backups?limit=3", admin),
    )
    .await;
    let rds = w
        .measure(
            "POST",
            "/v1/rds-backups",
            None,
            Some(201),
            api.post("/v1/rds-backups", admin, rds_body("new", &o.accounts[0])),
        )
        .await;
    let rds_path = format!("/v1/rds-backups/{}", rds.id());
    w.measure(
        "GET",
        "/v1/rds-backups/{id}",
        None,
        Some(200),
        api.get(&format!("/v1/rds-backups/{}", o.rds_backups[0]), admin),
    )
    .await;
    let updated = w
        .measure(
            "PUT",
            "/v1/rds-backups/{id}",
            None,
            Some(200),
            api.put(&rds_path, admin, &rds.etag(), rds_body("renamed", &o.accounts[0])),
        )
        .await;
    let paused = w
        .measure(
            "POST",
            "/v1/rds-backups/{id}/pause",
            None,
            Some(200),
            api.request(
                Method::POST,
                &format!("{rds_path}/pause"),
                Some(admin),
                Some(&updated.etag()),
                Some(json!({})),
            ),
        )
        .await;
    let resumed = w
        .measure(
            "POST",
            "/v1/rds-backups/{id}/resume",
            None,
            Some(200),
            api.request(
                Method::POST,
                &format!("{rds_path}/resume"),
                Some(admin),
                Some(&paused.etag()),
                Some(json!({})),
            ),
        )
        .await;
    w.measure(
        "POST",
        "/v1/rds-backups/{id}/run",
        None,
        Some(201),
        api.post(&format!("{rds_path}/run"), admin, json!({})),
    )
    .await;
    w.measure(
        "DELETE",
        "/v1/rds-backups/{id}",
        None,
        Some(204),
        api.delete(&rds_path, admin, &resumed.etag()),
    )
    .await;
    w.measure(
        "GET",
        "/v1/rds-recoverypoints",
        None,
        Some(200),
        api.get("/v1/rds-recoverypoints?limit=3", admin),
    )
    .await;
    w.measure(
        "GET",
        "/v1/rds-recoverypoints/{id}",
        None,
        Some(200),
        api.get(&format!("/v1/rds-recoverypoints/{}", o.rds_points[0]), admin),
    )
    .await;
    w.measure(
        "POST",
        "/v1/rds-restores",
        None,
        Some(201),
        api.post(
            "/v1/rds-restores",
            admin,
            json!({ "cloudAccountId": o.accounts[0],
                    "source": { "kind": "RECOVERY_POINT", "recoveryPointId": o.rds_points[0] },
                    "target": { "identifier": "restored" } }),
        ),
    )
    .await;

    // Alert channels and the delivery log (a webhook to a closed port: refused at once).
    let channel = w
        .measure(
            "POST",
            "/v1/alerts/channels",
            None,
            Some(201),
            api.post(
                "/v1/alerts/channels",
                admin,
                json!({ "name": "oncall", "kind": "webhook", "url": "http://127.0.0.1:9/hook" }),
            ),
        )
        .await;
    let channel_path = format!("/v1/alerts/channels/{}", channel.id());
    w.measure(
        "GET",
        "/v1/alerts/channels",
        None,
        Some(200),
        api.get("/v1/alerts/channels?limit=3", admin),
    )
    .await;
    let read = w
        .measure(
            "GET",
            "/v1/alerts/channels/{id}",
            None,
            Some(200),
            api.get(&channel_path, admin),
        )
        .await;
    let patched = w
        .measure(
            "PATCH",
            "/v1/alerts/channels/{id}",
            None,
            Some(200),
            api.request(
                Method::PATCH,
                &channel_path,
                Some(admin),
                Some(&read.etag()),
                Some(json!({ "events": ["job.failed", "job.skipped"] })),
            ),
        )
        .await;
    w.measure(
        "POST",
        "/v1/alerts/channels/{id}/test",
        None,
        Some(200),
        api.post(&format!("{channel_path}/test"), admin, json!({})),
    )
    .await;
    w.measure(
        "GET",
        "/v1/alerts/deliveries",
        None,
        Some(200),
        api.get("/v1/alerts/deliveries?limit=3&status=PENDING", admin),
    )
    .await;
    w.measure(
        "GET",
        "/v1/alerts/deliveries",
        Some("channelId"),
        Some(200),
        api.get(
            &format!("/v1/alerts/deliveries?limit=3&channelId={}", channel.id()),
            admin,
        ),
    )
    .await;
    w.measure(
        "DELETE",
        "/v1/alerts/channels/{id}",
        None,
        Some(204),
        api.delete(&channel_path, admin, &patched.etag()),
    )
    .await;

    w.calls.into_inner()
}

#[tokio::test]
async fn the_reads_of_a_request_do_not_grow_with_the_org_unless_the_docs_say_so() {
    let rows = doc_rows(&docs());
    let small = exercise(SMALL).await;
    let large = exercise(LARGE).await;
    assert_eq!(small.len(), large.len());

    let mut table = Vec::new();
    let mut failures = Vec::new();
    for (s, l) in small.iter().zip(&large) {
        assert_eq!((s.method, s.template, s.case), (l.method, l.template, l.case));
        let route = format!(
            "{} {}{}",
            s.method,
            s.template,
            s.case.map(|c| format!(" ({c})")).unwrap_or_default()
        );
        let (costs, naming) = match documented_cost(&rows, s.method, s.template, s.case) {
            Ok(found) => found,
            Err(message) => {
                failures.push(message);
                table.push((route, "(not in the docs)".to_owned(), s, l));
                continue;
            }
        };
        let may_grow = costs.iter().any(|c| grows(c));
        let grew = l.items > s.items + SLACK;
        if grew && !may_grow {
            failures.push(format!(
                "{route}: documented as `{}` (docs/data-model.md {}) but reads {} items at the small size and {} \
                 at the large one (more than {SLACK} more).\n    small: {}\n    large: {}",
                costs.join(" + "),
                naming
                    .iter()
                    .map(|r| format!("line {}, {} row `{}`", r.line, r.table, r.operation))
                    .collect::<Vec<_>>()
                    .join("; "),
                s.items,
                l.items,
                s.summary,
                l.summary
            ));
        }
        table.push((route, costs.join(" + "), s, l));
    }

    println!(
        "\n{:<72} {:<60} {:>6} {:>6}  read calls  status",
        "route", "documented cost", "small", "large"
    );
    for (route, cost, s, l) in &table {
        let cost: String = cost.chars().take(60).collect();
        let flag = if l.items > s.items + SLACK { "  grows" } else { "" };
        println!(
            "{route:<72} {cost:<60} {:>6} {:>6}  {}/{}  {}/{}{flag}",
            s.items, l.items, s.reads, l.reads, s.status, l.status
        );
    }
    let grown: Vec<_> = table
        .iter()
        .filter(|(_, _, s, l)| l.items > s.items + SLACK)
        .map(|(route, _, s, l)| format!("{route}: {} -> {} items ({})", s.items, l.items, l.summary))
        .collect();
    println!("\nroutes whose reads grow with the org:\n  {}", grown.join("\n  "));
    let constant: Vec<_> = table
        .iter()
        .filter(|(_, cost, s, l)| grows(cost) && l.items <= s.items + SLACK)
        .map(|(route, cost, s, l)| format!("{route}: `{cost}`, reads {} / {}", s.items, l.items))
        .collect();
    println!(
        "\nroutes documented as whole-org whose reads do not grow here (their docs rows may be out of date, \
         or this test's org does not grow what they read):\n  {}",
        constant.join("\n  ")
    );

    // What the OpenAPI document routes that this test does not call.
    let doc = serde_json::to_value(arca_api::openapi()).unwrap();
    let called: std::collections::BTreeSet<(String, String)> = small
        .iter()
        .map(|c| (c.method.to_owned(), c.template.to_owned()))
        .collect();
    let mut not_called = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            if METHODS.contains(&method.as_str()) && !called.contains(&(method.clone(), path.clone())) {
                let in_docs = documented_cost(&rows, &method, path, None).is_ok();
                not_called.push(format!(
                    "{method} {path}{}",
                    if in_docs { "" } else { " (no docs row)" }
                ));
            }
        }
    }
    println!("\nroutes this test does not call: {}", not_called.join(", "));

    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

// --- background sweeps -------------------------------------------------------------------

/// A sweep's reads at one size and the bound stated for it.
struct SweepCost {
    name: &'static str,
    /// The docs row's operation cell, to find its cost.
    doc_row: &'static str,
    items: usize,
    bound: usize,
    bound_text: String,
    summary: String,
}

/// Seeds an org of size `s` where only a few items are due (3 expired points, 2 due
/// upkeeps, 2 expired RDS points), runs each sweep once on the recording and returns
/// their costs.
async fn sweeps(s: Size) -> Vec<SweepCost> {
    let w = World::new();
    let api = &w.api;
    let cp = &api.state.control_plane;
    let t = api.signup(&format!("org-{}", s.name)).await;
    let admin = t.admin.as_str();
    let d0 = api.destination(admin, "d0").await;
    let mut clusters = Vec::new();
    let mut defs = Vec::new();
    for i in 0..s.clusters {
        let (id, token) = api.cluster(admin, &format!("c{i}"), Some(&d0)).await;
        api.activate(&token).await;
        defs.push(api.default_backup(&t, &id, Some(&d0)).await);
        clusters.push(id);
    }
    let week = now() + chrono::Duration::days(7);
    let past = now() - chrono::Duration::days(1);
    for i in 0..s.points {
        let c = i % s.clusters;
        plant_point(api, &t.org_id, &clusters[c], Some(&defs[c]), &d0, week).await;
    }
    // Due: three points of live clusters and one of a deleted cluster (another ACTIVE
    // agent deletes it: the sweep looks for one), and the repositories of two live
    // clusters and of the deleted one.
    const EXPIRED: usize = 4;
    for i in 0..EXPIRED - 1 {
        plant_point(api, &t.org_id, &clusters[i + 1], Some(&defs[i + 1]), &d0, past).await;
    }
    let (gone, _) = api.cluster(admin, "gone", None).await;
    plant_point(api, &t.org_id, &gone, None, &d0, past).await;
    const DUE_UPKEEPS: usize = 3;
    let org: OrgId = t.org_id.parse().unwrap();
    for cluster in clusters.iter().take(DUE_UPKEEPS - 1).chain([&gone]) {
        let key = arca_core::model::maintenance::RepositoryKey {
            destination_id: d0.parse().unwrap(),
            cluster_id: cluster.parse().unwrap(),
        };
        let mut upkeep = arca_core::model::maintenance::RepositoryUpkeep::new(org, key, now());
        upkeep.due_at = Some(past);
        upkeep.dirty_since = Some(past);
        cp.store().create(upkeep).await.unwrap();
    }
    let cluster = api.get(&format!("/v1/clusters/{gone}"), admin).await.expect(200);
    api.delete(&format!("/v1/clusters/{gone}?confirm=true"), admin, &cluster.etag())
        .await
        .expect(204);
    let mut accounts = Vec::new();
    for i in 0..s.accounts {
        let linked = api
            .link_account(admin, &format!("aws{i}"), &["us-east-1"])
            .await
            .expect(201);
        api.give_role(admin, &linked, &format!("arn:aws:iam::111122223333:role/arca-{i}"))
            .await
            .expect(200);
        accounts.push(linked.id());
    }
    // RDS points spread over the definitions (the same few per definition at both sizes),
    // two of the first one's expired.
    let mut rds = Vec::new();
    for i in 0..s.rds_backups {
        let created = api
            .post("/v1/rds-backups", admin, rds_body(&format!("r{i}"), &accounts[0]))
            .await
            .expect(201);
        rds.push(created.id());
    }
    for i in 0..s.rds_points {
        plant_rds_point(api, &t.org_id, &accounts[0], &rds[i % rds.len()], Some(week)).await;
    }
    const EXPIRED_RDS: usize = 2;
    for _ in 0..EXPIRED_RDS {
        plant_rds_point(api, &t.org_id, &accounts[0], &rds[0], Some(past)).await;
    }
    let definitions = defs.len();

    let mut costs = Vec::new();
    let mut measure = |name: &'static str, doc_row: &'static str, bound: usize, bound_text: String, ops: Recording| {
        assert_eq!(ops.scans().count(), 0, "{name} scanned the table: {}", ops.summary());
        costs.push(SweepCost {
            name,
            doc_row,
            items: ops.items_read(),
            bound,
            bound_text,
            summary: ops.summary(),
        });
    };

    // Bounds, next to their docs rows. k: items read per unit of work; c: a constant.
    // retention sweep: reads <= expired points x 8 + 20 (the point, its cluster, agent, the
    // job it creates; its keepLast siblings should come from a bounded index query).
    w.recording.clear();
    let report = cp.retention_sweep().await.unwrap();
    assert_eq!(report.deletion_jobs.len(), EXPIRED, "{report:?}");
    measure(
        "retention sweep",
        "retention sweep",
        EXPIRED * 8 + 20,
        format!("expired points ({EXPIRED}) x 8 + 20"),
        w.recording.take(),
    );
    // maintenance sweep: reads <= due upkeeps x 8 + 20 (the upkeep, its job, destination,
    // cluster and agent).
    w.recording.clear();
    cp.maintenance_sweep().await.unwrap();
    measure(
        "maintenance sweep",
        "maintenance sweep",
        DUE_UPKEEPS * 8 + 20,
        format!("due upkeeps ({DUE_UPKEEPS}) x 8 + 20"),
        w.recording.take(),
    );
    // schedule reconciler: reads <= backup definitions x 4 + 20 (cross-tenant by design:
    // each definition and its policy).
    w.recording.clear();
    cp.reconcile_schedules().await.unwrap();
    measure(
        "schedule reconciler",
        "schedule reconciler",
        definitions * 4 + 20,
        format!("backup definitions ({definitions}) x 4 + 20"),
        w.recording.take(),
    );
    // RDS retention sweep: reads <= expired RDS points x 6 + 20 (the point, its account).
    w.recording.clear();
    cp.rds_retention_sweep().await.unwrap();
    measure(
        "RDS retention sweep",
        "RDS retention sweep",
        EXPIRED_RDS * 6 + 20,
        format!("expired RDS points ({EXPIRED_RDS}) x 6 + 20"),
        w.recording.take(),
    );
    // inventory run: reads <= linked accounts x (regions 1 x (header + 12 parts) + 4) + 20
    // (cross-tenant by design).
    w.recording.clear();
    cp.inventory_everything().await.unwrap();
    let n = accounts.len();
    measure(
        "inventory run",
        "inventory run",
        n * 17 + 20,
        format!("linked accounts ({n}) x 17 + 20"),
        w.recording.take(),
    );
    // dispatch of one scheduled definition: reads <= 20 (a fixed number of gets).
    w.recording.clear();
    cp.dispatch_scheduled(&arca_core::model::schedule::ScheduleInput {
        org_id: org,
        definition_id: defs[0].clone(),
        rule: 0,
    })
    .await
    .unwrap();
    measure("dispatch", "dispatch", 20, "20".to_owned(), w.recording.take());
    // dead letters: none queued, reads <= 5.
    w.recording.clear();
    cp.drain_dead_letters(100).await.unwrap();
    measure("dead letters", "dead letters", 5, "5".to_owned(), w.recording.take());
    // alert sweep with one channel hearing agent.disconnected and schedule.missed and
    // nothing due: reads <= clusters (their AGENT# items, cross-tenant by design) + the
    // org's definitions and policies (the missed-run check; made a moment ago, so no
    // fire time to check a cluster's jobs for) + channels + 10.
    api.post(
        "/v1/alerts/channels",
        admin,
        json!({ "name": "oncall", "kind": "webhook", "url": "http://127.0.0.1:9/hook",
                "events": ["agent.disconnected", "schedule.missed"] }),
    )
    .await
    .expect(201);
    let policies = cp
        .store()
        .list_all::<arca_core::model::policy::Policy>(&org)
        .await
        .unwrap()
        .len();
    w.recording.clear();
    let report = cp.alert_sweep().await.unwrap();
    assert_eq!(report.disconnected, 0, "every agent heartbeated a moment ago");
    assert_eq!(report.missed, 0, "every definition was made a moment ago");
    let n = clusters.len() + 1;
    let d = defs.len();
    measure(
        "alert sweep",
        "alert sweep",
        n + d + policies + 10,
        format!("clusters ({n}) + definitions ({d}) + policies ({policies}) + channels (1) + 10"),
        w.recording.take(),
    );
    costs
}

#[tokio::test]
async fn background_sweeps_stay_within_their_stated_bounds() {
    let rows = doc_rows(&docs());
    let small = sweeps(SMALL).await;
    let large = sweeps(LARGE).await;
    let mut failures = Vec::new();
    println!(
        "\n{:<22} {:<70} {:>6} {:>6}  bound (small / large)",
        "sweep", "documented cost", "small", "large"
    );
    for (s, l) in small.iter().zip(&large) {
        let row = rows
            .iter()
            .find(|r| r.table.starts_with("Lambda") && r.operation.starts_with(s.doc_row))
            .unwrap_or_else(|| panic!("no row `{}…` in docs/data-model.md's background table", s.doc_row));
        let over = s.items > s.bound || l.items > l.bound;
        let known = KNOWN_WHOLE_ORG.contains(&s.name);
        let cost: String = row.costs.join(" / ").chars().take(70).collect();
        println!(
            "{:<22} {cost:<70} {:>6} {:>6}  {} / {}{}",
            s.name,
            s.items,
            l.items,
            s.bound_text,
            l.bound_text,
            match (over, known) {
                (true, true) => "  over (KNOWN_WHOLE_ORG)",
                (true, false) => "  OVER",
                (false, true) => "  within: remove it from KNOWN_WHOLE_ORG",
                (false, false) => "",
            }
        );
        if over && !known {
            failures.push(format!(
                "{}: reads {} items at the small size (bound {}: {}) and {} at the large one (bound {}: {}); \
                 docs/data-model.md line {} says `{}`.\n    small: {}\n    large: {}",
                s.name,
                s.items,
                s.bound,
                s.bound_text,
                l.items,
                l.bound,
                l.bound_text,
                row.line,
                row.costs.join(" / "),
                s.summary,
                l.summary
            ));
        }
        println!("    large: {}", l.summary);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
