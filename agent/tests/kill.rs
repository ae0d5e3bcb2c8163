//! Fault test: SIGKILL the real backup process at random points; the repository stays
//! valid, no snapshot appears half-written, and the next backup completes and restores.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{repo_init, volume_backup, volume_restore};

const BIN: &str = env!("CARGO_BIN_EXE_arca-agent");

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("ARCA_REPO_PASSWORD", "kill test")
        .output()
        .unwrap()
}

#[test]
fn killing_a_backup_at_random_points_leaves_a_repository_that_verifies_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", dir.path().join("repo").display());
    assert!(agent(&repo_init(&repo)).status.success());
    // 40 MB of varied content: several 16 MiB packs even after compression.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..40_000_000u64)
        .map(|i| {
            if (i / 65536) % 5 == 4 {
                return 0;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i / 65536) % 3 == 0 {
                b'a' + (x % 4) as u8
            } else {
                x as u8
            }
        })
        .collect();
    let img = dir.path().join("disk.img");
    std::fs::write(&img, &data).unwrap();
    let src = img.to_str().unwrap();

    // Time one full run so that kill points spread over the whole backup.
    let started = Instant::now();
    let probe_repo = format!("file://{}", dir.path().join("probe").display());
    assert!(agent(&repo_init(&probe_repo)).status.success());
    assert!(agent(&volume_backup(&probe_repo, "v", src)).status.success());
    let full = started.elapsed().as_millis() as u64;

    // Kill points are random in [20 ms, max). A trial whose backup had already finished
    // kills nothing (reruns are faster: the repository holds most blocks by then), so
    // the window shrinks after such a trial and trials go on until three real kills.
    let mut seed = 0x9e37_79b9u64;
    let mut killed = 0;
    let mut window = full.max(40);
    for trial in 0..20 {
        if killed >= 3 {
            break;
        }
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = 20 + (seed >> 33) % window;
        let mut child = Command::new(BIN)
            .args(volume_backup(&repo, "v", src))
            .env("ARCA_REPO_PASSWORD", "kill test")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        } else {
            window = (window / 2).max(10);
        }
        child.wait().unwrap();
        let o = agent(&["repo", "verify", "--repo", &repo]);
        assert!(
            o.status.success(),
            "trial {trial} (kill after {delay} ms): {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    assert!(
        killed >= 3,
        "three trials must actually kill a running backup (killed {killed})"
    );

    let o = agent(&[volume_backup(&repo, "v", src), vec!["--json"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let target = dir.path().join("out.img");
    let o = agent(&volume_restore(&repo, "v", "latest", &target));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&target).unwrap() == data, "restored image differs");
    let o = agent(&["repo", "verify", "--repo", &repo, "--read-data"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}
