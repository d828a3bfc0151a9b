#!/usr/bin/env bash
# Starts the test PBX for tests/it/asterisk_flow.rs: a real Asterisk (Debian sid) in a
# debootstrapped chroot, and four baresip phones (2001, 2002 agents; 2003 customer; 2004
# a supervisor),
# all on loopback. Idempotent: the chroot is cached and reused, and running processes from
# an earlier call are stopped and started again so every run begins from a clean PBX.
#
# Environment (all optional):
#   ICI_ASTERISK_ROOT  chroot folder (default /var/cache/ici-connector-asterisk/sidroot)
#   ICI_ASTERISK_RUN   logs, pid files, phone configs (default /tmp/ici-connector-asterisk)
#   ICI_DEBIAN_MIRROR  Debian mirror (default: the first one in the machine's apt sources)
#
# `setup.sh --kill-asterisk` kills the running Asterisk with SIGKILL (a crash: no hangups,
# the AMI connection just drops); `setup.sh --start-asterisk` starts it again. The test uses
# them for the switchover step. `setup.sh --cli "<command>"` runs one Asterisk CLI command
# (the test checks what the PBX is doing, e.g. that ChanSpy runs).
#
# Exit status: 0 ready; 77 the environment cannot run it (the reason on stdout as
# "SKIPPED: ..."); anything else is a failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${ICI_ASTERISK_ROOT:-/var/cache/ici-connector-asterisk/sidroot}
run=${ICI_ASTERISK_RUN:-/tmp/ici-connector-asterisk}
phones="2001:5210:4451 2002:5220:4452 2003:5230:4453 2004:5240:4454" # extension:sip port (and the next one):ctrl_tcp port

skip() {
    echo "SKIPPED: $*"
    exit 77
}
log() { echo "asterisk setup: $*" >&2; }

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, mount)"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get: not a Debian-like system"
command -v chroot >/dev/null 2>&1 || skip "no chroot"

mkdir -p "$run"

# The machine-wide lab lock (/tmp/ici-asterisk.lock) is held by whoever runs the lab,
# often `flock` around the test, whose open lock file this script inherits. The PBX and
# the phones started below must not inherit it too: one that outlived its teardown would
# hold the lock for ever and every later run would wait on it.
for fd in /proc/$$/fd/*; do
    n=${fd##*/}
    [ "$n" -gt 2 ] && [ "$(readlink "$fd" 2>/dev/null)" = /tmp/ici-asterisk.lock ] && eval "exec $n>&-"
done

ami_up() { timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5038 && head -c 15 <&3' 2>/dev/null | grep -q Asterisk; }
start_asterisk() {
    chroot "$root" /usr/sbin/asterisk -f -vvv >>"$run/asterisk.log" 2>&1 </dev/null &
    echo $! >"$run/asterisk.pid"
    for _ in $(seq 1 100); do
        ami_up && return 0
        sleep 0.1
    done
    tail -n 20 "$run/asterisk.log" >&2
    echo "asterisk setup: AMI on 127.0.0.1:5038 did not answer" >&2
    exit 1
}
case "${1:-}" in
--kill-asterisk)
    pid=$(cat "$run/asterisk.pid")
    kill -9 "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    exit 0
    ;;
--start-asterisk)
    start_asterisk
    exit 0
    ;;
--cli)
    exec chroot "$root" /usr/sbin/asterisk -rx "$2"
    ;;
esac

"$here/teardown.sh" --keep-mounts >/dev/null 2>&1 || true

need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The Debian mirror this machine already uses (honours ICI_DEBIAN_MIRROR).
mirror() { bash "$here/../../scripts/debian-mirror.sh"; }

mounted() { mountpoint -q "$1"; }
mount_all() {
    mounted "$root/proc" || mount -t proc proc "$root/proc"
    mounted "$root/dev" || mount --bind /dev "$root/dev"
    mounted "$root/dev/pts" || mount --bind /dev/pts "$root/dev/pts"
}

if [ ! -e "$root/.ici-complete" ]; then
    m=$(mirror)
    log "building the Debian sid chroot in $root from $m (about a minute)"
    # An incomplete earlier attempt is thrown away, never half reused.
    for d in dev/pts dev proc; do mounted "$root/$d" && umount "$root/$d"; done
    rm -rf "$root"
    mkdir -p "$(dirname "$root")"
    debootstrap --variant=minbase --include=ca-certificates sid "$root" "$m" >"$run/debootstrap.log" 2>&1 ||
        {
            tail -n 20 "$run/debootstrap.log" >&2
            exit 1
        }
    cp /etc/resolv.conf "$root/etc/"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99novalid"
    mount_all
    chroot "$root" apt-get update -q >"$run/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q --no-install-recommends asterisk \
        >>"$run/apt.log" 2>&1 || {
        tail -n 20 "$run/apt.log" >&2
        exit 1
    }
    touch "$root/.ici-complete"
fi
mount_all || skip "cannot mount proc/dev into the chroot"

# Music on hold for server-side hold: a minimal Asterisk install has no MOH files, and
# MusicOnHold() without them hangs the held party up at once.
if [ ! -e "$root/.ici-moh" ]; then
    log "installing music on hold (asterisk-moh-opsound-gsm)"
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q --no-install-recommends \
        asterisk-moh-opsound-gsm >>"$run/apt.log" 2>&1 || {
        chroot "$root" apt-get update -q >>"$run/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q --no-install-recommends \
            asterisk-moh-opsound-gsm >>"$run/apt.log" 2>&1
    } || {
        tail -n 20 "$run/apt.log" >&2
        exit 1
    }
    touch "$root/.ici-moh"
fi

# The project's test configuration replaces the packaged one for the files it names.
for f in "$here"/etc/*.conf; do
    install -m 640 -o root -g root "$f" "$root/etc/asterisk/$(basename "$f")"
done
chroot "$root" sh -c 'chown asterisk:asterisk /etc/asterisk/*.conf' 2>/dev/null || true

log "starting asterisk"
: >"$run/asterisk.log"
start_asterisk

for p in $phones; do
    IFS=: read -r ext sip ctrl <<<"$p"
    dir=$run/baresip-$ext
    mkdir -p "$dir"
    echo "<sip:$ext@127.0.0.1:5160>;regint=600;answermode=manual" >"$dir/accounts"
    sed -e "s/@SIP_PORT@/$sip/" -e "s/@CTRL_PORT@/$ctrl/" "$here/baresip.config" >"$dir/config"
    : >"$dir/contacts"
    baresip -f "$dir" >"$run/baresip-$ext.log" 2>&1 </dev/null &
    echo $! >"$run/baresip-$ext.pid"
done

# Ready when every phone is registered (its contact is known to Asterisk).
registered() {
    local n
    n=$(chroot "$root" /usr/sbin/asterisk -rx 'pjsip show contacts' 2>/dev/null | grep -c 'Contact:  20' || true)
    [ "$n" -ge 4 ]
}
for _ in $(seq 1 100); do
    registered && break
    sleep 0.1
done
registered || {
    chroot "$root" /usr/sbin/asterisk -rx 'pjsip show contacts' >&2 || true
    echo "asterisk setup: the phones did not register" >&2
    exit 1
}
log "ready: AMI 127.0.0.1:5038, phones $phones"
