#!/usr/bin/env bash
# Master failover through ZooKeeper: the time from the leading master's
# node leaving the group to the agent's re-registration arriving at the new
# leader (on another port), median over FAILOVERS failovers.
#
#   bench/failover.sh                 (FAILOVERS=20, debug build)
#   RELEASE=1 FAILOVERS=50 bench/failover.sh
#
# Runs the `bench_failover` driver in runtime-tests/zookeeper.rs as root: a
# standalone ZooKeeper (Debian's `zookeeper`) on loopback, two scripted
# masters joined to /mesos as `json.info_` members, one `butte agent
# --master zk://.../mesos --registration_backoff_factor 10ms`. Each round
# deletes the leader's node, waits for the ReregisterSlaveMessage at the
# other master, then brings a new master up as the follower.
# The agent waits a random time in [0, --registration_backoff_factor] after
# each detection before it re-registers, as Mesos does to spread a
# cluster's agents; with Mesos' default factor (1secs) that wait, median
# 0.5 s, dominates the figure by design.
# Target: median under 100 ms.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) == 0 ]] || { echo "failover.sh: needs root" >&2; exit 1; }
dpkg -s zookeeper >/dev/null 2>&1 || apt-get install -y -qq zookeeper
profile=()
[[ ${RELEASE:-0} == 1 ]] && profile=(--release)
BUTTE_RUNTIME_TESTS=1 FAILOVERS=${FAILOVERS:-20} RUST_LOG=${RUST_LOG:-info} \
    cargo test "${profile[@]}" --test runtime-tests bench_failover -- --ignored --nocapture 2>&1 |
    grep -E '^failover:|test result' || { echo "failover.sh: the driver failed" >&2; exit 1; }
