#!/usr/bin/env bash
# Installs what yurt's tests need on a fresh Debian machine and runs every test.
# Needs root (the drivers use cgroups, namespaces and a Docker engine).
# Fails loudly when a component cannot be installed or started.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FATAL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: the driver tests need cgroups, namespaces and docker"

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null || die "apt-get install ${need_pkgs[*]} failed"
fi

# A Docker engine for the docker driver tests.
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  (dockerd >/var/log/yurt-test-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { tail -n 50 /var/log/yurt-test-dockerd.log >&2 || true; die "dockerd did not start"; }
fi

# A local test image: no registry is reachable, so import a busybox rootfs.
if ! docker image inspect yurt-test/busybox:1 >/dev/null 2>&1; then
  log "building the yurt-test/busybox:1 image"
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,tmp,etc}
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >>"$rootfs/etc/passwd"
  echo 'root:x:0:' >"$rootfs/etc/group"
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/sh"]' - yurt-test/busybox:1 >/dev/null \
    || die "docker import failed"
  rm -rf "$rootfs"
fi
export YURT_TEST_DOCKER_IMAGE=yurt-test/busybox:1

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo test"
cargo test --workspace -- --test-threads="${YURT_TEST_THREADS:-4}"
log "all tests passed"
