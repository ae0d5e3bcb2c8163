//! Synthetic data, written straight through the typed store ([`Store`] and [`Tx`], so every
//! item has exactly the keys and indexes the control plane gives it) in transactions of up
//! to 100 writes, a few in flight at once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use arca_core::ids::{ApiKeyId, BackupDefinitionId, ClusterId, DestinationId, JobId, OrgId, PolicyId, RecoveryPointId};
use arca_core::model::agent::AgentState;
use arca_core::model::auth::{ApiKey, Role};
use arca_core::model::backup::{BackupDefinition, BackupDefinitionSpec, PvMode, Selection};
use arca_core::model::cluster::{Cluster, ClusterSpec, ClusterState, Inventory, PvcInfo, StorageClassInfo};
use arca_core::model::destination::{Destination, DestinationSpec, DestinationTarget};
use arca_core::model::job::{Job, JobState, JobTrigger, JobType};
use arca_core::model::org::Org;
use arca_core::model::plan::Plan;
use arca_core::model::policy::{Policy, PolicyReferrer, PolicySpec, ReferrerKind, Retention, ScheduleSpec};
use arca_core::model::recovery::{
    BackupDetails, RecoveryPoint, RecoveryPointLocation, RecoveryPointState, RecoveryPointType,
};
use arca_core::model::secret::{AGENT_TOKEN_PREFIX, API_KEY_PREFIX, Secret};
use arca_core::ports::item_store::MAX_TRANSACTION_WRITES;
use arca_core::ports::queue::Queue;
use arca_core::store::{Record, Store, Tx};
use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};

/// The session id every seeded agent holds (heartbeats must present it).
pub const SESSION: &str = "bench-session";
/// Of every this-many recovery points, one has already expired (1 %).
const EXPIRED_EVERY: usize = 100;
/// Backup definitions per policy (a policy's `usedBy` lists them: bounded, as the item is).
const DEFINITIONS_PER_POLICY: usize = 100;
/// Definitions per cluster of the dispatch-burst org.
const BURST_DEFINITIONS_PER_CLUSTER: usize = 10;
/// Recovery points per job seeded (the job history is a tenth of the points).
const POINTS_PER_JOB: usize = 10;
/// How many agent tokens and point ids of the measured org are kept for the load.
const SAMPLE: usize = 1_000;

/// One size of the data set.
#[derive(Clone, Debug)]
pub struct Size {
    pub name: &'static str,
    /// Orgs holding data, the measured org included (the burst org is not counted).
    pub orgs: usize,
    /// Clusters of the measured org (one backup definition each).
    pub clusters: usize,
    /// Recovery points in all orgs.
    pub points: usize,
    /// Of which in the measured org.
    pub measured_points: usize,
    /// Clusters of each other org.
    pub other_clusters: usize,
}

impl Size {
    pub fn describe(&self) -> String {
        format!(
            "{} orgs; measured org: {} clusters, {} points; {} points in all",
            thousands(self.orgs as u64),
            thousands(self.clusters as u64),
            thousands(self.measured_points as u64),
            thousands(self.points as u64),
        )
    }
}

/// What the load needs to know about the seeded data.
pub struct Seeded {
    pub api_key: Secret,
    /// The measured org's clusters (all of them).
    pub clusters: Vec<ClusterId>,
    /// Agent tokens of the measured org's first [`SAMPLE`] clusters.
    pub agent_tokens: Vec<Secret>,
    /// Recovery points of the measured org, a sample spread over the org.
    pub point_sample: Vec<RecoveryPointId>,
    /// Points expired at seeding time, in all orgs.
    pub expired: usize,
    pub points: usize,
    /// The burst org's definitions (one due schedule each, rule 0).
    pub burst_org: OrgId,
    pub burst_definitions: Vec<BackupDefinitionId>,
    /// Items written.
    pub items: u64,
}

type Commit = Pin<Box<dyn Future<Output = arca_core::Result<()>> + Send>>;

