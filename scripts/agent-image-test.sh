#!/usr/bin/env bash
# scripts/agent-image-test.sh: the agent image against a real registry (scripts/test.sh).
#
#   scripts/agent-image-test.sh [--image DIR]
#
# Builds the image with scripts/agent-image.sh (or takes the one built in DIR), starts
# `distribution` v3 (the CNCF registry, built from the Go module proxy and cached like the
# test environment's Go builds) on a loopback port with filesystem storage in a temporary
# directory, publishes the image to it with `agent-image.sh publish --insecure`, and checks
# through the registry's HTTP API what a node would pull:
#   - the manifest fetched by the printed digest hashes to that digest (and the registry
#     says so in Docker-Content-Digest); the version and revision tags name it;
#   - its config: user 65532:65532, entrypoint /usr/local/bin/arca-agent, the OCI labels
#     (version = the crate version, revision = this commit, source, created, title,
#     licenses); every blob is there; compressed size within the budget;
#   - the image pulled back (skopeo) and unpacked (umoci) runs `arca-agent --version` as
#     65532 in its own root filesystem (chroot; root only) with nothing of the host;
#   - the SBOM beside it is CycloneDX naming the agent's crates; template.yaml's agent
#     version is the crate version;
#   - the busybox test-workload image builds and its sh runs.
# Stops the registry whatever the outcome; prints PASS lines, exits non-zero on a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE_DIR=${ARCA_IMAGE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-image}
SIZE_BUDGET=${ARCA_IMAGE_SIZE_BUDGET:-40000000}
NAME=arca/arca-agent

log() { printf 'agent-image-test: %s\n' "$*" >&2; }
pass() { printf 'PASS: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

image=""
while [ $# -gt 0 ]; do
  case $1 in
    --image) image=${2:?--image needs a directory}; shift 2 ;;
    *) echo "usage: $0 [--image DIR]" >&2; exit 2 ;;
  esac
done

