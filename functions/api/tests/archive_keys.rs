//! Archive keys per cluster and key generation (`arca_core::model::archive_key`): what
//! each job's destination access carries. A backup gets its cluster's current key and
//! the key id its repositories' folders carry; a restore, in whichever cluster, gets the
//! key of the point it reads, for that job only; a rotation moves the cluster's next
//! backups to a new key while its points keep theirs; a rotated master key still opens
//! what it sealed until it is removed.

mod common;

use arca_core::model::archive_key::{ArchiveKeyring, ArchiveMasterKey};
use arca_core::model::plan::PlanLimits;
use axum::http::Method;
use common::{Api, Reply};
use serde_json::{Value, json};

struct Agent {
    cluster: String,
    token: String,
    session: String,
}

/// Polls `agent`'s next job and reads its destination access: (job id, lease, access).
async fn next_job_access(api: &Api, agent: &Agent) -> (String, Value, Reply) {
    let polled = api.poll(&agent.token, &agent.session).await.expect(200);
    let job = polled.body["job"]["id"].as_str().expect("a job").to_owned();
    let access = access_of(api, agent, &job).await;
    (job, polled.body["leaseToken"].clone(), access)
}

async fn access_of(api: &Api, agent: &Agent, job: &str) -> Reply {
    api.credentials(&agent.token, &agent.session, job).await
}

/// Runs a backup of `agent`'s cluster and completes it where its access says: the point's id and the access.
async fn backup(api: &Api, admin: &str, agent: &Agent, definition: &str, archive: &str) -> (String, Reply) {
    api.run(admin, definition).await.expect(201);
    let (job, lease, access) = next_job_access(api, agent).await;
    let access = access.expect(200);
    let prefix = access.body["clusterPrefix"].as_str().expect("prefix");
    let key_id = access.body["keyId"].as_str().expect("a key id");
    let location = format!("{prefix}resources-{key_id}/archives/{archive}");
    let done = api
        .agent_job(
            &agent.token,
            &agent.session,
            &job,
            "complete",
            json!({ "leaseToken": lease, "state": "COMPLETED", "backup": { "prefix": location, "resourceCount": 1 } }),
        )
        .await
        .expect(200);
    (
        done.body["recoveryPointId"].as_str().expect("a point").to_owned(),
        access,
    )
}

fn ring(current: u8, older: &[u8]) -> ArchiveKeyring {
    ArchiveKeyring::new(
        ArchiveMasterKey::from_bytes([current; 32]),
        older.iter().map(|b| ArchiveMasterKey::from_bytes([*b; 32])).collect(),
    )
}

#[tokio::test]
async fn each_cluster_has_its_own_keys_and_a_rotation_keeps_old_points_restorable() {
    let api = Api::new().with_archive_keyring(ring(1, &[]));
    let t = api.signup("keys").await;
    let dest = api.destination(&t.admin, "local").await;
    let mut agents = Vec::new();
    for name in ["a", "b"] {
        let (cluster, token, session) = api.connected_cluster(&t.admin, name, Some(&dest)).await;
        let definition = api.default_backup(&t, &cluster, None).await;
        agents.push((
            Agent {
                cluster,
                token,
                session,
            },
            definition,
        ));
    }
    let ((a, a_def), (b, b_def)) = (&agents[0], &agents[1]);

    // Two clusters of one org: different keys, so one compromised cluster opens only its own backups.
    let (a_point, a_access) = backup(&api, &t.admin, a, a_def, "a1").await;
    let (_, b_access) = backup(&api, &t.admin, b, b_def, "b1").await;
    let a_key = a_access.body["archiveKey"].as_str().expect("a key").to_owned();
    assert_eq!(a_key.len(), 64);
    assert_ne!(b_access.body["archiveKey"].as_str(), Some(a_key.as_str()));
    let a_key_id = a_access.body["keyId"].as_str().unwrap().to_owned();
    assert!(a_key_id.starts_with("g1-"), "{a_key_id}");
    assert!(
        a_access.body.get("earlierKeys").is_none(),
        "a backup gets one key: {}",
        a_access.text
    );

    // A rotation: conditional, admin only, and the cluster's next backup gets the next generation.
    let cluster_path = format!("/v1/clusters/{}", a.cluster);
    let etag = api.get(&cluster_path, &t.admin).await.expect(200).etag();
    api.post(&format!("{cluster_path}/rotate-archive-key"), &t.admin, json!({}))
        .await
        .expect(428);
    let operator = api.key(&t, "operator").await;
    rotate_archive_key(&api, &operator, &cluster_path, &etag)
        .await
        .expect(403);
    let rotated = rotate_archive_key(&api, &t.admin, &cluster_path, &etag)
        .await
        .expect(200);
    assert_eq!(rotated.body["archiveKeyGeneration"], 2, "{}", rotated.text);
    assert!(rotated.body["archiveKeyRotatedAt"].is_string(), "{}", rotated.text);

    let (a_new_point, a_new_access) = backup(&api, &t.admin, a, a_def, "a2").await;
    let a_new_key = a_new_access.body["archiveKey"].as_str().unwrap().to_owned();
    assert_ne!(a_new_key, a_key, "new backups are sealed under the new key");
    assert!(a_new_access.body["keyId"].as_str().unwrap().starts_with("g2-"));
    let (_, b_again) = backup(&api, &t.admin, b, b_def, "b2").await;
    assert_eq!(
        b_again.body["archiveKey"], b_access.body["archiveKey"],
        "the other cluster's key stays"
    );

    // The old point, restored into the other cluster: that job, and only it, gets the key the point names.
    let restore = |point: &str, into: &str| json!({ "recoveryPointId": point, "targetClusterId": into });
    api.post("/v1/restores", &t.admin, restore(&a_point, &b.cluster))
        .await
        .expect(201);
    let (restore_job, _, access) = next_job_access(&api, b).await;
    let access = access.expect(200);
    assert_eq!(access.body["archiveKey"], a_key.as_str(), "{}", access.text);
    assert_eq!(access.body["keyId"], a_key_id.as_str());
    // The new point, restored where it was taken: the new key.
    api.post("/v1/restores", &t.admin, restore(&a_new_point, &a.cluster))
        .await
        .expect(201);
    let (_, _, access) = next_job_access(&api, a).await;
    assert_eq!(access.expect(200).body["archiveKey"], a_new_key.as_str());

    // The master key rotated: the new one first, the old one kept. The old point's key is
    // still derived, new generations come from the new master.
    let during = Api::on(api.items.clone(), true, PlanLimits::default()).with_archive_keyring(ring(2, &[1]));
    let still = access_of(&during, b, &restore_job).await.expect(200);
    assert_eq!(still.body["archiveKey"], a_key.as_str(), "{}", still.text);
    // The old master removed too early: the job is told which master is missing, nothing is guessed.
    let after = Api::on(api.items.clone(), true, PlanLimits::default()).with_archive_keyring(ring(2, &[]));
    let refused = access_of(&after, b, &restore_job)
        .await
        .problem(409, "archive_key_retired");
    let old_master = a_key_id.split_once('-').unwrap().1;
    assert!(refused.text.contains(old_master), "{}", refused.text);
}

