#!/usr/bin/env bash
# The disk watchers' CPU cost with 1000 sandboxes (issue 17's Speed line:
# under 1% of one core).
#
#   bench/disk-watch.sh                  (SANDBOXES=1000 SECS=60)
#
# Runs the `bench_disk_watch` driver in runtime-tests/disk_quota.rs (release
# build, as root): an agent (fake master) restarted over SANDBOXES finished
# sandboxes and their meta/ runs, so that garbage collection schedules them
# all, with --disk_watch_interval=1secs (60 times Mesos' default) and the
# quota watcher on; its CPU time (utime + stime of /proc/PID/stat) over SECS
# seconds, as a fraction of one core. Then the quota watcher's walk (the du
# of each sandbox) over those SANDBOXES sandboxes, as for that many running
# containers: one pass's CPU time over the default 15 s interval.
# JSON goes to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SANDBOXES=${SANDBOXES:-1000}
SECS=${SECS:-60}
NAME=disk-watch.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

[[ $(id -u) == 0 ]] || die "needs root (the agent makes cgroups and namespaces)"
need_tools jq

mkdir -p bench/out
OUT=$(realpath bench/out)
json=$OUT/disk-watch-$(date +%Y%m%d-%H%M%S)-$$.json
log_file=$OUT/disk-watch-$$.log

log "$SANDBOXES sandboxes, ${SECS}s (cargo test --release ... bench_disk_watch; output in $log_file)"
if ! BUTTE_RUNTIME_TESTS=1 BUTTE_BENCH_SANDBOXES=$SANDBOXES BUTTE_BENCH_SECS=$SECS RUST_LOG=${RUST_LOG:-info} \
    cargo test --release --test runtime-tests bench_disk_watch -- --ignored --nocapture \
    >"$log_file" 2>&1; then
    tail -n 40 "$log_file" >&2
    die "bench_disk_watch failed (full output: $log_file)"
fi
line=$(grep -m1 '^BENCH_DISK_WATCH ' "$log_file") || die "no BENCH_DISK_WATCH line in $log_file"
echo "${line#BENCH_DISK_WATCH }" | jq . >"$json"
rm -f "$log_file"

jq -r '
  def pct: . * 10000 | round / 100;
  "agent with \(.sandboxes) finished sandboxes scheduled, disk watch every \(.agent.disk_watch_interval_s) s:",
  "  \(.agent.cpu_s * 1000 | round) ms CPU in \(.agent.wall_s | round) s = \(.agent.core_fraction | pct)% of one core   (target < 1%)",
  "quota watcher, one pass over \(.sandboxes) sandboxes: \(.quota_pass.cpu_s * 1000 | round) ms CPU",
  "  = \(.quota_pass.core_fraction_at_15s | pct)% of one core at the default 15 s interval   (target < 1%)"
' "$json"
echo "  json: $json"
