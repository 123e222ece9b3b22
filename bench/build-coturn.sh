#!/usr/bin/env bash
# Builds coturn from its source, for `make bench` only (tern does not depend on it): the 4.17
# line has the opt-in fast path (--multiplex-peer, --udp-gso) that Debian 12's 4.6.1 lacks.
#
#   bench/build-coturn.sh SOURCE [OUT]      # or COTURN_SRC=SOURCE bench/build-coturn.sh
#
# SOURCE is a coturn source tree, or a bare git directory (a mirror), from which the newest
# commit of the 4.17 line is extracted: COTURN_REF if set, else the newest 4.17.x tag, else HEAD
# if its src/ns_turn_defs.h says 4.17. OUT defaults to build-bench/coturn-4.17; the binary lands
# in OUT/bin/turnserver, where bench/run.py looks for it. Builds out of tree (OUT/build), -j1
# unless JOBS is set. Installs the Debian build dependencies it lacks (needs root).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-${COTURN_SRC:-}}
out=${2:-$repo/build-bench/coturn-4.17}
jobs=${JOBS:-1}
if [[ -z $src ]]; then
    echo "usage: $0 SOURCE [OUT]   (SOURCE: a coturn source tree or a bare git directory)" >&2
    exit 2
fi

deps=(cmake pkg-config gcc libevent-dev libssl-dev libsqlite3-dev libmicrohttpd-dev)
missing=()
for p in "${deps[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "build-coturn: installing ${missing[*]}" >&2
    # --no-upgrade: only what is missing, nothing else on the machine moves.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-upgrade "${missing[@]}" >&2 ||
        { apt-get update -q >&2 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-upgrade "${missing[@]}" >&2; }
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
if [[ -f $src/HEAD && -d $src/objects ]]; then
    # A bare git directory: extract one commit into OUT/src.
    ref=${COTURN_REF:-}
    if [[ -z $ref ]]; then
        ref=$(git --git-dir="$src" tag --list '4.17.*' '*/4.17.*' | grep -v docker/ | sort -V | tail -1 || true)
    fi
    if [[ -z $ref ]]; then
        version=$(git --git-dir="$src" show HEAD:src/ns_turn_defs.h |
                  sed -n 's/^#define TURN_SERVER_VERSION "\(.*\)"/\1/p')
        if [[ $version != 4.17.* ]]; then
            echo "build-coturn: no 4.17.x tag in $src and HEAD is $version; set COTURN_REF" >&2
            exit 1
        fi
        ref=HEAD
    fi
    echo "build-coturn: extracting $ref ($(git --git-dir="$src" rev-parse --short "$ref^{commit}"))" >&2
    rm -rf "$out/src"
    mkdir -p "$out/src"
    git --git-dir="$src" archive "$ref" | tar -x -C "$out/src"
    git --git-dir="$src" rev-parse "$ref^{commit}" >"$out/commit"
    src=$out/src
fi
if [[ ! -f $src/CMakeLists.txt || ! -f $src/src/ns_turn_defs.h ]]; then
    echo "build-coturn: $src is not a coturn source tree" >&2
    exit 1
fi
version=$(sed -n 's/^#define TURN_SERVER_VERSION "\(.*\)"/\1/p' "$src/src/ns_turn_defs.h")
echo "build-coturn: coturn $version from $src into $out" >&2

# Release flags as Debian builds it; no database back-ends beyond SQLite (the bench uses none).
cmake -S "$src" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DCMAKE_INSTALL_PREFIX="$out" >"$out/configure.log" 2>&1 ||
    { tail -30 "$out/configure.log" >&2; exit 1; }
cmake --build "$out/build" --target turnserver -j "$jobs" >"$out/build.log" 2>&1 ||
    { tail -30 "$out/build.log" >&2; exit 1; }
mkdir -p "$out/bin"
cp "$out/build/bin/turnserver" "$out/bin/turnserver"
echo "$version" >"$out/version"
help=$("$out/bin/turnserver" --help 2>&1 || true)
[[ $help == *--multiplex-peer* && $help == *--udp-gso* ]] ||
    echo "build-coturn: warning: this turnserver lacks --multiplex-peer or --udp-gso" >&2
echo "$out/bin/turnserver"
