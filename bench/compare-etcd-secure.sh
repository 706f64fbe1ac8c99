#!/usr/bin/env bash
# What TLS and authentication cost, on etcd and on zdb, in one run: starts
# four fresh clusters of the same size on 127.0.0.1 (etcd and zdb in
# plaintext, etcd and zdb with TLS and authentication), loads the same
# records into each, runs each workload against the four in turn, prints one
# table with the cost of security on each system, and stops everything. All
# four fsync before acknowledging, as in compare-etcd.sh.
#
# Secure etcd: TLS for clients and peers with client certificates required
# (--cert-file, --trusted-ca-file, --client-cert-auth and the --peer-*
# equivalents), https URLs, user root with role root, auth enabled; the load
# generator presents client.root.crt, whose common name etcd takes as the user.
# Secure zdb: `zdbctl local up --secure` (TLS between the nodes and to
# clients, authentication on); the load generator logs in as root with the
# same client.root.crt. One CA from `zdbctl cert` signs everything; the node
# certificate (SANs localhost, 127.0.0.1) serves both systems.
#
# Usage: bench/compare-etcd-secure.sh [--nodes N] [--workloads "a c"]
#          [--clients "64"] [--duration SECONDS] [--records N] [--value-size BYTES]
#          [--out DIR] [--zdb-bin DIR]
# --zdb-bin runs the zdb-node, zdbctl and zdb-bench found in DIR instead of
# building this checkout.
set -euo pipefail
unset ZDB_CA_CERT ZDB_CERT ZDB_KEY ZDB_USER ZDB_PASSWORD  # each call below says how it connects
cd "$(dirname "$0")/.."

nodes=3 workloads="a c" clients="64" duration=20 records=100000 value_size=100 out="" zdb_bin=""
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
"$bin/zdbctl" local up --help | grep -q -- --secure ||
  { echo "$bin/zdbctl has no 'local up --secure': build a zdbctl with security (issue 19)" >&2; exit 1; }
"$bin/zdb-bench" --help | grep -q -- --ca-cert ||
  { echo "$bin/zdb-bench has no --ca-cert: build a zdb-bench with TLS support" >&2; exit 1; }

work=$(mktemp -d)
results=${out:-$work/results}
mkdir -p "$results"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"/etcd-plain "$work"/etcd-tls "$work"/zdb-plain "$work"/zdb-tls
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

# --- One CA for both systems; root's password for zdb and etcd.
certs=$work/certs
"$bin/zdbctl" cert create-ca --certs-dir "$certs" >> "$work/certs.log"
"$bin/zdbctl" cert create-node --certs-dir "$certs" >> "$work/certs.log"
"$bin/zdbctl" cert create-client root --certs-dir "$certs" >> "$work/certs.log"
(umask 077; python3 -c 'import secrets; print(secrets.token_hex(24))' > "$work/root.password")
as_root=(--cacert "$certs/ca.crt" --cert "$certs/client.root.crt" --key "$certs/client.root.key")

# --- etcd: N members, default durability (WAL fsync before acknowledging).
declare -A etcd_at zdb_at
start_etcd() { # plain|tls
  local mode=$1 scheme=http initial="" endpoints="" i
  local -a cport pport tls=()
  if [ "$mode" = tls ]; then
    scheme=https
    tls=(--cert-file "$certs/node.crt" --key-file "$certs/node.key"
         --trusted-ca-file "$certs/ca.crt" --client-cert-auth
         --peer-cert-file "$certs/node.crt" --peer-key-file "$certs/node.key"
         --peer-trusted-ca-file "$certs/ca.crt" --peer-client-cert-auth)
  fi
  for i in $(seq 1 "$nodes"); do
    cport[$i]=$(free_port); pport[$i]=$(free_port)
    initial+="${initial:+,}e$i=$scheme://127.0.0.1:${pport[$i]}"
    endpoints+="${endpoints:+,}$scheme://127.0.0.1:${cport[$i]}"
  done
  for i in $(seq 1 "$nodes"); do
    mkdir -p "$work/etcd-$mode/$i"
    etcd --name "e$i" --data-dir "$work/etcd-$mode/$i" \
      --listen-client-urls "$scheme://127.0.0.1:${cport[$i]}" \
      --advertise-client-urls "$scheme://127.0.0.1:${cport[$i]}" \
      --listen-peer-urls "$scheme://127.0.0.1:${pport[$i]}" \
      --initial-advertise-peer-urls "$scheme://127.0.0.1:${pport[$i]}" \
      --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "zdb-bench-$mode" \
      "${tls[@]}" --logger zap --log-level error > "$work/etcd-$mode-$i.log" 2>&1 &
  done
  etcd_at[$mode]=$endpoints
}
start_etcd plain
wait_for "etcd (plaintext)" env ETCDCTL_API=3 etcdctl --endpoints "${etcd_at[plain]}" endpoint health
start_etcd tls
etcdctl_tls() { ETCDCTL_API=3 etcdctl --endpoints "${etcd_at[tls]}" "${as_root[@]}" "$@"; }
wait_for "etcd (TLS)" etcdctl_tls endpoint health
{
  etcdctl_tls user add root --interactive=false --new-user-password "$(cat "$work/root.password")"
  etcdctl_tls role add root
  etcdctl_tls user grant-role root root
  etcdctl_tls auth enable
  etcdctl_tls put bench-ready yes
} > "$work/etcd-auth.log" 2>&1 || { echo "cannot turn etcd's authentication on; see $work/etcd-auth.log" >&2; exit 1; }
# Authentication really is on: a certificate naming no user is refused.
if ETCDCTL_API=3 etcdctl --endpoints "${etcd_at[tls]}" --cacert "$certs/ca.crt" \
    --cert "$certs/node.crt" --key "$certs/node.key" put bench-check no >/dev/null 2>&1; then
  echo "etcd accepted a write from a certificate naming no user: authentication is not on" >&2; exit 1
