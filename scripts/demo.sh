#!/usr/bin/env bash
# scripts/demo.sh: Arca on one machine, end to end, no AWS.
#
# Builds `arca` and `arca-agent`, starts the test environment's two real Kubernetes
# control planes (clusters "a" and "b") unless they are up, starts `arca server` on the
# embedded adapters, then with the `arca` CLI: signs up, creates a local-filesystem
# destination, registers both clusters and runs an agent for each (`arca-agent run`
# with the cluster's kubeconfig), backs up a namespace of cluster a, and restores it
# into cluster b under another name, which it then checks object by object.
# Everything it started is stopped when it ends, whatever the outcome.
#
# Environment (all optional):
#   ARCA_BIN, ARCA_AGENT_BIN   prebuilt binaries (else `cargo build` in CARGO_TARGET_DIR,
#                              default ~/.cache/arca-target, as scripts/test.sh)
#   ARCA_DEMO_DIR              work directory: server data, backups, logs, CLI config
#                              (default: a new temporary directory)
#   ARCA_DEMO_KEEP=1           keep the work directory and the demo namespaces afterwards
#   ARCA_DEMO_KUBECONFIG_A, ARCA_DEMO_KUBECONFIG_B
#                              two clusters of yours instead of the test environment
#                              (cluster-admin kubeconfigs with a bearer token: the demo
#                              creates and checks its objects with curl, not kubectl)
#   ARCA_DEMO_NAMESPACE        the namespace backed up (default: demo-<random>; the test
#                              clusters have no controller-manager, so a deleted namespace
#                              stays Terminating and names are never reused)
#
# Exit 0 and a line "demo: SUCCESS: ..." when the restored objects are all in cluster b;
# otherwise non-zero and a last line "demo: FAILED: <cause>" (on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

STEP=0
# A command failing without its own cause is blamed on the step it ran in.
step() {
  STEP=$((STEP + 1)); CAUSE="step $STEP ($*) failed"
  printf '\n==> %d. %s (%s)\n' "$STEP" "$*" "$(date +%H:%M:%S)"
}
info() { printf '    %s\n' "$*"; }
CAUSE="interrupted"
fail() { CAUSE=$*; exit 1; }

