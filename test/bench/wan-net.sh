#!/usr/bin/env bash
# wan-net.sh: the emulated WAN of `npm run bench:wan`, built from network namespaces, veth pairs and tc.
#
#   wan-net.sh up LABS      create the namespaces and links (LABS ≥ 2; labs 0 and 1 share a campus)
#   wan-net.sh down         remove every namespace this script creates (prefix hw-), by name
#   wan-net.sh addr NODE    the address of seed | lab<i> | router
#   wan-net.sh stats        tc byte counters of the shaped links, one "name bytes" pair a line
#   wan-net.sh aria2 DIR FILE LABS   the same release day with aria2c + opentracker in the same namespaces;
#                           prints one JSON line
#
# Topology (all addresses private, 10.77.0.0/16; nothing is routed outside the namespaces):
#
#     hw-seed  10.77.1.2 ─┐                      ┌─ hw-lab0 10.77.100.2 ┐ campus: 1 Gbit/s between them,
#     hw-lab2 10.77.12.2 ─┤                      │                      │ 200/50 Mbit/s to anything else
#     hw-lab3 10.77.13.2 ─┼── hw-router ── hw-campus
#       …                 ┘  (10.77.x.1)  (10.77.2.2)─ hw-lab1 10.77.101.2 ┘
#
# Shaping, on the egress of each veth (tc tbf, or htb + u32 where campus traffic takes another class):
#   seed: 100 Mbit/s up, 1 Gbit/s down; each lab: 50 Mbit/s up, 200 Mbit/s down; lab0 <-> lab1: 1 Gbit/s
#   each way; the campus uplink (hw-campus <-> hw-router) is not shaped (2 × 200 Mbit/s fits in it).
# No delay and no loss: this kernel has no netem (nor fq, sfq, cake), so RTT is not emulated. The only
# delay is what the tbf/htb queues add under load (tbf latency bound 50 ms); the round trip on an idle link
# is that of a veth pair (tens of microseconds). Nearest-peer choice is shown through bandwidth alone.
set -euo pipefail

P=hw-
SEED_UP=${SEED_UP:-100mbit}
LAB_UP=${LAB_UP:-50mbit}
LAB_DOWN=${LAB_DOWN:-200mbit}
CAMPUS=${CAMPUS:-1gbit}
SEED_DOWN=${SEED_DOWN:-1gbit}
CAMPUS_NET=10.77.100.0/23

die() { echo "wan-net.sh: $*" >&2; exit 1; }

lab_net() { # lab index -> third octet
  case $1 in 0) echo 100 ;; 1) echo 101 ;; *) echo $((10 + $1)) ;; esac
}
addr() {
  case $1 in
    seed) echo 10.77.1.2 ;;
    router) echo 10.77.1.1 ;;
    lab*) echo "10.77.$(lab_net "${1#lab}").2" ;;
    *) die "no node $1" ;;
  esac
}

ns_add() { ip netns add "$P$1"; ip -n "$P$1" link set lo up; }
# link NS_A IF_A ADDR_A NS_B IF_B ADDR_B
link() {
  ip link add "$2" netns "$P$1" type veth peer name "$5" netns "$P$4"
  ip -n "$P$1" addr add "$3/24" dev "$2"; ip -n "$P$1" link set "$2" up
  ip -n "$P$4" addr add "$6/24" dev "$5"; ip -n "$P$4" link set "$5" up
}
tbf() { tc -n "$P$1" qdisc add dev "$2" root tbf rate "$3" burst 64kb latency 50ms; }
# htb_split NS IF MATCH(src|dst) FAST DEFAULT: campus traffic in class 1:10, everything else in 1:20
htb_split() {
  tc -n "$P$1" qdisc add dev "$2" root handle 1: htb default 20 r2q 1000
  tc -n "$P$1" class add dev "$2" parent 1: classid 1:10 htb rate "$4" burst 64kb
  tc -n "$P$1" class add dev "$2" parent 1: classid 1:20 htb rate "$5" burst 64kb
  tc -n "$P$1" filter add dev "$2" parent 1: protocol ip prio 1 u32 match ip "$3" "$CAMPUS_NET" flowid 1:10
}

up() {
  local labs=$1 i o
  [ "$labs" -ge 2 ] && [ "$labs" -le 60 ] || die "LABS must be 2..60"
  [ "$(id -u)" = 0 ] || die "needs root (ip netns, tc)"
  ns_add router; ns_add campus; ns_add seed
  ip netns exec "${P}router" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "${P}campus" sysctl -qw net.ipv4.ip_forward=1
  # seed
  link seed eth0 10.77.1.2 router v-seed 10.77.1.1
  ip -n "${P}seed" route add default via 10.77.1.1
  tbf seed eth0 "$SEED_UP"; tbf router v-seed "$SEED_DOWN"
  # campus router behind the core router
  link campus up0 10.77.2.2 router v-campus 10.77.2.1
  ip -n "${P}campus" route add default via 10.77.2.1
  ip -n "${P}router" route add "$CAMPUS_NET" via 10.77.2.2
  for ((i = 0; i < labs; i++)); do
    ns_add "lab$i"
    o=$(lab_net "$i")
    if [ "$i" -lt 2 ]; then
      link "lab$i" eth0 "10.77.$o.2" campus "v-lab$i" "10.77.$o.1"
      htb_split "lab$i" eth0 dst "$CAMPUS" "$LAB_UP"
      htb_split campus "v-lab$i" src "$CAMPUS" "$LAB_DOWN"
    else
      link "lab$i" eth0 "10.77.$o.2" router "v-lab$i" "10.77.$o.1"
      tbf "lab$i" eth0 "$LAB_UP"; tbf router "v-lab$i" "$LAB_DOWN"
    fi
    ip -n "${P}lab$i" route add default via "10.77.$o.1"
  done
}

down() {
  local n
  for n in $(ip netns list | awk '{ print $1 }' | grep "^$P" || true); do ip netns del "$n" || true; done
}

# counters: "<name> <bytes>" for the links the benchmark reads
stats() {
  local i
  echo "seed_up $(tc -n "${P}seed" -s qdisc show dev eth0 | awk '/Sent/ { print $2; exit }')"
  for i in 0 1; do
    # bytes into lab i from its campus neighbour (class 1:10) and from everywhere else (1:20)
    echo "lab${i}_from_campus $(tc -n "${P}campus" -s class show dev "v-lab$i" | awk '/class htb 1:10/ { f = 1 } f && /Sent/ { print $2; exit }')"
    echo "lab${i}_from_wan $(tc -n "${P}campus" -s class show dev "v-lab$i" | awk '/class htb 1:20/ { f = 1 } f && /Sent/ { print $2; exit }')"
  done
}

case ${1:-} in
  up) up "${2:?LABS}" ;;
  down) down ;;
  addr) addr "${2:?NODE}" ;;
  stats) stats ;;
  aria2) exec bash "$(dirname "$0")/wan-aria2.sh" "${@:2}" ;;
  *) die "usage: wan-net.sh up LABS | down | addr NODE | stats | aria2 DIR FILE LABS" ;;
esac
