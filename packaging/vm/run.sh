#!/usr/bin/env bash
# Boots the Debian 12 guest (packaging/vm/image.sh), runs SCRIPT in it as
# root with systemd as PID 1 on a pure cgroup v2 hierarchy, prints its
# output, powers the guest off, and exits with the script's exit code.
#
#   packaging/vm/run.sh SCRIPT [DIR...]
#
# Each DIR is shared over 9p and mounted at the same path in the guest (so a
# test binary finds its tree and target dir where it was built). Variables
# named in BUTTE_VM_PASS (space separated) are passed to SCRIPT.
# BUTTE_VM_TIMEOUT (seconds, default 900), BUTTE_VM_MEM (MiB, default
# 3072), BUTTE_VM_CPUS (default 2). The guest's disk is a snapshot: every
# run starts from the same image.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
script=${1:?usage: run.sh SCRIPT [DIR...]}
shift
image=$("$here/image.sh")
job=$(mktemp -d /tmp/butte-vm-job.XXXXXX)
trap 'rm -rf "$job"' EXIT
install -m 0755 "$script" "$job/script"
{
    echo '#!/bin/sh'
    for v in ${BUTTE_VM_PASS:-}; do
        printf 'export %s=%q\n' "$v" "${!v-}"
    done
    echo 'exec /job/script'
} >"$job/run"
chmod 0755 "$job/run"
shares=()
: >"$job/shares"
n=0
for d in "$@"; do
    d=$(cd "$d" && pwd)
    echo "$d" >>"$job/shares"
    shares+=(-virtfs "local,path=$d,mount_tag=share$n,security_model=none")
    n=$((n + 1))
done

started=$(date +%s)
status=0
timeout --foreground "${BUTTE_VM_TIMEOUT:-900}" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max,-svm,-vmx \
    -m "${BUTTE_VM_MEM:-3072}" -smp "${BUTTE_VM_CPUS:-2}" \
    -kernel "$image/vmlinux" -initrd "$image/initrd.img" \
    -append "console=ttyS0 root=/dev/vda rw quiet loglevel=3 panic=-1 systemd.show_status=error" \
    -drive "file=$image/rootfs.ext4,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$job,mount_tag=job,security_model=none" "${shares[@]}" \
    -nic none -display none -monitor none -serial stdio -no-reboot </dev/null || status=$?
echo "run.sh: the VM ran $(($(date +%s) - started)) s" >&2
if ((status == 124)); then
    echo "run.sh: the VM did not power off within ${BUTTE_VM_TIMEOUT:-900} s" >&2
    exit 124
fi
if [[ ! -f $job/out/rc ]]; then
    echo "run.sh: the VM stopped (qemu: $status) before the script finished" >&2
    exit 1
fi
exit "$(cat "$job/out/rc")"
