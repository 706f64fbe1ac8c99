#!/usr/bin/env bash
# Disk bytes per record that versions cost, before and after garbage
# collection: a 3-node local cluster loads 100,000 records (100-byte
# values), then takes 1,000,000 uniformly random updates (10 overwrites
# per record on average). It prints the user data's bytes per record on
# each node (`zdb_data_bytes`: table files and memtables, every version)
# and the size of the data directories; then it sets the GC life time to
# 1 s, waits until the nodes have collected the old versions, and prints
# the same figures again.
# Usage: bench/versions-disk.sh [--zdb-bin DIR] [--records N] [--updates N]
set -euo pipefail
cd "$(dirname "$0")/.."
records=100000 updates=1000000 zdb_bin=
while [ $# -gt 0 ]; do
  case $1 in
    --zdb-bin) zdb_bin=$2; shift 2 ;;
    --records) records=$2; shift 2 ;;
    --updates) updates=$2; shift 2 ;;
    *) echo "unknown option $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
if [ -n "$zdb_bin" ]; then
  bin=$zdb_bin
else
  cargo build --release -p zdb-node -p zdbctl -p zdb-bench >&2
  bin=${CARGO_TARGET_DIR:-target}/release
fi
work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/zdbctl" local up --nodes 3 --data "$work/zdb" > "$work/zdb.log" 2>&1 &
for _ in $(seq 1 300); do [ -f "$work/zdb/endpoints" ] && break; sleep 0.2; done
export ZDB_ENDPOINTS=$(cat "$work/zdb/endpoints")
for _ in $(seq 1 150); do "$bin/zdbctl" put bench-ready yes > /dev/null 2>&1 && break; sleep 0.2; done

echo "loading $records records, then $updates uniformly random updates" >&2
"$bin/zdb-bench" --workload update --distribution uniform --records "$records" \
  --clients 64 --warmup 0 --load --operations "$updates" | tail -n 3 >&2

# Each node's status address: the third field of its cluster.conf line.
status_ports() {
  awk '/^(node|joined)=/{print $3}' "$work/zdb/cluster.conf"
}
report() {
  local bytes
  for address in $(status_ports); do
    bytes=$(curl -s "http://$address/metrics" | awk '/^zdb_data_bytes /{print $2}')
    [ -n "$bytes" ] || continue
    printf '  node %-21s %8.1f bytes per record\n' "$address" "$(echo "$bytes / $records" | bc -l)"
  done
  printf '  data directories   %8.1f bytes per record (all nodes, Raft log and WAL included)\n' \
    "$(echo "$(du -sb "$work/zdb" | cut -f1) / $records" | bc -l)"
}
# The gauge is refreshed every second.
sleep 2
echo "== before GC (10 min life time: every version kept)"
report
if ! "$bin/zdbctl" gc --life-time 1s > /dev/null 2>&1; then
  echo "(this zdb keeps no versions: no GC)"
  exit 0
fi
echo "collecting: the safe point follows the oracle 1 s behind" >&2
previous=-1
for _ in $(seq 1 120); do
  collected=$("$bin/zdbctl" gc | awk '/^total/{print $2}')
  [ "$collected" = "$previous" ] && [ "$collected" -gt 0 ] && break
  previous=$collected
  sleep 5
done
sleep 2
echo "== after GC ($collected versions collected on all nodes)"
report
