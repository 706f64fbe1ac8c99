#!/usr/bin/env bash
# What encryption at rest costs: alternating rounds on this machine, each a
# fresh 3-node local cluster without and then with a master key (every node
# sealing values with its own data keys), YCSB A (with --load) then C, 15 s
# each, 64 clients, 100,000 records. The machine's drift hits both alike.
# Usage: bench/compare-encryption.sh BIN_DIR [ROUNDS]
# (BIN_DIR holds zdb-node, zdbctl and zdb-bench from a release build)
set -euo pipefail
bin=$1 rounds=${2:-2}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
python3 -c "import secrets; print(secrets.token_hex(32))" > "$work/master.key"
chmod 600 "$work/master.key"
for round in $(seq 1 "$rounds"); do
  for mode in plain encrypted; do
    data="$work/$round-$mode"
    extra=()
    [ "$mode" = encrypted ] && extra=(--node-arg="--encryption-key-file=$work/master.key")
    "$bin/zdbctl" local up --nodes 3 --data "$data" "${extra[@]}" > "$data.out" 2>&1 &
    up=$!
    for _ in $(seq 1 300); do [ -f "$data/endpoints" ] && break; sleep 0.2; done
    export ZDB_ENDPOINTS=$(cat "$data/endpoints")
    for _ in $(seq 1 100); do "$bin/zdbctl" put ready yes >/dev/null 2>&1 && break; sleep 0.2; done
    # Shows each node's master key and data key: encryption is really on.
    [ "$mode" = encrypted ] && "$bin/zdbctl" encryption status >&2
    "$bin/zdb-bench" --workload a --records 100000 --clients 64 --duration 15 --load --json "$work/a.json" > /dev/null
    "$bin/zdb-bench" --workload c --records 100000 --clients 64 --duration 15 --json "$work/c.json" > /dev/null
    a=$(python3 -c "import json; print(int(json.load(open('$work/a.json'))['throughput_ops']))")
    c=$(python3 -c "import json; print(int(json.load(open('$work/c.json'))['throughput_ops']))")
    echo "round $round $mode: A $a ops/s, C $c ops/s"
    kill -TERM $up; wait $up || true
  done
done