#[tokio::test]
async fn a_customer_key_destination_hands_out_key_ids_never_keys_and_older_points_keep_theirs() {
    const ARN: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let api = Api::new().with_archive_keyring(ring(1, &[]));
    let t = api.signup("customer-key").await;
    let dest = api.destination(&t.admin, "bucket").await;
    let (cluster, token, session) = api.connected_cluster(&t.admin, "a", Some(&dest)).await;
    let definition = api.default_backup(&t, &cluster, None).await;
    let agent = Agent {
        cluster,
        token,
        session,
    };
    let (old_point, old_access) = backup(&api, &t.admin, &agent, &definition, "a1").await;
    let old_key = old_access.body["archiveKey"]
        .as_str()
        .expect("a master-derived key")
        .to_owned();

    // A malformed ARN is refused, naming the member; a well-formed one is set.
    let path = format!("/v1/destinations/{dest}");
    let current = api.get(&path, &t.admin).await.expect(200);
    let with_key = |arn: &str| json!({ "name": current.body["name"], "target": current.body["target"], "customerKey": { "kmsKeyArn": arn } });
    let refused = api
        .put(
            &path,
            &t.admin,
            &current.etag(),
            with_key("arn:aws:kms:eu-west-1:1234:key/x"),
        )
        .await
        .problem(400, "validation_failed");
    assert!(refused.text.contains("customerKey.kmsKeyArn"), "{}", refused.text);
    api.put(&path, &t.admin, &current.etag(), with_key(ARN))
        .await
        .expect(200);

    // A backup now: the destination's key id and its customer key, no key at all.
    let (new_point, access) = backup(&api, &t.admin, &agent, &definition, "a2").await;
    assert!(access.body.get("archiveKey").is_none(), "{}", access.text);
    assert_eq!(access.body["customerKey"]["kmsKeyArn"], ARN, "{}", access.text);
    let master = arca_core::model::archive_key::customer_key_master(&dest.parse().unwrap());
    assert_eq!(access.body["keyId"], format!("g1-{master}"), "{}", access.text);

    // Restores: the new point by id only, the point from before by its master-derived key.
    let restore = |point: &str| json!({ "recoveryPointId": point, "targetClusterId": agent.cluster });
    for (point, key) in [(&new_point, None), (&old_point, Some(old_key.as_str()))] {
        let created = api.post("/v1/restores", &t.admin, restore(point)).await.expect(201);
        let job = created.body["job"]["id"].as_str().expect("a job");
        let access = access_of(&api, &agent, job).await.expect(200);
        assert_eq!(access.body["archiveKey"].as_str(), key, "{}", access.text);
    }

    // The customer key cannot be dropped while points it seals live there.
    let current = api.get(&path, &t.admin).await.expect(200);
    let without = json!({ "name": current.body["name"], "target": current.body["target"] });
    api.put(&path, &t.admin, &current.etag(), without)
        .await
        .problem(409, "destination_in_use");
}

#[tokio::test]
async fn without_master_keys_agents_hold_theirs_and_nothing_rotates_here() {
    let api = Api::new();
    let t = api.signup("own-keys").await;
    let (cluster, _) = api.cluster(&t.admin, "c", None).await;
    let path = format!("/v1/clusters/{cluster}");
    let etag = api.get(&path, &t.admin).await.expect(200).etag();
    let refused = rotate_archive_key(&api, &t.admin, &path, &etag)
        .await
        .problem(409, "keys_held_by_agents");
    assert!(refused.text.contains("ARCA_ARCHIVE_KEY"), "{}", refused.text);
    assert_eq!(
        api.get(&path, &t.admin).await.expect(200).body["archiveKeyGeneration"],
        1
    );
}

/// `POST {cluster}/rotate-archive-key` with `key`, conditional on `etag`.
async fn rotate_archive_key(api: &Api, key: &str, cluster: &str, etag: &str) -> Reply {
    let path = format!("{cluster}/rotate-archive-key");
    api.request(Method::POST, &path, Some(key), Some(etag), Some(json!({})))
        .await
}
