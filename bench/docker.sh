#!/usr/bin/env bash
# Docker tasks: RunTaskMessage -> TASK_RUNNING for a DOCKER task whose image
# is already in the store, side by side with butte's own MESOS container of
# the same image running the same program, and with podman running that
# image (`podman run --rm IMAGE true`) when podman can run here.
#
#   bench/docker.sh                 (N=30 of each)
#   N=10 bench/docker.sh
#
# Runs the `bench_docker` driver in runtime-tests/docker.rs (release build,
# as root): a scripted master, one agent with --containerizers=docker,mesos,
# the busybox test image (images/busybox.sh) in a local registry, pulled
# once before anything is timed; DOCKER (HOST network, `args: ["true"]`) and
# MESOS (`true` in the image) tasks alternate, one at a time.
# Targets: Docker task <= MESOS container + 2 ms; Docker task < 0.25 x podman.
# JSON goes to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-30}
NAME=docker.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

[[ $(id -u) == 0 ]] || die "needs root (the agent makes cgroups and namespaces)"
need_tools jq hyperfine

mkdir -p bench/out
OUT=$(realpath bench/out)
json=$OUT/docker-$(date +%Y%m%d-%H%M%S)-$$.json
log_file=$OUT/docker-$$.log

log "running $N Docker and $N MESOS tasks (cargo test --release ... bench_docker; output in $log_file)"
if ! BUTTE_RUNTIME_TESTS=1 BUTTE_BENCH_N=$N RUST_LOG=${RUST_LOG:-info} \
    cargo test --release --test runtime-tests bench_docker -- --ignored --nocapture \
    >"$log_file" 2>&1; then
    tail -n 40 "$log_file" >&2
    die "bench_docker failed (full output: $log_file)"
fi
line=$(grep -m1 '^BENCH_DOCKER ' "$log_file") || die "no BENCH_DOCKER line in $log_file"
rm -f "$log_file"

# podman, on the same image from its OCI layout (no registry needed). On
# this kind of machine (hybrid cgroups, root without CAP_SYS_RESOURCE; see
# shared/MACHINE-NOTES.md) podman's default crun refuses to start and its
# default rlimits cannot be set: then it runs with runc and rlimits that fit.
need_tools podman runc
podman_ms=null
image=localhost/butte-bench/busybox:1
podman_run=()
if podman image exists "$image" ||
    { id=$(podman pull -q "oci:$(dirname "$(images/busybox.sh | tail -n1)")/oci:1") &&
        podman tag "$id" "$image"; }; then
    for try in "podman run --rm" \
        "podman --runtime runc run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"; do
        if $try "$image" true >/dev/null 2>&1; then
            podman_run=("$try $image true")
            break
        fi
    done
fi
if ((${#podman_run[@]})); then
    log "podman: ${podman_run[0]}"
    hyperfine -N -w 3 -r "$N" --export-json "$OUT/podman-$$.json" -n podman "${podman_run[0]}" >&2
    podman_ms=$(jq '.results[0].median * 1000' "$OUT/podman-$$.json")
    rm -f "$OUT/podman-$$.json"
else
    log "podman cannot run $image here: no podman figure"
fi
echo "${line#BENCH_DOCKER }" | jq --argjson p "$podman_ms" '. + {podman_ms: $p}' >"$json"

jq -r '
  def ms: . * 100 | round / 100;
  "RunTaskMessage -> TASK_RUNNING, image in the store, one task at a time, medians:",
  "  DOCKER task      \(.docker_ms.median | ms) ms   (min \(.docker_ms.min | ms), max \(.docker_ms.max | ms), n \(.docker_ms.n))",
  "  MESOS container  \(.mesos_ms.median | ms) ms   (min \(.mesos_ms.min | ms), max \(.mesos_ms.max | ms), n \(.mesos_ms.n))",
  "  DOCKER - MESOS   \((.docker_ms.median - .mesos_ms.median) | ms) ms   (target <= 2 ms)",
  (if .podman_ms then "  podman run --rm  \(.podman_ms | ms) ms; DOCKER/podman ratio \((.docker_ms.median / .podman_ms) * 100 | round / 100)   (target < 0.25)"
   else "  podman: no figure on this machine" end)
' "$json"
echo "  json: $json"
