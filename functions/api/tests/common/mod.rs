//! Drives the API router with `oneshot`, on a real redb store in a temp dir (or any
//! item store), the way a client would: JSON in, status + ETag + JSON out.

// Test support: a failed step should panic with the reply, and each test binary uses
// only some helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use arca_api::{AppState, router};
use arca_core::model::plan::PlanLimits;
use arca_core::ports::item_store::ItemStore;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct Api {
    pub router: Router,
    pub state: AppState,
    /// The raw item store under the state, for tests that plant records.
    pub items: Arc<dyn ItemStore>,
    /// The linked AWS accounts the control plane reaches (a fake: moto enforces no trust).
    pub cloud: Arc<arca_core::testing::fakes::cloud::FakeCloud>,
    /// RDS in the linked accounts (a fake that can hold operations in `creating`).
    pub rds: Arc<arca_core::testing::fakes::rds::FakeRds>,
    /// The RDS work queue: tests deliver its messages with `rds_step`.
    pub rds_queue: Arc<arca_core::testing::fakes::rds::FakeRdsQueue>,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub request_id: Option<String>,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The status, or a panic showing the whole reply.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected reply: {} {}",
            self.status,
            self.text
        );
        self
    }

    #[track_caller]
    pub fn problem(self, status: u16, code: &str) -> Self {
        let reply = self.expect(status);
        assert_eq!(reply.content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(reply.body["code"], code, "{}", reply.text);
        reply
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.text))
            .to_owned()
    }

    pub fn etag(&self) -> String {
        self.etag.clone().unwrap_or_else(|| panic!("no ETag on {}", self.text))
    }

    /// The ids of a listing's `items`.
    pub fn ids(&self) -> Vec<&str> {
        self.body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items in {}", self.text))
            .iter()
            .map(|item| item["id"].as_str().unwrap())
            .collect()
    }

    /// The id of the job an agent's poll answered with.
    pub fn job_id(&self) -> String {
        self.body["job"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no job in {}", self.text))
            .to_owned()
    }
}

/// A signed-up org: its id and admin key.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub org_id: String,
    pub admin: String,
    pub default_policy_id: String,
}

impl Api {
    pub fn new() -> Self {
        Self::with(true, PlanLimits::default())
    }

