#!/usr/bin/env bash
# Build a minimal busybox rootfs and a matching OCI image layout, offline.
#
#   images/busybox.sh [OUT_DIR]        (default: images/out)
#
# Produces OUT_DIR/busybox/rootfs/ and OUT_DIR/busybox/oci/ (one gzip layer,
# tag "1"), built deterministically from Debian's busybox-static. Skips the
# work when OUT_DIR/busybox/.stamp is newer than the busybox binary and this
# script. Logs go to stderr; the last (only) line on stdout is the rootfs path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
dest=$out/busybox
busybox=/bin/busybox

log() { echo "busybox.sh: $*" >&2; }

is_static() { [[ -x $1 ]] && ! ldd "$1" >/dev/null 2>&1; }

if ! is_static "$busybox"; then
    log "installing busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2
    is_static "$busybox" || { log "$busybox is still not static"; exit 1; }
fi
for tool in jq sha256sum gzip tar; do
    command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y "$tool" >&2
done

stamp=$dest/.stamp
if [[ -f $stamp && $stamp -nt $busybox && $stamp -nt ${BASH_SOURCE[0]} ]]; then
    echo "$dest/rootfs"
    exit 0
fi

tmp=$(mktemp -d "$out/.busybox.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

# --- rootfs ---------------------------------------------------------------
root=$tmp/rootfs
mkdir -p "$root"
chmod 755 "$root"
for d in bin etc proc sys dev root home home/app mnt var usr usr/bin sbin tmp; do
    mkdir -p "$root/$d"
    chmod 755 "$root/$d"
done
chmod 700 "$root/root"
chmod 1777 "$root/tmp"
chown 1000:1000 "$root/home/app"

cp "$busybox" "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
"$busybox" --list | while read -r applet; do
    [[ $applet == busybox ]] && continue
    ln -s busybox "$root/bin/$applet"
done
ln -sfn /bin/busybox "$root/bin/sh"

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000::/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
app:x:1000:
nogroup:x:65534:
nobody:x:65534:
EOF
chmod 644 "$root/etc/passwd" "$root/etc/group"

# --- OCI image layout -----------------------------------------------------
oci=$tmp/oci
blobs=$oci/blobs/sha256
mkdir -p "$blobs"

# put FILE: move FILE into blobs/ under its digest; prints "<digest> <size>".
put() {
    local sum size
    sum=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    mv "$1" "$blobs/$sum"
    echo "sha256:$sum $size"
}

tar -C "$root" --sort=name --mtime=@0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -cf "$tmp/layer.tar" .
diff_id=sha256:$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
gzip -n -6 "$tmp/layer.tar"
read -r layer_digest layer_size < <(put "$tmp/layer.tar.gz")

jq -nc --arg diff "$diff_id" '{
    architecture: "amd64", os: "linux",
    config: {
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        Cmd: ["/bin/sh"]
    },
    rootfs: {type: "layers", diff_ids: [$diff]},
    history: [{created_by: "images/busybox.sh"}]
}' >"$tmp/config.json"
read -r config_digest config_size < <(put "$tmp/config.json")

jq -nc --arg cd "$config_digest" --argjson cs "$config_size" \
    --arg ld "$layer_digest" --argjson ls "$layer_size" '{
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]
}' >"$tmp/manifest.json"
read -r manifest_digest manifest_size < <(put "$tmp/manifest.json")

jq -nc --arg md "$manifest_digest" --argjson ms "$manifest_size" '{
    schemaVersion: 2,
    manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: $md, size: $ms,
        platform: {architecture: "amd64", os: "linux"},
        annotations: {"org.opencontainers.image.ref.name": "1"}
    }]
}' >"$oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"

touch "$tmp/.stamp"

# --- swap into place --------------------------------------------------------
if [[ -e $dest ]]; then
    mv "$dest" "$tmp/old"
fi
mv "$tmp" "$dest"
trap - EXIT
rm -rf "$dest/old"
log "built $dest (layer $layer_digest, $layer_size bytes)"
echo "$dest/rootfs"
