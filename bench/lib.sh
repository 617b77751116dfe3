# Shared by the bench scripts; source it after `cd` to the repo root.
# Each script sets NAME (for log lines) before sourcing.
# shellcheck shell=bash

log() { echo "${NAME:-bench}: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# need_butte BUTTE SUBCOMMAND...: the binary exists and knows the subcommand.
need_butte() {
    local butte=$1
    shift
    [[ -x $butte ]] || die "$butte missing or not executable: run 'cargo build --release' first (or set BUTTE=)"
    "$butte" "$@" --help >/dev/null 2>&1 || die "$butte has no '$*'"
}

# need_tools CMD...: installs the Debian packages of the same name that are missing.
need_tools() {
    local missing=() c
    for c in "$@"; do
        command -v "$c" >/dev/null || missing+=("$c")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
    fi
}

# wait_http URL PID WHAT: waits (10 s) until URL answers, failing early if PID dies.
wait_http() {
    local url=$1 pid=$2 what=$3
    for _ in $(seq 200); do
        curl -fsI "$url" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited"
        sleep 0.05
    done
    curl -fsI "$url" >/dev/null || die "$what does not answer on $url"
}

# write_prepare FILE TRASH DIR...: a hyperfine --prepare script that gives
# each run fresh, empty DIRs, moving the last ones into TRASH instead of
# deleting them (the unjournaled ext4, /work/shared/MACHINE-NOTES.md).
write_prepare() {
    local file=$1 trash=$2
    shift 2
    # shellcheck disable=SC2016 # the generated script's own variables
    {
        echo '#!/usr/bin/env bash'
        echo 'set -euo pipefail'
        echo "t=\$(mktemp -d \"$trash/run.XXXXXX\")"
        echo "for d in $(printf '"%s" ' "$@"); do"
        echo '    if [[ -e $d ]]; then mv "$d" "$t/"; fi'
        echo '    mkdir "$d"'
        echo 'done'
        echo 'sync'
    } >"$file"
    chmod +x "$file"
}