    pub fn with(signup_open: bool, limits: PlanLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).unwrap();
        let mut api = Self::on(Arc::new(store), signup_open, limits);
        api._dir = Some(dir);
        api
    }

    pub fn on(items: Arc<dyn ItemStore>, signup_open: bool, limits: PlanLimits) -> Self {
        // Short agent polls keep tests fast; everything else is the default.
        let config = arca_core::control_plane::ControlPlaneConfig {
            signup_open,
            local_destinations: true,
            poll_wait: std::time::Duration::from_millis(200),
            ..Default::default()
        };
        let clock: Arc<dyn arca_core::ports::Clock> = Arc::new(arca_core::ports::SystemClock);
        let mut state = AppState::with_ports(
            items.clone(),
            Arc::new(arca_embedded::EmbeddedQueue::new(3)),
            Arc::new(arca_embedded::EmbeddedScheduler::new(clock)),
            limits,
            config,
        );
        let cloud = Arc::new(arca_core::testing::fakes::cloud::FakeCloud::default());
        state.control_plane = state.control_plane.with_cloud(
            cloud.clone(),
            arca_core::model::cloud::account::RoleStackConfig {
                arca_account_id: Some("999988887777".into()),
                principal_arns: vec!["arn:aws:iam::999988887777:role/arca-test-ApiFunctionRole-X".into()],
                template_url: Some("https://arca-templates.s3.amazonaws.com/role-stack.yaml".into()),
                notification_topic_arn: None,
                console_region: "us-east-1".into(),
            },
        );
        let rds = Arc::new(arca_core::testing::fakes::rds::FakeRds::new());
        let rds_queue = Arc::new(arca_core::testing::fakes::rds::FakeRdsQueue::new());
        state.control_plane = state.control_plane.with_rds(rds.clone(), Some(rds_queue.clone()));
        Api {
            router: router(state.clone()),
            state,
            items,
            cloud,
            rds,
            rds_queue,
            _dir: None,
        }
    }

    /// This API sending alert email through `sender`.
    pub fn with_email_sender(mut self, sender: Arc<dyn arca_core::ports::notify::EmailSender>) -> Self {
        self.state.control_plane = self.state.control_plane.clone().with_email_sender(sender);
        self.router = router(self.state.clone());
        self
    }

    /// This API with the deployment's archive master keys set (current first).
    pub fn with_archive_keyring(mut self, ring: arca_core::model::archive_key::ArchiveKeyring) -> Self {
        self.state.control_plane = self.state.control_plane.clone().with_archive_keyring(Some(ring));
        self.router = router(self.state.clone());
        self
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        if_match: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if let Some(etag) = if_match {
            builder = builder.header(header::IF_MATCH, etag);
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .unwrap();
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let header = |name: header::HeaderName| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (status, etag, location, content_type) = (
            response.status(),
            header(header::ETAG),
            header(header::LOCATION),
            header(header::CONTENT_TYPE),
        );
        let request_id = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            etag,
            location,
            content_type,
            request_id,
            body,
            text,
        }
    }

    /// An agent call: the cluster's token, the session (if any), a JSON body.
    pub async fn agent(&self, token: &str, path: &str, session: Option<&str>, body: Value) -> Reply {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(s) = session {
            request = request.header(arca_core::model::agent::SESSION_HEADER, s);
        }
        self.send(request.body(Body::from(body.to_string())).unwrap()).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.request(Method::GET, path, Some(key), None, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(key), None, Some(body)).await
    }

    pub async fn put(&self, path: &str, key: &str, etag: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(key), Some(etag), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str, etag: &str) -> Reply {
        self.request(Method::DELETE, path, Some(key), Some(etag), None).await
    }

    pub async fn signup(&self, name: &str) -> Tenant {
        let reply = self
            .request(Method::POST, "/v1/signup", None, None, Some(json!({ "orgName": name })))
            .await
            .expect(201);
        Tenant {
            org_id: reply.body["org"]["id"].as_str().unwrap().to_owned(),
            admin: reply.body["adminKey"]["secret"].as_str().unwrap().to_owned(),
            default_policy_id: reply.body["defaultPolicy"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// A new key of `role` in the tenant's org.
    pub async fn key(&self, tenant: &Tenant, role: &str) -> String {
        let reply = self
            .post(
                "/v1/apikeys",
                &tenant.admin,
                json!({ "name": format!("{role} key"), "role": role }),
            )
            .await
            .expect(201);
        reply.body["secret"].as_str().unwrap().to_owned()
    }

    pub async fn destination(&self, key: &str, name: &str) -> String {
        self.post(
            "/v1/destinations",
            key,
            json!({ "name": name, "target": { "kind": "S3", "bucket": "arca-backups", "region": "eu-west-1" } }),
        )
        .await
        .expect(201)
        .id()
    }

    /// Links an AWS account `name` (`POST /v1/cloud-accounts`): the answer.
    pub async fn link_account(&self, key: &str, name: &str, regions: &[&str]) -> Reply {
        self.post("/v1/cloud-accounts", key, json!({ "name": name, "regions": regions }))
            .await
    }

    /// Gives the account `linked` (the answer to linking it) role `role`, which the fake
    /// cloud lets Arca assume with the account's ExternalId: the answer to setting it.
    pub async fn give_role(&self, key: &str, linked: &Reply, role: &str) -> Reply {
        self.cloud.add_role(role, linked.body["externalId"].as_str().unwrap());
        let path = format!("/v1/cloud-accounts/{}/role", linked.id());
        self.put(&path, key, &linked.etag(), json!({ "roleArn": role })).await
    }

    /// A cluster and its agent token.
    pub async fn cluster(&self, key: &str, name: &str, default_destination: Option<&str>) -> (String, String) {
        let mut body = json!({ "name": name });
        if let Some(d) = default_destination {
            body["defaultDestinationId"] = json!(d);
        }
        let reply = self.post("/v1/clusters", key, body).await.expect(201);
        (reply.id(), reply.body["agentToken"].as_str().unwrap().to_owned())
    }

    /// Runs backup definition `backup` now and has the agent of `token` (in `session`)
    /// take the job and complete it with `result` as its `backup` report: the answer.
    pub async fn run_and_complete(
        &self,
        admin: &str,
        token: &str,
        session: &str,
        backup: &str,
        result: Value,
    ) -> Reply {
        self.run(admin, backup).await.expect(201);
        let polled = self.poll(token, session).await.expect(200);
        self.complete(token, session, &polled, json!({ "backup": result }))
            .await
            .expect(200)
    }

    /// What the agent of `token` gets to reach job `job`'s destination (its access).
    pub async fn credentials(&self, token: &str, session: &str, job: &str) -> Reply {
        self.agent_job(token, session, job, "credentials", json!({})).await
    }

    /// The agent of `token` completes the job it `polled`: `COMPLETED`, with the fields
    /// of `report` (`backup`, `maintenance`, ...).
    pub async fn complete(&self, token: &str, session: &str, polled: &Reply, report: Value) -> Reply {
        let mut body = json!({ "leaseToken": polled.body["leaseToken"], "state": "COMPLETED" });
        if let (Some(body), Value::Object(report)) = (body.as_object_mut(), report) {
            body.extend(report);
        }
        self.agent_job(token, session, &polled.job_id(), "complete", body).await
    }

    /// A backup definition of `cluster` on the org's default policy, to `destination`
    /// (else the default one): its id.
    pub async fn default_backup(&self, tenant: &Tenant, cluster: &str, destination: Option<&str>) -> String {
        self.backup(&tenant.admin, cluster, Some(&tenant.default_policy_id), destination)
            .await
            .expect(201)
            .id()
    }

    /// A READY recovery point of `definition` planted in the store (no agent needed):
    /// kept for a week, 12 resources and a PV; taken by `job`, or a job that never was.
    pub async fn plant_recovery_point(
        &self,
        org: &str,
        cluster: &str,
        definition: &str,
        job: Option<&str>,
    ) -> arca_core::ids::RecoveryPointId {
        use arca_core::model::recovery::RecoveryPoint;
        let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        let rp = RecoveryPoint {
            rule: None,
            org_id: org.parse().unwrap(),
            cluster_id: cluster.parse().unwrap(),
            job_id: job.map_or_else(arca_core::ids::JobId::new, |j| j.parse().unwrap()),
            resource_count: 12,
            pv_count: 1,
            version: 0,
            ..RecoveryPoint::fixture(definition.parse().unwrap(), now, Some(now + chrono::Duration::days(7)))
        };
        self.state.control_plane.store().create(rp).await.unwrap().id
    }

    /// Runs backup definition `backup` now.
    pub async fn run(&self, key: &str, backup: &str) -> Reply {
        self.post(&format!("/v1/backups/{backup}/run"), key, json!({})).await
    }

    /// Connects the agent of `token`: its new session.
    pub async fn connect(&self, token: &str) -> String {
        self.agent(token, "/v1/agent/connect", None, json!({}))
            .await
            .expect(200)
            .body["sessionId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The agent of `token` asks for a job (200 with one, 204 without).
    pub async fn poll(&self, token: &str, session: &str) -> Reply {
        self.agent(token, "/v1/agent/poll", Some(session), json!({})).await
    }

    /// An agent's call about one of its jobs: `/v1/agent/jobs/{job}/{action}`.
    pub async fn agent_job(&self, token: &str, session: &str, job: &str, action: &str, body: Value) -> Reply {
        self.agent(token, &format!("/v1/agent/jobs/{job}/{action}"), Some(session), body)
            .await
    }

    /// The cluster of agent `token` heartbeats, straight to the control plane (no
    /// session): it is ACTIVE, so its backups can run.
    pub async fn activate(&self, token: &str) {
        self.state
            .control_plane
            .record_heartbeat(
                &arca_core::model::secret::Secret::from_presented(token),
                arca_core::model::cluster::Heartbeat::default(),
            )
            .await
            .unwrap();
    }

    /// A cluster whose agent is connected ([`Api::agent_session`]): its id, agent token
    /// and session.
    pub async fn connected_cluster(
        &self,
        key: &str,
        name: &str,
        default_destination: Option<&str>,
    ) -> (String, String, String) {
        let (id, token) = self.cluster(key, name, default_destination).await;
        let session = self.agent_session(&token).await;
        (id, token, session)
    }

    /// An agent's session: connected with `token` and one heartbeat sent (the cluster is ACTIVE).
    pub async fn agent_session(&self, token: &str) -> String {
        let session = self.connect(token).await;
        self.agent(token, "/v1/agent/heartbeat", Some(&session), json!({}))
            .await
            .expect(200);
        session
    }

    pub async fn backup(&self, key: &str, cluster: &str, policy: Option<&str>, destination: Option<&str>) -> Reply {
        let mut body = json!({ "name": "nightly", "clusterId": cluster, "selection": { "namespaces": ["default"] } });
        if let Some(p) = policy {
            body["policyId"] = json!(p);
        }
        if let Some(d) = destination {
            body["destinationId"] = json!(d);
        }
        self.post("/v1/backups", key, body).await
    }
}

/// Where an agent reports a backup's archive in a destination without a prefix of its
/// own (`arca_core::model::layout`).
pub fn archive_at(org: &str, cluster: &str, archive_id: &str) -> String {
    format!("{org}/{cluster}/resources/archives/{archive_id}")
}
