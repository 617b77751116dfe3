#!/usr/bin/env bash
# Task groups as nested containers (the default) vs as processes of the
# default executor (--task_group_nested_containers=false), side by side.
#
#   bench/groups.sh                 (N=20)
#   N=50 bench/groups.sh
#
# Runs the `bench_task_groups` driver in runtime-tests/executor.rs (release
# build, as root): on an agent in each mode, under the fake master of
# runtime-tests/support/master.rs, N groups of two `true` tasks, one at
# a time, each with its own default executor, timed from the RunTaskGroup
# message to both tasks TASK_RUNNING and to both TASK_FINISHED; then one
# group of two `sleep 600` tasks, whose executor's cgroup is measured: its
# processes, their summed VmRSS, the inits' (a nested container's first
# process) VmRSS and RssAnon, and the cgroup's charge. Reports medians and
# the nested/process ratios. JSON goes to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-20}
NAME=groups.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

[[ $(id -u) == 0 ]] || die "needs root (the agent makes cgroups and namespaces)"
need_tools jq

mkdir -p bench/out
OUT=$(realpath bench/out)
json=$OUT/groups-$(date +%Y%m%d-%H%M%S)-$$.json
log_file=$OUT/groups-$$.log

log "running $N groups in each mode (cargo test --release ... bench_task_groups; output in $log_file)"
if ! BUTTE_RUNTIME_TESTS=1 BUTTE_BENCH_GROUPS=$N \
    cargo test --release --test runtime-tests bench_task_groups -- --ignored --nocapture \
    >"$log_file" 2>&1; then
    tail -n 40 "$log_file" >&2
    die "bench_task_groups failed (full output: $log_file)"
fi
line=$(grep -m1 '^BENCH_GROUPS ' "$log_file") || die "no BENCH_GROUPS line in $log_file"
echo "${line#BENCH_GROUPS }" | jq . >"$json"
rm -f "$log_file"

jq -r '
  def ms: . * 10 | round / 10;
  def lat: "median \(.median | ms) ms  p95 \(.p95 | ms) ms  (n=\(.n))";
  (to_entries[] |
    "\(.key):",
    "  RunTaskGroup -> both RUNNING   \(.value.launch_to_running_ms | lat)",
    "  RunTaskGroup -> both FINISHED  \(.value.launch_to_finished_ms | lat)",
    "  two sleeping tasks: \(.value.processes) processes, \(.value.rss_kib) KiB RSS in all, cgroup charge \(.value.cgroup_charge_bytes / 1048576 * 10 | round / 10) MiB; inits \(.value.init_rss_kib) KiB RSS, \(.value.init_private_kib) KiB anonymous"),
  "nested / process: to RUNNING x\(.nested.launch_to_running_ms.median / .process.launch_to_running_ms.median * 100 | round / 100), to FINISHED x\(.nested.launch_to_finished_ms.median / .process.launch_to_finished_ms.median * 100 | round / 100), RSS x\(.nested.rss_kib / .process.rss_kib * 100 | round / 100)"
' "$json"
log "JSON: $json"
