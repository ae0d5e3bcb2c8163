#!/usr/bin/env bash
# scripts/agent-image.sh: the agent's OCI image, built without a container daemon.
#
#   scripts/agent-image.sh build   [--output DIR] [--archive FILE] [--binary FILE]
#   scripts/agent-image.sh busybox [--output DIR] [--archive FILE]
#   scripts/agent-image.sh pause   --source PAUSE_C [--output DIR]
#   scripts/agent-image.sh publish --repository URI [--tag T]... [--image DIR] [--insecure]
#
# build: `cargo build --release --locked -p arca-agent`, then an OCI image layout of it
#   (umoci) on a minimal base taken from Debian packages (`apt-get download`): only the
#   glibc libraries the binary links (found from its ELF NEEDED entries), the Mozilla CA
#   bundle, /etc/passwd and /etc/group naming the non-root user 65532, an empty /tmp.
#   Entrypoint /usr/local/bin/arca-agent, USER 65532:65532; nothing in the image is
#   written at run time, so it runs with a read-only root filesystem. Labels and
#   annotations: org.opencontainers.image.{title,version,revision,source,created,licenses};
#   `created` (and every file's mtime) is SOURCE_DATE_EPOCH, else the commit time, so two
#   builds of a clean commit give the same digest. Fails if the image is over the size
#   budget (40 MB compressed). Beside the image: a CycloneDX SBOM of the binary's crates
#   (cargo-cyclonedx), the Debian packages the base came from, and an OCI archive
#   (oci-archive, image name arca.local/arca-agent:<version>) for `ctr images import`.
#   Prints the manifest digest (sha256:...) on stdout, the only line it prints there.
#
#   Output (DIR, default ${ARCA_IMAGE_DIR:-${XDG_CACHE_HOME:-~/.cache}/arca-image}/agent):
#     DIR/oci/               the OCI image layout (tag <version>)
#     DIR/image.tar          the same image as an OCI archive (ref name arca.local/arca-agent:<version>)
#     DIR/image.env          ARCA_IMAGE_* facts (name, tag, digest, revision, sizes), for later steps
#     DIR/sbom.cdx.json      CycloneDX SBOM of arca-agent's Rust dependencies
#     DIR/base-packages.txt  the Debian packages (name version) the base files come from
#
# busybox: a tiny test-workload image the same way, from Debian's busybox-static: /bin/busybox
#   and a /bin/<applet> symlink per applet, Cmd ["sh"], runs as root unless the Pod says
#   otherwise. Default DIR .../arca-image/busybox, image name arca.local/busybox:<version>.
#
# publish: pushes the built image (skopeo copy) as URI:<version> and URI:<short revision>
#   (or the --tag values), and prints URI@sha256:... on stdout. --insecure: plain HTTP and
#   no TLS verification (a loopback registry). Registry credentials are skopeo's own
#   (`skopeo login`, or for ECR: aws ecr get-login-password | skopeo login --password-stdin).
#
# Tools: umoci and skopeo from Debian (installed with apt-get when missing and root),
# readelf, python3, and cargo-cyclonedx from crates.io (cached under
# ~/.cache/arca-tools). Nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}
IMAGE_DIR=${ARCA_IMAGE_DIR:-$CACHE/arca-image}
TOOLS=${ARCA_TOOLS_DIR:-$CACHE/arca-tools}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/arca-target}
# 40 MB compressed (issue 14), in bytes: layers + config + manifest as a registry stores them.
SIZE_BUDGET=${ARCA_IMAGE_SIZE_BUDGET:-40000000}
CYCLONEDX_VERSION=0.5.9
LOCAL_REGISTRY=arca.local
NONROOT=65532

