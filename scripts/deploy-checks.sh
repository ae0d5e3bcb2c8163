#!/usr/bin/env bash
# scripts/deploy-checks.sh: checks of what `sam deploy` and `helm install` ship (run by
# scripts/test.sh, so by CI; runs alone too).
#
# `scripts/deploy-checks.sh tools` only installs the pinned deploy tools and prints the
# virtualenv holding sam and cargo-lambda (README "Deploy to AWS" puts its bin/ on PATH).
#
#   1. sam validate --lint                       template.yaml as SAM sees it
#   2. cfn-lint on the SAM-expanded template     (samtranslator, offline: cfn-lint alone
#                                                 no longer runs the SAM transform)
#   3. cfn-lint on every cfn/*.yaml              the customer's role stack
#   4. checkov on template.yaml and cfn/*.yaml   no finding but those suppressed in the
#                                                 template, each with its reason
#   5. helm lint --strict and helm template      agent/chart (helm from scripts/testenv.sh)
#   6. one feature set under the AWS SDK         across the five functions (cargo tree), so
#                                                 sam build compiles the SDK once
#   7. sam build of every function               the web console built first (scripts/console.sh,
#                                                 embedded into the API); cargo-lambda + zig, x86_64; prints each
#                                                 function's zipped size, fails over 8 MB or
#                                                 when a binary needs a glibc newer than
#                                                 provided.al2023's 2.34
#   8. the built functions under the Lambda      scripts/lambda-e2e.sh on step 7's build and
#      Runtime Interface Emulator, on moto        step 2's expanded template (no other build):
#                                                 their triggers' events, real effects on moto
#
# The tools are pinned and installed here into virtualenvs under ~/.cache (nothing by
# hand): aws-sam-cli, aws-sam-translator, cfn-lint, cargo-lambda and ziglang in one,
# checkov in another (its pins conflict with SAM's). Rust builds share CARGO_TARGET_DIR
# with the tests (test.sh exports it), so they are cached outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- pinned versions ----
SAM_CLI_VERSION=1.170.0
SAM_TRANSLATOR_VERSION=1.115.0
CFN_LINT_VERSION=1.58.0
CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.17.1
CHECKOV_VERSION=3.3.30
# Largest zipped function we accept: issue #8's 8 MB (Lambda's own limit is 50 MB zipped; a
# Rust function far above a few MB means something heavy was linked in by mistake). The
# release profile in Cargo.toml (fat LTO, one codegen unit, opt-level "s", the SDK at "z")
# is what keeps the API, the largest, near 6.3 MB.
MAX_ZIPPED_BYTES=$((8 * 1024 * 1024))
# provided.al2023's glibc: a binary needing a newer one does not start on Lambda.
MAX_GLIBC=2.34

CACHE=${ARCA_DEPLOY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-deploy-tools}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-target}
export SAM_CLI_TELEMETRY=0
# The Lambda target (template.yaml builds x86_64).
CARGO_TARGET_TRIPLE=x86_64-unknown-linux-gnu
# Everything here is offline: no AWS endpoint (the test environment may have set moto's)
# and a region for the tools that insist on one. Only step 8 talks to AWS, to moto: the
# test environment's (scripts/test.sh runs this with its AWS_ENDPOINT_URL), else one that
# scripts/lambda-e2e.sh starts for itself.
LAMBDA_E2E_ENDPOINT=${AWS_ENDPOINT_URL:-}
unset AWS_ENDPOINT_URL
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} AWS_REGION=${AWS_REGION:-us-east-1}

log() { printf 'deploy-checks: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
check() { printf '\n--> %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/arca-deploy-checks.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# A virtualenv named after its pins: changing a pin makes a new one, a half-made one
# (no .complete) is made again.
ensure_venv() { # name pip-requirements...
  local name=$1; shift
  local venv
  venv=$CACHE/$name-$(printf '%s\n' "$@" | sha256sum | cut -c1-12)
  if [ ! -f "$venv/.complete" ]; then
    log "installing $* into $venv"
    rm -rf "$venv"
    mkdir -p "$CACHE"
    python3 -m venv "$venv" >&2 || die "python3 -m venv failed (Python 3.11+ with venv is a prerequisite)"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2 || die "pip install $* failed"
    touch "$venv/.complete"
  fi
  echo "$venv"
}

sam_venv() {
  ensure_venv sam "aws-sam-cli==$SAM_CLI_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION" \
    "cfn-lint==$CFN_LINT_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
}

case "${1:-}" in
  "") ;;
  tools) sam_venv; exit 0 ;;
  *) echo "usage: $0 [tools]" >&2; exit 2 ;;
