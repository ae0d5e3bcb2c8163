//! Resource backup: discover, list page by page in parallel, select, archive.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::TypeMeta;
use kube::discovery::{Discovery, Scope, verbs};
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
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            concurrency: 8,
            page_size: 500,
            list_cluster_wide: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct BackupReport {
    pub archive_id: String,
    /// Counts, skipped objects and types with reasons, the selected PVCs (to snapshot),
    /// the CSI drivers of the selected PVs.
    pub manifest: Manifest,
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
    ) -> Result<()> {
        let ar = rt.api_resource();
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        let mut params = ListParams::default().limit(self.opts.page_size);
        if server_labels {
            params.label_selector = self.selection.label_selector();
        }
        loop {
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(e) => {
                    lock(&self.skipped).push(Skipped {
                        resource: rt.group_resource(),
                        namespace: namespace.map(str::to_string),
                        name: String::new(),
                        reason: format!("listing failed: {e}"),
                    });
                    return Ok(());
                }
            };
            for mut obj in page.items {
                // List items carry no apiVersion/kind; a restore needs them.
                obj.types = Some(TypeMeta {
                    api_version: rt.api_version(),
                    kind: rt.kind.clone(),
                });
                let value = serde_json::to_value(&obj)?;
                if let Some(reason) = skip_object(rt, &value) {
                    lock(&self.skipped).push(Skipped {
                        resource: rt.group_resource(),
                        namespace: obj.metadata.namespace.clone(),
                        name: obj.metadata.name.clone().unwrap_or_default(),
                        reason: reason.to_string(),
                    });
                    continue;
                }
                if !keep(&value) {
                    continue;
                }
                self.note_volumes(rt, &value);
                let entry = NewEntry {
                    resource: rt.clone(),
                    namespace: obj.metadata.namespace.clone(),
                    name: obj.metadata.name.clone().unwrap_or_default(),
                    uid: obj.metadata.uid.clone().unwrap_or_default(),
                };
                self.writer.put_object(entry, serde_json::to_vec(&value)?).await?;
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params.continue_token = Some(token),
                _ => return Ok(()),
            }
        }
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

async fn list_cluster_wide(client: &Client, selection: &Selection) -> bool {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) => prefer_cluster_wide(selection.namespaces.len(), list.items.len()),
        // Listing namespaces may be forbidden to a namespace-scoped identity.
        Err(_) => false,
    }
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
    };
    let concurrency = opts.concurrency.max(1);
    let by_namespace = selection.by_namespace();

    // Phase 1: namespace-scoped objects. They decide which cluster-scoped objects are
    // associated with the selection, so they go first.
    let cluster_wide = match opts.list_cluster_wide {
        Some(choice) => choice,
        None => by_namespace && list_cluster_wide(client, selection).await,
    };
    let per_namespace = by_namespace && !cluster_wide;
    let mut jobs: Vec<(&ResourceType, Option<&str>)> = Vec::new();
    for rt in types.iter().filter(|rt| rt.namespaced) {
        if per_namespace {
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
                run.list(rt, ns, !by_namespace, &keep).await
            }
            .boxed()
        })
        .collect();
    stream::iter(tasks)
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;

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
                    run.list(rt, None, server_labels, &keep).await
                }
                .boxed()
            })
            .collect();
        stream::iter(tasks)
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;
    }

    let mut skipped = std::mem::take(&mut *lock(&run.skipped));
    skipped.sort();
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
    Ok(BackupReport {
        archive_id: manifest.archive_id.clone(),
        manifest,
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
