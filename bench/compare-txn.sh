#!/usr/bin/env bash
# Transactions on a 3-node local cluster, with the data in 1 range and then
# in 16 ranges: read-modify-write of 2 and of 4 random records in one
# serializable transaction (uniform and zipfian keys), next to what they
# replace: atomic batch writes of 2 and 4 records, and single-record
# updates (one Put). 64 clients, 100-byte values, 100,000 records.
# Prints throughput and latency percentiles per workload and range count.
#
# Usage: bench/compare-txn.sh [SECONDS] [--zdb-bin DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
zdb_bin=""
if [ "${2:-}" = "--zdb-bin" ]; then zdb_bin=$3; fi
if [ -n "$zdb_bin" ]; then
  bin=$zdb_bin
else
  target=${CARGO_TARGET_DIR:-target}
  cargo build --release -p zdb-node -p zdbctl -p zdb-bench >&2
  bin="$target/release"
fi
work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

runs=("update uniform" "batch2 uniform" "txn2 uniform" "txn2 zipfian" "batch4 uniform" "txn4 uniform" "txn4 zipfian")
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
  echo "== $(( $("$bin/zdbctl" ranges | wc -l) - 1 )) range(s)" >&2
  for run in "${runs[@]}"; do
    set -- $run
    echo "-- $1, $2 keys" >&2
    "$bin/zdb-bench" --workload "$1" --distribution "$2" --records 100000 --clients 64 \
      --duration "$duration" --warmup 2 --json "$work/$ranges-$1-$2.json" | grep -A3 throughput >&2
  done
  kill -TERM $up; wait $up || true
done

python3 - "$work" "${runs[@]}" <<'PY'
import json, os, sys
work, runs = sys.argv[1], [r.split() for r in sys.argv[2:]]
print("\nzdb transactions, 3 nodes on 127.0.0.1, 64 clients, 100,000 records (latency in ms)")
print(f"{'workload':<9}{'keys':<9}" + "".join(f"{h:>10}" for h in
      ["1r ops/s", "1r p50", "1r p99", "16r ops/s", "16r p50", "16r p99", "errors"]))
for workload, dist in runs:
    cells, errors = [], 0
    for ranges in (1, 16):
        with open(os.path.join(work, f"{ranges}-{workload}-{dist}.json")) as f:
            r = json.load(f)
        op = next(iter(r["operations"].values()))
        cells += [f"{r['throughput_ops']:.0f}", f"{op['p50_us'] / 1000:.2f}", f"{op['p99_us'] / 1000:.2f}"]
        errors += sum(o.get("errors", 0) for o in r["operations"].values())
    print(f"{workload:<9}{dist:<9}" + "".join(f"{c:>10}" for c in cells) + f"{errors:>10}")
PY
