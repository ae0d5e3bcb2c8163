//! `arca destinations purge`: a deleted cluster's data, with no agent of the org left to
//! delete it, deleted by an admin with their own credentials: from a user bucket on S3
//! (moto) and from a local directory, through a real `arca server`. Another cluster's
//! data in the same destinations stays.

#![allow(clippy::unwrap_used)]

mod common;

use arca_core::ids::{ClusterId, OrgId};
use arca_core::model::recovery::RecoveryPoint;
use arca_core::testing::stored_point;
use common::{Server, fails, server_and_admin};
use serde_json::Value;

const BUCKET: &str = "arca-purge-test";

#[test]
fn an_admin_purges_a_deleted_clusters_data_with_their_own_credentials() {
    let aws = arca_testenv::aws().expect("the test environment's moto (scripts/testenv.sh env)");
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_and_admin(dir.path(), "purge");
    let org: OrgId = admin.json(&["org", "get"])["id"].as_str().unwrap().parse().unwrap();

    let s3 = server
        .rt
        .block_on(async { aws_sdk_s3::Client::new(&aws.sdk_config().await) });
    let bucket = format!("{BUCKET}-{}", org.to_string().to_lowercase().replace('_', "-"));
    server.rt.block_on(s3.create_bucket().bucket(&bucket).send()).unwrap();
    let local = dir.path().join("local");
    admin.ok(&[
        "destinations",
        "create",
        "bucket",
        "--s3-bucket",
        &bucket,
        "--s3-region",
        "us-east-1",
        "--s3-endpoint",
        &aws.endpoint_url,
        "--s3-prefix",
        "backups",
    ]);
    admin.ok(&[
        "destinations",
        "create",
        "local",
        "--local-path",
        local.to_str().unwrap(),
    ]);
    let bucket_dst = admin.json(&["destinations", "get", "bucket"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let local_dst = admin.json(&["destinations", "get", "local"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The agent tokens go to a temp dir, never into the working tree.
    let tokens = tempfile::tempdir().unwrap();
    for name in ["gone", "live"] {
        let file = tokens.path().join(format!("{name}.token"));
        admin.ok(&[
            "clusters",
            "register",
            name,
            "--agent-token-file",
            file.to_str().unwrap(),
        ]);
    }
    let cluster_id = |name: &str| -> ClusterId {
        admin.json(&["clusters", "get", name])["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (gone, live) = (cluster_id("gone"), cluster_id("live"));
    admin.ok(&["clusters", "delete", "gone"]);

    // What the gone cluster's agent had written, and a point for it in each destination:
    // one expired, one not due; the live cluster's data beside it.
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let cp = &server.running.control_plane;
    let mut expired = Vec::new();
    for destination in [&bucket_dst, &local_dst] {
        for (n, expires) in [
            (0, now - chrono::Duration::hours(1)),
            (1, now + chrono::Duration::days(9)),
        ] {
            let rp = stored_point(org, gone, Some(destination.parse().unwrap()), Some(expires));
            if n == 0 {
                expired.push(rp.id);
            }
            server.rt.block_on(cp.store().create(rp)).unwrap();
        }
    }
    let objects = ["resources/archives/a1/manifest", "resources/packs/p1", "volumes/config"];
    for (cluster, body) in [(gone, "gone data"), (live, "live data")] {
        for key in objects {
            server
                .rt
                .block_on(
                    s3.put_object()
                        .bucket(&bucket)
                        .key(format!("backups/{org}/{cluster}/{key}"))
                        .body(body.as_bytes().to_vec().into())
                        .send(),
                )
                .unwrap();
            let file = local.join(format!("{org}/{cluster}/{key}"));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, body).unwrap();
        }
    }

    // No agent is ACTIVE: the sweep leaves the expired points, and says what to run.
    let report = server.rt.block_on(cp.retention_sweep()).unwrap();
    assert_eq!(report.awaiting_direct_deletion.len(), 2, "{report:?}");
    let shown = admin.ok(&["destinations", "maintenance", "bucket"]);
    assert!(
        shown.contains(&format!("arca destinations purge {bucket_dst} --cluster {gone}")),
        "{shown}"
    );

    // Refused, and nothing deleted: a point not due yet; a live cluster.
    let gone_arg = gone.to_string();
    let err = fails(&admin, &["destinations", "purge", "bucket", "--cluster", &gone_arg], 1);
    assert!(
        err.contains("purge_not_possible")
            && err.contains("1 recovery point(s) not due")
            && err.contains("--include-unexpired"),
        "{err}"
    );
    let err = fails(
        &admin,
        &[
            "destinations",
            "purge",
            "bucket",
            "--cluster",
            &live.to_string(),
            "--include-unexpired",
        ],
        1,
    );
    assert!(err.contains("exists: its agent deletes"), "{err}");
    assert_eq!(keys(&server, &s3, &bucket, &format!("backups/{org}/{gone}/")).len(), 3);

    // Purged from the bucket with the caller's credentials (the environment's, for moto).
    let out = admin.ok(&[
        "destinations",
        "purge",
        "bucket",
        "--cluster",
        &gone_arg,
        "--include-unexpired",
    ]);
    assert!(
        out.contains("3 object(s), 27 bytes; 2 recovery point(s) deleted"),
        "{out}"
    );
    assert_eq!(
        keys(&server, &s3, &bucket, &format!("backups/{org}/{gone}/")),
        Vec::<String>::new()
    );
    assert_eq!(
        keys(&server, &s3, &bucket, &format!("backups/{org}/{live}/")).len(),
        3,
        "the live cluster's data stays"
    );

    // And from the local directory, as JSON.
    let doc: Value = serde_json::from_str(&admin.ok(&[
        "destinations",
        "purge",
        "local",
        "--cluster",
        &gone_arg,
        "--include-unexpired",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(doc["objectsDeleted"], 3, "{doc}");
    assert_eq!(doc["recoveryPointsDeleted"].as_array().unwrap().len(), 2, "{doc}");
    assert!(
        !local.join(format!("{org}/{gone}")).exists(),
        "the cluster prefix is gone"
    );
    assert!(local.join(format!("{org}/{live}/volumes/config")).exists());

    // Every point of the gone cluster is gone; nothing awaits any more.
    let store = cp.store();
    for id in expired {
        assert!(
            server
                .rt
                .block_on(store.find::<RecoveryPoint>(&org, &id))
                .unwrap()
                .is_none()
        );
    }
    let left = server.rt.block_on(store.list_all::<RecoveryPoint>(&org)).unwrap();
    assert!(left.is_empty(), "{left:?}");
    let upkeep = admin.json(&["destinations", "maintenance", "bucket"]);
    assert_eq!(upkeep["repositories"], serde_json::json!([]), "{upkeep}");
    server.stop();
}

fn keys(server: &Server, s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let listed = server
        .rt
        .block_on(s3.list_objects_v2().bucket(bucket).prefix(prefix).send())
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}
