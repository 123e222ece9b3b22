#!/usr/bin/env bash
# The install test of tern's Debian package (make test-package): installs the .deb into a fresh
# Debian 12 root made with debootstrap and checks what an operator gets there: files, user,
# secret, admin token, conffiles; lintian and systemd-analyze verify; ternd started with the
# unit's own command lines relaying coturn's test client; a broken config refused by
# ExecStartPre; the certbot deploy hook with a live certificate reload; the root booted with
# systemd-nspawn so systemd itself runs the unit (readiness, sandbox, reload through the hook, a
# refused start, the admin API through ternctl, usage records rotated by the logrotate rule,
# drain on stop); there, an upgrade that keeps an edited tern.yaml and restarts the relay, and
# a purge that stops it and removes everything.
#
# usage: tests/package/test-package.sh BUILD_DEB    (the tree `make deb` built and packed)
# Needs root (debootstrap, chroot, mount, systemd-nspawn) and the network to the Debian mirror.
# Uses UDP and TCP port 3478 and TCP ports 5349 and 9641 on the host (ternd in the root shares
# the host's network).
# Environment: TERN_TEST_MIRROR overrides the mirror; TERN_TEST_KEEP=1 keeps the scratch root;
# TERN_TEST_ROOT_TEMPLATE=DIR copies DIR (an untouched debootstrap root of bookworm) instead of
# running debootstrap, to iterate faster.
set -euo pipefail
set -E

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DEB" >&2
    exit 2
fi
build=$(realpath "$1")
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
arch=$(dpkg --print-architecture)
deb="$build/tern_${version}_${arch}.deb"
upgrade_version="${version}+test1"

[ "$(id -u)" = 0 ] || { echo "$0: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
[ -f "$deb" ] || { echo "$0: no package at $deb; run make deb first" >&2; exit 2; }

work=$(mktemp -d /var/tmp/tern-package-test.XXXXXX)
root="$work/root"
ternd_pid=""
peer_pid=""
nspawn_pid=""
leader=""
machine=tern-package-test
current=""
results=()
started=$SECONDS

# ---------------------------------------------------------------------------------------------
# Steps, checks, cleanup

step() {
    current=$1
    step_started=$SECONDS
    echo
    echo "=== $current"
}
pass() {
    local line
    line=$(printf 'PASS  %-28s %4d s' "$current" $((SECONDS - step_started)))
    echo "$line"
    results+=("$line")
    current=""
}
fail() {
    echo "  FAILED: $*" >&2
    exit 1
}
quiet() { "$@" >/dev/null; }
# check DESCRIPTION COMMAND...: runs the command, fails the step when it fails.
check() {
    local what=$1
    shift
    if "$@"; then
        echo "  ok: $what"
    else
        fail "$what"
    fi
}

# Stops a process this script started: TERM, then KILL after 5 s.
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Everything mounted under the root, deepest first (debootstrap may leave its own mounts).
mounts_under_root() {
    findmnt -rn -o TARGET | awk -v r="$root" 'index($0, r "/") == 1 || $0 == r' | sort -r
}

cleanup() {
    stop_pid "$ternd_pid"
    stop_pid "$peer_pid"
    # TERM makes nspawn shut the container down; it has 30 s before KILL.
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 300); do
            kill -0 "$nspawn_pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    stop_pid "$nspawn_pid"
    local m
    for m in $(mounts_under_root); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
    if [ "${TERN_TEST_KEEP:-0}" = 1 ]; then
        echo "kept $work"
    elif [ -n "$(mounts_under_root)" ]; then
        # rm -rf through a leftover bind mount would delete the host's files.
        echo "NOT removing $work: still mounted: $(mounts_under_root | tr '\n' ' ')" >&2
    else
        rm -rf --one-file-system "$work"
    fi
}

on_exit() {
    local rc=$?
    trap - EXIT ERR
    if [ -n "$current" ]; then
        local line
        line=$(printf 'FAIL  %-28s %4d s' "$current" $((SECONDS - step_started)))
        results+=("$line")
        if [ -n "$leader" ]; then
            echo "--- journalctl -u tern.service (last 30 lines):" >&2
            insystemd 10 journalctl -u tern.service --no-pager | tail -n 30 >&2 || true
        elif [ -s "$work/ternd.log" ]; then
            echo "--- ternd output (last 30 lines):" >&2
            tail -n 30 "$work/ternd.log" >&2
        fi
        rc=1
    fi
    cleanup
    echo
    echo "=== package test summary ($((SECONDS - started)) s)"
    printf '%s\n' "${results[@]}"
    if [ "$rc" = 0 ]; then echo "package test: PASS"; else echo "package test: FAIL"; fi
    exit "$rc"
}
trap on_exit EXIT
trap 'echo "  command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Running things in the root

