#!/usr/bin/env bash
# Fetching and extracting a 200 MB tar.gz from a loopback HTTP server: butte vs
# `curl -s URL | tar xz`, side by side; and a fetcher cache hit of the same artifact.
#
#   bench/fetch.sh                  (N=5 runs each; BUTTE=target/release/butte)
#   N=10 BUTTE=/path/to/butte bench/fetch.sh
#
# 1. Builds a deterministic application tree once (bench/out/fetch-data/): 40 random
#    2.5 MB "jars", 2000 150 kB text files, 5000 2 kB config files; 392 MB in 7040
#    files, about 197 MB as a tar.gz. Serves it with `python3 -m http.server`.
# 2. Times with hyperfine, each run into a fresh, empty directory:
#      curl|tar      curl -s URL | tar xz
#      butte         butte fetch --sandbox FRESH URL          (Mesos semantics: the
#                    archive is kept in the sandbox beside what it unpacked)
#      butte-cache   butte fetch --sandbox FRESH URL,cache    (empty cache: download,
#                    unpack into the cache, hard-link into the sandbox)
#      cache-hit     butte fetch --sandbox FRESH URL,cache    (warm cache)
#    Targets: butte/curl|tar <= 1.2; cache-hit/cold < 0.05.
#
# The root filesystem is ext4 without a journal (/work/shared/MACHINE-NOTES.md):
# nothing is deleted between timed runs. Each run's --prepare moves the last
# destination into bench/out/trash.PID (emptied at the end) and syncs, so that one
# run's writeback does not land in the next. JSON goes to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-5}
BUTTE=${BUTTE:-target/release/butte}
NAME=fetch.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

need_butte "$BUTTE" fetch
BUTTE=$(realpath "$BUTTE")

need_tools hyperfine jq curl python3 tar gzip

mkdir -p bench/out
OUT=$(realpath bench/out)
STAMP=$(date +%Y%m%d-%H%M%S)-$$
json=$OUT/fetch-$STAMP.json
hit_json=$OUT/fetch-$STAMP-hit.json
summary_json=$OUT/fetch-$STAMP-summary.json
DATA=$OUT/fetch-data
DEST=$OUT/fetch-work.$$
TRASH=$OUT/trash.$$
SRV_PID=

cleanup() {
    set +e
    if [[ -n $SRV_PID ]]; then
        kill "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
    fi
    if [[ -d $TRASH || -d $DEST ]]; then
        log "emptying the trash"
        rm -rf "$TRASH" "$DEST"
    fi
}
trap cleanup EXIT

# --- the artifact ------------------------------------------------------------------
read -r -d '' GEN <<'EOF' || true
import os, random, sys
root = sys.argv[1]
rng = random.Random(4)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 10)))
         for _ in range(1000)]
