#!/usr/bin/env bash
# Latency of the agent's operator views with many tasks on it.
#
#   bench/state.sh                  (TASKS=1000 ROUNDS=50)
#   TASKS=200 bench/state.sh
#
# Runs the `bench_state` driver in runtime-tests/operator.rs (release build,
# as root): the fake master of runtime-tests/support/master.rs launches TASKS
# `sleep 600` command tasks with tiny resources (at most 50 launches in
# flight) and, once all run, times on a kept-alive connection:
#   - GET /state, ROUNDS times (body read to its end);
#   - GET /metrics/snapshot, 2 x ROUNDS times;
#   - POST /api/v1 GET_STATE, ROUNDS times in JSON and ROUNDS in protobuf
#     (same snapshot as /state, rendered as mesos.v1.agent.Response);
#   - GET /health, 2 x ROUNDS times, while another client polls /state 10
#     times a second (the event loop only copies the state; rendering runs
#     on a blocking thread);
#   - with RUST_LOG=debug, the agent's own split of /state: the copy from
#     the event loop and the rendering (from its log); and of GET_STATE:
#     the copy, building the answer, writing it in JSON and in protobuf.
# Targets: /state and GET_STATE median < 20 ms with 1000 tasks;
# /metrics/snapshot < 5 ms.
# JSON goes to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TASKS=${TASKS:-1000}
ROUNDS=${ROUNDS:-50}
NAME=state.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

[[ $(id -u) == 0 ]] || die "needs root (the agent makes cgroups and namespaces)"
need_tools jq

mkdir -p bench/out
OUT=$(realpath bench/out)
json=$OUT/state-$(date +%Y%m%d-%H%M%S)-$$.json
log_file=$OUT/state-$$.log

log "running $TASKS tasks (cargo test --release ... bench_state; output in $log_file)"
if ! BUTTE_RUNTIME_TESTS=1 BUTTE_BENCH_TASKS=$TASKS BUTTE_BENCH_ROUNDS=$ROUNDS RUST_LOG=${RUST_LOG:-info} \
    cargo test --release --test runtime-tests bench_state -- --ignored --nocapture \
    >"$log_file" 2>&1; then
    tail -n 40 "$log_file" >&2
    die "bench_state failed (full output: $log_file)"
fi
line=$(grep -m1 '^BENCH_STATE ' "$log_file") || die "no BENCH_STATE line in $log_file"
echo "${line#BENCH_STATE }" | jq . >"$json"
rm -f "$log_file"

jq -r '
  def ms: . * 100 | round / 100;
  def lat: "median \(.median | ms) ms   p95 \(.p95 | ms) ms   max \(.max | ms) ms   (n=\(.n))";
  "with \(.tasks) running tasks (/state is \(.state_bytes / 1024 | round) KiB):",
  "  GET /state             \(.state_ms | lat)   (target: median < 20 ms)",
  "  GET /metrics/snapshot  \(.metrics_snapshot_ms | lat)   (target: median < 5 ms)",
  "  GET_STATE (JSON, \(.get_state_json_bytes / 1024 | round) KiB)      \(.get_state_json_ms | lat)   (target: median < 20 ms)",
  "  GET_STATE (protobuf, \(.get_state_protobuf_bytes / 1024 | round) KiB)  \(.get_state_protobuf_ms | lat)",
  "  GET /health while /state is polled at 10 Hz  \(.health_ms_while_polling_state | lat)",
  (if .agent_side_state then
    "  in the agent (RUST_LOG=debug): copy from the loop \(.agent_side_state.copy_ms | lat), render \(.agent_side_state.render_ms | lat)"
   else "  (RUST_LOG=debug also shows the copy and render times inside the agent)" end),
  (if .agent_side_get_state then
    "  GET_STATE in the agent: copy \(.agent_side_get_state.copy_ms | lat), build \(.agent_side_get_state.build_ms | lat), write JSON \(.agent_side_get_state.json_ms | lat), write protobuf \(.agent_side_get_state.protobuf_ms | lat)"
   else empty end)
' "$json"
echo "  json: $json"
