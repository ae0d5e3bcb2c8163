//! The command line, as the mover Jobs and the benchmark call it: the real binary.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{repo_init, volume_backup, volume_restore};

const BIN: &str = env!("CARGO_BIN_EXE_arca-agent");
const PASS: &str = "cli test passphrase";

fn agent(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("ARCA_REPO_PASSWORD", PASS)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn agent_env(args: &[&str], pass: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("ARCA_REPO_PASSWORD");
    if let Some(p) = pass {
        cmd.env("ARCA_REPO_PASSWORD", p);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A failure is a non-zero exit with exactly one line on stderr, and no panic.
fn assert_one_line_failure(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure, stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err:?}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert!(!err.contains("panicked"), "{err}");
}

fn init(repo: &str) {
    let o = agent(&repo_init(repo));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn write_image(path: &Path, seed: u8) -> Vec<u8> {
    let mut data: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect();
    data.extend(vec![0u8; 200_000]);
    std::fs::write(path, &data).unwrap();
    data
}

#[test]
fn backup_restore_list_forget_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", dir.path().join("repo").display());
    init(&repo);
    let img = dir.path().join("disk.img");
    let data = write_image(&img, 1);
    let o = agent(&volume_backup(&repo, "pvc-a", img.to_str().unwrap()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "no progress on a non-terminal stderr");
    let first = stdout(&o);
    assert_eq!(first.len(), 64, "prints the snapshot id: {first}");
    let data2 = write_image(&img, 2);
    let o = agent(&[volume_backup(&repo, "pvc-a", img.to_str().unwrap()), vec!["--json"]].concat());
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["manifest"]["stats"]["blocks_zero"], 3);
    let second = json["snapshot"].as_str().unwrap().to_string();

    let target = dir.path().join("restored.img");
    let o = agent(&volume_restore(&repo, "pvc-a", "latest", &target));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "no progress on a non-terminal stderr");
    assert_eq!(std::fs::read(&target).unwrap(), data2);
    let o = agent(&volume_restore(&repo, "pvc-a", &first[..12], &target));
    assert!(o.status.success());
    assert_eq!(std::fs::read(&target).unwrap(), data);

    let o = agent(&["volume", "snapshots", "--repo", &repo, "--volume", "pvc-a", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        agent(&["volume", "forget", "--repo", &repo, "--snapshot", &first])
            .status
            .success()
    );
    let o = agent(&["volume", "snapshots", "--repo", &repo]);
    assert!(stdout(&o).contains(&second) && !stdout(&o).contains(&first));
    let o = agent(&["repo", "verify", "--repo", &repo, "--read-data"]);
    assert!(o.status.success(), "{}", stdout(&o));
    let o = agent(&["repo", "gc", "--repo", &repo]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "no progress or logs on a non-terminal stderr");
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", dir.path().join("repo").display());
    let missing = format!("file://{}", dir.path().join("nothing").display());
    let img = dir.path().join("disk.img");
    write_image(&img, 3);
    let src = img.to_str().unwrap();

    assert_one_line_failure(&agent(&["repo", "verify", "--repo", &missing]), "no repository at");
    init(&repo);
    assert_one_line_failure(&agent(&["repo", "init", "--repo", &repo]), "already exists");
    assert_one_line_failure(
        &agent_env(&["volume", "snapshots", "--repo", &repo], Some("wrong")),
        "wrong passphrase",
    );
    assert_one_line_failure(
        &agent_env(&["volume", "snapshots", "--repo", &repo], None),
        "no passphrase",
    );
    assert_one_line_failure(
        &agent(&volume_backup(&repo, "v", "/nonexistent/disk.img")),
        "reading source /nonexistent/disk.img",
    );
    assert_one_line_failure(
        &agent(&volume_backup(&repo, "v", dir.path().to_str().unwrap())),
        "is a directory",
    );
    let unreadable = dir.path().join("unreadable.img");
    std::fs::write(&unreadable, b"x").unwrap();
    std::fs::set_permissions(&unreadable, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if std::fs::read(&unreadable).is_err() {
        // (root reads anything: the case only runs as an ordinary user)
        assert_one_line_failure(
            &agent(&volume_backup(&repo, "v", unreadable.to_str().unwrap())),
            "reading source",
        );
    }
    assert_one_line_failure(
        &agent(&["volume", "snapshots", "--repo", "ftp://x"]),
        "expected file:///path",
    );
    assert_one_line_failure(
        &agent(&volume_restore(&repo, "v", "latest", Path::new("/tmp/x"))),
        "not found",
    );
    assert_one_line_failure(
        &agent(&["repo", "gc", "--repo", &repo, "--grace-secs", "5"]),
        "at least 3600",
    );

    // A corrupt pack: verify --read-data and restore both fail, naming the snapshot.
    let o = agent(&volume_backup(&repo, "v", src));
    let id = stdout(&o);
    let data_dir = dir.path().join("repo/data");
    for sub in std::fs::read_dir(&data_dir).unwrap() {
        for pack in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let path = pack.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[20] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    assert_one_line_failure(&agent(&["repo", "verify", "--repo", &repo, "--read-data"]), &id);
    let target = dir.path().join("out.img");
    assert_one_line_failure(&agent(&volume_restore(&repo, "v", "latest", &target)), &id);
    // A corrupt config is named as such.
    let config = dir.path().join("repo/config");
    let mut bytes = std::fs::read(&config).unwrap();
    bytes[15] ^= 1;
    std::fs::write(&config, bytes).unwrap();
    assert_one_line_failure(
        &agent(&["volume", "snapshots", "--repo", &repo]),
        "corrupt object config",
    );
}

#[test]
fn changed_ranges_file_limits_what_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", dir.path().join("repo").display());
    init(&repo);
    let img = dir.path().join("disk.img");
    let mut data = write_image(&img, 4);
    let src = img.to_str().unwrap();
    assert!(agent(&volume_backup(&repo, "v", src)).status.success());
    data[70_000] ^= 0xff;
    std::fs::write(&img, &data).unwrap();
    let ranges = dir.path().join("ranges.txt");
    std::fs::write(&ranges, "# offset length\n70000 1\n").unwrap();
    let o = agent(
        &[
            volume_backup(&repo, "v", src),
            vec!["--changed-ranges", ranges.to_str().unwrap(), "--json"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["manifest"]["stats"]["bytes_read"], 65536, "{json}");
    let target = dir.path().join("out.img");
    let o = agent(&volume_restore(&repo, "v", "latest", &target));
    assert!(o.status.success());
    assert_eq!(std::fs::read(&target).unwrap(), data);
}

#[test]
fn an_s3_repository_url_works_end_to_end() {
    let Some(env) = arca_testenv::aws() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bucket = arca_testenv::unique("arca-cli");
    rt.block_on(async {
        let config = env.sdk_config().await;
        arca_aws::config::s3_client(&config)
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
    });
    let repo = format!("s3://{bucket}/team/repo");
    init(&repo);
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let data = write_image(&img, 5);
    let o = agent(&volume_backup(&repo, "v", img.to_str().unwrap()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let target = dir.path().join("out.img");
    let o = agent(&volume_restore(&repo, "v", "latest", &target));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert!(
        agent(&["repo", "verify", "--repo", &repo, "--read-data"])
            .status
            .success()
    );
}
