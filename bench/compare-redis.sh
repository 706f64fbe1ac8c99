#!/usr/bin/env bash
# zdb's Redis front end against Redis itself, in one run on this machine:
# starts (1) a redis-server that fsyncs every write before answering
# (appendonly yes, appendfsync always), (2) a redis-server without any
# persistence (--save '' --appendonly no), and (3) a 3-node zdb cluster on
# 127.0.0.1 (zdb-node processes, each with --redis-listen; a write is
# acknowledged once a majority has it on disk), then runs the same
# redis-benchmark against each (zdb: through the Redis port of the node
# that leads the keys' range, and through a follower's, which passes each
# request on to the leader), without and with pipelining (-P 16):
#   redis-benchmark -t set,get,incr,mset -n REQUESTS -c 50 -d 100 -r 100000 -q --csv
# and prints one table of requests per second per test and target.
# Everything it started is stopped on exit.
#
# Usage: bench/compare-redis.sh BIN_DIR [REQUESTS]
#   BIN_DIR   holds zdb-node and zdbctl from a release build (e.g. /work/target-release/release)
#   REQUESTS  per test and run, 200000 unless given (smaller for a smoke run)
# TARGETS="redis-aof redis-nopersist zdb-leader zdb-follower" (the default)
# picks the targets;
# KEEP=1 keeps the work folder (logs, CSV files) and says where it is.
# SERVER_CPUS=0.5 (say) runs every server process (each redis-server, each
# zdb-node) in a CPU cgroup of its own capped at that many CPUs (needs
# root), as servers on machines of their own would be: without it, all of
# them and redis-benchmark share this machine's cores.
# Needs redis-server and redis-benchmark (Debian: redis-server redis-tools)
# and python3 (the table).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BIN_DIR [REQUESTS]" >&2
  exit 2
fi
bin=$1 requests=${2:-200000}
targets=${TARGETS:-redis-aof redis-nopersist zdb-leader zdb-follower}
case "$requests" in ''|*[!0-9]*) echo "REQUESTS must be a number, not $requests" >&2; exit 2 ;; esac

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')(apt-get install redis-server redis-tools python3)" >&2
  exit 1
fi
if [[ " $targets " == *" zdb-"* ]]; then
  for tool in zdb-node zdbctl; do
    [ -x "$bin/$tool" ] || { echo "$bin/$tool is missing: build it (cargo build --release --bins)" >&2; exit 1; }
  done
  "$bin/zdb-node" --help | grep -q -- --redis-listen ||
    { echo "$bin/zdb-node has no --redis-listen: build a zdb-node with the Redis front end" >&2; exit 1; }
fi

work=$(mktemp -d)
source "$(dirname "$0")/lib/cpu-cap.sh"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  remove_cpu_caps
  if [ "${KEEP:-}" = 1 ]; then echo "logs and results are in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "$what did not come up; logs are in $work" >&2
  KEEP=1
  exit 1
}

answers() { # port: a write through it is applied
  [ "$(redis-cli -h 127.0.0.1 -p "$1" SET bench:ready yes 2>/dev/null)" = OK ]
}

# Caps process $1 (named $2) at SERVER_CPUS, when given.
capped() {
  [ -n "${SERVER_CPUS:-}" ] && cap_cpu "$1" "compare-redis-$$-$2" "$SERVER_CPUS"
  return 0
}

declare -A port
start_redis() { # name, persistence flags...
  local name=$1; shift
  port[$name]=$(free_port)
  mkdir -p "$work/$name"
  redis-server --port "${port[$name]}" --bind 127.0.0.1 --dir "$work/$name" --daemonize no \
    --save '' "$@" > "$work/$name.log" 2>&1 &
  capped $! "$name"
  wait_for "$name (redis-server on ${port[$name]})" answers "${port[$name]}"
}

