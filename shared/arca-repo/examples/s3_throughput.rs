//! Backup and restore throughput of one volume image, to a local directory or to S3 (any
//! S3 endpoint; `scripts/bench-s3.sh` points it at moto). Prints one JSON line. Not a
//! test: a measurement, run by hand (`scripts/bench-s3.sh` builds and runs it).
//!
//! Usage: `s3_throughput <image> <local:DIR | s3:BUCKET> [uploads]`
//! - `uploads`: pack uploads in flight (0: the default).
//! - `ARCA_BENCH_SINGLE_PUT=1`: no multipart uploads (every pack one PUT).
//!
//! Timed: the backup (`backup_volume`, index load to snapshot written) and the restore
//! (`restore` with fsync, as the mover's `--sync`). Untimed: repository init (argon2),
//! the check that the restored bytes equal the image, and deleting the repository after.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement tool: any failure ends it

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arca_core::ports::ObjectStore;
use arca_repo::{PassphraseWrapper, Repository, RestoreOptions, VolumeBackup, backup_volume, restore};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak RSS, so each phase reports its own.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (std::fs::File::open(a).unwrap(), std::fs::File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

async fn open_store(spec: &str) -> (Arc<dyn ObjectStore>, String) {
    if let Some(dir) = spec.strip_prefix("local:") {
        let _ = std::fs::remove_dir_all(dir);
        return (Arc::new(arca_embedded::LocalFsObjectStore::new(dir)), "local-fs".into());
    }
    let bucket = spec.strip_prefix("s3:").expect("local:DIR or s3:BUCKET");
    let config = arca_aws::config::load().await;
    let client = arca_aws::config::s3_client(&config);
    let _ = client.create_bucket().bucket(bucket).send().await;
    let mut store = arca_aws::S3ObjectStore::new(client, bucket, "bench");
    if std::env::var("ARCA_BENCH_SINGLE_PUT").is_ok_and(|v| v == "1") {
        store = store.with_multipart(arca_aws::s3::Multipart {
            threshold: usize::MAX,
            ..Default::default()
        });
    }
    let kind = if config.endpoint_url().is_some() {
        "s3 (moto)"
    } else {
        "s3"
    };
    (Arc::new(store), kind.into())
}

async fn wipe(store: &dyn ObjectStore) {
    for object in store.list("").await.unwrap() {
        store.delete(&object.key).await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, image, target, rest @ ..] = args.as_slice() else {
        eprintln!("usage: s3_throughput <image> <local:DIR | s3:BUCKET> [uploads]");
        std::process::exit(2);
    };
    let uploads: usize = rest.first().map_or(0, |u| u.parse().expect("uploads: a number"));
    let image = PathBuf::from(image);
    let size = std::fs::metadata(&image).unwrap().len();
    let (store, kind) = open_store(target).await;
    wipe(store.as_ref()).await;
    let repo = Repository::init(store.clone(), "bench", &PassphraseWrapper::new("bench"), None)
        .await
        .unwrap();

    reset_peak();
    let started = Instant::now();
    let mut job = VolumeBackup::new("bench", &image);
    job.uploads = uploads;
    let (id, snap) = backup_volume(&repo, job).await.unwrap();
    let backup_s = started.elapsed().as_secs_f64();
    let backup_rss = peak_rss_mb();

    let out_dir = tempfile::tempdir_in(image.parent().unwrap_or(Path::new("/tmp"))).unwrap();
    let out = out_dir.path().join("restored.img");
    reset_peak();
    let started = Instant::now();
    let stats = restore(
        &repo,
        &id,
        &snap,
        &out,
        RestoreOptions {
            sync: true,
            ..RestoreOptions::default()
        },
    )
    .await
    .unwrap();
    let restore_s = started.elapsed().as_secs_f64();
    let restore_rss = peak_rss_mb();
    let identical = same_bytes(&image, &out);
    wipe(store.as_ref()).await;

    let mb = |s: f64| size as f64 / 1e6 / s;
    println!(
        "{}",
        serde_json::json!({
            "target": kind,
            "image": image.file_name().map(|n| n.to_string_lossy().to_string()),
            "size_mb": size as f64 / 1e6,
            "uploads": if uploads == 0 { arca_repo::pack::UPLOADS_IN_FLIGHT } else { uploads },
            "single_put": std::env::var("ARCA_BENCH_SINGLE_PUT").is_ok_and(|v| v == "1"),
            "backup_s": backup_s,
            "backup_mbs": mb(backup_s),
            "backup_peak_rss_mb": backup_rss,
            "stored_mb": snap.stats.bytes_stored as f64 / 1e6,
            "packs": snap.stats.packs_written,
            "restore_s": restore_s,
            "restore_mbs": mb(restore_s),
            "restore_peak_rss_mb": restore_rss,
            "fetched_mb": stats.bytes_fetched as f64 / 1e6,
            "identical": identical,
        })
    );
    if !identical {
        std::process::exit(1);
    }
}