# ------------------------------------------------------------------ cleanup
PIDS=()
STARTED_TESTENV=0
CREATED_DIR=0
NS_A="" NS_B=""
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  set +e
  if [ "$STEP" -gt 0 ]; then printf '\n==> cleaning up (%s)\n' "$(date +%H:%M:%S)"; fi
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "${ARCA_DEMO_KEEP:-0}" != 1 ]; then
    # On a real cluster the namespaces go; the test clusters keep them Terminating.
    [ -n "$NS_A" ] && kube a DELETE "/api/v1/namespaces/$NS_A" -o /dev/null 2>/dev/null
    [ -n "$NS_B" ] && kube b DELETE "/api/v1/namespaces/$NS_B" -o /dev/null 2>/dev/null
  fi
  if [ "$STARTED_TESTENV" = 1 ]; then
    info "stopping the test environment this demo started"
    scripts/testenv.sh down >/dev/null 2>&1
  fi
  if [ "$rc" -ne 0 ]; then
    if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
      for log in server agent-a agent-b; do
        [ -f "$WORK/$log.log" ] || continue
        printf '\n--- last lines of %s ---\n' "$WORK/$log.log"
        tail -n 8 "$WORK/$log.log"
      done
      printf '\n(work directory kept: %s)\n' "$WORK"
    fi
    echo "demo: FAILED: $CAUSE" >&2
  else
    if [ "$CREATED_DIR" = 1 ] && [ "${ARCA_DEMO_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'CAUSE="interrupted"; exit 130' INT TERM

need() { command -v "$1" >/dev/null || fail "$1 is not installed (prerequisites: README.md)"; }
need curl
need python3
need openssl

# JSON field from stdin: json_get '["items"][0]["id"]'
json_get() { python3 -c 'import json,sys; v=eval("json.load(sys.stdin)"+sys.argv[1]); print(v if not isinstance(v,(dict,list)) else json.dumps(v))' "$1"; }

# ------------------------------------------------------------------ 1. build
step "building arca and arca-agent"
if [ -z "${ARCA_BIN:-}" ] || [ -z "${ARCA_AGENT_BIN:-}" ]; then
  pkgs=()
  [ -z "${ARCA_BIN:-}" ] && pkgs+=(-p arca-cli)
  [ -z "${ARCA_AGENT_BIN:-}" ] && pkgs+=(-p arca-agent)
  info "cargo build ${pkgs[*]} --bins (cache: $CARGO_TARGET_DIR; a cold build takes a while)"
  cargo build "${pkgs[@]}" --bins || fail "cargo build failed"
fi
ARCA_BIN=${ARCA_BIN:-$CARGO_TARGET_DIR/debug/arca}
ARCA_AGENT_BIN=${ARCA_AGENT_BIN:-$CARGO_TARGET_DIR/debug/arca-agent}
[ -x "$ARCA_BIN" ] || fail "no arca binary at $ARCA_BIN"
[ -x "$ARCA_AGENT_BIN" ] || fail "no arca-agent binary at $ARCA_AGENT_BIN"
info "arca:       $ARCA_BIN"
info "arca-agent: $ARCA_AGENT_BIN"

# ------------------------------------------------------------------ 2. clusters
step "two Kubernetes clusters, a and b"
if [ -n "${ARCA_DEMO_KUBECONFIG_A:-}" ] && [ -n "${ARCA_DEMO_KUBECONFIG_B:-}" ]; then
  info "yours: ARCA_DEMO_KUBECONFIG_A and ARCA_DEMO_KUBECONFIG_B"
  KUBECONFIG_A=$ARCA_DEMO_KUBECONFIG_A
  KUBECONFIG_B=$ARCA_DEMO_KUBECONFIG_B
else
  status=$(scripts/testenv.sh status)
  if grep -qv ': running' <<<"$status"; then
    # Stopped afterwards only if nothing of it ran before: others may be using it.
    grep -q ': running' <<<"$status" || STARTED_TESTENV=1
    info "the test environment (real kube-apiservers on loopback) is not (all) running: starting it"
    info "(the first start on a machine builds kube-apiserver and etcd: ~15 min)"
    scripts/testenv.sh up || fail "the test environment did not start"
  else
    info "the test environment (real kube-apiservers on loopback) is running: reusing it"
  fi
  eval "$(scripts/testenv.sh env)"
  KUBECONFIG_A=$KUBECONFIG
  KUBECONFIG_B=$ARCA_TEST_KUBECONFIG_B
fi
info "cluster a: $KUBECONFIG_A"
info "cluster b: $KUBECONFIG_B"

# Calls a cluster's apiserver with the kubeconfig's server, CA and token (no kubectl
# needed; these kubeconfigs hold one cluster with token auth).
declare -A KSERVER KTOKEN
WORK=${ARCA_DEMO_DIR:-}
if [ -z "$WORK" ]; then
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/arca-demo.XXXXXX")
  CREATED_DIR=1
fi
mkdir -p "$WORK"
chmod 700 "$WORK"
for c in a b; do
  kc=KUBECONFIG_${c^^}
  kc=${!kc}
  KSERVER[$c]=$(sed -n 's/^ *server: *//p' "$kc" | head -1)
  KTOKEN[$c]=$(sed -n 's/^ *token: *//p' "$kc" | head -1)
  sed -n 's/^ *certificate-authority-data: *//p' "$kc" | head -1 | base64 -d >"$WORK/ca-$c.crt"
  [ -n "${KSERVER[$c]}" ] && [ -n "${KTOKEN[$c]}" ] || fail "cannot read the server and token of $kc"
done
kube() { # cluster method path [curl args...]
  local c=$1 method=$2 path=$3; shift 3
  curl -sSf --cacert "$WORK/ca-$c.crt" -H "Authorization: Bearer ${KTOKEN[$c]}" \
    -X "$method" "${KSERVER[$c]}$path" "$@"
}
kube_create() { # cluster collection-path json
  kube "$1" POST "$2" -o /dev/null -H 'Content-Type: application/json' -d "$3" ||
    fail "cluster $1: could not create in $2"
}

# ------------------------------------------------------------------ 3. server
step "starting the control plane: arca server (embedded adapters, one process)"
export ARCA_CONFIG=$WORK/config.json # the demo's CLI login, not yours
"$ARCA_BIN" server --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
PIDS+=($!)
API_URL=""
for _ in $(seq 1 120); do
  API_URL=$(sed -n 's/^arca server listening on \(http[^ ]*\).*/\1/p' "$WORK/server.log" | head -1)
  [ -n "$API_URL" ] && break
  kill -0 "${PIDS[-1]}" 2>/dev/null || fail "arca server exited at start (log: $WORK/server.log)"
  sleep 0.25
done
[ -n "$API_URL" ] || fail "arca server did not start listening in 30 s"
export ARCA_API_URL=$API_URL
info "listening on $API_URL (data: $WORK/data, log: $WORK/server.log)"

arca() { "$ARCA_BIN" "$@"; }

# ------------------------------------------------------------------ 4. account
step "arca signup, arca destinations create"
arca signup --org-name demo || fail "arca signup failed"
arca destinations create local --local-path "$WORK/backups" || fail "creating the destination failed"

# ------------------------------------------------------------------ 5. agents
step "registering clusters a and b, and running an agent for each"
declare -A AGENT_PID
for c in a b; do
  arca clusters register "$c" --agent-token-file "$WORK/$c.token" >/dev/null ||
    fail "arca clusters register $c failed"
  info "cluster $c registered; agent token in $WORK/$c.token (0600)"
  health=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  kc=KUBECONFIG_${c^^}
  ARCA_AGENT_TOKEN=$(cat "$WORK/$c.token") "$ARCA_AGENT_BIN" run --api-url "$API_URL" \
    --kubeconfig "${!kc}" --health-addr "$health" >"$WORK/agent-$c.log" 2>&1 &
  PIDS+=($!)
  AGENT_PID[$c]=$!
  info "arca-agent run --kubeconfig ${!kc} (log: $WORK/agent-$c.log)"
done
for c in a b; do
  state=""
  for _ in $(seq 1 120); do
    state=$(arca clusters get "$c" -o json | json_get '["state"]') || state=""
    [ "$state" = ACTIVE ] && break
    kill -0 "${AGENT_PID[$c]}" 2>/dev/null || fail "the agent of cluster $c exited (log: $WORK/agent-$c.log)"
    sleep 0.5
  done
  [ "$state" = ACTIVE ] || fail "cluster $c never turned ACTIVE (its agent did not connect; state: ${state:-?})"
done
arca clusters list

# ------------------------------------------------------------------ 6. demo data
NS=${ARCA_DEMO_NAMESPACE:-demo-$(openssl rand -hex 3)}
NS_RESTORED=$NS-restored
step "creating namespace $NS in cluster a: a ConfigMap, a Secret, a Deployment, a Service"
# Never touch a namespace the demo did not create (cleanup deletes what it made).
kube a GET "/api/v1/namespaces/$NS" -o /dev/null 2>/dev/null &&
  fail "namespace $NS exists already in cluster a (set another ARCA_DEMO_NAMESPACE)"
kube b GET "/api/v1/namespaces/$NS_RESTORED" -o /dev/null 2>/dev/null &&
  fail "namespace $NS_RESTORED exists already in cluster b (set another ARCA_DEMO_NAMESPACE)"
kube_create a /api/v1/namespaces "{\"metadata\":{\"name\":\"$NS\"}}"
NS_A=$NS
kube_create a "/api/v1/namespaces/$NS/configmaps" \
  '{"metadata":{"name":"settings"},"data":{"greeting":"hello from cluster a"}}'
kube_create a "/api/v1/namespaces/$NS/secrets" \
  '{"metadata":{"name":"creds"},"stringData":{"password":"demo-password"}}'
kube_create a "/apis/apps/v1/namespaces/$NS/deployments" '{"metadata":{"name":"web","labels":{"app":"web"}},
  "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},
  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}}'
