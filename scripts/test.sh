#!/usr/bin/env bash
# The test command (README and CI both call it). Installs what the tests need when it is
# missing, then runs `cargo test --all-targets` with any extra arguments forwarded:
#   - xmllint (Debian libxml2-utils), to validate the generated WSDL against WSDL 1.1;
#   - a Python venv at .venv with the SOAP toolkits pinned in tests/interop/requirements.txt
#     (zeep, suds-community, xmlschema), used by the interop tests;
#   - Debian chromium, node and tests/browser/node_modules (playwright-core, pinned by its
#     lockfile), used by the status page and agent desktop tests;
#   - Debian nats-server and haproxy, used by the high-availability tests (tests/it/ha.rs);
#     only the binaries are used: the services the packages may start are stopped.
# Exports ICI_PYTHON and ICI_XMLLINT for the tests. Idempotent; quick once installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
requirements=tests/interop/requirements.txt

apt_updated=no
apt_install() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: missing $*; install it (Debian: apt-get install -y $*) or run this as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ "$apt_updated" = no ]; then
        apt-get update -qq
        apt_updated=yes
    fi
    apt-get install -y -qq "$@" >/dev/null
}

if ! command -v xmllint >/dev/null 2>&1; then
    apt_install libxml2-utils
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3 python3-venv
fi

venv=$root/.venv
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
# Reinstall only when the pinned requirements change.
stamp=$venv/.requirements.sha256
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$requirements"
    echo "$wanted" >"$stamp"
fi

if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
# Reinstall only when the lockfile changes.
browser=$root/tests/browser
stamp=$browser/node_modules/.lock.sha256
wanted=$(sha256sum "$browser/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    (cd "$browser" && npm ci --no-audit --no-fund --silent)
    echo "$wanted" >"$stamp"
fi
export ICI_CHROMIUM=/usr/bin/chromium

if [ ! -x /usr/sbin/nats-server ] || [ ! -x /usr/sbin/haproxy ]; then
    apt_install nats-server haproxy
    # The tests start their own processes on ports from the OS; the packages' services
    # (where a service manager started them) are not needed.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now nats-server haproxy >/dev/null 2>&1 || true
    fi
fi
export ICI_NATS_SERVER=/usr/sbin/nats-server
export ICI_HAPROXY=/usr/sbin/haproxy

export ICI_PYTHON=$venv/bin/python
ICI_XMLLINT=$(command -v xmllint)
export ICI_XMLLINT
export PYTHONDONTWRITEBYTECODE=1

# Every test binary prints its own "test result" line; the total closes the run.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --all-targets "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
