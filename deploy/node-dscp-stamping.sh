#!/usr/bin/env bash
# Node-side DSCP stamping for transparent network policies (spec/capture.md §8 "Marking"), for
# clusters without Calico. It is the rule Calico Felix installs when FelixConfiguration has
# `istioAmbientMode: Enabled`: on the node that hosts the destination pod, the SYN of a new TCP
# connection whose source AND destination are both mesh pods gets DSCP N as it leaves the node
# toward the pod. The in-pod rule (deploy/inpod-redirect.sh --dscp-mark N) then redirects it to
# ztunnel's 15008. Only the first packet matters: nat decides per connection on the SYN.
#
# Usage:
#   deploy/node-dscp-stamping.sh install <netns|host> --dscp N (--pod-cidr CIDR ... | --mesh-ip IP ... | --ipset NAME) [--out-iface IF]
#   deploy/node-dscp-stamping.sh remove  <netns|host>
#   deploy/node-dscp-stamping.sh show    <netns|host>
#
#   <netns|host>   `host` for the node's own network namespace, else a name under /run/netns or a
#                  path such as /proc/<pid>/ns/net (the netns test bed's nodes)
#   --dscp N       DSCP value 0..63 (Calico istioDSCPMark, default 23); must equal ztunnel's
#                  ZTUNNEL_DSCP_MARK and the in-pod --dscp-mark
#   --pod-cidr C   a range whose addresses are all mesh pods (repeatable)
#   --mesh-ip IP   one mesh pod address (repeatable)
#   --ipset NAME   an existing `hash:ip`/`hash:net` ipset of mesh pod addresses, kept current by
#                  your own controller (Felix keeps one from the istio.io/dataplane-mode label)
#   --out-iface IF interface (iptables pattern) toward the pods; default `cali+` (Calico veths).
#                  A bridge CNI routes to the bridge (e.g. cni0 / br0), not to the pod veth.
#
# Every run of install rewrites the chains atomically (iptables-restore --noflush); the jump from
# mangle POSTROUTING is added once. IPv4 only (the IPv6 form is the same with ip6tables).
set -euo pipefail

readonly CHAIN=ZTUNNEL_DSCP_STAMP       # POSTROUTING → here: TCP, NEW, toward pods
readonly SRC_CHAIN=ZTUNNEL_DSCP_SRC     # source is a mesh pod → destination check
readonly COMMENT=ztunnel-dscp-stamp

usage() {
  sed -n '9,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 2 ]] || usage
ACTION=$1
TARGET=$2
shift 2
DSCP=
OUT_IFACE='cali+'
IPSET=
MEMBERS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --dscp)
      [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -le 63 ]] || { echo "--dscp needs a value 0..63" >&2; exit 2; }
      DSCP=$2; shift ;;
    --pod-cidr|--mesh-ip)
      [[ $# -ge 2 && $2 =~ ^[0-9.]+(/[0-9]+)?$ ]] || { echo "$1 needs an IPv4 address or CIDR" >&2; exit 2; }
      MEMBERS+=("$2"); shift ;;
    --ipset)
      [[ $# -ge 2 && -n $2 ]] || { echo "--ipset needs a set name" >&2; exit 2; }
      IPSET=$2; shift ;;
    --out-iface)
      [[ $# -ge 2 && -n $2 ]] || { echo "--out-iface needs an interface" >&2; exit 2; }
      OUT_IFACE=$2; shift ;;
    *) usage ;;
  esac
  shift
done

in_ns() {
  if [[ $TARGET == host ]]; then
    "$@"
  elif [[ $TARGET == */* ]]; then
    nsenter --net="$TARGET" "$@"
  else
    ip netns exec "$TARGET" "$@"
  fi
}

if [[ $TARGET != host ]]; then
  if [[ $TARGET == */* ]]; then
    [[ -e $TARGET ]] || { echo "no such network namespace: $TARGET" >&2; exit 1; }
  else
    [[ -e /run/netns/$TARGET ]] || { echo "no such network namespace: $TARGET (see ip netns list)" >&2; exit 1; }
  fi
fi

c() { printf -- '-m comment --comment "%s/%s"' "$COMMENT" "$1"; }

# Source AND destination must be mesh pods: a non-mesh client's plaintext must keep taking the
# 15006 path (capture.md §8), so it is never stamped. Without ipset, the two membership tests are
# two chains (source in SRC_CHAIN's jump, destination in its rules) instead of a cross product.
ruleset() {
  echo '*mangle'
  echo ":$CHAIN - [0:0]"
  echo ":$SRC_CHAIN - [0:0]"
  if [[ -n $IPSET ]]; then
    echo "-A $CHAIN -m set --match-set $IPSET src -m set --match-set $IPSET dst $(c stamp) -j DSCP --set-dscp $DSCP"
  else
    local m
    for m in "${MEMBERS[@]}"; do echo "-A $CHAIN -s $m $(c mesh-src) -j $SRC_CHAIN"; done
    for m in "${MEMBERS[@]}"; do echo "-A $SRC_CHAIN -d $m $(c stamp) -j DSCP --set-dscp $DSCP"; done
  fi
  echo 'COMMIT'
}

# POSTROUTING: TCP, first packet of the connection (conntrack NEW), leaving toward the pods.
jump_args() {
  echo "-p tcp -m conntrack --ctstate NEW -o $OUT_IFACE -m comment --comment $COMMENT/jump -j $CHAIN"
}

# Deletes every jump to our chain from POSTROUTING, by rule number (first match each time).
remove_jumps() {
  local n
  while n=$(in_ns iptables -w -t mangle -L POSTROUTING -n --line-numbers 2>/dev/null | awk -v c="$CHAIN" '$2 == c { print $1; exit }') && [[ -n $n ]]; do
    in_ns iptables -w -t mangle -D POSTROUTING "$n"
  done
}

remove_rules() {
  remove_jumps
  for ch in $CHAIN $SRC_CHAIN; do
    in_ns iptables -w -t mangle -F $ch 2>/dev/null || true
    in_ns iptables -w -t mangle -X $ch 2>/dev/null || true
  done
}

case $ACTION in
  install)
    [[ -n $DSCP ]] || { echo "install needs --dscp N" >&2; exit 2; }
    [[ -n $IPSET || ${#MEMBERS[@]} -gt 0 ]] || { echo "install needs --pod-cidr, --mesh-ip or --ipset" >&2; exit 2; }
    [[ -z $IPSET || ${#MEMBERS[@]} -eq 0 ]] || { echo "--ipset excludes --pod-cidr / --mesh-ip" >&2; exit 2; }
    ruleset | in_ns iptables-restore -w 10 --noflush
    # shellcheck disable=SC2046
    if ! in_ns iptables -w -t mangle -C POSTROUTING $(jump_args) 2>/dev/null; then
      # A jump installed with another --out-iface is replaced, ours is added once.
      remove_jumps
      # shellcheck disable=SC2046
      in_ns iptables -w -t mangle -A POSTROUTING $(jump_args)
    fi
    ;;
  remove)
    remove_rules
    ;;
  show)
    in_ns iptables -w -t mangle -S | grep -E "$CHAIN|$SRC_CHAIN" || true
    ;;
  *) usage ;;
esac
