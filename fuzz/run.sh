#!/usr/bin/env bash
# Builds one fuzz target (or all) with cargo-afl and fuzzes each for SECONDS
# with AFL++, starting from fuzz/corpus/<target>/. Findings land in
# fuzz/out/<target>/default/{crashes,hangs}/; the script prints each one's
# path and exits non-zero when there is any.
#
#   fuzz/run.sh TARGET SECONDS    e.g. fuzz/run.sh tar 60
#   fuzz/run.sh all SECONDS       every target in turn
#
# Needs cargo-afl (`cargo install cargo-afl --locked`, which also builds
# AFL++). The build goes to $BUTTE_FUZZ_TARGET_DIR (default fuzz/target).
# BUTTE_FUZZ_OPT_LEVEL (default 3) trades speed for build time (CI: 1).
# Set BUTTE_FUZZ_CPU=N to pin afl-fuzz to CPU N (taskset); by default it
# does not bind to a core (AFL_NO_AFFINITY), since the machine is shared.
set -euo pipefail

usage() {
    echo "usage: $0 TARGET|all SECONDS" >&2
    echo "targets: $(targets | tr '\n' ' ')" >&2
    exit 2
}

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
targets() { ls "$fuzz_dir/src/bin" | sed 's/\.rs$//'; }

(($# == 2)) || usage
which=$1
seconds=$2
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds > 0)) || usage
if [[ $which == all ]]; then
    mapfile -t list < <(targets)
elif [[ -f $fuzz_dir/src/bin/$which.rs ]]; then
    list=("$which")
else
    echo "no fuzz target $which" >&2
    usage
fi

if ! cargo afl --version >/dev/null 2>&1; then
    echo "cargo-afl is missing: cargo install cargo-afl --locked" >&2
    exit 2
fi

target_dir=$(realpath -m "${BUTTE_FUZZ_TARGET_DIR:-$fuzz_dir/target}")
cd "$fuzz_dir"
export CARGO_TARGET_DIR=$target_dir
bins=()
for t in "${list[@]}"; do bins+=(--bin "$t"); done
echo "== build ${list[*]}"
AFL_OPT_LEVEL=${BUTTE_FUZZ_OPT_LEVEL:-3} cargo afl build --release --quiet "${bins[@]}"

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
export AFL_SKIP_CRASHES=0 AFL_NO_AFFINITY=1
pin=()
if [[ -n ${BUTTE_FUZZ_CPU:-} ]]; then
    pin=(taskset -c "$BUTTE_FUZZ_CPU")
fi

stat() { sed -n "s/^$1 *: *//p" "$2"; }

findings=()
for t in "${list[@]}"; do
    out=$fuzz_dir/out/$t
    rm -rf "$out"
    mkdir -p "$out"
    echo "== fuzz $t for ${seconds}s"
    # -t: a run over 2 s is a hang (archive targets touch the filesystem).
    if ! "${pin[@]}" cargo afl fuzz -V "$seconds" -t 2000 -i "corpus/$t" -o "$out" \
        -- "$CARGO_TARGET_DIR/release/$t" >"$out/afl.log" 2>&1; then
        tail -n 30 "$out/afl.log" >&2
        echo "afl-fuzz failed for $t (log: $out/afl.log)" >&2
        exit 1
    fi
    s=$out/default/fuzzer_stats
    printf '%s: execs %s, %s execs/s, corpus %s, crashes %s, hangs %s\n' "$t" \
        "$(stat execs_done "$s")" "$(stat execs_per_sec "$s")" \
        "$(stat corpus_count "$s")" "$(stat saved_crashes "$s")" "$(stat saved_hangs "$s")"
    for f in "$out"/default/crashes/id:* "$out"/default/hangs/id:*; do
        [[ -e $f ]] && findings+=("$f")
    done
done

if ((${#findings[@]})); then
    echo "== ${#findings[@]} finding(s); reproduce with the target's binary < FILE:" >&2
    printf '%s\n' "${findings[@]}" >&2
    exit 1
fi
echo "== no crashes or hangs"