corpus = ' '.join(rng.choice(words) for _ in range(900000)).encode()
def w(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
for i in range(40):
    w(f'{root}/lib/blob{i:02}.jar', rng.randbytes(2_500_000))
for i in range(2000):
    o = rng.randrange(len(corpus) - 150_000)
    w(f'{root}/share/doc{i // 100:02}/text{i:04}.txt', corpus[o:o + 150_000])
for i in range(5000):
    o = rng.randrange(len(corpus) - 2048)
    w(f'{root}/conf/d{i // 250:02}/small{i:04}.conf', corpus[o:o + 2048])
EOF
gen_sum=$(printf '%s' "$GEN" | sha256sum | cut -c1-16)
if [[ $(cat "$DATA/.stamp" 2>/dev/null) != "$gen_sum" ]]; then
    log "building the artifact (once)"
    rm -rf "$DATA"
    mkdir -p "$DATA/src"
    python3 -c "$GEN" "$DATA/src/app"
    tar -C "$DATA/src" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - app |
        gzip -n -6 >"$DATA/app.tar.gz"
    mkdir -p "$TRASH"
    mv "$DATA/src" "$TRASH/" # deleted at the end, not before the timed runs
    echo "$gen_sum" >"$DATA/.stamp"
fi
gz_bytes=$(stat -c %s "$DATA/app.tar.gz")
files=$(tar -tzf "$DATA/app.tar.gz" | wc -l)

# --- the server --------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$DATA" >/dev/null 2>&1 &
SRV_PID=$!
URL=http://127.0.0.1:$port/app.tar.gz
wait_http "$URL" "$SRV_PID" "python3 -m http.server"
log "serving $URL ($((gz_bytes / 1000000)) MB, $files entries)"

# --- cold: curl | tar vs butte -----------------------------------------------------
mkdir -p "$DEST" "$TRASH"
write_prepare "$DEST/prepare.sh" "$TRASH" "$DEST/cur" "$DEST/hit"
cat >"$DEST/peer.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
cd "$DEST/cur"
curl -s "$URL" | tar xz
EOF
chmod +x "$DEST/prepare.sh" "$DEST/peer.sh"

cold=("$BUTTE" fetch --work-dir "$DEST/cur/work" --sandbox "$DEST/cur/sb" "$URL")
cold_cache=("$BUTTE" fetch --work-dir "$DEST/cur/work" --sandbox "$DEST/cur/sb" "$URL,cache")
hit=("$BUTTE" fetch --work-dir "$DEST/warm" --sandbox "$DEST/hit/sb" "$URL,cache")

# One untimed round each: all work and agree, and the artifact is in the page cache.
"$DEST/prepare.sh"
"$DEST/peer.sh" || die "curl | tar fails"
"${cold[@]}" 2>/dev/null || die "butte fetch fails: ${cold[*]}"
diff -r "$DEST/cur/app" "$DEST/cur/sb/app" || die "butte and tar unpacked different trees"
"${hit[@]}" 2>/dev/null || die "butte fetch (filling the cache) fails: ${hit[*]}"

words() { printf '%q ' "$@"; }
hyperfine -N --runs "$N" --prepare "$DEST/prepare.sh" --export-json "$json" \
    -n 'curl|tar' "$(words "$DEST/peer.sh")" \
    -n butte "$(words "${cold[@]}")" \
    -n butte-cache "$(words "${cold_cache[@]}")" >&2

# --- cache hit -----------------------------------------------------------------------
hyperfine -N --warmup 2 --runs "$((N * 4 > 20 ? N * 4 : 20))" --prepare "$DEST/prepare.sh" \
    --export-json "$hit_json" -n cache-hit "$(words "${hit[@]}")" >&2
[[ -f $DEST/hit/sb/app/lib/blob00.jar ]] || die "the cache hit placed nothing"

median() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$2"; }
mc=$(median 'curl|tar' "$json") mb=$(median butte "$json") mbc=$(median butte-cache "$json")
mh=$(median cache-hit "$hit_json")

jq -n --argjson mc "$mc" --argjson mb "$mb" --argjson mbc "$mbc" --argjson mh "$mh" \
    --argjson n "$N" --argjson gz "$gz_bytes" --argjson files "$files" \
    --arg cold "$json" --arg hit "$hit_json" '{
    runs: $n, artifact_bytes: $gz, entries: $files,
    median_ms: {"curl|tar": $mc, butte: $mb, "butte-cache": $mbc, "cache-hit": $mh},
    cold_ratio: ($mb / $mc), cold_cache_ratio: ($mbc / $mc), target_cold_ratio: 1.2,
    hit_over_cold: ($mh / $mbc), target_hit_over_cold: 0.05,
    hyperfine: {cold: $cold, hit: $hit}}' >"$summary_json"

echo "fetch + extract $((gz_bytes / 1000000)) MB tar.gz ($files entries) from loopback, N=$N, median ms:"
awk -v c="$mc" -v b="$mb" -v bc="$mbc" 'BEGIN {
    printf "  curl|tar  %.0f   butte  %.0f   butte (through the cache)  %.0f\n", c, b, bc
    printf "  butte/curl|tar  %.2f   cached/curl|tar  %.2f  (target <= 1.20)\n", b / c, bc / c }'
awk -v h="$mh" -v bc="$mbc" 'BEGIN {
    printf "  cache hit  %.1f   hit/cold  %.3f  (target < 0.05)\n", h, h / bc }'
echo "  json: $summary_json"
