#!/usr/bin/env bash
# The benchmark suite (BENCHMARKS.md): every figure beside its baseline, in one run.
#
#   bash benches/run.sh            full run, release build, 3 repetitions (about 15 min)
#   bash benches/run.sh --smoke    seconds of each, debug build: CI checks the harness works
#   bash benches/run.sh --only soap,events,parse,peer,tls,spool   a subset
#   RUNS=5 DURATION=15 bash benches/run.sh
#   SERVER_CPUS=0 LOAD_CPUS=1 bash benches/run.sh --only soap
#                                  servers pinned to core 0, the load tool to core 1
#                                  (`taskset`), so the load tool never takes the server's CPU
#   BUILD=debug DURATION=0 bash benches/run.sh --only events   memory only, debug build
#   bash benches/run.sh --only restart   restart with 1,000,000 undelivered events (opt-in)
#
# Results: one JSON object per line in $OUT/results.jsonl (default target/bench-results),
# summarised (median and spread over the runs) by benches/summarize.py at the end.
# Every server binds 127.0.0.1:0; addresses are read from what the server prints.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SMOKE=0
ONLY="soap,peer,events,parse,tls,spool"
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --only) ONLY="$2"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

if [ "$SMOKE" = 1 ]; then
    RUNS=${RUNS:-1} DURATION=${DURATION:-0.5} WARMUP=${WARMUP:-0.2}
    CONNECTIONS=${CONNECTIONS:-8} SIZES=${SIZES:-20,40} CONCURRENCY=${CONCURRENCY:-8}
    LATENCY_CONCURRENCY=${LATENCY_CONCURRENCY:-4}
    CONNECT_COUNT=${CONNECT_COUNT:-20} CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-4}
    PROFILE_FLAGS=() PROFILE_DIR=debug
else
    RUNS=${RUNS:-3} DURATION=${DURATION:-10} WARMUP=${WARMUP:-3}
    CONNECTIONS=${CONNECTIONS:-200} SIZES=${SIZES:-1000,5000,10000,20000}
    CONCURRENCY=${CONCURRENCY:-256} LATENCY_CONCURRENCY=${LATENCY_CONCURRENCY:-16}
    CONNECT_COUNT=${CONNECT_COUNT:-3000} CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-8}
    PROFILE_FLAGS=(--release) PROFILE_DIR=release
fi
# BUILD=debug: the debug build instead (where a release build does not fit, e.g. for
# memory figures on a shared machine; say so beside the figures).
if [ "${BUILD:-}" = debug ]; then
    PROFILE_FLAGS=() PROFILE_DIR=debug
fi
OUT=${OUT:-target/bench-results}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- build -----------------------------------------------------------------------------
echo "building (${PROFILE_DIR})" >&2
cargo build -q "${PROFILE_FLAGS[@]}" --bin ici-connector
exe_of() {
    # The executable of bench target $1, built with the chosen profile.
    cargo build -q "${PROFILE_FLAGS[@]}" --bench "$1" --message-format=json |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1" | tail -1
}
# Pinning (SERVER_CPUS, LOAD_CPUS: `taskset -c` lists); unset, nothing is pinned.
SERVER_PIN=()
LOAD_PIN=()
[ -n "${SERVER_CPUS:-}" ] && SERVER_PIN=(taskset -c "$SERVER_CPUS")
[ -n "${LOAD_CPUS:-}" ] && LOAD_PIN=(taskset -c "$LOAD_CPUS")
# CONNECTOR_BIN: another connector executable (e.g. a copy of the previous build, to
# measure before and after in one run).
CONNECTOR=${CONNECTOR_BIN:-"target/${PROFILE_DIR}/ici-connector"}
LOADGEN=$(exe_of loadgen)
BASELINE=$(exe_of baseline)

machine() {
    python3 - "$@" <<'EOF'
import json, os, subprocess, sys, datetime
mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]
print(json.dumps({
    "bench": "machine", "when": sys.argv[1] if len(sys.argv) > 1 else "",
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "cores": os.cpu_count(), "mem_gib": round(int(mem) / 2**20, 1),
    "loadavg": open("/proc/loadavg").read().split()[:3],
    "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), ""),
}))
EOF
}
machine start >> "$RESULTS"

