#!/usr/bin/env bash
# Builds (once) the Debian 12 guest the VM tests boot, and prints the
# directory that holds it: rootfs.ext4, vmlinux, initrd.
#
#   packaging/vm/image.sh        # cache: $BUTTE_VM_CACHE or /var/cache/butte-vm
#
# The guest: debootstrap minbase with systemd as PID 1 (pure cgroup v2, the
# default of systemd 252), then systemd 254 from bookworm-backports
# (BUTTE_VM_SYSTEMD=backports, the default: its DelegateSubgroup= puts the
# agent in a leaf of its unit's cgroup; BUTTE_VM_SYSTEMD=stable keeps
# Debian 12's 252, where the unit's cgroup stays a leaf), Debian's kernel booted as an uncompressed vmlinux
# (TCG boots it faster than a bzImage it must first decompress), an initramfs
# holding only busybox and the virtio, ext4 and 9p modules. A unit runs
# /job/run from the 9p share "job" and powers the guest off. The cache key is
# this file's hash: editing it builds a new image. Needs root, debootstrap,
# busybox-static, network access to the Debian mirror on first use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${BUTTE_VM_CACHE:-/var/cache/butte-vm}
mirror=${BUTTE_VM_MIRROR:-http://deb.debian.org/debian}
systemd_from=${BUTTE_VM_SYSTEMD:-backports}
case $systemd_from in backports | stable) ;; *)
    echo "image.sh: BUTTE_VM_SYSTEMD must be backports or stable, not $systemd_from" >&2
    exit 2
    ;;
esac
key=$( (cat "$0" && echo "$systemd_from") | sha256sum | cut -c1-12)
dir=$cache/$key
if [[ -f $dir/done ]]; then
    echo "$dir"
    exit 0
fi
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/build.XXXXXX")
root=$tmp/root
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf --one-file-system "$tmp"' EXIT

log() { echo "image.sh: $*" >&2; }
# The debootstrapped tree is kept as a tarball of its own (keyed on the
# package list): a change to the configuration below does not download again.
# jq: images/busybox.sh wants it (the tests build their rootfs with it).
include=systemd,systemd-sysv,linux-image-amd64,busybox-static,kmod,procps,util-linux,jq
base=$cache/bookworm-$(echo "$include $mirror" | sha256sum | cut -c1-12).tar
if [[ ! -f $base ]]; then
    log "debootstrap bookworm (about 3 minutes, once)"
    debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" \
        >"$tmp/debootstrap.log" 2>&1 || {
        tail -n 30 "$tmp/debootstrap.log" >&2
        exit 1
    }
    tar -C "$root" -cf "$tmp/base.tar" .
    mv "$tmp/base.tar" "$base"
    rm -rf --one-file-system "$root"
fi
# systemd 254 from bookworm-backports over it, kept as a tarball too.
with=$base
if [[ $systemd_from == backports ]]; then
    with=${base%.tar}-systemd-backports.tar
fi
if [[ ! -f $with ]]; then
    log "systemd from bookworm-backports (about a minute, once)"
    mkdir "$root"
    tar -C "$root" -xf "$base"
    echo "deb $mirror bookworm-backports main" >"$root/etc/apt/sources.list.d/backports.list"
    mount -t proc proc "$root/proc"
    {
        chroot "$root" apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q \
                --no-install-recommends -t bookworm-backports systemd systemd-sysv &&
            chroot "$root" apt-get clean
    } >"$tmp/backports.log" 2>&1 || {
        tail -n 30 "$tmp/backports.log" >&2
        exit 1
    }
    umount "$root/proc"
    rm -rf "$root/var/lib/apt/lists/"*
    tar -C "$root" -cf "$tmp/with.tar" .
    mv "$tmp/with.tar" "$with"
    rm -rf --one-file-system "$root"
fi
mkdir "$root"
tar -C "$root" -xf "$with"

