#!/usr/bin/env bash
# Builds the Debian package of butte with dpkg-deb (no debhelper, no
# cargo-deb: nothing to install beyond dpkg and binutils).
#
#   packaging/deb/build.sh [OUT_DIR]     # prints the path of the .deb
#
# Builds `cargo build --release --bins` unless BUTTE_DEB_BIN_DIR names a
# directory that already holds butte and butte-executor.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mkdir -p "${1:-$root/target/deb}" && cd "${1:-$root/target/deb}" && pwd)

# Who answers for this build (Debian's DEBFULLNAME / DEBEMAIL; a placeholder by default).
maintainer="${DEBFULLNAME:-butte developers} <${DEBEMAIL:-butte@example.com}>"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
bin=${BUTTE_DEB_BIN_DIR:-}
if [[ -z $bin ]]; then
    (cd "$root" && cargo build --release --bins >&2)
    bin=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/butte
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/default" \
    "$pkg/usr/share/doc/butte" "$pkg/usr/share/man/man1"

# The binaries, without symbols. butte-executor sits next to butte: the agent
# starts it from there.
for b in butte butte-executor; do
    install -m 0755 "$bin/$b" "$pkg/usr/bin/$b"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/bin/$b"
done
install -m 0644 "$root/packaging/butte-agent.service" "$pkg/lib/systemd/system/butte-agent.service"
install -m 0644 "$root/packaging/butte-agent.default" "$pkg/etc/default/butte-agent"

# Manual pages from --help.
manpage() { # NAME SUMMARY HELP_TEXT
    printf '.TH %s 1 "" "butte %s" "User Commands"\n.SH NAME\n%s \\- %s\n.SH DESCRIPTION\n.nf\n' \
        "${1^^}" "$version" "$1" "$2"
    sed -e 's/\\/\\e/g' -e 's/^\([.'\'']\)/\\\&\1/' <<<"$3"
    printf '.fi\n.SH SEE ALSO\n/usr/share/doc/butte/README.md\n'
}
help=$("$pkg/usr/bin/butte" --help)
for sub in run image fetch agent executor; do
    help+=$'\n\n'"butte $sub:"$'\n'$("$pkg/usr/bin/butte" "$sub" --help)
done
manpage butte "a Mesos agent and container runtime" "$help" | gzip -9n >"$pkg/usr/share/man/man1/butte.1.gz"
manpage butte-executor "the built-in Mesos command and default executors" \
    "$("$pkg/usr/bin/butte-executor" --help)" | gzip -9n >"$pkg/usr/share/man/man1/butte-executor.1.gz"

# Documentation: copyright, changelog, README.
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/butte/README.md"
gzip -9n "$pkg/usr/share/doc/butte/README.md"
cat >"$pkg/usr/share/doc/butte/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: butte

Files: *
Copyright: 2026 the butte authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
date=$(date -R -d "@$(cd "$root" && git log -1 --format=%ct 2>/dev/null || date +%s)")
printf 'butte (%s) unstable; urgency=medium\n\n  * Built from the butte tree.\n\n -- %s  %s\n' \
    "$version" "$maintainer" "$date" | gzip -9n >"$pkg/usr/share/doc/butte/changelog.gz"

# lintian: the maintainer scripts call systemctl themselves (no debhelper,
# hence no deb-systemd-helper), each call guarded by /run/systemd/system.
install -d "$pkg/usr/share/lintian/overrides"
echo 'butte: maintainer-script-calls-systemctl *' >"$pkg/usr/share/lintian/overrides/butte"

# Dependencies: the libraries the binaries link (libc, libseccomp), each at
# the version its symbols need, as dpkg-shlibdeps computes it.
mkdir -p "$stage/debian"
printf 'Source: butte\n\nPackage: butte\nArchitecture: any\n' >"$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O -e"$pkg/usr/bin/butte" -e"$pkg/usr/bin/butte-executor" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
rm -r "$stage/debian"

size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: butte
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Recommends: nftables, containernetworking-plugins
Section: admin
Priority: optional
Description: Mesos agent and container runtime in one small binary
 butte is a memory-safe, drop-in replacement for the Apache Mesos agent and
 its container runtime. It registers with a Mesos master, runs tasks in
 sandboxes isolated by Linux namespaces and limited by cgroups (v1, v2 and
 hybrid hosts), and recovers them across restarts.
 .
 The agent runs as the systemd service butte-agent; set MESOS_MASTER in
 /etc/default/butte-agent, then: systemctl enable --now butte-agent
CONTROL
echo /etc/default/butte-agent >"$pkg/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$pkg/DEBIAN/"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/control"

deb=$out/butte_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