# --- servers ---------------------------------------------------------------------------
# Waits for "listening ADDR" (baseline, peer) on $1's stdout file; prints ADDR.
wait_listening() {
    local file=$1
    for _ in $(seq 200); do
        if grep -q '^listening ' "$file" 2>/dev/null; then
            grep -m1 '^listening ' "$file" | cut -d' ' -f2
            return
        fi
        sleep 0.05
    done
    echo "server did not start: $(cat "$file")" >&2
    exit 1
}

# start_connector AGENTS [LOG_LEVEL] [EXTRA_TOML]: a connector (simulator switch with AGENTS
# extensions from 300000) in its own process, EXTRA_TOML (e.g. a [tls] table) appended to
# its configuration; sets SOAP_ADDR, ADMIN_ADDR, CONNECTOR_PID.
start_connector() {
    local agents=$1 level=${2:-info} extra=${3:-} dir
    dir=$(mktemp -d "$WORK/connector.XXXX")
    python3 - "$agents" "$dir/data" "$level" "$extra" > "$dir/config.toml" <<'EOF'
import sys
n, data, level, extra = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
exts = ", ".join(f'"{300000 + i}"' for i in range(n))
print(f'''[soap]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[limits]
max_connections = 4096
max_connections_per_peer = 4096
[switch.sim]
extensions = [{exts}]
remote_answer_after = "off"
[events]
data_dir = "{data}"
# One subscription per agent: past the default cap of 10,000.
max_subscriptions = {max(n, 10000)}
[logging]
level = "{level}"
{extra}''')
EOF
    "${SERVER_PIN[@]}" "$CONNECTOR" --config "$dir/config.toml" 2> "$dir/stderr.log" > /dev/null &
    CONNECTOR_PID=$!
    PIDS+=("$CONNECTOR_PID")
    # The addresses are in the "listening" line, logged at info: that one line is let
    # through whatever the level.
    for _ in $(seq 400); do
        if grep -q 'soap=' "$dir/stderr.log" 2>/dev/null; then break; fi
        sleep 0.05
    done
    SOAP_ADDR=$(grep -m1 -o 'soap=[0-9.:]*' "$dir/stderr.log" | cut -d= -f2)
    ADMIN_ADDR=$(grep -m1 -o 'admin=[0-9.:]*' "$dir/stderr.log" | cut -d= -f2)
    if [ -z "$SOAP_ADDR" ]; then
        echo "connector did not start: $(cat "$dir/stderr.log")" >&2
        exit 1
    fi
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

start_baseline() {
    "${SERVER_PIN[@]}" "$BASELINE" serve > "$WORK/baseline.out" &
    BASELINE_PID=$!
    PIDS+=("$BASELINE_PID")
    BASELINE_ADDR=$(wait_listening "$WORK/baseline.out")
}

PEER_OK=0
if want peer; then
    if [ -d benches/peer/node_modules/soap ] || (cd benches/peer && npm ci --no-audit --no-fund >&2); then
        PEER_OK=1
    else
        echo "peer: npm install failed; skipping benchmark 5" >&2
    fi
fi
start_peer() {
    "${SERVER_PIN[@]}" node benches/peer/server.js > "$WORK/peer.out" &
    PEER_PID=$!
    PIDS+=("$PEER_PID")
    PEER_ADDR=$(wait_listening "$WORK/peer.out")
}

soap_load() {
    "${LOAD_PIN[@]}" "$LOADGEN" soap --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" "$@" |
        tee -a "$RESULTS"
}

# --- 1 and 5: SOAP throughput and latency, baseline and peer in the same run ------------
# Interleaved per repetition so a change in background load hits all of them alike.
if want soap || want peer; then
    for run in $(seq "$RUNS"); do
        machine "soap run $run" >> "$RESULTS"
        if want soap; then
            start_baseline
            soap_load --target "$BASELINE_ADDR" --pid "$BASELINE_PID" --label baseline
            # The latency floor of this machine and load tool: the no-op baseline at 10 %
            # of its saturation.
            soap_load --target "$BASELINE_ADDR" --pid "$BASELINE_PID" --fraction 0.1 \
                --label baseline-10pct
            stop "$BASELINE_PID"
            for op in attrs holdpair; do
                start_connector "$CONNECTIONS"
                soap_load --target "$SOAP_ADDR" --admin "$ADMIN_ADDR" --pid "$CONNECTOR_PID" \
                    --op "$op" --label "connector"
                stop "$CONNECTOR_PID"
            done
            # The same without the per-request log line (logging.level = "warn").
            start_connector "$CONNECTIONS" "warn,ici_connector=info,ici_connector::soap=warn"
            soap_load --target "$SOAP_ADDR" --admin "$ADMIN_ADDR" --pid "$CONNECTOR_PID" \
                --op attrs --label "connector-log-warn"
            stop "$CONNECTOR_PID"
        fi
        if want peer && [ "$PEER_OK" = 1 ]; then
            start_peer
            soap_load --target "$PEER_ADDR" --pid "$PEER_PID" --label peer-node-soap
            stop "$PEER_PID"
        fi
    done
fi

# --- 6: TLS ------------------------------------------------------------------------------
# Benchmark 1 (getPhoneCallAttributes) against three connectors per repetition: plain HTTP,
# TLS (client_auth = "off") and TLS with client certificates required; then the rate of
# new connections (connect, handshake, one request, close) against each.
if want tls; then
    PKI="$WORK/pki"
    "$LOADGEN" certs --dir "$PKI"
    tls_table() {
        printf '[tls]\nenabled = true\ncert = "%s"\nkey = "%s"\nclient_auth = "%s"\nclient_ca = "%s"\n' \
            "$PKI/server.crt" "$PKI/server.key" "$1" "$PKI/ca.crt"
    }
    for run in $(seq "$RUNS"); do
        machine "tls run $run" >> "$RESULTS"
        for variant in plain tls mtls; do
            case $variant in
                plain) extra="" tls_args=() ;;
                tls) extra=$(tls_table off) tls_args=(--tls-ca "$PKI/ca.crt") ;;
                mtls)
                    extra=$(tls_table require)
                    tls_args=(--tls-ca "$PKI/ca.crt" --tls-cert "$PKI/client.crt" --tls-key "$PKI/client.key")
                    ;;
            esac
            start_connector "$CONNECTIONS" info "$extra"
            soap_load --target "$SOAP_ADDR" --admin "$ADMIN_ADDR" --op attrs \
                --label "connector-$variant" --pid "$CONNECTOR_PID" "${tls_args[@]}"
            "${LOAD_PIN[@]}" "$LOADGEN" connect --target "$SOAP_ADDR" --count "$CONNECT_COUNT" \
                --concurrency "$CONNECT_CONCURRENCY" --label "connector-$variant" \
                --pid "$CONNECTOR_PID" "${tls_args[@]}" | tee -a "$RESULTS"
            stop "$CONNECTOR_PID"
        done
    done