free_port() { # a loopback port in 35000-35999 nothing listens on
  local port
  for _ in $(seq 1 50); do
    port=$((35000 + RANDOM % 1000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  fail "no free loopback port in 35000-35999"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/arca-agent-image-test.XXXXXX")
REGISTRY_PID=""
cleanup() {
  if [ -n "$REGISTRY_PID" ] && kill -0 "$REGISTRY_PID" 2>/dev/null; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$REGISTRY_PID" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$REGISTRY_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- the image
if [ -z "$image" ]; then
  image=$IMAGE_DIR/agent
  started=$SECONDS
  scripts/agent-image.sh build --output "$image" >/dev/null || fail "scripts/agent-image.sh build failed"
  log "built in $((SECONDS - started)) s"
fi
[ -f "$image/image.env" ] || fail "no built image in $image"
# shellcheck disable=SC1091
. "$image/image.env"
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ "$ARCA_IMAGE_VERSION" = "$version" ] || fail "the image is version $ARCA_IMAGE_VERSION, the crate $version"
[ "$ARCA_IMAGE_COMPRESSED_BYTES" -le "$SIZE_BUDGET" ] ||
  fail "the image is $ARCA_IMAGE_COMPRESSED_BYTES bytes compressed, over $SIZE_BUDGET"
pass "image $ARCA_IMAGE_NAME:$ARCA_IMAGE_TAG $ARCA_IMAGE_DIGEST, $ARCA_IMAGE_COMPRESSED_BYTES bytes compressed (budget $SIZE_BUDGET)"

# ---------------------------------------------------------------- the registry
registry=$(scripts/testenv.sh registry) || fail "no registry binary (scripts/testenv.sh registry)"
port=$(free_port)
mkdir -p "$WORK/storage"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/storage
  delete:
    enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
EOF
# No telemetry exporter: nothing leaves the machine.
OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
  "$registry" serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
base=http://127.0.0.1:$port
for _ in $(seq 1 120); do
  curl -sf -o /dev/null "$base/v2/" && break
  kill -0 "$REGISTRY_PID" 2>/dev/null || { tail -n 20 "$WORK/registry.log" >&2; fail "the registry exited"; }
  sleep 0.25
done
curl -sf -o /dev/null "$base/v2/" || { tail -n 20 "$WORK/registry.log" >&2; fail "the registry did not answer on $base"; }
pass "registry $("$registry" --version 2>/dev/null | head -1) on 127.0.0.1:$port"

# ---------------------------------------------------------------- publish
repository=127.0.0.1:$port/$NAME
published=$(scripts/agent-image.sh publish --repository "$repository" --image "$image" --insecure) ||
  fail "scripts/agent-image.sh publish failed"
[ "$published" = "$repository@$ARCA_IMAGE_DIGEST" ] || fail "publish printed '$published', expected $repository@$ARCA_IMAGE_DIGEST"
pass "published $published"

# ---------------------------------------------------------------- what a node pulls
accept='Accept: application/vnd.oci.image.manifest.v1+json'
get() { # path file
  curl -sf -H "$accept" -D "$2.headers" -o "$2" "$base/v2/$NAME/$1" || fail "GET /v2/$NAME/$1 failed"
}
get "manifests/$ARCA_IMAGE_DIGEST" "$WORK/manifest.json"
fetched="sha256:$(sha256sum "$WORK/manifest.json" | cut -d' ' -f1)"
[ "$fetched" = "$ARCA_IMAGE_DIGEST" ] || fail "the manifest fetched by digest hashes to $fetched"
header=$(tr -d '\r' <"$WORK/manifest.json.headers" | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
[ "$header" = "$ARCA_IMAGE_DIGEST" ] || fail "the registry's Docker-Content-Digest is '$header'"
ctype=$(tr -d '\r' <"$WORK/manifest.json.headers" | sed -n 's/^[Cc]ontent-[Tt]ype: //p')
[ "$ctype" = application/vnd.oci.image.manifest.v1+json ] || fail "the registry serves the manifest as '$ctype'"
pass "manifest by digest: sha256 of its bytes and Docker-Content-Digest are $ARCA_IMAGE_DIGEST ($ctype)"

rev_tag=$(printf '%s' "$ARCA_IMAGE_REVISION" | sed -E 's/^([0-9a-f]{12})[0-9a-f]*/\1/')
curl -sf "$base/v2/$NAME/tags/list" -o "$WORK/tags.json" || fail "GET tags/list failed"
for tag in "$ARCA_IMAGE_TAG" "$rev_tag"; do
  python3 -c 'import json,sys; sys.exit(sys.argv[2] not in json.load(open(sys.argv[1]))["tags"])' \
    "$WORK/tags.json" "$tag" || fail "tag $tag missing: $(cat "$WORK/tags.json")"
  get "manifests/$tag" "$WORK/by-tag.json"
  cmp -s "$WORK/by-tag.json" "$WORK/manifest.json" || fail "tag $tag names another manifest"
done
pass "tags $ARCA_IMAGE_TAG and $rev_tag name it"

python3 - "$WORK/manifest.json" >"$WORK/blobs" <<'PY' || fail "unexpected manifest: $(cat "$WORK/manifest.json")"
import json, sys
m = json.load(open(sys.argv[1]))
# umoci 0.4.7 leaves out the optional mediaType; the registry has it from the push.
assert m.get("mediaType", "application/vnd.oci.image.manifest.v1+json") == "application/vnd.oci.image.manifest.v1+json", m
assert m["schemaVersion"] == 2, m
print(m["config"]["digest"], m["config"]["size"])
for layer in m["layers"]:
    print(layer["digest"], layer["size"])
PY
total=$(wc -c <"$WORK/manifest.json")
while read -r digest size; do
  curl -sf -o "$WORK/blob" "$base/v2/$NAME/blobs/$digest" || fail "blob $digest missing"
  [ "sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)" = "$digest" ] || fail "blob $digest does not hash to its digest"
  [ "$(wc -c <"$WORK/blob")" = "$size" ] || fail "blob $digest is not $size bytes"
  total=$((total + size))
done <"$WORK/blobs"
[ "$total" -le "$SIZE_BUDGET" ] || fail "the pushed image is $total bytes, over $SIZE_BUDGET"
pass "every blob is there and hashes right; $total bytes compressed as stored ($(python3 -c "print(f'{$total/1e6:.1f}')") MB <= $((SIZE_BUDGET / 1000000)) MB)"

config=$(head -n1 "$WORK/blobs" | cut -d' ' -f1)
curl -sf -o "$WORK/config.json" "$base/v2/$NAME/blobs/$config" || fail "config blob missing"
python3 - "$WORK/config.json" "$version" "$ARCA_IMAGE_REVISION" <<'PY' || fail "the image config is wrong"
import json, sys
config, version, revision = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
c = config["config"]
problems = []
if c.get("User") != "65532:65532":
    problems.append(f"user {c.get('User')!r}, not 65532:65532")
if c.get("Entrypoint") != ["/usr/local/bin/arca-agent"]:
    problems.append(f"entrypoint {c.get('Entrypoint')!r}")
labels = c.get("Labels") or {}
want = {
    "org.opencontainers.image.version": version,
    "org.opencontainers.image.revision": revision,
    "org.opencontainers.image.title": "arca-agent",
    "org.opencontainers.image.licenses": "Apache-2.0",
}
for k, v in want.items():
    if labels.get(k) != v:
        problems.append(f"label {k}={labels.get(k)!r}, expected {v!r}")
for k in ["org.opencontainers.image.source", "org.opencontainers.image.created"]:
    if not labels.get(k):
        problems.append(f"label {k} missing")
if labels.get("org.opencontainers.image.created") != config.get("created"):
    problems.append("created label and config differ")
if config.get("os") != "linux" or config.get("architecture") != "amd64":
    problems.append(f"platform {config.get('os')}/{config.get('architecture')}")
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
pass "config: user 65532:65532, entrypoint /usr/local/bin/arca-agent, linux/amd64, OCI labels (version $version, revision $ARCA_IMAGE_REVISION)"

# The image as pulled runs, with only its own files (chroot needs root).
skopeo copy --quiet --src-tls-verify=false "docker://$repository@$ARCA_IMAGE_DIGEST" "oci:$WORK/pulled:pulled" ||
  fail "skopeo could not pull $repository@$ARCA_IMAGE_DIGEST"
if [ "$(id -u)" = 0 ]; then
  umoci unpack --image "$WORK/pulled:pulled" "$WORK/bundle" >/dev/null || fail "umoci unpack of the pulled image failed"
  rootfs=$WORK/bundle/rootfs
  ran=$(chroot --userspec=65532:65532 "$rootfs" /usr/local/bin/arca-agent --version) ||
    fail "arca-agent --version fails in the pulled image's root filesystem"
  [ "$ran" = "arca-agent $version" ] || fail "arca-agent --version printed '$ran'"
  [ -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA bundle in the image"
  writable=$(find "$rootfs" -xdev -perm -o+w ! -type l ! -path "$rootfs/tmp" | head -n3)
  [ -z "$writable" ] || fail "world-writable paths in the image: $writable"
  pass "the pulled image runs as 65532 in its own root filesystem: $ran; $(find "$rootfs" -type f | wc -l) files, $(du -sh "$rootfs" | cut -f1) unpacked"
else
  log "not root: the chroot run of the pulled image is skipped"
fi

# ---------------------------------------------------------------- beside the image
python3 - "$image/sbom.cdx.json" <<'PY' || fail "the SBOM $image/sbom.cdx.json is not what it should be"
import json, sys
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX", bom.get("bomFormat")
names = {c["name"] for c in bom.get("components", [])}
for crate in ["tokio", "kube-client", "aws-sdk-s3", "arca-repo"]:
    assert crate in names, f"{crate} not among {len(names)} components"
print(f"{len(names)} components", file=sys.stderr)
PY
pass "SBOM $image/sbom.cdx.json: CycloneDX, names tokio, kube-client, aws-sdk-s3, arca-repo"

template_version=$(sed -n 's/^ *Image: { Version: "\(.*\)" }.*/\1/p' template.yaml)
[ "$template_version" = "$version" ] || fail "template.yaml's Mappings.Agent.Image.Version is '$template_version', the crate $version"
pass "template.yaml names agent version $version"

# ---------------------------------------------------------------- busybox
scripts/agent-image.sh busybox --output "$IMAGE_DIR/busybox" >/dev/null || fail "scripts/agent-image.sh busybox failed"
# shellcheck disable=SC1091
bb_digest=$(. "$IMAGE_DIR/busybox/image.env" && echo "$ARCA_IMAGE_DIGEST")
# shellcheck disable=SC1091
bb_tag=$(. "$IMAGE_DIR/busybox/image.env" && echo "$ARCA_IMAGE_TAG")
if [ "$(id -u)" = 0 ]; then
  umoci unpack --image "$IMAGE_DIR/busybox/oci:$bb_tag" "$WORK/bb" >/dev/null || fail "umoci unpack busybox failed"
  # shellcheck disable=SC2016 # expanded by the image's sh
  out=$(chroot "$WORK/bb/rootfs" /bin/sh -c 'echo ok from $(id -u)') || fail "busybox sh does not run"
  [ "$out" = "ok from 0" ] || fail "busybox sh printed '$out'"
fi
pass "busybox image arca.local/busybox:$bb_tag $bb_digest runs sh"
