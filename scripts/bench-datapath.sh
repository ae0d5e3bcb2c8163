#!/usr/bin/env bash
# scripts/bench-datapath.sh: the volume data path on realistic disk images, beside restic and
# rustic, in one run (issue #20). peers.sh's image is 40% random bytes, which hides what
# compression costs; these images are filesystems as a PersistentVolume holds them.
#
# Usage: scripts/bench-datapath.sh [--images pg,vm] [--tools arca,restic,rustic] [--cores 2,1]
#                                  [--out FILE]
# Images (ext4, $IMG_GIB GiB each, built by recipe from Debian packages and cached under
# $ARCA_BENCH_CACHE/images; the recipe's version is in the file name):
#   pg  PostgreSQL 15 (Debian's) after `pgbench -i -s 30` and a 30 s pgbench run, beside
#       ordinary files: the Linux 6.1 source tree (Debian's linux-source-6.1) and the docs of
#       PostgreSQL and Python; "after": a 15 s pgbench run (table and index pages, WAL
#       rewritten), 300 files appended to, one more package's docs (perl-doc).
#   vm  a Debian bookworm root filesystem (debootstrap minbase with compilers, python, perl,
#       ssh, git; apt's downloaded .debs left in /var/cache as on a real VM); "after": apt-get
#       installs four more packages in it (new files, changed dpkg state, new cached .debs).
# Per tool and image: init; backup 1 (the image); backup 2 (the "after" image, same path);
# restore of the latest snapshot to a file (checked byte for byte against the "after"
# image; untimed check). Timed with GNU time (wall seconds, peak RSS); repository size with
# `du -sb`. The image is read once before each timed step, so every tool reads it from the
# page cache. --cores 1 reruns everything under `taskset -c 0`.
# Output: one markdown table (also written to --out, default $ARCA_BENCH_DIR/results.md):
#   MB/s = image bytes / wall seconds (1 MB = 10^6 bytes); repo = size after backup 1;
#   growth = what backup 2 added; RSS = the largest peak of the tool's steps.
#
# Env: ARCA_AGENT        the arca-agent binary (default: built here, release profile)
#      BENCH_CARGO_FLAGS extra cargo flags for that build (default none: the shipped profile)
#      ARCA_BENCH_DIR    scratch (repositories, restores; default /tmp/arca-bench-datapath)
#      ARCA_BENCH_CACHE  images and rustic (default ~/.cache/arca-bench)
#      IMG_GIB           image size in GiB (default 4)
#      RUSTIC_VERSION    rustic-rs from crates.io (default 0.11.4; ~20 min to build, once)
# Needs root on a Debian-like system (loop mounts, chroot, apt-get for restic, postgresql,
# debootstrap and GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGES=pg,vm TOOLS=arca,restic,rustic CORES=2 OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --images) IMAGES=$2; shift 2 ;;
    --tools) TOOLS=$2; shift 2 ;;
    --cores) CORES=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-target}
BENCH=${ARCA_BENCH_DIR:-/tmp/arca-bench-datapath}
CACHE=${ARCA_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-bench}
IMG_GIB=${IMG_GIB:-4}
RUSTIC_VERSION=${RUSTIC_VERSION:-0.11.4}
OUT=${OUT:-$BENCH/results.md}
PG_BIN=/usr/lib/postgresql/15/bin
PASS=bench-password
export RESTIC_PASSWORD=$PASS ARCA_REPO_PASSWORD=$PASS RUSTIC_PASSWORD=$PASS

[ "$(id -u)" = 0 ] || { echo "bench-datapath: needs root (loop mounts, chroot)" >&2; exit 1; }
mkdir -p "$BENCH" "$CACHE/images"

