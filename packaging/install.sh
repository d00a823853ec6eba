#!/bin/sh
# Installs yurt as a systemd service. Idempotent: re-running upgrades the binary and unit
# but never overwrites an existing /etc/yurt.d/yurt.hcl.
#
# Usage: sudo packaging/install.sh [path/to/yurt]   (default: target/release/yurt)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-"$here/../target/release/yurt"}
prefix=${PREFIX:-/usr/local}
confdir=${CONFDIR:-/etc/yurt.d}
datadir=${DATADIR:-/var/lib/yurt}
unitdir=${UNITDIR:-/etc/systemd/system}

if [ ! -x "$binary" ]; then
    echo "yurt binary not found at $binary (build with: cargo build --release)" >&2
    exit 1
fi

# Copy to a temp name and rename, so a running agent's binary is replaced atomically.
install -d -m 0755 "$prefix/bin"
install -m 0755 "$binary" "$prefix/bin/.yurt.new"
mv -f "$prefix/bin/.yurt.new" "$prefix/bin/yurt"

install -d -m 0755 "$confdir"
if [ ! -e "$confdir/yurt.hcl" ]; then
    install -m 0644 "$here/yurt.hcl" "$confdir/yurt.hcl"
else
    echo "keeping existing $confdir/yurt.hcl"
fi

install -d -m 0700 "$datadir"

install -m 0644 "$here/yurt.service" "$unitdir/yurt.service"
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable yurt.service >/dev/null
    echo "installed; start with: systemctl start yurt  (or restart to upgrade)"
else
    echo "installed; systemd not running, start manually: $prefix/bin/yurt agent -config $confdir"
fi
