//! Helpers shared by the end-to-end tests in `tests/`.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, GroupVersionKind, PostParams};

/// The CSI snapshot API as installed by the test environment.
pub fn volume_snapshot_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        "volumesnapshots",
    )
}

/// Creates a namespace for one test. The test environment has no namespace controller,
/// so a deleted namespace stays Terminating: callers use unique names.
pub async fn create_namespace(client: &kube::Client, name: &str) -> kube::Result<Namespace> {
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": name } })).map_err(kube::Error::SerdeError)?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
}

/// Best-effort removal of a test namespace.
pub async fn delete_namespace(client: &kube::Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}
