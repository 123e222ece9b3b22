#!/usr/bin/env bash
# run-fuzzer.sh BINARY SEED_DIR WORK_DIR SECONDS: bounded libFuzzer run over a copy of the seeds.
set -euo pipefail
bin=$1 seeds=$2 work=$3 seconds=$4
mkdir -p "$work" "$work/artifacts"
[ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null || true
exec "$bin" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work"