esac

check "deploy tools"
SAM_VENV=$(sam_venv)
CHECKOV_VENV=$(ensure_venv checkov "checkov==$CHECKOV_VERSION")
HELM=$(scripts/testenv.sh helm)
# cargo-lambda runs `python3 -m ziglang`: the venv's python must come first.
export PATH=$SAM_VENV/bin:$PATH
echo "sam: $(sam --version) · samtranslator: $SAM_TRANSLATOR_VERSION · cfn-lint: $(cfn-lint --version)"
echo "$(cargo lambda --version) · zig: $(python3 -m ziglang version)"
echo "checkov: $("$CHECKOV_VENV/bin/checkov" --version) · helm: $("$HELM" version --short)"

CFN_TEMPLATES=(cfn/*.yaml)
[ -e "${CFN_TEMPLATES[0]}" ] || CFN_TEMPLATES=()

check "sam validate --lint"
sam validate --lint --template-file template.yaml

check "cfn-lint on the SAM-expanded template"
python3 scripts/sam-expand.py template.yaml "$WORK/expanded.json"
cfn-lint "$WORK/expanded.json"
echo "expanded template: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["Resources"]))' "$WORK/expanded.json") resources, no finding"

check "cfn-lint on cfn/"
if [ ${#CFN_TEMPLATES[@]} -gt 0 ]; then
  cfn-lint "${CFN_TEMPLATES[@]}"
  echo "${CFN_TEMPLATES[*]}: no finding"
else
  echo "no cfn/*.yaml to lint"
fi

check "checkov (template.yaml ${CFN_TEMPLATES[*]})"
checkov_args=()
for f in template.yaml "${CFN_TEMPLATES[@]}"; do checkov_args+=(-f "$f"); done
"$CHECKOV_VENV/bin/checkov" "${checkov_args[@]}" --framework cloudformation --skip-download --compact --quiet ||
  die "checkov found something: fix it, or suppress it on the resource (Metadata.checkov.skip) with the reason"

check "helm lint and helm template (agent/chart)"
chart_values=(--set apiUrl=https://arca.example.com --set clusterId=cl_01ARZ3NDEKTSV4RRFFQ69G5FAV
  --set-string agentToken=arcagent_example)
"$HELM" lint --strict agent/chart "${chart_values[@]}"
"$HELM" template arca-agent agent/chart "${chart_values[@]}" >"$WORK/agent.yaml"
"$HELM" template arca-agent agent/chart --set apiUrl=https://arca.example.com \
  --set clusterId=cl_01ARZ3NDEKTSV4RRFFQ69G5FAV --set existingSecret.name=arca-agent-token \
  --set nodeSelector.kubernetes\\.io/os=linux >"$WORK/agent-existing-secret.yaml"
echo "helm template: $(grep -c '^kind:' "$WORK/agent.yaml") objects ($(grep '^kind:' "$WORK/agent.yaml" | awk '{print $2}' | paste -sd, -)); with an existing Secret: $(grep -c '^kind:' "$WORK/agent-existing-secret.yaml")"

check "one feature set under the AWS SDK for every function (functions/feature-union)"
# sam build compiles each function alone; a feature one function adds below the SDK makes
# cargo build the whole SDK again for it. functions/feature-union (arca-feature-union) keeps them equal.
python3 - "$CARGO_TARGET_TRIPLE" <<'PY'
"""Fails when two functions resolve a crate the AWS SDK depends on with different features."""
import subprocess
import sys

FUNCTIONS = ["arca-api", "arca-fn-dispatch", "arca-fn-inventory", "arca-fn-rds", "arca-fn-retention"]


def tree(*args):
    out = subprocess.run(["cargo", "tree", "-e", "normal", "--prefix", "none", "--target", sys.argv[1], *args],
                         check=True, capture_output=True, text=True).stdout
    return {line.replace(" (*)", "") for line in out.splitlines() if line}


below_sdk = {line.split(" [")[0] for line in tree("-p", "aws-smithy-runtime", "-p", "aws-config", "-f", "{p} [{f}]")}
features = {}
for function in FUNCTIONS:
    for line in tree("-p", function, "-f", "{p} [{f}]"):
        crate, _, enabled = line.partition(" [")
        if crate in below_sdk:
            features.setdefault(crate, {})[function] = enabled.rstrip("]")
split = {crate: by_function for crate, by_function in features.items() if len(set(by_function.values())) > 1}
for crate, by_function in sorted(split.items()):
    print(f"{crate}: " + "; ".join(f"{f}=[{e}]" for f, e in sorted(by_function.items())))
if split:
    sys.exit("add the missing features to functions/feature-union/Cargo.toml")
print(f"{len(features)} crates below the SDK, one feature set each across {len(FUNCTIONS)} functions")
PY

# The API function embeds the web console (functions/api/build.rs): build it first, so the
# sizes below are those of what is deployed.
check "web console (console/dist, embedded into the API function)"
scripts/console.sh build

check "sam build (every function, cargo-lambda, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
started=$(date +%s)
sam build --template-file template.yaml --build-dir "$WORK/build"
echo "sam build took $(($(date +%s) - started)) s"

check "function sizes"
python3 - template.yaml "$WORK/build" "$MAX_ZIPPED_BYTES" "$MAX_GLIBC" <<'PY'
"""Zips each built function as `sam deploy` does and checks its size and glibc needs."""
import io
import os
import re
import subprocess
import sys
import zipfile

from samtranslator.yaml_helper import yaml_parse

template, build, max_zipped, max_glibc = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
resources = yaml_parse(open(template).read())["Resources"]
functions = [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
if not functions:
    sys.exit(f"no AWS::Serverless::Function in {template}")


def version(v):
    return tuple(int(x) for x in v.split("."))


rows, failures = [], []
for name in functions:
    bootstrap = os.path.join(build, name, "bootstrap")
    if not os.path.isfile(bootstrap):
        failures.append(f"{name}: no bootstrap in {os.path.dirname(bootstrap)}")
        continue
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for root, _, files in os.walk(os.path.join(build, name)):
            for f in files:
                path = os.path.join(root, f)
                z.write(path, os.path.relpath(path, os.path.join(build, name)))
    zipped = len(buf.getvalue())
    symbols = subprocess.run(["objdump", "-T", bootstrap], capture_output=True, text=True, check=True).stdout
    glibc = max((m for m in re.findall(r"GLIBC_([0-9.]+)", symbols)), key=version, default="-")
    rows.append((name, os.path.getsize(bootstrap), zipped, glibc))
    if zipped > max_zipped:
        failures.append(f"{name}: zipped {zipped} bytes, over the {max_zipped} limit")
    if glibc != "-" and version(glibc) > version(max_glibc):
        failures.append(f"{name}: needs GLIBC_{glibc}, provided.al2023 has {max_glibc}")

mib = 1024 * 1024
print(f"{'function':<20} {'bootstrap':>12} {'zipped':>12}  glibc")
for name, raw, zipped, glibc in rows:
    print(f"{name:<20} {raw / mib:>9.2f} MB {zipped / mib:>9.2f} MB  {glibc}")
print(f"limit: {max_zipped / mib:.0f} MB zipped, glibc <= {max_glibc}")
if failures:
    sys.exit("\n".join(failures))
PY

check "the built functions under the Lambda Runtime Interface Emulator, on moto (scripts/lambda-e2e.sh)"
scripts/lambda-e2e.sh --build-dir "$WORK/build" --template "$WORK/expanded.json" \
  ${LAMBDA_E2E_ENDPOINT:+--endpoint "$LAMBDA_E2E_ENDPOINT"}

echo
echo "deploy-checks: all passed"
