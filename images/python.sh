#!/usr/bin/env bash
# Build a multi-layer Python 3.11 OCI image layout from Debian 12 packages.
#
#   images/python.sh [OUT_DIR]        (default: images/out)
#
# Produces OUT_DIR/python/oci/ (tag "3.11"): three gzip layers built
# deterministically (sorted, mtime 0, numeric owners, gzip without name or
# time) from .deb files fetched once with `apt-get download` into
# OUT_DIR/debs/ and unpacked with `dpkg-deb -x` (no maintainer scripts run):
#
#   1 base    libc6 and core shared libraries, busybox-static as /bin/sh and
#             applets, /etc/passwd and /etc/group (root, app 1000, nobody);
#             also /etc/butte-deleted-later and /opt/opaque/old.txt
#   2 python  python3.11 (minimal + stdlib) and its libraries; deletes
#             /etc/butte-deleted-later with a whiteout (etc/.wh.*)
#   3 science numpy (OpenBLAS), pandas and their dependencies; makes
#             /opt/opaque opaque (.wh..wh..opq) and adds /opt/opaque/new.txt
#
# Reruns are offline: a package already cached in OUT_DIR/debs is used as is
# (the newest cached version when there are several). The build is skipped
# when OUT_DIR/python/.stamp records this script and the same .deb files.
# Before it is moved into place the image is checked with umoci unpack (python
# runs in a chroot, the whiteout and the opaque directory took effect) and
# skopeo inspect. Logs go to stderr; the last line on stdout is the OCI
# layout path.
set -euo pipefail
export LC_ALL=C
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script=$here/$(basename "${BASH_SOURCE[0]}")
out=${1:-$here/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
dest=$out/python
debs=$out/debs
tag=3.11
start=$SECONDS

log() { echo "python.sh: $*" >&2; }

# One build per OUT_DIR at a time (test binaries may run this concurrently).
exec 9>"$out/.python.lock"
flock 9

base_pkgs=(
    base-files netbase busybox-static
    libc6 gcc-12-base libgcc-s1 libstdc++6 zlib1g libbz2-1.0 liblzma5 libzstd1
    libcrypt1 libuuid1 libtinfo6 libncursesw6
)
python_pkgs=(
    python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3.11
    python3-minimal python3 media-types
    libexpat1 libssl3 libffi8 libsqlite3-0 libdb5.3 libreadline8
    readline-common libnsl2 libtirpc3 libtirpc-common libgssapi-krb5-2 libkrb5-3
    libk5crypto3 libcom-err2 libkrb5support0 libkeyutils1
)
science_pkgs=(
    python3-numpy libopenblas0-pthread libgfortran5 libquadmath0
    python3-pandas python3-pandas-lib python3-dateutil python3-tz python3-six
    python3-pkg-resources tzdata
)

for tool in jq sha256sum tar dpkg-deb pigz umoci skopeo; do
    if ! command -v "$tool" >/dev/null; then
        log "installing $tool"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$tool" >&2
    fi
done

# cached PKG: the cached .deb of PKG (newest version), or nothing.
cached() {
    local f
    f=$(find "$debs" -maxdepth 1 -name "${1}_*.deb" -printf '%f\n' | sort -V | tail -n 1)
    [[ -n $f ]] && echo "$debs/$f"
    return 0
}

# --- fetch the packages (once) ----------------------------------------------
mkdir -p "$debs"
all_pkgs=("${base_pkgs[@]}" "${python_pkgs[@]}" "${science_pkgs[@]}")
missing=()
for p in "${all_pkgs[@]}"; do
    [[ -n $(cached "$p") ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    log "downloading ${#missing[@]} packages into $debs"
    dl=$(mktemp -d "$debs/.download.XXXXXX")
    # apt drops privileges to _apt for downloads; let it write here.
    if id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
    if ! (cd "$dl" && apt-get download "${missing[@]}" >&2); then
        log "apt-get download failed; updating package lists and retrying"
        apt-get update >&2
        (cd "$dl" && apt-get download "${missing[@]}" >&2)
    fi
    chown -R 0:0 "$dl"
    mv "$dl"/*.deb "$debs"/
    rmdir "$dl"
fi

# --- up to date? -------------------------------------------------------------
key=$({
    sha256sum <"$script"
    for p in "${all_pkgs[@]}"; do basename "$(cached "$p")"; done
} | sha256sum | cut -d' ' -f1)
stamp=$dest/.stamp
if [[ -f $stamp && $(cat "$stamp") == "$key" && -f $dest/oci/index.json ]]; then
    echo "$dest/oci"
    exit 0
fi

tmp=$(mktemp -d "$out/.python.tmp.XXXXXX")
# The unpacked trees and the check bundle hold thousands of files: keep them
# off the ext4 disk, whose inode reuse delay makes later unpacks slow after
# mass deletion (see /work/shared/MACHINE-NOTES.md). Fall back to OUT_DIR.
if [[ -d /dev/shm && -w /dev/shm ]]; then
    scratch=$(mktemp -d /dev/shm/butte-python.XXXXXX)
else
    scratch=$(mktemp -d "$out/.python.scratch.XXXXXX")
fi
trap 'rm -rf "$tmp" "$scratch"' EXIT
chmod 755 "$tmp" "$scratch"

# unpack DIR PKG...: extract the cached .debs of PKG... into DIR and record
# "LAYER PACKAGE VERSION" in packages.txt.
unpack() {
    local dir=$1 layer
    layer=$(basename "$dir")
    shift
    mkdir -p "$dir"
    chmod 755 "$dir"
    for p in "$@"; do
        local deb
        deb=$(cached "$p")
        dpkg-deb -x "$deb" "$dir"
        echo "$layer $p $(dpkg-deb -f "$deb" Version)" >>"$tmp/packages.txt"
    done
    chown -R 0:0 "$dir"
}

# --- layer 1: base --------------------------------------------------------------
l1=$scratch/1-base
unpack "$l1" "${base_pkgs[@]}"
for d in bin etc proc sys dev root home home/app mnt run tmp var var/tmp opt opt/opaque; do
    mkdir -p "$l1/$d"
    chmod 755 "$l1/$d"
done
chmod 700 "$l1/root"
chmod 1777 "$l1/tmp" "$l1/var/tmp"
chown 1000:1000 "$l1/home/app"
"$l1/bin/busybox" --list | while read -r applet; do
    [[ -e $l1/bin/$applet || -L $l1/bin/$applet ]] || ln -s busybox "$l1/bin/$applet"
done
ln -sfn busybox "$l1/bin/sh"
cat >"$l1/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000::/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$l1/etc/group" <<'EOF'
root:x:0:
app:x:1000:
nogroup:x:65534:
nobody:x:65534:
EOF
echo "layer 1 put this here; layer 2 deletes it" >"$l1/etc/butte-deleted-later"
echo "old: hidden by the opaque directory of layer 3" >"$l1/opt/opaque/old.txt"
chmod 644 "$l1/etc/passwd" "$l1/etc/group" "$l1/etc/butte-deleted-later" "$l1/opt/opaque/old.txt"

# --- layer 2: python ------------------------------------------------------------
l2=$scratch/2-python
unpack "$l2" "${python_pkgs[@]}"
mkdir -p "$l2/etc"
: >"$l2/etc/.wh.butte-deleted-later"
chmod 644 "$l2/etc/.wh.butte-deleted-later"

# --- layer 3: science -----------------------------------------------------------
l3=$scratch/3-science
unpack "$l3" "${science_pkgs[@]}"
# What the postinst of libopenblas0-pthread does with update-alternatives.
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
    ln -sfn "openblas-pthread/$lib" "$l3/usr/lib/x86_64-linux-gnu/$lib"
done
mkdir -p "$l3/opt/opaque"
chmod 755 "$l3/opt" "$l3/opt/opaque"
: >"$l3/opt/opaque/.wh..wh..opq"
echo "new: the only file left in /opt/opaque" >"$l3/opt/opaque/new.txt"
chmod 644 "$l3/opt/opaque/.wh..wh..opq" "$l3/opt/opaque/new.txt"

# --- OCI image layout -----------------------------------------------------------
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

diff_ids=()
layers_json=()
for dir in "$l1" "$l2" "$l3"; do
    name=$(basename "$dir")
    # Members are named like docker's ("usr/bin/..."), without a "./" entry.
    mapfile -t top < <(find "$dir" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort)
    tar -C "$dir" --sort=name --mtime=@0 --numeric-owner --format=posix \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -cf "$tmp/$name.tar" -- "${top[@]}"
    usize=$(stat -c %s "$tmp/$name.tar")
    diff_ids+=("sha256:$(sha256sum "$tmp/$name.tar" | cut -d' ' -f1)")
    pigz -n -6 "$tmp/$name.tar"
    read -r digest size < <(put "$tmp/$name.tar.gz")
    layers_json+=("$(jq -nc --arg d "$digest" --argjson s "$size" \
        '{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $d, size: $s}')")
    log "layer $name: $size bytes gzip, $usize bytes tar ($digest)"
done

jq -nc --args '{
    architecture: "amd64", os: "linux",
    config: {
        Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
        Cmd: ["python3"],
        WorkingDir: "/"
    },
    rootfs: {type: "layers", diff_ids: $ARGS.positional},
    history: [
        {created_by: "images/python.sh: base (libc6, busybox-static)"},
        {created_by: "images/python.sh: python3.11"},
        {created_by: "images/python.sh: numpy, pandas"}
    ]
}' "${diff_ids[@]}" >"$tmp/config.json"
read -r config_digest config_size < <(put "$tmp/config.json")

printf '%s\n' "${layers_json[@]}" | jq -sc --arg cd "$config_digest" --argjson cs "$config_size" '{
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
    layers: .
}' >"$tmp/manifest.json"
read -r manifest_digest manifest_size < <(put "$tmp/manifest.json")

jq -nc --arg md "$manifest_digest" --argjson ms "$manifest_size" --arg tag "$tag" '{
    schemaVersion: 2,
    manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: $md, size: $ms,
        platform: {architecture: "amd64", os: "linux"},
        annotations: {"org.opencontainers.image.ref.name": $tag}
    }]
}' >"$oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"

# --- check the image ------------------------------------------------------------
rm -rf "$l1" "$l2" "$l3"
bundle=$scratch/bundle
umoci unpack --image "$oci:$tag" "$bundle" >&2
rootfs=$bundle/rootfs
chroot=$(command -v chroot)
answer=$(env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "$chroot" "$rootfs" /usr/bin/python3 -c 'print(6*7)')
[[ $answer == 42 ]] || { log "python3 in the image printed '$answer', not 42"; exit 1; }
env -i PATH=/usr/bin:/bin LANG=C.UTF-8 OPENBLAS_NUM_THREADS=1 "$chroot" "$rootfs" /usr/bin/python3 -c '
import numpy, pandas
assert numpy.linalg.solve(numpy.eye(3) * 2, numpy.ones(3)).sum() == 1.5
assert pandas.Series([1, 2, 3]).sum() == 6
' || { log "numpy/pandas do not work in the image"; exit 1; }
for gone in etc/butte-deleted-later opt/opaque/old.txt; do
    if [[ -e $rootfs/$gone ]]; then
        log "/$gone should have been deleted by a later layer"
        exit 1
    fi
done
[[ -f $rootfs/opt/opaque/new.txt ]] || { log "/opt/opaque/new.txt is missing"; exit 1; }
skopeo inspect "oci:$oci:$tag" >/dev/null
rm -rf "$bundle"

echo "$key" >"$tmp/.stamp"

# --- swap into place --------------------------------------------------------
if [[ -e $dest ]]; then
    mv "$dest" "$tmp/old"
fi
mv "$tmp" "$dest"
trap 'rm -rf "$scratch"' EXIT
rm -rf "$dest/old"
log "built $dest/oci (manifest $manifest_digest) in $((SECONDS - start)) s"
echo "$dest/oci"
