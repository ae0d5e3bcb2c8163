//! Resource backup: discover, list page by page in parallel, select, archive.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, PoisonError};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope, verbs};
use serde::Deserialize;
use serde_json::Value;

use super::archive::{ArchiveWriter, Manifest, NewEntry, PvcRef, ResourceArchive};
use super::kinds::{NOT_LISTABLE, never_backed_up, skip_object};
use super::selection::{Associations, cluster_stage};
use super::{ResourceType, Result, Selection, Skipped};

#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// List requests in flight at once.
    pub concurrency: usize,
    /// Objects per list page: bounds the memory of each request in flight.
    pub page_size: u32,
    /// With "Select namespaces": list each type across the cluster (`Some(true)`) or once
    /// per selected namespace (`Some(false)`); `None` decides by [`prefer_cluster_wide`].
    pub list_cluster_wide: Option<bool>,
    /// The namespace the agent runs in: neither it nor anything in it is backed up (the
    /// agent token Secret would let a restore elsewhere act as this cluster).
    pub own_namespace: Option<String>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            concurrency: 8,
            page_size: 500,
            list_cluster_wide: None,
            own_namespace: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct BackupReport {
    pub archive_id: String,
    /// Counts, skipped objects and types with reasons, the selected PVCs (to snapshot),
    /// the CSI drivers of the selected PVs.
    pub manifest: Manifest,
    /// Archived objects per `plural.group`.
    pub counts_by_kind: BTreeMap<String, u64>,
    /// Archived objects per namespace; cluster-scoped ones under
    /// [`arca_core::model::recovery::CLUSTER_SCOPED`].
    pub counts_by_namespace: BTreeMap<String, u64>,
    /// Lists that failed (a type, in a namespace or everywhere): what was not backed up
    /// although selected. Also in `manifest.skipped`.
    pub errors: Vec<Skipped>,
}

/// How often one list is started again after its continue token expired.
pub const MAX_RELISTS: u32 = 3;

/// Whether a failed list request is worth starting over from the first page: the
/// server answered 410 Gone to a continue token (it expired, typically after ~5 min of
/// etcd compaction), which a fresh list without the token cures. Objects already
/// archived are not archived twice (see [`Run::list`]).
pub fn relist_after(status: Option<u16>, with_continue_token: bool, relists_so_far: u32) -> bool {
    status == Some(410) && with_continue_token && relists_so_far < MAX_RELISTS
}

fn status_of(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(response) => Some(response.code),
        _ => None,
    }
}

/// The served, listable resource types (preferred version of each group), and the types
/// left out with the reason.
pub async fn discover(client: &Client) -> Result<(Vec<ResourceType>, Vec<Skipped>)> {
    // Aggregated discovery is two requests instead of one per group version; older servers
    // do not have it.
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "aggregated discovery unavailable, falling back");
            Discovery::new(client.clone()).run().await?
        }
    };
    let mut types = Vec::new();
    let mut skipped = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            let rt = ResourceType {
                group: ar.group,
                version: ar.version,
                kind: ar.kind,
                plural: ar.plural,
                namespaced: matches!(caps.scope, Scope::Namespaced),
            };
            let reason = if let Some(reason) = never_backed_up(&rt.group_resource()) {
                Some(reason)
            } else if !caps.supports_operation(verbs::LIST) {
                Some(NOT_LISTABLE)
            } else {
                None
            };
            match reason {
                Some(reason) => skipped.push(Skipped {
                    resource: rt.group_resource(),
                    namespace: None,
                    name: String::new(),
                    reason: reason.to_string(),
                }),
                None => types.push(rt),
            }
        }
    }
    types.sort();
    skipped.sort();
    Ok((types, skipped))
}

/// A list response, its items left as JSON.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    metadata: PageMeta,
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageMeta {
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
    /// Set by the server on a page of a list without selectors: how many objects follow.
    #[serde(default)]
    remaining_item_count: Option<i64>,
}

/// How "Select namespaces" lists namespaced types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListMode {
    ClusterWide,
    PerNamespace,
    /// First page across the cluster, then decide per type; `namespaces` in the cluster.
    Probe {
        namespaces: usize,
    },
}

