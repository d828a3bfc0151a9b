#!/usr/bin/env bash
# Builds the .deb (cargo-deb) and installs it into a clean Debian bookworm root made with
# debootstrap, then checks what an admin relies on: the packaged configuration passes
# `ici-connector check-config`, the service user and its directories exist with the right
# owners, the systemd unit is installed and enabled, and purging removes everything.
# Needs root (debootstrap, chroot). Installs cargo-deb and debootstrap when missing.
# The clean root is cached as a tarball (ICI_DEB_CACHE, default /var/cache/ici-connector-test)
# so later runs skip debootstrap.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "packaging/test-deb.sh: run as root (debootstrap, chroot)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq debootstrap >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked --quiet
fi

# The Debian mirror this machine already uses (one helper for every debootstrap here).
mirror=$(bash scripts/debian-mirror.sh)

echo "== building the package"
# ICI_DEB_PROFILE=dev packages the debug build the tests already made (CI: minutes
# saved); the default is the release build users get.
cargo deb --quiet ${ICI_DEB_PROFILE:+--profile "$ICI_DEB_PROFILE"}
deb=$(ls -t target/debian/ici-connector_*.deb | head -n1)
echo "   $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'

cache=${ICI_DEB_CACHE:-/var/cache/ici-connector-test}
tarball=$cache/bookworm-minbase.tar
root=$(mktemp -d /tmp/ici-deb-root.XXXXXX)
cleanup() {
    umount "$root/proc" 2>/dev/null || true
    rm -rf "$root"
}
trap cleanup EXIT

if [ -f "$tarball" ]; then
    echo "== clean Debian root from $tarball"
    tar -C "$root" -xf "$tarball"
else
    echo "== debootstrap bookworm (minbase) from $mirror"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >/tmp/ici-debootstrap.log 2>&1 \
        || { tail -20 /tmp/ici-debootstrap.log; exit 1; }
    mkdir -p "$cache"
    tar -C "$root" -cf "$tarball" .
fi
# mktemp made it 0700 (and the tarball keeps that): other users must reach /.
chmod 0755 "$root"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"

in_root() { chroot "$root" "$@"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

echo "== installing"
cp "$deb" "$root/tmp/ici-connector.deb"
in_root dpkg -i /tmp/ici-connector.deb

echo "== checking"
in_root ici-connector --version
in_root ici-connector check-config /etc/ici-connector/ici-connector.toml >/dev/null \
    || fail "check-config of the packaged configuration"
in_root getent passwd ici-connector | grep -q ':/usr/sbin/nologin$' || fail "service user"
for dir in /var/lib/ici-connector /var/log/ici-connector; do
    [ "$(in_root stat -c %U:%a "$dir")" = "ici-connector:750" ] || fail "$dir owner/mode"
done
[ "$(in_root stat -c %U:%G:%a /etc/ici-connector/ici-connector.toml)" = "root:ici-connector:640" ] \
    || fail "configuration owner/mode"
unit=$(in_root sh -c 'ls /lib/systemd/system/ici-connector.service /usr/lib/systemd/system/ici-connector.service 2>/dev/null | head -n1')
[ -n "$unit" ] || fail "systemd unit not installed"
in_root grep -q '^User=ici-connector' "$unit" || fail "unit runs as root"
in_root grep -q '^Restart=on-failure' "$unit" || fail "unit has no Restart=on-failure"
[ -L "$root/etc/systemd/system/multi-user.target.wants/ici-connector.service" ] \
    || fail "unit not enabled"
# The service user can read its configuration and run a check with it.
in_root setpriv --reuid=ici-connector --regid=ici-connector --clear-groups \
    ici-connector check-config /etc/ici-connector/ici-connector.toml >/dev/null \
    || fail "the service user cannot read its configuration"

echo "== purging"
in_root dpkg --purge ici-connector
[ ! -e "$root/usr/bin/ici-connector" ] || fail "binary left after purge"
[ ! -e "$root/var/lib/ici-connector" ] || fail "spool left after purge"

echo "package test passed: $deb"
