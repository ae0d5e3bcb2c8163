#!/usr/bin/env bash
# scripts/lambda-e2e.sh: the five functions as Lambda runs them (issue #15).
#
#   scripts/lambda-e2e.sh --build-dir DIR [--template EXPANDED.json] [--endpoint URL]
#
# Runs each `bootstrap` that `sam build` staged in DIR (DIR/<LogicalId>/bootstrap: no other
# build is made here) under the AWS Lambda Runtime Interface Emulator (aws-lambda-rie, built
# from the Go module proxy by `scripts/testenv.sh rie`, cached under ~/.cache), with the
# environment the SAM-expanded template gives it: every variable's intrinsic (Ref, GetAtt,
# Sub, If, ...) is resolved to a resource created for this run on moto (the table, the
# queues, the schedule group and fixed schedules, buckets, roles, keys, topic, repository,
# the functions themselves), so a variable renamed or dropped in template.yaml reaches the
# functions renamed or dropped. What Lambda itself sets (AWS_LAMBDA_*, _HANDLER, the
# region, credentials) is added, and AWS_ENDPOINT_URL points the SDK at moto.
#
# Then, with the events their triggers send (scripts/lambda_e2e.py, the driver):
#   - retention and inventory with their fixed schedules' input (read back from moto's
#     Scheduler) on an empty table: nothing examined, no account;
#   - api, HTTP API payload 2.0 events: sign-up (items in the table), cluster registration
#     (its SQS queue, redrive policy to the stage's dead-letter queue after MaxReceives),
#     the agent's connect and heartbeat (ACTIVE), an Arca-managed destination, a backup
#     with the org's policy (its schedules on moto target the dispatch function with the
#     scheduler role), a backup run now (PENDING); the agent's poll leases that job from
#     the cluster queue, its credentials (STS on moto) write under the cluster's prefix of
#     the stack's bucket, and it completes the job (a recovery point);
#   - dispatch with that schedule's input: a PENDING job whose message is on the cluster
#     queue, and an EMF line (CloudWatch metrics) counting it; the API's EMF lines; once SQS redrives it to the dead-letter queue, retention drains it (FAILED);
#     the install link is under the API's URL and its manifest names the stack's image;
#   - an RDS instance in a fresh moto account linked through the API; inventory finds it;
#     the RDS run's work message plus a malformed one as one SQS batch to the rds
#     function: `batchItemFailures` names exactly the malformed record, the job completes
#     with a snapshot on moto and a recovery point; retention then deletes nothing.
# Every step asserts the HTTP status and body or what moto then holds; the first failure
# stops the run (exit 1) with its cause and the function's last log lines (secrets
# redacted). Each run uses a fresh stage name, so runs never see each other's state.
#
# moto: --endpoint, else AWS_ENDPOINT_URL (scripts/test.sh runs this through
# scripts/deploy-checks.sh while the bare test environment is up); with neither, a moto
# server of its own on a free loopback port, stopped at exit. The expanded template: given
# by deploy-checks, else made here from template.yaml with the deploy tools' samtranslator.
#
# scripts/deploy-checks.sh runs this right after its `sam build`. By hand, on a build of yours:
#   sam build --build-dir /tmp/build && scripts/lambda-e2e.sh --build-dir /tmp/build
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'lambda-e2e: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

build_dir="" template="" endpoint=${AWS_ENDPOINT_URL:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --template) template=$2; shift 2 ;;
    --endpoint) endpoint=$2; shift 2 ;;
    *) echo "usage: $0 --build-dir DIR [--template EXPANDED.json] [--endpoint URL]" >&2; exit 2 ;;
  esac
done
[ -n "$build_dir" ] || die "--build-dir (a sam build output) is required"
[ -d "$build_dir" ] || die "no build directory $build_dir"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/arca-lambda-e2e.XXXXXX")
moto_pid=""
cleanup() {
  local rc=$?
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
  if [ "$rc" = 0 ]; then rm -rf "$WORK"; else log "logs kept in $WORK"; fi
}
trap cleanup EXIT

started=$(date +%s)
RIE=$(scripts/testenv.sh rie) || die "could not build aws-lambda-rie"
MOTO_VENV=$(scripts/testenv.sh moto-venv) || die "could not install moto"
log "aws-lambda-rie: $RIE ($(($(date +%s) - started)) s to have it)"

if [ -z "$template" ]; then
  sam_venv=$(scripts/deploy-checks.sh tools)
  template=$WORK/expanded.json
  AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} "$sam_venv/bin/python" scripts/sam-expand.py template.yaml "$template"
fi

if [ -z "$endpoint" ]; then
  port=$("$MOTO_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$MOTO_VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 </dev/null &
  moto_pid=$!
  endpoint=http://127.0.0.1:$port
  for _ in $(seq 100); do
    curl -sf "$endpoint/moto-api/" >/dev/null 2>&1 && break
    kill -0 "$moto_pid" 2>/dev/null || die "moto did not start: $(tail -5 "$WORK/moto.log")"
    sleep 0.2
  done
  curl -sf "$endpoint/moto-api/" >/dev/null || die "moto never answered on $endpoint"
  log "no AWS_ENDPOINT_URL: started a moto server of its own on $endpoint"
fi

# moto takes any credentials; real ones, should the caller have some, never reach the functions.
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=${AWS_REGION:-us-east-1} PYTHONDONTWRITEBYTECODE=1 \
  "$MOTO_VENV/bin/python" scripts/lambda_e2e.py --build-dir "$build_dir" --template "$template" \
  --rie "$RIE" --endpoint "$endpoint" --work "$WORK"
log "took $(($(date +%s) - started)) s"