/// What all list tasks of one backup share.
struct Run<'a> {
    client: &'a Client,
    selection: &'a Selection,
    writer: &'a dyn ArchiveWriter,
    opts: &'a BackupOptions,
    associations: Mutex<Associations>,
    skipped: Mutex<Vec<Skipped>>,
    pvcs: Mutex<Vec<PvcRef>>,
    csi_drivers: Mutex<BTreeSet<String>>,
    errors: Mutex<Vec<Skipped>>,
    counts_by_kind: Mutex<BTreeMap<String, u64>>,
    counts_by_namespace: Mutex<BTreeMap<String, u64>>,
}

/// Runs `tasks`, at most `concurrency` at a time, to the first error.
async fn all_of(tasks: Vec<BoxFuture<'_, Result<()>>>, concurrency: usize) -> Result<()> {
    stream::iter(tasks)
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain collections that stay consistent if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Run<'_> {
    /// Lists one type (in one namespace, or everywhere), page by page, passing each object
    /// to `keep`; what `keep` accepts goes to the archive. A failed list is recorded as a
    /// skipped type, so one broken API (an aggregated server down, a type we may not read)
    /// does not sink the backup.
    ///
    /// `server_labels`: filter by the selection's labels in the API server; without it
    /// `keep` sees every object (association needs objects the labels do not select).
    async fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        server_labels: bool,
        keep: &(dyn Fn(&Value) -> bool + Sync),
        mut first: Option<Page>,
    ) -> Result<()> {
        let ar = rt.api_resource();
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        // Pages are read as plain JSON values rather than typed objects: each object is
        // parsed once, and archived as the API server sent it (plus apiVersion/kind).
        let request = kube::core::Request::new(api.resource_url());
        let mut params = ListParams::default().limit(self.opts.page_size);
        if server_labels {
            params.label_selector = self.selection.label_selector();
        }
        let group_resource = rt.group_resource();
        let api_version = Value::String(rt.api_version());
        let kind = Value::String(rt.kind.clone());
        // The objects archived by this list so far (uid, else namespace/name): after a
        // restart from the first page they are not indexed twice. Their content is
        // content-addressed, so it would not be stored twice anyway.
        let mut archived: HashSet<String> = HashSet::new();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut relists = 0u32;
        loop {
            let page = match first.take() {
                Some(page) => Ok(page),
                None => self.page(&request, &params).await,
            };
            let page = match page {
                Ok(page) => page,
                Err(e) if relist_after(status_of(&e), params.continue_token.is_some(), relists) => {
                    relists += 1;
                    tracing::info!(resource = %group_resource, namespace = ?namespace, relists,
                        "continue token expired (410): listing again from the start");
                    params.continue_token = None;
                    continue;
                }
                Err(e) => {
                    let failure = Skipped {
                        resource: group_resource.clone(),
                        namespace: namespace.map(str::to_string),
                        name: String::new(),
                        reason: format!("listing failed: {e}"),
                    };
                    lock(&self.errors).push(failure.clone());
                    lock(&self.skipped).push(failure);
                    break;
                }
            };
            for mut value in page.items {
                let Some(map) = value.as_object_mut() else {
                    continue;
                };
                // List items carry no apiVersion/kind; a restore needs them.
                map.insert("apiVersion".into(), api_version.clone());
                map.insert("kind".into(), kind.clone());
                let meta = &value["metadata"];
                let text = |field: &str| meta[field].as_str().filter(|s| !s.is_empty());
                let object_namespace = text("namespace").map(str::to_string);
                let name = text("name").unwrap_or_default().to_string();
                let uid = text("uid").unwrap_or_default().to_string();
                let own = self.opts.own_namespace.as_deref().is_some_and(|own| {
                    object_namespace.as_deref() == Some(own) || (group_resource == "namespaces" && name == own)
                });
                if let Some(reason) = skip_object(rt, &value).or(own.then_some(super::kinds::AGENT_OWN)) {
                    lock(&self.skipped).push(Skipped {
                        resource: group_resource.clone(),
                        namespace: object_namespace,
                        name,
                        reason: reason.to_string(),
                    });
                    continue;
                }
                if !keep(&value) {
                    continue;
                }
                let identity = if uid.is_empty() {
                    format!("{}/{name}", object_namespace.as_deref().unwrap_or_default())
                } else {
                    uid.clone()
                };
                if !archived.insert(identity) {
                    continue;
                }
                self.note_volumes(rt, &value);
                let json = serde_json::to_vec(&value)?;
                drop(value);
                let ns_key = object_namespace
                    .clone()
                    .unwrap_or_else(|| arca_core::model::recovery::CLUSTER_SCOPED.to_string());
                let entry = NewEntry {
                    resource: rt.clone(),
                    namespace: object_namespace,
                    name,
                    uid,
                };
                self.writer.put_object(entry, json).await?;
                *counts.entry(ns_key).or_default() += 1;
            }
            match page.metadata.continue_token {
                Some(token) if !token.is_empty() => params.continue_token = Some(token),
                _ => break,
            }
        }
        let archived_count: u64 = counts.values().sum();
        if archived_count > 0 {
            *lock(&self.counts_by_kind).entry(group_resource).or_default() += archived_count;
            let mut by_namespace = lock(&self.counts_by_namespace);
            for (ns, n) in counts {
                *by_namespace.entry(ns).or_default() += n;
            }
        }
        Ok(())
    }

    /// Lists a namespaced type for "Select namespaces": its first page across the
    /// cluster, then on across the cluster or once per selected namespace (see
    /// [`continue_cluster_wide`]).
    async fn list_probing(
        &self,
        rt: &ResourceType,
        namespaces: usize,
        keep: &(dyn Fn(&Value) -> bool + Sync),
    ) -> Result<()> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &rt.api_resource());
        let request = kube::core::Request::new(api.resource_url());
        let params = ListParams::default().limit(self.opts.page_size);
        let selected = self.selection.namespaces.len();
        match self.page(&request, &params).await {
            Ok(page) => {
                let more = page.metadata.continue_token.as_deref().is_some_and(|t| !t.is_empty());
                let objects = page
                    .metadata
                    .remaining_item_count
                    .and_then(|n| usize::try_from(n).ok())
                    .map(|n| n + page.items.len());
                if !more || objects.is_some_and(|n| continue_cluster_wide(n, selected, namespaces)) {
                    return self.list(rt, None, false, keep, Some(page)).await;
                }
            }
            // Listing across the cluster may be forbidden where listing in the selected
            // namespaces is not.
            Err(e) => tracing::debug!(resource = %rt.group_resource(), error = %e,
                "listing across the cluster failed: listing per namespace"),
        }
        let tasks: Vec<BoxFuture<'_, Result<()>>> = self
            .selection
            .namespaces
            .iter()
            .map(|ns| self.list(rt, Some(ns), false, keep, None).boxed())
            .collect();
        stream::iter(tasks)
            .buffer_unordered((self.opts.concurrency / 4).max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// One page of a list, its items as JSON values.
    async fn page(&self, request: &kube::core::Request, params: &ListParams) -> Result<Page, kube::Error> {
        let mut req = request.list(params).map_err(kube::Error::BuildRequest)?;
        req.extensions_mut().insert("list");
        self.client.request::<Page>(req).await
    }

    fn note_volumes(&self, rt: &ResourceType, obj: &Value) {
        let text = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        match rt.group_resource().as_str() {
            "persistentvolumeclaims" => lock(&self.pvcs).push(PvcRef {
                namespace: text("/metadata/namespace").unwrap_or_default(),
                name: text("/metadata/name").unwrap_or_default(),
                volume_name: text("/spec/volumeName"),
                storage_class: text("/spec/storageClassName"),
            }),
            "persistentvolumes" => {
                if let Some(driver) = text("/spec/csi/driver") {
                    lock(&self.csi_drivers).insert(driver);
                }
            }
            _ => {}
        }
    }
}