kube_create a "/api/v1/namespaces/$NS/services" \
  '{"metadata":{"name":"web"},"spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}}'
info "configmap/settings secret/creds deployment/web service/web"

# ------------------------------------------------------------------ 7. backup
step "backing up $NS: arca backups create, arca backups run --wait"
arca backups create demo --cluster a --namespaces "$NS" --pv-mode none --destination local ||
  fail "arca backups create failed"
arca backups run demo --wait || fail "the backup job did not complete"
arca recovery-points list --backup demo
RP=$(arca recovery-points list --backup demo -o json | json_get '[0]["id"]') ||
  fail "no recovery point for the backup"
RP_STATE=$(arca recovery-points get "$RP" -o json | json_get '["state"]')
[ "$RP_STATE" = READY ] || fail "recovery point $RP is $RP_STATE, not READY"

# ------------------------------------------------------------------ 8. restore
step "restoring $RP into cluster b as $NS_RESTORED: arca restores create --wait"
NS_B=$NS_RESTORED
arca restores create --recovery-point "$RP" --cluster b --namespace-map "$NS=$NS_RESTORED" --wait ||
  fail "the restore job did not complete"

# ------------------------------------------------------------------ 9. check
step "checking cluster b"
RESTORE_ID=$(arca restores list -o json | json_get '[0]["id"]')
check() { # what path
  local obj label
  obj=$(kube b GET "$2" 2>/dev/null) || fail "$1 is not in cluster b ($2)"
  label=$(printf '%s' "$obj" | json_get '["metadata"].get("labels",{}).get("arca.io/restore-id","")')
  [ "$label" = "$RESTORE_ID" ] || fail "$1 in cluster b is not labelled arca.io/restore-id=$RESTORE_ID"
  info "ok  $1"
}
check "namespace/$NS_RESTORED" "/api/v1/namespaces/$NS_RESTORED"
check "configmap/settings" "/api/v1/namespaces/$NS_RESTORED/configmaps/settings"
check "secret/creds" "/api/v1/namespaces/$NS_RESTORED/secrets/creds"
check "deployment/web" "/apis/apps/v1/namespaces/$NS_RESTORED/deployments/web"
check "service/web" "/api/v1/namespaces/$NS_RESTORED/services/web"
greeting=$(kube b GET "/api/v1/namespaces/$NS_RESTORED/configmaps/settings" | json_get '["data"]["greeting"]')
[ "$greeting" = "hello from cluster a" ] || fail "the restored ConfigMap's data differs: $greeting"
password=$(kube b GET "/api/v1/namespaces/$NS_RESTORED/secrets/creds" | json_get '["data"]["password"]' | base64 -d)
[ "$password" = demo-password ] || fail "the restored Secret's data differs"
info "the ConfigMap's and the Secret's data are intact"

printf '\ndemo: SUCCESS: namespace %s of cluster a was backed up (recovery point %s) and restored into cluster b as %s\n' \
  "$NS" "$RP" "$NS_RESTORED"
