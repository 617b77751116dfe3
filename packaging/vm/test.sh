#!/usr/bin/env bash
# The VM stage of CI: builds the Debian package and the runtime-tests
# binary here, then in a fresh Debian 12 guest (systemd, pure cgroup v2):
# installs the package, runs the systemd test (runtime-tests/systemd.rs:
# enable --now, register, a task through restart and stop, purge), then the
# cgroup v2 runtime tests named by BUTTE_VM_TESTS.
#
#   packaging/vm/test.sh                 # as root; about 5 minutes once the image is cached
#
# BUTTE_DEB: a package already built (else packaging/deb/build.sh builds it).
# BUTTE_VM_TESTS: runtime-tests filters run on v2 in the guest (default below;
# "" for none; "many_sequential" is left out: too slow under TCG).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
target=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)

deb=${BUTTE_DEB:-}
if [[ -z $deb ]]; then
    deb=$(packaging/deb/build.sh "$target/deb")
fi
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
bin=$(cargo test --no-run --test runtime-tests --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "runtime-tests") | .executable' | tail -n 1)
[[ -x $bin ]] || { echo "test.sh: no runtime-tests binary" >&2; exit 1; }

# The test images, built here (the guest has no network to install gcc).
images/busybox.sh >/dev/null
images/probe.sh >/dev/null

export BUTTE_VM_DEB=$deb BUTTE_VM_BIN=$bin
# The sandbox, limits, OOM, pids, cpu share, device filter and hardening
# tests; not many_sequential_and_concurrent_launches (too slow under TCG).
# Filters match by substring: kill_with_grace_period, not kill_with_grace,
# which also names a Docker test that needs a registry from the network.
export BUTTE_VM_TESTS=${BUTTE_VM_TESTS-task_is_pid_1 host_filesystem_task memory_hog fork_bomb \
half_a_cpu bad_input capabilities_and kill_with_grace_period butte_run_forwards network_none \
rlimits_mounts the_task_inherits devices:: hardening:: nested::a_running nested::an_executor join:: exec::exec_runs \
a_sandbox_with_a_status_file}
export BUTTE_VM_SKIP_SYSTEMD=${BUTTE_VM_SKIP_SYSTEMD:-}
export BUTTE_VM_PASS="BUTTE_VM_DEB BUTTE_VM_BIN BUTTE_VM_TESTS BUTTE_VM_SKIP_SYSTEMD"
dirs=("$root" "$(dirname "$deb")")
case $target/ in "$root"/*) ;; *) dirs+=("$target") ;; esac
exec "$here/run.sh" "$here/guest.sh" "${dirs[@]}"
