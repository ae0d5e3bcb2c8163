#!/usr/bin/env bash
# scripts/demo.sh: Arca on one machine, end to end, no AWS.
#
# Builds `arca` and `arca-agent`, starts the test environment's two real Kubernetes
# clusters ("a" and "b", each with a node) unless they are up, starts `arca server` on
# the embedded adapters, then with the `arca` CLI: signs up, registers both clusters and
# installs the agent into each as a user would (`kubectl apply -f <one-time link>`: the
# agent runs as a Pod from the image scripts/agent-image.sh builds), creates a
# destination (a bucket on the test environment's S3, keys in a Secret beside the
# agent), backs up a namespace of running workloads in cluster a and restores it into
# cluster b under another name, which it then checks object by object, Pods included.
# Everything it started is stopped when it ends, whatever the outcome.
#
# Without nodes (ARCA_TESTENV_NODES=0, or clusters of yours without ARCA_AGENT_IMAGE),
# or with ARCA_DEMO_AGENT=process, the agents run as host processes instead
# (`arca-agent run --kubeconfig`) and back up to a local directory.
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
#                              creates and checks its objects with curl, not kubectl);
#                              the agents run as processes unless ARCA_DEMO_AGENT=in-cluster
#                              and ARCA_AGENT_IMAGE names an image the clusters can pull
#   ARCA_DEMO_AGENT            in-cluster (default with the test environment's nodes) or process
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
# Where the agents run: in-cluster (Pods from the agent image, installed with kubectl
# apply) or process (`arca-agent run` on this machine).
MODE=${ARCA_DEMO_AGENT:-}
if [ -z "$MODE" ]; then
  if [ -n "${ARCA_DEMO_KUBECONFIG_A:-}" ] || [ "${ARCA_TESTENV_NODES:-1}" = 0 ]; then MODE=process; else MODE=in-cluster; fi
fi
case "$MODE" in in-cluster | process) ;; *) echo "demo: ARCA_DEMO_AGENT must be in-cluster or process, not $MODE" >&2; exit 2 ;; esac
if [ "$MODE" = in-cluster ] && [ -n "${ARCA_DEMO_KUBECONFIG_A:-}" ]; then
  echo "demo: in-cluster agents need the test environment (its nodes, registry and S3); with clusters of yours use ARCA_DEMO_AGENT=process" >&2
  exit 2
fi
declare -A INSTALLED
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
  for c in "${!INSTALLED[@]}"; do
    info "uninstalling the agent from cluster $c (as docs/agent.md says)"
    kubectl_on "$c" delete namespace arca-system --timeout=120s >/dev/null 2>&1
    kubectl_on "$c" delete clusterrole,clusterrolebinding,crd -l app.kubernetes.io/part-of=arca >/dev/null 2>&1
  done
  if [ "${ARCA_DEMO_KEEP:-0}" != 1 ]; then
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
[ "$MODE" = in-cluster ] && ARCA_AGENT_BIN=${ARCA_AGENT_BIN:-none} # the image holds its own
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
info "arca:       $ARCA_BIN"
if [ "$MODE" = process ]; then
  [ -x "$ARCA_AGENT_BIN" ] || fail "no arca-agent binary at $ARCA_AGENT_BIN"
  info "arca-agent: $ARCA_AGENT_BIN"
fi

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
  if [ "$MODE" = in-cluster ]; then
    [ "${ARCA_TEST_NODES:-0}" = 1 ] ||
      fail "the test environment has no nodes (ARCA_TESTENV_NODES=0?); set ARCA_DEMO_AGENT=process"
    info "the agent image: building it and pushing it to the test environment's registry (first time: a release build)"
    ARCA_AGENT_IMAGE=$(scripts/testenv.sh agent-image) || fail "the agent image could not be built or published"
    info "agent image: $ARCA_AGENT_IMAGE"
  fi
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
kubectl_on() { # cluster args...: the standard client (the test environment's, else kubectl on PATH)
  local c=$1 kc; shift
  kc=KUBECONFIG_${c^^}
  "${ARCA_KUBECTL:-kubectl}" --kubeconfig "${!kc}" "$@"
}
# With nodes the Deployment really runs: an image the nodes have.
WORKLOAD_IMAGE=${ARCA_TEST_BUSYBOX_IMAGE:-busybox:1.36}
kube_create() { # cluster collection-path json
  kube "$1" POST "$2" -o /dev/null -H 'Content-Type: application/json' -d "$3" ||
    fail "cluster $1: could not create in $2"
}

