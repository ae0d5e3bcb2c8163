//! Resource restore: read an archive, check the target, create objects in priority order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, stream};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::archive::{ArchiveReader, IndexEntry, ReadFilter, ResourceArchive};
use super::clean::{CleanOptions, NamespaceMap, clean, restore_skip_reason};
use super::kinds::{default_restore_order, restore_rank};
use super::selection::{Associations, cluster_stage};
use super::{Error, ResourceType, Result, Selection};

/// What happens when a restored object already exists in the target cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingPolicy {
    /// Leave it alone (reported `skipped`).
    #[default]
    Skip,
    /// Replace it with the backed-up object (reported `updated`).
    Update,
    /// Refuse the whole restore, before anything is created, if any object exists.
    Fail,
}

impl From<arca_core::model::restore::ExistingResourcePolicy> for ExistingPolicy {
    fn from(p: arca_core::model::restore::ExistingResourcePolicy) -> Self {
        use arca_core::model::restore::ExistingResourcePolicy as P;
        match p {
            P::Skip => ExistingPolicy::Skip,
            P::Update => ExistingPolicy::Update,
            P::Fail => ExistingPolicy::Fail,
        }
    }
}

/// A claim's name and namespace (empty where it has none).
pub fn claim_name_and_namespace(claim: &Value) -> (&str, &str) {
    let name = claim.pointer("/metadata/name").and_then(Value::as_str);
    let namespace = claim.pointer("/metadata/namespace").and_then(Value::as_str);
    (name.unwrap_or_default(), namespace.unwrap_or_default())
}

/// Provides the data of restored claims: the volume restore ([`crate::volumes`]) plugs in
/// here so a claim is created once, by the resource restore, from the data source it prepared.
#[async_trait::async_trait]
pub trait ClaimData: Send + Sync {
    /// Whether the claim `namespace/name` (source names) gets its data from this hook.
    fn provides(&self, source_namespace: &str, name: &str) -> bool;
    /// Whether the PV of this (source) name belongs to a claim this hook provides: its
    /// object is not restored, a new volume is provisioned from the prepared source.
    fn provides_pv(&self, pv: &str) -> bool;
    /// Called right before a claim it [`provides`](Self::provides) is created, with the
    /// claim as it will be created (target namespace, mapped storage class). Returns where
    /// the claim's data is, or why its data cannot be restored (the claim then fails).
    async fn prepare(&self, source_namespace: &str, claim: &Value) -> std::result::Result<ClaimSource, String>;
}

/// Where a restored claim's data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimSource {
    /// The claim's `spec.dataSource` (a VolumeSnapshot): a new volume is provisioned from it.
    DataSource(Value),
    /// A PersistentVolume already holding the data and pre-bound to the claim (its
    /// `claimRef`): the claim is created with this `volumeName`.
    Volume(String),
}

/// A [`ClaimData`] in [`RestoreOptions`].
#[derive(Clone)]
pub struct ClaimDataHook(pub Arc<dyn ClaimData>);

impl std::fmt::Debug for ClaimDataHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimDataHook(..)")
    }
}

#[derive(Clone, Debug)]
pub struct RestoreOptions {
    pub archive_id: String,
    /// Labels every restored object (`arca.io/restore-id`); must be a valid label value.
    pub restore_id: String,
    /// Narrows what the archive holds: source namespaces (their associated cluster-scoped
    /// objects come along, as in a backup), labels, kinds. Default: everything.
    pub selection: Selection,
    pub namespace_prefix: String,
    pub namespace_suffix: String,
    /// Source namespace -> target namespace; wins over prefix and suffix.
    pub namespace_map: BTreeMap<String, String>,
    /// Source storage class -> target storage class (PVCs, PVs, StatefulSet claim templates).
    pub storage_class_map: BTreeMap<String, String>,
    pub existing: ExistingPolicy,
    /// Restore PersistentVolume objects (and precheck their CSI drivers).
    pub restore_pvs: bool,
    /// Restore order as `plural.group` names with `*` for the rest; default
    /// [`super::kinds::DEFAULT_RESTORE_ORDER`].
    pub order: Option<Vec<String>>,
    /// Types (`plural.group`) whose status is restored.
    pub restore_status: BTreeSet<String>,
    pub preserve_node_ports: bool,
    pub concurrency: usize,
    /// How long to wait for a restored CRD to be Established.
    pub crd_timeout: Duration,
    /// Where restored claims get their data (volume snapshots, repository copies).
    pub claim_data: Option<ClaimDataHook>,
    /// The namespace the restoring agent runs in: nothing is restored into it, and no
    /// object of an agent's install (label `app.kubernetes.io/part-of: arca`) anywhere,
    /// even from an archive an older agent wrote with them.
    pub own_namespace: Option<String>,
}

impl RestoreOptions {
    pub fn new(archive_id: &str, restore_id: &str) -> Self {
        RestoreOptions {
            archive_id: archive_id.to_string(),
            restore_id: restore_id.to_string(),
            selection: Selection::default(),
            namespace_prefix: String::new(),
            namespace_suffix: String::new(),
            namespace_map: BTreeMap::new(),
            storage_class_map: BTreeMap::new(),
            existing: ExistingPolicy::Skip,
            restore_pvs: true,
            order: None,
            restore_status: BTreeSet::new(),
            preserve_node_ports: false,
            concurrency: 8,
            crd_timeout: Duration::from_secs(60),
            claim_data: None,
            own_namespace: None,
        }
    }

