#!/usr/bin/env bash
# Update-only throughput of a 3-node local cluster with its data in 1 range,
# then in 16 ranges (64 clients, 100-byte values, 100,000 records).
# Usage: bench/compare-ranges.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p zdb-node -p zdbctl -p zdb-bench >&2
bin="$target/release"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

for ranges in 1 16; do
  data="$work/cluster-$ranges"
  "$bin/zdbctl" local up --nodes 3 --data "$data" > "$data.out" 2>&1 &
  up=$!
  for _ in $(seq 1 300); do [ -f "$data/endpoints" ] && break; sleep 0.2; done
  export ZDB_ENDPOINTS=$(cat "$data/endpoints")
  "$bin/zdb-bench" --workload update --records 100000 --clients 64 --duration 1 --warmup 0 --load > /dev/null
  for i in $(seq 1 $((ranges - 1))); do
    "$bin/zdbctl" split "$(printf 'user%012d' $((i * 100000 / ranges)))" > /dev/null
  done
  echo "== $(( $("$bin/zdbctl" ranges | wc -l) - 1 )) range(s)"
  "$bin/zdb-bench" --workload update --distribution uniform --records 100000 --clients 64 --duration "$duration" --warmup 2 | grep -A2 throughput
  kill -TERM $up; wait $up || true
done
