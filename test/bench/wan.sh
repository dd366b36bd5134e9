#!/usr/bin/env bash
# wan.sh [--labs 6] [--size 128MiB] [--baseline aria2|none]: `npm run bench:wan`. Builds the emulated WAN
# (wan-net.sh up), runs the benchmark (build/test/bench/wan.js) inside the router namespace, and removes
# every namespace on exit, whatever the outcome. Needs root, iproute2 (ip, tc), and for the baseline aria2,
# opentracker, transmission-create and curl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench:wan needs root (network namespaces, tc)" >&2; exit 1; }
labs=6
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" = --labs ] && labs=${args[i + 1]}; done
export WAN_NET=$here/wan-net.sh SEED_UP=${SEED_UP:-100mbit} LAB_UP=${LAB_UP:-50mbit} LAB_DOWN=${LAB_DOWN:-200mbit} CAMPUS=${CAMPUS:-1gbit}
if ip netns list | grep -q '^hw-'; then echo "namespaces hw-* exist already (another bench:wan running?)" >&2; exit 1; fi
trap 'bash "$WAN_NET" down' EXIT
trap 'exit 130' INT TERM
bash "$WAN_NET" up "$labs"
ip netns exec hw-router node "${BENCH_BUILD_DIR:-$root/build}/test/bench/wan.js" "$@"