# --- the guest's configuration
echo butte-vm >"$root/etc/hostname"
printf '/dev/vda / ext4 rw,noatime 0 1\n' >"$root/etc/fstab"
passwd -R "$root" -d root >/dev/null
cat >"$root/etc/systemd/system/butte-vm-job.service" <<'UNIT'
[Unit]
Description=butte VM job: runs /job/run, then powers off
After=multi-user.target
Requires=job.mount
After=job.mount
# Here, not in [Service]: systemd ignores it there.
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/butte-vm-job
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0

[Install]
WantedBy=multi-user.target
UNIT
cat >"$root/etc/systemd/system/job.mount" <<'UNIT'
[Unit]
Description=The VM job's 9p share

[Mount]
What=job
Where=/job
Type=9p
Options=trans=virtio,version=9p2000.L,msize=262144
UNIT
cat >"$root/usr/local/sbin/butte-vm-job" <<'SCRIPT'
#!/bin/sh
# Mounts the extra 9p shares at their host paths, runs /job/run as root,
# and leaves its output and exit code in /job/out.
mkdir -p /job/out
n=0
while read -r path; do
    [ -n "$path" ] || continue
    mkdir -p "$path"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 "share$n" "$path"
    n=$((n + 1))
done </job/shares
echo "== VM job starts: $(uname -r), $(systemctl --version | head -1), cgroup $(stat -fc %T /sys/fs/cgroup)"
rc=0
/job/run >/job/out/log 2>&1 &
tail -n +1 -f --pid=$! /job/out/log
wait $! || rc=$?
echo "$rc" >/job/out/rc
sync
echo "== VM job exits $rc"
exit 0
SCRIPT
chmod 0755 "$root/usr/local/sbin/butte-vm-job"
ln -s /etc/systemd/system/butte-vm-job.service \
    "$root/etc/systemd/system/multi-user.target.wants/butte-vm-job.service"
# Nothing else at boot: no timers, no login prompts.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    getty@tty1.service serial-getty@ttyS0.service systemd-timesyncd.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done

# --- the kernel, uncompressed
kver=$(basename "$(ls -d "$root"/lib/modules/*)")
python3 "$here/vmlinux.py" "$root/boot/vmlinuz-$kver" "$tmp/vmlinux"

# --- the initramfs: busybox, the modules to reach the root disk and 9p
init=$tmp/initrd
mkdir -p "$init"/{bin,dev,proc,sys,newroot,lib/modules}
mknod -m 0600 "$init/dev/console" c 5 1
cp "$root/bin/busybox" "$init/bin/busybox"
for a in sh mount umount insmod switch_root mkdir poweroff; do ln -s busybox "$init/bin/$a"; done
# ext4 checksums its metadata with crc32c, which it asks for by name.
for m in virtio_pci virtio_blk crc32c_generic ext4 9p 9pnet_virtio; do
    modprobe -d "$root" -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' >"$tmp/mods"
while read -r m; do
    cp "$m" "$init/lib/modules/"
    echo "insmod /lib/modules/$(basename "$m")" >>"$tmp/insmods"
done <"$tmp/mods"
{
    printf '#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n'
    cat "$tmp/insmods"
    printf 'mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: no root disk"; poweroff -f; }\n'
    printf 'umount /proc /sys; mount --move /dev /newroot/dev\nexec switch_root /newroot /sbin/init\n'
} >"$init/init"
chmod 0755 "$init/init"
(cd "$init" && find . | cpio -o -H newc --quiet) >"$tmp/initrd.img"

# --- the root file system image (a raw ext4, booted with snapshot=on)
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/boot/"*
# Its "Creating regular file" goes to stderr: stdout is the image directory.
mkfs.ext4 -q -F -L root -d "$root" "$tmp/rootfs.ext4" 3G >&2

# Images of older versions of this script go (those of the other systemd
# stay).
for d in "$cache"/*/; do
    d=${d%/}
    case $(basename "$d") in build.*) continue ;; esac
    if [[ ! -f $d/systemd || $(cat "$d/systemd") == "$systemd_from" ]]; then
        rm -rf "$d"
    fi
done
mkdir -p "$dir"
mv "$tmp/vmlinux" "$tmp/initrd.img" "$tmp/rootfs.ext4" "$dir/"
echo "$systemd_from" >"$dir/systemd"
touch "$dir/done"
log "image ready in $dir"
echo "$dir"
