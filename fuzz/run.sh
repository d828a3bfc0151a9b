#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each), after seeding its corpus
# from tests/fixtures. Needs cargo-fuzz and a nightly compiler, or a stable one with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags for the sanitizer and coverage).
#   fuzz/run.sh [seconds]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-60}

seed() { # target, files...
    local dir=corpus/$1
    shift
    mkdir -p "$dir"
    for f in "$@"; do
        cp "$f" "$dir/seed-$(sha1sum "$f" | cut -c1-16)"
    done
}
seed soap_parse_request ../tests/fixtures/soap/examples/*.xml
# The vendor trace without its HTTP head.
mkdir -p corpus/soap_parse_request
sed '1,/^\r\?$/d' ../tests/fixtures/soap/vendor-trace.http >corpus/soap_parse_request/seed-vendor-trace
seed config_from_toml ../tests/fixtures/config/*/*.toml ../config/ici-connector.toml

if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
for target in soap_parse_request config_from_toml; do
    echo "fuzz: $target for ${seconds}s"
    cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
done