fi

# --- 2 and 3: event pipeline and memory at growing sizes --------------------------------
if want events; then
    max=${SIZES##*,}
    for run in $(seq "$RUNS"); do
        machine "events run $run" >> "$RESULTS"
        start_connector "$max"
        "${LOAD_PIN[@]}" "$LOADGEN" events --target "$SOAP_ADDR" --admin "$ADMIN_ADDR" --pid "$CONNECTOR_PID" \
            --sizes "$SIZES" --concurrency "$CONCURRENCY" \
            --latency-concurrency "$LATENCY_CONCURRENCY" --duration "$DURATION" \
            --warmup "$WARMUP" | tee -a "$RESULTS"
        stop "$CONNECTOR_PID"
    done
fi

# --- 7: the event pipeline on the replicated spool beside redb ---------------------------
# Benchmark 2 against a connector on redb and one on the JetStream spool of [cluster]
# (three nats-server nodes from packaging/nats-server.conf, replicas 3), interleaved per
# repetition. Results as "spool_events", "spool_events_light", "spool_memory", with
# "spool": "redb" or "jetstream". Needs Debian's nats-server (scripts/test.sh installs it).
NATS_SERVER=${ICI_NATS_SERVER:-/usr/sbin/nats-server}
if want spool && [ ! -x "$NATS_SERVER" ]; then
    echo "spool: skipped: $NATS_SERVER not installed (apt-get install nats-server)" >&2
elif want spool; then
    read -r -a ports <<< "$(python3 -c 'import socket
s = [socket.socket() for _ in range(9)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"
    for i in 1 2 3; do
        client=${ports[$((i - 1))]} monitor=${ports[$((i + 2))]} route=${ports[$((i + 5))]}
        sed -e "s/nats-1/nats-$i/" -e "s/0.0.0.0:4222/127.0.0.1:$client/" \
            -e "s/127.0.0.1:8222/127.0.0.1:$monitor/" -e "s|/var/lib/nats/jetstream|$WORK/nats-$i|" \
            -e "s/0.0.0.0:6222/127.0.0.1:$route/" -e "s/10.0.0.21:6222/127.0.0.1:${ports[6]}/" \
            -e "s/10.0.0.22:6222/127.0.0.1:${ports[7]}/" -e "s/10.0.0.23:6222/127.0.0.1:${ports[8]}/" \
            packaging/nats-server.conf > "$WORK/nats-$i.conf"
        "$NATS_SERVER" -c "$WORK/nats-$i.conf" > "$WORK/nats-$i.log" 2>&1 &
        PIDS+=("$!")
    done
    for i in 1 2 3; do
        python3 - "${ports[$((i + 2))]}" <<'EOF'
import sys, time, urllib.request
for _ in range(600):
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit("a NATS node did not come up")
EOF
    done
    nats_urls="\"nats://127.0.0.1:${ports[0]}\", \"nats://127.0.0.1:${ports[1]}\", \"nats://127.0.0.1:${ports[2]}\""
    max=${SIZES##*,}
    for run in $(seq "$RUNS"); do
        machine "spool run $run" >> "$RESULTS"
        for spool in redb jetstream; do
            extra=""
            if [ "$spool" = jetstream ]; then
                # A fresh spool stream and lease per repetition.
                extra=$(printf '[cluster]\nnats = [%s]\nnode = "bench"\nprefix = "bench%s"\n' "$nats_urls" "$run")
            fi
            start_connector "$max" info "$extra"
            # The pair's connector serves SOAP once it holds the lease.
            python3 - "$ADMIN_ADDR" <<'EOF'
import sys, time, urllib.request
for _ in range(600):
    try:
        if urllib.request.urlopen(f"http://{sys.argv[1]}/readyz", timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit("the connector did not become ready")
EOF
            "$LOADGEN" events --target "$SOAP_ADDR" --admin "$ADMIN_ADDR" --pid "$CONNECTOR_PID" \
                --sizes "$SIZES" --concurrency "$CONCURRENCY" \
                --latency-concurrency "$LATENCY_CONCURRENCY" --duration "$DURATION" \
                --warmup "$WARMUP" |
                sed -e "s/\"bench\": *\"/\"spool\":\"$spool\",\"bench\":\"spool_/" |
                tee -a "$RESULTS"
            stop "$CONNECTOR_PID"
        done
    done
fi

# --- 8: restart with undelivered events in the spool (opt-in: --only restart) -----------
# Filling the spool takes minutes (a million events are 2.3 GB); not part of the default run.
if want restart; then
    if [ "$SMOKE" = 1 ]; then
        RESTART_EVENTS=${RESTART_EVENTS:-2000} RESTART_WATCH=${RESTART_WATCH:-2}
    fi
    for run in $(seq "$RUNS"); do
        machine "restart run $run" >> "$RESULTS"
        "$LOADGEN" restart --connector "$CONNECTOR" --events "${RESTART_EVENTS:-1000000}" \
            --subscriptions "${RESTART_SUBSCRIPTIONS:-100}" --watch "${RESTART_WATCH:-30}" |
            tee -a "$RESULTS"
    done
fi

# --- 4: parser ---------------------------------------------------------------------------
if want parse; then
    machine "parse" >> "$RESULTS"
    if [ "$SMOKE" = 1 ]; then
        # criterion without --bench runs each benchmark once (dev profile, as the tests).
        cargo test -q --bench parse 2>&1 | grep -E '^allocations|Success' >&2
    else
        cargo bench --bench parse -- --noplot 2>&1 | tee "$OUT/parse.txt" >&2
        python3 - "$OUT/parse.txt" >> "$RESULTS" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
for m in re.finditer(r"allocations (\S+): ([\d.]+) allocations/request, (\d+) bytes/request, body (\d+)", text):
    print(json.dumps({"bench": "parse_alloc", "input": m[1], "allocations": float(m[2]), "bytes": int(m[3]), "body": int(m[4])}))
for m in re.finditer(r"parse_request/(\S+)\s+time:\s+\[([\d.]+) (\S+) ([\d.]+) (\S+) ([\d.]+) (\S+)\]", text):
    scale = {"ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6}
    lo, mid, hi = (float(m[i]) * scale[m[i + 1]] for i in (2, 4, 6))
    print(json.dumps({"bench": "parse_time", "input": m[1], "ns_low": lo, "ns": mid, "ns_high": hi}))
EOF
    fi
fi

machine end >> "$RESULTS"
python3 benches/summarize.py "$RESULTS"