start_zdb() {
  local i peers="" grpc=() status=() redis=()
  for i in 1 2 3; do
    grpc[$i]=$(free_port); status[$i]=$(free_port); redis[$i]=$(free_port)
    peers+="${peers:+,}$i=127.0.0.1:${grpc[$i]}"
  done
  for i in 1 2 3; do
    "$bin/zdb-node" --id "$i" --cluster-id bench-redis --peers "$peers" \
      --listen "127.0.0.1:${grpc[$i]}" --status-listen "127.0.0.1:${status[$i]}" \
      --redis-listen "127.0.0.1:${redis[$i]}" --data "$work/zdb/node-$i" \
      > "$work/zdb-$i.log" 2>&1 &
    capped $! "zdb-$i"
  done
  for i in 1 2 3; do
    wait_for "zdb node $i (Redis port ${redis[$i]})" answers "${redis[$i]}"
  done
  # The keys live in the cluster's one range: its leader, and another node.
  local leader
  leader=$("$bin/zdbctl" --endpoints "127.0.0.1:${grpc[1]}" status | awk 'NR > 1 && $5 != "" { print $5; exit }')
  case "$leader" in 1|2|3) ;; *) echo "no leader found (zdbctl status); logs are in $work" >&2; KEEP=1; exit 1 ;; esac
  port[zdb-leader]=${redis[$leader]}
  port[zdb-follower]=${redis[$(( leader % 3 + 1 ))]}
  echo "zdb: node $leader leads; the follower is node $(( leader % 3 + 1 ))" >&2
}

for target in $targets; do
  case "$target" in
    redis-aof) start_redis redis-aof --appendonly yes --appendfsync always ;;
    redis-nopersist) start_redis redis-nopersist --appendonly no ;;
    zdb-leader|zdb-follower) [ -n "${port[$target]:-}" ] || start_zdb ;;
    *) echo "unknown target $target (TARGETS takes redis-aof, redis-nopersist, zdb-leader, zdb-follower)" >&2; exit 2 ;;
  esac
done
echo "$(redis-server --version | cut -d' ' -f1-3); $requests requests per test, 50 clients, 100-byte values, 100,000 keys${SERVER_CPUS:+; every server capped at $SERVER_CPUS CPU}" >&2

for pipeline in 1 16; do
  for target in $targets; do
    echo "== $target, pipeline $pipeline" >&2
    out="$work/$target-P$pipeline.csv"
    # In the background, so that a signal stops the script at once.
    redis-benchmark -h 127.0.0.1 -p "${port[$target]}" -t set,get,incr,mset \
      -n "$requests" -c 50 -d 100 -r 100000 -P "$pipeline" -q --csv \
      > "$out" 2> "$work/$target-P$pipeline.err" &
    if ! wait $!; then
      echo "redis-benchmark against $target failed (pipeline $pipeline):" >&2
      tail -5 "$work/$target-P$pipeline.err" >&2
    fi
  done
done

python3 - "$work" "$targets" <<'EOF'
import csv, os, sys
work, targets = sys.argv[1], sys.argv[2].split()
rows, tests = {}, []
for pipeline in (1, 16):
    for target in targets:
        path = os.path.join(work, f"{target}-P{pipeline}.csv")
        if not os.path.exists(path):
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                key = (row["test"], pipeline)
                if key not in tests:
                    tests.append(key)
                rows[key + (target,)] = row
width = max(12, *(len(t) + 1 for t in targets))
print("\nrequests per second (p50 latency in ms), redis-benchmark -c 50 -d 100 -r 100000")
print(f"{'test':<16}{'pipeline':>9}" + "".join(f"{t:>{width + 9}}" for t in targets))
for test, pipeline in sorted(tests, key=lambda k: (k[1], tests.index(k))):
    cells = []
    for target in targets:
        row = rows.get((test, pipeline, target))
        cells.append(f"{float(row['rps']):>{width}.0f} ({float(row['p50_latency_ms']):5.2f})" if row else f"{'-':>{width + 8}}")
    print(f"{test:<16}{pipeline:>9}" + "".join(f" {cell}" for cell in cells))
EOF