    /// The options of a control-plane restore request.
    pub fn from_spec(spec: &arca_core::model::restore::RestoreSpec, archive_id: &str, restore_id: &str) -> Self {
        RestoreOptions {
            selection: (&spec.selection).into(),
            namespace_prefix: spec.namespace_prefix.clone(),
            namespace_suffix: spec.namespace_suffix.clone(),
            namespace_map: spec.namespace_map.clone(),
            storage_class_map: spec.storage_class_map.clone(),
            existing: spec.existing_resource_policy.into(),
            restore_pvs: spec.restore_pvs,
            ..RestoreOptions::new(archive_id, restore_id)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    Created,
    Updated,
    Skipped { reason: String },
    Failed { error: String },
}

/// One object of the restore, named as in the target cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RestoreStatus {
    Completed,
    /// Some objects failed, the others were restored.
    Partial,
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub restore_id: String,
    pub archive_id: String,
    pub status: RestoreStatus,
    pub items: Vec<ItemResult>,
}

impl RestoreReport {
    pub fn item(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<&Outcome> {
        self.items
            .iter()
            .find(|i| i.resource == resource && i.namespace.as_deref() == namespace && i.name == name)
            .map(|i| &i.outcome)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain collections: consistent even if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shared state of one restore.
struct Run<'a> {
    client: &'a Client,
    reader: &'a dyn ArchiveReader,
    opts: &'a RestoreOptions,
    clean: CleanOptions,
    /// Source uids of every object this restore brings.
    in_restore: HashSet<String>,
    /// Source uid -> uid in the target, once restored (or found existing).
    uids: Mutex<HashMap<String, String>>,
    /// PV name -> whether this restore made it (created or updated).
    pvs: Mutex<HashMap<String, bool>>,
    /// Objects whose owners were not restored yet when they were created.
    deferred: Mutex<Vec<Deferred>>,
    items: Mutex<Vec<ItemResult>>,
}

/// An object created before some of its owners: the ownerReferences still to add.
struct Deferred {
    resource: ResourceType,
    namespace: Option<String>,
    name: String,
    owners: Vec<Value>,
}

fn api_for(client: &Client, rt: &ResourceType, namespace: Option<&str>) -> Api<DynamicObject> {
    let ar = rt.api_resource();
    match namespace {
        Some(ns) if rt.namespaced => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    }
}

fn target_name(rt: &ResourceType, entry: &IndexEntry, map: &NamespaceMap) -> String {
    if rt.group_resource() == "namespaces" {
        map.target(&entry.name)
    } else {
        entry.name.clone()
    }
}

impl Run<'_> {
    fn report(&self, entry: &IndexEntry, outcome: Outcome) {
        let map = &self.clean.namespaces;
        lock(&self.items).push(ItemResult {
            resource: entry.resource.group_resource(),
            namespace: entry.namespace.as_deref().map(|ns| map.target(ns)),
            name: target_name(&entry.resource, entry, map),
            outcome,
        });
    }

    /// Rewrites ownerReferences to the owners' uids in the target. An owner this restore
    /// brings but has not created yet is relinked at the end; an owner it does not bring
    /// is dropped, since a reference to a uid that does not exist gets the object
    /// garbage-collected.
    fn relink(&self, obj: &mut Value) -> Vec<Value> {
        let Some(refs) = obj
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        else {
            return Vec::new();
        };
        let uids = lock(&self.uids);
        let mut pending = Vec::new();
        refs.retain_mut(|r| {
            let old = r["uid"].as_str().unwrap_or_default().to_string();
            if let Some(new) = uids.get(&old) {
                r["uid"] = Value::String(new.clone());
                true
            } else {
                if self.in_restore.contains(&old) {
                    pending.push(r.clone());
                }
                false
            }
        });
        if refs.is_empty()
            && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("ownerReferences");
        }
        pending
    }

    async fn restore_one(&self, entry: &IndexEntry) {
        let outcome = match self.try_restore(entry).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed { error: e.to_string() },
        };
        if entry.resource.group_resource() == "persistentvolumes" {
            let made = matches!(outcome, Outcome::Created | Outcome::Updated);
            lock(&self.pvs).insert(entry.name.clone(), made);
        }
        self.report(entry, outcome);
    }

