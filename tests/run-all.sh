#!/usr/bin/env bash
# Installs what yurt's tests need on a fresh Debian machine and runs every test.
# Needs root (the drivers use cgroups, namespaces and a Docker engine).
# Fails loudly when a component cannot be installed or started.
#   tests/run-all.sh               install, start the Docker engine, build the test image, run all
#   tests/run-all.sh --setup-only  only the first three (then `cargo test` by hand)
# The docker driver tests need a reachable engine and FAIL without one; on a machine without
# Docker, set YURT_SKIP_DOCKER_TESTS=1 to skip them explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FATAL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: the driver tests need cgroups, namespaces and docker"

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
# The packaging test: systemd-analyze verifies the unit, which calls /bin/kill (procps).
command -v systemd-analyze >/dev/null 2>&1 || need_pkgs+=(systemd)
[ -x /bin/kill ] || need_pkgs+=(procps)
command -v dpkg-deb >/dev/null 2>&1 || need_pkgs+=(dpkg)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null || die "apt-get install ${need_pkgs[*]} failed"
fi

# cargo-deb builds the .deb in tests/packaging_e2e.rs (from the test binaries, no release
# build). Installing it compiles it once: about 140 CPU-seconds, ~2 minutes on a 2-core machine.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
  log "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" --quiet \
    || die "cargo install cargo-deb failed"
  cargo deb --version >/dev/null 2>&1 || die "cargo deb does not run after installing cargo-deb (is ~/.cargo/bin on PATH?)"
fi

# A Docker engine for the docker driver tests. dockerd is started in the background when none
# answers; if it cannot come up, the reason is looked up in its log and it is retried once with
# the matching workaround (no iptables in this kernel/namespace, or no overlayfs over this
# filesystem). If that fails too, the run stops here with the log tail: the docker tests never
# silently pass without an engine (they fail unless YURT_SKIP_DOCKER_TESTS=1 is set explicitly).
DOCKERD_LOG=/var/log/yurt-test-dockerd.log

wait_for_docker() {
  local pid=$1
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || return 1 # dockerd exited: no point waiting
    sleep 1
  done
  return 1
}

start_dockerd() {
  log "starting dockerd $*"
  mkdir -p /var/log
  dockerd "$@" >>"$DOCKERD_LOG" 2>&1 &
  local pid=$!
  disown "$pid" 2>/dev/null || true
  if wait_for_docker "$pid"; then
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  return 1
}

if ! docker info >/dev/null 2>&1; then
  : >"$DOCKERD_LOG"
  if ! start_dockerd; then
    extra=()
    # Only the error lines say why it failed; info lines mention overlay2 and iptables too.
    errors=$(grep -iE 'level=(error|fatal)|failed to start daemon' "$DOCKERD_LOG" || true)
    if grep -qiE 'iptables|nf_tables|NAT chain' <<<"$errors"; then
      log "dockerd failed on iptables; retrying without iptables (published ports then go through docker-proxy)"
      extra+=(--iptables=false --ip6tables=false)
    fi
    if grep -qiE 'overlay|storage-driver|graphdriver|driver not supported' <<<"$errors"; then
      log "dockerd failed on its storage driver; retrying with vfs"
      extra+=(--storage-driver=vfs)
    fi
    if [ "${#extra[@]}" -eq 0 ] || ! start_dockerd "${extra[@]}"; then
      tail -n 60 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not start (log: $DOCKERD_LOG)"
    fi
  fi
fi
docker info --format '{{.ServerVersion}} (cgroup v{{.CgroupVersion}}, {{.Driver}})' >&2 \
  || die "docker engine does not answer"

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

if [ "${1:-}" = "--setup-only" ]; then
  log "setup done (engine up, test image present)"
  exit 0
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo test"
cargo test --workspace -- --test-threads="${YURT_TEST_THREADS:-2}"
log "all tests passed"