log() { printf 'agent-image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ------------------------------------------------------------------ tools
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() { # packages...
  is_root || die "missing $*: install them (apt-get install $*) or run as root"
  # Lists are fetched only when apt does not know the packages yet (a fresh machine).
  if ! apt-cache show "$@" >/dev/null 2>&1; then
    log "apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
  fi
  log "installing $* (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "$@" >&2 ||
    die "apt-get install $* failed"
}

ensure_tools() {
  local missing=() t
  for t in umoci skopeo; do command -v "$t" >/dev/null || missing+=("$t"); done
  command -v readelf >/dev/null || missing+=(binutils)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  command -v python3 >/dev/null || die "python3 is needed (README prerequisites)"
}

# Prints the path of cargo-cyclonedx, installing it from crates.io on first use.
ensure_cyclonedx() {
  local root=$TOOLS/cargo-cyclonedx-$CYCLONEDX_VERSION
  if [ ! -x "$root/bin/cargo-cyclonedx" ]; then
    log "installing cargo-cyclonedx $CYCLONEDX_VERSION into $root (crates.io, cold: ~3 min on 2 cores)"
    rm -rf "$root.tmp"
    # Its own target dir: the shared one may be locked by a concurrent build.
    CARGO_TARGET_DIR="$TOOLS/target" cargo install --quiet --locked --root "$root.tmp" \
      cargo-cyclonedx --version "$CYCLONEDX_VERSION" >&2 || die "cargo install cargo-cyclonedx failed"
    rm -rf "$root" && mv "$root.tmp" "$root"
  fi
  echo "$root/bin/cargo-cyclonedx"
}

# Downloads Debian packages (cached by file name, i.e. by version) and extracts them into
# a directory; writes "name version" lines to <extract-dir>.packages and each control
# stanza to <extract-dir>.status/<name> (dpkg's status.d form). One apt call to
# resolve them all (apt is slow to start on a loaded machine), one to fetch what is new.
debs() { # extract-dir packages...
  local into=$1; shift
  local cache=$IMAGE_DIR/debs uris file files=() fetch=() opts=()
  mkdir -p "$cache" "$into"
  if ! uris=$(apt-get download --print-uris "$@" 2>/dev/null) || [ -z "$uris" ]; then
    is_root || die "apt cannot resolve $*: run apt-get update"
    log "apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    uris=$(apt-get download --print-uris "$@") || die "apt-get cannot download $*"
  fi
  # 'URI' file size hash: the file name carries the package and its version.
  while read -r _ file _; do
    files+=("$cache/$file")
    [ -s "$cache/$file" ] || fetch+=("${file%%_*}")
  done <<<"$uris"
  [ ${#files[@]} -eq $# ] || die "apt resolved ${#files[@]} files for the $# packages $*"
  if [ ${#fetch[@]} -gt 0 ]; then
    log "downloading ${fetch[*]} (apt-get download)"
    is_root && opts=(-o APT::Sandbox::User=root)
    (cd "$cache" && apt-get download -qq "${opts[@]}" "${fetch[@]}" >&2) || die "apt-get download ${fetch[*]} failed"
  fi
  mkdir -p "$into.status"
  for file in "${files[@]}"; do
    [ -s "$file" ] || die "apt-get download gave no $(basename "$file")"
    dpkg-deb -x "$file" "$into" || die "dpkg-deb -x $(basename "$file") failed"
    dpkg-deb -f "$file" Package Version | paste -sd' ' | sed 's/Package: //; s/ Version://' >>"$into.packages"
    dpkg-deb -f "$file" >"$into.status/${file##*/}"
  done
  # Named by package (the file name's part before the first _).
  for file in "$into.status"/*_*; do [ -e "$file" ] && mv "$file" "$into.status/$(basename "${file%%_*}")"; done
}

# ------------------------------------------------------------------ facts
workspace_field() { # version, repository, ... of Cargo.toml's [workspace.package]
  sed -n "/^\[workspace.package\]/,/^\[/s/^$1 *= *\"\(.*\)\"/\1/p" Cargo.toml
}
crate_version() { workspace_field version; }

revision() { # the commit, with -dirty when the work tree differs from it
  local rev
  rev=$(git rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then rev="$rev-dirty"; fi
  echo "$rev"
}

epoch() { echo "${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"; }

rfc3339() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# ------------------------------------------------------------------ assembly
# Copies a path of the extracted packages into the root fs, a symlink with its target.
take() { # from-tree rootfs /abs/path
  local tree=$1 rootfs=$2 path=$3 target
  [ -e "$tree$path" ] || [ -L "$tree$path" ] || die "$path is in none of the packages"
  mkdir -p "$rootfs$(dirname "$path")"
  cp -a "$tree$path" "$rootfs$path"
  if [ -L "$tree$path" ]; then
    target=$(readlink "$tree$path")
    case $target in /*) ;; *) target=$(dirname "$path")/$target ;; esac
    take "$tree" "$rootfs" "$target"
  fi
}

# The shared libraries an ELF file needs, recursively, from the package tree (not the
# host's): prints their absolute paths inside the tree.
needed_libs() { # tree elf
  local tree=$1 queue=("$2") seen=" " f lib path
  while [ ${#queue[@]} -gt 0 ]; do
    f=${queue[0]}; queue=("${queue[@]:1}")
    for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      case $seen in *" $lib "*) continue ;; esac
      seen="$seen$lib "
      path=$(cd "$tree" && find lib usr/lib -name "$lib" \( -type f -o -type l \) 2>/dev/null | sort | head -n1)
      [ -n "$path" ] || die "$(basename "$f") needs $lib, which none of the packages has"
      echo "/$path"
      queue+=("$tree/$path")
    done
  done
}

write_passwd() { # rootfs
  mkdir -p "$1/etc"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/nonexistent:/sbin/nologin\n' \
    "$NONROOT" "$NONROOT" >"$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%d:\n' "$NONROOT" >"$1/etc/group"
}

# The layout's single tagged manifest as an image: one layer holding the root fs (umoci
# unpack of the empty image, the files copied in, umoci repack: umoci computes the layer
# from its mtree diff), then the config. Ownership is root's whatever user builds (umoci
# --rootless maps the builder to 0), and every mtime is the build epoch, so the layer only
# changes when a file does.
assemble() { # rootfs layout tag epoch -- umoci config args...
  local rootfs=$1 layout=$2 tag=$3 when=$4 created bundle; shift 5
  created=$(rfc3339 "$when")
  bundle=$(dirname "$layout")/bundle
  local rootless=()
  is_root || rootless=(--rootless)
  find "$rootfs" -exec touch -h -d "@$when" {} +
  umoci init --layout "$layout" >&2
  umoci new --image "$layout:$tag" >&2
  umoci unpack "${rootless[@]}" --image "$layout:$tag" "$bundle" >&2
  cp -a "$rootfs/." "$bundle/rootfs/"
  umoci repack --image "$layout:$tag" --history.created "$created" \
    --history.created_by "scripts/agent-image.sh" --history.comment "root filesystem" "$bundle" >&2
  rm -rf "$bundle"
  umoci config --image "$layout:$tag" --no-history --created "$created" --os linux --architecture amd64 \
    "$@" >&2
  umoci gc --layout "$layout" >&2
}

# Sets DIGEST and SIZE (compressed bytes: manifest, config and layers as a registry stores
# them) of the layout's tag, read from the layout and checked against skopeo's view.
measure() { # layout tag
  local facts reported
  facts=$(python3 - "$1" "$2" <<'PY'
import hashlib, json, os, sys
layout, tag = sys.argv[1:]
def blob(d):
    algo, hex_ = d.split(":")
    with open(os.path.join(layout, "blobs", algo, hex_), "rb") as f:
        return f.read()
index = json.load(open(os.path.join(layout, "index.json")))
[desc] = [m for m in index["manifests"]
          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
raw = blob(desc["digest"])
assert "sha256:" + hashlib.sha256(raw).hexdigest() == desc["digest"], "manifest blob does not match its digest"
m = json.loads(raw)
print(desc["digest"], len(raw) + m["config"]["size"] + sum(l["size"] for l in m["layers"]))
PY
) || die "cannot read the manifest of $1:$2"
  read -r DIGEST SIZE <<<"$facts"
  reported=$(skopeo inspect --format '{{.Digest}}' "oci:$1:$2") || die "skopeo inspect oci:$1:$2 failed"
  [ "$reported" = "$DIGEST" ] || die "skopeo reports $reported, the layout says $DIGEST"
}

# Replaces DIR by the freshly built one (a concurrent reader sees the old or the new).
install_dir() { # new dir
  rm -rf "$2.old"
  if [ -e "$2" ]; then mv "$2" "$2.old"; fi
  mv "$1" "$2"
  rm -rf "$2.old"
}

write_archive() { # layout tag name file
  rm -f "$4"
  skopeo copy --quiet "oci:$1:$2" "oci-archive:$4:$3" >&2 || die "skopeo copy to oci-archive:$4 failed"
}

mib() { python3 -c "print(f'{$1 / 1e6:.1f} MB')"; }

parse_common() { # sets OUT ARCHIVE BINARY from the arguments
  OUT="" ARCHIVE="" BINARY=""
  while [ $# -gt 0 ]; do
    case $1 in
      --output) OUT=${2:?--output needs a directory}; shift 2 ;;
      --archive) ARCHIVE=${2:?--archive needs a file}; shift 2 ;;
      --binary) BINARY=${2:?--binary needs a file}; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
}

cmd_build() {
  parse_common "$@"
  OUT=${OUT:-$IMAGE_DIR/agent}
  ensure_tools
  local version rev when name
  version=$(crate_version); [ -n "$version" ] || die "no version in Cargo.toml [workspace.package]"
  rev=$(revision); when=$(epoch)
  name=$LOCAL_REGISTRY/arca-agent

  if [ -z "$BINARY" ]; then
    log "cargo build --release --locked -p arca-agent (target dir $CARGO_TARGET_DIR)"
    local t0=$SECONDS
    cargo build --release --locked -p arca-agent >&2 || die "cargo build failed"
    log "release build: $((SECONDS - t0)) s"
    BINARY=$CARGO_TARGET_DIR/release/arca-agent
  fi
  [ -x "$BINARY" ] || die "no executable $BINARY"

  mkdir -p "$(dirname "$OUT")"
  # Global, not local: the EXIT trap runs after the function's locals are gone.
  work=$(mktemp -d "$OUT.tmp.XXXXXX") && chmod 755 "$work"
  trap 'rm -rf "$work"' EXIT
  local tree=$work/debs rootfs=$work/rootfs lib
  debs "$tree" libc6 libgcc-s1 ca-certificates base-files

  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  install -m 0755 "$BINARY" "$rootfs/usr/local/bin/arca-agent"
  # The dynamic loader the binary names, and every library it needs, from the packages.
  local interp libs
  interp=$(readelf -l "$BINARY" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
  [ -n "$interp" ] || die "$BINARY names no program interpreter (a static binary needs no glibc: not handled)"
  take "$tree" "$rootfs" "$interp"
  libs=$(needed_libs "$tree" "$BINARY")
  for lib in $libs; do take "$tree" "$rootfs" "$lib"; done
  # What update-ca-certificates would make of the package: one PEM bundle, where rustls'
  # native roots (openssl-probe) look first.
  cat "$tree"/usr/share/ca-certificates/mozilla/*.crt >"$rootfs/etc/ssl/certs/ca-certificates.crt"
  # The packages' copyright files travel with their code (LGPL, GPL, MPL). A doc directory
  # may be a link to another package's (libgcc-s1 -> gcc-12-base): that one is fetched too.
  local pkg doc
  for pkg in libc6 libgcc-s1 ca-certificates; do
    doc=$tree/usr/share/doc/$pkg
    if [ -L "$doc" ] && [ ! -e "$doc" ]; then debs "$tree" "$(basename "$(readlink "$doc")")"; fi
    take "$tree" "$rootfs" "/usr/share/doc/$pkg/copyright"
  done
  write_passwd "$rootfs"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  # What image scanners (ECR scan on push, trivy, grype) identify the base by: the OS
  # release and, in distroless' form, the status of each package the files come from.
  take "$tree" "$rootfs" /etc/os-release
  mkdir -p "$rootfs/var/lib/dpkg/status.d"
  for pkg in "$tree.status"/*; do
    [ "$(basename "$pkg")" = base-files ] || cp "$pkg" "$rootfs/var/lib/dpkg/status.d/"
  done

  # It runs with nothing of the host: the image's loader and libraries only.
  local ran
  if is_root; then
    ran=$(chroot --userspec="$NONROOT:$NONROOT" "$rootfs" /usr/local/bin/arca-agent --version) ||
      die "arca-agent does not run in its root filesystem (chroot)"
  else
    ran=$("$rootfs$interp" --inhibit-cache --library-path "$rootfs/lib/x86_64-linux-gnu" \
      "$rootfs/usr/local/bin/arca-agent" --version) || die "arca-agent does not run with the image's libraries"
  fi
  log "runs in its root filesystem: $ran"

  local -a meta=(
    org.opencontainers.image.title=arca-agent
    "org.opencontainers.image.description=Arca's in-cluster backup agent"
    "org.opencontainers.image.version=$version"
    "org.opencontainers.image.revision=$rev"
    "org.opencontainers.image.source=$(workspace_field repository)"
    "org.opencontainers.image.created=$(rfc3339 "$when")"
    org.opencontainers.image.licenses=Apache-2.0
  )
  local -a config=(
    --config.user "$NONROOT:$NONROOT"
    --config.entrypoint /usr/local/bin/arca-agent
    --config.env PATH=/usr/local/bin:/usr/bin:/bin
    --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
    --config.workingdir /
  )
  local m
  for m in "${meta[@]}"; do config+=(--config.label "$m" --manifest.annotation "$m"); done
  assemble "$rootfs" "$work/oci" "$version" "$when" -- "${config[@]}"

  measure "$work/oci" "$version"
  local digest=$DIGEST size=$SIZE
  log "image $name:$version $digest: $(mib "$size") compressed (budget $(mib "$SIZE_BUDGET"))"
  [ "$size" -le "$SIZE_BUDGET" ] ||
    die "the image is $size bytes compressed, over the budget of $SIZE_BUDGET"

  write_archive "$work/oci" "$version" "$name:$version" "$work/image.tar"

  local cdx sbom
  cdx=$(ensure_cyclonedx)
  # cargo-cyclonedx describes every workspace member, each beside its Cargo.toml (it has
  # no package selection): under a name only this run uses, the agent's is moved out and
  # the others deleted. SOURCE_DATE_EPOCH makes its timestamp the commit's.
  sbom=arca-image-sbom-$$.cdx
  SOURCE_DATE_EPOCH=$when "$cdx" cyclonedx --manifest-path agent/Cargo.toml --format json --spec-version 1.5 \
    --target x86_64-unknown-linux-gnu --override-filename "$sbom" -q >&2 || die "cargo cyclonedx failed"
  mv "agent/$sbom.json" "$work/sbom.cdx.json" || die "cargo cyclonedx wrote no agent/$sbom.json"
  find . -maxdepth 3 -name "$sbom.json" -not -path './target/*' -delete

  finish_image "$work" "$tree" "$rootfs" "ARCA_IMAGE_NAME=$name" "ARCA_IMAGE_TAG=$version" \
    "ARCA_IMAGE_DIGEST=$digest" "ARCA_IMAGE_VERSION=$version" "ARCA_IMAGE_REVISION=$rev" \
    "ARCA_IMAGE_COMPRESSED_BYTES=$size"
  log "wrote $OUT (oci/, image.tar, sbom.cdx.json, base-packages.txt, image.env)"
  echo "$digest"
}

# The end of a build in $work: the base packages list, image.env (the KEY=VALUE arguments),
# the work directory installed as $OUT (the EXIT trap that removed it dropped), and the
# archive copied where --archive asked.
finish_image() {
  local work=$1 tree=$2 rootfs=$3
  shift 3
  mv "$tree.packages" "$work/base-packages.txt"
  rm -rf "$tree.status"
  printf '%s\n' "$@" >"$work/image.env"
  rm -rf "$tree" "$rootfs"
  install_dir "$work" "$OUT"
  trap - EXIT
  [ -z "$ARCHIVE" ] || cp "$OUT/image.tar" "$ARCHIVE"
}

cmd_busybox() {
  parse_common "$@"
  [ -z "$BINARY" ] || die "--binary is for build"
  OUT=${OUT:-$IMAGE_DIR/busybox}
  ensure_tools
  local when name version applet
  when=$(epoch)
  name=$LOCAL_REGISTRY/busybox
  mkdir -p "$(dirname "$OUT")"
  # Global, not local: the EXIT trap runs after the function's locals are gone.
  work=$(mktemp -d "$OUT.tmp.XXXXXX") && chmod 755 "$work"
  trap 'rm -rf "$work"' EXIT
  local tree=$work/debs rootfs=$work/rootfs
  debs "$tree" busybox-static
  # 1:1.35.0-4+deb12u1+b1 -> 1.35.0-4-deb12u1-b1 (a valid tag)
  version=$(cut -d' ' -f2 "$tree.packages" | sed 's/^[0-9]*://; s/[^A-Za-z0-9_.-]/-/g')
  take "$tree" "$rootfs" /bin/busybox
  take "$tree" "$rootfs" /usr/share/doc/busybox-static/copyright
  for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
  done
  mkdir -p "$rootfs/tmp" && chmod 1777 "$rootfs/tmp"
  write_passwd "$rootfs"
  local -a config=(--config.cmd sh --config.env PATH=/bin --config.workingdir /)
  local m
  for m in org.opencontainers.image.title=busybox "org.opencontainers.image.version=$version" \
    "org.opencontainers.image.created=$(rfc3339 "$when")" org.opencontainers.image.licenses=GPL-2.0-only \
    "org.opencontainers.image.description=Debian's busybox-static, for Arca's end-to-end tests"; do
    config+=(--config.label "$m" --manifest.annotation "$m")
  done
  assemble "$rootfs" "$work/oci" "$version" "$when" -- "${config[@]}"
  measure "$work/oci" "$version"
  log "image $name:$version $DIGEST: $(mib "$SIZE") compressed"
  write_archive "$work/oci" "$version" "$name:$version" "$work/image.tar"
  finish_image "$work" "$tree" "$rootfs" "ARCA_IMAGE_NAME=$name" "ARCA_IMAGE_TAG=$version" \
    "ARCA_IMAGE_DIGEST=$DIGEST" "ARCA_IMAGE_VERSION=$version" "ARCA_IMAGE_COMPRESSED_BYTES=$SIZE"
  echo "$DIGEST"
}

# The pod sandbox image of the test nodes: Kubernetes' own pause.c (from the k8s.io/kubernetes
# module the nodes are built from), compiled statically here.
cmd_pause() {
  local source="" args=()
  while [ $# -gt 0 ]; do
    case $1 in
      --source) source=${2:?--source needs build/pause/linux/pause.c}; shift 2 ;;
      *) args+=("$1"); shift ;;
    esac
  done
  parse_common "${args[@]}"
  [ -f "$source" ] || die "pause needs --source <k8s.io/kubernetes>/build/pause/linux/pause.c"
  OUT=${OUT:-$IMAGE_DIR/pause}
  ensure_tools
  command -v gcc >/dev/null || die "gcc is needed to compile pause.c"
  local when tag=3.10 name=$LOCAL_REGISTRY/pause
  when=$(epoch)
  mkdir -p "$(dirname "$OUT")"
  work=$(mktemp -d "$OUT.tmp.XXXXXX") && chmod 755 "$work"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/rootfs"
  gcc -Os -static -Wall -DVERSION="$tag" -o "$work/rootfs/pause" "$source" || die "compiling $source failed"
  strip "$work/rootfs/pause"
  assemble "$work/rootfs" "$work/oci" "$tag" "$when" -- --config.entrypoint /pause --config.user 65535:65535 \
    --config.label org.opencontainers.image.title=pause --manifest.annotation org.opencontainers.image.title=pause
  measure "$work/oci" "$tag"
  write_archive "$work/oci" "$tag" "$name:$tag" "$work/image.tar"
  printf 'ARCA_IMAGE_NAME=%s\nARCA_IMAGE_TAG=%s\nARCA_IMAGE_DIGEST=%s\n' "$name" "$tag" "$DIGEST" >"$work/image.env"
  rm -rf "$work/rootfs"
  install_dir "$work" "$OUT"
  trap - EXIT
  log "image $name:$tag $DIGEST"
  echo "$DIGEST"
}

cmd_publish() {
  local repo="" dir="" insecure=false tags=() tag
  while [ $# -gt 0 ]; do
    case $1 in
      --repository) repo=${2:?--repository needs a URI}; shift 2 ;;
      --tag) tags+=("${2:?--tag needs a value}"); shift 2 ;;
      --image) dir=${2:?--image needs a directory}; shift 2 ;;
      --insecure) insecure=true; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ -n "$repo" ] || die "publish needs --repository URI (e.g. the stack's AgentRepositoryUri output)"
  repo=${repo#docker://}
  [[ $repo != *@* ]] || die "--repository is a repository, without a digest: $repo"
  dir=${dir:-$IMAGE_DIR/agent}
  [ -f "$dir/image.env" ] || die "no built image in $dir (run scripts/agent-image.sh build first)"
  ensure_tools
  local ARCA_IMAGE_TAG ARCA_IMAGE_DIGEST ARCA_IMAGE_REVISION=""
  # shellcheck disable=SC1091
  . "$dir/image.env"
  if [ ${#tags[@]} -eq 0 ]; then
    # The revision first: with immutable tags (the stack's ECR repository) a version tag
    # is taken by its first image, while a revision names one build.
    [ -z "$ARCA_IMAGE_REVISION" ] || tags+=("$(printf '%s' "$ARCA_IMAGE_REVISION" | sed -E 's/^([0-9a-f]{12})[0-9a-f]*/\1/')")
    tags+=("$ARCA_IMAGE_TAG")
  fi
  local tls=()
  $insecure && tls=(--dest-tls-verify=false)
  local first=true
  for tag in "${tags[@]}"; do
    log "pushing $repo:$tag"
    if ! skopeo copy --quiet --preserve-digests "${tls[@]}" "oci:$dir/oci:$ARCA_IMAGE_TAG" "docker://$repo:$tag" >&2; then
      $first && die "pushing to $repo:$tag failed"
      # Only an immutable repository's taken tag should get here: the image is there.
      log "WARNING: the registry refused the tag $tag (an immutable tag already taken?); the image is published under ${tags[0]}"
    fi
    first=false
  done
  echo "$repo@$ARCA_IMAGE_DIGEST"
}

[ $# -ge 1 ] || usage
command=$1; shift
case $command in
  build) cmd_build "$@" ;;
  busybox) cmd_busybox "$@" ;;
  pause) cmd_pause "$@" ;;
  publish) cmd_publish "$@" ;;
  -h|--help|help) usage ;;
  *) die "unknown command $command (build, busybox, pause, publish)" ;;
esac
