#!/usr/bin/env bash
# The hardening probe (images/probe.c) under butte and under crun with Docker's
# defaults, side by side; fails unless butte denies everything crun denies.
#
#   bench/hardening.sh                  (BUTTE=target/release/butte)
#   BUTTE=/path/to/butte WORK_DIR=DIR CGROUP_PARENT=NAME bench/hardening.sh
#
# Both run the static probe in a copy of the busybox rootfs, as root and as
# user app (1000), against a loop device holding known bytes (the stand-in for
# a host disk) and a host `sleep` to ptrace:
#   butte run --image ROOTFS [--user app] -- /bin/probe -b MAJ:MIN -k TEXT -p PID
#   crun run  on a bundle from `crun spec` (its masked and read-only paths and
#             device rules) with Docker's default capabilities and Docker's
#             default seccomp profile (src/runtime/seccomp/default.json turned
#             into OCI form for this machine: includes/excludes evaluated
#             against Docker's default capabilities, amd64 and this kernel)
# Prints the verdicts side by side, then every table with its details, then
# one line saying whether butte denies everything crun denies (exit 1 if not,
# or if a probe did not run).
#
# crun 1.8 refuses this machine's hybrid cgroups: it then runs in a private
# mount namespace without the cgroup2 mount (/work/shared/MACHINE-NOTES.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUTTE=${BUTTE:-target/release/butte}
NAME=hardening.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

need_butte "$BUTTE" run
BUTTE=$(realpath "$BUTTE")
need_tools crun jq python3 losetup nsenter unshare

BUSYBOX=$(images/busybox.sh | tail -n1)
PROBE=$(images/probe.sh | tail -n1)
PROFILE=$PWD/src/runtime/seccomp/default.json
TMP=$(mktemp -d /tmp/butte-hardening.XXXXXX)
chmod 755 "$TMP"
WORK_DIR=${WORK_DIR:-$TMP/work}
CGROUP_PARENT=${CGROUP_PARENT:-}
NSDIR=/run/butte-hardening.$$
ID=butte-hardening-$$
SECRET=BUTTE-HARDENING-PROBE-$$

wrap_crun=()
loop=
sleeper=
cleanup() {
    set +e
    "${wrap_crun[@]}" crun delete -f "$ID" >/dev/null 2>&1
    if [[ -d $NSDIR ]]; then
        umount "$NSDIR/mnt" 2>/dev/null
        umount "$NSDIR" 2>/dev/null
        rm -f "$NSDIR/mnt"
        rmdir "$NSDIR"
    fi
    [[ -n $sleeper ]] && kill "$sleeper" 2>/dev/null && wait "$sleeper" 2>/dev/null
    [[ -n $loop ]] && losetup -d "$loop"
    rm -rf "$TMP"
}
trap cleanup EXIT

# --- the target: a loop device with known bytes, a host process -------------
printf '%s' "$SECRET" >"$TMP/disk"
truncate -s 1M "$TMP/disk"
loop=$(losetup -f --show "$TMP/disk")
majmin=$(($(stat -c '0x%t' "$loop"))):$(($(stat -c '0x%T' "$loop")))
sleep 600 &
sleeper=$!
probe_args=(/bin/probe -b "$majmin" -k "$SECRET" -p "$sleeper")
log "target: $loop ($majmin) holding '$SECRET'; host pid $sleeper"

# --- the rootfs: busybox plus the probe (the shared rootfs stays as it is) ---
ROOTFS=$TMP/rootfs
cp -a "$BUSYBOX" "$ROOTFS"
install -m 755 "$PROBE" "$ROOTFS/bin/probe"

# --- butte --------------------------------------------------------------------
mkdir -p "$WORK_DIR"
butte_probe() {  # butte_probe OUTFILE [butte run options...]
    local out=$1
    shift
    local parent=()
    [[ -n $CGROUP_PARENT ]] && parent=(--cgroup-parent "$CGROUP_PARENT")
    "$BUTTE" run --work-dir "$WORK_DIR" "${parent[@]}" --rm --image "$ROOTFS" "$@" \
        -- "${probe_args[@]}" >"$out" 2>"$out.err" || true
}
butte_probe "$TMP/butte-root"
butte_probe "$TMP/butte-app" --user app

