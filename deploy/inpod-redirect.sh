#!/usr/bin/env bash
# In-pod traffic capture rules for ztunnel-ts shared mode, for nodes without istio-cni (and for the
# netns test bed). Installs in a pod's network namespace the rules istio-cni installs there
# (spec/capture.md §1, in order), or removes them. ztunnel-ts itself never programs these.
#
# Usage:
#   deploy/inpod-redirect.sh install <netns> [--dns] [--dscp-mark N] [--no-ipv6]
#   deploy/inpod-redirect.sh remove  <netns>
#   deploy/inpod-redirect.sh show    <netns>
#
# <netns> is a name under /run/netns (`ip netns add`) or a path such as /proc/<pid>/ns/net.
#   --dns          also capture DNS (UDP and TCP port 53 → 15053, conntrack zone 1 in raw)
#   --dscp-mark N  transparent network policies (capture.md §8): TCP arriving with DSCP N is
#                  redirected to 15008, placed before the 15006 rule (istio-cni MAGIC_DSCP_MARK)
#   --no-ipv6      skip ip6tables and the IPv6 policy route
#
# install is idempotent: the custom chains are rewritten atomically per table (iptables-restore
# --noflush) and the jumps, route and rule are added only when missing. Needs root, iptables
# (nft or legacy backend) and iproute2; ip6tables is used when present.
set -euo pipefail

readonly MARK=0x539/0xfff          # ztunnel's SO_MARK (1337)
readonly CONNMARK=0x111/0xfff      # "tproxy" connmark for ztunnel-originated (spoofed) connections
readonly ROUTE_TABLE=100
readonly RULE_PRIORITY=32764
readonly PROBE_V4=169.254.7.127
readonly PROBE_V6=fd16:9254:7127:1337:ffff:ffff:ffff:ffff
readonly OUTBOUND=15001 INBOUND_PLAINTEXT=15006 HBONE=15008 DNS=15053
readonly COMMENT_PREFIX=ztunnel-inpod

usage() {
  sed -n '6,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 2 ]] || usage
ACTION=$1
NETNS=$2
shift 2
DNS_CAPTURE=false
DSCP_MARK=
IPV6=true
while [[ $# -gt 0 ]]; do
  case $1 in
    --dns) DNS_CAPTURE=true ;;
    --dscp-mark)
      [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -le 63 ]] || { echo "--dscp-mark needs a value 0..63" >&2; exit 2; }
      DSCP_MARK=$2
      shift ;;
    --no-ipv6) IPV6=false ;;
    *) usage ;;
  esac
  shift
done

