#!/usr/bin/env bash
# Task launch and status update throughput of `butte agent` under a scripted
# master, and the memory of an idle agent and an idle command executor.
#
#   bench/status.sh                 (TASKS=1000 SEQUENTIAL=100)
#   TASKS=200 SEQUENTIAL=50 bench/status.sh
#
# Runs the `bench_status` driver in runtime-tests/agent.rs (release build, as
# root): the fake master of runtime-tests/support/master.rs registers one
# agent and measures
#   - the agent's VmRSS once registered and idle;
#   - the VmRSS of the idle `butte executor` of a `sleep 60` command task;
#   - SEQUENTIAL `true` command tasks (no image) one at a time: the time from
#     sending RunTaskMessage to TASK_RUNNING arriving at the master, with an
#     otherwise idle agent;
#   - TASKS `true` command tasks with at most 50 in flight, every update
#     acknowledged: tasks per second overall, and the same latency under that
#     load (mostly queueing: about 50 / throughput).
# Targets: median launch latency < 30 ms (the sequential run); 1000 tasks in
# <= 30 s; idle agent RSS < 15 MB; idle executor RSS < 5 MB.
# JSON goes to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TASKS=${TASKS:-1000}
SEQUENTIAL=${SEQUENTIAL:-100}
NAME=status.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

[[ $(id -u) == 0 ]] || die "needs root (the agent makes cgroups and namespaces)"
need_tools jq

mkdir -p bench/out
OUT=$(realpath bench/out)
json=$OUT/status-$(date +%Y%m%d-%H%M%S)-$$.json
log_file=$OUT/status-$$.log

log "running $TASKS tasks (cargo test --release ... bench_status; output in $log_file)"
if ! BUTTE_RUNTIME_TESTS=1 BUTTE_BENCH_TASKS=$TASKS BUTTE_BENCH_SEQUENTIAL=$SEQUENTIAL RUST_LOG=${RUST_LOG:-info} \
    cargo test --release --test runtime-tests bench_status -- --ignored --nocapture \
    >"$log_file" 2>&1; then
    tail -n 40 "$log_file" >&2
    die "bench_status failed (full output: $log_file)"
fi
line=$(grep -m1 '^BENCH_STATUS ' "$log_file") || die "no BENCH_STATUS line in $log_file"
echo "${line#BENCH_STATUS }" | jq . >"$json"
rm -f "$log_file"

jq -r '
  def ms: . * 100 | round / 100;
  def mb: . * 1024 / 100000 | round / 10;
  def lat: "median \(.run_to_running_ms.median | ms) ms   p99 \(.run_to_running_ms.p99 | ms) ms   max \(.run_to_running_ms.max | ms) ms";
  "RunTaskMessage -> TASK_RUNNING at the master, `true` command tasks, no image:",
  "  one at a time (\(.sequential.tasks) tasks, \(.sequential.failed) failed):  \(.sequential | lat)   (target: median < 30 ms)",
  "  50 in flight (\(.windowed.tasks) tasks, \(.windowed.failed) failed):  \(.windowed | lat)",
  "throughput: \(.windowed.tasks) tasks in \(.windowed.wall_s * 10 | round / 10) s, \(.windowed.tasks_per_s * 10 | round / 10) tasks/s   (target: 1000 tasks <= 30 s)",
  "idle agent VmRSS     \(.agent_idle_rss_kib | mb) MB   (target < 15 MB)",
  "idle executor VmRSS  \(.executor_idle_rss_kib | mb) MB   (target < 5 MB)"
' "$json"
echo "  json: $json"
