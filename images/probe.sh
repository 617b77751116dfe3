#!/usr/bin/env bash
# Build the hardening probe (images/probe.c) as a static binary.
#
#   images/probe.sh [OUT_DIR]        (default: images/out)
#
# Produces OUT_DIR/probe/probe with `cc -static -O2`. Skips the work when
# the binary is newer than probe.c and this script. Logs go to stderr; the
# last (only) line on stdout is the binary's path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
dest=$out/probe
src=$here/probe.c
bin=$dest/probe

log() { echo "probe.sh: $*" >&2; }

if [[ -x $bin && $bin -nt $src && $bin -nt ${BASH_SOURCE[0]} ]]; then
    echo "$bin"
    exit 0
fi

if ! command -v cc >/dev/null || [[ ! -e /usr/lib/x86_64-linux-gnu/libc.a && ! -e /usr/lib/libc.a ]]; then
    log "installing gcc and libc6-dev"
    DEBIAN_FRONTEND=noninteractive apt-get install -y gcc libc6-dev >&2
fi

mkdir -p "$dest"
tmp=$(mktemp "$dest/.probe.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cc -static -O2 -Wall -Wextra -Werror -o "$tmp" "$src" >&2
chmod 755 "$tmp"
mv "$tmp" "$bin"
trap - EXIT
log "built $bin"
echo "$bin"