# ------------------------------------------------------------------ 3. server
step "starting the control plane: arca server (embedded adapters, one process)"
export ARCA_CONFIG=$WORK/config.json # the demo's CLI login, not yours
if [ "$MODE" = in-cluster ]; then
  # Where the Pods reach this machine; the agents connect out to it.
  port=$(python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$ARCA_TEST_NODE_HOST_IP")
  ARCA_PUBLIC_URL=http://$ARCA_TEST_NODE_HOST_IP:$port ARCA_AGENT_IMAGE=$ARCA_AGENT_IMAGE \
    "$ARCA_BIN" server --data-dir "$WORK/data" --listen "$ARCA_TEST_NODE_HOST_IP:$port" >"$WORK/server.log" 2>&1 &
else
  "$ARCA_BIN" server --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
fi
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
step "arca signup"
arca signup --org-name demo || fail "arca signup failed"

# ------------------------------------------------------------------ 5. agents
declare -A AGENT_PID
if [ "$MODE" = in-cluster ]; then
  step "registering clusters a and b, and installing the agent into each: kubectl apply -f <link>"
  for c in a b; do
    line=$(arca clusters register "$c" | sed -n 's/^ *\(kubectl apply -f .*\)$/\1/p') || fail "arca clusters register $c failed"
    [ -n "$line" ] || fail "arca clusters register $c printed no kubectl line"
    info "cluster $c registered; running: kubectl apply -f <one-time link>"
    # A previous agent's namespace still being deleted (an uninstall moments ago) would
    # take the new install with it when it finishes: wait until it is gone.
    if [ "$(kubectl_on "$c" get namespace arca-system -o jsonpath='{.status.phase}' 2>/dev/null)" = Terminating ]; then
      kubectl_on "$c" wait --for=delete namespace/arca-system --timeout=180s >/dev/null 2>&1 ||
        fail "the namespace arca-system of a previous agent on cluster $c is still being deleted"
    fi
    INSTALLED[$c]=1
    kubectl_on "$c" apply -f "${line#kubectl apply -f }" >"$WORK/install-$c.log" 2>&1 ||
      fail "kubectl apply of the install link failed on cluster $c (log: $WORK/install-$c.log)"
  done
  for c in a b; do
    kubectl_on "$c" -n arca-system rollout status deployment/arca-agent --timeout=180s >>"$WORK/install-$c.log" 2>&1 ||
      fail "the agent Pod of cluster $c did not become Ready ($(kubectl_on "$c" -n arca-system get pods 2>&1 | tail -1))"
    info "cluster $c: the agent Pod is Ready"
  done
else
  step "registering clusters a and b, and running an agent for each"
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
fi
for c in a b; do
  state=""
  for _ in $(seq 1 120); do
    state=$(arca clusters get "$c" -o json | json_get '["state"]') || state=""
    [ "$state" = ACTIVE ] && break
    if [ -n "${AGENT_PID[$c]:-}" ]; then
      kill -0 "${AGENT_PID[$c]}" 2>/dev/null || fail "the agent of cluster $c exited (log: $WORK/agent-$c.log)"
    fi
    sleep 0.5
  done
  [ "$state" = ACTIVE ] || fail "cluster $c never turned ACTIVE (its agent did not connect; state: ${state:-?})"
done
arca clusters list
step "arca destinations create"
if [ "$MODE" = in-cluster ]; then
  # A bucket on the test environment's S3 (moto), its keys in a Secret beside each agent.
  BUCKET=arca-demo-$(openssl rand -hex 4)
  curl -sf -X PUT "$AWS_ENDPOINT_URL/$BUCKET" -o /dev/null || fail "could not create bucket $BUCKET on $AWS_ENDPOINT_URL"
  for c in a b; do
    kube_create "$c" /api/v1/namespaces/arca-system/secrets \
      "{\"metadata\":{\"name\":\"demo-bucket-keys\"},\"stringData\":{\"AWS_ACCESS_KEY_ID\":\"$AWS_ACCESS_KEY_ID\",\"AWS_SECRET_ACCESS_KEY\":\"$AWS_SECRET_ACCESS_KEY\"}}"
  done
  arca destinations create backups --s3-bucket "$BUCKET" --s3-region "$AWS_REGION" \
    --s3-endpoint "http://$ARCA_TEST_NODE_HOST_IP:${AWS_ENDPOINT_URL##*:}" --credentials-ref demo-bucket-keys ||
    fail "creating the destination failed"
  info "bucket $BUCKET; keys in Secret arca-system/demo-bucket-keys of each cluster"
else
  arca destinations create backups --local-path "$WORK/backups" || fail "creating the destination failed"
fi

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
  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"web",
  "image":"'"$WORKLOAD_IMAGE"'","imagePullPolicy":"IfNotPresent","command":["sh","-c","exec sleep 86400"]}]}}}}'
kube_create a "/api/v1/namespaces/$NS/services" \
  '{"metadata":{"name":"web"},"spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}}'
info "configmap/settings secret/creds deployment/web service/web"

# ------------------------------------------------------------------ 7. backup
step "backing up $NS: arca backups create, arca backups run --wait"
arca backups create demo --cluster a --namespaces "$NS" --pv-mode none --destination backups ||
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
if [ "$MODE" = in-cluster ]; then
  kubectl_on b -n "$NS_RESTORED" rollout status deployment/web --timeout=120s >/dev/null ||
    fail "the restored Deployment's Pod did not become Ready in cluster b"
  info "the restored Deployment's Pod runs on $(kubectl_on b -n "$NS_RESTORED" get pods -o jsonpath='{.items[0].spec.nodeName}')"
fi

printf '\ndemo: SUCCESS: namespace %s of cluster a was backed up (recovery point %s) and restored into cluster b as %s\n' \
  "$NS" "$RP" "$NS_RESTORED"
