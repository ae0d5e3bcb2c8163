//! Customer-held keys end to end: the real API router, a real agent worker per cluster
//! (the real runner), and a private moto that checks every signature and IAM policy, as
//! the bucket and the KMS. The agent reaches both with the keys of the destination's
//! `credentialsRef` Secret.
//!
//! A backup creates the cluster's key, kept in the destination wrapped by the customer's
//! KMS key k1 (bound to its place by the encryption context), and the point restores in
//! another cluster. Setting k2 on the destination re-wraps the same key at the next
//! backup, which writes into the same repositories (nothing is re-encrypted). With KMS
//! access revoked, a restore and a backup fail naming KMS, and the backup writes nothing
//! (no fall back to another key); the customer key cannot be removed while points depend
//! on it; with access given back but the key disabled, the restore fails saying so; with
//! the key enabled again, the first point restores.

#![allow(clippy::unwrap_used)]

use arca_core::control_plane::ControlPlaneConfig;
use arca_core::model::archive_key::customer_key_master;
use arca_e2e::harness::Harness;
use arca_e2e::{create_in, obj};
use arca_testenv::{IamUser, PrivateMoto};
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

/// What the agent's IAM user may do while its access is intact, and after revocation.
const BUCKET_AND_KMS: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","kms:*"],"Resource":"*"}]}"#;
const BUCKET_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// The KMS and S3 of `moto` as `user`.
fn clients(moto: &PrivateMoto, user: &IamUser) -> (aws_sdk_kms::Client, aws_sdk_s3::Client) {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto.endpoint_url)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new(&user.access_key_id, &user.secret_access_key, None, None, "test"),
        ))
        .build();
    let s3 = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(true)
        .build();
    (aws_sdk_kms::Client::new(&config), aws_sdk_s3::Client::from_conf(s3))
}

