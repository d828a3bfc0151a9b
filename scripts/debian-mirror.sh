#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt already uses, for debootstrap (the package
# test's bookworm root, the Asterisk test's sid chroot). Only real source entries count:
# `URIs:` lines of deb822 `.sources` files and `deb` lines of one-line `.list` files. A
# comment such as Debian's own `# http://snapshot.debian.org/...` above `URIs:` is never
# taken (snapshot mirrors are frozen and refuse debootstrap of a current suite), nor are
# security mirrors or disabled files. ICI_DEBIAN_MIRROR overrides; deb.debian.org is the
# fallback.
#
# Usage: scripts/debian-mirror.sh [APT_DIR]   (APT_DIR defaults to /etc/apt; tests pass
# a folder of their own)
set -euo pipefail

if [ -n "${ICI_DEBIAN_MIRROR:-}" ]; then
    echo "$ICI_DEBIAN_MIRROR"
    exit 0
fi
apt_dir=${1:-/etc/apt}

from_sources() {
    local f
    for f in "$apt_dir"/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # deb822: the field is `URIs:` at the start of a line; comments start with '#'.
        awk '/^URIs:[ \t]/ { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
}
from_lists() {
    local f
    for f in "$apt_dir"/sources.list "$apt_dir"/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # One-line style: `deb [options] URI suite components`; `deb-src` and comments skipped.
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; next } }' "$f"
    done
}

mirror=$({ from_sources; from_lists; } | grep -E '^https?://' | grep -v -- '-security' |
    grep -E '/debian/?$' | head -n1 || true)
echo "${mirror:-http://deb.debian.org/debian}"
