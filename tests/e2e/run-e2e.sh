#!/usr/bin/env bash
# run-e2e.sh TERND [ARGS...]: runs e2e.mjs inside a network namespace of its own (loopback only),
# so Chromium's mDNS/IGMP chatter and every relayed packet stay off the real interfaces.
# The namespace and every process in it are removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ternd=$1
shift

if [ ! -d "$here/node_modules/playwright-core" ]; then
    echo "e2e: $here/node_modules missing; run 'make e2e-deps' (npm ci)" >&2
    exit 1
fi
ns="tern-e2e-$$"
cleanup() {
    # Anything still running in the namespace was started by this run.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
# A veth pair inside the namespace with default routes: Chromium only gathers on IPv6 when the
# host has an IPv6 route out. Nothing leaves the namespace: both ends are in it.
in_ns ip link add e2e0 type veth peer name e2e1
in_ns ip addr add 10.77.0.1/24 dev e2e0
in_ns ip addr add 10.77.0.2/24 dev e2e1
in_ns ip -6 addr add fd00:77::1/64 dev e2e0 nodad
in_ns ip -6 addr add fd00:77::2/64 dev e2e1 nodad
in_ns ip link set e2e0 up
in_ns ip link set e2e1 up
in_ns ip route add default dev e2e0
in_ns ip -6 route add default dev e2e0
timeout 175 ip netns exec "$ns" node "$here/e2e.mjs" --ternd "$ternd" "$@"
