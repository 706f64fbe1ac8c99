#!/usr/bin/env bash
# Two builds on this machine, alternating: each round starts a fresh 3-node
# local cluster per build and runs YCSB A (with --load) then C, 15 s each,
# 64 clients, 100,000 records. The machine's drift hits both builds alike.
# Usage: bench/compare-builds.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]
# (each DIR holds zdb-node, zdbctl and zdb-bench from a release build)
set -euo pipefail
old=$1 new=$2 rounds=${3:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for round in $(seq 1 "$rounds"); do
  for build in "$old" "$new"; do
    data="$work/$round-$(basename "$build")"
    "$build/zdbctl" local up --nodes 3 --data "$data" > "$data.out" 2>&1 &
    up=$!
    for _ in $(seq 1 300); do [ -f "$data/endpoints" ] && break; sleep 0.2; done
    export ZDB_ENDPOINTS=$(cat "$data/endpoints")
    for _ in $(seq 1 100); do "$build/zdbctl" put ready yes >/dev/null 2>&1 && break; sleep 0.2; done
    "$build/zdb-bench" --workload a --records 100000 --clients 64 --duration 15 --load --json "$work/a.json" > /dev/null
    "$build/zdb-bench" --workload c --records 100000 --clients 64 --duration 15 --json "$work/c.json" > /dev/null
    a=$(python3 -c "import json; print(int(json.load(open('$work/a.json'))['throughput_ops']))")
    c=$(python3 -c "import json; print(int(json.load(open('$work/c.json'))['throughput_ops']))")
    echo "round $round $build: A $a ops/s, C $c ops/s"
    kill -TERM $up; wait $up || true
  done
done