/// Whether to list each namespaced type once across the cluster (and drop other
/// namespaces' objects here) rather than once per selected namespace: one request per
/// type instead of one per type and namespace, worth it when the selection is many
/// namespaces and a good share of the cluster's (the extra objects are read, never stored).
pub fn prefer_cluster_wide(selected: usize, total: usize) -> bool {
    selected > 4 && selected * 4 >= total
}

/// How many namespaces the cluster has; `None` when listing them is forbidden (a
/// namespace-scoped identity).
async fn namespace_count(client: &Client) -> Option<usize> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    api.list_metadata(&ListParams::default())
        .await
        .ok()
        .map(|list| list.items.len())
}

/// What a request costs against reading objects that are thrown away, in objects: the
/// bench measures about 0.6 ms of wall time per (nearly empty) list request and 50 us per
/// listed object.
const REQUEST_COST_IN_OBJECTS: usize = 16;

/// Once a type's first page across the cluster shows it has more objects than one page:
/// whether to go on across the cluster (reading the objects of unselected namespaces too)
/// rather than once per selected namespace. Objects are assumed spread evenly over the
/// namespaces.
pub fn continue_cluster_wide(objects: usize, selected: usize, namespaces: usize) -> bool {
    if namespaces == 0 {
        return false;
    }
    let unselected = namespaces.saturating_sub(selected);
    // objects × unselected/namespaces read for nothing, against a request per namespace.
    objects.saturating_mul(unselected) / namespaces <= selected.saturating_mul(REQUEST_COST_IN_OBJECTS)
}

