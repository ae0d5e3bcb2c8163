//! VolumeSnapshots (snapshot.storage.k8s.io/v1): which class, the manifests, waiting for
//! `readyToUse`, importing a snapshot into another namespace.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::{already_exists, not_found, parse_quantity};

pub const GROUP: &str = "snapshot.storage.k8s.io";
/// Lets a claim of another volume mode be created from a snapshot's content (the
/// external-provisioner refuses a mode change without it).
pub const ALLOW_MODE_CHANGE: &str = "snapshot.storage.kubernetes.io/allow-volume-mode-change";
const DEFAULT_CLASS: &str = "snapshot.storage.kubernetes.io/is-default-class";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1".into(),
        api_version: format!("{GROUP}/v1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

pub fn snapshots(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("VolumeSnapshot", "volumesnapshots"),
    )
}

pub fn contents(client: &Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &resource("VolumeSnapshotContent", "volumesnapshotcontents"),
    )
}

pub fn classes(client: &Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &resource("VolumeSnapshotClass", "volumesnapshotclasses"),
    )
}

/// A VolumeSnapshotClass as far as choosing one goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassInfo {
    pub name: String,
    pub driver: String,
    pub is_default: bool,
}

/// The cluster's VolumeSnapshotClasses (none when the snapshot API is not served).
pub async fn list_classes(client: &Client) -> Result<Vec<ClassInfo>, String> {
    match classes(client).list(&ListParams::default()).await {
        Ok(list) => Ok(list
            .items
            .into_iter()
            .map(|o| ClassInfo {
                is_default: o
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS))
                    .is_some_and(|v| v == "true"),
                name: o.metadata.name.unwrap_or_default(),
                driver: o.data["driver"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()),
        Err(e) if not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(format!("listing VolumeSnapshotClasses: {e}")),
    }
}

/// The class for a driver's volumes: the driver's default class, else its only class,
/// else the first by name (several classes and no default: said in the docs).
pub fn choose_class<'a>(driver: &str, classes: &'a [ClassInfo]) -> Option<&'a ClassInfo> {
    let mut of_driver: Vec<&ClassInfo> = classes.iter().filter(|c| c.driver == driver).collect();
    of_driver.sort_by(|a, b| b.is_default.cmp(&a.is_default).then_with(|| a.name.cmp(&b.name)));
    of_driver.first().copied()
}

/// What a VolumeSnapshot is taken from.
#[derive(Clone, Copy, Debug)]
pub enum SnapshotSource<'a> {
    /// A claim: a new snapshot of its volume.
    Claim(&'a str),
    /// A (pre-provisioned) VolumeSnapshotContent: the import of an existing snapshot.
    Content(&'a str),
}

/// A VolumeSnapshot of class `class` from `source`.
pub fn snapshot_manifest(
    namespace: &str,
    name: &str,
    source: SnapshotSource<'_>,
    class: &str,
    labels: &BTreeMap<String, String>,
) -> Value {
    let source = match source {
        SnapshotSource::Claim(pvc) => json!({"persistentVolumeClaimName": pvc}),
        SnapshotSource::Content(content) => json!({"volumeSnapshotContentName": content}),
    };
    json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "volumeSnapshotClassName": class,
            "source": source,
        },
    })
}

/// A pre-provisioned VolumeSnapshotContent for an existing storage snapshot (`handle`),
/// bound to the VolumeSnapshot `namespace/snapshot`. `Retain`: deleting the import never
/// deletes the storage snapshot the backup owns.
pub fn imported_content_manifest(
    name: &str,
    driver: &str,
    handle: &str,
    class: &str,
    namespace: &str,
    snapshot: &str,
    labels: &BTreeMap<String, String>,
) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": name, "labels": labels, "annotations": {ALLOW_MODE_CHANGE: "true"}},
        "spec": {
            "deletionPolicy": "Retain",
            "driver": driver,
            "source": {"snapshotHandle": handle},
            "volumeSnapshotClassName": class,
            "volumeSnapshotRef": {"namespace": namespace, "name": snapshot},
        },
    })
}

/// What a ready snapshot says of itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub content: Option<String>,
    pub restore_size: Option<u64>,
}

/// `Ok(Some)` once `status.readyToUse`; `Ok(None)` while not yet; the error the snapshot
/// controller reports, if any, as `Err` (it may still retry: callers keep waiting until
/// their timeout and then report it).
pub fn readiness(snapshot: &Value) -> Result<Option<Ready>, String> {
    let status = &snapshot["status"];
    if status["readyToUse"] == true {
        return Ok(Some(Ready {
            content: status["boundVolumeSnapshotContentName"].as_str().map(str::to_string),
            restore_size: status["restoreSize"]
                .as_str()
                .and_then(parse_quantity)
                .or_else(|| status["restoreSize"].as_u64()),
        }));
    }
    match status["error"]["message"].as_str() {
        Some(message) => Err(message.to_string()),
        None => Ok(None),
    }
}

