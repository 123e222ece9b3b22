#!/usr/bin/env bash
# run-e2e.sh [--browser chromium|firefox] TERND [ARGS...]: runs e2e.mjs (Chromium, the default)
# or e2e-firefox.mjs inside a network namespace of its own (loopback only), so the browser's
# mDNS/IGMP chatter and every relayed packet stay off the real interfaces. ARGS go to the script.
# The namespace and every process in it are removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
browser=chromium
if [ "${1:-}" = "--browser" ]; then
    browser=${2:?run-e2e.sh: --browser needs chromium or firefox}
    shift 2
fi
case "$browser" in
    chromium) script=e2e.mjs; driver=playwright-core; limit=200 ;;
    firefox) script=e2e-firefox.mjs; driver=puppeteer-core; limit=150 ;;
    *) echo "run-e2e.sh: unknown browser $browser (chromium or firefox)" >&2; exit 2 ;;
esac
ternd=$1
shift

if [ ! -d "$here/node_modules/$driver" ]; then
    echo "e2e: $here/node_modules/$driver missing; run 'make e2e-deps' (npm ci)" >&2
    exit 1
fi
ns="tern-e2e-$$"
# `ip netns exec` bind-mounts the files of /etc/netns/<ns>/ over /etc, so a hosts file there maps
# names inside the namespace only; the host's /etc/hosts is untouched.
etc="/etc/netns/$ns"
made_netns_etc=false
cleanup() {
    # Anything still running in the namespace was started by this run.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
    rm -rf "$etc"
    if $made_netns_etc; then rmdir /etc/netns 2>/dev/null || true; fi
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
# The test's host names, for this namespace only. Firefox refuses turns: with an IP address: one
# TLS host name per family (e2e-firefox.mjs). Chromium's shared-port case loads its page from a
# web name and relays through a TURN name on the same port (e2e.mjs; its --host-resolver-rules
# map both as well). The host's own entries stay: Firefox looks up this machine's name at start,
# and without an entry that lookup waits for a DNS server that cannot be reached from here.
[ -d /etc/netns ] || made_netns_etc=true
mkdir -p "$etc"
{ cat /etc/hosts 2>/dev/null || true
  printf '%s\n' '127.0.0.1 localhost turn4.e2e.tern.test www.e2e.tern.test turn.e2e.tern.test' \
      '::1 localhost' 'fd00:77::1 turn6.e2e.tern.test'
} >"$etc/hosts"
timeout "$limit" ip netns exec "$ns" node "$here/$script" --ternd "$ternd" "$@"