/// Backs up what `selection` selects into a new archive of `archive`.
pub async fn backup(
    client: &Client,
    selection: &Selection,
    archive: &dyn ResourceArchive,
    opts: &BackupOptions,
) -> Result<BackupReport> {
    let (types, type_skips) = discover(client).await?;
    let types: Vec<ResourceType> = types.into_iter().filter(|rt| selection.type_allowed(rt)).collect();
    let writer = archive.begin().await?;
    let run = Run {
        client,
        selection,
        writer: writer.as_ref(),
        opts,
        associations: Mutex::new(Associations::new(&selection.namespaces)),
        skipped: Mutex::new(type_skips),
        pvcs: Mutex::new(Vec::new()),
        csi_drivers: Mutex::new(BTreeSet::new()),
        errors: Mutex::new(Vec::new()),
        counts_by_kind: Mutex::new(BTreeMap::new()),
        counts_by_namespace: Mutex::new(BTreeMap::new()),
    };
    let concurrency = opts.concurrency.max(1);
    let by_namespace = selection.by_namespace();

    // Phase 1: namespace-scoped objects. They decide which cluster-scoped objects are
    // associated with the selection, so they go first.
    //
    // With "Select namespaces" and no choice in the options: across the cluster when the
    // selection is most of it; otherwise each type's first page is read across the
    // cluster, which is all of most types (a type with no object in any namespace costs
    // one request, not one per namespace), and a bigger type goes on across the cluster
    // or per namespace by [`continue_cluster_wide`].
    let mode = match opts.list_cluster_wide {
        _ if !by_namespace => ListMode::ClusterWide,
        Some(true) => ListMode::ClusterWide,
        Some(false) => ListMode::PerNamespace,
        None => match namespace_count(client).await {
            Some(total) if prefer_cluster_wide(selection.namespaces.len(), total) => ListMode::ClusterWide,
            Some(total) => ListMode::Probe { namespaces: total },
            None => ListMode::PerNamespace,
        },
    };
    let mut jobs: Vec<(&ResourceType, Option<&str>)> = Vec::new();
    for rt in types.iter().filter(|rt| rt.namespaced) {
        if mode == ListMode::PerNamespace {
            jobs.extend(selection.namespaces.iter().map(|ns| (rt, Some(ns.as_str()))));
        } else {
            jobs.push((rt, None));
        }
    }
    let run = &run;
    // Futures are boxed (and so proven Send) one by one: a stream built from closures
    // over borrowed data is not provably Send for every lifetime, which a caller that
    // spawns the backup (or runs it under async_trait) needs.
    let tasks: Vec<BoxFuture<'_, Result<()>>> = jobs
        .into_iter()
        .map(|(rt, ns)| {
            async move {
                // With "Select namespaces", a cluster-scoped object is associated with the
                // namespace's objects whether or not they carry the labels (FAQ: "associated
                // with a resource that is [in a selected namespace]"), so all are seen here
                // and the labels are applied after noting them.
                let keep = |obj: &Value| {
                    if by_namespace {
                        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
                        if !run.selection.namespaces.contains(ns) {
                            return false;
                        }
                        lock(&run.associations).note_namespaced(rt, obj);
                    }
                    run.selection.matches_labels(obj)
                };
                match (mode, ns) {
                    (ListMode::Probe { namespaces }, None) => run.list_probing(rt, namespaces, &keep).await,
                    _ => run.list(rt, ns, !by_namespace, &keep, None).await,
                }
            }
            .boxed()
        })
        .collect();
    all_of(tasks, concurrency).await?;

    // Phase 2: cluster-scoped objects, in stages (a PV names its StorageClass).
    for stage in [0, 1] {
        let stage_types: Vec<&ResourceType> = types
            .iter()
            .filter(|rt| !rt.namespaced && cluster_stage(rt) == stage)
            .collect();
        let tasks: Vec<BoxFuture<'_, Result<()>>> = stage_types
            .into_iter()
            .map(|rt| {
                async move {
                    // Stage 0 objects pass on associations (a PV its StorageClass) even when
                    // they do not carry the labels themselves.
                    let server_labels = !by_namespace || stage == 1;
                    let keep = |obj: &Value| {
                        let associated = !by_namespace || lock(&run.associations).associate_cluster(rt, obj);
                        associated && run.selection.matches_labels(obj)
                    };
                    run.list(rt, None, server_labels, &keep, None).await
                }
                .boxed()
            })
            .collect();
        all_of(tasks, concurrency).await?;
    }

    let mut skipped = std::mem::take(&mut *lock(&run.skipped));
    skipped.sort();
    // A list started again after an expired continue token meets its skips again.
    skipped.dedup();
    let mut pvcs = std::mem::take(&mut *lock(&run.pvcs));
    pvcs.sort();
    let manifest = Manifest {
        created_at: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()).to_rfc3339(),
        selection: selection.clone(),
        skipped,
        pvcs,
        csi_drivers: std::mem::take(&mut *lock(&run.csi_drivers)),
        ..Manifest::default()
    };
    let manifest = writer.finish(manifest).await?;
    tracing::info!(
        archive = %manifest.archive_id,
        objects = manifest.objects,
        new_objects = manifest.new_objects,
        skipped = manifest.skipped.len(),
        "resource backup finished"
    );
    let mut errors = std::mem::take(&mut *lock(&run.errors));
    errors.sort();
    Ok(BackupReport {
        archive_id: manifest.archive_id.clone(),
        manifest,
        counts_by_kind: std::mem::take(&mut *lock(&run.counts_by_kind)),
        counts_by_namespace: std::mem::take(&mut *lock(&run.counts_by_namespace)),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only if a backup can run in a spawned task (the job runner does that).
    #[allow(dead_code)]
    fn backup_future_is_send(client: &Client, s: &Selection, a: &dyn ResourceArchive, o: &BackupOptions) {
        fn is_send<T: Send>(_: T) {}
        is_send(backup(client, s, a, o));
    }

    #[test]
    fn only_an_expired_continue_token_restarts_a_list_and_only_a_few_times() {
        assert!(
            relist_after(Some(410), true, 0),
            "410 Gone on a continue token: list again"
        );
        assert!(relist_after(Some(410), true, MAX_RELISTS - 1));
        assert!(!relist_after(Some(410), true, MAX_RELISTS), "not forever");
        assert!(
            !relist_after(Some(410), false, 0),
            "410 on a first page is not an expired token"
        );
        for other in [Some(403), Some(404), Some(500), Some(503), None] {
            assert!(!relist_after(other, true, 0), "{other:?} is a failed list");
        }
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "message": "The provided continue parameter is too old",
            "reason": "Expired", "code": 410
        }))
        .unwrap();
        let gone = kube::Error::Api(Box::new(status));
        assert_eq!(status_of(&gone), Some(410));
    }

    #[test]
    fn big_types_go_on_across_the_cluster_only_when_little_is_read_for_nothing() {
        // 10,000 objects, 100 of 900 namespaces selected: per namespace.
        assert!(!continue_cluster_wide(10_000, 100, 900));
        // 1,000 objects, 100 of 200 namespaces: 500 read for nothing < 100 requests.
        assert!(continue_cluster_wide(1_000, 100, 200));
        // One namespace of many, a big type: per namespace.
        assert!(!continue_cluster_wide(600, 1, 300));
        assert!(continue_cluster_wide(600, 10, 10), "every namespace selected");
        assert!(!continue_cluster_wide(600, 1, 0));
    }

    #[test]
    fn many_namespaces_are_listed_cluster_wide() {
        assert!(!prefer_cluster_wide(1, 1), "one namespace: per namespace");
        assert!(!prefer_cluster_wide(4, 10));
        assert!(prefer_cluster_wide(100, 120));
        assert!(prefer_cluster_wide(25, 100));
        assert!(
            !prefer_cluster_wide(24, 100),
            "a small share of a big cluster: per namespace"
        );
    }
}