/// Records go into transactions of [`MAX_TRANSACTION_WRITES`] (or, with `single`, one
/// conditional put each); up to `in_flight` are committed at once.
struct Writer {
    store: Store,
    single: bool,
    tx: Tx,
    in_flight: usize,
    pending: FuturesUnordered<Commit>,
    items: u64,
}

impl Writer {
    fn new(store: Store, single: bool, in_flight: usize) -> Self {
        Writer {
            store,
            single,
            tx: Tx::new(),
            in_flight: in_flight.max(1),
            pending: FuturesUnordered::new(),
            items: 0,
        }
    }

    async fn add<T: Record + 'static>(&mut self, record: &mut T) -> anyhow::Result<()> {
        self.items += 1;
        if self.single {
            let store = self.store.clone();
            let record = record.clone();
            self.pending
                .push(Box::pin(async move { store.create(record).await.map(|_| ()) }));
            return self.settle().await;
        }
        self.tx.create(record)?;
        if self.tx.len() == MAX_TRANSACTION_WRITES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Waits until fewer than `in_flight` commits are pending.
    async fn settle(&mut self) -> anyhow::Result<()> {
        while self.pending.len() >= self.in_flight {
            if let Some(done) = self.pending.next().await {
                done.context("a seeding write")?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.tx.is_empty() {
            return Ok(());
        }
        let tx = std::mem::take(&mut self.tx);
        let store = self.store.clone();
        self.pending.push(Box::pin(async move { store.commit(tx).await }));
        self.settle().await
    }

    async fn finish(mut self) -> anyhow::Result<u64> {
        self.flush().await?;
        while let Some(done) = self.pending.next().await {
            done.context("a seeding transaction")?;
        }
        Ok(self.items)
    }
}

/// A small, seeded pseudo-random sequence (splitmix64): the same data set every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn secs(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(s as i64)
}

/// Everything one org is seeded with.
struct OrgPlan {
    clusters: usize,
    definitions_per_cluster: usize,
    points: usize,
    jobs: usize,
    measured: bool,
}

struct Ctx<'a> {
    now: DateTime<Utc>,
    rng: Rng,
    queue: &'a dyn Queue,
    point_index: usize,
    expired: usize,
}

struct OrgSeed {
    org: OrgId,
    api_key: Secret,
    clusters: Vec<ClusterId>,
    agent_tokens: Vec<Secret>,
    definitions: Vec<BackupDefinitionId>,
    point_sample: Vec<RecoveryPointId>,
}

/// Seeds `size` (and the burst org of `burst` definitions) into `store`, creating each
/// cluster's queue in `queue`. `in_flight`: transactions (or with `single`, puts)
/// committed at once.
pub async fn seed(
    store: &Store,
    queue: &dyn Queue,
    size: &Size,
    burst: usize,
    (single, in_flight): (bool, usize),
    now: DateTime<Utc>,
) -> anyhow::Result<Seeded> {
    let mut writer = Writer::new(store.clone(), single, in_flight);
    let mut ctx = Ctx {
        now,
        rng: Rng(0x5EED ^ size.points as u64),
        queue,
        point_index: 0,
        expired: 0,
    };
    let measured = seed_org(
        &mut writer,
        &mut ctx,
        &OrgPlan {
            clusters: size.clusters,
            definitions_per_cluster: 1,
            points: size.measured_points,
            jobs: (size.measured_points / POINTS_PER_JOB).max(10),
            measured: true,
        },
    )
    .await?;
    let others = size.orgs.saturating_sub(1);
    let other_points = size.points.saturating_sub(size.measured_points);
    for i in 0..others {
        // Spread the other points evenly (the first orgs take the remainder).
        let points = other_points / others + usize::from(i < other_points % others);
        seed_org(
            &mut writer,
            &mut ctx,
            &OrgPlan {
                clusters: size.other_clusters.max(1),
                definitions_per_cluster: 1,
                points,
                jobs: (points / POINTS_PER_JOB).max(1),
                measured: false,
            },
        )
        .await?;
    }
    let burst_seed = seed_org(
        &mut writer,
        &mut ctx,
        &OrgPlan {
            clusters: burst.div_ceil(BURST_DEFINITIONS_PER_CLUSTER),
            definitions_per_cluster: BURST_DEFINITIONS_PER_CLUSTER,
            points: 0,
            jobs: 0,
            measured: false,
        },
    )
    .await?;
    let items = writer.finish().await?;
    let mut burst_definitions = burst_seed.definitions;
    burst_definitions.truncate(burst);
    Ok(Seeded {
        api_key: measured.api_key,
        clusters: measured.clusters,
        agent_tokens: measured.agent_tokens,
        point_sample: measured.point_sample,
        expired: ctx.expired,
        points: ctx.point_index,
        burst_org: burst_seed.org,
        burst_definitions,
        items,
    })
}

