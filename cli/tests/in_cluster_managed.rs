//! Arca-managed storage end to end: `arca server` vends STS credentials (on moto) narrowed
//! to one cluster's prefix of the managed bucket, the agents as Pods write and read with
//! them, and a recovery point of cluster a is restored into cluster b with read-only
//! access to a's prefix and nothing else.
//!
//! moto answers AssumeRole but enforces no session policy, so what the test checks is what
//! was asked of STS (moto's request recorder): one read-write session on a's prefix for
//! the backup, one read-only session on a's prefix for the restore in b, each with the
//! exact policy `arca_aws::sts::session_policy` makes (its unit tests pin the documents),
//! and no credentials for b's prefix at all. Everything written lies under a's prefix.
//! docs/agent.md says what real AWS adds that moto cannot show.
//!
//! The bucket has S3 Object Lock, as the stack makes it with `ManagedStorageObjectLock`:
//! the point is immutable, every object it reads is retained until its date (moto keeps
//! and reports retention), and deleting it early is refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::User;
use common::node::{
    MotoRecording, Scene, assert_agent_pod, install_with_link, same_bytes, start_server_on_moto, volume_file,
};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::123456789012:role/arca-managed-storage";
const PREFIX: &str = "backups";
/// The application's block volume: 3 MiB of text and random bytes.
const SIZE: usize = 3 << 20;

fn source_data() -> Vec<u8> {
    let mut data = Vec::with_capacity(SIZE);
    let mut line = 0u64;
    while data.len() < 2 << 20 {
        data.extend_from_slice(format!("managed storage, line {line:010}\n").as_bytes());
        line += 1;
    }
    data.truncate(2 << 20);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while data.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data
}

/// Every key in `bucket` (moto's S3 over plain HTTP, ListObjectsV2 pages followed).
fn bucket_keys(endpoint: &str, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{endpoint}/{bucket}?list-type=2");
        if let Some(t) = &token {
            url.push_str("&continuation-token=");
            url.push_str(&form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>());
        }
        let out = Command::new("curl").args(["-sf", &url]).output().unwrap();
        assert!(out.status.success(), "listing {bucket}");
        let xml = String::from_utf8(out.stdout).unwrap();
        keys.extend(
            xml.split("<Key>")
                .skip(1)
                .map(|k| k.split("</Key>").next().unwrap().to_owned()),
        );
        token = xml
            .split("<NextContinuationToken>")
            .nth(1)
            .map(|t| t.split("</NextContinuationToken>").next().unwrap().to_owned());
        if token.is_none() {
            return keys;
        }
    }
}

