#!/usr/bin/env bash
# System calls, context switches and CPU per relayed packet of one server at a fixed rate: the
# "profile before and after" of docs/performance.md. Needs perf (linux-perf) and a built tree.
#
#   bench/syscall-profile.sh SERVER [TOPOLOGY] [RATE]
#
# SERVER is a ternd binary, or "forwarder" for ternbench's bare forwarder; TOPOLOGY peers (the
# default) or pairs; RATE own packets/s per run (default 40000 = 80k relayed/s in peers). The
# server runs on CPU 0, ternbench on CPU 1; perf counts over 3 s of a 5 s run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$repo/build}
server=$1
topology=${2:-peers}
rate=${3:-40000}
tb=$build/bench/ternbench/ternbench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
port=$((20000 + RANDOM % 5000))
cat >"$tmp/ternd.yaml" <<C
realm: bench.tern
listen: [ "udp://127.0.0.1:$port" ]
auth: { secrets: [ "bench-secret" ] }
relay: { addresses: [ 127.0.0.1 ], ports: 50000-60000, allow_peers: [ 127.0.0.0/8 ] }
limits: { max_allocations: 1000000, max_allocations_per_user: 1000000, allocation_bandwidth: 0,
          user_bandwidth: 0, unauthenticated_rate: 0 }
threads: 1
log: { level: warn }
C
extra=()
if [[ $server == forwarder ]]; then
    taskset -c 0 "$tb" forward --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
    extra=(--forwarder)
else
    taskset -c 0 "$server" --config "$tmp/ternd.yaml" >"$tmp/server.log" 2>&1 &
fi
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
sleep 0.5
taskset -c 1 "$tb" rate --server "127.0.0.1:$port" --transport udp --secret bench-secret \
    --pid "$pid" --peer "127.0.0.1:$((port + 1))" --topology "$topology" --clients 50 --size 100 \
    --warmup 1 --duration 5 --rate "$rate" "${extra[@]}" >"$tmp/run.json" &
gen=$!
sleep 1.5
perf stat -x, -p "$pid" -e raw_syscalls:sys_enter,context-switches,task-clock -- sleep 3 \
    2>"$tmp/stat"
wait $gen
python3 - "$tmp" <<'P'
import json, sys
tmp = sys.argv[1]
run = json.loads(open(f"{tmp}/run.json").read().strip().splitlines()[-1])
stat = {}
for line in open(f"{tmp}/stat"):
    f = line.split(",")
    if len(f) > 3 and f[0].replace(".", "").isdigit():
        stat[f[2]] = float(f[0])
packets = run["relayed_pps"] * 3  # perf counted 3 s
print(f"relayed/s {run['relayed_pps'] / 1e3:.1f}k  cpu/packet {run['cpu_us_per_relayed']:.2f} us  "
      f"syscalls/packet {stat.get('raw_syscalls:sys_enter', 0) / packets:.3f}  "
      f"context switches/packet {stat.get('context-switches', 0) / packets:.4f}  "
      f"rtt p50 {run['rtt_p50_us']} us")
P
