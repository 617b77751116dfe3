#!/usr/bin/env bash
# Issue 18: `butte agent` killed with SIGKILL again and again during bursts
# of launches of mixed tasks (commands, images, groups, health checks,
# fetches), or dying at armed crash points, with executors and tasks
# SIGKILLed in between, under a scripted master; the invariants are checked
# at the end (one true terminal update per task, no acknowledged update
# resent, no process, cgroup or mount left, meta/ agrees).
#
#   bench/chaos.sh                                 (CHAOS_TASKS=200 CHAOS_KILLS=20 RUNS=3)
#   CHAOS_TASKS=50 CHAOS_KILLS=5 RUNS=1 bench/chaos.sh
#   CHAOS_SEED=1234 bench/chaos.sh                 (replays the kill moments of a failed run)
#   CHAOS_LIVE=200 CHAOS_RECOVERIES=5 bench/chaos.sh recovery
#
# `recovery`: runs `bench_recovery` instead: CHAOS_LIVE `sleep 600` tasks,
# then CHAOS_RECOVERIES agent SIGKILLs, each timed from the restart to the
# re-registration and to every executor re-subscribed (issue 18's target:
# median under 2 s with 200 live executors). Prints the JSON.
#
# Runs `tasks_survive_repeated_agent_sigkill_during_launch_bursts` of
# runtime-tests/chaos.rs RUNS times (debug build, as CI runs it; as root).
# Each run prints one `CHAOS {json}` line: the outcomes per terminal state,
# the problems found, leaked processes, the time from each restart to the
# re-registration, and the run's seed. JSON lines go to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CHAOS_TASKS=${CHAOS_TASKS:-200}
export CHAOS_KILLS=${CHAOS_KILLS:-20}
RUNS=${RUNS:-3}
NAME=chaos.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

[[ $(id -u) == 0 ]] || die "needs root (the agent makes cgroups and namespaces)"
need_tools jq

mkdir -p bench/out
OUT=$(realpath bench/out)
if [[ ${1:-} == recovery ]]; then
    log_file=$OUT/recovery-$$.log
    log "recovery with ${CHAOS_LIVE:-200} live executors (output in $log_file)"
    if ! BUTTE_RUNTIME_TESTS=1 RUST_LOG=${RUST_LOG:-info} \
        cargo test --test runtime-tests bench_recovery -- --ignored --nocapture \
        >"$log_file" 2>&1; then
        tail -n 40 "$log_file" >&2
        die "bench_recovery failed (full output: $log_file)"
    fi
    line=$(grep -m1 '^RECOVERY ' "$log_file") || die "no RECOVERY line in $log_file"
    echo "${line#RECOVERY }" | jq . | tee "$OUT/recovery-$(date +%Y%m%d-%H%M%S)-$$.json"
    rm -f "$log_file"
    exit 0
fi
json=$OUT/chaos-$(date +%Y%m%d-%H%M%S)-$$.jsonl
failed=0
for run in $(seq 1 "$RUNS"); do
    log_file=$OUT/chaos-$$-$run.log
    log "run $run/$RUNS: $CHAOS_TASKS tasks, $CHAOS_KILLS agent kills (output in $log_file)"
    if BUTTE_RUNTIME_TESTS=1 RUST_LOG=${RUST_LOG:-info} \
        cargo test --test runtime-tests tasks_survive_repeated_agent_sigkill -- --nocapture \
        >"$log_file" 2>&1; then
        ok=true
    else
        ok=false
        failed=$((failed + 1))
        grep -E '^chaos:|problems:|^[a-z0-9-]+: ' "$log_file" | head -n 40 >&2 || true
    fi
    line=$(grep -m1 '^CHAOS ' "$log_file") || die "run $run: no CHAOS line (full output: $log_file)"
    echo "${line#CHAOS }" | jq -c --argjson ok "$ok" '. + {ok: $ok}' | tee -a "$json" |
        jq -r '"  \(if .ok then "ok" else "FAILED" end): \(.tasks) tasks, \(.kills) kills in \(.seconds | round) s; injected \(.injected); outcomes \(.outcomes); problems \(.problems); leaked processes \(.leaked_processes); restart -> re-registered ms \(.restart_to_reregistered_ms | sort | .[length / 2 | floor]) median, \(.restart_to_reregistered_ms | max) max; seed \(.seed)"'
    $ok && rm -f "$log_file"
done
echo "  json: $json"
[[ $failed == 0 ]] || die "$failed of $RUNS runs failed"
