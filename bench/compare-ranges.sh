#!/usr/bin/env bash
# Update-only throughput of a 3-node local cluster with its data in 1 range,
# then in 16 ranges (64 clients, 100-byte values, 100,000 records), with
# the nodes' CPU time, fsyncs and Raft messages per update (read from /proc
# and from each node's /metrics), which are steadier than throughput on a
# busy machine.
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
  # The placement driver spreads the leaders after the splits: measure once
  # the leader count per node has settled (same counts three polls in a row).
  settled=0 previous=
  for _ in $(seq 1 90); do
    counts=$("$bin/zdbctl" ranges | awk 'NR > 1 {n[$6]++} END {for (l in n) print n[l]}' | sort -n | paste -sd' ')
    if [ "$counts" = "$previous" ]; then settled=$((settled + 1)); else settled=0; fi
    previous=$counts
    [ $settled -ge 3 ] && break
    sleep 1
  done
  echo "== $(( $("$bin/zdbctl" ranges | wc -l) - 1 )) range(s), leaders per node: $counts"
  pids=$(pgrep -f -- "--data=$data/node-" || true)
  status=$(for pid in $pids; do tr '\0' '\n' < /proc/$pid/cmdline | sed -n 's/^--status-listen=//p'; done)
  cpu_ticks() { local t=0; for pid in $pids; do t=$((t + $(awk '{print $14 + $15}' /proc/$pid/stat))); done; echo $t; }
  counter() { local n=0; for a in $status; do
      n=$((n + $(curl -s "http://$a/metrics" | awk -v m="$1" '$1 == m {print int($2)}'))); done; echo $n; }
  syncs() { counter zdb_fsync_duration_seconds_count; }
  messages() { counter zdb_raft_messages_sent_total; }
  cpu0=$(cpu_ticks); syncs0=$(syncs); messages0=$(messages)
  "$bin/zdb-bench" --workload update --distribution uniform --records 100000 --clients 64 \
    --duration "$duration" --warmup 0 --json "$work/r.json" | grep -A2 throughput
  cpu1=$(cpu_ticks); syncs1=$(syncs); messages1=$(messages)
  updates=$(python3 -c "import json; print(json.load(open('$work/r.json'))['operations']['update']['count'])")
  echo "node CPU per update: $(( (cpu1 - cpu0) * 1000000 / $(getconf CLK_TCK) / updates )) us;" \
    "fsyncs per update: $(python3 -c "print(f'{($syncs1 - $syncs0) / $updates:.3f}')");" \
    "Raft messages per update: $(python3 -c "print(f'{($messages1 - $messages0) / $updates:.2f}')")"
  kill -TERM $up; wait $up || true
done
