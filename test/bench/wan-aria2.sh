#!/usr/bin/env bash
# wan-aria2.sh DIR FILE LABS: the BitTorrent baseline of `npm run bench:wan`, in the namespaces wan-net.sh
# built: opentracker in hw-router (10.77.1.1:6969, whitelisted to this torrent), an aria2c seed in hw-seed
# holding FILE, one aria2c leecher per hw-lab<i>, all started paused and unpaused together. DHT, PEX and LPD
# are off: peers meet through the tracker, as in ../shared/bench/bt-swarm.sh (whose aria2 settings this
# follows). Every process is stopped by its PID. Prints one JSON line:
# {engine, allDoneSeconds, firstDoneSeconds, doneSeconds, seedShare, seedCpuSeconds, peerCpuSeconds, verified}
set -euo pipefail
DIR=${1:?DIR}; FILE=${2:?FILE}; LABS=${3:?LABS}
TIMEOUT=${RUN_TIMEOUT:-600}
P=hw-
GID=00000000000000a1
RPC=19100
PORT=51500
NET=$(dirname "$0")/wan-net.sh
SIZE=$(stat -c %s "$FILE")
CLK=$(getconf CLK_TCK)
mkdir -p "$DIR"
log() { printf '[aria2 %s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }

STARTED=()
cleanup() { local p; for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

ns_of() { [ "$1" = 0 ] && echo "${P}seed" || echo "${P}lab$(($1 - 1))"; }
addr_of() { [ "$1" = 0 ] && bash "$NET" addr seed || bash "$NET" addr "lab$(($1 - 1))"; }
rpc() { # peer method params
  ip netns exec "$(ns_of "$1")" curl -s --max-time 5 "http://127.0.0.1:$RPC/jsonrpc" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"aria2.$2\",\"params\":[${3:-}]}" 2>/dev/null || true
}
field() { rpc "$1" tellStatus "\"$GID\",[\"$2\"]" | grep -o "\"$2\":\"[0-9]*\"" | head -1 | tr -dc 0-9 || true; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

TORRENT=$DIR/release.torrent
transmission-create -o "$TORRENT" -t "http://10.77.1.1:6969/announce" "$FILE" >/dev/null
HASH=$(transmission-show "$TORRENT" | awk '/^ *Hash:/ { print $2; exit }')
SCRAPE=$(echo "$HASH" | sed 's/../%&/g')
mkdir -p "$DIR/tracker"; echo "$HASH" >"$DIR/tracker/whitelist.txt"
chmod 755 "$DIR" "$DIR/tracker"; chmod 644 "$DIR/tracker/whitelist.txt"
ip netns exec "${P}router" opentracker -i 10.77.1.1 -p 6969 -P 6969 -d "$DIR/tracker" -u nobody -w whitelist.txt >"$DIR/tracker/log" 2>&1 &
STARTED+=($!)

N=$((LABS + 1))
declare -a PID
for ((i = 0; i < N; i++)); do
  d=$DIR/p$i; mkdir -p "$d/dl"
  paused=true; verify=false; cap=0
  if [ "$i" = 0 ]; then paused=false; verify=true; ln -f "$FILE" "$d/dl/$(basename "$FILE")"; fi
  ip netns exec "$(ns_of "$i")" aria2c --no-conf=true --enable-rpc=true --rpc-listen-all=false --rpc-listen-port=$RPC \
    --gid=$GID --pause=$paused --dir="$d/dl" --interface="$(addr_of "$i")" --listen-port=$PORT \
    --disable-ipv6=true --enable-dht=false --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false \
    --seed-ratio=0.0 --check-integrity=$verify --file-allocation=none --allow-overwrite=true \
    --max-upload-limit=$cap --auto-save-interval=0 --summary-interval=0 \
    --console-log-level=warn --log="$d/aria2.log" --log-level=notice "$TORRENT" >"$d/log" 2>&1 &
  PID[i]=$!; STARTED+=($!)
done
for ((i = 0; i < N; i++)); do
  for ((k = 0; k < 100; k++)); do [ -n "$(rpc "$i" getVersion)" ] && break; sleep 0.2; done
  [ "$k" -lt 100 ] || { log "peer $i RPC did not come up"; exit 1; }
done
for ((k = 0; k < 300; k++)); do
  [ "$(field 0 completedLength)" = "$SIZE" ] &&
    ip netns exec "${P}router" curl -s --max-time 3 "http://10.77.1.1:6969/scrape?info_hash=$SCRAPE" | grep -aq 'completei1e' && break
  sleep 0.2
done
[ "$k" -lt 300 ] || { log "seed did not start seeding in 60 s"; exit 1; }
log "seed ready; $LABS leechers start"

declare -a C0 DONE
for ((i = 0; i < N; i++)); do C0[i]=$(cpu_ticks "${PID[i]}"); done
T0=$(now)
UNPAUSE=()
for ((i = 1; i < N; i++)); do rpc "$i" unpause "\"$GID\"" >/dev/null & UNPAUSE+=($!); done
wait "${UNPAUSE[@]}"
remaining=$LABS
while [ "$remaining" -gt 0 ]; do
  t=$(awk -v a="$(now)" -v b="$T0" 'BEGIN { printf "%.2f", a - b }')
  [ "$(awk -v t="$t" -v m="$TIMEOUT" 'BEGIN { print (t > m) }')" = 1 ] && { log "timeout with $remaining left"; exit 1; }
  for ((i = 1; i < N; i++)); do
    if [ -z "${DONE[i]:-}" ] && [ "$(field "$i" completedLength)" = "$SIZE" ]; then DONE[i]=$t; remaining=$((remaining - 1)); fi
  done
  sleep 0.25
done
seedup=$(field 0 uploadLength)
cpu_seed=$(awk -v a="$(cpu_ticks "${PID[0]}")" -v b="${C0[0]}" -v h="$CLK" 'BEGIN { printf "%.2f", (a - b) / h }')
cpu_sum=0
for ((i = 1; i < N; i++)); do cpu_sum=$(awk -v s="$cpu_sum" -v a="$(cpu_ticks "${PID[i]}")" -v b="${C0[i]}" -v h="$CLK" 'BEGIN { printf "%.2f", s + (a - b) / h }'); done
cleanup; STARTED=()
verified=true
for ((i = 1; i < N; i++)); do cmp -s "$FILE" "$DIR/p$i/dl/$(basename "$FILE")" || verified=false; done
done_list=$(for ((i = 1; i < N; i++)); do echo "${DONE[i]}"; done | paste -sd, -)
first=$(echo "$done_list" | tr , '\n' | sort -g | head -1)
last=$(echo "$done_list" | tr , '\n' | sort -g | tail -1)
printf '{"engine":"aria2","allDoneSeconds":%s,"firstDoneSeconds":%s,"doneSeconds":[%s],"seedShare":%s,"seedCpuSeconds":%s,"peerCpuSeconds":%s,"verified":%s}\n' \
  "$last" "$first" "$done_list" "$(awk -v u="$seedup" -v s="$SIZE" 'BEGIN { printf "%.3f", u / s }')" "$cpu_seed" \
  "$(awk -v s="$cpu_sum" -v n="$LABS" 'BEGIN { printf "%.2f", s / n }')" "$verified"
