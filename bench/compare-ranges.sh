#!/usr/bin/env bash
# Update-only throughput of a 3-node local cluster with its data in 1 range,
# then in 16 ranges (64 clients, 100-byte values, 100,000 records), with
# the nodes' CPU time, fsyncs and Raft messages per update (read from /proc
# and from each node's /metrics), which are steadier than throughput on a
# busy machine.
#
# With NODE_CPUS, each node runs in its own CPU cgroup capped at that many
# CPUs (needs root), as pods with CPU limits on separate machines would:
# then one range is bound by its leader's CPU, and 16 ranges spread the
# leaders' work over every node. Without it, all nodes and the load
# generator share this machine's cores.
# This machine's throughput varies by 10-20% from run to run: RUNS > 1
# alternates the two settings that many times and prints every ratio.
# LOCAL_UP_ARGS go to `zdbctl local up`: "--placement-interval-ms 3600000"
# keeps the placement driver from spreading the leaders after the splits, so
# all 16 stay on one node (to tell the cost of spreading from that of ranges).
# Usage: [LOCAL_UP_ARGS=...] bench/compare-ranges.sh [SECONDS] [NODE_CPUS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15}
node_cpus=${2:-}
runs=${3:-1}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p zdb-node -p zdbctl -p zdb-bench >&2
bin="$target/release"
work=$(mktemp -d)
source bench/lib/cpu-cap.sh
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  remove_cpu_caps
  rm -rf "$work"
}
trap cleanup EXIT

results=()
for run in $(seq 1 "$runs"); do
for ranges in 1 16; do
  data="$work/cluster-$run-$ranges"
  "$bin/zdbctl" local up --nodes 3 --data "$data" ${LOCAL_UP_ARGS:-} > "$data.out" 2>&1 &
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
  if [ -n "$node_cpus" ]; then
    for pid in $pids; do cap_cpu "$pid" "zdb-bench-$run-$ranges-$pid" "$node_cpus"; done
    echo "   each node capped at $node_cpus CPU"
  fi
  status=$(for pid in $pids; do tr '\0' '\n' < /proc/$pid/cmdline | sed -n 's/^--status-listen=//p'; done)
  counter() { local n=0; for a in $status; do
      n=$((n + $(curl -s "http://$a/metrics" | awk -v m="$1" '$1 == m {print int($2)}'))); done; echo $n; }
  syncs() { counter zdb_fsync_duration_seconds_count; }
  messages() { counter zdb_raft_messages_sent_total; }
  node_ticks() { for pid in $pids; do awk '{print $14 + $15}' /proc/$pid/stat; done; }
  node_ticks > "$work/ticks0"; syncs0=$(syncs); messages0=$(messages)
  "$bin/zdb-bench" --workload update --distribution uniform --records 100000 --clients 64 \
    --duration "$duration" --warmup 0 --json "$work/r.json" | grep -A2 throughput
  node_ticks > "$work/ticks1"; syncs1=$(syncs); messages1=$(messages)
  updates=$(python3 -c "import json; print(json.load(open('$work/r.json'))['operations']['update']['count'])")
  per_update() { paste "$work/ticks0" "$work/ticks1" |
    awk -v u="$updates" -v t="$(getconf CLK_TCK)" "$1"; }
  echo "node CPU per update: $(per_update '{n += $2 - $1} END {printf "%d", n * 1e6 / t / u}') us;" \
    "fsyncs per update: $(python3 -c "print(f'{($syncs1 - $syncs0) / $updates:.3f}')");" \
    "Raft messages per update: $(python3 -c "print(f'{($messages1 - $messages0) / $updates:.2f}')")"
  echo "CPU per update on each node: $(per_update '{printf "%d us  ", ($2 - $1) * 1e6 / t / u}')"
  results+=("$((updates / duration))")
  kill -TERM $up; wait $up || true
  rm -rf "$data"
done
done
echo "== writes/s, 1 range vs 16 ranges, run by run"
for run in $(seq 0 $((runs - 1))); do
  one=${results[$((2 * run))]} sixteen=${results[$((2 * run + 1))]}
  echo "run $((run + 1)): $one vs $sixteen ($(python3 -c "print(f'{$sixteen / $one:.2f}')")x)"
done