# inroot SECONDS COMMAND...: COMMAND in the root as root, with a clean environment.
inroot() {
    local seconds=$1
    shift
    timeout "$seconds" chroot "$root" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# The unit's user, group and command lines, read from the installed unit, so the test runs
# what systemd would run.
unit_value() {
    sed -n "s/^$1=//p" "$root/lib/systemd/system/tern.service" | tail -n 1
}
read_unit() {
    unit_user=$(unit_value User)
    unit_group=$(unit_value Group)
    read -r -a exec_start_pre <<<"$(unit_value ExecStartPre)"
    read -r -a exec_start <<<"$(unit_value ExecStart)"
    [ -n "$unit_user" ] && [ -n "$unit_group" ] && [ ${#exec_start[@]} -gt 0 ] &&
        [ ${#exec_start_pre[@]} -gt 0 ]
}

# as_unit_user SECONDS COMMAND...: COMMAND in the root as the unit's User/Group, without
# capabilities or a way to regain privileges (NoNewPrivileges). Ports here are above 1024, so
# the unit's CAP_NET_BIND_SERVICE is not needed.
as_unit_user() {
    local seconds=$1
    shift
    inroot "$seconds" setpriv --reuid="$unit_user" --regid="$unit_group" --init-groups \
        --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"
}

# insystemd SECONDS COMMAND...: COMMAND inside the booted container (its mount, PID, network
# and other namespaces), as root.
insystemd() {
    local seconds=$1
    shift
    timeout "$seconds" nsenter --target "$leader" --mount --uts --ipc --net --pid --cgroup \
        /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}
unit_property() { insystemd 10 systemctl show --value -p "$1" tern.service; }
unit_is() { [ "$(insystemd 10 systemctl is-active tern.service)" = "$1" ]; }
restart_refused() { ! insystemd 60 systemctl restart tern.service 2>/dev/null; }
journal_has() {
    local log
    log=$(insystemd 30 journalctl -u tern.service --no-pager -o cat)
    grep -q -- "$1" <<<"$log"
}

# Replaces /etc/tern/tern.yaml in a unit command line with another file.
with_config() {
    local file=$1
    shift
    local arg
    for arg in "$@"; do
        if [ "$arg" = /etc/tern/tern.yaml ]; then printf '%s\n' "$file"; else printf '%s\n' "$arg"; fi
    done
}

# start_ternd: ExecStartPre, then ExecStart in the background, as the unit would; waits for the
# banner ternd prints once every listener is bound.
start_ternd() {
    echo "  \$ ${exec_start_pre[*]}"
    as_unit_user 30 "${exec_start_pre[@]}" | sed 's/^/  /' || fail "ExecStartPre refused the configuration"
    echo "  \$ ${exec_start[*]}"
    : >"$work/ternd.log"
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        setpriv --reuid="$unit_user" --regid="$unit_group" --init-groups --no-new-privs \
        --inh-caps=-all --bounding-set=-all -- "${exec_start[@]}" >>"$work/ternd.log" 2>&1 &
    ternd_pid=$!
    for _ in $(seq 100); do
        grep -q "is listening on" "$work/ternd.log" && return 0
        kill -0 "$ternd_pid" 2>/dev/null || fail "ternd exited at start"
        sleep 0.1
    done
    fail "ternd did not report its listeners within 10 s"
}

# SIGTERM drains (the uclient runs leave allocations behind), a second SIGTERM stops at once.
stop_ternd() {
    kill -TERM "$ternd_pid"
    sleep 0.5
    kill -TERM "$ternd_pid" 2>/dev/null || true
    local rc=0
    for _ in $(seq 50); do
        kill -0 "$ternd_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$ternd_pid" 2>/dev/null && fail "ternd still running 5 s after a second SIGTERM"
    wait "$ternd_pid" || rc=$?
    ternd_pid=""
    mv "$work/ternd.log" "$work/ternd.previous.log"
    check "ternd exited 0 after SIGTERM, SIGTERM" [ "$rc" = 0 ]
}

port_free() {  # port_free udp|tcp PORT
    local flag=-u
    [ "$1" = tcp ] && flag=-t
    [ -z "$(ss -Hln "$flag" "sport = :$2")" ]
}

# turnutils_uclient's totals as "sent received lost", from its final lines (the per-second
# progress lines carry msz=, the totals line does not).
uclient_totals() {
    local text
    text=$(cat "$1")
    local totals='start_mclient: tot_send_msgs=([0-9]+), tot_recv_msgs=([0-9]+)'
    local sent="" recv="" lost=""
    while IFS= read -r line; do
        if [[ $line =~ $totals ]]; then
            sent=${BASH_REMATCH[1]}
            recv=${BASH_REMATCH[2]}
        elif [[ $line =~ Total\ lost\ packets\ ([0-9]+) ]]; then
            lost=${BASH_REMATCH[1]}
        fi
    done <<<"$text"
    echo "$sent $recv $lost"
}

# relay_check NAME UCLIENT-OPTIONS...: 2 clients x 50 messages relayed through ternd to the
# echo peer and back; every one must come back. Authenticates with the packaged secret unless
# the options carry a credential.
relay_check() {
    local name=$1
    shift
    local out="$work/uclient-${name//[^a-z0-9]/-}.log" sent recv lost
    local auth=(-W "$secret" -u package-test)
    [[ " $* " == *" -w "* ]] && auth=()
    timeout 60 turnutils_uclient -c -z 5 -n 50 -m 2 -l 120 -e 127.0.0.1 -r "$peer_port" \
        -p 3478 "${auth[@]}" "$@" 127.0.0.1 >"$out" 2>&1 ||
        { tail -n 20 "$out" >&2; fail "turnutils_uclient ($name) failed"; }
    read -r sent recv lost <<<"$(uclient_totals "$out")"
    [ -n "$lost" ] || { tail -n 20 "$out" >&2; fail "no uclient summary ($name)"; }
    echo "  uclient $name: sent $sent, received $recv, lost $lost"
    check "relayed over $name: all 100 messages came back, none lost" \
        test "$sent" = 100 -a "$recv" = 100 -a "$lost" = 0
}

served_fingerprint() {
    timeout 10 openssl s_client -connect 127.0.0.1:5349 -servername tern.test </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256
}

# A new self-signed certificate in certbot's layout (root-only, as certbot keeps keys).
issue_certificate() {
    local live="$root/etc/letsencrypt/live/tern.test"
    mkdir -p "$live"
    chmod 0700 "$root/etc/letsencrypt" "$root/etc/letsencrypt/live"
    (umask 077 && timeout 30 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$live/privkey.pem" -out "$live/fullchain.pem" -days 2 -subj /CN=tern.test \
        -addext subjectAltName=DNS:tern.test 2>/dev/null)
    openssl x509 -in "$live/fullchain.pem" -noout -fingerprint -sha256
}

run_deploy_hook() {
    inroot 30 RENEWED_LINEAGE=/etc/letsencrypt/live/tern.test /usr/share/tern/certbot-deploy-hook
}

mode_owner() { inroot 10 stat -c '%a %U %G' "$1"; }
no_entry() { ! grep -q "^$1:" "$root/etc/$2"; }
not_grep() { ! grep -q -- "$1"; }
not_installed() {
    local status
    status=$(installed 2>/dev/null || true)
    [[ $status != *"ok installed"* ]]
}
exited() { ! kill -0 "$1" 2>/dev/null; }
no_ternd_running() { ! insystemd 10 pgrep -x ternd >/dev/null; }
stripped() { [ "$(file -L "$@" | grep -c ', stripped')" = $# ]; }
# shellcheck disable=SC2016 # dpkg-query's ${Field}s, not the shell's
installed() { inroot 10 dpkg-query -W -f='${Status} ${Version}' tern; }
# shellcheck disable=SC2016
conffiles() { inroot 10 dpkg-query -W -f='${Conffiles}\n' tern; }

# The Debian mirror the host uses (deb822 or one-line sources), else deb.debian.org.
host_mirror() {
    local m=""
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        m=$(awk '/^URIs:/ { uri = $2 } /^Suites:/ { if ($0 ~ / bookworm( |$)/ && uri != "") { print uri; exit } }' \
            /etc/apt/sources.list.d/*.sources)
    fi
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# ---------------------------------------------------------------------------------------------

echo "package: $deb"
echo "scratch: $work"

step "lintian"
lintian_out="$work/lintian.txt"
# lintian says when it runs as root; that note is not about the package.
timeout 300 lintian --display-info --fail-on error,warning,info "$deb" >"$lintian_out" 2>&1 ||
    { cat "$lintian_out"; fail "lintian reported tags"; }
grep -v '^running with root privileges' "$lintian_out" || true
echo "  ok: no errors, warnings or info tags (overrides in packaging/lintian-overrides)"
pass

step "debootstrap"
if [ -n "${TERN_TEST_ROOT_TEMPLATE:-}" ]; then
    echo "  copying $TERN_TEST_ROOT_TEMPLATE"
    cp -a "$TERN_TEST_ROOT_TEMPLATE" "$root"
else
    mirror=${TERN_TEST_MIRROR:-$(host_mirror)}
    echo "  mirror: $mirror"
    timeout 480 debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail -n 30 "$work/debootstrap.log"; fail "debootstrap failed"; }
fi
# debootstrap may leave its own /proc or /sys mounts; start from a known state.
for m in $(mounts_under_root); do umount "$m" || umount -l "$m"; done
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
inroot 120 apt-get update -qq >"$work/apt-update.log" 2>&1 ||
    { cat "$work/apt-update.log"; fail "apt-get update in the root failed"; }
pass

step "install"
cp "$deb" "$root/tmp/"
# Depends are resolved from the mirror, which shows they are complete.
inroot 300 apt-get install -y --no-install-recommends "/tmp/$(basename "$deb")" \
    >"$work/install.log" 2>&1 </dev/null || { tail -n 30 "$work/install.log"; fail "apt-get install"; }
grep -E '^(Setting up|Unpacking) tern' "$work/install.log" | sed 's/^/  /'
check "dpkg reports tern $version installed" \
    [ "$(installed)" = "install ok installed $version" ]
check "user tern: system account, home /var/lib/tern, no login shell" \
    grep -Eq '^tern:x:[0-9]{1,3}:[0-9]{1,3}:[^:]*:/var/lib/tern:/usr/sbin/nologin$' "$root/etc/passwd"
check "group tern exists" grep -q '^tern:' "$root/etc/group"
check "/etc/tern/secrets is 0640 root:tern" [ "$(mode_owner /etc/tern/secrets)" = "640 root tern" ]
secret=$(awk '!/^#/ && NF { print; exit }' "$root/etc/tern/secrets")
check "/etc/tern/secrets holds one random secret" \
    test "$(grep -cv -e '^#' -e '^[[:space:]]*$' "$root/etc/tern/secrets")" = 1 -a "${#secret}" -ge 40
check "/etc/tern/tls is 0750 root:tern" [ "$(mode_owner /etc/tern/tls)" = "750 root tern" ]
check "/etc/tern/admin-token is 0640 root:tern" [ "$(mode_owner /etc/tern/admin-token)" = "640 root tern" ]
check "/etc/tern/admin-token holds a random token: 64 hex digits on its first line" \
    grep -Eqx '[0-9a-f]{64}' <<<"$(head -n 1 "$root/etc/tern/admin-token")"
check "/var/lib/tern is 0750 tern:tern" [ "$(mode_owner /var/lib/tern)" = "750 tern tern" ]
for f in /etc/tern/tern.yaml /etc/logrotate.d/tern; do
    check "$f is a conffile" grep -q "^ $f [0-9a-f]\{32\}" <<<"$(conffiles)"
done
for f in /usr/sbin/ternd /usr/bin/ternctl /usr/share/tern/certbot-deploy-hook; do
    check "$f is executable" [ -x "$root$f" ]
done
for f in /usr/share/man/man8/ternd.8.gz /usr/share/man/man1/ternctl.1.gz \
    /usr/share/doc/tern/copyright /usr/share/doc/tern/changelog.gz /usr/share/doc/tern/README.md \
    /usr/share/doc/tern/docs/configuration.md /lib/systemd/system/tern.service \
    /usr/share/lintian/overrides/tern; do
    check "$f" [ -s "$root$f" ]
done
check "man pages are gzip" gzip -t "$root/usr/share/man/man8/ternd.8.gz" "$root/usr/share/man/man1/ternctl.1.gz"
check "binaries are stripped" stripped "$root/usr/sbin/ternd" "$root/usr/bin/ternctl"
check "tern.service enabled for multi-user.target" \
    [ -L "$root/etc/systemd/system/multi-user.target.wants/tern.service" ]
check "ternd --version says $version" [ "$(inroot 10 ternd --version)" = "ternd $version" ]
check "ternctl --version runs" quiet inroot 10 ternctl --version
pass

step "systemd-analyze verify"
# systemd in the root: verify resolves the unit's dependencies and binaries there, and the
# systemd step boots it. logrotate for the systemd step's check of /etc/logrotate.d/tern.
inroot 300 apt-get install -y --no-install-recommends systemd logrotate \
    >"$work/install-systemd.log" 2>&1 </dev/null ||
    { tail -n 30 "$work/install-systemd.log"; fail "installing systemd and logrotate in the root"; }
analyze_out="$work/analyze.txt"
MANPATH="$root/usr/share/man" timeout 60 systemd-analyze verify --root="$root" \
    /lib/systemd/system/tern.service >"$analyze_out" 2>&1 || { cat "$analyze_out"; fail "exit status"; }
if [ -s "$analyze_out" ]; then
    cat "$analyze_out"
    fail "systemd-analyze verify printed findings"
fi
echo "  ok: systemd-analyze verify: clean"
MANPATH="$root/usr/share/man" timeout 60 systemd-analyze security --offline=yes --root="$root" \
    "$root/lib/systemd/system/tern.service" 2>&1 | sed -n 's/^→ *\(Overall exposure level[^:]*: [0-9.]* [A-Z]*\).*/  \1/p'
pass

step "config check"
check "unit names User, Group, ExecStartPre and ExecStart" read_unit
echo "  User=$unit_user Group=$unit_group"
check "the packaged tern.yaml passes ExecStartPre" quiet as_unit_user 30 "${exec_start_pre[@]}"
# Every setting the packaged file shows commented out is valid as written, so uncommenting
# one never leaves a broken file. The TLS files must exist and match for the check.
issue_certificate >/dev/null
install -d -o root -g root -m 0755 "$root/tmp/all"
cp "$root/etc/letsencrypt/live/tern.test/"*.pem "$root/tmp/all/"
chmod 0644 "$root/tmp/all/"*.pem
# relay.external_address is the one-address form of relay.external_addresses, so the two
# cannot both be set: it stays commented out here.
sed -E -e 's/^([[:space:]]*)#([[:space:]]*([a-z_0-9]+:( |$)|- "))/\1\2/' \
    -e 's/^([[:space:]]*)(external_address: )/\1#\2/' \
    -e 's|/etc/tern/tls/|/tmp/all/|' "$root/etc/tern/tern.yaml" >"$root/tmp/all/tern.yaml"
mapfile -t check_all < <(with_config /tmp/all/tern.yaml "${exec_start_pre[@]}")
check "every commented-out setting in tern.yaml is valid" quiet as_unit_user 30 "${check_all[@]}"
pass

step "relay"
for p in udp:3478 tcp:3478 tcp:5349 tcp:9641; do
    port_free "${p%%:*}" "${p##*:}" || fail "port ${p/:/ } is in use on this host; free it first"
done
# The packaged config refuses loopback peers (the default deny list); the echo peer is on
# loopback. turnutils_uclient picks channel numbers from RFC 5766's wider range, and leaves
# its allocations behind, which a stop drains for shutdown_grace: 3 s, not 30, here.
cat >>"$root/etc/tern/tern.yaml" <<'EOF'

# Added by tern's package test.
relay: { allow_peers: [ "127.0.0.0/8" ], channel_numbers: rfc5766 }
limits:
  shutdown_grace: 3
EOF
peer_port=""
for p in $(shuf -i 20000-29999 -n 20); do
    if port_free udp "$p"; then peer_port=$p; break; fi
done
[ -n "$peer_port" ] || fail "no free UDP port for the echo peer"
turnutils_peer -L 127.0.0.1 -p "$peer_port" >"$work/peer.log" 2>&1 &
peer_pid=$!
start_ternd
relay_check udp
relay_check tcp -t
# The operator's way, as in ternctl(1): a credential minted from the secrets file.
credential=$(inroot 10 sh -c "grep -m 1 -v -e '^#' -e '^\$' /etc/tern/secrets |
    ternctl credential --secret - --user alice --ttl 600")
cred_user=$(sed -n 's/^username: //p' <<<"$credential")
cred_password=$(sed -n 's/^password: //p' <<<"$credential")
check "ternctl credential minted a user name for alice" [ "${cred_user#*:}" = alice ]
relay_check "udp, ternctl credential" -u "$cred_user" -w "$cred_password"
stop_ternd
pass

step "broken config"
broken=/tmp/broken.yaml
cp "$root/etc/tern/tern.yaml" "$root$broken"
echo "  max_lifetime: -5" >>"$root$broken"
chmod 0644 "$root$broken"
broken_line=$(wc -l <"$root$broken")
mapfile -t check_broken < <(with_config "$broken" "${exec_start_pre[@]}")
rc=0
as_unit_user 30 "${check_broken[@]}" >"$work/broken.out" 2>"$work/broken.err" || rc=$?
sed 's/^/  stderr: /' "$work/broken.err"
check "ExecStartPre exits 1" [ "$rc" = 1 ]
check "stderr names the file, line $broken_line and limits.max_lifetime" \
    grep -q "^$broken:$broken_line: limits.max_lifetime: " "$work/broken.err"
pass

step "certbot deploy hook"
first=$(issue_certificate)
hook_out=$(run_deploy_hook) || fail "deploy hook failed"
echo "  hook: $hook_out"
for f in fullchain.pem privkey.pem; do
    check "/etc/tern/tls/$f is 0640 root:tern" [ "$(mode_owner "/etc/tern/tls/$f")" = "640 root tern" ]
    check "/etc/tern/tls/$f is the issued one" \
        cmp -s "$root/etc/letsencrypt/live/tern.test/$f" "$root/etc/tern/tls/$f"
done
# The documented way to turn TLS on: uncomment the tls section and a tls:// listener.
sed -i -E -e 's|^  #- "tls://0\.0\.0\.0:5349"|  - "tls://0.0.0.0:5349"|' \
    -e 's/^#tls:/tls:/' -e 's/^#(  certificate:|  private_key:)/\1/' "$root/etc/tern/tern.yaml"
start_ternd
check "ternd serves the issued certificate" [ "$(served_fingerprint)" = "$first" ]
second=$(issue_certificate)
[ "$second" != "$first" ] || fail "the renewed certificate is not new"
hook_out=$(run_deploy_hook) || fail "deploy hook failed on renewal"
check "the renewed certificate was installed" \
    cmp -s "$root/etc/letsencrypt/live/tern.test/fullchain.pem" "$root/etc/tern/tls/fullchain.pem"
check "renewal kept 0640 root:tern" [ "$(mode_owner /etc/tern/tls/privkey.pem)" = "640 root tern" ]
kill -HUP "$ternd_pid"
served=""
for _ in $(seq 50); do
    served=$(served_fingerprint || true)
    [ "$served" = "$second" ] && break
    sleep 0.2
done
check "after SIGHUP ternd serves the renewed certificate" [ "$served" = "$second" ]
stop_ternd
pass

step "systemd"
# The root boots under systemd-nspawn, sharing the host's network, and systemd runs the unit
# as installed and enabled: Type=notify readiness, the sandbox, ExecReload, ExecStartPre and
# the stop timeout are systemd's doing here, not the test's.
umount "$root/proc"
# The shipped 30 s watchdog would not fire within this step; 3 s makes a ternd that stopped
# pinging show up as a restart.
dropin="$root/etc/systemd/system/tern.service.d"
mkdir -p "$dropin"
printf '[Service]\nWatchdogSec=3s\n' >"$dropin/package-test.conf"
# The metrics endpoint, for ternctl status and drain, the admin API with the package's token,
# for ternctl sessions and revoke, and usage records in /var/log/tern, uncommented as
# documented.
sed -i -E -e 's/^#(metrics:|admin:|  token_file: |usage_records:|  file: \/var\/log\/tern\/)/\1/' \
    -e 's/^#  journal: false/  journal: true/' "$root/etc/tern/tern.yaml"
nspawn_opts=(--quiet --register=no --machine="$machine" --directory="$root" --boot)
# Without systemd as the host's init there is no manager to make a scope with; nspawn then
# stays in the test's own cgroup.
[ -d /run/systemd/system ] || nspawn_opts+=(--keep-unit)
systemd-nspawn "${nspawn_opts[@]}" >"$work/nspawn.log" 2>&1 </dev/null &
nspawn_pid=$!
# The container's init is nspawn's child once it has exec'd systemd; its manager answers a
# little later.
state=""
for _ in $(seq 300); do
    kill -0 "$nspawn_pid" 2>/dev/null || { tail -n 20 "$work/nspawn.log"; fail "systemd-nspawn exited"; }
    # (ps fails while nspawn has no child yet.)
    leader=$(ps -o pid=,comm= --ppid "$nspawn_pid" | awk '$2 == "systemd" { print $1 }' || true)
    if [ -n "$leader" ]; then
        state=$(insystemd 5 systemctl is-system-running 2>/dev/null || true)
        case $state in initializing | starting | running | degraded) break ;; esac
    fi
    sleep 0.1
done
[ -n "$leader" ] || { tail -n 20 "$work/nspawn.log"; fail "no systemd in the container after 30 s"; }
state=$(insystemd 60 systemctl is-system-running --wait || true)
echo "  container booted: $state"
case $state in
running) ;;
degraded) insystemd 10 systemctl --failed --no-legend | sed 's/^/  failed unit: /' ;;
*) tail -n 20 "$work/nspawn.log"; fail "the container did not boot" ;;
esac
check "tern.service is active (READY=1 received)" unit_is active
main_pid=$(unit_property MainPID)
echo "  $(insystemd 10 systemctl show -p StatusText -p WatchdogUSec -p ExecMainPID tern.service | tr '\n' ' ')"
check "ternd runs as $unit_user" [ "$(insystemd 10 ps -o user= -p "$main_pid")" = "$unit_user" ]
check "StateDirectory /var/lib/tern is 0750 tern:tern" [ "$(mode_owner /var/lib/tern)" = "750 tern tern" ]
check "LogsDirectory /var/log/tern is 0750 tern:tern" [ "$(mode_owner /var/log/tern)" = "750 tern tern" ]
proc_status=$(insystemd 10 cat "/proc/$main_pid/status")
# The unit grants the kernel fast path's CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON too; with the
# fast path off (the default) ternd drops them at start. The bounding set holds at most the
# unit's four (the container's own bounding set may hold fewer).
cap_of() { awk -v f="$1:" '$1 == f { print $2 }' <<<"$proc_status"; }
capabilities_as_the_unit_says() {
    echo "  CapEff $(cap_of CapEff) CapPrm $(cap_of CapPrm) CapBnd $(cap_of CapBnd)"
    [ "$(cap_of CapEff)" = 0000000000000400 ] && [ "$(cap_of CapPrm)" = 0000000000000400 ] &&
        [ $((0x$(cap_of CapBnd) & ~0xc000001400)) -eq 0 ] &&
        [ $((0x$(cap_of CapBnd) & 0x400)) -ne 0 ]
}
check "only CAP_NET_BIND_SERVICE effective and permitted (the fast path's dropped), bounding \
within the unit's CapabilityBoundingSet" capabilities_as_the_unit_says
check "no new privileges, seccomp filter on" \
    test "$(awk '/^NoNewPrivs:/ { print $2 }' <<<"$proc_status")" = 1 \
    -a "$(awk '/^Seccomp:/ { print $2 }' <<<"$proc_status")" = 2
check "TLS listener serves the installed certificate" [ "$(served_fingerprint)" = "$second" ]
relay_check "udp (systemd)"
relay_check "tcp (systemd)" -t
# certbot's path: the hook sees systemd and reloads the unit itself.
third=$(issue_certificate)
hook_out=$(insystemd 30 RENEWED_LINEAGE=/etc/letsencrypt/live/tern.test \
    /usr/share/tern/certbot-deploy-hook) || fail "deploy hook failed"
echo "  hook: $hook_out"
served=""
for _ in $(seq 50); do
    served=$(served_fingerprint || true)
    [ "$served" = "$third" ] && break
    sleep 0.2
done
check "after the hook's systemctl reload ternd serves the renewed certificate" [ "$served" = "$third" ]
check "the reload did not restart ternd" [ "$(unit_property MainPID)" = "$main_pid" ]
# A broken file: the restart is refused by ExecStartPre, with the key and line in the journal.
cp "$root/etc/tern/tern.yaml" "$work/tern.yaml.good"
echo "  max_lifetime: -5" >>"$root/etc/tern/tern.yaml"
bad_line=$(wc -l <"$root/etc/tern/tern.yaml")
check "systemctl restart fails on the broken file" restart_refused
check "the journal names /etc/tern/tern.yaml:$bad_line: limits.max_lifetime" \
    journal_has "^/etc/tern/tern.yaml:$bad_line: limits.max_lifetime: "
cp "$work/tern.yaml.good" "$root/etc/tern/tern.yaml"
insystemd 10 systemctl reset-failed tern.service || true
insystemd 60 systemctl restart tern.service || fail "restart with the good file"
check "tern.service is active again" unit_is active
watchdog_first=$(unit_property WatchdogTimestampMonotonic)
status_out=$(insystemd 10 ternctl status) || { echo "$status_out"; fail "ternctl status"; }
mapfile -t status_lines <<<"$status_out"
printf '  status: %s\n' "${status_lines[@]}"
# The admin API, as the operator reaches it: ternctl as root reads metrics.listen and the
# token from /etc/tern/tern.yaml. The restart left no allocations.
sessions_out=$(insystemd 10 ternctl sessions) || { echo "$sessions_out"; fail "ternctl sessions"; }
check "ternctl sessions: 0 sessions" [ "$(tail -n 1 <<<"$sessions_out")" = "0 sessions" ]
insystemd 10 ternctl revoke someone --for 60 | sed 's/^/  revoke: /' || fail "ternctl revoke"
check "the revocation is kept in /var/lib/tern/revocations, owned by tern" \
    [ "$(inroot 10 stat -c %U /var/lib/tern/revocations)" = tern ]
check "no /var/lib/tern/revocations.new left behind" [ ! -e "$root/var/lib/tern/revocations.new" ]
insystemd 10 ternctl unrevoke someone | sed 's/^/  unrevoke: /' || fail "ternctl unrevoke"
# Usage records: the restart above drained the allocations of the earlier relay checks, so
# each left a JSON line. The logrotate rule moves the file and reloads ternd, which then
# writes to the new one.
check "usage records in /var/log/tern/usage.jsonl" \
    [ "$(head -c 1 "$root/var/log/tern/usage.jsonl" 2>/dev/null)" = "{" ]
check "and in the journal, with their fields (usage_records.journal)" \
    test "$(insystemd 30 journalctl --no-pager -o export TERN_EVENT=allocation_ended 2>/dev/null |
        grep -c '^TERN_RECORD={')" -gt 0
logrotate_out=$(insystemd 30 logrotate -d /etc/logrotate.d/tern 2>&1) ||
    { echo "$logrotate_out"; fail "logrotate -d /etc/logrotate.d/tern"; }
check "logrotate -d /etc/logrotate.d/tern: parsed, no errors" \
    not_grep '^error:' <<<"$logrotate_out"
main_pid=$(unit_property MainPID)
insystemd 60 logrotate -f /etc/logrotate.d/tern || fail "logrotate -f /etc/logrotate.d/tern"
check "logrotate moved the records to usage.jsonl.1" [ -s "$root/var/log/tern/usage.jsonl.1" ]
check "and created usage.jsonl, 0640 tern:tern" \
    [ "$(mode_owner /var/log/tern/usage.jsonl)" = "640 tern tern" ]
check "its postrotate reloaded ternd, not restarted it" \
    test "$(unit_property ActiveState)" = active -a "$(unit_property MainPID)" = "$main_pid"
rotated_records=$(wc -l <"$root/var/log/tern/usage.jsonl.1")
# SIGTERM drains live allocations for shutdown_grace (3 s here); systemd waits, and the stop
# counts as a clean one.
relay_check "udp (after restart)"
sessions_out=$(insystemd 10 ternctl sessions) || { echo "$sessions_out"; fail "ternctl sessions"; }
check "ternctl sessions lists the relay check's allocations" \
    grep -Eqx '[1-9][0-9]* sessions?' <<<"$(tail -n 1 <<<"$sessions_out")"
watchdog_last=$(unit_property WatchdogTimestampMonotonic)
stop_started=$SECONDS
insystemd 60 systemctl stop tern.service || fail "systemctl stop"
echo "  stop took $((SECONDS - stop_started)) s"
check "stopped cleanly: inactive, result success, exit status 0" \
    test "$(unit_property ActiveState)" = inactive -a "$(unit_property Result)" = success \
    -a "$(unit_property ExecMainStatus)" = 0
check "ternd drained on stop" journal_has "draining"
check "after the rotation, records went to the new usage.jsonl" \
    test -s "$root/var/log/tern/usage.jsonl" \
    -a "$(wc -l <"$root/var/log/tern/usage.jsonl.1")" = "$rotated_records"
# ternctl drain: the same drain, asked for over the metrics endpoint; ternd then exits 0 and
# systemd leaves it stopped.
insystemd 60 systemctl start tern.service || fail "systemctl start"
relay_check "udp (before ternctl drain)"
insystemd 10 ternctl drain | sed 's/^/  drain: /' || fail "ternctl drain"
# STOPPING=1 makes the unit "deactivating" while ternd drains; it ends when ternd exits.
for _ in $(seq 100); do
    unit_is inactive && break
    sleep 0.1
done
check "after ternctl drain: inactive, result success, exit status 0" \
    test "$(unit_property ActiveState)" = inactive -a "$(unit_property Result)" = success \
    -a "$(unit_property ExecMainStatus)" = 0
check "no restarts: the watchdog was fed every time" test "$(unit_property NRestarts)" = 0
check "the restarted ternd pinged the watchdog" test "$watchdog_last" -gt "$watchdog_first"
pass

step "upgrade"
# The same tree packed again under a higher version: an upgrade as dpkg sees one. It runs in
# the booted root, so postinst's systemd branch restarts the running relay.
timeout 120 cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/upgrade" \
    -D CPACK_PACKAGE_VERSION="$upgrade_version" >"$work/cpack-upgrade.log" 2>&1 ||
    { cat "$work/cpack-upgrade.log"; fail "cpack for the upgrade"; }
upgrade_deb="$work/upgrade/tern_${upgrade_version}_${arch}.deb"
[ -f "$upgrade_deb" ] || fail "no $upgrade_deb"
# Not /tmp: nspawn mounts a fresh tmpfs there.
cp "$upgrade_deb" "$root/root/"
insystemd 60 systemctl start tern.service || fail "systemctl start"
main_pid=$(unit_property MainPID)
yaml_before=$(sha256sum <"$root/etc/tern/tern.yaml")
secrets_before=$(sha256sum <"$root/etc/tern/secrets")
token_before=$(sha256sum <"$root/etc/tern/admin-token")
insystemd 300 apt-get install -y --no-install-recommends "/root/$(basename "$upgrade_deb")" \
    >"$work/upgrade.log" 2>&1 </dev/null || { tail -n 30 "$work/upgrade.log"; fail "apt-get install"; }
check "dpkg reports tern $upgrade_version installed" \
    [ "$(installed)" = "install ok installed $upgrade_version" ]
check "the edited /etc/tern/tern.yaml was kept" [ "$(sha256sum <"$root/etc/tern/tern.yaml")" = "$yaml_before" ]
check "no .dpkg-dist or .dpkg-new beside it" \
    [ -z "$(find "$root/etc/tern" -name '*.dpkg-*')" ]
check "/etc/tern/secrets unchanged" [ "$(sha256sum <"$root/etc/tern/secrets")" = "$secrets_before" ]
check "/etc/tern/secrets still 0640 root:tern" [ "$(mode_owner /etc/tern/secrets)" = "640 root tern" ]
check "/etc/tern/admin-token unchanged, 0640 root:tern" \
    test "$(sha256sum <"$root/etc/tern/admin-token")" = "$token_before" \
    -a "$(mode_owner /etc/tern/admin-token)" = "640 root tern"
check "postinst restarted the running relay" \
    test "$(insystemd 10 systemctl is-active tern.service)" = active \
    -a "$(unit_property MainPID)" != "$main_pid"
relay_check "udp (after upgrade)"
pass

step "purge"
insystemd 120 apt-get purge -y tern >"$work/purge.log" 2>&1 </dev/null ||
    { tail -n 30 "$work/purge.log"; fail "apt-get purge"; }
check "dpkg no longer knows tern" not_installed
check "prerm stopped ternd" no_ternd_running
check "systemd no longer knows tern.service" test "$(unit_property LoadState)" = not-found
check "/etc/tern is gone" [ ! -e "$root/etc/tern" ]
check "/var/lib/tern is gone" [ ! -e "$root/var/lib/tern" ]
check "/var/log/tern is gone" [ ! -e "$root/var/log/tern" ]
check "/etc/logrotate.d/tern is gone" [ ! -e "$root/etc/logrotate.d/tern" ]
check "user tern is gone" no_entry tern passwd
check "group tern is gone" no_entry tern group
check "the unit's enablement is gone" \
    [ ! -e "$root/etc/systemd/system/multi-user.target.wants/tern.service" ]
# SIGRTMIN+4 asks systemd to power off (systemctl poweroff would want logind on D-Bus).
kill -s RTMIN+4 "$leader"
for _ in $(seq 300); do
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.1
done
check "the container powered off" exited "$nspawn_pid"
stop_pid "$nspawn_pid"
nspawn_pid=""
leader=""
pass
