#!/usr/bin/env bash
# Launch latency of `butte run` vs `crun run` vs a bare unshare floor, side by side.
#
#   bench/launch.sh                 (N=50 runs each; BUTTE=target/release/butte)
#   N=20 BUTTE=/path/to/butte bench/launch.sh
#
# Builds the busybox rootfs with images/busybox.sh, times /bin/true under cpu+mem+pids
# limits with hyperfine, reports medians, ratios and peak RSS. JSON goes to bench/out/.
#
# Both sides are hardened as Docker would run them: butte with its defaults (device
# allowlist, masked and read-only paths, Docker's default seccomp profile); crun with
# `crun spec`'s masked paths and device rules, Docker's default capabilities and
# Docker's default seccomp profile (src/runtime/seccomp/default.json in OCI form, by
# bench/seccomp-oci.py). When butte has --seccomp-profile and --privileged, the cost
# of the pieces is timed too: seccomp (default vs --seccomp-profile unconfined), and
# devices + masked paths (unconfined vs --privileged), in microseconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-50}
BUTTE=${BUTTE:-target/release/butte}
log() { echo "launch.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[[ -x $BUTTE ]] || die "$BUTTE missing or not executable: run 'cargo build --release' first (or set BUTTE=)"
BUTTE=$(realpath "$BUTTE")

missing=()
for c in hyperfine crun jq nsenter unshare; do command -v "$c" >/dev/null || missing+=("$c"); done
[[ -x /usr/bin/time ]] || missing+=(time)
if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi

ROOTFS=$(images/busybox.sh | tail -n1)
TMP=$(mktemp -d /tmp/butte-bench.XXXXXX)
NSDIR=/run/butte-bench.$$   # holds the crun mount namespace, if one is needed
ID=butte-bench-$$           # crun run deletes the container on exit, so runs reuse it
mkdir -p bench/out "$TMP/work"
json=bench/out/launch-$(date +%Y%m%d-%H%M%S)-$$.json

wrap_crun=()
wrap_host=()
cleanup() {
    set +e
    "${wrap_crun[@]}" crun delete -f "$ID" >/dev/null 2>&1
    if [[ -d $NSDIR ]]; then
        umount "$NSDIR/mnt" 2>/dev/null
        umount "$NSDIR" 2>/dev/null
        rm -f "$NSDIR/mnt"
        rmdir "$NSDIR"
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# --- crun bundle on the same rootfs -----------------------------------------
B=$TMP/bundle
mkdir -p "$B"
crun spec -b "$B"
docker_caps='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW",
  "CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT",
  "CAP_KILL","CAP_AUDIT_WRITE"]'
bench/seccomp-oci.py src/runtime/seccomp/default.json "$docker_caps" >"$TMP/seccomp.json"
jq --arg root "$ROOTFS" --argjson caps "$docker_caps" --slurpfile seccomp "$TMP/seccomp.json" '
    .process.args = ["/bin/true"] | .process.terminal = false
    | .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps,
                               inheritable: [], ambient: []}
    | .linux.seccomp = $seccomp[0]
    | .root = {path: $root, readonly: false}
    | .linux.resources = {memory: {limit: 134217728},
                          cpu: {quota: 100000, period: 100000},
                          pids: {limit: 64}}
    | .linux.namespaces |= map(select(.type != "network"))' \
    "$B/config.json" >"$TMP/config.json"
mv "$TMP/config.json" "$B/config.json"

# crun 1.8 refuses hybrid cgroups: if so, run it in a mount namespace without the
# cgroup2 mount, and give the other two contenders the same nsenter cost.
if crun run -b "$B" "$ID" >/dev/null 2>&1; then
    log "crun runs as is: no namespace wrapper"
else
    crun delete -f "$ID" >/dev/null 2>&1 || true
    log "plain crun run fails (hybrid cgroups?): using a private mount namespace"
    mkdir -p "$NSDIR"
    mount --bind "$NSDIR" "$NSDIR"
    mount --make-private "$NSDIR"
    touch "$NSDIR/mnt"
    unshare --mount="$NSDIR/mnt" --propagation private umount /sys/fs/cgroup/unified
    wrap_crun=(nsenter --mount="$NSDIR/mnt")
    wrap_host=(nsenter --mount=/proc/$$/ns/mnt)
    "${wrap_crun[@]}" crun run -b "$B" "$ID" || die "crun run fails even in the wrapper namespace"
fi

butte_args=("$BUTTE" run --image "$ROOTFS" --cpus 1 --mem 128M --pids 64
    --rm --work-dir "$TMP/work" -- /bin/true)
crun_args=(crun run -b "$B" "$ID")
butte_cmd=("${wrap_host[@]}" "${butte_args[@]}")
crun_cmd=("${wrap_crun[@]}" "${crun_args[@]}")
floor_cmd=("${wrap_host[@]}" unshare --pid --mount --fork /bin/true)