#[test]
fn managed_storage_backs_up_with_vended_credentials_and_restores_read_only_into_another_cluster() {
    let Some(nodes) = arca_testenv::nodes() else { return };
    let scene = Scene::new(&nodes, "managed");
    let (a, b, work, namespace) = (scene.a, scene.b, &scene.work, scene.namespace.clone());

    // ---- the deployment's managed bucket on moto; the server vends for it through STS
    // (moto's, reached as the machine's AWS), agents reach it where Pods reach moto
    let aws = &nodes.aws;
    let endpoint = aws.endpoint_url.trim_end_matches('/').to_owned();
    let bucket = arca_testenv::unique("arca-managed").to_lowercase();
    // With Object Lock, as the stack creates it with `ManagedStorageObjectLock`.
    let created = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "x-amz-bucket-object-lock-enabled: true",
            &format!("{endpoint}/{bucket}"),
        ])
        .status()
        .unwrap();
    assert!(created.success(), "creating bucket {bucket} on moto");
    let moto_port = endpoint.rsplit(':').next().unwrap();
    let pods_endpoint = format!("http://{}:{moto_port}", nodes.host_ip);
    let (_server, url) = start_server_on_moto(
        work.path(),
        &nodes,
        &[
            ("ARCA_MANAGED_BUCKET", &bucket),
            ("ARCA_MANAGED_ROLE_ARN", ROLE),
            ("ARCA_MANAGED_REGION", "us-east-1"),
            ("ARCA_MANAGED_PREFIX", PREFIX),
            ("ARCA_MANAGED_ENDPOINT", &pods_endpoint),
            ("ARCA_MANAGED_OBJECT_LOCK", "GOVERNANCE"),
        ],
    );
    let user = User::new(&url, work.path(), "admin");
    user.ok(&["signup", "--org-name", &arca_testenv::unique("managed")]);
    let org = user.json(&["org", "get"])["id"].as_str().unwrap().to_owned();
    let (cluster_a, cluster_b) = (arca_testenv::unique("a"), arca_testenv::unique("b"));
    for (k, name) in [(&a, &cluster_a), (&b, &cluster_b)] {
        assert_agent_pod(&install_with_link(&user, k, name), &nodes.agent_image);
    }
    let id_of = |name: &str| user.json(&["clusters", "get", name])["id"].as_str().unwrap().to_owned();
    let (id_a, id_b) = (id_of(&cluster_a), id_of(&cluster_b));
    user.ok(&["destinations", "create", "managed", "--arca-managed"]);

    // ---- the application in cluster a: configuration, a secret, a CSI block volume
    a.ok(&["create", "namespace", &namespace]);
    a.apply_json(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": {"mode": "managed", "replicas": "3"}}));
    a.apply_json(&json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db-password", "namespace": namespace},
        "stringData": {"password": "s3cr3t-in-cluster-a"}}));
    a.apply_json(&json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Block", "storageClassName": nodes.csi.storage_class,
                 "resources": {"requests": {"storage": SIZE.to_string()}}}}));
    let data = source_data();
    std::fs::write(volume_file(&a, &nodes.csi.volumes_a, &namespace, "data"), &data).unwrap();

    // ---- backup in a, restore into b, with STS requests recorded
    let recording = MotoRecording::start(aws);
    user.ok(&[
        "backups",
        "create",
        "managed",
        "--cluster",
        &cluster_a,
        "--namespaces",
        &namespace,
        "--destination",
        "managed",
        "--pv-mode",
        "snapshot-and-copy",
    ]);
    let job = user.json(&["backups", "run", "managed", "--wait"]);
    assert_eq!(job["state"], "COMPLETED", "{job:#}");
    let points = user.json(&["recovery-points", "list", "--backup", "managed"]);
    let point = points[0]["id"].as_str().unwrap().to_owned();
    let restore = user.restore_waiting(&point, &cluster_b);
    assert_eq!(restore["state"], "COMPLETED", "{restore:#}");

    // ---- what STS was asked: exactly the two grants, both on a's prefix
    let prefix_a = format!("{PREFIX}/{org}/{id_a}/");
    let sessions: BTreeMap<String, Value> = recording
        .actions("AssumeRole")
        .into_iter()
        .filter(|form| form.get("RoleArn").map(String::as_str) == Some(ROLE))
        .map(|form| {
            let policy: Value = serde_json::from_str(&form["Policy"]).unwrap();
            (form["RoleSessionName"].clone(), policy)
        })
        .filter(|(_, policy)| policy.to_string().contains(&bucket))
        .collect();
    let write_session = format!("arca-{id_a}");
    let read_session = format!("arca-read-{id_a}");
    let mut want = vec![&write_session, &read_session];
    want.sort();
    assert_eq!(
        sessions.keys().collect::<Vec<_>>(),
        want,
        "one read-write session for the backup, one read-only for the restore: {sessions:#?}"
    );
    assert_eq!(
        sessions[&write_session],
        arca_aws::sts::session_policy(&bucket, &prefix_a, None, true)
    );
    assert_eq!(
        sessions[&read_session],
        arca_aws::sts::session_policy(&bucket, &prefix_a, None, false),
        "the restore in b reads a's prefix and writes nothing"
    );
    assert!(
        !sessions.values().any(|p| p.to_string().contains(&id_b)),
        "cluster b got no access to a prefix of its own: {sessions:#?}"
    );
    drop(recording);

    // ---- everything stored is under a's prefix: the archive and the volume repository
    let keys = bucket_keys(&endpoint, &bucket);
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("{prefix_a}resources-g1-")) && k.contains("/archives/")),
        "{keys:#?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with(&format!("{prefix_a}volumes-g1-"))),
        "{keys:#?}"
    );
    assert!(keys.iter().all(|k| k.starts_with(&prefix_a)), "{keys:#?}");

    // ---- immutable: the point records its lock, everything it reads is retained until
    // then (the archive's packs and manifest, the volume repository's packs, indexes and
    // snapshot, written by the agent and by the mover Job), and deleting it is refused
    let rp = user.json(&["recovery-points", "get", &point]);
    assert_eq!(rp["objectLock"]["mode"], "GOVERNANCE", "{rp:#}");
    let until: chrono::DateTime<chrono::Utc> = rp["objectLock"]["retainUntil"].as_str().unwrap().parse().unwrap();
    let expires: chrono::DateTime<chrono::Utc> = rp["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(until >= expires + chrono::Duration::hours(24), "{until} vs {expires}");
    let durable: Vec<&String> = keys
        .iter()
        .filter(|k| {
            ["/packs/", "/data/", "/index/", "/snapshots/", "/manifest"]
                .iter()
                .any(|part| k.contains(part))
        })
        .collect();
    assert!(
        durable.iter().any(|k| k.contains("/data/")),
        "the mover's packs: {keys:#?}"
    );
    for key in &durable {
        assert_eq!(retained_until(&endpoint, &bucket, key), Some(until), "{key}");
    }
    let refused = common::fails(&user, &["recovery-points", "delete", &point], 1);
    assert!(
        refused.contains(&format!("immutable until {}", until.to_rfc3339())),
        "{refused}"
    );
    let dest = user.json(&["destinations", "get", "managed"]);
    assert_eq!(dest["bucketLock"]["enabled"], true, "what the agent found: {dest:#}");

    // ---- and cluster b has the application back, bytes and all
    let settings = b.json(&["get", "configmap", "settings", "-n", &namespace, "-o", "json"]);
    assert_eq!(settings["data"], json!({"mode": "managed", "replicas": "3"}));
    let secret = b.json(&["get", "secret", "db-password", "-n", &namespace, "-o", "json"]);
    assert_eq!(secret["data"]["password"], b64("s3cr3t-in-cluster-a"));
    let restored = volume_file(&b, &nodes.csi.volumes_b, &namespace, "data");
    same_bytes(
        "the volume restored from managed storage",
        &std::fs::read(restored).unwrap()[..data.len()],
        &data,
    );
}

/// The retain-until date moto holds for `key` (HeadObject's Object Lock header, signed:
/// moto serves objects written by a principal only to signed requests).
fn retained_until(endpoint: &str, bucket: &str, key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} (the test environment's)"));
    let user = format!("{}:{}", var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"));
    let out = Command::new("curl")
        .args(["-sfI", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user])
        .arg(format!("{endpoint}/{bucket}/{key}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "HEAD {key}");
    String::from_utf8(out.stdout).unwrap().lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("x-amz-object-lock-retain-until-date")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
