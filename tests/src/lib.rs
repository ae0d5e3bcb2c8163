//! Helpers shared by the end-to-end tests in `tests/`.

pub mod harness;

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use arca_core::ports::Clock;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, GroupVersionKind, PostParams};
use serde_json::Value;

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

/// `v` as a typed Kubernetes object.
pub fn obj<T: k8s_openapi::serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

/// Creates `v`, a `K`, in namespace `ns` of `client`'s cluster.
pub async fn create_in<K>(client: &kube::Client, ns: &str, v: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::Serialize
        + k8s_openapi::serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj(v))
        .await
        .unwrap_or_else(|e| panic!("creating {}/{ns}: {e}", K::kind(&Default::default())))
}

/// A clock the test moves (schedules firing, retention expiring).
pub struct TestClock(Mutex<SystemTime>);

impl TestClock {
    /// Starts at the wall clock's now.
    pub fn starting_now() -> Self {
        TestClock(Mutex::new(SystemTime::now()))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A user of the HTTP API with one API key; every call panics with the response on an
/// unexpected status, which is what a test wants.
pub struct User {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl User {
    /// Signs a new org up at the API at `base`; its admin.
    pub async fn sign_up(base: &str) -> User {
        let http = reqwest::Client::new();
        let key = arca_testenv::api::sign_up(&http, base, &arca_testenv::unique("e2e")).await;
        User {
            http,
            base: base.to_owned(),
            key,
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {v}");
        v
    }

    /// POSTs `body` to `action` on the condition that `entity` is unchanged since read
    /// (`If-Match` with its current ETag), as edits of existing entities require.
    pub async fn post_if_match(&self, entity: &str, action: &str, body: Value) -> Value {
        let url = |path: &str| format!("{}{path}", self.base);
        let etag = self.etag(entity).await;
        let resp = self
            .http
            .post(url(action))
            .bearer_auth(&self.key)
            .header(reqwest::header::IF_MATCH, etag)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{action}: {e}"));
        let status = resp.status().as_u16();
        let v = resp.json().await.unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "POST {action}: {status} {v}");
        v
    }

    /// PUTs `body` to `entity` on the condition that it is unchanged since read (`If-Match`
    /// with its current ETag); the status and answer, whatever they are.
    pub async fn put_if_match(&self, entity: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{entity}", self.base);
        let etag = self.etag(entity).await;
        let resp = self
            .http
            .put(&url)
            .bearer_auth(&self.key)
            .header(reqwest::header::IF_MATCH, etag)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {entity}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The current ETag of `entity`.
    async fn etag(&self, entity: &str) -> reqwest::header::HeaderValue {
        let read = self
            .http
            .get(format!("{}{entity}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{entity}: {e}"));
        read.headers()
            .get(reqwest::header::ETAG)
            .unwrap_or_else(|| panic!("GET {entity}: no ETag"))
            .clone()
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// Polls `path` until `done` holds (at most 60 s).
    pub async fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..600 {
            let v = self.get(path).await;
            if done(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never got there: {}", self.get(path).await);
    }

    /// Defines backup `name` of namespace `ns` of cluster `cluster` (resources only, no
    /// volume data); its id.
    pub async fn namespace_backup(&self, name: &str, cluster: &str, ns: &str) -> String {
        let def = self
            .post(
                "/v1/backups",
                serde_json::json!({ "name": name, "clusterId": cluster, "pvMode": "none",
                                    "selection": { "namespaces": [ns] } }),
            )
            .await;
        def["id"].as_str().expect("definition id").to_owned()
    }

    /// Runs definition `def` now, its point kept `retain_days`; the job, once it COMPLETED.
    pub async fn run_completed(&self, def: &str, retain_days: u32) -> Value {
        let job = self
            .post(
                &format!("/v1/backups/{def}/run"),
                serde_json::json!({ "retention": { "retainDays": retain_days } }),
            )
            .await;
        let done = self.wait_job(job["id"].as_str().expect("job id")).await;
        assert_eq!(done["state"], "COMPLETED", "{done}");
        done
    }

    /// Waits until the job has ended, whatever its outcome.
    pub async fn wait_job(&self, id: &str) -> Value {
        self.wait_for(&format!("/v1/jobs/{id}"), |j| {
            ["COMPLETED", "PARTIAL", "FAILED", "CANCELED", "SKIPPED"].contains(&j["state"].as_str().unwrap_or_default())
        })
        .await
    }
}