    async fn try_restore(&self, entry: &IndexEntry) -> Result<Outcome> {
        let rt = &entry.resource;
        let gr = rt.group_resource();
        if gr == "persistentvolumes" && !self.opts.restore_pvs {
            return Ok(Outcome::Skipped {
                reason: "restorePvs is off".into(),
            });
        }
        let hook = self.opts.claim_data.as_ref().map(|h| h.0.as_ref());
        if gr == "persistentvolumes" && hook.is_some_and(|h| h.provides_pv(&entry.name)) {
            return Ok(Outcome::Skipped {
                reason: "its claim is restored from the backup's volume data onto a new volume".into(),
            });
        }
        let claim_hook = match (hook, entry.namespace.as_deref()) {
            (Some(h), Some(ns)) if gr == "persistentvolumeclaims" && h.provides(ns, &entry.name) => Some((h, ns)),
            _ => None,
        };
        let map = &self.clean.namespaces;
        let into_own = self.opts.own_namespace.as_deref().is_some_and(|own| {
            entry.namespace.as_deref().map(|ns| map.target(ns)).as_deref() == Some(own)
                || (gr == "namespaces" && target_name(rt, entry, map) == own)
        });
        if into_own {
            return Ok(Outcome::Skipped {
                reason: super::kinds::AGENT_OWN.into(),
            });
        }
        let obj = self.reader.object(entry).await?;
        if obj["metadata"]["labels"][super::kinds::PART_OF_LABEL] == super::kinds::PART_OF {
            return Ok(Outcome::Skipped {
                reason: super::kinds::AGENT_OWN.into(),
            });
        }
        if !self.opts.selection.matches_labels(&obj) {
            return Ok(Outcome::Skipped {
                reason: "does not match the restore's labels".into(),
            });
        }
        if let Some(reason) = restore_skip_reason(rt, &obj) {
            return Ok(Outcome::Skipped { reason });
        }
        let mut obj = clean(rt, obj, &self.clean);
        if gr == "persistentvolumeclaims"
            && let Some(volume) = obj
                .pointer("/spec/volumeName")
                .and_then(Value::as_str)
                .map(str::to_string)
            && lock(&self.pvs).get(&volume) != Some(&true)
        {
            // The PV was not made by this restore (not in it, skipped, or an existing one
            // bound to the original claim): let the claim be provisioned or filled from
            // a snapshot instead of pointing at someone else's volume.
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("volumeName");
            }
        }
        if gr == "persistentvolumeclaims"
            && let Some(ann) = obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut)
        {
            // A claim created "bind-completed" whose volume the PV controller has not seen
            // yet (the PV was created a moment before) is marked Lost for good; without the
            // marks it is bound to its volumeName once that appears, or provisioned.
            ann.remove("pv.kubernetes.io/bind-completed");
            ann.remove("pv.kubernetes.io/bound-by-controller");
        }
        if let Some((hook, source_ns)) = claim_hook {
            let target_ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let api = api_for(self.client, rt, Some(&target_ns));
            // An existing claim keeps its volume: its data is never replaced in place, and
            // the data (a mover run) is not prepared for nothing.
            if api.get_opt(&entry.name).await?.is_some() {
                return Ok(match self.opts.existing {
                    ExistingPolicy::Fail => Outcome::Failed {
                        error: "already exists (policy fail)".into(),
                    },
                    _ => Outcome::Skipped {
                        reason: "already exists; its volume data is not replaced".into(),
                    },
                });
            }
            match hook.prepare(source_ns, &obj).await {
                Ok(source) => {
                    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove("volumeName");
                        spec.remove("dataSourceRef");
                        match source {
                            ClaimSource::DataSource(source) => {
                                spec.insert("dataSource".into(), source);
                            }
                            ClaimSource::Volume(pv) => {
                                spec.remove("dataSource");
                                spec.insert("volumeName".into(), Value::String(pv));
                            }
                        }
                    }
                }
                Err(error) => {
                    return Ok(Outcome::Failed {
                        error: format!("volume data: {error}"),
                    });
                }
            }
        }
        let pending_owners = self.relink(&mut obj);
        let namespace = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let api = api_for(self.client, rt, namespace.as_deref());
        let (outcome, uid) = match create_with_port_fallback(&api, rt, &obj).await {
            Ok(created) => (Outcome::Created, created.metadata.uid),
            Err(Error::Kube(kube::Error::Api(status))) if status.is_already_exists() => {
                let existing = api.get(&name).await?;
                match self.opts.existing {
                    ExistingPolicy::Skip => (
                        Outcome::Skipped {
                            reason: "already exists".into(),
                        },
                        existing.metadata.uid,
                    ),
                    ExistingPolicy::Fail => {
                        return Ok(Outcome::Failed {
                            error: "already exists (policy fail)".into(),
                        });
                    }
                    ExistingPolicy::Update => {
                        if let Some(reason) = not_updatable(rt, &obj, &existing) {
                            (Outcome::Skipped { reason }, existing.metadata.uid)
                        } else {
                            let replaced = replace_with_port_fallback(&api, rt, obj, &existing).await?;
                            (Outcome::Updated, replaced.metadata.uid)
                        }
                    }
                }
            }
            Err(e) => return Err(e),
        };
        if let Some(uid) = uid
            && !entry.uid.is_empty()
        {
            lock(&self.uids).insert(entry.uid.clone(), uid);
        }
        if !pending_owners.is_empty() && matches!(outcome, Outcome::Created | Outcome::Updated) {
            lock(&self.deferred).push(Deferred {
                resource: rt.clone(),
                namespace,
                name: name.clone(),
                owners: pending_owners,
            });
        }
        if gr == "customresourcedefinitions.apiextensions.k8s.io" {
            self.wait_established(&name).await?;
        }
        Ok(outcome)
    }

    async fn wait_established(&self, name: &str) -> Result<()> {
        let api: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &kube::discovery::ApiResource {
                group: "apiextensions.k8s.io".into(),
                version: "v1".into(),
                api_version: "apiextensions.k8s.io/v1".into(),
                kind: "CustomResourceDefinition".into(),
                plural: "customresourcedefinitions".into(),
            },
        );
        let deadline = tokio::time::Instant::now() + self.opts.crd_timeout;
        loop {
            let crd = api.get(name).await?;
            let established = crd.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            if established {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Precheck(format!(
                    "CRD {name} not Established after {:?}",
                    self.opts.crd_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Relinks the ownerReferences that waited for owners restored later.
    async fn finish_relinks(&self) {
        let deferred = std::mem::take(&mut *lock(&self.deferred));
        for Deferred {
            resource: rt,
            namespace,
            name,
            owners: pending,
        } in deferred
        {
            let api = api_for(self.client, &rt, namespace.as_deref());
            let result = async {
                let current = api.get(&name).await?;
                let mut refs: Vec<Value> = current
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?;
                {
                    let uids = lock(&self.uids);
                    for mut r in pending {
                        if let Some(new) = r["uid"].as_str().and_then(|old| uids.get(old)) {
                            r["uid"] = Value::String(new.clone());
                            refs.push(r);
                        }
                    }
                }
                let patch = json!({"metadata": {"ownerReferences": refs}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                Ok::<_, Error>(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(resource = %rt.group_resource(), ?namespace, %name, error = %e, "relinking owners failed");
                lock(&self.items).push(ItemResult {
                    resource: rt.group_resource(),
                    namespace,
                    name,
                    outcome: Outcome::Failed {
                        error: format!("relinking ownerReferences: {e}"),
                    },
                });
            }
        }
    }
}

/// Why an existing object is left alone even under policy `update`, if it is.
fn not_updatable(rt: &ResourceType, desired: &Value, existing: &DynamicObject) -> Option<String> {
    match rt.group_resource().as_str() {
        // A pod's spec is immutable and admission has added to it (priority, token volumes).
        "pods" => Some("exists; a pod cannot be updated in place".into()),
        // Rebinding a PV away from the claim it serves would take its data from that claim.
        "persistentvolumes" => {
            let claim = |v: &Value| {
                (
                    v.pointer("/spec/claimRef/namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    v.pointer("/spec/claimRef/name")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                )
            };
            let current = claim(&existing.data);
            (current.1.is_some() && current != claim(desired)).then(|| "exists and is bound to another claim".into())
        }
        _ => None,
    }
}

/// Set-by-the-server fields an update may not change, taken from `existing`.
fn for_update(
    rt: &ResourceType,
    mut obj: Value,
    existing: &DynamicObject,
    keep_node_ports: bool,
) -> Result<DynamicObject> {
    obj["metadata"]["resourceVersion"] = json!(existing.metadata.resource_version);
    match rt.group_resource().as_str() {
        "services" => {
            for field in ["clusterIP", "clusterIPs"] {
                if let Some(v) = existing.data["spec"].get(field) {
                    obj["spec"][field] = v.clone();
                }
            }
            if !keep_node_ports {
                copy_node_ports(&mut obj, &existing.data);
            }
        }
        "persistentvolumeclaims" if obj.pointer("/spec/volumeName").is_none() => {
            if let Some(v) = existing.data.pointer("/spec/volumeName") {
                obj["spec"]["volumeName"] = v.clone();
            }
        }
        _ => {}
    }
    Ok(serde_json::from_value(obj)?)
}

fn port_taken(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.message.contains("port is already allocated"))
}

/// Creates the object; a Service whose explicit nodePort is taken in the target (a copy
/// next to the original, in the same cluster) is created with allocated ports instead.
async fn create_with_port_fallback(api: &Api<DynamicObject>, rt: &ResourceType, obj: &Value) -> Result<DynamicObject> {
    let desired: DynamicObject = serde_json::from_value(obj.clone())?;
    match api.create(&PostParams::default(), &desired).await {
        Err(e) if rt.group_resource() == "services" && port_taken(&e) => {
            let mut obj = obj.clone();
            copy_node_ports(&mut obj, &Value::Null);
            tracing::warn!(service = ?desired.metadata.name, "nodePort taken in the target; using allocated ports");
            Ok(api
                .create(&PostParams::default(), &serde_json::from_value(obj)?)
                .await?)
        }
        other => Ok(other?),
    }
}

async fn replace_with_port_fallback(
    api: &Api<DynamicObject>,
    rt: &ResourceType,
    obj: Value,
    existing: &DynamicObject,
) -> Result<DynamicObject> {
    let name = existing.metadata.name.clone().unwrap_or_default();
    match api
        .replace(
            &name,
            &PostParams::default(),
            &for_update(rt, obj.clone(), existing, true)?,
        )
        .await
    {
        Err(e) if rt.group_resource() == "services" && port_taken(&e) => Ok(api
            .replace(&name, &PostParams::default(), &for_update(rt, obj, existing, false)?)
            .await?),
        other => Ok(other?),
    }
}

/// Sets each port's nodePort to the one `from` has for the same port number, or removes it.
fn copy_node_ports(obj: &mut Value, from: &Value) {
    let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return;
    };
    for port in ports {
        let current = from
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p["port"] == port["port"])
            .and_then(|p| p.get("nodePort"))
            .cloned();
        if let Some(p) = port.as_object_mut() {
            match current {
                Some(n) => p.insert("nodePort".into(), n),
                None => p.remove("nodePort"),
            };
        }
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        match from.pointer("/spec/healthCheckNodePort") {
            Some(n) => spec.insert("healthCheckNodePort".into(), n.clone()),
            None => spec.remove("healthCheckNodePort"),
        };
    }
}

/// Cluster-scoped entries associated with the namespaces a restore selects, decided as a
/// backup decides them, from the archived objects of those namespaces.
async fn associated_cluster_entries(
    reader: &dyn ArchiveReader,
    selection: &Selection,
    namespaced: &[IndexEntry],
    cluster: Vec<IndexEntry>,
) -> Result<Vec<IndexEntry>> {
    let mut assoc = Associations::new(&selection.namespaces);
    for entry in namespaced {
        // As in a backup: association does not depend on the labels.
        assoc.note_namespaced(&entry.resource, &reader.object(entry).await?);
    }
    let mut kept = Vec::new();
    for stage in [0, 1] {
        for entry in cluster.iter().filter(|e| cluster_stage(&e.resource) == stage) {
            let obj = reader.object(entry).await?;
            if assoc.associate_cluster(&entry.resource, &obj) {
                kept.push(entry.clone());
            }
        }
    }
    Ok(kept)
}

/// Runs `lookups`, at most `concurrency` (at least one) at a time; what they found.
async fn found<T>(lookups: Vec<BoxFuture<'_, Option<T>>>, concurrency: usize) -> Vec<T> {
    stream::iter(lookups)
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// CSI drivers the restored PVs need that the target lacks. A driver "exists" in the
/// target when a CSIDriver object of that name exists there, or a StorageClass there
/// (not one this restore brings) names it as provisioner: some drivers register no
/// CSIDriver object.
async fn missing_csi_drivers(client: &Client, needed: &BTreeSet<String>) -> Result<BTreeSet<String>> {
    if needed.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut present = BTreeSet::new();
    let drivers = list_all::<k8s_openapi::api::storage::v1::CSIDriver>(client).await?;
    present.extend(drivers.into_iter().filter_map(|d| d.metadata.name));
    let classes = list_all::<k8s_openapi::api::storage::v1::StorageClass>(client).await?;
    present.extend(classes.into_iter().map(|c| c.provisioner));
    Ok(needed.difference(&present).cloned().collect())
}

/// Every object of cluster-scoped type `K` (one unpaged list).
async fn list_all<K>(client: &Client) -> Result<Vec<K>>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Ok(Api::<K>::all(client.clone()).list(&ListParams::default()).await?.items)
}

/// Restores an archive into the cluster of `client`.
///
/// Fails without touching the target when a precheck fails (a CSI driver the PVs need is
/// missing; objects exist under policy `fail`). Otherwise every object gets an outcome in
/// the report, and the status is PARTIAL if some failed.
pub async fn restore(client: &Client, archive: &dyn ResourceArchive, opts: &RestoreOptions) -> Result<RestoreReport> {
    let reader = archive.open(&opts.archive_id).await?;
    let selection = &opts.selection;
    let filter = ReadFilter {
        namespaces: selection.by_namespace().then(|| selection.namespaces.clone()),
        cluster_scoped: true,
        resources: None,
    };
    let entries: Vec<IndexEntry> = reader
        .entries(&filter)
        .await?
        .into_iter()
        .filter(|e| selection.type_allowed(&e.resource))
        .collect();
    let (namespaced, cluster): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.namespace.is_some());
    let cluster = if selection.by_namespace() {
        associated_cluster_entries(reader.as_ref(), selection, &namespaced, cluster).await?
    } else {
        cluster
    };
    let mut entries: Vec<IndexEntry> = cluster.into_iter().chain(namespaced).collect();

    let restored_namespaces: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| match (&e.namespace, e.resource.group_resource().as_str()) {
            (Some(ns), _) => Some(ns.clone()),
            (None, "namespaces") => Some(e.name.clone()),
            _ => None,
        })
        .collect();
    let clean = CleanOptions {
        namespaces: NamespaceMap {
            prefix: opts.namespace_prefix.clone(),
            suffix: opts.namespace_suffix.clone(),
            explicit: opts.namespace_map.clone(),
            restored: restored_namespaces.clone(),
        },
        storage_classes: opts.storage_class_map.clone(),
        restore_status: opts.restore_status.clone(),
        preserve_node_ports: opts.preserve_node_ports,
        restore_id: opts.restore_id.clone(),
    };

    // Precheck 0: the agent may write every kind it is about to restore. Its RBAC may
    // leave restores out or limit their kinds (docs/agent.md, "RBAC"): better to refuse
    // now, naming what is missing, than to fail half-way with half the objects created.
    let missing = missing_permissions(client, reader.as_ref(), &entries, &clean.namespaces, opts).await?;
    if !missing.is_empty() {
        return Err(Error::Precheck(missing_permissions_message(&missing)));
    }
    // Precheck 1: the CSI drivers of the PVs to restore.
    if opts.restore_pvs {
        let mut needed = BTreeSet::new();
        for entry in entries
            .iter()
            .filter(|e| e.resource.group_resource() == "persistentvolumes")
        {
            let pv = reader.object(entry).await?;
            if let Some(driver) = pv.pointer("/spec/csi/driver").and_then(Value::as_str) {
                needed.insert(driver.to_string());
            }
        }
        let missing = missing_csi_drivers(client, &needed).await?;
        if !missing.is_empty() {
            return Err(Error::Precheck(format!(
                "the target cluster has no CSI driver {} (no CSIDriver object and no StorageClass provisioner of that name); \
                 install the driver(s) the source PVs use, or restore without PVs",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    // Precheck 2: with policy `fail`, nothing may exist yet.
    if opts.existing == ExistingPolicy::Fail {
        let lookups: Vec<BoxFuture<'_, Option<String>>> = entries
            .iter()
            .map(|e| {
                let api = api_for(
                    client,
                    &e.resource,
                    e.namespace.as_deref().map(|ns| clean.namespaces.target(ns)).as_deref(),
                );
                let name = target_name(&e.resource, e, &clean.namespaces);
                async move {
                    match api.get_opt(&name).await {
                        Ok(Some(_)) => Some(format!("{} {name}", e.resource.group_resource())),
                        // Absent, or a type the target does not serve yet (a CRD to restore).
                        Ok(None) | Err(_) => None,
                    }
                }
                .boxed()
            })
            .collect();
        let existing = found(lookups, opts.concurrency).await;
        if !existing.is_empty() {
            let mut existing = existing;
            existing.sort();
            return Err(Error::Precheck(format!(
                "{} object(s) already exist and the policy is fail: {}",
                existing.len(),
                existing.iter().take(20).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }

    let order = opts.order.clone().unwrap_or_else(default_restore_order);
    // Types an overriding order puts in the same place (its "*") still go in the default
    // order among themselves: PVs before the claims that bind them, and so on. Without
    // this, objects of one rank run in parallel and a claim can race its volume.
    let default_order = default_restore_order();
    let rank_of = |gr: &str| (restore_rank(&order, gr), restore_rank(&default_order, gr));
    entries.sort_by_key(|e| rank_of(&e.resource.group_resource()));
    let run = Run {
        client,
        reader: reader.as_ref(),
        opts,
        in_restore: entries
            .iter()
            .map(|e| e.uid.clone())
            .filter(|u| !u.is_empty())
            .collect(),
        clean,
        uids: Mutex::new(HashMap::new()),
        pvs: Mutex::new(HashMap::new()),
        deferred: Mutex::new(Vec::new()),
        items: Mutex::new(Vec::new()),
    };

    // Objects of one rank go in parallel; ranks one after the other.
    let mut namespaces_ensured = false;
    let mut rest = entries.as_slice();
    while let Some(first) = rest.first() {
        let rank = rank_of(&first.resource.group_resource());
        let len = rest
            .iter()
            .take_while(|e| rank_of(&e.resource.group_resource()) == rank)
            .count();
        let (group, tail) = rest.split_at(len);
        rest = tail;
        if !namespaces_ensured && group.iter().any(|e| e.namespace.is_some()) {
            ensure_namespaces(&run, &restored_namespaces).await;
            namespaces_ensured = true;
        }
        // Boxed one by one so the restore future is provably Send (see backup.rs).
        let tasks: Vec<BoxFuture<'_, ()>> = group.iter().map(|e| run.restore_one(e).boxed()).collect();
        stream::iter(tasks)
            .buffer_unordered(opts.concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
    }
    run.finish_relinks().await;

    let items = std::mem::take(&mut *lock(&run.items));
    let failed = items
        .iter()
        .filter(|i| matches!(i.outcome, Outcome::Failed { .. }))
        .count();
    let status = match failed {
        0 => RestoreStatus::Completed,
        n if n == items.len() => RestoreStatus::Failed,
        _ => RestoreStatus::Partial,
    };
    tracing::info!(restore = %opts.restore_id, objects = items.len(), failed, ?status, "resource restore finished");
    Ok(RestoreReport {
        restore_id: opts.restore_id.clone(),
        archive_id: opts.archive_id.clone(),
        status,
        items,
    })
}

/// A write the restore needs and the agent's RBAC does not allow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingPermission {
    pub verb: String,
    /// Empty for the core group.
    pub group: String,
    pub resource: String,
    /// The target namespace (None: cluster-scoped, or every namespace).
    pub namespace: Option<String>,
}

impl MissingPermission {
    /// As an install names it (`?restoreKinds=`, chart `rbac.restoreKinds`).
    pub fn kind(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.group, self.resource)
        }
    }
}

/// Asks the API server (SelfSubjectAccessReview: the agent's own RBAC, as the
/// authorizer sees it) whether the agent may `verb` `group/resource` in `namespace`.
/// `Ok(None)` when the review itself could not be made.
async fn allowed(client: &Client, verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> Option<bool> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                namespace: namespace.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    match api.create(&PostParams::default(), &review).await {
        Ok(answer) => Some(answer.status.is_some_and(|s| s.allowed)),
        Err(e) => {
            tracing::warn!(verb, group, resource, ?namespace, error = %e, "could not review the agent's permission");
            None
        }
    }
}

/// The writes the restore of `entries` needs and the agent may not do: `create` of every
/// kind it will restore in every target namespace (and `update` under policy `update`),
/// and `create` of the target namespaces that do not exist yet. Entries the restore would
/// skip anyway (its own namespace, PVs left out, pods of controllers, completed Jobs,
/// objects outside the label selection) need nothing. A review the API server cannot
/// answer is logged and counted as allowed: the precheck must not block restores on an
/// authorization API glitch (the restore then reports per object).
async fn missing_permissions(
    client: &Client,
    reader: &dyn ArchiveReader,
    entries: &[IndexEntry],
    namespaces: &NamespaceMap,
    opts: &RestoreOptions,
) -> Result<Vec<MissingPermission>> {
    let mut needed: BTreeSet<(String, String, Option<String>)> = BTreeSet::new();
    let mut target_namespaces: BTreeSet<String> = BTreeSet::new();
    let own = opts.own_namespace.as_deref();
    let hook = opts.claim_data.as_ref().map(|h| h.0.as_ref());
    for entry in entries {
        let rt = &entry.resource;
        let gr = rt.group_resource();
        let target_ns = entry.namespace.as_deref().map(|ns| namespaces.target(ns));
        let target = target_name(rt, entry, namespaces);
        if (gr == "persistentvolumes" && (!opts.restore_pvs || hook.is_some_and(|h| h.provides_pv(&entry.name))))
            || target_ns.is_some() && target_ns.as_deref() == own
            || (gr == "namespaces" && Some(target.as_str()) == own)
        {
            continue;
        }
        // Whether the restore skips this object depends on the object itself only for
        // these kinds, and for label selections.
        if gr == "pods" || gr == "jobs.batch" || !opts.selection.labels.is_empty() {
            let obj = reader.object(entry).await?;
            if !opts.selection.matches_labels(&obj) || restore_skip_reason(rt, &obj).is_some() {
                continue;
            }
        }
        if let Some(ns) = &target_ns {
            target_namespaces.insert(ns.clone());
        }
        needed.insert((rt.group.clone(), rt.plural.clone(), target_ns));
    }
    let mut verbs = vec!["create"];
    if opts.existing == ExistingPolicy::Update {
        verbs.push("update");
    }
    let mut checks: Vec<MissingPermission> = needed
        .into_iter()
        .flat_map(|(group, resource, namespace)| {
            verbs.iter().map(move |verb| MissingPermission {
                verb: verb.to_string(),
                group: group.clone(),
                resource: resource.clone(),
                namespace: namespace.clone(),
            })
        })
        .collect();
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in target_namespaces {
        if ns_api.get_opt(&ns).await?.is_none() {
            checks.push(MissingPermission {
                verb: "create".into(),
                group: String::new(),
                resource: "namespaces".into(),
                namespace: None,
            });
            break;
        }
    }
    checks.sort();
    checks.dedup();
    let reviews: Vec<BoxFuture<'_, Option<MissingPermission>>> = checks
        .into_iter()
        .map(|c| {
            async move {
                let ok = allowed(client, &c.verb, &c.group, &c.resource, c.namespace.as_deref()).await;
                (ok == Some(false)).then_some(c)
            }
            .boxed()
        })
        .collect();
    let mut missing = found(reviews, opts.concurrency).await;
    missing.sort();
    Ok(missing)
}

/// What a restore refused for missing permissions says: each missing write (the first
/// few) and the kinds to allow, spelled as an install takes them.
pub fn missing_permissions_message(missing: &[MissingPermission]) -> String {
    const SHOWN: usize = 10;
    let writes: Vec<String> = missing
        .iter()
        .take(SHOWN)
        .map(|m| match &m.namespace {
            Some(ns) => format!("{} {} in namespace {ns}", m.verb, m.kind()),
            None => format!("{} {}", m.verb, m.kind()),
        })
        .collect();
    let more = missing.len().saturating_sub(SHOWN);
    let kinds: BTreeSet<String> = missing.iter().map(MissingPermission::kind).collect();
    format!(
        "the agent's RBAC does not allow this restore: it may not {}{}; nothing was restored. Install the agent with \
         its restore role (not restore=false), and with these kinds among its restore kinds if it has a list \
         (manifest ?restoreKinds=, chart rbac.restoreKinds): {}",
        writes.join(", "),
        if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        },
        kinds.into_iter().collect::<Vec<_>>().join(",")
    )
}

/// Namespaced objects need their namespace; one the archive does not hold (a label-only
/// backup) is created bare, labelled with the restore, and reported.
async fn ensure_namespaces(run: &Run<'_>, sources: &BTreeSet<String>) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(run.client.clone());
    for source in sources {
        let target = run.clean.namespaces.target(source);
        if run.opts.own_namespace.as_deref() == Some(target.as_str()) {
            continue;
        }
        let outcome = match api.get_opt(&target).await {
            Ok(Some(_)) => continue,
            Ok(None) => {
                let ns = k8s_openapi::api::core::v1::Namespace {
                    metadata: kube::api::ObjectMeta {
                        name: Some(target.clone()),
                        labels: Some(
                            [(super::clean::RESTORE_ID_LABEL.to_string(), run.opts.restore_id.clone())].into(),
                        ),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &ns).await {
                    Ok(_) => Outcome::Created,
                    Err(kube::Error::Api(s)) if s.is_already_exists() => continue,
                    Err(e) => Outcome::Failed { error: e.to_string() },
                }
            }
            Err(e) => Outcome::Failed { error: e.to_string() },
        };
        lock(&run.items).push(ItemResult {
            resource: "namespaces".into(),
            namespace: None,
            name: target,
            outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Compiles only if a restore can run in a spawned task.
    #[allow(dead_code)]
    fn restore_future_is_send(client: &Client, a: &dyn ResourceArchive, o: &RestoreOptions) {
        fn is_send<T: Send>(_: T) {}
        is_send(restore(client, a, o));
    }

    fn rt(plural: &str, kind: &str) -> ResourceType {
        crate::resources::test_type("", plural, kind, true)
    }

    fn existing(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn update_keeps_what_the_server_set_and_refuses_pods_and_rebinding() {
        let svc = rt("services", "Service");
        let live = existing(json!({"metadata": {"name": "s", "resourceVersion": "42"},
            "spec": {"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"], "ports": [{"port": 80, "nodePort": 31000}]}}));
        let desired =
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}});
        let keep = serde_json::to_value(for_update(&svc, desired.clone(), &live, true).unwrap()).unwrap();
        assert_eq!(keep["metadata"]["resourceVersion"], "42");
        assert_eq!(keep["spec"]["clusterIP"], "10.0.0.9");
        assert_eq!(keep["spec"]["ports"][0]["nodePort"], 30080);
        let taken = serde_json::to_value(for_update(&svc, desired, &live, false).unwrap()).unwrap();
        assert_eq!(
            taken["spec"]["ports"],
            json!([{"port": 80, "nodePort": 31000}, {"port": 81}])
        );

        assert!(not_updatable(&rt("pods", "Pod"), &json!({}), &live).is_some());
        let pv = rt("persistentvolumes", "PersistentVolume");
        let bound =
            existing(json!({"metadata": {"name": "pv"}, "spec": {"claimRef": {"namespace": "a", "name": "data"}}}));
        assert!(
            not_updatable(
                &pv,
                &json!({"spec": {"claimRef": {"namespace": "a2", "name": "data"}}}),
                &bound
            )
            .is_some()
        );
        assert_eq!(
            not_updatable(
                &pv,
                &json!({"spec": {"claimRef": {"namespace": "a", "name": "data"}}}),
                &bound
            ),
            None
        );
        assert_eq!(not_updatable(&rt("configmaps", "ConfigMap"), &json!({}), &bound), None);
    }

    #[test]
    fn options_follow_the_control_planes_restore_spec() {
        let spec: arca_core::model::restore::RestoreSpec = serde_json::from_value(json!({
            "recoveryPointId": "rp_01ARZ3NDEKTSV4RRFFQ69G5FAV", "targetClusterId": "cl_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "selection": {"namespaces": ["shop"], "labels": {"app": "web"}},
            "namespacePrefix": "dr-", "namespaceMap": {"db": "db2"}, "storageClassMap": {"gp2": "gp3"},
            "existingResourcePolicy": "update", "restorePvs": false}))
        .unwrap();
        let opts = RestoreOptions::from_spec(&spec, "arch", "rst");
        assert_eq!(opts.selection.namespaces, ["shop".to_string()].into());
        assert_eq!(opts.selection.labels["app"], "web");
        assert_eq!(opts.namespace_prefix, "dr-");
        assert_eq!(opts.namespace_map["db"], "db2");
        assert_eq!(opts.storage_class_map["gp2"], "gp3");
        assert_eq!(opts.existing, ExistingPolicy::Update);
        assert!(!opts.restore_pvs);
        assert_eq!((opts.archive_id.as_str(), opts.restore_id.as_str()), ("arch", "rst"));
    }

    #[test]
    fn a_missing_permission_is_named_with_the_kind_to_allow() {
        let m = |verb: &str, group: &str, resource: &str, ns: Option<&str>| MissingPermission {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: ns.map(str::to_string),
        };
        let msg = missing_permissions_message(&[
            m("create", "", "namespaces", None),
            m("create", "", "secrets", Some("shop")),
            m("create", "apps", "deployments", Some("shop")),
        ]);
        assert!(
            msg.contains(
                "may not create namespaces, create secrets in namespace shop, create apps/deployments in namespace shop"
            ),
            "{msg}"
        );
        assert!(msg.ends_with("apps/deployments,namespaces,secrets"), "{msg}");
        assert!(msg.contains("nothing was restored"), "{msg}");
        let many: Vec<MissingPermission> = (0..13).map(|i| m("create", "", &format!("k{i:02}"), None)).collect();
        let msg = missing_permissions_message(&many);
        assert!(msg.contains("(and 3 more)"), "{msg}");
        assert!(msg.contains("k12"), "every kind is listed to allow: {msg}");
    }
}
