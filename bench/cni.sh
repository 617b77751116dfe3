#!/usr/bin/env bash
# Issue 12: the cost of the network step of a launch. Times
# `butte run --net bridge -- /bin/true` (a network namespace, CNI ADD of
# Debian's bridge + host-local + portmap, the /etc files, DEL at the end)
# against `butte run -- /bin/true` (host network) and `--net none`, and
# against `podman run --network bridge` when podman is installed.
#
#   bench/cni.sh                 (N=30 runs each; BUTTE=target/release/butte)
#   N=10 BUTTE=target/debug/butte bench/cni.sh
#   PLUGINS=1 bench/cni.sh       (`bridge` through Debian's bridge, host-local
#                                and portmap plugins, as before the built-in
#                                bridge was native: the same config in a file)
#
# Everything runs in a network namespace of its own (the script re-runs
# itself under `unshare --net`): the bridge, veths, iptables rules and
# addresses never touch the host's. Prints medians in ms, the network
# step (bridge - host) and, with podman, the ratio; JSON to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NAME=cni.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

N=${N:-30}
BUTTE=${BUTTE:-target/release/butte}
[[ $(id -u) == 0 ]] || die "needs root (namespaces, cgroups, iptables)"
[[ -x $BUTTE ]] || die "$BUTTE missing: run 'cargo build --release' first (or set BUTTE=)"
BUTTE=$(realpath "$BUTTE")
[[ -x /usr/lib/cni/bridge ]] || need_tools containernetworking-plugins
need_tools hyperfine jq

if [[ ${BUTTE_BENCH_OWN_NETNS:-} != 1 ]]; then
    exec env BUTTE_BENCH_OWN_NETNS=1 BUTTE="$BUTTE" N="$N" unshare --net -- "$0" "$@"
fi
ip link set lo up

TMP=$(mktemp -d /tmp/butte-cni-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mkdir -p bench/out "$TMP/conf"
json=bench/out/cni-$(date +%Y%m%d-%H%M%S)-$$.json
run=("$BUTTE" run --rm --work-dir "$TMP/work" --runtime-dir "$TMP/run"
    --cgroup-parent "butte-cni-bench-$$" --cni-config-dir "$TMP/conf")

# `lo`: a network of only the loopback plugin, which costs one plugin
# exec: what remains is butte's own part of the step (namespace, state,
# /etc files, DEL).
echo '{"cniVersion":"1.0.0","name":"lo","type":"loopback"}' >"$TMP/conf/lo.conf"
if [[ ${PLUGINS:-} == 1 ]]; then
    cat >"$TMP/conf/bridge.conflist" <<EOF
{"cniVersion":"1.0.0","name":"bridge","plugins":[
 {"type":"bridge","bridge":"butte0","isGateway":true,"ipMasq":true,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.87.0.0/16","gateway":"10.87.0.1"}]],
          "routes":[{"dst":"0.0.0.0/0"}],"dataDir":"$TMP/work/cni/networks"}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
EOF
fi
# One warm-up makes the bridge and the rules that stay (nftables table
# ip butte for the built-in bridge, iptables chains for the plugins).
"${run[@]}" --net bridge -p 18080:80 -- /bin/true

cmds=(
    -n host "${run[*]} -- /bin/true"
    -n none "${run[*]} --net none -- /bin/true"
    -n lo "${run[*]} --net lo -- /bin/true"
    -n bridge "${run[*]} --net bridge -- /bin/true"
    -n bridge-port "${run[*]} --net bridge -p 18080:80 -- /bin/true"
)
# podman runs the busybox test image (images/busybox.sh), taken from its
# OCI layout: no registry needed. Where its default crun cannot start here
# (hybrid cgroups; root without CAP_SYS_RESOURCE: see
# shared/MACHINE-NOTES.md) it runs with runc and rlimits that fit.
image=localhost/butte-bench/busybox:1
if command -v podman >/dev/null; then
    podman_run=""
    if podman image exists "$image" ||
        { id=$(podman pull -q "oci:$(dirname "$(images/busybox.sh)")/oci:1") &&
            podman tag "$id" "$image"; }; then
        for try in "podman run --rm" \
            "podman --runtime runc run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"; do
            if $try --network bridge "$image" true >/dev/null 2>&1; then
                podman_run=$try
                break
            fi
        done
    fi
    if [[ -n $podman_run ]]; then
        log "podman: $podman_run"
        cmds+=(-n podman-bridge "$podman_run --network bridge $image true"
            -n podman-none "$podman_run --network none $image true")
    else
        log "podman cannot run $image here: skipped"
    fi
fi
hyperfine -N -w 3 -r "$N" --export-json "$json" "${cmds[@]}" >&2

median() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$json"; }
host=$(median host)
bridge=$(median bridge)
port=$(median bridge-port)
printf 'median ms: host %.1f  none %.1f  lo %.1f  bridge %.1f  bridge+port %.1f\n' "$host" "$(median none)" "$(median lo)" "$bridge" "$port"
printf 'butte part of the step (lo - host, one loopback plugin exec included): %.1f ms\n' "$(echo "$(median lo) - $host" | bc -l)"
printf 'network step (bridge - host): %.1f ms; with a port mapping: %.1f ms\n' \
    "$(echo "$bridge - $host" | bc -l)" "$(echo "$port - $host" | bc -l)"
if command -v podman >/dev/null && [[ -n $(median podman-bridge) ]]; then
    pb=$(median podman-bridge)
    pn=$(median podman-none)
    printf 'podman network step: %.1f ms; butte/podman ratio %.2f\n' "$(echo "$pb - $pn" | bc -l)" \
        "$(echo "($bridge - $host) / ($pb - $pn)" | bc -l)"
fi
# Nothing left: no veth, no allocation, no published port (the table and
# the plugins' port chains are shared).
left=$(ip -o link show type veth | wc -l)
alloc=$(find "$TMP/work/cni/networks/bridge" -name '10.*' 2>/dev/null | wc -l)
ports=$(nft list map ip butte tcp-ports 2>/dev/null | grep -cE ' : [0-9]' || true)
echo "left after the runs: $left veth, $alloc addresses, $ports published ports"
echo "$json"
