#!/usr/bin/env bash
# Stops what tests/asterisk/setup.sh started (phones, Asterisk) and unmounts the chroot's
# proc/dev. The cached chroot itself stays for the next run. `--keep-mounts` leaves the
# mounts (setup.sh uses it to restart cleanly). Idempotent.
set -uo pipefail
root=${ICI_ASTERISK_ROOT:-/var/cache/ici-connector-asterisk/sidroot}
run=${ICI_ASTERISK_RUN:-/tmp/ici-connector-asterisk}

stop() { # pid file
    [ -f "$1" ] || return 0
    local pid
    pid=$(cat "$1")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$1"
}
for f in "$run"/baresip-*.pid; do stop "$f"; done
stop "$run/asterisk.pid"
if [ "${1:-}" != --keep-mounts ]; then
    for d in dev/pts dev proc; do
        mountpoint -q "$root/$d" && umount "$root/$d"
    done
fi
exit 0
