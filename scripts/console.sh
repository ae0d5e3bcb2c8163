#!/usr/bin/env bash
# scripts/console.sh: the web console's build and test tools (docs/console.md).
#
#   scripts/console.sh build        npm ci (packages cached under ~/.cache/npm), then
#                                   `npm run build` (tsc + vite) into console/dist, which
#                                   functions/api/build.rs embeds into arca-api. The build
#                                   is skipped when dist/ is newer than every source, so a
#                                   second run does not make cargo rebuild the API.
#   scripts/console.sh test-tools   Debian's chromium for the browser test (apt-get, as
#                                   root, when missing); Playwright never downloads one.
#
# Run `build` before any cargo build that should serve the console (scripts/test.sh and
# scripts/deploy-checks.sh do).
set -euo pipefail
cd "$(dirname "$0")/../console"

log() { printf 'console: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

export npm_config_cache=${npm_config_cache:-${XDG_CACHE_HOME:-$HOME/.cache}/npm}
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

# Vite 7 needs Node 20.19+ (or 22.12+).
check_node() {
  command -v node >/dev/null && command -v npm >/dev/null ||
    die "node and npm are missing: install Node.js 20.19+ (README, Prerequisites)"
  node -e '
    const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) || a === 21 ? 0 : 1);
  ' || die "Node.js $(node --version) is too old: the console's build needs 20.19+ (or 22.12+)"
}

build() {
  check_node
  # npm ci again only when the lock file changed since the last install.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci (cache: $npm_config_cache)"
    npm ci --no-audit --no-fund >&2 || die "npm ci failed"
  fi
  if [ -f dist/index.html ] &&
    [ -z "$(find src index.html package-lock.json vite.config.ts tsconfig.json -newer dist/index.html -print -quit)" ]; then
    log "console/dist is up to date"
    return
  fi
  log "npm run build"
  npm run build >&2 || die "the console's build failed"
  [ -f dist/index.html ] || die "the build wrote no dist/index.html"
  log "built console/dist ($(du -sk dist | cut -f1) KiB)"
}

test_tools() {
  command -v chromium >/dev/null && { log "chromium: $(chromium --version 2>/dev/null || echo present)"; return; }
  [ "$(id -u)" = 0 ] || die "chromium is missing: apt-get install chromium (or run as root)"
  log "installing chromium from Debian"
  { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium; } >&2 ||
    die "could not install chromium"
}

case "${1:-}" in
  build) build ;;
  test-tools) test_tools ;;
  *) die "usage: scripts/console.sh build|test-tools" ;;
esac