"${butte_cmd[@]}" || die "butte run fails: ${butte_cmd[*]}"
"${floor_cmd[@]}" || die "floor fails: ${floor_cmd[*]}"

# The pieces, when this butte can turn them off (a variant that fails is left out).
pieces=()
bu= bp=
if "$BUTTE" run --help | grep -q -- '--seccomp-profile' && "$BUTTE" run --help | grep -q -- '--privileged'; then
    for v in unconfined:--seccomp-profile=unconfined privileged:--privileged; do
        cmd=("${wrap_host[@]}" "${butte_args[@]:0:2}" "${v#*:}" "${butte_args[@]:2}")
        if "${cmd[@]}" 2>"$TMP/piece.err"; then
            pieces+=(-n "butte-${v%%:*}" "$(printf '%q ' "${cmd[@]}")")
        else
            log "not timed: butte run ${v#*:} fails: $(tail -n1 "$TMP/piece.err")"
        fi
    done
else
    log "$BUTTE lacks --seccomp-profile or --privileged: the pieces are not timed"
fi

# --- latency ----------------------------------------------------------------
words() { printf '%q ' "$@"; }
hyperfine -N --warmup 5 --runs "$N" --export-json "$json" \
    -n butte "$(words "${butte_cmd[@]}")" \
    -n crun "$(words "${crun_cmd[@]}")" \
    -n floor "$(words "${floor_cmd[@]}")" "${pieces[@]}" >&2

median() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "${2:-$json}"; }
b=$(median butte) c=$(median crun) f=$(median floor)
has() { jq -e --arg n "$1" 'any(.results[]; .command == $n)' "$json" >/dev/null; }
has butte-unconfined && bu=$(median butte-unconfined)
has butte-privileged && bp=$(median butte-privileged)

# --- spaced: 100 ms idle before each launch, as an agent launches tasks -------
# Back-to-back launches hide costs that an idle machine pays on every launch
# (on cgroup v1, moving a pid into a cgroup waits for an RCU grace period).
spaced_json="${json%.json}-spaced.json"
hyperfine -N --warmup 3 --runs "$((N / 2 > 10 ? N / 2 : 10))" --prepare 'sleep 0.1' --export-json "$spaced_json" \
    -n butte "$(words "${butte_cmd[@]}")" \
    -n crun "$(words "${crun_cmd[@]}")" >&2
sb=$(median butte "$spaced_json") sc=$(median crun "$spaced_json")

# --- peak RSS: max over 5 runs, KB ------------------------------------------
# time runs inside the wrapper, so nsenter's own RSS (kept across its exec) is not counted.
peak_rss() {  # peak_rss WRAPPER_ARRAY_NAME COMMAND_ARRAY_NAME
    local -n wrap=$1 cmd=$2
    local max=0 kb
    for _ in 1 2 3 4 5; do
        "${wrap[@]}" /usr/bin/time -f %M -o "$TMP/rss" "${cmd[@]}" >/dev/null
        kb=$(tail -n1 "$TMP/rss")
        ((kb > max)) && max=$kb
    done
    echo "$max"
}
rb=$(peak_rss wrap_host butte_args)
rc=$(peak_rss wrap_crun crun_args)

if "${wrap_crun[@]}" crun list 2>/dev/null | grep -q "^$ID "; then
    log "WARNING: crun container $ID left behind"
fi

echo "launch /bin/true (busybox rootfs, cpu+mem+pids limits, hardened: Docker's seccomp profile on both), N=$N, median ms:"
awk -v b="$b" -v c="$c" -v f="$f" 'BEGIN {
    printf "  butte  %.2f   crun  %.2f   floor  %.2f\n", b, c, f
    printf "  butte/crun  %.2f   butte/floor  %.2f\n", b / c, b / f }'
awk -v b="$sb" -v c="$sc" 'BEGIN {
    printf "  spaced (100 ms idle before each): butte  %.2f   crun  %.2f   butte/crun  %.2f\n", b, c, b / c }'
if ((${#pieces[@]})); then
    # "-" where a variant was not timed.
    awk -v b="$b" -v u="$bu" -v p="$bp" '
        function ms(x) { return x == "" ? "-" : sprintf("%.2f", x) }
        function us(x, y) { return x == "" || y == "" ? "-" : sprintf("%.0f", (x - y) * 1000) }
        BEGIN {
            printf "  butte --seccomp-profile unconfined  %s   --privileged  %s\n", ms(u), ms(p)
            printf "  cost (us): seccomp %s   devices + masked paths %s   all %s\n",
                us(b, u), us(u, p), us(b, p) }'
fi
echo "  peak RSS KB: butte $rb  crun $rc"
echo "  json: $json"