fi

# --- zdb: N nodes in local mode (fsync of every Raft write batch); the
# secure one reuses the certificates above (a cluster folder with certs/
# and root.password runs with them).
"$bin/zdbctl" local up --nodes "$nodes" --data "$work/zdb-plain" > "$work/zdb-plain.log" 2>&1 &
mkdir -p "$work/zdb-tls"
cp -r "$certs" "$work/zdb-tls/certs"
(umask 077; cp "$work/root.password" "$work/zdb-tls/root.password")
"$bin/zdbctl" local up --secure --nodes "$nodes" --data "$work/zdb-tls" > "$work/zdb-tls.log" 2>&1 &
wait_for "zdb (plaintext)" test -s "$work/zdb-plain/endpoints"
wait_for "zdb (TLS)" test -s "$work/zdb-tls/endpoints"
zdb_at[plain]=$(cat "$work/zdb-plain/endpoints")
zdb_at[tls]=$(cat "$work/zdb-tls/endpoints")
as_zdb_root=(--ca-cert "$certs/ca.crt" --cert "$certs/client.root.crt" --key "$certs/client.root.key")
wait_for "zdb (plaintext)" "$bin/zdbctl" --endpoints "${zdb_at[plain]}" put bench-ready yes
wait_for "zdb (TLS)" "$bin/zdbctl" --endpoints "${zdb_at[tls]}" "${as_zdb_root[@]}" put bench-ready yes
# Authentication really is on: a client without a user is refused.
if "$bin/zdbctl" --endpoints "${zdb_at[tls]}" --ca-cert "$certs/ca.crt" --timeout 5 put bench-check no >/dev/null 2>&1; then
  echo "zdb accepted a write from a client without a user: authentication is not on" >&2; exit 1
fi
echo "etcd at ${etcd_at[plain]} and ${etcd_at[tls]} (TLS); zdb at ${zdb_at[plain]} and ${zdb_at[tls]} (TLS); results in $results" >&2

bench() { # system mode workload clients extra-args...
  local system=$1 mode=$2 workload=$3 c=$4 endpoints; shift 4
  local -a security=()
  if [ "$system" = etcd ]; then endpoints=${etcd_at[$mode]}; else endpoints=${zdb_at[$mode]}; fi
  [ "$mode" = plain ] || security=("${as_zdb_root[@]}")
  echo "== $system ($mode) workload $workload, $c clients" >&2
  "$bin/zdb-bench" --target "$system" --endpoints "$endpoints" --workload "$workload" \
    --records "$records" --value-size "$value_size" --clients "$c" --duration "$duration" \
    --json "$results/$system-$mode-$workload-$c.json" "${security[@]}" "$@" | tail -n +2 >&2
}

load_flag=--load
for workload in $workloads; do
  for c in $clients; do
    # Every cluster loads the same records before its first run; alternating
    # runs keep slow drift of the machine from favouring one cell.
    for run in "etcd plain" "zdb plain" "etcd tls" "zdb tls"; do
      # shellcheck disable=SC2086 # $run is "system mode"; $load_flag may be empty
      bench $run "$workload" "$c" $load_flag
    done
    load_flag=""
  done
done

python3 - "$results" "$workloads" "$clients" "$nodes" <<'EOF'
import json, os, sys
results, workloads, clients, nodes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
def load(system, mode, w, c):
    with open(os.path.join(results, f"{system}-{mode}-{w}-{c}.json")) as f:
        return json.load(f)
cells = [("etcd", "plain"), ("etcd", "tls"), ("zdb", "plain"), ("zdb", "tls")]
print(f"\nTLS + authentication against plaintext, etcd and zdb, {nodes} node(s) each on 127.0.0.1, same run")
print(f"{'workload':<9}{'clients':>8}{'op':>7}"
      f"{'etcd ops/s':>12}{'etcd TLS':>10}{'cost':>7}{'zdb ops/s':>11}{'zdb TLS':>9}{'cost':>7}"
      f"{'etcd p99':>10}{'etcd TLS':>10}{'zdb p99':>9}{'zdb TLS':>9}  (p99 in ms; TLS = TLS + auth)")
for w in workloads:
    for c in clients:
        r = {cell: load(*cell, w, c) for cell in cells}
        ops = {cell: r[cell]["throughput_ops"] for cell in cells}
        cost = lambda system: f"{(ops[(system, 'tls')] / max(ops[(system, 'plain')], 1e-9) - 1) * 100:+.0f}%"
        first = True
        for op in sorted(set().union(*(r[cell]["operations"] for cell in cells))):
            stats = {cell: r[cell]["operations"].get(op, {}) for cell in cells}
            p99 = [f"{s['p99_us'] / 1000:.2f}" if s else "-" for s in stats.values()]
            errors = {cell: s.get("errors", 0) for cell, s in stats.items() if s.get("errors", 0)}
            note = "  errors " + ", ".join(f"{s} {m} {n}" for (s, m), n in errors.items()) if errors else ""
            head = [f"{ops[cells[0]]:.0f}", f"{ops[cells[1]]:.0f}", cost("etcd"),
                    f"{ops[cells[2]]:.0f}", f"{ops[cells[3]]:.0f}", cost("zdb")] if first else [""] * 6
            print(f"{w if first else '':<9}{c if first else '':>8}{op:>7}"
                  f"{head[0]:>12}{head[1]:>10}{head[2]:>7}{head[3]:>11}{head[4]:>9}{head[5]:>7}"
                  f"{p99[0]:>10}{p99[1]:>10}{p99[2]:>9}{p99[3]:>9}{note}")
            first = False
EOF
