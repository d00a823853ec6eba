#!/bin/sh
# Installs yurt as a systemd service from a build tree (`cargo deb` makes a .deb of the same
# files, see Cargo.toml's [package.metadata.deb]). Idempotent: re-running upgrades the binaries and unit
# but never overwrites an existing /etc/yurt.d/yurt.hcl.
#
# Usage: sudo packaging/install.sh [path/to/yurt]   (default: target/release/yurt)
#
# The per-task supervisor `yurt-supervisor` is taken from beside that binary and installed
# beside the installed `yurt`: the agent looks for it there (without it, each task's
# supervisor re-executes the whole agent binary and costs more memory).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-"$here/../target/release/yurt"}
supervisor=$(dirname "$binary")/yurt-supervisor
prefix=${PREFIX:-/usr/local}
confdir=${CONFDIR:-/etc/yurt.d}
datadir=${DATADIR:-/var/lib/yurt}
unitdir=${UNITDIR:-/etc/systemd/system}

for f in "$binary" "$supervisor"; do
    if [ ! -x "$f" ]; then
        echo "$f not found (build both with: cargo build --release)" >&2
        exit 1
    fi
done

# Copy to a temp name and rename, so a running binary is replaced atomically (supervisors
# started by the previous build keep running it, and the new agent reattaches to them).
install -d -m 0755 "$prefix/bin"
install -m 0755 "$supervisor" "$prefix/bin/.yurt-supervisor.new"
mv -f "$prefix/bin/.yurt-supervisor.new" "$prefix/bin/yurt-supervisor"
install -m 0755 "$binary" "$prefix/bin/.yurt.new"
mv -f "$prefix/bin/.yurt.new" "$prefix/bin/yurt"

install -d -m 0755 "$confdir"
if [ ! -e "$confdir/yurt.hcl" ]; then
    install -m 0644 "$here/yurt.hcl" "$confdir/yurt.hcl"
else
    echo "keeping existing $confdir/yurt.hcl"
fi

install -d -m 0700 "$datadir"

# The unit names the .deb's /usr/bin/yurt; point it at this prefix's.
install -d -m 0755 "$unitdir"
sed -e "s|/usr/bin/yurt |$prefix/bin/yurt |" -e "s|-config /etc/yurt.d|-config $confdir|" "$here/yurt.service" >"$unitdir/.yurt.service.new"
chmod 0644 "$unitdir/.yurt.service.new"
mv -f "$unitdir/.yurt.service.new" "$unitdir/yurt.service"
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable yurt.service >/dev/null
    echo "installed; start with: systemctl start yurt  (or restart to upgrade)"
else
    echo "installed; systemd not running, start manually: $prefix/bin/yurt agent -config $confdir"
fi
