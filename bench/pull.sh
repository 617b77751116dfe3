#!/usr/bin/env bash
# Cold pull + unpack of the Python image from a loopback registry, butte vs
# skopeo + umoci, side by side; and rootfs provisioning for a pulled image.
#
#   bench/pull.sh                   (N=5 runs each; BUTTE=target/release/butte)
#   N=10 BUTTE=/path/to/butte bench/pull.sh
#
# 1. Starts Debian's docker-registry on 127.0.0.1 (storage in a temp dir) and
#    pushes images/python.sh's image (3 gzip layers) into it unchanged.
# 2. Times, with hyperfine, a cold pull to a ready rootfs in a fresh directory:
#      butte image pull --insecure-registry ADDR ADDR/library/python:3.11 --work-dir FRESH
#      skopeo copy docker://ADDR/library/python:3.11 oci:FRESH/oci:3.11 && umoci unpack
#    Target: butte/peer <= 0.5.
# 3. Times `butte run --rm --image REF -- /bin/true` on the pulled image (with the
#    registry stopped) against the same with a plain busybox rootfs directory:
#    the difference is the overlay provisioning. Target: under 5 ms median.
#
# The root filesystem is ext4 without a journal (/work/shared/MACHINE-NOTES.md):
# nothing is deleted between timed runs. Each run's --prepare moves the last
# destination into bench/out/trash.PID, which is emptied at the end.
# JSON goes to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-5}
BUTTE=${BUTTE:-target/release/butte}
TAG=3.11
REPO=library/python
NAME=pull.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

need_butte "$BUTTE" image pull
BUTTE=$(realpath "$BUTTE")

need_tools hyperfine jq skopeo umoci curl docker-registry

OCI=$(images/python.sh | tail -n1)
ROOTFS=$(images/busybox.sh | tail -n1)
mkdir -p bench/out
OUT=$(realpath bench/out)
STAMP=$(date +%Y%m%d-%H%M%S)-$$
json=$OUT/pull-$STAMP.json
rootfs_json=$OUT/pull-$STAMP-rootfs.json
summary_json=$OUT/pull-$STAMP-summary.json
# Destinations and trash on the disk a real agent would use (not a tmpfs).
DEST=$OUT/pull-work.$$
TRASH=$OUT/trash.$$
REG=$(mktemp -d /tmp/butte-bench-registry.XXXXXX)
REG_PID=

cleanup() {
    set +e
    if [[ -n $REG_PID ]]; then
        kill "$REG_PID" 2>/dev/null
        wait "$REG_PID" 2>/dev/null
    fi
    rm -rf "$REG"
    if [[ -d $TRASH || -d $DEST ]]; then
        log "emptying the trash"
        rm -rf "$TRASH" "$DEST"
    fi
}
trap cleanup EXIT

# --- registry ------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$port
mkdir -p "$REG/storage"
cat >"$REG/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REG/storage
http:
  addr: $ADDR
EOF
docker-registry serve "$REG/config.yml" >"$REG/registry.log" 2>&1 &
REG_PID=$!
wait_http "http://$ADDR/v2/" "$REG_PID" "docker-registry (log: $REG/registry.log)"
REF=$ADDR/$REPO:$TAG
skopeo --insecure-policy copy --quiet --dest-tls-verify=false --preserve-digests \
    "oci:$OCI:$TAG" "docker://$REF"
manifest=$(jq -r '.manifests[0].digest' "$OCI/index.json")
gz_bytes=$(jq '[.layers[].size] | add' "$OCI/blobs/sha256/${manifest#sha256:}")
log "pushed $REF ($((gz_bytes / 1000000)) MB of gzip layers)"

# --- cold pull + unpack ----------------------------------------------------------
# Each run gets fresh, empty destinations; the previous ones go to the trash.
mkdir -p "$DEST" "$TRASH"
write_prepare "$DEST/prepare.sh" "$TRASH" "$DEST/butte" "$DEST/peer"
cat >"$DEST/peer.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$REF" "oci:$DEST/peer/oci:$TAG"
umoci unpack --image "$DEST/peer/oci:$TAG" "$DEST/peer/bundle" >/dev/null
EOF
chmod +x "$DEST/prepare.sh" "$DEST/peer.sh"