# Runs a command inside the pod netns.
in_ns() {
  if [[ $NETNS == */* ]]; then
    nsenter --net="$NETNS" "$@"
  else
    ip netns exec "$NETNS" "$@"
  fi
}

if [[ $NETNS == */* ]]; then
  [[ -e $NETNS ]] || { echo "no such network namespace: $NETNS" >&2; exit 1; }
else
  [[ -e /run/netns/$NETNS ]] || { echo "no such network namespace: $NETNS (see ip netns list)" >&2; exit 1; }
fi

# IPv6 is handled when asked for, ip6tables exists and the netns has an IPv6 stack.
have_ipv6() {
  $IPV6 && command -v ip6tables >/dev/null 2>&1 && in_ns test -d /proc/sys/net/ipv6
}

# Whether `lo` in the netns has ::1 (istio-cni only adds the IPv6 policy route then).
lo_has_ipv6() {
  in_ns ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128'
}

c() { printf -- '-m comment --comment "%s/%s"' "$COMMENT_PREFIX" "$1"; }

# The rule set of capture.md §1 for one family, in iptables-restore form. Declaring a chain with
# --noflush empties it first, so re-running install replaces the chains rather than appending.
ruleset() {
  local lo=$1 probe=$2
  echo '*mangle'
  echo ':ISTIO_PRERT - [0:0]'
  echo ':ISTIO_OUTPUT - [0:0]'
  echo "-A ISTIO_PRERT -m mark --mark $MARK $(c connmark-ztunnel) -j CONNMARK --set-xmark $CONNMARK"
  echo "-A ISTIO_OUTPUT -m connmark --mark $CONNMARK $(c restore-mark) -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff"
  echo 'COMMIT'
  echo '*nat'
  echo ':ISTIO_PRERT - [0:0]'
  echo ':ISTIO_OUTPUT - [0:0]'
  echo "-A ISTIO_PRERT -s $probe -p tcp $(c probe-in) -j ACCEPT"
  echo "-A ISTIO_OUTPUT -d $probe -p tcp $(c probe-out) -j ACCEPT"
  if [[ -n $DSCP_MARK ]]; then
    echo "-A ISTIO_PRERT -p tcp -m dscp --dscp $DSCP_MARK $(c dscp-hbone) -j REDIRECT --to-ports $HBONE"
  fi
  echo "-A ISTIO_PRERT ! -d $lo -p tcp ! --dport $HBONE -m mark ! --mark $MARK $(c inbound-plaintext) -j REDIRECT --to-ports $INBOUND_PLAINTEXT"
  if $DNS_CAPTURE; then
    echo "-A ISTIO_OUTPUT ! -o lo -p udp --dport 53 -m mark ! --mark $MARK $(c dns-udp) -j REDIRECT --to-ports $DNS"
    echo "-A ISTIO_OUTPUT ! -d $lo -p tcp --dport 53 -m mark ! --mark $MARK $(c dns-tcp) -j REDIRECT --to-ports $DNS"
  fi
  echo "-A ISTIO_OUTPUT -p tcp -m mark --mark $CONNMARK $(c spoofed-replies) -j ACCEPT"
  echo "-A ISTIO_OUTPUT ! -d $lo -o lo $(c self-call) -j ACCEPT"
  echo "-A ISTIO_OUTPUT ! -d $lo -p tcp -m mark ! --mark $MARK $(c outbound) -j REDIRECT --to-ports $OUTBOUND"
  echo 'COMMIT'
  if $DNS_CAPTURE; then
    echo '*raw'
    echo ':ISTIO_PRERT - [0:0]'
    echo ':ISTIO_OUTPUT - [0:0]'
    echo "-A ISTIO_OUTPUT -p udp --dport 53 -m mark --mark $MARK $(c dns-zone-out) -j CT --zone 1"
    echo "-A ISTIO_PRERT -p udp --sport 53 -m mark ! --mark $MARK $(c dns-zone-in) -j CT --zone 1"
    echo 'COMMIT'
  fi
}

# Adds `-j <chain>` at the top of a built-in chain unless already there.
ensure_jump() {
  local bin=$1 table=$2 from=$3 to=$4
  in_ns "$bin" -w -t "$table" -C "$from" -j "$to" 2>/dev/null || in_ns "$bin" -w -t "$table" -I "$from" 1 -j "$to"
}

install_family() {
  local bin=$1 lo=$2 probe=$3
  ruleset "$lo" "$probe" | in_ns "${bin}-restore" -w 10 --noflush
  ensure_jump "$bin" mangle PREROUTING ISTIO_PRERT
  ensure_jump "$bin" mangle OUTPUT ISTIO_OUTPUT
  ensure_jump "$bin" nat PREROUTING ISTIO_PRERT
  ensure_jump "$bin" nat OUTPUT ISTIO_OUTPUT
  if $DNS_CAPTURE; then
    ensure_jump "$bin" raw PREROUTING ISTIO_PRERT
    ensure_jump "$bin" raw OUTPUT ISTIO_OUTPUT
  else
    remove_table "$bin" raw
  fi
}

# Removes our jumps and chains from one table (absent ones are fine).
remove_table() {
  local bin=$1 table=$2 from to
  for pair in PREROUTING:ISTIO_PRERT OUTPUT:ISTIO_OUTPUT; do
    from=${pair%%:*}
    to=${pair##*:}
    while in_ns "$bin" -w -t "$table" -D "$from" -j "$to" 2>/dev/null; do :; done
    in_ns "$bin" -w -t "$table" -F "$to" 2>/dev/null || true
    in_ns "$bin" -w -t "$table" -X "$to" 2>/dev/null || true
  done
}

# Policy routing (capture.md §1): replies of ztunnel's spoofed-source connections (connmark 0x111,
# restored into the packet mark) are routed back into the local stack.
install_routing() {
  local fam=$1 dst=$2
  in_ns ip "$fam" route replace local "$dst" dev lo table $ROUTE_TABLE
  if ! in_ns ip "$fam" rule show pref $RULE_PRIORITY | grep -q "lookup $ROUTE_TABLE"; then
    in_ns ip "$fam" rule add fwmark $CONNMARK pref $RULE_PRIORITY lookup $ROUTE_TABLE
  fi
}

remove_routing() {
  local fam=$1 dst=$2
  while in_ns ip "$fam" rule del fwmark $CONNMARK pref $RULE_PRIORITY lookup $ROUTE_TABLE 2>/dev/null; do :; done
  in_ns ip "$fam" route del local "$dst" dev lo table $ROUTE_TABLE 2>/dev/null || true
}

case $ACTION in
  install)
    install_family iptables 127.0.0.1/32 "$PROBE_V4"
    install_routing -4 0.0.0.0/0
    if have_ipv6; then
      install_family ip6tables ::1/128 "$PROBE_V6"
      if lo_has_ipv6; then install_routing -6 ::/0; fi
    fi
    ;;
  remove)
    for table in mangle nat raw; do remove_table iptables $table; done
    remove_routing -4 0.0.0.0/0
    if command -v ip6tables >/dev/null 2>&1 && in_ns test -d /proc/sys/net/ipv6; then
      for table in mangle nat raw; do remove_table ip6tables $table; done
      remove_routing -6 ::/0
    fi
    ;;
  show)
    for table in mangle nat raw; do in_ns iptables -w -t $table -S 2>/dev/null | grep -E 'ISTIO_(PRERT|OUTPUT)' || true; done
    if command -v ip6tables >/dev/null 2>&1 && in_ns test -d /proc/sys/net/ipv6; then
      for table in mangle nat raw; do in_ns ip6tables -w -t $table -S 2>/dev/null | grep -E 'ISTIO_(PRERT|OUTPUT)' | sed 's/^/[v6] /' || true; done
    fi
    in_ns ip rule show pref $RULE_PRIORITY
    in_ns ip route show table $ROUTE_TABLE
    if in_ns test -d /proc/sys/net/ipv6; then
      in_ns ip -6 rule show pref $RULE_PRIORITY | sed 's/^/[v6] /'
      in_ns ip -6 route show table $ROUTE_TABLE | sed 's/^/[v6] /'
    fi
    ;;
  *) usage ;;
esac
