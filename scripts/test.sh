#!/usr/bin/env bash
# scripts/test.sh: the one test command (README, .ci/run).
#
# Installs what is missing (Go-built Kubernetes and containerd, the moto virtualenv, the
# registry: all cached under ~/.cache), starts the real test environment with its nodes,
# builds the agent image the nodes run, runs fmt, clippy and the whole test suite
# against it, and stops the environment whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build caches live outside the clone, so every clone on this machine shares them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-target}
# Where scripts/agent-image.sh builds the images: $ARCA_IMAGE_DIR/agent (the agent's OCI
# layout, image.tar, image.env, sbom.cdx.json) and $ARCA_IMAGE_DIR/busybox, built once per
# run by the agent image step and read by whatever comes after it.
export ARCA_IMAGE_DIR=${ARCA_IMAGE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-image}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step() { printf '\n==> %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }

step "toolchain"
cargo --version; rustc --version; go version

step "formatting"
cargo fmt --all --check

# Before any cargo build: arca-api embeds console/dist (functions/api/build.rs), and the
# browser test (cli/tests/console.rs) drives Debian's chromium.
step "web console (npm ci, tsc + vite build into console/dist; chromium for its browser test)"
scripts/console.sh build
scripts/console.sh test-tools

# Two environments: bare control planes (the tests that count what they restore, where no
# controller may add objects) and clusters with real nodes (the agent as a Pod, in-cluster
# tests, the demo), side by side on their own ports, bridges and run directories.
NODE_ENV=(ARCA_TESTENV_DIR="${TMPDIR:-/tmp}/arca-testenv-nodes" ARCA_TESTENV_PORT_OFFSET=100 ARCA_MOTO_PORT=15100)
step "test environment"
trap 'step "stopping the test environments"; ARCA_TESTENV_NODES=0 scripts/testenv.sh down; env "${NODE_ENV[@]}" scripts/testenv.sh down' EXIT
ARCA_TESTENV_NODES=0 scripts/testenv.sh up
env "${NODE_ENV[@]}" scripts/testenv.sh up

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "test build"
cargo test --workspace --all-targets --locked --no-run

# The in-cluster tests run the agent as a Pod: the image is built by scripts/agent-image.sh
# around the arca-agent binary the test build just made (the release build, fat LTO, would
# add ~30 min to a cold run on 2 cores; docs/agent.md gives the release image's figures).
step "agent image of the test build, pushed to the registry the test nodes pull from"
export ARCA_AGENT_IMAGE_BINARY=$CARGO_TARGET_DIR/debug/arca-agent
env "${NODE_ENV[@]}" scripts/testenv.sh agent-image
eval "$(ARCA_TESTENV_NODES=0 scripts/testenv.sh env)"
eval "$(env "${NODE_ENV[@]}" scripts/testenv.sh env-nodes)"

step "tests"
cargo test --workspace --all-targets --locked --no-fail-fast
# doc tests: compiled separately by cargo, cheap for us
cargo test --workspace --doc --locked

# The API against its served OpenAPI document (schemathesis, fixed seed, ~4 min budget),
# on the `arca` binary the test build made: nothing is built again.
step "API contract (schemathesis against /v1/openapi.json of arca server)"
ARCA_BIN=$CARGO_TARGET_DIR/debug/arca scripts/api-contract.sh

step "agent image (size, labels, publish to a loopback registry, read back by digest)"
scripts/agent-image-test.sh --image "$ARCA_IMAGE_DIR/agent"

step "cfn role stack (cfn/tests, on moto)"
PYTHONDONTWRITEBYTECODE=1 "${ARCA_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-testenv}/moto-${ARCA_MOTO_VERSION:-5.2.5}/bin/python" \
  -m unittest discover -s cfn/tests -v

step "deploy checks (template.yaml, cfn/, sam build, agent chart)"
scripts/deploy-checks.sh