butte_pull=("$BUTTE" image pull --insecure-registry "$ADDR" "$REF" --work-dir "$DEST/butte")
# One untimed round each: both work, and the registry's files are in the page cache.
"$DEST/prepare.sh"
"${butte_pull[@]}" >/dev/null || die "butte pull fails: ${butte_pull[*]}"
"$DEST/peer.sh" || die "skopeo + umoci fails"
[[ -x $DEST/peer/bundle/rootfs/usr/bin/python3 ]] || die "umoci unpack left no python3"

words() { printf '%q ' "$@"; }
hyperfine -N --runs "$N" --prepare "$DEST/prepare.sh" --export-json "$json" \
    -n butte "$(words "${butte_pull[@]}")" \
    -n skopeo+umoci "$(words "$DEST/peer.sh")" >&2

median() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$2"; }
pb=$(median butte "$json") ps=$(median skopeo+umoci "$json")

# --- rootfs provisioning for a pulled image ----------------------------------------
# Pulled once into a work dir of its own; the registry is stopped first, so a
# run that went back to it would fail.
WORK=$DEST/run-work
mkdir -p "$WORK"
"$BUTTE" image pull --insecure-registry "$ADDR" "$REF" --work-dir "$WORK" >/dev/null
kill "$REG_PID"
wait "$REG_PID" 2>/dev/null || true
REG_PID=
image_run=("$BUTTE" run --rm --work-dir "$WORK" --image "$REF" -- /bin/true)
dir_run=("$BUTTE" run --rm --work-dir "$WORK" --image "$ROOTFS" -- /bin/true)
# Let the pulls' writeback finish first: it would stall the runs' metadata writes.
sync
"${image_run[@]}" || die "butte run on the image fails: ${image_run[*]}"
"${dir_run[@]}" || die "butte run on the rootfs dir fails: ${dir_run[*]}"
hyperfine -N --warmup 5 --runs "$((N * 10 > 30 ? N * 10 : 30))" --export-json "$rootfs_json" \
    -n image "$(words "${image_run[@]}")" \
    -n dir "$(words "${dir_run[@]}")" >&2
ri=$(median image "$rootfs_json") rd=$(median dir "$rootfs_json")
mounts=$(grep -c "$WORK" /proc/self/mountinfo || true)
[[ $mounts == 0 ]] || log "WARNING: $mounts mounts left under $WORK"

jq -n --argjson pb "$pb" --argjson ps "$ps" --argjson ri "$ri" --argjson rd "$rd" \
    --argjson n "$N" --argjson gz "$gz_bytes" --arg pulls "$json" --arg rootfs "$rootfs_json" '{
    runs: $n, gzip_layer_bytes: $gz,
    cold_pull_ms: {butte: $pb, "skopeo+umoci": $ps, ratio: ($pb / $ps), target_ratio: 0.5},
    provision_ms: {image: $ri, dir: $rd, overlay: ($ri - $rd), target_overlay: 5},
    hyperfine: {pulls: $pulls, rootfs: $rootfs}}' >"$summary_json"

echo "cold pull + unpack of $REF ($((gz_bytes / 1000000)) MB gzip), N=$N, median ms:"
awk -v b="$pb" -v s="$ps" 'BEGIN {
    printf "  butte  %.0f   skopeo+umoci  %.0f   butte/peer  %.2f  (target <= 0.50)\n", b, s, b / s }'
echo "rootfs provisioning, butte run --rm -- /bin/true, median ms:"
awk -v i="$ri" -v d="$rd" 'BEGIN {
    printf "  image (overlay)  %.2f   plain dir  %.2f   overlay cost  %.2f  (target < 5)\n", i, d, i - d }'
echo "  json: $summary_json"