# --- crun -----------------------------------------------------------------------
# Docker's default seccomp profile in OCI form, for amd64 and this kernel.
docker_caps='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW",
  "CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT",
  "CAP_KILL","CAP_AUDIT_WRITE"]'
bench/seccomp-oci.py "$PROFILE" "$docker_caps" >"$TMP/seccomp.json"

B=$TMP/bundle
mkdir -p "$B"
crun spec -b "$B"
# crun_bundle UID: config.json for the probe as UID (root: Docker's default
# capabilities; others: none effective, the same bounding set, as Docker).
crun_bundle() {
    jq --arg root "$ROOTFS" --argjson caps "$docker_caps" --argjson uid "$1" \
        --slurpfile seccomp "$TMP/seccomp.json" --argjson args "$(printf '%s\n' "${probe_args[@]}" | jq -R . | jq -s .)" '
        .process.args = $args | .process.terminal = false
        | .process.user = {uid: $uid, gid: $uid}
        | .process.capabilities = (if $uid == 0
            then {bounding: $caps, effective: $caps, permitted: $caps, inheritable: [], ambient: []}
            else {bounding: $caps, effective: [], permitted: [], inheritable: [], ambient: []} end)
        | .root = {path: $root, readonly: false}
        | .linux.seccomp = $seccomp[0]
        | .linux.namespaces |= map(select(.type != "network"))' \
        "$B/config.json.orig" >"$B/config.json"
}
mv "$B/config.json" "$B/config.json.orig"

crun_probe() {  # crun_probe OUTFILE UID
    crun_bundle "$2"
    "${wrap_crun[@]}" crun run -b "$B" "$ID" >"$1" 2>"$1.err" </dev/null || true
    "${wrap_crun[@]}" crun delete -f "$ID" >/dev/null 2>&1 || true
}

crun_probe "$TMP/crun-root" 0
if ! [[ -s $TMP/crun-root ]] && grep -q 'hybrid' "$TMP/crun-root.err"; then
    log "plain crun run fails (hybrid cgroups): using a private mount namespace"
    mkdir -p "$NSDIR"
    mount --bind "$NSDIR" "$NSDIR"
    mount --make-private "$NSDIR"
    touch "$NSDIR/mnt"
    unshare --mount="$NSDIR/mnt" --propagation private umount /sys/fs/cgroup/unified
    wrap_crun=(nsenter --mount="$NSDIR/mnt")
    crun_probe "$TMP/crun-root" 0
fi
crun_probe "$TMP/crun-app" 1000

# --- report -----------------------------------------------------------------------
python3 - "$TMP" <<'EOF'
import os, sys
tmp = sys.argv[1]
runs = [("butte-root", "butte root"), ("butte-app", "butte app"),
        ("crun-root", "crun root"), ("crun-app", "crun app")]
tables, bad = {}, []
for key, _ in runs:
    rows = {}
    for line in open(os.path.join(tmp, key)).read().splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            rows[parts[0]] = (parts[1], parts[2])
    if not rows:
        err = open(os.path.join(tmp, key + ".err")).read().strip()
        bad.append(f"{key}: the probe did not run ({err or 'no output'})")
    tables[key] = rows
names = []
for key, _ in runs:
    for n in tables[key]:
        if n not in names:
            names.append(n)
print("%-16s" % "attempt" + "".join("%-12s" % title for _, title in runs))
for n in names:
    print("%-16s" % n + "".join("%-12s" % tables[key].get(n, ("-",))[0] for key, _ in runs))
for key, title in runs:
    print(f"\n{title}:")
    for n in names:
        if n in tables[key]:
            v, d = tables[key][n]
            print(f"  {n}\t{v}\t{d}")
for who in ("root", "app"):
    b, c = tables[f"butte-{who}"], tables[f"crun-{who}"]
    for n in names:
        if c.get(n, ("",))[0] == "denied" and b.get(n, ("",))[0] != "denied":
            bad.append(f"{n} as {who}: crun denies it, butte {b.get(n, ('did not try',))[0]}")
print()
if bad:
    print("butte denies everything crun denies: NO")
    for b in bad:
        print("  " + b)
    sys.exit(1)
allowed = sum(v == "ALLOWED" for key in ("butte-root", "butte-app") for v, _ in tables[key].values())
print("butte denies everything crun denies: yes"
      + ("" if allowed == 0 else f" (butte still allows {allowed} attempt(s))"))
EOF