# ------------------------------------------------------------------ tools
need=()
command -v restic >/dev/null || need+=(restic)
[ -x /usr/bin/time ] || need+=(time)
[ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/pgbench" ] || need+=(postgresql)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> apt-get install ${need[*]}"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
if [[ ,$TOOLS, == *,rustic,* ]]; then
  RUSTIC="$CACHE/rustic-$RUSTIC_VERSION/bin/rustic"
  if [ ! -x "$RUSTIC" ]; then
    echo "==> cargo install rustic-rs $RUSTIC_VERSION (once; about 20 minutes on 2 cores)"
    cargo install --locked rustic-rs --version "$RUSTIC_VERSION" --root "$CACHE/rustic-$RUSTIC_VERSION" >&2
  fi
fi
if [[ ,$TOOLS, == *,arca,* ]] && [ -z "${ARCA_AGENT:-}" ]; then
  read -r -a FLAGS <<<"${BENCH_CARGO_FLAGS:-}"
  cargo build --release --locked --bin arca-agent ${FLAGS[@]+"${FLAGS[@]}"} >&2
  ARCA_AGENT=$CARGO_TARGET_DIR/release/arca-agent
fi

# ------------------------------------------------------------------ images
MNT=$BENCH/mnt
mounted() { mountpoint -q "$MNT"; }
cleanup() {
  if [ -n "${PGDATA:-}" ] && [ -f "$PGDATA/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
  fi
  if mounted; then umount "$MNT" || umount -l "$MNT"; fi
}
trap cleanup EXIT

new_fs() { # image: an empty ext4 filesystem, mounted at $MNT
  rm -f "$1"; truncate -s "${IMG_GIB}G" "$1"; mkfs.ext4 -q -F "$1"
  mkdir -p "$MNT"; mount -o loop "$1" "$MNT"
}
remount() { mkdir -p "$MNT"; mount -o loop "$1" "$MNT"; }
freeze() { # image copy: unmount cleanly, keep a sparse copy as one state of the image
  sync; umount "$MNT"; cp --sparse=always "$1" "$2"
}

debs_into() { # dir packages...: the files of Debian packages, without their scripts
  local dir=$1 tmp; shift
  tmp=$(mktemp -d); chmod 755 "$tmp"; (cd "$tmp" && apt-get download -q "$@" >/dev/null)
  for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$dir"; done
  rm -rf "$tmp"
}

pg_start() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -o "-p 55439 -k $BENCH/pgsock" -l "$BENCH/pg.log" -w start >/dev/null; }
pg_stop() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; }
pgbench_run() { runuser -u postgres -- "$PG_BIN/pgbench" -h "$BENCH/pgsock" -p 55439 "$@" postgres >>"$BENCH/pgbench.log" 2>&1; }

build_pg() { # the pg image's two states: $1 (before) and $2 (after)
  local work=$BENCH/pg-work.img
  id postgres >/dev/null 2>&1 || useradd --system postgres
  mkdir -p "$BENCH/pgsock"; chown postgres "$BENCH/pgsock"; : >"$BENCH/pgbench.log"; chmod 666 "$BENCH/pgbench.log"
  new_fs "$work"
  PGDATA=$MNT/pgdata; mkdir -p "$PGDATA"; chown postgres "$PGDATA"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA" -A trust >/dev/null
  touch "$BENCH/pg.log"; chmod 666 "$BENCH/pg.log"
  pg_start
  pgbench_run -i -s 30
  pgbench_run -c 2 -j 2 -T 30 --random-seed=42
  runuser -u postgres -- psql -q -h "$BENCH/pgsock" -p 55439 -c checkpoint postgres
  pg_stop
  mkdir -p "$MNT/files"
  debs_into "$MNT/files" postgresql-doc-15 python3.11-doc linux-source-6.1
  # the kernel's source tree, as a developer's volume holds it (the package ships a tarball)
  tar -xJf "$MNT"/files/usr/src/linux-source-6.1.tar.xz -C "$MNT/files" && rm -rf "$MNT/files/usr/src"
  freeze "$work" "$1"
  remount "$work"; pg_start
  pgbench_run -c 2 -j 2 -T 15 --random-seed=7
  pg_stop
  python3 - "$MNT/files" <<'EOF'
import os, random, sys
rng = random.Random(7)
files = sorted(os.path.join(r, n) for r, _, ns in os.walk(sys.argv[1]) for n in ns)
for p in rng.sample(files, min(300, len(files))):
    with open(p, 'a') as f:
        f.write('\n<!-- edited %d -->\n' % rng.randint(0, 1 << 30))
EOF
  debs_into "$MNT/files" perl-doc
  freeze "$work" "$2"; PGDATA=; rm -f "$work"
}

build_vm() {
  local work=$BENCH/vm-work.img
  new_fs "$work"
  debootstrap --variant=minbase \
    --include=python3,perl,gcc,g++,make,libc6-dev,openssh-server,curl,ca-certificates,git,vim-tiny,less,postgresql-client \
    bookworm "$MNT" http://deb.debian.org/debian >"$BENCH/debootstrap.log" 2>&1
  freeze "$work" "$1"
  remount "$work"; cp /etc/resolv.conf "$MNT/etc/resolv.conf"
  chroot "$MNT" apt-get update -q >"$BENCH/chroot.log" 2>&1
  chroot "$MNT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3-dev libssl-dev rsync zstd >>"$BENCH/chroot.log" 2>&1
  freeze "$work" "$2"; rm -f "$work"
}

