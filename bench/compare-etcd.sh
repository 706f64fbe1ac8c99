#!/usr/bin/env bash
# zdb against etcd on this machine, in one run, with the same workload code:
# starts an etcd cluster and a zdb local cluster of the same size on
# 127.0.0.1 (both fsync before acknowledging), loads the same records into
# each, runs each workload at each concurrency against both, prints a
# side-by-side table with the ratio zdb/etcd, and stops everything.
#
# Usage: bench/compare-etcd.sh [--nodes N] [--workloads "a b c d e f"]
#          [--clients "64"] [--duration SECONDS] [--records N] [--value-size BYTES]
#          [--out DIR] [--zdb-bin DIR]
# --zdb-bin runs the zdb-node, zdbctl and zdb-bench found in DIR instead of
# building this checkout (to compare two builds on the same machine).
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=3 workloads="a b c d e f" clients="64" duration=20 records=100000 value_size=100 out="" zdb_bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --records) records=$2; shift 2 ;;
    --value-size) value_size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --zdb-bin) zdb_bin=$2; shift 2 ;;
    *) echo "unknown option $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done

command -v python3 >/dev/null || { echo "python3 is needed to print the table: apt-get install python3" >&2; exit 1; }
missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "etcd: $(etcd --version | head -1)" >&2

if [ -n "$zdb_bin" ]; then
  bin=$zdb_bin
else
  target=${CARGO_TARGET_DIR:-target}
  cargo build --release -p zdb-node -p zdbctl -p zdb-bench >&2
  bin="$target/release"
fi
work=$(mktemp -d)
results=${out:-$work/results}
mkdir -p "$results"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work/etcd" "$work/zdb"
  [ -n "$out" ] || rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "$what did not come up; logs are in $work" >&2
  exit 1
}

# --- etcd: N members, default durability (WAL fsync before acknowledging).
initial="" etcd_endpoints=""
declare -a client_ports peer_ports
for i in $(seq 1 "$nodes"); do
  client_ports[$i]=$(free_port); peer_ports[$i]=$(free_port)
  initial+="${initial:+,}e$i=http://127.0.0.1:${peer_ports[$i]}"
  etcd_endpoints+="${etcd_endpoints:+,}127.0.0.1:${client_ports[$i]}"
done
for i in $(seq 1 "$nodes"); do
  mkdir -p "$work/etcd/$i"
  etcd --name "e$i" --data-dir "$work/etcd/$i" \
    --listen-client-urls "http://127.0.0.1:${client_ports[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${client_ports[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
    --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token zdb-bench \
    --logger zap --log-level error > "$work/etcd-$i.log" 2>&1 &
done
wait_for "etcd" env ETCDCTL_API=3 etcdctl --endpoints "$etcd_endpoints" endpoint health

# --- zdb: N nodes in local mode (fsync of every Raft write batch).
"$bin/zdbctl" local up --nodes "$nodes" --data "$work/zdb" > "$work/zdb.log" 2>&1 &
wait_for "zdb" test -s "$work/zdb/endpoints"
zdb_endpoints=$(cat "$work/zdb/endpoints")
wait_for "zdb" "$bin/zdbctl" --endpoints "$zdb_endpoints" put bench-ready yes
echo "etcd at $etcd_endpoints; zdb at $zdb_endpoints; results in $results" >&2

bench() { # target endpoints workload clients extra-args...
  local system=$1 endpoints=$2 workload=$3 c=$4; shift 4
  echo "== $system workload $workload, $c clients" >&2
  "$bin/zdb-bench" --target "$system" --endpoints "$endpoints" --workload "$workload" \
    --records "$records" --value-size "$value_size" --clients "$c" --duration "$duration" \
    --json "$results/$system-$workload-$c.json" "$@" | tail -n +2 >&2
}

load_flag=--load
for workload in $workloads; do
  for c in $clients; do
    # Both systems load the same records before the first run; alternating
    # runs keep slow drift of the machine from favouring one side.
    bench etcd "$etcd_endpoints" "$workload" "$c" $load_flag
    bench zdb "$zdb_endpoints" "$workload" "$c" $load_flag
    load_flag=""
  done
done

python3 - "$results" "$workloads" "$clients" "$nodes" <<'EOF'
import json, os, sys
results, workloads, clients, nodes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
def load(system, w, c):
    with open(os.path.join(results, f"{system}-{w}-{c}.json")) as f:
        return json.load(f)
print(f"\nzdb vs etcd, {nodes} node(s) each on 127.0.0.1, same machine, same workload code")
head = f"{'workload':<9}{'clients':>8}{'op':>7}{'zdb ops/s':>12}{'etcd ops/s':>12}{'zdb/etcd':>9}" \
       f"{'zdb p50':>9}{'etcd p50':>9}{'zdb p99':>9}{'etcd p99':>9}{'zdb p999':>10}{'etcd p999':>10}  (ms)"
print(head)
for w in workloads:
    for c in clients:
        zdb, etcd = load("zdb", w, c), load("etcd", w, c)
        ratio = zdb["throughput_ops"] / max(etcd["throughput_ops"], 1e-9)
        first = True
        for op in sorted(set(zdb["operations"]) | set(etcd["operations"])):
            z, e = zdb["operations"].get(op, {}), etcd["operations"].get(op, {})
            ms = lambda d, k: f"{d.get(k, 0) / 1000:.2f}" if d else "-"
            errors = z.get("errors", 0) + e.get("errors", 0)
            zt, et = zdb["throughput_ops"], etcd["throughput_ops"]
            cells = [f"{zt:.0f}", f"{et:.0f}", f"{ratio:.2f}x"] if first else ["", "", ""]
            note = f"  errors zdb {z.get('errors', 0)} etcd {e.get('errors', 0)}" if errors else ""
            print(f"{w if first else '':<9}{c if first else '':>8}{op:>7}"
                  f"{cells[0]:>12}{cells[1]:>12}{cells[2]:>9}"
                  f"{ms(z, 'p50_us'):>9}{ms(e, 'p50_us'):>9}{ms(z, 'p99_us'):>9}{ms(e, 'p99_us'):>9}"
                  f"{ms(z, 'p999_us'):>10}{ms(e, 'p999_us'):>10}{note}")
            first = False
EOF