/// Creates the snapshot, or finds the one an earlier delivery of the same job made.
pub async fn create(client: &Client, manifest: &Value) -> Result<(), String> {
    let namespace = manifest["metadata"]["namespace"].as_str().unwrap_or_default();
    let obj: DynamicObject = serde_json::from_value(manifest.clone()).map_err(|e| e.to_string())?;
    match snapshots(client, namespace).create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(e) if already_exists(&e) => Ok(()),
        Err(e) => Err(format!(
            "creating VolumeSnapshot {namespace}/{}: {e}",
            obj.metadata.name.unwrap_or_default()
        )),
    }
}

/// Creates a cluster-scoped VolumeSnapshotContent (an import), tolerating an earlier one.
pub async fn create_content(client: &Client, manifest: &Value) -> Result<(), String> {
    let obj: DynamicObject = serde_json::from_value(manifest.clone()).map_err(|e| e.to_string())?;
    match contents(client).create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(e) if already_exists(&e) => Ok(()),
        Err(e) => Err(format!(
            "creating VolumeSnapshotContent {}: {e}",
            obj.metadata.name.unwrap_or_default()
        )),
    }
}

/// Waits until the snapshot is ready, at most `timeout`.
pub async fn wait_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<Ready, String> {
    let api = snapshots(client, namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match api.get_opt(name).await {
            Ok(Some(obj)) => match readiness(&serde_json::to_value(&obj).map_err(|e| e.to_string())?) {
                Ok(Some(ready)) => return Ok(ready),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            },
            Ok(None) => return Err(format!("VolumeSnapshot {namespace}/{name} disappeared")),
            Err(e) => last_error = Some(e.to_string()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => format!("VolumeSnapshot {namespace}/{name} not ready after {timeout:?}: {e}"),
                None => format!("VolumeSnapshot {namespace}/{name} not ready after {timeout:?}"),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// The storage snapshot's handle, from the bound content's status.
pub async fn content_handle(client: &Client, content: &str) -> Option<String> {
    let obj = contents(client).get_opt(content).await.ok()??;
    obj.data
        .pointer("/status/snapshotHandle")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Deletes a VolumeSnapshotContent (one of ours: `Retain`, so the storage snapshot stays).
pub async fn delete_content(client: &Client, name: &str) -> Result<bool, String> {
    match contents(client).delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(e) if not_found(&e) => Ok(false),
        Err(e) => Err(format!("deleting VolumeSnapshotContent {name}: {e}")),
    }
}

/// Deletes a VolumeSnapshot; `Ok(false)` when it was already gone.
pub async fn delete(client: &Client, namespace: &str, name: &str) -> Result<bool, String> {
    match snapshots(client, namespace)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if not_found(&e) => Ok(false),
        Err(e) => Err(format!("deleting VolumeSnapshot {namespace}/{name}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, driver: &str, is_default: bool) -> ClassInfo {
        ClassInfo {
            name: name.into(),
            driver: driver.into(),
            is_default,
        }
    }

    #[test]
    fn the_class_is_the_drivers_default_then_the_first_by_name() {
        let classes = [
            class("b", "ebs.csi.aws.com", false),
            class("a", "ebs.csi.aws.com", false),
            class("z", "pd.csi.storage.gke.io", false),
            class("y", "pd.csi.storage.gke.io", true),
        ];
        assert_eq!(
            choose_class("ebs.csi.aws.com", &classes).map(|c| c.name.as_str()),
            Some("a")
        );
        assert_eq!(
            choose_class("pd.csi.storage.gke.io", &classes).map(|c| c.name.as_str()),
            Some("y")
        );
        assert_eq!(choose_class("nfs.csi.k8s.io", &classes), None);
    }

    #[test]
    fn readiness_reads_status() {
        assert_eq!(readiness(&json!({})), Ok(None));
        assert_eq!(
            readiness(&json!({"status": {"readyToUse": false, "error": {"message": "quota"}}})),
            Err("quota".into())
        );
        assert_eq!(
            readiness(
                &json!({"status": {"readyToUse": true, "boundVolumeSnapshotContentName": "c1", "restoreSize": "1Gi"}})
            ),
            Ok(Some(Ready {
                content: Some("c1".into()),
                restore_size: Some(1 << 30)
            }))
        );
    }

    #[test]
    fn manifests_name_the_claim_class_and_import_with_retain() {
        let labels = BTreeMap::from([("a".to_string(), "b".to_string())]);
        let s = snapshot_manifest("ns", "snap", SnapshotSource::Claim("data"), "csi-class", &labels);
        assert_eq!(s["spec"]["source"]["persistentVolumeClaimName"], "data");
        assert_eq!(s["spec"]["volumeSnapshotClassName"], "csi-class");
        assert_eq!(s["metadata"]["labels"]["a"], "b");
        let c = imported_content_manifest("c", "drv", "h-1", "cls", "target", "snap", &labels);
        assert_eq!(c["spec"]["deletionPolicy"], "Retain");
        assert_eq!(c["spec"]["source"]["snapshotHandle"], "h-1");
        assert_eq!(c["spec"]["volumeSnapshotRef"]["namespace"], "target");
        let i = snapshot_manifest("target", "snap", SnapshotSource::Content("c"), "cls", &labels);
        assert_eq!(i["spec"]["source"]["volumeSnapshotContentName"], "c");
    }
}