RECIPE=2   # bump when a recipe changes, so cached images are rebuilt
image_of() { echo "$CACHE/images/$1-r$RECIPE-${IMG_GIB}g-$2.img"; }
for img in ${IMAGES//,/ }; do
  if [ ! -f "$(image_of "$img" 2)" ]; then
    echo "==> building the $img image (cached in $CACHE/images)"
    "build_$img" "$(image_of "$img" 1)" "$(image_of "$img" 2)"
  fi
done

# ------------------------------------------------------------------ measuring
DATA=$BENCH/data; IMG=$DATA/disk.img
RES=$BENCH/results.tsv; : >"$RES"
mkdir -p "$DATA" "$BENCH/logs"

timed() { # label cmd...: runs it under GNU time; appends "label wall_s rss_kb"
  local label=$1; shift
  cat "$IMG" >/dev/null 2>&1 || true; sync
  /usr/bin/time -f "%e %M" -o "$BENCH/logs/$label.time" "$@" >"$BENCH/logs/$label.out" 2>&1 \
    || { echo "$label failed:"; tail -20 "$BENCH/logs/$label.out"; exit 1; }
  echo "$label $(cat "$BENCH/logs/$label.time")" >>"$RES"
}
size_of() { du -sb "$1" | cut -f1; }
# A restore is timed until its data is on disk: arca-agent fsyncs the target itself, restic
# and rustic do not, so each is followed by a sync of the target's filesystem (timed).
DURABLY=$BENCH/durably; printf '#!/bin/sh\ndir=$1; shift; "$@" && sync -f "$dir"\n' >"$DURABLY"; chmod +x "$DURABLY"

run_tool() { # tool image cores
  local t=$1 img=$2 cores=$3 repo=$BENCH/repo-$1 restored=$BENCH/restore-$1 pin=()
  [ "$cores" = 2 ] || pin=(taskset -c "$(seq -s, 0 $((cores - 1)))")
  local k="$t:$img:$cores"
  rm -rf "$repo" "$restored"; mkdir -p "$restored"
  cp --sparse=always "$(image_of "$img" 1)" "$IMG"
  case $t in
    arca)
      "$ARCA_AGENT" repo init --repo "file://$repo" >/dev/null
      timed "$k:backup1" "${pin[@]}" "$ARCA_AGENT" volume backup --repo "file://$repo" --volume bench --source "$IMG" ;;
    restic)
      restic init -q -r "$repo"
      timed "$k:backup1" "${pin[@]}" restic -q -r "$repo" backup "$IMG" ;;
    rustic)
      "$RUSTIC" -r "$repo" init >/dev/null 2>&1
      timed "$k:backup1" "${pin[@]}" "$RUSTIC" -r "$repo" backup "$IMG" ;;
  esac
  echo "$k:repo1 $(size_of "$repo") 0" >>"$RES"
  cp --sparse=always "$(image_of "$img" 2)" "$IMG"
  case $t in
    arca) timed "$k:backup2" "${pin[@]}" "$ARCA_AGENT" volume backup --repo "file://$repo" --volume bench --source "$IMG"
          timed "$k:restore" "${pin[@]}" "$DURABLY" "$restored" "$ARCA_AGENT" volume restore --repo "file://$repo" --volume bench --snapshot latest --target "$restored/disk.img" ;;
    restic) timed "$k:backup2" "${pin[@]}" restic -q -r "$repo" backup "$IMG"
            timed "$k:restore" "${pin[@]}" "$DURABLY" "$restored" restic -q -r "$repo" restore latest --target "$restored" ;;
    rustic) timed "$k:backup2" "${pin[@]}" "$RUSTIC" -r "$repo" backup "$IMG"
            timed "$k:restore" "${pin[@]}" "$DURABLY" "$restored" "$RUSTIC" -r "$repo" restore latest "$restored" ;;
  esac
  echo "$k:repo2 $(size_of "$repo") 0" >>"$RES"
  local out; out=$(find "$restored" -type f -name disk.img | head -1)
  cmp -s "$out" "$IMG" || { echo "$t restored $img differently from its source"; exit 1; }
  rm -rf "$restored"
}

for cores in ${CORES//,/ }; do
  for img in ${IMAGES//,/ }; do
    for t in ${TOOLS//,/ }; do
      echo "==> $t on $img, $cores core(s)"
      run_tool "$t" "$img" "$cores"
    done
  done
done
rm -rf "$DATA"

# ------------------------------------------------------------------ the table
python3 - "$RES" "$((IMG_GIB * 1024 * 1024 * 1024))" "$OUT" <<'EOF'
import sys
res, size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
v = {}
for line in open(res):
    k, a, b = line.split()
    v[k] = (float(a), int(b))
rows = sorted({k.rsplit(':', 1)[0] for k in v}, key=lambda k: (k.split(':')[1], -int(k.split(':')[2]), k))
lines = ["| image | tool | cores | backup 1 MB/s | repo MB | backup 2 MB/s | growth MB | restore MB/s | peak RSS MB |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    t, img, cores = r.split(':')
    g = lambda s: v[f"{r}:{s}"]
    mbs = lambda s: f"{size / g(s)[0] / 1e6:.0f}"
    rss = max(g(s)[1] for s in ("backup1", "backup2", "restore")) / 1024
    repo1, repo2 = g("repo1")[0], g("repo2")[0]
    lines.append(f"| {img} | {t} | {cores} | {mbs('backup1')} | {repo1 / 1e6:.1f} | {mbs('backup2')} | "
                 f"{(repo2 - repo1) / 1e6:.1f} | {mbs('restore')} | {rss:.0f} |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
EOF
echo "table: $OUT"