async fn seed_org(writer: &mut Writer, ctx: &mut Ctx<'_>, plan: &OrgPlan) -> anyhow::Result<OrgSeed> {
    let now = ctx.now;
    let created = now - secs(400 * 86_400);
    let org_id = OrgId::new();
    let destination_id = DestinationId::new();

    // From JSON, so fields the org gains later take their serde defaults here too.
    let mut org: Org = serde_json::from_value(serde_json::json!({
        "id": org_id,
        "name": format!("bench org {org_id}"),
        "plan": Plan::Paid,
        "defaultDestinationId": destination_id,
        "createdAt": created,
        "updatedAt": created,
        "version": 0,
    }))?;
    writer.add(&mut org).await?;

    let api_key = Secret::generate(API_KEY_PREFIX)?;
    let mut key = ApiKey {
        id: ApiKeyId::new(),
        org_id,
        name: "admin".into(),
        role: Role::Admin,
        snippet: api_key.snippet(),
        created_at: created,
        updated_at: created,
        version: 0,
        secret_hash: Some(api_key.hash()),
    };
    writer.add(&mut key).await?;

    let mut destination = Destination {
        id: destination_id,
        org_id,
        spec: DestinationSpec {
            name: "backups".into(),
            target: DestinationTarget::S3 {
                endpoint: None,
                bucket: "arca-bench-backups".into(),
                region: "eu-west-1".into(),
                prefix: "arca".into(),
                credentials_ref: None,
                skip_tls_verify: false,
                path_style: None,
                ca_bundle: None,
            },
            object_lock: None,
            customer_key: None,
        },
        retiring: false,
        bucket_lock: None,
        created_at: created,
        updated_at: created,
        version: 0,
    };
    writer.add(&mut destination).await?;

    // Definitions (and their clusters and policies) first in memory: clusters and
    // policies list the definitions that refer to them.
    let cluster_ids: Vec<ClusterId> = (0..plan.clusters).map(|_| ClusterId::new()).collect();
    let mut definitions = Vec::with_capacity(plan.clusters * plan.definitions_per_cluster);
    for (c, cluster_id) in cluster_ids.iter().enumerate() {
        for d in 0..plan.definitions_per_cluster {
            definitions.push((
                BackupDefinitionId::new(),
                *cluster_id,
                format!("cluster-{c}-backup-{d}"),
            ));
        }
    }
    let policy_ids: Vec<PolicyId> = (0..definitions.len().div_ceil(DEFINITIONS_PER_POLICY).max(1))
        .map(|_| PolicyId::new())
        .collect();
    let policy_of = |i: usize| policy_ids[i / DEFINITIONS_PER_POLICY];

    for (p, policy_id) in policy_ids.iter().enumerate() {
        let used_by = definitions
            .iter()
            .enumerate()
            .filter(|(i, _)| i / DEFINITIONS_PER_POLICY == p)
            .map(|(_, (id, _, name))| PolicyReferrer {
                kind: ReferrerKind::K8sBackup,
                id: id.to_string(),
                name: name.clone(),
            })
            .collect();
        let mut policy = Policy {
            id: *policy_id,
            org_id,
            spec: PolicySpec {
                name: format!("hourly-{p}"),
                timezone: "UTC".into(),
                schedules: vec![ScheduleSpec {
                    cron: "0 * * * *".into(),
                    retain_days: 365,
                    keep_last: None,
                }],
                suspended: false,
            },
            used_by,
            created_at: created,
            updated_at: created,
            version: 0,
        };
        writer.add(&mut policy).await?;
    }

    let mut agent_tokens = Vec::new();
    for (c, cluster_id) in cluster_ids.iter().enumerate() {
        let token = Secret::generate(AGENT_TOKEN_PREFIX)?;
        let mut cluster = Cluster::registered(
            *cluster_id,
            org_id,
            ClusterSpec {
                name: format!("cluster-{c}"),
                description: "seeded by the scale bench".into(),
                tags: BTreeMap::from([("env".into(), "bench".into())]),
                default_destination_id: None,
                aws: None,
            },
            Some(token.hash()),
            created,
        );
        cluster.state = ClusterState::Active;
        cluster.backup_definition_ids = definitions
            .iter()
            .filter(|(_, cl, _)| cl == cluster_id)
            .map(|(id, _, _)| *id)
            .collect::<BTreeSet<_>>();
        writer.add(&mut cluster).await?;

        let queue = ctx.queue.create_queue(*cluster_id).await?;
        let mut agent = AgentState::new(org_id, *cluster_id, Some(queue), created);
        agent.session_id = Some(SESSION.into());
        agent.connected_at = Some(now);
        agent.last_heartbeat_at = Some(now);
        agent.kubernetes_version = Some("v1.33.2".into());
        agent.agent_version = Some(env!("CARGO_PKG_VERSION").into());
        agent.node_count = Some(3);
        agent.inventory = inventory();
        writer.add(&mut agent).await?;
        if plan.measured && agent_tokens.len() < SAMPLE {
            agent_tokens.push(token);
        }
    }

    for (i, (id, cluster_id, name)) in definitions.iter().enumerate() {
        let mut def = BackupDefinition {
            id: *id,
            org_id,
            spec: BackupDefinitionSpec {
                name: name.clone(),
                description: String::new(),
                cluster_id: *cluster_id,
                selection: Selection {
                    full_cluster: true,
                    ..Selection::default()
                },
                pv_mode: PvMode::Snapshot,
                delete_snapshot_after_copy: false,
                policy_id: Some(policy_of(i)),
                destination_id: None,
                paused: false,
                tags: BTreeMap::new(),
                hooks: Vec::new(),
                verification: None,
            },
            created_at: created,
            updated_at: created,
            version: 0,
        };
        writer.add(&mut def).await?;
    }

    // Finished backup jobs over the last year, oldest first.
    for j in 0..plan.jobs {
        let (def_id, cluster_id, _) = &definitions[j % definitions.len()];
        let at = now - secs(ctx.rng.below(365 * 86_400));
        let mut job = Job::pending(org_id, JobType::K8sBackup, JobTrigger::Scheduled, at);
        job.state = JobState::Completed;
        job.cluster_id = Some(*cluster_id);
        job.definition_id = Some(*def_id);
        job.rule = Some(0);
        job.retention = Some(Retention {
            retain_days: 365,
            keep_last: None,
        });
        job.started_at = Some(at);
        job.ended_at = Some(at + secs(90));
        job.updated_at = at + secs(90);
        job.log(at, "scheduled run");
        job.log(at + secs(90), "completed");
        writer.add(&mut job).await?;
    }

    // Recovery points: expiries spread over the next year, one in EXPIRED_EVERY already
    // past; each point in its definition's cluster, created a year or less ago.
    let mut point_sample = Vec::new();
    let sample_every = (plan.points / SAMPLE).max(1);
    for p in 0..plan.points {
        let (def_id, cluster_id, _) = &definitions[p % definitions.len()];
        let global = ctx.point_index;
        ctx.point_index += 1;
        let created_at = now - secs(ctx.rng.below(365 * 86_400));
        let expires_at = if global % EXPIRED_EVERY == EXPIRED_EVERY / 2 {
            ctx.expired += 1;
            now - secs(60 + ctx.rng.below(30 * 86_400))
        } else {
            now + secs(3_600 + ctx.rng.below(365 * 86_400))
        };
        let id = RecoveryPointId::at(created_at.into());
        let mut rp = RecoveryPoint {
            id,
            org_id,
            cluster_id: *cluster_id,
            definition_id: *def_id,
            job_id: JobId::at(created_at.into()),
            rp_type: RecoveryPointType::Snapshot,
            state: RecoveryPointState::Ready,
            partial: false,
            data_deleted: false,
            expires_at: Some(expires_at),
            locked: false,
            object_lock: None,
            rule: Some(0),
            keep_last: None,
            location: Some(RecoveryPointLocation {
                destination_id,
                prefix: format!("arca/{org_id}/{cluster_id}"),
            }),
            resource_count: 180 + ctx.rng.below(400),
            pv_count: 3,
            snapshot_bytes: 10 * 1024 * 1024 * 1024,
            copy_bytes: 0,
            details: details(&mut ctx.rng),
            verification: None,
            created_at,
            updated_at: created_at,
            version: 0,
        };
        writer.add(&mut rp).await?;
        if plan.measured && p % sample_every == 0 && point_sample.len() < SAMPLE {
            point_sample.push(id);
        }
    }

    Ok(OrgSeed {
        org: org_id,
        api_key,
        clusters: cluster_ids,
        agent_tokens,
        definitions: definitions.into_iter().map(|(id, _, _)| id).collect(),
        point_sample,
    })
}

