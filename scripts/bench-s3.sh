#!/usr/bin/env bash
# Backup and restore throughput to S3 beside the local filesystem, with the same images.
#
# Usage: scripts/bench-s3.sh [SCRATCH_DIR]        (default /tmp/arca-bench-s3)
# Needs an S3 endpoint in the environment, e.g. the test environment's moto:
#   eval "$(scripts/testenv.sh env)"    (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)
# Env knobs (defaults in brackets):
#   IMG_MIB  [1024]  size of each image in MiB
#   SEED     [42]    seed of the images
#   REPEAT   [1]     runs of each configuration (the table lists every run)
#   BENCH_CARGO_FLAGS  extra cargo flags; by default the release profile without fat LTO
#                      (the data-path crates keep their opt-level 3 from Cargo.toml), which
#                      rebuilds every crate; BENCH_CARGO_FLAGS="" (empty) builds the release
#                      profile as it is, reusing a release build already in the target dir
#
# Images (generated once, cached in SCRATCH):
#   mixed  - the peer benchmark's recipe (shared/bench/peers.sh): segments of 256 KiB-8 MiB
#            in shuffled groups of 10: 4 random, 4 JSON log text, 2 zeros
#   random - incompressible bytes throughout
# Per image: local filesystem (default pack uploads in flight), S3 with one pack upload at
# a time and single PUTs (the data path before multipart), S3 with the defaults (a few pack
# uploads in flight, packs over 16 MiB as multipart). Each run is its own process
# (examples/s3_throughput.rs): backup timed, restore (fsync'd) timed, bytes compared.
# The image is read from the page cache (cat'ed before each run).
set -euo pipefail

S=${1:-/tmp/arca-bench-s3}
IMG_MIB=${IMG_MIB:-1024}
SEED=${SEED:-42}
REPEAT=${REPEAT:-1}
: "${AWS_ENDPOINT_URL:?no S3 endpoint: eval \"\$(scripts/testenv.sh env)\" first}"
cd "$(dirname "$0")/.."
mkdir -p "$S"

read -r -a FLAGS <<<"${BENCH_CARGO_FLAGS---config profile.release.lto=false --config profile.release.codegen-units=16}"
cargo build --release -p arca-repo --example s3_throughput "${FLAGS[@]}" >&2
BIN=${CARGO_TARGET_DIR:-target}/release/examples/s3_throughput

gen() { # kind path
python3 - "$1" "$2" "$((IMG_MIB * 1024 * 1024))" "$SEED" <<'PY'
import random, sys
kind, path, total, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
KiB, MiB = 1024, 1024 * 1024
with open(path, 'wb') as f:
    if kind == 'random':
        done = 0
        while done < total:
            n = min(8 * MiB, total - done)
            f.write(rng.randbytes(n))
            done += n
        sys.exit(0)
    letters = 'abcdefghijklmnopqrstuvwxyz'
    vocab = [''.join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(4096)]
    svcs = ['api-gateway', 'orders', 'payments', 'inventory', 'auth', 'search', 'billing', 'notify']
    lvls = ['INFO'] * 8 + ['DEBUG'] * 3 + ['WARN', 'ERROR']
    pool, ts = [], 1700000000000
    for _ in range(1 << 18):
        ts += rng.randint(0, 40)
        pool.append('{"ts":%d,"level":"%s","svc":"%s","trace":"%016x","user":%d,'
                    '"path":"/api/v1/%s/%s","status":%d,"ms":%.2f,"msg":"%s"}\n' % (
                        ts, rng.choice(lvls), rng.choice(svcs), rng.getrandbits(64),
                        rng.randint(1, 50000), rng.choice(vocab), rng.choice(vocab),
                        200 if rng.random() < 0.9 else 500, rng.random() * 300,
                        ' '.join(rng.choices(vocab, k=rng.randint(4, 14)))))
    avg_line = sum(map(len, pool)) / len(pool)
    zero = bytes(8 * MiB)
    done, group = 0, []
    while done < total:
        if not group:
            group = list('RRRRTTTTZZ')
            rng.shuffle(group)
        k = group.pop()
        n = min(rng.randint(64, 2048) * 4 * KiB, total - done)
        if k == 'R':
            buf = rng.randbytes(n)
        elif k == 'Z':
            buf = zero[:n]
        else:
            out = bytearray()
            while len(out) < n:
                out += ''.join(rng.choices(pool, k=int((n - len(out)) / avg_line) + 16)).encode()
            buf = bytes(out[:n])
        f.write(buf)
        done += n
PY
}

RES=$S/results.jsonl
: >"$RES"
for kind in mixed random; do
  img=$S/$kind-${IMG_MIB}M-seed$SEED.img
  [ -s "$img" ] || { echo "generating $img" >&2; gen "$kind" "$img.tmp" && mv "$img.tmp" "$img"; }
  for _ in $(seq "$REPEAT"); do
    for cfg in local s3-serial s3; do
      cat "$img" >/dev/null
      sync
      load=$(cut -d' ' -f1 /proc/loadavg)
      case $cfg in
        local) line=$("$BIN" "$img" "local:$S/repo") ;;
        s3-serial) line=$(ARCA_BENCH_SINGLE_PUT=1 "$BIN" "$img" "s3:arca-bench-s3" 1) ;;
        s3) line=$("$BIN" "$img" "s3:arca-bench-s3") ;;
      esac
      echo "${line%\}},\"load_before\":$load}" | tee -a "$RES" >&2
    done
  done
done
rm -rf "$S/repo"

python3 - "$RES" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| image | target | pack uploads | packs as | backup MB/s | restore MB/s | stored MB | backup peak RSS MB | restore peak RSS MB | load before |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    how = "-" if r["target"] == "local-fs" else ("single PUT" if r["single_put"] else "multipart > 16 MiB")
    print("| %s | %s | %d | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %s |" % (
        r["image"].split("-")[0], r["target"], r["uploads"], how, r["backup_mbs"], r["restore_mbs"],
        r["stored_mb"], r["backup_peak_rss_mb"], r["restore_peak_rss_mb"], r["load_before"]))
PY
