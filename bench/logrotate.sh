#!/usr/bin/env bash
# Task log rotation must not slow a task (issue 17): a command task printing
# 1 GB to stdout under `--container_logger=org_apache_mesos_LogrotateContainerLogger`
# with a 10 MB cap (`rotate 3`), against the same task writing the 1 GB
# straight to a file in its sandbox. Target: ratio <= 1.2.
#
#   bench/logrotate.sh              (ROUNDS=5)
#   ROUNDS=3 MEM_MB=2048 bench/logrotate.sh   (the tasks' memory limit, default 256)
#
# Runs the `bench_logrotate` driver in runtime-tests/logrotate.rs (release
# build, as root): the fake master of runtime-tests/support/master.rs runs
# `head -c 1073741824 /dev/zero` (2 cpus, MEM_MB) both ways, alternately,
# each timed inside the task with `date +%s%N`; the medians and their ratio
# are printed. The rotated side also checks that at most stdout, stdout.1..3
# are left, none over 10 MB. JSON goes to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-5}
MEM_MB=${MEM_MB:-256}
NAME=logrotate.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

[[ $(id -u) == 0 ]] || die "needs root (the agent makes cgroups and namespaces)"
need_tools jq

mkdir -p bench/out
OUT=$(realpath bench/out)
json=$OUT/logrotate-$(date +%Y%m%d-%H%M%S)-$$.json
log_file=$OUT/logrotate-$$.log

log "running $ROUNDS rounds of 1 GB each way (cargo test --release ... bench_logrotate; output in $log_file)"
if ! BUTTE_RUNTIME_TESTS=1 BUTTE_BENCH_ROUNDS=$ROUNDS BUTTE_BENCH_MEM_MB=$MEM_MB RUST_LOG=${RUST_LOG:-info} \
    cargo test --release --test runtime-tests bench_logrotate -- --ignored --nocapture \
    >"$log_file" 2>&1; then
    tail -n 40 "$log_file" >&2
    die "bench_logrotate failed (full output: $log_file)"
fi
line=$(grep -m1 '^BENCH_LOGROTATE ' "$log_file") || die "no BENCH_LOGROTATE line in $log_file"
echo "${line#BENCH_LOGROTATE }" | jq . >"$json"
rm -f "$log_file"

jq -r '
  def s: . * 1000 | round / 1000;
  "1 GB printed by a task (\(.mem_mb) MB memory limit), medians of \(.rounds) rounds (timed inside the task):",
  "  stdout rotated at 10 MB (rotate 3):  \(.rotated_median_s | s) s   \(.rotated_s | map(s))",
  "  straight to a file:                  \(.plain_median_s | s) s   \(.plain_s | map(s))",
  "  ratio: \(.ratio * 100 | round / 100)   (target <= 1.2)"
' "$json"
echo "  json: $json"