/// What an agent reports of a small cluster: a dozen namespaces, two storage classes, a
/// few claims.
fn inventory() -> Inventory {
    let namespaces: Vec<String> = ["default", "kube-system", "monitoring", "ingress", "shop", "payments"]
        .iter()
        .map(|s| (*s).to_string())
        .chain((0..6).map(|i| format!("team-{i}")))
        .collect();
    Inventory {
        pvcs: namespaces
            .iter()
            .take(6)
            .map(|ns| PvcInfo {
                namespace: ns.clone(),
                name: "data".into(),
                storage_class: Some("gp3".into()),
                driver: Some("ebs.csi.aws.com".into()),
                size_bytes: Some(20 * 1024 * 1024 * 1024),
            })
            .collect(),
        namespaces,
        storage_classes: vec![
            StorageClassInfo {
                name: "gp3".into(),
                provisioner: "ebs.csi.aws.com".into(),
                is_default: true,
            },
            StorageClassInfo {
                name: "standard".into(),
                provisioner: "kubernetes.io/no-provisioner".into(),
                is_default: false,
            },
        ],
        csi_drivers: vec!["ebs.csi.aws.com".into()],
        volume_snapshot_classes: Vec::new(),
    }
}

/// Counts of a typical backup: a dozen kinds in a few namespaces.
fn details(rng: &mut Rng) -> BackupDetails {
    let kinds = [
        "configmaps",
        "secrets",
        "services",
        "serviceaccounts",
        "deployments.apps",
        "replicasets.apps",
        "statefulsets.apps",
        "pods",
        "persistentvolumeclaims",
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "ingresses.networking.k8s.io",
    ];
    let namespaces = ["default", "shop", "payments", "monitoring", "(cluster)"];
    BackupDetails {
        counts_by_kind: kinds.iter().map(|k| ((*k).to_string(), 1 + rng.below(40))).collect(),
        counts_by_namespace: namespaces
            .iter()
            .map(|n| ((*n).to_string(), 1 + rng.below(120)))
            .collect(),
        ..BackupDetails::default()
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A duration in seconds with one decimal.
pub fn seconds(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}
