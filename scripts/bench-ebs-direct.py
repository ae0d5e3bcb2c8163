"""scripts/bench-ebs-direct.py: what an EBS snapshot copy reads through the EBS direct APIs,
full against incremental (issue #19, "changed blocks").

Usage (the test environment's moto virtualenv has boto3):
  ~/.cache/arca-testenv/moto-<version>/bin/python scripts/bench-ebs-direct.py \
      --agent $CARGO_TARGET_DIR/release/arca-agent [--gib 2] [--changed-percent 1]

Starts a moto server of its own (scripts/moto_server.py in the same virtualenv, whose EBS
listings are the service's) on a free loopback port, writes a
snapshot of a --gib GiB volume with every 512 KiB block holding data, then a second one
with --changed-percent of the blocks rewritten (moto's snapshots do not start from a
parent, so the second is written whole), and runs `arca-agent ebs backup` of the first
(full) and of the second with --parent (incremental) into a local repository. Prints one
markdown table: blocks and MiB read from EBS, wall seconds, peak RSS (GNU time when
present). moto serves blocks from Python: the wall times say how the two compare, not what
EBS itself serves.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import boto3

BLOCK = 512 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def put_snapshot(ebs, gib, blocks):
    sid = ebs.start_snapshot(VolumeSize=gib)["SnapshotId"]
    for index, data in blocks.items():
        ebs.put_snapshot_block(
            SnapshotId=sid,
            BlockIndex=index,
            BlockData=data,
            DataLength=BLOCK,
            Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            ChecksumAlgorithm="SHA256",
        )
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(blocks))
    return sid


def timed(cmd, env):
    gnu_time = shutil.which("time") and os.path.exists("/usr/bin/time")
    rss_file = tempfile.NamedTemporaryFile(delete=False)
    full = (["/usr/bin/time", "-f", "%M", "-o", rss_file.name] if gnu_time else []) + cmd
    start = time.monotonic()
    out = subprocess.run(full, env=env, check=True, capture_output=True, text=True)
    wall = time.monotonic() - start
    rss = open(rss_file.name).read().strip().splitlines()[-1] if gnu_time else ""
    os.unlink(rss_file.name)
    return json.loads(out.stdout), wall, (f"{int(rss) / 1024:.0f}" if rss else "-")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--agent", required=True)
    p.add_argument("--gib", type=int, default=2)
    p.add_argument("--changed-percent", type=float, default=1.0)
    args = p.parse_args()

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_server.py"),
         "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    work = tempfile.mkdtemp(prefix="arca-bench-ebs-")
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                   ARCA_REPO_PASSWORD="bench", RUST_LOG="warn")
        ebs = boto3.client("ebs", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        count = args.gib * 1024 * 1024 * 1024 // BLOCK
        rng = random.Random(7)
        blocks = {i: rng.randbytes(BLOCK) for i in range(count)}
        first = put_snapshot(ebs, args.gib, blocks)
        for i in rng.sample(range(count), max(1, int(count * args.changed_percent / 100))):
            blocks[i] = rng.randbytes(BLOCK)
        second = put_snapshot(ebs, args.gib, blocks)

        repo = f"file://{work}/repo"
        subprocess.run([args.agent, "repo", "init", "--repo", repo], env=env, check=True, capture_output=True)
        rows = []
        for label, snapshot, parent in (("full", first, None), ("incremental", second, first)):
            cmd = [args.agent, "ebs", "backup", "--repo", repo, "--volume", "vol", "--snapshot", snapshot,
                   "--scratch", work, "--json"] + (["--parent", parent] if parent else [])
            out, wall, rss = timed(cmd, env)
            read = out["ebs"]
            rows.append((label, read["blocksRead"], read["bytesRead"] / 2**20, wall, rss,
                         out["manifest"]["stats"]["bytes_read"] / 2**20))
        print(f"| copy of a {args.gib} GiB EBS snapshot ({args.changed_percent}% changed) | blocks read "
              "| MiB read from EBS | MiB the repository read | wall s | peak RSS MB |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, blocks_read, mib, wall, rss, repo_mib in rows:
            print(f"| {label} | {blocks_read} | {mib:.1f} | {repo_mib:.1f} | {wall:.1f} | {rss} |")
    finally:
        moto.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