async fn objects(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn key_file(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Value {
    let body = s3.get_object().bucket(bucket).key(key).send().await.unwrap().body;
    serde_json::from_slice(&body.collect().await.unwrap().into_bytes()).unwrap()
}

/// Unwraps `file` (at `path`) with KMS key `key_id` as the test's admin.
async fn unwrap(kms: &aws_sdk_kms::Client, file: &Value, path: &str, key_id: &str) -> Result<Vec<u8>, String> {
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(file["wrapped"].as_str().unwrap())
        .unwrap();
    kms.decrypt()
        .key_id(key_id)
        .ciphertext_blob(Blob::new(wrapped))
        .encryption_context("arca:key-file", path)
        .send()
        .await
        .map(|out| out.plaintext().unwrap().as_ref().to_vec())
        .map_err(|e| format!("{}", aws_sdk_kms::error::DisplayErrorContext(e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_key_wraps_the_cluster_keys_rotates_without_rewriting_data_and_revoked_stops_jobs() {
    let (Some(a), Some(b), Some(moto)) = (
        arca_testenv::cluster_a().await,
        arca_testenv::cluster_b().await,
        arca_testenv::private_moto(),
    ) else {
        return;
    };
    let admin = moto.iam_user("test-admin", ALLOW_ALL);
    let agent = moto.iam_user("agent", BUCKET_AND_KMS);
    moto.enforce_iam();
    let (kms, s3) = clients(&moto, &admin);
    let mut keys = Vec::new();
    for name in ["k1", "k2"] {
        let made = kms.create_key().description(name).send().await.unwrap();
        keys.push(made.key_metadata().unwrap().arn().unwrap().to_owned());
    }
    let (k1, k2) = (keys[0].clone(), keys[1].clone());
    let bucket = arca_testenv::unique("cmk").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    let mut h = Harness::start(ControlPlaneConfig::default()).await;
    let cluster_a = h.agent("cluster-a", &a.client, json!({})).await;
    let cluster_b = h.agent("cluster-b", &b.client, json!({})).await;
    let user = &h.user;

    // The agent user's keys, in a Secret where each agent runs.
    let secret = arca_testenv::unique("kms-keys");
    for cluster in [&a, &b] {
        Api::<Secret>::namespaced(cluster.client.clone(), cluster.client.default_namespace())
            .create(
                &PostParams::default(),
                &obj(json!({ "metadata": { "name": secret },
                    "stringData": { "AWS_ACCESS_KEY_ID": agent.access_key_id,
                                    "AWS_SECRET_ACCESS_KEY": agent.secret_access_key } })),
            )
            .await
            .unwrap();
    }
    let ns = arca_testenv::unique("cmk");
    arca_e2e::create_namespace(&a.client, &ns).await.unwrap();
    create_in::<ConfigMap>(
        &a.client,
        &ns,
        json!({ "metadata": { "name": "settings" }, "data": { "mode": "customer-key" } }),
    )
    .await;

    let target = json!({ "kind": "S3", "bucket": bucket, "region": "us-east-1", "prefix": "arca",
                         "endpoint": moto.endpoint_url, "credentialsRef": secret });
    let dest = user
        .post(
            "/v1/destinations",
            json!({ "name": "cmk", "target": target,
                    "customerKey": { "kmsKeyArn": k1, "endpoint": moto.endpoint_url } }),
        )
        .await;
    assert_eq!(dest["customerKey"]["kmsKeyArn"], k1, "{dest}");
    let dest_id = dest["id"].as_str().unwrap().to_owned();
    let def = user
        .post(
            "/v1/backups",
            json!({ "name": "cmk", "clusterId": cluster_a, "pvMode": "none", "destinationId": dest_id,
                    "selection": { "namespaces": [ns] } }),
        )
        .await;
    let def_id = def["id"].as_str().unwrap().to_owned();
    let restore = |point: Value, into: String| {
        let (ns, cluster_b) = (ns.clone(), cluster_b.clone());
        async move {
            let created = user
                .post(
                    "/v1/restores",
                    json!({ "recoveryPointId": point, "targetClusterId": cluster_b, "namespaceMap": { ns: into } }),
                )
                .await;
            user.wait_job(created["job"]["id"].as_str().unwrap()).await
        }
    };
    let restored_mode = |into: String| {
        let client = b.client.clone();
        async move {
            let settings = Api::<ConfigMap>::namespaced(client, &into)
                .get("settings")
                .await
                .unwrap();
            settings.data.unwrap()["mode"].clone()
        }
    };

    // ---- the first backup creates the cluster's key, wrapped by k1, bound to its place
    user.run_completed(&def_id, 7).await;
    let master = customer_key_master(&dest_id.parse().unwrap());
    let path = format!("arca/{}/{cluster_a}/keys/g1-{master}", user_org(user).await);
    let listed = objects(&s3, &bucket).await;
    assert!(listed.contains(&path), "{path} in {listed:?}");
    assert!(
        listed
            .iter()
            .any(|k| k.contains(&format!("/{cluster_a}/resources-g1-{master}/archives/"))),
        "the archive is sealed with the customer-held key: {listed:?}"
    );
    let first = key_file(&s3, &bucket, &path).await;
    assert_eq!(
        (first["kind"].as_str(), first["kms_key_id"].as_str()),
        (Some("kms"), Some(k1.as_str()))
    );
    let cluster_key = unwrap(&kms, &first, &path, &k1).await.unwrap();
    assert_eq!(cluster_key.len(), 32);
    let elsewhere = unwrap(&kms, &first, &format!("arca/x/{cluster_b}/keys/g1-{master}"), &k1).await;
    assert!(elsewhere.is_err(), "a key file moved to another place does not unwrap");
    let point = user.get(&format!("/v1/recoverypoints?definitionId={def_id}")).await["items"][0]["id"].clone();
    let done = restore(point.clone(), format!("{ns}-1")).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(restored_mode(format!("{ns}-1")).await, "customer-key");

    // ---- another KMS key: the same cluster key re-wrapped, the same repositories
    let dest_path = format!("/v1/destinations/{dest_id}");
    let (status, updated) = user
        .put_if_match(
            &dest_path,
            json!({ "name": "cmk", "target": target,
                    "customerKey": { "kmsKeyArn": k2, "endpoint": moto.endpoint_url } }),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let packs_before: Vec<String> = objects(&s3, &bucket)
        .await
        .into_iter()
        .filter(|k| k.contains("/packs/"))
        .collect();
    assert!(!packs_before.is_empty());
    user.run_completed(&def_id, 7).await;
    let rewrapped = key_file(&s3, &bucket, &path).await;
    assert_eq!(rewrapped["kms_key_id"], k2.as_str(), "{rewrapped}");
    assert_eq!(unwrap(&kms, &rewrapped, &path, &k2).await.unwrap(), cluster_key);
    assert!(
        unwrap(&kms, &rewrapped, &path, &k1).await.is_err(),
        "k1 no longer opens it"
    );
    let after = objects(&s3, &bucket).await;
    assert!(
        packs_before.iter().all(|p| after.contains(p)),
        "nothing re-encrypted: {after:?}"
    );
    let stores: std::collections::BTreeSet<&str> = after
        .iter()
        .filter_map(|k| k.split('/').find(|part| part.starts_with("resources-")))
        .collect();
    assert_eq!(stores.len(), 1, "one archive store: {stores:?}");

    // ---- KMS access revoked: no restore, no backup, nothing written, no fall back
    moto.put_user_policy("agent", "initial", BUCKET_ONLY);
    let before = objects(&s3, &bucket).await;
    let refused = restore(point.clone(), format!("{ns}-2")).await;
    assert_eq!(refused["state"], "FAILED", "{refused}");
    let reason = refused["reason"].as_str().unwrap_or_default();
    eprintln!("access revoked: {reason}");
    assert!(reason.contains(&format!("KMS key {k2}: Decrypt refused")), "{reason}");
    assert!(reason.contains("access denied"), "{reason}");
    let job = user.post(&format!("/v1/backups/{def_id}/run"), json!({})).await;
    let stopped = user.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(stopped["state"], "FAILED", "{stopped}");
    assert!(
        stopped["reason"].as_str().unwrap_or_default().contains("KMS key"),
        "{stopped}"
    );
    assert_eq!(
        objects(&s3, &bucket).await,
        before,
        "a backup without its key writes nothing"
    );

    // The customer key stays while points depend on it.
    let (status, problem) = user
        .put_if_match(&dest_path, json!({ "name": "cmk", "target": target }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("destination_in_use")),
        "{problem}"
    );

    // ---- access given back, but the key disabled by its owner: refused for that reason
    moto.put_user_policy("agent", "initial", BUCKET_AND_KMS);
    let k2_id = k2.rsplit('/').next().unwrap();
    kms.disable_key().key_id(k2_id).send().await.unwrap();
    let refused = restore(point.clone(), format!("{ns}-4")).await;
    assert_eq!(refused["state"], "FAILED", "{refused}");
    let reason = refused["reason"].as_str().unwrap_or_default();
    eprintln!("key disabled: {reason}");
    assert!(reason.contains("the key is disabled"), "{reason}");

    // ---- the key enabled again: the first point restores, nothing was lost
    kms.enable_key().key_id(k2_id).send().await.unwrap();
    let done = restore(point, format!("{ns}-3")).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(restored_mode(format!("{ns}-3")).await, "customer-key");
    for suffix in ["1", "3"] {
        arca_e2e::delete_namespace(&b.client, &format!("{ns}-{suffix}")).await;
    }
}

/// The org of `user`'s key.
async fn user_org(user: &arca_e2e::User) -> String {
    user.get("/v1/whoami").await["orgId"].as_str().unwrap().to_owned()
}
