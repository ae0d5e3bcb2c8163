//! S3-compatible destinations through jobs: the real API router on a loopback port, two
//! real agent workers with the real runner (cluster a and cluster b), and moto as the
//! store, over TLS behind the test environment's private CA.
//!
//! For each way of reaching a store (a custom HTTPS endpoint with path-style addressing
//! and `skipTlsVerify`, keys from the agent's `credentialsRef` Secret; the same endpoint
//! trusted through a `caBundle`, with the agent's own AWS identity), a namespace of cluster
//! a is backed up (job COMPLETED, objects in the bucket under the cluster's prefix) and
//! restored into cluster b (job COMPLETED, the ConfigMap and Secret as they were). A
//! bucket that does not exist, an endpoint whose certificate nothing trusts and a wrong
//! secret key (on a moto of the test's own that checks signatures) fail their job in one
//! line naming the bucket and the cause.

#![allow(clippy::unwrap_used)]

use arca_core::control_plane::ControlPlaneConfig;
use arca_e2e::harness::Harness;
use arca_e2e::{create_in, obj};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_compatible_destinations_back_up_and_restore_and_misconfigured_ones_fail_in_one_line() {
    let (Some(a), Some(b), Some(aws), Some(iam_moto)) = (
        arca_testenv::cluster_a().await,
        arca_testenv::cluster_b().await,
        arca_testenv::aws(),
        arca_testenv::private_moto(),
    ) else {
        return;
    };
    let s3 = arca_aws::config::s3_client(&aws.sdk_config().await);
    let https = format!("https://127.0.0.1:{}", aws.tls.port);
    let ca = std::fs::read_to_string(&aws.tls.ca).unwrap();

    // The control plane and an agent worker per cluster.
    let mut h = Harness::start(ControlPlaneConfig::default()).await;
    let cluster_a = h.agent("cluster-a", &a.client, json!({})).await;
    let cluster_b = h.agent("cluster-b", &b.client, json!({})).await;
    let user = &h.user;

    // The keys of the credentialsRef variant, in a Secret where each agent runs (its
    // client's default namespace).
    let keys_secret = arca_testenv::unique("bucket-keys");
    for cluster in [&a, &b] {
        Api::<Secret>::namespaced(cluster.client.clone(), cluster.client.default_namespace())
            .create(
                &PostParams::default(),
                &obj(json!({ "metadata": { "name": keys_secret },
                    "stringData": { "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing" } })),
            )
            .await
            .unwrap();
    }

    // What is backed up: a namespace with a ConfigMap and a Secret.
    let ns = arca_testenv::unique("s3dest");
    arca_e2e::create_namespace(&a.client, &ns).await.unwrap();
    create_in::<ConfigMap>(
        &a.client,
        &ns,
        json!({ "metadata": { "name": "settings" }, "data": { "mode": "s3" } }),
    )
    .await;
    create_in::<Secret>(
        &a.client,
        &ns,
        json!({ "metadata": { "name": "creds" }, "stringData": { "password": "hunter2" } }),
    )
    .await;

    let backup = |name: &str, target: Value| {
        let (ns, cluster_a) = (ns.clone(), cluster_a.clone());
        let name = name.to_owned();
        async move {
            let dest = user
                .post("/v1/destinations", json!({ "name": name, "target": target }))
                .await;
            let def = user
                .post(
                    "/v1/backups",
                    json!({ "name": name, "clusterId": cluster_a, "pvMode": "none",
                            "destinationId": dest["id"], "selection": { "namespaces": [ns] } }),
                )
                .await;
            let job = user
                .post(&format!("/v1/backups/{}/run", def["id"].as_str().unwrap()), json!({}))
                .await;
            user.wait_job(job["id"].as_str().unwrap()).await
        }
    };

    // ---- stores that work: back up, find the objects, restore into b
    let variants = [
        (
            "tls-skip-verify",
            json!({ "endpoint": https, "pathStyle": true, "skipTlsVerify": true, "credentialsRef": keys_secret }),
        ),
        ("tls-ca-bundle", json!({ "endpoint": https, "caBundle": ca })),
    ];
    for (name, connection) in variants {
        let bucket = arca_testenv::unique(name).to_lowercase();
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let mut target = json!({ "kind": "S3", "bucket": bucket, "region": "us-east-1", "prefix": "arca" });
        target
            .as_object_mut()
            .unwrap()
            .extend(connection.as_object().unwrap().clone());
        let done = backup(name, target).await;
        assert_eq!(done["state"], "COMPLETED", "{name}: {done}");

        let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert!(
            keys.iter()
                .any(|k| k.contains(&format!("/{cluster_a}/resources-g1-")) && k.contains("/archives/")),
            "{name}: {keys:?}"
        );
        assert!(keys.iter().all(|k| k.starts_with("arca/")), "{name}: {keys:?}");

        let point = user
            .get(&format!(
                "/v1/recoverypoints?definitionId={}",
                done["definitionId"].as_str().unwrap()
            ))
            .await["items"][0]
            .clone();
        let target_ns = format!("{ns}-{name}");
        let created = user
            .post(
                "/v1/restores",
                json!({ "recoveryPointId": point["id"], "targetClusterId": cluster_b,
                        "namespaceMap": { ns.clone(): target_ns } }),
            )
            .await;
        let restored = user.wait_job(created["job"]["id"].as_str().unwrap()).await;
        assert_eq!(restored["state"], "COMPLETED", "{name}: {restored}");
        let settings = Api::<ConfigMap>::namespaced(b.client.clone(), &target_ns)
            .get("settings")
            .await
            .unwrap();
        assert_eq!(settings.data.unwrap()["mode"], "s3", "{name}");
        let secret = Api::<Secret>::namespaced(b.client.clone(), &target_ns)
            .get("creds")
            .await
            .unwrap();
        assert_eq!(secret.data.unwrap()["password"].0, b"hunter2", "{name}");
        arca_e2e::delete_namespace(&b.client, &target_ns).await;
    }

    // ---- stores that do not: the job fails in one line that names the bucket and the cause
    // A store that checks signatures (a moto of the test's own that enforces IAM), reached
    // with the right access key and a wrong secret from the credentialsRef Secret.
    let guarded = arca_testenv::unique("guarded").to_lowercase();
    let writer = iam_moto.iam_user(
        "writer",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::{guarded}","arn:aws:s3:::{guarded}/*"]}}]}}"#
        ),
    );
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws.sdk_config().await)
            .endpoint_url(&iam_moto.endpoint_url)
            .force_path_style(true)
            .build(),
    )
    .create_bucket()
    .bucket(&guarded)
    .send()
    .await
    .unwrap();
    iam_moto.enforce_iam();
    let wrong_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let wrong_keys = arca_testenv::unique("wrong-keys");
    Api::<Secret>::namespaced(a.client.clone(), a.client.default_namespace())
        .create(
            &PostParams::default(),
            &obj(json!({ "metadata": { "name": wrong_keys },
                "stringData": { "AWS_ACCESS_KEY_ID": writer.access_key_id, "AWS_SECRET_ACCESS_KEY": wrong_secret } })),
        )
        .await
        .unwrap();
    let missing = arca_testenv::unique("no-such-bucket").to_lowercase();
    let broken = [
        (
            "missing-bucket",
            json!({ "kind": "S3", "bucket": missing, "region": "us-east-1", "endpoint": https, "caBundle": ca }),
            "the bucket does not exist",
        ),
        (
            "untrusted-certificate",
            json!({ "kind": "S3", "bucket": missing, "region": "us-east-1", "endpoint": https }),
            "TLS certificate is not trusted (signed by a CA that is not trusted): fix with the destination's caBundle",
        ),
        (
            "wrong-secret",
            json!({ "kind": "S3", "bucket": guarded, "region": "us-east-1", "endpoint": iam_moto.endpoint_url,
                    "credentialsRef": wrong_keys }),
            "the secret key does not match the access key (SignatureDoesNotMatch",
        ),
    ];
    for (name, target, cause) in broken {
        let bucket = target["bucket"].as_str().unwrap().to_owned();
        let done = backup(name, target).await;
        assert_eq!(done["state"], "FAILED", "{name}: {done}");
        let reason = done["reason"].as_str().unwrap_or_default();
        eprintln!("{name}: {reason}");
        assert!(reason.contains(cause), "{name}: {reason}");
        assert!(reason.contains(&bucket), "{name}: names the bucket: {reason}");
        assert!(!reason.contains(wrong_secret), "{name}: no secret: {reason}");
        assert!(
            !reason.contains('\n') && reason.len() < 600,
            "{name}: one line: {reason}"
        );
    }

    arca_e2e::delete_namespace(&a.client, &ns).await;
}
