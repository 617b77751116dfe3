#!/bin/sh
# Runs inside the VM (packaging/vm/test.sh): the package's install and the
# systemd test, then the runtime tests named by BUTTE_VM_TESTS on cgroup v2.
set -eu
echo "== cgroup v2: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "== apt install $BUTTE_VM_DEB ($(du -k "$BUTTE_VM_DEB" | cut -f1) KiB)"
apt-get install -y -q "$BUTTE_VM_DEB" </dev/null
echo "== the systemd test"
[ -n "${BUTTE_VM_SKIP_SYSTEMD:-}" ] || BUTTE_SYSTEMD_TESTS=1 "$BUTTE_VM_BIN" --exact \
    systemd::the_package_runs_the_agent_under_systemd_and_purge_leaves_nothing \
    --nocapture --test-threads=1
if [ -n "$BUTTE_VM_TESTS" ]; then
    echo "== runtime tests on cgroup v2: $BUTTE_VM_TESTS"
    # shellcheck disable=SC2086 # a list of filters
    BUTTE_RUNTIME_TESTS=1 "$BUTTE_VM_BIN" $BUTTE_VM_TESTS --test-threads=1
fi
echo "== the VM tests passed"
