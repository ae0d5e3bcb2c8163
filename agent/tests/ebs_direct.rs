//! EBS snapshots through the EBS direct APIs (moto's `ebs` service), with the real
//! `arca-agent` binary: a first copy reads every written block, an incremental against the
//! snapshot the latest copy was made from reads only the changed ones, each restores byte
//! for byte (a block gone from the newer snapshot restores as zeros), a parent the
//! repository has no copy of falls back to a full read, and a copy goes back out to a new
//! EBS snapshot holding the same blocks.
//!
//! moto's snapshots start empty rather than from a parent: each snapshot here is written
//! whole, which the listings report as the service would. Its listings themselves are the
//! service's through `scripts/moto_server.py` (integer block indexes, blocks added in the
//! newer snapshot listed).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use arca_agent::volumes::ebs_direct::EBS_BLOCK;
use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::ChecksumAlgorithm;
use base64::Engine;
use serde_json::Value;
use sha2::Digest;

const BIN: &str = env!("CARGO_BIN_EXE_arca-agent");
const PASS: &str = "ebs direct passphrase";

fn agent(args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .env("ARCA_REPO_PASSWORD", PASS)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "arca-agent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn block(seed: u64) -> Vec<u8> {
    arca_testenv::noise(seed, EBS_BLOCK as usize)
}

/// A new EBS snapshot of a 1 GiB volume holding `blocks` (index to data).
async fn ebs_snapshot(ebs: &aws_sdk_ebs::Client, blocks: &BTreeMap<i32, Vec<u8>>) -> String {
    let id = ebs
        .start_snapshot()
        .volume_size(1)
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_owned();
    for (index, data) in blocks {
        ebs.put_snapshot_block()
            .snapshot_id(&id)
            .block_index(*index)
            .checksum(base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(data)))
            .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .data_length(EBS_BLOCK as i32)
            .block_data(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
    }
    ebs.complete_snapshot()
        .snapshot_id(&id)
        .changed_blocks_count(blocks.len() as i32)
        .send()
        .await
        .unwrap();
    id
}

/// Restores the volume's latest copy and checks it is exactly `blocks` on a zeroed 1 GiB.
fn assert_restores_to(repo: &str, dir: &std::path::Path, blocks: &BTreeMap<i32, Vec<u8>>) {
    let target = dir.join("restored.img");
    let _ = std::fs::remove_file(&target);
    agent(&common::volume_restore(repo, "vol", "latest", &target));
    let image = std::fs::read(&target).unwrap();
    assert_eq!(image.len() as u64, 1 << 30);
    for (i, chunk) in image.chunks(EBS_BLOCK as usize).enumerate() {
        match blocks.get(&(i as i32)) {
            Some(data) => assert!(chunk == data.as_slice(), "block {i} differs"),
            None => assert!(chunk.iter().all(|b| *b == 0), "block {i} is not zeros"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebs_snapshots_copy_by_changed_blocks_restore_exactly_and_go_back_to_ebs() {
    let Some(aws) = arca_testenv::aws() else { return };
    let ebs = aws_sdk_ebs::Client::new(&aws.sdk_config().await);
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", dir.path().join("repo").display());
    agent(&common::repo_init(&repo));
    let scratch = dir.path().to_str().unwrap().to_owned();
    let backup = |snapshot: &str, parent: Option<&str>| {
        let mut args = vec![
            "ebs",
            "backup",
            "--repo",
            &repo,
            "--volume",
            "vol",
            "--snapshot",
            snapshot,
            "--scratch",
            &scratch,
            "--json",
        ];
        if let Some(p) = parent {
            args.extend(["--parent", p]);
        }
        agent(&args)
    };

    // A first copy: every written block (48 of the volume's 2048), nothing else.
    let mut blocks: BTreeMap<i32, Vec<u8>> = (0..48).map(|i| (i * 41 % 2048, block(i as u64))).collect();
    let first = ebs_snapshot(&ebs, &blocks).await;
    let copied = backup(&first, None);
    assert_eq!(copied["ebs"]["blocksRead"], 48, "{copied}");
    assert_eq!(copied["ebs"]["incrementalFrom"], Value::Null);
    assert_eq!(copied["manifest"]["origin"], format!("ebs:{first}"));
    assert_restores_to(&repo, dir.path(), &blocks);

    // An incremental: two blocks rewritten, one added, one gone (listed without data:
    // zeros now); only the three with data are read.
    let indexes: Vec<i32> = blocks.keys().copied().collect();
    blocks.insert(indexes[3], block(1_000));
    blocks.insert(indexes[30], block(1_001));
    assert!(blocks.insert(2047, block(1_002)).is_none());
    blocks.remove(&indexes[7]);
    let second = ebs_snapshot(&ebs, &blocks).await;
    let copied = backup(&second, Some(&first));
    assert_eq!(copied["ebs"]["incrementalFrom"], first.as_str(), "{copied}");
    assert_eq!(copied["ebs"]["blocksRead"], 3, "only the changed blocks: {copied}");
    assert_eq!(copied["ebs"]["bytesRead"], 3 * EBS_BLOCK, "{copied}");
    assert_restores_to(&repo, dir.path(), &blocks);

    // A parent the latest copy was not made from: a full read, still exact.
    let third = ebs_snapshot(&ebs, &blocks).await;
    let copied = backup(&third, Some(&first));
    assert_eq!(copied["ebs"]["incrementalFrom"], Value::Null, "{copied}");
    assert_eq!(copied["ebs"]["blocksRead"], blocks.len(), "{copied}");
    assert_restores_to(&repo, dir.path(), &blocks);

    // Back out to a new EBS snapshot: the same non-zero blocks, nothing else.
    let out = agent(&[
        "ebs",
        "to-snapshot",
        "--repo",
        &repo,
        "--volume",
        "vol",
        "--snapshot",
        "latest",
        "--scratch",
        &scratch,
        "--json",
    ]);
    assert_eq!(out["blocksWritten"], blocks.len(), "{out}");
    let new_id = out["ebsSnapshot"].as_str().unwrap();
    let listed = ebs.list_snapshot_blocks().snapshot_id(new_id).send().await.unwrap();
    let mut written = BTreeMap::new();
    for b in listed.blocks() {
        let got = ebs
            .get_snapshot_block()
            .snapshot_id(new_id)
            .block_index(b.block_index().unwrap())
            .block_token(b.block_token().unwrap())
            .send()
            .await
            .unwrap();
        written.insert(
            b.block_index().unwrap(),
            got.block_data.collect().await.unwrap().into_bytes().to_vec(),
        );
    }
    assert!(
        written == blocks,
        "the new EBS snapshot holds exactly the volume's blocks"
    );
}
